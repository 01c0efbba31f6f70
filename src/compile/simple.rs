//! `simple` metrics: one aggregate over an entity in a period, by grain and
//! slices, with every exclusion measured in the same pass.
//!
//! The plan groups by period, slices and a `_exclusion` label (the first
//! exclusion a row matches, null when it is counted), so one scan yields the
//! number and the tally of every exclusion, and included + Σ excluded equals
//! the universe by construction.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Column, DFSchema, ScalarValue, TableReference};
use datafusion::execution::FunctionRegistry;
use datafusion::functions::expr_fn::coalesce;
use datafusion::functions_aggregate::expr_fn::{count, sum};
use datafusion::logical_expr::{Expr, ExprSchemable, JoinType, cast, lit, when};
use datafusion::prelude::DataFrame;

use super::bounds::{bound, day_ends, days_since_epoch, next_day, not_a_time, period_filter};
use super::currency::{AT_DAY, RateDate, convert, fx_frame};
use super::entity::{link_path, metric_frame, metric_schema};
use super::instants;
use super::plan::FramePlan;
use super::series_ranges::{self, Conversion};
use super::snapshot::{
    SERIES, SERIES_POSITION, STATE_FROM, STATE_TO, in_force, join_state, labelled_by_position,
    series_table, state_rows, state_spans,
};
use super::{Request, Resolved, parse_scoped};
use crate::calendar::Period;
use crate::catalog::MetricId;
use crate::compile::planner::Planner;
use crate::error::{CanonError, Location, Result};
use crate::spec::{Aggregation, MetricKind, MetricSpec};
use crate::yaml_path;

/// A series row's exclusion and slices, worked out before it is paired with
/// its days.
const ROW_EXCLUSION: &str = "_row_exclusion";
const ROW_SLICE: &str = "_row_slice";

pub use super::currency::MONEY_SCALE;

/// A compiled simple metric: the aggregated frame and how to read it.
#[derive(Clone)]
pub struct SimplePlan {
    /// Columns: `_period`, one per requested slice, `_exclusion`, `_rows`,
    /// `_sum`, `_count`, `_missing_rate`.
    pub frame: DataFrame,
    pub slices: Vec<String>,
    pub agg: Aggregation,
    /// (name, reason) in the metric's order.
    pub exclusions: Vec<(String, String)>,
    pub buckets: Vec<Period>,
    /// The same rows before aggregation, one per entity row, for drilling
    /// into a number (the reconciliation's deal detail): `_key` (the
    /// entity's key), `_time`, `_exclusion`, `_value` (converted), `_raw`
    /// (unconverted), `_currency`, `_rate`.
    pub detail: DataFrame,
    /// Whether `frame` also has `_members`, the distinct members of each
    /// group of the tallied period (a snapshot's last day, a flow's only
    /// bucket; 0 in other periods): so a metric with a member and no slice asked counts them in
    /// the run that computes it, instead of running `detail` again (a
    /// second execution of every scan and join: half of arr_monthly's time).
    /// With slices a member may be in several groups, and the counts are
    /// taken from `detail`.
    pub members: bool,
    /// The one day whose exchange rates convert every row, where not each
    /// row's own (a cohort at constant currency: T's): a missing rate is
    /// that day's, which the refusal must name.
    pub rates_on: Option<NaiveDate>,
}

impl SimplePlan {
    /// The same plan with its frames passed through `bind` (the run stage
    /// binds them to its data before running them).
    pub fn bound(self, bind: &dyn Fn(DataFrame) -> DataFrame) -> SimplePlan {
        SimplePlan {
            frame: bind(self.frame),
            detail: bind(self.detail),
            ..self
        }
    }
}

/// The time a group of rows is about: a period (flow metrics, bucketed by
/// grain) or one as-of day (snapshot metrics, one window per day of a series).
#[derive(Debug, Clone)]
enum Window {
    Period,
    AsOf {
        label: String,
        day: NaiveDate,
    },
    /// Several as-of days planned as one scan: the rows in force at any of
    /// the days are read once, each gets the run of days it holds at as
    /// positions (its validity's, and with a history its state's, see
    /// [`state_spans`] and [`instants`]), is unnested into one row per day
    /// and joined to a small table of the days by position. A series of
    /// twelve month-ends, a year of days or a cohort's two instants then
    /// reads and links its sources once, not once per day.
    Series(Vec<(String, NaiveDate)>),
}

/// A series' rows before they are paired with their instants
/// ([`series_ranges`]): filtered, each with its exclusion and slice columns,
/// its run of instants, its measured value and how it converts (none when
/// only the pairing plan can convert it).
struct SeriesRows {
    rows: DataFrame,
    run: (Expr, Expr),
    days: Vec<(String, NaiveDate)>,
    exclusion: Expr,
    slices: Vec<Expr>,
    value: Option<Expr>,
    conversion: Option<Conversion>,
}

/// A flow (`kind: simple`): the rows whose time is in the period.
pub struct Flow;

#[async_trait::async_trait(?Send)]
impl super::kind::Kind for Flow {
    async fn plan(
        &self,
        planner: &Planner,
        id: MetricId,
        request: &Resolved,
    ) -> Result<super::MetricPlan> {
        Ok(super::itself(
            planner,
            id,
            compile(planner, id, request).await?,
        ))
    }

    fn counted_at(&self, _instants: &[NaiveDate]) -> Option<Vec<NaiveDate>> {
        Some(Vec::new())
    }

    fn counts_in_period(&self) -> bool {
        true
    }
}

/// Compiles metric `id` (simple or snapshot) for `request`.
pub async fn compile(engine: &Planner, id: MetricId, request: &Resolved) -> Result<SimplePlan> {
    compile_windows(engine, id, request, None).await
}

/// Compiles snapshot metric `id` at the given (label, day) instants, one
/// `_period` group per instant, instead of the request's as-of days (a
/// cohort's T0 and T).
pub async fn compile_days(
    engine: &Planner,
    id: MetricId,
    request: &Resolved,
    days: Vec<(String, NaiveDate)>,
) -> Result<SimplePlan> {
    compile_windows(engine, id, request, Some(days)).await
}

async fn compile_windows(
    engine: &Planner,
    id: MetricId,
    request: &Resolved,
    days: Option<Vec<(String, NaiveDate)>>,
) -> Result<SimplePlan> {
    let catalog = engine.catalog.clone();
    let metric = &catalog.files.metrics[id.file].spec.metrics[id.index];
    let at = |path: &[crate::spec::locate::Step]| catalog.metric_at(id, path);
    let need = |what: &str| {
        CanonError::definition(
            at(&[]),
            format!("a {} metric needs `{what}`", metric.kind.name()),
        )
    };
    let entity = metric.entity.as_deref().ok_or_else(|| need("entity"))?;
    let measure = metric.measure.as_ref().ok_or_else(|| need("measure"))?;
    let snapshot = metric.kind == MetricKind::Snapshot;
    let windows: Vec<Window> = if snapshot {
        if metric.history.is_none() && metric.valid.is_none() {
            return Err(CanonError::definition(
                at(&[]),
                "a snapshot metric needs `history` (latest row on or before D), `valid` (from <= D < to) or both",
            ));
        }
        let days = days.unwrap_or_else(|| request.as_of_days.clone());
        if days.len() > 1 {
            let mut days = days;
            days.sort_by_key(|(_, d)| *d);
            vec![Window::Series(days)]
        } else {
            days.into_iter()
                .map(|(label, day)| Window::AsOf { label, day })
                .collect()
        }
    } else {
        if request.as_of.is_some() {
            return Err(CanonError::request(format!(
                "`{}` is a flow metric over a period: use --period or --from/--to, not --as-of",
                metric.name
            )));
        }
        vec![Window::Period]
    };
    let state_name = metric.history.as_ref().map(|h| h.name.clone());

    // Every YAML expression of the metric with where it is written.
    let mut sources: Vec<(String, Location)> = Vec::new();
    if let Some(t) = &metric.time {
        sources.push((t.clone(), at(&yaml_path!["time"])));
    } else if !snapshot {
        return Err(need("time"));
    }
    if let Some(v) = &metric.valid {
        sources.push((v.from.clone(), at(&yaml_path!["valid", "from"])));
        if let Some(to) = &v.to {
            sources.push((to.clone(), at(&yaml_path!["valid", "to"])));
        }
    }
    if let Some(f) = &metric.filter {
        sources.push((f.clone(), at(&yaml_path!["filter"])));
    }
    if let Some(m) = &metric.member {
        sources.push((m.clone(), at(&yaml_path!["member"])));
    }
    if let Some(on) = metric.history.as_ref().and_then(|h| h.on.as_ref()) {
        sources.push((on.clone(), at(&yaml_path!["history", "on"])));
    }
    if let Some(e) = &measure.expr {
        sources.push((e.clone(), at(&yaml_path!["measure", "expr"])));
    }
    if let Some(c) = &measure.currency {
        sources.push((
            c.field.clone(),
            at(&yaml_path!["measure", "currency", "field"]),
        ));
        if c.rate_date != AS_OF {
            sources.push((
                c.rate_date.clone(),
                at(&yaml_path!["measure", "currency", "rate_date"]),
            ));
        } else if !snapshot {
            return Err(CanonError::definition(
                at(&yaml_path!["measure", "currency", "rate_date"]),
                "`as_of` names a snapshot's day; a flow metric converts at a date field of its rows",
            ));
        }
    }
    let exclusions = catalog.exclusions_of(id);
    for x in &exclusions {
        sources.push((x.spec.when.clone(), x.when_location.clone()));
    }
    let slices = requested_slices(metric, request, &catalog, id)?;
    // The periods answered: a snapshot's days, a flow's buckets.
    let buckets: Vec<Period> = if snapshot {
        windows
            .iter()
            .flat_map(|w| match w {
                Window::AsOf { label, day } => vec![(label.clone(), *day)],
                Window::Series(days) => days.clone(),
                Window::Period => Vec::new(),
            })
            .map(|(label, day)| Period {
                label,
                from: day,
                to: next_day(day),
            })
            .collect()
    } else {
        request.buckets.clone()
    };
    // The members are tallied for one period: a snapshot's last day (the
    // state its headline is), a flow's only bucket; a flow over several
    // buckets counts them from `detail`, over the whole period. Of a
    // snapshot series only the last day's are counted (a twelve-month arr
    // counted the distinct customers of all twelve, a tenth of its plan's
    // CPU, to read one).
    let members = metric.member.is_some() && slices.is_empty() && (snapshot || buckets.len() == 1);
    let tallied_day = buckets
        .last()
        .filter(|_| snapshot && buckets.len() > 1)
        .map(|b| b.label.clone());
    for (_, sql, loc) in &slices {
        sources.push((sql.clone(), loc.clone()));
    }

    // Parse once against every link to learn which links are used, then
    // build frames with only those.
    let mut full = metric_schema(engine, entity, &all_link_paths(engine, entity)).await?;
    if let Some(h) = &metric.history {
        let states = engine
            .without_noting_links(state_rows(engine, id, h, None, &BTreeSet::new(), request))
            .await;
        let q = TableReference::bare(h.name.as_str());
        let fields = states?
            .schema()
            .fields()
            .iter()
            .map(|f| (Some(q.clone()), f.clone()))
            .collect();
        full.merge(&DFSchema::new_with_metadata(fields, Default::default())?);
    }
    let mut links = BTreeSet::new();
    // The fields of the history's states the metric reads.
    let mut state_fields = BTreeSet::new();
    for (sql, loc) in &sources {
        let expr = parse_scoped(engine, sql, &full, Some(entity), loc)?;
        for c in expr.column_refs() {
            if let Some(path) = c.relation.as_ref().and_then(|r| link_path(r, entity)) {
                if Some(&path[0]) == state_name.as_ref() {
                    state_fields.insert(c.name.clone());
                } else {
                    links.insert(path);
                }
            }
        }
    }

    let mut names = Vec::new();
    let mut parts: Vec<DataFrame> = Vec::new();
    let mut detail_parts: Vec<DataFrame> = Vec::new();
    // Every window's frame has the same schema (a snapshot by month is
    // twelve of them), so each expression is parsed once and reused while
    // the schema stays equal; parsing was a fifth of whole-catalog compile.
    let parsed: std::cell::RefCell<(Option<DFSchema>, std::collections::HashMap<String, Expr>)> =
        Default::default();
    // A series' rows before they are paired with their instants, with
    // their runs and how their values convert, for the ranges plan.
    let mut series: Option<SeriesRows> = None;
    for window in &windows {
        let mut frame = metric_frame(engine, entity, &links).await?;
        // With a history, the state of each row at the day, or for a series
        // every state with the interval it holds over (paired with the days
        // below).
        let mut state_span = None;
        match (&metric.history, window) {
            (Some(h), Window::AsOf { day, .. }) => {
                let states = state_rows(engine, id, h, Some(*day), &state_fields, request).await?;
                frame = join_state(engine, frame, states, (entity, id), h)?;
            }
            (Some(h), Window::Series(days)) => {
                let each: Vec<NaiveDate> = days.iter().map(|(_, d)| *d).collect();
                let states = state_spans(engine, id, h, &each, &state_fields, request).await?;
                frame = join_state(engine, frame, states, (entity, id), h)?;
                state_span = Some(h.name.clone());
            }
            _ => {}
        }
        let schema = frame.schema().clone();
        {
            let mut memo = parsed.borrow_mut();
            if memo.0.as_ref() != Some(&schema) {
                *memo = (Some(schema.clone()), Default::default());
            }
        }
        let p = |sql: &str, loc: &Location| -> Result<Expr> {
            if let Some(e) = parsed.borrow().1.get(sql) {
                return Ok(e.clone());
            }
            let e = parse_scoped(engine, sql, &schema, Some(entity), loc)?;
            parsed.borrow_mut().1.insert(sql.to_string(), e.clone());
            Ok(e)
        };

        // A validity column (`valid.from` or `valid.to`) and, for each day,
        // the bound it is compared with: the start of the next local day.
        let validity =
            |sql: &str, key: &str, days: &[NaiveDate]| -> Result<(Expr, Vec<ScalarValue>)> {
                let loc = at(&yaml_path!["valid", key]);
                let e = p(sql, &loc)?;
                let ty = e.get_type(&schema)?;
                let ends =
                    day_ends(request, &ty, days).ok_or_else(|| not_a_time(&loc, sql, &ty))?;
                Ok((e, ends))
            };
        // The first exclusion a row matches, or null when it is counted.
        names.clear();
        let mut branches = Vec::new();
        for x in &exclusions {
            let test = super::condition(
                p(&x.spec.when, &x.when_location)?,
                &schema,
                &x.spec.when,
                &x.when_location,
            )?;
            branches.push((test, lit(x.spec.name.clone())));
            names.push((x.spec.name.clone(), x.spec.reason.trim().to_string()));
        }
        let mut exclusion =
            super::first_that_holds(branches)?.unwrap_or(lit(ScalarValue::Utf8(None)));

        let mut slice_values = slices
            .iter()
            .map(|(_, sql, loc)| Ok(cast(p(sql, loc)?, DataType::Utf8)))
            .collect::<Result<Vec<Expr>>>()?;

        // Which rows the window holds.
        let (mut predicate, label, time_value) = match window {
            Window::Period => {
                let time_sql = metric.time.as_deref().ok_or_else(|| need("time"))?;
                let time = p(time_sql, &at(&yaml_path!["time"]))?;
                let ty = time.get_type(&schema)?;
                let range = period_filter(request, &time, &ty, &request.period)
                    .ok_or_else(|| not_a_time(&at(&yaml_path!["time"]), time_sql, &ty))?;
                let label = bucket_expr(engine, &time, &ty, request)?;
                (range, label, time)
            }
            Window::AsOf { label, day } => {
                let predicate = match &metric.valid {
                    Some(v) => {
                        let (from, from_end) = validity(&v.from, "from", &[*day])?;
                        let to =
                            v.to.as_deref()
                                .map(|t| validity(t, "to", &[*day]))
                                .transpose()?;
                        in_force(
                            &from,
                            lit(from_end[0].clone()),
                            to.as_ref().map(|(t, end)| (t, lit(end[0].clone()))),
                        )
                    }
                    None => lit(true),
                };
                (
                    predicate,
                    lit(label.clone()),
                    lit(ScalarValue::Date32(Some(days_since_epoch(*day)))),
                )
            }
            Window::Series(days) => {
                let each: Vec<NaiveDate> = days.iter().map(|(_, d)| *d).collect();
                let w = |n: &str| Expr::Column(Column::new(Some(SERIES), n));
                // The run of days each row holds at, as positions [lo, hi)
                // (see super::instants): the latest of the runs' starts
                // and the earliest of their ends.
                let mut lo = lit(0i64);
                let mut hi = lit(days.len() as i64);
                let (later, earlier) = (instants::later, instants::earlier);
                if let Some(v) = &metric.valid {
                    let (from, from_ends) = validity(&v.from, "from", &each)?;
                    let to =
                        v.to.as_deref()
                            .map(|t| validity(t, "to", &each))
                            .transpose()?;
                    // Rows in force at some time between the first day and
                    // the last, as literal bounds on the raw columns (Parquet
                    // statistics prune; the link joins see only these rows).
                    // One pair of bounds, not one per day: an OR of ten
                    // years of days is an expression thousands deep.
                    let last = days.len() - 1;
                    frame = frame.filter(in_force(
                        &from,
                        lit(from_ends[last].clone()),
                        to.as_ref().map(|(t, ends)| (t, lit(ends[0].clone()))),
                    ))?;
                    // In force at day k: `from < end(k)`, and `to` missing
                    // or `>= end(k)`. A null `from` is in force at no day
                    // (its position is null, and so the run's start).
                    lo = later(instants::position(from, &from_ends), lo)?;
                    if let Some((to, to_ends)) = to {
                        // Every position is at most the series' length.
                        hi = coalesce(vec![instants::position(to, &to_ends), hi]);
                    }
                }
                if let Some(name) = state_span.take() {
                    let s = |n: &str| Expr::Column(Column::new(Some(name.as_str()), n));
                    lo = later(lo, s(STATE_FROM))?;
                    hi = earlier(hi, s(STATE_TO))?;
                }
                // The days' table on the left, the join's build side: with
                // one partition DataFusion otherwise built its hash table
                // from the (row, day) pairs (1.8 GB for a daily year at
                // scale 200, past the memory limit).
                // What depends on the row alone (its exclusion, its
                // slices) is worked out once per row, before the row is
                // paired with its days: a twelve-month series pairs each
                // row with five days on average.
                frame = frame.with_column(ROW_EXCLUSION, exclusion)?;
                exclusion = Expr::Column(Column::new_unqualified(ROW_EXCLUSION));
                for (i, value) in slice_values.iter_mut().enumerate() {
                    let name = format!("{ROW_SLICE}{i}");
                    frame = frame.with_column(&name, value.clone())?;
                    *value = Expr::Column(Column::new_unqualified(name));
                }
                series = Some(SeriesRows {
                    rows: frame.clone(),
                    run: (lo.clone(), hi.clone()),
                    days: days.clone(),
                    exclusion: exclusion.clone(),
                    slices: slice_values.clone(),
                    value: None,
                    conversion: None,
                });
                let at_day = Expr::Column(Column::new_unqualified(AT_DAY));
                frame = engine
                    .planning
                    .read_batch(series_table(days)?)?
                    .alias(SERIES)?
                    .join_on(
                        frame
                            .with_column(AT_DAY, instants::span(lo, hi))?
                            .unnest_columns(&[AT_DAY])?,
                        JoinType::Inner,
                        [w(SERIES_POSITION).eq(at_day)],
                    )?;
                // Grouped by the day's position; labelled after the
                // aggregate (`labelled_by_position`).
                (lit(true), w(SERIES_POSITION), w("_day"))
            }
        };
        if let Some(f) = &metric.filter {
            let loc = at(&yaml_path!["filter"]);
            predicate = predicate.and(super::condition(p(f, &loc)?, &schema, f, &loc)?);
        }
        if let Some(s) = series.as_mut() {
            s.rows = s.rows.clone().filter(predicate.clone())?;
        }
        frame = frame.filter(predicate)?;

        // The measured value of each row, converted to the base currency.
        let raw_value = match &measure.expr {
            Some(e) => {
                let loc = at(&yaml_path!["measure", "expr"]);
                summable(p(e, &loc)?, &schema, measure.agg, e, loc)?
            }
            None => lit(1i64),
        };
        let raw_for_detail = raw_value.clone();
        if let Some(s) = series.as_mut() {
            s.value = Some(raw_value.clone());
            if measure.currency.is_none() {
                s.conversion = Some(Conversion::None);
            }
        }
        let member_expr = match &metric.member {
            Some(m) => cast(p(m, &at(&yaml_path!["member"]))?, DataType::Utf8),
            None => lit(ScalarValue::Utf8(None)),
        };
        let mut detail_currency = lit(ScalarValue::Utf8(None));
        let mut detail_rate = lit(ScalarValue::Decimal128(None, 18, 6));
        let (value, missing_rate) = match &measure.currency {
            None => (raw_value, lit(0i64)),
            Some(c) => {
                let currency = p(&c.field, &at(&yaml_path!["measure", "currency", "field"]))?;
                detail_currency = currency.clone();
                detail_rate = Expr::Column(Column::new(Some("_fx"), "rate"));
                let rate_date = match window {
                    Window::AsOf { day, .. } if c.rate_date == AS_OF => {
                        RateDate::Day(lit(ScalarValue::Date32(Some(days_since_epoch(
                            request.rates_as_of.unwrap_or(*day),
                        )))))
                    }
                    Window::Series(days) if c.rate_date == AS_OF => match request.rates_as_of {
                        Some(d) => {
                            RateDate::Day(lit(ScalarValue::Date32(Some(days_since_epoch(d)))))
                        }
                        None => RateDate::SeriesDay(days),
                    },
                    _ => {
                        let e = p(
                            &c.rate_date,
                            &at(&yaml_path!["measure", "currency", "rate_date"]),
                        )?;
                        let ty = e.get_type(&schema)?;
                        RateDate::Day(local_day(engine, e, &ty)?)
                    }
                };
                if let Some(s) = series.as_mut() {
                    s.conversion = match &rate_date {
                        RateDate::Day(day) => Some(Conversion::PerRow {
                            currency: currency.clone(),
                            day: day.clone(),
                        }),
                        RateDate::SeriesDay(_) => {
                            let loc = at(&yaml_path!["measure", "currency"]);
                            match fx_frame(engine, &loc).await? {
                                (fx, true) => Some(Conversion::PerInstant {
                                    currency: currency.clone(),
                                    fx,
                                    base: catalog.files.project.spec.base_currency.clone(),
                                }),
                                // Each instant's own day joins the rates.
                                (_, false) => None,
                            }
                        }
                    };
                }
                let (joined, converted, missing) = convert(
                    engine,
                    frame,
                    raw_value,
                    currency,
                    rate_date,
                    &at(&yaml_path!["measure", "currency"]),
                )
                .await?;
                frame = joined;
                (converted, missing)
            }
        };

        let mut select = vec![label.clone().alias("_period")];
        for ((name, _, _), value) in slices.iter().zip(slice_values) {
            select.push(value.alias(name));
        }
        let (_, _, entity_spec) = catalog
            .entity(entity)
            .ok_or_else(|| CanonError::Internal(format!("unknown entity {entity}")))?;
        detail_parts.push(frame.clone().project(vec![
                cast(
                    Expr::Column(Column::new(Some(entity), &entity_spec.key)),
                    DataType::Utf8,
                )
                .alias("_key"),
                time_value.alias("_time"),
                exclusion.clone().alias("_exclusion"),
                value.clone().alias("_value"),
                raw_for_detail.alias("_raw"),
                detail_currency.alias("_currency"),
                detail_rate.alias("_rate"),
                member_expr.clone().alias("_member"),
            ])?);
        select.push(exclusion.alias("_exclusion"));
        select.push(value.alias("_value"));
        select.push(missing_rate.alias("_missing_rate"));
        if members {
            let member = match &tallied_day {
                Some(day) => when(label.clone().eq(period_key(window, day)?), member_expr)
                    .otherwise(lit(ScalarValue::Utf8(None)))?,
                None => member_expr,
            };
            select.push(member.alias("_member"));
        }
        parts.push(frame.project(select)?);
    }
    let mut detail = detail_parts.remove(0);
    for part in detail_parts {
        detail = detail.union(part)?;
    }

    let mut rows = parts.remove(0);
    for part in parts {
        rows = rows.union(part)?;
    }
    let mut group = vec![Expr::Column(Column::from_name("_period"))];
    for (name, _, _) in &slices {
        group.push(Expr::Column(Column::from_name(name)));
    }
    group.push(Expr::Column(Column::from_name("_exclusion")));
    let value_col = || Expr::Column(Column::from_name("_value"));
    let mut aggregates = vec![
        count(lit(1i64)).alias("_rows"),
        sum(value_col()).alias("_sum"),
        count(value_col()).alias("_count"),
        sum(Expr::Column(Column::from_name("_missing_rate"))).alias("_missing_rate"),
    ];
    if members {
        aggregates.push(
            datafusion::functions_aggregate::expr_fn::count_distinct(Expr::Column(
                Column::from_name("_member"),
            ))
            .alias("_members"),
        );
    }
    let ranges = series.filter(|s| {
        let days: Vec<NaiveDate> = s.days.iter().map(|(_, d)| *d).collect();
        !members && engine.series_plan.ranges_for(&days)
    });
    let frame = match ranges {
        Some(SeriesRows {
            rows: series_rows,
            run,
            days,
            exclusion,
            slices: slice_columns,
            value: Some(value),
            conversion: Some(conversion),
        }) => {
            let named: Vec<(String, Expr)> = slices
                .iter()
                .map(|(n, _, _)| n.clone())
                .zip(slice_columns)
                .collect();
            series_ranges::series_groups(
                engine,
                series_rows,
                run,
                value,
                conversion,
                exclusion,
                &named,
                &days,
                &at(&yaml_path!["measure", "currency"]),
            )
            .await?
        }
        _ => {
            let groups = rows.group(group, aggregates)?;
            match windows.as_slice() {
                [Window::Series(days)] => labelled_by_position(engine, groups, days)?,
                _ => groups,
            }
        }
    };
    Ok(SimplePlan {
        frame,
        slices: slices.into_iter().map(|(n, _, _)| n).collect(),
        agg: measure.agg,
        exclusions: names,
        buckets,
        detail,
        members,
        rates_on: request.rates_as_of,
    })
}

/// What a row's `_period` holds for the period labelled `label` before
/// aggregation: a series' rows hold their day's position (labelled after
/// the aggregate), the other windows the label itself.
fn period_key(window: &Window, label: &str) -> Result<Expr> {
    Ok(match window {
        Window::Series(days) => {
            let position = days.iter().position(|(l, _)| l == label).ok_or_else(|| {
                CanonError::Internal(format!("{label} is not a day of the series"))
            })?;
            lit(position as i64)
        }
        _ => lit(label),
    })
}

/// The measured value of a row as `agg` can sum it. A count counts
/// anything. A sum or average must be of a number (of text or dates it
/// would fail in the engine's planner, unlocated) that is exact (not a
/// float); an integer is summed as a 38-digit decimal, because DataFusion's
/// Int64 sum wraps silently past 9.2 × 10^18 (two rows of 9 × 10^18 summed to
/// a negative number), and the same values as decimals cannot reach 38 digits.
fn summable(
    value: Expr,
    schema: &DFSchema,
    agg: crate::spec::Aggregation,
    sql: &str,
    loc: Location,
) -> Result<Expr> {
    let name = match agg {
        crate::spec::Aggregation::Count => return Ok(value),
        crate::spec::Aggregation::Sum => "sum",
        crate::spec::Aggregation::Avg => "avg",
    };
    let ty = value.get_type(schema)?;
    let refuse = |why: String| Err(CanonError::definition(loc.clone(), why));
    if ty.is_floating() {
        return refuse(format!(
            "`{sql}` is a floating-point number ({ty}): a governed sum or average is exact, so cast it, for example `CAST({sql} AS DECIMAL(18, 2))`"
        ));
    }
    if !(ty.is_numeric() || ty == DataType::Null) {
        return refuse(format!(
            "`{sql}` is not a number (its type is {ty}): `agg: {name}` needs a numeric `measure.expr`"
        ));
    }
    Ok(if ty.is_integer() {
        cast(value, DataType::Decimal128(38, 0))
    } else {
        value
    })
}

/// The rate date keyword of snapshot metrics: convert at the as-of day.
pub const AS_OF: &str = "as_of";

/// Every link path of an entity to the depth expressions may name.
fn all_link_paths(engine: &Planner, entity: &str) -> BTreeSet<super::entity::LinkPath> {
    super::entity::all_link_paths(&engine.catalog, entity)
}

/// The approved slices the request asks for, with their expressions.
pub(crate) fn requested_slices(
    metric: &MetricSpec,
    request: &Request,
    catalog: &crate::catalog::Catalog,
    id: MetricId,
) -> Result<Vec<(String, String, Location)>> {
    request
        .by
        .iter()
        .map(|name| {
            let (i, s) = metric
                .slices
                .iter()
                .enumerate()
                .find(|(_, s)| s.name() == name)
                .ok_or_else(|| {
                    let approved: Vec<&str> = metric.slices.iter().map(|s| s.name()).collect();
                    CanonError::request(format!(
                        "`{name}` is not an approved slice of `{}`; approved: {}",
                        metric.name,
                        if approved.is_empty() {
                            "none".to_string()
                        } else {
                            approved.join(", ")
                        }
                    ))
                })?;
            let path = match s {
                crate::spec::SliceSpec::Field(_) => yaml_path!["slices", i].to_vec(),
                crate::spec::SliceSpec::Named { .. } => yaml_path!["slices", i, "expr"].to_vec(),
            };
            Ok((
                name.clone(),
                s.expr().to_string(),
                catalog.metric_at(id, &path),
            ))
        })
        .collect()
}

/// The period label of each row. By day it is the row's local day as text
/// (`2025-03-14`, the label `Calendar::buckets` gives a day), one cast
/// however many days; by a coarser grain a CASE over the bucket boundaries
/// (exact and DST-proof, since the boundaries were computed in the reporting
/// zone). Rows at or past the period's end get null.
pub(crate) fn bucket_expr(
    engine: &Planner,
    time: &Expr,
    ty: &DataType,
    request: &Resolved,
) -> Result<Expr> {
    let Some(grain) = request.grain else {
        return Ok(lit(request.period.label.clone()));
    };
    let at = |d: NaiveDate| {
        bound(request, ty, d)
            .ok_or_else(|| CanonError::Internal(format!("time of type {ty} reached bucketing")))
    };
    if grain == crate::calendar::Grain::Day {
        let day = cast(local_day(engine, time.clone(), ty)?, DataType::Utf8);
        return Ok(when(time.clone().lt(at(request.period.to)?), day)
            .otherwise(lit(ScalarValue::Utf8(None)))?);
    }
    let branches = request
        .buckets
        .iter()
        .map(|b| Ok((time.clone().lt(at(b.to)?), lit(b.label.clone()))))
        .collect::<Result<Vec<_>>>()?;
    Ok(super::first_that_holds(branches)?.unwrap_or(lit(request.period.label.clone())))
}

/// The local calendar day of a timestamp in the reporting zone (canon's
/// `local_date`, bound to canon.yaml's zone); dates pass through.
pub fn local_day(engine: &Planner, e: Expr, ty: &DataType) -> Result<Expr> {
    match ty {
        DataType::Timestamp(..) => Ok(engine.planning.udf("local_date")?.call(vec![e])),
        _ => Ok(e),
    }
}
