//! A reconciliation's bridge as finance declares it: each line's sign and the
//! amounts it holds, from a closed vocabulary the engine knows how to compute
//! for a period P over the deal-level and line-level detail.
//!
//! The bridge is computed from these declarations, never from a list in Rust:
//! a line's value is its sign times the sum of what it holds. Whether a set of
//! declarations can tie out is decided before any data is read: every amount
//! of the vocabulary is a fixed combination of ten disjoint parts (the
//! [`PARTS`]), and B + Σ sign × held − R must be zero part by part. A
//! declaration that cannot tie out is a located error naming the amount it
//! mis-signs or leaves out, when the catalog loads (so `canon validate` says
//! so too); the computed bridge is checked again to the cent when it runs.

use std::collections::BTreeMap;

use super::Catalog;
use crate::decimal::Dec;
use crate::error::{Diagnostic, Location};
use crate::spec::amounts::{Amount, PARTS, VOCABULARY};
use crate::spec::locate::Step;
use crate::spec::{BridgeSign, ReconciliationSpec};
use crate::suggest::did_you_mean;
use crate::yaml_path;

/// A declared line, resolved: its sign (none for the start and end lines)
/// and the amounts it holds.
#[derive(Debug, Clone)]
pub struct Line {
    pub name: String,
    pub label: String,
    pub sign: Option<BridgeSign>,
    pub holds: Vec<Amount>,
}

impl Line {
    /// The line's value: its sign times the sum of what it holds.
    pub fn value(&self, amounts: &BTreeMap<Amount, Dec>) -> Dec {
        let zero = Dec::new(0, 2);
        let sum = self
            .holds
            .iter()
            .fold(zero, |a, h| a + amounts.get(h).copied().unwrap_or(zero));
        match self.sign {
            Some(BridgeSign::Minus) => zero - sum,
            _ => sum,
        }
    }
}

/// The lines of a reconciliation, checked: known amounts, each held once,
/// B first, R last, a sign on every line between, and declarations that tie
/// out. `at` locates a path under the reconciliation.
pub fn resolve(
    spec: &ReconciliationSpec,
    at: &dyn Fn(&[Step]) -> Location,
) -> Result<Vec<Line>, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let line_at = |i: usize, path: &[Step]| {
        let mut full = yaml_path!["lines", i].to_vec();
        full.extend_from_slice(path);
        at(&full)
    };
    let mut d = |location: Location, message: String| diags.push(Diagnostic { location, message });
    let n = spec.lines.len();
    if n < 2 {
        d(
            at(&yaml_path!["lines"]),
            "a bridge needs at least its first line, holding `bookings` (B), and its last, holding `recognized_revenue` (R)".into(),
        );
        return Err(diags);
    }
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    let mut holder: BTreeMap<Amount, usize> = BTreeMap::new();
    let mut lines = Vec::new();
    for (i, l) in spec.lines.iter().enumerate() {
        let well_formed = l.name.starts_with(|c: char| c.is_ascii_lowercase())
            && l.name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !well_formed {
            d(
                line_at(i, &yaml_path!["name"]),
                format!(
                    "line name `{}`: write it in snake_case (a-z, 0-9, _), it names the line in every output",
                    l.name
                ),
            );
        }
        if let Some(why) = reserved(&l.name, &l.holds.names().0) {
            d(line_at(i, &yaml_path!["name"]), why);
        }
        if let Some(first) = names.insert(&l.name, i) {
            names.insert(&spec.lines[first].name, first);
            d(
                line_at(i, &yaml_path!["name"]),
                format!(
                    "line `{}` is declared twice (also line {} of the bridge)",
                    l.name,
                    first + 1
                ),
            );
        }
        let (held, listed) = l.holds.names();
        if held.is_empty() {
            d(
                line_at(i, &yaml_path!["holds"]),
                format!("line `{}` holds nothing", l.name),
            );
        }
        let mut amounts = Vec::new();
        for (j, h) in held.iter().enumerate() {
            let loc = if listed {
                line_at(i, &yaml_path!["holds", j])
            } else {
                line_at(i, &yaml_path!["holds"])
            };
            let Some(a) = Amount::from_name(h) else {
                let known = Amount::names();
                let hint = did_you_mean(h, &known)
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                d(
                    loc,
                    format!(
                        "line `{}` holds unknown amount `{h}`{hint}; a line holds one or more of: {}",
                        l.name,
                        known.join(", ")
                    ),
                );
                continue;
            };
            if let Some(&other) = holder.get(&a) {
                d(
                    loc,
                    format!(
                        "`{h}` is already held by line `{}`: an amount belongs to one line, or the bridge counts it twice",
                        spec.lines[other].name
                    ),
                );
                continue;
            }
            holder.insert(a, i);
            amounts.push(a);
        }
        lines.push(Line {
            name: l.name.clone(),
            label: l.label.clone(),
            sign: l.sign,
            holds: amounts,
        });
    }
    // B starts the walk and R ends it; every line between has a sign.
    for (end, position, what) in [
        (Amount::Bookings, 0, "first line: the bridge starts from B"),
        (
            Amount::RecognizedRevenue,
            n - 1,
            "last line: the bridge ends at R",
        ),
    ] {
        match holder.get(&end) {
            None => d(
                at(&yaml_path!["lines"]),
                format!(
                    "no line holds `{}` ({}); declare it as the {what}",
                    end.name(),
                    end.meaning()
                ),
            ),
            Some(&i) if i != position => d(
                line_at(i, &yaml_path!["holds"]),
                format!("`{}` belongs to the {what}", end.name()),
            ),
            Some(&i) => {
                if lines[i].holds.len() > 1 || spec.lines[i].holds.names().0.len() > 1 {
                    d(
                        line_at(i, &yaml_path!["holds"]),
                        format!(
                            "line `{}` is the bridge's {} and holds `{}` alone",
                            lines[i].name,
                            if i == 0 { "start (B)" } else { "end (R)" },
                            end.name()
                        ),
                    );
                }
                if lines[i].sign.is_some() {
                    d(
                        line_at(i, &yaml_path!["sign"]),
                        format!(
                            "line `{}` is {} itself and takes no sign",
                            lines[i].name,
                            if i == 0 { "B" } else { "R" }
                        ),
                    );
                }
            }
        }
    }
    for (i, l) in lines.iter().enumerate().take(n - 1).skip(1) {
        if l.sign.is_none() {
            d(
                line_at(i, &[]),
                format!(
                    "line `{}` needs a sign: '-' (subtracted), '+' (added) or '±' (added, of either sign)",
                    l.name
                ),
            );
        }
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    let gap = tie_out_gap(&lines);
    if gap != [0; 10] {
        diags.extend(explain(&lines, gap, &at, &line_at));
        return Err(diags);
    }
    Ok(lines)
}

/// The category the detail gives a deal of P that has revenue lines (every
/// other category in the detail is the name of the line holding the
/// amount): a line may not take it, or its deals could not be told from
/// the scheduled ones.
pub const SCHEDULED: &str = "scheduled";

/// Why a line may not be named `name`, if it may not: `scheduled` is the
/// detail's own category, and a line named after an amount of the
/// vocabulary must hold that amount (the plans categorize lines by amount
/// name; a line of that name holding another amount would read, in the
/// detail, as the amount it is not).
fn reserved(name: &str, holds: &[&str]) -> Option<String> {
    if name == SCHEDULED {
        return Some(format!(
            "line name `{name}` is reserved: the detail's category `{SCHEDULED}` marks the deals that have revenue lines, so this line's deals could not be picked out (reserved: {SCHEDULED}, and an amount's name unless the line holds that amount)"
        ));
    }
    if Amount::from_name(name).is_some() && !holds.contains(&name) {
        return Some(format!(
            "line name `{name}` is the name of an amount of the vocabulary that the line does not hold: in the detail it would read as that amount (reserved: {SCHEDULED}, and an amount's name unless the line holds that amount)"
        ));
    }
    None
}

/// B + Σ sign × held − R, part by part.
fn tie_out_gap(lines: &[Line]) -> [i32; 10] {
    let mut gap = [0i32; 10];
    let last = lines.len() - 1;
    for (i, l) in lines.iter().enumerate() {
        let factor = if i == last {
            -1
        } else {
            l.sign.map(BridgeSign::factor).unwrap_or(1)
        };
        for a in &l.holds {
            for (g, p) in gap.iter_mut().zip(a.parts()) {
                *g += factor * p;
            }
        }
    }
    gap
}

/// The gap as amounts of the vocabulary: each amount between B and R that
/// the declarations mis-sign or leave out, with its factor in B + lines − R.
/// Each of those amounts has a part no other one has, once the amounts
/// already peeled off are set aside, so the factors are found one at a time.
fn gap_in_amounts(mut gap: [i32; 10]) -> Option<Vec<(Amount, i32)>> {
    let mut remaining: Vec<Amount> = VOCABULARY
        .iter()
        .map(|e| e.0)
        .filter(|a| !matches!(a, Amount::Bookings | Amount::RecognizedRevenue))
        .collect();
    let mut out = Vec::new();
    while gap != [0; 10] {
        let (k, part) = remaining.iter().enumerate().find_map(|(k, a)| {
            (0..10)
                .find(|&p| {
                    a.parts()[p] != 0 && remaining.iter().all(|b| b == a || b.parts()[p] == 0)
                })
                .map(|p| (k, p))
        })?;
        let a = remaining.remove(k);
        let factor = gap[part] / a.parts()[part];
        if factor != 0 {
            for (g, p) in gap.iter_mut().zip(a.parts()) {
                *g -= factor * p;
            }
            out.push((a, factor));
        }
    }
    Some(out)
}

fn times(factor: i32, name: &str) -> String {
    match factor {
        1 => format!("`{name}`"),
        -1 => format!("−`{name}`"),
        f if f < 0 => format!("−{} × `{name}`", -f),
        f => format!("{f} × `{name}`"),
    }
}

/// One located diagnostic per mis-signed or missing amount.
fn explain(
    lines: &[Line],
    gap: [i32; 10],
    at: &dyn Fn(&[Step]) -> Location,
    line_at: &dyn Fn(usize, &[Step]) -> Location,
) -> Vec<Diagnostic> {
    let Some(amounts) = gap_in_amounts(gap) else {
        let parts: Vec<String> = gap
            .iter()
            .zip(PARTS)
            .filter(|(g, _)| **g != 0)
            .map(|(g, p)| format!("{g} × ({p})"))
            .collect();
        return vec![Diagnostic {
            location: at(&yaml_path!["lines"]),
            message: format!(
                "the bridge does not tie out: as declared, B + lines − R = {}",
                parts.join(" + ")
            ),
        }];
    };
    let verb = |f: i32| if f < 0 { "subtracted" } else { "added" };
    let mut out = Vec::new();
    for (a, factor) in amounts {
        let holding = lines.iter().enumerate().find(|(_, l)| l.holds.contains(&a));
        let gap_text = format!("as declared, B + lines − R = {}", times(factor, a.name()));
        out.push(match holding {
            Some((i, l)) => {
                let declared = l.sign.map(BridgeSign::factor).unwrap_or(1);
                let needed = declared - factor;
                let fix = match needed {
                    -1 => " (sign '-')".to_string(),
                    1 => " (sign '+' or '±')".to_string(),
                    _ => String::new(),
                };
                Diagnostic {
                    location: line_at(i, &yaml_path!["sign"]),
                    message: format!(
                        "the bridge does not tie out: line `{}` has `{}` ({}) {}, but B + lines = R needs it {}{fix}; {gap_text}",
                        l.name,
                        a.name(),
                        a.meaning(),
                        verb(declared),
                        verb(needed),
                    ),
                }
            }
            None => Diagnostic {
                location: at(&yaml_path!["lines"]),
                message: format!(
                    "the bridge does not tie out: no line holds `{}` ({}), which B + lines = R needs {}; {gap_text}",
                    a.name(),
                    a.meaning(),
                    verb(-factor),
                ),
            },
        });
    }
    out
}

/// The static checks of every reconciliation of the catalog: its lines (as
/// [`resolve`]), its two sides and its name.
pub fn check(catalog: &Catalog, file: usize, index: usize, diags: &mut Vec<Diagnostic>) {
    let f = &catalog.files.metrics[file];
    let spec = &f.spec.reconciliations[index];
    let at = |path: &[Step]| {
        let mut full = yaml_path!["reconciliations", index].to_vec();
        full.extend_from_slice(path);
        f.at(&full)
    };
    let earlier = catalog.files.metrics[..=file]
        .iter()
        .enumerate()
        .flat_map(|(fi, g)| {
            g.spec
                .reconciliations
                .iter()
                .enumerate()
                .map(move |(ri, r)| (fi, ri, r))
        })
        .take_while(|(fi, ri, _)| (*fi, *ri) != (file, index))
        .any(|(_, _, r)| r.name == spec.name);
    if earlier {
        diags.push(Diagnostic {
            location: at(&yaml_path!["name"]),
            message: format!("reconciliation `{}` is defined twice", spec.name),
        });
    }
    for (key, name) in [("bookings", &spec.bookings), ("revenue", &spec.revenue)] {
        if !catalog.metrics.contains_key(name) {
            let known: Vec<&str> = catalog.metrics.keys().map(String::as_str).collect();
            let hint = did_you_mean(name, &known)
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            diags.push(Diagnostic {
                location: at(&yaml_path![key]),
                message: format!("unknown metric `{name}`{hint}"),
            });
        }
    }
    if let Err(d) = resolve(spec, &at) {
        diags.extend(d);
    }
}

/// R − (B + the lines between), from the computed values: zero when the
/// bridge ties out.
pub fn check_value(values: &[Dec]) -> Dec {
    let zero = Dec::new(0, 2);
    match values.split_last() {
        Some((r, walk)) => *r - walk.iter().fold(zero, |a, v| a + *v),
        None => zero,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(name: &str, sign: Option<BridgeSign>, holds: &[Amount]) -> Line {
        Line {
            name: name.into(),
            label: name.into(),
            sign,
            holds: holds.to_vec(),
        }
    }

    fn standard() -> Vec<Line> {
        use Amount::*;
        use BridgeSign::*;
        vec![
            line("b", None, &[Bookings]),
            line("after", Some(Minus), &[LinesAfterPeriod]),
            line("before", Some(Minus), &[LinesBeforePeriod]),
            line("not_yet", Some(Minus), &[LinesInPeriodNotRecognized]),
            line("unscheduled", Some(Minus), &[BookingsWithoutLines]),
            line("amount", Some(Either), &[AmountDifference]),
            line("fx", Some(Either), &[FxDifference]),
            line("earlier", Some(Plus), &[RecognizedOfDealsWonBeforePeriod]),
            line("later", Some(Plus), &[RecognizedOfDealsWonAfterPeriod]),
            line("none", Some(Plus), &[RecognizedWithoutCountedDeal]),
            line("r", None, &[RecognizedRevenue]),
        ]
    }

    // B + Σ sign × held − R is zero part by part for the bridge of metrics.md.
    #[test]
    fn the_bridge_of_the_spec_ties_out_by_construction() {
        assert_eq!(tie_out_gap(&standard()), [0; 10]);
    }

    // `lines_after_period` added instead of subtracted: the gap is twice it.
    #[test]
    fn a_flipped_sign_is_twice_that_amount() {
        let mut l = standard();
        l[1].sign = Some(BridgeSign::Plus);
        let gap = tie_out_gap(&l);
        assert_eq!(
            gap_in_amounts(gap),
            Some(vec![(Amount::LinesAfterPeriod, 2)])
        );
    }

    // Without the FX line, B + lines − R = −fx_difference; with the amount
    // difference subtracted too, −2 × amount_difference as well.
    #[test]
    fn a_missing_amount_is_named() {
        let mut l = standard();
        l.remove(6);
        l[5].sign = Some(BridgeSign::Minus);
        let got = gap_in_amounts(tie_out_gap(&l)).unwrap();
        let mut got = got;
        got.sort();
        assert_eq!(
            got,
            vec![(Amount::AmountDifference, -2), (Amount::FxDifference, -1)]
        );
    }

    // Two amounts on one line tie out as two lines do.
    #[test]
    fn merged_lines_still_tie_out() {
        let mut l = standard();
        l[5].holds.push(Amount::FxDifference);
        l.remove(6);
        assert_eq!(tie_out_gap(&l), [0; 10]);
    }

    // Values: 100.00 − 30.00 (lines after) + 5.00 ... ; R − walk.
    #[test]
    fn line_values_follow_their_sign() {
        let amounts: BTreeMap<Amount, Dec> = [
            (Amount::LinesAfterPeriod, Dec::new(3000, 2)),
            (Amount::AmountDifference, Dec::new(-500, 2)),
        ]
        .into_iter()
        .collect();
        let l = standard();
        // '-' on 30.00 → −30.00; '±' on −5.00 → −5.00.
        assert_eq!(l[1].value(&amounts), Dec::new(-3000, 2));
        assert_eq!(l[5].value(&amounts), Dec::new(-500, 2));
        // 100.00 − 30.00 − 5.00 = 65.00; R 65.01 leaves a gap of 0.01.
        let values = [
            Dec::new(10000, 2),
            Dec::new(-3000, 2),
            Dec::new(-500, 2),
            Dec::new(6501, 2),
        ];
        assert_eq!(check_value(&values), Dec::new(1, 2));
    }
}
