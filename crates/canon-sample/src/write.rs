//! Arrow column builders and the Parquet writer for the sample tables.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int64Array, StringBuilder,
    TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};

use super::TableReport;
use super::rng::mix64;
use crate::error::{Error as CanonError, Result};

/// Rows per row group (and per record batch handed to the writer).
pub const ROW_GROUP_ROWS: usize = 128 * 1024;
/// Rows per part file: tables above this are written as several part files.
pub const PART_ROWS: usize = 8 * ROW_GROUP_ROWS;
/// The freshness column every extract carries.
pub const SYNCED: &str = "_fivetran_synced";

/// The contract's column types (extracts.md, "Types").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Str,
    Bool,
    Int,
    Double,
    Date,
    Ts,
    Money,
    Rate,
}

impl Ty {
    pub fn arrow(self) -> DataType {
        match self {
            Ty::Str => DataType::Utf8,
            Ty::Bool => DataType::Boolean,
            Ty::Int => DataType::Int64,
            Ty::Double => DataType::Float64,
            Ty::Date => DataType::Date32,
            Ty::Ts => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Ty::Money => DataType::Decimal128(18, 2),
            Ty::Rate => DataType::Decimal128(18, 6),
        }
    }
}

/// One extract table: where it lands and its columns (without `_fivetran_synced`,
/// which every table carries last).
#[derive(Debug)]
pub struct TableDef {
    pub system: &'static str,
    pub table: &'static str,
    /// (name, type, nullable)
    pub columns: &'static [(&'static str, Ty, bool)],
}

impl TableDef {
    pub fn schema(&self) -> SchemaRef {
        let mut fields: Vec<Field> = self
            .columns
            .iter()
            .map(|&(name, ty, nullable)| Field::new(name, ty.arrow(), nullable))
            .collect();
        fields.push(Field::new(SYNCED, Ty::Ts.arrow(), false));
        Arc::new(Schema::new(fields))
    }
}

// ------------------------------------------------------------------ columns

pub fn utf8(idx: &[u32], f: impl Fn(usize, &mut String)) -> ArrayRef {
    let mut b = StringBuilder::with_capacity(idx.len(), idx.len() * 20);
    let mut buf = String::with_capacity(64);
    for &i in idx {
        buf.clear();
        f(i as usize, &mut buf);
        b.append_value(&buf);
    }
    Arc::new(b.finish())
}

/// `f` writes the value and returns true, or returns false for null.
pub fn utf8_opt(idx: &[u32], f: impl Fn(usize, &mut String) -> bool) -> ArrayRef {
    let mut b = StringBuilder::with_capacity(idx.len(), idx.len() * 20);
    let mut buf = String::with_capacity(64);
    for &i in idx {
        buf.clear();
        if f(i as usize, &mut buf) {
            b.append_value(&buf);
        } else {
            b.append_null();
        }
    }
    Arc::new(b.finish())
}

pub fn int64(idx: &[u32], f: impl Fn(usize) -> i64) -> ArrayRef {
    Arc::new(Int64Array::from_iter_values(
        idx.iter().map(|&i| f(i as usize)),
    ))
}

pub fn int64_opt(idx: &[u32], f: impl Fn(usize) -> Option<i64>) -> ArrayRef {
    Arc::new(Int64Array::from_iter(idx.iter().map(|&i| f(i as usize))))
}

pub fn float64(idx: &[u32], f: impl Fn(usize) -> f64) -> ArrayRef {
    Arc::new(Float64Array::from_iter_values(
        idx.iter().map(|&i| f(i as usize)),
    ))
}

pub fn boolean(idx: &[u32], f: impl Fn(usize) -> bool) -> ArrayRef {
    Arc::new(BooleanArray::from(
        idx.iter().map(|&i| f(i as usize)).collect::<Vec<bool>>(),
    ))
}

pub fn date32(idx: &[u32], f: impl Fn(usize) -> i32) -> ArrayRef {
    Arc::new(Date32Array::from_iter_values(
        idx.iter().map(|&i| f(i as usize)),
    ))
}

pub fn date32_opt(idx: &[u32], f: impl Fn(usize) -> Option<i32>) -> ArrayRef {
    Arc::new(Date32Array::from_iter(idx.iter().map(|&i| f(i as usize))))
}

pub fn ts(idx: &[u32], f: impl Fn(usize) -> i64) -> ArrayRef {
    Arc::new(
        TimestampMicrosecondArray::from_iter_values(idx.iter().map(|&i| f(i as usize)))
            .with_timezone("UTC"),
    )
}

pub fn ts_opt(idx: &[u32], f: impl Fn(usize) -> Option<i64>) -> ArrayRef {
    Arc::new(
        TimestampMicrosecondArray::from_iter(idx.iter().map(|&i| f(i as usize)))
            .with_timezone("UTC"),
    )
}

/// Money in cents, as Decimal128(18, 2).
pub fn money(idx: &[u32], f: impl Fn(usize) -> i64) -> ArrayRef {
    Arc::new(
        Decimal128Array::from_iter_values(idx.iter().map(|&i| f(i as usize) as i128))
            .with_data_type(Ty::Money.arrow()),
    )
}

pub fn money_opt(idx: &[u32], f: impl Fn(usize) -> Option<i64>) -> ArrayRef {
    Arc::new(
        Decimal128Array::from_iter(idx.iter().map(|&i| f(i as usize).map(|v| v as i128)))
            .with_data_type(Ty::Money.arrow()),
    )
}

/// A rate in millionths, as Decimal128(18, 6).
pub fn rate(idx: &[u32], f: impl Fn(usize) -> i64) -> ArrayRef {
    Arc::new(
        Decimal128Array::from_iter_values(idx.iter().map(|&i| f(i as usize) as i128))
            .with_data_type(Ty::Rate.arrow()),
    )
}

// ------------------------------------------------------------------ files

/// Builds the columns (without `_fivetran_synced`) of the given rows.
pub type BuildFn<'a> = Box<dyn Fn(&[u32]) -> Vec<ArrayRef> + Send + Sync + 'a>;
/// Returns the row indexes in the order they are written.
pub type OrderFn<'a> = Box<dyn Fn() -> Vec<u32> + Send + Sync + 'a>;

/// One table to write.
pub struct Job<'a> {
    pub def: &'static TableDef,
    pub order: OrderFn<'a>,
    pub build: BuildFn<'a>,
    /// The latest `_fivetran_synced` of the table.
    pub synced_max: i64,
}

fn properties() -> Result<WriterProperties> {
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_data_page_row_count_limit(16 * 1024)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_created_by("canon sample generator".to_string())
        .build())
}

pub fn str_hash(s: &str) -> u64 {
    s.bytes()
        .fold(0xCBF2_9CE4_8422_2325u64, |h, b| mix64(h ^ b as u64))
}

fn part_name(p: usize) -> String {
    format!("part-{p:05}.parquet")
}

/// Write one table as `<out>/<system>/<table>/part-NNNNN.parquet`, replacing
/// what was there. Each part is written to a hidden temporary file and then
/// renamed, so a reader never sees half a file.
pub fn write_table(out: &Path, job: &Job<'_>) -> Result<TableReport> {
    let def = job.def;
    let dir = out.join(def.system).join(def.table);
    fs::create_dir_all(&dir).map_err(|e| CanonError::io(&dir, e))?;
    let schema = def.schema();
    let props = properties()?;
    let order = (job.order)();
    let salt = str_hash(def.system) ^ mix64(str_hash(def.table));
    let mut written: Vec<String> = Vec::new();
    let mut bytes = 0u64;
    let parts: Vec<&[u32]> = if order.is_empty() {
        vec![&order[..]]
    } else {
        order.chunks(PART_ROWS).collect()
    };
    for (p, part) in parts.iter().enumerate() {
        let name = part_name(p);
        let path = dir.join(&name);
        let tmp = dir.join(format!(".{name}.tmp"));
        let file = fs::File::create(&tmp).map_err(|e| CanonError::io(&tmp, e))?;
        let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props.clone()))?;
        for chunk in part.chunks(ROW_GROUP_ROWS) {
            let mut cols = (job.build)(chunk);
            cols.push(ts(chunk, |i| {
                // Within 20 minutes before the table's last sync, whole milliseconds.
                let lag = (mix64(salt ^ i as u64) % (20 * 60 * 1000)) as i64 * 1000;
                job.synced_max - lag
            }));
            let batch = RecordBatch::try_new(schema.clone(), cols)?;
            writer.write(&batch)?;
            writer.flush()?;
        }
        writer.close()?;
        fs::rename(&tmp, &path).map_err(|e| CanonError::io(&path, e))?;
        bytes += fs::metadata(&path)
            .map_err(|e| CanonError::io(&path, e))?
            .len();
        written.push(name);
    }
    remove_stale_parts(&dir, &written)?;
    tracing::info!(
        target: "canon::sample",
        system = def.system,
        table = def.table,
        rows = order.len(),
        files = written.len(),
        bytes,
        "wrote sample table"
    );
    Ok(TableReport {
        system: def.system.to_string(),
        table: def.table.to_string(),
        rows: order.len(),
        bytes,
        files: written.len(),
    })
}

/// Remove part files of an earlier, larger run.
fn remove_stale_parts(dir: &Path, keep: &[String]) -> Result<()> {
    let entries = fs::read_dir(dir).map_err(|e| CanonError::io(dir, e))?;
    let mut stale: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| CanonError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("part-") && name.ends_with(".parquet") && !keep.contains(&name) {
            stale.push(entry.path());
        }
    }
    stale.sort();
    for path in stale {
        fs::remove_file(&path).map_err(|e| CanonError::io(&path, e))?;
    }
    Ok(())
}
