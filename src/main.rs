//! The `canon` binary: all work happens in the library.

/// mimalloc instead of the system allocator: planning builds and frees many
/// small plan nodes and schemas, and execution many small buffers; glibc's
/// malloc was a fifth of whole-catalog compile time (docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(canon::cli::main());
}
