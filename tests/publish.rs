//! `canon publish` through the real binary: the layout BI tools read, the
//! atomic swap, and blocked metrics in the manifest.

mod common;

use common::*;
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Decimal128Type;

fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_company(dir.path());
    dir
}

fn publish(data: &std::path::Path, out: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "publish",
        "--out",
        out.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--only",
        "bookings",
        "--period",
        "FY2026-Q1",
        "--period",
        "FY2026-Q2",
    ];
    args.extend_from_slice(extra);
    canon(&repo(), &args)
}

fn read_parquet(path: &std::path::Path) -> datafusion::arrow::array::RecordBatch {
    let f = std::fs::File::open(path).unwrap();
    let r = datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap();
    r.into_iter().next().unwrap().unwrap()
}

// bookings FY2026-Q1 = 3694.46 (see flow_metrics), FY2026-Q2 = D13 999.00.
// The published Parquet reads back to the same exact values the query gives.
#[test]
fn published_files_round_trip_to_the_query_results() {
    let data = fixture();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("published");
    let o = publish(data.path(), &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let batch = read_parquet(&out.join("metrics/bookings.parquet"));
    let periods = batch.column_by_name("period").unwrap().as_string::<i32>();
    let values = batch
        .column_by_name("value")
        .unwrap()
        .as_primitive::<Decimal128Type>();
    let got: Vec<(String, i128)> = (0..batch.num_rows())
        .map(|i| (periods.value(i).to_string(), values.value(i)))
        .collect();
    assert_eq!(
        got,
        [
            ("FY2026-Q1".to_string(), 369446),
            ("FY2026-Q2".to_string(), 99900)
        ]
    );
    let q = query_json(&repo(), data.path(), &["bookings", "--period", "FY2026-Q1"]);
    assert_eq!(q["value"], "3694.46");
    let csv = std::fs::read_to_string(out.join("metrics/bookings.csv")).unwrap();
    assert!(
        csv.starts_with("metric,period,period_start,period_end,value,unit\n"),
        "{csv}"
    );
    assert!(
        csv.contains("bookings,FY2026-Q1,2025-02-01,2025-05-01,3694.46,USD"),
        "{csv}"
    );
    // Exclusions: FY2026-Q1 test_account removed 2 deals, 800.00.
    let x = read_parquet(&out.join("exclusions.parquet"));
    let names = x.column_by_name("exclusion").unwrap().as_string::<i32>();
    let per = x.column_by_name("period").unwrap().as_string::<i32>();
    let rows = x
        .column_by_name("rows")
        .unwrap()
        .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
    let vals = x
        .column_by_name("value")
        .unwrap()
        .as_primitive::<Decimal128Type>();
    let test = (0..x.num_rows())
        .find(|&i| names.value(i) == "test_account" && per.value(i) == "FY2026-Q1")
        .unwrap();
    assert_eq!((rows.value(test), vals.value(test)), (2, 80000));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let entry = &manifest["metrics"][0];
    assert_eq!(entry["status"], "published");
    assert_eq!(entry["value"], "3694.46");
    assert_eq!(entry["fingerprint"].as_str().unwrap().len(), 64);
    assert_eq!(entry["definition"]["file"], "metrics/sales.yaml");
}

// A publish that fails part-way (a corrupt input file) leaves the previous
// publication exactly as it was, and no temporary folder behind.
#[test]
fn a_failed_publish_leaves_the_old_publication_intact() {
    let data = fixture();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("published");
    assert!(publish(data.path(), &out, &[]).status.success());
    let before = std::fs::read(out.join("manifest.json")).unwrap();
    std::fs::write(
        data.path().join("crm/opportunity/part-00000.parquet"),
        b"corrupt",
    )
    .unwrap();
    let o = publish(data.path(), &out, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("crm/opportunity"), "{}", stderr(&o));
    assert_eq!(std::fs::read(out.join("manifest.json")).unwrap(), before);
    let leftovers: Vec<_> = std::fs::read_dir(out_dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(leftovers, ["published"]);
}

// Stale inputs: the metric is published as blocked, with its reason and no value.
#[test]
fn blocked_metrics_are_in_the_manifest_without_a_value() {
    let data = fixture();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("published");
    let o = publish(data.path(), &out, &["--now", "2026-01-05T00:00:00Z"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("(2 blocked)"), "{}", stdout(&o));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let entry = &manifest["metrics"][0];
    assert_eq!(entry["status"], "blocked");
    assert!(
        entry["reason"].as_str().unwrap().contains("freshness"),
        "{entry}"
    );
    assert!(entry.get("value").is_none());
    assert!(!out.join("metrics/bookings.parquet").exists());
}
