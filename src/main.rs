//! The `canon` binary: all work happens in the library.

fn main() {
    std::process::exit(canon::cli::main());
}
