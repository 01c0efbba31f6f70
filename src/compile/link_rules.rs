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
use crate::spec::locate::Step;
use crate::spec::{LookupSpec, ReconciliationSpec};
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
    // Every rule's problems, not only the first's: `canon validate` reports
    // a definition's problems at once.
    let mut problems = Vec::new();
    for (i, rule) in spec.links.iter().enumerate() {
        let linked = match (&rule.expr, &rule.lookup) {
            (Some(e), None) => parse(e, &at(&yaml_path!["links", i, "expr"]))
                .map(|e| (None, cast(e, DataType::Utf8))),
            (None, Some(lookup)) => looked_up(engine, &frame, i, lookup, parse, at)
                .await
                .map(|(target, from)| (Some(target), from)),
            _ => Err(CanonError::definition(
                at(&yaml_path!["links", i]),
                "a link rule needs exactly one of `expr` or `lookup`",
            )),
        };
        match linked {
            Ok((None, e)) => links.push((rule.name.clone(), e)),
            Ok((Some(target), mut from)) => {
                // Only a line no earlier rule links is looked up.
                if !links.is_empty() {
                    let unlinked = links
                        .iter()
                        .map(|(_, e)| e.clone().is_null())
                        .reduce(Expr::and)
                        .unwrap_or(lit(true));
                    from = when(unlinked, from).otherwise(lit(ScalarValue::Utf8(None)))?;
                }
                let alias = format!("_lookup{i}");
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
            Err(CanonError::Definition(found)) => problems.extend(found),
            Err(e) => return Err(e),
        }
    }
    if !problems.is_empty() {
        return Err(CanonError::Definition(problems));
    }
    Ok((frame, links))
}

/// A lookup rule, checked and located: the looked-up records (their key as
/// text `_lk`, and the greatest value `_lv` the records its `filter` keeps
/// name) and what a line probes them with (`from`, as text).
async fn looked_up(
    engine: &Planner,
    frame: &DataFrame,
    i: usize,
    lookup: &LookupSpec,
    parse: &dyn Fn(&str, &Location) -> Result<Expr>,
    at: &dyn Fn(&[Step]) -> Location,
) -> Result<(DataFrame, Expr)> {
    if engine.catalog.entity(&lookup.entity).is_none() {
        return Err(CanonError::definition(
            at(&yaml_path!["links", i, "lookup", "entity"]),
            format!(
                "unknown entity `{}`{}",
                lookup.entity,
                engine.catalog.entity_hint(&lookup.entity)
            ),
        ));
    }
    let mut target = entity_frame(engine, &lookup.entity).await?;
    // The key and the value are fields of the looked-up entity, located
    // when they are not (the engine would only say "no field named …",
    // nowhere).
    let fields: Vec<String> = target
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|n| !n.starts_with('_'))
        .collect();
    let mut problems = Vec::new();
    for (what, field) in [("key", &lookup.key), ("value", &lookup.value)] {
        if target.schema().field_with_unqualified_name(field).is_err() {
            problems.push(crate::error::Diagnostic {
                location: at(&yaml_path!["links", i, "lookup", what]),
                message: format!(
                    "lookup {what} `{field}` is not a field of entity `{}` (its fields: {})",
                    lookup.entity,
                    fields.join(", ")
                ),
            });
        }
    }
    if !problems.is_empty() {
        return Err(CanonError::Definition(problems));
    }
    let key_type = target
        .schema()
        .field_with_unqualified_name(&lookup.key)
        .map(|f| f.data_type().clone())?;
    if let Some(filter) = &lookup.filter {
        let location = at(&yaml_path!["links", i, "lookup", "filter"]);
        let schema = target.schema().clone();
        let e = crate::compile::parse_scoped(engine, filter, &schema, None, &location)?;
        let ty = datafusion::logical_expr::ExprSchemable::get_type(&e, &schema)?;
        if ty != DataType::Boolean {
            return Err(CanonError::definition(
                location,
                format!("`filter` must be true or false for each record; `{filter}` is {ty}"),
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
    // Both sides are compared as text: keys of two types would match by
    // their printed forms (an integer version number against a
    // subscription id), which moves lines between the bridge's lines with
    // nothing but a match rate to show.
    let from_type = datafusion::logical_expr::ExprSchemable::get_type(&from, frame.schema())?;
    if !same_kind(&key_type, &from_type) {
        return Err(CanonError::definition(
            at(&yaml_path!["links", i, "lookup", "key"]),
            format!(
                "lookup key `{}` of entity `{}` is {key_type}, but `from` (`{}`) is {from_type}: a key is matched with a value of its own type",
                lookup.key, lookup.entity, lookup.from
            ),
        ));
    }
    Ok((target, cast(from, DataType::Utf8)))
}

/// Whether a key of type `a` and a value of type `b` are of one kind (text
/// in any of its encodings, or one type).
fn same_kind(a: &DataType, b: &DataType) -> bool {
    let text =
        |t: &DataType| matches!(t, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8);
    a == b || (text(a) && text(b))
}

/// Plans the link rules of the reconciliation at (metrics `file`, `index`)
/// over the revenue lines without running them: `canon validate` checks
/// each rule's SQL and a lookup's entity, key, value and filter over no
/// data, where otherwise only a reconcile, a check or a publish would find
/// them wrong.
pub async fn check(engine: &Planner, (file, index): (usize, usize)) -> Result<()> {
    let catalog = engine.catalog.clone();
    let spec = &catalog.files.metrics[file].spec.reconciliations[index];
    let (_, _, r_metric) = catalog.metric(&spec.revenue)?;
    let (line_entity, frame) = revenue_frame(engine, r_metric).await?;
    let schema = frame.schema().clone();
    link_rules(
        engine,
        frame,
        spec,
        &|sql, loc| crate::compile::parse_scoped(engine, sql, &schema, Some(&line_entity), loc),
        &|path| located(&catalog, (file, index), path),
    )
    .await?;
    Ok(())
}

/// The revenue metric's entity and its rows with their period link: what
/// the link rules read.
pub async fn revenue_frame(
    engine: &Planner,
    r_metric: &crate::spec::MetricSpec,
) -> Result<(String, DataFrame)> {
    let line_entity = r_metric
        .entity
        .clone()
        .ok_or_else(|| CanonError::Internal("revenue without an entity".into()))?;
    let mut links = std::collections::BTreeSet::new();
    links.insert(vec!["period".to_string()]);
    let frame = crate::compile::entity::metric_frame(engine, &line_entity, &links).await?;
    Ok((line_entity, frame))
}

/// Where `path` under the reconciliation at (metrics file, index) is.
pub fn located(
    catalog: &crate::catalog::Catalog,
    (file, index): (usize, usize),
    path: &[Step],
) -> Location {
    let mut full = yaml_path!["reconciliations", index].to_vec();
    full.extend_from_slice(path);
    catalog.files.metrics[file].at(&full)
}
