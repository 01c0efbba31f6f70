//! `canon test`: definitions tested like code. Each file of
//! `<metrics folder>/tests/` gives a small fixture company (rows in YAML or
//! CSV) and what the metrics and reconciliations must give over it, worked
//! out by hand; canon writes the company as Parquet extracts under a data
//! root of its own and runs every expectation through the same path a
//! query takes (gates included), so a test passes only if the governed
//! result a person would read is the one expected.
//!
//! `--mutate` checks the tests themselves ([`mutate`]): each exclusion of
//! every certified metric dropped, and each filter negated, in turn, must
//! make some test fail.

pub mod expect;
pub mod fixture;
pub mod mutate;
pub mod spec;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::catalog::Catalog;
use crate::error::{CanonError, Diagnostic, Location, Result};
use crate::request::Asked;
use crate::run::{DataSource, Engine};
use crate::spec::load::{SourceFile, parse_definition};
use crate::yaml_path;
use spec::{TestFileSpec, TestSpec};

/// A test file, read and located.
pub struct TestFile {
    pub source: SourceFile<TestFileSpec>,
    /// Its folder on disk (CSV paths are relative to it).
    pub dir: PathBuf,
}

/// How one expectation went.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The test file, as the project shows it.
    pub file: PathBuf,
    pub name: String,
    pub at: Location,
    /// Empty when it passed; else each difference, one line each.
    pub failures: Vec<String>,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// The folder definition tests live in: `tests/` of the metrics folder.
pub fn folder(catalog: &Catalog) -> PathBuf {
    catalog
        .files
        .root
        .join(&catalog.files.project.spec.metrics)
        .join("tests")
}

/// Every test file of the project, in name order; all their syntax and
/// shape errors at once, located. No folder is no tests.
pub fn load(catalog: &Catalog) -> Result<Vec<TestFile>> {
    let dir = folder(catalog);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    paths.sort();
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for path in paths {
        let shown = path
            .strip_prefix(&catalog.files.root)
            .unwrap_or(&path)
            .to_path_buf();
        // A pipe would block the read, a folder is not a file.
        if !std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            problems.push(Diagnostic {
                location: Location::new(shown, 1, 1),
                message: "is not a regular file (a folder or a pipe): a test file is YAML".into(),
            });
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|e| CanonError::io(&path, e))?;
        match parse_definition::<TestFileSpec>(shown, bytes) {
            Ok(source) => {
                check_names(catalog, &source, &mut problems);
                files.push(TestFile {
                    source,
                    dir: dir.clone(),
                });
            }
            Err(d) => problems.push(d),
        }
    }
    if problems.is_empty() {
        Ok(files)
    } else {
        Err(CanonError::Definition(problems))
    }
}

/// Each test names one metric or reconciliation the catalog has.
fn check_names(catalog: &Catalog, file: &SourceFile<TestFileSpec>, problems: &mut Vec<Diagnostic>) {
    for (i, t) in file.spec.tests.iter().enumerate() {
        let at = |key: &str| file.at(&yaml_path!["tests", i, key]);
        if t.expect.is_empty() {
            problems.push(Diagnostic {
                location: at("expect"),
                message: "the test expects nothing: give a value, exclusions, tallies, rows, a bridge, a check or an error".into(),
            });
        }
        match (&t.metric, &t.reconciliation) {
            (Some(m), None) => {
                if let Err(e) = catalog.metric(m) {
                    problems.push(Diagnostic {
                        location: at("metric"),
                        message: e.to_string().trim_start_matches("error: ").to_string(),
                    });
                }
            }
            (None, Some(r)) => {
                if crate::reconcile::find(catalog, r).is_err() {
                    problems.push(Diagnostic {
                        location: at("reconciliation"),
                        message: format!("unknown reconciliation `{r}`"),
                    });
                }
            }
            _ => problems.push(Diagnostic {
                location: file.at(&yaml_path!["tests", i]),
                message: "a test names one `metric` or one `reconciliation`".into(),
            }),
        }
    }
}

/// The metrics and reconciliations some test names.
pub fn tested(files: &[TestFile]) -> std::collections::BTreeSet<String> {
    files
        .iter()
        .flat_map(|f| f.source.spec.tests.iter())
        .filter_map(|t| t.metric.clone().or_else(|| t.reconciliation.clone()))
        .collect()
}

/// Runs the tests of `files` that `wanted` keeps against `catalog`, each
/// file over its own fixture company written under `scratch`; with
/// `first_failure`, stops at the first test that fails (a mutant needs one).
pub async fn run(
    catalog: Arc<Catalog>,
    files: &[TestFile],
    wanted: &dyn Fn(&TestSpec) -> bool,
    scratch: &Path,
    first_failure: Option<&dyn Fn(&Outcome) -> bool>,
) -> Result<Vec<Outcome>> {
    let mut out = Vec::new();
    for (n, file) in files.iter().enumerate() {
        let tests: Vec<(usize, &TestSpec)> = file
            .source
            .spec
            .tests
            .iter()
            .enumerate()
            .filter(|(_, t)| wanted(t))
            .collect();
        if tests.is_empty() {
            continue;
        }
        let root = scratch.join(format!("company-{n}"));
        if !root.exists() {
            fixture::write(&catalog, &file.source, &file.dir, &root)?;
        }
        let mut engine = Engine::new(catalog.clone(), DataSource::Folder(root))?;
        if let Some(now) = &file.source.spec.now {
            engine.now = chrono::DateTime::parse_from_rfc3339(now)
                .map_err(|_| {
                    CanonError::Definition(vec![Diagnostic {
                        location: file.source.at(&yaml_path!["now"]),
                        message: format!(
                            "cannot read `{now}` as a time: use RFC 3339, 2026-01-02T08:00:00Z"
                        ),
                    }])
                })?
                .with_timezone(&chrono::Utc);
        }
        for (i, t) in tests {
            let at = file.source.at(&yaml_path!["tests", i]);
            let name = t.name.clone().unwrap_or_else(|| describe(t));
            let failures = match one(&engine, t).await {
                Ok(json) => check(t, &json),
                Err(e) => match &t.expect.error {
                    Some(want) if e.to_string().contains(want.as_str()) => Vec::new(),
                    Some(want) => {
                        vec![format!("error: expected one containing `{want}`, got: {e}")]
                    }
                    None => vec![format!("the run failed: {e}")],
                },
            };
            let outcome = Outcome {
                file: file.source.display_path.clone(),
                name,
                at,
                failures,
            };
            let stop = first_failure.is_some_and(|fails| fails(&outcome));
            out.push(outcome);
            if stop {
                return Ok(out);
            }
        }
    }
    Ok(out)
}

/// The request and what is run: the result as JSON.
async fn one(engine: &Engine, t: &TestSpec) -> Result<serde_json::Value> {
    let asked = Asked {
        period: t.period.clone(),
        from: t.from.clone(),
        to: t.to.clone(),
        as_of: t.as_of.clone(),
        grain: t.grain.clone(),
        by: t.by.clone(),
    };
    let request = asked.request(&engine.catalog.calendar)?;
    let json = |v: Result<serde_json::Value, serde_json::Error>| {
        v.map_err(|e| CanonError::Internal(format!("a result as JSON: {e}")))
    };
    match (&t.metric, &t.reconciliation) {
        (Some(m), _) => {
            crate::compile::slicing::check(engine, m, &request.by)?;
            let resolved = engine.catalog.resolve(request)?;
            let r = crate::query::run_metric(engine, m, &resolved).await?;
            json(serde_json::to_value(&r))
        }
        (None, Some(r)) => {
            let result = crate::reconcile::run(engine, r, &request.period, false).await?;
            json(serde_json::to_value(&result))
        }
        (None, None) => Err(CanonError::Internal("a test without a metric".into())),
    }
}

fn check(t: &TestSpec, got: &serde_json::Value) -> Vec<String> {
    if let Some(want) = &t.expect.error {
        return vec![format!(
            "error: expected one containing `{want}`, but the run succeeded"
        )];
    }
    match &t.metric {
        Some(m) => expect::metric(m, &t.expect, got),
        None => expect::reconciliation(&t.expect, got),
    }
}

/// `bookings FY2026-Q1 by country`.
fn describe(t: &TestSpec) -> String {
    let what = t
        .metric
        .clone()
        .or_else(|| t.reconciliation.clone())
        .unwrap_or_default();
    let when = match (&t.period, &t.from, &t.to, &t.as_of) {
        (Some(p), _, _, _) => p.clone(),
        (_, Some(f), Some(to), _) => format!("{f}..{to}"),
        (_, _, _, Some(d)) => format!("as of {d}"),
        _ => String::new(),
    };
    let mut s = format!("{what} {when}");
    if let Some(g) = &t.grain {
        s.push_str(&format!(" by {g}"));
    }
    if !t.by.is_empty() {
        s.push_str(&format!(" by {}", t.by.join(",")));
    }
    s
}

/// The report people read: each file, each test ok or FAIL with its
/// differences, and a count.
pub fn render(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    let mut file = None;
    for o in outcomes {
        if file != Some(&o.file) {
            out.push_str(&format!("{}\n", o.file.display()));
            file = Some(&o.file);
        }
        if o.passed() {
            out.push_str(&format!("  ok    {}\n", o.name));
        } else {
            out.push_str(&format!("  FAIL  {} ({})\n", o.name, o.at));
            for f in &o.failures {
                out.push_str(&format!("          {f}\n"));
            }
        }
    }
    let failed = outcomes.iter().filter(|o| !o.passed()).count();
    out.push_str(&format!(
        "{} test(s), {} passed, {failed} failed\n",
        outcomes.len(),
        outcomes.len() - failed
    ));
    out
}
