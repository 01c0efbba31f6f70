//! Definitions + a request → DataFusion plans, one module per metric kind.
//!
//! SQL written in YAML is parsed into `Expr` against the schema it is written
//! over (never pasted into a query), and a parse or type error is reported at
//! the YAML node it came from.

pub mod bounds;
pub mod cohort;
pub mod conversion;
mod currency;
pub mod declared;
pub mod derived;
pub mod entity;
pub mod instants;
pub mod kind;
pub mod limits;
pub mod link_rules;
pub mod plan;
pub mod planner;
pub mod ratio;
mod series_ranges;
pub mod simple;
pub mod slicing;
pub mod snapshot;
pub mod survivors;

use std::ops::ControlFlow;

use datafusion::common::{DFSchema, TableReference};
use datafusion::logical_expr::{Expr, ExprSchemable};
use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, Ident, visit_expressions_mut};

use crate::error::{CanonError, Location, Result};
use planner::Planner;

pub use crate::request::{Request, Resolved};

/// The aggregate metrics a metric is computed from, itself for an
/// aggregate kind (see [`kind::Kind::parts`]).
pub fn parts(engine: &Planner, name: &str) -> Result<Vec<String>> {
    let (id, _, metric) = engine.catalog.metric(name)?;
    kind_of(metric.kind).parts(engine, id)
}

/// One aggregate a metric runs: a simple, snapshot or conversion metric,
/// itself or a part of a ratio or derived metric.
#[derive(Clone)]
pub struct Part {
    pub id: crate::catalog::MetricId,
    pub name: String,
    pub plan: simple::SimplePlan,
}

/// Everything a metric runs for a request, planned once and nothing
/// executed: the query's gates start from it (the tables and links it
/// reads), the run stage executes it by its shape, `explain` shows it. A
/// kind plans into one of these shapes; a new kind that runs like an
/// existing one adds no shape (and no arm to the run stage).
#[derive(Clone)]
pub enum MetricPlan {
    /// One aggregate, the metric itself (simple, snapshot, conversion).
    Aggregate(Box<Part>),
    /// A ratio's numerator, then its denominator, each an aggregate.
    Ratio(Vec<Part>),
    /// A derived metric's inputs in order of use, each an aggregate; the
    /// run stage evaluates its expression over their results.
    Derived(Vec<Part>),
    /// A cohort's instants; the run stage caches them and builds the bridge
    /// over them ([`cohort::bridge`]).
    Cohort(Box<cohort::Instants>),
}

impl MetricPlan {
    /// Its aggregates (none for a cohort, whose instants are one plan).
    pub fn parts(&self) -> &[Part] {
        match self {
            MetricPlan::Aggregate(part) => std::slice::from_ref(part.as_ref()),
            MetricPlan::Ratio(parts) | MetricPlan::Derived(parts) => parts,
            MetricPlan::Cohort(_) => &[],
        }
    }

    /// The same plan with its frames passed through `bind`: the run stage
    /// binds them to its data (`Engine::bound`), planning never runs them.
    pub fn bound(
        self,
        bind: &dyn Fn(datafusion::prelude::DataFrame) -> datafusion::prelude::DataFrame,
    ) -> MetricPlan {
        let part = |p: Part| Part {
            plan: p.plan.bound(bind),
            ..p
        };
        match self {
            MetricPlan::Aggregate(p) => MetricPlan::Aggregate(Box::new(part(*p))),
            MetricPlan::Ratio(parts) => MetricPlan::Ratio(parts.into_iter().map(part).collect()),
            MetricPlan::Derived(parts) => {
                MetricPlan::Derived(parts.into_iter().map(part).collect())
            }
            MetricPlan::Cohort(instants) => MetricPlan::Cohort(Box::new(instants.bound(bind))),
        }
    }
}

/// Plans metric `name` for `request`, by its kind's module.
pub async fn plan_metric(engine: &Planner, name: &str, request: &Resolved) -> Result<MetricPlan> {
    let (id, _, metric) = engine.catalog.metric(name)?;
    kind_of(metric.kind).plan(engine, id, request).await
}

impl MetricPlan {
    /// Every plan, titled: a cohort's instants and its per-member bridge,
    /// else one aggregate per part. What `explain` shows and what a query
    /// learns its tables and identity links from before it reads a row.
    pub fn titled(
        &self,
        name: &str,
        request: &Resolved,
    ) -> Result<Vec<(String, datafusion::prelude::DataFrame)>> {
        Ok(match self {
            MetricPlan::Cohort(instants) => {
                let plan = cohort::bridge(instants.as_ref().clone())?;
                let (t0, t) = (plan.t0, plan.t);
                vec![
                    (
                        format!("{name}: snapshot at T0 = {t0} and T = {t}"),
                        plan.instants,
                    ),
                    (format!("{name}: bridge per member"), plan.bridge),
                ]
            }
            plan => plan
                .parts()
                .iter()
                .map(|part| {
                    let title = if part.name == name {
                        format!("{name} ({})", request.period.label)
                    } else {
                        format!("{name}: part `{}` ({})", part.name, request.period.label)
                    };
                    (title, part.plan.frame.clone())
                })
                .collect(),
        })
    }
}

/// [`plan_metric`]'s plans, titled (see [`MetricPlan::titled`]).
pub async fn plans(
    engine: &Planner,
    name: &str,
    request: &Resolved,
) -> Result<Vec<(String, datafusion::prelude::DataFrame)>> {
    plan_metric(engine, name, request)
        .await?
        .titled(name, request)
}

/// The module of `kind`: the one dispatch on a metric's kind in planning.
pub fn kind_of(kind: crate::spec::MetricKind) -> &'static dyn kind::Kind {
    use crate::spec::MetricKind;
    match kind {
        MetricKind::Simple => &simple::Flow,
        MetricKind::Snapshot => &snapshot::Snapshot,
        MetricKind::Conversion => &conversion::Conversion,
        MetricKind::Ratio => &ratio::Ratio,
        MetricKind::Cohort => &cohort::Cohort,
        MetricKind::Derived => &derived::Derived,
    }
}

/// A simple or snapshot metric's aggregate, compiled by the window
/// compiler the two kinds share (`simple.rs`).
pub(crate) async fn aggregate(
    planner: &Planner,
    id: crate::catalog::MetricId,
    request: &Resolved,
) -> Result<simple::SimplePlan> {
    simple::compile(planner, id, request).await
}

/// An aggregate kind's plan: one part, itself.
pub(crate) fn itself(
    planner: &Planner,
    id: crate::catalog::MetricId,
    plan: simple::SimplePlan,
) -> MetricPlan {
    let name = planner.catalog.files.metrics[id.file].spec.metrics[id.index]
        .name
        .clone();
    // Once per metric and request (tests/metrics/planning.rs counts it).
    tracing::debug!(metric = %name, "aggregate planned");
    MetricPlan::Aggregate(Box::new(Part { id, name, plan }))
}

/// The metrics named `names` planned each by its own kind, as the parts of
/// a ratio or a derived metric (each an aggregate).
pub(crate) async fn parts_planned(
    planner: &Planner,
    names: &[String],
    request: &Resolved,
) -> Result<Vec<Part>> {
    let mut out = Vec::new();
    for name in names {
        let (id, _, metric) = planner.catalog.metric(name)?;
        match kind_of(metric.kind).plan(planner, id, request).await? {
            MetricPlan::Aggregate(part) => out.push(*part),
            _ => {
                return Err(CanonError::Internal(format!(
                    "part `{name}` is a {} metric, not an aggregate",
                    metric.kind.name()
                )));
            }
        }
    }
    Ok(out)
}

/// A result row's group: its period label and its slice values (null when
/// a slice has none). Planning names the groups a derived metric combines,
/// so the type lives here and the query stage reads it.
pub type Key = (String, Vec<Option<String>>);

/// Parses one YAML SQL fragment against `schema`, blaming `location` for any
/// error (unknown column, unknown function, a type that does not fit).
pub fn parse_expr(
    engine: &Planner,
    sql: &str,
    schema: &DFSchema,
    location: &Location,
) -> Result<Expr> {
    parse_scoped(engine, sql, schema, None, location)
}

/// Like [`parse_expr`] over a metric frame, where the metric's own entity is
/// qualified by `base` and each link by its name: a bare name (`amount`)
/// always means the metric's own entity, even when a linked entity has a
/// field of the same name (`account.name` vs the deal's `name`). The bare
/// identifiers are qualified in the SQL syntax tree before planning, so no
/// SQL text is ever rewritten or concatenated.
pub fn parse_scoped(
    engine: &Planner,
    sql: &str,
    schema: &DFSchema,
    base: Option<&str>,
    location: &Location,
) -> Result<Expr> {
    let located = |message: String| CanonError::definition(location.clone(), message);
    let fail = |e: datafusion::error::DataFusionError| {
        located(format!(
            "in `{}`: {}",
            abbreviated(sql),
            clean_message(&e.to_string())
        ))
    };
    let mut ast = sql_ast(engine, sql, location)?;
    // A read lock, not `ctx.state()`: that clones the whole session (every
    // function registry), which dominated compile time.
    let state_ref = engine.planning.state_ref();
    let state = state_ref.read();
    if let Some(base) = base {
        let _ = visit_expressions_mut(&mut ast.expr, |e| {
            if let SqlExpr::Identifier(ident) = e {
                let name = if ident.quote_style.is_some() {
                    ident.value.clone()
                } else {
                    ident.value.to_lowercase()
                };
                if schema.has_column_with_qualified_name(&TableReference::bare(base), &name) {
                    *e = SqlExpr::CompoundIdentifier(vec![Ident::new(base), Ident::new(name)]);
                }
            }
            ControlFlow::<()>::Continue(())
        });
    }
    let expr = state
        .create_logical_expr_from_sql_expr(ast, schema)
        .map_err(fail)?;
    if let Some(why) = limits::meaning_problem(&expr) {
        return Err(located(format!("`{}` {why}", abbreviated(sql))));
    }
    let expr = limits::exact_integer_arithmetic(expr, schema).map_err(fail)?;
    expr.get_type(schema).map_err(|e| {
        located(format!(
            "in `{}`: {}",
            abbreviated(sql),
            clean_message(&e.to_string())
        ))
    })?;
    Ok(expr)
}

/// `expr`, parsed from `sql`, when it is a yes/no condition (a filter, an
/// exclusion's `when`): a number or a text there would pass planning and
/// fail only when run, with the engine's words and no location.
pub fn condition(expr: Expr, schema: &DFSchema, sql: &str, location: &Location) -> Result<Expr> {
    use datafusion::arrow::datatypes::DataType;
    match expr.get_type(schema)? {
        DataType::Boolean | DataType::Null => Ok(expr),
        other => Err(CanonError::definition(
            location.clone(),
            format!(
                "`{sql}` is not a condition (its type is {other}): write a yes/no test, for example `{sql} IS NOT NULL` or `{sql} > 0`"
            ),
        )),
    }
}

/// The label of the first of `branches` whose condition holds, null when
/// none does; `None` without branches. A row's exclusion, its bucket of a
/// period and a revenue line's link rule are each the first of several
/// tests in their declared order: one CASE, built here.
pub(crate) fn first_that_holds(
    branches: impl IntoIterator<Item = (Expr, Expr)>,
) -> Result<Option<Expr>> {
    let mut branches = branches.into_iter();
    let Some((test, label)) = branches.next() else {
        return Ok(None);
    };
    let mut case = datafusion::logical_expr::when(test, label);
    for (test, label) in branches {
        case.when(test, label);
    }
    Ok(Some(case.otherwise(datafusion::logical_expr::lit(
        datafusion::common::ScalarValue::Utf8(None),
    ))?))
}

/// The syntax tree of one YAML SQL fragment, parsed only once its text is
/// within [`limits::GOVERNED`] (a tree too deep to walk must never exist).
pub fn sql_ast(
    engine: &Planner,
    sql: &str,
    location: &Location,
) -> Result<datafusion::sql::sqlparser::ast::ExprWithAlias> {
    let located = |message: String| CanonError::definition(location.clone(), message);
    if let Some(why) = limits::text_problem(sql, &limits::GOVERNED) {
        return Err(located(why));
    }
    // A read lock, not `ctx.state()`: that clones the whole session (every
    // function registry), which dominated compile time.
    let state_ref = engine.planning.state_ref();
    let state = state_ref.read();
    let dialect = state.config().options().sql_parser.dialect;
    let mut ast = state
        .sql_to_expr_with_alias(sql, &dialect)
        .map_err(|e| {
            let message = clean_message(&e.to_string());
            // sqlparser's own guard on its recursion (NOT NOT …, - - …,
            // nested calls), in words.
            let message = if message.contains("RecursionLimitExceeded")
                || message.contains("recursion limit exceeded")
            {
                "the expression nests deeper than the SQL parser allows (50 levels of NOT, unary minus or nested calls)".to_string()
            } else {
                message
            };
            located(format!("in `{}`: {message}", abbreviated(sql)))
        })?;
    limits::balance_conditions(&mut ast.expr);
    if let Some(why) = limits::shape_problem(&ast.expr, &limits::GOVERNED) {
        return Err(located(format!("in `{}`: {why}", abbreviated(sql))));
    }
    Ok(ast)
}

/// `sql` as a message quotes it: whole when short, else its start and end
/// (a 30 KiB expression would bury the message).
fn abbreviated(sql: &str) -> String {
    const KEEP: usize = 40;
    let chars: Vec<char> = sql.chars().collect();
    if chars.len() <= 2 * KEEP + 20 {
        return sql.to_string();
    }
    let start: String = chars[..KEEP].iter().collect();
    let end: String = chars[chars.len() - KEEP..].iter().collect();
    format!("{start} … {end}")
}

/// DataFusion's messages carry layers of context ("Schema error: ...",
/// "Error during planning: ..."); the reader needs the innermost sentence.
fn clean_message(message: &str) -> String {
    let mut m = message.trim();
    for prefix in [
        "Schema error: ",
        "Error during planning: ",
        "SQL error: ",
        "Internal error: ",
    ] {
        while let Some(rest) = m.strip_prefix(prefix) {
            m = rest.trim();
        }
    }
    let m = m.split("\nValid fields are").next().unwrap_or(m);
    m.to_string()
}

#[cfg(test)]
mod kind_tests {
    use super::*;
    use crate::calendar::Calendar;
    use crate::spec::MetricKind;
    use chrono::NaiveDate;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    // What each kind tells the key-uniqueness gate, for --as-of 2025-06-30:
    // a snapshot counts its rows at the asked instants, a flow in its period
    // (no day), a cohort asks for T0 = 2024-06-30 and T; a conversion, a
    // ratio, a cohort and a derived metric count no rows of their own.
    #[test]
    fn each_kind_says_which_rows_it_counts_and_when() {
        let cal = Calendar::for_tests(chrono_tz::UTC, 1);
        let request = Resolved::new(
            &cal,
            Request {
                period: cal.parse_period("2025-06").unwrap(),
                as_of: Some(d("2025-06-30")),
                rates_as_of: None,
                grain: None,
                by: Vec::new(),
            },
            10,
        )
        .unwrap();
        assert_eq!(
            kind_of(MetricKind::Snapshot).instants(&request),
            [d("2025-06-30")]
        );
        let cohort = kind_of(MetricKind::Cohort).instants(&request);
        assert_eq!(cohort, [d("2024-06-30"), d("2025-06-30")]);
        assert_eq!(
            kind_of(MetricKind::Snapshot).counted_at(&cohort),
            Some(cohort.clone())
        );
        assert_eq!(
            kind_of(MetricKind::Simple).counted_at(&cohort),
            Some(vec![])
        );
        for kind in [
            MetricKind::Conversion,
            MetricKind::Ratio,
            MetricKind::Cohort,
            MetricKind::Derived,
        ] {
            assert_eq!(kind_of(kind).counted_at(&cohort), None, "{kind:?}");
        }
    }
}
