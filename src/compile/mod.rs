//! Definitions + a request → DataFusion plans, one module per metric kind.
//!
//! SQL written in YAML is parsed into `Expr` against the schema it is written
//! over (never pasted into a query), and a parse or type error is reported at
//! the YAML node it came from.

pub mod entity;
pub mod simple;

use datafusion::common::DFSchema;
use datafusion::logical_expr::{Expr, ExprSchemable};

use crate::calendar::{Grain, Period};
use crate::error::{CanonError, Location, Result};
use crate::run::Engine;

/// What an analyst asked for.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Request {
    pub period: Period,
    #[serde(serialize_with = "serialize_grain")]
    pub grain: Option<Grain>,
    pub by: Vec<String>,
}

fn serialize_grain<S: serde::Serializer>(g: &Option<Grain>, s: S) -> Result<S::Ok, S::Error> {
    match g {
        Some(g) => s.serialize_str(g.name()),
        None => s.serialize_none(),
    }
}

/// Parses one YAML SQL fragment against `schema`, blaming `location` for any
/// error (unknown column, unknown function, a type that does not fit).
pub fn parse_expr(engine: &Engine, sql: &str, schema: &DFSchema, location: &Location) -> Result<Expr> {
    let located = |message: String| CanonError::definition(location.clone(), message);
    let expr = engine
        .ctx
        .parse_sql_expr(sql, schema)
        .map_err(|e| located(format!("in `{sql}`: {}", clean_message(&e.to_string()))))?;
    expr.get_type(schema)
        .map_err(|e| located(format!("in `{sql}`: {}", clean_message(&e.to_string()))))?;
    Ok(expr)
}

/// DataFusion's messages carry layers of context ("Schema error: ...",
/// "Error during planning: ..."); the reader needs the innermost sentence.
fn clean_message(message: &str) -> String {
    let mut m = message.trim();
    for prefix in ["Schema error: ", "Error during planning: ", "SQL error: ", "Internal error: "] {
        while let Some(rest) = m.strip_prefix(prefix) {
            m = rest.trim();
        }
    }
    let m = m.split("\nValid fields are").next().unwrap_or(m);
    m.to_string()
}
