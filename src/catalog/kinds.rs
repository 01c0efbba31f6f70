//! The checks a metric's kind asks of its definition, one function per
//! kind and one dispatch ([`check`]): what it must declare (an entity and a
//! measure, a time or a validity, parts, a cohort, an expression) and what
//! it may name. Beneath planning, so every command checks them when the
//! project loads; the kind's planning is its module in `compile/`
//! (`compile::kind`).

use super::{Catalog, diag};
use crate::error::{Diagnostic, Location};
use crate::spec::locate::Step;
use crate::spec::{MetricKind, MetricSpec};
use crate::yaml_path;

/// Where a node of the metric being checked is.
type At<'a> = &'a dyn Fn(&[Step]) -> Location;

/// The checks of `m`'s kind.
pub(super) fn check(catalog: &Catalog, m: &MetricSpec, at: At, diags: &mut Vec<Diagnostic>) {
    match m.kind {
        MetricKind::Simple => simple(catalog, m, at, diags),
        MetricKind::Snapshot => snapshot(catalog, m, at, diags),
        MetricKind::Ratio => ratio(catalog, m, at, diags),
        MetricKind::Conversion => conversion(m, at, diags),
        MetricKind::Cohort => cohort(m, at, diags),
        MetricKind::Derived => derived(m, at, diags),
    }
}

/// A flow counts rows of an entity in the period of their `time`.
fn simple(catalog: &Catalog, m: &MetricSpec, at: At, diags: &mut Vec<Diagnostic>) {
    counted_entity(catalog, m, at, diags);
    if m.time.is_none() {
        diags.push(diag(at(&[]), "a simple metric needs `time`".into()));
    }
    measure(m, at, diags);
}

/// A snapshot counts rows of an entity in force at a day.
fn snapshot(catalog: &Catalog, m: &MetricSpec, at: At, diags: &mut Vec<Diagnostic>) {
    counted_entity(catalog, m, at, diags);
    if m.history.is_none() && m.valid.is_none() {
        diags.push(diag(
            at(&[]),
            "a snapshot metric needs `history` (latest row on or before D), `valid` (from <= D < to) or both".into(),
        ));
    }
    measure(m, at, diags);
}

/// The entity a simple or snapshot metric counts: known, and of the
/// metric's system of record.
fn counted_entity(catalog: &Catalog, m: &MetricSpec, at: At, diags: &mut Vec<Diagnostic>) {
    match &m.entity {
        None => diags.push(diag(
            at(&[]),
            format!("a {} metric needs `entity` and `measure`", m.kind.name()),
        )),
        Some(e) => match catalog.entity(e) {
            None => diags.push(diag(
                at(&yaml_path!["entity"]),
                format!("unknown entity `{e}`{}", catalog.entity_hint(e)),
            )),
            Some((_, model, _)) if model.spec.system != m.system => diags.push(diag(
                at(&yaml_path!["system"]),
                format!(
                    "metric says its system of record is `{}` but entity `{e}` comes from `{}`",
                    m.system, model.spec.system
                ),
            )),
            Some(_) => {}
        },
    }
}

/// What a simple or snapshot metric sums or counts.
fn measure(m: &MetricSpec, at: At, diags: &mut Vec<Diagnostic>) {
    if m.measure.is_none() {
        diags.push(diag(
            at(&[]),
            format!("a {} metric needs `measure`", m.kind.name()),
        ));
    }
}

/// A ratio names an aggregate metric as numerator and as denominator.
fn ratio(catalog: &Catalog, m: &MetricSpec, at: At, diags: &mut Vec<Diagnostic>) {
    for (key, value) in [("numerator", &m.numerator), ("denominator", &m.denominator)] {
        match value {
            None => diags.push(diag(at(&[]), format!("a ratio metric needs `{key}`"))),
            Some(name) => component(catalog, name, at(&yaml_path![key]), diags),
        }
    }
}

/// A ratio's part: a known simple, snapshot or conversion metric.
fn component(catalog: &Catalog, name: &str, location: Location, diags: &mut Vec<Diagnostic>) {
    match catalog.metrics.get(name) {
        None => diags.push(diag(location, format!("unknown metric `{name}`"))),
        Some(id) => {
            let m = &catalog.files.metrics[id.file].spec.metrics[id.index];
            if !m.kind.is_aggregate() {
                diags.push(diag(
                    location,
                    format!(
                        "`{name}` is a {} metric; a ratio's parts must be simple, snapshot or conversion metrics",
                        m.kind.name()
                    ),
                ));
            }
        }
    }
}

fn conversion(m: &MetricSpec, at: At, diags: &mut Vec<Diagnostic>) {
    if m.conversion.is_none() || m.entity.is_none() {
        diags.push(diag(
            at(&[]),
            "a conversion metric needs `entity` and `conversion`".into(),
        ));
    }
}

fn cohort(m: &MetricSpec, at: At, diags: &mut Vec<Diagnostic>) {
    if m.cohort.is_none() {
        diags.push(diag(
            at(&[]),
            "a cohort metric needs `cohort` (of, key, value)".into(),
        ));
    }
}

fn derived(m: &MetricSpec, at: At, diags: &mut Vec<Diagnostic>) {
    if m.expr.is_none() {
        diags.push(diag(at(&[]), "a derived metric needs `expr`".into()));
    }
}
