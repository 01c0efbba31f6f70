//! A definition test file as written: `<metrics folder>/tests/*.yaml`, a
//! small fixture company and the values its metrics must give over it.
//!
//! ```yaml
//! description: Deals of one quarter, worked by hand.
//! now: 2026-01-02T08:00:00Z        # freshness is judged at this instant
//! company:
//!   defaults: {is_deleted: false, _fivetran_synced: 2026-01-02T06:00:00Z}
//!   tables:
//!     crm/account:
//!       csv: company/crm_account.csv    # relative to this file
//!     crm/opportunity:
//!       defaults: {currency_iso_code: USD}
//!       rows:
//!         - {id: D1, account_id: A1, amount: "1000.00", close_date: 2025-03-10}
//! tests:
//!   - metric: bookings
//!     period: FY2026-Q1
//!     expect:
//!       value: "1000.00"
//!       exclusions: {deleted: {rows: 0, value: "0.00"}}
//!       tallies: {universe_rows: 1}
//!   - reconciliation: bookings_to_revenue
//!     period: FY2026-Q1
//!     expect: {check: "0.00", bridge: {bookings: "1000.00"}}
//! ```
//!
//! A table the company leaves out is empty; a column a row leaves out takes
//! the table's default, then the company's, else is null (refused when the
//! model says the column is not nullable).

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFileSpec {
    #[serde(default)]
    pub description: Option<String>,
    /// The instant freshness is judged at (RFC 3339); default canon.yaml's
    /// `clock`, else the wall clock.
    #[serde(default)]
    pub now: Option<String>,
    pub company: CompanySpec,
    pub tests: Vec<TestSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompanySpec {
    /// Column values every table's rows take when they leave them out.
    #[serde(default)]
    pub defaults: BTreeMap<String, serde_yaml::Value>,
    /// By `system/table`.
    #[serde(default)]
    pub tables: BTreeMap<String, TableSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    #[serde(default)]
    pub defaults: BTreeMap<String, serde_yaml::Value>,
    #[serde(default)]
    pub rows: Vec<BTreeMap<String, serde_yaml::Value>>,
    /// A CSV file (header row, `,`-separated, `"` quoting; an empty cell is
    /// null), relative to the test file; its rows come before `rows`.
    #[serde(default)]
    pub csv: Option<String>,
}

/// One expectation: a metric or a reconciliation for a request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSpec {
    /// What the report calls it (default: the metric and the request).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub metric: Option<String>,
    #[serde(default)]
    pub reconciliation: Option<String>,
    #[serde(default)]
    pub period: Option<String>,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub as_of: Option<String>,
    #[serde(default)]
    pub grain: Option<String>,
    #[serde(default)]
    pub by: Vec<String>,
    pub expect: ExpectSpec,
}

/// What the result must hold; what is left out is not checked.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectSpec {
    /// The headline (a decimal string, or null for no value).
    #[serde(default, deserialize_with = "present")]
    pub value: Option<serde_yaml::Value>,
    /// By exclusion name (`part/name` for a ratio's or derived metric's part).
    #[serde(default)]
    pub exclusions: BTreeMap<String, ExclusionExpect>,
    /// Fields of the metric's own tally: universe_rows, universe_value,
    /// included_rows, included_value, included_entities; a mapping under a
    /// tally's label checks that tally (a cohort's instant at T).
    #[serde(default)]
    pub tallies: BTreeMap<String, serde_yaml::Value>,
    /// Every row of the result (period, slices, value), in any order.
    #[serde(default)]
    pub rows: Option<Vec<BTreeMap<String, serde_yaml::Value>>>,
    /// A reconciliation's lines, or a cohort metric's bridge, by name.
    #[serde(default)]
    pub bridge: BTreeMap<String, serde_yaml::Value>,
    /// A reconciliation's check.
    #[serde(default, deserialize_with = "present")]
    pub check: Option<serde_yaml::Value>,
    /// The run must fail with an error containing this text.
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExclusionExpect {
    #[serde(default)]
    pub rows: Option<i64>,
    #[serde(default, deserialize_with = "present")]
    pub value: Option<serde_yaml::Value>,
}

/// A key that is given is `Some`, even when its value is null (`value:
/// null` expects no value; a missing key checks nothing).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_yaml::Value>, D::Error> {
    serde_yaml::Value::deserialize(d).map(Some)
}

impl ExpectSpec {
    /// Whether it expects anything at all.
    pub fn is_empty(&self) -> bool {
        self.value.is_none()
            && self.exclusions.is_empty()
            && self.tallies.is_empty()
            && self.rows.is_none()
            && self.bridge.is_empty()
            && self.check.is_none()
            && self.error.is_none()
    }
}
