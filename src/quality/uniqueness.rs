//! Key uniqueness: no key of an entity held by two rows of the rows a
//! result counts or looks up. A duplicated deal is summed twice; a
//! duplicated account (or billing account, …) doubles every row joined to
//! it.
//!
//! Two passes, the second only when the first finds something. The first
//! counts the rows whose 64-bit key hash an earlier row already had
//! (`repeated_hashes`: the partitions' hashes gathered, and the few that
//! share a place in a bitmap sorted, [`count_repeats`]): several times cheaper than grouping
//! key strings, and exact in the direction that matters, since two rows
//! with the same key always have the same hash, so a clean first pass
//! proves the key unique. A repeated hash is either a repeated key or
//! (about once in 10^7 tables of a million keys) two keys that collide;
//! the second pass tells them apart by grouping the key itself (`GROUP BY
//! key HAVING count(*) > 1`, the first few in key order), and only when it
//! finds a repeated key are the rows' files looked up. So a clean table
//! costs one scan of its key column and two passes over its hashes; measured in
//! docs/performance.md. The hashes cannot spill: a first pass that meets
//! the memory limit proves nothing, and the exact pass (which spills)
//! decides instead.

use crate::run::memory::WithinMemory;
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
    // The first pass reads the rows as they are: it passes over a row with
    // no key itself, where a filter on the key pushed into the Parquet scan
    // had the reader decode the key column twice (once to filter, once to
    // hash: the gates' CPU on nrr 115 → 81 ms, docs/performance.md). The hashes cannot
    // spill: past the memory limit the first pass proves nothing, and the
    // exact pass below (which spills) decides.
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
        .filter(key.clone().is_not_null())?
        .select(vec![key.alias("_key")])?
        .aggregate(vec![col("_key")], vec![count(lit(1i64)).alias("_n")])?
        .filter(col("_n").gt(lit(1i64)))?;
    let first = dups
        .clone()
        .sort(vec![col("_key").sort(true, true)])?
        .limit(0, Some(EXAMPLES))?
        .collect_within_memory()
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
    let total = dups.count_within_memory().await?;
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
    crate::run::background::collect(rows.aggregate(vec![], vec![repeated_hashes(key).alias("_r")])?)
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
/// and aggregates use, with a fixed seed, so partitions agree), and the
/// final step counts the repeats among them all. A `GROUP BY
/// hash` did the same through a repartition and a grouped aggregate, at
/// several times the CPU and memory (docs/performance.md). Built into the
/// gate's plan directly and never registered, so definitions cannot call it.
fn repeated_hashes(key: Expr) -> Expr {
    repeated_hashes_udaf().call(vec![key])
}

/// The aggregate behind [`repeated_hashes`], for a cluster's codec to read
/// a gate's plan back with (it is registered nowhere).
pub fn repeated_hashes_udaf() -> AggregateUDF {
    AggregateUDF::new_from_impl(RepeatedHashes {
        signature: Signature::any(1, Volatility::Immutable),
    })
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
        let list = |name| {
            Arc::new(Field::new(
                format_state_name(args.name, name),
                DataType::List(hash_item()),
                true,
            ))
        };
        Ok(vec![list("hashes"), list("bucket_lengths")])
    }

    fn accumulator(&self, _: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        Ok(Box::<SeenHashes>::default())
    }
}

/// How many leading bits of a hash pick its bucket: 256 buckets, so a
/// million keys make buckets of about 4,000 hashes, whose bitmaps
/// ([`count_repeats`]) fit in a core's first-level cache.
const BUCKET_BITS: u32 = 8;

/// The key hashes seen, by bucket (their leading bits): equal hashes
/// always share a bucket, so the final step counts repeats bucket by
/// bucket, each small enough to stay in cache, where one bitmap over all
/// of nrr's 807 k charges did not (docs/performance.md).
#[derive(Debug)]
struct SeenHashes {
    buckets: Vec<Vec<u64>>,
    /// The current batch's hashes, before they are spread to buckets.
    batch: Vec<u64>,
}

impl Default for SeenHashes {
    fn default() -> Self {
        SeenHashes {
            buckets: vec![Vec::new(); 1 << BUCKET_BITS],
            batch: Vec::new(),
        }
    }
}

impl SeenHashes {
    fn bucket_of(hash: u64) -> usize {
        (hash >> (64 - BUCKET_BITS)) as usize
    }

    fn held(&self) -> usize {
        self.buckets.iter().map(Vec::len).sum()
    }
}

/// How many of `hashes` equal an earlier one; `skip` leading bits, which
/// they all share, are passed over. Two passes over a pair of bitmaps
/// indexed by a hash's next bits, about 16 bits per hash: the first marks
/// the places met twice, the second keeps the hashes at those places (a
/// few percent of them), and only those few are sorted to count exact
/// repeats. Every hash that repeats lands at a place met twice, so none is
/// missed; a place shared by different hashes only costs a place in the
/// sort. Sorting all the hashes (and merging the partitions' sorted lists)
/// did the same at about three times the CPU on nrr's 807 k charges
/// (docs/performance.md).
fn count_repeats(hashes: &[u64], skip: u32) -> u64 {
    if hashes.len() < 2 {
        return 0;
    }
    let bits = (hashes.len() * 16).next_power_of_two().max(64);
    let shift = 64 - bits.trailing_zeros();
    let place = |h: u64| {
        let at = ((h << skip) >> shift) as usize;
        (at / 64, 1u64 << (at % 64))
    };
    let mut met = vec![0u64; bits / 64];
    let mut met_again = vec![0u64; bits / 64];
    for &h in hashes {
        let (word, bit) = place(h);
        met_again[word] |= met[word] & bit;
        met[word] |= bit;
    }
    let mut shared: Vec<u64> = hashes
        .iter()
        .copied()
        .filter(|&h| {
            let (word, bit) = place(h);
            met_again[word] & bit != 0
        })
        .collect();
    shared.sort_unstable();
    let before = shared.len();
    shared.dedup();
    (before - shared.len()) as u64
}

impl Accumulator for SeenHashes {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        let keys = &values[0];
        self.batch.clear();
        self.batch.resize(keys.len(), 0);
        create_hashes(
            std::slice::from_ref(keys),
            &RandomState::default(),
            &mut self.batch,
        )?;
        // A row with no key is no key: its hash is dropped.
        match keys.logical_nulls() {
            None => {
                for &hash in &self.batch {
                    self.buckets[Self::bucket_of(hash)].push(hash);
                }
            }
            Some(nulls) => {
                for (&hash, valid) in self.batch.iter().zip(nulls.iter()) {
                    if valid {
                        self.buckets[Self::bucket_of(hash)].push(hash);
                    }
                }
            }
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        // A partial state is its hashes bucket after bucket, and each
        // bucket's length (`state`).
        let (lists, lengths) = (states[0].as_list::<i32>(), states[1].as_list::<i32>());
        for row in 0..lists.len() {
            if !lists.is_valid(row) || !lengths.is_valid(row) {
                continue;
            }
            let (hashes, lengths) = (lists.value(row), lengths.value(row));
            let hashes = hashes.as_primitive::<UInt64Type>().values();
            let lengths = lengths.as_primitive::<UInt64Type>().values();
            if lengths.len() != self.buckets.len()
                || lengths.iter().sum::<u64>() != hashes.len() as u64
            {
                return Err(DataFusionError::Internal(
                    "a partial key-hash state does not add up".into(),
                ));
            }
            let mut start = 0;
            for (bucket, &length) in self.buckets.iter_mut().zip(lengths) {
                let end = start + length as usize;
                bucket.extend_from_slice(&hashes[start..end]);
                start = end;
            }
        }
        Ok(())
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        // The hashes go on as a copy, so a second call (which DataFusion
        // does not make) would still see every hash.
        let list = |values: Vec<u64>| {
            let values = UInt64Array::from(values);
            ScalarValue::List(Arc::new(ListArray::new(
                hash_item(),
                OffsetBuffer::from_lengths([values.len()]),
                Arc::new(values),
                None,
            )))
        };
        let lengths = self.buckets.iter().map(|b| b.len() as u64).collect();
        Ok(vec![list(self.buckets.concat()), list(lengths)])
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        let repeats = self
            .buckets
            .iter()
            .map(|bucket| count_repeats(bucket, BUCKET_BITS))
            .sum();
        Ok(ScalarValue::UInt64(Some(repeats)))
    }

    fn size(&self) -> usize {
        // The hashes, and as much again for the state's copy (counting
        // needs far less: one bucket's bitmaps at a time).
        let capacity: usize = self.buckets.iter().map(Vec::capacity).sum();
        std::mem::size_of_val(self)
            + (capacity + self.held() + self.batch.capacity()) * std::mem::size_of::<u64>()
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
                    .collect_within_memory()
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

    /// Counting finds every repeat, however the hashes are ordered, and
    /// counts none for different hashes that share a bitmap place (the
    /// same top bits).
    #[test]
    fn counting_finds_each_repeat_and_only_repeats() {
        // 5 three times (2 repeats), 9 twice (1), 7 once: 3.
        assert_eq!(count_repeats(&[5, 9, 7, 5, 9, 5], 0), 3);
        // Six hashes give 128 places, indexed by the top 7 bits: these
        // share place 64 and differ below it. None repeats.
        let top = 1u64 << 63;
        assert_eq!(count_repeats(&[top | 1, top | 2, top | 3, 4, 5, 6], 0), 0);
        // The same with one of them twice, far apart: 1.
        let twice = [top | 1, top | 2, 4, 5, top | 3, top | 2];
        assert_eq!(count_repeats(&twice, 0), 1);
        // Skipping the leading bit (a bucket's), the places come from the
        // next 7: top | 1 and 1 then share place 0 and stay different.
        assert_eq!(count_repeats(&[top | 1, 1, top | 1], 1), 1);
        // Too few to repeat.
        assert_eq!(count_repeats(&[], 0), 0);
        assert_eq!(count_repeats(&[u64::MAX], 0), 0);
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
