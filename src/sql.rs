//! Ad-hoc SQL over the extracts, outside governance: each source table the
//! statement names is registered as `system.table` straight from its folder
//! (schema read from the files, no checks against the models, no hashing,
//! no gates), so a damaged or missing table elsewhere does not stop it, on a
//! session configured as the engine's. For exploring the data, and as the
//! benchmark harness's "DataFusion by hand" baseline, which is why it adds
//! nothing of canon's own between the SQL and the engine. It is read-only:
//! a query cannot write into the extracts or over the project's files.

use crate::run::memory::WithinMemory;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::common::TableReference;
use datafusion::datasource::listing::ListingTable;
use datafusion::execution::context::SQLOptions;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{Query, SetExpr, Statement as SqlStatement};

use crate::catalog::Catalog;
use crate::error::{CanonError, Result};

/// Runs `sql` over the tables under `root` and returns its batches.
pub async fn run(catalog: &Catalog, root: &Path, sql: &str) -> Result<Vec<RecordBatch>> {
    // Bounded before any parser sees it, so no statement overflows the stack.
    if let Some(why) = crate::compile::limits::text_problem(sql, &crate::compile::limits::AD_HOC) {
        return Err(CanonError::request(format!("cannot run the SQL: {why}")));
    }
    let ctx = crate::run::session(catalog)?;
    let state = ctx.state();
    let dialect = state.config().options().sql_parser.dialect;
    // A statement that does not parse is the request's fault (exit 2).
    let mut statement = state.sql_to_statement(sql, &dialect).map_err(|e| {
        CanonError::request(format!("cannot read the SQL: {}", e.strip_backtrace()))
    })?;
    balance(&mut statement);
    if let Some(why) = beyond_limits(&statement) {
        return Err(CanonError::request(format!("cannot run the SQL: {why}")));
    }
    // Two locks on one door: the statement must be a query (so one the
    // engine cannot even plan, `WITH … INSERT`, is refused as a write, not
    // reported as unimplemented), and its plan must pass the engine's own
    // read-only options, which see through EXPLAIN and subqueries.
    if !reads_only(&statement) {
        return Err(refused("only queries are run"));
    }
    // Only the tables the statement names are opened: a damaged file or a
    // missing folder of another table is none of this query's business,
    // and one it names is reported as that table's (system/table, file).
    // `crm.x` and `datafusion.crm.x` name one table: opened once.
    let named: std::collections::BTreeSet<(String, String)> = state
        .resolve_table_references(&statement)?
        .into_iter()
        .filter_map(|reference| match reference {
            TableReference::Partial { schema, table } => Some((schema, table)),
            TableReference::Full {
                catalog: c,
                schema,
                table,
            } if c.as_ref() == "datafusion" => Some((schema, table)),
            // Not a source (the engine says it is not found).
            _ => None,
        })
        .map(|(schema, table)| (schema.to_string(), table.to_string()))
        .collect();
    let mut read = Vec::new();
    for (system, table) in &named {
        let Some((id, _)) = catalog.source_by_name(system, table) else {
            continue;
        };
        // The same files a governed query reads, with the schema they hold;
        // a missing folder is the data's fault, named as a query names it.
        let paths = crate::run::files::source_files(catalog, root, id)?;
        let table_read = crate::run::decode::ReadTable {
            location: crate::error::DataLocation {
                system: system.clone(),
                table: table.clone(),
                file: None,
                column: None,
            },
            files: paths.clone(),
            columns: None,
        };
        // A file whose footer cannot be read fails here, before the query
        // runs: named like a file that fails while the query runs.
        let config = match crate::run::listing_of(&paths)?
            .infer_schema(&ctx.state())
            .await
        {
            Ok(config) => config,
            Err(e) => return Err(located(e.into(), vec![table_read]).await),
        };
        read.push(table_read);
        ctx.register_table(
            TableReference::partial(system.as_str(), table.as_str()),
            Arc::new(ListingTable::try_new(config)?),
        )?;
    }
    let state = ctx.state();
    let plan = state.statement_to_plan(statement).await?;
    read_only().verify_plan(&plan).map_err(|e| {
        refused(
            e.strip_backtrace()
                .trim_start_matches("Error during planning: "),
        )
    })?;
    match ctx
        .execute_logical_plan(plan.clone())
        .await?
        .collect_within_memory()
        .await
    {
        // An empty result is still its columns: a header line with no rows,
        // not nothing (a reader of the TSV cannot tell nothing from an error).
        Ok(batches) if batches.is_empty() => Ok(vec![RecordBatch::new_empty(Arc::new(
            plan.schema().as_arrow().clone(),
        ))]),
        Ok(batches) => Ok(batches),
        // A damaged file is named (the engine's decode error does not): the
        // files of the tables the plan scans are decoded again, the columns
        // it reads only, off the runtime's threads.
        Err(e) => {
            let mut scanned = std::collections::BTreeMap::new();
            if let Ok(optimized) = state.optimize(&plan) {
                crate::run::scanned_columns(&optimized, &mut scanned);
            }
            let read: Vec<_> = read
                .into_iter()
                .filter_map(|mut t| {
                    let key = format!("{}/{}", t.location.system, t.location.table);
                    t.columns = Some(scanned.get(&key)?.iter().cloned().collect());
                    Some(t)
                })
                .collect();
            Err(located(e.into(), read).await)
        }
    }
}

/// `error`, with the damaged file among `tables` named when it is a decode
/// error (`run::decode::locate`), found off the runtime's threads.
async fn located(error: CanonError, tables: Vec<crate::run::decode::ReadTable>) -> CanonError {
    tokio::task::spawn_blocking(move || crate::run::decode::locate(error, &tables))
        .await
        .unwrap_or_else(|e| CanonError::Internal(format!("locating a damaged file: {e}")))
}

fn refused(why: &str) -> CanonError {
    CanonError::request(format!(
        "canon sql is read-only: {why} (COPY, INSERT, CREATE, DROP, SET and every other \
         statement that writes or changes state are refused; use SELECT, WITH … SELECT, EXPLAIN)"
    ))
}

/// The engine's own statement options with everything that writes or
/// changes state turned off: DDL (CREATE/DROP …), DML (INSERT, COPY …) and
/// statements (SET, PREPARE …). Checked on the whole plan, subqueries and
/// `EXPLAIN ANALYZE` included.
fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// A query (or an EXPLAIN of one) whose every set expression selects, or
/// a look at the catalog (SHOW TABLES, SHOW COLUMNS, DESCRIBE).
fn reads_only(statement: &DFStatement) -> bool {
    match statement {
        DFStatement::Statement(s) => match s.as_ref() {
            SqlStatement::Query(q) => query_reads_only(q),
            SqlStatement::ShowTables { .. }
            | SqlStatement::ShowColumns { .. }
            | SqlStatement::ExplainTable { .. } => true,
            SqlStatement::Explain { statement, .. } => match statement.as_ref() {
                SqlStatement::Query(q) => query_reads_only(q),
                _ => false,
            },
            _ => false,
        },
        DFStatement::Explain(e) => reads_only(&e.statement),
        _ => false,
    }
}

fn query_reads_only(q: &Query) -> bool {
    set_reads_only(&q.body)
}

fn set_reads_only(body: &SetExpr) -> bool {
    match body {
        SetExpr::Select(_) | SetExpr::Values(_) | SetExpr::Table(_) => true,
        SetExpr::Query(q) => query_reads_only(q),
        SetExpr::SetOperation { left, right, .. } => set_reads_only(left) && set_reads_only(right),
        _ => false,
    }
}

/// Tab-separated text with a header line: easy to read and to parse.
pub fn tsv(batches: &[RecordBatch]) -> Result<String> {
    let mut out = String::new();
    if let Some(first) = batches.first() {
        let names: Vec<&str> = first
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        out.push_str(&names.join("\t"));
        out.push('\n');
    }
    for batch in batches {
        for row in 0..batch.num_rows() {
            let cells = batch
                .columns()
                .iter()
                .map(|c| array_value_to_string(c, row))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            out.push_str(&cells.join("\t"));
            out.push('\n');
        }
    }
    Ok(out)
}

/// Why `statement` nests expressions deeper, or reads more relations, than
/// `canon sql` allows, checked on the parser's tree before DataFusion plans
/// it.
fn beyond_limits(statement: &datafusion::sql::parser::Statement) -> Option<String> {
    use crate::compile::limits::{AD_HOC, shape_problem};
    use datafusion::sql::parser::Statement;
    match statement {
        Statement::Statement(s) => shape_problem(s.as_ref(), &AD_HOC),
        Statement::Explain(e) => beyond_limits(&e.statement),
        // Refused as writes or settings before they are planned.
        _ => None,
    }
}

/// `statement` with its chains of AND and OR balanced (as in definitions),
/// so a long list of alternatives is not refused as deep.
fn balance(statement: &mut datafusion::sql::parser::Statement) {
    use datafusion::sql::parser::Statement;
    match statement {
        Statement::Statement(s) => crate::compile::limits::balance_conditions(s.as_mut()),
        Statement::Explain(e) => balance(&mut e.statement),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The engine's options refuse a write on their own, without the
    // statement check in front of them: each lock holds by itself.
    #[tokio::test]
    async fn the_engine_options_alone_refuse_writes() {
        let ctx = datafusion::prelude::SessionContext::new();
        ctx.sql("CREATE TABLE t AS SELECT 1 AS a").await.unwrap();
        for sql in [
            "COPY (SELECT 1 AS a) TO '/nonexistent/x.csv' STORED AS CSV",
            "EXPLAIN ANALYZE COPY (SELECT 1 AS a) TO '/nonexistent/x.csv' STORED AS CSV",
            "INSERT INTO t SELECT 2",
            "CREATE VIEW v AS SELECT 1",
            "SET datafusion.execution.batch_size = 1",
        ] {
            let plan = ctx.state().create_logical_plan(sql).await.unwrap();
            assert!(read_only().verify_plan(&plan).is_err(), "{sql}");
        }
        let plan = ctx
            .state()
            .create_logical_plan("SELECT a FROM t")
            .await
            .unwrap();
        read_only().verify_plan(&plan).unwrap();
    }
}
