//! The quality gates, checked over every whole input before any pipeline runs: the rejected
//! fraction of each input, and its freshness (exit 4, nothing written).

use std::collections::BTreeMap;

use chrono::NaiveDate;

use super::rfc3339_us;
use super::start::Run;
use crate::contracts::InputKind;
use crate::error::{CxError, Result};
use crate::inputs::{Freshness, InputReport, InputSource};
use crate::log::Field;
use crate::time::Calendar;

/// Checks the gates; returns each input's freshness (for the manifest), having logged the
/// stale-but-allowed ones as warnings.
pub fn check(
    run: &Run,
    reports: &BTreeMap<InputKind, InputReport>,
) -> Result<BTreeMap<InputKind, FreshnessFinding>> {
    let job = &run.job;
    let mut breaches: Vec<String> = reports
        .iter()
        .filter(|(_, r)| r.rejected_fraction() > job.max_rejected_fraction)
        .map(|(kind, r)| {
            let reasons: Vec<String> = r
                .rejected
                .iter()
                .map(|x| format!("{} x{}", x.reason, x.row_count))
                .collect();
            format!(
                "{kind}: {} of {} rows rejected ({:.4} > max_rejected_fraction {}): {}",
                r.rows_rejected(),
                r.rows_read - r.rows_after_as_of,
                r.rejected_fraction(),
                job.max_rejected_fraction,
                reasons.join(", ")
            )
        })
        .collect();
    let freshness = freshness_report(&run.sources, reports, &run.cal);
    for (kind, f) in &freshness {
        match f.status {
            FreshnessStatus::Error => breaches.push(format!("{kind}: {}", f.describe(run.as_of))),
            FreshnessStatus::Warn => run.log.warn(
                "freshness",
                kind.name(),
                &[("message", Field::Text(f.describe(run.as_of)))],
            ),
            FreshnessStatus::Ok | FreshnessStatus::Unchecked => {}
        }
    }
    if !breaches.is_empty() {
        return Err(CxError::Quality { breaches });
    }
    Ok(freshness)
}

/// How fresh an input's data is at the end of as_of.
#[derive(Debug, Clone)]
pub struct FreshnessFinding {
    pub latest_us: Option<i64>,
    /// From the latest row to the end of the as_of day; None without rows.
    pub age_us: Option<i64>,
    pub limits: Freshness,
    pub status: FreshnessStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreshnessStatus {
    /// No thresholds were set for the input.
    Unchecked,
    Ok,
    Warn,
    Error,
}

impl FreshnessStatus {
    pub fn name(self) -> &'static str {
        match self {
            FreshnessStatus::Unchecked => "unchecked",
            FreshnessStatus::Ok => "ok",
            FreshnessStatus::Warn => "warn",
            FreshnessStatus::Error => "error",
        }
    }
}

impl FreshnessFinding {
    /// One line for the log or the error: how old, against which limit.
    fn describe(&self, as_of: NaiveDate) -> String {
        let (limit_name, limit) = match self.status {
            FreshnessStatus::Error => ("error_after", self.limits.error_after_us),
            _ => ("warn_after", self.limits.warn_after_us),
        };
        let limit = limit.map(duration_text).unwrap_or_default();
        match (self.latest_us, self.age_us) {
            (Some(latest), Some(age)) => format!(
                "latest row at {} is {} old at the end of as_of {as_of} ({limit_name} {limit})",
                rfc3339_us(latest),
                duration_text(age)
            ),
            _ => format!("no rows at or before the end of as_of {as_of} ({limit_name} {limit})"),
        }
    }
}

/// The freshness of every loaded input: age = end of the as_of day minus the latest own time
/// of its kept rows. An input without rows is older than any limit.
fn freshness_report(
    sources: &BTreeMap<InputKind, InputSource>,
    reports: &BTreeMap<InputKind, InputReport>,
    cal: &Calendar,
) -> BTreeMap<InputKind, FreshnessFinding> {
    reports
        .iter()
        .map(|(kind, r)| {
            let limits = sources
                .get(kind)
                .and_then(|s| s.freshness)
                .unwrap_or_default();
            let age_us = r.latest_us.map(|l| cal.cutoff_us() - l);
            let over = |limit: Option<i64>| match (limit, age_us) {
                (Some(limit), Some(age)) => age > limit,
                (Some(_), None) => true,
                (None, _) => false,
            };
            let status = if over(limits.error_after_us) {
                FreshnessStatus::Error
            } else if over(limits.warn_after_us) {
                FreshnessStatus::Warn
            } else if limits == Freshness::default() {
                FreshnessStatus::Unchecked
            } else {
                FreshnessStatus::Ok
            };
            (
                *kind,
                FreshnessFinding {
                    latest_us: r.latest_us,
                    age_us,
                    limits,
                    status,
                },
            )
        })
        .collect()
}

/// `7d 3h 12m 5s`-style text of a duration in microseconds (whole seconds).
fn duration_text(us: i64) -> String {
    let mut s = us.max(0) / 1_000_000;
    let mut out = Vec::new();
    for (unit, len) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if s >= len {
            out.push(format!("{}{unit}", s / len));
            s %= len;
        }
    }
    if s > 0 || out.is_empty() {
        out.push(format!("{s}s"));
    }
    out.join(" ")
}
