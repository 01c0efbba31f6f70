//! Whether a metric's number may be relied on as governed: its status
//! (draft → certified → deprecated), the replacement a deprecated metric
//! names, and for a certified metric whether its sign-off approves the
//! definition as it is now (the sha256 of its closure, `lineage::closure`).
//!
//! Queries say so on stderr and in the result; `canon publish` carries
//! certified metrics only and publishes one whose sign-off is stale or
//! missing as blocked, never leaving it out silently; `canon signoff`
//! records a sign-off in the project's sign-off file.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::error::{CanonError, Result};
use crate::lineage::closure::{closure, planner, reconciliation_closure};
use crate::run::Engine;
use crate::spec::{MetricStatus, SignoffFileSpec, SignoffSpec};

/// A metric's lifecycle, as a result carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifecycle {
    /// `draft`, `certified` or `deprecated`.
    pub status: String,
    /// A deprecated metric's replacement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<String>,
    /// A certified metric's sign-off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signoff: Option<Signoff>,
}

/// A certified metric's sign-off against its definition now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signoff {
    /// `current` (the closure and version approved are today's), `stale`
    /// (the definition changed since) or `missing`.
    pub state: String,
    /// The sha256 of the metric's closure now.
    pub closure_sha256: String,
    /// What was approved, by whom and when (none when missing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved: Option<SignoffSpec>,
}

impl Lifecycle {
    /// What a reader of metric `name`'s number must be told, if anything.
    pub fn warning(&self, name: &str) -> Option<String> {
        match (self.status.as_str(), &self.replaced_by, &self.signoff) {
            ("draft", _, _) => Some(format!(
                "`{name}` is a draft: its definition is not certified, and publish does not carry it"
            )),
            ("deprecated", Some(r), _) => {
                Some(format!("`{name}` is deprecated: use `{r}` instead"))
            }
            (_, _, Some(s)) if s.state != "current" => self.blocked_reason(name),
            _ => None,
        }
    }

    /// Why `canon publish` shows certified metric `name` as blocked: its
    /// sign-off does not approve its definition as it is now.
    pub fn blocked_reason(&self, name: &str) -> Option<String> {
        let s = self.signoff.as_ref()?;
        match (&s.approved, s.state.as_str()) {
            (_, "current") => None,
            (Some(a), _) => {
                let (now, approved) = apart(&s.closure_sha256, &a.closure_sha256);
                Some(format!(
                    "sign-off stale: `{name}`'s definition changed since {} approved version {} on {} (closure {now} now, {approved} approved); review it with `canon diff`, then `canon signoff {name} --by NAME`",
                    a.by, a.version, a.at,
                ))
            }
            (None, _) => Some(format!(
                "sign-off missing: certified `{name}` has no sign-off; `canon signoff {name} --by NAME` records one"
            )),
        }
    }
}

/// Two hashes shortened to their first 12 digits, unless that would make
/// them look the same (a hand-edited sign-off can share them): then as
/// long as it takes to tell them apart.
fn apart<'a>(a: &'a str, b: &'a str) -> (&'a str, &'a str) {
    let same = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    let n = (same + 1).max(12);
    (
        a.get(..n.min(a.len())).unwrap_or(a),
        b.get(..n.min(b.len())).unwrap_or(b),
    )
}

/// Judges metrics' lifecycles in one catalog, planning their closures on
/// one engine of its own (without data).
pub struct Judge {
    engine: Engine,
    /// Closure hashes already worked out for exactly these definitions and
    /// this build (`closures/<key>.json` in the project's cache folder):
    /// planning a closure costs as much as planning the metric, so a query
    /// or `validate` on unchanged definitions reads them instead.
    known: std::sync::Mutex<std::collections::BTreeMap<String, String>>,
    /// Where they are kept; `None` for a judge that remembers nothing.
    store: Option<PathBuf>,
}

impl Judge {
    /// A judge that reads and keeps closure hashes in the project's cache
    /// folder.
    pub fn new(catalog: Arc<Catalog>) -> Result<Judge> {
        let folder = catalog.configured_cache_folder();
        Judge::keeping_in(catalog, &folder)
    }

    /// A judge that reads and keeps closure hashes in cache folder `folder`.
    fn keeping_in(catalog: Arc<Catalog>, folder: &std::path::Path) -> Result<Judge> {
        let store = closures_file(&catalog, folder);
        let known = std::fs::read(&store)
            .ok()
            .and_then(|b| serde_json::from_slice::<SealedClosures>(&b).ok())
            .and_then(|sealed| {
                let verifies = sealed.digest == seal(&store, &sealed.closures);
                if !verifies {
                    // A hand-edited hash would judge a stale sign-off current.
                    tracing::warn!(file = %store.display(), "stored closure hashes do not verify: planning them again");
                }
                verifies.then_some(sealed.closures)
            })
            .unwrap_or_default();
        Ok(Judge {
            engine: planner(catalog)?,
            known: std::sync::Mutex::new(known),
            store: Some(store),
        })
    }

    /// The judge for a run on `engine`: one that remembers, in the run's
    /// cache folder (`--cache-dir` included), when the run uses the result
    /// cache, else [`Judge::afresh`] (`--no-cache` keeps no closure hash
    /// either). Until 2026-12-06 the hashes went to the project's default
    /// folder whatever `--cache-dir` said.
    pub fn for_run(engine: &Engine) -> Result<Judge> {
        match engine.fingerprints() {
            Some(cache) => Judge::keeping_in(engine.catalog.clone(), cache.dir()),
            None => Judge::afresh(engine.catalog.clone()),
        }
    }

    /// A judge that plans every closure it is asked for and keeps nothing:
    /// what a run with `--no-cache` uses, so that a run told to remember
    /// nothing reads nothing an earlier run left (the benchmark's cold runs
    /// included).
    pub fn afresh(catalog: Arc<Catalog>) -> Result<Judge> {
        Ok(Judge {
            engine: planner(catalog)?,
            known: std::sync::Mutex::new(Default::default()),
            store: None,
        })
    }

    /// Metric or reconciliation `name`'s lifecycle (a certified one's
    /// closure is planned to judge its sign-off).
    pub async fn lifecycle(&self, name: &str) -> Result<Lifecycle> {
        self.judge(name).await
    }

    /// The sha256 of metric or reconciliation `name`'s closure now.
    pub async fn closure_sha256(&self, name: &str) -> Result<String> {
        if let Some(sha) = self.known.lock().expect("lock").get(name) {
            return Ok(sha.clone());
        }
        let sha = match reconciliation_closure(&self.engine, name).await? {
            Some(c) => c.sha256(),
            None => closure(&self.engine, name).await?.sha256(),
        };
        let known = {
            let mut known = self.known.lock().expect("lock");
            known.insert(name.to_string(), sha.clone());
            known.clone()
        };
        // A cache: a folder that cannot be written only costs the planning.
        if let Some(store) = &self.store
            && let Some(dir) = store.parent()
            && std::fs::create_dir_all(dir).is_ok()
        {
            let sealed = SealedClosures {
                digest: seal(store, &known),
                closures: known,
            };
            let _ =
                crate::atomic::write_file(store, &serde_json::to_vec(&sealed).unwrap_or_default());
        }
        Ok(sha)
    }
}

/// The closure hashes as kept, sealed like the cache's other entries: an
/// edited hash is not read (it would judge a stale sign-off current, and
/// publish a changed definition as the approved one).
#[derive(serde::Serialize, serde::Deserialize)]
struct SealedClosures {
    digest: String,
    closures: std::collections::BTreeMap<String, String>,
}

/// The digest `closures` kept at `store` must carry.
fn seal(store: &std::path::Path, closures: &std::collections::BTreeMap<String, String>) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(format!(
        "canon closures seal v1\n{}\n",
        store.file_name().unwrap_or_default().to_string_lossy()
    ));
    h.update(serde_json::to_vec(closures).unwrap_or_default());
    hex::encode(h.finalize())
}

/// Where the closure hashes of these definitions and this build are kept in
/// cache folder `folder`: keyed by every definition file's content and the
/// build, so a changed definition (or canon) never reads another's.
fn closures_file(catalog: &Catalog, folder: &std::path::Path) -> PathBuf {
    use sha2::{Digest, Sha256};
    let files = &catalog.files;
    let mut h = Sha256::new();
    h.update(format!(
        "canon closures v1\n{}\n",
        env!("CARGO_PKG_VERSION")
    ));
    h.update(crate::run::fingerprints::build_identity());
    let definitions = std::iter::once((&files.project.display_path, &files.project.sha256))
        .chain(files.models.iter().map(|f| (&f.display_path, &f.sha256)))
        .chain(files.metrics.iter().map(|f| (&f.display_path, &f.sha256)));
    for (path, sha) in definitions {
        h.update(format!("\n{}\n{sha}", path.display()));
    }
    folder
        .join("closures")
        .join(format!("{}.json", hex::encode(h.finalize())))
}

/// A governed definition's lifecycle facts: a metric's, or a
/// reconciliation's (which has no replacement).
fn governed(catalog: &Catalog, name: &str) -> Result<(MetricStatus, u32, Option<String>)> {
    if let Some(r) = catalog.reconciliation(name) {
        return Ok((r.status, r.version, None));
    }
    let (_, _, m) = catalog.metric(name)?;
    Ok((m.status, m.version, m.replaced_by.clone()))
}

/// Metric `name`'s lifecycle for a run on `engine` (see [`Judge::for_run`]).
pub async fn of(engine: &Engine, name: &str) -> Result<Lifecycle> {
    Judge::for_run(engine)?.lifecycle(name).await
}

impl Judge {
    async fn judge(&self, name: &str) -> Result<Lifecycle> {
        let catalog = self.engine.catalog.clone();
        let (status, version, replaced_by) = governed(&catalog, name)?;
        let signoff = match status {
            MetricStatus::Certified => {
                let sha = self.closure_sha256(name).await?;
                let approved = recorded(&catalog, name).cloned();
                let current = approved
                    .as_ref()
                    .is_some_and(|a| a.closure_sha256 == sha && a.version == version);
                Some(Signoff {
                    state: match (&approved, current) {
                        (_, true) => "current",
                        (Some(_), false) => "stale",
                        (None, _) => "missing",
                    }
                    .to_string(),
                    closure_sha256: sha,
                    approved,
                })
            }
            _ => None,
        };
        Ok(Lifecycle {
            status: status.name().to_string(),
            replaced_by,
            signoff,
        })
    }
}

/// The sign-off recorded for metric `name`, if any.
pub fn recorded<'a>(catalog: &'a Catalog, name: &str) -> Option<&'a SignoffSpec> {
    catalog
        .files
        .signoffs
        .as_ref()?
        .spec
        .signoffs
        .iter()
        .find(|s| s.metric == name)
}

/// Records `by`'s sign-off of each of `names` as defined now, at `at`,
/// in the project's sign-off file (replacing each one's earlier sign-off;
/// the others are kept), written atomically. A deprecated metric is not
/// signed off: it is on its way out.
pub async fn sign(
    catalog: Arc<Catalog>,
    names: &[String],
    by: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<SignoffSpec>> {
    if by.trim().is_empty() {
        return Err(CanonError::request(
            "--by names who approves the definition (a person or a review)",
        ));
    }
    if by.chars().count() > 200 || by.contains(['\n', '\r']) {
        return Err(CanonError::request(
            "--by is a name on one line of at most 200 characters",
        ));
    }
    let judge = Judge::new(catalog.clone())?;
    let mut signed = Vec::new();
    for name in names {
        let (status, version, replaced_by) = governed(&catalog, name)?;
        if status == MetricStatus::Deprecated {
            return Err(CanonError::request(format!(
                "`{name}` is deprecated{}: a deprecated metric is not signed off",
                replaced_by
                    .as_ref()
                    .map(|r| format!(" (replaced by `{r}`)"))
                    .unwrap_or_default()
            )));
        }
        let spec = SignoffSpec {
            metric: name.clone(),
            version,
            closure_sha256: judge.closure_sha256(name).await?,
            by: by.trim().to_string(),
            at: at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        };
        signed.push(spec);
    }
    let path = catalog
        .files
        .root
        .join(&catalog.files.project.spec.signoffs);
    // Two sign-offs at once must both be kept: the file is read again and
    // written under an exclusive lock (on canon.yaml, which every project
    // has), so one run's entry is never written over by another's copy.
    let _lock = lock(&catalog.files.root.join("canon.yaml"))?;
    let mut file: SignoffFileSpec = match std::fs::read(&path) {
        Ok(bytes) => {
            crate::spec::load::parse_definition::<SignoffFileSpec>(
                catalog.files.project.spec.signoffs.clone().into(),
                bytes,
            )
            .map_err(|d| CanonError::Definition(vec![d]))?
            .spec
        }
        // A link to a file that is not there is not an empty file: the
        // sign-offs are elsewhere, and writing one entry there would drop
        // every other.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match std::fs::read_link(&path) {
            Err(_) => SignoffFileSpec::default(),
            Ok(to) => {
                return Err(CanonError::io(
                    &path,
                    std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!(
                            "a link to {}, which is not there: the sign-offs are kept there, \
                             and writing one here would drop every other; restore the file (or \
                             the share it is on), or remove the link to start a new file",
                            to.display()
                        ),
                    ),
                ));
            }
        },
        Err(e) => return Err(CanonError::io(&path, e)),
    };
    for spec in &signed {
        file.signoffs.retain(|s| s.metric != spec.metric);
        file.signoffs.push(spec.clone());
    }
    // Sign-offs of metrics that are gone are dropped (validate warns of them).
    file.signoffs
        .retain(|s| governed(&catalog, &s.metric).is_ok());
    file.signoffs.sort_by(|a, b| a.metric.cmp(&b.metric));
    let yaml = serde_yaml::to_string(&file)
        .map_err(|e| CanonError::Internal(format!("writing sign-offs: {e}")))?;
    let text = format!(
        "# Sign-offs of metric definitions: who approved which version, and the sha256 of the\n\
         # definition's closure they approved (the metric, its exclusions, the entities, sources\n\
         # and settings it reads). Written by `canon signoff`; review changes to it like any\n\
         # definition change. Comments other than this one are not kept.\n{yaml}"
    );
    crate::atomic::write_file(&path, text.as_bytes())?;
    Ok(signed)
}

/// An exclusive advisory lock on `path`, held until the file is dropped.
fn lock(path: &std::path::Path) -> Result<std::fs::File> {
    use std::os::unix::io::AsRawFd;
    let file = std::fs::File::open(path).map_err(|e| CanonError::io(path, e))?;
    // SAFETY: flock on a descriptor this function owns; no memory involved.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(CanonError::io(path, std::io::Error::last_os_error()));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::apart;

    #[test]
    fn two_hashes_are_shown_apart() {
        let (a, b) = ("e1991443b14027ac", "21955f7fcd175354");
        assert_eq!(apart(a, b), ("e1991443b140", "21955f7fcd17"));
        // Equal in their first 14 digits: 15 shown.
        let (a, b) = ("e1991443b140271", "e1991443b140272");
        assert_eq!(apart(a, b), (a, b));
        let (a, b) = ("e1991443b14027aXYZ", "e1991443b14027bXYZ");
        assert_eq!(apart(a, b), ("e1991443b14027a", "e1991443b14027b"));
    }
}
