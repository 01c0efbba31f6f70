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
use datafusion::functions_aggregate::expr_fn::{count, min, sum};
use datafusion::logical_expr::{Expr, ExprFunctionExt, ExprSchemable, cast, col, lit, when};

use super::bounds::{bound, not_a_time, period_filter};
use super::entity::{link_path, metric_frame};
use super::plan::FramePlan;
use super::simple::{SimplePlan, bucket_expr};
use super::{Resolved, parse_scoped};
use crate::catalog::MetricId;
use crate::compile::planner::Planner;
use crate::error::{CanonError, Location, Result};
use crate::spec::{Aggregation, ConversionCount, NO_MEMBER};
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
    // The linked entity's frame qualifies its own fields by its name and its
    // links' by theirs: a link of it named like it would be read ambiguously,
    // so such a definition takes the general path.
    let through = through.filter(|link| {
        super::entity::find_link(&catalog, entity, link)
            .is_ok_and(|l| !links.iter().any(|p| p.len() > 1 && p[1] == l.entity))
    });

    // Events read: those before the period's end (a first moment after it
    // is not in the period, and the exclusions are judged on the contacts
    // seen by the member's first moment); with a window, up to the window
    // past it, plus a day,
    // so a moment 90 × 24 hours after one just before the end is read even
    // when a daylight-saving change shortens the local days between.
    let horizon_days = window.as_ref().map_or(0, |(_, d)| u64::from(*d) + 1);
    let (members, ty, names) = match through {
        Some(link) => {
            // The member and every exclusion are fields of one linked
            // entity (a person is a contact's), and the moments are the
            // event's own: the events are first reduced to one row per
            // foreign key (min moments), the member and each exclusion's
            // test are worked out on the linked entity's rows, and only
            // those (key, member, flags) are joined to the reduced events
            // and grouped by member. min of mins and AND of ANDs are the
            // same numbers as over the event rows, and an exclusion judged
            // on every event row of a member is judged on every contact
            // with an event, as each row carries its contact's fields.
            // Testing before the join keeps the join's build side to a key,
            // a member and a flag per exclusion: with the contact's fields
            // it held 868 MB at scale 200 and made both aggregates spill.
            let link_spec = super::entity::find_link(&catalog, entity, &link)?;
            let fk = &link_spec.field;
            let base = super::entity::entity_frame(engine, entity)
                .await?
                .alias(entity)?;
            let schema = base.schema().clone();
            let p = over(engine, &schema, entity);
            let (moment, firsts) = first_moments(spec, &window, &at, p)?;
            let ty = moment.get_type(&schema)?;
            let limit = horizon(request, horizon_days, &ty, spec, &at)?;
            let mut firsts = firsts;
            firsts.push(min(moment.clone()).alias(SEEN));
            let per_key = base
                .filter(moment.lt(limit))?
                .group(
                    vec![Expr::Column(Column::new(Some(entity), fk)).alias(fk.as_str())],
                    firsts,
                )?
                .alias(entity)?;

            let target = link_spec.entity.as_str();
            let beyond: BTreeSet<super::entity::LinkPath> = links
                .iter()
                .filter(|p| p.len() > 1)
                .map(|p| p[1..].to_vec())
                .collect();
            let linked = metric_frame(engine, target, &beyond).await?;
            let onto = |sql: &str, loc: &Location| -> Result<(Expr, Expr)> {
                let e = parse_scoped(engine, sql, &full, Some(entity), loc)?;
                Ok((
                    onto_linked(e.clone(), entity, target)?,
                    over_nulls(e, &full)?,
                ))
            };
            let (member, member_unmatched) =
                onto(&spec.member, &at(&yaml_path!["conversion", "member"]))?;
            let (_, _, target_spec) = catalog
                .entity(target)
                .ok_or_else(|| CanonError::Internal(format!("unknown entity {target}")))?;
            // A text member is copied out of the views it was computed as:
            // a view keeps the whole buffer it points into (the lower-cased
            // emails) alive in the join's build side, which held 705 MB
            // for 254 MB of members at scale 200.
            let member_type = match member.get_type(linked.schema())? {
                DataType::Utf8View => DataType::Utf8,
                other => other,
            };
            let mut tested = vec![
                Expr::Column(Column::new(Some(target), &target_spec.key)).alias(LINKED_KEY),
                cast(member, member_type.clone()).alias("_member"),
            ];
            let mut unmatched = Vec::new();
            for (i, x) in exclusions.iter().enumerate() {
                let (w, w_unmatched) = onto(&x.spec.when, &x.when_location)?;
                tested.push(holds(w).alias(format!("_h{i}")));
                unmatched.push(holds(w_unmatched));
            }
            engine.note_link(entity, &link);
            let frame = super::entity::join_resolved(
                engine,
                per_key,
                datafusion::common::TableReference::bare(entity),
                link_spec,
                (linked.project(tested)?.into_unoptimized_plan(), LINKED_KEY),
                datafusion::common::TableReference::bare(LINKED),
                std::slice::from_ref(&link),
            )
            .await?;
            let linked_col = |name: &str| Expr::Column(Column::new(Some(LINKED), name));
            // A key with no linked row (an unknown contact) has every linked
            // field null: its member and tests are the expressions over nulls.
            let member = match folded(engine, member_unmatched)? {
                Expr::Literal(v, _) if v.is_null() => linked_col("_member"),
                other => when(linked_col(LINKED_KEY).is_null(), cast(other, member_type))
                    .otherwise(linked_col("_member"))?,
            };
            let mut aggregates = vec![min(col_of(entity, "_first")).alias("_first")];
            if window.is_some() {
                aggregates.push(min(col_of(entity, "_first_then")).alias("_first_then"));
            }
            let names = exclusion_flags(
                &exclusions,
                |i, _| {
                    let h = linked_col(&format!("_h{i}"));
                    Ok(datafusion::functions::expr_fn::coalesce(vec![
                        h,
                        unmatched[i].clone(),
                    ]))
                },
                col_of(entity, SEEN),
                &mut aggregates,
            )?;
            // An unknown contact is kept apart by the contact it resolves
            // to: two merged into one that has no row are one unknown
            // contact, tallied once (by the recorded ids they were two).
            let survivor = Column::new(Some(format!("_{link}_merge")), "survivor");
            let apart = if frame.schema().has_column(&survivor) {
                datafusion::functions::expr_fn::coalesce(vec![
                    cast(Expr::Column(survivor), DataType::Utf8),
                    cast(col_of(entity, fk), DataType::Utf8),
                ])
            } else {
                col_of(entity, fk)
            };
            (
                frame.group(
                    vec![nobody_apart(&member, apart)?, member.alias("_member")],
                    aggregates,
                )?,
                ty,
                names,
            )
        }
        None => {
            let (_, _, event_spec) = catalog
                .entity(entity)
                .ok_or_else(|| CanonError::Internal(format!("unknown entity {entity}")))?;
            let event_key = event_spec.key.clone();
            let frame = metric_frame(engine, entity, &links).await?;
            let schema = frame.schema().clone();
            let p = over(engine, &schema, entity);
            let member = p(&spec.member, &at(&yaml_path!["conversion", "member"]))?;
            let (moment, mut aggregates) = first_moments(spec, &window, &at, p)?;
            let ty = moment.get_type(&schema)?;
            let limit = horizon(request, horizon_days, &ty, spec, &at)?;
            let events = frame.filter(moment.clone().lt(limit))?;
            let names = exclusion_flags(
                &exclusions,
                |_, x| Ok(holds(p(&x.spec.when, &x.when_location)?)),
                moment.clone(),
                &mut aggregates,
            )?;
            (
                events.group(
                    vec![
                        nobody_apart(&member, col_of(entity, &event_key))?,
                        member.alias("_member"),
                    ],
                    aggregates,
                )?,
                ty,
                names,
            )
        }
    };

    let first = col("_first");
    let in_period = period_filter(request, &first, &ty, &request.period)
        .ok_or_else(|| not_a_time(&at(&yaml_path!["conversion", "at"]), &spec.at, &ty))?;
    let members = members.filter(in_period)?;
    // The declared exclusions in order, then a member that is null: events
    // no exclusion removed and that belong to nobody. Grouped, they would
    // be one member counted; labelled, the run stage blocks the result
    // (query::simple_run) so the definition says what they are.
    let branches = exclusions
        .iter()
        .enumerate()
        .map(|(i, x)| (excluded(i, &first), lit(x.spec.name.as_str())))
        .chain([(col("_member").is_null(), lit(NO_MEMBER))]);
    let exclusion = super::first_that_holds(branches)?
        .ok_or_else(|| CanonError::Internal("no exclusion branch".into()))?;
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
        // A conversion's groups are its members: counted from its rows.
        members: false,
        rates_on: None,
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

/// The start of the local day `days` after the period's exclusive end
/// (0: the end itself). Events after the period (plus the window) cannot
/// move a first moment into the period: a plain range on the raw column,
/// so it prunes.
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

/// A second grouping key that keeps the events of no member apart, one group
/// per `apart` value (the contact an event names, or the event itself):
/// null for every event of a member. Grouped by the null member alone, all
/// of them were one group with one first moment, the earliest, so an
/// unknown contact first qualifying in June was in no period's tally (nor
/// was the result blocked in June: see query::simple_run).
fn nobody_apart(member: &Expr, apart: Expr) -> Result<Expr> {
    Ok(when(member.clone().is_null(), cast(apart, DataType::Utf8))
        .otherwise(lit(ScalarValue::Utf8(None)))?
        .alias("_nobody"))
}

/// One aggregate per exclusion, appended to `aggregates`: `_l{i}`, when a
/// row (contact) the exclusion does not hold for was first `seen` (the
/// event's moment, or the reduced key's earliest); [`excluded`] compares it
/// with the member's first moment. Returns the exclusions' names and
/// reasons. A conversion reads events up to its window past the period,
/// and a contact first seen there (a non-deleted duplicate created after a
/// deleted one qualified) must not lift an exclusion the period's own count
/// applies: without that `mqls_converted_90d` counted persons `mqls`
/// excluded (3 persons in FY2026-Q3 at scale 200; found by the benchmark
/// harness's hand SQL). Judged at the member's first moment, no row read
/// past it counts, whatever the horizon: until 2026-12-07 the rows counted
/// were those before the end of the period asked for, so a month and the
/// quarter holding it judged one person differently (a spec audit).
fn exclusion_flags(
    exclusions: &[crate::catalog::ResolvedExclusion<'_>],
    holds: impl Fn(usize, &crate::catalog::ResolvedExclusion<'_>) -> Result<Expr>,
    seen: Expr,
    aggregates: &mut Vec<Expr>,
) -> Result<Vec<(String, String)>> {
    let mut names = Vec::new();
    for (i, x) in exclusions.iter().enumerate() {
        // When a contact the exclusion does not hold for was first seen.
        let lifted = min(seen.clone()).filter(!holds(i, x)?).build()?;
        aggregates.push(lifted.alias(format!("_l{i}")));
        names.push((x.spec.name.clone(), x.spec.reason.trim().to_string()));
    }
    Ok(names)
}

/// Whether exclusion `i` holds for a member: for every one of its contacts
/// (rows) seen at or before its first moment `first`, that is, no contact
/// it does not hold for was seen by then. Judged at the member's own first
/// moment, not at the end of the period asked for: judged there, a person
/// whose deleted contact qualified in April and whose live duplicate was
/// first seen in May was excluded from April and counted in the quarter
/// holding it (0 + 0 + 0 for its months, 1 for the quarter).
fn excluded(i: usize, first: &Expr) -> Expr {
    let lifted = col(format!("_l{i}").as_str());
    lifted.clone().is_null().or(lifted.gt(first.clone()))
}

/// Whether an exclusion's test holds on a row: a null test does not.
fn holds(when: Expr) -> Expr {
    datafusion::functions::expr_fn::coalesce(vec![when, lit(false)])
}

/// `expr`, parsed over the event entity's frame, over the frame of the
/// entity its (only) link points at: `contact.x` is that entity's own `x`,
/// `contact.company.y` its link `company`'s `y`.
fn onto_linked(expr: Expr, entity: &str, target: &str) -> Result<Expr> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    Ok(expr
        .transform(|e| {
            let Expr::Column(c) = &e else {
                return Ok(Transformed::no(e));
            };
            let path = c.relation.as_ref().and_then(|r| link_path(r, entity));
            let relation = match path.as_deref() {
                Some([_]) => datafusion::common::TableReference::bare(target),
                Some([_, rest @ ..]) => super::entity::qualifier(rest),
                _ => return Ok(Transformed::no(e)),
            };
            Ok(Transformed::yes(Expr::Column(Column::new(
                Some(relation),
                c.name.clone(),
            ))))
        })?
        .data)
}

/// `expr` with every column a typed null: its value on a row whose link
/// matched nothing.
fn over_nulls(expr: Expr, schema: &datafusion::common::DFSchema) -> Result<Expr> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    Ok(expr
        .transform(|e| {
            let Expr::Column(c) = &e else {
                return Ok(Transformed::no(e));
            };
            let ty = schema.qualified_field_from_column(c)?.1.data_type().clone();
            Ok(Transformed::yes(lit(ScalarValue::try_from(&ty)?)))
        })?
        .data)
}

/// A constant expression folded to its value by the planning session's
/// optimizer (which types it first, as it does every plan): from a plan of
/// one empty row, so nothing is read.
fn folded(engine: &Planner, expr: Expr) -> Result<Expr> {
    use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
    let plan = LogicalPlanBuilder::empty(true)
        .project(vec![expr.clone().alias("_value")])?
        .build()?;
    let optimized = engine.planning.state().optimize(&plan)?;
    Ok(match optimized {
        LogicalPlan::Projection(p) => match p.expr.as_slice() {
            [Expr::Alias(a)] => (*a.expr).clone(),
            _ => expr,
        },
        _ => expr,
    })
}

/// A column of relation `q`.
fn col_of(q: &str, name: &str) -> Expr {
    Expr::Column(Column::new(Some(q), name))
}

/// The linked entity's tested rows, while joined to the reduced events:
/// their relation and key column.
const LINKED: &str = "_linked";
const LINKED_KEY: &str = "_linked_key";

/// A key's earliest event: when its contact was first seen.
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

/// Whether conversion `denominator` counts exactly the members `numerator`
/// is counted among: the same entity, member, moments, stage and
/// exclusions, the numerator counting those that converted within a window
/// and the denominator every one that reached the stage. Then the
/// numerator's plan already holds the denominator's members, one row each
/// with its exclusion: the same members (a member's first moment in the
/// period is the same over the numerator's later horizon, which only adds
/// events after the period), and the same exclusions (the numerator judges
/// them on the contacts seen by each member's first moment, which both
/// read). A ratio of the two (mql_to_sql_rate) runs one plan, not two.
pub fn counts_members_of(
    catalog: &crate::catalog::Catalog,
    numerator: MetricId,
    denominator: MetricId,
) -> bool {
    let metric = |id: MetricId| &catalog.files.metrics[id.file].spec.metrics[id.index];
    let (n, d) = (metric(numerator), metric(denominator));
    let (Some(nc), Some(dc)) = (&n.conversion, &d.conversion) else {
        return false;
    };
    let exclusions = |id: MetricId| -> Vec<(String, String, String)> {
        catalog
            .exclusions_of(id)
            .iter()
            .map(|x| {
                (
                    x.spec.name.clone(),
                    x.spec.when.clone(),
                    x.spec.reason.clone(),
                )
            })
            .collect()
    };
    n.kind == crate::spec::MetricKind::Conversion
        && d.kind == crate::spec::MetricKind::Conversion
        && n.entity == d.entity
        && (&nc.member, &nc.at, &nc.reaches) == (&dc.member, &dc.at, &dc.reaches)
        && nc.count == ConversionCount::Converted
        && nc.then.is_some()
        && nc.within_days.is_some()
        && dc.count == ConversionCount::Reached
        && n.filter.is_none()
        && d.filter.is_none()
        && n.whole_accounting_periods == d.whole_accounting_periods
        && exclusions(numerator) == exclusions(denominator)
}
