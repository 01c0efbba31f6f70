//! Checks behind the answer: the key-uniqueness gates' scans run on
//! threads of their own that the operating system schedules after the
//! computation's (a lower `nice` priority), so on a machine the computation
//! fills they take the cores it leaves idle rather than time from it. The
//! result still waits for every gate; only who goes first on a busy core
//! changes. Same binary, alternating runs at scale 200: nrr with gates 1.11×
//! its time without them → 1.08×, bookings 1.09× → 1.05–1.07×
//! (docs/performance.md).

use std::sync::{Arc, OnceLock};

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::runtime::SpawnedTask;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::prelude::DataFrame;

/// The checks' threads' `nice` value. 10, not the lowest (19): against
/// the computation both gave the same times, but beside other busy
/// processes (two CPU-bound loops on the 2-core VM) a nice-19 gate got so
/// little CPU that nrr took 4.2× its time, against 1.2× at nice 10.
const NICENESS: i32 = 10;

/// The checks' runtime, started on first use; `None` when it cannot be
/// started, and then the checks run beside the computation, as equals.
fn runtime() -> Option<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .thread_name("canon-checks")
                .thread_stack_size(super::WORKER_STACK_BYTES)
                .on_thread_start(lower_this_thread)
                .enable_all()
                .build()
                .ok()
        })
        .as_ref()
}

/// Lowers the calling thread's priority (on Linux a thread's nice value is
/// its own). Best effort: where it fails the thread keeps the default.
fn lower_this_thread() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain integer arguments; gettid names the calling thread.
    unsafe {
        let thread = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, thread, NICENESS);
    }
}

/// Runs `frame` to its end on the checks' threads and returns its batches.
/// The plan is built here, on the caller's threads, so the sources it binds
/// are checked at the caller's priority; dropping the returned future
/// (a query that failed first) stops the run.
pub async fn collect(frame: DataFrame) -> DfResult<Vec<RecordBatch>> {
    let Some(runtime) = runtime() else {
        return frame.collect().await;
    };
    let task = Arc::new(frame.task_ctx());
    let plan = frame.create_physical_plan().await?;
    let run = {
        let _on_checks = runtime.enter();
        SpawnedTask::spawn(datafusion::physical_plan::collect(plan, task))
    };
    run.join()
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))?
}
