//! The simulated company in memory: one compact row type per extract table.
//!
//! Rows refer to each other by index; ids are formatted only when a table is
//! written, so the world stays small even at large scales.

use std::fmt::Write;

use super::rng::mix64;

pub const STAGES: [&str; 6] = [
    "Prospecting",
    "Discovery",
    "Proposal",
    "Negotiation",
    "Closed Won",
    "Closed Lost",
];
pub const WON: u8 = 4;
pub const LOST: u8 = 5;
/// Default probability (percent) of each stage.
pub const STAGE_PROBABILITY: [f64; 6] = [10.0, 20.0, 50.0, 75.0, 100.0, 0.0];
pub const FORECAST: [&str; 5] = ["Pipeline", "BestCase", "Commit", "Closed", "Omitted"];
pub const OMITTED: u8 = 4;
/// Default forecast category of each stage.
pub const STAGE_FORECAST: [u8; 6] = [0, 0, 1, 2, 3, 4];

pub const DEAL_TYPES: [&str; 3] = ["New Business", "Expansion", "Renewal"];
pub const NEW_BUSINESS: u8 = 0;
pub const EXPANSION: u8 = 1;
pub const RENEWAL: u8 = 2;

pub const CURRENCIES: [&str; 4] = ["USD", "EUR", "GBP", "JPY"];
pub const USD: u8 = 0;
pub const EUR: u8 = 1;
pub const GBP: u8 = 2;
pub const JPY: u8 = 3;

pub const LIFECYCLE: [&str; 8] = [
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
];
pub const SUBSCRIBER: u8 = 0;
pub const LEAD: u8 = 1;
pub const MQL: u8 = 2;
pub const SQL: u8 = 3;
pub const OPPORTUNITY: u8 = 4;
pub const CUSTOMER: u8 = 5;
pub const EVANGELIST: u8 = 6;
pub const OTHER: u8 = 7;
pub const LIFECYCLE_SOURCES: [&str; 5] = ["FORM", "IMPORT", "CRM_UI", "WORKFLOW", "INTEGRATION"];

pub const SUB_STATUS: [&str; 3] = ["Active", "Cancelled", "Expired"];
pub const ACTIVE: u8 = 0;
pub const CANCELLED: u8 = 1;
pub const EXPIRED: u8 = 2;

pub const CHARGE_TYPES: [&str; 3] = ["Recurring", "OneTime", "Usage"];
pub const RECURRING: u8 = 0;
pub const ONE_TIME: u8 = 1;
pub const USAGE: u8 = 2;

pub const ITEM_TYPES: [&str; 3] = ["Subscription", "Services", "Usage"];
pub const ITEM_SUBSCRIPTION: u8 = 0;
pub const ITEM_SERVICES: u8 = 1;
pub const ITEM_USAGE: u8 = 2;

pub const TICKET_STATUS: [&str; 6] = ["new", "open", "pending", "hold", "solved", "closed"];
pub const PRIORITIES: [&str; 4] = ["low", "normal", "high", "urgent"];
pub const HEALTH_STATUS: [&str; 3] = ["Green", "Yellow", "Red"];

// ---------------------------------------------------------------- ids

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// An 18-character Salesforce-style id: key prefix, pod, 9 base-62 digits of
/// the record number and a 3-character suffix.
pub fn sf_id(out: &mut String, prefix: &str, n: u64) {
    out.push_str(prefix);
    out.push_str("8d0");
    let mut digits = [b'0'; 9];
    let mut v = n;
    for slot in digits.iter_mut().rev() {
        *slot = BASE62[(v % 62) as usize];
        v /= 62;
    }
    out.push_str(std::str::from_utf8(&digits).expect("ascii"));
    let mut h = mix64(n ^ (prefix.as_bytes()[2] as u64) << 56);
    for _ in 0..3 {
        out.push(BASE62[(h % 26 + 10) as usize] as char);
        h /= 26;
    }
}

#[cfg(test)]
pub fn sf_id_string(prefix: &str, n: u64) -> String {
    let mut s = String::with_capacity(18);
    sf_id(&mut s, prefix, n);
    s
}

pub const ACCOUNT_PREFIX: &str = "001";
pub const USER_PREFIX: &str = "005";
pub const OPP_PREFIX: &str = "006";
pub const HISTORY_PREFIX: &str = "008";

/// Salesforce record numbers of accounts / deals that the CRM never had (ids
/// other systems carry for records deleted for good).
pub const UNKNOWN_BASE: u64 = 900_000_000;

/// A 32-hex-digit Zuora-style id; `kind` keeps the id spaces apart.
pub fn zuora_id(out: &mut String, kind: u64, n: u64) {
    let _ = write!(
        out,
        "2c92c0f8{:08x}{:016x}",
        mix64(kind) as u32,
        mix64((kind << 40) | n)
    );
}

pub const Z_ACCOUNT: u64 = 1;
pub const Z_SUBSCRIPTION: u64 = 2;
pub const Z_CHARGE: u64 = 3;

// ---------------------------------------------------------------- crm

#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub email: String,
    pub department: Option<&'static str>,
    pub active: bool,
}

#[derive(Debug, Clone)]
pub struct Account {
    pub name: String,
    pub typ: &'static str,
    pub parent: Option<u32>,
    pub master: Option<u32>,
    pub owner: u32,
    pub industry: Option<&'static str>,
    pub country: Option<&'static str>,
    pub website: Option<String>,
    pub created: i64,
    pub deleted: bool,
}

#[derive(Debug, Clone)]
pub struct Opp {
    pub account: u32,
    pub owner: u32,
    pub name: String,
    pub typ: u8,
    pub stage: u8,
    pub forecast: u8,
    pub probability: f64,
    pub amount: Option<i64>,
    pub currency: u8,
    pub close: i32,
    pub created: i64,
    pub deleted: bool,
    pub lead_source: Option<&'static str>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hist {
    pub id: u32,
    pub opp: u32,
    pub ts: i64,
    pub stage: u8,
    pub amount: Option<i64>,
    pub close: i32,
    pub probability: f64,
    pub forecast: u8,
}

#[derive(Debug, Clone, Copy)]
pub struct RateRow {
    pub currency: u8,
    pub rate: i64,
    pub start: i32,
    pub next: i32,
}

// ---------------------------------------------------------------- marketing

#[derive(Debug, Clone)]
pub struct Contact {
    pub id: i64,
    pub email: Option<String>,
    pub created: i64,
    pub stage: Option<u8>,
    pub deleted: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct Merge {
    pub canonical: i64,
    pub merged: i64,
    pub ts: i64,
}

#[derive(Debug, Clone, Copy)]
pub struct Life {
    pub contact: i64,
    pub value: u8,
    pub ts: i64,
    pub source: Option<u8>,
}

// ---------------------------------------------------------------- billing

/// A reference from another system to a CRM account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CrmRef {
    Account(u32),
    /// An id the CRM does not have.
    Unknown(u32),
}

pub fn crm_ref_id(out: &mut String, r: CrmRef) {
    match r {
        CrmRef::Account(a) => sf_id(out, ACCOUNT_PREFIX, a as u64 + 1),
        CrmRef::Unknown(k) => sf_id(out, ACCOUNT_PREFIX, UNKNOWN_BASE + k as u64),
    }
}

#[derive(Debug, Clone)]
pub struct BillAccount {
    pub name: String,
    pub crm: Option<CrmRef>,
    pub currency: u8,
    pub active: bool,
    pub created: i64,
    pub deleted: bool,
}

#[derive(Debug, Clone)]
pub struct SubVersion {
    pub id: u32,
    pub bill: u32,
    pub number: u32,
    pub version: u32,
    pub latest: bool,
    pub original: u32,
    pub status: u8,
    pub start: i32,
    pub end: Option<i32>,
    pub term_start: i32,
    pub term_end: Option<i32>,
    pub cancelled: Option<i32>,
    pub opp: Option<u32>,
    pub deleted: bool,
}

#[derive(Debug, Clone)]
pub struct Charge {
    pub id: u32,
    pub sub: u32,
    pub name: &'static str,
    pub charge_type: u8,
    pub start: i32,
    pub end: Option<i32>,
    pub mrr: i64,
    pub tcv: i64,
    pub currency: u8,
    pub deleted: bool,
}

// ---------------------------------------------------------------- finance

#[derive(Debug, Clone)]
pub struct Period {
    pub id: i64,
    pub name: String,
    pub start: i32,
    pub end: i32,
    pub fiscal_year: i64,
    pub fiscal_quarter: i64,
    pub closed: bool,
}

/// A deal reference from finance: a CRM deal, or an id the CRM does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OppRef {
    Opp(u32),
    Unknown(u32),
}

pub fn opp_ref_id(out: &mut String, r: OppRef) {
    match r {
        OppRef::Opp(o) => sf_id(out, OPP_PREFIX, o as u64 + 1),
        OppRef::Unknown(k) => sf_id(out, OPP_PREFIX, UNKNOWN_BASE + k as u64),
    }
}

#[derive(Debug, Clone, Copy)]
pub struct RevLine {
    pub id: u32,
    pub plan: u32,
    pub period: i64,
    pub amount: i64,
    pub transaction_amount: i64,
    pub currency: u8,
    pub item: u8,
    pub opp: Option<OppRef>,
    /// The billing subscription's original (version 1) id number.
    pub sub: Option<u32>,
    pub recognized: bool,
    pub deleted: bool,
}

// ---------------------------------------------------------------- support, cs

#[derive(Debug, Clone)]
pub struct Org {
    pub id: i64,
    pub name: String,
    pub external: Option<CrmRef>,
    pub created: i64,
    pub deleted: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    pub id: i64,
    pub org: Option<i64>,
    pub requester: i64,
    pub status: u8,
    pub priority: Option<u8>,
    pub created: i64,
    pub solved: Option<i64>,
    pub deleted: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct Health {
    pub account: Option<CrmRef>,
    pub score: i64,
    pub status: u8,
    pub date: i32,
}

/// Everything the generator writes.
#[derive(Debug, Default)]
pub struct World {
    pub users: Vec<User>,
    pub accounts: Vec<Account>,
    pub opps: Vec<Opp>,
    pub hist: Vec<Hist>,
    pub rates: Vec<RateRow>,
    pub contacts: Vec<Contact>,
    pub merges: Vec<Merge>,
    pub life: Vec<Life>,
    pub bill_accounts: Vec<BillAccount>,
    pub subs: Vec<SubVersion>,
    pub charges: Vec<Charge>,
    pub periods: Vec<Period>,
    pub lines: Vec<RevLine>,
    pub orgs: Vec<Org>,
    pub tickets: Vec<Ticket>,
    pub health: Vec<Health>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_their_shapes() {
        let id = sf_id_string(ACCOUNT_PREFIX, 1);
        assert_eq!(id.len(), 18);
        assert!(id.starts_with("001"));
        assert_ne!(id, sf_id_string(ACCOUNT_PREFIX, 2));
        let mut z = String::new();
        zuora_id(&mut z, Z_SUBSCRIPTION, 7);
        assert_eq!(z.len(), 32);
    }
}
