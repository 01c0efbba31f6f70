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
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{DataFrame, SessionContext};

use super::declared::{DeclaredTable, declared_schema};
use crate::catalog::Catalog;
use crate::error::{CanonError, Result};

/// Identity links as (entity, link name).
pub type LinkSet = BTreeSet<(String, String)>;

/// The planning context; see the module documentation.
pub struct Planner {
    /// The session plans are built on: it has no bindings, so a plan run on
    /// it fails instead of reading (see [`super::declared`]).
    pub planning: SessionContext,
    pub catalog: Arc<Catalog>,
    /// The sources declared on the planning session so far.
    registered: Mutex<BTreeSet<String>>,
    /// Columns read by side queries (identity resolution) that are not part
    /// of a metric's main plan, so lineage still lists them.
    side_reads: Mutex<BTreeMap<String, BTreeSet<String>>>,
    /// Identity links joined so far: (entity, link name).
    links_used: Mutex<LinkSet>,
    /// Links noted while a memoized plan is being built, one set per build
    /// in progress (builds nest), so the memo knows exactly what it joins.
    recorders: Mutex<Vec<LinkSet>>,
    /// Plans built once per engine and shared by every metric that needs
    /// them (entity frames, merge maps), keyed by what they are.
    plans: Mutex<BTreeMap<String, (Option<LogicalPlan>, LinkSet)>>,
    /// Values worked out once per run and shared by every computation that
    /// needs them (a gate the bridge's two governed sides both run), keyed
    /// by what they are; typed by the stage that stores them.
    shared: Mutex<BTreeMap<String, Arc<dyn std::any::Any + Send + Sync>>>,
}

impl Planner {
    pub fn new(planning: SessionContext, catalog: Arc<Catalog>) -> Planner {
        Planner {
            planning,
            catalog,
            registered: Mutex::new(BTreeSet::new()),
            side_reads: Mutex::new(BTreeMap::new()),
            links_used: Mutex::new(LinkSet::new()),
            recorders: Mutex::new(Vec::new()),
            plans: Mutex::new(BTreeMap::new()),
            shared: Mutex::new(BTreeMap::new()),
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
        self.recorders.lock().expect("lock").push(LinkSet::new());
        let built = build.await;
        let links = self
            .recorders
            .lock()
            .expect("lock")
            .pop()
            .unwrap_or_default();
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

    /// A DataFrame over `plan` on the planning session (to build on, not
    /// to run: the run stage's `Engine::frame` runs plans).
    pub fn frame(&self, plan: LogicalPlan) -> DataFrame {
        DataFrame::new(self.planning.state(), plan)
    }

    /// Records the source columns a side query's plan reads.
    pub fn note_plan_reads(&self, plan: &LogicalPlan) {
        let mut reads = self.side_reads.lock().expect("lock");
        scanned_columns(plan, &mut reads);
    }

    /// Records that a plan joined `entity`'s link `link`.
    pub fn note_link(&self, entity: &str, link: &str) {
        let pair = (entity.to_string(), link.to_string());
        for recorder in self.recorders.lock().expect("lock").iter_mut() {
            recorder.insert(pair.clone());
        }
        self.links_used.lock().expect("lock").insert(pair);
    }

    /// The links joined so far.
    pub fn links_used(&self) -> LinkSet {
        self.links_used.lock().expect("lock").clone()
    }

    /// Source columns read by side queries so far.
    pub fn side_reads(&self) -> BTreeMap<String, BTreeSet<String>> {
        self.side_reads.lock().expect("lock").clone()
    }
}

/// `system/table` → the columns the plan reads from it (lineage, the gates'
/// remembered outcomes and `canon sql` ask it of optimized plans).
pub fn scanned_columns(plan: &LogicalPlan, out: &mut BTreeMap<String, BTreeSet<String>>) {
    let _ = plan.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node {
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
