//! Volume: each table's row count against the last count canon saw for it.
//!
//! A table cut in half by a failed or partial extract still passes every
//! other check (fresh, unique keys, complete columns) and gives a number half
//! as large: bookings over half the opportunities. So a drop of more than
//! `max_drop` (canon.yaml `volume`, or a source's own) from the last count
//! warns in every query that reads the table, on stderr and in the result's
//! quality, and blocks `canon publish` unless `--allow volume:TABLE`.
//!
//! Row counts come from the Parquet footers the engine reads anyway when it
//! registers a table (no scan). The last counts live in a small state file
//! of canon's own, `.canon-state/volume.json` in the project, keyed by the
//! data root: pointed with `--data` at another company's extracts, canon
//! compares that company with itself, not with the sample. A count is
//! remembered when canon does not block on it (it passes, or the run allows
//! it by name); a drop that warned is not, so every later query keeps warning
//! until someone looks and allows it.
//!
//! A count seen for the first time passes and says so. A state file that
//! exists but cannot be read is not a first time: the last counts are
//! unknown, so a drop could hide behind it. Every table then warns like a
//! drop (and blocks publish until `--allow volume:TABLE`); the damaged file
//! is kept as it is until a run allows a table, which sets it aside
//! (`volume.json.damaged-<time>`) and starts a new file that remembers the
//! loss, so the tables not allowed yet keep warning in later runs too.

use super::{Status, TableCheck};
use crate::allow::Allow;
use crate::error::Result;
use crate::run::Engine;
use crate::run::row_counts::Last;

/// The check's name, as results report it and `--allow` takes it.
pub const CHECK: &str = "volume";

/// Whether going from `last` to `rows` loses more than `max_drop` of the
/// rows, and the drop as a fraction.
fn dropped(last: i64, rows: i64, max_drop: f64) -> (bool, f64) {
    if last <= 0 || rows >= last {
        return (false, 0.0);
    }
    let drop = (last - rows) as f64 / last as f64;
    (drop > max_drop, drop)
}

/// Judges the row count of each `(system/table, rows)` against the last
/// count seen, remembers the counts it does not block on, and returns the
/// checks and the overrides used (`volume:TABLE`). A drop past the threshold
/// is a warning: queries go on and say so (on stderr too, once per table and
/// run), `canon publish` refuses (see [`crate::run::row_counts::Tracker::blocking`]).
pub fn judge(engine: &Engine, counts: &[(String, i64)]) -> Result<(Vec<TableCheck>, Vec<String>)> {
    let Some(tracker) = &engine.volume else {
        return Ok((Vec::new(), Vec::new()));
    };
    let mut checks = Vec::new();
    let mut overrides = Vec::new();
    for (table, rows) in counts {
        let (system, name) = table.split_once('/').unwrap_or((table, ""));
        let Some((_, source)) = engine.catalog.source_by_name(system, name) else {
            continue;
        };
        let max_drop = engine.catalog.volume_of(source).max_drop;
        let check = |status, detail| TableCheck {
            check: CHECK,
            table: table.clone(),
            column: None,
            status,
            detail,
            examples: Vec::new(),
            latest_sync: None,
        };
        let last = match tracker.last(table) {
            Last::Seen(last) => last,
            // Nothing to compare with: remembered, and passes.
            Last::First => {
                tracker.remember(table, *rows);
                checks.push(check(
                    Status::Pass,
                    format!(
                        "{rows} rows, first seen under this data root: nothing to compare with"
                    ),
                ));
                continue;
            }
            // A count that may hide a drop: warns, and blocks publish
            // unless allowed by name, as a drop does.
            Last::Unknown(why) => {
                if let Some(name) = engine.allow.permit(CHECK, table) {
                    tracker.remember(table, *rows);
                    overrides.push(name.clone());
                    checks.push(check(
                        Status::Warn,
                        format!(
                            "{rows} rows, not compared: {why}; accepted by --allow {name} (now the count to compare with)"
                        ),
                    ));
                    continue;
                }
                let detail = format!(
                    "{rows} rows, not compared: {why}; publish is blocked until a run passes {}",
                    Allow::hint(CHECK, table)
                );
                tracker
                    .warned
                    .lock()
                    .expect("lock")
                    .insert(table.clone(), detail.clone());
                checks.push(check(Status::Warn, detail));
                continue;
            }
        };
        let (over, drop) = dropped(last.rows, *rows, max_drop);
        let compared = format!(
            "{rows} rows, {:.1} % fewer than the {} canon saw at {}",
            drop * 100.0,
            last.rows,
            last.seen_at
        );
        if !over {
            if *rows != last.rows {
                tracker.remember(table, *rows);
            }
            let detail = if *rows == last.rows {
                format!("{rows} rows, as last seen")
            } else if *rows > last.rows {
                format!(
                    "{rows} rows, up from the {} canon saw at {}",
                    last.rows, last.seen_at
                )
            } else {
                format!("{compared}, within the {:.1} % allowed", max_drop * 100.0)
            };
            checks.push(check(Status::Pass, detail));
            continue;
        }
        if let Some(name) = engine.allow.permit(CHECK, table) {
            tracker.remember(table, *rows);
            overrides.push(name.clone());
            checks.push(check(
                Status::Warn,
                format!(
                    "{compared}: more than the {:.1} % allowed, accepted by --allow {name} (now the count to compare with)",
                    max_drop * 100.0
                ),
            ));
            continue;
        }
        let detail = format!(
            "{compared}: more than the {:.1} % allowed; publish is blocked until a run passes {}",
            max_drop * 100.0,
            Allow::hint(CHECK, table)
        );
        let first = tracker
            .warned
            .lock()
            .expect("lock")
            .insert(table.clone(), detail.clone())
            .is_none();
        if first {
            tracing::warn!("volume: {table} has {detail}");
        }
        checks.push(check(Status::Warn, detail));
    }
    Ok((checks, overrides))
}

#[cfg(test)]
mod tests {
    use super::dropped;

    #[test]
    fn a_drop_warns_only_past_the_threshold() {
        // 15 → 12 loses 3/15 = 20 %: not more than 20 %.
        assert_eq!(dropped(15, 12, 0.2), (false, 0.2));
        // 15 → 11 loses 4/15 = 26.7 %.
        assert!(dropped(15, 11, 0.2).0);
        // 15 → 7 loses 8/15 = 53.3 %: under a 0.6 threshold it passes.
        assert!(!dropped(15, 7, 0.6).0);
        // Growth, an unchanged count and a first empty table never warn.
        assert!(!dropped(15, 30, 0.0).0);
        assert!(!dropped(15, 15, 0.0).0);
        assert!(!dropped(0, 0, 0.0).0);
        // Everything gone: 100 % > 20 %.
        assert_eq!(dropped(15, 0, 0.2), (true, 1.0));
    }
}
