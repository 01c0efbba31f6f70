//! Conversion window: whether every member a conversion counts in the period
//! has had its whole window by the time the data was taken.
//!
//! `mql_to_sql_rate` counts, of the persons first qualified in the period,
//! those reaching the next stage within 90 days. A person qualified on the
//! period's last day has until 90 days after its end; asked earlier, the
//! count holds only the conversions seen so far, and the rate rises as the
//! window runs out. On the sample (taken 2026-01-02) FY2026-Q4's rate was
//! 0.186220 and December's 0.116197, where closed quarters run near 0.3:
//! numbers that look governed and are not yet the period's.
//!
//! So a result that reads such a conversion is blocked while the window is
//! open, like a failed gate: the check is at error on the conversion's event
//! table, `--allow conversion_window:TABLE` computes it anyway (recorded in
//! the result's `overrides`), and `canon publish` publishes it as blocked
//! with the day the window closes. The data is taken to reach the earlier of
//! the run's "now" and the table's latest sync (its freshness check), so
//! stale extracts under `--allow-stale` do not close a window either.
//!
//! Judged at every run, cached results too: the same result is blocked
//! today and passes once the window has closed.

use super::{Status, TableCheck};
use crate::calendar::Period;
use crate::run::Engine;
use chrono::{DateTime, Utc};

/// The check's name, as results report it and `--allow` takes it.
pub const CHECK: &str = "conversion_window";

/// A conversion with a window, read by a metric's result.
struct Window {
    /// The conversion metric.
    metric: String,
    days: u32,
    /// `system/table` of its events.
    table: String,
}

/// The checks of every windowed conversion metric `metric` reads (itself, a
/// ratio's parts, a derived metric's inputs) over `period`: at error while a
/// window is open. `quality` is the result's checks, its freshness checks
/// holding each table's latest sync.
pub fn judge(
    engine: &Engine,
    metric: &str,
    period: &Period,
    quality: &[serde_json::Value],
) -> Vec<TableCheck> {
    let mut windows = Vec::new();
    windows_read(engine, metric, &mut windows, 0);
    let calendar = &engine.catalog.calendar;
    let end = DateTime::from_timestamp_micros(calendar.day_start_utc_micros(period.to))
        .unwrap_or(engine.now);
    let mut checks = Vec::new();
    windows.sort_by(|a, b| a.metric.cmp(&b.metric));
    windows.dedup_by(|a, b| a.metric == b.metric);
    for window in windows {
        let closes = end + chrono::Duration::days(i64::from(window.days));
        let synced = latest_sync(quality, &window.table);
        let local = |t: DateTime<Utc>| {
            t.with_timezone(&calendar.zone)
                .format("%Y-%m-%d %H:%M %Z")
                .to_string()
        };
        // How far the data reaches: the earlier of now and the last sync.
        // A table with no sync time (its freshness failed, and was allowed)
        // reaches no known instant, so no window closes on it.
        let (open, taken) = match synced {
            None => (
                true,
                "the data's reach is unknown (no sync time)".to_string(),
            ),
            Some(s) if s < engine.now => (
                s < closes,
                format!("the data reaches {} (last synced)", local(s)),
            ),
            Some(_) => (
                engine.now < closes,
                format!("it is now {}", local(engine.now)),
            ),
        };
        let (status, detail) = if open {
            (
                Status::Error,
                format!(
                    "`{}`'s window, {} × 24 h after the period ends, is open until {}: \
                     members first counted in {} (before {}) may still convert, and {taken}; \
                     its count to date can only rise",
                    window.metric,
                    window.days,
                    local(closes),
                    period.label,
                    local(end),
                ),
            )
        } else {
            (
                Status::Pass,
                format!(
                    "`{}`'s window, {} × 24 h after the period ends, closed at {}",
                    window.metric,
                    window.days,
                    local(closes)
                ),
            )
        };
        checks.push(TableCheck {
            check: CHECK,
            table: window.table,
            column: None,
            status,
            detail,
            examples: Vec::new(),
            latest_sync: None,
        });
    }
    checks
}

/// The longest window (days × 24 h) of the windowed conversions metric
/// `metric` reads, 0 without one: a count over a period is final only once
/// the data reaches the period's end plus it (`result::reach`).
pub fn longest(engine: &Engine, metric: &str) -> u32 {
    let mut windows = Vec::new();
    windows_read(engine, metric, &mut windows, 0);
    windows.iter().map(|w| w.days).max().unwrap_or(0)
}

/// The latest sync of `table` its freshness check recorded in `quality`.
fn latest_sync(quality: &[serde_json::Value], table: &str) -> Option<DateTime<Utc>> {
    quality
        .iter()
        .filter(|c| c.get("table").and_then(|v| v.as_str()) == Some(table))
        .find_map(super::synced)
}

/// The windowed conversions metric `name` reads, through ratios' parts and
/// derived metrics' inputs (a catalog that loaded has no cycles; `depth`
/// bounds the walk all the same).
fn windows_read(engine: &Engine, name: &str, out: &mut Vec<Window>, depth: usize) {
    let catalog = &engine.catalog;
    let Ok((id, _, metric)) = catalog.metric(name) else {
        return;
    };
    if depth > 16 {
        return;
    }
    if let Some(conversion) = &metric.conversion
        && let Some(days) = conversion.within_days
        && conversion.count == crate::spec::ConversionCount::Converted
        && let Some(table) = metric
            .entity
            .as_deref()
            .and_then(|e| catalog.entity(e))
            .map(|(_, file, entity)| format!("{}/{}", file.spec.system, entity.source))
    {
        out.push(Window {
            metric: name.to_string(),
            days,
            table,
        });
    }
    let mut parts: Vec<String> = [&metric.numerator, &metric.denominator]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    if metric.expr.is_some() {
        parts.extend(crate::compile::derived::inputs(engine, id).unwrap_or_default());
    }
    for part in parts {
        windows_read(engine, &part, out, depth + 1);
    }
}
