//! Writers for people (table) and machines (JSON, CSV, Parquet).
//!
//! Every writer produces bytes in memory; the caller writes them to the
//! terminal or atomically to `--out`, so a failed run never leaves half a file.

use super::GovernedResult;
use super::flat::{Entry, Shape};
use crate::decimal::Dec;
use crate::error::{CanonError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
    Parquet,
}

pub fn render(results: &[GovernedResult], format: Format) -> Result<Vec<u8>> {
    match format {
        Format::Table => Ok(results
            .iter()
            .map(table)
            .collect::<Vec<_>>()
            .join("\n")
            .into_bytes()),
        Format::Json => {
            let value = if results.len() == 1 {
                serde_json::to_value(&results[0])
            } else {
                serde_json::to_value(results)
            }
            .map_err(|e| CanonError::Internal(format!("serializing a result: {e}")))?;
            let mut out = serde_json::to_vec_pretty(&value)
                .map_err(|e| CanonError::Internal(format!("serializing a result: {e}")))?;
            out.push(b'\n');
            Ok(out)
        }
        Format::Csv => Ok(super::flat::csv(&entries(results), Shape::QUERY).into_bytes()),
        Format::Parquet => super::flat::parquet(&entries(results), Shape::QUERY),
    }
}

fn entries(results: &[GovernedResult]) -> Vec<Entry<'_>> {
    results.iter().map(Entry::Answered).collect()
}

fn unit_suffix(unit: &str) -> String {
    match unit {
        "ratio" => String::new(),
        u => format!(" {u}"),
    }
}

fn show(v: Option<Dec>) -> String {
    v.map(|d| d.grouped()).unwrap_or_else(|| "—".to_string())
}

/// What an analyst reads: the number first, then what it is made of.
pub fn table(r: &GovernedResult) -> String {
    let mut out = String::new();
    let d = &r.definition;
    out.push_str(&format!(
        "{} — {} v{} ({}, owner {}, system {})\n",
        r.label, r.metric, d.version, d.status, d.owner, d.system
    ));
    let snapshot = r.kind == "snapshot";
    match (r.request.as_of, snapshot) {
        (Some(d), _) => out.push_str(&format!("as of {d} (end of day, reporting zone)")),
        (None, true) => out.push_str(&format!(
            "as of the end of {}  [{} .. {})",
            r.request
                .grain
                .map(|g| format!("each {} of {}", g.name(), r.request.period.label))
                .unwrap_or_else(|| r.request.period.label.clone()),
            r.request.period.from,
            r.request.period.to
        )),
        (None, false) => {
            out.push_str(&format!(
                "period {}  [{} .. {})",
                r.request.period.label, r.request.period.from, r.request.period.to
            ));
            if let Some(g) = r.request.grain {
                out.push_str(&format!("  by {}", g.name()));
            }
        }
    }
    if !r.request.by.is_empty() {
        out.push_str(&format!("  sliced by {}", r.request.by.join(", ")));
    }
    out.push_str(&format!(
        "\n\n  {}{}\n",
        show(r.value),
        unit_suffix(&r.unit)
    ));
    if r.value.is_none() {
        out.push_str(&format!("  {}\n", super::flat::no_value(&r.kind)));
    }
    out.push_str(&to_date_line(r));
    out.push_str(&quality_lines(r));

    let breakdown = r.request.grain.is_some() || !r.request.by.is_empty();
    if breakdown && !r.rows.is_empty() {
        let mut header = vec!["period".to_string()];
        header.extend(r.request.by.iter().cloned());
        header.push("value".to_string());
        let marked = r.rows.iter().any(|row| !row.complete || !row.whole);
        if marked {
            header.push(String::new());
        }
        let state = super::flat::is_state(&r.kind);
        let body: Vec<Vec<String>> = r
            .rows
            .iter()
            .map(|row| {
                let mut cells = vec![row.period.clone()];
                cells.extend(
                    row.slices
                        .iter()
                        .map(|(_, v)| v.clone().unwrap_or_else(|| "(none)".into())),
                );
                cells.push(show(row.value));
                if marked {
                    let mut notes = Vec::new();
                    if !row.whole {
                        notes.push(cut_note(row, &r.request.period, state));
                    }
                    if !row.complete {
                        notes.push("to date".to_string());
                    }
                    cells.push(notes.join("; "));
                }
                cells
            })
            .collect();
        out.push('\n');
        out.push_str(&grid(&header, &body, header.len() - 1));
    }

    if !r.exclusions.is_empty() {
        out.push_str("\nexclusions (a row is counted under the first that matches)\n");
        let multi = r.tallies.len() > 1;
        let header: Vec<String> = ["exclusion", "rows", "value", "reason"]
            .map(String::from)
            .to_vec();
        let body: Vec<Vec<String>> = r
            .exclusions
            .iter()
            .map(|x| {
                let name = if multi {
                    format!("{}: {}", x.metric, x.name)
                } else {
                    x.name.clone()
                };
                vec![
                    name,
                    group_int(x.rows),
                    x.value.grouped(),
                    first_sentence(&x.reason),
                ]
            })
            .collect();
        out.push_str(&grid(&header, &body, 3));
    }
    for t in &r.tallies {
        out.push_str(&format!(
            "\nuniverse of {}: {} rows, {} = counted {} rows, {} + excluded {} rows, {}\n",
            t.metric,
            group_int(t.universe_rows),
            t.universe_value.grouped(),
            group_int(t.included_rows),
            t.included_value.grouped(),
            group_int(t.universe_rows - t.included_rows),
            (t.universe_value - t.included_value).grouped(),
        ));
    }
    // Checks short of a pass are shown beside the number they qualify.
    let flagged: Vec<String> = r
        .quality
        .iter()
        .filter(|q| matches!(q["status"].as_str(), Some("warn" | "error" | "unavailable")))
        .map(|q| {
            let text = |k: &str| q[k].as_str().unwrap_or("").to_string();
            let what = [text("rule"), text("table"), text("column")]
                .into_iter()
                .find(|t| !t.is_empty())
                .unwrap_or_default();
            let detail = match (q["rate"].as_str(), q["warn_below"].as_str()) {
                (Some(rate), Some(below)) => {
                    format!("{} of {} = {rate}, below {below}", q["matched"], q["rows"])
                }
                _ => text("detail"),
            };
            format!(
                "  {:<5}  {} {what}: {detail}\n",
                text("status"),
                text("check")
            )
        })
        .collect();
    if !flagged.is_empty() {
        out.push_str(&format!("\nquality: {}\n", r.quality_status));
        for f in flagged {
            out.push_str(&f);
        }
    }
    if !r.lineage.sources.is_empty() {
        out.push_str("\nsources\n");
        for s in &r.lineage.sources {
            let rows: i64 = s.files.iter().map(|f| f.rows).sum();
            let bytes: u64 = s.files.iter().map(|f| f.bytes).sum();
            out.push_str(&format!(
                "  {}/{}  {} file(s), {} rows, {} bytes  columns: {}\n",
                s.system,
                s.table,
                s.files.len(),
                group_int(rows),
                group_int(bytes as i64),
                s.columns.join(", ")
            ));
        }
    }
    out.push_str(&format!(
        "\ndefinition {} v{} sha256 {}\nfingerprint {}  ({} ms)\n",
        d.file,
        d.version,
        &d.sha256[..12],
        &r.fingerprint[..16],
        r.elapsed_ms
    ));
    if !r.overrides.is_empty() {
        // A number let through a failing gate by name says so where it is read.
        out.push_str(&format!(
            "\nQUALITY {}: computed under override {}\n",
            r.quality_status.to_uppercase(),
            r.overrides.join(", ")
        ));
        for c in &r.quality {
            if c.get("status").and_then(|s| s.as_str()) == Some("error") {
                let text = |k: &str| c.get(k).and_then(|v| v.as_str()).unwrap_or("");
                out.push_str(&format!(
                    "  {} {}: {}\n",
                    text("table"),
                    text("check"),
                    text("detail")
                ));
            }
        }
    }
    if r.cache.status == "hit" {
        out.push_str(&format!(
            "served from cache: computed at {} in {} ms; definitions and input files unchanged\n",
            r.cache.computed_at.as_deref().unwrap_or("?"),
            r.cache.computed_ms.unwrap_or_default()
        ));
    }
    out
}

/// Where a row's bucket is cut to the request: a state taken before its
/// bucket's last day ("at 2025-04-14"), a flow's first or last bucket
/// ("from 2025-01-15", "to 2025-04-14", both for a request inside one).
fn cut_note(row: &super::ResultRow, period: &crate::calendar::Period, state: bool) -> String {
    let last = row.period_end.pred_opt().unwrap_or(row.period_end);
    if state {
        return format!("at {}", row.period_start);
    }
    match (row.period_start == period.from, row.period_end == period.to) {
        (true, true) if last == row.period_start => format!("{last} only"),
        (true, true) => format!("{}..{last} only", row.period_start),
        (true, false) => format!("from {}", row.period_start),
        _ => format!("to {last}"),
    }
}

/// The line under a number whose period runs past the data: how far the
/// data reaches, and that the number is not the period's (or that the
/// period has not begun in the data at all).
pub(super) fn to_date_line(r: &GovernedResult) -> String {
    // Set exactly when the result is not complete (`reach::judge`).
    let Some(through) = r.data_through.as_deref() else {
        return String::new();
    };
    let at = chrono::DateTime::parse_from_rfc3339(through).ok();
    let shown = at
        .map(|t| t.format("%Y-%m-%d %H:%M (UTC%:z)").to_string())
        .unwrap_or_else(|| through.to_string());
    let period = &r.request.period;
    let begun = at.is_none_or(|t| t.date_naive() >= period.from);
    // Past the period's end and still not complete: a conversion's window.
    let over = at.is_some_and(|t| t.date_naive() >= period.to);
    // A state taken at a day the data has not passed is that day's state as
    // the data known so far schedules it (a charge known to end on the 15th
    // is out of it): not the state the data reaches, and not the day's final
    // state, which changes made after the extract may still move.
    let last_day = period.to.pred_opt().unwrap_or(period.to);
    let state = super::flat::is_state(&r.kind);
    let said = match (r.request.as_of, begun) {
        (Some(d), true) => format!("before the end of {d}; not the final state of that day"),
        (Some(d), false) => format!(
            "before {d} begins: {d}'s state as the data known by then schedules it; not the final state of that day"
        ),
        (None, _) if state && !over => format!(
            "before {} is over: the state at its last day ({last_day}) as the data known by then schedules it; not the final state of that day",
            period.label
        ),
        (None, _) if over => format!(
            "after {} is over, but not past its conversion window in every input; not the period's final value",
            period.label
        ),
        (None, false) if period.label == period.from.to_string() => format!(
            "before {} begins: none of it is in the data yet",
            period.label
        ),
        (None, false) => format!(
            "before {} begins ({}): none of the period is in the data yet",
            period.label, period.from
        ),
        (None, true) => format!(
            "before {} is over (its last day {last_day}); not the period's final number",
            period.label,
        ),
    };
    format!("  to date: the data reaches {shown}, {said}\n")
}

/// The checks that did not pass and the overrides used, under the number:
/// a number over inputs that warn must not look like one that passed.
fn quality_lines(r: &GovernedResult) -> String {
    let mut out: String = failed_checks(&r.quality).concat();
    if !r.overrides.is_empty() {
        out.push_str(&format!("  overrides: {}\n", r.overrides.join(", ")));
    }
    out
}

/// One line per check that did not pass (`  quality warn: TABLE CHECK
/// (detail)`), shared with the reconciliation's table.
pub(super) fn failed_checks(quality: &[serde_json::Value]) -> Vec<String> {
    let mut out = Vec::new();
    for c in quality {
        let text = |key: &str| c.get(key).and_then(|v| v.as_str()).unwrap_or("");
        if matches!(text("status"), "warn" | "error") {
            out.push(format!(
                "  quality {}: {} {} ({})\n",
                text("status"),
                text("table"),
                text("check"),
                text("detail")
            ));
        }
    }
    out
}

fn first_sentence(s: &str) -> String {
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match s.find(". ") {
        Some(i) => s[..=i].to_string(),
        None => s,
    }
}

fn group_int(v: i64) -> String {
    Dec::from_int(v).grouped()
}

/// Aligned columns; columns from `right_from` on (numbers) are right-aligned
/// except the last when it is text.
fn grid(header: &[String], body: &[Vec<String>], numeric_upto: usize) -> String {
    let n = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in body {
        for (i, c) in row.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let numeric = |i: usize| {
        (1..=numeric_upto).contains(&i)
            && header[i] != "reason"
            && (header[i] == "value" || header[i] == "rows")
    };
    let line = |cells: &[String]| {
        let mut s = String::from(" ");
        for (i, c) in cells.iter().enumerate() {
            let pad = widths[i] - c.chars().count();
            s.push(' ');
            if numeric(i) {
                s.push_str(&" ".repeat(pad));
                s.push_str(c);
            } else {
                s.push_str(c);
                if i + 1 < n {
                    s.push_str(&" ".repeat(pad));
                }
            }
            s.push(' ');
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header);
    for row in body {
        out.push_str(&line(row));
    }
    out
}
