//! `canon diff` through the real binary, on the fixture company whose
//! bookings are worked by hand in flow_metrics.rs (FY2026-Q1: 3694.46).

use std::path::Path;

use crate::common::*;

/// The head: the sample definitions with bookings changed (v2: the
/// internal_account exclusion dropped, and only deals of 1000 or more).
fn changed_project(version_bump: bool) -> tempfile::TempDir {
    let head = tempfile::tempdir().unwrap();
    copy_project(head.path());
    let sales = head.path().join("metrics/sales.yaml");
    replace_in(
        &sales,
        "    exclusions: [deleted, test_account, internal_account, missing_amount]\n",
        "    exclusions: [deleted, test_account, missing_amount]\n",
    );
    replace_in(
        &sales,
        "    filter: is_won\n",
        "    filter: is_won AND amount >= 1000\n",
    );
    if version_bump {
        replace_in(&sales, "    version: 1\n", "    version: 2\n");
        // The bridge over bookings changes with it (its closure holds
        // bookings'): a new version of it too.
        replace_in(
            &head.path().join("metrics/reconciliation.yaml"),
            "    version: 3\n",
            "    version: 4\n",
        );
    }
    head
}

fn diff(head: &Path, data: &Path, format: &str) -> std::process::Output {
    let base = repo();
    canon(
        head,
        &[
            "diff",
            "--base",
            base.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--period",
            "FY2026-Q1",
            "--format",
            format,
        ],
    )
}

// Base bookings FY2026-Q1 = 3694.46 (D1 1000.00, D2 1250.00, D3 1111.11,
// D4 133.35, D9 200.00, D11 0.00). The waterfall applies the changed fields
// in order:
//   exclusions without internal_account: D7 Acme Internal 700.00 counts:
//     3694.46 + 700.00 = 4394.46 (+700.00)
//   filter amount >= 1000: only D1 1000.00, D2 EUR 1000 → 1250.00, D3 EUR
//     1000 → 1111.11 remain: 3361.11 (4394.46 − 1033.35)
// so 3694.46 → 3361.11, Δ −333.35. Exclusions that move: internal_account
// (1 / 700.00 → none), deleted (D10 400.00 is under 1000: 1 → 0),
// test_account (D5 500.00, D6 300.00: 2 → 0), missing_amount (D8's null
// amount fails the filter: 1 → 0).
#[test]
fn a_changed_definition_shows_its_numbers_per_exclusion_and_a_waterfall() {
    let data = fixture();
    let head = changed_project(true);
    let signed = canon(
        head.path(),
        &[
            "signoff",
            "bookings",
            "bookings_to_revenue",
            "--by",
            "reviewer",
        ],
    );
    assert_eq!(signed.status.code(), Some(0), "{}", stderr(&signed));
    let out = diff(head.path(), data.path(), "json");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let d: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let bookings = d["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == "bookings")
        .unwrap();
    assert_eq!(bookings["change"], "changed");
    assert_eq!(bookings["version"], serde_json::json!([1, 2]));
    let elements: Vec<&str> = bookings["elements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["element"].as_str().unwrap())
        .collect();
    assert_eq!(
        elements,
        [
            "metric bookings.exclusions",
            "metric bookings.filter",
            "metric bookings.version"
        ]
    );
    let p = &bookings["periods"][0];
    assert_eq!(p["period"], "FY2026-Q1");
    assert_eq!(p["base"]["value"], "3694.46");
    assert_eq!(p["head"]["value"], "3361.11");
    assert_eq!(p["delta"], "-333.35");
    let steps: Vec<(String, String, String)> = p["waterfall"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["elements"][0].as_str().unwrap().to_string(),
                s["value"]["value"].as_str().unwrap().to_string(),
                s["delta"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            (
                "metric bookings.exclusions".to_string(),
                "4394.46".to_string(),
                "700.00".to_string()
            ),
            (
                "metric bookings.filter".to_string(),
                "3361.11".to_string(),
                "-1033.35".to_string()
            ),
        ]
    );
    let exclusions: Vec<(String, serde_json::Value, serde_json::Value)> = p["exclusions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["exclusion"].as_str().unwrap().to_string(),
                x["base_rows"].clone(),
                x["head_rows"].clone(),
            )
        })
        .collect();
    assert_eq!(
        exclusions,
        [
            ("deleted".into(), 1.into(), 0.into()),
            ("internal_account".into(), 1.into(), serde_json::Value::Null),
            ("missing_amount".into(), 1.into(), 0.into()),
            ("test_account".into(), 2.into(), 0.into()),
        ]
    );
    assert_eq!(d["problems"], serde_json::json!([]));
    // What a reviewer reads (new_business_share, the draft ratio over
    // bookings, moves with it).
    let md = diff(head.path(), data.path(), "md");
    let text = stdout(&md).replace(repo().to_str().unwrap(), "[REPO]");
    insta::assert_snapshot!(text);
}

// The same change without a version bump or a new sign-off cannot land.
#[test]
fn a_certified_change_without_a_version_bump_or_a_signoff_fails() {
    let data = fixture();
    let head = changed_project(false);
    let out = diff(head.path(), data.path(), "json");
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let d: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let problems: Vec<&str> = d["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    // bookings' and the bridge's over it (both certified, neither bumped
    // nor signed off again).
    assert_eq!(problems.len(), 4, "{problems:?}");
    assert_eq!(
        problems[0],
        "certified metric `bookings` changed (metric bookings.exclusions, metric bookings.filter) without a version bump (v1 → v1)"
    );
    assert!(
        problems[1].starts_with("sign-off stale: `bookings`'s definition changed"),
        "{}",
        problems[1]
    );
    assert!(
        problems[2].starts_with("certified reconciliation `bookings_to_revenue` changed"),
        "{}",
        problems[2]
    );
    assert!(
        problems[3].starts_with("sign-off stale: `bookings_to_revenue`"),
        "{}",
        problems[3]
    );
    assert!(
        stderr(&out).contains("error: 4 problem(s): certified metric `bookings` changed"),
        "{}",
        stderr(&out)
    );
}

// With no change, nothing differs (against a git revision: the default
// base is the merge-base with main, here the one commit).
#[test]
fn against_a_git_revision_the_unchanged_project_has_no_differences() {
    let data = fixture();
    let head = tempfile::tempdir().unwrap();
    copy_project(head.path());
    let git = |args: &[&str]| git_in(head.path(), args);
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "definitions"]);
    let run = |project: &Path| {
        canon(
            project,
            &[
                "diff",
                "--data",
                data.path().to_str().unwrap(),
                "--period",
                "FY2026-Q1",
            ],
        )
    };
    let out = run(head.path());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("No metric's definition closure changed."),
        "{}",
        stdout(&out)
    );
    // An uncommitted change to a shared exclusion shows in every metric
    // that names it, against the committed definitions.
    replace_in(
        &head.path().join("metrics/exclusions.yaml"),
        "strpos(lower(account.name), 'test') > 0",
        "strpos(lower(account.name), 'tst') > 0",
    );
    let out = run(head.path());
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("### `bookings` (certified, v1): changed"),
        "{text}"
    );
    assert!(text.contains("| exclusion test_account: when | ` strpos(lower(account.name), 'test') > 0 ` | ` strpos(lower(account.name), 'tst') > 0 ` |"), "{text}");
    // test_account's D5 Test Corp 500.00 and D6 Contest Ltd 300.00 count
    // when `tst` is searched for instead: 3694.46 + 800.00 = 4494.46.
    assert!(
        text.contains("| FY2026-Q1 | 3,694.46 | 4,494.46 | +800.00 |"),
        "{text}"
    );
}

// The project in a folder whose name is not UTF-8: git's paths were read
// as text, so the base's files were asked for under a replacement
// character ("fatal: path … does not exist", exit 2).
#[test]
fn a_project_folder_named_outside_utf8_diffs_against_git() {
    use std::os::unix::ffi::OsStrExt;
    let data = fixture();
    let repo_dir = tempfile::tempdir().unwrap();
    let project = repo_dir
        .path()
        .join(std::ffi::OsStr::from_bytes(b"caf\xe9"));
    std::fs::create_dir(&project).unwrap();
    copy_project(&project);
    let git = |args: &[&str]| git_in(repo_dir.path(), args);
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "definitions"]);
    let out = canon(
        &project,
        &[
            "diff",
            "--data",
            data.path().to_str().unwrap(),
            "--period",
            "FY2026-Q1",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("No metric's definition closure changed."),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_base_that_is_neither_a_folder_nor_a_revision_is_refused() {
    let head = tempfile::tempdir().unwrap();
    copy_project(head.path());
    let out = canon(
        head.path(),
        &[
            "diff",
            "--base",
            "no-such-ref",
            "--data",
            repo().join("sample_data").to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is not in a git repository"),
        "{}",
        stderr(&out)
    );
}

// A metric the head adds, read by another's changed expression: the
// waterfall brings the new metric in whole (it crashed with "no metric to
// change"). new_business_share = new_bookings / bookings_all, bookings_all a
// copy of bookings: the same 2583.35 / 3694.46 = 0.699250 before and after.
// Deprecating won_deals (replaced by closed_deals) changes no number: no
// version bump asked of it or of win_rate.
#[test]
fn an_added_metric_and_a_deprecation_are_diffed_without_crashing() {
    let data = fixture();
    let head = tempfile::tempdir().unwrap();
    copy_project(head.path());
    let sales = head.path().join("metrics/sales.yaml");
    let text = std::fs::read_to_string(&sales).unwrap();
    let start = text.find("  - name: bookings\n").unwrap();
    let end = text.find("  - name: new_bookings\n").unwrap();
    let copy = text[start..end]
        .replacen("  - name: bookings\n", "  - name: bookings_all\n", 1)
        .replacen("    slices: &deal_slices\n", "    slices:\n", 1)
        .replacen("status: certified", "status: draft", 1);
    let mut text = format!("{}{}{}", &text[..end], copy, &text[end..]);
    let share = text.find("  - name: new_business_share").unwrap();
    let rest = text[share..].replacen(
        "expr: new_bookings / nullif(bookings, 0)",
        "expr: new_bookings / nullif(bookings_all, 0)",
        1,
    );
    text = format!("{}{}", &text[..share], rest);
    let won = text.find("  - name: won_deals").unwrap();
    let rest = text[won..].replacen(
        "status: certified",
        "status: deprecated\n    replaced_by: closed_deals",
        1,
    );
    text = format!("{}{}", &text[..won], rest);
    std::fs::write(&sales, text).unwrap();
    let out = diff(head.path(), data.path(), "json");
    let d: serde_json::Value =
        serde_json::from_str(&stdout(&out)).unwrap_or_else(|_| panic!("{}", stderr(&out)));
    let changed: Vec<&str> = d["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["metric"].as_str().unwrap())
        .collect();
    assert!(changed.contains(&"bookings_all"), "{changed:?}");
    let share = d["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == "new_business_share")
        .unwrap();
    assert_eq!(share["periods"][0]["base"]["value"], "0.699250", "{share}");
    assert_eq!(share["periods"][0]["head"]["value"], "0.699250", "{share}");
    let problems = d["problems"].to_string();
    assert!(!problems.contains("win_rate"), "{problems}");
    assert!(!problems.contains("won_deals` changed"), "{problems}");
}

// Over a data root without the extracts nothing can be computed: the diff
// says so and fails, instead of passing with "failed" in every cell.
#[test]
fn a_diff_without_a_single_number_fails() {
    let empty = tempfile::tempdir().unwrap();
    let head = changed_project(true);
    let signed = canon(
        head.path(),
        &[
            "signoff",
            "bookings",
            "bookings_to_revenue",
            "--by",
            "reviewer",
        ],
    );
    assert_eq!(signed.status.code(), Some(0), "{}", stderr(&signed));
    let out = diff(head.path(), empty.path(), "json");
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("`bookings`: no number could be computed on either side, in any period (e.g. FY2026-Q1: "),
        "{}",
        stderr(&out)
    );
}

/// `git ARGS` in `dir` as a test user; it must succeed.
fn git_in(dir: &Path, args: &[&str]) {
    let o = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.email=t@example.com", "-c", "user.name=t"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

// A quarter whose conversion window is open has no final value on either
// side, so a review of a conversion's change showed it as failed twice.
// `--allow conversion_window:TABLE` compares the counts to date, and the
// review says the gate was let through. On the sample, FY2026-Q3's window
// is open (to 2026-01-29; the data reaches 2026-01-01). The head counts the
// persons who reached MQL (`count: reached`) instead of those converted:
// mqls_converted_90d 335 → 781, the quarter's `mqls` (asserted below), and
// mql_to_sql_rate 335 / 781 = 0.428937 → 781 / 781 = 1.000000.
#[test]
fn an_open_window_is_compared_as_counts_to_date_when_let_through() {
    let head = tempfile::tempdir().unwrap();
    copy_project(head.path());
    let marketing = head.path().join("metrics/marketing.yaml");
    replace_in(
        &marketing,
        "      within_days: 90\n      count: converted\n",
        "      within_days: 90\n      count: reached\n",
    );
    let (base, data) = (repo(), repo().join("sample_data"));
    let run = |extra: &[&str]| {
        let mut args = vec![
            "diff",
            "--base",
            base.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--period",
            "FY2026-Q3",
            "--format",
            "json",
        ];
        args.extend_from_slice(extra);
        let out = canon(head.path(), &args);
        let d: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
        d
    };
    let side = |d: &serde_json::Value, metric: &str, side: &str| -> serde_json::Value {
        d["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["metric"] == metric)
            .unwrap_or_else(|| panic!("{metric} not in {d}"))["periods"][0][side]
            .clone()
    };
    let shut = run(&[]);
    assert!(
        side(&shut, "mqls_converted_90d", "base")["failed"]
            .as_str()
            .unwrap()
            .contains("has no final value for FY2026-Q3 yet"),
        "{shut}"
    );
    assert!(shut.get("allowed").is_none());
    let open = run(&[
        "--allow",
        "conversion_window:marketing/lifecycle_stage_history",
    ]);
    assert_eq!(
        open["allowed"],
        serde_json::json!(["conversion_window:marketing/lifecycle_stage_history"])
    );
    assert_eq!(side(&open, "mqls_converted_90d", "base")["value"], "335");
    assert_eq!(side(&open, "mqls_converted_90d", "head")["value"], "781");
    assert_eq!(side(&open, "mql_to_sql_rate", "base")["value"], "0.428937");
    assert_eq!(side(&open, "mql_to_sql_rate", "head")["value"], "1.000000");
    let mqls = query_json(&repo(), &data, &["mqls", "--period", "FY2026-Q3"]);
    assert_eq!(mqls["value"], "781");
}
