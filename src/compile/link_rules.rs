//! A reconciliation's link rules as a plan: which deal each revenue line
//! belongs to. The bridge and the revenue-line match rate both build it
//! here, so the two can never link a line differently.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Column, ScalarValue};
use datafusion::functions_aggregate::expr_fn::max;
use datafusion::logical_expr::{Expr, JoinType, cast, col, lit, when};
use datafusion::prelude::DataFrame;

use crate::compile::entity::entity_frame;
use crate::compile::planner::Planner;
use crate::error::{CanonError, Location, Result};
use crate::spec::ReconciliationSpec;
use crate::spec::locate::Step;
use crate::yaml_path;

/// Joins what `spec`'s link rules need onto `frame` (the revenue lines) and
/// returns it with each rule's deal id (text, or null), in the rules'
/// order: the first that yields one wins. `parse` reads a rule's SQL over
/// the lines; `at` locates a path inside the reconciliation.
///
/// A lookup (`subscription` → its deal) takes the greatest deal any record
/// of the key its `filter` keeps names (a subscription's versions may
/// disagree), as the reconciliation's description states; and only a line no earlier rule
/// links is looked up: the others probe with a null key, which is neither
/// hashed nor matched (most lines carry their deal).
pub async fn link_rules(
    engine: &Planner,
    mut frame: DataFrame,
    spec: &ReconciliationSpec,
    parse: &dyn Fn(&str, &Location) -> Result<Expr>,
    at: &dyn Fn(&[Step]) -> Location,
) -> Result<(DataFrame, Vec<(String, Expr)>)> {
    let mut links: Vec<(String, Expr)> = Vec::new();
    for (i, rule) in spec.links.iter().enumerate() {
        match (&rule.expr, &rule.lookup) {
            (Some(e), None) => {
                let e = parse(e, &at(&yaml_path!["links", i, "expr"]))?;
                links.push((rule.name.clone(), cast(e, DataType::Utf8)));
            }
            (None, Some(lookup)) => {
                let alias = format!("_lookup{i}");
                let mut target = entity_frame(engine, &lookup.entity).await?;
                if let Some(filter) = &lookup.filter {
                    let location = at(&yaml_path!["links", i, "lookup", "filter"]);
                    let schema = target.schema().clone();
                    let e = crate::compile::parse_scoped(engine, filter, &schema, None, &location)?;
                    let ty = datafusion::logical_expr::ExprSchemable::get_type(&e, &schema)?;
                    if ty != DataType::Boolean {
                        return Err(CanonError::definition(
                            location,
                            format!(
                                "`filter` must be true or false for each record; `{filter}` is {ty}"
                            ),
                        ));
                    }
                    target = target.filter(e)?;
                }
                let target = target
                    .filter(col(lookup.value.as_str()).is_not_null())?
                    .aggregate(
                        vec![cast(col(lookup.key.as_str()), DataType::Utf8).alias("_lk")],
                        vec![max(cast(col(lookup.value.as_str()), DataType::Utf8)).alias("_lv")],
                    )?;
                let from = parse(&lookup.from, &at(&yaml_path!["links", i, "lookup", "from"]))?;
                let mut from = cast(from, DataType::Utf8);
                if !links.is_empty() {
                    let unlinked = links
                        .iter()
                        .map(|(_, e)| e.clone().is_null())
                        .reduce(Expr::and)
                        .unwrap_or(lit(true));
                    from = when(unlinked, from).otherwise(lit(ScalarValue::Utf8(None)))?;
                }
                frame = frame.join_on(
                    target.alias(&alias)?,
                    JoinType::Left,
                    [from.eq(Expr::Column(Column::new(Some(alias.as_str()), "_lk")))],
                )?;
                links.push((
                    rule.name.clone(),
                    Expr::Column(Column::new(Some(alias.as_str()), "_lv")),
                ));
            }
            _ => {
                return Err(CanonError::definition(
                    at(&yaml_path!["links", i]),
                    "a link rule needs exactly one of `expr` or `lookup`",
                ));
            }
        }
    }
    Ok((frame, links))
}
