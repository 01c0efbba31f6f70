//! Executing a ratio: its numerator and denominator as simple metrics, then
//! their quotient overall and per group (a group the numerator lacks is 0
//! over the denominator's value).

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
    let d = run_part(engine, d, request).await?;
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
