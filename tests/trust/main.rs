//! What keeps a governed number right or visibly blocked, through the real
//! binary: the quality checks and row-count gates, declared domains,
//! volume, the result cache, the writers (publish, `--out`), `canon sql`'s
//! read-only door, and errors on bad or damaged input with their reviewed
//! wording (`snapshots/`).
//!
//! One test binary for these (and one for `metrics/`) instead of one per
//! file: each binary links DataFusion, so fewer binaries is a shorter
//! `cargo test`. Run one file's tests with `cargo test --test trust
//! row_gates::`.

#[path = "../common/mod.rs"]
mod common;

mod cache;
mod domains;
mod errors;
mod history;
mod hostile_data;
mod hostile_messages;
mod lifecycle;
mod object_stores;
mod publish;
mod quality;
mod row_gates;
mod sql;
mod volume;
