//! Ctrl-C (SIGINT) or SIGTERM while a run has jobs on the cluster.
//!
//! Killed by a signal's default action, the process would leave its jobs
//! to the executors, which compute them to the end for no one. In a build
//! with the cluster feature canon takes SIGINT and SIGTERM itself: when
//! this process has jobs on a cluster that have not ended, it asks the
//! scheduler to cancel them (for at most [`CANCEL_WITHIN`]; the same
//! signal again stops waiting), then exits with the status a shell gives a
//! process the signal killed (128 + the signal's number). With nothing on
//! a cluster it exits at once, as the default action would. SIGKILL cannot
//! be caught: a process killed by it cancels nothing, and the scheduler's
//! own limits are all that stop its jobs.

use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};

use super::GivingUp;

/// How long an interrupted process waits for the scheduler's answers.
pub const CANCEL_WITHIN: Duration = Duration::from_secs(10);

/// Takes SIGINT and SIGTERM for the rest of the process (see the module).
/// When the handlers cannot be installed the signals keep their default
/// action, and a warning says so.
pub fn watch(runtime: &tokio::runtime::Runtime) {
    let _entered = runtime.enter();
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(interrupt), Ok(terminate)) => {
            runtime.spawn(on_signal(interrupt, terminate));
        }
        (Err(e), _) | (_, Err(e)) => tracing::warn!(
            "canon cannot take SIGINT and SIGTERM ({e}): an interrupted run will leave its jobs \
             running on the cluster"
        ),
    }
}

/// The exit status for a process stopped by signal `number`, as shells
/// report one the signal killed.
pub fn exit_status(number: i32) -> i32 {
    128 + number
}

/// Set once a signal has arrived: the handler then owns the process's end.
static STOPPING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether a signal has arrived. The run's own failure (its jobs cancelled
/// under it) must then not end the process first, with its own status,
/// before the handler has asked for every cancellation.
pub fn stopping() -> bool {
    STOPPING.load(std::sync::atomic::Ordering::SeqCst)
}

async fn on_signal(mut interrupt: Signal, mut terminate: Signal) {
    let (name, number) = tokio::select! {
        _ = interrupt.recv() => ("interrupted (SIGINT)", 2),
        _ = terminate.recv() => ("terminated (SIGTERM)", 15),
    };
    STOPPING.store(true, std::sync::atomic::Ordering::SeqCst);
    let unfinished = super::unfinished_jobs();
    if unfinished > 0 {
        crate::console::say(format_args!(
            "canon: {name}: asking the scheduler to cancel this run's {unfinished} unfinished \
             job(s) (at most {} s; the signal again stops waiting)",
            CANCEL_WITHIN.as_secs()
        ));
        tokio::select! {
            _ = super::cancel_unfinished(CANCEL_WITHIN, GivingUp::Interrupted) => {}
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    }
    std::process::exit(exit_status(number));
}
