//! `snapshot` metrics: the state as of a day (the latest row of a history
//! on or before it, or the rows whose validity interval holds it), one
//! window per as-of day; a series of days is one scan joined to a small
//! table of the days (`series_table`). What is a snapshot's own is here:
//! states of a history, their intervals, what is in force at a day. The
//! windows themselves are built by the aggregate compiler in `simple.rs`,
//! which flows and snapshots share.

use chrono::NaiveDate;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Column, ScalarValue};
use datafusion::logical_expr::{Expr, ExprSchemable, JoinType, col, lit};
use datafusion::prelude::DataFrame;

use super::bounds::{bound, days_since_epoch, next_day, not_a_time};
use super::entity::entity_frame;
use super::kind::Kind;
use super::plan::FramePlan;
use super::planner::Planner;
use super::{MetricPlan, Resolved, itself, parse_scoped};
use crate::catalog::MetricId;
use crate::error::{CanonError, Result};
use crate::spec::HistorySpec;
use crate::yaml_path;

/// A snapshot (`kind: snapshot`).
pub struct Snapshot;

#[async_trait::async_trait(?Send)]
impl Kind for Snapshot {
    async fn plan(
        &self,
        planner: &Planner,
        id: MetricId,
        request: &Resolved,
    ) -> Result<MetricPlan> {
        Ok(itself(
            planner,
            id,
            super::aggregate(planner, id, request).await?,
        ))
    }

    /// The rows in force at the asked metric's instants.
    fn counted_at(&self, instants: &[NaiveDate]) -> Option<Vec<NaiveDate>> {
        Some(instants.to_vec())
    }

    fn tallied_at_last_day(&self) -> bool {
        true
    }
}

/// The relation of a series' table of days.
pub(super) const SERIES: &str = "_series";

/// One row per as-of day of a series: `_label`, `_day`, and the bound each
/// validity or state column is compared with (`_from_end`, `_to_end`,
/// `_state_end`: the start of the next local day, typed like the column).
pub(super) fn series_table(
    days: &[(String, NaiveDate)],
    bounds: Vec<(&str, Vec<ScalarValue>)>,
) -> Result<datafusion::arrow::record_batch::RecordBatch> {
    use datafusion::arrow::array::{ArrayRef, Date32Array, StringArray};
    let mut columns: Vec<(&str, ArrayRef)> = vec![
        (
            "_label",
            std::sync::Arc::new(StringArray::from_iter_values(
                days.iter().map(|(l, _)| l.as_str()),
            )),
        ),
        (
            "_day",
            std::sync::Arc::new(Date32Array::from_iter_values(
                days.iter().map(|(_, d)| days_since_epoch(*d)),
            )),
        ),
    ];
    for (name, values) in bounds {
        columns.push((name, ScalarValue::iter_to_array(values)?));
    }
    Ok(datafusion::arrow::record_batch::RecordBatch::try_from_iter(
        columns,
    )?)
}

/// The history rows that are states, and with `as_of` only the latest one
/// per entity on or before the end of that day (ties broken by the history
/// entity's key, highest last).
pub(super) async fn state_rows(
    engine: &Planner,
    id: MetricId,
    history: &HistorySpec,
    as_of: Option<NaiveDate>,
    request: &Resolved,
) -> Result<DataFrame> {
    let catalog = &engine.catalog;
    let at = |path: &[crate::spec::locate::Step]| catalog.metric_at(id, path);
    let (frame, valid_from, predicate, tie) = history_rows(engine, id, history).await?;
    let schema = frame.schema().clone();
    let Some(day) = as_of else {
        return Ok(frame.filter(predicate)?);
    };
    let ty = valid_from.get_type(&schema)?;
    let end = bound(request, &ty, next_day(day)).ok_or_else(|| {
        not_a_time(
            &at(&yaml_path!["history", "valid_from"]),
            &history.valid_from,
            &ty,
        )
    })?;
    // The latest row per entity, as one hash aggregate (see crate::latest):
    // every field is the value of the row with the greatest (valid_from,
    // history key); the entity's key is the group.
    let latest: Vec<Expr> = schema
        .fields()
        .iter()
        .filter(|f| f.name() != &history.key)
        .map(|f| {
            crate::latest::latest_by(col(f.name().as_str()), valid_from.clone(), tie.clone())
                .alias(f.name())
        })
        .collect();
    let columns: Vec<Expr> = schema
        .fields()
        .iter()
        .map(|f| col(f.name().as_str()))
        .collect();
    frame
        .filter(predicate.and(valid_from.lt(end)))?
        .group(vec![col(history.key.as_str())], latest)?
        .project(columns)
}

/// A history's entity rows with what picks its states: the `valid_from`
/// expression, the `filter` (rows that are states; `true` without one) and
/// the tie-break (the history entity's own key: of two rows at one instant
/// the higher is the later).
async fn history_rows(
    engine: &Planner,
    id: MetricId,
    history: &HistorySpec,
) -> Result<(DataFrame, Expr, Expr, Expr)> {
    let catalog = &engine.catalog;
    let at = |path: &[crate::spec::locate::Step]| catalog.metric_at(id, path);
    let (_, _, spec) = catalog.entity(&history.entity).ok_or_else(|| {
        CanonError::definition(
            at(&yaml_path!["history", "entity"]),
            format!("unknown entity `{}`", history.entity),
        )
    })?;
    let frame = entity_frame(engine, &history.entity).await?;
    let schema = frame.schema().clone();
    let valid_from = super::parse_expr(
        engine,
        &history.valid_from,
        &schema,
        &at(&yaml_path!["history", "valid_from"]),
    )?;
    super::parse_expr(
        engine,
        &history.key,
        &schema,
        &at(&yaml_path!["history", "key"]),
    )?;
    let mut predicate = lit(true);
    if let Some(f) = &history.filter {
        predicate = super::parse_expr(engine, f, &schema, &at(&yaml_path!["history", "filter"]))?;
    }
    Ok((frame, valid_from, predicate, col(spec.key.as_str())))
}

/// Every state that holds at one of `days`, with the interval it holds over:
/// `_state_from` (its `valid_from`) and `_state_to`, the `valid_from` of the
/// entity's next state in the order `state_rows` picks the latest by
/// (`valid_from`, then the history key; nulls first), null for the last. The
/// state at day D is then the row with `_state_from < end(D)` and
/// `_state_to` null or `>= end(D)`: exactly the row `state_rows` picks at D
/// (two rows at one instant: the lower key's interval is empty). One sort of
/// the history, however many days; returns the type of `valid_from`.
pub(super) async fn state_intervals(
    engine: &Planner,
    id: MetricId,
    history: &HistorySpec,
    days: &[NaiveDate],
    request: &Resolved,
) -> Result<(DataFrame, DataType)> {
    use datafusion::functions_window::expr_fn::lead;
    use datafusion::logical_expr::ExprFunctionExt;
    let catalog = &engine.catalog;
    let at = |path: &[crate::spec::locate::Step]| catalog.metric_at(id, path);
    let (frame, valid_from, predicate, tie) = history_rows(engine, id, history).await?;
    let schema = frame.schema().clone();
    let ty = valid_from.get_type(&schema)?;
    let bad = || {
        not_a_time(
            &at(&yaml_path!["history", "valid_from"]),
            &history.valid_from,
            &ty,
        )
    };
    let (Some(first), Some(last)) = (days.iter().min(), days.iter().max()) else {
        return Err(CanonError::Internal("a series of no days".into()));
    };
    let first_end = bound(request, &ty, next_day(*first)).ok_or_else(bad)?;
    let last_end = bound(request, &ty, next_day(*last)).ok_or_else(bad)?;
    // Rows from the last day's end on are never a state of the series; left
    // out before the window, the row before them ends open instead of at
    // them, which pairs it with the same days.
    let next = lead(valid_from.clone(), Some(1), None)
        .partition_by(vec![col(history.key.as_str())])
        .order_by(vec![
            valid_from.clone().sort(true, true),
            tie.sort(true, true),
        ])
        .build()?;
    let columns: Vec<Expr> = schema
        .fields()
        .iter()
        .map(|f| col(f.name().as_str()))
        .chain([valid_from.clone().alias(STATE_FROM), col(STATE_TO)])
        .collect();
    let to = col(STATE_TO);
    let states = frame
        .filter(predicate.and(valid_from.clone().lt(last_end)))?
        .window(vec![next.alias(STATE_TO)])?
        // States that ended before the first day's end hold at no day.
        .filter(to.clone().is_null().or(to.gt_eq(first_end)))?
        .project(columns)?;
    Ok((states, ty))
}

/// The metric frame with each entity's state joined under `history.name`;
/// an entity with no state (not yet created at D) drops out.
pub(super) fn join_state(
    engine: &Planner,
    frame: DataFrame,
    states: DataFrame,
    (entity, id): (&str, MetricId),
    history: &HistorySpec,
) -> Result<DataFrame> {
    let (_, _, spec) = engine
        .catalog
        .entity(entity)
        .ok_or_else(|| CanonError::Internal(format!("unknown entity {entity}")))?;
    let key = match &history.on {
        Some(on) => parse_scoped(
            engine,
            on,
            frame.schema(),
            Some(entity),
            &engine.catalog.metric_at(id, &yaml_path!["history", "on"]),
        )?,
        None => Expr::Column(Column::new(Some(entity), &spec.key)),
    };
    let state_key = Expr::Column(Column::new(Some(history.name.as_str()), &history.key));
    Ok(frame.join_on(
        states.alias(&history.name)?,
        JoinType::Inner,
        [key.eq(state_key)],
    )?)
}

/// In force at a day: started before the day ends (`from < from_end`) and,
/// with an end column, not ended by then (missing, or `to >= to_end`).
pub(super) fn in_force(from: &Expr, from_end: Expr, to: Option<(&Expr, Expr)>) -> Expr {
    let started = from.clone().lt(from_end);
    match to {
        Some((to, to_end)) => started.and(to.clone().is_null().or(to.clone().gt_eq(to_end))),
        None => started,
    }
}

/// A snapshot's detail rows at one of its days (a snapshot's `_time` is
/// the day its row is in force at).
pub fn detail_at(detail: DataFrame, day: NaiveDate) -> Result<DataFrame> {
    Ok(detail.filter(col("_time").eq(lit(ScalarValue::Date32(Some(days_since_epoch(day))))))?)
}

/// The columns a state interval adds to its history row: when it starts
/// (the history's `valid_from`) and when the next state starts (null for
/// the latest).
pub(super) const STATE_FROM: &str = "_state_from";
pub(super) const STATE_TO: &str = "_state_to";
