//! Running a metric for a request: compile, execute, and gather the
//! evidence into a [`GovernedResult`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Date32Type, Decimal128Type, Int64Type};
use datafusion::logical_expr::LogicalPlan;
use sha2::{Digest, Sha256};

use crate::cache::Cache;
use crate::catalog::{Catalog, MetricId};
use crate::compile::{MetricPlan, Part, cohort, derived, simple};
use crate::decimal::Dec;
use crate::error::{CanonError, DataLocation, Result};
use crate::request::Resolved;
use crate::result::{
    BridgeLine, CacheNote, DefinitionRef, ExclusionTally, GovernedResult, Lineage, ResultRow,
    Tally, source_lineage,
};
use crate::run::{DataSource, Engine};
use crate::spec::{Aggregation, MetricSpec};

/// Decimal places of a ratio, as metrics.md presents them.
pub const RATIO_SCALE: u32 = 6;
/// Decimal places of an average unless the metric says otherwise.
pub const AVG_SCALE: u32 = 2;

pub use crate::compile::Key;

// Execution by kind; each module reads this one's imports (`use super::*`).
mod cohort_run;
mod derived_run;
mod ratio;
mod simple_run;

use cohort_run::run_cohort;
use simple_run::{SimpleOutcome, read_simple, run_part};

/// Computes `name` for `request` on `engine`.
pub async fn run_metric(engine: &Engine, name: &str, request: &Resolved) -> Result<GovernedResult> {
    let started = Instant::now();
    let cache = match (engine.fingerprints(), &engine.data) {
        (Some(_), DataSource::Empty) | (None, _) => None,
        (Some(prints), root) => Some((
            Cache::over(prints),
            root,
            Cache::key(&engine.catalog, root, name, request),
        )),
    };
    if let Some((cache, root, key)) = &cache
        && let Some(served) = cache
            .lookup(key, &engine.catalog, root)
            .await
            .filter(|s| verifies(engine, name, &s.result))
    {
        let mut result = served.result;
        result.cache = CacheNote {
            status: "hit".into(),
            computed_at: Some(served.stored_at),
            computed_ms: Some(result.elapsed_ms),
        };
        gate(engine, &mut result)?;
        result.lifecycle = Some(lifecycle(engine, name).await?);
        result.elapsed_ms = started.elapsed().as_millis();
        tracing::info!(metric = %name, "served from cache");
        return Ok(result);
    }
    let (result, lifecycle) = futures::try_join!(
        async {
            compute_metric(engine, name, request, started)
                .await
                .map_err(|e| match engine.inputs_held() {
                    // A file replaced mid-read fails its decoding (the
                    // engine kept the old footer): the file moved, not the
                    // definition.
                    Err(moved) => moved,
                    Ok(()) => crate::blame::in_metric(&engine.catalog, name, &request.by, e),
                })
        },
        lifecycle(engine, name)
    )?;
    let mut result = result;
    result.lifecycle = Some(lifecycle);
    gate(engine, &mut result)?;
    // A cohort bridge that does not foot is never given as evidence.
    if let Err(why) = crate::result::consistency::bridge_foots(&result) {
        // Where to see each member's value at T.
        let listed = engine
            .catalog
            .metric(name)
            .ok()
            .and_then(|(_, _, m)| m.cohort.clone())
            .map(|c| {
                format!(
                    " (`canon query {} --as-of T --by {}` lists each {}'s value at T)",
                    c.of, c.key, c.key
                )
            })
            .unwrap_or_default();
        return Err(CanonError::Blocked(format!(
            "`{name}` is blocked: {why}. A cohort member whose value at T is below zero (a \
             discount charge that outlives its base charge) is the usual cause{listed}: its \
             definition does not say whether such a member churned or contracted"
        )));
    }
    // Its hashes complete, then every file it read still the one bound:
    // else no number, and nothing remembered.
    let read = engine.sources_read().await?;
    engine.inputs_held()?;
    if let Some((cache, root, key)) = cache {
        result.cache.status = "miss".into();
        let inputs = crate::cache::inputs(root, &engine.catalog, &read);
        cache.store(&key, inputs, &result);
    }
    Ok(result)
}

/// Metric `name`'s lifecycle, judged once per engine (a command that
/// computes a metric for several periods plans its closure once). An engine
/// without the result cache (`--no-cache`) keeps no closure hash either.
async fn lifecycle(engine: &Engine, name: &str) -> Result<crate::lifecycle::Lifecycle> {
    let cell = engine
        .shared::<tokio::sync::OnceCell<crate::lifecycle::Lifecycle>>(&format!("lifecycle {name}"));
    cell.get_or_try_init(|| crate::lifecycle::of(engine, name))
        .await
        .cloned()
}

/// Whether a stored result's numbers agree with each other (see
/// `result::consistency`); one that does not is recomputed, with a warning.
fn verifies(engine: &Engine, name: &str, result: &GovernedResult) -> bool {
    let additive = engine
        .catalog
        .metric(name)
        .is_ok_and(|(_, _, m)| crate::result::consistency::additive(m));
    match crate::result::consistency::check(result, additive) {
        Ok(()) => true,
        Err(why) => {
            tracing::warn!(
                metric = %name,
                "a cached result does not add up ({why}): recomputing and replacing it"
            );
            false
        }
    }
}

/// Computes a metric: plans, execution and the evidence, not yet gated.
async fn compute_metric(
    engine: &Engine,
    name: &str,
    request: &Resolved,
    started: Instant,
) -> Result<GovernedResult> {
    let catalog = engine.catalog.clone();
    let (id, _, metric) = catalog.metric(name)?;
    // Planned before a row is read (entity frames are memoized, so the
    // computation reuses the work): the tables and cross-system links the
    // metric reads are then known, and their gates run beside the
    // computation instead of after it.
    let (plan, planned_links) = engine
        .recording_links(crate::compile::plan_metric(engine, name, request))
        .await;
    let plan = plan?.bound(&|f| engine.bound(f));
    let mut planned = BTreeMap::new();
    for (_, frame) in plan.titled(name, request)? {
        crate::run::scanned_columns(frame.logical_plan(), &mut planned);
    }
    let planned_columns = planned;
    let planned: Vec<String> = planned_columns.keys().cloned().collect();
    tracing::info!(ms = started.elapsed().as_millis() as u64, "planned");
    // Row-count gates (no row counted twice): the counted rows, the
    // entities looked up, exclusive intervals (quality::gates).
    let early_gates =
        crate::quality::gates::for_query(engine, Some((name, request)), &planned, &planned_links)?;
    // A cohort's rows are grouped by the requested slices (its bridge's
    // groups); every other result by its first part's.
    let cohort = matches!(plan, MetricPlan::Cohort(_));
    let (outcome, run_links) = engine
        .recording_links(async {
            futures::try_join!(
                compute(engine, id, request, plan),
                gates(engine, &planned, &planned_columns, &planned_links),
                crate::quality::gates::run_all(engine, &early_gates, Some(request))
            )
        })
        .await;
    let (computed, (early_tables, mut matches), mut row_gates) = outcome?;
    let Computed {
        value,
        rows,
        parts,
        derived_plan,
        cohort_bridge,
        mut row_bridges,
    } = computed;
    let slices = if cohort {
        request.by.clone()
    } else {
        parts[0].slices.clone()
    };
    let bucket_of: BTreeMap<String, crate::calendar::Period> = parts
        .iter()
        .flat_map(|p| p.periods.iter().map(|b| (b.label.clone(), b.clone())))
        .collect();
    // A bucket cut to the request is marked: its label alone names the
    // whole quarter or month.
    let state = crate::result::flat::is_state(metric.kind.name());
    let whole = |b: &crate::calendar::Period| match request.request().grain {
        Some(grain) if state => catalog.calendar.ends_bucket(b.from, grain),
        Some(grain) => catalog.calendar.is_whole(b, grain),
        None => true,
    };
    let rows = rows
        .into_iter()
        .map(|((period, values), value)| ResultRow {
            whole: bucket_of.get(&period).is_none_or(whole),
            bridge: row_bridges
                .remove(&(period.clone(), values.clone()))
                .unwrap_or_default(),
            period_start: bucket_of
                .get(&period)
                .map_or(request.period.from, |b| b.from),
            period_end: bucket_of.get(&period).map_or(request.period.to, |b| b.to),
            period,
            slices: slices.iter().cloned().zip(values).collect(),
            value,
            // Judged by `gate`, on every run.
            complete: true,
        })
        .collect();
    let mut exclusions = Vec::new();
    let mut tallies = Vec::new();
    for part in &parts {
        let included = part.included();
        let mut universe = included;
        for (x, reason, acc) in &part.excluded {
            universe = universe.add(*acc);
            exclusions.push(ExclusionTally {
                metric: part.name.clone(),
                name: x.clone(),
                reason: reason.clone(),
                rows: acc.rows,
                entities: part
                    .members
                    .as_ref()
                    .map(|m| m.get(&Some(x.clone())).copied().unwrap_or(0)),
                value: acc.contribution(part.agg),
            });
        }
        tallies.push(Tally {
            metric: part.name.clone(),
            universe_rows: universe.rows,
            universe_value: universe.contribution(part.agg),
            included_rows: included.rows,
            included_value: included.contribution(part.agg),
            included_entities: part
                .members
                .as_ref()
                .map(|m| m.get(&None).copied().unwrap_or(0)),
        });
    }
    let mut definitions = vec![definition_ref(&catalog, id)];
    for part in &parts {
        let d = definition_ref(&catalog, part.id);
        if !definitions
            .iter()
            .any(|x| x.file == d.file && x.sha256 == d.sha256)
        {
            definitions.push(d);
        }
    }
    let mut lineage = lineage(engine, &parts, definitions.clone()).await?;
    if let Some(plan) = derived_plan {
        lineage.plans.push((metric.name.clone(), plan));
    }
    let fingerprint = fingerprint(&definitions, request, &lineage);
    tracing::info!(
        ms = started.elapsed().as_millis() as u64,
        "computed; checking inputs"
    );
    // The gate's evidence for every input table, in table order: checked
    // beside the computation when the plans named the table, now otherwise
    // (a side query's table); likewise the match rates of links joined by a
    // side query.
    let keys: Vec<String> = lineage
        .sources
        .iter()
        .map(|s| format!("{}/{}", s.system, s.table))
        .collect();
    let late: Vec<String> = keys
        .iter()
        .filter(|k| !planned.contains(k))
        .cloned()
        .collect();
    // Links joined while it ran that its plans did not join (side
    // queries), not the links of the command's other metrics.
    let late_links = run_links.difference(&planned_links).cloned().collect();
    // The columns the optimized plans read (the early gates judged the
    // domains of every column the unoptimized plans scan, a superset).
    let read_columns: BTreeMap<String, BTreeSet<String>> = lineage
        .sources
        .iter()
        .map(|s| {
            let key = format!("{}/{}", s.system, s.table);
            (key, s.columns.iter().cloned().collect())
        })
        .collect();
    let late_gates: std::collections::BTreeSet<_> =
        crate::quality::gates::for_query(engine, None, &late, &late_links)?
            .difference(&early_gates)
            .cloned()
            .collect();
    let ((late_tables, late_matches), late_row_gates) = futures::try_join!(
        gates(engine, &late, &read_columns, &late_links),
        crate::quality::gates::run_all(engine, &late_gates, Some(request))
    )?;
    matches.extend(late_matches);
    row_gates.extend(late_row_gates);
    let checks_of: BTreeMap<&String, &Vec<crate::quality::TableCheck>> = planned
        .iter()
        .zip(&early_tables)
        .chain(late.iter().zip(&late_tables))
        .collect();
    let mut quality = Vec::new();
    for c in keys
        .iter()
        .filter_map(|k| checks_of.get(k))
        .copied()
        .flatten()
    {
        let unread = c.check == crate::quality::domains::CHECK
            && !c.column.as_ref().is_some_and(|column| {
                read_columns
                    .get(&c.table)
                    .is_some_and(|read| read.contains(column))
            });
        if !unread {
            quality.extend(serde_json::to_value(c).ok());
        }
    }
    for c in row_gates {
        quality.extend(serde_json::to_value(c).ok());
    }
    for m in matches {
        quality.extend(serde_json::to_value(m).ok());
    }
    tracing::info!(ms = started.elapsed().as_millis() as u64, "inputs checked");
    Ok(GovernedResult {
        metric: metric.name.clone(),
        label: metric.label.clone(),
        kind: metric.kind.name().to_string(),
        description: metric.description.trim().to_string(),
        definition: definitions[0].clone(),
        request: request.request().clone(),
        value,
        unit: metric.unit.clone(),
        // Both judged by `gate`, on every run.
        complete: true,
        data_through: None,
        rows,
        bridge: cohort_bridge,
        exclusions,
        tallies,
        lineage,
        quality,
        // Both set by `gate`.
        quality_status: String::new(),
        overrides: Vec::new(),
        // Set by `run_metric`, on every run.
        lifecycle: None,
        now: engine.now.to_rfc3339(),
        fingerprint,
        cache: CacheNote::off(),
        engine: crate::result::Engine::current(),
        elapsed_ms: started.elapsed().as_millis(),
    })
}

/// Judges a result's input checks against the engine's clock and sets its
/// quality status; a result with a check at error is blocked unless the run
/// names that gate and table (`--allow GATE:TABLE`, or `--allow-stale` for
/// freshness and completeness), which is then recorded in `overrides`. Freshness is
/// judged from each table's stored latest sync time, so a result served
/// from the cache is judged against this run's "now", not the one it was
/// computed at.
fn gate(engine: &Engine, result: &mut GovernedResult) -> Result<()> {
    use crate::quality::Status;
    let catalog = &engine.catalog;
    let mut status = Status::Pass;
    let mut failing = Vec::new();
    let mut overrides: Vec<String> = Vec::new();
    // Volume is judged at every run, from the row counts of the files read,
    // against the last counts seen (which a cached result cannot know).
    // So is a conversion's window, against this run's clock.
    let judged_now = [crate::quality::volume::CHECK, crate::quality::window::CHECK];
    result.quality.retain(|c| {
        !c.get("check")
            .and_then(|v| v.as_str())
            .is_some_and(|check| judged_now.contains(&check))
    });
    let counts: Vec<(String, i64)> = result
        .lineage
        .sources
        .iter()
        .map(|s| {
            let rows = s.files.iter().map(|f| f.rows).sum();
            (format!("{}/{}", s.system, s.table), rows)
        })
        .collect();
    let (volume, volume_overrides) = crate::quality::volume::judge(engine, &counts)?;
    result
        .quality
        .extend(volume.iter().filter_map(|c| serde_json::to_value(c).ok()));
    overrides.extend(volume_overrides);
    let windows = crate::quality::window::judge(
        engine,
        &result.metric,
        &result.request.period,
        &result.quality,
    );
    result
        .quality
        .extend(windows.iter().filter_map(|c| serde_json::to_value(c).ok()));
    for check in &mut result.quality {
        let text = |key: &str| check.get(key).and_then(|v| v.as_str()).unwrap_or("");
        let table = text("table").to_string();
        if text("check") == "freshness" {
            let (system, name) = table.split_once('/').unwrap_or((&table, ""));
            if let Some((_, source)) = catalog.source_by_name(system, name) {
                let thresholds = catalog.freshness_of(source);
                let (judged, detail) = crate::quality::judge_freshness(
                    crate::quality::synced(check),
                    engine.now,
                    &thresholds,
                );
                check["status"] = serde_json::json!(judged.name());
                check["detail"] = serde_json::json!(detail);
            }
        }
        let text = |key: &str| check.get(key).and_then(|v| v.as_str()).unwrap_or("");
        let judged = match text("status") {
            "error" => Status::Error,
            "warn" => Status::Warn,
            _ => Status::Pass,
        };
        status = status.max(judged);
        if judged == Status::Error {
            let gate = text("check");
            match engine.allow.permit(gate, &table) {
                Some(name) => {
                    if !overrides.contains(&name) {
                        overrides.push(name);
                    }
                }
                None => failing.push((
                    gate == crate::quality::window::CHECK,
                    format!(
                        "{table} {gate} ({})\n    pass {} to compute it anyway",
                        text("detail"),
                        crate::allow::Allow::hint(gate, &table)
                    ),
                )),
            }
        }
    }
    result.quality_status = status.name().to_string();
    result.now = engine.now.to_rfc3339();
    // Whether the period is over by the time the data was taken: a number
    // to date is given, and marked.
    let reach = crate::result::reach::data_reach(engine.now, &result.quality);
    let window = crate::quality::window::longest(engine, &result.metric);
    crate::result::reach::judge(
        result,
        reach,
        catalog.calendar.zone,
        chrono::Duration::days(i64::from(window)),
    );
    // The overrides of this run, not of the run that computed a cached result.
    result.overrides = overrides;
    if failing.is_empty() {
        return Ok(());
    }
    // Only open conversion windows: nothing is wrong, the value is not final yet.
    let pending = failing.iter().all(|(window, _)| *window);
    let said: Vec<String> = failing.into_iter().map(|(_, said)| said).collect();
    let said = said.join("\n  ");
    Err(if pending {
        CanonError::Pending(format!(
            "`{}` has no final value for {} yet:\n  {said}\n(computed with the override, a count \
             to date names it in its result){}",
            result.metric,
            result.request.period.label,
            final_buckets(result)
                .map(|to| format!(
                    "\nits buckets before {to} are final: `--from {} --to {to}` gives them",
                    result.request.period.from
                ))
                .unwrap_or_default(),
        ))
    } else {
        CanonError::Blocked(format!(
            "`{}` is blocked: its inputs fail a quality gate:\n  {said}\n(an override is recorded in the result)",
            result.metric,
        ))
    })
}

/// The end of a series' leading buckets whose values are final (each
/// row's window closed, `result::reach`), when some are: a series over an
/// open window has no final value as a whole, but its closed buckets can be
/// asked for alone.
fn final_buckets(result: &GovernedResult) -> Option<chrono::NaiveDate> {
    result.request.grain.as_ref()?;
    let mut rows: Vec<&ResultRow> = result.rows.iter().collect();
    rows.sort_by_key(|r| r.period_start);
    let open = rows.iter().find(|r| !r.complete)?.period_start;
    (open > result.request.period.from).then_some(open)
}

/// A metric computed, before its evidence is gathered.
struct Computed {
    value: Option<Dec>,
    rows: Vec<(Key, Option<Dec>)>,
    /// The simple metrics it was computed from, each executed.
    parts: Vec<SimpleOutcome>,
    /// A derived metric's own plan (its inputs' plans are in `parts`).
    derived_plan: Option<String>,
    cohort_bridge: Vec<BridgeLine>,
    row_bridges: BTreeMap<Key, Vec<BridgeLine>>,
}

/// Executes metric `id`'s plan by its shape (never by its kind: a kind is
/// planning's business, `compile::kind_of`).
async fn compute(
    engine: &Engine,
    id: MetricId,
    request: &Resolved,
    plan: MetricPlan,
) -> Result<Computed> {
    let catalog = engine.catalog.clone();
    let metric = &catalog.files.metrics[id.file].spec.metrics[id.index];
    let mut derived_plan = None;
    let mut cohort_bridge: Vec<BridgeLine> = Vec::new();
    let mut row_bridges: BTreeMap<Key, Vec<BridgeLine>> = BTreeMap::new();
    let (value, rows, parts) = match plan {
        MetricPlan::Cohort(instants) => {
            let answer = run_cohort(engine, id, *instants).await?;
            cohort_bridge = answer.bridge;
            row_bridges = answer.row_bridges;
            (answer.value, answer.rows, answer.parts)
        }
        MetricPlan::Ratio(parts) => ratio::compute(engine, metric, request, parts).await?,
        MetricPlan::Derived(planned) => {
            let mut parts = Vec::new();
            for part in planned {
                parts.push(run_part(engine, part, request).await?);
            }
            let inputs: Vec<derived::Input> = parts
                .iter()
                .map(|p| derived::Input {
                    name: p.name.clone(),
                    total: p.headline(),
                    rows: p.rows(),
                })
                .collect();
            let (value, rows, plan) = derived_run::evaluate(engine, id, &inputs).await?;
            derived_plan = Some(plan);
            (value, rows, parts)
        }
        MetricPlan::Aggregate(part) => {
            let o = run_part(engine, *part, request).await?;
            let value = o.headline();
            let rows = o.rows();
            (value, rows, vec![o])
        }
    };
    Ok(Computed {
        value,
        rows,
        parts,
        derived_plan,
        cohort_bridge,
        row_bridges,
    })
}

/// The gates' evidence for `tables` (freshness and completeness, one list
/// per table) and `links` (match rates): small independent scans, run
/// together.
async fn gates(
    engine: &Engine,
    tables: &[String],
    columns: &BTreeMap<String, BTreeSet<String>>,
    links: &crate::run::LinkSet,
) -> Result<(
    Vec<Vec<crate::quality::TableCheck>>,
    Vec<crate::quality::MatchRate>,
)> {
    let none = &BTreeSet::new();
    let started = Instant::now();
    // Each step's time on stderr with -v: they run beside the computation
    // and are the governed answer's cost over a bare plan.
    futures::try_join!(
        futures::future::try_join_all(tables.iter().map(|key| async move {
            let checks = table_gates(engine, key, columns.get(key).unwrap_or(none)).await;
            tracing::info!(table = %key, ms = started.elapsed().as_millis() as u64, "table checked");
            checks
        })),
        async {
            let rates = crate::quality::identity_match_rates(engine, links).await;
            tracing::info!(ms = started.elapsed().as_millis() as u64, "match rates computed");
            rates
        }
    )
}

/// A table's gates: freshness and completeness, and the accepted values of
/// the columns the plans read from it (a column the metric does not read
/// cannot move its number).
async fn table_gates(
    engine: &Engine,
    key: &str,
    read: &BTreeSet<String>,
) -> Result<Vec<crate::quality::TableCheck>> {
    let (mut checks, domains) = futures::try_join!(
        crate::quality::table_checks(engine, key, false),
        crate::quality::domains::domain_checks(engine, key, Some(read))
    )?;
    checks.extend(domains);
    Ok(checks)
}

/// The definition's identity. The sha256 covers the metric's own definition
/// and the shared exclusions it uses, not the whole file, so editing a
/// neighbour in the same file does not change this metric's fingerprint.
pub fn definition_ref(catalog: &Catalog, id: MetricId) -> DefinitionRef {
    let file = &catalog.files.metrics[id.file];
    let metric: &MetricSpec = &file.spec.metrics[id.index];
    let mut hasher = Sha256::new();
    hasher.update(serde_json::to_vec(metric).unwrap_or_default());
    for x in catalog.exclusions_of(id) {
        hasher.update(serde_json::to_vec(x.spec).unwrap_or_default());
    }
    DefinitionRef {
        file: file.display_path.display().to_string(),
        version: metric.version,
        sha256: hex::encode(hasher.finalize()),
        owner: metric.owner.clone(),
        status: metric.status.name().to_string(),
        system: metric.system.clone(),
    }
}

async fn lineage(
    engine: &Engine,
    parts: &[SimpleOutcome],
    definitions: Vec<crate::result::DefinitionRef>,
) -> Result<Lineage> {
    // Only what this result's own plans read (merge maps included), never
    // what other metrics of the same command read.
    let mut columns: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for part in parts {
        crate::run::scanned_columns(&part.plan, &mut columns);
    }
    let read = engine.sources_read().await?;
    let sources = columns
        .into_iter()
        .filter_map(|(key, cols)| {
            read.get(&key)
                .map(|facts| source_lineage(facts, cols.into_iter().collect()))
        })
        .collect();
    Ok(Lineage {
        definitions,
        plan: parts
            .first()
            .map(|p| p.plan.display_indent().to_string())
            .unwrap_or_default(),
        sources,
        plans: parts
            .iter()
            .map(|p| (p.name.clone(), p.plan.display_indent().to_string()))
            .collect(),
    })
}

/// sha256 over the definitions, the request and the content of every input file.
fn fingerprint(definitions: &[DefinitionRef], request: &Resolved, lineage: &Lineage) -> String {
    let mut h = Sha256::new();
    for d in definitions {
        h.update(d.sha256.as_bytes());
    }
    h.update(serde_json::to_vec(request.request()).unwrap_or_default());
    for s in &lineage.sources {
        for f in &s.files {
            h.update(f.identity().as_bytes());
        }
    }
    hex::encode(h.finalize())
}
