//! A 64-bit hash of a key, for counting keys cheaply.
//!
//! Two rows with the same key always have the same hash, so "as many
//! distinct hashes as keyed rows" proves that no key repeats; a repeated
//! hash is a repeated key or (rarely) two keys that collide, which an exact
//! pass over the key itself tells apart. Used by a metric's own aggregate
//! (no row counted twice, `compile::simple`) and by the uniqueness gate's
//! first pass (`quality::uniqueness`).

use std::sync::Arc;

use datafusion::arrow::array::UInt64Array;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::hash_utils::{RandomState, create_hashes};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// `key_hash(key)`: a 64-bit hash of each key (DataFusion's own hashing, the
/// one its hash joins and aggregates use, with a fixed seed, so equal keys
/// hash equally in every batch and every run). Built into canon's plans
/// directly and never registered, so definitions cannot call it.
pub fn key_hash(key: Expr) -> Expr {
    ScalarUDF::new_from_impl(KeyHash {
        signature: Signature::any(1, Volatility::Immutable),
    })
    .call(vec![key])
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct KeyHash {
    signature: Signature,
}

impl ScalarUDFImpl for KeyHash {
    fn name(&self) -> &str {
        "canon_key_hash"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::UInt64)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let mut hashes = vec![0u64; args.number_rows];
        create_hashes(&arrays, &RandomState::default(), &mut hashes)?;
        Ok(ColumnarValue::Array(Arc::new(UInt64Array::from(hashes))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::col;
    use datafusion::arrow::array::{Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::prelude::SessionContext;

    /// Equal keys hash equally, whichever batch they come in: the first pass
    /// could only miss a repeated key if this failed. (Within one gate every
    /// key has the one type of its column.)
    #[tokio::test]
    async fn equal_keys_hash_equally_across_batches() {
        let ctx = SessionContext::new();
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, true)]));
        let batch = |keys: Vec<Option<&str>>| {
            RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(keys))]).unwrap()
        };
        // "a" twice (in two batches), "b" once, a null.
        let df = ctx
            .read_batches(vec![
                batch(vec![Some("a"), Some("b")]),
                batch(vec![None, Some("a")]),
            ])
            .unwrap();
        let hashed = df
            .select(vec![col("k"), key_hash(col("k")).alias("h")])
            .unwrap()
            .collect()
            .await
            .unwrap();
        let mut by_key: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
        for b in &hashed {
            let k = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
            let h = b.column(1).as_any().downcast_ref::<UInt64Array>().unwrap();
            for i in 0..b.num_rows() {
                if !k.is_null(i) {
                    by_key
                        .entry(k.value(i).to_string())
                        .or_default()
                        .push(h.value(i));
                }
            }
        }
        // "a": the same hash in both batches.
        let a = &by_key["a"];
        assert_eq!(a.len(), 2);
        assert!(a.iter().all(|h| *h == a[0]), "{a:?}");
        assert_ne!(by_key["b"][0], a[0]);
    }
}
