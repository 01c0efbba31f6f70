//! Planning is pure (issue 15): a metric's plans are built from its
//! definition, the models' declared schemas and the resolved request,
//! without reading a row. So every metric of the sample project plans to
//! the same text with no data at all (every source an empty table of its
//! declared schema) as over the committed sample data; a merge map, a
//! cohort's instants or a derived metric's inputs that were read while
//! planning would show here as a different plan or as an error.

use std::sync::Arc;

use canon::catalog::Catalog;
use canon::request::Request;
use canon::run::{DataSource, Engine};

use crate::common::*;

/// Every plan of every metric of the sample for `request`, as
/// (title, unoptimized logical plan, optimized logical plan).
fn plans(data: DataSource, request: &Request) -> Vec<(String, String, String)> {
    let catalog = Arc::new(Catalog::load(&repo()).unwrap());
    let engine = Engine::new(catalog.clone(), data).unwrap();
    let resolved = catalog.resolve(request.clone()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut out = Vec::new();
    for name in catalog.metrics.keys() {
        let planned = rt
            .block_on(canon::compile::plans(&engine, name, &resolved))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        for (title, frame) in planned {
            let logical = frame.logical_plan().display_indent().to_string();
            let optimized = frame
                .into_optimized_plan()
                .unwrap()
                .display_indent()
                .to_string();
            out.push((title, logical, optimized));
        }
    }
    out
}

#[test]
fn every_metric_plans_the_same_without_data() {
    let catalog = Catalog::load(&repo()).unwrap();
    let period = catalog.calendar.parse_period("FY2026-Q1").unwrap();
    let request = Request {
        period,
        as_of: None,
        rates_as_of: None,
        grain: None,
        by: Vec::new(),
    };
    let without = plans(DataSource::Empty, &request);
    let with = plans(DataSource::Folder(repo().join("sample_data")), &request);
    // Every metric planned (21 in the sample; a cohort plans its instants
    // and its bridge, a ratio or derived metric one plan per input).
    assert!(without.len() >= catalog.metrics.len(), "{}", without.len());
    assert_eq!(without.len(), with.len());
    for ((title, logical, optimized), (title_d, logical_d, optimized_d)) in
        without.iter().zip(&with)
    {
        assert_eq!(title, title_d);
        assert_eq!(
            logical, logical_d,
            "{title}: the logical plan depends on the data"
        );
        assert_eq!(
            optimized, optimized_d,
            "{title}: the optimized plan depends on the data"
        );
    }
}

/// How many times `args` planned an aggregate, from canon's debug log.
fn aggregates_planned(args: &[&str]) -> usize {
    let data = repo().join("sample_data");
    let mut all = args.to_vec();
    all.extend(["--data", data.to_str().unwrap(), "--format", "json"]);
    let out = canon_with_env(&repo(), &all, &[("RUST_LOG", "canon::compile=debug")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stderr(&out).matches("aggregate planned").count()
}

// A metric is planned once per request: its gates start from the plan its
// computation then runs (it was planned twice, once for each).
#[test]
fn a_query_plans_its_metric_once() {
    assert_eq!(
        aggregates_planned(&["query", "bookings", "--period", "FY2026-Q1"]),
        1
    );
    assert_eq!(
        aggregates_planned(&["query", "arr", "--as-of", "2025-06-30"]),
        1
    );
    // A ratio: its numerator and its denominator, once each.
    assert_eq!(
        aggregates_planned(&["query", "win_rate", "--period", "FY2026-Q1"]),
        2
    );
}

/// A plan is built over the sources as declared (their models' schemas)
/// and reads nothing where it was built: run on the planning session it
/// fails, naming the source; bound to the run's data by the engine it
/// gives the governed number. So no planning step can read a row, with or
/// without data present.
#[test]
fn plans_read_nothing_until_the_run_binds_them() {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::Decimal128Type;
    let catalog = Arc::new(Catalog::load(&repo()).unwrap());
    let engine = Engine::new(
        catalog.clone(),
        DataSource::Folder(repo().join("sample_data")),
    )
    .unwrap();
    let period = catalog.calendar.parse_period("FY2026-Q1").unwrap();
    let resolved = catalog
        .resolve(Request {
            period,
            as_of: None,
            rates_as_of: None,
            grain: None,
            by: Vec::new(),
        })
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_, frame) = rt
        .block_on(canon::compile::plans(&engine, "bookings", &resolved))
        .unwrap()
        .remove(0);
    let unbound = rt.block_on(frame.clone().collect()).unwrap_err();
    assert!(
        unbound
            .to_string()
            .contains("read by the planning session, which reads no data"),
        "{unbound}"
    );
    // Bound: the rows counted (no exclusion) sum to FY2026-Q1's bookings on
    // the sample, 8,783,667.28: the universe of 186 rows, 8,967,067.28, less
    // 4 excluded rows, 183,400.00 (tests/hostile/snapshots/
    // cache_entry_edited_by_hand.snap, the query through the binary).
    let batches = rt.block_on(engine.bound(frame).collect()).unwrap();
    let mut counted = 0i128;
    for b in &batches {
        let exclusion = b.column_by_name("_exclusion").unwrap();
        let sum = b
            .column_by_name("_sum")
            .unwrap()
            .as_primitive::<Decimal128Type>();
        for row in 0..b.num_rows() {
            if exclusion.is_null(row) {
                counted += sum.value(row);
            }
        }
    }
    assert_eq!(counted, 878_366_728);
}
