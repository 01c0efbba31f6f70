//! Declared value domains (`accepted_values` on source columns) through the
//! real binary: a value outside the domain is an error in `canon check` and
//! blocks the metrics that read the column, unless allowed by name.

use crate::common::*;

type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

/// `crm/opportunity_history` as one part file of `rows`:
/// (id, deal, created_date, stage_name, amount, forecast_category).
fn history_file(rows: &[Row]) -> std::path::PathBuf {
    let dir = tempfile::tempdir().unwrap().keep();
    let n = rows.len();
    write_table(
        &dir,
        "h",
        vec![
            ("id", Col::Str(rows.iter().map(|r| r.0).collect())),
            (
                "opportunity_id",
                Col::Str(rows.iter().map(|r| r.1).collect()),
            ),
            ("created_date", Col::Ts(rows.iter().map(|r| r.2).collect())),
            ("stage_name", Col::Str(rows.iter().map(|r| r.3).collect())),
            (
                "amount",
                Col::Money(rows.iter().map(|r| Some(r.4)).collect()),
            ),
            ("close_date", Col::Date(vec!["2025-09-30"; n])),
            ("probability", Col::Double(vec![10.0; n])),
            (
                "forecast_category",
                Col::Str(rows.iter().map(|r| r.5).collect()),
            ),
            ("is_deleted", Col::Bool(vec![false; n])),
        ],
    );
    dir.join("h/part-00000.parquet")
}

/// The fixture company whose opportunity history is two part files:
/// part-00000 holds D1's valid row (Prospecting, 1000.00 USD, Pipeline);
/// part-00001 holds a stage the contract does not know, "Closed - Lost", on
/// D8 (500.00) and D13 (999.00), and D13's forecast category "Upside"
/// (not one of Pipeline, BestCase, Commit, Closed, Omitted). D1, D8 and D13
/// are USD deals of account A1 (Globex), created before 2025-06-30.
fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_company(dir.path());
    let history = dir.path().join("crm/opportunity_history");
    std::fs::remove_dir_all(&history).unwrap();
    std::fs::create_dir_all(&history).unwrap();
    let good = history_file(&[(
        "H1",
        "D1",
        "2025-01-05T18:00:00Z",
        "Prospecting",
        "1000.00",
        "Pipeline",
    )]);
    let bad = history_file(&[
        (
            "H8",
            "D8",
            "2025-03-01T20:00:00Z",
            "Closed - Lost",
            "500.00",
            "Closed",
        ),
        (
            "H13",
            "D13",
            "2025-03-05T20:00:00Z",
            "Closed - Lost",
            "999.00",
            "Upside",
        ),
    ]);
    std::fs::copy(good, history.join("part-00000.parquet")).unwrap();
    std::fs::copy(bad, history.join("part-00001.parquet")).unwrap();
    dir
}

// open_pipeline reads the history's stage_name (its filter: the stage is not
// Closed Won / Closed Lost) and forecast_category (the omitted_forecast
// exclusion). "Closed - Lost" is neither closed stage, so D8 and D13 would be
// counted as open: 1000.00 + 500.00 + 999.00 = 2499.00 instead of 1000.00.
// The query is blocked: exit 1, naming the table, both columns, the values
// with their row counts, the file that holds them and the override.
#[test]
fn a_stage_outside_the_domain_blocks_open_pipeline() {
    let data = fixture();
    let d = data.path().to_str().unwrap();
    let out = canon(
        &repo(),
        &[
            "query",
            "open_pipeline",
            "--as-of",
            "2025-06-30",
            "--data",
            d,
        ],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("`open_pipeline` is blocked"), "{err}");
    assert!(
        err.contains(
            "crm/opportunity_history accepted_values (column `stage_name`: 2 rows hold 1 value(s) outside the 6 accepted: \"Closed - Lost\" (2 rows); in "
        ),
        "{err}"
    );
    assert!(
        err.contains(
            "column `forecast_category`: 1 row holds 1 value(s) outside the 5 accepted: \"Upside\" (1 row)"
        ),
        "{err}"
    );
    // The offending rows are all in the second part file, none in the first.
    assert!(
        err.contains("crm/opportunity_history/part-00001.parquet (2 rows)"),
        "{err}"
    );
    assert!(!err.contains("part-00000.parquet"), "{err}");
    assert!(
        err.contains("--allow accepted_values:crm/opportunity_history"),
        "{err}"
    );
    // --allow-stale does not wave a domain violation through.
    let out = canon(
        &repo(),
        &[
            "query",
            "open_pipeline",
            "--as-of",
            "2025-06-30",
            "--data",
            d,
            "--allow-stale",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

// Allowed by name, the metric is computed over the values as they are (the
// inflated 2499.00 of the comment above: D1 1000.00 + D8 500.00 + D13 999.00,
// all USD, none excluded: "Upside" is not Omitted) and the result records
// the override and its checks at error.
#[test]
fn allowing_the_gate_by_name_computes_and_records_it() {
    let data = fixture();
    let r = query_json(
        &repo(),
        data.path(),
        &[
            "open_pipeline",
            "--as-of",
            "2025-06-30",
            "--allow",
            "accepted_values:crm/opportunity_history",
        ],
    );
    assert_eq!(r["value"], "2499.00");
    assert_eq!(r["quality_status"], "error");
    assert_eq!(
        r["overrides"],
        serde_json::json!(["accepted_values:crm/opportunity_history"])
    );
    let checks: Vec<&serde_json::Value> = r["quality"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["check"] == "accepted_values")
        .collect();
    let stage = checks
        .iter()
        .find(|c| c["table"] == "crm/opportunity_history" && c["column"] == "stage_name")
        .unwrap();
    assert_eq!(stage["status"], "error", "{checks:?}");
    assert_eq!(
        stage["examples"],
        serde_json::json!(["\"Closed - Lost\": 2 row(s)"])
    );
    // crm/opportunity's declared columns that open_pipeline does not read
    // (stage_name, forecast_category of the current deal) are not judged.
    assert!(
        !checks
            .iter()
            .any(|c| c["table"] == "crm/opportunity" && c["column"] == "stage_name"),
        "{checks:?}"
    );
}

// bookings does not read the history: the bad stage cannot move it, and it
// is computed as before (3694.46, tests/quality.rs).
#[test]
fn a_metric_that_does_not_read_the_column_is_not_blocked() {
    let data = fixture();
    let r = query_json(&repo(), data.path(), &["bookings", "--period", "FY2026-Q1"]);
    assert_eq!(r["value"], "3694.46");
    assert_eq!(r["quality_status"], "pass");
}

// `canon check` reports each declared column: the two violations at error
// with their values and counts, the valid columns of the same table and of
// crm/opportunity as passes; the check exits 1.
#[test]
fn check_reports_values_outside_the_domain() {
    let data = fixture();
    let out = canon(
        &repo(),
        &[
            "check",
            "--data",
            data.path().to_str().unwrap(),
            "--format",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let find = |table: &str, column: &str| {
        report["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| {
                c["check"] == "accepted_values" && c["table"] == table && c["column"] == column
            })
            .unwrap_or_else(|| panic!("no accepted_values check of {table} {column}"))
            .clone()
    };
    let stage = find("crm/opportunity_history", "stage_name");
    assert_eq!(stage["status"], "error");
    assert_eq!(
        stage["examples"],
        serde_json::json!(["\"Closed - Lost\": 2 row(s)"])
    );
    let forecast = find("crm/opportunity_history", "forecast_category");
    assert_eq!(forecast["status"], "error");
    assert_eq!(
        forecast["examples"],
        serde_json::json!(["\"Upside\": 1 row(s)"])
    );
    // The fixture's deals hold only contract stages (Closed Won, Closed
    // Lost, Proposal) and types (New Business, Expansion, Renewal).
    for column in ["type", "stage_name", "forecast_category"] {
        assert_eq!(find("crm/opportunity", column)["status"], "pass");
    }
    // The table form names it too.
    let out = canon(&repo(), &["check", "--data", data.path().to_str().unwrap()]);
    let text = stdout(&out);
    assert!(
        text.contains("error  crm/opportunity_history            accepted_values [stage_name] column `stage_name`: 2 rows hold 1 value(s)"),
        "{text}"
    );
    assert!(text.contains("\"Closed - Lost\": 2 row(s)"), "{text}");
}

// Bad declarations are located: an empty list, a value listed twice, a list
// on a column that is not text. Lines of models/crm.yaml: 47 is opportunity's
// `type`, 49 its `forecast_category`, 50 its `probability`.
#[test]
fn bad_declarations_are_located() {
    let p = tempfile::tempdir().unwrap();
    copy_project(p.path());
    let crm = p.path().join("models/crm.yaml");
    let text = std::fs::read_to_string(&crm).unwrap();
    let text = text
        .replacen(
            "accepted_values: [New Business, Expansion, Renewal]",
            "accepted_values: []",
            1,
        )
        .replacen(
            "accepted_values: [Pipeline, BestCase, Commit, Closed, Omitted]",
            "accepted_values: [Pipeline, BestCase, Commit, Closed, Pipeline]",
            1,
        )
        .replacen(
            "{name: probability, type: double,",
            "{name: probability, type: double, accepted_values: [\"0\", \"100\"],",
            1,
        );
    std::fs::write(&crm, text).unwrap();
    let out = canon(p.path(), &["validate", "--no-data"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for needle in [
        "models/crm.yaml:47:",
        "`accepted_values` of column `type` is empty",
        "models/crm.yaml:49:",
        "`Pipeline` is listed twice in the accepted values of column `forecast_category`",
        "models/crm.yaml:50:",
        "`accepted_values` on column `probability` of type double",
    ] {
        assert!(err.contains(needle), "`{needle}` not in: {err}");
    }
}

// An --allow that names no gate or no table is a bad request (exit 2): an
// override that silently matched nothing would be worse than none.
#[test]
fn an_allow_naming_nothing_is_refused() {
    let data = fixture();
    let d = data.path().to_str().unwrap();
    for (arg, needle) in [
        (
            "accepted_values:crm/opportunty",
            "unknown table `crm/opportunty`",
        ),
        ("domain:crm/opportunity", "unknown gate `domain`"),
        ("crm/opportunity", "expected GATE:TABLE"),
    ] {
        let out = canon(
            &repo(),
            &[
                "query",
                "bookings",
                "--period",
                "FY2026-Q1",
                "--data",
                d,
                "--allow",
                arg,
            ],
        );
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{}", stderr(&out));
    }
}

// YAML reads an unquoted `null`, `5`, `true` or `1.0` as something other
// than text; taken as the text "null", "5", … they would let those strings
// through. Each is a located error (line, and the column where the entry
// starts); quoted, the same texts are accepted values like any other.
#[test]
fn values_that_are_not_text_are_located() {
    let p = tempfile::tempdir().unwrap();
    copy_project(p.path());
    let billing = p.path().join("models/billing.yaml");
    let text = std::fs::read_to_string(&billing).unwrap();
    let text = text.replacen(
        "accepted_values: [Active, Cancelled]}",
        "accepted_values: [Active, null, Cancelled]}",
        1,
    );
    std::fs::write(&billing, &text).unwrap();
    let (line, col) = text
        .lines()
        .enumerate()
        .find_map(|(i, l)| Some((i + 1, l.find("[Active, null")? + "[Active, ".len() + 1)))
        .unwrap();
    let cs = p.path().join("models/cs.yaml");
    let cs_text = std::fs::read_to_string(&cs).unwrap().replacen(
        "[Green, Yellow, Red]",
        "[Green, 5, true, 1.0, \"7\", \"null\"]",
        1,
    );
    std::fs::write(&cs, &cs_text).unwrap();
    let (cs_line, cs_at) = cs_text
        .lines()
        .enumerate()
        .find_map(|(i, l)| Some((i + 1, l.find("[Green, 5")? + 1)))
        .unwrap();
    let out = canon(p.path(), &["validate", "--no-data"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains(&format!(
            "models/billing.yaml:{line}:{col}: `null` in the accepted values of column `status`: a missing value is never a violation of the list"
        )),
        "{err}"
    );
    // `[Green, 5, true, 1.0, …`: 5 starts 8 characters after the bracket,
    // true 11, 1.0 17 (columns are 1-based: bracket index + 1 + offset).
    for (offset, kind, read) in [
        (8, "a number", "5"),
        (11, "a boolean", "true"),
        (17, "a number", "1"),
    ] {
        let needle = format!(
            "models/cs.yaml:{cs_line}:{}: an entry of the accepted values of column `status` is {kind} to YAML (read as {read}), not text: write it in quotes",
            cs_at + offset
        );
        assert!(err.contains(&needle), "`{needle}` not in: {err}");
    }
    // Four problems: the quoted "7" and "null" are text.
    assert!(err.contains("error: 4 problem(s)"), "{err}");
}
