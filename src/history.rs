//! The history of published numbers: every publication appends one row per
//! metric and period it published to `history.jsonl`, kept inside the
//! publication and carried into the next one (so the atomic switch that
//! replaces a publication replaces its history with a longer one, never a
//! shorter one). `canon history` reads it back: how one number changed
//! between publications, and whether its definition (the closure's sha256)
//! or its data (the inputs' sha256) moved it.
//!
//! Two warnings are judged as a row is appended, printed by publish and
//! kept in the manifest and the row: a *restated closed period* (a number
//! of a period whose accounting periods are all closed, finance's
//! `is_closed`, that differs from its last publication), and an *unusual
//! move* (a number outside median ± 3 MAD of its own last 8 publications,
//! when there are at least 4), the mark a broken extract leaves before a
//! board deck does.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::calendar::Period;
use crate::decimal::Dec;
use crate::error::{CanonError, Result};
use crate::run::Engine;

/// The file, inside a publication.
pub const FILE: &str = "history.jsonl";

/// How many past publications the unusual-move check looks at, and how
/// many it needs.
const WINDOW: usize = 8;
const AT_LEAST: usize = 4;

/// One published number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    pub metric: String,
    pub period: String,
    /// The slice (`country=DE`); publications carry totals, so none today.
    #[serde(default)]
    pub slice: Option<String>,
    pub value: Option<Dec>,
    pub definition_version: u32,
    /// The sha256 of the definition's closure (what a sign-off approves).
    pub definition_sha256: String,
    /// The sha256 of the input files' contents, in lineage order.
    pub inputs_sha256: String,
    /// The result's fingerprint (definitions, request and inputs).
    pub fingerprint: String,
    pub published_at: String,
    /// The warnings judged when it was published.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Why this publication gave no number (a gate, the sign-off, a period
    /// the metric cannot answer): the row has no value, definition or
    /// inputs. Without it the number published before would read as the
    /// one standing after a blocked publication, and still after a later
    /// one that left the metric out (`publish --only`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked: Option<String>,
    /// With `blocked`: the result had no final value yet (a conversion
    /// window still open), rather than a fault.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
    /// The period's days as published (`2025-02-01..2025-05-01`, the end
    /// excluded): its label read with a fiscal calendar changed since
    /// would name other days. None in rows of a canon before these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<String>,
    /// A number to date: how far the data reached when it was published,
    /// before its period ended (`result::reach`). Its next publication
    /// may differ without anything having been restated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_through: Option<String>,
}

impl Row {
    /// The row of a result `published_at` blocked for `period` (its label
    /// and days), and why.
    pub fn blocked(
        metric: &str,
        (period, days): (&str, String),
        published_at: &str,
        why: String,
    ) -> Row {
        Row {
            metric: metric.to_owned(),
            period: period.to_owned(),
            days: Some(days),
            data_through: None,
            slice: None,
            value: None,
            definition_version: 0,
            definition_sha256: String::new(),
            inputs_sha256: String::new(),
            fingerprint: String::new(),
            published_at: published_at.to_owned(),
            warnings: Vec::new(),
            blocked: Some(why),
            pending: false,
        }
    }
}

/// The history in publication `dir` (none when it has no history yet).
/// A line that does not read is an error naming it, and so is a history
/// its publication's manifest says is there but is not, or holds another
/// number of rows than it wrote: the history is never dropped, started
/// again or rewritten short.
pub fn read(dir: &Path) -> Result<Vec<Row>> {
    let path = dir.join(FILE);
    let damaged = |why: String| {
        crate::publish_dir::damaged_saying(
            &path,
            format!(
                "{why}; canon keeps the history whole: restore it (from a backup of the \
                 publication), then publish again"
            ),
        )
    };
    // No manifest: no publication here yet (or one killed before it was
    // whole, which the next publish replaces). One that cannot be read
    // leaves the history unguarded, so it is an error, not "no history".
    let manifest = crate::publish_dir::read_manifest(dir)?;
    let listed = manifest.as_ref().is_some_and(|m| {
        m["files"]
            .as_array()
            .is_some_and(|files| files.iter().any(|f| f.as_str() == Some(FILE)))
    });
    let written = manifest.as_ref().and_then(|m| m["history_rows"].as_u64());
    let sealed = manifest
        .as_ref()
        .and_then(|m| m["history_sha256"].as_str().map(str::to_owned));
    match std::fs::metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !listed => return Ok(Vec::new()),
        // A history without the manifest that counts and seals it cannot
        // be checked (`canon publish` refuses such a folder too).
        Ok(_) if manifest.is_none() => {
            return Err(crate::publish_dir::damaged(
                &dir.join("manifest.json"),
                "it is missing, and the history beside it cannot be checked without it (it \
                 records how many rows the history holds and their sha256)"
                    .to_string(),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(damaged(
                "it is missing, and the publication's manifest lists it".to_string(),
            ));
        }
        Err(e) => return Err(CanonError::io(&path, e)),
        // A pipe would block the read forever.
        Ok(meta) if !meta.is_file() => {
            return Err(damaged("it is not a regular file".to_string()));
        }
        Ok(_) => {}
    }
    let bytes = std::fs::read(&path).map_err(|e| CanonError::io(&path, e))?;
    let edited = sealed.is_some_and(|sealed| sealed != sha256_hex(&bytes));
    let mut rows = Vec::new();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = std::str::from_utf8(line)
            .map_err(|e| damaged(format!("line {}: not UTF-8 ({e})", i + 1)))?;
        if line.trim().is_empty() {
            continue;
        }
        let row = serde_json::from_str(line)
            .map_err(|e| damaged(format!("line {}: a history row does not read ({e})", i + 1)))?;
        rows.push(row);
    }
    if let Some(written) = written
        && written != rows.len() as u64
    {
        return Err(damaged(format!(
            "it holds {} row(s), and the publication wrote {written}",
            rows.len()
        )));
    }
    if edited {
        return Err(damaged(
            "its bytes are not those the publication wrote (its sha256 differs from the \
             manifest's history_sha256: a row was edited)"
                .to_string(),
        ));
    }
    Ok(rows)
}

/// `rows`, the history of a publication whose `manifest` may come from a
/// canon that kept its blocks there only: each such block made a row
/// (stamped when that publication was), so that the next publication,
/// whose manifest is new, does not drop it and let the number before it
/// read as the one standing.
pub fn with_manifest_blocks(
    mut rows: Vec<Row>,
    manifest: Option<&serde_json::Value>,
    calendar: &crate::calendar::Calendar,
) -> Vec<Row> {
    let Some(manifest) = manifest else {
        return rows;
    };
    let when = manifest["generated_at"].as_str().unwrap_or_default();
    // The days the manifest recorded for each period, else its label read.
    let days = |label: &str| {
        manifest["periods"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["label"] == label)
            .and_then(|p| Some(format!("{}..{}", p["from"].as_str()?, p["to"].as_str()?)))
            .unwrap_or_else(|| period_key(calendar, label))
    };
    for (metric, period, reason) in crate::publish_dir::blocked_entries(manifest) {
        let recorded = rows.iter().any(|r| {
            r.metric == metric
                && r.period == period
                && r.published_at == when
                && r.blocked.is_some()
        });
        if !recorded {
            let row = Row::blocked(metric, (period, days(period)), when, reason.to_owned());
            rows.push(row);
        }
    }
    rows
}

/// The sha256 of `bytes`, in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

/// Rows as JSON Lines.
pub fn to_jsonl<T: serde::Serialize>(rows: &[T]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for r in rows {
        serde_json::to_writer(&mut out, r)
            .map_err(|e| CanonError::Internal(format!("a row as JSON: {e}")))?;
        out.push(b'\n');
    }
    Ok(out)
}

/// The sha256 of the input files a result read (their own hashes, in
/// lineage order): the data a number was computed over.
pub fn inputs_sha256(lineage: &crate::result::Lineage) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for s in &lineage.sources {
        for f in &s.files {
            h.update(f.identity().as_bytes());
        }
    }
    hex::encode(h.finalize())
}

/// The days of `period` as a row records them (`2025-02-01..2025-05-01`).
pub fn days_of(period: &Period) -> String {
    format!("{}..{}", period.from, period.to)
}

/// Where the history's rows of one period meet, however each was written
/// (`FY2026-Q1`, `2025-02-01..2025-05-01`): the days `label` names with
/// today's calendar, or the label itself when the calendar cannot read it.
/// For a row of a canon that did not record its days ([`Row::days`]).
pub fn period_key(calendar: &crate::calendar::Calendar, label: &str) -> String {
    calendar
        .parse_period(label)
        .map_or_else(|_| label.to_owned(), |p| days_of(&p))
}

impl Row {
    /// The days of this row's period: as published, or for a row of an
    /// older canon, its label read with today's calendar.
    pub fn period_days(&self, calendar: &crate::calendar::Calendar) -> String {
        self.days
            .clone()
            .unwrap_or_else(|| period_key(calendar, &self.period))
    }
}

/// The warnings for `new`, given the rows published before it (oldest
/// first), whether its period is closed in the books, and which period
/// labels name its days (`same_period`: a restatement of FY2026-Q1
/// published as 2025-02-01..2025-05-01 is one all the same).
pub fn judge(
    before: &[Row],
    new: &Row,
    closed: bool,
    same_period: &dyn Fn(&Row) -> bool,
) -> Vec<String> {
    // A number to date moves as its period runs: nothing to judge in it,
    // unless the books say the period is closed, which a period the data
    // has not passed cannot be.
    if let Some(through) = &new.data_through {
        return match closed {
            true => vec![format!(
                "closed period published to date: `{}` for {} is {}, over data reaching {through}, before the period ended, though its accounting periods are closed",
                new.metric,
                new.period,
                shown(new.value)
            )],
            false => Vec::new(),
        };
    }
    // Numbers only: a blocked publication has none to compare, and one to
    // date was not yet the period's (its final number restates nothing).
    let same: Vec<&Row> = before
        .iter()
        .filter(|r| r.metric == new.metric && r.slice == new.slice && same_period(r))
        .filter(|r| r.blocked.is_none() && r.data_through.is_none())
        .collect();
    let mut out = Vec::new();
    if let Some(last) = same.last()
        && closed
        && last.value != new.value
    {
        out.push(format!(
            "restated closed period: `{}` for {} was {} when published at {}, now {} (its accounting periods are closed)",
            new.metric,
            new.period,
            shown(last.value),
            last.published_at,
            shown(new.value)
        ));
    }
    let recent: Vec<Dec> = same
        .iter()
        .rev()
        .take(WINDOW)
        .filter_map(|r| r.value)
        .collect();
    if let (Some(v), true) = (new.value, recent.len() >= AT_LEAST)
        && let Some((median, mad)) = unusual(&recent, v)
    {
        out.push(format!(
            "unusual move: `{}` for {} is {}, outside median ± 3 MAD of its last {} publications ({} ± 3 × {})",
            new.metric,
            new.period,
            v.grouped(),
            recent.len(),
            median,
            mad
        ));
    }
    out
}

/// When `v` lies outside median ± 3 MAD of `values`: (median, MAD) as text.
/// Exact: values on one scale as integers, doubled so a median of two is
/// whole.
fn unusual(values: &[Dec], v: Dec) -> Option<(String, String)> {
    let scale = values
        .iter()
        .chain([&v])
        .map(|d| d.scale)
        .max()
        .unwrap_or(0);
    let units = |d: Dec| d.rescale(scale).units;
    // 2 × the median of xs.
    let median2 = |mut xs: Vec<i128>| -> i128 {
        xs.sort_unstable();
        let n = xs.len();
        if n % 2 == 1 {
            2 * xs[n / 2]
        } else {
            xs[n / 2 - 1] + xs[n / 2]
        }
    };
    let m2 = median2(values.iter().map(|d| units(*d)).collect());
    // Deviations doubled; their median doubled again: 4 × MAD.
    let mad4 = median2(values.iter().map(|d| (2 * units(*d) - m2).abs()).collect());
    let off4 = 2 * (2 * units(v) - m2).abs();
    let outside = if mad4 == 0 { off4 > 0 } else { off4 > 3 * mad4 };
    outside.then(|| {
        (
            Dec::new(m2, scale)
                .div(Dec::from_int(2), scale)
                .map(Dec::grouped)
                .unwrap_or_default(),
            Dec::new(mad4, scale)
                .div(Dec::from_int(4), scale + 1)
                .map(Dec::grouped)
                .unwrap_or_default(),
        )
    })
}

fn shown(v: Option<Dec>) -> String {
    v.map(Dec::grouped).unwrap_or_else(|| "no value".into())
}

/// Which of `periods` are closed in the books: every accounting period
/// (the `accounting_period` entity: start_date, end_date inclusive,
/// is_closed) that overlaps it is closed, and there is at least one. A
/// project without such an entity closes nothing.
pub async fn closed(engine: &Engine, periods: &[Period]) -> Result<BTreeMap<String, bool>> {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::Date32Type;
    let mut out: BTreeMap<String, bool> =
        periods.iter().map(|p| (p.label.clone(), false)).collect();
    let Some((_, _, spec)) = engine.catalog.entity("accounting_period") else {
        return Ok(out);
    };
    let has = |f: &str| spec.fields.iter().any(|x| x.name == f);
    if !(has("start_date") && has("end_date") && has("is_closed")) {
        return Ok(out);
    }
    let frame = engine
        .entity_frame("accounting_period")
        .await?
        .select_columns(&["start_date", "end_date", "is_closed"])?;
    let batches = crate::run::memory::WithinMemory::collect_within_memory(frame).await?;
    let mut books = Vec::new();
    for b in &batches {
        let (Some(start), Some(end), Some(is_closed)) = (
            b.column(0).as_primitive_opt::<Date32Type>(),
            b.column(1).as_primitive_opt::<Date32Type>(),
            b.column(2).as_boolean_opt(),
        ) else {
            return Ok(out);
        };
        for i in 0..b.num_rows() {
            if start.is_null(i) || end.is_null(i) {
                continue;
            }
            let day = |v: i32| chrono::NaiveDate::from_num_days_from_ce_opt(v + 719_163);
            if let (Some(s), Some(e)) = (day(start.value(i)), day(end.value(i))) {
                books.push((s, e, !is_closed.is_null(i) && is_closed.value(i)));
            }
        }
    }
    for p in periods {
        let overlapping: Vec<bool> = books
            .iter()
            .filter(|(s, e, _)| *s < p.to && *e >= p.from)
            .map(|(_, _, c)| *c)
            .collect();
        out.insert(
            p.label.clone(),
            !overlapping.is_empty() && overlapping.iter().all(|c| *c),
        );
    }
    Ok(out)
}

/// `canon history`: one number's publications, oldest first, each with its
/// change from the one before and what moved it.
pub fn explain(rows: &[Row], metric: &str, period: &str, shown_path: &str) -> String {
    let mine: Vec<&Row> = rows
        .iter()
        .filter(|r| r.metric == metric && r.period == period && r.slice.is_none())
        .collect();
    let mut out = format!(
        "{metric} {period}: {} publication(s) in {shown_path}\n",
        mine.len()
    );
    if mine.is_empty() {
        return out;
    }
    out.push_str(&format!(
        "{:<26} {:>18} {:>16}  {:<18} {:<12} {}\n",
        "published at", "value", "change", "definition", "inputs", "moved by"
    ));
    // The change is from the last number published: a blocked
    // publication in between has none.
    let mut previous: Option<&Row> = None;
    for r in &mine {
        if let Some(why) = &r.blocked {
            let said = if r.pending { "pending" } else { "blocked" };
            out.push_str(&format!("{:<26} {:>18}\n", r.published_at, said));
            // A reason of several lines stays under its row; control
            // characters (a hand-edited sign-off's) are shown, not sent.
            let why: String = why
                .chars()
                .flat_map(|c| match c {
                    '\n' => format!("\n{:<26}          ", "")
                        .chars()
                        .collect::<Vec<_>>(),
                    c if c.is_control() => c.escape_default().collect(),
                    c => vec![c],
                })
                .collect();
            out.push_str(&format!("{:<26} {said}: {why}\n", ""));
            continue;
        }
        let (change, moved) = match previous {
            None => (String::new(), String::new()),
            Some(p) => {
                let change = match (p.value, r.value) {
                    (Some(a), Some(b)) if a == b => "0".to_string(),
                    (Some(a), Some(b)) => {
                        let d = b - a;
                        let g = d.grouped();
                        if g.starts_with('-') {
                            g
                        } else {
                            format!("+{g}")
                        }
                    }
                    _ => "—".to_string(),
                };
                let definition = p.definition_sha256 != r.definition_sha256
                    || p.definition_version != r.definition_version;
                let data = p.inputs_sha256 != r.inputs_sha256;
                let moved = match (p.value == r.value, definition, data) {
                    (true, _, _) => "",
                    (false, true, true) => "definition and data",
                    (false, true, false) => "definition",
                    (false, false, true) => "data",
                    (false, false, false) => "neither (the engine?)",
                };
                (change, moved.to_string())
            }
        };
        out.push_str(&format!(
            "{:<26} {:>18} {:>16}  v{:<3}{:<14} {:<12} {}\n",
            r.published_at,
            shown(r.value),
            change,
            r.definition_version,
            r.definition_sha256.chars().take(12).collect::<String>(),
            r.inputs_sha256.chars().take(10).collect::<String>(),
            moved
        ));
        if let Some(through) = &r.data_through {
            out.push_str(&format!(
                "{:<26} to date: the data reached {through}, before the period ended\n",
                ""
            ));
        }
        for w in &r.warnings {
            out.push_str(&format!("{:<26} warning: {w}\n", ""));
        }
        previous = Some(r);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q1(row: &Row) -> bool {
        row.period == "FY2026-Q1"
    }

    fn row(value: &str) -> Row {
        Row {
            metric: "bookings".into(),
            period: "FY2026-Q1".into(),
            slice: None,
            value: Some(value.parse().unwrap()),
            definition_version: 1,
            definition_sha256: "d".into(),
            inputs_sha256: "i".into(),
            fingerprint: "f".into(),
            published_at: "t".into(),
            warnings: vec![],
            blocked: None,
            pending: false,
            days: None,
            data_through: None,
        }
    }

    // Past values 100, 102, 98, 101, 99: median 100, deviations 0, 2, 2,
    // 1, 1 → MAD 1. 103 is 3 from the median (not beyond 3 × 1): usual;
    // 103.01 is beyond it.
    #[test]
    fn an_unusual_move_is_beyond_three_mads_of_its_own_history() {
        let past: Vec<Row> = ["100.00", "102.00", "98.00", "101.00", "99.00"]
            .iter()
            .map(|v| row(v))
            .collect();
        assert!(judge(&past, &row("103.00"), false, &q1).is_empty());
        assert_eq!(
            judge(&past, &row("103.01"), false, &q1),
            [
                "unusual move: `bookings` for FY2026-Q1 is 103.01, outside median ± 3 MAD of its last 5 publications (100.00 ± 3 × 1.000)"
            ]
        );
        // Three past values are too few to judge.
        assert!(judge(&past[..3], &row("500.00"), false, &q1).is_empty());
        // A value that never moved: any move is unusual.
        let flat: Vec<Row> = (0..4).map(|_| row("10.00")).collect();
        assert_eq!(judge(&flat, &row("10.01"), false, &q1).len(), 1);
        assert!(judge(&flat, &row("10.00"), false, &q1).is_empty());
    }

    #[test]
    fn a_closed_period_that_changes_is_a_restatement() {
        let past = vec![row("100.00")];
        assert_eq!(
            judge(&past, &row("90.00"), true, &q1),
            [
                "restated closed period: `bookings` for FY2026-Q1 was 100.00 when published at t, now 90.00 (its accounting periods are closed)"
            ]
        );
        assert!(judge(&past, &row("90.00"), false, &q1).is_empty());
        assert!(judge(&past, &row("100.00"), true, &q1).is_empty());
        // A blocked publication in between has no number: the restatement
        // is judged against the last one published (100.00), and a
        // number equal to it is none.
        let quarter = Period {
            label: "FY2026-Q1".into(),
            from: chrono::NaiveDate::from_ymd_opt(2025, 2, 1).unwrap(),
            to: chrono::NaiveDate::from_ymd_opt(2025, 5, 1).unwrap(),
        };
        let blocked = Row::blocked(
            "bookings",
            (&quarter.label, days_of(&quarter)),
            "t2",
            "a gate".into(),
        );
        let past = vec![row("100.00"), blocked];
        assert_eq!(judge(&past, &row("90.00"), true, &q1).len(), 1);
        assert!(judge(&past, &row("100.00"), true, &q1).is_empty());
    }

    // A number published to date (its period ran past the data) is not the
    // period's: the final one that follows restates nothing, and moves of
    // numbers to date are not unusual (a quarter to date grows).
    #[test]
    fn a_number_to_date_is_neither_restated_nor_unusual() {
        let to_date = |v: &str| {
            let mut r = row(v);
            r.data_through = Some("2026-01-01T23:47:50-08:00".into());
            r
        };
        assert!(judge(&[to_date("50.00")], &row("90.00"), true, &q1).is_empty());
        // Books closed over data that does not reach the period's end: said.
        assert_eq!(
            judge(&[row("100.00")], &to_date("50.00"), true, &q1),
            [
                "closed period published to date: `bookings` for FY2026-Q1 is 50.00, over data reaching 2026-01-01T23:47:50-08:00, before the period ended, though its accounting periods are closed"
            ]
        );
        assert!(judge(&[row("100.00")], &to_date("50.00"), false, &q1).is_empty());
        // Judged against the last complete publication only: 100.00.
        assert_eq!(
            judge(&[row("100.00"), to_date("50.00")], &row("90.00"), true, &q1).len(),
            1
        );
        let growing: Vec<Row> = ["10.00", "20.00", "30.00", "40.00"]
            .iter()
            .map(|v| to_date(v))
            .collect();
        assert!(judge(&growing, &to_date("400.00"), false, &q1).is_empty());
        assert!(judge(&growing, &row("400.00"), false, &q1).is_empty());
    }

    // A reason of several lines stayed unindented and control characters
    // reached the terminal; a sha256 edited to hold a multi-byte character
    // panicked the byte slice (exit 101).
    #[test]
    fn explain_shows_any_text_without_breaking() {
        let mut odd = row("1.00");
        odd.definition_sha256 = "aéééééééééééé".into();
        odd.inputs_sha256 = "ü".repeat(20);
        let why = "first line\nsecond \u{1b}[31mRED".to_string();
        let blocked = Row::blocked("bookings", ("FY2026-Q1", "d".into()), "t2", why);
        let text = explain(&[odd, blocked], "bookings", "FY2026-Q1", "h");
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[2].contains("aééééééééééé "), "{text}");
        assert_eq!(lines[4].trim(), "blocked: first line", "{text}");
        assert_eq!(lines[5].trim(), "second \\u{1b}[31mRED", "{text}");
        assert!(lines[5].starts_with("     "), "{text}");
    }
}
