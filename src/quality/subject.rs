//! What a failed row-count gate shows: the entity it is about, the first
//! offending keys and the files that hold their rows. Shared by the gates'
//! checks (`uniqueness`, `intervals`) and the value domains.

use crate::run::memory::WithinMemory;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use datafusion::arrow::array::Array;
use datafusion::logical_expr::{Expr, cast, col, lit};

use crate::catalog::Catalog;
use crate::error::{CanonError, Result};
use crate::run::{DataSource, Engine};
use crate::spec::EntitySpec;

/// How many offending keys a gate shows, in key order.
pub const EXAMPLES: usize = 5;

/// The entity a gate is about: its name, key and source table.
pub struct Subject {
    pub entity: String,
    pub system: String,
    pub table: String,
    pub key: String,
    pub(super) id: crate::catalog::EntityId,
}

impl Subject {
    pub fn of(catalog: &Catalog, entity: &str) -> Result<Subject> {
        let (id, model, spec) = catalog
            .entity(entity)
            .ok_or_else(|| CanonError::Internal(format!("gate on unknown entity `{entity}`")))?;
        Ok(Subject {
            entity: entity.to_string(),
            system: model.spec.system.clone(),
            table: spec.source.clone(),
            key: spec.key.clone(),
            id,
        })
    }

    /// `system/table`, as checks and `--allow` name a table.
    pub fn table_key(&self) -> String {
        format!("{}/{}", self.system, self.table)
    }

    pub(super) fn spec<'a>(&self, catalog: &'a Catalog) -> &'a EntitySpec {
        &catalog.files.models[self.id.file].spec.entities[self.id.index]
    }
}

/// A cell as text (dates as `2025-03-01`, keys as they are).
pub fn cell_text(array: &dyn Array, row: usize) -> String {
    datafusion::arrow::util::display::array_value_to_string(array, row).unwrap_or_default()
}

/// The files holding some keys' rows.
pub struct KeyFiles {
    /// key → files.
    by_key: BTreeMap<String, BTreeSet<String>>,
    /// key → rows the source table holds of it.
    rows_of_key: BTreeMap<String, i64>,
    /// (key, start) → files, for interval rows.
    by_row: BTreeMap<(String, String), BTreeSet<String>>,
    /// Whether the scan told the files (else only `fallback` is known).
    known: bool,
    /// Every file of the table, for a row whose file could not be told.
    fallback: String,
}

impl KeyFiles {
    /// The rows the table itself holds of `key`, when known.
    pub fn table_rows(&self, key: &str) -> Option<i64> {
        self.rows_of_key.get(key).copied().filter(|_| self.known)
    }

    /// The files of `keys`' rows.
    pub fn describe(&self, keys: &[&str]) -> String {
        let files: BTreeSet<&String> = keys
            .iter()
            .filter_map(|k| self.by_key.get(*k))
            .flatten()
            .collect();
        self.join(files)
    }

    /// The files of the rows of `key` starting at each of `starts`.
    pub fn describe_rows(&self, key: &str, starts: &[&str]) -> String {
        let files: BTreeSet<&String> = starts
            .iter()
            .filter_map(|s| self.by_row.get(&(key.to_string(), s.to_string())))
            .flatten()
            .collect();
        self.join(files)
    }

    fn join(&self, files: BTreeSet<&String>) -> String {
        if !self.known || files.is_empty() {
            return self.fallback.clone();
        }
        files
            .into_iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Which files hold the rows of `keys` (and, with `starts`, of those
/// rows of each key whose `from` field is one of them): the source's rows
/// with DataFusion's `input_file_name()`, which the Parquet scan fills in
/// per file. Run only once a gate has failed. When a key is not a plain
/// column expression of the source, or the file cannot be told, every file
/// of the table is named instead, and the message says so.
pub async fn files_of_keys(
    engine: &Engine,
    subject: &Subject,
    keys: &[String],
    starts: Option<(&str, &[String])>,
) -> Result<KeyFiles> {
    let fallback = format!(
        "one of the table's files (which one could not be told): {}",
        table_files(engine, subject).join(", ")
    );
    match files_by_scan(engine, subject, keys, starts).await {
        Ok(Some(mut files)) => {
            files.fallback = fallback;
            Ok(files)
        }
        _ => Ok(KeyFiles {
            by_key: BTreeMap::new(),
            rows_of_key: BTreeMap::new(),
            by_row: BTreeMap::new(),
            known: false,
            fallback,
        }),
    }
}

async fn files_by_scan(
    engine: &Engine,
    subject: &Subject,
    keys: &[String],
    starts: Option<(&str, &[String])>,
) -> Result<Option<KeyFiles>> {
    use datafusion::arrow::datatypes::DataType;
    let catalog = &engine.catalog;
    let spec = subject.spec(catalog);
    let source = engine.source_frame(&subject.system, &subject.table).await?;
    let schema = source.schema().clone();
    let field_expr = |name: &str| -> Option<Expr> {
        let (i, f) = spec
            .fields
            .iter()
            .enumerate()
            .find(|(_, f)| f.name == name)?;
        let sql = f.expr.as_deref().unwrap_or(&f.name);
        let location = catalog.entity_at(subject.id, &crate::yaml_path!["fields", i]);
        crate::compile::parse_expr(engine, sql, &schema, &location).ok()
    };
    let Some(key) = field_expr(&subject.key) else {
        return Ok(None);
    };
    let mut select = vec![
        cast(key, DataType::Utf8).alias("_key"),
        datafusion::functions::core::expr_fn::input_file_name().alias("_file"),
    ];
    let mut wanted = col("_key").in_list(keys.iter().map(|k| lit(k.clone())).collect(), false);
    if let Some((from, values)) = starts {
        let Some(start) = field_expr(from) else {
            return Ok(None);
        };
        select.push(cast(start, DataType::Utf8).alias("_from"));
        wanted = wanted
            .and(col("_from").in_list(values.iter().map(|v| lit(v.clone())).collect(), false));
    }
    let mut group = vec![col("_key"), col("_file")];
    if starts.is_some() {
        group.push(col("_from"));
    }
    let batches = source
        .select(select)?
        .filter(wanted)?
        .aggregate(
            group,
            vec![datafusion::functions_aggregate::expr_fn::count(lit(1i64)).alias("_n")],
        )?
        .collect_within_memory()
        .await?;
    let mut out = KeyFiles {
        by_key: BTreeMap::new(),
        rows_of_key: BTreeMap::new(),
        by_row: BTreeMap::new(),
        known: true,
        fallback: String::new(),
    };
    for b in &batches {
        for r in 0..b.num_rows() {
            let k = cell_text(b.column(0).as_ref(), r);
            let file = display_file(&cell_text(b.column(1).as_ref(), r));
            let n: i64 = cell_text(b.column(b.num_columns() - 1).as_ref(), r)
                .parse()
                .unwrap_or(0);
            *out.rows_of_key.entry(k.clone()).or_default() += n;
            if starts.is_some() {
                let s = cell_text(b.column(2).as_ref(), r);
                out.by_row
                    .entry((k.clone(), s))
                    .or_default()
                    .insert(file.clone());
            }
            out.by_key.entry(k).or_default().insert(file);
        }
    }
    Ok(Some(out))
}

/// A scanned file as a path the user can open: object-store paths have no
/// leading `/`.
fn display_file(name: &str) -> String {
    let name = name.strip_prefix("file://").unwrap_or(name);
    if !name.starts_with('/') && Path::new(&format!("/{name}")).exists() {
        format!("/{name}")
    } else {
        name.to_string()
    }
}

/// Every Parquet file of a subject's table, for messages.
fn table_files(engine: &Engine, subject: &Subject) -> Vec<String> {
    let Some(paths) = source_paths(engine, &subject.system, &subject.table) else {
        return Vec::new();
    };
    paths.iter().map(|p| p.display().to_string()).collect()
}

/// The Parquet files of `system/table` in a folder data root, as the engine
/// lists them (`None` for another data source).
pub(super) fn source_paths(engine: &Engine, system: &str, table: &str) -> Option<Vec<PathBuf>> {
    let DataSource::Folder(root) = &engine.data else {
        return None;
    };
    let (id, _) = engine.catalog.source_by_name(system, table)?;
    crate::run::files::source_files(&engine.catalog, root, id).ok()
}
