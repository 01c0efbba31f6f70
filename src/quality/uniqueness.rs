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

use std::sync::Arc;

use datafusion::arrow::array::UInt64Array;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::hash_utils::{RandomState, create_hashes};
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, col,
    lit,
};
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

/// `key_hash(key)`: a 64-bit hash of each key (DataFusion's own hashing, the
/// one its hash joins and aggregates use), for the first pass. Built into
/// the gate's plan directly and never registered, so definitions cannot
/// call it.
fn key_hash(key: Expr) -> Expr {
    ScalarUDF::new_from_impl(KeyHash {
        signature: Signature::any(1, Volatility::Immutable),
    })
    .call(vec![key])
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct KeyHash {
    signature: Signature,
}

impl ScalarUDFImpl for KeyHash {
    fn name(&self) -> &str {
        "canon_key_hash"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::UInt64)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let mut hashes = vec![0u64; args.number_rows];
        create_hashes(&arrays, &RandomState::default(), &mut hashes)?;
        Ok(ColumnarValue::Array(Arc::new(UInt64Array::from(hashes))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::prelude::SessionContext;

    /// Equal keys hash equally, whichever batch they come in: the first pass
    /// could only miss a repeated key if this failed. (Within one gate every
    /// key has the one type of its column.)
    #[tokio::test]
    async fn equal_keys_hash_equally_across_batches() {
        let ctx = SessionContext::new();
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, true)]));
        let batch = |keys: Vec<Option<&str>>| {
            RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(keys))]).unwrap()
        };
        // "a" twice (in two batches), "b" once, a null.
        let df = ctx
            .read_batches(vec![
                batch(vec![Some("a"), Some("b")]),
                batch(vec![None, Some("a")]),
            ])
            .unwrap();
        let hashed = df
            .select(vec![col("k"), key_hash(col("k")).alias("h")])
            .unwrap()
            .collect()
            .await
            .unwrap();
        let mut by_key: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
        for b in &hashed {
            let k = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
            let h = b.column(1).as_any().downcast_ref::<UInt64Array>().unwrap();
            for i in 0..b.num_rows() {
                if !k.is_null(i) {
                    by_key
                        .entry(k.value(i).to_string())
                        .or_default()
                        .push(h.value(i));
                }
            }
        }
        // "a": the same hash in both batches.
        let a = &by_key["a"];
        assert_eq!(a.len(), 2);
        assert!(a.iter().all(|h| *h == a[0]), "{a:?}");
        assert_ne!(by_key["b"][0], a[0]);
    }
}
