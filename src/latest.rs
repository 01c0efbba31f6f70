//! `latest_by(value, at, tie)`: the value of the row with the greatest
//! `(at, tie)` in each group — the state of an entity as of a day.
//!
//! A snapshot metric reads each deal's latest history row before the day.
//! Written as `row_number() OVER (PARTITION BY deal ORDER BY at DESC, id
//! DESC) = 1` that is a sort of every history row (3.7 M at scale 200) by an
//! 18-character id; as an aggregate it is one hash aggregate that keeps, per
//! group, where its best row is and compares each new row against it
//! (docs/performance.md). Rows with a null `at` rank below every other row,
//! and a null `tie` below every other tie, as `DESC NULLS LAST` orders them.
//!
//! The groups accumulator keeps references into the batches it has seen
//! (batch, row) rather than copying values; when those batches hold many
//! more rows than there are groups it compacts them into one batch of the
//! current bests, so memory stays proportional to the groups.

use std::cmp::Ordering;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, DynComparator, make_comparator, new_null_array,
};
use datafusion::arrow::compute::{SortOptions, interleave};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, Expr, GroupsAccumulator, Signature,
    Volatility,
};

/// `latest_by(value, at, tie)` as an expression.
pub fn latest_by(value: Expr, at: Expr, tie: Expr) -> Expr {
    udaf().call(vec![value, at, tie])
}

/// The aggregate, for a session's function registry.
pub fn udaf() -> AggregateUDF {
    AggregateUDF::new_from_impl(LatestBy::new())
}

/// The aggregate function itself; see the module documentation.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct LatestBy {
    signature: Signature,
}

impl LatestBy {
    pub fn new() -> Self {
        LatestBy {
            signature: Signature::any(3, Volatility::Immutable),
        }
    }
}

impl Default for LatestBy {
    fn default() -> Self {
        Self::new()
    }
}

impl AggregateUDFImpl for LatestBy {
    fn name(&self) -> &str {
        "latest_by"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[0].clone())
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(["value", "at", "tie"]
            .iter()
            .zip(args.input_fields)
            .map(|(part, f)| {
                Arc::new(Field::new(
                    format_state_name(args.name, part),
                    f.data_type().clone(),
                    true,
                ))
            })
            .collect())
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let types: Vec<DataType> = args
            .expr_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        Ok(Box::new(LatestRow {
            seen: false,
            best: types
                .iter()
                .map(ScalarValue::try_from)
                .collect::<Result<Vec<_>>>()?,
        }))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(LatestGroups {
            kept: KeptRows::new(
                args.expr_fields
                    .iter()
                    .map(|f| f.data_type().clone())
                    .collect(),
                1,
                2,
            ),
            best: Vec::new(),
        }))
    }
}

/// Nulls first in ascending order is "null is lowest".
pub(crate) const NULLS_LOWEST: SortOptions = SortOptions {
    descending: false,
    nulls_first: true,
};

/// One group (no GROUP BY): the best row as scalars.
#[derive(Debug)]
struct LatestRow {
    /// Whether any row was offered: a row's `at` may itself be null, so
    /// nulls in `best` cannot say "none yet".
    seen: bool,
    /// value, at, tie of the best row so far.
    best: Vec<ScalarValue>,
}

impl LatestRow {
    fn offer(&mut self, columns: &[ArrayRef]) -> Result<()> {
        let (at, tie) = (&columns[1], &columns[2]);
        for i in 0..at.len() {
            let row_at = ScalarValue::try_from_array(at, i)?;
            let row_tie = ScalarValue::try_from_array(tie, i)?;
            let better = !self.seen
                || cmp_scalar(&row_at, &self.best[1])
                    .then_with(|| cmp_scalar(&row_tie, &self.best[2]))
                    == Ordering::Greater;
            if better {
                self.seen = true;
                self.best = vec![
                    ScalarValue::try_from_array(&columns[0], i)?,
                    row_at,
                    row_tie,
                ];
            }
        }
        Ok(())
    }
}

/// Scalars compared with nulls lowest.
fn cmp_scalar(a: &ScalarValue, b: &ScalarValue) -> Ordering {
    match (a.is_null(), b.is_null()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => a.partial_cmp(b).unwrap_or(Ordering::Equal),
    }
}

impl Accumulator for LatestRow {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.offer(values)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.offer(states)
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(self.best[0].clone())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(self.best.clone())
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.best.iter().map(ScalarValue::size).sum::<usize>()
    }
}

/// Many groups: per group, where its best row is among the kept batches.
struct LatestGroups {
    /// The (value, at, tie) columns of the batches rows are kept from.
    kept: KeptRows,
    /// Per group: (batch, row) of its best row, if it has one.
    best: Vec<Option<(usize, usize)>>,
}

/// The memory behind a set of arrays, each buffer counted once. A final
/// aggregate's input is the partial aggregates' output cut into batches:
/// slices of a few large arrays. Summing each slice's
/// `get_array_memory_size` counted the whole array once per slice (7.6 GB
/// for 140 MB of a twelve-month open_pipeline series at scale 200), and the
/// memory pool made the aggregate spill 300 MB it never held.
#[derive(Default)]
struct Held {
    buffers: std::collections::HashSet<usize>,
    bytes: usize,
}

impl Held {
    fn add(&mut self, array: &dyn Array) {
        self.add_data(&array.to_data());
    }

    fn add_data(&mut self, data: &datafusion::arrow::array::ArrayData) {
        let nulls = data.nulls().map(|n| n.buffer());
        for buffer in data.buffers().iter().chain(nulls) {
            if self.buffers.insert(buffer.data_ptr().as_ptr() as usize) {
                self.bytes += buffer.capacity();
            }
        }
        for child in data.child_data() {
            self.add_data(child);
        }
    }

    fn clear(&mut self) {
        self.buffers.clear();
        self.bytes = 0;
    }
}

/// The batches an accumulator keeps rows of, referred to as (batch, row)
/// rather than copied value by value (`latest_by`, and `latest_spans` in
/// crate::latest_spans), with the memory they hold counted once per buffer
/// and their rows compared by `(at, tie)`.
pub(crate) struct KeptRows {
    /// Each column's type, in the accumulator's order.
    types: Vec<DataType>,
    /// Where `at` and `tie` are among the columns.
    at: usize,
    tie: usize,
    batches: Vec<Vec<ArrayRef>>,
    rows: usize,
    held: Held,
}

impl KeptRows {
    pub(crate) fn new(types: Vec<DataType>, at: usize, tie: usize) -> Self {
        KeptRows {
            types,
            at,
            tie,
            batches: Vec::new(),
            rows: 0,
            held: Held::default(),
        }
    }

    /// Keeps `columns` (one batch); its number.
    pub(crate) fn push(&mut self, columns: &[ArrayRef]) -> usize {
        for c in columns {
            self.held.add(c.as_ref());
        }
        self.rows += columns.first().map_or(0, |c| c.len());
        self.batches.push(columns.to_vec());
        self.batches.len() - 1
    }

    /// The rows kept over every batch.
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// Column `c` of the rows at `indices` (batch, row); the batch number
    /// one past the last kept is a row of nulls.
    pub(crate) fn gather(&self, c: usize, indices: &[(usize, usize)]) -> Result<ArrayRef> {
        let nulls = new_null_array(&self.types[c], 1);
        let mut arrays: Vec<&dyn Array> = self.batches.iter().map(|b| b[c].as_ref()).collect();
        arrays.push(nulls.as_ref());
        Ok(interleave(&arrays, indices)?)
    }

    /// Keeps only the rows at `indices`, as one batch in that order (row
    /// `k` is `indices[k]`): the caller renumbers what it refers to.
    pub(crate) fn compact(&mut self, indices: &[(usize, usize)]) -> Result<()> {
        let columns = (0..self.types.len())
            .map(|c| self.gather(c, indices))
            .collect::<Result<Vec<_>>>()?;
        self.clear();
        self.push(&columns);
        Ok(())
    }

    pub(crate) fn clear(&mut self) {
        self.batches.clear();
        self.held.clear();
        self.rows = 0;
    }

    /// The memory the kept batches hold.
    pub(crate) fn size(&self) -> usize {
        self.held.bytes + self.held.buffers.capacity() * std::mem::size_of::<usize>()
    }

    /// Compares the rows of kept batch `here` with the other kept rows.
    pub(crate) fn comparing(&self, here: usize) -> Later<'_> {
        Later {
            kept: self,
            here,
            made: (0..self.batches.len()).map(|_| None).collect(),
        }
    }
}

/// Whether a row of one kept batch is later by `(at, tie)` than a kept row
/// (nulls lowest), with the comparators to each other batch made on first use.
pub(crate) struct Later<'a> {
    kept: &'a KeptRows,
    here: usize,
    made: Vec<Option<(DynComparator, DynComparator)>>,
}

impl Later<'_> {
    /// Row `i` of the batch compared is later than row `r` of batch `b`.
    pub(crate) fn than(&mut self, i: usize, (b, r): (usize, usize)) -> Result<bool> {
        if self.made[b].is_none() {
            let (here, there) = (&self.kept.batches[self.here], &self.kept.batches[b]);
            let (at, tie) = (self.kept.at, self.kept.tie);
            self.made[b] = Some((
                make_comparator(here[at].as_ref(), there[at].as_ref(), NULLS_LOWEST)?,
                make_comparator(here[tie].as_ref(), there[tie].as_ref(), NULLS_LOWEST)?,
            ));
        }
        let (cmp_at, cmp_tie) = self.made[b].as_ref().expect("made above");
        Ok(cmp_at(i, r).then_with(|| cmp_tie(i, r)) == Ordering::Greater)
    }
}

/// A FILTER clause on `name`, refused when DataFusion skips a partial
/// aggregate and asks for each row as its own state: a filtered row has no
/// state to stand for "no row", and canon never writes one.
pub(crate) fn refuse_filter(name: &str, filter: Option<&BooleanArray>) -> Result<()> {
    match filter {
        Some(_) => datafusion::common::not_impl_err!(
            "{name} with a FILTER clause cannot skip partial aggregation"
        ),
        None => Ok(()),
    }
}

impl LatestGroups {
    fn offer(
        &mut self,
        columns: &[ArrayRef],
        groups: &[usize],
        filter: Option<&BooleanArray>,
        total_groups: usize,
    ) -> Result<()> {
        self.best.resize(total_groups, None);
        let here = self.kept.push(&columns[..3]);
        let mut later = self.kept.comparing(here);
        for (i, &g) in groups.iter().enumerate() {
            if let Some(f) = filter
                && !(f.is_valid(i) && f.value(i))
            {
                continue;
            }
            let better = match self.best[g] {
                None => true,
                Some(kept) => later.than(i, kept)?,
            };
            if better {
                self.best[g] = Some((here, i));
            }
        }
        if self.kept.rows() > 2 * self.best.len() + 8192 {
            self.compact()?;
        }
        Ok(())
    }

    /// The (value, at, tie) columns of the groups' best rows, in group
    /// order (null for a group without one).
    fn gather(&self, groups: &[Option<(usize, usize)>]) -> Result<[ArrayRef; 3]> {
        let indices = Self::indices(&self.kept, groups);
        Ok([
            self.kept.gather(0, &indices)?,
            self.kept.gather(1, &indices)?,
            self.kept.gather(2, &indices)?,
        ])
    }

    /// Where each group's best row is; the null row for a group without one.
    fn indices(kept: &KeptRows, groups: &[Option<(usize, usize)>]) -> Vec<(usize, usize)> {
        let null_row = kept.batches.len();
        groups.iter().map(|b| b.unwrap_or((null_row, 0))).collect()
    }

    /// Replaces the kept batches by one holding only the current bests.
    fn compact(&mut self) -> Result<()> {
        self.kept.compact(&Self::indices(&self.kept, &self.best))?;
        for (g, b) in self.best.iter_mut().enumerate() {
            if b.is_some() {
                *b = Some((0, g));
            }
        }
        Ok(())
    }

    fn take(&mut self, emit_to: EmitTo) -> Result<[ArrayRef; 3]> {
        let taken = emit_to.take_needed(&mut self.best);
        let out = self.gather(&taken)?;
        if self.best.is_empty() {
            self.kept.clear();
        }
        Ok(out)
    }
}

impl GroupsAccumulator for LatestGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.offer(values, group_indices, opt_filter, total_num_groups)
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.offer(values, group_indices, None, total_num_groups)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let [value, _, _] = self.take(emit_to)?;
        Ok(value)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(self.take(emit_to)?.to_vec())
    }

    /// Each row as its own state (value, at, tie): DataFusion 55 skips a
    /// partial aggregate that barely reduces its input (more than 80 % of
    /// the first 100 k rows are distinct groups) and asks every accumulator
    /// for this (its trait has no way left to decline). A daily series
    /// groups history rows by (entity, day), nearly one row per group, and
    /// failed with "latest_by does not convert rows to states". canon never
    /// calls latest_by with a FILTER clause; a filtered row has no state to
    /// stand for "no row" (a null time ranks as a real row), so one is
    /// refused rather than answered differently.
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        refuse_filter("latest_by", opt_filter)?;
        Ok(values[..3].to_vec())
    }

    fn size(&self) -> usize {
        self.kept.size() + self.best.capacity() * std::mem::size_of::<Option<(usize, usize)>>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{AsArray, RecordBatch};
    use datafusion::arrow::array::{Int64Array, StringArray, TimestampMicrosecondArray};
    use datafusion::arrow::datatypes::{Int64Type, Schema};
    use datafusion::functions_aggregate::expr_fn::first_value;
    use datafusion::prelude::{SessionContext, col};

    /// Deal 1: rows at t=10 (id a, amount 100) and t=20 (ids b and c, amounts
    /// 200 and 300): the tie at t=20 goes to the higher id c → 300.
    /// Deal 2: rows at t=5 (id z, 7) and a null time (id y, 8): the null
    /// ranks lowest → 7. Deal 3: only a null-time row (id q, 9) → 9.
    fn batches() -> Vec<RecordBatch> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("deal", DataType::Int64, false),
            Field::new(
                "at",
                DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Microsecond, None),
                true,
            ),
            Field::new("id", DataType::Utf8, true),
            Field::new("amount", DataType::Int64, true),
        ]));
        let batch = |deal: Vec<i64>, at: Vec<Option<i64>>, id: Vec<&str>, amount: Vec<i64>| {
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from(deal)),
                    Arc::new(TimestampMicrosecondArray::from(at)),
                    Arc::new(StringArray::from(id)),
                    Arc::new(Int64Array::from(amount)),
                ],
            )
            .unwrap()
        };
        vec![
            batch(
                vec![1, 2, 1],
                vec![Some(20), Some(5), Some(10)],
                vec!["b", "z", "a"],
                vec![200, 7, 100],
            ),
            batch(
                vec![1, 2, 3],
                vec![Some(20), None, None],
                vec!["c", "y", "q"],
                vec![300, 8, 9],
            ),
        ]
    }

    async fn latest(group: bool) -> Vec<(i64, i64)> {
        latest_in(SessionContext::new(), group).await
    }

    async fn latest_in(ctx: SessionContext, group: bool) -> Vec<(i64, i64)> {
        // One row per partition so the partial/final (state, merge) path runs.
        let b = batches();
        let frame = ctx
            .read_batches(b)
            .unwrap()
            .repartition(datafusion::logical_expr::Partitioning::RoundRobinBatch(2))
            .unwrap();
        let agg = latest_by(col("amount"), col("at"), col("id")).alias("v");
        let out = if group {
            frame
                .aggregate(vec![col("deal")], vec![agg])
                .unwrap()
                .sort(vec![col("deal").sort(true, true)])
                .unwrap()
        } else {
            frame
                .filter(col("deal").eq(datafusion::prelude::lit(1i64)))
                .unwrap()
                .aggregate(
                    vec![],
                    vec![agg, first_value(col("deal"), vec![]).alias("deal")],
                )
                .unwrap()
                .select(vec![col("deal"), col("v")])
                .unwrap()
        };
        let mut rows = Vec::new();
        for b in out.collect().await.unwrap() {
            let d = b.column(0).as_primitive::<Int64Type>();
            let v = b.column(1).as_primitive::<Int64Type>();
            for i in 0..b.num_rows() {
                rows.push((d.value(i), v.value(i)));
            }
        }
        rows
    }

    #[tokio::test]
    async fn the_latest_row_wins_ties_to_the_highest_id_and_nulls_rank_lowest() {
        assert_eq!(latest(true).await, vec![(1, 300), (2, 7), (3, 9)]);
    }

    /// DataFusion skips the partial aggregate when its first rows are
    /// mostly distinct groups, and then each row goes to the final
    /// aggregate as its own state (`convert_to_state`). Here it skips after
    /// the first row (threshold 1 row, any ratio): the same answers.
    #[tokio::test]
    async fn the_same_when_the_partial_aggregate_is_skipped() {
        let mut config = datafusion::prelude::SessionConfig::new();
        let execution = &mut config.options_mut().execution;
        execution.skip_partial_aggregation_probe_rows_threshold = 1;
        execution.skip_partial_aggregation_probe_ratio_threshold = 0.0;
        let ctx = SessionContext::new_with_config(config);
        assert_eq!(latest_in(ctx, true).await, vec![(1, 300), (2, 7), (3, 9)]);
    }

    #[tokio::test]
    async fn without_groups_too() {
        assert_eq!(latest(false).await, vec![(1, 300)]);
    }

    #[test]
    fn without_groups_null_times_still_tie_to_the_highest_id() {
        // Three rows, all with a null time: ids a (1), c (3), b (2) in that
        // order. Nulls rank equal, so the tie decides: c → 3 (not the last
        // row seen, b → 2).
        let mut acc = LatestRow {
            seen: false,
            best: vec![ScalarValue::Int64(None); 3],
        };
        let value: ArrayRef = Arc::new(Int64Array::from(vec![1, 3, 2]));
        let at: ArrayRef = Arc::new(Int64Array::from(vec![None::<i64>; 3]));
        let tie: ArrayRef = Arc::new(StringArray::from(vec!["a", "c", "b"]));
        acc.update_batch(&[value, at, tie]).unwrap();
        assert_eq!(acc.evaluate().unwrap(), ScalarValue::Int64(Some(3)));
    }

    #[test]
    fn compaction_keeps_each_groups_best() {
        // Two groups, many rows: compaction runs and the bests survive it.
        let mut acc = LatestGroups {
            kept: KeptRows::new(vec![DataType::Int64, DataType::Int64, DataType::Utf8], 1, 2),
            best: Vec::new(),
        };
        for round in 0..10i64 {
            let n = 2000usize;
            let values: ArrayRef = Arc::new(Int64Array::from(
                (0..n as i64)
                    .map(|i| round * 10_000 + i)
                    .collect::<Vec<_>>(),
            ));
            let at: ArrayRef = Arc::new(Int64Array::from(vec![round; n]));
            let tie: ArrayRef = Arc::new(StringArray::from(
                (0..n).map(|i| format!("{i:05}")).collect::<Vec<_>>(),
            ));
            let groups: Vec<usize> = (0..n).map(|i| i % 2).collect();
            acc.update_batch(&[values, at, tie], &groups, None, 2)
                .unwrap();
        }
        // The last round (at = 9) wins; within it the highest id per group:
        // group 0 → i = 1998 (id 01998), group 1 → i = 1999.
        let out = acc.evaluate(EmitTo::All).unwrap();
        let out = out.as_primitive::<Int64Type>();
        assert_eq!(out.values().to_vec(), vec![91_998, 91_999]);
        assert!(acc.kept.is_empty());
    }
}
