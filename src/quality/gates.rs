//! Which row-count gates a result needs, running them, and remembering
//! their outcomes.
//!
//! A governed result never counts a row twice silently. So a query gates,
//! beside its computation, on
//! - the key uniqueness of the rows it counts (a simple metric's rows in the
//!   requested period after its filter, a snapshot's rows after its filter);
//! - the key uniqueness of every entity it looks up through a link
//!   (accounts, billing accounts, subscriptions, …), over all their rows;
//! - the exclusive intervals of every entity it reads that declares them
//!   (`fx_rate`: one rate per currency and day).
//!
//! A conversion metric counts members (the first moment of each person),
//! which a repeated event cannot count twice, so its events are not gated;
//! the entities it looks up are. History entities are read as "the latest
//! row on or before D" (one per key by construction) and merge audits as a
//! map, so neither can repeat a row either.
//!
//! A gate's outcome depends only on the rows it reads, so it is remembered
//! in the cache folder (`gates/`) under the gate's plan (the scan,
//! projection and filters, literals included), the definitions, the canon
//! build and the content hashes of the files of every table the plan
//! scans. A warm run looks the hashes up by file identity (a `stat`), and
//! recomputes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use datafusion::logical_expr::Expr;
use datafusion::prelude::DataFrame;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::subject::{Subject, source_paths};
use super::{Status, TableCheck};
use crate::catalog::Catalog;
use crate::error::{CanonError, Result};
use crate::request::Resolved;
use crate::run::{Engine, LinkSet};
use crate::spec::{EntitySpec, Overlap};

/// One row-count gate.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Gate {
    /// Key uniqueness over every row of an entity (one a result looks up).
    Unique(String),
    /// Key uniqueness over the rows a simple or snapshot metric counts for
    /// the request: a flow's period, or a snapshot's as-of days (a
    /// cohort's T0 and T).
    Counted(String, Vec<chrono::NaiveDate>),
    /// No overlap of an entity's exclusive validity intervals per key.
    Intervals(String),
    /// Uniqueness of a field an entity declares unique among some of its
    /// rows (`unique:` in models/, by index): one latest version per
    /// subscription.
    Declared(String, usize),
    /// Every set foreign key of a link declared `required` finds a record:
    /// (entity, link name).
    Required(String, String),
}

impl Gate {
    /// The check it reports as (and `--allow` names).
    fn check_name(&self) -> &'static str {
        match self {
            Gate::Intervals(_) => super::intervals::GATE,
            Gate::Unique(_) | Gate::Counted(..) => super::uniqueness::GATE,
            // Its own name, so an override kept for duplicate keys does not
            // also let two latest versions through, nor the reverse.
            Gate::Declared(..) => DECLARED,
            Gate::Required(..) => super::required_links::GATE,
        }
    }

    /// The entity it reads.
    fn entity(&self, catalog: &Catalog) -> Option<String> {
        match self {
            Gate::Unique(e) | Gate::Intervals(e) | Gate::Declared(e, _) | Gate::Required(e, _) => {
                Some(e.clone())
            }
            Gate::Counted(m, _) => catalog.metric(m).ok()?.2.entity.clone(),
        }
    }
}

/// The check a declared `unique:` rule reports as, and `--allow` names.
pub const DECLARED: &str = "declared_unique";

/// The gates of the fields `entity` declares unique among some rows.
fn declared(catalog: &Catalog, entity: &str) -> Vec<Gate> {
    catalog
        .entity(entity)
        .map(|(_, _, spec)| {
            (0..spec.unique.len())
                .map(|i| Gate::Declared(entity.to_string(), i))
                .collect()
        })
        .unwrap_or_default()
}

/// Adds to `gates` the declared-unique gates of every entity they read.
fn with_declared(catalog: &Catalog, gates: &mut BTreeSet<Gate>) {
    let entities: BTreeSet<String> = gates.iter().filter_map(|g| g.entity(catalog)).collect();
    for entity in entities {
        gates.extend(declared(catalog, &entity));
    }
}

fn exclusive(spec: &EntitySpec) -> bool {
    spec.intervals
        .as_ref()
        .is_some_and(|i| i.overlap == Overlap::Exclusive)
}

/// The gate for reading every row of `entity` by its key.
fn lookup_gate(catalog: &Catalog, entity: &str) -> Option<Gate> {
    let (_, _, spec) = catalog.entity(entity)?;
    Some(if exclusive(spec) {
        Gate::Intervals(entity.to_string())
    } else {
        Gate::Unique(entity.to_string())
    })
}

/// The gates of a query of `metric` (its counted rows; `None` for a
/// side query's late tables and links), the entities its `links` join and
/// the interval entities whose tables are among `tables`.
pub fn for_query(
    engine: &Engine,
    metric: Option<(&str, &Resolved)>,
    tables: &[String],
    links: &LinkSet,
) -> Result<BTreeSet<Gate>> {
    let catalog = &engine.catalog;
    let mut out = BTreeSet::new();
    if let Some((name, request)) = metric {
        let (_, _, spec) = catalog.metric(name)?;
        // The days the metric asked for counts at (a cohort's T0 and T),
        // and each part's counted rows at them, as its kind says.
        let instants = crate::compile::kind_of(spec.kind).instants(request);
        for part in crate::compile::parts(engine, name)? {
            let (_, _, spec) = catalog.metric(&part)?;
            let Some(entity) = spec.entity.as_deref() else {
                continue;
            };
            let Some(days) = crate::compile::kind_of(spec.kind).counted_at(&instants) else {
                continue;
            };
            match catalog.entity(entity).map(|(_, _, e)| exclusive(e)) {
                Some(true) => out.insert(Gate::Intervals(entity.to_string())),
                Some(false) => out.insert(Gate::Counted(part.clone(), days)),
                None => false,
            };
        }
    }
    for (entity, name) in links {
        if let Ok(link) = crate::compile::entity::find_link(catalog, entity, name) {
            out.extend(lookup_gate(catalog, &link.entity));
            if link.required {
                out.insert(Gate::Required(entity.clone(), name.clone()));
            }
        }
    }
    for (name, id) in &catalog.entities {
        let model = &catalog.files.models[id.file];
        let spec = &model.spec.entities[id.index];
        let read = tables.contains(&format!("{}/{}", model.spec.system, spec.source));
        if exclusive(spec) && read {
            out.insert(Gate::Intervals(name.clone()));
        }
        // Every entity over a table the query reads: a conversion's events
        // and a history are gated on nothing else.
        if read {
            out.extend(declared(catalog, name));
        }
    }
    with_declared(catalog, &mut out);
    Ok(out)
}

/// The gates `canon check` runs: every entity a link looks up or a simple
/// or snapshot metric counts, over all its rows, and every entity with
/// exclusive intervals.
pub fn for_catalog(catalog: &Catalog) -> BTreeSet<Gate> {
    let mut out = BTreeSet::new();
    for id in catalog.entities.values() {
        let spec = &catalog.files.models[id.file].spec.entities[id.index];
        for link in &spec.links {
            out.extend(lookup_gate(catalog, &link.entity));
            if link.required {
                out.insert(Gate::Required(spec.name.clone(), link.name.clone()));
            }
        }
        if exclusive(spec) {
            out.insert(Gate::Intervals(spec.name.clone()));
        }
        out.extend(declared(catalog, &spec.name));
    }
    for file in &catalog.files.metrics {
        for m in &file.spec.metrics {
            if crate::compile::kind_of(m.kind).counted_at(&[]).is_some()
                && let Some(e) = &m.entity
            {
                out.extend(lookup_gate(catalog, e));
            }
        }
    }
    with_declared(catalog, &mut out);
    out
}

/// Whether this run skips the row-count gates: only a `bench-switches`
/// build (the benchmark harness's, to time what the gates cost against the
/// same binary) with `CANON_BENCH_SKIP_ROW_GATES=1`; any other value, and
/// every other build, runs them. Such a run must not remember or serve a
/// result (the CLI requires `--no-cache` with it) nor publish one.
pub fn bench_skips_row_gates() -> bool {
    cfg!(feature = "bench-switches")
        && std::env::var_os("CANON_BENCH_SKIP_ROW_GATES").is_some_and(|v| v == "1")
}

/// Runs `gates` side by side; `request` scopes the counted rows.
pub async fn run_all(
    engine: &Engine,
    gates: &BTreeSet<Gate>,
    request: Option<&Resolved>,
) -> Result<Vec<TableCheck>> {
    if bench_skips_row_gates() {
        return Ok(Vec::new());
    }
    // A counted gate is covered by a lookup gate over all the entity's rows.
    let whole: BTreeSet<String> = gates
        .iter()
        .filter_map(|g| match g {
            Gate::Unique(e) | Gate::Intervals(e) => Some(e.clone()),
            Gate::Counted(..) | Gate::Declared(..) | Gate::Required(..) => None,
        })
        .collect();
    let mut work = Vec::new();
    for gate in gates {
        // Whether the entity's all-rows outcome can stand for a counted
        // gate (its rows are the entity's own), worked out once per gate.
        let mut own_rows = false;
        if let Gate::Counted(m, days) = gate {
            let entity = engine.catalog.metric(m)?.2.entity.clone();
            own_rows = !counted_through_join(engine, m, request, days).await?;
            if own_rows && entity.is_some_and(|e| whole.contains(&e)) {
                continue;
            }
        }
        work.push(run_first_whole(engine, gate, request, own_rows));
    }
    let mut checks = futures::future::try_join_all(work).await?;
    // Two snapshot parts over one entity may both stand on its all-rows
    // outcome: reported once.
    let mut seen = BTreeSet::new();
    checks.retain(|c| seen.insert((c.check, c.table.clone(), c.column.clone(), c.detail.clone())));
    Ok(checks)
}

/// Whether the rows `metric` counts come through a join (a linked field
/// of its entity, a link its time or validity reads, a merge map): a join
/// can repeat a row whose key is unique among the entity's own rows, so
/// then only a gate over the counted rows themselves vouches for them,
/// never one over the entity's rows. Planned only, links not noted.
async fn counted_through_join(
    engine: &Engine,
    metric: &str,
    request: Option<&Resolved>,
    days: &[chrono::NaiveDate],
) -> Result<bool> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::logical_expr::LogicalPlan;
    let catalog = &engine.catalog;
    let entity = catalog.metric(metric)?.2.entity.clone().unwrap_or_default();
    let subject = Subject::of(catalog, &entity)?;
    let (rows, _, _) = engine
        .without_noting_links(counted_rows(engine, &subject, metric, request, days))
        .await?;
    let mut join = false;
    rows.logical_plan().apply(|node| {
        Ok(if matches!(node, LogicalPlan::Join(_)) {
            join = true;
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    })?;
    Ok(join)
}

/// A snapshot's counted rows are judged over every row of its entity
/// first, when they are the entity's own rows (`own_rows`: no join, which
/// could repeat a row, [`counted_through_join`]): keys unique over all rows are unique
/// over any of them, and the
/// key column alone costs less to read than the validity columns that pick
/// the rows in force (a snapshot's interval filter prunes little; nrr −5 %,
/// docs/performance.md). Only when all rows repeat a key is the counted
/// gate run, and its outcome (which may pass: the repeat can lie outside
/// the rows in force) is the one reported. A flow's period prunes most of
/// a table, so its counted rows are judged directly.
async fn run_first_whole(
    engine: &Engine,
    gate: &Gate,
    request: Option<&Resolved>,
    own_rows: bool,
) -> Result<TableCheck> {
    if let Gate::Counted(metric, days) = gate
        && own_rows
        && !days.is_empty()
        && let Some(entity) = engine.catalog.metric(metric)?.2.entity.clone()
    {
        let whole = run(engine, &Gate::Unique(entity), request).await?;
        if whole.status == Status::Pass {
            return Ok(whole);
        }
    }
    run(engine, gate, request).await
}

/// One gate: its rows planned, then its outcome remembered or computed.
pub async fn run(engine: &Engine, gate: &Gate, request: Option<&Resolved>) -> Result<TableCheck> {
    let started = std::time::Instant::now();
    let check = run_gate(engine, gate, request).await?;
    tracing::info!(
        gate = check.check,
        table = %check.table,
        ms = started.elapsed().as_millis() as u64,
        "gate checked"
    );
    Ok(check)
}

async fn run_gate(engine: &Engine, gate: &Gate, request: Option<&Resolved>) -> Result<TableCheck> {
    let started_plan = std::time::Instant::now();
    let catalog = &engine.catalog;
    let kind = gate.check_name();
    let entity = gate.entity(catalog).unwrap_or_default();
    let mut subject = Subject::of(catalog, &entity)?;
    let (rows, key, scope) = match gate {
        Gate::Counted(m, days) => counted_rows(engine, &subject, m, request, days).await?,
        Gate::Required(..) | Gate::Declared(..) => {
            let (rows, field, scope) = match gate {
                Gate::Required(_, link) => dangling_rows(engine, &subject, link).await?,
                Gate::Declared(_, index) => declared_rows(engine, &subject, *index).await?,
                _ => return Err(CanonError::Internal("a field gate of no field".into())),
            };
            // The field stands for the key in what the check says and in
            // the files it finds the offending values in.
            subject.key = field;
            let key = Expr::Column(datafusion::common::Column::from_name(&subject.key));
            (rows, key, scope)
        }
        _ => (
            entity_rows(engine, &subject).await?,
            Expr::Column(datafusion::common::Column::from_name(&subject.key)),
            "all rows".to_string(),
        ),
    };
    tracing::debug!(
        ms = started_plan.elapsed().as_millis() as u64,
        "gate planned"
    );
    // What the outcome is of, beyond the rows: two entities over one source
    // with the same fields have the same plan but not the same key (or
    // validity fields), and must not share an outcome.
    let intervals = subject
        .spec(catalog)
        .intervals
        .as_ref()
        .map(|iv| format!("{} {}", iv.from, iv.to))
        .unwrap_or_default();
    let identity = format!("{}\n{key}\n{intervals}\n{scope}", subject.entity);
    // One outcome per run for one gate over the same rows: the bridge's two
    // governed sides look up the same accounts.
    let plan = rows.logical_plan().display_indent().to_string();
    let once = engine
        .shared::<tokio::sync::OnceCell<TableCheck>>(&format!("gate {kind}\n{identity}\n{plan}"));
    let check = once
        .get_or_try_init(|| decide(engine, gate, &subject, rows, key, &scope, &identity))
        .await?;
    Ok(check.clone())
}

/// A gate's outcome over `rows`: remembered, else computed and remembered.
async fn decide(
    engine: &Engine,
    gate: &Gate,
    subject: &Subject,
    rows: DataFrame,
    key: Expr,
    scope: &str,
    identity: &str,
) -> Result<TableCheck> {
    let catalog = &engine.catalog;
    let kind = gate.check_name();
    let memo = Memo::new(engine, kind, identity, &rows).await;
    if let Some(check) = memo.as_ref().and_then(|m| m.lookup()) {
        tracing::info!(gate = kind, table = %check.table, "gate outcome remembered");
        return Ok(check);
    }
    let check = match gate {
        Gate::Intervals(_) => {
            let iv = subject.spec(catalog).intervals.clone().ok_or_else(|| {
                CanonError::Internal(format!("`{}` has no intervals", subject.entity))
            })?;
            super::intervals::check(engine, subject, rows, &iv.from, &iv.to).await?
        }
        Gate::Required(_, link) => {
            let target = crate::compile::entity::find_link(catalog, &subject.entity, link)?
                .entity
                .clone();
            super::required_links::check(engine, subject, rows, key, (link, &target)).await?
        }
        _ => {
            let mut check = super::uniqueness::check(engine, subject, rows, key, scope).await?;
            check.check = kind;
            check
        }
    };
    if let Some(memo) = memo {
        memo.store(engine, &check).await;
    }
    Ok(check)
}

/// The entity's rows with its fields unqualified: its plain fields only
/// (one scan of its source, no joins) when they hold the key, else the
/// whole entity.
async fn entity_rows(engine: &Engine, subject: &Subject) -> Result<DataFrame> {
    let plain = engine.entity_plain_frame(&subject.entity).await?;
    if plain
        .schema()
        .has_column_with_unqualified_name(&subject.key)
    {
        Ok(plain)
    } else {
        engine.entity_frame(&subject.entity).await
    }
}

/// The rows of the entity whose link `link` (declared required) finds no
/// record: its foreign key set, and no record of the linked entity with
/// that key. Returns them, the foreign key's field and the scope.
async fn dangling_rows(
    engine: &Engine,
    subject: &Subject,
    link: &str,
) -> Result<(DataFrame, String, String)> {
    use datafusion::logical_expr::{ExprSchemable, JoinType};
    let catalog = &engine.catalog;
    let spec = crate::compile::entity::find_link(catalog, &subject.entity, link)?.clone();
    let (_, _, target_spec) = catalog
        .entity(&spec.entity)
        .ok_or_else(|| CanonError::Internal(format!("link to unknown entity {}", spec.entity)))?;
    let index = subject
        .spec(catalog)
        .links
        .iter()
        .position(|l| l.name == link)
        .unwrap_or_default();
    let refused = |why: String| {
        CanonError::definition(
            catalog.entity_at(subject.id, &crate::yaml_path!["links", index, "required"]),
            why,
        )
    };
    // The foreign key as the source holds it: one built through another
    // link is null where that link finds nothing, which this gate (and
    // completeness, which reads source columns) would pass as "not set".
    let rows = engine.entity_plain_frame(&subject.entity).await?;
    if !rows.schema().has_column_with_unqualified_name(&spec.field) {
        return Err(refused(format!(
            "`required` on link `{link}`: its field `{}` is built through another link; a \
             required link's field must be read from the entity's own source",
            spec.field
        )));
    }
    let fk = Expr::Column(datafusion::common::Column::from_name(&spec.field));
    let mut target = engine.entity_plain_frame(&spec.entity).await?;
    if !target
        .schema()
        .has_column_with_unqualified_name(&target_spec.key)
    {
        target = engine.entity_frame(&spec.entity).await?;
    }
    let key = Expr::Column(datafusion::common::Column::from_name(&target_spec.key));
    let key_type = key.get_type(target.schema())?;
    let fk_type = fk.get_type(rows.schema())?;
    // Alike, or the gate's equality and the metric's join could differ
    // (a join compares 38.5 with 38 as no match; a cast would find one).
    if fk_type != key_type {
        return Err(refused(format!(
            "`required` on link `{link}`: its field `{}` is {fk_type} and `{}`'s key `{}` is \
             {key_type}; a required link needs them of one type",
            spec.field, spec.entity, target_spec.key
        )));
    }
    let keys = target
        .select(vec![key.alias("_required_key")])?
        .alias("_required")?;
    let dangling = rows.filter(fk.clone().is_not_null())?.join_on(
        keys,
        JoinType::LeftAnti,
        [fk.eq(Expr::Column(datafusion::common::Column::new(
            Some("_required"),
            "_required_key",
        )))],
    )?;
    let scope = format!("link `{link}` to `{}`", spec.entity);
    Ok((dangling, spec.field.clone(), scope))
}

/// The rows among which the entity's `index`th declared field is unique
/// (its `among`, over the entity's own fields), the field, and what the
/// check calls them.
async fn declared_rows(
    engine: &Engine,
    subject: &Subject,
    index: usize,
) -> Result<(DataFrame, String, String)> {
    use crate::yaml_path;
    let catalog = &engine.catalog;
    let rule = subject
        .spec(catalog)
        .unique
        .get(index)
        .cloned()
        .ok_or_else(|| {
            CanonError::Internal(format!("`{}` has no unique #{index}", subject.entity))
        })?;
    // The plain fields when they hold what the rule reads (one scan, no
    // joins), else the whole entity (a field built through a link).
    let location =
        |step: &'static str| catalog.entity_at(subject.id, &yaml_path!["unique", index, step]);
    let plain = engine.entity_plain_frame(&subject.entity).await?;
    let fits = |rows: &DataFrame| {
        rows.schema().has_column_with_unqualified_name(&rule.field)
            && rule.among.as_deref().is_none_or(|among| {
                crate::compile::parse_scoped(engine, among, rows.schema(), None, &location("among"))
                    .is_ok()
            })
    };
    let mut rows = if fits(&plain) {
        plain
    } else {
        engine.entity_frame(&subject.entity).await?
    };
    if !rows.schema().has_column_with_unqualified_name(&rule.field) {
        return Err(CanonError::definition(
            location("field"),
            format!(
                "`{}` is not a field of entity `{}`",
                rule.field, subject.entity
            ),
        ));
    }
    let mut scope = String::from("all rows");
    if let Some(among) = &rule.among {
        use datafusion::logical_expr::ExprSchemable;
        let schema = rows.schema().clone();
        let predicate =
            crate::compile::parse_scoped(engine, among, &schema, None, &location("among"))?;
        let ty = predicate.get_type(&schema)?;
        if ty != datafusion::arrow::datatypes::DataType::Boolean {
            return Err(CanonError::definition(
                location("among"),
                format!(
                    "`among` must be true or false for each row of `{}`; `{among}` is {ty}",
                    subject.entity
                ),
            ));
        }
        rows = rows.filter(predicate)?;
        scope = format!("rows where {among}");
    }
    Ok((
        rows,
        rule.field.clone(),
        format!("{scope}: {}", rule.reason.trim()),
    ))
}

/// The rows metric `name` counts, as its own plan selects them: the
/// metric's frame (its entity and the links its time and validity read), a
/// flow's rows whose time is in the requested period, a snapshot's rows in
/// force at one of `days` (`valid`), each after the conjuncts of the
/// metric's filter over the entity's own fields. What is left out (a
/// filter over a linked entity, a history's state, which is the latest row
/// per key and cannot repeat one) only widens the rows: more are checked,
/// never fewer. Returns the rows, the key column and a description.
async fn counted_rows(
    engine: &Engine,
    subject: &Subject,
    name: &str,
    request: Option<&Resolved>,
    days: &[chrono::NaiveDate],
) -> Result<(DataFrame, Expr, String)> {
    use crate::compile::bounds::{bound, next_day, period_filter};
    use crate::compile::entity::{all_link_paths, link_path, metric_schema};
    use crate::yaml_path;
    use datafusion::logical_expr::ExprSchemable;
    let catalog = &engine.catalog;
    let entity = subject.entity.as_str();
    let (id, _, metric) = catalog.metric(name)?;
    let at = |path: &[crate::spec::locate::Step]| catalog.metric_at(id, path);
    let flow = crate::compile::kind_of(metric.kind).counts_in_period();
    let mut sqls: Vec<(&str, crate::error::Location)> = Vec::new();
    let time = metric.time.as_deref().filter(|_| flow).zip(request);
    if let Some((t, _)) = time {
        sqls.push((t, at(&yaml_path!["time"])));
    }
    let valid = metric.valid.as_ref().filter(|_| !flow && !days.is_empty());
    if let Some(v) = valid {
        sqls.push((&v.from, at(&yaml_path!["valid", "from"])));
        if let Some(to) = &v.to {
            sqls.push((to, at(&yaml_path!["valid", "to"])));
        }
    }
    if let Some(f) = &metric.filter {
        sqls.push((f, at(&yaml_path!["filter"])));
    }
    // The links the time and validity read, as the compiler finds them
    // (a period of accounting periods windows revenue lines by a join to
    // a small table). The filter joins nothing: its conjuncts over linked
    // entities are left out, so more rows are checked, never fewer, and a
    // repeated lookup is blamed by its own gate rather than here.
    let full = metric_schema(engine, entity, &all_link_paths(catalog, entity)).await?;
    let links_of = |e: &Expr| -> BTreeSet<crate::compile::entity::LinkPath> {
        e.column_refs()
            .into_iter()
            .filter_map(|c| c.relation.as_ref().and_then(|r| link_path(r, entity)))
            .collect()
    };
    let mut links = BTreeSet::new();
    let mut readable = BTreeSet::new();
    for (sql, loc) in &sqls {
        if let Ok(e) = crate::compile::parse_scoped(engine, sql, &full, Some(entity), loc) {
            readable.insert(*sql);
            if Some(*sql) != metric.filter.as_deref() {
                links.extend(links_of(&e));
            }
        }
    }
    let own_filter: Vec<Expr> = match metric.filter.as_deref().filter(|f| readable.contains(f)) {
        Some(f) => {
            let e = crate::compile::parse_scoped(
                engine,
                f,
                &full,
                Some(entity),
                &at(&yaml_path!["filter"]),
            )?;
            datafusion::logical_expr::utils::split_conjunction(&e)
                .into_iter()
                .filter(|c| links_of(c).is_subset(&links))
                .cloned()
                .collect()
        }
        None => Vec::new(),
    };
    let mut rows = engine.metric_frame(entity, &links).await?;
    let schema = rows.schema().clone();
    let parse = |sql: &str, loc: &crate::error::Location| -> Option<Expr> {
        readable
            .contains(sql)
            .then(|| crate::compile::parse_scoped(engine, sql, &schema, Some(entity), loc).ok())?
    };
    let mut scope = format!("rows `{name}` counts");
    let mut predicate: Option<Expr> = None;
    let mut and = |p: Expr| {
        predicate = Some(match predicate.take() {
            Some(q) => q.and(p),
            None => p,
        })
    };
    if let Some((sql, request)) = time
        && let Some(t) = parse(sql, &at(&yaml_path!["time"]))
        && let Some(range) = period_filter(request, &t, &t.get_type(&schema)?, &request.period)
    {
        and(range);
        scope = format!("rows `{name}` counts in {}", request.period.label);
    }
    if let Some(v) = valid
        && let Some(request) = request
        && let Some(from) = parse(&v.from, &at(&yaml_path!["valid", "from"]))
    {
        let to =
            v.to.as_deref()
                .and_then(|t| parse(t, &at(&yaml_path!["valid", "to"])));
        let (from_ty, to_ty) = (
            from.get_type(&schema)?,
            to.as_ref().map(|t| t.get_type(&schema)).transpose()?,
        );
        // In force at some time from the first day to the last: started
        // before the last day ends and, with an end, not ended by the first
        // day's end. A superset of the rows in force at one of the days (more
        // are checked, never fewer) in one pair of bounds: an OR per day is
        // an expression thousands deep for a daily series.
        let first = days.iter().min();
        let last = days.iter().max();
        let bounds = first.zip(last).and_then(|(first, last)| {
            let started = from.clone().lt(bound(request, &from_ty, next_day(*last))?);
            match (&to, &to_ty) {
                (Some(to), Some(ty)) => {
                    let end = bound(request, ty, next_day(*first))?;
                    Some(started.and(to.clone().is_null().or(to.clone().gt_eq(end))))
                }
                _ => Some(started),
            }
        });
        if let (Some(any), Some(first), Some(last)) = (bounds, first, last) {
            and(any);
            scope = if days.len() <= 12 {
                let days: Vec<String> = days.iter().map(|d| d.to_string()).collect();
                format!("rows `{name}` counts at {}", days.join(", "))
            } else {
                format!(
                    "rows `{name}` counts at {} days from {first} to {last}",
                    days.len()
                )
            };
        }
    }
    for c in own_filter {
        and(c);
    }
    if let Some(p) = predicate {
        rows = rows.filter(p)?;
    }
    let key = Expr::Column(datafusion::common::Column::new(Some(entity), &subject.key));
    Ok((rows, key, scope))
}

/// A gate outcome as stored in the cache folder.
#[derive(Serialize, Deserialize)]
struct Stored {
    format: u32,
    /// sha256 over the outcome, its key and the build ([`Stored::seal`]): an
    /// outcome edited by hand or damaged does not verify and is computed
    /// again, never trusted (as the result cache's entries).
    #[serde(default)]
    digest: String,
    check: String,
    table: String,
    column: Option<String>,
    status: String,
    detail: String,
    examples: Vec<String>,
}

const MEMO_FORMAT: u32 = 1;

impl Stored {
    fn seal(&self, path: &Path) -> String {
        let content = serde_json::to_vec(&(
            self.format,
            &self.check,
            &self.table,
            &self.column,
            &self.status,
            &self.detail,
            &self.examples,
        ))
        .unwrap_or_default();
        let mut h = Sha256::new();
        h.update(format!(
            "canon gate outcome v{MEMO_FORMAT}\n{}\n{}\n",
            path.file_name().and_then(|n| n.to_str()).unwrap_or(""),
            crate::run::fingerprints::build_identity()
        ));
        h.update(&content);
        hex::encode(h.finalize())
    }
}

/// Where one gate's outcome is remembered: `<cache>/gates/<key>.json`.
struct Memo {
    cache: std::sync::Arc<crate::run::fingerprints::Fingerprints>,
    /// The key without the file hashes: the gate, its plan, the definitions
    /// and the build.
    stem: String,
    /// Every file or object of every table the gate's plan scans.
    files: Vec<MemoInput>,
}

/// An input of a remembered gate outcome: a local file, whose content hash
/// the cache's index knows by the file's identity, or an object of a
/// store, known by its ETag, version and size since canon listed it.
#[derive(Clone)]
enum MemoInput {
    File(PathBuf),
    Object { url: String, identity: String },
}

impl Memo {
    /// `None` without a cache (`--no-cache`: nothing remembered).
    async fn new(engine: &Engine, kind: &str, identity: &str, rows: &DataFrame) -> Option<Memo> {
        let cache = engine.fingerprints()?;
        let mut tables = BTreeMap::new();
        crate::run::scanned_columns(rows.logical_plan(), &mut tables);
        let mut files = Vec::new();
        for key in tables.keys() {
            let (system, table) = key.split_once('/')?;
            match engine.data {
                crate::run::DataSource::Store(_) => {
                    let objects = engine.object_identities(system, table).await.ok()?;
                    files.extend(
                        objects
                            .into_iter()
                            .map(|(url, identity)| MemoInput::Object { url, identity }),
                    );
                }
                _ => files.extend(
                    source_paths(engine, system, table)?
                        .into_iter()
                        .map(MemoInput::File),
                ),
            }
        }
        let project = &engine.catalog.files;
        let mut h = Sha256::new();
        // The entity, key, validity fields and scope (which names the metric
        // in the detail): two gates over the same rows keep one outcome each.
        h.update(format!("canon gate v{MEMO_FORMAT}\n{kind}\n{identity}\n"));
        h.update(env!("CARGO_PKG_VERSION"));
        h.update(datafusion::DATAFUSION_VERSION);
        h.update(crate::run::fingerprints::build_identity());
        for f in
            std::iter::once(&project.project.sha256).chain(project.models.iter().map(|m| &m.sha256))
        {
            h.update(f.as_bytes());
        }
        h.update(rows.logical_plan().display_indent().to_string());
        Some(Memo {
            cache,
            stem: hex::encode(h.finalize()),
            files,
        })
    }

    fn path(&self, hashes: &[String]) -> PathBuf {
        let mut h = Sha256::new();
        h.update(&self.stem);
        for (file, sha) in self.files.iter().zip(hashes) {
            let name = match file {
                MemoInput::File(path) => path.display().to_string(),
                MemoInput::Object { url, .. } => url.clone(),
            };
            h.update(format!("\n{name}\n{sha}"));
        }
        self.cache
            .dir()
            .join("gates")
            .join(format!("{}.json", hex::encode(h.finalize())))
    }

    /// The remembered outcome, when every file's hash is known by its
    /// identity (no file is read to find out).
    fn lookup(&self) -> Option<TableCheck> {
        let hashes: Vec<String> = self
            .files
            .iter()
            .map(|f| match f {
                MemoInput::File(path) => self.cache.known_sha256(path),
                MemoInput::Object { identity, .. } => Some(identity.clone()),
            })
            .collect::<Option<_>>()?;
        let path = self.path(&hashes);
        let stored: Stored = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
        if stored.format != MEMO_FORMAT || stored.digest != stored.seal(&path) {
            tracing::warn!(path = %path.display(), "ignoring a gate outcome that does not verify");
            return None;
        }
        let check = match stored.check.as_str() {
            super::uniqueness::GATE => super::uniqueness::GATE,
            super::intervals::GATE => super::intervals::GATE,
            _ => return None,
        };
        let status = match stored.status.as_str() {
            "pass" => Status::Pass,
            "warn" => Status::Warn,
            "error" => Status::Error,
            _ => return None,
        };
        Some(TableCheck {
            check,
            table: stored.table,
            column: stored.column,
            status,
            detail: stored.detail,
            examples: stored.examples,
            latest_sync: None,
        })
    }

    /// Remembers an outcome under the files' content hashes (computed off
    /// the async threads; the lineage's hashing of the same files shares
    /// the cache's index). A failure to write only costs a recomputation.
    ///
    /// Only when every local file is still the one its table was bound to
    /// this run (`Engine::still_bound`): the engine reads a file by its path
    /// and keeps its footer from the binding, so a file replaced since has
    /// the gate decide over bytes that are neither version, and its outcome
    /// must not be stored under the new bytes' hash (a pass over a
    /// duplicated deal was, and was served to every later run).
    async fn store(&self, engine: &Engine, check: &TableCheck) {
        let held = || {
            let held = self.files.iter().all(|f| match f {
                MemoInput::File(path) => engine.still_bound(path),
                MemoInput::Object { .. } => true,
            });
            if !held {
                tracing::warn!(table = %check.table, "an input file changed while the gate read it: its outcome is not remembered");
            }
            held
        };
        if !held() {
            return;
        }
        let (cache, files) = (self.cache.clone(), self.files.clone());
        let hashes = tokio::task::spawn_blocking(move || {
            files
                .iter()
                .map(|f| match f {
                    MemoInput::File(path) => cache.sha256(path),
                    MemoInput::Object { identity, .. } => Ok(identity.clone()),
                })
                .collect::<Result<Vec<_>>>()
        })
        .await;
        // Still the bound files once hashed: the key is of the bytes read.
        let Ok(Ok(hashes)) = hashes else {
            return;
        };
        if !held() {
            return;
        }
        let mut stored = Stored {
            format: MEMO_FORMAT,
            digest: String::new(),
            check: check.check.to_string(),
            table: check.table.clone(),
            column: check.column.clone(),
            status: check.status.name().to_string(),
            detail: check.detail.clone(),
            examples: check.examples.clone(),
        };
        let path = self.path(&hashes);
        stored.digest = stored.seal(&path);
        let written = serde_json::to_vec(&stored)
            .map_err(|e| CanonError::Internal(e.to_string()))
            .and_then(|bytes| {
                let dir = path.parent().unwrap_or(self.cache.dir());
                std::fs::create_dir_all(dir).map_err(|e| CanonError::io(dir, e))?;
                crate::atomic::write_file(&path, &bytes)
            })
            .and_then(|_| self.cache.persist());
        if let Err(e) = written {
            tracing::warn!(error = %e, "could not remember a gate's outcome");
        }
    }
}
