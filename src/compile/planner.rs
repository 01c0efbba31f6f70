//! What planning needs and nothing more: the session plans are built on
//! (functions, configuration, and the sources as declared tables), the
//! catalog, and the plans already built.
//!
//! Planning sits beneath the run stage: it never reads files or holds the
//! cache. Its session knows each source only as a [`DeclaredTable`] (the
//! model's schema), so a plan built here reads nothing until a session
//! that binds sources to their checked files runs it (the run stage's);
//! the run stage's `Engine` derefs to this, so every planning function
//! takes a `&Planner` and a run passes its engine.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use datafusion::common::TableReference;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{DataFrame, SessionContext};

use super::declared::{DeclaredTable, declared_schema};
use super::survivors::Survivors;
use crate::catalog::Catalog;
use crate::error::{CanonError, Result};
use datafusion::catalog::default_table_source::source_as_provider;

/// Identity links as (entity, link name).
pub type LinkSet = BTreeSet<(String, String)>;

tokio::task_local! {
    /// The link recordings enclosing the current work, innermost last.
    static RECORDINGS: Vec<u64>;
}

/// The planning context; see the module documentation.
pub struct Planner {
    /// The session plans are built on: it has no bindings, so a plan run on
    /// it fails instead of reading (see [`super::declared`]).
    pub planning: SessionContext,
    pub catalog: Arc<Catalog>,
    /// The sources declared on the planning session so far.
    registered: Mutex<BTreeSet<String>>,
    /// Identity links joined so far: (entity, link name).
    links_used: Mutex<LinkSet>,
    /// Links noted while a memoized plan is being built or a metric planned
    /// and run, one set per recording in progress (they nest, and a
    /// command's computations run side by side), each found again by its
    /// number, so the memo and the metric know what they join.
    recorders: Mutex<Vec<(u64, LinkSet)>>,
    /// The number of the next recording.
    next_recorder: std::sync::atomic::AtomicU64,
    /// Plans built once per engine and shared by every metric that needs
    /// them (entity frames, merge maps), keyed by what they are.
    plans: Mutex<BTreeMap<String, (Option<LogicalPlan>, LinkSet)>>,
    /// Values worked out once per run and shared by every computation that
    /// needs them (a gate the bridge's two governed sides both run), keyed
    /// by what they are; typed by the stage that stores them.
    shared: Mutex<BTreeMap<String, Arc<dyn std::any::Any + Send + Sync>>>,
    /// How a snapshot series' groups are aggregated; see [`SeriesPlan`].
    pub series_plan: SeriesPlan,
}

/// Two plans of a snapshot series that give the same groups: `Ranges`
/// converts each row once per rate run and expands only the distinct runs
/// ([`super::series_ranges`]); `Expand` pairs every row with every instant
/// it holds at before converting and aggregating. `Auto` (the default)
/// takes `Ranges` for a series of more than two instants a week or less
/// apart on average, where many instants share each rate (rates are
/// typically monthly: at scale 200 a daily quarter of open_pipeline took
/// 2.04 s against 2.66 s), and `Expand` otherwise: at twelve month ends
/// each instant has its own rate, so the rows to convert are cut into as
/// many pieces as they have pairs and the ranges plan measured 5 % slower
/// (2.52 s against 2.40 s). The other two force a plan, so tests can
/// prove them equal and the benchmark can measure both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SeriesPlan {
    #[default]
    Auto,
    Ranges,
    Expand,
}

impl SeriesPlan {
    /// Whether a series at `days` (ascending) is planned by ranges.
    pub fn ranges_for(self, days: &[chrono::NaiveDate]) -> bool {
        match self {
            SeriesPlan::Ranges => days.len() > 1,
            SeriesPlan::Expand => false,
            SeriesPlan::Auto => match (days.first(), days.last()) {
                (Some(first), Some(last)) if days.len() > 2 => {
                    (*last - *first).num_days() <= 7 * (days.len() as i64 - 1)
                }
                _ => false,
            },
        }
    }
}

/// The series plan a `bench-switches` build is told to force
/// (`CANON_BENCH_SERIES_PLAN=expand` or `ranges`), to time both plans on
/// one binary; every other build, and any other value, plans `Auto`. Both
/// plans give the same groups, so the results stay governed.
pub fn bench_series_plan() -> SeriesPlan {
    if !cfg!(feature = "bench-switches") {
        return SeriesPlan::Auto;
    }
    match std::env::var("CANON_BENCH_SERIES_PLAN").as_deref() {
        Ok("expand") => SeriesPlan::Expand,
        Ok("ranges") => SeriesPlan::Ranges,
        _ => SeriesPlan::Auto,
    }
}

impl Planner {
    pub fn new(planning: SessionContext, catalog: Arc<Catalog>) -> Planner {
        Planner {
            planning,
            catalog,
            registered: Mutex::new(BTreeSet::new()),
            links_used: Mutex::new(LinkSet::new()),
            recorders: Mutex::new(Vec::new()),
            next_recorder: std::sync::atomic::AtomicU64::new(0),
            plans: Mutex::new(BTreeMap::new()),
            shared: Mutex::new(BTreeMap::new()),
            series_plan: SeriesPlan::default(),
        }
    }

    /// The source table `system/table` as a DataFrame over its declared
    /// table, declared on the planning session the first time.
    pub async fn source_frame(&self, system: &str, table: &str) -> Result<DataFrame> {
        let key = format!("{system}/{table}");
        let name = TableReference::partial(system, table);
        {
            let mut registered = self.registered.lock().expect("lock");
            if !registered.contains(&key) {
                let (_, spec) = self.catalog.source_by_name(system, table).ok_or_else(|| {
                    CanonError::Internal(format!("source {key} is not in the catalog"))
                })?;
                let declared = DeclaredTable {
                    system: system.to_string(),
                    table: spec.name.clone(),
                    schema: declared_schema(spec),
                };
                self.planning
                    .register_table(name.clone(), Arc::new(declared))?;
                registered.insert(key);
            }
        }
        Ok(self.planning.table(name).await?)
    }

    /// A plan built earlier under `key` (`Some(None)` when it was built as
    /// "nothing": an entity without merges has no merge map). The links the
    /// build joined are noted again, as if it had been built now.
    fn remembered_plan(&self, key: &str) -> Option<Option<LogicalPlan>> {
        let (plan, links) = self.plans.lock().expect("lock").get(key).cloned()?;
        for (entity, link) in &links {
            self.note_link(entity, link);
        }
        Some(plan)
    }

    /// Runs `work` and then forgets the links it noted: for frames built
    /// only to learn a schema, whose links are not joined into any plan.
    pub async fn without_noting_links<T>(&self, work: impl std::future::Future<Output = T>) -> T {
        let before = self.links_used();
        let out = work.await;
        *self.links_used.lock().expect("lock") = before;
        out
    }

    /// The plan remembered under `key`, else `build`'s, remembered with the
    /// links its build joined.
    pub async fn memoized_plan<F>(&self, key: &str, build: F) -> Result<Option<LogicalPlan>>
    where
        F: std::future::Future<Output = Result<Option<LogicalPlan>>>,
    {
        if let Some(plan) = self.remembered_plan(key) {
            return Ok(plan);
        }
        let (built, links) = self.recording_links(build).await;
        let plan = built?;
        self.plans
            .lock()
            .expect("lock")
            .insert(key.to_string(), (plan.clone(), links));
        Ok(plan)
    }

    /// The value this run shares under `key`, created empty on first use (a
    /// `tokio::sync::OnceCell` lets the first caller compute it while the
    /// others wait for its outcome). A key first used with another type
    /// gets a value of its own, unshared: a key names one kind of thing.
    pub fn shared<T: Default + Send + Sync + 'static>(&self, key: &str) -> Arc<T> {
        let mut shared = self.shared.lock().expect("lock");
        let value = shared
            .entry(key.to_string())
            .or_insert_with(|| Arc::new(T::default()))
            .clone();
        value.downcast::<T>().unwrap_or_default()
    }

    /// A DataFrame over `plan` on the planning session, to build on, not to
    /// run (the run stage's `Engine::frame` is the one that runs).
    pub fn planned_frame(&self, plan: LogicalPlan) -> DataFrame {
        DataFrame::new(self.planning.state(), plan)
    }

    /// Runs `work` and returns, beside its outcome, the links noted while it
    /// ran (plans remembered from earlier included): what a metric's plan
    /// and computation join, not what the command's other metrics joined
    /// before it or beside it (the bridge's two sides run together). Each
    /// recording is known to the work it wraps only (a task-local list of
    /// the recordings enclosing it), so work polled beside it notes into
    /// its own. Links are noted while plans are built, in the caller's
    /// futures, never in tasks spawned apart from them.
    pub async fn recording_links<T>(
        &self,
        work: impl std::future::Future<Output = T>,
    ) -> (T, LinkSet) {
        let id = self
            .next_recorder
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.recorders
            .lock()
            .expect("lock")
            .push((id, LinkSet::new()));
        let mut enclosing = RECORDINGS.try_with(Vec::clone).unwrap_or_default();
        enclosing.push(id);
        // Boxed: the wrapped work (a whole metric's plan and run) stays off the
        // caller's stack, which tests and library callers size themselves.
        let out = RECORDINGS.scope(enclosing, Box::pin(work)).await;
        let mut recorders = self.recorders.lock().expect("lock");
        let links = recorders
            .iter()
            .position(|(r, _)| *r == id)
            .map(|at| recorders.remove(at).1)
            .unwrap_or_default();
        (out, links)
    }

    /// Records that a plan joined `entity`'s link `link`, in the
    /// recordings enclosing the work that joined it.
    pub fn note_link(&self, entity: &str, link: &str) {
        let pair = (entity.to_string(), link.to_string());
        let enclosing = RECORDINGS.try_with(Vec::clone).unwrap_or_default();
        for (id, recorder) in self.recorders.lock().expect("lock").iter_mut() {
            if enclosing.contains(id) {
                recorder.insert(pair.clone());
            }
        }
        self.links_used.lock().expect("lock").insert(pair);
    }

    /// The links joined so far.
    pub fn links_used(&self) -> LinkSet {
        self.links_used.lock().expect("lock").clone()
    }
}

/// `system/table` → the columns the plan reads from it (lineage, the gates'
/// remembered outcomes and `canon sql` ask it of optimized plans), with
/// what the merge maps it joins read to work themselves out.
pub fn scanned_columns(plan: &LogicalPlan, out: &mut BTreeMap<String, BTreeSet<String>>) {
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            if let Ok(provider) = source_as_provider(&scan.source)
                && let Some(survivors) = provider.downcast_ref::<Survivors>()
            {
                for (table, columns) in survivors.reads() {
                    out.entry(table.clone())
                        .or_default()
                        .extend(columns.iter().cloned());
                }
                return Ok(TreeNodeRecursion::Continue);
            }
            // A table of values canon made (a series' days) is no source.
            if source_as_provider(&scan.source).is_ok_and(|p| {
                p.downcast_ref::<datafusion::datasource::MemTable>()
                    .is_some()
            }) {
                return Ok(TreeNodeRecursion::Continue);
            }
            let key = match (scan.table_name.schema(), scan.table_name.table()) {
                (Some(s), t) => format!("{s}/{t}"),
                (None, t) => t.to_string(),
            };
            let entry = out.entry(key).or_default();
            for f in scan.projected_schema.fields() {
                entry.insert(f.name().clone());
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
}

#[cfg(test)]
mod series_plan_tests {
    use super::SeriesPlan;
    use chrono::{Days, NaiveDate};

    /// `n` instants `step` days apart from 2025-01-31.
    fn every(step: u64, n: u64) -> Vec<NaiveDate> {
        let first = NaiveDate::from_ymd_opt(2025, 1, 31).unwrap();
        (0..n).map(|i| first + Days::new(i * step)).collect()
    }

    #[test]
    fn auto_takes_ranges_for_dense_series_only() {
        // 92 days, 13 weeks (12 × 7 = 84 days apart end to end): ranges.
        assert!(SeriesPlan::Auto.ranges_for(&every(1, 92)));
        assert!(SeriesPlan::Auto.ranges_for(&every(7, 13)));
        // 8 days apart on average, twelve month ends, a cohort's two
        // instants, one instant: pairing.
        assert!(!SeriesPlan::Auto.ranges_for(&every(8, 13)));
        assert!(!SeriesPlan::Auto.ranges_for(&every(30, 12)));
        assert!(!SeriesPlan::Auto.ranges_for(&every(1, 2)));
        assert!(!SeriesPlan::Auto.ranges_for(&every(1, 1)));
        // Forced either way.
        assert!(SeriesPlan::Ranges.ranges_for(&every(30, 12)));
        assert!(!SeriesPlan::Expand.ranges_for(&every(1, 92)));
    }
}
