//! `derived` metrics: an expression over other metrics by name, evaluated by
//! DataFusion over their aligned results (one row per period and slice, plus
//! the headline), so `new_bookings / nullif(bookings, 0)` is planned and
//! typed like any other expression.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use datafusion::arrow::datatypes::{DataType, Field, Schema};
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
pub const INPUT_SCALE: i8 = 10;
/// The key of the headline among a derived metric's aligned rows.
pub const TOTAL: &str = "\u{0}total";

/// One input metric's result.
pub struct Input {
    pub name: String,
    pub total: Option<Dec>,
    pub rows: Vec<(Key, Option<Dec>)>,
}

/// A derived metric (`kind: derived`): an expression over its inputs'
/// results, evaluated by the run stage (`query/derived_run.rs`).
pub struct Derived;

#[async_trait::async_trait(?Send)]
impl super::kind::Kind for Derived {
    fn parts(&self, planner: &Planner, id: MetricId) -> Result<Vec<String>> {
        inputs(planner, id)
    }

    fn check(&self, planner: &Planner, id: MetricId) -> Result<()> {
        check(planner, id)
    }

    async fn plan(
        &self,
        planner: &Planner,
        id: MetricId,
        request: &super::Resolved,
    ) -> Result<super::MetricPlan> {
        Ok(super::MetricPlan::Derived(
            super::parts_planned(planner, &inputs(planner, id)?, request).await?,
        ))
    }
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
/// its inputs typed as the run stage's evaluation (`query::derived_run`) gives them, so `validate` refuses what
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
pub fn value_expr(
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
