//! The project a diff compares against: a folder as it is, or the project's
//! definitions at a git revision (by default the merge-base of HEAD with
//! the main branch) copied out into a temporary folder. Only definitions
//! are copied (canon.yaml, the models and metrics folders, the sign-off
//! file): both sides are computed over the same data, the head's.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{CanonError, Result};

/// A base project on disk, and how the report names it.
pub struct Base {
    pub root: PathBuf,
    pub shown: String,
    /// Holds a revision's copy until the diff is done.
    _scratch: Option<tempfile::TempDir>,
}

/// `--base`: a folder holding canon.yaml, or a git revision of the
/// repository `project` is in; none: the merge-base of HEAD with `main`
/// (else `master`, else `origin/main`).
pub fn resolve(project: &Path, base: Option<&str>) -> Result<Base> {
    if let Some(b) = base {
        let dir = PathBuf::from(b);
        if dir.join("canon.yaml").is_file() {
            return Ok(Base {
                root: dir,
                shown: b.to_string(),
                _scratch: None,
            });
        }
    }
    let top = git(project, &["rev-parse", "--show-toplevel"]).map_err(|e| {
        CanonError::request(format!(
            "--base {}: not a project folder, and {} is not in a git repository ({e}); pass --base DIR",
            base.unwrap_or("(default: the merge-base with main)"),
            project.display()
        ))
    })?;
    // Bytes, not text: a folder or file whose name is not UTF-8 is read
    // as it is, not through a replacement character git cannot find.
    let mut prefix = git_bytes(project, &["rev-parse", "--show-prefix"])?;
    while prefix.last().is_some_and(u8::is_ascii_whitespace) {
        prefix.pop();
    }
    let revision = match base {
        Some(r) => r.to_string(),
        None => default_base(project)?,
    };
    let commit = git(
        project,
        &["rev-parse", "--verify", &format!("{revision}^{{commit}}")],
    )
    .map_err(|_| {
        CanonError::request(format!(
            "--base {revision}: neither a folder holding canon.yaml nor a git revision"
        ))
    })?;
    let scratch = tempfile::tempdir().map_err(|e| CanonError::io(std::env::temp_dir(), e))?;
    // NUL-separated: names are given as they are (not quoted, as git
    // quotes names with bytes outside ASCII).
    let mut ls = vec![
        os(b"ls-tree"),
        os(b"-r"),
        os(b"-z"),
        os(b"--name-only"),
        os(commit.as_bytes()),
    ];
    if !prefix.is_empty() {
        ls.extend([os(b"--"), os(&prefix)]);
    }
    let listed = git_bytes(Path::new(&top), &ls)?;
    let listed: Vec<&[u8]> = listed
        .split(|&b| b == 0)
        .filter(|l| !l.is_empty())
        .collect();
    let project_spec = [prefix.as_slice(), b"canon.yaml"].concat();
    if !listed.contains(&project_spec.as_slice()) {
        return Err(CanonError::request(format!(
            "--base {revision}: the project has no canon.yaml at {commit:.12} ({})",
            String::from_utf8_lossy(&project_spec)
        )));
    }
    for path in listed {
        let relative = &path[prefix.len()..];
        if !wanted(&String::from_utf8_lossy(relative)) {
            continue;
        }
        let object = [commit.as_bytes(), b":", path].concat();
        let bytes = git_bytes(Path::new(&top), &[os(b"show"), os(&object)])?;
        let to = scratch.path().join(os(relative));
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir).map_err(|e| CanonError::io(dir, e))?;
        }
        std::fs::write(&to, bytes).map_err(|e| CanonError::io(&to, e))?;
    }
    Ok(Base {
        root: scratch.path().to_path_buf(),
        shown: format!("{revision} ({commit:.12})"),
        _scratch: Some(scratch),
    })
}

/// The definitions of a project (no data, no cache): canon.yaml, YAML of
/// any folder, CSVs of definition tests. A project that names other folders
/// keeps them under its root like the sample.
fn wanted(relative: &str) -> bool {
    relative == "canon.yaml"
        || relative == "signoffs.yaml"
        || relative.ends_with(".yaml")
        || relative.ends_with(".yml")
        || (relative.contains("/tests/") && relative.ends_with(".csv"))
}

fn default_base(project: &Path) -> Result<String> {
    for main in ["main", "master", "origin/main"] {
        if git(project, &["rev-parse", "--verify", "--quiet", main]).is_ok()
            && let Ok(b) = git(project, &["merge-base", "HEAD", main])
        {
            return Ok(b);
        }
    }
    Err(CanonError::request(
        "no main branch to compare with (main, master or origin/main): pass --base REF or --base DIR",
    ))
}

fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let bytes = git_bytes(dir, args)?;
    Ok(String::from_utf8_lossy(&bytes).trim().to_string())
}

fn git_bytes<A: AsRef<std::ffi::OsStr>>(dir: &Path, args: &[A]) -> Result<Vec<u8>> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| CanonError::request(format!("cannot run git: {e}")))?;
    if !out.status.success() {
        let shown: Vec<String> = args
            .iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect();
        return Err(CanonError::request(format!(
            "git {}: {}",
            shown.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out.stdout)
}

/// Bytes git printed as a path or argument, as they are.
#[cfg(unix)]
fn os(bytes: &[u8]) -> std::ffi::OsString {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(bytes).to_os_string()
}

#[cfg(not(unix))]
fn os(bytes: &[u8]) -> std::ffi::OsString {
    String::from_utf8_lossy(bytes).into_owned().into()
}
