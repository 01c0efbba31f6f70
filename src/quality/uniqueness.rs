//! Key uniqueness: no key of an entity held by two rows of the rows a
//! result counts or looks up. A duplicated deal is summed twice; a
//! duplicated account (or billing account, …) doubles every row joined to
//! it. One hash aggregate over the key (`GROUP BY key HAVING count(*) > 1`,
//! the first few in key order); only when it finds something are the rows'
//! files looked up, so a clean table costs that one aggregate.

use datafusion::functions_aggregate::expr_fn::count;
use datafusion::logical_expr::{Expr, col, lit};
use datafusion::prelude::DataFrame;

use super::gates::{EXAMPLES, Subject, cell_text, files_of_keys};
use super::{Status, TableCheck};
use crate::error::Result;
use crate::run::Engine;

/// The gate's name, as `--allow uniqueness:TABLE` names it.
pub const GATE: &str = "uniqueness";

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
    let dups = rows
        .filter(key.clone().is_not_null())?
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
    let column = Some(subject.key.clone());
    if found.is_empty() {
        return Ok(TableCheck {
            check: GATE,
            table: subject.table_key(),
            column,
            status: Status::Pass,
            detail: format!(
                "each `{}` of entity `{}` is held by one row ({scope})",
                subject.key, subject.entity
            ),
            examples: Vec::new(),
            latest_sync: None,
        });
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
