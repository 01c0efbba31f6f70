//! `canon publish` through the real binary: the layout BI tools read, the
//! atomic swap, and blocked metrics in the manifest.

use crate::common::*;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::Decimal128Type;

fn publish(data: &std::path::Path, out: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let periods = ["--period", "FY2026-Q1", "--period", "FY2026-Q2"];
    publish_only(
        &repo(),
        data,
        out,
        "bookings",
        &[&periods[..], extra].concat(),
    )
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
    // At the publication's one scale, 6: 3694.46 = 3694460000 millionths.
    assert_eq!(
        got,
        [
            ("FY2026-Q1".to_string(), 3_694_460_000),
            ("FY2026-Q2".to_string(), 999_000_000)
        ]
    );
    assert_eq!(
        batch.schema().field_with_name("value").unwrap().data_type(),
        &datafusion::arrow::datatypes::DataType::Decimal128(38, 6)
    );
    let q = query_json(&repo(), data.path(), &["bookings", "--period", "FY2026-Q1"]);
    assert_eq!(q["value"], "3694.46");
    let csv = std::fs::read_to_string(out.join("metrics/bookings.csv")).unwrap();
    assert!(
        csv.starts_with(
            "metric,period,grain,period_start,period_end,value,unit,complete,status,reason\n"
        ),
        "{csv}"
    );
    assert!(
        csv.contains("bookings,FY2026-Q1,fiscal_quarter,2025-02-01,2025-05-01,3694.460000,USD,true,published,\n"),
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
    // Written, and still a failure a scheduler notices: exit 1, each
    // blocked result named.
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("published 0 metric result(s) (2 more blocked)"),
        "{}",
        stdout(&o)
    );
    let err = stderr(&o);
    assert!(err.contains("but 2 results in it are blocked"), "{err}");
    assert!(err.contains("\n  bookings "), "{err}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let entry = &manifest["metrics"][0];
    assert_eq!(entry["status"], "blocked");
    assert!(
        entry["reason"].as_str().unwrap().contains("freshness"),
        "{entry}"
    );
    assert!(entry.get("value").is_none());
    // The metric's files still have the period's row: no value, and why.
    let batch = read_parquet(&out.join("metrics/bookings.parquet"));
    let status = batch.column_by_name("status").unwrap().as_string::<i32>();
    let reason = batch.column_by_name("reason").unwrap().as_string::<i32>();
    let value = batch.column_by_name("value").unwrap();
    assert!(batch.num_rows() > 0);
    for i in 0..batch.num_rows() {
        assert_eq!(status.value(i), "blocked");
        assert!(reason.value(i).contains("freshness"), "{}", reason.value(i));
        assert!(value.is_null(i));
    }
}

// No writer lands on what canon did not create: every --out onto the data
// root, the project, canon.yaml, models/, metrics/ or the cache (existing or
// not yet, directly, through `..` or through a link) is refused with exit 2
// before anything is computed, and nothing is touched. The project is a
// copy, so a failure here cannot damage the repository.
#[test]
fn no_out_lands_on_the_project_its_data_or_its_cache() {
    let project = tempfile::tempdir().unwrap();
    copy_project(project.path());
    let p = project.path();
    let data = p.join("data");
    std::fs::create_dir(&data).unwrap();
    write_company(&data);
    let cache = p.join(".canon-cache");
    std::fs::create_dir(&cache).unwrap();
    std::fs::write(cache.join("files.json"), b"{}").unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(p.join("canon.yaml"), elsewhere.path().join("link.csv")).unwrap();
    let before = contents(p);
    let d = data.to_str().unwrap();
    let outs: Vec<std::path::PathBuf> = vec![
        p.join("canon.yaml"),
        p.to_path_buf(),
        data.clone(),
        data.join("crm"),
        data.join("new.csv"),
        data.join("crm/opportunity/part-00000.parquet"),
        p.join("models/crm.yaml"),
        p.join("metrics"),
        p.join("metrics/new.csv"),
        cache.clone(),
        cache.join("results/new.json"),
        p.join("sub/../canon.yaml"),
        #[cfg(unix)]
        elsewhere.path().join("link.csv"),
    ];
    for out in &outs {
        let o = out.to_str().unwrap();
        let runs: [Vec<&str>; 3] = [
            vec![
                "query",
                "bookings",
                "--period",
                "FY2026-Q1",
                "--data",
                d,
                "--format",
                "csv",
                "--out",
                o,
            ],
            vec![
                "reconcile",
                "bookings_to_revenue",
                "--period",
                "2025-03",
                "--data",
                d,
                "--out",
                o,
            ],
            vec![
                "publish",
                "--only",
                "bookings",
                "--period",
                "FY2026-Q1",
                "--data",
                d,
                "--out",
                o,
            ],
        ];
        for args in runs {
            let r = canon(p, &args);
            assert_eq!(r.status.code(), Some(2), "{args:?}: {}", stderr(&r));
            assert!(stderr(&r).contains("refused"), "{args:?}: {}", stderr(&r));
            assert_eq!(contents(p), before, "{args:?} changed the project");
        }
    }
    // Outside the project the same commands write.
    let fine = elsewhere.path().join("bookings.csv");
    let r = canon(
        p,
        &[
            "query",
            "bookings",
            "--period",
            "FY2026-Q1",
            "--data",
            d,
            "--format",
            "csv",
            "--out",
            fine.to_str().unwrap(),
        ],
    );
    assert!(r.status.success(), "{}", stderr(&r));
    assert!(std::fs::read_to_string(&fine).unwrap().contains("3694.46"));
}

// Publish replaces only what it created: a file, a folder with anything in
// it that is not a canon publication, or a publication with a file added by
// hand is refused (exit 2) and left exactly as it was.
#[test]
fn publish_replaces_only_an_empty_folder_or_its_own_publication() {
    let data = fixture();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.txt");
    std::fs::write(&file, b"mine").unwrap();
    let o = publish(data.path(), &file, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("is a file"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&file).unwrap(), b"mine");

    let folder = dir.path().join("folder");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("keep.txt"), b"mine").unwrap();
    let o = publish(data.path(), &folder, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("not a canon publication"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(folder.join("keep.txt")).unwrap(), b"mine");

    // An empty folder is taken; then the publication is canon's to replace.
    let out = dir.path().join("empty");
    std::fs::create_dir(&out).unwrap();
    assert!(publish(data.path(), &out, &[]).status.success());
    assert!(out.join(".canon-publication").is_file());
    assert!(publish(data.path(), &out, &[]).status.success());
    // A file added by hand makes it no longer canon's alone.
    std::fs::write(out.join("metrics/notes.txt"), b"mine").unwrap();
    let o = publish(data.path(), &out, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("metrics/notes.txt"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(out.join("metrics/notes.txt")).unwrap(),
        b"mine"
    );
}

/// The Python of benches/.venv with DuckDB installed (by the harness).
fn duckdb_python() -> std::path::PathBuf {
    let o = std::process::Command::new("python3")
        .arg(repo().join("benches/run.py"))
        .arg("--duckdb-python")
        .output()
        .expect("python3 runs the harness");
    assert!(o.status.success(), "{}", stderr(&o));
    std::path::PathBuf::from(stdout(&o).lines().last().unwrap().trim())
}

/// Reads the publication in `dir` as a BI tool would, with DuckDB: every
/// file its manifest lists must be there, every Parquet file readable.
/// Returns the periods of the manifest, bookings' (period, value) rows, and
/// whether the history holds every number the manifest published.
fn read_with_duckdb(python: &std::path::Path, dir: &std::path::Path) -> String {
    let script = r#"
import duckdb, json, os, sys
d = sys.argv[1]
m = json.load(open(os.path.join(d, "manifest.json")))
for f in m["files"]:
    p = os.path.join(d, f)
    assert os.path.isfile(p), f
    if f.endswith(".parquet"):
        duckdb.sql(f"SELECT count(*) FROM read_parquet('{p}')").fetchall()
rows = duckdb.sql(f"SELECT period, CAST(value AS VARCHAR) FROM read_parquet('{os.path.join(d, 'metrics/bookings.parquet')}') ORDER BY period").fetchall()
# The history is whole (every line reads) and holds every number the
# manifest says was published, with its fingerprint.
history = [json.loads(l) for l in open(os.path.join(d, "history.jsonl")) if l.strip()]
seen = {(h["metric"], h["period"], h["fingerprint"]) for h in history}
whole = all((e["metric"], e["period"], e["fingerprint"]) in seen for e in m["metrics"] if e["status"] == "published")
print(json.dumps({"periods": [p["label"] for p in m["periods"]], "bookings": rows, "history_whole": whole}))
"#;
    let o = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o).trim().to_string()
}

// A publish killed after each of its filesystem steps in turn (the test-only
// switch CANON_FAULT_KILL_AFTER_STEP=N) leaves a whole publication every
// time, old or new, readable by DuckDB; the next run cleans up what the
// killed one left. Old: FY2026-Q1 only (3694.46); new: FY2026-Q1 and
// FY2026-Q2 (3694.46, 999.00; see the first test).
#[test]
fn a_publish_killed_at_any_step_leaves_a_whole_publication() {
    let python = duckdb_python();
    let data = fixture();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("published");
    let d = data.path().to_str().unwrap();
    let o = out.to_str().unwrap();
    let old_args = [
        "publish",
        "--out",
        o,
        "--data",
        d,
        "--only",
        "bookings",
        "--period",
        "FY2026-Q1",
    ];
    assert!(canon(&repo(), &old_args).status.success());
    let old = r#"{"periods": ["FY2026-Q1"], "bookings": [["FY2026-Q1", "3694.460000"]], "history_whole": true}"#;
    let new = r#"{"periods": ["FY2026-Q1", "FY2026-Q2"], "bookings": [["FY2026-Q1", "3694.460000"], ["FY2026-Q2", "999.000000"]], "history_whole": true}"#;
    assert_eq!(read_with_duckdb(&python, &out), old);
    let mut new_args = old_args.to_vec();
    new_args.extend(["--period", "FY2026-Q2"]);
    let mut killed = 0;
    for n in 1.. {
        let r = canon_with_env(
            &repo(),
            &new_args,
            &[("CANON_FAULT_KILL_AFTER_STEP", &n.to_string())],
        );
        if r.status.success() {
            break;
        }
        assert_eq!(r.status.code(), Some(137), "step {n}: {}", stderr(&r));
        assert!(
            stderr(&r).contains(&format!("killed after step {n}")),
            "{}",
            stderr(&r)
        );
        killed += 1;
        let seen = read_with_duckdb(&python, &out);
        assert!(seen == old || seen == new, "after step {n}: {seen}");
        // Once switched, the new one stays: the next kill is of a publish
        // over the new publication, which must then stay whole in turn.
        assert!(n < 40, "the publish never finished");
    }
    // Staging, files, sync, switch, parent sync and removal: at least ten
    // steps were each killed after.
    assert!(killed >= 10, "only {killed} steps");
    assert_eq!(read_with_duckdb(&python, &out), new);
    // The first publication's row was carried into every one after it: 1,
    // then 2 more per publication that switched in (1 + 2k, k ≥ 1).
    let rows = std::fs::read_to_string(out.join("history.jsonl"))
        .unwrap()
        .lines()
        .count();
    assert!(rows >= 3 && rows % 2 == 1, "{rows} history rows");
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["published"], "a killed run's leftovers stayed");
}

// The project's configured places stay protected when a run points
// elsewhere: with --data and --cache-dir overridden, an --out onto the
// configured data root, the default cache or a model's extract folder
// outside the data root is still refused. A --cache-dir onto the project's
// definitions or data, or onto a folder of someone else's files, is refused
// too, before anything is written.
#[test]
fn overrides_do_not_lift_the_protection_of_the_project() {
    let project = tempfile::tempdir().unwrap();
    let p = project.path();
    copy_project(p);
    // crm/opportunity lives outside the data root.
    let outside = tempfile::tempdir().unwrap();
    let crm = std::fs::read_to_string(p.join("models/crm.yaml")).unwrap();
    let elsewhere_path = outside.path().join("opportunity");
    assert!(
        crm.contains("path: crm/opportunity\n"),
        "the model names its path"
    );
    std::fs::write(
        p.join("models/crm.yaml"),
        crm.replace(
            "path: crm/opportunity\n",
            &format!("path: {}\n", elsewhere_path.display()),
        ),
    )
    .unwrap();
    std::fs::create_dir_all(p.join("sample_data/crm")).unwrap();
    std::fs::write(p.join("sample_data/crm/keep.txt"), b"mine").unwrap();
    std::fs::create_dir_all(p.join(".canon-cache")).unwrap();
    let data = fixture();
    std::fs::create_dir_all(&elsewhere_path).unwrap();
    std::fs::copy(
        data.path().join("crm/opportunity/part-00000.parquet"),
        elsewhere_path.join("part-00000.parquet"),
    )
    .unwrap();
    let before = contents(p);
    let before_outside = contents(outside.path());
    let other_cache = tempfile::tempdir().unwrap();
    let d = data.path().to_str().unwrap();
    let c = other_cache.path().to_str().unwrap();
    for out in [
        p.join("sample_data/crm/new.csv"),
        p.join(".canon-cache/files.json"),
        elsewhere_path.join("part-00000.parquet"),
    ] {
        let o = out.to_str().unwrap();
        let r = canon(
            p,
            &[
                "query",
                "bookings",
                "--period",
                "FY2026-Q1",
                "--data",
                d,
                "--cache-dir",
                c,
                "--format",
                "csv",
                "--out",
                o,
            ],
        );
        assert_eq!(r.status.code(), Some(2), "{o}: {}", stderr(&r));
        assert!(stderr(&r).contains("refused"), "{}", stderr(&r));
    }
    let users = tempfile::tempdir().unwrap();
    std::fs::write(users.path().join("files.json"), b"my notes").unwrap();
    for cache in [
        p.join("models"),
        p.join("sample_data"),
        users.path().to_path_buf(),
    ] {
        let r = canon_with_env(
            p,
            &[
                "query",
                "bookings",
                "--period",
                "FY2026-Q1",
                "--data",
                d,
                "--cache-dir",
                cache.to_str().unwrap(),
            ],
            &[("CANON_NO_CACHE", "")],
        );
        assert_eq!(r.status.code(), Some(2), "{cache:?}: {}", stderr(&r));
        assert!(stderr(&r).contains("refused"), "{}", stderr(&r));
    }
    assert_eq!(
        std::fs::read(users.path().join("files.json")).unwrap(),
        b"my notes"
    );
    assert_eq!(contents(p), before);
    assert_eq!(contents(outside.path()), before_outside);
}

// A period the data has not passed is given as a number to date, marked.
// The fixture's tables were all last synced at 2026-01-02T06:00:00Z, which
// is 2026-01-01 22:00 in Los Angeles (UTC-8 in January), and canon.yaml's
// clock is 08:00Z: the data reaches 2026-01-01T22:00:00-08:00. FY2026-Q4
// ([2025-11-01, 2026-02-01)) ends after that, so its bookings, 0.00 (the
// fixture's last deal closes 2025-06-30), are bookings so far, not the
// quarter's; FY2026-Q2 ([2025-05-01, 2025-08-01)) is over: D13's 999.00.
#[test]
fn a_period_the_data_has_not_passed_is_published_as_a_number_to_date() {
    let data = fixture();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("published");
    let periods = ["--period", "FY2026-Q2", "--period", "FY2026-Q4"];
    let o = publish_only(&repo(), data.path(), &out, "bookings", &periods);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("; 1 of them to date: their period runs past the data"),
        "{}",
        stdout(&o)
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let (q2, q4) = (&manifest["metrics"][0], &manifest["metrics"][1]);
    assert_eq!(
        (q2["period"].as_str(), q2["value"].as_str()),
        (Some("FY2026-Q2"), Some("999.00"))
    );
    assert!(
        q2["complete"] == true && q2.get("data_through").is_none(),
        "{q2}"
    );
    assert_eq!(
        (q4["period"].as_str(), q4["value"].as_str()),
        (Some("FY2026-Q4"), Some("0.00"))
    );
    assert_eq!(q4["status"], "published");
    assert_eq!(q4["complete"], false);
    assert_eq!(q4["data_through"], "2026-01-01T22:00:00-08:00");
    let csv = std::fs::read_to_string(out.join("metrics/bookings.csv")).unwrap();
    assert_eq!(
        csv,
        "metric,period,grain,period_start,period_end,value,unit,complete,status,reason\n\
         bookings,FY2026-Q2,fiscal_quarter,2025-05-01,2025-08-01,999.000000,USD,true,published,\n\
         bookings,FY2026-Q4,fiscal_quarter,2025-11-01,2026-02-01,0.000000,USD,false,published,\n"
    );
    // The exclusions of a number to date are to date too.
    let x = read_parquet(&out.join("exclusions.parquet"));
    let per = x.column_by_name("period").unwrap().as_string::<i32>();
    let complete = x.column_by_name("complete").unwrap().as_boolean();
    assert!(x.num_rows() > 0);
    for i in 0..x.num_rows() {
        assert_eq!(
            complete.value(i),
            per.value(i) == "FY2026-Q2",
            "{}",
            per.value(i)
        );
    }
    let batch = read_parquet(&out.join("metrics/bookings.parquet"));
    let complete = batch.column_by_name("complete").unwrap().as_boolean();
    assert_eq!(
        (0..batch.num_rows())
            .map(|i| complete.value(i))
            .collect::<Vec<_>>(),
        [true, false]
    );
    // The history row and `canon history` say so.
    let history = canon(
        &repo(),
        &[
            "history",
            "bookings",
            "--period",
            "FY2026-Q4",
            "--publication",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(history.status.code(), Some(0), "{}", stderr(&history));
    assert!(
        stdout(&history).contains(
            "to date: the data reached 2026-01-01T22:00:00-08:00, before the period ended"
        ),
        "{}",
        stdout(&history)
    );
    // And the metric's page in the catalog site.
    let site = out_dir.path().join("site");
    let o = canon(
        &repo(),
        &[
            "docs",
            "--out",
            site.to_str().unwrap(),
            "--data",
            data.path().to_str().unwrap(),
            "--publication",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let page = std::fs::read_to_string(site.join("metrics/bookings.html")).unwrap();
    assert!(
        page.contains("<tr><td>FY2026-Q4 <small>(to date: the data reached 2026-01-01T22:00:00-08:00)</small></td><td class=\"num\">0.00</td></tr>"),
        "{page}"
    );
    assert!(
        page.contains("<tr><td>FY2026-Q2</td><td class=\"num\">999.00</td></tr>"),
        "{page}"
    );
    // The chart's bar too.
    assert!(
        page.contains("fill=\"#93c5fd\"><title>FY2026-Q4 (to date): 0.00</title>"),
        "{page}"
    );
    assert!(
        page.contains("fill=\"#2563eb\"><title>FY2026-Q2: 999.00</title>"),
        "{page}"
    );
}

// The same judgement in a query: the headline of FY2026 by fiscal quarter
// runs past the data, and so does its last row only (Q1 3694.46, Q2 999.00,
// Q3 and Q4 0.00: the fixture's deals close in 2025-02..2025-06).
#[test]
fn a_query_marks_the_rows_the_data_has_not_passed() {
    let data = fixture();
    let q = query_json(
        &repo(),
        data.path(),
        &[
            "bookings",
            "--period",
            "FY2026",
            "--grain",
            "fiscal_quarter",
        ],
    );
    assert_eq!(q["value"], "4693.46");
    assert_eq!(q["complete"], false);
    assert_eq!(q["data_through"], "2026-01-01T22:00:00-08:00");
    let rows: Vec<(String, String, Option<bool>)> = q["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["period"].as_str().unwrap().to_string(),
                r["value"].as_str().unwrap().to_string(),
                r.get("complete").and_then(|c| c.as_bool()),
            )
        })
        .collect();
    let row = |p: &str, v: &str, c: Option<bool>| (p.to_string(), v.to_string(), c);
    assert_eq!(
        rows,
        [
            row("FY2026-Q1", "3694.46", None),
            row("FY2026-Q2", "999.00", None),
            row("FY2026-Q3", "0.00", None),
            row("FY2026-Q4", "0.00", Some(false)),
        ]
    );
    // A closed period says nothing of the kind.
    let q1 = query_json(&repo(), data.path(), &["bookings", "--period", "FY2026-Q1"]);
    assert!(
        q1.get("complete").is_none() && q1.get("data_through").is_none(),
        "{q1}"
    );
    // The table says it under the number, and marks the row.
    let o = canon(
        &repo(),
        &[
            "query",
            "bookings",
            "--period",
            "FY2026",
            "--grain",
            "fiscal_quarter",
            "--data",
            data.path().to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("\n  4,693.46 USD\n  to date: the data reaches 2026-01-01 22:00 (UTC-08:00), before FY2026 is over (its last day 2026-01-31); not the period's final number\n"),
        "{text}"
    );
    assert!(text.contains("  FY2026-Q4      0.00  to date\n"), "{text}");
}

// A bridge published for a quarter the data has not passed carries the mark
// in its own file, as a metric's does: on the sample (finance last synced
// 2026-01-01 18:49 in Los Angeles), FY2026-Q3's bridge rows are complete
// and FY2026-Q4's are not. Its first line is bookings B, its last
// recognized revenue R: Q4 to date B 8,902,454.89 and R 5,617,804.16, the
// governed numbers of `bookings` and `recognized_revenue` for FY2026-Q4 on
// the sample (recomputed independently in the finance audit).
#[test]
fn a_bridge_of_a_period_the_data_has_not_passed_is_marked_in_its_file() {
    let data = repo().join("sample_data");
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("published");
    let periods = ["--period", "FY2026-Q3", "--period", "FY2026-Q4"];
    let o = publish_only(&repo(), &data, &out, "bookings_to_revenue", &periods);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let read = |period: &str| -> Vec<(String, i128, bool)> {
        let batch = read_parquet(&out.join(format!(
            "reconciliation/bookings_to_revenue_{period}_bridge.parquet"
        )));
        let lines = batch.column_by_name("line").unwrap().as_string::<i32>();
        let values = batch
            .column_by_name("value")
            .unwrap()
            .as_primitive::<Decimal128Type>();
        let complete = batch.column_by_name("complete").unwrap().as_boolean();
        (0..batch.num_rows())
            .map(|i| {
                (
                    lines.value(i).to_string(),
                    values.value(i),
                    complete.value(i),
                )
            })
            .collect()
    };
    let q3 = read("FY2026-Q3");
    assert!(q3.iter().all(|(_, _, complete)| *complete), "{q3:?}");
    let q4 = read("FY2026-Q4");
    assert!(q4.iter().all(|(_, _, complete)| !*complete), "{q4:?}");
    assert_eq!(q4.first().map(|(_, v, _)| *v), Some(890245489));
    assert_eq!(q4.last().map(|(_, v, _)| *v), Some(561780416));
    // The deals and lines behind each bridge carry the same mark.
    let detail = |period: &str| -> Vec<bool> {
        let batch = read_parquet(&out.join(format!(
            "reconciliation/bookings_to_revenue_{period}_detail.parquet"
        )));
        let complete = batch.column_by_name("complete").unwrap().as_boolean();
        let periods = batch.column_by_name("period").unwrap().as_string::<i32>();
        assert!((0..batch.num_rows()).all(|i| periods.value(i) == period));
        // A deal's close date is a date (it was text), within the period;
        // a revenue line's row has none.
        let closed = batch
            .column_by_name("close_date")
            .unwrap()
            .as_primitive::<datafusion::arrow::datatypes::Date32Type>();
        let records = batch.column_by_name("record").unwrap().as_string::<i32>();
        let (from, to) = match period {
            "FY2026-Q3" => ("2025-08-01", "2025-11-01"),
            _ => ("2025-11-01", "2026-02-01"),
        };
        for i in 0..batch.num_rows() {
            let day = closed.value_as_date(i).filter(|_| closed.is_valid(i));
            match records.value(i) {
                "deal" => {
                    let day = day.unwrap().to_string();
                    assert!(from <= day.as_str() && day.as_str() < to, "{day}");
                }
                _ => assert_eq!(day, None),
            }
        }
        (0..batch.num_rows()).map(|i| complete.value(i)).collect()
    };
    let q3 = detail("FY2026-Q3");
    assert!(!q3.is_empty() && q3.iter().all(|c| *c), "{q3:?}");
    let q4 = detail("FY2026-Q4");
    assert!(!q4.is_empty() && q4.iter().all(|c| !*c), "{q4:?}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let q4 = &manifest["reconciliations"][1];
    assert_eq!(
        (q4["period"].as_str(), q4["complete"].as_bool()),
        (Some("FY2026-Q4"), Some(false))
    );
    assert_eq!(q4["data_through"], "2026-01-01T18:49:51-08:00");
    assert_eq!(manifest["reconciliations"][0]["complete"], true);
}

// A BI tool reads every metric's file at once, as the README shows
// (`read_parquet('metrics/*.parquet')`): every number reads exactly, and a
// period without one has its row saying why. On the sample FY2026-Q3:
// bookings 7,777,526.36; win_rate 0.366197 for FY2026-Q1 = 182 won / 497
// closed (0.3661971…) and 0.366300 for FY2026-Q3 = 200 / 546 (0.3663003…);
// with each metric's own scale in its file, DuckDB took
// the first file's (bookings', 2) and read win_rate as 0.37. mql_to_sql_rate
// FY2026-Q3 is pending (its window closes 2026-01-29): a null value, status
// `pending`, the reason saying so, `complete` null (neither final nor to
// date). In 2020-01 nothing closed: bookings 0.00, and the two ratios are
// published without a number, saying why. `grain` tells the month from the
// fiscal quarters beside it (a sum over every row would count a month twice
// were it inside one of them).
#[test]
fn every_metric_file_read_at_once_reads_exact_and_every_period_has_its_row() {
    let python = duckdb_python();
    let data = repo().join("sample_data");
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("published");
    let o = canon(
        &repo(),
        &[
            "publish",
            "--out",
            out.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--only",
            "bookings",
            "--only",
            "win_rate",
            "--only",
            "mql_to_sql_rate",
            "--period",
            "FY2026-Q1",
            "--period",
            "FY2026-Q3",
            "--period",
            "2020-01",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let script = r#"
import duckdb, json, os, sys
g = os.path.join(sys.argv[1], "metrics/*.parquet")
rows = duckdb.sql(f"SELECT metric, period, grain, CAST(value AS VARCHAR), status, complete, left(reason, 40) FROM read_parquet('{g}') ORDER BY metric, period").fetchall()
x = os.path.join(sys.argv[1], "exclusions.parquet")
parts = duckdb.sql(f"SELECT DISTINCT metric, part FROM '{x}' ORDER BY ALL").fetchall()
grains = duckdb.sql(f"SELECT DISTINCT period, grain FROM '{x}' ORDER BY ALL").fetchall()
l = os.path.join(sys.argv[1], "lineage.jsonl")
lineage = duckdb.sql(f"SELECT metric, period, part, [s.system || '/' || s.table FOR s IN lineage.sources] FROM read_json_auto('{l}') ORDER BY ALL").fetchall()
m = os.path.join(sys.argv[1], "manifest.json")
keys = duckdb.sql(f"SELECT DISTINCT unnest(json_keys(e)) AS k FROM (SELECT unnest(metrics) AS e FROM read_json('{m}', columns = {{metrics: 'JSON[]'}})) ORDER BY k").fetchall()
print(json.dumps([rows, parts, lineage, keys, grains]))
"#;
    let o = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let (rows, parts, lineage, keys, grains) = (&rows[0], &rows[1], &rows[2], &rows[3], &rows[4]);
    // The exclusions say each period's kind too (a sum over them counted a
    // month inside a published quarter twice).
    assert_eq!(
        grains,
        &serde_json::json!([
            ["2020-01", "month"],
            ["FY2026-Q1", "fiscal_quarter"],
            ["FY2026-Q3", "fiscal_quarter"]
        ])
    );
    // Each published result's lineage is a line of lineage.jsonl (the
    // pending one has none), read as any JSON lines; the manifest's entries
    // no longer carry it (with the plans' text they grew the manifest
    // ~265 KB a period, past what a reader takes in one JSON object).
    let (crm, marketing) = (
        serde_json::json!([
            "crm/account",
            "crm/dated_conversion_rate",
            "crm/opportunity"
        ]),
        serde_json::json!([
            "marketing/contact",
            "marketing/contact_merge_audit",
            "marketing/lifecycle_stage_history"
        ]),
    );
    let won = serde_json::json!(["crm/account", "crm/opportunity"]);
    assert_eq!(
        lineage,
        &serde_json::json!([
            ["bookings", "2020-01", null, crm],
            ["bookings", "FY2026-Q1", null, crm],
            ["bookings", "FY2026-Q3", null, crm],
            ["mql_to_sql_rate", "2020-01", null, marketing],
            ["mql_to_sql_rate", "FY2026-Q1", null, marketing],
            ["win_rate", "2020-01", null, won],
            ["win_rate", "FY2026-Q1", null, won],
            ["win_rate", "FY2026-Q3", null, won],
        ])
    );
    assert!(
        keys.as_array().unwrap().iter().all(|k| k[0] != "lineage"),
        "{keys}"
    );
    assert!(
        keys.as_array()
            .unwrap()
            .iter()
            .any(|k| k[0] == "fingerprint")
    );
    // A part's exclusions are under the metric, the part named beside it
    // (`win_rate (won_deals)` was the metric's name: `WHERE metric =
    // 'win_rate'` found none of them).
    assert_eq!(
        parts,
        &serde_json::json!([
            ["bookings", null],
            ["mql_to_sql_rate", "mqls"],
            ["mql_to_sql_rate", "mqls_converted_90d"],
            ["win_rate", "closed_deals"],
            ["win_rate", "won_deals"],
        ])
    );
    assert_eq!(
        rows,
        &serde_json::json!([
            [
                "bookings",
                "2020-01",
                "month",
                "0.000000",
                "published",
                true,
                null
            ],
            [
                "bookings",
                "FY2026-Q1",
                "fiscal_quarter",
                "8783667.280000",
                "published",
                true,
                null
            ],
            [
                "bookings",
                "FY2026-Q3",
                "fiscal_quarter",
                "7777526.360000",
                "published",
                true,
                null
            ],
            [
                "mql_to_sql_rate",
                "2020-01",
                "month",
                null,
                "published",
                true,
                "no value: the denominator is zero for th"
            ],
            [
                "mql_to_sql_rate",
                "FY2026-Q1",
                "fiscal_quarter",
                "0.434949",
                "published",
                true,
                null
            ],
            [
                "mql_to_sql_rate",
                "FY2026-Q3",
                "fiscal_quarter",
                null,
                "pending",
                null,
                "`mql_to_sql_rate` has no final value for"
            ],
            [
                "win_rate",
                "2020-01",
                "month",
                null,
                "published",
                true,
                "no value: the denominator is zero for th"
            ],
            [
                "win_rate",
                "FY2026-Q1",
                "fiscal_quarter",
                "0.366197",
                "published",
                true,
                null
            ],
            [
                "win_rate",
                "FY2026-Q3",
                "fiscal_quarter",
                "0.366300",
                "published",
                true,
                null
            ],
        ])
    );
}

// A publication is read from elsewhere: its lineage names each file by an
// absolute path, though publish ran inside the project with the data root
// `sample_data` (relative: it named `./sample_data/crm/…`).
#[test]
fn a_publication_names_its_files_by_absolute_paths() {
    let project = tempfile::tempdir().unwrap();
    copy_project(project.path());
    copy_tree(
        &repo().join("sample_data"),
        &project.path().join("sample_data"),
    );
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_canon"))
        .current_dir(project.path())
        .args([
            "publish",
            "--out",
            "pub",
            "--only",
            "bookings",
            "--period",
            "FY2026-Q1",
        ])
        .env_remove("CANON_DATA")
        .env_remove("CANON_PROJECT")
        .env("CANON_NO_CACHE", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(project.path().join("pub/lineage.jsonl")).unwrap();
    let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let mut paths = Vec::new();
    for source in line["lineage"]["sources"].as_array().unwrap() {
        for file in source["files"].as_array().unwrap() {
            paths.push(std::path::PathBuf::from(file["path"].as_str().unwrap()));
        }
    }
    // crm/account, crm/dated_conversion_rate, crm/opportunity: one file each.
    assert_eq!(paths.len(), 3, "{paths:?}");
    for path in &paths {
        assert!(path.is_absolute() && path.is_file(), "{}", path.display());
        assert!(
            path.starts_with(project.path().join("sample_data")),
            "{}",
            path.display()
        );
    }
}

// A publication served to a group (a setgid folder of that group) stays the
// group's: staged beside the folder, every file inside took the publishing
// process's group, and the group lost read access at the first publish.
// Needs the right to give files a group this process is not in (root, as
// CI runs); elsewhere there is nothing to check.
#[cfg(unix)]
#[test]
fn a_publication_keeps_the_group_of_its_folder() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let data = fixture();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("published");
    std::fs::create_dir(&out).unwrap();
    let group = 65534; // nogroup
    if std::os::unix::fs::chown(&out, None, Some(group)).is_err() {
        eprintln!("skipped: cannot give a folder another group here");
        return;
    }
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o2750)).unwrap();
    // The second run under a strict umask (077 wrote files 600 and
    // folders 700: the group kept them and could read none).
    for strict in [false, true] {
        let args = [
            "publish",
            "--out",
            out.to_str().unwrap(),
            "--data",
            data.path().to_str().unwrap(),
            "--only",
            "bookings",
            "--period",
            "FY2026-Q1",
        ];
        let mut c = command(&repo(), &args);
        c.env("CANON_NO_CACHE", "1");
        if strict {
            use std::os::unix::process::CommandExt;
            // SAFETY: umask is async-signal-safe; nothing else runs
            // between fork and exec.
            unsafe {
                c.pre_exec(|| {
                    libc::umask(0o077);
                    Ok(())
                });
            }
        }
        let o = c.output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let mut seen = 0;
        let mut stack = vec![out.clone()];
        while let Some(d) = stack.pop() {
            let meta = std::fs::symlink_metadata(&d).unwrap();
            assert_eq!(meta.gid(), group, "{}", d.display());
            // The group reads every file and enters every folder.
            let needs = if meta.is_dir() { 0o050 } else { 0o040 };
            assert_eq!(meta.mode() & needs, needs, "{}", d.display());
            seen += 1;
            if meta.is_dir() {
                stack.extend(std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().path()));
            }
        }
        // The folder, its marker, manifest, history, exclusions and the
        // metric's two files at least.
        assert!(seen >= 7, "{seen}");
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o2750);
    }
}
