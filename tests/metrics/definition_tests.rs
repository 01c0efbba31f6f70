//! `canon test` through the real binary: the sample project's definition
//! tests (metrics/tests/, every certified metric and the bridge, worked by
//! hand) pass, every mutant of every certified metric is killed, and a
//! wrong expectation or a broken fixture is reported readably, located.

use crate::common::*;

fn project_with_tests() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_project(dir.path());
    dir
}

#[test]
fn the_sample_definitions_pass_their_tests_and_every_mutant_is_killed() {
    let out = canon(&repo(), &["test", "--mutate"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    let summary = text
        .lines()
        .find(|l| l.contains(" test(s), "))
        .unwrap_or_default()
        .to_string();
    let (ran, failed) = (
        summary.split(' ').next().unwrap().parse::<usize>().unwrap(),
        summary.ends_with(" 0 failed"),
    );
    assert!(ran >= 50 && failed, "{summary}");
    assert!(text.contains(" mutant(s), "), "{text}");
    assert!(text.contains(", 0 survived"), "{text}");
    assert!(!text.contains("SURVIVED"), "{text}");
    // Every certified metric and the bridge is named by a test.
    let validate = canon(&repo(), &["validate", "--no-data", "--strict"]);
    assert_eq!(validate.status.code(), Some(0), "{}", stderr(&validate));
}

// bookings FY2026-Q1 on the sales fixture is 3694.46 (metrics/tests/sales.yaml);
// an expectation of 3694.47 fails with the difference, located.
#[test]
fn a_wrong_expectation_fails_with_the_difference_and_where_it_is() {
    let p = project_with_tests();
    replace_in(
        &p.path().join("metrics/tests/sales.yaml"),
        "      value: \"3694.46\"\n      exclusions:",
        "      value: \"3694.47\"\n      exclusions:",
    );
    let out = canon(p.path(), &["test", "--only", "bookings"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    insta::assert_snapshot!(stdout(&out) + &stderr(&out));
}

#[test]
fn a_broken_fixture_is_refused_with_locations() {
    let p = project_with_tests();
    let sales = p.path().join("metrics/tests/sales.yaml");
    replace_in(
        &sales,
        "    crm/user: {csv: sales/crm_user.csv}\n",
        "    crm/user: {csv: sales/crm_user.csv}\n    crm/oportunity:\n      rows: [{id: X}]\n    crm/dated_conversion_rate:\n      rows:\n        - {iso_code: EUR, conversion_rate: \"0.8000001\", start_date: 2024-01-01, next_start_date: 2025-01-01, _fivetran_synced: 2026-01-02T06:00:00Z}\n        - {iso_code: GBP, conversion_rate: \"0.75\", start_date: soon, next_start_date: 2025-01-01, _fivetran_synced: 2026-01-02T06:00:00Z, colour: red}\n",
    );
    replace_in(
        &sales,
        "    crm/dated_conversion_rate: {csv: sales/crm_dated_conversion_rate.csv}\n",
        "",
    );
    let out = canon(p.path(), &["test", "--only", "bookings"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    insta::assert_snapshot!(stderr(&out));
}

#[test]
fn a_certified_metric_without_a_test_is_a_warning_and_an_error_when_strict() {
    let p = project_with_tests();
    std::fs::remove_file(p.path().join("metrics/tests/support.yaml")).unwrap();
    let out = canon(p.path(), &["validate", "--no-data"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(
            "warning: metrics/support.yaml:8:13: certified metric `open_tickets` has no definition test: add one to metrics/tests/ (`canon test`)"
        ),
        "{}",
        stdout(&out)
    );
    let out = canon(p.path(), &["validate", "--no-data", "--strict"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("`open_tickets` has no definition test"),
        "{}",
        stderr(&out)
    );
}

// A model whose source path is absolute (or climbs out with `..`) would
// have the fixture written over real extracts: refused, located, nothing
// written there.
#[test]
fn a_fixture_is_never_written_outside_its_own_data_root() {
    let p = project_with_tests();
    let victim = tempfile::tempdir().unwrap();
    let target = victim.path().join("user");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("part-00000.parquet"), "not a fixture").unwrap();
    replace_in(
        &p.path().join("models/crm.yaml"),
        "path: crm/user",
        &format!("path: {}", target.display()),
    );
    let out = canon(p.path(), &["test", "--only", "bookings"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("is not a relative path inside the data root; canon test writes fixtures only under its own"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(target.join("part-00000.parquet")).unwrap(),
        "not a fixture"
    );
}

// `value: null` expects no value (it is not "unchecked"); a test that
// expects nothing is refused.
#[test]
fn a_null_expectation_is_checked_and_an_empty_one_refused() {
    let p = project_with_tests();
    let sales = p.path().join("metrics/tests/sales.yaml");
    replace_in(
        &sales,
        "      value: \"3694.46\"\n      exclusions:",
        "      value: null\n      exclusions:",
    );
    let out = canon(p.path(), &["test", "--only", "bookings"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("value: expected null, got 3694.46"),
        "{}",
        stdout(&out)
    );
    let mut text = std::fs::read_to_string(&sales).unwrap();
    text.push_str("  - metric: bookings\n    period: FY2026-Q1\n    expect: {}\n");
    std::fs::write(&sales, text).unwrap();
    let out = canon(p.path(), &["test", "--only", "bookings"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("the test expects nothing: give a value, exclusions, tallies, rows, a bridge, a check or an error"),
        "{}",
        stderr(&out)
    );
}
