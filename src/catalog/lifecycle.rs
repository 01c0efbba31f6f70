//! The static rules of a metric's lifecycle (draft → certified →
//! deprecated) and of the sign-off file; whether a sign-off is current needs
//! the metric's planned closure and is `lifecycle`'s.
//!
//! - A certified metric has a description (every metric has an owner): a
//!   number someone answers for says what it means.
//! - A deprecated metric names its replacement (`replaced_by`), an existing
//!   metric that is not deprecated itself, so every query of it can point
//!   its reader to the number to use; no other metric names one.
//! - `signoffs.yaml` holds at most one sign-off per metric, with a sha256, a
//!   signer and an RFC 3339 time (one of a metric that is gone is a
//!   warning of `canon validate`, dropped by the next `canon signoff`).

use std::collections::BTreeMap;

use super::{Catalog, diag};
use crate::error::Diagnostic;
use crate::spec::MetricStatus;
use crate::suggest::did_you_mean;
use crate::yaml_path;

pub(super) fn check(catalog: &Catalog, diags: &mut Vec<Diagnostic>) {
    for (name, id) in &catalog.metrics {
        let file = &catalog.files.metrics[id.file];
        let m = &file.spec.metrics[id.index];
        let at = |key: &str| file.at(&yaml_path!["metrics", id.index, key]);
        // Every metric has an owner (checked with the metric).
        if m.status == MetricStatus::Certified && m.description.trim().is_empty() {
            diags.push(diag(
                at("description"),
                format!("certified metric `{name}` has no description: a certified number says what it means"),
            ));
        }
        match (m.status, &m.replaced_by) {
            (MetricStatus::Deprecated, None) => diags.push(diag(
                at("status"),
                format!("deprecated metric `{name}` names no replacement: add `replaced_by: <metric>`"),
            )),
            (MetricStatus::Deprecated, Some(r)) => {
                if let Some(problem) = replacement_problem(catalog, name, r) {
                    diags.push(diag(at("replaced_by"), problem));
                }
            }
            (_, Some(_)) => diags.push(diag(
                at("replaced_by"),
                format!(
                    "metric `{name}` is {} and names a replacement: only a deprecated metric has one",
                    m.status.name()
                ),
            )),
            (_, None) => {}
        }
    }
    // canon.yaml's `signoffs`: a YAML file of the project, beside the
    // definitions (canon signoff writes it), never inside a folder the
    // loader reads as definitions.
    let spec = &catalog.files.project.spec;
    let path = std::path::Path::new(&spec.signoffs);
    let climbs = path.as_os_str().is_empty()
        || path
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)));
    let yaml = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    let in_definitions = [&spec.models, &spec.metrics]
        .iter()
        .any(|d| path.starts_with(d.as_str()));
    if climbs || !yaml || in_definitions {
        diags.push(diag(
            catalog.files.project.at(&yaml_path!["signoffs"]),
            format!(
                "signoffs `{}` must be a .yaml file inside the project, outside the models and metrics folders (e.g. signoffs.yaml)",
                spec.signoffs
            ),
        ));
    }
    let Some(file) = &catalog.files.signoffs else {
        return;
    };
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, s) in file.spec.signoffs.iter().enumerate() {
        let at = |key: &str| file.at(&yaml_path!["signoffs", i, key]);
        // A sign-off of a metric that is gone is not an error here (every
        // command would stop until someone edited the file): validate warns,
        // and `canon signoff` drops it.
        if let Some(first) = seen.insert(&s.metric, i) {
            diags.push(diag(
                at("metric"),
                format!(
                    "metric `{}` is signed off twice (entries {} and {}): keep the current sign-off only",
                    s.metric,
                    first + 1,
                    i + 1
                ),
            ));
        }
        let hex = s.closure_sha256.len() == 64
            && s.closure_sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex {
            diags.push(diag(
                at("closure_sha256"),
                "closure_sha256 is not a sha256 (64 lowercase hex digits): write sign-offs with `canon signoff`".to_string(),
            ));
        }
        if s.by.trim().is_empty() {
            diags.push(diag(
                at("by"),
                "a sign-off names who approved it".to_string(),
            ));
        }
        if chrono::DateTime::parse_from_rfc3339(&s.at).is_err() {
            diags.push(diag(
                at("at"),
                format!(
                    "cannot read `{}` as a time: use RFC 3339, 2026-12-04T09:30:00Z",
                    s.at
                ),
            ));
        }
    }
}

/// Why `replacement` cannot replace deprecated metric `name`, if it cannot.
fn replacement_problem(catalog: &Catalog, name: &str, replacement: &str) -> Option<String> {
    if replacement == name {
        return Some(format!("metric `{name}` cannot replace itself"));
    }
    let Ok((_, _, r)) = catalog.metric(replacement) else {
        let known: Vec<&str> = catalog.metrics.keys().map(String::as_str).collect();
        let hint = did_you_mean(replacement, &known)
            .map(|k| format!(" (did you mean `{k}`?)"))
            .unwrap_or_default();
        return Some(format!(
            "`{name}` is replaced by unknown metric `{replacement}`{hint}"
        ));
    };
    (r.status == MetricStatus::Deprecated).then(|| {
        format!("`{name}` is replaced by `{replacement}`, which is deprecated too: name the metric to use now")
    })
}
