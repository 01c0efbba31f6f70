//! Every plan canon builds can be written out with DataFusion's protobuf
//! format and read back on another session (issue 16: the same plans run on
//! a cluster): its declared tables, merge maps, a series' days, its
//! functions (with the settings they are bound to) and aggregates. Read back, a plan shows the
//! same (its schemas too), optimizes the same where it runs and, run over
//! the sample data, gives the same rows.

use std::sync::Arc;

use canon::catalog::Catalog;
use canon::run::wire::{
    physical_plan_from_bytes, physical_plan_to_bytes, plan_from_bytes, plan_to_bytes,
};
use canon::run::{DataSource, Engine};
use datafusion::arrow::util::pretty::pretty_format_batches;

use crate::common::*;

/// The rows of `batches` as sorted lines (partitions may order them
/// differently from one run to the next).
fn rows(batches: &[datafusion::arrow::record_batch::RecordBatch]) -> Vec<String> {
    let mut lines: Vec<String> = pretty_format_batches(batches)
        .unwrap()
        .to_string()
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

#[test]
fn every_plan_round_trips_through_protobuf() {
    // Writing and reading a plan walks it recursively, with a debug
    // build's frames: on a thread with an engine worker's stack.
    std::thread::Builder::new()
        .stack_size(canon::run::WORKER_STACK_BYTES)
        .spawn(round_trip_every_plan)
        .unwrap()
        .join()
        .unwrap();
}

fn round_trip_every_plan() {
    let catalog = Arc::new(Catalog::load(&repo()).unwrap());
    let data = || DataSource::Folder(repo().join("sample_data"));
    // Where plans are built, and a fresh engine where they are read back and
    // run (another machine's), whose canon.yaml has another reporting zone
    // and other internal domains: a plan computes with the settings it was
    // built with (avg_sales_cycle_days takes local_date of a creation
    // instant, mqls and nrr leave internal contacts and accounts out), not
    // with the reader's.
    let elsewhere = tempfile::tempdir().unwrap();
    copy_project(elsewhere.path());
    let yaml = std::fs::read_to_string(elsewhere.path().join("canon.yaml")).unwrap();
    let yaml = yaml
        .replace(
            "reporting_zone: America/Los_Angeles",
            "reporting_zone: Asia/Tokyo",
        )
        .replace(
            "internal_domains: [acme.io]",
            "internal_domains: [example.invalid]",
        );
    std::fs::write(elsewhere.path().join("canon.yaml"), yaml).unwrap();
    let there_catalog = Arc::new(Catalog::load(elsewhere.path()).unwrap());
    assert_eq!(there_catalog.calendar.zone, chrono_tz::Asia::Tokyo);
    let here = Engine::new(catalog.clone(), data()).unwrap();
    let there = Engine::new(there_catalog, data()).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(canon::run::WORKER_STACK_BYTES)
        .build()
        .unwrap();
    let day = chrono::NaiveDate::from_ymd_opt(2025, 9, 30).unwrap();
    let requests = [
        (
            "instant",
            request(
                catalog.calendar.parse_period("2025-09-30").unwrap(),
                Some(day),
                None,
            ),
        ),
        (
            "period",
            request(
                catalog.calendar.parse_period("FY2026-Q1").unwrap(),
                None,
                None,
            ),
        ),
        (
            "monthly",
            request(
                catalog.calendar.parse_period("2025").unwrap(),
                None,
                Some(canon::calendar::Grain::Month),
            ),
        ),
        // A dense series: a snapshot by day is planned by rate runs
        // (compile::series_ranges: a left join with a filter, windows over
        // the rates), which must round-trip too.
        (
            "daily",
            request(
                catalog.calendar.parse_period("2025-09").unwrap(),
                None,
                Some(canon::calendar::Grain::Day),
            ),
        ),
    ];
    let mut failures = Vec::new();
    let mut round_tripped = Vec::new();
    // The tables canon's codec wrote (run::wire's `kind`s), and the rows
    // the plans gave.
    let mut tables = std::collections::BTreeSet::new();
    let mut rows_compared = 0;
    let mut self_contained = 0;
    for (label, request) in &requests {
        let resolved = catalog.resolve(request.clone()).unwrap();
        for name in catalog.metrics.keys() {
            // A flow refuses --as-of; a cohort a grain: the requests that
            // plan are the ones that matter.
            let Ok(planned) = rt.block_on(canon::compile::plans(&here, name, &resolved)) else {
                continue;
            };
            for (title, frame) in planned {
                let what = format!("{label} {title}");
                let plan = frame.logical_plan().clone();
                let bytes = match plan_to_bytes(&plan) {
                    Ok(b) => b,
                    Err(e) => {
                        failures.push(format!("{what}: encode: {e}"));
                        continue;
                    }
                };
                let back = match plan_from_bytes(&bytes, &there.planning.task_ctx()) {
                    Ok(p) => p,
                    Err(e) => {
                        failures.push(format!("{what}: decode: {e}"));
                        continue;
                    }
                };
                for kind in ["declared", "survivors", "rows"] {
                    let marker = format!("{{\"kind\":\"{kind}\"");
                    if bytes.windows(marker.len()).any(|w| w == marker.as_bytes()) {
                        tables.insert(kind);
                    }
                }
                // With every node's schema: names, types and nullability.
                let (shown, shown_back) = (
                    plan.display_indent_schema().to_string(),
                    back.display_indent_schema().to_string(),
                );
                if shown != shown_back {
                    failures.push(format!(
                        "{what}: read back differs\n--- written\n{shown}\n--- read back\n{shown_back}"
                    ));
                    continue;
                }
                // Optimized where each runs: the same plan.
                let (optimized, optimized_back) = (
                    here.bound(frame.clone()).into_optimized_plan(),
                    there.frame(back.clone()).into_optimized_plan(),
                );
                match (optimized, optimized_back) {
                    (Ok(a), Ok(b)) => {
                        let (a, b) = (
                            a.display_indent().to_string(),
                            b.display_indent().to_string(),
                        );
                        if a != b {
                            failures.push(format!(
                                "{what}: optimized differently\n--- written\n{a}\n--- read back\n{b}"
                            ));
                            continue;
                        }
                    }
                    (a, b) => {
                        failures.push(format!("{what}: optimizing: {:?} / {:?}", a.err(), b.err()));
                        continue;
                    }
                }
                // The physical plan made here (bound to the sample's files),
                // written out and run there as an executor would.
                let physical = rt
                    .block_on(here.bound(frame.clone()).create_physical_plan())
                    .and_then(physical_plan_to_bytes)
                    .and_then(|b| physical_plan_from_bytes(&b, &there.session().task_ctx()));
                let physical = match physical {
                    Ok(p) => p,
                    Err(e) => {
                        failures.push(format!("{what}: physical plan: {e}"));
                        continue;
                    }
                };
                let ran = rt.block_on(here.bound(frame).collect());
                let ran_back = rt.block_on(there.frame(back).collect());
                let ran_physical = rt.block_on(datafusion::physical_plan::collect(
                    physical,
                    there.session().task_ctx(),
                ));
                match (ran, ran_back, ran_physical) {
                    (Ok(a), Ok(b), Ok(c)) => {
                        rows_compared += a.iter().map(|b| b.num_rows()).sum::<usize>();
                        if rows(&a) != rows(&b) {
                            failures.push(format!("{what}: rows differ"));
                            continue;
                        }
                        if rows(&a) != rows(&c) {
                            failures.push(format!("{what}: the physical plan's rows differ"));
                            continue;
                        }
                        // Self-contained (a cluster's form): no declared
                        // table or merge map left, so it runs read back on
                        // the session that plans (no models bound, no data
                        // root), with the same rows.
                        let contained = rt
                            .block_on(here.self_contained(plan.clone()))
                            .map_err(|e| e.to_string())
                            .and_then(|p| plan_to_bytes(&p).map_err(|e| e.to_string()));
                        let contained = match contained {
                            Ok(bytes) => bytes,
                            Err(e) => {
                                failures.push(format!("{what}: self-contained: {e}"));
                                continue;
                            }
                        };
                        for kind in ["declared", "survivors"] {
                            let marker = format!("{{\"kind\":\"{kind}\"");
                            if contained
                                .windows(marker.len())
                                .any(|w| w == marker.as_bytes())
                            {
                                failures.push(format!("{what}: self-contained still has {kind}"));
                            }
                        }
                        let ran_contained = plan_from_bytes(&contained, &there.planning.task_ctx())
                            .map(|p| {
                                datafusion::prelude::DataFrame::new(there.planning.state(), p)
                            });
                        match ran_contained.map(|f| rt.block_on(f.collect())) {
                            Ok(Ok(d)) if rows(&a) == rows(&d) => self_contained += 1,
                            Ok(Ok(_)) => {
                                failures.push(format!("{what}: self-contained rows differ"))
                            }
                            Ok(Err(e)) | Err(e) => {
                                failures.push(format!("{what}: self-contained fails: {e}"))
                            }
                        }
                    }
                    (_, _, Err(e)) => {
                        failures.push(format!("{what}: the physical plan read back fails: {e}"));
                        continue;
                    }
                    (Err(e), _, _) => {
                        failures.push(format!("{what}: the plan as built fails: {e}"));
                        continue;
                    }
                    (_, Err(e), _) => {
                        failures.push(format!("{what}: the plan read back fails: {e}"));
                        continue;
                    }
                }
                round_tripped.push(format!("{what} ({} bytes)", bytes.len()));
            }
        }
    }
    eprintln!("round-tripped {}:", round_tripped.len());
    for r in &round_tripped {
        eprintln!("  {r}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // Sources, merge maps and a series' days all went over the wire, and
    // the plans read back gave rows to compare.
    assert_eq!(
        tables,
        ["declared", "survivors", "rows"].into_iter().collect(),
        "tables written"
    );
    assert!(rows_compared > 0, "no rows compared");
    assert_eq!(
        self_contained,
        round_tripped.len(),
        "every plan ran self-contained"
    );
    eprintln!("rows compared: {rows_compared}");
    // An instant, a period and a monthly series of every kind planned.
    for kind in [
        "instant arr",
        "period bookings",
        "monthly bookings",
        "win_rate",
        "nrr",
        "mqls",
    ] {
        assert!(
            round_tripped.iter().any(|r| r.contains(kind)),
            "{kind} not round-tripped: {round_tripped:?}"
        );
    }
}

/// A plan read back where one of its sources is declared otherwise (a
/// cluster's executors with other models) is refused, naming the table,
/// rather than run over the columns that now sit at its positions. Here
/// crm/opportunity's `is_closed` and `is_won` swap places: bookings' plan
/// reads `is_won` by its position in the writer's declaration, which is
/// `is_closed` in the reader's, and would count closed-lost deals.
#[test]
fn a_plan_read_where_its_sources_are_declared_otherwise_is_refused() {
    std::thread::Builder::new()
        .stack_size(canon::run::WORKER_STACK_BYTES)
        .spawn(|| {
            let catalog = Arc::new(Catalog::load(&repo()).unwrap());
            let data = || DataSource::Folder(repo().join("sample_data"));
            let elsewhere = tempfile::tempdir().unwrap();
            copy_project(elsewhere.path());
            let models = elsewhere.path().join("models/crm.yaml");
            let yaml = std::fs::read_to_string(&models).unwrap();
            let closed =
                "      - {name: is_closed, type: bool, description: Closed (won or lost)}\n";
            let won = "      - {name: is_won, type: bool, description: Closed won}\n";
            assert!(yaml.contains(&format!("{closed}{won}")));
            std::fs::write(
                &models,
                yaml.replace(&format!("{closed}{won}"), &format!("{won}{closed}")),
            )
            .unwrap();
            let here = Engine::new(catalog.clone(), data()).unwrap();
            let there =
                Engine::new(Arc::new(Catalog::load(elsewhere.path()).unwrap()), data()).unwrap();
            let rt = tokio::runtime::Runtime::new().unwrap();
            let request = request(
                catalog.calendar.parse_period("FY2026-Q1").unwrap(),
                None,
                None,
            );
            let resolved = catalog.resolve(request).unwrap();
            let planned = rt
                .block_on(canon::compile::plans(&here, "bookings", &resolved))
                .unwrap();
            let (_, frame) = planned.into_iter().next().unwrap();
            let bytes = plan_to_bytes(frame.logical_plan()).unwrap();
            let back = plan_from_bytes(&bytes, &there.planning.task_ctx()).unwrap();
            let err = rt
                .block_on(there.frame(back).collect())
                .expect_err("run over another declaration")
                .to_string();
            assert!(
                err.contains("crm/opportunity")
                    && err.contains("not this project's")
                    && err.contains("is_closed Boolean, is_won Boolean")
                    && err.contains("is_won Boolean, is_closed Boolean"),
                "{err}"
            );
            // Where the declarations agree it runs (the same plan on an
            // engine of the writer's project).
            let back = plan_from_bytes(&bytes, &here.planning.task_ctx()).unwrap();
            assert!(rt.block_on(here.frame(back).collect()).is_ok());
        })
        .unwrap()
        .join()
        .unwrap();
}
