//! The folders canon writes as a whole (a publication, a docs site) on
//! disk: claiming one, staging beside it and switching the new one in
//! atomically. A reader never sees half of one, a killed run leaves the
//! previous one whole, and nothing canon did not write is ever deleted.
//!
//! Every filesystem step of a publish goes through [`step`], which a test
//! can make the process die after (`CANON_FAULT_KILL_AFTER_STEP=N`): the
//! tests kill a publish after each step in turn and check that the previous
//! publication is intact every time.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{CanonError, Result};

/// The file that marks a folder as a canon publication, written first into
/// every publication: a folder without it is not canon's to replace.
pub const MARKER: &str = ".canon-publication";

/// The environment variable that kills the process after the Nth
/// filesystem step of a publish (tests only; unset in normal use).
pub const KILL_AFTER_STEP: &str = "CANON_FAULT_KILL_AFTER_STEP";

static STEPS: AtomicUsize = AtomicUsize::new(0);

/// Marks one filesystem step as done; dies here, as a `kill -9` would
/// (no cleanup, exit 137), when the fault switch names this step.
pub fn step(what: &str) {
    let n = STEPS.fetch_add(1, Ordering::SeqCst) + 1;
    let kill_at = std::env::var(KILL_AFTER_STEP)
        .ok()
        .and_then(|v| v.parse::<usize>().ok());
    if kill_at == Some(n) {
        crate::console::say(format_args!(
            "fault injection: killed after step {n} ({what})"
        ));
        std::process::exit(137);
    }
}

/// A kind of folder canon writes as a whole and replaces only as a whole.
pub struct Kind {
    /// The file that marks a folder as this kind, written first into it.
    pub marker: &'static str,
    /// What the folder is called in messages ("publication").
    pub what: &'static str,
    /// The command that writes it, in messages.
    pub command: &'static str,
    /// A name to suggest for `--out`.
    example: &'static str,
    marker_text: fn() -> String,
    /// Why an existing folder of this kind (its entries, relative) may not
    /// be replaced: an entry the kind did not write, or a folder that
    /// cannot be judged. `None` when all of it is the kind's own.
    stranger: fn(&Path, &[String]) -> Option<String>,
    /// Whether a relative path is something a folder of this kind,
    /// finished or not, is made of (what a killed run's leftover may hold).
    made_of: fn(&str) -> bool,
}

/// A publication (`canon publish --out`).
pub const PUBLICATION: Kind = Kind {
    marker: MARKER,
    what: "publication",
    command: "canon publish",
    example: "published",
    marker_text,
    stranger: publication_stranger,
    made_of: publication_made_of,
};

/// A docs site (`canon docs --out`): the index and a page per metric.
pub const DOCS_SITE: Kind = Kind {
    marker: DOCS_MARKER,
    what: "docs site",
    command: "canon docs",
    example: "site",
    marker_text: docs_marker_text,
    stranger: docs_stranger,
    made_of: docs_made_of,
};

/// The file that marks a folder as a canon docs site.
pub const DOCS_MARKER: &str = ".canon-docs";

/// A folder of a [`Kind`] that this run may replace, held under a lock on
/// its parent folder so two runs writing one place take turns.
pub struct Target {
    kind: &'static Kind,
    out: PathBuf,
    parent: PathBuf,
    name: String,
    /// Held for the whole run: the parent folder's advisory lock.
    _lock: File,
}

impl Target {
    /// Checks that `out` is canon's to replace (absent, empty, or a folder
    /// of this kind holding only what the kind writes), locks its parent
    /// and removes what killed runs left there. Refuses with exit 2 and
    /// nothing touched otherwise.
    pub fn claim(out: &Path, kind: &'static Kind) -> Result<Target> {
        // `pub/.` names `pub`, but renaming onto it fails (EBUSY) only at
        // the switch, after all the work: written as its components say.
        let out: &Path = &out.components().collect::<PathBuf>();
        let name = out
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| !n.is_empty() && *n != "." && *n != "..")
            .ok_or_else(|| {
                CanonError::request(format!(
                    "--out {}: name the {} folder itself (e.g. --out {})",
                    out.display(),
                    kind.what,
                    kind.example
                ))
            })?
            .to_string();
        check_replaceable(out, kind)?;
        let parent = out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        std::fs::create_dir_all(&parent).map_err(|e| CanonError::io(&parent, e))?;
        let lock = File::open(&parent).map_err(|e| CanonError::io(&parent, e))?;
        if lock.try_lock().is_err() {
            crate::console::say(format_args!(
                "waiting for another canon run in {} to finish (a publish or docs writing there, \
                 or a history or docs reading a publication there)",
                parent.display()
            ));
            lock.lock().map_err(|e| CanonError::io(&parent, e))?;
        }
        // Checked again under the lock: another run may have just finished.
        check_replaceable(out, kind)?;
        let target = Target {
            kind,
            out: out.to_path_buf(),
            parent,
            name,
            _lock: lock,
        };
        target.remove_leftovers()?;
        Ok(target)
    }

    /// A fresh staging folder beside the target, marked as canon's first.
    pub fn staging(&self) -> Result<PathBuf> {
        let tmp = self.leftover_name("tmp");
        std::fs::create_dir(&tmp).map_err(|e| CanonError::io(&tmp, e))?;
        step("staging folder created");
        write_synced(
            &tmp.join(self.kind.marker),
            (self.kind.marker_text)().as_bytes(),
        )?;
        Ok(tmp)
    }

    /// Switches the staged publication in: every folder synced, then one
    /// atomic exchange (or rename, when there was nothing before), then the
    /// previous publication removed.
    pub fn switch(&self, staged: &Path) -> Result<()> {
        // The new folder takes the old one's mode and, where allowed, its
        // owner and group: a site served to a group (setgid, 2770) must not
        // come back readable by everyone.
        if let Ok(old) = std::fs::symlink_metadata(&self.out) {
            #[cfg(unix)]
            {
                use std::os::unix::fs::MetadataExt;
                let _ = std::os::unix::fs::chown(staged, Some(old.uid()), Some(old.gid()));
                // Everything inside too: staged beside the folder, the files
                // took this process's group, not the one a setgid folder
                // gives, and that group could no longer read them.
                give_group(staged, old.gid(), old.mode());
            }
            std::fs::set_permissions(staged, old.permissions())
                .map_err(|e| CanonError::io(staged, e))?;
        }
        sync_tree(staged)?;
        step("staged publication synced");
        if std::fs::symlink_metadata(&self.out).is_ok() {
            exchange(staged, &self.out)?;
            step("publications exchanged");
            sync_dir(&self.parent)?;
            step("parent folder synced");
            // `staged` now holds the previous publication. Removed only if
            // it still holds nothing but what its manifest lists: a file
            // added while this run worked is kept, with the folder around it.
            // The new one is in place: a cleanup that fails is a warning,
            // not a failed run (a scheduler would run it again and append
            // its numbers to the history twice).
            let cleaned = if let Err(why) = check_replaceable(staged, self.kind) {
                let kept = self.parent.join(format!(
                    "{}.kept-{}",
                    self.name,
                    chrono::Utc::now().format("%Y%m%dT%H%M%S")
                ));
                std::fs::rename(staged, &kept)
                    .map_err(|e| CanonError::io(&kept, e))
                    .map(|()| {
                        crate::console::say(format_args!(
                            "warning: the previous {} held files canon did not write ({why}); \
                             it is kept at {}",
                            self.kind.what,
                            kept.display()
                        ))
                    })
            } else {
                std::fs::remove_dir_all(staged).map_err(|e| CanonError::io(staged, e))
            };
            if let Err(e) = cleaned {
                crate::console::say(format_args!(
                    "warning: the new {} is in place at {}, but the previous one could not be \
                     removed ({e}); the next run removes it, or delete {} by hand",
                    self.kind.what,
                    self.out.display(),
                    staged.display()
                ));
            }
            step("previous publication removed");
        } else {
            std::fs::rename(staged, &self.out).map_err(|e| CanonError::io(&self.out, e))?;
            step("publication renamed into place");
            sync_dir(&self.parent)?;
            step("parent folder synced");
        }
        Ok(())
    }

    /// Removes a staging folder whose run failed, if it holds only what
    /// the kind writes (otherwise the next claim's sweep leaves it too).
    pub fn discard(&self, staged: &Path) {
        if made_only_of(staged, self.kind) {
            let _ = std::fs::remove_dir_all(staged);
        }
    }

    /// `.NAME.KIND-PID` beside the target.
    fn leftover_name(&self, kind: &str) -> PathBuf {
        self.parent
            .join(format!(".{}.{kind}-{}", self.name, std::process::id()))
    }

    /// Removes staging folders of killed runs: `.NAME.tmp-*` beside the
    /// target that hold nothing but the files a publication is made of
    /// (anything else there is kept). Runs under the lock, so no live
    /// publish owns them.
    fn remove_leftovers(&self) -> Result<()> {
        let prefix = format!(".{}.tmp-", self.name);
        let entries =
            std::fs::read_dir(&self.parent).map_err(|e| CanonError::io(&self.parent, e))?;
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(n) = file_name.to_str() else {
                continue;
            };
            let path = entry.path();
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if !n.starts_with(&prefix) || !is_dir {
                continue;
            }
            if made_only_of(&path, self.kind) {
                tracing::info!(path = %path.display(), "removing what a killed run left");
                // A leftover that cannot be removed (an earlier run could
                // not either) does not stop this run: it is not the target.
                if let Err(e) = std::fs::remove_dir_all(&path) {
                    crate::console::say(format_args!(
                        "warning: {} is left from an earlier run and could not be removed ({e}); \
                         delete it by hand",
                        path.display()
                    ));
                }
                step("leftover removed");
            }
        }
        Ok(())
    }
}

fn marker_text() -> String {
    format!(
        "This folder is a canon publication (canon {}). `canon publish` replaces it as a whole;\n\
         files added here by hand make the next publish refuse to replace it.\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// The folders every publication has, even when a `--only` leaves one empty.
pub const PUBLICATION_FOLDERS: [&str; 2] = ["metrics", "reconciliation"];

fn docs_marker_text() -> String {
    format!(
        "This folder is a canon docs site (canon {}). `canon docs` replaces it as a whole;\n\
         files added here by hand make the next run refuse to replace it.\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// The line of a docs site's marker after which its pages are listed.
pub const DOCS_PAGES: &str = "pages:";

/// Why docs site `out` may not be replaced: an entry its marker does not
/// list (a page by hand, even one named like canon's), or a marker with no
/// list (an older canon's, which wrote pages in place and kept what else
/// was there: its pages cannot be told from a user's).
fn docs_stranger(out: &Path, found: &[String]) -> Option<String> {
    let marker = std::fs::read_to_string(out.join(DOCS_MARKER)).unwrap_or_default();
    let Some((_, pages)) = marker.split_once(&format!("\n{DOCS_PAGES}\n")) else {
        return Some(format!(
            "its {DOCS_MARKER} lists no pages (a site of an older canon, which wrote its pages in \
             place and kept any other file, so its own cannot be told from one added by hand): \
             move it away or choose a new folder"
        ));
    };
    let pages: Vec<&str> = pages.lines().collect();
    let stranger = found
        .iter()
        .find(|rel| *rel != DOCS_MARKER && *rel != "metrics" && !pages.contains(&rel.as_str()))?;
    Some(format!(
        "it holds {stranger}, which canon docs did not write (added by hand?)"
    ))
}

/// What a docs site is made of: its marker, the index and a page per metric.
fn docs_made_of(rel: &str) -> bool {
    rel == DOCS_MARKER
        || rel == "index.html"
        || rel == "metrics"
        || rel
            .strip_prefix("metrics/")
            .is_some_and(|f| !f.contains('/') && f.ends_with(".html"))
}

/// `out` may be replaced: absent, an empty folder, or a folder of `kind`
/// that holds nothing the kind did not write.
fn check_replaceable(out: &Path, kind: &Kind) -> Result<()> {
    let refuse = |why: String| {
        Err(CanonError::request(format!(
            "--out {}: refused, {why}; {} only replaces an empty folder or an earlier canon {}: \
             choose a new or empty folder",
            out.display(),
            kind.command,
            kind.what
        )))
    };
    let meta = match std::fs::symlink_metadata(out) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            return refuse("a folder on its path is a file".into());
        }
        Err(e) => return Err(CanonError::io(out, e)),
    };
    if meta.file_type().is_symlink() {
        return refuse("it is a symbolic link (give the folder it points to)".into());
    }
    if !meta.is_dir() {
        return refuse("it is a file, not a folder".into());
    }
    if is_mount_point(out, &meta) {
        // The switch renames the folder, which the kernel refuses for a
        // mount point (EBUSY): found here, not after all the work.
        return Err(CanonError::request(format!(
            "--out {}: refused, it is a mount point, which {} cannot switch for a new {}: \
             give a folder inside it (e.g. --out {})",
            out.display(),
            kind.command,
            kind.what,
            out.join(kind.example).display()
        )));
    }
    let found = listing(out)?;
    if found.is_empty() {
        return Ok(());
    }
    let link = |rel: &&String| {
        std::fs::symlink_metadata(out.join(rel.as_str())).is_ok_and(|m| m.file_type().is_symlink())
    };
    if let Some(link) = found.iter().find(link) {
        // canon writes no links: one here was made by hand, and whatever
        // it points to must never be written through.
        return refuse(format!("it holds {link}, a link canon does not write"));
    }
    if !out.join(kind.marker).is_file() {
        return refuse(format!(
            "it is not empty ({} entries, e.g. {}) and not a canon {} (no {})",
            found.len(),
            found[0],
            kind.what,
            kind.marker
        ));
    }
    match (kind.stranger)(out, &found) {
        Some(why) => refuse(why),
        None => Ok(()),
    }
}

/// Why publication `out` may not be replaced: an entry its manifest does
/// not list, or a manifest that cannot be read.
fn publication_stranger(out: &Path, found: &[String]) -> Option<String> {
    let manifest = read_manifest(out).ok().flatten().unwrap_or_default();
    let Some(listed) = manifest["files"].as_array() else {
        return Some("its manifest.json is missing or unreadable".into());
    };
    let listed: Vec<&str> = listed.iter().filter_map(|f| f.as_str()).collect();
    let own = |rel: &str| {
        rel == MARKER
            || rel == "manifest.json"
            || PUBLICATION_FOLDERS.contains(&rel)
            || listed.contains(&rel)
            || listed.iter().any(|f| f.starts_with(&format!("{rel}/")))
    };
    let stranger = found.iter().find(|rel| !own(rel))?;
    Some(format!(
        "it holds {stranger}, which its manifest does not list (added by hand?)"
    ))
}

/// Whether `dir` holds only what a (possibly unfinished) folder of `kind`
/// is made of. An empty folder qualifies.
fn made_only_of(dir: &Path, kind: &Kind) -> bool {
    listing(dir).is_ok_and(|found| found.iter().all(|rel| (kind.made_of)(rel)))
}

/// Where a publication keeps each result's lineage: one JSON line per
/// metric × period (a reconciliation's per governed side, `part`). It was
/// in the manifest's entries, which grew ~265 KB a period with the plans'
/// text: past ~60 periods the manifest, one JSON object, passed the 16 MB
/// a reader such as DuckDB's `read_json_auto` takes in one object. Each
/// line here is one result's, whatever the number of periods.
pub const LINEAGE_FILE: &str = "lineage.jsonl";

/// What a publication, finished or not, is made of: the marker, the
/// manifest, exclusions.parquet, the history, the lineage and the result files in its
/// two folders.
fn publication_made_of(rel: &str) -> bool {
    let in_folder = |folder: &str, exts: &[&str]| {
        rel.strip_prefix(folder)
            .and_then(|r| r.strip_prefix('/'))
            .is_some_and(|f| !f.contains('/') && exts.iter().any(|e| f.ends_with(e)))
    };
    [
        MARKER,
        "manifest.json",
        "exclusions.parquet",
        "history.jsonl",
        LINEAGE_FILE,
    ]
    .contains(&rel)
        || PUBLICATION_FOLDERS.contains(&rel)
        || in_folder("metrics", &[".parquet", ".csv"])
        || in_folder("reconciliation", &[".parquet"])
}

/// Every file and folder under `dir`, relative, in order.
fn listing(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| CanonError::io(&d, e))? {
            let entry = entry.map_err(|e| CanonError::io(&d, e))?;
            let path = entry.path();
            let rel = path
                .strip_prefix(dir)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            }
            out.push(rel);
        }
    }
    out.sort();
    Ok(out)
}

/// Whether folder `out` (whose metadata is `meta`) is on another device
/// than its parent: a mount point.
fn is_mount_point(out: &Path, meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    let parent = out.join("..");
    std::fs::metadata(parent).is_ok_and(|p| p.dev() != meta.dev())
}

/// A shared hold on the lock a publish or docs run takes on `dir`'s parent
/// (see [`Target`]), so that a reader's files all come from one
/// publication: without it a publish switching in between the manifest and
/// the history read made them disagree, and the publication was reported
/// damaged. Waits (saying so) while a run writes there. `None` when the
/// parent cannot be opened (no read permission on it): the reader then
/// reads unlocked, where the worst a switch can do is that false report.
pub fn hold_for_reading(dir: &Path) -> Option<File> {
    // The folder the writer locks, however `dir` is written (`.`, `..`,
    // through a link): its real parent.
    let dir = std::fs::canonicalize(dir).ok()?;
    let parent = dir.parent()?;
    let lock = File::open(parent).ok()?;
    if lock.try_lock_shared().is_err() {
        crate::console::say(format_args!(
            "waiting for the canon publish or docs in {} to finish",
            parent.display()
        ));
        lock.lock_shared().ok()?;
    }
    Some(lock)
}

/// The bytes of the regular file at `path`: a named pipe or a device put
/// in a publication's place would block the read forever.
pub fn read_regular(path: &Path) -> std::io::Result<Vec<u8>> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file (a pipe, socket, device or folder)",
        ));
    }
    std::fs::read(path)
}

/// Gives every file and folder under `dir` the group `gid`, where allowed,
/// and what the publication's folder (`mode`) lets its group do: read
/// files, enter folders (a strict umask wrote them 600 and 700).
#[cfg(unix)]
fn give_group(dir: &Path, gid: u32, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let group = mode & 0o050;
    for entry in entries.flatten() {
        let path = entry.path();
        let _ = std::os::unix::fs::lchown(&path, None, Some(gid));
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let allowed = if kind.is_dir() { group } else { group & 0o040 };
        if !kind.is_symlink()
            && let Ok(meta) = entry.metadata()
        {
            let now = meta.permissions().mode();
            if now & allowed != allowed {
                let _ =
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(now | allowed));
            }
        }
        if kind.is_dir() {
            give_group(&path, gid, mode);
        }
    }
}

/// The manifest of publication `dir`: `None` when it has none (no
/// publication there yet, or one killed before it was whole); an error
/// when it is there and cannot be read as JSON (a pipe, a truncated file).
pub fn read_manifest(dir: &Path) -> Result<Option<serde_json::Value>> {
    let path = dir.join("manifest.json");
    match read_regular(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CanonError::io(&path, e)),
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| damaged(&path, format!("not JSON ({e})"))),
    }
}

/// A file of a publication that is not as `canon publish` wrote it: the
/// publication is damaged, located at the file. `canon publish` will not
/// write over a folder it cannot read as its own (it said "publish it
/// again", which publish then refused), so the way out is a backup or a
/// new folder.
pub fn damaged(path: &Path, why: String) -> CanonError {
    damaged_saying(
        path,
        format!(
            "{why}: the publication is damaged; restore it from a backup, or publish into a \
             new folder (canon does not write over a publication it cannot read)"
        ),
    )
}

/// A damaged file of a publication, located at the file, with its own
/// words for the way out (the history and the lineage each have theirs).
pub fn damaged_saying(path: &Path, message: String) -> CanonError {
    CanonError::io(
        path,
        std::io::Error::new(std::io::ErrorKind::InvalidData, message),
    )
}

/// The results a manifest says were blocked: (metric, period, reason).
/// The history has a row for each since the thirtieth session's canon;
/// a publication written before has them here only, so whoever shows a
/// publication's numbers shows these beside them.
pub fn blocked_entries(manifest: &serde_json::Value) -> Vec<(&str, &str, &str)> {
    manifest["metrics"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["status"] == "blocked")
        .filter_map(|e| {
            Some((
                e["metric"].as_str()?,
                e["period"].as_str()?,
                e["reason"].as_str().unwrap_or("no reason recorded"),
            ))
        })
        .collect()
}

/// Writes `bytes` to a new file at `path` and syncs it to disk.
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = File::create(path).map_err(|e| CanonError::io(path, e))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| CanonError::io(path, e))?;
    step("file written");
    Ok(())
}

/// Syncs every folder under `dir` and `dir` itself, so the entries of the
/// staged publication are on disk before it is switched in.
fn sync_tree(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| CanonError::io(dir, e))? {
        let entry = entry.map_err(|e| CanonError::io(dir, e))?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            sync_tree(&entry.path())?;
        }
    }
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| CanonError::io(dir, e))
}

/// Swaps two folders in one atomic step: no moment at which either name is
/// missing.
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|_| CanonError::request(format!("{}: a path with a NUL byte", p.display())))
    };
    let (ca, cb) = (c(a)?, c(b)?);
    // SAFETY: two valid NUL-terminated paths relative to the working folder.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(CanonError::io(b, std::io::Error::last_os_error()))
    }
}

/// Without an exchange call the switch is two renames: the previous
/// publication is moved aside, the new one moved in, and on failure the
/// previous one is put back. A kill between the two leaves the target
/// missing until the next run; Linux, where canon runs, never takes this path.
#[cfg(not(target_os = "linux"))]
fn exchange(a: &Path, b: &Path) -> Result<()> {
    let aside = a.with_extension("old");
    std::fs::rename(b, &aside).map_err(|e| CanonError::io(b, e))?;
    if let Err(e) = std::fs::rename(a, b) {
        let _ = std::fs::rename(&aside, b);
        return Err(CanonError::io(b, e));
    }
    std::fs::rename(&aside, a).map_err(|e| CanonError::io(a, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A publication in `dir` listing `files` (each written with its name).
    fn publication(dir: &Path, files: &[&str]) {
        std::fs::create_dir_all(dir.join("metrics")).unwrap();
        std::fs::write(dir.join(MARKER), marker_text()).unwrap();
        for f in files {
            std::fs::write(dir.join(f), f.as_bytes()).unwrap();
        }
        let manifest = serde_json::json!({ "files": files });
        std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    }

    // A mount point as --out failed at the switch (EBUSY), after all the
    // work. /proc is one on every Linux (procfs, another device than /).
    #[test]
    fn a_mount_point_is_refused_before_any_work() {
        for kind in [&PUBLICATION, &DOCS_SITE] {
            let e = check_replaceable(Path::new("/proc"), kind).unwrap_err();
            assert!(
                e.to_string().contains(&format!(
                    "--out /proc: refused, it is a mount point, which {} cannot switch",
                    kind.command
                )),
                "{e}"
            );
        }
        // A folder on the same device as its parent is not one.
        let dir = tempfile::tempdir().unwrap();
        let meta = std::fs::metadata(dir.path()).unwrap();
        assert!(!is_mount_point(dir.path(), &meta));
    }

    // A file added to the publication while a publish runs (after the
    // claim, before the switch) is not deleted with the previous
    // publication: that folder is kept beside the new one.
    #[test]
    fn a_file_added_during_the_run_is_kept() {
        let parent = tempfile::tempdir().unwrap();
        let out = parent.path().join("pub");
        publication(&out, &["metrics/a.csv"]);
        let target = Target::claim(&out, &PUBLICATION).unwrap();
        let staged = target.staging().unwrap();
        std::fs::write(out.join("notes.txt"), b"mine").unwrap();
        target.switch(&staged).unwrap();
        assert!(out.join(MARKER).is_file());
        assert!(!out.join("notes.txt").exists());
        let kept: Vec<PathBuf> = std::fs::read_dir(parent.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("pub.kept-")
            })
            .collect();
        assert_eq!(kept.len(), 1);
        assert_eq!(std::fs::read(kept[0].join("notes.txt")).unwrap(), b"mine");
    }

    // A killed run's staging folder is removed by the next claim; a folder
    // of that name holding anything else (a user's) is left alone.
    #[test]
    fn only_leftovers_made_of_publication_files_are_removed() {
        let parent = tempfile::tempdir().unwrap();
        let out = parent.path().join("pub");
        let killed = parent.path().join(".pub.tmp-123");
        publication(&killed, &["metrics/a.parquet", "exclusions.parquet"]);
        let empty = parent.path().join(".pub.tmp-124");
        std::fs::create_dir(&empty).unwrap();
        let users = parent.path().join(".pub.tmp-mine");
        publication(&users, &["metrics/a.parquet"]);
        std::fs::write(users.join("mine.txt"), b"mine").unwrap();
        let _target = Target::claim(&out, &PUBLICATION).unwrap();
        assert!(!killed.exists());
        assert!(!empty.exists());
        assert_eq!(std::fs::read(users.join("mine.txt")).unwrap(), b"mine");
    }
}
