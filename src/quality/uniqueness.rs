//! Key uniqueness: no key of an entity held by two rows of the rows a
//! result counts or looks up. A duplicated deal is summed twice; a
//! duplicated account (or billing account, …) doubles every row joined to
//! it.
//!
//! Two passes, the second only when the first finds something. The first
//! groups the rows by a 64-bit hash of the key (`GROUP BY hash HAVING
//! count(*) > 1`): an integer aggregate, several times cheaper than one over
//! key strings, and exact in the direction that matters, since two rows with
//! the same key always have the same hash, so a clean first pass proves the
//! key unique. A repeated hash is either a repeated key or (about once in
//! 10^7 tables of a million keys) two keys that collide; the second pass
//! tells them apart by grouping the key itself (`GROUP BY key HAVING
//! count(*) > 1`, the first few in key order), and only when it finds a
//! repeated key are the rows' files looked up. So a clean table costs one
//! integer aggregate; measured in docs/performance.md.

use datafusion::functions_aggregate::expr_fn::count;
use datafusion::logical_expr::{Expr, col, lit};
use datafusion::prelude::DataFrame;

use super::gates::{EXAMPLES, Subject, cell_text, files_of_keys};
use super::{Status, TableCheck};
use crate::error::Result;
use crate::key_hash::key_hash;
use crate::run::Engine;

/// The gate's name, as `--allow uniqueness:TABLE` names it.
pub const GATE: &str = "uniqueness";

/// The verdict of a metric's own key count (`compile::simple`'s
/// `group_counting_keys`) when no key was counted twice: as many distinct
/// keys as keyed rows in `scope`, after every lookup joined.
pub fn counted_once(subject: &Subject, scope: &str) -> TableCheck {
    TableCheck {
        check: GATE,
        table: subject.table_key(),
        column: Some(subject.key.clone()),
        status: Status::Pass,
        detail: format!(
            "each `{}` of entity `{}` is counted once ({scope}, after every lookup joined)",
            subject.key, subject.entity
        ),
        examples: Vec::new(),
        latest_sync: None,
    }
}

/// The verdict of a metric's own key count when it counted `extra` rows
/// beyond one per key and a gate of `failed` (`GATE:TABLE`, a looked-up
/// entity whose key repeats) is the cause: a warning that names it, so a
/// result let through by that gate's name says what it let through.
pub fn counted_again_by(subject: &Subject, scope: &str, extra: i64, failed: &[String]) -> TableCheck {
    TableCheck {
        check: GATE,
        table: subject.table_key(),
        column: Some(subject.key.clone()),
        status: Status::Warn,
        detail: format!(
            "{extra} row(s) beyond one per `{}` of entity `{}` ({scope}, after every lookup joined), repeated by the failing gate {}",
            subject.key,
            subject.entity,
            failed.join(", ")
        ),
        examples: Vec::new(),
        latest_sync: None,
    }
}

/// Checks that `subject`'s key (`key`, a column of `rows`) is unique over
/// `rows`, described as `scope` ("all rows", "rows `bookings` counts in
/// FY2026-Q1"). A row with no key identifies nothing and is not a
/// duplicate (as SQL's UNIQUE; completeness reports missing values).
pub async fn check(
    engine: &Engine,
    subject: &Subject,
    rows: DataFrame,
    key: Expr,
    scope: &str,
) -> Result<TableCheck> {
    let rows = rows.filter(key.clone().is_not_null())?;
    let repeated_hashes = rows
        .clone()
        .select(vec![key_hash(key.clone()).alias("_h")])?
        .aggregate(vec![col("_h")], vec![count(lit(1i64)).alias("_n")])?
        .filter(col("_n").gt(lit(1i64)))?
        .limit(0, Some(1))?
        .collect()
        .await?;
    let column = Some(subject.key.clone());
    let pass = || TableCheck {
        check: GATE,
        table: subject.table_key(),
        column: column.clone(),
        status: Status::Pass,
        detail: format!(
            "each `{}` of entity `{}` is held by one row ({scope})",
            subject.key, subject.entity
        ),
        examples: Vec::new(),
        latest_sync: None,
    };
    if repeated_hashes.iter().all(|b| b.num_rows() == 0) {
        return Ok(pass());
    }
    let dups = rows
        .select(vec![key.alias("_key")])?
        .aggregate(vec![col("_key")], vec![count(lit(1i64)).alias("_n")])?
        .filter(col("_n").gt(lit(1i64)))?;
    let first = dups
        .clone()
        .sort(vec![col("_key").sort(true, true)])?
        .limit(0, Some(EXAMPLES))?
        .collect()
        .await?;
    let mut found: Vec<(String, i64)> = Vec::new();
    for b in &first {
        let n = b.column(1);
        for r in 0..b.num_rows() {
            found.push((
                cell_text(b.column(0).as_ref(), r),
                cell_text(n.as_ref(), r).parse().unwrap_or(0),
            ));
        }
    }
    if found.is_empty() {
        // Two keys with one hash: unique after all.
        return Ok(pass());
    }
    // Only now, with something to show: how many, and in which files.
    let total = dups.count().await?;
    let keys: Vec<String> = found.iter().map(|(k, _)| k.clone()).collect();
    let files = files_of_keys(engine, subject, &keys, None).await?;
    let examples: Vec<String> = found
        .iter()
        .map(|(k, n)| {
            // Fewer rows in the table than counted: a join repeated them.
            let joined = match files.table_rows(k) {
                Some(held) if held < *n => format!(
                    " ({held} in the table: the others are repeated by a join to a looked-up entity whose key is not unique; see its gate)"
                ),
                _ => String::new(),
            };
            format!(
                "{}={k}: {n} rows, in {}{joined}",
                subject.key,
                files.describe(&[k.as_str()])
            )
        })
        .collect();
    Ok(TableCheck {
        check: GATE,
        table: subject.table_key(),
        column,
        status: Status::Error,
        detail: format!(
            "{total} `{}` value(s) of entity `{}` are held by more than one row ({scope}), so a result would count them more than once; first: {}",
            subject.key,
            subject.entity,
            examples.join("; ")
        ),
        examples,
        latest_sync: None,
    })
}
