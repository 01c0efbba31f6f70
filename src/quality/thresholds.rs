//! When a rate of `canon check` warns: the defaults, canon.yaml `quality:`
//! over them, and the exact comparison of a count ratio with a threshold.
//!
//! Rates are compared as the fractions they are (matched / rows against a
//! decimal threshold, in integers), never through a float, so a rate exactly
//! at its threshold does not warn on one machine and pass on another.

use std::collections::BTreeMap;

use crate::catalog::Catalog;
use crate::decimal::Dec;
use crate::error::{CanonError, Diagnostic, Result};
use crate::yaml_path;

/// A cross-system match rate below this warns unless canon.yaml says
/// otherwise: below nine in ten, a link is missing often enough to move the
/// numbers that rely on it (the sample company's planted gaps stay above it).
pub const DEFAULT_MATCH_RATE_WARN_BELOW: &str = "0.9";
/// An identity duplication rate above this warns unless canon.yaml says
/// otherwise: more than one record in twenty being a second copy of an
/// identity says the upstream system needs a clean-up.
pub const DEFAULT_DUPLICATION_WARN_ABOVE: &str = "0.05";

/// The thresholds of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thresholds {
    pub match_rate_warn_below: Dec,
    pub duplication_warn_above: Dec,
    /// Identity rules (`entity.link`) with their own match rate threshold.
    pub match_rate_by_rule: BTreeMap<String, Dec>,
}

impl Thresholds {
    /// canon.yaml's `quality:` over the defaults; a value that is not a
    /// share between 0 and 1, or a per-rule threshold that names no
    /// cross-system link, is an error located in canon.yaml (all of them
    /// reported at once, as `canon validate` reports every definition error).
    pub fn of(catalog: &Catalog) -> Result<Thresholds> {
        let spec = &catalog.files.project.spec.quality;
        let mut problems = Vec::new();
        let share =
            |v: f64, path: &[crate::spec::locate::Step]| -> std::result::Result<Dec, Diagnostic> {
                // f64's Display is the shortest text that reads back to the same
                // number, never an exponent: 0.9 → "0.9".
                let parsed: Option<Dec> = (v.is_finite() && (0.0..=1.0).contains(&v))
                    .then(|| format!("{v}").parse().ok())
                    .flatten();
                parsed.ok_or_else(|| Diagnostic {
                    location: catalog.files.project.at(path),
                    message: format!("`{v}` is not a share between 0 and 1 (write it as 0.9)"),
                })
            };
        let mut read = |value: Option<f64>, key: &'static str, default: &str| -> Dec {
            let fallback: Dec = default.parse().unwrap_or(Dec::ZERO);
            match value.map(|v| share(v, &yaml_path!["quality", key])) {
                Some(Ok(d)) => d,
                Some(Err(problem)) => {
                    problems.push(problem);
                    fallback
                }
                None => fallback,
            }
        };
        let match_rate_warn_below = read(
            spec.match_rate_warn_below,
            "match_rate_warn_below",
            DEFAULT_MATCH_RATE_WARN_BELOW,
        );
        let duplication_warn_above = read(
            spec.duplication_warn_above,
            "duplication_warn_above",
            DEFAULT_DUPLICATION_WARN_ABOVE,
        );
        let links = cross_system_links(catalog);
        let mut match_rate_by_rule = BTreeMap::new();
        for (rule, v) in &spec.match_rate_warn_below_by_rule {
            let path = yaml_path!["quality", "match_rate_warn_below_by_rule", rule.as_str()];
            if !links.contains(rule) {
                problems.push(Diagnostic {
                    location: catalog.files.project.at(&path),
                    message: format!(
                        "`{rule}` is not a cross-system identity rule; write `entity.link`, one of: {}",
                        links.join(", ")
                    ),
                });
            } else {
                match share(*v, &path) {
                    Ok(d) => {
                        match_rate_by_rule.insert(rule.clone(), d);
                    }
                    Err(problem) => problems.push(problem),
                }
            }
        }
        if problems.is_empty() {
            Ok(Thresholds {
                match_rate_warn_below,
                duplication_warn_above,
                match_rate_by_rule,
            })
        } else {
            Err(CanonError::Definition(problems))
        }
    }

    /// The threshold of identity rule `entity.link`: its own, else the
    /// project's.
    pub fn match_rate_for(&self, rule: &str) -> Dec {
        self.match_rate_by_rule
            .get(rule)
            .copied()
            .unwrap_or(self.match_rate_warn_below)
    }
}

/// Every link (`entity.link`) from an entity of one system to an entity of
/// another: the identity rules whose match rates are judged.
fn cross_system_links(catalog: &Catalog) -> Vec<String> {
    let mut out = Vec::new();
    for model in &catalog.files.models {
        for e in &model.spec.entities {
            for l in &e.links {
                if catalog
                    .entity(&l.entity)
                    .is_some_and(|(_, target, _)| target.spec.system != model.spec.system)
                {
                    out.push(format!("{}.{}", e.name, l.name));
                }
            }
        }
    }
    out.sort();
    out
}

/// Whether `part / whole` is below `threshold`, exactly (false for an empty
/// whole: nothing to judge).
pub fn share_below(part: i64, whole: i64, threshold: Dec) -> bool {
    whole > 0
        && i128::from(part) * 10i128.pow(threshold.scale) < threshold.units * i128::from(whole)
}

/// Whether `part / whole` is above `threshold`, exactly.
pub fn share_above(part: i64, whole: i64, threshold: Dec) -> bool {
    whole > 0
        && i128::from(part) * 10i128.pow(threshold.scale) > threshold.units * i128::from(whole)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Dec {
        s.parse().unwrap()
    }

    #[test]
    fn a_share_exactly_at_its_threshold_neither_warns_below_nor_above() {
        // 9 / 10 = 0.9 exactly.
        assert!(!share_below(9, 10, dec("0.9")));
        assert!(!share_above(9, 10, dec("0.9")));
        // 8 / 9 = 0.888… < 0.9; 1 / 19 = 0.0526… > 0.05; 1 / 20 = 0.05.
        assert!(share_below(8, 9, dec("0.9")));
        assert!(share_above(1, 19, dec("0.05")));
        assert!(!share_above(1, 20, dec("0.05")));
        // Nothing to judge.
        assert!(!share_below(0, 0, dec("0.9")));
        assert!(!share_above(0, 0, dec("0.05")));
    }
}
