//! Governed values through the real binary, to the cent: every metric kind
//! on hand-worked fixture companies, the bookings-to-revenue bridge, long
//! series, the committed sample project and the benchmark harness.
//!
//! One test binary for these (and one for `trust/`) instead of one per
//! file: each binary links DataFusion, so fewer binaries is a shorter
//! `cargo test`. Run one file's tests with `cargo test --test metrics
//! flow_metrics::`.

#[path = "../common/mod.rs"]
mod common;

mod bench_harness;
mod conversion_metrics;
mod customer_metrics;
mod definition_tests;
mod diff;
mod docs;
mod flow_metrics;
mod lineage;
mod planning;
mod reconciliation;
mod renderings;
mod sample_project;
mod series;
mod series_plans;
mod snapshot_metrics;
mod wire;
