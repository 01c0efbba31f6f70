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
//! Content hashes come from the cache folder's file-hash index
//! ([`Fingerprints`]), so checking an unchanged input costs a `stat`; a file
//! rewritten with the same bytes still serves. In an object store a table's
//! prefix is listed again and each object compared by ETag, version and
//! size (one LIST per table read; no object is downloaded).
//!
//! Freshness is not part of the key: it depends on "now", not on the data.
//! A served result's freshness checks are judged again against the run's
//! clock (see `query`), so a cached number over stale data is still blocked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::atomic;
use crate::catalog::Catalog;
use crate::error::{CanonError, DataLocation, Result};
use crate::request::Request;
use crate::result::{GovernedResult, Lineage};
use crate::run::files::{self, FileFact};
use crate::run::fingerprints::{Fingerprints, absolute, build_identity, create_dir};
use crate::run::store::StoreRoot;
use crate::run::{DataSource, SourceFacts};

/// Bumped whenever the stored layout or the meaning of a key changes.
const FORMAT: u32 = 2;

/// The results in a cache folder (`results/<key>.json`), checked against
/// the folder's file-hash index.
pub struct Cache {
    prints: Arc<Fingerprints>,
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
    /// The results of the cache folder whose file-hash index is `prints`.
    pub fn over(prints: Arc<Fingerprints>) -> Cache {
        Cache { prints }
    }

    /// The key of `metric` under `request` over the data in `root`.
    pub fn key(catalog: &Catalog, root: &DataSource, metric: &str, request: &Request) -> String {
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
        h.update(format!("\n{}\n{metric}\n", root_name(root)));
        h.update(serde_json::to_vec(request).unwrap_or_default());
        hex::encode(h.finalize())
    }

    /// The stored result under `key`, if every file it read is unchanged
    /// (listed again under the data root `root`, the one the key names).
    /// A missing, unreadable or outdated entry is a miss, never an error.
    pub async fn lookup(&self, key: &str, catalog: &Catalog, root: &DataSource) -> Option<Served> {
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
        let mut result = entry.result;
        for input in &entry.inputs {
            let unchanged = match root {
                DataSource::Folder(root) => self
                    .unchanged(input, root, catalog)
                    .map(|paths| shown_from_here(&mut result.lineage, input, &paths)),
                DataSource::Store(store) => {
                    unchanged_objects(input, store, catalog).await.then_some(())
                }
                DataSource::Empty => None,
            };
            if unchanged.is_none() {
                tracing::info!(table = %format!("{}/{}", input.system, input.table), "cache miss: input changed");
                return None;
            }
        }
        Some(Served {
            result,
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
                create_dir(self.prints.dir())?;
                let results = path.parent().unwrap_or(self.prints.dir());
                std::fs::create_dir_all(results).map_err(|e| CanonError::io(results, e))?;
                atomic::write_file(&path, &bytes)
            });
        if let Err(e) = written.and_then(|_| self.prints.persist()) {
            tracing::warn!(error = %e, "could not write the result cache");
        }
    }

    fn entry_path(&self, key: &str) -> PathBuf {
        self.prints
            .dir()
            .join("results")
            .join(format!("{key}.json"))
    }

    /// The table's files, as this run names them, when its folder still
    /// holds exactly these files with these contents.
    fn unchanged(
        &self,
        input: &InputTable,
        root: &Path,
        catalog: &Catalog,
    ) -> Option<Vec<PathBuf>> {
        let location = DataLocation {
            system: input.system.clone(),
            table: input.table.clone(),
            file: None,
            column: None,
        };
        // Listed as the run binds it (under the root as given), so the
        // paths are the ones this run's lineage would show.
        let (_, spec) = catalog.source_by_name(&input.system, &input.table)?;
        let paths = files::table_files(root, &root.join(&spec.path), &location).ok()?;
        (paths.len() == input.files.len()
            && paths.iter().zip(&input.files).all(|(path, stored)| {
                absolute(path) == stored.path
                    && self
                        .prints
                        .sha256(path)
                        .is_ok_and(|sha| sha == stored.sha256)
            }))
        .then_some(paths)
    }
}

/// Names a served result's files as the serving run does. The run that
/// computed it may have named the data root from another folder
/// (`--project p1` from its parent lists `p1/sample_data/…`): its paths would
/// point nowhere from here. The files are the same (same absolute path, same
/// hash: checked before this), listed in the same order as the computing run
/// recorded them.
fn shown_from_here(lineage: &mut Lineage, input: &InputTable, paths: &[PathBuf]) {
    for source in &mut lineage.sources {
        if source.system != input.system || source.table != input.table {
            continue;
        }
        for (file, (path, stored)) in source.files.iter_mut().zip(paths.iter().zip(&input.files)) {
            if file.identity() == stored.sha256 {
                file.path = path.display().to_string();
            }
        }
    }
}

/// The table's prefix in the store still holds exactly these objects with
/// these ETags, versions and sizes.
async fn unchanged_objects(input: &InputTable, store: &StoreRoot, catalog: &Catalog) -> bool {
    let Some((id, _)) = catalog.source_by_name(&input.system, &input.table) else {
        return false;
    };
    let Ok(objects) = store.table_objects(catalog, id).await else {
        return false;
    };
    objects.len() == input.files.len()
        && objects.iter().zip(&input.files).all(|(meta, stored)| {
            store.name(&meta.location) == stored.path
                && FileFact::object_identity(
                    meta.e_tag.as_deref(),
                    meta.version.as_deref(),
                    meta.size,
                ) == stored.sha256
        })
}

/// How a cache key names the data root: a folder's absolute path (a run
/// from another folder reads the same files), or a store's URL.
fn root_name(root: &DataSource) -> String {
    match root {
        DataSource::Folder(root) => std::path::absolute(root)
            .unwrap_or_else(|_| root.to_path_buf())
            .display()
            .to_string(),
        DataSource::Store(store) => store.url().to_string(),
        DataSource::Empty => String::new(),
    }
}

/// The tables a computation read, as a cache entry records them.
pub fn inputs(
    root: &DataSource,
    catalog: &Catalog,
    read: &BTreeMap<String, SourceFacts>,
) -> Vec<InputTable> {
    read.values()
        .filter_map(|facts| {
            let (id, spec) = catalog.source_by_name(&facts.system, &facts.table)?;
            let (dir, local) = match root {
                // Absolute: a run from another folder checks the same files.
                DataSource::Folder(root) => (absolute(&root.join(&spec.path)), true),
                DataSource::Store(store) => {
                    (store.name(&store.table_prefix(catalog, id).ok()?), false)
                }
                DataSource::Empty => return None,
            };
            Some(InputTable {
                system: facts.system.clone(),
                table: facts.table.clone(),
                dir,
                files: facts
                    .files
                    .iter()
                    .map(|f| InputFile {
                        path: if local {
                            absolute(Path::new(&f.path))
                        } else {
                            f.path.clone()
                        },
                        sha256: f.identity(),
                    })
                    .collect(),
            })
        })
        .collect()
}
