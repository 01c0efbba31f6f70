//! Which definition an engine failure belongs to.
//!
//! The engine fails at run time with messages such as "Divide by zero
//! error" or "Cannot cast string 'Expansion' to value of Decimal128": true,
//! but they name neither the metric being computed nor the expression that
//! failed, and a catalog has dozens of each. A failure is therefore wrapped
//! with the metric (or reconciliation) it happened in and, when the kind of
//! failure points at one expression of that definition (the only one that
//! divides, the only one that casts, or for an overflow the one computing
//! the value), with that expression's file:line:column; with the list when
//! several could; otherwise with where the definition itself starts. The
//! metric's own expressions are suspected before its entity's fields and
//! what canon adds (the division by a dated FX rate).
//! Only engine failures are wrapped: data, definition and request errors
//! already say where they are.

use std::collections::BTreeSet;

use crate::catalog::Catalog;
use crate::error::{CanonError, Location};
use crate::spec::SliceSpec;
use crate::spec::locate::Step;
use crate::yaml_path;

/// What an engine failure is, as far as blaming an expression goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// A zero divisor (`/`, `%`).
    Division,
    /// A value that does not convert (`cast`, `::`, `to_date`, …).
    Conversion,
    /// A value beyond what its decimal type holds (38 digits).
    Overflow,
    /// Anything else: no expression can be told from the message.
    Other,
}

impl Failure {
    fn of(message: &str) -> Failure {
        let m = message.to_ascii_lowercase();
        if m.contains("divide by zero") || m.contains("division by zero") {
            Failure::Division
        } else if m.contains("overflow") || m.contains("too large to store") {
            Failure::Overflow
        } else if m.contains("cast error")
            || m.contains("cannot cast")
            || m.contains("can't cast")
            || m.contains("parser error")
            || m.contains("error parsing")
        {
            Failure::Conversion
        } else {
            Failure::Other
        }
    }

    /// Whether an expression's text could fail this way.
    fn could_fail(self, sql: &str) -> bool {
        let code = without_literals(sql).to_ascii_lowercase();
        match self {
            Failure::Division => code.contains('/') || code.contains('%'),
            Failure::Conversion => {
                let code = code.replace("try_cast", "");
                [
                    "cast(",
                    "cast (",
                    "::",
                    "to_date",
                    "to_timestamp",
                    "to_unixtime",
                ]
                .iter()
                .any(|f| code.contains(f))
            }
            // Told by the expression's role, not its text (see `value`).
            Failure::Overflow | Failure::Other => false,
        }
    }

    fn what(self) -> &'static str {
        match self {
            Failure::Division => "divides",
            Failure::Conversion => "converts values",
            Failure::Overflow => "computes the value",
            Failure::Other => "",
        }
    }

    fn hint(self) -> &'static str {
        match self {
            Failure::Division => {
                " (one zero divisor fails the whole query: write `x / nullif(y, 0)` for no value instead)"
            }
            Failure::Conversion => {
                " (one value that does not convert fails the whole query: fix the value upstream or the expression)"
            }
            Failure::Overflow => {
                " (a value beyond the 38 digits of a decimal fails the query: check the expression's magnitude)"
            }
            Failure::Other => "",
        }
    }
}

/// The SQL with its string literals blanked, so that `'a/b'` does not count
/// as a division.
fn without_literals(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    for c in sql.chars() {
        if c == '\'' {
            quoted = !quoted;
            out.push(c);
        } else if !quoted {
            out.push(c);
        }
    }
    out
}

/// One expression of a definition, where it is written.
struct Candidate {
    /// `measure.expr`, `filter`, `exclusion test_account`, …, prefixed with
    /// the part metric when it is not the one asked for.
    what: String,
    sql: String,
    at: Location,
    /// A failure the expression can have whatever its text (the division
    /// by the dated rate that a currency conversion adds).
    always: Option<Failure>,
    /// Set for what canon adds rather than an expression written: `sql` is
    /// then a description, and this the advice instead of the failure's.
    hint: Option<&'static str>,
    /// The expression computes the measured value (measure.expr, a derived
    /// metric's expr): the one suspected of an overflow.
    value: bool,
    /// Written in the metric itself (false: an entity field or what the
    /// compiler adds): suspected first, the others only when none of the
    /// metric's own expressions can fail so.
    own: bool,
}

/// Wraps an engine failure of metric `name` (computed with slices `by`)
/// with the metric and the expression at fault where one can be told.
/// Errors of any other kind are returned as they are.
pub fn in_metric(catalog: &Catalog, name: &str, by: &[String], error: CanonError) -> CanonError {
    let CanonError::Engine(engine_error) = &error else {
        return error;
    };
    let Ok((id, _, _)) = catalog.metric(name) else {
        return error;
    };
    let failure = Failure::of(&engine_error.to_string());
    let mut candidates = Vec::new();
    let mut seen = BTreeSet::new();
    metric_candidates(catalog, name, name, by, &mut seen, &mut candidates);
    let subject = format!("metric `{name}`");
    blame(
        subject,
        catalog.metric_at(id, &yaml_path!["name"]),
        failure,
        candidates,
        error,
    )
}

/// Wraps an engine failure of reconciliation `name` the same way, over the
/// expressions of its two governed sides and its link rules.
pub fn in_reconciliation(catalog: &Catalog, name: &str, error: CanonError) -> CanonError {
    let CanonError::Engine(engine_error) = &error else {
        return error;
    };
    let Some((fi, ri, spec)) = catalog
        .files
        .metrics
        .iter()
        .enumerate()
        .find_map(|(fi, f)| {
            f.spec
                .reconciliations
                .iter()
                .enumerate()
                .find(|(_, r)| r.name == name)
                .map(|(ri, r)| (fi, ri, r))
        })
    else {
        return error;
    };
    let failure = Failure::of(&engine_error.to_string());
    let file = &catalog.files.metrics[fi];
    let mut candidates = Vec::new();
    for (li, link) in spec.links.iter().enumerate() {
        if let Some(sql) = &link.expr {
            candidates.push(Candidate {
                what: format!("link rule `{}`", link.name),
                sql: sql.clone(),
                at: file.at(&yaml_path!["reconciliations", ri, "links", li, "expr"]),
                always: None,
                hint: None,
                own: true,
                value: false,
            });
        }
    }
    candidates.extend(project_candidates(catalog));
    let mut seen = BTreeSet::new();
    for side in [&spec.bookings, &spec.revenue] {
        metric_candidates(catalog, "", side, &[], &mut seen, &mut candidates);
    }
    blame(
        format!("reconciliation `{name}`"),
        file.at(&yaml_path!["reconciliations", ri, "name"]),
        failure,
        candidates,
        error,
    )
}

/// Wraps an engine failure of `canon check` when one expression it runs
/// (canon.yaml's `quality.subscription_deals`, a reconciliation's link
/// rules) can fail that way; other failures are returned as they are.
pub fn in_check(catalog: &Catalog, error: CanonError) -> CanonError {
    let CanonError::Engine(engine_error) = &error else {
        return error;
    };
    let failure = Failure::of(&engine_error.to_string());
    let mut candidates = project_candidates(catalog);
    for file in &catalog.files.metrics {
        for (ri, r) in file.spec.reconciliations.iter().enumerate() {
            for (li, link) in r.links.iter().enumerate() {
                if let Some(sql) = &link.expr {
                    candidates.push(Candidate {
                        what: format!("reconciliation `{}` link rule `{}`", r.name, link.name),
                        sql: sql.clone(),
                        at: file.at(&yaml_path!["reconciliations", ri, "links", li, "expr"]),
                        always: None,
                        hint: None,
                        own: true,
                        value: false,
                    });
                }
            }
        }
    }
    if !candidates.iter().any(|c| failure.could_fail(&c.sql)) {
        return error;
    }
    blame(
        "canon check".into(),
        catalog.files.project.at(&[]),
        failure,
        candidates,
        error,
    )
}

/// The expressions of canon.yaml that queries run.
fn project_candidates(catalog: &Catalog) -> Vec<Candidate> {
    let project = &catalog.files.project;
    project
        .spec
        .quality
        .subscription_deals
        .iter()
        .map(|sql| Candidate {
            what: "quality.subscription_deals".into(),
            sql: sql.clone(),
            at: project.at(&yaml_path!["quality", "subscription_deals"]),
            always: None,
            hint: None,
            own: true,
            value: false,
        })
        .collect()
}

fn blame(
    subject: String,
    definition: Location,
    failure: Failure,
    candidates: Vec<Candidate>,
    error: CanonError,
) -> CanonError {
    let (own, implied): (Vec<Candidate>, Vec<Candidate>) = candidates
        .into_iter()
        .filter(|c| {
            c.always == Some(failure)
                || failure.could_fail(&c.sql)
                || (failure == Failure::Overflow && c.value)
        })
        .partition(|c| c.own);
    let mut suspects = if own.is_empty() { implied } else { own };
    let context = match suspects.len() {
        0 => format!("{definition}: {subject}"),
        1 => {
            let c = suspects.remove(0);
            let why = match c.hint {
                None => format!(" (the expression that {})", failure.what()),
                Some(_) => String::new(),
            };
            let context = format!("{}: {subject}, {}{why}", c.at, c.shown());
            return CanonError::Context {
                context,
                source: Box::new(error),
                hint: c.hint.unwrap_or(failure.hint()).to_string(),
            };
        }
        _ => {
            let list: Vec<String> = suspects
                .iter()
                .map(|c| format!("{} at {}", c.shown(), c.at))
                .collect();
            format!(
                "{definition}: {subject}: one of its expressions that {}: {}",
                failure.what(),
                list.join(", ")
            )
        }
    };
    CanonError::Context {
        context,
        source: Box::new(error),
        hint: failure.hint().to_string(),
    }
}

impl Candidate {
    /// `measure.expr `amount / 0``, or what canon adds, described.
    fn shown(&self) -> String {
        match self.hint {
            None => format!("{} `{}`", self.what, one_line(&self.sql)),
            Some(_) => format!("{} ({})", self.what, self.sql),
        }
    }
}

fn one_line(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The expressions of metric `name` and of the metrics it is computed from
/// (a ratio's parts, a derived metric's inputs, a cohort's snapshot), each
/// once. `asked` is the metric the user asked for: another part's
/// expressions are labelled with the part's name.
fn metric_candidates(
    catalog: &Catalog,
    asked: &str,
    name: &str,
    by: &[String],
    seen: &mut BTreeSet<String>,
    out: &mut Vec<Candidate>,
) {
    if !seen.insert(name.to_string()) {
        return;
    }
    let Ok((id, _, m)) = catalog.metric(name) else {
        return;
    };
    let label = |what: &str| {
        if name == asked {
            what.to_string()
        } else {
            format!("`{name}`'s {what}")
        }
    };
    let at = |what: String, sql: &str, path: &[Step]| Candidate {
        what,
        sql: sql.to_string(),
        at: catalog.metric_at(id, path),
        always: None,
        hint: None,
        own: true,
        value: false,
    };
    if let Some(sql) = &m.filter {
        out.push(at(label("filter"), sql, &yaml_path!["filter"]));
    }
    if let Some(sql) = m.measure.as_ref().and_then(|x| x.expr.as_ref()) {
        out.push(Candidate {
            value: true,
            ..at(label("measure.expr"), sql, &yaml_path!["measure", "expr"])
        });
    }
    if let Some(currency) = m.measure.as_ref().and_then(|x| x.currency.as_ref()) {
        // Money in another currency is divided by its dated rate: a zero
        // rate in the extracts fails the query here.
        out.push(Candidate {
            what: label("measure.currency"),
            sql: format!(
                "each amount divided by the `fx_rate` rate in force on its {}",
                currency.rate_date
            ),
            at: catalog.metric_at(id, &yaml_path!["measure", "currency"]),
            always: Some(Failure::Division),
            hint: Some(
                " (a rate of 0 is in force for one of its currencies: fix the rate in the extract of the `fx_rate` entity)",
            ),
            own: false,
 value: false,
        });
    }
    if let Some(sql) = &m.expr {
        out.push(Candidate {
            value: true,
            ..at(label("expr"), sql, &yaml_path!["expr"])
        });
    }
    if let Some(h) = &m.history {
        if let Some(sql) = &h.filter {
            out.push(at(
                label("history.filter"),
                sql,
                &yaml_path!["history", "filter"],
            ));
        }
        if let Some(sql) = &h.on {
            out.push(at(label("history.on"), sql, &yaml_path!["history", "on"]));
        }
    }
    if let Some(c) = &m.conversion {
        out.push(at(
            label("conversion.member"),
            &c.member,
            &yaml_path!["conversion", "member"],
        ));
        out.push(at(
            label("conversion.reaches"),
            &c.reaches,
            &yaml_path!["conversion", "reaches"],
        ));
        if let Some(sql) = &c.then {
            out.push(at(
                label("conversion.then"),
                sql,
                &yaml_path!["conversion", "then"],
            ));
        }
    }
    for (si, slice) in m.slices.iter().enumerate() {
        if let SliceSpec::Named { name: s, expr, .. } = slice
            && by.iter().any(|b| b == s)
        {
            out.push(at(
                label(&format!("slice `{s}`")),
                expr,
                &yaml_path!["slices", si, "expr"],
            ));
        }
    }
    for x in catalog.exclusions_of(id) {
        out.push(Candidate {
            what: label(&format!("exclusion `{}`", x.spec.name)),
            sql: x.spec.when.clone(),
            at: x.when_location.clone(),
            always: None,
            hint: None,
            own: true,
            value: false,
        });
    }
    // The entity's own fields (a field may cast or divide a vendor column).
    for entity in [
        m.entity.as_deref(),
        m.history.as_ref().map(|h| h.entity.as_str()),
    ]
    .into_iter()
    .flatten()
    {
        if let Some((eid, _, e)) = catalog.entity(entity) {
            for (fi, f) in e.fields.iter().enumerate() {
                if let Some(sql) = &f.expr {
                    out.push(Candidate {
                        what: format!("entity `{entity}` field `{}`", f.name),
                        sql: sql.clone(),
                        at: catalog.entity_at(eid, &yaml_path!["fields", fi, "expr"]),
                        always: None,
                        hint: None,
                        own: false,
                        value: false,
                    });
                }
            }
        }
    }
    // The metrics it is computed from.
    let mut parts: Vec<String> = Vec::new();
    parts.extend(m.numerator.clone());
    parts.extend(m.denominator.clone());
    parts.extend(m.cohort.as_ref().map(|c| c.of.clone()));
    if let Some(sql) = &m.expr {
        parts.extend(
            without_literals(sql)
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .filter(|w| catalog.metrics.contains_key(*w))
                .map(str::to_string),
        );
    }
    for part in parts {
        metric_candidates(catalog, asked, &part, by, seen, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_told_from_the_engine_message() {
        assert_eq!(
            Failure::of("Arrow error: Divide by zero error"),
            Failure::Division
        );
        assert_eq!(
            Failure::of(
                "Arrow error: Cast error: Cannot cast string 'Expansion' to value of Int32 type"
            ),
            Failure::Conversion
        );
        assert_eq!(
            Failure::of("Cast error: Cannot cast to Decimal128(38, 2). Overflowing on 2.5e36"),
            Failure::Overflow
        );
        assert_eq!(
            Failure::of(
                "Invalid argument error: 12.5 is too large to store in a Decimal128 of precision 38"
            ),
            Failure::Overflow
        );
        assert_eq!(Failure::of("Resources exhausted"), Failure::Other);
    }

    #[test]
    fn only_expressions_that_can_fail_so_are_suspects() {
        assert!(Failure::Division.could_fail("amount / quantity"));
        assert!(!Failure::Division.could_fail("strpos(name, 'a/b') > 0"));
        assert!(Failure::Conversion.could_fail("CAST(deal_type AS int)"));
        assert!(Failure::Conversion.could_fail("deal_type::int"));
        assert!(!Failure::Conversion.could_fail("try_cast(deal_type as int)"));
        assert!(!Failure::Conversion.could_fail("amount"));
    }
}
