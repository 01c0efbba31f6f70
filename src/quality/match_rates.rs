//! The two cross-system match rates about counted deals (metrics.md, "Data
//! quality that every run reports"): revenue lines that link to a counted
//! deal, and won deals with a billing subscription.
//!
//! A *counted deal* is one the reconciliation's bookings metric counts in
//! some period (won, not excluded: metrics.md's reconciliation), taken from
//! that metric's own plan over all time, so the rate judges the same deals
//! the bridge does. Both rates are DataFusion plans over entities:
//! - revenue lines: the lines the reconciliation's revenue metric counts over
//!   all time (its filter and exclusions: recognized, not deleted), linked by
//!   the reconciliation's declared link rules (an expression, else a lookup
//!   through another entity), matched when the linked deal is counted;
//! - won deals: counted deals named by a non-deleted row of an entity of
//!   another system that links to the deal entity (billing's subscription,
//!   `subscription.deal`), matched when at least one does.
//!
//! Which results carry them, and why: `canon check`, over all periods
//! ([`check_all`]), and the bridge, over its own period ([`of_bridge`]:
//! `canon reconcile`, and the reconciliation files `canon publish` writes);
//! not the metrics. A line that links to no counted deal is revenue the
//! bridge can only list as `revenue_without_booking`, and a counted deal
//! with no subscription is one whose revenue lines can only be found by
//! their opportunity id: both say how much of the bridge rests on its link
//! rules. Bookings and ARR neither read revenue lines nor join deals to
//! subscriptions, so their numbers do not depend on these rates.
//!
//! Why the bridge judges its own period rather than all periods: the bridge
//! of P rests on the lines recognized in P and on P's counted deals, so
//! those are the rows whose links it relies on (an unlinked line of 2019
//! neither weakens nor vouches for a bridge of 2025). And it has them almost
//! for free: the revenue-line rate is the bridge's own count of P's
//! recognized lines that link to a counted deal ([`of_bridge_lines`]), and
//! the won-deal rate is P's counted deals against the subscriptions. The
//! all-period rates cost a pass over every revenue line of all time, which
//! measured as more than half of a cold bridge at scale 200.

use crate::run::memory::WithinMemory;
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::ScalarValue;
use datafusion::functions::expr_fn::coalesce;
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::logical_expr::{Expr, JoinType, cast, col, lit};
use datafusion::prelude::DataFrame;
use serde::Serialize;

use super::Status;
use super::thresholds::{Thresholds, share_below};
use crate::calendar::Period;
use crate::compile::parse_expr;
use crate::decimal::Dec;
use crate::error::{CanonError, Result};
use crate::request::{Request, Resolved};
use crate::run::Engine;
use crate::spec::ReconciliationSpec;
use crate::yaml_path;

/// One match rate about counted deals.
#[derive(Debug, Clone, Serialize)]
pub struct DealMatchRate {
    /// `match_rate`
    pub check: &'static str,
    /// `revenue_line → counted deal` or `counted deal ← subscription.deal`.
    pub rule: String,
    /// What is counted and what matched, in words.
    pub description: String,
    /// The reconciliation whose bookings metric says which deals count.
    pub reconciliation: String,
    /// The rows judged: `all periods` (`canon check`), or the bridge's
    /// period (its label).
    pub scope: String,
    /// `system/table` of the rows counted.
    pub table: String,
    pub rows: i64,
    pub matched: i64,
    /// matched / rows, 6 decimals (none when there are no rows).
    pub rate: Option<Dec>,
    /// The rate warns below this (canon.yaml `quality.match_rate_warn_below`).
    pub warn_below: Dec,
    pub status: RateStatus,
    /// Why the rate is unavailable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A rate's judgement. `unavailable`: a query relies on the rate but its
/// inputs cannot be read (a project that has no billing extract yet); the
/// result says so instead of leaving the rate out, and the metric itself is
/// still computed (its own inputs are gated as usual). `canon check` reads
/// every table first and reports an unreadable one as an error instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RateStatus {
    Pass,
    Warn,
    Unavailable,
}

impl RateStatus {
    /// Its weight in an overall status.
    pub fn level(self) -> Status {
        match self {
            RateStatus::Pass | RateStatus::Unavailable => Status::Pass,
            RateStatus::Warn => Status::Warn,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            RateStatus::Pass => "pass",
            RateStatus::Warn => "warn",
            RateStatus::Unavailable => "unavailable",
        }
    }
}

/// Every deal match rate of the project: per reconciliation, its revenue
/// lines and each cross-system entity that links to its deals.
pub async fn check_all(engine: &Engine) -> Result<Vec<DealMatchRate>> {
    let thresholds = Thresholds::of(&engine.catalog)?;
    let mut out = Vec::new();
    for (file, index, spec) in reconciliations(engine) {
        out.push(revenue_lines(engine, file, index, spec, &thresholds).await?);
        for link in deal_links(engine, spec)? {
            out.push(won_deals(engine, spec, &link, &thresholds, None).await?);
        }
    }
    Ok(out)
}

/// The won-deal rates a bridge of reconciliation `name` for `request`'s
/// period relies on: the period's counted deals against each cross-system
/// entity that links to its deals (see the module's note for why the bridge
/// judges its own period). A rate whose inputs cannot be read is reported as
/// unavailable, not fatal. The revenue-line rate comes from the bridge's own
/// counts ([`of_bridge_lines`]).
pub async fn of_bridge(
    engine: &Engine,
    name: &str,
    request: &Resolved,
) -> Result<Vec<DealMatchRate>> {
    let mut out = Vec::new();
    let Some(spec) = reconciliation(engine, name) else {
        return Ok(out);
    };
    let t = Thresholds::of(&engine.catalog)?;
    for link in &deal_links(engine, spec)? {
        let rule = || format!("counted deal ← {}.{}", link.entity, link.link);
        out.push(or_unavailable(
            won_deals(engine, spec, link, &t, Some(request)).await,
            rule,
            spec,
            &request.period.label,
            &t,
        )?);
    }
    Ok(out)
}

/// The revenue-line rate of a bridge of reconciliation `name` over
/// `period`, from the bridge's own counts: of the `lines` recognized in the
/// period (the revenue metric's rows in it, R), `linked` link to a deal the
/// bookings metric counts in some period, by the same link rules.
pub fn of_bridge_lines(
    engine: &Engine,
    name: &str,
    period: &Period,
    (lines, linked): (i64, i64),
) -> Result<Option<DealMatchRate>> {
    let Some(spec) = reconciliation(engine, name) else {
        return Ok(None);
    };
    let catalog = &engine.catalog;
    let entity = revenue_entity(engine, spec);
    let table = catalog
        .entity(&entity)
        .map(|(_, m, e)| format!("{}/{}", m.spec.system, e.source))
        .unwrap_or_default();
    Ok(Some(rate(
        format!("{entity} → counted deal"),
        format!(
            "revenue lines `{}` counts in {} that link to a deal `{}` counts (in any period), by {}'s link rules",
            spec.revenue, period.label, spec.bookings, spec.name
        ),
        spec,
        &period.label,
        table,
        (lines, linked),
        &Thresholds::of(catalog)?,
        || {
            format!(
                "`{}` counts no revenue line in {}",
                spec.revenue, period.label
            )
        },
    )))
}

/// The entity of `spec`'s revenue metric, by name.
fn revenue_entity(engine: &Engine, spec: &ReconciliationSpec) -> String {
    engine
        .catalog
        .metric(&spec.revenue)
        .ok()
        .and_then(|(_, _, m)| m.entity.clone())
        .unwrap_or_default()
}

/// A rate, or when its inputs cannot be read (a data error: a missing or
/// corrupt extract), the rate marked unavailable with the reason.
fn or_unavailable(
    computed: Result<DealMatchRate>,
    rule: impl Fn() -> String,
    spec: &ReconciliationSpec,
    scope: &str,
    thresholds: &Thresholds,
) -> Result<DealMatchRate> {
    match computed {
        Err(e @ CanonError::Data { .. }) => Ok(DealMatchRate {
            check: "match_rate",
            rule: rule(),
            description: "not computed: an input cannot be read".into(),
            reconciliation: spec.name.clone(),
            scope: scope.to_string(),
            table: String::new(),
            rows: 0,
            matched: 0,
            rate: None,
            warn_below: thresholds.match_rate_warn_below,
            status: RateStatus::Unavailable,
            detail: Some(e.to_string()),
        }),
        other => other,
    }
}

/// Reconciliation `name`, if the project declares it.
fn reconciliation<'a>(engine: &'a Engine, name: &str) -> Option<&'a ReconciliationSpec> {
    reconciliations(engine)
        .into_iter()
        .find_map(|(_, _, r)| (r.name == name).then_some(r))
}

/// Every reconciliation of the project with its file and index.
fn reconciliations(engine: &Engine) -> Vec<(usize, usize, &ReconciliationSpec)> {
    engine
        .catalog
        .files
        .metrics
        .iter()
        .enumerate()
        .flat_map(|(fi, f)| {
            f.spec
                .reconciliations
                .iter()
                .enumerate()
                .map(move |(ri, r)| (fi, ri, r))
        })
        .collect()
}

/// An entity of another system that links to the bookings entity.
struct DealLink {
    entity: String,
    link: String,
    field: String,
}

/// The cross-system links to the entity of `spec`'s bookings metric.
fn deal_links(engine: &Engine, spec: &ReconciliationSpec) -> Result<Vec<DealLink>> {
    let catalog = &engine.catalog;
    let (_, _, bookings) = catalog.metric(&spec.bookings)?;
    let Some(deal) = bookings.entity.as_deref() else {
        return Ok(Vec::new());
    };
    let Some((_, deal_model, _)) = catalog.entity(deal) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for model in &catalog.files.models {
        if model.spec.system == deal_model.spec.system {
            continue;
        }
        for e in &model.spec.entities {
            for l in e.links.iter().filter(|l| l.entity == deal) {
                out.push(DealLink {
                    entity: e.name.clone(),
                    link: l.name.clone(),
                    field: l.field.clone(),
                });
            }
        }
    }
    Ok(out)
}

/// The scope of `canon check`'s rates.
const ALL_PERIODS: &str = "all periods";

/// `_deal` (text): each deal the bookings metric counts in `request`'s
/// period (`None`: in some period), once.
async fn counted_deals(
    engine: &Engine,
    bookings: &str,
    request: Option<&Resolved>,
) -> Result<DataFrame> {
    let (id, _, _) = engine.catalog.metric(bookings)?;
    let all = engine.catalog.resolve(Request::all_time())?;
    let detail = engine.metric_detail(id, request.unwrap_or(&all)).await?;
    Ok(detail
        .filter(col("_exclusion").is_null())?
        .aggregate(vec![col("_key").alias("_deal")], vec![])?)
}

/// [`tally`] once per engine under `key`: a rate is over all periods, so a
/// run that computes many results relying on it (`canon publish`: bookings
/// for every period, the bridge's bookings side, arr and every cohort
/// metric) counts it once. The two counts are kept as a one-row VALUES plan
/// in the engine's plan memo.
async fn memo_tally(engine: &Engine, key: &str, frame: DataFrame) -> Result<(i64, i64)> {
    use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
    let build = async {
        let (rows, hits) = tally(frame).await?;
        Ok(Some(
            LogicalPlanBuilder::values(vec![vec![lit(rows), lit(hits)]])?.build()?,
        ))
    };
    let plan = engine
        .memoized_plan(&format!("deal match rate {key}"), build)
        .await?;
    let count = |e: &Expr| match e {
        Expr::Literal(ScalarValue::Int64(Some(n)), _) => Some(*n),
        _ => None,
    };
    match plan.as_ref() {
        Some(LogicalPlan::Values(v)) if v.values.len() == 1 && v.values[0].len() == 2 => {
            match (count(&v.values[0][0]), count(&v.values[0][1])) {
                (Some(rows), Some(hits)) => Ok((rows, hits)),
                _ => Err(CanonError::Internal(format!("memoized counts of {key}"))),
            }
        }
        _ => Err(CanonError::Internal(format!("memoized counts of {key}"))),
    }
}

/// Rows and matched rows of a frame with a `_matched` column (null = not).
async fn tally(frame: DataFrame) -> Result<(i64, i64)> {
    let batches = frame
        .aggregate(
            vec![],
            vec![
                count(lit(1i64)).alias("_rows"),
                count(col("_matched")).alias("_hits"),
            ],
        )?
        .collect_within_memory()
        .await?;
    let (mut rows, mut hits) = (0, 0);
    for b in &batches {
        for i in 0..b.num_rows() {
            rows += b.column(0).as_primitive::<Int64Type>().value(i);
            hits += b.column(1).as_primitive::<Int64Type>().value(i);
        }
    }
    Ok((rows, hits))
}

/// A rate's status against `quality.match_rate_warn_below`, and why when it
/// is not a plain pass: below the threshold warns, and so does a rate over
/// no rows at all (`empty` says what is missing) — nothing was matched, so
/// nothing vouches for the link, and `0 of 0` must not read as a pass.
pub fn judge(
    rows: i64,
    matched: i64,
    warn_below: Dec,
    empty: impl FnOnce() -> String,
) -> (RateStatus, Option<String>) {
    if rows == 0 {
        (
            RateStatus::Warn,
            Some(format!("nothing to judge: {}", empty())),
        )
    } else if share_below(matched, rows, warn_below) {
        (RateStatus::Warn, None)
    } else {
        (RateStatus::Pass, None)
    }
}

#[allow(clippy::too_many_arguments)]
fn rate(
    rule: String,
    description: String,
    spec: &ReconciliationSpec,
    scope: &str,
    table: String,
    (rows, matched): (i64, i64),
    thresholds: &Thresholds,
    empty: impl FnOnce() -> String,
) -> DealMatchRate {
    let (status, detail) = judge(rows, matched, thresholds.match_rate_warn_below, empty);
    DealMatchRate {
        check: "match_rate",
        rule,
        description,
        reconciliation: spec.name.clone(),
        scope: scope.to_string(),
        table,
        rows,
        matched,
        rate: Dec::from_int(matched).div(Dec::from_int(rows), 6),
        warn_below: thresholds.match_rate_warn_below,
        status,
        detail,
    }
}

/// Revenue lines (those the revenue metric counts, over all time) that link
/// to a counted deal by the reconciliation's link rules.
async fn revenue_lines(
    engine: &Engine,
    file: usize,
    index: usize,
    spec: &ReconciliationSpec,
    thresholds: &Thresholds,
) -> Result<DealMatchRate> {
    let catalog = &engine.catalog;
    let (r_id, _, r_metric) = catalog.metric(&spec.revenue)?;
    let entity = r_metric
        .entity
        .clone()
        .ok_or_else(|| CanonError::Internal("a revenue metric without an entity".into()))?;
    let (_, model, line_spec) = catalog
        .entity(&entity)
        .ok_or_else(|| CanonError::Internal(format!("unknown entity {entity}")))?;
    let table = format!("{}/{}", model.spec.system, line_spec.source);
    // The revenue metric's counted lines, with the entity's fields.
    let counted = engine
        .metric_detail(r_id, &catalog.resolve(Request::all_time())?)
        .await?
        .filter(col("_exclusion").is_null())?
        .select(vec![col("_key").alias("_line")])?;
    let lines = engine.entity_frame(&entity).await?;
    let key = cast(col(line_spec.key.as_str()), DataType::Utf8);
    let frame = counted.join_on(lines, JoinType::Inner, [col("_line").eq(key)])?;
    let at = |path: &[crate::spec::locate::Step]| {
        let mut full = yaml_path!["reconciliations", index].to_vec();
        full.extend_from_slice(path);
        catalog.files.metrics[file].at(&full)
    };
    // Linked as the bridge links a line: the first rule that yields a deal.
    let schema = frame.schema().clone();
    let (frame, links) = crate::compile::link_rules::link_rules(
        engine,
        frame,
        spec,
        &|sql, loc| parse_expr(engine, sql, &schema, loc),
        &at,
    )
    .await?;
    let frame = engine.bound(frame);
    let linked: Vec<Expr> = links.into_iter().map(|(_, e)| e).collect();
    let linked = match linked.len() {
        0 => lit(ScalarValue::Utf8(None)),
        _ => coalesce(linked),
    };
    let frame = frame
        .select(vec![linked.alias("_linked")])?
        .join_on(
            counted_deals(engine, &spec.bookings, None).await?,
            JoinType::Left,
            [col("_linked").eq(col("_deal"))],
        )?
        .select(vec![col("_deal").alias("_matched")])?;
    Ok(rate(
        format!("{entity} → counted deal"),
        format!(
            "revenue lines `{}` counts (all periods) that link to a deal `{}` counts, by {}'s link rules",
            spec.revenue, spec.bookings, spec.name
        ),
        spec,
        ALL_PERIODS,
        table,
        memo_tally(engine, &format!("{} {entity}", spec.name), frame).await?,
        thresholds,
        || format!("`{}` counts no revenue line in any period", spec.revenue),
    ))
}

/// Counted deals (of `request`'s period; `None`: of any period) named by at
/// least one non-deleted row of `link`'s entity.
async fn won_deals(
    engine: &Engine,
    spec: &ReconciliationSpec,
    link: &DealLink,
    thresholds: &Thresholds,
    request: Option<&Resolved>,
) -> Result<DealMatchRate> {
    let scope = request.map_or(ALL_PERIODS, |r| r.period.label.as_str());
    let catalog = &engine.catalog;
    let (_, _, bookings) = catalog.metric(&spec.bookings)?;
    let deal = bookings.entity.clone().unwrap_or_default();
    let deal_table = catalog
        .entity(&deal)
        .map(|(_, m, e)| format!("{}/{}", m.spec.system, e.source))
        .unwrap_or_default();
    let mut rows = engine.entity_frame(&link.entity).await?;
    // A soft-deleted record sells nothing.
    if rows.schema().has_column_with_unqualified_name("is_deleted") {
        rows = rows.filter(!coalesce(vec![col("is_deleted"), lit(false)]))?;
    }
    let named = rows.aggregate(
        vec![cast(col(link.field.as_str()), DataType::Utf8).alias("_matched")],
        vec![],
    )?;
    let mut deals = counted_deals(engine, &spec.bookings, request).await?;
    // canon.yaml may say which deals are expected to have one (expansions
    // amend the subscription their account already has).
    let policy = &catalog.files.project.spec.quality.subscription_deals;
    if let Some(expected) = super::subscription_deals::expected(engine, &deal).await? {
        deals = deals.join_on(
            expected,
            JoinType::LeftSemi,
            [col("_deal").eq(col("_expected"))],
        )?;
    }
    let frame = deals.join_on(named, JoinType::Left, [col("_deal").eq(col("_matched"))])?;
    Ok(rate(
        format!("counted deal ← {}.{}", link.entity, link.link),
        format!(
            "deals `{}` counts ({}, won and not excluded){} that a non-deleted {} names",
            spec.bookings,
            request.map_or("all periods".to_string(), |r| format!(
                "in {}",
                r.period.label
            )),
            policy
                .as_ref()
                .map(|p| format!(" where {p} (canon.yaml quality.subscription_deals)"))
                .unwrap_or_default(),
            link.entity
        ),
        spec,
        scope,
        deal_table,
        memo_tally(
            engine,
            &format!("{} {}.{} {scope}", spec.name, link.entity, link.link),
            frame,
        )
        .await?,
        thresholds,
        || match policy {
            Some(p) => format!(
                "quality.subscription_deals `{p}` ({}) selects none of the deals `{}` counts{}",
                catalog
                    .files
                    .project
                    .at(&yaml_path!["quality", "subscription_deals"]),
                spec.bookings,
                request.map_or(String::new(), |r| format!(" in {}", r.period.label)),
            ),
            None => format!(
                "`{}` counts no deal in {}",
                spec.bookings,
                request.map_or("any period".to_string(), |r| r.period.label.clone())
            ),
        },
    ))
}
