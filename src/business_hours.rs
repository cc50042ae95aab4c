//! Business hours: a weekly schedule in a time zone, with holidays, optionally per channel; and
//! the business time between two instants, which is the length of their overlap with the
//! schedule.
//!
//! - A schedule gives, per weekday (`mon` … `sun`), intervals `"HH:MM-HH:MM"` of local time.
//!   `24:00` may end an interval. An interval whose end is not after its start runs overnight:
//!   `"22:00-06:00"` on `mon` is Monday 22:00 to Tuesday 06:00. An interval belongs to the day
//!   it starts on: a holiday removes the intervals that start on it.
//! - Local times become instants in the zone: a local time that does not exist (in a DST gap)
//!   is the first instant after the gap, and one that exists twice (when clocks go back) is the
//!   earlier of the two. The length of an interval is then counted in real time, so a
//!   00:00–24:00 day is 23 or 25 hours long on the days clocks change.
//! - The business time from a to b (a ≤ b) is the total length of the parts of the intervals
//!   that lie in [a, b], in whole microseconds: exact.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{Datelike, Duration, NaiveDate};
use chrono_tz::Tz;
use polars::prelude::*;
use serde::Deserialize;

pub use crate::time::local_instant_us;

/// The job file's `support_kpis.business_hours`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusinessHoursConfig {
    pub timezone: String,
    pub schedule: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub holidays: Vec<NaiveDate>,
    /// Per channel, the keys given replace the ones above.
    #[serde(default)]
    pub channels: BTreeMap<String, ChannelHoursConfig>,
}

/// One channel's `business_hours.channels.<channel>`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelHoursConfig {
    pub timezone: Option<String>,
    pub schedule: Option<BTreeMap<String, Vec<String>>>,
    pub holidays: Option<Vec<NaiveDate>>,
}

/// The most intervals one weekday may have, and the most holidays and channels.
pub const MAX_INTERVALS_PER_DAY: usize = 48;
pub const MAX_HOLIDAYS: usize = 10_000;
pub const MAX_CHANNELS: usize = 256;

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// One calendar: the zone, per weekday (Monday first) the intervals as seconds after local
/// midnight (the end may pass 86,400: overnight), and the holidays.
#[derive(Debug, Clone, PartialEq)]
pub struct Calendar {
    pub tz: Tz,
    pub week: [Vec<(u32, u32)>; 7],
    pub holidays: BTreeSet<NaiveDate>,
}

/// The default calendar and the per-channel ones.
#[derive(Debug, Clone, PartialEq)]
pub struct BusinessHours {
    pub default: Calendar,
    pub channels: Vec<(String, Calendar)>,
}

/// `"HH:MM"` as seconds after midnight; `24:00` only when `end`.
fn parse_time(text: &str, end: bool) -> Result<u32, String> {
    let (h, m) = text
        .split_once(':')
        .ok_or_else(|| format!("`{text}` is not HH:MM"))?;
    if h.len() != 2 || m.len() != 2 {
        return Err(format!("`{text}` is not HH:MM"));
    }
    let (h, m): (u32, u32) = match (h.parse::<u32>(), m.parse::<u32>()) {
        (Ok(h), Ok(m)) => (h, m),
        _ => return Err(format!("`{text}` is not HH:MM")),
    };
    if m > 59 || h > 24 || (h == 24 && (m != 0 || !end)) {
        return Err(format!(
            "`{text}` is not a time of day (00:00 to 23:59, or 24:00 as an end)"
        ));
    }
    Ok(h * 3600 + m * 60)
}

fn parse_schedule(
    schedule: &BTreeMap<String, Vec<String>>,
    errors: &mut Vec<(String, String)>,
    at: &str,
) -> [Vec<(u32, u32)>; 7] {
    let mut week: [Vec<(u32, u32)>; 7] = Default::default();
    for (day, intervals) in schedule {
        let Some(d) = DAYS.iter().position(|x| x == day) else {
            errors.push((
                format!("{at}.schedule.{day}"),
                "not a weekday (mon, tue, wed, thu, fri, sat, sun)".into(),
            ));
            continue;
        };
        if intervals.len() > MAX_INTERVALS_PER_DAY {
            errors.push((
                format!("{at}.schedule.{day}"),
                format!(
                    "{} intervals; at most {MAX_INTERVALS_PER_DAY}",
                    intervals.len()
                ),
            ));
            continue;
        }
        for text in intervals {
            let parsed = text
                .split_once('-')
                .ok_or_else(|| format!("`{text}` is not HH:MM-HH:MM"))
                .and_then(|(a, b)| Ok((parse_time(a.trim(), false)?, parse_time(b.trim(), true)?)));
            match parsed {
                Ok((a, b)) if a == b => errors.push((
                    format!("{at}.schedule.{day}"),
                    format!("`{text}` starts and ends at the same time (write 00:00-24:00 for a whole day)"),
                )),
                // Not after the start: overnight, into the next day.
                Ok((a, b)) => week[d].push((a, if b > a { b } else { b + 86_400 })),
                Err(e) => errors.push((format!("{at}.schedule.{day}"), e)),
            }
        }
    }
    week
}

fn parse_tz(text: &str, errors: &mut Vec<(String, String)>, at: &str) -> Tz {
    text.parse().unwrap_or_else(|_| {
        errors.push((
            format!("{at}.timezone"),
            format!("unknown time zone `{text}`"),
        ));
        Tz::UTC
    })
}

impl BusinessHours {
    /// Checks and resolves the configuration; every problem is listed (paths under `at`).
    /// Problems are (path, message) pairs.
    pub fn from_config(
        c: &BusinessHoursConfig,
        at: &str,
    ) -> Result<BusinessHours, Vec<(String, String)>> {
        let mut errors = Vec::new();
        if c.holidays.len() > MAX_HOLIDAYS {
            errors.push((
                format!("{at}.holidays"),
                format!("at most {MAX_HOLIDAYS} dates"),
            ));
        }
        if c.channels.len() > MAX_CHANNELS {
            errors.push((
                format!("{at}.channels"),
                format!("at most {MAX_CHANNELS} channels"),
            ));
        }
        let default = Calendar {
            tz: parse_tz(&c.timezone, &mut errors, at),
            week: parse_schedule(&c.schedule, &mut errors, at),
            holidays: c.holidays.iter().copied().collect(),
        };
        let mut channels = Vec::new();
        for (name, ch) in &c.channels {
            let at = format!("{at}.channels.{name}");
            if ch.holidays.as_ref().is_some_and(|h| h.len() > MAX_HOLIDAYS) {
                errors.push((
                    format!("{at}.holidays"),
                    format!("at most {MAX_HOLIDAYS} dates"),
                ));
            }
            channels.push((
                name.clone(),
                Calendar {
                    tz: match &ch.timezone {
                        Some(t) => parse_tz(t, &mut errors, &at),
                        None => default.tz,
                    },
                    week: match &ch.schedule {
                        Some(s) => parse_schedule(s, &mut errors, &at),
                        None => default.week.clone(),
                    },
                    holidays: match &ch.holidays {
                        Some(h) => h.iter().copied().collect(),
                        None => default.holidays.clone(),
                    },
                },
            ));
        }
        if errors.is_empty() {
            Ok(BusinessHours { default, channels })
        } else {
            Err(errors)
        }
    }

    fn calendar(&self, channel: Option<&str>) -> (usize, &Calendar) {
        match channel.and_then(|c| self.channels.iter().position(|(n, _)| n == c)) {
            Some(i) => (i + 1, &self.channels[i].1),
            None => (0, &self.default),
        }
    }
}

/// A calendar's intervals over a range of days, as sorted disjoint instants with the business
/// time before each.
pub struct Timeline {
    starts: Vec<i64>,
    ends: Vec<i64>,
    before: Vec<i64>,
}

impl Timeline {
    /// The intervals starting on the local days `from` through `to`.
    pub fn new(cal: &Calendar, from: NaiveDate, to: NaiveDate) -> Timeline {
        let mut spans: Vec<(i64, i64)> = Vec::new();
        let mut day = from;
        while day <= to {
            if !cal.holidays.contains(&day) {
                let midnight = day.and_hms_opt(0, 0, 0).expect("midnight");
                for &(a, b) in &cal.week[day.weekday().num_days_from_monday() as usize] {
                    let s = local_instant_us(cal.tz, midnight + Duration::seconds(a as i64));
                    let e = local_instant_us(cal.tz, midnight + Duration::seconds(b as i64));
                    if e > s {
                        spans.push((s, e));
                    }
                }
            }
            day = day.succ_opt().expect("a date before 262143");
        }
        spans.sort_unstable();
        let (mut starts, mut ends, mut before) = (Vec::new(), Vec::new(), Vec::new());
        let mut total = 0i64;
        for (s, e) in spans {
            match ends.last_mut() {
                // Overlapping or touching: one interval.
                Some(last) if s <= *last => {
                    if e > *last {
                        total += e - *last;
                        *last = e;
                    }
                }
                _ => {
                    starts.push(s);
                    ends.push(e);
                    before.push(total);
                    total += e - s;
                }
            }
        }
        Timeline {
            starts,
            ends,
            before,
        }
    }

    /// Business microseconds from the start of the timeline to `t`.
    fn upto(&self, t: i64) -> i64 {
        let j = self.starts.partition_point(|s| *s <= t);
        if j == 0 {
            return 0;
        }
        self.before[j - 1] + t.min(self.ends[j - 1]) - self.starts[j - 1]
    }

    /// Business microseconds between `a` and `b` (0 when b ≤ a).
    pub fn between(&self, a: i64, b: i64) -> i64 {
        if b <= a {
            0
        } else {
            self.upto(b) - self.upto(a)
        }
    }
}

/// The business microseconds from `earlier` to `later` (Datetime columns) of each row, by the
/// calendar of its `channel`; null where either is null.
pub fn business_micros(
    later: Expr,
    earlier: Expr,
    channel: Expr,
    hours: Arc<BusinessHours>,
) -> Expr {
    as_struct(vec![
        later.alias("later"),
        earlier.alias("earlier"),
        channel.cast(DataType::String).alias("channel"),
    ])
    .map(
        move |c: Column| compute(&c, &hours),
        |_, f: &Field| Ok(Field::new(f.name().clone(), DataType::Int64)),
    )
}

fn compute(c: &Column, hours: &BusinessHours) -> PolarsResult<Column> {
    let s = c.struct_()?;
    let field = |name: &str| -> PolarsResult<Series> { s.field_by_name(name) };
    let micros = |s: Series| -> PolarsResult<Vec<Option<i64>>> {
        let s = s.cast(&DataType::Datetime(TimeUnit::Microseconds, None))?;
        let s = s.cast(&DataType::Int64)?;
        Ok(s.i64()?.iter().collect())
    };
    let later = micros(field("later")?)?;
    let earlier = micros(field("earlier")?)?;
    let channel_s = field("channel")?;
    let channel: Vec<Option<&str>> = channel_s.str()?.iter().collect();
    // Days wide enough for every instant of the batch in every zone (±1 day for the zone
    // offsets, and 1 more before for overnight intervals started the day before).
    let lo = earlier.iter().chain(&later).flatten().min().copied();
    let hi = earlier.iter().chain(&later).flatten().max().copied();
    let out: Int64Chunked = match (lo, hi) {
        (Some(lo), Some(hi)) => {
            let day = |us: i64| {
                chrono::DateTime::from_timestamp_micros(us)
                    .map(|d| d.date_naive())
                    .unwrap_or_default()
            };
            let (from, to) = (day(lo) - Duration::days(2), day(hi) + Duration::days(1));
            let mut timelines: Vec<Option<Timeline>> =
                (0..=hours.channels.len()).map(|_| None).collect();
            (0..later.len())
                .map(|i| {
                    let (Some(b), Some(a)) = (later[i], earlier[i]) else {
                        return None;
                    };
                    let (k, cal) = hours.calendar(channel[i]);
                    let t = timelines[k].get_or_insert_with(|| Timeline::new(cal, from, to));
                    Some(t.between(a, b))
                })
                .collect()
        }
        _ => Int64Chunked::full_null(PlSmallStr::EMPTY, later.len()),
    };
    Ok(out.with_name(c.name().clone()).into_column())
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDateTime;

    use super::*;

    fn hours(yaml: &str) -> BusinessHours {
        let c: BusinessHoursConfig = serde_yaml::from_str(yaml).unwrap();
        BusinessHours::from_config(&c, "business_hours").unwrap()
    }

    fn us(cal: &Calendar, local: &str) -> i64 {
        local_instant_us(
            cal.tz,
            NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M").unwrap(),
        )
    }

    fn minutes(h: &BusinessHours, a: &str, b: &str) -> f64 {
        let cal = &h.default;
        let t = Timeline::new(
            cal,
            NaiveDate::from_ymd_opt(2025, 12, 1).unwrap(),
            NaiveDate::from_ymd_opt(2027, 1, 31).unwrap(),
        );
        t.between(us(cal, a), us(cal, b)) as f64 / 60e6
    }

    const WEEKDAYS: &str = "timezone: Europe/Berlin\nschedule:\n  mon: ['09:00-18:00']\n  tue: ['09:00-18:00']\n  wed: ['09:00-18:00']\n  thu: ['09:00-18:00']\n  fri: ['09:00-18:00']\n";

    /// The case: opened Friday 17:55, answered Monday 09:05, 09:00-18:00 Monday to
    /// Friday: 5 minutes on Friday and 5 on Monday.
    #[test]
    fn friday_evening_to_monday_morning_is_ten_minutes() {
        let h = hours(WEEKDAYS);
        // 2026-06-05 is a Friday.
        assert_eq!(minutes(&h, "2026-06-05 17:55", "2026-06-08 09:05"), 10.0);
        // Inside one day, and wholly outside the schedule.
        assert_eq!(minutes(&h, "2026-06-08 10:00", "2026-06-08 11:30"), 90.0);
        assert_eq!(minutes(&h, "2026-06-06 10:00", "2026-06-07 23:00"), 0.0);
        // A whole week: 5 × 9 hours.
        assert_eq!(
            minutes(&h, "2026-06-08 00:00", "2026-06-15 00:00"),
            45.0 * 60.0
        );
    }

    /// Berlin's clocks go forward on 2026-03-29 (02:00 -> 03:00) and back on 2026-10-25 (03:00
    /// -> 02:00). A 00:00-24:00 Sunday is then 23 and 25 real hours; a 09:00-18:00 day is 9
    /// hours either side of the change.
    #[test]
    fn across_dst_changes() {
        let h = hours("timezone: Europe/Berlin\nschedule:\n  sun: ['00:00-24:00']\n  mon: ['09:00-18:00']\n  sat: ['09:00-18:00']\n");
        assert_eq!(
            minutes(&h, "2026-03-28 00:00", "2026-03-31 00:00"),
            (9.0 + 23.0 + 9.0) * 60.0
        );
        assert_eq!(
            minutes(&h, "2026-10-24 00:00", "2026-10-27 00:00"),
            (9.0 + 25.0 + 9.0) * 60.0
        );
        // Saturday 17:00 to Monday 10:00 over the spring change: 1 + 23 + 1 hours.
        assert_eq!(
            minutes(&h, "2026-03-28 17:00", "2026-03-30 10:00"),
            25.0 * 60.0
        );
        // Samoa skipped 2011-12-30: a time on it is the first instant of the 31st.
        let apia: Tz = "Pacific/Apia".parse().unwrap();
        let at = |t: &str| NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M").unwrap();
        assert_eq!(
            local_instant_us(apia, at("2011-12-30 10:00")),
            local_instant_us(apia, at("2011-12-31 00:00"))
        );
    }

    #[test]
    fn a_holiday_has_no_business_time() {
        let mut yaml = WEEKDAYS.to_string();
        yaml.push_str("holidays: [2026-12-25]\n");
        let h = hours(&yaml);
        // Thursday 17:00 to Monday 10:00 with Friday a holiday: 1 hour + 1 hour.
        assert_eq!(minutes(&h, "2026-12-24 17:00", "2026-12-28 10:00"), 120.0);
        let h = hours(WEEKDAYS);
        assert_eq!(
            minutes(&h, "2026-12-24 17:00", "2026-12-28 10:00"),
            120.0 + 9.0 * 60.0
        );
    }

    /// An overnight shift 22:00-06:00 starting Monday to Friday: Monday 23:00 to Tuesday 07:00
    /// is 7 hours (23:00-06:00); Saturday 05:00 to Saturday 07:00 is 1 hour (Friday's shift);
    /// Sunday 23:00 to Monday 05:00 is nothing (no shift starts on Sunday).
    #[test]
    fn overnight_schedules() {
        let h = hours("timezone: America/New_York\nschedule:\n  mon: ['22:00-06:00']\n  tue: ['22:00-06:00']\n  wed: ['22:00-06:00']\n  thu: ['22:00-06:00']\n  fri: ['22:00-06:00']\n");
        assert_eq!(
            minutes(&h, "2026-06-08 23:00", "2026-06-09 07:00"),
            7.0 * 60.0
        );
        assert_eq!(minutes(&h, "2026-06-13 05:00", "2026-06-13 07:00"), 60.0);
        assert_eq!(minutes(&h, "2026-06-07 23:00", "2026-06-08 05:00"), 0.0);
        // Several intervals a day with a lunch break.
        let h = hours("timezone: UTC\nschedule:\n  mon: ['09:00-12:30', '13:30-18:00']\n");
        assert_eq!(minutes(&h, "2026-06-08 12:00", "2026-06-08 14:00"), 60.0);
    }

    #[test]
    fn per_channel_calendars_and_bad_configurations() {
        let h = hours("timezone: UTC\nschedule: { mon: ['09:00-17:00'] }\nchannels:\n  chat: { schedule: { mon: ['00:00-24:00'] } }\n");
        assert_eq!(h.calendar(Some("chat")).1.week[0], vec![(0, 86_400)]);
        assert_eq!(
            h.calendar(Some("email")).1.week[0],
            vec![(9 * 3600, 17 * 3600)]
        );
        assert_eq!(h.calendar(None).0, 0);
        let bad: BusinessHoursConfig = serde_yaml::from_str(
            "timezone: Mars/Base\nschedule: { monday: ['09:00-17:00'], tue: ['9-17', '10:00-10:00', '24:30-25:00'] }\n",
        )
        .unwrap();
        let errors = BusinessHours::from_config(&bad, "b").unwrap_err();
        assert_eq!(errors.len(), 5, "{errors:?}");
    }
}
