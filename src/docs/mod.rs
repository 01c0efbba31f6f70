//! `canon docs --out DIR`: the catalog as a static site people read without
//! a terminal: no server, no network, no third-party script. An index with
//! search, and a page per metric: its definition, owner, status, version
//! and sign-off, its exclusions with their latest published tallies, its
//! lineage drawn as a diagram, a chart of its last 8 published periods, and
//! the quality of its inputs at its latest publication. What was published
//! comes from a publication folder (`canon publish --out`): its history,
//! manifest and exclusions; without one the pages say nothing is published.
//!
//! Every text (definitions, owners, file names, data values) goes through
//! [`html::escape`]; the pictures are SVG drawn by canon ([`svg`]).

pub mod html;
pub mod svg;

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use crate::catalog::Catalog;
use crate::decimal::Dec;
use crate::error::{CanonError, Result};
use crate::publish_dir::{DOCS_SITE, Target, damaged};
use crate::run::Engine;
use html::escape;

/// The marker that says a folder is a canon docs site (so a later run may
/// replace it, and nothing else is ever replaced).
pub use crate::publish_dir::DOCS_MARKER as MARKER;

/// What a publication says about one metric.
#[derive(Default)]
struct Published {
    /// (period, value), the latest publication of each period, in period order.
    series: Vec<(String, Option<Dec>)>,
    /// The periods of `series` published to date: how far the data reached.
    to_date: BTreeMap<String, String>,
    /// The latest period's exclusions: (name, rows, value).
    exclusions: Vec<(String, i64, Dec)>,
    latest_period: Option<String>,
    /// The latest period's manifest entry.
    entry: Option<serde_json::Value>,
    /// The periods whose latest publication blocked the metric: (period,
    /// when, reason, pending: no final value yet rather than a fault).
    /// Without them the page would show the number published before as if
    /// it still stood.
    blocked: Vec<(String, String, String, bool)>,
}

/// Writes the site into `out`; returns how many pages. `engine` plans the
/// lineage (its data root, when there is one, lists the files).
///
/// Like a publication, the site is built in a staging folder beside `out`
/// and switched in whole (`publish_dir`): a reader never sees a site half
/// written, a killed run leaves the previous site as it was, the pages of
/// metrics since removed go with the old site, and a folder holding
/// anything `canon docs` did not write is refused, never written into.
pub async fn build(engine: &Engine, publication: Option<&Path>, out: &Path) -> Result<usize> {
    // Read whole first, under the publication's read hold, released before
    // the site's own lock is taken: the two may be one folder's lock.
    let published = match publication {
        Some(dir) => {
            let _held = crate::publish_dir::hold_for_reading(dir);
            read_publication(&engine.catalog, dir)?
        }
        None => BTreeMap::new(),
    };
    let target = Target::claim(out, &DOCS_SITE)?;
    let staged = target.staging()?;
    let built = match write_site(engine, publication, &published, &staged).await {
        Ok(pages) => list_pages(&staged).map(|()| pages),
        Err(e) => Err(e),
    };
    let switched = built.and_then(|pages| target.switch(&staged).map(|()| pages));
    if switched.is_err() {
        target.discard(&staged);
    }
    switched
}

/// Appends the site's pages to its marker: the next run replaces only a
/// site holding exactly those (`publish_dir::DOCS_SITE`), so a page added
/// by hand, even one named like canon's, is never deleted.
fn list_pages(site: &Path) -> Result<()> {
    let marker = site.join(MARKER);
    let mut text = std::fs::read_to_string(&marker).map_err(|e| CanonError::io(&marker, e))?;
    text.push_str(crate::publish_dir::DOCS_PAGES);
    text.push('\n');
    let mut pages = vec!["index.html".to_string()];
    let metrics = site.join("metrics");
    let mut found: Vec<String> = std::fs::read_dir(&metrics)
        .map_err(|e| CanonError::io(&metrics, e))?
        .map(|entry| {
            let entry = entry.map_err(|e| CanonError::io(&metrics, e))?;
            Ok(format!("metrics/{}", entry.file_name().to_string_lossy()))
        })
        .collect::<Result<_>>()?;
    found.sort();
    pages.extend(found);
    for page in pages {
        text.push_str(&page);
        text.push('\n');
    }
    crate::publish_dir::write_synced(&marker, text.as_bytes())
}

/// Writes every page of the site into `out`, a fresh staging folder.
/// `published`: what was read from `publication` (nothing without one).
async fn write_site(
    engine: &Engine,
    publication: Option<&Path>,
    published: &BTreeMap<String, Published>,
    out: &Path,
) -> Result<usize> {
    let catalog = engine.catalog.clone();
    let judge = crate::lifecycle::Judge::new(catalog.clone())?;
    let request = catalog.resolve(
        crate::request::Asked {
            period: Some(
                catalog
                    .clock()?
                    .unwrap_or_else(chrono::Utc::now)
                    .format("%Y-%m")
                    .to_string(),
            ),
            ..Default::default()
        }
        .request(&catalog.calendar)?,
    )?;
    std::fs::create_dir(out.join("metrics")).map_err(|e| CanonError::io(out, e))?;
    let mut index = String::new();
    let mut pages = 0;
    for name in catalog.metrics.keys() {
        let (_, file, m) = catalog.metric(name)?;
        let lifecycle = judge.lifecycle(name).await?;
        let graph = crate::lineage::lineage(engine, name, &request).await?;
        let p = published
            .get(name)
            .map_or_else(Published::default, |p| Published {
                series: p.series.clone(),
                to_date: p.to_date.clone(),
                exclusions: p.exclusions.clone(),
                latest_period: p.latest_period.clone(),
                entry: p.entry.clone(),
                blocked: p.blocked.clone(),
            });
        let body = metric_page(
            &catalog,
            name,
            &file.display_path.display().to_string(),
            m,
            &lifecycle,
            &graph,
            &p,
        );
        write(
            out,
            &format!("metrics/{name}.html"),
            html::page(&format!("{} — canon", m.label), &body, None),
        )?;
        pages += 1;
        let search = format!(
            "{} {} {} {} {}",
            name,
            m.label,
            m.owner,
            m.status.name(),
            m.description
        )
        .to_lowercase();
        let _ = writeln!(
            index,
            "<li class=\"metric\" data-search=\"{}\"><a href=\"metrics/{}.html\">{}</a> <code>{}</code> <span class=\"status {}\">{}</span> v{} · {}<br><small>{}</small></li>",
            escape(&search),
            escape(name),
            escape(&m.label),
            escape(name),
            m.status.name(),
            m.status.name(),
            m.version,
            escape(&m.owner),
            escape(m.description.trim())
        );
    }
    let body = format!(
        "<h1>{} — metric catalog</h1>\n<p>{}</p>\n<input id=\"search\" type=\"search\" placeholder=\"Search metrics by name, owner, status or words of their description\" aria-label=\"Search metrics\">\n<p id=\"count\"></p>\n<ul id=\"metrics\">\n{index}</ul>\n<p><small>Generated by canon {} from the definitions{}.</small></p>",
        escape(&catalog.files.project.spec.name),
        escape(
            catalog
                .files
                .project
                .spec
                .description
                .as_deref()
                .unwrap_or("")
        ),
        env!("CARGO_PKG_VERSION"),
        publication
            .map(|p| format!(" and the publication {}", escape(&p.display().to_string())))
            .unwrap_or_default()
    );
    write(
        out,
        "index.html",
        html::page("Metric catalog — canon", &body, Some(html::SEARCH)),
    )?;
    Ok(pages + 1)
}

fn write(out: &Path, rel: &str, text: impl AsRef<[u8]>) -> Result<()> {
    crate::publish_dir::write_synced(&out.join(rel), text.as_ref())
}

fn metric_page(
    catalog: &Catalog,
    name: &str,
    file: &str,
    m: &crate::spec::MetricSpec,
    lifecycle: &crate::lifecycle::Lifecycle,
    graph: &crate::lineage::Graph,
    p: &Published,
) -> String {
    let mut b = String::new();
    let _ = writeln!(
        b,
        "<p><a href=\"../index.html\">← all metrics</a></p>\n<h1>{} <code>{}</code></h1>\n<p><span class=\"status {}\">{}</span> version {} · owner {} · system {} · unit {} · kind {} · defined in <code>{}</code></p>\n<p>{}</p>",
        escape(&m.label),
        escape(name),
        m.status.name(),
        m.status.name(),
        m.version,
        escape(&m.owner),
        escape(&m.system),
        escape(&m.unit),
        m.kind.name(),
        escape(file),
        escape(m.description.trim())
    );
    if let Some(r) = &m.replaced_by {
        let _ = writeln!(
            b,
            "<p><strong>Deprecated:</strong> use <a href=\"{}.html\">{}</a>.</p>",
            escape(r),
            escape(r)
        );
    }
    if let Some(s) = &lifecycle.signoff {
        let approved = s.approved.as_ref().map(|a| {
            format!(
                "approved by {} on {} (version {})",
                escape(&a.by),
                escape(&a.at),
                a.version
            )
        });
        let _ = writeln!(
            b,
            "<p>Sign-off: <strong>{}</strong>{}; closure <code>{}</code></p>",
            escape(&s.state),
            approved.map(|a| format!(", {a}")).unwrap_or_default(),
            escape(&s.closure_sha256[..s.closure_sha256.len().min(16)])
        );
    }
    // The definition, as written.
    let _ = writeln!(
        b,
        "<h2>Definition</h2>\n<pre>{}</pre>",
        escape(&definition_yaml(m))
    );
    // Exclusions and their latest tallies.
    b.push_str("<h2>Exclusions</h2>\n");
    let exclusions = catalog
        .metric(name)
        .map(|(id, _, _)| catalog.exclusions_of(id))
        .unwrap_or_default();
    if exclusions.is_empty() {
        b.push_str("<p>None.</p>\n");
    } else {
        let _ = writeln!(
            b,
            "<table><tr><th>exclusion</th><th>reason</th><th>when</th><th class=\"num\">rows{}</th><th class=\"num\">value</th></tr>",
            p.latest_period
                .as_ref()
                .map(|l| format!(" ({})", escape(l)))
                .unwrap_or_default()
        );
        for x in &exclusions {
            let tally = p.exclusions.iter().find(|(n, _, _)| n == &x.spec.name);
            let _ = writeln!(
                b,
                "<tr><td><code>{}</code></td><td>{}</td><td><code>{}</code></td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                escape(&x.spec.name),
                escape(x.spec.reason.trim()),
                escape(&x.spec.when),
                tally.map(|t| t.1.to_string()).unwrap_or_else(|| "—".into()),
                tally
                    .map(|t| escape(&t.2.grouped()))
                    .unwrap_or_else(|| "—".into()),
            );
        }
        b.push_str("</table>\n");
    }
    // The last published periods.
    b.push_str("<h2>Last published periods</h2>\n");
    if !p.blocked.is_empty() {
        // Pending (a conversion window still open) is expected, not a
        // fault: said so, where it is all there is.
        let heading = if p.blocked.iter().all(|(_, _, _, pending)| *pending) {
            "No final value when last published"
        } else {
            "Blocked when last published"
        };
        let _ = write!(
            b,
            "<div class=\"blocked\"><p><strong>{heading}</strong>: the latest publication of \
             these periods gave no number "
        );
        b.push_str(if p.series.is_empty() {
            "(and none was published before).</p>\n"
        } else {
            "(the values below are older).</p>\n"
        });
        b.push_str("<table><tr><th>period</th><th>published at</th><th>reason</th></tr>\n");
        for (period, when, reason, _) in &p.blocked {
            let _ = writeln!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(period),
                escape(when),
                escape(reason)
            );
        }
        b.push_str("</table></div>\n");
    }
    if p.series.is_empty() {
        b.push_str("<p>Not published yet.</p>\n");
    } else {
        // Bars of one kind of period: a year's beside a quarter's, or a
        // day's, reads as a change that is not one. The kind of the latest
        // period is drawn; the others are listed under it.
        let kind = p
            .series
            .last()
            .map(|(period, _)| crate::calendar::Period::kind_of_label(period));
        let (same, others): (Vec<_>, Vec<_>) = p
            .series
            .iter()
            .partition(|(period, _)| Some(crate::calendar::Period::kind_of_label(period)) == kind);
        let last: Vec<(String, Option<Dec>)> =
            same.into_iter().rev().take(8).rev().cloned().collect();
        // A period published to date is drawn apart in the chart too: its
        // bar is not the period's.
        b.push_str(&svg::chart(&last, &|period| p.to_date.contains_key(period)));
        b.push_str("\n<table><tr><th>period</th><th class=\"num\">value</th></tr>\n");
        for (period, v) in &last {
            let to_date = p
                .to_date
                .get(period)
                .map(|t| format!(" <small>(to date: the data reached {})</small>", escape(t)))
                .unwrap_or_default();
            let _ = writeln!(
                b,
                "<tr><td>{}{to_date}</td><td class=\"num\">{}</td></tr>",
                escape(period),
                v.map(|v| escape(&v.grouped()))
                    .unwrap_or_else(|| "no value".into())
            );
        }
        b.push_str("</table>\n");
        if !others.is_empty() {
            let listed: Vec<String> = others
                .iter()
                .rev()
                .take(8)
                .rev()
                .map(|(period, v)| {
                    format!(
                        "{} ({}): {}",
                        escape(period),
                        crate::calendar::Period::kind_of_label(period).replace('_', " "),
                        v.map(|v| escape(&v.grouped()))
                            .unwrap_or_else(|| "no value".into())
                    )
                })
                .collect();
            let _ = writeln!(
                b,
                "<p>Also published, periods of other kinds (not drawn beside these): {}.</p>",
                listed.join("; ")
            );
        }
    }
    // Lineage.
    let _ = writeln!(
        b,
        "<h2>Lineage</h2>\n<p>What it is computed from, down to the columns and files it reads (<code>canon lineage {}</code>).</p>\n<div class=\"scroll\">{}</div>",
        escape(name),
        svg::lineage(graph)
    );
    // Quality of its inputs at the latest publication.
    b.push_str("<h2>Quality of its inputs</h2>\n");
    match &p.entry {
        None if p.series.is_empty() => b.push_str("<p>Not published yet.</p>\n"),
        // Its numbers above came from an earlier publication: the latest
        // one left it out (`publish --only` another metric).
        None => b.push_str(
            "<p>Not in the latest publication: the numbers above were published earlier, and their inputs were recorded by the publication that computed them (<code>canon history</code> lists when).</p>\n",
        ),
        Some(e) => {
            let _ = writeln!(
                b,
                "<p>At its latest publication ({}): quality <strong>{}</strong>{}.</p>\n<table><tr><th>source</th><th>file</th><th class=\"num\">rows</th><th class=\"num\">bytes</th></tr>",
                escape(e["period"].as_str().unwrap_or("")),
                escape(e["quality_status"].as_str().unwrap_or("unknown")),
                e["overrides"]
                    .as_array()
                    .filter(|o| !o.is_empty())
                    .map(|o| format!(
                        "; let through: {}",
                        escape(
                            &o.iter()
                                .filter_map(|v| v.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    ))
                    .unwrap_or_default()
            );
            for s in e["lineage"]["sources"].as_array().into_iter().flatten() {
                for f in s["files"].as_array().into_iter().flatten() {
                    let _ = writeln!(
                        b,
                        "<tr><td>{}/{}</td><td><code>{}</code></td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                        escape(s["system"].as_str().unwrap_or("")),
                        escape(s["table"].as_str().unwrap_or("")),
                        escape(f["path"].as_str().unwrap_or("")),
                        f["rows"],
                        f["bytes"]
                    );
                }
            }
            b.push_str("</table>\n");
        }
    }
    b
}

/// The metric's definition as YAML (as canon read it).
fn definition_yaml(m: &crate::spec::MetricSpec) -> String {
    fn trim(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                map.retain(|_, v| {
                    !(v.is_null() || v == &serde_json::json!([]) || v == &serde_json::json!(false))
                });
                map.values_mut().for_each(trim);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(trim),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(m).unwrap_or_default();
    trim(&mut v);
    if let serde_json::Value::Object(map) = &mut v {
        map.remove("description");
    }
    serde_yaml::to_string(&v).unwrap_or_default()
}

/// What publication `dir` says per metric: its history's latest value per
/// period (in period order), the latest period's exclusions and manifest
/// entry.
fn read_publication(catalog: &Catalog, dir: &Path) -> Result<BTreeMap<String, Published>> {
    if !dir.join(crate::publish_dir::MARKER).is_file() {
        return Err(CanonError::request(format!(
            "--publication {}: not a canon publication (the folder `canon publish --out` wrote)",
            dir.display()
        )));
    }
    let history = crate::history::read(dir)?;
    let manifest_path = dir.join("manifest.json");
    let manifest = crate::publish_dir::read_manifest(dir)?
        .ok_or_else(|| crate::publish_dir::damaged(&manifest_path, "it is missing".to_string()))?;
    // Another JSON in its place (a query result written over it) has none
    // of a publication's lists: read as one, every page said "not published".
    if !manifest["files"].is_array() || !manifest["metrics"].is_array() {
        return Err(crate::publish_dir::damaged(
            &manifest_path,
            "it is not a publication's manifest (it lists no files and no metrics)".to_string(),
        ));
    }
    // A publication by a canon that kept its blocks in the manifest only.
    let history = crate::history::with_manifest_blocks(history, Some(&manifest), &catalog.calendar);
    let exclusions = read_exclusions(&dir.join("exclusions.parquet"))?;
    let lineage = read_lineage(dir, &manifest)?;
    let mut out: BTreeMap<String, Published> = BTreeMap::new();
    // The last number published per period, and the periods whose last
    // publication was blocked since (a later `publish --only` that left
    // the metric out keeps the block standing). A period is its days,
    // shown as it was last written.
    let mut labels: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut latest: BTreeMap<(String, String), (Option<Dec>, Option<String>)> = BTreeMap::new();
    let mut blocked: BTreeMap<(String, String), (String, String, bool)> = BTreeMap::new();
    for r in &history {
        let key = (r.metric.clone(), r.period_days(&catalog.calendar));
        labels.insert(key.clone(), r.period.clone());
        match &r.blocked {
            Some(why) => {
                blocked.insert(key, (r.published_at.clone(), why.clone(), r.pending));
            }
            None => {
                blocked.remove(&key);
                latest.insert(key, (r.value, r.data_through.clone()));
            }
        }
    }
    // In the order of their days (the keys' text, `2025-02-01..`, sorts so).
    let label = |key: &(String, String)| labels.get(key).cloned().unwrap_or_default();
    for (key, (value, through)) in latest {
        let period = label(&key);
        let published = out.entry(key.0).or_default();
        if let Some(through) = through {
            published.to_date.insert(period.clone(), through);
        }
        published.series.push((period, value));
    }
    for (key, (when, reason, pending)) in blocked {
        let period = label(&key);
        let metric = key.0;
        out.entry(metric)
            .or_default()
            .blocked
            .push((period, when, reason, pending));
    }
    for (metric, p) in out.iter_mut() {
        p.latest_period = p.series.last().map(|(l, _)| l.clone());
        if let Some(period) = &p.latest_period {
            p.exclusions = exclusions
                .iter()
                .filter(|(m, per, _, _, _)| m == metric && per == period)
                .map(|(_, _, x, rows, v)| (x.clone(), *rows, *v))
                .collect();
            p.entry = manifest["metrics"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|e| e["metric"] == metric.as_str() && e["period"] == period.as_str())
                .cloned();
            // Since the lineage left the manifest for its own file.
            if let Some(entry) = p.entry.as_mut().filter(|e| e["lineage"].is_null()) {
                let line = lineage.iter().find(|l| {
                    l["metric"] == metric.as_str()
                        && l["period"] == period.as_str()
                        && l["part"].is_null()
                });
                if let Some(line) = line {
                    entry["lineage"] = line["lineage"].clone();
                }
            }
        }
    }
    Ok(out)
}

/// The lines of the publication's lineage file, checked against the
/// manifest's seal (`lineage_sha256`): a file removed, emptied or edited
/// would show the page's inputs wrong, or none under a passing quality.
/// None for a publication that kept each result's lineage in its manifest
/// entry (it neither lists nor seals the file).
fn read_lineage(dir: &Path, manifest: &serde_json::Value) -> Result<Vec<serde_json::Value>> {
    let path = dir.join(crate::publish_dir::LINEAGE_FILE);
    let listed = manifest["files"]
        .as_array()
        .is_some_and(|f| f.iter().any(|f| f == crate::publish_dir::LINEAGE_FILE));
    let sealed = manifest["lineage_sha256"].as_str();
    if sealed.is_none() && !listed {
        return Ok(Vec::new());
    }
    // Each publication writes its own (none is carried over, as the
    // history is), so publishing again mends it.
    let damaged = |why: String| {
        crate::publish_dir::damaged_saying(
            &path,
            format!(
                "{why}: the publication's lineage is damaged; restore it from a backup, or \
                 publish again, which writes it anew"
            ),
        )
    };
    let bytes = crate::publish_dir::read_regular(&path).map_err(|e| damaged(e.to_string()))?;
    if sealed.is_some_and(|sealed| crate::history::sha256_hex(&bytes) != sealed) {
        return Err(damaged(
            "its bytes are not those the publication wrote (its sha256 differs from the \
             manifest's lineage_sha256)"
                .to_string(),
        ));
    }
    let text = String::from_utf8(bytes).map_err(|e| damaged(format!("not UTF-8 ({e})")))?;
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| damaged(format!("line {}: {e}", i + 1)))
        })
        .collect()
}

type ExclusionRow = (String, String, String, i64, Dec);

/// exclusions.parquet's rows: (metric, period, exclusion, rows, value).
fn read_exclusions(path: &Path) -> Result<Vec<ExclusionRow>> {
    use datafusion::arrow::array::{Array, ArrayRef, AsArray};
    use datafusion::arrow::datatypes::{Decimal128Type, Int64Type};
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    // A pipe in its place would block the open forever.
    if !std::fs::metadata(path)
        .map_err(|e| CanonError::io(path, e))?
        .is_file()
    {
        return Err(damaged(path, "not a regular file".to_string()));
    }
    let file = std::fs::File::open(path).map_err(|e| CanonError::io(path, e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| damaged(path, format!("not a readable Parquet file ({e})")))?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| damaged(path, format!("does not decode ({e})")))?;
        // By name and type, as publish writes them: a file swapped for
        // another is refused, not read by position.
        let column = |name: &str, kind: &str| -> Result<ArrayRef> {
            batch
                .column_by_name(name)
                .cloned()
                .ok_or_else(|| damaged(path, format!("has no column `{name}` ({kind})")))
        };
        let wrong =
            |name: &str, kind: &str| damaged(path, format!("column `{name}` is not {kind}"));
        let (m, p, x) = (
            column("metric", "text")?,
            column("period", "text")?,
            column("exclusion", "text")?,
        );
        let (r, v) = (column("rows", "int64")?, column("value", "decimal")?);
        // A part's universe (a ratio's numerator, a cohort's T0 members) is
        // not the metric's own: the page shows the metric's exclusions.
        // Publications before the column named the part in `metric`.
        let part = batch.column_by_name("part").cloned();
        let part = part
            .as_ref()
            .map(|a| {
                a.as_string_opt::<i32>()
                    .ok_or_else(|| wrong("part", "text"))
            })
            .transpose()?;
        let text = |a: &ArrayRef, name: &str| {
            a.as_string_opt::<i32>()
                .cloned()
                .ok_or_else(|| wrong(name, "text"))
        };
        let (m, p, x) = (
            text(&m, "metric")?,
            text(&p, "period")?,
            text(&x, "exclusion")?,
        );
        let r = r
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| wrong("rows", "int64"))?;
        let v = v
            .as_primitive_opt::<Decimal128Type>()
            .filter(|v| v.scale() >= 0)
            .ok_or_else(|| wrong("value", "a decimal"))?;
        let scale = v.scale() as u32;
        for i in 0..batch.num_rows() {
            if v.is_null(i) || part.is_some_and(|p| !p.is_null(i)) {
                continue;
            }
            out.push((
                m.value(i).to_string(),
                p.value(i).to_string(),
                x.value(i).to_string(),
                r.value(i),
                Dec::new(v.value(i), scale),
            ));
        }
    }
    Ok(out)
}
