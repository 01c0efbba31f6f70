//! canon.yaml `quality.subscription_deals`: which counted deals the won-deal
//! match rate expects a cross-system record (a billing subscription) to
//! name, as SQL over the deal entity's fields.
//!
//! The policy decides the rate's denominator, so a policy that is not a
//! plain yes/no question about one deal would make the rate quietly wrong:
//! a non-boolean expression fails deep inside a plan, an aggregate
//! (`sum(amount) > 0`) is not about one deal, and a volatile function
//! (`random() < 0.5`) makes the rate differ from run to run. Each of these is
//! a definition error located in canon.yaml, found by `canon validate`
//! before any data is read.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::DFSchema;
use datafusion::functions::expr_fn::coalesce;
use datafusion::logical_expr::{Expr, ExprSchemable, cast, col, lit};
use datafusion::prelude::DataFrame;

use crate::compile::parse_expr;
use crate::error::{CanonError, Location, Result};
use crate::run::Engine;
use crate::yaml_path;

/// `_expected` (text): the keys of the deals of entity `deal` the policy
/// expects a subscription for; none when canon.yaml sets no policy (every
/// counted deal is expected to have one).
pub async fn expected(engine: &Engine, deal: &str) -> Result<Option<DataFrame>> {
    let catalog = &engine.catalog;
    let Some(sql) = &catalog.files.project.spec.quality.subscription_deals else {
        return Ok(None);
    };
    let (_, _, spec) = catalog
        .entity(deal)
        .ok_or_else(|| CanonError::Internal(format!("unknown entity {deal}")))?;
    let entity = engine.entity_frame(deal).await?;
    let location = catalog
        .files
        .project
        .at(&yaml_path!["quality", "subscription_deals"]);
    let schema = entity.schema().clone();
    let predicate = parse_expr(engine, sql, &schema, &location)?;
    check(&predicate, &schema, sql, deal, &location)?;
    Ok(Some(
        entity
            .filter(coalesce(vec![predicate, lit(false)]))?
            .select(vec![
                cast(col(spec.key.as_str()), DataType::Utf8).alias("_expected"),
            ])?,
    ))
}

/// Checks the policy against the deal entity of every reconciliation's
/// bookings metric (the deals the won-deal rate counts), without reading
/// data: for `canon validate`.
pub async fn validate(engine: &Engine) -> Result<()> {
    let catalog = &engine.catalog;
    let mut deals: Vec<String> = Vec::new();
    for file in &catalog.files.metrics {
        for r in &file.spec.reconciliations {
            if let Ok((_, _, bookings)) = catalog.metric(&r.bookings)
                && let Some(deal) = &bookings.entity
                && !deals.contains(deal)
            {
                deals.push(deal.clone());
            }
        }
    }
    for deal in deals {
        expected(engine, &deal).await?;
    }
    Ok(())
}

/// The policy must be a condition over the deal entity's own fields (the
/// parser has already resolved the columns against the entity's schema and
/// refused what no governed expression may be: aggregates, subqueries,
/// functions that are not deterministic).
fn check(
    predicate: &Expr,
    schema: &DFSchema,
    sql: &str,
    deal: &str,
    location: &Location,
) -> Result<()> {
    let located = |why: String| {
        CanonError::definition(
            location.clone(),
            format!(
                "`{sql}` {why}: quality.subscription_deals must be a yes/no condition on one `{deal}` (for example `deal_type <> 'Expansion'`)"
            ),
        )
    };
    let ty = predicate.get_type(schema)?;
    if ty != DataType::Boolean {
        let ty = match ty {
            DataType::Null => "NULL".to_string(),
            other => other.to_string(),
        };
        return Err(located(format!("is not a condition (its type is {ty})")));
    }
    Ok(())
}
