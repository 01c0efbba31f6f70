//! The `reconciliation` kind: bookings (B) bridged to recognized revenue (R)
//! for a period of whole accounting periods, to the cent.
//!
//! Both sides come from the governed metrics themselves: the booking side is
//! the per-deal detail of the bookings plan (same exclusions, same rates,
//! same per-deal rounding) over all time, the revenue side the revenue lines
//! with the revenue metric's own exclusions. B and R are also computed by
//! running the two metrics, and the bridge refuses to print if its sides
//! disagree with them. Every bridge line is a sum of the deal-level or
//! line-level detail, so the detail sums to the bridge by construction.
//!
//! Which lines the bridge has, what each holds and with which sign, are
//! declared in the reconciliation's YAML ([`lines`]); this module computes
//! the amounts of the vocabulary and the lines from them.

use crate::run::memory::WithinMemory;
use std::collections::BTreeMap;

use crate::catalog::lines;
use crate::spec::amounts::Amount;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Date32Type};
use datafusion::common::{Column, ScalarValue};
use datafusion::functions::expr_fn::{coalesce, round};
use datafusion::logical_expr::{Expr, JoinType, cast, col, lit, when};

use crate::calendar::Period;
use crate::compile::parse_scoped;
use crate::decimal::Dec;
use crate::error::{CanonError, Result};
use crate::request::Request;
use crate::result::{DefinitionRef, GovernedResult};
use crate::run::Engine;
use crate::spec::ReconciliationSpec;
use crate::yaml_path;

pub use crate::result::reconciliation::{
    BridgeLine, DealDetail, LineDetail, MatchRates, ReconciliationResult,
};

/// Runs reconciliation `name` for `period`.
/// Runs reconciliation `name` for `period`; the line-level detail is
/// gathered only with `detail` (the bridge itself never needs it).
pub async fn run(
    engine: &Engine,
    name: &str,
    period: &Period,
    detail: bool,
) -> Result<ReconciliationResult> {
    let catalog = engine.catalog.clone();
    let (file, index, spec) = find(&catalog, name)?;
    let at_recon = |path: &[crate::spec::locate::Step]| {
        crate::compile::link_rules::located(&catalog, (file, index), path)
    };
    // The declared lines (checked when the catalog loaded; again here so a
    // bridge is never computed from lines that cannot tie out).
    let declared = lines::resolve(spec, &at_recon).map_err(CanonError::Definition)?;
    let started = std::time::Instant::now();
    let lap = |what: &str| tracing::info!(ms = started.elapsed().as_millis() as u64, "{what}");
    let request = catalog.resolve(Request::of_period(period.clone()))?;

    // The booking side per deal, over all time: a deal is counted when
    // bookings counts it in some period.
    let (b_id, _, b_metric) = catalog.metric(&spec.bookings)?;
    let all_time = catalog.resolve(Request::all_time())?;
    let deals = engine.metric_detail(b_id, &all_time).await?;
    let deal_entity = b_metric
        .entity
        .clone()
        .ok_or_else(|| CanonError::Internal("bookings without an entity".into()))?;
    // The account of each deal, for the detail: joined to P's deals only
    // (the passes over lines never read it, and a join stays in a plan
    // whether its columns are read or not).
    let (_, _, deal_spec) = catalog
        .entity(&deal_entity)
        .ok_or_else(|| CanonError::Internal("unknown deal entity".into()))?;
    let accounts = engine.entity_frame(&deal_entity).await?.select(vec![
        cast(col(deal_spec.key.as_str()), DataType::Utf8).alias("_deal_key"),
        col("account_id").alias("_account"),
    ])?;

    // The revenue side per line, with the revenue metric's exclusions.
    let (r_id, _, r_metric) = catalog.metric(&spec.revenue)?;
    let (line_entity, frame) = revenue_frame(engine, r_metric).await?;
    let time_sql = r_metric
        .time
        .clone()
        .ok_or_else(|| CanonError::Internal("revenue without a time".into()))?;
    let recognized_sql = r_metric.filter.clone().unwrap_or_else(|| "true".into());
    let value_sql = r_metric
        .measure
        .as_ref()
        .and_then(|m| m.expr.clone())
        .ok_or_else(|| CanonError::Internal("revenue without a measure".into()))?;
    let schema = frame.schema().clone();
    let r_at = |p: &[crate::spec::locate::Step]| catalog.metric_at(r_id, p);
    let p = |sql: &str, loc: &crate::error::Location| {
        parse_scoped(engine, sql, &schema, Some(&line_entity), loc)
    };
    let mut excluded = lit(false);
    for x in catalog.exclusions_of(r_id) {
        excluded = excluded.or(coalesce(vec![
            p(&x.spec.when, &x.when_location)?,
            lit(false),
        ]));
    }
    let (_, _, line_spec) = catalog
        .entity(&line_entity)
        .ok_or_else(|| CanonError::Internal("unknown revenue entity".into()))?;
    // Each link rule yields a deal id or null; the first that yields one wins.
    let (frame, link_exprs) = crate::compile::link_rules::link_rules(
        engine,
        frame.filter(!excluded)?,
        spec,
        &|sql, loc| p(sql, loc),
        &at_recon,
    )
    .await?;
    let frame = engine.bound(frame);
    let linked_deal = coalesce(link_exprs.iter().map(|(_, e)| e.clone()).collect());
    let link_kind = crate::compile::first_that_holds(
        link_exprs
            .iter()
            .map(|(n, e)| (e.clone().is_not_null(), lit(n.clone()))),
    )?
    .unwrap_or(lit(ScalarValue::Utf8(None)));
    let line_time = p(&time_sql, &r_at(&yaml_path!["time"]))?;
    let lines = frame.select(vec![
        cast(
            Expr::Column(Column::new(Some(line_entity.as_str()), &line_spec.key)),
            DataType::Utf8,
        )
        .alias("_line"),
        line_time.alias("_line_time"),
        p(&value_sql, &r_at(&yaml_path!["measure", "expr"]))?.alias("_amount"),
        p("transaction_amount", &r_at(&yaml_path!["measure", "expr"]))?.alias("_tx"),
        p(&recognized_sql, &r_at(&yaml_path!["filter"]))?.alias("_recognized"),
        linked_deal.alias("_linked"),
        link_kind.alias("_link"),
    ])?;
    let day = |x: NaiveDate| {
        lit(ScalarValue::Date32(Some(
            crate::compile::bounds::days_since_epoch(x),
        )))
    };
    let (from, to) = (day(period.from), day(period.to));
    let zero = || lit(ScalarValue::Decimal128(Some(0), 38, 2));
    let money = |e: Expr| cast(e, DataType::Decimal128(38, 2));
    let joined = lines.join_on(
        deals.clone(),
        JoinType::Left,
        [col("_linked").eq(col("_key"))],
    )?;
    let in_p = col("_line_time")
        .gt_eq(from.clone())
        .and(col("_line_time").lt(to.clone()));
    let counted = col("_key").is_not_null().and(col("_exclusion").is_null());
    let deal_in_p = counted
        .clone()
        .and(col("_time").gt_eq(from.clone()))
        .and(col("_time").lt(to.clone()));
    let joined = joined.select(vec![
        col("_line"),
        col("_line_time"),
        money(col("_amount")).alias("_amount"),
        money(col("_tx")).alias("_tx"),
        coalesce(vec![col("_recognized"), lit(false)]).alias("_rec"),
        col("_linked"),
        col("_link"),
        col("_key"),
        col("_time"),
        col("_exclusion"),
        in_p.alias("_in_p"),
        counted.alias("_counted"),
        deal_in_p.alias("_p_deal"),
    ])?;
    let amount_when = |cond: Expr| -> Result<Expr> {
        Ok(datafusion::functions_aggregate::expr_fn::sum(
            when(cond, col("_amount")).otherwise(zero())?,
        ))
    };
    // Per deal of P: its whole schedule, split by where it falls.
    let per_deal = joined.clone().filter(col("_p_deal"))?.aggregate(
        vec![col("_linked").alias("_d")],
        vec![
            datafusion::functions_aggregate::expr_fn::sum(col("_amount")).alias("_schedule"),
            datafusion::functions_aggregate::expr_fn::sum(col("_tx")).alias("_tx_total"),
            amount_when(col("_line_time").lt(from.clone()))?.alias("_before"),
            amount_when(col("_line_time").gt_eq(to.clone()))?.alias("_after"),
            amount_when(col("_in_p"))?.alias("_in"),
            amount_when(col("_in_p").and(!col("_rec")))?.alias("_not_yet"),
        ],
    )?;
    let has = col("_d").is_not_null();
    let amount_difference = when(!has.clone(), zero())
        .when(
            col("_rate").is_null(),
            money(round(vec![col("_tx_total") - col("_raw"), lit(2i64)])),
        )
        .otherwise(money(round(vec![
            (col("_tx_total") - col("_raw")) / col("_rate"),
            lit(2i64),
        ])))?;
    let deal_rows = deals
        .filter(
            col("_exclusion")
                .is_null()
                .and(col("_time").gt_eq(from.clone()))
                .and(col("_time").lt(to.clone())),
        )?
        .join_on(per_deal, JoinType::Left, [col("_key").eq(col("_d"))])?
        .join_on(accounts, JoinType::Left, [col("_key").eq(col("_deal_key"))])?
        .select(vec![
            col("_key"),
            col("_account"),
            col("_time"),
            col("_currency"),
            money(col("_raw")).alias("_raw"),
            money(col("_value")).alias("_booking"),
            coalesce(vec![col("_schedule"), zero()]).alias("_schedule"),
            coalesce(vec![col("_in"), zero()]).alias("_in"),
            coalesce(vec![col("_before"), zero()]).alias("_before"),
            coalesce(vec![col("_after"), zero()]).alias("_after"),
            coalesce(vec![col("_not_yet"), zero()]).alias("_not_yet"),
            when(has.clone(), zero())
                .otherwise(money(col("_value")))?
                .alias("_unscheduled"),
            amount_difference.alias("_amount_difference"),
            has.alias("_has_lines"),
        ])?
        .collect();
    // Lines recognized in P outside P's deals, by category and reason.
    let category = when(
        col("_counted").and(col("_time").lt(from.clone())),
        lit(Amount::RecognizedOfDealsWonBeforePeriod.name()),
    )
    .when(
        col("_counted"),
        lit(Amount::RecognizedOfDealsWonAfterPeriod.name()),
    )
    .otherwise(lit(Amount::RecognizedWithoutCountedDeal.name()))?;
    let reason = when(col("_counted"), lit(ScalarValue::Utf8(None)))
        .when(col("_linked").is_null(), lit("no link to a deal"))
        .when(col("_known").is_null(), lit("unknown deal"))
        .when(
            col("_key").is_null(),
            lit("deal not counted by bookings (not won)"),
        )
        .otherwise(datafusion::functions::expr_fn::concat(vec![
            lit("excluded deal: "),
            col("_exclusion"),
        ]))?;
    // Every deal the CRM knows, to tell an unknown deal from one bookings
    // does not count (the detail's reasons only).
    let known = engine.entity_frame(&deal_entity).await?.select(vec![
        cast(col(deal_spec.key.as_str()), DataType::Utf8).alias("_known"),
    ])?;
    let outside = joined
        .clone()
        .join_on(known, JoinType::Left, [col("_linked").eq(col("_known"))])?
        .filter(col("_in_p").and(col("_rec")).and(!col("_p_deal")))?
        .select(vec![
            col("_line"),
            col("_linked"),
            col("_link"),
            col("_amount"),
            category.clone().alias("_category"),
            reason.alias("_reason"),
        ])?;
    // The lines recognized in P: R as the bridge sees it, how many link to a
    // counted deal, and those outside P's deals by category: one small
    // aggregate (one row per category, one for P's deals).
    let recognized = joined
        .clone()
        .filter(col("_in_p").and(col("_rec")))?
        .aggregate(
            vec![
                when(!col("_p_deal"), category)
                    .otherwise(lit(ScalarValue::Utf8(None)))?
                    .alias("_category"),
            ],
            vec![
                datafusion::functions_aggregate::expr_fn::sum(col("_amount")).alias("_total"),
                datafusion::functions_aggregate::expr_fn::count(lit(1i64)).alias("_n"),
                datafusion::functions_aggregate::expr_fn::sum(
                    when(col("_counted"), lit(1i64)).otherwise(lit(0i64))?,
                )
                .alias("_linked_n"),
            ],
        )?
        .collect();
    // The two governed numbers (by the metrics themselves) and the bridge's
    // two passes are independent plans: run together, one's single-threaded
    // stretches (a join's build, a final aggregate, the gates) fill the
    // other's idle core.
    let (b_result, r_result, deal_rows, recognized, deal_match_rates) = futures::try_join!(
        crate::query::run_metric(engine, &spec.bookings, &request),
        crate::query::run_metric(engine, &spec.revenue, &request),
        async { Ok(deal_rows.await?) },
        async { Ok(recognized.await?) },
        crate::quality::match_rates::of_bridge(engine, &spec.name, &request),
    )?;
    lap("both sides and the bridge computed");
    let line_rows = if detail {
        outside.collect_within_memory().await?
    } else {
        Vec::new()
    };
    lap("lines outside the period's deals listed");
    let (bridge_lines, check, deals, lines, match_rates) =
        bridge(&declared, &deal_rows, &recognized, &line_rows)?;
    // The revenue-line rate is the bridge's own count, first as before.
    let deal_match_rates: Vec<_> = crate::quality::match_rates::of_bridge_lines(
        engine,
        &spec.name,
        period,
        (
            match_rates.recognized_lines,
            match_rates.recognized_lines_linked,
        ),
    )?
    .into_iter()
    .chain(deal_match_rates)
    .collect();
    // The bridge's own B and R must be the governed numbers.
    let b_line = bridge_lines[0].value;
    let r_line = bridge_lines[bridge_lines.len() - 1].value;
    // The gates the sides were let through by name, in the order the sides
    // used them (one both used is named once): rows they found wrong are
    // the user's data, and a bridge that cannot tie out over them is
    // blocked under them, not blamed on its definition or on canon.
    let mut overrides: Vec<&str> = Vec::new();
    for o in b_result.overrides.iter().chain(&r_result.overrides) {
        if !overrides.contains(&o.as_str()) {
            overrides.push(o);
        }
    }
    let overrides = overrides.join(", ");
    if Some(b_line) != b_result.value.map(|v| v.rescale(2))
        || Some(r_line) != r_result.value.map(|v| v.rescale(2))
    {
        // Repeated rows let through are joined again by the bridge.
        if !overrides.is_empty() {
            return Err(CanonError::Blocked(format!(
                "`{}` cannot be bridged under the override(s) {overrides}: the bridge ({b_line}, {r_line}) and its governed sides ({}, {}) disagree, as the rows the gates found repeated are joined again by the bridge",
                spec.name,
                b_result.value.map(|v| v.plain()).unwrap_or_default(),
                r_result.value.map(|v| v.plain()).unwrap_or_default(),
            )));
        }
        return Err(CanonError::Internal(format!(
            "the bridge's sides ({b_line}, {r_line}) disagree with the governed metrics ({:?}, {:?})",
            b_result.value, r_result.value
        )));
    }
    // A bridge that does not foot is never printed. Under an override
    // (revenue lines naming no accounting period, let through) the amount
    // falls under no line: the data's fault, said with the override.
    if !check.is_zero() && !overrides.is_empty() {
        return Err(CanonError::Blocked(format!(
            "`{}` cannot be bridged for {} under the override(s) {overrides}: R − (B + lines) = {} (B {}, R {}), an amount of the rows the gates found (their keys and files are in the sides' quality checks, `canon check`) that falls under no line of the bridge; the bridge is not printed",
            spec.name,
            period.label,
            check.grouped(),
            b_line.grouped(),
            r_line.grouped()
        )));
    }
    if !check.is_zero() {
        return Err(CanonError::definition(
            at_recon(&yaml_path!["lines"]),
            format!(
                "reconciliation `{}` does not tie out for {}: R − (B + lines) = {} (B {}, R {}); the declared lines tie out by construction, so some amount of the detail falls under none of them (a revenue line of the period's deals outside every accounting period, for one); the bridge is not printed",
                spec.name,
                period.label,
                check.plain(),
                b_line.plain(),
                r_line.plain()
            ),
        ));
    }
    // Every file the bridge read still the one bound (see `inputs_held`).
    engine.inputs_held()?;
    let sides = vec![b_result, r_result];
    let (quality_status, overrides) = sides_quality(&sides, &deal_match_rates);
    let data_through = crate::result::reach::earliest(
        sides
            .iter()
            .filter(|s| !s.complete)
            .filter_map(|s| s.data_through.as_deref()),
    )
    .map(str::to_owned);
    Ok(ReconciliationResult {
        reconciliation: spec.name.clone(),
        label: spec.label.clone(),
        kind: "reconciliation",
        definition: definition_ref(&catalog, file, spec),
        period: period.clone(),
        bridge: bridge_lines,
        check,
        complete: sides.iter().all(|s| s.complete),
        data_through,
        quality_status,
        overrides,
        deals,
        lines,
        match_rates,
        deal_match_rates,
        sides,
    })
}

/// The worst quality status of the sides and of the deal match rates, and
/// the union of the sides' overrides.
fn sides_quality(
    sides: &[GovernedResult],
    deal_match_rates: &[crate::quality::match_rates::DealMatchRate],
) -> (String, Vec<String>) {
    use crate::quality::Status;
    let status = sides
        .iter()
        .map(|s| match s.quality_status.as_str() {
            "error" => Status::Error,
            "warn" => Status::Warn,
            _ => Status::Pass,
        })
        .chain(deal_match_rates.iter().map(|m| m.status.level()))
        .max()
        .unwrap_or(Status::Pass)
        .name()
        .to_string();
    let mut overrides: Vec<String> = Vec::new();
    for o in sides.iter().flat_map(|s| &s.overrides) {
        if !overrides.contains(o) {
            overrides.push(o.clone());
        }
    }
    (status, overrides)
}

type Bridge = (
    Vec<BridgeLine>,
    Dec,
    Vec<DealDetail>,
    Vec<LineDetail>,
    MatchRates,
);

/// The declared lines from the plans' outputs, summed exactly: each amount
/// of the vocabulary is a sum of the detail, each line its sign times the
/// sum of the amounts it holds.
fn bridge(
    declared: &[lines::Line],
    deal_rows: &[RecordBatch],
    recognized: &[RecordBatch],
    line_rows: &[RecordBatch],
) -> Result<Bridge> {
    let zero = Dec::new(0, 2);
    // The line each amount is shown under, for the detail's categories.
    let line_of = |a: Amount| -> String {
        declared
            .iter()
            .find(|l| l.holds.contains(&a))
            .map(|l| l.name.clone())
            .unwrap_or_else(|| a.name().to_string())
    };
    let unscheduled_line = line_of(Amount::BookingsWithoutLines);
    let mut line_names: BTreeMap<String, String> = BTreeMap::new();
    let mut deals = Vec::new();
    let mut with_lines = 0i64;
    for b in deal_rows {
        let c = |i: usize| b.column(i).as_ref();
        for i in 0..b.num_rows() {
            let has_lines = {
                let a = c(13).as_boolean();
                !a.is_null(i) && a.value(i)
            };
            with_lines += i64::from(has_lines);
            let booking = dec(c(5), i).unwrap_or(zero);
            let scheduled_total = dec(c(6), i).unwrap_or(zero);
            let amount_difference = dec(c(12), i).unwrap_or(zero);
            deals.push(DealDetail {
                deal: string(c(0), i).unwrap_or_default(),
                account: string(c(1), i),
                close_date: c(2)
                    .as_primitive::<Date32Type>()
                    .value_as_date(i)
                    .filter(|_| c(2).is_valid(i))
                    .ok_or_else(|| {
                        CanonError::Internal(format!(
                            "the bridge's deal {} has no close date",
                            string(c(0), i).unwrap_or_default()
                        ))
                    })?,
                currency: string(c(3), i),
                amount: dec(c(4), i),
                booking,
                scheduled_total,
                in_period: dec(c(7), i).unwrap_or(zero),
                before_period: dec(c(8), i).unwrap_or(zero),
                after_period: dec(c(9), i).unwrap_or(zero),
                not_yet_recognized: dec(c(10), i).unwrap_or(zero),
                unscheduled: dec(c(11), i).unwrap_or(zero),
                amount_difference,
                // What remains of the schedule after the booking and the
                // amount difference: the books' rates against the CRM's.
                fx_difference: if has_lines {
                    scheduled_total - booking - amount_difference
                } else {
                    zero
                },
                category: if has_lines {
                    lines::SCHEDULED.to_string()
                } else {
                    unscheduled_line.clone()
                },
            });
        }
    }
    deals.sort_by(|a, b| (&a.close_date, &a.deal).cmp(&(&b.close_date, &b.deal)));
    let mut totals: BTreeMap<String, Dec> = BTreeMap::new();
    let mut lines = Vec::new();
    for b in line_rows {
        let c = |i: usize| b.column(i).as_ref();
        for i in 0..b.num_rows() {
            let amount_name = string(c(4), i).unwrap_or_default();
            let category = line_names
                .entry(amount_name)
                .or_insert_with_key(|k| {
                    Amount::from_name(k)
                        .map(line_of)
                        .unwrap_or_else(|| k.clone())
                })
                .clone();
            lines.push(LineDetail {
                line: string(c(0), i).unwrap_or_default(),
                deal: string(c(1), i),
                link: string(c(2), i),
                amount: dec(c(3), i).unwrap_or(zero),
                category,
                reason: string(c(5), i),
            });
        }
    }
    lines.sort_by(|a, b| (&a.category, &a.line).cmp(&(&b.category, &b.line)));
    // One row per outside category and one for P's deals' lines; R and its
    // counts are their sums.
    let (mut r, mut n, mut linked) = (zero, 0i64, 0i64);
    for b in recognized {
        let count = |c: usize, i: usize| {
            b.column(c)
                .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                .value(i)
        };
        for i in 0..b.num_rows() {
            let total = dec(b.column(1).as_ref(), i).unwrap_or(zero);
            if let Some(k) = string(b.column(0).as_ref(), i) {
                totals.insert(k, total);
            }
            r = r + total;
            n += count(2, i);
            linked += count(3, i);
        }
    }
    // Every amount of the vocabulary, unsigned.
    let sum = |f: &dyn Fn(&DealDetail) -> Dec| deals.iter().fold(zero, |a, d| a + f(d));
    let total = |a: Amount| totals.get(a.name()).copied().unwrap_or(zero);
    let amounts: BTreeMap<Amount, Dec> = [
        (Amount::Bookings, sum(&|d| d.booking)),
        (Amount::LinesAfterPeriod, sum(&|d| d.after_period)),
        (Amount::LinesBeforePeriod, sum(&|d| d.before_period)),
        (
            Amount::LinesInPeriodNotRecognized,
            sum(&|d| d.not_yet_recognized),
        ),
        (Amount::BookingsWithoutLines, sum(&|d| d.unscheduled)),
        (Amount::AmountDifference, sum(&|d| d.amount_difference)),
        (Amount::FxDifference, sum(&|d| d.fx_difference)),
        (
            Amount::RecognizedOfDealsWonBeforePeriod,
            total(Amount::RecognizedOfDealsWonBeforePeriod),
        ),
        (
            Amount::RecognizedOfDealsWonAfterPeriod,
            total(Amount::RecognizedOfDealsWonAfterPeriod),
        ),
        (
            Amount::RecognizedWithoutCountedDeal,
            total(Amount::RecognizedWithoutCountedDeal),
        ),
        (Amount::RecognizedRevenue, r),
    ]
    .into_iter()
    .collect();
    let bridge_lines: Vec<BridgeLine> = declared
        .iter()
        .map(|l| BridgeLine {
            line: l.name.clone(),
            label: l.label.clone(),
            sign: l.sign.map(crate::spec::BridgeSign::symbol),
            holds: l.holds.iter().map(|a| a.name()).collect(),
            value: l.value(&amounts),
        })
        .collect();
    let values: Vec<Dec> = bridge_lines.iter().map(|l| l.value).collect();
    let check = lines::check_value(&values);
    let match_rates = MatchRates {
        recognized_lines: n,
        recognized_lines_linked: linked,
        deals: deals.len() as i64,
        deals_with_lines: with_lines,
    };
    Ok((bridge_lines, check, deals, lines, match_rates))
}

fn string(a: &dyn Array, i: usize) -> Option<String> {
    if a.is_null(i) {
        return None;
    }
    match a.data_type() {
        DataType::Utf8 => Some(a.as_string::<i32>().value(i).to_string()),
        DataType::Utf8View => Some(a.as_string_view().value(i).to_string()),
        _ => None,
    }
}

fn dec(a: &dyn Array, i: usize) -> Option<Dec> {
    Dec::from_cell(a, i)
}

/// The revenue metric's entity and its rows with their period link: what
/// the link rules read.
async fn revenue_frame(
    engine: &Engine,
    r_metric: &crate::spec::MetricSpec,
) -> Result<(String, datafusion::prelude::DataFrame)> {
    let (entity, frame) = crate::compile::link_rules::revenue_frame(engine, r_metric).await?;
    Ok((entity, engine.bound(frame)))
}

/// Reconciliation `name`: (metrics file, index, spec), or an unknown-name
/// request error.
pub fn find<'a>(
    catalog: &'a crate::catalog::Catalog,
    name: &str,
) -> Result<(usize, usize, &'a ReconciliationSpec)> {
    for (fi, f) in catalog.files.metrics.iter().enumerate() {
        for (ri, r) in f.spec.reconciliations.iter().enumerate() {
            if r.name == name {
                return Ok((fi, ri, r));
            }
        }
    }
    let known: Vec<&str> = catalog
        .files
        .metrics
        .iter()
        .flat_map(|f| f.spec.reconciliations.iter().map(|r| r.name.as_str()))
        .collect();
    let hint = crate::suggest::did_you_mean(name, &known)
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default();
    Err(CanonError::request(format!(
        "unknown reconciliation `{name}`{hint}; known: {}",
        if known.is_empty() {
            "none".into()
        } else {
            known.join(", ")
        }
    )))
}

fn definition_ref(
    catalog: &crate::catalog::Catalog,
    file: usize,
    spec: &ReconciliationSpec,
) -> DefinitionRef {
    use sha2::{Digest, Sha256};
    let f = &catalog.files.metrics[file];
    DefinitionRef {
        file: f.display_path.display().to_string(),
        version: spec.version,
        sha256: hex::encode(Sha256::digest(serde_json::to_vec(spec).unwrap_or_default())),
        owner: spec.owner.clone(),
        status: spec.status.name().to_string(),
        system: "crm+finance".into(),
    }
}
