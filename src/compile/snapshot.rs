//! `snapshot` metrics: the state as of a day (the latest row of a history
//! on or before it, or the rows whose validity interval holds it), one
//! window per as-of day; a series of days is one scan (see
//! `simple::Window::Series`). The windows are compiled by the aggregate
//! compiler in `simple.rs`, which flows and snapshots share.

use chrono::NaiveDate;

use super::itself;
use super::kind::Kind;
use super::planner::Planner;
use super::{MetricPlan, Resolved};
use crate::catalog::MetricId;
use crate::error::Result;

/// A snapshot (`kind: snapshot`).
pub struct Snapshot;

#[async_trait::async_trait(?Send)]
impl Kind for Snapshot {
    fn parts(&self, planner: &Planner, id: MetricId) -> Result<Vec<String>> {
        Ok(vec![
            planner.catalog.files.metrics[id.file].spec.metrics[id.index]
                .name
                .clone(),
        ])
    }

    async fn plan(
        &self,
        planner: &Planner,
        id: MetricId,
        request: &Resolved,
    ) -> Result<MetricPlan> {
        Ok(itself(
            planner,
            id,
            super::simple::compile(planner, id, request).await?,
        ))
    }

    /// The rows in force at the asked metric's instants.
    fn counted_at(&self, instants: &[NaiveDate]) -> Option<Vec<NaiveDate>> {
        Some(instants.to_vec())
    }
}
