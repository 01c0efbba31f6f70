//! canon: governed metrics.
//!
//! The pipeline, one stage per layer, each calling only the layers below it
//! (`src/layers.rs` checks the direction in `cargo test`; docs/architecture.md
//! has the picture):
//!
//! | stage | entry point | what it does |
//! |---|---|---|
//! | command line | [`cli::main`] | turns flags into a [`request::Request`], resolved once ([`catalog::Catalog::resolve`] → [`request::Resolved`]), and an engine; renders, sets the exit code |
//! | orchestration | [`query::run_metric`], [`reconcile::run`], [`publish::publish`], [`validate::validate`], [`explain::explain`], [`lineage::lineage`], [`sql::run`] | one command each: plan, gate beside the computation, gather evidence |
//! | results | [`result::GovernedResult`], [`cache::Cache`] | the governed number and its evidence; served again only while its inputs are unchanged |
//! | quality | [`quality::check_all`], [`quality::gates::run_all`] | freshness, completeness, domains, volume, match rates, no row counted twice |
//! | run | [`run::Engine::new`] | sources registered from checked files; fingerprints, file facts, row counts |
//! | planning | [`compile::plan_metric`] over a [`compile::planner::Planner`] | a validated metric and a resolved request → a [`compile::MetricPlan`] of DataFusion plans, nothing read |
//! | definitions | [`catalog::Catalog::load`] | YAML loaded, checked and resolved, every error located |
//! | YAML | [`spec::load::load_project`] | the files as written |
//!
//! Beneath them all: the request, the calendar, decimals, errors and the
//! engine functions canon adds to SQL.

pub mod allow;
pub mod atomic;
pub mod blame;
pub mod cache;
pub mod calendar;
pub mod catalog;
pub mod cli;
#[cfg(feature = "cluster")]
pub mod cluster;
pub mod compile;
pub mod console;
pub mod currency;
pub mod decimal;
pub mod diff;
pub mod docs;
pub mod error;
pub mod explain;
pub mod functions;
pub mod history;
pub mod latest;
pub mod latest_spans;
#[cfg(test)]
mod layers;
pub mod lifecycle;
pub mod lineage;
pub mod output;
pub mod protect;
pub mod publish;
pub mod publish_dir;
pub mod quality;
pub mod query;
pub mod reconcile;
pub mod request;
pub mod result;
pub mod run;
pub mod spec;
pub mod sql;
pub mod suggest;
pub mod testing;
pub mod validate;
