//! The result cache through the real binary: a repeated request is served
//! without recomputing, and any change of data or definitions is not.
//!
//! Fixture answer (worked in flow_metrics): bookings FY2026-Q1 = 3694.46.

use std::path::Path;
use std::process::Output;
use std::sync::Arc;

use crate::common::*;
use datafusion::arrow::array::{Array, AsArray, Decimal128Array, RecordBatch};
use datafusion::arrow::datatypes::Decimal128Type;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// `canon query bookings --period FY2026-Q1` over `project` with the cache
/// in `cache`, as the process left it.
fn run_bookings(project: &Path, data: &Path, cache: &Path, extra: &[&str]) -> Output {
    run_bookings_by(
        Path::new(env!("CARGO_BIN_EXE_canon")),
        project,
        data,
        cache,
        extra,
    )
}

/// [`run_bookings`] by another canon binary.
fn run_bookings_by(
    binary: &Path,
    project: &Path,
    data: &Path,
    cache: &Path,
    extra: &[&str],
) -> Output {
    let mut args = vec![
        "query",
        "bookings",
        "--period",
        "FY2026-Q1",
        "--data",
        data.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    canon_binary_cached(binary, project, cache, &args)
}

/// The same over `project`, as JSON, failing loudly on error.
fn bookings_in(project: &Path, data: &Path, cache: &Path, extra: &[&str]) -> serde_json::Value {
    json_of(run_bookings(project, data, cache, &with_json(extra)))
}

fn with_json<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--format", "json"];
    args.extend_from_slice(extra);
    args
}

fn json_of(o: Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The same over the repository's project.
fn bookings(data: &Path, cache: &Path, extra: &[&str]) -> serde_json::Value {
    bookings_in(&repo(), data, cache, extra)
}

/// The result without what differs between two runs of the same answer.
fn evidence(mut r: serde_json::Value) -> serde_json::Value {
    let o = r.as_object_mut().unwrap();
    o.remove("cache");
    o.remove("elapsed_ms");
    r
}

/// Each volume check's (table, rows), its detail checked to be `N{suffix}`
/// and then blanked (for comparing the rest of the evidence).
fn volume_rows(r: &mut serde_json::Value, suffix: &str) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for c in r["quality"].as_array_mut().unwrap() {
        if c["check"] != "volume" {
            continue;
        }
        let detail = c["detail"].as_str().unwrap().to_string();
        let rows = detail
            .strip_suffix(suffix)
            .unwrap_or_else(|| panic!("`{detail}` does not end with `{suffix}`"));
        out.push((
            c["table"].as_str().unwrap().to_string(),
            rows.parse().unwrap(),
        ));
        c["detail"] = serde_json::Value::Null;
    }
    assert!(!out.is_empty());
    out
}

/// Rewrites the opportunity extract with deal D1's amount (row 0) set to
/// `amount` in cents.
fn set_d1_amount(data: &Path, cents: i128) {
    let path = data.join("crm/opportunity/part-00000.parquet");
    let batch: RecordBatch =
        ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path).unwrap())
            .unwrap()
            .build()
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
    let i = batch.schema().index_of("amount").unwrap();
    let old = batch.column(i).as_primitive::<Decimal128Type>();
    let new: Decimal128Array = (0..old.len())
        .map(|r| match r {
            0 => Some(cents),
            _ => old.is_valid(r).then(|| old.value(r)),
        })
        .collect::<Decimal128Array>()
        .with_data_type(old.data_type().clone());
    let mut columns = batch.columns().to_vec();
    columns[i] = Arc::new(new);
    let batch = RecordBatch::try_new(batch.schema(), columns).unwrap();
    let mut w =
        ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

#[test]
fn a_repeated_query_is_served_from_the_cache_with_the_same_evidence() {
    let data = fixture();
    let cache = tempfile::tempdir().unwrap();
    let first = bookings(data.path(), cache.path(), &[]);
    assert_eq!(first["cache"]["status"], "miss");
    assert_eq!(first["value"], "3694.46");
    let second = bookings(data.path(), cache.path(), &[]);
    assert_eq!(second["cache"]["status"], "hit");
    assert_eq!(
        second["cache"]["computed_ms"], first["elapsed_ms"],
        "a hit reports how long the computation it serves took"
    );
    // Value, exclusions, tallies, lineage, quality, fingerprint: all the
    // same, but for the volume checks, judged at every run: the first run
    // sees the fixture's counts for the first time, the second as last seen
    // (15 opportunities, and so on).
    let (mut first, mut second) = (first, second);
    let n_first = volume_rows(
        &mut first,
        " rows, first seen under this data root: nothing to compare with",
    );
    let n_second = volume_rows(&mut second, " rows, as last seen");
    assert_eq!(n_first, n_second);
    assert!(
        n_first.contains(&("crm/opportunity".to_string(), 15)),
        "{n_first:?}"
    );
    assert_eq!(evidence(second), evidence(first));
    // The table output says so.
    let o = run_bookings(&repo(), data.path(), cache.path(), &[]);
    assert!(stdout(&o).contains("served from cache"), "{}", stdout(&o));
}

#[test]
fn no_cache_neither_reads_nor_writes_the_cache() {
    let data = fixture();
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().join("c");
    let off = bookings(data.path(), &dir, &["--no-cache"]);
    assert_eq!(off["cache"]["status"], "off");
    assert!(!dir.exists(), "--no-cache wrote {}", dir.display());
    assert_eq!(bookings(data.path(), &dir, &[])["cache"]["status"], "miss");
    let off = bookings(data.path(), &dir, &["--no-cache"]);
    assert_eq!(off["cache"]["status"], "off");
}

// A result is served only to the build that computed it: a canon rebuilt
// from other code under the same version number (here, a copy of the
// binary: another file, another build) computes again, then serves itself.
#[test]
fn another_build_of_canon_misses() {
    let data = fixture();
    let cache = tempfile::tempdir().unwrap();
    assert_eq!(
        bookings(data.path(), cache.path(), &[])["cache"]["status"],
        "miss"
    );
    assert_eq!(
        bookings(data.path(), cache.path(), &[])["cache"]["status"],
        "hit"
    );
    let bin = tempfile::tempdir().unwrap();
    let other = bin.path().join("canon");
    std::fs::copy(env!("CARGO_BIN_EXE_canon"), &other).unwrap();
    let run = || {
        json_of(run_bookings_by(
            &other,
            &repo(),
            data.path(),
            cache.path(),
            &with_json(&[]),
        ))
    };
    let first = run();
    assert_eq!(first["cache"]["status"], "miss");
    assert_eq!(first["value"], "3694.46");
    assert_eq!(run()["cache"]["status"], "hit");
}

// D1 is USD 1000.00 in the quarter; at 1500.00 bookings grows by 500.00:
// 3694.46 + 500.00 = 4194.46.
#[test]
fn a_rewritten_input_file_misses_and_the_new_answer_is_cached() {
    let data = fixture();
    let cache = tempfile::tempdir().unwrap();
    let before = bookings(data.path(), cache.path(), &[]);
    assert_eq!(before["value"], "3694.46");
    set_d1_amount(data.path(), 150000);
    let after = bookings(data.path(), cache.path(), &[]);
    assert_eq!(after["cache"]["status"], "miss");
    assert_eq!(after["value"], "4194.46");
    assert_ne!(after["fingerprint"], before["fingerprint"]);
    let again = bookings(data.path(), cache.path(), &[]);
    assert_eq!(again["cache"]["status"], "hit");
    assert_eq!(again["value"], "4194.46");
}

// The fingerprint is of content: a file written again with the same bytes
// (new mtime, ctime) is hashed again and still serves; a file added to a
// table's folder is new data and misses (here a copy of the deals under
// another name doubles them: 2 × 3694.46 = 7388.92).
#[test]
fn same_bytes_still_serve_and_an_added_file_misses() {
    let data = fixture();
    let cache = tempfile::tempdir().unwrap();
    let first = bookings(data.path(), cache.path(), &[]);
    std::thread::sleep(std::time::Duration::from_millis(20));
    write_opportunities(data.path(), "crm/opportunity", "amount");
    let rewritten = bookings(data.path(), cache.path(), &[]);
    assert_eq!(rewritten["cache"]["status"], "hit");
    assert_eq!(rewritten["fingerprint"], first["fingerprint"]);
    let dir = data.path().join("crm/opportunity");
    std::fs::copy(
        dir.join("part-00000.parquet"),
        dir.join("part-00001.parquet"),
    )
    .unwrap();
    // The copy repeats every deal: the uniqueness gate blocks the doubled
    // number unless it is let through by name (issue 13 item 4), which the
    // result records.
    let added = bookings(
        data.path(),
        cache.path(),
        &["--allow", "uniqueness:crm/opportunity"],
    );
    assert_eq!(added["cache"]["status"], "miss");
    assert_eq!(added["value"], "7388.92");
    assert_eq!(
        added["overrides"],
        serde_json::json!(["uniqueness:crm/opportunity"])
    );
}

#[test]
fn an_edited_definition_misses() {
    let project = tempfile::tempdir().unwrap();
    copy_project(project.path());
    let data = fixture();
    let cache = tempfile::tempdir().unwrap();
    let run = || bookings_in(project.path(), data.path(), cache.path(), &[]);
    assert_eq!(run()["cache"]["status"], "miss");
    assert_eq!(run()["cache"]["status"], "hit");
    // Internal accounts are no longer excluded: D7 Acme Internal 700.00 is
    // counted, 3694.46 + 700.00 = 4394.46.
    let path = project.path().join("metrics/sales.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let edited = text.replacen(
        "exclusions: [deleted, test_account, internal_account, missing_amount]",
        "exclusions: [deleted, test_account, missing_amount]",
        1,
    );
    assert_ne!(edited, text, "bookings lists internal_account");
    std::fs::write(&path, edited).unwrap();
    let r = run();
    assert_eq!(r["cache"]["status"], "miss");
    assert_eq!(r["value"], "4394.46");
}

// The fixture's extracts were synced at 2026-01-02T06:00:00Z. At 08:00 that
// day they are 2 h old (pass); on 2026-01-10 they are 186 h old (error after
// 48 h). The stored result is judged again at each run's clock.
#[test]
fn a_cached_result_over_stale_data_is_still_blocked() {
    let data = fixture();
    let cache = tempfile::tempdir().unwrap();
    let fresh = bookings(
        data.path(),
        cache.path(),
        &["--now", "2026-01-02T08:00:00Z"],
    );
    assert_eq!(fresh["quality_status"], "pass");
    let o = run_bookings(
        &repo(),
        data.path(),
        cache.path(),
        &["--now", "2026-01-10T00:00:00Z"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stderr(&o).contains("blocked"), "{}", stderr(&o));
    let forced = bookings(
        data.path(),
        cache.path(),
        &["--now", "2026-01-10T00:00:00Z", "--allow-stale"],
    );
    assert_eq!(forced["cache"]["status"], "hit");
    assert_eq!(forced["quality_status"], "error");
    assert_eq!(forced["overrides"][0], "allow_stale");
    assert_eq!(forced["now"], "2026-01-10T00:00:00+00:00");
    assert_eq!(forced["value"], "3694.46");
}

/// The governed results a `canon query … --format json` printed.
fn results_of(o: Output) -> Vec<canon::result::GovernedResult> {
    assert!(o.status.success(), "{}", stderr(&o));
    match serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap() {
        serde_json::Value::Array(all) => all
            .into_iter()
            .map(|r| serde_json::from_value(r).unwrap())
            .collect(),
        one => vec![serde_json::from_value(one).unwrap()],
    }
}

/// Whether a result adds up, as the cache judges a stored one.
fn adds_up(
    catalog: &canon::catalog::Catalog,
    r: &canon::result::GovernedResult,
) -> Result<(), String> {
    let (_, _, spec) = catalog.metric(&r.metric).unwrap();
    canon::result::consistency::check(r, canon::result::consistency::additive(spec))
}

// Every metric of the catalog, computed afresh on the sample company, adds
// up by the identities the cache checks a stored result against (otherwise
// the cache would never serve it). And the check is not vacuous: a headline,
// an exclusion or a period edited on its own makes it fail.
#[test]
fn every_fresh_result_adds_up_and_an_edited_one_does_not() {
    let catalog = canon::catalog::Catalog::load(&repo()).unwrap();
    let all: Vec<&str> = catalog.metrics.keys().map(String::as_str).collect();
    let mut args = vec!["query"];
    args.extend(&all);
    args.extend(["--period", "FY2026-Q1", "--format", "json"]);
    let quarter = results_of(canon(&repo(), &args));
    assert_eq!(quarter.len(), all.len());
    let mut args = vec!["query"];
    let flows_and_snapshots: Vec<&str> = all
        .iter()
        .copied()
        .filter(|m| catalog.metric(m).unwrap().2.kind != canon::spec::MetricKind::Cohort)
        .collect();
    args.extend(&flows_and_snapshots);
    // 2025's conversion window closes after the sample's extract: its
    // counts to date, computed under the override, add up all the same.
    args.extend(["--period", "2025", "--grain", "quarter", "--format", "json"]);
    args.extend(["--allow", "conversion_window:*"]);
    let by_quarter = results_of(canon(&repo(), &args));
    for r in quarter.iter().chain(&by_quarter) {
        adds_up(&catalog, r).unwrap_or_else(|e| panic!("{} {:?}: {e}", r.metric, r.request));
    }
    // bookings by quarter of 2025: four periods summing to the headline.
    let bookings = by_quarter.iter().find(|r| r.metric == "bookings").unwrap();
    assert_eq!(bookings.rows.len(), 4);
    let cent = canon::decimal::Dec::new(1, 2);
    let mut edited = bookings.clone();
    edited.value = edited.value.map(|v| v + cent);
    assert!(
        adds_up(&catalog, &edited)
            .unwrap_err()
            .contains("tally included")
    );
    let mut edited = bookings.clone();
    edited.exclusions[0].rows += 1;
    assert!(
        adds_up(&catalog, &edited)
            .unwrap_err()
            .contains("is not the universe")
    );
    let mut edited = bookings.clone();
    edited.rows[1].value = edited.rows[1].value.map(|v| v + cent);
    assert!(
        adds_up(&catalog, &edited)
            .unwrap_err()
            .contains("rows give")
    );
    // A cohort's bridge must foot: nrr's expansion moved by a cent does not.
    let nrr = quarter.iter().find(|r| r.metric == "nrr").unwrap();
    let mut edited = nrr.clone();
    let expansion = edited
        .bridge
        .iter_mut()
        .find(|l| l.line == "expansion")
        .unwrap();
    expansion.value = expansion.value + cent;
    assert!(
        adds_up(&catalog, &edited)
            .unwrap_err()
            .contains("does not foot")
    );
}

// A cache entry edited by hand (valid JSON, the value changed) is never
// served: it does not verify, is recomputed with a warning and replaced,
// and the next run is served the recomputed entry.
#[test]
fn an_edited_cache_entry_is_recomputed_not_served() {
    let data = fixture();
    let cache = tempfile::tempdir().unwrap();
    assert_eq!(bookings(data.path(), cache.path(), &[])["value"], "3694.46");
    let entries: Vec<_> = std::fs::read_dir(cache.path().join("results"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1);
    let text = std::fs::read_to_string(&entries[0]).unwrap();
    assert!(text.contains("\"value\":\"3694.46\""));
    let forged = text.replacen("\"value\":\"3694.46\"", "\"value\":\"9999.99\"", 1);
    std::fs::write(&entries[0], forged).unwrap();
    let o = run_bookings(&repo(), data.path(), cache.path(), &with_json(&[]));
    assert!(stderr(&o).contains("does not verify"), "{}", stderr(&o));
    let again = json_of(o);
    assert_eq!(again["value"], "3694.46");
    assert_eq!(again["cache"]["status"], "miss");
    let served = bookings(data.path(), cache.path(), &[]);
    assert_eq!(served["cache"]["status"], "hit");
    assert_eq!(served["value"], "3694.46");
}

/// `canon` run from the folder `cwd`, with the cache in `cache`.
fn canon_in(cwd: &Path, project: &Path, cache: &Path, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_canon"))
        .current_dir(cwd)
        .arg("--project")
        .arg(project)
        .args(args)
        .env_remove("CANON_DATA")
        .env_remove("CANON_NO_CACHE")
        .env("CANON_CACHE_DIR", cache)
        .output()
        .unwrap()
}

// A cached result's inputs are recorded by absolute path: a run from
// another folder (where a relative `./data` is another copy of the data)
// checks the files the result was computed from, and misses when they
// changed. D1 1000.00 → 1500.00: 3694.46 + 500.00 = 4194.46.
#[test]
fn a_run_from_another_folder_checks_the_same_inputs() {
    let project = tempfile::tempdir().unwrap();
    copy_project(project.path());
    let yaml = std::fs::read_to_string(project.path().join("canon.yaml")).unwrap();
    std::fs::write(
        project.path().join("canon.yaml"),
        yaml.replace("data_root: sample_data", "data_root: data"),
    )
    .unwrap();
    write_company(&project.path().join("data"));
    let elsewhere = tempfile::tempdir().unwrap();
    write_company(&elsewhere.path().join("data"));
    let cache = tempfile::tempdir().unwrap();
    let args = [
        "query",
        "bookings",
        "--period",
        "FY2026-Q1",
        "--format",
        "json",
    ];
    let first = json_of(canon_in(
        project.path(),
        Path::new("."),
        cache.path(),
        &args,
    ));
    assert_eq!(first["value"], "3694.46");
    set_d1_amount(&project.path().join("data"), 150000);
    let again = json_of(canon_in(
        elsewhere.path(),
        project.path(),
        cache.path(),
        &args,
    ));
    assert_eq!(again["cache"]["status"], "miss");
    assert_eq!(again["value"], "4194.46");
}

/// Every file path a result's lineage lists.
fn lineage_paths(r: &serde_json::Value) -> Vec<String> {
    r["lineage"]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["files"].as_array().unwrap())
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect()
}

// A served result names its files as the serving run does: computed from
// inside the project (`./sample_data/…`), then served to a run from the
// project's parent (`--project p1`), its lineage lists `p1/sample_data/…`,
// as a run computing it there would, and every path it lists exists from
// there (it listed `./sample_data/…`, which does not).
#[test]
fn a_served_result_names_its_files_from_the_serving_folder() {
    let parent = tempfile::tempdir().unwrap();
    let project = parent.path().join("p1");
    std::fs::create_dir(&project).unwrap();
    copy_project(&project);
    copy_tree(&repo().join("sample_data"), &project.join("sample_data"));
    let cache = tempfile::tempdir().unwrap();
    let args = [
        "query",
        "bookings",
        "--period",
        "FY2026-Q3",
        "--format",
        "json",
    ];
    let inside = json_of(canon_in(&project, Path::new("."), cache.path(), &args));
    assert_eq!(inside["cache"]["status"], "miss");
    assert!(lineage_paths(&inside)[0].starts_with("./sample_data/"));
    let served = json_of(canon_in(
        parent.path(),
        Path::new("p1"),
        cache.path(),
        &args,
    ));
    assert_eq!(served["cache"]["status"], "hit");
    let mut fresh_args = args.to_vec();
    fresh_args.push("--no-cache");
    let fresh = json_of(canon_in(
        parent.path(),
        Path::new("p1"),
        cache.path(),
        &fresh_args,
    ));
    let paths = lineage_paths(&served);
    // bookings reads crm account, dated_conversion_rate and opportunity.
    assert_eq!(paths.len(), 3);
    assert_eq!(paths, lineage_paths(&fresh));
    for path in &paths {
        assert!(path.starts_with("p1/sample_data/"), "{path}");
        assert!(parent.path().join(path).is_file(), "{path}");
    }
    assert_eq!(served["fingerprint"], inside["fingerprint"]);
}

// What the engine reads is exactly what canon lists, checks, hashes and
// reports: hidden and `_`-prefixed files (a file called just `.parquet`, a
// writer's temporary, a `_SUCCESS`-style marker) are not part of a table
// for either. A copy of the deals under those names changes nothing.
#[test]
fn hidden_files_are_neither_read_nor_reported() {
    let data = fixture();
    let cache = tempfile::tempdir().unwrap();
    let first = bookings(data.path(), cache.path(), &[]);
    let table = data.path().join("crm/opportunity");
    for name in [".parquet", "_part-1.parquet", ".part-2.parquet"] {
        std::fs::copy(table.join("part-00000.parquet"), table.join(name)).unwrap();
    }
    let hidden = table.join(".staging");
    std::fs::create_dir(&hidden).unwrap();
    std::fs::copy(
        table.join("part-00000.parquet"),
        hidden.join("part-3.parquet"),
    )
    .unwrap();
    let again = bookings(data.path(), cache.path(), &["--no-cache"]);
    assert_eq!(again["value"], "3694.46");
    let files = |r: &serde_json::Value| -> Vec<String> {
        let s = r["lineage"]["sources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["table"] == "opportunity")
            .unwrap();
        s["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(files(&again), files(&first));
    assert_eq!(files(&again).len(), 1);
}

// The file-hash index is sealed like the entries: an index edited so that a
// rewritten input looks unchanged (its new stamp beside its old hash) does
// not verify, every input is hashed again, and the new answer is computed.
// D1 1000.00 → 1500.00: 4194.46, not the cached 3694.46.
#[cfg(unix)]
#[test]
fn an_edited_hash_index_is_not_trusted() {
    use std::os::unix::fs::MetadataExt;
    let data = fixture();
    let cache = tempfile::tempdir().unwrap();
    assert_eq!(bookings(data.path(), cache.path(), &[])["value"], "3694.46");
    let file = data.path().join("crm/opportunity/part-00000.parquet");
    let key = std::path::absolute(&file).unwrap().display().to_string();
    set_d1_amount(data.path(), 150000);
    let meta = std::fs::metadata(&file).unwrap();
    let index_path = cache.path().join("files.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    index["files"][&key]["stamp"] = serde_json::json!({
        "bytes": meta.len(),
        "modified_ns": i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        "changed_ns": i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        "inode": meta.ino(),
    });
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    let o = run_bookings(&repo(), data.path(), cache.path(), &with_json(&[]));
    assert!(stderr(&o).contains("does not verify"), "{}", stderr(&o));
    let r = json_of(o);
    assert_eq!(r["cache"]["status"], "miss");
    assert_eq!(r["value"], "4194.46");
}
