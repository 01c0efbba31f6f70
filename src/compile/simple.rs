//! `simple` metrics: one aggregate over an entity in a period, by grain and
//! slices, with every exclusion measured in the same pass.
//!
//! The plan groups by period, slices and a `_exclusion` label (the first
//! exclusion a row matches, null when it is counted), so one scan yields the
//! number and the tally of every exclusion, and included + Σ excluded equals
//! the universe by construction.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{Column, ScalarValue};
use datafusion::execution::FunctionRegistry;
use datafusion::functions::expr_fn::round;
use datafusion::functions_aggregate::expr_fn::{count, sum};
use datafusion::logical_expr::{Expr, ExprSchemable, JoinType, cast, lit, when};
use datafusion::prelude::DataFrame;

use super::entity::{entity_frame, full_schema, link_path, metric_frame};
use super::{Request, parse_scoped};
use crate::calendar::{Calendar, Period};
use crate::catalog::MetricId;
use crate::error::{CanonError, Location, Result};
use crate::run::Engine;
use crate::spec::{Aggregation, MetricSpec};
use crate::yaml_path;

/// Scale at which converted money is kept: cents.
pub const MONEY_SCALE: i8 = 2;

/// A compiled simple metric: the aggregated frame and how to read it.
pub struct SimplePlan {
    /// Columns: `_period`, one per requested slice, `_exclusion`, `_rows`,
    /// `_sum`, `_count`, `_missing_rate`.
    pub frame: DataFrame,
    pub slices: Vec<String>,
    pub agg: Aggregation,
    /// (name, reason) in the metric's order.
    pub exclusions: Vec<(String, String)>,
    pub buckets: Vec<Period>,
}

/// Compiles metric `id` for `request`.
pub async fn compile(engine: &Engine, id: MetricId, request: &Request) -> Result<SimplePlan> {
    let catalog = engine.catalog.clone();
    let (_, _, metric) =
        catalog.metric(&catalog.files.metrics[id.file].spec.metrics[id.index].name)?;
    let at = |path: Vec<crate::spec::locate::Step>| catalog.metric_at(id, &path);
    let entity = metric
        .entity
        .as_deref()
        .ok_or_else(|| CanonError::definition(at(vec![]), "a simple metric needs `entity`"))?;
    let measure = metric
        .measure
        .as_ref()
        .ok_or_else(|| CanonError::definition(at(vec![]), "a simple metric needs `measure`"))?;
    let time_sql = metric
        .time
        .as_deref()
        .ok_or_else(|| CanonError::definition(at(vec![]), "a simple metric needs `time`"))?;

    // Every YAML expression of the metric with where it is written.
    let mut sources: Vec<(String, Location)> = vec![(time_sql.to_string(), at(yaml_path!["time"]))];
    if let Some(f) = &metric.filter {
        sources.push((f.clone(), at(yaml_path!["filter"])));
    }
    if let Some(e) = &measure.expr {
        sources.push((e.clone(), at(yaml_path!["measure", "expr"])));
    }
    if let Some(c) = &measure.currency {
        sources.push((
            c.field.clone(),
            at(yaml_path!["measure", "currency", "field"]),
        ));
        sources.push((
            c.rate_date.clone(),
            at(yaml_path!["measure", "currency", "rate_date"]),
        ));
    }
    let exclusions = catalog.exclusions_of(id);
    for x in &exclusions {
        sources.push((x.spec.when.clone(), x.when_location.clone()));
    }
    let slices = requested_slices(metric, request, &catalog, id)?;
    for (_, sql, loc) in &slices {
        sources.push((sql.clone(), loc.clone()));
    }

    // Parse once against every link to learn which links are used, then
    // build the frame with only those.
    let full = full_schema(engine, entity).await?;
    let mut links = BTreeSet::new();
    for (sql, loc) in &sources {
        let expr = parse_scoped(engine, sql, &full, Some(entity), loc)?;
        for c in expr.column_refs() {
            if let Some(path) = c.relation.as_ref().and_then(|r| link_path(r, entity)) {
                links.insert(path);
            }
        }
    }
    let frame = metric_frame(engine, entity, &links).await?;
    let schema = frame.schema().clone();
    let p = |sql: &str, loc: &Location| parse_scoped(engine, sql, &schema, Some(entity), loc);

    let time = p(time_sql, &at(yaml_path!["time"]))?;
    let time_type = time.get_type(&schema)?;
    let mut predicate = period_filter(&catalog.calendar, &time, &time_type, &request.period)
        .ok_or_else(|| {
            CanonError::definition(
                at(yaml_path!["time"]),
                format!(
                    "`{time_sql}` is {time_type}; a metric's time must be a date or a timestamp"
                ),
            )
        })?;
    if let Some(f) = &metric.filter {
        let filter = p(f, &at(yaml_path!["filter"]))?;
        predicate = predicate.and(filter);
    }
    let mut frame = frame.filter(predicate)?;

    // The measured value of each row, converted to the base currency.
    let raw_value = match &measure.expr {
        Some(e) => p(e, &at(yaml_path!["measure", "expr"]))?,
        None => lit(1i64),
    };
    let base_currency = catalog.files.project.spec.base_currency.clone();
    let (value, missing_rate) = match &measure.currency {
        None => (raw_value, lit(0i64)),
        Some(c) => {
            let currency = p(&c.field, &at(yaml_path!["measure", "currency", "field"]))?;
            let rate_date = p(
                &c.rate_date,
                &at(yaml_path!["measure", "currency", "rate_date"]),
            )?;
            let rate_date = local_day(engine, rate_date.clone(), &rate_date.get_type(&schema)?)?;
            let fx = entity_frame(engine, "fx_rate").await.map_err(|e| match e {
                CanonError::Request(_) => CanonError::definition(
                    at(yaml_path!["measure", "currency"]),
                    "currency conversion needs an `fx_rate` entity (fields currency, rate, valid_from, valid_to) in models/",
                ),
                other => other,
            })?;
            let fx_col = |n: &str| Expr::Column(Column::new(Some("_fx"), n));
            frame = frame.join_on(
                fx.alias("_fx")?,
                JoinType::Left,
                [
                    currency.clone().eq(fx_col("currency")),
                    fx_col("valid_from").lt_eq(rate_date.clone()),
                    rate_date.lt(fx_col("valid_to")),
                ],
            )?;
            let is_base = currency.clone().eq(lit(base_currency.clone()));
            let converted =
                when(is_base.clone(), money(raw_value.clone())).otherwise(money(round(vec![
                    raw_value.clone() / fx_col("rate"),
                    lit(i64::from(MONEY_SCALE)),
                ])))?;
            let missing = when(
                raw_value
                    .is_not_null()
                    .and(!is_base)
                    .and(fx_col("rate").is_null()),
                lit(1i64),
            )
            .otherwise(lit(0i64))?;
            (converted, missing)
        }
    };

    // The first exclusion a row matches, or null when it is counted.
    let mut names = Vec::new();
    let exclusion = if exclusions.is_empty() {
        lit(ScalarValue::Utf8(None))
    } else {
        let mut case: Option<datafusion::logical_expr::conditional_expressions::CaseBuilder> = None;
        for x in &exclusions {
            let w = p(&x.spec.when, &x.when_location)?;
            let label = lit(x.spec.name.clone());
            case = Some(match case {
                None => when(w, label),
                Some(mut c) => c.when(w, label),
            });
            names.push((x.spec.name.clone(), x.spec.reason.trim().to_string()));
        }
        let mut case = case.expect("at least one exclusion");
        case.otherwise(lit(ScalarValue::Utf8(None)))?
    };

    let period = bucket_expr(&catalog.calendar, &time, &time_type, request)?;
    let mut select = vec![period.alias("_period")];
    let mut group = vec![Expr::Column(Column::from_name("_period"))];
    for (name, sql, loc) in &slices {
        select.push(cast(p(sql, loc)?, DataType::Utf8).alias(name));
        group.push(Expr::Column(Column::from_name(name)));
    }
    select.push(exclusion.alias("_exclusion"));
    select.push(value.alias("_value"));
    select.push(missing_rate.alias("_missing_rate"));
    group.push(Expr::Column(Column::from_name("_exclusion")));

    let value_col = || Expr::Column(Column::from_name("_value"));
    let frame = frame.select(select)?.aggregate(
        group,
        vec![
            count(lit(1i64)).alias("_rows"),
            sum(value_col()).alias("_sum"),
            count(value_col()).alias("_count"),
            sum(Expr::Column(Column::from_name("_missing_rate"))).alias("_missing_rate"),
        ],
    )?;
    let buckets = match request.grain {
        Some(g) => catalog.calendar.buckets(&request.period, g),
        None => vec![request.period.clone()],
    };
    Ok(SimplePlan {
        frame,
        slices: slices.into_iter().map(|(n, _, _)| n).collect(),
        agg: measure.agg,
        exclusions: names,
        buckets,
    })
}

/// The approved slices the request asks for, with their expressions.
fn requested_slices(
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
                crate::spec::SliceSpec::Field(_) => yaml_path!["slices", i],
                crate::spec::SliceSpec::Named { .. } => yaml_path!["slices", i, "expr"],
            };
            Ok((
                name.clone(),
                s.expr().to_string(),
                catalog.metric_at(id, &path),
            ))
        })
        .collect()
}

/// Money kept at cents in a type wide enough for any sum.
fn money(e: Expr) -> Expr {
    cast(e, DataType::Decimal128(38, MONEY_SCALE))
}

/// `[from, to)` on the raw column: dates compared as dates, timestamps with
/// the instants at which the local days start, so Parquet statistics prune.
fn period_filter(cal: &Calendar, time: &Expr, ty: &DataType, period: &Period) -> Option<Expr> {
    let from = bound(cal, ty, period.from)?;
    let to = bound(cal, ty, period.to)?;
    Some(time.clone().gt_eq(from).and(time.clone().lt(to)))
}

/// The literal a time column is compared with at the start of local day `d`.
fn bound(cal: &Calendar, ty: &DataType, d: NaiveDate) -> Option<Expr> {
    match ty {
        DataType::Date32 => Some(lit(ScalarValue::Date32(Some(days_since_epoch(d))))),
        DataType::Timestamp(TimeUnit::Microsecond, tz) => Some(lit(
            ScalarValue::TimestampMicrosecond(Some(cal.day_start_utc_micros(d)), tz.clone()),
        )),
        _ => None,
    }
}

pub fn days_since_epoch(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32
}

/// The period label of each row: a CASE over the bucket boundaries (exact
/// and DST-proof, since the boundaries were computed in the reporting zone).
fn bucket_expr(cal: &Calendar, time: &Expr, ty: &DataType, request: &Request) -> Result<Expr> {
    let Some(grain) = request.grain else {
        return Ok(lit(request.period.label.clone()));
    };
    let buckets = cal.buckets(&request.period, grain);
    let mut case: Option<datafusion::logical_expr::conditional_expressions::CaseBuilder> = None;
    for b in &buckets {
        let upper = bound(cal, ty, b.to)
            .ok_or_else(|| CanonError::Internal(format!("time of type {ty} reached bucketing")))?;
        let cond = time.clone().lt(upper);
        let label = lit(b.label.clone());
        case = Some(match case {
            None => when(cond, label),
            Some(mut c) => c.when(cond, label),
        });
    }
    match case {
        Some(mut c) => Ok(c.otherwise(lit(ScalarValue::Utf8(None)))?),
        None => Ok(lit(request.period.label.clone())),
    }
}

/// The local calendar day of a timestamp in the reporting zone (canon's
/// `local_date`, bound to canon.yaml's zone); dates pass through.
pub fn local_day(engine: &Engine, e: Expr, ty: &DataType) -> Result<Expr> {
    match ty {
        DataType::Timestamp(..) => Ok(engine.ctx.udf("local_date")?.call(vec![e])),
        _ => Ok(e),
    }
}
