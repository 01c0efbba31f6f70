//! `canon publish`: every certified metric and every reconciliation for the
//! configured periods, as files BI tools read without help.
//!
//! The publication is built in a temporary folder beside the target, every
//! file and folder synced, manifest last, and then switched in by one atomic
//! exchange of the two folders (Linux `renameat2(RENAME_EXCHANGE)`): a
//! reader sees the old publication or the new one, never a missing or
//! half-written folder, and a run killed at any step leaves the previous
//! publication intact. The next run removes what a killed one left behind.
//!
//! canon only ever replaces what it created: the target must be absent,
//! empty, or a canon publication (its marker file, and nothing its manifest
//! does not list). A metric whose inputs fail a quality gate is published
//! as `blocked` with its reason and no value, never silently.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Decimal128Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use serde::Serialize;

use crate::calendar::Period;
use crate::error::{CanonError, Result};
use crate::request::Request;
use crate::result::GovernedResult;
use crate::result::flat::{Entry, Shape, Unanswered};
use crate::result::render::Format;
use crate::run::Engine;
use crate::spec::MetricStatus;

/// One published metric × period in the manifest.
#[derive(Debug, Clone, Serialize)]
pub struct ManifestEntry {
    pub metric: String,
    pub period: String,
    /// `published`, `blocked`, or `pending` (no final value yet: a
    /// conversion whose window has not closed; it does not fail the publish).
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `false` for a number to date: the period runs past what the data
    /// reaches (`data_through`); `true` when the period is over; absent
    /// for a period without a number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub complete: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_through: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub definition: Option<crate::result::DefinitionRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality_status: Option<String>,
    /// Gates at error this result was let through by name (`--allow
    /// GATE:TABLE`, `allow_stale`): a published number never hides one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<String>,
}

impl ManifestEntry {
    /// An entry for a metric or reconciliation that has no value for `period`:
    /// `pending` when it has none yet (an open conversion window), else
    /// `blocked`.
    fn blocked(name: &str, period: &Period, why: &CanonError) -> ManifestEntry {
        let pending = matches!(why, CanonError::Pending(_));
        ManifestEntry {
            metric: name.to_string(),
            period: period.label.clone(),
            status: if pending { "pending" } else { "blocked" }.into(),
            reason: Some(why.to_string()),
            value: None,
            complete: None,
            data_through: None,
            definition: None,
            fingerprint: None,
            quality_status: None,
            overrides: Vec::new(),
        }
    }

    /// A blocked metric's row in the history, so that the number published
    /// before it is not read as the one standing.
    fn history_row(&self, period: &Period, published_at: &str) -> crate::history::Row {
        let mut row = crate::history::Row::blocked(
            &self.metric,
            (&period.label, crate::history::days_of(period)),
            published_at,
            self.reason.clone().unwrap_or_default(),
        );
        row.pending = self.status == "pending";
        row
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub generated_at: String,
    /// What the history says about the numbers just published: restated
    /// closed periods, unusual moves (`history::judge`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    pub now: String,
    pub engine: crate::result::Engine,
    pub periods: Vec<Period>,
    pub metrics: Vec<ManifestEntry>,
    pub reconciliations: Vec<ManifestEntry>,
    pub files: Vec<String>,
    /// How many rows history.jsonl held as written, and the sha256 of its
    /// bytes: the next publish and `canon history` refuse a history lost,
    /// cut, lengthened or edited, instead of starting it again from nothing
    /// or carrying an edited number forward.
    pub history_rows: usize,
    pub history_sha256: String,
    /// The sha256 of lineage.jsonl's bytes: `canon docs` shows a
    /// publication's inputs from it, so a file edited, emptied or removed
    /// is refused, not shown as the evidence.
    pub lineage_sha256: String,
}

impl Manifest {
    /// The results published as blocked (metrics, then reconciliations).
    pub fn blocked(&self) -> impl Iterator<Item = &ManifestEntry> {
        self.metrics
            .iter()
            .chain(&self.reconciliations)
            .filter(|e| e.status == "blocked")
    }
}

/// Publishes into `out`; returns the manifest. `only`, when not empty,
/// limits the publication to those metrics and reconciliations.
pub async fn publish(
    engine: &Engine,
    out: &Path,
    periods: &[Period],
    only: &[String],
) -> Result<Manifest> {
    let catalog = engine.catalog.clone();
    for name in only {
        let known = catalog.metrics.contains_key(name)
            || catalog
                .files
                .metrics
                .iter()
                .any(|f| f.spec.reconciliations.iter().any(|r| &r.name == name));
        if !known {
            return Err(CanonError::request(format!(
                "--only {name}: not a metric or reconciliation"
            )));
        }
        if let Ok((_, _, m)) = catalog.metric(name)
            && m.status != MetricStatus::Certified
        {
            return Err(CanonError::request(format!(
                "--only {name}: `{name}` is {}, and publish carries certified metrics only",
                m.status.name()
            )));
        }
    }
    // A count to date is an analyst's question (`canon query --allow`), not
    // a number to publish beside final ones: the files carry no mark of it.
    if engine.allow.names_gate(crate::quality::window::CHECK) {
        return Err(CanonError::request(format!(
            "--allow {}:…: publish carries final numbers only; a conversion whose window is \
             open is published as pending and given once it closes (`canon query --allow` \
             computes a count to date)",
            crate::quality::window::CHECK
        )));
    }
    let root = match &engine.data {
        crate::run::DataSource::Folder(root) => Some(root.clone()),
        // A store's objects cannot be under a local `out`; the project's
        // definitions and caches still can.
        crate::run::DataSource::Store(store) => Some(std::path::PathBuf::from(store.url())),
        crate::run::DataSource::Empty => None,
    };
    if let Some(root) = root {
        let cache = engine.fingerprints().map(|c| c.dir().to_path_buf());
        crate::protect::Protected::of_project(&catalog, &root, cache.as_deref()).check_out(out)?;
    }
    let target = crate::publish_dir::Target::claim(out, &crate::publish_dir::PUBLICATION)?;
    // The history so far, carried into the new publication (a history that
    // does not read stops the publish before anything is staged).
    let history = crate::history::with_manifest_blocks(
        crate::history::read(out)?,
        crate::publish_dir::read_manifest(out)?.as_ref(),
        &catalog.calendar,
    );
    let tmp = target.staging()?;
    let wanted = |n: &str| only.is_empty() || only.iter().any(|o| o == n);
    let result = build(engine, &catalog, &tmp, periods, &wanted, history)
        .await
        .and_then(|manifest| volume_allows(engine).map(|()| manifest));
    match result {
        Ok(manifest) => {
            target.switch(&tmp)?;
            Ok(manifest)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(e)
        }
    }
}

/// A table that lost more rows than its volume gate allows since canon last
/// saw it, or whose last count is unknown (an unreadable state file), blocks the whole publication (BI tools would read a number over
/// half the data as if it were whole) unless the run allows it by name.
fn volume_allows(engine: &Engine) -> Result<()> {
    let Some(tracker) = &engine.volume else {
        return Ok(());
    };
    let blocking = tracker.blocking();
    if blocking.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = blocking
        .iter()
        .map(|(table, detail)| format!("{table} volume ({detail})"))
        .collect();
    let remedies: Vec<String> = blocking
        .iter()
        .map(|(table, _)| crate::allow::Allow::hint(crate::quality::volume::CHECK, table))
        .collect();
    Err(CanonError::Blocked(format!(
        "publish is blocked: {} table(s) lost more rows than allowed since canon last saw them, or have no readable last count:\n  {}\n(nothing was published; check the extracts, then pass {} to publish over the new counts)",
        blocking.len(),
        lines.join("\n  "),
        remedies.join(" ")
    )))
}

async fn build(
    engine: &Engine,
    catalog: &crate::catalog::Catalog,
    dir: &Path,
    periods: &[Period],
    wanted: &dyn Fn(&str) -> bool,
    mut history: Vec<crate::history::Row>,
) -> Result<Manifest> {
    let generated_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let closed = crate::history::closed(engine, periods).await?;
    let mut warnings = Vec::new();
    for sub in crate::publish_dir::PUBLICATION_FOLDERS {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d).map_err(|e| CanonError::io(&d, e))?;
    }
    let mut files = Vec::new();
    let mut entries = Vec::new();
    let mut exclusion_rows: Vec<ExclusionRow> = Vec::new();
    let mut lineage: Vec<LineageRow> = Vec::new();
    let judge = crate::lifecycle::Judge::for_run(engine)?;
    let mut written: Vec<(String, Vec<Answer>)> = Vec::new();
    // The days each period label of the history's older rows (those that
    // did not record their days) names, read once: a period's rows meet
    // however each was written.
    let keys: std::collections::HashMap<String, String> = history
        .iter()
        .filter(|r| r.days.is_none())
        .map(|r| r.period.as_str())
        .collect::<std::collections::HashSet<&str>>()
        .into_iter()
        .map(|label| {
            let key = crate::history::period_key(&catalog.calendar, label);
            (label.to_owned(), key)
        })
        .collect();
    let days_of = |row: &crate::history::Row| -> Option<String> {
        row.days.clone().or_else(|| keys.get(&row.period).cloned())
    };
    for name in catalog.metrics.keys() {
        let (_, _, spec) = catalog.metric(name)?;
        if spec.status != MetricStatus::Certified || !wanted(name) {
            continue;
        }
        // A certified number is published only as the definition its
        // sign-off approved: otherwise blocked, with the reason, in every
        // period (never left out silently).
        let lifecycle = judge.lifecycle(name).await?;
        // Every period has its row in the metric's files, a number or why
        // there is none (`result::flat`).
        let unanswered = |period: &Period, entry: &ManifestEntry| Unanswered {
            metric: name.clone(),
            period: period.clone(),
            state: crate::result::flat::is_state(spec.kind.name()),
            unit: spec.unit.clone(),
            status: entry.status.clone(),
            reason: entry.reason.clone().unwrap_or_default(),
        };
        let mut answers: Vec<Answer> = Vec::new();
        if let Some(why) = lifecycle.blocked_reason(name) {
            tracing::warn!(metric = %name, "{why}");
            for period in periods {
                let entry = ManifestEntry::blocked(name, period, &CanonError::Blocked(why.clone()));
                history.push(entry.history_row(period, &generated_at));
                answers.push(Answer::Not(unanswered(period, &entry)));
                entries.push(entry);
            }
            written.push((name.clone(), answers));
            continue;
        }
        for period in periods {
            tracing::info!(metric = %name, period = %period.label, "publishing");
            let request = catalog.resolve(Request::of_period(period.clone()))?;
            match crate::query::run_metric(engine, name, &request).await {
                Ok(r) => {
                    for x in &r.exclusions {
                        exclusion_rows.push(ExclusionRow {
                            metric: name.clone(),
                            part: (x.metric != *name).then(|| x.metric.clone()),
                            period: period.label.clone(),
                            exclusion: x.name.clone(),
                            rows: x.rows,
                            value: x.value,
                            complete: r.complete,
                        });
                    }
                    let mut row = crate::history::Row {
                        metric: name.clone(),
                        period: period.label.clone(),
                        slice: None,
                        value: r.value,
                        definition_version: r.definition.version,
                        definition_sha256: r
                            .lifecycle
                            .as_ref()
                            .and_then(|l| l.signoff.as_ref())
                            .map(|s| s.closure_sha256.clone())
                            .unwrap_or_default(),
                        inputs_sha256: crate::history::inputs_sha256(&r.lineage),
                        fingerprint: r.fingerprint.clone(),
                        published_at: generated_at.clone(),
                        warnings: Vec::new(),
                        pending: false,
                        blocked: None,
                        days: Some(crate::history::days_of(period)),
                        data_through: r.data_through.clone(),
                    };
                    let days = row.days.clone();
                    row.warnings = crate::history::judge(
                        &history,
                        &row,
                        closed.get(&period.label).copied().unwrap_or(false),
                        &|r| days_of(r) == days,
                    );
                    warnings.extend(row.warnings.iter().cloned());
                    history.push(row);
                    lineage.push(LineageRow {
                        metric: name.clone(),
                        part: None,
                        period: period.label.clone(),
                        lineage: anchored(r.lineage.clone()),
                    });
                    entries.push(ManifestEntry {
                        metric: name.clone(),
                        period: period.label.clone(),
                        status: "published".into(),
                        // A published result without a number says why.
                        reason: r
                            .value
                            .is_none()
                            .then(|| crate::result::flat::no_value(&r.kind).to_string()),
                        value: r.value.map(|v| v.plain()),
                        // Always said for a number (a BI tool reads a
                        // missing key as null, not as true).
                        complete: Some(r.complete),
                        data_through: r.data_through.clone(),
                        definition: Some(r.definition.clone()),
                        fingerprint: Some(r.fingerprint.clone()),
                        quality_status: Some(r.quality_status.clone()),
                        overrides: r.overrides.clone(),
                    });
                    answers.push(Answer::Given(Box::new(r)));
                }
                // A gate or a request the metric cannot answer for this
                // period (e.g. not whole accounting periods) is recorded, not fatal.
                Err(
                    e @ (CanonError::Blocked(_) | CanonError::Pending(_) | CanonError::Request(_)),
                ) => {
                    let entry = ManifestEntry::blocked(name, period, &e);
                    history.push(entry.history_row(period, &generated_at));
                    answers.push(Answer::Not(unanswered(period, &entry)));
                    entries.push(entry);
                }
                Err(e) => return Err(stopped(name, period, e)),
            }
        }
        written.push((name.clone(), answers));
    }
    // One scale for `value` in every metric's file: the largest any value
    // has, and at least a ratio's.
    let scale = written
        .iter()
        .flat_map(|(_, answers)| answers)
        .filter_map(|a| match a {
            Answer::Given(r) => Some(
                r.rows
                    .iter()
                    .filter_map(|row| row.value)
                    .chain(r.value)
                    .map(|v| v.scale)
                    .max()
                    .unwrap_or(0),
            ),
            Answer::Not(_) => None,
        })
        .fold(crate::query::RATIO_SCALE, u32::max);
    let shape = Shape {
        published: true,
        scale: Some(scale),
    };
    for (name, answers) in &written {
        let file: Vec<Entry> = answers
            .iter()
            .map(|a| match a {
                Answer::Given(r) => Entry::Answered(r),
                Answer::Not(u) => Entry::Unanswered(u),
            })
            .collect();
        for (ext, bytes) in [
            ("parquet", crate::result::flat::parquet(&file, shape)?),
            ("csv", crate::result::flat::csv(&file, shape).into_bytes()),
        ] {
            let rel = format!("metrics/{name}.{ext}");
            write(dir, &rel, &bytes)?;
            files.push(rel);
        }
    }
    write(
        dir,
        "exclusions.parquet",
        &exclusions_parquet(&exclusion_rows)?,
    )?;
    files.push("exclusions.parquet".into());

    let mut reconciliations = Vec::new();
    let names: Vec<String> = catalog
        .files
        .metrics
        .iter()
        .flat_map(|f| f.spec.reconciliations.iter().map(|r| r.name.clone()))
        .filter(|n| wanted(n))
        .collect();
    for name in names {
        // A bridge ties its two governed sides: while either one's sign-off
        // does not approve it as it is, neither does the bridge.
        let sides = catalog
            .reconciliation(&name)
            .map(|r| [r.bookings.clone(), r.revenue.clone()])
            .unwrap_or_default();
        // Its own sign-off first (its link rules and lines), then its sides'.
        let mut unapproved = judge.lifecycle(&name).await?.blocked_reason(&name);
        for side in sides
            .iter()
            .filter(|s| !s.is_empty() && unapproved.is_none())
        {
            if let Some(why) = judge.lifecycle(side).await?.blocked_reason(side) {
                unapproved = Some(format!("its side `{side}`: {why}"));
                break;
            }
        }
        if let Some(why) = unapproved {
            tracing::warn!(reconciliation = %name, "{why}");
            for period in periods {
                reconciliations.push(ManifestEntry::blocked(
                    &name,
                    period,
                    &CanonError::Blocked(why.clone()),
                ));
            }
            continue;
        }
        for period in periods {
            match crate::reconcile::run(engine, &name, period, true).await {
                Ok(r) => {
                    let stem = format!("reconciliation/{name}_{}", period.label);
                    for (suffix, detail) in [("bridge", false), ("detail", true)] {
                        let rel = format!("{stem}_{suffix}.parquet");
                        let bytes =
                            crate::result::reconciliation::render(&r, Format::Parquet, detail)?;
                        write(dir, &rel, &bytes)?;
                        files.push(rel);
                    }
                    // A bridge's evidence is its two governed sides'.
                    for side in &r.sides {
                        lineage.push(LineageRow {
                            metric: name.clone(),
                            part: Some(side.metric.clone()),
                            period: period.label.clone(),
                            lineage: anchored(side.lineage.clone()),
                        });
                    }
                    reconciliations.push(ManifestEntry {
                        metric: name.clone(),
                        period: period.label.clone(),
                        status: "published".into(),
                        reason: None,
                        value: Some(r.check.plain()),
                        // To date when either side is.
                        // Always said for a number (a BI tool reads a
                        // missing key as null, not as true).
                        complete: Some(r.complete),
                        data_through: r.data_through.clone(),
                        definition: Some(r.definition.clone()),
                        fingerprint: None,
                        quality_status: None,
                        // Its governed sides' overrides: a bridge let
                        // through a failing gate says so too.
                        overrides: r.sides.iter().fold(Vec::new(), |mut all, side| {
                            for o in &side.overrides {
                                if !all.contains(o) {
                                    all.push(o.clone());
                                }
                            }
                            all
                        }),
                    });
                }
                Err(
                    e @ (CanonError::Blocked(_) | CanonError::Pending(_) | CanonError::Request(_)),
                ) => reconciliations.push(ManifestEntry::blocked(&name, period, &e)),
                Err(e) => {
                    let e = crate::blame::in_reconciliation(catalog, &name, e);
                    return Err(stopped(&name, period, e));
                }
            }
        }
    }
    let lineage_bytes = crate::history::to_jsonl(&lineage)?;
    write(dir, crate::publish_dir::LINEAGE_FILE, &lineage_bytes)?;
    let lineage_sha256 = crate::history::sha256_hex(&lineage_bytes);
    files.push(crate::publish_dir::LINEAGE_FILE.into());
    let history_bytes = crate::history::to_jsonl(&history)?;
    write(dir, crate::history::FILE, &history_bytes)?;
    files.push(crate::history::FILE.into());
    let history_rows = history.len();
    let history_sha256 = crate::history::sha256_hex(&history_bytes);
    let manifest = Manifest {
        generated_at,
        warnings,
        now: engine.now.to_rfc3339(),
        engine: crate::result::Engine::current(),
        periods: periods.to_vec(),
        metrics: entries,
        reconciliations,
        files,
        history_rows,
        history_sha256,
        lineage_sha256,
    };
    let json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| CanonError::Internal(format!("serializing the manifest: {e}")))?;
    // The manifest is written last: its presence means the folder is whole.
    write(dir, "manifest.json", &json)?;
    Ok(manifest)
}

/// A metric's period in a publication: its result, or why it has none.
enum Answer {
    Given(Box<GovernedResult>),
    Not(Unanswered),
}

/// A failure that stops the publication, saying at which metric or
/// reconciliation and period it stopped and that nothing was published.
fn stopped(name: &str, period: &Period, e: CanonError) -> CanonError {
    CanonError::Context {
        context: format!("publish stopped at `{name}` for {}", period.label),
        source: Box::new(e),
        hint: " (nothing was published: the folder is as it was)".into(),
    }
}

/// Writes one file of the publication and syncs it to disk.
fn write(dir: &Path, rel: &str, bytes: &[u8]) -> Result<()> {
    crate::publish_dir::write_synced(&dir.join(rel), bytes)
}

/// One row of exclusions.parquet.
struct ExclusionRow {
    metric: String,
    /// The universe it was taken from when not the metric's own: a
    /// ratio's numerator or denominator, a cohort's T0 members or its
    /// reference at T (summing across parts means nothing).
    part: Option<String>,
    period: String,
    exclusion: String,
    rows: i64,
    value: crate::decimal::Dec,
    /// As the result's: false when its period runs past the data.
    complete: bool,
}

/// One line of [`crate::publish_dir::LINEAGE_FILE`].
#[derive(Serialize)]
struct LineageRow {
    metric: String,
    /// The governed side of a reconciliation; `None` for a metric's own.
    part: Option<String>,
    period: String,
    lineage: crate::result::Lineage,
}

/// A lineage whose local files are named by absolute paths: a
/// publication is read from elsewhere (a BI server, another folder), where
/// `./sample_data/crm/…`, relative to where publish ran, names nothing.
/// Objects in a store keep their URLs.
fn anchored(mut lineage: crate::result::Lineage) -> crate::result::Lineage {
    for file in lineage.sources.iter_mut().flat_map(|s| s.files.iter_mut()) {
        if !file.path.contains("://")
            && let Ok(path) = std::path::absolute(&file.path)
        {
            file.path = path.to_string_lossy().into_owned();
        }
    }
    lineage
}

fn exclusions_parquet(rows: &[ExclusionRow]) -> Result<Vec<u8>> {
    let text = |f: &dyn Fn(&ExclusionRow) -> Option<String>| -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<StringArray>())
    };
    // Money and counts alike at one scale: two decimals, or more when a
    // value has more (never rounded away).
    let scale = rows.iter().map(|r| r.value.scale).fold(2, u32::max);
    let values: Decimal128Array = rows
        .iter()
        .map(|r| Some(r.value.rescale(scale).units))
        .collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("metric", DataType::Utf8, false),
        Field::new("part", DataType::Utf8, true),
        Field::new("period", DataType::Utf8, false),
        // As in the metric files: periods of several kinds may be published.
        Field::new("grain", DataType::Utf8, false),
        Field::new("exclusion", DataType::Utf8, false),
        Field::new("rows", DataType::Int64, false),
        Field::new("value", DataType::Decimal128(38, scale as i8), false),
        Field::new("complete", DataType::Boolean, false),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            text(&|r| Some(r.metric.clone())),
            text(&|r| r.part.clone()),
            text(&|r| Some(r.period.clone())),
            text(&|r| Some(Period::kind_of_label(&r.period).to_string())),
            text(&|r| Some(r.exclusion.clone())),
            Arc::new(rows.iter().map(|r| r.rows).collect::<Int64Array>()),
            Arc::new(values.with_precision_and_scale(38, scale as i8)?),
            Arc::new(
                rows.iter()
                    .map(|r| Some(r.complete))
                    .collect::<datafusion::arrow::array::BooleanArray>(),
            ),
        ],
    )?;
    crate::result::flat::parquet_bytes(&batch)
}
