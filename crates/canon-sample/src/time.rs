//! Calendar helpers: dates as days since 1970-01-01 (Arrow Date32), instants
//! as microseconds since the epoch (Arrow Timestamp(µs, UTC)), and the
//! America/Los_Angeles offset the simulated company works in.

use chrono::{Datelike, NaiveDate};

pub const MINUTE_US: i64 = 60_000_000;
pub const HOUR_US: i64 = 60 * MINUTE_US;
pub const DAY_US: i64 = 24 * HOUR_US;

/// Days since 1970-01-01 of a calendar date.
pub fn days(y: i32, m: u32, d: u32) -> i32 {
    let date = NaiveDate::from_ymd_opt(y, m, d).expect("valid calendar date");
    (date - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32
}

pub fn to_date(day: i32) -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch") + chrono::TimeDelta::days(day as i64)
}

pub fn ymd(day: i32) -> (i32, u32, u32) {
    let d = to_date(day);
    (d.year(), d.month(), d.day())
}

/// `y * 12 + (m - 1)`: a month counter.
pub fn month_index(day: i32) -> i32 {
    let (y, m, _) = ymd(day);
    y * 12 + m as i32 - 1
}

pub fn month_start_of_index(mi: i32) -> i32 {
    days(mi.div_euclid(12), mi.rem_euclid(12) as u32 + 1, 1)
}

pub fn month_start(day: i32) -> i32 {
    month_start_of_index(month_index(day))
}

/// The same day of the month `n` months later, clamped to the month's end.
pub fn add_months(day: i32, n: i32) -> i32 {
    let (y, m, d) = ymd(day);
    let mi = y * 12 + m as i32 - 1 + n;
    let (ny, nm) = (mi.div_euclid(12), mi.rem_euclid(12) as u32 + 1);
    let last = days_in_month(ny, nm);
    days(ny, nm, d.min(last))
}

pub fn days_in_month(y: i32, m: u32) -> u32 {
    let next = if m == 12 {
        days(y + 1, 1, 1)
    } else {
        days(y, m + 1, 1)
    };
    (next - days(y, m, 1)) as u32
}

/// 0 = Monday .. 6 = Sunday.
pub fn weekday(day: i32) -> i32 {
    (day + 3).rem_euclid(7)
}

/// Microseconds since the epoch of midnight UTC starting `day`.
pub fn day_start_utc(day: i32) -> i64 {
    day as i64 * DAY_US
}

/// Parse `YYYY-MM-DDTHH:MM:SSZ` (fixed layout) into microseconds.
pub fn ts_utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
    day_start_utc(days(y, mo, d))
        + h as i64 * HOUR_US
        + mi as i64 * MINUTE_US
        + s as i64 * 1_000_000
}

/// US daylight saving (since 2007): from the second Sunday of March at 02:00
/// local standard time (10:00 UTC) to the first Sunday of November at 02:00
/// local daylight time (09:00 UTC).
fn dst_bounds(year: i32) -> (i64, i64) {
    let march1 = days(year, 3, 1);
    let first_sunday_march = march1 + (6 - weekday(march1)).rem_euclid(7);
    let second_sunday_march = first_sunday_march + 7;
    let nov1 = days(year, 11, 1);
    let first_sunday_nov = nov1 + (6 - weekday(nov1)).rem_euclid(7);
    (
        day_start_utc(second_sunday_march) + 10 * HOUR_US,
        day_start_utc(first_sunday_nov) + 9 * HOUR_US,
    )
}

const DST_FIRST_YEAR: i32 = 1990;
const DST_YEARS: usize = 80;

/// Daylight-saving bounds per year, computed once.
fn dst_table() -> &'static [(i64, i64, i64); DST_YEARS] {
    static TABLE: std::sync::OnceLock<[(i64, i64, i64); DST_YEARS]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = [(0i64, 0i64, 0i64); DST_YEARS];
        for (i, slot) in t.iter_mut().enumerate() {
            let y = DST_FIRST_YEAR + i as i32;
            let (start, end) = dst_bounds(y);
            *slot = (day_start_utc(days(y, 1, 1)), start, end);
        }
        t
    })
}

/// The offset of America/Los_Angeles from UTC at an instant (−7 h or −8 h).
pub fn la_offset(ts: i64) -> i64 {
    let table = dst_table();
    // Estimate the year from the instant, then correct by the table.
    let approx = ((ts.div_euclid(DAY_US) as f64 / 365.2425) as i32 + 1970 - DST_FIRST_YEAR)
        .clamp(0, DST_YEARS as i32 - 1) as usize;
    let mut i = approx;
    while i > 0 && ts < table[i].0 {
        i -= 1;
    }
    while i + 1 < DST_YEARS && ts >= table[i + 1].0 {
        i += 1;
    }
    let (_, start, end) = table[i];
    if ts >= start && ts < end {
        -7 * HOUR_US
    } else {
        -8 * HOUR_US
    }
}

/// The calendar day in Los Angeles on which an instant falls.
pub fn la_day(ts: i64) -> i32 {
    (ts + la_offset(ts)).div_euclid(DAY_US) as i32
}

/// The instant of a Los Angeles wall-clock time (minutes after local midnight).
pub fn la_time(day: i32, minute_of_day: i64) -> i64 {
    let local = day_start_utc(day) + minute_of_day * MINUTE_US;
    let standard = local + 8 * HOUR_US;
    if la_offset(standard - HOUR_US) == -7 * HOUR_US {
        standard - HOUR_US
    } else {
        standard
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use chrono_tz::America::Los_Angeles;

    #[test]
    fn la_offset_matches_tzdb() {
        let mut ts = ts_utc(2022, 1, 1, 0, 30, 0);
        let end = ts_utc(2027, 1, 1, 0, 0, 0);
        while ts < end {
            let utc = Utc.timestamp_micros(ts).unwrap();
            let la = utc.with_timezone(&Los_Angeles);
            let expect = la.date_naive() - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
            assert_eq!(la_day(ts) as i64, expect.num_days(), "at {utc}");
            ts += 7 * HOUR_US + 13 * MINUTE_US;
        }
    }

    #[test]
    fn la_wall_clock() {
        // 2025-01-31 21:00 PST = 2025-02-01T05:00Z
        assert_eq!(
            la_time(days(2025, 1, 31), 21 * 60),
            ts_utc(2025, 2, 1, 5, 0, 0)
        );
        // 2025-07-01 00:00 PDT = 2025-07-01T07:00Z
        assert_eq!(la_time(days(2025, 7, 1), 0), ts_utc(2025, 7, 1, 7, 0, 0));
        assert_eq!(la_day(ts_utc(2025, 2, 1, 5, 0, 0)), days(2025, 1, 31));
    }

    #[test]
    fn months() {
        assert_eq!(add_months(days(2024, 1, 31), 1), days(2024, 2, 29));
        assert_eq!(month_start(days(2025, 3, 17)), days(2025, 3, 1));
        assert_eq!(weekday(days(2025, 6, 2)), 0);
        assert_eq!(ymd(days(2025, 12, 31)), (2025, 12, 31));
    }
}
