//! Exclusive validity intervals: for an entity that declares
//! `intervals: {…, overlap: exclusive}` (a currency's rate), no two rows of
//! one key hold on the same day. A lookup `from ≤ d < to` would otherwise
//! match both rows and count the row it converts twice.
//!
//! One window over the entity: per key, ordered by `from` (then `to`), each
//! row is compared with the previous one (`LAG`). Sorted by start, if any two
//! intervals overlap then some *adjacent* pair does (if i < j overlap,
//! start(i+1) ≤ start(j) < end(i)), so adjacent pairs find every key with an
//! overlap. The table is small (a few rows per currency and month); a window
//! sorts it once where a self-join would compare every pair of a key.
//! Empty intervals (`to ≤ from`) hold on no day and are left out; a missing
//! `to` is open-ended and overlaps every later row of its key.

use crate::run::memory::WithinMemory;
use datafusion::arrow::array::Array;
use datafusion::common::Column;
use datafusion::functions_window::expr_fn::lag;
use datafusion::logical_expr::{Expr, ExprFunctionExt, col};
use datafusion::prelude::DataFrame;

use super::subject::{EXAMPLES, Subject, cell_text, files_of_keys};
use super::{Status, TableCheck};
use crate::error::{CanonError, Result};
use crate::run::Engine;

/// The gate's name, as `--allow intervals:TABLE` names it.
pub const GATE: &str = "intervals";

/// Checks that the intervals `[from, to)` of `subject` (fields of `rows`,
/// unqualified) do not overlap within a key.
pub async fn check(
    engine: &Engine,
    subject: &Subject,
    rows: DataFrame,
    from: &str,
    to: &str,
) -> Result<TableCheck> {
    let field = |n: &str| Expr::Column(Column::from_name(n));
    let (key, start, end) = (field(&subject.key), field(from), field(to));
    let window = |e: Expr| -> Result<Expr> {
        lag(e, Some(1), None)
            .partition_by(vec![col("_key")])
            .order_by(vec![
                col("_from").sort(true, true),
                col("_to").sort(true, false),
            ])
            .build()
            .map_err(CanonError::Engine)
    };
    let pairs = rows
        .filter(
            key.clone()
                .is_not_null()
                .and(start.clone().is_not_null())
                .and(end.clone().is_null().or(end.clone().gt(start.clone()))),
        )?
        .select(vec![
            key.alias("_key"),
            start.alias("_from"),
            end.alias("_to"),
        ])?
        .window(vec![
            window(col("_from"))?.alias("_prev_from"),
            window(col("_to"))?.alias("_prev_to"),
        ])?
        // A previous row exists and has not ended when this one starts.
        .filter(
            col("_prev_from").is_not_null().and(
                col("_prev_to")
                    .is_null()
                    .or(col("_prev_to").gt(col("_from"))),
            ),
        )?
        .select(vec![
            col("_key"),
            col("_prev_from"),
            col("_prev_to"),
            col("_from"),
            col("_to"),
        ])?;
    let first = pairs
        .clone()
        .sort(vec![
            col("_key").sort(true, true),
            col("_from").sort(true, true),
        ])?
        .limit(0, Some(EXAMPLES))?
        .collect_within_memory()
        .await?;
    let column = Some(format!("{}, {from}, {to}", subject.key));
    let mut found = Vec::new();
    for b in &first {
        for r in 0..b.num_rows() {
            let t = |c: usize| cell_text(b.column(c).as_ref(), r);
            let open = |c: usize| {
                if b.column(c).is_null(r) {
                    "open".to_string()
                } else {
                    t(c)
                }
            };
            found.push((t(0), t(1), open(2), t(3), open(4)));
        }
    }
    if found.is_empty() {
        return Ok(TableCheck {
            check: GATE,
            table: subject.table_key(),
            column,
            status: Status::Pass,
            detail: format!(
                "no two rows of one `{}` of entity `{}` hold on the same day",
                subject.key, subject.entity
            ),
            examples: Vec::new(),
            latest_sync: None,
        });
    }
    let total = pairs.count_within_memory().await?;
    let keys: Vec<String> = found.iter().map(|f| f.0.clone()).collect();
    let starts: Vec<String> = found
        .iter()
        .flat_map(|f| [f.1.clone(), f.3.clone()])
        .collect();
    let files = files_of_keys(engine, subject, &keys, Some((from, &starts))).await?;
    let examples: Vec<String> = found
        .iter()
        .map(|(k, pf, pt, f, t)| {
            format!(
                "{}={k}: [{pf}, {pt}) overlaps [{f}, {t}), in {}",
                subject.key,
                files.describe_rows(k, &[pf.as_str(), f.as_str()])
            )
        })
        .collect();
    Ok(TableCheck {
        check: GATE,
        table: subject.table_key(),
        column,
        status: Status::Error,
        detail: format!(
            "{total} overlap(s) of rows of one `{}` of entity `{}`, whose intervals are declared exclusive, so a lookup would match two rows; first: {}",
            subject.key,
            subject.entity,
            examples.join("; ")
        ),
        examples,
        latest_sync: None,
    })
}
