//! canon's scheduler hands out a job's answer only when the job ran clean.
//!
//! Ballista recovers from a lost executor by resetting the tasks that ran
//! on it and rerunning stages (`reset_stages_on_lost_executor`, outside the
//! retry limits canon sets to 1). After such a recovery the kill trial in
//! `.ci/cluster_test.py` got grr 0.907200 where the data give 0.877106,
//! with exit 0 (nineteenth session). Where in Ballista that answer went
//! wrong is not known; what canon can know is that recovery happened. So
//! the scheduler fails a finished job when either
//! - an executor was lost (removed for any reason) after the job was
//!   accepted and before it finished, or
//! - any of its stages ran more than once, or holds a task that failed or
//!   was reset (every recovery leaves one of these in the job's graph).
//!
//! Both checks sit where every status a client receives passes
//! ([`JobState::save_job`]: Ballista's clients follow their job by
//! subscription, which that call feeds). The client runs a refused job
//! once more from the start (`GuardedJob`) and fails the run if that is
//! refused too: a clean run gives the governed number; a recovered one
//! never leaves the scheduler.
//!
//! And since a job running when an executor is lost will be refused
//! anyway, the scheduler does not let Ballista recover it at all: it
//! cancels every running job the moment the executor is removed, before
//! Ballista's own handling of the loss, and the cancelled job fails with
//! the refusal. Recovery was not only wasted work: when it rolls back a
//! stage that was running on a surviving executor, Ballista 55 cancels
//! that task and never gives its slot back (the cancelled task's status
//! is ignored and refunds nothing), so a one-slot executor took no task
//! again and every job waited forever (the CI kill trial hung so at
//! 84284d8). A cancelled job's slots are refunded when it is cancelled.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use futures::future::BoxFuture;

use ballista_core::error::Result;
use ballista_core::serde::protobuf::job_status::Status;
use ballista_core::serde::protobuf::{ExecutorHeartbeat, JobStatus};
use ballista_core::serde::protobuf::{executor_status, task_status};
use ballista_core::serde::scheduler::{ExecutorData, ExecutorMetadata};
use ballista_core::{JobId, JobStatusSubscriber};
use ballista_scheduler::cluster::{
    BallistaCluster, BoundTask, ClusterState, ClusterStateEventStream, ExecutorSlot, JobState,
    JobStateEventStream,
};
use ballista_scheduler::config::TaskDistributionPolicy;
use ballista_scheduler::state::execution_graph::ExecutionGraphBox;
use ballista_scheduler::state::execution_stage::ExecutionStage;
use ballista_scheduler::state::task_manager::JobInfoCache;
use datafusion::prelude::{SessionConfig, SessionContext};

/// Ballista's in-memory cluster, with canon's rule on what a finished job
/// may answer, and the ledger through which the scheduler, once built,
/// is handed the means to cancel jobs ([`Ledger::cancel_with`]).
pub(super) fn clean_jobs(cluster: BallistaCluster) -> (BallistaCluster, Arc<Ledger>) {
    let ledger = Arc::new(Ledger::default());
    let cluster = BallistaCluster::new(
        Arc::new(CountedLosses {
            inner: cluster.cluster_state(),
            ledger: ledger.clone(),
        }),
        Arc::new(CleanJobs {
            inner: cluster.job_state(),
            ledger: ledger.clone(),
        }),
    );
    (cluster, ledger)
}

/// Cancels one job on the scheduler (posts Ballista's `JobCancel`).
type Cancel = Box<dyn Fn(JobId) -> BoxFuture<'static, ()> + Send + Sync>;

/// What canon's scheduler knows of its executors' losses and its jobs.
#[derive(Default)]
pub(super) struct Ledger {
    /// Executors removed since the scheduler started.
    losses: AtomicU64,
    /// Each unfinished job: the count of losses when it was accepted (or,
    /// once its graph was submitted, when it was submitted: before then no
    /// executor can have run any of it), and whether it was submitted.
    jobs: Mutex<HashMap<JobId, Unfinished>>,
    /// Jobs canon cancelled, and why: an executor was lost while they ran
    /// (the client may run them again), or the cluster has had no executor
    /// for its grace (the run fails).
    cancelled: Mutex<HashMap<JobId, Cancelled>>,
    /// Executors counted lost, until they register again.
    claimed: Mutex<HashSet<String>>,
    cancel: OnceLock<Cancel>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Cancelled {
    ExecutorLost,
    NoExecutor,
}

#[derive(Clone, Copy)]
struct Unfinished {
    losses: u64,
    submitted: bool,
}

impl Ledger {
    /// Gives the ledger the scheduler's way to cancel a job; until then an
    /// executor's loss cancels nothing and the running jobs are refused
    /// when they finish.
    pub(super) fn cancel_with(&self, cancel: Cancel) {
        let _ = self.cancel.set(cancel);
    }

    fn jobs(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, Unfinished>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cancelled(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, Cancelled>> {
        self.cancelled.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn accepted(&self, job_id: &JobId) {
        // The count is read under the jobs' lock, which a loss holds while
        // it counts: a job is either counted before the loss and cancelled
        // by it, or after it.
        let mut jobs = self.jobs();
        let losses = self.losses.load(Ordering::SeqCst);
        jobs.entry(job_id.clone()).or_insert(Unfinished {
            losses,
            submitted: false,
        });
    }

    fn submitted(&self, job_id: &JobId) {
        let mut jobs = self.jobs();
        let losses = self.losses.load(Ordering::SeqCst);
        jobs.insert(
            job_id.clone(),
            Unfinished {
                losses,
                submitted: true,
            },
        );
    }

    /// Whether `executor` is lost now for the first time since it
    /// registered: Ballista may remove one twice (a launch failure, then
    /// its heartbeat's expiry, or both at once), and a second removal must
    /// not cancel the jobs rerun on the executors left.
    fn claim(&self, executor: &str) -> bool {
        self.claimed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(executor.to_owned())
    }

    /// `executor` registered (again): its next loss counts.
    fn registered(&self, executor: &str) {
        self.claimed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(executor);
    }

    /// Counts an executor lost and, when executors are left to rerun them
    /// (`survivors`), returns the jobs that were running then, each noted
    /// as cancelled for it. With none left there is no slot to leak:
    /// Ballista fails the running jobs itself when no executor comes back
    /// within its grace period (`NO_EXECUTOR_GRACE` in the scheduler's
    /// setup), where a job canon cancelled and the client ran again would
    /// wait for its deadline.
    fn executor_lost(&self, survivors: bool) -> Vec<JobId> {
        let jobs = self.jobs();
        self.losses.fetch_add(1, Ordering::SeqCst);
        if !survivors {
            return Vec::new();
        }
        self.note_cancelled(&jobs, Cancelled::ExecutorLost)
    }

    /// The submitted jobs not yet cancelled, each noted as cancelled for
    /// want of an executor (the cluster has had none for its grace).
    fn stranded(&self) -> Vec<JobId> {
        self.note_cancelled(&self.jobs(), Cancelled::NoExecutor)
    }

    /// The submitted jobs of `jobs` not yet cancelled, each noted as
    /// cancelled for `why`.
    fn note_cancelled(&self, jobs: &HashMap<JobId, Unfinished>, why: Cancelled) -> Vec<JobId> {
        let mut cancelled = self.cancelled();
        let running: Vec<JobId> = jobs
            .iter()
            .filter(|(id, job)| job.submitted && !cancelled.contains_key(*id))
            .map(|(id, _)| id.clone())
            .collect();
        cancelled.extend(running.iter().map(|job| (job.clone(), why)));
        running
    }

    async fn cancel(&self, jobs: Vec<JobId>, why: &str) {
        if let Some(cancel) = self.cancel.get() {
            for job in jobs {
                tracing::warn!(job = %job, "{why}: canon cancels the job");
                cancel(job).await;
            }
        }
    }

    /// Forgets a job that will not finish through [`Self::finished`].
    fn forget(&self, job_id: &JobId) {
        self.jobs().remove(job_id);
        self.cancelled().remove(job_id);
    }

    /// The message a job that just finished (`successful` or not) must
    /// fail with instead of its own status: canon's refusal (the client
    /// may run the job again) or, for a job cancelled for want of an
    /// executor, [`NO_EXECUTOR`]; `None` when its own status stands.
    fn finished(&self, job_id: &JobId, successful: bool) -> Option<String> {
        let at_start = self.jobs().remove(job_id);
        let cancelled = self.cancelled().remove(job_id);
        let lost = self.losses.load(Ordering::SeqCst) - at_start.map_or(0, |job| job.losses);
        // A job this scheduler did not see accepted is judged as if it
        // were accepted before any loss: refused after any.
        let refused = match (successful, cancelled) {
            (true, _) => lost > 0,
            (false, Some(Cancelled::ExecutorLost)) => true,
            (false, Some(Cancelled::NoExecutor)) => return Some(NO_EXECUTOR.to_owned()),
            (false, None) => false,
        };
        if !refused {
            return None;
        }
        Some(refusal(if lost > 1 {
            "executors were lost while it ran"
        } else {
            "an executor was lost while it ran"
        }))
    }
}

/// How the message of a job canon cancelled for want of an executor
/// starts (the client finds it in Ballista's error, and fails the run as
/// the cluster's failure).
pub(super) const NO_EXECUTOR: &str = "canon cancelled this job: the cluster has had no executor \
     to run it for the grace an executor has to register (start executors, or check why they \
     stopped)";

/// Cancels the submitted jobs once the cluster has had no live executor
/// for `grace`. Ballista fails the jobs running when its last executor is
/// lost (after the same grace), but not a job submitted afterwards (a
/// client running a refused job again): that one would wait on an empty
/// cluster for the client's deadline, an hour by default.
pub(super) async fn watch_for_an_empty_cluster(
    ledger: Arc<Ledger>,
    cluster: Arc<dyn ClusterState>,
    every: std::time::Duration,
    grace: std::time::Duration,
) {
    let mut empty_since: Option<std::time::Instant> = None;
    loop {
        tokio::time::sleep(every).await;
        if any_active(&cluster) {
            empty_since = None;
            continue;
        }
        let since = *empty_since.get_or_insert_with(std::time::Instant::now);
        if since.elapsed() >= grace {
            let stranded = ledger.stranded();
            ledger
                .cancel(stranded, "the cluster has had no executor")
                .await;
        }
    }
}

/// Whether any executor the cluster knows says it is active.
fn any_active(cluster: &Arc<dyn ClusterState>) -> bool {
    cluster.executor_heartbeats().values().any(|beat| {
        matches!(
            beat.status.as_ref().and_then(|s| s.status.as_ref()),
            Some(executor_status::Status::Active(_))
        )
    })
}

/// Why a job that finished was failed instead, or `None` for a clean run.
pub(super) fn recovered(graph: &ExecutionGraphBox) -> Option<String> {
    for (id, stage) in graph.stages() {
        let ExecutionStage::Successful(stage) = stage else {
            return Some(format!("its stage {id} did not finish"));
        };
        if stage.stage_attempt_num > 0 {
            return Some(format!(
                "its stage {id} ran {} times",
                stage.stage_attempt_num + 1
            ));
        }
        let unclean = stage
            .task_infos
            .iter()
            .find(|task| !matches!(task.task_status, task_status::Status::Successful(_)));
        if let Some(task) = unclean {
            let why = match &task.task_status {
                task_status::Status::Failed(failed) => failed.error.clone(),
                _ => "it did not finish".to_owned(),
            };
            return Some(format!("a task of its stage {id} was run again ({why})"));
        }
    }
    None
}

/// How the message of a job failed for having been recovered starts (the
/// client finds it in Ballista's error).
const REFUSAL: &str = "canon refuses this job's answer";

/// The scheduler's refusal inside a failed job's error message, if that
/// is why it failed.
pub(super) fn refused(message: &str) -> Option<&str> {
    message.find(REFUSAL).map(|at| &message[at..])
}

/// The message of a job failed for having been recovered.
fn refusal(why: &str) -> String {
    format!(
        "{REFUSAL}: {why}. canon does not let Ballista recover a job after a failure (such \
         recoveries have given wrong numbers); run the query again on a cluster whose \
         executors stay up"
    )
}

/// Ballista's cluster state, counting the executors it removes and
/// cancelling the jobs running when one is.
struct CountedLosses {
    inner: Arc<dyn ClusterState>,
    ledger: Arc<Ledger>,
}

#[async_trait::async_trait]
impl ClusterState for CountedLosses {
    async fn init(&self) -> Result<()> {
        self.inner.init().await
    }

    async fn bind_schedulable_tasks(
        &self,
        distribution: TaskDistributionPolicy,
        active_jobs: Arc<HashMap<JobId, JobInfoCache>>,
        executors: Option<HashSet<String>>,
    ) -> Result<Vec<BoundTask>> {
        self.inner
            .bind_schedulable_tasks(distribution, active_jobs, executors)
            .await
    }

    async fn unbind_tasks(&self, executor_slots: Vec<ExecutorSlot>) -> Result<()> {
        self.inner.unbind_tasks(executor_slots).await
    }

    async fn register_executor(
        &self,
        metadata: ExecutorMetadata,
        spec: ExecutorData,
    ) -> Result<()> {
        self.ledger.registered(&metadata.id);
        self.inner.register_executor(metadata, spec).await
    }

    async fn save_executor_metadata(&self, metadata: ExecutorMetadata) -> Result<()> {
        self.inner.save_executor_metadata(metadata).await
    }

    async fn get_executor_metadata(&self, executor_id: &str) -> Result<ExecutorMetadata> {
        self.inner.get_executor_metadata(executor_id).await
    }

    async fn registered_executor_metadata(&self) -> Vec<ExecutorMetadata> {
        self.inner.registered_executor_metadata().await
    }

    async fn save_executor_heartbeat(&self, heartbeat: ExecutorHeartbeat) -> Result<()> {
        self.inner.save_executor_heartbeat(heartbeat).await
    }

    /// Every way Ballista loses an executor (heartbeats stopped, a launch
    /// failed, the executor said it stops) comes through here, before
    /// Ballista posts the loss to its event loop: the cancellations posted
    /// here are handled first, so no running job is left for Ballista to
    /// roll back (and leak a surviving executor's slot in doing so).
    ///
    /// Only an executor registered and not yet counted lost counts
    /// ([`Ledger::claim`]).
    async fn remove_executor(&self, executor_id: &str) -> Result<()> {
        let known = self.inner.get_executor_heartbeat(executor_id).is_some();
        if !known || !self.ledger.claim(executor_id) {
            return self.inner.remove_executor(executor_id).await;
        }
        let removed = self.inner.remove_executor(executor_id).await;
        let running = self.ledger.executor_lost(any_active(&self.inner));
        self.ledger.cancel(running, "an executor was lost").await;
        removed
    }

    fn executor_heartbeats(&self) -> HashMap<String, ExecutorHeartbeat> {
        self.inner.executor_heartbeats()
    }

    fn get_executor_heartbeat(&self, executor_id: &str) -> Option<ExecutorHeartbeat> {
        self.inner.get_executor_heartbeat(executor_id)
    }

    async fn cluster_state_events(&self) -> Result<ClusterStateEventStream> {
        self.inner.cluster_state_events().await
    }
}

/// Ballista's job state, failing a job that finished after a recovery or
/// was cancelled for an executor's loss.
struct CleanJobs {
    inner: Arc<dyn JobState>,
    ledger: Arc<Ledger>,
}

impl CleanJobs {
    /// The message `graph`, finished, must fail with instead of its own
    /// status; `None` when that stands.
    fn refuse(&self, job_id: &JobId, graph: &ExecutionGraphBox) -> Option<String> {
        let successful = match graph.status().status {
            Some(Status::Successful(_)) => true,
            Some(Status::Failed(_)) => false,
            _ => return None,
        };
        let verdict = self.ledger.finished(job_id, successful);
        if verdict.is_some() || !successful {
            return verdict;
        }
        recovered(graph).map(|why| refusal(&why))
    }
}

#[async_trait::async_trait]
impl JobState for CleanJobs {
    fn accept_job(&self, job_id: &JobId, job_name: &str, queued_at: u64) -> Result<()> {
        self.ledger.accepted(job_id);
        self.inner.accept_job(job_id, job_name, queued_at)
    }

    fn pending_job_number(&self) -> usize {
        self.inner.pending_job_number()
    }

    async fn submit_job(
        &self,
        job_id: JobId,
        graph: &ExecutionGraphBox,
        subscriber: Option<JobStatusSubscriber>,
    ) -> Result<()> {
        self.ledger.submitted(&job_id);
        // The client learns its job's id from the first status it is sent,
        // which Ballista sends only once the job's state next changes: a
        // job that never starts (no free executor) would leave the client
        // unable to cancel it at its deadline. Told now.
        if let Some(subscriber) = &subscriber
            && matches!(
                graph.status().status,
                None | Some(Status::Queued(_) | Status::Running(_))
            )
        {
            let _ = subscriber.try_send(graph.status().clone());
        }
        self.inner.submit_job(job_id, graph, subscriber).await
    }

    async fn get_jobs(&self) -> Result<HashSet<JobId>> {
        self.inner.get_jobs().await
    }

    async fn get_all_jobs(&self) -> Result<HashSet<JobId>> {
        self.inner.get_all_jobs().await
    }

    async fn get_job_status(&self, job_id: &JobId) -> Result<Option<JobStatus>> {
        self.inner.get_job_status(job_id).await
    }

    async fn get_execution_graph(&self, job_id: &JobId) -> Result<Option<ExecutionGraphBox>> {
        self.inner.get_execution_graph(job_id).await
    }

    async fn save_job(&self, job_id: &JobId, graph: &ExecutionGraphBox) -> Result<()> {
        match self.refuse(job_id, graph) {
            None => self.inner.save_job(job_id, graph).await,
            Some(message) => {
                tracing::warn!(job = %job_id, "{message}");
                let mut failed = graph.cloned();
                failed.fail_job(message);
                self.inner.save_job(job_id, &failed).await
            }
        }
    }

    async fn fail_unscheduled_job(&self, job_id: &JobId, reason: String) -> Result<()> {
        self.ledger.forget(job_id);
        self.inner.fail_unscheduled_job(job_id, reason).await
    }

    async fn remove_job(&self, job_id: &JobId) -> Result<()> {
        self.ledger.forget(job_id);
        self.inner.remove_job(job_id).await
    }

    async fn try_acquire_job(&self, job_id: &JobId) -> Result<Option<ExecutionGraphBox>> {
        self.inner.try_acquire_job(job_id).await
    }

    async fn job_state_events(&self) -> Result<JobStateEventStream> {
        self.inner.job_state_events().await
    }

    async fn create_or_update_session(
        &self,
        session_id: &str,
        config: &SessionConfig,
    ) -> Result<Arc<SessionContext>> {
        self.inner
            .create_or_update_session(session_id, config)
            .await
    }

    async fn remove_session(&self, session_id: &str) -> Result<()> {
        self.inner.remove_session(session_id).await
    }

    fn produce_config(&self) -> SessionConfig {
        self.inner.produce_config()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn job(id: &str) -> JobId {
        JobId::new(id)
    }

    /// A ledger whose cancellations are recorded, as the scheduler's
    /// `cancel_job` would receive them.
    fn recording() -> (Ledger, Arc<Mutex<Vec<String>>>) {
        let ledger = Ledger::default();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        ledger.cancel_with(Box::new(move |job: JobId| {
            sink.lock().unwrap().push(job.as_str().to_owned());
            Box::pin(async {})
        }));
        (ledger, seen)
    }

    #[tokio::test]
    async fn a_loss_cancels_the_running_jobs_and_their_failure_is_the_refusal() {
        let (ledger, seen) = recording();
        ledger.accepted(&job("running"));
        ledger.submitted(&job("running"));
        // Accepted, still being planned: no executor has run any of it.
        ledger.accepted(&job("planning"));
        let running = ledger.executor_lost(true);
        ledger.cancel(running, "an executor was lost").await;
        assert_eq!(*seen.lock().unwrap(), vec!["running".to_owned()]);
        // Ballista fails the cancelled job ("Cancelled"); canon says why.
        let said = ledger.finished(&job("running"), false).unwrap();
        assert!(
            said.starts_with("canon refuses this job's answer: an executor was lost while it ran"),
            "{said}"
        );
        // The job planned during the loss runs on what is left, clean.
        ledger.submitted(&job("planning"));
        assert_eq!(ledger.finished(&job("planning"), true), None);
    }

    #[tokio::test]
    async fn a_running_job_that_finishes_before_its_cancellation_is_refused() {
        let (ledger, _) = recording();
        ledger.accepted(&job("a"));
        ledger.submitted(&job("a"));
        ledger.executor_lost(true);
        ledger.executor_lost(true);
        let said = ledger.finished(&job("a"), true).unwrap();
        assert!(
            said.starts_with("canon refuses this job's answer: executors were lost while it ran"),
            "{said}"
        );
    }

    /// Ballista's in-memory cluster state with `executors` registered,
    /// behind canon's count of losses.
    async fn cluster(ledger: Arc<Ledger>, executors: &[&str]) -> CountedLosses {
        use ballista_scheduler::cluster::memory::InMemoryClusterState;
        let cluster = CountedLosses {
            inner: Arc::new(InMemoryClusterState::default()),
            ledger,
        };
        for id in executors {
            register(&cluster, id).await;
        }
        cluster
    }

    async fn register(cluster: &CountedLosses, id: &str) {
        let metadata = ExecutorMetadata {
            id: id.into(),
            host: "127.0.0.1".into(),
            port: 1,
            grpc_port: 2,
            specification: Default::default(),
            os_info: Default::default(),
        };
        let data = ExecutorData {
            executor_id: id.into(),
            total_vcores: 1,
            available_vcores: 1,
        };
        cluster.register_executor(metadata, data).await.unwrap();
    }

    fn running(ledger: &Ledger, id: &str) {
        ledger.accepted(&job(id));
        ledger.submitted(&job(id));
    }

    #[tokio::test]
    async fn an_executor_removed_twice_is_lost_once() {
        let (ledger, seen) = recording();
        let ledger = Arc::new(ledger);
        let cluster = cluster(ledger.clone(), &["e1", "e2"]).await;
        running(&ledger, "first");
        cluster.remove_executor("e1").await.unwrap();
        // Ballista saves the cancelled job as failed: canon's refusal.
        assert!(ledger.finished(&job("first"), false).is_some());
        // The job run again on the executor left is not cancelled by a
        // second removal of the same executor, nor of one never known.
        running(&ledger, "rerun");
        cluster.remove_executor("e1").await.unwrap();
        cluster.remove_executor("never-registered").await.unwrap();
        assert_eq!(*seen.lock().unwrap(), vec!["first".to_owned()]);
        // Registered again, its next loss counts.
        register(&cluster, "e1").await;
        cluster.remove_executor("e1").await.unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            vec!["first".to_owned(), "rerun".to_owned()]
        );
        assert!(ledger.finished(&job("rerun"), false).is_some());
    }

    #[tokio::test]
    async fn the_last_executor_lost_cancels_nothing_and_ballista_fails_the_jobs() {
        let (ledger, seen) = recording();
        let ledger = Arc::new(ledger);
        let cluster = cluster(ledger.clone(), &["only"]).await;
        running(&ledger, "a");
        cluster.remove_executor("only").await.unwrap();
        // A cancelled job run again would wait on an empty cluster for
        // the client's deadline; Ballista fails it within its grace.
        assert!(seen.lock().unwrap().is_empty());
        assert_eq!(ledger.finished(&job("a"), false), None);
    }

    #[tokio::test]
    async fn jobs_on_a_cluster_without_executors_fail_after_the_grace_and_are_not_run_again() {
        // Real time, scaled down: a tick every 20 ms, a grace of 400 ms.
        let tick = Duration::from_millis(20);
        let (ledger, seen) = recording();
        let ledger = Arc::new(ledger);
        let cluster = Arc::new(cluster(ledger.clone(), &["only"]).await);
        let watch = tokio::spawn(watch_for_an_empty_cluster(
            ledger.clone(),
            cluster.clone(),
            tick,
            tick * 20,
        ));
        running(&ledger, "before");
        // An executor is up: nothing is cancelled however long it runs.
        tokio::time::sleep(tick * 40).await;
        assert!(seen.lock().unwrap().is_empty());
        cluster.remove_executor("only").await.unwrap();
        // A job run again after the last executor was lost.
        running(&ledger, "rerun");
        tokio::time::sleep(tick * 5).await;
        assert!(seen.lock().unwrap().is_empty(), "within the grace");
        tokio::time::sleep(tick * 30).await;
        let mut cancelled = seen.lock().unwrap().clone();
        cancelled.sort();
        assert_eq!(cancelled, ["before", "rerun"]);
        // Its failure says so, and is not a refusal (not run again).
        let said = ledger.finished(&job("rerun"), false).unwrap();
        assert!(said.starts_with(NO_EXECUTOR), "{said}");
        assert!(refused(&said).is_none(), "{said}");
        // Later ticks do not cancel them again.
        tokio::time::sleep(tick * 5).await;
        assert_eq!(seen.lock().unwrap().len(), 2);
        watch.abort();
    }

    #[test]
    fn failures_canon_did_not_cause_keep_their_own_reason() {
        let ledger = Ledger::default();
        ledger.accepted(&job("a"));
        ledger.submitted(&job("a"));
        // No loss: a failure (a division by zero, a user's cancel) stands,
        // and a success answers.
        assert_eq!(ledger.finished(&job("a"), false), None);
        ledger.accepted(&job("b"));
        ledger.submitted(&job("b"));
        assert_eq!(ledger.finished(&job("b"), true), None);
        // A job submitted after a loss is not refused for it.
        ledger.executor_lost(true);
        ledger.accepted(&job("c"));
        ledger.submitted(&job("c"));
        assert_eq!(ledger.finished(&job("c"), true), None);
        // Nor is a job canon had cancelled and then forgot (removed).
        ledger.accepted(&job("d"));
        ledger.submitted(&job("d"));
        ledger.executor_lost(true);
        ledger.forget(&job("d"));
        ledger.accepted(&job("e"));
        ledger.submitted(&job("e"));
        assert_eq!(ledger.finished(&job("e"), false), None);
    }
}
