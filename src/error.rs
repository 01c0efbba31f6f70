//! Errors by fault, each carrying where it happened.
//!
//! The split follows whose fault an error is, because that decides what the
//! reader must do: a definition error is fixed in YAML (so it carries
//! file:line:column), a request error is fixed on the command line, a data
//! error is fixed upstream in an extract (so it names system, table, file and
//! column), and an internal error is canon's bug.

use std::fmt;
use std::path::PathBuf;

/// A position in a YAML file, 1-based as editors show it.
///
/// Compiling takes a location for every expression it parses, in case the
/// expression is wrong; almost none is ever shown. So a location in a loaded
/// file is its path into the document, and line and column are looked up
/// (and the file's position index built, a second YAML parse) only when
/// asked for.
#[derive(Clone)]
pub struct Location {
    pub file: PathBuf,
    at: Position,
}

#[derive(Clone)]
enum Position {
    Known(usize, usize),
    Path(
        std::sync::Arc<crate::spec::locate::LazyIndex>,
        Vec<crate::spec::locate::Step>,
    ),
}

impl Location {
    pub fn new(file: PathBuf, line: usize, column: usize) -> Location {
        Location {
            file,
            at: Position::Known(line, column),
        }
    }

    /// The node at `path` of the document `index` holds.
    pub fn in_document(
        file: PathBuf,
        index: std::sync::Arc<crate::spec::locate::LazyIndex>,
        path: &[crate::spec::locate::Step],
    ) -> Location {
        Location {
            file,
            at: Position::Path(index, path.to_vec()),
        }
    }

    /// (line, column), 1-based.
    pub fn line_column(&self) -> (usize, usize) {
        match &self.at {
            Position::Known(line, column) => (*line, *column),
            Position::Path(index, path) => index.locate(path),
        }
    }
}

impl PartialEq for Location {
    fn eq(&self, other: &Location) -> bool {
        self.file == other.file && self.line_column() == other.line_column()
    }
}

impl Eq for Location {}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Location({self})")
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (line, column) = self.line_column();
        write!(f, "{}:{line}:{column}", self.file.display())
    }
}

impl serde::Serialize for Location {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let (line, column) = self.line_column();
        let mut out = s.serialize_struct("Location", 3)?;
        out.serialize_field("file", &self.file)?;
        out.serialize_field("line", &line)?;
        out.serialize_field("column", &column)?;
        out.end()
    }
}

/// One problem found in the definitions (models/, metrics/, canon.yaml).
///
/// Validation collects every diagnostic before failing so that a reviewer
/// sees all problems of a change at once, not one per run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Diagnostic {
    pub location: Location,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// Where in the extracts a data problem is.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DataLocation {
    pub system: String,
    pub table: String,
    pub file: Option<String>,
    pub column: Option<String>,
}

impl DataLocation {
    /// The whole data root, for problems found across its tables (each
    /// problem then names its own system/table).
    pub fn root(root: &std::path::Path) -> DataLocation {
        DataLocation {
            system: String::new(),
            table: String::new(),
            file: Some(root.display().to_string()),
            column: None,
        }
    }
}

impl fmt::Display for DataLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.system.is_empty() && self.table.is_empty() {
            // Problems across the extracts: see [`DataLocation::root`].
            write!(f, "the data root")?;
            if let Some(root) = &self.file {
                write!(f, " {root}")?;
            }
            return Ok(());
        }
        write!(f, "{}/{}", self.system, self.table)?;
        if let Some(file) = &self.file {
            write!(f, " file {file}")?;
        }
        if let Some(column) = &self.column {
            write!(f, " column `{column}`")?;
        }
        Ok(())
    }
}

fn render_diagnostics(diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diagnostics {
        out.push_str(&format!("\n  {d}"));
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum CanonError {
    /// The definitions are wrong; every diagnostic names file:line:column.
    #[error("{} problem(s) in the definitions:{}", .0.len(), render_diagnostics(.0))]
    Definition(Vec<Diagnostic>),

    /// The request (command line) is wrong: unknown metric, bad period, unapproved slice.
    #[error("{0}")]
    Request(String),

    /// The data does not match its contract or cannot be read.
    #[error("data error in {location}: {message}")]
    Data {
        location: DataLocation,
        message: String,
    },

    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The query engine failed while planning or executing.
    #[error("query engine: {0}{hint}", hint = past_the_memory_limit(.0))]
    Engine(#[source] datafusion::error::DataFusionError),

    /// The cluster could not give a job's answer (`--cluster`): it stalled
    /// past its deadline, an executor it needed was unreachable, or the
    /// scheduler refused an answer Ballista recovered. Not a fault of the
    /// definitions or the data, so not placed in them; running again on a
    /// healthy cluster is the remedy.
    #[error("the cluster failed: {0}")]
    Cluster(String),

    /// A metric's inputs fail a quality gate: no number is given without
    /// an explicit override (`--allow-stale`).
    #[error("{0}")]
    Blocked(String),

    /// A result that has no final value yet, though nothing is wrong with
    /// its definition or data: a conversion whose window is still open
    /// (`quality::window`). Exit 1 like a block, no number given; `canon
    /// publish` records it as `pending` and does not fail for it, since it
    /// is expected every period until the window closes.
    #[error("{0}")]
    Pending(String),

    /// An error with what canon was doing when it happened (the metric or
    /// reconciliation being computed and, where one can be told, the
    /// expression of its definition at fault: `blame`; the publication
    /// that stopped): the engine's own messages name neither. The exit
    /// code is the wrapped error's.
    #[error("{context}: {source}{hint}")]
    Context {
        context: String,
        source: Box<CanonError>,
        hint: String,
    },

    /// canon's own bug: a user should not be able to trigger this.
    #[error("internal error (a bug in canon, please report it): {0}")]
    Internal(String),
}

impl CanonError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CanonError::Io {
            path: path.into(),
            source,
        }
    }

    pub fn data(location: DataLocation, message: impl Into<String>) -> Self {
        CanonError::Data {
            location,
            message: message.into(),
        }
    }

    pub fn request(message: impl Into<String>) -> Self {
        CanonError::Request(message.into())
    }

    /// The process exit code this error ends a command with: 2 for a bad
    /// request (usage), 1 for everything else (definitions, data, engine).
    pub fn exit_code(&self) -> i32 {
        match self {
            CanonError::Request(_) => 2,
            CanonError::Context { source, .. } => source.exit_code(),
            _ => 1,
        }
    }

    pub fn definition(location: Location, message: impl Into<String>) -> Self {
        CanonError::Definition(vec![Diagnostic {
            location,
            message: message.into(),
        }])
    }
}

/// What to do when the engine ran out of its memory: DataFusion's message
/// names its own settings (`datafusion.runtime.memory_limit`), which a
/// canon user does not set.
fn past_the_memory_limit(e: &datafusion::error::DataFusionError) -> &'static str {
    match e.find_root() {
        datafusion::error::DataFusionError::ResourcesExhausted(_) => {
            "\n  (past the memory limit: raise `engine.memory_limit` in canon.yaml, or pass \
             --memory-limit to canon sql; DataFusion's setting names above do not apply to canon)"
        }
        _ => "",
    }
}

/// canon's own errors raised inside the engine (a merge map worked out when
/// its scan runs, `compile::survivors`) come back as themselves, with their
/// location and exit code; the engine's own stay engine errors.
impl From<datafusion::error::DataFusionError> for CanonError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        use datafusion::error::DataFusionError as E;
        match e {
            E::External(inner) => match inner.downcast::<CanonError>() {
                Ok(canon) => *canon,
                Err(other) => CanonError::Engine(E::External(other)),
            },
            E::Context(what, inner) => match CanonError::from(*inner) {
                CanonError::Engine(inner) => CanonError::Engine(E::Context(what, Box::new(inner))),
                canon => canon,
            },
            // Shared by the partitions that met it (a join's build side):
            // ours when no other partition still holds it, else a copy of
            // the located data error inside it.
            E::Shared(shared) => match std::sync::Arc::try_unwrap(shared) {
                Ok(inner) => CanonError::from(inner),
                Err(shared) => {
                    data_error_in(&shared).unwrap_or(CanonError::Engine(E::Shared(shared)))
                }
            },
            other => CanonError::Engine(other),
        }
    }
}

/// A copy of canon's located data error inside `e`, found by reference (an
/// error other partitions still hold cannot be taken apart).
fn data_error_in(e: &datafusion::error::DataFusionError) -> Option<CanonError> {
    use datafusion::error::DataFusionError as E;
    match e {
        E::External(inner) => match inner.downcast_ref::<CanonError>() {
            Some(CanonError::Data { location, message }) => Some(CanonError::Data {
                location: location.clone(),
                message: message.clone(),
            }),
            Some(_) => None,
            None => inner.downcast_ref::<E>().and_then(data_error_in),
        },
        E::Context(_, inner) => data_error_in(inner),
        E::Shared(inner) => data_error_in(inner),
        _ => None,
    }
}

impl From<datafusion::arrow::error::ArrowError> for CanonError {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        CanonError::Engine(e.into())
    }
}

impl From<datafusion::parquet::errors::ParquetError> for CanonError {
    fn from(e: datafusion::parquet::errors::ParquetError) -> Self {
        CanonError::Engine(e.into())
    }
}

pub type Result<T, E = CanonError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::error::DataFusionError as E;

    /// canon's located data error, raised inside the engine and shared by
    /// the partitions of a join's build side, comes back as itself whether
    /// or not another partition still holds it; an engine error stays one.
    #[test]
    fn a_data_error_shared_by_partitions_comes_back_located() {
        let data = || {
            E::External(Box::new(CanonError::data(
                DataLocation {
                    system: "crm".into(),
                    table: "account".into(),
                    file: None,
                    column: Some("merged_into_id".into()),
                },
                "merge chain starting at `A1` loops back on itself",
            )))
        };
        let expected = "data error in crm/account column `merged_into_id`: merge chain starting at `A1` loops back on itself";
        // Held by this error alone: taken apart.
        let alone = CanonError::from(E::Shared(std::sync::Arc::new(data())));
        assert!(matches!(alone, CanonError::Data { .. }), "{alone:?}");
        assert_eq!(alone.to_string(), expected);
        // Still held by another partition, and under a context: copied.
        let shared = std::sync::Arc::new(E::Context("join".into(), Box::new(data())));
        let _other_partition = shared.clone();
        let copied = CanonError::from(E::Shared(shared));
        assert!(matches!(copied, CanonError::Data { .. }), "{copied:?}");
        assert_eq!(copied.to_string(), expected);
        // The engine's own error, shared: still the engine's.
        let engine = std::sync::Arc::new(E::Plan("no such column".into()));
        let _held = engine.clone();
        assert!(matches!(
            CanonError::from(E::Shared(engine)),
            CanonError::Engine(_)
        ));
    }
}
