//! Customer metrics (billing, customers resolved to the CRM) on the fixture
//! company, through the real binary, with every number worked out by hand.

mod common;

use common::*;
use serde_json::Value;

/// Billing on top of `common::write_company` (CRM accounts A1 Globex, A2
/// Initech, A3 Test Corp, A6 → A8 → A1 merged; EUR 0.9 from 2025-03-01):
///
/// billing accounts: B1 (crm A1, USD), B2 (crm A6: merged into A1, EUR — so
/// B1 and B2 are one customer, A1), B3 (no crm id, "Solo Shop"), B4 (crm
/// A999 unknown to the CRM, "Test Billing Inc"), B5 (crm A3 Test Corp),
/// B6 (crm A2, deleted).
///
/// subscriptions: S1v1 (B1, old version), S1v2 (B1, latest), S2 (B2), S3
/// (B3), S4 (B4), S5 (B5), S6 (B6), S7 (B3, deleted).
///
/// charges (mrr, currency, [from, to)):
///   C1  S1v1 Recurring 100.00 USD 2025-01-01..      old version: not ARR
///   C2  S1v2 Recurring 100.00 USD 2025-01-01..2025-04-01  ended before D
///   C3  S1v2 Recurring 150.00 USD 2025-04-01..      12 × 150.00 = 1800.00
///   C4  S1v2 OneTime     0.00 USD 2025-04-01..      not recurring
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
    let subs = ["S1v1", "S1v2", "S2", "S3", "S4", "S5", "S6", "S7"];
    write_table(
        root,
        "billing/subscription",
        vec![
            ("id", Col::Str(subs.to_vec())),
            (
                "account_id",
                Col::Str(vec!["B1", "B1", "B2", "B3", "B4", "B5", "B6", "B3"]),
            ),
            (
                "name",
                Col::Str(vec![
                    "SUB1", "SUB1", "SUB2", "SUB3", "SUB4", "SUB5", "SUB6", "SUB7",
                ]),
            ),
            ("version", Col::Int(vec![1, 2, 1, 1, 1, 1, 1, 1])),
            (
                "is_latest_version",
                Col::Bool(vec![false, true, true, true, true, true, true, true]),
            ),
            (
                "original_id",
                Col::Str(vec!["S1v1", "S1v1", "S2", "S3", "S4", "S5", "S6", "S7"]),
            ),
            ("status", Col::Str(vec!["Active"; 8])),
            ("subscription_start_date", Col::Date(vec!["2025-01-01"; 8])),
            ("subscription_end_date", Col::OptDate(vec![None; 8])),
            ("term_start_date", Col::Date(vec!["2025-01-01"; 8])),
            ("term_end_date", Col::OptDate(vec![None; 8])),
            ("cancelled_date", Col::OptDate(vec![None; 8])),
            ("crm_opportunity_id", Col::OptStr(vec![None; 8])),
            (
                "is_deleted",
                Col::Bool(vec![false, false, false, false, false, false, false, true]),
            ),
        ],
    );
    // (id, subscription, type, mrr, currency, from, to, deleted)
    type Charge = (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        Option<&'static str>,
        bool,
    );
    let c: Vec<Charge> = vec![
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
            "C2",
            "S1v2",
            "Recurring",
            "100.00",
            "USD",
            "2025-01-01",
            Some("2025-04-01"),
            false,
        ),
        (
            "C3",
            "S1v2",
            "Recurring",
            "150.00",
            "USD",
            "2025-04-01",
            None,
            false,
        ),
        (
            "C4",
            "S1v2",
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
    write_table(
        root,
        "billing/rate_plan_charge",
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
        ],
    );
}

fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_company(dir.path());
    write_billing(dir.path());
    dir
}

fn exclusion(result: &Value, name: &str) -> (i64, String) {
    let x = result["exclusions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == name)
        .unwrap_or_else(|| panic!("no exclusion {name} in {result}"));
    (
        x["rows"].as_i64().unwrap(),
        x["value"].as_str().unwrap().to_string(),
    )
}

// ARR as of 2025-06-30 = C3 1800.00 + C5 1200.00 + C6 120.12 = 3120.12.
// deleted: C10 480.00 + C11 60.00 + C12 84.00 = 3 charges, 624.00;
// test_account: C8 240.00 (billing-only, billing name) + C9 360.00 (CRM Test Corp) = 2, 600.00;
// internal_account: none. Universe 3120.12 + 624.00 + 600.00 = 4344.12 over 8 charges.
#[test]
fn arr_counts_latest_versions_at_the_day_with_customer_exclusions() {
    let data = fixture();
    let r = query_json(&repo(), data.path(), &["arr", "--as-of", "2025-06-30"]);
    assert_eq!(r["value"], "3120.12");
    assert_eq!(exclusion(&r, "deleted"), (3, "624.00".into()));
    assert_eq!(exclusion(&r, "test_account"), (2, "600.00".into()));
    assert_eq!(exclusion(&r, "internal_account"), (0, "0.00".into()));
    assert_eq!(r["tallies"][0]["universe_rows"], 8);
    assert_eq!(r["tallies"][0]["universe_value"], "4344.12");
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
    let mut got: Vec<(String, String)> = r["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["customer"].as_str().unwrap().to_string(),
                row["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
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
}
