//! The sample company: a deterministic generator of Acme's operational
//! extracts in exactly the shapes of the extract contract
//! (`shared/spec/extracts.md`).
//!
//! Acme sells a subscription product from 2023-01-01 to 2025-12-31; the
//! extracts were taken at [`EXTRACTED_AT`]. Every system tells the same story:
//! a won deal in the CRM is the subscription in billing, the revenue schedule in
//! finance, the organization in support and the health snapshots in customer
//! success. On top of the random accounts, a fixed set of planted scenarios
//! (test and internal accounts, merge chains, fiscal-year boundaries, missing
//! amounts, unlinked revenue, ...) has the same ids for every seed and scale;
//! `docs/sample_company.md` (in canon's repository) lists them.
//!
//! The same seed and scale give byte-identical files: the generator carries
//! its own PRNG and never reads the clock.

pub mod error;
mod people;
mod planted;
mod rng;
mod sim;
mod tables;
mod time;
mod world;
mod write;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{Error as CanonError, Result};

use rng::Rng;
use sim::Sim;

/// What to generate and where.
#[derive(Debug, Clone)]
pub struct SampleOptions {
    /// The data root: tables land in `<out>/<system>/<table>/part-NNNNN.parquet`.
    pub out: PathBuf,
    pub seed: u64,
    /// Multiplies entity counts: 1 gives about 500 CRM accounts.
    pub scale: u32,
}

/// One written table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableReport {
    pub system: String,
    pub table: String,
    pub rows: usize,
    pub bytes: u64,
    pub files: usize,
}

/// Every written table, in contract order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleReport {
    pub tables: Vec<TableReport>,
}

impl SampleReport {
    pub fn total_rows(&self) -> usize {
        self.tables.iter().map(|t| t.rows).sum()
    }

    pub fn total_bytes(&self) -> u64 {
        self.tables.iter().map(|t| t.bytes).sum()
    }
}

/// The instant the sample extracts were taken (the `_fivetran_synced` values are within the 6 hours before it).
pub const EXTRACTED_AT: &str = "2026-01-02T08:00:00Z";

/// Simulate the company in memory.
pub(crate) fn build(seed: u64, scale: u32) -> Sim {
    let mut sim = Sim::new(seed, scale);
    sim.build_rates();
    sim.build_periods();
    let mut rng = Rng::derive(seed, 1, 0);
    sim.build_users(&mut rng);
    planted::plant(&mut sim);

    let n_accounts = 500 * scale as usize;
    let first_day = time::days(2022, 1, 3);
    let last_day = time::days(2025, 10, 31);
    for k in planted::acct::COUNT as usize..n_accounts {
        let mut r = Rng::derive(seed, 2, k as u64);
        let day = r.range(first_day as i64, last_day as i64 + 1) as i32;
        let created = Sim::biz_time(&mut r, day);
        let a = sim.random_account(&mut r, created);
        if r.chance(0.04) && k > planted::acct::COUNT as usize + 10 {
            let p = r.range(planted::acct::COUNT as i64, a as i64) as usize;
            let parent = &sim.w.accounts[p];
            if !parent.deleted && parent.master.is_none() {
                sim.w.accounts[a as usize].parent = Some(p as u32);
            }
        }
        if r.chance(0.01) {
            sim.w.accounts[a as usize].deleted = true;
        } else if r.chance(0.03) {
            let dup = sim.merged_duplicate(&mut r, a, a);
            if r.chance(0.15) {
                sim.merged_duplicate(&mut r, a, dup);
            }
        }
        let home = sim.country_currency(a);
        let cur = if home != world::USD && r.chance(0.2) {
            world::USD
        } else {
            home
        };
        let motions = r.pick_weighted(&[(1usize, 10), (2, 22), (3, 35), (4, 33)]);
        for m in 0..motions {
            sim.journey(&mut r, a, cur, m);
        }
        sim.merge_spans(a);
        let acc = &mut sim.w.accounts[a as usize];
        acc.typ = if !sim.spans[a as usize].is_empty() {
            "Customer"
        } else {
            match r.below(100) {
                0..=3 => "Partner",
                4..=5 => "Other",
                _ => "Prospect",
            }
        };
    }
    people::services_without_deals(&mut sim);
    people::marketing(&mut sim);
    people::support(&mut sim);
    people::health(&mut sim);
    sim
}

/// The file that marks a folder as written by `canon sample`: the generator
/// replaces the part files of such a folder, and of no other.
pub const MARKER: &str = ".canon-sample";
const MARKER_TEXT: &str =
    "Written by `canon sample`: a generated company, replaced by the next run.\n";

/// `out` is the generator's to write: absent, empty, or an earlier sample.
/// Anything else may be a real company's extracts, which it must not touch.
fn claim(out: &std::path::Path) -> Result<()> {
    let refuse = |why: &str| {
        Err(CanonError::request(format!(
            "--out {}: refused, {why}; canon sample writes only into a new or empty folder or an \
             earlier sample (marked {MARKER})",
            out.display()
        )))
    };
    match std::fs::read_dir(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) if out.exists() => refuse("it is not a folder"),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            refuse("a folder on its path is a file")
        }
        Err(e) => Err(CanonError::io(out, e)),
        Ok(mut entries) => {
            if entries.next().is_none() || out.join(MARKER).is_file() {
                Ok(())
            } else {
                refuse("it holds files that canon sample did not write")
            }
        }
    }
}

/// Generate the sample company's extracts under `opts.out`.
pub fn generate(opts: &SampleOptions) -> Result<SampleReport> {
    if opts.scale == 0 {
        return Err(CanonError::request("--scale must be at least 1"));
    }
    claim(&opts.out)?;
    std::fs::create_dir_all(&opts.out).map_err(|e| CanonError::io(&opts.out, e))?;
    crate::error::write_file(&opts.out.join(MARKER), MARKER_TEXT.as_bytes())?;
    tracing::info!(target: "canon::sample", seed = opts.seed, scale = opts.scale, out = %opts.out.display(), "simulating the sample company");
    let sim = build(opts.seed, opts.scale);
    tracing::info!(
        target: "canon::sample",
        accounts = sim.w.accounts.len(),
        deals = sim.w.opps.len(),
        "simulated the company; writing tables"
    );
    let jobs = tables::jobs(&sim.w, &sim.cal);

    // Write tables on up to four threads; each table is written by one thread,
    // so the files do not depend on the scheduling.
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 4);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<TableReport>>>> =
        Mutex::new((0..jobs.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(job) = jobs.get(i) else {
                        break;
                    };
                    let r = write::write_table(&opts.out, job);
                    let failed = r.is_err();
                    if let Ok(mut slots) = results.lock() {
                        slots[i] = Some(r);
                    }
                    if failed {
                        // Let the other workers finish the table they hold; take no more.
                        next.store(jobs.len(), Ordering::SeqCst);
                        break;
                    }
                }
            });
        }
    });
    let results = results
        .into_inner()
        .map_err(|_| CanonError::Internal("a sample writer thread panicked".into()))?;
    let mut tables = Vec::with_capacity(results.len());
    let mut missing = false;
    for r in results {
        match r {
            Some(r) => tables.push(r?),
            None => missing = true,
        }
    }
    if missing {
        return Err(CanonError::Internal(
            "a sample table was not written".into(),
        ));
    }
    Ok(SampleReport { tables })
}
