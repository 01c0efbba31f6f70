//! Customer metrics (billing, customers resolved to the CRM) on the fixture
//! company, through the real binary, with every number worked out by hand.

use crate::common::*;
use serde_json::Value;

/// Billing on top of `common::write_company` (CRM accounts A1 Globex, A2
/// Initech, A3 Test Corp, A6 → A8 → A1 merged; EUR 0.9 from 2025-03-01):
///
/// billing accounts: B1 (crm A1, USD), B2 (crm A6: merged into A1, EUR — so
/// B1 and B2 are one customer, A1), B3 (no crm id, "Solo Shop"), B4 (crm
/// A999 unknown to the CRM, "Test Billing Inc"), B5 (crm A3 Test Corp),
/// B6 (crm A2, deleted).
///
/// subscriptions: S1v1 and S1v2 (B1, versions 1 and 2), S1v3 (B1, version 3,
/// the latest), S2 (B2), S3 (B3), S4 (B4), S5 (B5), S6 (B6), S7 (B3, deleted).
///
/// charges (mrr, currency, [from, to)):
///   C1  S1v1 Recurring 100.00 USD 2025-01-01..      old version: not ARR
///   C13 S1v2 Recurring 999.00 USD 2025-01-01..      old version: not ARR
///   C2  S1v3 Recurring 100.00 USD 2025-01-01..2025-04-01  ended before D
///   C3  S1v3 Recurring 150.00 USD 2025-04-01..      12 × 150.00 = 1800.00
///   C4  S1v3 OneTime     0.00 USD 2025-04-01..      not recurring
///   C5  S2   Recurring  90.00 EUR 2025-02-01..2025-07-01  12 × 90 = 1080 EUR / 0.9 = 1200.00
///   C6  S3   Recurring  10.01 USD 2025-06-30..      starts on D: 12 × 10.01 = 120.12
///   C7  S3   Recurring  50.00 USD 2025-07-01..      starts after D
///   C8  S4   Recurring  20.00 USD                   test (billing name): 240.00
///   C9  S5   Recurring  30.00 USD                   test (CRM Test Corp): 360.00
///   C10 S6   Recurring  40.00 USD                   deleted billing account: 480.00
///   C11 S7   Recurring   5.00 USD                   deleted subscription: 60.00
///   C12 S3   Recurring   7.00 USD, deleted charge   deleted: 84.00
pub fn write_billing(root: &std::path::Path) {
    write_table(
        root,
        "billing/account",
        vec![
            ("id", Col::Str(vec!["B1", "B2", "B3", "B4", "B5", "B6"])),
            (
                "account_number",
                Col::Str(vec!["N1", "N2", "N3", "N4", "N5", "N6"]),
            ),
            (
                "name",
                Col::Str(vec![
                    "Globex",
                    "Globex EU",
                    "Solo Shop",
                    "Test Billing Inc",
                    "Test Corp",
                    "Initech",
                ]),
            ),
            (
                "crm_id",
                Col::OptStr(some(&["A1", "A6", "", "A999", "A3", "A2"])),
            ),
            (
                "currency",
                Col::Str(vec!["USD", "EUR", "USD", "USD", "USD", "USD"]),
            ),
            ("status", Col::Str(vec!["Active"; 6])),
            ("created_date", Col::Ts(vec!["2024-01-01T00:00:00Z"; 6])),
            (
                "is_deleted",
                Col::Bool(vec![false, false, false, false, false, true]),
            ),
        ],
    );
    let subs = ["S1v1", "S1v2", "S1v3", "S2", "S3", "S4", "S5", "S6", "S7"];
    write_table(
        root,
        "billing/subscription",
        vec![
            ("id", Col::Str(subs.to_vec())),
            (
                "account_id",
                Col::Str(vec!["B1", "B1", "B1", "B2", "B3", "B4", "B5", "B6", "B3"]),
            ),
            (
                "name",
                Col::Str(vec![
                    "SUB1", "SUB1", "SUB1", "SUB2", "SUB3", "SUB4", "SUB5", "SUB6", "SUB7",
                ]),
            ),
            ("version", Col::Int(vec![1, 2, 3, 1, 1, 1, 1, 1, 1])),
            (
                "is_latest_version",
                Col::Bool(vec![false, false, true, true, true, true, true, true, true]),
            ),
            (
                "original_id",
                Col::Str(vec![
                    "S1v1", "S1v1", "S1v1", "S2", "S3", "S4", "S5", "S6", "S7",
                ]),
            ),
            ("status", Col::Str(vec!["Active"; 9])),
            ("subscription_start_date", Col::Date(vec!["2025-01-01"; 9])),
            ("subscription_end_date", Col::OptDate(vec![None; 9])),
            ("term_start_date", Col::Date(vec!["2025-01-01"; 9])),
            ("term_end_date", Col::OptDate(vec![None; 9])),
            ("cancelled_date", Col::OptDate(vec![None; 9])),
            ("crm_opportunity_id", Col::OptStr(vec![None; 9])),
            (
                "is_deleted",
                Col::Bool(vec![
                    false, false, false, false, false, false, false, false, true,
                ]),
            ),
        ],
    );
    let c: Vec<TypedCharge> = vec![
        (
            "C1",
            "S1v1",
            "Recurring",
            "100.00",
            "USD",
            "2025-01-01",
            None,
            false,
        ),
        (
            "C13",
            "S1v2",
            "Recurring",
            "999.00",
            "USD",
            "2025-01-01",
            None,
            false,
        ),
        (
            "C2",
            "S1v3",
            "Recurring",
            "100.00",
            "USD",
            "2025-01-01",
            Some("2025-04-01"),
            false,
        ),
        (
            "C3",
            "S1v3",
            "Recurring",
            "150.00",
            "USD",
            "2025-04-01",
            None,
            false,
        ),
        (
            "C4",
            "S1v3",
            "OneTime",
            "0.00",
            "USD",
            "2025-04-01",
            None,
            false,
        ),
        (
            "C5",
            "S2",
            "Recurring",
            "90.00",
            "EUR",
            "2025-02-01",
            Some("2025-07-01"),
            false,
        ),
        (
            "C6",
            "S3",
            "Recurring",
            "10.01",
            "USD",
            "2025-06-30",
            None,
            false,
        ),
        (
            "C7",
            "S3",
            "Recurring",
            "50.00",
            "USD",
            "2025-07-01",
            None,
            false,
        ),
        (
            "C8",
            "S4",
            "Recurring",
            "20.00",
            "USD",
            "2025-01-01",
            None,
            false,
        ),
        (
            "C9",
            "S5",
            "Recurring",
            "30.00",
            "USD",
            "2025-01-01",
            None,
            false,
        ),
        (
            "C10",
            "S6",
            "Recurring",
            "40.00",
            "USD",
            "2025-01-01",
            None,
            false,
        ),
        (
            "C11",
            "S7",
            "Recurring",
            "5.00",
            "USD",
            "2025-01-01",
            None,
            false,
        ),
        (
            "C12",
            "S3",
            "Recurring",
            "7.00",
            "USD",
            "2025-01-01",
            None,
            true,
        ),
    ];
    write_table(root, "billing/rate_plan_charge", typed_charge_columns(&c));
}

/// A billing charge of any type: (id, subscription, type, mrr, currency,
/// from, to, deleted).
type TypedCharge = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    bool,
);

/// billing/rate_plan_charge's columns for `c` ("Platform" charges).
fn typed_charge_columns(c: &[TypedCharge]) -> Vec<(&'static str, Col)> {
    vec![
        ("id", Col::Str(c.iter().map(|r| r.0).collect())),
        ("subscription_id", Col::Str(c.iter().map(|r| r.1).collect())),
        ("name", Col::Str(vec!["Platform"; c.len()])),
        ("charge_type", Col::Str(c.iter().map(|r| r.2).collect())),
        (
            "effective_start_date",
            Col::Date(c.iter().map(|r| r.5).collect()),
        ),
        (
            "effective_end_date",
            Col::OptDate(c.iter().map(|r| r.6).collect()),
        ),
        ("mrr", Col::Money(c.iter().map(|r| Some(r.3)).collect())),
        ("tcv", Col::Money(c.iter().map(|_| Some("0.00")).collect())),
        (
            "transaction_currency",
            Col::Str(c.iter().map(|r| r.4).collect()),
        ),
        ("is_deleted", Col::Bool(c.iter().map(|r| r.7).collect())),
    ]
}

fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_company(dir.path());
    write_billing(dir.path());
    dir
}

// ARR as of 2025-06-30 = C3 1800.00 + C5 1200.00 + C6 120.12 = 3120.12.
// deleted (the billing account's flag, metrics.md): C10 480.00 (B6) = 1 charge;
// C11 (deleted subscription S7, 60.00) and C12 (deleted charge, 84.00) are
// outside the definition, not tallied (until arr v2 they were: 3 / 624.00);
// test_account: C8 240.00 (billing-only, billing name) + C9 360.00 (CRM Test Corp) = 2, 600.00;
// internal_account: none. Universe 3120.12 + 480.00 + 600.00 = 4200.12 over 6 charges.
#[test]
fn arr_counts_latest_versions_at_the_day_with_customer_exclusions() {
    let data = fixture();
    let r = query_json(&repo(), data.path(), &["arr", "--as-of", "2025-06-30"]);
    assert_eq!(r["value"], "3120.12");
    assert_eq!(exclusion(&r, "deleted"), (1, "480.00".into()));
    assert_eq!(exclusion(&r, "test_account"), (2, "600.00".into()));
    assert_eq!(exclusion(&r, "internal_account"), (0, "0.00".into()));
    assert_eq!(r["tallies"][0]["universe_rows"], 6);
    assert_eq!(r["tallies"][0]["universe_value"], "4200.12");
    assert_eq!(r["definition"]["version"], 4); // v3: unknown_customer; v4: its reason
    // Entities removed, by customer: deleted = A2 (B6); test = billing:B4 and
    // A3. Counted customers: A1 and billing:B3.
    assert_eq!(exclusion_entities(&r, "deleted"), 1);
    assert_eq!(exclusion_entities(&r, "test_account"), 2);
    assert_eq!(r["tallies"][0]["included_entities"], 2);
}

// By customer: A1 = B1's C3 1800.00 + B2's C5 1200.00 (B2's crm id A6 resolves
// through A8 to A1) = 3000.00; billing:B3 (no crm id) = C6 120.12.
#[test]
fn arr_by_customer_resolves_billing_accounts_to_crm_survivors() {
    let data = fixture();
    let r = query_json(
        &repo(),
        data.path(),
        &["arr", "--as-of", "2025-06-30", "--by", "customer"],
    );
    let got = sorted_rows(&r, "customer");
    assert_eq!(
        got,
        [
            ("A1".to_string(), "3000.00".to_string()),
            ("billing:B3".to_string(), "120.12".to_string())
        ]
    );
}

// A monthly series: ARR at each month end, rates of each day (EUR 0.8 until
// 2025-03-01, then 0.9).
//   Jan 31: C1 is an old version; C2 100 → 1200.00 (C5 starts Feb 1) → 1200.00
//   Feb 28: C2 1200.00 + C5 1080 EUR / 0.8 = 1350.00 → 2550.00
//   Mar 31: C2 1200.00 + C5 1080 / 0.9 = 1200.00 → 2400.00
//   Apr 30: C3 1800.00 (C2 ended Apr 1) + C5 1200.00 → 3000.00
#[test]
fn arr_series_at_month_ends_uses_each_days_rates() {
    let data = fixture();
    let r = query_json(
        &repo(),
        data.path(),
        &[
            "arr",
            "--from",
            "2025-01-01",
            "--to",
            "2025-05-01",
            "--grain",
            "month",
        ],
    );
    let got: Vec<(String, String)> = r["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["period"].as_str().unwrap().to_string(),
                row["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("2025-01".to_string(), "1200.00".to_string()),
            ("2025-02".to_string(), "2550.00".to_string()),
            ("2025-03".to_string(), "2400.00".to_string()),
            ("2025-04".to_string(), "3000.00".to_string()),
        ]
    );
    // The headline of a snapshot series is the state at the period's end
    // (Apr 30: 3000.00), not the sum of the month-ends (9150.00).
    assert_eq!(r["value"], "3000.00", "{r}");
    // So are its tallies, as `arr --as-of 2025-04-30` would show them (not
    // each charge once per month-end it is in force at). On Apr 30: counted
    // C3 1800.00 + C5 1200.00 = 3000.00, 2 charges, one customer (A1: B2's
    // A6 → A8 → A1); deleted C10 480.00 (A2's deleted billing account B6;
    // C11 of the deleted subscription S7 and the deleted charge C12 are
    // outside the definition); test_account C8 240.00 + C9 360.00 = 600.00
    // (billing:B4 and A3). Universe 5 charges, 3000.00 + 480.00 + 600.00 =
    // 4080.00. (C6 starts Jun 30; C4 is one-time; C1/C2 are old versions.)
    let t = &r["tallies"][0];
    assert_eq!(t["included_rows"], 2, "{t}");
    assert_eq!(t["included_value"], "3000.00", "{t}");
    assert_eq!(t["included_entities"], 1, "{t}");
    assert_eq!(t["universe_rows"], 5, "{t}");
    assert_eq!(t["universe_value"], "4080.00", "{t}");
    assert_eq!(exclusion(&r, "deleted"), (1, "480.00".into()));
    assert_eq!(exclusion(&r, "test_account"), (2, "600.00".into()));
    assert_eq!(exclusion_entities(&r, "deleted"), 1);
    assert_eq!(exclusion_entities(&r, "test_account"), 2);
}

/// A cohort company, T = 2025-06-30, T0 = 2024-06-30; EUR is 0.8 until
/// 2025-03-01 and 0.9 after, so constant currency (T's 0.9) matters:
///
/// | billing | customer   | charges (mrr, [from, to))                         | T0 ARR  | T ARR   |
/// |---------|------------|---------------------------------------------------|---------|---------|
/// | B1 USD  | A1         | 100 2024-01-01..2025-01-01; 150 2025-01-01..      | 1200.00 | 1800.00 |
/// | B7 USD  | A1 (via A6)| 20 2024-01-01..                                    | 240.00  | 240.00  |
/// | B2 EUR  | A2         | 100 2024-01-01..2025-01-01; 80 2025-01-01..       | 1333.33 | 1066.67 |
/// | B3 USD  | billing:B3 | 50 2024-01-01..2025-01-01                         | 600.00  | 0       |
/// | B4 USD  | billing:B4 | 25 2024-01-01..2024-12-01; 30 2025-03-01..        | 300.00  | 360.00  |
/// | B5 USD  | billing:B5 | 70 2024-09-01.. (new since T0: outside the cohort) | 0       | 840.00  |
/// | B6 USD  | A3 (test)  | 10 2024-01-01.. (test_account)                     | —       | —       |
///
/// B2 at T's rate: 12 × 100 EUR / 0.9 = 1333.333… → 1333.33 (at T0's own rate it
/// would be 1500.00); 12 × 80 / 0.9 = 1066.666… → 1066.67.
fn write_cohort_billing(root: &std::path::Path) {
    write_cohort_billing_with(root, false);
}

fn write_cohort_billing_with(root: &std::path::Path, deletions: bool) {
    write_cohort_billing_in(root, deletions, "USD");
}

/// The cohort company, and with `deletions` the rows metrics.md's `deleted`
/// is about (none of them changes a cohort member's ARR):
///
/// | billing           | subscription (version, latest, deleted) | charge (mrr, deleted)            |
/// |-------------------|------------------------------------------|----------------------------------|
/// | B1 (A1)           | S1 (1, latest)                           | C11 40.00 2024-01-01.., deleted  |
/// | B3 (billing:B3)   | S8v1 (1, not latest)                     | C12 5.00 2024-01-01..            |
/// | B3 (billing:B3)   | S8v2 (2, latest, deleted)                | C13 60.00 2024-01-01..           |
/// | B8 (A2), deleted  | S10 (1, latest)                          | C14 15.00 2024-01-01..           |
/// | B9 "Free Co" (billing:B9) | S11 (1, latest)                  | C15 0.00 2024-01-01..            |
///
/// C11 is a deleted charge and C13 a charge of a deleted (latest) version:
/// both outside ARR, not tallied. C12 is the older version of S8: S8v2's
/// deletion does not make it the latest (billing's flag says it is not),
/// so it is outside too (were it promoted, billing:B3 would have 60.00 at
/// both instants and not churn). B8 is a deleted billing account of A2: C14
/// (12 × 15.00 = 180.00) is in the universe, tallied under `deleted`. B9's
/// free charge is counted by arr at 0.00, so billing:B9 is a counted
/// customer of arr but, at 0 at T0, not of the cohort.
/// `churned_currency`: the currency of billing:B3's charge C6, the member
/// that churns.
fn write_cohort_billing_in(
    root: &std::path::Path,
    deletions: bool,
    churned_currency: &'static str,
) {
    let mut accounts = vec!["B1", "B2", "B3", "B4", "B5", "B6", "B7"];
    let mut names = vec![
        "Globex",
        "Initech",
        "Solo Shop",
        "Return Co",
        "New Co",
        "Test Corp",
        "Globex Legacy",
    ];
    let mut crm_ids = vec!["A1", "A2", "", "", "", "A3", "A6"];
    let mut account_deleted = vec![false; 7];
    if deletions {
        accounts.extend(["B8", "B9"]);
        names.extend(["Initech Old", "Free Co"]);
        crm_ids.extend(["A2", ""]);
        account_deleted.extend([true, false]);
    }
    let n = accounts.len();
    write_table(
        root,
        "billing/account",
        vec![
            ("id", Col::Str(accounts.clone())),
            ("account_number", Col::Str(accounts.clone())),
            ("name", Col::Str(names)),
            ("crm_id", Col::OptStr(some(&crm_ids))),
            ("currency", {
                let mut c = vec!["USD"; n];
                c[1] = "EUR";
                Col::Str(c)
            }),
            ("status", Col::Str(vec!["Active"; n])),
            ("created_date", Col::Ts(vec!["2024-01-01T00:00:00Z"; n])),
            ("is_deleted", Col::Bool(account_deleted)),
        ],
    );
    let mut subs: Vec<Subscription> = vec![
        ("S1", "B1", "S1", 1, true, false),
        ("S2", "B2", "S2", 1, true, false),
        ("S3", "B3", "S3", 1, true, false),
        ("S4", "B4", "S4", 1, true, false),
        ("S5", "B5", "S5", 1, true, false),
        ("S6", "B6", "S6", 1, true, false),
        ("S7", "B7", "S7", 1, true, false),
    ];
    if deletions {
        subs.extend([
            ("S8v1", "B3", "S8v1", 1, false, false),
            ("S8v2", "B3", "S8v1", 2, true, true),
            ("S10", "B8", "S10", 1, true, false),
            ("S11", "B9", "S11", 1, true, false),
        ]);
    }
    write_table(root, "billing/subscription", subscription_columns(&subs));
    let mut c: Vec<Charge> = vec![
        (
            "C1",
            "S1",
            "100.00",
            "USD",
            "2024-01-01",
            Some("2025-01-01"),
            false,
        ),
        ("C2", "S1", "150.00", "USD", "2025-01-01", None, false),
        ("C3", "S7", "20.00", "USD", "2024-01-01", None, false),
        (
            "C4",
            "S2",
            "100.00",
            "EUR",
            "2024-01-01",
            Some("2025-01-01"),
            false,
        ),
        ("C5", "S2", "80.00", "EUR", "2025-01-01", None, false),
        (
            "C6",
            "S3",
            "50.00",
            churned_currency,
            "2024-01-01",
            Some("2025-01-01"),
            false,
        ),
        (
            "C7",
            "S4",
            "25.00",
            "USD",
            "2024-01-01",
            Some("2024-12-01"),
            false,
        ),
        ("C8", "S4", "30.00", "USD", "2025-03-01", None, false),
        ("C9", "S5", "70.00", "USD", "2024-09-01", None, false),
        ("C10", "S6", "10.00", "USD", "2024-01-01", None, false),
    ];
    if deletions {
        c.extend([
            ("C11", "S1", "40.00", "USD", "2024-01-01", None, true),
            ("C12", "S8v1", "5.00", "USD", "2024-01-01", None, false),
            ("C13", "S8v2", "60.00", "USD", "2024-01-01", None, false),
            ("C14", "S10", "15.00", "USD", "2024-01-01", None, false),
            ("C15", "S11", "0.00", "USD", "2024-01-01", None, false),
        ]);
    }
    write_table(root, "billing/rate_plan_charge", charge_columns(&c));
}

/// A cohort company subscription: (id, billing account, original id,
/// version, latest, deleted).
type Subscription = (&'static str, &'static str, &'static str, i64, bool, bool);

/// A cohort company charge: (id, subscription, mrr, currency, from, to,
/// deleted).
type Charge = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    bool,
);

/// billing/subscription's columns for `subs` (active, from 2024-01-01).
fn subscription_columns(subs: &[Subscription]) -> Vec<(&'static str, Col)> {
    let m = subs.len();
    vec![
        ("id", Col::Str(subs.iter().map(|s| s.0).collect())),
        ("account_id", Col::Str(subs.iter().map(|s| s.1).collect())),
        ("name", Col::Str(subs.iter().map(|s| s.2).collect())),
        ("version", Col::Int(subs.iter().map(|s| s.3).collect())),
        (
            "is_latest_version",
            Col::Bool(subs.iter().map(|s| s.4).collect()),
        ),
        ("original_id", Col::Str(subs.iter().map(|s| s.2).collect())),
        ("status", Col::Str(vec!["Active"; m])),
        ("subscription_start_date", Col::Date(vec!["2024-01-01"; m])),
        ("subscription_end_date", Col::OptDate(vec![None; m])),
        ("term_start_date", Col::Date(vec!["2024-01-01"; m])),
        ("term_end_date", Col::OptDate(vec![None; m])),
        ("cancelled_date", Col::OptDate(vec![None; m])),
        ("crm_opportunity_id", Col::OptStr(vec![None; m])),
        ("is_deleted", Col::Bool(subs.iter().map(|s| s.5).collect())),
    ]
}

/// billing/rate_plan_charge's columns for `c` (recurring "Platform" charges).
fn charge_columns(c: &[Charge]) -> Vec<(&'static str, Col)> {
    let typed: Vec<TypedCharge> = c
        .iter()
        .map(|&(id, sub, mrr, currency, from, to, deleted)| {
            (id, sub, "Recurring", mrr, currency, from, to, deleted)
        })
        .collect();
    typed_charge_columns(&typed)
}

fn cohort_fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_company(dir.path());
    write_cohort_billing(dir.path());
    dir
}

fn bridge(r: &Value) -> Vec<(String, String)> {
    r["bridge"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["line"].as_str().unwrap().to_string(),
                l["value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

// Cohort (ARR at T0 > 0): A1 1440.00 → 2040.00, A2 1333.33 → 1066.67,
// billing:B3 600.00 → 0 (churned), billing:B4 300.00 → 360.00 (left and came
// back: counted at its T value). B5 is new since T0; B6 is a test account.
//   starting    = 1440.00 + 1333.33 + 600.00 + 300.00 = 3673.33
//   expansion   = (2040.00 − 1440.00) + (360.00 − 300.00) = 660.00
//   contraction = 1333.33 − 1066.67 = 266.66
//   churned     = 600.00
//   ending      = 2040.00 + 1066.67 + 0 + 360.00 = 3466.67
//   3673.33 + 660.00 − 266.66 − 600.00 = 3466.67 exactly.
// NRR = 3466.67 / 3673.33 = 0.943740; GRR = (1440.00 + 1066.67 + 0 + 300.00) / 3673.33
// = 2806.67 / 3673.33 = 0.764067; logo churn = 1 / 4 = 0.250000;
// gross revenue churn = (3673.33 − 2806.67) / 3673.33 = 866.66 / 3673.33 = 0.235933.
#[test]
fn nrr_with_its_bridge_at_constant_currency() {
    let data = cohort_fixture();
    let r = query_json(&repo(), data.path(), &["nrr", "--as-of", "2025-06-30"]);
    assert_eq!(r["kind"], "cohort");
    assert_eq!(r["value"], "0.943740");
    assert_eq!(
        bridge(&r),
        [
            ("starting".to_string(), "3673.33".to_string()),
            ("expansion".to_string(), "660.00".to_string()),
            ("contraction".to_string(), "-266.66".to_string()),
            ("churned".to_string(), "-600.00".to_string()),
            ("ending".to_string(), "3466.67".to_string()),
            ("cohort_members".to_string(), "4".to_string()),
            ("churned_members".to_string(), "1".to_string()),
        ]
    );
    // The test account is excluded at both instants: 12 × 10.00 = 120.00
    // each. The cohort's exclusions at T0 come first; T's (arr over every
    // customer at T) are labelled as such.
    let tallies: Vec<(String, String, i64)> = r["exclusions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["name"] == "test_account")
        .map(|x| {
            (
                x["metric"].as_str().unwrap().to_string(),
                x["value"].as_str().unwrap().to_string(),
                x["rows"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        tallies,
        [
            (
                "cohort at T0 = 2024-06-30 (arr > 0)".to_string(),
                "120.00".to_string(),
                1
            ),
            (
                "arr at T = 2025-06-30 (every customer, for reference)".to_string(),
                "120.00".to_string(),
                1
            ),
        ]
    );
    // Entities, counted from each instant's groups by customer: the test
    // account is one customer at each instant, and the T0 instant counts the
    // cohort's four customers (A1, A2, billing:B3, billing:B4).
    for x in r["exclusions"].as_array().unwrap() {
        if x["name"] == "test_account" {
            assert_eq!(x["entities"], 1, "{x}");
        }
    }
    let t0 = r["tallies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["metric"] == "cohort at T0 = 2024-06-30 (arr > 0)")
        .unwrap();
    assert_eq!(t0["included_entities"], 4);
    assert_eq!(t0["included_value"], "3673.33");
}

// A cohort is converted at T's rates (constant currency). A member whose T0
// charges are in a currency with no rate at T (GBP's rate ends 2025-03-01
// here, and the churned billing:B3's C6 is 50.00 GBP) had no value at T0:
// dropped from the cohort without a word, nrr read 3466.67 / (3673.33 −
// 600.00) = 3466.67 / 3073.33 = 1.127985 instead of refusing. No other row
// lacks a rate (GBP is held by no one at T), so only the T0 cohort knows.
#[test]
fn a_cohort_member_without_a_rate_at_t_is_refused_not_dropped() {
    let dir = tempfile::tempdir().unwrap();
    write_company(dir.path());
    write_cohort_billing_in(dir.path(), false, "GBP");
    write_table(
        dir.path(),
        "crm/dated_conversion_rate",
        vec![
            ("iso_code", Col::Str(vec!["EUR", "EUR", "GBP"])),
            (
                "conversion_rate",
                Col::Rate(vec!["0.800000", "0.900000", "0.750000"]),
            ),
            (
                "start_date",
                Col::Date(vec!["2024-01-01", "2025-03-01", "2024-01-01"]),
            ),
            (
                "next_start_date",
                Col::Date(vec!["2025-03-01", "2027-01-01", "2025-03-01"]),
            ),
        ],
    );
    let o = canon(
        &repo(),
        &[
            "query",
            "nrr",
            "--as-of",
            "2025-06-30",
            "--data",
            dir.path().to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    // C6 is one charge of 12 × 50.00 GBP, in force at T0 only.
    assert!(
        stderr(&o).contains(
            "1 row(s) of `arr` are in a currency with no conversion rate in force on 2025-06-30 (converted at that day's rates, every row alike, as its definition asks) (2024-06-30: 1; by currency: GBP: 1)"
        ),
        "{}",
        stderr(&o)
    );
}

// A cohort over a snapshot that counts value under no customer is blocked.
// The cohort company plus subscription S9 of billing account BX, which
// billing/account does not have, with charge C16: 12 × 50.00 = 600.00 in
// force at both instants. With arr's `unknown_customer` (v3) it is excluded
// and nrr is the fixture's 0.943740 (nrr_with_its_bridge_at_constant_currency).
// A copy of the project without that exclusion (arr as v2 was) groups it
// under a null customer: in the cohort at T0 with 600.00, matched by nothing
// at T, so churned: nrr would be 3466.67 / (3673.33 + 600.00) = 0.811234,
// silently. Now the run stops and names the slice to fix and the test to
// exclude with.
#[test]
fn a_cohort_with_value_under_no_member_is_blocked() {
    let data = cohort_fixture();
    add_part(
        data.path(),
        "billing/subscription",
        subscription_columns(&[("S9", "BX", "S9", 1, true, false)]),
    );
    add_part(
        data.path(),
        "billing/rate_plan_charge",
        charge_columns(&[("C16", "S9", "50.00", "USD", "2024-01-01", None, false)]),
    );
    let governed = query_json(&repo(), data.path(), &["nrr", "--as-of", "2025-06-30"]);
    assert_eq!(governed["value"], "0.943740");
    assert_eq!(
        tally_of(
            &governed,
            "cohort at T0 = 2024-06-30 (arr > 0)",
            "unknown_customer"
        ),
        (1, "600.00".to_string(), 0)
    );

    let project = tempfile::tempdir().unwrap();
    copy_project(project.path());
    let yaml = project.path().join("metrics/customers.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();
    let from = text.find("      - name: unknown_customer").unwrap();
    let to = from + text[from..].find("IS NULL\n").unwrap() + "IS NULL\n".len();
    std::fs::write(&yaml, format!("{}{}", &text[..from], &text[to..])).unwrap();
    let out = canon(
        project.path(),
        &[
            "query",
            "nrr",
            "--as-of",
            "2025-06-30",
            "--data",
            data.path().to_str().unwrap(),
        ],
    );
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).is_empty(), "no number: {}", stdout(&out));
    insta::assert_snapshot!(stderr(&out));
}

// A cohort is sliced by its members: each (customer, slice values) group at
// T0 is compared with the customer's whole value at T. A slice that varies
// within a customer would start it several times against its whole value.
// On the cohort company, A1 holds billing accounts B1 (C1: 12 × 100.00 =
// 1200.00 at T0) and B7 (C3: 12 × 20.00 = 240.00), and at T 2040.00 in all;
// sliced by billing account, B1's 1200.00 and B7's 240.00 would each be
// bridged to 2040.00 (A1's ending counted twice: 4080.00 for 1440.00). Such
// a request is refused (exit 2), naming the slice and a member split by it;
// by country (one per customer) it is answered.
#[test]
fn a_cohort_by_a_slice_that_splits_its_members_is_refused() {
    let data = cohort_fixture();
    let project = tempfile::tempdir().unwrap();
    copy_project(project.path());
    replace_in(
        &project.path().join("metrics/customers.yaml"),
        "      - {name: industry, expr: subscription.billing_account.crm.industry}\n",
        "      - {name: industry, expr: subscription.billing_account.crm.industry}\n      - {name: billing_account, expr: subscription.billing_account_id}\n",
    );
    let by_country = query_json(
        project.path(),
        data.path(),
        &["nrr", "--as-of", "2025-06-30", "--by", "country"],
    );
    assert_eq!(by_country["value"], "0.943740");
    let out = canon(
        project.path(),
        &[
            "query",
            "nrr",
            "--as-of",
            "2025-06-30",
            "--by",
            "billing_account",
            "--data",
            data.path().to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stdout(&out).is_empty(), "no number: {}", stdout(&out));
    insta::assert_snapshot!(stderr(&out));
}

fn deletions_fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_company(dir.path());
    write_cohort_billing_with(dir.path(), true);
    dir
}

/// (rows, value, entities) of exclusion `name` tallied under `metric`.
fn tally_of(r: &Value, metric: &str, name: &str) -> (i64, String, i64) {
    let x = r["exclusions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["metric"] == metric && x["name"] == name)
        .unwrap_or_else(|| panic!("no {metric}: {name} in {}", r["exclusions"]));
    (
        x["rows"].as_i64().unwrap(),
        x["value"].as_str().unwrap().to_string(),
        x["entities"].as_i64().unwrap(),
    )
}

/// (universe rows, universe value, counted rows, counted value, counted
/// entities) of the tally of `metric`.
fn universe_of(r: &Value, metric: &str) -> (i64, String, i64, String, i64) {
    let t = r["tallies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["metric"] == metric)
        .unwrap_or_else(|| panic!("no tally {metric} in {}", r["tallies"]));
    (
        t["universe_rows"].as_i64().unwrap(),
        t["universe_value"].as_str().unwrap().to_string(),
        t["included_rows"].as_i64().unwrap(),
        t["included_value"].as_str().unwrap().to_string(),
        t["included_entities"].as_i64().unwrap(),
    )
}

// arr as of 2025-06-30 over the deletions fixture (EUR 0.9 on that day):
//   counted: C2 12 × 150.00 = 1800.00 (A1), C3 12 × 20.00 = 240.00 (A1 via
//   A6 → A8 → A1), C5 12 × 80 EUR / 0.9 = 1066.666… → 1066.67 (A2), C8
//   12 × 30.00 = 360.00 (billing:B4), C9 12 × 70.00 = 840.00 (billing:B5),
//   C15 12 × 0.00 = 0.00 (billing:B9) = 6 charges, 4306.67, 5 customers.
//   deleted (B8, A2's deleted billing account): C14 12 × 15.00 = 180.00, 1
//   charge, 1 customer (A2). test_account: C10 12 × 10.00 = 120.00 (A3).
//   internal_account: none. Universe 6 + 1 + 1 = 8 charges,
//   4306.67 + 180.00 + 120.00 = 4606.67.
//   Outside the definition, not tallied: C11 (a deleted charge, 480.00),
//   C13 (of S8v2, a deleted version, 720.00) and C12 (of S8v1, not the latest
//   version: the deleted S8v2 does not make it the latest). Counting deleted
//   charges and versions as `deleted` (arr v1) gave 3 / 1380.00 here.
#[test]
fn arr_tallies_only_the_billing_accounts_deleted_flag() {
    let data = deletions_fixture();
    let r = query_json(&repo(), data.path(), &["arr", "--as-of", "2025-06-30"]);
    assert_eq!(r["value"], "4306.67");
    assert_eq!(exclusion(&r, "deleted"), (1, "180.00".into()));
    assert_eq!(exclusion_entities(&r, "deleted"), 1);
    assert_eq!(exclusion(&r, "test_account"), (1, "120.00".into()));
    assert_eq!(exclusion(&r, "internal_account"), (0, "0.00".into()));
    assert_eq!(
        universe_of(&r, "arr"),
        (8, "4606.67".into(), 6, "4306.67".into(), 5)
    );
    // billing:B3's only ARR would be C12 (old version, 60.00) or C13 (the
    // deleted latest version, 720.00): it has none.
    let by = query_json(
        &repo(),
        data.path(),
        &["arr", "--as-of", "2025-06-30", "--by", "customer"],
    );
    assert!(
        !sorted_rows(&by, "customer")
            .iter()
            .any(|(c, _)| c == "billing:B3"),
        "{}",
        by["rows"]
    );
}

// nrr as of T = 2025-06-30 over the deletions fixture. The cohort and its
// bridge are the cohort fixture's (nrr_with_its_bridge_at_constant_currency):
// A2's deleted billing account B8 is excluded at both instants, billing:B3
// has no ARR at T (C12, C13 outside) and churns, billing:B9 is at 0.00 at T0
// and outside the cohort. So NRR = 3466.67 / 3673.33 = 0.943740.
//
// The cohort's exclusions at T0 = 2024-06-30 (charges in force then, T's
// rates): deleted C14 180.00 (1 charge, A2); test_account C10 120.00 (1, A3);
// internal none. Counted: the cohort's charges C1 1200.00 + C3 240.00 +
// C4 12 × 100 EUR / 0.9 = 1333.33 + C6 600.00 + C7 300.00 = 5 charges,
// 3673.33 = the bridge's starting ARR, 4 members (A1, A2, billing:B3,
// billing:B4). C15 (billing:B9, 0.00) is counted by arr at T0 but outside
// the cohort: not in its universe. Universe 5 + 1 + 1 = 7 charges,
// 3673.33 + 180.00 + 120.00 = 3973.33.
// arr at T (labelled, every customer): as arr_tallies_only_the_billing_accounts_deleted_flag:
// deleted 1 / 180.00, test 1 / 120.00, counted 6 / 4306.67 / 5 customers,
// universe 8 / 4606.67.
#[test]
fn nrr_tallies_the_cohorts_exclusions_at_t0() {
    let data = deletions_fixture();
    let r = query_json(&repo(), data.path(), &["nrr", "--as-of", "2025-06-30"]);
    assert_eq!(r["value"], "0.943740");
    assert_eq!(r["definition"]["version"], 4); // v3: unknown_customer; v4: its reason
    assert_eq!(
        bridge(&r)[0],
        ("starting".to_string(), "3673.33".to_string())
    );
    assert_eq!(
        bridge(&r)[5],
        ("cohort_members".to_string(), "4".to_string())
    );
    let t0 = "cohort at T0 = 2024-06-30 (arr > 0)";
    let t = "arr at T = 2025-06-30 (every customer, for reference)";
    assert_eq!(r["exclusions"][0]["metric"], t0, "T0's come first");
    assert_eq!(tally_of(&r, t0, "deleted"), (1, "180.00".into(), 1));
    assert_eq!(tally_of(&r, t0, "test_account"), (1, "120.00".into(), 1));
    assert_eq!(tally_of(&r, t0, "internal_account"), (0, "0.00".into(), 0));
    assert_eq!(
        universe_of(&r, t0),
        (7, "3973.33".into(), 5, "3673.33".into(), 4)
    );
    assert_eq!(tally_of(&r, t, "deleted"), (1, "180.00".into(), 1));
    assert_eq!(tally_of(&r, t, "test_account"), (1, "120.00".into(), 1));
    assert_eq!(
        universe_of(&r, t),
        (8, "4606.67".into(), 6, "4306.67".into(), 5)
    );
    // The table says which instant each tally is.
    let out = canon(
        &repo(),
        &[
            "query",
            "nrr",
            "--as-of",
            "2025-06-30",
            "--data",
            data.path().to_str().unwrap(),
        ],
    );
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text.contains(&format!("{t0}: deleted")), "{text}");
    assert!(
        text.contains(&format!("universe of {t0}: 7 rows, 3,973.33")),
        "{text}"
    );
    assert!(
        text.contains(&format!("universe of {t}: 8 rows, 4,606.67")),
        "{text}"
    );
    // The other cohort metrics report the same T0 tally.
    let grr = query_json(&repo(), data.path(), &["grr", "--as-of", "2025-06-30"]);
    assert_eq!(grr["value"], "0.764067");
    assert_eq!(tally_of(&grr, t0, "deleted"), (1, "180.00".into(), 1));
    assert_eq!(
        universe_of(&grr, t0),
        (7, "3973.33".into(), 5, "3673.33".into(), 4)
    );
}

#[test]
fn grr_logo_churn_and_gross_revenue_churn() {
    let data = cohort_fixture();
    for (metric, expected) in [
        ("grr", "0.764067"),
        ("logo_churn_rate", "0.250000"),
        ("gross_revenue_churn_rate", "0.235933"),
    ] {
        let r = query_json(&repo(), data.path(), &[metric, "--as-of", "2025-06-30"]);
        assert_eq!(r["value"], expected, "{metric}");
    }
}

// The bridge by country: US = A1 only (1440.00 → 2040.00, expansion 600.00);
// DE = A2 (1333.33 → 1066.67); no CRM country = B3 and B4 (900.00 → 360.00:
// expansion 60.00, churned 600.00). Each slice's bridge foots on its own.
#[test]
fn nrr_bridge_by_slice() {
    let data = cohort_fixture();
    let r = query_json(
        &repo(),
        data.path(),
        &["nrr", "--as-of", "2025-06-30", "--by", "country"],
    );
    let got: Vec<(String, String, String, String)> = r["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let lines = row["bridge"].as_array().unwrap();
            (
                row["country"].as_str().unwrap_or("(none)").to_string(),
                lines[0]["value"].as_str().unwrap().to_string(),
                lines[4]["value"].as_str().unwrap().to_string(),
                row["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    // In slice order, no country first, as a simple metric's rows (they
    // came in the engine's partition order, different from run to run).
    // (none): 360.00 / 900.00 = 0.400000; DE: 1066.67 / 1333.33 = 0.8000045… → 0.800005;
    // US: 2040.00 / 1440.00 = 1.416667.
    assert_eq!(
        got,
        [
            (
                "(none)".to_string(),
                "900.00".to_string(),
                "360.00".to_string(),
                "0.400000".to_string()
            ),
            (
                "DE".to_string(),
                "1333.33".to_string(),
                "1066.67".to_string(),
                "0.800005".to_string()
            ),
            (
                "US".to_string(),
                "1440.00".to_string(),
                "2040.00".to_string(),
                "1.416667".to_string()
            ),
        ]
    );
}

/// Health snapshots: A6 (merged into A1) Red on 2025-06-01 and A1 Green on
/// 2025-05-01 and 2025-07-07; A3 (Test Corp) and A2 Red on 2025-06-01.
fn write_health(root: &std::path::Path) {
    write_table(
        root,
        "cs/company_health",
        vec![
            (
                "sfdc_account_id",
                Col::OptStr(some(&["A6", "A1", "A1", "A3", "A2"])),
            ),
            ("score", Col::Int(vec![20, 80, 85, 10, 15])),
            (
                "status",
                Col::Str(vec!["Red", "Green", "Green", "Red", "Red"]),
            ),
            (
                "snapshot_date",
                Col::Date(vec![
                    "2025-06-01",
                    "2025-05-01",
                    "2025-07-07",
                    "2025-06-01",
                    "2025-06-01",
                ]),
            ),
        ],
    );
}

// arr_at_risk as of 2025-06-30: A1's latest snapshot on or before D is the
// Red one of Jun 1, filed under merged-away A6 → A1's ARR is at risk:
// B1's C3 1800.00 + B2's C5 1200.00 = 3000.00. A3 (Red) is a test account:
// C9 360.00 under test_account; A2 (Red) has only the deleted billing
// account B6: C10 480.00 under deleted. billing:B3 has no health: not at risk.
// As of 2025-05-31, A1's latest is Green (May 1) and the Reds are not yet: 0.00.
#[test]
fn arr_at_risk_uses_the_latest_health_by_surviving_account() {
    let data = fixture();
    write_health(data.path());
    let r = query_json(
        &repo(),
        data.path(),
        &["arr_at_risk", "--as-of", "2025-06-30"],
    );
    assert_eq!(r["value"], "3000.00");
    assert_eq!(exclusion(&r, "deleted"), (1, "480.00".into()));
    assert_eq!(exclusion(&r, "test_account"), (1, "360.00".into()));
    let may = query_json(
        &repo(),
        data.path(),
        &["arr_at_risk", "--as-of", "2025-05-31"],
    );
    assert_eq!(may["value"], "0.00");
}

// The customer identity rule's match rate rides along: of 6 billing
// accounts, B1 (A1), B2 (A6 → A1), B5 (A3) and B6 (A2) resolve to a CRM
// account; B3 (no crm id) and B4 (A999, unknown) do not: 4 / 6 = 0.666667.
#[test]
fn results_report_the_identity_match_rate() {
    let data = fixture();
    let r = query_json(&repo(), data.path(), &["arr", "--as-of", "2025-06-30"]);
    let rate = r["quality"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["rule"] == "billing_account.crm → account")
        .unwrap_or_else(|| panic!("no match rate in {}", r["quality"]));
    assert_eq!(rate["rows"], 6);
    assert_eq!(rate["matched"], 4);
    assert_eq!(rate["rate"], "0.666667");
    assert_eq!(rate["table"], "billing/account");
}

// `canon explain nrr` plans both instants and the bridge without running them.
/// `canon explain nrr --as-of 2025-06-30` over the cohort fixture, with
/// `extra` arguments; its standard output.
fn explain_nrr(extra: &[&str]) -> String {
    let data = cohort_fixture();
    let mut args = vec!["explain", "nrr", "--as-of", "2025-06-30"];
    args.extend_from_slice(extra);
    args.extend(["--data", data.path().to_str().unwrap()]);
    let out = canon(&repo(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

#[test]
fn explain_nrr_shows_both_instants_and_the_bridge() {
    let text = explain_nrr(&[]);
    assert!(
        text.contains("== nrr: snapshot at T0 = 2024-06-30 and T = 2025-06-30 =="),
        "{text}"
    );
    assert!(text.contains("== nrr: bridge per member =="), "{text}");
    // Both instants are one plan: the charges are scanned once, joined to a
    // table of the two days.
    let optimized = text
        .split("-- optimized logical plan --")
        .nth(1)
        .and_then(|t| t.split("-- physical plan").next())
        .unwrap_or_default();
    assert_eq!(
        optimized
            .matches("TableScan: billing.rate_plan_charge")
            .count(),
        1,
        "{optimized}"
    );
    // The CRM account is joined once: the billing account's own join (for
    // its customer) also serves the exclusion's `…crm.domain`.
    assert_eq!(
        optimized.matches("TableScan: crm.account ").count(),
        1,
        "{optimized}"
    );
    assert!(
        text.contains("TableScan: billing.rate_plan_charge"),
        "{text}"
    );
    assert!(text.contains("Left Join"), "{text}");
}

#[test]
fn explain_analyze_runs_each_plan_and_shows_what_each_operator_did() {
    let text = explain_nrr(&["--analyze"]);
    // The instants' plan and the bridge are run.
    assert_eq!(text.matches("-- physical plan, run (").count(), 2, "{text}");
    // The bridge over the whole cohort (no slices) ends in one row.
    let bridge = text
        .split("== nrr: bridge per member ==")
        .nth(1)
        .and_then(|b| b.split("-- physical plan, run (").nth(1))
        .unwrap_or_default();
    let first_line = bridge.lines().nth(1).unwrap_or_default();
    assert!(
        first_line.contains("AggregateExec") && first_line.contains("output_rows=1,"),
        "{bridge}"
    );
}
