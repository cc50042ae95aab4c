//! Cleaning one input: the as_of cut, the value rules of its contract, duplicate row ids and
//! the summary of rejected rows.

use std::collections::BTreeMap;

use polars::prelude::*;

use super::dedup::repeated_keys;
use super::read::{collect, target_type};
use super::{InputReport, LoadedInput, Rejection};
use crate::contracts::{ColType, InputKind, Rule};
use crate::pipelines::survey_scores::Scales;
use crate::time::{Calendar, MAX_TIMESTAMP_US, MIN_TIMESTAMP_US};

/// Rows of an input (or of a batch of it) after the as_of cut, each marked with the code of
/// the first reason it is rejected for (`__reason`, null for a valid row; the codes index
/// `reasons`), and still carrying its `__row` number.
pub struct Marked {
    pub frame: DataFrame,
    pub reasons: Vec<String>,
    /// Rows whose own time is after the as_of day (set aside, not rejected).
    pub rows_after_as_of: u64,
}

impl Marked {
    /// The rows no rule rejected, without the reason column.
    pub fn into_valid(self) -> PolarsResult<DataFrame> {
        self.frame
            .lazy()
            .filter(col("__reason").is_null())
            .drop(cols(["__reason"]))
            .collect()
    }
}

/// Marks rejected rows, drops rows after as_of, and summarises rejections.
pub(super) fn clean(
    kind: InputKind,
    df: DataFrame,
    paths: Vec<String>,
    calendar: &Calendar,
    scales: &Scales,
) -> PolarsResult<LoadedInput> {
    let contract = kind.contract();
    let rows_read = df.height() as u64;
    let Marked {
        frame: mut marked,
        mut reasons,
        rows_after_as_of,
    } = mark(kind, df, calendar, scales)?;
    let mut mark = |checks: Vec<(Expr, String)>| -> Expr { code_of(&mut reasons, checks) };
    // 4. Duplicate ids among the otherwise valid rows: the first in file order is kept.
    if let Some(key) = contract.key {
        let valid = marked.column("__reason")?.is_null();
        if let Some(repeated) = repeated_keys(marked.column(key)?.str()?, &valid)? {
            // Repeated rows are valid ones, so their reason is still null.
            let dup_reason = mark(vec![(col("__repeated"), format!("duplicate {key}"))]);
            marked.with_column(repeated.into_column())?;
            marked = collect(
                marked
                    .lazy()
                    .with_column(coalesce(&[col("__reason"), dup_reason]).alias("__reason"))
                    .drop(cols(["__repeated"])),
            )?;
        }
    }
    finish(kind, marked, reasons, rows_read, rows_after_as_of, paths)
}

/// The code of the first check that holds, as an expression (null when none does); the
/// checks' reasons are appended to `reasons`, whose index is the code.
fn code_of(reasons: &mut Vec<String>, checks: Vec<(Expr, String)>) -> Expr {
    let mut code = lit(NULL).cast(DataType::UInt8);
    for (cond, reason) in checks.into_iter().rev() {
        let c = reasons.len() as u32;
        reasons.push(reason);
        code = when(cond)
            .then(lit(c).cast(DataType::UInt8))
            .otherwise(code);
    }
    code
}

/// Steps 1 to 3 of cleaning, which look at one row at a time: nulls in required columns, the
/// as_of cut (and later nullable timestamps set to null), and the value rules.
pub fn mark(
    kind: InputKind,
    df: DataFrame,
    calendar: &Calendar,
    scales: &Scales,
) -> PolarsResult<Marked> {
    let contract = kind.contract();
    let rows_read = df.height() as u64;
    let cutoff = calendar.cutoff_us();
    let ts_us = |name: &str| col(name).dt().timestamp(TimeUnit::Microseconds);
    // Rows are marked with the code of their reason (its index in `reasons`) rather than its
    // text: a one-byte column instead of a string column over every row.
    let mut reasons: Vec<String> = Vec::new();
    let mut mark = |checks: Vec<(Expr, String)>| -> Expr { code_of(&mut reasons, checks) };

    // 1. Missing required values: rejected wherever they are (their time may be unknown).
    // Columns without nulls (the usual case; the count is kept with the data) cannot
    // contribute a reason, so they stay out of the per-row expression.
    let has_nulls = |name: &str| df.column(name).map(|c| c.null_count() > 0).unwrap_or(true);
    let null_reason = mark(
        contract
            .columns
            .iter()
            .filter(|c| !c.nullable && has_nulls(c.name))
            .map(|spec| (col(spec.name).is_null(), format!("null {}", spec.name)))
            .collect(),
    );
    // 2. Rows from after as_of do not exist yet for this run. An export usually ends before
    // as_of: then there is nothing to cut, and no filtered copy of every column to make.
    let latest = df
        .column(contract.time)?
        .as_materialized_series()
        .to_physical_repr()
        .i64()?
        .max();
    let after = ts_us(contract.time)
        .gt_eq(lit(cutoff))
        .fill_null(lit(false));
    let mut lf = df.lazy().with_column(null_reason.alias("__reason"));
    if latest.is_some_and(|t| t >= cutoff) {
        lf = lf.filter(col("__reason").is_not_null().or(after.not()));
    }
    // Nullable timestamps later than as_of have not happened yet.
    for spec in contract
        .columns
        .iter()
        .filter(|c| c.nullable && c.ty == ColType::Timestamp)
    {
        if spec.name != contract.time {
            lf = lf.with_column(
                when(ts_us(spec.name).gt_eq(lit(cutoff)))
                    .then(lit(NULL).cast(target_type(ColType::Timestamp)))
                    .otherwise(col(spec.name))
                    .alias(spec.name),
            );
        }
    }
    // 3. Values outside their domain: the supported range of every timestamp, then the
    // contract's rules in their order.
    if kind == InputKind::Surveys {
        lf = lf.with_column(col("survey").str().to_lowercase().alias("survey"));
    }
    let mut value_checks: Vec<(Expr, String)> = contract
        .columns
        .iter()
        .filter(|c| c.ty == ColType::Timestamp)
        .map(|c| {
            let t = ts_us(c.name);
            (
                t.clone()
                    .lt(lit(MIN_TIMESTAMP_US))
                    .or(t.gt_eq(lit(MAX_TIMESTAMP_US))),
                format!("{} out of range", c.name),
            )
        })
        .collect();
    for rule in contract.rules {
        match *rule {
            Rule::Finite(c) => {
                value_checks.push((col(c).is_nan().or(col(c).is_infinite()), rule.reason()))
            }
            Rule::NonNegative(c) => value_checks.push((col(c).lt(lit(0)), rule.reason())),
            Rule::AbsBelow(c, bound) => {
                value_checks.push((col(c).abs().gt_eq(lit(bound)), rule.reason()))
            }
            Rule::AtMost(c, bound) => value_checks.push((col(c).gt(lit(bound)), rule.reason())),
            Rule::NotBefore { later, earlier } => {
                value_checks.push((ts_us(later).lt(ts_us(earlier)), rule.reason()))
            }
            Rule::SurveyScale => value_checks.extend(
                scales
                    .rejection_checks(col("survey"), col("score"))
                    .into_iter()
                    .map(|(e, r)| (e, r.to_string())),
            ),
        }
    }
    if !value_checks.is_empty() {
        let value_reason = mark(value_checks);
        lf = lf.with_column(coalesce(&[col("__reason"), value_reason]).alias("__reason"));
    }
    let marked = collect(lf)?;
    let rows_after_as_of = rows_read - marked.height() as u64;
    Ok(Marked {
        frame: marked,
        reasons,
        rows_after_as_of,
    })
}

/// The example of a rejected row: its id, or `row N` (1-based) without one.
pub fn example_expr(kind: InputKind) -> Expr {
    let row = lit("row ") + (col("__row").cast(DataType::Int64) + lit(1)).cast(DataType::String);
    match kind.contract().key {
        Some(key) => coalesce(&[col(key), row]),
        None => row,
    }
}

/// Summarises the rejections of `marked` and keeps its valid rows.
fn finish(
    kind: InputKind,
    marked: DataFrame,
    reasons: Vec<String>,
    rows_read: u64,
    rows_after_as_of: u64,
    paths: Vec<String>,
) -> PolarsResult<LoadedInput> {
    let contract = kind.contract();
    // Most inputs are clean: then there is no summary to build, nothing to filter out and no
    // copy to make.
    let any_rejected = marked.column("__reason")?.null_count() < marked.height();
    let (rejected, mut data) = if any_rejected {
        let rejected = rejections(kind, &marked, &reasons)?;
        let data = collect(
            marked
                .lazy()
                .filter(col("__reason").is_null())
                .drop(cols(["__reason", "__row"])),
        )?;
        (rejected, data)
    } else {
        (Vec::new(), marked.drop_many(["__reason", "__row"]))
    };
    if let (Some(key), false) = (contract.key, contract.key_read) {
        data.drop_in_place(key)?;
    }
    let null_signup_at = match kind {
        InputKind::Customers => Some(data.column("signup_at")?.null_count() as u64),
        _ => None,
    };
    // Freshness: the latest kept row's own time (rows after as_of are already cut).
    let latest_us = data
        .column(contract.time)?
        .as_materialized_series()
        .to_physical_repr()
        .i64()?
        .max();
    Ok(LoadedInput {
        data,
        report: InputReport {
            paths,
            rows_read,
            rows_after_as_of,
            rejected,
            null_signup_at,
            latest_us,
        },
    })
}

/// The running tally of one rejection reason.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub row_count: u64,
    pub first_row: i64,
    pub example_id: String,
}

impl Rejected {
    /// Adds `n` rejected rows of `reason` to `tally`, the first of them row `first` with id
    /// `example`: the reason's example is its row with the smallest number.
    pub fn add(
        tally: &mut BTreeMap<String, Rejected>,
        reason: String,
        n: u64,
        first: i64,
        example: String,
    ) {
        let entry = tally.entry(reason).or_insert(Rejected {
            row_count: 0,
            first_row: first,
            example_id: example.clone(),
        });
        entry.row_count += n;
        if first < entry.first_row {
            entry.first_row = first;
            entry.example_id = example;
        }
    }
}

/// Adds a batch's rejected rows to the tally: per reason, the count and the first row's
/// example (the one with the smallest row number).
pub fn tally(
    kind: InputKind,
    marked: &DataFrame,
    reasons: &[String],
    tally: &mut BTreeMap<String, Rejected>,
) -> PolarsResult<()> {
    if marked.column("__reason")?.null_count() == marked.height() {
        return Ok(());
    }
    let summary = marked
        .clone()
        .lazy()
        .filter(col("__reason").is_not_null())
        .sort(["__row"], Default::default())
        .group_by([col("__reason")])
        .agg([
            len().cast(DataType::UInt64).alias("n"),
            col("__row").first().cast(DataType::Int64).alias("first"),
            example_expr(kind).first().alias("example"),
        ])
        .collect()?;
    let codes = summary.column("__reason")?.u8()?;
    let counts = summary.column("n")?.u64()?;
    let firsts = summary.column("first")?.i64()?;
    let examples = summary.column("example")?.str()?;
    for i in 0..summary.height() {
        let reason = codes
            .get(i)
            .and_then(|c| reasons.get(c as usize))
            .cloned()
            .unwrap_or_default();
        let n = counts.get(i).unwrap_or(0);
        let first = firsts.get(i).unwrap_or(i64::MAX);
        let example = examples.get(i).unwrap_or_default().to_string();
        Rejected::add(tally, reason, n, first, example);
    }
    Ok(())
}

/// One `Rejection` per reason (sorted), with its count and the first such row's example id.
/// `reasons` names the codes in `__reason`.
pub fn rejections(
    kind: InputKind,
    marked: &DataFrame,
    reasons: &[String],
) -> PolarsResult<Vec<Rejection>> {
    let mut tallied = BTreeMap::new();
    tally(kind, marked, reasons, &mut tallied)?;
    Ok(tallied
        .into_iter()
        .map(|(reason, r)| Rejection {
            reason,
            row_count: r.row_count,
            example_id: r.example_id,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::testutil::{us, utc};

    fn cal(as_of: &str, tz: &str) -> Calendar {
        Calendar::new(NaiveDate::parse_from_str(as_of, "%Y-%m-%d").unwrap(), tz).unwrap()
    }

    fn with_rows(df: DataFrame) -> DataFrame {
        df.lazy().with_row_index("__row", None).collect().unwrap()
    }

    fn strs(df: &DataFrame, name: &str) -> Vec<Option<String>> {
        df.column(name)
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .map(|v| v.map(String::from))
            .collect()
    }

    #[test]
    fn orders_rejections_cutoff_and_first_occurrence() {
        let df = DataFrame::new_infer_height(vec![
            Column::new(
                "order_id".into(),
                [
                    Some("O1"),
                    None,
                    Some("O3"),
                    Some("O1"),
                    Some("O5"),
                    Some("O6"),
                ],
            ),
            Column::new("customer_id".into(), ["C1", "C1", "C2", "C3", "C4", "C5"]),
            utc(
                "ordered_at",
                vec![
                    Some(us("2026-06-30 23:59:59")),
                    Some(us("2026-06-01 00:00:00")),
                    Some(us("2026-06-01 00:00:00")),
                    Some(us("2026-06-02 00:00:00")),
                    Some(us("2026-07-01 00:00:00")), // first instant after as_of (UTC)
                    None,
                ],
            ),
            Column::new("amount".into(), [10.0, 5.0, f64::NAN, 7.0, 1.0, 2.0]),
        ])
        .unwrap();
        let out = clean(
            InputKind::Orders,
            with_rows(df),
            vec![],
            &cal("2026-06-30", "UTC"),
            &Scales::default(),
        )
        .unwrap();
        assert_eq!(out.report.rows_read, 6);
        assert_eq!(out.report.rows_after_as_of, 1);
        assert_eq!(
            out.report.rejected,
            vec![
                Rejection {
                    reason: "duplicate order_id".into(),
                    row_count: 1,
                    example_id: "O1".into()
                },
                Rejection {
                    reason: "non-finite amount".into(),
                    row_count: 1,
                    example_id: "O3".into()
                },
                Rejection {
                    reason: "null order_id".into(),
                    row_count: 1,
                    example_id: "row 2".into()
                },
                Rejection {
                    reason: "null ordered_at".into(),
                    row_count: 1,
                    example_id: "O6".into()
                },
            ]
        );
        // 4 rejected of the 5 rows at or before as_of.
        assert!((out.report.rejected_fraction() - 0.8).abs() < 1e-12);
        // No metric reads order_id: it is dropped once checked. The first O1 (C1, 10.0) is kept.
        let names: Vec<&str> = out
            .data
            .get_column_names()
            .iter()
            .map(|n| n.as_str())
            .collect();
        assert_eq!(names, ["customer_id", "ordered_at", "amount"]);
        assert_eq!(strs(&out.data, "customer_id"), [Some("C1".to_string())]);
        let amount = out.data.column("amount").unwrap().f64().unwrap().get(0);
        assert_eq!(amount, Some(10.0), "the first O1 is kept");
    }

    #[test]
    fn ticket_times_after_as_of_are_not_yet_known_and_negative_durations_are_rejected() {
        let df = DataFrame::new_infer_height(vec![
            Column::new("ticket_id".into(), ["T1", "T2", "T3"]),
            Column::new("customer_id".into(), ["C1", "C1", "C1"]),
            Column::new("channel".into(), ["chat", "chat", "email"]),
            utc(
                "created_at",
                vec![
                    Some(us("2026-06-30 20:00:00")),
                    Some(us("2026-06-10 00:00:00")),
                    Some(us("2026-06-10 00:00:00")),
                ],
            ),
            utc(
                "first_response_at",
                vec![
                    Some(us("2026-07-01 05:00:00")), // after the end of June 30 in New York
                    Some(us("2026-06-09 23:59:59")),
                    Some(us("2026-06-10 00:00:00")),
                ],
            ),
            utc(
                "resolved_at",
                vec![None, None, Some(us("2026-06-09 00:00:00"))],
            ),
        ])
        .unwrap();
        // Nullable columns the file lacks are added as typed nulls by `read_file`.
        let df = df
            .lazy()
            .with_columns([
                lit(NULL).cast(DataType::Int64).alias("contacts"),
                lit(NULL).cast(DataType::Float64).alias("handle_time_s"),
            ])
            .collect()
            .unwrap();
        let out = clean(
            InputKind::Tickets,
            with_rows(df),
            vec![],
            &cal("2026-06-30", "America/New_York"),
            &Scales::default(),
        )
        .unwrap();
        let reasons: Vec<&str> = out
            .report
            .rejected
            .iter()
            .map(|r| r.reason.as_str())
            .collect();
        assert_eq!(
            reasons,
            [
                "first_response_at before created_at",
                "resolved_at before created_at"
            ]
        );
        assert_eq!(out.data.height(), 1);
        assert_eq!(
            out.data.column("first_response_at").unwrap().null_count(),
            1
        );
    }

    #[test]
    fn customers_signing_up_after_as_of_do_not_exist_yet() {
        let df = DataFrame::new_infer_height(vec![
            Column::new("customer_id".into(), ["C1", "C2", "C3"]),
            utc(
                "signup_at",
                vec![
                    Some(us("2026-06-01 00:00:00")),
                    None,
                    Some(us("2026-07-02 00:00:00")),
                ],
            ),
            utc(
                "churned_at",
                vec![Some(us("2026-07-01 00:00:00")), None, None],
            ),
        ])
        .unwrap();
        let out = clean(
            InputKind::Customers,
            with_rows(df),
            vec![],
            &cal("2026-06-30", "UTC"),
            &Scales::default(),
        )
        .unwrap();
        assert_eq!(
            strs(&out.data, "customer_id"),
            [Some("C1".into()), Some("C2".into())]
        );
        assert_eq!(out.report.rows_after_as_of, 1);
        // C1's churn on July 1 has not happened as of June 30.
        assert_eq!(out.data.column("churned_at").unwrap().null_count(), 2);
    }
}
