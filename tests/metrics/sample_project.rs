//! The committed sample project: its definitions validate against its data,
//! the README's main command answers, and the data is exactly what the
//! generator makes (so `canon sample` and `sample_data/` never drift apart).

use crate::common::*;

#[test]
fn validate_passes_on_the_committed_sample_data_and_models() {
    let out = canon(&repo(), &["validate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("definitions ok"), "{text}");
    assert!(text.contains("data ok: 16 tables"), "{text}");
}

#[test]
fn the_readme_query_answers_on_the_sample_data() {
    let out = canon(
        &repo(),
        &[
            "query",
            "bookings",
            "--period",
            "FY2026-Q1",
            "--format",
            "json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(r["value"].as_str().unwrap().parse::<f64>().unwrap() > 0.0);
    // included + Σ excluded = universe, exactly, on real-sized data too.
    let t = &r["tallies"][0];
    let cents =
        |v: &serde_json::Value| -> i128 { v.as_str().unwrap().replace('.', "").parse().unwrap() };
    let excluded: i128 = r["exclusions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| cents(&x["value"]))
        .sum();
    assert_eq!(
        cents(&t["included_value"]) + excluded,
        cents(&t["universe_value"])
    );
    let excluded_rows: i64 = r["exclusions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["rows"].as_i64().unwrap())
        .sum();
    assert_eq!(
        t["included_rows"].as_i64().unwrap() + excluded_rows,
        t["universe_rows"].as_i64().unwrap()
    );
}

#[test]
fn sample_data_is_what_the_generator_writes() {
    let fresh = tempfile::tempdir().unwrap();
    let out = canon(
        &repo(),
        &[
            "sample",
            "--out",
            fresh.path().to_str().unwrap(),
            "--seed",
            "42",
            "--scale",
            "1",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let committed = repo().join("sample_data");
    let mut checked = 0;
    // The generator's marker, then every table's files.
    let marker = ".canon-sample";
    assert_eq!(
        std::fs::read(fresh.path().join(marker)).unwrap(),
        std::fs::read(committed.join(marker)).unwrap()
    );
    for system in std::fs::read_dir(fresh.path()).unwrap() {
        let system = system.unwrap().path();
        if !system.is_dir() {
            continue;
        }
        for table in std::fs::read_dir(&system).unwrap() {
            let table = table.unwrap().path();
            for file in std::fs::read_dir(&table).unwrap() {
                let file = file.unwrap().path();
                let rel = file.strip_prefix(fresh.path()).unwrap();
                let a = std::fs::read(&file).unwrap();
                let b = std::fs::read(committed.join(rel)).unwrap_or_else(|_| {
                    panic!("sample_data/{} is missing: regenerate it", rel.display())
                });
                assert!(
                    a == b,
                    "sample_data/{} differs from the generator's output: regenerate with `canon sample --out sample_data --seed 42 --scale 1`",
                    rel.display()
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 16);
}

/// A result's evidence depends on its metric and request only, never on
/// what else the command computed: `bookings` asked beside `mqls` (whose
/// contacts are merged through marketing/contact_merge_audit) has the
/// lineage, gates and fingerprint it has alone. It used to inherit the
/// merge audit from `mqls` (one list of side reads per run), and through the
/// cache a later `query bookings` was blocked on that table's freshness.
#[test]
fn a_result_s_evidence_does_not_depend_on_the_other_metrics_asked() {
    let ask = |metrics: &[&str]| -> serde_json::Value {
        let mut args = vec!["query"];
        args.extend(metrics);
        args.extend(["--period", "FY2026-Q1", "--no-cache", "--format", "json"]);
        let out = canon(&repo(), &args);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let sources = lineage_tables;
    let checked = |r: &serde_json::Value| -> Vec<String> {
        let mut tables: Vec<String> = r["quality"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["table"].as_str().unwrap_or("").to_string())
            .collect();
        tables.sort();
        tables.dedup();
        tables
    };
    let alone = ask(&["bookings"]);
    let both = ask(&["mqls", "bookings"]);
    let results = both.as_array().expect("two results");
    let beside = results.iter().find(|r| r["metric"] == "bookings").unwrap();
    let mqls = results.iter().find(|r| r["metric"] == "mqls").unwrap();
    assert_eq!(
        sources(&alone),
        [
            "crm/account",
            "crm/dated_conversion_rate",
            "crm/opportunity"
        ]
    );
    assert_eq!(sources(beside), sources(&alone));
    assert_eq!(checked(beside), checked(&alone));
    assert_eq!(beside["fingerprint"], alone["fingerprint"]);
    // mqls's own merge audit is still in its own lineage.
    assert!(
        sources(mqls).contains(&"marketing/contact_merge_audit".to_string()),
        "{:?}",
        sources(mqls)
    );
}

/// The bridge's two governed sides run side by side, and each carries the
/// checks its metric has when asked alone. Both sides used to note their
/// joins into each other's recording, so bookings was gated on the
/// accounting periods' keys and recognized revenue on the CRM accounts'
/// (a duplicated CRM account blocked the revenue side, which reads none).
#[test]
fn each_side_of_the_bridge_is_checked_as_its_metric_alone() {
    let checks = |r: &serde_json::Value| -> Vec<String> {
        let mut out: Vec<String> = r["quality"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                format!(
                    "{}:{}",
                    c["table"].as_str().unwrap(),
                    c["check"].as_str().unwrap()
                )
            })
            .collect();
        out.sort();
        out.dedup();
        out
    };
    let json = |args: &[&str]| -> serde_json::Value {
        let out = canon(&repo(), args);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let bridge = json(&[
        "reconcile",
        "bookings_to_revenue",
        "--period",
        "FY2026-Q1",
        "--no-cache",
        "--format",
        "json",
    ]);
    let sides = bridge["sides"].as_array().expect("two sides");
    assert_eq!(sides.len(), 2);
    for side in sides {
        let metric = side["metric"].as_str().unwrap();
        let alone = json(&[
            "query",
            metric,
            "--period",
            "FY2026-Q1",
            "--no-cache",
            "--format",
            "json",
        ]);
        assert_eq!(checks(side), checks(&alone), "{metric}");
    }
    let revenue = sides
        .iter()
        .find(|s| s["metric"] == "recognized_revenue")
        .unwrap();
    assert!(
        !checks(revenue).iter().any(|c| c.starts_with("crm/")),
        "{:?}",
        checks(revenue)
    );
}
