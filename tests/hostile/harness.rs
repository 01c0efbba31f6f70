//! The machinery of the bad-input corpus: a case's setup (a copy of the
//! sample project with mutations), the run of the real binary under a
//! timeout, and the rendering of what it said into a reviewed snapshot.
//!
//! The cases themselves are declarative (tests/hostile/*.rs, one file per
//! family); nothing here knows about any one of them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;

/// Which kind of hostile input a case is (issue 14, item 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// canon.yaml, models/ and metrics/ as documents: syntax, types, names.
    Yaml,
    /// The SQL expressions inside definitions: filters, measures, slices, links.
    Expressions,
    /// The extracts: missing, corrupt, drifted or gated Parquet files.
    Data,
    /// The command line: metrics, periods, slices, grains, `--allow`, `canon sql`.
    Requests,
    /// Folders, links, `--out`, publication targets, the cache and the state.
    Filesystem,
}

pub const FAMILIES: [Family; 5] = [
    Family::Yaml,
    Family::Expressions,
    Family::Data,
    Family::Requests,
    Family::Filesystem,
];

/// Generated file contents (a document too large to spell out).
pub type Generate = fn() -> Vec<u8>;

/// A rewrite of a Parquet file's rows (all row groups, as one batch).
pub type Rewrite = fn(RecordBatch) -> RecordBatch;

/// One mutation of the copy, applied in order. Paths are relative to the
/// project copy; `{case}` in a path or argument is the case's own folder
/// (the project copy's parent), for paths outside the project.
pub enum Step {
    /// Replace the first `from` in `file` by `to` (`from` must be there).
    Replace(&'static str, &'static str, &'static str),
    /// Write `file` (its folder is created).
    Write(&'static str, Vec<u8>),
    /// Write `file` with generated contents.
    Generate(&'static str, Generate),
    /// Remove a file or a folder.
    Remove(&'static str),
    /// Keep the first `n` bytes of a file.
    Truncate(&'static str, u64),
    /// Overwrite the header of the first data page of `column` in row group
    /// `row_group` with 0xFF bytes: the footer stays intact.
    CorruptPage(&'static str, usize, &'static str),
    /// Rewrite a Parquet file's rows.
    Rewrite(&'static str, Rewrite),
    /// Replace `from` by `to` in every file under a folder that holds it
    /// (at least one must): files whose names canon chooses (the cache).
    ReplaceUnder(&'static str, &'static str, &'static str),
    /// Copy a file.
    Copy(&'static str, &'static str),
    /// `mkfifo path`: a named pipe, which blocks whoever opens it to read.
    Fifo(&'static str),
    /// `ln -s target link`.
    Symlink(&'static str, &'static str),
    /// `chmod mode path`.
    Chmod(&'static str, u32),
    /// Rename a file or folder so its name is not UTF-8: a 0xFF byte before
    /// its first `.` (`part-1.parquet` → `part-1\xff.parquet`), or at its
    /// end when it has none; with `true`, a link by the old name to it.
    RenameNotUtf8(&'static str, bool),
    /// Run canon with these arguments first; it must succeed (e.g. to fill
    /// the cache or the volume state before tampering with them).
    Canon(Vec<String>),
}

/// What a case starts from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Base {
    /// canon.yaml, models/ and metrics/ of the repository (no data).
    Definitions,
    /// The same and `sample_data/` (3 MB): cases that read the extracts.
    Sample,
}

/// One hostile input: a setup, a command line, the expected exit code; its
/// rendered stderr (and stdout when asked) is a reviewed snapshot.
pub struct Case {
    pub name: &'static str,
    pub family: Family,
    pub base: Base,
    pub steps: Vec<Step>,
    pub args: Vec<String>,
    pub exit: i32,
    /// Put stdout in the snapshot too.
    pub stdout: bool,
    /// Assert stderr carries no ANSI escape (the snapshot strips them).
    pub no_colour: bool,
    /// Paths that must not exist after the run (a refused or failed write
    /// leaves nothing behind).
    pub absent: Vec<&'static str>,
    /// Not fixed yet: the issue item that fixes it. Skipped with a note,
    /// unless `HOSTILE_PENDING=1` (then run and reported, not asserted).
    pub pending: Option<&'static str>,
    /// Real work over the whole sample (e.g. a year of daily snapshots):
    /// allowed three times the timeout, which guards against hangs, not
    /// speed (such a case takes seconds alone in a debug build, and may
    /// pass 20 s beside the others on a loaded machine).
    pub slow: bool,
}

/// A case of `family` named `name` over the sample definitions; give it a
/// command line with [`Case::run`] and its exit code with [`Case::exits`].
pub fn case(name: &'static str, family: Family) -> Case {
    Case {
        name,
        family,
        base: Base::Definitions,
        steps: Vec::new(),
        args: Vec::new(),
        exit: -1,
        stdout: false,
        no_colour: false,
        absent: Vec::new(),
        pending: None,
        slow: false,
    }
}

impl Case {
    pub fn with_data(mut self) -> Case {
        self.base = Base::Sample;
        self
    }
    pub fn replace(mut self, file: &'static str, from: &'static str, to: &'static str) -> Case {
        self.steps.push(Step::Replace(file, from, to));
        self
    }
    pub fn write(mut self, file: &'static str, text: impl AsRef<[u8]>) -> Case {
        self.steps.push(Step::Write(file, text.as_ref().to_vec()));
        self
    }
    pub fn generate(mut self, file: &'static str, f: Generate) -> Case {
        self.steps.push(Step::Generate(file, f));
        self
    }
    pub fn remove(mut self, path: &'static str) -> Case {
        self.steps.push(Step::Remove(path));
        self
    }
    pub fn truncate(mut self, file: &'static str, keep: u64) -> Case {
        self.steps.push(Step::Truncate(file, keep));
        self
    }
    pub fn corrupt_page(
        mut self,
        file: &'static str,
        row_group: usize,
        column: &'static str,
    ) -> Case {
        self.steps.push(Step::CorruptPage(file, row_group, column));
        self
    }
    pub fn rewrite(mut self, file: &'static str, f: Rewrite) -> Case {
        self.steps.push(Step::Rewrite(file, f));
        self
    }
    pub fn replace_under(
        mut self,
        dir: &'static str,
        from: &'static str,
        to: &'static str,
    ) -> Case {
        self.steps.push(Step::ReplaceUnder(dir, from, to));
        self
    }
    pub fn fifo(mut self, path: &'static str) -> Case {
        self.steps.push(Step::Fifo(path));
        self
    }
    pub fn copy(mut self, from: &'static str, to: &'static str) -> Case {
        self.steps.push(Step::Copy(from, to));
        self
    }
    pub fn symlink(mut self, target: &'static str, link: &'static str) -> Case {
        self.steps.push(Step::Symlink(target, link));
        self
    }
    pub fn rename_not_utf8(mut self, path: &'static str) -> Case {
        self.steps.push(Step::RenameNotUtf8(path, false));
        self
    }
    pub fn rename_not_utf8_linked(mut self, path: &'static str) -> Case {
        self.steps.push(Step::RenameNotUtf8(path, true));
        self
    }
    pub fn chmod(mut self, path: &'static str, mode: u32) -> Case {
        self.steps.push(Step::Chmod(path, mode));
        self
    }
    /// A preparatory run (split on whitespace); it must exit 0.
    pub fn before(mut self, command: &str) -> Case {
        self.steps.push(Step::Canon(split(command)));
        self
    }
    /// The command line under test, split on whitespace (`canon` omitted).
    pub fn run(mut self, command: &str) -> Case {
        self.args = split(command);
        self
    }
    /// The command line under test, for arguments holding spaces.
    pub fn run_args(mut self, args: &[&str]) -> Case {
        self.args = args.iter().map(|a| a.to_string()).collect();
        self
    }
    pub fn exits(mut self, code: i32) -> Case {
        self.exit = code;
        self
    }
    pub fn with_stdout(mut self) -> Case {
        self.stdout = true;
        self
    }
    pub fn no_colour(mut self) -> Case {
        self.no_colour = true;
        self
    }
    /// `path` must not exist after the run.
    pub fn leaves_no(mut self, path: &'static str) -> Case {
        self.absent.push(path);
        self
    }
    /// Allow this case three times the timeout (see [`Case::slow`]).
    pub fn slow(mut self) -> Case {
        self.slow = true;
        self
    }
    // No case is pending today; kept for the next finding.
    #[allow(dead_code)]
    pub fn pending(mut self, why: &'static str) -> Case {
        self.pending = Some(why);
        self
    }
}

fn split(command: &str) -> Vec<String> {
    command.split_whitespace().map(str::to_string).collect()
}

/// How one case ended.
pub struct Outcome {
    /// The exit code; None when killed by a signal or the timeout.
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub elapsed: Duration,
    /// Raw stderr (ANSI escapes kept), with paths replaced.
    pub raw_stderr: String,
    pub stderr: String,
    pub stdout: String,
    /// A setup problem (a step that failed), not canon's answer.
    pub setup_error: Option<String>,
    /// The paths of [`Case::absent`] that exist after the run.
    pub left_behind: Vec<&'static str>,
}

/// Per-case timeout: `HOSTILE_TIMEOUT` seconds, default 20.
pub fn timeout() -> Duration {
    Duration::from_secs(
        std::env::var("HOSTILE_TIMEOUT")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(20),
    )
}

/// The timeout of one case: [`timeout`], three times over for a slow one.
pub fn timeout_of(case: &Case) -> Duration {
    if case.slow { 3 * timeout() } else { timeout() }
}

/// Runs `cases` on `jobs` worker threads; outcomes come back in case order.
pub fn run_all(cases: &[&Case], jobs: usize) -> Vec<Outcome> {
    let next = AtomicUsize::new(0);
    let mut slots: Vec<Option<Outcome>> = (0..cases.len()).map(|_| None).collect();
    let done = std::sync::Mutex::new(&mut slots);
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(case) = cases.get(i) else { break };
                    let outcome = run_case(case);
                    done.lock().unwrap()[i] = Some(outcome);
                }
            });
        }
    });
    slots.into_iter().map(|o| o.unwrap()).collect()
}

fn run_case(case: &Case) -> Outcome {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let root = dir.path().to_path_buf();
    let project = root.join("project");
    let started = Instant::now();
    let failed = |e: String| Outcome {
        code: None,
        signal: None,
        timed_out: false,
        elapsed: started.elapsed(),
        raw_stderr: String::new(),
        stderr: String::new(),
        stdout: String::new(),
        setup_error: Some(e),
        left_behind: Vec::new(),
    };
    if let Err(e) = set_up(case, &root, &project) {
        return failed(e);
    }
    let started = Instant::now();
    let run = match execute(case, &root, &project, &case.args) {
        Ok(r) => r,
        Err(e) => return failed(e),
    };
    let left_behind = case
        .absent
        .iter()
        .copied()
        .filter(|p| std::fs::symlink_metadata(project.join(expand(p, &root))).is_ok())
        .collect();
    let placeholders = placeholders(&root);
    let raw_stderr = replace_paths(&run.stderr, &placeholders);
    Outcome {
        code: run.code,
        signal: run.signal,
        timed_out: run.timed_out,
        elapsed: started.elapsed(),
        stderr: mask_times(&strip_ansi(&raw_stderr)),
        raw_stderr,
        stdout: mask_times(&strip_ansi(&replace_paths(&run.stdout, &placeholders))),
        setup_error: None,
        left_behind,
    }
}

fn set_up(case: &Case, root: &Path, project: &Path) -> Result<(), String> {
    let repo = super::common::repo();
    std::fs::create_dir_all(project).map_err(|e| e.to_string())?;
    super::common::copy_project(project);
    if case.base == Base::Sample {
        copy_tree(&repo.join("sample_data"), &project.join("sample_data"))
            .map_err(|e| format!("copying sample_data: {e}"))?;
    }
    for step in &case.steps {
        apply(case, step, root, project).map_err(|e| format!("{}: {e}", describe(step)))?;
    }
    Ok(())
}

/// The case's family and setup in one line: the snapshot's description.
pub fn summary(case: &Case) -> String {
    let mut parts = vec![format!("{:?}", case.family).to_lowercase()];
    parts.push(match case.base {
        Base::Definitions => "the sample definitions".to_string(),
        Base::Sample => "the sample definitions and data".to_string(),
    });
    parts.extend(case.steps.iter().map(describe));
    parts.join("; ")
}

fn describe(step: &Step) -> String {
    match step {
        Step::Replace(f, ..) => format!("replace in {f}"),
        Step::Write(f, _) | Step::Generate(f, _) => format!("write {f}"),
        Step::Remove(p) => format!("remove {p}"),
        Step::Truncate(f, n) => format!("truncate {f} to {n} bytes"),
        Step::CorruptPage(f, g, c) => format!("corrupt {f} row group {g} column {c}"),
        Step::Rewrite(f, _) => format!("rewrite {f}"),
        Step::ReplaceUnder(d, ..) => format!("replace under {d}"),
        Step::Copy(a, b) => format!("copy {a} to {b}"),
        Step::Fifo(p) => format!("mkfifo {p}"),
        Step::Symlink(t, l) => format!("ln -s {t} {l}"),
        Step::Chmod(p, m) => format!("chmod {m:o} {p}"),
        Step::RenameNotUtf8(p, false) => format!("rename {p} to a name that is not UTF-8"),
        Step::RenameNotUtf8(p, true) => {
            format!("rename {p} to a name that is not UTF-8, linked by its old name")
        }
        Step::Canon(args) => format!("canon {}", args.join(" ")),
    }
}

fn expand(s: &str, root: &Path) -> String {
    s.replace("{case}", &root.display().to_string())
}

fn apply(case: &Case, step: &Step, root: &Path, project: &Path) -> Result<(), String> {
    let at = |p: &str| project.join(expand(p, root));
    let io = |e: std::io::Error| e.to_string();
    match step {
        Step::Replace(file, from, to) => {
            let text = std::fs::read_to_string(at(file)).map_err(io)?;
            if !text.contains(from) {
                return Err(format!("`{from}` is not in it"));
            }
            std::fs::write(at(file), text.replacen(from, to, 1)).map_err(io)
        }
        Step::Write(file, bytes) => write(&at(file), bytes),
        Step::Generate(file, f) => write(&at(file), &f()),
        Step::Remove(path) => {
            let p = at(path);
            if p.is_dir() {
                std::fs::remove_dir_all(p).map_err(io)
            } else {
                std::fs::remove_file(p).map_err(io)
            }
        }
        Step::Truncate(file, keep) => std::fs::OpenOptions::new()
            .write(true)
            .open(at(file))
            .and_then(|f| f.set_len(*keep))
            .map_err(io),
        Step::CorruptPage(file, row_group, column) => corrupt_page(&at(file), *row_group, column),
        Step::Rewrite(file, f) => rewrite(&at(file), *f),
        Step::ReplaceUnder(dir, from, to) => {
            let mut changed = 0;
            let mut stack = vec![at(dir)];
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d).map_err(io)? {
                    let p = e.map_err(io)?.path();
                    if p.is_dir() {
                        stack.push(p);
                    } else if let Ok(text) = std::fs::read_to_string(&p)
                        && text.contains(from)
                    {
                        std::fs::write(&p, text.replace(from, to)).map_err(io)?;
                        changed += 1;
                    }
                }
            }
            if changed == 0 {
                return Err(format!("`{from}` is in no file"));
            }
            Ok(())
        }
        Step::Fifo(path) => {
            let c = std::ffi::CString::new(at(path).display().to_string())
                .map_err(|e| e.to_string())?;
            // SAFETY: a valid NUL-terminated path; mkfifo only creates a file.
            match unsafe { libc::mkfifo(c.as_ptr(), 0o644) } {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error().to_string()),
            }
        }
        Step::Copy(from, to) => std::fs::copy(at(from), at(to)).map(|_| ()).map_err(io),
        Step::Symlink(target, link) => {
            std::os::unix::fs::symlink(expand(target, root), at(link)).map_err(io)
        }
        Step::Chmod(path, mode) => {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(at(path), std::fs::Permissions::from_mode(*mode)).map_err(io)
        }
        Step::RenameNotUtf8(path, link) => {
            use std::os::unix::ffi::OsStrExt;
            let from = at(path);
            let name = from.file_name().ok_or("no file name")?.as_bytes();
            let cut = name.iter().position(|&b| b == b'.').unwrap_or(name.len());
            let renamed = [&name[..cut], &[0xFF], &name[cut..]].concat();
            let to = from.with_file_name(std::ffi::OsStr::from_bytes(&renamed));
            std::fs::rename(&from, &to).map_err(io)?;
            if *link {
                std::os::unix::fs::symlink(&to, &from).map_err(io)?;
            }
            Ok(())
        }
        Step::Canon(args) => {
            let run = execute(case, root, project, args)?;
            if run.code != Some(0) {
                return Err(format!("exited {:?}:\n{}", run.code, run.stderr));
            }
            Ok(())
        }
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    std::fs::write(path, bytes).map_err(|e| e.to_string())
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

fn rewrite(path: &Path, f: Rewrite) -> Result<(), String> {
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let file = std::fs::File::open(path).map_err(|x| e(&x))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|x| e(&x))?
        .build()
        .map_err(|x| e(&x))?;
    let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().map_err(|x| e(&x))?;
    let schema = batches[0].schema();
    let all = datafusion::arrow::compute::concat_batches(&schema, &batches).map_err(|x| e(&x))?;
    let out = f(all);
    let file = std::fs::File::create(path).map_err(|x| e(&x))?;
    let mut w = ArrowWriter::try_new(file, out.schema(), None).map_err(|x| e(&x))?;
    w.write(&out).map_err(|x| e(&x))?;
    w.close().map_err(|x| e(&x))?;
    Ok(())
}

fn corrupt_page(path: &Path, row_group: usize, column: &str) -> Result<(), String> {
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
    use std::io::{Seek, SeekFrom, Write};
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let reader = SerializedFileReader::new(file).map_err(|e| e.to_string())?;
    let meta = reader.metadata();
    let group = meta
        .row_groups()
        .get(row_group)
        .ok_or(format!("no row group {row_group}"))?;
    let chunk = group
        .columns()
        .iter()
        .find(|c| c.column_path().string() == column)
        .ok_or(format!("no column {column}"))?;
    let offset = chunk.data_page_offset() as u64;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| e.to_string())?;
    f.seek(SeekFrom::Start(offset)).map_err(|e| e.to_string())?;
    f.write_all(&[0xFF; 16]).map_err(|e| e.to_string())
}

struct Run {
    code: Option<i32>,
    signal: Option<i32>,
    timed_out: bool,
    stdout: String,
    stderr: String,
}

/// The user and group `nobody`, whom a case with a `chmod` runs as when the
/// tests run as root (root reads and writes whatever the mode says).
const NOBODY: u32 = 65534;

fn unprivileged(case: &Case) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    case.steps.iter().any(|s| matches!(s, Step::Chmod(..))) && unsafe { libc::geteuid() } == 0
}

/// `chown -R` without following links.
fn chown_tree(path: &Path, id: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(path, Some(id), Some(id))?;
    if std::fs::symlink_metadata(path)?.is_dir() {
        for e in std::fs::read_dir(path)? {
            chown_tree(&e?.path(), id)?;
        }
    }
    Ok(())
}

/// Runs the real binary in the project copy (as a user in their project
/// folder), with a clean environment (the result cache and the volume state
/// in the copy, as a user's would be), under the timeout: a child still
/// running at the deadline is killed, never waited for.
fn execute(case: &Case, root: &Path, project: &Path, args: &[String]) -> Result<Run, String> {
    use std::os::unix::process::ExitStatusExt;
    let out_path = root.join(".stdout");
    let err_path = root.join(".stderr");
    let stdout = std::fs::File::create(&out_path).map_err(|e| e.to_string())?;
    let stderr = std::fs::File::create(&err_path).map_err(|e| e.to_string())?;
    let mut c = Command::new(env!("CARGO_BIN_EXE_canon"));
    c.current_dir(project)
        .args(args.iter().map(|a| expand(a, root)))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("CANON_") || k == "RUST_LOG" || k == "NO_COLOR" || k == "RUST_BACKTRACE" {
            c.env_remove(k);
        }
    }
    if unprivileged(case) {
        use std::os::unix::process::CommandExt;
        chown_tree(root, NOBODY).map_err(|e| format!("chown {}: {e}", root.display()))?;
        c.uid(NOBODY).gid(NOBODY);
    }
    let mut child = c.spawn().map_err(|e| format!("cannot start canon: {e}"))?;
    let deadline = Instant::now() + timeout_of(case);
    let mut timed_out = false;
    let status = loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(status) => break status,
            None if Instant::now() >= deadline => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().map_err(|e| e.to_string())?;
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let read =
        |p: &PathBuf| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
    Ok(Run {
        code: status.code(),
        signal: if timed_out { None } else { status.signal() },
        timed_out,
        stdout: read(&out_path),
        stderr: read(&err_path),
    })
}

/// The case folder and the repository, longest first, by every spelling
/// they may be printed with (as given and with links resolved).
fn placeholders(root: &Path) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    for (path, name) in [
        (root.to_path_buf(), "[CASE]"),
        (super::common::repo(), "[REPO]"),
    ] {
        if let Ok(real) = path.canonicalize() {
            out.push((real.display().to_string(), name));
        }
        out.push((path.display().to_string(), name));
    }
    out.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    out
}

fn replace_paths(text: &str, placeholders: &[(String, &'static str)]) -> String {
    let mut text = text.to_string();
    for (path, name) in placeholders {
        text = text.replace(path.as_str(), name);
    }
    text
}

/// Removes ANSI escape sequences (`ESC [ … letter`).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Masks what changes from run to run: a duration (`391.9 ms`, `0.7 s`)
/// becomes `[T] ms` / `[T] s`, an instant of the wall clock printed by this
/// run ([`this_run`]: the data's own instants are years away, the sign-offs'
/// are the project's) `[NOW]`, and the process
/// id in a temporary file's name (`.x.csv.tmp-4242`) or under `/proc`
/// (`/proc/self` resolves to `/proc/4242`) `[PID]`, and a hash
/// (12 or more lowercase hex digits: a cache entry's name is keyed by the
/// build, a fingerprint by the definitions) `[HASH]`.
pub fn mask_times(text: &str) -> String {
    mask_hashes(&mask_pids(&mask_durations(&mask_now(text))))
}

fn mask_hashes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let hex = word.len() >= 12 && word.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        out.push_str(if hex { "[HASH]" } else { word });
        word.clear();
    };
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// The instants of the wall clock a run of these tests can print: from a
/// quarter of an hour before the first output was masked (the tests' own
/// start, with room) to a quarter of an hour after now. A wider window
/// ("within a day of now") also masked the committed sign-offs' instant
/// (signoffs.yaml) on the day they were signed, and those snapshots then
/// failed every day after.
fn this_run(t: chrono::NaiveDateTime) -> bool {
    static START: std::sync::OnceLock<chrono::NaiveDateTime> = std::sync::OnceLock::new();
    let margin = chrono::Duration::minutes(15);
    let now = chrono::Utc::now().naive_utc();
    let start = *START.get_or_init(|| now - margin);
    start <= t && t <= now + margin
}

fn mask_now(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    // `YYYY-MM-DDTHH:MM:SS`, then fraction and zone if any.
    while let Some(i) = rest.find('T').filter(|_| rest.len() >= 19) {
        let start = i.saturating_sub(10);
        let candidate = rest.get(start..).and_then(|c| c.get(..19));
        let instant = candidate
            .filter(|_| i >= 10)
            .and_then(|c| chrono::NaiveDateTime::parse_from_str(c, "%Y-%m-%dT%H:%M:%S").ok());
        match instant {
            Some(t) if this_run(t) => {
                out.push_str(&rest[..start]);
                out.push_str("[NOW]");
                rest = zone_tail(&rest[start + 19..]);
            }
            _ => {
                out.push_str(&rest[..=i]);
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// What follows an instant's seconds once its fraction (`.758406`) and
/// zone (`Z`, `+00:00`) are skipped.
fn zone_tail(tail: &str) -> &str {
    let mut t = tail;
    if let Some(f) = t.strip_prefix('.') {
        t = f.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    if let Some(z) = t.strip_prefix('Z') {
        return z;
    }
    let offset = t.as_bytes();
    if offset.len() >= 6
        && matches!(offset[0], b'+' | b'-')
        && offset[1..3].iter().all(u8::is_ascii_digit)
        && offset[3] == b':'
        && offset[4..6].iter().all(u8::is_ascii_digit)
    {
        return &t[6..];
    }
    t
}

fn mask_pids(text: &str) -> String {
    mask_pids_after(&mask_pids_after(text, ".tmp-"), "/proc/")
}

/// `[PID]` for the digits that follow each `marker`.
fn mask_pids_after(text: &str, marker: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(marker) {
        out.push_str(&rest[..i + marker.len()]);
        let tail = &rest[i + marker.len()..];
        let digits = tail
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(tail.len());
        if digits > 0 {
            out.push_str("[PID]");
        }
        rest = &tail[digits..];
    }
    out.push_str(rest);
    out
}

fn mask_durations(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() && (i == 0 || !is_word(bytes[i - 1])) {
            let start = i;
            let mut j = i;
            while j < bytes.len()
                && (bytes[j].is_ascii_digit() || bytes[j] == b'.' || bytes[j] == b',')
            {
                j += 1;
            }
            let number = &text[start..j];
            let rest = &text[j..];
            let unit = ["ms", "s"].into_iter().find(|u| {
                rest.strip_prefix(' ')
                    .or(Some(rest))
                    .and_then(|r| r.strip_prefix(u))
                    .is_some_and(|after| !after.bytes().next().is_some_and(is_word))
            });
            let timing = match unit {
                Some("s") => number.contains('.'),
                Some(_) => true,
                None => false,
            };
            out.push_str(if timing { "[T]" } else { number });
            i = j;
        } else {
            let c = text[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The text of a case's snapshot: the command, the exit and what was said.
pub fn render(case: &Case, outcome: &Outcome) -> String {
    let args: Vec<String> = case
        .args
        .iter()
        .map(|a| {
            // A generated argument of thousands of terms is shown by its
            // ends and its length, so the snapshot stays readable.
            let chars: Vec<char> = a.chars().collect();
            let a = if chars.len() > 200 {
                format!(
                    "{} … ({} characters) … {}",
                    chars[..80].iter().collect::<String>(),
                    chars.len(),
                    chars[chars.len() - 40..].iter().collect::<String>()
                )
            } else {
                a.clone()
            };
            if a.contains(char::is_whitespace) {
                format!("\"{a}\"")
            } else {
                a
            }
        })
        .collect();
    let mut s = format!("$ canon {}\n", args.join(" "));
    s.push_str(&match (outcome.code, outcome.signal, outcome.timed_out) {
        (_, _, true) => "timed out\n".to_string(),
        (Some(c), _, _) => format!("exit {c}\n"),
        (None, Some(sig), _) => format!("killed by signal {sig}\n"),
        (None, None, false) => "no exit status\n".to_string(),
    });
    s.push_str("--- stderr\n");
    s.push_str(&outcome.stderr);
    if case.stdout {
        s.push_str("--- stdout\n");
        s.push_str(&outcome.stdout);
    }
    s
}

/// What is wrong with an outcome beyond its snapshot: a hang, a signal, a
/// panic, another exit code. Empty when it is as declared.
pub fn problems(case: &Case, outcome: &Outcome) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(e) = &outcome.setup_error {
        out.push(format!("setup failed: {e}"));
        return out;
    }
    if outcome.timed_out {
        out.push(format!(
            "did not end within {} s",
            timeout_of(case).as_secs()
        ));
    } else if let Some(sig) = outcome.signal {
        out.push(format!("killed by signal {sig}"));
    }
    if outcome.stderr.contains("panicked") || outcome.stderr.contains("RUST_BACKTRACE") {
        out.push("panicked".to_string());
    }
    if !outcome.timed_out && outcome.code != Some(case.exit) {
        out.push(format!("exit {:?}, expected {}", outcome.code, case.exit));
    }
    for path in &outcome.left_behind {
        out.push(format!("left {path} behind"));
    }
    if case.no_colour && outcome.raw_stderr.contains('\u{1b}') {
        out.push("stderr carries ANSI escapes".to_string());
    }
    out
}
