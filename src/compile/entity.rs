//! Entities as DataFrames: a source table mapped to business fields, joined
//! to the entities it links to, with identity (merge chains) resolved.
//!
//! A metric frame exposes the metric's own entity fields unqualified
//! (`amount`) and each linked entity's fields under the link name
//! (`account.industry`), so YAML expressions read like the model.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::datatypes::FieldRef;
use datafusion::common::{Column, DFSchema, TableReference};
use datafusion::datasource::provider_as_source;
use datafusion::functions::expr_fn::coalesce;
use datafusion::logical_expr::{Expr, ExprSchemable, JoinType, cast, col};
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use datafusion::prelude::DataFrame;

use super::parse_expr;
use super::plan::{self, FramePlan};
use crate::compile::planner::Planner;
use crate::error::{CanonError, DataLocation, Result};
use crate::yaml_path;

/// The entity `name` mapped from its source: one column per field, named
/// like the field, unqualified.
///
/// A field may also read a field of a linked entity (`coalesce(crm.account_id,
/// id)`): such *linked fields* are computed after the links they name are
/// joined, so identity rules (a billing account's customer is its CRM
/// survivor) are declared once on the entity, not in every metric.
pub async fn entity_frame(engine: &Planner, name: &str) -> Result<DataFrame> {
    Ok(engine.planned_frame(entity_plan(engine, name).await?))
}

/// [`entity_frame`]'s plan, built once per engine: joins and schemas are
/// taken from it without wrapping it in a DataFrame (which clones the
/// session).
pub fn entity_plan<'a>(
    engine: &'a Planner,
    name: &'a str,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<LogicalPlan>> + Send + 'a>> {
    Box::pin(async move {
        let build = async {
            let carrying = entity_carrying_plan(engine, name).await?;
            let fields: Vec<Column> = carrying
                .schema()
                .columns()
                .into_iter()
                .filter(|c| !is_carried(&c.name))
                .collect();
            if fields.len() == carrying.schema().fields().len() {
                return Ok(Some(carrying));
            }
            Ok(Some(plan::project_columns(carrying, &fields)?))
        };
        engine
            .memoized_plan(&format!("entity {name}"), build)
            .await?
            .ok_or_else(|| CanonError::Internal(format!("entity `{name}` built no plan")))
    })
}

/// [`entity_plan`] that also carries, for each link its linked fields
/// joined, the linked entity's fields under [`carried`] names. A metric
/// path through that link then reads them instead of joining the linked
/// entity a second time: nrr's `subscription.billing_account.crm.domain`
/// is served by the CRM join that already gives the billing account its
/// customer. The relation is the same either way (one left join of the
/// same link, merges resolved the same way).
fn entity_carrying_plan<'a>(
    engine: &'a Planner,
    name: &'a str,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<LogicalPlan>> + Send + 'a>> {
    Box::pin(async move {
        let build = async {
            let frame = build_entity_frame(engine, name).await?;
            Ok(Some(frame.into_unoptimized_plan()))
        };
        engine
            .memoized_plan(&format!("entity carrying {name}"), build)
            .await?
            .ok_or_else(|| CanonError::Internal(format!("entity `{name}` built no plan")))
    })
}

/// The name under which an entity's plan carries `field` of the entity its
/// link `link` points at (never a field's: the catalog rejects field names
/// that start with `_`).
fn carried(link: &str, field: &str) -> String {
    format!("_via_{link}__{field}")
}

fn is_carried(name: &str) -> bool {
    name.starts_with("_via_")
}

/// The entity's plain fields only (those that read no link): its source
/// mapped, without the joins its linked fields need. A link's match rate
/// counts over this: the same rows as the entity, none of its other joins.
pub async fn entity_plain_frame(engine: &Planner, name: &str) -> Result<DataFrame> {
    let build = async {
        let (frame, _) = plain_and_linked(engine, name).await?;
        Ok(Some(frame.into_unoptimized_plan()))
    };
    let plan = engine
        .memoized_plan(&format!("entity plain {name}"), build)
        .await?
        .ok_or_else(|| CanonError::Internal(format!("entity `{name}` built no plan")))?;
    Ok(engine.planned_frame(plan))
}

/// A linked field: its spec, SQL, location and the qualifiers it reads.
type LinkedField<'a> = (
    &'a crate::spec::FieldSpec,
    &'a str,
    crate::error::Location,
    BTreeSet<String>,
);

/// The source projected to the entity's plain fields, and its linked fields
/// still to compute.
async fn plain_and_linked<'a>(
    engine: &'a Planner,
    name: &str,
) -> Result<(DataFrame, Vec<LinkedField<'a>>)> {
    let catalog = &engine.catalog;
    let (id, model, entity) = catalog
        .entity(name)
        .ok_or_else(|| CanonError::request(format!("unknown entity `{name}`")))?;
    let source = engine
        .source_frame(&model.spec.system, &entity.source)
        .await?;
    let schema = source.schema().clone();
    let link_names: BTreeSet<&str> = entity.links.iter().map(|l| l.name.as_str()).collect();
    let mut plain = Vec::with_capacity(entity.fields.len());
    let mut linked = Vec::new();
    for (i, field) in entity.fields.iter().enumerate() {
        let sql = field.expr.as_deref().unwrap_or(&field.name);
        let location = catalog.entity_at(
            id,
            &if field.expr.is_some() {
                yaml_path!["fields", i, "expr"].to_vec()
            } else {
                yaml_path!["fields", i, "name"].to_vec()
            },
        );
        let used = qualifiers_in(engine, sql);
        if used.iter().any(|q| link_names.contains(q.as_str())) {
            linked.push((field, sql, location, used));
        } else {
            let expr = parse_expr(engine, sql, &schema, &location)?;
            plain.push(expr.alias(&field.name));
        }
    }
    Ok((source.project(plain)?, linked))
}

async fn build_entity_frame(engine: &Planner, name: &str) -> Result<DataFrame> {
    let (_, _, entity) = engine
        .catalog
        .entity(name)
        .ok_or_else(|| CanonError::request(format!("unknown entity `{name}`")))?;
    let link_names: BTreeSet<&str> = entity.links.iter().map(|l| l.name.as_str()).collect();
    let (frame, linked) = plain_and_linked(engine, name).await?;
    if linked.is_empty() {
        return Ok(frame);
    }
    // Join the links the linked fields name, then compute them.
    let plain_fields = field_names(frame.schema());
    let mut acc = frame.alias(name)?;
    let needed: BTreeSet<&str> = linked
        .iter()
        .flat_map(|(_, _, _, used)| used.iter().map(String::as_str))
        .filter(|q| link_names.contains(q))
        .collect();
    let mut carry = Vec::new();
    for link in entity
        .links
        .iter()
        .filter(|l| needed.contains(l.name.as_str()))
    {
        let q = TableReference::bare(link.name.as_str());
        let (joined, target_fields) = join_link(
            engine,
            acc,
            (name, TableReference::bare(name)),
            link,
            q,
            &[name.to_string(), link.name.clone()],
            false,
        )
        .await?;
        acc = joined;
        carry.extend(target_fields.into_iter().map(|f| {
            Expr::Column(Column::new(Some(link.name.as_str()), &f)).alias(carried(&link.name, &f))
        }));
    }
    let joined = acc.schema().clone();
    let mut out: Vec<Expr> = plain_fields
        .iter()
        .map(|f| Expr::Column(Column::new(Some(name), f)).alias(f))
        .collect();
    for (field, sql, location, _) in linked {
        let expr = super::parse_scoped(engine, sql, &joined, Some(name), &location)?;
        out.push(expr.alias(&field.name));
    }
    // After the fields (the sort below keeps unknown names last, in order).
    out.extend(carry);
    // Keep the declared field order.
    let order: Vec<&str> = entity.fields.iter().map(|f| f.name.as_str()).collect();
    out.sort_by_key(|e| {
        order
            .iter()
            .position(|n| *n == e.schema_name().to_string())
            .unwrap_or(usize::MAX)
    });
    acc.project(out)
}

/// The first parts of the compound identifiers in a SQL fragment
/// (`crm.account_id` → `crm`), to tell fields over links from plain ones.
fn qualifiers_in(engine: &Planner, sql: &str) -> BTreeSet<String> {
    use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, visit_expressions};
    let mut out = BTreeSet::new();
    // Any error is reported where the fragment itself is parsed.
    let nowhere = crate::error::Location::new(std::path::PathBuf::new(), 1, 1);
    if let Ok(ast) = super::sql_ast(engine, sql, &nowhere) {
        let _ = visit_expressions(&ast.expr, |e| {
            if let SqlExpr::CompoundIdentifier(parts) = e
                && parts.len() > 1
            {
                out.insert(parts[0].value.to_lowercase());
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
    }
    out
}

/// Left-joins the entity `link` points at, under qualifier `q`, to `acc`,
/// following merge chains to the survivor first. Returns the frame and the
/// linked entity's field names. With `carrying`, the linked entity brings
/// the fields of the links its own fields joined (see
/// [`entity_carrying_plan`]) for later steps of a metric frame.
async fn join_link(
    engine: &Planner,
    acc: DataFrame,
    (parent_entity, parent_q): (&str, TableReference),
    link: &crate::spec::LinkSpec,
    q: TableReference,
    path: &[String],
    carrying: bool,
) -> Result<(DataFrame, Vec<String>)> {
    engine.note_link(parent_entity, &link.name);
    let (_, _, target_spec) = engine
        .catalog
        .entity(&link.entity)
        .ok_or_else(|| CanonError::Internal(format!("link to unknown entity {}", link.entity)))?;
    let target = if carrying {
        entity_carrying_plan(engine, &link.entity).await?
    } else {
        entity_plan(engine, &link.entity).await?
    };
    let target_fields: Vec<String> = field_names(target.schema())
        .into_iter()
        .filter(|f| !is_carried(f))
        .collect();
    let acc = join_resolved(
        engine,
        acc,
        parent_q,
        link,
        (target, &target_spec.key),
        q,
        path,
    )
    .await?;
    Ok((acc, target_fields))
}

/// Left-joins `target` (rows of the entity `link` points at, keyed by the
/// column `key`) to `acc` under qualifier `q`, the foreign key first
/// followed along the entity's merge chains to its survivor. A conversion
/// joins a projection of the linked entity this way (`compile::conversion`).
pub(crate) async fn join_resolved(
    engine: &Planner,
    acc: DataFrame,
    parent_q: TableReference,
    link: &crate::spec::LinkSpec,
    (target, key): (LogicalPlan, &str),
    q: TableReference,
    path: &[String],
) -> Result<DataFrame> {
    let fk = Expr::Column(Column::new(Some(parent_q), &link.field));
    let mut acc = acc;
    let key_expr = match survivors(engine, &link.entity).await? {
        Some(map) => {
            // The merge map is typed like the target's key, so the join
            // compares the foreign key as it is (no cast of the large side).
            let key_type = target
                .schema()
                .field_with_unqualified_name(key)?
                .data_type()
                .clone();
            let fk_type = fk.get_type(acc.schema())?;
            let fk = if fk_type == key_type {
                fk
            } else {
                cast(fk, key_type)
            };
            let alias = format!("_{}_merge", path.join("_"));
            acc = acc.join_plan(
                plan::alias(map, TableReference::bare(alias.as_str()))?,
                JoinType::Left,
                vec![
                    fk.clone()
                        .eq(Expr::Column(Column::new(Some(alias.as_str()), "id"))),
                ],
            )?;
            let survivor = Expr::Column(Column::new(Some(alias.as_str()), "survivor"));
            coalesce(vec![survivor, fk])
        }
        None => fk,
    };
    acc.join_plan(
        plan::alias(target, q.clone())?,
        JoinType::Left,
        vec![key_expr.eq(Expr::Column(Column::new(Some(q), key)))],
    )
}

/// A path of links from a metric's entity: `["account"]` is `account.x`,
/// `["deal", "account"]` is `deal.account.x` (a link of a linked entity).
pub type LinkPath = Vec<String>;

/// How deep expressions may follow links: `a.b.c.field` at most, the
/// deepest qualifier (catalog.schema.table) a SQL identifier can carry.
const MAX_LINK_DEPTH: usize = 3;

/// The qualifier a link path's fields carry (`deal.account` → partial reference).
pub fn qualifier(path: &[String]) -> TableReference {
    match path {
        [t] => TableReference::bare(t.as_str()),
        [s, t] => TableReference::partial(s.as_str(), t.as_str()),
        [c, s, t] => TableReference::full(c.as_str(), s.as_str(), t.as_str()),
        _ => TableReference::bare(path.join("_")),
    }
}

/// The link path a column qualifier names, if it is not the metric's own entity.
pub fn link_path(relation: &TableReference, entity: &str) -> Option<LinkPath> {
    let path: LinkPath = match relation {
        TableReference::Bare { table } => vec![table.to_string()],
        TableReference::Partial { schema, table } => vec![schema.to_string(), table.to_string()],
        TableReference::Full {
            catalog,
            schema,
            table,
        } => vec![catalog.to_string(), schema.to_string(), table.to_string()],
    };
    (path != [entity.to_string()]).then_some(path)
}

/// The frame a metric over `entity` reads: the entity plus the link paths in
/// `links` and their prefixes (only those, so no join is paid for a field
/// nobody uses). Linked records that were merged away resolve to their
/// survivor before the join.
pub async fn metric_frame(
    engine: &Planner,
    entity: &str,
    links: &BTreeSet<LinkPath>,
) -> Result<DataFrame> {
    // Built once per engine: every window of a metric (twelve for a
    // snapshot by month) and every metric over the same links share it.
    let build = async {
        Ok(Some(
            build_metric_frame(engine, entity, links)
                .await?
                .into_unoptimized_plan(),
        ))
    };
    let plan = engine
        .memoized_plan(&format!("metric frame {entity} {links:?}"), build)
        .await?
        .ok_or_else(|| CanonError::Internal(format!("no metric frame over `{entity}`")))?;
    Ok(engine.planned_frame(plan))
}

async fn build_metric_frame(
    engine: &Planner,
    entity: &str,
    links: &BTreeSet<LinkPath>,
) -> Result<DataFrame> {
    let base = engine.planned_frame(entity_carrying_plan(engine, entity).await?);
    let base_fields: Vec<Column> = base
        .schema()
        .fields()
        .iter()
        .filter(|f| !is_carried(f.name()))
        .map(|f| Column::new(Some(entity), f.name()))
        .collect();
    with_links(engine, base.alias(entity)?, entity, base_fields, links).await
}

/// `frame` — rows of `entity` under its own name, carrying at least the
/// foreign keys `links` leave from — with the link paths in `links`
/// joined, projected to `keep` and every linked field. A metric frame is
/// this over the whole entity; the match-rate checks join it to an
/// entity's plain rows. (A conversion joins a projection of its linked
/// entity instead: [`join_resolved`].)
pub async fn with_links(
    engine: &Planner,
    frame: DataFrame,
    entity: &str,
    keep: Vec<Column>,
    links: &BTreeSet<LinkPath>,
) -> Result<DataFrame> {
    let mut acc = frame;
    let mut out = keep;
    for step in link_steps(&engine.catalog, entity, links)? {
        let parent_q = match &step.path[..step.path.len() - 1] {
            [] => TableReference::bare(entity),
            parent => qualifier(parent),
        };
        let q = qualifier(&step.path);
        let (joined, target_fields) = match carried_link(engine, &acc, &parent_q, step.link).await?
        {
            Some(target_fields) => {
                // The parent's own plan joined this link: read its fields.
                engine.note_link(&step.parent, &step.link.name);
                let mut exprs: Vec<Expr> = acc
                    .schema()
                    .columns()
                    .into_iter()
                    .map(Expr::Column)
                    .collect();
                exprs.extend(target_fields.iter().map(|f| {
                    Expr::Column(Column::new(
                        Some(parent_q.clone()),
                        carried(&step.link.name, f),
                    ))
                    .alias_qualified(Some(q.clone()), f)
                }));
                (acc.project(exprs)?, target_fields)
            }
            None => {
                join_link(
                    engine,
                    acc,
                    (&step.parent, parent_q),
                    step.link,
                    q.clone(),
                    &step.path,
                    true,
                )
                .await?
            }
        };
        acc = joined;
        out.extend(
            target_fields
                .iter()
                .map(|f| Column::new(Some(q.clone()), f)),
        );
    }
    // Only the entities' fields: the merge maps' columns are dropped.
    let (state, plan) = acc.into_parts();
    Ok(DataFrame::new(state, plan::project_columns(plan, &out)?))
}

/// The fields of the entity `link` points at, when `frame` carries them
/// for the rows under `parent_q` (the parent's plan joined that link).
async fn carried_link(
    engine: &Planner,
    frame: &DataFrame,
    parent_q: &TableReference,
    link: &crate::spec::LinkSpec,
) -> Result<Option<Vec<String>>> {
    let schema = frame.schema();
    let carries =
        |f: &str| schema.has_column(&Column::new(Some(parent_q.clone()), carried(&link.name, f)));
    if !carries(&key_of(engine, &link.entity)?) {
        return Ok(None);
    }
    let fields = field_names(entity_plan(engine, &link.entity).await?.schema());
    Ok(fields.iter().all(|f| carries(f)).then_some(fields))
}

/// The names of a plan's output fields, in order.
fn field_names(schema: &DFSchema) -> Vec<String> {
    schema.fields().iter().map(|f| f.name().clone()).collect()
}

fn key_of(engine: &Planner, entity: &str) -> Result<String> {
    let (_, _, spec) = engine
        .catalog
        .entity(entity)
        .ok_or_else(|| CanonError::Internal(format!("link to unknown entity {entity}")))?;
    Ok(spec.key.clone())
}

/// One link to join for a metric frame: its path, the entity it leaves
/// from, and the link itself.
struct LinkStep<'a> {
    path: LinkPath,
    parent: String,
    link: &'a crate::spec::LinkSpec,
}

/// Every prefix of every path in `links`, parents before children, with the
/// entity each one leaves from.
fn link_steps<'a>(
    catalog: &'a crate::catalog::Catalog,
    entity: &str,
    links: &BTreeSet<LinkPath>,
) -> Result<Vec<LinkStep<'a>>> {
    let all: BTreeSet<LinkPath> = links
        .iter()
        .flat_map(|path| (1..=path.len()).map(|n| path[..n].to_vec()))
        .collect();
    let mut entity_of: BTreeMap<LinkPath, String> = BTreeMap::new();
    let mut steps = Vec::with_capacity(all.len());
    for path in all {
        let parent = match &path[..path.len() - 1] {
            [] => entity.to_string(),
            parent => entity_of.get(parent).cloned().ok_or_else(|| {
                CanonError::Internal(format!("link path {parent:?} seen out of order"))
            })?,
        };
        let link = find_link(catalog, &parent, path.last().expect("non-empty path"))?;
        entity_of.insert(path.clone(), link.entity.clone());
        steps.push(LinkStep { path, parent, link });
    }
    Ok(steps)
}

/// The link `name` of entity `parent`.
pub(crate) fn find_link<'a>(
    catalog: &'a crate::catalog::Catalog,
    parent: &str,
    name: &str,
) -> Result<&'a crate::spec::LinkSpec> {
    let (_, _, spec) = catalog
        .entity(parent)
        .ok_or_else(|| CanonError::Internal(format!("unknown entity {parent}")))?;
    spec.links.iter().find(|l| l.name == name).ok_or_else(|| {
        CanonError::request(format!(
            "entity `{parent}` has no link `{name}` (links: {})",
            spec.links
                .iter()
                .map(|l| l.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

/// The test that holds on `entity`'s rows whose linked row is missing, for
/// the first linked field `expr` reads: `contact.person_id` over lifecycle
/// events gives `contact.contact_id IS NULL`. A hint for an error that asks
/// a definition to exclude such rows; `None` when `expr` reads no link.
pub(crate) fn missing_link_test(
    catalog: &crate::catalog::Catalog,
    entity: &str,
    expr: &str,
) -> Option<String> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.';
    expr.split(|c: char| !word(c))
        .filter(|t| t.contains('.') && t.starts_with(|c: char| c.is_ascii_alphabetic()))
        .find_map(|token| {
            let path: Vec<&str> = token.split('.').collect();
            let links = &path[..path.len() - 1];
            let mut at = entity;
            for link in links {
                at = find_link(catalog, at, link).ok()?.entity.as_str();
            }
            let (_, _, target) = catalog.entity(at)?;
            Some(format!("{}.{} IS NULL", links.join("."), target.key))
        })
}

/// The schema `metric_frame(engine, entity, links)` has, without building
/// its joins: what a metric's expressions are parsed against to learn which
/// links they use. Building every link's join only to read its columns
/// dominated compile time, and noted links no plan joins (whose match rates
/// the result would then report and compute).
pub async fn metric_schema(
    engine: &Planner,
    entity: &str,
    links: &BTreeSet<LinkPath>,
) -> Result<DFSchema> {
    let build = async {
        let base = entity_plan(engine, entity).await?;
        let mut fields: Vec<(Option<TableReference>, FieldRef)> = base
            .schema()
            .fields()
            .iter()
            .map(|f| (Some(TableReference::bare(entity)), f.clone()))
            .collect();
        for step in link_steps(&engine.catalog, entity, links)? {
            let target = entity_plan(engine, &step.link.entity).await?;
            let q = qualifier(&step.path);
            fields.extend(
                target
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| (Some(q.clone()), f.clone())),
            );
        }
        Ok(DFSchema::new_with_metadata(fields, Default::default())?)
    };
    engine.without_noting_links(build).await
}

/// Every link path from `entity` to a depth of two: the frame parsed
/// against before a metric's links are known.
pub fn all_link_paths(catalog: &crate::catalog::Catalog, entity: &str) -> BTreeSet<LinkPath> {
    let mut paths = BTreeSet::new();
    let mut frontier: Vec<(LinkPath, String)> = vec![(Vec::new(), entity.to_string())];
    while let Some((path, current)) = frontier.pop() {
        if path.len() >= MAX_LINK_DEPTH {
            continue;
        }
        if let Some((_, _, spec)) = catalog.entity(&current) {
            for link in &spec.links {
                let mut next = path.clone();
                next.push(link.name.clone());
                paths.insert(next.clone());
                frontier.push((next, link.entity.clone()));
            }
        }
    }
    paths
}

/// For an entity with a merge rule, the id → survivor mapping of every
/// merged-away record, chains followed to the end. Merge audits are small,
/// so the chains are resolved here and the mapping joins in the plan.
async fn survivors(engine: &Planner, entity: &str) -> Result<Option<LogicalPlan>> {
    engine
        .memoized_plan(
            &format!("survivors {entity}"),
            build_survivors(engine, entity),
        )
        .await
}

async fn build_survivors(engine: &Planner, entity: &str) -> Result<Option<LogicalPlan>> {
    let (_, model, spec) = engine
        .catalog
        .entity(entity)
        .ok_or_else(|| CanonError::Internal(format!("unknown entity {entity}")))?;
    // The ids typed like the entity's key first, and only then as text for
    // following the chains: audit ids "042" and "42" name one integer
    // record. The ids as written come along, so an id that is not of the
    // key's type is reported, not left unmerged (survivors.rs).
    let key_type = entity_plan(engine, entity)
        .await?
        .schema()
        .field_with_unqualified_name(&spec.key)?
        .data_type()
        .clone();
    let as_key = |e: Expr| match key_type {
        DataType::Utf8 => cast(e, DataType::Utf8),
        _ => cast(
            datafusion::logical_expr::try_cast(e, key_type.clone()),
            DataType::Utf8,
        ),
    };
    // (id, into) typed like the key, then as written.
    let pair = |from: &str, into: &str| {
        vec![
            as_key(col(from)).alias("id"),
            as_key(col(into)).alias("into"),
            cast(col(from), DataType::Utf8).alias("id_as_written"),
            cast(col(into), DataType::Utf8).alias("into_as_written"),
        ]
    };
    // From a field of the entity itself (CRM accounts carry
    // master_record_id), or from a merge audit entity (HubSpot contacts).
    let (pairs, column, (system, table)) = match (&spec.merged_into, &spec.merges) {
        (Some(merged_into), _) => (
            entity_frame(engine, entity)
                .await?
                .filter(col(merged_into.as_str()).is_not_null())?
                .select(pair(&spec.key, merged_into))?,
            merged_into.clone(),
            (model.spec.system.clone(), spec.source.clone()),
        ),
        (None, Some(audit)) => {
            let (_, audit_model, audit_spec) = engine
                .catalog
                .entity(&audit.entity)
                .ok_or_else(|| CanonError::Internal(format!("unknown entity {}", audit.entity)))?;
            (
                entity_frame(engine, &audit.entity)
                    .await?
                    .filter(col(audit.into.as_str()).is_not_null())?
                    .select(pair(&audit.from, &audit.into))?,
                audit.into.clone(),
                (audit_model.spec.system.clone(), audit_spec.source.clone()),
            )
        }
        (None, None) => return Ok(None),
    };
    // Planned now, run when a plan that joins the map runs (survivors.rs);
    // what it reads goes into the lineage of the results that join it.
    let mut reads = BTreeMap::new();
    super::planner::scanned_columns(&pairs.clone().into_optimized_plan()?, &mut reads);
    let location = DataLocation {
        system,
        table,
        file: None,
        column: Some(column),
    };
    let table = super::survivors::Survivors::new(
        pairs.into_unoptimized_plan(),
        reads,
        location,
        format!("{key_type}"),
    );
    let plan = LogicalPlanBuilder::scan(
        format!("{entity}_survivors"),
        provider_as_source(Arc::new(table)),
        None,
    )?
    .build()?;
    let typed = |c: &str| match key_type {
        DataType::Utf8 => col(c),
        _ => datafusion::logical_expr::try_cast(col(c), key_type.clone()).alias(c),
    };
    Ok(Some(plan::project(
        plan,
        vec![typed("id"), typed("survivor")],
    )?))
}
