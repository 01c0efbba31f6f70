//! `cohort` metrics: the same members (customers) valued at T0 and at T,
//! both at T's rates (constant currency), with the retention bridge.
//!
//! The snapshot metric named by `cohort.of` is compiled at both instants as
//! one plan grouped by instant and member (its sources are scanned once);
//! the result is cached in memory and a DataFusion plan joins the two
//! instants per member and sums the bridge: start + expansion − contraction
//! − churned = ending.

use chrono::NaiveDate;
use datafusion::common::{Column, ScalarValue};
use datafusion::functions_aggregate::expr_fn::{count, sum};
use datafusion::logical_expr::{Expr, JoinType, col, lit, when};
use datafusion::prelude::DataFrame;

use super::plan::FramePlan;
use super::simple::{self, SimplePlan};
use crate::catalog::MetricId;
use crate::compile::planner::Planner;
use crate::error::{CanonError, Result};
use crate::request::{Request, Resolved};
use crate::spec::{CohortSpec, MetricKind};
use crate::yaml_path;

/// A compiled cohort: the two instants' snapshot plans (cached) and the
/// bridge plan over them.
pub struct CohortPlan {
    pub base: MetricId,
    pub t0: NaiveDate,
    pub t: NaiveDate,
    /// Both instants, one `_period` group each (cached when running).
    pub instants: DataFrame,
    pub at_t0: SimplePlan,
    pub at_t: SimplePlan,
    /// The cohort at T0, the instant that defines it, as its exclusions and
    /// tallies are reported (metrics.md): T0's excluded groups, and of the
    /// counted groups only the cohort's (members with ARR at T0 > 0, the
    /// same condition as the bridge's `start`). A counted customer at 0 or
    /// below is outside the cohort, as it is outside the bridge, so the
    /// tally's counted value and members are the bridge's starting ARR and
    /// cohort members, and included + Σ excluded = its universe still holds.
    pub cohort_t0: SimplePlan,
    /// The instants' optimized plan before caching, for lineage.
    pub source_plan: datafusion::logical_expr::LogicalPlan,
    /// Columns: one per requested slice, then `start`, `expansion`,
    /// `contraction`, `churned`, `ending`, `retained`, `members`,
    /// `churned_members`.
    pub bridge: DataFrame,
    pub slices: Vec<String>,
}

/// The bridge columns, in order.
pub const BRIDGE: [&str; 8] = [
    "start",
    "expansion",
    "contraction",
    "churned",
    "ending",
    "retained",
    "members",
    "churned_members",
];

pub fn spec(engine: &Planner, id: MetricId) -> Result<(&CohortSpec, MetricId)> {
    let catalog = &engine.catalog;
    let metric = &catalog.files.metrics[id.file].spec.metrics[id.index];
    let at = |p: &[crate::spec::locate::Step]| catalog.metric_at(id, p);
    let spec = metric
        .cohort
        .as_ref()
        .ok_or_else(|| CanonError::definition(at(&[]), "a cohort metric needs `cohort`"))?;
    let (base, _, base_spec) = catalog.metric(&spec.of).map_err(|_| {
        CanonError::definition(
            at(&yaml_path!["cohort", "of"]),
            format!("`{}` is not a metric", spec.of),
        )
    })?;
    if base_spec.kind != MetricKind::Snapshot {
        return Err(CanonError::definition(
            at(&yaml_path!["cohort", "of"]),
            format!(
                "`{}` is a {} metric; a cohort is valued with a snapshot metric",
                spec.of,
                base_spec.kind.name()
            ),
        ));
    }
    if !base_spec.slices.iter().any(|s| s.name() == spec.key) {
        return Err(CanonError::definition(
            at(&yaml_path!["cohort", "key"]),
            format!("`{}` is not a slice of `{}`", spec.key, spec.of),
        ));
    }
    Ok((spec, base))
}

/// A cohort's two instants as one plan, before the bridge is built over it.
#[derive(Clone)]
pub struct Instants {
    pub base: MetricId,
    pub t0: NaiveDate,
    pub t: NaiveDate,
    /// Both instants, one `_period` group each, grouped by the cohort key
    /// and the requested slices, at T's rates. Running, the run stage
    /// executes it once and caches it (the bridge and both instants'
    /// tallies read it) before building the bridge over it; planning never
    /// executes it.
    pub joint: SimplePlan,
    /// The instants' optimized plan, for lineage (a cached frame's plan
    /// names no source).
    pub source_plan: datafusion::logical_expr::LogicalPlan,
    key: String,
    /// The key, then the requested slices other than the key.
    by: Vec<String>,
    /// The requested slices (the bridge's groups).
    slices: Vec<String>,
}

impl Instants {
    /// The same instants with their frames passed through `bind`.
    pub fn bound(self, bind: &dyn Fn(DataFrame) -> DataFrame) -> Instants {
        Instants {
            joint: self.joint.bound(bind),
            ..self
        }
    }
}

/// A cohort (`kind: cohort`).
pub struct Cohort;

#[async_trait::async_trait(?Send)]
impl super::kind::Kind for Cohort {
    /// The snapshot it values its members with.
    fn parts(&self, planner: &Planner, id: MetricId) -> Result<Vec<String>> {
        Ok(vec![spec(planner, id)?.0.of.clone()])
    }

    fn check(&self, planner: &Planner, id: MetricId) -> Result<()> {
        spec(planner, id).map(|_| ())
    }

    async fn plan(
        &self,
        planner: &Planner,
        id: MetricId,
        request: &Resolved,
    ) -> Result<super::MetricPlan> {
        Ok(super::MetricPlan::Cohort(Box::new(
            instants(planner, id, request).await?,
        )))
    }

    /// T0 and T.
    fn instants(&self, request: &Resolved) -> Vec<NaiveDate> {
        vec![request.t0, request.t]
    }
}

/// Compiles a cohort metric: its instants and the bridge over them, nothing
/// executed.
pub async fn compile(engine: &Planner, id: MetricId, request: &Resolved) -> Result<CohortPlan> {
    bridge(instants(engine, id, request).await?)
}

/// Plans a cohort's instants, T0 and T, as one scan of the sources (see
/// simple::Window::Series).
pub async fn instants(engine: &Planner, id: MetricId, request: &Resolved) -> Result<Instants> {
    let (spec, base) = spec(engine, id)?;
    let (t0, t) = (request.t0, request.t);
    if request.grain.is_some() {
        return Err(CanonError::request(
            "a cohort metric is taken at one day: use --as-of D (T0 is twelve months earlier)",
        ));
    }
    let mut by = vec![spec.key.clone()];
    by.extend(request.by.iter().filter(|b| **b != spec.key).cloned());
    let both = request.narrowed(Request {
        period: Request::day(t),
        as_of: Some(t),
        rates_as_of: Some(t),
        grain: None,
        by: by.clone(),
    });
    let days = vec![(t0.to_string(), t0), (t.to_string(), t)];
    let joint = simple::compile_days(engine, base, &both, days).await?;
    let source_plan = joint.frame.clone().into_optimized_plan()?;
    Ok(Instants {
        base,
        t0,
        t,
        joint,
        source_plan,
        key: spec.key.clone(),
        by,
        slices: request.by.clone(),
    })
}

/// The bridge per member over a cohort's instants (cached or not), and
/// each instant's plan.
pub fn bridge(instants: Instants) -> Result<CohortPlan> {
    let Instants {
        base,
        t0,
        t,
        joint,
        source_plan,
        key,
        by,
        slices,
    } = instants;
    let at_t0 = instant(&joint, t0)?;
    let at_t = instant(&joint, t)?;
    let cohort_t0 = SimplePlan {
        // A member whose value has no rate (`_missing_rate`) has no sum: kept,
        // so reading the cohort refuses it. Filtered as `_sum > 0` it left
        // the cohort without a word (nrr 1.127985 for 0.943740's cohort
        // with a churned member's currency unrated at T).
        frame: at_t0.frame.clone().filter(
            col("_exclusion")
                .is_not_null()
                .or(col("_sum").gt(lit(0i64)))
                .or(col("_missing_rate").gt(lit(0i64))),
        )?,
        slices: at_t0.slices.clone(),
        agg: at_t0.agg,
        exclusions: at_t0.exclusions.clone(),
        buckets: at_t0.buckets.clone(),
        detail: at_t0.detail.clone(),
        members: at_t0.members,
        rates_on: at_t0.rates_on,
    };

    let key = key.as_str();
    // The bridge is grouped by the requested slices; the member key itself
    // may be one of them (a bridge per customer).
    let included =
        |f: &DataFrame| -> Result<DataFrame> { Ok(f.clone().filter(col("_exclusion").is_null())?) };
    let mut start_cols = vec![col(key).alias("_member")];
    start_cols.extend(by[1..].iter().map(|s| col(s.as_str())));
    start_cols.push(col("_sum").alias("a"));
    let start = included(&at_t0.frame)?
        .project(start_cols)?
        .filter(col("a").gt(lit(0i64)))?;
    let end = included(&at_t.frame)?.group(
        vec![col(key).alias("_member_t")],
        vec![sum(col("_sum")).alias("b_sum")],
    )?;
    let joined = start.join_on(
        end,
        JoinType::Left,
        [Expr::Column(Column::from_name("_member")).eq(col("_member_t"))],
    )?;
    let zero = || lit(ScalarValue::Decimal128(Some(0), 38, simple::MONEY_SCALE));
    let a = || col("a");
    let b = || datafusion::functions::expr_fn::coalesce(vec![col("b_sum"), zero()]);
    let churned = || b().lt_eq(zero());
    let group = slices
        .iter()
        .map(|s| {
            if s == key {
                col("_member").alias(key)
            } else {
                col(s.as_str())
            }
        })
        .collect();
    let bridge = joined.group(
        group,
        vec![
            sum(a()).alias("start"),
            sum(when(b().gt(a()), b() - a()).otherwise(zero())?).alias("expansion"),
            sum(when(b().lt(a()).and(!churned()), a() - b()).otherwise(zero())?)
                .alias("contraction"),
            sum(when(churned(), a()).otherwise(zero())?).alias("churned"),
            sum(b()).alias("ending"),
            sum(when(b().lt(a()), b()).otherwise(a())?).alias("retained"),
            count(lit(1i64)).alias("members"),
            sum(when(churned(), lit(1i64)).otherwise(lit(0i64))?).alias("churned_members"),
        ],
    )?;
    Ok(CohortPlan {
        base,
        t0,
        t,
        instants: joint.frame,
        at_t0,
        at_t,
        cohort_t0,
        source_plan,
        bridge,
        slices,
    })
}

/// One instant of a plan compiled at several days: its `_period` group, its
/// detail rows and its bucket.
fn instant(joint: &SimplePlan, day: NaiveDate) -> Result<SimplePlan> {
    let label = day.to_string();
    Ok(SimplePlan {
        frame: joint
            .frame
            .clone()
            .filter(col("_period").eq(lit(label.clone())))?,
        slices: joint.slices.clone(),
        agg: joint.agg,
        exclusions: joint.exclusions.clone(),
        buckets: joint
            .buckets
            .iter()
            .filter(|b| b.label == label)
            .cloned()
            .collect(),
        detail: super::snapshot::detail_at(joint.detail.clone(), day)?,
        members: joint.members,
        rates_on: joint.rates_on,
    })
}
