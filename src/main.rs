//! The `canon` binary: all work happens in the library.

/// mimalloc instead of the system allocator: planning builds and frees many
/// small plan nodes and schemas, and execution many small buffers; glibc's
/// malloc was a fifth of whole-catalog compile time (docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its position in `mi_option_e`,
/// mimalloc.h; the Rust bindings name no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() {
    // Freed memory stays with the process for reuse instead of going back
    // to the OS after a second: a query is a short process, and on a VM
    // every page touched afresh is faulted in and zeroed again (a fifth of
    // the bridge's CPU in perf). Same binary, A/B: open_pipeline −10%, the
    // bridge −5%, mqls −3%; peak resident memory within a few percent.
    // SAFETY: sets a plain integer option before any thread is started.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    // No transparent huge pages for this process: mimalloc commits its
    // arenas up front, and every thread's heap touching a fresh 2 MiB region
    // had the kernel zero all of it (clear_page_erms was up to 45 % of
    // samples in perf), at a cost that grows with the host's uptime. With
    // 4 KiB pages only what is touched is zeroed: same binary, medians of 7
    // alternating runs at scale 200, mqls 4.44 → 3.77 s, the bridge 1.56 →
    // 1.38 s, open_pipeline 1.49 → 1.35 s, nrr 0.40 → 0.37 s, bookings
    // unchanged (docs/performance.md). Best effort: a kernel without the
    // option runs as before.
    #[cfg(target_os = "linux")]
    // SAFETY: a process-wide flag with plain integer arguments, set before
    // any thread is started; a failure only leaves the default.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
    // The command runs on a thread with a stack of known size, not on the
    // main thread, whose size the platform (and `ulimit -s`) decides.
    let command = std::thread::Builder::new()
        .name("canon".to_string())
        .stack_size(canon::cli::MAIN_STACK_BYTES)
        .spawn(|| canon::cli::main(generate_sample));
    let code = match command.map(|t| t.join()) {
        Ok(Ok(code)) => code,
        Ok(Err(_)) => 101, // a panic, already printed by the panic hook
        Err(e) => {
            canon::console::say(format_args!("error: cannot start: {e}"));
            1
        }
    };
    std::process::exit(code);
}

/// `canon sample`: the generator of crates/canon-sample, its errors as
/// canon's (a bad option or a folder it must not touch exits 2).
fn generate_sample(
    out: &std::path::Path,
    seed: u64,
    scale: u32,
) -> canon::error::Result<Vec<canon::cli::SampleTable>> {
    use canon::error::CanonError;
    use canon_sample::error::Error;
    let report = canon_sample::generate(&canon_sample::SampleOptions {
        out: out.to_path_buf(),
        seed,
        scale,
    })
    .map_err(|e| match e {
        Error::Request(message) => CanonError::request(message),
        Error::Io { path, source } => CanonError::io(path, source),
        Error::Arrow(e) => CanonError::from(e),
        Error::Parquet(e) => CanonError::from(e),
        Error::Internal(message) => CanonError::Internal(message),
    })?;
    Ok(report
        .tables
        .into_iter()
        .map(|t| canon::cli::SampleTable {
            system: t.system,
            table: t.table,
            rows: t.rows,
            bytes: t.bytes,
        })
        .collect())
}
