//! Executing a cohort metric: its instants, its bridge and its rows.

use super::*;
use crate::run::memory::WithinMemory;
use datafusion::functions_aggregate::expr_fn::{count, min, sum};
use datafusion::logical_expr::{col, lit};
use datafusion::prelude::DataFrame;

/// A cohort's answer: headline value, rows, headline bridge, each row's
/// bridge, and the two instants' outcomes (exclusions, lineage).
pub(super) struct CohortAnswer {
    pub(super) value: Option<Dec>,
    pub(super) rows: Vec<(Key, Option<Dec>)>,
    pub(super) bridge: Vec<BridgeLine>,
    pub(super) row_bridges: BTreeMap<Key, Vec<BridgeLine>>,
    pub(super) parts: Vec<SimpleOutcome>,
}

/// Runs a cohort metric.
pub(super) async fn run_cohort(
    engine: &Engine,
    id: MetricId,
    mut instants: cohort::Instants,
) -> Result<CohortAnswer> {
    let catalog = engine.catalog.clone();
    let metric = &catalog.files.metrics[id.file].spec.metrics[id.index];
    let (spec, _) = cohort::spec(engine, id)?;
    let value_kind = spec.value;
    let started = Instant::now();
    // The instants are executed once and cached (an explicit step of the
    // run, not of planning): the bridge and both instants' tallies read them.
    instants.joint.frame = instants.joint.frame.cache().await?;
    let plan = cohort::bridge(instants)?;
    tracing::info!(target: "canon::query", ms = started.elapsed().as_millis() as u64, "cohort instants cached");
    let (t0, t) = (plan.t0, plan.t);
    let slices = plan.slices.clone();
    let source_plan = plan.source_plan;
    // Each instant is grouped by the cohort key; when the snapshot's member
    // is that key's expression, members are counted from the cached groups
    // instead of executing the instant's plan a second time for its detail.
    let base = &catalog.files.metrics[plan.base.file].spec.metrics[plan.base.index];
    let key_is_member = base
        .slices
        .iter()
        .find(|s| s.name() == spec.key)
        .is_some_and(|s| base.member.as_deref() == Some(s.expr()));
    let member_slice = key_is_member.then_some(spec.key.as_str());
    // The cohort's guards, read with the rest: value at T0 under no member,
    // and slices that split a member (each blocks the result).
    let others: Vec<&String> = slices.iter().filter(|s| **s != spec.key).collect();
    let nobody = held_by_nobody(&plan.cohort_t0, &spec.key)?;
    let split = (!others.is_empty())
        .then(|| split_members(&plan.at_t0, &spec.key))
        .transpose()?;
    // Only the instants' totals and exclusions are reported (the bridge
    // has the per-member values), so their groups are summed over members
    // in the engine instead of read member by member. The exclusions are
    // the cohort's at T0, the instant that defines it (metrics.md): the
    // cohort's members are its keys, so they are counted from the key's
    // groups. T's, over every customer of the snapshot, come second and are
    // labelled as such. The bridge and both readings are small plans over
    // the cached instants: run side by side.
    let (bridge_batches, nobody, split, mut at_t0, mut at_t) = futures::try_join!(
        async { Ok::<_, CanonError>(plan.bridge.collect_within_memory().await?) },
        async { Ok::<_, CanonError>(nobody.collect_within_memory().await?) },
        async {
            match split {
                Some(s) => Ok::<_, CanonError>(s.collect_within_memory().await?),
                None => Ok(Vec::new()),
            }
        },
        read_simple(
            engine,
            plan.base,
            plan.cohort_t0,
            Some(spec.key.as_str()),
            true
        ),
        read_simple(engine, plan.base, plan.at_t, member_slice, true)
    )?;
    tracing::info!(
        target: "canon::query",
        ms = started.elapsed().as_millis() as u64,
        "cohort bridge computed, instants read"
    );
    if let Some(held) = answered(&nobody)
        .map(|b| dec_at(b.column(0).as_ref(), 0))
        .transpose()?
    {
        return Err(keyless_cohort(&catalog, id, plan.base, t0, held));
    }
    if let Some(b) = answered(&split)
        && let Some(members) = b
            .column(0)
            .as_primitive_opt::<Int64Type>()
            .map(|a| a.value(0))
        && members > 0
    {
        let example = b
            .column(1)
            .as_string_opt::<i32>()
            .ok_or_else(|| CanonError::Internal("a cohort key that is not text".into()))?
            .value(0);
        return Err(split_by(metric, &spec.key, &others, t0, example, members));
    }
    at_t0.name = format!("cohort at T0 = {t0} ({} > 0)", spec.of);
    at_t.name = format!("{} at T = {t} (every customer, for reference)", spec.of);
    at_t0.plan = source_plan.clone();
    at_t.plan = source_plan;
    let scale = metric.scale.unwrap_or(RATIO_SCALE);
    let mut rows = Vec::new();
    let mut total = [Dec::ZERO; 8];
    for batch in &bridge_batches {
        for i in 0..batch.num_rows() {
            let key: Vec<Option<String>> = (0..slices.len())
                .map(|c| {
                    let a = batch.column(c).as_string::<i32>();
                    (!a.is_null(i)).then(|| a.value(i).to_string())
                })
                .collect();
            let mut line = [Dec::ZERO; 8];
            for (j, v) in line.iter_mut().enumerate() {
                *v = dec_at(batch.column(slices.len() + j).as_ref(), i)?;
                total[j] = total[j] + *v;
            }
            rows.push(((t.to_string(), key), line));
        }
    }
    // The cohort's T0 tally and the bridge select the same groups (counted,
    // ARR at T0 > 0): its counted value is the starting ARR, or the evidence
    // describes another cohort than the number.
    if !(at_t0.included().contribution(Aggregation::Sum) - total[0]).is_zero() {
        return Err(CanonError::Internal(format!(
            "the cohort's T0 tally ({}) differs from the bridge's starting ARR ({})",
            at_t0.included().contribution(Aggregation::Sum),
            total[0]
        )));
    }
    let value_of = |b: &[Dec; 8]| -> Option<Dec> {
        let [start, _, _, _, ending, retained, members, churned_members] = *b;
        match value_kind {
            crate::spec::CohortValue::NetRetention => ending.div(start, scale),
            crate::spec::CohortValue::GrossRetention => retained.div(start, scale),
            crate::spec::CohortValue::GrossChurn => (start - retained).div(start, scale),
            crate::spec::CohortValue::LogoChurn => churned_members.div(members, scale),
        }
    };
    let lines = |b: &[Dec; 8]| -> Vec<BridgeLine> {
        let [
            start,
            expansion,
            contraction,
            churned,
            ending,
            _,
            members,
            churned_members,
        ] = *b;
        let line = |n: &str, v: Dec| BridgeLine {
            line: n.to_string(),
            value: v,
        };
        vec![
            line("starting", start),
            line("expansion", expansion),
            line("contraction", Dec::ZERO - contraction),
            line("churned", Dec::ZERO - churned),
            line("ending", ending),
            line("cohort_members", members),
            line("churned_members", churned_members),
        ]
    };
    // In key order, as a simple metric's rows are: the engine's groups come
    // in whatever order its partitions finish, and a BI tool diffing two
    // publications must not see rows move.
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out_rows = Vec::new();
    let mut bridges = BTreeMap::new();
    for (key, line) in &rows {
        out_rows.push((key.clone(), value_of(line)));
        bridges.insert(key.clone(), lines(line));
    }
    if slices.is_empty() {
        out_rows.clear();
        bridges.clear();
    }
    let empty = rows.is_empty();
    Ok(CohortAnswer {
        value: if empty { None } else { value_of(&total) },
        rows: out_rows,
        bridge: if empty { Vec::new() } else { lines(&total) },
        row_bridges: bridges,
        parts: vec![at_t0, at_t],
    })
}

/// The value the cohort at T0 counts under a null key (no row when there is
/// none): a plan over the cached instants.
fn held_by_nobody(cohort_t0: &simple::SimplePlan, key: &str) -> Result<DataFrame> {
    Ok(cohort_t0
        .frame
        .clone()
        .filter(col("_exclusion").is_null().and(col(key).is_null()))?
        .aggregate(vec![], vec![sum(col("_sum")).alias("_sum")])?)
}

/// How many members have more than one counted group at T0, and the first
/// of them: a bridge by slices compares each (member, slice values) group
/// at T0 with the member's whole value at T, right only when the slices
/// name one value per member (a customer's country, not a charge's
/// product, which would start a member once per value against its whole
/// value at T).
fn split_members(at_t0: &simple::SimplePlan, key: &str) -> Result<DataFrame> {
    Ok(at_t0
        .frame
        .clone()
        .filter(col("_exclusion").is_null())?
        .aggregate(vec![col(key)], vec![count(lit(1i64)).alias("_groups")])?
        .filter(col("_groups").gt(lit(1i64)))?
        .aggregate(
            vec![],
            vec![
                count(lit(1i64)).alias("_members"),
                min(col(key)).alias("_example"),
            ],
        )?)
}

/// The batch of a one-row answer whose first cell is not null (an
/// aggregate over no rows gives null).
fn answered(batches: &[RecordBatch]) -> Option<&RecordBatch> {
    batches
        .iter()
        .find(|b| b.num_rows() > 0 && !b.column(0).is_null(0))
}

/// A cohort asked by slices that split `members` of its members at T0
/// (`example` the first): refused, it has no right answer.
fn split_by(
    metric: &MetricSpec,
    key: &str,
    others: &[&String],
    t0: chrono::NaiveDate,
    example: &str,
    members: i64,
) -> CanonError {
    let by = others
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let more = match members {
        1 => String::new(),
        n => format!(" and {} more", n - 1),
    };
    CanonError::request(format!(
        "`{}` cannot be taken by {by}: at T0 ({t0}) {key} `{example}`{more} counts value under more than one value of {by}, and a cohort's bridge compares each {key}'s value at T0 with its whole value at T; slice it by what has one value per {key}",
        metric.name,
    ))
}

/// A cohort whose T0 counts value under no member (the snapshot's key slice
/// is null on counted rows): that member is never matched at T, so it would
/// be churned in every bridge, silently (arr v2's charges of billing
/// accounts billing does not have made nrr 0.666667 for 1.000000). Blocked
/// until the snapshot's definition excludes such rows or names them.
fn keyless_cohort(
    catalog: &Catalog,
    id: MetricId,
    base: MetricId,
    t0: chrono::NaiveDate,
    held: Dec,
) -> CanonError {
    let metric = &catalog.files.metrics[id.file].spec.metrics[id.index];
    let snapshot = &catalog.files.metrics[base.file].spec.metrics[base.index];
    let key = metric.cohort.as_ref().map_or("", |c| c.key.as_str());
    let (at, expr): (_, String) = snapshot
        .slices
        .iter()
        .position(|s| s.name() == key)
        .map(|i| {
            (
                catalog.metric_at(base, &crate::yaml_path!["slices", i]),
                snapshot.slices[i].expr().to_string(),
            )
        })
        .unwrap_or_else(|| (catalog.metric_at(base, &[]), String::new()));
    CanonError::Blocked(format!(
        "`{}` is blocked: at T0 ({t0}) `{}` counts {held} under no `{key}` (`{expr}` is null on those rows) and no exclusion of `{}` removes them; a member that is nobody can never be matched at T, so it would count as churned.\n  {at}: {}",
        metric.name,
        snapshot.name,
        snapshot.name,
        super::simple_run::exclude_hint(catalog, base, &format!("`{}`", snapshot.name), &expr),
    ))
}

/// A decimal or integer cell as a [`Dec`]; null is zero.
pub(super) fn dec_at(a: &dyn Array, i: usize) -> Result<Dec> {
    match Dec::from_cell(a, i) {
        Some(d) => Ok(d),
        None if a.is_null(i) => Ok(Dec::ZERO),
        None => Err(CanonError::Internal(format!(
            "bridge column of type {}",
            a.data_type()
        ))),
    }
}
