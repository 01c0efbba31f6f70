//! Required links: every row whose link names a record finds it.
//!
//! A revenue line is placed in time by its accounting period
//! (`period.start_date`): a line naming period 999, which the books do not
//! have, is in no period, and `recognized_revenue` left it out of every
//! one, its universe one line short, with quality "pass" (found by a spec
//! audit). A link declared `required: true` in models/ is gated in every
//! query that reads it: a row whose foreign key is set and matches no
//! record of the linked entity blocks the result (`--allow
//! required_link:TABLE` computes it anyway), naming the missing keys and
//! the files holding the rows. A foreign key that is null is not a dangling
//! link (a line with no deal is a fact of the data, tallied by the metrics
//! that care).

use datafusion::functions_aggregate::expr_fn::count;
use datafusion::logical_expr::{Expr, col, lit};
use datafusion::prelude::DataFrame;

use super::subject::{EXAMPLES, Subject, cell_text, files_of_keys};
use super::{Status, TableCheck};
use crate::error::Result;
use crate::run::Engine;
use crate::run::memory::WithinMemory;

/// The check's name, as results report it and `--allow` takes it.
pub const GATE: &str = "required_link";

/// Judges `dangling`: the rows of `subject`'s entity whose link `link` (to
/// `target`) finds nothing, their foreign key in `key`. `subject.key` is the
/// foreign key's field, by which the files holding the rows are found.
pub async fn check(
    engine: &Engine,
    subject: &Subject,
    dangling: DataFrame,
    key: Expr,
    (link, target): (&str, &str),
) -> Result<TableCheck> {
    let by_key = dangling
        .select(vec![key.alias("_key")])?
        .aggregate(vec![col("_key")], vec![count(lit(1i64)).alias("_n")])?;
    let first = by_key
        .clone()
        .sort(vec![col("_key").sort(true, true)])?
        .limit(0, Some(EXAMPLES))?
        .collect_within_memory()
        .await?;
    let mut found: Vec<(String, String)> = Vec::new();
    for b in &first {
        for r in 0..b.num_rows() {
            found.push((
                cell_text(b.column(0).as_ref(), r),
                cell_text(b.column(1).as_ref(), r),
            ));
        }
    }
    let check = |status, detail| TableCheck {
        check: GATE,
        table: subject.table_key(),
        column: Some(subject.key.clone()),
        status,
        detail,
        examples: Vec::new(),
        latest_sync: None,
    };
    if found.is_empty() {
        return Ok(check(
            Status::Pass,
            format!(
                "every `{}` of entity `{}` that is set names a record of `{target}` (link `{link}`)",
                subject.key, subject.entity
            ),
        ));
    }
    let missing = by_key.count_within_memory().await?;
    let keys: Vec<String> = found.iter().map(|(k, _)| k.clone()).collect();
    let files = files_of_keys(engine, subject, &keys, None).await?;
    let examples: Vec<String> = found
        .iter()
        .map(|(k, n)| {
            format!(
                "{}={k}: {n} row(s), in {}",
                subject.key,
                files.describe(&[k.as_str()])
            )
        })
        .collect();
    let mut failed = check(
        Status::Error,
        format!(
            "{missing} `{}` value(s) of entity `{}` name no `{target}` (link `{link}`, declared \
             required): their rows belong to no {target}, and a result would leave them out; \
             first: {}",
            subject.key,
            subject.entity,
            examples.join("; ")
        ),
    );
    failed.examples = examples;
    Ok(failed)
}
