//! Tests of the sample generator: determinism, the contract's exact shapes,
//! the internal consistency of the story and the planted quirks.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, TimestampMicrosecondType};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::planted::acct;
use super::sim::{Cal, Sim};
use super::time::*;
use super::world::*;
use super::write::Ty;
use super::*;

/// The extract contract (shared/spec/extracts.md), written out independently
/// of the generator's own table definitions.
const CONTRACT: &str = "
crm/account: id string, name string, type string, parent_id string?, master_record_id string?, owner_id string, industry string?, billing_country string?, website string?, created_date ts, is_deleted bool
crm/user: id string, name string, email string, department string?, is_active bool
crm/opportunity: id string, account_id string, owner_id string, name string, type string, stage_name string, forecast_category string, probability double, amount money?, currency_iso_code string, close_date date, created_date ts, is_closed bool, is_won bool, is_deleted bool, lead_source string?
crm/opportunity_history: id string, opportunity_id string, created_date ts, stage_name string, amount money?, close_date date, probability double, forecast_category string, is_deleted bool
crm/dated_conversion_rate: iso_code string, conversion_rate rate, start_date date, next_start_date date
marketing/contact: id int, email string?, created_at ts, lifecyclestage string?, is_deleted bool
marketing/contact_merge_audit: canonical_vid int, vid_to_merge int, timestamp ts
marketing/lifecycle_stage_history: contact_id int, value string, timestamp ts, source string?
billing/account: id string, account_number string, name string, crm_id string?, currency string, status string, created_date ts, is_deleted bool
billing/subscription: id string, account_id string, name string, version int, is_latest_version bool, original_id string, status string, subscription_start_date date, subscription_end_date date?, term_start_date date, term_end_date date?, cancelled_date date?, crm_opportunity_id string?, is_deleted bool
billing/rate_plan_charge: id string, subscription_id string, name string, charge_type string, effective_start_date date, effective_end_date date?, mrr money, tcv money, transaction_currency string, is_deleted bool
finance/accounting_period: id int, period_name string, start_date date, end_date date, fiscal_year int, fiscal_quarter int, is_closed bool
finance/revenue_plan_line: id string, revenue_plan_id string, accounting_period_id int, amount money, transaction_amount money, transaction_currency string, item_type string, source_opportunity_id string?, source_subscription_id string?, is_recognized bool, is_deleted bool
support/organization: id int, name string, external_id string?, created_at ts, is_deleted bool
support/ticket: id int, organization_id int?, requester_id int, status string, priority string?, created_at ts, solved_at ts?, is_deleted bool
cs/company_health: sfdc_account_id string?, score int, status string, snapshot_date date
";

/// (column, contract type name, nullable)
type ContractColumn = (String, String, bool);

/// (system/table, columns) including `_fivetran_synced`.
fn contract() -> Vec<(String, Vec<ContractColumn>)> {
    CONTRACT
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (table, cols) = l.split_once(':').unwrap();
            let mut cols: Vec<ContractColumn> = cols
                .split(',')
                .map(|c| {
                    let (name, ty) = c.trim().split_once(' ').unwrap();
                    let nullable = ty.ends_with('?');
                    (
                        name.to_string(),
                        ty.trim_end_matches('?').to_string(),
                        nullable,
                    )
                })
                .collect();
            cols.push(("_fivetran_synced".into(), "ts".into(), false));
            (table.trim().to_string(), cols)
        })
        .collect()
}

fn arrow_type(name: &str) -> DataType {
    match name {
        "string" => Ty::Str,
        "bool" => Ty::Bool,
        "int" => Ty::Int,
        "double" => Ty::Double,
        "date" => Ty::Date,
        "ts" => Ty::Ts,
        "money" => Ty::Money,
        "rate" => Ty::Rate,
        other => panic!("unknown contract type {other}"),
    }
    .arrow()
}

fn world() -> &'static Sim {
    static W: OnceLock<Sim> = OnceLock::new();
    W.get_or_init(|| build(42, 1))
}

fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

// ---------------------------------------------------------------- files

#[test]
fn files_are_deterministic_and_match_the_contract() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let opts = |dir: &Path| SampleOptions {
        out: dir.to_path_buf(),
        seed: 42,
        scale: 1,
    };
    let ra = generate(&opts(a.path())).unwrap();
    let rb = generate(&opts(b.path())).unwrap();
    assert_eq!(ra, rb);

    // Byte-identical files.
    let fa = files_under(a.path());
    let fb = files_under(b.path());
    let rel = |root: &Path, v: &[PathBuf]| -> Vec<PathBuf> {
        v.iter()
            .map(|p| p.strip_prefix(root).unwrap().to_path_buf())
            .collect()
    };
    assert_eq!(rel(a.path(), &fa), rel(b.path(), &fb));
    for (x, y) in fa.iter().zip(&fb) {
        assert!(
            fs::read(x).unwrap() == fs::read(y).unwrap(),
            "{} differs between runs",
            x.display()
        );
    }
    // Only part files and the generator's marker, no leftovers.
    for f in &fa {
        let name = f.file_name().unwrap().to_string_lossy();
        assert!(
            (name.starts_with("part-") && name.ends_with(".parquet")) || name == super::MARKER,
            "{}",
            f.display()
        );
    }

    // The report covers every table of the contract, in order.
    let contract = contract();
    assert_eq!(ra.tables.len(), contract.len());
    let mut total = 0u64;
    for (t, (name, cols)) in ra.tables.iter().zip(&contract) {
        assert_eq!(&format!("{}/{}", t.system, t.table), name);
        assert_eq!(t.files, 1);
        assert!(t.rows > 0, "{name} is empty");
        total += t.bytes;
        let path = a
            .path()
            .join(&t.system)
            .join(&t.table)
            .join("part-00000.parquet");
        let reader =
            ParquetRecordBatchReaderBuilder::try_new(fs::File::open(&path).unwrap()).unwrap();
        let schema = reader.schema().clone();
        let got: Vec<(String, DataType, bool)> = schema
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone(), f.is_nullable()))
            .collect();
        let want: Vec<(String, DataType, bool)> = cols
            .iter()
            .map(|(n, ty, null)| (n.clone(), arrow_type(ty), *null))
            .collect();
        assert_eq!(got, want, "schema of {name}");
        let md = reader.metadata().clone();
        let rows: i64 = md.row_groups().iter().map(|g| g.num_rows()).sum();
        assert_eq!(rows as usize, t.rows);
        for g in md.row_groups() {
            assert!(g.num_rows() as usize <= write::ROW_GROUP_ROWS);
        }
        // Freshness: every sync within the 6 hours before the extract.
        let extracted = ts_utc(2026, 1, 2, 8, 0, 0);
        for batch in reader.build().unwrap() {
            let batch = batch.unwrap();
            let synced = batch
                .column(batch.num_columns() - 1)
                .as_primitive::<TimestampMicrosecondType>();
            assert_eq!(synced.null_count(), 0);
            for v in synced.values() {
                assert!(
                    *v <= extracted && *v >= extracted - 6 * HOUR_US,
                    "{name} synced at {v}"
                );
            }
        }
    }
    assert!(
        total < 5_000_000,
        "the scale-1 sample must stay under 5 MB, is {total}"
    );

    check_written_opportunities(a.path());

    // Another seed gives another company.
    let c = tempfile::tempdir().unwrap();
    generate(&SampleOptions {
        out: c.path().to_path_buf(),
        seed: 7,
        scale: 1,
    })
    .unwrap();
    let p = |root: &Path| root.join("crm/opportunity/part-00000.parquet");
    assert_ne!(
        fs::read(p(a.path())).unwrap(),
        fs::read(p(c.path())).unwrap()
    );
}

#[test]
fn scale_zero_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = generate(&SampleOptions {
        out: dir.path().to_path_buf(),
        seed: 1,
        scale: 0,
    });
    assert!(err.is_err());
}

#[test]
fn stale_part_files_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("crm/user");
    fs::create_dir_all(&table).unwrap();
    fs::write(table.join("part-00007.parquet"), b"stale").unwrap();
    // Left by an earlier, larger run of the generator.
    fs::write(dir.path().join(super::MARKER), b"").unwrap();
    generate(&SampleOptions {
        out: dir.path().to_path_buf(),
        seed: 1,
        scale: 1,
    })
    .unwrap();
    assert!(!table.join("part-00007.parquet").exists());
    assert!(table.join("part-00000.parquet").exists());
}

// A folder the generator did not write (a real company's extracts, say)
// is refused with nothing touched; so is a file.
#[test]
fn a_folder_it_did_not_write_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("crm/opportunity");
    fs::create_dir_all(&table).unwrap();
    fs::write(table.join("part-00000.parquet"), b"real").unwrap();
    let opts = SampleOptions {
        out: dir.path().to_path_buf(),
        seed: 1,
        scale: 1,
    };
    let err = generate(&opts).unwrap_err();
    assert!(matches!(err, CanonError::Request(_)), "{err}");
    assert!(err.to_string().contains("did not write"), "{err}");
    assert_eq!(fs::read(table.join("part-00000.parquet")).unwrap(), b"real");
    assert!(!dir.path().join(super::MARKER).exists());
    let file = dir.path().join("f");
    fs::write(&file, b"x").unwrap();
    let err = generate(&SampleOptions { out: file, ..opts }).unwrap_err();
    assert!(err.to_string().contains("not a folder"), "{err}");
}

/// The written opportunities are sorted by close_date and hold the deal created at
/// 2025-02-01T05:00:00Z.
fn check_written_opportunities(root: &Path) {
    let path = root.join("crm/opportunity/part-00000.parquet");
    let reader = ParquetRecordBatchReaderBuilder::try_new(fs::File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let mut found = false;
    let mut last_close = i32::MIN;
    for batch in reader {
        let batch = batch.unwrap();
        let created = batch
            .column_by_name("created_date")
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>();
        let close = batch
            .column_by_name("close_date")
            .unwrap()
            .as_primitive::<datafusion::arrow::datatypes::Date32Type>();
        for i in 0..batch.num_rows() {
            found |= created.value(i) == ts_utc(2025, 2, 1, 5, 0, 0);
            assert!(
                close.value(i) >= last_close,
                "opportunities are sorted by close_date"
            );
            last_close = close.value(i);
        }
    }
    assert!(found, "a deal created at 2025-02-01T05:00:00Z");
}

// ---------------------------------------------------------------- models

/// models/*.yaml describe exactly the contract's tables.
#[test]
fn model_sources_match_the_contract() {
    // canon's models, two folders up from this crate.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    let mut seen = BTreeSet::new();
    let contract: BTreeMap<String, Vec<ContractColumn>> = contract().into_iter().collect();
    for system in ["crm", "marketing", "billing", "finance", "support", "cs"] {
        let path = root.join(format!("{system}.yaml"));
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(doc["system"].as_str(), Some(system));
        for key in ["label", "owner", "description"] {
            assert!(
                doc[key].as_str().is_some_and(|s| !s.is_empty()),
                "{system}: {key}"
            );
        }
        for src in doc["sources"].as_sequence().unwrap() {
            let name = src["name"].as_str().unwrap();
            let table = src["path"].as_str().unwrap().to_string();
            assert_eq!(table, format!("{system}/{name}"));
            let want = contract
                .get(&table)
                .unwrap_or_else(|| panic!("{table} is not in the contract"));
            let got: Vec<ContractColumn> = src["columns"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|c| {
                    assert!(
                        c["description"].as_str().is_some_and(|s| !s.is_empty()),
                        "{table}: description"
                    );
                    (
                        c["name"].as_str().unwrap().to_string(),
                        c["type"].as_str().unwrap().to_string(),
                        c["nullable"].as_bool().unwrap_or(false),
                    )
                })
                .collect();
            assert_eq!(&got, want, "columns of {table}");
            let names: BTreeSet<&str> = got.iter().map(|c| c.0.as_str()).collect();
            for k in src["primary_key"].as_sequence().unwrap() {
                assert!(names.contains(k.as_str().unwrap()), "{table}: key {k:?}");
            }
            if let Some(s) = src["sort_column"].as_str() {
                assert!(names.contains(s), "{table}: sort column {s}");
            }
            seen.insert(table);
        }
    }
    assert_eq!(seen, contract.keys().cloned().collect());
}

// ---------------------------------------------------------------- consistency

#[test]
fn history_ends_in_the_current_state() {
    let w = &world().w;
    let cal = Cal::new();
    let mut by_opp: BTreeMap<u32, Vec<&Hist>> = BTreeMap::new();
    for h in &w.hist {
        by_opp.entry(h.opp).or_default().push(h);
    }
    assert_eq!(by_opp.len(), w.opps.len());
    let ids: BTreeSet<u32> = w.hist.iter().map(|h| h.id).collect();
    assert_eq!(ids.len(), w.hist.len(), "history ids are unique");
    for (o, rows) in by_opp.iter_mut() {
        let opp = &w.opps[*o as usize];
        rows.sort_by_key(|h| h.ts);
        let first = rows[0];
        let last = rows[rows.len() - 1];
        assert_eq!(first.ts, opp.created, "deal {o}: creation row");
        for pair in rows.windows(2) {
            assert!(
                pair[0].ts < pair[1].ts,
                "deal {o}: history instants increase"
            );
        }
        assert_eq!(
            (
                last.stage,
                last.amount,
                last.close,
                last.probability,
                last.forecast
            ),
            (
                opp.stage,
                opp.amount,
                opp.close,
                opp.probability,
                opp.forecast
            ),
            "deal {o}: latest history row = current state"
        );
        assert!(last.ts < cal.extract_ts);
        assert!((0.0..=100.0).contains(&opp.probability));
        match opp.stage {
            WON => assert_eq!(opp.probability, 100.0),
            LOST => assert_eq!(opp.probability, 0.0),
            _ => assert!(opp.probability > 0.0 && opp.probability < 100.0),
        }
        if opp.stage >= WON {
            assert!(
                opp.close < cal.extract_day,
                "deal {o} closed before the extract"
            );
            assert!(
                opp.close >= la_day(opp.created),
                "deal {o} closes after it was created"
            );
        }
        assert!(
            w.accounts[opp.account as usize].master.is_none(),
            "deal {o} is on a surviving account"
        );
    }
}

#[test]
fn conversion_rates_cover_the_range_without_gaps() {
    let w = &world().w;
    for cur in [USD, EUR, GBP, JPY] {
        let mut rows: Vec<&RateRow> = w.rates.iter().filter(|r| r.currency == cur).collect();
        rows.sort_by_key(|r| r.start);
        assert_eq!(rows[0].start, days(2022, 12, 1));
        assert_eq!(rows[rows.len() - 1].next, days(2027, 1, 1));
        for p in rows.windows(2) {
            assert_eq!(p[0].next, p[1].start);
        }
        let (lo, hi) = match cur {
            USD => (1_000_000, 1_000_000),
            EUR => (800_000, 1_050_000),
            GBP => (700_000, 900_000),
            _ => (130_000_000, 170_000_000),
        };
        assert!(
            rows.iter().all(|r| r.rate >= lo && r.rate <= hi),
            "{cur} rates in range"
        );
    }
}

#[test]
fn accounting_periods_follow_the_fiscal_calendar() {
    let w = &world().w;
    assert_eq!(w.periods.len(), 72);
    let by_name: BTreeMap<&str, &Period> = w.periods.iter().map(|p| (p.name.as_str(), p)).collect();
    let feb22 = by_name["Feb 2022"];
    assert_eq!((feb22.fiscal_year, feb22.fiscal_quarter), (2023, 1));
    let feb25 = by_name["Feb 2025"];
    assert_eq!(
        (
            feb25.fiscal_year,
            feb25.fiscal_quarter,
            feb25.start,
            feb25.end
        ),
        (2026, 1, days(2025, 2, 1), days(2025, 2, 28))
    );
    assert_eq!(
        (
            by_name["Jan 2026"].fiscal_year,
            by_name["Jan 2026"].fiscal_quarter
        ),
        (2026, 4)
    );
    assert_eq!(by_name["Nov 2025"].fiscal_quarter, 4);
    assert_eq!(by_name["Jul 2025"].fiscal_quarter, 2);
    assert!(by_name["Dec 2025"].closed);
    assert!(!by_name["Jan 2026"].closed);
    assert_eq!(w.periods.last().unwrap().name, "Jan 2028");
    for p in w.periods.windows(2) {
        assert_eq!(p[0].end + 1, p[1].start);
        assert_eq!(p[0].id + 1, p[1].id);
    }
}

#[test]
fn subscriptions_versions_and_charges_agree() {
    let w = &world().w;
    let mut by_original: BTreeMap<u32, Vec<&SubVersion>> = BTreeMap::new();
    for s in &w.subs {
        by_original.entry(s.original).or_default().push(s);
    }
    let sub_of: BTreeMap<u32, &SubVersion> = w.subs.iter().map(|s| (s.id, s)).collect();
    assert_eq!(sub_of.len(), w.subs.len(), "subscription ids are unique");
    let mut multi_version = 0;
    for (orig, versions) in &by_original {
        let mut versions = versions.clone();
        versions.sort_by_key(|v| v.version);
        for (k, v) in versions.iter().enumerate() {
            assert_eq!(v.version as usize, k + 1);
            assert_eq!(v.latest, k + 1 == versions.len());
            assert_eq!(
                (v.bill, v.opp, v.number),
                (versions[0].bill, versions[0].opp, versions[0].number)
            );
        }
        assert_eq!(versions[0].id, *orig, "original_id is the id of version 1");
        if versions.len() > 1 {
            multi_version += 1;
            assert!(
                versions[..versions.len() - 1]
                    .iter()
                    .all(|v| v.status == EXPIRED)
            );
        }
        let latest = versions.last().unwrap();
        if let Some(o) = latest.opp {
            let deal = &w.opps[o as usize];
            assert_eq!(deal.stage, WON, "a subscription is sold by a won deal");
            assert_eq!(
                deal.currency,
                w.bill_accounts[latest.bill as usize].currency
            );
        }
        match latest.status {
            CANCELLED => assert!(latest.cancelled.is_some() && latest.end == latest.cancelled),
            EXPIRED => assert!(latest.end.is_some() && latest.cancelled.is_none()),
            _ => assert!(latest.cancelled.is_none()),
        }
    }
    assert!(
        multi_version > 50,
        "many subscriptions have several versions"
    );
    for c in &w.charges {
        let s = sub_of[&c.sub];
        assert_eq!(c.currency, w.bill_accounts[s.bill as usize].currency);
        if c.charge_type != RECURRING {
            assert_eq!(c.mrr, 0);
        }
        if let Some(e) = c.end {
            assert!(
                e > c.start,
                "effective_end_date is exclusive and after the start"
            );
        }
        assert_eq!(c.deleted, s.deleted);
    }
}

#[test]
fn revenue_lines_agree_with_deals_and_periods() {
    let sim = world();
    let w = &sim.w;
    let period: BTreeMap<i64, &Period> = w.periods.iter().map(|p| (p.id, p)).collect();
    let ids: BTreeSet<u32> = w.lines.iter().map(|l| l.id).collect();
    assert_eq!(ids.len(), w.lines.len());
    for l in &w.lines {
        let p = period.get(&l.period).expect("line in a known period");
        if l.recognized {
            assert!(p.closed, "only closed periods are recognized");
        }
        if let Some(OppRef::Opp(o)) = l.opp {
            assert_eq!(w.opps[o as usize].currency, l.currency);
            assert_eq!(w.opps[o as usize].stage, WON);
        }
        if l.currency == USD {
            assert_eq!(l.amount, l.transaction_amount);
        } else {
            let rate = sim.finance_rate(l.currency, month_index(p.start));
            assert_eq!(l.amount, super::sim::to_usd(l.transaction_amount, rate));
        }
    }
    // Non-USD lines use a books rate that differs from the CRM rate.
    let differs = w.lines.iter().filter(|l| l.currency != USD).any(|l| {
        let p = period[&l.period];
        sim.finance_rate(l.currency, month_index(p.start)) != sim.crm_rate(l.currency, p.start)
    });
    assert!(differs);
}

#[test]
fn marketing_history_and_merges_agree() {
    let w = &world().w;
    let mut last: BTreeMap<i64, (i64, u8)> = BTreeMap::new();
    for l in &w.life {
        let e = last.entry(l.contact).or_insert((i64::MIN, 0));
        if l.ts >= e.0 {
            *e = (l.ts, l.value);
        }
    }
    let ids: BTreeSet<i64> = w.contacts.iter().map(|c| c.id).collect();
    assert_eq!(ids.len(), w.contacts.len());
    for c in &w.contacts {
        assert_eq!(
            c.stage,
            last.get(&c.id).map(|x| x.1),
            "contact {}: current stage",
            c.id
        );
    }
    let contact: BTreeMap<i64, &Contact> = w.contacts.iter().map(|c| (c.id, c)).collect();
    let mut chains = 0;
    for m in &w.merges {
        assert!(
            contact[&m.merged].deleted,
            "a merged-away contact is deleted"
        );
        assert!(!contact.contains_key(&m.canonical) || m.canonical != m.merged);
        // The merged contact was itself a survivor of an earlier merge: a chain.
        if w.merges
            .iter()
            .any(|e| e.canonical == m.merged && e.ts < m.ts)
        {
            chains += 1;
        }
    }
    assert!(chains >= 1);
}

#[test]
fn tickets_and_health_are_consistent() {
    let w = &world().w;
    let ids: BTreeSet<i64> = w.tickets.iter().map(|t| t.id).collect();
    assert_eq!(ids.len(), w.tickets.len());
    for t in &w.tickets {
        let open = t.status <= 3;
        assert_eq!(open, t.solved.is_none(), "ticket {}", t.id);
        if let Some(s) = t.solved {
            assert!(s >= t.created);
        }
    }
    for h in &w.health {
        assert!((0..=100).contains(&h.score));
        assert_eq!(weekday(h.date), 0, "snapshots are weekly, on Mondays");
    }
    assert!(w.health.iter().any(|h| h.account.is_none()));
    assert!(w.health.iter().any(|h| h.status == 2));
}

// ---------------------------------------------------------------- planted quirks

#[test]
fn planted_crm_quirks_exist() {
    let w = &world().w;
    let names: Vec<&str> = w.accounts.iter().map(|a| a.name.as_str()).collect();
    assert!(names.contains(&"Contest Ltd"));
    assert!(names.iter().any(|n| n.contains("Test")));
    assert!(names.iter().any(|n| n.contains("TEST")));
    assert_eq!(
        w.accounts[acct::INTERNAL as usize].website.as_deref(),
        Some("https://www.acme.io/x")
    );
    // Merge chain A → B → C.
    let a = &w.accounts[acct::GLOBEX_A as usize];
    let b = &w.accounts[acct::GLOBEX_B as usize];
    assert_eq!((a.master, a.deleted), (Some(acct::GLOBEX_B), true));
    assert_eq!((b.master, b.deleted), (Some(acct::GLOBEX_C), true));
    assert!(w.accounts[acct::GLOBEX_C as usize].master.is_none());
    assert!(w.accounts.iter().any(|a| a.deleted && a.master.is_none()));
    assert!(w.accounts.iter().any(|a| a.parent.is_some()));
    // Random merge chains too.
    assert!(w.accounts.iter().any(|a| {
        a.master
            .is_some_and(|m| w.accounts[m as usize].master.is_some())
    }));

    let opps = &w.opps;
    assert!(
        opps.iter()
            .any(|o| o.created == ts_utc(2025, 2, 1, 5, 0, 0))
    );
    assert!(
        opps.iter()
            .any(|o| o.stage == WON && o.close == days(2025, 1, 31))
    );
    assert!(
        opps.iter()
            .any(|o| o.stage == WON && o.close == days(2025, 2, 1))
    );
    assert!(
        opps.iter()
            .any(|o| o.created == ts_utc(2024, 7, 1, 6, 30, 0))
    );
    assert!(opps.iter().any(|o| o.amount.is_none() && o.stage < WON));
    assert!(opps.iter().any(|o| o.amount.is_none() && o.stage == WON));
    assert!(opps.iter().any(|o| o.amount == Some(0) && o.stage == WON));
    assert!(opps.iter().any(|o| o.forecast == OMITTED && o.stage < WON));
    assert!(opps.iter().any(|o| o.deleted && o.stage == WON));
    for cur in [USD, EUR, GBP, JPY] {
        assert!(opps.iter().any(|o| o.currency == cur && o.stage == WON));
    }
    for typ in [NEW_BUSINESS, EXPANSION, RENEWAL] {
        for stage in 0..6u8 {
            assert!(
                opps.iter().any(|o| o.typ == typ && o.stage == stage),
                "type {typ} stage {stage}"
            );
        }
    }
    // Open deals whose close date has passed.
    let cal = Cal::new();
    assert!(
        opps.iter()
            .any(|o| o.stage < WON && o.close < cal.extract_day)
    );
    // Backwards and post-close history.
    let tyrell: Vec<&Hist> = {
        let o = opps
            .iter()
            .position(|o| o.created == ts_utc(2024, 7, 1, 6, 30, 0))
            .unwrap() as u32;
        let mut v: Vec<&Hist> = w.hist.iter().filter(|h| h.opp == o).collect();
        v.sort_by_key(|h| h.ts);
        v
    };
    assert!(
        tyrell.windows(2).any(|p| p[1].stage < p[0].stage),
        "a stage moves backwards"
    );
    let closing = tyrell.iter().position(|h| h.stage == WON).unwrap();
    assert!(closing < tyrell.len() - 1, "an amount change after closing");
    assert_ne!(tyrell[closing].amount, tyrell.last().unwrap().amount);
}

#[test]
fn planted_cross_system_quirks_exist() {
    let w = &world().w;
    // Billing crm_id: missing, merged-away, unknown; one CRM account with two billing accounts.
    let crm: Vec<Option<CrmRef>> = w.bill_accounts.iter().map(|b| b.crm).collect();
    assert!(crm.contains(&None));
    assert!(crm.contains(&Some(CrmRef::Account(acct::GLOBEX_A))));
    assert!(crm.contains(&Some(CrmRef::Account(acct::INITECH_DUP))));
    assert!(crm.iter().any(|c| matches!(c, Some(CrmRef::Unknown(_)))));
    assert_eq!(
        crm.iter()
            .filter(|c| **c == Some(CrmRef::Account(acct::UMBRELLA)))
            .count(),
        2
    );
    assert!(w.bill_accounts.iter().any(|b| b.deleted));
    assert!(
        w.bill_accounts
            .iter()
            .any(|b| b.crm.is_none() && b.name.contains("Test"))
    );
    // Subscriptions.
    let latest: Vec<&SubVersion> = w.subs.iter().filter(|s| s.latest).collect();
    for status in [ACTIVE, CANCELLED, EXPIRED] {
        assert!(latest.iter().any(|s| s.status == status));
    }
    assert!(latest.iter().any(|s| s.opp.is_none()));
    assert!(latest.iter().any(|s| s.term_end.is_none()));
    assert!(w.subs.iter().any(|s| s.deleted));
    // Charge types.
    for t in [RECURRING, ONE_TIME, USAGE] {
        assert!(w.charges.iter().any(|c| c.charge_type == t));
    }
    // Revenue lines: every kind of link.
    let l = &w.lines;
    assert!(l.iter().any(|x| x.opp.is_none() && x.sub.is_none()));
    assert!(l.iter().any(|x| x.opp.is_none() && x.sub.is_some()));
    assert!(l.iter().any(|x| matches!(x.opp, Some(OppRef::Unknown(_)))));
    assert!(l.iter().any(|x| x.deleted));
    assert!(
        l.iter()
            .any(|x| !x.recognized && !x.deleted && x.period <= 47)
    );
    for item in [ITEM_SUBSCRIPTION, ITEM_SERVICES, ITEM_USAGE] {
        assert!(l.iter().any(|x| x.item == item));
    }
    let lined: BTreeSet<u32> = l
        .iter()
        .filter_map(|x| match x.opp {
            Some(OppRef::Opp(o)) => Some(o),
            _ => None,
        })
        .collect();
    assert!(
        lined
            .iter()
            .any(|&o| w.opps[o as usize].account == acct::TEST)
    );
    assert!(
        w.opps.iter().enumerate().any(|(i, o)| o.stage == WON
            && o.amount.unwrap_or(0) > 0
            && !lined.contains(&(i as u32)))
    );
    // Support and health point at merged-away ids.
    assert!(
        w.orgs
            .iter()
            .any(|o| o.external == Some(CrmRef::Account(acct::GLOBEX_B)))
    );
    assert!(w.orgs.iter().any(|o| o.external.is_none()));
    assert!(
        w.health
            .iter()
            .any(|h| h.account == Some(CrmRef::Account(acct::GLOBEX_A)))
    );
    let la_midnight = w
        .tickets
        .iter()
        .any(|t| t.solved.is_some_and(|s| (s + la_offset(s)) % DAY_US == 0));
    assert!(la_midnight, "a ticket solved exactly at a day boundary");
    // Marketing: the planted people.
    let email = |id: i64| {
        w.contacts
            .iter()
            .find(|c| c.id == id)
            .unwrap()
            .email
            .clone()
    };
    let norm = |e: Option<String>| e.map(|e| e.trim().to_lowercase());
    assert_eq!(norm(email(1004)), norm(email(1005)));
    assert_ne!(email(1004), email(1005));
    assert!(email(1009).is_none());
    assert!(w.contacts.iter().any(|c| {
        c.email
            .as_deref()
            .is_some_and(|e| e.ends_with("@example.com"))
    }));
    assert!(
        w.contacts
            .iter()
            .any(|c| c.email.as_deref().is_some_and(|e| e.ends_with("@acme.io")))
    );
    assert!(
        w.merges
            .iter()
            .any(|m| m.canonical == 1003 && m.merged == 1002)
    );
    assert!(
        w.merges
            .iter()
            .any(|m| m.canonical == 1002 && m.merged == 1001)
    );
}

/// The ids docs/sample_company.md names, for two seeds: planted records do not depend on it.
#[test]
fn documented_ids_are_stable() {
    let other = build(7, 1);
    for sim in [world(), &other] {
        let w = &sim.w;
        let opp_id = |pred: &dyn Fn(&Opp) -> bool| -> String {
            let i = w.opps.iter().position(pred).expect("the planted deal");
            sf_id_string(OPP_PREFIX, i as u64 + 1)
        };
        let on = |a: u32| move |o: &Opp| o.account == a;
        assert_eq!(
            sf_id_string(ACCOUNT_PREFIX, acct::GLOBEX_A as u64 + 1),
            "0018d0000000005KYN"
        );
        assert_eq!(
            sf_id_string(ACCOUNT_PREFIX, acct::CONTEST as u64 + 1),
            "0018d0000000004TKI"
        );
        assert_eq!(w.accounts[acct::CONTEST as usize].name, "Contest Ltd");
        assert_eq!(
            opp_id(&|o| o.created == ts_utc(2025, 2, 1, 5, 0, 0)),
            "0068d000000000LSSH"
        );
        assert_eq!(
            opp_id(&|o| on(acct::VANDELAY)(o) && o.close == days(2025, 1, 31)),
            "0068d000000000JSGV"
        );
        assert_eq!(
            opp_id(&|o| on(acct::VANDELAY)(o) && o.close == days(2025, 2, 1)),
            "0068d000000000KYCB"
        );
        assert_eq!(
            opp_id(&|o| o.created == ts_utc(2024, 7, 1, 6, 30, 0)),
            "0068d000000000XKSA"
        );
        assert_eq!(
            opp_id(&|o| on(acct::WONKA)(o) && o.amount.is_none() && o.stage == WON),
            "0068d000000000QDAB"
        );
        assert_eq!(
            opp_id(&|o| on(acct::INTERNAL)(o) && o.close == days(2025, 8, 29)),
            "0068d0000000002XME"
        );
        assert_eq!(
            opp_id(&|o| on(acct::PRESTIGE)(o) && o.typ == NEW_BUSINESS),
            "0068d000000000aXLO"
        );
        let plan = |p: u32| {
            w.lines
                .iter()
                .find(|l| l.plan == p)
                .copied()
                .expect("the planted plan")
        };
        assert!(plan(28).opp.is_none() && plan(28).sub.is_some());
        assert_eq!(plan(32).opp, Some(OppRef::Unknown(1)));
        assert!(plan(31).opp.is_none() && plan(31).sub.is_none());
        assert_eq!(plan(3).opp, Some(OppRef::Opp(3)));
        let t101 = w.tickets.iter().find(|t| t.id == 101).unwrap();
        assert_eq!(t101.solved, Some(ts_utc(2025, 3, 1, 8, 0, 0)));
        assert_eq!(
            w.bill_accounts[3].crm,
            Some(CrmRef::Account(acct::GLOBEX_A))
        );
        assert_eq!(w.bill_accounts[12].crm, Some(CrmRef::Unknown(1)));
        assert_eq!(w.orgs[3].id, 360_000_000_028);
        assert_eq!(w.orgs[3].external, Some(CrmRef::Account(acct::GLOBEX_B)));
    }
}

/// `CANON_SAMPLE_OUT=dir CANON_SAMPLE_SCALE=n cargo test --release --lib sample::tests::stats -- --ignored --nocapture`
#[test]
#[ignore]
fn stats() {
    let out = std::env::var("CANON_SAMPLE_OUT").unwrap_or_else(|_| "/tmp/canon-sample".into());
    let scale = std::env::var("CANON_SAMPLE_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let t = std::time::Instant::now();
    let report = generate(&SampleOptions {
        out: out.into(),
        seed: 42,
        scale,
    })
    .unwrap();
    for t in &report.tables {
        println!(
            "{:<10} {:<24} {:>10} rows {:>12} bytes {:>3} files",
            t.system, t.table, t.rows, t.bytes, t.files
        );
    }
    println!(
        "total {} rows, {} bytes, {:?}",
        report.total_rows(),
        report.total_bytes(),
        t.elapsed()
    );
}

/// Prints the planted records' ids (for docs/sample_company.md).
#[test]
#[ignore]
fn planted_ids() {
    let sim = world();
    let w = &sim.w;
    for (i, a) in w.accounts.iter().enumerate().take(acct::COUNT as usize) {
        println!(
            "account {} {:?} master={:?} deleted={}",
            sf_id_string(ACCOUNT_PREFIX, i as u64 + 1),
            a.name,
            a.master.map(|m| sf_id_string(ACCOUNT_PREFIX, m as u64 + 1)),
            a.deleted
        );
    }
    for (i, o) in w.opps.iter().enumerate() {
        if (o.account as usize) < acct::COUNT as usize {
            println!(
                "deal {} {:?} {} {} amount={:?} {} close={:?} created={} deleted={} fc={}",
                sf_id_string(OPP_PREFIX, i as u64 + 1),
                o.name,
                STAGES[o.stage as usize],
                DEAL_TYPES[o.typ as usize],
                o.amount,
                CURRENCIES[o.currency as usize],
                ymd(o.close),
                o.created,
                o.deleted,
                FORECAST[o.forecast as usize]
            );
        }
    }
    for (i, b) in w.bill_accounts.iter().enumerate().take(30) {
        let mut id = String::new();
        zuora_id(&mut id, Z_ACCOUNT, i as u64 + 1);
        let mut crm = String::new();
        if let Some(r) = b.crm {
            crm_ref_id(&mut crm, r);
        }
        println!(
            "billing {id} A{:08} {:?} crm={crm} {} deleted={}",
            i + 1,
            b.name,
            CURRENCIES[b.currency as usize],
            b.deleted
        );
    }
    for s in w.subs.iter().filter(|s| s.bill < 26) {
        let mut id = String::new();
        zuora_id(&mut id, Z_SUBSCRIPTION, s.id as u64);
        println!(
            "sub {id} A-S{:08} v{} latest={} status={} opp={:?} deleted={} start={:?} end={:?}",
            s.number,
            s.version,
            s.latest,
            SUB_STATUS[s.status as usize],
            s.opp.map(|o| sf_id_string(OPP_PREFIX, o as u64 + 1)),
            s.deleted,
            ymd(s.start),
            s.term_end.map(ymd)
        );
    }
    type Plan = (usize, Option<OppRef>, Option<u32>, u8, i64, bool);
    let mut plans: BTreeMap<u32, Plan> = BTreeMap::new();
    for l in &w.lines {
        let e = plans
            .entry(l.plan)
            .or_insert((0, l.opp, l.sub, l.item, 0, false));
        e.0 += 1;
        e.4 += l.transaction_amount;
        e.5 |= l.deleted;
    }
    for (p, v) in plans.iter().take(70) {
        let mut o = String::new();
        if let Some(r) = v.1 {
            opp_ref_id(&mut o, r);
        }
        println!(
            "plan RP{:07} lines={} opp={o} sub={:?} item={} total={} deleted_line={}",
            p, v.0, v.2, ITEM_TYPES[v.3 as usize], v.4, v.5
        );
    }
    for o in w.orgs.iter().take(26) {
        let mut e = String::new();
        if let Some(r) = o.external {
            crm_ref_id(&mut e, r);
        }
        println!("org {} {:?} external={e}", o.id, o.name);
    }
    for t in w.tickets.iter().take(6) {
        println!(
            "ticket {} org={:?} status={} solved={:?}",
            t.id, t.org, TICKET_STATUS[t.status as usize], t.solved
        );
    }
}

/// Prints a business summary of the sample (bookings, pipeline, ARR, revenue by fiscal year).
#[test]
#[ignore]
fn summary() {
    let sim = world();
    let w = &sim.w;
    let fy = |day: i32| {
        let (y, m, _) = ymd(day);
        if m >= 2 { y + 1 } else { y }
    };
    let mut bookings: BTreeMap<i32, (usize, i64)> = BTreeMap::new();
    let mut closed: BTreeMap<i32, (usize, usize)> = BTreeMap::new();
    for o in &w.opps {
        if o.deleted || (o.account as usize) < acct::COUNT as usize {
            continue;
        }
        if o.stage == WON {
            let e = bookings.entry(fy(o.close)).or_default();
            e.0 += 1;
            e.1 += super::sim::to_usd(o.amount.unwrap_or(0), sim.crm_rate(o.currency, o.close));
        }
        if o.stage >= WON {
            let e = closed.entry(fy(o.close)).or_default();
            e.1 += 1;
            if o.stage == WON {
                e.0 += 1;
            }
        }
    }
    for (y, (n, usd)) in &bookings {
        let c = closed[y];
        println!(
            "FY{y}: {n} won deals, bookings {} USD, win rate {:.2}",
            usd / 100,
            c.0 as f64 / c.1 as f64
        );
    }
    let open: Vec<&Opp> = w
        .opps
        .iter()
        .filter(|o| o.stage < WON && !o.deleted)
        .collect();
    println!("open deals at extract: {}", open.len());
    let mut rev: BTreeMap<i64, i64> = BTreeMap::new();
    let fy_of: BTreeMap<i64, i64> = w.periods.iter().map(|p| (p.id, p.fiscal_year)).collect();
    for l in &w.lines {
        if l.recognized && !l.deleted {
            *rev.entry(fy_of[&l.period]).or_default() += l.amount;
        }
    }
    for (y, v) in &rev {
        println!("FY{y}: recognized revenue {} USD", v / 100);
    }
    let sub_of: BTreeMap<u32, &SubVersion> = w.subs.iter().map(|s| (s.id, s)).collect();
    for d in [
        days(2023, 6, 30),
        days(2024, 1, 31),
        days(2025, 1, 31),
        days(2025, 12, 31),
    ] {
        let mut arr = 0i64;
        for c in &w.charges {
            let s = sub_of[&c.sub];
            if c.charge_type == RECURRING
                && !c.deleted
                && s.latest
                && !s.deleted
                && c.start <= d
                && c.end.is_none_or(|e| e > d)
            {
                arr += super::sim::to_usd(c.mrr * 12, sim.crm_rate(c.currency, d));
            }
        }
        println!("ARR at {:?}: {} USD", ymd(d), arr / 100);
    }
    let mqls = w.life.iter().filter(|l| l.value == MQL).count();
    println!(
        "MQL rows: {mqls}; contacts {}; merges {}",
        w.contacts.len(),
        w.merges.len()
    );
    let open_tickets = w.tickets.iter().filter(|t| t.solved.is_none()).count();
    println!("tickets {} open {open_tickets}", w.tickets.len());
    let red = w
        .health
        .iter()
        .filter(|h| h.date >= days(2025, 12, 29) && h.status == 2)
        .count();
    println!("red health snapshots in the last week: {red}");
}
