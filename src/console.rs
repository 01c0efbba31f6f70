//! What canon says on the console, without ever panicking for it:
//! `eprintln!` and `println!` panic when their stream is closed, and a
//! closed pipe must not stop a publish half way.

use crate::error::{CanonError, Result};

/// Writes a line to stderr and goes on whatever happens: `eprintln!`
/// panics when stderr is closed (`canon publish 2>&1 | grep -q stale`
/// closes it at the first match), and a panic would stop a publish half
/// way for the sake of a message no one can read any more.
pub fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Writes `bytes` to stdout. A closed pipe (`| head`) is the reader's
/// choice, not a failure; any other failure (a full disk behind `>`) is an
/// error, never the panic `print!` would give nor a silent loss.
pub fn print_out(bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|_| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CanonError::io("<stdout>", e)),
    }
}

/// [`print_out`] of one formatted line.
pub fn print_line(line: std::fmt::Arguments<'_>) -> Result<()> {
    print_out(format!("{line}\n").as_bytes())
}
