//! A metric's definition closure: every piece of YAML its numbers depend
//! on, as named elements. A sign-off approves one closure (its sha256); a
//! diff compares two closures element by element and replays the changed
//! elements one at a time.
//!
//! Why a closure and not the metric's own YAML: a certified number moves
//! when an exclusion it names, a field of an entity it reads, a link it
//! follows, a source's declared column or the company's fiscal calendar
//! changes, none of which is in the metric's block. The closure is taken
//! from what planning reads (the lineage graph of the headline and of each
//! approved slice), so it holds what the metric depends on and no other
//! metric's definitions.
//!
//! Elements and their keys:
//! - `metric NAME.FIELD`: each field of the metric and of the metrics it is
//!   computed from (`metric arr.filter`, `metric arr.exclusions`);
//! - `exclusion NAME`: a shared exclusion a metric names;
//! - `entity NAME`: an entity read (fields, links, merges);
//! - `source SYSTEM/TABLE`: a source table read (its declared columns);
//! - `settings FIELD`: the canon.yaml settings numbers depend on (zone,
//!   fiscal calendar, base currency, internal domains).
//!
//! The hash leaves out `status`, `owner` and `replaced_by` (who owns a
//! metric or whether it is certified does not change what it computes, and
//! certifying must not make its own sign-off stale), and the prose of the
//! models and shared exclusions (descriptions, reasons); the version and
//! the metric's own description are in it.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{Graph, NodeKind};
use crate::catalog::Catalog;
use crate::error::{CanonError, Result};
use crate::request::Request;
use crate::run::{DataSource, Engine};

use crate::spec::ExclusionRef;

/// Fields of a metric that say who governs it, not what it computes.
const GOVERNANCE: [&str; 3] = ["status", "owner", "replaced_by"];

/// The settings of canon.yaml a number depends on.
const SETTINGS: [&str; 5] = [
    "reporting_zone",
    "fiscal_year_start_month",
    "fiscal_year_named_by",
    "base_currency",
    "internal_domains",
];

/// A metric's closure: its elements by key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Closure {
    pub metric: String,
    pub elements: BTreeMap<String, serde_json::Value>,
}

impl Closure {
    /// sha256 over every element but the governance fields, in key order.
    pub fn sha256(&self) -> String {
        let mut h = Sha256::new();
        for (key, value) in &self.elements {
            if is_governance(key) {
                continue;
            }
            h.update(key.as_bytes());
            h.update([0]);
            h.update(serde_json::to_vec(value).unwrap_or_default());
            h.update([0]);
        }
        hex::encode(h.finalize())
    }
}

/// Whether element `key` says who governs a metric rather than what it
/// computes.
pub fn is_governance(key: &str) -> bool {
    field_in(key, &GOVERNANCE)
}

/// Fields of a metric that describe it without changing what it computes:
/// its governance, version, name for people and description.
const DESCRIPTIVE: [&str; 6] = [
    "status",
    "owner",
    "replaced_by",
    "version",
    "label",
    "description",
];

/// Whether a change of element `key` can change a number (everything but a
/// metric's descriptive fields).
pub fn computes(key: &str) -> bool {
    !field_in(key, &DESCRIPTIVE)
}

fn field_in(key: &str, fields: &[&str]) -> bool {
    key.strip_prefix("metric ")
        .or_else(|| key.strip_prefix("reconciliation "))
        .and_then(|k| k.rsplit_once('.'))
        .is_some_and(|(_, field)| fields.contains(&field))
}

/// The closure of reconciliation `name`: each field of its definition
/// (`reconciliation NAME.FIELD`: its link rules, lines, version …) and the
/// closures of the two metrics it bridges. None when it is not one.
pub async fn reconciliation_closure(engine: &Engine, name: &str) -> Result<Option<Closure>> {
    let catalog = engine.catalog.clone();
    let Some(spec) = catalog.reconciliation(name) else {
        return Ok(None);
    };
    let mut elements = BTreeMap::new();
    if let serde_json::Value::Object(fields) = json(spec)? {
        for (field, value) in fields {
            elements.insert(format!("reconciliation {name}.{field}"), value);
        }
    }
    for side in [&spec.bookings, &spec.revenue] {
        if catalog.metric(side).is_ok() {
            elements.extend(closure(engine, side).await?.elements);
        }
    }
    Ok(Some(Closure {
        metric: name.to_string(),
        elements,
    }))
}

/// An engine to plan closures on: no data (nothing is read, no file
/// listed), and its own, so the links its plans note are no run's.
pub fn planner(catalog: std::sync::Arc<Catalog>) -> Result<Engine> {
    Engine::new(catalog, DataSource::Empty)
}

/// The closure of metric `name`, planned on `engine` (see [`planner`]; one
/// engine for many metrics shares their entities' plans).
pub async fn closure(engine: &Engine, name: &str) -> Result<Closure> {
    let catalog = engine.catalog.clone();
    let (_, _, metric) = catalog.metric(name)?;
    // Planned by every approved slice at once: a slice's field may follow
    // links the headline does not, and the sliced plan reads all the
    // headline reads (validate plans every metric so too).
    let slices = metric.slices.iter().map(|s| s.name().to_string()).collect();
    let request = catalog.resolve(request(&catalog, slices)?)?;
    // In a span of its own: this plan is the definition's, not a run's
    // (tests count a query's plans by their log lines).
    let graphs: Vec<Graph> = vec![
        tracing::Instrument::instrument(
            super::lineage(engine, name, &request),
            tracing::debug_span!("closure", metric = %name),
        )
        .await?,
    ];
    let mut elements = BTreeMap::new();
    for g in &graphs {
        for node in &g.nodes {
            let (_, id) = node.id.split_once(':').unwrap_or(("", &node.id));
            match node.kind {
                NodeKind::Metric => metric_elements(&catalog, id, &mut elements)?,
                NodeKind::Entity => {
                    if let Some((_, _, spec)) = catalog.entity(id) {
                        elements.insert(format!("entity {id}"), prose_free(json(spec)?));
                    }
                }
                NodeKind::Source => {
                    if let Some((system, table)) = id.split_once('/')
                        && let Some((_, spec)) = catalog.source_by_name(system, table)
                    {
                        elements.insert(format!("source {id}"), prose_free(json(spec)?));
                    }
                }
                _ => {}
            }
        }
    }
    let project = json(&catalog.files.project.spec)?;
    for field in SETTINGS {
        elements.insert(
            format!("settings {field}"),
            project
                .get(field)
                .cloned()
                .unwrap_or(serde_json::Value::Null),
        );
    }
    Ok(Closure {
        metric: name.to_string(),
        elements,
    })
}

/// Each field of metric `name`, and the shared exclusions it names.
fn metric_elements(
    catalog: &Catalog,
    name: &str,
    out: &mut BTreeMap<String, serde_json::Value>,
) -> Result<()> {
    let (_, _, spec) = catalog.metric(name)?;
    if let serde_json::Value::Object(fields) = json(spec)? {
        for (field, value) in fields {
            out.insert(format!("metric {name}.{field}"), value);
        }
    }
    for x in &spec.exclusions {
        if let ExclusionRef::Named(shared) = x
            && let Some(id) = catalog.exclusions.get(shared)
        {
            let spec = &catalog.files.metrics[id.file].spec.exclusions[id.index];
            out.insert(format!("exclusion {shared}"), prose_free(json(spec)?));
        }
    }
    Ok(())
}

/// An entity's, source's or shared exclusion's definition without its
/// prose (`description`, `reason`, at any depth): rewording a model's
/// documentation changes no number and needs no new sign-off. A metric's
/// own description stays in its closure: it says what the number means.
fn prose_free(mut value: serde_json::Value) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                map.remove("description");
                map.remove("reason");
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut value);
    value
}

fn json<T: Serialize>(value: &T) -> Result<serde_json::Value> {
    serde_json::to_value(value).map_err(|e| CanonError::Internal(format!("closure element: {e}")))
}

/// A request to plan with: a month (what a metric reads does not depend on
/// the period), sliced by `slices`.
fn request(catalog: &Catalog, slices: Vec<String>) -> Result<Request> {
    Ok(Request {
        by: slices,
        ..Request::of_period(catalog.calendar.parse_period("2025-01")?)
    })
}
