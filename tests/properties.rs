//! Property tests of what reads definitions: the YAML loader, the catalog's
//! checks and the expression compiler, over generated documents and
//! expressions and over mutations of the sample's own files. The property is
//! the same everywhere: an answer or a located error, never a panic, an
//! abort or a hang (the limits of `spec::limits` and `compile::limits` are
//! what make that true for hostile sizes and depths).
//!
//! A short run is part of `cargo test`. The long run (docs/testing.md):
//! `CANON_PROPTEST_CASES=1000000 cargo test --test properties`
//! runs a million cases of each cheap property, and a tenth or a hundredth
//! of that of the costly ones.
//! Each property runs on a thread with the binary's own stack size, so a
//! depth the binary survives is what is tested.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use canon::catalog::Catalog;
use canon::error::CanonError;
use canon::spec::load::{ProjectFiles, load_project, parse_definition};
use canon::spec::{MetricFileSpec, ModelFileSpec, ProjectSpec};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Cases per property: `CANON_PROPTEST_CASES` divided by `share` (a
/// property that validates a whole project costs a hundred cheap ones), or
/// `default` (a property's short run, sized to its cost in a debug build).
fn cases(default: u32, share: u32) -> u32 {
    std::env::var("CANON_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .map_or(default, |n| (n / share).max(1))
}

/// Runs `property` over the strategy `make` builds, on a thread with the
/// binary's stack.
fn check<S>(
    (default_cases, share): (u32, u32),
    make: fn() -> S,
    property: fn(S::Value) -> Result<(), TestCaseError>,
) where
    S: Strategy + 'static,
    S::Value: std::fmt::Debug,
{
    let cases = cases(default_cases, share);
    std::thread::Builder::new()
        .stack_size(canon::cli::MAIN_STACK_BYTES)
        .spawn(move || {
            let strategy = make();
            let mut runner = TestRunner::new(Config {
                cases,
                failure_persistence: None,
                ..Config::default()
            });
            if let Err(e) = runner.run(&strategy, property) {
                panic!("{e}");
            }
        })
        .unwrap()
        .join()
        .unwrap();
}

/// Bits of YAML that matter to a parser: indicators, brackets, anchors,
/// quotes, block scalars, tabs, a byte order mark, a multi-byte letter.
const YAML_BITS: &[&str] = &[
    "[",
    "]",
    "{",
    "}",
    "a: ",
    "- ",
    "? ",
    ": ",
    ", ",
    "\n",
    "  ",
    "\t",
    "'",
    "\"",
    "&x ",
    "*x",
    "| \n",
    "> \n",
    "#",
    "---\n",
    "...\n",
    "!!str ",
    "~",
    "null",
    "é",
    "\u{feff}",
    "metrics:",
    "name: bookings",
    "kind: simple",
    "filter: ",
    "\\",
    "%YAML 1.2\n",
    "<<: *x",
];

fn yaml_text() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(YAML_BITS), 0..200).prop_map(|bits| bits.concat())
}

/// A parse that fails says where, inside the text (or at its end).
fn located_inside(text: &[u8], (line, column): (usize, usize)) -> Result<(), TestCaseError> {
    let lines = text.split(|b| *b == b'\n').count();
    prop_assert!(line >= 1 && line <= lines + 1, "line {line} of {lines}");
    prop_assert!(column >= 1, "column {column}");
    Ok(())
}

fn parses_or_is_located(bytes: Vec<u8>) -> Result<(), TestCaseError> {
    let path = PathBuf::from("metrics/generated.yaml");
    if let Err(d) = parse_definition::<MetricFileSpec>(path.clone(), bytes.clone()) {
        located_inside(&bytes, d.location.line_column())?;
        prop_assert!(!d.message.is_empty());
    }
    if let Err(d) = parse_definition::<ModelFileSpec>(path.clone(), bytes.clone()) {
        located_inside(&bytes, d.location.line_column())?;
    }
    if let Err(d) = parse_definition::<ProjectSpec>(path, bytes.clone()) {
        located_inside(&bytes, d.location.line_column())?;
    }
    Ok(())
}

#[test]
fn the_loader_reads_any_bytes_without_panicking() {
    check(
        (256, 1),
        || prop::collection::vec(any::<u8>(), 0..512),
        parses_or_is_located,
    );
}

#[test]
fn the_loader_reads_generated_yaml_without_panicking() {
    check((512, 1), yaml_text, |text| {
        parses_or_is_located(text.into_bytes())
    });
}

#[test]
fn the_loader_refuses_deep_nesting_quickly() {
    // Depths around the limit and far past it, in flow and block style.
    let strategy = || {
        (
            1usize..3_000,
            prop::sample::select(&["[", "{a: ", "- "][..]),
        )
    };
    check((64, 10), strategy, |(depth, open)| {
        let mut text = String::from("domain: x\ndescription: ");
        for i in 0..depth {
            match open {
                "- " => {
                    text.push('\n');
                    text.push_str(&" ".repeat(i + 1));
                    text.push_str("- ");
                }
                other => text.push_str(other),
            }
        }
        let close = match open {
            "[" => "]",
            "{a: " => "}",
            _ => "",
        };
        text.push_str(&close.repeat(depth));
        let started = std::time::Instant::now();
        let result = parse_definition::<MetricFileSpec>(PathBuf::from("m.yaml"), text.into_bytes());
        // Generous for a debug build on a loaded machine; 100,000 levels
        // took 52 s before the limit.
        prop_assert!(started.elapsed().as_secs() < 5);
        if depth > 70
            && let Err(d) = &result
        {
            prop_assert!(d.message.contains("levels"), "{}", d.message);
        }
        Ok(())
    });
}

/// The sample project's files as written.
fn sample() -> &'static ProjectFiles {
    static FILES: OnceLock<ProjectFiles> = OnceLock::new();
    FILES.get_or_init(|| load_project(&repo()).expect("the sample project loads"))
}

/// One of the sample's definition files: its path relative to the project
/// and its bytes.
fn sample_texts() -> Vec<(PathBuf, Vec<u8>)> {
    let files = sample();
    let mut out = vec![(files.project.display_path.clone(), Vec::new())];
    out.extend(
        files
            .models
            .iter()
            .map(|f| (f.display_path.clone(), Vec::new())),
    );
    out.extend(
        files
            .metrics
            .iter()
            .map(|f| (f.display_path.clone(), Vec::new())),
    );
    for (path, bytes) in &mut out {
        *bytes = std::fs::read(repo().join(&*path)).unwrap();
    }
    out
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Drop the bytes in a span (positions as fractions of the length).
    Delete(f64, u8),
    /// Insert a bit of YAML or SQL.
    Insert(f64, &'static str),
    /// Repeat a line.
    DuplicateLine(f64),
    /// Swap a line with the next.
    SwapLines(f64),
}

/// Bits a reviewer's slip or a hostile edit might leave in a definition.
const EDIT_BITS: &[&str] = &[
    "\n",
    " ",
    "- ",
    ": ",
    "[",
    "]",
    "{",
    "}",
    "'",
    "\"",
    "#",
    "(",
    ")",
    " AND ",
    " OR ",
    "NOT ",
    "random()",
    "now()",
    "sum(amount)",
    "(SELECT 1)",
    "amount",
    "is_won",
    "1/0",
    "NULL",
    "é",
    "\t",
    "&x",
    "*x",
    "kind: ratio",
    "kind: derived",
    "kind: snapshot",
    "kind: cohort",
    "status: certified",
    "version: -1",
    "scale: 40",
    "entity: deal",
    "entity: nothing",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (0.0..1.0f64, 1u8..40).prop_map(|(at, n)| Mutation::Delete(at, n)),
        (0.0..1.0f64, prop::sample::select(EDIT_BITS)).prop_map(|(at, s)| Mutation::Insert(at, s)),
        (0.0..1.0f64).prop_map(Mutation::DuplicateLine),
        (0.0..1.0f64).prop_map(Mutation::SwapLines),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let at = |f: f64, len: usize| ((f * len as f64) as usize).min(len);
    match m {
        Mutation::Delete(f, n) => {
            let start = at(*f, bytes.len());
            let end = (start + *n as usize).min(bytes.len());
            bytes.drain(start..end);
        }
        Mutation::Insert(f, s) => {
            let i = at(*f, bytes.len());
            bytes.splice(i..i, s.bytes());
        }
        Mutation::DuplicateLine(f) | Mutation::SwapLines(f) => {
            let mut lines: Vec<Vec<u8>> =
                bytes.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
            let i = at(*f, lines.len().saturating_sub(1));
            if let Mutation::DuplicateLine(_) = m {
                let line = lines[i].clone();
                lines.insert(i, line);
            } else if i + 1 < lines.len() {
                lines.swap(i, i + 1);
            }
            *bytes = lines.join(&b'\n');
        }
    }
}

/// The sample with one file mutated, loaded, checked by the catalog and
/// validated without data: a result or a located error, never a panic.
fn mutated_sample_validates_or_is_located(
    (file, mutations): (usize, Vec<Mutation>),
) -> Result<(), TestCaseError> {
    let texts = sample_texts();
    let (path, mut bytes) = texts[file % texts.len()].clone();
    for m in &mutations {
        apply(&mut bytes, m);
    }
    let mut files = sample().clone();
    let is = |p: &Path| p == path;
    if is(&files.project.display_path) {
        match parse_definition::<ProjectSpec>(path.clone(), bytes) {
            Ok(f) => files.project = f,
            Err(_) => return Ok(()),
        }
    } else if let Some(slot) = files.models.iter_mut().find(|f| is(&f.display_path)) {
        match parse_definition::<ModelFileSpec>(path.clone(), bytes) {
            Ok(f) => *slot = f,
            Err(_) => return Ok(()),
        }
    } else if let Some(slot) = files.metrics.iter_mut().find(|f| is(&f.display_path)) {
        match parse_definition::<MetricFileSpec>(path.clone(), bytes) {
            Ok(f) => *slot = f,
            Err(_) => return Ok(()),
        }
    }
    let catalog = match Catalog::build(files) {
        Ok(c) => Arc::new(c),
        Err(e) => return definition_error(e),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    match runtime.block_on(canon::validate::validate(
        catalog,
        None,
        false,
        (false, &Default::default()),
    )) {
        Ok(_) => Ok(()),
        Err(e) => definition_error(e),
    }
}

/// A definition error names a file, line and column; anything else is the
/// request's (a message, not a panic).
fn definition_error(e: CanonError) -> Result<(), TestCaseError> {
    if let CanonError::Definition(diagnostics) = &e {
        prop_assert!(!diagnostics.is_empty());
        for d in diagnostics {
            let (line, column) = d.location.line_column();
            prop_assert!(line >= 1 && column >= 1, "{e}");
        }
    }
    prop_assert!(!e.to_string().is_empty());
    Ok(())
}

#[test]
fn mutations_of_the_sample_validate_or_are_located() {
    let strategy = || (0usize..64, prop::collection::vec(mutation(), 1..4));
    check((24, 100), strategy, mutated_sample_validates_or_is_located);
}

/// A validation engine over the sample, and the deal entity's schema.
fn deal_schema() -> &'static (canon::run::Engine, datafusion::common::DFSchema) {
    static ENGINE: OnceLock<(canon::run::Engine, datafusion::common::DFSchema)> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let catalog = Arc::new(Catalog::build(sample().clone()).unwrap());
        let engine = canon::run::Engine::new(catalog, canon::run::DataSource::Empty).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let frame = runtime
            .block_on(canon::compile::entity::entity_frame(&engine, "deal"))
            .unwrap();
        let schema = frame.schema().clone();
        (engine, schema)
    })
}

const COLUMNS: &[&str] = &[
    "amount",
    "is_won",
    "deal_type",
    "close_date",
    "name",
    "deal_id",
    "currency",
    "nothing",
];
const LITERALS: &[&str] = &[
    "1",
    "0",
    "-1",
    "1.5",
    "'x'",
    "''",
    "NULL",
    "TRUE",
    "DATE '2025-01-01'",
    "99999999999999999999999",
];

/// Generated SQL: columns, literals, operators, functions (deterministic or
/// not, scalar or aggregate), subqueries, casts and cases, nested.
fn sql() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        prop::sample::select(COLUMNS).prop_map(str::to_string),
        prop::sample::select(LITERALS).prop_map(str::to_string),
    ];
    leaf.prop_recursive(6, 64, 4, |inner| {
        prop_oneof![
            (
                inner.clone(),
                prop::sample::select(
                    &[
                        "+", "-", "*", "/", "%", "=", "<>", "<", ">=", "AND", "OR", "||", "LIKE"
                    ][..]
                ),
                inner.clone()
            )
                .prop_map(|(a, op, b)| format!("{a} {op} {b}")),
            inner.clone().prop_map(|a| format!("NOT {a}")),
            inner.clone().prop_map(|a| format!("({a})")),
            inner.clone().prop_map(|a| format!("{a} IS NULL")),
            (
                prop::sample::select(
                    &[
                        "lower",
                        "upper",
                        "abs",
                        "length",
                        "coalesce",
                        "random",
                        "now",
                        "sum",
                        "count",
                        "max",
                        "row_number",
                        "local_date",
                        "url_domain",
                        "nullif",
                        "date_trunc",
                        "no_such_function",
                    ][..]
                ),
                prop::collection::vec(inner.clone(), 0..3)
            )
                .prop_map(|(f, args)| format!("{f}({})", args.join(", "))),
            (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(a, b, c)| format!("CASE WHEN {a} THEN {b} ELSE {c} END")),
            inner.clone().prop_map(|a| format!("CAST({a} AS INT)")),
            inner.clone().prop_map(|a| format!("{a} IN (SELECT 1)")),
            inner
                .clone()
                .prop_map(|a| format!("{a} AND EXISTS (SELECT 1 FROM range(3))")),
            (inner.clone(), prop::collection::vec(inner, 1..4))
                .prop_map(|(a, list)| format!("{a} IN ({})", list.join(", "))),
        ]
    })
}

/// Long chains and deep brackets, around and far past the limits.
fn big_sql() -> impl Strategy<Value = String> {
    prop_oneof![
        (
            0usize..6_000,
            prop::sample::select(&[" + 1", " OR is_won", " AND amount > 0", "+1"][..])
        )
            .prop_map(|(n, term)| format!("amount > 0{}", term.repeat(n))),
        (0usize..200).prop_map(|n| format!("{}is_won{}", "(".repeat(n), ")".repeat(n))),
        (0usize..200).prop_map(|n| format!("{}is_won", "NOT ".repeat(n))),
        (0usize..200).prop_map(|n| format!("{}1{} > 0", "abs(".repeat(n), ")".repeat(n))),
    ]
}

fn compiles_or_is_located(sql: String) -> Result<(), TestCaseError> {
    let (engine, schema) = deal_schema();
    let location = canon::error::Location::new(PathBuf::from("metrics/sales.yaml"), 7, 13);
    match canon::compile::parse_expr(engine, &sql, schema, &location) {
        Ok(expr) => {
            // What compiles is within the limits, scalar and deterministic.
            prop_assert!(
                canon::compile::limits::text_problem(&sql, &canon::compile::limits::GOVERNED)
                    .is_none()
            );
            prop_assert_eq!(canon::compile::limits::meaning_problem(&expr), None);
        }
        Err(CanonError::Definition(d)) => {
            prop_assert_eq!(d.len(), 1);
            prop_assert_eq!(d[0].location.line_column(), (7, 13));
        }
        Err(other) => prop_assert!(false, "not a located definition error: {other}"),
    }
    Ok(())
}

#[test]
fn generated_expressions_compile_or_are_located() {
    check((512, 1), sql, compiles_or_is_located);
}

#[test]
fn long_and_deep_expressions_compile_or_are_located() {
    check((64, 10), big_sql, compiles_or_is_located);
}
