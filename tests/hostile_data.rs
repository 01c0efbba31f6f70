//! Hostile data roots and data files through the real binary (issue 14):
//! link loops, links and source paths that lead outside the data root,
//! files reached twice, and damaged Parquet files. Each ends quickly with
//! the right answer or a located error (system/table/file, and column where
//! known) and a non-zero exit; the rendered errors are reviewed snapshots.

mod common;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

/// The fixture company's data in a temporary folder.
fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_company(dir.path());
    dir
}

/// A copy of the committed sample company's extracts (every table of every
/// model, so `canon validate` has all it checks).
fn sample_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&repo().join("sample_data"), dir.path());
    dir
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A copy of the project whose `crm/opportunity` source reads `path`.
fn project_with_opportunity_path(path: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_project(dir.path());
    let model = dir.path().join("models/crm.yaml");
    let text = std::fs::read_to_string(&model).unwrap();
    let from = "    path: crm/opportunity\n";
    assert!(text.contains(from));
    std::fs::write(
        &model,
        text.replacen(from, &format!("    path: {path}\n"), 1),
    )
    .unwrap();
    dir
}

/// `text` with each temporary folder (as given and as resolved) replaced by
/// a name, so snapshots do not depend on where the test ran.
fn redact(text: &str, dirs: &[(&Path, &str)]) -> String {
    let mut out = text.to_string();
    for (dir, name) in dirs {
        let real = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        for d in [real, dir.to_path_buf()] {
            out = out.replace(&d.display().to_string(), name);
        }
    }
    out
}

/// The error a run printed: stderr from `error:` on (WARN lines dropped).
fn error_of(out: &std::process::Output) -> String {
    let err = stderr(out);
    assert!(!err.contains("panicked"), "{err}");
    match err.find("error: ") {
        Some(i) => err[i..].trim_end().to_string(),
        None => panic!("no error in stderr: {err}"),
    }
}

/// Runs canon, failing the test if it takes 10 s or more (a hang).
fn timed(project: &Path, args: &[&str]) -> std::process::Output {
    let started = Instant::now();
    let out = canon(project, args);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "canon {args:?} took {took:?}"
    );
    out
}

fn bookings(data: &Path) -> serde_json::Value {
    query_json(&repo(), data, &["bookings", "--period", "FY2026-Q1"])
}

/// The lineage file paths of `system/table` in a JSON result.
fn lineage_files(result: &serde_json::Value, table: &str) -> Vec<String> {
    let (system, table) = table.split_once('/').unwrap();
    let source = result["lineage"]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["system"] == system && s["table"] == table)
        .unwrap_or_else(|| panic!("{system}/{table} not in the lineage"));
    source["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect()
}

fn opportunity(data: &Path) -> PathBuf {
    data.join("crm/opportunity")
}

// FY2026-Q1 bookings of the fixture company are 3694.46 (worked out in
// tests/flow_metrics.rs: D1 1000.00 + D2 1250.00 + D3 1111.11 + D4 133.35 +
// D9 200.00 + D11 0.00). Reading the opportunity file twice would double
// every deal: 7388.92, and the key gate would block it.
const BOOKINGS: &str = "3694.46";

// ---------------------------------------------------------------- links

#[test]
fn a_link_loop_to_its_own_folder_is_walked_once() {
    let data = sample_copy();
    symlink(".", opportunity(data.path()).join("loop")).unwrap();
    let out = timed(
        &repo(),
        &["validate", "--data", data.path().to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // 16 sources, one file each: the loop adds none.
    assert!(
        stdout(&out).contains("data ok: 16 tables, 16 files"),
        "{}",
        stdout(&out)
    );

    let data = fixture();
    symlink(".", opportunity(data.path()).join("loop")).unwrap();
    let r = bookings(data.path());
    assert_eq!(r["value"], BOOKINGS);
    assert_eq!(
        lineage_files(&r, "crm/opportunity"),
        [opportunity(data.path())
            .join("part-00000.parquet")
            .display()
            .to_string()]
    );
}

#[test]
fn a_link_loop_to_its_parent_is_walked_once() {
    let data = sample_copy();
    symlink("../opportunity", opportunity(data.path()).join("loop2")).unwrap();
    symlink(".", opportunity(data.path()).join("loop")).unwrap();
    let out = timed(
        &repo(),
        &["validate", "--data", data.path().to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("data ok: 16 tables, 16 files"));

    let data = fixture();
    symlink("../opportunity", opportunity(data.path()).join("loop2")).unwrap();
    let r = bookings(data.path());
    assert_eq!(r["value"], BOOKINGS);
    assert_eq!(lineage_files(&r, "crm/opportunity").len(), 1);
}

#[test]
fn a_link_out_of_the_data_root_is_refused_by_name() {
    let data = fixture();
    let outside = tempfile::tempdir().unwrap();
    // A copy of the deals outside the data root, linked into the table folder.
    std::fs::copy(
        opportunity(data.path()).join("part-00000.parquet"),
        outside.path().join("stolen.parquet"),
    )
    .unwrap();
    symlink(
        outside.path().join("stolen.parquet"),
        opportunity(data.path()).join("part-00001.parquet"),
    )
    .unwrap();
    let d = data.path().to_str().unwrap();
    let out = timed(
        &repo(),
        &["query", "bookings", "--period", "FY2026-Q1", "--data", d],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    insta::assert_snapshot!(
        "link_out_of_the_data_root",
        redact(
            &error_of(&out),
            &[(data.path(), "[DATA]"), (outside.path(), "[OUTSIDE]")]
        )
    );
    // validate names the same link.
    let out = timed(&repo(), &["validate", "--data", d]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("part-00001.parquet: is a link to"),
        "{}",
        stderr(&out)
    );

    // A folder link out of the root is refused the same way.
    std::fs::remove_file(opportunity(data.path()).join("part-00001.parquet")).unwrap();
    symlink(outside.path(), opportunity(data.path()).join("more")).unwrap();
    let out = timed(
        &repo(),
        &["query", "bookings", "--period", "FY2026-Q1", "--data", d],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    insta::assert_snapshot!(
        "folder_link_out_of_the_data_root",
        redact(
            &error_of(&out),
            &[(data.path(), "[DATA]"), (outside.path(), "[OUTSIDE]")]
        )
    );
}

#[test]
fn a_source_path_climbing_out_of_the_data_root_is_refused_at_its_line() {
    let data = fixture();
    let outside = tempfile::tempdir().unwrap();
    copy_tree(&opportunity(data.path()), outside.path());
    // data root /tmp/.tmpA, path ../.tmpB: a folder beside the data root.
    let name = outside.path().file_name().unwrap().to_str().unwrap();
    let project = project_with_opportunity_path(&format!("../{name}"));
    let d = data.path().to_str().unwrap();
    for args in [
        vec!["query", "bookings", "--period", "FY2026-Q1", "--data", d],
        vec!["validate", "--data", d],
    ] {
        let out = timed(project.path(), &args);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        // crm.yaml line 38 is opportunity's `    path: …`; the value starts at column 11.
        insta::assert_snapshot!(
            "source_path_with_dotdot",
            redact(
                &error_of(&out),
                &[(data.path(), "[DATA]"), (outside.path(), "[OUTSIDE]")]
            )
            .replace(name, "[OUTSIDE_NAME]")
        );
    }
}

#[test]
fn an_absolute_source_path_outside_the_data_root_is_refused() {
    let data = fixture();
    let outside = tempfile::tempdir().unwrap();
    copy_tree(&opportunity(data.path()), outside.path());
    let project = project_with_opportunity_path(outside.path().to_str().unwrap());
    let d = data.path().to_str().unwrap();
    let out = timed(
        project.path(),
        &["query", "bookings", "--period", "FY2026-Q1", "--data", d],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    insta::assert_snapshot!(
        "absolute_source_path",
        redact(
            &error_of(&out),
            &[(data.path(), "[DATA]"), (outside.path(), "[OUTSIDE]")]
        )
    );
}

// `path: ../../../../proc/self` hung `canon validate` (a walk of /proc,
// whose links loop). The same shape without /proc: a folder outside the
// data root holding a link loop, reached by climbing out with `..`.
#[test]
fn a_proc_self_like_path_is_refused_without_walking_it() {
    let data = sample_copy();
    let outside = tempfile::tempdir().unwrap();
    let selfish = outside.path().join("self");
    std::fs::create_dir(&selfish).unwrap();
    symlink(".", selfish.join("cwd")).unwrap();
    symlink("..", selfish.join("root")).unwrap();
    let climb = "../".repeat(
        std::fs::canonicalize(data.path())
            .unwrap()
            .components()
            .count(),
    );
    let path = format!(
        "{climb}{}",
        std::fs::canonicalize(&selfish)
            .unwrap()
            .display()
            .to_string()
            .trim_start_matches('/')
    );
    let project = project_with_opportunity_path(&path);
    let out = timed(
        project.path(),
        &["validate", "--data", data.path().to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = error_of(&out).replace(&path, "[../ TO /][OUTSIDE]/self");
    insta::assert_snapshot!(
        "proc_self_like_path",
        redact(
            &err,
            &[(data.path(), "[DATA]"), (outside.path(), "[OUTSIDE]")]
        )
    );
}

#[test]
fn a_table_folder_that_is_a_link_inside_the_data_root_is_read() {
    let data = fixture();
    // The deals live in archive/opportunity_2026; crm/opportunity links to them.
    std::fs::create_dir(data.path().join("archive")).unwrap();
    std::fs::rename(
        opportunity(data.path()),
        data.path().join("archive/opportunity_2026"),
    )
    .unwrap();
    symlink("../archive/opportunity_2026", opportunity(data.path())).unwrap();
    let r = bookings(data.path());
    assert_eq!(r["value"], BOOKINGS);
    assert_eq!(
        lineage_files(&r, "crm/opportunity"),
        [opportunity(data.path())
            .join("part-00000.parquet")
            .display()
            .to_string()]
    );
}

// Decision: a file reached under a second name (a symbolic or hard link to
// a part file already listed) is read once, under the name that is not a
// link. It cannot hold other rows, and counting it twice would double every
// number (and trip the key gate).
#[test]
fn a_linked_duplicate_of_a_part_file_is_counted_once() {
    let data = fixture();
    let dir = opportunity(data.path());
    // "a-copy" sorts before "part-00000": the real name is kept anyway.
    symlink("part-00000.parquet", dir.join("a-copy.parquet")).unwrap();
    std::fs::hard_link(dir.join("part-00000.parquet"), dir.join("z-hard.parquet")).unwrap();
    let r = bookings(data.path());
    assert_eq!(r["value"], BOOKINGS);
    assert_eq!(r["tallies"][0]["universe_rows"], 11);
    let files = lineage_files(&r, "crm/opportunity");
    assert_eq!(
        files,
        [dir.join("part-00000.parquet").display().to_string()]
    );
}

#[test]
fn a_broken_link_named_parquet_is_refused_by_name() {
    let data = fixture();
    symlink(
        "part-99999.parquet",
        opportunity(data.path()).join("part-00001.parquet"),
    )
    .unwrap();
    let d = data.path().to_str().unwrap();
    let out = timed(
        &repo(),
        &["query", "bookings", "--period", "FY2026-Q1", "--data", d],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    insta::assert_snapshot!(
        "broken_link",
        redact(&error_of(&out), &[(data.path(), "[DATA]")])
    );
}

// A pipe named like a part file would block the reader forever.
#[test]
fn a_pipe_named_parquet_is_refused_without_blocking() {
    let data = fixture();
    let fifo = opportunity(data.path()).join("part-00001.parquet");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let d = data.path().to_str().unwrap();
    let out = timed(
        &repo(),
        &["query", "bookings", "--period", "FY2026-Q1", "--data", d],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    insta::assert_snapshot!(
        "pipe_named_parquet",
        redact(&error_of(&out), &[(data.path(), "[DATA]")])
    );
}

// A folder named like a file is a folder of the table (Spark and Hive write
// `table.parquet/part-*.parquet`): its part files are read, an empty one
// adds nothing.
#[test]
fn a_folder_named_parquet_is_a_folder_of_the_table() {
    let data = fixture();
    std::fs::create_dir(opportunity(data.path()).join("x.parquet")).unwrap();
    let r = bookings(data.path());
    assert_eq!(r["value"], BOOKINGS);
    assert_eq!(lineage_files(&r, "crm/opportunity").len(), 1);
}
