//! `canon validate`: every definition compiled over empty tables of the
//! declared schemas (so every expression, field and type is checked without
//! reading a row), then every extract file checked against its model.

use std::fmt::Write;
use std::path::Path;
use std::sync::Arc;

use crate::catalog::Catalog;
use crate::compile::{Request, simple};
use crate::error::{CanonError, Diagnostic, Result};
use crate::run::{DataSource, Engine};
use crate::spec::MetricKind;

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
    let period = catalog.calendar.parse_period("FY2026")?;
    for (name, id) in &catalog.metrics {
        let metric = &catalog.files.metrics[id.file].spec.metrics[id.index];
        if metric.kind == MetricKind::Derived {
            if let Err(e) = crate::compile::derived::inputs(&engine, *id) {
                note(e, &mut diagnostics)?;
            }
            continue;
        }
        if metric.kind != MetricKind::Simple {
            continue;
        }
        let request = Request {
            period: period.clone(),
            grain: Some(crate::calendar::Grain::Month),
            by: metric.slices.iter().map(|s| s.name().to_string()).collect(),
        };
        if let Err(e) = simple::compile(&engine, *id, &request).await {
            match e {
                CanonError::Definition(_) => note(e, &mut diagnostics)?,
                other => {
                    return Err(CanonError::request(format!("metric `{name}`: {other}")));
                }
            }
        }
    }
    diagnostics.sort_by(|a, b| {
        (&a.location.file, a.location.line, a.location.column).cmp(&(
            &b.location.file,
            b.location.line,
            b.location.column,
        ))
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
                "data root {} does not exist (set --data DIR or CANON_DATA, or pass --no-data)",
                root.display()
            )));
        }
        let data_engine = Engine::new(catalog.clone(), DataSource::Folder(root.to_path_buf()))?;
        let mut problems = Vec::new();
        let mut files = 0;
        for key in catalog.sources.keys() {
            let (system, table) = key.split_once('/').unwrap_or((key.as_str(), ""));
            match data_engine.source_frame(system, table).await {
                Ok(_) => {}
                Err(e) => problems.push(e.to_string()),
            }
        }
        for facts in data_engine.sources_read().values() {
            files += facts.files.len();
        }
        if !problems.is_empty() {
            return Err(CanonError::data(
                crate::error::DataLocation {
                    system: "*".into(),
                    table: "*".into(),
                    file: Some(root.display().to_string()),
                    column: None,
                },
                format!(
                    "{} table(s) do not match their models:\n  {}",
                    problems.len(),
                    problems.join("\n  ")
                ),
            ));
        }
        let _ = writeln!(
            report,
            "data ok: {} tables, {files} files under {} match their models",
            catalog.sources.len(),
            root.display()
        );
    }
    Ok(report)
}
