//! A snapshot series has two plans that must give the same governed result
//! (`canon::compile::planner::SeriesPlan`): pairing every row with every
//! instant it holds at, and the default, which converts each row once per
//! rate run and expands only the distinct runs. Each case computes both, in
//! process on one engine, and compares values, rows, slices, exclusion
//! tallies and universe tallies; a hand-worked value of each fixture case
//! makes sure the comparison is not of two empty answers. The binary's own
//! series tests (series.rs) run the default plan against hand-worked days.

use std::path::Path;
use std::sync::Arc;

use canon::catalog::Catalog;
use canon::compile::planner::SeriesPlan;
use canon::run::{DataSource, Engine};

use crate::common::*;

/// What a governed result says, without how or when it was computed.
fn answer(r: &canon::result::GovernedResult) -> serde_json::Value {
    let v = serde_json::to_value(r).unwrap();
    serde_json::json!({
        "value": v["value"],
        "rows": v["rows"],
        "exclusions": v["exclusions"],
        "tallies": v["tallies"],
    })
}

/// `metric` over [from, to) by `grain` (and `by`, and constant rates when
/// `rates_as_of`), computed with `plan` on `data`: the answer or the error.
fn computed(
    data: &Path,
    plan: SeriesPlan,
    metric: &str,
    (from, to, grain): (&str, &str, &str),
    by: &[&str],
    rates_as_of: Option<&str>,
    allow_rates: bool,
) -> Result<serde_json::Value, String> {
    let catalog = Arc::new(Catalog::load(&repo()).unwrap());
    let mut engine = Engine::new(catalog.clone(), DataSource::Folder(data.to_path_buf())).unwrap();
    engine.set_series_plan(plan);
    if allow_rates {
        engine.allow = canon::allow::Allow::parse(
            &["intervals:crm/dated_conversion_rate".to_string()],
            false,
            ["crm/dated_conversion_rate"],
        )
        .unwrap();
    }
    let period = catalog
        .calendar
        .parse_period(&format!("{from}..{to}"))
        .unwrap();
    let mut request = request(
        period,
        None,
        Some(canon::calendar::Grain::parse(grain).unwrap()),
    );
    request.by = by.iter().map(|s| s.to_string()).collect();
    request.rates_as_of = rates_as_of.map(|d| d.parse().unwrap());
    let resolved = catalog.resolve(request).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // The types of the planned groups' columns (read by position), which
    // the two plans must also share.
    let types: Vec<String> = rt
        .block_on(canon::compile::plans(&engine, metric, &resolved))
        .unwrap()
        .iter()
        .flat_map(|(title, frame)| {
            frame
                .schema()
                .fields()
                .iter()
                .map(move |f| format!("{title}.{}: {}", f.name(), f.data_type()))
        })
        .collect();
    rt.block_on(canon::query::run_metric(&engine, metric, &resolved))
        .map(|r| {
            let mut a = answer(&r);
            a["types"] = types.into();
            a
        })
        .map_err(|e| e.to_string())
}

/// Both plans' answers to one request, checked equal; the default plan's.
fn both(
    data: &Path,
    metric: &str,
    span: (&str, &str, &str),
    by: &[&str],
    rates_as_of: Option<&str>,
) -> Result<serde_json::Value, String> {
    both_allowing(data, metric, span, by, rates_as_of, false)
}

/// As `both`, computed despite overlapping rates (`--allow
/// intervals:crm/dated_conversion_rate`) when `allow_rates`.
fn both_allowing(
    data: &Path,
    metric: &str,
    span: (&str, &str, &str),
    by: &[&str],
    rates_as_of: Option<&str>,
    allow_rates: bool,
) -> Result<serde_json::Value, String> {
    let ranges = computed(
        data,
        SeriesPlan::Ranges,
        metric,
        span,
        by,
        rates_as_of,
        allow_rates,
    );
    let expand = computed(
        data,
        SeriesPlan::Expand,
        metric,
        span,
        by,
        rates_as_of,
        allow_rates,
    );
    assert_eq!(
        ranges, expand,
        "{metric} {span:?} by {by:?}: the two plans differ"
    );
    ranges
}

/// The value of bucket `period` (no slices).
fn at(r: &serde_json::Value, period: &str) -> String {
    r["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["period"] == period)
        .unwrap_or_else(|| panic!("no row {period} in {r}"))["value"]
        .as_str()
        .unwrap()
        .to_string()
}

// The fixture of series.rs (EUR 0.8 until 2025-03-01, then 0.9; GBP 0.75):
//   open_pipeline by day, Mar 1: D2 1200/0.9 = 1333.33, D3 100.01/0.9 = 111.12,
//     D15 900.00, D4 150/0.75 = 200.00 → 2544.45 (Σ EUR first would give 1444.46);
//   weighted by day, Feb 28: 750.00 + 12.50 + 450.00 + 40.00 + 210.00 = 1462.50;
//   open_pipeline at the end of Feb and Mar 2025 (month ends, LA):
//     Feb 28 = 3025.01 (as that day in series.rs); Mar 31 = Mar 4's 2877.79
//     (no change after Mar 3);
//   at Feb's rates throughout (`rates_as_of` 2025-02-28, EUR 0.8), Mar 1:
//     D2 1200/0.8 = 1500.00, D3 125.01, D15 900.00, D4 200.00 → 2725.01.
#[test]
fn both_series_plans_answer_alike_on_the_fixture() {
    let data = fixture_data();
    let days = ("2025-02-25", "2025-03-05", "day");
    let r = both(data.path(), "open_pipeline", days, &[], None).unwrap();
    assert_eq!(at(&r, "2025-03-01"), "2544.45");
    both(data.path(), "open_pipeline", days, &["stage_name"], None).unwrap();
    both(
        data.path(),
        "open_pipeline",
        days,
        &["stage_name", "forecast_category"],
        None,
    )
    .unwrap();
    let r = both(data.path(), "weighted_pipeline", days, &[], None).unwrap();
    assert_eq!(at(&r, "2025-02-28"), "1462.50");
    let months = ("2025-01-01", "2025-05-01", "month");
    let r = both(data.path(), "open_pipeline", months, &[], None).unwrap();
    assert_eq!(at(&r, "2025-02"), "3025.01");
    assert_eq!(at(&r, "2025-03"), "2877.79");
    let r = both(data.path(), "open_pipeline", days, &[], Some("2025-02-28")).unwrap();
    assert_eq!(at(&r, "2025-03-01"), "2725.01");
}

/// The fixture of series.rs.
fn fixture_data() -> tempfile::TempDir {
    super::series::fixture()
}

/// The fixture with EUR's rates leaving Feb 27 and 28 uncovered (0.8 until
/// 2025-02-27, 0.9 from 2025-03-01), and GBP's rates `gbp` or none.
fn with_a_rate_gap(gbp: bool) -> tempfile::TempDir {
    let mut rates = vec![
        ("EUR", "0.800000", "2024-01-01", "2025-02-27"),
        ("EUR", "0.900000", "2025-03-01", "2027-01-01"),
        ("JPY", "150.000000", "2024-01-01", "2027-01-01"),
    ];
    if gbp {
        rates.push(("GBP", "0.750000", "2024-01-01", "2027-01-01"));
    }
    with_rates(fixture_data(), rates)
}

/// `dir` with these rates: (currency, rate, start_date, next_start_date).
fn with_rates(
    dir: tempfile::TempDir,
    rates: Vec<(&'static str, &'static str, &'static str, &'static str)>,
) -> tempfile::TempDir {
    std::fs::remove_dir_all(dir.path().join("crm/dated_conversion_rate")).unwrap();
    write_table(
        dir.path(),
        "crm/dated_conversion_rate",
        vec![
            ("iso_code", Col::Str(rates.iter().map(|r| r.0).collect())),
            (
                "conversion_rate",
                Col::Rate(rates.iter().map(|r| r.1).collect()),
            ),
            ("start_date", Col::Date(rates.iter().map(|r| r.2).collect())),
            (
                "next_start_date",
                Col::Date(rates.iter().map(|r| r.3).collect()),
            ),
        ],
    );
    dir
}

/// The fixture's rates with EUR at 0.8 until `until` (past 2025-03-01: both
/// EUR rates in force until then) and `more`.
fn overlapping(
    dir: tempfile::TempDir,
    until: &'static str,
    more: &[(&'static str, &'static str, &'static str, &'static str)],
) -> tempfile::TempDir {
    let mut rates = vec![
        ("EUR", "0.800000", "2024-01-01", until),
        ("EUR", "0.900000", "2025-03-01", "2027-01-01"),
        ("GBP", "0.750000", "2024-01-01", "2027-01-01"),
        ("JPY", "150.000000", "2024-01-01", "2027-01-01"),
    ];
    rates.extend_from_slice(more);
    with_rates(dir, rates)
}

// The pairs with no rate, counted alike by both plans and named by currency
// (LA days Feb 25..Mar 4):
//   EUR uncovered on Feb 27 and Feb 28, the EUR deals open then D2 and D3:
//     2 deals × 2 days = 4;
//   without GBP's rate also D4 (GBP, open all 8 days: H4b is a deleted row):
//     4 + 8 = 12.
#[test]
fn a_rate_gap_inside_a_series_is_refused_alike_by_both_plans() {
    let days = ("2025-02-25", "2025-03-05", "day");
    for (gbp, pairs) in [(true, 4), (false, 12)] {
        let data = with_a_rate_gap(gbp);
        let err = both(data.path(), "open_pipeline", days, &[], None).unwrap_err();
        assert!(
            err.contains(&format!(
                "{pairs} row(s) of `open_pipeline` are in a currency with no conversion rate"
            )),
            "{err}"
        );
        // The currencies to add to the rate table, with their rows.
        let named = if gbp {
            "; by currency: EUR: 4):"
        } else {
            "; by currency: EUR: 4, GBP: 8):"
        };
        assert!(err.contains(named), "{err}");
    }
    // A series that avoids the gap (Mar 1..Mar 4) converts.
    let data = with_a_rate_gap(true);
    let r = both(
        data.path(),
        "open_pipeline",
        ("2025-03-01", "2025-03-05", "day"),
        &[],
        None,
    )
    .unwrap();
    assert_eq!(at(&r, "2025-03-01"), "2544.45");
}

/// Every series the sample's snapshot metrics answer, by each plan.
#[test]
fn both_series_plans_answer_alike_on_the_sample() {
    let data = repo().join("sample_data");
    let year = ("2025-01-01", "2026-01-01", "month");
    let quarter = ("2025-07-01", "2025-10-01", "day");
    for (metric, span, by) in [
        ("open_pipeline", year, &[][..]),
        ("open_pipeline", quarter, &["stage_name"][..]),
        ("weighted_pipeline", quarter, &[][..]),
        ("open_tickets", quarter, &[][..]),
        ("arr", year, &["country"][..]),
        ("arr_at_risk", year, &["country"][..]),
    ] {
        let r = both(&data, metric, span, by, None).unwrap();
        assert!(!r["rows"].as_array().unwrap().is_empty(), "{metric}: {r}");
    }
}

// Two EUR rates in force on Mar 1 and 2 (0.8 until 2025-03-03, 0.9 from
// 2025-03-01): the `intervals` gate blocks such rates, and computed anyway
// (`--allow intervals:crm/dated_conversion_rate`) both plans count each EUR
// deal once per rate, as the pairing plan always did. Mar 1: D2 1200/0.8 =
// 1500.00 and 1200/0.9 = 1333.33, D3 125.01 and 111.12, D15 900.00, D4
// 200.00 → 4169.46; Mar 3 has one rate again: 1666.67 + 111.12 + 900.00 +
// 200.00 = 2877.79.
//
// So does a deal with no amount in an overlapped currency (a review's
// finding: the ranges plan first counted it once): D3 without an amount, EUR
// doubled until 2025-03-06, at Mar 4: D2 1500/0.8 = 1875.00 and 1500/0.9 =
// 1666.67, D15 900.00, D4 200.00 → 4641.67; D3 is `missing_amount` twice
// (one pair per rate), its value 0.00.
//
// And base-currency deals when the rates hold the base currency twice
// (USD 1.0 from 2024-01-01 and from 2025-03-01): from Mar 1 each USD deal
// counts twice. Mar 1: D2 1333.33, D3 111.12, D15 900.00 × 2, D4 200.00 →
// 3444.45; Feb 28 has one USD rate: 3025.01 as without them.
#[test]
fn overlapping_rates_computed_anyway_count_alike_in_both_plans() {
    let days = ("2025-02-25", "2025-03-05", "day");
    let data = overlapping(fixture_data(), "2025-03-03", &[]);
    let blocked = both(data.path(), "open_pipeline", days, &[], None);
    assert!(
        blocked.unwrap_err().contains("intervals"),
        "the gate blocks overlapping rates"
    );
    let r = both_allowing(data.path(), "open_pipeline", days, &[], None, true).unwrap();
    assert_eq!(at(&r, "2025-03-01"), "4169.46");
    assert_eq!(at(&r, "2025-03-03"), "2877.79");

    let no_amount = super::series::fixture_with(|rows| {
        rows.iter_mut().find(|r| r.0 == "H3a").unwrap().4 = "";
    });
    let data = overlapping(no_amount, "2025-03-06", &[]);
    let r = both_allowing(data.path(), "open_pipeline", days, &[], None, true).unwrap();
    assert_eq!(at(&r, "2025-03-04"), "4641.67");
    assert_eq!(exclusion(&r, "missing_amount"), (2, "0.00".into()));

    let usd = [
        ("USD", "1.000000", "2024-01-01", "2027-01-01"),
        ("USD", "1.000000", "2025-03-01", "2027-01-01"),
    ];
    let data = overlapping(fixture_data(), "2025-03-01", &usd);
    let r = both_allowing(data.path(), "open_pipeline", days, &[], None, true).unwrap();
    assert_eq!(at(&r, "2025-02-28"), "3025.01");
    assert_eq!(at(&r, "2025-03-01"), "3444.45");
}
