//! The engine a request runs on: a DataFusion session configured for the
//! machine, with the project's source tables registered on demand.
//!
//! A source is registered the first time a plan needs it, after every one of
//! its files has been checked against the model, so a query fails with the
//! file and column at fault before it reads a row, and a broken table that
//! the request does not touch does not stop it.

pub mod decode;
pub mod files;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::catalog::MemorySchemaProvider;
use datafusion::common::TableReference;
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};

use crate::catalog::Catalog;
use crate::error::{CanonError, DataLocation, Result};
use crate::spec::SourceSpec;
use files::FileFact;

/// Where the extracts come from.
#[derive(Debug, Clone)]
pub enum DataSource {
    /// A folder of `<system>/<table>/*.parquet`.
    Folder(PathBuf),
    /// No data: every source is an empty table of its declared schema. Used by
    /// validation, which compiles every definition without reading a row.
    Empty,
}

/// The facts of one source table a run read.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SourceFacts {
    pub system: String,
    pub table: String,
    pub files: Vec<FileFact>,
}

/// A file's content hash being computed: (source key, file index, task).
type PendingHash = (String, usize, tokio::task::JoinHandle<Result<String>>);

/// Identity links as (entity, link name).
pub type LinkSet = std::collections::BTreeSet<(String, String)>;

pub struct Engine {
    pub ctx: SessionContext,
    pub catalog: Arc<Catalog>,
    pub data: DataSource,
    /// The run's "now" for freshness: `--now`, else canon.yaml's pinned
    /// `clock`, else the wall clock.
    pub now: chrono::DateTime<chrono::Utc>,
    /// Compute metrics whose inputs fail a quality gate (recorded in results).
    pub allow_stale: bool,
    /// The gates this run may pass at error, by name (`--allow GATE:TABLE`,
    /// and `--allow-stale`); each one used is recorded in the result.
    pub allow: crate::quality::allow::Allow,
    /// The result cache and file-hash index; `None` computes every time.
    pub cache: Option<Arc<crate::cache::Cache>>,
    /// The last row counts of the data root's tables (volume gate); `None`
    /// when the run has no data root (validation over empty tables).
    pub volume: Option<Arc<crate::quality::volume::Tracker>>,
    registered: Mutex<BTreeMap<String, SourceFacts>>,
    /// Content hashes still being computed, off the query's path: (source
    /// key, file index, the hashing task). `sources_read` waits for them.
    pending_hashes: Mutex<Vec<PendingHash>>,
    /// Columns read by side queries (identity resolution) that are not part
    /// of a metric's main plan, so lineage still lists them.
    side_reads: Mutex<BTreeMap<String, std::collections::BTreeSet<String>>>,
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

impl Engine {
    pub fn new(catalog: Arc<Catalog>, data: DataSource) -> Result<Engine> {
        let ctx = session(&catalog)?;
        crate::functions::register(
            &ctx,
            &catalog.files.project.spec.internal_domains,
            catalog.calendar.zone,
        );
        Ok(Engine {
            ctx,
            now: catalog.clock()?.unwrap_or_else(chrono::Utc::now),
            allow_stale: false,
            allow: Default::default(),
            cache: None,
            volume: None,
            catalog,
            data,
            registered: Mutex::new(BTreeMap::new()),
            pending_hashes: Mutex::new(Vec::new()),
            side_reads: Mutex::new(BTreeMap::new()),
            links_used: Mutex::new(Default::default()),
            recorders: Mutex::new(Vec::new()),
            plans: Mutex::new(BTreeMap::new()),
            shared: Mutex::new(BTreeMap::new()),
        })
    }

    /// The source table `system/table` as a DataFrame, registering it first.
    pub async fn source_frame(&self, system: &str, table: &str) -> Result<DataFrame> {
        let key = format!("{system}/{table}");
        let already = self.registered.lock().expect("lock").contains_key(&key);
        if !already {
            let (_, spec) = self.catalog.source_by_name(system, table).ok_or_else(|| {
                CanonError::Internal(format!("source {key} is not in the catalog"))
            })?;
            let files = self.register(system, spec)?;
            self.registered.lock().expect("lock").insert(
                key,
                SourceFacts {
                    system: system.to_string(),
                    table: table.to_string(),
                    files,
                },
            );
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

    /// A DataFrame over `plan` on this engine's session.
    pub fn frame(&self, plan: LogicalPlan) -> DataFrame {
        DataFrame::new(self.ctx.state(), plan)
    }

    /// Records the source columns a side query's plan reads.
    pub fn note_plan_reads(&self, plan: &datafusion::logical_expr::LogicalPlan) {
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
    pub fn side_reads(&self) -> BTreeMap<String, std::collections::BTreeSet<String>> {
        self.side_reads.lock().expect("lock").clone()
    }

    /// Every source registered so far with its files, their content hashes
    /// complete.
    pub async fn sources_read(&self) -> Result<BTreeMap<String, SourceFacts>> {
        let pending = std::mem::take(&mut *self.pending_hashes.lock().expect("lock"));
        for (key, index, task) in pending {
            let sha256 = task
                .await
                .map_err(|e| CanonError::Internal(format!("hashing task failed: {e}")))??;
            if let Some(file) = self
                .registered
                .lock()
                .expect("lock")
                .get_mut(&key)
                .and_then(|facts| facts.files.get_mut(index))
            {
                file.sha256 = sha256;
            }
        }
        Ok(self.registered.lock().expect("lock").clone())
    }

    /// `error` as a data error naming the damaged file, column and row
    /// group when it is the engine failing to decode a Parquet file: the
    /// files of every table registered so far (of `only`, `system/table`,
    /// when given) are decoded again one by one, their declared columns
    /// only (what the engine may have read), to find it. Any other error is
    /// returned as it is. See [`decode::locate`].
    pub async fn located(&self, error: CanonError, only: Option<&str>) -> CanonError {
        if !decode::is_decode_error(&error) {
            return error;
        }
        let tables: Vec<decode::ReadTable> = self
            .registered
            .lock()
            .expect("lock")
            .iter()
            .filter(|(key, _)| only.is_none_or(|o| o == key.as_str()))
            .map(|(_, facts)| decode::ReadTable {
                location: DataLocation {
                    system: facts.system.clone(),
                    table: facts.table.clone(),
                    file: None,
                    column: None,
                },
                files: facts.files.iter().map(|f| PathBuf::from(&f.path)).collect(),
                columns: self
                    .catalog
                    .source_by_name(&facts.system, &facts.table)
                    .map(|(_, spec)| spec.columns.iter().map(|c| c.name.clone()).collect()),
            })
            .collect();
        // Decoding reads the files again: off the runtime's threads.
        tokio::task::spawn_blocking(move || decode::locate(error, &tables))
            .await
            .unwrap_or_else(|e| CanonError::Internal(format!("locating a damaged file: {e}")))
    }

    fn register(&self, system: &str, spec: &SourceSpec) -> Result<Vec<FileFact>> {
        let schema = declared_schema(spec);
        let name = TableReference::partial(system, spec.name.as_str());
        match &self.data {
            DataSource::Empty => {
                let table = MemTable::try_new(schema, vec![vec![]])?;
                self.ctx.register_table(name, Arc::new(table))?;
                Ok(Vec::new())
            }
            DataSource::Folder(root) => {
                let location = DataLocation {
                    system: system.to_string(),
                    table: spec.name.clone(),
                    file: None,
                    column: None,
                };
                let (id, _) = self
                    .catalog
                    .source_by_name(system, &spec.name)
                    .ok_or_else(|| {
                        CanonError::Internal(format!(
                            "source {system}/{} is not in the catalog",
                            spec.name
                        ))
                    })?;
                let paths = files::source_files(&self.catalog, root, id)?;
                let facts = paths
                    .iter()
                    .map(|p| files::inspect(p, spec, &location))
                    .collect::<Result<Vec<_>>>()?;
                // Lineage needs every file's content hash; compute them on
                // blocking threads while the query plans and runs.
                let key = format!("{system}/{}", spec.name);
                let mut pending = self.pending_hashes.lock().expect("lock");
                for (index, path) in paths.iter().enumerate() {
                    let (path, cache) = (path.clone(), self.cache.clone());
                    pending.push((
                        key.clone(),
                        index,
                        tokio::task::spawn_blocking(move || match cache {
                            Some(cache) => cache.sha256(&path),
                            None => files::sha256_file(&path),
                        }),
                    ));
                }
                drop(pending);
                let table = ListingTable::try_new(listing_of(&paths)?.with_schema(schema))?;
                self.ctx.register_table(name, Arc::new(table))?;
                Ok(facts)
            }
        }
    }
}

/// A DataFusion session configured for this machine, with one schema per
/// system of the catalog (`crm`, `billing`, …) for its tables.
/// A listing over exactly `paths`: the engine reads the files canon listed,
/// checked and hashes, so nothing it would list differently (hidden files,
/// other folders) can be read unseen.
pub fn listing_of(paths: &[PathBuf]) -> Result<ListingTableConfig> {
    let urls = paths
        .iter()
        .map(|p| {
            let p = std::fs::canonicalize(p).map_err(|e| CanonError::io(p, e))?;
            Ok(ListingTableUrl::parse(p.display().to_string())?)
        })
        .collect::<Result<Vec<_>>>()?;
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    Ok(ListingTableConfig::new_with_multi_paths(urls).with_listing_options(options))
}

pub fn session(catalog: &Catalog) -> Result<SessionContext> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let settings = &catalog.files.project.spec.engine;
    // Twice the cores by default: a hash join's build, a single file's
    // decode or a final aggregate leaves a core idle within one partition,
    // and a second partition per core fills it. Measured with the harness
    // on 2 cores, every benchmark was as fast or faster (nrr −10%,
    // open_pipeline −15%, mqls −15%; docs/performance.md).
    let mut config = SessionConfig::new()
        .with_target_partitions(settings.target_partitions.unwrap_or(2 * cores).max(1))
        .with_information_schema(false);
    let options = config.options_mut();
    // Period filters are selective: evaluate them inside the Parquet scan.
    options.execution.parquet.pushdown_filters = true;
    options.execution.parquet.reorder_filters = true;
    // A hash join collects its build side into one partition and builds
    // one table on one core when DataFusion judges it small (by default
    // under 128 k rows or 1 MB, judged from estimates that are rough after
    // filters). Lower thresholds build the larger sides partitioned, on
    // every core: nrr −27%, bookings −20%, mqls −7%, the rest unchanged in
    // A/B runs of the same binary (docs/performance.md).
    options.optimizer.hash_join_single_partition_threshold = 500_000;
    options.optimizer.hash_join_single_partition_threshold_rows = 50_000;
    let mut runtime = RuntimeEnvBuilder::new();
    if let Some(bytes) = catalog.memory_limit()? {
        // Fair shares: several spilling operators of one plan each get theirs.
        runtime = runtime.with_memory_pool(Arc::new(FairSpillPool::new(bytes)));
    }
    let ctx = SessionContext::new_with_config_rt(config, runtime.build_arc()?);
    let df_catalog = ctx
        .catalog("datafusion")
        .ok_or_else(|| CanonError::Internal("default catalog missing".into()))?;
    for model in &catalog.files.models {
        df_catalog
            .register_schema(&model.spec.system, Arc::new(MemorySchemaProvider::new()))
            .map_err(CanonError::Engine)?;
    }
    Ok(ctx)
}

/// The Arrow schema a model declares for a source. Columns are nullable in
/// the table schema so that completeness is measured by the quality checks
/// instead of failing the read.
pub fn declared_schema(spec: &SourceSpec) -> SchemaRef {
    Arc::new(Schema::new(
        spec.columns
            .iter()
            .map(|c| Field::new(&c.name, c.ty.arrow(), true))
            .collect::<Vec<_>>(),
    ))
}

/// `system/table` → the columns the optimized plan reads from it: what a run
/// reads, so the run stage owns it (lineage, gates and `canon sql` ask it).
pub fn scanned_columns(
    plan: &LogicalPlan,
    out: &mut std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
) {
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
