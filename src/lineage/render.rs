//! A lineage graph drawn as text other tools render: Mermaid (a review
//! comment, a Markdown page) and Graphviz DOT. Every label is escaped for
//! its format, so a definition's text (quotes, brackets, `<script>`) can
//! neither break the diagram nor inject markup into the page that shows it.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{Graph, NodeKind};

/// Mermaid `flowchart LR`: one shape and class per kind of node; node ids
/// are `n0`, `n1`… in the graph's order (Mermaid ids cannot hold `/` or `:`).
pub fn mermaid(g: &Graph) -> String {
    let ids: BTreeMap<&str, String> = g
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), format!("n{i}")))
        .collect();
    let mut out = String::from("flowchart LR\n");
    for n in &g.nodes {
        let label = mermaid_text(&n.label);
        let (open, close) = match n.kind {
            NodeKind::Metric => ("[[\"", "\"]]"),
            NodeKind::Exclusion => ("{{\"", "\"}}"),
            NodeKind::Entity => ("[\"", "\"]"),
            NodeKind::IdentityRule => (">\"", "\"]"),
            NodeKind::Source => ("[(\"", "\")]"),
            NodeKind::Column => ("(\"", "\")"),
            NodeKind::File => ("[/\"", "\"/]"),
        };
        let _ = writeln!(
            out,
            "  {}{open}{label}{close}:::{}",
            ids[n.id.as_str()],
            class(n.kind)
        );
    }
    for e in &g.edges {
        let (Some(from), Some(to)) = (ids.get(e.from.as_str()), ids.get(e.to.as_str())) else {
            continue;
        };
        let _ = writeln!(out, "  {from} -->|\"{}\"| {to}", mermaid_text(&e.label));
    }
    for (kind, style) in STYLES {
        let _ = writeln!(out, "  classDef {} {style}", class(*kind));
    }
    out
}

/// Graphviz DOT, left to right; node ids are the graph's own, quoted.
pub fn dot(g: &Graph) -> String {
    let mut out = format!(
        "digraph \"lineage of {}\" {{\n  rankdir=LR;\n  node [fontname=\"Helvetica\", fontsize=10];\n  edge [fontname=\"Helvetica\", fontsize=9];\n",
        dot_text(&g.metric)
    );
    for n in &g.nodes {
        let shape = match n.kind {
            NodeKind::Metric => "doubleoctagon",
            NodeKind::Exclusion => "hexagon",
            NodeKind::Entity => "box",
            NodeKind::IdentityRule => "diamond",
            NodeKind::Source => "cylinder",
            NodeKind::Column => "ellipse",
            NodeKind::File => "note",
        };
        let tooltip = n.detail.as_deref().map(dot_text).unwrap_or_default();
        let _ = writeln!(
            out,
            "  \"{}\" [label=\"{}\", shape={shape}, tooltip=\"{tooltip}\"];",
            dot_text(&n.id),
            dot_text(&n.label)
        );
    }
    for e in &g.edges {
        let _ = writeln!(
            out,
            "  \"{}\" -> \"{}\" [label=\"{}\"];",
            dot_text(&e.from),
            dot_text(&e.to),
            dot_text(&e.label)
        );
    }
    out.push_str("}\n");
    out
}

const STYLES: &[(NodeKind, &str)] = &[
    (NodeKind::Metric, "fill:#dbeafe,stroke:#1d4ed8"),
    (NodeKind::Exclusion, "fill:#fee2e2,stroke:#b91c1c"),
    (NodeKind::Entity, "fill:#dcfce7,stroke:#15803d"),
    (NodeKind::IdentityRule, "fill:#fef9c3,stroke:#a16207"),
    (NodeKind::Source, "fill:#f3e8ff,stroke:#7e22ce"),
    (NodeKind::Column, "fill:#f8fafc,stroke:#64748b"),
    (NodeKind::File, "fill:#f1f5f9,stroke:#334155"),
];

fn class(kind: NodeKind) -> &'static str {
    match kind {
        NodeKind::Metric => "metric",
        NodeKind::Exclusion => "exclusion",
        NodeKind::Entity => "entity",
        NodeKind::IdentityRule => "identity",
        NodeKind::Source => "source",
        NodeKind::Column => "column",
        NodeKind::File => "file",
    }
}

/// Text inside a quoted Mermaid label: Mermaid reads `#…;` entity codes
/// there, so `#`, quotes, angle brackets and `&` are written as codes (no
/// character can close the label or become HTML), and a line break as a
/// space.
fn mermaid_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '#' => out.push_str("#35;"),
            '"' => out.push_str("#quot;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '&' => out.push_str("#amp;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Text inside a quoted DOT string: backslashes and quotes escaped, line
/// breaks as DOT's `\n`.
fn dot_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lineage::{Edge, Node};

    fn graph(label: &str) -> Graph {
        Graph {
            metric: "m".into(),
            request: "2025-01".into(),
            nodes: vec![
                Node {
                    id: "metric:m".into(),
                    kind: NodeKind::Metric,
                    label: "m".into(),
                    detail: None,
                },
                Node {
                    id: "exclusion:m/x".into(),
                    kind: NodeKind::Exclusion,
                    label: label.into(),
                    detail: Some(label.into()),
                },
            ],
            edges: vec![Edge {
                from: "metric:m".into(),
                to: "exclusion:m/x".into(),
                label: "excludes".into(),
            }],
            notes: vec![],
        }
    }

    // A label that tries to close the quote, open markup and comment the
    // rest out comes out as entity codes in Mermaid and escaped in DOT.
    #[test]
    fn labels_cannot_break_out_of_their_quotes() {
        let hostile = "a\"]; <img src=x onerror=alert(1)> #1 & \\ end\nnext";
        let m = mermaid(&graph(hostile));
        assert!(
            m.contains(
                "n1{{\"a#quot;]; #lt;img src=x onerror=alert(1)#gt; #35;1 #amp; \\ end next\"}}:::exclusion"
            ),
            "{m}"
        );
        assert!(!m.contains("<img"), "{m}");
        let d = dot(&graph(hostile));
        assert!(
            d.contains("label=\"a\\\"]; <img src=x onerror=alert(1)> #1 & \\\\ end\\nnext\""),
            "{d}"
        );
    }
}
