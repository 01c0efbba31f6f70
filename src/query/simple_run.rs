//! Executing a simple, snapshot or conversion metric's aggregate and
//! reading its groups, tallies and member counts.

use super::*;
use crate::run::memory::WithinMemory;

/// Rows, Σ value and count of non-null values of a group.
#[derive(Debug, Clone, Copy)]
pub(super) struct Acc {
    pub(super) rows: i64,
    pub(super) sum: Dec,
    pub(super) count: i64,
}

impl Acc {
    pub(super) const ZERO: Acc = Acc {
        rows: 0,
        sum: Dec::ZERO,
        count: 0,
    };
    pub(super) fn add(self, o: Acc) -> Acc {
        Acc {
            rows: self.rows + o.rows,
            sum: self.sum + o.sum,
            count: self.count + o.count,
        }
    }
    pub(super) fn value(self, agg: Aggregation, scale: u32) -> Option<Dec> {
        match agg {
            Aggregation::Sum => Some(self.sum),
            Aggregation::Count => Some(Dec::from_int(self.count)),
            Aggregation::Avg => self.sum.div(Dec::from_int(self.count), scale),
        }
    }
    /// What a group contributes to the universe: additive for every aggregation.
    pub(super) fn contribution(self, agg: Aggregation) -> Dec {
        match agg {
            Aggregation::Count => Dec::from_int(self.count),
            Aggregation::Sum | Aggregation::Avg => self.sum,
        }
    }
}

/// A simple metric executed: included groups and what each exclusion removed.
pub(crate) struct SimpleOutcome {
    /// The metric whose definition produced it.
    pub(super) id: MetricId,
    /// The metric, or for a cohort's instants `metric at day`.
    pub(super) name: String,
    pub(super) agg: Aggregation,
    pub(super) scale: u32,
    pub(super) slices: Vec<String>,
    pub(super) buckets: Vec<String>,
    /// The same buckets with their dates.
    pub(super) periods: Vec<crate::calendar::Period>,
    pub(super) groups: BTreeMap<Key, Acc>,
    pub(super) excluded: Vec<(String, String, Acc)>,
    pub(super) plan: LogicalPlan,
    /// Nothing, at the scale of the summed values (0.00 for money).
    pub(super) zero: Acc,
    /// Distinct members per exclusion (None = counted), when the metric
    /// names its member.
    pub(super) members: Option<BTreeMap<Option<String>, i64>>,
    /// A snapshot: each bucket is the state at one day, so buckets do not
    /// add up.
    pub(super) point_in_time: bool,
}

impl SimpleOutcome {
    /// The counted part of what the headline and the tallies describe: a
    /// flow over its whole period (the buckets add up); a snapshot as of the
    /// period's end (ARR by quarter of 2025 is ARR at the end of 2025, not
    /// the sum of four quarter-ends).
    pub(super) fn included(&self) -> Acc {
        match (self.point_in_time, self.buckets.last()) {
            (true, Some(last)) => self
                .groups
                .iter()
                .filter(|((bucket, _), _)| bucket == last)
                .fold(self.zero, |a, (_, b)| a.add(*b)),
            _ => self.groups.values().fold(self.zero, |a, b| a.add(*b)),
        }
    }

    /// The headline value.
    pub(super) fn headline(&self) -> Option<Dec> {
        self.included().value(self.agg, self.scale)
    }

    /// Rows of the result in bucket order; with no slices every bucket is
    /// present, empty ones as 0 (or null for an average).
    pub(super) fn rows(&self) -> Vec<(Key, Option<Dec>)> {
        let mut out = Vec::new();
        for b in &self.buckets {
            let mut any = false;
            for (key, acc) in self.groups.range((b.clone(), Vec::new())..) {
                if &key.0 != b {
                    break;
                }
                any = true;
                out.push((key.clone(), acc.value(self.agg, self.scale)));
            }
            if !any && self.slices.is_empty() {
                out.push((
                    (b.clone(), Vec::new()),
                    self.zero.value(self.agg, self.scale),
                ));
            }
        }
        out
    }
}

/// Executes one planned aggregate (a metric, or a part of a ratio or
/// derived metric), after checking that a finance metric's period is made
/// of whole accounting periods.
pub(super) async fn run_part(
    engine: &Engine,
    part: Part,
    request: &Resolved,
) -> Result<SimpleOutcome> {
    let catalog = engine.catalog.clone();
    let metric = &catalog.files.metrics[part.id.file].spec.metrics[part.id.index];
    if metric.whole_accounting_periods {
        check_whole_accounting_periods(engine, metric, request).await?;
    }
    read_simple(engine, part.id, part.plan, None, false).await
}

/// Executes a compiled aggregate and reads its groups and tallies. With
/// `member_slice`, the frame is grouped by a slice that is the metric's
/// member, and members are counted from the groups rather than from the
/// detail plan. With `totals_only`, the groups are summed over the slices in
/// the engine first (a cohort instant reports totals, not its members).
pub(super) async fn read_simple(
    engine: &Engine,
    id: MetricId,
    plan: simple::SimplePlan,
    member_slice: Option<&str>,
    totals_only: bool,
) -> Result<SimpleOutcome> {
    let catalog = engine.catalog.clone();
    let metric = &catalog.files.metrics[id.file].spec.metrics[id.index];
    let optimized = plan.frame.clone().into_optimized_plan()?;
    let zero = Acc {
        sum: Dec::new(
            0,
            match optimized
                .schema()
                .field_with_unqualified_name("_sum")?
                .data_type()
            {
                DataType::Decimal128(_, s) => (*s).max(0) as u32,
                _ => 0,
            },
        ),
        ..Acc::ZERO
    };
    let slice_members = match member_slice {
        Some(slice) => Some(member_counts(plan.frame.clone(), slice).await?),
        None => None,
    };
    // A snapshot's exclusions and members are tallied at its last day, the
    // state its headline is (a charge in force at twelve month-ends is one
    // charge of the universe, not twelve).
    let kind = crate::compile::kind_of(metric.kind);
    let point_in_time = kind.tallied_at_last_day();
    let last_day = plan
        .buckets
        .last()
        .filter(|_| point_in_time && plan.buckets.len() > 1);
    // Without slices the frame is already over all of them (and keeps its
    // `_members`, which summing over slices would not).
    let (frame, slices) = if totals_only && !plan.slices.is_empty() {
        (over_all_slices(plan.frame.clone())?, Vec::new())
    } else {
        (plan.frame.clone(), plan.slices.clone())
    };
    let batches = frame.collect_within_memory().await?;
    let scale = metric.scale.unwrap_or(match plan.agg {
        Aggregation::Avg => AVG_SCALE,
        _ => 0,
    });
    let mut groups = BTreeMap::new();
    let mut excluded: BTreeMap<String, Acc> = BTreeMap::new();
    // Rows without a rate, by period (bucket label).
    let mut missing_rate: BTreeMap<String, i64> = BTreeMap::new();
    for batch in &batches {
        read_groups(
            batch,
            slices.len(),
            last_day.map(|b| b.label.as_str()),
            &mut groups,
            &mut excluded,
            &mut missing_rate,
        )?;
    }
    if let Some(nobody) = excluded.remove(crate::spec::NO_MEMBER) {
        return Err(no_member(&catalog, id, nobody.rows));
    }
    missing_rate.retain(|_, rows| *rows > 0);
    if !missing_rate.is_empty() {
        let total: i64 = missing_rate.values().sum();
        let shown = 5;
        let mut by_period: Vec<String> = missing_rate
            .iter()
            .take(shown)
            .map(|(period, rows)| format!("{period}: {rows}"))
            .collect();
        if missing_rate.len() > shown {
            by_period.push(format!("and {} more periods", missing_rate.len() - shown));
        }
        let base = &catalog.files.project.spec.base_currency;
        let currencies = match currencies_without_a_rate(plan.detail.clone(), base).await {
            Ok(names) if !names.is_empty() => format!("; by currency: {}", names.join(", ")),
            // The error stands without them.
            _ => String::new(),
        };
        let on = match plan.rates_on {
            Some(day) => format!(
                "on {day} (converted at that day's rates, every row alike, as its definition asks)"
            ),
            None => "on their date".to_string(),
        };
        return Err(CanonError::data(
            fx_location(&catalog),
            format!(
                "{total} row(s) of `{}` are in a currency with no conversion rate in force {on} ({}{currencies}): the rate table has no rate of that currency on that day (a day past its last rate, or a currency it lacks); no amount is converted at a rate it does not have",
                metric.name,
                by_period.join(", ")
            ),
        ));
    }
    let members = match (&metric.member, kind.counts_members(), slice_members) {
        (_, _, Some(counts)) => Some(counts),
        // A conversion metric's rows are its members (one group per member
        // before the count): its member counts are its row counts.
        (_, true, None) => {
            let mut counts: BTreeMap<Option<String>, i64> = excluded
                .iter()
                .map(|(name, acc)| (Some(name.clone()), acc.rows))
                .collect();
            counts.insert(None, groups.values().map(|acc: &Acc| acc.rows).sum());
            Some(counts)
        }
        // Counted in the run that computed the groups: one group per
        // (period, exclusion), so the members of the tallied period (the last
        // day's for a snapshot series, the only one otherwise) are its groups'.
        (Some(_), _, None) if plan.members => Some(members_of_groups(
            &batches,
            last_day.map(|b| b.label.as_str()),
        )?),
        (Some(_), _, None) => {
            let detail = match last_day {
                Some(b) => crate::compile::snapshot::detail_at(plan.detail.clone(), b.from)?,
                None => plan.detail.clone(),
            };
            Some(member_counts(detail, "_member").await?)
        }
        _ => None,
    };
    let excluded = plan
        .exclusions
        .iter()
        .map(|(n, r)| {
            (
                n.clone(),
                r.clone(),
                excluded.get(n).copied().unwrap_or(zero),
            )
        })
        .collect();
    Ok(SimpleOutcome {
        id,
        name: metric.name.clone(),
        agg: plan.agg,
        scale,
        slices,
        buckets: plan.buckets.iter().map(|b| b.label.clone()).collect(),
        periods: plan.buckets.clone(),
        groups,
        excluded,
        plan: optimized,
        zero,
        members,
        point_in_time,
    })
}

/// A conversion whose events include some of no member (its `member` is
/// null on them) that no exclusion removes: grouped by member each would be
/// a member more, a person who is nobody, so the result is blocked until
/// the definition says what they are (an exclusion, or a member that names
/// them). mqls v1 counted the events of unknown contacts so. `nobody` is how
/// many such members the period holds (one per unknown contact: see
/// compile::conversion's `_nobody`).
fn no_member(catalog: &Catalog, id: MetricId, nobody: i64) -> CanonError {
    let metric = &catalog.files.metrics[id.file].spec.metrics[id.index];
    let member = metric.conversion.as_ref().map_or("", |c| c.member.as_str());
    let at = catalog.metric_at(id, &crate::yaml_path!["conversion", "member"]);
    CanonError::Blocked(format!(
        "`{}` is blocked: {nobody} of the members it would count {} nobody (`{member}` is null on their events) and no exclusion of the metric removes them.\n  {at}: {}",
        metric.name,
        if nobody == 1 { "is" } else { "are" },
        exclude_hint(catalog, id, "the metric", member),
    ))
}

/// What to add to metric `id`'s definition when `expr` (its member, or its
/// cohort key) is null on rows it counts: an exclusion, with its test when
/// `expr` reads a linked entity and the metric does not test that already
/// (a missing linked row is the usual cause), or an expression that names
/// them.
pub(super) fn exclude_hint(catalog: &Catalog, id: MetricId, whose: &str, expr: &str) -> String {
    let metric = &catalog.files.metrics[id.file].spec.metrics[id.index];
    let has = |test: &str| {
        catalog
            .exclusions_of(id)
            .iter()
            .any(|x| x.spec.when.split_whitespace().eq(test.split_whitespace()))
    };
    let test = metric
        .entity
        .as_deref()
        .and_then(|e| crate::compile::entity::missing_link_test(catalog, e, expr))
        .filter(|t| !has(t));
    match test {
        Some(test) => format!(
            "add an exclusion to {whose} for them (if their linked row is missing: `when: {test}`), or an expression that names them"
        ),
        None => format!("add an exclusion to {whose} for them, or an expression that names them"),
    }
}

/// A finance metric's period must start where an accounting period starts and
/// end where one ends, or part of a period's revenue would be silently cut.
pub(crate) async fn check_whole_accounting_periods(
    engine: &Engine,
    metric: &MetricSpec,
    request: &Resolved,
) -> Result<()> {
    let batches = engine
        .entity_frame("accounting_period")
        .await?
        .select_columns(&["start_date", "end_date"])?
        .collect_within_memory()
        .await?;
    let mut starts = BTreeSet::new();
    let mut ends = BTreeSet::new();
    for b in &batches {
        let s = b.column(0).as_primitive::<Date32Type>();
        let e = b.column(1).as_primitive::<Date32Type>();
        for i in 0..b.num_rows() {
            if !s.is_null(i) && !e.is_null(i) {
                starts.insert(s.value(i));
                // end_date is inclusive: the next period starts the day after.
                ends.insert(e.value(i) + 1);
            }
        }
    }
    let mut bounds = vec![request.period.from, request.period.to];
    if request.grain.is_some() {
        for b in &request.buckets {
            bounds.push(b.from);
            bounds.push(b.to);
        }
    }
    for (i, d) in bounds.iter().enumerate() {
        let day = crate::compile::bounds::days_since_epoch(*d);
        let ok = if i % 2 == 0 {
            starts.contains(&day)
        } else {
            ends.contains(&day)
        };
        if !ok {
            return Err(CanonError::request(format!(
                "`{}` is computed over whole accounting periods, and {d} is not where one {} (finance/accounting_period)",
                metric.name,
                if i % 2 == 0 { "starts" } else { "ends" }
            )));
        }
    }
    Ok(())
}

/// The currencies of the rows a conversion found no rate for, with how
/// many rows each (the first five by name), from the plan's rows before
/// aggregation: run only when a metric is refused for them, so the person
/// who mends the rate table knows which currencies to add.
async fn currencies_without_a_rate(
    detail: datafusion::prelude::DataFrame,
    base: &str,
) -> Result<Vec<String>> {
    use datafusion::functions_aggregate::expr_fn::count;
    use datafusion::logical_expr::{cast, col, lit};
    let shown = 5;
    let batches = detail
        .filter(
            col("_raw")
                .is_not_null()
                .and(col("_currency").not_eq(lit(base)))
                .and(col("_rate").is_null()),
        )?
        .aggregate(
            vec![cast(col("_currency"), DataType::Utf8).alias("_currency")],
            vec![count(lit(1i64)).alias("_rows")],
        )?
        .sort(vec![col("_currency").sort(true, true)])?
        .collect_within_memory()
        .await?;
    let mut out = Vec::new();
    let mut more = 0;
    for b in &batches {
        let (names, rows) = (
            b.column(0).as_string::<i32>(),
            b.column(1).as_primitive::<Int64Type>(),
        );
        for i in 0..b.num_rows() {
            // Never null: a row without a currency is not converted.
            let name = names.value(i);
            // Quoted when not a plain code (`'EUR '`, an empty text).
            let name = if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric()) {
                name.to_string()
            } else {
                format!("{name:?}")
            };
            if out.len() < shown {
                out.push(format!("{name}: {}", rows.value(i)));
            } else {
                more += 1;
            }
        }
    }
    if more > 0 {
        out.push(format!("and {more} more currencies"));
    }
    Ok(out)
}

/// A simple plan's aggregate summed over its slices: one row per bucket and
/// exclusion, with the columns `read_groups` reads.
pub(super) fn over_all_slices(
    frame: datafusion::prelude::DataFrame,
) -> Result<datafusion::prelude::DataFrame> {
    use datafusion::functions_aggregate::expr_fn::sum;
    use datafusion::logical_expr::col;
    Ok(frame.aggregate(
        vec![col("_period"), col("_exclusion")],
        vec![
            sum(col("_rows")).alias("_rows"),
            sum(col("_sum")).alias("_sum"),
            sum(col("_count")).alias("_count"),
            sum(col("_missing_rate")).alias("_missing_rate"),
        ],
    )?)
}

/// Distinct members per exclusion label (null = counted) from groups'
/// `_members` (`SimplePlan::members`, or [`member_counts`]' groups by
/// label), of `period`'s groups only when given (else every group's: one
/// period).
fn members_of_groups(
    batches: &[RecordBatch],
    period: Option<&str>,
) -> Result<BTreeMap<Option<String>, i64>> {
    let internal = || CanonError::Internal("unexpected member count columns".into());
    let mut out = BTreeMap::new();
    for b in batches {
        let column = |name: &str| {
            b.schema()
                .index_of(name)
                .ok()
                .map(|i| b.column(i).clone())
                .ok_or_else(internal)
        };
        let periods = match period {
            Some(p) => Some((p, column("_period")?)),
            None => None,
        };
        let labels = column("_exclusion")?;
        let members = column("_members")?;
        let (Some(labels), Some(members)) = (
            labels.as_string_opt::<i32>(),
            members.as_primitive_opt::<Int64Type>(),
        ) else {
            return Err(internal());
        };
        for i in 0..b.num_rows() {
            if let Some((p, periods)) = &periods
                && periods
                    .as_string_opt::<i32>()
                    .ok_or_else(internal)?
                    .value(i)
                    != *p
            {
                continue;
            }
            let label = (!labels.is_null(i)).then(|| labels.value(i).to_string());
            *out.entry(label).or_insert(0) += members.value(i);
        }
    }
    Ok(out)
}

/// Distinct members per exclusion label (null = counted) from a plan's detail.
pub(super) async fn member_counts(
    rows: datafusion::prelude::DataFrame,
    member: &str,
) -> Result<BTreeMap<Option<String>, i64>> {
    use datafusion::functions_aggregate::expr_fn::count_distinct;
    use datafusion::logical_expr::col;
    let batches = rows
        .aggregate(
            vec![col("_exclusion")],
            vec![count_distinct(col(member)).alias("_members")],
        )?
        .collect_within_memory()
        .await?;
    members_of_groups(&batches, None)
}

pub(super) fn fx_location(catalog: &Catalog) -> DataLocation {
    match catalog.entity("fx_rate") {
        Some((_, model, e)) => DataLocation {
            system: model.spec.system.clone(),
            table: e.source.clone(),
            file: None,
            column: None,
        },
        None => DataLocation::default(),
    }
}

/// Adds a batch of `_period, slices…, _exclusion, _rows, _sum, _count,
/// _missing_rate` groups to `groups` (counted) and `excluded` (by
/// exclusion; only `tally_period`'s when given).
pub(super) fn read_groups(
    batch: &RecordBatch,
    slices: usize,
    tally_period: Option<&str>,
    groups: &mut BTreeMap<Key, Acc>,
    excluded: &mut BTreeMap<String, Acc>,
    missing_rate: &mut BTreeMap<String, i64>,
) -> Result<()> {
    let strings = |i: usize| batch.column(i).as_string_opt::<i32>();
    let ints = |i: usize| batch.column(i).as_primitive_opt::<Int64Type>();
    let internal = || CanonError::Internal("unexpected result column types".into());
    let period = strings(0).ok_or_else(internal)?;
    let slice_cols: Vec<_> = (1..=slices)
        .map(strings)
        .collect::<Option<_>>()
        .ok_or_else(internal)?;
    let exclusion = strings(slices + 1).ok_or_else(internal)?;
    let rows = ints(slices + 2).ok_or_else(internal)?;
    let sum_col = batch.column(slices + 3);
    let count = ints(slices + 4).ok_or_else(internal)?;
    let missing = ints(slices + 5).ok_or_else(internal)?;
    for i in 0..batch.num_rows() {
        let null_scale = match sum_col.data_type() {
            DataType::Decimal128(_, s) => (*s).max(0) as u32,
            _ => 0,
        };
        let sum = if sum_col.is_null(i) {
            Dec::new(0, null_scale)
        } else {
            match sum_col.data_type() {
                DataType::Decimal128(_, s) => Dec::new(
                    sum_col.as_primitive::<Decimal128Type>().value(i),
                    (*s).max(0) as u32,
                ),
                DataType::Int64 => Dec::from_int(sum_col.as_primitive::<Int64Type>().value(i)),
                other => {
                    return Err(CanonError::request(format!(
                        "a measure must be a decimal or an integer, not {other}; cast it in the metric's `measure.expr`"
                    )));
                }
            }
        };
        let acc = Acc {
            rows: rows.value(i),
            sum,
            count: count.value(i),
        };
        if !missing.is_null(i) {
            *missing_rate.entry(period.value(i).to_string()).or_default() += missing.value(i);
        }
        if exclusion.is_null(i) {
            let key = (
                period.value(i).to_string(),
                slice_cols
                    .iter()
                    .map(|c| (!c.is_null(i)).then(|| c.value(i).to_string()))
                    .collect(),
            );
            let e = groups.entry(key).or_insert(Acc::ZERO);
            *e = e.add(acc);
        } else if tally_period.is_none_or(|p| p == period.value(i)) {
            let e = excluded
                .entry(exclusion.value(i).to_string())
                .or_insert(Acc::ZERO);
            *e = e.add(acc);
        }
    }
    Ok(())
}
