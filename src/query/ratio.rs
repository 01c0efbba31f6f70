//! Executing a ratio: its numerator and denominator as simple metrics, then
//! their quotient overall and per group (a group the numerator lacks is 0
//! over the denominator's value).

use super::simple_run::Acc;
use super::*;

/// The value, rows and parts (numerator, denominator) of ratio `metric`.
pub(super) async fn compute(
    engine: &Engine,
    metric: &MetricSpec,
    request: &Resolved,
    parts: Vec<Part>,
) -> Result<(Option<Dec>, Vec<(Key, Option<Dec>)>, Vec<SimpleOutcome>)> {
    // Planned as [numerator, denominator] (compile::parts).
    let [n, d]: [Part; 2] = parts
        .try_into()
        .map_err(|_| CanonError::Internal("a ratio without both parts".into()))?;
    let n = run_part(engine, n, request).await?;
    let d = if crate::compile::conversion::counts_members_of(&engine.catalog, n.id, d.id) {
        members_of(&n, d)
    } else {
        run_part(engine, d, request).await?
    };
    let scale = metric.scale.unwrap_or(RATIO_SCALE);
    let ratio = |a: Option<Dec>, b: Option<Dec>| match (a, b) {
        (Some(a), Some(b)) => a.div(b, scale),
        _ => None,
    };
    let value = ratio(n.headline(), d.headline());
    let numerators: BTreeMap<Key, Option<Dec>> = n.rows().into_iter().collect();
    let rows = d
        .rows()
        .into_iter()
        .map(|(k, dv)| {
            let nv = numerators.get(&k).copied().flatten().or(Some(Dec::ZERO));
            let v = ratio(nv, dv);
            (k, v)
        })
        .collect();
    Ok((value, rows, vec![n, d]))
}

/// The denominator of a ratio of two conversions counted from the
/// numerator's members (`compile::conversion::counts_members_of`): each of
/// the numerator's rows is one member with its exclusion, and the
/// denominator counts every one of them (Σ 1 = rows), so its groups, tallies
/// and member counts are the numerator's rows. Its plan is the numerator's,
/// the one that ran; it reads the same columns of the same tables.
fn members_of(numerator: &SimpleOutcome, denominator: Part) -> SimpleOutcome {
    let every = |a: Acc| Acc {
        rows: a.rows,
        sum: Dec::from_int(a.rows),
        count: a.rows,
    };
    let excluded = denominator
        .plan
        .exclusions
        .iter()
        .map(|(name, reason)| {
            let removed = numerator
                .excluded
                .iter()
                .find(|(n, _, _)| n == name)
                .map_or(Acc::ZERO, |(_, _, acc)| every(*acc));
            (name.clone(), reason.clone(), removed)
        })
        .collect();
    SimpleOutcome {
        id: denominator.id,
        name: denominator.name,
        agg: denominator.plan.agg,
        scale: 0,
        slices: numerator.slices.clone(),
        buckets: numerator.buckets.clone(),
        periods: numerator.periods.clone(),
        groups: numerator
            .groups
            .iter()
            .map(|(k, a)| (k.clone(), every(*a)))
            .collect(),
        excluded,
        plan: numerator.plan.clone(),
        zero: Acc::ZERO,
        members: numerator.members.clone(),
        point_in_time: numerator.point_in_time,
    }
}
