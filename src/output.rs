//! Which format a command writes, decided from `--format` and `--out`
//! before anything is computed: no command prints a format it was not
//! asked for.
//!
//! - `--format F` is what is written, on every command that supports F; a
//!   command that does not (`check` has no CSV, `explain` writes text) refuses
//!   it (exit 2) rather than print something else.
//! - Without `--format`, an `--out` ending in `.json`, `.csv` or `.parquet`
//!   says the format; anything else is the table.
//! - An `--out` whose extension names another format than `--format`
//!   (`--format csv --out x.parquet`) is refused: the file would lie about
//!   what it holds.
//! - Parquet is binary: it is written to a file (`--out`), never to a
//!   terminal or pipe.

use std::path::Path;

use crate::error::{CanonError, Result};
use crate::result::render::Format;

fn name(f: Format) -> &'static str {
    match f {
        Format::Table => "table",
        Format::Json => "json",
        Format::Csv => "csv",
        Format::Parquet => "parquet",
    }
}

/// The format an `--out` file's extension names, if any.
fn of_extension(out: &Path) -> Option<Format> {
    match out.extension()?.to_str()?.to_ascii_lowercase().as_str() {
        "json" => Some(Format::Json),
        "csv" => Some(Format::Csv),
        "parquet" => Some(Format::Parquet),
        _ => None,
    }
}

/// The format `command` writes for `--format asked` and `--out out`, among
/// the ones it `supports`; or why not (a request error, exit 2).
pub fn resolve(
    command: &str,
    asked: Option<Format>,
    out: Option<&Path>,
    supports: &[Format],
) -> Result<Format> {
    let named = out.and_then(of_extension);
    let format = match (asked, named) {
        (Some(a), Some(n)) if a != n => {
            return Err(CanonError::request(format!(
                "--out {} names a {} file, but --format {} was asked: make them agree",
                out.map(|o| o.display().to_string()).unwrap_or_default(),
                name(n),
                name(a)
            )));
        }
        (Some(a), _) => a,
        (None, Some(n)) => n,
        (None, None) => Format::Table,
    };
    if !supports.contains(&format) {
        let list: Vec<&str> = supports
            .iter()
            .map(|f| match f {
                Format::Table if supports.len() == 1 => "text",
                other => name(*other),
            })
            .collect();
        let why = match (asked, out) {
            (Some(_), _) | (None, None) => format!("--format {}", name(format)),
            (None, Some(out)) => format!("--out {} names a {} file", out.display(), name(format)),
        };
        return Err(CanonError::request(format!(
            "canon {command} writes {}, not {} ({why})",
            list.join(" or "),
            name(format)
        )));
    }
    if format == Format::Parquet && out.is_none() {
        return Err(CanonError::request(
            "--format parquet writes a file: add --out FILE.parquet",
        ));
    }
    Ok(format)
}

/// Refuses (exit 2), before anything is computed, an `--out` file that
/// cannot be written: a folder, a file in a folder that does not exist
/// (canon does not create it), is not a folder or may not be written in,
/// or a name too long for the file system. Otherwise the run would
/// compute and then fail on a temporary file's name.
pub fn writable_file(out: &Path) -> Result<()> {
    // `x.csv/` or `x.csv/.` names a folder, which the file cannot be.
    let text = out.as_os_str().to_string_lossy();
    if text.ends_with('/') || text.ends_with("/.") || out.file_name().is_none() {
        return Err(CanonError::request(format!(
            "--out {}: ends in a folder, not a file name: name the file to write, e.g. result.csv",
            out.display()
        )));
    }
    // A fifo, a device or a socket would be replaced by a plain file (the
    // output is written beside it and renamed over it): `/dev/null` gone.
    // A link is followed, here and when the file is written: a link to a
    // file has that file replaced, the link kept.
    if let Ok(meta) = std::fs::metadata(out)
        && !meta.is_file()
        && !meta.is_dir()
    {
        return Err(CanonError::request(format!(
            "--out {}: is not a regular file (a device, fifo or socket); canon writes a new file and renames it over the old one, so it would replace it: name a file",
            out.display()
        )));
    }
    // Inside a canon publication or docs site: a query written over its
    // manifest or a metric's file corrupts what BI tools read, and the next
    // publish refuses the folder. Only publish and docs write there.
    let resolved = crate::protect::resolve(out);
    if let Some(folder) = resolved.ancestors().skip(1).find(|a| {
        a.join(crate::publish_dir::MARKER).is_file()
            || a.join(crate::publish_dir::DOCS_MARKER).is_file()
    }) {
        return Err(CanonError::request(format!(
            "--out {}: refused, it is inside {}, a canon publication or docs site, which only \
             `canon publish` and `canon docs` write; choose a path outside it",
            out.display(),
            folder.display()
        )));
    }
    if out.is_dir() {
        return Err(CanonError::request(format!(
            "--out {} is a folder: name the file to write in it, e.g. {}",
            out.display(),
            out.join("result.csv").display()
        )));
    }
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !parent.exists() {
        return Err(CanonError::request(format!(
            "--out {}: folder {} does not exist (canon does not create it)",
            out.display(),
            parent.display()
        )));
    }
    if !parent.is_dir() {
        return Err(CanonError::request(format!(
            "--out {}: {} is a file, not a folder",
            out.display(),
            parent.display()
        )));
    }
    // A folder canon may not write in, or a name too long for it.
    crate::atomic::can_write(out).map_err(|e| {
        let hint = match e.raw_os_error() {
            Some(libc::ENAMETOOLONG) => {
                " (it is written through a hidden temporary beside it, `.NAME.tmp-XXXXXX`, a dozen characters longer: shorten the name)"
            }
            Some(libc::EACCES | libc::EPERM) => {
                " (it is written as a new file beside it and renamed over it, so its folder must be writable, not only the file)"
            }
            _ => "",
        };
        CanonError::request(format!(
            "--out {}: cannot be written: {e}{hint}",
            out.display()
        ))
    })?;
    sticky_owner_allows(out, parent)
}

/// In a sticky folder (`/tmp`, mode 1777) only a file's owner, the
/// folder's or root may replace it: the rename at the end of the run was
/// refused after the whole computation.
fn sticky_owner_allows(out: &Path, parent: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let (Ok(file), Ok(folder)) = (std::fs::metadata(out), std::fs::metadata(parent)) else {
        return Ok(());
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if folder.mode() & 0o1000 != 0 && me != 0 && me != file.uid() && me != folder.uid() {
        return Err(CanonError::request(format!(
            "--out {}: cannot be replaced: it belongs to another user, in a folder only a file's \
             owner may replace files in (sticky, like /tmp); choose another name",
            out.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &[Format] = &[Format::Table, Format::Json, Format::Csv, Format::Parquet];

    #[test]
    fn the_extension_decides_only_when_the_format_is_not_given() {
        let csv = Some(Path::new("b.csv"));
        assert_eq!(resolve("query", None, None, ALL).unwrap(), Format::Table);
        assert_eq!(resolve("query", None, csv, ALL).unwrap(), Format::Csv);
        assert_eq!(
            resolve("query", None, Some(Path::new("b.txt")), ALL).unwrap(),
            Format::Table
        );
        assert_eq!(
            resolve("query", Some(Format::Json), Some(Path::new("b")), ALL).unwrap(),
            Format::Json
        );
        assert!(resolve("query", Some(Format::Json), csv, ALL).is_err());
    }

    #[test]
    fn parquet_needs_a_file_and_unsupported_formats_are_refused() {
        assert!(resolve("query", Some(Format::Parquet), None, ALL).is_err());
        let check = &[Format::Table, Format::Json];
        assert!(resolve("check", Some(Format::Csv), None, check).is_err());
        assert!(resolve("check", Some(Format::Parquet), None, check).is_err());
        assert_eq!(
            resolve("check", Some(Format::Json), None, check).unwrap(),
            Format::Json
        );
    }
}
