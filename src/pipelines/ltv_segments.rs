//! Pipeline `ltv_segments`: per-customer value (historical, RFM, predicted CLV) and segment
//! summaries.
//!
//! Definitions (as of the end of as_of, local days in the job time zone). A purchase is an order
//! with amount >= 0; a negative amount is a refund, which lowers revenue but is not a purchase.
//! Customers: everyone with at least one purchase on or before as_of.
//! - `orders` = purchases; `revenue` = sum of all amounts (refunds included, summed exactly in
//!   millionths of a unit: `common::split_amount`); `avg_order_value`
//!   = revenue / orders; `first_order_at`, `last_order_at` = timestamps of the first and last
//!   purchase; `recency_days` = as_of - local date of the last purchase; `tenure_days` = as_of -
//!   local date of the first purchase; `purchase_days` = distinct local purchase dates.
//! - Model inputs (Fader, Hardie & Lee 2005; the lifetimes library): `frequency` =
//!   purchase_days minus 1; `recency` = (last purchase day - first purchase day) in `unit`;
//!   `t` = (as_of - first purchase day) in `unit`; `monetary_value` = mean over the repeat
//!   purchase days (all but the first) of the day's summed purchase amounts (summed exactly,
//!   like revenue), 0 when
//!   frequency = 0.
//! - RFM scores 1-5: score = min(5, floor(5 (rank_avg - 0.5) / n) + 1), rank_avg the average
//!   rank among the n customers with better values ranked higher: r on recency_days (smaller is
//!   better), f on orders, m on revenue. `rfm_segment` from (r_score, f_score) (the grid in docs/metrics/ltv_segments.md).
//! - BG/NBD fitted on all customers' (frequency, recency, t): `p_alive`; `expected_purchases` =
//!   expected purchases over the horizon. Gamma-Gamma fitted on customers with frequency > 0 and
//!   monetary_value > 0: `expected_order_value` = its conditional expectation for customers with
//!   frequency > 0, the population mean v p / (q - 1) for the rest.
//! - `predicted_clv` = sum over months i = 1..horizon of (expected purchases in month i) x
//!   expected_order_value / (1 + monthly_discount_rate)^i, a month being 365.25 / 12 days.
//! - `value_tier`: top_1pct / top_10pct / top_50pct / bottom_50pct by predicted_clv (by revenue
//!   when there is no model): with rank = 1 + customers with a strictly greater value, the
//!   tier is top_1pct when (rank - 1) / n < 0.01, top_10pct when < 0.10, top_50pct when < 0.5.
//!   These quotients are exact divisions (`common::div_scalar`), so a share of exactly 0.1 is
//!   not below 0.10.
//! - Segment rows (`ltv_segments`): `revenue` = the customers' revenues summed exactly;
//!   `avg_revenue` = revenue / customers; the other averages are plain means, the model ones
//!   added in value order so that reruns give the same last digit.
//!
//! The models are fitted on materialised data, so this pipeline collects its per-customer
//! summary once; a fit that fails leaves the model columns null and says why in `clv_model`.

use std::collections::HashMap;

use polars::prelude::*;

use super::common::{
    amount_from_parts, by_dimensions, div_scalar, mean_in_value_order, ratio, split_amount,
    sum_amount_parts, JoinOnCustomer, PairKey, SortOverallFirst,
};
use super::lifecycle::attach_segments;
use super::Inputs;
use crate::clv::bgnbd::{self, BgNbd};
use crate::clv::gamma_gamma::{self, GammaGamma};
use crate::clv::Fit;
use crate::config::{ClvModel, ModelUnit};
use crate::contracts::InputKind;
use crate::parallel::split_rows;
use crate::time::{date_lit, Calendar};

/// Resolved parameters.
#[derive(Debug, Clone)]
pub struct LtvSegments {
    pub unit: ModelUnit,
    pub horizon_months: u32,
    pub monthly_discount_rate: f64,
    pub model: ClvModel,
    pub by: Vec<String>,
}

impl ModelUnit {
    pub fn days(self) -> f64 {
        match self {
            ModelUnit::Day => 1.0,
            ModelUnit::Week => 7.0,
        }
    }
}

/// Days in a month for the CLV horizon.
pub const MONTH_DAYS: f64 = 365.25 / 12.0;

/// (r_score band, f_score) -> segment, as in the grid of docs/metrics/ltv_segments.md.
pub fn rfm_segment(r: i32, f: i32) -> &'static str {
    const GRID: [[&str; 5]; 4] = [
        // r = 1-2
        [
            "hibernating",
            "hibernating",
            "at_risk",
            "at_risk",
            "cant_lose_them",
        ],
        // r = 3
        [
            "about_to_sleep",
            "about_to_sleep",
            "need_attention",
            "loyal",
            "loyal",
        ],
        // r = 4
        [
            "promising",
            "potential_loyalist",
            "potential_loyalist",
            "loyal",
            "loyal",
        ],
        // r = 5
        [
            "new_customer",
            "potential_loyalist",
            "potential_loyalist",
            "champions",
            "champions",
        ],
    ];
    let row = (r.clamp(2, 5) - 2) as usize;
    GRID[row][(f.clamp(1, 5) - 1) as usize]
}

fn score(value: Expr, n: usize) -> Expr {
    let rank = value.rank(
        RankOptions {
            method: RankMethod::Average,
            descending: false,
        },
        None,
    );
    let raw = div_scalar(
        lit(5.0) * (rank.cast(DataType::Float64) - lit(0.5)),
        n as f64,
    )
    .floor()
        + lit(1.0);
    when(raw.clone().gt(lit(5.0)))
        .then(lit(5.0))
        .otherwise(raw)
        .cast(DataType::Int32)
}

/// The RFM grid as a lookup table (r_score, f_score, rfm_segment). A join rather than 25
/// nested when/then branches, which polars optimises very slowly.
fn segment_grid() -> LazyFrame {
    let (mut r, mut f, mut seg) = (Vec::new(), Vec::new(), Vec::new());
    for ri in 1..=5 {
        for fi in 1..=5 {
            r.push(ri);
            f.push(fi);
            seg.push(rfm_segment(ri, fi));
        }
    }
    DataFrame::new_infer_height(vec![
        Column::new("r_score".into(), r),
        Column::new("f_score".into(), f),
        Column::new("rfm_segment".into(), seg),
    ])
    .expect("equal lengths")
    .lazy()
}

/// Per-customer history and model inputs (materialised, sorted by customer_id).
fn history(orders: LazyFrame, p: &LtvSegments, cal: &Calendar) -> PolarsResult<DataFrame> {
    let unit = p.unit.days();
    let as_of = date_lit(cal.as_of).cast(DataType::Int32);
    let orders = orders
        .with_column(cal.local_date(col("ordered_at")).alias("__day"))
        .with_columns(split_amount(col("amount"), "__amount"));
    let purchase = col("amount").gt_eq(lit(0.0));
    let per_customer = orders.clone().group_by([col("customer_id")]).agg(
        [
            purchase.clone().cast(DataType::Int64).sum().alias("orders"),
            // when/then rather than a filter inside the aggregation: polars aggregates the
            // masked column directly instead of filtering every group.
            when(purchase.clone())
                .then(col("ordered_at"))
                .otherwise(lit(NULL))
                .min()
                .alias("first_order_at"),
            when(purchase.clone())
                .then(col("ordered_at"))
                .otherwise(lit(NULL))
                .max()
                .alias("last_order_at"),
        ]
        .into_iter()
        .chain(sum_amount_parts("__amount", "__revenue"))
        .collect::<Vec<_>>(),
    );
    let purchases = orders.filter(purchase);
    let pair = PairKey::new(&purchases, "__day");
    let days = pair
        // In (customer_id, __day) order, which group_by_stable keeps.
        .group_by(purchases, sum_amount_parts("__amount", "__day").to_vec())
        .group_by_stable([col("customer_id")])
        .agg([
            len().cast(DataType::Int64).alias("purchase_days"),
            col("__day").min().alias("__first_day"),
            col("__day").max().alias("__last_day"),
            // All purchase days but the first (already in day order within each customer).
            (col("__day_w").sum() - col("__day_w").first()).alias("__repeat_w"),
            (col("__day_m").sum() - col("__day_m").first()).alias("__repeat_m"),
        ]);
    let day_num = |c: &str| col(c).cast(DataType::Int32).cast(DataType::Float64);
    per_customer
        .join_on_customer(days, JoinType::Inner)
        .filter(col("orders").gt(lit(0)))
        .with_column(amount_from_parts(col("__revenue_w"), col("__revenue_m")).alias("revenue"))
        .with_columns([
            (col("revenue") / col("orders").cast(DataType::Float64)).alias("avg_order_value"),
            (as_of.clone() - col("__last_day").cast(DataType::Int32))
                .cast(DataType::Int64)
                .alias("recency_days"),
            (as_of.clone() - col("__first_day").cast(DataType::Int32))
                .cast(DataType::Int64)
                .alias("tenure_days"),
            (col("purchase_days") - lit(1i64)).alias("frequency"),
            div_scalar(day_num("__last_day") - day_num("__first_day"), unit).alias("recency"),
            div_scalar(as_of.cast(DataType::Float64) - day_num("__first_day"), unit).alias("t"),
            when(col("purchase_days").gt(lit(1)))
                .then(
                    amount_from_parts(col("__repeat_w"), col("__repeat_m"))
                        / (col("purchase_days") - lit(1i64)).cast(DataType::Float64),
                )
                .otherwise(lit(0.0))
                .alias("monetary_value"),
        ])
        .sort(["customer_id"], Default::default())
        .collect()
}

/// The fitted models (or why not) and the per-customer model columns.
struct Models {
    /// Customers whose expected purchases (or predicted CLV) could not be computed although
    /// the models were fitted: their model columns are null.
    uncomputable: u64,
    bgnbd: Option<Result<Fit<BgNbd>, String>>,
    gamma_gamma: Option<Result<Fit<GammaGamma>, String>>,
    columns: DataFrame,
}

fn f64_vec(df: &DataFrame, name: &str) -> PolarsResult<Vec<f64>> {
    Ok(df
        .column(name)?
        .cast(&DataType::Float64)?
        .f64()?
        .iter()
        .map(|v| v.unwrap_or(f64::NAN))
        .collect())
}

/// The models' inputs per customer, from a frame with `customer_ltv`'s frequency, recency,
/// t and monetary_value columns (the pipeline's history, or a written `customer_ltv`).
pub struct ModelInputs {
    pub x: Vec<f64>,
    pub t_x: Vec<f64>,
    pub t: Vec<f64>,
    pub m: Vec<f64>,
}

impl ModelInputs {
    pub fn from_history(df: &DataFrame) -> PolarsResult<Self> {
        Ok(ModelInputs {
            x: f64_vec(df, "frequency")?,
            t_x: f64_vec(df, "recency")?,
            t: f64_vec(df, "t")?,
            m: f64_vec(df, "monetary_value")?,
        })
    }

    /// (x, m) of the repeat buyers with a positive mean spend: Gamma-Gamma's data.
    pub fn repeat_buyers(&self) -> (Vec<f64>, Vec<f64>) {
        self.x
            .iter()
            .zip(&self.m)
            .filter(|(x, m)| **x > 0.0 && **m > 0.0)
            .map(|(x, m)| (*x, *m))
            .unzip()
    }
}

fn fit_models(hist: &DataFrame, p: &LtvSegments) -> PolarsResult<Models> {
    let n = hist.height();
    let ids = hist.column("customer_id")?.clone();
    let none = |name: &str| Column::full_null(name.into(), n, &DataType::Float64);
    if p.model == ClvModel::None {
        return Ok(Models {
            uncomputable: 0,
            bgnbd: None,
            gamma_gamma: None,
            columns: DataFrame::new(
                n,
                vec![
                    ids,
                    none("p_alive"),
                    none("expected_purchases"),
                    none("expected_order_value"),
                    none("predicted_clv"),
                ],
            )?,
        });
    }
    let inputs = ModelInputs::from_history(hist)?;
    let bg = bgnbd::fit(&bgnbd::group(&inputs.x, &inputs.t_x, &inputs.t));
    let (gx, gm) = inputs.repeat_buyers();
    let gg = gamma_gamma::fit(&gx, &gm);
    let ModelInputs { x, t_x, t, m } = inputs;

    let month = MONTH_DAYS / p.unit.days();
    let horizon = p.horizon_months as usize;
    // Per customer: (p_alive, expected_purchases, expected_order_value, predicted_clv).
    type Row = (Option<f64>, Option<f64>, Option<f64>, Option<f64>);
    // Per (x, t_x, T): p_alive and the expected purchases at each month of the horizon (None
    // when a point cannot be computed).
    type Shared = (f64, Option<Vec<f64>>);
    let rows = |range: std::ops::Range<usize>| -> Vec<Row> {
        // Customers sharing (x, t_x, T) share every BG/NBD quantity.
        let mut cache: HashMap<(u64, u64, u64), Shared> = HashMap::new();
        range
            .map(|i| {
                let eov = gg.as_ref().ok().map(|g| {
                    if x[i] > 0.0 {
                        g.params.conditional_mean(x[i], m[i])
                    } else {
                        g.params.population_mean()
                    }
                });
                let Ok(b) = &bg else {
                    return (None, None, eov, None);
                };
                let (alive, curve) = cache
                    .entry((x[i].to_bits(), t_x[i].to_bits(), t[i].to_bits()))
                    .or_insert_with(|| {
                        // None when any point of the curve cannot be computed.
                        let curve = (0..=horizon)
                            .map(|k| {
                                b.params
                                    .expected_purchases(k as f64 * month, x[i], t_x[i], t[i])
                            })
                            .collect::<Option<Vec<f64>>>();
                        (b.params.p_alive(x[i], t_x[i], t[i]), curve)
                    });
                let Some(curve) = curve else {
                    return (Some(*alive), None, eov, None);
                };
                let clv = eov.and_then(|value| {
                    let clv = (1..=horizon)
                        .map(|k| {
                            (curve[k] - curve[k - 1]) * value
                                / (1.0 + p.monthly_discount_rate).powi(k as i32)
                        })
                        .sum::<f64>();
                    clv.is_finite().then_some(clv)
                });
                let eov = eov.filter(|v| v.is_finite());
                (Some(*alive), Some(curve[horizon]), eov, clv)
            })
            .collect()
    };
    // Each customer's values depend on that customer alone: two threads, same numbers.
    let rows: Vec<Row> = split_rows(n, rows).into_iter().flatten().collect();
    let p_alive: Vec<Option<f64>> = rows.iter().map(|r| r.0).collect();
    let expected: Vec<Option<f64>> = rows.iter().map(|r| r.1).collect();
    let eov: Vec<Option<f64>> = rows.iter().map(|r| r.2).collect();
    let clv: Vec<Option<f64>> = rows.iter().map(|r| r.3).collect();
    let uncomputable = match (&bg, &gg) {
        (Ok(_), Ok(_)) => clv.iter().filter(|v| v.is_none()).count() as u64,
        (Ok(_), Err(_)) => expected.iter().filter(|v| v.is_none()).count() as u64,
        _ => 0,
    };
    Ok(Models {
        uncomputable,
        bgnbd: Some(bg),
        gamma_gamma: Some(gg),
        columns: DataFrame::new(
            n,
            vec![
                ids,
                Column::new("p_alive".into(), p_alive),
                Column::new("expected_purchases".into(), expected),
                Column::new("expected_order_value".into(), eov),
                Column::new("predicted_clv".into(), clv),
            ],
        )?,
    })
}

fn model_table(models: &Models) -> PolarsResult<DataFrame> {
    let mut model = Vec::new();
    let mut parameter = Vec::new();
    let mut value: Vec<Option<f64>> = Vec::new();
    let mut note: Vec<Option<String>> = Vec::new();
    let mut push = |m: &str, rows: Vec<(&str, Option<f64>)>, why: Option<String>| {
        for (name, v) in rows {
            model.push(m.to_string());
            parameter.push(name.to_string());
            value.push(v);
            note.push(if name == "converged" {
                why.clone()
            } else {
                None
            });
        }
    };
    match &models.bgnbd {
        Some(Ok(f)) => push(
            "bgnbd",
            vec![
                ("r", Some(f.params.r)),
                ("alpha", Some(f.params.alpha)),
                ("a", Some(f.params.a)),
                ("b", Some(f.params.b)),
                ("log_likelihood", Some(f.log_likelihood)),
                ("customers", Some(f.customers as f64)),
                ("converged", Some(if f.converged { 1.0 } else { 0.0 })),
            ],
            (models.uncomputable > 0).then(|| {
                format!(
                    "expected purchases could not be computed for {} customer(s) (the \
                     hypergeometric series needs more than {} terms): their \
                     expected_purchases and predicted_clv are null, and value tiers rank \
                     every customer by revenue",
                    models.uncomputable,
                    crate::clv::special::MAX_SERIES_TERMS
                )
            }),
        ),
        Some(Err(why)) => push(
            "bgnbd",
            vec![
                ("r", None),
                ("alpha", None),
                ("a", None),
                ("b", None),
                ("log_likelihood", None),
                ("customers", None),
                ("converged", Some(0.0)),
            ],
            Some(why.clone()),
        ),
        None => {}
    }
    match &models.gamma_gamma {
        Some(Ok(f)) => push(
            "gamma_gamma",
            vec![
                ("p", Some(f.params.p)),
                ("q", Some(f.params.q)),
                ("v", Some(f.params.v)),
                ("log_likelihood", Some(f.log_likelihood)),
                ("customers", Some(f.customers as f64)),
                ("converged", Some(if f.converged { 1.0 } else { 0.0 })),
            ],
            None,
        ),
        Some(Err(why)) => push(
            "gamma_gamma",
            vec![
                ("p", None),
                ("q", None),
                ("v", None),
                ("log_likelihood", None),
                ("customers", None),
                ("converged", Some(0.0)),
            ],
            Some(why.clone()),
        ),
        None => {}
    }
    DataFrame::new_infer_height(vec![
        Column::new("model".into(), model),
        Column::new("parameter".into(), parameter),
        Column::new("value".into(), value),
        Column::new("note".into(), note),
    ])
}

/// (customer_id, predicted_clv) from the same history and fits as `customer_ltv` (used by
/// `cx_impact`).
pub fn predicted_clv(
    orders: LazyFrame,
    p: &LtvSegments,
    cal: &Calendar,
) -> PolarsResult<DataFrame> {
    let hist = history(orders, p, cal)?;
    let models = fit_models(&hist, p)?;
    models.columns.select(["customer_id", "predicted_clv"])
}

/// Computes `customer_ltv`, `ltv_segments` and `clv_model`.
pub fn ltv_segments(
    inputs: &Inputs,
    p: &LtvSegments,
    cal: &Calendar,
) -> PolarsResult<Vec<(&'static str, LazyFrame)>> {
    let orders = inputs
        .get(&InputKind::Orders)
        .cloned()
        .expect("the runner loads orders");
    let hist = history(orders, p, cal)?;
    let models = fit_models(&hist, p)?;
    let n = hist.height();

    // By revenue when any customer lacks a predicted CLV (no model, a failed fit, or a value
    // that could not be computed): one ranking for everyone.
    let tier_value = if models.columns.column("predicted_clv")?.null_count() > 0 {
        col("revenue")
    } else {
        col("predicted_clv")
    };
    let tier_rank = tier_value.rank(
        RankOptions {
            method: RankMethod::Min,
            descending: true,
        },
        None,
    );
    let share = div_scalar(tier_rank.cast(DataType::Float64) - lit(1.0), n as f64);
    let customers = hist
        .lazy()
        .join_on_customer(models.columns.clone().lazy(), JoinType::Left)
        .with_columns([
            score(-col("recency_days"), n).alias("r_score"),
            score(col("orders"), n).alias("f_score"),
            score(col("revenue"), n).alias("m_score"),
            when(share.clone().lt(lit(0.01)))
                .then(lit("top_1pct"))
                .when(share.clone().lt(lit(0.10)))
                .then(lit("top_10pct"))
                .when(share.lt(lit(0.5)))
                .then(lit("top_50pct"))
                .otherwise(lit("bottom_50pct"))
                .alias("value_tier"),
        ])
        .join(
            segment_grid(),
            [col("r_score"), col("f_score")],
            [col("r_score"), col("f_score")],
            JoinArgs::new(JoinType::Left),
        )
        .select([
            col("customer_id"),
            col("first_order_at"),
            col("last_order_at"),
            col("orders"),
            col("purchase_days"),
            col("revenue"),
            col("avg_order_value"),
            col("recency_days"),
            col("tenure_days"),
            col("r_score"),
            col("f_score"),
            col("m_score"),
            col("rfm_segment"),
            col("frequency"),
            col("recency"),
            col("t"),
            col("monetary_value"),
            col("p_alive"),
            col("expected_purchases"),
            col("expected_order_value"),
            col("predicted_clv"),
            col("value_tier"),
        ]);

    let groups = [col("dimension"), col("dimension_value")];
    // Revenue is summed exactly again (each customer's revenue is a whole number of
    // millionths, so splitting it is exact) and the model columns are averaged in value order:
    // joins and group-bys hand customers over in no fixed order, and float sums in that order
    // could change the last digit from run to run.
    let segments = by_dimensions(
        attach_segments(customers.clone(), inputs, &p.by)
            .with_columns(split_amount(col("revenue"), "__revenue")),
        &[col("rfm_segment")],
        &p.by,
        &[
            len().cast(DataType::Int64).alias("customers"),
            col("__revenue_w").sum(),
            col("__revenue_m").sum(),
            col("orders")
                .cast(DataType::Float64)
                .mean()
                .alias("avg_orders"),
            col("recency_days")
                .cast(DataType::Float64)
                .mean()
                .alias("avg_recency_days"),
            mean_in_value_order(col("predicted_clv")).alias("avg_predicted_clv"),
            mean_in_value_order(col("p_alive")).alias("avg_p_alive"),
        ],
    )
    .with_column(amount_from_parts(col("__revenue_w"), col("__revenue_m")).alias("revenue"))
    .with_column(ratio(col("revenue"), col("customers")).alias("avg_revenue"))
    // Sorted before the shares: a window sum adds its rows in frame order, and the breakdowns
    // come out of parallel group-bys in no fixed order, which changed the last digit of
    // share_of_revenue from run to run.
    .sort_overall_first(&[], &["rfm_segment"])
    .with_columns([
        ratio(
            col("customers"),
            col("customers").sum().over(groups.clone())?,
        )
        .alias("share_of_customers"),
        ratio(col("revenue"), col("revenue").sum().over(groups)?).alias("share_of_revenue"),
    ])
    .select([
        col("dimension"),
        col("dimension_value"),
        col("rfm_segment"),
        col("customers"),
        col("share_of_customers"),
        col("revenue"),
        col("share_of_revenue"),
        col("avg_revenue"),
        col("avg_orders"),
        col("avg_recency_days"),
        col("avg_predicted_clv").cast(DataType::Float64),
        col("avg_p_alive").cast(DataType::Float64),
    ]);
    Ok(vec![
        ("customer_ltv", customers),
        ("ltv_segments", segments),
        ("clv_model", model_table(&models)?.lazy()),
    ])
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::pipelines::lifecycle::testing::*;

    fn cal(as_of: &str) -> Calendar {
        Calendar::new(NaiveDate::parse_from_str(as_of, "%Y-%m-%d").unwrap(), "UTC").unwrap()
    }

    fn params(model: ClvModel) -> LtvSegments {
        LtvSegments {
            unit: ModelUnit::Day,
            horizon_months: 12,
            monthly_discount_rate: 0.01,
            model,
            by: vec![],
        }
    }

    fn run(d: &Data, model: ClvModel, as_of: &str) -> Vec<DataFrame> {
        ltv_segments(&d.inputs(), &params(model), &cal(as_of))
            .unwrap()
            .into_iter()
            .map(|(_, lf)| lf.collect().unwrap())
            .collect()
    }

    #[test]
    fn the_segment_grid() {
        let grid: Vec<Vec<&str>> = (1..=5)
            .map(|r| (1..=5).map(|f| rfm_segment(r, f)).collect())
            .collect();
        let r12 = [
            "hibernating",
            "hibernating",
            "at_risk",
            "at_risk",
            "cant_lose_them",
        ];
        assert_eq!(grid[0], r12);
        assert_eq!(grid[1], r12);
        assert_eq!(
            grid[2],
            [
                "about_to_sleep",
                "about_to_sleep",
                "need_attention",
                "loyal",
                "loyal"
            ]
        );
        assert_eq!(
            grid[3],
            [
                "promising",
                "potential_loyalist",
                "potential_loyalist",
                "loyal",
                "loyal"
            ]
        );
        assert_eq!(
            grid[4],
            [
                "new_customer",
                "potential_loyalist",
                "potential_loyalist",
                "champions",
                "champions"
            ]
        );
    }

    /// At n = 850 the exact quotients 85 / 850 = 0.1, 425 / 850 = 0.5 and 5 (170.5 - 0.5) / 850 = 1
    /// come out 1 ulp low when divided through the reciprocal (polars' scalar division), which
    /// put the customers on the boundary one tier or one score up.
    #[test]
    fn tiers_and_scores_on_exact_boundaries() {
        let mut d = Data::default();
        // Revenue = the customer's number, except that customer 171 ties customer 170.
        for i in 1..=850 {
            let amount = if i == 171 { 170.0 } else { i as f64 };
            d.order(&format!("C{i:04}"), "2026-03-01 12:00:00", amount);
        }
        let out = run(&d, ClvModel::None, "2026-03-31");
        let c = &out[0];
        let pick = |col: &str, i: usize| -> String {
            c.column(col).unwrap().get(i - 1).unwrap().to_string()
        };
        // Tiers by revenue: rank = 1 + the customers with more, share = (rank - 1) / 850.
        assert_eq!(pick("value_tier", 766), "\"top_10pct\""); // share 84 / 850
        assert_eq!(pick("value_tier", 765), "\"top_50pct\""); // share 85 / 850 = 0.1
        assert_eq!(pick("value_tier", 426), "\"top_50pct\""); // share 424 / 850
        assert_eq!(pick("value_tier", 425), "\"bottom_50pct\""); // share 425 / 850 = 0.5

        // m_score = min(5, floor(5 (rank - 0.5) / 850) + 1): revenue 170 has ranks 170 and 171,
        // average 170.5, so floor(1) + 1 = 2; customer 169 has floor(0.991...) + 1 = 1.
        assert_eq!(i32s(c, "m_score")[168], 1);
        assert_eq!(i32s(c, "m_score")[169], 2);
        assert_eq!(i32s(c, "m_score")[170], 2);
    }

    #[test]
    fn history_rfm_with_ties_refunds_and_one_order_customers() {
        let mut d = Data::default();
        // A: two purchases on one day (one purchase day), another later, and a refund.
        d.order("A", "2026-01-10 09:00:00", 30.0)
            .order("A", "2026-01-10 18:00:00", 20.0)
            .order("A", "2026-03-01 12:00:00", 40.0)
            .order("A", "2026-03-05 12:00:00", -10.0)
            // B: one order (frequency 0, monetary 0).
            .order("B", "2026-02-01 12:00:00", 100.0)
            // C and D tie on everything.
            .order("C", "2026-03-01 08:00:00", 10.0)
            .order("D", "2026-03-01 08:00:00", 10.0)
            // E: only a refund, so not a customer.
            .order("E", "2026-03-02 08:00:00", -5.0);
        let out = run(&d, ClvModel::None, "2026-03-31");
        let c = &out[0];
        assert_eq!(strs(c, "customer_id"), ["A", "B", "C", "D"]);
        assert_eq!(i64s(c, "orders"), [3, 1, 1, 1]);
        assert_eq!(i64s(c, "purchase_days"), [2, 1, 1, 1]);
        assert_eq!(
            f64s(c, "revenue"),
            [Some(80.0), Some(100.0), Some(10.0), Some(10.0)]
        );
        assert_eq!(f64s(c, "avg_order_value")[0], Some(80.0 / 3.0));
        assert_eq!(i64s(c, "recency_days"), [30, 58, 30, 30]);
        assert_eq!(i64s(c, "tenure_days"), [80, 58, 30, 30]);
        assert_eq!(i64s(c, "frequency"), [1, 0, 0, 0]);
        // Unit day: recency = Mar 1 - Jan 10 = 50; t = Mar 31 - Jan 10 = 80.
        assert_eq!(
            f64s(c, "recency"),
            [Some(50.0), Some(0.0), Some(0.0), Some(0.0)]
        );
        assert_eq!(
            f64s(c, "t"),
            [Some(80.0), Some(58.0), Some(30.0), Some(30.0)]
        );
        // Monetary: the repeat day (March 1: 40); the refund is not a purchase.
        assert_eq!(
            f64s(c, "monetary_value"),
            [Some(40.0), Some(0.0), Some(0.0), Some(0.0)]
        );
        // RFM by hand, n = 4, score = min(5, floor(5 (rank - 0.5) / 4) + 1):
        // recency_days 30, 58, 30, 30 -> ranks (smaller is better) 3, 1, 3, 3 -> 4, 1, 4, 4.
        assert_eq!(i32s(c, "r_score"), [4, 1, 4, 4]);
        // orders 3, 1, 1, 1 -> ranks 4, 2, 2, 2 -> 5, 2, 2, 2.
        assert_eq!(i32s(c, "f_score"), [5, 2, 2, 2]);
        // revenue 80, 100, 10, 10 -> ranks 3, 4, 1.5, 1.5 -> 4, 5, 2, 2.
        assert_eq!(i32s(c, "m_score"), [4, 5, 2, 2]);
        assert_eq!(
            strs(c, "rfm_segment"),
            [
                "loyal",
                "hibernating",
                "potential_loyalist",
                "potential_loyalist"
            ]
        );
        // No model: model columns null, tiers by revenue (ranks 2, 1, 3, 3 of 4).
        assert_eq!(c.column("predicted_clv").unwrap().null_count(), 4);
        assert_eq!(
            strs(c, "value_tier"),
            ["top_50pct", "top_1pct", "bottom_50pct", "bottom_50pct"]
        );
        assert_eq!(out[2].height(), 0, "no clv_model rows without a model");

        let seg = &out[1];
        assert_eq!(
            strs(seg, "rfm_segment"),
            ["hibernating", "loyal", "potential_loyalist"]
        );
        assert_eq!(i64s(seg, "customers"), [1, 1, 2]);
        assert_eq!(
            f64s(seg, "share_of_customers"),
            [Some(0.25), Some(0.25), Some(0.5)]
        );
        assert_eq!(
            f64s(seg, "share_of_revenue"),
            [Some(0.5), Some(0.4), Some(0.1)]
        );
        assert_eq!(
            f64s(seg, "avg_recency_days"),
            [Some(58.0), Some(30.0), Some(30.0)]
        );
    }

    #[test]
    fn degenerate_data_writes_history_and_explains_the_missing_model() {
        let mut d = Data::default();
        for i in 0..20 {
            d.order(&format!("C{i}"), "2026-03-01 08:00:00", 10.0);
        }
        let out = run(&d, ClvModel::Bgnbd, "2026-03-31");
        assert_eq!(out[0].height(), 20);
        assert_eq!(out[0].column("p_alive").unwrap().null_count(), 20);
        let m = &out[2];
        let notes: Vec<Option<&str>> = m.column("note").unwrap().str().unwrap().iter().collect();
        assert!(notes
            .iter()
            .flatten()
            .any(|n| n.contains("no customer has a repeat purchase")));
        assert!(notes
            .iter()
            .flatten()
            .any(|n| n.contains("too few repeat buyers")));
    }

    #[test]
    fn predicted_clv_is_the_discounted_sum_of_monthly_expectations() {
        let bg = BgNbd {
            r: 0.2426,
            alpha: 4.414,
            a: 0.7929,
            b: 2.426,
        };
        let gg = GammaGamma {
            p: 6.25,
            q: 3.74,
            v: 15.44,
        };
        // Unit week, 3 months at 1 %/month, a customer with x = 2, t_x = 30.43, T = 38.86 and
        // a mean spend of 35: by hand, month k spans (k-1)m..km weeks, m = 365.25/12/7.
        let m = MONTH_DAYS / 7.0;
        let e = |w: f64| bg.expected_purchases(w, 2.0, 30.43, 38.86).unwrap();
        let value = gg.conditional_mean(2.0, 35.0);
        let by_hand = (e(m) - e(0.0)) * value / 1.01
            + (e(2.0 * m) - e(m)) * value / 1.01f64.powi(2)
            + (e(3.0 * m) - e(2.0 * m)) * value / 1.01f64.powi(3);
        // The same through the pipeline's code path.
        let p = LtvSegments {
            unit: ModelUnit::Week,
            horizon_months: 3,
            monthly_discount_rate: 0.01,
            model: ClvModel::Bgnbd,
            by: vec![],
        };
        let curve: Vec<f64> = (0..=3).map(|k| e(k as f64 * m)).collect();
        let total: f64 = (1..=3)
            .map(|k| {
                (curve[k] - curve[k - 1]) * value / (1.0 + p.monthly_discount_rate).powi(k as i32)
            })
            .sum();
        assert!((total - by_hand).abs() < 1e-12);
        // Undiscounted, the months add up to the 3-month expectation.
        assert!(((e(3.0 * m) - e(0.0)) - curve[3]).abs() < 1e-12);
        assert!(by_hand > 0.0 && by_hand < curve[3] * value);
    }
}
