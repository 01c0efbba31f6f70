//! Requests over many buckets: the `engine.max_buckets` limit (refused
//! before planning, with a coarser grain that fits), and snapshot series
//! computed in one pass (each history read once, states as validity
//! intervals joined to the series' instants), which must give, to the cent,
//! what each instant gives alone. Through the real binary.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;

/// A wall-clock guard that only detects a hang: performance is measured by
/// benches/, not here.
const HANG: Duration = Duration::from_secs(60);

/// (id, deal, created_date, stage, amount, probability, forecast category, deleted)
pub(super) type HistoryRow = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    f64,
    &'static str,
    bool,
);

/// The fixture company (deals, accounts and rates of `common::write_company`:
/// EUR 0.800000 until 2025-03-01, then 0.900000; GBP 0.750000) with this
/// opportunity history (UTC instants; LA is UTC−8 in Feb/Mar before DST, so
/// the end of day D in LA is D+1 08:00Z):
///
/// | deal | account     | cur | history                                                        |
/// |------|-------------|-----|----------------------------------------------------------------|
/// | D2   | A2          | EUR | 02-20T12 Discovery 1000; 02-26T20 Proposal 1200;               |
/// |      |             |     | 03-03T10 Negotiation 1500 (two changes inside the series)      |
/// | D3   | A2          | EUR | 02-20T12 Prospecting 100.01                                    |
/// | D15  | A2          | USD | 02-24T18 Discovery 700 (H15a); 02-27T18 Proposal 800 (H15b)    |
/// |      |             |     | and, at the same instant, Proposal 900 (H15c, written first):  |
/// |      |             |     | the higher history id wins, so 900                              |
/// | D4   | A1          | GBP | 02-20T12 Discovery 150; 03-02T12 Closed Lost, a deleted row    |
/// |      |             |     | (not a state: D4 stays open)                                   |
/// | D12  | A2          | USD | 02-20T12 Negotiation 300; 03-01T20 Closed Won (leaves)         |
/// | D5   | A3 test     | USD | 02-26T09 Proposal 500 (= Feb 26 01:00 LA)                      |
/// | D10  | A3, deleted | USD | 02-20T12 Proposal 400 (the deal is deleted)                    |
///
/// The pipeline counts a deal only from its creation on, so D4 and D15
/// (created 2025-04-01 and 2025-03-01 in `write_company`, for the flow
/// metrics) are created here at their first history row: 02-20T12 and
/// 02-24T18.
pub(super) fn fixture() -> tempfile::TempDir {
    fixture_with(|_| {})
}

/// The fixture with its history rows changed by `amend` first.
pub(super) fn fixture_with(amend: impl Fn(&mut Vec<HistoryRow>)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_company(dir.path());
    set_instants(
        dir.path(),
        "crm/opportunity",
        "created_date",
        &[
            ("D4", "2025-02-20T12:00:00Z"),
            ("D15", "2025-02-24T18:00:00Z"),
        ],
    );
    std::fs::remove_dir_all(dir.path().join("crm/opportunity_history")).unwrap();
    #[rustfmt::skip]
    let mut rows: Vec<HistoryRow> = vec![
        ("H2a", "D2", "2025-02-20T12:00:00Z", "Discovery", "1000.00", 20.0, "Pipeline", false),
        ("H2b", "D2", "2025-02-26T20:00:00Z", "Proposal", "1200.00", 50.0, "BestCase", false),
        ("H2c", "D2", "2025-03-03T10:00:00Z", "Negotiation", "1500.00", 70.0, "Commit", false),
        ("H3a", "D3", "2025-02-20T12:00:00Z", "Prospecting", "100.01", 10.0, "Pipeline", false),
        ("H15a", "D15", "2025-02-24T18:00:00Z", "Discovery", "700.00", 20.0, "Pipeline", false),
        ("H15c", "D15", "2025-02-27T18:00:00Z", "Proposal", "900.00", 50.0, "BestCase", false),
        ("H15b", "D15", "2025-02-27T18:00:00Z", "Proposal", "800.00", 50.0, "BestCase", false),
        ("H4a", "D4", "2025-02-20T12:00:00Z", "Discovery", "150.00", 20.0, "Pipeline", false),
        ("H4b", "D4", "2025-03-02T12:00:00Z", "Closed Lost", "150.00", 0.0, "Omitted", true),
        ("H12a", "D12", "2025-02-20T12:00:00Z", "Negotiation", "300.00", 70.0, "Commit", false),
        ("H12b", "D12", "2025-03-01T20:00:00Z", "Closed Won", "300.00", 100.0, "Closed", false),
        ("H5", "D5", "2025-02-26T09:00:00Z", "Proposal", "500.00", 50.0, "BestCase", false),
        ("H10", "D10", "2025-02-20T12:00:00Z", "Proposal", "400.00", 40.0, "BestCase", false),
    ];
    amend(&mut rows);
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
            ("close_date", Col::Date(vec!["2025-09-30"; rows.len()])),
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

/// (period, value) of every row of a result, in order.
fn rows(r: &serde_json::Value) -> Vec<(String, String)> {
    r["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["period"].as_str().unwrap().to_string(),
                row["value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The rows of bucket `period` with their slices, sorted, as the same
/// shape an as-of query's rows have (its period is the day).
fn bucket_rows(r: &serde_json::Value, period: &str) -> Vec<serde_json::Value> {
    let mut out: Vec<serde_json::Value> = r["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|row| row["period"] == period)
        .cloned()
        .collect();
    out.sort_by_key(|row| row.to_string());
    out
}

fn day_after(d: &str) -> String {
    let d = chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
    d.succ_opt().unwrap().to_string()
}

fn day_before(d: &str) -> String {
    let d = chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
    d.pred_opt().unwrap().to_string()
}

// open_pipeline by day over 2025-02-25 .. 2025-03-04 (end of day D = D+1 08:00Z;
// EUR at 0.8 through Feb 28, 0.9 from Mar 1, the rate of D; rounded per deal):
//   Feb 25: D2 H2a 1000/0.8 = 1250.00; D3 100.01/0.8 = 125.0125 → 125.01;
//           D15 H15a 700.00; D4 150/0.75 = 200.00; D12 300.00 (D5 not yet: Feb 26 09:00Z)
//           = 1250.00 + 125.01 + 700.00 + 200.00 + 300.00 = 2575.01
//   Feb 26: D2 H2b 1200/0.8 = 1500.00 → 1500.00 + 125.01 + 700.00 + 200.00 + 300.00 = 2825.01
//           (D5 now in, as test_account 500.00)
//   Feb 27: D15 at 02-27T18 has two rows, H15c 900 beats H15b 800 (higher id)
//           → 1500.00 + 125.01 + 900.00 + 200.00 + 300.00 = 3025.01
//   Feb 28: the same, still at 0.8 = 3025.01
//   Mar 1:  D12 Closed Won at 03-01T20 (before 03-02T08) leaves; EUR at 0.9:
//           D2 1200/0.9 = 1333.333… → 1333.33; D3 100.01/0.9 = 111.1222… → 111.12
//           → 1333.33 + 111.12 + 900.00 + 200.00 = 2544.45
//           (Σ EUR first, 1300.01/0.9 = 1444.4556 → 1444.46, would be a cent off 1444.45)
//   Mar 2:  the same (H4b is deleted, not a state; H2c is Mar 3 10:00Z) = 2544.45
//   Mar 3:  D2 H2c 1500/0.9 = 1666.666… → 1666.67 → 1666.67 + 111.12 + 900.00 + 200.00 = 2877.79
//   Mar 4:  the same = 2877.79
// At the last day: deleted 1 / 400.00 (D10), test_account 1 / 500.00 (D5);
// universe 6 deals, 2877.79 + 400.00 + 500.00 = 3777.79.
#[test]
fn a_daily_series_with_stage_changes_ties_a_deletion_and_a_rate_change() {
    let data = fixture();
    let r = query_json(
        &repo(),
        data.path(),
        &[
            "open_pipeline",
            "--from",
            "2025-02-25",
            "--to",
            "2025-03-05",
            "--grain",
            "day",
        ],
    );
    let expected = [
        ("2025-02-25", "2575.01"),
        ("2025-02-26", "2825.01"),
        ("2025-02-27", "3025.01"),
        ("2025-02-28", "3025.01"),
        ("2025-03-01", "2544.45"),
        ("2025-03-02", "2544.45"),
        ("2025-03-03", "2877.79"),
        ("2025-03-04", "2877.79"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(d, v)| (d.to_string(), v.to_string()))
        .collect();
    assert_eq!(rows(&r), expected);
    assert_eq!(r["value"], "2877.79");
    assert_eq!(exclusion(&r, "deleted"), (1, "400.00".into()));
    assert_eq!(exclusion(&r, "test_account"), (1, "500.00".into()));
    assert_eq!(exclusion(&r, "omitted_forecast"), (0, "0.00".into()));
    assert_eq!(r["tallies"][0]["universe_rows"], 6);
    assert_eq!(r["tallies"][0]["universe_value"], "3777.79");
}

// Each bucket of the series against the same day asked alone (`--as-of`,
// which plans the latest state per deal with an aggregate, not intervals):
// values, rows by stage and the exclusion tallies must be identical. A
// series' tallies are those of its last day, so each day's are read off a
// two-day series ending that day. Hand-worked tallies of two days:
//   Feb 25: deleted 1 / 400.00 (D10); test_account 0 (D5 has no state yet);
//           universe 6 rows (D2, D3, D15, D4, D12, D10), 2575.01 + 400.00 = 2975.01
//   Mar 1:  deleted 1 / 400.00; test_account 1 / 500.00; D12 closed (outside);
//           universe 6 rows (D2, D3, D15, D4, D5, D10), 2544.45 + 900.00 = 3444.45
#[test]
fn every_bucket_of_a_series_equals_its_instant_asked_alone() {
    let data = fixture();
    let series = |from: &str, to: &str, by: &[&str]| {
        let mut args = vec![
            "open_pipeline",
            "--from",
            from,
            "--to",
            to,
            "--grain",
            "day",
        ];
        args.extend_from_slice(by);
        query_json(&repo(), data.path(), &args)
    };
    let whole = series("2025-02-25", "2025-03-05", &[]);
    let by_stage = series("2025-02-25", "2025-03-05", &["--by", "stage_name"]);
    let mut checked = 0;
    for (day, value) in rows(&whole) {
        let alone = query_json(&repo(), data.path(), &["open_pipeline", "--as-of", &day]);
        assert_eq!(alone["value"], value.as_str(), "value at {day}");
        let alone_by = query_json(
            &repo(),
            data.path(),
            &["open_pipeline", "--as-of", &day, "--by", "stage_name"],
        );
        assert_eq!(
            bucket_rows(&by_stage, &day),
            bucket_rows(&alone_by, &day),
            "rows by stage at {day}"
        );
        let ending = series(&day_before(&day), &day_after(&day), &[]);
        assert_eq!(ending["rows"].as_array().unwrap().len(), 2);
        assert_eq!(
            ending["exclusions"], alone["exclusions"],
            "tallies at {day}"
        );
        assert_eq!(ending["tallies"], alone["tallies"], "tallies at {day}");
        match day.as_str() {
            "2025-02-25" => {
                assert_eq!(exclusion(&ending, "deleted"), (1, "400.00".into()));
                assert_eq!(exclusion(&ending, "test_account"), (0, "0.00".into()));
                assert_eq!(ending["tallies"][0]["universe_rows"], 6);
                assert_eq!(ending["tallies"][0]["universe_value"], "2975.01");
            }
            "2025-03-01" => {
                assert_eq!(exclusion(&ending, "deleted"), (1, "400.00".into()));
                assert_eq!(exclusion(&ending, "test_account"), (1, "500.00".into()));
                assert_eq!(ending["tallies"][0]["universe_rows"], 6);
                assert_eq!(ending["tallies"][0]["universe_value"], "3444.45");
            }
            _ => {}
        }
        checked += 1;
    }
    assert_eq!(checked, 8);
}

// weighted_pipeline by day, weighted in the deal's currency then converted
// and rounded once per deal (probability of the state):
//   Feb 28: D2 1200 × 50/100 = 600 EUR / 0.8 = 750.00; D3 100.01 × 10/100 = 10.001 / 0.8
//           = 12.50125 → 12.50; D15 900 × 0.5 = 450.00; D4 150 × 0.2 = 30 GBP / 0.75 = 40.00;
//           D12 300 × 0.7 = 210.00 → 750.00 + 12.50 + 450.00 + 40.00 + 210.00 = 1462.50
//   Mar 1:  D2 600 / 0.9 = 666.666… → 666.67; D3 10.001 / 0.9 = 11.1122… → 11.11;
//           D15 450.00; D4 40.00 → 666.67 + 11.11 + 450.00 + 40.00 = 1167.78
#[test]
fn a_weighted_series_converts_each_deal_at_each_days_rate() {
    let data = fixture();
    let r = query_json(
        &repo(),
        data.path(),
        &[
            "weighted_pipeline",
            "--from",
            "2025-02-28",
            "--to",
            "2025-03-02",
            "--grain",
            "day",
        ],
    );
    assert_eq!(
        rows(&r),
        [
            ("2025-02-28".to_string(), "1462.50".to_string()),
            ("2025-03-01".to_string(), "1167.78".to_string()),
        ]
    );
}

/// A governed result of the sample project, computed afresh.
fn sample_json(args: &[&str]) -> serde_json::Value {
    let data = repo().join("sample_data");
    query_json(&repo(), &data, args)
}

/// Every bucket of a series on the sample against the same day asked alone.
fn series_matches_each_instant(metric: &str, from: &str, to: &str, grain: &str) {
    let series = sample_json(&[metric, "--from", from, "--to", to, "--grain", grain]);
    let buckets = series["rows"].as_array().unwrap();
    assert!(buckets.len() > 1);
    let mut last = None;
    for row in buckets {
        // A snapshot's bucket is taken at its last day.
        let end = row["period_end"].as_str().unwrap();
        let day = day_before(end);
        let alone = sample_json(&[metric, "--as-of", &day]);
        assert_eq!(
            alone["value"], row["value"],
            "{metric} at {day} ({})",
            row["period"]
        );
        last = Some(alone);
    }
    let last = last.unwrap();
    assert_eq!(series["value"], last["value"]);
    assert_eq!(series["exclusions"], last["exclusions"]);
    assert_eq!(series["tallies"], last["tallies"]);
}

#[test]
fn a_daily_series_over_a_month_on_the_sample_equals_each_day_alone() {
    series_matches_each_instant("open_pipeline", "2025-01-01", "2025-02-01", "day");
}

#[test]
fn a_monthly_series_over_a_year_on_the_sample_equals_each_month_end_alone() {
    series_matches_each_instant("open_pipeline", "2025-01-01", "2026-01-01", "month");
    // A snapshot with both a history and validity intervals (health joined to
    // the charges in force).
    series_matches_each_instant("arr_at_risk", "2025-01-01", "2026-01-01", "month");
}

/// Runs canon and returns (exit code, stderr with temporary paths replaced),
/// failing if it takes longer than the hang guard.
fn run(project: &Path, args: &[&str], temp: Option<&Path>) -> (Option<i32>, String, String) {
    let started = Instant::now();
    let out = canon(project, args);
    assert!(
        started.elapsed() < HANG,
        "canon {args:?} took {:?}",
        started.elapsed()
    );
    let mut err = stderr(&out);
    if let Some(t) = temp {
        err = err.replace(&t.display().to_string(), "<project>");
    }
    (out.status.code(), stdout(&out), err)
}

fn sample_args<'a>(data: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["query", "--data", data];
    all.extend_from_slice(args);
    all
}

/// The repository's project in a temporary folder with `engine:` replaced.
fn project_with_engine(engine: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_project(dir.path());
    let path = dir.path().join("canon.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replace("engine:\n  memory_limit: 2GiB\n", engine);
    assert!(
        text.contains(engine),
        "canon.yaml has no engine section to replace"
    );
    std::fs::write(&path, text).unwrap();
    dir
}

#[test]
fn the_whole_calendar_by_day_is_refused_before_planning() {
    let data = repo().join("sample_data");
    let data = data.to_str().unwrap();
    let started = Instant::now();
    let (code, _, err) = run(
        &repo(),
        &sample_args(
            data,
            &[
                "bookings",
                "--from",
                "1900-01-01",
                "--to",
                "2999-12-31",
                "--grain",
                "day",
            ],
        ),
        None,
    );
    // Counted from the bounds: no bucket list, no plan, no scan.
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(code, Some(2), "{err}");
    insta::assert_snapshot!("whole_calendar_by_day", err);
    // A snapshot metric is refused the same way, before its instants exist.
    let (code, _, err2) = run(
        &repo(),
        &sample_args(
            data,
            &[
                "open_pipeline",
                "--from",
                "1900-01-01",
                "--to",
                "2999-12-31",
                "--grain",
                "day",
            ],
        ),
        None,
    );
    assert_eq!(code, Some(2));
    assert_eq!(err2, err);
}

// 2000-01-01 .. 2025-01-01 by day: 25 years of 365 days and 7 leap days (2000,
// 2004, 2008, 2012, 2016, 2020, 2024) = 9,125 + 7 = 9,132 buckets > 3,660; by
// month 300 fits.
#[test]
fn twenty_five_years_by_day_are_refused_with_a_grain_that_fits() {
    let data = repo().join("sample_data");
    let (code, _, err) = run(
        &repo(),
        &sample_args(
            data.to_str().unwrap(),
            &[
                "bookings",
                "--from",
                "2000-01-01",
                "--to",
                "2025-01-01",
                "--grain",
                "day",
            ],
        ),
        None,
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("9,132 day buckets"), "{err}");
    insta::assert_snapshot!("twenty_five_years_by_day", err);
}

// Five and ten years by day are within the default limit (1,827 and 3,653
// buckets) and answer; the buckets of a flow add up to the period's total.
#[test]
fn five_and_ten_years_by_day_answer() {
    for (from, buckets) in [("2020-01-01", 1827), ("2015-01-01", 3653)] {
        let daily = sample_json(&[
            "bookings",
            "--from",
            from,
            "--to",
            "2025-01-01",
            "--grain",
            "day",
        ]);
        let whole = sample_json(&["bookings", "--from", from, "--to", "2025-01-01"]);
        assert_eq!(daily["rows"].as_array().unwrap().len(), buckets);
        assert_eq!(daily["value"], whole["value"]);
        let sum: i128 = daily["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r["value"]
                    .as_str()
                    .unwrap()
                    .replace('.', "")
                    .parse::<i128>()
                    .unwrap()
            })
            .sum();
        let total: i128 = whole["value"]
            .as_str()
            .unwrap()
            .replace('.', "")
            .parse()
            .unwrap();
        assert_eq!(sum, total);
    }
}

// ARR by day over ten years (3,653 instants of a snapshot with validity
// intervals) overflowed the stack (signal 11) while it built one condition
// per day; it answers, and its last day is ARR at 2024-12-31 alone.
#[test]
fn ten_years_of_arr_by_day_answer() {
    let started = Instant::now();
    let daily = sample_json(&[
        "arr",
        "--from",
        "2015-01-01",
        "--to",
        "2025-01-01",
        "--grain",
        "day",
    ]);
    assert!(started.elapsed() < HANG);
    assert_eq!(daily["rows"].as_array().unwrap().len(), 3653);
    let alone = sample_json(&["arr", "--as-of", "2024-12-31"]);
    assert_eq!(daily["value"], alone["value"]);
    assert_eq!(daily["tallies"], alone["tallies"]);
}

// The daily open_pipeline series over a year on the sample (366 instants: 2024
// is a leap year) answers inside the memory pool; each history is read once.
#[test]
fn a_daily_open_pipeline_over_a_year_answers() {
    let started = Instant::now();
    let daily = sample_json(&[
        "open_pipeline",
        "--from",
        "2024-01-01",
        "--to",
        "2025-01-01",
        "--grain",
        "day",
    ]);
    assert!(started.elapsed() < HANG, "took {:?}", started.elapsed());
    let buckets = daily["rows"].as_array().unwrap();
    assert_eq!(buckets.len(), 366);
    for day in ["2024-02-29", "2024-12-31"] {
        let alone = sample_json(&["open_pipeline", "--as-of", day]);
        let row = buckets.iter().find(|r| r["period"] == day).unwrap();
        assert_eq!(row["value"], alone["value"], "at {day}");
    }
}

// max_buckets bounds what an analyst asks for, not canon's own checks:
// `validate` compiles every metric by month over FY2026 (twelve buckets),
// and still passes with a limit of 5.
#[test]
fn max_buckets_does_not_bound_validate() {
    let project = project_with_engine("engine:\n  memory_limit: 2GiB\n  max_buckets: 5\n");
    let data = repo().join("sample_data");
    let out = canon(
        project.path(),
        &["validate", "--data", data.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("definitions ok"), "{}", stdout(&out));
}

// max_buckets: 12 in canon.yaml. A quarter by day (90 buckets) is refused and
// told that --grain month gives 3; a year by month (12) is exactly the limit
// and answers; thirteen months are one too many.
#[test]
fn max_buckets_set_in_canon_yaml() {
    let project = project_with_engine("engine:\n  memory_limit: 2GiB\n  max_buckets: 12\n");
    let data = repo().join("sample_data");
    let data = data.to_str().unwrap();
    let (code, _, err) = run(
        project.path(),
        &sample_args(data, &["bookings", "--period", "2025-Q1", "--grain", "day"]),
        Some(project.path()),
    );
    assert_eq!(code, Some(2), "{err}");
    insta::assert_snapshot!("max_buckets_low_quarter_by_day", err);

    let (code, out, err) = run(
        project.path(),
        &sample_args(
            data,
            &[
                "bookings", "--period", "2025", "--grain", "month", "--format", "json",
            ],
        ),
        Some(project.path()),
    );
    assert_eq!(code, Some(0), "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["rows"].as_array().unwrap().len(), 12);

    let (code, _, err) = run(
        project.path(),
        &sample_args(
            data,
            &[
                "bookings",
                "--from",
                "2025-01-01",
                "--to",
                "2026-02-01",
                "--grain",
                "month",
            ],
        ),
        Some(project.path()),
    );
    assert_eq!(code, Some(2), "{err}");
    insta::assert_snapshot!("max_buckets_thirteen_months", err);

    // The whole calendar canon reads by day: even by year it is 1,100
    // buckets, over the 12 allowed, so no grain is offered.
    let (code, _, err) = run(
        project.path(),
        &sample_args(
            data,
            &[
                "bookings",
                "--from",
                "1900-01-01",
                "--to",
                "2999-12-31",
                "--grain",
                "day",
            ],
        ),
        Some(project.path()),
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("no coarser grain fits (--grain month gives 13,200, --grain quarter gives 4,400, --grain year gives 1,100)"),
        "{err}"
    );
}

// Fiscal quarters over thirty fiscal years (FY2001 .. FY2030: 2000-02-01 ..
// 2030-02-01) are 120 buckets and answer under the default limit; with
// max_buckets: 100 they are refused and fiscal_year (30) is offered.
#[test]
fn a_fiscal_grain_over_many_years() {
    let daily = sample_json(&[
        "bookings",
        "--from",
        "2000-02-01",
        "--to",
        "2030-02-01",
        "--grain",
        "fiscal_quarter",
    ]);
    let buckets = daily["rows"].as_array().unwrap();
    assert_eq!(buckets.len(), 120);
    assert_eq!(buckets[0]["period"], "FY2001-Q1");
    assert_eq!(buckets[119]["period"], "FY2030-Q4");
    let project = project_with_engine("engine:\n  memory_limit: 2GiB\n  max_buckets: 100\n");
    let data = repo().join("sample_data");
    let (code, _, err) = run(
        project.path(),
        &sample_args(
            data.to_str().unwrap(),
            &[
                "bookings",
                "--from",
                "2000-02-01",
                "--to",
                "2030-02-01",
                "--grain",
                "fiscal_quarter",
            ],
        ),
        Some(project.path()),
    );
    assert_eq!(code, Some(2), "{err}");
    insta::assert_snapshot!("fiscal_quarters_over_thirty_years", err);
}

#[test]
fn max_buckets_zero_is_a_located_error() {
    let project = project_with_engine("engine:\n  memory_limit: 2GiB\n  max_buckets: 0\n");
    let data = repo().join("sample_data");
    let (code, _, err) = run(
        project.path(),
        &sample_args(
            data.to_str().unwrap(),
            &["bookings", "--period", "2025", "--grain", "month"],
        ),
        Some(project.path()),
    );
    assert_eq!(code, Some(1), "{err}");
    insta::assert_snapshot!("max_buckets_zero", err);
}

#[test]
fn an_inverted_or_empty_period_is_refused() {
    let data = repo().join("sample_data");
    let data = data.to_str().unwrap();
    let (code, _, err) = run(
        &repo(),
        &sample_args(
            data,
            &[
                "bookings",
                "--from",
                "2025-03-01",
                "--to",
                "2025-01-01",
                "--grain",
                "day",
            ],
        ),
        None,
    );
    assert_eq!(code, Some(2), "{err}");
    insta::assert_snapshot!("inverted_period", err);
    let (code, _, err) = run(
        &repo(),
        &sample_args(
            data,
            &[
                "open_pipeline",
                "--from",
                "2025-03-01",
                "--to",
                "2025-03-01",
                "--grain",
                "day",
            ],
        ),
        None,
    );
    assert_eq!(code, Some(2), "{err}");
    insta::assert_snapshot!("empty_period", err);
}

// Without a grain the whole calendar canon reads (1900 to 2999) is one
// bucket. A flow metric answers: all bookings ever equal those of the
// sample's own years. A snapshot is taken at 2999-12-30, when no exchange
// rate is in force: a data error naming the rate table, not an overflow or
// a panic.
#[test]
fn the_whole_calendar_without_a_grain() {
    let all = sample_json(&["bookings", "--from", "1900-01-01", "--to", "2999-12-31"]);
    let years = sample_json(&["bookings", "--from", "2020-01-01", "--to", "2030-01-01"]);
    assert_eq!(all["value"], years["value"]);
    let data = repo().join("sample_data");
    let (code, _, err) = run(
        &repo(),
        &sample_args(
            data.to_str().unwrap(),
            &[
                "open_pipeline",
                "--from",
                "1900-01-01",
                "--to",
                "2999-12-31",
            ],
        ),
        None,
    );
    assert_eq!(code, Some(1), "{err}");
    insta::assert_snapshot!("open_pipeline_at_the_end_of_the_calendar", err);
}

// With one partition, the join that pairs each (row, day) with its day's
// label is built from the days' table, never from the pairs: built from the
// pairs, a daily series over 2025 at scale 200 needed a 1.8 GB hash table
// and failed past the 2 GiB limit (found by a hostile review). The plan
// names the days' position `_k` first (the build side) and the pair's
// `_at_day` second.
#[test]
fn a_series_builds_its_day_join_from_the_days_with_one_partition() {
    let project = project_with_engine("engine:\n  memory_limit: 2GiB\n  target_partitions: 1\n");
    let data = repo().join("sample_data");
    let out = canon(
        project.path(),
        &[
            "explain",
            "open_pipeline",
            "--from",
            "2025-01-01",
            "--to",
            "2025-02-01",
            "--grain",
            "day",
            "--data",
            data.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let physical = &text[text.find("-- physical plan --").expect("a physical plan")..];
    let join = physical
        .lines()
        .find(|l| {
            l.contains("HashJoinExec") && (l.contains("on=[(_k@") || l.contains("on=[(_at_day@"))
        })
        .unwrap_or_else(|| panic!("no join on the day's position:\n{physical}"));
    assert!(join.contains("on=[(_k@"), "{join}");
}

/// A result's rows as (period, start, end, value, whole).
fn cut_rows(r: &serde_json::Value) -> Vec<(String, String, String, String, bool)> {
    r["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let text = |k: &str| row[k].as_str().unwrap().to_string();
            let whole = row.get("whole").and_then(|w| w.as_bool()).unwrap_or(true);
            (
                text("period"),
                text("period_start"),
                text("period_end"),
                text("value"),
                whole,
            )
        })
        .collect()
}

// A bucket cut to the request says so: its label alone names the whole
// quarter or month (a review read "2025-Q1 7,237,001.60" as Q1's bookings,
// 8,712,596.75). On the sample, recomputed in DuckDB by the review:
// bookings 2025-01-15..2025-03-31 = 7,237,001.60 and 2025-04-01..04-14 =
// 726,509.70 (7,237,001.60 + 726,509.70 = 7,963,511.30, the headline); arr
// at 2025-03-31 = 26,926,809.84 (a whole month) and at 2025-04-14 =
// 27,404,978.29 (April cut: its end, 2025-04-30, is 27,878,498.86).
#[test]
fn a_bucket_cut_to_the_request_is_marked() {
    let data = repo().join("sample_data");
    let cut = ["--from", "2025-01-15", "--to", "2025-04-15"];
    let mut args = vec!["bookings"];
    args.extend(cut);
    args.extend(["--grain", "quarter"]);
    let r = query_json(&repo(), &data, &args);
    let row = |p: &str, s: &str, e: &str, v: &str, whole| {
        (p.into(), s.into(), e.into(), v.to_string(), whole)
    };
    assert_eq!(
        cut_rows(&r),
        [
            row("2025-Q1", "2025-01-15", "2025-04-01", "7237001.60", false),
            row("2025-Q2", "2025-04-01", "2025-04-15", "726509.70", false),
        ]
    );
    assert_eq!(r["value"], "7963511.30");
    let table = stdout(&canon(
        &repo(),
        &[&["query", "--data", data.to_str().unwrap()], &args[..]].concat(),
    ));
    assert!(
        table.contains("  2025-Q1  7,237,001.60  from 2025-01-15\n"),
        "{table}"
    );
    assert!(
        table.contains("  2025-Q2    726,509.70  to 2025-04-14\n"),
        "{table}"
    );

    let mut args = vec!["arr"];
    args.extend(cut);
    args.extend(["--grain", "month"]);
    let r = query_json(&repo(), &data, &args);
    let rows = cut_rows(&r);
    assert_eq!(
        rows[2..],
        [
            row("2025-03", "2025-03-31", "2025-04-01", "26926809.84", true),
            row("2025-04", "2025-04-14", "2025-04-15", "27404978.29", false),
        ]
    );
    let table = stdout(&canon(
        &repo(),
        &[&["query", "--data", data.to_str().unwrap()], &args[..]].concat(),
    ));
    assert!(
        table.contains("  2025-04  27,404,978.29  at 2025-04-14\n"),
        "{table}"
    );
    // Whole buckets carry no mark at all.
    let r = sample_json(&["arr", "--period", "2025", "--grain", "quarter"]);
    assert!(cut_rows(&r).iter().all(|row| row.4), "{r}");
}

// A state's headline in a file is dated by the day it is taken at, as its
// rows are: arr for FY2026-Q1 is the state at 2025-04-30 (27,878,498.86, the
// review's DuckDB figure), not a range over the quarter.
#[test]
fn a_state_in_a_file_is_dated_by_its_day() {
    let data = repo().join("sample_data");
    let out = canon(
        &repo(),
        &[
            "query",
            "arr",
            "--period",
            "FY2026-Q1",
            "--format",
            "csv",
            "--data",
            data.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "metric,period,period_start,period_end,value,unit,complete\n\
         arr,FY2026-Q1,2025-04-30,2025-05-01,27878498.86,USD,true\n"
    );
}

// A state at a day the data has not reached is that day's state as the data
// schedules it, not "the state the data reaches" (a review: arr as of
// 2026-01-31 is 36,650,114.43, at the data's last day 2026-01-01 it is
// 38,108,096.59: 31 charges known to end in January are out of it).
#[test]
fn a_state_after_the_data_says_it_is_as_scheduled() {
    let data = repo().join("sample_data");
    for (args, said) in [
        (
            ["--as-of", "2026-01-31"],
            "  36,650,114.43 USD\n  to date: the data reaches 2026-01-01 23:18 (UTC-08:00), before 2026-01-31 begins: 2026-01-31's state as the data known by then schedules it; not the final state of that day\n",
        ),
        (
            ["--period", "FY2026"],
            "  36,650,114.43 USD\n  to date: the data reaches 2026-01-01 23:18 (UTC-08:00), before FY2026 is over: the state at its last day (2026-01-31) as the data known by then schedules it; not the final state of that day\n",
        ),
    ] {
        let out = canon(
            &repo(),
            &[
                &["query", "arr", "--data", data.to_str().unwrap()],
                &args[..],
            ]
            .concat(),
        );
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stdout(&out).contains(said), "{}", stdout(&out));
    }
    let r = sample_json(&["arr", "--as-of", "2026-01-01"]);
    assert_eq!(r["value"], "38108096.59");
}
