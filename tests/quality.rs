//! Data-quality checks and gates through the real binary.

mod common;

use common::*;

fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_company(dir.path());
    dir
}

// The fixture's tables were synced at 2026-01-02T06:00:00Z. canon.yaml pins
// the sample clock at 2026-01-02T08:00:00Z (2 h: pass). At --now
// 2026-01-04T07:00:00Z they are 49 h old (over the 48 h error threshold):
// bookings is blocked, exit 1, unless --allow-stale, which is recorded.
#[test]
fn stale_inputs_block_a_metric_and_a_pinned_clock_unblocks_it() {
    let data = fixture();
    let d = data.path().to_str().unwrap();
    let fresh = query_json(&repo(), data.path(), &["bookings", "--period", "FY2026-Q1"]);
    assert_eq!(fresh["quality_status"], "pass");
    assert_eq!(fresh["now"], "2026-01-02T08:00:00+00:00");

    let out = canon(
        &repo(),
        &[
            "query",
            "bookings",
            "--period",
            "FY2026-Q1",
            "--data",
            d,
            "--now",
            "2026-01-04T07:00:00Z",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("`bookings` is blocked"), "{err}");
    assert!(err.contains("crm/opportunity freshness"), "{err}");
    assert!(err.contains("49.0 h"), "{err}");

    let forced = query_json(
        &repo(),
        data.path(),
        &[
            "bookings",
            "--period",
            "FY2026-Q1",
            "--now",
            "2026-01-04T07:00:00Z",
            "--allow-stale",
        ],
    );
    assert_eq!(forced["value"], "3694.46");
    assert_eq!(forced["quality_status"], "error");
    assert_eq!(forced["overrides"][0], "allow_stale");

    // 25 h old: a warning, not a block.
    let warned = query_json(
        &repo(),
        data.path(),
        &[
            "bookings",
            "--period",
            "FY2026-Q1",
            "--now",
            "2026-01-03T07:00:00Z",
        ],
    );
    assert_eq!(warned["quality_status"], "warn");
}

// A duplicated opportunity id is reported by `canon check` with the key
// value, and the check exits 1; the tables the fixture does not have are
// reported as unreadable, each on its own line.
#[test]
fn check_reports_duplicate_keys_with_their_values() {
    let data = fixture();
    // A second copy of the opportunity table's file: every id twice.
    let dir = data.path().join("crm/opportunity");
    std::fs::copy(
        dir.join("part-00000.parquet"),
        dir.join("part-00001.parquet"),
    )
    .unwrap();
    let out = canon(
        &repo(),
        &[
            "check",
            "--data",
            data.path().to_str().unwrap(),
            "--format",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pk = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["table"] == "crm/opportunity" && c["check"] == "primary_key")
        .unwrap();
    assert_eq!(pk["status"], "error");
    // 15 deals, each id twice: 15 duplicated key values, ten shown.
    assert!(
        pk["detail"]
            .as_str()
            .unwrap()
            .starts_with("15 key value(s)"),
        "{pk}"
    );
    assert_eq!(pk["examples"].as_array().unwrap().len(), 10);
    assert!(
        pk["examples"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "id=D1"),
        "{pk}"
    );
    let unreadable = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["check"] == "readable")
        .count();
    // The fixture has crm (5 tables) and finance (2): the other 9 are missing.
    assert_eq!(unreadable, 9);
}

// The committed sample project passes every check at its pinned clock.
#[test]
fn the_sample_project_passes_its_checks() {
    let out = canon(&repo(), &["check"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("overall: pass"));
}
