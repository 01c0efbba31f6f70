//! What a metric kind is to planning and to the gates, and the one place a
//! kind picks its module (`compile::kind_of`).
//!
//! Each kind's module implements [`Kind`]: `simple.rs` (flows), `snapshot.rs`,
//! `conversion.rs`, `ratio.rs`, `cohort.rs`, `derived.rs`; `compile::kind_of`
//! picks one. Adding a kind is its module, its arm in `kind_of` and its
//! definition checks in `catalog::kinds` (beneath planning, so every
//! command checks them on load); the run stage runs its plan by the plan's
//! shape (`MetricPlan`), and asks the questions below of the kind instead
//! of naming it.

use chrono::NaiveDate;

use super::planner::Planner;
use super::{MetricPlan, Resolved};
use crate::catalog::MetricId;
use crate::error::Result;

/// A metric kind's planning.
#[async_trait::async_trait(?Send)]
pub trait Kind: Sync {
    /// The aggregate metrics it is computed from, in order: itself for an
    /// aggregate kind (simple, snapshot, conversion), the default.
    fn parts(&self, planner: &Planner, id: MetricId) -> Result<Vec<String>> {
        Ok(vec![
            planner.catalog.files.metrics[id.file].spec.metrics[id.index]
                .name
                .clone(),
        ])
    }

    /// What planning checks of its definition beyond the catalog, without
    /// data (`validate`): a cohort's snapshot and key, a derived metric's
    /// whole expression. An aggregate kind is checked by planning it.
    fn check(&self, _planner: &Planner, _id: MetricId) -> Result<()> {
        Ok(())
    }

    /// Its plan for `request`, nothing executed.
    async fn plan(&self, planner: &Planner, id: MetricId, request: &Resolved)
    -> Result<MetricPlan>;

    /// The days a metric of this kind, as asked, counts its parts' rows at:
    /// a snapshot's as-of days (a flow has none: its period); a cohort's T0
    /// and T.
    fn instants(&self, request: &Resolved) -> Vec<NaiveDate> {
        request.as_of_days.iter().map(|(_, d)| *d).collect()
    }

    /// When this kind counts rows of its entity (the key-uniqueness gate
    /// judges them), the days it counts them at, given the `instants` of
    /// the metric asked for; `None` when it counts none of its own (a
    /// conversion counts first moments; a ratio, cohort or derived metric
    /// counts through its parts).
    fn counted_at(&self, _instants: &[NaiveDate]) -> Option<Vec<NaiveDate>> {
        None
    }

    /// Whether its `time` puts the rows it counts in the requested period
    /// (a flow); the gates then judge only the period's rows.
    fn counts_in_period(&self) -> bool {
        false
    }

    /// Whether its exclusions and members are tallied at its last day when
    /// it is asked at several (a snapshot: a charge in force at twelve
    /// month-ends is one charge of the universe, not twelve).
    fn tallied_at_last_day(&self) -> bool {
        false
    }

    /// Whether each row it counts is a member (a conversion counts members
    /// that reached a stage), so its members are its rows and its headline
    /// adds up over them.
    fn counts_members(&self) -> bool {
        false
    }
}
