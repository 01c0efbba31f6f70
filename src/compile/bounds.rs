//! A request's days as the literals a time column is compared with: a
//! date column with dates, a timestamp column with the UTC instant the
//! local day starts at in the reporting zone (`request::Resolved`), always
//! as half-open ranges on the raw column so Parquet statistics prune.
//! Shared by the flows' periods, the snapshots' days and the gates.

use chrono::NaiveDate;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Expr, lit};

use super::Resolved;
use crate::calendar::Period;
use crate::error::{CanonError, Location};

pub(crate) fn next_day(d: NaiveDate) -> NaiveDate {
    d.succ_opt().expect("a next day")
}

pub(crate) fn not_a_time(location: &Location, sql: &str, ty: &DataType) -> CanonError {
    CanonError::definition(
        location.clone(),
        format!("`{sql}` is {ty}; a metric's time must be a date or a timestamp"),
    )
}

/// `[from, to)` on the raw column: dates compared as dates, timestamps with
/// the instants at which the local days start, so Parquet statistics prune.
pub(crate) fn period_filter(
    request: &Resolved,
    time: &Expr,
    ty: &DataType,
    period: &Period,
) -> Option<Expr> {
    let from = bound(request, ty, period.from)?;
    let to = bound(request, ty, period.to)?;
    Some(time.clone().gt_eq(from).and(time.clone().lt(to)))
}

/// The literal a time column is compared with at the start of local day `d`
/// (in `request`'s reporting zone).
pub(crate) fn bound(request: &Resolved, ty: &DataType, d: NaiveDate) -> Option<Expr> {
    bound_value(request, ty, d).map(lit)
}

/// [`bound`]'s value.
pub(crate) fn bound_value(request: &Resolved, ty: &DataType, d: NaiveDate) -> Option<ScalarValue> {
    match ty {
        DataType::Date32 => Some(ScalarValue::Date32(Some(days_since_epoch(d)))),
        DataType::Timestamp(TimeUnit::Microsecond, tz) => Some(ScalarValue::TimestampMicrosecond(
            Some(request.day_start_utc_micros(d)),
            tz.clone(),
        )),
        _ => None,
    }
}

/// The bound each of `days` ends at (the start of the next local day),
/// typed like a column of type `ty`: what a series' positions count.
pub(crate) fn day_ends(
    request: &Resolved,
    ty: &DataType,
    days: &[NaiveDate],
) -> Option<Vec<ScalarValue>> {
    days.iter()
        .map(|d| bound_value(request, ty, next_day(*d)))
        .collect()
}

pub fn days_since_epoch(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32
}
