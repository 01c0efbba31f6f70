//! Data quality reported with every result. For now: the match rate of
//! every cross-system identity rule a result relied on (billing account →
//! CRM account, support organization → CRM account, health snapshot → CRM
//! account), so a reader sees how much of the number rests on resolved
//! identities.

use datafusion::functions_aggregate::expr_fn::count;
use datafusion::logical_expr::{Expr, col, lit};
use serde::Serialize;

use crate::compile::entity::metric_frame;
use crate::decimal::Dec;
use crate::error::Result;
use crate::run::Engine;

/// One identity rule's match rate over all rows of the entity that links.
#[derive(Debug, Clone, Serialize)]
pub struct MatchRate {
    pub check: &'static str,
    /// `billing_account.crm → account`
    pub rule: String,
    /// `billing/account`
    pub table: String,
    pub rows: i64,
    pub matched: i64,
    /// matched / rows, 6 decimals.
    pub rate: Option<Dec>,
    pub status: &'static str,
}

/// Match rates of the cross-system links joined so far on `engine`.
pub async fn identity_match_rates(engine: &Engine) -> Result<Vec<MatchRate>> {
    let catalog = &engine.catalog;
    let mut out = Vec::new();
    for (entity, link_name) in engine.links_used() {
        let Some((_, model, spec)) = catalog.entity(&entity) else {
            continue;
        };
        let Some(link) = spec.links.iter().find(|l| l.name == link_name) else {
            continue;
        };
        let Some((_, target_model, target)) = catalog.entity(&link.entity) else {
            continue;
        };
        if target_model.spec.system == model.spec.system {
            continue;
        }
        let paths = [vec![link_name.clone()]].into_iter().collect();
        let frame = metric_frame(engine, &entity, &paths).await?;
        let matched = Expr::Column(datafusion::common::Column::new(
            Some(link_name.as_str()),
            &target.key,
        ));
        let batches = frame
            .aggregate(
                vec![],
                vec![
                    count(lit(1i64)).alias("rows"),
                    count(matched).alias("matched"),
                ],
            )?
            .select(vec![col("rows"), col("matched")])?
            .collect()
            .await?;
        let (mut rows, mut hit) = (0i64, 0i64);
        for b in &batches {
            use datafusion::arrow::array::AsArray;
            use datafusion::arrow::datatypes::Int64Type;
            for i in 0..b.num_rows() {
                rows += b.column(0).as_primitive::<Int64Type>().value(i);
                hit += b.column(1).as_primitive::<Int64Type>().value(i);
            }
        }
        out.push(MatchRate {
            check: "identity_match_rate",
            rule: format!("{entity}.{link_name} → {}", link.entity),
            table: format!("{}/{}", model.spec.system, spec.source),
            rows,
            matched: hit,
            rate: Dec::from_int(hit).div(Dec::from_int(rows), 6),
            status: "info",
        });
    }
    Ok(out)
}
