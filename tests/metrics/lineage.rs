//! `canon lineage` through the real binary on the committed sample project:
//! the graphs asserted here are worked out from metrics/ and models/ by
//! hand (which entity a metric is over, the links its fields and exclusions
//! name, the columns behind them), and the drawings people read are
//! reviewed snapshots.

use std::collections::BTreeSet;

use crate::common::*;

fn lineage(args: &[&str]) -> std::process::Output {
    let data = repo().join("sample_data");
    let mut all = vec!["lineage"];
    all.extend(args);
    all.extend(["--data", data.to_str().unwrap()]);
    canon(&repo(), &all)
}

fn graph(args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let out = lineage(&all);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

fn edges(g: &serde_json::Value) -> BTreeSet<(String, String, String)> {
    g["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["from"].as_str().unwrap().to_string(),
                e["label"].as_str().unwrap().to_string(),
                e["to"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn edge(from: &str, label: &str, to: &str) -> (String, String, String) {
    (from.to_string(), label.to_string(), to.to_string())
}

/// The labels of the nodes `from` points to with `label`.
fn targets(g: &serde_json::Value, from: &str, label: &str) -> Vec<String> {
    edges(g)
        .into_iter()
        .filter(|(f, l, _)| f == from && l == label)
        .map(|(_, _, t)| t)
        .collect()
}

// arr (metrics/customers.yaml) is over recurring_charge; its filter, measure,
// validity and currency read charge_type, is_deleted, effective_start_date,
// effective_end_date, mrr and transaction_currency, and the subscription link
// subscription_id: seven columns of billing/rate_plan_charge (not id, name or
// tcv). The subscription's is_latest_version and is_deleted and the billing
// account's is_deleted and crm link reach billing_account, whose crm link
// crosses into the CRM (an identity rule), whose accounts merge. Its three
// exclusions are deleted, test_account and internal_account; its members are
// billing_account.customer_id; its conversion reads fx_rate directly.
#[test]
fn arr_runs_from_the_charge_through_billing_to_the_surviving_crm_account() {
    let g = graph(&["arr"]);
    let e = edges(&g);
    for expected in [
        edge("metric:arr", "over", "entity:recurring_charge"),
        edge(
            "entity:recurring_charge",
            "link subscription (subscription_id)",
            "entity:subscription",
        ),
        edge(
            "entity:subscription",
            "link billing_account (billing_account_id)",
            "entity:billing_account",
        ),
        edge(
            "entity:billing_account",
            "identity",
            "identity:billing_account.crm",
        ),
        edge(
            "identity:billing_account.crm",
            "resolves to",
            "entity:account",
        ),
        edge("entity:account", "identity", "identity:account.merges"),
        edge("metric:arr", "reads", "entity:fx_rate"),
        edge(
            "metric:arr",
            "counts members by",
            "identity:billing_account.customer_id",
        ),
        edge(
            "entity:recurring_charge",
            "mapped from",
            "source:billing/rate_plan_charge",
        ),
        // metrics/exclusions.yaml: deleted is the billing account's
        // is_deleted, test_account its customer_name, internal_account the
        // CRM account's domain (through subscription.billing_account.crm).
        edge(
            "exclusion:arr/deleted",
            "tests is_deleted",
            "entity:billing_account",
        ),
        edge(
            "exclusion:arr/test_account",
            "tests customer_name",
            "entity:billing_account",
        ),
        edge(
            "exclusion:arr/internal_account",
            "tests domain",
            "entity:account",
        ),
        edge(
            "source:billing/rate_plan_charge",
            "file",
            "file:billing/rate_plan_charge/part-00000.parquet",
        ),
    ] {
        assert!(e.contains(&expected), "{expected:?} missing from {e:#?}");
    }
    // Entities a link reaches are not also said to be read directly.
    assert_eq!(targets(&g, "metric:arr", "reads"), ["entity:fx_rate"]);
    assert_eq!(
        targets(&g, "metric:arr", "excludes"),
        [
            "exclusion:arr/deleted",
            "exclusion:arr/internal_account",
            "exclusion:arr/test_account",
            "exclusion:arr/unknown_customer"
        ]
    );
    let columns: Vec<String> = targets(&g, "source:billing/rate_plan_charge", "column")
        .into_iter()
        .map(|c| c.rsplit('.').next().unwrap().to_string())
        .collect();
    assert_eq!(
        columns,
        [
            "charge_type",
            "effective_end_date",
            "effective_start_date",
            "is_deleted",
            "mrr",
            "subscription_id",
            "transaction_currency"
        ]
    );
    // The file's node carries its size on disk.
    let file = g["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "file:billing/rate_plan_charge/part-00000.parquet")
        .unwrap();
    let bytes =
        std::fs::metadata(repo().join("sample_data/billing/rate_plan_charge/part-00000.parquet"))
            .unwrap()
            .len();
    assert_eq!(file["detail"], format!("{bytes} bytes"));
    assert_eq!(file["kind"], "file");
}

// mql_to_sql_rate = mqls_converted_90d / mqls (metrics/marketing.yaml): both
// parts are over lifecycle_event, linked to contact, whose merges come from
// the merge audit (contact_merge): an identity rule, not a direct read.
#[test]
fn a_ratio_is_computed_from_its_parts_and_a_merge_audit_is_an_identity_rule() {
    let g = graph(&["mql_to_sql_rate"]);
    assert_eq!(
        targets(&g, "metric:mql_to_sql_rate", "computed from"),
        ["metric:mqls", "metric:mqls_converted_90d"]
    );
    let e = edges(&g);
    for expected in [
        edge("metric:mqls", "over", "entity:lifecycle_event"),
        edge(
            "metric:mqls_converted_90d",
            "over",
            "entity:lifecycle_event",
        ),
        edge(
            "entity:lifecycle_event",
            "link contact (contact_id)",
            "entity:contact",
        ),
        edge("entity:contact", "identity", "identity:contact.merges"),
        edge(
            "identity:contact.merges",
            "merges from",
            "entity:contact_merge",
        ),
        edge(
            "metric:mqls",
            "counts members by",
            "identity:contact.person_id",
        ),
    ] {
        assert!(e.contains(&expected), "{expected:?} missing from {e:#?}");
    }
    assert!(targets(&g, "metric:mqls", "reads").is_empty(), "{e:#?}");
    // unknown_contact, deleted, internal_email, test_email
    assert_eq!(targets(&g, "metric:mqls", "excludes").len(), 4);
}

// nrr is a cohort of arr: what it reads is arr's.
#[test]
fn a_cohort_reads_through_its_base_metric() {
    let g = graph(&["nrr"]);
    assert_eq!(targets(&g, "metric:nrr", "computed from"), ["metric:arr"]);
    assert_eq!(
        targets(&g, "metric:arr", "over"),
        ["entity:recurring_charge"]
    );
}

// Without a data root the plan still says what is read; only the files are
// missing, and stderr says why.
#[test]
fn without_data_the_graph_stops_at_the_columns_and_says_so() {
    // canon.yaml's data root is not there (a reviewer's checkout without
    // the extracts): the graph stops at the columns.
    let project = tempfile::tempdir().unwrap();
    copy_project(project.path());
    let yaml = project.path().join("canon.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();
    std::fs::write(
        &yaml,
        text.replace("data_root: sample_data", "data_root: nowhere"),
    )
    .unwrap();
    let out = canon(project.path(), &["lineage", "bookings", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let g: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(
        g["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["kind"] != "file"),
        "{g}"
    );
    assert!(
        targets(&g, "source:crm/opportunity", "column")
            .contains(&"column:crm/opportunity.amount".to_string()),
        "{g}"
    );
    assert!(stderr(&out).contains("no data root: the files are not listed"));
    // A --data that is not there is a mistake on the command line.
    let missing = project.path().join("also-nowhere");
    let out = canon(
        project.path(),
        &["lineage", "bookings", "--data", missing.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn an_unknown_metric_is_refused_with_a_suggestion() {
    let out = lineage(&["bookngs"]);
    assert_eq!(out.status.code(), Some(2));
    insta::assert_snapshot!(stderr(&out), @"error: unknown metric `bookngs` (did you mean `bookings`?); `canon list` shows the catalog");
}

// What reviewers read: bookings drawn for Mermaid and Graphviz.
#[test]
fn bookings_drawn_for_mermaid_and_graphviz() {
    for (format, name) in [("mermaid", "bookings_mermaid"), ("dot", "bookings_dot")] {
        let out = lineage(&["bookings", "--format", format]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        insta::assert_snapshot!(name, stdout(&out));
    }
}

// --out never lands on the project's definitions, sign-offs or data.
#[test]
fn lineage_and_diff_refuse_to_write_over_the_project() {
    let p = tempfile::tempdir().unwrap();
    copy_project(p.path());
    let data = repo().join("sample_data");
    for target in ["signoffs.yaml", "canon.yaml", "metrics/sales.yaml"] {
        let path = p.path().join(target);
        let before = std::fs::read(&path).unwrap();
        for args in [
            vec!["lineage", "bookings"],
            vec![
                "diff",
                "--base",
                repo().to_str().unwrap(),
                "--period",
                "FY2026-Q1",
            ],
        ] {
            let mut all = args.clone();
            all.extend([
                "--data",
                data.to_str().unwrap(),
                "--out",
                path.to_str().unwrap(),
            ]);
            let out = canon(p.path(), &all);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{args:?} --out {target}: {}",
                stderr(&out)
            );
            assert!(stderr(&out).contains("refused"), "{}", stderr(&out));
            assert_eq!(std::fs::read(&path).unwrap(), before, "{target} changed");
        }
    }
}
