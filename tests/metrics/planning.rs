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
    let request = request(period, None, None);
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
    let out = canon_with_env(
        &repo(),
        &all,
        &[("RUST_LOG", "canon::compile=debug,canon::lineage=debug")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Not the plans of the metric's definition closure (its sign-off is
    // judged on a separate engine, in a `closure` span).
    stderr(&out)
        .lines()
        .filter(|l| l.contains("aggregate planned") && !l.contains("closure{"))
        .count()
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
    let resolved = catalog.resolve(request(period, None, None)).unwrap();
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

/// Every function a plan calls is known by name to the session that runs
/// it: a plan written out (to a cache, to a cluster's executors) names its
/// functions and is read back through that registry. canon's own
/// functions (series_position, series_span, latest_by, latest_spans, the
/// project's domain and date functions) are registered beside DataFusion's;
/// one added to a plan and not registered fails here. Planned for one
/// instant, for a monthly series (positions, spans) and for a
/// flow period, over every metric of the sample.
#[test]
fn every_function_a_plan_calls_is_registered_by_name() {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::logical_expr::Expr;
    use std::collections::BTreeSet;
    let catalog = Arc::new(Catalog::load(&repo()).unwrap());
    let engine = Engine::new(catalog.clone(), DataSource::Empty).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let day = chrono::NaiveDate::from_ymd_opt(2025, 9, 30).unwrap();
    let requests = [
        request(
            catalog.calendar.parse_period("2025-09-30").unwrap(),
            Some(day),
            None,
        ),
        request(
            catalog.calendar.parse_period("2025").unwrap(),
            None,
            Some(canon::calendar::Grain::Month),
        ),
        // A dense series, planned by rate runs (compile::series_ranges).
        request(
            catalog.calendar.parse_period("2025-09").unwrap(),
            None,
            Some(canon::calendar::Grain::Day),
        ),
    ];
    let mut called = BTreeSet::new();
    for request in &requests {
        let resolved = catalog.resolve(request.clone()).unwrap();
        for name in catalog.metrics.keys() {
            // A flow refuses --as-of; a cohort a grain: the requests that
            // plan are the ones that matter.
            let Ok(planned) = rt.block_on(canon::compile::plans(&engine, name, &resolved)) else {
                continue;
            };
            for (_, frame) in planned {
                frame
                    .logical_plan()
                    .apply(|node| {
                        node.apply_expressions(|e| {
                            e.apply(|e| {
                                match e {
                                    Expr::ScalarFunction(f) => {
                                        called.insert(("scalar", f.name().to_string()));
                                    }
                                    Expr::AggregateFunction(f) => {
                                        called.insert(("aggregate", f.func.name().to_string()));
                                    }
                                    // An aggregate over a window (the series'
                                    // rate tiles' running max) is found among
                                    // the aggregates.
                                    Expr::WindowFunction(f) => {
                                        let kind = match &f.fun {
                                            datafusion::logical_expr::WindowFunctionDefinition::AggregateUDF(_) => "aggregate",
                                            _ => "window",
                                        };
                                        called.insert((kind, f.fun.name().to_string()));
                                    }
                                    _ => {}
                                }
                                Ok(TreeNodeRecursion::Continue)
                            })
                        })
                    })
                    .unwrap();
            }
        }
    }
    for own in ["series_position", "series_span", "url_domain"] {
        assert!(
            called.contains(&("scalar", own.to_string())),
            "{own} not called: {called:?}"
        );
    }
    // The rate tiles' running max, an aggregate over a window.
    assert!(
        called.contains(&("aggregate", "max".to_string())),
        "max not called: {called:?}"
    );
    for own in ["latest_by", "latest_spans"] {
        assert!(
            called.contains(&("aggregate", own.to_string())),
            "{own} not called: {called:?}"
        );
    }
    let state = engine.session().state();
    for (kind, name) in &called {
        let known = match *kind {
            "scalar" => state.scalar_functions().contains_key(name),
            "aggregate" => state.aggregate_functions().contains_key(name),
            _ => state.window_functions().contains_key(name),
        };
        assert!(
            known,
            "the {kind} function `{name}` is not registered by name"
        );
    }
}

/// The tables a plan is said to read (for its gates, lineage and the
/// gates' remembered outcomes) are sources of the catalog, never a table
/// of values canon made: a monthly series' days are an in-memory table,
/// which DataFusion names `?table?`.
#[test]
fn the_tables_a_series_reads_are_sources_only() {
    let catalog = Arc::new(Catalog::load(&repo()).unwrap());
    let engine = Engine::new(catalog.clone(), DataSource::Empty).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let request = request(
        catalog.calendar.parse_period("2025").unwrap(),
        None,
        Some(canon::calendar::Grain::Month),
    );
    let resolved = catalog.resolve(request).unwrap();
    let mut read = std::collections::BTreeMap::new();
    for (_, frame) in rt
        .block_on(canon::compile::plans(&engine, "open_pipeline", &resolved))
        .unwrap()
    {
        canon::run::scanned_columns(frame.logical_plan(), &mut read);
    }
    assert!(read.contains_key("crm/opportunity_history"), "{read:?}");
    for table in read.keys() {
        let (system, name) = table.split_once('/').unwrap_or((table, ""));
        assert!(
            catalog.source_by_name(system, name).is_some(),
            "{table} is not a source: {read:?}"
        );
    }
}
