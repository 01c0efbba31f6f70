//! Money in the base currency: each row's amount converted at the rate in
//! force on its day (a date of the row, a literal day, or each instant of a
//! series) and rounded to the cent per row. Shared by the pairing plan of
//! [`super::simple`] and the rate-run plan of [`super::series_ranges`].

use chrono::NaiveDate;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Column, ScalarValue};
use datafusion::functions::expr_fn::round;
use datafusion::logical_expr::{Expr, JoinType, cast, col, lit, when};
use datafusion::prelude::DataFrame;

use super::bounds::{days_since_epoch, next_day};
use super::entity::entity_frame;
use super::instants;
use super::planner::Planner;
use super::snapshot::{SERIES, SERIES_POSITION};
use crate::error::{CanonError, Location, Result};

/// Scale at which converted money is kept: cents.
pub const MONEY_SCALE: i8 = 2;

/// The column a series' row gets for the position of the day it holds at
/// (joined to the days' table's `_k`).
pub(super) const AT_DAY: &str = "_at_day";

/// The day a row's rate is the rate in force on.
pub(super) enum RateDate<'a> {
    /// A date expression over the row (or a literal).
    Day(Expr),
    /// The day of the series the row is paired with (its `AT_DAY`
    /// position): the rates are paired with the series' days first (a few
    /// hundred rates by a few days), and each row finds its rate by an
    /// equi-join on (currency, position). Joined on currency alone, with the
    /// day's range as the join's filter, every row of a twelve-month series
    /// was compared with each of its currency's rates (0.55 s of 2.7 at
    /// scale 200).
    SeriesDay(&'a [(String, NaiveDate)]),
}

/// The rates' frame, and whether their validity is held as dates:
/// positions compare days as days, so rates valid over timestamps are
/// joined by each instant's day itself.
pub(super) async fn fx_frame(engine: &Planner, location: &Location) -> Result<(DataFrame, bool)> {
    let fx = entity_frame(engine, "fx_rate").await.map_err(|e| match e {
        CanonError::Request(_) => CanonError::definition(
            location.clone(),
            "currency conversion needs an `fx_rate` entity (fields currency, rate, valid_from, valid_to) in models/",
        ),
        other => other,
    })?;
    let dated = ["valid_from", "valid_to"].iter().all(|f| {
        fx.schema()
            .field_with_unqualified_name(f)
            .is_ok_and(|f| f.data_type() == &DataType::Date32)
    });
    Ok((fx, dated))
}

/// Joins the dated rate of each row and converts `value` to the base
/// currency, rounded to the cent per row; also flags rows with no rate.
pub(super) async fn convert(
    engine: &Planner,
    frame: DataFrame,
    value: Expr,
    currency: Expr,
    rate_date: RateDate<'_>,
    location: &Location,
) -> Result<(DataFrame, Expr, Expr)> {
    let base_currency = engine.catalog.files.project.spec.base_currency.clone();
    let (fx, dated) = fx_frame(engine, location).await?;
    let fx_col = |n: &str| Expr::Column(Column::new(Some("_fx"), n));
    let rate_date = match rate_date {
        RateDate::SeriesDay(_) if !dated => {
            RateDate::Day(Expr::Column(Column::new(Some(SERIES), "_day")))
        }
        other => other,
    };
    let frame = match rate_date {
        RateDate::Day(day) => frame.join_on(
            fx.alias("_fx")?,
            JoinType::Left,
            [
                currency.clone().eq(fx_col("currency")),
                fx_col("valid_from").lt_eq(day.clone()),
                day.lt(fx_col("valid_to")),
            ],
        )?,
        RateDate::SeriesDay(days) => {
            // The positions of the days each rate is in force on
            // (`valid_from <= day < valid_to`: the days before `valid_from`
            // are the ones whose next day is at or before it), one row per
            // (rate, day); the small table is the join's build side.
            let (from, to) = rate_run(days);
            let span = instants::span(from, to);
            let by_day = fx
                .with_column(AT_DAY, span)?
                .unnest_columns(&[AT_DAY])?
                .select(vec![
                    col("currency"),
                    col("rate"),
                    col(AT_DAY).alias(SERIES_POSITION),
                ])?;
            by_day.alias("_fx")?.join_on(
                frame,
                JoinType::Right,
                [
                    currency.clone().eq(fx_col("currency")),
                    Expr::Column(Column::new_unqualified(AT_DAY)).eq(fx_col(SERIES_POSITION)),
                ],
            )?
        }
    };
    let (converted, missing) = valued(value, currency, fx_col("rate"), &base_currency)?;
    Ok((frame, converted, missing))
}

/// A value in `currency` at `rate`, in the base currency and rounded to the
/// cent (the base amount whatever the rate; null without a rate), and 1
/// where a value to convert has no rate, else 0.
pub(super) fn valued(value: Expr, currency: Expr, rate: Expr, base: &str) -> Result<(Expr, Expr)> {
    let is_base = currency.eq(lit(base));
    let converted = when(is_base.clone(), money(value.clone()))
        .otherwise(money(value.clone() / rate.clone()))?;
    let missing = when(
        value.is_not_null().and(!is_base).and(rate.is_null()),
        lit(1i64),
    )
    .otherwise(lit(0i64))?;
    Ok((converted, missing))
}

/// A rate row's run of positions in the series at `days`: `[from, to)` are
/// the days with `valid_from <= day < valid_to` (the days before
/// `valid_from` are the ones whose next day is at or before it).
pub(super) fn rate_run(days: &[(String, NaiveDate)]) -> (Expr, Expr) {
    let next_days: Vec<ScalarValue> = days
        .iter()
        .map(|(_, d)| ScalarValue::Date32(Some(days_since_epoch(next_day(*d)))))
        .collect();
    (
        instants::position(col("valid_from"), &next_days),
        instants::position(col("valid_to"), &next_days),
    )
}

/// Money rounded to the cent (half away from zero) in a type wide enough for
/// any sum. A value already in cents is unchanged.
pub(super) fn money(e: Expr) -> Expr {
    cast(
        round(vec![e, lit(i64::from(MONEY_SCALE))]),
        DataType::Decimal128(38, MONEY_SCALE),
    )
}
