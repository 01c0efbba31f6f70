//! What people read, as reviewed snapshots: one governed result (bookings
//! for FY2026-Q1 on the fixture company, 3694.46 as worked in
//! flow_metrics) rendered as a table, CSV and JSON; `canon explain`'s
//! plans; `canon validate`'s report. A change to any of them shows in
//! review (`INSTA_UPDATE=always cargo test --test metrics renderings::`,
//! then `git diff tests/metrics/snapshots`).
//!
//! Only what changes from run to run is replaced: the temporary data
//! folder, the clock, timings and the content hashes of files written by
//! this run (a Parquet file records the writer's version).

use std::path::Path;

use crate::common::*;

/// Runs `args` over the fixture company and returns stdout, checking the
/// exit code.
fn rendered(data: &Path, args: &[&str], code: i32) -> String {
    let mut all = args.to_vec();
    all.extend(["--data", data.to_str().unwrap()]);
    let out = canon(&repo(), &all);
    assert_eq!(out.status.code(), Some(code), "{}", stderr(&out));
    stdout(&out)
}

/// insta settings replacing the volatile parts of `data`'s renderings.
fn stable(data: &Path) -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    let real = std::fs::canonicalize(data).unwrap();
    for dir in [real.as_path(), data] {
        settings.add_filter(&regex_escape(&dir.display().to_string()), "[DATA]");
    }
    settings.add_filter(
        r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})",
        "[TIME]",
    );
    settings.add_filter(r"\b\d+(\.\d+)? ?ms\b", "[N] ms");
    settings.add_filter(r#""(elapsed_ms|computed_ms)": \d+"#, r#""$1": [N]"#);
    settings.add_filter(r"\b[0-9a-f]{64}\b", "[SHA256]");
    settings.add_filter(r"\b[0-9a-f]{12,16}\b", "[HASH]");
    settings
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$#&-~".contains(c);
            special
                .then_some('\\')
                .into_iter()
                .chain(std::iter::once(c))
        })
        .collect()
}

#[test]
fn a_governed_result_as_a_table() {
    let data = fixture();
    let text = rendered(
        data.path(),
        &["query", "bookings", "--period", "FY2026-Q1"],
        0,
    );
    assert!(text.contains("3,694.46"), "{text}");
    stable(data.path()).bind(|| insta::assert_snapshot!(text));
}

#[test]
fn a_governed_result_as_csv() {
    let data = fixture();
    let text = rendered(
        data.path(),
        &[
            "query",
            "bookings",
            "--period",
            "FY2026-Q1",
            "--by",
            "deal_type",
            "--format",
            "csv",
        ],
        0,
    );
    stable(data.path()).bind(|| insta::assert_snapshot!(text));
}

#[test]
fn a_governed_result_as_json() {
    let data = fixture();
    let text = rendered(
        data.path(),
        &[
            "query",
            "bookings",
            "--period",
            "FY2026-Q1",
            "--format",
            "json",
        ],
        0,
    );
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["value"], "3694.46");
    stable(data.path()).bind(|| insta::assert_snapshot!(text));
}

#[test]
fn explain_shows_the_logical_and_optimized_plans() {
    let data = fixture();
    let text = rendered(
        data.path(),
        &["explain", "bookings", "--period", "FY2026-Q1"],
        0,
    );
    // The physical plan splits files by the machine's cores: checked, not
    // snapshotted.
    let (plans, physical) = text
        .split_once("-- physical plan --")
        .expect("a physical plan section");
    assert!(physical.contains("DataSourceExec"), "{physical}");
    stable(data.path()).bind(|| insta::assert_snapshot!(plans));
}

#[test]
fn validate_reports_the_sample_project() {
    let out = canon(&repo(), &["validate"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    stable(&repo()).bind(|| insta::assert_snapshot!(text));
}

/// The fixture company has the CRM and finance only: every other table
/// the models declare is reported at once, each with where it is declared.
#[test]
fn validate_lists_every_missing_table_with_its_declaration() {
    let data = fixture();
    let out = canon(
        &repo(),
        &["validate", "--data", data.path().to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(!text.contains("panicked"), "{text}");
    stable(data.path()).bind(|| insta::assert_snapshot!(text));
}

// A result with no number says why under its "—": on the sample no customer
// had ARR at nrr's T0 = 2023-02-28, and no deal closed in 2020-01, so
// win_rate has nothing to divide by.
#[test]
fn no_value_says_why() {
    let data = repo().join("sample_data");
    for (args, said) in [
        (
            ["nrr", "--as-of", "2024-02-29"],
            "\n  —\n  no value: the cohort is empty (no member was counted at T0; its exclusions say what was left out)\n",
        ),
        (
            ["win_rate", "--period", "2020-01"],
            "\n  —\n  no value: the denominator is zero for the period (nothing to divide by)\n",
        ),
    ] {
        let text = rendered(&data, &[&["query"], &args[..]].concat(), 0);
        assert!(text.contains(said), "{text}");
    }
}
