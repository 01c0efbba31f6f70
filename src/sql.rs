//! Ad-hoc SQL over the extracts, outside governance: every source table is
//! registered as `system.table` straight from its folder (schema read from
//! the files, no checks against the models, no hashing, no gates) on a
//! session configured as the engine's. For exploring the data, and as the
//! benchmark harness's "DataFusion by hand" baseline, which is why it adds
//! nothing of canon's own between the SQL and the engine.

use std::path::Path;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::common::TableReference;
use datafusion::prelude::ParquetReadOptions;

use crate::catalog::Catalog;
use crate::error::{CanonError, Result};

/// Runs `sql` over the tables under `root` and returns its batches.
pub async fn run(catalog: &Catalog, root: &Path, sql: &str) -> Result<Vec<RecordBatch>> {
    let ctx = crate::run::session(catalog)?;
    for key in catalog.sources.keys() {
        let (system, table) = key.split_once('/').unwrap_or((key, ""));
        let Some((_, spec)) = catalog.source_by_name(system, table) else {
            continue;
        };
        let dir = root.join(&spec.path);
        if !dir.is_dir() {
            continue;
        }
        let dir = std::fs::canonicalize(&dir).map_err(|e| CanonError::io(&dir, e))?;
        ctx.register_parquet(
            TableReference::partial(system, table),
            format!("{}/", dir.display()),
            ParquetReadOptions::default(),
        )
        .await?;
    }
    Ok(ctx.sql(sql).await?.collect().await?)
}

/// Tab-separated text with a header line: easy to read and to parse.
pub fn tsv(batches: &[RecordBatch]) -> Result<String> {
    let mut out = String::new();
    if let Some(first) = batches.first() {
        let names: Vec<&str> = first
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        out.push_str(&names.join("\t"));
        out.push('\n');
    }
    for batch in batches {
        for row in 0..batch.num_rows() {
            let cells = batch
                .columns()
                .iter()
                .map(|c| array_value_to_string(c, row))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            out.push_str(&cells.join("\t"));
            out.push('\n');
        }
    }
    Ok(out)
}
