//! A metric's lifecycle through the real binary (issue 17 item 5): a
//! certified number is published only as the definition its sign-off
//! approved; a change anywhere in its closure (here a shared exclusion in
//! metrics/exclusions.yaml) makes the sign-off stale, which queries say and
//! publish shows as blocked; `canon signoff` approves the definition again;
//! drafts and deprecated metrics say what they are.

use std::path::Path;

use crate::common::*;

fn sample_data() -> std::path::PathBuf {
    repo().join("sample_data")
}

fn edit(project: &Path, file: &str, from: &str, to: &str) {
    replace_in(&project.join(file), from, to);
}

fn query(project: &Path, metric: &str) -> (serde_json::Value, String) {
    query_in(project, metric, "FY2026-Q1", None)
}

/// `metric` over `period` as JSON: afresh (`--no-cache`), or with the result
/// cache in `cache`.
fn query_in(
    project: &Path,
    metric: &str,
    period: &str,
    cache: Option<&Path>,
) -> (serde_json::Value, String) {
    let data = sample_data();
    let args = [
        "query",
        metric,
        "--period",
        period,
        "--format",
        "json",
        "--data",
        data.to_str().unwrap(),
    ];
    let out = match cache {
        Some(cache) => canon_cached(project, cache, &args),
        None => canon(project, &[&args[..], &["--no-cache"]].concat()),
    };
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    (serde_json::from_str(&stdout(&out)).unwrap(), stderr(&out))
}

fn published(project: &Path, only: &str) -> serde_json::Value {
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("pub");
    let o = publish_only(project, &sample_data(), &out, only, &[]);
    written_manifest(&o, &out)
}

fn statuses(manifest: &serde_json::Value) -> Vec<String> {
    manifest["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap().to_string())
        .collect()
}

// The committed sample is signed off as it is: every certified metric's
// sign-off is current (a definition change without `canon signoff` fails
// here first).
#[test]
fn the_sample_is_signed_off_as_it_is() {
    let (r, err) = query(&repo(), "bookings");
    assert_eq!(r["lifecycle"]["status"], "certified");
    assert_eq!(r["lifecycle"]["signoff"]["state"], "current", "{r}");
    assert!(!err.contains("warning"), "{err}");
}

// test_account is shared: bookings names it, mqls does not (its exclusions
// are deleted, test_email, internal_email), so changing it makes bookings'
// sign-off stale and leaves mqls' current.
#[test]
fn a_changed_shared_exclusion_makes_the_signoff_stale_and_publish_blocks_the_metric() {
    let project = tempfile::tempdir().unwrap();
    copy_project(project.path());
    edit(
        project.path(),
        "metrics/exclusions.yaml",
        "strpos(lower(account.name), 'test') > 0",
        "strpos(lower(account.name), 'tst') > 0",
    );
    let (r, err) = query(project.path(), "bookings");
    assert_eq!(r["lifecycle"]["signoff"]["state"], "stale", "{r}");
    assert!(
        err.contains("warning: sign-off stale: `bookings`'s definition changed since Acme metrics council (sample) approved version 1"),
        "{err}"
    );
    let (r, _) = query(project.path(), "mqls");
    assert_eq!(r["lifecycle"]["signoff"]["state"], "current", "{r}");

    // Blocked in each of the four configured periods, with the reason.
    let m = published(project.path(), "bookings");
    assert_eq!(statuses(&m), ["blocked"; 4]);
    assert!(
        m["metrics"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("sign-off stale: `bookings`'s definition changed"),
        "{m}"
    );
    assert_eq!(
        statuses(&published(project.path(), "mqls")),
        ["published"; 4]
    );
    // The bridge over bookings is blocked with it (its closure holds
    // bookings': its own sign-off is stale too).
    let m = published(project.path(), "bookings_to_revenue");
    let bridge: Vec<&str> = m["reconciliations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(bridge, ["blocked"; 4], "{m}");
    assert!(
        m["reconciliations"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("sign-off stale: `bookings_to_revenue`'s definition changed"),
        "{m}"
    );

    // Approved again, it is current and published; the other sign-offs are kept.
    let out = canon(project.path(), &["signoff", "bookings", "--by", "Jane Doe"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("signed off bookings v1 (closure "),
        "{}",
        stdout(&out)
    );
    let (r, err) = query(project.path(), "bookings");
    assert_eq!(r["lifecycle"]["signoff"]["state"], "current", "{r}");
    assert_eq!(r["lifecycle"]["signoff"]["approved"]["by"], "Jane Doe");
    assert!(!err.contains("warning"), "{err}");
    let file = std::fs::read_to_string(project.path().join("signoffs.yaml")).unwrap();
    // 20 certified metrics and the bridge.
    assert_eq!(file.matches("- metric: ").count(), 21, "{file}");
    assert_eq!(
        statuses(&published(project.path(), "bookings")),
        ["published"; 4]
    );
}

// A change outside the closure (the support desk's ticket entity, which no
// sales metric reads) leaves bookings' sign-off current; a version bump
// alone makes it stale (a new version is approved anew).
#[test]
fn only_what_the_metric_reads_and_its_version_count() {
    let project = tempfile::tempdir().unwrap();
    copy_project(project.path());
    edit(
        project.path(),
        "models/support.yaml",
        "description: A customer company in the support desk;",
        "description: (edited) A customer company in the support desk;",
    );
    let (r, _) = query(project.path(), "bookings");
    assert_eq!(r["lifecycle"]["signoff"]["state"], "current", "{r}");
    edit(
        project.path(),
        "metrics/sales.yaml",
        "version: 1",
        "version: 2",
    );
    let (r, _) = query(project.path(), "bookings");
    assert_eq!(r["lifecycle"]["signoff"]["state"], "stale", "{r}");
}

#[test]
fn a_certified_metric_without_a_signoff_is_blocked_as_missing() {
    let project = tempfile::tempdir().unwrap();
    copy_project(project.path());
    std::fs::remove_file(project.path().join("signoffs.yaml")).unwrap();
    let (r, err) = query(project.path(), "bookings");
    assert_eq!(r["lifecycle"]["signoff"]["state"], "missing", "{r}");
    assert!(
        err.contains("warning: sign-off missing: certified `bookings` has no sign-off"),
        "{err}"
    );
    let m = published(project.path(), "bookings");
    assert_eq!(statuses(&m), ["blocked"; 4]);
}

// new_business_share is the sample's draft.
#[test]
fn drafts_and_deprecated_metrics_say_so_and_are_not_published() {
    let (r, err) = query(&repo(), "new_business_share");
    assert_eq!(r["lifecycle"]["status"], "draft");
    assert!(r["lifecycle"].get("signoff").is_none(), "{r}");
    assert!(
        err.contains("warning: `new_business_share` is a draft: its definition is not certified, and publish does not carry it"),
        "{err}"
    );

    let project = tempfile::tempdir().unwrap();
    copy_project(project.path());
    let sales = std::fs::read_to_string(project.path().join("metrics/sales.yaml")).unwrap();
    // closed_deals (certified) deprecated in favour of won_deals.
    let at = sales.find("- name: closed_deals").unwrap();
    let status = at + sales[at..].find("status: certified").unwrap();
    let edited = format!(
        "{}status: deprecated\n    replaced_by: won_deals{}",
        &sales[..status],
        &sales[status + "status: certified".len()..]
    );
    std::fs::write(project.path().join("metrics/sales.yaml"), edited).unwrap();
    let (r, err) = query(project.path(), "closed_deals");
    assert_eq!(r["lifecycle"]["status"], "deprecated");
    assert_eq!(r["lifecycle"]["replaced_by"], "won_deals");
    assert!(
        err.contains("warning: `closed_deals` is deprecated: use `won_deals` instead"),
        "{err}"
    );
    let out_dir = tempfile::tempdir().unwrap();
    let o = publish_only(
        project.path(),
        &sample_data(),
        &out_dir.path().join("p"),
        "closed_deals",
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--only closed_deals: `closed_deals` is deprecated, and publish carries certified metrics only"),
        "{}",
        stderr(&o)
    );
    let o = canon(project.path(), &["signoff", "closed_deals", "--by", "x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("`closed_deals` is deprecated (replaced by `won_deals`): a deprecated metric is not signed off"),
        "{}",
        stderr(&o)
    );
}

/// `canon validate --no-data --strict`'s stderr on the sample with
/// `file`'s `from` replaced by `to` (a sign-off of a metric that is gone is
/// a warning, an error under --strict).
fn refused(file: &str, from: &str, to: &str) -> String {
    let project = tempfile::tempdir().unwrap();
    copy_project(project.path());
    edit(project.path(), file, from, to);
    let out = canon(project.path(), &["validate", "--no-data", "--strict"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    stderr(&out)
}

#[test]
fn lifecycle_rules_and_the_signoff_file_are_checked_with_locations() {
    let sales_deprecated = refused(
        "metrics/sales.yaml",
        "status: certified",
        "status: deprecated",
    );
    let replaced_unknown = refused(
        "metrics/sales.yaml",
        "status: certified",
        "status: deprecated\n    replaced_by: bookngs",
    );
    let draft_replaced = refused(
        "metrics/sales.yaml",
        "status: certified",
        "status: certified\n    replaced_by: won_deals",
    );
    let no_description = refused(
        "metrics/sales.yaml",
        "description: >\n      Σ amount in USD of won deals whose close_date is in the period. Each deal converts at the\n      corporate rate in force on its close_date, rounded to the cent per deal (half away from\n      zero); USD amounts are not rounded again. Every sum after that is exact.",
        "description: \" \"",
    );
    let unknown = refused("signoffs.yaml", "- metric: arr\n", "- metric: ar\n");
    let bad_sha = refused("signoffs.yaml", "closure_sha256: ", "closure_sha256: XYZ");
    let bad_time = refused("signoffs.yaml", "at: 2", "at: yesterday #2");
    insta::assert_snapshot!(
        [
            sales_deprecated,
            replaced_unknown,
            draft_replaced,
            no_description,
            unknown,
            bad_sha,
            bad_time
        ]
        .join("\n---\n")
    );
}

// A certified reconciliation is governed like a metric: dropping its
// subscription link rule (so lines reach deals only by opportunity id) is a
// change without a version bump, its sign-off goes stale, and publish
// blocks the bridge.
#[test]
fn a_changed_reconciliation_is_governed_like_a_metric() {
    let project = tempfile::tempdir().unwrap();
    copy_project(project.path());
    edit(
        project.path(),
        "metrics/reconciliation.yaml",
        "      - name: subscription\n        lookup: {entity: subscription, key: original_id, from: subscription_original_id, value: deal_id, filter: NOT is_deleted}\n",
        "",
    );
    let data = sample_data();
    let out = canon(
        project.path(),
        &[
            "diff",
            "--base",
            repo().to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--period",
            "FY2026-Q1",
            "--format",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let d: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let problems = d["problems"].to_string();
    assert!(
        problems.contains("certified reconciliation `bookings_to_revenue` changed (reconciliation bookings_to_revenue.links) without a version bump (v3 → v3)"),
        "{problems}"
    );
    assert!(
        problems.contains("sign-off stale: `bookings_to_revenue`"),
        "{problems}"
    );
    let m = published(project.path(), "bookings_to_revenue");
    let reason = m["reconciliations"][0]["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        reason.starts_with("sign-off stale: `bookings_to_revenue`"),
        "{m}"
    );
}

// Two sign-offs at once both land (each reads the file again under a lock
// before writing; before, one run's copy could write over the other's).
#[test]
fn concurrent_signoffs_keep_both_entries() {
    let project = tempfile::tempdir().unwrap();
    copy_project(project.path());
    for round in 0..6 {
        let (a, b) = (format!("A{round}"), format!("B{round}"));
        let spawn = |metric: &str, by: &str| {
            command(project.path(), &["signoff", metric, "--by", by])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        };
        let (mut one, mut two) = (spawn("bookings", &a), spawn("won_deals", &b));
        assert!(one.wait().unwrap().success() && two.wait().unwrap().success());
        let file = std::fs::read_to_string(project.path().join("signoffs.yaml")).unwrap();
        let by_of = |metric: &str| {
            let at = file.find(&format!("- metric: {metric}\n")).unwrap();
            file[at..]
                .lines()
                .find(|l| l.trim_start().starts_with("by: "))
                .unwrap()
                .trim()
                .to_string()
        };
        assert_eq!(by_of("bookings"), format!("by: {a}"), "{file}");
        assert_eq!(by_of("won_deals"), format!("by: {b}"), "{file}");
        assert_eq!(file.matches("- metric: ").count(), 21, "{file}");
    }
}

// `--no-cache` remembers nothing, the closure hashes a sign-off is judged
// against included: such a run neither leaves them in the project's cache
// folder nor reads one an earlier run left. A kept hash that no longer
// matches the definition (planted here) is believed by a run that
// remembers, and ignored by one that does not.
#[test]
fn no_cache_neither_reads_nor_keeps_closure_hashes() {
    let project = tempfile::tempdir().unwrap();
    copy_project(project.path());
    let closures = project.path().join(".canon-cache").join("closures");
    let (r, _) = query(project.path(), "bookings");
    assert_eq!(r["lifecycle"]["signoff"]["state"], "current", "{r}");
    assert!(!closures.exists(), "a --no-cache run kept closure hashes");

    // A run that remembers, its cache in a folder of its own
    // (`--cache-dir`), keeps bookings' closure hash there, and nothing in
    // the project's cache folder (until 2026-12-06 the hashes went there
    // whatever --cache-dir said) ...
    let cache = tempfile::tempdir().unwrap();
    query_in(project.path(), "bookings", "FY2026-Q1", Some(cache.path()));
    assert!(!closures.exists(), "closure hashes outside --cache-dir");
    let kept: Vec<_> = std::fs::read_dir(cache.path().join("closures"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let memo: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&kept[0]).unwrap()).unwrap();
    assert!(memo["closures"].get("bookings").is_some(), "{memo:?}");

    // ... which, replaced by another sealed as canon seals it
    // (`lifecycle::seal`: sha256 of "canon closures seal v1\n", the file's
    // name, "\n" and the hashes' JSON), a run that remembers believes (the
    // answer is cached too, so it is computed under another period) ...
    let closures = r#"{"bookings":"0000000000000000"}"#;
    let digest = {
        use sha2::{Digest, Sha256};
        let name = kept[0].file_name().unwrap().to_string_lossy().into_owned();
        let mut h = Sha256::new();
        h.update(format!("canon closures seal v1\n{name}\n"));
        h.update(closures);
        hex::encode(h.finalize())
    };
    std::fs::write(
        &kept[0],
        format!(r#"{{"digest":"{digest}","closures":{closures}}}"#),
    )
    .unwrap();
    let (r, _) = query_in(project.path(), "bookings", "FY2026-Q2", Some(cache.path()));
    assert_eq!(r["lifecycle"]["signoff"]["state"], "stale", "{r}");

    // ... and a --no-cache run does not read.
    let (r, _) = query(project.path(), "bookings");
    assert_eq!(r["lifecycle"]["signoff"]["state"], "current", "{r}");
}

// The closure hashes a run remembers (`closures/` in the cache folder) are
// sealed like its other entries: one edited to the approved hash used to
// make a changed definition's stale sign-off read as current (no warning,
// and publish published it as certified). Now the edited file does not
// verify, the closure is planned again, and the sign-off stays stale.
#[test]
fn an_edited_closure_hash_does_not_make_a_stale_signoff_current() {
    let project = tempfile::tempdir().unwrap();
    copy_project(project.path());
    let cache = tempfile::tempdir().unwrap();
    edit(
        project.path(),
        "metrics/sales.yaml",
        "    filter: is_won\n",
        "    filter: is_won AND amount > 1000\n",
    );
    let (r, _) = query_in(project.path(), "bookings", "FY2026-Q1", Some(cache.path()));
    assert_eq!(r["lifecycle"]["signoff"]["state"], "stale");
    let approved = r["lifecycle"]["signoff"]["approved"]["closure_sha256"]
        .as_str()
        .unwrap()
        .to_string();
    // Every remembered closure file: bookings' hash set to the approved one.
    let mut edited = 0;
    for entry in std::fs::read_dir(cache.path().join("closures")).unwrap() {
        let path = entry.unwrap().path();
        let mut kept: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        if kept["closures"].get("bookings").is_some() {
            kept["closures"]["bookings"] = serde_json::json!(approved);
            std::fs::write(&path, serde_json::to_vec(&kept).unwrap()).unwrap();
            edited += 1;
        }
    }
    assert_eq!(edited, 1);
    let (r, said) = query_in(project.path(), "bookings", "FY2026-Q1", Some(cache.path()));
    assert_eq!(r["lifecycle"]["signoff"]["state"], "stale", "{said}");
    assert!(
        said.contains("stored closure hashes do not verify"),
        "{said}"
    );
}
