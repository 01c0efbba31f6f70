//! The volume gate through the real binary: a table's row count against the
//! last count canon saw for it under the same data root. Each test runs on a
//! copy of the project, so its `.canon-state/` is its own.

use std::path::Path;

use crate::common::*;

fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_project(dir.path());
    dir
}

/// Rewrites `<root>/<table>/part-00000.parquet` with its first `n` rows: an
/// extract that lost the rest.
fn keep_rows(root: &Path, table: &str, n: usize) {
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let path = root.join(table).join("part-00000.parquet");
    let file = std::fs::File::open(&path).unwrap();
    let batch = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert!(
        batch.num_rows() >= n,
        "{table} has {} rows",
        batch.num_rows()
    );
    let kept = batch.slice(0, n);
    let out = std::fs::File::create(&path).unwrap();
    let mut w = ArrowWriter::try_new(out, kept.schema(), None).unwrap();
    w.write(&kept).unwrap();
    w.close().unwrap();
}

fn bookings(project: &Path, data: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "query",
        "bookings",
        "--period",
        "FY2026-Q1",
        "--data",
        data.to_str().unwrap(),
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    canon(project, &args)
}

fn json(out: &std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The result's volume check of `table`.
fn volume(r: &serde_json::Value, table: &str) -> serde_json::Value {
    r["quality"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "volume" && c["table"] == table)
        .unwrap_or_else(|| panic!("no volume check of {table} in {}", r["quality"]))
        .clone()
}

fn publish(project: &Path, data: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    publish_only(
        project,
        data,
        out,
        "bookings",
        &[&["--period", "FY2026-Q1"], extra].concat(),
    )
}

// bookings FY2026-Q1 over the fixture's 15 deals is 3694.46 (tests/trust/quality.rs).
// Cut to its first 7 deals D1..D7: D1 1000.00 USD + D2 1000.00 EUR at 0.8 =
// 1250.00 + D3 1000.00 EUR at 0.9 = 1111.11 + D4 100.01 GBP at 0.75 =
// 133.3466… → 133.35 (D5 test account, D6 "Contest Ltd", D7 internal are
// excluded) = 3494.46: the 200.00 of D9 is silently gone. The drop is
// 8/15 = 53.3 % > 20 %: every query warns (in quality and on stderr), the
// count is not remembered, publish refuses until `--allow volume:…`, which
// then makes 7 the count to compare with.
#[test]
fn a_halved_table_warns_in_queries_and_blocks_publish_until_allowed() {
    let p = project();
    let data = fixture();
    let first = json(&bookings(p.path(), data.path(), &[]));
    assert_eq!(first["value"], "3694.46");
    assert_eq!(first["quality_status"], "pass");
    let seen = volume(&first, "crm/opportunity");
    assert_eq!(seen["status"], "pass");
    assert!(
        seen["detail"]
            .as_str()
            .unwrap()
            .starts_with("15 rows, first seen under this data root: nothing to compare with"),
        "{seen}"
    );
    // A second run compares with it.
    let again = json(&bookings(p.path(), data.path(), &[]));
    assert_eq!(
        volume(&again, "crm/opportunity")["detail"],
        "15 rows, as last seen"
    );

    keep_rows(data.path(), "crm/opportunity", 7);
    for _ in 0..2 {
        let out = bookings(p.path(), data.path(), &[]);
        let r = json(&out);
        assert_eq!(r["value"], "3494.46");
        assert_eq!(r["quality_status"], "warn");
        let v = volume(&r, "crm/opportunity");
        assert_eq!(v["status"], "warn");
        assert!(
            v["detail"]
                .as_str()
                .unwrap()
                .starts_with("7 rows, 53.3 % fewer than the 15 canon saw at "),
            "{v}"
        );
        let err = stderr(&out);
        assert!(
            err.contains("volume: crm/opportunity has 7 rows, 53.3 % fewer than the 15"),
            "{err}"
        );
        // The other tables did not change.
        assert_eq!(volume(&r, "crm/account")["status"], "pass");
    }
    // The table form says so under the number.
    let out = canon(
        p.path(),
        &[
            "query",
            "bookings",
            "--period",
            "FY2026-Q1",
            "--data",
            data.path().to_str().unwrap(),
        ],
    );
    assert!(
        stdout(&out).contains(
            "  3,494.46 USD\n  quality warn: crm/opportunity volume (7 rows, 53.3 % fewer"
        ),
        "{}",
        stdout(&out)
    );

    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("published");
    let blocked = publish(p.path(), data.path(), &out, &[]);
    let err = stderr(&blocked);
    assert_eq!(blocked.status.code(), Some(1), "{err}");
    assert!(err.contains("publish is blocked"), "{err}");
    assert!(
        err.contains("crm/opportunity volume (7 rows, 53.3 % fewer than the 15"),
        "{err}"
    );
    assert!(err.contains("--allow volume:crm/opportunity"), "{err}");
    assert!(!out.exists(), "a blocked publish wrote {}", out.display());

    let allowed = publish(
        p.path(),
        data.path(),
        &out,
        &["--allow", "volume:crm/opportunity"],
    );
    assert!(allowed.status.success(), "{}", stderr(&allowed));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let entry = &manifest["metrics"][0];
    assert_eq!(entry["metric"], "bookings");
    assert_eq!(entry["status"], "published");
    assert_eq!(entry["value"], "3494.46");

    // 7 is now the last count: no warning any more.
    let out = bookings(p.path(), data.path(), &[]);
    let r = json(&out);
    assert_eq!(r["quality_status"], "pass");
    assert!(
        volume(&r, "crm/opportunity")["detail"]
            .as_str()
            .unwrap()
            .starts_with("7 rows, as last seen"),
        "{r}"
    );
    assert!(!stderr(&out).contains("volume:"), "{}", stderr(&out));
}

// Thresholds: 15 → 12 deals loses 3/15 = 20.0 %, not more than the default
// 20 %: it passes, is remembered, and publishes. A source's own
// `volume: {max_drop: 0.3}` then lets 12 → 9 (3/12 = 25 %) pass, and
// 9 → 6 (3/9 = 33.3 %) warns. bookings is 3694.46 over D1..D12 and D1..D9
// (D10 deleted, D11 0.00, D12 lost), 3494.46 over D1..D6.
#[test]
fn drops_within_the_threshold_pass_and_a_source_sets_its_own() {
    let p = project();
    let data = fixture();
    json(&bookings(p.path(), data.path(), &[]));

    keep_rows(data.path(), "crm/opportunity", 12);
    let out = bookings(p.path(), data.path(), &[]);
    let r = json(&out);
    assert_eq!(r["value"], "3694.46");
    let v = volume(&r, "crm/opportunity");
    assert_eq!(v["status"], "pass");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .ends_with("within the 20.0 % allowed"),
        "{v}"
    );
    assert!(!stderr(&out).contains("volume:"), "{}", stderr(&out));
    let out_dir = tempfile::tempdir().unwrap();
    let published = publish(p.path(), data.path(), &out_dir.path().join("pub"), &[]);
    assert!(published.status.success(), "{}", stderr(&published));

    let crm = p.path().join("models/crm.yaml");
    let text = std::fs::read_to_string(&crm).unwrap();
    let text = text.replacen(
        "    sort_column: close_date\n",
        "    sort_column: close_date\n    volume: {max_drop: 0.3}\n",
        1,
    );
    std::fs::write(&crm, text).unwrap();
    keep_rows(data.path(), "crm/opportunity", 9);
    let r = json(&bookings(p.path(), data.path(), &[]));
    assert_eq!(r["value"], "3694.46");
    assert_eq!(volume(&r, "crm/opportunity")["status"], "pass");

    keep_rows(data.path(), "crm/opportunity", 6);
    let r = json(&bookings(p.path(), data.path(), &[]));
    assert_eq!(r["value"], "3494.46");
    let v = volume(&r, "crm/opportunity");
    assert_eq!(v["status"], "warn");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("6 rows, 33.3 % fewer than the 9 canon saw at"),
        "{v}"
    );
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("more than the 30.0 % allowed"),
        "{v}"
    );
}

// The last count is per data root: another company's extracts (--data) are
// compared with themselves. Root B, already cut to 7 deals when canon first
// sees it, passes (nothing to compare with); root A, seen at 15, warns at 7.
#[test]
fn last_counts_are_kept_per_data_root() {
    let p = project();
    let a = fixture();
    let b = fixture();
    json(&bookings(p.path(), a.path(), &[]));
    keep_rows(b.path(), "crm/opportunity", 7);
    let rb = json(&bookings(p.path(), b.path(), &[]));
    assert_eq!(rb["value"], "3494.46");
    assert_eq!(volume(&rb, "crm/opportunity")["status"], "pass");
    keep_rows(a.path(), "crm/opportunity", 7);
    let ra = json(&bookings(p.path(), a.path(), &[]));
    assert_eq!(volume(&ra, "crm/opportunity")["status"], "warn");
    // Growth passes and is remembered: B back to 15 deals, then cut to 12
    // is 3/15 = 20 %, within the threshold (against 7 it would be growth
    // too, so the 15 must have been remembered for the last assertion).
    write_company(b.path());
    let rb = json(&bookings(p.path(), b.path(), &[]));
    let v = volume(&rb, "crm/opportunity");
    assert_eq!(v["status"], "pass");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .starts_with("15 rows, up from the 7 canon saw at "),
        "{v}"
    );
    keep_rows(b.path(), "crm/opportunity", 12);
    let rb = json(&bookings(p.path(), b.path(), &[]));
    let v = volume(&rb, "crm/opportunity");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .starts_with("12 rows, 20.0 % fewer than the 15 canon saw at "),
        "{v}"
    );
}

fn state(project: &Path) -> std::path::PathBuf {
    project.join(".canon-state/volume.json")
}

/// The files canon kept aside in `.canon-state`, by name.
fn kept_aside(project: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(project.join(".canon-state"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("volume.json.damaged-"))
        .collect();
    names.sort();
    names
}

// A state file that exists but cannot be read is not a first time: after a
// drop 15 → 7 that warned (not remembered, so the file still says 15), a
// corrupt file must not let the 7 through as "as last seen". Every table the
// query reads warns (bookings still 3494.46, see above), the log says so
// once, publish is blocked, and the damaged file is left as it is. Allowing
// crm/opportunity sets the file aside (kept, not destroyed) and remembers 7;
// the other tables keep warning in later runs until allowed too (their
// counts were lost with the file), then everything passes.
#[test]
fn a_damaged_state_file_warns_and_blocks_instead_of_starting_over() {
    let p = project();
    let data = fixture();
    json(&bookings(p.path(), data.path(), &[]));
    keep_rows(data.path(), "crm/opportunity", 7);
    assert_eq!(
        json(&bookings(p.path(), data.path(), &[]))["quality_status"],
        "warn"
    );
    let good = std::fs::read_to_string(state(p.path())).unwrap();
    for damage in ["{garbage", "rows-as-text"] {
        let text = if damage == "rows-as-text" {
            // The count of 15 edited to a string.
            assert!(good.contains("\"rows\": 15"), "{good}");
            good.replace("\"rows\": 15", "\"rows\": \"15\"")
        } else {
            damage.to_string()
        };
        std::fs::write(state(p.path()), &text).unwrap();
        let out = bookings(p.path(), data.path(), &[]);
        let r = json(&out);
        assert_eq!(r["value"], "3494.46");
        assert_eq!(r["quality_status"], "warn", "{damage}");
        for table in ["crm/opportunity", "crm/account"] {
            let v = volume(&r, table);
            assert_eq!(v["status"], "warn", "{damage}: {v}");
            let detail = v["detail"].as_str().unwrap();
            assert!(
                detail.contains("rows, not compared: the volume state file")
                    && detail.contains("cannot be read (")
                    && detail.ends_with(&format!(
                        "publish is blocked until a run passes --allow volume:{table}"
                    )),
                "{damage}: {v}"
            );
        }
        assert!(
            volume(&r, "crm/opportunity")["detail"]
                .as_str()
                .unwrap()
                .starts_with("7 rows, not compared"),
            "{r}"
        );
        let err = stderr(&out);
        assert_eq!(err.matches("cannot be read").count(), 1, "{err}");
        // Left as it was: nothing remembered over it.
        assert_eq!(std::fs::read_to_string(state(p.path())).unwrap(), text);

        let out_dir = tempfile::tempdir().unwrap();
        let blocked = publish(p.path(), data.path(), &out_dir.path().join("pub"), &[]);
        let err = stderr(&blocked);
        assert_eq!(blocked.status.code(), Some(1), "{err}");
        assert!(err.contains("publish is blocked"), "{err}");
        assert!(
            err.contains("crm/opportunity volume (7 rows, not compared"),
            "{err}"
        );
        assert!(err.contains("--allow volume:crm/account"), "{err}");
        assert_eq!(std::fs::read_to_string(state(p.path())).unwrap(), text);
        assert!(kept_aside(p.path()).is_empty());
    }

    // Allowing one table sets the damaged file aside, byte for byte.
    let damaged = std::fs::read_to_string(state(p.path())).unwrap();
    let r = json(&bookings(
        p.path(),
        data.path(),
        &["--allow", "volume:crm/opportunity"],
    ));
    assert_eq!(
        r["overrides"],
        serde_json::json!(["volume:crm/opportunity"])
    );
    let aside = kept_aside(p.path());
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        std::fs::read_to_string(p.path().join(".canon-state").join(&aside[0])).unwrap(),
        damaged
    );
    // Next run: 7 is the count to compare with; crm/account's count was
    // lost with the file, so it still warns (not "first seen") and names
    // where the old file is.
    let out = bookings(p.path(), data.path(), &[]);
    let r = json(&out);
    assert_eq!(
        volume(&r, "crm/opportunity")["detail"],
        "7 rows, as last seen"
    );
    let account = volume(&r, "crm/account");
    assert_eq!(account["status"], "warn");
    assert!(
        account["detail"]
            .as_str()
            .unwrap()
            .contains("was kept aside as "),
        "{account}"
    );
    assert!(
        account["detail"].as_str().unwrap().contains(&aside[0]),
        "{account}"
    );
    assert_eq!(r["quality_status"], "warn");
    let out_dir = tempfile::tempdir().unwrap();
    let blocked = publish(p.path(), data.path(), &out_dir.path().join("pub"), &[]);
    assert_eq!(blocked.status.code(), Some(1), "{}", stderr(&blocked));
    assert!(!stderr(&blocked).contains("crm/opportunity volume"));
    assert!(stderr(&blocked).contains("crm/account volume"));

    // Allow every table bookings reads; then a plain run passes.
    let tables: Vec<String> = r["quality"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["check"] == "volume" && c["status"] == "warn")
        .map(|c| format!("volume:{}", c["table"].as_str().unwrap()))
        .collect();
    let mut args = Vec::new();
    for t in &tables {
        args.push("--allow");
        args.push(t.as_str());
    }
    let published = publish(p.path(), data.path(), &out_dir.path().join("pub"), &args);
    assert!(published.status.success(), "{}", stderr(&published));
    let r = json(&bookings(p.path(), data.path(), &[]));
    assert_eq!(r["quality_status"], "pass", "{r}");
    assert_eq!(
        volume(&r, "crm/account")["detail"],
        // A1..A6 and A8.
        "7 rows, as last seen"
    );
    // Still one file kept aside: the new state was never damaged.
    assert_eq!(kept_aside(p.path()), aside);
}

// A removed state file is a genuine first time, and says so (it is not
// "as last seen"): the tables pass with nothing to compare with.
#[test]
fn a_removed_state_file_is_a_first_time_and_says_so() {
    let p = project();
    let data = fixture();
    json(&bookings(p.path(), data.path(), &[]));
    std::fs::remove_file(state(p.path())).unwrap();
    keep_rows(data.path(), "crm/opportunity", 7);
    let r = json(&bookings(p.path(), data.path(), &[]));
    assert_eq!(
        volume(&r, "crm/opportunity")["detail"],
        "7 rows, first seen under this data root: nothing to compare with"
    );
}

// A threshold that is not a fraction is located in canon.yaml.
#[test]
fn a_bad_threshold_is_located() {
    let p = project();
    let path = p.path().join("canon.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let line = text.lines().count() + 2;
    std::fs::write(&path, format!("{text}volume:\n  max_drop: 1.5\n")).unwrap();
    let out = canon(p.path(), &["validate", "--no-data"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "canon.yaml:{line}:13: max_drop 1.5 is not a fraction"
        )),
        "{err}"
    );
}

// The state is canon's own: no --out may land on it (exit 2, nothing computed).
#[test]
fn no_output_may_land_on_the_volume_state() {
    let p = project();
    let data = fixture();
    let out = p.path().join(".canon-state/volume.json");
    let o = canon(
        p.path(),
        &[
            "query",
            "bookings",
            "--period",
            "FY2026-Q1",
            "--data",
            data.path().to_str().unwrap(),
            "--format",
            "csv",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("volume state"), "{}", stderr(&o));
}
