//! The pictures of the catalog site, drawn by canon as inline SVG (no
//! script, no third-party library, nothing fetched): a metric's last
//! published periods as a bar chart, and its lineage as a layered diagram.
//! Every text is escaped.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::html::escape;
use crate::decimal::Dec;
use crate::lineage::{Graph, NodeKind};

/// A bar chart of (period, value); a missing value is an empty slot.
pub fn chart(points: &[(String, Option<Dec>)], to_date: &dyn Fn(&str) -> bool) -> String {
    let (w, h, left, bottom, top) = (640.0, 240.0, 90.0, 40.0, 16.0);
    let values: Vec<f64> = points
        .iter()
        .filter_map(|(_, v)| v.map(|v| v.plain().parse::<f64>().unwrap_or(0.0)))
        .collect();
    let max = values.iter().cloned().fold(0.0_f64, f64::max);
    let min = values.iter().cloned().fold(0.0_f64, f64::min);
    let span = if max - min > 0.0 { max - min } else { 1.0 };
    let plot_h = h - bottom - top;
    let y = |v: f64| top + (max - v) / span * plot_h;
    let n = points.len().max(1) as f64;
    let slot = (w - left - 10.0) / n;
    let mut out = format!(
        "<svg class=\"chart\" role=\"img\" aria-label=\"last {} published periods\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" xmlns=\"http://www.w3.org/2000/svg\">",
        points.len()
    );
    let _ = write!(
        out,
        "<line x1=\"{left}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#94a3b8\"/>",
        y(0.0),
        w - 10.0,
        y(0.0)
    );
    for (label, v) in [(max, max), (min, min)] {
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\" fill=\"#475569\">{}</text>",
            left - 6.0,
            y(v) + 4.0,
            escape(&format_number(label))
        );
    }
    for (i, (period, v)) in points.iter().enumerate() {
        let x = left + slot * i as f64 + slot * 0.15;
        let bw = slot * 0.7;
        if let Some(v) = v {
            let f = v.plain().parse::<f64>().unwrap_or(0.0);
            let (y0, y1) = (y(0.0), y(f));
            let (top_y, height) = if y1 < y0 {
                (y1, y0 - y1)
            } else {
                (y0, y1 - y0)
            };
            // A number to date: a lighter bar, and said in its title.
            let (fill, said) = match to_date(period) {
                true => ("#93c5fd", " (to date)"),
                false => ("#2563eb", ""),
            };
            let _ = write!(
                out,
                "<rect class=\"bar\" x=\"{x:.1}\" y=\"{top_y:.1}\" width=\"{bw:.1}\" height=\"{:.1}\" fill=\"{fill}\"><title>{}{said}: {}</title></rect>",
                height.max(1.0),
                escape(period),
                escape(&v.grouped())
            );
        }
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\" fill=\"#334155\">{}</text>",
            x + bw / 2.0,
            h - bottom + 16.0,
            escape(period)
        );
    }
    out.push_str("</svg>");
    out
}

fn format_number(v: f64) -> String {
    let abs = v.abs();
    let (d, suffix) = if abs >= 1e9 {
        (v / 1e9, "B")
    } else if abs >= 1e6 {
        (v / 1e6, "M")
    } else if abs >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    format!("{d:.2}{suffix}")
}

/// The lineage graph in columns by kind (metrics, exclusions, entities,
/// identity rules, sources, columns, files), edges as curves between them.
pub fn lineage(g: &Graph) -> String {
    let kinds = [
        NodeKind::Metric,
        NodeKind::Exclusion,
        NodeKind::Entity,
        NodeKind::IdentityRule,
        NodeKind::Source,
        NodeKind::Column,
        NodeKind::File,
    ];
    let (col_w, node_w, node_h, gap) = (190.0, 170.0, 24.0, 8.0);
    let mut at: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    let mut rows = 0usize;
    for (c, kind) in kinds.iter().enumerate() {
        for (r, n) in g.nodes.iter().filter(|n| n.kind == *kind).enumerate() {
            at.insert(
                n.id.as_str(),
                (10.0 + c as f64 * col_w, 30.0 + r as f64 * (node_h + gap)),
            );
            rows = rows.max(r + 1);
        }
    }
    let (w, h) = (
        10.0 + kinds.len() as f64 * col_w,
        40.0 + rows as f64 * (node_h + gap),
    );
    let mut out = format!(
        "<svg class=\"lineage\" role=\"img\" aria-label=\"lineage of {}\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" xmlns=\"http://www.w3.org/2000/svg\">",
        escape(&g.metric)
    );
    for (c, title) in [
        "metrics",
        "exclusions",
        "entities",
        "identity rules",
        "sources",
        "columns",
        "files",
    ]
    .iter()
    .enumerate()
    {
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"16\" font-size=\"12\" font-weight=\"bold\" fill=\"#0f172a\">{title}</text>",
            10.0 + c as f64 * col_w
        );
    }
    for e in &g.edges {
        let (Some((x1, y1)), Some((x2, y2))) = (at.get(e.from.as_str()), at.get(e.to.as_str()))
        else {
            continue;
        };
        let (sx, sy) = if x2 > x1 {
            (x1 + node_w, y1 + node_h / 2.0)
        } else {
            (*x1, y1 + node_h / 2.0)
        };
        let (tx, ty) = if x2 > x1 {
            (*x2, y2 + node_h / 2.0)
        } else {
            (x2 + node_w, y2 + node_h / 2.0)
        };
        let mid = (sx + tx) / 2.0;
        let _ = write!(
            out,
            "<path class=\"edge\" d=\"M{sx:.1},{sy:.1} C{mid:.1},{sy:.1} {mid:.1},{ty:.1} {tx:.1},{ty:.1}\" fill=\"none\" stroke=\"#94a3b8\"><title>{}</title></path>",
            escape(&e.label)
        );
    }
    for n in &g.nodes {
        let Some((x, y)) = at.get(n.id.as_str()) else {
            continue;
        };
        let fill = match n.kind {
            NodeKind::Metric => "#dbeafe",
            NodeKind::Exclusion => "#fee2e2",
            NodeKind::Entity => "#dcfce7",
            NodeKind::IdentityRule => "#fef9c3",
            NodeKind::Source => "#f3e8ff",
            NodeKind::Column => "#f8fafc",
            NodeKind::File => "#f1f5f9",
        };
        let label: String = if n.label.chars().count() > 26 {
            format!("{}…", n.label.chars().take(25).collect::<String>())
        } else {
            n.label.clone()
        };
        let _ = write!(
            out,
            "<g class=\"node\"><title>{}</title><rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{node_w}\" height=\"{node_h}\" rx=\"4\" fill=\"{fill}\" stroke=\"#64748b\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#0f172a\">{}</text></g>",
            escape(n.detail.as_deref().unwrap_or(&n.label)),
            x + 6.0,
            y + 16.0,
            escape(&label)
        );
    }
    out.push_str("</svg>");
    out
}
