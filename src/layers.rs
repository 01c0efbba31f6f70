//! The direction of the code, checked: every module of the library has a
//! layer, and a file may name (`crate::…`, `super::…`) only modules of lower
//! layers and its own. So an import that runs back up, and with it an
//! import circle, fails `cargo test` the day it is written, naming the file
//! and the path. docs/architecture.md draws the same picture.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Each module's layer, top (the command line) to bottom (the types every
/// stage shares). Modules of one layer may not name each other.
const LAYERS: &[(&str, u32)] = &[
    // The command line.
    ("cli", 90),
    // Orchestration: the commands, each over the stages below.
    ("publish", 80),
    ("reconcile", 70),
    ("query", 60),
    ("validate", 60),
    ("explain", 60),
    ("sql", 60),
    ("output", 60),
    // Results and their evidence: the result cache over the governed
    // result, which carries the quality checks' findings.
    ("cache", 53),
    ("result", 52),
    ("quality", 51),
    // Execution: sources registered from checked files, file facts,
    // fingerprints, the memory of row counts.
    ("run", 40),
    // Planning, and what names definitions and paths for messages.
    ("compile", 30),
    ("blame", 30),
    ("protect", 30),
    // Validated definitions.
    ("catalog", 20),
    // What a request is, over the calendar; money conversion rules.
    ("request", 16),
    ("calendar", 15),
    ("currency", 15),
    // YAML as written.
    ("spec", 10),
    // Beneath everything.
    ("allow", 6),
    ("atomic", 6),
    ("publish_dir", 6),
    ("error", 5),
    ("spec::locate", 3),
    ("yaml_path", 3),
    ("decimal", 1),
    ("functions", 1),
    ("latest", 1),
    ("suggest", 1),
];

/// The module a file belongs to, as the layer table names it.
fn unit_of_file(relative: &Path) -> String {
    let parts: Vec<String> = relative
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts == ["spec", "locate"] {
        return "spec::locate".into();
    }
    parts[0].clone()
}

/// The module path of a file (`src/a/mod.rs` and `src/a.rs` are `a`,
/// `src/a/b.rs` is `a::b`), to resolve `super::`.
fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The module a path in code names: `crate::a::b…` or `super::…` resolved
/// against the file's module path. `None` for a path inside the file's own
/// top-level module.
fn named_unit(segments: &[&str], module: &[String]) -> Option<String> {
    let absolute: Vec<String> = match segments.first() {
        Some(&"crate") => segments[1..].iter().map(|s| s.to_string()).collect(),
        Some(&"super") => {
            let ups = segments.iter().take_while(|s| **s == "super").count();
            let mut path = module[..module.len().saturating_sub(ups)].to_vec();
            path.extend(segments[ups..].iter().map(|s| s.to_string()));
            path
        }
        _ => return None,
    };
    let first = absolute.first()?;
    if first == "spec" && absolute.get(1).is_some_and(|s| s == "locate") {
        return Some("spec::locate".into());
    }
    Some(first.clone())
}

/// Every `crate::…` and `super::…` path in `code`, outside comments, and
/// whether its line is indented: rustfmt'd code names paths at the file's
/// top level without indentation, and an indented `super::` is read as
/// inside an inline module (`mod tests { use super::*; }`), one level down.
fn paths_in(code: &str) -> Vec<(bool, Vec<&str>)> {
    let mut out = Vec::new();
    for line in code.lines() {
        let indented = line.starts_with(char::is_whitespace);
        let line = line.split("//").next().unwrap_or("");
        let bytes = line.as_bytes();
        for start in ["crate::", "super::"]
            .iter()
            .flat_map(|p| line.match_indices(p).map(|(i, _)| i))
        {
            // Not the tail of another name (`$crate::`, `my_crate::`).
            if start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
                continue;
            }
            if start > 0 && bytes[start - 1] == b'$' {
                continue;
            }
            let rest = &line[start..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len());
            out.push((
                indented,
                rest[..end].split("::").filter(|s| !s.is_empty()).collect(),
            ));
        }
    }
    out
}

/// Whether `file` names `what` outside comments.
fn code_mentions(file: &Path, what: &str) -> bool {
    std::fs::read_to_string(file)
        .expect("a source file is readable")
        .lines()
        .any(|l| l.split("//").next().unwrap_or("").contains(what))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_import_points_down() {
    let layers: BTreeMap<&str, u32> = LAYERS.iter().copied().collect();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).expect("under src");
        // The binary and the crate root name every module by design.
        if relative == Path::new("main.rs") || relative == Path::new("lib.rs") {
            continue;
        }
        let unit = unit_of_file(relative);
        if unit == "layers" {
            continue;
        }
        let Some(&own) = layers.get(unit.as_str()) else {
            wrong.push(format!(
                "{}: module `{unit}` has no layer: add it to LAYERS in src/layers.rs",
                relative.display()
            ));
            continue;
        };
        if code_mentions(file, "canon_sample") {
            wrong.push(format!(
                "{}: names the sample generator (canon_sample), which only the binary may call",
                relative.display()
            ));
        }
        let module = module_path(relative);
        let inline: Vec<String> = module.iter().cloned().chain(["inline".into()]).collect();
        let code = std::fs::read_to_string(file).expect("a source file is readable");
        for (indented, path) in paths_in(&code) {
            let at = if indented { &inline } else { &module };
            let Some(named) = named_unit(&path, at) else {
                continue;
            };
            if named == unit || named.is_empty() {
                continue;
            }
            match layers.get(named.as_str()) {
                Some(&layer) if layer < own => {}
                Some(&layer) => wrong.push(format!(
                    "{}: `{}` names `{named}` (layer {layer}) from `{unit}` (layer {own})",
                    relative.display(),
                    path.join("::")
                )),
                None => wrong.push(format!(
                    "{}: `{}` names `{named}`, which has no layer",
                    relative.display(),
                    path.join("::")
                )),
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(
        wrong.is_empty(),
        "imports that run back up (see src/layers.rs):\n{}",
        wrong.join("\n")
    );
}

/// The checker itself: it sees `crate::` and `super::` paths, resolves
/// `super::` against the file's place, ignores comments and other crates'
/// `crate::`, and a back-arrow is reported.
#[test]
fn the_checker_sees_paths_and_resolves_super() {
    let code = "use crate::run::Engine;\n\
                use super::subject::Subject; // crate::cli in a comment\n\
                let x = $crate::spec::locate::Step::from(1);\n\
                datafusion_crate::x; crate::spec::locate::Step;\n    use super::*;";
    let found: Vec<Vec<&str>> = paths_in(code).into_iter().map(|(_, p)| p).collect();
    assert_eq!(
        found,
        vec![
            vec!["crate", "run", "Engine"],
            vec!["super", "subject", "Subject"],
            vec!["crate", "spec", "locate", "Step"],
            vec!["super"],
        ]
    );
    let indented: Vec<bool> = paths_in(code).into_iter().map(|(i, _)| i).collect();
    assert_eq!(indented, [false, false, false, true]);
    let in_quality = module_path(Path::new("quality/gates.rs"));
    assert_eq!(in_quality, ["quality", "gates"]);
    assert_eq!(named_unit(&found[1], &in_quality), Some("quality".into()));
    // `super::` from a top-level module is the crate root: `super::run` is run.
    let top = module_path(Path::new("query.rs"));
    assert_eq!(named_unit(&["super", "run"], &top), Some("run".into()));
    assert_eq!(named_unit(&found[2], &top), Some("spec::locate".into()));
    assert_eq!(unit_of_file(Path::new("spec/locate.rs")), "spec::locate");
    assert_eq!(unit_of_file(Path::new("compile/mod.rs")), "compile");
}
