//! Duplication rates of the identities the models declare: how many
//! surviving records are a second (or third…) copy of an identity another
//! record already has. metrics.md's identity rules fold such copies into
//! one (two contacts with one email are one person; two billing accounts of
//! one CRM account are one customer), so the numbers stay right; the rate
//! says how much folding the rules are doing, and a high one says the
//! upstream system needs a clean-up before the next rule is needed.
//!
//! Each identity is a field an entity of models/ declares (`contact.person_id`,
//! `account.domain`, `billing_account.customer_id`), read over the entity,
//! never over a vendor's column, one DataFusion aggregate each:
//! rows − distinct values = duplicates, rate = duplicates / rows. Only
//! surviving records count: not merged away by the entity's own identity
//! rule (`merged_into` or a merge audit) and not soft-deleted.

use crate::run::memory::WithinMemory;
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::functions::expr_fn::coalesce;
use datafusion::functions_aggregate::expr_fn::{count, count_distinct};
use datafusion::logical_expr::{JoinType, cast, col, lit};
use serde::Serialize;

use super::Status;
use super::thresholds::{Thresholds, share_above};
use crate::decimal::Dec;
use crate::error::{CanonError, Result};
use crate::run::Engine;

/// One declared identity whose duplicates are counted.
struct Identity {
    /// What it is, for people.
    name: &'static str,
    entity: &'static str,
    /// The entity's field holding the identity.
    field: &'static str,
    /// Which surviving rows have the identity at all (SQL over the entity's
    /// fields), beyond a non-null value: a contact without email, or a
    /// billing account matched to no CRM account, is its own identity by
    /// rule and cannot be a duplicate, so it is not counted.
    having: Option<&'static str>,
    /// The fields `having` reads: an entity without them is not checked.
    needs: &'static [&'static str],
}

/// metrics.md's identity rules: persons by email, CRM accounts by web
/// domain, billing accounts per CRM account.
const IDENTITIES: [Identity; 3] = [
    Identity {
        name: "persons by email",
        entity: "contact",
        field: "person_id",
        having: Some("email IS NOT NULL AND trim(email) <> ''"),
        needs: &["email"],
    },
    Identity {
        name: "CRM accounts by domain",
        entity: "account",
        field: "domain",
        having: None,
        needs: &[],
    },
    Identity {
        name: "billing accounts per CRM account",
        entity: "billing_account",
        field: "customer_id",
        having: Some("is_crm_matched"),
        needs: &["is_crm_matched"],
    },
];

/// One identity's duplication.
#[derive(Debug, Clone, Serialize)]
pub struct DuplicationRate {
    /// `identity_duplication`
    pub check: &'static str,
    /// `persons by email`
    pub identity: String,
    /// `contact.person_id`
    pub field: String,
    /// `system/table` of the entity.
    pub table: String,
    /// Surviving records with the identity.
    pub rows: i64,
    /// Distinct identities among them.
    pub identities: i64,
    /// rows − identities.
    pub duplicates: i64,
    /// duplicates / rows, 6 decimals (none when there are no rows).
    pub rate: Option<Dec>,
    /// The rate warns above this (canon.yaml `quality.duplication_warn_above`).
    pub warn_above: Dec,
    pub status: Status,
}

/// The duplication rate of every declared identity whose entity and field
/// the project's models have.
pub async fn duplication_rates(engine: &Engine) -> Result<Vec<DuplicationRate>> {
    let thresholds = Thresholds::of(&engine.catalog)?;
    let mut out = Vec::new();
    for identity in &IDENTITIES {
        if let Some(rate) = duplication(engine, identity, &thresholds).await? {
            out.push(rate);
        }
    }
    Ok(out)
}

async fn duplication(
    engine: &Engine,
    identity: &Identity,
    thresholds: &Thresholds,
) -> Result<Option<DuplicationRate>> {
    let catalog = &engine.catalog;
    let Some((_, model, spec)) = catalog.entity(identity.entity) else {
        return Ok(None);
    };
    let has = |name: &str| spec.fields.iter().any(|f| f.name == name);
    if !has(identity.field) || !identity.needs.iter().all(|f| has(f)) {
        return Ok(None);
    }
    let mut rows = engine.entity_frame(identity.entity).await?;
    // Survivors only: a merged-away record is its survivor, not a copy.
    if let Some(merged_into) = spec.merged_into.as_deref().filter(|f| has(f)) {
        rows = rows.filter(col(merged_into).is_null())?;
    }
    if let Some(merges) = &spec.merges {
        let merged = engine
            .entity_frame(&merges.entity)
            .await?
            .filter(col(merges.from.as_str()).is_not_null())?
            .aggregate(
                vec![cast(col(merges.from.as_str()), DataType::Utf8).alias("_merged_away")],
                vec![],
            )?;
        rows = rows.join_on(
            merged,
            JoinType::LeftAnti,
            [cast(col(spec.key.as_str()), DataType::Utf8).eq(col("_merged_away"))],
        )?;
    }
    if has("is_deleted") {
        rows = rows.filter(!coalesce(vec![col("is_deleted"), lit(false)]))?;
    }
    let mut present = col(identity.field).is_not_null();
    if let Some(sql) = identity.having {
        let location = model.at(&crate::yaml_path!["entities"]);
        let schema = rows.schema().clone();
        let e = crate::compile::parse_expr(engine, sql, &schema, &location)?;
        present = present.and(coalesce(vec![e, lit(false)]));
    }
    let batches = rows
        .filter(present)?
        .aggregate(
            vec![],
            vec![
                count(lit(1i64)).alias("_rows"),
                count_distinct(col(identity.field)).alias("_identities"),
            ],
        )?
        .collect_within_memory()
        .await?;
    let (mut n, mut distinct) = (0i64, 0i64);
    for b in &batches {
        for i in 0..b.num_rows() {
            n += b.column(0).as_primitive::<Int64Type>().value(i);
            distinct += b.column(1).as_primitive::<Int64Type>().value(i);
        }
    }
    if distinct > n {
        return Err(CanonError::Internal(format!(
            "{distinct} distinct identities over {n} rows"
        )));
    }
    let duplicates = n - distinct;
    let warn_above = thresholds.duplication_warn_above;
    Ok(Some(DuplicationRate {
        check: "identity_duplication",
        identity: identity.name.to_string(),
        field: format!("{}.{}", identity.entity, identity.field),
        table: format!("{}/{}", model.spec.system, spec.source),
        rows: n,
        identities: distinct,
        duplicates,
        rate: Dec::from_int(duplicates).div(Dec::from_int(n), 6),
        warn_above,
        status: if share_above(duplicates, n, warn_above) {
            Status::Warn
        } else {
            Status::Pass
        },
    }))
}
