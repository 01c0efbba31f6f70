//! The governed result: the number with its evidence, and its writers.
//!
//! A number without its definition version, lineage and exclusions is not a
//! canon number, so every writer renders the whole result, not the value alone.

pub mod reconciliation;
pub mod render;

use serde::Serialize;

use crate::compile::Request;
use crate::decimal::Dec;
use crate::run::SourceFacts;

#[derive(Debug, Clone, Serialize)]
pub struct DefinitionRef {
    pub file: String,
    pub version: u32,
    pub sha256: String,
    pub owner: String,
    pub status: String,
    pub system: String,
}

/// One row of a series or slice breakdown. In JSON the slices are keys of
/// the row itself (`{"period": "2025-03", "deal_type": "Renewal", "value": "1.00"}`),
/// the shape BI tools and DESIGN.md expect.
#[derive(Debug, Clone)]
pub struct ResultRow {
    pub period: String,
    /// The row's own bucket `[start, end)` (for a snapshot, the as-of day).
    pub period_start: chrono::NaiveDate,
    pub period_end: chrono::NaiveDate,
    /// Slice name → value (null when the slice has no value for these rows).
    pub slices: Vec<(String, Option<String>)>,
    pub value: Option<Dec>,
    /// A cohort's bridge for this slice (empty for other kinds).
    pub bridge: Vec<BridgeLine>,
}

/// One signed line of a bridge: the lines after the first sum to the last.
#[derive(Debug, Clone, Serialize)]
pub struct BridgeLine {
    pub line: String,
    pub value: Dec,
}

impl Serialize for ResultRow {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("period", &self.period)?;
        map.serialize_entry("period_start", &self.period_start)?;
        map.serialize_entry("period_end", &self.period_end)?;
        for (name, value) in &self.slices {
            map.serialize_entry(name, value)?;
        }
        map.serialize_entry("value", &self.value)?;
        if !self.bridge.is_empty() {
            map.serialize_entry("bridge", &self.bridge)?;
        }
        map.end()
    }
}

/// What one exclusion removed from the universe.
#[derive(Debug, Clone, Serialize)]
pub struct ExclusionTally {
    /// The metric whose universe it was taken from (a ratio has two).
    pub metric: String,
    pub name: String,
    pub reason: String,
    pub rows: i64,
    /// How many of the metric's entities (customers, persons) the removed
    /// rows belong to, when the metric names its `member`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entities: Option<i64>,
    /// What the removed rows would have contributed (sum, or count).
    pub value: Dec,
}

/// The rows and value of a universe, and of what was counted from it.
#[derive(Debug, Clone, Serialize)]
pub struct Tally {
    pub metric: String,
    pub universe_rows: i64,
    pub universe_value: Dec,
    pub included_rows: i64,
    pub included_value: Dec,
    /// Distinct entities counted, when the metric names its `member`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub included_entities: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SourceLineage {
    pub system: String,
    pub table: String,
    pub files: Vec<crate::run::files::FileFact>,
    pub columns: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Lineage {
    pub definitions: Vec<DefinitionRef>,
    /// The optimized logical plan of the metric (for a ratio or derived
    /// metric, of its first part; every part's plan is under `plans`).
    pub plan: String,
    pub sources: Vec<SourceLineage>,
    /// The optimized logical plan of each compiled part, by metric.
    pub plans: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Engine {
    pub canon: String,
    pub datafusion: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct GovernedResult {
    pub metric: String,
    pub label: String,
    pub kind: String,
    pub description: String,
    pub definition: DefinitionRef,
    pub request: Request,
    /// The headline number over the whole period (no slices).
    pub value: Option<Dec>,
    pub unit: String,
    pub rows: Vec<ResultRow>,
    /// Cohort metrics: the headline bridge.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bridge: Vec<BridgeLine>,
    pub exclusions: Vec<ExclusionTally>,
    pub tallies: Vec<Tally>,
    pub lineage: Lineage,
    pub quality: Vec<serde_json::Value>,
    /// The worst status of the input checks: pass, warn or error.
    pub quality_status: String,
    /// Explicit overrides the run was made with (e.g. `allow_stale`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<String>,
    /// The "now" freshness was judged against.
    pub now: String,
    pub fingerprint: String,
    pub engine: Engine,
    pub elapsed_ms: u128,
}

impl Engine {
    pub fn current() -> Engine {
        Engine {
            canon: env!("CARGO_PKG_VERSION").to_string(),
            datafusion: datafusion::DATAFUSION_VERSION.to_string(),
        }
    }
}

pub fn source_lineage(facts: &SourceFacts, columns: Vec<String>) -> SourceLineage {
    SourceLineage {
        system: facts.system.clone(),
        table: facts.table.clone(),
        files: facts.files.clone(),
        columns,
    }
}
