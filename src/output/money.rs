//! Money in the output tables: which columns are money, and `output.money: decimal`, which
//! writes them as `Decimal(38, 6)` for finance users instead of Float64.
//!
//! Money is summed in whole units and millionths (`pipelines::common::split_amount`) and turned
//! into one double at the end. As a decimal, a value is that double rounded to the millionth:
//! for every amount below 2^33 (8,589,934,592) units this is the exact sum in millionths, since
//! the double is the one nearest to it.

use polars::prelude::*;

/// The money columns of every table, by name (an average of money is money). A table's
/// column is money when its name is here or, in `customer_cx`, ends with `_revenue_after`.
const MONEY_COLUMNS: &[&str] = &[
    "revenue",
    "nrr_revenue",
    "nrr_base_revenue",
    "cumulative_revenue",
    "cumulative_revenue_per_customer",
    "period_0_revenue",
    "avg_order_value",
    "monetary_value",
    "expected_order_value",
    "predicted_clv",
    "predicted_clv_total",
    "dimension_revenue",
    "avg_revenue",
    "avg_predicted_clv",
    "revenue_after",
    "revenue_before",
    "revenue_after_per_customer",
    "avg_revenue_before",
    "avg_revenue_after",
    "predicted_spend_mean",
    "actual_spend_mean",
    "predicted_spend_total",
    "actual_spend_total",
];

/// Whether column `name` of an output table is money.
pub fn is_money(name: &str) -> bool {
    MONEY_COLUMNS.contains(&name) || name.ends_with("_revenue_after")
}

/// The precision and scale money is written with under `output.money: decimal`.
pub const DECIMAL_PRECISION: usize = 38;
pub const DECIMAL_SCALE: usize = 6;

/// A Float64 money column as Decimal(38, 6): each value rounded to the millionth (Rust's
/// fixed-precision formatting is exact, rounding the double's own decimal expansion).
pub fn to_decimal(column: &Column) -> PolarsResult<Column> {
    let values = column.f64()?;
    let mut bad = None;
    let out: Int128Chunked = values
        .iter()
        .map(|v| {
            let v = v?;
            if !v.is_finite() {
                bad = Some(v);
                return None;
            }
            let text = format!("{v:.6}").replace('.', "");
            text.parse::<i128>().ok()
        })
        .collect();
    if let Some(v) = bad {
        polars_bail!(ComputeError: "money column `{}` holds {v}, which no decimal holds", column.name());
    }
    Ok(out
        .into_decimal(DECIMAL_PRECISION, DECIMAL_SCALE)?
        .into_series()
        .with_name(column.name().clone())
        .into_column())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_as_decimal_is_the_double_rounded_to_the_millionth() {
        let c = Column::new(
            "revenue".into(),
            [
                Some(85.2),
                Some(-0.01),
                None,
                Some(0.1 + 0.2),
                Some(1e14 + 0.5),
            ],
        );
        let d = to_decimal(&c).unwrap();
        assert_eq!(d.dtype(), &DataType::Decimal(38, 6));
        let phys: Vec<Option<i128>> = d.decimal().unwrap().physical().iter().collect();
        assert_eq!(
            phys,
            [
                Some(85_200_000),
                Some(-10_000),
                None,
                Some(300_000), // 0.30000000000000004
                Some(100_000_000_000_000_500_000),
            ]
        );
        assert!(to_decimal(&Column::new("revenue".into(), [f64::NAN])).is_err());
    }

    #[test]
    fn money_columns_by_name() {
        assert!(is_money("revenue") && is_money("csat_revenue_after"));
        assert!(!is_money("retention_rate") && !is_money("customers"));
    }
}
