//! Marketing contacts and their lifecycle, support organizations and
//! tickets, and customer-health snapshots — each following the CRM story.

use super::planted::acct;
use super::rng::Rng;
use super::sim::{FIRST_NAMES, LAST_NAMES, Sim};
use super::time::*;
use super::world::*;

const FREE_DOMAINS: [&str; 5] = [
    "gmail.com",
    "outlook.com",
    "yahoo.com",
    "icloud.com",
    "proton.me",
];

/// The bare domain of a website as typed into the CRM.
pub fn web_domain(website: &str) -> String {
    let w = website.trim().to_lowercase();
    let w = w
        .strip_prefix("https://")
        .or_else(|| w.strip_prefix("http://"))
        .unwrap_or(&w);
    let w = w.strip_prefix("www.").unwrap_or(w);
    w.split(['/', '?', '#']).next().unwrap_or("").to_string()
}

// ------------------------------------------------------------------ marketing

/// A planted contact with its lifecycle history (the last stage is the current one).
fn contact(
    sim: &mut Sim,
    id: i64,
    email: Option<&str>,
    created: i64,
    deleted: bool,
    stages: &[(u8, i64)],
) {
    sim.w.contacts.push(Contact {
        id,
        email: email.map(str::to_string),
        created,
        stage: stages.last().map(|&(s, _)| s),
        deleted,
    });
    for (k, &(value, ts)) in stages.iter().enumerate() {
        sim.w.life.push(Life {
            contact: id,
            value,
            ts,
            source: Some(if k == 0 { 0 } else { 3 }),
        });
    }
}

fn t(y: i32, m: u32, d: u32, h: u32, mi: u32) -> i64 {
    ts_utc(y, m, d, h, mi, 0)
}

fn planted_contacts(sim: &mut Sim) {
    // Times are UTC; 17:00Z is 09:00 or 10:00 in Los Angeles.
    // Merge chain: 1001 merged into 1002 (2024-05-01), 1002 into 1003 (2024-11-15).
    contact(
        sim,
        1001,
        Some("maria.lopez@globex.com"),
        t(2024, 1, 10, 17, 0),
        true,
        &[(LEAD, t(2024, 1, 10, 17, 0)), (MQL, t(2024, 2, 10, 17, 0))],
    );
    contact(
        sim,
        1002,
        Some("maria.lopez@globexcorp.com"),
        t(2024, 4, 20, 17, 0),
        true,
        &[(LEAD, t(2024, 4, 20, 17, 0)), (MQL, t(2024, 6, 1, 17, 0))],
    );
    contact(
        sim,
        1003,
        Some("Maria.Lopez@globex.com"),
        t(2024, 10, 1, 17, 0),
        false,
        &[
            (SUBSCRIBER, t(2024, 10, 1, 17, 0)),
            (LEAD, t(2024, 10, 15, 17, 0)),
            (SQL, t(2024, 12, 2, 17, 0)),
            (OPPORTUNITY, t(2025, 1, 10, 17, 0)),
        ],
    );
    // One person, two unmerged contacts: emails differ in case and spaces.
    contact(
        sim,
        1004,
        Some("Dana.Scully@fbi-consulting.com"),
        t(2025, 2, 3, 17, 0),
        false,
        &[(LEAD, t(2025, 2, 3, 17, 0)), (MQL, t(2025, 3, 3, 17, 0))],
    );
    contact(
        sim,
        1005,
        Some("  dana.scully@FBI-consulting.com "),
        t(2025, 2, 10, 17, 0),
        false,
        &[(LEAD, t(2025, 2, 10, 17, 0)), (MQL, t(2025, 2, 20, 17, 0))],
    );
    contact(
        sim,
        1006,
        Some("pat.jones@example.com"),
        t(2025, 3, 20, 17, 0),
        false,
        &[(LEAD, t(2025, 3, 20, 17, 0)), (MQL, t(2025, 4, 2, 17, 0))],
    );
    contact(
        sim,
        1007,
        Some("qa.tester@initech.com"),
        t(2025, 3, 25, 17, 0),
        false,
        &[(LEAD, t(2025, 3, 25, 17, 0)), (MQL, t(2025, 4, 10, 17, 0))],
    );
    contact(
        sim,
        1008,
        Some("jsmith@acme.io"),
        t(2025, 4, 1, 17, 0),
        false,
        &[(LEAD, t(2025, 4, 1, 17, 0)), (MQL, t(2025, 5, 5, 17, 0))],
    );
    contact(
        sim,
        1009,
        None,
        t(2025, 4, 15, 17, 0),
        false,
        &[(LEAD, t(2025, 4, 15, 17, 0)), (MQL, t(2025, 5, 12, 17, 0))],
    );
    // Skips MQL: lead straight to SQL.
    contact(
        sim,
        1010,
        Some("raj.patel@soylentfoods.com"),
        t(2025, 3, 2, 17, 0),
        false,
        &[(LEAD, t(2025, 3, 2, 17, 0)), (SQL, t(2025, 3, 20, 17, 0))],
    );
    // Backwards: MQL, recycled to lead, MQL again, SQL more than 90 days after the first MQL.
    contact(
        sim,
        1011,
        Some("ellen.ripley@weyland.com"),
        t(2024, 8, 1, 17, 0),
        false,
        &[
            (LEAD, t(2024, 8, 1, 17, 0)),
            (MQL, t(2024, 8, 15, 17, 0)),
            (LEAD, t(2024, 10, 1, 17, 0)),
            (MQL, t(2025, 1, 20, 17, 0)),
            (SQL, t(2025, 2, 10, 17, 0)),
        ],
    );
    contact(
        sim,
        1012,
        Some("gone.away@umbrella-group.com"),
        t(2025, 5, 20, 17, 0),
        true,
        &[(LEAD, t(2025, 5, 20, 17, 0)), (MQL, t(2025, 6, 1, 17, 0))],
    );
    // MQL at 2025-02-01T05:00Z: still 2025-01-31 (FY2025) in Los Angeles.
    contact(
        sim,
        1013,
        Some("lee.wong@soylentfoods.com"),
        t(2025, 1, 20, 17, 0),
        false,
        &[(LEAD, t(2025, 1, 20, 17, 0)), (MQL, t(2025, 2, 1, 5, 0))],
    );
    // MQL at 2025-03-01T07:59Z: still February 28 in Los Angeles.
    contact(
        sim,
        1014,
        Some("hans.gruber@vandelay.de"),
        t(2025, 2, 14, 17, 0),
        false,
        &[(LEAD, t(2025, 2, 14, 17, 0)), (MQL, t(2025, 3, 1, 7, 59))],
    );
    // SQL exactly 90 days after the MQL (inside the inclusive window).
    contact(
        sim,
        1015,
        Some("sarah.connor@cyberdyne.com"),
        t(2025, 3, 15, 17, 0),
        false,
        &[
            (LEAD, t(2025, 3, 15, 17, 0)),
            (MQL, t(2025, 4, 1, 17, 0)),
            (SQL, t(2025, 6, 30, 17, 0)),
        ],
    );
    // SQL 91 days after the MQL (outside the window).
    contact(
        sim,
        1016,
        Some(" Ken.Adams@vandelay.de "),
        t(2025, 3, 15, 17, 0),
        false,
        &[
            (LEAD, t(2025, 3, 15, 17, 0)),
            (MQL, t(2025, 4, 1, 17, 0)),
            (SQL, t(2025, 7, 1, 17, 0)),
        ],
    );
    sim.w.merges.push(Merge {
        canonical: 1002,
        merged: 1001,
        ts: t(2024, 5, 1, 18, 30),
    });
    sim.w.merges.push(Merge {
        canonical: 1003,
        merged: 1002,
        ts: t(2024, 11, 15, 18, 30),
    });
}

fn next_stage(rng: &mut Rng, stage: u8) -> Option<u8> {
    let r = rng.unit();
    match stage {
        SUBSCRIBER if r < 0.7 => Some(LEAD),
        SUBSCRIBER if r < 0.8 => Some(MQL),
        LEAD if r < 0.55 => Some(MQL),
        LEAD if r < 0.61 => Some(SQL),
        MQL if r < 0.5 => Some(SQL),
        MQL if r < 0.6 => Some(LEAD),
        SQL if r < 0.55 => Some(OPPORTUNITY),
        SQL if r < 0.61 => Some(LEAD),
        OPPORTUNITY if r < 0.45 => Some(CUSTOMER),
        OPPORTUNITY if r < 0.5 => Some(OTHER),
        CUSTOMER if r < 0.12 => Some(EVANGELIST),
        OTHER if r < 0.2 => Some(LEAD),
        _ => None,
    }
}

fn lifecycle_source(rng: &mut Rng) -> Option<u8> {
    rng.pick_weighted(&[
        (Some(0u8), 35),
        (Some(1), 10),
        (Some(2), 20),
        (Some(3), 20),
        (Some(4), 10),
        (None, 5),
    ])
}

/// An email address for a new contact.
fn random_email(rng: &mut Rng, i: usize, domains: &[String]) -> Option<String> {
    let first = rng.pick(&FIRST_NAMES).to_lowercase();
    let last = rng.pick(&LAST_NAMES).to_lowercase();
    let n = i % 997;
    let r = rng.below(1000);
    Some(match r {
        0..=29 => return None,
        30..=49 => format!("{first}.{last}{n}@example.com"),
        50..=54 => format!("test{n}@{}", pick_domain(rng, domains)),
        55..=59 => format!("{first}.tester@{}", pick_domain(rng, domains)),
        60..=69 => format!("{first}.{last}@acme.io"),
        70..=119 => format!("{}{last}{n}@{}", &first[..1], pick_domain(rng, domains)),
        120..=159 => format!(
            "{}.{}{n}@{}",
            capitalize(&first),
            capitalize(&last),
            pick_domain(rng, domains)
        ),
        160..=499 => format!("{first}.{last}{n}@{}", rng.pick(&FREE_DOMAINS)),
        _ => format!("{first}.{last}{n}@{}", pick_domain(rng, domains)),
    })
}

fn pick_domain<'a>(rng: &mut Rng, domains: &'a [String]) -> &'a str {
    if domains.is_empty() {
        "example.org"
    } else {
        rng.pick(domains).as_str()
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// A variant of an email that is the same person's: other case or stray spaces.
fn email_variant(rng: &mut Rng, email: &str) -> String {
    match rng.below(3) {
        0 => email.to_uppercase(),
        1 => format!(" {email} "),
        _ => capitalize(email),
    }
}

pub fn marketing(sim: &mut Sim) {
    planted_contacts(sim);
    let mut rng = Rng::derive(sim.seed, 10, 0);
    let domains: Vec<String> = sim
        .w
        .accounts
        .iter()
        .filter(|a| !a.deleted)
        .filter_map(|a| a.website.as_deref().map(web_domain))
        .filter(|d| !d.is_empty() && !d.ends_with("acme.io") && !d.contains("example"))
        .collect();
    let n = 22_000 * sim.scale as usize;
    let t0 = la_time(days(2022, 10, 1), 0);
    let t1 = sim.cal.extract_ts - 2 * HOUR_US;
    let mut created: Vec<i64> = (0..n)
        .map(|_| rng.range(t0, t1) / 1_000_000 * 1_000_000)
        .collect();
    created.sort_unstable();
    let first_id = 20_001i64;
    let base = sim.w.contacts.len();
    // Survivor bookkeeping for merges: index of the contact each was merged into.
    let mut merged_into: Vec<Option<usize>> = vec![None; n];
    let mut last_merge: Vec<i64> = vec![i64::MIN; n];
    for (i, &created_at) in created.iter().enumerate() {
        let id = first_id + i as i64;
        let mut email = random_email(&mut rng, i, &domains);
        let mut deleted = rng.chance(0.015);
        // Duplicates of an earlier contact: merged, or left unmerged.
        if email.is_some() && i > 0 && rng.chance(0.03) {
            let j = i - 1 - rng.below(i.min(2000) as u64) as usize;
            let other = sim.w.contacts[base + j].email.clone();
            if let Some(other) = other.filter(|_| merged_into[j].is_none()) {
                let r = rng.below(100);
                if r < 60 {
                    email = Some(if rng.chance(0.5) {
                        other.clone()
                    } else {
                        email_variant(&mut rng, other.trim())
                    });
                    let ts = created_at.max(last_merge[j]) + rng.range(HOUR_US, 90 * DAY_US);
                    if ts < t1 {
                        // Either the new contact absorbs the old one (which may
                        // already have absorbed others: a chain) or the reverse.
                        let (canonical, merged) = if rng.chance(0.6) { (i, j) } else { (j, i) };
                        sim.w.merges.push(Merge {
                            canonical: first_id + canonical as i64,
                            merged: first_id + merged as i64,
                            ts,
                        });
                        merged_into[merged] = Some(canonical);
                        last_merge[canonical] = ts;
                        if merged == j {
                            sim.w.contacts[base + j].deleted = true;
                        } else {
                            deleted = true;
                        }
                    }
                } else {
                    email = Some(email_variant(&mut rng, other.trim()));
                }
            }
        }
        // Lifecycle history.
        let start = rng.pick_weighted(&[
            (Some(SUBSCRIBER), 30),
            (Some(LEAD), 58),
            (Some(OTHER), 4),
            (None, 8),
        ]);
        let mut stage = None;
        if let Some(s) = start {
            let mut t = created_at;
            let mut cur = s;
            sim.w.life.push(Life {
                contact: id,
                value: cur,
                ts: t,
                source: lifecycle_source(&mut rng),
            });
            while let Some(next) = next_stage(&mut rng, cur) {
                t += rng.range(HOUR_US, 120 * DAY_US) / 1_000_000 * 1_000_000;
                if t >= t1 {
                    break;
                }
                cur = next;
                sim.w.life.push(Life {
                    contact: id,
                    value: cur,
                    ts: t,
                    source: lifecycle_source(&mut rng),
                });
            }
            stage = Some(cur);
        }
        sim.w.contacts.push(Contact {
            id,
            email,
            created: created_at,
            stage,
            deleted,
        });
    }
}

// ------------------------------------------------------------------ support

pub fn support(sim: &mut Sim) {
    let mut rng = Rng::derive(sim.seed, 20, 0);
    let ext_ts = sim.cal.extract_ts;
    let n_accounts = sim.w.accounts.len();
    let mut org_of: Vec<Option<(i64, usize)>> = vec![None; n_accounts];
    let mut k = 0usize;
    for (a, slot) in org_of.iter_mut().enumerate() {
        let acc = &sim.w.accounts[a];
        if acc.master.is_some() {
            continue;
        }
        let spans = &sim.spans[a];
        let planted = (a as u32) < acct::COUNT;
        let prospect_org = !planted && spans.is_empty() && !acc.deleted && rng.chance(0.04);
        if spans.is_empty() && !prospect_org {
            continue;
        }
        let created = match spans.first() {
            Some(&(s, _)) => la_time(s, 9 * 60) + rng.range(0, 10 * DAY_US),
            None => acc.created + rng.range(DAY_US, 200 * DAY_US),
        }
        .min(ext_ts - DAY_US);
        let external = if planted {
            match a as u32 {
                acct::GLOBEX_C => Some(CrmRef::Account(acct::GLOBEX_B)),
                acct::STARK => None,
                _ => Some(CrmRef::Account(a as u32)),
            }
        } else {
            match rng.below(1000) {
                0..=29 => None,
                30..=44 => Some(CrmRef::Unknown(5000 + a as u32)),
                _ => match sim.dup_of[a] {
                    Some(d) if rng.chance(0.5) => Some(CrmRef::Account(d)),
                    _ => Some(CrmRef::Account(a as u32)),
                },
            }
        };
        k += 1;
        let id = 360_000_000_000 + k as i64 * 7;
        let name = if rng.chance(0.2) {
            acc.name.to_uppercase()
        } else {
            acc.name.clone()
        };
        sim.w.orgs.push(Org {
            id,
            name,
            external,
            created,
            deleted: !planted && rng.chance(0.01),
        });
        *slot = Some((id, k));
    }
    // Planted tickets (ids 101..) on Globex's organization.
    let globex = org_of[acct::GLOBEX_C as usize].expect("Globex has an organization");
    let g = Some(globex.0);
    let ticket = |id: i64,
                  org: Option<i64>,
                  status: u8,
                  priority: Option<u8>,
                  created: i64,
                  solved: Option<i64>| Ticket {
        id,
        org,
        requester: 7_000_000 + id,
        status,
        priority,
        created,
        solved,
        deleted: false,
    };
    let planted = [
        // Solved exactly at midnight in Los Angeles (PST, then PDT), and at midnight UTC.
        ticket(
            101,
            g,
            5,
            Some(2),
            t(2025, 2, 24, 18, 0),
            Some(t(2025, 3, 1, 8, 0)),
        ),
        ticket(
            102,
            g,
            5,
            Some(1),
            t(2025, 6, 28, 16, 0),
            Some(t(2025, 7, 1, 7, 0)),
        ),
        ticket(
            103,
            g,
            5,
            Some(0),
            t(2025, 9, 29, 20, 0),
            Some(t(2025, 10, 1, 0, 0)),
        ),
        // Created Dec 31 in Los Angeles (Jan 1 in UTC), still new.
        ticket(104, g, 0, Some(3), t(2026, 1, 1, 7, 30), None),
        Ticket {
            deleted: true,
            ..ticket(
                105,
                g,
                5,
                Some(1),
                t(2025, 5, 5, 16, 0),
                Some(t(2025, 5, 5, 16, 5)),
            )
        },
        ticket(106, None, 2, None, t(2025, 12, 15, 19, 0), None),
    ];
    sim.w.tickets.extend(planted);
    // Random tickets while each organization's account is a customer.
    let mut random: Vec<Ticket> = Vec::new();
    for (a, slot) in org_of.iter().enumerate() {
        let Some((org, k)) = *slot else {
            continue;
        };
        let mut windows: Vec<(i64, i64)> = sim.spans[a]
            .iter()
            .map(|&(s, e)| {
                let end = e.map(|e| la_time(e + 30, 0)).unwrap_or(ext_ts).min(ext_ts);
                (la_time(s, 0), end)
            })
            .collect();
        if windows.is_empty() {
            windows.push((sim.w.orgs[k - 1].created, ext_ts));
        }
        let per_month = rng.log_uniform(0.3, 2.5);
        let mean_gap = (30.0 * DAY_US as f64 / per_month) as i64;
        for (s, e) in windows {
            let mut t = s + rng.range(0, mean_gap);
            while t < e {
                let created = t / 1_000_000 * 1_000_000;
                let resolution = rng.log_uniform(0.5, 40.0 * 24.0) * HOUR_US as f64;
                let solved_at = created + resolution as i64 / 1_000_000 * 1_000_000;
                let priority = rng.pick_weighted(&[
                    (Some(0u8), 25),
                    (Some(1), 50),
                    (Some(2), 15),
                    (Some(3), 5),
                    (None, 5),
                ]);
                let (status, solved) = if solved_at >= ext_ts {
                    let st = if ext_ts - created < 2 * DAY_US {
                        0
                    } else {
                        *rng.pick(&[1u8, 1, 2, 3])
                    };
                    (st, None)
                } else if solved_at >= ext_ts - 4 * DAY_US {
                    (4, Some(solved_at))
                } else {
                    (5, Some(solved_at))
                };
                random.push(Ticket {
                    id: 0,
                    org: if rng.chance(0.04) { None } else { Some(org) },
                    requester: 8_000_000 + k as i64 * 50 + rng.below(12) as i64,
                    status,
                    priority,
                    created,
                    solved,
                    deleted: rng.chance(0.01),
                });
                t += 1 + (-(1.0 - rng.unit()).ln() * mean_gap as f64) as i64;
            }
        }
    }
    random.sort_by_key(|t| t.created);
    for (i, mut tk) in random.into_iter().enumerate() {
        tk.id = 10_001 + i as i64;
        sim.w.tickets.push(tk);
    }
}

// ------------------------------------------------------------------ customer health

pub fn health(sim: &mut Sim) {
    let mut rng = Rng::derive(sim.seed, 30, 0);
    let ext = sim.cal.extract_day;
    // One snapshot per company id and day, as the CS platform keys them: a
    // duplicate account reporting under its original's id, or a returning
    // customer's overlapping spans, must not write the same key twice.
    let mut written: std::collections::BTreeSet<(CrmRef, i32)> = std::collections::BTreeSet::new();
    for a in 0..sim.w.accounts.len() {
        if sim.spans[a].is_empty() || sim.w.accounts[a].master.is_some() {
            continue;
        }
        let planted = (a as u32) < acct::COUNT;
        let id = if planted {
            match a as u32 {
                acct::GLOBEX_C => Some(CrmRef::Account(acct::GLOBEX_A)),
                _ => Some(CrmRef::Account(a as u32)),
            }
        } else {
            match rng.below(100) {
                0..=2 => None,
                _ => match sim.dup_of[a] {
                    Some(d) if rng.chance(0.5) => Some(CrmRef::Account(d)),
                    _ => Some(CrmRef::Account(a as u32)),
                },
            }
        };
        let mut score: f64 = 55.0 + rng.unit() * 35.0;
        let spans = sim.spans[a].clone();
        for (s, e) in spans {
            let first = s + (7 - weekday(s)).rem_euclid(7);
            let last = e.map(|e| e + 28).unwrap_or(ext - 1).min(ext - 1);
            let mut day = first;
            while day <= last {
                let to_churn = e.filter(|&e| e <= ext).map(|e| e - day);
                let drift = match to_churn {
                    Some(dd) if dd < 120 => -4.0,
                    _ => (72.0 - score) * 0.1,
                };
                score = (score + drift + (rng.unit() - 0.5) * 12.0).clamp(3.0, 99.0);
                let mut s_int = score.round() as i64;
                if a as u32 == acct::WAYNE && day >= days(2025, 11, 3) {
                    s_int = 22 + (day % 7) as i64;
                }
                let mut status = if s_int >= 70 {
                    0
                } else if s_int >= 45 {
                    1
                } else {
                    2
                };
                // A CSM overrides the computed status now and then.
                if !planted && rng.chance(0.03) {
                    status = if status == 1 { *rng.pick(&[0u8, 2]) } else { 1 };
                }
                if id.is_none_or(|r| written.insert((r, day))) {
                    sim.w.health.push(Health {
                        account: id,
                        score: s_int,
                        status,
                        date: day,
                    });
                }
                day += 7;
            }
        }
    }
}

// ------------------------------------------------------------------ finance without deals

/// Services arrangements booked in finance with no deal and no subscription.
pub fn services_without_deals(sim: &mut Sim) {
    use super::sim::Sched;
    let mut rng = Rng::derive(sim.seed, 40, 0);
    let n = 10 * sim.scale as usize;
    let first = month_index(days(2023, 2, 1));
    let last = month_index(days(2025, 11, 1));
    for _ in 0..n {
        let currency = rng.pick_weighted(&[(USD, 80), (EUR, 12), (GBP, 8)]);
        let months = rng.range(1, 5) as i32;
        let total = (rng.log_uniform(2_000.0, 30_000.0) as i64 / 100 * 100) * 100;
        let start_month = rng.range(first as i64, last as i64 + 1) as i32;
        sim.schedule(
            &mut rng,
            Sched {
                opp: None,
                sub: None,
                currency,
                start_month,
                months,
                total,
                item: ITEM_SERVICES,
            },
        );
    }
}
