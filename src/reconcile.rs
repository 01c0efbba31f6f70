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

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Date32Type, Decimal128Type};
use datafusion::common::{Column, ScalarValue};
use datafusion::functions::expr_fn::coalesce;
use datafusion::functions_aggregate::expr_fn::max;
use datafusion::logical_expr::{Expr, JoinType, cast, col, lit, when};
use serde::Serialize;

use crate::calendar::Period;
use crate::compile::entity::{entity_frame, metric_frame};
use crate::compile::{Request, parse_scoped, simple};
use crate::decimal::Dec;
use crate::error::{CanonError, Result};
use crate::result::{DefinitionRef, GovernedResult};
use crate::run::Engine;
use crate::spec::ReconciliationSpec;
use crate::yaml_path;

/// The bridge categories, in the order of metrics.md.
pub const CATEGORIES: [&str; 11] = [
    "bookings",
    "deferred_to_later_periods",
    "scheduled_before_period",
    "not_yet_recognized",
    "unscheduled_bookings",
    "amount_difference",
    "fx_difference",
    "recognized_from_earlier_bookings",
    "recognized_from_later_bookings",
    "revenue_without_booking",
    "recognized_revenue",
];

#[derive(Debug, Clone, Serialize)]
pub struct BridgeLine {
    pub line: String,
    pub label: String,
    pub value: Dec,
}

/// One of the period's deals, with its schedule.
#[derive(Debug, Clone, Serialize)]
pub struct DealDetail {
    pub deal: String,
    pub account: Option<String>,
    pub close_date: String,
    pub currency: Option<String>,
    pub amount: Option<Dec>,
    pub booking: Dec,
    pub scheduled_total: Dec,
    pub in_period: Dec,
    pub before_period: Dec,
    pub after_period: Dec,
    pub not_yet_recognized: Dec,
    pub unscheduled: Dec,
    pub amount_difference: Dec,
    pub fx_difference: Dec,
    pub category: String,
}

/// A revenue line recognized in the period that the bridge lists on its own:
/// recognized from another period's bookings, or belonging to no counted deal.
#[derive(Debug, Clone, Serialize)]
pub struct LineDetail {
    pub line: String,
    pub deal: Option<String>,
    pub link: Option<String>,
    pub amount: Dec,
    pub category: String,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MatchRates {
    /// Revenue lines recognized in the period that link to a counted deal.
    pub recognized_lines: i64,
    pub recognized_lines_linked: i64,
    /// The period's deals that have revenue lines.
    pub deals: i64,
    pub deals_with_lines: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReconciliationResult {
    pub reconciliation: String,
    pub label: String,
    pub kind: &'static str,
    pub definition: DefinitionRef,
    pub period: Period,
    pub bridge: Vec<BridgeLine>,
    /// R − (B + lines 2–10): zero when the bridge ties out.
    pub check: Dec,
    pub deals: Vec<DealDetail>,
    pub lines: Vec<LineDetail>,
    pub match_rates: MatchRates,
    /// The two governed results the bridge reconciles, with their lineage.
    pub sides: Vec<GovernedResult>,
}

/// Runs reconciliation `name` for `period`.
pub async fn run(engine: &Engine, name: &str, period: &Period) -> Result<ReconciliationResult> {
    let catalog = engine.catalog.clone();
    let (file, index, spec) = find(&catalog, name)?;
    let request = Request {
        period: period.clone(),
        as_of: None,
        rates_as_of: None,
        grain: None,
        by: Vec::new(),
    };
    // The two governed numbers, by the metrics themselves.
    let b_result = crate::query::run_metric(engine, &spec.bookings, &request).await?;
    let r_result = crate::query::run_metric(engine, &spec.revenue, &request).await?;

    // The booking side per deal, over all time: a deal is counted when
    // bookings counts it in some period.
    let (b_id, _, b_metric) = catalog.metric(&spec.bookings)?;
    let all_time = Request {
        period: Period {
            label: "all time".into(),
            from: NaiveDate::from_ymd_opt(1900, 1, 1).expect("date"),
            to: NaiveDate::from_ymd_opt(3000, 1, 1).expect("date"),
        },
        ..request.clone()
    };
    let deals = simple::compile(engine, b_id, &all_time).await?.detail;
    let deal_entity = b_metric
        .entity
        .clone()
        .ok_or_else(|| CanonError::Internal("bookings without an entity".into()))?;
    // The account of each deal, for the detail.
    let (_, _, deal_spec) = catalog
        .entity(&deal_entity)
        .ok_or_else(|| CanonError::Internal("unknown deal entity".into()))?;
    let accounts = entity_frame(engine, &deal_entity).await?.select(vec![
        cast(col(deal_spec.key.as_str()), DataType::Utf8).alias("_deal_key"),
        col("account_id").alias("_account"),
    ])?;
    let deals = deals.join_on(accounts, JoinType::Left, [col("_key").eq(col("_deal_key"))])?;

    // The revenue side per line, with the revenue metric's exclusions.
    let (r_id, _, r_metric) = catalog.metric(&spec.revenue)?;
    let line_entity = r_metric
        .entity
        .clone()
        .ok_or_else(|| CanonError::Internal("revenue without an entity".into()))?;
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
    let mut links = BTreeSet::new();
    links.insert(vec!["period".to_string()]);
    let frame = metric_frame(engine, &line_entity, &links).await?;
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
    let at_recon = |path: &[crate::spec::locate::Step]| {
        let mut full = yaml_path!["reconciliations", index].to_vec();
        full.extend_from_slice(path);
        catalog.files.metrics[file].at(&full)
    };
    // Each link rule yields a deal id or null; the first that yields one wins.
    let mut frame = frame.filter(!excluded)?;
    let mut link_exprs: Vec<(String, Expr)> = Vec::new();
    for (i, rule) in spec.links.iter().enumerate() {
        match (&rule.expr, &rule.lookup) {
            (Some(e), None) => {
                let e = p(e, &at_recon(&yaml_path!["links", i, "expr"]))?;
                link_exprs.push((rule.name.clone(), cast(e, DataType::Utf8)));
            }
            (None, Some(lookup)) => {
                let alias = format!("_lookup{i}");
                let target = entity_frame(engine, &lookup.entity)
                    .await?
                    .filter(col(lookup.value.as_str()).is_not_null())?
                    .aggregate(
                        vec![cast(col(lookup.key.as_str()), DataType::Utf8).alias("_lk")],
                        vec![max(cast(col(lookup.value.as_str()), DataType::Utf8)).alias("_lv")],
                    )?;
                let from = p(
                    &lookup.from,
                    &at_recon(&yaml_path!["links", i, "lookup", "from"]),
                )?;
                frame = frame.join_on(
                    target.alias(&alias)?,
                    JoinType::Left,
                    [cast(from, DataType::Utf8)
                        .eq(Expr::Column(Column::new(Some(alias.as_str()), "_lk")))],
                )?;
                link_exprs.push((
                    rule.name.clone(),
                    Expr::Column(Column::new(Some(alias.as_str()), "_lv")),
                ));
            }
            _ => {
                return Err(CanonError::definition(
                    at_recon(&yaml_path!["links", i]),
                    "a link rule needs exactly one of `expr` or `lookup`",
                ));
            }
        }
    }
    let linked_deal = coalesce(link_exprs.iter().map(|(_, e)| e.clone()).collect());
    let mut link_kind = when(lit(false), lit(ScalarValue::Utf8(None)));
    #[allow(unused_mut)]
    for (n, e) in &link_exprs {
        link_kind = link_kind.when(e.clone().is_not_null(), lit(n.clone()));
    }
    let link_kind = link_kind.otherwise(lit(ScalarValue::Utf8(None)))?;
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
    let joined = lines.join_on(deals, JoinType::Left, [col("_linked").eq(col("_key"))])?;
    let batches = joined
        .select(vec![
            col("_line"),
            col("_line_time"),
            col("_amount"),
            col("_tx"),
            col("_recognized"),
            col("_linked"),
            col("_link"),
            col("_key"),
            col("_time"),
            col("_exclusion"),
        ])?
        .collect()
        .await?;
    let deal_batches =
        simple::compile(engine, b_id, &all_time)
            .await?
            .detail
            .join_on(
                entity_frame(engine, &deal_entity).await?.select(vec![
                    cast(col(deal_spec.key.as_str()), DataType::Utf8).alias("_deal_key"),
                    col("account_id").alias("_account"),
                ])?,
                JoinType::Left,
                [col("_key").eq(col("_deal_key"))],
            )?
            .filter(
                col("_exclusion")
                    .is_null()
                    .and(col("_time").gt_eq(lit(ScalarValue::Date32(Some(
                        simple::days_since_epoch(period.from),
                    )))))
                    .and(col("_time").lt(lit(ScalarValue::Date32(Some(
                        simple::days_since_epoch(period.to),
                    ))))),
            )?
            .select(vec![
                col("_key"),
                col("_time"),
                col("_value"),
                col("_raw"),
                col("_currency"),
                col("_rate"),
                col("_account"),
            ])?
            .collect()
            .await?;
    let base_currency = catalog.files.project.spec.base_currency.clone();
    let result = bridge(spec, period, &deal_batches, &batches, &base_currency)?;
    let (bridge_lines, check, deals, lines, match_rates) = result;
    // The bridge's own B and R must be the governed numbers.
    let b_line = bridge_lines[0].value;
    let r_line = bridge_lines[10].value;
    if Some(b_line) != b_result.value.map(|v| v.rescale(2))
        || Some(r_line) != r_result.value.map(|v| v.rescale(2))
    {
        return Err(CanonError::Internal(format!(
            "the bridge's sides ({b_line}, {r_line}) disagree with the governed metrics ({:?}, {:?})",
            b_result.value, r_result.value
        )));
    }
    Ok(ReconciliationResult {
        reconciliation: spec.name.clone(),
        label: spec.label.clone(),
        kind: "reconciliation",
        definition: definition_ref(&catalog, file, spec),
        period: period.clone(),
        bridge: bridge_lines,
        check,
        deals,
        lines,
        match_rates,
        sides: vec![b_result, r_result],
    })
}

type Bridge = (
    Vec<BridgeLine>,
    Dec,
    Vec<DealDetail>,
    Vec<LineDetail>,
    MatchRates,
);

/// Sums the detail into the eleven lines.
fn bridge(
    spec: &ReconciliationSpec,
    period: &Period,
    deal_batches: &[RecordBatch],
    line_batches: &[RecordBatch],
    base_currency: &str,
) -> Result<Bridge> {
    let from = simple::days_since_epoch(period.from);
    let to = simple::days_since_epoch(period.to);
    let zero = Dec::new(0, 2);
    // The period's deals.
    let mut deals: BTreeMap<String, DealDetail> = BTreeMap::new();
    let mut rates: BTreeMap<String, Option<Dec>> = BTreeMap::new();
    let mut tx_totals: BTreeMap<String, Dec> = BTreeMap::new();
    for b in deal_batches {
        for i in 0..b.num_rows() {
            let key = string(b.column(0).as_ref(), i).unwrap_or_default();
            let day = b.column(1).as_primitive::<Date32Type>().value(i);
            let booking = dec(b.column(2).as_ref(), i).unwrap_or(zero);
            rates.insert(key.clone(), dec(b.column(5).as_ref(), i));
            deals.insert(
                key.clone(),
                DealDetail {
                    deal: key,
                    account: string(b.column(6).as_ref(), i),
                    close_date: date_string(day),
                    currency: string(b.column(4).as_ref(), i),
                    amount: dec(b.column(3).as_ref(), i),
                    booking,
                    scheduled_total: zero,
                    in_period: zero,
                    before_period: zero,
                    after_period: zero,
                    not_yet_recognized: zero,
                    unscheduled: zero,
                    amount_difference: zero,
                    fx_difference: zero,
                    category: String::new(),
                },
            );
        }
    }
    let mut has_lines: BTreeSet<String> = BTreeSet::new();
    let mut lines = Vec::new();
    let mut recognized_lines = 0i64;
    let mut recognized_linked = 0i64;
    let mut recognized_total = zero;
    for b in line_batches {
        for i in 0..b.num_rows() {
            let line = string(b.column(0).as_ref(), i).unwrap_or_default();
            let t = b.column(1).as_primitive::<Date32Type>();
            if t.is_null(i) {
                continue;
            }
            let t = t.value(i);
            let amount = dec(b.column(2).as_ref(), i).unwrap_or(zero);
            let tx = dec(b.column(3).as_ref(), i).unwrap_or(zero);
            let recognized = {
                let a = b.column(4).as_boolean();
                !a.is_null(i) && a.value(i)
            };
            let linked = string(b.column(5).as_ref(), i);
            let link = string(b.column(6).as_ref(), i);
            let matched = !b.column(7).is_null(i);
            let deal_time = (!b.column(8).is_null(i))
                .then(|| b.column(8).as_primitive::<Date32Type>().value(i));
            let exclusion = string(b.column(9).as_ref(), i);
            let in_p = t >= from && t < to;
            if in_p && recognized {
                recognized_lines += 1;
                recognized_total = recognized_total + amount;
            }
            let counted = matched && exclusion.is_none();
            if counted && in_p && recognized {
                recognized_linked += 1;
            }
            let deal_of_p = linked
                .as_ref()
                .filter(|d| counted && deals.contains_key(*d))
                .cloned();
            if let Some(d) = deal_of_p {
                has_lines.insert(d.clone());
                let total = tx_totals.entry(d.clone()).or_insert(zero);
                *total = *total + tx;
                let detail = deals.get_mut(&d).expect("a deal of the period");
                detail.scheduled_total = detail.scheduled_total + amount;
                if t < from {
                    detail.before_period = detail.before_period + amount;
                } else if t >= to {
                    detail.after_period = detail.after_period + amount;
                } else {
                    detail.in_period = detail.in_period + amount;
                    if !recognized {
                        detail.not_yet_recognized = detail.not_yet_recognized + amount;
                    }
                }
                continue;
            }
            if !(in_p && recognized) {
                continue;
            }
            let (category, reason) = match (counted, deal_time) {
                (true, Some(dt)) if dt < from => ("recognized_from_earlier_bookings", None),
                (true, Some(_)) => ("recognized_from_later_bookings", None),
                _ => (
                    "revenue_without_booking",
                    Some(match (&linked, matched, &exclusion) {
                        (None, _, _) => "no link to a deal".to_string(),
                        (Some(_), false, _) => "unknown deal".to_string(),
                        (Some(_), true, Some(x)) => format!("excluded deal: {x}"),
                        (Some(_), true, None) => "deal not won".to_string(),
                    }),
                ),
            };
            lines.push(LineDetail {
                line,
                deal: linked,
                link,
                amount,
                category: category.to_string(),
                reason,
            });
        }
    }
    let _ = base_currency;
    for (key, d) in deals.iter_mut() {
        if has_lines.contains(key) {
            let tx = tx_totals.get(key).copied().unwrap_or(zero);
            let amount = d.amount.unwrap_or(zero);
            // At the booking's rate, rounded to the cent once per deal; a
            // base-currency deal's difference is exact.
            d.amount_difference = match rates.get(key).copied().flatten() {
                Some(rate) => (tx - amount).div(rate, 2).unwrap_or(zero),
                None => (tx - amount).rescale(2),
            };
            d.fx_difference = d.scheduled_total - d.booking - d.amount_difference;
            d.category = "scheduled".into();
        } else {
            d.unscheduled = d.booking;
            d.category = "unscheduled_bookings".into();
        }
    }
    let sum = |f: &dyn Fn(&DealDetail) -> Dec| deals.values().fold(zero, |a, d| a + f(d));
    let line_sum = |c: &str| {
        lines
            .iter()
            .filter(|l| l.category == c)
            .fold(zero, |a, l| a + l.amount)
    };
    let b = sum(&|d| d.booking);
    let values: [Dec; 11] = [
        b,
        zero - sum(&|d| d.after_period),
        zero - sum(&|d| d.before_period),
        zero - sum(&|d| d.not_yet_recognized),
        zero - sum(&|d| d.unscheduled),
        sum(&|d| d.amount_difference),
        sum(&|d| d.fx_difference),
        line_sum("recognized_from_earlier_bookings"),
        line_sum("recognized_from_later_bookings"),
        line_sum("revenue_without_booking"),
        recognized_total,
    ];
    let labels: BTreeMap<&str, &str> = spec
        .lines
        .iter()
        .map(|l| (l.name.as_str(), l.label.as_str()))
        .collect();
    let bridge_lines: Vec<BridgeLine> = CATEGORIES
        .iter()
        .zip(values)
        .map(|(c, v)| BridgeLine {
            line: c.to_string(),
            label: labels.get(c).copied().unwrap_or(c).to_string(),
            value: v,
        })
        .collect();
    let walked = values[..10].iter().fold(zero, |a, v| a + *v);
    let check = values[10] - walked;
    let match_rates = MatchRates {
        recognized_lines,
        recognized_lines_linked: recognized_linked,
        deals: deals.len() as i64,
        deals_with_lines: has_lines.len() as i64,
    };
    Ok((
        bridge_lines,
        check,
        deals.into_values().collect(),
        lines,
        match_rates,
    ))
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
    if a.is_null(i) {
        return None;
    }
    match a.data_type() {
        DataType::Decimal128(_, s) => Some(Dec::new(
            a.as_primitive::<Decimal128Type>().value(i),
            (*s).max(0) as u32,
        )),
        _ => None,
    }
}

fn date_string(days: i32) -> String {
    (NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch") + chrono::Days::new(days as u64))
        .to_string()
}

fn find<'a>(
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
    Err(CanonError::request(format!(
        "unknown reconciliation `{name}`; known: {}",
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
