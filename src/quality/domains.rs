//! Declared value domains: a column's `accepted_values` (models/) are the
//! only values it may hold. A new stage such as "Closed - Lost" matches no
//! metric's filter on stages and would move deals in or out of a number
//! silently (open pipeline counts every stage that is not closed), so a value
//! outside the domain is an error: `canon check` reports it, and a query that
//! reads the column is blocked unless `--allow accepted_values:TABLE`.
//!
//! First the files' dictionaries, which prove a column inside its domain
//! without a scan when every entry is accepted (`dictionaries`); otherwise
//! one aggregate per table: the rows whose value is outside the domain of
//! any declared column, grouped per column (grouping sets) by that value,
//! ranked by count in the engine so only the first few values come back.
//! Null is not a violation: completeness judges required columns.

use crate::run::memory::WithinMemory;
use std::collections::BTreeSet;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;
use datafusion::functions_aggregate::count::count_udaf;
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::functions_aggregate::sum::sum_udaf;
use datafusion::functions_window::expr_fn::row_number;
use datafusion::logical_expr::expr::{ScalarFunction, WindowFunction};
use datafusion::logical_expr::{
    AggregateUDF, Expr, ExprFunctionExt, GroupingSet, WindowFunctionDefinition, col, lit, when,
};
use datafusion::prelude::{DataFrame, ParquetReadOptions};

use super::{Status, TableCheck};
use crate::error::{CanonError, Result};
use crate::run::Engine;

/// The check's name, as results report it and `--allow` takes it.
pub const CHECK: &str = "accepted_values";

/// How many offending values a check shows (the most frequent first).
const SHOWN: u64 = 5;

/// One column's violations.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Violations {
    /// Rows holding a value outside the domain.
    rows: i64,
    /// Distinct such values.
    distinct: i64,
    /// The most frequent values with their row counts (count descending,
    /// then value), at most [`SHOWN`].
    values: Vec<(String, i64)>,
}

/// The accepted-values checks of source `system/table`: one per declared
/// column among `columns` (every declared column when `None`), at error
/// when the column holds a value outside its domain, with the offending
/// values, their row counts and the files that hold them.
pub async fn domain_checks(
    engine: &Engine,
    key: &str,
    columns: Option<&BTreeSet<String>>,
) -> Result<Vec<TableCheck>> {
    let catalog = &engine.catalog;
    let (system, table) = key.split_once('/').unwrap_or((key, ""));
    let Some((_, source)) = catalog.source_by_name(system, table) else {
        return Ok(Vec::new());
    };
    let texts: Vec<(&str, Vec<String>)> = source
        .columns
        .iter()
        .filter(|c| columns.is_none_or(|read| read.contains(&c.name)))
        .filter_map(|c| Some((c.name.as_str(), c.accepted_values.as_ref()?.texts())))
        .collect();
    let domains: Vec<(&str, &[String])> = texts.iter().map(|(c, v)| (*c, v.as_slice())).collect();
    if domains.is_empty() {
        return Ok(Vec::new());
    }
    let frame = engine.source_frame(system, table).await?;
    // Every file's dictionaries proving every column inside: no scan.
    let proven = match super::subject::source_paths(engine, system, table) {
        Some(paths) if !paths.is_empty() => {
            let owned: Vec<(String, Vec<String>)> = domains
                .iter()
                .map(|(c, v)| (c.to_string(), v.to_vec()))
                .collect();
            tokio::task::spawn_blocking(move || {
                let domains: Vec<(&str, &[String])> = owned
                    .iter()
                    .map(|(c, v)| (c.as_str(), v.as_slice()))
                    .collect();
                paths
                    .iter()
                    .all(|p| super::dictionaries::prove(p, &domains))
            })
            .await
            .unwrap_or(false)
        }
        _ => false,
    };
    let found = if proven {
        Vec::new()
    } else {
        violations(frame, &domains).await?
    };
    let mut out = Vec::new();
    for (i, (column, accepted)) in domains.iter().enumerate() {
        let Some(v) = found.iter().find(|(c, _)| *c == i).map(|(_, v)| v) else {
            out.push(TableCheck {
                check: CHECK,
                table: key.to_string(),
                column: Some(column.to_string()),
                status: Status::Pass,
                detail: format!(
                    "every value is one of the {} accepted (nulls aside)",
                    accepted.len()
                ),
                examples: Vec::new(),
                latest_sync: None,
            });
            continue;
        };
        let files = offending_files(engine, key, column, accepted).await?;
        out.push(TableCheck {
            check: CHECK,
            table: key.to_string(),
            column: Some(column.to_string()),
            status: Status::Error,
            detail: describe(column, accepted.len(), v, &files),
            examples: v
                .values
                .iter()
                .map(|(value, n)| format!("{value:?}: {n} row(s)"))
                .collect(),
            latest_sync: None,
        });
    }
    Ok(out)
}

/// `column `stage_name`: 3 rows hold 2 value(s) outside the 6 accepted:
/// "Closed - Lost" (2 rows), "Won" (1 row); in FILE (3 rows)`.
fn describe(column: &str, accepted: usize, v: &Violations, files: &[(String, i64)]) -> String {
    let rows = |n: i64| format!("{n} row{}", if n == 1 { "" } else { "s" });
    let mut shown: Vec<String> = v
        .values
        .iter()
        .map(|(value, n)| format!("{value:?} ({})", rows(*n)))
        .collect();
    let hidden = v.distinct - v.values.len() as i64;
    if hidden > 0 {
        shown.push(format!("and {hidden} more value(s)"));
    }
    let files: Vec<String> = files
        .iter()
        .map(|(path, n)| format!("{path} ({})", rows(*n)))
        .collect();
    format!(
        "column `{column}`: {} {} {} value(s) outside the {accepted} accepted: {}; in {}",
        rows(v.rows),
        if v.rows == 1 { "holds" } else { "hold" },
        v.distinct,
        shown.join(", "),
        files.join(", ")
    )
}

/// `column NOT IN (accepted)`, false for null.
fn outside(column: &str, accepted: &[String]) -> Expr {
    let values = accepted.iter().map(|v| lit(v.as_str())).collect();
    col(column)
        .is_not_null()
        .and(col(column).in_list(values, true))
}

/// An aggregate as a window function, to be given its partition.
fn over(aggregate: std::sync::Arc<AggregateUDF>, arg: Expr) -> Expr {
    Expr::from(WindowFunction::new(
        WindowFunctionDefinition::AggregateUDF(aggregate),
        vec![arg],
    ))
}

/// Runs the table's one aggregate: (index into `domains`, violations) for
/// every column that holds a value outside its domain.
async fn violations(
    frame: DataFrame,
    domains: &[(&str, &[String])],
) -> Result<Vec<(usize, Violations)>> {
    // `_b{i}`: column i's value when it is outside the domain, else null.
    let bad: Vec<Expr> = domains
        .iter()
        .enumerate()
        .map(|(i, (c, accepted))| {
            Ok(when(outside(c, accepted), col(*c))
                .end()?
                .alias(format!("_b{i}")))
        })
        .collect::<Result<_>>()?;
    let names: Vec<String> = (0..domains.len()).map(|i| format!("_b{i}")).collect();
    let any_bad = domains
        .iter()
        .map(|(c, accepted)| outside(c, accepted))
        .reduce(Expr::or)
        .unwrap_or(lit(false));
    let group = if names.len() == 1 {
        vec![col(names[0].as_str())]
    } else {
        vec![Expr::GroupingSet(GroupingSet::GroupingSets(
            names.iter().map(|n| vec![col(n.as_str())]).collect(),
        ))]
    };
    let coalesce = |args: Vec<Expr>| {
        Expr::ScalarFunction(ScalarFunction::new_udf(
            datafusion::functions::core::coalesce(),
            args,
        ))
    };
    let value = coalesce(names.iter().map(|n| col(n.as_str())).collect());
    // Which column a group is of: the one of its grouping set that is set.
    let mut which = when(col(names[0].as_str()).is_not_null(), lit(0i64));
    for (i, n) in names.iter().enumerate().skip(1) {
        which = which.when(col(n.as_str()).is_not_null(), lit(i as i64));
    }
    let by_column = vec![col("_column")];
    let ranked = frame
        .filter(any_bad)?
        .select(bad)?
        .aggregate(group, vec![count(lit(1i64)).alias("_n")])?
        // A grouping set's null group holds the rows that were bad in
        // another column only.
        .filter(value.clone().is_not_null())?
        .select(vec![
            which.end()?.alias("_column"),
            value.alias("_value"),
            col("_n"),
        ])?
        // Totals per column, then the rank within it (one window node per
        // ordering, as DataFusion plans them).
        .window(vec![
            over(sum_udaf(), col("_n"))
                .partition_by(by_column.clone())
                .build()?
                .alias("_rows"),
            over(count_udaf(), lit(1i64))
                .partition_by(by_column.clone())
                .build()?
                .alias("_distinct"),
        ])?
        .window(vec![
            row_number()
                .partition_by(by_column)
                .order_by(vec![
                    col("_n").sort(false, true),
                    col("_value").sort(true, true),
                ])
                .build()?
                .alias("_rank"),
        ])?
        .filter(col("_rank").lt_eq(lit(SHOWN)))?
        .sort(vec![
            col("_column").sort(true, true),
            col("_rank").sort(true, true),
        ])?
        .select(vec![
            col("_column"),
            col("_value"),
            col("_n"),
            col("_rows"),
            col("_distinct"),
        ])?;
    let mut out: Vec<(usize, Violations)> = Vec::new();
    for b in ranked.collect_within_memory().await? {
        let internal = || CanonError::Internal("accepted_values: unexpected column types".into());
        let column = b
            .column(0)
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(internal)?;
        let value = b.column(1);
        let n = b
            .column(2)
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(internal)?;
        let rows = b
            .column(3)
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(internal)?;
        let distinct = b
            .column(4)
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(internal)?;
        for r in 0..b.num_rows() {
            let i = column.value(r) as usize;
            let text = datafusion::arrow::util::display::array_value_to_string(value, r)
                .unwrap_or_default();
            match out.last_mut() {
                Some((last, v)) if *last == i => v.values.push((text, n.value(r))),
                _ => out.push((
                    i,
                    Violations {
                        rows: rows.value(r),
                        distinct: distinct.value(r),
                        values: vec![(text, n.value(r))],
                    },
                )),
            }
        }
    }
    Ok(out)
}

/// The table's files that hold a value of `column` outside its domain, with
/// how many rows each: where the extract must be fixed. Only run when the
/// check failed, one small count per file.
async fn offending_files(
    engine: &Engine,
    key: &str,
    column: &str,
    accepted: &[String],
) -> Result<Vec<(String, i64)>> {
    let read = engine.sources_read().await?;
    let Some(facts) = read.get(key) else {
        return Ok(Vec::new());
    };
    let (system, table) = key.split_once('/').unwrap_or((key, ""));
    let Some((_, source)) = engine.catalog.source_by_name(system, table) else {
        return Ok(Vec::new());
    };
    let schema = crate::run::declared_schema(source);
    let mut out = Vec::new();
    for file in &facts.files {
        let rows = engine
            .session()
            .read_parquet(
                file.path.as_str(),
                ParquetReadOptions::default().schema(&schema),
            )
            .await?
            .filter(outside(column, accepted))?
            .count_within_memory()
            .await? as i64;
        if rows > 0 {
            out.push((file.path.clone(), rows));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::prelude::SessionContext;

    use super::*;

    fn strings(v: &[Option<&str>]) -> Arc<StringArray> {
        Arc::new(StringArray::from(v.to_vec()))
    }

    // Column a, domain {x, y}: rows x, q, null, q, r, y, r, r, s, t, u, v, w.
    // Outside: q ×2, r ×3, s, t, u, v, w ×1 = 10 rows of 7 distinct values
    // (null is not a violation); the five shown are r (3), q (2), then s, t,
    // u (1 each, by value). Column b, domain {x}: all x but one "z" → z (1).
    // Column c, domain {x}: nothing outside → no entry.
    #[tokio::test]
    async fn one_aggregate_counts_and_ranks_the_values_outside() {
        let a = [
            Some("x"),
            Some("q"),
            None,
            Some("q"),
            Some("r"),
            Some("y"),
            Some("r"),
            Some("r"),
            Some("s"),
            Some("t"),
            Some("u"),
            Some("v"),
            Some("w"),
        ];
        let mut b = vec![Some("x"); a.len()];
        b[4] = Some("z");
        let c = vec![Some("x"); a.len()];
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Utf8, true),
            Field::new("b", DataType::Utf8, true),
            Field::new("c", DataType::Utf8, true),
        ]));
        let batch =
            RecordBatch::try_new(schema, vec![strings(&a), strings(&b), strings(&c)]).unwrap();
        let ctx = SessionContext::new();
        let frame = ctx.read_batch(batch).unwrap();
        let xy = ["x".to_string(), "y".to_string()];
        let x = ["x".to_string()];
        let domains: Vec<(&str, &[String])> = vec![("a", &xy), ("b", &x), ("c", &x)];
        let found = violations(frame, &domains).await.unwrap();
        let owned = |v: &[(&str, i64)]| v.iter().map(|(s, n)| (s.to_string(), *n)).collect();
        assert_eq!(
            found,
            vec![
                (
                    0,
                    Violations {
                        rows: 10,
                        distinct: 7,
                        values: owned(&[("r", 3), ("q", 2), ("s", 1), ("t", 1), ("u", 1)]),
                    }
                ),
                (
                    1,
                    Violations {
                        rows: 1,
                        distinct: 1,
                        values: owned(&[("z", 1)]),
                    }
                ),
            ]
        );
        assert_eq!(
            describe("a", 2, &found[0].1, &[("f.parquet".into(), 10)]),
            "column `a`: 10 rows hold 7 value(s) outside the 2 accepted: \"r\" (3 rows), \"q\" (2 rows), \"s\" (1 row), \"t\" (1 row), \"u\" (1 row), and 2 more value(s); in f.parquet (10 rows)"
        );
    }
}
