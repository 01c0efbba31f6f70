//! `canon explain`: the plans a metric compiles to, at each stage.

use datafusion::physical_plan::displayable;

use crate::error::Result;
use crate::request::Resolved;
use crate::run::Engine;

/// One text block per compiled part: logical, optimized and physical plan;
/// with `analyze`, the plan is also run and shown with each operator's
/// metrics (output rows, elapsed compute, spills).
pub async fn explain(
    engine: &Engine,
    name: &str,
    request: &Resolved,
    analyze: bool,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let shared = counted_from_numerator(engine, name)?;
    for (title, frame) in crate::compile::plans(engine, name, request).await? {
        let title = match &shared {
            Some((denominator, numerator)) if title.contains(&format!("part `{denominator}`")) => {
                format!(
                    "{title}: not run — counted from the members of `{numerator}`'s plan \
                     (compile::conversion::counts_members_of)"
                )
            }
            _ => title,
        };
        out.push(block(&title, engine.bound(frame), analyze).await?);
    }
    Ok(out)
}

/// For a ratio whose denominator is counted from its numerator's members
/// (`query::ratio`), (denominator, numerator): its own plan is shown but
/// does not run.
fn counted_from_numerator(engine: &Engine, name: &str) -> Result<Option<(String, String)>> {
    let catalog = &engine.catalog;
    let (_, _, metric) = catalog.metric(name)?;
    let (Some(n), Some(d)) = (&metric.numerator, &metric.denominator) else {
        return Ok(None);
    };
    let (Ok((n_id, _, _)), Ok((d_id, _, _))) = (catalog.metric(n), catalog.metric(d)) else {
        return Ok(None);
    };
    Ok(
        crate::compile::conversion::counts_members_of(catalog, n_id, d_id)
            .then(|| (d.clone(), n.clone())),
    )
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
