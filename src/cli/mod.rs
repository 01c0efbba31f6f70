//! The command line: one function per command, each a thin call into the
//! library; the commands' words and help are in [`args`]. Exit codes: 0
//! success, 1 bad definitions or data, 2 a bad request (usage), 130 or 143
//! stopped by SIGINT or SIGTERM.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Parser;

use crate::catalog::Catalog;
use crate::error::{CanonError, Result};
use crate::protect::Protected;
use crate::request::{Request, Resolved};
use crate::result::render::{Format, render};
use crate::run::{DataSource, Engine};

mod args;
pub use args::*;

/// One table `canon sample` wrote.
pub struct SampleTable {
    pub system: String,
    pub table: String,
    pub rows: usize,
    pub bytes: u64,
}

/// The sample company's generator, `(out, seed, scale)` → the tables it
/// wrote. The binary supplies it (crates/canon-sample): the library does not
/// depend on the generator.
pub type SampleGenerator = fn(&Path, u64, u32) -> Result<Vec<SampleTable>>;

/// Runs the CLI and returns the process exit code.
pub fn main(sample: SampleGenerator) -> i32 {
    let cli = Cli::parse();
    let filter = if cli.verbose {
        "canon=info"
    } else {
        "canon=warn"
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        )
        .with_writer(std::io::stderr)
        // Its own report of a failed write is an `eprintln!`, which panics
        // when stderr is closed (`2>&1 | grep -q`): a publish would die
        // half way for a message no one can read (output::say).
        .log_internal_errors(false)
        .with_ansi(colour(
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
            std::env::var_os("NO_COLOR"),
        ))
        .try_init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Plans are walked recursively; definitions and `canon sql` are
        // bounded (compile::limits) well inside this, with room for a
        // debug build's larger frames (tokio's default is 2 MiB).
        .thread_stack_size(WORKER_STACK_BYTES)
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            crate::console::say(format_args!("error: cannot start the runtime: {e}"));
            return 1;
        }
    };
    // Ctrl-C or SIGTERM cancels the run's jobs on a cluster before the
    // process exits (cluster::interrupt). Not in a scheduler or executor:
    // Ballista's own handlers shut those down gracefully (an executor
    // tells the scheduler it leaves and drains its tasks).
    #[cfg(all(feature = "cluster", unix))]
    if !matches!(cli.command, Command::Cluster { .. }) {
        crate::cluster::interrupt::watch(&runtime);
    }
    let outcome = runtime.block_on(dispatch(&cli, sample));
    // Interrupted: the signal's handler is asking the cluster to cancel and
    // ends the process with the signal's status; the run's own failure is
    // not the answer, so wait for it (it exits within CANCEL_WITHIN).
    #[cfg(all(feature = "cluster", unix))]
    if crate::cluster::interrupt::stopping() {
        std::thread::sleep(
            crate::cluster::interrupt::CANCEL_WITHIN + std::time::Duration::from_secs(5),
        );
    }
    match outcome {
        Ok(()) => 0,
        Err(e) => {
            crate::console::say(format_args!("error: {e}"));
            // The run's other jobs on a cluster will not be read: stopped
            // there rather than computed to the end.
            #[cfg(feature = "cluster")]
            runtime.block_on(crate::cluster::cancel_unfinished(
                std::time::Duration::from_secs(10),
                crate::cluster::GivingUp::RunFailed,
            ));
            e.exit_code()
        }
    }
}

/// The stack of each engine worker thread (the checks' threads have the same).
pub use crate::run::WORKER_STACK_BYTES;

/// The stack of the thread that runs a command (see `main.rs`): planning and
/// DataFusion's optimizer recurse over plans on it.
pub const MAIN_STACK_BYTES: usize = 64 << 20;

/// Whether log lines on stderr are coloured: only on a terminal, and not
/// when `NO_COLOR` is set to anything but the empty string (no-color.org).
/// A file or pipe gets plain text, not escape codes.
pub fn colour(stderr_is_terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

async fn dispatch(cli: &Cli, generator: SampleGenerator) -> Result<()> {
    match &cli.command {
        Command::Sample { out, seed, scale } => sample(generator, out, *seed, *scale),
        #[cfg(feature = "cluster")]
        Command::Cluster { role } => cluster(role).await,
        Command::List => list(&cli.project),
        Command::Sql {
            sql,
            file,
            data,
            memory_limit,
        } => {
            run_sql(
                &cli.project,
                (sql.as_deref(), file.as_deref()),
                data.as_deref(),
                memory_limit.as_deref(),
            )
            .await
        }
        Command::Validate {
            data,
            no_data,
            deep,
            strict,
        } => validate(&cli.project, data, (*no_data, *deep, *strict)).await,
        Command::Query(args) => query(&cli.project, args).await,
        Command::Explain { query, analyze } => explain(&cli.project, query, *analyze).await,
        Command::Lineage(args) => lineage(&cli.project, args).await,
        Command::Docs {
            out,
            publication,
            data,
        } => docs(&cli.project, out, publication.as_deref(), data.as_deref()).await,
        Command::History {
            metric,
            period,
            publication,
        } => history(&cli.project, metric, period, publication.as_deref()),
        Command::Diff {
            base,
            periods,
            data,
            allow,
            format,
            out,
        } => {
            diff(
                &cli.project,
                base.as_deref(),
                periods,
                (data.as_deref(), allow),
                (*format, out.as_deref()),
            )
            .await
        }
        Command::Test { only, mutate } => test(&cli.project, only, *mutate).await,
        Command::Signoff { metrics, all, by } => signoff(&cli.project, metrics, *all, by).await,
        Command::Reconcile(args) => reconcile(&cli.project, args).await,
        Command::Check { data, format } => check(&cli.project, data, *format).await,
        Command::Publish {
            out,
            periods,
            only,
            data,
        } => publish(&cli.project, out, periods, only, data).await,
    }
}

fn sample(generator: SampleGenerator, out: &Path, seed: u64, scale: u32) -> Result<()> {
    let started = std::time::Instant::now();
    let tables = generator(out, seed, scale)?;
    let mut rows = 0;
    let mut bytes = 0;
    for t in &tables {
        crate::console::print_line(format_args!(
            "{:<12} {:<26} {:>12} rows {:>12} bytes",
            t.system, t.table, t.rows, t.bytes
        ))?;
        rows += t.rows;
        bytes += t.bytes;
    }
    crate::console::print_line(format_args!(
        "wrote {} tables, {rows} rows, {bytes} bytes to {} in {:.1} s",
        tables.len(),
        out.display(),
        started.elapsed().as_secs_f64()
    ))?;
    Ok(())
}

async fn run_sql(
    project: &Path,
    (sql, file): (Option<&str>, Option<&Path>),
    data: Option<&Path>,
    memory_limit: Option<&str>,
) -> Result<()> {
    let text = match (sql, file) {
        (Some(s), _) => s.to_string(),
        (None, Some(f)) => std::fs::read_to_string(f)
            .map_err(|e| CanonError::request(format!("cannot read --file {}: {e}", f.display())))?,
        (None, None) => return Err(CanonError::request("give a query or --file FILE")),
    };
    let mut catalog = Catalog::load(project)?;
    if let Some(limit) = memory_limit {
        catalog.files.project.spec.engine.memory_limit =
            (limit != "none").then(|| limit.to_string());
        // The size is the command line's, not canon.yaml's: so is the fault.
        catalog.memory_limit().map_err(|_| {
            CanonError::request(format!(
                "--memory-limit `{limit}` is not a size: write it as 512MiB, 2GiB or 1500MB, or none"
            ))
        })?;
    }
    let root = existing_data_root(&catalog, data)?;
    let batches = crate::sql::run(&catalog, &root, &text).await?;
    emit(crate::sql::tsv(&batches)?.as_bytes(), None, Format::Table)
}

fn list(project: &Path) -> Result<()> {
    let catalog = Catalog::load(project)?;
    let mut out = format!(
        "{:<24} {:<8} {:<10} {:<20} {:<8} {}\n",
        "metric", "kind", "status", "owner", "system", "description"
    );
    for name in catalog.metrics.keys() {
        let (_, _, m) = catalog.metric(name)?;
        let description: String = m
            .description
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let short = match description.find(". ") {
            Some(i) => description[..=i].to_string(),
            None => description,
        };
        out.push_str(&format!(
            "{:<24} {:<8} {:<10} {:<20} {:<8} {}\n",
            m.name,
            m.kind.name(),
            m.status.name(),
            m.owner,
            m.system,
            short
        ));
    }
    crate::console::print_out(out.as_bytes())?;
    Ok(())
}

/// The run's data root as given: `--data`, CANON_DATA, else canon.yaml's
/// `data_root` (a folder relative to the project, or a store's URL).
fn data_root(catalog: &Catalog, data: Option<&Path>) -> PathBuf {
    let configured = &catalog.files.project.spec.data_root;
    match data {
        Some(d) => d.to_path_buf(),
        None if store_url(Path::new(configured)).is_some() => PathBuf::from(configured),
        None => catalog.files.root.join(configured),
    }
}

/// The URL a data root names, when it is in an object store (`s3://…`).
fn store_url(root: &Path) -> Option<&str> {
    root.to_str().filter(|r| crate::run::store::is_url(r))
}

/// The run's data: a folder that must exist, or a store whose root answers
/// (see [`crate::run::store::StoreRoot::probe`]); either fault is the
/// request's (exit 2), reported before anything is planned.
async fn data_source(catalog: &Catalog, data: Option<&Path>) -> Result<DataSource> {
    let root = data_root(catalog, data);
    match store_url(&root) {
        Some(url) => {
            let store = crate::run::store::StoreRoot::open(url)?;
            store.probe().await?;
            Ok(DataSource::Store(Arc::new(store)))
        }
        None => Ok(DataSource::Folder(existing_data_root(catalog, data)?)),
    }
}

/// The run's data root, which must exist: a missing one is the request's
/// fault (exit 2).
fn existing_data_root(catalog: &Catalog, data: Option<&Path>) -> Result<PathBuf> {
    let root = data_root(catalog, data);
    if let Some(url) = store_url(&root) {
        return Err(CanonError::request(format!(
            "data root {url}: this command reads a local folder only (query, reconcile, publish, \
             check, explain, lineage, docs and validate read object stores); copy the extracts to a folder, \
             or pass --data DIR"
        )));
    }
    if !root.is_dir() {
        return Err(CanonError::request(format!(
            "data root {} {} (set --data DIR, CANON_DATA or data_root in canon.yaml)",
            root.display(),
            if root.exists() {
                "is a file, not a folder"
            } else {
                "does not exist"
            }
        )));
    }
    Ok(root)
}

/// The engine for a request, once the request itself has been checked (a
/// bad metric name or period is reported before the data root is looked at).
async fn engine(project: &Path, args: &QueryArgs) -> Result<(Engine, Resolved)> {
    let catalog = Arc::new(Catalog::load(project)?);
    let request = request(&catalog, args)?;
    for (i, name) in args.metrics.iter().enumerate() {
        catalog.metric(name)?;
        // A metric asked twice would be computed and printed twice, and a
        // CSV summed by its reader would count it twice.
        if args.metrics[..i].contains(name) {
            return Err(CanonError::request(format!(
                "metric `{name}` is named twice: name each metric once"
            )));
        }
    }
    let request = catalog.resolve(request)?;
    check_out(&catalog, &args.data, args.out.as_deref())?;
    if let Some(out) = &args.out {
        crate::output::writable_file(out)?;
    }
    let engine = configured(catalog, &args.data).await?;
    for name in &args.metrics {
        crate::compile::slicing::check(&engine, name, &request.by)?;
    }
    Ok((engine, request))
}

/// An engine over the run's data root, with its clock and overrides. A
/// missing data root is the request's fault (exit 2), checked here once.
async fn configured(catalog: Arc<Catalog>, data: &DataArgs) -> Result<Engine> {
    // A result computed without its row gates is not governed: never
    // remembered, so never served to a later run.
    if crate::quality::gates::bench_skips_row_gates() {
        if !data.no_cache {
            return Err(CanonError::request(
                "CANON_BENCH_SKIP_ROW_GATES=1 skips the row-count gates and needs --no-cache: \
                 a result without them must not be cached or served",
            ));
        }
        // Once per run, where the switch is taken, not once per set of gates.
        tracing::warn!(
            "CANON_BENCH_SKIP_ROW_GATES=1 (a bench-switches build): the row-count gates are skipped, so no result of this run is governed"
        );
    }
    let source = data_source(&catalog, data.data.as_deref()).await?;
    let volume = crate::run::row_counts::Tracker::state_file(&catalog.files.root);
    let volume = match &source {
        DataSource::Store(store) => {
            crate::run::row_counts::Tracker::named(volume, store.url().to_string())
        }
        DataSource::Folder(root) => crate::run::row_counts::Tracker::new(volume, root),
        DataSource::Empty => {
            return Err(CanonError::Internal("a run without a data root".into()));
        }
    };
    let mut engine = Engine::new(catalog, source)?;
    engine.set_series_plan(crate::compile::planner::bench_series_plan());
    if let Some(now) = &data.now {
        engine.now = chrono::DateTime::parse_from_rfc3339(now)
            .map_err(|e| {
                CanonError::request(format!(
                    "cannot read --now `{now}`: {e} (use 2026-01-02T08:00:00Z)"
                ))
            })?
            .with_timezone(&chrono::Utc);
    }
    // CANON_CLUSTER= (empty) means no cluster, as an unset variable does.
    let cluster = data
        .cluster
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty());
    if let Some(url) = cluster {
        #[cfg(feature = "cluster")]
        crate::cluster::use_cluster(&mut engine, url).await?;
        #[cfg(not(feature = "cluster"))]
        return Err(CanonError::request(format!(
            "--cluster {url}: this canon was built without the cluster feature \
             (cargo build --release --features cluster --target-dir target/cluster)"
        )));
    }
    engine.allow_stale = data.allow_stale;
    engine.allow = crate::allow::Allow::parse(
        &data.allow,
        data.allow_stale,
        engine.catalog.sources.keys().map(String::as_str),
    )?;
    engine.volume = Some(Arc::new(volume));
    // A run on a cluster neither reads nor writes the result cache: a
    // number a cluster computed is never served to a run on one machine
    // (Ballista's recovery from a lost executor is not yet trusted here:
    // docs/cluster-design.md).
    if !data.no_cache && cluster.is_none() {
        let dir = cache_dir(&engine.catalog, data);
        let root = data_root(&engine.catalog, data.data.as_deref());
        Protected::of_project(&engine.catalog, &root, None).check_cache_dir(&dir)?;
        engine.use_fingerprints(Arc::new(crate::run::fingerprints::Fingerprints::open(dir)?));
    }
    Ok(engine)
}

/// The result cache folder: --cache-dir, canon.yaml's cache_dir, else
/// `.canon-cache` in the project.
fn cache_dir(catalog: &Catalog, data: &DataArgs) -> PathBuf {
    data.cache_dir
        .clone()
        .unwrap_or_else(|| catalog.configured_cache_folder())
}

/// Refuses an `--out` that would land on the project's definitions, data
/// or cache (exit 2), before anything is computed.
/// Refuses an `--out` onto the project's definitions, data or caches (for
/// commands without the data flags of a query).
fn protect_out(catalog: &Catalog, data: Option<&Path>, out: &Path) -> Result<()> {
    let args = DataArgs {
        data: data.map(Path::to_path_buf),
        now: None,
        allow_stale: false,
        allow: Vec::new(),
        no_cache: false,
        cache_dir: None,
        cluster: None,
    };
    check_out(catalog, &args, Some(out))
}

fn check_out(catalog: &Catalog, data: &DataArgs, out: Option<&Path>) -> Result<()> {
    let Some(out) = out else { return Ok(()) };
    if let Some(url) = store_url(out) {
        // Written as a path, `s3://b/x` would be a local folder `s3:`; and a
        // publication's guarantees (a complete version switched in by one
        // rename, never half written) rest on a local file system.
        return Err(CanonError::request(format!(
            "--out {url}: canon writes to a local path only; write it here and copy it to the \
             store (e.g. `aws s3 sync`), so readers never see a half-written publication"
        )));
    }
    let root = data_root(catalog, data.data.as_deref());
    Protected::of_project(catalog, &root, Some(&cache_dir(catalog, data))).check_out(out)
}

async fn publish(
    project: &Path,
    out: &Path,
    periods: &[String],
    only: &[String],
    data: &DataArgs,
) -> Result<()> {
    if crate::quality::gates::bench_skips_row_gates() {
        return Err(CanonError::request(
            "CANON_BENCH_SKIP_ROW_GATES=1 skips the row-count gates: nothing is published without them",
        ));
    }
    let catalog = Arc::new(Catalog::load(project)?);
    let wanted = catalog.periods_or_published(periods);
    if wanted.is_empty() {
        return Err(CanonError::request(
            "no periods to publish: pass --period P (repeatable) or set publish.periods in canon.yaml",
        ));
    }
    let periods = wanted
        .iter()
        .map(|p| catalog.calendar.parse_period(p))
        .collect::<Result<Vec<_>>>()?;
    if let Some((i, j)) = crate::calendar::repeated_period(&periods) {
        return Err(CanonError::request(format!(
            "--period {} repeats --period {} ({} .. {}): each period is published once",
            wanted[j], wanted[i], periods[j].from, periods[j].to
        )));
    }
    check_out(&catalog, data, Some(out))?;
    let engine = configured(catalog, data).await?;
    let manifest = match crate::publish::publish(&engine, out, &periods, only).await {
        Ok(manifest) => manifest,
        Err(e) => return Err(engine.located(e, None).await),
    };
    let count = |status: &str| {
        manifest
            .metrics
            .iter()
            .filter(|m| m.status == status)
            .count()
    };
    let (blocked, pending) = (count("blocked"), count("pending"));
    // What was published, then what was not beside it: "2 published (2
    // blocked)" read as two of which two were blocked.
    let unanswered_said = match (blocked, pending) {
        (0, 0) => String::new(),
        (b, 0) => format!(" ({b} more blocked)"),
        (0, p) => format!(
            " ({p} more pending: no final value until a conversion window closes, see manifest.json)"
        ),
        (b, p) => format!(
            " ({b} more blocked, {p} more pending: no final value until a conversion window closes, see manifest.json)"
        ),
    };
    let to_date = manifest
        .metrics
        .iter()
        .chain(&manifest.reconciliations)
        .filter(|m| m.complete == Some(false))
        .count();
    let to_date_said = match to_date {
        0 => String::new(),
        n => format!(
            "; {n} of them to date: their period runs past the data (`complete: false` in manifest.json and the files)"
        ),
    };
    let bridges_blocked = manifest
        .reconciliations
        .iter()
        .filter(|r| r.status != "published")
        .count();
    let bridges_said = match bridges_blocked {
        0 => String::new(),
        n => format!(" ({n} more blocked)"),
    };
    crate::console::print_line(format_args!(
        "published {} metric result(s){unanswered_said} and {} reconciliation(s){bridges_said} for {} period(s) to {}{to_date_said}",
        manifest.metrics.len() - blocked - pending,
        manifest.reconciliations.len() - bridges_blocked,
        periods.len(),
        out.display()
    ))?;
    for w in &manifest.warnings {
        crate::console::say(format_args!("warning: {w}"));
    }
    blocked_publication(&manifest, out)
}

/// A publication holding blocked results was written (a BI tool sees each
/// as blocked, with its reason and no value) and still fails the command
/// (exit 1, as a blocked query does), so a scheduled publish does not
/// pass a blocked number by in silence.
fn blocked_publication(manifest: &crate::publish::Manifest, out: &Path) -> Result<()> {
    const SHOWN: usize = 3;
    let blocked: Vec<_> = manifest.blocked().collect();
    if blocked.is_empty() {
        return Ok(());
    }
    let mut said = blocked
        .iter()
        .take(SHOWN)
        .map(|e| {
            let reason = e.reason.as_deref().unwrap_or("no reason recorded");
            format!(
                "\n  {} {}: {}",
                e.metric,
                e.period,
                reason.replace('\n', "\n    ")
            )
        })
        .collect::<String>();
    if blocked.len() > SHOWN {
        said.push_str(&format!(
            "\n  and {} more (manifest.json)",
            blocked.len() - SHOWN
        ));
    }
    let count = match blocked.len() {
        1 => "1 result in it is".to_owned(),
        n => format!("{n} results in it are"),
    };
    Err(CanonError::Blocked(format!(
        "published to {}, but {count} blocked (in its manifest with status \"blocked\", the \
         reason and no value):{said}",
        out.display(),
    )))
}

fn history(project: &Path, metric: &str, period: &str, publication: Option<&Path>) -> Result<()> {
    let catalog = Catalog::load(project)?;
    catalog.metric(metric)?;
    let wanted = catalog.calendar.parse_period(period)?;
    let label = wanted.label.clone();
    let dir = publication
        .map(Path::to_path_buf)
        .unwrap_or_else(|| project.join("published"));
    if !dir.join(crate::publish_dir::MARKER).is_file() {
        return Err(CanonError::request(format!(
            "{} is not a canon publication (pass --publication DIR, the folder `canon publish --out` wrote)",
            dir.display()
        )));
    }
    // The history and the manifest read from one publication, the lock
    // released before anything is written (a reader not read from must
    // not hold a publish up).
    let rows = {
        let _held = crate::publish_dir::hold_for_reading(&dir);
        let rows = crate::history::read(&dir)?;
        // (history::read has checked the manifest reads.)
        let manifest = crate::publish_dir::read_manifest(&dir)?;
        crate::history::with_manifest_blocks(rows, manifest.as_ref(), &catalog.calendar)
    };
    // A period is its days, however it was written: FY2026-Q1 published,
    // asked as 2025-02-01..2025-05-01 (or the other way round), and as
    // published (a fiscal calendar changed since names other days).
    let days = crate::history::days_of(&wanted);
    let rows: Vec<crate::history::Row> = rows
        .into_iter()
        .filter(|row| row.period_days(&catalog.calendar) == days)
        .map(|row| crate::history::Row {
            period: label.clone(),
            ..row
        })
        .collect();
    let text = crate::history::explain(
        &rows,
        metric,
        &label,
        &dir.join(crate::history::FILE).display().to_string(),
    );
    emit(text.as_bytes(), None, Format::Table)
}

/// A command's failure as the user should read it: a damaged input file
/// named first (`Engine::located`), then what is left blamed on the
/// definition being computed (`blame`).
async fn failure(
    engine: &Engine,
    error: CanonError,
    blame: impl FnOnce(CanonError) -> CanonError,
) -> CanonError {
    blame(engine.located(error, None).await)
}

async fn check(project: &Path, data: &DataArgs, format: Option<Format>) -> Result<()> {
    let format = crate::output::resolve("check", format, None, &[Format::Table, Format::Json])?;
    let catalog = Arc::new(Catalog::load(project)?);
    let engine = configured(catalog, data).await?;
    let report = match crate::quality::check_all(&engine).await {
        Ok(report) => report,
        Err(e) => {
            return Err(failure(&engine, e, |e| crate::blame::in_check(&engine.catalog, e)).await);
        }
    };
    let worst = report.status;
    let bytes = match format {
        Format::Json => {
            let mut v = serde_json::to_vec_pretty(&report)
                .map_err(|e| CanonError::Internal(format!("serializing checks: {e}")))?;
            v.push(b'\n');
            v
        }
        _ => report.table().into_bytes(),
    };
    emit(&bytes, None, Format::Table)?;
    if worst == crate::quality::Status::Error {
        return Err(CanonError::Blocked(format!(
            "{} check(s) at error",
            report
                .tables
                .iter()
                .filter(|c| c.status == crate::quality::Status::Error)
                .count()
        )));
    }
    Ok(())
}

fn request(catalog: &Catalog, args: &QueryArgs) -> Result<Request> {
    crate::request::Asked {
        period: args.period.clone(),
        from: args.from.clone(),
        to: args.to.clone(),
        as_of: args.as_of.clone(),
        grain: args.grain.clone(),
        by: args.by.clone(),
    }
    .request(&catalog.calendar)
}

/// Every format a governed result or a bridge is written in.
const EVERY_FORMAT: &[Format] = &[Format::Table, Format::Json, Format::Csv, Format::Parquet];

async fn query(project: &Path, args: &QueryArgs) -> Result<()> {
    let (engine, request) = engine(project, args).await?;
    let format = crate::output::resolve("query", args.format, args.out.as_deref(), EVERY_FORMAT)?;
    let mut results = Vec::new();
    for name in &args.metrics {
        tracing::info!(metric = %name, period = %request.period.label, "computing");
        match crate::query::run_metric(&engine, name, &request).await {
            Ok(result) => {
                if let Some(w) = result.lifecycle.as_ref().and_then(|l| l.warning(name)) {
                    crate::console::say(format_args!("warning: {w}"));
                }
                results.push(result)
            }
            Err(e) => return Err(engine.located(e, None).await),
        }
    }
    let bytes = render(&results, format)?;
    emit(&bytes, args.out.as_deref(), format)
}

async fn explain(project: &Path, args: &QueryArgs, analyze: bool) -> Result<()> {
    let (engine, request) = engine(project, args).await?;
    // Plans are text: the table format, to stdout or --out.
    crate::output::resolve(
        "explain",
        args.format,
        args.out.as_deref(),
        &[Format::Table],
    )?;
    let mut out = String::new();
    for name in &args.metrics {
        let parts = match crate::explain::explain(&engine, name, &request, analyze).await {
            Ok(parts) => parts,
            Err(e) => {
                return Err(failure(&engine, e, |e| {
                    crate::blame::in_metric(&engine.catalog, name, &request.by, e)
                })
                .await);
            }
        };
        for part in parts {
            out.push_str(&part);
        }
    }
    emit(out.as_bytes(), args.out.as_deref(), Format::Table)
}

async fn lineage(project: &Path, args: &LineageArgs) -> Result<()> {
    let catalog = Arc::new(Catalog::load(project)?);
    catalog.metric(&args.metric)?;
    let asked = crate::request::Asked {
        period: match (&args.period, &args.as_of) {
            (None, None) => Some(chrono::Utc::now().format("%Y-%m").to_string()),
            (p, _) => p.clone(),
        },
        as_of: args.as_of.clone(),
        by: args.by.clone(),
        ..Default::default()
    };
    let request = catalog.resolve(asked.request(&catalog.calendar)?)?;
    if let Some(out) = &args.out {
        protect_out(&catalog, args.data.as_deref(), out)?;
        crate::output::writable_file(out)?;
    }
    // The files are listed when the data root is there; the plan needs none.
    // A data root named on the command line must exist.
    let root = data_root(&catalog, args.data.as_deref());
    let data = if args.data.is_some() || store_url(&root).is_some() {
        data_source(&catalog, args.data.as_deref()).await?
    } else if root.is_dir() {
        DataSource::Folder(root)
    } else {
        DataSource::Empty
    };
    let engine = Engine::new(catalog, data)?;
    crate::compile::slicing::check(&engine, &args.metric, &request.by)?;
    let graph = crate::lineage::lineage(&engine, &args.metric, &request).await?;
    let text = match args.format {
        LineageFormat::Mermaid => crate::lineage::render::mermaid(&graph),
        LineageFormat::Dot => crate::lineage::render::dot(&graph),
        LineageFormat::Json => {
            let mut s = serde_json::to_string_pretty(&graph)
                .map_err(|e| CanonError::Internal(format!("lineage as JSON: {e}")))?;
            s.push('\n');
            s
        }
    };
    for note in &graph.notes {
        crate::console::say(format_args!("note: {note}"));
    }
    emit(text.as_bytes(), args.out.as_deref(), Format::Table)
}

async fn diff(
    project: &Path,
    base: Option<&str>,
    periods: &[String],
    (data, allow): (Option<&Path>, &[String]),
    (format, out): (DiffFormat, Option<&Path>),
) -> Result<()> {
    let head = Arc::new(Catalog::load(project)?);
    let periods = crate::diff::periods(&head, periods)?;
    let root = existing_data_root(&head, data)?;
    if let Some(out) = out {
        protect_out(&head, data, out)?;
        crate::output::writable_file(out)?;
    }
    let base = crate::diff::base::resolve(project, base)?;
    if let (Some(out), Ok(base_catalog)) = (out, Catalog::load(&base.root)) {
        // Nor over the base project's definitions, when it is a folder.
        protect_out(&base_catalog, data, out)?;
    }
    let base_catalog = Arc::new(Catalog::load(&base.root).map_err(|e| {
        CanonError::request(format!(
            "the base project ({}) does not load: {e}",
            base.shown
        ))
    })?);
    let d = crate::diff::diff(
        base_catalog,
        head,
        (base.shown.clone(), "the working tree".to_string()),
        &periods,
        &crate::diff::Over { data: &root, allow },
    )
    .await?;
    let text = match format {
        DiffFormat::Md => crate::diff::render::markdown(&d),
        DiffFormat::Json => {
            let mut s = serde_json::to_string_pretty(&d)
                .map_err(|e| CanonError::Internal(format!("the diff as JSON: {e}")))?;
            s.push('\n');
            s
        }
    };
    emit(text.as_bytes(), out, Format::Table)?;
    if !d.problems.is_empty() {
        return Err(CanonError::Blocked(format!(
            "{} problem(s): {}",
            d.problems.len(),
            d.problems.join("; ")
        )));
    }
    Ok(())
}

async fn test(project: &Path, only: &[String], mutate: bool) -> Result<()> {
    let catalog = Arc::new(Catalog::load(project)?);
    let files = crate::testing::load(&catalog)?;
    let known = crate::testing::tested(&files);
    for name in only {
        if !known.contains(name) {
            return Err(CanonError::request(format!(
                "--only {name}: no test names `{name}` (tests name: {})",
                known.iter().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
    }
    if files.is_empty() {
        crate::console::print_line(format_args!(
            "no definition tests in {} (see README, \"Testing definitions\")",
            crate::testing::folder(&catalog).display()
        ))?;
        return Ok(());
    }
    let scratch = tempfile::tempdir().map_err(|e| CanonError::io(std::env::temp_dir(), e))?;
    // With --mutate every test runs first: the mutants run against all of
    // them, and a kill only counts from a test that passes as defined.
    let wanted = |t: &crate::testing::spec::TestSpec| {
        only.is_empty()
            || mutate
            || t.metric
                .as_ref()
                .or(t.reconciliation.as_ref())
                .is_some_and(|n| only.contains(n))
    };
    let outcomes =
        crate::testing::run(catalog.clone(), &files, &wanted, scratch.path(), None).await?;
    crate::console::print_out(crate::testing::render(&outcomes).as_bytes())?;
    let failed = outcomes.iter().filter(|o| !o.passed()).count();
    if failed > 0 {
        return Err(CanonError::Blocked(format!(
            "{failed} definition test(s) failed"
        )));
    }
    if mutate {
        crate::console::print_line(format_args!(
            "mutants (each exclusion dropped, each filter negated, in turn):"
        ))?;
        let mutants = crate::testing::mutate::run(catalog, &files, scratch.path()).await?;
        crate::console::print_out(crate::testing::mutate::render(&mutants).as_bytes())?;
        let survived = mutants.iter().filter(|m| m.killed_by.is_none()).count();
        if survived > 0 {
            return Err(CanonError::Blocked(format!(
                "{survived} mutant(s) survived: no test notices those rules being lost"
            )));
        }
    }
    Ok(())
}

async fn docs(
    project: &Path,
    out: &Path,
    publication: Option<&Path>,
    data: Option<&Path>,
) -> Result<()> {
    let catalog = Arc::new(Catalog::load(project)?);
    let root = data_root(&catalog, data);
    protect_out(&catalog, data, out)?;
    let default = project.join("published");
    let publication = publication.or_else(|| {
        default
            .join(crate::publish_dir::MARKER)
            .is_file()
            .then_some(default.as_path())
    });
    let data = if store_url(&root).is_some() {
        // The pages list a store's objects when it answers; an answer that
        // does not come is not a reason to leave the definitions unpublished.
        match data_source(&catalog, data).await {
            Ok(source) => source,
            Err(e) => {
                crate::console::say(format_args!(
                    "warning: the data root's objects are not listed: {e}"
                ));
                DataSource::Empty
            }
        }
    } else if root.is_dir() {
        DataSource::Folder(root)
    } else {
        DataSource::Empty
    };
    let engine = Engine::new(catalog, data)?;
    let pages = crate::docs::build(&engine, publication, out).await?;
    crate::console::print_line(format_args!(
        "wrote {pages} page(s) to {} (open {})",
        out.display(),
        out.join("index.html").display()
    ))?;
    Ok(())
}

async fn signoff(project: &Path, metrics: &[String], all: bool, by: &str) -> Result<()> {
    let catalog = Arc::new(Catalog::load(project)?);
    let names: Vec<String> = if all {
        // Every certified metric and reconciliation.
        let certified = crate::spec::MetricStatus::Certified;
        catalog
            .metrics
            .keys()
            .filter(|n| {
                catalog
                    .metric(n)
                    .is_ok_and(|(_, _, m)| m.status == certified)
            })
            .cloned()
            .chain(
                catalog
                    .reconciliations()
                    .filter(|r| r.status == certified)
                    .map(|r| r.name.clone()),
            )
            .collect()
    } else {
        metrics.to_vec()
    };
    // The wall clock, even under a pinned `clock` (the sample's extract
    // time says nothing of when anyone approved anything).
    for s in crate::lifecycle::sign(catalog.clone(), &names, by, chrono::Utc::now()).await? {
        crate::console::print_line(format_args!(
            "signed off {} v{} (closure {}) by {} at {}",
            s.metric,
            s.version,
            &s.closure_sha256[..12],
            s.by,
            s.at
        ))?;
    }
    crate::console::print_line(format_args!(
        "wrote {}",
        catalog.files.project.spec.signoffs
    ))?;
    Ok(())
}

async fn reconcile(project: &Path, args: &ReconcileArgs) -> Result<()> {
    let catalog = Arc::new(Catalog::load(project)?);
    let period = match (&args.period, &args.from, &args.to) {
        (Some(p), _, _) => catalog.calendar.parse_period(p)?,
        (None, Some(f), Some(t)) => catalog.calendar.parse_period(&format!("{f}..{t}"))?,
        _ => {
            return Err(CanonError::request(
                "say which period: --period FY2026-Q2 (whole accounting periods), or --from D --to D",
            ));
        }
    };
    check_out(&catalog, &args.data, args.out.as_deref())?;
    if let Some(out) = &args.out {
        crate::output::writable_file(out)?;
    }
    let format =
        crate::output::resolve("reconcile", args.format, args.out.as_deref(), EVERY_FORMAT)?;
    let engine = configured(catalog, &args.data).await?;
    let result = match crate::reconcile::run(&engine, &args.name, &period, args.detail).await {
        Ok(result) => result,
        Err(e) => {
            return Err(failure(&engine, e, |e| {
                crate::blame::in_reconciliation(&engine.catalog, &args.name, e)
            })
            .await);
        }
    };
    let bytes = crate::result::reconciliation::render(&result, format, args.detail)?;
    emit(&bytes, args.out.as_deref(), format)
}

async fn validate(
    project: &Path,
    data: &DataArgs,
    (no_data, deep, strict): (bool, bool, bool),
) -> Result<()> {
    let started = std::time::Instant::now();
    let catalog = Arc::new(Catalog::load(project)?);
    let root = (!no_data).then(|| data_root(&catalog, data.data.as_deref()));
    // The definition tests are checked (and named) with the definitions.
    let tested = crate::testing::tested(&crate::testing::load(&catalog)?);
    let report =
        crate::validate::validate(catalog, root.as_deref(), deep, (strict, &tested)).await?;
    crate::console::print_out(report.to_string().as_bytes())?;
    crate::console::print_line(format_args!(
        "loaded, checked and compiled in {:.1} ms",
        started.elapsed().as_secs_f64() * 1000.0
    ))?;
    Ok(())
}

/// Writes to `out` through a temporary file renamed into place, or to stdout.
fn emit(bytes: &[u8], out: Option<&Path>, format: Format) -> Result<()> {
    match out {
        Some(path) => crate::atomic::write_file(path, bytes),
        None => {
            if format == Format::Parquet {
                return Err(CanonError::request("--format parquet needs --out FILE"));
            }
            crate::console::print_out(bytes)
        }
    }
}

/// Runs a cluster process until it is stopped.
#[cfg(feature = "cluster")]
async fn cluster(role: &ClusterRole) -> Result<()> {
    match role {
        ClusterRole::Scheduler { bind } => crate::cluster::scheduler(*bind).await,
        ClusterRole::Executor {
            scheduler,
            bind,
            external_host,
            port,
            grpc_port,
            work_dir,
            cores,
            memory_limit,
        } => {
            if bind.is_ipv6() || scheduler.contains('[') || scheduler.matches(':').count() > 1 {
                return Err(CanonError::request(format!(
                    "--bind {bind} --scheduler {scheduler}: Ballista 55's executors register \
                     by IPv4 address or host name only; use those"
                )));
            }
            if scheduler.contains("://") {
                return Err(CanonError::request(format!(
                    "--scheduler {scheduler}: expected HOST:PORT, without a scheme"
                )));
            }
            if *port == 0 || *grpc_port == 0 {
                return Err(CanonError::request(
                    "--port and --grpc-port need fixed ports: the scheduler and the other \
                     executors connect to them",
                ));
            }
            if *cores == Some(0) {
                return Err(CanonError::request(
                    "--cores 0: an executor needs at least one task slot",
                ));
            }
            let memory_limit = match memory_limit {
                None => None,
                Some(text) => Some(crate::catalog::parse_bytes(text).ok_or_else(|| {
                    CanonError::request(format!(
                        "--memory-limit `{text}` is not a size: write it as 512MiB, 8GiB or 1500MB"
                    ))
                })? as u64),
            };
            let (host, port_text) = scheduler.rsplit_once(':').ok_or_else(|| {
                CanonError::request(format!("--scheduler {scheduler}: expected HOST:PORT"))
            })?;
            let scheduler_port = port_text
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| {
                    CanonError::request(format!(
                        "--scheduler {scheduler}: `{port_text}` is not a port number"
                    ))
                })?;
            std::fs::create_dir_all(work_dir).map_err(|e| CanonError::io(work_dir, e))?;
            crate::cluster::executor(crate::cluster::ExecutorPlace {
                bind: *bind,
                external_host: external_host.clone(),
                port: *port,
                grpc_port: *grpc_port,
                scheduler_host: host.to_string(),
                scheduler_port,
                work_dir: work_dir.display().to_string(),
                cores: cores
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
                memory_limit,
            })
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::colour;

    #[test]
    fn log_lines_are_coloured_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some("".into())));
        assert!(!colour(true, Some("1".into())));
        assert!(!colour(false, None));
        assert!(!colour(false, Some("".into())));
    }
}
