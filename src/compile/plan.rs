//! Plan building without DataFrame's per-step overhead.
//!
//! `DataFrame::select` normalizes every column by walking the whole input
//! plan for USING-join columns (`LogicalPlan::using_columns`), and every
//! `DataFrame` made from a context clones the session (every function
//! registry). canon's plans are built step by step over deep join trees and
//! never use USING joins, so at whole-catalog scale those two costs were a
//! third of compile time (callgrind, docs/performance.md). These helpers
//! build the same nodes directly and carry the frame's own session along.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::Field;
use datafusion::common::{Column, DFSchema, DFSchemaRef, TableReference};
use datafusion::logical_expr::expr_rewriter::normalize_col_with_schemas_and_ambiguity_check;
use datafusion::logical_expr::{
    Aggregate, Expr, ExprSchemable, JoinType, LogicalPlan, LogicalPlanBuilder, Projection,
};
use datafusion::prelude::DataFrame;

use crate::error::Result;

/// Cheaper equivalents of `DataFrame` methods for plans built in steps.
pub trait FramePlan: Sized {
    /// `select` of plain expressions (no window functions, no wildcards):
    /// columns are resolved against the input's schema only.
    fn project(self, exprs: Vec<Expr>) -> Result<DataFrame>;
    /// `join_on` with a right side that is a bare plan (no session cloned
    /// to wrap it).
    fn join_plan(self, right: LogicalPlan, join: JoinType, on: Vec<Expr>) -> Result<DataFrame>;
    /// `aggregate` without the plan walk, and without adding group
    /// expressions implied by functional dependencies (canon groups by
    /// exactly what it names).
    fn group(self, group: Vec<Expr>, aggregates: Vec<Expr>) -> Result<DataFrame>;
}

impl FramePlan for DataFrame {
    fn project(self, exprs: Vec<Expr>) -> Result<DataFrame> {
        let (state, plan) = self.into_parts();
        Ok(DataFrame::new(state, project(plan, exprs)?))
    }

    fn join_plan(self, right: LogicalPlan, join: JoinType, on: Vec<Expr>) -> Result<DataFrame> {
        let (state, plan) = self.into_parts();
        let plan = LogicalPlanBuilder::from(plan)
            .join_on(right, join, on)?
            .build()?;
        Ok(DataFrame::new(state, plan))
    }

    fn group(self, group: Vec<Expr>, aggregates: Vec<Expr>) -> Result<DataFrame> {
        let (state, plan) = self.into_parts();
        let schema: DFSchemaRef = plan.schema().clone();
        let plan = LogicalPlan::Aggregate(Aggregate::try_new(
            Arc::new(plan),
            normalized(group, &schema)?,
            normalized(aggregates, &schema)?,
        )?);
        Ok(DataFrame::new(state, plan))
    }
}

/// `exprs` with unqualified columns resolved against `schema`.
fn normalized(exprs: Vec<Expr>, schema: &DFSchemaRef) -> Result<Vec<Expr>> {
    Ok(exprs
        .into_iter()
        .map(|e| normalize_col_with_schemas_and_ambiguity_check(e, &[&[schema.as_ref()]], &[]))
        .collect::<datafusion::error::Result<Vec<_>>>()?)
}

/// The columns `columns` of `plan`, in that order: a projection whose
/// schema is read off the input's by one lookup per column (computing it
/// expression by expression searches the input's fields linearly for each,
/// quadratic over the wide frames of metrics with many links).
pub fn project_columns(plan: LogicalPlan, columns: &[Column]) -> Result<LogicalPlan> {
    let input = plan.schema().clone();
    let index: HashMap<(Option<&TableReference>, &str), usize> = input
        .iter()
        .enumerate()
        .map(|(i, (q, f))| ((q, f.name().as_str()), i))
        .collect();
    let mut fields = Vec::with_capacity(columns.len());
    for c in columns {
        let i = *index
            .get(&(c.relation.as_ref(), c.name.as_str()))
            .ok_or_else(|| {
                datafusion::error::DataFusionError::Internal(format!("no column {c} to project"))
            })?;
        let (q, f) = input.qualified_field(i);
        fields.push((q.cloned(), f.clone()));
    }
    let schema = Arc::new(DFSchema::new_with_metadata(fields, Default::default())?);
    let exprs = columns.iter().cloned().map(Expr::Column).collect();
    Ok(LogicalPlan::Projection(Projection::try_new_with_schema(
        exprs,
        Arc::new(plan),
        schema,
    )?))
}

/// A projection of `exprs` over `plan`, columns resolved against `plan`'s
/// schema (what `LogicalPlanBuilder::project` does, minus the walk for
/// USING-join columns canon never creates). The output schema is computed
/// here when every expression is a column or an alias: DataFusion derives
/// an aliased field by first rendering the whole expression's name (a long
/// CASE of exclusions is formatted only to be replaced by its alias).
pub fn project(plan: LogicalPlan, exprs: Vec<Expr>) -> Result<LogicalPlan> {
    let input: DFSchemaRef = plan.schema().clone();
    let exprs = normalized(exprs, &input)?;
    let mut fields = Vec::with_capacity(exprs.len());
    for e in &exprs {
        match e {
            Expr::Alias(a) => {
                let ty = a.expr.get_type(input.as_ref())?;
                let nullable = a.expr.nullable(input.as_ref())?;
                fields.push((
                    a.relation.clone(),
                    Arc::new(Field::new(a.name.clone(), ty, nullable)),
                ));
            }
            Expr::Column(c) => {
                let (q, f) = input.qualified_field_from_column(c)?;
                fields.push((q.cloned(), Arc::clone(f)));
            }
            _ => {
                return Ok(LogicalPlan::Projection(Projection::try_new(
                    exprs,
                    Arc::new(plan),
                )?));
            }
        }
    }
    let schema = Arc::new(DFSchema::new_with_metadata(fields, Default::default())?);
    Ok(LogicalPlan::Projection(Projection::try_new_with_schema(
        exprs,
        Arc::new(plan),
        schema,
    )?))
}

/// `plan` under the qualifier `q`.
pub fn alias(plan: LogicalPlan, q: TableReference) -> Result<LogicalPlan> {
    Ok(LogicalPlanBuilder::from(plan).alias(q)?.build()?)
}
