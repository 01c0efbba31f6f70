//! Results as flat files (CSV, Parquet): one row per metric × period ×
//! slice, the shape `query --out` writes and a publication's
//! `metrics/<metric>.*` files carry.
//!
//! A publication's files differ in two ways, both for the BI tool that
//! reads every metric's file at once (`read_parquet('metrics/*.parquet')`):
//! - **every period has its row**: one canon could not answer (blocked by a
//!   gate or a stale sign-off, pending while a conversion window is open)
//!   has a null value and says why in `status` and `reason`; a dashboard of
//!   the latest quarter otherwise showed the quarter before without a word;
//! - **one decimal scale** for `value` in every file: each file had its
//!   metric's (money 2, counts 0, ratios 6), and a reader taking the first
//!   file's type rounded the others (win_rate 0.366197 read as 0.37, nrr
//!   1.402856 as 1.40; with `union_by_name` every value lost its decimals).

use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::parquet::arrow::ArrowWriter;

use super::{GovernedResult, ResultRow};
use crate::calendar::Period;
use crate::decimal::Dec;
use crate::error::Result;

/// A period a publication has no number for, and why.
pub struct Unanswered {
    pub metric: String,
    pub period: Period,
    /// A state (snapshot, cohort) is dated by the day it would be taken at,
    /// as an answered one is.
    pub state: bool,
    pub unit: String,
    /// `blocked` or `pending`, as in the manifest.
    pub status: String,
    pub reason: String,
}

/// One period of a metric's publication.
pub enum Entry<'a> {
    Answered(&'a GovernedResult),
    Unanswered(&'a Unanswered),
}

/// One line of a flat file.
struct Line {
    metric: String,
    period: String,
    start: NaiveDate,
    end: NaiveDate,
    slices: Vec<(String, Option<String>)>,
    value: Option<Dec>,
    unit: String,
    /// Unknown (null) for a period without a number.
    complete: Option<bool>,
    /// `(status, reason)`: a publication's files only.
    status: Option<(String, Option<String>)>,
}

/// The shape of a flat file: `query --out`'s, or a publication's (status
/// columns, `value` at `scale`).
#[derive(Clone, Copy)]
pub struct Shape {
    pub published: bool,
    /// The scale of `value` in Parquet; `None`: the largest of the file's
    /// values (2 when it has none).
    pub scale: Option<u32>,
}

impl Shape {
    pub const QUERY: Shape = Shape {
        published: false,
        scale: None,
    };
}

/// The rows a file carries for a result: a series' or slices' rows, else
/// one row of the headline. A state (snapshot, cohort) is dated by the day
/// it is taken at, as its series rows and its JSON row are: arr for
/// FY2026-Q1 is the state of 2025-04-30, `[2025-04-30, 2025-05-01)`, not a
/// sum over the quarter's days, which `[2025-02-01, 2025-05-01)` read as.
fn rows_or_headline(r: &GovernedResult) -> Vec<ResultRow> {
    if r.request.grain.is_some() || !r.request.by.is_empty() {
        r.rows.clone()
    } else {
        let period = &r.request.period;
        let taken = period.to.pred_opt().filter(|_| is_state(&r.kind));
        vec![ResultRow {
            period: period.label.clone(),
            period_start: taken.unwrap_or(period.from),
            period_end: period.to,
            slices: Vec::new(),
            value: r.value,
            bridge: r.bridge.clone(),
            complete: r.complete,
            whole: true,
        }]
    }
}

/// Why a result of this kind has no number ("—"): nothing to divide by,
/// an empty cohort, or no row to average. The table says it under the
/// dash, a publication in the row's `reason` and the manifest.
pub fn no_value(kind: &str) -> &'static str {
    match kind {
        "ratio" => "no value: the denominator is zero for the period (nothing to divide by)",
        "cohort" => {
            "no value: the cohort is empty (no member was counted at T0; its exclusions say what was left out)"
        }
        "derived" => "no value: a metric it is derived from has none for the period",
        _ => "no value: no row was counted for the period",
    }
}

/// Whether a metric of this kind is a state taken at a day.
pub fn is_state(kind: &str) -> bool {
    kind == "snapshot" || kind == "cohort"
}

fn lines(entries: &[Entry], published: bool) -> Vec<Line> {
    let mut out = Vec::new();
    for entry in entries {
        match entry {
            Entry::Answered(r) => {
                for row in rows_or_headline(r) {
                    out.push(Line {
                        metric: r.metric.clone(),
                        period: row.period,
                        start: row.period_start,
                        end: row.period_end,
                        slices: row.slices,
                        value: row.value,
                        unit: r.unit.clone(),
                        complete: Some(row.complete),
                        status: published.then(|| {
                            let why = row.value.is_none().then(|| no_value(&r.kind).to_string());
                            ("published".to_string(), why)
                        }),
                    });
                }
            }
            Entry::Unanswered(u) => out.push(Line {
                metric: u.metric.clone(),
                period: u.period.label.clone(),
                start: u
                    .period
                    .to
                    .pred_opt()
                    .filter(|_| u.state)
                    .unwrap_or(u.period.from),
                end: u.period.to,
                slices: Vec::new(),
                value: None,
                unit: u.unit.clone(),
                // Neither final nor to date: there is no number.
                complete: None,
                status: Some((u.status.clone(), Some(u.reason.clone()))),
            }),
        }
    }
    out
}

fn slice_names(entries: &[Entry]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for entry in entries {
        if let Entry::Answered(r) = entry {
            for b in &r.request.by {
                if !names.contains(b) {
                    names.push(b.clone());
                }
            }
        }
    }
    names
}

/// A CSV cell, quoted when it holds a comma, quote or newline.
pub(crate) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// One row per metric × period × slice; header first, values exact.
pub fn csv(entries: &[Entry], shape: Shape) -> String {
    let slices = slice_names(entries);
    let mut out = String::from(if shape.published {
        "metric,period,grain,period_start,period_end"
    } else {
        "metric,period,period_start,period_end"
    });
    for s in &slices {
        out.push(',');
        out.push_str(&csv_field(s));
    }
    out.push_str(",value,unit,complete");
    if shape.published {
        out.push_str(",status,reason");
    }
    out.push('\n');
    for line in lines(entries, shape.published) {
        out.push_str(&csv_field(&line.metric));
        out.push(',');
        out.push_str(&csv_field(&line.period));
        if shape.published {
            out.push(',');
            out.push_str(Period::kind_of_label(&line.period));
        }
        out.push_str(&format!(",{},{}", line.start, line.end));
        for s in &slices {
            let v = line
                .slices
                .iter()
                .find(|(n, _)| n == s)
                .and_then(|(_, v)| v.clone());
            out.push(',');
            out.push_str(&csv_field(&v.unwrap_or_default()));
        }
        out.push_str(&format!(
            ",{},{},{}",
            line.value
                .map(|v| match shape.scale {
                    Some(scale) => v.rescale(scale).plain(),
                    None => v.plain(),
                })
                .unwrap_or_default(),
            csv_field(&line.unit),
            line.complete.map(|c| c.to_string()).unwrap_or_default()
        ));
        if let Some((status, reason)) = &line.status {
            out.push_str(&format!(
                ",{},{}",
                csv_field(status),
                csv_field(reason.as_deref().unwrap_or_default())
            ));
        }
        out.push('\n');
    }
    out
}

/// Parquet with plain column names: metric, period, slices, value as
/// Decimal128(38, s) so BI tools read exact money.
pub fn parquet(entries: &[Entry], shape: Shape) -> Result<Vec<u8>> {
    let slices = slice_names(entries);
    let lines = lines(entries, shape.published);
    let scale = shape.scale.unwrap_or_else(|| {
        lines
            .iter()
            .filter_map(|l| l.value.map(|v| v.scale))
            .max()
            .unwrap_or(2)
    });
    let text = |f: &dyn Fn(&Line) -> Option<String>| -> ArrayRef {
        Arc::new(lines.iter().map(f).collect::<StringArray>())
    };
    let mut fields = vec![
        Field::new("metric", DataType::Utf8, false),
        Field::new("period", DataType::Utf8, false),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        text(&|l| Some(l.metric.clone())),
        text(&|l| Some(l.period.clone())),
    ];
    // A publication may mix kinds of period (FY2026-Q1 beside 2025-03).
    if shape.published {
        fields.push(Field::new("grain", DataType::Utf8, false));
        columns.push(text(&|l| {
            Some(Period::kind_of_label(&l.period).to_string())
        }));
    }
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
    for (name, pick) in [
        (
            "period_start",
            (|l: &Line| l.start) as fn(&Line) -> NaiveDate,
        ),
        ("period_end", |l: &Line| l.end),
    ] {
        fields.push(Field::new(name, DataType::Date32, false));
        let days: Date32Array = lines
            .iter()
            .map(|l| Some((pick(l) - epoch).num_days() as i32))
            .collect();
        columns.push(Arc::new(days));
    }
    for s in &slices {
        fields.push(Field::new(s, DataType::Utf8, true));
        columns.push(text(&|l| {
            l.slices
                .iter()
                .find(|(n, _)| n == s)
                .and_then(|(_, v)| v.clone())
        }));
    }
    fields.push(Field::new(
        "value",
        DataType::Decimal128(38, scale as i8),
        true,
    ));
    let values: Decimal128Array = lines
        .iter()
        .map(|l| l.value.map(|v| v.rescale(scale).units))
        .collect();
    columns.push(Arc::new(values.with_precision_and_scale(38, scale as i8)?));
    fields.push(Field::new("unit", DataType::Utf8, false));
    columns.push(text(&|l| Some(l.unit.clone())));
    // False where the row's period runs past the data (a number to date).
    fields.push(Field::new("complete", DataType::Boolean, shape.published));
    columns.push(Arc::new(
        lines.iter().map(|l| l.complete).collect::<BooleanArray>(),
    ));
    if shape.published {
        fields.push(Field::new("status", DataType::Utf8, false));
        columns.push(text(&|l| l.status.as_ref().map(|(s, _)| s.clone())));
        fields.push(Field::new("reason", DataType::Utf8, true));
        columns.push(text(&|l| l.status.as_ref().and_then(|(_, r)| r.clone())));
    }
    parquet_bytes(&RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// One batch as the bytes of a Parquet file: every file canon writes for
/// a reader (results, exclusions, a bridge) is one batch, written whole.
pub fn parquet_bytes(batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buf, batch.schema(), None)?;
    writer.write(batch)?;
    writer.close()?;
    Ok(buf)
}
