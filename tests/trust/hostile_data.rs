//! Hostile data roots and data files through the real binary (issue 14):
//! link loops, links and source paths that lead outside the data root,
//! files reached twice, and damaged Parquet files. Each ends quickly with
//! the right answer or a located error (system/table/file, and column where
//! known) and a non-zero exit; the rendered errors are reviewed snapshots.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;

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

/// Runs canon, failing the test if it takes 10 s or more: the walk of a
/// table folder with link loops, or of a path out of the data root, must
/// end at once (it hung before).
fn fast(project: &Path, args: &[&str]) -> std::process::Output {
    within(Duration::from_secs(10), project, args)
}

/// Runs canon, failing the test past a minute: a hang, not a slow debug
/// build (a whole `canon check` of the sample takes over 10 s in debug on
/// a busy 2-core machine).
fn timed(project: &Path, args: &[&str]) -> std::process::Output {
    within(Duration::from_secs(60), project, args)
}

fn within(limit: Duration, project: &Path, args: &[&str]) -> std::process::Output {
    let started = Instant::now();
    let out = canon(project, args);
    let took = started.elapsed();
    assert!(took < limit, "canon {args:?} took {took:?}");
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
// tests/metrics/flow_metrics.rs: D1 1000.00 + D2 1250.00 + D3 1111.11 + D4 133.35 +
// D9 200.00 + D11 0.00). Reading the opportunity file twice would double
// every deal: 7388.92, and the key gate would block it.
const BOOKINGS: &str = "3694.46";

// ---------------------------------------------------------------- links

#[test]
fn a_link_loop_to_its_own_folder_is_walked_once() {
    let data = sample_copy();
    symlink(".", opportunity(data.path()).join("loop")).unwrap();
    let out = fast(
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
    let out = fast(
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
        let out = fast(project.path(), &args);
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
    let out = fast(
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

// The model's path is innocent (`crm/opportunity`), but the folder is a
// link to a folder outside the data root: refused like a path that says so.
#[test]
fn a_table_folder_linked_out_of_the_data_root_is_refused_at_its_path() {
    let data = fixture();
    let outside = tempfile::tempdir().unwrap();
    copy_tree(&opportunity(data.path()), outside.path());
    std::fs::remove_dir_all(opportunity(data.path())).unwrap();
    symlink(outside.path(), opportunity(data.path())).unwrap();
    let d = data.path().to_str().unwrap();
    let out = fast(
        &repo(),
        &["query", "bookings", "--period", "FY2026-Q1", "--data", d],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    insta::assert_snapshot!(
        "table_folder_linked_out",
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
    let out = fast(
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
    let out = fast(
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

// ---------------------------------------------------------------- damaged files

/// Rewrites the Parquet file at `path` (zstd, as the sample) in row groups
/// of `rows` rows, so that a later row group can be damaged alone.
fn rewrite_in_row_groups(path: &Path, rows: usize) {
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use datafusion::parquet::basic::{Compression, ZstdLevel};
    use datafusion::parquet::file::properties::WriterProperties;
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<_> = reader.map(Result::unwrap).collect();
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap()))
        .set_max_row_group_row_count(Some(rows))
        .build();
    let tmp = path.with_extension("tmp");
    let mut writer = ArrowWriter::try_new(
        std::fs::File::create(&tmp).unwrap(),
        batches[0].schema(),
        Some(properties),
    )
    .unwrap();
    for b in &batches {
        writer.write(b).unwrap();
    }
    writer.close().unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Overwrites 16 bytes in the middle of the first data page of `column` in
/// row group `row_group`, found from the footer's column chunk metadata
/// (the data pages run from `data_page_offset` to the end of the chunk);
/// the footer is left intact. Returns (row groups, the offset overwritten).
fn damage_page(path: &Path, row_group: usize, column: &str) -> (usize, u64) {
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
    use std::io::{Seek, SeekFrom, Write};
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let meta = reader.metadata();
    let rg = meta.row_group(row_group);
    let chunk = rg
        .columns()
        .iter()
        .find(|c| c.column_descr().name() == column)
        .unwrap_or_else(|| panic!("no column {column}"));
    let start = chunk
        .dictionary_page_offset()
        .unwrap_or(chunk.data_page_offset());
    let end = start + chunk.compressed_size();
    let data = chunk.data_page_offset();
    assert!(
        end - data > 64,
        "the data page is too small to damage its middle"
    );
    let middle = (data + (end - data) / 2) as u64;
    let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.seek(SeekFrom::Start(middle)).unwrap();
    file.write_all(&[0xA5; 16]).unwrap();
    (meta.num_row_groups(), middle)
}

/// The sample's deals rewritten in five row groups of at most 1,000 rows
/// (4,547 deals: four of 1,000 and one of 547), with the data page of
/// `column` in row group `row_group` damaged in its middle.
fn sample_with_damaged_page(row_group: usize, column: &str) -> (tempfile::TempDir, PathBuf) {
    let data = sample_copy();
    let file = opportunity(data.path()).join("part-00000.parquet");
    rewrite_in_row_groups(&file, 1000);
    let (groups, _) = damage_page(&file, row_group, column);
    assert_eq!(groups, 5);
    (data, file)
}

// A page damaged in the last row group's `amount` (the ninth of seventeen
// columns): the footer is intact, so `validate` passes, and no query of
// bookings reads those rows (the last row group's deals are open, and
// filters are evaluated before `amount` is decoded). `validate --deep`
// decodes every page and names the file, the column and the row group.
#[test]
fn validate_deep_finds_a_damaged_page_the_footer_cannot_show() {
    let data = sample_copy();
    let d = data.path().to_str().unwrap();
    let file = opportunity(data.path()).join("part-00000.parquet");
    rewrite_in_row_groups(&file, 1000);
    let out = timed(&repo(), &["validate", "--deep", "--data", d]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(
            "data ok: 16 tables, 16 files under {D} match their models; every column of \
             every row group decodes"
                .replace("{D}", d)
                .as_str()
        ),
        "{}",
        stdout(&out)
    );

    let (data, _) = sample_with_damaged_page(4, "amount");
    let d = data.path().to_str().unwrap();
    let out = timed(&repo(), &["validate", "--data", d]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(
            "data ok: 16 tables, 16 files under {D} match their models (footers read; --deep \
             decodes every page)"
                .replace("{D}", d)
                .as_str()
        ),
        "{}",
        stdout(&out)
    );
    let out = timed(&repo(), &["validate", "--deep", "--data", d]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    insta::assert_snapshot!(
        "validate_deep_damaged_page",
        redact(&error_of(&out), &[(data.path(), "[DATA]")])
    );
}

// The same kind of damage in row group 3's `close_date`, which every
// bookings query reads (the period filter): the engine's error names no
// file, so canon decodes the inputs again and names it, from every command.
#[test]
fn a_damaged_page_is_named_by_query_sql_check_reconcile_and_publish() {
    let (data, _) = sample_with_damaged_page(3, "close_date");
    let d = data.path().to_str().unwrap();
    let out = timed(
        &repo(),
        &[
            "query",
            "bookings",
            "--from",
            "2000-01-01",
            "--to",
            "2030-01-01",
            "--data",
            d,
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    insta::assert_snapshot!(
        "query_damaged_page",
        redact(&error_of(&out), &[(data.path(), "[DATA]")])
    );
    let published = tempfile::tempdir().unwrap();
    let out_dir = published.path().join("out");
    for args in [
        vec![
            "sql",
            "SELECT count(DISTINCT close_date) FROM crm.opportunity",
            "--data",
            d,
        ],
        vec!["check", "--data", d],
        vec![
            "reconcile",
            "bookings_to_revenue",
            "--period",
            "FY2026",
            "--data",
            d,
        ],
        vec![
            "publish",
            "--out",
            out_dir.to_str().unwrap(),
            "--period",
            "FY2026",
            "--data",
            d,
        ],
    ] {
        let out = timed(&repo(), &args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(
            all.contains(&format!(
                "data error in crm/opportunity file {d}/crm/opportunity/part-00000.parquet \
                 column `close_date`: row group 3 cannot be decoded"
            )),
            "{args:?}: {all}"
        );
    }
    assert!(!out_dir.exists(), "a failed publish leaves nothing");
}

// The case: damage in a page's header (the bytes at the page's
// offset) fails with a bare Thrift error ("Unexpected struct field type")
// from the engine; canon names the file and column.
#[test]
fn a_damaged_page_header_is_named() {
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
    use std::io::{Seek, SeekFrom, Write};
    let data = sample_copy();
    let file = opportunity(data.path()).join("part-00000.parquet");
    rewrite_in_row_groups(&file, 1000);
    let offset = {
        let reader = SerializedFileReader::new(std::fs::File::open(&file).unwrap()).unwrap();
        let rg = reader.metadata().row_group(3);
        let chunk = rg
            .columns()
            .iter()
            .find(|c| c.column_descr().name() == "close_date")
            .unwrap();
        chunk.data_page_offset() as u64
    };
    let mut f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(&[0xFF; 8]).unwrap();
    drop(f);
    let d = data.path().to_str().unwrap();
    let out = timed(
        &repo(),
        &[
            "query",
            "bookings",
            "--from",
            "2000-01-01",
            "--to",
            "2030-01-01",
            "--data",
            d,
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    insta::assert_snapshot!(
        "query_damaged_page_header",
        redact(&error_of(&out), &[(data.path(), "[DATA]")])
    );
}

fn query_fails_naming(data: &Path, name: &str) {
    let d = data.to_str().unwrap();
    let out = timed(
        &repo(),
        &["query", "bookings", "--period", "FY2026-Q1", "--data", d],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    insta::assert_snapshot!(name, redact(&error_of(&out), &[(data, "[DATA]")]));
}

#[test]
fn a_truncated_file_is_named() {
    let data = fixture();
    let file = opportunity(data.path()).join("part-00000.parquet");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    query_fails_naming(data.path(), "truncated_file");
}

// The footer's metadata overwritten, its length and the closing `PAR1` kept.
#[test]
fn garbage_in_the_footer_is_named() {
    let data = fixture();
    let file = opportunity(data.path()).join("part-00000.parquet");
    let mut bytes = std::fs::read(&file).unwrap();
    let n = bytes.len();
    let footer = u32::from_le_bytes(bytes[n - 8..n - 4].try_into().unwrap()) as usize;
    assert!(footer > 64 && footer < n);
    for b in &mut bytes[n - 8 - footer / 2..n - 8] {
        *b = 0xEE;
    }
    std::fs::write(&file, &bytes).unwrap();
    query_fails_naming(data.path(), "footer_garbage");
}

// An empty part file (a writer that died before its first byte) is not an
// empty table: it is refused by name, never read as zero rows.
#[test]
fn an_empty_file_is_named() {
    let data = fixture();
    std::fs::write(opportunity(data.path()).join("part-00001.parquet"), b"").unwrap();
    query_fails_naming(data.path(), "empty_file");
}

// A merge chain that loops (A6 → A8 → A1 → A6) has no survivor: every
// metric that joins accounts is refused with a data error naming the table
// and the merge field. The map is worked out when a plan is turned into an
// execution plan (compile::survivors), so `explain`, which shows the
// physical plan, reports the same error.
#[test]
fn a_merge_chain_that_loops_is_a_located_data_error() {
    let data = fixture();
    write_accounts_merged(
        data.path(),
        "crm/account",
        ["A6", "", "", "", "", "A8", "A1"],
    );
    let d = data.path().to_str().unwrap();
    let out = canon(
        &repo(),
        &["query", "bookings", "--period", "FY2026-Q1", "--data", d],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = redact(&error_of(&out), &[(data.path(), "[DATA]")]);
    insta::assert_snapshot!(err);
    let plans = canon(
        &repo(),
        &["explain", "bookings", "--period", "FY2026-Q1", "--data", d],
    );
    assert_eq!(plans.status.code(), Some(1), "{}", stderr(&plans));
    assert_eq!(redact(&error_of(&plans), &[(data.path(), "[DATA]")]), err);
}

// A record merged into two others (A6 into A8 in one file, into A1 in a
// second) has no known survivor: refused with a data error naming the
// table, the merge field and both candidates, never resolved by whichever
// row came last.
#[test]
fn a_record_merged_into_two_survivors_is_a_located_data_error() {
    let data = fixture();
    add_part(
        data.path(),
        "crm/account",
        vec![
            ("id", Col::Str(vec!["A6"])),
            ("name", Col::Str(vec!["Test Legacy Co"])),
            ("type", Col::Str(vec!["Customer"])),
            ("parent_id", Col::OptStr(vec![None])),
            ("master_record_id", Col::OptStr(vec![Some("A1")])),
            ("owner_id", Col::Str(vec!["U1"])),
            ("industry", Col::OptStr(vec![Some("Retail")])),
            ("billing_country", Col::OptStr(vec![Some("US")])),
            ("website", Col::OptStr(vec![None])),
            ("created_date", Col::Ts(vec!["2024-01-01T00:00:00Z"])),
            ("is_deleted", Col::Bool(vec![true])),
        ],
    );
    let d = data.path().to_str().unwrap();
    let out = canon(
        &repo(),
        &["query", "bookings", "--period", "FY2026-Q1", "--data", d],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    insta::assert_snapshot!(redact(&error_of(&out), &[(data.path(), "[DATA]")]));
}
