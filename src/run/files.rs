//! The files behind a source table: listing them, checking each one's schema
//! against the model before anything is read, and the facts lineage records
//! (bytes, rows, content hash).

use std::collections::{BTreeSet, HashSet};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sha2::{Digest, Sha256};

use crate::catalog::{Catalog, SourceId};
use crate::error::{CanonError, DataLocation, Result};
use crate::spec::SourceSpec;

/// Why canon refuses a file or folder whose name is not UTF-8.
pub(crate) const NOT_UTF8: &str = "its name is not UTF-8: the engine reads files by URL, which \
     must be UTF-8, so canon could neither read its rows nor leave them out unseen; rename it";
use crate::yaml_path;

/// One Parquet file of a source table, as lineage reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileFact {
    /// A local file's path, or an object's URL (`s3://bucket/key`).
    pub path: String,
    pub bytes: u64,
    pub rows: i64,
    /// The content hash of a local file; empty for an object in a store,
    /// which is known by its ETag and version instead (reading its bytes to
    /// hash them would download the data twice).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sha256: String,
    /// An object's ETag, as its store gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// An object's version, where its store keeps versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl FileFact {
    /// What the file's content is known by: its sha256, or for an object its
    /// ETag, version and size. Two runs that see the same identity read the
    /// same bytes (the cache, the result's fingerprint and the history's
    /// inputs hash rely on it).
    pub fn identity(&self) -> String {
        if self.sha256.is_empty() {
            Self::object_identity(self.etag.as_deref(), self.version.as_deref(), self.bytes)
        } else {
            self.sha256.clone()
        }
    }

    /// An object's identity: what [`Self::identity`] gives for it.
    pub fn object_identity(etag: Option<&str>, version: Option<&str>, bytes: u64) -> String {
        format!(
            "etag:{} version:{} bytes:{bytes}",
            etag.unwrap_or("-"),
            version.unwrap_or("-")
        )
    }
}

/// The folder of source `id` under the data root `root`, which must resolve
/// inside the data root: a model's `path` that leads elsewhere (`..`, an
/// absolute path, a link to a folder outside) is refused before anything is
/// listed, naming the `path` in the model file and where it leads (exit 2,
/// as for a bad data root). A folder that does not exist is not refused
/// here: listing it says so, as a data error of its table.
pub fn source_dir(catalog: &Catalog, root: &Path, id: SourceId) -> Result<PathBuf> {
    let (model, spec) = catalog.source(id);
    let dir = root.join(&spec.path);
    let real_root = std::fs::canonicalize(root).map_err(|e| CanonError::io(root, e))?;
    let target = crate::protect::resolve(&dir);
    if !target.starts_with(&real_root) {
        return Err(CanonError::request(format!(
            "{}: source {}/{}: path `{}` leads outside the data root {}: it resolves to {}; \
             a source's folder must be inside the data root",
            model.at(&yaml_path!["sources", id.index, "path"]),
            model.spec.system,
            spec.name,
            spec.path,
            real_root.display(),
            target.display()
        )));
    }
    Ok(dir)
}

/// The files of source `id` under the data root `root`: [`source_dir`],
/// then [`table_files`]. Every command that reads a table lists it here.
pub fn source_files(catalog: &Catalog, root: &Path, id: SourceId) -> Result<Vec<PathBuf>> {
    table_files(
        root,
        &source_dir(catalog, root, id)?,
        &catalog.source_location(id),
    )
}

/// Lists the `.parquet` files under `dir` (recursively, sorted), so that a
/// table may be one file or many part files in any folder layout. Names
/// starting with `.` or `_` (hidden, temporary, `_SUCCESS`-style markers,
/// and a file called just `.parquet`) are not part of the table, files or
/// folders alike. This list is the table: the engine is given exactly these
/// files, so what is checked, hashed and reported is what is read. It is the
/// one walk of a table folder: queries, validate, check, sql, the cache's
/// input check and the gates' file lookups all list through it.
///
/// The walk stays inside the data root `root`. Symbolic links that resolve
/// inside it are followed (a table folder may be a link, or hold links to
/// part files or folders elsewhere in the data root); a link that resolves
/// outside it is refused by name (a data error of the table, naming the
/// link and its target), and so is a broken link named `*.parquet` and a
/// `*.parquet` that is not a regular file (a pipe would block the reader).
///
/// Every folder and file is identified by (device, inode), and each is taken
/// once: a folder already walked is silently not entered again, so a link
/// loop (`ln -s . loop`, `ln -s ../opportunity loop2`) ends the walk instead
/// of running forever, and a file reached by a second name (a link to a
/// part file already listed, or a hard link) is listed once. A loop or a
/// second name cannot add a file, and reading a file twice would count its
/// rows twice, so skipping is right (and not an error). When a file or
/// folder has several names, the one reached without following a link is
/// kept, else the first in path order, so the listing is the same at every
/// run.
pub fn table_files(root: &Path, dir: &Path, location: &DataLocation) -> Result<Vec<PathBuf>> {
    let missing = || {
        CanonError::data(
            location.clone(),
            format!("table folder {} does not exist", dir.display()),
        )
    };
    let real_root = std::fs::canonicalize(root).map_err(|e| CanonError::io(root, e))?;
    let real_dir = std::fs::canonicalize(dir).map_err(|_| missing())?;
    if !real_dir.is_dir() {
        return Err(missing());
    }
    if !real_dir.starts_with(&real_root) {
        return Err(CanonError::data(
            location.clone(),
            format!(
                "table folder {} resolves to {}, outside the data root {}",
                dir.display(),
                real_dir.display(),
                real_root.display()
            ),
        ));
    }
    let refuse = |path: &Path, message: String| {
        CanonError::data(
            DataLocation {
                file: Some(path.display().to_string()),
                ..location.clone()
            },
            message,
        )
    };
    // Folders to walk, those reached without a link first, then in path order.
    let mut pending: BTreeSet<(bool, PathBuf)> = BTreeSet::from([(false, dir.to_path_buf())]);
    let mut walked: HashSet<(u64, u64)> = HashSet::new();
    // (reached through a link, path, identity) of every candidate file.
    let mut found: Vec<(bool, PathBuf, (u64, u64))> = Vec::new();
    while let Some((through_link, folder)) = pending.pop_first() {
        let meta = std::fs::metadata(&folder).map_err(|e| CanonError::io(&folder, e))?;
        if !walked.insert(identity(&meta)) {
            tracing::info!(folder = %folder.display(), "already listed under another name: skipped");
            continue;
        }
        let entries = std::fs::read_dir(&folder).map_err(|e| CanonError::io(&folder, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| CanonError::io(&folder, e))?;
            let path = entry.path();
            let lossy = entry.file_name().to_string_lossy().into_owned();
            if lossy.starts_with('.') || lossy.starts_with('_') {
                continue;
            }
            // The engine reads files by URL, and a URL is UTF-8: a file or
            // folder named otherwise could be neither read nor skipped
            // without leaving its rows out of the number unseen.
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                // Only what canon would read: a folder or a Parquet file (a
                // note named in Latin-1 beside the parts is not the table's).
                let folder = std::fs::metadata(&path).is_ok_and(|m| m.is_dir());
                if folder || lossy.ends_with(".parquet") {
                    return Err(refuse(&path, NOT_UTF8.to_string()));
                }
                continue;
            };
            let is_link = entry
                .file_type()
                .map_err(|e| CanonError::io(&path, e))?
                .is_symlink();
            if is_link {
                match std::fs::canonicalize(&path) {
                    Ok(target) if target.starts_with(&real_root) => {}
                    Ok(target) => {
                        return Err(refuse(
                            &path,
                            format!(
                                "is a link to {}, outside the data root {}: canon reads only \
                                 files inside the data root",
                                target.display(),
                                real_root.display()
                            ),
                        ));
                    }
                    Err(e) if name.ends_with(".parquet") => {
                        return Err(refuse(&path, format!("is a broken link: {e}")));
                    }
                    // A broken link by another name is not part of the table.
                    Err(_) => continue,
                }
            }
            let meta = std::fs::metadata(&path).map_err(|e| CanonError::io(&path, e))?;
            if meta.is_dir() {
                pending.insert((through_link || is_link, path));
            } else if name.ends_with(".parquet") {
                if !meta.is_file() {
                    return Err(refuse(
                        &path,
                        "is not a regular file (a pipe, socket or device): not a Parquet file"
                            .to_string(),
                    ));
                }
                found.push((through_link || is_link, path, identity(&meta)));
            }
        }
    }
    found.sort();
    let mut listed = HashSet::new();
    let mut out = Vec::new();
    for (_, path, id) in found {
        if listed.insert(id) {
            out.push(path);
        } else {
            tracing::info!(file = %path.display(), "already listed under another name: skipped");
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(CanonError::data(
            location.clone(),
            format!("table folder {} holds no .parquet files", dir.display()),
        ));
    }
    Ok(out)
}

/// (device, inode): what a file or folder is, whatever name reached it.
fn identity(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

/// Reads one file's footer and checks its columns against the model: every
/// declared column present with its declared type. The content hash is left
/// empty for the engine to fill in (it is computed off the query's path).
pub fn inspect(path: &Path, source: &SourceSpec, location: &DataLocation) -> Result<FileFact> {
    let here = |column: Option<&str>| DataLocation {
        file: Some(path.display().to_string()),
        column: column.map(str::to_string),
        ..location.clone()
    };
    let file = File::open(path).map_err(|e| CanonError::io(path, e))?;
    let bytes = file.metadata().map_err(|e| CanonError::io(path, e))?.len();
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| CanonError::data(here(None), format!("not a readable Parquet file: {e}")))?;
    let rows = builder.metadata().file_metadata().num_rows();
    check_schema(builder.schema(), source, &here)?;
    Ok(FileFact {
        path: path.display().to_string(),
        bytes,
        rows,
        sha256: String::new(),
        etag: None,
        version: None,
    })
}

pub(super) fn check_schema(
    schema: &Schema,
    source: &SourceSpec,
    here: &dyn Fn(Option<&str>) -> DataLocation,
) -> Result<()> {
    match schema_problems(schema, source).into_iter().next() {
        None => Ok(()),
        Some((i, message)) => Err(CanonError::data(
            here(Some(&source.columns[i].name)),
            message,
        )),
    }
}

/// Every declared column that is missing from a file's schema or has
/// another type: (index of the column in the model, message).
pub fn schema_problems(schema: &Schema, source: &SourceSpec) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, column) in source.columns.iter().enumerate() {
        let expected = column.ty.arrow();
        match schema.field_with_name(&column.name) {
            Err(_) => out.push((
                i,
                format!(
                    "column is missing; the model declares `{}` as {}",
                    column.name,
                    column.ty.name()
                ),
            )),
            Ok(field) if !same_type(field.data_type(), &expected) => out.push((
                i,
                format!(
                    "has type {} but the model declares {} ({expected})",
                    field.data_type(),
                    column.ty.name()
                ),
            )),
            Ok(_) => {}
        }
    }
    out
}

/// The Arrow schema stored in a Parquet file's footer.
pub fn file_schema(path: &Path, location: &DataLocation) -> Result<Schema> {
    let file = File::open(path).map_err(|e| CanonError::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| {
        CanonError::data(
            DataLocation {
                file: Some(path.display().to_string()),
                ..location.clone()
            },
            format!("not a readable Parquet file: {e}"),
        )
    })?;
    Ok(builder.schema().as_ref().clone())
}

/// Types are equal, counting every spelling of UTC as the same zone.
fn same_type(found: &DataType, expected: &DataType) -> bool {
    match (found, expected) {
        (DataType::Timestamp(u1, Some(z1)), DataType::Timestamp(u2, Some(z2))) => {
            u1 == u2 && is_utc(z1) && is_utc(z2)
        }
        _ => found == expected,
    }
}

fn is_utc(zone: &str) -> bool {
    matches!(zone, "UTC" | "+00:00" | "Z" | "Etc/UTC" | "+0000")
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(|e| CanonError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| CanonError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}
