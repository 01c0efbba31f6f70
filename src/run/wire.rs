//! Plans on the wire: canon's logical plans, and the physical plans a
//! session makes of them, written out with DataFusion's protobuf format and
//! read back on another session (a cluster's scheduler and executors, a
//! plan cache).
//!
//! DataFusion writes the plan's nodes, expressions and functions (by name:
//! the session that reads a plan back registers canon's functions as every
//! engine does) itself; [`PlanCodec`] writes the tables it does not know:
//!
//! - a [`DeclaredTable`] by its `system/table` (its schema travels with the
//!   scan), bound to its files where the plan runs, as on one machine;
//! - a merge map ([`Survivors`]) by the plan of its pairs (written out
//!   through this codec too), where a bad merge is reported and the key's
//!   type: the map is worked out where the plan runs;
//! - an in-memory table (a series' days) by its rows, as Arrow IPC;
//! - a function bound to canon.yaml's settings (`is_internal_domain`'s
//!   list, `local_date`'s zone) with those settings ([`BoundFunction`]), so
//!   that a plan read back under another canon.yaml computes what it
//!   computed where it was built, rather than quietly taking the reader's.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion::datasource::MemTable;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Extension, LogicalPlan, ScalarUDF};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::bytes::{
    logical_plan_from_bytes_with_extension_codec, logical_plan_to_bytes_with_extension_codec,
};
use datafusion_proto::bytes::{
    physical_plan_from_bytes_with_extension_codec, physical_plan_to_bytes_with_extension_codec,
};
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};

use crate::compile::declared::DeclaredTable;
use crate::compile::survivors::Survivors;
use crate::error::DataLocation;
use crate::functions::BoundFunction;

/// A table of a plan as written out; see the module documentation.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum WireTable {
    Declared {
        system: String,
        table: String,
    },
    Survivors {
        /// The pairs' plan, protobuf bytes in hex.
        pairs: String,
        reads: BTreeMap<String, std::collections::BTreeSet<String>>,
        system: String,
        table: String,
        column: Option<String>,
        key_type: String,
    },
    Rows {
        /// Arrow IPC stream, in hex.
        ipc: String,
    },
    /// A source bound to its files or objects where the plan was made (a
    /// self-contained plan, a cluster's), read where it runs through that
    /// session's object stores.
    Files {
        urls: Vec<String>,
    },
}

/// Writes a table of exactly the files or objects `urls` (a source bound
/// where the plan was made).
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
pub(crate) fn encode_files(urls: Vec<String>, buf: &mut Vec<u8>) -> DfResult<()> {
    serde_json::to_writer(buf, &WireTable::Files { urls })
        .map_err(|e| wire_error(format!("a table: {e}")))
}

/// Writes a table of rows (a merge map worked out where the plan was made).
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
pub(crate) fn encode_rows(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    buf: &mut Vec<u8>,
) -> DfResult<()> {
    let wire = WireTable::Rows {
        ipc: hex::encode(rows_to_ipc(schema, batches)?),
    };
    serde_json::to_writer(buf, &wire).map_err(|e| wire_error(format!("a table: {e}")))
}

/// canon's codec for the tables DataFusion's protobuf format does not know.
#[derive(Debug, Default, Clone, Copy)]
pub struct PlanCodec;

fn wire_error(message: String) -> DataFusionError {
    DataFusionError::Internal(format!("plan on the wire: {message}"))
}

/// `plan` as bytes, canon's tables included.
pub fn plan_to_bytes(plan: &LogicalPlan) -> DfResult<Vec<u8>> {
    Ok(logical_plan_to_bytes_with_extension_codec(plan, &PlanCodec)?.to_vec())
}

/// A plan written by [`plan_to_bytes`], read back with the functions of
/// `ctx`'s session.
pub fn plan_from_bytes(bytes: &[u8], ctx: &TaskContext) -> DfResult<LogicalPlan> {
    logical_plan_from_bytes_with_extension_codec(bytes, ctx, &PlanCodec)
}

/// A function with the settings it is bound to; one bound to none is
/// written by name alone (and found by name in the reading session).
pub(crate) fn encode_udf(node: &ScalarUDF, buf: &mut Vec<u8>) -> DfResult<()> {
    match BoundFunction::of(node) {
        Some(bound) => serde_json::to_writer(buf, &bound)
            .map_err(|e| wire_error(format!("function {}: {e}", node.name()))),
        None => Ok(()),
    }
}

pub(crate) fn decode_udf(name: &str, buf: &[u8]) -> DfResult<Arc<ScalarUDF>> {
    // DataFusion asks the codec, with nothing written, for a function its
    // registry does not know.
    if buf.is_empty() {
        return Err(wire_error(format!(
            "function {name} is not known here: the plan was written by another version of canon"
        )));
    }
    let bound: BoundFunction =
        serde_json::from_slice(buf).map_err(|e| wire_error(format!("function {name}: {e}")))?;
    if bound.name() != name {
        return Err(wire_error(format!(
            "function {name} was written with the settings of {}",
            bound.name()
        )));
    }
    Ok(Arc::new(bound.udf().map_err(wire_error)?))
}

/// canon's codec for physical plans: the plans a session has made of the
/// logical ones, as a cluster's scheduler sends stages to its executors.
/// Bound to their files by then, a plan's tables are DataFusion's own
/// (Parquet scans of the files it read, a merge map or a series' days as
/// memory scans), and so are its operators; what DataFusion cannot write
/// is a function's settings, written as for logical plans.
#[derive(Debug, Default, Clone, Copy)]
pub struct PhysicalCodec;

impl PhysicalExtensionCodec for PhysicalCodec {
    fn try_decode(
        &self,
        _buf: &[u8],
        _inputs: &[Arc<dyn ExecutionPlan>],
        _ctx: &TaskContext,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Err(wire_error(
            "canon's physical plans have no extension nodes".into(),
        ))
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        _buf: &mut Vec<u8>,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<()> {
        Err(wire_error(format!(
            "operator {} cannot be written",
            node.name()
        )))
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> DfResult<Arc<ScalarUDF>> {
        decode_udf(name, buf)
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> DfResult<()> {
        encode_udf(node, buf)
    }
}

/// A physical plan as bytes, functions' settings included.
pub fn physical_plan_to_bytes(plan: Arc<dyn ExecutionPlan>) -> DfResult<Vec<u8>> {
    Ok(physical_plan_to_bytes_with_extension_codec(plan, &PhysicalCodec)?.to_vec())
}

/// A plan written by [`physical_plan_to_bytes`], read back with the
/// functions of `ctx`'s session, ready to execute there.
pub fn physical_plan_from_bytes(
    bytes: &[u8],
    ctx: &TaskContext,
) -> DfResult<Arc<dyn ExecutionPlan>> {
    physical_plan_from_bytes_with_extension_codec(bytes, ctx, &PhysicalCodec)
}

fn rows_to_ipc(schema: &SchemaRef, batches: &[RecordBatch]) -> DfResult<Vec<u8>> {
    let mut out = Vec::new();
    let mut writer = StreamWriter::try_new(&mut out, schema)?;
    for b in batches {
        writer.write(b)?;
    }
    writer.finish()?;
    drop(writer);
    Ok(out)
}

fn rows_from_ipc(bytes: &[u8]) -> DfResult<(SchemaRef, Vec<RecordBatch>)> {
    let reader = StreamReader::try_new(Cursor::new(bytes), None)?;
    let schema = reader.schema();
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    Ok((schema, batches))
}

impl LogicalExtensionCodec for PlanCodec {
    fn try_decode(
        &self,
        _buf: &[u8],
        _inputs: &[LogicalPlan],
        _ctx: &TaskContext,
    ) -> DfResult<Extension> {
        Err(wire_error("canon's plans have no extension nodes".into()))
    }

    fn try_encode(&self, node: &Extension, _buf: &mut Vec<u8>) -> DfResult<()> {
        Err(wire_error(format!(
            "extension node {} cannot be written",
            node.node.name()
        )))
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> DfResult<Arc<ScalarUDF>> {
        decode_udf(name, buf)
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> DfResult<()> {
        encode_udf(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        _table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> DfResult<Arc<dyn TableProvider>> {
        let wire: WireTable =
            serde_json::from_slice(buf).map_err(|e| wire_error(format!("a table: {e}")))?;
        Ok(match wire {
            WireTable::Declared { system, table } => Arc::new(DeclaredTable {
                system,
                table,
                schema,
            }),
            WireTable::Survivors {
                pairs,
                reads,
                system,
                table,
                column,
                key_type,
            } => {
                let bytes =
                    hex::decode(pairs).map_err(|e| wire_error(format!("merge pairs: {e}")))?;
                let pairs = plan_from_bytes(&bytes, ctx)?;
                let location = DataLocation {
                    system,
                    table,
                    file: None,
                    column,
                };
                Arc::new(Survivors::new(pairs, reads, location, key_type))
            }
            WireTable::Rows { ipc } => {
                let bytes = hex::decode(ipc).map_err(|e| wire_error(format!("rows: {e}")))?;
                let (_, batches) = rows_from_ipc(&bytes)?;
                Arc::new(MemTable::try_new(schema, vec![batches])?)
            }
            WireTable::Files { urls } => {
                let urls = urls
                    .iter()
                    .map(datafusion::datasource::listing::ListingTableUrl::parse)
                    .collect::<DfResult<Vec<_>>>()?;
                Arc::new(datafusion::datasource::listing::ListingTable::try_new(
                    super::listing_of_urls(urls).with_schema(schema),
                )?)
            }
        })
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> DfResult<()> {
        let wire = if let Some(declared) = node.downcast_ref::<DeclaredTable>() {
            WireTable::Declared {
                system: declared.system.clone(),
                table: declared.table.clone(),
            }
        } else if let Some(survivors) = node.downcast_ref::<Survivors>() {
            let (pairs, location, key_type) = survivors.parts();
            WireTable::Survivors {
                pairs: hex::encode(plan_to_bytes(pairs)?),
                reads: survivors.reads().clone(),
                system: location.system.clone(),
                table: location.table.clone(),
                column: location.column.clone(),
                key_type: key_type.to_string(),
            }
        } else if let Some(memory) = node.downcast_ref::<MemTable>() {
            let mut batches = Vec::new();
            for partition in &memory.batches {
                let rows = partition
                    .try_read()
                    .map_err(|_| wire_error(format!("{table_ref}'s rows are being written")))?;
                batches.extend(rows.iter().cloned());
            }
            WireTable::Rows {
                ipc: hex::encode(rows_to_ipc(&memory.schema(), &batches)?),
            }
        } else {
            return Err(wire_error(format!(
                "{table_ref} is a table canon cannot write out"
            )));
        };
        serde_json::to_writer(buf, &wire).map_err(|e| wire_error(format!("a table: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plan naming a function this engine does not register (one written
    /// by another version of canon) says so, not a JSON parser's "EOF".
    #[test]
    fn an_unknown_function_is_named() {
        let err = decode_udf("series_bucket", &[]).unwrap_err().to_string();
        assert!(
            err.contains("function series_bucket is not known here"),
            "{err}"
        );
    }

    /// A function's settings round-trip, and settings written for one
    /// function are not taken for another's.
    #[test]
    fn bound_settings_round_trip_and_stay_with_their_function() {
        let bound = BoundFunction::LocalDate {
            zone: "Asia/Tokyo".into(),
        };
        let mut buf = Vec::new();
        encode_udf(&bound.udf().unwrap(), &mut buf).unwrap();
        let back = decode_udf("local_date", &buf).unwrap();
        assert_eq!(BoundFunction::of(&back), Some(bound));
        let err = decode_udf("is_internal_domain", &buf)
            .unwrap_err()
            .to_string();
        assert!(err.contains("settings of local_date"), "{err}");
        let bad = br#"{"function":"local_date","zone":"Mars/Olympus"}"#;
        let err = decode_udf("local_date", bad).unwrap_err().to_string();
        assert!(err.contains("not a known time zone"), "{err}");
    }
}
