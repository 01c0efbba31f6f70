//! Periods, grains and the reporting zone: the company calendar of canon.yaml.
//!
//! Every period is a half-open range of local dates `[from, to)`. Date columns
//! are compared with those dates as they are; timestamp columns with the UTC
//! instants at which those local days start in the reporting zone, so that a
//! filter is always a plain range on the raw column (Parquet statistics prune)
//! and daylight saving time is handled once, here.

use chrono::{Datelike, Days, Months, NaiveDate, TimeZone};
use chrono_tz::Tz;

use crate::error::{CanonError, Result};
use crate::spec::{FiscalNaming, ProjectSpec};

/// The fiscal calendar and reporting zone every metric is computed under.
#[derive(Debug, Clone)]
pub struct Calendar {
    pub zone: Tz,
    pub fiscal_start_month: u32,
    pub naming: FiscalNaming,
}

/// A half-open range of local dates with the name it is reported under.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Period {
    pub label: String,
    pub from: NaiveDate,
    /// Exclusive.
    pub to: NaiveDate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grain {
    Day,
    Month,
    Quarter,
    Year,
    FiscalQuarter,
    FiscalYear,
}

impl Grain {
    pub fn parse(s: &str) -> Result<Grain> {
        Ok(match s {
            "day" => Grain::Day,
            "month" => Grain::Month,
            "quarter" => Grain::Quarter,
            "year" => Grain::Year,
            "fiscal_quarter" => Grain::FiscalQuarter,
            "fiscal_year" => Grain::FiscalYear,
            other => {
                return Err(CanonError::request(format!(
                    "unknown grain `{other}`: use day, month, quarter, year, fiscal_quarter or fiscal_year"
                )));
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Grain::Day => "day",
            Grain::Month => "month",
            Grain::Quarter => "quarter",
            Grain::Year => "year",
            Grain::FiscalQuarter => "fiscal_quarter",
            Grain::FiscalYear => "fiscal_year",
        }
    }
}

impl Calendar {
    pub fn from_project(spec: &ProjectSpec) -> Result<Calendar> {
        let zone: Tz = spec.reporting_zone.parse().map_err(|_| {
            CanonError::request(format!(
                "canon.yaml: reporting_zone `{}` is not an IANA time zone",
                spec.reporting_zone
            ))
        })?;
        if !(1..=12).contains(&spec.fiscal_year_start_month) {
            return Err(CanonError::request(format!(
                "canon.yaml: fiscal_year_start_month must be 1..12, not {}",
                spec.fiscal_year_start_month
            )));
        }
        Ok(Calendar {
            zone,
            fiscal_start_month: spec.fiscal_year_start_month,
            naming: spec.fiscal_year_named_by,
        })
    }

    /// The UTC instant (microseconds since the epoch) at which local day `d`
    /// starts in the reporting zone.
    pub fn day_start_utc_micros(&self, d: NaiveDate) -> i64 {
        let midnight = d.and_hms_opt(0, 0, 0).expect("midnight exists");
        // A zone whose clocks jump over midnight has no local midnight that
        // day; the earliest instant of the local day is then the jump itself.
        let instant = match self.zone.from_local_datetime(&midnight) {
            chrono::LocalResult::Single(t) => t,
            chrono::LocalResult::Ambiguous(earliest, _) => earliest,
            chrono::LocalResult::None => self
                .zone
                .from_local_datetime(&(midnight + chrono::Duration::hours(1)))
                .earliest()
                .expect("an hour after a gap exists"),
        };
        instant.timestamp_micros()
    }

    /// The fiscal year a date belongs to, by the project's naming rule.
    pub fn fiscal_year(&self, d: NaiveDate) -> i32 {
        let starts_this_year = d.month() >= self.fiscal_start_month;
        match (self.naming, self.fiscal_start_month) {
            (_, 1) => d.year(),
            (FiscalNaming::End, _) => d.year() + i32::from(starts_this_year),
            (FiscalNaming::Start, _) => d.year() - i32::from(!starts_this_year),
        }
    }

    /// First day of fiscal year `fy`.
    pub fn fiscal_year_start(&self, fy: i32) -> NaiveDate {
        let year = match (self.naming, self.fiscal_start_month) {
            (_, 1) => fy,
            (FiscalNaming::End, _) => fy - 1,
            (FiscalNaming::Start, _) => fy,
        };
        NaiveDate::from_ymd_opt(year, self.fiscal_start_month, 1).expect("valid month")
    }

    fn fiscal_quarter(&self, d: NaiveDate) -> u32 {
        (d.month() + 12 - self.fiscal_start_month) % 12 / 3 + 1
    }

    /// Parses the period forms analysts type: `2025-03`, `2025`, `2025-Q1`,
    /// `FY2026`, `FY2026-Q1`, `2025-03-14` (a day) and `2025-02-01..2025-05-01`.
    pub fn parse_period(&self, text: &str) -> Result<Period> {
        let bad = || {
            CanonError::request(format!(
                "cannot read period `{text}`: use 2025-03, 2025, 2025-Q1, FY2026, FY2026-Q1, 2025-03-14 or 2025-02-01..2025-05-01"
            ))
        };
        let t = text.trim();
        if let Some((a, b)) = t.split_once("..") {
            let from = parse_date(a).ok_or_else(bad)?;
            let to = parse_date(b).ok_or_else(bad)?;
            return self.range(from, to);
        }
        if let Some(rest) = t.strip_prefix("FY").or_else(|| t.strip_prefix("fy")) {
            let (year, quarter) = match rest.split_once(['-', '_']) {
                Some((y, q)) => (y, Some(q)),
                None => (rest, None),
            };
            let fy: i32 = year.parse().map_err(|_| bad())?;
            if !(1900..=2999).contains(&fy) {
                return Err(bad());
            }
            let start = self.fiscal_year_start(fy);
            return match quarter {
                None => Ok(self.labeled(start, Grain::FiscalYear)),
                Some(q) => {
                    let q = parse_quarter(q).ok_or_else(bad)?;
                    let from = start + Months::new(3 * (q - 1));
                    Ok(self.labeled(from, Grain::FiscalQuarter))
                }
            };
        }
        if let Some((y, q)) = t.split_once("-Q").or_else(|| t.split_once("-q")) {
            let year: i32 = y.parse().map_err(|_| bad())?;
            let q = parse_quarter(&format!("Q{q}")).ok_or_else(bad)?;
            let from = NaiveDate::from_ymd_opt(year, 3 * (q - 1) + 1, 1).ok_or_else(bad)?;
            return Ok(self.labeled(from, Grain::Quarter));
        }
        if let Some(d) = parse_date(t) {
            return Ok(self.labeled(d, Grain::Day));
        }
        if t.len() == 7 {
            let d = NaiveDate::parse_from_str(&format!("{t}-01"), "%Y-%m-%d").map_err(|_| bad())?;
            return Ok(self.labeled(d, Grain::Month));
        }
        if t.len() == 4 {
            let year: i32 = t.parse().map_err(|_| bad())?;
            let d = NaiveDate::from_ymd_opt(year, 1, 1).ok_or_else(bad)?;
            return Ok(self.labeled(d, Grain::Year));
        }
        Err(bad())
    }

    /// An explicit `[from, to)` range.
    pub fn range(&self, from: NaiveDate, to: NaiveDate) -> Result<Period> {
        if to <= from {
            return Err(CanonError::request(format!(
                "empty period: {from}..{to} (the end is exclusive and must come after the start)"
            )));
        }
        Ok(Period {
            label: format!("{from}..{to}"),
            from,
            to,
        })
    }

    /// The grain bucket that starts at or contains `d`.
    fn labeled(&self, d: NaiveDate, grain: Grain) -> Period {
        let from = self.bucket_start(d, grain);
        let to = self.bucket_end(from, grain);
        Period {
            label: self.label(from, grain),
            from,
            to,
        }
    }

    fn bucket_start(&self, d: NaiveDate, grain: Grain) -> NaiveDate {
        let first_of_month = d.with_day(1).expect("day 1 exists");
        match grain {
            Grain::Day => d,
            Grain::Month => first_of_month,
            Grain::Quarter => first_of_month
                .with_month(3 * ((d.month() - 1) / 3) + 1)
                .expect("quarter month exists"),
            Grain::Year => NaiveDate::from_ymd_opt(d.year(), 1, 1).expect("1 Jan exists"),
            Grain::FiscalYear => self.fiscal_year_start(self.fiscal_year(d)),
            Grain::FiscalQuarter => {
                self.fiscal_year_start(self.fiscal_year(d))
                    + Months::new(3 * (self.fiscal_quarter(d) - 1))
            }
        }
    }

    fn bucket_end(&self, start: NaiveDate, grain: Grain) -> NaiveDate {
        match grain {
            Grain::Day => start + Days::new(1),
            Grain::Month => start + Months::new(1),
            Grain::Quarter | Grain::FiscalQuarter => start + Months::new(3),
            Grain::Year | Grain::FiscalYear => start + Months::new(12),
        }
    }

    fn label(&self, start: NaiveDate, grain: Grain) -> String {
        match grain {
            Grain::Day => start.to_string(),
            Grain::Month => start.format("%Y-%m").to_string(),
            Grain::Quarter => format!("{}-Q{}", start.year(), (start.month() - 1) / 3 + 1),
            Grain::Year => start.year().to_string(),
            Grain::FiscalQuarter => format!(
                "FY{}-Q{}",
                self.fiscal_year(start),
                self.fiscal_quarter(start)
            ),
            Grain::FiscalYear => format!("FY{}", self.fiscal_year(start)),
        }
    }

    /// How many buckets [`Calendar::buckets`] would make, computed from the
    /// bounds alone: a request is sized (and refused when too large) before
    /// any bucket list exists, so `0001-01-01..9999-12-31` by day costs
    /// nothing to refuse.
    pub fn bucket_count(&self, period: &Period, grain: Grain) -> u64 {
        let Some(last) = period.to.pred_opt().filter(|l| *l >= period.from) else {
            return 0;
        };
        // Month-based grains: the index of the bucket holding a day is its
        // month counted from year 0, less the grain's first month, divided
        // by the grain's length in months (floored).
        let (months, offset) = match grain {
            Grain::Day => return (period.to - period.from).num_days().max(0) as u64,
            Grain::Month => (1, 0),
            Grain::Quarter => (3, 0),
            Grain::Year => (12, 0),
            Grain::FiscalQuarter => (3, i64::from(self.fiscal_start_month) - 1),
            Grain::FiscalYear => (12, i64::from(self.fiscal_start_month) - 1),
        };
        let index = |d: NaiveDate| {
            (i64::from(d.year()) * 12 + i64::from(d.month0()) - offset).div_euclid(months)
        };
        (index(last) - index(period.from) + 1) as u64
    }

    /// Splits `period` into grain buckets. The first and last bucket are cut
    /// to the period, so the buckets always add up to the period exactly.
    pub fn buckets(&self, period: &Period, grain: Grain) -> Vec<Period> {
        let mut out = Vec::new();
        let mut start = self.bucket_start(period.from, grain);
        while start < period.to {
            let end = self.bucket_end(start, grain);
            out.push(Period {
                label: self.label(start, grain),
                from: start.max(period.from),
                to: end.min(period.to),
            });
            start = end;
        }
        out
    }
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()
}

fn parse_quarter(q: &str) -> Option<u32> {
    let n: u32 = q.strip_prefix(['Q', 'q'])?.parse().ok()?;
    (1..=4).contains(&n).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acme() -> Calendar {
        Calendar {
            zone: chrono_tz::America::Los_Angeles,
            fiscal_start_month: 2,
            naming: FiscalNaming::End,
        }
    }

    fn d(s: &str) -> NaiveDate {
        parse_date(s).unwrap()
    }

    #[test]
    fn fiscal_periods_are_named_by_the_year_they_end() {
        let c = acme();
        // FY2026 = 2025-02-01 .. 2026-01-31 (end exclusive 2026-02-01).
        let fy = c.parse_period("FY2026").unwrap();
        assert_eq!((fy.from, fy.to), (d("2025-02-01"), d("2026-02-01")));
        // Q1 = Feb..Apr 2025; Q4 = Nov 2025 .. Jan 2026.
        let q1 = c.parse_period("FY2026-Q1").unwrap();
        assert_eq!((q1.from, q1.to), (d("2025-02-01"), d("2025-05-01")));
        let q4 = c.parse_period("FY2026-Q4").unwrap();
        assert_eq!((q4.from, q4.to), (d("2025-11-01"), d("2026-02-01")));
        assert_eq!(c.fiscal_year(d("2025-01-31")), 2025);
        assert_eq!(c.fiscal_year(d("2025-02-01")), 2026);
    }

    #[test]
    fn calendar_periods_and_ranges_parse() {
        let c = acme();
        let m = c.parse_period("2025-03").unwrap();
        assert_eq!(
            (m.from, m.to, m.label.as_str()),
            (d("2025-03-01"), d("2025-04-01"), "2025-03")
        );
        let y = c.parse_period("2025").unwrap();
        assert_eq!((y.from, y.to), (d("2025-01-01"), d("2026-01-01")));
        let r = c.parse_period("2025-02-01..2025-05-01").unwrap();
        assert_eq!((r.from, r.to), (d("2025-02-01"), d("2025-05-01")));
        let q = c.parse_period("2025-Q2").unwrap();
        assert_eq!((q.from, q.to), (d("2025-04-01"), d("2025-07-01")));
        for bad in [
            "2025-13",
            "FY26x",
            "yesterday",
            "2025-05-01..2025-02-01",
            "FY2026-Q5",
        ] {
            assert!(c.parse_period(bad).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn los_angeles_day_starts_in_utc() {
        let c = acme();
        // 2025-02-01 00:00 PST = 08:00 UTC; 2025-07-01 00:00 PDT = 07:00 UTC.
        assert_eq!(
            c.day_start_utc_micros(d("2025-02-01")),
            1_738_396_800_000_000
        );
        assert_eq!(
            c.day_start_utc_micros(d("2025-07-01")),
            1_751_353_200_000_000
        );
    }

    #[test]
    fn bucket_count_agrees_with_buckets() {
        let grains = [
            Grain::Day,
            Grain::Month,
            Grain::Quarter,
            Grain::Year,
            Grain::FiscalQuarter,
            Grain::FiscalYear,
        ];
        for cal in [
            acme(),
            Calendar {
                fiscal_start_month: 1,
                ..acme()
            },
            Calendar {
                fiscal_start_month: 12,
                naming: FiscalNaming::Start,
                ..acme()
            },
        ] {
            for (from, to) in [
                ("2025-01-15", "2025-04-10"),
                ("2025-01-31", "2025-02-01"),
                ("2025-02-01", "2025-02-02"),
                ("2024-12-31", "2026-02-01"),
                ("2023-11-30", "2031-03-02"),
                ("0001-01-01", "0003-01-01"),
                ("9997-06-15", "9999-12-31"),
            ] {
                let p = cal.range(d(from), d(to)).unwrap();
                for g in grains {
                    assert_eq!(
                        cal.bucket_count(&p, g),
                        cal.buckets(&p, g).len() as u64,
                        "{from}..{to} by {} (fiscal start {})",
                        g.name(),
                        cal.fiscal_start_month
                    );
                }
            }
        }
        // The whole calendar by day, counted without building a list:
        // 0001-01-01..9999-12-31 (end exclusive) is the years 1..9998 (9,998 ×
        // 365 = 3,649,270 days plus 2,424 leap days: 9,998/4 = 2,499, less 99
        // centuries, plus 24 of them divisible by 400) and 364 days of 9999:
        // 3,649,270 + 2,424 + 364 = 3,652,058.
        let all = acme().range(d("0001-01-01"), d("9999-12-31")).unwrap();
        assert_eq!(acme().bucket_count(&all, Grain::Day), 3_652_058);
        // Months: 9,998 whole years + Jan..Dec of 9999 = 119,988; years 9,999.
        assert_eq!(acme().bucket_count(&all, Grain::Month), 119_988);
        assert_eq!(acme().bucket_count(&all, Grain::Year), 9_999);
    }

    #[test]
    fn buckets_cover_the_period_exactly() {
        let c = acme();
        let p = c.range(d("2025-01-15"), d("2025-04-10")).unwrap();
        let months = c.buckets(&p, Grain::Month);
        let labels: Vec<_> = months.iter().map(|b| b.label.as_str()).collect();
        assert_eq!(labels, ["2025-01", "2025-02", "2025-03", "2025-04"]);
        assert_eq!(months[0].from, d("2025-01-15"));
        assert_eq!(months[3].to, d("2025-04-10"));
        let fq = c.buckets(&c.parse_period("2025").unwrap(), Grain::FiscalQuarter);
        let labels: Vec<_> = fq.iter().map(|b| b.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "FY2025-Q4",
                "FY2026-Q1",
                "FY2026-Q2",
                "FY2026-Q3",
                "FY2026-Q4"
            ]
        );
    }
}
