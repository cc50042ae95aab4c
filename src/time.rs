//! Calendar arithmetic in the job's time zone: the as-of cutoff instant, local dates, period
//! starts and period completeness.
//!
//! Every timestamp inside cxmetrics is `Datetime(us, "UTC")` (the input reader normalises them);
//! every calendar value is a local `Date`. Days are calendar days in the zone, never 24-hour
//! spans, so a DST change does not move anything to a neighbouring day.

use chrono::{Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone as _};
use chrono_tz::Tz;
use polars::prelude::*;

use crate::config::Period;

/// The job's clock settings, handed to every pipeline.
#[derive(Debug, Clone)]
pub struct Calendar {
    pub as_of: NaiveDate,
    pub timezone: String,
    tz: Tz,
}

impl Calendar {
    /// `timezone` must be a valid IANA name (checked by `validate`).
    pub fn new(as_of: NaiveDate, timezone: &str) -> Result<Self, String> {
        let tz: Tz = timezone
            .parse()
            .map_err(|_| format!("unknown time zone `{timezone}`"))?;
        Ok(Calendar {
            as_of,
            timezone: timezone.to_string(),
            tz,
        })
    }

    /// Microseconds since the epoch of the first instant *after* `as_of` in the zone, i.e. local
    /// midnight starting `as_of + 1`. Data at or after it does not exist yet for this run.
    pub fn cutoff_us(&self) -> i64 {
        local_midnight_us(self.tz, self.as_of + Duration::days(1))
    }

    /// Local calendar date of a UTC timestamp expression (`Datetime(us)`), as a `Date`.
    pub fn local_date(&self, ts: Expr) -> Expr {
        // polars' convert_time_zone asks chrono-tz about every row; with a few transitions a
        // year, looking the offset up in a table built once per column is many times faster.
        let tz = self.tz;
        ts.map(
            move |c: Column| local_dates(tz, &c),
            |_, f: &Field| Ok(Field::new(f.name().clone(), DataType::Date)),
        )
    }

    /// `complete` flag: the whole period starting at `start` lies at or before `as_of`.
    pub fn period_complete(&self, start: Expr, period: Period) -> Expr {
        start
            .dt()
            .offset_by(lit(period.every()))
            .lt_eq(date_lit(self.as_of + Duration::days(1)))
    }

    /// First day of the period containing `as_of`.
    pub fn as_of_period_start(&self, period: Period) -> NaiveDate {
        period_start_of(self.as_of, period)
    }
}

/// Microseconds in a (24-hour) day.
pub const DAY_US: i64 = 86_400_000_000;

/// The supported range of instants: from 1900-01-01T00:00:00Z (inclusive) to
/// 2200-01-01T00:00:00Z (exclusive). Every timestamp is converted to microseconds and then to
/// local days with a table of the zone's offsets over the column's span; a value near the ends
/// of a 64-bit count (a corrupt or sentinel timestamp) would overflow that arithmetic. A row
/// with a timestamp before the range is rejected (`<column> out of range`); later ones are
/// after any as_of, so they are set aside like other future rows.
pub const MIN_TIMESTAMP_US: i64 = -2_208_988_800_000_000;
/// See `MIN_TIMESTAMP_US`.
pub const MAX_TIMESTAMP_US: i64 = 7_258_118_400_000_000;

/// The range of as_of dates: the local end of the day must lie inside the supported range of
/// instants in every zone (offsets reach 14 hours).
pub fn as_of_range() -> (NaiveDate, NaiveDate) {
    (
        NaiveDate::from_ymd_opt(1900, 1, 2).expect("valid"),
        NaiveDate::from_ymd_opt(2199, 12, 30).expect("valid"),
    )
}

/// The zone's UTC offsets over a span of instants: `offsets[i]` (µs) holds from `starts[i]`.
struct OffsetTable {
    starts: Vec<i64>,
    offsets: Vec<i64>,
}

fn utc_offset_us(tz: Tz, at_us: i64) -> i64 {
    use chrono::Offset as _;
    let at = chrono::DateTime::from_timestamp_micros(at_us)
        .unwrap_or_default()
        .naive_utc();
    tz.offset_from_utc_datetime(&at).fix().local_minus_utc() as i64 * 1_000_000
}

impl OffsetTable {
    /// Samples the offset once per UTC day from `min_us` to `max_us` and pins each change
    /// to the second by bisection. Assumes at most one offset change per day, true of every
    /// zone in the tz database since 1900.
    fn new(tz: Tz, min_us: i64, max_us: i64) -> Self {
        let mut t = min_us.div_euclid(DAY_US) * DAY_US;
        let mut off = utc_offset_us(tz, t);
        let mut table = OffsetTable {
            starts: vec![i64::MIN],
            offsets: vec![off],
        };
        while t <= max_us {
            let next = t + DAY_US;
            let next_off = utc_offset_us(tz, next);
            if next_off != off {
                let (mut lo, mut hi) = (t, next);
                while hi - lo > 1_000_000 {
                    let mid = lo + (hi - lo) / 2 / 1_000_000 * 1_000_000;
                    let mid = if mid == lo { lo + 1_000_000 } else { mid };
                    if utc_offset_us(tz, mid) == off {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                table.starts.push(hi);
                table.offsets.push(next_off);
                off = next_off;
            }
            t = next;
        }
        table
    }

    fn local_day(&self, at_us: i64) -> i32 {
        let i = self.starts.partition_point(|s| *s <= at_us) - 1;
        (at_us + self.offsets[i]).div_euclid(DAY_US) as i32
    }
}

/// The `Calendar::local_date` kernel: `Datetime` column -> local `Date` column in `tz`.
fn local_dates(tz: Tz, c: &Column) -> PolarsResult<Column> {
    let DataType::Datetime(_, zone) = c.dtype() else {
        polars_bail!(ComputeError: "local_date expects a Datetime, got {}", c.dtype());
    };
    // Same zone, so only the unit changes; the physical values are UTC instants either way.
    let micros = c
        .cast(&DataType::Datetime(TimeUnit::Microseconds, zone.clone()))?
        .cast(&DataType::Int64)?;
    let ca = micros.i64()?;
    let days: Int32Chunked = match (ca.min(), ca.max()) {
        (Some(lo), Some(hi)) => {
            let table = OffsetTable::new(tz, lo, hi);
            ca.apply_nonnull_values_generic(DataType::Int32, |v| table.local_day(v))
        }
        _ => Int32Chunked::full_null(ca.name().clone(), ca.len()),
    };
    days.into_column().cast(&DataType::Date)
}

/// A `Date` literal. (`lit(NaiveDate)` makes a nanosecond Datetime in this polars version.)
pub fn date_lit(d: NaiveDate) -> Expr {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid");
    lit((d - epoch).num_days() as i32).cast(DataType::Date)
}

/// Local midnight at the start of `day`; where midnight does not exist (a DST gap at 00:00),
/// the first instant of the day after the gap.
pub fn local_midnight_us(tz: Tz, day: NaiveDate) -> i64 {
    local_instant_us(tz, day.and_hms_opt(0, 0, 0).expect("midnight exists"))
}

/// The instant (UTC microseconds) of a local date and time in `tz`: the first instant after
/// a DST gap for a time that does not exist, the earlier one for a time that exists twice.
pub fn local_instant_us(tz: Tz, at: NaiveDateTime) -> i64 {
    let instant = match tz.from_local_datetime(&at) {
        LocalResult::Single(t) => t,
        LocalResult::Ambiguous(first, _) => first,
        // Gaps are at most a day (Samoa skipped 2011-12-30 whole); should a zone ever skip
        // more, the time is read as UTC rather than panic.
        LocalResult::None => match (1..=2 * 24 * 60).find_map(|m| {
            tz.from_local_datetime(&(at + Duration::minutes(m)))
                .earliest()
        }) {
            Some(t) => t,
            None => return at.and_utc().timestamp_micros(),
        },
    };
    instant.timestamp_micros()
}

impl Period {
    pub fn name(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
            Period::Quarter => "quarter",
            Period::Year => "year",
        }
    }

    /// polars duration string for one period.
    pub fn every(self) -> &'static str {
        match self {
            Period::Day => "1d",
            Period::Week => "1w",
            Period::Month => "1mo",
            Period::Quarter => "1q",
            Period::Year => "1y",
        }
    }

    /// Expression: the index of the period containing `date` (Int64); consecutive periods have
    /// consecutive indices. Twin of `period_index`.
    pub fn index(self, date: Expr) -> Expr {
        // One pass per column with `period_index` itself: as expressions, year, month and
        // their arithmetic each made a full-length column (over a second per 10M orders).
        date.map(
            move |c: Column| period_indices(self, &c),
            |_, f: &Field| Ok(Field::new(f.name().clone(), DataType::Int64)),
        )
    }

    /// Expression: first day of the period containing the `Date` expression `date`.
    pub fn start(self, date: Expr) -> Expr {
        match self {
            Period::Day => date,
            _ => date.dt().truncate(lit(self.every())),
        }
    }
}

/// Parses a duration written as `90s`, `15m`, `4h` or `2d` (a non-negative number, decimals
/// allowed, and a unit) into whole microseconds; a duration finer than that is an error.
pub fn parse_duration_us(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let bad = || format!("`{text}` is not a duration like `90s`, `15m`, `4h` or `2d`");
    let unit = t.chars().last().ok_or_else(bad)?;
    let unit_us: i128 = match unit {
        's' => 1_000_000,
        'm' => 60_000_000,
        'h' => 3_600_000_000,
        'd' => 86_400_000_000,
        _ => return Err(bad()),
    };
    // The number is read as a decimal, not a float, so that `4.1h` is 14,760 s exactly (as a
    // float, 4.1 x 3600 is 14759.999999999998, and a response at 14,760 s would miss it).
    let number = t[..t.len() - 1].trim();
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !digits(whole) || !digits(frac) || frac.len() > 12 {
        return Err(bad());
    }
    let scale = 10i128.pow(frac.len() as u32);
    let mantissa: i128 = format!("{whole}{frac}").parse().map_err(|_| bad())?;
    // 29 digits of days fit in i128 but not once in microseconds.
    let us = mantissa.checked_mul(unit_us).ok_or_else(bad)?;
    if us % scale != 0 {
        return Err(format!("`{text}` is finer than a microsecond"));
    }
    i64::try_from(us / scale).map_err(|_| bad())
}

/// Index of the period containing `d` (Rust-side twin of `Period::index`).
pub fn period_index(d: NaiveDate, period: Period) -> i64 {
    let days = (d - NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid")).num_days();
    let month_index = d.year() as i64 * 12 + d.month() as i64 - 1;
    match period {
        Period::Day => days,
        Period::Week => (days - 4).div_euclid(7),
        Period::Month => month_index,
        Period::Quarter => month_index.div_euclid(3),
        Period::Year => d.year() as i64,
    }
}

/// `period_index` of every date in a `Date` column (nulls stay null).
fn period_indices(period: Period, c: &Column) -> PolarsResult<Column> {
    polars_ensure!(
        c.dtype() == &DataType::Date,
        ComputeError: "period index expects a Date, got {}", c.dtype()
    );
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid");
    let days = c.to_physical_repr();
    let out: Int64Chunked = days
        .i32()?
        .apply_nonnull_values_generic(DataType::Int64, |d| match period {
            Period::Day => d as i64,
            _ => period_index(epoch + Duration::days(d as i64), period),
        });
    Ok(out.with_name(c.name().clone()).into_column())
}

/// First day of the period with index `i`.
pub fn period_from_index(i: i64, period: Period) -> NaiveDate {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid");
    let from_month = |m: i64| {
        NaiveDate::from_ymd_opt(m.div_euclid(12) as i32, (m.rem_euclid(12) + 1) as u32, 1)
            .expect("valid")
    };
    match period {
        Period::Day => epoch + Duration::days(i),
        Period::Week => epoch + Duration::days(4 + 7 * i),
        Period::Month => from_month(i),
        Period::Quarter => from_month(3 * i),
        Period::Year => NaiveDate::from_ymd_opt(i as i32, 1, 1).expect("valid"),
    }
}

/// First day of the period containing `d` (Rust-side twin of `Period::start`).
pub fn period_start_of(d: NaiveDate, period: Period) -> NaiveDate {
    match period {
        Period::Day => d,
        Period::Week => d - Duration::days(d.weekday().num_days_from_monday() as i64),
        Period::Month => NaiveDate::from_ymd_opt(d.year(), d.month(), 1).expect("valid"),
        Period::Quarter => {
            NaiveDate::from_ymd_opt(d.year(), (d.month() - 1) / 3 * 3 + 1, 1).expect("valid")
        }
        Period::Year => NaiveDate::from_ymd_opt(d.year(), 1, 1).expect("valid"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn local_dates_agree_with_chrono_across_dst_changes() {
        // Every 7 minutes through 2025-2026 (both DST changes each year, a 30-minute zone and
        // a southern one), plus a null, in milliseconds to exercise the unit conversion.
        let start = chrono::NaiveDate::from_ymd_opt(2025, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis();
        let mut ms: Vec<Option<i64>> = (0..150_000).map(|i| Some(start + i * 7 * 60_000)).collect();
        ms.push(None);
        let column = Column::new("t".into(), ms.clone())
            .cast(&DataType::Datetime(
                TimeUnit::Milliseconds,
                Some(TimeZone::UTC),
            ))
            .unwrap();
        for zone in [
            "America/New_York",
            "Europe/Berlin",
            "Asia/Kolkata",
            "Australia/Lord_Howe",
        ] {
            let tz: Tz = zone.parse().unwrap();
            let got: Vec<Option<i32>> = local_dates(tz, &column)
                .unwrap()
                .cast(&DataType::Int32)
                .unwrap()
                .i32()
                .unwrap()
                .iter()
                .collect();
            let epoch = d(1970, 1, 1);
            let want: Vec<Option<i32>> = ms
                .iter()
                .map(|v| {
                    v.map(|v| {
                        let at = chrono::DateTime::from_timestamp_millis(v).unwrap();
                        (at.with_timezone(&tz).date_naive() - epoch).num_days() as i32
                    })
                })
                .collect();
            assert_eq!(got, want, "{zone}");
        }
    }

    #[test]
    fn cutoff_is_local_midnight_after_as_of() {
        // 2026-06-30 in New York (EDT, UTC-4): the day ends at 2026-07-01T04:00Z.
        let cal = Calendar::new(d(2026, 6, 30), "America/New_York").unwrap();
        let expected = d(2026, 7, 1).and_hms_opt(4, 0, 0).unwrap().and_utc();
        assert_eq!(cal.cutoff_us(), expected.timestamp_micros());
        let utc = Calendar::new(d(2026, 6, 30), "UTC").unwrap();
        let expected = d(2026, 7, 1).and_hms_opt(0, 0, 0).unwrap().and_utc();
        assert_eq!(utc.cutoff_us(), expected.timestamp_micros());
    }

    #[test]
    fn midnight_in_a_dst_gap_moves_to_the_first_valid_instant() {
        // America/Santiago springs forward at 00:00 on 2026-09-06: 00:00-00:59 do not exist.
        let tz: Tz = "America/Santiago".parse().unwrap();
        let us = local_midnight_us(tz, d(2026, 9, 6));
        // 01:00 local (UTC-3 after the change) is 04:00Z.
        let expected = d(2026, 9, 6).and_hms_opt(4, 0, 0).unwrap().and_utc();
        assert_eq!(us, expected.timestamp_micros());
    }

    #[test]
    fn durations() {
        let s = 1_000_000i64;
        assert_eq!(parse_duration_us("90s"), Ok(90 * s));
        assert_eq!(parse_duration_us("15m"), Ok(900 * s));
        assert_eq!(parse_duration_us("4h"), Ok(14_400 * s));
        assert_eq!(parse_duration_us("2d"), Ok(172_800 * s));
        assert_eq!(parse_duration_us("1.5h"), Ok(5_400 * s));
        // Decimal, not float: 4.1 h is 14,760 s exactly.
        assert_eq!(parse_duration_us("4.1h"), Ok(14_760 * s));
        assert_eq!(parse_duration_us("0.25s"), Ok(250_000));
        assert_eq!(parse_duration_us(".5m"), Ok(30 * s));
        assert_eq!(parse_duration_us("2.s"), Ok(2 * s));
        assert!(parse_duration_us("0.0000001s")
            .unwrap_err()
            .contains("finer than a microsecond"));
        for bad in [
            "4",
            "h",
            "-1s",
            "4 hours",
            ".s",
            "1e3s",
            "1.2.3s",
            "inf s",
            "99999999999999999999999999999d",
            "9999999999999999999999999999999999999999s",
            "9223372036854.775808s",
        ] {
            assert!(parse_duration_us(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn period_starts() {
        assert_eq!(period_start_of(d(2026, 6, 3), Period::Week), d(2026, 6, 1)); // Wed -> Mon
        assert_eq!(period_start_of(d(2026, 6, 1), Period::Week), d(2026, 6, 1));
        assert_eq!(period_start_of(d(2026, 6, 7), Period::Week), d(2026, 6, 1)); // Sun
        assert_eq!(
            period_start_of(d(2026, 8, 31), Period::Quarter),
            d(2026, 7, 1)
        );
        assert_eq!(
            period_start_of(d(2026, 2, 28), Period::Month),
            d(2026, 2, 1)
        );
        assert_eq!(
            period_start_of(d(2026, 12, 31), Period::Year),
            d(2026, 1, 1)
        );
    }

    #[test]
    fn period_indices_by_hand_around_the_epoch_with_nulls() {
        let dates = [
            Some(d(1970, 1, 5)), // day 4, the first Monday: week 0
            Some(d(1970, 1, 4)), // the Sunday before: week -1
            None,
            Some(d(1969, 12, 31)),
            Some(d(2026, 6, 30)),
        ];
        let df = DataFrame::new_infer_height(vec![Column::new("d".into(), dates)]).unwrap();
        let index = |p: Period| -> Vec<Option<i64>> {
            let out = df
                .clone()
                .lazy()
                .select([p.index(col("d")).alias("i")])
                .collect()
                .unwrap();
            out.column("i").unwrap().i64().unwrap().iter().collect()
        };
        assert_eq!(
            index(Period::Day),
            [Some(4), Some(3), None, Some(-1), Some(20_634)]
        );
        assert_eq!(
            index(Period::Week),
            [Some(0), Some(-1), None, Some(-1), Some(2947)]
        );
        // 1969 * 12 + 11 and 2026 * 12 + 5.
        assert_eq!(
            index(Period::Month),
            [Some(23_640), Some(23_640), None, Some(23_639), Some(24_317)]
        );
        assert_eq!(
            index(Period::Quarter),
            [Some(7880), Some(7880), None, Some(7879), Some(8105)]
        );
        assert_eq!(
            index(Period::Year),
            [Some(1970), Some(1970), None, Some(1969), Some(2026)]
        );
    }

    #[test]
    fn polars_period_start_matches_rust_twin() {
        let days: Vec<NaiveDate> = (0..800)
            .map(|i| d(2025, 1, 1) + Duration::days(i))
            .collect();
        let df = DataFrame::new_infer_height(vec![Column::new("d".into(), days.clone())]).unwrap();
        for p in [
            Period::Day,
            Period::Week,
            Period::Month,
            Period::Quarter,
            Period::Year,
        ] {
            let out = df
                .clone()
                .lazy()
                .select([p.start(col("d")).alias("s")])
                .collect()
                .unwrap();
            let got: Vec<NaiveDate> = out
                .column("s")
                .unwrap()
                .date()
                .unwrap()
                .as_date_iter()
                .map(|x| x.unwrap())
                .collect();
            let want: Vec<NaiveDate> = days.iter().map(|x| period_start_of(*x, p)).collect();
            assert_eq!(got, want, "{p:?}");
            let idx = df
                .clone()
                .lazy()
                .select([p.index(col("d")).alias("i")])
                .collect()
                .unwrap();
            let got: Vec<i64> = idx
                .column("i")
                .unwrap()
                .i64()
                .unwrap()
                .into_no_null_iter()
                .collect();
            let want: Vec<i64> = days.iter().map(|x| period_index(*x, p)).collect();
            assert_eq!(got, want, "{p:?}");
            for (d, i) in days.iter().zip(&want) {
                assert_eq!(
                    period_from_index(*i, p),
                    period_start_of(*d, p),
                    "{p:?} {d}"
                );
            }
        }
    }
}
