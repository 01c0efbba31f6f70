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
    // canon's plans on a Ballista cluster (the `cluster` feature): codecs,
    // the scheduler and executor processes, the client's session.
    ("cluster", 85),
    // Orchestration: the commands, each over the stages below.
    ("publish", 80),
    // Definition tests: fixture companies run through query and reconcile.
    ("testing", 75),
    ("reconcile", 70),
    // What a change to the definitions does to the numbers.
    ("diff", 65),
    ("query", 60),
    // The catalog as a static site, over lineage, lifecycle and a publication.
    ("docs", 60),
    ("validate", 60),
    ("explain", 60),
    ("sql", 60),
    ("output", 60),
    // Results and their evidence: the result cache over the governed
    // result, which carries the quality checks' findings.
    // The history of published numbers, read back by publish and history.
    ("history", 56),
    ("cache", 53),
    ("result", 52),
    ("quality", 51),
    // What a metric is made of (its lineage and definition closure), and
    // whether its sign-off approves it as it is.
    ("lifecycle", 46),
    ("lineage", 45),
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
    ("publish_dir", 7),
    ("console", 6),
    ("error", 5),
    ("spec::locate", 3),
    ("yaml_path", 3),
    // A series' spans, kept as latest_by keeps rows.
    ("latest_spans", 2),
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
    // The crate root itself (`use super::*` at the top of `src/query.rs`)
    // names every module.
    let Some(first) = absolute.first() else {
        return Some(String::new());
    };
    if first == "spec" && absolute.get(1).is_some_and(|s| s == "locate") {
        return Some("spec::locate".into());
    }
    Some(first.clone())
}

/// Every `crate::…` and `super::…` path in `code`, outside comments, with
/// the depth of inline modules it sits in (`mod tests { use super::*; }`
/// names the file's own module, one level down). A group expands to one
/// path per member: `crate::{quality::X, run}` names quality and run.
fn paths_in(code: &str) -> Vec<(usize, Vec<String>)> {
    let lines: Vec<&str> = code
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect();
    // Inline modules: `mod NAME {` opens one, a `}` at its indentation closes it.
    let mut depth_of_line = Vec::with_capacity(lines.len());
    let mut open: Vec<usize> = Vec::new();
    for line in &lines {
        let indent = line.len() - line.trim_start().len();
        let t = line.trim();
        if t == "}" && open.last() == Some(&indent) {
            open.pop();
        }
        depth_of_line.push(open.len());
        let declares = t.strip_prefix("pub ").unwrap_or(t).starts_with("mod ")
            || (t.starts_with("pub(") && t.contains(") mod "));
        if declares && t.ends_with('{') {
            open.push(indent);
        }
    }
    let text = lines.join("\n");
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    for prefix in ["crate::", "super::"] {
        for (start, _) in text.match_indices(prefix) {
            // Not the tail of another name (`$crate::`, `my_crate::`).
            if start > 0 {
                let before = bytes[start - 1];
                if before.is_ascii_alphanumeric() || before == b'_' || before == b'$' {
                    continue;
                }
            }
            let line = text[..start].matches('\n').count();
            for path in parse_path(&text[start..]) {
                out.push((start, depth_of_line[line], path));
            }
        }
    }
    out.sort_by_key(|(start, _, _)| *start);
    out.into_iter().map(|(_, d, p)| (d, p)).collect()
}

/// The paths a path expression starting at `text` names, its groups
/// expanded.
fn parse_path(text: &str) -> Vec<Vec<String>> {
    let mut segments = Vec::new();
    let mut rest = text;
    loop {
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end > 0 {
            segments.push(rest[..end].to_string());
        }
        rest = &rest[end..];
        let Some(after) = rest.strip_prefix("::") else {
            return vec![segments];
        };
        rest = after.trim_start();
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut close = group.len();
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            close = i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let mut out = Vec::new();
            let mut level = 0;
            let mut item_start = 0;
            let inner = &group[..close];
            for (i, c) in inner
                .char_indices()
                .chain(std::iter::once((inner.len(), ',')))
            {
                match c {
                    '{' => level += 1,
                    '}' => level -= 1,
                    ',' if level == 0 => {
                        let item = inner[item_start..i].trim();
                        if !item.is_empty() {
                            for tail in parse_path(item) {
                                let mut path = segments.clone();
                                path.extend(tail);
                                out.push(path);
                            }
                        }
                        item_start = i + 1;
                    }
                    _ => {}
                }
            }
            return out;
        }
    }
}

/// Whether `code` names `what` outside comments.
fn mentions(code: &str, what: &str) -> bool {
    code.lines()
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
        let code = std::fs::read_to_string(file).expect("a source file is readable");
        if mentions(&code, "canon_sample") {
            wrong.push(format!(
                "{}: names the sample generator (canon_sample), which only the binary may call",
                relative.display()
            ));
        }
        let module = module_path(relative);
        for (depth, path) in paths_in(&code) {
            let at: Vec<String> = module
                .iter()
                .cloned()
                .chain(std::iter::repeat_n("inline".to_string(), depth))
                .collect();
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            let Some(named) = named_unit(&path, &at) else {
                continue;
            };
            if named.is_empty() {
                wrong.push(format!(
                    "{}: `{}` names the crate root, so every module",
                    relative.display(),
                    path.join("::")
                ));
                continue;
            }
            if named == unit {
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

/// The checker itself: it sees `crate::` and `super::` paths (groups
/// expanded, over several lines too), resolves `super::` against the
/// file's place and its inline modules, ignores comments and other crates'
/// `crate::`.
#[test]
fn the_checker_sees_paths_and_resolves_super() {
    let code = "use crate::run::Engine;\n\
                use super::subject::Subject; // crate::cli in a comment\n\
                fn f() {\n    let x = $crate::spec::locate::Step::from(1);\n\
                \x20   datafusion_crate::x; super::quality::check();\n}\n\
                use crate::{\n    quality::X,\n    run::{self, Engine},\n};\n\
                mod tests {\n    use super::*;\n}\n";
    let found = paths_in(code);
    let paths: Vec<(usize, String)> = found.iter().map(|(d, p)| (*d, p.join("::"))).collect();
    assert_eq!(
        paths,
        [
            (0, "crate::run::Engine".to_string()),
            (0, "super::subject::Subject".to_string()),
            (0, "super::quality::check".to_string()),
            (0, "crate::quality::X".to_string()),
            (0, "crate::run::self".to_string()),
            (0, "crate::run::Engine".to_string()),
            (1, "super".to_string()),
        ]
    );
    // In src/run/mod.rs, `super::quality` inside a function is the crate's
    // quality, not run's; inside `mod tests`, `super` is run itself.
    let run = module_path(Path::new("run/mod.rs"));
    assert_eq!(run, ["run"]);
    assert_eq!(
        named_unit(&["super", "quality", "check"], &run),
        Some("quality".into())
    );
    let in_tests = ["run".to_string(), "inline".to_string()];
    assert_eq!(named_unit(&["super"], &in_tests), Some("run".into()));
    // `use super::*` at the top of a top-level file is the crate root.
    assert_eq!(named_unit(&["super"], &run), Some(String::new()));
    let in_quality = module_path(Path::new("quality/gates.rs"));
    assert_eq!(
        named_unit(&["super", "subject"], &in_quality),
        Some("quality".into())
    );
    assert_eq!(
        named_unit(&["crate", "spec", "locate", "Step"], &run),
        Some("spec::locate".into())
    );
    assert_eq!(unit_of_file(Path::new("spec/locate.rs")), "spec::locate");
    assert_eq!(unit_of_file(Path::new("compile/mod.rs")), "compile");
}

/// A metric's kind is named (`MetricKind::…`) only where definitions are
/// read and checked (spec, catalog) and in planning (compile, whose
/// `kind_of` is the one dispatch): the stages above run a plan by its shape
/// and ask the kind through `compile::kind::Kind`. So adding a kind touches
/// its module and that dispatch, and this fails the day a stage above
/// starts matching on kinds again.
#[test]
fn only_definitions_and_planning_name_a_metric_kind() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    // Spelled in two halves so this file does not name it.
    let needle = ["Metric", "Kind::"].concat();
    let mut offenders = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&src).expect("under src");
        let unit = unit_of_file(relative);
        if ["spec", "catalog", "compile"].contains(&unit.as_str()) {
            continue;
        }
        let code = std::fs::read_to_string(&file).expect("readable source");
        for (n, line) in code.lines().enumerate() {
            let code_part = line.split("//").next().unwrap_or("");
            if code_part.contains(&needle) {
                offenders.push(format!("{}:{}: {}", relative.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "a stage above planning names a metric kind:\n{}",
        offenders.join("\n")
    );
}
