//! Entities as DataFrames: a source table mapped to business fields, joined
//! to the entities it links to, with identity (merge chains) resolved.
//!
//! A metric frame exposes the metric's own entity fields unqualified
//! (`amount`) and each linked entity's fields under the link name
//! (`account.industry`), so YAML expressions read like the model.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::arrow::array::{Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::{Column, DFSchema};
use datafusion::datasource::{MemTable, provider_as_source};
use datafusion::functions::expr_fn::coalesce;
use datafusion::logical_expr::LogicalPlanBuilder;
use datafusion::logical_expr::{Expr, JoinType, col};
use datafusion::prelude::DataFrame;

use super::parse_expr;
use crate::error::{CanonError, DataLocation, Result};
use crate::run::Engine;
use crate::yaml_path;

/// The entity `name` mapped from its source: one column per field, named
/// like the field, unqualified.
pub async fn entity_frame(engine: &Engine, name: &str) -> Result<DataFrame> {
    let catalog = &engine.catalog;
    let (id, model, entity) = catalog
        .entity(name)
        .ok_or_else(|| CanonError::request(format!("unknown entity `{name}`")))?;
    let source = engine
        .source_frame(&model.spec.system, &entity.source)
        .await?;
    let schema = source.schema().clone();
    let mut exprs = Vec::with_capacity(entity.fields.len());
    for (i, field) in entity.fields.iter().enumerate() {
        let sql = field.expr.as_deref().unwrap_or(&field.name);
        let location = catalog.entity_at(
            id,
            &if field.expr.is_some() {
                yaml_path!["fields", i, "expr"]
            } else {
                yaml_path!["fields", i, "name"]
            },
        );
        let expr = parse_expr(engine, sql, &schema, &location)?;
        exprs.push(expr.alias(&field.name));
    }
    Ok(source.select(exprs)?)
}

/// The frame a metric over `entity` reads: the entity plus the links named
/// in `links` (only those, so no join is paid for a field nobody uses).
pub async fn metric_frame(
    engine: &Engine,
    entity: &str,
    links: &BTreeSet<String>,
) -> Result<DataFrame> {
    let catalog = &engine.catalog;
    let (_, _, spec) = catalog
        .entity(entity)
        .ok_or_else(|| CanonError::request(format!("unknown entity `{entity}`")))?;
    let base = entity_frame(engine, entity).await?;
    let base_fields: Vec<String> = base
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let mut acc = base.alias(entity)?;
    let mut out: Vec<Expr> = base_fields
        .iter()
        .map(|f| Expr::Column(Column::new(Some(entity), f)).alias_qualified(Some(entity), f))
        .collect();
    for link in spec.links.iter().filter(|l| links.contains(&l.name)) {
        let (_, _, target_spec) = catalog.entity(&link.entity).ok_or_else(|| {
            CanonError::Internal(format!("link to unknown entity {}", link.entity))
        })?;
        let target = entity_frame(engine, &link.entity).await?;
        let target_fields: Vec<String> = target
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let fk = Expr::Column(Column::new(Some(entity), &link.field));
        let key_expr = match survivors(engine, &link.entity).await? {
            Some(map) => {
                let alias = format!("_{}_merge", link.name);
                acc = acc.join_on(
                    map.alias(&alias)?,
                    JoinType::Left,
                    [fk.clone()
                        .eq(Expr::Column(Column::new(Some(alias.as_str()), "id")))],
                )?;
                coalesce(vec![
                    Expr::Column(Column::new(Some(alias.as_str()), "survivor")),
                    fk,
                ])
            }
            None => fk,
        };
        acc = acc.join_on(
            target.alias(&link.name)?,
            JoinType::Left,
            [key_expr.eq(Expr::Column(Column::new(
                Some(link.name.as_str()),
                &target_spec.key,
            )))],
        )?;
        out.extend(target_fields.iter().map(|f| {
            Expr::Column(Column::new(Some(link.name.as_str()), f))
                .alias_qualified(Some(link.name.as_str()), f)
        }));
    }
    Ok(acc.select(out)?)
}

/// The schema of a metric frame with every link joined, for parsing a
/// metric's expressions before deciding which links it needs.
pub async fn full_schema(engine: &Engine, entity: &str) -> Result<DFSchema> {
    let (_, _, spec) = engine
        .catalog
        .entity(entity)
        .ok_or_else(|| CanonError::request(format!("unknown entity `{entity}`")))?;
    let all: BTreeSet<String> = spec.links.iter().map(|l| l.name.clone()).collect();
    let frame = metric_frame(engine, entity, &all).await?;
    Ok(frame.schema().clone())
}

/// For an entity with a merge rule, the id → survivor mapping of every
/// merged-away record, chains followed to the end. Merge audits are small,
/// so the chains are resolved here and the mapping joins in the plan.
async fn survivors(engine: &Engine, entity: &str) -> Result<Option<DataFrame>> {
    let (_, model, spec) = engine
        .catalog
        .entity(entity)
        .ok_or_else(|| CanonError::Internal(format!("unknown entity {entity}")))?;
    let Some(merged_into) = &spec.merged_into else {
        return Ok(None);
    };
    let pairs = entity_frame(engine, entity)
        .await?
        .filter(col(merged_into.as_str()).is_not_null())?
        .select(vec![
            datafusion::logical_expr::cast(col(spec.key.as_str()), DataType::Utf8).alias("id"),
            datafusion::logical_expr::cast(col(merged_into.as_str()), DataType::Utf8).alias("into"),
        ])?
        .collect()
        .await?;
    let mut next: BTreeMap<String, String> = BTreeMap::new();
    for batch in &pairs {
        let ids = batch.column(0).as_any().downcast_ref::<StringArray>();
        let intos = batch.column(1).as_any().downcast_ref::<StringArray>();
        let (Some(ids), Some(intos)) = (ids, intos) else {
            return Err(CanonError::Internal("merge pairs are not strings".into()));
        };
        for i in 0..ids.len() {
            if !ids.is_null(i) && !intos.is_null(i) {
                next.insert(ids.value(i).to_string(), intos.value(i).to_string());
            }
        }
    }
    let location = DataLocation {
        system: model.spec.system.clone(),
        table: spec.source.clone(),
        file: None,
        column: Some(merged_into.clone()),
    };
    let resolved = resolve_chains(&next).map_err(|id| {
        CanonError::data(
            location,
            format!("merge chain starting at `{id}` loops back on itself"),
        )
    })?;
    let (ids, survivors): (Vec<&str>, Vec<&str>) = resolved
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .unzip();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("survivor", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(ids)),
            Arc::new(StringArray::from(survivors)),
        ],
    )?;
    let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
    let plan = LogicalPlanBuilder::scan(
        format!("{entity}_survivors"),
        provider_as_source(Arc::new(table)),
        None,
    )?
    .build()?;
    Ok(Some(DataFrame::new(engine.ctx.state(), plan)))
}

/// Follows every `id → into` edge to the record that was not merged away.
/// Returns the id that starts a cycle when the chains loop.
pub fn resolve_chains(next: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for start in next.keys() {
        let mut current = start;
        let mut steps = 0;
        while let Some(n) = next.get(current) {
            current = n;
            steps += 1;
            if steps > next.len() {
                return Err(start.clone());
            }
        }
        out.insert(start.clone(), current.clone());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_resolve_to_the_survivor() {
        // A merged into B, later B into C: both resolve to C.
        let next: BTreeMap<String, String> = [("A", "B"), ("B", "C")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let r = resolve_chains(&next).unwrap();
        assert_eq!(r["A"], "C");
        assert_eq!(r["B"], "C");
    }

    #[test]
    fn a_loop_is_reported() {
        let next: BTreeMap<String, String> = [("A", "B"), ("B", "A")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert!(resolve_chains(&next).is_err());
    }
}
