//! The files behind a source table: listing them, checking each one's schema
//! against the model before anything is read, and the facts lineage records
//! (bytes, rows, content hash).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sha2::{Digest, Sha256};

use crate::error::{CanonError, DataLocation, Result};
use crate::spec::SourceSpec;

/// One Parquet file of a source table, as lineage reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileFact {
    pub path: String,
    pub bytes: u64,
    pub rows: i64,
    pub sha256: String,
}

/// Lists the `.parquet` files under `dir` (recursively, sorted), so that a
/// table may be one file or many part files in any folder layout. Names
/// starting with `.` or `_` (hidden, temporary, `_SUCCESS`-style markers,
/// and a file called just `.parquet`) are not part of the table, files or
/// folders alike. This list is the table: the engine is given exactly these
/// files, so what is checked, hashed and reported is what is read.
pub fn parquet_files(dir: &Path, location: &DataLocation) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Err(CanonError::data(
            location.clone(),
            format!("table folder {} does not exist", dir.display()),
        ));
    }
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| CanonError::io(&d, e))?;
        for entry in entries {
            let path = entry.map_err(|e| CanonError::io(&d, e))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or(".");
            if name.starts_with('.') || name.starts_with('_') {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if name.ends_with(".parquet") {
                out.push(path);
            }
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
    })
}

fn check_schema(
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
