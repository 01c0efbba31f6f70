//! A governed result's own arithmetic: what must hold between its numbers
//! whatever the data. The result cache checks a stored result against it
//! before serving it, so an entry whose value was edited (or damaged)
//! without its evidence is recomputed instead of served.
//!
//! The identities:
//! - every universe: included + Σ its exclusions = universe, in rows and in
//!   value (metrics.md, "Exclusions");
//! - an additive metric (a sum or a count): the headline is what its tally
//!   included, and without slices its rows give it back (a flow's periods
//!   sum to it; a snapshot series ends on it);
//! - a cohort bridge: start + expansion + contraction + churned = end.

use crate::decimal::Dec;
use crate::result::GovernedResult;
use crate::spec::{Aggregation, MetricSpec};

/// Whether the result's numbers agree with each other; the first
/// disagreement otherwise, in words.
pub fn check(result: &GovernedResult, additive: bool) -> Result<(), String> {
    for t in &result.tallies {
        let excluded = result.exclusions.iter().filter(|x| x.metric == t.metric);
        let (rows, value) = excluded.fold((0i64, Dec::ZERO), |(r, v), x| (r + x.rows, v + x.value));
        if t.included_rows + rows != t.universe_rows
            || !same(t.included_value + value, t.universe_value)
        {
            return Err(format!(
                "{}: included {} rows / {} + excluded {rows} rows / {} is not the universe {} rows / {}",
                t.metric,
                t.included_rows,
                t.included_value.plain(),
                value.plain(),
                t.universe_rows,
                t.universe_value.plain()
            ));
        }
    }
    let own_tally = result.tallies.iter().find(|t| t.metric == result.metric);
    if additive && let (Some(t), Some(v)) = (own_tally, result.value) {
        if !same(v, t.included_value) {
            return Err(format!(
                "the headline {} is not what its tally included, {}",
                v.plain(),
                t.included_value.plain()
            ));
        }
        if result.request.by.is_empty() && !result.rows.is_empty() {
            let from_rows = match result.kind.as_str() {
                "snapshot" => result.rows.last().and_then(|r| r.value),
                _ => Some(
                    result
                        .rows
                        .iter()
                        .filter_map(|r| r.value)
                        .fold(Dec::ZERO, |a, b| a + b),
                ),
            };
            if !from_rows.is_some_and(|r| same(r, v)) {
                return Err(format!(
                    "the headline {} is not what its rows give, {}",
                    v.plain(),
                    from_rows.map(|r| r.plain()).unwrap_or_default()
                ));
            }
        }
    }
    bridge_foots(result)
}

/// Whether a cohort result's bridge foots: start + expansion + contraction +
/// churned = end. Checked on every fresh result too, not only a cached
/// one: a member whose value at T is below zero (a discount charge that
/// outlives its base charge) is counted churned at its T0 value while its
/// negative value stays in the end, and the bridge was shown 120.00 off
/// with the number as if all were well.
pub fn bridge_foots(result: &GovernedResult) -> Result<(), String> {
    if !result.bridge.is_empty() {
        let line = |name: &str| {
            result
                .bridge
                .iter()
                .find(|l| l.line == name)
                .map(|l| l.value)
        };
        if let (Some(start), Some(end)) = (line("starting"), line("ending")) {
            let moved = ["expansion", "contraction", "churned"]
                .iter()
                .filter_map(|n| line(n))
                .fold(start, |a, b| a + b);
            if !same(moved, end) {
                return Err(format!(
                    "its bridge does not foot: start {} and its movements give {}, not the end {}",
                    start.plain(),
                    moved.plain(),
                    end.plain()
                ));
            }
        }
    }
    Ok(())
}

/// Whether the metric's headline is the sum of what it counts: a sum or a
/// count, or a conversion (it counts members).
pub fn additive(metric: &MetricSpec) -> bool {
    crate::compile::kind_of(metric.kind).counts_members()
        || metric
            .measure
            .as_ref()
            .is_some_and(|m| matches!(m.agg, Aggregation::Sum | Aggregation::Count))
}

/// Equal as numbers, whatever their scales (1.0 = 1.00).
fn same(a: Dec, b: Dec) -> bool {
    let scale = a.scale.max(b.scale);
    a.rescale(scale) == b.rescale(scale)
}
