//! The report's sections, in page order, each drawn only when its table exists.

use std::collections::BTreeMap;
use std::fmt::Write;

use polars::prelude::*;

use super::chart::{self, Bar, Cell, Frame, Mark, Series, Step};
use super::html::{duration, esc, num, pct, table, Section};
use super::{bools, floats, strings, Tables};
use crate::error::{CxError, Result};

/// Every section the result has tables for.
pub fn all(t: &Tables, manifest: &serde_json::Value) -> Result<Vec<Section>> {
    let mut out = Vec::new();
    // Each table read once, for the sections drawn from it, in page order.
    let builders: [(&str, &[Builder]); 8] = [
        ("survey_scores", &[scorecard, trends]),
        ("cohort_retention", &[retention]),
        ("churn", &[churn]),
        ("activation", &[activation]),
        ("support_kpis", &[support]),
        ("ltv_segments", &[value]),
        ("clv_validation", &[validation]),
        ("cx_impact", &[cx_impact]),
    ];
    for (table, builds) in builders {
        if let Some(df) = t.frame(table)? {
            for build in builds {
                let built = build(&df, t).map_err(|e| {
                    CxError::input(format!("table {table}: not as cxmetrics writes it ({e})"))
                })?;
                out.extend(built);
            }
        }
    }
    out.push(run(t, manifest)?);
    Ok(out)
}

type Builder = fn(&DataFrame, &Tables) -> PolarsResult<Option<Section>>;

/// Rows of the overall dimension, sorted by `by`.
fn overall(df: &DataFrame, by: &[&str]) -> PolarsResult<DataFrame> {
    df.clone()
        .lazy()
        .filter(col("dimension").eq(lit("all")))
        .sort(by.to_vec(), Default::default())
        .collect()
}

fn key(pairs: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

/// A value in a span carrying its mark.
fn marked(m: &Mark, text: &str) -> String {
    format!("<span{}>{}</span>", m.attrs(), esc(text))
}

fn legend(items: &[(&str, String)]) -> String {
    let mut s = String::from("<div class=\"legend\">");
    for (name, color) in items {
        let _ = write!(
            s,
            "<span><i style=\"background:{color}\"></i>{}</span>",
            esc(name)
        );
    }
    s.push_str("</div>");
    s
}

fn survey_name(s: &str) -> String {
    s.to_uppercase()
}

/// Scorecard: each survey's latest complete period, with its interval and the change from the
/// period before it.
fn scorecard(df: &DataFrame, _: &Tables) -> PolarsResult<Option<Section>> {
    let d = overall(df, &["survey", "period"])?;
    let (survey, period) = (strings(&d, "survey")?, strings(&d, "period")?);
    let (score, lo, hi) = (
        floats(&d, "score")?,
        floats(&d, "ci_low")?,
        floats(&d, "ci_high")?,
    );
    let (responses, complete) = (floats(&d, "responses")?, bools(&d, "complete")?);
    let mut cards = String::from("<div class=\"cards\">");
    let mut any = false;
    for name in ["nps", "csat", "ces"] {
        let rows: Vec<usize> = (0..d.height())
            .filter(|&i| survey[i].as_deref() == Some(name))
            .collect();
        let Some(pos) = rows.iter().rposition(|&i| complete[i]) else {
            continue;
        };
        let i = rows[pos];
        let p = period[i].clone().unwrap_or_default();
        let k = |c: &'static str, v: f64| {
            Mark::new(
                "survey_scores",
                c,
                key(&[
                    ("survey", name),
                    ("period", &p),
                    ("dimension", "all"),
                    ("dimension_value", "all"),
                ]),
                v,
            )
        };
        any = true;
        let _ = write!(
            cards,
            "<div class=\"card\" id=\"score-{name}\"><div class=\"small\">{} · {}</div>",
            survey_name(name),
            esc(&p)
        );
        match score[i] {
            Some(s) => {
                let _ = write!(
                    cards,
                    "<div class=\"big\">{}</div>",
                    marked(&k("score", s), &num(s, 1))
                );
            }
            None => cards.push_str("<div class=\"big\">–</div>"),
        }
        if let (Some(l), Some(h)) = (lo[i], hi[i]) {
            let _ = write!(
                cards,
                "<div class=\"small\">95% CI {} to {}</div>",
                marked(&k("ci_low", l), &num(l, 1)),
                marked(&k("ci_high", h), &num(h, 1))
            );
        }
        let _ = write!(
            cards,
            "<div class=\"small\">{} responses</div>",
            marked(
                &k("responses", responses[i].unwrap_or(0.0)),
                &num(responses[i].unwrap_or(0.0), 0)
            )
        );
        if pos > 0 {
            let j = rows[pos - 1];
            let pp = period[j].clone().unwrap_or_default();
            if let (Some(now), Some(before)) = (score[i], score[j]) {
                let m = Mark::new(
                    "survey_scores",
                    "score",
                    key(&[
                        ("survey", name),
                        ("period", &pp),
                        ("dimension", "all"),
                        ("dimension_value", "all"),
                    ]),
                    before,
                );
                let change = now - before;
                let _ = write!(
                    cards,
                    "<div class=\"small\">previous period {}: {} ({}{})</div>",
                    esc(&pp),
                    marked(&m, &num(before, 1)),
                    if change >= 0.0 { "+" } else { "" },
                    num(change, 1)
                );
            }
        }
        cards.push_str("</div>");
    }
    cards.push_str("</div><p class=\"note-text\">The latest complete period of each survey, overall. CSAT is the share of satisfied responses and CES the share of easy ones, in percent; NPS runs from −100 to 100.</p>");
    Ok(any.then_some(Section {
        id: "scorecard",
        title: "Scorecard",
        body: cards,
    }))
}

/// One survey's score line with its band, over `periods`, for one dimension value.
fn score_series(
    d: &DataFrame,
    survey_name: &str,
    dimension: &str,
    value: &str,
    periods: &[String],
    color: String,
) -> PolarsResult<Series> {
    let (survey, dim, dv, period) = (
        strings(d, "survey")?,
        strings(d, "dimension")?,
        strings(d, "dimension_value")?,
        strings(d, "period")?,
    );
    let (score, lo, hi) = (
        floats(d, "score")?,
        floats(d, "ci_low")?,
        floats(d, "ci_high")?,
    );
    let complete = bools(d, "complete")?;
    let mut at: BTreeMap<&str, usize> = BTreeMap::new();
    for i in 0..d.height() {
        if survey[i].as_deref() == Some(survey_name)
            && dim[i].as_deref() == Some(dimension)
            && dv[i].as_deref() == Some(value)
        {
            if let Some(p) = period[i].as_deref() {
                at.insert(p, i);
            }
        }
    }
    let k = |c: &'static str, p: &str, v: f64| {
        Mark::new(
            "survey_scores",
            c,
            key(&[
                ("survey", survey_name),
                ("period", p),
                ("dimension", dimension),
                ("dimension_value", value),
            ]),
            v,
        )
    };
    let mut points = Vec::new();
    let mut band = Vec::new();
    let mut hollow = Vec::new();
    for p in periods {
        let i = at.get(p.as_str()).copied();
        points.push(i.and_then(|i| score[i]).map(|s| (s, k("score", p, s))));
        band.push(i.and_then(|i| match (lo[i], hi[i]) {
            (Some(l), Some(h)) => Some((k("ci_low", p, l), k("ci_high", p, h))),
            _ => None,
        }));
        hollow.push(i.is_some_and(|i| !complete[i]));
    }
    Ok(Series {
        name: format!("{} {value}", survey_name.to_uppercase()),
        color,
        points,
        hollow,
        band: Some(band),
    })
}

/// Trends of NPS, CSAT and CES with their 95 % band, then small multiples per dimension value.
fn trends(df: &DataFrame, _: &Tables) -> PolarsResult<Option<Section>> {
    let d = df
        .clone()
        .lazy()
        .sort(
            ["survey", "dimension", "dimension_value", "period"],
            Default::default(),
        )
        .collect()?;
    let (survey, dim, dv, period) = (
        strings(&d, "survey")?,
        strings(&d, "dimension")?,
        strings(&d, "dimension_value")?,
        strings(&d, "period")?,
    );
    let responses = floats(&d, "responses")?;
    let mut body = String::new();
    let mut any = false;
    for (n, name) in ["nps", "csat", "ces"].iter().enumerate() {
        let mut periods: Vec<String> = (0..d.height())
            .filter(|&i| survey[i].as_deref() == Some(*name) && dim[i].as_deref() == Some("all"))
            .filter_map(|i| period[i].clone())
            .collect();
        periods.dedup();
        if periods.is_empty() {
            continue;
        }
        any = true;
        let series = score_series(&d, name, "all", "all", &periods, chart::color(n))?;
        let _ = write!(
            body,
            "<h3>{} by period</h3><div class=\"scroll\">{}</div>",
            survey_name(name),
            chart::lines(
                &Frame::new(900.0, 240.0),
                &format!("{} trend", survey_name(name)),
                &periods,
                &[series],
                &|v| num(v, 0),
                false
            )
        );
        // Small multiples: per dimension, the values with the most responses (at most 12).
        let mut dims: Vec<String> = (0..d.height())
            .filter(|&i| survey[i].as_deref() == Some(*name))
            .filter_map(|i| dim[i].clone())
            .filter(|x| x != "all")
            .collect();
        dims.dedup();
        for dimension in dims {
            let mut totals: BTreeMap<String, f64> = BTreeMap::new();
            for i in 0..d.height() {
                if survey[i].as_deref() == Some(*name)
                    && dim[i].as_deref() == Some(dimension.as_str())
                {
                    *totals.entry(dv[i].clone().unwrap_or_default()).or_default() +=
                        responses[i].unwrap_or(0.0);
                }
            }
            let mut values: Vec<(String, f64)> = totals.into_iter().collect();
            values.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let shown = values.len().min(12);
            let _ = write!(
                body,
                "<h3>{} by {}</h3><div class=\"multiples\">",
                survey_name(name),
                esc(&dimension)
            );
            for (value, _) in &values[..shown] {
                let s = score_series(&d, name, &dimension, value, &periods, chart::color(n))?;
                let _ = write!(
                    body,
                    "<div class=\"multiple\"><p class=\"name\">{}</p>{}</div>",
                    esc(value),
                    chart::lines(
                        &Frame::small(220.0, 110.0),
                        &format!("{} {dimension} {value}", survey_name(name)),
                        &periods,
                        &[s],
                        &|v| num(v, 0),
                        false
                    )
                );
            }
            body.push_str("</div>");
            if values.len() > shown {
                let _ = write!(
                    body,
                    "<p class=\"note-text\">The {shown} values of {} with the most responses; {} more are in the table.</p>",
                    esc(&dimension),
                    values.len() - shown
                );
            }
        }
    }
    body.push_str("<p class=\"note-text\">Shaded: the 95% interval. A hollow point is a period that has not ended yet.</p>");
    Ok(any.then_some(Section {
        id: "trends",
        title: "Survey trends",
        body,
    }))
}

/// Cohort retention heatmap and the cohorts' cumulative revenue per customer.
fn retention(df: &DataFrame, _: &Tables) -> PolarsResult<Option<Section>> {
    let d = overall(df, &["cohort", "period"])?;
    if d.height() == 0 {
        return Ok(None);
    }
    let (cohort, period) = (strings(&d, "cohort")?, floats(&d, "period")?);
    let (rate, ltv) = (
        floats(&d, "retention_rate")?,
        floats(&d, "cumulative_revenue_per_customer")?,
    );
    let complete = bools(&d, "complete")?;
    let mut cohorts: Vec<String> = cohort.iter().flatten().cloned().collect();
    cohorts.dedup();
    let max_period = period.iter().flatten().fold(0.0f64, |a, b| a.max(*b)) as usize;
    let columns: Vec<String> = (0..=max_period).map(|p| p.to_string()).collect();
    let index: BTreeMap<&str, usize> = cohorts
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    let mut cells: Vec<Vec<Option<Cell>>> = (0..cohorts.len())
        .map(|_| (0..=max_period).map(|_| None).collect())
        .collect();
    let mut curves: Vec<Vec<Option<(f64, Mark)>>> = vec![vec![None; max_period + 1]; cohorts.len()];
    let mut hollow = vec![vec![false; max_period + 1]; cohorts.len()];
    for i in 0..d.height() {
        let (Some(c), Some(p)) = (cohort[i].as_deref(), period[i]) else {
            continue;
        };
        let (r, p) = (index[c], p as usize);
        let k = |column: &'static str, v: f64| {
            Mark::new(
                "cohort_retention",
                column,
                key(&[
                    ("cohort", c),
                    ("period", &p.to_string()),
                    ("dimension", "all"),
                    ("dimension_value", "all"),
                ]),
                v,
            )
        };
        cells[r][p] = Some(Cell {
            mark: rate[i].map(|v| k("retention_rate", v)),
            text: rate[i]
                .map(|v| format!("{:.0}%", v * 100.0))
                .unwrap_or_default(),
            incomplete: !complete[i],
        });
        curves[r][p] = ltv[i].map(|v| (v, k("cumulative_revenue_per_customer", v)));
        hollow[r][p] = !complete[i];
    }
    let mut body = format!(
        "<h3>Retention by cohort and period</h3><div class=\"scroll\">{}</div>\
         <p class=\"note-text\">Share of each cohort active in each period since it started; hatched cells are periods that have not ended yet.</p>",
        chart::heatmap("cohort retention", &cohorts, &columns, &cells, (0.0, 1.0))
    );
    let n = cohorts.len();
    let series: Vec<Series> = curves
        .into_iter()
        .zip(hollow)
        .enumerate()
        .map(|(i, (points, hollow))| Series {
            name: cohorts[i].clone(),
            color: chart::ramp(i, n),
            points,
            hollow,
            band: None,
        })
        .collect();
    let _ = write!(
        body,
        "<h3>Cumulative revenue per customer by cohort</h3><div class=\"scroll\">{}</div>\
         <p class=\"note-text\">One line per cohort, newer cohorts darker; x is periods since the cohort started.</p>",
        chart::lines(&Frame::new(900.0, 260.0), "cohort LTV curves", &columns, &series, &|v| num(v, 0), true)
    );
    Ok(Some(Section {
        id: "retention",
        title: "Cohort retention",
        body,
    }))
}

/// The churn waterfall of the latest twelve periods, and the churn rate of every period.
fn churn(df: &DataFrame, _: &Tables) -> PolarsResult<Option<Section>> {
    let d = overall(df, &["period"])?;
    if d.height() == 0 {
        return Ok(None);
    }
    let period = strings(&d, "period")?;
    let get = |c: &str| floats(&d, c);
    let (start, new, reactivated, churned, end) = (
        get("customers_start")?,
        get("new_customers")?,
        get("reactivated")?,
        get("churned")?,
        get("customers_end")?,
    );
    let (rate, complete) = (get("churn_rate")?, bools(&d, "complete")?);
    let k = |c: &'static str, p: &str, v: f64| {
        Mark::new(
            "churn",
            c,
            key(&[
                ("period", p),
                ("dimension", "all"),
                ("dimension_value", "all"),
            ]),
            v,
        )
    };
    let first = d.height().saturating_sub(12);
    let groups: Vec<(String, Vec<Step>)> = (first..d.height())
        .map(|i| {
            let p = period[i].clone().unwrap_or_default();
            let step = |label, c, v: Option<f64>, direction| Step {
                label,
                mark: k(c, &p, v.unwrap_or(0.0)),
                direction,
            };
            let steps = vec![
                step("start", "customers_start", start[i], 0),
                step("churned", "churned", churned[i], -1),
                step("new", "new_customers", new[i], 1),
                step("reactivated", "reactivated", reactivated[i], 1),
                step("end", "customers_end", end[i], 0),
            ];
            (p, steps)
        })
        .collect();
    let periods: Vec<String> = period
        .iter()
        .map(|p| p.clone().unwrap_or_default())
        .collect();
    let series = Series {
        name: "churn rate".into(),
        color: chart::color(1),
        points: (0..d.height())
            .map(|i| rate[i].map(|v| (v, k("churn_rate", &periods[i], v))))
            .collect(),
        hollow: complete.iter().map(|c| !c).collect(),
        band: None,
    };
    let body = format!(
        "<h3>Customers per period: start, −churned, +new, +reactivated, end</h3>{}<div class=\"scroll\">{}</div>\
         <h3>Churn rate</h3><div class=\"scroll\">{}</div>\
         <p class=\"note-text\">The waterfall shows the latest {} periods; a hollow point is a period that has not ended yet.</p>",
        legend(&[
            ("start / end", "#64748b".into()),
            ("churned", "#dc2626".into()),
            ("new", "#16a34a".into()),
            ("reactivated", "#0d9488".into())
        ]),
        chart::waterfalls(&Frame::new(1000.0, 280.0), "churn waterfall", &groups),
        chart::lines(&Frame::new(900.0, 220.0), "churn rate", &periods, &[series], &|v| pct(v), true),
        groups.len()
    );
    Ok(Some(Section {
        id: "churn",
        title: "Churn",
        body,
    }))
}

/// Activation rate at each day by cohort.
fn activation(df: &DataFrame, _: &Tables) -> PolarsResult<Option<Section>> {
    let d = overall(df, &["day", "cohort"])?;
    if d.height() == 0 {
        return Ok(None);
    }
    let (cohort, day, rate) = (
        strings(&d, "cohort")?,
        strings(&d, "day")?,
        floats(&d, "rate")?,
    );
    let mut cohorts: Vec<String> = cohort.iter().flatten().cloned().collect();
    cohorts.sort();
    cohorts.dedup();
    let index: BTreeMap<&str, usize> = cohorts
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    let mut days: Vec<String> = day.iter().flatten().cloned().collect();
    days.dedup();
    let series: Vec<Series> = days
        .iter()
        .enumerate()
        .map(|(n, dname)| {
            let mut points = vec![None; cohorts.len()];
            for i in 0..d.height() {
                let Some(c) = cohort[i].as_deref() else {
                    continue;
                };
                if day[i].as_deref() == Some(dname.as_str()) {
                    points[index[c]] = rate[i].map(|v| {
                        (
                            v,
                            Mark::new(
                                "activation",
                                "rate",
                                key(&[
                                    ("cohort", c),
                                    ("day", dname),
                                    ("dimension", "all"),
                                    ("dimension_value", "all"),
                                ]),
                                v,
                            ),
                        )
                    });
                }
            }
            Series {
                name: format!("D{dname}"),
                color: chart::color(n),
                hollow: vec![false; cohorts.len()],
                points,
                band: None,
            }
        })
        .collect();
    let items: Vec<(String, String)> = days
        .iter()
        .enumerate()
        .map(|(n, d)| (format!("D{d}"), chart::color(n)))
        .collect();
    let items: Vec<(&str, String)> = items.iter().map(|(a, b)| (a.as_str(), b.clone())).collect();
    let body = format!(
        "<h3>Activation rate by signup cohort</h3>{}<div class=\"scroll\">{}</div>\
         <p class=\"note-text\">A cohort has no point at a day it has not reached yet.</p>",
        legend(&items),
        chart::lines(
            &Frame::new(900.0, 240.0),
            "activation",
            &cohorts,
            &series,
            &|v| pct(v),
            true
        )
    );
    Ok(Some(Section {
        id: "activation",
        title: "Activation",
        body,
    }))
}

/// A column of a table: heading, table column, and how its values are shown.
type Column = (&'static str, &'static str, fn(f64) -> String);

/// Support in the latest complete period, by channel.
fn support(df: &DataFrame, _: &Tables) -> PolarsResult<Option<Section>> {
    let complete = df
        .clone()
        .lazy()
        .filter(col("complete"))
        .select([col("period").max()])
        .collect()?;
    let Some(latest) = strings(&complete, "period")?.into_iter().next().flatten() else {
        return Ok(None);
    };
    let has_channel = strings(df, "dimension")?
        .iter()
        .any(|d| d.as_deref() == Some("channel"));
    let d = df
        .clone()
        .lazy()
        .filter(col("period").cast(DataType::String).eq(lit(latest.clone())))
        .filter(
            col("dimension")
                .eq(lit("all"))
                .or(col("dimension").eq(lit(if has_channel { "channel" } else { "all" }))),
        )
        .sort(["dimension", "dimension_value"], Default::default())
        .collect()?;
    let (dim, value) = (strings(&d, "dimension")?, strings(&d, "dimension_value")?);
    let k = |c: &'static str, i: usize, v: f64| {
        Mark::new(
            "support_kpis",
            c,
            key(&[
                ("period", &latest),
                ("dimension", dim[i].as_deref().unwrap_or_default()),
                ("dimension_value", value[i].as_deref().unwrap_or_default()),
            ]),
            v,
        )
    };
    let label = |i: usize| -> String {
        if dim[i].as_deref() == Some("all") {
            "all channels".into()
        } else {
            value[i].clone().unwrap_or_default()
        }
    };
    let bars = |columns: [&'static str; 2]| -> PolarsResult<Vec<(String, Vec<Option<Bar>>)>> {
        let values: Vec<Vec<Option<f64>>> = columns
            .iter()
            .map(|c| floats(&d, c))
            .collect::<PolarsResult<_>>()?;
        Ok((0..d.height())
            .map(|i| {
                (
                    label(i),
                    columns
                        .iter()
                        .enumerate()
                        .map(|(j, c)| {
                            values[j][i].map(|v| Bar {
                                mark: k(c, i, v),
                                color: chart::color(j),
                            })
                        })
                        .collect(),
                )
            })
            .collect())
    };
    let mut body = format!(
        "<p class=\"note-text\">Period {} (the latest complete one).</p>",
        esc(&latest)
    );
    for (title, columns) in [
        (
            "First response time",
            ["first_response_median_s", "first_response_p90_s"],
        ),
        (
            "Resolution time",
            ["resolution_median_s", "resolution_p90_s"],
        ),
    ] {
        let _ = write!(
            body,
            "<h3>{title}: median and p90</h3>{}<div class=\"scroll\">{}</div>",
            legend(&[("median", chart::color(0)), ("p90", chart::color(1))]),
            {
                let groups = bars(columns)?;
                let top = groups
                    .iter()
                    .flat_map(|g| g.1.iter().flatten().map(|b| b.mark.value))
                    .fold(0.0f64, f64::max);
                // Axis ticks at whole hours, minutes or seconds.
                let unit = if top >= 7200.0 {
                    3600.0
                } else if top >= 120.0 {
                    60.0
                } else {
                    1.0
                };
                chart::grouped_bars(&Frame::new(700.0, 220.0), title, &groups, &duration, unit)
            }
        );
    }
    let cols: [Column; 6] = [
        ("tickets", "tickets", |v| num(v, 0)),
        ("SLA attainment", "sla_first_response_rate", pct),
        ("FCR", "fcr_rate", pct),
        ("CSAT", "csat_score", |v| num(v, 1)),
        ("CSAT responses", "csat_responses", |v| num(v, 0)),
        ("escalation", "escalation_rate", pct),
    ];
    let values: Vec<Vec<Option<f64>>> = cols
        .iter()
        .map(|c| floats(&d, c.1))
        .collect::<PolarsResult<_>>()?;
    let rows: Vec<Vec<String>> = (0..d.height())
        .map(|i| {
            std::iter::once(esc(&label(i)))
                .chain(
                    cols.iter()
                        .enumerate()
                        .map(|(j, (_, c, f))| match values[j][i] {
                            Some(v) => marked(&k(c, i, v), &f(v)),
                            None => "–".into(),
                        }),
                )
                .collect()
        })
        .collect();
    let header: Vec<&str> = std::iter::once("channel")
        .chain(cols.iter().map(|c| c.0))
        .collect();
    let _ = write!(body, "<h3>Service levels</h3>{}", table(&header, &rows));
    Ok(Some(Section {
        id: "support",
        title: "Support",
        body,
    }))
}

/// The RFM grid as the segments cover it: (segment, rowspan, colspan) per row from r_score 5
/// down to 1, f_score 1 to 5 across (cells covered by a span above are left out).
const RFM_LAYOUT: [&[(&str, usize, usize)]; 5] = [
    &[
        ("new_customer", 1, 1),
        ("potential_loyalist", 2, 2),
        ("champions", 1, 2),
    ],
    &[("promising", 1, 1), ("loyal", 2, 2)],
    &[("about_to_sleep", 1, 2), ("need_attention", 1, 1)],
    &[
        ("hibernating", 2, 2),
        ("at_risk", 2, 2),
        ("cant_lose_them", 2, 1),
    ],
    &[],
];

/// Value: the RFM grid with each segment's customers and revenue, value tiers, the fitted
/// model parameters.
fn value(df: &DataFrame, t: &Tables) -> PolarsResult<Option<Section>> {
    let d = overall(df, &["rfm_segment"])?;
    let segment = strings(&d, "rfm_segment")?;
    let (customers, revenue) = (floats(&d, "customers")?, floats(&d, "revenue")?);
    let (share, clv) = (
        floats(&d, "share_of_revenue")?,
        floats(&d, "avg_predicted_clv")?,
    );
    let at: BTreeMap<&str, usize> = segment
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.as_deref().map(|s| (s, i)))
        .collect();
    let k = |c: &'static str, s: &str, v: f64| {
        Mark::new(
            "ltv_segments",
            c,
            key(&[
                ("rfm_segment", s),
                ("dimension", "all"),
                ("dimension_value", "all"),
            ]),
            v,
        )
    };
    let mut body = String::from("<h3>RFM grid</h3><table class=\"rfm\"><tbody>");
    let top = customers
        .iter()
        .flatten()
        .fold(0.0f64, |a, b| a.max(*b))
        .max(1.0);
    for (row, cells) in RFM_LAYOUT.iter().enumerate() {
        let _ = write!(body, "<tr><th>R {}</th>", 5 - row);
        for (name, rows, cols) in cells.iter() {
            let (n, shade) = match at.get(name) {
                Some(&i) => (customers[i], customers[i].unwrap_or(0.0) / top),
                None => (None, 0.0),
            };
            let fill = format!("rgba(37,99,235,{:.2})", 0.08 + 0.5 * shade);
            let _ = write!(
                body,
                "<td rowspan=\"{rows}\" colspan=\"{cols}\" style=\"background:{fill}\"><b>{}</b><br>",
                esc(&name.replace('_', " "))
            );
            match (at.get(name), n) {
                (Some(&i), Some(n)) => {
                    let _ = write!(
                        body,
                        "{} customers<br>revenue {}",
                        marked(&k("customers", name, n), &num(n, 0)),
                        revenue[i]
                            .map(|r| marked(&k("revenue", name, r), &num(r, 0)))
                            .unwrap_or("–".into())
                    );
                }
                _ => body.push_str("no customers"),
            }
            body.push_str("</td>");
        }
        body.push_str("</tr>");
    }
    body.push_str("<tr><th></th>");
    for f in 1..=5 {
        let _ = write!(body, "<th style=\"text-align:center\">F {f}</th>");
    }
    body.push_str("</tr></tbody></table><p class=\"note-text\">R: recency score (5 = most recent), F: frequency score (5 = most orders).</p>");
    let rows: Vec<Vec<String>> = (0..d.height())
        .map(|i| {
            let s = segment[i].as_deref().unwrap_or_default();
            let cell = |c: &'static str, v: Option<f64>, f: &dyn Fn(f64) -> String| {
                v.map(|v| marked(&k(c, s, v), &f(v))).unwrap_or("–".into())
            };
            vec![
                esc(s),
                cell("customers", customers[i], &|v| num(v, 0)),
                cell("revenue", revenue[i], &|v| num(v, 2)),
                cell("share_of_revenue", share[i], &pct),
                cell("avg_predicted_clv", clv[i], &|v| num(v, 2)),
            ]
        })
        .collect();
    body.push_str(&table(
        &[
            "segment",
            "customers",
            "revenue",
            "share of revenue",
            "avg predicted CLV",
        ],
        &rows,
    ));
    if let Some(tiers) = t.counts("customer_ltv", "value_tier").ok().flatten() {
        let (tier, count) = (strings(&tiers, "value_tier")?, floats(&tiers, "count")?);
        let order = ["top_1pct", "top_10pct", "top_50pct", "bottom_50pct"];
        let rows: Vec<Vec<String>> = order
            .iter()
            .filter_map(|name| {
                let i = tier.iter().position(|x| x.as_deref() == Some(*name))?;
                let n = count[i]?;
                let m = Mark::new("customer_ltv", "*count", key(&[("value_tier", name)]), n);
                Some(vec![esc(name), marked(&m, &num(n, 0))])
            })
            .collect();
        let _ = write!(
            body,
            "<h3>Value tiers</h3>{}",
            table(&["tier", "customers"], &rows)
        );
    }
    if let Some(model) = t.frame("clv_model").ok().flatten() {
        let (m, p, v, note) = (
            strings(&model, "model")?,
            strings(&model, "parameter")?,
            floats(&model, "value")?,
            strings(&model, "note")?,
        );
        let rows: Vec<Vec<String>> = (0..model.height())
            .map(|i| {
                let (mm, pp) = (
                    m[i].clone().unwrap_or_default(),
                    p[i].clone().unwrap_or_default(),
                );
                let mark = v[i].map(|x| {
                    Mark::new(
                        "clv_model",
                        "value",
                        key(&[("model", &mm), ("parameter", &pp)]),
                        x,
                    )
                });
                vec![
                    esc(&mm),
                    esc(&pp),
                    mark.map(|mk| marked(&mk, &format!("{}", mk.value)))
                        .unwrap_or("–".into()),
                    esc(note[i].as_deref().unwrap_or("")),
                ]
            })
            .collect();
        let _ = write!(
            body,
            "<h3>Fitted models</h3>{}",
            table(&["model", "parameter", "value", "note"], &rows)
        );
    }
    Ok(Some(Section {
        id: "value",
        title: "Customer value",
        body,
    }))
}

/// The calibration/holdout comparison of the CLV model.
fn validation(df: &DataFrame, _: &Tables) -> PolarsResult<Option<Section>> {
    if df.height() == 0 {
        return Ok(None);
    }
    let bucket = strings(df, "frequency_bucket")?;
    let cols = [
        "customers",
        "predicted_purchases_mean",
        "actual_purchases_mean",
        "purchases_mae",
        "spend_customers",
        "predicted_spend_mean",
        "actual_spend_mean",
    ];
    let values: Vec<Vec<Option<f64>>> = cols
        .iter()
        .map(|c| floats(df, c))
        .collect::<PolarsResult<_>>()?;
    let k = |c: &'static str, b: &str, v: f64| {
        Mark::new("clv_validation", c, key(&[("frequency_bucket", b)]), v)
    };
    let groups: Vec<(String, Vec<Option<Bar>>)> = (0..df.height())
        .filter(|&i| bucket[i].as_deref() != Some("all"))
        .map(|i| {
            let b = bucket[i].clone().unwrap_or_default();
            let bars = [
                (1, "predicted_purchases_mean"),
                (2, "actual_purchases_mean"),
            ]
            .iter()
            .enumerate()
            .map(|(n, (j, c))| {
                values[*j][i].map(|v| Bar {
                    mark: k(c, &b, v),
                    color: chart::color(n),
                })
            })
            .collect();
            (b, bars)
        })
        .collect();
    let rows: Vec<Vec<String>> = (0..df.height())
        .map(|i| {
            let b = bucket[i].clone().unwrap_or_default();
            std::iter::once(esc(&b))
                .chain(cols.iter().enumerate().map(|(j, c)| match values[j][i] {
                    Some(v) => marked(&k(c, &b, v), &num(v, if j == 0 || j == 4 { 0 } else { 3 })),
                    None => "–".into(),
                }))
                .collect()
        })
        .collect();
    let body = format!(
        "<h3>Holdout purchases per customer, predicted and actual, by calibration frequency</h3>{}<div class=\"scroll\">{}</div>{}\
         <p class=\"note-text\">The models are fitted on the calibration period only; frequency is repeat purchase days in it.</p>",
        legend(&[("predicted", chart::color(0)), ("actual", chart::color(1))]),
        chart::grouped_bars(&Frame::new(700.0, 240.0), "calibration and holdout", &groups, &|v| num(v, 1), 1.0),
        table(
            &["frequency", "customers", "predicted mean", "actual mean", "MAE", "spend customers", "predicted spend", "actual spend"],
            &rows
        )
    );
    Ok(Some(Section {
        id: "clv-validation",
        title: "CLV model out of sample",
        body,
    }))
}

/// CX impact: revenue and churn lift per driver value, with customer counts.
fn cx_impact(df: &DataFrame, _: &Tables) -> PolarsResult<Option<Section>> {
    let d = overall(df, &["driver", "driver_value"])?;
    if d.height() == 0 {
        return Ok(None);
    }
    let (driver, value) = (strings(&d, "driver")?, strings(&d, "driver_value")?);
    let (customers, lift, churn_lift) = (
        floats(&d, "customers")?,
        floats(&d, "lift_vs_all")?,
        floats(&d, "churn_lift_vs_all")?,
    );
    let mut drivers: Vec<String> = driver.iter().flatten().cloned().collect();
    drivers.dedup();
    let mut body = String::from(
        "<p class=\"note-text\">Lift: a driver value's average revenue (or churned share) relative to all customers', minus 1. Beside each bar, the lift and the customers with that value.</p>",
    );
    for name in &drivers {
        let rows = |column: &'static str, values: &[Option<f64>]| -> Vec<(String, Mark, String)> {
            (0..d.height())
                .filter(|&i| driver[i].as_deref() == Some(name.as_str()))
                .filter_map(|i| {
                    let v = values[i]?;
                    let dv = value[i].clone().unwrap_or_default();
                    let mark = Mark::new(
                        "cx_impact",
                        column,
                        key(&[
                            ("driver", name),
                            ("driver_value", &dv),
                            ("dimension", "all"),
                            ("dimension_value", "all"),
                        ]),
                        v,
                    );
                    Some((
                        dv,
                        mark,
                        format!("({} customers)", num(customers[i].unwrap_or(0.0), 0)),
                    ))
                })
                .collect()
        };
        let _ = write!(
            body,
            "<h3>{}</h3><div class=\"multiples\"><div><p class=\"name\">revenue lift</p>{}</div><div><p class=\"name\">churn lift</p>{}</div></div>",
            esc(name),
            chart::hbars(560.0, &format!("{name} revenue lift"), &rows("lift_vs_all", &lift), &pct, false),
            chart::hbars(560.0, &format!("{name} churn lift"), &rows("churn_lift_vs_all", &churn_lift), &pct, true),
        );
    }
    Ok(Some(Section {
        id: "cx-impact",
        title: "CX impact",
        body,
    }))
}

/// The run: job, as_of, inputs with their rejected rows by reason, the cxmetrics version.
fn run(t: &Tables, m: &serde_json::Value) -> Result<Section> {
    let text = |v: &serde_json::Value| v.as_str().map(esc).unwrap_or_else(|| esc(&v.to_string()));
    let mut body = table(
        &["", ""],
        &[
            vec!["job".into(), text(&m["job"])],
            vec!["job file".into(), text(&m["job_file"])],
            vec!["as of".into(), text(&m["as_of"])],
            vec!["time zone".into(), text(&m["timezone"])],
            vec![
                "pipelines".into(),
                esc(&m["pipelines"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default()),
            ],
            vec!["cxmetrics".into(), text(&m["cxmetrics_version"])],
        ],
    );
    let mut rows = Vec::new();
    if let Some(inputs) = m["inputs"].as_object() {
        for (name, i) in inputs {
            let n = |k: &str| {
                i[k].as_u64()
                    .map(|v| num(v as f64, 0))
                    .unwrap_or("–".into())
            };
            let reasons = i["rows_rejected_by_reason"]
                .as_object()
                .map(|r| {
                    r.iter()
                        .map(|(k, v)| format!("{}: {}", esc(k), v))
                        .collect::<Vec<_>>()
                        .join("<br>")
                })
                .unwrap_or_default();
            rows.push(vec![
                esc(name),
                num(
                    i["paths"].as_array().map(|a| a.len()).unwrap_or(0) as f64,
                    0,
                ),
                n("rows_read"),
                n("rows_after_as_of"),
                n("rows_rejected"),
                reasons,
            ]);
        }
    }
    let _ = write!(
        body,
        "<h3>Inputs</h3>{}",
        table(
            &[
                "input",
                "files",
                "rows read",
                "rows after as_of",
                "rows rejected",
                "rejected by reason"
            ],
            &rows
        )
    );
    if let Some(rejected) = t.frame("rejected_rows")? {
        let r = || -> PolarsResult<Vec<Vec<String>>> {
            let (input, reason, count, example) = (
                strings(&rejected, "input")?,
                strings(&rejected, "reason")?,
                floats(&rejected, "row_count")?,
                strings(&rejected, "example_id")?,
            );
            Ok((0..rejected.height())
                .map(|i| {
                    let (a, b) = (
                        input[i].clone().unwrap_or_default(),
                        reason[i].clone().unwrap_or_default(),
                    );
                    let n = count[i].unwrap_or(0.0);
                    let mark = Mark::new(
                        "rejected_rows",
                        "row_count",
                        key(&[("input", &a), ("reason", &b)]),
                        n,
                    );
                    vec![
                        esc(&a),
                        esc(&b),
                        marked(&mark, &num(n, 0)),
                        esc(example[i].as_deref().unwrap_or("")),
                    ]
                })
                .collect())
        };
        let rows = r().map_err(|e| {
            CxError::input(format!(
                "table rejected_rows: not as cxmetrics writes it ({e})"
            ))
        })?;
        if !rows.is_empty() {
            let _ = write!(
                body,
                "<h3>Rejected rows</h3>{}",
                table(&["input", "reason", "rows", "example id"], &rows)
            );
        }
    }
    Ok(Section {
        id: "run",
        title: "The run",
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipelines::ltv_segments::rfm_segment;

    /// The merged cells of the drawn grid cover every (r, f) once, with the segment the
    /// definition gives it.
    #[test]
    fn the_drawn_rfm_grid_is_the_definitions() {
        let mut grid: [[Option<&str>; 5]; 5] = [[None; 5]; 5];
        for (row, cells) in RFM_LAYOUT.iter().enumerate() {
            let mut f = 0;
            for (name, rows, cols) in cells.iter() {
                while grid[row][f].is_some() {
                    f += 1;
                }
                for line in grid.iter_mut().skip(row).take(*rows) {
                    for cell in line.iter_mut().skip(f).take(*cols) {
                        assert!(cell.is_none(), "({row}, {f}) covered twice");
                        *cell = Some(name);
                    }
                }
                f += cols;
            }
        }
        for (row, cells) in grid.iter().enumerate() {
            for (f, cell) in cells.iter().enumerate() {
                let r = 5 - row as i32;
                assert_eq!(
                    *cell,
                    Some(rfm_segment(r, f as i32 + 1)),
                    "r {r} f {}",
                    f + 1
                );
            }
        }
    }
}
