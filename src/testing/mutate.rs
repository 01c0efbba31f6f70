//! Do the definition tests test anything? Each mutant is the project with
//! one change to one certified metric (an exclusion dropped, or a filter
//! negated); the tests of that metric (and of the metrics and
//! reconciliations computed from it) run against it, and at least one must
//! fail: the mutant is *killed*. A mutant that survives is a rule no test
//! would notice being lost. A dropped exclusion's own expectations (its
//! rows and value) do not count: they fail by construction, so a test kills
//! that mutant only when another number it checks moves.

use std::sync::Arc;

use super::{Outcome, TestFile};
use crate::catalog::Catalog;
use crate::error::Result;
use crate::run::{DataSource, Engine};
use crate::spec::load::ProjectFiles;
use crate::spec::{ExclusionRef, MetricStatus};

/// One change to one metric, and how the tests took it.
#[derive(Debug, Clone)]
pub struct Mutant {
    pub metric: String,
    /// `drop exclusion deleted`, `negate filter`, `negate history.filter`.
    pub change: String,
    /// The first test that failed against it; none: it survived.
    pub killed_by: Option<String>,
    /// Tests run against it.
    pub tests: usize,
}

/// Every mutant of every certified metric, each run against the tests that
/// read that metric (fixtures written once under `scratch`).
pub async fn run(
    catalog: Arc<Catalog>,
    files: &[TestFile],
    scratch: &std::path::Path,
) -> Result<Vec<Mutant>> {
    let planner = Engine::new(catalog.clone(), DataSource::Empty)?;
    let mut out = Vec::new();
    for (name, id) in &catalog.metrics {
        let m = &catalog.files.metrics[id.file].spec.metrics[id.index];
        if m.status != MetricStatus::Certified {
            continue;
        }
        // The tests whose metric is this one or is computed from it, and
        // the bridges that have it as a side.
        let mut readers = std::collections::BTreeSet::new();
        for t in files.iter().flat_map(|f| f.source.spec.tests.iter()) {
            if let Some(tm) = &t.metric
                && (tm == name
                    || crate::compile::parts(&planner, tm).is_ok_and(|p| p.contains(name)))
            {
                readers.insert(tm.clone());
            }
            if let Some(r) = &t.reconciliation
                && let Ok((_, _, spec)) = crate::reconcile::find(&catalog, r)
                && (&spec.bookings == name || &spec.revenue == name)
            {
                readers.insert(r.clone());
            }
        }
        for (change, files_changed) in changes(&catalog.files, *id) {
            let mut mutant = Mutant {
                metric: name.clone(),
                change,
                killed_by: None,
                tests: 0,
            };
            match Catalog::build(files_changed) {
                // A change the catalog refuses could never be published.
                Err(_) => mutant.killed_by = Some("the catalog refuses it".into()),
                Ok(changed) => {
                    let wanted = |t: &super::spec::TestSpec| {
                        t.metric
                            .as_ref()
                            .or(t.reconciliation.as_ref())
                            .is_some_and(|n| readers.contains(n))
                    };
                    // A dropped exclusion's own expectations cannot hold (it
                    // has no tally any more): only a test whose numbers move
                    // notices the rule being lost.
                    let dropped = mutant.change.strip_prefix("drop exclusion ");
                    let about_dropped = |line: &String| {
                        dropped.is_some_and(|x| {
                            line.starts_with(&format!("exclusions.{x}"))
                                || line.starts_with(&format!("exclusions.{name}/{x}"))
                        })
                    };
                    let kills = |o: &Outcome| o.failures.iter().any(|f| !about_dropped(f));
                    let outcomes: Vec<Outcome> =
                        super::run(Arc::new(changed), files, &wanted, scratch, Some(&kills))
                            .await?;
                    mutant.tests = outcomes.len();
                    mutant.killed_by = outcomes
                        .iter()
                        .find(|o| kills(o))
                        .map(|o| format!("{} ({})", o.name, o.at));
                }
            }
            out.push(mutant);
        }
    }
    Ok(out)
}

/// The project with each one change to metric `id`.
fn changes(files: &ProjectFiles, id: crate::catalog::MetricId) -> Vec<(String, ProjectFiles)> {
    let m = &files.metrics[id.file].spec.metrics[id.index];
    let mut out = Vec::new();
    let mut changed = |change: String, edit: &dyn Fn(&mut crate::spec::MetricSpec)| {
        let mut f = files.clone();
        edit(&mut f.metrics[id.file].spec.metrics[id.index]);
        out.push((change, f));
    };
    for (k, x) in m.exclusions.iter().enumerate() {
        let name = match x {
            ExclusionRef::Named(n) => n.clone(),
            ExclusionRef::Inline(spec) => spec.name.clone(),
        };
        changed(format!("drop exclusion {name}"), &|spec| {
            spec.exclusions.remove(k);
        });
    }
    if m.filter.is_some() {
        changed("negate filter".into(), &|spec| {
            spec.filter = spec.filter.as_ref().map(|f| format!("NOT ({f})"));
        });
    }
    if m.history.as_ref().is_some_and(|h| h.filter.is_some()) {
        changed("negate history.filter".into(), &|spec| {
            if let Some(h) = &mut spec.history {
                h.filter = h.filter.as_ref().map(|f| format!("NOT ({f})"));
            }
        });
    }
    out
}

/// The report: each mutant killed (by which test) or SURVIVED.
pub fn render(mutants: &[Mutant]) -> String {
    let mut out = String::new();
    for m in mutants {
        match &m.killed_by {
            Some(by) => out.push_str(&format!(
                "  killed    {}: {} — by {by}\n",
                m.metric, m.change
            )),
            None if m.tests == 0 => out.push_str(&format!(
                "  SURVIVED  {}: {} — no test reads {}\n",
                m.metric, m.change, m.metric
            )),
            None => out.push_str(&format!(
                "  SURVIVED  {}: {} — {} test(s) still pass\n",
                m.metric, m.change, m.tests
            )),
        }
    }
    let survived = mutants.iter().filter(|m| m.killed_by.is_none()).count();
    out.push_str(&format!(
        "{} mutant(s), {} killed, {survived} survived\n",
        mutants.len(),
        mutants.len() - survived
    ));
    out
}
