//! The checked, resolved project: every source, entity, exclusion and metric
//! by name, with a way back to the YAML that defined it.
//!
//! Building a [`Catalog`] runs the static checks (names, references, kinds,
//! systems of record). Checks that need DataFusion (expressions and types)
//! run in `validate` by compiling every definition over empty tables.

mod kinds;
mod lifecycle;
pub mod lines;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::calendar::Calendar;
use crate::error::{CanonError, Diagnostic, Location, Result};
use crate::spec::load::{ProjectFiles, SourceFile, load_project};
use crate::spec::locate::Step;
use crate::spec::{
    ColumnSpec, EntitySpec, ExclusionRef, ExclusionSpec, MetricFileSpec, MetricSpec, ModelFileSpec,
    SourceSpec,
};
use crate::suggest::did_you_mean;
use crate::yaml_path;

/// Index of a source table: (model file, source) positions.
#[derive(Debug, Clone, Copy)]
pub struct SourceId {
    pub file: usize,
    pub index: usize,
}

#[derive(Debug, Clone, Copy)]
pub struct EntityId {
    pub file: usize,
    pub index: usize,
}

#[derive(Debug, Clone, Copy)]
pub struct MetricId {
    pub file: usize,
    pub index: usize,
}

/// A shared exclusion: where it is defined.
#[derive(Debug, Clone, Copy)]
pub struct ExclusionId {
    pub file: usize,
    pub index: usize,
}

#[derive(Debug, Clone)]
pub struct Catalog {
    pub files: ProjectFiles,
    pub calendar: Calendar,
    /// `system/table` → source.
    pub sources: BTreeMap<String, SourceId>,
    pub entities: BTreeMap<String, EntityId>,
    pub metrics: BTreeMap<String, MetricId>,
    pub exclusions: BTreeMap<String, ExclusionId>,
}

/// An exclusion as a metric applies it, with where its `when` is written.
#[derive(Debug, Clone)]
pub struct ResolvedExclusion<'a> {
    pub spec: &'a ExclusionSpec,
    pub when_location: Location,
}

impl Catalog {
    /// `request` worked out against the project's calendar, once, for
    /// every later stage (a series past `engine.max_buckets` is refused
    /// here, before any bucket exists).
    pub fn resolve(&self, request: crate::request::Request) -> Result<crate::request::Resolved> {
        let max_buckets = self
            .files
            .project
            .spec
            .engine
            .max_buckets
            .unwrap_or(DEFAULT_MAX_BUCKETS);
        crate::request::Resolved::new(&self.calendar, request, max_buckets)
    }

    /// Loads the project at `root` and runs the static checks.
    pub fn load(root: &Path) -> Result<Catalog> {
        let files = load_project(root)?;
        Catalog::build(files)
    }

    pub fn build(files: ProjectFiles) -> Result<Catalog> {
        let mut diags = Vec::new();
        // A wrong calendar is reported with every other problem; UTC and
        // January stand in for it meanwhile (the catalog is refused anyway).
        let calendar = match Calendar::from_project(&files.project) {
            Ok(calendar) => {
                diags.extend(crate::calendar::publish_periods_problems(
                    &files.project,
                    &calendar,
                ));
                calendar
            }
            Err(problems) => {
                diags.extend(problems);
                Calendar {
                    zone: chrono_tz::UTC,
                    fiscal_start_month: 1,
                    naming: crate::spec::FiscalNaming::End,
                }
            }
        };
        if let Some(problem) = crate::currency::check_base(&files.project) {
            diags.push(problem);
        }
        diags.extend(engine_problems(&files.project));
        let mut sources = BTreeMap::new();
        let mut entities: BTreeMap<String, EntityId> = BTreeMap::new();
        let mut systems: BTreeMap<&str, usize> = BTreeMap::new();

        for (fi, model) in files.models.iter().enumerate() {
            let spec = &model.spec;
            if let Some(prev) = systems.insert(&spec.system, fi) {
                diags.push(diag(
                    model.at(&yaml_path!["system"]),
                    format!(
                        "system `{}` is already described by {}",
                        spec.system,
                        files.models[prev].display_path.display()
                    ),
                ));
            }
            for (si, source) in spec.sources.iter().enumerate() {
                let key = format!("{}/{}", spec.system, source.name);
                check_source(model, si, source, &mut diags);
                if sources
                    .insert(
                        key.clone(),
                        SourceId {
                            file: fi,
                            index: si,
                        },
                    )
                    .is_some()
                {
                    diags.push(diag(
                        model.at(&yaml_path!["sources", si, "name"]),
                        format!("source `{key}` is declared twice"),
                    ));
                }
            }
            for (ei, entity) in spec.entities.iter().enumerate() {
                if let Some(prev) = entities.insert(
                    entity.name.clone(),
                    EntityId {
                        file: fi,
                        index: ei,
                    },
                ) {
                    let other = &files.models[prev.file];
                    diags.push(diag(
                        model.at(&yaml_path!["entities", ei, "name"]),
                        format!(
                            "entity `{}` already has a system of record: `{}` ({}); an entity has exactly one",
                            entity.name,
                            other.spec.system,
                            other.display_path.display()
                        ),
                    ));
                }
            }
        }
        check_volume(
            &files.project.spec.volume,
            files.project.at(&yaml_path!["volume", "max_drop"]),
            &mut diags,
        );
        for model in &files.models {
            for (ei, entity) in model.spec.entities.iter().enumerate() {
                check_entity(model, ei, entity, (&entities, &files.models), &mut diags);
            }
        }

        let mut exclusions = BTreeMap::new();
        let mut metrics = BTreeMap::new();
        for (fi, file) in files.metrics.iter().enumerate() {
            for (xi, x) in file.spec.exclusions.iter().enumerate() {
                if exclusions
                    .insert(
                        x.name.clone(),
                        ExclusionId {
                            file: fi,
                            index: xi,
                        },
                    )
                    .is_some()
                {
                    diags.push(diag(
                        file.at(&yaml_path!["exclusions", xi, "name"]),
                        format!("exclusion `{}` is defined twice", x.name),
                    ));
                }
            }
            for (mi, m) in file.spec.metrics.iter().enumerate() {
                if metrics
                    .insert(
                        m.name.clone(),
                        MetricId {
                            file: fi,
                            index: mi,
                        },
                    )
                    .is_some()
                {
                    diags.push(diag(
                        file.at(&yaml_path!["metrics", mi, "name"]),
                        format!("metric `{}` is defined twice", m.name),
                    ));
                }
            }
        }
        let catalog = Catalog {
            files,
            calendar,
            sources,
            entities,
            metrics,
            exclusions,
        };
        for (fi, metrics_file) in catalog.files.metrics.iter().enumerate() {
            for (mi, m) in metrics_file.spec.metrics.iter().enumerate() {
                catalog.check_metric(
                    MetricId {
                        file: fi,
                        index: mi,
                    },
                    m,
                    &mut diags,
                );
            }
        }
        for (fi, f) in catalog.files.metrics.iter().enumerate() {
            for ri in 0..f.spec.reconciliations.len() {
                lines::check(&catalog, fi, ri, &mut diags);
            }
        }
        lifecycle::check(&catalog, &mut diags);
        if diags.is_empty() {
            Ok(catalog)
        } else {
            Err(CanonError::Definition(diags))
        }
    }

    /// canon.yaml's pinned clock, if any.
    pub fn clock(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        let Some(text) = &self.files.project.spec.clock else {
            return Ok(None);
        };
        let t = chrono::DateTime::parse_from_rfc3339(text).map_err(|e| {
            CanonError::definition(
                self.files.project.at(&yaml_path!["clock"]),
                format!("`{text}` is not an RFC 3339 instant: {e}"),
            )
        })?;
        Ok(Some(t.with_timezone(&chrono::Utc)))
    }

    /// canon.yaml's `engine.memory_limit` in bytes, if set.
    pub fn memory_limit(&self) -> Result<Option<usize>> {
        let Some(text) = &self.files.project.spec.engine.memory_limit else {
            return Ok(None);
        };
        parse_bytes(text).map(Some).ok_or_else(|| {
            CanonError::definition(
                self.files.project.at(&yaml_path!["engine", "memory_limit"]),
                format!("`{text}` is not a size: write it as 512MiB, 2GiB or 1500MB"),
            )
        })
    }

    /// The freshness thresholds of a source: its own, else canon.yaml's.
    pub fn freshness_of(&self, source: &SourceSpec) -> crate::spec::FreshnessSpec {
        source
            .freshness
            .clone()
            .unwrap_or_else(|| self.files.project.spec.freshness.clone())
    }

    /// The volume gate of a source: its own, else canon.yaml's.
    pub fn volume_of(&self, source: &SourceSpec) -> crate::spec::VolumeSpec {
        source.volume.unwrap_or(self.files.project.spec.volume)
    }

    pub fn source(&self, id: SourceId) -> (&SourceFile<ModelFileSpec>, &SourceSpec) {
        let file = &self.files.models[id.file];
        (file, &file.spec.sources[id.index])
    }

    /// Where source `id`'s data errors are reported: its system and table.
    pub fn source_location(&self, id: SourceId) -> crate::error::DataLocation {
        let (model, spec) = self.source(id);
        crate::error::DataLocation {
            system: model.spec.system.clone(),
            table: spec.name.clone(),
            file: None,
            column: None,
        }
    }

    pub fn source_by_name(&self, system: &str, table: &str) -> Option<(SourceId, &SourceSpec)> {
        let id = *self.sources.get(&format!("{system}/{table}"))?;
        Some((id, self.source(id).1))
    }

    /// The project's cache folder when a run names none: canon.yaml's
    /// `cache_dir`, else `.canon-cache`, in the project. (`--cache-dir`
    /// overrides it for a run.)
    pub fn configured_cache_folder(&self) -> PathBuf {
        let files = &self.files;
        files.root.join(
            files
                .project
                .spec
                .cache_dir
                .as_deref()
                .unwrap_or(".canon-cache"),
        )
    }

    pub fn entity(
        &self,
        name: &str,
    ) -> Option<(EntityId, &SourceFile<ModelFileSpec>, &EntitySpec)> {
        let id = *self.entities.get(name)?;
        let file = &self.files.models[id.file];
        Some((id, file, &file.spec.entities[id.index]))
    }

    pub fn metric(
        &self,
        name: &str,
    ) -> Result<(MetricId, &SourceFile<MetricFileSpec>, &MetricSpec)> {
        let Some(id) = self.metrics.get(name).copied() else {
            let known: Vec<&str> = self.metrics.keys().map(String::as_str).collect();
            let hint = did_you_mean(name, &known)
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            return Err(CanonError::request(format!(
                "unknown metric `{name}`{hint}; `canon list` shows the catalog"
            )));
        };
        let file = &self.files.metrics[id.file];
        Ok((id, file, &file.spec.metrics[id.index]))
    }

    /// The periods a command asked for, else canon.yaml's `publish.periods`
    /// (empty when neither names any: the command says what to pass).
    pub fn periods_or_published(&self, asked: &[String]) -> Vec<String> {
        if !asked.is_empty() {
            return asked.to_vec();
        }
        self.files
            .project
            .spec
            .publish
            .as_ref()
            .map(|p| p.periods.clone())
            .unwrap_or_default()
    }

    /// Every reconciliation of the metrics files, in file order.
    pub fn reconciliations(&self) -> impl Iterator<Item = &crate::spec::ReconciliationSpec> {
        self.files
            .metrics
            .iter()
            .flat_map(|f| f.spec.reconciliations.iter())
    }

    /// Reconciliation `name`, if the project has one.
    pub fn reconciliation(&self, name: &str) -> Option<&crate::spec::ReconciliationSpec> {
        self.reconciliations().find(|r| r.name == name)
    }

    /// The exclusions of a metric in order, shared ones resolved.
    pub fn exclusions_of(&self, id: MetricId) -> Vec<ResolvedExclusion<'_>> {
        let file = &self.files.metrics[id.file];
        let metric = &file.spec.metrics[id.index];
        metric
            .exclusions
            .iter()
            .enumerate()
            .filter_map(|(xi, x)| match x {
                ExclusionRef::Inline(spec) => Some(ResolvedExclusion {
                    spec,
                    when_location: file.at(&yaml_path![
                        "metrics",
                        id.index,
                        "exclusions",
                        xi,
                        "when"
                    ]),
                }),
                ExclusionRef::Named(name) => {
                    let xid = self.exclusions.get(name)?;
                    let xfile = &self.files.metrics[xid.file];
                    Some(ResolvedExclusion {
                        spec: &xfile.spec.exclusions[xid.index],
                        when_location: xfile.at(&yaml_path!["exclusions", xid.index, "when"]),
                    })
                }
            })
            .collect()
    }

    /// Location of a node of a metric's definition.
    pub fn metric_at(&self, id: MetricId, path: &[Step]) -> Location {
        let mut full = yaml_path!["metrics", id.index].to_vec();
        full.extend_from_slice(path);
        self.files.metrics[id.file].at(&full)
    }

    pub fn entity_at(&self, id: EntityId, path: &[Step]) -> Location {
        let mut full = yaml_path!["entities", id.index].to_vec();
        full.extend_from_slice(path);
        self.files.models[id.file].at(&full)
    }

    fn check_metric(&self, id: MetricId, m: &MetricSpec, diags: &mut Vec<Diagnostic>) {
        let at = |path: &[Step]| self.metric_at(id, path);
        if let Some(scale) = m.scale
            && scale > crate::decimal::MAX_SCALE
        {
            diags.push(diag(
                at(&yaml_path!["scale"]),
                format!(
                    "scale {scale} is more decimal places than canon computes exactly (at most {}): a ratio is worked out in 38 digits, and {scale} places would leave too few for its numerator",
                    crate::decimal::MAX_SCALE
                ),
            ));
        }
        if m.owner.trim().is_empty() {
            diags.push(diag(
                at(&yaml_path!["owner"]),
                "a metric needs an owner".into(),
            ));
        }
        if !self.files.models.iter().any(|f| f.spec.system == m.system) {
            diags.push(diag(
                at(&yaml_path!["system"]),
                format!("unknown system of record `{}`", m.system),
            ));
        }
        kinds::check(self, m, &at, diags);
        for (xi, x) in m.exclusions.iter().enumerate() {
            let name = match x {
                ExclusionRef::Named(name) | ExclusionRef::Inline(ExclusionSpec { name, .. }) => {
                    name
                }
            };
            if name == crate::spec::NO_MEMBER {
                diags.push(diag(
                    at(&yaml_path!["exclusions", xi]),
                    format!("`{name}` is the label canon gives a conversion's members that are nobody: name the exclusion otherwise"),
                ));
            }
            if let ExclusionRef::Named(name) = x
                && !self.exclusions.contains_key(name)
            {
                diags.push(diag(
                    at(&yaml_path!["exclusions", xi]),
                    format!("unknown exclusion `{name}` (shared exclusions are defined under `exclusions:` in metrics/)"),
                ));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for (si, s) in m.slices.iter().enumerate() {
            let name = s.name();
            let identifier = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !identifier {
                diags.push(diag(
                    at(&yaml_path!["slices", si]),
                    format!(
                        "slice name {name:?} is not a name: use letters, digits and `_`, not starting with a digit (it is a column of every result row and file, and what `--by` names)"
                    ),
                ));
            }
            // Compared without case: readers that ignore it (DuckDB,
            // SQLite, Spark) refuse a file with `Value` and `value`.
            if RESERVED_SLICE_NAMES.contains(&name.to_ascii_lowercase().as_str()) {
                diags.push(diag(
                    at(&yaml_path!["slices", si]),
                    format!(
                        "slice name `{name}` is reserved: a result's rows and the files `query --out` and `publish` write already have a column of that name, in any case ({}); name the slice otherwise",
                        RESERVED_SLICE_NAMES.join(", ")
                    ),
                ));
            }
            if !seen.insert(name.to_ascii_lowercase()) {
                diags.push(diag(
                    at(&yaml_path!["slices", si]),
                    format!("slice `{name}` is listed twice (names are compared without case)"),
                ));
            }
        }
    }

    pub(crate) fn entity_hint(&self, name: &str) -> String {
        let known: Vec<&str> = self.entities.keys().map(String::as_str).collect();
        did_you_mean(name, &known)
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default()
    }
}

/// The names of a result row's and a published file's own columns
/// (`grain`, `status` and `reason` in a publication's metric files): a
/// slice of one of these names would overwrite it in JSON (its values
/// lost), and give a CSV or Parquet file two columns of one name that
/// readers refuse.
const RESERVED_SLICE_NAMES: [&str; 12] = [
    "metric",
    "period",
    "period_start",
    "period_end",
    "value",
    "unit",
    "complete",
    "whole",
    "bridge",
    "grain",
    "status",
    "reason",
];

/// The most partitions a plan may be split into: past a few per core only
/// overhead grows (20,000 took the whole machine's memory).
pub const MAX_TARGET_PARTITIONS: usize = 256;

/// Buckets one request may ask for unless canon.yaml's `engine.max_buckets`
/// says otherwise: ten years of days (3,653 at most) with room to spare.
pub const DEFAULT_MAX_BUCKETS: u64 = 3_660;

/// The highest `engine.max_buckets` canon accepts: a hundred thousand
/// buckets (270 years of days) already take seconds to plan and run.
pub const MAX_BUCKETS_CEILING: u64 = 100_000;

/// canon.yaml `engine:` settings outside what canon can run with.
fn engine_problems(project: &SourceFile<crate::spec::ProjectSpec>) -> Vec<Diagnostic> {
    let engine = &project.spec.engine;
    let mut out = Vec::new();
    if let Some(n) = engine.target_partitions
        && !(1..=MAX_TARGET_PARTITIONS).contains(&n)
    {
        out.push(diag(
            project.at(&yaml_path!["engine", "target_partitions"]),
            format!("engine.target_partitions must be 1 to {MAX_TARGET_PARTITIONS} (the default is twice the machine's cores)"),
        ));
    }
    match engine.max_buckets {
        Some(0) => out.push(diag(
            project.at(&yaml_path!["engine", "max_buckets"]),
            "engine.max_buckets must be at least 1 (it bounds the buckets of one request)"
                .to_string(),
        )),
        Some(n) if n > MAX_BUCKETS_CEILING => out.push(diag(
            project.at(&yaml_path!["engine", "max_buckets"]),
            format!(
                "engine.max_buckets must be at most {} (the default is {}; it bounds the buckets of one request)",
                crate::decimal::Dec::from_int(MAX_BUCKETS_CEILING as i64).grouped(),
                crate::decimal::Dec::from_int(DEFAULT_MAX_BUCKETS as i64).grouped()
            ),
        )),
        _ => {}
    }
    out
}

pub(crate) fn diag(location: Location, message: String) -> Diagnostic {
    Diagnostic { location, message }
}

fn check_source(
    model: &SourceFile<ModelFileSpec>,
    si: usize,
    source: &SourceSpec,
    diags: &mut Vec<Diagnostic>,
) {
    let has = |c: &str| source.columns.iter().any(|col: &ColumnSpec| col.name == c);
    for (ki, k) in source.primary_key.iter().enumerate() {
        if !has(k) {
            diags.push(diag(
                model.at(&yaml_path!["sources", si, "primary_key", ki]),
                format!(
                    "primary key column `{k}` is not a column of `{}`",
                    source.name
                ),
            ));
        }
    }
    if let Some(c) = &source.sort_column
        && !has(c)
    {
        diags.push(diag(
            model.at(&yaml_path!["sources", si, "sort_column"]),
            format!("sort column `{c}` is not a column of `{}`", source.name),
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (ci, c) in source.columns.iter().enumerate() {
        if !seen.insert(&c.name) {
            diags.push(diag(
                model.at(&yaml_path!["sources", si, "columns", ci, "name"]),
                format!("column `{}` is declared twice", c.name),
            ));
        }
        check_accepted_values(model, si, ci, c, diags);
    }
    if let Some(v) = &source.volume {
        check_volume(
            v,
            model.at(&yaml_path!["sources", si, "volume", "max_drop"]),
            diags,
        );
    }
}

/// A column's `accepted_values`: a non-empty list of distinct values, on a
/// text column (the only type whose values are an enumeration).
fn check_accepted_values(
    model: &SourceFile<ModelFileSpec>,
    si: usize,
    ci: usize,
    c: &ColumnSpec,
    diags: &mut Vec<Diagnostic>,
) {
    let Some(values) = &c.accepted_values else {
        return;
    };
    let at = |path: &[Step]| {
        let mut full = yaml_path!["sources", si, "columns", ci, "accepted_values"].to_vec();
        full.extend_from_slice(path);
        model.at(&full)
    };
    if c.ty != crate::spec::ColumnType::String {
        diags.push(diag(
            at(&[]),
            format!(
                "`accepted_values` on column `{}` of type {}: only a string column holds an enumeration",
                c.name,
                c.ty.name()
            ),
        ));
    }
    if values.written.is_empty() {
        diags.push(diag(
            at(&[]),
            format!(
                "`accepted_values` of column `{}` is empty: no value would be accepted (remove the key to accept any value)",
                c.name
            ),
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (vi, v) in values.written.iter().enumerate() {
        let v = match v {
            crate::spec::AcceptedValue::Text(v) => v,
            crate::spec::AcceptedValue::NotText { kind: "null", .. } => {
                diags.push(diag(
                    at(&yaml_path![vi]),
                    format!(
                        "`null` in the accepted values of column `{}`: a missing value is never a violation of the list (whether the column may be empty is its `nullable`); remove it, or write 'null' in quotes if the column holds that text",
                        c.name
                    ),
                ));
                continue;
            }
            crate::spec::AcceptedValue::NotText { kind, read } => {
                diags.push(diag(
                    at(&yaml_path![vi]),
                    format!(
                        "an entry of the accepted values of column `{}` is {kind} to YAML (read as {read}), not text: write it in quotes, as the column holds it, if that text is meant",
                        c.name
                    ),
                ));
                continue;
            }
        };
        if !seen.insert(v) {
            diags.push(diag(
                at(&yaml_path![vi]),
                format!(
                    "`{v}` is listed twice in the accepted values of column `{}`",
                    c.name
                ),
            ));
        }
    }
}

/// A volume threshold is a fraction of the last count: from 0 (any drop
/// warns) to 1 (no drop can exceed it: the gate is off).
fn check_volume(v: &crate::spec::VolumeSpec, location: Location, diags: &mut Vec<Diagnostic>) {
    if !(0.0..=1.0).contains(&v.max_drop) {
        diags.push(diag(
            location,
            format!(
                "max_drop {} is not a fraction between 0 and 1 (0.2 warns when a table loses more than 20 % of its rows)",
                v.max_drop
            ),
        ));
    }
}

fn check_entity(
    model: &SourceFile<ModelFileSpec>,
    ei: usize,
    entity: &EntitySpec,
    (entities, models): (&BTreeMap<String, EntityId>, &[SourceFile<ModelFileSpec>]),
    diags: &mut Vec<Diagnostic>,
) {
    if !model.spec.sources.iter().any(|s| s.name == entity.source) {
        diags.push(diag(
            model.at(&yaml_path!["entities", ei, "source"]),
            format!(
                "entity `{}` maps from `{}`, which is not a source of system `{}`",
                entity.name, entity.source, model.spec.system
            ),
        ));
    }
    let has_field = |f: &str| entity.fields.iter().any(|x| x.name == f);
    if !has_field(&entity.key) {
        diags.push(diag(
            model.at(&yaml_path!["entities", ei, "key"]),
            format!(
                "key `{}` is not a field of entity `{}`",
                entity.key, entity.name
            ),
        ));
    }
    if let Some(m) = &entity.merged_into
        && !has_field(m)
    {
        diags.push(diag(
            model.at(&yaml_path!["entities", ei, "merged_into"]),
            format!(
                "merged_into `{m}` is not a field of entity `{}`",
                entity.name
            ),
        ));
    }
    if let Some(iv) = &entity.intervals {
        for (key, field) in [("from", &iv.from), ("to", &iv.to)] {
            if !has_field(field) {
                diags.push(diag(
                    model.at(&yaml_path!["entities", ei, "intervals", key]),
                    format!(
                        "intervals.{key} `{field}` is not a field of entity `{}`",
                        entity.name
                    ),
                ));
            }
        }
    }
    for (ui, unique) in entity.unique.iter().enumerate() {
        if !has_field(&unique.field) {
            diags.push(diag(
                model.at(&yaml_path!["entities", ei, "unique", ui, "field"]),
                format!(
                    "unique field `{}` is not a field of entity `{}`",
                    unique.field, entity.name
                ),
            ));
        }
    }
    for (li, link) in entity.links.iter().enumerate() {
        // A required link is checked against the linked entity's own
        // records; one that resolves merges first is not (yet).
        if link.required
            && let Some(id) = entities.get(&link.entity)
            && let target = &models[id.file].spec.entities[id.index]
            && (target.merged_into.is_some() || target.merges.is_some())
        {
            diags.push(diag(
                model.at(&yaml_path!["entities", ei, "links", li, "required"]),
                format!(
                    "`required` on link `{}`: `{}` resolves merges, which a required link does not check yet",
                    link.name, link.entity
                ),
            ));
        }
        if !has_field(&link.field) {
            diags.push(diag(
                model.at(&yaml_path!["entities", ei, "links", li, "field"]),
                format!(
                    "link field `{}` is not a field of entity `{}`",
                    link.field, entity.name
                ),
            ));
        }
        if !entities.contains_key(&link.entity) {
            diags.push(diag(
                model.at(&yaml_path!["entities", ei, "links", li, "entity"]),
                format!("link to unknown entity `{}`", link.entity),
            ));
        }
        if has_field(&link.name) {
            diags.push(diag(
                model.at(&yaml_path!["entities", ei, "links", li, "name"]),
                format!(
                    "link name `{}` is also a field of `{}`; pick a distinct qualifier",
                    link.name, entity.name
                ),
            ));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, f) in entity.fields.iter().enumerate() {
        if !seen.insert(&f.name) {
            diags.push(diag(
                model.at(&yaml_path!["entities", ei, "fields", i, "name"]),
                format!("field `{}` is declared twice", f.name),
            ));
        }
        if f.name.starts_with('_') {
            diags.push(diag(
                model.at(&yaml_path!["entities", ei, "fields", i, "name"]),
                format!(
                    "field `{}`: names starting with `_` are canon's own (`_key`, `_period`, the linked fields an entity carries); name it without the underscore (a source column like `_fivetran_synced` can still be read: `{{name: synced_at, expr: _fivetran_synced}}`)",
                    f.name
                ),
            ));
        }
    }
}

/// `2GiB`, `512 MiB`, `1500MB`, `1048576` → bytes.
pub(crate) fn parse_bytes(text: &str) -> Option<usize> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let unit: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let bytes = number * unit;
    (1.0..1e15).contains(&bytes).then_some(bytes as usize)
}

#[cfg(test)]
mod size_tests {
    use super::parse_bytes;

    #[test]
    fn sizes_read_in_binary_and_decimal_units() {
        assert_eq!(parse_bytes("2GiB"), Some(2 * 1024 * 1024 * 1024));
        assert_eq!(parse_bytes("512 MiB"), Some(512 * 1024 * 1024));
        assert_eq!(parse_bytes("1500MB"), Some(1_500_000_000));
        assert_eq!(parse_bytes("1.5GiB"), Some(1_610_612_736));
        assert_eq!(parse_bytes("4096"), Some(4096));
        assert_eq!(parse_bytes("2 gigs"), None);
        assert_eq!(parse_bytes("0"), None);
    }
}
