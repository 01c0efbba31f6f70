//! canon: governed metrics.
//!
//! The pipeline runs one way: `spec` (YAML as written) → `catalog` (checked and
//! resolved definitions) → `compile` (DataFusion plans for a request) → `run`
//! (execution and evidence) → `result` (the governed result and its writers).

pub mod allow;
pub mod atomic;
pub mod blame;
pub mod cache;
pub mod calendar;
pub mod catalog;
pub mod cli;
pub mod compile;
pub mod currency;
pub mod decimal;
pub mod error;
pub mod explain;
pub mod functions;
pub mod latest;
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
pub mod sample;
pub mod spec;
pub mod sql;
pub mod suggest;
pub mod validate;
