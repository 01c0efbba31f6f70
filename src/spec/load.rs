//! Reading the project's YAML from disk into spec types, keeping each file's
//! text, hash and position index for the stages after it.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::limits;
use super::locate::{LazyIndex, Step};
use super::{MetricFileSpec, ModelFileSpec, ProjectSpec, SignoffFileSpec};
use crate::error::{CanonError, Diagnostic, Location, Result};

/// One YAML file, parsed, with what later stages need to point back into it.
#[derive(Debug, Clone)]
pub struct SourceFile<T> {
    /// Path as the user should see it: relative to the project folder.
    pub display_path: PathBuf,
    pub sha256: String,
    /// Positions, built from the text the first time one is asked for.
    pub index: std::sync::Arc<LazyIndex>,
    pub spec: T,
}

impl<T> SourceFile<T> {
    /// The location of the node at `path` in this file.
    pub fn at(&self, path: &[Step]) -> Location {
        Location::in_document(self.display_path.clone(), self.index.clone(), path)
    }
}

/// Every definition of a project, as written.
#[derive(Debug, Clone)]
pub struct ProjectFiles {
    /// The folder holding canon.yaml.
    pub root: PathBuf,
    pub project: SourceFile<ProjectSpec>,
    pub models: Vec<SourceFile<ModelFileSpec>>,
    pub metrics: Vec<SourceFile<MetricFileSpec>>,
    /// canon.yaml's `signoffs` file, when it exists.
    pub signoffs: Option<SourceFile<SignoffFileSpec>>,
}

/// Reads canon.yaml and every YAML file under its models/ and metrics/
/// folders. Syntax and shape errors of all files are collected and returned
/// together.
pub fn load_project(root: &Path) -> Result<ProjectFiles> {
    let project_path = root.join("canon.yaml");
    if root.is_file() {
        return Err(CanonError::request(format!(
            "--project {} is a file: pass the folder that holds canon.yaml",
            root.display()
        )));
    }
    if !project_path.exists() {
        return Err(CanonError::request(format!(
            "no canon.yaml in {} (run canon from the project folder or pass --project DIR)",
            root.display()
        )));
    }
    let mut diagnostics = Vec::new();
    let project = read_yaml::<ProjectSpec>(root, &project_path, &mut diagnostics);
    let Some(project) = project else {
        return Err(CanonError::Definition(diagnostics));
    };
    let models_dir = root.join(&project.spec.models);
    let metrics_dir = root.join(&project.spec.metrics);
    let models = yaml_files(&models_dir, &project, "models")?
        .iter()
        .filter_map(|p| read_yaml::<ModelFileSpec>(root, p, &mut diagnostics))
        .collect();
    let metrics = yaml_files(&metrics_dir, &project, "metrics")?
        .iter()
        .filter_map(|p| read_yaml::<MetricFileSpec>(root, p, &mut diagnostics))
        .collect();
    let signoffs_path = root.join(&project.spec.signoffs);
    let signoffs = signoffs_path
        .exists()
        .then(|| read_yaml::<SignoffFileSpec>(root, &signoffs_path, &mut diagnostics))
        .flatten();
    if !diagnostics.is_empty() {
        return Err(CanonError::Definition(diagnostics));
    }
    Ok(ProjectFiles {
        root: root.to_path_buf(),
        project,
        models,
        metrics,
        signoffs,
    })
}

/// The YAML files of the folder canon.yaml's `key` names; a folder that is
/// missing or unreadable is located at that key (or at canon.yaml's top,
/// when the default is used).
fn yaml_files(dir: &Path, project: &SourceFile<ProjectSpec>, key: &str) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        let what = if dir.exists() && !dir.is_dir() {
            "is a file, not a folder".to_string()
        } else if !dir.exists() {
            "does not exist".to_string()
        } else {
            format!("cannot be read: {e}")
        };
        CanonError::definition(
            project.at(&[Step::Key(key.to_string())]),
            format!("the {key} folder {} {what}", dir.display()),
        )
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    Ok(files)
}

fn read_yaml<T: DeserializeOwned>(
    root: &Path,
    path: &Path,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<SourceFile<T>> {
    let display_path = path.strip_prefix(root).unwrap_or(path).to_path_buf();
    let parsed = match read_bytes(path) {
        Ok(bytes) => parse_definition(display_path.clone(), bytes),
        Err(message) => Err(Diagnostic {
            location: Location::new(display_path, 1, 1),
            message,
        }),
    };
    parsed.map_err(|d| diagnostics.push(d)).ok()
}

/// A definition file's bytes, when it is a regular file within
/// [`limits::MAX_FILE_BYTES`]; its size is known before it is read.
fn read_bytes(path: &Path) -> std::result::Result<Vec<u8>, String> {
    let cannot = |e: std::io::Error| format!("cannot read: {e}");
    let meta = std::fs::metadata(path).map_err(cannot)?;
    // A pipe or device would block the read or never end.
    if meta.is_dir() {
        return Err("is a folder, not a YAML file".to_string());
    }
    if !meta.is_file() {
        return Err(
            "is not a regular file (a pipe or a device): a definition is a YAML file".to_string(),
        );
    }
    if meta.len() > limits::MAX_FILE_BYTES {
        return Err(limits::size_message(meta.len()));
    }
    // `take` guards a file that grows between the two calls.
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(
            std::fs::File::open(path).map_err(cannot)?,
            limits::MAX_FILE_BYTES + 1,
        ),
        &mut bytes,
    )
    .map_err(cannot)?;
    if bytes.len() as u64 > limits::MAX_FILE_BYTES {
        return Err(limits::size_message(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Parses one definition file's bytes into `T`, or the first thing wrong
/// with it, located. Bounded in time by the file's size: a byte that is not
/// UTF-8 is located where it is (not at 1:1), a UTF-8 byte order mark (which
/// some Windows editors write) is dropped, and nesting past
/// [`limits::MAX_DEPTH`] is refused before serde_yaml, whose time grows with
/// the square of the depth, reads the text.
pub fn parse_definition<T: DeserializeOwned>(
    display_path: PathBuf,
    bytes: Vec<u8>,
) -> std::result::Result<SourceFile<T>, Diagnostic> {
    let at = |line: usize, column: usize, message: String| Diagnostic {
        location: Location::new(display_path.clone(), line, column),
        message,
    };
    let mut text = String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let bytes = e.into_bytes();
        let (line, column) = limits::position_of(&bytes, offset);
        at(
            line,
            column,
            format!(
                "byte 0x{:02X} is not UTF-8: definition files are UTF-8 text",
                bytes[offset]
            ),
        )
    })?;
    if text.starts_with('\u{feff}') {
        text.remove(0);
    }
    if let Some(b) = limits::depth_breach(&text) {
        return Err(at(b.line, b.column, b.message));
    }
    match serde_yaml::from_str::<T>(&text) {
        Ok(spec) => Ok(SourceFile {
            sha256: hex::encode(Sha256::digest(text.as_bytes())),
            index: std::sync::Arc::new(LazyIndex::new(text)),
            display_path,
            spec,
        }),
        Err(e) => {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((1, 1));
            Err(at(line, column, strip_position_suffix(&e.to_string())))
        }
    }
}

/// serde_yaml appends " at line L column C" to its messages; the location is
/// already shown in front, so the duplicate is dropped.
fn strip_position_suffix(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}
