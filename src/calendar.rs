//! Periods, grains and the reporting zone: the company calendar of canon.yaml.
//!
//! Every period is a half-open range of local dates `[from, to)`. Date columns
//! are compared with those dates as they are; timestamp columns with the UTC
//! instants at which those local days start in the reporting zone, so that a
//! filter is always a plain range on the raw column (Parquet statistics prune)
//! and daylight saving time is handled once, here.

use chrono::{Datelike, Days, Months, NaiveDate, TimeZone};
use chrono_tz::Tz;

use crate::error::{CanonError, Diagnostic, Result};
use crate::spec::load::SourceFile;
use crate::spec::{FiscalNaming, ProjectSpec};
use crate::yaml_path;

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

impl Period {
    /// What kind of period a label names: `day`, `month`, `quarter`,
    /// `year`, `fiscal_quarter`, `fiscal_year`, or `range` for explicit
    /// days. Read from the label, which the calendar writes in one form per
    /// kind, so a result served from the cache says it too. A publication
    /// may mix kinds (FY2026-Q1 beside 2025-03): a BI sum over its rows
    /// filters on this.
    pub fn kind_of_label(label: &str) -> &'static str {
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if label.contains("..") {
            return "range";
        }
        if let Some(rest) = label.strip_prefix("FY") {
            return if rest.contains("-Q") {
                "fiscal_quarter"
            } else {
                "fiscal_year"
            };
        }
        if label.contains("-Q") {
            return "quarter";
        }
        match label.split('-').collect::<Vec<_>>().as_slice() {
            [y] if digits(y) => "year",
            [y, m] if digits(y) && digits(m) => "month",
            [y, m, d] if digits(y) && digits(m) && digits(d) => "day",
            _ => "range",
        }
    }

    /// The same days, whatever the label (`FY2026-Q1` and
    /// `2025-02-01..2025-05-01`): published twice, a period's rows would be
    /// in every file twice.
    pub fn same_range(&self, other: &Period) -> bool {
        self.from == other.from && self.to == other.to
    }
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
    /// A calendar for unit tests elsewhere: `zone`, fiscal years starting
    /// in `fiscal_start_month`, named by the year they end.
    #[cfg(test)]
    pub(crate) fn for_tests(zone: Tz, fiscal_start_month: u32) -> Calendar {
        Calendar {
            zone,
            fiscal_start_month,
            naming: FiscalNaming::End,
        }
    }

    /// The calendar canon.yaml declares. A zone or fiscal month that is not
    /// one is a definition error located at its value in canon.yaml; both
    /// are reported when both are wrong.
    pub fn from_project(file: &SourceFile<ProjectSpec>) -> Result<Calendar, Vec<Diagnostic>> {
        let spec = &file.spec;
        let mut problems = Vec::new();
        let zone = match spec.reporting_zone.parse::<Tz>() {
            Ok(zone) => Some(zone),
            Err(_) => {
                problems.push(Diagnostic {
                    location: file.at(&yaml_path!["reporting_zone"]),
                    message: format!(
                        "reporting_zone `{}` is not an IANA time zone{}",
                        spec.reporting_zone,
                        zone_hint(&spec.reporting_zone)
                    ),
                });
                None
            }
        };
        if !(1..=12).contains(&spec.fiscal_year_start_month) {
            problems.push(Diagnostic {
                location: file.at(&yaml_path!["fiscal_year_start_month"]),
                message: format!(
                    "fiscal_year_start_month is the month number the fiscal year starts in, 1 (January) to 12 (December), not {}",
                    spec.fiscal_year_start_month
                ),
            });
        }
        match zone {
            Some(zone) if problems.is_empty() => Ok(Calendar {
                zone,
                fiscal_start_month: spec.fiscal_year_start_month,
                naming: spec.fiscal_year_named_by,
            }),
            _ => Err(problems),
        }
    }

    /// The UTC instant (microseconds since the epoch) at which local day `d`
    /// starts in the reporting zone.
    pub fn day_start_utc_micros(&self, d: NaiveDate) -> i64 {
        day_start_utc_micros(self.zone, d)
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
    /// `FY2026`, `FY2026-Q1`, `2025-03-14` (a day) and `2025-02-01..2025-05-01`,
    /// within the years 1900 to 2999 (as fiscal years are): a year `0000`
    /// was labelled `0`, and December 9999 ended in year 10000, which no
    /// published file can write as a date.
    pub fn parse_period(&self, text: &str) -> Result<Period> {
        let period = self.parse_any_period(text)?;
        let (first, end) = (
            NaiveDate::from_ymd_opt(1900, 1, 1).expect("a day"),
            NaiveDate::from_ymd_opt(3000, 1, 1).expect("a day"),
        );
        if period.from < first || period.to > end {
            return Err(CanonError::request(format!(
                "period `{text}` ({}..{}) lies outside the years canon reads, 1900 to 2999",
                period.from, period.to
            )));
        }
        Ok(period)
    }

    fn parse_any_period(&self, text: &str) -> Result<Period> {
        let bad = || {
            let why = unreadable_because(text.trim())
                .map(|r| format!("{r}; "))
                .unwrap_or_default();
            CanonError::request(format!(
                "cannot read period `{text}`: {why}use 2025-03, 2025, 2025-Q1, FY2026, FY2026-Q1, 2025-03-14 or 2025-02-01..2025-05-01"
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
        // A month, its number in one digit or two: a day is read either way
        // (2025-1-5), so `2025-3` is March, not an unreadable period.
        if let Some((y, m)) = t.split_once('-')
            && y.len() == 4
            && (1..=2).contains(&m.len())
            && y.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit())
        {
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

    /// Whether `bucket` (one of [`Calendar::buckets`]) is its grain's whole
    /// bucket, not cut to the request's first or last day.
    pub fn is_whole(&self, bucket: &Period, grain: Grain) -> bool {
        let start = self.bucket_start(bucket.from, grain);
        bucket.from == start && bucket.to == self.bucket_end(start, grain)
    }

    /// Whether `day` is the last day of its grain's bucket: a state taken
    /// there is the bucket's, one taken earlier is cut to the request.
    pub fn ends_bucket(&self, day: NaiveDate, grain: Grain) -> bool {
        day.succ_opt() == Some(self.bucket_end(self.bucket_start(day, grain), grain))
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

/// " (did you mean `America/Los_Angeles`?)" for a zone written in another
/// case or within two edits of a known one; else the usual form.
fn zone_hint(written: &str) -> String {
    let names: Vec<&str> = chrono_tz::TZ_VARIANTS.iter().map(|z| z.name()).collect();
    if let Some(name) = names
        .iter()
        .find(|n| n.eq_ignore_ascii_case(written.trim()))
    {
        return format!(" (did you mean `{name}`?)");
    }
    match crate::suggest::did_you_mean(written, &names) {
        Some(name) => format!(" (did you mean `{name}`?)"),
        None => " (write it as Area/City, e.g. America/Los_Angeles, Europe/Berlin or UTC)".into(),
    }
}

/// Why a text that looks like a day is not one ("2025-02 has no day 29"),
/// when that can be said: `--as-of` says it as `--period` does.
pub fn why_not_a_day(t: &str) -> Option<String> {
    unreadable_because(t.trim())
}

/// Why a period that looks like one of the forms is not one (a 13th
/// month, a fifth quarter, the 30th of February), when that can be said.
fn unreadable_because(t: &str) -> Option<String> {
    let number = |s: &str| s.parse::<i64>().ok();
    if let Some((a, b)) = t.split_once("..") {
        return [a, b]
            .into_iter()
            .find(|side| parse_date(side).is_none())
            .map(|side| match unreadable_because(side.trim()) {
                Some(why) => why,
                None => format!("`{}` is not a day (write 2025-02-01)", side.trim()),
            });
    }
    let fiscal = t.strip_prefix("FY").or_else(|| t.strip_prefix("fy"));
    if let Some(rest) = fiscal {
        let (year, quarter) = match rest.split_once(['-', '_']) {
            Some((y, q)) => (y, Some(q)),
            None => (rest, None),
        };
        if number(year).is_some_and(|y| !(1900..=2999).contains(&y)) {
            return Some(format!(
                "fiscal years are named FY1900 to FY2999, not FY{year}"
            ));
        }
        if let Some(q) = quarter.and_then(|q| q.strip_prefix(['Q', 'q']))
            && number(q).is_some_and(|n| !(1..=4).contains(&n))
        {
            return Some(format!("a fiscal year has quarters Q1 to Q4, not Q{q}"));
        }
        return None;
    }
    if let Some((y, q)) = t.split_once("-Q").or_else(|| t.split_once("-q")) {
        if number(y).is_some() && number(q).is_some_and(|n| !(1..=4).contains(&n)) {
            return Some(format!("a year has quarters Q1 to Q4, not Q{q}"));
        }
        return None;
    }
    let parts: Vec<&str> = t.split('-').collect();
    let numeric = |p: &[&str]| {
        p.iter()
            .all(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
    };
    match parts.as_slice() {
        [_, m] if numeric(&parts) && !(1..=12).contains(&number(m)?) => {
            Some(format!("there is no month {m}: months are 01 to 12"))
        }
        [_, m, _] if numeric(&parts) && !(1..=12).contains(&number(m)?) => {
            Some(format!("there is no month {m}: months are 01 to 12"))
        }
        [y, m, d] if numeric(&parts) => Some(format!("{y}-{m} has no day {d}")),
        _ => None,
    }
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()
}

fn parse_quarter(q: &str) -> Option<u32> {
    let n: u32 = q.strip_prefix(['Q', 'q'])?.parse().ok()?;
    (1..=4).contains(&n).then_some(n)
}

/// The UTC instant (microseconds since the epoch) at which local day `d`
/// starts in `zone`.
pub fn day_start_utc_micros(zone: Tz, d: NaiveDate) -> i64 {
    let midnight = d.and_hms_opt(0, 0, 0).expect("midnight exists");
    // A zone whose clocks jump over midnight has no local midnight that
    // day; the earliest instant of the local day is then the jump itself,
    // the first local time that exists. A zone that skipped a whole day
    // (Pacific/Apia skipped 2011-12-30) finds it on the next day: the
    // skipped day starts when the next one does, and holds no instant.
    for quarter_hours in 0..=(48 * 4) {
        let local = midnight + chrono::Duration::minutes(15 * quarter_hours);
        if let Some(t) = zone.from_local_datetime(&local).earliest() {
            return t.timestamp_micros();
        }
    }
    // No zone has skipped two days; if one did, its UTC midnight.
    midnight.and_utc().timestamp_micros()
}

/// The first period that repeats an earlier one's range, as (earlier,
/// later) indices: published twice, its rows would be in every file twice
/// and a reader that sums them would count them twice.
pub fn repeated_period(periods: &[Period]) -> Option<(usize, usize)> {
    periods.iter().enumerate().find_map(|(j, p)| {
        periods[..j]
            .iter()
            .position(|q| q.same_range(p))
            .map(|i| (i, j))
    })
}

/// The problems of canon.yaml's `publish.periods`, each located at its
/// entry: a period that does not read, or one that repeats another's range.
pub fn publish_periods_problems(
    file: &SourceFile<ProjectSpec>,
    calendar: &Calendar,
) -> Vec<Diagnostic> {
    let Some(publish) = &file.spec.publish else {
        return Vec::new();
    };
    let at = |i: usize| file.at(&yaml_path!["publish", "periods", i]);
    let mut problems = Vec::new();
    let mut read: Vec<Period> = Vec::new();
    for (i, text) in publish.periods.iter().enumerate() {
        match calendar.parse_period(text) {
            Ok(period) => {
                if let Some(earlier) = read.iter().find(|q| q.same_range(&period)) {
                    problems.push(Diagnostic {
                        location: at(i),
                        message: format!(
                            "publish period `{text}` repeats `{}` ({} .. {}): each period is published once",
                            earlier.label, period.from, period.to
                        ),
                    });
                }
                read.push(period);
            }
            Err(e) => problems.push(Diagnostic {
                location: at(i),
                message: format!("publish period: {e}"),
            }),
        }
    }
    problems
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
    fn periods_lie_within_the_years_1900_to_2999() {
        let c = acme();
        // Year 0000 was labelled `0`; December 9999 ended in year 10000.
        for text in [
            "0000",
            "1899-12",
            "3000",
            "9999-12",
            "2999-12-01..3000-01-02",
        ] {
            let e = c.parse_period(text).unwrap_err().to_string();
            assert!(
                e.contains("outside the years canon reads, 1900 to 2999"),
                "{text}: {e}"
            );
        }
        let last = c.parse_period("2999-12").unwrap();
        assert_eq!((last.from, last.to), (d("2999-12-01"), d("3000-01-01")));
        assert_eq!(c.parse_period("1900").unwrap().label, "1900");
    }

    #[test]
    fn a_label_says_its_kind_of_period() {
        let cal = acme();
        for (text, kind) in [
            ("2025-03-14", "day"),
            ("2025-03", "month"),
            ("2025-Q1", "quarter"),
            ("2025", "year"),
            ("FY2026-Q1", "fiscal_quarter"),
            ("FY2026", "fiscal_year"),
            ("2025-02-01..2025-05-01", "range"),
        ] {
            let period = cal.parse_period(text).unwrap();
            assert_eq!(Period::kind_of_label(&period.label), kind, "{text}");
        }
        // Each grain's buckets are labelled as their kind.
        let year = cal.parse_period("FY2026").unwrap();
        for (grain, kind) in [
            (Grain::Day, "day"),
            (Grain::Month, "month"),
            (Grain::Quarter, "quarter"),
            (Grain::Year, "year"),
            (Grain::FiscalQuarter, "fiscal_quarter"),
            (Grain::FiscalYear, "fiscal_year"),
        ] {
            for b in cal.buckets(&year, grain) {
                assert_eq!(Period::kind_of_label(&b.label), kind, "{}", b.label);
            }
        }
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
        // One digit or two, as a day's month is read (2025-1-5 is a day).
        assert_eq!(c.parse_period("2025-3").unwrap().label, "2025-03");
        assert_eq!(c.parse_period("2025-1-5").unwrap().label, "2025-01-05");
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
    fn an_unreadable_period_says_why_when_it_can() {
        let c = acme();
        let why = |p: &str| c.parse_period(p).unwrap_err().to_string();
        assert!(
            why("2025-13").contains("there is no month 13"),
            "{}",
            why("2025-13")
        );
        assert!(why("2025-00-10").contains("there is no month 00"));
        assert!(why("2025-02-30").contains("2025-02 has no day 30"));
        assert!(why("FY2026-Q5").contains("quarters Q1 to Q4, not Q5"));
        assert!(why("2025-Q0").contains("quarters Q1 to Q4, not Q0"));
        assert!(why("FY99999").contains("FY1900 to FY2999"));
        assert!(why("2025-01-01..2025-02-31").contains("2025-02 has no day 31"));
        assert!(why("2025-01-01..soon").contains("`soon` is not a day"));
        // Nothing to say beyond the forms.
        assert!(why("yesterday").contains("cannot read period `yesterday`: use 2025-03"));
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
    fn a_day_a_zone_skipped_starts_when_the_next_does() {
        // Samoa went from 2011-12-29 24:00 (UTC−10) straight to 2011-12-31
        // 00:00 (UTC+14): both are 2011-12-30 10:00 UTC, so the skipped
        // day 2011-12-30 starts and ends at that instant (it used to panic).
        let apia: Tz = "Pacific/Apia".parse().unwrap();
        let ten_utc = 1_325_239_200_000_000; // 2011-12-30T10:00:00Z
        assert_eq!(day_start_utc_micros(apia, d("2011-12-30")), ten_utc);
        assert_eq!(day_start_utc_micros(apia, d("2011-12-31")), ten_utc);
        // And a gap that swallows midnight (Santiago, 2022-09-11: 00:00 →
        // 01:00, UTC−4 → UTC−3) starts the day at the jump, 04:00 UTC.
        let santiago: Tz = "America/Santiago".parse().unwrap();
        assert_eq!(
            day_start_utc_micros(santiago, d("2022-09-11")),
            1_662_868_800_000_000
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
