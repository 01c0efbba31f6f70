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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use super::{Status, TableCheck};
use crate::error::Result;
use crate::quality::allow::Allow;
use crate::run::Engine;

/// The check's name, as results report it and `--allow` takes it.
pub const CHECK: &str = "volume";

/// Bumped whenever the state file's layout changes (a file of another
/// format cannot be read: its tables warn until allowed, as a damaged one).
const FORMAT: u32 = 1;

/// The state file: data root → `system/table` → the last count seen.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    format: u32,
    roots: BTreeMap<String, BTreeMap<String, Seen>>,
    /// Set when an unreadable state file was set aside: a table with no
    /// count in this file may have had one in the lost file, so it is not
    /// "seen for the first time" and warns until allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lost: Option<Lost>,
}

/// An unreadable state file canon set aside.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Lost {
    /// When (wall clock, RFC 3339).
    at: String,
    /// The name the damaged file was kept under, beside the state file.
    kept_as: String,
}

/// What the state file says of a table's last count.
enum Last {
    /// The count canon saw last and did not block on.
    Seen(Seen),
    /// None, and the state is whole: the table is seen for the first time.
    First,
    /// Unknown: the state file cannot be read, or was set aside; why.
    Unknown(String),
}

/// The state file as read.
enum Loaded {
    /// No file: nothing was ever remembered (or someone removed it).
    Missing,
    Read(State),
    /// The file exists but cannot be read: why.
    Damaged(String),
}

/// A count canon saw and did not block on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    pub rows: i64,
    /// When (wall clock, RFC 3339).
    pub seen_at: String,
}

/// The last counts of one data root, and what this run found.
pub struct Tracker {
    file: PathBuf,
    root: String,
    /// Tables whose drop warned and was not allowed in this run, with the
    /// check's detail: `canon publish` refuses to publish over them.
    warned: Mutex<BTreeMap<String, String>>,
    /// One read-modify-write of the state file at a time within a run
    /// (and a file lock across processes).
    io: Mutex<()>,
    /// Whether this run already said on stderr that the state file is damaged.
    damage_logged: AtomicBool,
}

impl Tracker {
    /// The tracker of the data root `data_root`, with its state in `file`.
    pub fn new(file: PathBuf, data_root: &Path) -> Tracker {
        let root = std::fs::canonicalize(data_root).unwrap_or_else(|_| data_root.to_path_buf());
        Tracker {
            file,
            root: root.display().to_string(),
            warned: Mutex::new(BTreeMap::new()),
            io: Mutex::new(()),
            damage_logged: AtomicBool::new(false),
        }
    }

    /// canon's own state folder in a project: `.canon-state` (no writer
    /// may land on it, see `protect`).
    pub fn state_dir(project: &Path) -> PathBuf {
        project.join(".canon-state")
    }

    /// The state file of a project: `.canon-state/volume.json`.
    pub fn state_file(project: &Path) -> PathBuf {
        Self::state_dir(project).join("volume.json")
    }

    /// The state file: missing, read, or damaged (exists but cannot be
    /// read, is not JSON of the state's shape, or is of another format).
    fn load(&self) -> Loaded {
        let bytes = match std::fs::read(&self.file) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Loaded::Missing,
            Err(e) => return Loaded::Damaged(e.to_string()),
        };
        match serde_json::from_slice::<State>(&bytes) {
            Ok(state) if state.format == FORMAT => Loaded::Read(state),
            Ok(state) => Loaded::Damaged(format!(
                "format {}, where this canon reads format {FORMAT}",
                state.format
            )),
            Err(e) => Loaded::Damaged(e.to_string()),
        }
    }

    /// What the state says of `table`'s last count under this data root.
    fn last(&self, table: &str) -> Last {
        match self.load() {
            Loaded::Missing => Last::First,
            Loaded::Damaged(why) => {
                let what = format!(
                    "the volume state file {} cannot be read ({why}), so the last count is unknown",
                    self.file.display()
                );
                if !self.damage_logged.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "volume: {what}: every table read warns and publish is blocked until allowed by name (--allow volume:SYSTEM/TABLE; the file is then kept aside)"
                    );
                }
                Last::Unknown(what)
            }
            Loaded::Read(state) => {
                if let Some(seen) = state.roots.get(&self.root).and_then(|t| t.get(table)) {
                    return Last::Seen(seen.clone());
                }
                match state.lost {
                    Some(lost) => Last::Unknown(format!(
                        "the last count is unknown: canon's volume state file could not be read at {} and was kept aside as {}",
                        lost.at,
                        self.file.with_file_name(&lost.kept_as).display()
                    )),
                    None => Last::First,
                }
            }
        }
    }

    /// Remembers `rows` as `table`'s last count (atomically: read, change
    /// this root's entry, write beside and rename). Data roots that no
    /// longer exist are dropped, so the file does not grow with every
    /// temporary folder a test or a trial pointed canon at.
    ///
    /// A state that cannot be written (a read-only project) does not fail
    /// the run: it says so on stderr, and the next run compares with the
    /// older count.
    fn remember(&self, table: &str, rows: i64) -> Seen {
        let seen = Seen {
            rows,
            seen_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        };
        if let Err(e) = self.write(table, &seen) {
            tracing::warn!("volume: cannot remember {table}'s count of {rows} rows: {e}");
        }
        seen
    }

    fn write(&self, table: &str, seen: &Seen) -> Result<()> {
        let _guard = self.io.lock().expect("lock");
        if let Some(dir) = self.file.parent() {
            std::fs::create_dir_all(dir).map_err(|e| crate::error::CanonError::io(dir, e))?;
        }
        // Another canon process may be remembering other tables of the
        // same file: an exclusive lock around read-modify-write keeps its
        // counts (released when the lock file is closed).
        let lock_path = self.file.with_extension("lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| crate::error::CanonError::io(&lock_path, e))?;
        lock.lock()
            .map_err(|e| crate::error::CanonError::io(&lock_path, e))?;
        let mut state = match self.load() {
            Loaded::Missing => State::default(),
            Loaded::Read(state) => state,
            // Set the damaged file aside (never destroy it: it may be
            // repaired by hand), and remember that counts were lost.
            Loaded::Damaged(_) => {
                let now = chrono::Utc::now();
                let name = format!(
                    "{}.damaged-{}",
                    self.file
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    now.format("%Y%m%dT%H%M%S%.3fZ")
                );
                let aside = self.file.with_file_name(&name);
                std::fs::rename(&self.file, &aside)
                    .map_err(|e| crate::error::CanonError::io(&self.file, e))?;
                tracing::warn!(
                    "volume: the unreadable state file was kept aside as {}",
                    aside.display()
                );
                State {
                    lost: Some(Lost {
                        at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        kept_as: name,
                    }),
                    ..State::default()
                }
            }
        };
        state.format = FORMAT;
        state
            .roots
            .retain(|root, _| root == &self.root || Path::new(root).exists());
        state
            .roots
            .entry(self.root.clone())
            .or_default()
            .insert(table.to_string(), seen.clone());
        let bytes = serde_json::to_vec_pretty(&state).map_err(|e| {
            crate::error::CanonError::Internal(format!("serializing the volume state: {e}"))
        })?;
        crate::atomic::write_file(&self.file, &bytes)
    }

    /// The drops that warned and were not allowed in this run: (table, detail).
    pub fn blocking(&self) -> Vec<(String, String)> {
        self.warned
            .lock()
            .expect("lock")
            .iter()
            .map(|(t, d)| (t.clone(), d.clone()))
            .collect()
    }
}

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
/// run), `canon publish` refuses (see [`Tracker::blocking`]).
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
