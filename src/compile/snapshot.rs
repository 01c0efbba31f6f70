//! `snapshot` metrics: the state as of a day (the latest row of a history
//! on or before it, or the rows whose validity interval holds it), one
//! window per as-of day; a series of days is one scan whose rows are
//! paired with the positions of the days they hold at, then joined to a
//! small table of the days (`series_table`, `super::instants`). What is a snapshot's own is here:
//! states of a history, their intervals, what is in force at a day. The
//! windows themselves are built by the aggregate compiler in `simple.rs`,
//! which flows and snapshots share.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use datafusion::common::{Column, DFSchema, ScalarValue};
use datafusion::logical_expr::{Expr, ExprSchemable, JoinType, col, lit};
use datafusion::prelude::DataFrame;

use super::bounds::{bound, day_ends, days_since_epoch, next_day, not_a_time};
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

/// One row per as-of day of a series, in ascending order: `_label`,
/// `_day` and `_k`, the day's position (see [`super::instants`]).
pub(super) fn series_table(
    days: &[(String, NaiveDate)],
) -> Result<datafusion::arrow::record_batch::RecordBatch> {
    use datafusion::arrow::array::{ArrayRef, Date32Array, Int64Array, StringArray};
    let columns: Vec<(&str, ArrayRef)> = vec![
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
        (
            SERIES_POSITION,
            std::sync::Arc::new(Int64Array::from_iter_values(0..days.len() as i64)),
        ),
    ];
    Ok(datafusion::arrow::record_batch::RecordBatch::try_from_iter(
        columns,
    )?)
}

/// The column of a series' table that numbers its days.
pub(super) const SERIES_POSITION: &str = "_k";

/// `groups` (grouped by a series' day position in `_period`) with each
/// position replaced by its day's label. A series groups its rows by the
/// day's position, an integer, and labels the groups afterwards: the label
/// is text, and carried through the pairing join and hashed by the
/// aggregate it was copied once per (row, day) pair — 1.26 M times for
/// arr at twelve month ends — for a dozen distinct values.
pub(super) fn labelled_by_position(
    engine: &Planner,
    groups: DataFrame,
    days: &[(String, NaiveDate)],
) -> Result<DataFrame> {
    const GROUPS: &str = "_groups";
    let select: Vec<Expr> = groups
        .schema()
        .fields()
        .iter()
        .map(|f| match f.name().as_str() {
            "_period" => Expr::Column(Column::new(Some(SERIES), "_label")).alias("_period"),
            name => Expr::Column(Column::new(Some(GROUPS), name)).alias(name),
        })
        .collect();
    Ok(engine
        .planning
        .read_batch(series_table(days)?)?
        .alias(SERIES)?
        .join_on(
            groups.alias(GROUPS)?,
            JoinType::Inner,
            [Expr::Column(Column::new(Some(SERIES), SERIES_POSITION))
                .eq(Expr::Column(Column::new(Some(GROUPS), "_period")))],
        )?
        .select(select)?)
}

/// The history rows that are states, and with `as_of` only the latest one
/// per entity on or before the end of that day (ties broken by the history
/// entity's key, highest last), with the entity's key and the `used` fields
/// (every field without `as_of`).
pub(super) async fn state_rows(
    engine: &Planner,
    id: MetricId,
    history: &HistorySpec,
    as_of: Option<NaiveDate>,
    used: &BTreeSet<String>,
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
    // The latest row per entity, as one hash aggregate (see crate::latest).
    latest_rows(
        frame.filter(predicate.and(valid_from.clone().lt(end)))?,
        vec![col(history.key.as_str())],
        &kept(&schema, history, used),
        valid_from,
        tie,
    )
}

/// The fields of a history's rows a metric reads, in the entity's order,
/// without its key (which states are grouped and joined on).
fn kept(schema: &DFSchema, history: &HistorySpec, used: &BTreeSet<String>) -> Vec<String> {
    schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|f| f != &history.key && used.contains(f))
        .collect()
}

/// Per group, the `fields` of its latest row by (`valid_from`, `tie`): one
/// `latest_by` over a struct of the fields, so the rows are compared once
/// and (valid_from, tie) kept once, not once per field (three fields cost
/// three times the comparisons and the memory), then the fields taken back
/// out under their own names. Only the fields a metric reads go into the
/// struct: the engine cannot prune a struct's unused fields, so the others
/// would be read from Parquet for nothing.
fn latest_rows(
    frame: DataFrame,
    group: Vec<Expr>,
    fields: &[String],
    valid_from: Expr,
    tie: Expr,
) -> Result<DataFrame> {
    if fields.is_empty() {
        return Ok(frame.aggregate(group, vec![])?);
    }
    let grouped = frame.aggregate(
        group,
        vec![crate::latest::latest_by(fields_struct(fields), valid_from, tie).alias(LATEST)],
    )?;
    let mut columns: Vec<Expr> = grouped
        .schema()
        .fields()
        .iter()
        .filter(|f| f.name() != LATEST)
        .map(|f| col(f.name().as_str()))
        .collect();
    columns.extend(fields_out_of(col(LATEST), fields));
    grouped.project(columns)
}

/// The struct of a history row's `fields`, picked as one value.
fn fields_struct(fields: &[String]) -> Expr {
    datafusion::functions::core::expr_fn::named_struct(
        fields
            .iter()
            .flat_map(|f| [lit(f.as_str()), col(f.as_str())])
            .collect(),
    )
}

/// The `fields` of a [`fields_struct`] under their own names.
fn fields_out_of(picked: Expr, fields: &[String]) -> impl Iterator<Item = Expr> + '_ {
    fields.iter().map(move |f| {
        datafusion::functions::core::expr_fn::get_field(picked.clone(), f.as_str()).alias(f)
    })
}

/// The struct of a latest row's fields, while it is being picked.
const LATEST: &str = "_latest";

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

/// Every state that holds at one of `days` (ascending), with the positions
/// of the days it holds at (see [`super::instants`]): from `_state_from` up
/// to, not including, `_state_to`. The state at day D is the row
/// `state_rows` picks at D: the latest by (`valid_from`, history key) of
/// the rows before D's end. A row before D's end has a position at most
/// D's; so of each entity's rows with one position only the latest can be
/// a state at any day, and it holds from its position until the entity's
/// next position (the last up to the series' end): one hash aggregate by
/// the entity that keeps those rows and emits them as spans
/// ([`crate::latest_spans`]). Grouped by (entity, position) instead, the
/// next position took a sort and a LEAD window over every group.
pub(super) async fn state_spans(
    engine: &Planner,
    id: MetricId,
    history: &HistorySpec,
    days: &[NaiveDate],
    used: &BTreeSet<String>,
    request: &Resolved,
) -> Result<DataFrame> {
    let catalog = &engine.catalog;
    let at = |path: &[crate::spec::locate::Step]| catalog.metric_at(id, path);
    let (frame, valid_from, predicate, tie) = history_rows(engine, id, history).await?;
    let schema = frame.schema().clone();
    let ty = valid_from.get_type(&schema)?;
    let ends = day_ends(request, &ty, days).ok_or_else(|| {
        not_a_time(
            &at(&yaml_path!["history", "valid_from"]),
            &history.valid_from,
            &ty,
        )
    })?;
    let Some(last_end) = ends.last().cloned() else {
        return Err(CanonError::Internal("a series of no days".into()));
    };
    // Per entity, its states with the run of positions each holds over
    // (crate::latest_spans): one aggregate by the entity, each group's spans
    // unnested into one row each.
    use crate::latest_spans::{FROM, STATE, TO, latest_spans};
    use datafusion::functions::core::expr_fn::{coalesce, get_field};
    let fields = kept(&schema, history, used);
    let value = if fields.is_empty() {
        lit(true)
    } else {
        fields_struct(&fields)
    };
    // Rows from the last day's end on are a state at no day of the series.
    let position = super::instants::position(valid_from.clone(), &ends);
    let span = |part: &str| get_field(col(SPANS), part);
    let mut columns = vec![col(history.key.as_str())];
    columns.extend(fields_out_of(span(STATE), &fields));
    columns.push(span(FROM).alias(STATE_FROM));
    // The last span holds to the series' end.
    columns.push(coalesce(vec![span(TO), lit(ends.len() as i64)]).alias(STATE_TO));
    Ok(frame
        .filter(predicate.and(valid_from.clone().lt(lit(last_end))))?
        .aggregate(
            vec![col(history.key.as_str())],
            vec![latest_spans(position, value, valid_from, tie).alias(SPANS)],
        )?
        .unnest_columns(&[SPANS])?
        .select(columns)?)
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

/// The columns a state span adds to its history row: the position of the
/// first day of a series it is the state at, and of the first it is not.
pub(super) const STATE_FROM: &str = "_state_from";
pub(super) const STATE_TO: &str = "_state_to";
/// An entity's spans, while they are being picked.
const SPANS: &str = "_spans";
