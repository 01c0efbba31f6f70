//! A result against what a test expects of it: every difference, each as
//! one readable line (`value: expected 3694.46, got 3694.47`). Results are
//! compared through their JSON, the form people and BI tools read, so a
//! test checks what a consumer of the number sees.

use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

use super::spec::ExpectSpec;

/// The differences between governed result `got` (JSON) of metric
/// `metric` and `expect`.
pub fn metric(metric: &str, expect: &ExpectSpec, got: &Json) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(v) = &expect.value {
        same("value", v, &got["value"], &mut out);
    }
    let exclusions = got["exclusions"].as_array().cloned().unwrap_or_default();
    for (name, x) in &expect.exclusions {
        let (part, short) = name.split_once('/').unwrap_or((metric, name));
        let found = exclusions
            .iter()
            .find(|e| e["name"] == short && e["metric"] == part)
            .or_else(|| {
                (part == metric)
                    .then(|| exclusions.iter().find(|e| e["name"] == short))
                    .flatten()
            });
        let Some(found) = found else {
            let known: Vec<String> = exclusions
                .iter()
                .map(|e| {
                    let (m, n) = (
                        e["metric"].as_str().unwrap_or(""),
                        e["name"].as_str().unwrap_or(""),
                    );
                    if m == metric {
                        n.to_string()
                    } else {
                        format!("{m}/{n}")
                    }
                })
                .collect();
            out.push(format!(
                "exclusions.{name}: the result has no such exclusion (it has: {})",
                known.join(", ")
            ));
            continue;
        };
        if let Some(rows) = x.rows {
            same(
                &format!("exclusions.{name}.rows"),
                &Yaml::from(rows),
                &found["rows"],
                &mut out,
            );
        }
        if let Some(v) = &x.value {
            same(
                &format!("exclusions.{name}.value"),
                v,
                &found["value"],
                &mut out,
            );
        }
    }
    if !expect.tallies.is_empty() {
        let tallies = got["tallies"].as_array().cloned().unwrap_or_default();
        let own = tallies
            .iter()
            .find(|t| t["metric"] == metric)
            .or(tallies.first())
            .cloned()
            .unwrap_or(Json::Null);
        for (field, v) in &expect.tallies {
            match v {
                // Another tally, by its label (a cohort's instant at T).
                Yaml::Mapping(fields) => {
                    let Some(tally) = tallies.iter().find(|t| t["metric"] == field.as_str()) else {
                        out.push(format!(
                            "tallies.{field}: the result has no such tally (it has: {})",
                            tallies
                                .iter()
                                .filter_map(|t| t["metric"].as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                        continue;
                    };
                    for (k, v) in fields {
                        let k = yaml_text(k);
                        same(
                            &format!("tallies.{field}.{k}"),
                            v,
                            &tally[k.as_str()],
                            &mut out,
                        );
                    }
                }
                v => match own.get(field.as_str()) {
                    Some(got) => same(&format!("tallies.{field}"), v, got, &mut out),
                    None => out.push(format!(
                        "tallies.{field}: the tally has no such field (it has: {})",
                        own.as_object()
                            .map(|o| o
                                .keys()
                                .filter(|k| k.as_str() != "metric")
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", "))
                            .unwrap_or_default()
                    )),
                },
            }
        }
    }
    if let Some(rows) = &expect.rows {
        compare_rows(
            rows,
            got["rows"].as_array().map(Vec::as_slice).unwrap_or(&[]),
            &mut out,
        );
    }
    // A cohort metric's bridge.
    bridge(expect, got, &mut out);
    if expect.check.is_some() {
        out.push("check: a metric has no check (a reconciliation's bridge does)".into());
    }
    out
}

/// The differences between reconciliation result `got` (JSON) and `expect`.
pub fn reconciliation(expect: &ExpectSpec, got: &Json) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(v) = &expect.check {
        same("check", v, &got["check"], &mut out);
    }
    bridge(expect, got, &mut out);
    let given = [
        ("value", expect.value.is_some()),
        ("exclusions", !expect.exclusions.is_empty()),
        ("tallies", !expect.tallies.is_empty()),
        ("rows", expect.rows.is_some()),
    ];
    for (key, _) in given.iter().filter(|(_, g)| *g) {
        out.push(format!(
            "{key}: a reconciliation is checked by its `bridge` lines and `check`"
        ));
    }
    out
}

/// The bridge's lines (a reconciliation's, or a cohort metric's), by name.
fn bridge(expect: &ExpectSpec, got: &Json, out: &mut Vec<String>) {
    let lines = got["bridge"].as_array().cloned().unwrap_or_default();
    for (line, v) in &expect.bridge {
        match lines.iter().find(|l| l["line"] == line.as_str()) {
            Some(l) => same(&format!("bridge.{line}"), v, &l["value"], out),
            None => out.push(format!(
                "bridge.{line}: the result has no such bridge line (it has: {})",
                lines
                    .iter()
                    .filter_map(|l| l["line"].as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

/// Each expected row must be a row of the result, and the result has no
/// other row; only the keys a test gives are compared.
fn compare_rows(
    expected: &[std::collections::BTreeMap<String, Yaml>],
    got: &[Json],
    out: &mut Vec<String>,
) {
    // Every key some expected row gives, once, in the order first given.
    let mut keys: Vec<&String> = Vec::new();
    for k in expected.iter().flat_map(|r| r.keys()) {
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let project = |row: &Json| -> Vec<(String, String)> {
        keys.iter()
            .map(|k| (k.to_string(), json_text(&row[k.as_str()])))
            .collect()
    };
    let mut actual: Vec<Vec<(String, String)>> = got.iter().map(project).collect();
    let mut missing = Vec::new();
    for row in expected {
        let cells: Vec<(String, String)> = keys
            .iter()
            .map(|k| {
                (
                    k.to_string(),
                    row.get(*k).map(yaml_text).unwrap_or_else(|| "null".into()),
                )
            })
            .collect();
        match actual.iter().position(|a| *a == cells) {
            Some(i) => {
                actual.remove(i);
            }
            None => missing.push(cells),
        }
    }
    let show = |cells: &Vec<(String, String)>| {
        cells
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    for m in &missing {
        out.push(format!(
            "rows: expected a row {}, not in the result",
            show(m)
        ));
    }
    for a in &actual {
        out.push(format!(
            "rows: the result has a row {} not expected",
            show(a)
        ));
    }
}

fn same(what: &str, expected: &Yaml, got: &Json, out: &mut Vec<String>) {
    let (e, g) = (yaml_text(expected), json_text(got));
    if e == g {
        return;
    }
    let hint = match (e.parse::<f64>(), g.parse::<f64>()) {
        (Ok(a), Ok(b)) if a == b => {
            " (quote decimals in YAML, \"100.00\": a bare 100.00 is the number 100.0)"
        }
        _ => "",
    };
    out.push(format!("{what}: expected {e}, got {g}{hint}"));
}

fn yaml_text(v: &Yaml) -> String {
    match v {
        Yaml::Null => "null".into(),
        Yaml::Bool(b) => b.to_string(),
        Yaml::Number(n) => n.to_string(),
        Yaml::String(s) => s.clone(),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

fn json_text(v: &Json) -> String {
    match v {
        Json::Null => "null".into(),
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expect(yaml: &str) -> ExpectSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn every_difference_is_one_line() {
        let got = serde_json::json!({
            "value": "3694.46",
            "exclusions": [{"metric": "bookings", "name": "deleted", "rows": 1, "value": "500.00"}],
            "tallies": [{"metric": "bookings", "universe_rows": 9}],
            "rows": [{"period": "2025-02", "value": "1.00"}, {"period": "2025-03", "value": "2.00"}]
        });
        let e = expect(
            "value: '3694.47'\nexclusions: {deleted: {rows: 2, value: '500.00'}, test: {rows: 0}}\n\
             tallies: {universe_rows: 9}\nrows: [{period: '2025-02', value: '1.00'}, {period: '2025-04', value: '2.00'}]",
        );
        assert_eq!(
            metric("bookings", &e, &got),
            [
                "value: expected 3694.47, got 3694.46",
                "exclusions.deleted.rows: expected 2, got 1",
                "exclusions.test: the result has no such exclusion (it has: deleted)",
                "rows: expected a row period=2025-04 value=2.00, not in the result",
                "rows: the result has a row period=2025-03 value=2.00 not expected",
            ]
        );
        let got = serde_json::json!({"value": "100.00"});
        let e = expect("value: 100.00");
        assert_eq!(
            metric("bookings", &e, &got),
            [
                "value: expected 100.0, got 100.00 (quote decimals in YAML, \"100.00\": a bare 100.00 is the number 100.0)"
            ]
        );
    }
}
