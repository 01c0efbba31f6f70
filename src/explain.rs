//! `canon explain`: the plans a metric compiles to, at each stage.

use datafusion::physical_plan::displayable;

use crate::compile::Request;
use crate::error::Result;
use crate::run::Engine;
use crate::spec::MetricKind;

/// The simple metrics a metric is computed from, itself included.
pub fn parts(engine: &Engine, name: &str) -> Result<Vec<String>> {
    let (_, _, metric) = engine.catalog.metric(name)?;
    Ok(match metric.kind {
        MetricKind::Simple | MetricKind::Snapshot | MetricKind::Conversion => {
            vec![metric.name.clone()]
        }
        MetricKind::Ratio => [&metric.numerator, &metric.denominator]
            .into_iter()
            .flatten()
            .cloned()
            .collect(),
        MetricKind::Cohort => {
            let (id, _, _) = engine.catalog.metric(name)?;
            let (spec, _) = crate::compile::cohort::spec(engine, id)?;
            vec![spec.of.clone()]
        }
        MetricKind::Derived => {
            let (id, _, _) = engine.catalog.metric(name)?;
            crate::compile::derived::inputs(engine, id)?
        }
    })
}

/// One text block per compiled part: logical, optimized and physical plan.
pub async fn explain(engine: &Engine, name: &str, request: &Request) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for part in parts(engine, name)? {
        let (id, _, _) = engine.catalog.metric(&part)?;
        let plan = crate::compile::compile_aggregate(engine, id, request).await?;
        let logical = plan.frame.logical_plan().display_indent().to_string();
        let optimized = plan.frame.clone().into_optimized_plan()?;
        let physical = plan.frame.create_physical_plan().await?;
        out.push(format!(
            "== {name}{} ({}) ==\n\n-- logical plan --\n{logical}\n\n-- optimized logical plan --\n{}\n\n-- physical plan --\n{}\n",
            if part == name { String::new() } else { format!(": part `{part}`") },
            request.period.label,
            optimized.display_indent(),
            displayable(physical.as_ref()).indent(true)
        ));
    }
    Ok(out)
}
