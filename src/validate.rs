//! `canon validate`: every definition compiled over empty tables of the
//! declared schemas (so every expression, field and type is checked without
//! reading a row), then every extract file checked against its model.

use std::fmt::Write;
use std::path::Path;
use std::sync::Arc;

use crate::catalog::Catalog;
use crate::compile::Request;
use crate::error::DataLocation;
use crate::error::{CanonError, Diagnostic, Result};
use crate::run::files::{file_schema, parquet_files, schema_problems};
use crate::run::{DataSource, Engine};
use crate::spec::MetricKind;
use crate::yaml_path;

/// Checks the whole project; all definition problems are reported at once.
pub async fn validate(catalog: Arc<Catalog>, data_root: Option<&Path>) -> Result<String> {
    let engine = Engine::new(catalog.clone(), DataSource::Empty)?;
    let mut diagnostics: Vec<Diagnostic> = Vec::new();
    let note = |e: CanonError, diagnostics: &mut Vec<Diagnostic>| -> Result<()> {
        match e {
            CanonError::Definition(d) => {
                diagnostics.extend(d);
                Ok(())
            }
            other => Err(other),
        }
    };
    for name in catalog.entities.keys() {
        if let Err(e) = crate::compile::entity::entity_frame(&engine, name).await {
            note(e, &mut diagnostics)?;
        }
    }
    // canon.yaml `quality:`: its thresholds and its deal policy.
    if let Err(e) = crate::quality::thresholds::Thresholds::of(&catalog) {
        note(e, &mut diagnostics)?;
    }
    if let Err(e) = crate::quality::subscription_deals::validate(&engine).await {
        note(e, &mut diagnostics)?;
    }
    let period = catalog.calendar.parse_period("FY2026")?;
    for (name, id) in &catalog.metrics {
        let metric = &catalog.files.metrics[id.file].spec.metrics[id.index];
        if metric.kind == MetricKind::Cohort {
            if let Err(e) = crate::compile::cohort::spec(&engine, *id) {
                note(e, &mut diagnostics)?;
            }
            continue;
        }
        if metric.kind == MetricKind::Derived {
            if let Err(e) = crate::compile::derived::inputs(&engine, *id) {
                note(e, &mut diagnostics)?;
            }
            continue;
        }
        if !crate::compile::is_aggregate(metric.kind) {
            continue;
        }
        let request = Request {
            period: period.clone(),
            as_of: None,
            rates_as_of: None,
            grain: Some(crate::calendar::Grain::Month),
            by: metric.slices.iter().map(|s| s.name().to_string()).collect(),
        };
        if let Err(e) = crate::compile::compile_aggregate(&engine, *id, &request).await {
            match e {
                CanonError::Definition(_) => note(e, &mut diagnostics)?,
                other => {
                    return Err(CanonError::request(format!("metric `{name}`: {other}")));
                }
            }
        }
    }
    diagnostics.sort_by(|a, b| {
        (&a.location.file, a.location.line_column())
            .cmp(&(&b.location.file, b.location.line_column()))
    });
    diagnostics.dedup_by(|a, b| a.location == b.location && a.message == b.message);
    if !diagnostics.is_empty() {
        return Err(CanonError::Definition(diagnostics));
    }
    let mut report = String::new();
    let _ = writeln!(
        report,
        "definitions ok: {} model files, {} sources, {} entities, {} metrics",
        catalog.files.models.len(),
        catalog.sources.len(),
        catalog.entities.len(),
        catalog.metrics.len()
    );
    if let Some(root) = data_root {
        if !root.is_dir() {
            return Err(CanonError::request(format!(
                "data root {} {} (set --data DIR or CANON_DATA, or pass --no-data)",
                root.display(),
                if root.exists() {
                    "is a file, not a folder"
                } else {
                    "does not exist"
                }
            )));
        }
        let (tables, files) = check_data(&catalog, root)?;
        let _ = writeln!(
            report,
            "data ok: {tables} tables, {files} files under {} match their models",
            root.display()
        );
    }
    Ok(report)
}

/// Every file of every source against its model; all mismatches at once, each
/// with the file and column at fault and the model line that declares it.
fn check_data(catalog: &Catalog, root: &Path) -> Result<(usize, usize)> {
    let mut problems = Vec::new();
    let mut files = 0;
    for (key, id) in &catalog.sources {
        let (model, source) = catalog.source(*id);
        let location = DataLocation {
            system: model.spec.system.clone(),
            table: source.name.clone(),
            file: None,
            column: None,
        };
        let paths = match parquet_files(&root.join(&source.path), &location) {
            Ok(p) => p,
            Err(e) => {
                problems.push(format!(
                    "{e} (declared at {})",
                    model.at(&yaml_path!["sources", id.index, "path"])
                ));
                continue;
            }
        };
        for path in paths {
            files += 1;
            let schema = match file_schema(&path, &location) {
                Ok(s) => s,
                Err(e) => {
                    problems.push(e.to_string());
                    continue;
                }
            };
            for (ci, message) in schema_problems(&schema, source) {
                problems.push(format!(
                    "{key} file {} column `{}`: {message} (declared at {})",
                    path.display(),
                    source.columns[ci].name,
                    model.at(&yaml_path!["sources", id.index, "columns", ci, "type"])
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok((catalog.sources.len(), files))
    } else {
        Err(CanonError::data(
            DataLocation {
                system: "*".into(),
                table: "*".into(),
                file: Some(root.display().to_string()),
                column: None,
            },
            format!(
                "{} problem(s) where the extracts do not match their models:\n  {}",
                problems.len(),
                problems.join("\n  ")
            ),
        ))
    }
}
