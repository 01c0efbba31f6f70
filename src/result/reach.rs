//! How far the data reaches, and whether a result's period is over by then.
//!
//! The sample's extracts were taken on 2026-01-02; FY2026-Q4 runs to
//! 2026-02-01. Its bookings (8,902,454.89) are the quarter's bookings *so
//! far*, and ARR "as of 2026-01-31" is that day's ARR as the data of
//! 2026-01-02 schedules it (charges known to end in January are out of it;
//! whatever changed after the extract is not in it). Both were given, and published, exactly as a closed quarter's
//! numbers are: nothing told a reader or a BI tool that a month was still to
//! come. A number to date is a useful number (quarter-to-date bookings are
//! what a sales meeting asks for) but not the period's, so canon gives it
//! and marks it: the result says `complete: false` and how far the data
//! reaches (`data_through`), each series row whose bucket runs past that
//! says `complete: false`, the table says "to date", and a publication
//! carries the mark in its manifest and in a `complete` column of its files.
//!
//! The data reaches the earliest of now and the last sync of every table
//! the result read (their freshness checks). A table whose freshness
//! column holds no time has its freshness check at error, which blocks the
//! result unless the run lets it through by name. A table whose model
//! declares no freshness column at all has no check and does not bound the
//! reach: only `now` does (every extract of the spec carries
//! `_fivetran_synced`; a model that drops it gives up this mark as it
//! gives up freshness).
//!
//! Judged at every run, cached results too: the same quarter is to date
//! today and complete once the data has passed its end.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;

use super::GovernedResult;

/// The instant the data of `quality`'s tables reaches: the earliest of
/// `now` and every freshness check's latest sync.
pub fn data_reach(now: DateTime<Utc>, quality: &[serde_json::Value]) -> DateTime<Utc> {
    quality
        .iter()
        .filter_map(crate::quality::synced)
        .fold(now, |reach, synced| reach.min(synced))
}

/// Marks `result` and each of its rows complete or to date against
/// `reach`: a period (or an as-of day, or a row's bucket) is complete when
/// the data reaches its end, the start of its day `to` in `zone`.
///
/// `window` is a conversion's window (its longest, 0 without one): a
/// conversion's count over a bucket is final only once the window after the
/// bucket's end has passed too, so a series let through an open window
/// (`--allow conversion_window:…`) marks each bucket whose window is still
/// open, not only the last.
pub fn judge(result: &mut GovernedResult, reach: DateTime<Utc>, zone: Tz, window: Duration) {
    let over = |to: NaiveDate| over(zone, to, reach - window);
    result.complete = over(result.request.period.to);
    result.data_through = (!result.complete).then(|| {
        reach
            .with_timezone(&zone)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
    });
    for row in &mut result.rows {
        row.complete = over(row.period_end);
    }
}

/// The earliest of several results' `data_through` (instants, compared as
/// instants: two offsets of one zone do not sort as text).
pub fn earliest<'a>(throughs: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    throughs
        .filter_map(|t| DateTime::parse_from_rfc3339(t).ok().map(|at| (at, t)))
        .min_by_key(|(at, _)| *at)
        .map(|(_, t)| t)
}

/// Whether data reaching `reach` has passed the start of local day `to`
/// (a period's end, excluded): a sync at that very instant has.
fn over(zone: Tz, to: NaiveDate, reach: DateTime<Utc>) -> bool {
    DateTime::from_timestamp_micros(crate::calendar::day_start_utc_micros(zone, to))
        .is_some_and(|end| end <= reach)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sync(table: &str, at: &str) -> serde_json::Value {
        serde_json::json!({"check": "freshness", "table": table, "status": "pass", "latest_sync": at})
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_period_is_over_once_the_data_reaches_its_end_in_the_reporting_zone() {
        let la: Tz = "America/Los_Angeles".parse().unwrap();
        let jan_2 = NaiveDate::from_ymd_opt(2026, 1, 2).unwrap();
        // 2026-01-02 00:00 in Los Angeles (UTC-8 in January) is 08:00 UTC.
        assert!(over(la, jan_2, at("2026-01-02T08:00:00Z")));
        assert!(!over(la, jan_2, at("2026-01-02T07:59:59Z")));
        // Read in UTC the day would have ended eight hours earlier.
        assert!(over(Tz::UTC, jan_2, at("2026-01-02T00:00:00Z")));
        assert!(!over(la, jan_2, at("2026-01-02T00:00:00Z")));
        // Summer time: 2025-07-01 00:00 PDT (UTC-7) is 07:00 UTC.
        let jul_1 = NaiveDate::from_ymd_opt(2025, 7, 1).unwrap();
        assert!(over(la, jul_1, at("2025-07-01T07:00:00Z")));
        assert!(!over(la, jul_1, at("2025-07-01T06:59:59Z")));
    }

    #[test]
    fn the_earliest_reach_is_compared_as_instants() {
        // 01:30 at UTC-7 is 08:30Z; 01:00 at UTC-8 is 09:00Z: as text the
        // second sorts first.
        let throughs = ["2025-11-02T01:30:00-07:00", "2025-11-02T01:00:00-08:00"];
        assert_eq!(
            earliest(throughs.into_iter()),
            Some("2025-11-02T01:30:00-07:00")
        );
        assert_eq!(earliest(std::iter::empty()), None);
    }

    #[test]
    fn the_data_reaches_the_earliest_sync_or_now() {
        let now = at("2026-01-02T08:00:00Z");
        let quality = vec![
            sync("crm/opportunity", "2026-01-01T23:00:00Z"),
            sync("crm/account", "2026-01-01T21:30:00Z"),
            serde_json::json!({"check": "uniqueness", "table": "crm/account", "status": "pass"}),
        ];
        assert_eq!(data_reach(now, &quality), at("2026-01-01T21:30:00Z"));
        // No sync recorded: now bounds it.
        assert_eq!(data_reach(now, &[]), now);
        // A sync later than now (a clock skew the freshness check reports)
        // does not carry the reach past now.
        assert_eq!(
            data_reach(now, &[sync("crm/account", "2026-01-03T00:00:00Z")]),
            now
        );
    }
}
