//! The command line's words: every command, flag and argument as clap
//! reads them, with their help. What each command does is in the module
//! above (one function per command, each a thin call into the library).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::result::render::Format;

#[derive(Debug, Parser)]
#[command(
    name = "canon",
    version,
    about = "Governed metrics: one reviewed definition per metric, computed the same way every time, with its evidence.",
    long_about = None,
    after_help = "Exit codes: 0 success (warnings on stderr); 1 a problem in the definitions \
        (file:line:column) or the data (system/table, file, column), a metric blocked by a \
        quality gate (publish: after writing a publication holding blocked results), or a file \
        that cannot be read or written; 2 a bad request (an unknown \
        name, a period or flag that does not parse, a refused --out, no canon.yaml); 130 or 143 \
        stopped by Ctrl-C or SIGTERM (on a cluster, after asking it to cancel the run's jobs)."
)]
pub struct Cli {
    /// The project folder (holding canon.yaml).
    #[arg(long, global = true, env = "CANON_PROJECT", default_value = ".")]
    pub project: PathBuf,
    /// Show progress and engine details on stderr.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check every model and metric, and the extracts against the models.
    Validate {
        #[command(flatten)]
        data: DataArgs,
        /// Check the definitions only, without reading the extracts.
        #[arg(long)]
        no_data: bool,
        /// Also decode every column of every row group of every file (reads
        /// all the data; without it only each file's footer is read, which
        /// cannot see a damaged page). Each failure names system/table, file,
        /// column and row group.
        #[arg(long, conflicts_with = "no_data")]
        deep: bool,
        /// Governance warnings are errors: a certified metric whose sign-off
        /// is stale or missing (for CI on the definitions' repository).
        #[arg(long)]
        strict: bool,
    },
    /// List the metric catalog.
    List,
    /// Compute metrics for a period and print the governed result.
    Query(QueryArgs),
    /// Show the logical, optimized and physical plans of a metric.
    Explain {
        #[command(flatten)]
        query: QueryArgs,
        /// Also run each plan and show the physical plan with what every
        /// operator did (rows, time, memory): where a slow metric spends.
        #[arg(long)]
        analyze: bool,
    },
    /// Draw what a metric is made of: the metrics it is computed from, its
    /// exclusions, the entities and identity rules, the source tables,
    /// columns and files it reads (Mermaid, Graphviz DOT or JSON).
    Lineage(LineageArgs),
    /// Record that a metric's definition as it is now was approved: its
    /// version and the sha256 of its closure (the metric, its exclusions,
    /// the entities, sources and settings it reads) go into signoffs.yaml.
    Signoff {
        /// The metrics approved (see `canon list`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        metrics: Vec<String>,
        /// Every certified metric.
        #[arg(long)]
        all: bool,
        /// Who approves (a person, or a review such as `RevOps review 2026-12`).
        #[arg(long)]
        by: String,
    },
    /// Run the definition tests of `<metrics>/tests/*.yaml`: fixture
    /// companies and the values their metrics must give, worked by hand.
    /// Exits 1 when a test fails.
    Test {
        /// Only the tests of these metrics or reconciliations.
        #[arg(long = "only", value_name = "NAME")]
        only: Vec<String>,
        /// Also drop each exclusion and negate each filter of every certified
        /// metric in turn: some test must fail each time (exits 1 when a
        /// change survives).
        #[arg(long)]
        mutate: bool,
    },
    /// What a change to the definitions does to the numbers: the metrics
    /// whose definition closure changed, their numbers before and after on
    /// the same data, per exclusion, and a waterfall per changed element.
    /// Exits 1 when a certified metric changed without a version bump or a
    /// new sign-off.
    Diff {
        /// A git revision or a project folder to compare with (default: the
        /// merge-base of HEAD with main).
        #[arg(long)]
        base: Option<String>,
        /// Periods to compute (repeatable; default canon.yaml's publish.periods).
        #[arg(long = "period")]
        periods: Vec<String>,
        /// Data root both sides are computed over (default: canon.yaml's data_root).
        #[arg(long, env = "CANON_DATA")]
        data: Option<PathBuf>,
        /// Compute both sides even when gate GATE fails on TABLE
        /// (`system/table` or `*`), e.g. `--allow
        /// conversion_window:marketing/lifecycle_stage_history` to compare
        /// counts to date of quarters whose window is open; repeatable. The
        /// review says so.
        #[arg(long = "allow", value_name = "GATE:TABLE")]
        allow: Vec<String>,
        /// md (default: a review comment) or json.
        #[arg(long, value_enum, default_value = "md")]
        format: DiffFormat,
        /// Write to this file (atomically) instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// How a published number changed between publications, and whether
    /// its definition or its data moved it (the publication's history).
    History {
        /// The metric (see `canon list`).
        metric: String,
        /// The published period (FY2026-Q1, 2025-03, …).
        #[arg(long)]
        period: String,
        /// The publication folder (default: `published` in the project).
        #[arg(long)]
        publication: Option<PathBuf>,
    },
    /// Write the catalog as a static site (no server, no network): per metric
    /// its definition, sign-off, exclusions with their latest tallies, lineage
    /// diagram, last 8 published periods and input quality; an index with search.
    Docs {
        /// The folder to write (new, empty, or an earlier site).
        #[arg(long)]
        out: PathBuf,
        /// A publication (`canon publish --out`) whose numbers the pages show
        /// (default: `published` in the project, when it is one).
        #[arg(long)]
        publication: Option<PathBuf>,
        /// Data root whose files the lineage lists (default: canon.yaml's data_root).
        #[arg(long, env = "CANON_DATA")]
        data: Option<PathBuf>,
    },
    /// Bridge one governed quantity to another (bookings to recognized revenue).
    Reconcile(ReconcileArgs),
    /// Run the data-quality checks over every model: freshness, primary keys,
    /// completeness, cross-system match rates. Exits 1 when a check is at error.
    Check {
        #[command(flatten)]
        data: DataArgs,
        /// table (default) or json.
        #[arg(long, value_enum)]
        format: Option<Format>,
    },
    /// Compute every certified metric and reconciliation for the configured
    /// periods and publish them (Parquet, CSV, manifest.json) atomically.
    Publish {
        /// The folder BI tools read; replaced as a whole on success.
        #[arg(long)]
        out: PathBuf,
        /// Periods (repeatable); default: `publish.periods` of canon.yaml.
        #[arg(long = "period")]
        periods: Vec<String>,
        /// Publish only these metrics and reconciliations (repeatable).
        #[arg(long = "only")]
        only: Vec<String>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Run ad-hoc SQL over the extracts (`SELECT … FROM crm.opportunity`):
    /// ungoverned, no checks or exclusions; prints tab-separated rows.
    Sql {
        /// The query; or --file.
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        sql: Option<String>,
        /// Read the query from this file.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Data root (default: canon.yaml's data_root).
        #[arg(long, env = "CANON_DATA")]
        data: Option<PathBuf>,
        /// Override canon.yaml's engine.memory_limit (`4GiB`, or `none`).
        #[arg(long)]
        memory_limit: Option<String>,
    },
    /// Generate the deterministic sample company's extracts.
    Sample {
        /// Folder to write `<system>/<table>/*.parquet` into.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Multiplies row counts (1 ≈ 500 accounts, 5,000 deals).
        #[arg(long, default_value_t = 1)]
        scale: u32,
    },
    /// Run a Ballista scheduler or executor that knows canon's functions
    /// and codecs (a build with the `cluster` feature).
    #[cfg(feature = "cluster")]
    Cluster {
        #[command(subcommand)]
        role: ClusterRole,
    },
}

/// The processes of a canon cluster.
#[cfg(feature = "cluster")]
#[derive(Debug, Subcommand)]
pub enum ClusterRole {
    /// The scheduler clients send plans to (`--cluster df://HOST:PORT`).
    Scheduler {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:50050")]
        bind: std::net::SocketAddr,
    },
    /// An executor that runs the stages its scheduler gives it.
    Executor {
        /// The scheduler to serve, as HOST:PORT (a name or an address).
        #[arg(long, default_value = "127.0.0.1:50050")]
        scheduler: String,
        /// Address to listen on (0.0.0.0 to serve other machines).
        #[arg(long, default_value = "127.0.0.1")]
        bind: std::net::IpAddr,
        /// The name or address the scheduler and other executors reach this
        /// one by (default: the address the scheduler sees it connect from;
        /// set it behind NAT or in containers).
        #[arg(long)]
        external_host: Option<String>,
        /// Port of its Arrow Flight service (shuffle reads).
        #[arg(long, default_value_t = 50051)]
        port: u16,
        /// Port of its gRPC service.
        #[arg(long, default_value_t = 50052)]
        grpc_port: u16,
        /// Folder for shuffle files.
        #[arg(long)]
        work_dir: PathBuf,
        /// Tasks run at once (default: the machine's cores).
        #[arg(long)]
        cores: Option<usize>,
        /// Memory its tasks share before they spill to the work folder
        /// (`8GiB`), split evenly among the task slots (default: 70% of the
        /// machine's or the container's memory).
        #[arg(long)]
        memory_limit: Option<String>,
    },
}

#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// Data root holding `<system>/<table>/*.parquet` (default: canon.yaml's data_root).
    #[arg(long, env = "CANON_DATA")]
    pub data: Option<PathBuf>,
    /// Judge freshness as of this instant (RFC 3339), instead of canon.yaml's
    /// pinned clock or the wall clock.
    #[arg(long)]
    pub now: Option<String>,
    /// Compute a metric even when its inputs fail a quality gate; the
    /// override is recorded in the result.
    #[arg(long)]
    pub allow_stale: bool,
    /// Compute a metric even when gate GATE fails on TABLE (`system/table`
    /// or `*`), e.g. `--allow uniqueness:crm/opportunity`; repeatable. Each
    /// override used is recorded in the result and the publish manifest.
    #[arg(long = "allow", value_name = "GATE:TABLE")]
    pub allow: Vec<String>,
    /// Compute every result afresh: neither read nor write the result cache
    /// (nor the closure hashes sign-offs are judged against).
    #[arg(long, env = "CANON_NO_CACHE", value_parser = clap::builder::FalseyValueParser::new())]
    pub no_cache: bool,
    /// The result cache folder (default: canon.yaml's cache_dir, else
    /// `.canon-cache` in the project).
    #[arg(long, env = "CANON_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Run the plans on the Ballista cluster whose scheduler is at this
    /// address (`df://HOST:PORT`); the data root must be in an object store
    /// the executors can read. Needs a build with the `cluster` feature.
    #[arg(long, env = "CANON_CLUSTER", value_name = "df://HOST:PORT")]
    pub cluster: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct LineageArgs {
    /// The metric (see `canon list`).
    pub metric: String,
    /// mermaid (a Markdown page or review comment renders it), dot
    /// (Graphviz) or json.
    #[arg(long, value_enum, default_value = "mermaid")]
    pub format: LineageFormat,
    /// The period the metric is planned for (default: the current month).
    /// What it reads does not depend on the period; a fiscal period may add
    /// the accounting calendar.
    #[arg(long, conflicts_with = "as_of")]
    pub period: Option<String>,
    /// Plan a snapshot as of the end of this day instead.
    #[arg(long = "as-of")]
    pub as_of: Option<String>,
    /// Approved slices, comma separated: the columns they read are shown too.
    #[arg(long, value_delimiter = ',')]
    pub by: Vec<String>,
    /// Data root whose files are listed (default: canon.yaml's data_root).
    /// Without one the graph stops at the columns, and says so.
    #[arg(long, env = "CANON_DATA")]
    pub data: Option<PathBuf>,
    /// Write to this file (atomically) instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// How `canon diff` writes its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DiffFormat {
    Md,
    Json,
}

/// How `canon lineage` draws its graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LineageFormat {
    Mermaid,
    Dot,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct ReconcileArgs {
    /// The reconciliation (e.g. bookings_to_revenue).
    pub name: String,
    /// Whole accounting periods: 2025-03, FY2026-Q2, FY2026, or a range.
    #[arg(long, conflicts_with_all = ["from", "to"])]
    pub period: Option<String>,
    #[arg(long, requires = "to")]
    pub from: Option<String>,
    #[arg(long, requires = "from")]
    pub to: Option<String>,
    /// Show (or write) the deals and revenue lines behind every bridge line.
    #[arg(long)]
    pub detail: bool,
    #[command(flatten)]
    pub data: DataArgs,
    /// Default: table, or the format --out's extension names (.json, .csv,
    /// .parquet); parquet only with --out.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Write to this file (atomically) instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct QueryArgs {
    /// Metric names (see `canon list`).
    #[arg(required = true)]
    pub metrics: Vec<String>,
    /// 2025-03, 2025, 2025-Q1, FY2026, FY2026-Q1, 2025-03-14 or 2025-02-01..2025-05-01.
    #[arg(long, conflicts_with_all = ["from", "to"])]
    pub period: Option<String>,
    /// First day of the period (inclusive), with --to.
    #[arg(long, requires = "to")]
    pub from: Option<String>,
    /// Day after the period (exclusive), with --from.
    #[arg(long, requires = "from")]
    pub to: Option<String>,
    /// A snapshot metric as of the end of this day (reporting zone).
    #[arg(long = "as-of", conflicts_with_all = ["period", "from", "to", "grain"])]
    pub as_of: Option<String>,
    /// Break the period into day, month, quarter, year, fiscal_quarter or fiscal_year
    /// (a snapshot metric is taken at the end of each).
    #[arg(long)]
    pub grain: Option<String>,
    /// Approved slices, comma separated.
    #[arg(long, value_delimiter = ',')]
    pub by: Vec<String>,
    #[command(flatten)]
    pub data: DataArgs,
    /// Default: table, or the format --out's extension names (.json, .csv,
    /// .parquet); parquet only with --out.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Write to this file (atomically) instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
}
