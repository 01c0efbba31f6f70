//! `latest_spans(position, value, at, tie)`: per group (an entity), the
//! states it holds over a series of instants, as spans of positions.
//!
//! A snapshot series pairs each entity with its state at each instant: the
//! latest history row before the instant's end. Each history row has the
//! position of the first instant it is before ([`crate::compile::instants`]);
//! within one position the state is the latest row by `(at, tie)` (as
//! [`crate::latest`] picks it), and it holds from its position to the next
//! position the entity has a row at. Grouped by (entity, position) and then
//! paired with the next position by a LEAD over a sort of every group, that
//! was three operators over 1.7 M groups on a twelve-month open_pipeline
//! series at scale 200, where the same history grouped by entity alone is
//! 0.9 M groups: this aggregate groups by the entity and keeps, per group,
//! its few positions with where each one's latest row is, and emits each
//! group's spans in position order: `[{from, to, state}, …]`, `to` being the
//! next span's `from` (null for the last: it holds to the series' end).
//! Unnested, that is one row per span.
//!
//! Positions are compared as `at` is: `at` must be the column the positions
//! were computed from (a later position is a later `at`), so the state at
//! an instant is that of the latest position at or before it. A row with a
//! null position is at no instant and is left out.
//!
//! Like `latest_by`, it keeps references into the batches it has seen
//! (batch, row) and compacts them when they hold many more rows than
//! spans. Its state between a partial and a final aggregate is four lists
//! per group (positions, values, ats, ties), so the final aggregate merges
//! per-partition spans as it merges rows.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, ListArray, StructArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Int64Type};
use datafusion::common::{Result, exec_err, not_impl_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, Expr, GroupsAccumulator, Signature,
    Volatility,
};

use crate::latest::{KeptRows, refuse_filter};

/// The fields of each span the aggregate emits.
pub const FROM: &str = "from";
pub const TO: &str = "to";
pub const STATE: &str = "state";

/// `latest_spans(position, value, at, tie)` as an expression.
pub fn latest_spans(position: Expr, value: Expr, at: Expr, tie: Expr) -> Expr {
    udaf().call(vec![position, value, at, tie])
}

/// The aggregate, for a session's function registry.
pub fn udaf() -> AggregateUDF {
    AggregateUDF::new_from_impl(LatestSpans::new())
}

/// The aggregate function itself; see the module documentation.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct LatestSpans {
    signature: Signature,
}

impl LatestSpans {
    pub fn new() -> Self {
        LatestSpans {
            signature: Signature::any(4, Volatility::Immutable),
        }
    }
}

impl Default for LatestSpans {
    fn default() -> Self {
        Self::new()
    }
}

/// A span: `{from, to, state}` with `state` typed as the value.
fn span_fields(value: &DataType) -> Fields {
    Fields::from(vec![
        Field::new(FROM, DataType::Int64, false),
        Field::new(TO, DataType::Int64, true),
        Field::new(STATE, value.clone(), true),
    ])
}

fn list_of(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new_list_field(item, true)))
}

impl AggregateUDFImpl for LatestSpans {
    fn name(&self) -> &str {
        "latest_spans"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        if arg_types[0] != DataType::Int64 {
            return plan_err!(
                "latest_spans' positions must be Int64, not {}",
                arg_types[0]
            );
        }
        Ok(list_of(DataType::Struct(span_fields(&arg_types[1]))))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(["position", "value", "at", "tie"]
            .iter()
            .zip(args.input_fields)
            .map(|(part, f)| {
                Arc::new(Field::new(
                    format_state_name(args.name, part),
                    list_of(f.data_type().clone()),
                    true,
                ))
            })
            .collect())
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        not_impl_err!("latest_spans is computed per group (GROUP BY the entity)")
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(SpanGroups::new(
            args.expr_fields
                .iter()
                .map(|f| f.data_type().clone())
                .collect(),
        )))
    }
}

/// One position of a group: where its latest row is among the kept batches.
#[derive(Debug, Clone, Copy)]
struct Entry {
    position: i64,
    batch: usize,
    row: usize,
}

/// One group's entries in position order: the first inline, so that a
/// group with one position (most entities of a long series: everything
/// before its first instant is position 0) costs no allocation and one
/// memory access, not a vector's two.
#[derive(Debug, Default)]
struct Group {
    head: Option<Entry>,
    tail: Vec<Entry>,
}

impl Group {
    fn len(&self) -> usize {
        usize::from(self.head.is_some()) + self.tail.len()
    }

    fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.head.iter().chain(&self.tail)
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = &mut Entry> {
        self.head.iter_mut().chain(&mut self.tail)
    }
}

/// Per group, its positions' latest rows among the kept batches.
struct SpanGroups {
    /// The (position, value, at, tie) columns of the batches rows are kept from.
    kept: KeptRows,
    /// Per group, one entry per position it has a row at, in position order.
    spans: Vec<Group>,
    /// Entries over every group.
    entries: usize,
    /// Entries the groups' vectors (beyond each first) have room for (what
    /// they hold in memory: a first push makes room for four).
    capacity: usize,
}

impl SpanGroups {
    /// `types`: of the position, value, at and tie.
    fn new(types: Vec<DataType>) -> Self {
        SpanGroups {
            kept: KeptRows::new(types, 2, 3),
            spans: Vec::new(),
            entries: 0,
            capacity: 0,
        }
    }

    fn offer(
        &mut self,
        columns: &[ArrayRef],
        groups: &[usize],
        filter: Option<&BooleanArray>,
        total_groups: usize,
    ) -> Result<()> {
        let [position, _, _, _] = columns else {
            return exec_err!("latest_spans takes a position, a value, an at and a tie");
        };
        let Some(positions) = position.as_primitive_opt::<Int64Type>() else {
            return exec_err!("latest_spans' positions must be Int64");
        };
        self.spans.resize_with(total_groups, Group::default);
        let here = self.kept.push(columns);
        let mut later = self.kept.comparing(here);
        for (i, &g) in groups.iter().enumerate() {
            if let Some(f) = filter
                && !(f.is_valid(i) && f.value(i))
            {
                continue;
            }
            if positions.is_null(i) {
                continue;
            }
            let p = positions.value(i);
            let entry = Entry {
                position: p,
                batch: here,
                row: i,
            };
            let group = &mut self.spans[g];
            let best = match &mut group.head {
                None => {
                    group.head = Some(entry);
                    self.entries += 1;
                    continue;
                }
                Some(head) if head.position == p => head,
                Some(head) if p < head.position => {
                    let second = std::mem::replace(head, entry);
                    let before = group.tail.capacity();
                    group.tail.insert(0, second);
                    self.capacity += group.tail.capacity() - before;
                    self.entries += 1;
                    continue;
                }
                // Kept in position order: a lookup is a binary search (a
                // daily series over years gives an entity thousands of
                // positions), and histories mostly arrive in time order, so
                // an insert appends.
                Some(_) => match group.tail.binary_search_by_key(&p, |e| e.position) {
                    Err(at_index) => {
                        let before = group.tail.capacity();
                        group.tail.insert(at_index, entry);
                        self.capacity += group.tail.capacity() - before;
                        self.entries += 1;
                        continue;
                    }
                    Ok(found) => &mut group.tail[found],
                },
            };
            if later.than(i, (best.batch, best.row))? {
                best.batch = here;
                best.row = i;
            }
        }
        if self.kept.rows() > 2 * self.entries + 8192 {
            self.compact()?;
        }
        Ok(())
    }

    /// Replaces the kept batches by one holding only the entries' rows.
    fn compact(&mut self) -> Result<()> {
        let indices: Vec<(usize, usize)> = self
            .spans
            .iter()
            .flat_map(Group::iter)
            .map(|e| (e.batch, e.row))
            .collect();
        self.kept.compact(&indices)?;
        for (row, e) in self.spans.iter_mut().flat_map(Group::iter_mut).enumerate() {
            e.batch = 0;
            e.row = row;
        }
        Ok(())
    }

    /// The groups `emit_to` asks for, each with its entries in position
    /// order, and the offsets of each group's entries in the flattened list.
    fn take(&mut self, emit_to: EmitTo) -> (Vec<Entry>, OffsetBuffer<i32>) {
        let taken = emit_to.take_needed(&mut self.spans);
        let mut lengths = Vec::with_capacity(taken.len());
        let mut flat = Vec::with_capacity(taken.iter().map(Group::len).sum());
        for group in taken {
            lengths.push(group.len());
            self.capacity -= group.tail.capacity();
            flat.extend(group.iter());
        }
        self.entries -= flat.len();
        (flat, OffsetBuffer::from_lengths(lengths))
    }

    fn release_if_empty(&mut self) {
        if self.spans.is_empty() {
            self.kept.clear();
        }
    }
}

impl GroupsAccumulator for SpanGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.offer(values, group_indices, opt_filter, total_num_groups)
    }

    /// Each state is four lists of one group's entries: merged as rows of
    /// that group.
    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        let lists = values
            .iter()
            .map(|v| {
                v.as_list_opt::<i32>()
                    .ok_or_else(|| {
                        datafusion::error::DataFusionError::Execution(
                            "latest_spans' state must be lists".into(),
                        )
                    })
                    .cloned()
            })
            .collect::<Result<Vec<ListArray>>>()?;
        let offsets = lists[0].value_offsets();
        // The four lists are one group's entries each: alike, or they
        // would pair one row's position with another's value.
        if lists[1..].iter().any(|l| l.value_offsets() != offsets) {
            return exec_err!("latest_spans' state lists are not aligned");
        }
        let (first, last) = (offsets[0] as usize, offsets[offsets.len() - 1] as usize);
        let mut groups = Vec::with_capacity(last - first);
        for (i, &g) in group_indices.iter().enumerate() {
            let n = (offsets[i + 1] - offsets[i]) as usize;
            groups.extend(std::iter::repeat_n(g, n));
        }
        let columns: Vec<ArrayRef> = lists
            .iter()
            .map(|l| l.values().slice(first, last - first))
            .collect();
        self.offer(&columns, &groups, None, total_num_groups)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let (flat, offsets) = self.take(emit_to);
        let indices: Vec<(usize, usize)> = flat.iter().map(|e| (e.batch, e.row)).collect();
        let state = self.kept.gather(1, &indices)?;
        let from = Int64Array::from_iter_values(flat.iter().map(|e| e.position));
        // The next span's start within the same group; the last holds to
        // the series' end.
        let mut to = Vec::with_capacity(flat.len());
        for w in offsets.windows(2) {
            let (start, end) = (w[0] as usize, w[1] as usize);
            for k in start..end {
                to.push((k + 1 < end).then(|| flat[k + 1].position));
            }
        }
        let fields = span_fields(state.data_type());
        let spans = StructArray::try_new(
            fields.clone(),
            vec![Arc::new(from), Arc::new(Int64Array::from(to)), state],
            None,
        )?;
        let item = Arc::new(Field::new_list_field(DataType::Struct(fields), true));
        self.release_if_empty();
        Ok(Arc::new(ListArray::try_new(
            item,
            offsets,
            Arc::new(spans),
            None,
        )?))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let (flat, offsets) = self.take(emit_to);
        let indices: Vec<(usize, usize)> = flat.iter().map(|e| (e.batch, e.row)).collect();
        let mut out = Vec::with_capacity(4);
        for c in 0..4 {
            let values = self.kept.gather(c, &indices)?;
            let item = Arc::new(Field::new_list_field(values.data_type().clone(), true));
            out.push(
                Arc::new(ListArray::try_new(item, offsets.clone(), values, None)?) as ArrayRef,
            );
        }
        self.release_if_empty();
        Ok(out)
    }

    /// Each row as its own state (lists of one entry), for a partial
    /// aggregate DataFusion skips because it barely reduces its input (a
    /// history with one row per entity). As for `latest_by`, a FILTER
    /// clause is refused (canon never writes one).
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        refuse_filter("latest_spans", opt_filter)?;
        values
            .iter()
            .map(|v| {
                let item = Arc::new(Field::new_list_field(v.data_type().clone(), true));
                let offsets = OffsetBuffer::from_lengths(std::iter::repeat_n(1, v.len()));
                Ok(Arc::new(ListArray::try_new(item, offsets, v.clone(), None)?) as ArrayRef)
            })
            .collect()
    }

    fn size(&self) -> usize {
        self.kept.size()
            + self.spans.capacity() * std::mem::size_of::<Group>()
            + self.capacity * std::mem::size_of::<Entry>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{RecordBatch, StringArray};
    use datafusion::arrow::datatypes::Schema;
    use datafusion::prelude::{SessionConfig, SessionContext, col};

    /// (deal, [(from, to, amount)]) of every group, in deal order.
    type Spans = Vec<(i64, Vec<(i64, Option<i64>, i64)>)>;

    /// The spans in a `latest_spans` output over an Int64 value.
    fn spans_of(deals: &dyn Array, lists: &dyn Array) -> Spans {
        let deals = deals.as_primitive::<Int64Type>();
        let lists = lists.as_list::<i32>();
        (0..lists.len())
            .map(|i| {
                let spans = lists.value(i);
                let spans = spans.as_struct();
                let from = spans.column(0).as_primitive::<Int64Type>();
                let to = spans.column(1).as_primitive::<Int64Type>();
                let state = spans.column(2).as_primitive::<Int64Type>();
                let row = (0..spans.len())
                    .map(|k| {
                        (
                            from.value(k),
                            (!to.is_null(k)).then(|| to.value(k)),
                            state.value(k),
                        )
                    })
                    .collect();
                (deals.value(i), row)
            })
            .collect()
    }

    /// Deal 1: position 0 at t=10 (id a, 100) and t=20 (id b, 200): b;
    /// position 2 at t=50 twice (ids c 300, d 400): the tie goes to the
    /// higher id d. So [0, 2) holds 200 and [2, end) holds 400.
    /// Deal 2: position 1 at t=30 (id e, 7) and a row of null position
    /// (id f, 8), at no instant: [1, end) holds 7. Deal 3: only a row of
    /// null position: no span. Rows of one deal are split across batches
    /// (and so partitions), so partial states are merged.
    fn batches() -> Vec<RecordBatch> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("deal", DataType::Int64, false),
            Field::new("pos", DataType::Int64, true),
            Field::new("at", DataType::Int64, true),
            Field::new("id", DataType::Utf8, true),
            Field::new("amount", DataType::Int64, true),
        ]));
        let batch = |deal: Vec<i64>,
                     pos: Vec<Option<i64>>,
                     at: Vec<Option<i64>>,
                     id: Vec<&str>,
                     amount: Vec<i64>| {
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from(deal)),
                    Arc::new(Int64Array::from(pos)),
                    Arc::new(Int64Array::from(at)),
                    Arc::new(StringArray::from(id)),
                    Arc::new(Int64Array::from(amount)),
                ],
            )
            .unwrap()
        };
        vec![
            batch(
                vec![1, 2, 1],
                vec![Some(2), Some(1), Some(0)],
                vec![Some(50), Some(30), Some(20)],
                vec!["d", "e", "b"],
                vec![400, 7, 200],
            ),
            batch(
                vec![1, 2, 1, 3],
                vec![Some(0), None, Some(2), None],
                vec![Some(10), None, Some(50), None],
                vec!["a", "f", "c", "q"],
                vec![100, 8, 300, 9],
            ),
        ]
    }

    fn expected() -> Spans {
        vec![
            (1, vec![(0, Some(2), 200), (2, None, 400)]),
            (2, vec![(1, None, 7)]),
            (3, vec![]),
        ]
    }

    async fn spans_in(ctx: SessionContext) -> Spans {
        let frame = ctx
            .read_batches(batches())
            .unwrap()
            .repartition(datafusion::logical_expr::Partitioning::RoundRobinBatch(2))
            .unwrap()
            .aggregate(
                vec![col("deal")],
                vec![latest_spans(col("pos"), col("amount"), col("at"), col("id")).alias("s")],
            )
            .unwrap()
            .sort(vec![col("deal").sort(true, true)])
            .unwrap();
        let mut out = Vec::new();
        for b in frame.collect().await.unwrap() {
            out.extend(spans_of(b.column(0), b.column(1)));
        }
        out
    }

    #[tokio::test]
    async fn each_position_keeps_its_latest_row_and_holds_to_the_next() {
        assert_eq!(spans_in(SessionContext::new()).await, expected());
    }

    /// With the partial aggregate skipped (each row its own state, as
    /// DataFusion does when the first rows are mostly distinct groups).
    #[tokio::test]
    async fn the_same_when_the_partial_aggregate_is_skipped() {
        let mut config = SessionConfig::new();
        let execution = &mut config.options_mut().execution;
        execution.skip_partial_aggregation_probe_rows_threshold = 1;
        execution.skip_partial_aggregation_probe_ratio_threshold = 0.0;
        assert_eq!(
            spans_in(SessionContext::new_with_config(config)).await,
            expected()
        );
    }

    fn accumulator() -> SpanGroups {
        SpanGroups::new(vec![
            DataType::Int64,
            DataType::Int64,
            DataType::Int64,
            DataType::Utf8,
        ])
    }

    fn columns(pos: Vec<i64>, value: Vec<i64>, at: Vec<i64>, tie: Vec<&str>) -> Vec<ArrayRef> {
        vec![
            Arc::new(Int64Array::from(pos)),
            Arc::new(Int64Array::from(value)),
            Arc::new(Int64Array::from(at)),
            Arc::new(StringArray::from(tie)),
        ]
    }

    /// A partial aggregate under memory pressure emits its first groups
    /// early (EmitTo::First); the rest keep their spans, renumbered.
    #[test]
    fn emitting_the_first_groups_leaves_the_others_whole() {
        let mut acc = accumulator();
        // Group 0: positions 3 (value 30) and 1 (value 10); group 1:
        // position 0 twice, at 5 (value 1) and at 6 (value 2): 2 wins.
        acc.update_batch(
            &columns(
                vec![3, 0, 1, 0],
                vec![30, 1, 10, 2],
                vec![9, 5, 4, 6],
                vec!["x"; 4],
            ),
            &[0, 1, 0, 1],
            None,
            2,
        )
        .unwrap();
        // What the groups hold in memory is counted: group 0's first entry
        // is inline and its second in a vector with room for four (Rust's
        // smallest growth); group 1's one entry is inline.
        assert_eq!((acc.entries, acc.capacity), (3, 4));
        assert!(acc.size() >= 4 * std::mem::size_of::<Entry>() + 2 * std::mem::size_of::<Group>());
        let first = acc.evaluate(EmitTo::First(1)).unwrap();
        let deal0 = Int64Array::from(vec![0]);
        // In position order: [1, 3) holds 10, [3, end) holds 30.
        assert_eq!(
            spans_of(&deal0, first.as_ref()),
            vec![(0, vec![(1, Some(3), 10), (3, None, 30)])]
        );
        let rest = acc.evaluate(EmitTo::All).unwrap();
        assert_eq!(
            spans_of(&Int64Array::from(vec![1]), rest.as_ref()),
            vec![(1, vec![(0, None, 2)])]
        );
        assert_eq!((acc.entries, acc.capacity), (0, 0));
        assert!(acc.kept.is_empty());
    }

    /// A state whose four lists do not hold the same entries is refused,
    /// not merged with one row's position paired with another's value.
    #[test]
    fn misaligned_state_lists_are_refused() {
        let mut acc = accumulator();
        let list = |v: ArrayRef, lengths: Vec<usize>| -> ArrayRef {
            let item = Arc::new(Field::new_list_field(v.data_type().clone(), true));
            Arc::new(
                ListArray::try_new(item, OffsetBuffer::from_lengths(lengths), v, None).unwrap(),
            )
        };
        let [p, v, a, t]: [ArrayRef; 4] =
            columns(vec![0, 1], vec![5, 6], vec![1, 2], vec!["a", "b"])
                .try_into()
                .unwrap();
        let state = vec![
            list(p, vec![2, 0]),
            list(v, vec![1, 1]),
            list(a, vec![2, 0]),
            list(t, vec![2, 0]),
        ];
        let err = acc.merge_batch(&state, &[0, 1], 2).unwrap_err();
        assert!(err.to_string().contains("not aligned"), "{err}");
    }

    #[test]
    fn compaction_keeps_each_positions_latest() {
        // One group, positions 0 and 1, 2000 rows a round for ten rounds:
        // compaction runs and the latest (round 9, highest id) survives:
        // position 0 → i = 1998 (even), position 1 → i = 1999.
        let mut acc = accumulator();
        for round in 0..10i64 {
            let n = 2000usize;
            let cols = columns(
                (0..n as i64).map(|i| i % 2).collect(),
                (0..n as i64).map(|i| round * 10_000 + i).collect(),
                vec![round; n],
                (0..n)
                    .map(|i| format!("{i:05}"))
                    .collect::<Vec<_>>()
                    .iter()
                    .map(String::as_str)
                    .collect(),
            );
            acc.update_batch(&cols, &vec![0; n], None, 1).unwrap();
            assert!(acc.kept.rows() <= 2 * acc.entries + 8192);
        }
        let out = acc.evaluate(EmitTo::All).unwrap();
        assert_eq!(
            spans_of(&Int64Array::from(vec![0]), out.as_ref()),
            vec![(0, vec![(0, Some(1), 91_998), (1, None, 91_999)])]
        );
    }
}
