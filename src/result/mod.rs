//! The governed result: the number with its evidence, and its writers.
//!
//! A number without its definition version, lineage and exclusions is not a
//! canon number, so every writer renders the whole result, not the value alone.

pub mod consistency;
pub mod flat;
pub mod reach;
pub mod reconciliation;
pub mod render;

use serde::{Deserialize, Serialize};

use crate::decimal::Dec;
use crate::request::Request;
use crate::run::SourceFacts;

#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// `false` when the row's bucket runs past what the data reaches (see
    /// [`GovernedResult::complete`]); written only then.
    pub complete: bool,
    /// `false` when the row's bucket is cut to the request (`--from
    /// 2025-01-15` by quarter: its 2025-Q1 row is 2025-01-15..2025-03-31,
    /// and a state by month is taken at the request's last day, not the
    /// month's); written only then. Its dates say where it was cut.
    pub whole: bool,
}

fn complete() -> bool {
    true
}

pub(crate) fn is_complete(complete: &bool) -> bool {
    *complete
}

/// One signed line of a bridge: the lines after the first sum to the last.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
        if !self.complete {
            map.serialize_entry("complete", &false)?;
        }
        if !self.whole {
            map.serialize_entry("whole", &false)?;
        }
        map.end()
    }
}

/// The inverse of `Serialize`: every key that is not one of the row's own
/// is a slice, in the order written.
impl<'de> Deserialize<'de> for ResultRow {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ResultRow, D::Error> {
        use serde::de::Error;
        let mut fields: serde_json::Map<String, serde_json::Value> = Deserialize::deserialize(d)?;
        let mut take = |key: &str| {
            fields
                .shift_remove(key)
                .ok_or_else(|| D::Error::custom(format!("a result row needs `{key}`")))
        };
        let (period, start, end) = (take("period")?, take("period_start")?, take("period_end")?);
        let value = fields.shift_remove("value").unwrap_or_default();
        let bridge = fields.shift_remove("bridge").unwrap_or_default();
        let complete = fields
            .shift_remove("complete")
            .unwrap_or(serde_json::Value::Bool(true));
        let whole = fields
            .shift_remove("whole")
            .unwrap_or(serde_json::Value::Bool(true));
        let read = |v: serde_json::Value| serde_json::from_value(v).map_err(D::Error::custom);
        Ok(ResultRow {
            period: serde_json::from_value(period).map_err(D::Error::custom)?,
            period_start: serde_json::from_value(start).map_err(D::Error::custom)?,
            period_end: serde_json::from_value(end).map_err(D::Error::custom)?,
            value: serde_json::from_value(value).map_err(D::Error::custom)?,
            bridge: if bridge.is_null() {
                Vec::new()
            } else {
                serde_json::from_value(bridge).map_err(D::Error::custom)?
            },
            complete: serde_json::from_value(complete).map_err(D::Error::custom)?,
            whole: serde_json::from_value(whole).map_err(D::Error::custom)?,
            slices: fields
                .into_iter()
                .map(|(name, v)| Ok((name, read(v)?)))
                .collect::<Result<_, D::Error>>()?,
        })
    }
}

/// What one exclusion removed from the universe.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExclusionTally {
    /// The metric whose universe it was taken from (a ratio has two).
    pub metric: String,
    pub name: String,
    pub reason: String,
    pub rows: i64,
    /// How many of the metric's entities (customers, persons) the removed
    /// rows belong to, when the metric names its `member`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entities: Option<i64>,
    /// What the removed rows would have contributed (sum, or count).
    pub value: Dec,
}

/// The rows and value of a universe, and of what was counted from it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tally {
    pub metric: String,
    pub universe_rows: i64,
    pub universe_value: Dec,
    pub included_rows: i64,
    pub included_value: Dec,
    /// Distinct entities counted, when the metric names its `member`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub included_entities: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceLineage {
    pub system: String,
    pub table: String,
    pub files: Vec<crate::run::files::FileFact>,
    pub columns: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lineage {
    pub definitions: Vec<DefinitionRef>,
    /// The optimized logical plan of the metric (for a ratio or derived
    /// metric, of its first part; every part's plan is under `plans`).
    pub plan: String,
    pub sources: Vec<SourceLineage>,
    /// The optimized logical plan of each compiled part, by metric.
    pub plans: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Engine {
    pub canon: String,
    pub datafusion: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// `false` when the period (or the as-of day) runs past what the data
    /// reaches: the number is to date, not the period's. Absent when true.
    /// Judged at every run, a cached result's too (`result::reach`).
    #[serde(default = "complete", skip_serializing_if = "is_complete")]
    pub complete: bool,
    /// When not complete: the instant the data reaches (the earliest last
    /// sync of the tables read, or now), in the reporting zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_through: Option<String>,
    pub rows: Vec<ResultRow>,
    /// Cohort metrics: the headline bridge.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bridge: Vec<BridgeLine>,
    pub exclusions: Vec<ExclusionTally>,
    pub tallies: Vec<Tally>,
    pub lineage: Lineage,
    pub quality: Vec<serde_json::Value>,
    /// The worst status of the input checks: pass, warn or error.
    pub quality_status: String,
    /// Explicit overrides the run was made with (e.g. `allow_stale`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<String>,
    /// Whether the definition is certified and its sign-off current, or a
    /// draft, or deprecated (and what replaces it); judged on every run,
    /// a cached result's included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<crate::lifecycle::Lifecycle>,
    /// The "now" freshness was judged against.
    pub now: String,
    pub fingerprint: String,
    /// Whether this result was computed now or served from the result cache.
    pub cache: CacheNote,
    pub engine: Engine,
    /// Wall time of this run (for a cache hit, of the lookup).
    pub elapsed_ms: u128,
}

/// How the result cache took part in a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CacheNote {
    /// `hit`: served from the cache without scanning; `miss`: computed and
    /// stored; `off`: computed, the cache bypassed (`--no-cache`).
    pub status: String,
    /// When the served result was computed (hits only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computed_at: Option<String>,
    /// How long computing it took then (hits only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computed_ms: Option<u128>,
}

impl CacheNote {
    pub fn off() -> CacheNote {
        CacheNote {
            status: "off".into(),
            computed_at: None,
            computed_ms: None,
        }
    }
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
