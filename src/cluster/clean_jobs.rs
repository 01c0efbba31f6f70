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
use ballista_core::serde::protobuf::task_status;
use ballista_core::serde::protobuf::{ExecutorHeartbeat, JobStatus};
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
    /// Jobs canon cancelled because an executor was lost while they ran.
    cancelled: Mutex<HashSet<JobId>>,
    cancel: OnceLock<Cancel>,
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

    fn cancelled(&self) -> std::sync::MutexGuard<'_, HashSet<JobId>> {
        self.cancelled.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn accepted(&self, job_id: &JobId) {
        let losses = self.losses.load(Ordering::SeqCst);
        self.jobs().entry(job_id.clone()).or_insert(Unfinished {
            losses,
            submitted: false,
        });
    }

    fn submitted(&self, job_id: &JobId) {
        let losses = self.losses.load(Ordering::SeqCst);
        self.jobs().insert(
            job_id.clone(),
            Unfinished {
                losses,
                submitted: true,
            },
        );
    }

    /// Counts an executor lost and returns the jobs that were running
    /// then, each noted as cancelled for it.
    fn executor_lost(&self) -> Vec<JobId> {
        let jobs = self.jobs();
        self.losses.fetch_add(1, Ordering::SeqCst);
        let running: Vec<JobId> = jobs
            .iter()
            .filter(|(_, job)| job.submitted)
            .map(|(id, _)| id.clone())
            .collect();
        self.cancelled().extend(running.iter().cloned());
        running
    }

    async fn cancel(&self, jobs: Vec<JobId>) {
        if let Some(cancel) = self.cancel.get() {
            for job in jobs {
                tracing::warn!(job = %job, "an executor was lost: canon cancels the job");
                cancel(job).await;
            }
        }
    }

    /// Forgets a job that will not finish through [`Self::finished`].
    fn forget(&self, job_id: &JobId) {
        self.jobs().remove(job_id);
        self.cancelled().remove(job_id);
    }

    /// Why a job that just finished (`successful` or not) must fail with
    /// canon's refusal; `None` when its own status stands.
    fn finished(&self, job_id: &JobId, successful: bool) -> Option<String> {
        let at_start = self.jobs().remove(job_id);
        let cancelled = self.cancelled().remove(job_id);
        let lost = self.losses.load(Ordering::SeqCst) - at_start.map_or(0, |job| job.losses);
        // A job this scheduler did not see accepted is judged as if it
        // were accepted before any loss: refused after any.
        let refused = if successful { lost > 0 } else { cancelled };
        if !refused {
            return None;
        }
        Some(if lost > 1 {
            "executors were lost while it ran".to_owned()
        } else {
            "an executor was lost while it ran".to_owned()
        })
    }
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
    /// Only an executor still registered counts: Ballista may remove one
    /// twice (a launch failure, then its heartbeat's expiry), and the
    /// second removal must not cancel the jobs rerun on the executors left.
    async fn remove_executor(&self, executor_id: &str) -> Result<()> {
        if self.inner.get_executor_heartbeat(executor_id).is_none() {
            return self.inner.remove_executor(executor_id).await;
        }
        let running = self.ledger.executor_lost();
        let removed = self.inner.remove_executor(executor_id).await;
        self.ledger.cancel(running).await;
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
    /// Why `graph`, finished, must fail with canon's refusal; `None` when
    /// its own status stands.
    fn refuse(&self, job_id: &JobId, graph: &ExecutionGraphBox) -> Option<String> {
        let successful = match graph.status().status {
            Some(Status::Successful(_)) => true,
            Some(Status::Failed(_)) => false,
            _ => return None,
        };
        let lost = self.ledger.finished(job_id, successful);
        if lost.is_some() || !successful {
            return lost;
        }
        recovered(graph)
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
            Some(why) => {
                let message = refusal(&why);
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
        let running = ledger.executor_lost();
        ledger.cancel(running).await;
        assert_eq!(*seen.lock().unwrap(), vec!["running".to_owned()]);
        // Ballista fails the cancelled job ("Cancelled"); canon says why.
        assert_eq!(
            ledger.finished(&job("running"), false).as_deref(),
            Some("an executor was lost while it ran")
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
        ledger.executor_lost();
        ledger.executor_lost();
        assert_eq!(
            ledger.finished(&job("a"), true).as_deref(),
            Some("executors were lost while it ran")
        );
    }

    #[tokio::test]
    async fn an_executor_removed_twice_is_lost_once() {
        use ballista_scheduler::cluster::memory::InMemoryClusterState;
        let (ledger, seen) = recording();
        let ledger = Arc::new(ledger);
        let cluster = CountedLosses {
            inner: Arc::new(InMemoryClusterState::default()),
            ledger: ledger.clone(),
        };
        let metadata = ExecutorMetadata {
            id: "e1".into(),
            host: "127.0.0.1".into(),
            port: 1,
            grpc_port: 2,
            specification: Default::default(),
            os_info: Default::default(),
        };
        let data = ExecutorData {
            executor_id: "e1".into(),
            total_vcores: 1,
            available_vcores: 1,
        };
        cluster.register_executor(metadata, data).await.unwrap();
        ledger.accepted(&job("first"));
        ledger.submitted(&job("first"));
        cluster.remove_executor("e1").await.unwrap();
        // The job run again on the executors left is not cancelled by a
        // second removal of the same executor, nor of one never known.
        ledger.accepted(&job("rerun"));
        ledger.submitted(&job("rerun"));
        cluster.remove_executor("e1").await.unwrap();
        cluster.remove_executor("never-registered").await.unwrap();
        assert_eq!(*seen.lock().unwrap(), vec!["first".to_owned()]);
        assert_eq!(ledger.finished(&job("rerun"), true), None);
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
        ledger.executor_lost();
        ledger.accepted(&job("c"));
        ledger.submitted(&job("c"));
        assert_eq!(ledger.finished(&job("c"), true), None);
        // Nor is a job canon had cancelled and then forgot (removed).
        ledger.accepted(&job("d"));
        ledger.submitted(&job("d"));
        ledger.executor_lost();
        ledger.forget(&job("d"));
        ledger.accepted(&job("e"));
        ledger.submitted(&job("e"));
        assert_eq!(ledger.finished(&job("e"), false), None);
    }
}
