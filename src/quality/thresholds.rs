//! When a rate of `canon check` warns: the defaults, canon.yaml `quality:`
//! over them, and the exact comparison of a count ratio with a threshold.
//!
//! Rates are compared as the fractions they are (matched / rows against a
//! decimal threshold, in integers), never through a float, so a rate exactly
//! at its threshold does not warn on one machine and pass on another.

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub match_rate_warn_below: Dec,
    pub duplication_warn_above: Dec,
}

impl Thresholds {
    /// canon.yaml's `quality:` over the defaults; a value that is not a
    /// share between 0 and 1 is an error located in canon.yaml (both keys
    /// reported at once, as `canon validate` reports every definition error).
    pub fn of(catalog: &Catalog) -> Result<Thresholds> {
        let spec = &catalog.files.project.spec.quality;
        let mut problems = Vec::new();
        let mut read = |value: Option<f64>, key: &'static str, default: &str| -> Dec {
            let fallback: Dec = default.parse().unwrap_or(Dec::ZERO);
            let Some(v) = value else {
                return fallback;
            };
            // f64's Display is the shortest text that reads back to the same
            // number, never an exponent: 0.9 → "0.9".
            let parsed: Option<Dec> = (v.is_finite() && (0.0..=1.0).contains(&v))
                .then(|| format!("{v}").parse().ok())
                .flatten();
            parsed.unwrap_or_else(|| {
                problems.push(Diagnostic {
                    location: catalog.files.project.at(&yaml_path!["quality", key]),
                    message: format!("`{v}` is not a share between 0 and 1 (write it as 0.9)"),
                });
                fallback
            })
        };
        let thresholds = Thresholds {
            match_rate_warn_below: read(
                spec.match_rate_warn_below,
                "match_rate_warn_below",
                DEFAULT_MATCH_RATE_WARN_BELOW,
            ),
            duplication_warn_above: read(
                spec.duplication_warn_above,
                "duplication_warn_above",
                DEFAULT_DUPLICATION_WARN_ABOVE,
            ),
        };
        if problems.is_empty() {
            Ok(thresholds)
        } else {
            Err(CanonError::Definition(problems))
        }
    }
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
