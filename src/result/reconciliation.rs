//! Writers for a reconciliation: the bridge as a controller reads it, and
//! the detail behind every line for drilling in.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

use serde::Serialize;

use super::flat::csv_field;
use super::render::Format;
use super::{DefinitionRef, GovernedResult};
use chrono::NaiveDate;

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
    pub close_date: NaiveDate,
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

/// A cell of a flat table, typed as its Parquet column is.
#[derive(Clone)]
enum Cell {
    Text(String),
    Money(Dec),
    Day(NaiveDate),
    Flag(bool),
}

impl Cell {
    fn text(v: &str) -> Option<Cell> {
        Some(Cell::Text(v.to_string()))
    }
}

/// What a column holds: its Parquet type.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Text,
    /// Decimal128 at two decimals, or more when a value has more (never
    /// rounded away).
    Money,
    Day,
    Flag,
}

/// One flat table: the bridge lines, or with `detail` every deal and line
/// behind them (a `record` column says which). Cells keep their types to
/// the file: money was written as text and parsed back for Parquet, which
/// cut any third decimal and read an unreadable one as 0.
struct Rows {
    columns: Vec<(&'static str, Kind)>,
    cells: Vec<Vec<Option<Cell>>>,
}

fn rows(r: &ReconciliationResult, detail: bool) -> Rows {
    let money = |v: Dec| Some(Cell::Money(v));
    if !detail {
        // `complete`: false when the period runs past the data (a bridge
        // of numbers to date), as in a metric's file.
        return Rows {
            columns: vec![
                ("period", Kind::Text),
                ("grain", Kind::Text),
                ("line", Kind::Text),
                ("label", Kind::Text),
                ("value", Kind::Money),
                ("complete", Kind::Flag),
            ],
            cells: r
                .bridge
                .iter()
                .map(|l| {
                    vec![
                        Cell::text(&r.period.label),
                        Cell::text(Period::kind_of_label(&r.period.label)),
                        Cell::text(&l.line),
                        Cell::text(&l.label),
                        money(l.value),
                        Some(Cell::Flag(r.complete)),
                    ]
                })
                .collect(),
        };
    }
    let columns = vec![
        // The period, as in the bridge file (the file's name said it only).
        ("period", Kind::Text),
        // As in a publication's metric files: its periods may be of
        // several kinds.
        ("grain", Kind::Text),
        ("record", Kind::Text),
        ("deal", Kind::Text),
        ("account", Kind::Text),
        ("close_date", Kind::Day),
        ("currency", Kind::Text),
        ("booking", Kind::Money),
        ("scheduled_total", Kind::Money),
        ("in_period", Kind::Money),
        ("before_period", Kind::Money),
        ("after_period", Kind::Money),
        ("not_yet_recognized", Kind::Money),
        ("unscheduled", Kind::Money),
        ("amount_difference", Kind::Money),
        ("fx_difference", Kind::Money),
        ("line", Kind::Text),
        ("line_amount", Kind::Money),
        ("category", Kind::Text),
        ("reason", Kind::Text),
        // As in the bridge file: false for the deals and lines of a period
        // the data has not passed (their amounts are to date).
        ("complete", Kind::Flag),
    ];
    // Cells by column name: a deal and a line fill different columns.
    let row_of = |named: Vec<(&str, Option<Cell>)>| -> Vec<Option<Cell>> {
        let mut row = vec![None; columns.len()];
        row[0] = Cell::text(&r.period.label);
        row[1] = Cell::text(Period::kind_of_label(&r.period.label));
        row[columns.len() - 1] = Some(Cell::Flag(r.complete));
        for (name, value) in named {
            let at = columns.iter().position(|(c, _)| *c == name);
            row[at.expect("a detail column")] = value;
        }
        row
    };
    let text = |v: &Option<String>| v.as_deref().and_then(Cell::text);
    let mut cells = Vec::new();
    for x in &r.deals {
        cells.push(row_of(vec![
            ("record", Cell::text("deal")),
            ("deal", Cell::text(&x.deal)),
            ("account", text(&x.account)),
            ("close_date", Some(Cell::Day(x.close_date))),
            ("currency", text(&x.currency)),
            ("booking", money(x.booking)),
            ("scheduled_total", money(x.scheduled_total)),
            ("in_period", money(x.in_period)),
            ("before_period", money(x.before_period)),
            ("after_period", money(x.after_period)),
            ("not_yet_recognized", money(x.not_yet_recognized)),
            ("unscheduled", money(x.unscheduled)),
            ("amount_difference", money(x.amount_difference)),
            ("fx_difference", money(x.fx_difference)),
            ("category", Cell::text(&x.category)),
        ]));
    }
    for l in &r.lines {
        cells.push(row_of(vec![
            ("record", Cell::text("line")),
            ("deal", text(&l.deal)),
            ("line", Cell::text(&l.line)),
            ("line_amount", money(l.amount)),
            ("category", Cell::text(&l.category)),
            ("reason", text(&l.reason)),
        ]));
    }
    Rows { columns, cells }
}

fn csv(rows: &Rows) -> Vec<u8> {
    let names: Vec<&str> = rows.columns.iter().map(|(c, _)| *c).collect();
    let mut out = names.join(",");
    out.push('\n');
    for row in &rows.cells {
        let line: Vec<String> = row
            .iter()
            .map(|c| match c {
                None => String::new(),
                Some(Cell::Text(t)) => csv_field(t),
                Some(Cell::Money(v)) => v.plain(),
                Some(Cell::Day(d)) => d.to_string(),
                Some(Cell::Flag(f)) => f.to_string(),
            })
            .collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out.into_bytes()
}

fn parquet(rows: &Rows) -> Result<Vec<u8>> {
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
    for (i, (name, kind)) in rows.columns.iter().enumerate() {
        let column = rows.cells.iter().map(|r| r[i].as_ref());
        match kind {
            Kind::Money => {
                let scale = column
                    .clone()
                    .filter_map(|c| match c {
                        Some(Cell::Money(v)) => Some(v.scale),
                        _ => None,
                    })
                    .fold(2, u32::max);
                fields.push(Field::new(
                    *name,
                    DataType::Decimal128(38, scale as i8),
                    true,
                ));
                let a: Decimal128Array = column
                    .map(|c| match c {
                        Some(Cell::Money(v)) => Some(v.rescale(scale).units),
                        _ => None,
                    })
                    .collect();
                arrays.push(Arc::new(a.with_precision_and_scale(38, scale as i8)?));
            }
            Kind::Day => {
                fields.push(Field::new(*name, DataType::Date32, true));
                let a: Date32Array = column
                    .map(|c| match c {
                        Some(Cell::Day(d)) => Some((*d - epoch).num_days() as i32),
                        _ => None,
                    })
                    .collect();
                arrays.push(Arc::new(a));
            }
            Kind::Flag => {
                fields.push(Field::new(*name, DataType::Boolean, false));
                let a: BooleanArray = column
                    .map(|c| Some(matches!(c, Some(Cell::Flag(true)))))
                    .collect();
                arrays.push(Arc::new(a));
            }
            Kind::Text => {
                fields.push(Field::new(*name, DataType::Utf8, true));
                let a: StringArray = column
                    .map(|c| match c {
                        Some(Cell::Text(t)) => Some(t.as_str()),
                        _ => None,
                    })
                    .collect();
                arrays.push(Arc::new(a));
            }
        }
    }
    super::flat::parquet_bytes(&RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        arrays,
    )?)
}
