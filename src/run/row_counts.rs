//! The last row count canon saw for each table of a data root, kept in
//! canon's own state file (`.canon-state/volume.json` in the project, keyed
//! by the data root). The volume check (`quality::volume`) judges a run's
//! counts against it; this is only the memory, read and written under a
//! file lock.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use crate::error::Result;

/// The warnings speak for the volume check, so they carry its name on
/// stderr (as they did when the memory lived in `quality::volume`).
const TARGET: &str = "canon::quality::volume";

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
pub(crate) enum Last {
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
    pub(crate) warned: Mutex<BTreeMap<String, String>>,
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
        Self::named(file, root.display().to_string())
    }

    /// The tracker of the data root named `root` (an object store's URL).
    pub fn named(file: PathBuf, root: String) -> Tracker {
        Tracker {
            file,
            root,
            warned: Mutex::new(BTreeMap::new()),
            io: Mutex::new(()),
            damage_logged: AtomicBool::new(false),
        }
    }

    /// The state file of a project: `.canon-state/volume.json`.
    pub fn state_file(project: &Path) -> PathBuf {
        crate::protect::state_dir(project).join("volume.json")
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
    pub(crate) fn last(&self, table: &str) -> Last {
        match self.load() {
            Loaded::Missing => Last::First,
            Loaded::Damaged(why) => {
                let what = format!(
                    "the volume state file {} cannot be read ({why}), so the last count is unknown",
                    self.file.display()
                );
                if !self.damage_logged.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                    target: TARGET,
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
    pub(crate) fn remember(&self, table: &str, rows: i64) -> Seen {
        let seen = Seen {
            rows,
            seen_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        };
        if let Err(e) = self.write(table, &seen) {
            tracing::warn!(target: TARGET, "volume: cannot remember {table}'s count of {rows} rows: {e}");
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
                    target: TARGET,
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
        state.roots.retain(|root, _| {
            // A folder that is gone is forgotten; a store's root cannot
            // be judged gone from here, and is kept.
            root == &self.root || crate::run::store::is_url(root) || Path::new(root).exists()
        });
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
