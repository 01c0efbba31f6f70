//! Decoding a Parquet file's data pages, to find damage its footer cannot
//! show: `canon validate --deep` decodes every column of every row group of
//! every file, and a query that fails with a decode error re-scans its input
//! files here to name the damaged one (the engine's error carries no file).
//!
//! A footer check (schema, row counts) reads a few kilobytes at the end of a
//! file; a page whose bytes were damaged after it was written (a bad disk, a
//! truncated copy patched up, a buggy writer) is only seen when it is
//! decoded. Decoding streams record batches and keeps none, so a file of any
//! size is checked in the memory of one batch.

use std::fs::File;
use std::path::{Path, PathBuf};

use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::{CanonError, DataLocation};

/// Where a file failed to decode, as precisely as the reader lets us say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// The row group (0-based, as Parquet tools number them), when known.
    pub row_group: Option<usize>,
    /// The column that does not decode, when known.
    pub column: Option<String>,
    /// The reader's own words.
    pub message: String,
}

impl Damage {
    /// A data error of the table at `location`, naming `path` and, where
    /// known, the column and row group.
    pub fn error(&self, location: &DataLocation, path: &Path) -> CanonError {
        let place = match self.row_group {
            Some(rg) => format!("row group {rg} "),
            None => String::new(),
        };
        CanonError::data(
            DataLocation {
                file: Some(path.display().to_string()),
                column: self.column.clone(),
                ..location.clone()
            },
            format!(
                "{place}cannot be decoded ({}): the file is damaged; replace it with a good \
                 extract",
                self.message.trim()
            ),
        )
    }
}

/// Decodes `columns` of every row group of `path` (every column when
/// `None`; names the file does not hold are ignored). The whole file is read
/// once in the usual case; only when it fails is it read again one row group
/// and one column at a time, to say which.
pub fn decode_file(path: &Path, columns: Option<&[String]>) -> Result<(), Damage> {
    let whole = |message: String| Damage {
        row_group: None,
        column: None,
        message,
    };
    let builder = open(path).map_err(whole)?;
    let schema = builder.schema().clone();
    let wanted: Vec<usize> = (0..schema.fields().len())
        .filter(|i| columns.is_none_or(|c| c.iter().any(|n| n == schema.field(*i).name())))
        .collect();
    let row_groups = builder.metadata().num_row_groups();
    let first = match read(path, None, &wanted) {
        Ok(()) => return Ok(()),
        Err(message) => message,
    };
    for rg in 0..row_groups {
        for &column in &wanted {
            if let Err(message) = read(path, Some(rg), &[column]) {
                return Err(Damage {
                    row_group: Some(rg),
                    column: Some(schema.field(column).name().clone()),
                    message,
                });
            }
        }
    }
    Err(whole(first))
}

fn open(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| e.to_string())
}

/// Reads the root columns `columns` of one row group (all when `None`),
/// batch after batch, keeping none.
fn read(path: &Path, row_group: Option<usize>, columns: &[usize]) -> Result<(), String> {
    let builder = open(path)?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), columns.iter().copied());
    let mut builder = builder.with_projection(mask);
    if let Some(rg) = row_group {
        builder = builder.with_row_groups(vec![rg]);
    }
    // A panic in a decoder on hostile bytes is damage too, not a crash.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let reader = builder.build().map_err(|e| e.to_string())?;
        for batch in reader {
            batch.map_err(|e| e.to_string())?;
        }
        Ok(())
    }));
    outcome.unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "the decoder panicked".to_string());
        Err(why)
    })
}

/// The files of one table a failed command read, for [`locate`].
#[derive(Debug, Clone)]
pub struct ReadTable {
    pub location: DataLocation,
    pub files: Vec<PathBuf>,
    /// The columns the engine may have read (every column when `None`).
    pub columns: Option<Vec<String>>,
}

/// Whether `error` is the engine failing to decode a Parquet file (a
/// Parquet error, or the Arrow reader's, anywhere in its chain), as opposed
/// to a failure of the computation itself (a division by zero, a failed
/// cast, memory): only the first kind is worth a re-scan of the inputs. An
/// error wrapped with its metric or publication (`CanonError::Context`)
/// counts by what it wraps, so blaming first never hides a damaged file.
pub fn is_decode_error(error: &CanonError) -> bool {
    use datafusion::arrow::error::ArrowError;
    use datafusion::error::DataFusionError;
    use datafusion::parquet::errors::ParquetError;
    // Through the wrappers that name the metric or the publication: a
    // damaged file is the data's fault whoever was reading it.
    if let CanonError::Context { source, .. } = error {
        return is_decode_error(source);
    }
    let CanonError::Engine(error) = error else {
        return false;
    };
    let mut link: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = link {
        if e.downcast_ref::<ParquetError>().is_some() {
            return true;
        }
        // A reading task that panicked (a decoder on hostile bytes).
        if matches!(
            e.downcast_ref::<DataFusionError>(),
            Some(DataFusionError::ExecutionJoin(_))
        ) || e.downcast_ref::<tokio::task::JoinError>().is_some()
            || e.downcast_ref::<std::sync::Arc<tokio::task::JoinError>>()
                .is_some()
        {
            return true;
        }
        // An error shared between partitions hides behind an `Arc`.
        if let Some(shared) = e.downcast_ref::<std::sync::Arc<DataFusionError>>() {
            link = Some(shared.as_ref());
            continue;
        }
        if let Some(ArrowError::ParquetError(_) | ArrowError::IoError(..)) =
            e.downcast_ref::<ArrowError>()
        {
            return true;
        }
        link = e.source();
    }
    false
}

/// When `error` is a decode error ([`is_decode_error`]), decodes again,
/// one file at a time, the `tables` the failed command read (the engine's
/// error does not say which file it was reading) and returns a data error
/// naming the damaged file, column and row group, with the engine's own
/// words after it; every other damaged file found is listed too. Any other
/// error, or one whose files all decode, is returned as it is.
pub fn locate(error: CanonError, tables: &[ReadTable]) -> CanonError {
    if !is_decode_error(&error) {
        return error;
    }
    let mut damaged = Vec::new();
    for table in tables {
        for path in &table.files {
            if let Err(damage) = decode_file(path, table.columns.as_deref()) {
                damaged.push((damage.error(&table.location, path), damage.message));
            }
        }
    }
    let mut damaged = damaged.into_iter();
    let Some((
        CanonError::Data {
            location,
            mut message,
        },
        said,
    )) = damaged.next()
    else {
        return error;
    };
    for (other, _) in damaged {
        message.push_str(&format!("\n  also damaged: {other}"));
    }
    // The engine's words, when they say more than the reader's.
    let engine = error.to_string();
    let engine = engine.lines().next().unwrap_or_default();
    if !engine.contains(said.trim()) {
        message.push_str(&format!("\n  (the engine stopped with: {engine})"));
    }
    CanonError::Data { location, message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::error::ArrowError;
    use datafusion::error::DataFusionError;
    use datafusion::parquet::errors::ParquetError;

    fn engine(e: DataFusionError) -> CanonError {
        CanonError::Engine(e)
    }

    #[test]
    fn reader_errors_are_decode_errors_wherever_they_sit_in_the_chain() {
        let parquet = || ParquetError::General("Unexpected struct field type 15".into());
        assert!(is_decode_error(&engine(parquet().into())));
        assert!(is_decode_error(&engine(DataFusionError::External(
            Box::new(parquet())
        ))));
        assert!(is_decode_error(&engine(DataFusionError::Context(
            "scanning".into(),
            Box::new(DataFusionError::ArrowError(
                Box::new(ArrowError::ExternalError(Box::new(parquet()))),
                None
            ))
        ))));
        assert!(is_decode_error(&engine(
            ArrowError::ParquetError("bad page".into()).into()
        )));
    }

    #[test]
    fn computation_errors_are_not_decode_errors() {
        // Whose fault these are is said elsewhere; a re-scan would not help.
        assert!(!is_decode_error(&engine(ArrowError::DivideByZero.into())));
        assert!(!is_decode_error(&engine(
            ArrowError::CastError("'x' is not a number".into()).into()
        )));
        assert!(!is_decode_error(&engine(
            DataFusionError::ResourcesExhausted("pool".into())
        )));
        assert!(!is_decode_error(&CanonError::request("no such metric")));
    }

    #[test]
    fn a_file_that_is_not_parquet_is_damage_of_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.parquet");
        std::fs::write(&path, b"PAR1 not really").unwrap();
        let damage = decode_file(&path, None).unwrap_err();
        assert_eq!((damage.row_group, damage.column.as_deref()), (None, None));
        let error = damage.error(
            &DataLocation {
                system: "crm".into(),
                table: "opportunity".into(),
                file: None,
                column: None,
            },
            &path,
        );
        assert!(
            error.to_string().starts_with(&format!(
                "data error in crm/opportunity file {}: cannot be decoded",
                path.display()
            )),
            "{error}"
        );
    }
}
