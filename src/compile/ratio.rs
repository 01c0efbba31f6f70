//! `ratio` metrics: numerator over denominator, each an aggregate metric
//! planned by its own kind; the quotient, overall and per group, is taken
//! by the run stage (`query/ratio.rs`) at `scale` decimals.

use super::kind::Kind;
use super::parts_planned;
use super::planner::Planner;
use super::{MetricPlan, Resolved};
use crate::catalog::MetricId;
use crate::error::{CanonError, Result};

/// A ratio (`kind: ratio`).
pub struct Ratio;

#[async_trait::async_trait(?Send)]
impl Kind for Ratio {
    /// Numerator, then denominator (the run stage reads them in that order).
    fn parts(&self, planner: &Planner, id: MetricId) -> Result<Vec<String>> {
        let metric = &planner.catalog.files.metrics[id.file].spec.metrics[id.index];
        [&metric.numerator, &metric.denominator]
            .into_iter()
            .map(|part| {
                part.clone().ok_or_else(|| {
                    CanonError::Internal(format!("ratio `{}` without both parts", metric.name))
                })
            })
            .collect()
    }

    async fn plan(
        &self,
        planner: &Planner,
        id: MetricId,
        request: &Resolved,
    ) -> Result<MetricPlan> {
        Ok(MetricPlan::Ratio(
            parts_planned(planner, &self.parts(planner, id)?, request).await?,
        ))
    }
}
