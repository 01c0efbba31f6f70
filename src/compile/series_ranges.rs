//! A snapshot series' groups from each row's run of instants, without
//! pairing the row with every instant it holds at.
//!
//! A series gives each row the run of instants it holds at, as positions
//! `[lo, hi)` ([`super::instants`]). The pairing plan unnests that run, then
//! converts and aggregates one (row, instant) pair at a time: 9.1 M pairs
//! for open_pipeline at each day of a quarter at scale 200, from 0.55 M
//! rows. Yet within a row's run its value changes only where its currency's
//! rate does, so:
//!
//! 1. each row is cut at its currency's rate tiles (the runs of positions
//!    one rate row is in force over, and the runs between them with no
//!    rate; an equi-join on the currency with the overlap as the join's
//!    filter) into pieces, each converted and rounded once: exactly the value
//!    each of its pairs had, so rounding stays per row per instant (summing
//!    amounts per currency before converting is off by cents);
//! 2. the pieces are summed per (run, slices, exclusion): at most
//!    n(n+1)/2 runs per group, however many rows;
//! 3. only those sums are expanded over their instants, and summed again per
//!    (instant, slices, exclusion).
//!
//! The groups are the pairing plan's, column for column and type for type:
//! each piece counts its row once per instant of its run (`_rows`), its
//! value where it has one (`_sum`, null where no value is counted, and
//! `_count`), and a missing rate where its tile has none. Rates that overlap
//! (blocked by the `intervals` gate unless allowed) count a row once per
//! rate on the days they share, as the pairing plan did.
//!
//! The pairing plan stays where this one saves nothing or cannot go: a
//! series of one or two instants (a cohort's T0 and T) or of instants more
//! than a week apart on average (month ends: with monthly rates each instant
//! has its own rate; see `SeriesPlan::Auto`), the distinct members counted
//! at the last instant (`SimplePlan::members`), rates whose validity is held
//! as timestamps (joined by each instant's own day), and `detail`, the
//! per-row drill-down. Only built-in operators and the registered
//! `series_position` and `series_span` are used, so the plan is serialized
//! to a cluster like any other.

use chrono::NaiveDate;
use datafusion::common::{Column, ScalarValue};
use datafusion::functions_aggregate::expr_fn::sum;
use datafusion::logical_expr::{Expr, ExprSchemable, JoinType, cast, col, lit, when};
use datafusion::prelude::DataFrame;

use super::instants;
use super::planner::Planner;
use super::snapshot::{SERIES, SERIES_POSITION, labelled_by_position, series_table};
use crate::error::{Location, Result};

/// How the rows' values are converted to the base currency.
pub(super) enum Conversion {
    /// No currency: the value as it is.
    None,
    /// At a rate that depends on the row alone (`--rates-as-of`, a date
    /// field of the row): converted once per row, by [`super::currency`]'s
    /// conversion.
    PerRow { currency: Expr, day: Expr },
    /// At the rate in force on each instant's day (`rate_date: as_of`, with
    /// the rates' validity held as dates).
    PerInstant {
        currency: Expr,
        fx: DataFrame,
        base: String,
    },
}

/// Internal columns of the pieces.
const A: &str = "_piece_from";
const B: &str = "_piece_to";
const V: &str = "_piece_value";
const R: &str = "_piece_rows";
const C: &str = "_piece_count";
const M: &str = "_piece_missing";
const RAW: &str = "_row_value";
const CUR: &str = "_row_currency";
const K: &str = "_piece_at";

/// The series' groups: `_period`, each slice (named as `slices` names it,
/// valued by its expression over the rows), `_exclusion`, `_rows`, `_sum`,
/// `_count`, `_missing_rate`, as the pairing plan's aggregate gives them.
///
/// `rows` is the metric's rows (filtered), `lo`/`hi` their runs, `value` the
/// measured value (unconverted), `exclusion` the exclusion each row falls
/// under (null: counted).
#[allow(clippy::too_many_arguments)]
pub(super) async fn series_groups(
    engine: &Planner,
    rows: DataFrame,
    (lo, hi): (Expr, Expr),
    value: Expr,
    conversion: Conversion,
    exclusion: Expr,
    slices: &[(String, Expr)],
    days: &[(String, NaiveDate)],
    location: &Location,
) -> Result<DataFrame> {
    let c = |n: &str| Expr::Column(Column::new_unqualified(n));
    let group_names: Vec<String> = (0..slices.len())
        .map(|i| format!("_piece_slice{i}"))
        .chain(std::iter::once("_piece_exclusion".to_string()))
        .collect();
    let group_cols = || group_names.iter().map(|n| c(n)).collect::<Vec<_>>();
    // One row per metric row holding at some instant: its run, its groups,
    // its value and currency (worked out only for those rows, as the pairing
    // plan does after pairing: a value that cannot be computed on a row
    // holding at no instant is no error in either plan).
    let rows = rows.filter(lo.clone().lt(hi.clone()))?;
    let mut select = vec![run_end(lo).alias(A), run_end(hi).alias(B)];
    for ((_, e), n) in slices.iter().zip(&group_names) {
        select.push(e.clone().alias(n));
    }
    select.push(exclusion.alias(group_names.last().expect("the exclusion")));
    let pieces = match conversion {
        Conversion::None => {
            select.push(value.alias(V));
            let rows = rows.select(select)?;
            with_counts(rows, &group_names, lit(1i64), lit(0i64))?
        }
        Conversion::PerRow { currency, day } => {
            // The pairing plan's conversion, once per row.
            let (joined, converted, missing) = super::currency::convert(
                engine,
                rows,
                value,
                currency,
                super::currency::RateDate::Day(day),
                location,
            )
            .await?;
            select.push(converted.alias(V));
            select.push(missing.alias(M));
            with_counts(joined.select(select)?, &group_names, lit(1i64), c(M))?
        }
        Conversion::PerInstant { currency, fx, base } => {
            select.push(value.alias(RAW));
            select.push(currency.alias(CUR));
            let rows = rows.select(select)?;
            per_instant(rows, fx, &base, days, &group_names)?
        }
    };
    // `_sum` typed as the pairing plan's one sum types it, not as a sum of
    // sums (DataFusion widens a Decimal128(p, s) sum to p + 10 digits).
    let sum_type = sum(c(V)).get_type(pieces.schema())?;
    // Summed per (run, groups), then each run's sums at each of its instants.
    let mut keys = vec![c(A), c(B)];
    keys.extend(group_cols());
    let runs = pieces.aggregate(
        keys,
        vec![
            sum(c(R)).alias(R),
            sum(c(V)).alias(V),
            sum(c(C)).alias(C),
            sum(c(M)).alias(M),
        ],
    )?;
    let w = |n: &str| Expr::Column(Column::new(Some(SERIES), n));
    let at = engine
        .planning
        .read_batch(series_table(days)?)?
        .alias(SERIES)?
        .join_on(
            runs.with_column(K, instants::span(c(A), c(B)))?
                .unnest_columns(&[K])?,
            JoinType::Inner,
            [w(SERIES_POSITION).eq(c(K))],
        )?;
    let mut group = vec![w(SERIES_POSITION).alias("_period")];
    for ((name, _), n) in slices.iter().zip(&group_names) {
        group.push(c(n).alias(name));
    }
    group.push(c(group_names.last().expect("the exclusion")).alias("_exclusion"));
    let mut out: Vec<Expr> = std::iter::once("_period")
        .chain(slices.iter().map(|(name, _)| name.as_str()))
        .chain(["_exclusion", "_rows"])
        .map(c)
        .collect();
    out.push(cast(c("_sum"), sum_type).alias("_sum"));
    out.extend(["_count", "_missing_rate"].map(c));
    let groups = at
        .aggregate(
            group,
            vec![
                sum(c(R)).alias("_rows"),
                sum(c(V)).alias("_sum"),
                sum(c(C)).alias("_count"),
                sum(c(M)).alias("_missing_rate"),
            ],
        )?
        .select(out)?;
    labelled_by_position(engine, groups, days)
}

/// A run's end typed as nullable, in the logical plan as in the physical
/// one: a CASE without ELSE (positions are never negative, so it is the
/// value itself). DataFusion 55 infers that `CASE WHEN b < a THEN b ELSE a`
/// is never null in the logical plan but not in the physical one, and then
/// refuses the plan ("Physical input schema should be the same as the one
/// converted from logical input schema").
fn run_end(e: Expr) -> Expr {
    when(e.clone().gt_eq(lit(0i64)), e).end().expect("a CASE")
}

/// 1 where `e` is not null, else 0: `count(e)` as a sum.
fn counted(e: Expr) -> Expr {
    when(e.is_not_null(), lit(1i64))
        .otherwise(lit(0i64))
        .expect("a CASE with an ELSE")
}

/// `rows` (run, groups, `V`) with each row's counts: `R` (rows), `C` (the
/// value counted), `M` (missing).
fn with_counts(rows: DataFrame, group_names: &[String], r: Expr, m: Expr) -> Result<DataFrame> {
    let c = |n: &str| Expr::Column(Column::new_unqualified(n));
    let mut out = vec![c(A), c(B)];
    out.extend(group_names.iter().map(|n| c(n)));
    out.push(c(V));
    out.push(r.alias(R));
    out.push(counted(c(V)).alias(C));
    out.push(m.alias(M));
    Ok(rows.select(out)?)
}

/// The pieces of rows converted at each instant's rate, in one pass over
/// the rows (each branch of a plan runs its whole input again: split into
/// rows to convert and the rest, the history was aggregated twice and a
/// daily quarter took twice as long).
///
/// Each currency's rate rows inside the series are completed into tiles
/// that cover every position: a rate's run, and the runs between them (and
/// before the first, after the last) with no rate. A row with a currency is
/// cut at its currency's tiles, one piece per tile it overlaps: at each
/// instant it then has one piece per rate in force, or one without a rate,
/// exactly the pairs the pairing plan's right join made (base-currency rows
/// included, should the rates hold the base currency too). A row with no
/// currency, or in a currency with no rate in the series, matches no tile
/// and is one piece. Each piece is valued and flagged as a pair is.
fn per_instant(
    rows: DataFrame,
    fx: DataFrame,
    base: &str,
    days: &[(String, NaiveDate)],
    group_names: &[String],
) -> Result<DataFrame> {
    use datafusion::functions_aggregate::min_max::max_udaf;
    use datafusion::logical_expr::expr::WindowFunction;
    use datafusion::logical_expr::{
        ExprFunctionExt, WindowFrame, WindowFrameBound, WindowFrameUnits, WindowFunctionDefinition,
    };
    let c = |n: &str| Expr::Column(Column::new_unqualified(n));
    let n = days.len() as i64;
    let (rlo, rhi, rate, fx_cur) = ("_rate_from", "_rate_to", "_rate", "_rate_currency");
    let (before, through) = ("_rate_covered_before", "_rate_covered_through");
    // The end of the positions the currency's runs cover up to (before or
    // through) each run, in order of their starts: a running max, so that
    // overlapping rates (which the `intervals` gate blocks) leave no false gap.
    let covered = |last: Option<u64>| -> Result<Expr> {
        Ok(Expr::from(WindowFunction::new(
            WindowFunctionDefinition::AggregateUDF(max_udaf()),
            vec![c(rhi)],
        ))
        .partition_by(vec![c(fx_cur)])
        .order_by(vec![c(rlo).sort(true, false), c(rhi).sort(true, false)])
        .window_frame(WindowFrame::new_bounds(
            WindowFrameUnits::Rows,
            WindowFrameBound::Preceding(ScalarValue::UInt64(None)),
            match last {
                Some(n) => WindowFrameBound::Preceding(ScalarValue::UInt64(Some(n))),
                None => WindowFrameBound::CurrentRow,
            },
        ))
        .build()?)
    };
    let total = |e: Expr| -> Result<Expr> {
        Ok(Expr::from(WindowFunction::new(
            WindowFunctionDefinition::AggregateUDF(max_udaf()),
            vec![e],
        ))
        .partition_by(vec![c(fx_cur)])
        .build()?)
    };
    // Each rate row's run of positions, as the pairing plan joined them,
    // only those inside the series.
    let (from, to) = super::currency::rate_run(days);
    let runs = fx
        .select(vec![
            col("currency").alias(fx_cur),
            col("rate").alias(rate),
            from.alias(rlo),
            to.alias(rhi),
        ])?
        .filter(c(rlo).lt(c(rhi)))?
        .window(vec![
            covered(Some(1))?.alias(before),
            covered(None)?.alias(through),
        ])?
        // One window node per ordering (DataFusion plans one sort per node).
        .window(vec![total(c(rhi))?.alias("_rate_covered")])?;
    let rate_type = runs
        .schema()
        .field_with_unqualified_name(rate)?
        .data_type()
        .clone();
    let no_rate = || cast(lit(ScalarValue::Null), rate_type.clone());
    let tile = |from: Expr, to: Expr, r: Expr| {
        vec![
            c(fx_cur),
            r.alias(rate),
            run_end(from).alias(rlo),
            run_end(to).alias(rhi),
        ]
    };
    let tiles = runs
        .clone()
        .select(tile(c(rlo), c(rhi), c(rate)))?
        .union(
            runs.clone()
                .select(tile(
                    datafusion::functions::expr_fn::coalesce(vec![c(before), lit(0i64)]),
                    c(rlo),
                    no_rate(),
                ))?
                .filter(c(rlo).lt(c(rhi)))?,
        )?
        .union(
            // After the run that covers the furthest (one tile, from the
            // first such run in order).
            runs.filter(
                c(through).eq(c("_rate_covered")).and(
                    datafusion::functions::expr_fn::coalesce(vec![c(before), lit(-1i64)])
                        .lt(c("_rate_covered")),
                ),
            )?
            .select(tile(c(rhi), lit(n), no_rate()))?
            .filter(c(rlo).lt(c(rhi)))?,
        )?;
    let joined = rows.join_on(
        tiles,
        JoinType::Left,
        [c(CUR).eq(c(fx_cur)), c(rlo).lt(c(B)), c(A).lt(c(rhi))],
    )?;
    // Valued and flagged as the pairing plan values and flags each pair
    // (null without a rate: no currency, no tile, a gap).
    let (value, missing) = super::currency::valued(c(RAW), c(CUR), c(rate), base)?;
    // A row with no tile keeps its own run (the comparisons with a null
    // tile are not true).
    let mut out = vec![
        run_end(instants::later(c(A), c(rlo))?).alias(A),
        run_end(instants::earlier(c(B), c(rhi))?).alias(B),
    ];
    out.extend(group_names.iter().map(|n| c(n)));
    out.push(value.clone().alias(V));
    out.push(lit(1i64).alias(R));
    out.push(counted(value).alias(C));
    out.push(missing.alias(M));
    Ok(joined.select(out)?)
}
