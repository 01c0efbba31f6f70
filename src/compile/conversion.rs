//! `conversion` metrics: members (persons) whose first moment at a stage
//! falls in a period, and whether they reach a later stage within a window.
//!
//! One aggregate per member over the event history gives its first moment
//! at the stage (`min(at) FILTER (WHERE reaches)`) and at the next stage;
//! exclusions are judged per member (an exclusion holds when it holds on
//! every event row of the member, so a person with one deleted duplicate
//! contact still counts). The output has the shape of a simple metric's
//! aggregate, so results, exclusions and ratios read it the same way.

use std::collections::BTreeSet;

use chrono::Days;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Column, ScalarValue};
use datafusion::functions_aggregate::expr_fn::{bool_and, count, min, sum};
use datafusion::logical_expr::{Expr, ExprFunctionExt, ExprSchemable, cast, col, lit, when};

use super::entity::{link_path, metric_frame};
use super::plan::FramePlan;
use super::simple::{SimplePlan, bound, bucket_expr, not_a_time, period_filter};
use super::{Request, parse_scoped};
use crate::catalog::MetricId;
use crate::error::{CanonError, Location, Result};
use crate::run::Engine;
use crate::spec::{Aggregation, ConversionCount};
use crate::yaml_path;

pub async fn compile(engine: &Engine, id: MetricId, request: &Request) -> Result<SimplePlan> {
    let catalog = engine.catalog.clone();
    let metric = &catalog.files.metrics[id.file].spec.metrics[id.index];
    let at = |p: &[crate::spec::locate::Step]| catalog.metric_at(id, p);
    let need =
        |what: &str| CanonError::definition(at(&[]), format!("a conversion metric needs `{what}`"));
    let entity = metric.entity.as_deref().ok_or_else(|| need("entity"))?;
    let spec = metric
        .conversion
        .as_ref()
        .ok_or_else(|| need("conversion"))?;
    if request.as_of.is_some() {
        return Err(CanonError::request(format!(
            "`{}` counts members over a period: use --period or --from/--to, not --as-of",
            metric.name
        )));
    }
    if !request.by.is_empty() {
        return Err(CanonError::request(format!(
            "`{}` has no approved slices",
            metric.name
        )));
    }
    let window = match (spec.count, &spec.then, spec.within_days) {
        (ConversionCount::Reached, _, _) => None,
        (ConversionCount::Converted, Some(then), Some(days)) => Some((then.clone(), days)),
        (ConversionCount::Converted, _, _) => {
            return Err(need("conversion.then and conversion.within_days"));
        }
    };

    let exclusions = catalog.exclusions_of(id);
    let mut sources: Vec<(String, Location)> = vec![
        (spec.member.clone(), at(&yaml_path!["conversion", "member"])),
        (spec.at.clone(), at(&yaml_path!["conversion", "at"])),
        (
            spec.reaches.clone(),
            at(&yaml_path!["conversion", "reaches"]),
        ),
    ];
    if let Some((then, _)) = &window {
        sources.push((then.clone(), at(&yaml_path!["conversion", "then"])));
    }
    for x in &exclusions {
        sources.push((x.spec.when.clone(), x.when_location.clone()));
    }
    let full = super::entity::metric_schema(
        engine,
        entity,
        &super::entity::all_link_paths(&catalog, entity),
    )
    .await?;
    let mut links = BTreeSet::new();
    for (sql, loc) in &sources {
        for c in parse_scoped(engine, sql, &full, Some(entity), loc)?.column_refs() {
            if let Some(path) = c.relation.as_ref().and_then(|r| link_path(r, entity)) {
                links.insert(path);
            }
        }
    }
    let frame = metric_frame(engine, entity, &links).await?;
    let schema = frame.schema().clone();
    let p = |sql: &str, loc: &Location| parse_scoped(engine, sql, &schema, Some(entity), loc);
    let member = p(&spec.member, &at(&yaml_path!["conversion", "member"]))?;
    let moment = p(&spec.at, &at(&yaml_path!["conversion", "at"]))?;
    let ty = moment.get_type(&schema)?;
    let reaches = p(&spec.reaches, &at(&yaml_path!["conversion", "reaches"]))?;

    // Events after the period (plus the window) cannot move a first moment
    // into the period: a plain range on the raw column, so it prunes.
    let horizon =
        request.period.to + Days::new(window.as_ref().map_or(0, |(_, d)| u64::from(*d)) + 1);
    let limit = bound(&catalog.calendar, &ty, horizon)
        .ok_or_else(|| not_a_time(&at(&yaml_path!["conversion", "at"]), &spec.at, &ty))?;
    let events = frame.filter(moment.clone().lt(limit))?;

    let mut aggregates = vec![min(moment.clone()).filter(reaches).build()?.alias("_first")];
    if let Some((then, _)) = &window {
        let then = p(then, &at(&yaml_path!["conversion", "then"]))?;
        aggregates.push(
            min(moment.clone())
                .filter(then)
                .build()?
                .alias("_first_then"),
        );
    }
    let mut names = Vec::new();
    for (i, x) in exclusions.iter().enumerate() {
        let w = p(&x.spec.when, &x.when_location)?;
        let holds = datafusion::functions::expr_fn::coalesce(vec![w, lit(false)]);
        aggregates.push(bool_and(holds).alias(format!("_x{i}")));
        names.push((x.spec.name.clone(), x.spec.reason.trim().to_string()));
    }
    let members = events.group(vec![member.alias("_member")], aggregates)?;

    let first = col("_first");
    let in_period = period_filter(&catalog.calendar, &first, &ty, &request.period)
        .ok_or_else(|| not_a_time(&at(&yaml_path!["conversion", "at"]), &spec.at, &ty))?;
    let members = members.filter(in_period)?;
    let exclusion = if exclusions.is_empty() {
        lit(ScalarValue::Utf8(None))
    } else {
        let mut case: Option<datafusion::logical_expr::conditional_expressions::CaseBuilder> = None;
        for (i, x) in exclusions.iter().enumerate() {
            let label = lit(x.spec.name.clone());
            let w = col(format!("_x{i}").as_str());
            case = Some(match case {
                None => when(w, label),
                Some(mut c) => c.when(w, label),
            });
        }
        let mut case = case.expect("at least one exclusion");
        case.otherwise(lit(ScalarValue::Utf8(None)))?
    };
    let value = match &window {
        None => lit(1i64),
        Some((_, days)) => {
            // Within `days` days (inclusive) after the first moment.
            let within = col("_first_then")
                .gt_eq(first.clone())
                .and(col("_first_then").lt_eq(first.clone() + window_interval(&ty, *days)));
            cast(
                when(within, lit(1i64)).otherwise(lit(0i64))?,
                DataType::Int64,
            )
        }
    };
    let label = bucket_expr(&catalog.calendar, &first, &ty, request)?;
    let members = members.project(vec![
        col("_member"),
        first.clone(),
        exclusion.alias("_exclusion"),
        value.alias("_value"),
        label.alias("_period"),
    ])?;
    let rows = members.clone().project(vec![
        col("_period"),
        col("_exclusion"),
        col("_value"),
        lit(0i64).alias("_missing_rate"),
    ])?;
    let value_col = || Expr::Column(Column::from_name("_value"));
    let frame = rows.group(
        vec![col("_period"), col("_exclusion")],
        vec![
            count(lit(1i64)).alias("_rows"),
            sum(value_col()).alias("_sum"),
            count(value_col()).alias("_count"),
            sum(col("_missing_rate")).alias("_missing_rate"),
        ],
    )?;
    let buckets = match request.grain {
        Some(g) => catalog.calendar.buckets(&request.period, g),
        None => vec![request.period.clone()],
    };
    let detail = members.project(vec![
        cast(col("_member"), DataType::Utf8).alias("_member"),
        cast(col("_member"), DataType::Utf8).alias("_key"),
        first.clone().alias("_time"),
        col("_exclusion"),
        col("_value"),
    ])?;
    Ok(SimplePlan {
        detail,
        frame,
        slices: Vec::new(),
        agg: Aggregation::Sum,
        exclusions: names,
        buckets,
    })
}

/// `days` days as an interval to add to a moment of type `ty`.
fn window_interval(ty: &DataType, days: u32) -> Expr {
    match ty {
        DataType::Date32 => lit(ScalarValue::IntervalDayTime(Some(
            datafusion::arrow::datatypes::IntervalDayTime::new(days as i32, 0),
        ))),
        _ => lit(ScalarValue::IntervalMonthDayNano(Some(
            datafusion::arrow::datatypes::IntervalMonthDayNano::new(0, days as i32, 0),
        ))),
    }
}
