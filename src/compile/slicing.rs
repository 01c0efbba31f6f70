//! Which slices a request may ask of a metric, checked before anything is
//! planned: `--by` names slices the metric approves, each once.
//!
//! The compiler checks each part's slices as it plans it, but then blames
//! the part (`won_deals`) rather than the metric asked for (`win_rate`), and
//! only after the data root and earlier metrics were dealt with; a slice
//! named twice reached the engine as a duplicate column.

use crate::compile::planner::Planner;
use crate::error::{CanonError, Result};

/// The slices every part of `name` approves, in the first part's order:
/// what `--by` may name for it.
pub fn approved(engine: &Planner, name: &str) -> Result<Vec<String>> {
    let catalog = &engine.catalog;
    let parts = super::parts(engine, name)?;
    let mut approved: Option<Vec<String>> = None;
    for part in &parts {
        let (_, _, m) = catalog.metric(part)?;
        let own: Vec<String> = m.slices.iter().map(|s| s.name().to_string()).collect();
        approved = Some(match approved {
            None => own,
            Some(so_far) => so_far.into_iter().filter(|s| own.contains(s)).collect(),
        });
    }
    Ok(approved.unwrap_or_default())
}

/// Refuses (exit 2) a `--by` that names a slice `name` does not approve,
/// with the closest approved one and the list.
pub fn check(engine: &Planner, name: &str, by: &[String]) -> Result<()> {
    if by.is_empty() {
        return Ok(());
    }
    let approved = approved(engine, name)?;
    if approved.is_empty() {
        return Err(CanonError::request(format!(
            "`{name}` has no approved slices: drop --by"
        )));
    }
    for slice in by {
        if approved.contains(slice) {
            continue;
        }
        let known: Vec<&str> = approved.iter().map(String::as_str).collect();
        let hint = crate::suggest::did_you_mean(slice, &known)
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        return Err(CanonError::request(format!(
            "`{slice}` is not an approved slice of `{name}`{hint}; approved: {}",
            approved.join(", ")
        )));
    }
    Ok(())
}
