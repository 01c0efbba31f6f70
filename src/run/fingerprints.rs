//! Content hashes of input files, remembered by file identity (size, mtime,
//! ctime, inode) in the cache folder's `files.json`, so checking an
//! unchanged input costs a `stat`, not a read. A file whose identity
//! changed is hashed again; when its bytes are the same its hash is the
//! same: fingerprints are of content, not of timestamps. Lineage, the
//! result cache and the gates' remembered outcomes all key on them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::atomic;
use crate::error::{CanonError, Result};

/// The warnings speak for the cache folder, so they carry its name on
/// stderr (as they did when the index lived in `cache`).
const TARGET: &str = "canon::cache";

/// Bumped whenever the index's layout changes.
const FORMAT: u32 = 2;

/// A cache folder's file-hash index (`files.json`); the folder also holds
/// the result cache (`results/`) and the gates' outcomes (`gates/`).
pub struct Fingerprints {
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

/// A file's identity: what tells that it is still the file canon read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Stamp {
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

impl Fingerprints {
    /// The index of the cache folder `dir` (created on first store).
    pub fn new(dir: impl Into<PathBuf>) -> Fingerprints {
        Fingerprints {
            dir: dir.into(),
            hashes: Mutex::new(None),
        }
    }

    /// A cache in `dir`, which must be canon's: absent, empty, or holding
    /// only what a cache holds (its tag, `files.json`, `results/`, `gates/`).
    /// A folder of someone else's files is refused (exit 2), never written into.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Fingerprints> {
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
        Ok(Fingerprints::new(dir))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
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
        let sha256 = super::files::sha256_file(path)?;
        // A file replaced while it was read: its hash would be remembered
        // under the identity of a file that is gone, or of bytes it never
        // held.
        if stamp_of(path).as_ref() != Some(&stamp) {
            return Err(changed_while_read(path));
        }
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
            tracing::warn!(target: TARGET, path = %path.display(), "the file-hash index does not verify (edited or damaged): hashing every input again");
            return HashIndex::default();
        }
        index
    }
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
const OWN: [&str; 5] = [TAG, "files.json", "results", "gates", "closures"];

pub(crate) fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| CanonError::io(dir, e))?;
    let tag = dir.join(TAG);
    if !tag.exists() {
        atomic::write_file(&tag, TAG_TEXT.as_bytes())?;
    }
    Ok(())
}

pub(crate) fn absolute(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// The identity of the file at `path` now; `None` when it cannot be read.
pub(crate) fn stamp_of(path: &Path) -> Option<Stamp> {
    std::fs::metadata(path).ok().map(|m| stamp(&m))
}

/// The error of a file that changed (was rewritten, replaced or removed)
/// while canon read it: whatever it computed may mix two versions of it.
pub(crate) fn changed_while_read(path: &Path) -> CanonError {
    CanonError::data(
        crate::error::DataLocation::root(path),
        "changed while canon read it (rewritten, replaced or removed): the number could mix two \
         versions of the data, so none is given and nothing is remembered; run again once the \
         extract is written",
    )
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
