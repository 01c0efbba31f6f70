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
use crate::compile::entity::entity_frame;
use crate::compile::{cohort, derived, simple};
use crate::decimal::Dec;
use crate::error::{CanonError, DataLocation, Result};
use crate::request::Request;
use crate::result::{
    BridgeLine, CacheNote, DefinitionRef, ExclusionTally, GovernedResult, Lineage, ResultRow,
    Tally, source_lineage,
};
use crate::run::{DataSource, Engine};
use crate::spec::{Aggregation, MetricKind, MetricSpec};

/// Decimal places of a ratio, as metrics.md presents them.
pub const RATIO_SCALE: u32 = 6;
/// Decimal places of an average unless the metric says otherwise.
pub const AVG_SCALE: u32 = 2;

/// Rows, Σ value and count of non-null values of a group.
#[derive(Debug, Clone, Copy)]
struct Acc {
    rows: i64,
    sum: Dec,
    count: i64,
}

impl Acc {
    const ZERO: Acc = Acc {
        rows: 0,
        sum: Dec::ZERO,
        count: 0,
    };
    fn add(self, o: Acc) -> Acc {
        Acc {
            rows: self.rows + o.rows,
            sum: self.sum + o.sum,
            count: self.count + o.count,
        }
    }
    fn value(self, agg: Aggregation, scale: u32) -> Option<Dec> {
        match agg {
            Aggregation::Sum => Some(self.sum),
            Aggregation::Count => Some(Dec::from_int(self.count)),
            Aggregation::Avg => self.sum.div(Dec::from_int(self.count), scale),
        }
    }
    /// What a group contributes to the universe: additive for every aggregation.
    fn contribution(self, agg: Aggregation) -> Dec {
        match agg {
            Aggregation::Count => Dec::from_int(self.count),
            Aggregation::Sum | Aggregation::Avg => self.sum,
        }
    }
}

pub use crate::compile::Key;

/// A simple metric executed: included groups and what each exclusion removed.
pub(crate) struct SimpleOutcome {
    /// The metric whose definition produced it.
    id: MetricId,
    /// The metric, or for a cohort's instants `metric at day`.
    name: String,
    agg: Aggregation,
    scale: u32,
    slices: Vec<String>,
    buckets: Vec<String>,
    /// The same buckets with their dates.
    periods: Vec<crate::calendar::Period>,
    groups: BTreeMap<Key, Acc>,
    excluded: Vec<(String, String, Acc)>,
    plan: LogicalPlan,
    /// Nothing, at the scale of the summed values (0.00 for money).
    zero: Acc,
    /// Distinct members per exclusion (None = counted), when the metric
    /// names its member.
    members: Option<BTreeMap<Option<String>, i64>>,
    /// A snapshot: each bucket is the state at one day, so buckets do not
    /// add up.
    point_in_time: bool,
}

impl SimpleOutcome {
    /// The counted part of what the headline and the tallies describe: a
    /// flow over its whole period (the buckets add up); a snapshot as of the
    /// period's end (ARR by quarter of 2025 is ARR at the end of 2025, not
    /// the sum of four quarter-ends).
    fn included(&self) -> Acc {
        match (self.point_in_time, self.buckets.last()) {
            (true, Some(last)) => self
                .groups
                .iter()
                .filter(|((bucket, _), _)| bucket == last)
                .fold(self.zero, |a, (_, b)| a.add(*b)),
            _ => self.groups.values().fold(self.zero, |a, b| a.add(*b)),
        }
    }

    /// The headline value.
    fn headline(&self) -> Option<Dec> {
        self.included().value(self.agg, self.scale)
    }

    /// Rows of the result in bucket order; with no slices every bucket is
    /// present, empty ones as 0 (or null for an average).
    fn rows(&self) -> Vec<(Key, Option<Dec>)> {
        let mut out = Vec::new();
        for b in &self.buckets {
            let mut any = false;
            for (key, acc) in self.groups.range((b.clone(), Vec::new())..) {
                if &key.0 != b {
                    break;
                }
                any = true;
                out.push((key.clone(), acc.value(self.agg, self.scale)));
            }
            if !any && self.slices.is_empty() {
                out.push((
                    (b.clone(), Vec::new()),
                    self.zero.value(self.agg, self.scale),
                ));
            }
        }
        out
    }
}

/// Computes `name` for `request` on `engine`.
pub async fn run_metric(engine: &Engine, name: &str, request: &Request) -> Result<GovernedResult> {
    let started = Instant::now();
    let cache = match (engine.fingerprints(), &engine.data) {
        (Some(prints), DataSource::Folder(root)) => Some((
            Cache::over(prints.clone()),
            root,
            Cache::key(&engine.catalog, root, name, request),
        )),
        _ => None,
    };
    if let Some((cache, root, key)) = &cache
        && let Some(served) = cache
            .lookup(key, root)
            .filter(|s| verifies(engine, name, &s.result))
    {
        let mut result = served.result;
        result.cache = CacheNote {
            status: "hit".into(),
            computed_at: Some(served.stored_at),
            computed_ms: Some(result.elapsed_ms),
        };
        gate(engine, &mut result)?;
        result.elapsed_ms = started.elapsed().as_millis();
        tracing::info!(metric = %name, "served from cache");
        return Ok(result);
    }
    let mut result = compute_metric(engine, name, request, started)
        .await
        .map_err(|e| crate::blame::in_metric(&engine.catalog, name, &request.by, e))?;
    gate(engine, &mut result)?;
    if let Some((cache, root, key)) = cache {
        result.cache.status = "miss".into();
        let inputs = crate::cache::inputs(root, &engine.catalog, &engine.sources_read().await?);
        cache.store(&key, inputs, &result);
    }
    Ok(result)
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
    request: &Request,
    started: Instant,
) -> Result<GovernedResult> {
    let catalog = engine.catalog.clone();
    let (id, _, metric) = catalog.metric(name)?;
    // Planned before a row is read (entity frames are memoized, so the
    // computation reuses the work): the tables and cross-system links the
    // metric reads are then known, and their gates run beside the
    // computation instead of after it.
    let mut planned = BTreeMap::new();
    for (_, frame) in crate::compile::plans(engine, name, request).await? {
        crate::run::scanned_columns(frame.logical_plan(), &mut planned);
    }
    let planned_columns = planned;
    let planned: Vec<String> = planned_columns.keys().cloned().collect();
    let planned_links = engine.links_used();
    tracing::info!(ms = started.elapsed().as_millis() as u64, "planned");
    // Row-count gates (no row counted twice): the counted rows, the
    // entities looked up, exclusive intervals (quality::gates).
    let early_gates =
        crate::quality::gates::for_query(engine, Some((name, request)), &planned, &planned_links)?;
    let (computed, (early_tables, mut matches), mut row_gates) = futures::try_join!(
        compute(engine, id, request),
        gates(engine, &planned, &planned_columns, &planned_links),
        crate::quality::gates::run_all(engine, &early_gates, Some(request))
    )?;
    let Computed {
        value,
        rows,
        parts,
        derived_plan,
        cohort_bridge,
        mut row_bridges,
    } = computed;
    let slices = if metric.kind == MetricKind::Cohort {
        request.by.clone()
    } else {
        parts[0].slices.clone()
    };
    let bucket_of: BTreeMap<String, crate::calendar::Period> = parts
        .iter()
        .flat_map(|p| p.periods.iter().map(|b| (b.label.clone(), b.clone())))
        .collect();
    let rows = rows
        .into_iter()
        .map(|((period, values), value)| ResultRow {
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
    let late_links = engine
        .links_used()
        .difference(&planned_links)
        .cloned()
        .collect();
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
        request: request.clone(),
        value,
        unit: metric.unit.clone(),
        rows,
        bridge: cohort_bridge,
        exclusions,
        tallies,
        lineage,
        quality,
        // Both set by `gate`.
        quality_status: String::new(),
        overrides: Vec::new(),
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
    result
        .quality
        .retain(|c| c.get("check").and_then(|v| v.as_str()) != Some(crate::quality::volume::CHECK));
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
    for check in &mut result.quality {
        let text = |key: &str| check.get(key).and_then(|v| v.as_str()).unwrap_or("");
        let table = text("table").to_string();
        if text("check") == "freshness" {
            let (system, name) = table.split_once('/').unwrap_or((&table, ""));
            if let Some((_, source)) = catalog.source_by_name(system, name) {
                let thresholds = catalog.freshness_of(source);
                let synced = chrono::DateTime::parse_from_rfc3339(text("latest_sync"))
                    .ok()
                    .map(|t| t.with_timezone(&chrono::Utc));
                let (judged, detail) =
                    crate::quality::judge_freshness(synced, engine.now, &thresholds);
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
                None => failing.push(format!(
                    "{table} {gate} ({})\n    pass {} to compute it anyway",
                    text("detail"),
                    crate::allow::Allow::hint(gate, &table)
                )),
            }
        }
    }
    result.quality_status = status.name().to_string();
    result.now = engine.now.to_rfc3339();
    // The overrides of this run, not of the run that computed a cached result.
    result.overrides = overrides;
    if !failing.is_empty() {
        return Err(CanonError::Blocked(format!(
            "`{}` is blocked: its inputs fail a quality gate:\n  {}\n(an override is recorded in the result)",
            result.metric,
            failing.join("\n  ")
        )));
    }
    Ok(())
}

/// A cohort's answer: headline value, rows, headline bridge, each row's
/// bridge, and the two instants' outcomes (exclusions, lineage).
struct CohortAnswer {
    value: Option<Dec>,
    rows: Vec<(Key, Option<Dec>)>,
    bridge: Vec<BridgeLine>,
    row_bridges: BTreeMap<Key, Vec<BridgeLine>>,
    parts: Vec<SimpleOutcome>,
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

/// Executes metric `id` by its kind.
async fn compute(engine: &Engine, id: MetricId, request: &Request) -> Result<Computed> {
    let catalog = engine.catalog.clone();
    let metric = &catalog.files.metrics[id.file].spec.metrics[id.index];
    let mut derived_plan = None;
    let mut cohort_bridge: Vec<BridgeLine> = Vec::new();
    let mut row_bridges: BTreeMap<Key, Vec<BridgeLine>> = BTreeMap::new();
    let (value, rows, parts) = match metric.kind {
        MetricKind::Simple | MetricKind::Snapshot | MetricKind::Conversion => {
            let o = run_simple(engine, id, request).await?;
            let value = o.headline();
            let rows = o.rows();
            (value, rows, vec![o])
        }
        MetricKind::Ratio => {
            let n = component(&catalog, metric.numerator.as_deref())?;
            let d = component(&catalog, metric.denominator.as_deref())?;
            let n = run_simple(engine, n, request).await?;
            let d = run_simple(engine, d, request).await?;
            let scale = metric.scale.unwrap_or(RATIO_SCALE);
            let ratio = |a: Option<Dec>, b: Option<Dec>| match (a, b) {
                (Some(a), Some(b)) => a.div(b, scale),
                _ => None,
            };
            let value = ratio(n.headline(), d.headline());
            let numerators: BTreeMap<Key, Option<Dec>> = n.rows().into_iter().collect();
            let rows = d
                .rows()
                .into_iter()
                .map(|(k, dv)| {
                    let nv = numerators.get(&k).copied().flatten().or(Some(Dec::ZERO));
                    let v = ratio(nv, dv);
                    (k, v)
                })
                .collect();
            (value, rows, vec![n, d])
        }
        MetricKind::Cohort => {
            let answer = run_cohort(engine, id, request).await?;
            cohort_bridge = answer.bridge;
            row_bridges = answer.row_bridges;
            (answer.value, answer.rows, answer.parts)
        }
        MetricKind::Derived => {
            let mut parts = Vec::new();
            for input in derived::inputs(engine, id)? {
                let (input_id, _, _) = catalog.metric(&input)?;
                parts.push(run_simple(engine, input_id, request).await?);
            }
            let inputs: Vec<derived::Input> = parts
                .iter()
                .map(|p| derived::Input {
                    name: p.name.clone(),
                    total: p.headline(),
                    rows: p.rows(),
                })
                .collect();
            let (value, rows, plan) = derived::evaluate(engine, id, &inputs).await?;
            derived_plan = Some(plan);
            (value, rows, parts)
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
    let none = BTreeSet::new();
    futures::try_join!(
        futures::future::try_join_all(tables.iter().map(|key| table_gates(
            engine,
            key,
            columns.get(key).unwrap_or(&none)
        ))),
        crate::quality::identity_match_rates(engine, links)
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

/// Runs a cohort metric.
async fn run_cohort(engine: &Engine, id: MetricId, request: &Request) -> Result<CohortAnswer> {
    let catalog = engine.catalog.clone();
    let metric = &catalog.files.metrics[id.file].spec.metrics[id.index];
    let (spec, _) = cohort::spec(engine, id)?;
    let value_kind = spec.value;
    let started = Instant::now();
    let plan = cohort::compile(engine, id, request, true).await?;
    tracing::info!(ms = started.elapsed().as_millis() as u64, "cohort compiled");
    let (t0, t) = (plan.t0, plan.t);
    let slices = plan.slices.clone();
    let bridge_batches = plan.bridge.collect().await?;
    tracing::info!(
        ms = started.elapsed().as_millis() as u64,
        "cohort bridge computed"
    );
    let source_plan = plan.source_plan;
    // Each instant is grouped by the cohort key; when the snapshot's member
    // is that key's expression, members are counted from the cached groups
    // instead of executing the instant's plan a second time for its detail.
    let base = &catalog.files.metrics[plan.base.file].spec.metrics[plan.base.index];
    let key_is_member = base
        .slices
        .iter()
        .find(|s| s.name() == spec.key)
        .is_some_and(|s| base.member.as_deref() == Some(s.expr()));
    let member_slice = key_is_member.then_some(spec.key.as_str());
    // Only the instants' totals and exclusions are reported (the bridge
    // has the per-member values), so their groups are summed over members
    // in the engine instead of read member by member. The exclusions are
    // the cohort's at T0, the instant that defines it (metrics.md): the
    // cohort's members are its keys, so they are counted from the key's
    // groups. T's, over every customer of the snapshot, come second and are
    // labelled as such.
    let (mut at_t0, mut at_t) = futures::try_join!(
        read_simple(
            engine,
            plan.base,
            plan.cohort_t0,
            Some(spec.key.as_str()),
            true
        ),
        read_simple(engine, plan.base, plan.at_t, member_slice, true)
    )?;
    tracing::info!(
        ms = started.elapsed().as_millis() as u64,
        "cohort instants read"
    );
    at_t0.name = format!("cohort at T0 = {t0} ({} > 0)", spec.of);
    at_t.name = format!("{} at T = {t} (every customer, for reference)", spec.of);
    at_t0.plan = source_plan.clone();
    at_t.plan = source_plan;
    let scale = metric.scale.unwrap_or(RATIO_SCALE);
    let mut rows = Vec::new();
    let mut total = [Dec::ZERO; 8];
    for batch in &bridge_batches {
        for i in 0..batch.num_rows() {
            let key: Vec<Option<String>> = (0..slices.len())
                .map(|c| {
                    let a = batch.column(c).as_string::<i32>();
                    (!a.is_null(i)).then(|| a.value(i).to_string())
                })
                .collect();
            let mut line = [Dec::ZERO; 8];
            for (j, v) in line.iter_mut().enumerate() {
                *v = dec_at(batch.column(slices.len() + j).as_ref(), i)?;
                total[j] = total[j] + *v;
            }
            rows.push(((t.to_string(), key), line));
        }
    }
    // The cohort's T0 tally and the bridge select the same groups (counted,
    // ARR at T0 > 0): its counted value is the starting ARR, or the evidence
    // describes another cohort than the number.
    if !(at_t0.included().contribution(Aggregation::Sum) - total[0]).is_zero() {
        return Err(CanonError::Internal(format!(
            "the cohort's T0 tally ({}) differs from the bridge's starting ARR ({})",
            at_t0.included().contribution(Aggregation::Sum),
            total[0]
        )));
    }
    let value_of = |b: &[Dec; 8]| -> Option<Dec> {
        let [start, _, _, _, ending, retained, members, churned_members] = *b;
        match value_kind {
            crate::spec::CohortValue::NetRetention => ending.div(start, scale),
            crate::spec::CohortValue::GrossRetention => retained.div(start, scale),
            crate::spec::CohortValue::GrossChurn => (start - retained).div(start, scale),
            crate::spec::CohortValue::LogoChurn => churned_members.div(members, scale),
        }
    };
    let lines = |b: &[Dec; 8]| -> Vec<BridgeLine> {
        let [
            start,
            expansion,
            contraction,
            churned,
            ending,
            _,
            members,
            churned_members,
        ] = *b;
        let line = |n: &str, v: Dec| BridgeLine {
            line: n.to_string(),
            value: v,
        };
        vec![
            line("starting", start),
            line("expansion", expansion),
            line("contraction", Dec::ZERO - contraction),
            line("churned", Dec::ZERO - churned),
            line("ending", ending),
            line("cohort_members", members),
            line("churned_members", churned_members),
        ]
    };
    let mut out_rows = Vec::new();
    let mut bridges = BTreeMap::new();
    for (key, line) in &rows {
        out_rows.push((key.clone(), value_of(line)));
        bridges.insert(key.clone(), lines(line));
    }
    if slices.is_empty() {
        out_rows.clear();
        bridges.clear();
    }
    let empty = rows.is_empty();
    Ok(CohortAnswer {
        value: if empty { None } else { value_of(&total) },
        rows: out_rows,
        bridge: if empty { Vec::new() } else { lines(&total) },
        row_bridges: bridges,
        parts: vec![at_t0, at_t],
    })
}

/// A decimal or integer cell as a [`Dec`]; null is zero.
fn dec_at(a: &dyn Array, i: usize) -> Result<Dec> {
    match Dec::from_cell(a, i) {
        Some(d) => Ok(d),
        None if a.is_null(i) => Ok(Dec::ZERO),
        None => Err(CanonError::Internal(format!(
            "bridge column of type {}",
            a.data_type()
        ))),
    }
}

fn component(catalog: &Catalog, name: Option<&str>) -> Result<MetricId> {
    let name = name.ok_or_else(|| CanonError::Internal("ratio without a part".into()))?;
    Ok(catalog.metric(name)?.0)
}

async fn run_simple(engine: &Engine, id: MetricId, request: &Request) -> Result<SimpleOutcome> {
    let catalog = engine.catalog.clone();
    let metric = &catalog.files.metrics[id.file].spec.metrics[id.index];
    if metric.whole_accounting_periods {
        check_whole_accounting_periods(engine, metric, request).await?;
    }
    let plan = crate::compile::compile_aggregate(engine, id, request).await?;
    read_simple(engine, id, plan, None, false).await
}

/// Executes a compiled aggregate and reads its groups and tallies. With
/// `member_slice`, the frame is grouped by a slice that is the metric's
/// member, and members are counted from the groups rather than from the
/// detail plan. With `totals_only`, the groups are summed over the slices in
/// the engine first (a cohort instant reports totals, not its members).
async fn read_simple(
    engine: &Engine,
    id: MetricId,
    plan: simple::SimplePlan,
    member_slice: Option<&str>,
    totals_only: bool,
) -> Result<SimpleOutcome> {
    let catalog = engine.catalog.clone();
    let metric = &catalog.files.metrics[id.file].spec.metrics[id.index];
    let optimized = plan.frame.clone().into_optimized_plan()?;
    let zero = Acc {
        sum: Dec::new(
            0,
            match optimized
                .schema()
                .field_with_unqualified_name("_sum")?
                .data_type()
            {
                DataType::Decimal128(_, s) => (*s).max(0) as u32,
                _ => 0,
            },
        ),
        ..Acc::ZERO
    };
    let slice_members = match member_slice {
        Some(slice) => Some(member_counts(plan.frame.clone(), slice).await?),
        None => None,
    };
    // A snapshot's exclusions and members are tallied at its last day, the
    // state its headline is (a charge in force at twelve month-ends is one
    // charge of the universe, not twelve).
    let point_in_time = metric.kind == MetricKind::Snapshot;
    let last_day = plan
        .buckets
        .last()
        .filter(|_| point_in_time && plan.buckets.len() > 1);
    let (frame, slices) = if totals_only {
        (over_all_slices(plan.frame.clone())?, Vec::new())
    } else {
        (plan.frame.clone(), plan.slices.clone())
    };
    let batches = frame.collect().await?;
    let scale = metric.scale.unwrap_or(match plan.agg {
        Aggregation::Avg => AVG_SCALE,
        _ => 0,
    });
    let mut groups = BTreeMap::new();
    let mut excluded: BTreeMap<String, Acc> = BTreeMap::new();
    let mut missing_rate = 0i64;
    for batch in &batches {
        read_groups(
            batch,
            slices.len(),
            last_day.map(|b| b.label.as_str()),
            &mut groups,
            &mut excluded,
            &mut missing_rate,
        )?;
    }
    if missing_rate > 0 {
        return Err(CanonError::data(
            fx_location(&catalog),
            format!(
                "{missing_rate} row(s) of `{}` are in a currency with no conversion rate in force on their date",
                metric.name
            ),
        ));
    }
    let members = match (&metric.member, metric.kind, slice_members) {
        (_, _, Some(counts)) => Some(counts),
        // A conversion metric's rows are its members (one group per member
        // before the count): its member counts are its row counts.
        (_, MetricKind::Conversion, None) => {
            let mut counts: BTreeMap<Option<String>, i64> = excluded
                .iter()
                .map(|(name, acc)| (Some(name.clone()), acc.rows))
                .collect();
            counts.insert(None, groups.values().map(|acc: &Acc| acc.rows).sum());
            Some(counts)
        }
        (Some(_), _, None) => {
            let detail = match last_day {
                Some(b) => simple::detail_at(plan.detail.clone(), b.from)?,
                None => plan.detail.clone(),
            };
            Some(member_counts(detail, "_member").await?)
        }
        _ => None,
    };
    let excluded = plan
        .exclusions
        .iter()
        .map(|(n, r)| {
            (
                n.clone(),
                r.clone(),
                excluded.get(n).copied().unwrap_or(zero),
            )
        })
        .collect();
    Ok(SimpleOutcome {
        id,
        name: metric.name.clone(),
        agg: plan.agg,
        scale,
        slices,
        buckets: plan.buckets.iter().map(|b| b.label.clone()).collect(),
        periods: plan.buckets.clone(),
        groups,
        excluded,
        plan: optimized,
        zero,
        members,
        point_in_time,
    })
}

/// A finance metric's period must start where an accounting period starts and
/// end where one ends, or part of a period's revenue would be silently cut.
pub(crate) async fn check_whole_accounting_periods(
    engine: &Engine,
    metric: &MetricSpec,
    request: &Request,
) -> Result<()> {
    let batches = entity_frame(engine, "accounting_period")
        .await?
        .select_columns(&["start_date", "end_date"])?
        .collect()
        .await?;
    let mut starts = BTreeSet::new();
    let mut ends = BTreeSet::new();
    for b in &batches {
        let s = b.column(0).as_primitive::<Date32Type>();
        let e = b.column(1).as_primitive::<Date32Type>();
        for i in 0..b.num_rows() {
            if !s.is_null(i) && !e.is_null(i) {
                starts.insert(s.value(i));
                // end_date is inclusive: the next period starts the day after.
                ends.insert(e.value(i) + 1);
            }
        }
    }
    let mut bounds = vec![request.period.from, request.period.to];
    if let Some(g) = request.grain {
        for b in engine.catalog.calendar.buckets(&request.period, g) {
            bounds.push(b.from);
            bounds.push(b.to);
        }
    }
    for (i, d) in bounds.iter().enumerate() {
        let day = simple::days_since_epoch(*d);
        let ok = if i % 2 == 0 {
            starts.contains(&day)
        } else {
            ends.contains(&day)
        };
        if !ok {
            return Err(CanonError::request(format!(
                "`{}` is computed over whole accounting periods, and {d} is not where one {} (finance/accounting_period)",
                metric.name,
                if i % 2 == 0 { "starts" } else { "ends" }
            )));
        }
    }
    Ok(())
}

/// A simple plan's aggregate summed over its slices: one row per bucket and
/// exclusion, with the columns `read_groups` reads.
fn over_all_slices(
    frame: datafusion::prelude::DataFrame,
) -> Result<datafusion::prelude::DataFrame> {
    use datafusion::functions_aggregate::expr_fn::sum;
    use datafusion::logical_expr::col;
    Ok(frame.aggregate(
        vec![col("_period"), col("_exclusion")],
        vec![
            sum(col("_rows")).alias("_rows"),
            sum(col("_sum")).alias("_sum"),
            sum(col("_count")).alias("_count"),
            sum(col("_missing_rate")).alias("_missing_rate"),
        ],
    )?)
}

/// Distinct members per exclusion label (null = counted) from a plan's detail.
async fn member_counts(
    rows: datafusion::prelude::DataFrame,
    member: &str,
) -> Result<BTreeMap<Option<String>, i64>> {
    use datafusion::functions_aggregate::expr_fn::count_distinct;
    use datafusion::logical_expr::col;
    let batches = rows
        .aggregate(
            vec![col("_exclusion")],
            vec![count_distinct(col(member)).alias("_members")],
        )?
        .collect()
        .await?;
    let mut out = BTreeMap::new();
    for b in &batches {
        let labels = b.column(0).as_string::<i32>();
        let counts = b.column(1).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            let label = (!labels.is_null(i)).then(|| labels.value(i).to_string());
            out.insert(label, counts.value(i));
        }
    }
    Ok(out)
}

fn fx_location(catalog: &Catalog) -> DataLocation {
    match catalog.entity("fx_rate") {
        Some((_, model, e)) => DataLocation {
            system: model.spec.system.clone(),
            table: e.source.clone(),
            file: None,
            column: None,
        },
        None => DataLocation::default(),
    }
}

/// Adds a batch of `_period, slices…, _exclusion, _rows, _sum, _count,
/// _missing_rate` groups to `groups` (counted) and `excluded` (by
/// exclusion; only `tally_period`'s when given).
fn read_groups(
    batch: &RecordBatch,
    slices: usize,
    tally_period: Option<&str>,
    groups: &mut BTreeMap<Key, Acc>,
    excluded: &mut BTreeMap<String, Acc>,
    missing_rate: &mut i64,
) -> Result<()> {
    let strings = |i: usize| batch.column(i).as_string_opt::<i32>();
    let ints = |i: usize| batch.column(i).as_primitive_opt::<Int64Type>();
    let internal = || CanonError::Internal("unexpected result column types".into());
    let period = strings(0).ok_or_else(internal)?;
    let slice_cols: Vec<_> = (1..=slices)
        .map(strings)
        .collect::<Option<_>>()
        .ok_or_else(internal)?;
    let exclusion = strings(slices + 1).ok_or_else(internal)?;
    let rows = ints(slices + 2).ok_or_else(internal)?;
    let sum_col = batch.column(slices + 3);
    let count = ints(slices + 4).ok_or_else(internal)?;
    let missing = ints(slices + 5).ok_or_else(internal)?;
    for i in 0..batch.num_rows() {
        let null_scale = match sum_col.data_type() {
            DataType::Decimal128(_, s) => (*s).max(0) as u32,
            _ => 0,
        };
        let sum = if sum_col.is_null(i) {
            Dec::new(0, null_scale)
        } else {
            match sum_col.data_type() {
                DataType::Decimal128(_, s) => Dec::new(
                    sum_col.as_primitive::<Decimal128Type>().value(i),
                    (*s).max(0) as u32,
                ),
                DataType::Int64 => Dec::from_int(sum_col.as_primitive::<Int64Type>().value(i)),
                other => {
                    return Err(CanonError::request(format!(
                        "a measure must be a decimal or an integer, not {other}; cast it in the metric's `measure.expr`"
                    )));
                }
            }
        };
        let acc = Acc {
            rows: rows.value(i),
            sum,
            count: count.value(i),
        };
        *missing_rate += if missing.is_null(i) {
            0
        } else {
            missing.value(i)
        };
        if exclusion.is_null(i) {
            let key = (
                period.value(i).to_string(),
                slice_cols
                    .iter()
                    .map(|c| (!c.is_null(i)).then(|| c.value(i).to_string()))
                    .collect(),
            );
            let e = groups.entry(key).or_insert(Acc::ZERO);
            *e = e.add(acc);
        } else if tally_period.is_none_or(|p| p == period.value(i)) {
            let e = excluded
                .entry(exclusion.value(i).to_string())
                .or_insert(Acc::ZERO);
            *e = e.add(acc);
        }
    }
    Ok(())
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
    let mut columns: BTreeMap<String, BTreeSet<String>> = engine.side_reads();
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
fn fingerprint(definitions: &[DefinitionRef], request: &Request, lineage: &Lineage) -> String {
    let mut h = Sha256::new();
    for d in definitions {
        h.update(d.sha256.as_bytes());
    }
    h.update(serde_json::to_vec(request).unwrap_or_default());
    for s in &lineage.sources {
        for f in &s.files {
            h.update(f.sha256.as_bytes());
        }
    }
    hex::encode(h.finalize())
}
