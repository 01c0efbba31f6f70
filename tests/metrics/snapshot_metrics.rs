//! Snapshot metrics (state as of a day) on the fixture company, through the
//! real binary, with every expected number worked out by hand.

use crate::common::*;

/// The fixture company with a richer opportunity history (the deals,
/// accounts and rates are those of `common::write_company`):
///
/// | deal | account | cur | history (UTC instants)                                             |
/// |------|---------|-----|---------------------------------------------------------------------|
/// | D15  | A2      | USD | 03-01 Prospecting 800 p10; 05-01T10 Proposal 900 p50 BestCase;      |
/// |      |         |     | 07-01T06:59:59 Negotiation 950 p70 (= Jun 30 23:59:59 in LA);       |
/// |      |         |     | 07-01T07:00 amount 5000 (= Jul 1 00:00 LA: after D)                 |
/// | D2   | A2      | EUR | 01-10 Discovery 1000 p20; 04-01 Negotiation 1000 p80;               |
/// |      |         |     | 06-01 back to Proposal 1200 p50                                     |
/// | D1   | A1      | USD | 01-05 Prospecting 1000; 02-10 Closed Won 1000                        |
/// | D4   | A1      | GBP | 04-01T00:00 Discovery 100.01 p20                                     |
/// | D5   | A3 test | USD | 02-15 Proposal 500 p50                                               |
/// | D7   | A5 int. | USD | 02-17 Proposal 700 p50                                               |
/// | D10  | deleted | USD | 02-18 Proposal 400 p40                                               |
/// | D12  | A2      | USD | 02-19 Discovery 5000 p20 Omitted                                     |
/// | D8   | A1      | USD | 03-01T20 Discovery, amount null                                      |
/// | D9   | A6→A1   | USD | 03-02 Proposal 200 p60; 06-15 Closed Lost but that row is deleted    |
/// | D3   | A2      | EUR | 08-01 Prospecting 1000 (created after every as-of day used here)     |
fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_company(dir.path());
    std::fs::remove_dir_all(dir.path().join("crm/opportunity_history")).unwrap();
    let rows: Vec<HistoryRow> = vec![
        (
            "H15a",
            "D15",
            "2025-03-01T10:00:00Z",
            "Prospecting",
            "800.00",
            10.0,
            "Pipeline",
            false,
        ),
        (
            "H15b",
            "D15",
            "2025-05-01T10:00:00Z",
            "Proposal",
            "900.00",
            50.0,
            "BestCase",
            false,
        ),
        (
            "H15c",
            "D15",
            "2025-07-01T06:59:59Z",
            "Negotiation",
            "950.00",
            70.0,
            "Commit",
            false,
        ),
        (
            "H15d",
            "D15",
            "2025-07-01T07:00:00Z",
            "Negotiation",
            "5000.00",
            70.0,
            "Commit",
            false,
        ),
        (
            "H2a",
            "D2",
            "2025-01-10T12:00:00Z",
            "Discovery",
            "1000.00",
            20.0,
            "Pipeline",
            false,
        ),
        (
            "H2b",
            "D2",
            "2025-04-01T12:00:00Z",
            "Negotiation",
            "1000.00",
            80.0,
            "Commit",
            false,
        ),
        (
            "H2c",
            "D2",
            "2025-06-01T12:00:00Z",
            "Proposal",
            "1200.00",
            50.0,
            "BestCase",
            false,
        ),
        (
            "H1a",
            "D1",
            "2025-01-05T18:00:00Z",
            "Prospecting",
            "1000.00",
            10.0,
            "Pipeline",
            false,
        ),
        (
            "H1b",
            "D1",
            "2025-02-10T18:00:00Z",
            "Closed Won",
            "1000.00",
            100.0,
            "Closed",
            false,
        ),
        (
            "H4a",
            "D4",
            "2025-04-01T00:00:00Z",
            "Discovery",
            "100.01",
            20.0,
            "Pipeline",
            false,
        ),
        (
            "H5",
            "D5",
            "2025-02-15T20:00:00Z",
            "Proposal",
            "500.00",
            50.0,
            "BestCase",
            false,
        ),
        (
            "H7",
            "D7",
            "2025-02-17T20:00:00Z",
            "Proposal",
            "700.00",
            50.0,
            "BestCase",
            false,
        ),
        (
            "H10",
            "D10",
            "2025-02-18T20:00:00Z",
            "Proposal",
            "400.00",
            40.0,
            "BestCase",
            false,
        ),
        (
            "H12",
            "D12",
            "2025-02-19T20:00:00Z",
            "Discovery",
            "5000.00",
            20.0,
            "Omitted",
            false,
        ),
        (
            "H8",
            "D8",
            "2025-03-01T20:00:00Z",
            "Discovery",
            "",
            20.0,
            "Pipeline",
            false,
        ),
        (
            "H9a",
            "D9",
            "2025-03-02T20:00:00Z",
            "Proposal",
            "200.00",
            60.0,
            "Commit",
            false,
        ),
        (
            "H9b",
            "D9",
            "2025-06-15T20:00:00Z",
            "Closed Lost",
            "200.00",
            0.0,
            "Omitted",
            true,
        ),
        (
            "H3",
            "D3",
            "2025-08-01T12:00:00Z",
            "Prospecting",
            "1000.00",
            10.0,
            "Pipeline",
            false,
        ),
    ];
    let close: Vec<&str> = vec!["2025-09-30"; rows.len()];
    write_table(
        dir.path(),
        "crm/opportunity_history",
        vec![
            ("id", Col::Str(rows.iter().map(|r| r.0).collect())),
            (
                "opportunity_id",
                Col::Str(rows.iter().map(|r| r.1).collect()),
            ),
            ("created_date", Col::Ts(rows.iter().map(|r| r.2).collect())),
            ("stage_name", Col::Str(rows.iter().map(|r| r.3).collect())),
            (
                "amount",
                Col::Money(some(&rows.iter().map(|r| r.4).collect::<Vec<_>>())),
            ),
            ("close_date", Col::Date(close)),
            (
                "probability",
                Col::Double(rows.iter().map(|r| r.5).collect()),
            ),
            (
                "forecast_category",
                Col::Str(rows.iter().map(|r| r.6).collect()),
            ),
            ("is_deleted", Col::Bool(rows.iter().map(|r| r.7).collect())),
        ],
    );
    dir
}

/// (id, deal, created_date, stage, amount, probability, forecast category, deleted)
type HistoryRow = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    f64,
    &'static str,
    bool,
);

/// (id, organization, priority, created_at, solved_at, deleted)
type TicketRow = (
    i64,
    Option<i64>,
    &'static str,
    &'static str,
    &'static str,
    bool,
);

// open_pipeline as of 2025-06-30 (end of day in Los Angeles = 2025-07-01T07:00Z).
// States at D: D15 H15c Negotiation 950.00 (H15d at exactly 07:00Z is after D);
// D2 H2c Proposal 1200.00 EUR (it went forward to Negotiation, then back);
// D1 Closed Won (not open: outside the universe); D4 100.01 GBP; D5 500 (test);
// D7 700 (internal); D10 400 (deleted deal); D12 5000 (Omitted); D8 null amount;
// D9 Proposal 200 (its Closed Lost row is deleted, so not a state); D3 no state yet.
// Converted at the rates of D: EUR 0.9, GBP 0.75.
//   D15 950.00 + D2 1200.00/0.9 = 1333.333… → 1333.33 + D4 100.01/0.75 = 133.3466… → 133.35
//   + D9 200.00 = 2616.68 (4 deals)
// Exclusions: deleted 1 / 400.00, test_account 1 / 500.00, internal_account 1 / 700.00,
// omitted_forecast 1 / 5000.00, missing_amount 1 / 0.00.
// Universe: 9 deals, 2616.68 + 400.00 + 500.00 + 700.00 + 5000.00 = 9216.68.
#[test]
fn open_pipeline_as_of_a_day_uses_the_state_at_that_day() {
    let data = fixture();
    let r = query_json(
        &repo(),
        data.path(),
        &["open_pipeline", "--as-of", "2025-06-30"],
    );
    assert_eq!(r["kind"], "snapshot");
    assert_eq!(r["value"], "2616.68");
    assert_eq!(exclusion(&r, "deleted"), (1, "400.00".into()));
    assert_eq!(exclusion(&r, "test_account"), (1, "500.00".into()));
    assert_eq!(exclusion(&r, "internal_account"), (1, "700.00".into()));
    assert_eq!(exclusion(&r, "omitted_forecast"), (1, "5000.00".into()));
    assert_eq!(exclusion(&r, "missing_amount"), (1, "0.00".into()));
    assert_eq!(r["tallies"][0]["universe_rows"], 9);
    assert_eq!(r["tallies"][0]["universe_value"], "9216.68");
    assert_eq!(r["request"]["as_of"], "2025-06-30");
}

// By stage at D: Negotiation = D15 950.00; Proposal = D2 1333.33 + D9 200.00 = 1533.33;
// Discovery = D4 133.35.
#[test]
fn open_pipeline_by_stage_at_the_day() {
    let data = fixture();
    let r = query_json(
        &repo(),
        data.path(),
        &[
            "open_pipeline",
            "--as-of",
            "2025-06-30",
            "--by",
            "stage_name",
        ],
    );
    let got = sorted_rows(&r, "stage_name");
    assert_eq!(
        got,
        [
            ("Discovery".to_string(), "133.35".to_string()),
            ("Negotiation".to_string(), "950.00".to_string()),
            ("Proposal".to_string(), "1533.33".to_string()),
        ]
    );
}

// weighted_pipeline as of 2025-06-30, weighted in the deal's currency, then
// converted and rounded once:
//   D15 950.00 × 70/100 = 665.00 USD
//   D2 1200.00 × 50/100 = 600.00 EUR / 0.9 = 666.666… → 666.67
//   D4 100.01 × 20/100 = 20.002 GBP / 0.75 = 26.669333… → 26.67
//   D9 200.00 × 60/100 = 120.00
// 665.00 + 666.67 + 26.67 + 120.00 = 1478.34
#[test]
fn weighted_pipeline_weights_each_deal_by_its_probability_at_the_day() {
    let data = fixture();
    let r = query_json(
        &repo(),
        data.path(),
        &["weighted_pipeline", "--as-of", "2025-06-30"],
    );
    assert_eq!(r["value"], "1478.34");
}

// A monthly series: open_pipeline at each month end.
//   Apr 30 (end = 2025-05-01T07:00Z): D15 H15a 800.00 (H15b is May 1 10:00Z);
//     D2 H2b Negotiation 1000 EUR / 0.9 = 1111.11; D4 133.35; D9 200.00 → 2244.46
//   May 31: D15 H15b 900.00; D2 1111.11; D4 133.35; D9 200.00 → 2344.46
//   Jun 30: 2616.68 (as above)
#[test]
fn open_pipeline_series_at_each_month_end() {
    let data = fixture();
    let r = query_json(
        &repo(),
        data.path(),
        &[
            "open_pipeline",
            "--from",
            "2025-04-01",
            "--to",
            "2025-07-01",
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
            ("2025-04".to_string(), "2244.46".to_string()),
            ("2025-05".to_string(), "2344.46".to_string()),
            ("2025-06".to_string(), "2616.68".to_string()),
        ]
    );
}

#[test]
fn a_flow_metric_refuses_as_of() {
    let data = fixture();
    let out = canon(
        &repo(),
        &[
            "query",
            "bookings",
            "--as-of",
            "2025-06-30",
            "--data",
            data.path().to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("flow metric"), "{}", stderr(&out));
}

/// Support desk: organizations O1 (CRM A1), O2 (A6, merged A6 → A8 → A1),
/// O3 (no CRM id), O4 (A999, unknown to the CRM), and tickets T1..T9.
fn write_support(root: &std::path::Path) {
    write_table(
        root,
        "support/organization",
        vec![
            ("id", Col::Int(vec![1, 2, 3, 4])),
            (
                "name",
                Col::Str(vec!["Globex", "Globex Legacy", "Walk-in", "Ghost"]),
            ),
            ("external_id", Col::OptStr(some(&["A1", "A6", "", "A999"]))),
            ("created_at", Col::Ts(vec!["2024-01-01T00:00:00Z"; 4])),
            ("is_deleted", Col::Bool(vec![false; 4])),
        ],
    );
    // (id, organization, priority, created_at, solved_at, deleted)
    let t: Vec<TicketRow> = vec![
        (1, Some(1), "high", "2025-06-01T12:00:00Z", "", false),
        (
            2,
            Some(2),
            "urgent",
            "2025-06-10T12:00:00Z",
            "2025-07-01T07:00:00Z",
            false,
        ),
        (
            3,
            Some(1),
            "low",
            "2025-06-10T12:00:00Z",
            "2025-07-01T06:59:59Z",
            false,
        ),
        (4, Some(3), "low", "2025-06-20T12:00:00Z", "", false),
        (5, Some(4), "normal", "2025-06-21T12:00:00Z", "", false),
        (6, Some(1), "high", "2025-07-01T06:00:00Z", "", false),
        (7, Some(1), "high", "2025-07-01T07:00:00Z", "", false),
        (8, Some(1), "normal", "2025-05-01T12:00:00Z", "", true),
        (9, None, "", "2025-06-05T12:00:00Z", "", false),
    ];
    write_table(
        root,
        "support/ticket",
        vec![
            ("id", Col::Int(t.iter().map(|r| r.0).collect())),
            (
                "organization_id",
                Col::OptInt(t.iter().map(|r| r.1).collect()),
            ),
            ("requester_id", Col::Int(vec![100; t.len()])),
            ("status", Col::Str(vec!["open"; t.len()])),
            (
                "priority",
                Col::OptStr(some(&t.iter().map(|r| r.2).collect::<Vec<_>>())),
            ),
            ("created_at", Col::Ts(t.iter().map(|r| r.3).collect())),
            (
                "solved_at",
                Col::OptTs(
                    t.iter()
                        .map(|r| if r.4.is_empty() { None } else { Some(r.4) })
                        .collect(),
                ),
            ),
            ("is_deleted", Col::Bool(t.iter().map(|r| r.5).collect())),
        ],
    );
}

// open_tickets as of 2025-06-30 (end of day in LA = 2025-07-01T07:00Z):
//   T1 open; T2 solved at exactly 07:00Z = midnight ending Jun 30 → still open at D;
//   T3 solved 06:59:59Z → solved by D (outside); T4, T5 open; T6 created 06:00Z
//   (Jun 30 23:00 LA) → open; T7 created 07:00Z (Jul 1 in LA) → not yet; T8 deleted;
//   T9 open (no organization).
// universe 7 (T1, T2, T4, T5, T6, T8, T9), deleted 1 (T8), counted 6.
// By customer: A1 = T1 + T2 (O2: A6 → A8 → A1) + T6 = 3; unmatched = T4 (no CRM id)
// + T5 (unknown CRM id) + T9 (no organization) = 3.
#[test]
fn open_tickets_at_the_as_of_boundary_and_by_customer() {
    let data = fixture();
    write_support(data.path());
    let r = query_json(
        &repo(),
        data.path(),
        &["open_tickets", "--as-of", "2025-06-30"],
    );
    assert_eq!(r["value"], "6");
    assert_eq!(exclusion(&r, "deleted"), (1, "1".into()));
    assert_eq!(r["tallies"][0]["universe_rows"], 7);
    let by = query_json(
        &repo(),
        data.path(),
        &["open_tickets", "--as-of", "2025-06-30", "--by", "customer"],
    );
    let got = sorted_rows(&by, "customer");
    assert_eq!(
        got,
        [
            ("A1".to_string(), "3".to_string()),
            ("unmatched".to_string(), "3".to_string())
        ]
    );
}
