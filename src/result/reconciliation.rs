//! Writers for a reconciliation: the bridge as a controller reads it, and
//! the detail behind every line for drilling in.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, Decimal128Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

use serde::Serialize;

use super::flat::csv_field;
use super::render::Format;
use super::{DefinitionRef, GovernedResult};
use crate::calendar::Period;
use crate::decimal::Dec;
use crate::error::{CanonError, Result};

/// One line of the bridge: its declared name, sign and amounts, and its
/// signed value.
#[derive(Debug, Clone, Serialize)]
pub struct BridgeLine {
    pub line: String,
    pub label: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sign: Option<&'static str>,
    pub holds: Vec<&'static str>,
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
    /// `scheduled`, or the name of the line holding `bookings_without_lines`.
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
    /// The name of the bridge line holding the line's amount.
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
    /// R − (B + the lines between): zero, or the bridge is refused.
    pub check: Dec,
    /// `false` when either side is a number to date (`result::reach`);
    /// absent when true.
    #[serde(skip_serializing_if = "super::is_complete")]
    pub complete: bool,
    /// Then: the earlier of the two sides' `data_through`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_through: Option<String>,
    /// The worst quality status of the two sides and of the deal match
    /// rates the bridge relies on (pass, warn or error): a bridge over
    /// inputs that warn must not read as one that passed.
    pub quality_status: String,
    /// The overrides the sides were computed with (union, in order).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<String>,
    pub deals: Vec<DealDetail>,
    pub lines: Vec<LineDetail>,
    pub match_rates: MatchRates,
    /// The match rates the bridge relies on, over its period: revenue lines
    /// recognized in it linked to a counted deal, the period's counted deals
    /// with a billing subscription.
    pub deal_match_rates: Vec<crate::quality::match_rates::DealMatchRate>,
    /// The two governed results the bridge reconciles, with their lineage.
    pub sides: Vec<GovernedResult>,
}

pub fn render(r: &ReconciliationResult, format: Format, detail: bool) -> Result<Vec<u8>> {
    match format {
        Format::Table => Ok(table(r, detail).into_bytes()),
        Format::Json => {
            let mut out = serde_json::to_vec_pretty(r)
                .map_err(|e| CanonError::Internal(format!("serializing a reconciliation: {e}")))?;
            out.push(b'\n');
            Ok(out)
        }
        Format::Csv => Ok(csv(&rows(r, detail))),
        Format::Parquet => parquet(&rows(r, detail)),
    }
}

fn table(r: &ReconciliationResult, detail: bool) -> String {
    let d = &r.definition;
    let mut out = format!(
        "{} — {} v{} ({}, owner {})\nperiod {}  [{} .. {})\n\n",
        r.label,
        r.reconciliation,
        d.version,
        d.status,
        d.owner,
        r.period.label,
        r.period.from,
        r.period.to
    );
    let width = r
        .bridge
        .iter()
        .map(|l| l.label.chars().count())
        .max()
        .unwrap_or(10)
        .max(24);
    let values: Vec<String> = r.bridge.iter().map(|l| l.value.grouped()).collect();
    let vw = values.iter().map(|v| v.len()).max().unwrap_or(4).max(10);
    for (i, (l, v)) in r.bridge.iter().zip(&values).enumerate() {
        if i == r.bridge.len() - 1 {
            out.push_str(&format!("  {}\n", "-".repeat(width + vw + 2)));
        }
        out.push_str(&format!("  {:<width$}  {:>vw$}\n", l.label, v));
    }
    out.push_str(&format!(
        "  {:<width$}  {:>vw$}\n",
        "check: R − (B + lines)",
        r.check.grouped()
    ));
    // A period the data has not passed: both sides are to date, as far as
    // the earlier of their data reaches.
    if let Some(side) = r
        .sides
        .iter()
        .find(|s| !s.complete && s.data_through == r.data_through)
    {
        out.push_str(&super::render::to_date_line(side));
    }
    // The sides' checks that did not pass and the overrides, under the
    // bridge as `canon query` prints them under a number (a table both
    // sides read is said once).
    let mut failed: Vec<String> = Vec::new();
    for line in r
        .sides
        .iter()
        .flat_map(|s| super::render::failed_checks(&s.quality))
    {
        if !failed.contains(&line) {
            failed.push(line);
        }
    }
    out.push_str(&format!("\n  quality: {}\n", r.quality_status));
    for line in failed {
        out.push_str(&line);
    }
    if !r.overrides.is_empty() {
        out.push_str(&format!("  overrides: {}\n", r.overrides.join(", ")));
    }
    let m = &r.match_rates;
    out.push_str(&format!(
        "\nrevenue lines recognized in the period linked to a counted deal: {} of {}\nperiod's deals with revenue lines: {} of {}\n",
        m.recognized_lines_linked, m.recognized_lines, m.deals_with_lines, m.deals
    ));
    // The match rates the bridge relies on, judged.
    for q in &r.deal_match_rates {
        out.push_str(&format!(
            "{} ({}): {} of {} = {}  {}{}\n",
            q.rule,
            q.scope,
            q.matched,
            q.rows,
            q.rate.map(|r| r.plain()).unwrap_or_else(|| "-".into()),
            q.status.name(),
            q.detail
                .as_ref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        ));
    }
    for s in &r.sides {
        out.push_str(&format!(
            "side {}: {} v{} sha256 {}  ({} {})\n",
            s.metric,
            s.definition.file,
            s.definition.version,
            &s.definition.sha256[..12],
            s.value.map(|v| v.grouped()).unwrap_or_default(),
            s.unit
        ));
    }
    if detail {
        out.push_str("\ndeals of the period\n");
        out.push_str(&format!(
            "  {:<20} {:<20} {:<10} {:<4} {:>14} {:>14} {:>14} {:>14} {:>14} {:>14} {:>12} {:>12}\n",
            "deal", "account", "closed", "cur", "booking", "scheduled", "in period", "before", "after", "not yet rec.", "amount diff", "fx diff"
        ));
        for x in &r.deals {
            out.push_str(&format!(
                "  {:<20} {:<20} {:<10} {:<4} {:>14} {:>14} {:>14} {:>14} {:>14} {:>14} {:>12} {:>12}\n",
                x.deal,
                x.account.clone().unwrap_or_default(),
                x.close_date,
                x.currency.clone().unwrap_or_default(),
                x.booking.grouped(),
                x.scheduled_total.grouped(),
                x.in_period.grouped(),
                x.before_period.grouped(),
                x.after_period.grouped(),
                x.not_yet_recognized.grouped(),
                x.amount_difference.grouped(),
                x.fx_difference.grouped()
            ));
        }
        out.push_str("\nrevenue lines recognized in the period outside the period's deals\n");
        for l in &r.lines {
            out.push_str(&format!(
                "  {:<20} {:<34} {:>14}  deal {}  {}\n",
                l.line,
                l.category,
                l.amount.grouped(),
                l.deal.clone().unwrap_or_else(|| "—".into()),
                l.reason.clone().unwrap_or_default()
            ));
        }
    }
    out
}

/// One flat table: the bridge lines, or with `detail` every deal and line
/// behind them (a `record` column says which).
struct Rows {
    columns: Vec<&'static str>,
    /// Text cells; money cells are parsed back into Decimal128 for Parquet,
    /// flag cells (`true`/`false`) into Boolean.
    cells: Vec<Vec<Option<String>>>,
    money: Vec<bool>,
    flag: Vec<bool>,
}

fn rows(r: &ReconciliationResult, detail: bool) -> Rows {
    let d = |v: Dec| Some(v.plain());
    if !detail {
        // `complete`: false when the period runs past the data (a bridge
        // of numbers to date), as in a metric's file.
        return Rows {
            columns: vec!["period", "line", "label", "value", "complete"],
            cells: r
                .bridge
                .iter()
                .map(|l| {
                    vec![
                        Some(r.period.label.clone()),
                        Some(l.line.clone()),
                        Some(l.label.clone()),
                        d(l.value),
                        Some(r.complete.to_string()),
                    ]
                })
                .collect(),
            money: vec![false, false, false, true, false],
            flag: vec![false, false, false, false, true],
        };
    }
    let columns = vec![
        // The period, as in the bridge file (the file's name said it only).
        "period",
        "record",
        "deal",
        "account",
        "close_date",
        "currency",
        "booking",
        "scheduled_total",
        "in_period",
        "before_period",
        "after_period",
        "not_yet_recognized",
        "unscheduled",
        "amount_difference",
        "fx_difference",
        "line",
        "line_amount",
        "category",
        "reason",
        // As in the bridge file: false for the deals and lines of a period
        // the data has not passed (their amounts are to date).
        "complete",
    ];
    // Cells by column name: a deal and a line fill different columns.
    let row_of = |named: Vec<(&str, Option<String>)>| -> Vec<Option<String>> {
        let mut row = vec![None; columns.len()];
        row[0] = Some(r.period.label.clone());
        row[columns.len() - 1] = Some(r.complete.to_string());
        for (name, value) in named {
            let at = columns.iter().position(|c| *c == name);
            row[at.expect("a detail column")] = value;
        }
        row
    };
    let mut cells = Vec::new();
    for x in &r.deals {
        cells.push(row_of(vec![
            ("record", Some("deal".into())),
            ("deal", Some(x.deal.clone())),
            ("account", x.account.clone()),
            ("close_date", Some(x.close_date.clone())),
            ("currency", x.currency.clone()),
            ("booking", d(x.booking)),
            ("scheduled_total", d(x.scheduled_total)),
            ("in_period", d(x.in_period)),
            ("before_period", d(x.before_period)),
            ("after_period", d(x.after_period)),
            ("not_yet_recognized", d(x.not_yet_recognized)),
            ("unscheduled", d(x.unscheduled)),
            ("amount_difference", d(x.amount_difference)),
            ("fx_difference", d(x.fx_difference)),
            ("category", Some(x.category.clone())),
        ]));
    }
    for l in &r.lines {
        cells.push(row_of(vec![
            ("record", Some("line".into())),
            ("deal", l.deal.clone()),
            ("line", Some(l.line.clone())),
            ("line_amount", d(l.amount)),
            ("category", Some(l.category.clone())),
            ("reason", l.reason.clone()),
        ]));
    }
    let money = columns
        .iter()
        .map(|c| {
            matches!(
                *c,
                "booking"
                    | "scheduled_total"
                    | "in_period"
                    | "before_period"
                    | "after_period"
                    | "not_yet_recognized"
                    | "unscheduled"
                    | "amount_difference"
                    | "fx_difference"
                    | "line_amount"
            )
        })
        .collect();
    let flag = columns.iter().map(|c| *c == "complete").collect();
    Rows {
        columns,
        cells,
        money,
        flag,
    }
}

fn csv(rows: &Rows) -> Vec<u8> {
    let mut out = rows.columns.join(",");
    out.push('\n');
    for row in &rows.cells {
        let line: Vec<String> = row
            .iter()
            .map(|c| c.as_deref().map(csv_field).unwrap_or_default())
            .collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out.into_bytes()
}

fn cents(s: &str) -> i128 {
    let negative = s.starts_with('-');
    let (int, frac) = s
        .trim_start_matches('-')
        .split_once('.')
        .unwrap_or((s.trim_start_matches('-'), ""));
    let mut frac = frac.to_string();
    while frac.len() < 2 {
        frac.push('0');
    }
    let v = int.parse::<i128>().unwrap_or(0) * 100 + frac[..2].parse::<i128>().unwrap_or(0);
    if negative { -v } else { v }
}

fn parquet(rows: &Rows) -> Result<Vec<u8>> {
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (i, name) in rows.columns.iter().enumerate() {
        if rows.money[i] {
            fields.push(Field::new(*name, DataType::Decimal128(38, 2), true));
            let a: Decimal128Array = rows
                .cells
                .iter()
                .map(|r| r[i].as_deref().map(cents))
                .collect();
            arrays.push(Arc::new(a.with_precision_and_scale(38, 2)?));
        } else if rows.flag[i] {
            fields.push(Field::new(*name, DataType::Boolean, false));
            let a: BooleanArray = rows
                .cells
                .iter()
                .map(|r| Some(r[i].as_deref() == Some("true")))
                .collect();
            arrays.push(Arc::new(a));
        } else {
            fields.push(Field::new(*name, DataType::Utf8, true));
            let a: StringArray = rows.cells.iter().map(|r| r[i].clone()).collect();
            arrays.push(Arc::new(a));
        }
    }
    super::flat::parquet_bytes(&RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        arrays,
    )?)
}
