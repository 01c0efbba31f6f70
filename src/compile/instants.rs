//! A series' instants as integer positions, so that pairing rows with the
//! instants they hold at is an equi-join, not a range join.
//!
//! A series of as-of days (twelve month ends, a quarter of days, a cohort's
//! T0 and T) is a small table numbered `0..n` in the order of the days. A
//! row in force over `[from, to)` holds at instant `k` when `from < end(k)`
//! and `to >= end(k)` (`end(k)`: the instant day `k` ends at). With the ends
//! in ascending order those instants are one run of positions,
//! `[position(from), position(to))`, where `position(v)` counts the ends at
//! or before `v`. So each row gets its run with `series_position`, the run
//! is unnested into one row per position (`series_span`), and the days'
//! table is joined on the position by a hash join. Written as the range
//! condition itself, DataFusion plans a nested-loop join that evaluated the
//! condition for every (row, day) pair: 4.7 s of 8 on a 12-month
//! open_pipeline series at scale 200 (docs/performance.md).
//!
//! Both functions take everything they need as arguments (the ends are
//! literal arguments), so a plan that calls them can be serialized by name
//! and run elsewhere.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Int64Array, Int64Builder, ListBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, lit,
};

/// `series_position(v, [end_0, …, end_{n-1}])`: how many of the ascending
/// ends are at or before `v` (null for a null `v`), i.e. the position of
/// the first instant `v` is before. The ends (dates or timestamps typed
/// like `v`) are one literal list of the integers they are stored as: one
/// literal argument per day made a ten-year daily series take a second to
/// plan (and 400 k characters of plan text).
pub fn position(value: Expr, ends: &[ScalarValue]) -> Expr {
    let stored: Vec<ScalarValue> = ends
        .iter()
        .map(|e| {
            ScalarValue::Int64(match e {
                ScalarValue::Date32(d) => d.map(i64::from),
                ScalarValue::TimestampSecond(t, _)
                | ScalarValue::TimestampMillisecond(t, _)
                | ScalarValue::TimestampMicrosecond(t, _)
                | ScalarValue::TimestampNanosecond(t, _)
                | ScalarValue::Int64(t)
                | ScalarValue::Date64(t) => *t,
                // Refused when the plan runs ("must not be null").
                _ => None,
            })
        })
        .collect();
    let list = ScalarValue::List(ScalarValue::new_list(&stored, &DataType::Int64, true));
    ScalarUDF::new_from_impl(SeriesPosition::new()).call(vec![value, lit(list)])
}

/// `series_span(lo, hi)`: the positions `lo..hi` as a list (empty when
/// `lo >= hi` or either is null), to be unnested into one row per instant.
pub fn span(lo: Expr, hi: Expr) -> Expr {
    ScalarUDF::new_from_impl(SeriesSpan::new()).call(vec![lo, hi])
}

/// The later of two positions (`b` when `a < b`, else `a`).
pub fn later(a: Expr, b: Expr) -> Result<Expr> {
    datafusion::logical_expr::when(a.clone().lt(b.clone()), b).otherwise(a)
}

/// The earlier of two positions (`b` when `a > b`, else `a`).
pub fn earlier(a: Expr, b: Expr) -> Result<Expr> {
    datafusion::logical_expr::when(a.clone().gt(b.clone()), b).otherwise(a)
}

/// Every function of this module, for a session's function registry.
pub fn udfs() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(SeriesPosition::new()),
        ScalarUDF::new_from_impl(SeriesSpan::new()),
    ]
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct SeriesPosition {
    signature: Signature,
}

impl SeriesPosition {
    fn new() -> Self {
        SeriesPosition {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

/// `values` (a date or timestamp array) as the integers they are stored as.
fn as_integers(values: &ArrayRef) -> Result<Int64Array> {
    let ints = match values.data_type() {
        DataType::Timestamp(unit, _) => cast(
            &cast(values, &DataType::Timestamp(*unit, None))?,
            &DataType::Int64,
        )?,
        DataType::Date32 => cast(&cast(values, &DataType::Int32)?, &DataType::Int64)?,
        DataType::Date64 | DataType::Int32 | DataType::Int64 => cast(values, &DataType::Int64)?,
        other => return exec_err!("series_position cannot order values of type {other}"),
    };
    Ok(ints
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("cast to Int64")
        .clone())
}

impl ScalarUDFImpl for SeriesPosition {
    fn name(&self) -> &str {
        "series_position"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [value, ends] = args.args.as_slice() else {
            return exec_err!("series_position needs a value and the series' ends");
        };
        let ColumnarValue::Scalar(ScalarValue::List(ends)) = ends else {
            return exec_err!("series_position's ends must be a literal list");
        };
        let ends = ends.value(0);
        let Some(ends) = ends.as_any().downcast_ref::<Int64Array>() else {
            return exec_err!("series_position's ends must be integers");
        };
        if ends.null_count() > 0 {
            return exec_err!("series_position's ends must not be null");
        }
        let bounds: Vec<i64> = ends.values().to_vec();
        if bounds.windows(2).any(|w| w[0] > w[1]) {
            return exec_err!("series_position's ends must be in ascending order");
        }
        let values = value.to_array(args.number_rows)?;
        let positions: Int64Array = as_integers(&values)?
            .iter()
            .map(|v| v.map(|v| bounds.partition_point(|e| *e <= v) as i64))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(positions)))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct SeriesSpan {
    signature: Signature,
}

impl SeriesSpan {
    fn new() -> Self {
        SeriesSpan {
            signature: Signature::exact(
                vec![DataType::Int64, DataType::Int64],
                Volatility::Immutable,
            ),
        }
    }
}

impl ScalarUDFImpl for SeriesSpan {
    fn name(&self) -> &str {
        "series_span"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::List(Arc::new(Field::new(
            "item",
            DataType::Int64,
            false,
        ))))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [lo, hi] = args.args.as_slice() else {
            return exec_err!("series_span takes two positions");
        };
        let lo = lo.to_array(args.number_rows)?;
        let hi = hi.to_array(args.number_rows)?;
        let (lo, hi) = (as_integers(&lo)?, as_integers(&hi)?);
        let mut out = ListBuilder::new(Int64Builder::new()).with_field(Arc::new(Field::new(
            "item",
            DataType::Int64,
            false,
        )));
        for (lo, hi) in lo.iter().zip(hi.iter()) {
            if let (Some(lo), Some(hi)) = (lo, hi) {
                for k in lo..hi {
                    out.values().append_value(k);
                }
            }
            out.append(true);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ListArray, TimestampMicrosecondArray};
    use datafusion::arrow::datatypes::FieldRef;
    use datafusion::config::ConfigOptions;

    fn invoke(f: &dyn ScalarUDFImpl, args: Vec<ColumnarValue>, rows: usize) -> ArrayRef {
        let arg_fields: Vec<FieldRef> = args
            .iter()
            .map(|a| Arc::new(Field::new("a", a.data_type(), true)))
            .collect();
        let ret = f
            .return_type(&args.iter().map(|a| a.data_type()).collect::<Vec<_>>())
            .unwrap();
        f.invoke_with_args(ScalarFunctionArgs {
            args,
            arg_fields,
            number_rows: rows,
            return_field: Arc::new(Field::new("r", ret, true)),
            config_options: Arc::new(ConfigOptions::default()),
        })
        .unwrap()
        .to_array(rows)
        .unwrap()
    }

    fn ts(v: i64) -> ScalarValue {
        ScalarValue::TimestampMicrosecond(Some(v), Some("UTC".into()))
    }

    #[test]
    fn a_position_counts_the_ends_at_or_before_the_value() {
        // Ends 10, 20, 30: 9 is before all three (0); 10 is at the first
        // end, so not before it (1); 25 is after two (2); 30 and 99 after
        // all (3); null stays null.
        let values = TimestampMicrosecondArray::from(vec![
            Some(9),
            Some(10),
            Some(25),
            Some(30),
            Some(99),
            None,
        ])
        .with_timezone("UTC");
        let Expr::ScalarFunction(call) = position(lit(ts(0)), &[ts(10), ts(20), ts(30)]) else {
            panic!("a function call");
        };
        let Expr::Literal(ends, _) = &call.args[1] else {
            panic!("the ends as one literal");
        };
        let args = vec![
            ColumnarValue::Array(Arc::new(values)),
            ColumnarValue::Scalar(ends.clone()),
        ];
        let out = invoke(&SeriesPosition::new(), args, 6);
        let out = out.as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(
            out.iter().collect::<Vec<_>>(),
            [Some(0), Some(1), Some(2), Some(3), Some(3), None]
        );
    }

    #[test]
    fn a_span_lists_the_positions_from_lo_up_to_hi() {
        let lo = Int64Array::from(vec![Some(0), Some(2), Some(3), None]);
        let hi = Int64Array::from(vec![Some(2), Some(5), Some(3), Some(4)]);
        let out = invoke(
            &SeriesSpan::new(),
            vec![
                ColumnarValue::Array(Arc::new(lo)),
                ColumnarValue::Array(Arc::new(hi)),
            ],
            4,
        );
        let out = out.as_any().downcast_ref::<ListArray>().unwrap();
        let lists: Vec<Vec<i64>> = (0..4)
            .map(|i| {
                let v = out.value(i);
                v.as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .values()
                    .to_vec()
            })
            .collect();
        // [0, 2) → 0, 1; [2, 5) → 2, 3, 4; [3, 3) and a null bound → none.
        assert_eq!(lists, [vec![0, 1], vec![2, 3, 4], vec![], vec![]]);
    }
}
