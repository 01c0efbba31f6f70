//! What planning needs and nothing more: the session plans are built on,
//! the catalog, the source tables on demand, and the plans already built.
//!
//! Planning sits beneath the run stage: it never reads files or holds the
//! cache. How a source becomes a table (checked files, content hashes, or an
//! empty table of its declared schema) is the run stage's business, handed
//! in as a [`SourceRegistry`]; the run stage's `Engine` derefs to this, so
//! every planning function takes a `&Planner` and a run passes its engine.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use datafusion::common::TableReference;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{DataFrame, SessionContext};

use crate::catalog::Catalog;
use crate::error::{CanonError, Result};
use crate::spec::SourceSpec;

/// Identity links as (entity, link name).
pub type LinkSet = BTreeSet<(String, String)>;

/// Makes the source `system/spec.name` a table of `ctx`, the first time a
/// plan needs it.
pub trait SourceRegistry: Send + Sync {
    fn register(&self, ctx: &SessionContext, system: &str, spec: &SourceSpec) -> Result<()>;
}

/// The planning context; see the module documentation.
pub struct Planner {
    pub ctx: SessionContext,
    pub catalog: Arc<Catalog>,
    sources: Box<dyn SourceRegistry>,
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
    pub fn new(
        ctx: SessionContext,
        catalog: Arc<Catalog>,
        sources: Box<dyn SourceRegistry>,
    ) -> Planner {
        Planner {
            ctx,
            catalog,
            sources,
            registered: Mutex::new(BTreeSet::new()),
            side_reads: Mutex::new(BTreeMap::new()),
            links_used: Mutex::new(LinkSet::new()),
            recorders: Mutex::new(Vec::new()),
            plans: Mutex::new(BTreeMap::new()),
            shared: Mutex::new(BTreeMap::new()),
        }
    }

    /// The source table `system/table` as a DataFrame, registering it first.
    pub async fn source_frame(&self, system: &str, table: &str) -> Result<DataFrame> {
        let key = format!("{system}/{table}");
        {
            // Held while registering (no await inside): two computations
            // of one run (the bridge's sides) asking for one table register
            // it, check its files and start hashing them once.
            let mut registered = self.registered.lock().expect("lock");
            if !registered.contains(&key) {
                let (_, spec) = self.catalog.source_by_name(system, table).ok_or_else(|| {
                    CanonError::Internal(format!("source {key} is not in the catalog"))
                })?;
                self.sources.register(&self.ctx, system, spec)?;
                registered.insert(key);
            }
        }
        Ok(self
            .ctx
            .table(TableReference::partial(system, table))
            .await?)
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

    /// A DataFrame over `plan` on this session.
    pub fn frame(&self, plan: LogicalPlan) -> DataFrame {
        DataFrame::new(self.ctx.state(), plan)
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
