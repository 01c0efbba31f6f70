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
    for (title, frame) in crate::compile::plans(engine, name, request).await? {
        out.push(block(&title, engine.bound(frame), analyze).await?);
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
