//! The result cache: a governed result stored under everything it depends
//! on, and served again without scanning while none of that has changed.
//!
//! Two levels, as build tools do it:
//! - The *key* names what was asked and under which rules: canon's and
//!   DataFusion's versions and the build of the running executable (a canon
//!   built from other code under the same version number, a developer's or
//!   a patched one, must not serve what an older build computed), the sha256
//!   of every definition file (canon.yaml,
//!   models/, metrics/), the data root, the metric and the request. Editing
//!   any definition file is a different key. That is deliberately coarse: a
//!   metric depends on its models, calendar and neighbours' exclusions, and a
//!   missed dependency would serve a wrong number, where a coarse key only
//!   costs one recomputation.
//! - The stored *entry* lists the inputs the computation read: every source
//!   table's folder and the content hash of each file in it. A lookup lists
//!   those folders again and compares; a file added, removed or rewritten
//!   with other bytes misses.
//!
//! Content hashes are themselves remembered by file identity (size, mtime,
//! ctime, inode), so checking an unchanged input costs a `stat`, not a read.
//! A file whose identity changed is hashed again; when its bytes are the same
//! its hash, and so the result's fingerprint, is the same and the entry still
//! serves: the fingerprint is of content, not of timestamps.
//!
//! Freshness is not part of the key: it depends on "now", not on the data.
//! A served result's freshness checks are judged again against the run's
//! clock (see `query`), so a cached number over stale data is still blocked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::atomic;
use crate::catalog::Catalog;
use crate::compile::Request;
use crate::error::{CanonError, DataLocation, Result};
use crate::result::GovernedResult;
use crate::run::SourceFacts;
use crate::run::files;

/// Bumped whenever the stored layout or the meaning of a key changes.
const FORMAT: u32 = 2;

/// A cache folder: `results/<key>.json` and the file-hash index `files.json`.
pub struct Cache {
    dir: PathBuf,
    hashes: Mutex<Option<HashIndex>>,
}

#[derive(Default, Serialize, Deserialize)]
struct HashIndex {
    format: u32,
    /// sha256 of the index's content ([`HashIndex::seal`]): an index edited
    /// or damaged does not verify and every input is hashed again.
    #[serde(default)]
    digest: String,
    /// Absolute path → the identity it had when hashed, and the hash.
    files: BTreeMap<String, Hashed>,
    #[serde(skip)]
    dirty: bool,
}

impl HashIndex {
    /// The digest the index must carry: its format and every file's stamp
    /// and hash.
    fn seal(&self) -> String {
        let mut h = Sha256::new();
        h.update(format!("canon hash index v{}\n", self.format));
        h.update(serde_json::to_vec(&self.files).unwrap_or_default());
        hex::encode(h.finalize())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    bytes: u64,
    modified_ns: i128,
    changed_ns: i128,
    inode: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Hashed {
    stamp: Stamp,
    sha256: String,
}

/// One source table a stored result read: its folder and its files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputTable {
    pub system: String,
    pub table: String,
    pub dir: String,
    pub files: Vec<InputFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputFile {
    pub path: String,
    pub sha256: String,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    format: u32,
    key: String,
    /// sha256 over the key, the build that stored it and the entry's
    /// content ([`digest`]): an entry edited by hand, damaged, or written by
    /// another build does not verify and is recomputed, never served.
    digest: String,
    stored_at: String,
    inputs: Vec<InputTable>,
    result: GovernedResult,
}

/// The digest an entry must carry: its content bound to its key and to the
/// running build. It guards against edits and damage, not against someone
/// who recomputes it on purpose (there is no secret; see README).
fn digest(
    key: &str,
    stored_at: &str,
    inputs: &[InputTable],
    result: &GovernedResult,
) -> Result<String> {
    let content = serde_json::to_vec(&(stored_at, inputs, result))
        .map_err(|e| CanonError::Internal(format!("cannot encode a cache entry: {e}")))?;
    let mut h = Sha256::new();
    h.update(format!(
        "canon cache entry v{FORMAT}\n{key}\n{}\n",
        build_identity()
    ));
    h.update(&content);
    Ok(hex::encode(h.finalize()))
}

/// A stored result that is still valid, and when it was computed.
pub struct Served {
    pub result: GovernedResult,
    pub stored_at: String,
}

impl Cache {
    /// A cache in `dir` (created on first store).
    pub fn new(dir: impl Into<PathBuf>) -> Cache {
        Cache {
            dir: dir.into(),
            hashes: Mutex::new(None),
        }
    }

    /// A cache in `dir`, which must be canon's: absent, empty, or holding
    /// only what a cache holds (its tag, `files.json`, `results/`, `gates/`).
    /// A folder of someone else's files is refused (exit 2), never written into.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Cache> {
        let dir = dir.into();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            let tagged = std::fs::read_to_string(dir.join(TAG)).is_ok_and(|t| t == TAG_TEXT);
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                // Untagged (written before the tag): canon's names, and a
                // files.json that is canon's index, not a file of that name.
                let own = OWN.contains(&name.as_str())
                    && (name != "files.json"
                        || std::fs::read(entry.path())
                            .is_ok_and(|b| serde_json::from_slice::<HashIndex>(&b).is_ok()));
                if !tagged && !own {
                    return Err(CanonError::request(format!(
                        "cache folder {}: refused, it holds {name}, which canon did not write; \
                         give --cache-dir a folder of its own",
                        dir.display()
                    )));
                }
            }
        } else if dir.exists() {
            return Err(CanonError::request(format!(
                "cache folder {}: refused, it is not a folder",
                dir.display()
            )));
        }
        Ok(Cache::new(dir))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The key of `metric` under `request` over the data in `root`.
    pub fn key(catalog: &Catalog, root: &Path, metric: &str, request: &Request) -> String {
        let files = &catalog.files;
        let mut h = Sha256::new();
        h.update(format!("canon result cache v{FORMAT}\n"));
        h.update(env!("CARGO_PKG_VERSION"));
        h.update(datafusion::DATAFUSION_VERSION);
        h.update(build_identity());
        let definitions = std::iter::once((&files.project.display_path, &files.project.sha256))
            .chain(files.models.iter().map(|f| (&f.display_path, &f.sha256)))
            .chain(files.metrics.iter().map(|f| (&f.display_path, &f.sha256)));
        for (path, sha) in definitions {
            h.update(format!("\n{}\n{sha}", path.display()));
        }
        let root = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
        h.update(format!("\n{}\n{metric}\n", root.display()));
        h.update(serde_json::to_vec(request).unwrap_or_default());
        hex::encode(h.finalize())
    }

    /// The stored result under `key`, if every file it read is unchanged
    /// (listed again under the data root `root`, the one the key names).
    /// A missing, unreadable or outdated entry is a miss, never an error.
    pub fn lookup(&self, key: &str, root: &Path) -> Option<Served> {
        let path = self.entry_path(key);
        let text = std::fs::read(&path).ok()?;
        let entry: Entry = match serde_json::from_slice(&text) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable cache entry");
                return None;
            }
        };
        if entry.format != FORMAT || entry.key != key {
            return None;
        }
        let expected = digest(key, &entry.stored_at, &entry.inputs, &entry.result).ok()?;
        if entry.digest != expected {
            tracing::warn!(
                path = %path.display(),
                "a cache entry does not verify (edited, damaged or written by another build): recomputing and replacing it"
            );
            return None;
        }
        for input in &entry.inputs {
            if !self.unchanged(input, root) {
                tracing::info!(table = %format!("{}/{}", input.system, input.table), "cache miss: input changed");
                return None;
            }
        }
        Some(Served {
            result: entry.result,
            stored_at: entry.stored_at,
        })
    }

    /// Stores `result` under `key` with the tables it read. A cache that
    /// cannot be written costs the next run a recomputation, so failures
    /// are reported on stderr and do not fail the query.
    pub fn store(&self, key: &str, inputs: Vec<InputTable>, result: &GovernedResult) {
        let stored_at = chrono::Utc::now().to_rfc3339();
        let written = digest(key, &stored_at, &inputs, result)
            .and_then(|digest| {
                serde_json::to_vec(&Entry {
                    format: FORMAT,
                    key: key.to_string(),
                    digest,
                    stored_at,
                    inputs,
                    result: result.clone(),
                })
                .map_err(|e| CanonError::Internal(format!("cannot encode a cache entry: {e}")))
            })
            .and_then(|bytes| {
                let path = self.entry_path(key);
                create_dir(&self.dir)?;
                let results = path.parent().unwrap_or(&self.dir);
                std::fs::create_dir_all(results).map_err(|e| CanonError::io(results, e))?;
                atomic::write_file(&path, &bytes)
            });
        if let Err(e) = written.and_then(|_| self.persist()) {
            tracing::warn!(error = %e, "could not write the result cache");
        }
    }

    /// The sha256 of a file's content, read from the index when the file's
    /// identity (size, mtime, ctime, inode) is the one it had when hashed.
    pub fn sha256(&self, path: &Path) -> Result<String> {
        let meta = std::fs::metadata(path).map_err(|e| CanonError::io(path, e))?;
        let stamp = stamp(&meta);
        let name = absolute(path);
        let mut guard = self.hashes.lock().expect("lock");
        let index = guard.get_or_insert_with(|| self.load_index());
        if let Some(h) = index.files.get(&name).filter(|h| h.stamp == stamp) {
            return Ok(h.sha256.clone());
        }
        let sha256 = files::sha256_file(path)?;
        index.files.insert(
            name,
            Hashed {
                stamp,
                sha256: sha256.clone(),
            },
        );
        index.dirty = true;
        Ok(sha256)
    }

    /// The sha256 of a file's content when the index already knows it for
    /// the file's current identity; `None` rather than reading the file.
    pub fn known_sha256(&self, path: &Path) -> Option<String> {
        let stamp = stamp(&std::fs::metadata(path).ok()?);
        let mut guard = self.hashes.lock().expect("lock");
        let index = guard.get_or_insert_with(|| self.load_index());
        index
            .files
            .get(&absolute(path))
            .filter(|h| h.stamp == stamp)
            .map(|h| h.sha256.clone())
    }

    /// Writes the file-hash index if it learned anything.
    pub fn persist(&self) -> Result<()> {
        let mut guard = self.hashes.lock().expect("lock");
        let Some(index) = guard.as_mut().filter(|i| i.dirty) else {
            return Ok(());
        };
        create_dir(&self.dir)?;
        index.format = FORMAT;
        index.digest = index.seal();
        let bytes = serde_json::to_vec(index)
            .map_err(|e| CanonError::Internal(format!("cannot encode the hash index: {e}")))?;
        atomic::write_file(&self.dir.join("files.json"), &bytes)?;
        index.dirty = false;
        Ok(())
    }

    fn load_index(&self) -> HashIndex {
        let path = self.dir.join("files.json");
        let Some(index) = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<HashIndex>(&b).ok())
            .filter(|i| i.format == FORMAT)
        else {
            return HashIndex::default();
        };
        if index.digest != index.seal() {
            tracing::warn!(path = %path.display(), "the file-hash index does not verify (edited or damaged): hashing every input again");
            return HashIndex::default();
        }
        index
    }

    fn entry_path(&self, key: &str) -> PathBuf {
        self.dir.join("results").join(format!("{key}.json"))
    }

    /// The table's folder still holds exactly these files with these contents.
    fn unchanged(&self, input: &InputTable, root: &Path) -> bool {
        let location = DataLocation {
            system: input.system.clone(),
            table: input.table.clone(),
            file: None,
            column: None,
        };
        let Ok(paths) = files::table_files(root, Path::new(&input.dir), &location) else {
            return false;
        };
        paths.len() == input.files.len()
            && paths.iter().zip(&input.files).all(|(path, stored)| {
                absolute(path) == stored.path
                    && self.sha256(path).is_ok_and(|sha| sha == stored.sha256)
            })
    }
}

/// The tables a computation read, as a cache entry records them.
pub fn inputs(
    root: &Path,
    catalog: &Catalog,
    read: &BTreeMap<String, SourceFacts>,
) -> Vec<InputTable> {
    read.values()
        .filter_map(|facts| {
            let (_, spec) = catalog.source_by_name(&facts.system, &facts.table)?;
            Some(InputTable {
                system: facts.system.clone(),
                table: facts.table.clone(),
                // Absolute: a run from another folder checks the same files.
                dir: absolute(&root.join(&spec.path)),
                files: facts
                    .files
                    .iter()
                    .map(|f| InputFile {
                        path: absolute(Path::new(&f.path)),
                        sha256: f.sha256.clone(),
                    })
                    .collect(),
            })
        })
        .collect()
}

/// The running executable's identity (size and times, one `stat`): a
/// rebuilt or reinstalled canon is another build. Empty when the platform
/// cannot tell, and the version numbers alone then key the build.
pub(crate) fn build_identity() -> String {
    std::env::current_exe()
        .and_then(std::fs::metadata)
        .map(|meta| format!("\n{:?}", stamp(&meta)))
        .unwrap_or_default()
}

/// The standard cache-folder tag (bford.info/cachedir): backup tools skip
/// the folder, and canon knows it as its own.
const TAG: &str = "CACHEDIR.TAG";
const TAG_TEXT: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by canon (its result cache).\n";

/// What a cache folder holds (a folder written before the tag existed is
/// recognised by these names alone).
const OWN: [&str; 4] = [TAG, "files.json", "results", "gates"];

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| CanonError::io(dir, e))?;
    let tag = dir.join(TAG);
    if !tag.exists() {
        atomic::write_file(&tag, TAG_TEXT.as_bytes())?;
    }
    Ok(())
}

fn absolute(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

#[cfg(unix)]
fn stamp(meta: &std::fs::Metadata) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    Stamp {
        bytes: meta.len(),
        modified_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        changed_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        inode: meta.ino(),
    }
}

#[cfg(not(unix))]
fn stamp(meta: &std::fs::Metadata) -> Stamp {
    let modified_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i128);
    Stamp {
        bytes: meta.len(),
        modified_ns,
        changed_ns: 0,
        inode: 0,
    }
}
