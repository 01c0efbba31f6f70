//! The bad-input corpus (issue 14): what a careful but hostile user can do
//! to a copy of the sample project, each case run through the real binary.
//!
//! A case is declarative: a name, a family (yaml, expressions, data,
//! requests, filesystem), a setup (the sample definitions, with
//! `sample_data/` when it reads the extracts, then mutations: replace text,
//! write, delete, truncate or corrupt a Parquet file, rewrite its rows, make
//! a link, chmod, or a preparatory canon run), a command line run in the
//! project copy, and the exit code. What canon printed on stderr (and stdout
//! where it matters) is a reviewed insta snapshot in
//! `tests/hostile/snapshots/<name>.snap`, with the case folder written
//! `[CASE]` (the project is `[CASE]/project`), durations `[T]` and ANSI
//! escapes removed. Beyond the snapshot every case must end within the
//! timeout (`HOSTILE_TIMEOUT`, 20 s, three times that for a case marked
//! `slow()`; the child is killed, never waited for), without a signal or a
//! panic, with its declared exit code.
//!
//! The cases run in parallel (`HOSTILE_JOBS`, default twice the cores: a case mostly waits on its child),
//! and `HOSTILE_CASE=substring` runs only the matching ones.
//!
//! A case marked `pending(…)` is one issue 14 fixes in another item: it is
//! skipped with a note. `HOSTILE_PENDING=1` runs the pending cases too and
//! prints how each one ends today, without asserting anything; flip a case
//! by deleting its `pending(…)`, run with `INSTA_UPDATE=always`, and review
//! the new snapshot.
//!
//! Adding a case: add it to its family's file under tests/hostile/, run
//! `INSTA_UPDATE=always HOSTILE_CASE=its_name cargo test --test hostile`,
//! and read the new `.snap`: it must read as a clear, located message.

mod common;
#[path = "hostile/data.rs"]
mod data;
#[path = "hostile/expressions.rs"]
mod expressions;
#[path = "hostile/filesystem.rs"]
mod filesystem;
#[path = "hostile/harness.rs"]
mod harness;
#[path = "hostile/requests.rs"]
mod requests;
#[path = "hostile/yaml.rs"]
mod yaml;

use harness::{Case, FAMILIES, problems, render, run_all, summary};

fn corpus() -> Vec<Case> {
    let mut all = Vec::new();
    all.extend(yaml::cases());
    all.extend(expressions::cases());
    all.extend(data::cases());
    all.extend(requests::cases());
    all.extend(filesystem::cases());
    all
}

/// The corpus holds what issue 14 asks of it: at least 60 cases that run
/// (pending ones aside), at least 8 per family, unique names, each with a
/// command line and an exit code, and every hostile input the issue lists
/// present by name.
#[test]
fn the_corpus_is_complete() {
    let all = corpus();
    let running = |c: &&Case| c.pending.is_none();
    let n = all.iter().filter(running).count();
    assert!(n >= 60, "{n} cases run");
    for family in FAMILIES {
        let n = all
            .iter()
            .filter(running)
            .filter(|c| c.family == family)
            .count();
        assert!(n >= 8, "{family:?} has {n} cases that run");
    }
    let mut names: Vec<_> = all.iter().map(|c| c.name).collect();
    names.sort();
    for pair in names.windows(2) {
        assert_ne!(pair[0], pair[1], "two cases are named {}", pair[0]);
    }
    for c in &all {
        assert!(!c.args.is_empty(), "{} has no command line", c.name);
        assert!(c.exit >= 0, "{} has no expected exit code", c.name);
        assert!(
            c.name
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_'),
            "{}: names are snake_case (they name the snapshot files)",
            c.name
        );
    }
    // Every reviewed snapshot belongs to a case that runs: a renamed or
    // removed case leaves no stale snapshot behind.
    let dir = common::repo().join("tests/hostile/snapshots");
    for entry in std::fs::read_dir(&dir).into_iter().flatten() {
        let file = entry.unwrap().file_name().to_string_lossy().into_owned();
        let Some(name) = file.strip_suffix(".snap") else {
            continue;
        };
        assert!(
            all.iter().any(|c| c.name == name && c.pending.is_none()),
            "{file} belongs to no case that runs: remove it"
        );
    }
    // Each input issue 14 lists, by the name of its case.
    for name in [
        "symlink_loop_in_table_folder",
        "source_path_escapes_the_data_root",
        "filter_of_ten_thousand_terms",
        "filter_of_ten_thousand_or_terms",
        "yaml_brackets_nested_100000_deep",
        "yaml_maps_nested_100000_deep",
        "daily_bookings_over_ten_thousand_years",
        "daily_open_pipeline_over_a_year",
        "corrupt_page_with_intact_footer_in_query",
        "corrupt_page_with_intact_footer_in_validate_deep",
        "random_in_a_filter",
        "division_by_zero_names_the_metric",
        "failed_cast_names_the_metric",
        "publish_failure_names_the_metric",
        "duplicate_slice_in_by",
        "non_utf8_bytes_are_located",
        "bad_reporting_zone",
        "bad_fiscal_year_start_month",
        "check_format_csv",
        "warn_lines_carry_no_colour",
        "base_currency_xxx",
        "subquery_over_values_in_a_filter",
        "subquery_over_range_in_a_filter",
    ] {
        assert!(
            all.iter().any(|c| c.name == name),
            "issue 14's `{name}` is not in the corpus"
        );
    }
}

/// Every case of the corpus through the real binary, in parallel; every
/// failure is reported at the end, not the first only.
#[test]
fn hostile_inputs() {
    let all = corpus();
    let only = std::env::var("HOSTILE_CASE").ok();
    let with_pending = std::env::var("HOSTILE_PENDING").is_ok_and(|v| v == "1");
    let selected: Vec<&Case> = all
        .iter()
        .filter(|c| only.as_deref().is_none_or(|o| c.name.contains(o)))
        .filter(|c| {
            if let Some(why) = c.pending
                && !with_pending
            {
                eprintln!("pending (skipped): {} — {why}", c.name);
                return false;
            }
            true
        })
        .collect();
    let jobs = std::env::var("HOSTILE_JOBS")
        .ok()
        .and_then(|j| j.parse().ok())
        .unwrap_or_else(|| 2 * std::thread::available_parallelism().map_or(2, |n| n.get()));
    let outcomes = run_all(&selected, jobs);
    let mut slowest: Vec<_> = selected.iter().zip(&outcomes).collect();
    slowest.sort_by_key(|(_, o)| std::cmp::Reverse(o.elapsed));
    for (case, outcome) in slowest.iter().take(5) {
        eprintln!("slow: {} {:.1} s", case.name, outcome.elapsed.as_secs_f64());
    }

    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("hostile/snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    let mut failures = Vec::new();
    for (case, outcome) in selected.iter().zip(&outcomes) {
        let rendered = render(case, outcome);
        if case.pending.is_some() {
            eprintln!(
                "pending {} ({:?}, {:.1} s):\n{}",
                case.name,
                case.family,
                outcome.elapsed.as_secs_f64(),
                rendered
                    .lines()
                    .take(12)
                    .map(|l| format!("  | {l}\n"))
                    .collect::<String>()
            );
            continue;
        }
        for p in problems(case, outcome) {
            failures.push(format!("{}: {p}\n{rendered}", case.name));
        }
        settings.set_description(summary(case));
        let snapshot = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            settings.bind(|| insta::assert_snapshot!(case.name, rendered));
        }));
        if snapshot.is_err() {
            failures.push(format!("{}: the snapshot differs (see above)", case.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
