//! Hostile input whose message used to say too little, or whose output lied
//! about its format (issue 14, "misc messages"). Each case runs the real
//! binary and checks its exit code and its rendered stderr with a reviewed
//! snapshot (temporary paths replaced by placeholders), so a message that
//! regresses shows in review.

use std::path::Path;
use std::process::Output;

use crate::common::*;

/// A copy of the repository's project (definitions only) in a temp folder.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_project(dir.path());
    dir
}

/// The fixture company's extracts (tests/common: `write_company`).
fn company() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_company(dir.path());
    dir
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "`{from}` not in {}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

/// `exit: N` and the stderr, each temp folder replaced by its placeholder
/// (the longest first, so a folder inside another keeps its own name).
fn rendered(out: &Output, temps: &[(&Path, &str)]) -> String {
    let mut err = stderr(out);
    let mut temps = temps.to_vec();
    temps.sort_by_key(|(p, _)| std::cmp::Reverse(p.as_os_str().len()));
    for (path, name) in temps {
        err = err.replace(path.to_str().unwrap(), name);
    }
    assert!(!err.contains("panicked"), "{err}");
    format!("exit: {:?}\n{err}", out.status.code())
}

fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The first `      expr: amount` of sales.yaml is bookings' measure
/// (line 21, the value at column 13).
const BOOKINGS_MEASURE: &str = "      expr: amount\n";

// --- 1. engine failures name the metric and the expression ---------------

#[test]
fn division_by_zero_names_the_metric_and_its_expression() {
    let (p, data) = (project(), company());
    edit(
        &p.path().join("metrics/sales.yaml"),
        BOOKINGS_MEASURE,
        "      expr: amount / 0\n",
    );
    let out = canon(
        p.path(),
        &[
            "query",
            "bookings",
            "--period",
            "FY2026-Q1",
            "--data",
            arg(data.path()),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!(
        "division_by_zero",
        rendered(&out, &[(p.path(), "[PROJECT]"), (data.path(), "[DATA]")])
    );
}

#[test]
fn failed_cast_names_the_metric_and_its_expression() {
    let (p, data) = (project(), company());
    edit(
        &p.path().join("metrics/sales.yaml"),
        BOOKINGS_MEASURE,
        "      expr: \"cast(deal_type as decimal(18,2))\"\n",
    );
    let out = canon(
        p.path(),
        &[
            "query",
            "bookings",
            "--period",
            "FY2026-Q1",
            "--data",
            arg(data.path()),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    // Which deal type fails first depends on which partition reads its row
    // first: the message names one of them ("New Business", "Expansion",
    // …), shown here as [VALUE].
    let text = rendered(&out, &[(p.path(), "[PROJECT]"), (data.path(), "[DATA]")]);
    let (head, tail) = text
        .split_once("Cannot cast string '")
        .expect("names the value that does not convert");
    let (value, rest) = tail.split_once('\'').expect("quoted value");
    assert!(
        ["New Business", "Expansion", "Renewal"].contains(&value),
        "{value}"
    );
    insta::assert_snapshot!(
        "failed_cast",
        format!("{head}Cannot cast string '[VALUE]'{rest}")
    );
}

// Each amount times 10^33 is past the 38 digits (2 decimals) of money:
// D2's EUR 1000.00 × 10^33 = 10^36 does not fit DECIMAL(38, 2), whose
// largest value is 10^36 − 0.01 (the float literal makes the product a
// float, so the cast written to make it a decimal is what fails; a float
// measure alone is refused before any data is read). The query fails, and
// measure.expr, the expression computing the value, is blamed.
#[test]
fn a_decimal_overflow_points_at_the_measure() {
    let (p, data) = (project(), company());
    edit(
        &p.path().join("metrics/sales.yaml"),
        BOOKINGS_MEASURE,
        "      expr: \"CAST(amount * 1000000000000000000000000000000000 AS DECIMAL(38, 2))\"\n",
    );
    let out = canon(
        p.path(),
        &[
            "query",
            "bookings",
            "--period",
            "FY2026-Q1",
            "--data",
            arg(data.path()),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!(
        "decimal_overflow",
        rendered(&out, &[(p.path(), "[PROJECT]"), (data.path(), "[DATA]")])
    );
}

// new_business_share = new_bookings / nullif(bookings, 0) (sales.yaml line
// 217, the value at column 11); `bookings - bookings` is always 0.
#[test]
fn division_by_zero_in_a_derived_metric_points_at_its_expr() {
    let (p, data) = (project(), company());
    edit(
        &p.path().join("metrics/sales.yaml"),
        "expr: new_bookings / nullif(bookings, 0)",
        "expr: new_bookings / (bookings - bookings)",
    );
    let out = canon(
        p.path(),
        &[
            "query",
            "new_business_share",
            "--period",
            "FY2026-Q1",
            "--data",
            arg(data.path()),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!(
        "division_by_zero_derived",
        rendered(&out, &[(p.path(), "[PROJECT]"), (data.path(), "[DATA]")])
    );
}

// A zero rate in the extracts: D4 is GBP 100.01 closed in FY2026-Q1, and
// its amount is divided by GBP's rate, now 0. No expression of bookings
// divides, so the conversion canon adds is the one blamed.
#[test]
fn a_zero_fx_rate_points_at_the_currency_conversion() {
    let data = company();
    write_table(
        data.path(),
        "crm/dated_conversion_rate",
        vec![
            ("iso_code", Col::Str(vec!["EUR", "EUR", "GBP", "JPY"])),
            (
                "conversion_rate",
                Col::Rate(vec!["0.800000", "0.900000", "0.000000", "150.000000"]),
            ),
            (
                "start_date",
                Col::Date(vec!["2024-01-01", "2025-03-01", "2024-01-01", "2024-01-01"]),
            ),
            (
                "next_start_date",
                Col::Date(vec!["2025-03-01", "2027-01-01", "2027-01-01", "2027-01-01"]),
            ),
        ],
    );
    let out = canon(
        &repo(),
        &[
            "query",
            "bookings",
            "--period",
            "FY2026-Q1",
            "--data",
            arg(data.path()),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!("zero_fx_rate", rendered(&out, &[(data.path(), "[DATA]")]));
}

#[test]
fn a_failed_publish_names_the_metric_and_publishes_nothing() {
    let (p, data) = (project(), company());
    let target = tempfile::tempdir().unwrap();
    let out_dir = target.path().join("published");
    edit(
        &p.path().join("metrics/sales.yaml"),
        BOOKINGS_MEASURE,
        "      expr: amount / 0\n",
    );
    // Approved as it is, so publish computes it instead of blocking it.
    let signed = canon(p.path(), &["signoff", "bookings", "--by", "test"]);
    assert_eq!(signed.status.code(), Some(0), "{}", stderr(&signed));
    let out = canon(
        p.path(),
        &[
            "publish",
            "--out",
            arg(&out_dir),
            "--only",
            "bookings",
            "--period",
            "FY2026-Q1",
            "--data",
            arg(data.path()),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        !out_dir.exists(),
        "a failed publish left {}",
        out_dir.display()
    );
    insta::assert_snapshot!(
        "publish_failure",
        rendered(
            &out,
            &[
                (p.path(), "[PROJECT]"),
                (data.path(), "[DATA]"),
                (target.path(), "[OUT]")
            ]
        )
    );
}

// --- 2. --by is checked before anything is planned -----------------------

/// `canon query bookings --period FY2026-Q1 --by <by>` over the sample.
fn query_by(by: &str) -> Output {
    canon(
        &repo(),
        &["query", "bookings", "--period", "FY2026-Q1", "--by", by],
    )
}

#[test]
fn a_slice_named_twice_is_refused_up_front() {
    let out = query_by("deal_type,deal_type");
    assert_eq!(out.status.code(), Some(2));
    assert!(!stderr(&out).contains("duplicate"), "{}", stderr(&out));
    insta::assert_snapshot!("by_repeated", rendered(&out, &[]));
}

#[test]
fn an_empty_slice_name_is_refused() {
    let out = query_by("deal_type,");
    assert_eq!(out.status.code(), Some(2));
    insta::assert_snapshot!("by_empty_item", rendered(&out, &[]));
}

// win_rate is won_deals / closed_deals: the slice is refused by the metric
// asked for, not by its part, with the closest approved slice.
#[test]
fn an_unknown_slice_names_the_metric_asked_for_and_the_closest_slice() {
    let out = canon(
        &repo(),
        &[
            "query",
            "win_rate",
            "--period",
            "FY2026-Q1",
            "--by",
            "dael_type",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    insta::assert_snapshot!("by_unknown_slice", rendered(&out, &[]));
}

#[test]
fn a_slice_of_a_metric_without_slices_is_refused() {
    let out = canon(
        &repo(),
        &["query", "mqls", "--period", "2025-03", "--by", "country"],
    );
    assert_eq!(out.status.code(), Some(2));
    insta::assert_snapshot!("by_no_slices", rendered(&out, &[]));
}

// --- 3. canon.yaml's calendar and currency, located ----------------------

/// `canon validate --no-data` over a project whose canon.yaml has `line`
/// in place of the line starting with the same key.
fn with_setting(line: &str) -> Output {
    let p = project();
    let key = line.split(':').next().unwrap();
    let path = p.path().join("canon.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let old = text
        .lines()
        .find(|l| l.starts_with(&format!("{key}:")))
        .unwrap()
        .to_string();
    std::fs::write(&path, text.replacen(&old, line, 1)).unwrap();
    canon(p.path(), &["validate", "--no-data"])
}

// canon.yaml line 7 is `reporting_zone: America/Los_Angeles` (the value at
// column 17), line 9 `fiscal_year_start_month: 2` (column 26), line 11
// `base_currency: USD` (column 16).
#[test]
fn a_reporting_zone_that_is_not_one_is_located() {
    let out = with_setting("reporting_zone: Mars/Olympus");
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!("zone_unknown", rendered(&out, &[]));
    let out = with_setting("reporting_zone: america/los_angeles");
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!("zone_case", rendered(&out, &[]));
}

#[test]
fn a_fiscal_month_out_of_range_is_located() {
    for (name, month) in [("fiscal_month_13", "13"), ("fiscal_month_0", "0")] {
        let out = with_setting(&format!("fiscal_year_start_month: {month}"));
        assert_eq!(out.status.code(), Some(1));
        insta::assert_snapshot!(name, rendered(&out, &[]));
    }
}

#[test]
fn a_fiscal_month_by_name_is_located() {
    let out = with_setting("fiscal_year_start_month: march");
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!("fiscal_month_name", rendered(&out, &[]));
}

#[test]
fn a_base_currency_that_is_no_currency_is_refused() {
    for (name, code) in [
        ("currency_xxx", "XXX"),
        ("currency_xts", "XTS"),
        ("currency_lowercase", "usd"),
        ("currency_two_letters", "US"),
        ("currency_word", "EURO"),
    ] {
        let out = with_setting(&format!("base_currency: {code}"));
        assert_eq!(out.status.code(), Some(1), "{code}");
        insta::assert_snapshot!(name, rendered(&out, &[]));
    }
    // An active code other than the sample's is a currency.
    let out = with_setting("base_currency: EUR");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

// All three wrong at once: every problem of canon.yaml in one run.
#[test]
fn every_calendar_and_currency_problem_is_reported_at_once() {
    let p = project();
    let path = p.path().join("canon.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replacen(
            "reporting_zone: America/Los_Angeles",
            "reporting_zone: Mars/Olympus",
            1,
        )
        .replacen(
            "fiscal_year_start_month: 2",
            "fiscal_year_start_month: 13",
            1,
        )
        .replacen("base_currency: USD", "base_currency: XXX", 1);
    std::fs::write(&path, text).unwrap();
    let out = canon(p.path(), &["list"]);
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!("canon_yaml_all_at_once", rendered(&out, &[]));
}

// --- 4. no command prints a format it was not asked for -------------------

#[test]
fn check_refuses_the_formats_it_does_not_write() {
    for (name, format) in [("check_csv", "csv"), ("check_parquet", "parquet")] {
        let out = canon(&repo(), &["check", "--format", format]);
        assert_eq!(out.status.code(), Some(2), "{format}");
        assert!(out.stdout.is_empty(), "{format}: printed {}", stdout(&out));
        insta::assert_snapshot!(name, rendered(&out, &[]));
    }
}

#[test]
fn parquet_is_never_printed_to_a_terminal_or_pipe() {
    let out = canon(
        &repo(),
        &[
            "query",
            "bookings",
            "--period",
            "FY2026-Q1",
            "--format",
            "parquet",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    insta::assert_snapshot!("query_parquet_to_stdout", rendered(&out, &[]));
    let out = canon(
        &repo(),
        &[
            "reconcile",
            "bookings_to_revenue",
            "--period",
            "FY2026-Q2",
            "--format",
            "parquet",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    insta::assert_snapshot!("reconcile_parquet_to_stdout", rendered(&out, &[]));
}

#[test]
fn an_out_file_whose_extension_contradicts_the_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bookings.parquet");
    let out = canon(
        &repo(),
        &[
            "query",
            "bookings",
            "--period",
            "FY2026-Q1",
            "--format",
            "csv",
            "--out",
            arg(&file),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(!file.exists());
    insta::assert_snapshot!(
        "out_extension_contradicts_format",
        rendered(&out, &[(dir.path(), "[OUT]")])
    );
}

// Without --format, `--out b.csv` writes CSV (the fixture's bookings of
// FY2026-Q1 are 3694.46: see flow_metrics), never the table.
#[test]
fn an_out_file_extension_says_the_format_when_none_is_given() {
    let data = company();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b.csv");
    let out = canon(
        &repo(),
        &[
            "query",
            "bookings",
            "--period",
            "FY2026-Q1",
            "--data",
            arg(data.path()),
            "--out",
            arg(&file),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "metric,period,period_start,period_end,value,unit,complete\n\
         bookings,FY2026-Q1,2025-02-01,2025-05-01,3694.46,USD,true\n"
    );
}

#[test]
fn explain_writes_text_only() {
    let out = canon(
        &repo(),
        &[
            "explain",
            "bookings",
            "--period",
            "FY2026-Q1",
            "--format",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    insta::assert_snapshot!("explain_json", rendered(&out, &[]));
}

// --- 5. log lines are plain text when stderr is not a terminal ------------

/// `rendered`, with each log line's leading timestamp replaced.
fn without_times(text: &str) -> String {
    text.lines()
        .map(|l| match l.split_once(' ') {
            Some((first, rest)) if first.ends_with('Z') && first.contains('T') => {
                format!("[TIME] {rest}")
            }
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

// A damaged cache entry is ignored with a WARN line; the tests capture
// stderr (a pipe, not a terminal), so it carries no colour codes.
#[test]
fn warnings_on_a_pipe_carry_no_colour_codes() {
    let data = company();
    let cache = tempfile::tempdir().unwrap();
    let args = [
        "query",
        "bookings",
        "--period",
        "FY2026-Q1",
        "--data",
        arg(data.path()),
    ];
    let first = canon_cached(&repo(), cache.path(), &args);
    assert!(first.status.success(), "{}", stderr(&first));
    let results = cache.path().join("results");
    let entries: Vec<_> = std::fs::read_dir(&results).unwrap().collect();
    assert_eq!(entries.len(), 1);
    let entry = entries.into_iter().next().unwrap().unwrap().path();
    std::fs::write(&entry, b"not json").unwrap();
    let out = canon_cached(&repo(), cache.path(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(" WARN "), "{err}");
    assert!(!err.contains('\u{1b}'), "colour codes on a pipe: {err:?}");
    insta::assert_snapshot!(
        "warn_without_colour",
        without_times(&rendered(
            &out,
            &[
                (cache.path(), "[CACHE]"),
                (&entry, "[CACHE]/results/[KEY].json"),
                (data.path(), "[DATA]")
            ]
        ))
    );
}

#[test]
fn verbose_progress_on_a_pipe_carries_no_colour_codes() {
    let data = company();
    let out = canon(
        &repo(),
        &[
            "query",
            "bookings",
            "--period",
            "FY2026-Q1",
            "--data",
            arg(data.path()),
            "-v",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(" INFO "), "{err}");
    assert!(!err.contains('\u{1b}'), "colour codes on a pipe: {err:?}");
}

// --- 6. wrong arguments, walked command by command -----------------------

/// Runs `args` over the repository's project and snapshots the message.
fn refused(name: &str, args: &[&str], code: i32) {
    let out = canon(&repo(), args);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
    assert!(out.stdout.is_empty(), "{args:?} printed {}", stdout(&out));
    insta::assert_snapshot!(name, rendered(&out, &[]));
}

#[test]
fn an_unknown_metric_suggests_the_closest() {
    refused(
        "unknown_metric",
        &["query", "bookin", "--period", "2025-03"],
        2,
    );
}

#[test]
fn periods_that_do_not_exist_say_why() {
    for (name, period) in [
        ("period_month_13", "2025-13"),
        ("period_fiscal_q5", "FY2026-Q5"),
        ("period_february_30", "2025-02-30"),
        ("period_range_end", "2025-01-01..2025-02-31"),
    ] {
        refused(name, &["query", "bookings", "--period", period], 2);
    }
}

#[test]
fn as_of_and_period_together_are_refused() {
    refused(
        "as_of_with_period",
        &[
            "query",
            "open_pipeline",
            "--as-of",
            "2025-06-30",
            "--period",
            "2025-06",
        ],
        2,
    );
}

#[test]
fn a_query_without_a_period_says_how_to_give_one() {
    refused("no_period", &["query", "bookings"], 2);
}

#[test]
fn a_metric_named_twice_is_refused() {
    refused(
        "metric_twice",
        &[
            "query", "bookings", "bookings", "--period", "2025-03", "--format", "csv",
        ],
        2,
    );
}

#[test]
fn an_unknown_reconciliation_suggests_the_closest() {
    refused(
        "unknown_reconciliation",
        &["reconcile", "bookings_to_revenu", "--period", "2025-03"],
        2,
    );
}

#[test]
fn a_missing_project_folder_is_a_request_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    let out = canon(&missing, &["list"]);
    assert_eq!(out.status.code(), Some(2));
    insta::assert_snapshot!("missing_project", rendered(&out, &[(dir.path(), "[TMP]")]));
}

#[test]
fn a_project_that_is_a_file_says_so() {
    let p = project();
    let out = canon(&p.path().join("canon.yaml"), &["list"]);
    assert_eq!(out.status.code(), Some(2));
    insta::assert_snapshot!(
        "project_is_a_file",
        rendered(&out, &[(p.path(), "[PROJECT]")])
    );
}

// A canon.yaml that cannot be read (here a folder of that name: the tests
// may run as root, who reads any file) is located in it.
#[test]
fn an_unreadable_canon_yaml_is_located() {
    let p = project();
    let path = p.path().join("canon.yaml");
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    let out = canon(p.path(), &["list"]);
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!(
        "unreadable_canon_yaml",
        rendered(&out, &[(p.path(), "[PROJECT]")])
    );
}

// canon.yaml line 17 is `metrics: metrics`, the value at column 10.
#[test]
fn a_missing_metrics_folder_is_located_at_its_setting() {
    let p = project();
    std::fs::rename(p.path().join("metrics"), p.path().join("metrics.old")).unwrap();
    let out = canon(p.path(), &["list"]);
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!(
        "missing_metrics_folder",
        rendered(&out, &[(p.path(), "[PROJECT]")])
    );
}

#[test]
fn a_data_root_that_is_a_file_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("extracts.parquet");
    std::fs::write(&file, b"PAR1").unwrap();
    for (name, args) in [
        (
            "data_is_a_file_query",
            vec![
                "query",
                "bookings",
                "--period",
                "2025-03",
                "--data",
                arg(&file),
            ],
        ),
        (
            "data_is_a_file_validate",
            vec!["validate", "--data", arg(&file)],
        ),
    ] {
        let out = canon(&repo(), &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        insta::assert_snapshot!(name, rendered(&out, &[(dir.path(), "[TMP]")]));
    }
}

// Refused before anything is computed (it used to compute, then fail on
// the name of a temporary file with exit 1).
#[test]
fn an_out_file_in_a_missing_folder_is_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("no/such/folder/b.csv");
    for (name, args) in [
        (
            "out_parent_missing_query",
            vec![
                "query",
                "bookings",
                "--period",
                "2025-03",
                "--out",
                arg(&target),
            ],
        ),
        (
            "out_parent_missing_reconcile",
            vec![
                "reconcile",
                "bookings_to_revenue",
                "--period",
                "2025-03",
                "--out",
                arg(&target),
            ],
        ),
    ] {
        let out = canon(&repo(), &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        insta::assert_snapshot!(name, rendered(&out, &[(dir.path(), "[TMP]")]));
    }
    assert!(!dir.path().join("no").exists());
}

#[test]
fn an_out_that_is_a_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = canon(
        &repo(),
        &[
            "query",
            "bookings",
            "--period",
            "2025-03",
            "--out",
            arg(dir.path()),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    insta::assert_snapshot!("out_is_a_folder", rendered(&out, &[(dir.path(), "[TMP]")]));
}

// The size comes from the command line: a request error, not canon.yaml's.
#[test]
fn a_bad_memory_limit_on_the_command_line_is_the_requests_fault() {
    refused(
        "sql_memory_limit",
        &["sql", "SELECT 1", "--memory-limit", "lots"],
        2,
    );
}

#[test]
fn a_missing_sql_file_is_a_request_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("query.sql");
    let out = canon(&repo(), &["sql", "--file", arg(&file)]);
    assert_eq!(out.status.code(), Some(2));
    insta::assert_snapshot!("sql_file_missing", rendered(&out, &[(dir.path(), "[TMP]")]));
}

// canon.yaml's quality.subscription_deals (line 41, the value at column
// 23) is run by check and by the bridge's deal match rates: a cast that
// fails on the sample's deal types is blamed there, not on an entity field.
#[test]
fn a_failing_cast_in_canon_yaml_is_located_by_check_and_reconcile() {
    let p = project();
    edit(
        &p.path().join("canon.yaml"),
        "subscription_deals: \"deal_type <> 'Expansion'\"",
        "subscription_deals: \"cast(deal_type as int) > 0\"",
    );
    let data = repo().join("sample_data");
    for (name, args) in [
        (
            "subscription_deals_check",
            vec!["check", "--data", arg(&data)],
        ),
        (
            "subscription_deals_reconcile",
            vec![
                "reconcile",
                "bookings_to_revenue",
                "--period",
                "FY2026-Q2",
                "--data",
                arg(&data),
            ],
        ),
    ] {
        let out = canon(p.path(), &args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        // Which deal type fails first depends on which of the concurrent
        // scans gets there first: the value is redacted.
        let text = rendered(&out, &[(p.path(), "[PROJECT]"), (&data, "[DATA]")]);
        let text = match text.split_once("Cannot cast string '") {
            Some((head, tail)) => {
                let rest = tail.split_once('\'').map_or("", |(_, r)| r);
                format!("{head}Cannot cast string '[VALUE]'{rest}")
            }
            None => text,
        };
        insta::assert_snapshot!(name, text);
    }
}

// Published twice, a period's rows would be in every file twice: a BI tool
// summing bookings.csv would count FY2026-Q1 twice.
#[test]
fn a_period_published_twice_is_refused() {
    let data = company();
    let target = tempfile::tempdir().unwrap();
    let out_dir = target.path().join("published");
    let out = canon(
        &repo(),
        &[
            "publish",
            "--out",
            arg(&out_dir),
            "--only",
            "bookings",
            "--period",
            "FY2026-Q1",
            "--period",
            "2025-02-01..2025-05-01",
            "--data",
            arg(data.path()),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(!out_dir.exists());
    insta::assert_snapshot!(
        "publish_period_twice",
        rendered(&out, &[(data.path(), "[DATA]"), (target.path(), "[OUT]")])
    );
}

// canon.yaml line 28 is `  periods: [FY2026-Q1, FY2026-Q2, FY2026-Q3,
// FY2026-Q4]`: the second entry starts at column 24, the fourth at 46.
#[test]
fn canon_yaml_publish_periods_are_checked_where_they_are_written() {
    let p = project();
    edit(
        &p.path().join("canon.yaml"),
        "periods: [FY2026-Q1, FY2026-Q2, FY2026-Q3, FY2026-Q4]",
        "periods: [FY2026-Q1, FY2026-Q5, FY2026-Q3, fy2026-q1]",
    );
    let out = canon(p.path(), &["validate", "--no-data"]);
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!("publish_periods_in_canon_yaml", rendered(&out, &[]));
}

// An --out folder under a file: the request's fault (exit 2), not an I/O
// error of exit 1.
#[test]
fn publish_and_sample_into_a_path_under_a_file_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, b"mine").unwrap();
    let under = file.join("published");
    for (name, args) in [
        (
            "publish_under_a_file",
            vec![
                "publish",
                "--out",
                arg(&under),
                "--only",
                "bookings",
                "--period",
                "2025-03",
            ],
        ),
        ("sample_under_a_file", vec!["sample", "--out", arg(&under)]),
    ] {
        let out = canon(&repo(), &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        insta::assert_snapshot!(name, rendered(&out, &[(dir.path(), "[TMP]")]));
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"mine");
}
