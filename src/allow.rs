//! Overrides of quality gates, by name: `--allow GATE:TABLE` (repeatable).
//!
//! A gate at error blocks a result. The only way past one is to name it:
//! the gate (`uniqueness`, `freshness`, …) and the table it failed on
//! (`crm/dated_conversion_rate`, or `*` for every table), so an override
//! given for one problem does not silently let through another. Every
//! override that was used is recorded in the result (`overrides`) and in the
//! publish manifest. One small type, shared by every gate and command.

use crate::error::{CanonError, Result};

/// Gates a result can be blocked by, in the order they are documented.
/// A gate added in another module adds its name here, so `--allow` accepts it.
pub const GATES: &[&str] = &[
    "freshness",
    "completeness",
    "uniqueness",
    "intervals",
    "accepted_values",
    "volume",
    "conversion_window",
    "declared_unique",
    "required_link",
];

/// The gates `--allow-stale` overrides (its meaning before `--allow`).
pub const STALE_GATES: &[&str] = &["freshness", "completeness"];

/// One `GATE:TABLE` override.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AllowRule {
    pub gate: String,
    /// `system/table`, or `*` for any table.
    pub table: String,
}

impl AllowRule {
    fn matches(&self, gate: &str, table: &str) -> bool {
        self.gate == gate && (self.table == "*" || self.table == table)
    }
}

/// The overrides a run was given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allow {
    rules: Vec<AllowRule>,
    /// `--allow-stale`: freshness and completeness on every table.
    stale: bool,
}

impl Allow {
    /// Parses `--allow` values. `tables` are the known `system/table` names:
    /// a rule naming another table, or an unknown gate, is a bad request
    /// (exit 2) rather than an override that silently matches nothing.
    pub fn parse<'a>(
        values: &[String],
        allow_stale: bool,
        tables: impl IntoIterator<Item = &'a str>,
    ) -> Result<Allow> {
        let tables: Vec<&str> = tables.into_iter().collect();
        let mut rules = Vec::new();
        for value in values {
            let (gate, table) = value.split_once(':').ok_or_else(|| {
                CanonError::request(format!(
                    "--allow {value}: expected GATE:TABLE, e.g. uniqueness:crm/opportunity (gates: {})",
                    GATES.join(", ")
                ))
            })?;
            let (gate, table) = (gate.trim(), table.trim());
            if !GATES.contains(&gate) {
                return Err(CanonError::request(format!(
                    "--allow {value}: unknown gate `{gate}` (gates: {})",
                    GATES.join(", ")
                )));
            }
            if table != "*" && !tables.contains(&table) {
                return Err(CanonError::request(format!(
                    "--allow {value}: unknown table `{table}` (a `system/table` of models/, or `*`)"
                )));
            }
            let rule = AllowRule {
                gate: gate.to_string(),
                table: table.to_string(),
            };
            if !rules.contains(&rule) {
                rules.push(rule);
            }
        }
        Ok(Allow {
            rules,
            stale: allow_stale,
        })
    }

    /// Whether a failure of `gate` on `table` may pass, and under which
    /// name the override is recorded: `GATE:TABLE` as the user wrote it, or
    /// `allow_stale`.
    pub fn permit(&self, gate: &str, table: &str) -> Option<String> {
        if let Some(rule) = self.rules.iter().find(|r| r.matches(gate, table)) {
            return Some(format!("{}:{}", rule.gate, rule.table));
        }
        (self.stale && STALE_GATES.contains(&gate)).then(|| "allow_stale".to_string())
    }

    /// The `--allow` flag that would let `gate` on `table` pass.
    pub fn hint(gate: &str, table: &str) -> String {
        if STALE_GATES.contains(&gate) {
            format!("--allow {gate}:{table} (or --allow-stale)")
        } else {
            format!("--allow {gate}:{table}")
        }
    }

    /// Whether a rule names `gate` (on any table).
    pub fn names_gate(&self, gate: &str) -> bool {
        self.rules.iter().any(|r| r.gate == gate)
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && !self.stale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLES: [&str; 2] = ["crm/opportunity", "crm/dated_conversion_rate"];

    fn parse(values: &[&str]) -> Result<Allow> {
        let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        Allow::parse(&values, false, TABLES)
    }

    #[test]
    fn a_rule_allows_its_gate_on_its_table_only() {
        let allow = parse(&["uniqueness:crm/opportunity"]).unwrap();
        assert_eq!(
            allow.permit("uniqueness", "crm/opportunity").as_deref(),
            Some("uniqueness:crm/opportunity")
        );
        assert_eq!(
            allow.permit("uniqueness", "crm/dated_conversion_rate"),
            None
        );
        assert_eq!(allow.permit("intervals", "crm/opportunity"), None);
        assert_eq!(allow.permit("freshness", "crm/opportunity"), None);
    }

    #[test]
    fn a_star_allows_the_gate_on_every_table() {
        let allow = parse(&["intervals:*"]).unwrap();
        assert_eq!(
            allow
                .permit("intervals", "crm/dated_conversion_rate")
                .as_deref(),
            Some("intervals:*")
        );
        assert_eq!(allow.permit("uniqueness", "crm/opportunity"), None);
    }

    #[test]
    fn allow_stale_covers_freshness_and_completeness_only() {
        let allow = Allow::parse(&[], true, TABLES).unwrap();
        assert_eq!(
            allow.permit("freshness", "crm/opportunity").as_deref(),
            Some("allow_stale")
        );
        assert_eq!(
            allow.permit("completeness", "crm/opportunity").as_deref(),
            Some("allow_stale")
        );
        assert_eq!(allow.permit("uniqueness", "crm/opportunity"), None);
    }

    #[test]
    fn bad_rules_are_bad_requests() {
        for bad in [
            "uniqueness",
            "unique:crm/opportunity",
            "uniqueness:crm/opportunities",
        ] {
            match parse(&[bad]) {
                Err(CanonError::Request(m)) => assert!(m.contains(bad), "{m}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}
