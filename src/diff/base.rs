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
    let prefix = git(project, &["rev-parse", "--show-prefix"])?;
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
    let mut ls = vec!["ls-tree", "-r", "-z", "--name-only", commit.as_str()];
    if !prefix.is_empty() {
        ls.extend(["--", prefix.as_str()]);
    }
    let listed = git(Path::new(&top), &ls)?;
    let listed: Vec<&str> = listed.split('\0').filter(|l| !l.is_empty()).collect();
    let project_spec = format!("{prefix}canon.yaml");
    if !listed.iter().any(|l| *l == project_spec) {
        return Err(CanonError::request(format!(
            "--base {revision}: the project has no canon.yaml at {commit:.12} ({project_spec})"
        )));
    }
    for path in listed {
        let relative = &path[prefix.len()..];
        if !wanted(relative) {
            continue;
        }
        let bytes = git_bytes(Path::new(&top), &["show", &format!("{commit}:{path}")])?;
        let to = scratch.path().join(relative);
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

fn git_bytes(dir: &Path, args: &[&str]) -> Result<Vec<u8>> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| CanonError::request(format!("cannot run git: {e}")))?;
    if !out.status.success() {
        return Err(CanonError::request(format!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out.stdout)
}
