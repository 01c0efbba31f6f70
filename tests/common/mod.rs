//! A tiny fixture company written by the tests themselves, with every answer
//! worked out by hand in the tests that use it, and helpers to run the real
//! `canon` binary over it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int64Array, RecordBatch,
    StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::parquet::arrow::ArrowWriter;

/// The fixture company (see [`write_company`]) in a folder of its own. A
/// test file that needs more (billing, revenue, history) defines its own
/// `fixture()`, which takes precedence over this one.
pub fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_company(dir.path());
    dir
}

/// The repository root: the project (canon.yaml, models/, metrics/) under test.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the real binary with `args` over `project`, computing every result
/// afresh (tests of the result cache use `canon_cached`).
pub fn canon(project: &Path, args: &[&str]) -> Output {
    command(project, args)
        .env("CANON_NO_CACHE", "1")
        .output()
        .expect("the canon binary runs")
}

/// `canon reconcile bookings_to_revenue --period PERIOD --data DATA EXTRA…`
/// over `project`.
pub fn reconcile(project: &Path, data: &Path, period: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "reconcile",
        "bookings_to_revenue",
        "--period",
        period,
        "--data",
        data.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    canon(project, &args)
}

/// Runs the real binary with the result cache in `cache`.
pub fn canon_cached(project: &Path, cache: &Path, args: &[&str]) -> Output {
    canon_binary_cached(Path::new(env!("CARGO_BIN_EXE_canon")), project, cache, args)
}

/// [`canon_cached`] with another binary (a copy of canon is another build).
pub fn canon_binary_cached(binary: &Path, project: &Path, cache: &Path, args: &[&str]) -> Output {
    command_of(binary, project, args)
        .env("CANON_CACHE_DIR", cache)
        .output()
        .expect("the canon binary runs")
}

/// The canon under test over `project` with a clean environment, to add
/// to (an environment variable) before it runs.
pub fn command(project: &Path, args: &[&str]) -> Command {
    command_of(Path::new(env!("CARGO_BIN_EXE_canon")), project, args)
}

/// `binary` (the canon under test, or a copy of it) with a clean environment.
fn command_of(binary: &Path, project: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(binary);
    c.arg("--project")
        .arg(project)
        .args(args)
        .env_remove("CANON_DATA")
        .env_remove("CANON_PROJECT")
        .env_remove("CANON_NO_CACHE")
        .env_remove("CANON_CACHE_DIR");
    c
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs a query and returns the parsed JSON result, failing loudly on error.
pub fn query_json(project: &Path, data: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec![
        "query",
        "--data",
        data.to_str().unwrap(),
        "--format",
        "json",
    ];
    all.extend_from_slice(args);
    let out = canon(project, &all);
    assert!(
        out.status.success(),
        "canon {all:?} failed:\n{}",
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout).expect("json output")
}

/// Column values of a fixture table.
pub enum Col {
    Str(Vec<&'static str>),
    OptStr(Vec<Option<&'static str>>),
    Bool(Vec<bool>),
    Int(Vec<i64>),
    OptInt(Vec<Option<i64>>),
    Double(Vec<f64>),
    /// `YYYY-MM-DD`
    Date(Vec<&'static str>),
    OptDate(Vec<Option<&'static str>>),
    /// RFC 3339 instants, e.g. `2025-02-01T05:00:00Z`
    Ts(Vec<&'static str>),
    OptTs(Vec<Option<&'static str>>),
    /// Cents as decimal strings, e.g. `100.01`.
    Money(Vec<Option<&'static str>>),
    /// Six-decimal rates as strings, e.g. `0.800000`.
    Rate(Vec<&'static str>),
}

fn days(d: &str) -> i32 {
    let date = chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
    (date - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32
}

fn micros(t: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t)
        .unwrap()
        .timestamp_micros()
}

fn units(s: &str, scale: u32) -> i128 {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let negative = int.starts_with('-');
    let int: i128 = int.trim_start_matches('-').parse().unwrap();
    let mut frac = frac.to_string();
    while frac.len() < scale as usize {
        frac.push('0');
    }
    let v = int * 10i128.pow(scale) + frac.parse::<i128>().unwrap_or(0);
    if negative { -v } else { v }
}

fn array(col: &Col) -> (DataType, bool, ArrayRef) {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    match col {
        Col::Str(v) => (
            DataType::Utf8,
            false,
            Arc::new(StringArray::from(v.clone())),
        ),
        Col::OptStr(v) => (DataType::Utf8, true, Arc::new(StringArray::from(v.clone()))),
        Col::Bool(v) => (
            DataType::Boolean,
            false,
            Arc::new(BooleanArray::from(v.clone())),
        ),
        Col::OptDate(v) => (
            DataType::Date32,
            true,
            Arc::new(Date32Array::from(
                v.iter().map(|d| d.map(days)).collect::<Vec<_>>(),
            )),
        ),
        Col::OptInt(v) => (DataType::Int64, true, Arc::new(Int64Array::from(v.clone()))),
        Col::Int(v) => (
            DataType::Int64,
            false,
            Arc::new(Int64Array::from(v.clone())),
        ),
        Col::Double(v) => (
            DataType::Float64,
            false,
            Arc::new(Float64Array::from(v.clone())),
        ),
        Col::Date(v) => (
            DataType::Date32,
            false,
            Arc::new(Date32Array::from(
                v.iter().map(|d| days(d)).collect::<Vec<_>>(),
            )),
        ),
        Col::Ts(v) => (
            ts,
            false,
            Arc::new(
                TimestampMicrosecondArray::from(v.iter().map(|t| micros(t)).collect::<Vec<_>>())
                    .with_timezone("UTC"),
            ),
        ),
        Col::OptTs(v) => (
            ts,
            true,
            Arc::new(
                TimestampMicrosecondArray::from(
                    v.iter().map(|t| t.map(micros)).collect::<Vec<_>>(),
                )
                .with_timezone("UTC"),
            ),
        ),
        Col::Money(v) => (
            DataType::Decimal128(18, 2),
            true,
            Arc::new(
                Decimal128Array::from(v.iter().map(|m| m.map(|m| units(m, 2))).collect::<Vec<_>>())
                    .with_precision_and_scale(18, 2)
                    .unwrap(),
            ),
        ),
        Col::Rate(v) => (
            DataType::Decimal128(18, 6),
            false,
            Arc::new(
                Decimal128Array::from(v.iter().map(|m| Some(units(m, 6))).collect::<Vec<_>>())
                    .with_precision_and_scale(18, 6)
                    .unwrap(),
            ),
        ),
    }
}

/// Writes `<root>/<table>/part-00000.parquet` with the given columns, plus
/// `_fivetran_synced` set to the sample extraction moment.
pub fn write_table(root: &Path, table: &str, columns: Vec<(&str, Col)>) {
    let rows = columns
        .first()
        .map(|(_, c)| array(c).2.len())
        .unwrap_or_default();
    let mut fields = Vec::new();
    let mut arrays = Vec::new();
    for (name, col) in &columns {
        let (ty, nullable, a) = array(col);
        assert_eq!(
            a.len(),
            rows,
            "column {name} of {table} has {} rows, not {rows}",
            a.len()
        );
        fields.push(Field::new(*name, ty, nullable));
        arrays.push(a);
    }
    let synced = array(&Col::Ts(vec!["2026-01-02T06:00:00Z"; rows]));
    fields.push(Field::new("_fivetran_synced", synced.0, false));
    arrays.push(synced.2);
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap();
    let dir = root.join(table);
    std::fs::create_dir_all(&dir).unwrap();
    let file = std::fs::File::create(dir.join("part-00000.parquet")).unwrap();
    let mut w = ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

pub fn some(v: &[&'static str]) -> Vec<Option<&'static str>> {
    v.iter()
        .map(|s| if s.is_empty() { None } else { Some(*s) })
        .collect()
}

/// The CRM and finance extracts of the fixture company. Every table of the
/// contract that the sales and finance metrics read, a handful of rows each.
///
/// Accounts: A1 Globex (Technology, US), A2 Initech (Finance, DE), A3 Test
/// Corp, A4 Contest Ltd (a real name the test rule catches), A5 Acme
/// Internal (www.acme.io), A6 "Test Legacy Co" merged into A8, A8 merged
/// into A1 (a chain of two: judged on A1, so A6's deals are not test deals).
///
/// Rates (units per USD): EUR 0.800000 until 2025-03-01, then 0.900000;
/// GBP 0.750000; JPY 150.000000.
pub fn write_company(root: &Path) {
    write_accounts(root, "crm/account");
    write_table(
        root,
        "crm/user",
        vec![
            ("id", Col::Str(vec!["U1", "U2"])),
            ("name", Col::Str(vec!["Ann Seller", "Bob Closer"])),
            ("email", Col::Str(vec!["ann@acme.io", "bob@acme.io"])),
            ("department", Col::OptStr(vec![Some("Sales"), None])),
            ("is_active", Col::Bool(vec![true, true])),
        ],
    );
    write_opportunities(root, "crm/opportunity", "amount");
    write_table(
        root,
        "crm/opportunity_history",
        vec![
            ("id", Col::Str(vec!["H1"])),
            ("opportunity_id", Col::Str(vec!["D1"])),
            ("created_date", Col::Ts(vec!["2025-01-05T18:00:00Z"])),
            ("stage_name", Col::Str(vec!["Prospecting"])),
            ("amount", Col::Money(vec![Some("1000.00")])),
            ("close_date", Col::Date(vec!["2025-02-10"])),
            ("probability", Col::Double(vec![10.0])),
            ("forecast_category", Col::Str(vec!["Pipeline"])),
            ("is_deleted", Col::Bool(vec![false])),
        ],
    );
    write_table(
        root,
        "crm/dated_conversion_rate",
        vec![
            ("iso_code", Col::Str(vec!["EUR", "EUR", "GBP", "JPY"])),
            (
                "conversion_rate",
                Col::Rate(vec!["0.800000", "0.900000", "0.750000", "150.000000"]),
            ),
            (
                "start_date",
                Col::Date(vec!["2024-01-01", "2025-03-01", "2024-01-01", "2024-01-01"]),
            ),
            (
                "next_start_date",
                Col::Date(vec!["2025-03-01", "2027-01-01", "2027-01-01", "2027-01-01"]),
            ),
        ],
    );
    write_finance(root);
}

pub fn write_accounts(root: &Path, table: &str) {
    // A6 was merged into A8, later A8 into A1: both resolve to A1.
    write_accounts_merged(root, table, ["", "", "", "", "", "A8", "A1"]);
}

/// The fixture's accounts A1..A6, A8 with `master_record_id` as given (an
/// empty string is none).
pub fn write_accounts_merged(root: &Path, table: &str, master_record_id: [&'static str; 7]) {
    write_table(
        root,
        table,
        vec![
            (
                "id",
                Col::Str(vec!["A1", "A2", "A3", "A4", "A5", "A6", "A8"]),
            ),
            (
                "name",
                Col::Str(vec![
                    "Globex",
                    "Initech",
                    "Test Corp",
                    "Contest Ltd",
                    "Acme Internal",
                    "Test Legacy Co",
                    "Legacy Holdings",
                ]),
            ),
            ("type", Col::Str(vec!["Customer"; 7])),
            ("parent_id", Col::OptStr(vec![None; 7])),
            ("master_record_id", Col::OptStr(some(&master_record_id))),
            ("owner_id", Col::Str(vec!["U1"; 7])),
            (
                "industry",
                Col::OptStr(some(&[
                    "Technology",
                    "Finance",
                    "Technology",
                    "Retail",
                    "Technology",
                    "Retail",
                    "Retail",
                ])),
            ),
            (
                "billing_country",
                Col::OptStr(some(&["US", "DE", "US", "GB", "US", "US", "US"])),
            ),
            (
                "website",
                Col::OptStr(some(&[
                    "https://www.globex.com",
                    "initech.de",
                    "test.example.com",
                    "contest.co.uk",
                    "https://www.acme.io/x",
                    "",
                    "",
                ])),
            ),
            ("created_date", Col::Ts(vec!["2024-01-01T00:00:00Z"; 7])),
            (
                "is_deleted",
                Col::Bool(vec![false, false, false, false, false, true, true]),
            ),
        ],
    );
}

/// Deals D1..D15; `amount_column` lets a test rename the amount column.
pub fn write_opportunities(root: &Path, table: &str, amount_column: &'static str) {
    let ids = vec![
        "D1", "D2", "D3", "D4", "D5", "D6", "D7", "D8", "D9", "D10", "D11", "D12", "D13", "D14",
        "D15",
    ];
    let n = ids.len();
    write_table(
        root,
        table,
        vec![
            ("id", Col::Str(ids)),
            (
                "account_id",
                Col::Str(vec![
                    "A1", "A2", "A2", "A1", "A3", "A4", "A5", "A1", "A6", "A3", "A1", "A2", "A1",
                    "A1", "A2",
                ]),
            ),
            (
                "owner_id",
                Col::Str(vec![
                    "U1", "U2", "U2", "U1", "U1", "U1", "U1", "U1", "U2", "U1", "U2", "U2", "U1",
                    "U1", "U2",
                ]),
            ),
            ("name", Col::Str(vec!["deal"; n])),
            (
                "type",
                Col::Str(vec![
                    "New Business",
                    "Expansion",
                    "Renewal",
                    "New Business",
                    "New Business",
                    "New Business",
                    "New Business",
                    "New Business",
                    "New Business",
                    "New Business",
                    "Expansion",
                    "New Business",
                    "New Business",
                    "New Business",
                    "New Business",
                ]),
            ),
            (
                "stage_name",
                Col::Str(vec![
                    "Closed Won",
                    "Closed Won",
                    "Closed Won",
                    "Closed Won",
                    "Closed Won",
                    "Closed Won",
                    "Closed Won",
                    "Closed Won",
                    "Closed Won",
                    "Closed Won",
                    "Closed Won",
                    "Closed Lost",
                    "Closed Won",
                    "Closed Won",
                    "Proposal",
                ]),
            ),
            (
                "forecast_category",
                Col::Str(vec![
                    "Closed", "Closed", "Closed", "Closed", "Closed", "Closed", "Closed", "Closed",
                    "Closed", "Closed", "Closed", "Omitted", "Closed", "Closed", "Pipeline",
                ]),
            ),
            (
                "probability",
                Col::Double(vec![
                    100.0, 100.0, 100.0, 100.0, 100.0, 100.0, 100.0, 100.0, 100.0, 100.0, 100.0,
                    0.0, 100.0, 100.0, 50.0,
                ]),
            ),
            (
                amount_column,
                Col::Money(some(&[
                    "1000.00", "1000.00", "1000.00", "100.01", "500.00", "300.00", "700.00", "",
                    "200.00", "400.00", "0.00", "5000.00", "999.00", "15000.00", "800.00",
                ])),
            ),
            (
                "currency_iso_code",
                Col::Str(vec![
                    "USD", "EUR", "EUR", "GBP", "USD", "USD", "USD", "USD", "USD", "USD", "USD",
                    "USD", "USD", "JPY", "USD",
                ]),
            ),
            (
                "close_date",
                Col::Date(vec![
                    "2025-02-10",
                    "2025-02-28",
                    "2025-03-01",
                    "2025-04-30",
                    "2025-03-15",
                    "2025-03-16",
                    "2025-03-17",
                    "2025-04-01",
                    "2025-04-02",
                    "2025-03-20",
                    "2025-03-21",
                    "2025-03-10",
                    "2025-05-01",
                    "2025-01-31",
                    "2025-06-30",
                ]),
            ),
            (
                "created_date",
                Col::Ts(vec![
                    "2025-01-05T18:00:00Z",
                    "2025-01-10T12:00:00Z",
                    "2025-02-01T05:00:00Z",
                    "2025-04-01T00:00:00Z",
                    "2025-02-15T20:00:00Z",
                    "2025-02-16T20:00:00Z",
                    "2025-02-17T20:00:00Z",
                    "2025-03-01T20:00:00Z",
                    "2025-03-02T20:00:00Z",
                    "2025-02-18T20:00:00Z",
                    "2025-03-11T20:00:00Z",
                    "2025-02-19T20:00:00Z",
                    "2025-03-05T20:00:00Z",
                    "2024-12-01T20:00:00Z",
                    "2025-03-01T10:00:00Z",
                ]),
            ),
            (
                "is_closed",
                Col::Bool(vec![
                    true, true, true, true, true, true, true, true, true, true, true, true, true,
                    true, false,
                ]),
            ),
            (
                "is_won",
                Col::Bool(vec![
                    true, true, true, true, true, true, true, true, true, true, true, false, true,
                    true, false,
                ]),
            ),
            (
                "is_deleted",
                Col::Bool(vec![
                    false, false, false, false, false, false, false, false, false, true, false,
                    false, false, false, false,
                ]),
            ),
            ("lead_source", Col::OptStr(vec![Some("Web"); n])),
        ],
    );
}

/// Accounting periods Jan..May 2025 (ids 1..5) and revenue lines L1..L7.
pub fn write_finance(root: &Path) {
    write_table(
        root,
        "finance/accounting_period",
        vec![
            ("id", Col::Int(vec![1, 2, 3, 4, 5])),
            (
                "period_name",
                Col::Str(vec![
                    "Jan 2025", "Feb 2025", "Mar 2025", "Apr 2025", "May 2025",
                ]),
            ),
            (
                "start_date",
                Col::Date(vec![
                    "2025-01-01",
                    "2025-02-01",
                    "2025-03-01",
                    "2025-04-01",
                    "2025-05-01",
                ]),
            ),
            (
                "end_date",
                Col::Date(vec![
                    "2025-01-31",
                    "2025-02-28",
                    "2025-03-31",
                    "2025-04-30",
                    "2025-05-31",
                ]),
            ),
            ("fiscal_year", Col::Int(vec![2025, 2026, 2026, 2026, 2026])),
            ("fiscal_quarter", Col::Int(vec![4, 1, 1, 1, 2])),
            ("is_closed", Col::Bool(vec![true, true, true, true, false])),
        ],
    );
    write_table(
        root,
        "finance/revenue_plan_line",
        vec![
            (
                "id",
                Col::Str(vec!["L1", "L2", "L3", "L4", "L5", "L6", "L7"]),
            ),
            ("revenue_plan_id", Col::Str(vec!["P1"; 7])),
            ("accounting_period_id", Col::Int(vec![2, 3, 4, 4, 3, 1, 5])),
            (
                "amount",
                Col::Money(some(&[
                    "100.00", "200.50", "300.25", "50.00", "75.00", "1000.00", "999.99",
                ])),
            ),
            (
                "transaction_amount",
                Col::Money(some(&[
                    "100.00", "200.50", "300.25", "50.00", "75.00", "1000.00", "999.99",
                ])),
            ),
            ("transaction_currency", Col::Str(vec!["USD"; 7])),
            (
                "item_type",
                Col::Str(vec![
                    "Subscription",
                    "Subscription",
                    "Services",
                    "Subscription",
                    "Subscription",
                    "Subscription",
                    "Subscription",
                ]),
            ),
            (
                "source_opportunity_id",
                Col::OptStr(some(&["D1", "D1", "", "D1", "D1", "D1", "D1"])),
            ),
            ("source_subscription_id", Col::OptStr(vec![None; 7])),
            (
                "is_recognized",
                Col::Bool(vec![true, true, true, false, true, true, false]),
            ),
            (
                "is_deleted",
                Col::Bool(vec![false, false, false, false, true, false, false]),
            ),
        ],
    );
}

/// A copy of the repository's project (canon.yaml, signoffs.yaml, models/,
/// metrics/ with its definition tests) in a temporary folder, for tests
/// that change a definition.
pub fn copy_project(to: &Path) {
    std::fs::copy(repo().join("canon.yaml"), to.join("canon.yaml")).unwrap();
    std::fs::copy(repo().join("signoffs.yaml"), to.join("signoffs.yaml")).unwrap();
    for dir in ["models", "metrics"] {
        std::fs::create_dir_all(to.join(dir)).unwrap();
        copy_tree(&repo().join(dir), &to.join(dir));
    }
}

/// Replaces the first `from` in the file at `path` by `to` (which must be
/// there: a test that edits nothing proves nothing).
pub fn replace_in(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} has no `{from}`", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

/// Copies folder `from` to `to`, files and folders alike.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            copy_tree(&p, &to.join(p.file_name().unwrap()));
        } else {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}

/// (rows, value) of the exclusion `name` in a JSON result.
pub fn exclusion(result: &serde_json::Value, name: &str) -> (i64, String) {
    let x = result["exclusions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == name)
        .unwrap_or_else(|| panic!("no exclusion {name} in {result}"));
    (
        x["rows"].as_i64().unwrap(),
        x["value"].as_str().unwrap().to_string(),
    )
}

/// The distinct entities exclusion `name` removed, as the result reports it.
pub fn exclusion_entities(result: &serde_json::Value, name: &str) -> serde_json::Value {
    result["exclusions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == name)
        .unwrap_or_else(|| panic!("no exclusion {name} in {result}"))["entities"]
        .clone()
}

/// (value of `key`, value) of every row of a JSON result, sorted.
pub fn sorted_rows(result: &serde_json::Value, key: &str) -> Vec<(String, String)> {
    let mut got: Vec<(String, String)> = result["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row[key].as_str().unwrap_or("(none)").to_string(),
                row["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    got
}

/// [`canon`] with extra environment variables (e.g. a fault switch).
pub fn canon_with_env(project: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = command(project, args);
    c.env("CANON_NO_CACHE", "1");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("the canon binary runs")
}

/// A second part file (`part-00001.parquet`) of `table` beside the one
/// `write_table` wrote: rows a connector re-landing them would add.
pub fn add_part(root: &Path, table: &str, columns: Vec<(&str, Col)>) {
    let scratch = tempfile::tempdir().unwrap();
    write_table(scratch.path(), table, columns);
    std::fs::rename(
        scratch.path().join(table).join("part-00000.parquet"),
        root.join(table).join("part-00001.parquet"),
    )
    .unwrap();
}

/// Every file under `dir` with its bytes: what a refused write must leave
/// exactly as it was.
pub fn contents(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// `canon publish --out OUT --data DATA --only ONLY EXTRA…` in `project`.
pub fn publish_only(project: &Path, data: &Path, out: &Path, only: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "publish",
        "--out",
        out.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--only",
        only,
    ];
    args.extend_from_slice(extra);
    canon(project, &args)
}

/// The manifest of a publication `publish` wrote to `out`, checking its
/// exit code: written either way, exit 1 when any result in it is
/// blocked, 0 otherwise.
pub fn written_manifest(run: &Output, out: &Path) -> serde_json::Value {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let blocked = manifest.to_string().contains(r#""status":"blocked""#);
    assert_eq!(
        run.status.code(),
        Some(if blocked { 1 } else { 0 }),
        "{}",
        stderr(run)
    );
    manifest
}

/// The `system/table` of every source in a result's lineage, in its order.
pub fn lineage_tables(result: &serde_json::Value) -> Vec<String> {
    result["lineage"]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{}/{}",
                s["system"].as_str().unwrap(),
                s["table"].as_str().unwrap()
            )
        })
        .collect()
}

/// A request over `period` (its parsed period), at the snapshot day `as_of`
/// and by `grain` when given: what `canon query` builds from its flags.
pub fn request(
    period: canon::calendar::Period,
    as_of: Option<chrono::NaiveDate>,
    grain: Option<canon::calendar::Grain>,
) -> canon::request::Request {
    canon::request::Request {
        period,
        as_of,
        rates_as_of: None,
        grain,
        by: Vec::new(),
    }
}

/// Sets timestamp `column` of the rows of `table` whose `id` is named in
/// `dates` to the instant given (RFC 3339), rewriting its one file.
pub fn set_instants(root: &Path, table: &str, column: &str, dates: &[(&str, &str)]) {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::TimestampMicrosecondType;
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let path = root.join(table).join("part-00000.parquet");
    let file = std::fs::File::open(&path).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
    let schema = batches[0].schema();
    let at = schema.index_of(column).unwrap();
    let mut found = 0;
    let rewritten: Vec<RecordBatch> = batches
        .iter()
        .map(|b| {
            let ids = b.column_by_name("id").unwrap().as_string::<i32>();
            let old = b.column(at).as_primitive::<TimestampMicrosecondType>();
            let new: TimestampMicrosecondArray = (0..b.num_rows())
                .map(|i| match dates.iter().find(|(id, _)| *id == ids.value(i)) {
                    Some((_, t)) => {
                        found += 1;
                        Some(micros(t))
                    }
                    None => (!old.is_null(i)).then(|| old.value(i)),
                })
                .collect::<TimestampMicrosecondArray>()
                .with_timezone("UTC");
            let mut columns = b.columns().to_vec();
            columns[at] = Arc::new(new);
            RecordBatch::try_new(schema.clone(), columns).unwrap()
        })
        .collect();
    assert_eq!(
        found,
        dates.len(),
        "not every id of {dates:?} is in {table}"
    );
    let mut w = ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema, None).unwrap();
    for b in &rewritten {
        w.write(b).unwrap();
    }
    w.close().unwrap();
}
