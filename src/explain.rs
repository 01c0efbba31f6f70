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

/// One text block per compiled part: logical, optimized and physical plan;
/// with `analyze`, the plan is also run and shown with each operator's
/// metrics (output rows, elapsed compute, spills).
pub async fn explain(
    engine: &Engine,
    name: &str,
    request: &Request,
    analyze: bool,
) -> Result<Vec<String>> {
    let (id, _, metric) = engine.catalog.metric(name)?;
    if metric.kind == MetricKind::Cohort {
        // Nothing is executed: the instants are planned uncached.
        let plan = crate::compile::cohort::compile(engine, id, request, false).await?;
        let (t0, t) = (plan.t0, plan.t);
        return Ok(vec![
            block(
                &format!("{name}: snapshot at T0 = {t0} and T = {t}"),
                plan.instants,
                analyze,
            )
            .await?,
            block(&format!("{name}: bridge per member"), plan.bridge, analyze).await?,
        ]);
    }
    let mut out = Vec::new();
    for part in parts(engine, name)? {
        let (id, _, _) = engine.catalog.metric(&part)?;
        let plan = crate::compile::compile_aggregate(engine, id, request).await?;
        let title = if part == name {
            format!("{name} ({})", request.period.label)
        } else {
            format!("{name}: part `{part}` ({})", request.period.label)
        };
        out.push(block(&title, plan.frame, analyze).await?);
    }
    Ok(out)
}

async fn block(
    title: &str,
    frame: datafusion::prelude::DataFrame,
    analyze: bool,
) -> Result<String> {
    let logical = frame.logical_plan().display_indent().to_string();
    let optimized = frame.clone().into_optimized_plan()?;
    let task = std::sync::Arc::new(frame.task_ctx());
    let physical = frame.create_physical_plan().await?;
    let mut text = format!(
        "== {title} ==\n\n-- logical plan --\n{logical}\n\n-- optimized logical plan --\n{}\n\n-- physical plan --\n{}\n",
        optimized.display_indent(),
        displayable(physical.as_ref()).indent(true)
    );
    if analyze {
        let started = std::time::Instant::now();
        datafusion::physical_plan::collect(physical.clone(), task).await?;
        text.push_str(&format!(
            "\n-- physical plan, run ({} ms) --\n{}\n",
            started.elapsed().as_millis(),
            datafusion::physical_plan::display::DisplayableExecutionPlan::with_metrics(
                physical.as_ref()
            )
            .indent(true)
        ));
    }
    Ok(text)
}
