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
            let Some(t) = target
                .metrics
                .iter_mut()
                .flat_map(|f| f.spec.metrics.iter_mut())
                .find(|m| m.name == metric)
            else {
                return Err(CanonError::Internal(format!(
                    "no metric `{metric}` to change"
                )));
            };
            let value = from
                .metrics
                .iter()
                .flat_map(|f| f.spec.metrics.iter())
                .find(|m| m.name == metric)
                .map(json)
                .transpose()?
                .and_then(|v| v.get(field).cloned());
            *t = with_field(json(t)?, field, value)?;
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
