//! What an analyst asked for, beneath every stage: the command line builds
//! it, planning, the gates, the cache key and the result read it. A
//! [`Resolved`] request is the same worked out against the calendar once
//! (buckets, as-of instants, a cohort's T and T0, the zone its day bounds
//! are instants in), so no later stage asks the calendar again.

use chrono::{Months, NaiveDate};
use chrono_tz::Tz;

use crate::calendar::{Calendar, Grain, Period};
use crate::error::{CanonError, Result};

/// A request as written (the command line's flags, a definition test's
/// keys), before it is read against the calendar.
#[derive(Debug, Clone, Default)]
pub struct Asked {
    pub period: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub as_of: Option<String>,
    pub grain: Option<String>,
    pub by: Vec<String>,
}

impl Asked {
    /// The request it asks for, or why it cannot be read.
    pub fn request(&self, cal: &Calendar) -> Result<Request> {
        let as_of = self
            .as_of
            .as_deref()
            .map(|d| {
                NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").map_err(|_| {
                    let why = crate::calendar::why_not_a_day(d)
                        .map(|why| format!("{why}; "))
                        .unwrap_or_default();
                    CanonError::request(format!(
                        "cannot read --as-of `{d}`: {why}use a day, 2025-06-30"
                    ))
                })
            })
            .transpose()?;
        let period = match (&self.period, &self.from, &self.to, as_of) {
            (Some(p), _, _, None) => cal.parse_period(p)?,
            (None, Some(f), Some(t), None) => cal.parse_period(&format!("{f}..{t}"))?,
            (None, None, None, Some(d)) => cal.parse_period(&d.to_string())?,
            (_, _, _, Some(_)) => {
                return Err(CanonError::request(
                    "--as-of names one day; for a series use --from D --to D --grain month",
                ));
            }
            _ => {
                return Err(CanonError::request(
                    "say which period: --period FY2026-Q1 (or 2025-03, 2025, FY2026, 2025-02-01..2025-05-01), --from D --to D, or --as-of D for a snapshot",
                ));
            }
        };
        let grain = self.grain.as_deref().map(Grain::parse).transpose()?;
        Ok(Request {
            period,
            as_of,
            rates_as_of: None,
            grain,
            by: slices(&self.by)?,
        })
    }
}

/// `--by`'s slice names, trimmed: an empty one (`--by deal_type,`) or one
/// named twice (the engine would see a duplicate column) is refused.
fn slices(by: &[String]) -> Result<Vec<String>> {
    let written = by.join(",");
    let mut out: Vec<String> = Vec::new();
    for s in by.iter().map(|s| s.trim()) {
        if s.is_empty() {
            return Err(CanonError::request(format!(
                "--by `{written}` has an empty slice name: separate names by single commas, e.g. --by deal_type,country"
            )));
        }
        if out.iter().any(|o| o == s) {
            return Err(CanonError::request(format!(
                "--by `{written}` names slice `{s}` twice: name each slice once"
            )));
        }
        out.push(s.to_string());
    }
    Ok(out)
}

/// What an analyst asked for.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Request {
    pub period: Period,
    /// The day a snapshot metric is taken at (end of day in the reporting zone).
    pub as_of: Option<chrono::NaiveDate>,
    /// Convert a snapshot's `as_of` money at this day's rates instead of the
    /// as-of day's (constant currency, as a cohort's T0 is valued at T's rates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rates_as_of: Option<chrono::NaiveDate>,
    #[serde(
        serialize_with = "serialize_grain",
        deserialize_with = "deserialize_grain"
    )]
    pub grain: Option<Grain>,
    pub by: Vec<String>,
}

fn deserialize_grain<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Grain>, D::Error> {
    use serde::Deserialize;
    Option::<String>::deserialize(d)?
        .map(|name| Grain::parse(&name).map_err(serde::de::Error::custom))
        .transpose()
}

fn serialize_grain<S: serde::Serializer>(g: &Option<Grain>, s: S) -> Result<S::Ok, S::Error> {
    match g {
        Some(g) => s.serialize_str(g.name()),
        None => s.serialize_none(),
    }
}

impl Request {
    /// Period `period` and nothing else asked (no as-of, grain or slice):
    /// what publish, the bridge and diff compute per period.
    pub fn of_period(period: Period) -> Request {
        Request {
            period,
            as_of: None,
            rates_as_of: None,
            grain: None,
            by: Vec::new(),
        }
    }

    /// The whole of time (1900 to 3000) with nothing else asked: how the
    /// reconciliation reads a metric "in some period".
    pub fn all_time() -> Request {
        Request {
            period: Period {
                label: "all time".into(),
                from: NaiveDate::from_ymd_opt(1900, 1, 1).expect("date"),
                to: NaiveDate::from_ymd_opt(3000, 1, 1).expect("date"),
            },
            as_of: None,
            rates_as_of: None,
            grain: None,
            by: Vec::new(),
        }
    }

    /// The one-day period of day `d`.
    pub fn day(d: NaiveDate) -> Period {
        Period {
            label: d.to_string(),
            from: d,
            to: d.succ_opt().expect("a next day"),
        }
    }
}

/// A request worked out against the calendar once, before anything is
/// planned: the buckets of its period, a snapshot's as-of instants, a
/// cohort's T and T0, and the reporting zone that places a local day's
/// start on the UTC time line (the bound a timestamp column is compared
/// with). Planning, the gates and the result read these instead of each
/// asking the calendar again; it reads as the [`Request`] it resolves.
#[derive(Debug, Clone)]
pub struct Resolved {
    request: Request,
    /// The period broken into the grain's buckets; the period alone without
    /// a grain.
    pub buckets: Vec<Period>,
    /// A snapshot's instants, (label, day): `--as-of D`; each bucket's last
    /// day for a series; else the period's last day.
    pub as_of_days: Vec<(String, NaiveDate)>,
    /// A cohort's instant T: `--as-of D`, else the period's last day.
    pub t: NaiveDate,
    /// A cohort's starting instant T0: twelve months before T (the month's
    /// last day when T's day does not exist then).
    pub t0: NaiveDate,
    zone: Tz,
}

impl std::ops::Deref for Resolved {
    type Target = Request;

    fn deref(&self) -> &Request {
        &self.request
    }
}

impl Resolved {
    /// Resolves `request` against `calendar`, refusing first a series of
    /// more than `max_buckets` buckets (counted from the period's bounds,
    /// before any bucket exists).
    pub fn new(calendar: &Calendar, request: Request, max_buckets: u64) -> Result<Resolved> {
        let buckets = match request.grain {
            Some(grain) => {
                check_bucket_limit(calendar, &request, grain, max_buckets)?;
                calendar.buckets(&request.period, grain)
            }
            None => vec![request.period.clone()],
        };
        Ok(Resolved::with_buckets(request, buckets, calendar.zone))
    }

    /// `request` in this request's zone: a request without a grain (a
    /// cohort's two instants as one snapshot), which needs no calendar.
    pub fn narrowed(&self, request: Request) -> Resolved {
        debug_assert!(request.grain.is_none(), "a narrowed request has no grain");
        let buckets = vec![request.period.clone()];
        Resolved::with_buckets(request, buckets, self.zone)
    }

    fn with_buckets(request: Request, buckets: Vec<Period>, zone: Tz) -> Resolved {
        let last = |p: &Period| p.to.pred_opt().expect("a period has a last day");
        let as_of_days = match (request.as_of, request.grain) {
            (Some(d), _) => vec![(d.to_string(), d)],
            (None, Some(_)) => buckets.iter().map(|b| (b.label.clone(), last(b))).collect(),
            (None, None) => vec![(request.period.label.clone(), last(&request.period))],
        };
        let t = request.as_of.unwrap_or_else(|| last(&request.period));
        Resolved {
            buckets,
            as_of_days,
            t,
            t0: t0_of(t),
            zone,
            request,
        }
    }

    /// The request as asked (what a result and a cache key record).
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// The UTC instant (microseconds since the epoch) at which local day
    /// `d` starts: the bound a timestamp column is compared with.
    pub fn day_start_utc_micros(&self, d: NaiveDate) -> i64 {
        crate::calendar::day_start_utc_micros(self.zone, d)
    }
}

/// A cohort's T0: twelve months before `t`, clamped to the month's end.
pub fn t0_of(t: NaiveDate) -> NaiveDate {
    t.checked_sub_months(Months::new(12))
        .expect("a day twelve months earlier")
}

/// Refuses a request with more buckets (period × grain) than `limit`
/// (`engine.max_buckets`): a series costs a plan branch, a CASE arm or an
/// instant per bucket, so an unbounded one is an unbounded cost. The
/// message gives the count, the limit and the finest coarser grain that
/// fits.
fn check_bucket_limit(
    calendar: &Calendar,
    request: &Request,
    grain: Grain,
    limit: u64,
) -> Result<()> {
    let count = calendar.bucket_count(&request.period, grain);
    if count <= limit {
        return Ok(());
    }
    let n = |v: u64| crate::decimal::Dec::from_int(v as i64).grouped();
    let coarser: &[Grain] = match grain {
        Grain::Day => &[Grain::Month, Grain::Quarter, Grain::Year],
        Grain::Month => &[Grain::Quarter, Grain::Year],
        Grain::Quarter => &[Grain::Year],
        Grain::FiscalQuarter => &[Grain::FiscalYear],
        Grain::Year | Grain::FiscalYear => &[],
    };
    let counts: Vec<(Grain, u64)> = coarser
        .iter()
        .map(|g| (*g, calendar.bucket_count(&request.period, *g)))
        .collect();
    let advice = match counts.iter().find(|(_, c)| *c <= limit) {
        Some((g, c)) => format!(
            "--grain {} gives {} (or narrow the period)",
            g.name(),
            n(*c)
        ),
        None if counts.is_empty() => {
            "narrow the period, or raise engine.max_buckets in canon.yaml".to_string()
        }
        None => format!(
            "no coarser grain fits ({}): narrow the period, or raise engine.max_buckets in canon.yaml",
            counts
                .iter()
                .map(|(g, c)| format!("--grain {} gives {}", g.name(), n(*c)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Err(CanonError::request(format!(
        "{} {} buckets over {}..{} exceed engine.max_buckets ({}); {advice}",
        n(count),
        grain.name(),
        request.period.from,
        request.period.to,
        n(limit)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn request(period: Period, as_of: Option<NaiveDate>, grain: Option<Grain>) -> Request {
        Request {
            period,
            as_of,
            rates_as_of: None,
            grain,
            by: Vec::new(),
        }
    }

    // An as-of day that is not a day says why, as a period does (it said
    // only "use a day"): 2025 is not a leap year.
    #[test]
    fn an_as_of_day_that_does_not_exist_says_why() {
        let cal = Calendar::for_tests(chrono_tz::America::Los_Angeles, 2);
        let asked = |d: &str| Asked {
            as_of: Some(d.to_string()),
            ..Asked::default()
        };
        let why = asked("2025-02-29").request(&cal).unwrap_err().to_string();
        assert!(
            why.contains(
                "cannot read --as-of `2025-02-29`: 2025-02 has no day 29; use a day, 2025-06-30"
            ),
            "{why}"
        );
        let why = asked("yesterday").request(&cal).unwrap_err().to_string();
        assert!(
            why.contains("cannot read --as-of `yesterday`: use a day, 2025-06-30"),
            "{why}"
        );
        assert_eq!(
            asked("2024-02-29").request(&cal).unwrap().as_of,
            Some(d("2024-02-29"))
        );
    }

    // The fixture company's calendar: Los Angeles, fiscal years from
    // February, named by the year they end (FY2026 = 2025-02-01 .. 2026-02-01).
    #[test]
    fn a_request_is_resolved_once_into_buckets_instants_and_bounds() {
        let cal = Calendar::for_tests(chrono_tz::America::Los_Angeles, 2);
        let fy = cal.parse_period("FY2026").unwrap();
        // A series by fiscal quarter: four buckets, each snapshot at its last day.
        let r = Resolved::new(
            &cal,
            request(fy.clone(), None, Some(Grain::FiscalQuarter)),
            10,
        )
        .unwrap();
        let labels: Vec<&str> = r.buckets.iter().map(|b| b.label.as_str()).collect();
        assert_eq!(labels, ["FY2026-Q1", "FY2026-Q2", "FY2026-Q3", "FY2026-Q4"]);
        let days: Vec<String> = r.as_of_days.iter().map(|(_, d)| d.to_string()).collect();
        assert_eq!(
            days,
            ["2025-04-30", "2025-07-31", "2025-10-31", "2026-01-31"]
        );
        // No --as-of: T is the period's last day, T0 twelve months before.
        assert_eq!((r.t0, r.t), (d("2025-01-31"), d("2026-01-31")));
        // Los Angeles is UTC-8 on 2025-02-01 (standard time): the local day
        // starts at 08:00 UTC = 1,738,396,800 s after the epoch.
        assert_eq!(
            r.day_start_utc_micros(d("2025-02-01")),
            1_738_396_800_000_000
        );
        // And UTC-7 on 2025-07-01 (daylight time): 07:00 UTC.
        assert_eq!(
            r.day_start_utc_micros(d("2025-07-01")),
            1_751_353_200_000_000
        );

        // --as-of wins over the buckets; without a grain the period is its one bucket.
        let at = Resolved::new(&cal, request(fy.clone(), Some(d("2025-06-30")), None), 10).unwrap();
        assert_eq!(at.buckets.len(), 1);
        assert_eq!(at.as_of_days, [("2025-06-30".to_string(), d("2025-06-30"))]);
        assert_eq!((at.t0, at.t), (d("2024-06-30"), d("2025-06-30")));

        // FY2026 by day is 365 buckets: past a limit of 10, refused before any exists.
        let err = Resolved::new(&cal, request(fy, None, Some(Grain::Day)), 10).unwrap_err();
        assert!(err.to_string().contains("365 day buckets"), "{err}");
    }

    #[test]
    fn t0_is_twelve_months_earlier_clamped_to_the_month_end() {
        assert_eq!(t0_of(d("2025-06-30")), d("2024-06-30"));
        // 2023 has no Feb 29: the last day of that month.
        assert_eq!(t0_of(d("2024-02-29")), d("2023-02-28"));
        assert_eq!(t0_of(d("2025-03-31")), d("2024-03-31"));
    }
}
