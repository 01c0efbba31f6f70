//! `derived` metrics: an expression over other metrics by name, evaluated by
//! DataFusion over their aligned results (one row per period and slice, plus
//! the headline), so `new_bookings / nullif(bookings, 0)` is planned and
//! typed like any other expression.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Decimal128Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Field, Schema};
use datafusion::functions::expr_fn::round;
use datafusion::logical_expr::{cast, lit};
use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, visit_expressions};

use super::Key;
use super::parse_expr;
use crate::catalog::MetricId;
use crate::compile::planner::Planner;
use crate::decimal::Dec;
use crate::error::{CanonError, Result};
use crate::yaml_path;

/// Decimal places of a derived value unless the metric sets `scale`.
pub const DERIVED_SCALE: u32 = 6;
/// Scale at which inputs enter the expression, so divisions keep precision.
const INPUT_SCALE: i8 = 10;
const TOTAL: &str = "\u{0}total";

/// One input metric's result.
pub struct Input {
    pub name: String,
    pub total: Option<Dec>,
    pub rows: Vec<(Key, Option<Dec>)>,
}

/// The simple metrics a derived metric's expression names, in order of use.
pub fn inputs(engine: &Planner, id: MetricId) -> Result<Vec<String>> {
    let catalog = &engine.catalog;
    let metric = &catalog.files.metrics[id.file].spec.metrics[id.index];
    let location = catalog.metric_at(id, &yaml_path!["expr"]);
    let sql = metric
        .expr
        .as_deref()
        .ok_or_else(|| CanonError::definition(location.clone(), "a derived metric needs `expr`"))?;
    let ast = super::sql_ast(engine, sql, &location)?;
    let mut names = Vec::new();
    let mut seen = BTreeSet::new();
    let _ = visit_expressions(&ast.expr, |e| {
        if let SqlExpr::Identifier(ident) = e
            && seen.insert(ident.value.clone())
        {
            names.push(ident.value.clone());
        }
        ControlFlow::<()>::Continue(())
    });
    for name in &names {
        match catalog.metrics.get(name) {
            Some(mid) => {
                let m = &catalog.files.metrics[mid.file].spec.metrics[mid.index];
                if !m.kind.is_aggregate() {
                    return Err(CanonError::definition(
                        location.clone(),
                        format!(
                            "`{name}` is a {} metric; a derived metric's inputs must be simple or snapshot metrics",
                            m.kind.name()
                        ),
                    ));
                }
            }
            None => {
                return Err(CanonError::definition(
                    location.clone(),
                    format!("`{name}` in `{sql}` is not a metric"),
                ));
            }
        }
    }
    Ok(names)
}

/// Checks the whole expression of derived metric `id` without data: over
/// its inputs typed as [`evaluate`] gives them, so `validate` refuses what
/// the query would (a subquery, `random()`, an aggregate, a value that is
/// not a number).
pub fn check(engine: &Planner, id: MetricId) -> Result<()> {
    let names = inputs(engine, id)?;
    let schema = datafusion::common::DFSchema::try_from(Schema::new(
        names
            .iter()
            .map(|n| Field::new(n, DataType::Decimal128(38, INPUT_SCALE), true))
            .collect::<Vec<_>>(),
    ))?;
    value_expr(engine, id, &schema).map(|_| ())
}

/// The metric's `expr` parsed over `schema` (its inputs' values), when it is
/// a number.
fn value_expr(
    engine: &Planner,
    id: MetricId,
    schema: &datafusion::common::DFSchema,
) -> Result<datafusion::logical_expr::Expr> {
    let catalog = &engine.catalog;
    let metric = &catalog.files.metrics[id.file].spec.metrics[id.index];
    let location = catalog.metric_at(id, &yaml_path!["expr"]);
    let sql = metric.expr.as_deref().unwrap_or_default();
    let expr = parse_expr(engine, sql, schema, &location)?;
    let ty = datafusion::logical_expr::ExprSchemable::get_type(&expr, schema)?;
    if !(ty.is_numeric() || ty == DataType::Null) {
        return Err(CanonError::definition(
            location,
            format!(
                "`{sql}` is not a number (its type is {ty}): a derived metric's `expr` computes a number from its inputs"
            ),
        ));
    }
    Ok(expr)
}

/// Evaluates the expression per aligned row; returns the headline, the rows
/// and the plan text.
pub async fn evaluate(
    engine: &Planner,
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
    let frame = engine.ctx.read_batch(batch)?;
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
    for batch in frame.collect().await? {
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
