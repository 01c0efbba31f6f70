//! The simulation of Acme's revenue systems: CRM deals and their history,
//! billing subscriptions and charges, and the finance revenue schedules, all
//! derived from one story per account so that they agree with each other.

use super::rng::{Rng, mix64};
use super::time::*;
use super::world::*;

/// Reference dates of the simulated company.
#[derive(Debug, Clone, Copy)]
pub struct Cal {
    /// 2023-01-01: the first day deals are created.
    pub start: i32,
    /// 2025-12-31: the last day of the simulated history.
    pub end: i32,
    /// The instant of the extract (2026-01-02T08:00:00Z).
    pub extract_ts: i64,
    /// The Los Angeles day of the extract (2026-01-02): closed deals close before it.
    pub extract_day: i32,
    /// First month index of the conversion-rate table (Dec 2022).
    pub rate_first_month: i32,
    pub rate_months: i32,
    /// Month index of the first accounting period (Feb 2022 = FY2023 P1).
    pub period_first_month: i32,
    pub period_count: i32,
}

impl Cal {
    pub fn new() -> Self {
        let extract_ts = ts_utc(2026, 1, 2, 8, 0, 0);
        Cal {
            start: days(2023, 1, 1),
            end: days(2025, 12, 31),
            extract_ts,
            extract_day: la_day(extract_ts),
            rate_first_month: month_index(days(2022, 12, 1)),
            rate_months: 49,
            period_first_month: month_index(days(2022, 2, 1)),
            // FY2023 .. FY2028: Feb 2022 .. Jan 2028.
            period_count: 72,
        }
    }

    /// The accounting period id of the month containing `day`.
    pub fn period_id(&self, day: i32) -> i64 {
        self.period_id_of_month(month_index(day))
    }

    pub fn period_id_of_month(&self, mi: i32) -> i64 {
        (mi - self.period_first_month + 1) as i64
    }

    pub fn last_period_month(&self) -> i32 {
        self.period_first_month + self.period_count - 1
    }
}

impl Default for Cal {
    fn default() -> Self {
        Cal::new()
    }
}

/// Outcome of a deal at the extract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Won,
    Lost,
    /// Still open in the given stage (0..=3).
    Open(u8),
}

/// Everything needed to write one deal and its history.
#[derive(Debug, Clone)]
pub struct DealSpec {
    pub account: u32,
    pub owner: u32,
    pub typ: u8,
    pub currency: u8,
    pub name: String,
    pub created: i64,
    /// Final close date (expected for open deals, actual for closed ones).
    pub close: i32,
    pub outcome: Outcome,
    /// Final amount (after any post-close correction).
    pub amount: Option<i64>,
    /// When the closing row was written; defaults to business hours on the close date.
    pub closing_ts: Option<i64>,
    /// Skip straight from the first stage to the last open one.
    pub skip_stages: bool,
    /// Move one stage backwards on the way.
    pub backwards: bool,
    pub amount_changes: u8,
    pub close_changes: u8,
    /// The amount was not known when the deal was created.
    pub amount_missing_at_first: bool,
    /// Forecast category set to Omitted on the final (open) state.
    pub omitted: bool,
    /// An amount correction after the deal closed: (when, amount at closing).
    pub post_close: Option<(i64, Option<i64>)>,
    pub deleted: bool,
    pub lead_source: Option<&'static str>,
    /// Latest instant for the last change of an open deal.
    pub last_change_max: Option<i64>,
}

impl DealSpec {
    pub fn new(account: u32, owner: u32, typ: u8, currency: u8, name: String) -> Self {
        DealSpec {
            account,
            owner,
            typ,
            currency,
            name,
            created: 0,
            close: 0,
            outcome: Outcome::Open(0),
            amount: None,
            closing_ts: None,
            skip_stages: false,
            backwards: false,
            amount_changes: 0,
            close_changes: 0,
            amount_missing_at_first: false,
            omitted: false,
            post_close: None,
            deleted: false,
            lead_source: None,
            last_change_max: None,
        }
    }
}

/// A charge segment while a subscription is being built.
#[derive(Debug, Clone)]
pub struct Seg {
    pub name: &'static str,
    pub charge_type: u8,
    pub start: i32,
    pub end: Option<i32>,
    pub mrr: i64,
    /// Total contract value of a non-recurring charge.
    pub fixed_tcv: i64,
}

pub const PLATFORM: &str = "Platform Subscription";
pub const SEATS: &str = "Additional Seats";
pub const IMPLEMENTATION: &str = "Implementation Fee";
pub const USAGE_CHARGE: &str = "API Overage";

/// A subscription under construction: its versions are snapshots of the
/// charge segments taken before each amendment.
#[derive(Debug, Clone)]
pub struct SubBuild {
    pub bill: u32,
    pub number: u32,
    pub original: u32,
    pub opp: Option<u32>,
    pub start: i32,
    pub term_end: Option<i32>,
    pub currency: u8,
    pub segs: Vec<Seg>,
    pub versions: Vec<Vec<Seg>>,
    pub status: u8,
    pub end: Option<i32>,
    pub cancelled: Option<i32>,
    pub deleted: bool,
}

impl SubBuild {
    /// Start a new version: the current charges become the previous version.
    pub fn amend(&mut self) {
        self.versions.push(self.segs.clone());
    }

    pub fn add(&mut self, seg: Seg) {
        self.segs.push(seg);
    }

    /// Change the monthly amount of a recurring charge from `day` on.
    pub fn change_mrr(&mut self, day: i32, name: &'static str, mrr: i64) {
        let Some(i) = self
            .segs
            .iter()
            .rposition(|s| s.name == name && s.start <= day && s.end.is_none_or(|e| e > day))
        else {
            return;
        };
        if self.segs[i].start == day {
            self.segs[i].mrr = mrr;
            return;
        }
        let old_end = self.segs[i].end;
        self.segs[i].end = Some(day);
        let seg = Seg {
            start: day,
            end: old_end,
            mrr,
            ..self.segs[i].clone()
        };
        self.segs.push(seg);
    }

    pub fn mrr_of(&self, day: i32, name: &str) -> i64 {
        self.segs
            .iter()
            .filter(|s| s.name == name && s.start <= day && s.end.is_none_or(|e| e > day))
            .map(|s| s.mrr)
            .sum()
    }

    pub fn recurring_mrr(&self, day: i32) -> i64 {
        self.segs
            .iter()
            .filter(|s| {
                s.charge_type == RECURRING && s.start <= day && s.end.is_none_or(|e| e > day)
            })
            .map(|s| s.mrr)
            .sum()
    }

    pub fn has_usage(&self) -> bool {
        self.segs.iter().any(|s| s.charge_type == USAGE)
    }

    /// Cancel at `day`: charges stop there (charges not yet started are dropped).
    pub fn cancel(&mut self, day: i32) {
        self.segs.retain(|s| s.start < day);
        for s in &mut self.segs {
            if s.end.is_none_or(|e| e > day) {
                s.end = Some(day);
            }
        }
        self.status = CANCELLED;
        self.cancelled = Some(day);
        self.end = Some(day);
    }
}

/// A revenue schedule to write: equal monthly lines (the last one takes the
/// remainder) over `months` accounting periods.
#[derive(Debug, Clone, Copy)]
pub struct Sched {
    pub opp: Option<OppRef>,
    pub sub: Option<u32>,
    pub currency: u8,
    pub start_month: i32,
    pub months: i32,
    pub total: i64,
    pub item: u8,
}

/// Reference data drawn by the simulation.
pub const INDUSTRIES: [&str; 10] = [
    "Software",
    "Financial Services",
    "Healthcare",
    "Manufacturing",
    "Retail",
    "Education",
    "Media",
    "Logistics",
    "Energy",
    "Government",
];
/// Product lines: an account's parallel sales motions.
pub const PRODUCTS: [&str; 4] = ["Platform", "Analytics", "Data Cloud", "Connectors"];
pub const LEAD_SOURCES: [&str; 6] = [
    "Web",
    "Outbound",
    "Partner",
    "Event",
    "Referral",
    "Advertisement",
];
const NAME_A: [&str; 40] = [
    "Blue",
    "North",
    "Bright",
    "Iron",
    "Silver",
    "Quantum",
    "Pioneer",
    "Summit",
    "Harbor",
    "Cedar",
    "Falcon",
    "Granite",
    "Nimbus",
    "Vertex",
    "Orbit",
    "Maple",
    "Atlas",
    "Beacon",
    "Crimson",
    "Delta",
    "Evergreen",
    "Frontier",
    "Golden",
    "Horizon",
    "Juniper",
    "Keystone",
    "Lumen",
    "Meridian",
    "Nova",
    "Oak",
    "Pacific",
    "Redwood",
    "Sterling",
    "Titan",
    "Union",
    "Vista",
    "Willow",
    "Zenith",
    "Apex",
    "Boulder",
];
const NAME_B: [&str; 30] = [
    "Logistics",
    "Health",
    "Foods",
    "Analytics",
    "Robotics",
    "Capital",
    "Media",
    "Energy",
    "Networks",
    "Labs",
    "Systems",
    "Retail",
    "Motors",
    "Pharma",
    "Software",
    "Learning",
    "Insurance",
    "Biotech",
    "Freight",
    "Studios",
    "Security",
    "Telecom",
    "Foundry",
    "Dynamics",
    "Ventures",
    "Materials",
    "Clinics",
    "Partners",
    "Outfitters",
    "Brewing",
];
pub const FIRST_NAMES: [&str; 40] = [
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Carlos",
    "Karen",
    "Daniel",
    "Lisa",
    "Matthew",
    "Nancy",
    "Anthony",
    "Sandra",
    "Mark",
    "Ashley",
    "Priya",
    "Emily",
    "Wei",
    "Aiko",
    "Lukas",
    "Sofia",
    "Oliver",
    "Amelia",
    "Hiroshi",
    "Chloe",
    "Mateo",
    "Fatima",
];
pub const LAST_NAMES: [&str; 40] = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Nguyen",
    "Hill",
    "Tanaka",
    "Muller",
];
/// (country, weight, currency, company suffixes, web TLD)
type CountryRow = (&'static str, u32, u8, &'static [&'static str], &'static str);
const COUNTRIES: [CountryRow; 8] = [
    ("US", 55, USD, &["Inc", "LLC", "Corp", "Co"], "com"),
    ("GB", 12, GBP, &["Ltd", "plc", "Group"], "co.uk"),
    ("DE", 8, EUR, &["GmbH", "AG"], "de"),
    ("FR", 5, EUR, &["SA", "SAS"], "fr"),
    ("JP", 6, JPY, &["KK", "Co Ltd"], "co.jp"),
    ("CA", 6, USD, &["Inc", "Ltd"], "ca"),
    ("AU", 5, USD, &["Pty Ltd"], "com.au"),
    ("NL", 3, EUR, &["BV", "NV"], "nl"),
];

pub struct Sim {
    pub seed: u64,
    pub scale: u32,
    pub cal: Cal,
    pub w: World,
    /// Customer spans per account: (first day, end day if the customer left).
    pub spans: Vec<Vec<(i32, Option<i32>)>>,
    /// A merged-away duplicate of each surviving account, if any.
    pub dup_of: Vec<Option<u32>>,
    /// Country row (index into COUNTRIES) of each account, if known.
    pub country_idx: Vec<Option<usize>>,
    /// Billing account of each CRM account once it became a customer.
    pub bill_of: Vec<Option<u32>>,
    pub sales_users: Vec<u32>,
    next_hist: u32,
    next_sub_id: u32,
    next_sub_number: u32,
    next_charge: u32,
    next_plan: u32,
    next_line: u32,
}

/// Cents per currency unit.
pub const CENTS: i64 = 100;

/// Round `num / den` half away from zero.
pub fn div_round(num: i128, den: i128) -> i128 {
    let q = num / den;
    let r = num % den;
    if 2 * r.abs() >= den.abs() {
        if (num < 0) != (den < 0) { q - 1 } else { q + 1 }
    } else {
        q
    }
}

/// Convert an amount in cents of a currency to USD cents at a rate (units per USD, in millionths).
pub fn to_usd(cents: i64, rate_micros: i64) -> i64 {
    div_round(cents as i128 * 1_000_000, rate_micros as i128) as i64
}

pub fn months_between(a: i32, b: i32) -> i64 {
    ((month_index(b) - month_index(a)) as i64).max(1)
}

impl Sim {
    pub fn new(seed: u64, scale: u32) -> Self {
        Sim {
            seed,
            scale,
            cal: Cal::new(),
            w: World::default(),
            spans: Vec::new(),
            dup_of: Vec::new(),
            country_idx: Vec::new(),
            bill_of: Vec::new(),
            sales_users: Vec::new(),
            next_hist: 1,
            next_sub_id: 1,
            next_sub_number: 1,
            next_charge: 1,
            next_plan: 1,
            next_line: 1,
        }
    }

    // ------------------------------------------------------------ reference data

    /// Monthly CRM conversion rates (units per USD), the same for every seed.
    pub fn build_rates(&mut self) {
        let mut rng = Rng::new(0x5EED_0F0F);
        let bases = [(EUR, 0.92f64), (GBP, 0.79), (JPY, 150.0)];
        let mut levels = [0.92f64, 0.79, 150.0];
        let first = self.cal.rate_first_month;
        for m in 0..self.cal.rate_months {
            let start = month_start_of_index(first + m);
            let next = month_start_of_index(first + m + 1);
            self.w.rates.push(RateRow {
                currency: USD,
                rate: 1_000_000,
                start,
                next,
            });
            for (k, &(cur, base)) in bases.iter().enumerate() {
                if m > 0 {
                    let step = (rng.unit() - 0.5) * 0.03;
                    levels[k] = (levels[k] * (1.0 + step)).clamp(base * 0.92, base * 1.08);
                }
                let rate = (levels[k] * 1e6).round() as i64;
                self.w.rates.push(RateRow {
                    currency: cur,
                    rate,
                    start,
                    next,
                });
            }
        }
    }

    /// The CRM rate (millionths of a unit per USD) in force on `day`.
    pub fn crm_rate(&self, cur: u8, day: i32) -> i64 {
        if cur == USD {
            return 1_000_000;
        }
        let m = (month_index(day) - self.cal.rate_first_month).clamp(0, self.cal.rate_months - 1);
        self.w.rates[(m * 4 + cur as i32) as usize].rate
    }

    /// The books' rate for a month: the CRM rate off by up to ±0.4%.
    pub fn finance_rate(&self, cur: u8, mi: i32) -> i64 {
        let base = self.crm_rate(cur, month_start_of_index(mi));
        if cur == USD {
            return base;
        }
        let delta = (mix64(((cur as u64) << 32) | mi as u64) % 801) as i128 - 400;
        div_round(base as i128 * (100_000 + delta), 100_000) as i64
    }

    pub fn build_periods(&mut self) {
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        for k in 0..self.cal.period_count {
            let mi = self.cal.period_first_month + k;
            let start = month_start_of_index(mi);
            let end = month_start_of_index(mi + 1) - 1;
            let (y, m, _) = ymd(start);
            let fiscal_year = if m >= 2 { y + 1 } else { y } as i64;
            let fiscal_quarter = ((m as i64 - 2).rem_euclid(12)) / 3 + 1;
            self.w.periods.push(Period {
                id: self.cal.period_id_of_month(mi),
                name: format!("{} {}", MONTHS[m as usize - 1], y),
                start,
                end,
                fiscal_year,
                fiscal_quarter,
                closed: end < self.cal.extract_day,
            });
        }
    }

    pub fn build_users(&mut self, rng: &mut Rng) {
        let n = 16 + 8 * self.scale as usize;
        self.w.users.push(User {
            name: "Salesforce Integration".into(),
            email: "sfdc.integration@acme.io".into(),
            department: None,
            active: true,
        });
        for i in 1..n {
            let first = *rng.pick(&FIRST_NAMES);
            let last = *rng.pick(&LAST_NAMES);
            // The first few users are the planted deals' owners: always sales reps.
            let department = if i <= 6 {
                Some("Sales")
            } else {
                rng.pick_weighted(&[
                    (Some("Sales"), 60),
                    (Some("Sales Development"), 15),
                    (Some("Customer Success"), 10),
                    (Some("Marketing"), 5),
                    (None, 10),
                ])
            };
            let domain = if i > 6 && rng.chance(0.12) {
                "acme-contractors.com"
            } else {
                "acme.io"
            };
            let email = if n > 200 {
                format!(
                    "{}.{}{}@{}",
                    first.to_lowercase(),
                    last.to_lowercase(),
                    i,
                    domain
                )
            } else {
                format!(
                    "{}.{}@{}",
                    first.to_lowercase(),
                    last.to_lowercase(),
                    domain
                )
            };
            let active = i <= 6 || !rng.chance(0.15);
            if department == Some("Sales") {
                self.sales_users.push(i as u32);
            }
            self.w.users.push(User {
                name: format!("{first} {last}"),
                email,
                department,
                active,
            });
        }
    }

    // ------------------------------------------------------------ accounts

    pub fn push_account(&mut self, a: Account, country: Option<usize>) -> u32 {
        let i = self.w.accounts.len() as u32;
        self.w.accounts.push(a);
        self.spans.push(Vec::new());
        self.dup_of.push(None);
        self.country_idx.push(country);
        self.bill_of.push(None);
        i
    }

    pub fn country_currency(&self, a: u32) -> u8 {
        self.country_idx[a as usize]
            .map(|c| COUNTRIES[c].2)
            .unwrap_or(USD)
    }

    /// A random company: name, country, website and industry.
    pub fn random_account(&mut self, rng: &mut Rng, created: i64) -> u32 {
        let country = if rng.chance(0.03) {
            None
        } else {
            let weights: Vec<u32> = COUNTRIES.iter().map(|c| c.1).collect();
            Some(rng.weighted(&weights))
        };
        let a = *rng.pick(&NAME_A);
        let b = *rng.pick(&NAME_B);
        let (suffix, tld) = match country {
            Some(c) => (*rng.pick(COUNTRIES[c].3), COUNTRIES[c].4),
            None => ("Inc", "com"),
        };
        let extra = if self.scale > 4 && rng.chance(0.5) {
            format!(" {}", NAME_A[rng.below(NAME_A.len() as u64) as usize])
        } else {
            String::new()
        };
        let name = format!("{a} {b}{extra} {suffix}");
        let slug = format!("{a}{b}{}", extra.trim()).to_lowercase();
        let website = match rng.below(100) {
            0..=29 => Some(format!("https://www.{slug}.{tld}")),
            30..=44 => Some(format!("https://www.{slug}.{tld}/about")),
            45..=59 => Some(format!("{slug}.{tld}")),
            60..=71 => Some(format!("http://{slug}.{tld}")),
            72..=81 => Some(format!("www.{slug}.{tld}")),
            82..=87 => Some(format!(
                "HTTPS://WWW.{}.{}/",
                slug.to_uppercase(),
                tld.to_uppercase()
            )),
            88..=91 => Some(format!("https://{slug}.{tld}/en-us/home?ref=crm")),
            _ => None,
        };
        let industry = if rng.chance(0.06) {
            None
        } else {
            Some(*rng.pick(&INDUSTRIES))
        };
        let owner = *rng.pick(&self.sales_users);
        self.push_account(
            Account {
                name,
                typ: "Prospect",
                parent: None,
                master: None,
                owner,
                industry,
                country: country.map(|c| COUNTRIES[c].0),
                website,
                created,
                deleted: false,
            },
            country,
        )
    }

    /// A duplicate record of `survivor` merged into `into` (itself or a dup).
    pub fn merged_duplicate(&mut self, rng: &mut Rng, survivor: u32, into: u32) -> u32 {
        let s = self.w.accounts[survivor as usize].clone();
        let name = match rng.below(3) {
            0 => s.name.clone(),
            1 => s.name.to_uppercase(),
            _ => format!("{} (old)", s.name),
        };
        let created = s.created - rng.range(5, 400) * DAY_US;
        let country = self.country_idx[survivor as usize];
        let d = self.push_account(
            Account {
                name,
                typ: "Prospect",
                parent: None,
                master: Some(into),
                owner: s.owner,
                industry: s.industry,
                country: s.country,
                website: s.website.clone(),
                created,
                deleted: true,
            },
            country,
        );
        if self.dup_of[survivor as usize].is_none() {
            self.dup_of[survivor as usize] = Some(d);
        }
        d
    }

    // ------------------------------------------------------------ deals

    pub fn biz_time(rng: &mut Rng, day: i32) -> i64 {
        la_time(day, rng.range(8 * 60, 18 * 60))
    }

    /// Write a deal and its history; returns the deal's index.
    pub fn add_deal(&mut self, rng: &mut Rng, d: DealSpec) -> u32 {
        let opp = self.w.opps.len() as u32;
        let closed = !matches!(d.outcome, Outcome::Open(_));
        let final_stage = match d.outcome {
            Outcome::Won => WON,
            Outcome::Lost => LOST,
            Outcome::Open(s) => s,
        };
        // The stages walked through before the final one.
        let top_open = match d.outcome {
            Outcome::Open(s) => s,
            Outcome::Won => 3,
            Outcome::Lost if d.skip_stages => 3,
            Outcome::Lost => rng.below(4) as u8,
        };
        let first = if top_open > 0 && !d.skip_stages && rng.chance(0.2) {
            1
        } else {
            0
        };
        let mut path: Vec<u8> = vec![first];
        if d.skip_stages {
            if top_open > first {
                path.push(top_open);
            }
        } else {
            for s in first + 1..=top_open {
                path.push(s);
            }
        }
        if d.backwards
            && let Some(pos) = path.iter().position(|&s| s >= 2)
        {
            let s = path[pos];
            path.splice(pos + 1..pos + 1, [s - 1, s]);
        }
        if closed {
            path.push(final_stage);
        }

        // Event kinds: 0 = stage change, 1 = amount change, 2 = close date change.
        let stage_changes = path.len() - 1 - closed as usize;
        let mut kinds: Vec<u8> = Vec::with_capacity(8);
        kinds.extend(std::iter::repeat_n(0u8, stage_changes));
        kinds.extend(std::iter::repeat_n(1u8, d.amount_changes as usize));
        kinds.extend(std::iter::repeat_n(2u8, d.close_changes as usize));
        for i in (1..kinds.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            kinds.swap(i, j);
        }
        if closed {
            kinds.push(0);
        }

        // Amount at closing (before a post-close correction).
        let closing_amount = match d.post_close {
            Some((_, before)) => before,
            None => d.amount,
        };
        let created_day = la_day(d.created);
        let end_ts = if closed {
            d.closing_ts.unwrap_or_else(|| {
                let t = Self::biz_time(rng, d.close);
                t.max(d.created + HOUR_US)
            })
        } else {
            d.last_change_max
                .unwrap_or(self.cal.extract_ts - 6 * HOUR_US)
                .min(self.cal.extract_ts - HOUR_US)
        };
        let times = event_times(rng, d.created, end_ts, kinds.len(), closed);

        let perturb = |rng: &mut Rng, a: Option<i64>| -> Option<i64> {
            a.map(|v| {
                let f = 0.6 + rng.unit() * 0.8;
                let unit = if d.currency == JPY { 1_000_000 } else { 10_000 };
                let x = ((v as f64 * f) / unit as f64).round() as i64 * unit;
                if x == v { v + unit } else { x }
            })
        };
        let mut amount = if d.amount_changes > 0 {
            if d.amount_missing_at_first {
                None
            } else {
                perturb(rng, closing_amount)
            }
        } else {
            closing_amount
        };
        let mut close = if d.close_changes > 0 || (closed && rng.chance(0.5)) {
            (d.close + rng.range(-45, 30) as i32).max(created_day)
        } else {
            d.close
        };
        let mut stage_pos = 0usize;
        let mut stage = path[0];
        let (mut amount_events, mut close_events) = (0u8, 0u8);
        let mut rows: Vec<Hist> = Vec::with_capacity(kinds.len() + 2);
        let row = |ts: i64, stage: u8, amount: Option<i64>, close: i32| Hist {
            id: 0,
            opp,
            ts,
            stage,
            amount,
            close,
            probability: STAGE_PROBABILITY[stage as usize],
            forecast: STAGE_FORECAST[stage as usize],
        };
        rows.push(row(d.created, stage, amount, close));
        for (k, &kind) in kinds.iter().enumerate() {
            let is_closing = closed && k == kinds.len() - 1;
            match kind {
                0 => {
                    stage_pos += 1;
                    stage = path[stage_pos];
                    if is_closing {
                        amount = closing_amount;
                        close = d.close;
                    }
                }
                1 => {
                    amount_events += 1;
                    amount = if amount_events == d.amount_changes && !closed {
                        d.amount
                    } else {
                        perturb(rng, closing_amount.or(d.amount))
                    };
                }
                _ => {
                    close_events += 1;
                    close = if close_events == d.close_changes && !closed {
                        d.close
                    } else {
                        (close + rng.range(7, 45) as i32).max(created_day)
                    };
                }
            }
            let mut r = row(times[k], stage, amount, close);
            // Reps sometimes override the probability of an open stage.
            if stage < WON && rng.chance(0.1) {
                r.probability =
                    (r.probability + *rng.pick(&[-10.0, -5.0, 5.0, 10.0])).clamp(5.0, 95.0);
            }
            rows.push(r);
        }
        // The last row is the deal's current state.
        if let Some(last) = rows.last_mut()
            && !closed
        {
            last.stage = final_stage;
            last.amount = d.amount;
            last.close = d.close;
            if d.omitted {
                last.forecast = OMITTED;
            }
        }
        // Now and then a rep takes the deal out of the forecast for a while.
        if rows.len() >= 3 && rng.chance(0.04) {
            let k = 1 + rng.below(rows.len() as u64 - 2) as usize;
            rows[k].forecast = OMITTED;
        }
        if let Some((ts, _)) = d.post_close {
            let mut r = *rows.last().expect("a closing row");
            r.ts = ts;
            r.amount = d.amount;
            rows.push(r);
        }
        let last = *rows.last().expect("at least the creation row");
        for mut r in rows {
            r.id = self.next_hist;
            self.next_hist += 1;
            self.w.hist.push(r);
        }
        self.w.opps.push(Opp {
            account: d.account,
            owner: d.owner,
            name: d.name,
            typ: d.typ,
            stage: last.stage,
            forecast: last.forecast,
            probability: last.probability,
            amount: last.amount,
            currency: d.currency,
            close: last.close,
            created: d.created,
            deleted: d.deleted,
            lead_source: d.lead_source,
        });
        opp
    }

    /// The open stage a deal has reached by the extract, from its progress.
    pub fn open_stage(&self, created_day: i32, close: i32) -> u8 {
        let total = (close - created_day).max(1) as f64;
        let done = (self.cal.extract_day - created_day).max(0) as f64;
        ((done / total * 4.0) as u8).min(3)
    }

    // ------------------------------------------------------------ billing

    pub fn add_bill_account(
        &mut self,
        name: String,
        crm: Option<CrmRef>,
        currency: u8,
        created: i64,
    ) -> u32 {
        let i = self.w.bill_accounts.len() as u32;
        self.w.bill_accounts.push(BillAccount {
            name,
            crm,
            currency,
            active: false,
            created,
            deleted: false,
        });
        i
    }

    pub fn start_sub(
        &mut self,
        bill: u32,
        opp: Option<u32>,
        start: i32,
        term_months: Option<i32>,
    ) -> SubBuild {
        let original = self.next_sub_id;
        self.next_sub_id += 1;
        let number = self.next_sub_number;
        self.next_sub_number += 1;
        SubBuild {
            bill,
            number,
            original,
            opp,
            start,
            term_end: term_months.map(|m| add_months(start, m)),
            currency: self.w.bill_accounts[bill as usize].currency,
            segs: Vec::new(),
            versions: Vec::new(),
            status: ACTIVE,
            end: None,
            cancelled: None,
            deleted: false,
        }
    }

    /// Write every version of a subscription and its charges.
    pub fn finish_sub(&mut self, sb: SubBuild) {
        let n_versions = sb.versions.len() + 1;
        let mut all: Vec<&Vec<Seg>> = sb.versions.iter().collect();
        all.push(&sb.segs);
        for (k, segs) in all.into_iter().enumerate() {
            let latest = k + 1 == n_versions;
            let id = if k == 0 {
                sb.original
            } else {
                let id = self.next_sub_id;
                self.next_sub_id += 1;
                id
            };
            let status = if latest { sb.status } else { EXPIRED };
            self.w.subs.push(SubVersion {
                id,
                bill: sb.bill,
                number: sb.number,
                version: k as u32 + 1,
                latest,
                original: sb.original,
                status,
                start: sb.start,
                end: if latest { sb.end } else { None },
                term_start: sb.start,
                term_end: sb.term_end,
                cancelled: if latest { sb.cancelled } else { None },
                opp: sb.opp,
                deleted: sb.deleted,
            });
            for s in segs {
                let tcv = match s.charge_type {
                    RECURRING => {
                        let end = s
                            .end
                            .or(sb.term_end)
                            .unwrap_or_else(|| add_months(s.start, 12));
                        s.mrr * months_between(s.start, end)
                    }
                    _ => s.fixed_tcv,
                };
                let cid = self.next_charge;
                self.next_charge += 1;
                self.w.charges.push(Charge {
                    id: cid,
                    sub: id,
                    name: s.name,
                    charge_type: s.charge_type,
                    start: s.start,
                    end: s.end,
                    mrr: s.mrr,
                    tcv,
                    currency: sb.currency,
                    deleted: sb.deleted,
                });
            }
        }
        let ext = self.cal.extract_day;
        if !sb.deleted
            && sb
                .segs
                .iter()
                .any(|s| s.start <= ext && s.end.is_none_or(|e| e > ext))
        {
            self.w.bill_accounts[sb.bill as usize].active = true;
        }
    }

    // ------------------------------------------------------------ finance

    /// Write a revenue schedule; returns the revenue plan number.
    pub fn schedule(&mut self, rng: &mut Rng, s: Sched) -> u32 {
        let plan = self.next_plan;
        self.next_plan += 1;
        let months = s.months.max(1);
        let per = s.total / months as i64;
        let last_month = self.cal.last_period_month();
        let recent = self.cal.period_id(self.cal.extract_day) - 2;
        for k in 0..months {
            let mi = s.start_month + k;
            debug_assert!(
                mi <= last_month,
                "a revenue schedule runs past the last accounting period"
            );
            if mi > last_month {
                break;
            }
            let txn = if k == months - 1 {
                s.total - per * (months as i64 - 1)
            } else {
                per
            };
            let period = self.cal.period_id_of_month(mi);
            let closed = month_start_of_index(mi + 1) - 1 < self.cal.extract_day;
            let recognized = closed && !(period >= recent && rng.chance(0.08));
            let rate = self.finance_rate(s.currency, mi);
            // Now and then an earlier, wrong entry of the line was deleted.
            if rng.chance(0.004) {
                self.push_line(plan, period, txn + txn / 10, rate, s, false, true);
            }
            self.push_line(plan, period, txn, rate, s, recognized, false);
        }
        plan
    }

    /// Append a line as given (a new id is assigned).
    pub fn push_raw_line(&mut self, mut line: RevLine) {
        line.id = self.next_line;
        self.next_line += 1;
        self.w.lines.push(line);
    }

    #[allow(clippy::too_many_arguments)]
    fn push_line(
        &mut self,
        plan: u32,
        period: i64,
        txn: i64,
        rate: i64,
        s: Sched,
        recognized: bool,
        deleted: bool,
    ) {
        let id = self.next_line;
        self.next_line += 1;
        self.w.lines.push(RevLine {
            id,
            plan,
            period,
            amount: to_usd(txn, rate),
            transaction_amount: txn,
            currency: s.currency,
            item: s.item,
            opp: s.opp,
            sub: s.sub,
            recognized,
            deleted,
        });
    }

    /// Usage billed in arrears: one recognized-as-closed line per month the
    /// usage charge ran, up to the extract.
    pub fn usage_schedule(&mut self, rng: &mut Rng, sb: &SubBuild) {
        let Some(seg) = sb.segs.iter().find(|s| s.charge_type == USAGE) else {
            return;
        };
        let base = sb.recurring_mrr(sb.start).max(100 * CENTS);
        let end = seg
            .end
            .unwrap_or(self.cal.extract_day)
            .min(self.cal.extract_day);
        let (m0, m1) = (month_index(seg.start), month_index(end));
        if m1 <= m0 {
            return;
        }
        let plan = self.next_plan;
        self.next_plan += 1;
        let recent = self.cal.period_id(self.cal.extract_day) - 2;
        for mi in m0..m1 {
            let unit = if sb.currency == JPY { 100 } else { 1 };
            let txn = (base as f64 * (0.02 + rng.unit() * 0.08)) as i64 / unit * unit;
            let period = self.cal.period_id_of_month(mi);
            let closed = month_start_of_index(mi + 1) - 1 < self.cal.extract_day;
            let recognized = closed && !(period >= recent && rng.chance(0.08));
            let rate = self.finance_rate(sb.currency, mi);
            let s = Sched {
                opp: None,
                sub: Some(sb.original),
                currency: sb.currency,
                start_month: mi,
                months: 1,
                total: txn,
                item: ITEM_USAGE,
            };
            self.push_line(plan, period, txn, rate, s, recognized, false);
        }
    }

    // ------------------------------------------------------------ pricing

    /// A monthly recurring amount in `cur` cents for an annual value in USD,
    /// rounded to a price-list step.
    pub fn price_mrr(&self, cur: u8, day: i32, arr_usd: f64) -> i64 {
        let rate = self.crm_rate(cur, day) as f64 / 1e6;
        let step = if cur == JPY {
            10_000 * CENTS
        } else {
            50 * CENTS
        };
        let mrr_cents = arr_usd * rate / 12.0 * 100.0;
        (((mrr_cents / step as f64).round() as i64).max(1)) * step
    }

    pub fn round_step(&self, cur: u8, cents: f64) -> i64 {
        let step = if cur == JPY {
            50_000 * CENTS
        } else {
            500 * CENTS
        };
        (((cents / step as f64).round() as i64).max(1)) * step
    }

    pub fn pick_term(&self, rng: &mut Rng, start: i32) -> i32 {
        let r = rng.below(100);
        if r < 8 && start <= days(2024, 12, 1) {
            36
        } else if r < 28 && start <= days(2025, 12, 1) {
            24
        } else {
            12
        }
    }

    // ------------------------------------------------------------ journeys

    /// One random account's story: attempts to sell, and its life as a customer.
    ///
    /// An account may run several sales motions (product lines) in parallel;
    /// `motion` names the product line, all in the account's one currency.
    pub fn journey(&mut self, rng: &mut Rng, acct: u32, cur: u8, motion: usize) {
        let a = self.w.accounts[acct as usize].clone();
        let product = PRODUCTS[motion % PRODUCTS.len()];
        let deleted = a.deleted;
        // Good-fit accounts mostly buy; poor-fit ones generate lost deals.
        let good_fit = rng.chance(0.45);
        let p_win = if deleted {
            0.0
        } else if good_fit {
            0.5
        } else {
            0.1
        };
        let last_create = self.cal.end - 10;
        let mut day = la_day(a.created).max(self.cal.start)
            + if motion == 0 {
                rng.range(0, 120)
            } else {
                rng.range(30, 700)
            } as i32;
        loop {
            if day > last_create {
                break;
            }
            let created = Self::biz_time(rng, day);
            let created_day = la_day(created);
            let cycle = rng.range(14, 160) as i32;
            let close = created_day + cycle;
            let arr_usd = rng.log_uniform(6_000.0, 250_000.0);
            let owner = self.deal_owner(rng, a.owner);
            let mut spec = DealSpec::new(
                acct,
                owner,
                NEW_BUSINESS,
                cur,
                if motion == 0 {
                    format!("{} - New Business", a.name)
                } else {
                    format!("{} - {product} - New Business", a.name)
                },
            );
            spec.created = created;
            spec.deleted = deleted || rng.chance(0.01);
            spec.lead_source = if rng.chance(0.1) {
                None
            } else {
                Some(*rng.pick(&LEAD_SOURCES))
            };
            self.randomize_path(rng, &mut spec);
            let past_due = close < self.cal.extract_day && rng.chance(0.03);
            if close >= self.cal.extract_day || past_due {
                let mrr = self.price_mrr(cur, created_day, arr_usd);
                let stage = if past_due {
                    1 + rng.below(3) as u8
                } else {
                    self.open_stage(created_day, close)
                };
                spec.close = close;
                spec.outcome = Outcome::Open(stage);
                spec.amount = if stage == 0 && rng.chance(0.35) {
                    None
                } else {
                    Some(mrr * 12)
                };
                spec.omitted = rng.chance(0.05);
                self.add_deal(rng, spec);
                break;
            }
            if rng.chance(p_win) {
                let start = self.service_start(rng, close);
                let term = self.pick_term(rng, start);
                let mrr = self.price_mrr(cur, close, arr_usd);
                let fee = if rng.chance(0.35) {
                    self.round_step(cur, (mrr * 12) as f64 * (0.08 + rng.unit() * 0.12))
                } else {
                    0
                };
                spec.close = close;
                spec.outcome = Outcome::Won;
                let amount = mrr * term as i64 + fee;
                spec.amount = if rng.chance(0.004) {
                    None
                } else {
                    Some(amount)
                };
                if rng.chance(0.03) {
                    let later = close + rng.range(3, 40) as i32;
                    let ts = Self::biz_time(rng, later);
                    if ts < self.cal.extract_ts {
                        let before = spec.amount.map(|v| v + mrr * 2);
                        spec.post_close = Some((ts, before));
                    }
                }
                let deal = self.add_deal(rng, spec);
                let churn = self.customer(rng, acct, deal, cur, start, term, mrr, fee);
                match churn {
                    Some(end) if rng.chance(0.3) => {
                        day = end + rng.range(60, 300) as i32;
                    }
                    _ => break,
                }
            } else {
                spec.close = close;
                spec.outcome = Outcome::Lost;
                spec.amount = Some(self.price_mrr(cur, created_day, arr_usd) * 12);
                self.add_deal(rng, spec);
                if rng.chance(0.88) {
                    day = close + rng.range(15, 110) as i32;
                } else {
                    break;
                }
            }
        }
    }

    pub fn deal_owner(&self, rng: &mut Rng, account_owner: u32) -> u32 {
        if rng.chance(0.85) {
            account_owner
        } else {
            *rng.pick(&self.sales_users)
        }
    }

    pub fn randomize_path(&self, rng: &mut Rng, spec: &mut DealSpec) {
        spec.skip_stages = rng.chance(0.08);
        spec.backwards = rng.chance(0.06);
        spec.amount_changes = rng.pick_weighted(&[(0u8, 60), (1, 30), (2, 10)]);
        spec.close_changes = rng.pick_weighted(&[(0u8, 60), (1, 30), (2, 10)]);
        spec.amount_missing_at_first = rng.chance(0.15);
    }

    /// When service starts for a deal closed on `close`.
    pub fn service_start(&self, rng: &mut Rng, close: i32) -> i32 {
        match rng.below(100) {
            0..=69 => close,
            70..=84 => add_months(month_start(close), 1),
            85..=91 => add_months(month_start(close), 2),
            92..=95 => add_months(month_start(close), -1),
            _ => month_start(close),
        }
    }

    /// Ensure the account has a billing account.
    pub fn billing_for(&mut self, rng: &mut Rng, acct: u32, cur: u8, at: i64) -> u32 {
        if let Some(b) = self.bill_of[acct as usize] {
            return b;
        }
        let name = self.w.accounts[acct as usize].name.clone();
        let crm = match rng.below(1000) {
            0..=39 => None,
            40..=54 => Some(CrmRef::Unknown(1000 + acct)),
            _ => match self.dup_of[acct as usize] {
                Some(d) if rng.chance(0.5) => Some(CrmRef::Account(d)),
                _ => Some(CrmRef::Account(acct)),
            },
        };
        let b = self.add_bill_account(name, crm, cur, at + rng.range(1, 5 * 24) * HOUR_US);
        self.bill_of[acct as usize] = Some(b);
        b
    }

    /// A new subscription sold by `deal` with a platform charge, maybe an
    /// implementation fee and a usage charge; writes the deal's revenue schedule.
    #[allow(clippy::too_many_arguments)]
    pub fn sell(
        &mut self,
        rng: &mut Rng,
        bill: u32,
        deal: Option<u32>,
        start: i32,
        term: i32,
        mrr: i64,
        fee: i64,
        usage: bool,
        sched: SchedStyle,
    ) -> SubBuild {
        let deal = deal.filter(|_| !sched.no_deal_on_subscription);
        let mut sb = self.start_sub(bill, deal, start, Some(term));
        sb.add(Seg {
            name: PLATFORM,
            charge_type: RECURRING,
            start,
            end: sb.term_end,
            mrr,
            fixed_tcv: 0,
        });
        if fee > 0 {
            sb.add(Seg {
                name: IMPLEMENTATION,
                charge_type: ONE_TIME,
                start,
                end: Some(start + 1),
                mrr: 0,
                fixed_tcv: fee,
            });
        }
        if usage {
            sb.add(Seg {
                name: USAGE_CHARGE,
                charge_type: USAGE,
                start,
                end: sb.term_end,
                mrr: 0,
                fixed_tcv: 0,
            });
        }
        if let Some(opp) = sched.opp
            && !sched.none
        {
            let sub_total = mrr * term as i64;
            let total = match sched.discount_pct {
                0 => sub_total,
                pct => sub_total - sub_total * pct as i64 / 100,
            };
            let link = if sched.subscription_only {
                None
            } else {
                Some(OppRef::Opp(opp))
            };
            let currency = sb.currency;
            self.schedule(
                rng,
                Sched {
                    opp: link,
                    sub: Some(sb.original),
                    currency,
                    start_month: month_index(start),
                    months: term,
                    total,
                    item: ITEM_SUBSCRIPTION,
                },
            );
            if fee > 0 {
                self.schedule(
                    rng,
                    Sched {
                        opp: link,
                        sub: Some(sb.original),
                        currency,
                        start_month: month_index(start),
                        months: 1,
                        total: fee,
                        item: ITEM_SERVICES,
                    },
                );
            }
        }
        sb
    }

    pub fn random_sched_style(&self, rng: &mut Rng, deal: u32, typ: u8) -> SchedStyle {
        SchedStyle {
            opp: Some(deal),
            none: rng.chance(0.03),
            subscription_only: typ == NEW_BUSINESS && rng.chance(0.06),
            discount_pct: if rng.chance(0.08) {
                *rng.pick(&[5u32, 10, 15])
            } else {
                0
            },
            no_deal_on_subscription: rng.chance(0.05),
        }
    }

    /// Life as a customer from a won new-business deal: expansions,
    /// amendments, renewals, cancellation or expiry. Returns the day the
    /// customer left, if it did.
    #[allow(clippy::too_many_arguments)]
    pub fn customer(
        &mut self,
        rng: &mut Rng,
        acct: u32,
        nb_deal: u32,
        cur: u8,
        start: i32,
        term: i32,
        mrr: i64,
        fee: i64,
    ) -> Option<i32> {
        let a_name = self.w.accounts[acct as usize].name.clone();
        let a_owner = self.w.accounts[acct as usize].owner;
        let closed_at = self.w.opps[nb_deal as usize].close;
        let bill = self.billing_for(rng, acct, cur, la_time(closed_at, 17 * 60));
        let style = self.random_sched_style(rng, nb_deal, NEW_BUSINESS);
        let usage = rng.chance(0.3);
        let mut sb = self.sell(
            rng,
            bill,
            Some(nb_deal),
            start,
            term,
            mrr,
            fee,
            usage,
            style,
        );
        let ext = self.cal.extract_day;
        let span_start = start;
        loop {
            let s = sb.start;
            let e = sb.term_end.expect("termed subscription");
            let term_days = (e - s) as i64;
            // Events within the term, applied in date order.
            let cancel_day = if rng.chance(0.03) {
                Some(s + rng.range(60, (term_days - 30).max(61)) as i32)
            } else {
                None
            };
            let limit = cancel_day.unwrap_or(e);
            let mut events: Vec<TermEvent> = Vec::new();
            let n_exp = rng.pick_weighted(&[
                (0u8, 8),
                (1, 15),
                (2, 20),
                (3, 20),
                (4, 15),
                (5, 12),
                (6, 10),
            ]);
            for _ in 0..n_exp {
                let cday = s + rng.range(20, (term_days - 90).max(21)) as i32;
                if cday >= ext - 1 {
                    continue;
                }
                let created = Self::biz_time(rng, cday);
                let close = cday + rng.range(15, 80) as i32;
                let add = self.round_mrr(
                    cur,
                    sb.mrr_of(s, PLATFORM) as f64 * (0.05 + rng.unit() * 0.25),
                );
                let mut spec = DealSpec::new(
                    acct,
                    self.deal_owner(rng, a_owner),
                    EXPANSION,
                    cur,
                    format!("{a_name} - Expansion"),
                );
                spec.created = created;
                spec.deleted = rng.chance(0.01);
                spec.lead_source = Some("Existing Customer");
                self.randomize_path(rng, &mut spec);
                spec.close = close;
                let months = months_between(close, e) as i32;
                spec.amount = Some(add * months as i64);
                if close >= ext {
                    spec.outcome = Outcome::Open(self.open_stage(cday, close));
                    spec.omitted = rng.chance(0.05);
                    self.add_deal(rng, spec);
                } else if close < limit - 10 && rng.chance(0.5) {
                    spec.outcome = Outcome::Won;
                    let deal = self.add_deal(rng, spec);
                    events.push(TermEvent {
                        day: close,
                        kind: TermEventKind::Expansion { deal, months, add },
                    });
                } else {
                    spec.outcome = Outcome::Lost;
                    self.add_deal(rng, spec);
                }
            }
            if rng.chance(0.05) {
                let day = s + rng.range(30, (term_days - 30).max(31)) as i32;
                if day < limit && day < ext {
                    events.push(TermEvent {
                        day,
                        kind: TermEventKind::Downgrade,
                    });
                }
            }
            if rng.chance(0.25) {
                let day = s + rng.range(10, (term_days - 10).max(11)) as i32;
                if day < limit && day < ext {
                    events.push(TermEvent {
                        day,
                        kind: TermEventKind::Admin,
                    });
                }
            }
            events.sort_by_key(|ev| ev.day);
            for ev in events {
                let d = ev.day;
                sb.amend();
                match ev.kind {
                    TermEventKind::Expansion { deal, months, add } => {
                        if rng.chance(0.5) {
                            sb.add(Seg {
                                name: SEATS,
                                charge_type: RECURRING,
                                start: d,
                                end: Some(e),
                                mrr: add,
                                fixed_tcv: 0,
                            });
                        } else {
                            let now = sb.mrr_of(d, PLATFORM);
                            sb.change_mrr(d, PLATFORM, now + add);
                        }
                        let style = self.random_sched_style(rng, deal, EXPANSION);
                        if !style.none {
                            let total = add * months as i64;
                            let total = total - total * style.discount_pct as i64 / 100;
                            let currency = sb.currency;
                            self.schedule(
                                rng,
                                Sched {
                                    opp: Some(OppRef::Opp(deal)),
                                    sub: Some(sb.original),
                                    currency,
                                    start_month: month_index(d),
                                    months,
                                    total,
                                    item: ITEM_SUBSCRIPTION,
                                },
                            );
                        }
                    }
                    TermEventKind::Downgrade => {
                        let now = sb.mrr_of(d, PLATFORM);
                        let lower = self.round_mrr(cur, now as f64 * (0.6 + rng.unit() * 0.3));
                        sb.change_mrr(d, PLATFORM, lower.min(now));
                    }
                    TermEventKind::Admin => {}
                }
            }
            if let Some(c) = cancel_day
                && c < ext
            {
                sb.amend();
                sb.cancel(c);
                self.usage_schedule(rng, &sb);
                self.finish_sub(sb);
                self.spans[acct as usize].push((span_start, Some(c)));
                return Some(c);
            }
            // Renewal.
            let renew_day = e - rng.range(60, 100) as i32;
            if renew_day >= ext - 1 {
                self.usage_schedule(rng, &sb);
                self.finish_sub(sb);
                self.spans[acct as usize].push((span_start, None));
                return None;
            }
            let created = Self::biz_time(rng, renew_day);
            let close = (e - rng.range(0, 20) as i32).max(renew_day + 5);
            let (ey, _, _) = ymd(e);
            let mut spec = DealSpec::new(
                acct,
                self.deal_owner(rng, a_owner),
                RENEWAL,
                cur,
                format!("{a_name} - Renewal {ey}"),
            );
            spec.created = created;
            spec.deleted = rng.chance(0.01);
            spec.lead_source = Some("Existing Customer");
            self.randomize_path(rng, &mut spec);
            spec.backwards = false;
            spec.close = close;
            let current = sb.recurring_mrr(e - 1);
            let new_term = self.pick_term(rng, e);
            let factor = if rng.chance(0.15) {
                1.0
            } else {
                0.85 + rng.unit() * 0.35
            };
            let new_mrr = self.round_mrr(cur, current.max(1) as f64 * factor);
            if close >= ext {
                spec.outcome = Outcome::Open(self.open_stage(renew_day, close));
                spec.amount = Some(new_mrr * new_term as i64);
                self.add_deal(rng, spec);
                self.usage_schedule(rng, &sb);
                self.finish_sub(sb);
                self.spans[acct as usize].push((span_start, None));
                return None;
            }
            if !rng.chance(0.84) || current == 0 {
                spec.outcome = Outcome::Lost;
                spec.amount = Some(new_mrr * new_term as i64);
                self.add_deal(rng, spec);
                if e <= ext {
                    sb.status = EXPIRED;
                    sb.end = Some(e);
                }
                self.usage_schedule(rng, &sb);
                self.finish_sub(sb);
                self.spans[acct as usize].push((span_start, Some(e)));
                return if e <= ext { Some(e) } else { None };
            }
            spec.outcome = Outcome::Won;
            spec.amount = Some(new_mrr * new_term as i64);
            let deal = self.add_deal(rng, spec);
            let usage = sb.has_usage();
            if e <= ext {
                sb.status = EXPIRED;
                sb.end = Some(e);
            }
            self.usage_schedule(rng, &sb);
            self.finish_sub(sb);
            let style = self.random_sched_style(rng, deal, RENEWAL);
            sb = self.sell(rng, bill, Some(deal), e, new_term, new_mrr, 0, usage, style);
        }
    }

    /// Merge an account's overlapping customer spans (parallel motions).
    pub fn merge_spans(&mut self, acct: u32) {
        let spans = &mut self.spans[acct as usize];
        spans.sort_by_key(|&(s, _)| s);
        let mut out: Vec<(i32, Option<i32>)> = Vec::with_capacity(spans.len());
        for &(s, e) in spans.iter() {
            if let Some(last) = out.last_mut() {
                match last.1 {
                    None => continue,
                    Some(le) if s <= le => {
                        last.1 = e.map(|e| e.max(le));
                        continue;
                    }
                    _ => {}
                }
            }
            out.push((s, e));
        }
        *spans = out;
    }

    pub fn round_mrr(&self, cur: u8, cents: f64) -> i64 {
        let step = if cur == JPY {
            10_000 * CENTS
        } else {
            50 * CENTS
        };
        (((cents / step as f64).round() as i64).max(1)) * step
    }
}

/// How a won deal's revenue schedule is written.
#[derive(Debug, Clone, Copy, Default)]
pub struct SchedStyle {
    pub opp: Option<u32>,
    /// Won with no revenue schedule at all.
    pub none: bool,
    /// Lines carry only the subscription id.
    pub subscription_only: bool,
    /// Schedule total below the booking by this percentage.
    pub discount_pct: u32,
    /// The billing subscription does not name the deal.
    pub no_deal_on_subscription: bool,
}

#[derive(Debug, Clone, Copy)]
enum TermEventKind {
    Expansion { deal: u32, months: i32, add: i64 },
    Downgrade,
    Admin,
}

#[derive(Debug, Clone, Copy)]
struct TermEvent {
    day: i32,
    kind: TermEventKind,
}

/// `n` increasing instants after `from`; when `last_fixed`, the last is `to`.
fn event_times(rng: &mut Rng, from: i64, to: i64, n: usize, last_fixed: bool) -> Vec<i64> {
    if n == 0 {
        return Vec::new();
    }
    let to = to.max(from + n as i64 * MINUTE_US + MINUTE_US);
    let free = if last_fixed { n - 1 } else { n };
    let (d0, d1) = (la_day(from), la_day(to));
    let mut ts: Vec<i64> = (0..free)
        .map(|_| {
            let day = d0 + rng.range(0, (d1 - d0 + 1) as i64) as i32;
            let t = la_time(day, rng.range(7 * 60, 19 * 60));
            if t <= from || t >= to {
                from + 1 + (rng.unit() * (to - from - 1) as f64) as i64
            } else {
                t
            }
        })
        .collect();
    ts.sort_unstable();
    let mut ok = true;
    for i in 0..ts.len() {
        let lo = if i == 0 { from } else { ts[i - 1] };
        if ts[i] <= lo {
            ts[i] = lo + MINUTE_US;
        }
        if ts[i] >= to {
            ok = false;
        }
    }
    if !ok {
        let step = (to - from) / (n as i64 + 1);
        ts = (1..=free as i64).map(|i| from + i * step).collect();
    }
    if last_fixed {
        ts.push(to);
    }
    ts
}
