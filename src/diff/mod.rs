//! `canon diff`: what a change to the definitions does to the numbers,
//! before it lands. For every metric whose definition closure
//! (`lineage::closure`) differs between a base project and the project as
//! it is now: which elements changed, its numbers before and after on the
//! same data (the head's) for the configured periods, the delta per period
//! and per exclusion, and a waterfall that applies the changed elements one
//! at a time to the base (settings, sources, entities, shared exclusions,
//! then the metrics' own fields), so each delta is attributed to the
//! change that made it. A step that cannot stand alone (a filter naming a
//! field another change adds) is merged with the next.
//!
//! The diff fails (exit 1) when a certified metric changed without a
//! version bump, or without a new sign-off: review needs both to say that
//! the number means something new and that someone approved it.

pub mod apply;
pub mod base;
pub mod render;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::calendar::Period;
use crate::catalog::Catalog;
use crate::decimal::Dec;
use crate::error::{CanonError, Result};
use crate::lineage::closure::{Closure, closure, planner};
use crate::request::Request;
use crate::run::{DataSource, Engine};
use crate::spec::MetricStatus;
use crate::spec::load::ProjectFiles;

/// The whole diff.
#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    pub base: String,
    pub head: String,
    pub periods: Vec<String>,
    /// The gates both sides were computed through by name (`--allow`):
    /// their numbers are not governed ones, and the review says so.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed: Vec<String>,
    pub metrics: Vec<MetricDiff>,
    /// What makes the diff fail, one line each (certified metrics changed
    /// without a version bump or a new sign-off).
    pub problems: Vec<String>,
}

/// One metric that differs.
#[derive(Debug, Clone, Serialize)]
pub struct MetricDiff {
    pub metric: String,
    /// `changed`, `added` or `removed`.
    pub change: String,
    pub status: String,
    pub version: (Option<u32>, Option<u32>),
    pub elements: Vec<ElementChange>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub periods: Vec<PeriodDiff>,
}

/// A closure element that differs: its key and both sides (JSON; null when
/// a side has none).
#[derive(Debug, Clone, Serialize)]
pub struct ElementChange {
    pub element: String,
    pub base: serde_json::Value,
    pub head: serde_json::Value,
}

/// A metric's number in one period on both sides.
#[derive(Debug, Clone, Serialize)]
pub struct PeriodDiff {
    pub period: String,
    pub base: Outcome,
    pub head: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<Dec>,
    pub exclusions: Vec<ExclusionDiff>,
    /// From the base's value to the head's, a step per changed element.
    pub waterfall: Vec<Step>,
}

/// A value, or why there is none (a blocked gate, an error).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Value(Option<Dec>),
    Failed(String),
}

impl Outcome {
    fn value(&self) -> Option<Dec> {
        match self {
            Outcome::Value(v) => *v,
            Outcome::Failed(_) => None,
        }
    }
}

/// An exclusion's tally on both sides.
#[derive(Debug, Clone, Serialize)]
pub struct ExclusionDiff {
    pub exclusion: String,
    pub base_rows: Option<i64>,
    pub head_rows: Option<i64>,
    pub base_value: Option<Dec>,
    pub head_value: Option<Dec>,
}

/// The elements applied in one step, and the value after it.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub elements: Vec<String>,
    pub value: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<Dec>,
}

/// The data both sides of a diff are computed over, and the gates they are
/// let through by name (`--allow GATE:TABLE`: an open conversion window,
/// say, whose quarter would otherwise show as failed on both sides).
pub struct Over<'a> {
    pub data: &'a Path,
    pub allow: &'a [String],
}

/// Compares the project `base` with `head` for `periods`, computing both
/// over `over`'s data.
pub async fn diff(
    base: Arc<Catalog>,
    head: Arc<Catalog>,
    (base_shown, head_shown): (String, String),
    periods: &[Period],
    over: &Over<'_>,
) -> Result<Diff> {
    let (base_planner, head_planner) = (planner(base.clone())?, planner(head.clone())?);
    let judge = crate::lifecycle::Judge::new(head.clone())?;
    let names: std::collections::BTreeSet<&String> =
        base.metrics.keys().chain(head.metrics.keys()).collect();
    let mut metrics = Vec::new();
    let mut problems = Vec::new();
    for name in names {
        let before = match base.metric(name) {
            Ok(_) => Some(closure(&base_planner, name).await?),
            Err(_) => None,
        };
        let after = match head.metric(name) {
            Ok(_) => Some(closure(&head_planner, name).await?),
            Err(_) => None,
        };
        let Some((change, elements)) = compare(before.as_ref(), after.as_ref(), &base, &head)
        else {
            continue;
        };
        let spec_of = |c: &Catalog| c.metric(name).ok().map(|(_, _, m)| (m.version, m.status));
        let (base_spec, head_spec) = (spec_of(&base), spec_of(&head));
        let status = head_spec
            .or(base_spec)
            .map(|(_, s)| s.name().to_string())
            .unwrap_or_default();
        problems.extend(
            governance_problems(("metric", name), &elements, (base_spec, head_spec), &judge)
                .await?,
        );
        let periods = if change == "changed" {
            let mut out = Vec::new();
            for period in periods {
                out.push(period_diff(&base, &head, name, period, over, &elements).await?);
            }
            out
        } else {
            Vec::new()
        };
        // A diff that shows no number at all is no review of the numbers.
        if let Some(first) = periods.first()
            && periods.iter().all(|p| {
                matches!(p.base, Outcome::Failed(_)) && matches!(p.head, Outcome::Failed(_))
            })
            && let Outcome::Failed(why) = &first.base
        {
            problems.push(format!(
                "`{name}`: no number could be computed on either side, in any period (e.g. {}: {why})",
                first.period
            ));
        }
        metrics.push(MetricDiff {
            metric: name.clone(),
            change: change.to_string(),
            status,
            version: (base_spec.map(|s| s.0), head_spec.map(|s| s.0)),
            elements,
            periods,
        });
    }
    // Reconciliations: their definitions (link rules, lines) and the
    // closures of the metrics they bridge; their sides' numbers are the
    // metrics' above.
    let recs = |c: &Catalog| -> Vec<(String, MetricStatus, u32)> {
        c.reconciliations()
            .map(|r| (r.name.clone(), r.status, r.version))
            .collect()
    };
    let (base_recs, head_recs) = (recs(&base), recs(&head));
    let names: std::collections::BTreeSet<&String> = base_recs
        .iter()
        .chain(head_recs.iter())
        .map(|(n, _, _)| n)
        .collect();
    for name in names {
        let b = crate::lineage::closure::reconciliation_closure(&base_planner, name).await?;
        let a = crate::lineage::closure::reconciliation_closure(&head_planner, name).await?;
        let Some((change, elements)) = compare(b.as_ref(), a.as_ref(), &base, &head) else {
            continue;
        };
        let spec_of = |list: &[(String, MetricStatus, u32)]| {
            list.iter()
                .find(|(n, _, _)| n == name)
                .map(|(_, s, v)| (*v, *s))
        };
        let (base_spec, head_spec) = (spec_of(&base_recs), spec_of(&head_recs));
        problems.extend(
            governance_problems(
                ("reconciliation", name),
                &elements,
                (base_spec, head_spec),
                &judge,
            )
            .await?,
        );
        metrics.push(MetricDiff {
            metric: name.clone(),
            change: change.to_string(),
            status: head_spec
                .or(base_spec)
                .map(|(_, s)| s.name().to_string())
                .unwrap_or_default(),
            version: (base_spec.map(|s| s.0), head_spec.map(|s| s.0)),
            elements,
            periods: Vec::new(),
        });
    }
    Ok(Diff {
        base: base_shown,
        head: head_shown,
        periods: periods.iter().map(|p| p.label.clone()).collect(),
        allowed: over.allow.to_vec(),
        metrics,
        problems,
    })
}

/// Whether element `e` is in one closure only because another change
/// brought it in or took it out (a shared exclusion a metric stops naming,
/// an entity a new link reaches) while its definition in the project is the
/// same on both sides: that other change is the one to show.
fn only_entered_or_left(e: &ElementChange, base: &Catalog, head: &Catalog) -> bool {
    if !(e.base.is_null() || e.head.is_null()) {
        return false;
    }
    let (b, h) = (definition(base, &e.element), definition(head, &e.element));
    b.is_some() && b == h
}

/// Element `key`'s definition anywhere in `catalog`'s project (exclusions,
/// entities and sources; none for metric fields and settings).
fn definition(catalog: &Catalog, key: &str) -> Option<serde_json::Value> {
    let (kind, name) = key.split_once(' ')?;
    let files = &catalog.files;
    match kind {
        "exclusion" => files
            .metrics
            .iter()
            .flat_map(|f| f.spec.exclusions.iter())
            .find(|x| x.name == name)
            .and_then(|x| serde_json::to_value(x).ok()),
        "entity" => catalog
            .entity(name)
            .and_then(|(_, _, e)| serde_json::to_value(e).ok()),
        "source" => {
            let (system, table) = name.split_once('/')?;
            catalog
                .source_by_name(system, table)
                .and_then(|(_, s)| serde_json::to_value(s).ok())
        }
        _ => None,
    }
}

/// How a governed definition's closures differ: `changed` (with the
/// elements that differ, none when only entering or leaving), `added` or
/// `removed`; none when they are the same.
fn compare(
    before: Option<&Closure>,
    after: Option<&Closure>,
    base: &Catalog,
    head: &Catalog,
) -> Option<(&'static str, Vec<ElementChange>)> {
    match (before, after) {
        (Some(b), Some(a)) => {
            let changed: Vec<ElementChange> = changed_elements(b, a)
                .into_iter()
                .filter(|e| !only_entered_or_left(e, base, head))
                .collect();
            (!changed.is_empty()).then_some(("changed", changed))
        }
        (None, Some(a)) => Some(("added", changed_elements(&empty(&a.metric), a))),
        (Some(b), None) => Some(("removed", changed_elements(b, &empty(&b.metric)))),
        (None, None) => None,
    }
}

/// A governed definition's (version, status) on one side.
type Governed = (u32, MetricStatus);

/// What keeps a changed certified definition (`kind` metric or
/// reconciliation) from landing: a change to what it computes without a
/// version bump (base and head (version, status)), and a sign-off that does
/// not approve the head.
async fn governance_problems(
    (kind, name): (&str, &str),
    elements: &[ElementChange],
    (base_spec, head_spec): (Option<Governed>, Option<Governed>),
    judge: &crate::lifecycle::Judge,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    if let (Some((bv, bs)), Some((hv, _))) = (base_spec, head_spec)
        && bs == MetricStatus::Certified
        && hv <= bv
        && elements
            .iter()
            .any(|e| crate::lineage::closure::computes(&e.element))
    {
        out.push(format!(
            "certified {kind} `{name}` changed ({}) without a version bump (v{bv} → v{hv})",
            elements
                .iter()
                .map(|e| e.element.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if head_spec.is_some_and(|(_, s)| s == MetricStatus::Certified)
        && let Some(why) = judge.lifecycle(name).await?.blocked_reason(name)
    {
        out.push(why);
    }
    Ok(out)
}

fn empty(name: &str) -> Closure {
    Closure {
        metric: name.to_string(),
        elements: BTreeMap::new(),
    }
}

/// The elements whose value differs, in the waterfall's order: settings,
/// sources, entities, shared exclusions, then metric fields.
fn changed_elements(base: &Closure, head: &Closure) -> Vec<ElementChange> {
    let keys: std::collections::BTreeSet<&String> =
        base.elements.keys().chain(head.elements.keys()).collect();
    let mut out: Vec<ElementChange> = keys
        .into_iter()
        .filter(|k| base.elements.get(*k) != head.elements.get(*k))
        .map(|k| ElementChange {
            element: k.clone(),
            base: base
                .elements
                .get(k)
                .cloned()
                .unwrap_or(serde_json::Value::Null),
            head: head
                .elements
                .get(k)
                .cloned()
                .unwrap_or(serde_json::Value::Null),
        })
        .collect();
    let rank = |k: &str| match k.split_once(' ').map(|(kind, _)| kind) {
        Some("settings") => 0,
        Some("source") => 1,
        Some("entity") => 2,
        Some("exclusion") => 3,
        _ => 4,
    };
    out.sort_by(|a, b| (rank(&a.element), &a.element).cmp(&(rank(&b.element), &b.element)));
    out
}

/// Metric `name` in `period` on both sides, its exclusions, and the
/// waterfall from one to the other.
async fn period_diff(
    base: &Arc<Catalog>,
    head: &Arc<Catalog>,
    name: &str,
    period: &Period,
    over: &Over<'_>,
    elements: &[ElementChange],
) -> Result<PeriodDiff> {
    let before = run(base.clone(), name, period, over).await?;
    let after = run(head.clone(), name, period, over).await?;
    let exclusions = exclusion_diffs(&before, &after);
    let (base_value, head_value) = (outcome(&before), outcome(&after));
    // The waterfall: the base's files with the head's elements applied one
    // at a time; a step whose project does not build or plan is merged with
    // the next.
    let mut files: ProjectFiles = base.files.clone();
    let mut waterfall = Vec::new();
    let mut pending: Vec<String> = Vec::new();
    let mut previous = base_value.value();
    for (i, e) in elements.iter().enumerate() {
        if !crate::lineage::closure::computes(&e.element) {
            continue;
        }
        apply::apply(&mut files, &head.files, &e.element)?;
        pending.push(e.element.clone());
        let last = !elements[i + 1..]
            .iter()
            .any(|e| crate::lineage::closure::computes(&e.element));
        let step = match Catalog::build(files.clone()) {
            Ok(c) => run(Arc::new(c), name, period, over).await?,
            Err(e) => Err(e.to_string()),
        };
        let value = match step {
            Ok(r) => Outcome::Value(r.value),
            // Not computable alone: carried into the next step.
            Err(_) if !last => continue,
            Err(why) => Outcome::Failed(why),
        };
        let delta = match (previous, value.value()) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        previous = value.value();
        waterfall.push(Step {
            elements: std::mem::take(&mut pending),
            value,
            delta,
        });
    }
    Ok(PeriodDiff {
        period: period.label.clone(),
        delta: match (base_value.value(), head_value.value()) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        },
        base: base_value,
        head: head_value,
        exclusions,
        waterfall,
    })
}

type Run = std::result::Result<crate::result::GovernedResult, String>;

/// The governed result of `name` for `period` in `catalog` over `over`
/// (nothing cached), or why there is none.
async fn run(catalog: Arc<Catalog>, name: &str, period: &Period, over: &Over<'_>) -> Result<Run> {
    let mut engine = Engine::new(catalog.clone(), DataSource::Folder(over.data.to_path_buf()))?;
    engine.allow = crate::allow::Allow::parse(
        over.allow,
        false,
        catalog.sources.keys().map(String::as_str),
    )?;
    let request = catalog.resolve(Request::of_period(period.clone()))?;
    Ok(crate::query::run_metric(&engine, name, &request)
        .await
        .map_err(|e| e.to_string()))
}

fn outcome(r: &Run) -> Outcome {
    match r {
        Ok(r) => Outcome::Value(r.value),
        Err(why) => Outcome::Failed(why.clone()),
    }
}

fn exclusion_diffs(before: &Run, after: &Run) -> Vec<ExclusionDiff> {
    let tallies = |r: &Run| -> BTreeMap<String, (i64, Dec)> {
        r.as_ref()
            .map(|r| {
                r.exclusions
                    .iter()
                    .map(|x| {
                        let key = if x.metric == r.metric {
                            x.name.clone()
                        } else {
                            format!("{}/{}", x.metric, x.name)
                        };
                        (key, (x.rows, x.value))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let (b, a) = (tallies(before), tallies(after));
    let names: std::collections::BTreeSet<&String> = b.keys().chain(a.keys()).collect();
    names
        .into_iter()
        .filter(|n| b.get(*n) != a.get(*n))
        .map(|n| ExclusionDiff {
            exclusion: n.clone(),
            base_rows: b.get(n).map(|t| t.0),
            head_rows: a.get(n).map(|t| t.0),
            base_value: b.get(n).map(|t| t.1),
            head_value: a.get(n).map(|t| t.1),
        })
        .collect()
}

/// The periods a diff computes: those asked, else canon.yaml's
/// `publish.periods`.
pub fn periods(catalog: &Catalog, asked: &[String]) -> Result<Vec<Period>> {
    let names = catalog.periods_or_published(asked);
    if names.is_empty() {
        return Err(CanonError::request(
            "say which periods to compare: --period P (repeatable), or publish.periods in canon.yaml",
        ));
    }
    names
        .iter()
        .map(|p| catalog.calendar.parse_period(p))
        .collect()
}
