//! Overrides by name: `--allow GATE:TABLE` (repeatable) lets a run go past
//! one gate of one table, and only that one, where a blanket switch would
//! also wave through every other problem that appears later. The override is
//! recorded in the result (`overrides`) under the same name.

use std::collections::BTreeSet;

use crate::catalog::Catalog;
use crate::error::{CanonError, Result};

/// The gates an `--allow` may name.
pub const GATES: &[&str] = &["accepted_values", "volume"];

/// The `--allow` overrides of a run: (gate, `system/table`) pairs.
#[derive(Debug, Clone, Default)]
pub struct Allow {
    entries: BTreeSet<(String, String)>,
}

impl Allow {
    /// Reads `GATE:TABLE` arguments; an unknown gate or table is a bad
    /// request (an override that names nothing would silently do nothing).
    pub fn parse(args: &[String], catalog: &Catalog) -> Result<Allow> {
        let mut entries = BTreeSet::new();
        for arg in args {
            let Some((gate, table)) = arg.trim().split_once(':') else {
                return Err(CanonError::request(format!(
                    "--allow {arg}: write GATE:TABLE, e.g. --allow volume:crm/opportunity (gates: {})",
                    GATES.join(", ")
                )));
            };
            if !GATES.contains(&gate) {
                return Err(CanonError::request(format!(
                    "--allow {arg}: unknown gate `{gate}` (gates: {})",
                    GATES.join(", ")
                )));
            }
            if !catalog.sources.contains_key(table) {
                let known: Vec<&str> = catalog.sources.keys().map(String::as_str).collect();
                let hint = crate::catalog::did_you_mean(table, &known)
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                return Err(CanonError::request(format!(
                    "--allow {arg}: `{table}` is not a source table (system/table){hint}"
                )));
            }
            entries.insert((gate.to_string(), table.to_string()));
        }
        Ok(Allow { entries })
    }

    /// Whether the run may go past `gate` on `table`.
    pub fn allows(&self, gate: &str, table: &str) -> bool {
        self.entries.iter().any(|(g, t)| g == gate && t == table)
    }

    /// The override's name as `--allow` takes it and results record it.
    pub fn name(gate: &str, table: &str) -> String {
        format!("{gate}:{table}")
    }
}
