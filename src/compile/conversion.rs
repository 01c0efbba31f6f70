//! `conversion` metrics: members (persons) whose first moment at a stage
//! falls in a period, and whether they reach a later stage within a window.
//!
//! One aggregate per member over the event history gives its first moment
//! at the stage (`min(at) FILTER (WHERE reaches)`) and at the next stage;
//! exclusions are judged per member (an exclusion holds when it holds on
//! every event row of the member, so a person with one deleted duplicate
//! contact still counts). The output has the shape of a simple metric's
//! aggregate, so results, exclusions and ratios read it the same way.
//!
//! When the member and the exclusions are fields of one linked entity and
//! the moments are the event's own (mqls: a person is a contact's, the
//! moments are lifecycle events'), the events are first aggregated per
//! foreign key (an integer contact id) and only those rows are joined and
//! grouped by member: at scale 200 that halves the rows the string-keyed
//! join and person aggregate see (docs/performance.md).

use std::collections::BTreeSet;

use chrono::Days;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Column, ScalarValue};
use datafusion::functions_aggregate::expr_fn::{bool_and, count, min, sum};
use datafusion::logical_expr::{Expr, ExprFunctionExt, ExprSchemable, cast, col, lit, when};

use super::bounds::{bound, not_a_time, period_filter};
use super::entity::{link_path, metric_frame};
use super::plan::FramePlan;
use super::simple::{SimplePlan, bucket_expr};
use super::{Resolved, parse_scoped};
use crate::catalog::MetricId;
use crate::compile::planner::Planner;
use crate::error::{CanonError, Location, Result};
use crate::spec::{Aggregation, ConversionCount};
use crate::yaml_path;

/// A conversion (`kind: conversion`): members counted at their first
/// moment in the period. Its events are not gated (a repeated event cannot
/// count a member twice).
pub struct Conversion;

#[async_trait::async_trait(?Send)]
impl super::kind::Kind for Conversion {
    fn counts_members(&self) -> bool {
        true
    }

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
}

pub async fn compile(engine: &Planner, id: MetricId, request: &Resolved) -> Result<SimplePlan> {
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
    // What each source reads: the event's own fields (`None`) or a link's.
    let mut links = BTreeSet::new();
    let mut reads: Vec<BTreeSet<Option<String>>> = Vec::new();
    for (sql, loc) in &sources {
        let mut read = BTreeSet::new();
        for c in parse_scoped(engine, sql, &full, Some(entity), loc)?.column_refs() {
            match c.relation.as_ref().and_then(|r| link_path(r, entity)) {
                Some(path) => {
                    read.insert(Some(path[0].clone()));
                    links.insert(path);
                }
                None => {
                    read.insert(None);
                }
            }
        }
        reads.push(read);
    }
    // The moments (`at`, `reaches`, `then`) are sources 1.. before the
    // exclusions; the member is source 0.
    let moments = 1..(if window.is_some() { 4 } else { 3 });
    let per_member: BTreeSet<&Option<String>> = reads
        .iter()
        .enumerate()
        .filter(|(i, _)| !moments.contains(i))
        .flat_map(|(_, r)| r.iter())
        .collect();
    let events_read_only_their_own = reads[moments.clone()]
        .iter()
        .all(|r| r.iter().all(Option::is_none));
    let through = match per_member.into_iter().collect::<Vec<_>>().as_slice() {
        [Some(link)] if events_read_only_their_own => Some(link.clone()),
        _ => None,
    };

    let horizon_days = window.as_ref().map_or(0, |(_, d)| u64::from(*d)) + 1;
    let (members, ty, names) = match through {
        Some(link) => {
            // The member and every exclusion are fields of one linked
            // entity (a person is a contact's), and the moments are the
            // event's own: the events are first reduced to one row per
            // foreign key (min moments), and only those rows are joined to
            // the link and grouped by member. min of mins and AND of ANDs
            // are the same numbers as over the event rows, and an
            // exclusion judged on every event row of a member is judged
            // on every contact with an event, as each row carries its
            // contact's fields.
            let fk = &super::entity::find_link(&catalog, entity, &link)?.field;
            let base = super::entity::entity_frame(engine, entity)
                .await?
                .alias(entity)?;
            let schema = base.schema().clone();
            let p = over(engine, &schema, entity);
            let (moment, firsts) = first_moments(spec, &window, &at, p)?;
            let ty = moment.get_type(&schema)?;
            let limit = horizon(request, horizon_days, &ty, spec, &at)?;
            let period_end = horizon(request, 1, &ty, spec, &at)?;
            let mut firsts = firsts;
            firsts.push(min(moment.clone()).alias(SEEN));
            let per_key = base
                .filter(moment.lt(limit))?
                .group(
                    vec![Expr::Column(Column::new(Some(entity), fk)).alias(fk.as_str())],
                    firsts,
                )?
                .alias(entity)?;
            let mut keep = vec![Column::new(Some(entity), "_first")];
            if window.is_some() {
                keep.push(Column::new(Some(entity), "_first_then"));
            }
            let seen = Column::new(Some(entity), SEEN);
            let mut kept = keep.clone();
            kept.push(seen.clone());
            let frame = super::entity::with_links(engine, per_key, entity, kept, &links).await?;
            let schema = frame.schema().clone();
            let p = over(engine, &schema, entity);
            let member = p(&spec.member, &at(&yaml_path!["conversion", "member"]))?;
            let mut aggregates: Vec<Expr> = keep
                .into_iter()
                .map(|c| {
                    let name = c.name.clone();
                    min(Expr::Column(c)).alias(name)
                })
                .collect();
            let names = exclusion_flags(
                &exclusions,
                p,
                Expr::Column(seen).lt(period_end),
                &mut aggregates,
            )?;
            (
                frame.group(vec![member.alias("_member")], aggregates)?,
                ty,
                names,
            )
        }
        None => {
            let frame = metric_frame(engine, entity, &links).await?;
            let schema = frame.schema().clone();
            let p = over(engine, &schema, entity);
            let member = p(&spec.member, &at(&yaml_path!["conversion", "member"]))?;
            let (moment, mut aggregates) = first_moments(spec, &window, &at, p)?;
            let ty = moment.get_type(&schema)?;
            let limit = horizon(request, horizon_days, &ty, spec, &at)?;
            let period_end = horizon(request, 1, &ty, spec, &at)?;
            let events = frame.filter(moment.clone().lt(limit))?;
            let names = exclusion_flags(&exclusions, p, moment.lt(period_end), &mut aggregates)?;
            (
                events.group(vec![member.alias("_member")], aggregates)?,
                ty,
                names,
            )
        }
    };

    let first = col("_first");
    let in_period = period_filter(request, &first, &ty, &request.period)
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
    let label = bucket_expr(engine, &first, &ty, request)?;
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
    let buckets = request.buckets.clone();
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

/// YAML expressions parsed over `schema`, bare names meaning `entity`'s.
fn over<'a>(
    engine: &'a Planner,
    schema: &'a datafusion::common::DFSchema,
    entity: &'a str,
) -> impl Fn(&str, &Location) -> Result<Expr> + Copy + 'a {
    move |sql, loc| parse_scoped(engine, sql, schema, Some(entity), loc)
}

/// The moment expression and the aggregates of each member's
/// (or key's) first moment at the stage and, with a window, at the next.
fn first_moments(
    spec: &crate::spec::ConversionSpec,
    window: &Option<(String, u32)>,
    at: &impl Fn(&[crate::spec::locate::Step]) -> Location,
    p: impl Fn(&str, &Location) -> Result<Expr>,
) -> Result<(Expr, Vec<Expr>)> {
    let moment = p(&spec.at, &at(&yaml_path!["conversion", "at"]))?;
    let reaches = p(&spec.reaches, &at(&yaml_path!["conversion", "reaches"]))?;
    let mut aggregates = vec![min(moment.clone()).filter(reaches).build()?.alias("_first")];
    if let Some((then, _)) = window {
        let then = p(then, &at(&yaml_path!["conversion", "then"]))?;
        aggregates.push(
            min(moment.clone())
                .filter(then)
                .build()?
                .alias("_first_then"),
        );
    }
    Ok((moment, aggregates))
}

/// Events after the period (plus the window) cannot move a first moment
/// into the period: a plain range on the raw column, so it prunes.
fn horizon(
    request: &Resolved,
    days: u64,
    ty: &DataType,
    spec: &crate::spec::ConversionSpec,
    at: &impl Fn(&[crate::spec::locate::Step]) -> Location,
) -> Result<Expr> {
    bound(request, ty, request.period.to + Days::new(days))
        .ok_or_else(|| not_a_time(&at(&yaml_path!["conversion", "at"]), &spec.at, ty))
}

/// One `bool_and` per exclusion (an exclusion holds for a member when it
/// holds on every row of the member `seen` keeps), appended to
/// `aggregates`; returns the exclusions' names and reasons. `seen` keeps
/// the rows (contacts) with an event before the period's end: a
/// conversion reads events up to its window past the period, and a
/// contact first seen there (a non-deleted duplicate created after a
/// deleted one qualified) must not lift an exclusion the period's own
/// count applies. Without it `mqls_converted_90d` counted persons `mqls`
/// excluded, and `mql_to_sql_rate`'s numerator was not a subset of its
/// denominator (3 persons in FY2026-Q3 at scale 200: 0.422335 against the
/// definition's 0.422316; found by the benchmark harness's hand SQL).
fn exclusion_flags(
    exclusions: &[crate::catalog::ResolvedExclusion<'_>],
    p: impl Fn(&str, &Location) -> Result<Expr>,
    seen: Expr,
    aggregates: &mut Vec<Expr>,
) -> Result<Vec<(String, String)>> {
    let mut names = Vec::new();
    for (i, x) in exclusions.iter().enumerate() {
        let w = p(&x.spec.when, &x.when_location)?;
        let holds = datafusion::functions::expr_fn::coalesce(vec![w, lit(false)]);
        aggregates.push(
            bool_and(holds)
                .filter(seen.clone())
                .build()?
                .alias(format!("_x{i}")),
        );
        names.push((x.spec.name.clone(), x.spec.reason.trim().to_string()));
    }
    Ok(names)
}

/// A key's earliest event: whether its contact was seen by the period's end.
const SEEN: &str = "_seen";

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
