//! A diff as a reviewer reads it: Markdown for a review comment (tables,
//! the changed elements with both sides, the waterfall per period), and the
//! same text in the terminal.

use std::fmt::Write;

use super::{Diff, ElementChange, Outcome};
use crate::decimal::Dec;

/// Markdown: a heading, the problems, then per metric its changes, numbers
/// and waterfall.
pub fn markdown(d: &Diff) -> String {
    let mut out = String::new();
    let changed = d.metrics.len();
    let _ = writeln!(
        out,
        "## canon diff: {changed} metric(s) differ\n\nBase: {} · head: {} · periods: {}\n",
        d.base,
        d.head,
        d.periods.join(", ")
    );
    if !d.allowed.is_empty() {
        let _ = writeln!(
            out,
            "Both sides computed through gates that fail, by name (`--allow {}`): numbers a query would not give as governed.\n",
            d.allowed.join("`, `--allow ")
        );
    }
    if d.metrics.is_empty() {
        let _ = writeln!(out, "No metric's definition closure changed.");
    }
    if !d.problems.is_empty() {
        let _ = writeln!(out, "**This change cannot land as it is:**\n");
        for p in &d.problems {
            let _ = writeln!(out, "- {}", cell(p));
        }
        out.push('\n');
    }
    for m in &d.metrics {
        let version = match m.version {
            (Some(a), Some(b)) if a == b => format!("v{a}"),
            (Some(a), Some(b)) => format!("v{a} → v{b}"),
            (None, Some(b)) => format!("new, v{b}"),
            (Some(a), None) => format!("removed, was v{a}"),
            (None, None) => String::new(),
        };
        let _ = writeln!(
            out,
            "### `{}` ({}, {version}): {}\n",
            m.metric, m.status, m.change
        );
        let _ = writeln!(out, "| changed | before | after |\n|---|---|---|");
        for e in &m.elements {
            for (what, before, after) in fields_changed(e) {
                let _ = writeln!(out, "| {} | {before} | {after} |", cell(&what));
            }
        }
        out.push('\n');
        if m.periods.is_empty() {
            continue;
        }
        let _ = writeln!(out, "| period | before | after | Δ |\n|---|---:|---:|---:|");
        for p in &m.periods {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                p.period,
                shown(&p.base),
                shown(&p.head),
                p.delta.map(signed).unwrap_or_else(|| "—".into())
            );
        }
        out.push('\n');
        for p in &m.periods {
            if !p.exclusions.is_empty() {
                let _ = writeln!(out, "Exclusions, {}:\n", p.period);
                for x in &p.exclusions {
                    let _ = writeln!(
                        out,
                        "- `{}`: rows {} → {}, value {} → {}",
                        x.exclusion,
                        opt(x.base_rows.map(|r| r.to_string())),
                        opt(x.head_rows.map(|r| r.to_string())),
                        opt(x.base_value.map(Dec::grouped)),
                        opt(x.head_value.map(Dec::grouped)),
                    );
                }
                out.push('\n');
            }
            if !p.waterfall.is_empty() {
                let _ = write!(out, "Waterfall, {}: {}", p.period, shown(&p.base));
                for s in &p.waterfall {
                    let _ = write!(
                        out,
                        " → {} {} = {}",
                        s.elements
                            .iter()
                            .map(|e| format!("`{}`", cell(e)))
                            .collect::<Vec<_>>()
                            .join(" + "),
                        s.delta.map(signed).unwrap_or_else(|| "(no value)".into()),
                        shown(&s.value)
                    );
                }
                out.push_str("\n\n");
            }
        }
    }
    out
}

fn shown(o: &Outcome) -> String {
    match o {
        Outcome::Value(Some(v)) => v.grouped(),
        Outcome::Value(None) => "no value".into(),
        Outcome::Failed(why) => format!("failed: {}", cell(why)),
    }
}

fn signed(d: Dec) -> String {
    let g = d.grouped();
    if g.starts_with('-') {
        g
    } else {
        format!("+{g}")
    }
}

fn opt(v: Option<String>) -> String {
    v.unwrap_or_else(|| "—".into())
}

/// The rows a changed element shows: an object (an exclusion, an entity, a
/// source) by the fields that differ (`exclusion test_account: when`),
/// anything else whole.
fn fields_changed(e: &ElementChange) -> Vec<(String, String, String)> {
    use serde_json::Value;
    match (&e.base, &e.head) {
        (Value::Object(b), Value::Object(h)) => {
            let keys: std::collections::BTreeSet<&String> = b.keys().chain(h.keys()).collect();
            keys.into_iter()
                .filter(|k| b.get(*k) != h.get(*k))
                .map(|k| {
                    (
                        format!("{}: {k}", e.element),
                        code(b.get(k).unwrap_or(&Value::Null)),
                        code(h.get(k).unwrap_or(&Value::Null)),
                    )
                })
                .collect()
        }
        (b, h) => vec![(e.element.clone(), code(b), code(h))],
    }
}

/// A definition's value as a code span in a table cell: shown, never
/// interpreted (a code span renders `<` as text), one line, pipes escaped,
/// long values cut.
fn code(v: &serde_json::Value) -> String {
    let text = match v {
        serde_json::Value::Null => return "—".to_string(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut text = text.replace(['\n', '\r'], " ").replace('|', "\\|");
    if text.chars().count() > 160 {
        text = format!("{}…", text.chars().take(159).collect::<String>());
    }
    let fence = if text.contains('`') { "``" } else { "`" };
    format!("{fence} {text} {fence}")
}

/// Text safe in Markdown outside code: pipes escaped, one line, and no HTML
/// (a definition's text is shown, never interpreted).
fn cell(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace(['\n', '\r'], " ")
}
