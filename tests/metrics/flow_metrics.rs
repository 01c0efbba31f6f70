//! The flow metrics of metrics.md on the fixture company of `common`, through
//! the real binary, every expected number worked out by hand below.

use crate::common::*;
use serde_json::Value;

/// (period, slice values in request order, value) of each row.
fn rows(result: &Value) -> Vec<(String, Vec<String>, String)> {
    let by: Vec<String> = result["request"]["by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_str().unwrap().to_string())
        .collect();
    result["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let slices = by
                .iter()
                .map(|b| r[b].as_str().unwrap_or("").to_string())
                .collect();
            (
                r["period"].as_str().unwrap().to_string(),
                slices,
                r["value"].as_str().unwrap_or("null").to_string(),
            )
        })
        .collect()
}

// Bookings, FY2026-Q1 = [2025-02-01, 2025-05-01). Universe: won deals closed
// in the quarter: D1..D11 (D12 is lost, D13 closes 2025-05-01 = next quarter,
// D14 closes 2025-01-31 = FY2025).
//   D1  USD 1000.00                                  = 1000.00
//   D2  EUR 1000.00 / 0.800000 (rate of 2025-02-28)  = 1250.00
//   D3  EUR 1000.00 / 0.900000 (rate of 2025-03-01)  = 1111.111… → 1111.11
//   D4  GBP  100.01 / 0.750000                       = 133.3466… → 133.35
//   D5  Test Corp            500.00 → test_account
//   D6  Contest Ltd          300.00 → test_account (the rule's known limitation)
//   D7  Acme Internal        700.00 → internal_account
//   D8  amount null                 → missing_amount (value 0.00)
//   D9  A6 → A8 → A1 Globex  200.00 → counted: judged on the survivor, not "Test Legacy Co"
//   D10 deleted AND on Test Corp, 400.00 → deleted (first matching exclusion wins)
//   D11 amount 0.00                 → counted (0 is not missing)
// included = 1000.00 + 1250.00 + 1111.11 + 133.35 + 200.00 + 0.00 = 3694.46 (6 deals)
// excluded: deleted 1 / 400.00, test_account 2 / 800.00, internal 1 / 700.00, missing 1 / 0.00
// universe = 11 deals, 3694.46 + 400.00 + 800.00 + 700.00 + 0.00 = 5594.46
#[test]
fn bookings_for_a_fiscal_quarter_with_every_exclusion() {
    let data = fixture();
    let r = query_json(&repo(), data.path(), &["bookings", "--period", "FY2026-Q1"]);
    assert_eq!(r["value"], "3694.46");
    assert_eq!(r["unit"], "USD");
    assert_eq!(r["kind"], "simple");
    assert_eq!(exclusion(&r, "deleted"), (1, "400.00".into()));
    assert_eq!(exclusion(&r, "test_account"), (2, "800.00".into()));
    assert_eq!(exclusion(&r, "internal_account"), (1, "700.00".into()));
    assert_eq!(exclusion(&r, "missing_amount"), (1, "0.00".into()));
    let names: Vec<&str> = r["exclusions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "deleted",
            "test_account",
            "internal_account",
            "missing_amount"
        ]
    );
    let t = &r["tallies"][0];
    assert_eq!(t["universe_rows"], 11);
    assert_eq!(t["universe_value"], "5594.46");
    assert_eq!(t["included_rows"], 6);
    assert_eq!(t["included_value"], "3694.46");
    assert_eq!(r["request"]["period"]["from"], "2025-02-01");
    assert_eq!(r["request"]["period"]["to"], "2025-05-01");
}

// The same deals by month: Feb = D1 1000.00 + D2 1250.00 = 2250.00;
// Mar = D3 1111.11 + D11 0.00 = 1111.11; Apr = D4 133.35 + D9 200.00 = 333.35.
// 2250.00 + 1111.11 + 333.35 = 3694.46, the quarter's headline.
#[test]
fn bookings_by_month_foot_to_the_quarter() {
    let data = fixture();
    let r = query_json(
        &repo(),
        data.path(),
        &["bookings", "--period", "FY2026-Q1", "--grain", "month"],
    );
    let got = rows(&r);
    let expected = [
        ("2025-02", "2250.00"),
        ("2025-03", "1111.11"),
        ("2025-04", "333.35"),
    ];
    assert_eq!(got.len(), 3);
    for ((p, _, v), (ep, ev)) in got.iter().zip(expected) {
        assert_eq!((p.as_str(), v.as_str()), (ep, ev));
    }
    assert_eq!(r["value"], "3694.46");
}

// By deal type: New Business = D1 1000.00 + D4 133.35 + D9 200.00 = 1333.35;
// Expansion = D2 1250.00 + D11 0.00 = 1250.00; Renewal = D3 1111.11.
#[test]
fn bookings_by_an_approved_slice() {
    let data = fixture();
    let r = query_json(
        &repo(),
        data.path(),
        &["bookings", "--period", "FY2026-Q1", "--by", "deal_type"],
    );
    let mut got: Vec<(String, String)> = rows(&r)
        .into_iter()
        .map(|(_, s, v)| (s[0].clone(), v))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("Expansion".to_string(), "1250.00".to_string()),
            ("New Business".to_string(), "1333.35".to_string()),
            ("Renewal".to_string(), "1111.11".to_string()),
        ]
    );
}

// Industry comes through the account link, resolved to survivors: D9's
// account A6 resolves to A1 (Technology), not A6's own Retail.
// Technology (A1) = D1 1000.00 + D4 133.35 + D9 200.00 + D11 0.00 = 1333.35;
// Finance (A2 Initech) = D2 1250.00 + D3 1111.11 = 2361.11.
#[test]
fn slices_through_links_use_the_surviving_account() {
    let data = fixture();
    let r = query_json(
        &repo(),
        data.path(),
        &["bookings", "--period", "FY2026-Q1", "--by", "industry"],
    );
    let mut got: Vec<(String, String)> = rows(&r)
        .into_iter()
        .map(|(_, s, v)| (s[0].clone(), v))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("Finance".to_string(), "2361.11".to_string()),
            ("Technology".to_string(), "1333.35".to_string())
        ]
    );
}

// new_bookings drops Renewal deals from the universe: 3694.46 − D3 1111.11 = 2583.35.
#[test]
fn new_bookings_leave_out_renewals() {
    let data = fixture();
    let r = query_json(
        &repo(),
        data.path(),
        &["new_bookings", "--period", "FY2026-Q1"],
    );
    assert_eq!(r["value"], "2583.35");
}

// The fiscal-year boundary: D14 closes 2025-01-31, the last day of FY2025:
// JPY 15000.00 / 150.000000 = 100.00, and D13 (2025-05-01) is FY2026-Q2.
// FY2025-Q4 = Nov 2024 .. Jan 2025 holds only D14.
#[test]
fn fiscal_year_boundary() {
    let data = fixture();
    let q4 = query_json(&repo(), data.path(), &["bookings", "--period", "FY2025-Q4"]);
    assert_eq!(q4["value"], "100.00");
    let q2 = query_json(&repo(), data.path(), &["bookings", "--period", "FY2026-Q2"]);
    assert_eq!(q2["value"], "999.00");
}

// win_rate FY2026-Q1: won deals in the quarter D1..D11 minus deleted (D10),
// test (D5, D6) and internal (D7) = 7 (D8's missing amount does not matter
// for a count). Closed = those 11 + D12 lost = 12, minus the same 4 = 8.
// 7 / 8 = 0.875000.
#[test]
fn win_rate_counts_deals() {
    let data = fixture();
    let r = query_json(&repo(), data.path(), &["win_rate", "--period", "FY2026-Q1"]);
    assert_eq!(r["value"], "0.875000");
    assert_eq!(r["kind"], "ratio");
    let tallies = r["tallies"].as_array().unwrap();
    assert_eq!(tallies[0]["metric"], "won_deals");
    assert_eq!(tallies[0]["included_rows"], 7);
    assert_eq!(tallies[1]["metric"], "closed_deals");
    assert_eq!(tallies[1]["included_rows"], 8);
    assert_eq!(tallies[1]["universe_rows"], 12);
}

// avg_sales_cycle_days FY2026-Q1 over the 7 counted won deals, creation day
// taken in Los Angeles:
//   D1  created 2025-01-05T18:00Z = Jan 5 LA, closed Feb 10 → 36
//   D2  created 2025-01-10T12:00Z = Jan 10,   closed Feb 28 → 49
//   D3  created 2025-02-01T05:00Z = Jan 31 LA (not Feb 1), closed Mar 1 → 29
//   D4  created 2025-04-01T00:00Z = Mar 31 LA, closed Apr 30 → 30
//   D8  created 2025-03-01T20:00Z = Mar 1,  closed Apr 1 → 31
//   D9  created 2025-03-02T20:00Z = Mar 2,  closed Apr 2 → 31
//   D11 created 2025-03-11T20:00Z = Mar 11, closed Mar 21 → 10
// (36 + 49 + 29 + 30 + 31 + 31 + 10) / 7 = 216 / 7 = 30.857… → 30.86
#[test]
fn average_sales_cycle_uses_the_reporting_zone_day() {
    let data = fixture();
    let r = query_json(
        &repo(),
        data.path(),
        &["avg_sales_cycle_days", "--period", "FY2026-Q1"],
    );
    assert_eq!(r["value"], "30.86");
}

// pipeline_created for January 2025 in Los Angeles = [2025-01-01T08:00Z,
// 2025-02-01T08:00Z): D1 (USD 1000.00), D2 (EUR 1000.00 at the Jan 10 rate
// 0.8 = 1250.00) and D3, created 2025-02-01T05:00Z — still January 31 in
// Los Angeles — EUR 1000.00 at the Jan 31 rate 0.8 = 1250.00.
// 1000.00 + 1250.00 + 1250.00 = 3500.00. February then starts without D3.
#[test]
fn pipeline_created_assigns_instants_to_the_los_angeles_day() {
    let data = fixture();
    let jan = query_json(
        &repo(),
        data.path(),
        &["pipeline_created", "--period", "2025-01"],
    );
    assert_eq!(jan["value"], "3500.00");
    assert_eq!(jan["tallies"][0]["universe_rows"], 3);
}

// recognized_revenue FY2026-Q1 = accounting periods Feb, Mar, Apr 2025
// (ids 2, 3, 4). Recognized lines: L1 100.00 (Feb), L2 200.50 (Mar),
// L3 300.25 (Apr, Services), L5 75.00 (Mar, deleted). L4 is not recognized
// (outside the universe), L6 is January, L7 is May.
// included = 100.00 + 200.50 + 300.25 = 600.75; deleted 1 / 75.00.
// By item type: Services 300.25; Subscription 100.00 + 200.50 = 300.50.
#[test]
fn recognized_revenue_over_whole_accounting_periods() {
    let data = fixture();
    let r = query_json(
        &repo(),
        data.path(),
        &["recognized_revenue", "--period", "FY2026-Q1"],
    );
    assert_eq!(r["value"], "600.75");
    assert_eq!(exclusion(&r, "deleted"), (1, "75.00".into()));
    let by = query_json(
        &repo(),
        data.path(),
        &[
            "recognized_revenue",
            "--period",
            "FY2026-Q1",
            "--by",
            "item_type",
        ],
    );
    let mut got: Vec<(String, String)> = rows(&by)
        .into_iter()
        .map(|(_, s, v)| (s[0].clone(), v))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("Services".to_string(), "300.25".to_string()),
            ("Subscription".to_string(), "300.50".to_string())
        ]
    );
}

// Lineage names the definition and every table read with its files.
#[test]
fn lineage_names_definition_files_and_columns() {
    let data = fixture();
    let r = query_json(&repo(), data.path(), &["bookings", "--period", "FY2026-Q1"]);
    assert_eq!(r["definition"]["file"], "metrics/sales.yaml");
    assert_eq!(r["definition"]["version"], 1);
    assert_eq!(r["definition"]["sha256"].as_str().unwrap().len(), 64);
    let sources = r["lineage"]["sources"].as_array().unwrap();
    let tables = lineage_tables(&r);
    assert_eq!(
        tables,
        [
            "crm/account",
            "crm/dated_conversion_rate",
            "crm/opportunity"
        ]
    );
    let opp = &sources[2];
    assert_eq!(opp["files"][0]["rows"], 15);
    // The content hash of the file as it is on disk.
    let path = opp["files"][0]["path"].as_str().unwrap();
    let bytes = std::fs::read(path).unwrap();
    use sha2::Digest;
    assert_eq!(
        opp["files"][0]["sha256"],
        hex::encode(sha2::Sha256::digest(&bytes))
    );
    let cols: Vec<&str> = opp["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(
        cols.contains(&"amount") && cols.contains(&"close_date"),
        "{cols:?}"
    );
    assert!(
        !cols.contains(&"name"),
        "an unused column was read: {cols:?}"
    );
    assert!(
        r["lineage"]["plans"][0][1]
            .as_str()
            .unwrap()
            .contains("TableScan")
    );
    assert_eq!(r["fingerprint"].as_str().unwrap().len(), 64);
}

// Re-pointing the deal entity at a differently shaped table (the amount
// column renamed) changes the mapping only; bookings stay 3694.46.
#[test]
fn a_new_mapping_leaves_every_metric_unchanged() {
    let project = tempfile::tempdir().unwrap();
    copy_project(project.path());
    let crm = project.path().join("models/crm.yaml");
    let text = std::fs::read_to_string(&crm).unwrap();
    let renamed = text
        .replace(
            "      - {name: amount, type: money, nullable: true, description: \"Amount in the deal's currency; may be missing\"}",
            "      - {name: deal_value, type: money, nullable: true, description: \"Amount, as another CRM calls it\"}",
        )
        .replacen("      - {name: amount}\n      - {name: currency, expr: currency_iso_code}", "      - {name: amount, expr: deal_value}\n      - {name: currency, expr: currency_iso_code}", 1);
    assert_ne!(text, renamed, "the test must change the mapping");
    std::fs::write(&crm, renamed).unwrap();
    let data = tempfile::tempdir().unwrap();
    write_company(data.path());
    std::fs::remove_dir_all(data.path().join("crm/opportunity")).unwrap();
    write_opportunities(data.path(), "crm/opportunity", "deal_value");
    let r = query_json(
        project.path(),
        data.path(),
        &["bookings", "--period", "FY2026-Q1"],
    );
    assert_eq!(r["value"], "3694.46");
    let metrics_before = std::fs::read_to_string(repo().join("metrics/sales.yaml")).unwrap();
    let metrics_after = std::fs::read_to_string(project.path().join("metrics/sales.yaml")).unwrap();
    assert_eq!(metrics_before, metrics_after);
}

// The table an analyst reads: thousands separators, exclusions and sources.
#[test]
fn table_output_shows_the_number_and_its_evidence() {
    let data = fixture();
    let out = canon(
        &repo(),
        &[
            "query",
            "bookings",
            "--period",
            "FY2026-Q1",
            "--data",
            data.path().to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("3,694.46 USD"), "{text}");
    assert!(text.contains("test_account"), "{text}");
    assert!(text.contains("crm/opportunity"), "{text}");
    assert!(text.contains("5,594.46"), "{text}");
}

// CSV and Parquet carry the same exact values.
#[test]
fn csv_and_parquet_outputs() {
    let data = fixture();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("b.csv");
    let out = canon(
        &repo(),
        &[
            "query",
            "bookings",
            "--period",
            "FY2026-Q1",
            "--grain",
            "month",
            "--format",
            "csv",
            "--out",
            csv.to_str().unwrap(),
            "--data",
            data.path().to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(
        text.lines().next().unwrap(),
        "metric,period,period_start,period_end,value,unit,complete"
    );
    assert!(
        text.contains("bookings,2025-03,2025-03-01,2025-04-01,1111.11,USD,true"),
        "{text}"
    );

    let pq = dir.path().join("b.parquet");
    let out = canon(
        &repo(),
        &[
            "query",
            "bookings",
            "--period",
            "FY2026-Q1",
            "--format",
            "parquet",
            "--out",
            pq.to_str().unwrap(),
            "--data",
            data.path().to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    use datafusion::arrow::array::{AsArray, Decimal128Array};
    let file = std::fs::File::open(&pq).unwrap();
    let reader =
        datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
    let batch = reader.into_iter().next().unwrap().unwrap();
    let values: &Decimal128Array = batch.column_by_name("value").unwrap().as_primitive();
    // 3694.46 at scale 2 = 369446 cents
    assert_eq!(values.value(0), 369446);
    assert_eq!(values.scale(), 2);
}

// new_business_share (derived) = new_bookings / bookings:
// quarter 2583.35 / 3694.46 = 0.69924968… → 0.699250;
// Feb 2250.00 / 2250.00 = 1.000000; Mar 0.00 / 1111.11 = 0.000000 (D3 is the
// renewal, D11 books 0.00); Apr 333.35 / 333.35 = 1.000000.
#[test]
fn derived_metrics_evaluate_over_their_inputs() {
    let data = fixture();
    let r = query_json(
        &repo(),
        data.path(),
        &[
            "new_business_share",
            "--period",
            "FY2026-Q1",
            "--grain",
            "month",
        ],
    );
    assert_eq!(r["kind"], "derived");
    assert_eq!(r["value"], "0.699250");
    let got: Vec<(String, String)> = rows(&r).into_iter().map(|(p, _, v)| (p, v)).collect();
    assert_eq!(
        got,
        [
            ("2025-02".to_string(), "1.000000".to_string()),
            ("2025-03".to_string(), "0.000000".to_string()),
            ("2025-04".to_string(), "1.000000".to_string()),
        ]
    );
    // Both inputs' exclusions are reported, each under its own metric.
    let metrics: Vec<&str> = r["tallies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["metric"].as_str().unwrap())
        .collect();
    assert_eq!(metrics, ["new_bookings", "bookings"]);
}

// `canon explain` shows each stage's plan, and the period reaches the Parquet
// scan as a half-open range on the raw close_date column (so statistics prune).
#[test]
fn explain_shows_plans_with_the_period_pushed_to_the_scan() {
    let data = fixture();
    let out = canon(
        &repo(),
        &[
            "explain",
            "bookings",
            "--period",
            "FY2026-Q1",
            "--data",
            data.path().to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    if std::env::var("SHOW_PLAN").is_ok() {
        println!("{text}");
    }
    for stage in [
        "-- logical plan --",
        "-- optimized logical plan --",
        "-- physical plan --",
    ] {
        assert!(text.contains(stage), "{stage} missing:\n{text}");
    }
    let physical = text.split("-- physical plan --").nth(1).unwrap();
    let scan = physical
        .lines()
        .find(|l| l.contains("DataSourceExec") && l.contains("crm/opportunity"))
        .unwrap_or_else(|| panic!("no opportunity scan:\n{physical}"));
    assert!(
        scan.contains("close_date@") && scan.contains(">= 2025-02-01"),
        "{scan}"
    );
    assert!(scan.contains("< 2025-05-01"), "{scan}");
}
