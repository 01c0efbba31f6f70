//! No governed number counts a row twice silently: duplicated keys and
//! overlapping exclusive intervals block a result through the real binary,
//! name the table, the key and the files, and pass only by name
//! (`--allow GATE:TABLE`), which the result records.
//!
//! Fixture answer (worked in flow_metrics): bookings FY2026-Q1 = 3694.46 over
//! D1 USD 1000.00, D2 EUR 1000.00 / 0.8 (2025-02-28) = 1250.00, D3 EUR
//! 1000.00 / 0.9 (2025-03-01) = 1111.11, D4 GBP 100.01 / 0.75 = 133.35, D9
//! 200.00 and D11 0.00; universe 11 deals. Fixture rates: EUR 0.8 over
//! [2024-01-01, 2025-03-01), EUR 0.9 over [2025-03-01, 2027-01-01), GBP
//! 0.75, JPY 150, each over [2024-01-01, 2027-01-01).
//!
//! Each fault is a second part file (`part-00001.parquet`) beside the
//! fixture's `part-00000.parquet`, as a connector re-landing rows would add.

use std::path::Path;

use crate::common::*;

/// `canon publish --only ONLY --period FY2026-Q1 EXTRA…` of `data` into
/// `out`: the manifest it wrote (exit 1 asserted when it holds a block,
/// else 0).
fn published(data: &Path, out: &Path, only: &str, extra: &[&str]) -> serde_json::Value {
    let run = publish_only(
        &repo(),
        data,
        out,
        only,
        &[&["--period", "FY2026-Q1"], extra].concat(),
    );
    written_manifest(&run, out)
}

/// One EUR rate row.
fn eur_rate(root: &Path, rate: &'static str, from: &'static str, to: &'static str) {
    add_part(
        root,
        "crm/dated_conversion_rate",
        vec![
            ("iso_code", Col::Str(vec!["EUR"])),
            ("conversion_rate", Col::Rate(vec![rate])),
            ("start_date", Col::Date(vec![from])),
            ("next_start_date", Col::Date(vec![to])),
        ],
    );
}

/// The fixture's deal D2 again: EUR 1000.00 won 2025-02-28 on Initech.
fn duplicate_d2(root: &Path) {
    add_part(
        root,
        "crm/opportunity",
        vec![
            ("id", Col::Str(vec!["D2"])),
            ("account_id", Col::Str(vec!["A2"])),
            ("owner_id", Col::Str(vec!["U2"])),
            ("name", Col::Str(vec!["deal"])),
            ("type", Col::Str(vec!["Expansion"])),
            ("stage_name", Col::Str(vec!["Closed Won"])),
            ("forecast_category", Col::Str(vec!["Closed"])),
            ("probability", Col::Double(vec![100.0])),
            ("amount", Col::Money(some(&["1000.00"]))),
            ("currency_iso_code", Col::Str(vec!["EUR"])),
            ("close_date", Col::Date(vec!["2025-02-28"])),
            ("created_date", Col::Ts(vec!["2025-01-10T12:00:00Z"])),
            ("is_closed", Col::Bool(vec![true])),
            ("is_won", Col::Bool(vec![true])),
            ("is_deleted", Col::Bool(vec![false])),
            ("lead_source", Col::OptStr(vec![Some("Web")])),
        ],
    );
}

fn bookings(data: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "query",
        "bookings",
        "--period",
        "FY2026-Q1",
        "--data",
        data.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    canon(&repo(), &args)
}

fn check(data: &Path) -> (std::process::Output, serde_json::Value) {
    let out = canon(
        &repo(),
        &[
            "check",
            "--data",
            data.to_str().unwrap(),
            "--format",
            "json",
        ],
    );
    let report = serde_json::from_slice(&out.stdout).unwrap();
    (out, report)
}

/// The check `name` of `table` in a `canon check` report or a result's quality.
fn find<'a>(checks: &'a serde_json::Value, name: &str, table: &str) -> &'a serde_json::Value {
    checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == name && c["table"] == table)
        .unwrap_or_else(|| panic!("no {name} check of {table} in {checks}"))
}

// A duplicated EUR row: [2025-03-01, 2027-01-01) at 0.9 twice. D3 (EUR,
// 2025-03-01) would match both and be counted twice: 3694.46 + 1111.11 =
// 4805.57 over 12 universe rows. The gate blocks it, naming the table, the
// key, both intervals and both files; --allow computes the (wrong) number
// and records the override.
#[test]
fn a_duplicated_rate_row_blocks_bookings_until_allowed_by_name() {
    let data = fixture();
    eur_rate(data.path(), "0.900000", "2025-03-01", "2027-01-01");
    let out = bookings(data.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("`bookings` is blocked"), "{err}");
    assert!(err.contains("crm/dated_conversion_rate intervals"), "{err}");
    assert!(
        err.contains("currency=EUR: [2025-03-01, 2027-01-01) overlaps [2025-03-01, 2027-01-01)"),
        "{err}"
    );
    assert!(
        err.contains("crm/dated_conversion_rate/part-00000.parquet"),
        "{err}"
    );
    assert!(
        err.contains("crm/dated_conversion_rate/part-00001.parquet"),
        "{err}"
    );
    assert!(
        err.contains("--allow intervals:crm/dated_conversion_rate"),
        "{err}"
    );
    // Another gate's override does not let it through.
    let wrong = bookings(
        data.path(),
        &["--allow", "uniqueness:crm/dated_conversion_rate"],
    );
    assert_eq!(wrong.status.code(), Some(1), "{}", stderr(&wrong));
    let stale = bookings(data.path(), &["--allow-stale"]);
    assert_eq!(stale.status.code(), Some(1), "{}", stderr(&stale));

    let forced = query_json(
        &repo(),
        data.path(),
        &[
            "bookings",
            "--period",
            "FY2026-Q1",
            "--allow",
            "intervals:crm/dated_conversion_rate",
        ],
    );
    assert_eq!(forced["value"], "4805.57");
    assert_eq!(forced["tallies"][0]["universe_rows"], 12);
    assert_eq!(forced["quality_status"], "error");
    assert_eq!(
        forced["overrides"],
        serde_json::json!(["intervals:crm/dated_conversion_rate"])
    );
    let gate = find(&forced["quality"], "intervals", "crm/dated_conversion_rate");
    assert_eq!(gate["status"], "error");
    assert!(
        gate["detail"].as_str().unwrap().starts_with("1 overlap(s)"),
        "{gate}"
    );

    // canon check reports the same (the source's primary key too: the
    // (iso_code, start_date) pair is repeated).
    let (out, report) = check(data.path());
    assert_eq!(out.status.code(), Some(1));
    let gate = find(&report["tables"], "intervals", "crm/dated_conversion_rate");
    assert_eq!(gate["status"], "error");
    assert_eq!(
        gate["examples"][0].as_str().unwrap().split(", in ").next(),
        Some("currency=EUR: [2025-03-01, 2027-01-01) overlaps [2025-03-01, 2027-01-01)")
    );
    assert_eq!(
        find(
            &report["tables"],
            "primary_key",
            "crm/dated_conversion_rate"
        )["status"],
        "error"
    );
}

// An overlapping EUR interval: 1.0 over [2025-02-15, 2025-03-15). Sorted by
// start, EUR's rows are [2024-01-01, 2025-03-01) 0.8, [2025-02-15,
// 2025-03-15) 1.0, [2025-03-01, 2027-01-01) 0.9: each adjacent pair
// overlaps (2025-02-15 < 2025-03-01; 2025-03-01 < 2025-03-15), 2 overlaps.
// D2 (2025-02-28) would match 0.8 and 1.0, D3 (2025-03-01) 0.9 and 1.0:
// 3694.46 + 1000.00 / 1.0 + 1000.00 / 1.0 = 5694.46 over 13 universe rows.
// The source's primary key (iso_code, start_date) is unique: only the
// interval gate sees it.
#[test]
fn an_overlapping_rate_interval_blocks_bookings_and_fails_the_check() {
    let data = fixture();
    eur_rate(data.path(), "1.000000", "2025-02-15", "2025-03-15");
    let out = bookings(data.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("crm/dated_conversion_rate intervals (2 overlap(s)"),
        "{err}"
    );
    assert!(
        err.contains(
            "currency=EUR: [2024-01-01, 2025-03-01) overlaps [2025-02-15, 2025-03-15), in "
        ),
        "{err}"
    );
    assert!(
        err.contains("currency=EUR: [2025-02-15, 2025-03-15) overlaps [2025-03-01, 2027-01-01)"),
        "{err}"
    );
    assert!(err.contains("part-00001.parquet"), "{err}");

    let forced = query_json(
        &repo(),
        data.path(),
        &[
            "bookings",
            "--period",
            "FY2026-Q1",
            "--allow",
            "intervals:*",
        ],
    );
    assert_eq!(forced["value"], "5694.46");
    assert_eq!(forced["tallies"][0]["universe_rows"], 13);
    assert_eq!(forced["overrides"], serde_json::json!(["intervals:*"]));

    let (out, report) = check(data.path());
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        find(&report["tables"], "intervals", "crm/dated_conversion_rate")["status"],
        "error"
    );
    assert_eq!(
        find(
            &report["tables"],
            "primary_key",
            "crm/dated_conversion_rate"
        )["status"],
        "pass"
    );
}

// A duplicated opportunity row: D2 twice. Bookings would sum it twice:
// 3694.46 + 1250.00 = 4944.46 over 12 universe rows.
#[test]
fn a_duplicated_deal_blocks_bookings_naming_the_key_and_files() {
    let data = fixture();
    duplicate_d2(data.path());
    let out = bookings(data.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("crm/opportunity uniqueness (1 `deal_id` value(s)"),
        "{err}"
    );
    assert!(err.contains("rows `bookings` counts in FY2026-Q1"), "{err}");
    assert!(err.contains("deal_id=D2: 2 rows, in "), "{err}");
    assert!(err.contains("crm/opportunity/part-00000.parquet"), "{err}");
    assert!(err.contains("crm/opportunity/part-00001.parquet"), "{err}");
    assert!(err.contains("--allow uniqueness:crm/opportunity"), "{err}");

    let forced = query_json(
        &repo(),
        data.path(),
        &[
            "bookings",
            "--period",
            "FY2026-Q1",
            "--allow",
            "uniqueness:crm/opportunity",
        ],
    );
    assert_eq!(forced["value"], "4944.46");
    assert_eq!(forced["tallies"][0]["universe_rows"], 12);
    assert_eq!(
        forced["overrides"],
        serde_json::json!(["uniqueness:crm/opportunity"])
    );

    let (out, report) = check(data.path());
    assert_eq!(out.status.code(), Some(1));
    let gate = find(&report["tables"], "uniqueness", "crm/opportunity");
    assert_eq!(gate["status"], "error");
    assert!(
        gate["examples"][0]
            .as_str()
            .unwrap()
            .starts_with("deal_id=D2: 2 rows, in "),
        "{gate}"
    );
}

// The counted rows are the period's: D14 (closed 2025-01-31, FY2025)
// repeated does not touch FY2026-Q1's bookings (3694.46, pass), but blocks
// FY2025-Q4 = [2024-11-01, 2025-02-01), where D14 (JPY 15000.00 / 150 =
// 100.00) is the only won deal; and `canon check`, over all rows, reports it.
#[test]
fn only_the_counted_rows_gate_a_flow_metric() {
    let data = fixture();
    add_part(
        data.path(),
        "crm/opportunity",
        vec![
            ("id", Col::Str(vec!["D14"])),
            ("account_id", Col::Str(vec!["A1"])),
            ("owner_id", Col::Str(vec!["U1"])),
            ("name", Col::Str(vec!["deal"])),
            ("type", Col::Str(vec!["New Business"])),
            ("stage_name", Col::Str(vec!["Closed Won"])),
            ("forecast_category", Col::Str(vec!["Closed"])),
            ("probability", Col::Double(vec![100.0])),
            ("amount", Col::Money(some(&["15000.00"]))),
            ("currency_iso_code", Col::Str(vec!["JPY"])),
            ("close_date", Col::Date(vec!["2025-01-31"])),
            ("created_date", Col::Ts(vec!["2024-12-01T20:00:00Z"])),
            ("is_closed", Col::Bool(vec![true])),
            ("is_won", Col::Bool(vec![true])),
            ("is_deleted", Col::Bool(vec![false])),
            ("lead_source", Col::OptStr(vec![Some("Web")])),
        ],
    );
    let q1 = query_json(&repo(), data.path(), &["bookings", "--period", "FY2026-Q1"]);
    assert_eq!(q1["value"], "3694.46");
    assert_eq!(q1["quality_status"], "pass");
    let out = canon(
        &repo(),
        &[
            "query",
            "bookings",
            "--period",
            "FY2025-Q4",
            "--data",
            data.path().to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("deal_id=D14: 2 rows"),
        "{}",
        stderr(&out)
    );
    let forced = query_json(
        &repo(),
        data.path(),
        &[
            "bookings",
            "--period",
            "FY2025-Q4",
            "--allow",
            "uniqueness:crm/opportunity",
        ],
    );
    // 100.00 twice.
    assert_eq!(forced["value"], "200.00");
    let (out, _) = check(data.path());
    assert_eq!(out.status.code(), Some(1));
}

// A duplicated lookup: account A1 (Globex) twice. Every deal joined to A1
// would be counted twice: D1 1000.00, D4 133.35, D9 (A6 → A8 → A1) 200.00,
// D11 0.00 and D8 (missing amount, 0.00): 3694.46 + 1000.00 + 133.35 +
// 200.00 + 0.00 = 5027.81 over 11 + 5 = 16 universe rows.
#[test]
fn a_duplicated_account_blocks_every_metric_that_looks_it_up() {
    let data = fixture();
    add_accounts(
        data.path(),
        &[("A1", "Globex", "Technology", "https://globex.com")],
    );
    let out = bookings(data.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("crm/account uniqueness"), "{err}");
    assert!(err.contains("account_id=A1: 2 rows, in "), "{err}");
    assert!(err.contains("crm/account/part-00001.parquet"), "{err}");
    let forced = query_json(
        &repo(),
        data.path(),
        &[
            "bookings",
            "--period",
            "FY2026-Q1",
            "--allow",
            "uniqueness:crm/account",
        ],
    );
    assert_eq!(forced["value"], "5027.81");
    assert_eq!(forced["tallies"][0]["universe_rows"], 16);
}

#[test]
fn an_unknown_gate_or_table_is_a_bad_request() {
    let data = fixture();
    for bad in [
        "unique:crm/opportunity",
        "uniqueness:crm/deals",
        "uniqueness",
    ] {
        let out = bookings(data.path(), &["--allow", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
        assert!(stderr(&out).contains(bad), "{}", stderr(&out));
    }
}

// A gate's outcome is remembered under the content hashes of the files it
// read: a second query over the same files (another period, so the result
// itself is computed again) takes the account and rate gates from the cache
// folder and gates only its own counted rows. A remembered outcome edited
// by hand does not verify and is computed again; a changed rate table is
// gated afresh.
#[test]
fn gate_outcomes_are_remembered_by_the_files_they_read() {
    let data = fixture();
    let cache = tempfile::tempdir().unwrap();
    let d = data.path().to_str().unwrap();
    let query = |period: &str| {
        canon_cached(
            &repo(),
            cache.path(),
            &["query", "bookings", "--period", period, "--data", d, "-v"],
        )
    };
    // The tables whose gate outcome a run took from the cache folder (its
    // log, which may be coloured).
    let remembered = |out: &std::process::Output| -> Vec<&'static str> {
        let log = stderr(out);
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("gate outcome remembered"))
            .collect();
        [
            "crm/account",
            "crm/dated_conversion_rate",
            "crm/opportunity",
        ]
        .into_iter()
        .filter(|t| lines.iter().any(|l| l.contains(t)))
        .collect()
    };
    let first = query("FY2026-Q1");
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert!(remembered(&first).is_empty(), "{}", stderr(&first));
    // Three gates: deal (counted rows of FY2026-Q1), account, fx_rate.
    let gates = cache.path().join("gates");
    let stored: Vec<_> = std::fs::read_dir(&gates)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(stored.len(), 3, "{stored:?}");

    let second = query("2025-03");
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    assert_eq!(
        remembered(&second),
        ["crm/account", "crm/dated_conversion_rate"]
    );
    // Only the counted rows of 2025-03 were gated afresh.
    assert_eq!(std::fs::read_dir(&gates).unwrap().count(), 4);

    // An edited outcome (a failing gate turned into a pass, or here the
    // reverse) is not trusted: the gate is computed again and passes.
    let rate_gate = stored
        .iter()
        .find(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .contains("\"check\":\"intervals\"")
        })
        .unwrap();
    let text = std::fs::read_to_string(rate_gate).unwrap();
    let tampered = text.replace("\"status\":\"pass\"", "\"status\":\"error\"");
    assert_ne!(text, tampered);
    std::fs::write(rate_gate, tampered).unwrap();
    let third = query("2025-04");
    assert_eq!(third.status.code(), Some(0), "{}", stderr(&third));
    assert!(stderr(&third).contains("ignoring a gate outcome that does not verify"));
    assert_eq!(remembered(&third), ["crm/account"]);

    // A CHF rate lands in a new file: the rate table's files changed, so its
    // gate is computed again (and passes: CHF overlaps nothing); 2025-03's
    // counted deals and the accounts are still remembered.
    add_part(
        data.path(),
        "crm/dated_conversion_rate",
        vec![
            ("iso_code", Col::Str(vec!["CHF"])),
            ("conversion_rate", Col::Rate(vec!["0.900000"])),
            ("start_date", Col::Date(vec!["2024-01-01"])),
            ("next_start_date", Col::Date(vec!["2027-01-01"])),
        ],
    );
    let fourth = query("2025-03");
    assert_eq!(fourth.status.code(), Some(0), "{}", stderr(&fourth));
    assert_eq!(remembered(&fourth), ["crm/account", "crm/opportunity"]);
}

// Publishing: a blocked metric is in the manifest as blocked, with the key
// and files in its reason; let through by name, it is published with the
// override recorded beside its value (D2 twice: 4944.46, as above).
#[test]
fn the_manifest_records_a_block_or_the_override() {
    let data = fixture();
    duplicate_d2(data.path());
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("published");
    let publish =
        |extra: &[&str]| published(data.path(), &out, "bookings", extra)["metrics"][0].clone();
    let blocked = publish(&[]);
    assert_eq!(blocked["status"], "blocked");
    assert!(blocked.get("value").is_none());
    let reason = blocked["reason"].as_str().unwrap();
    assert!(reason.contains("deal_id=D2: 2 rows, in "), "{reason}");
    assert!(reason.contains("part-00001.parquet"), "{reason}");

    let allowed = publish(&["--allow", "uniqueness:crm/opportunity"]);
    assert_eq!(allowed["status"], "published");
    assert_eq!(allowed["value"], "4944.46");
    assert_eq!(allowed["quality_status"], "error");
    assert_eq!(
        allowed["overrides"],
        serde_json::json!(["uniqueness:crm/opportunity"])
    );
}

/// A copy of the project with `from` replaced by `to` in models/crm.yaml.
fn project_with_crm(from: &str, to: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_project(dir.path());
    let path = dir.path().join("models/crm.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{from}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    dir
}

// Line 162 of models/crm.yaml is fx_rate's
// `    intervals: {from: valid_from, to: valid_to, overlap: exclusive}`;
// the value of `from` starts at column 23.
#[test]
fn an_interval_field_must_be_a_field_of_the_entity() {
    let p = project_with_crm("{from: valid_from,", "{from: valid_since,");
    let out = canon(p.path(), &["validate", "--no-data"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("models/crm.yaml:162:23"), "{err}");
    assert!(
        err.contains("intervals.from `valid_since` is not a field of entity `fx_rate`"),
        "{err}"
    );
    let p = project_with_crm("overlap: exclusive}", "overlap: exclusiv}");
    let out = canon(p.path(), &["list"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("models/crm.yaml:162:"), "{err}");
    assert!(err.contains("exclusiv"), "{err}");
}

/// Billing for the snapshot gate, on top of the CRM fixture: billing
/// account B1 (crm A2 Initech, USD), its subscription S1 (latest version),
/// and two recurring USD charges: C1 100.00 a month over [2025-01-01, open),
/// C2 50.00 over [2024-01-01, 2024-07-01). `extra` adds charges in a second
/// file (a re-landed row).
/// Subscription S1 of billing account B1, active since 2024-01-01.
fn subscription_s1() -> Vec<(&'static str, Col)> {
    vec![
        ("id", Col::Str(vec!["S1"])),
        ("account_id", Col::Str(vec!["B1"])),
        ("name", Col::Str(vec!["SUB1"])),
        ("version", Col::Int(vec![1])),
        ("is_latest_version", Col::Bool(vec![true])),
        ("original_id", Col::Str(vec!["S1"])),
        ("status", Col::Str(vec!["Active"])),
        ("subscription_start_date", Col::Date(vec!["2024-01-01"])),
        ("subscription_end_date", Col::OptDate(vec![None])),
        ("term_start_date", Col::Date(vec!["2024-01-01"])),
        ("term_end_date", Col::OptDate(vec![None])),
        ("cancelled_date", Col::OptDate(vec![None])),
        ("crm_opportunity_id", Col::OptStr(vec![None])),
        ("is_deleted", Col::Bool(vec![false])),
    ]
}

fn write_small_billing(root: &Path) {
    write_table(
        root,
        "billing/account",
        vec![
            ("id", Col::Str(vec!["B1"])),
            ("account_number", Col::Str(vec!["N1"])),
            ("name", Col::Str(vec!["Initech"])),
            ("crm_id", Col::OptStr(some(&["A2"]))),
            ("currency", Col::Str(vec!["USD"])),
            ("status", Col::Str(vec!["Active"])),
            ("created_date", Col::Ts(vec!["2024-01-01T00:00:00Z"])),
            ("is_deleted", Col::Bool(vec![false])),
        ],
    );
    write_table(root, "billing/subscription", subscription_s1());
    write_charges(
        root,
        &[
            ("C1", "100.00", "2025-01-01", None),
            ("C2", "50.00", "2024-01-01", Some("2024-07-01")),
        ],
        false,
    );
}

/// Recurring USD charges of S1: (id, mrr, from, to), as the first part file
/// or (`again`) a second one.
fn write_charges(
    root: &Path,
    charges: &[(
        &'static str,
        &'static str,
        &'static str,
        Option<&'static str>,
    )],
    again: bool,
) {
    let n = charges.len();
    let columns = vec![
        ("id", Col::Str(charges.iter().map(|c| c.0).collect())),
        ("subscription_id", Col::Str(vec!["S1"; n])),
        ("name", Col::Str(vec!["Platform"; n])),
        ("charge_type", Col::Str(vec!["Recurring"; n])),
        (
            "effective_start_date",
            Col::Date(charges.iter().map(|c| c.2).collect()),
        ),
        (
            "effective_end_date",
            Col::OptDate(charges.iter().map(|c| c.3).collect()),
        ),
        (
            "mrr",
            Col::Money(charges.iter().map(|c| Some(c.1)).collect()),
        ),
        ("tcv", Col::Money(vec![Some("0.00"); n])),
        ("transaction_currency", Col::Str(vec!["USD"; n])),
        ("is_deleted", Col::Bool(vec![false; n])),
    ];
    if again {
        add_part(root, "billing/rate_plan_charge", columns);
    } else {
        write_table(root, "billing/rate_plan_charge", columns);
    }
}

// A snapshot counts the rows in force at its day. C2 (in force over
// [2024-01-01, 2024-07-01)) lands twice. ARR as of 2025-06-30 = C1 12 ×
// 100.00 = 1200.00: C2 is not in force, so not counted, and the result
// passes. As of 2024-03-31, C2 is the only charge in force (C1 starts in
// 2025): blocked; let through, 2 × 12 × 50.00 = 1200.00 instead of 600.00.
#[test]
fn a_snapshot_is_gated_on_the_rows_in_force_at_its_day() {
    let data = fixture();
    write_small_billing(data.path());
    let clean = query_json(&repo(), data.path(), &["arr", "--as-of", "2024-03-31"]);
    assert_eq!(clean["value"], "600.00");
    // Unique over every row, so over the rows in force too: the cheaper
    // judgement (the key column alone) stands for the counted one.
    let whole = find(&clean["quality"], "uniqueness", "billing/rate_plan_charge");
    assert!(
        whole["detail"].as_str().unwrap().contains("(all rows)"),
        "{whole}"
    );
    write_charges(
        data.path(),
        &[("C2", "50.00", "2024-01-01", Some("2024-07-01"))],
        true,
    );
    let later = query_json(&repo(), data.path(), &["arr", "--as-of", "2025-06-30"]);
    assert_eq!(later["value"], "1200.00");
    assert_eq!(later["quality_status"], "pass");
    let gate = find(&later["quality"], "uniqueness", "billing/rate_plan_charge");
    assert!(
        gate["detail"]
            .as_str()
            .unwrap()
            .contains("rows `arr` counts at 2025-06-30"),
        "{gate}"
    );

    let out = canon(
        &repo(),
        &[
            "query",
            "arr",
            "--as-of",
            "2024-03-31",
            "--data",
            data.path().to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("billing/rate_plan_charge uniqueness"), "{err}");
    assert!(err.contains("charge_id=C2: 2 rows, in "), "{err}");
    assert!(err.contains("rate_plan_charge/part-00001.parquet"), "{err}");
    let forced = query_json(
        &repo(),
        data.path(),
        &[
            "arr",
            "--as-of",
            "2024-03-31",
            "--allow",
            "uniqueness:billing/rate_plan_charge",
        ],
    );
    assert_eq!(forced["value"], "1200.00");
}

// A repeated lookup is blamed on the lookup: S1 twice would make C1 (in
// force at 2025-06-30, counted only through `subscription.is_latest_version`)
// two rows of arr. The subscription's gate fails; the charges' own gate,
// which joins no link for the metric's filter, passes. Let through,
// 2 × 12 × 100.00 = 2400.00 instead of 1200.00.
#[test]
fn a_row_repeated_by_a_join_is_blamed_on_the_lookup() {
    let data = fixture();
    write_small_billing(data.path());
    add_part(data.path(), "billing/subscription", subscription_s1());
    let out = canon(
        &repo(),
        &[
            "query",
            "arr",
            "--as-of",
            "2025-06-30",
            "--data",
            data.path().to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("billing/subscription uniqueness"), "{err}");
    assert!(err.contains("subscription_id=S1: 2 rows, in "), "{err}");
    assert!(
        err.contains("billing/subscription/part-00001.parquet"),
        "{err}"
    );
    assert!(
        !err.contains("billing/rate_plan_charge uniqueness"),
        "{err}"
    );
    // The repeated row is also a second latest version of S1 (the entity's
    // declared `unique: original_id`), a gate of its own name: the key's
    // override does not let it through.
    let key_only = canon(
        &repo(),
        &[
            "query",
            "arr",
            "--as-of",
            "2025-06-30",
            "--allow",
            "uniqueness:billing/subscription",
            "--data",
            data.path().to_str().unwrap(),
        ],
    );
    assert_eq!(key_only.status.code(), Some(1), "{}", stdout(&key_only));
    let err = stderr(&key_only);
    assert!(
        err.contains("billing/subscription declared_unique"),
        "{err}"
    );
    assert!(err.contains("original_id=S1: 2 rows"), "{err}");
    let forced = query_json(
        &repo(),
        data.path(),
        &[
            "arr",
            "--as-of",
            "2025-06-30",
            "--allow",
            "uniqueness:billing/subscription",
            "--allow",
            "declared_unique:billing/subscription",
        ],
    );
    // 1200.00 counted twice.
    assert_eq!(forced["value"], "2400.00");
    assert_eq!(
        forced["overrides"],
        serde_json::json!([
            "uniqueness:billing/subscription",
            "declared_unique:billing/subscription"
        ])
    );
    assert_eq!(
        find(&forced["quality"], "uniqueness", "billing/rate_plan_charge")["status"],
        "pass"
    );
}

// A flow metric windowed through a link: recognized_revenue's time is
// `period.start_date`, so its counted lines are joined to their accounting
// period. Period 3 (Mar 2025) twice repeats its lines L2 (200.50, counted)
// and L5 (75.00, deleted): the period's gate fails, and the lines' gate
// says each is held once by its table and repeated by a join. Let through:
// 600.75 + 200.50 = 801.25, deleted 2 rows / 150.00.
#[test]
fn a_row_repeated_by_a_join_to_window_it_is_blamed_on_the_lookup() {
    let data = fixture();
    add_part(
        data.path(),
        "finance/accounting_period",
        vec![
            ("id", Col::Int(vec![3])),
            ("period_name", Col::Str(vec!["Mar 2025"])),
            ("start_date", Col::Date(vec!["2025-03-01"])),
            ("end_date", Col::Date(vec!["2025-03-31"])),
            ("fiscal_year", Col::Int(vec![2026])),
            ("fiscal_quarter", Col::Int(vec![1])),
            ("is_closed", Col::Bool(vec![true])),
        ],
    );
    let out = canon(
        &repo(),
        &[
            "query",
            "recognized_revenue",
            "--period",
            "FY2026-Q1",
            "--data",
            data.path().to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("finance/accounting_period uniqueness"),
        "{err}"
    );
    assert!(err.contains("period_id=3: 2 rows, in "), "{err}");
    assert!(
        err.contains("finance/revenue_plan_line uniqueness"),
        "{err}"
    );
    assert!(err.contains("line_id=L2: 2 rows, in "), "{err}");
    assert!(
        err.contains("(1 in the table: the others are repeated by a join"),
        "{err}"
    );
    let forced = query_json(
        &repo(),
        data.path(),
        &[
            "recognized_revenue",
            "--period",
            "FY2026-Q1",
            "--allow",
            "uniqueness:*",
        ],
    );
    assert_eq!(forced["value"], "801.25");
    assert_eq!(exclusion(&forced, "deleted"), (2, "150.00".into()));
}

// A reconciliation's governed sides are gated like any query: with D2
// twice its bookings side is blocked, so is the bridge. Let through by
// name, bookings is 4944.46 but the bridge joins D2's rows again (its own
// B would differ from the governed one), so it stays blocked and says why,
// rather than failing as canon's bug. (A bridge that does tie out under an
// override records it in the manifest, from its sides.)
#[test]
fn a_reconciliation_over_repeated_rows_stays_blocked_and_says_why() {
    let data = fixture();
    write_small_billing(data.path());
    duplicate_d2(data.path());
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("published");
    let publish = |extra: &[&str]| {
        published(data.path(), &out, "bookings_to_revenue", extra)["reconciliations"][0].clone()
    };
    let blocked = publish(&[]);
    assert_eq!(blocked["status"], "blocked", "{blocked}");
    assert!(
        blocked["reason"]
            .as_str()
            .unwrap()
            .contains("deal_id=D2: 2 rows"),
        "{blocked}"
    );
    let allowed = publish(&["--allow", "uniqueness:crm/opportunity"]);
    assert_eq!(allowed["status"], "blocked", "{allowed}");
    let reason = allowed["reason"].as_str().unwrap();
    assert!(
        reason.contains("cannot be bridged under the override(s) uniqueness:crm/opportunity"),
        "{reason}"
    );
    assert!(reason.contains("sides (4944.46, 600.75)"), "{reason}");
}

/// Account rows (id, name, industry, website) in a second file, as a connector
/// re-landing them would add.
type AccountRow = (&'static str, &'static str, &'static str, &'static str);

fn add_accounts(root: &Path, rows: &[AccountRow]) {
    let n = rows.len();
    add_part(
        root,
        "crm/account",
        vec![
            ("id", Col::Str(rows.iter().map(|r| r.0).collect())),
            ("name", Col::Str(rows.iter().map(|r| r.1).collect())),
            ("type", Col::Str(vec!["Customer"; n])),
            ("parent_id", Col::OptStr(vec![None; n])),
            ("master_record_id", Col::OptStr(vec![None; n])),
            ("owner_id", Col::Str(vec!["U1"; n])),
            (
                "industry",
                Col::OptStr(rows.iter().map(|r| Some(r.2)).collect()),
            ),
            ("billing_country", Col::OptStr(vec![Some("US"); n])),
            (
                "website",
                Col::OptStr(rows.iter().map(|r| Some(r.3)).collect()),
            ),
            ("created_date", Col::Ts(vec!["2024-01-01T00:00:00Z"; n])),
            ("is_deleted", Col::Bool(vec![false; n])),
        ],
    );
}

// A1 again with another industry: by industry, D1's copies land in two
// groups (Technology and Finance), so no group repeats a key; a check per
// group would miss it. Blocked, naming the account; let through,
// the total is the repeated one of a_duplicated_account_blocks_every_metric_
// that_looks_it_up: 3694.46 + 1000.00 + 133.35 + 200.00 + 0.00 = 5027.81.
#[test]
fn a_key_repeated_across_slices_is_seen() {
    let data = fixture();
    add_accounts(
        data.path(),
        &[("A1", "Globex", "Finance", "https://example.org")],
    );
    let out = bookings(data.path(), &["--by", "industry"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("crm/account uniqueness"), "{err}");
    assert!(err.contains("account_id=A1: 2 rows, in "), "{err}");
    let forced = query_json(
        &repo(),
        data.path(),
        &[
            "bookings",
            "--period",
            "FY2026-Q1",
            "--by",
            "industry",
            "--allow",
            "uniqueness:crm/account",
        ],
    );
    assert_eq!(forced["value"], "5027.81");
}

// The bridge's two governed sides (bookings, recognized revenue) both look
// up the CRM accounts; the gate runs once per run and both sides read its
// outcome. A repeated account blocks the reconciliation, named by table and
// key, as it blocks bookings alone; let through by name, the sides disagree
// with the bridge (bookings over the repeated A1 is 5027.81, worked in
// a_key_repeated_across_slices_is_seen; recognized revenue 600.75 as in
// a_reconciliation_over_repeated_rows_stays_blocked_and_says_why), and the
// override both sides used is named once.
#[test]
fn a_gate_both_sides_of_a_bridge_share_blocks_the_bridge() {
    let data = fixture();
    write_small_billing(data.path());
    add_accounts(
        data.path(),
        &[("A1", "Globex", "Technology", "https://globex.com")],
    );
    let out = reconcile(&repo(), data.path(), "FY2026-Q1", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("crm/account uniqueness"), "{err}");
    assert!(err.contains("account_id=A1: 2 rows, in "), "{err}");
    let out = reconcile(
        &repo(),
        data.path(),
        "FY2026-Q1",
        &["--allow", "uniqueness:crm/account"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("cannot be bridged under the override(s) uniqueness:crm/account: "),
        "{err}"
    );
    assert!(err.contains("governed sides (5027.81, 600.75)"), "{err}");
}

// Two entities over one source with the same fields have the same rows
// (one plan), not the same key: `account` (keyed by account_id, unique) and
// `account_by_owner` (the same fields keyed by owner_id, which all seven
// fixture accounts share: U1), looked up by a link from sales_rep. Each
// keeps its own outcome, computed (first run) and remembered (second run,
// same cache folder): account_id passes, owner_id is held by 7 rows.
#[test]
fn two_entities_over_one_source_keep_their_own_gate_outcomes() {
    let account = "  - name: account\n    description: A company the business sells to; merged-away records resolve to their survivor.\n    source: account\n    key: account_id\n    merged_into: merged_into_id\n";
    let crm = std::fs::read_to_string(repo().join("models/crm.yaml")).unwrap();
    let start = crm.find(account).expect("the account entity");
    let end = start + account.len() + crm[start + account.len()..].find("  - name: ").unwrap();
    let fields = &crm[start + account.len()..end];
    let by_owner = format!(
        "  - name: account_by_owner\n    description: Accounts by owner.\n    source: account\n    key: owner_id\n{fields}"
    );
    let rep = "  - name: sales_rep\n    description: A person who owns deals and accounts.\n    source: user\n    key: user_id\n    fields:\n      - {name: user_id, expr: id}\n      - {name: name}\n      - {name: email}\n      - {name: department}\n      - {name: is_active}\n";
    let project = project_with_crm(
        rep,
        &format!(
            "{by_owner}{rep}    links:\n      - {{name: owned_accounts, entity: account_by_owner, field: user_id}}\n"
        ),
    );
    let data = fixture();
    let cache = tempfile::tempdir().unwrap();
    let d = data.path().to_str().unwrap();
    for run in ["computed", "remembered"] {
        let out = canon_cached(
            project.path(),
            cache.path(),
            &["check", "--data", d, "--format", "json"],
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{run}: {e}: {}", stderr(&out)));
        let key = |column: &str| {
            report["tables"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| {
                    c["check"] == "uniqueness"
                        && c["table"] == "crm/account"
                        && c["column"] == column
                })
                .unwrap_or_else(|| panic!("{run}: no uniqueness of {column} in {report}"))
                .clone()
        };
        assert_eq!(key("account_id")["status"], "pass", "{run}");
        let owner = key("owner_id");
        assert_eq!(owner["status"], "error", "{run}: {owner}");
        assert!(
            owner["detail"]
                .as_str()
                .unwrap()
                .contains("owner_id=U1: 7 rows"),
            "{run}: {owner}"
        );
    }
}

// A snapshot whose counted rows come through a join is judged over the
// joined rows, never over its entity's own rows alone: a join can repeat a
// row whose key is unique in its table. Here recurring_charge is given a
// field read through its subscription link, and S1 lands twice. Allowing
// the repeated subscription (--allow uniqueness:billing/subscription) lets
// that lookup through, but C1, joined to both S1 rows, is counted twice
// (ARR 2 × 12 × 100.00 = 2400.00 instead of 1200.00): the counted gate on
// the charges still blocks it. (Keys unique over all charges, C1 and C2,
// proved nothing about the joined rows.)
#[test]
fn a_snapshot_counted_through_a_join_is_judged_on_the_joined_rows() {
    let charge_fields = "      - {name: charge_id, expr: id}\n";
    let project = tempfile::tempdir().unwrap();
    copy_project(project.path());
    let billing = project.path().join("models/billing.yaml");
    let text = std::fs::read_to_string(&billing).unwrap();
    assert!(text.contains(charge_fields));
    std::fs::write(
        &billing,
        text.replacen(
            charge_fields,
            &format!(
                "{charge_fields}      - {{name: subscription_status, expr: subscription.status}}\n"
            ),
            1,
        ),
    )
    .unwrap();
    let data = fixture();
    write_small_billing(data.path());
    add_part(data.path(), "billing/subscription", subscription_s1());
    let d = data.path().to_str().unwrap();
    let out = canon(
        project.path(),
        &[
            "query",
            "arr",
            "--as-of",
            "2025-06-30",
            "--data",
            d,
            "--allow",
            "uniqueness:billing/subscription",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("billing/rate_plan_charge uniqueness"), "{err}");
    assert!(err.contains("charge_id=C1: 2 rows"), "{err}");
}

/// The benchmark harness's switch that skips the row-count gates exists
/// only in a `bench-switches` build: this binary (the tests' plain build)
/// still blocks a duplicated deal with the variable set, and publishes
/// nothing past it.
#[test]
fn the_bench_switch_does_nothing_in_a_plain_build() {
    let data = tempfile::tempdir().unwrap();
    write_company(data.path());
    duplicate_d2(data.path());
    let out = command(
        &repo(),
        &["query", "bookings", "--period", "FY2026-Q1", "--no-cache"],
    )
    .arg("--data")
    .arg(data.path())
    .env("CANON_BENCH_SKIP_ROW_GATES", "1")
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("crm/opportunity") && stderr(&out).contains("id=D2"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("skipped"), "{}", stderr(&out));
}
