//! Hand-written scenarios with fixed ids, the same for every seed and scale:
//! the exclusion cases, identity quirks and calendar boundaries a tester looks
//! for (listed in docs/sample_company.md).
//!
//! Planted records are written first, so their indexes (and hence ids) never
//! depend on the seed: CRM accounts 1..=23, deals 1.., contacts 1001.., support
//! tickets 101...

use super::rng::Rng;
use super::sim::*;
use super::time::*;
use super::world::*;

/// The planted stories draw their incidental details from this fixed stream.
pub const PLANTED_SEED: u64 = 0xACE0_2026;

/// Indexes of the planted CRM accounts (id = `001…` of index + 1).
pub mod acct {
    pub const INTERNAL: u32 = 0;
    pub const TEST: u32 = 1;
    pub const TEST_UPPER: u32 = 2;
    pub const CONTEST: u32 = 3;
    pub const GLOBEX_A: u32 = 4;
    pub const GLOBEX_B: u32 = 5;
    pub const GLOBEX_C: u32 = 6;
    pub const INITECH: u32 = 7;
    pub const INITECH_DUP: u32 = 8;
    pub const UMBRELLA: u32 = 9;
    pub const HOOLI: u32 = 10;
    pub const MASSIVE_PARENT: u32 = 11;
    pub const MASSIVE_UK: u32 = 12;
    pub const MASSIVE_JP: u32 = 13;
    pub const VANDELAY: u32 = 14;
    pub const SOYLENT: u32 = 15;
    pub const WONKA: u32 = 16;
    pub const STARK: u32 = 17;
    pub const CYBERDYNE: u32 = 18;
    pub const TYRELL: u32 = 19;
    pub const WAYNE: u32 = 20;
    pub const PRESTIGE: u32 = 21;
    pub const BLUTH: u32 = 22;
    pub const DUNDER: u32 = 23;
    pub const COUNT: u32 = 24;
}

fn d(y: i32, m: u32, day: u32) -> i32 {
    days(y, m, day)
}

fn noon(day: i32) -> i64 {
    la_time(day, 12 * 60)
}

struct Planter<'a> {
    sim: &'a mut Sim,
    rng: Rng,
}

/// A planted deal with a plain history: created, one amount and close-date
/// change, then the outcome.
struct P {
    acct: u32,
    owner: u32,
    typ: u8,
    cur: u8,
    name: &'static str,
    created: i64,
    close: i32,
    outcome: Outcome,
    amount: Option<i64>,
}

impl Planter<'_> {
    fn account(
        &mut self,
        name: &str,
        country: Option<&'static str>,
        website: Option<&str>,
        industry: Option<&'static str>,
        created: i32,
    ) -> u32 {
        let country_idx = match country {
            Some("US") => Some(0),
            Some("GB") => Some(1),
            Some("DE") => Some(2),
            Some("JP") => Some(4),
            _ => None,
        };
        let idx = self.sim.w.accounts.len() as u32;
        self.sim.push_account(
            Account {
                name: name.to_string(),
                typ: "Prospect",
                parent: None,
                master: None,
                owner: 1 + idx % 6,
                industry,
                country,
                website: website.map(str::to_string),
                created: noon(created),
                deleted: false,
            },
            country_idx,
        )
    }

    fn deal(&mut self, p: P) -> u32 {
        self.deal_with(p, |_| {})
    }

    fn deal_with(&mut self, p: P, tweak: impl FnOnce(&mut DealSpec)) -> u32 {
        let acct_name = self.sim.w.accounts[p.acct as usize].name.clone();
        let mut spec = DealSpec::new(
            p.acct,
            p.owner,
            p.typ,
            p.cur,
            format!("{acct_name} - {}", p.name),
        );
        spec.created = p.created;
        spec.close = p.close;
        spec.outcome = p.outcome;
        spec.amount = p.amount;
        spec.amount_changes = 1;
        spec.close_changes = 1;
        spec.lead_source = Some("Outbound");
        tweak(&mut spec);
        self.sim.add_deal(&mut self.rng, spec)
    }

    fn sched(&mut self, deal: u32) -> SchedStyle {
        SchedStyle {
            opp: Some(deal),
            ..SchedStyle::default()
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn sell(
        &mut self,
        bill: u32,
        deal: Option<u32>,
        start: i32,
        term: i32,
        mrr: i64,
        fee: i64,
        style: SchedStyle,
    ) -> SubBuild {
        let sim = &mut *self.sim;
        sim.sell(
            &mut self.rng,
            bill,
            deal,
            start,
            term,
            mrr,
            fee,
            false,
            style,
        )
    }

    fn bill(&mut self, name: &str, crm: Option<CrmRef>, cur: u8, created: i32) -> u32 {
        self.sim
            .add_bill_account(name.to_string(), crm, cur, noon(created))
    }

    fn expire(&mut self, mut sb: SubBuild) {
        let e = sb.term_end.expect("termed");
        if e <= self.sim.cal.extract_day {
            sb.status = EXPIRED;
            sb.end = Some(e);
        }
        self.sim.finish_sub(sb);
    }
}

const M: i64 = 100; // cents per unit

/// Write every planted scenario.
pub fn plant(sim: &mut Sim) {
    let mut p = Planter {
        sim,
        rng: Rng::new(PLANTED_SEED),
    };
    use acct::*;

    // ---------------------------------------------------------- accounts
    let a = p.account(
        "Acme Corp (Internal)",
        Some("US"),
        Some("https://www.acme.io/x"),
        Some("Software"),
        d(2022, 3, 1),
    );
    debug_assert_eq!(a, INTERNAL);
    p.account(
        "Test Account - Do Not Use",
        Some("US"),
        None,
        None,
        d(2022, 5, 2),
    );
    p.account(
        "ZZZ TEST Sandbox",
        Some("US"),
        Some("sandbox.example.com"),
        None,
        d(2023, 2, 6),
    );
    p.account(
        "Contest Ltd",
        Some("GB"),
        Some("https://www.contest.co.uk"),
        Some("Media"),
        d(2023, 9, 4),
    );
    p.account(
        "Globex Holdings",
        Some("US"),
        Some("globex.com"),
        Some("Manufacturing"),
        d(2022, 8, 1),
    );
    p.account(
        "Globex Corp",
        Some("US"),
        Some("http://globex.com"),
        Some("Manufacturing"),
        d(2022, 11, 7),
    );
    p.account(
        "Globex Corporation",
        Some("US"),
        Some("https://www.globex.com/about"),
        Some("Manufacturing"),
        d(2023, 1, 9),
    );
    p.account(
        "Initech",
        Some("US"),
        Some("https://www.initech.com"),
        Some("Software"),
        d(2023, 6, 12),
    );
    p.account(
        "Initech LLC",
        Some("US"),
        Some("initech.com"),
        Some("Software"),
        d(2023, 4, 3),
    );
    p.account(
        "Umbrella Group",
        Some("US"),
        Some("www.umbrella-group.com"),
        Some("Healthcare"),
        d(2023, 3, 13),
    );
    p.account(
        "Hooli",
        Some("US"),
        Some("https://hooli.xyz"),
        Some("Software"),
        d(2023, 5, 1),
    );
    p.account(
        "Massive Dynamic Holdings",
        Some("US"),
        Some("https://www.massivedynamic.com"),
        Some("Energy"),
        d(2023, 1, 16),
    );
    p.account(
        "Massive Dynamic UK Ltd",
        Some("GB"),
        Some("http://massivedynamic.co.uk"),
        Some("Energy"),
        d(2024, 10, 7),
    );
    p.account(
        "Massive Dynamic KK",
        Some("JP"),
        Some("https://www.massivedynamic.co.jp"),
        Some("Energy"),
        d(2024, 11, 4),
    );
    p.account(
        "Vandelay Industries GmbH",
        Some("DE"),
        Some("https://www.vandelay.de"),
        Some("Logistics"),
        d(2024, 6, 3),
    );
    p.account(
        "Soylent Foods Inc",
        Some("US"),
        Some("soylentfoods.com"),
        Some("Retail"),
        d(2024, 9, 9),
    );
    p.account(
        "Wonka Confections",
        Some("US"),
        Some("https://www.wonka.com"),
        Some("Retail"),
        d(2024, 1, 8),
    );
    p.account(
        "Stark Industries",
        Some("US"),
        Some("https://www.starkindustries.com"),
        Some("Manufacturing"),
        d(2024, 5, 6),
    );
    p.account(
        "Cyberdyne Systems",
        Some("US"),
        Some("cyberdyne.com"),
        Some("Software"),
        d(2022, 10, 3),
    );
    p.account(
        "Tyrell Corp",
        Some("US"),
        Some("https://tyrell.com/"),
        Some("Biotech"),
        d(2024, 3, 4),
    );
    p.account(
        "Wayne Enterprises",
        Some("US"),
        Some("https://www.wayne-enterprises.com"),
        Some("Financial Services"),
        d(2023, 11, 6),
    );
    p.account(
        "Prestige Worldwide",
        Some("US"),
        Some("prestigeworldwide.com"),
        Some("Media"),
        d(2024, 4, 1),
    );
    p.account(
        "Bluth Company",
        Some("US"),
        Some("http://bluth.com"),
        Some("Financial Services"),
        d(2024, 6, 10),
    );
    let last = p.account(
        "Dunder Mifflin",
        Some("US"),
        Some("https://www.dundermifflin.com"),
        Some("Retail"),
        d(2024, 8, 5),
    );
    debug_assert_eq!(last + 1, COUNT);
    {
        let accts = &mut p.sim.w.accounts;
        accts[INTERNAL as usize].typ = "Other";
        // A → B → C: Globex Holdings merged into Globex Corp, which later merged into
        // Globex Corporation.
        accts[GLOBEX_A as usize].master = Some(GLOBEX_B);
        accts[GLOBEX_A as usize].deleted = true;
        accts[GLOBEX_B as usize].master = Some(GLOBEX_C);
        accts[GLOBEX_B as usize].deleted = true;
        accts[INITECH_DUP as usize].master = Some(INITECH);
        accts[INITECH_DUP as usize].deleted = true;
        accts[HOOLI as usize].deleted = true;
        accts[MASSIVE_UK as usize].parent = Some(MASSIVE_PARENT);
        accts[MASSIVE_JP as usize].parent = Some(MASSIVE_PARENT);
        accts[STARK as usize].parent = None;
    }
    p.sim.dup_of[GLOBEX_C as usize] = Some(GLOBEX_A);
    p.sim.dup_of[INITECH as usize] = Some(INITECH_DUP);

    // ---------------------------------------------------------- internal and test accounts
    let won = Outcome::Won;
    let deal = p.deal(P {
        acct: INTERNAL,
        owner: 1,
        typ: NEW_BUSINESS,
        cur: USD,
        name: "Internal Dogfooding",
        created: noon(d(2024, 2, 20)),
        close: d(2024, 4, 15),
        outcome: won,
        amount: Some(12_000 * M),
    });
    let b = p.bill(
        "Acme Corp (Internal)",
        Some(CrmRef::Account(INTERNAL)),
        USD,
        d(2024, 4, 16),
    );
    let st = p.sched(deal);
    let mut sb = p.sell(b, Some(deal), d(2024, 4, 15), 24, 500 * M, 0, st);
    // An internal expansion: open at mid-2025, booked in FY2026.
    let exp = p.deal(P {
        acct: INTERNAL,
        owner: 1,
        typ: EXPANSION,
        cur: USD,
        name: "Internal Seats",
        created: noon(d(2025, 6, 2)),
        close: d(2025, 8, 29),
        outcome: won,
        amount: Some(3_500 * M),
    });
    sb.amend();
    sb.add(Seg {
        name: SEATS,
        charge_type: RECURRING,
        start: d(2025, 9, 1),
        end: Some(d(2026, 4, 15)),
        mrr: 500 * M,
        fixed_tcv: 0,
    });
    let original = sb.original;
    p.sim.schedule(
        &mut p.rng,
        Sched {
            opp: Some(OppRef::Opp(exp)),
            sub: Some(original),
            currency: USD,
            start_month: month_index(d(2025, 9, 1)),
            months: 7,
            total: 3_500 * M,
            item: ITEM_SUBSCRIPTION,
        },
    );
    p.sim.finish_sub(sb);
    p.sim.spans[INTERNAL as usize].push((d(2024, 4, 15), None));
    p.deal(P {
        acct: INTERNAL,
        owner: 1,
        typ: EXPANSION,
        cur: USD,
        name: "Internal Analytics Add-on",
        created: noon(d(2025, 11, 3)),
        close: d(2026, 2, 27),
        outcome: Outcome::Open(2),
        amount: Some(6_000 * M),
    });

    let deal = p.deal(P {
        acct: TEST,
        owner: 2,
        typ: NEW_BUSINESS,
        cur: USD,
        name: "New Business",
        created: noon(d(2024, 8, 1)),
        close: d(2024, 9, 30),
        outcome: won,
        amount: Some(24_000 * M),
    });
    let b = p.bill(
        "Test Account - Do Not Use",
        Some(CrmRef::Account(TEST)),
        USD,
        d(2024, 10, 1),
    );
    let st = p.sched(deal);
    let sb = p.sell(b, Some(deal), d(2024, 10, 1), 12, 2_000 * M, 0, st);
    p.expire(sb);
    p.sim.spans[TEST as usize].push((d(2024, 10, 1), Some(d(2025, 10, 1))));
    p.deal(P {
        acct: TEST,
        owner: 2,
        typ: NEW_BUSINESS,
        cur: USD,
        name: "Second Test Opportunity",
        created: noon(d(2025, 3, 3)),
        close: d(2025, 7, 31),
        outcome: Outcome::Lost,
        amount: Some(10_000 * M),
    });
    p.deal(P {
        acct: TEST_UPPER,
        owner: 2,
        typ: NEW_BUSINESS,
        cur: USD,
        name: "Sandbox Deal",
        created: noon(d(2025, 10, 6)),
        close: d(2026, 3, 31),
        outcome: Outcome::Open(2),
        amount: Some(30_000 * M),
    });

    // Contest Ltd: a real customer that the "test" substring rule excludes.
    let deal = p.deal(P {
        acct: CONTEST,
        owner: 3,
        typ: NEW_BUSINESS,
        cur: GBP,
        name: "New Business",
        created: noon(d(2024, 4, 2)),
        close: d(2024, 6, 28),
        outcome: won,
        amount: Some(36_000 * M),
    });
    let b = p.bill(
        "Contest Ltd",
        Some(CrmRef::Account(CONTEST)),
        GBP,
        d(2024, 7, 1),
    );
    let st = p.sched(deal);
    let sb = p.sell(b, Some(deal), d(2024, 7, 1), 12, 3_000 * M, 0, st);
    p.expire(sb);
    let deal = p.deal(P {
        acct: CONTEST,
        owner: 3,
        typ: RENEWAL,
        cur: GBP,
        name: "Renewal 2025",
        created: noon(d(2025, 4, 14)),
        close: d(2025, 6, 20),
        outcome: won,
        amount: Some(39_600 * M),
    });
    let st = p.sched(deal);
    let sb = p.sell(b, Some(deal), d(2025, 7, 1), 12, 3_300 * M, 0, st);
    p.sim.finish_sub(sb);
    p.sim.spans[CONTEST as usize].push((d(2024, 7, 1), None));

    // ---------------------------------------------------------- Globex: merge chain A → B → C
    let deal = p.deal(P {
        acct: GLOBEX_C,
        owner: 4,
        typ: NEW_BUSINESS,
        cur: USD,
        name: "New Business",
        created: noon(d(2023, 2, 13)),
        close: d(2023, 5, 18),
        outcome: won,
        amount: Some(120_000 * M),
    });
    let b = p.bill(
        "Globex Holdings",
        Some(CrmRef::Account(GLOBEX_A)),
        USD,
        d(2023, 5, 22),
    );
    let globex_bill = b;
    let st = p.sched(deal);
    let mut sb = p.sell(b, Some(deal), d(2023, 6, 1), 12, 10_000 * M, 0, st);
    let exp = p.deal(P {
        acct: GLOBEX_C,
        owner: 4,
        typ: EXPANSION,
        cur: USD,
        name: "Expansion",
        created: noon(d(2023, 9, 12)),
        close: d(2023, 11, 14),
        outcome: won,
        amount: Some(14_000 * M),
    });
    sb.amend();
    sb.add(Seg {
        name: SEATS,
        charge_type: RECURRING,
        start: d(2023, 11, 14),
        end: Some(d(2024, 6, 1)),
        mrr: 2_000 * M,
        fixed_tcv: 0,
    });
    let original = sb.original;
    p.sim.schedule(
        &mut p.rng,
        Sched {
            opp: Some(OppRef::Opp(exp)),
            sub: Some(original),
            currency: USD,
            start_month: month_index(d(2023, 11, 1)),
            months: 7,
            total: 14_000 * M,
            item: ITEM_SUBSCRIPTION,
        },
    );
    sb.amend(); // an administrative amendment: same charges, one more version
    p.expire(sb);
    let deal = p.deal(P {
        acct: GLOBEX_C,
        owner: 4,
        typ: RENEWAL,
        cur: USD,
        name: "Renewal 2024",
        created: noon(d(2024, 3, 4)),
        close: d(2024, 5, 24),
        outcome: won,
        amount: Some(150_000 * M),
    });
    let st = p.sched(deal);
    let sb = p.sell(b, Some(deal), d(2024, 6, 1), 12, 12_500 * M, 0, st);
    p.expire(sb);
    let deal = p.deal(P {
        acct: GLOBEX_C,
        owner: 4,
        typ: RENEWAL,
        cur: USD,
        name: "Renewal 2025",
        created: noon(d(2025, 3, 3)),
        close: d(2025, 5, 28),
        outcome: won,
        amount: Some(156_000 * M),
    });
    let st = p.sched(deal);
    let sb = p.sell(b, Some(deal), d(2025, 6, 1), 12, 13_000 * M, 0, st);
    p.sim.finish_sub(sb);
    p.sim.spans[GLOBEX_C as usize].push((d(2023, 6, 1), None));

    // ---------------------------------------------------------- Initech: billing points at the merged-away record
    let deal = p.deal(P {
        acct: INITECH,
        owner: 5,
        typ: NEW_BUSINESS,
        cur: USD,
        name: "New Business",
        created: noon(d(2023, 12, 4)),
        close: d(2024, 2, 29),
        outcome: won,
        amount: Some(60_000 * M),
    });
    let b = p.bill(
        "Initech LLC",
        Some(CrmRef::Account(INITECH_DUP)),
        USD,
        d(2024, 3, 1),
    );
    let st = p.sched(deal);
    let sb = p.sell(b, Some(deal), d(2024, 3, 1), 24, 2_500 * M, 0, st);
    p.sim.finish_sub(sb);
    p.sim.spans[INITECH as usize].push((d(2024, 3, 1), None));

    // ---------------------------------------------------------- Umbrella: one CRM account, two billing accounts
    let deal = p.deal(P {
        acct: UMBRELLA,
        owner: 6,
        typ: NEW_BUSINESS,
        cur: USD,
        name: "New Business",
        created: noon(d(2023, 5, 8)),
        close: d(2023, 8, 31),
        outcome: won,
        amount: Some(48_000 * M),
    });
    let b = p.bill(
        "Umbrella Group",
        Some(CrmRef::Account(UMBRELLA)),
        USD,
        d(2023, 9, 1),
    );
    let st = p.sched(deal);
    let sb = p.sell(b, Some(deal), d(2023, 9, 1), 36, 133_333, 0, st);
    p.sim.finish_sub(sb);
    let deal = p.deal(P {
        acct: UMBRELLA,
        owner: 6,
        typ: NEW_BUSINESS,
        cur: EUR,
        name: "EMEA",
        created: noon(d(2023, 11, 20)),
        close: d(2024, 2, 15),
        outcome: won,
        amount: Some(30_000 * M),
    });
    let b = p.bill(
        "Umbrella Group EMEA",
        Some(CrmRef::Account(UMBRELLA)),
        EUR,
        d(2024, 2, 16),
    );
    let st = p.sched(deal);
    let sb = p.sell(b, Some(deal), d(2024, 3, 1), 24, 1_250 * M, 0, st);
    p.sim.finish_sub(sb);
    p.sim.spans[UMBRELLA as usize].push((d(2023, 9, 1), None));

    // ---------------------------------------------------------- Hooli: deleted account, deleted deals
    p.deal_with(
        P {
            acct: HOOLI,
            owner: 1,
            typ: NEW_BUSINESS,
            cur: USD,
            name: "New Business",
            created: noon(d(2024, 1, 15)),
            close: d(2024, 3, 29),
            outcome: won,
            amount: Some(80_000 * M),
        },
        |s| s.deleted = true,
    );

    // ---------------------------------------------------------- Massive Dynamic: parent with GBP and JPY children
    let deal = p.deal(P {
        acct: MASSIVE_UK,
        owner: 2,
        typ: NEW_BUSINESS,
        cur: GBP,
        name: "New Business",
        created: noon(d(2024, 12, 2)),
        close: d(2025, 3, 31),
        outcome: won,
        amount: Some(24_000 * M),
    });
    let b = p.bill(
        "Massive Dynamic UK Ltd",
        Some(CrmRef::Account(MASSIVE_UK)),
        GBP,
        d(2025, 4, 1),
    );
    let st = p.sched(deal);
    let sb = p.sell(b, Some(deal), d(2025, 4, 1), 12, 2_000 * M, 0, st);
    p.sim.finish_sub(sb);
    p.sim.spans[MASSIVE_UK as usize].push((d(2025, 4, 1), None));
    let deal = p.deal(P {
        acct: MASSIVE_JP,
        owner: 2,
        typ: NEW_BUSINESS,
        cur: JPY,
        name: "New Business",
        created: noon(d(2025, 1, 14)),
        close: d(2025, 4, 30),
        outcome: won,
        amount: Some(3_600_000 * M),
    });
    let b = p.bill(
        "Massive Dynamic KK",
        Some(CrmRef::Account(MASSIVE_JP)),
        JPY,
        d(2025, 5, 1),
    );
    let st = p.sched(deal);
    let sb = p.sell(b, Some(deal), d(2025, 5, 1), 12, 300_000 * M, 0, st);
    p.sim.finish_sub(sb);
    p.sim.spans[MASSIVE_JP as usize].push((d(2025, 5, 1), None));

    // ---------------------------------------------------------- Vandelay: EUR deals either side of the fiscal year
    // Closed won on 2025-01-31 (FY2025) at 18:15 in Los Angeles = 2025-02-01T02:15Z.
    let deal = p.deal_with(
        P {
            acct: VANDELAY,
            owner: 3,
            typ: NEW_BUSINESS,
            cur: EUR,
            name: "New Business",
            created: noon(d(2024, 11, 4)),
            close: d(2025, 1, 31),
            outcome: won,
            amount: Some(60_000 * M),
        },
        |s| s.closing_ts = Some(ts_utc(2025, 2, 1, 2, 15, 0)),
    );
    let b = p.bill(
        "Vandelay Industries GmbH",
        Some(CrmRef::Account(VANDELAY)),
        EUR,
        d(2025, 2, 3),
    );
    // Service (and the revenue schedule) starts in the next fiscal year.
    let st = p.sched(deal);
    let mut sb = p.sell(b, Some(deal), d(2025, 2, 1), 12, 5_000 * M, 0, st);
    // Closed won on 2025-02-01 (FY2026) at 09:30 in Los Angeles.
    let exp = p.deal_with(
        P {
            acct: VANDELAY,
            owner: 3,
            typ: EXPANSION,
            cur: EUR,
            name: "Expansion",
            created: noon(d(2025, 1, 6)),
            close: d(2025, 2, 1),
            outcome: won,
            amount: Some(11_000 * M),
        },
        |s| s.closing_ts = Some(ts_utc(2025, 2, 1, 17, 30, 0)),
    );
    sb.amend();
    sb.add(Seg {
        name: SEATS,
        charge_type: RECURRING,
        start: d(2025, 3, 1),
        end: Some(d(2026, 2, 1)),
        mrr: 1_000 * M,
        fixed_tcv: 0,
    });
    let original = sb.original;
    p.sim.schedule(
        &mut p.rng,
        Sched {
            opp: Some(OppRef::Opp(exp)),
            sub: Some(original),
            currency: EUR,
            start_month: month_index(d(2025, 3, 1)),
            months: 11,
            total: 11_000 * M,
            item: ITEM_SUBSCRIPTION,
        },
    );
    p.sim.finish_sub(sb);
    p.sim.spans[VANDELAY as usize].push((d(2025, 2, 1), None));

    // ---------------------------------------------------------- Soylent: created at 2025-02-01T05:00:00Z (still Jan 31 in LA)
    let deal = p.deal(P {
        acct: SOYLENT,
        owner: 4,
        typ: NEW_BUSINESS,
        cur: USD,
        name: "New Business",
        created: ts_utc(2025, 2, 1, 5, 0, 0),
        close: d(2025, 3, 14),
        outcome: won,
        amount: Some(48_000 * M),
    });
    let b = p.bill(
        "Soylent Foods",
        Some(CrmRef::Account(SOYLENT)),
        USD,
        d(2025, 3, 17),
    );
    let st = p.sched(deal);
    let sb = p.sell(b, Some(deal), d(2025, 3, 14), 12, 4_000 * M, 0, st);
    p.sim.finish_sub(sb);
    p.sim.spans[SOYLENT as usize].push((d(2025, 3, 14), None));

    // ---------------------------------------------------------- Wonka: amount edge cases
    p.deal_with(
        P {
            acct: WONKA,
            owner: 5,
            typ: NEW_BUSINESS,
            cur: USD,
            name: "Chocolate Factory Rollout",
            created: noon(d(2025, 11, 10)),
            close: d(2026, 2, 13),
            outcome: Outcome::Open(1),
            amount: None,
        },
        |s| {
            s.amount_changes = 0;
        },
    );
    p.deal_with(
        P {
            acct: WONKA,
            owner: 5,
            typ: NEW_BUSINESS,
            cur: USD,
            name: "Free Pilot",
            created: noon(d(2025, 3, 3)),
            close: d(2025, 5, 30),
            outcome: won,
            amount: Some(0),
        },
        |s| s.amount_changes = 0,
    );
    p.deal_with(
        P {
            acct: WONKA,
            owner: 5,
            typ: NEW_BUSINESS,
            cur: USD,
            name: "Golden Ticket (on hold)",
            created: noon(d(2025, 9, 1)),
            close: d(2026, 1, 30),
            outcome: Outcome::Open(3),
            amount: Some(45_000 * M),
        },
        |s| s.omitted = true,
    );
    // Won, then deleted in the CRM; billing and finance still carry it.
    let deal = p.deal_with(
        P {
            acct: WONKA,
            owner: 5,
            typ: NEW_BUSINESS,
            cur: USD,
            name: "Factory Expansion (duplicate)",
            created: noon(d(2025, 2, 10)),
            close: d(2025, 4, 18),
            outcome: won,
            amount: Some(70_000 * M),
        },
        |s| s.deleted = true,
    );
    let b = p.bill(
        "Wonka Confections",
        Some(CrmRef::Account(WONKA)),
        USD,
        d(2025, 4, 21),
    );
    let st = p.sched(deal);
    let sb = p.sell(b, Some(deal), d(2025, 5, 1), 12, 5_000 * M, 10_000 * M, st);
    p.sim.finish_sub(sb);
    // Won with no amount in the CRM, scheduled in finance.
    let deal = p.deal_with(
        P {
            acct: WONKA,
            owner: 5,
            typ: EXPANSION,
            cur: USD,
            name: "Oompa Loompa Seats",
            created: noon(d(2025, 6, 2)),
            close: d(2025, 7, 31),
            outcome: won,
            amount: None,
        },
        |s| s.amount_changes = 0,
    );
    p.sim.schedule(
        &mut p.rng,
        Sched {
            opp: Some(OppRef::Opp(deal)),
            sub: None,
            currency: USD,
            start_month: month_index(d(2025, 8, 1)),
            months: 9,
            total: 27_000 * M,
            item: ITEM_SUBSCRIPTION,
        },
    );
    p.sim.spans[WONKA as usize].push((d(2025, 5, 1), None));

    // ---------------------------------------------------------- Stark: billing crm_id unknown to the CRM
    let deal = p.deal(P {
        acct: STARK,
        owner: 6,
        typ: NEW_BUSINESS,
        cur: USD,
        name: "New Business",
        created: noon(d(2024, 7, 8)),
        close: d(2024, 10, 31),
        outcome: won,
        amount: Some(96_000 * M),
    });
    let b = p.bill(
        "Stark Industries",
        Some(CrmRef::Unknown(1)),
        USD,
        d(2024, 11, 1),
    );
    let st = p.sched(deal);
    let sb = p.sell(b, Some(deal), d(2024, 11, 1), 12, 8_000 * M, 0, st);
    p.expire(sb);
    p.deal(P {
        acct: STARK,
        owner: 6,
        typ: RENEWAL,
        cur: USD,
        name: "Renewal 2025",
        created: noon(d(2025, 8, 4)),
        close: d(2025, 10, 31),
        outcome: Outcome::Lost,
        amount: Some(96_000 * M),
    });
    p.sim.spans[STARK as usize].push((d(2024, 11, 1), Some(d(2025, 11, 1))));

    // ---------------------------------------------------------- Cyberdyne: churn and return
    let deal = p.deal(P {
        acct: CYBERDYNE,
        owner: 1,
        typ: NEW_BUSINESS,
        cur: USD,
        name: "New Business",
        created: noon(d(2023, 1, 9)),
        close: d(2023, 2, 15),
        outcome: won,
        amount: Some(36_000 * M),
    });
    let b = p.bill(
        "Cyberdyne Systems",
        Some(CrmRef::Account(CYBERDYNE)),
        USD,
        d(2023, 2, 16),
    );
    let st = p.sched(deal);
    let sb = p.sell(b, Some(deal), d(2023, 3, 1), 12, 3_000 * M, 0, st);
    p.expire(sb);
    p.deal(P {
        acct: CYBERDYNE,
        owner: 1,
        typ: RENEWAL,
        cur: USD,
        name: "Renewal 2024",
        created: noon(d(2023, 12, 4)),
        close: d(2024, 2, 20),
        outcome: Outcome::Lost,
        amount: Some(36_000 * M),
    });
    let deal = p.deal(P {
        acct: CYBERDYNE,
        owner: 1,
        typ: NEW_BUSINESS,
        cur: USD,
        name: "Win-back",
        created: noon(d(2024, 8, 5)),
        close: d(2024, 10, 15),
        outcome: won,
        amount: Some(30_000 * M),
    });
    let st = p.sched(deal);
    let sb = p.sell(b, Some(deal), d(2024, 11, 1), 12, 2_500 * M, 0, st);
    p.expire(sb);
    let deal = p.deal(P {
        acct: CYBERDYNE,
        owner: 1,
        typ: RENEWAL,
        cur: USD,
        name: "Renewal 2025",
        created: noon(d(2025, 8, 18)),
        close: d(2025, 10, 28),
        outcome: won,
        amount: Some(33_000 * M),
    });
    let st = p.sched(deal);
    let sb = p.sell(b, Some(deal), d(2025, 11, 1), 12, 2_750 * M, 0, st);
    p.sim.finish_sub(sb);
    p.sim.spans[CYBERDYNE as usize].push((d(2023, 3, 1), Some(d(2024, 3, 1))));
    p.sim.spans[CYBERDYNE as usize].push((d(2024, 11, 1), None));

    // ---------------------------------------------------------- Tyrell: history quirks
    // Created 2024-06-30 23:30 in Los Angeles = 2024-07-01T06:30:00Z; goes
    // Proposal → Discovery → Proposal; closed at 84,000, corrected to 72,000 after closing.
    let deal = p.deal_with(
        P {
            acct: TYRELL,
            owner: 2,
            typ: NEW_BUSINESS,
            cur: USD,
            name: "New Business",
            created: ts_utc(2024, 7, 1, 6, 30, 0),
            close: d(2024, 9, 27),
            outcome: won,
            amount: Some(72_000 * M),
        },
        |s| {
            s.backwards = true;
            s.amount_changes = 2;
            s.close_changes = 2;
            s.post_close = Some((ts_utc(2024, 10, 15, 18, 0, 0), Some(84_000 * M)));
        },
    );
    let b = p.bill(
        "Tyrell Corporation",
        Some(CrmRef::Account(TYRELL)),
        USD,
        d(2024, 9, 30),
    );
    let st = p.sched(deal);
    let sb = p.sell(b, Some(deal), d(2024, 10, 1), 24, 3_000 * M, 0, st);
    p.sim.finish_sub(sb);
    p.sim.spans[TYRELL as usize].push((d(2024, 10, 1), None));
    // Prospecting straight to Negotiation, then lost.
    p.deal_with(
        P {
            acct: TYRELL,
            owner: 2,
            typ: EXPANSION,
            cur: USD,
            name: "Nexus Add-on",
            created: noon(d(2025, 3, 10)),
            close: d(2025, 5, 9),
            outcome: Outcome::Lost,
            amount: Some(20_000 * M),
        },
        |s| {
            s.skip_stages = true;
        },
    );

    // ---------------------------------------------------------- Wayne: Red health, a deleted duplicate billing account
    let deal = p.deal(P {
        acct: WAYNE,
        owner: 3,
        typ: NEW_BUSINESS,
        cur: USD,
        name: "New Business",
        created: noon(d(2024, 1, 8)),
        close: d(2024, 3, 29),
        outcome: won,
        amount: Some(180_000 * M),
    });
    let b = p.bill(
        "Wayne Enterprises",
        Some(CrmRef::Account(WAYNE)),
        USD,
        d(2024, 4, 1),
    );
    let st = p.sched(deal);
    let sb = p.sell(b, Some(deal), d(2024, 4, 1), 24, 7_500 * M, 0, st);
    p.sim.finish_sub(sb);
    let b2 = p.bill(
        "Wayne Enterprises (duplicate)",
        Some(CrmRef::Account(WAYNE)),
        USD,
        d(2024, 4, 2),
    );
    p.sim.w.bill_accounts[b2 as usize].deleted = true;
    let st = SchedStyle {
        none: true,
        ..SchedStyle::default()
    };
    let sb = p.sell(b2, None, d(2024, 4, 1), 24, 1_000 * M, 0, st);
    p.sim.finish_sub(sb);
    p.sim.spans[WAYNE as usize].push((d(2024, 4, 1), None));

    // ---------------------------------------------------------- Prestige: won with no schedule; schedule after the close period
    let deal = p.deal(P {
        acct: PRESTIGE,
        owner: 4,
        typ: NEW_BUSINESS,
        cur: USD,
        name: "New Business",
        created: noon(d(2024, 11, 11)),
        close: d(2025, 1, 15),
        outcome: won,
        amount: Some(30_000 * M),
    });
    let b = p.bill(
        "Prestige Worldwide",
        Some(CrmRef::Account(PRESTIGE)),
        USD,
        d(2025, 1, 16),
    );
    let st = SchedStyle {
        opp: Some(deal),
        none: true,
        ..SchedStyle::default()
    };
    let mut sb = p.sell(b, Some(deal), d(2025, 1, 15), 12, 2_500 * M, 0, st);
    let exp = p.deal(P {
        acct: PRESTIGE,
        owner: 4,
        typ: EXPANSION,
        cur: USD,
        name: "Boats 'N Hoes Campaign Seats",
        created: noon(d(2025, 3, 3)),
        close: d(2025, 4, 28),
        outcome: won,
        amount: Some(9_000 * M),
    });
    sb.amend();
    sb.add(Seg {
        name: SEATS,
        charge_type: RECURRING,
        start: d(2025, 7, 1),
        end: Some(d(2026, 1, 15)),
        mrr: 1_500 * M,
        fixed_tcv: 0,
    });
    let original = sb.original;
    p.sim.schedule(
        &mut p.rng,
        Sched {
            opp: Some(OppRef::Opp(exp)),
            sub: Some(original),
            currency: USD,
            start_month: month_index(d(2025, 7, 1)),
            months: 6,
            total: 9_000 * M,
            item: ITEM_SUBSCRIPTION,
        },
    );
    p.sim.finish_sub(sb);
    p.sim.spans[PRESTIGE as usize].push((d(2025, 1, 15), None));

    // ---------------------------------------------------------- Bluth: lines carry only the subscription id
    let deal = p.deal(P {
        acct: BLUTH,
        owner: 5,
        typ: NEW_BUSINESS,
        cur: USD,
        name: "New Business",
        created: noon(d(2024, 10, 7)),
        close: d(2024, 12, 20),
        outcome: won,
        amount: Some(36_000 * M),
    });
    let b = p.bill(
        "Bluth Company",
        Some(CrmRef::Account(BLUTH)),
        USD,
        d(2024, 12, 23),
    );
    let st = SchedStyle {
        opp: Some(deal),
        subscription_only: true,
        ..SchedStyle::default()
    };
    let sb = p.sell(b, Some(deal), d(2025, 1, 1), 12, 3_000 * M, 0, st);
    p.expire(sb);
    p.sim.spans[BLUTH as usize].push((d(2025, 1, 1), Some(d(2026, 1, 1))));

    // ---------------------------------------------------------- Dunder Mifflin: discounted, backdated schedule
    let deal = p.deal(P {
        acct: DUNDER,
        owner: 6,
        typ: NEW_BUSINESS,
        cur: USD,
        name: "New Business",
        created: noon(d(2024, 12, 9)),
        close: d(2025, 2, 14),
        outcome: won,
        amount: Some(24_000 * M),
    });
    let b = p.bill(
        "Dunder Mifflin Paper",
        Some(CrmRef::Account(DUNDER)),
        USD,
        d(2025, 2, 17),
    );
    let st = SchedStyle {
        opp: Some(deal),
        discount_pct: 10,
        ..SchedStyle::default()
    };
    let lines_before = p.sim.w.lines.len();
    let sb = p.sell(b, Some(deal), d(2025, 1, 1), 12, 2_000 * M, 0, st);
    p.sim.finish_sub(sb);
    // An erroneous first entry of the March line, deleted and re-entered.
    let march = p.sim.cal.period_id(d(2025, 3, 1));
    let mut wrong = *p.sim.w.lines[lines_before..]
        .iter()
        .find(|l| l.period == march && !l.deleted)
        .expect("Dunder Mifflin's March line");
    wrong.deleted = true;
    wrong.transaction_amount = 3_600 * M;
    wrong.amount = 3_600 * M;
    wrong.recognized = false;
    p.sim.push_raw_line(wrong);
    p.sim.spans[DUNDER as usize].push((d(2025, 1, 1), None));

    // ---------------------------------------------------------- billing-only customers and finance-only revenue
    let b = p.bill("Pied Piper", None, USD, d(2024, 5, 1));
    let mut sb = p.sim.start_sub(b, None, d(2024, 5, 1), None);
    sb.add(Seg {
        name: PLATFORM,
        charge_type: RECURRING,
        start: d(2024, 5, 1),
        end: None,
        mrr: 500 * M,
        fixed_tcv: 0,
    });
    let original = sb.original;
    p.sim.finish_sub(sb);
    p.sim.schedule(
        &mut p.rng,
        Sched {
            opp: None,
            sub: Some(original),
            currency: USD,
            start_month: month_index(d(2024, 5, 1)),
            months: 20,
            total: 10_000 * M,
            item: ITEM_SUBSCRIPTION,
        },
    );
    let b = p.bill("Test Billing Sandbox", None, USD, d(2024, 2, 5));
    let mut sb = p.sim.start_sub(b, None, d(2024, 2, 5), None);
    sb.add(Seg {
        name: PLATFORM,
        charge_type: RECURRING,
        start: d(2024, 2, 5),
        end: None,
        mrr: 100 * M,
        fixed_tcv: 0,
    });
    p.sim.finish_sub(sb);
    // A deleted draft subscription duplicating Globex's 2025 renewal.
    let mut sb = p.sim.start_sub(globex_bill, None, d(2025, 6, 1), Some(12));
    sb.add(Seg {
        name: PLATFORM,
        charge_type: RECURRING,
        start: d(2025, 6, 1),
        end: sb.term_end,
        mrr: 13_000 * M,
        fixed_tcv: 0,
    });
    sb.deleted = true;
    p.sim.finish_sub(sb);
    // Services sold without a deal (a training engagement).
    p.sim.schedule(
        &mut p.rng,
        Sched {
            opp: None,
            sub: None,
            currency: USD,
            start_month: month_index(d(2025, 4, 1)),
            months: 3,
            total: 15_000 * M,
            item: ITEM_SERVICES,
        },
    );
    // A line naming a deal the CRM does not have (deleted for good).
    p.sim.schedule(
        &mut p.rng,
        Sched {
            opp: Some(OppRef::Unknown(1)),
            sub: None,
            currency: USD,
            start_month: month_index(d(2025, 8, 1)),
            months: 2,
            total: 8_000 * M,
            item: ITEM_SERVICES,
        },
    );

    // Account types follow the story.
    for i in 0..COUNT {
        let a = &mut p.sim.w.accounts[i as usize];
        if i != INTERNAL && !p.sim.spans[i as usize].is_empty() {
            a.typ = "Customer";
        }
    }
    p.sim.w.accounts[MASSIVE_PARENT as usize].typ = "Customer";
}
