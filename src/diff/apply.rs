//! One closure element carried from one project into another, for the
//! waterfall: the base's definitions with the head's version of one element
//! (a field of a metric, a shared exclusion, an entity, a source, a
//! setting), or without it when the head has none.

use crate::error::{CanonError, Result};
use crate::spec::load::ProjectFiles;

/// Sets element `key` (`lineage::closure` keys) of `target` to what it is
/// in `from`; removes it when `from` does not have it.
pub fn apply(target: &mut ProjectFiles, from: &ProjectFiles, key: &str) -> Result<()> {
    let (kind, name) = key
        .split_once(' ')
        .ok_or_else(|| CanonError::Internal(format!("closure element `{key}`")))?;
    match kind {
        "metric" => {
            let (metric, field) = name
                .rsplit_once('.')
                .ok_or_else(|| CanonError::Internal(format!("closure element `{key}`")))?;
            let source = from.metrics.iter().find_map(|f| {
                f.spec
                    .metrics
                    .iter()
                    .find(|m| m.name == metric)
                    .map(|m| (f.display_path.clone(), m.clone()))
            });
            let at = target.metrics.iter().enumerate().find_map(|(fi, f)| {
                f.spec
                    .metrics
                    .iter()
                    .position(|m| m.name == metric)
                    .map(|mi| (fi, mi))
            });
            match (at, source) {
                // A field of a metric both sides have.
                (Some((fi, mi)), Some((_, m))) => {
                    let t = &mut target.metrics[fi].spec.metrics[mi];
                    *t = with_field(json(t)?, field, json(&m)?.get(field).cloned())?;
                }
                // A metric the head adds (or renamed to): all of it at once.
                (None, Some((path, m))) => {
                    let file = target
                        .metrics
                        .iter()
                        .position(|f| f.display_path == path)
                        .unwrap_or(0);
                    if let Some(f) = target.metrics.get_mut(file) {
                        f.spec.metrics.push(m);
                    }
                }
                // A metric the head removes (or renamed away).
                (Some((fi, mi)), None) => {
                    target.metrics[fi].spec.metrics.remove(mi);
                }
                (None, None) => {}
            }
        }
        "exclusion" => {
            let found = |files: &ProjectFiles| {
                files.metrics.iter().enumerate().find_map(|(fi, f)| {
                    f.spec
                        .exclusions
                        .iter()
                        .position(|x| x.name == name)
                        .map(|xi| (fi, xi))
                })
            };
            let spec = found(from).map(|(fi, xi)| from.metrics[fi].spec.exclusions[xi].clone());
            match (found(target), spec) {
                (Some((fi, xi)), Some(spec)) => target.metrics[fi].spec.exclusions[xi] = spec,
                (Some((fi, xi)), None) => {
                    target.metrics[fi].spec.exclusions.remove(xi);
                }
                (None, Some(spec)) => {
                    if let Some(f) = target.metrics.first_mut() {
                        f.spec.exclusions.push(spec);
                    }
                }
                (None, None) => {}
            }
        }
        "entity" => {
            let found = |files: &ProjectFiles| {
                files.models.iter().enumerate().find_map(|(fi, f)| {
                    f.spec
                        .entities
                        .iter()
                        .position(|e| e.name == name)
                        .map(|ei| (fi, ei))
                })
            };
            let spec = found(from).map(|(fi, ei)| {
                (
                    from.models[fi].spec.system.clone(),
                    from.models[fi].spec.entities[ei].clone(),
                )
            });
            match (found(target), spec) {
                (Some((fi, ei)), Some((_, spec))) => target.models[fi].spec.entities[ei] = spec,
                (Some((fi, ei)), None) => {
                    target.models[fi].spec.entities.remove(ei);
                }
                (None, Some((system, spec))) => {
                    if let Some(f) = target.models.iter_mut().find(|f| f.spec.system == system) {
                        f.spec.entities.push(spec);
                    }
                }
                (None, None) => {}
            }
        }
        "source" => {
            let (system, table) = name
                .split_once('/')
                .ok_or_else(|| CanonError::Internal(format!("closure element `{key}`")))?;
            let found = |files: &ProjectFiles| {
                files.models.iter().enumerate().find_map(|(fi, f)| {
                    (f.spec.system == system)
                        .then(|| f.spec.sources.iter().position(|s| s.name == table))
                        .flatten()
                        .map(|si| (fi, si))
                })
            };
            let spec = found(from).map(|(fi, si)| from.models[fi].spec.sources[si].clone());
            match (found(target), spec) {
                (Some((fi, si)), Some(spec)) => target.models[fi].spec.sources[si] = spec,
                (Some((fi, si)), None) => {
                    target.models[fi].spec.sources.remove(si);
                }
                (None, Some(spec)) => {
                    if let Some(f) = target.models.iter_mut().find(|f| f.spec.system == system) {
                        f.spec.sources.push(spec);
                    }
                }
                (None, None) => {}
            }
        }
        "settings" => {
            let value = json(&from.project.spec)?.get(name).cloned();
            target.project.spec = with_field(json(&target.project.spec)?, name, value)?;
        }
        _ => return Err(CanonError::Internal(format!("closure element `{key}`"))),
    }
    Ok(())
}

fn json<T: serde::Serialize>(value: &T) -> Result<serde_json::Value> {
    serde_json::to_value(value)
        .map_err(|e| CanonError::Internal(format!("a definition as JSON: {e}")))
}

/// `object` with `field` set to `value` (removed when none), read back.
fn with_field<T: serde::de::DeserializeOwned>(
    mut object: serde_json::Value,
    field: &str,
    value: Option<serde_json::Value>,
) -> Result<T> {
    if let serde_json::Value::Object(map) = &mut object {
        match value {
            Some(v) => {
                map.insert(field.to_string(), v);
            }
            None => {
                map.remove(field);
            }
        }
    }
    serde_json::from_value(object)
        .map_err(|e| CanonError::Internal(format!("a definition with `{field}` changed: {e}")))
}
