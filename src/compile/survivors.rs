//! The id → survivor map of an entity's merged-away records, as a table a
//! plan joins: a plan names it and knows its schema when it is built, and
//! its rows are worked out when a plan that scans it runs.
//!
//! Planning used to collect the merge pairs while it built a plan, so a
//! plan depended on the data it would read (and `explain` read data). Now
//! the pairs are a logical plan held by [`Survivors`]; its `scan` (called
//! when the run stage turns a plan into an execution plan) runs it once,
//! follows the chains to their ends and serves the map from memory to
//! every later scan of the run. Merge audits are small, so the chains are
//! resolved in Rust, not in the plan.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::arrow::array::{Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_plan::{ExecutionPlan, collect};

use crate::error::{CanonError, DataLocation};

/// The merge map of one entity; see the module documentation.
#[derive(Debug)]
pub struct Survivors {
    /// `(id, into, id_as_written, into_as_written)`, all text: one row per
    /// merged-away record, its ids typed like the entity's key (null when
    /// they are not of that type) and as written.
    pairs: LogicalPlan,
    /// The source columns working the map out reads (`system/table` →
    /// columns), for the lineage of every result whose plan joins it.
    reads: BTreeMap<String, BTreeSet<String>>,
    /// Where a bad merge is reported (the merge column's table).
    location: DataLocation,
    /// The type of the entity's key, for the message.
    key_type: String,
    /// The map, once a scan has worked it out.
    map: tokio::sync::OnceCell<RecordBatch>,
}

impl Survivors {
    pub fn new(
        pairs: LogicalPlan,
        reads: BTreeMap<String, BTreeSet<String>>,
        location: DataLocation,
        key_type: String,
    ) -> Survivors {
        Survivors {
            pairs,
            reads,
            location,
            key_type,
            map: tokio::sync::OnceCell::new(),
        }
    }

    /// The source columns working the map out reads.
    pub fn reads(&self) -> &BTreeMap<String, BTreeSet<String>> {
        &self.reads
    }

    /// The plan of the merge pairs, where a bad merge is reported and the
    /// key's type: what [`Survivors::new`] was given, so a plan that joins
    /// the map can be written out and read back (run::wire). The map
    /// itself is not: it is worked out where the plan runs.
    pub fn parts(&self) -> (&LogicalPlan, &DataLocation, &str) {
        (&self.pairs, &self.location, &self.key_type)
    }

    /// canon's data error at the merge column, through the engine.
    fn bad(&self, message: String) -> DataFusionError {
        // Back to canon's own error at the command line (error.rs).
        DataFusionError::External(Box::new(CanonError::data(self.location.clone(), message)))
    }

    /// The map, worked out on `state` once (the pairs run there): its rows,
    /// for a plan that carries the map instead of the pairs' sources.
    pub async fn worked_out(&self, state: &dyn Session) -> DfResult<RecordBatch> {
        Ok(self
            .map
            .get_or_try_init(|| self.work_out(state))
            .await?
            .clone())
    }

    /// Runs the pairs and follows every chain to its survivor.
    async fn work_out(&self, state: &dyn Session) -> DfResult<RecordBatch> {
        let plan = state.create_physical_plan(&self.pairs).await?;
        let mut next: BTreeMap<String, String> = BTreeMap::new();
        for batch in collect(plan, state.task_ctx()).await? {
            let text = |i: usize| batch.column(i).as_any().downcast_ref::<StringArray>();
            let (Some(ids), Some(intos), Some(ids_written), Some(intos_written)) =
                (text(0), text(1), text(2), text(3))
            else {
                // canon's own fault, not the engine's.
                return Err(DataFusionError::External(Box::new(CanonError::Internal(
                    "merge pairs are not strings".into(),
                ))));
            };
            for i in 0..ids.len() {
                for (typed, written) in [(ids, ids_written), (intos, intos_written)] {
                    if typed.is_null(i) && !written.is_null(i) {
                        return Err(self.bad(format!(
                            "merge id `{}` is not a {} like the key it names, so its record cannot be merged",
                            written.value(i),
                            self.key_type
                        )));
                    }
                }
                if ids.is_null(i) || intos.is_null(i) {
                    continue;
                }
                let (id, into) = (ids.value(i), intos.value(i));
                match next.get(id) {
                    Some(other) if other != into => {
                        let (a, b) = (other.as_str().min(into), other.as_str().max(into));
                        return Err(self.bad(format!(
                            "`{id}` is merged into two records, `{a}` and `{b}`: which one survives is not known"
                        )));
                    }
                    Some(_) => {}
                    None => {
                        next.insert(id.to_string(), into.to_string());
                    }
                }
            }
        }
        let resolved = resolve_chains(&next).map_err(|id| {
            self.bad(format!(
                "merge chain starting at `{id}` loops back on itself"
            ))
        })?;
        let (ids, survivors): (Vec<&str>, Vec<&str>) = resolved
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .unzip();
        Ok(RecordBatch::try_new(
            self.schema(),
            vec![
                Arc::new(StringArray::from(ids)),
                Arc::new(StringArray::from(survivors)),
            ],
        )?)
    }
}

#[async_trait::async_trait]
impl TableProvider for Survivors {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("survivor", DataType::Utf8, false),
        ]))
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let map = self.map.get_or_try_init(|| self.work_out(state)).await?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![map.clone()]],
            self.schema(),
            projection.cloned(),
        )?)
    }
}

/// Follows every `id → into` edge to the record that was not merged away.
/// Returns the id that starts a cycle when the chains loop.
pub fn resolve_chains(next: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for start in next.keys() {
        let mut current = start;
        let mut steps = 0;
        while let Some(n) = next.get(current) {
            current = n;
            steps += 1;
            if steps > next.len() {
                return Err(start.clone());
            }
        }
        out.insert(start.clone(), current.clone());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_resolve_to_the_survivor() {
        // A merged into B, later B into C: both resolve to C.
        let next: BTreeMap<String, String> = [("A", "B"), ("B", "C")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let r = resolve_chains(&next).unwrap();
        assert_eq!(r["A"], "C");
        assert_eq!(r["B"], "C");
    }

    #[test]
    fn a_loop_is_reported() {
        let next: BTreeMap<String, String> = [("A", "B"), ("B", "A")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert!(resolve_chains(&next).is_err());
    }
}
