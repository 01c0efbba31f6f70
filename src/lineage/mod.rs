//! `canon lineage`: what a metric is made of, as a graph a reviewer can
//! read before trusting a number: the metric, the metrics it is computed
//! from, their exclusions, the entities of models/ they read, the identity
//! rules that join or fold those entities (cross-system links, merge
//! chains), the source tables, the columns read and the files.
//!
//! Why from the compiled plan and not from the YAML alone: the plan is what
//! runs, so the columns shown are exactly the ones a query reads (an entity
//! field's expression, a merge map's reads and a currency lookup included),
//! and the identity links are the ones planning joined. Planning reads no
//! row; only the files are listed from the data root when there is one.
//!
//! The graph is plain data ([`Graph`], serialized as `--format json`);
//! [`render`] draws it as Mermaid or Graphviz DOT.

pub mod closure;
pub mod render;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::catalog::Catalog;
use crate::error::Result;
use crate::request::Resolved;
use crate::run::{DataSource, Engine, scanned_columns};

/// What a node stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    Metric,
    Exclusion,
    Entity,
    IdentityRule,
    Source,
    Column,
    File,
}

/// One thing a metric depends on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// Stable and unique: `metric:arr`, `exclusion:arr/deleted`,
    /// `entity:billing_account`, `identity:billing_account.crm`,
    /// `source:billing/account`, `column:billing/account.crm_id`,
    /// `file:billing/account/part-00000.parquet`.
    pub id: String,
    pub kind: NodeKind,
    /// What a reader sees on the node.
    pub label: String,
    /// The definition behind it: an exclusion's `when`, a rule's fields, a
    /// file's size, a metric's version and status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// `from` depends on `to`, in the way `label` says.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub label: String,
}

/// A metric's lineage.
#[derive(Debug, Clone, Serialize)]
pub struct Graph {
    pub metric: String,
    /// The request the metric was planned for (its columns and links do not
    /// depend on the period; slices add theirs).
    pub request: String,
    /// Nodes in a fixed order: by kind, then id.
    pub nodes: Vec<Node>,
    /// Edges sorted, each once.
    pub edges: Vec<Edge>,
    /// What could not be shown, and why (e.g. no data root: no files).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Builds the lineage of metric `name` planned for `request` on `engine`
/// (whose data root, when it has one, lists the files).
pub async fn lineage(engine: &Engine, name: &str, request: &Resolved) -> Result<Graph> {
    let catalog = engine.catalog.clone();
    catalog.metric(name)?;
    let mut g = Builder::default();
    let (plan, links) = engine
        .recording_links(crate::compile::plan_metric(engine, name, request))
        .await;
    let plan = plan?;

    // The metric and the aggregates it is computed from.
    let parts = crate::compile::parts(engine, name)?;
    g.metric(&catalog, name)?;
    for part in &parts {
        if part != name {
            g.metric(&catalog, part)?;
            g.edge(&metric_id(name), &metric_id(part), "computed from");
        }
    }

    // What each exclusion tests: the entities holding the fields its
    // `when` names.
    for metric in std::iter::once(name).chain(parts.iter().map(String::as_str)) {
        let (id, _, spec) = catalog.metric(metric)?;
        let Some(over) = &spec.entity else { continue };
        for x in catalog.exclusions_of(id) {
            let xid = format!("exclusion:{metric}/{}", x.spec.name);
            for path in fields_named(engine, &x.spec.when, &x.when_location)? {
                if let Some((holder, field)) = field_of(&catalog, over, &path) {
                    g.entity(&catalog, &holder);
                    g.edge(&xid, &entity_id(&holder), &format!("tests {field}"));
                }
            }
        }
    }

    // What each aggregate's plan reads. A cohort's instants are its base
    // metric's states, so what they read is the base metric's.
    let mut reads: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    let titled = plan.titled(name, request)?;
    let by_part: Vec<(String, datafusion::prelude::DataFrame)> = if plan.parts().is_empty() {
        let reader = parts.first().cloned().unwrap_or_else(|| name.to_string());
        titled
            .into_iter()
            .map(|(_, f)| (reader.clone(), f))
            .collect()
    } else {
        plan.parts()
            .iter()
            .map(|p| (p.name.clone(), p.plan.frame.clone()))
            .collect()
    };
    for (part, frame) in by_part {
        let optimized = frame.into_optimized_plan()?;
        scanned_columns(&optimized, reads.entry(part).or_default());
    }

    // Entities joined through links: a link to another system's entity is
    // an identity rule (a billing account's customer is a CRM account), a
    // link within one system a plain foreign key.
    let mut linked: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (entity, link) in &links {
        let Some((_, model, spec)) = catalog.entity(entity) else {
            continue;
        };
        let Some(l) = spec.links.iter().find(|l| &l.name == link) else {
            continue;
        };
        g.entity(&catalog, entity);
        g.entity(&catalog, &l.entity);
        linked
            .entry(entity.clone())
            .or_default()
            .insert(l.entity.clone());
        let target_system = catalog
            .entity(&l.entity)
            .map(|(_, m, _)| m.spec.system.clone());
        if target_system.as_deref() == Some(model.spec.system.as_str()) {
            g.edge(
                &entity_id(entity),
                &entity_id(&l.entity),
                &format!("link {} ({})", l.name, l.field),
            );
        } else {
            let rule = format!("identity:{entity}.{}", l.name);
            g.node(
                &rule,
                NodeKind::IdentityRule,
                format!("{entity}.{} → {}", l.name, l.entity),
                Some(format!(
                    "cross-system identity: {entity}.{} matched to {}'s key",
                    l.field, l.entity
                )),
            );
            g.edge(&entity_id(entity), &rule, "identity");
            g.edge(&rule, &entity_id(&l.entity), "resolves to");
        }
    }

    // Sources, their columns, the entities mapped from them, and for each
    // aggregate the entities it reads that no link reaches.
    let mut notes = Vec::new();
    let listed = !matches!(engine.data, DataSource::Empty);
    if !listed {
        notes.push("no data root: the files are not listed".to_string());
    }
    for (part, tables) in &reads {
        let (_, _, metric) = catalog.metric(part)?;
        let own = metric.entity.clone();
        let reached = reachable(&catalog, own.as_deref(), &linked);
        for (table, columns) in tables {
            let Some((system, name_of_table)) = table.split_once('/') else {
                continue;
            };
            let source = format!("source:{table}");
            if !g.has(&source) {
                g.node(&source, NodeKind::Source, table.clone(), None);
                if listed {
                    match files_of(engine, system, name_of_table).await {
                        Ok(files) => g.files(system, name_of_table, files),
                        Err(e) => {
                            notes.push(format!("{system}/{name_of_table}: files not listed: {e}"))
                        }
                    }
                }
            }
            for c in columns {
                let id = format!("column:{table}.{c}");
                g.node(&id, NodeKind::Column, c.clone(), None);
                g.edge(&source, &id, "column");
            }
            for entity in entities_of(&catalog, system, name_of_table) {
                g.entity(&catalog, &entity);
                g.edge(&entity_id(&entity), &source, "mapped from");
                if !reached.contains(&entity) {
                    g.edge(&metric_id(part), &entity_id(&entity), "reads");
                }
            }
        }
        if let Some(e) = &own {
            g.entity(&catalog, e);
            g.edge(&metric_id(part), &entity_id(e), "over");
            // What one member is (a customer, a person) is an identity rule.
            let member = metric
                .member
                .as_deref()
                .or(metric.conversion.as_ref().map(|c| c.member.as_str()));
            if let Some((holder, field)) = member.and_then(|m| field_of(&catalog, e, m)) {
                let rule = format!("identity:{holder}.{field}");
                let description = catalog.entity(&holder).and_then(|(_, _, spec)| {
                    spec.fields
                        .iter()
                        .find(|f| f.name == field)
                        .and_then(|f| f.description.clone())
                });
                g.node(
                    &rule,
                    NodeKind::IdentityRule,
                    format!("{holder}.{field}"),
                    description.map(|d| d.trim().to_string()),
                );
                g.entity(&catalog, &holder);
                g.edge(&metric_id(part), &rule, "counts members by");
                g.edge(&rule, &entity_id(&holder), "field of");
            }
        }
    }

    // Merge rules of the entities shown: links to them follow the chain to
    // the survivor, so two records of one company count once.
    let shown: Vec<String> = g
        .nodes
        .values()
        .filter(|n| n.kind == NodeKind::Entity)
        .map(|n| n.label.clone())
        .collect();
    for entity in shown {
        let Some((_, _, spec)) = catalog.entity(&entity) else {
            continue;
        };
        // One merge rule per entity: by a field of its own, or by an audit
        // entity's rows (which the rule then reads).
        let audit = spec.merges.as_ref().map(|a| a.entity.clone());
        let how = match (&spec.merged_into, &spec.merges) {
            (Some(field), _) => Some(format!(
                "a record merged away names its survivor in {field}"
            )),
            (None, Some(a)) => Some(format!(
                "{}.{} was merged into {}.{}",
                a.entity, a.from, a.entity, a.into
            )),
            (None, None) => None,
        };
        let how = how.map(|h| (h, audit));
        if let Some((how, audit)) = how {
            let rule = format!("identity:{entity}.merges");
            g.node(
                &rule,
                NodeKind::IdentityRule,
                format!("{entity} merges"),
                Some(format!("{how}; chains are followed to the survivor")),
            );
            g.edge(&entity_id(&entity), &rule, "identity");
            if let Some(audit) = audit {
                g.entity(&catalog, &audit);
                g.edge(&rule, &entity_id(&audit), "merges from");
            }
        }
    }

    Ok(g.finish(name, request.period.label.clone(), notes))
}

fn metric_id(name: &str) -> String {
    format!("metric:{name}")
}

fn entity_id(name: &str) -> String {
    format!("entity:{name}")
}

/// The entities models/ maps from source `system/table`.
fn entities_of(catalog: &Catalog, system: &str, table: &str) -> Vec<String> {
    catalog
        .entities
        .iter()
        .filter(|(_, id)| {
            let model = &catalog.files.models[id.file];
            model.spec.system == system && model.spec.entities[id.index].source == table
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// `from` and every entity its links reach, through links of links and the
/// merge audits that fold an entity's records.
fn reachable(
    catalog: &Catalog,
    from: Option<&str>,
    linked: &BTreeMap<String, BTreeSet<String>>,
) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<String> = from.map(str::to_string).into_iter().collect();
    while let Some(e) = todo.pop() {
        if !seen.insert(e.clone()) {
            continue;
        }
        todo.extend(linked.get(&e).into_iter().flatten().cloned());
        if let Some((_, _, spec)) = catalog.entity(&e) {
            todo.extend(spec.merges.iter().map(|m| m.entity.clone()));
        }
    }
    seen
}

/// The column paths (`is_deleted`, `account.name`) SQL fragment `sql` names.
fn fields_named(
    engine: &Engine,
    sql: &str,
    location: &crate::error::Location,
) -> Result<BTreeSet<String>> {
    use datafusion::sql::sqlparser::ast::{Expr, visit_expressions};
    let ast = crate::compile::sql_ast(engine, sql, location)?;
    let mut out = BTreeSet::new();
    let _ = visit_expressions(&ast.expr, |e| {
        match e {
            Expr::Identifier(i) => {
                out.insert(i.value.clone());
            }
            Expr::CompoundIdentifier(parts) => {
                out.insert(
                    parts
                        .iter()
                        .map(|p| p.value.as_str())
                        .collect::<Vec<_>>()
                        .join("."),
                );
            }
            _ => {}
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    Ok(out)
}

/// The entity holding the last field of `path` (`subscription.billing_account.customer_id`)
/// read from `entity`, following each qualifier as a link, with the field.
fn field_of(catalog: &Catalog, entity: &str, path: &str) -> Option<(String, String)> {
    let mut steps: Vec<&str> = path.split('.').collect();
    let field = steps.pop()?.to_string();
    let mut at = entity.to_string();
    for link in steps {
        let (_, _, spec) = catalog.entity(&at)?;
        at = spec.links.iter().find(|l| l.name == link)?.entity.clone();
    }
    let (_, _, spec) = catalog.entity(&at)?;
    spec.fields
        .iter()
        .any(|f| f.name == field)
        .then_some((at, field))
}

#[derive(Default)]
struct Builder {
    nodes: BTreeMap<String, Node>,
    edges: BTreeSet<Edge>,
}

impl Builder {
    fn has(&self, id: &str) -> bool {
        self.nodes.contains_key(id)
    }

    fn node(&mut self, id: &str, kind: NodeKind, label: String, detail: Option<String>) {
        self.nodes.entry(id.to_string()).or_insert(Node {
            id: id.to_string(),
            kind,
            label,
            detail,
        });
    }

    fn edge(&mut self, from: &str, to: &str, label: &str) {
        self.edges.insert(Edge {
            from: from.to_string(),
            to: to.to_string(),
            label: label.to_string(),
        });
    }

    /// A metric's node, with its exclusions.
    fn metric(&mut self, catalog: &Catalog, name: &str) -> Result<()> {
        let (id, _, m) = catalog.metric(name)?;
        self.node(
            &metric_id(name),
            NodeKind::Metric,
            name.to_string(),
            Some(format!(
                "{} · v{} · {} · owner {}",
                m.label,
                m.version,
                m.status.name(),
                m.owner
            )),
        );
        for x in catalog.exclusions_of(id) {
            let xid = format!("exclusion:{name}/{}", x.spec.name);
            self.node(
                &xid,
                NodeKind::Exclusion,
                x.spec.name.clone(),
                Some(format!("{} (when {})", x.spec.reason, x.spec.when)),
            );
            self.edge(&metric_id(name), &xid, "excludes");
        }
        Ok(())
    }

    fn entity(&mut self, catalog: &Catalog, name: &str) {
        let detail = catalog.entity(name).map(|(_, model, spec)| {
            format!(
                "{} · {}/{}",
                spec.description.trim(),
                model.spec.system,
                spec.source
            )
        });
        self.node(&entity_id(name), NodeKind::Entity, name.to_string(), detail);
    }

    /// Source `system/table`'s files under `root`, or a note saying why
    /// they cannot be listed.
    /// The file nodes of source `system/table`: (name, detail) each.
    fn files(&mut self, system: &str, table: &str, files: Vec<(String, String)>) {
        for (shown, detail) in files {
            let node = format!("file:{shown}");
            self.node(
                &node,
                NodeKind::File,
                shown,
                (!detail.is_empty()).then_some(detail),
            );
            self.edge(&format!("source:{system}/{table}"), &node, "file");
        }
    }

    fn finish(self, metric: &str, request: String, notes: Vec<String>) -> Graph {
        let mut nodes: Vec<Node> = self.nodes.into_values().collect();
        nodes.sort_by(|a, b| (a.kind, &a.id).cmp(&(b.kind, &b.id)));
        // Edges in the order of their nodes, so a drawing reads from the
        // metric down to the files.
        let at: BTreeMap<&str, usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.as_str(), i))
            .collect();
        let mut edges: Vec<Edge> = self.edges.into_iter().collect();
        edges.sort_by_key(|e| {
            (
                at.get(e.from.as_str()).copied(),
                at.get(e.to.as_str()).copied(),
            )
        });
        Graph {
            metric: metric.to_string(),
            request,
            nodes,
            edges,
            notes,
        }
    }
}

/// The files of source `system/table` in the run's data root, as lineage
/// draws them: a folder's files by their path under the root with their
/// size; a store's objects by URL with their size and ETag (or version).
async fn files_of(engine: &Engine, system: &str, table: &str) -> Result<Vec<(String, String)>> {
    let Some((id, _)) = engine.catalog.source_by_name(system, table) else {
        return Ok(Vec::new());
    };
    match &engine.data {
        DataSource::Empty => Ok(Vec::new()),
        DataSource::Folder(root) => {
            let files = crate::run::files::source_files(&engine.catalog, root, id)?;
            Ok(files
                .into_iter()
                .map(|f| {
                    let shown = f
                        .strip_prefix(root)
                        .unwrap_or(&f)
                        .to_string_lossy()
                        .replace('\\', "/");
                    let detail = std::fs::metadata(&f)
                        .map(|m| format!("{} bytes", m.len()))
                        .unwrap_or_default();
                    (shown, detail)
                })
                .collect())
        }
        DataSource::Store(store) => {
            let objects = store.table_objects(&engine.catalog, id).await?;
            Ok(objects
                .iter()
                .map(|o| {
                    let mut detail = format!("{} bytes", o.size);
                    if let Some(etag) = &o.e_tag {
                        detail.push_str(&format!(", ETag {etag}"));
                    }
                    if let Some(version) = &o.version {
                        detail.push_str(&format!(", version {version}"));
                    }
                    (store.name(&o.location), detail)
                })
                .collect())
        }
    }
}
