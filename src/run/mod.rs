//! The engine a request runs on: a DataFusion session configured for the
//! machine, on which plans built over declared tables (compile) read the
//! project's source files.
//!
//! A source is bound to its files the first time a plan that reads it runs
//! (`SourceBinder for Sources`), after every one of its files has been
//! checked against the model, so a query fails with the file and column at
//! fault before it reads a row, and a broken table that the request does not
//! touch does not stop it. Plans are built on a second session configured
//! alike but without the bindings (`Engine::new`), so planning cannot read
//! a row; `Engine::bound` moves a plan onto the session that reads.

pub mod background;
pub mod decode;
pub mod files;
pub mod fingerprints;
pub mod memory;
pub mod row_counts;
pub mod store;
pub mod wire;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::MemorySchemaProvider;
use datafusion::catalog::TableProvider;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use futures::{StreamExt, TryStreamExt};

use crate::catalog::Catalog;
pub use crate::compile::declared::declared_schema;
use crate::compile::declared::{Bindings, SourceBinder};
use crate::compile::planner::Planner;
use crate::error::{CanonError, DataLocation, Result};
use files::FileFact;

/// The stack of each engine worker thread: plans are walked recursively,
/// and definitions and `canon sql` are bounded (compile::limits) well
/// inside this, with room for a debug build's larger frames (tokio's
/// default is 2 MiB).
pub const WORKER_STACK_BYTES: usize = 16 << 20;

/// Where the extracts come from.
#[derive(Debug, Clone)]
pub enum DataSource {
    /// A folder of `<system>/<table>/*.parquet`.
    Folder(PathBuf),
    /// The same layout under a prefix of an object store (`s3://…`).
    Store(Arc<store::StoreRoot>),
    /// No data: every source is an empty table of its declared schema. Used by
    /// validation, which compiles every definition without reading a row.
    Empty,
}

/// Declared sources, each as (`system`, `table`).
pub type DeclaredSources = std::collections::BTreeSet<(String, String)>;

/// The declared sources `plan` scans, in subqueries too; a merge map's own
/// reads are not among them.
pub fn declared_sources(plan: &LogicalPlan) -> Result<DeclaredSources> {
    use crate::compile::declared::DeclaredTable;
    use datafusion::catalog::default_table_source::source_as_provider;
    use datafusion::common::tree_node::TreeNodeRecursion;
    let mut declared = DeclaredSources::new();
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Ok(provider) = source_as_provider(&scan.source)
            && let Some(d) = provider.downcast_ref::<DeclaredTable>()
        {
            declared.insert((d.system.clone(), d.table.clone()));
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(declared)
}

/// The facts of one source table a run read.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SourceFacts {
    pub system: String,
    pub table: String,
    pub files: Vec<FileFact>,
}

/// See [`Engine::source_urls`].
pub type SourceUrls =
    Arc<dyn Fn(&str, &str) -> datafusion::error::Result<Vec<String>> + Send + Sync>;

/// See [`Engine::objects_unchanged`].
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
pub type ObjectsUnchanged = Arc<
    dyn Fn(
            &DeclaredSources,
        )
            -> futures::future::BoxFuture<'static, std::result::Result<(), ObjectsUnverified>>
        + Send
        + Sync,
>;

/// Why [`Engine::objects_unchanged`] could not vouch for the objects a job
/// read: the data error at the table, and whether an object did change
/// (then whatever the job answered or failed with came from other bytes)
/// or the store did not answer (then the job's own failure is the one to
/// report, and a finished job's answer is still not vouched for).
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
#[derive(Debug)]
pub struct ObjectsUnverified {
    pub changed: bool,
    pub error: CanonError,
}

/// A source's table, bound once (see `Sources::providers`).
type Binding = Arc<tokio::sync::OnceCell<Arc<dyn TableProvider>>>;

/// A file's content hash being computed: (source key, file index, task).
type PendingHash = (String, usize, tokio::task::JoinHandle<Result<String>>);

pub use crate::compile::planner::{LinkSet, scanned_columns};

/// The engine a request runs on: the planner (which it derefs to, so
/// planning functions take it as they are), and what only a run has: the
/// data, the clock, the overrides, the file-hash index and the facts of the
/// files read.
pub struct Engine {
    planner: Planner,
    /// The session plans run on: the planning session's configuration and
    /// functions, with the sources bound to their files.
    exec: SessionContext,
    pub data: DataSource,
    /// The run's "now" for freshness: `--now`, else canon.yaml's pinned
    /// `clock`, else the wall clock.
    pub now: chrono::DateTime<chrono::Utc>,
    /// Compute metrics whose inputs fail a quality gate (recorded in results).
    pub allow_stale: bool,
    /// The gates this run may pass at error, by name (`--allow GATE:TABLE`,
    /// and `--allow-stale`); each one used is recorded in the result.
    pub allow: crate::allow::Allow,
    /// The last row counts of the data root's tables (volume gate); `None`
    /// when the run has no data root (validation over empty tables).
    pub volume: Option<Arc<row_counts::Tracker>>,
    sources: Arc<Sources>,
}

impl std::ops::Deref for Engine {
    type Target = Planner;

    fn deref(&self) -> &Planner {
        &self.planner
    }
}

/// The sources a run registered, with their files' facts, and the content
/// hashes still being computed, off the query's path.
struct Sources {
    catalog: Arc<Catalog>,
    data: DataSource,
    fingerprints: Mutex<Option<Arc<fingerprints::Fingerprints>>>,
    registered: Mutex<BTreeMap<String, SourceFacts>>,
    /// The tables reading each source, by `system/table`: bound once, by
    /// the first plan that reads it (others reading it at the same time
    /// wait for that binding).
    providers: Mutex<BTreeMap<String, Binding>>,
    /// (source key, file index, the hashing task); `sources_read` waits for
    /// them.
    pending_hashes: Mutex<Vec<PendingHash>>,
    /// Each local file's identity when its table was bound, before anything
    /// read it: [`Engine::inputs_held`] checks none moved.
    stamps: Mutex<Vec<(PathBuf, Option<fingerprints::Stamp>)>>,
}

impl Engine {
    /// Plans snapshot series as `plan` from now on (see [`SeriesPlan`]).
    pub fn set_series_plan(&mut self, plan: crate::compile::planner::SeriesPlan) {
        self.planner.series_plan = plan;
    }

    pub fn new(catalog: Arc<Catalog>, data: DataSource) -> Result<Engine> {
        let sources = Arc::new(Sources {
            catalog: catalog.clone(),
            data: data.clone(),
            fingerprints: Mutex::new(None),
            registered: Mutex::new(BTreeMap::new()),
            providers: Mutex::new(BTreeMap::new()),
            pending_hashes: Mutex::new(Vec::new()),
            stamps: Mutex::new(Vec::new()),
        });
        // Two sessions configured alike: plans are built on the first,
        // which knows sources only as declared tables, and run on the
        // second, whose bindings read them from their checked files.
        let planning = session(&catalog)?;
        let exec = session_with(&catalog, Some(Bindings(sources.clone())))?;
        if let DataSource::Store(root) = &data {
            root.register(&exec);
        }
        for ctx in [&planning, &exec] {
            crate::functions::register(
                ctx,
                &catalog.files.project.spec.internal_domains,
                catalog.calendar.zone,
            );
            // What plans call besides: known by name to the session that
            // runs them, so a plan can be written out by name and read back
            // (on a cluster's executors too).
            for f in crate::compile::instants::udfs() {
                ctx.register_udf(f);
            }
            ctx.register_udaf(crate::latest::udaf());
            ctx.register_udaf(crate::latest_spans::udaf());
        }
        Ok(Engine {
            planner: Planner::new(planning, catalog.clone()),
            exec,
            now: catalog.clock()?.unwrap_or_else(chrono::Utc::now),
            allow_stale: false,
            allow: Default::default(),
            volume: None,
            data,
            sources,
        })
    }

    /// The session plans run on (for a table of values canon made, or a
    /// file read on its own).
    pub fn session(&self) -> &SessionContext {
        &self.exec
    }

    /// A DataFrame that runs `plan` (built by planning, over declared
    /// tables) on this run's data.
    pub fn frame(&self, plan: LogicalPlan) -> DataFrame {
        self.bind_sources(&plan);
        DataFrame::new(self.exec.state(), plan)
    }

    /// Binds every declared source `plan` scans (in subqueries and merge
    /// maps too) now, before the plan runs beside others: its files are
    /// checked while nothing else waits, where a binding inside a scan
    /// holds the lock every other scan of the run needs. A source that fails to bind is left to its scan,
    /// which fails with the same located error.
    fn bind_sources(&self, plan: &LogicalPlan) {
        // Binding starts the files' hashing on the runtime's blocking
        // threads; outside a runtime the scans bind instead (they run in one).
        // An object store's tables are listed and their footers read over
        // the network: their scans bind them, concurrently, without a
        // thread waiting.
        if tokio::runtime::Handle::try_current().is_err()
            || !matches!(self.sources.data, DataSource::Folder(_))
        {
            return;
        }
        // The sources it scans, merge maps' reads included; other scans
        // (a merge map, a series of days) have no `system/` and are skipped.
        let mut read = BTreeMap::new();
        scanned_columns(plan, &mut read);
        for key in read.keys() {
            if let Some((system, table)) = key.split_once('/') {
                // A folder's binding never waits on anything but a binding
                // of the same table on another thread: it runs to its end
                // in one poll.
                let _ = futures::executor::block_on(self.sources.provider(system, table));
            }
        }
    }

    /// Lists the files or objects `system/table` is bound to, binding it on
    /// first use: for a codec writing a plan where nothing can be awaited
    /// (it blocks its worker thread while binding, so it needs a runtime
    /// with worker threads, as the command line's).
    pub fn source_urls(&self) -> SourceUrls {
        let sources = self.sources.clone();
        Arc::new(move |system: &str, table: &str| {
            let provider = tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(sources.provider(system, table))
            })
            .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
            let listing = provider.downcast_ref::<ListingTable>().ok_or_else(|| {
                datafusion::error::DataFusionError::Internal(format!(
                    "{system}/{table} is not bound to files"
                ))
            })?;
            Ok(listing
                .table_paths()
                .iter()
                .map(|u| u.as_str().to_string())
                .collect())
        })
    }

    /// Checks, once a plan has run where canon's pinned reads do not reach
    /// (a cluster's executors), that every object of the `declared` sources
    /// it read directly ([`declared_sources`]) still is the one canon
    /// listed, checked and reports in lineage; a rewritten or deleted object
    /// fails the run as a data error at its table. Merge maps are worked out
    /// here, through the pins.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub fn objects_unchanged(&self) -> ObjectsUnchanged {
        let sources = self.sources.clone();
        Arc::new(move |declared: &DeclaredSources| {
            let sources = sources.clone();
            let declared = declared.clone();
            Box::pin(async move {
                let DataSource::Store(root) = &sources.data else {
                    return Ok(());
                };
                let mut failed = Vec::new();
                for (system, table) in declared {
                    let files = sources
                        .registered
                        .lock()
                        .expect("lock")
                        .get(&format!("{system}/{table}"))
                        .map(|facts| facts.files.clone())
                        .unwrap_or_default();
                    if let Err(unverified) = root.still_as_listed(&files).await {
                        let location = match sources.catalog.source_by_name(&system, &table) {
                            Some((id, _)) => sources.catalog.source_location(id),
                            None => DataLocation::root(std::path::Path::new(root.url())),
                        };
                        failed.push(ObjectsUnverified {
                            changed: matches!(unverified, store::Unverified::Changed(_)),
                            error: CanonError::data(location, unverified.message()),
                        });
                    }
                }
                // A changed object at any table outranks a HEAD left
                // unanswered at another.
                store::reported(failed, |found| found.changed).map_or(Ok(()), Err)
            })
        })
    }

    /// Runs this engine's plans on `session` from now on (a cluster's,
    /// whose codec binds sources through [`Self::source_urls`]).
    pub fn run_on(&mut self, session: SessionContext) {
        self.exec = session;
    }

    /// The objects of `system/table` in a store data root, bound now if
    /// they are not yet, each with its URL and identity (ETag, version and
    /// size: [`FileFact::identity`]).
    pub async fn object_identities(
        &self,
        system: &str,
        table: &str,
    ) -> Result<Vec<(String, String)>> {
        self.sources.provider(system, table).await?;
        let registered = self.sources.registered.lock().expect("lock");
        Ok(registered
            .get(&format!("{system}/{table}"))
            .map(|facts| {
                facts
                    .files
                    .iter()
                    .map(|f| (f.path.clone(), f.identity()))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// `plan` with nothing of canon's project left to bind where it runs:
    /// every declared source it reads (in subqueries too) replaced by the
    /// table that reads its checked files or objects, every merge map by
    /// its worked-out rows. Such a plan runs on a session that knows neither
    /// the models nor the data root (a cluster's scheduler and executors:
    /// DataFusion's protobuf format writes a listing and a table of rows
    /// itself), while its lineage, gates and cache stay here, where the
    /// binding recorded them.
    pub async fn self_contained(&self, plan: LogicalPlan) -> Result<LogicalPlan> {
        use crate::compile::declared::DeclaredTable;
        use crate::compile::survivors::Survivors;
        use datafusion::catalog::default_table_source::{provider_as_source, source_as_provider};
        use datafusion::common::tree_node::{Transformed, TreeNodeRecursion};
        // The tables to replace, found first: binding them and working the
        // maps out wait on I/O, the rewrite does not.
        let declared = declared_sources(&plan)?;
        let mut maps: Vec<Arc<dyn TableProvider>> = Vec::new();
        plan.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node
                && let Ok(provider) = source_as_provider(&scan.source)
                && provider.downcast_ref::<Survivors>().is_some()
            {
                maps.push(provider);
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        let mut bound = BTreeMap::new();
        for (system, table) in declared {
            let provider = self.sources.provider(&system, &table).await?;
            bound.insert((system, table), provider);
        }
        // A map by the address of its table (one map may be scanned twice).
        let address = |p: &Arc<dyn TableProvider>| Arc::as_ptr(p) as *const () as usize;
        let state = self.exec.state();
        let mut worked: BTreeMap<usize, Arc<dyn TableProvider>> = BTreeMap::new();
        for map in maps {
            if worked.contains_key(&address(&map)) {
                continue;
            }
            let Some(survivors) = map.downcast_ref::<Survivors>() else {
                continue;
            };
            let rows = survivors.worked_out(&state).await?;
            let table =
                datafusion::datasource::MemTable::try_new(survivors.schema(), vec![vec![rows]])?;
            worked.insert(address(&map), Arc::new(table));
        }
        let rewritten = plan.transform_up_with_subqueries(|node| {
            let LogicalPlan::TableScan(mut scan) = node else {
                return Ok(Transformed::no(node));
            };
            let replacement = source_as_provider(&scan.source).ok().and_then(|p| match p
                .downcast_ref::<DeclaredTable>(
            ) {
                Some(d) => bound.get(&(d.system.clone(), d.table.clone())).cloned(),
                None => worked.get(&address(&p)).cloned(),
            });
            match replacement {
                Some(table) => {
                    scan.source = provider_as_source(table);
                    Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
                }
                None => Ok(Transformed::no(LogicalPlan::TableScan(scan))),
            }
        })?;
        Ok(rewritten.data)
    }

    /// `frame`, built on the planning session, as one that runs on this
    /// run's data.
    pub fn bound(&self, frame: DataFrame) -> DataFrame {
        self.frame(frame.into_unoptimized_plan())
    }

    /// The source table `system/table`, to run on this run's data.
    pub async fn source_frame(&self, system: &str, table: &str) -> Result<DataFrame> {
        Ok(self.bound(self.planner.source_frame(system, table).await?))
    }

    /// Entity `name`'s rows (survivors of merges, links resolved), to run
    /// on this run's data; see [`crate::compile::entity::entity_frame`].
    pub async fn entity_frame(&self, name: &str) -> Result<DataFrame> {
        Ok(self.bound(crate::compile::entity::entity_frame(self, name).await?))
    }

    /// Entity `name`'s own rows, before merges; see
    /// [`crate::compile::entity::entity_plain_frame`].
    pub async fn entity_plain_frame(&self, name: &str) -> Result<DataFrame> {
        Ok(self.bound(crate::compile::entity::entity_plain_frame(self, name).await?))
    }

    /// Entity `entity`'s rows with the links `links` joined, to run on this
    /// run's data; see [`crate::compile::entity::metric_frame`].
    pub async fn metric_frame(
        &self,
        entity: &str,
        links: &std::collections::BTreeSet<crate::compile::entity::LinkPath>,
    ) -> Result<DataFrame> {
        Ok(self.bound(crate::compile::entity::metric_frame(self, entity, links).await?))
    }

    /// Flow or snapshot metric `id`'s rows before aggregation (the
    /// `detail` of [`crate::compile::simple::SimplePlan`]), to run on this
    /// run's data: the deals or lines a reconciliation drills into.
    pub async fn metric_detail(
        &self,
        id: crate::catalog::MetricId,
        request: &crate::request::Resolved,
    ) -> Result<DataFrame> {
        Ok(self.bound(
            crate::compile::simple::compile(self, id, request)
                .await?
                .detail,
        ))
    }

    /// The cache folder's file-hash index; `None` (`--no-cache`) hashes
    /// every input and remembers nothing. Held by the source registry,
    /// which hashes the files it registers through it.
    pub fn fingerprints(&self) -> Option<Arc<fingerprints::Fingerprints>> {
        self.sources.fingerprints.lock().expect("lock").clone()
    }

    /// Hashes input files through `prints` (the cache folder's index) from
    /// now on.
    pub fn use_fingerprints(&mut self, prints: Arc<fingerprints::Fingerprints>) {
        *self.sources.fingerprints.lock().expect("lock") = Some(prints);
    }

    /// Whether every local file this run has read is still the file it was
    /// when its table was bound. DataFusion opens a file by its path for
    /// each scan, so a file replaced during a run (an extract loader
    /// rewriting the folder) can have one plan read the old bytes and
    /// another the new: a number over two versions, and a result or gate
    /// outcome remembered under the wrong content. Checked after a result
    /// is computed and before anything is remembered; an object store's
    /// reads are pinned to the version canon listed instead.
    pub fn inputs_held(&self) -> Result<()> {
        let stamps = self.sources.stamps.lock().expect("lock").clone();
        match stamps.iter().find(|(path, stamp)| !unmoved(path, stamp)) {
            Some((path, _)) => Err(fingerprints::changed_while_read(path)),
            None => Ok(()),
        }
    }

    /// Whether local file `path` was bound this run and is still the file
    /// it was then (see [`Engine::inputs_held`]).
    pub fn still_bound(&self, path: &std::path::Path) -> bool {
        let stamps = self.sources.stamps.lock().expect("lock");
        stamps
            .iter()
            .any(|(bound, stamp)| bound == path && unmoved(path, stamp))
    }

    /// Every source registered so far with its files, their content hashes
    /// complete.
    pub async fn sources_read(&self) -> Result<BTreeMap<String, SourceFacts>> {
        let pending = std::mem::take(&mut *self.sources.pending_hashes.lock().expect("lock"));
        for (key, index, task) in pending {
            let sha256 = task
                .await
                .map_err(|e| CanonError::Internal(format!("hashing task failed: {e}")))??;
            if let Some(file) = self
                .sources
                .registered
                .lock()
                .expect("lock")
                .get_mut(&key)
                .and_then(|facts| facts.files.get_mut(index))
            {
                file.sha256 = sha256;
            }
        }
        Ok(self.sources.registered.lock().expect("lock").clone())
    }

    /// `error` as a data error naming the damaged file, column and row
    /// group when it is the engine failing to decode a Parquet file: the
    /// files of every table registered so far (of `only`, `system/table`,
    /// when given) are decoded again one by one, their declared columns
    /// only (what the engine may have read), to find it. Any other error is
    /// returned as it is. See [`decode::locate`].
    pub async fn located(&self, error: CanonError, only: Option<&str>) -> CanonError {
        if let DataSource::Store(store) = &self.data {
            let read: Vec<(DataLocation, Vec<String>)> = self
                .sources
                .registered
                .lock()
                .expect("lock")
                .values()
                .map(|facts| {
                    (
                        DataLocation {
                            system: facts.system.clone(),
                            table: facts.table.clone(),
                            file: None,
                            column: None,
                        },
                        facts.files.iter().map(|f| f.path.clone()).collect(),
                    )
                })
                .collect();
            return store.located(error, &read);
        }
        if !decode::is_decode_error(&error) {
            return error;
        }
        let tables: Vec<decode::ReadTable> = self
            .sources
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
}

/// Whether the file at `path` still has the identity `stamp` it had when
/// bound (a file that could not be read then has none, and has moved).
fn unmoved(path: &std::path::Path, stamp: &Option<fingerprints::Stamp>) -> bool {
    stamp.is_some() && fingerprints::stamp_of(path) == *stamp
}

/// A source is bound the first time a plan that reads it runs, after every
/// one of its files has been checked against the model.
#[async_trait::async_trait]
impl SourceBinder for Sources {
    async fn provider(&self, system: &str, table: &str) -> Result<Arc<dyn TableProvider>> {
        let key = format!("{system}/{table}");
        // Two computations of one run (the bridge's sides) reading one
        // table check its files and start hashing them once.
        let cell = self
            .providers
            .lock()
            .expect("lock")
            .entry(key.clone())
            .or_default()
            .clone();
        cell.get_or_try_init(|| self.bind(&key, system, table))
            .await
            .cloned()
    }
}

impl Sources {
    /// Lists and checks `system/table`'s files, and the table that reads them.
    async fn bind(&self, key: &str, system: &str, table: &str) -> Result<Arc<dyn TableProvider>> {
        let (id, spec) = self
            .catalog
            .source_by_name(system, table)
            .ok_or_else(|| CanonError::Internal(format!("source {key} is not in the catalog")))?;
        let schema = declared_schema(spec);
        let location = self.catalog.source_location(id);
        let (provider, facts): (Arc<dyn TableProvider>, Vec<FileFact>) = match &self.data {
            DataSource::Empty => (Arc::new(NoRows { schema }), Vec::new()),
            DataSource::Folder(root) => {
                let paths = files::source_files(&self.catalog, root, id)?;
                self.stamps
                    .lock()
                    .expect("lock")
                    .extend(paths.iter().map(|p| (p.clone(), fingerprints::stamp_of(p))));
                let facts = paths
                    .iter()
                    .map(|p| files::inspect(p, spec, &location))
                    .collect::<Result<Vec<_>>>()?;
                // Lineage needs every file's content hash; compute them on
                // blocking threads while the query plans and runs.
                let prints = self.fingerprints.lock().expect("lock").clone();
                let mut pending = self.pending_hashes.lock().expect("lock");
                for (index, path) in paths.iter().enumerate() {
                    let (path, prints) = (path.clone(), prints.clone());
                    pending.push((
                        key.to_string(),
                        index,
                        tokio::task::spawn_blocking(move || match prints {
                            Some(prints) => prints.sha256(&path),
                            None => files::sha256_file(&path),
                        }),
                    ));
                }
                drop(pending);
                let table = ListingTable::try_new(listing_of(&paths)?.with_schema(schema))?;
                (Arc::new(table), facts)
            }
            DataSource::Store(root) => {
                let objects = root.table_objects(&self.catalog, id).await?;
                // Footers read a few at a time: one round trip or two each.
                let reads = objects.iter().cloned().map(|meta| {
                    let (root, spec, location) = (root.clone(), spec.clone(), location.clone());
                    async move { root.inspect(&meta, &spec, &location).await }
                });
                let facts: Vec<FileFact> = futures::stream::iter(reads)
                    .buffered(8)
                    .try_collect()
                    .await?;
                let urls = objects
                    .iter()
                    .map(|meta| {
                        root.engine_url(meta).map_err(|why| {
                            CanonError::data(
                                DataLocation {
                                    file: Some(root.name(&meta.location)),
                                    ..location.clone()
                                },
                                format!("cannot be read: {why}; rename the object"),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                let table = ListingTable::try_new(listing_of_urls(urls).with_schema(schema))?;
                (Arc::new(table), facts)
            }
        };
        self.registered.lock().expect("lock").insert(
            key.to_string(),
            SourceFacts {
                system: system.to_string(),
                table: spec.name.clone(),
                files: facts,
            },
        );
        Ok(provider)
    }
}

/// A source with no data (validation, plans without data): its declared
/// schema, and a scan that fails, since nothing may run over it. Filters are offered to its scan as a Parquet listing
/// takes them (inexactly), so a plan over it is the plan over data, not the
/// plan over an in-memory table (tests/metrics/planning.rs).
#[derive(Debug)]
struct NoRows {
    schema: SchemaRef,
}

#[async_trait::async_trait]
impl datafusion::catalog::TableProvider for NoRows {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> datafusion::datasource::TableType {
        datafusion::datasource::TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn datafusion::catalog::Session,
        projection: Option<&Vec<usize>>,
        _filters: &[datafusion::logical_expr::Expr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        // Planning never scans (compile is pure), and validation only
        // plans: a scan here is a step that reads data while planning, and
        // must not pass for one over empty tables.
        let _ = (projection, &self.schema);
        Err(datafusion::error::DataFusionError::Internal(
            "a plan over no data was run: planning must not read rows".into(),
        ))
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&datafusion::logical_expr::Expr],
    ) -> datafusion::error::Result<Vec<datafusion::logical_expr::TableProviderFilterPushDown>> {
        Ok(vec![
            datafusion::logical_expr::TableProviderFilterPushDown::Inexact;
            filters.len()
        ])
    }
}

/// A listing over exactly `paths`: the engine reads the files canon listed,
/// checked and hashes, so nothing it would list differently (hidden files,
/// other folders) can be read unseen.
pub fn listing_of(paths: &[PathBuf]) -> Result<ListingTableConfig> {
    let urls = paths
        .iter()
        .map(|p| {
            let p = std::fs::canonicalize(p).map_err(|e| CanonError::io(p, e))?;
            // Not `display()`: it replaces what is not UTF-8, and the URL
            // would name another file (none: an empty table, no error).
            let Some(text) = p.to_str() else {
                let why = "the path (a folder's name in it, if not the file's) is not UTF-8: the \
                           engine reads files by URL, which must be UTF-8; rename the folder or \
                           point --data at a copy whose path is";
                return Err(CanonError::io(
                    &p,
                    std::io::Error::new(std::io::ErrorKind::InvalidData, why),
                ));
            };
            // Not `ListingTableUrl::parse`: it reads `[`, `*` and `?` in a path
            // as a glob, and a file named `part-[1].parquet` matched nothing
            // (its rows left out of the number, exit 0). The URL names the
            // file exactly.
            let url = url::Url::from_file_path(text).map_err(|()| {
                CanonError::io(
                    &p,
                    std::io::Error::new(std::io::ErrorKind::InvalidInput, "not an absolute path"),
                )
            })?;
            Ok(ListingTableUrl::try_new(url, None)?)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(listing_of_urls(urls))
}

/// A listing over exactly the files or objects `urls`.
pub(crate) fn listing_of_urls(urls: Vec<ListingTableUrl>) -> ListingTableConfig {
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    ListingTableConfig::new_with_multi_paths(urls).with_listing_options(options)
}

/// A DataFusion session configured for this machine, with one schema per
/// system of the catalog (`crm`, `billing`, …) for its tables.
pub fn session(catalog: &Catalog) -> Result<SessionContext> {
    session_with(catalog, None)
}

/// [`session`], with `bindings` to read sources through when plans over
/// declared tables run on it.
fn session_with(catalog: &Catalog, bindings: Option<Bindings>) -> Result<SessionContext> {
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
        // Shared fairly among the operators that hold memory (memory.rs).
        runtime = runtime.with_memory_pool(Arc::new(memory::SharedPool::new(bytes)));
    }
    if let Some(bindings) = bindings {
        config = config.with_extension(Arc::new(bindings));
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

#[cfg(test)]
mod tests {
    use super::*;

    // A table file replaced after a run read it (an extract loader writing
    // the folder mid-run): the run cannot vouch for what it computed, and
    // says which file moved. Rewritten with the same bytes, it is still
    // another file (a new inode): what canon read is no longer what is
    // there.
    #[tokio::test]
    async fn a_file_replaced_while_a_run_reads_it_is_named() {
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let catalog = Arc::new(Catalog::load(repo).unwrap());
        let data = tempfile::tempdir().unwrap();
        let folder = data.path().join("crm/account");
        std::fs::create_dir_all(&folder).unwrap();
        let file = folder.join("part-00000.parquet");
        std::fs::copy(
            repo.join("sample_data/crm/account/part-00000.parquet"),
            &file,
        )
        .unwrap();
        let engine = Engine::new(catalog, DataSource::Folder(data.path().to_path_buf())).unwrap();
        // The sample's CRM accounts: 516 rows.
        let rows = engine
            .entity_frame("account")
            .await
            .unwrap()
            .count()
            .await
            .unwrap();
        assert_eq!(rows, 516);
        engine.inputs_held().unwrap();
        assert!(engine.still_bound(&file));
        let copy = folder.join("_incoming");
        std::fs::copy(&file, &copy).unwrap();
        std::fs::rename(&copy, &file).unwrap();
        assert!(!engine.still_bound(&file));
        let said = engine.inputs_held().unwrap_err().to_string();
        assert!(said.contains("part-00000.parquet"), "{said}");
        assert!(said.contains("changed while canon read it"), "{said}");
    }
}
