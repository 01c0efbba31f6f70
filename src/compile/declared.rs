//! A source as planning sees it: its declared schema and its name, nothing
//! that reads a file.
//!
//! Plans are built over [`DeclaredTable`]s, so planning works the same with
//! or without data (`validate`, `explain` on an empty project, a plan shipped
//! to another machine) and cannot read a row. A plan's tables are bound to
//! their data only when the plan runs: the session that runs it carries a
//! [`Bindings`] extension (the run stage's checked files), and a declared
//! table's scan asks it for the table that reads them. A plan run on a
//! session without bindings (the planning session) fails with an internal
//! error instead of reading anything.

use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;

use crate::error::{CanonError, Result};
use crate::spec::SourceSpec;

/// The Arrow schema a model declares for a source. Columns are nullable in
/// the table schema so that completeness is measured by the quality checks
/// instead of failing the read.
pub fn declared_schema(spec: &SourceSpec) -> SchemaRef {
    Arc::new(Schema::new(
        spec.columns
            .iter()
            .map(|c| Field::new(&c.name, c.ty.arrow(), true))
            .collect::<Vec<_>>(),
    ))
}

/// What binds a declared source to the table that reads its data: the run
/// stage, which checks the source's files against the model first.
#[async_trait::async_trait]
pub trait SourceBinder: Send + Sync {
    /// The table reading `system/table`'s data, with the declared schema
    /// (asynchronous: an object store is listed and its footers read).
    async fn provider(&self, system: &str, table: &str) -> Result<Arc<dyn TableProvider>>;
}

/// A session's bindings (a session config extension): present on the
/// sessions that run plans, absent on the one that plans them.
pub struct Bindings(pub Arc<dyn SourceBinder>);

impl std::fmt::Debug for Bindings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bindings")
    }
}

/// A source table as declared by its model; see the module documentation.
#[derive(Debug)]
pub struct DeclaredTable {
    pub system: String,
    pub table: String,
    pub schema: SchemaRef,
}

#[async_trait::async_trait]
impl TableProvider for DeclaredTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// As the Parquet listing tables that read sources answer: every filter
    /// may prune files, row groups and rows, and is evaluated again above
    /// the scan. So a plan's text is the same bound or not.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let Some(bindings) = state.config().get_extension::<Bindings>() else {
            return Err(DataFusionError::External(Box::new(CanonError::Internal(
                format!(
                    "{}/{} was to be read by the planning session, which reads no data",
                    self.system, self.table
                ),
            ))));
        };
        let provider = bindings
            .0
            .provider(&self.system, &self.table)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        // A plan read back from the wire was built with the writer's
        // declaration; the scan's projection and filters are positions and
        // names in it. Run over another declaration (a cluster's executors
        // with other models) they would read other columns without an error.
        if provider.schema().fields() != self.schema.fields() {
            let names = |s: &SchemaRef| {
                s.fields()
                    .iter()
                    .map(|f| format!("{} {}", f.name(), f.data_type()))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(DataFusionError::External(Box::new(CanonError::Data {
                location: crate::error::DataLocation {
                    system: self.system.clone(),
                    table: self.table.clone(),
                    file: None,
                    column: None,
                },
                message: format!(
                    "the plan was built for a declaration of this table ({}) that is not this project's ({}): plan and run with the same models",
                    names(&self.schema),
                    names(&provider.schema())
                ),
            })));
        }
        provider.scan(state, projection, filters, limit).await
    }
}
