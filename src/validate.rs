//! `canon validate`: every definition compiled over empty tables of the
//! declared schemas (so every expression, field and type is checked without
//! reading a row), then every extract file checked against its model.

use std::fmt::Write;
use std::path::Path;
use std::sync::Arc;

use crate::catalog::Catalog;
use crate::error::DataLocation;
use crate::error::{CanonError, Diagnostic, Result};
use crate::request::Request;
use crate::run::decode::decode_file;
use crate::run::files::{file_schema, schema_problems, source_dir, table_files};
use crate::run::{DataSource, Engine};
use crate::yaml_path;

/// Checks the whole project; all definition problems are reported at once.
/// With `deep`, every file's pages are decoded too, not only its footer read.
///
/// Governance: a certified metric whose sign-off is stale or missing, or
/// that no definition test names (`tested`: the metrics and
/// reconciliations the project's tests name, `canon test`), is a warning in
/// the report, and with `strict` an error located at its sign-off (or its
/// status).
pub async fn validate(
    catalog: Arc<Catalog>,
    data_root: Option<&Path>,
    deep: bool,
    (strict, tested): (bool, &std::collections::BTreeSet<String>),
) -> Result<String> {
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
        if let Err(e) = engine.entity_frame(name).await {
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
        if let Err(e) = crate::compile::kind_of(metric.kind).check(&engine, *id) {
            note(e, &mut diagnostics)?;
        }
        // An aggregate is checked by planning it (over no data).
        if !metric.kind.is_aggregate() {
            continue;
        }
        // Twelve month buckets whatever engine.max_buckets says: the limit
        // bounds what an analyst asks for, not this check.
        let request = crate::request::Resolved::new(
            &catalog.calendar,
            Request {
                period: period.clone(),
                as_of: None,
                rates_as_of: None,
                grain: Some(crate::calendar::Grain::Month),
                by: metric.slices.iter().map(|s| s.name().to_string()).collect(),
            },
            u64::MAX,
        )?;
        if let Err(e) = crate::compile::plan_metric(&engine, name, &request).await {
            match e {
                CanonError::Definition(_) => note(e, &mut diagnostics)?,
                other => {
                    return Err(CanonError::request(format!("metric `{name}`: {other}")));
                }
            }
        }
    }
    // A reconciliation's link rules are planned when it runs; here, over
    // no data, so a lookup's fields and filter are checked with the rest.
    for (file, f) in catalog.files.metrics.iter().enumerate() {
        for (index, r) in f.spec.reconciliations.iter().enumerate() {
            if let Err(e) = crate::compile::link_rules::check(&engine, (file, index)).await {
                match e {
                    CanonError::Definition(_) => note(e, &mut diagnostics)?,
                    other => {
                        return Err(CanonError::request(format!(
                            "reconciliation `{}`: {other}",
                            r.name
                        )));
                    }
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
    let governance = governance_problems(&catalog, tested).await?;
    if strict && !governance.is_empty() {
        return Err(CanonError::Definition(governance));
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
    let certified = catalog
        .metrics
        .keys()
        .filter(|n| {
            catalog
                .metric(n)
                .is_ok_and(|(_, _, m)| m.status == crate::spec::MetricStatus::Certified)
        })
        .count();
    if governance.is_empty() {
        let _ = writeln!(
            report,
            "governance ok: every certified metric ({certified}) is signed off as it is defined now, and tested"
        );
    }
    for d in &governance {
        let _ = writeln!(report, "warning: {}: {}", d.location, d.message);
    }
    if let Some(url) = data_root
        .and_then(Path::to_str)
        .filter(|r| crate::run::store::is_url(r))
    {
        if deep {
            return Err(CanonError::request(format!(
                "--deep decodes every page of every file, which for {url} downloads all of it: \
                 copy the extracts to a folder and validate that, or leave out --deep"
            )));
        }
        let store = crate::run::store::StoreRoot::open(url)?;
        store.probe().await?;
        let (tables, files) = check_store(&catalog, &store).await?;
        let _ = writeln!(
            report,
            "data ok: {tables} tables, {files} objects under {url} match their models (footers read)"
        );
    } else if let Some(root) = data_root {
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
        let (tables, files) = {
            let (catalog, root) = (catalog.clone(), root.to_path_buf());
            // Deep decoding reads every byte of the data: off the runtime's threads.
            tokio::task::spawn_blocking(move || check_data(&catalog, &root, deep))
                .await
                .map_err(|e| CanonError::Internal(format!("checking the data failed: {e}")))??
        };
        let _ = writeln!(
            report,
            "data ok: {tables} tables, {files} files under {} match their models{}",
            root.display(),
            if deep {
                "; every column of every row group decodes"
            } else {
                " (footers read; --deep decodes every page)"
            }
        );
    }
    Ok(report)
}

/// The certified metrics whose sign-off does not approve them as they are,
/// each located at its sign-off, or at its status when it has none; and
/// those no test names, at their status.
async fn governance_problems(
    catalog: &Arc<Catalog>,
    tested: &std::collections::BTreeSet<String>,
) -> Result<Vec<Diagnostic>> {
    let judge = crate::lifecycle::Judge::new(catalog.clone())?;
    let mut out = Vec::new();
    if let Some(file) = &catalog.files.signoffs {
        for (i, s) in file.spec.signoffs.iter().enumerate() {
            let known = catalog.metrics.contains_key(&s.metric)
                || catalog.reconciliation(&s.metric).is_some();
            if !known {
                out.push(Diagnostic {
                    location: file.at(&yaml_path!["signoffs", i, "metric"]),
                    message: format!(
                        "a sign-off of `{}`, which no metric is any more: `canon signoff` drops it",
                        s.metric
                    ),
                });
            }
        }
    }
    // A certified reconciliation is governed as a metric is: tested, and
    // signed off as it is (its links, lines and both sides).
    for f in &catalog.files.metrics {
        for (ri, r) in f.spec.reconciliations.iter().enumerate() {
            if r.status != crate::spec::MetricStatus::Certified {
                continue;
            }
            let status = f.at(&yaml_path!["reconciliations", ri, "status"]);
            if !tested.contains(&r.name) {
                out.push(Diagnostic {
                    location: status.clone(),
                    message: format!(
                        "certified reconciliation `{}` has no definition test: add one to {}/tests/ (`canon test`)",
                        r.name, catalog.files.project.spec.metrics
                    ),
                });
            }
            if let Some(why) = judge.lifecycle(&r.name).await?.blocked_reason(&r.name) {
                out.push(Diagnostic {
                    location: status,
                    message: why,
                });
            }
        }
    }
    for (name, id) in &catalog.metrics {
        let certified = catalog.files.metrics[id.file].spec.metrics[id.index].status
            == crate::spec::MetricStatus::Certified;
        if certified && !tested.contains(name) {
            out.push(Diagnostic {
                location: catalog.metric_at(*id, &yaml_path!["status"]),
                message: format!(
                    "certified metric `{name}` has no definition test: add one to {}/tests/ (`canon test`)",
                    catalog.files.project.spec.metrics
                ),
            });
        }
        let lifecycle = judge.lifecycle(name).await?;
        let Some(why) = lifecycle.blocked_reason(name) else {
            continue;
        };
        let location = catalog
            .files
            .signoffs
            .as_ref()
            .and_then(|f| {
                let i = f.spec.signoffs.iter().position(|s| &s.metric == name)?;
                Some(f.at(&yaml_path!["signoffs", i, "closure_sha256"]))
            })
            .unwrap_or_else(|| catalog.metric_at(*id, &yaml_path!["status"]));
        out.push(Diagnostic {
            location,
            message: why,
        });
    }
    Ok(out)
}

/// [`check_data`] for a data root in an object store: every table listed,
/// every object's footer read and checked against its model (no page is
/// decoded), every problem at once.
async fn check_store(
    catalog: &Catalog,
    store: &crate::run::store::StoreRoot,
) -> Result<(usize, usize)> {
    refuse_outside(catalog, |id| store.table_prefix(catalog, id).err())?;
    let mut problems = Vec::new();
    let mut files = 0;
    for id in catalog.sources.values() {
        let (model, source) = catalog.source(*id);
        let location = catalog.source_location(*id);
        let objects = match store.table_objects(catalog, *id).await {
            Ok(o) => o,
            Err(e) => {
                problems.push(format!(
                    "{e} (declared at {})",
                    model.at(&yaml_path!["sources", id.index, "path"])
                ));
                continue;
            }
        };
        for meta in &objects {
            files += 1;
            if let Err(e) = store.inspect(meta, source, &location).await {
                problems.push(e.to_string());
            }
        }
    }
    verdict(catalog, Path::new(store.url()), files, problems)
}

/// A source folder or prefix outside the data root (`outside(id)` says
/// why) is refused before any is listed (exit 2), every such path at once.
fn refuse_outside(
    catalog: &Catalog,
    outside: impl Fn(crate::catalog::SourceId) -> Option<CanonError>,
) -> Result<()> {
    let refused: Vec<String> = catalog
        .sources
        .values()
        .filter_map(|id| outside(*id))
        .map(|e| e.to_string())
        .collect();
    if refused.is_empty() {
        Ok(())
    } else {
        Err(CanonError::request(refused.join("\n")))
    }
}

/// (tables, files) checked when there is no problem; else every problem at
/// once, as a data error of the data root `root`.
fn verdict(
    catalog: &Catalog,
    root: &Path,
    files: usize,
    problems: Vec<String>,
) -> Result<(usize, usize)> {
    if problems.is_empty() {
        Ok((catalog.sources.len(), files))
    } else {
        Err(CanonError::data(
            DataLocation::root(root),
            format!(
                "{} problem(s) where the extracts do not match their models:\n  {}",
                problems.len(),
                problems.join("\n  ")
            ),
        ))
    }
}

/// Every file of every source against its model; all mismatches at once, each
/// with the file and column at fault and the model line that declares it.
/// With `deep`, every file is also decoded (every column of every row
/// group), and each file that does not decode is a problem naming the
/// column and row group where the reader says.
fn check_data(catalog: &Catalog, root: &Path, deep: bool) -> Result<(usize, usize)> {
    refuse_outside(catalog, |id| source_dir(catalog, root, id).err())?;
    let mut problems = Vec::new();
    let mut files = 0;
    for (key, id) in &catalog.sources {
        let (model, source) = catalog.source(*id);
        let location = catalog.source_location(*id);
        let paths = match table_files(root, &source_dir(catalog, root, *id)?, &location) {
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
            if deep && let Err(damage) = decode_file(&path, None) {
                problems.push(damage.error(&location, &path).to_string());
            }
        }
    }
    verdict(catalog, root, files, problems)
}
