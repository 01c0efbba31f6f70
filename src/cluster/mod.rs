//! canon's plans on an Apache DataFusion Ballista cluster (the `cluster`
//! feature; docs/cluster-design.md).
//!
//! The client binds every source a plan reads before the plan leaves it
//! (its files or objects, listed and checked against the models here, as
//! on one machine), so the scheduler and the executors know nothing of the
//! project: they read the objects a plan names through stores built from
//! their own environment, and canon's functions reach them by name (the
//! stateless ones) or with the settings they are bound to, written in the
//! plan ([`crate::functions::BoundFunction`]). Lineage, fingerprints,
//! gates and the cache stay with the client.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ballista::prelude::SessionContextExt;
use ballista_core::extension::SessionConfigExt;
use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::TableReference;
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::execution::{FunctionRegistry, TaskContext};
use datafusion::logical_expr::{AggregateUDF, Extension, LogicalPlan, ScalarUDF};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use object_store::ObjectStore;

mod clean_jobs;
#[cfg(unix)]
pub mod interrupt;
#[cfg(test)]
mod tests;

use crate::compile::declared::DeclaredTable;
use crate::compile::survivors::Survivors;
use crate::error::{CanonError, Result};
use crate::run::wire::{PlanCodec, decode_udf, encode_files, encode_rows, encode_udf};
use crate::run::{DataSource, DeclaredSources, Engine, ObjectsUnchanged, declared_sources};

/// The URLs of the files or objects a declared source is bound to, where
/// the plan is made (the client).
pub type BindSource = crate::run::SourceUrls;
/// A merge map's rows, worked out where the plan is made.
pub type WorkOut = Arc<dyn Fn(&Survivors) -> DfResult<(SchemaRef, RecordBatch)> + Send + Sync>;

/// canon's logical codec on a cluster: Ballista's own nodes and file
/// formats through Ballista's codec, canon's tables and bound functions
/// through canon's. On the client it writes a declared source as the
/// objects it is bound to and a merge map as its rows (`bind`, `work_out`),
/// so nothing that needs the project reaches the scheduler.
#[derive(Clone, Default)]
pub struct ClusterLogicalCodec {
    ballista: Arc<BallistaLogicalExtensionCodec>,
    bind: Option<BindSource>,
    work_out: Option<WorkOut>,
}

impl std::fmt::Debug for ClusterLogicalCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterLogicalCodec")
    }
}

impl LogicalExtensionCodec for ClusterLogicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> DfResult<Extension> {
        self.ballista.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> DfResult<()> {
        self.ballista.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> DfResult<Arc<dyn TableProvider>> {
        PlanCodec.try_decode_table_provider(buf, table_ref, schema, ctx)
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> DfResult<()> {
        if let (Some(bind), Some(declared)) = (&self.bind, node.downcast_ref::<DeclaredTable>()) {
            return encode_files(bind(&declared.system, &declared.table)?, buf);
        }
        if let (Some(work_out), Some(map)) = (&self.work_out, node.downcast_ref::<Survivors>()) {
            let (schema, rows) = work_out(map)?;
            return encode_rows(&schema, &[rows], buf);
        }
        PlanCodec.try_encode_table_provider(table_ref, node, buf)
    }

    fn try_decode_file_format(
        &self,
        buf: &[u8],
        ctx: &TaskContext,
    ) -> DfResult<Arc<dyn FileFormatFactory>> {
        self.ballista.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(
        &self,
        buf: &mut Vec<u8>,
        node: Arc<dyn FileFormatFactory>,
    ) -> DfResult<()> {
        self.ballista.try_encode_file_format(buf, node)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> DfResult<Arc<ScalarUDF>> {
        decode_udf(name, buf)
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> DfResult<()> {
        encode_udf(node, buf)
    }

    fn try_decode_udaf(&self, name: &str, _buf: &[u8]) -> DfResult<Arc<AggregateUDF>> {
        unregistered_udaf(name)
    }
}

/// canon's physical codec on a cluster: Ballista's shuffle and stage nodes
/// through Ballista's codec, canon's bound functions through canon's.
#[derive(Debug, Default, Clone)]
pub struct ClusterPhysicalCodec {
    ballista: Arc<BallistaPhysicalExtensionCodec>,
}

impl PhysicalExtensionCodec for ClusterPhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.ballista.try_decode(buf, inputs, ctx, proto_converter)
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<()> {
        self.ballista.try_encode(node, buf, proto_converter)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> DfResult<Arc<ScalarUDF>> {
        decode_udf(name, buf)
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> DfResult<()> {
        encode_udf(node, buf)
    }

    fn try_decode_udaf(&self, name: &str, _buf: &[u8]) -> DfResult<Arc<AggregateUDF>> {
        unregistered_udaf(name)
    }
}

/// The aggregates canon builds into plans without registering them (so no
/// definition can call them): the uniqueness gate's.
fn unregistered_udaf(name: &str) -> DfResult<Arc<AggregateUDF>> {
    match name {
        "canon_repeated_hashes" => Ok(Arc::new(crate::quality::uniqueness::repeated_hashes_udaf())),
        _ => Err(DataFusionError::NotImplemented(format!(
            "aggregate function {name} is not known here"
        ))),
    }
}

/// The object stores of a scheduler or an executor: a bucket's store built
/// from this process's environment the first time a plan names it (as the
/// client built its own), local files as DataFusion reads them.
#[derive(Debug, Default)]
struct EnvStores {
    local: DefaultObjectStoreRegistry,
    made: RwLock<HashMap<String, Arc<dyn ObjectStore>>>,
}

impl ObjectStoreRegistry for EnvStores {
    fn register_store(
        &self,
        url: &url::Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.local.register_store(url, store)
    }

    fn get_store(&self, url: &url::Url) -> DfResult<Arc<dyn ObjectStore>> {
        if let Ok(store) = self.local.get_store(url) {
            return Ok(store);
        }
        let base = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
        if let Some(store) = self.made.read().expect("lock").get(&base) {
            return Ok(store.clone());
        }
        let store = crate::run::store::StoreRoot::open(&base)
            .map_err(|e| DataFusionError::External(Box::new(e)))?
            .store();
        self.made.write().expect("lock").insert(base, store.clone());
        Ok(store)
    }
}

/// canon's functions known by name where plans run: the stateless ones
/// and the aggregates. `local_date` and `is_internal_domain` are not: they
/// arrive with the settings the client bound them to, so a plan never
/// computes with a scheduler's or an executor's zone or domains.
fn register_functions(state: &mut SessionState) -> DfResult<()> {
    for name in ["url_domain", "email_domain"] {
        let udf = crate::functions::stateless(name).ok_or_else(|| {
            DataFusionError::Internal(format!("canon function {name} is missing"))
        })?;
        state.register_udf(Arc::new(udf))?;
    }
    for f in crate::compile::instants::udfs() {
        state.register_udf(Arc::new(f))?;
    }
    let aggregates: [AggregateUDF; 2] = [crate::latest::udaf(), crate::latest_spans::udaf()];
    for f in aggregates {
        state.register_udaf(Arc::new(f))?;
    }
    Ok(())
}

fn runtime(work_dir: Option<&str>) -> DfResult<Arc<RuntimeEnv>> {
    let mut builder =
        RuntimeEnvBuilder::new().with_object_store_registry(Arc::new(EnvStores::default()));
    if let Some(dir) = work_dir {
        builder = builder.with_temp_file_path(dir);
    }
    builder.build_arc()
}

/// The session a scheduler plans each job on.
fn scheduler_state(config: SessionConfig) -> DfResult<SessionState> {
    let mut state = SessionStateBuilder::new_from_existing(
        ballista_core::utils::default_session_builder(config)?,
    )
    .with_runtime_env(runtime(None)?)
    .build();
    register_functions(&mut state)?;
    Ok(state)
}

/// How often an executor tells the scheduler it is alive, and how long
/// the scheduler waits without a word before it counts the executor lost.
/// Ballista's 60 s and 180 s left a client whose executor died mid-job
/// waiting three minutes for a failure (or its whole deadline); here a job
/// that ran on a dead executor fails within about 40 s ([`clean_jobs`]).
/// Six missed beats before a busy executor is wrongly counted lost.
const HEARTBEAT: Duration = Duration::from_secs(5);
const EXECUTOR_TIMEOUT: Duration = Duration::from_secs(30);
/// How long Ballista keeps the running jobs of a cluster that lost its
/// last executor, waiting for one to register, before it fails them
/// (Ballista's 180 s; no shorter than [`EXECUTOR_TIMEOUT`], as Ballista
/// advises, so an executor removed by one failed launch can come back).
const NO_EXECUTOR_GRACE: Duration = EXECUTOR_TIMEOUT;

/// Runs a scheduler listening on `address` until the process is stopped.
pub async fn scheduler(address: SocketAddr) -> Result<()> {
    let mut config = ballista_scheduler::config::SchedulerConfig::default()
        .with_hostname(address.ip().to_string())
        .with_port(address.port())
        .with_override_session_builder(Arc::new(scheduler_state));
    config.bind_host = address.ip().to_string();
    // A job runs clean or fails: no task retried, no stage resubmitted.
    // Ballista's recovery after an executor is lost mid-job gave wrong
    // numbers with exit 0 (nineteenth session); the client runs the query
    // again instead. Recovery these limits do not govern (an executor lost)
    // fails the job in `clean_jobs`.
    config.task_max_failures = 1;
    config.stage_max_failures = 1;
    config.executor_timeout_seconds = EXECUTOR_TIMEOUT.as_secs();
    config.expire_dead_executor_interval_seconds = HEARTBEAT.as_secs();
    config.no_executors_grace_period_seconds = NO_EXECUTOR_GRACE.as_secs();
    config.override_logical_codec = Some(Arc::new(ClusterLogicalCodec::default()));
    config.override_physical_codec = Some(Arc::new(ClusterPhysicalCodec::default()));
    let cluster = ballista_scheduler::cluster::BallistaCluster::new_from_config(&config)
        .await
        .map_err(cluster_error)?;
    let (cluster, ledger) = clean_jobs::clean_jobs(cluster);
    let cannot_serve =
        |e| CanonError::request(format!("the scheduler cannot serve on {address}: {e}"));
    let config = Arc::new(config);
    config.validate().map_err(cannot_serve)?;
    tracing::info!("canon's Ballista scheduler listening on {address}");
    let members = cluster.cluster_state();
    let server = ballista_scheduler::scheduler_process::create_scheduler::<
        datafusion_proto::protobuf::LogicalPlanNode,
        datafusion_proto::protobuf::PhysicalPlanNode,
    >(cluster, config)
    .await
    .map_err(cannot_serve)?;
    // The scheduler cancels the jobs running when an executor is lost
    // (`clean_jobs`) through its own event loop.
    let jobs = server.clone();
    ledger.cancel_with(Box::new(move |job| {
        let jobs = jobs.clone();
        Box::pin(async move {
            if let Err(e) = jobs.cancel_job(job.clone()).await {
                tracing::error!(job = %job, "canon could not cancel the job: {e}");
            }
        })
    }));
    tokio::spawn(clean_jobs::watch_for_an_empty_cluster(
        ledger,
        members,
        HEARTBEAT,
        NO_EXECUTOR_GRACE,
    ));
    ballista_scheduler::scheduler_process::start_grpc_service(address, server)
        .await
        .map_err(cannot_serve)
}

/// Where an executor listens and which scheduler it serves.
pub struct ExecutorPlace {
    pub bind: std::net::IpAddr,
    /// How others reach it; `None`: the address the scheduler sees.
    pub external_host: Option<String>,
    pub port: u16,
    pub grpc_port: u16,
    pub scheduler_host: String,
    pub scheduler_port: u16,
    pub work_dir: String,
    pub cores: usize,
    /// Bytes its tasks share before spilling; `None`: Ballista's default
    /// (70% of the machine's or the container's memory).
    pub memory_limit: Option<u64>,
}

/// Runs an executor until the process is stopped.
pub async fn executor(place: ExecutorPlace) -> Result<()> {
    let mut state =
        ballista_core::utils::default_session_builder(SessionConfig::new_with_ballista())
            .map_err(CanonError::Engine)?;
    register_functions(&mut state).map_err(CanonError::Engine)?;
    let registry = ballista_core::registry::BallistaFunctionRegistry::from(&state);
    let work_dir = place.work_dir.clone();
    let config = ballista_executor::executor_process::ExecutorProcessConfig {
        bind_host: place.bind.to_string(),
        port: place.port,
        grpc_port: place.grpc_port,
        external_host: place.external_host,
        scheduler_host: place.scheduler_host,
        scheduler_port: place.scheduler_port,
        work_dir: Some(place.work_dir),
        vcores: place.cores,
        memory_pool_size: place.memory_limit,
        executor_heartbeat_interval_seconds: HEARTBEAT.as_secs(),
        override_logical_codec: Some(Arc::new(ClusterLogicalCodec::default())),
        override_physical_codec: Some(Arc::new(ClusterPhysicalCodec::default())),
        override_function_registry: Some(Arc::new(registry)),
        override_runtime_producer: Some(Arc::new(move |_: &SessionConfig| {
            runtime(Some(&work_dir))
        })),
        ..Default::default()
    };
    let scheduler = format!("{}:{}", config.scheduler_host, config.scheduler_port);
    ballista_executor::executor_process::start_executor_process(Arc::new(config))
        .await
        .map_err(|e| match e.to_string() {
            text if text.contains("Could not connect to scheduler") => {
                CanonError::request(format!(
                    "cannot reach the scheduler at {scheduler} (start it with `canon cluster \
                     scheduler`, or pass --scheduler HOST:PORT): {text}"
                ))
            }
            _ => cluster_error(e),
        })
}

/// A session whose plans run on the cluster at `url` (`df://HOST:PORT`):
/// the client's configuration (canon's settings after Ballista's defaults),
/// its functions, and a codec that binds sources with `bind` and works
/// merge maps out with `work_out` as a plan is written.
pub async fn remote(
    url: &str,
    local: &SessionContext,
    bind: BindSource,
    work_out: WorkOut,
) -> Result<SessionContext> {
    let config = with_canon_options(SessionConfig::new_with_ballista(), local);
    let codec = ClusterLogicalCodec {
        ballista: Arc::default(),
        bind: Some(bind),
        work_out: Some(work_out),
    };
    // Ballista's adaptive planner re-optimizes a stage plan after every
    // stage; on canon's plans (many joins and sorts) it spent minutes in
    // DataFusion's sort enforcement for one query. The static planner
    // plans each job once.
    let config = config
        .with_ballista_adaptive_query_planner(false)
        .with_ballista_shuffle_reader_force_remote_read(true)
        .with_ballista_logical_extension_codec(Arc::new(codec))
        .with_ballista_physical_extension_codec(Arc::new(ClusterPhysicalCodec::default()));
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .build();
    let ctx = SessionContext::remote_with_state(url, state)
        .await
        .map_err(|e| {
            CanonError::request(format!(
                "--cluster {url}: cannot reach the scheduler: {e} (start one with `canon cluster scheduler`)"
            ))
        })?;
    // Ballista's session replaces the function lists: canon's again.
    for udf in local.state().scalar_functions().values() {
        ctx.register_udf(udf.as_ref().clone());
    }
    for udaf in local.state().aggregate_functions().values() {
        ctx.register_udaf(udaf.as_ref().clone());
    }
    Ok(ctx)
}

/// Ballista's session configuration with the engine options canon sets on
/// one machine (Parquet filter pushdown), except those Ballista
/// sets itself: its defaults are restrictions a cluster needs (dynamic
/// filters, which cannot cross a stage boundary and left jobs hanging when
/// canon's were copied over them; broadcast thresholds; sort-merge joins
/// that spill), so Ballista's value wins wherever it differs from
/// DataFusion's default.
fn with_canon_options(mut config: SessionConfig, local: &SessionContext) -> SessionConfig {
    let datafusion: HashMap<String, Option<String>> = SessionConfig::new()
        .options()
        .entries()
        .into_iter()
        .map(|e| (e.key, e.value))
        .collect();
    let ballista: HashMap<String, Option<String>> = config
        .options()
        .entries()
        .into_iter()
        .map(|e| (e.key, e.value))
        .collect();
    for entry in local.state().config().options().entries() {
        let default = datafusion.get(&entry.key);
        let canon_sets = default != Some(&entry.value);
        let ballista_sets = ballista.get(&entry.key) != default;
        if let (true, false, Some(value)) = (canon_sets, ballista_sets, &entry.value) {
            let _ = config.options_mut().set(&entry.key, value);
        }
    }
    config
}

/// Runs `engine`'s plans on the Ballista cluster at `url` from now on. The
/// sources stay bound here: a plan leaves with its sources written as the
/// objects they were bound to and its merge maps as their rows, worked out
/// on this machine.
pub async fn use_cluster(engine: &mut Engine, url: &str) -> Result<()> {
    if !matches!(engine.data, DataSource::Store(_)) {
        return Err(CanonError::request(format!(
            "--cluster {url}: the data root must be in an object store (s3://, gs://, az://) \
             that the executors read: they cannot read this machine's folders"
        )));
    }
    let local = engine.session().state();
    let work_out: WorkOut = Arc::new(move |map: &Survivors| {
        let rows = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(map.worked_out(&local))
        })?;
        Ok((map.schema(), rows))
    });
    let deadline = job_deadline()?;
    let endpoint = reachable_scheduler(url).await?;
    let session = remote(url, engine.session(), engine.source_urls(), work_out).await?;
    let state = session.state();
    let guarded = GuardedJobs {
        ballista: state.query_planner().clone(),
        bind: Opaque(engine.source_urls()),
        unchanged: Opaque(engine.objects_unchanged()),
        jobs: Opaque(jobs_on(endpoint)),
        in_flight: Opaque(IN_FLIGHT.get_or_init(Default::default).clone()),
        deadline,
    };
    let state = SessionStateBuilder::new_from_existing(state)
        .with_query_planner(Arc::new(guarded))
        .build();
    engine.run_on(SessionContext::new_with_state(state));
    Ok(())
}

/// How long one job may take on the cluster before canon gives up on it:
/// `CANON_CLUSTER_TIMEOUT` seconds, one hour by default. A scheduler that
/// fails a job's bookkeeping can leave the job running forever with every
/// executor idle (Ballista 55 did, when dynamic filters reached it), and a
/// client waiting on it would wait forever too.
fn job_deadline() -> Result<Duration> {
    const LONGEST: u64 = 30 * 24 * 3600;
    match std::env::var("CANON_CLUSTER_TIMEOUT") {
        Ok(text) if !text.trim().is_empty() => match text.trim().parse::<u64>() {
            Ok(seconds) if (1..=LONGEST).contains(&seconds) => Ok(Duration::from_secs(seconds)),
            _ => Err(CanonError::request(format!(
                "CANON_CLUSTER_TIMEOUT={text}: expected a whole number of seconds from 1 to \
                 {LONGEST} (30 days)"
            ))),
        },
        // Unset or empty: one hour.
        _ => Ok(Duration::from_secs(3600)),
    }
}

/// The scheduler's address in `url` (`df://HOST:PORT`, nothing else), and
/// whether something listens there, asked before any plan is written: a
/// cluster that cannot be reached is said so, not blamed on the first
/// metric's definition. Its gRPC endpoint, `http://HOST:PORT`.
async fn reachable_scheduler(url: &str) -> Result<String> {
    let refused = |why: String| CanonError::request(format!("--cluster {url}: {why}"));
    let parsed = url::Url::parse(url).map_err(|e| refused(format!("not a URL ({e})")))?;
    if parsed.scheme() != "df"
        || !parsed.path().trim_matches('/').is_empty()
        || parsed.query().is_some()
        || parsed.fragment().is_some()
        || !parsed.username().is_empty()
    {
        return Err(refused("expected df://HOST:PORT, nothing more".into()));
    }
    let (Some(host), Some(port)) = (parsed.host_str(), parsed.port()) else {
        return Err(refused("expected df://HOST:PORT, with the port".into()));
    };
    let connect = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port));
    match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(_)) => Ok(format!("http://{host}:{port}")),
        Ok(Err(e)) => Err(refused(format!(
            "cannot reach the scheduler: {e} (start one with `canon cluster scheduler`)"
        ))),
        Err(_) => Err(refused(
            "the scheduler did not answer within 5 s (start one with `canon cluster scheduler`)"
                .into(),
        )),
    }
}

/// Ballista's planner for the client's jobs, each job guarded by
/// [`GuardedJob`].
#[derive(Debug)]
struct GuardedJobs {
    ballista: Arc<dyn QueryPlanner + Send + Sync>,
    bind: Opaque<BindSource>,
    unchanged: Opaque<ObjectsUnchanged>,
    jobs: Opaque<SchedulerJobs>,
    in_flight: Opaque<Arc<InFlight>>,
    deadline: Duration,
}

#[async_trait::async_trait]
impl QueryPlanner for GuardedJobs {
    async fn create_physical_plan(
        &self,
        plan: &LogicalPlan,
        session: &dyn Session,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        // Every source bound here first, so a source that fails (a damaged
        // footer, a missing column) fails as the located data error it is:
        // bound while Ballista writes the plan, the error would come back as
        // its text inside "failed to serialize logical plan".
        let declared =
            declared_sources(plan).map_err(|e| DataFusionError::External(Box::new(e)))?;
        for (system, table) in &declared {
            (self.bind)(system, table)?;
        }
        let job = self.ballista.create_physical_plan(plan, session).await?;
        // Planned twice: Ballista's client keeps the first job id it is
        // told in the plan that submitted the job, so a run again from the
        // same plan could not be named for cancellation. Planning only
        // copies the logical plan; nothing reaches the scheduler yet.
        let rerun = self.ballista.create_physical_plan(plan, session).await?;
        Ok(Arc::new(GuardedJob {
            properties: job.properties().clone(),
            job,
            rerun,
            declared: Arc::new(declared),
            unchanged: self.unchanged.clone(),
            jobs: self.jobs.clone(),
            in_flight: self.in_flight.clone(),
            deadline: self.deadline,
            rerun_taken_within: RERUN_TAKEN_WITHIN,
        }))
    }
}

/// One job on the cluster, guarded twice: it fails when it has not
/// finished within the deadline (instead of waiting on a stalled job
/// forever), and, once its last batch has arrived, when an object it read
/// is no longer the one canon listed ([`Engine::objects_unchanged`]: the
/// executors read without canon's pins).
#[derive(Debug)]
struct GuardedJob {
    job: Arc<dyn ExecutionPlan>,
    /// The same job planned again, for its one run again: a plan of its
    /// own, which learns its own job id.
    rerun: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
    /// The sources the job reads, found once when it was planned.
    declared: Arc<DeclaredSources>,
    unchanged: Opaque<ObjectsUnchanged>,
    /// Used when the deadline passes, so the scheduler stops the job too
    /// rather than keep its executors' slots for an answer no one reads.
    jobs: Opaque<SchedulerJobs>,
    /// Where the job is followed until it ends, for a failed run to
    /// cancel it.
    in_flight: Opaque<Arc<InFlight>>,
    deadline: Duration,
    /// How long its run again may wait to be taken ([`RERUN_TAKEN_WITHIN`]).
    rerun_taken_within: Duration,
}

/// How a guarded job reaches its jobs on the scheduler, to cancel one at
/// its deadline.
#[derive(Clone)]
struct SchedulerJobs {
    /// The scheduler's id of the job `plan` last submitted, once the
    /// scheduler has told it.
    id_of: fn(&dyn ExecutionPlan) -> Option<String>,
    /// Cancels the job with this id: `Err` says why it could not be.
    cancel: CancelJob,
}

type CancelJob = Arc<
    dyn Fn(String) -> futures::future::BoxFuture<'static, std::result::Result<(), String>>
        + Send
        + Sync,
>;

/// The Ballista job a [`DistributedQueryExec`] submitted, once the
/// scheduler has told its id. (Ballista keeps the first id it is told: a
/// job run again from the same plan keeps its first run's id.)
fn ballista_job_id(job: &dyn ExecutionPlan) -> Option<String> {
    use ballista_core::execution_plans::DistributedQueryExec;
    job.downcast_ref::<DistributedQueryExec<datafusion_proto::protobuf::LogicalPlanNode>>()?
        .job_id()
        .map(|id| id.to_string())
}

/// Ballista's jobs through the scheduler at `endpoint` (`http://HOST:PORT`).
fn jobs_on(endpoint: String) -> SchedulerJobs {
    use ballista_core::serde::protobuf::CancelJobParams;
    use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
    let cancel: CancelJob = Arc::new(move |id: String| {
        let endpoint = endpoint.clone();
        Box::pin(async move {
            let ask = async {
                let mut scheduler = SchedulerGrpcClient::connect(endpoint)
                    .await
                    .map_err(|e| format!("cannot reach the scheduler: {e}"))?;
                scheduler
                    .cancel_job(CancelJobParams { job_id: id.clone() })
                    .await
                    .map(|answer| answer.into_inner().cancelled)
                    .map_err(|e| e.message().to_string())
            };
            match tokio::time::timeout(Duration::from_secs(10), ask).await {
                Ok(Ok(true)) => Ok(()),
                Ok(Ok(false)) => Err(format!(
                    "the scheduler did not cancel job {id} (it knows no such running job)"
                )),
                Ok(Err(why)) => Err(format!("job {id}: {why}")),
                Err(_) => Err(format!(
                    "job {id}: the scheduler did not answer within 10 s"
                )),
            }
        })
    });
    SchedulerJobs {
        id_of: ballista_job_id,
        cancel,
    }
}

/// A closure the planner holds, printed by its type's name only (the
/// planner and the job must be `Debug`).
#[derive(Clone)]
struct Opaque<T>(T);

impl<T> std::ops::Deref for Opaque<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> std::fmt::Debug for Opaque<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(std::any::type_name::<T>())
    }
}

impl DisplayAs for GuardedJob {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "GuardedJob: deadline={}s", self.deadline.as_secs())
    }
}

impl ExecutionPlan for GuardedJob {
    fn name(&self) -> &str {
        "GuardedJob"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.job]
    }

    fn apply_expressions(
        &self,
        _: &mut dyn FnMut(
            &Arc<dyn datafusion::physical_plan::PhysicalExpr>,
        ) -> DfResult<datafusion::common::tree_node::TreeNodeRecursion>,
    ) -> DfResult<datafusion::common::tree_node::TreeNodeRecursion> {
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let job = children
            .pop()
            .ok_or_else(|| DataFusionError::Internal("a guarded job needs its job".into()))?;
        Ok(Arc::new(GuardedJob {
            properties: job.properties().clone(),
            job,
            rerun: self.rerun.clone(),
            declared: self.declared.clone(),
            unchanged: self.unchanged.clone(),
            jobs: self.jobs.clone(),
            in_flight: self.in_flight.clone(),
            deadline: self.deadline,
            rerun_taken_within: self.rerun_taken_within,
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        use futures::StreamExt;
        let batches = self.job.execute(partition, context.clone())?;
        let schema = batches.schema();
        let deadline = tokio::time::Instant::now() + self.deadline;
        let limit = self.deadline.as_secs();
        let check = self.unchanged.0.clone();
        let jobs = self.jobs.0.clone();
        let declared = self.declared.clone();
        let rerun = self.rerun.clone();
        let taken_within = self.rerun_taken_within;
        let reading = Reading {
            batches,
            may_rerun: true,
            first_run: None,
            taken_by: None,
        };
        let tracked = Arc::new(Tracked {
            jobs: jobs.clone(),
            running: std::sync::Mutex::new(self.job.clone()),
            ended: std::sync::atomic::AtomicBool::new(false),
        });
        self.in_flight.track(&tracked);
        let failed = tracked.clone();
        let guarded = futures::stream::unfold(Some(reading), move |reading| {
            let check = check.clone();
            let jobs = jobs.clone();
            let tracked = tracked.clone();
            let declared = declared.clone();
            let rerun = rerun.clone();
            let context = context.clone();
            async move {
                let mut reading = reading?;
                loop {
                    // A run again not yet taken by the scheduler waits
                    // only until `taken_by`.
                    let until = reading.taken_by.map_or(deadline, |t| t.min(deadline));
                    let next = tokio::time::timeout_at(until, reading.batches.next()).await;
                    if next.is_err() && until < deadline {
                        if tracked.running_id().is_some() {
                            reading.taken_by = None;
                            continue;
                        }
                        return Some((Err(not_taken(taken_within)), None));
                    }
                    return match next {
                        // Ballista hands a job's answer over only once the
                        // job has succeeded: its first batch is its end.
                        Ok(Some(Ok(batch))) => {
                            tracked.end();
                            reading.may_rerun = false;
                            Some((Ok(batch), Some(reading)))
                        }
                        // A job the scheduler refused for having been
                        // recovered (an executor lost) is run once more,
                        // from scratch, before any of its answer was read:
                        // a clean run of the same plan is the answer.
                        Ok(Some(Err(e)))
                            if reading.may_rerun
                                && clean_jobs::refused(&e.to_string()).is_some() =>
                        {
                            tracing::warn!(
                                "a job on the cluster lost an executor or ran a task again; \
                                 canon refused its answer and runs the job again from the start"
                            );
                            let first_run = tracked.running_id();
                            if let Ok(mut running) = tracked.running.lock() {
                                *running = rerun.clone();
                            }
                            match rerun.execute(partition, context.clone()) {
                                Ok(batches) => {
                                    reading = Reading {
                                        batches,
                                        may_rerun: false,
                                        first_run,
                                        taken_by: Some(tokio::time::Instant::now() + taken_within),
                                    };
                                    continue;
                                }
                                Err(e) => Some((Err(job_failure(e)), None)),
                            }
                        }
                        // A job that failed over objects rewritten under it
                        // failed for that (a footer where the listed size
                        // said, from other bytes): said so, at their table.
                        // A store that did not answer the check says nothing
                        // about the failure: the job's own error stands.
                        Ok(Some(Err(e))) => match check(&declared).await {
                            Err(unverified) if unverified.changed => Some((
                                Err(DataFusionError::External(Box::new(unverified.error))),
                                None,
                            )),
                            Err(unanswered) => {
                                tracing::warn!(
                                    "a job on the cluster failed, and whether the objects it \
                                     read changed could not be checked: {}",
                                    unanswered.error
                                );
                                Some((Err(job_failure(e)), None))
                            }
                            Ok(()) => Some((Err(job_failure(e)), None)),
                        },
                        // A finished job's answer stands only when every
                        // object it read is vouched for.
                        Ok(None) => {
                            tracked.end();
                            match check(&declared).await {
                                Ok(()) => None,
                                Err(unverified) => Some((
                                    Err(DataFusionError::External(Box::new(unverified.error))),
                                    None,
                                )),
                            }
                        }
                        Err(_) => {
                            let cancelled = match tracked.running_id() {
                                // Still the first run's id: cancelling it
                                // would stop nothing (that run is over).
                                Some(id) if Some(&id) == reading.first_run.as_ref() => {
                                    Err("the job run again is known only by its first run's id"
                                        .to_string())
                                }
                                Some(id) => (jobs.cancel)(id.clone()).await.map(|()| id),
                                None => Err("the scheduler had not told its id yet".to_string()),
                            };
                            let cancelled = match cancelled {
                                Ok(id) => format!(
                                    "canon asked the scheduler to cancel it (job {id}); the \
                                     scheduler's log says where it stalled"
                                ),
                                Err(why) => format!(
                                    "it may have stalled on the scheduler, whose log says why, \
                                     and may still be running there: canon could not cancel it \
                                     ({why})"
                                ),
                            };
                            Some((
                                Err(DataFusionError::External(Box::new(CanonError::Cluster(
                                    format!(
                                        "a job on the cluster did not finish within {limit} s \
                                         (CANON_CLUSTER_TIMEOUT): {cancelled}"
                                    ),
                                )))),
                                None,
                            ))
                        }
                    };
                }
            }
        });
        // An error is the job's end too (failed, refused twice, or
        // cancelled at its deadline).
        let guarded = guarded.inspect(move |item| {
            if item.is_err() {
                failed.end();
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, guarded)))
    }
}

/// The jobs a process has submitted to the cluster, so that a run that
/// fails can cancel those that have not ended: when one query of a run
/// fails, the others' answers are dropped unread, and their executors
/// would otherwise compute them to the end for no one.
#[derive(Default)]
pub(crate) struct InFlight {
    jobs: std::sync::Mutex<Vec<Arc<Tracked>>>,
}

/// One job on the cluster, as [`InFlight`] follows it.
struct Tracked {
    jobs: SchedulerJobs,
    /// The plan whose run is being read: the job, or its run again.
    running: std::sync::Mutex<Arc<dyn ExecutionPlan>>,
    /// Whether the job has ended: succeeded (its answer is arriving),
    /// failed, or been cancelled at its deadline.
    ended: std::sync::atomic::AtomicBool,
}

impl Tracked {
    fn end(&self) {
        self.ended.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn has_ended(&self) -> bool {
        self.ended.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The scheduler's id of the run being read, once it has told it.
    fn running_id(&self) -> Option<String> {
        (self.jobs.id_of)(self.running.lock().ok()?.as_ref())
    }
}

impl InFlight {
    fn track(&self, job: &Arc<Tracked>) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.retain(|j| !j.has_ended());
            jobs.push(job.clone());
        }
    }

    /// The jobs not yet ended.
    fn unfinished(&self) -> usize {
        self.jobs
            .lock()
            .map(|jobs| jobs.iter().filter(|job| !job.has_ended()).count())
            .unwrap_or(0)
    }

    /// Asks the scheduler to cancel every job not yet ended whose id it
    /// has told; the number asked.
    pub(crate) async fn cancel_unfinished(&self, why: GivingUp) -> usize {
        let unfinished: Vec<Arc<Tracked>> = match self.jobs.lock() {
            Ok(mut jobs) => jobs.drain(..).collect(),
            Err(_) => return 0,
        };
        let why = why.said();
        let asks: Vec<_> = unfinished
            .iter()
            .filter(|job| !job.has_ended())
            .filter_map(|job| {
                let id = job.running_id()?;
                let cancel = job.jobs.cancel.clone();
                Some(async move {
                    match cancel(id.clone()).await {
                        Ok(()) => tracing::warn!(
                            job = %id,
                            "{why}: canon asked the scheduler to cancel this job, whose answer \
                             no one will read"
                        ),
                        Err(e) => tracing::warn!(
                            job = %id,
                            "{why}, and canon could not cancel this job on the scheduler: {e}"
                        ),
                    }
                })
            })
            .collect();
        let asked = asks.len();
        futures::future::join_all(asks).await;
        asked
    }
}

/// Why a process gives up the answers of jobs it has not read to the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GivingUp {
    /// One query of the run failed, so the others' answers are dropped.
    RunFailed,
    /// The process was stopped by SIGINT or SIGTERM ([`interrupt`]).
    Interrupted,
}

impl GivingUp {
    fn said(self) -> &'static str {
        match self {
            GivingUp::RunFailed => "the run failed",
            GivingUp::Interrupted => "canon was interrupted",
        }
    }
}

/// The jobs this process submitted through [`use_cluster`].
static IN_FLIGHT: std::sync::OnceLock<Arc<InFlight>> = std::sync::OnceLock::new();

/// After a failed or interrupted run: asks the scheduler to cancel the
/// jobs this process submitted that have not ended, waiting at most
/// `within` for its answers. Nothing when no cluster was used.
pub async fn cancel_unfinished(within: Duration, why: GivingUp) {
    if let Some(in_flight) = IN_FLIGHT.get() {
        let _ = tokio::time::timeout(within, in_flight.cancel_unfinished(why)).await;
    }
}

/// How many jobs this process submitted that have not ended.
fn unfinished_jobs() -> usize {
    IN_FLIGHT
        .get()
        .map_or(0, |in_flight| in_flight.unfinished())
}

/// A job's answer being read, and whether the job may still be run again:
/// only once, and only before any of its answer has arrived.
struct Reading {
    batches: SendableRecordBatchStream,
    may_rerun: bool,
    /// The scheduler's id of the first run, when this is the run again.
    first_run: Option<String>,
    /// For the run again: when the scheduler must have taken it (told its
    /// id) by ([`RERUN_TAKEN_WITHIN`]).
    taken_by: Option<tokio::time::Instant>,
}

/// How long a job run again after an executor was lost may wait for the
/// scheduler to take it. A scheduler takes a job (queues it, plans its
/// stages, tells its id) in milliseconds, free executors or not; the CI
/// kill trial once saw ten runs again, after ten jobs were cancelled for a
/// frozen executor, never taken at all (no "Job queued" in the
/// scheduler's log), and the run waited for its whole deadline (an hour by
/// default). Now it fails as the cluster's failure after a minute.
const RERUN_TAKEN_WITHIN: Duration = Duration::from_secs(60);

/// The failure of a run again the scheduler did not take `within`.
fn not_taken(within: Duration) -> DataFusionError {
    DataFusionError::External(Box::new(CanonError::Cluster(format!(
        "a job run again after an executor was lost was not taken by the scheduler within {} s \
         (its log may say why); run the query again once the cluster is whole",
        within.as_secs()
    ))))
}

/// A failed job's error as the user should read it: the cluster's own
/// failures (an answer the scheduler refused, an executor that could not
/// be reached) are the cluster's, said without Ballista's wrapping and not
/// placed in a definition; the engine's (a division by zero, a bad cast)
/// stay engine errors, for canon to place in the definition that failed,
/// and an object an executor could not decode is the data's.
fn job_failure(e: DataFusionError) -> DataFusionError {
    let message = e.to_string();
    let said = if let Some(refusal) = clean_jobs::refused(&message) {
        refusal.to_owned()
    } else if [
        "tcp connect error",
        "Error connecting to Ballista",
        "code: Unavailable",
    ]
    .iter()
    .any(|m| message.contains(m))
    {
        format!("a task could not reach an executor (it may have stopped): {message}")
    } else if message.contains("all executors were lost") {
        format!("the cluster has no executor left: {message}")
    } else if let Some(at) = message.find(clean_jobs::NO_EXECUTOR) {
        message[at..].to_owned()
    } else if ["h2 protocol error", "Stream closed without job completing"]
        .iter()
        .any(|m| message.contains(m))
    {
        format!(
            "the connection to the cluster broke while the job ran (its scheduler or an \
             executor may have stopped): {message}"
        )
    } else if ["ParquetError(", "Parquet error"]
        .iter()
        .any(|m| message.contains(m))
    {
        // An executor could not decode an object it read: the data's
        // fault, not the definition's. Ballista hands the reader's error
        // over as text; typed again, it is located like a local run's
        // (`run::store`: a data error at the data root, exit 1).
        return DataFusionError::External(Box::new(
            datafusion::parquet::errors::ParquetError::General(format!(
                "on an executor: {message}"
            )),
        ));
    } else {
        return e;
    };
    DataFusionError::External(Box::new(CanonError::Cluster(said)))
}

fn cluster_error(e: ballista_core::error::BallistaError) -> CanonError {
    CanonError::Engine(DataFusionError::External(Box::new(e)))
}
