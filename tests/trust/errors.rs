//! Bad input through the real binary: a clear, located message and a
//! non-zero exit, never a panic and never a written `--out`.

use crate::common::*;

fn project_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_project(dir.path());
    dir
}

fn edit(path: &std::path::Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from} not in {}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

fn assert_fails(out: &std::process::Output, code: i32, needles: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "`{n}` not in: {err}");
    }
}

#[test]
fn malformed_yaml_names_file_line_and_column() {
    let p = project_copy();
    std::fs::write(
        p.path().join("metrics/broken.yaml"),
        "domain: x\nmetrics:\n  - name: [oops\n",
    )
    .unwrap();
    let out = canon(p.path(), &["validate", "--no-data"]);
    assert_fails(&out, 1, &["metrics/broken.yaml:3:11"]);
}

#[test]
fn unknown_keys_are_rejected_with_their_location() {
    let p = project_copy();
    edit(
        &p.path().join("metrics/sales.yaml"),
        "    filter: is_won\n",
        "    filtre: is_won\n",
    );
    let out = canon(p.path(), &["list"]);
    assert_fails(&out, 1, &["metrics/sales.yaml:", "unknown field `filtre`"]);
}

#[test]
fn unknown_column_is_located_in_the_metric() {
    let p = project_copy();
    // line 18 of sales.yaml is bookings' `filter: is_won`; the value starts at column 13.
    edit(
        &p.path().join("metrics/sales.yaml"),
        "    filter: is_won\n",
        "    filter: is_wonn\n",
    );
    let out = canon(p.path(), &["validate", "--no-data"]);
    assert_fails(&out, 1, &["metrics/sales.yaml:18:13", "is_wonn"]);
}

#[test]
fn unknown_model_entity_is_reported() {
    let p = project_copy();
    edit(
        &p.path().join("metrics/sales.yaml"),
        "    entity: deal\n",
        "    entity: deals\n",
    );
    let out = canon(p.path(), &["validate", "--no-data"]);
    assert_fails(
        &out,
        1,
        &[
            "metrics/sales.yaml:16:13",
            "unknown entity `deals`",
            "did you mean `deal`",
        ],
    );
}

// Line 48 of finance.yaml is accounting_period's `- {name: start_date}`;
// the name's value starts at column 16.
#[test]
fn an_entity_field_may_not_take_canons_underscore_names() {
    let p = project_copy();
    edit(
        &p.path().join("models/finance.yaml"),
        "      - {name: start_date}\n",
        "      - {name: _start_date}\n",
    );
    let out = canon(p.path(), &["validate", "--no-data"]);
    assert_fails(
        &out,
        1,
        &[
            "models/finance.yaml:48:16",
            "field `_start_date`",
            "canon's own",
        ],
    );
}

#[test]
fn an_entity_has_exactly_one_system_of_record() {
    let p = project_copy();
    let finance = p.path().join("models/finance.yaml");
    let text = std::fs::read_to_string(&finance).unwrap();
    std::fs::write(
        &finance,
        text.replace(
            "  - name: accounting_period\n    description: A monthly period of the books.",
            "  - name: deal\n    description: A monthly period of the books.",
        ),
    )
    .unwrap();
    let out = canon(p.path(), &["validate", "--no-data"]);
    assert_fails(
        &out,
        1,
        &[
            "models/finance.yaml:",
            "entity `deal` already has a system of record",
        ],
    );
}

#[test]
fn request_errors_exit_2() {
    let data = tempfile::tempdir().unwrap();
    write_company(data.path());
    let d = data.path().to_str().unwrap();
    let out = canon(
        &repo(),
        &["query", "bookin", "--period", "2025-03", "--data", d],
    );
    assert_fails(
        &out,
        2,
        &["unknown metric `bookin`", "did you mean `bookings`"],
    );
    let out = canon(
        &repo(),
        &["query", "bookings", "--period", "2025-13", "--data", d],
    );
    assert_fails(&out, 2, &["cannot read period `2025-13`"]);
    let out = canon(
        &repo(),
        &[
            "query", "bookings", "--period", "2025-03", "--by", "region", "--data", d,
        ],
    );
    assert_fails(
        &out,
        2,
        &[
            "`region` is not an approved slice of `bookings`",
            "deal_type",
        ],
    );
    let out = canon(
        &repo(),
        &[
            "query",
            "bookings",
            "--period",
            "2025-03",
            "--data",
            "/no/such/folder",
        ],
    );
    assert_fails(&out, 2, &["data root /no/such/folder does not exist"]);
    // recognized revenue only over whole accounting periods: 2025-02-15 starts none.
    let out = canon(
        &repo(),
        &[
            "query",
            "recognized_revenue",
            "--from",
            "2025-02-15",
            "--to",
            "2025-04-01",
            "--data",
            d,
        ],
    );
    assert_fails(&out, 2, &["whole accounting periods", "2025-02-15"]);
}

#[test]
fn a_missing_table_folder_names_the_table() {
    let data = tempfile::tempdir().unwrap();
    write_company(data.path());
    std::fs::remove_dir_all(data.path().join("crm/dated_conversion_rate")).unwrap();
    let out = canon(
        &repo(),
        &[
            "query",
            "bookings",
            "--period",
            "2025-03",
            "--data",
            data.path().to_str().unwrap(),
        ],
    );
    assert_fails(&out, 1, &["crm/dated_conversion_rate", "does not exist"]);
}

#[test]
fn a_file_whose_schema_does_not_match_names_file_and_column() {
    let data = tempfile::tempdir().unwrap();
    write_company(data.path());
    // Rewrite the opportunity table with `amount` as a double instead of money.
    std::fs::remove_dir_all(data.path().join("crm/opportunity")).unwrap();
    write_opportunities(data.path(), "crm/opportunity", "amount");
    let file = data.path().join("crm/opportunity/part-00000.parquet");
    let batch = {
        let f = std::fs::File::open(&file).unwrap();
        let r =
            datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
                .unwrap()
                .build()
                .unwrap();
        r.into_iter().next().unwrap().unwrap()
    };
    let i = batch.schema().index_of("amount").unwrap();
    let mut fields: Vec<_> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields[i] = datafusion::arrow::datatypes::Field::new(
        "amount",
        datafusion::arrow::datatypes::DataType::Float64,
        true,
    );
    let mut cols = batch.columns().to_vec();
    cols[i] = datafusion::arrow::compute::cast(
        &cols[i],
        &datafusion::arrow::datatypes::DataType::Float64,
    )
    .unwrap();
    let bad = datafusion::arrow::array::RecordBatch::try_new(
        std::sync::Arc::new(datafusion::arrow::datatypes::Schema::new(fields)),
        cols,
    )
    .unwrap();
    let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&file).unwrap(),
        bad.schema(),
        None,
    )
    .unwrap();
    w.write(&bad).unwrap();
    w.close().unwrap();

    // Outside the data root: an --out inside it is refused before any read.
    let out_dir = tempfile::tempdir().unwrap();
    let out_file = out_dir.path().join("result.json");
    let out = canon(
        &repo(),
        &[
            "query",
            "bookings",
            "--period",
            "2025-03",
            "--format",
            "json",
            "--out",
            out_file.to_str().unwrap(),
            "--data",
            data.path().to_str().unwrap(),
        ],
    );
    assert_fails(
        &out,
        1,
        &[
            "crm/opportunity",
            "part-00000.parquet",
            "column `amount`",
            "Float64",
            "money",
        ],
    );
    assert!(!out_file.exists(), "a failed run wrote its --out file");
}

#[test]
fn a_corrupt_parquet_file_is_a_data_error() {
    let data = tempfile::tempdir().unwrap();
    write_company(data.path());
    std::fs::write(
        data.path().join("crm/account/part-00000.parquet"),
        b"not parquet at all",
    )
    .unwrap();
    let out = canon(
        &repo(),
        &[
            "query",
            "bookings",
            "--period",
            "2025-03",
            "--data",
            data.path().to_str().unwrap(),
        ],
    );
    assert_fails(
        &out,
        1,
        &[
            "crm/account",
            "part-00000.parquet",
            "not a readable Parquet file",
        ],
    );
}

#[test]
fn a_bad_memory_limit_is_located_in_canon_yaml() {
    let p = project_copy();
    // canon.yaml line 32: `  memory_limit: 2GiB`, the value at column 17.
    edit(
        &p.path().join("canon.yaml"),
        "memory_limit: 2GiB",
        "memory_limit: 2 gigs",
    );
    let out = canon(p.path(), &["validate", "--no-data"]);
    assert_fails(&out, 1, &["canon.yaml:32:17", "`2 gigs` is not a size"]);
}

// Past the memory limit the engine's message names DataFusion's own
// settings (`datafusion.runtime.memory_limit`), which a canon user does not
// set: the error says which setting of canon's to raise. At 1 MiB a sort's
// 10 MiB merge reservation cannot fit, whatever the pool does.
#[test]
fn past_the_memory_limit_the_error_names_canons_setting() {
    let p = project_copy();
    edit(
        &p.path().join("canon.yaml"),
        "memory_limit: 2GiB",
        "memory_limit: 1MiB",
    );
    let data = repo().join("sample_data");
    let out = canon(
        p.path(),
        &[
            "query",
            "open_pipeline",
            "--grain",
            "month",
            "--period",
            "2025",
            "--data",
            data.to_str().unwrap(),
        ],
    );
    assert_fails(
        &out,
        1,
        &[
            "metric `open_pipeline`",
            "Resources exhausted",
            "raise `engine.memory_limit` in canon.yaml",
        ],
    );
}

// canon check past the memory limit says which table's checks stopped
// (the engine's message names none) and which setting to raise.
#[test]
fn check_past_the_memory_limit_names_the_table_it_was_checking() {
    let p = project_copy();
    edit(
        &p.path().join("canon.yaml"),
        "memory_limit: 2GiB",
        "memory_limit: 1MiB",
    );
    let data = repo().join("sample_data");
    let out = canon(p.path(), &["check", "--data", data.to_str().unwrap()]);
    assert_fails(
        &out,
        1,
        &[
            "error: checking ",
            "raise `engine.memory_limit` in canon.yaml",
        ],
    );
    let err = stderr(&out);
    let table = err
        .split("error: checking ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .unwrap_or_default();
    assert!(
        table.contains('/') && !table.contains(' '),
        "a system/table after `checking`: {err}"
    );
}

// stderr closed by its reader (`canon publish 2>&1 | grep -q stale` stops
// reading at the first match): every later warning fails to write. That
// was a panic (exit 101) inside the publish, which then wrote nothing. Now
// the publish goes on: bookings' definition changed after its sign-off, so
// it is published as blocked and the run exits 1, with the manifest written.
#[test]
fn a_closed_stderr_does_not_stop_a_publish() {
    let p = project_copy();
    edit(
        &p.path().join("metrics/sales.yaml"),
        "    filter: is_won\n",
        "    filter: is_won AND amount >= 1000\n",
    );
    let out = p.path().join("published");
    let data = repo().join("sample_data");
    let mut child = command(
        p.path(),
        &[
            "publish",
            "--only",
            "bookings",
            "--period",
            "FY2026-Q1",
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    // The reader goes away before canon has loaded its catalog.
    drop(child.stderr.take());
    let done = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&done.stdout).into_owned();
    assert_eq!(done.status.code(), Some(1), "stdout: {said}");
    assert!(
        said.contains("published 0 metric result(s) (1 more blocked)"),
        "{said}"
    );
    let manifest = std::fs::read_to_string(out.join("manifest.json")).unwrap();
    assert!(manifest.contains("\"bookings\""), "{manifest}");
}
