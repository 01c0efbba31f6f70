//! Data quality: per-table checks (freshness from the sync column, primary
//! key uniqueness, completeness of required columns, declared value domains
//! in `domains`), each one DataFusion aggregate over the table, the row
//! count against the last one seen (`volume`), and the match rate of every
//! cross-system identity rule. `canon check` runs them over every model; a query runs the
//! table checks on its own inputs and is blocked when one is at error.

pub mod dictionaries;
pub mod domains;
pub mod gates;
pub mod identity_duplication;
pub mod intervals;
pub mod match_rates;
pub mod required_links;
pub mod subject;
pub mod subscription_deals;
pub mod thresholds;
pub mod uniqueness;
pub mod volume;
pub mod window;

use crate::run::memory::WithinMemory;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{Int64Type, TimestampMicrosecondType};
use datafusion::functions_aggregate::expr_fn::{count, max};
use datafusion::logical_expr::{Expr, col, lit};
use serde::Serialize;

use crate::decimal::Dec;
use crate::error::Result;
use crate::run::Engine;

/// One identity rule's match rate over all rows of the entity that links.
///
/// It is judged like the deal match rates, against canon.yaml
/// `quality.match_rate_warn_below`: a link that stopped resolving changes
/// every number that joins it (an internal account whose CRM link is gone is
/// no longer excluded from ARR), so a collapsed rate must warn wherever it is
/// relied on, not pass as information.
#[derive(Debug, Clone, Serialize)]
pub struct MatchRate {
    pub check: &'static str,
    /// `billing_account.crm → account`
    pub rule: String,
    /// `billing/account`
    pub table: String,
    pub rows: i64,
    pub matched: i64,
    /// matched / rows, 6 decimals.
    pub rate: Option<Dec>,
    /// The rate warns below this (canon.yaml `quality.match_rate_warn_below`).
    pub warn_below: Dec,
    pub status: match_rates::RateStatus,
    /// Why the rate warns when it is not a rate (no rows to judge).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Match rates of `links` (entity, link name) that cross systems, in order.
pub async fn identity_match_rates(
    engine: &Engine,
    links: &crate::run::LinkSet,
) -> Result<Vec<MatchRate>> {
    let catalog = &engine.catalog;
    let mut out = Vec::new();
    if links.is_empty() {
        return Ok(out);
    }
    let thresholds = thresholds::Thresholds::of(catalog)?;
    for (entity, link_name) in links.iter().cloned() {
        let Some((_, model, spec)) = catalog.entity(&entity) else {
            continue;
        };
        let Some(link) = spec.links.iter().find(|l| l.name == link_name) else {
            continue;
        };
        let Some((_, target_model, target)) = catalog.entity(&link.entity) else {
            continue;
        };
        if target_model.spec.system == model.spec.system {
            continue;
        }
        let paths = [vec![link_name.clone()]].into_iter().collect();
        // Over the entity's plain fields when the link leaves from one: the
        // same rows without the joins of the entity's own linked fields.
        let plain = engine.entity_plain_frame(&entity).await?;
        let frame = if plain.schema().has_column_with_unqualified_name(&link.field) {
            engine.bound(
                crate::compile::entity::with_links(
                    engine,
                    plain.alias(&entity)?,
                    &entity,
                    Vec::new(),
                    &paths,
                )
                .await?,
            )
        } else {
            engine.metric_frame(&entity, &paths).await?
        };
        let matched = Expr::Column(datafusion::common::Column::new(
            Some(link_name.as_str()),
            &target.key,
        ));
        let batches = frame
            .aggregate(
                vec![],
                vec![
                    count(lit(1i64)).alias("rows"),
                    count(matched).alias("matched"),
                ],
            )?
            .select(vec![col("rows"), col("matched")])?
            .collect_within_memory()
            .await?;
        let (mut rows, mut hit) = (0i64, 0i64);
        for b in &batches {
            use datafusion::arrow::array::AsArray;
            use datafusion::arrow::datatypes::Int64Type;
            for i in 0..b.num_rows() {
                rows += b.column(0).as_primitive::<Int64Type>().value(i);
                hit += b.column(1).as_primitive::<Int64Type>().value(i);
            }
        }
        let table = format!("{}/{}", model.spec.system, spec.source);
        let warn_below = thresholds.match_rate_for(&format!("{entity}.{link_name}"));
        let (status, detail) =
            match_rates::judge(rows, hit, warn_below, || format!("{table} has no rows"));
        out.push(MatchRate {
            check: "identity_match_rate",
            rule: format!("{entity}.{link_name} → {}", link.entity),
            table,
            rows,
            matched: hit,
            rate: Dec::from_int(hit).div(Dec::from_int(rows), 6),
            warn_below,
            status,
            detail,
        });
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Warn,
    Error,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Error => "error",
        }
    }
}

/// One check of one table.
#[derive(Debug, Clone, Serialize)]
pub struct TableCheck {
    pub check: &'static str,
    /// `system/table`
    pub table: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    pub status: Status,
    pub detail: String,
    /// Offending key values (primary key check), at most ten.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<String>,
    /// Freshness: the latest sync time, so a cached result's freshness can be
    /// judged again against a later "now" without reading the table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_sync: Option<String>,
}

/// The latest sync a stored freshness check recorded (`latest_sync`, as a
/// result's JSON keeps it); `None` for any other check or no time. The one
/// reader of that field: re-judging freshness, a conversion's window and
/// the data's reach all start from it.
pub fn synced(check: &serde_json::Value) -> Option<chrono::DateTime<chrono::Utc>> {
    (check.get("check").and_then(|v| v.as_str()) == Some("freshness"))
        .then(|| check.get("latest_sync").and_then(|v| v.as_str()))
        .flatten()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// How far a sync time may lie after "now" and still be read as the two
/// clocks' disagreement. Beyond it the latest sync is no evidence of
/// freshness: one row stamped in the future would otherwise pass a table
/// whose every other row is months old.
pub const CLOCK_SKEW_HOURS: f64 = 1.0;

/// The status and explanation of a table last synced at `synced`, as of `now`.
pub fn judge_freshness(
    synced: Option<chrono::DateTime<chrono::Utc>>,
    now: chrono::DateTime<chrono::Utc>,
    thresholds: &crate::spec::FreshnessSpec,
) -> (Status, String) {
    let Some(synced) = synced else {
        return (
            Status::Error,
            "no sync time at all (empty table)".to_string(),
        );
    };
    let age_hours = (now - synced).num_microseconds().unwrap_or(i64::MAX) as f64 / 3.6e9;
    if age_hours < -CLOCK_SKEW_HOURS {
        return (
            Status::Error,
            format!(
                "last synced {}, {:.1} h after {}: a sync cannot be later than now (a wrong \
                 clock, a damaged extract, or a now set before the data: --now or canon.yaml's \
                 clock), so how fresh the table is cannot be known",
                synced.to_rfc3339(),
                -age_hours,
                now.to_rfc3339()
            ),
        );
    }
    let status = if age_hours > f64::from(thresholds.error_after_hours) {
        Status::Error
    } else if age_hours > f64::from(thresholds.warn_after_hours) {
        Status::Warn
    } else {
        Status::Pass
    };
    let detail = format!(
        "last synced {}, {age_hours:.1} h before {} (warn after {} h, error after {} h)",
        synced.to_rfc3339(),
        now.to_rfc3339(),
        thresholds.warn_after_hours,
        thresholds.error_after_hours
    );
    (status, detail)
}

/// Freshness, completeness and (with `keys`) primary-key uniqueness of
/// source `system/table`. Queries gate on the first two (one cheap
/// aggregate); `canon check` also groups by every key.
pub async fn table_checks(engine: &Engine, key: &str, keys: bool) -> Result<Vec<TableCheck>> {
    let catalog = &engine.catalog;
    let (system, table) = key.split_once('/').unwrap_or((key, ""));
    let Some((_, source)) = catalog.source_by_name(system, table) else {
        return Ok(Vec::new());
    };
    let frame = engine.source_frame(system, table).await?;
    let freshness = catalog.freshness_of(source);
    let has = |c: &str| source.columns.iter().any(|x| x.name == c);
    let required: Vec<&str> = source
        .columns
        .iter()
        .filter(|c| !c.nullable)
        .map(|c| c.name.as_str())
        .collect();
    // One aggregate: rows, latest sync, non-null counts of required columns.
    let mut aggregates = vec![count(lit(1i64)).alias("_rows")];
    let fresh_col = has(&freshness.column).then(|| freshness.column.clone());
    if let Some(c) = &fresh_col {
        aggregates.push(max(col(c.as_str())).alias("_latest"));
    }
    for (i, c) in required.iter().enumerate() {
        aggregates.push(count(col(*c)).alias(format!("_nn{i}")));
    }
    let stats = frame
        .clone()
        .aggregate(vec![], aggregates)?
        .collect_within_memory()
        .await?;
    let mut out = Vec::new();
    let Some(b) = stats.first().filter(|b| b.num_rows() == 1) else {
        return Ok(out);
    };
    let rows = b.column(0).as_primitive::<Int64Type>().value(0);
    let mut next = 1;
    if let Some(c) = &fresh_col {
        let latest = b.column(next);
        next += 1;
        let synced = (!latest.is_null(0))
            .then(|| latest.as_primitive_opt::<TimestampMicrosecondType>())
            .flatten()
            .and_then(|a| chrono::DateTime::from_timestamp_micros(a.value(0)));
        let (status, detail) = judge_freshness(synced, engine.now, &freshness);
        out.push(TableCheck {
            check: "freshness",
            table: key.to_string(),
            column: Some(c.clone()),
            status,
            detail,
            examples: Vec::new(),
            latest_sync: synced.map(|t| t.to_rfc3339()),
        });
    }
    for (i, c) in required.iter().enumerate() {
        let non_null = b.column(next + i).as_primitive::<Int64Type>().value(0);
        let nulls = rows - non_null;
        if nulls > 0 {
            out.push(TableCheck {
                check: "completeness",
                table: key.to_string(),
                column: Some(c.to_string()),
                status: Status::Error,
                detail: format!("{nulls} of {rows} rows have no value in a required column"),
                examples: Vec::new(),
                latest_sync: None,
            });
        }
    }
    if keys && !source.primary_key.is_empty() {
        let keys: Vec<Expr> = source.primary_key.iter().map(|k| col(k.as_str())).collect();
        // As SQL's UNIQUE: a row with a missing key part identifies nothing
        // and is not a duplicate (completeness reports missing values).
        let present = keys
            .iter()
            .fold(lit(true), |acc, k| acc.and(k.clone().is_not_null()));
        let dups = frame
            .filter(present)?
            .aggregate(keys, vec![count(lit(1i64)).alias("_n")])?
            .filter(col("_n").gt(lit(1i64)))?;
        let total = dups.clone().count_within_memory().await?;
        let mut examples = Vec::new();
        if total > 0 {
            // The first ten keys in order, so a rerun shows the same ones.
            let order: Vec<_> = source
                .primary_key
                .iter()
                .map(|k| col(k.as_str()).sort(true, true))
                .collect();
            for batch in dups
                .sort(order)?
                .limit(0, Some(10))?
                .collect_within_memory()
                .await?
            {
                for r in 0..batch.num_rows() {
                    let mut parts = Vec::new();
                    for (k, name) in source.primary_key.iter().enumerate() {
                        let v = datafusion::arrow::util::display::array_value_to_string(
                            batch.column(k),
                            r,
                        )
                        .unwrap_or_default();
                        parts.push(format!("{name}={v}"));
                    }
                    examples.push(parts.join(", "));
                }
            }
        }
        out.push(TableCheck {
            check: "primary_key",
            table: key.to_string(),
            column: Some(source.primary_key.join(", ")),
            status: if total > 0 {
                Status::Error
            } else {
                Status::Pass
            },
            detail: if total > 0 {
                format!("{total} key value(s) occur more than once")
            } else {
                format!("unique over {rows} rows")
            },
            examples,
            latest_sync: None,
        });
    }
    Ok(out)
}

/// Everything `canon check` reports.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub now: String,
    pub status: Status,
    pub tables: Vec<TableCheck>,
    pub match_rates: Vec<MatchRate>,
    /// Revenue lines linked to a counted deal; counted deals with a billing
    /// subscription (see [`match_rates`]).
    pub deal_match_rates: Vec<match_rates::DealMatchRate>,
    /// Duplicates of each declared identity (see [`identity_duplication`]).
    pub identity_duplication: Vec<identity_duplication::DuplicationRate>,
}

impl CheckReport {
    /// Aligned, for people.
    pub fn table(&self) -> String {
        let mut out = format!("checks as of {}\n\n", self.now);
        for c in &self.tables {
            out.push_str(&format!(
                "  {:<5}  {:<34} {:<15} {}{}\n",
                c.status.name(),
                c.table,
                c.check,
                c.column
                    .as_ref()
                    .map(|c| format!("[{c}] "))
                    .unwrap_or_default(),
                c.detail
            ));
            for e in &c.examples {
                out.push_str(&format!("{:>60}{e}\n", ""));
            }
        }
        out.push_str("\ncross-system identity match rates\n");
        let rates = self
            .match_rates
            .iter()
            .map(|m| {
                (
                    &m.rule,
                    m.matched,
                    m.rows,
                    m.rate,
                    m.status,
                    m.warn_below,
                    &m.detail,
                )
            })
            .chain(self.deal_match_rates.iter().map(|m| {
                (
                    &m.rule,
                    m.matched,
                    m.rows,
                    m.rate,
                    m.status,
                    m.warn_below,
                    &m.detail,
                )
            }));
        for (rule, matched, rows, rate, status, warn_below, detail) in rates {
            out.push_str(&format!(
                "  {:<44} {:>8} of {:>8}  {:<9} {:<5} (warn below {}){}\n",
                rule,
                matched,
                rows,
                rate.map(|r| r.plain()).unwrap_or_default(),
                status.name(),
                warn_below.plain(),
                detail
                    .as_ref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            ));
        }
        if !self.identity_duplication.is_empty() {
            out.push_str("\nidentity duplication (surviving records that repeat an identity)\n");
        }
        for d in &self.identity_duplication {
            out.push_str(&format!(
                "  {:<44} {:>8} of {:>8}  {:<9} {:<5} (warn above {})  [{}]\n",
                d.identity,
                d.duplicates,
                d.rows,
                d.rate.map(|r| r.plain()).unwrap_or_default(),
                d.status.name(),
                d.warn_above.plain(),
                d.field
            ));
        }
        out.push_str(&format!("\noverall: {}\n", self.status.name()));
        out
    }
}

/// The engine's decode error `e` as a failed `readable` check of the table
/// whose file is damaged (once per table), or as it is when no file is
/// found damaged.
async fn unreadable(
    engine: &Engine,
    e: crate::error::CanonError,
    tables: &mut Vec<TableCheck>,
) -> Result<()> {
    let (location, message) = match engine.located(e, None).await {
        crate::error::CanonError::Data { location, message } => (location, message),
        other => return Err(other),
    };
    let table = format!("{}/{}", location.system, location.table);
    if !tables
        .iter()
        .any(|c| c.check == "readable" && c.table == table)
    {
        tables.push(TableCheck {
            check: "readable",
            table,
            column: location.column.clone(),
            status: Status::Error,
            detail: crate::error::CanonError::Data { location, message }.to_string(),
            examples: Vec::new(),
            latest_sync: None,
        });
    }
    Ok(())
}

/// Every table check of every source, and the match rate of every
/// cross-system link declared in models/.
pub async fn check_all(engine: &Engine) -> Result<CheckReport> {
    let catalog = &engine.catalog;
    let mut tables = Vec::new();
    for key in catalog.sources.keys() {
        let checks = async {
            let mut checks = table_checks(engine, key, true).await?;
            checks.extend(domains::domain_checks(engine, key, None).await?);
            Ok::<_, crate::error::CanonError>(checks)
        };
        // A damaged file is named (a decode error from the engine does not).
        let checks = match checks.await {
            Err(e) => Err(engine.located(e, Some(key)).await),
            ok => ok,
        };
        match checks {
            Ok(checks) => tables.extend(checks),
            // A table that cannot be read is a failed check, not the end of
            // the report: every other table is still checked.
            Err(e @ crate::error::CanonError::Data { .. }) => tables.push(TableCheck {
                check: "readable",
                table: key.clone(),
                column: None,
                status: Status::Error,
                detail: e.to_string(),
                examples: Vec::new(),
                latest_sync: None,
            }),
            // Which table's checks stopped (an engine error names none).
            Err(e) => {
                return Err(crate::error::CanonError::Context {
                    context: format!("checking {key}"),
                    source: Box::new(e),
                    hint: String::new(),
                });
            }
        }
    }
    for (name, id) in &catalog.entities {
        let model = &catalog.files.models[id.file];
        for link in &model.spec.entities[id.index].links {
            if let Some((_, target, _)) = catalog.entity(&link.entity)
                && target.spec.system != model.spec.system
            {
                engine.note_link(name, &link.name);
            }
        }
    }
    // Each readable table's row count against the last one seen.
    let counts: Vec<(String, i64)> = engine
        .sources_read()
        .await?
        .into_iter()
        .map(|(key, facts)| (key, facts.files.iter().map(|f| f.rows).sum()))
        .collect();
    let (volume, _) = volume::judge(engine, &counts)?;
    tables.extend(volume);
    // The row-count gates every query runs, over all rows of every entity
    // a metric counts or a link looks up (a table that cannot be read is
    // already reported above).
    let row_gates = gates::for_catalog(catalog);
    let outcomes =
        futures::future::join_all(row_gates.iter().map(|g| gates::run(engine, g, None))).await;
    for outcome in outcomes {
        match outcome {
            Ok(check) => tables.push(check),
            Err(crate::error::CanonError::Data { .. }) => {}
            // A damaged page the table checks did not read: the table is
            // unreadable, reported with the file named.
            Err(e) if crate::run::decode::is_decode_error(&e) => {
                unreadable(engine, e, &mut tables).await?
            }
            Err(e) => return Err(e),
        }
    }
    let readable = !tables.iter().any(|c| c.check == "readable");
    let links = engine.links_used();
    let rates = if readable {
        futures::try_join!(
            identity_match_rates(engine, &links),
            match_rates::check_all(engine),
            identity_duplication::duplication_rates(engine)
        )
    } else {
        Ok(Default::default())
    };
    let (match_rates, deal_match_rates, identity_duplication) = match rates {
        Ok(rates) => rates,
        Err(e) if crate::run::decode::is_decode_error(&e) => {
            unreadable(engine, e, &mut tables).await?;
            Default::default()
        }
        Err(e) => return Err(e),
    };
    // A rate past its threshold warns; only a table check can be at error.
    let status = tables
        .iter()
        .map(|c| c.status)
        .chain(match_rates.iter().map(|m| m.status.level()))
        .chain(deal_match_rates.iter().map(|m| m.status.level()))
        .chain(identity_duplication.iter().map(|d| d.status))
        .max()
        .unwrap_or(Status::Pass);
    Ok(CheckReport {
        now: engine.now.to_rfc3339(),
        status,
        tables,
        match_rates,
        deal_match_rates,
        identity_duplication,
    })
}
