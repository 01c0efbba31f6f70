//! Serde types that mirror the YAML one to one.
//!
//! Nothing here interprets a definition: these types only say what may be
//! written. Unknown keys are rejected (`deny_unknown_fields`) so that a typo is
//! an error with a location rather than a silently ignored setting. Semantic
//! checks live in `validate`, which uses [`locate`] to point back at the
//! offending YAML node.

pub mod amounts;
pub mod limits;
pub mod load;
pub mod locate;

use serde::{Deserialize, Serialize};

/// `canon.yaml`: the company-wide settings every metric is computed under.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectSpec {
    pub name: String,
    /// IANA zone in which timestamps are assigned to days, months and periods.
    pub reporting_zone: String,
    /// Month (1-12) in which the fiscal year starts.
    #[serde(deserialize_with = "month_number")]
    pub fiscal_year_start_month: u32,
    /// `end` names a fiscal year by the calendar year in which it ends
    /// (FY2026 = Feb 2025 .. Jan 2026), `start` by the year in which it starts.
    #[serde(default = "default_fiscal_naming")]
    pub fiscal_year_named_by: FiscalNaming,
    pub base_currency: String,
    /// The company's own email and web domains (internal accounts and people).
    #[serde(default)]
    pub internal_domains: Vec<String>,
    /// Folder (relative to canon.yaml) or URL holding `<system>/<table>/*.parquet`.
    pub data_root: String,
    #[serde(default = "default_models_dir")]
    pub models: String,
    #[serde(default = "default_metrics_dir")]
    pub metrics: String,
    /// Defaults for every source table that does not set its own freshness.
    #[serde(default)]
    pub freshness: FreshnessSpec,
    /// Default of the volume gate for every source that does not set its own.
    #[serde(default)]
    pub volume: VolumeSpec,
    #[serde(default)]
    pub description: Option<String>,
    /// A pinned "now" (RFC 3339) for projects whose extracts were taken at a
    /// known moment, such as the committed sample; a real project leaves it
    /// unset and freshness is judged against the wall clock.
    #[serde(default)]
    pub clock: Option<String>,
    #[serde(default)]
    pub publish: Option<PublishSpec>,
    /// Folder of the result cache, relative to canon.yaml (default
    /// `.canon-cache`); `--cache-dir` or `CANON_CACHE_DIR` override it.
    #[serde(default)]
    pub cache_dir: Option<String>,
    /// How the engine may use the machine.
    #[serde(default)]
    pub engine: EngineSpec,
    /// Thresholds of the cross-system match rates and identity duplication
    /// rates (`quality::thresholds` holds the defaults).
    #[serde(default)]
    pub quality: QualitySpec,
    /// The file of sign-offs, relative to canon.yaml (default
    /// `signoffs.yaml`): who approved which closure of each certified metric.
    #[serde(default = "default_signoffs_file")]
    pub signoffs: String,
}

fn default_signoffs_file() -> String {
    "signoffs.yaml".into()
}

/// `signoffs.yaml`: one sign-off per metric, written by `canon signoff` and
/// reviewed with the definition change it approves.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SignoffFileSpec {
    #[serde(default)]
    pub signoffs: Vec<SignoffSpec>,
}

/// Who approved a metric's definition, when, and exactly what: the version
/// and the sha256 of its closure (`lineage::closure`). A definition whose
/// closure no longer hashes to this has a stale sign-off.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SignoffSpec {
    pub metric: String,
    pub version: u32,
    pub closure_sha256: String,
    pub by: String,
    /// RFC 3339.
    pub at: String,
}

/// canon.yaml `quality:`: when a rate of `canon check` warns. Each is a
/// share between 0 and 1; a missing one takes its default.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QualitySpec {
    /// A cross-system match rate below this warns.
    #[serde(default)]
    pub match_rate_warn_below: Option<f64>,
    /// Per identity rule, named `entity.link` (`billing_account.crm`), a
    /// threshold that replaces `match_rate_warn_below` for that rule.
    #[serde(default)]
    pub match_rate_warn_below_by_rule: std::collections::BTreeMap<String, f64>,
    /// An identity duplication rate above this warns.
    #[serde(default)]
    pub duplication_warn_above: Option<f64>,
    /// Which counted deals the won-deal match rate expects a subscription
    /// (a cross-system record) to name: SQL over the deal entity's fields.
    /// Missing: every counted deal.
    #[serde(default)]
    pub subscription_deals: Option<String>,
}

/// Engine settings of canon.yaml `engine:`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSpec {
    /// Memory for sorts, aggregates and joins (`2GiB`, `512MiB`); past it
    /// operators spill to disk or fail with a clear error. Default: no limit.
    #[serde(default)]
    pub memory_limit: Option<String>,
    /// Parallelism of a plan; default twice the machine's cores (see
    /// `run::session`).
    #[serde(default)]
    pub target_partitions: Option<usize>,
    /// The most buckets (period × grain) one request may ask for; a larger
    /// request is refused before planning, with the count and a coarser
    /// grain that fits. Default `catalog::DEFAULT_MAX_BUCKETS` (ten years
    /// of days).
    #[serde(default)]
    pub max_buckets: Option<u64>,
}

/// What `canon publish` computes when the command line does not say.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PublishSpec {
    /// Periods as `canon query --period` reads them.
    pub periods: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FiscalNaming {
    End,
    Start,
}

/// A month number, so that `march` or `-1` is refused saying what is
/// wanted rather than "expected u32" (the range is checked, and located,
/// with the calendar).
fn month_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    struct Visit;
    impl serde::de::Visitor<'_> for Visit {
        type Value = u32;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a month number, 1 (January) to 12 (December)")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u32, E> {
            u32::try_from(v)
                .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u32, E> {
            u32::try_from(v).map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
        }
    }
    d.deserialize_u32(Visit)
}

fn default_fiscal_naming() -> FiscalNaming {
    FiscalNaming::End
}
fn default_models_dir() -> String {
    "models".into()
}
fn default_metrics_dir() -> String {
    "metrics".into()
}

/// How stale a table may be before a run warns or refuses to certify.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FreshnessSpec {
    #[serde(default = "default_freshness_column")]
    pub column: String,
    #[serde(default = "default_warn_hours")]
    pub warn_after_hours: u32,
    #[serde(default = "default_error_hours")]
    pub error_after_hours: u32,
}

impl Default for FreshnessSpec {
    fn default() -> Self {
        FreshnessSpec {
            column: default_freshness_column(),
            warn_after_hours: default_warn_hours(),
            error_after_hours: default_error_hours(),
        }
    }
}

fn default_freshness_column() -> String {
    "_fivetran_synced".into()
}
fn default_warn_hours() -> u32 {
    24
}
fn default_error_hours() -> u32 {
    48
}

/// `models/<system>.yaml`: one operational system's extract tables and the
/// business entities it is the system of record for.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFileSpec {
    /// Folder name of the system under the data root (`crm`, `billing`, ...).
    pub system: String,
    /// The product behind it (`Salesforce`), for readers.
    pub label: String,
    /// Team answerable for the extracts of this system.
    pub owner: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub sources: Vec<SourceSpec>,
    #[serde(default)]
    pub entities: Vec<EntitySpec>,
}

/// A raw extract table exactly as the contract gives it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    pub name: String,
    /// Folder under the data root holding the table's Parquet part files.
    pub path: String,
    pub description: String,
    #[serde(default)]
    pub owner: Option<String>,
    pub primary_key: Vec<String>,
    /// The main date column: files are written sorted by it, so period filters prune.
    #[serde(default)]
    pub sort_column: Option<String>,
    #[serde(default)]
    pub freshness: Option<FreshnessSpec>,
    /// How far the table's row count may fall from the last count canon
    /// saw before it warns (default: canon.yaml's `volume`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeSpec>,
    pub columns: Vec<ColumnSpec>,
}

/// The volume gate (quality::volume): a table whose row count falls by more
/// than `max_drop` (a fraction, 0.2 = 20 %) from the last count canon saw
/// warns in every query that reads it and blocks `canon publish`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VolumeSpec {
    #[serde(default = "default_max_drop")]
    pub max_drop: f64,
}

impl Default for VolumeSpec {
    fn default() -> Self {
        VolumeSpec {
            max_drop: default_max_drop(),
        }
    }
}

fn default_max_drop() -> f64 {
    0.2
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ColumnType,
    #[serde(default)]
    pub nullable: bool,
    #[serde(default)]
    pub description: Option<String>,
    /// The values the column may hold (an enumerated text column: stages,
    /// statuses, …). A value outside them is an error in `canon check` and
    /// blocks the metrics that read the column (quality::domains): a new
    /// stage would otherwise fall silently outside every filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_values: Option<AcceptedValues>,
}

/// A column's `accepted_values` as written. YAML reads an unquoted `null`,
/// `true` or `05` as a null, a boolean or the number 5, which a string
/// field would silently take as the text "null", "true" or "5": each entry
/// is kept with what it was, and the catalog refuses the ones that are not
/// text (quoted, they are).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AcceptedValues {
    /// Every entry, in the order written (its index locates it).
    pub written: Vec<AcceptedValue>,
}

/// One entry of `accepted_values`.
#[derive(Debug, Clone, PartialEq)]
pub enum AcceptedValue {
    Text(String),
    /// A scalar that is not text: what it is (`null`, `a number`,
    /// `a boolean`) and how YAML read it.
    NotText {
        kind: &'static str,
        read: String,
    },
}

impl AcceptedValues {
    /// The text values: what the domain check compares with (the catalog
    /// refuses a list with anything else in it).
    pub fn texts(&self) -> Vec<String> {
        self.written
            .iter()
            .filter_map(|v| match v {
                AcceptedValue::Text(t) => Some(t.clone()),
                AcceptedValue::NotText { .. } => None,
            })
            .collect()
    }
}

impl Serialize for AcceptedValues {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.written.len()))?;
        for v in &self.written {
            match v {
                AcceptedValue::Text(t) => seq.serialize_element(t)?,
                AcceptedValue::NotText { read, .. } => seq.serialize_element(read)?,
            }
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for AcceptedValues {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let written = Vec::<AcceptedValue>::deserialize(d)?;
        Ok(AcceptedValues { written })
    }
}

impl<'de> Deserialize<'de> for AcceptedValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = AcceptedValue;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a value of the column, as text (a list of values cannot be nested)")
            }
            fn visit_str<E: serde::de::Error>(
                self,
                v: &str,
            ) -> std::result::Result<Self::Value, E> {
                Ok(AcceptedValue::Text(v.to_string()))
            }
            fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<Self::Value, E> {
                Ok(AcceptedValue::NotText {
                    kind: "null",
                    read: "null".into(),
                })
            }
            fn visit_none<E: serde::de::Error>(self) -> std::result::Result<Self::Value, E> {
                self.visit_unit()
            }
            fn visit_bool<E: serde::de::Error>(
                self,
                v: bool,
            ) -> std::result::Result<Self::Value, E> {
                Ok(AcceptedValue::NotText {
                    kind: "a boolean",
                    read: v.to_string(),
                })
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<Self::Value, E> {
                Ok(AcceptedValue::NotText {
                    kind: "a number",
                    read: v.to_string(),
                })
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<Self::Value, E> {
                Ok(AcceptedValue::NotText {
                    kind: "a number",
                    read: v.to_string(),
                })
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> std::result::Result<Self::Value, E> {
                Ok(AcceptedValue::NotText {
                    kind: "a number",
                    read: v.to_string(),
                })
            }
        }
        d.deserialize_any(Visit)
    }
}

/// The contract's column types (extracts.md, "Types").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    String,
    Bool,
    Int,
    Double,
    Date,
    Ts,
    Money,
    Rate,
}

impl ColumnType {
    pub fn arrow(self) -> datafusion::arrow::datatypes::DataType {
        use datafusion::arrow::datatypes::{DataType, TimeUnit};
        match self {
            ColumnType::String => DataType::Utf8,
            ColumnType::Bool => DataType::Boolean,
            ColumnType::Int => DataType::Int64,
            ColumnType::Double => DataType::Float64,
            ColumnType::Date => DataType::Date32,
            ColumnType::Ts => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            ColumnType::Money => DataType::Decimal128(18, 2),
            ColumnType::Rate => DataType::Decimal128(18, 6),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ColumnType::String => "string",
            ColumnType::Bool => "bool",
            ColumnType::Int => "int",
            ColumnType::Double => "double",
            ColumnType::Date => "date",
            ColumnType::Ts => "ts",
            ColumnType::Money => "money",
            ColumnType::Rate => "rate",
        }
    }
}

/// A business object (`deal`, `account`, ...) mapped from one source table.
///
/// Metrics are written over entities only; moving to another vendor is a new
/// mapping here with every metric unchanged.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EntitySpec {
    pub name: String,
    pub description: String,
    /// The source table (of this model file) the entity is mapped from.
    pub source: String,
    /// The field that identifies one entity.
    pub key: String,
    pub fields: Vec<FieldSpec>,
    /// Foreign keys to other entities, usable in metrics as `<link>.<field>`.
    #[serde(default)]
    pub links: Vec<LinkSpec>,
    /// Identity rule: records merged away name their survivor in this field;
    /// links to this entity follow the chain to the survivor.
    #[serde(default)]
    pub merged_into: Option<String>,
    /// Identity rule from a merge audit: another entity's rows say which
    /// record was merged into which; chains are followed to the survivor.
    #[serde(default)]
    pub merges: Option<MergeAuditSpec>,
    /// Validity intervals `[from, to)` of the entity's rows per key: with
    /// `overlap: exclusive` (a rate in force per currency and day) every
    /// query that reads the entity gates on no two rows of one key
    /// overlapping, since a lookup would then match both and count the row
    /// it converts twice.
    #[serde(default)]
    pub intervals: Option<IntervalsSpec>,
    /// Fields other than the key that hold one value per row among some
    /// rows (one latest version per subscription): every query that reads
    /// the entity gates on them, since a second such row carries its own
    /// rows (charges) and a metric would count both.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unique: Vec<UniqueSpec>,
}

/// `unique: [{field: original_id, among: "is_latest_version AND NOT is_deleted", reason: …}]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UniqueSpec {
    /// The field no two of the rows may share.
    pub field: String,
    /// Which rows (SQL over the entity's own fields); all rows when absent.
    #[serde(default)]
    pub among: Option<String>,
    /// Why, as the gate's failure says it.
    pub reason: String,
}

/// `intervals: {from: valid_from, to: valid_to, overlap: exclusive}`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IntervalsSpec {
    /// The field where a row starts to hold (inclusive).
    pub from: String,
    /// The field where it stops holding (exclusive); a missing value is open.
    pub to: String,
    pub overlap: Overlap,
}

/// Whether two rows of one key may hold at the same time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// At most one row per key at any instant (gated).
    Exclusive,
    /// Rows of one key may overlap by design (charge segments of versions).
    Allowed,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MergeAuditSpec {
    /// The entity holding one row per merge.
    pub entity: String,
    /// Its field naming the record merged away.
    pub from: String,
    /// Its field naming the record it was merged into.
    pub into: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    pub name: String,
    /// SQL expression over the source's columns; defaults to the column of the same name.
    #[serde(default)]
    pub expr: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    /// The name metrics use as a qualifier (`account` in `account.industry`).
    pub name: String,
    pub entity: String,
    /// This entity's field holding the other entity's key.
    pub field: String,
    /// Every row whose field is set must find a record (a revenue line's
    /// accounting period, which places it in time): gated in every query
    /// that reads the link (`quality::required_links`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
}

/// `metrics/<domain>.yaml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricFileSpec {
    pub domain: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Exclusions shared by the metrics of the whole project, by name.
    #[serde(default)]
    pub exclusions: Vec<ExclusionSpec>,
    #[serde(default)]
    pub metrics: Vec<MetricSpec>,
    #[serde(default)]
    pub reconciliations: Vec<ReconciliationSpec>,
}

/// Two governed quantities from two systems, matched on a key, with a
/// bridge whose lines sum exactly from one to the other.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReconciliationSpec {
    pub name: String,
    pub label: String,
    pub version: u32,
    pub status: MetricStatus,
    pub owner: String,
    pub description: String,
    /// The governed flow metric on the booking side (B), computed per deal.
    pub bookings: String,
    /// The governed metric on the revenue side (R), computed per line.
    pub revenue: String,
    /// How a revenue line belongs to a deal, in order: the first rule that
    /// yields a deal wins.
    pub links: Vec<RevenueLinkSpec>,
    /// The bridge categories, in order (names are the kind's; labels and
    /// descriptions are for readers).
    pub lines: Vec<BridgeLineSpec>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RevenueLinkSpec {
    pub name: String,
    /// An expression over the revenue entity naming the deal.
    #[serde(default)]
    pub expr: Option<String>,
    /// Or a lookup through another entity.
    #[serde(default)]
    pub lookup: Option<LookupSpec>,
}

/// `from` (a field of the revenue entity) matches `key` of `entity`, whose
/// `value` names the deal.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LookupSpec {
    pub entity: String,
    pub key: String,
    pub from: String,
    pub value: String,
    /// Which records of `entity` may name the deal (SQL over its fields;
    /// all when absent): a deleted subscription version names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

/// One line of a bridge, as finance declares it: what it holds and with
/// which sign it enters the walk from the start (B) to the end (R). The
/// engine computes the bridge from these declarations and refuses one that
/// does not tie out (see `catalog::lines`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeLineSpec {
    pub name: String,
    pub label: String,
    /// `'-'` subtracts what the line holds, `'+'` adds it, `'±'` adds it as
    /// it is, of either sign. The first line (B) and the last (R) have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign: Option<BridgeSign>,
    /// The amounts the line holds, from the kind's closed vocabulary: one
    /// name or a list, summed.
    pub holds: BridgeHolds,
    #[serde(default)]
    pub description: Option<String>,
}

/// How a bridge line enters the walk from B to R.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BridgeSign {
    Plus,
    Minus,
    /// Added as it is: the amount may be of either sign.
    Either,
}

impl BridgeSign {
    pub fn symbol(self) -> &'static str {
        match self {
            BridgeSign::Plus => "+",
            BridgeSign::Minus => "-",
            BridgeSign::Either => "±",
        }
    }

    /// The factor the held amount is multiplied by.
    pub fn factor(self) -> i32 {
        match self {
            BridgeSign::Minus => -1,
            BridgeSign::Plus | BridgeSign::Either => 1,
        }
    }
}

impl Serialize for BridgeSign {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.symbol())
    }
}

impl<'de> Deserialize<'de> for BridgeSign {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = BridgeSign;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a sign, quoted: '+', '-' or '±'")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<BridgeSign, E> {
                match v.trim() {
                    "+" => Ok(BridgeSign::Plus),
                    "-" | "−" => Ok(BridgeSign::Minus),
                    "±" | "+/-" => Ok(BridgeSign::Either),
                    other => Err(E::custom(format!(
                        "`{other}` is not a sign: write '+', '-' or '±' (quoted)"
                    ))),
                }
            }
        }
        d.deserialize_str(Visitor)
    }
}

/// One amount or several, as written.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum BridgeHolds {
    One(String),
    Many(Vec<String>),
}

/// Read by hand rather than `untagged`, whose error ("data did not match any
/// variant of untagged enum") says nothing of what `holds` takes.
impl<'de> Deserialize<'de> for BridgeHolds {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = BridgeHolds;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(
                    f,
                    "holds: an amount name or a list of amount names, one of {}",
                    amounts::Amount::names().join(", ")
                )
            }
            fn visit_str<E: serde::de::Error>(
                self,
                v: &str,
            ) -> std::result::Result<Self::Value, E> {
                Ok(BridgeHolds::One(v.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                let mut names = Vec::new();
                while let Some(v) = seq.next_element::<serde_yaml::Value>()? {
                    match v {
                        serde_yaml::Value::String(s) => names.push(s),
                        other => {
                            return Err(serde::de::Error::invalid_type(unexpected(&other), &self));
                        }
                    }
                }
                Ok(BridgeHolds::Many(names))
            }
        }
        /// What a list entry that is not a name was, for the error.
        fn unexpected(v: &serde_yaml::Value) -> serde::de::Unexpected<'_> {
            use serde::de::Unexpected;
            match v {
                serde_yaml::Value::Null => Unexpected::Unit,
                serde_yaml::Value::Bool(b) => Unexpected::Bool(*b),
                serde_yaml::Value::Number(n) => {
                    if let Some(i) = n.as_i64() {
                        Unexpected::Signed(i)
                    } else if let Some(f) = n.as_f64() {
                        Unexpected::Float(f)
                    } else {
                        Unexpected::Other("a number")
                    }
                }
                serde_yaml::Value::Sequence(_) => Unexpected::Seq,
                serde_yaml::Value::Mapping(_) => Unexpected::Map,
                _ => Unexpected::Other("a tagged value"),
            }
        }
        d.deserialize_any(Visit)
    }
}

impl BridgeHolds {
    /// The names, with whether they were written as a list (for locating one).
    pub fn names(&self) -> (Vec<&str>, bool) {
        match self {
            BridgeHolds::One(s) => (vec![s.as_str()], false),
            BridgeHolds::Many(v) => (v.iter().map(String::as_str).collect(), true),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    Simple,
    Ratio,
    Derived,
    Snapshot,
    Cohort,
    Conversion,
}

impl MetricKind {
    /// Whether the kind's result has the shape of a simple aggregate, so it
    /// can be a ratio's or derived metric's part. A property of the kind, so
    /// validation (catalog) and planning (compile) read it from here.
    pub fn is_aggregate(self) -> bool {
        matches!(
            self,
            MetricKind::Simple | MetricKind::Snapshot | MetricKind::Conversion
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            MetricKind::Simple => "simple",
            MetricKind::Ratio => "ratio",
            MetricKind::Derived => "derived",
            MetricKind::Snapshot => "snapshot",
            MetricKind::Cohort => "cohort",
            MetricKind::Conversion => "conversion",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricStatus {
    Draft,
    Certified,
    Deprecated,
}

impl MetricStatus {
    pub fn name(self) -> &'static str {
        match self {
            MetricStatus::Draft => "draft",
            MetricStatus::Certified => "certified",
            MetricStatus::Deprecated => "deprecated",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSpec {
    pub name: String,
    pub label: String,
    pub kind: MetricKind,
    pub version: u32,
    pub status: MetricStatus,
    /// A deprecated metric's replacement, which queries of it name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<String>,
    pub owner: String,
    pub description: String,
    /// The system of record whose entities the metric reads (`crm`, `finance`, ...).
    pub system: String,
    /// `USD` style currency unit, `count`, `days`, `ratio`.
    pub unit: String,

    // --- simple ---
    #[serde(default)]
    pub entity: Option<String>,
    /// The field (date or timestamp, possibly `<link>.<field>`) that places a row in a period.
    #[serde(default)]
    pub time: Option<String>,
    /// Which rows of the entity the metric is about (its universe, before exclusions).
    #[serde(default)]
    pub filter: Option<String>,
    #[serde(default)]
    pub measure: Option<MeasureSpec>,
    /// Periods must be whole accounting periods (finance metrics).
    #[serde(default)]
    pub whole_accounting_periods: bool,

    // --- snapshot ---
    /// State as of D from history rows: the latest row on or before D.
    #[serde(default)]
    pub history: Option<HistorySpec>,
    /// State as of D from validity intervals: `from <= D < to` (a missing
    /// `to` is open-ended).
    #[serde(default)]
    pub valid: Option<ValiditySpec>,

    // --- conversion ---
    #[serde(default)]
    pub conversion: Option<ConversionSpec>,

    // --- cohort ---
    #[serde(default)]
    pub cohort: Option<CohortSpec>,

    // --- ratio ---
    #[serde(default)]
    pub numerator: Option<String>,
    #[serde(default)]
    pub denominator: Option<String>,

    // --- derived ---
    /// SQL expression over other metrics by name.
    #[serde(default)]
    pub expr: Option<String>,

    /// In order: a row matching several is counted under the first.
    #[serde(default)]
    pub exclusions: Vec<ExclusionRef>,
    /// Approved slices, the only dimensions `--by` accepts.
    #[serde(default)]
    pub slices: Vec<SliceSpec>,
    /// The business entity each row belongs to (e.g. the customer of an ARR
    /// charge), so exclusions also report how many entities they removed.
    #[serde(default)]
    pub member: Option<String>,
    /// Decimal places of the presented value (ratios: 6).
    #[serde(default)]
    pub scale: Option<u32>,
}

/// Where a snapshot metric's state comes from when it is kept as history.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HistorySpec {
    /// The history entity (one row per change).
    pub entity: String,
    /// Its field holding the key of the metric's entity.
    pub key: String,
    /// Its field saying from when the row is the state (date or timestamp).
    pub valid_from: String,
    /// Which history rows are states at all (e.g. not deleted).
    #[serde(default)]
    pub filter: Option<String>,
    /// Expression over the metric's entity (and links) whose value is the
    /// history's key; default: the entity's key.
    #[serde(default)]
    pub on: Option<String>,
    /// Qualifier of the state's fields in the metric (default `state`).
    #[serde(default = "default_state_name")]
    pub name: String,
}

fn default_state_name() -> String {
    "state".into()
}

/// Members (persons) reaching a stage in a period, and whether they reach a
/// later stage within a window.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConversionSpec {
    /// Expression naming the member an event belongs to (e.g. `contact.person_id`).
    pub member: String,
    /// The event's instant.
    pub at: String,
    /// Events that reach the stage; a member's first such moment places it
    /// in a period (a skipped stage inherits the later moment).
    pub reaches: String,
    /// Events of the next stage; with `within_days`, members whose first such
    /// moment comes within the window after their first `reaches` moment convert.
    #[serde(default)]
    pub then: Option<String>,
    #[serde(default)]
    pub within_days: Option<u32>,
    /// `reached` counts members reaching the stage; `converted` those of them
    /// that converted within the window.
    pub count: ConversionCount,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversionCount {
    Reached,
    Converted,
}

/// Retention of the same entities between T0 (twelve months before T) and T.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CohortSpec {
    /// The snapshot metric valued at both instants (at T's rates).
    pub of: String,
    /// The slice of that metric naming a cohort member (e.g. `customer`).
    pub key: String,
    /// What the metric reports.
    pub value: CohortValue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CohortValue {
    /// Σ cohort value at T / Σ cohort value at T0.
    NetRetention,
    /// Σ cohort min(value at T, value at T0) / Σ value at T0.
    GrossRetention,
    /// Cohort members at 0 at T / cohort members.
    LogoChurn,
    /// 1 − gross retention.
    GrossChurn,
}

/// Validity interval of a snapshot metric's rows.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ValiditySpec {
    pub from: String,
    /// Exclusive; null means still valid.
    #[serde(default)]
    pub to: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    Sum,
    Count,
    Avg,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MeasureSpec {
    pub agg: Aggregation,
    /// SQL over the entity's fields; omitted for `count`.
    #[serde(default)]
    pub expr: Option<String>,
    /// Converts each row to the base currency: the field naming the row's
    /// currency and the field naming the date whose rate applies.
    #[serde(default)]
    pub currency: Option<CurrencySpec>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CurrencySpec {
    pub field: String,
    /// The field naming the date whose rate applies, or `as_of` for the
    /// snapshot's date (constant currency at D).
    pub rate_date: String,
}

/// An exclusion used by a metric: a shared one by name, or written inline.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ExclusionRef {
    Named(String),
    Inline(ExclusionSpec),
}

/// The label a conversion gives its members that are nobody (a null member
/// no declared exclusion removed), so the run stage can block the result:
/// reserved, no exclusion may be named so.
pub const NO_MEMBER: &str = "(no member)";

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExclusionSpec {
    pub name: String,
    pub reason: String,
    /// SQL predicate over the metric's entity and its links; true = excluded.
    pub when: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum SliceSpec {
    Field(String),
    Named {
        name: String,
        expr: String,
        #[serde(default)]
        description: Option<String>,
    },
}

impl SliceSpec {
    pub fn name(&self) -> &str {
        match self {
            SliceSpec::Field(f) => f,
            SliceSpec::Named { name, .. } => name,
        }
    }
    pub fn expr(&self) -> &str {
        match self {
            SliceSpec::Field(f) => f,
            SliceSpec::Named { expr, .. } => expr,
        }
    }
}
