//! Key uniqueness: no key of an entity held by two rows of the rows a
//! result counts or looks up. A duplicated deal is summed twice; a
//! duplicated account (or billing account, …) doubles every row joined to
//! it.
//!
//! Two passes, the second only when the first finds something. The first
//! counts the rows whose 64-bit key hash an earlier row already had
//! (`repeated_hashes`: each partition's hashes sorted, the partitions'
//! sorted hashes merged at the end): several times cheaper than grouping
//! key strings, and exact in the direction that matters, since two rows
//! with the same key always have the same hash, so a clean first pass
//! proves the key unique. A repeated hash is either a repeated key or
//! (about once in 10^7 tables of a million keys) two keys that collide;
//! the second pass tells them apart by grouping the key itself (`GROUP BY
//! key HAVING count(*) > 1`, the first few in key order), and only when it
//! finds a repeated key are the rows' files looked up. So a clean table
//! costs one scan of its key column and a sort of its hashes; measured in
//! docs/performance.md. The hashes cannot spill: a first pass that meets
//! the memory limit proves nothing, and the exact pass (which spills)
//! decides instead.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, ListArray, UInt64Array};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, UInt64Type};
use datafusion::common::ScalarValue;
use datafusion::common::hash_utils::{RandomState, create_hashes};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Expr, Signature, Volatility, col, lit,
};
use datafusion::prelude::DataFrame;

use super::subject::{EXAMPLES, Subject, cell_text, files_of_keys};
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
    // The hash sets cannot spill: past the memory limit the first pass
    // proves nothing, and the exact pass below (which spills) decides.
    let repeated = match first_pass(rows.clone(), key.clone()).await {
        Ok(n) => n,
        Err(e) if matches!(e.find_root(), DataFusionError::ResourcesExhausted(_)) => {
            tracing::info!(table = %subject.table_key(), "key hashes past the memory limit: grouping the keys instead");
            u64::MAX
        }
        Err(e) => return Err(e.into()),
    };
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
    if repeated == 0 {
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

/// The first pass: how many rows repeat a key hash of an earlier row.
async fn first_pass(rows: DataFrame, key: Expr) -> DfResult<u64> {
    rows.aggregate(vec![], vec![repeated_hashes(key).alias("_r")])?
        .collect()
        .await?
        .iter()
        .find(|b| b.num_rows() > 0)
        .and_then(|b| {
            b.column(0)
                .as_primitive_opt::<UInt64Type>()
                .map(|a| a.value(0))
        })
        // Never read a missing count as "no repeat".
        .ok_or_else(|| DataFusionError::Internal("the uniqueness pass returned no count".into()))
}

/// `repeated_hashes(key)`: how many rows (of those with a key) hold a key
/// hash an earlier row holds; 0 proves the key unique. Each partition keeps
/// the hashes of its rows (DataFusion's own key hashing, the one its joins
/// and aggregates use, with a fixed seed, so partitions agree) and sorts
/// them when done, and the final step merges the sorted lists. A `GROUP BY
/// hash` did the same through a repartition and a grouped aggregate, at
/// several times the CPU and memory (docs/performance.md). Built into the
/// gate's plan directly and never registered, so definitions cannot call it.
fn repeated_hashes(key: Expr) -> Expr {
    AggregateUDF::new_from_impl(RepeatedHashes {
        signature: Signature::any(1, Volatility::Immutable),
    })
    .call(vec![key])
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct RepeatedHashes {
    signature: Signature,
}

/// The item of the hashes list in an accumulator's state.
fn hash_item() -> FieldRef {
    Arc::new(Field::new_list_field(DataType::UInt64, true))
}

impl AggregateUDFImpl for RepeatedHashes {
    fn name(&self) -> &str {
        "canon_repeated_hashes"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::UInt64)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(
                format_state_name(args.name, "hashes"),
                DataType::List(hash_item()),
                true,
            )),
            Arc::new(Field::new(
                format_state_name(args.name, "repeated"),
                DataType::UInt64,
                true,
            )),
        ])
    }

    fn accumulator(&self, _: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        Ok(Box::<SeenHashes>::default())
    }
}

/// One partition's key hashes, kept in arrival order and sorted once when
/// the partition is done, then merged with the other partitions' sorted
/// hashes: appending is a sequential write and a sort brings equal hashes
/// together in cache-friendly passes, where a hash set probes a table of
/// several megabytes at random for every row and rebuilds it as it grows
/// (nrr's 807 k charge ids: docs/performance.md).
#[derive(Debug, Default)]
struct SeenHashes {
    /// Hashes not yet settled: this partition's rows, in arrival order.
    hashes: Vec<u64>,
    /// Other partitions' hashes, each sorted and distinct (final step).
    runs: Vec<Vec<u64>>,
    /// Rows found holding a hash an earlier row holds, so far.
    repeated: u64,
}

impl SeenHashes {
    /// Sorts the hashes, counts each one beyond the first of its kind as a
    /// repeat (within the hashes and across the runs) and keeps one of
    /// each: what is left in `hashes` is every distinct hash seen, in order.
    fn settle(&mut self) {
        self.hashes.sort_unstable();
        let before = self.hashes.len();
        self.hashes.dedup();
        self.repeated += (before - self.hashes.len()) as u64;
        for run in std::mem::take(&mut self.runs) {
            let (merged, repeated) = merge_distinct(&self.hashes, &run);
            self.hashes = merged;
            self.repeated += repeated;
        }
    }
}

/// Two sorted lists of distinct hashes as one, and how many hashes both
/// held (each a row that repeats a row of the other partition).
fn merge_distinct(a: &[u64], b: &[u64]) -> (Vec<u64>, u64) {
    let mut merged = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j, mut both) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                merged.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                merged.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                merged.push(a[i]);
                both += 1;
                i += 1;
                j += 1;
            }
        }
    }
    merged.extend_from_slice(&a[i..]);
    merged.extend_from_slice(&b[j..]);
    (merged, both)
}

impl Accumulator for SeenHashes {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        let keys = &values[0];
        let start = self.hashes.len();
        self.hashes.resize(start + keys.len(), 0);
        create_hashes(
            std::slice::from_ref(keys),
            &RandomState::default(),
            &mut self.hashes[start..],
        )?;
        if keys.null_count() > 0 {
            // A row with no key is no key: its hash is dropped.
            let mut row = 0;
            let mut kept = start;
            while row < keys.len() {
                if keys.is_valid(row) {
                    self.hashes[kept] = self.hashes[start + row];
                    kept += 1;
                }
                row += 1;
            }
            self.hashes.truncate(kept);
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        let (lists, repeated) = (
            states[0].as_list::<i32>(),
            states[1].as_primitive::<UInt64Type>(),
        );
        for row in 0..lists.len() {
            if repeated.is_valid(row) {
                self.repeated += repeated.value(row);
            }
            if lists.is_valid(row) {
                let hashes = lists.value(row);
                // A partial state's hashes are sorted and distinct (`state`).
                self.runs
                    .push(hashes.as_primitive::<UInt64Type>().values().to_vec());
            }
        }
        Ok(())
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        // The distinct hashes go on as a copy, so a second call (which
        // DataFusion does not make) would still see every hash.
        self.settle();
        let hashes = UInt64Array::from(self.hashes.clone());
        let list = ListArray::new(
            hash_item(),
            OffsetBuffer::from_lengths([hashes.len()]),
            Arc::new(hashes),
            None,
        );
        Ok(vec![
            ScalarValue::List(Arc::new(list)),
            ScalarValue::UInt64(Some(self.repeated)),
        ])
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        self.settle();
        Ok(ScalarValue::UInt64(Some(self.repeated)))
    }

    fn size(&self) -> usize {
        // The hashes, and as much again for what settling needs at its
        // peak: a merge's output, or the state's copy.
        let held = self.hashes.capacity() + self.runs.iter().map(Vec::capacity).sum::<usize>();
        std::mem::size_of_val(self) + 2 * held * std::mem::size_of::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::StringArray;
    use datafusion::arrow::datatypes::Schema;
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::datasource::MemTable;
    use datafusion::prelude::{SessionConfig, SessionContext};

    /// The first pass counts every row whose key an earlier row holds,
    /// wherever the two rows are: the same batch, another batch, another
    /// partition (merged from the partial sets). It could only miss a
    /// repeated key if this failed. Nulls are no key.
    #[tokio::test]
    async fn repeats_are_counted_across_batches_and_partitions() {
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(4));
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, true)]));
        let batch = |keys: Vec<Option<&str>>| {
            RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(keys))]).unwrap()
        };
        let repeated = |partitions: Vec<Vec<RecordBatch>>| {
            let ctx = ctx.clone();
            let schema = schema.clone();
            async move {
                let table = MemTable::try_new(schema, partitions).unwrap();
                let out = ctx
                    .read_table(Arc::new(table))
                    .unwrap()
                    .aggregate(vec![], vec![repeated_hashes(col("k")).alias("r")])
                    .unwrap()
                    .collect()
                    .await
                    .unwrap();
                out[0].column(0).as_primitive::<UInt64Type>().value(0)
            }
        };
        // Partition 1: "a", "b" | null, "a"; partition 2: "c", "a" | "b", null.
        // "a" is held by 3 rows (2 repeats), "b" by 2 (1 repeat), "c" by 1:
        // 2 + 1 = 3.
        let spread = vec![
            vec![
                batch(vec![Some("a"), Some("b")]),
                batch(vec![None, Some("a")]),
            ],
            vec![
                batch(vec![Some("c"), Some("a")]),
                batch(vec![Some("b"), None]),
            ],
        ];
        assert_eq!(repeated(spread).await, 3);
        // Within one batch: "x", "x", "x" is two repeats.
        assert_eq!(
            repeated(vec![vec![batch(vec![Some("x"), Some("x"), Some("x")])]]).await,
            2
        );
        // Unique keys and nulls (two nulls are not a repeat): 0.
        let unique = vec![
            vec![batch(vec![Some("a"), None])],
            vec![batch(vec![Some("b"), None])],
        ];
        assert_eq!(repeated(unique).await, 0);
        // No rows at all: 0.
        assert_eq!(repeated(vec![vec![]]).await, 0);
    }

    /// Settling counts repeats within the partition's own hashes and
    /// across the other partitions' sorted runs, whatever order they came
    /// in, and leaves every distinct hash once, in order.
    #[test]
    fn settling_counts_every_repeat_once() {
        let mut seen = SeenHashes {
            hashes: vec![5, 3, 5, 1, 3, 3],
            runs: vec![vec![1, 4], vec![2, 4, 5]],
            repeated: 0,
        };
        seen.settle();
        // Own hashes: 3 three times (2 repeats), 5 twice (1) → [1, 3, 5].
        // Run [1, 4]: 1 again (1) → [1, 3, 4, 5]. Run [2, 4, 5]: 4 and 5
        // again (2) → [1, 2, 3, 4, 5]. 2 + 1 + 1 + 2 = 6.
        assert_eq!(seen.repeated, 6);
        assert_eq!(seen.hashes, vec![1, 2, 3, 4, 5]);
        // Settling again changes nothing.
        seen.settle();
        assert_eq!((seen.repeated, seen.hashes.len()), (6, 5));
    }

    /// Past the memory limit the first pass fails with a resources error
    /// (its sets cannot spill), which `check` recognises by its root and
    /// answers with the exact pass instead of failing the query.
    #[tokio::test]
    async fn past_the_memory_limit_the_first_pass_says_so() {
        use datafusion::execution::memory_pool::FairSpillPool;
        use datafusion::execution::runtime_env::RuntimeEnvBuilder;
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(64 * 1024)))
            .build_arc()
            .unwrap();
        let ctx = SessionContext::new_with_config_rt(SessionConfig::new(), runtime);
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, true)]));
        // 200,000 distinct keys: their hashes alone are 1.6 MB, past 64 KiB.
        let keys: Vec<String> = (0..200_000).map(|i| format!("key-{i}")).collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(StringArray::from_iter_values(keys))],
        )
        .unwrap();
        let table = MemTable::try_new(schema, vec![vec![batch]]).unwrap();
        let rows = ctx.read_table(Arc::new(table)).unwrap();
        let err = first_pass(rows, col("k")).await.unwrap_err();
        assert!(
            matches!(err.find_root(), DataFusionError::ResourcesExhausted(_)),
            "{err}"
        );
    }
}
