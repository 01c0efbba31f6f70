//! Executing a derived metric: its expression evaluated by DataFusion over
//! its inputs' results, aligned one row per period and slice plus the
//! headline. The inputs are computed first (they are results, not
//! sources), so this is a step of the run, after planning; the expression
//! itself is planned and typed by `compile::derived`.

use crate::run::memory::WithinMemory;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Decimal128Array};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::functions::expr_fn::round;
use datafusion::logical_expr::{cast, lit};

use super::*;
use crate::compile::derived::{DERIVED_SCALE, INPUT_SCALE, Input, TOTAL, value_expr};

/// Evaluates the expression per aligned row; returns the headline, the rows
/// and the plan text.
pub(super) async fn evaluate(
    engine: &Engine,
    id: MetricId,
    inputs: &[Input],
) -> Result<(Option<Dec>, Vec<(Key, Option<Dec>)>, String)> {
    let catalog = &engine.catalog;
    let metric = &catalog.files.metrics[id.file].spec.metrics[id.index];
    let scale = metric.scale.unwrap_or(DERIVED_SCALE);
    // Every key any input has, in input order, then the headline.
    let mut keys: Vec<Key> = Vec::new();
    let mut known = BTreeSet::new();
    for input in inputs {
        for (k, _) in &input.rows {
            if known.insert(k.clone()) {
                keys.push(k.clone());
            }
        }
    }
    keys.push((TOTAL.to_string(), Vec::new()));
    let mut fields = vec![Field::new("_row", DataType::UInt32, false)];
    let mut columns: Vec<ArrayRef> = vec![Arc::new(datafusion::arrow::array::UInt32Array::from(
        (0..keys.len() as u32).collect::<Vec<_>>(),
    ))];
    for input in inputs {
        let by_key: BTreeMap<&Key, Option<Dec>> = input.rows.iter().map(|(k, v)| (k, *v)).collect();
        let values: Decimal128Array = keys
            .iter()
            .map(|k| {
                let v = if k.0 == TOTAL {
                    input.total
                } else {
                    by_key.get(k).copied().flatten()
                };
                v.map(|d| d.rescale(INPUT_SCALE as u32).units)
            })
            .collect();
        fields.push(Field::new(
            &input.name,
            DataType::Decimal128(38, INPUT_SCALE),
            true,
        ));
        columns.push(Arc::new(values.with_precision_and_scale(38, INPUT_SCALE)?));
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    let frame = engine.session().read_batch(batch)?;
    let expr = value_expr(engine, id, frame.schema())?;
    let value = cast(
        round(vec![
            cast(expr, DataType::Decimal128(38, INPUT_SCALE)),
            lit(scale as i64),
        ]),
        DataType::Decimal128(38, scale as i8),
    );
    let frame = frame.select(vec![
        datafusion::logical_expr::col("_row"),
        value.alias("value"),
    ])?;
    let plan = frame
        .clone()
        .into_optimized_plan()?
        .display_indent()
        .to_string();
    let mut out: Vec<Option<Dec>> = vec![None; keys.len()];
    for batch in frame.collect_within_memory().await? {
        let rows = batch
            .column(0)
            .as_primitive::<datafusion::arrow::datatypes::UInt32Type>();
        let values = batch.column(1).as_primitive::<Decimal128Type>();
        for i in 0..batch.num_rows() {
            if !values.is_null(i) {
                out[rows.value(i) as usize] = Some(Dec::new(values.value(i), scale));
            }
        }
    }
    let total = out.pop().flatten();
    Ok((
        total,
        keys.into_iter()
            .zip(out)
            .filter(|(k, _)| k.0 != TOTAL)
            .collect(),
        plan,
    ))
}
