//! Money columns of warehouse types, read exactly: a `Decimal(p, s)` (the money type of
//! BigQuery, Snowflake and Redshift exports; any precision up to 38) or an integer of minor
//! units with a scale declared in the job (`columns: { amount: { name: amount_cents, scale: 2 } }`).
//!
//! cxmetrics carries money to the millionth of a unit: every money sum splits an amount into
//! whole units and millionths (`pipelines::common::split_amount`). A value v · 10^-s is read as
//! its exact millionths, rounded half to even when s > 6, and becomes the double nearest to
//! that; the double is kept only when it splits back into exactly the same whole units and
//! millionths. That holds for every amount below 2^33 (8,589,934,592) units, and above it for
//! every amount whose fraction a double holds (whole amounts, halves, quarters, ...). An amount
//! that a double cannot carry to the millionth is an input error naming the file, the column,
//! how many rows and the first of them: never a silently rounded total.
//!
//! Amounts of 10^15 units or more are passed on as a double of the same magnitude, so that the
//! orders contract rejects the row as `amount out of range`, as it does for a Float64 column.

use polars::prelude::*;

use crate::contracts::MAX_ABS_AMOUNT;
use crate::pipelines::common::MICROS_PER_UNIT;

/// Millionths in a unit.
const MICROS: i128 = MICROS_PER_UNIT as i128;

/// The money value `v · 10^-scale` as a double whose split into whole units and millionths is
/// exact; None when no double carries it (see the module doc). `scale` is at most 38.
pub fn scaled_to_f64(v: i128, scale: u32) -> Option<f64> {
    let approx = || v as f64 / 10f64.powi(scale as i32);
    let micros: i128 = if scale <= 6 {
        match v.checked_mul(10i128.pow(6 - scale)) {
            Some(m) => m,
            None => return Some(approx()),
        }
    } else {
        let d = 10i128.pow(scale - 6);
        let (q, r) = (v.div_euclid(d), v.rem_euclid(d));
        // r < d <= 10^32, so 2r cannot overflow.
        if 2 * r > d || (2 * r == d && q.rem_euclid(2) == 1) {
            q + 1
        } else {
            q
        }
    };
    let whole = micros.div_euclid(MICROS);
    let frac = micros.rem_euclid(MICROS);
    if whole.unsigned_abs() as f64 >= MAX_ABS_AMOUNT {
        // Out of the money range: the contract rejects the row by its magnitude.
        return Some(approx());
    }
    // Rust parses a decimal string to the nearest double (ties to even).
    let x: f64 = show_scaled(micros, 6).parse().ok()?;
    // The same split as `split_amount`: floor, then the rest in millionths, half to even.
    let floor = x.floor();
    let back_frac = ((x - floor) * MICROS as f64).round_ties_even();
    (floor as i128 == whole && back_frac as i128 == frac).then_some(x)
}

/// `column` (a Decimal, or an integer of minor units with `scale`) as Float64 money. The error
/// counts the values no double carries and names the first, by its row number in the input
/// (`first_row` is the number of the column's first row, 1-based).
pub fn exact_money(
    column: &Column,
    scale: Option<u32>,
    first_row: u64,
) -> std::result::Result<Column, String> {
    let (values, scale) = match column.dtype() {
        DataType::Decimal(_, s) => {
            let d = column.decimal().map_err(|e| e.to_string())?;
            (d.physical().clone(), *s as u32)
        }
        dt if dt.is_integer() => {
            let scale = scale.unwrap_or(0);
            let c = column.cast(&DataType::Int128).map_err(|e| e.to_string())?;
            (c.i128().map_err(|e| e.to_string())?.clone(), scale)
        }
        _ => return Ok(column.clone()),
    };
    let mut bad = 0u64;
    let mut first_bad: Option<(u64, i128)> = None;
    let out: Float64Chunked = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let v = v?;
            let x = scaled_to_f64(v, scale);
            if x.is_none() {
                bad += 1;
                first_bad.get_or_insert((first_row + i as u64, v));
            }
            x
        })
        .collect();
    if let Some((row, v)) = first_bad {
        return Err(format!(
            "{bad} rows hold an amount that a double cannot carry to the millionth of a unit \
             (first: row {row}, {}); cxmetrics sums money in millionths, exactly below \
             8,589,934,592 units",
            show_scaled(v, scale)
        ));
    }
    Ok(out.with_name(column.name().clone()).into_column())
}

/// `v · 10^-scale` written out in decimal.
fn show_scaled(v: i128, scale: u32) -> String {
    let abs = v.unsigned_abs();
    let sign = if v < 0 { "-" } else { "" };
    if scale == 0 {
        return format!("{sign}{abs}");
    }
    let p = 10u128.pow(scale);
    format!(
        "{sign}{}.{:0width$}",
        abs / p,
        abs % p,
        width = scale as usize
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `split_amount` makes of x: (floor, millionths of the rest, half to even).
    fn split(x: f64) -> (i128, i128) {
        let f = x.floor();
        (f as i128, ((x - f) * 1e6).round_ties_even() as i128)
    }

    #[test]
    fn cents_and_decimals_become_the_same_double_as_the_float_they_were() {
        // 19.99 as cents (scale 2), as Decimal(38,9), and as the double itself.
        assert_eq!(scaled_to_f64(1999, 2), Some(19.99));
        assert_eq!(scaled_to_f64(19_990_000_000, 9), Some(19.99));
        assert_eq!(scaled_to_f64(-250, 2), Some(-2.5));
        assert_eq!(scaled_to_f64(-1, 2), Some(-0.01));
        assert_eq!(scaled_to_f64(0, 38), Some(0.0));
        assert_eq!(scaled_to_f64(7, 0), Some(7.0));
        assert_eq!(split(scaled_to_f64(-1, 2).unwrap()), (-1, 990_000));
    }

    #[test]
    fn digits_past_the_millionth_round_half_to_even() {
        // 0.0000005 is half a millionth: to even (0); 0.0000015 to 0.000002.
        assert_eq!(split(scaled_to_f64(5, 7).unwrap()), (0, 0));
        assert_eq!(split(scaled_to_f64(15, 7).unwrap()), (0, 2));
        assert_eq!(split(scaled_to_f64(16, 7).unwrap()), (0, 2));
        // -0.0000015: -1 unit and 999,998 millionths (half to even on the exact value).
        assert_eq!(split(scaled_to_f64(-15, 7).unwrap()), (-1, 999_998));
        // 1.2345674999 with scale 10 rounds down; 1.23456750000000000001 (scale 20) up.
        assert_eq!(
            split(scaled_to_f64(12_345_674_999, 10).unwrap()),
            (1, 234_567)
        );
        let v: i128 = 123_456_750_000_000_000_001;
        assert_eq!(split(scaled_to_f64(v, 20).unwrap()), (1, 234_568));
    }

    #[test]
    fn a_value_no_double_carries_to_the_millionth_is_refused() {
        // 2^33 - 1 units and 123456 millionths still fit; far above, they do not.
        let v = (8_589_934_591i128) * 1_000_000 + 123_456;
        assert_eq!(
            split(scaled_to_f64(v, 6).unwrap()),
            (8_589_934_591, 123_456)
        );
        assert_eq!(
            scaled_to_f64(123_456_789_012_345 * 1_000_000 + 123_456, 6),
            None
        );
        // ... but a whole amount that large is exact.
        let whole = scaled_to_f64(123_456_789_012_345 * 100, 2).unwrap();
        assert_eq!(split(whole), (123_456_789_012_345, 0));
        // 10^15 units or more: passed on as a double that large, for the range rule.
        assert!(scaled_to_f64(10i128.pow(37), 20).unwrap() >= 1e15);
        assert!(scaled_to_f64(i128::MAX, 0).unwrap() >= 1e15);
        assert!(scaled_to_f64(i128::MIN + 1, 3).unwrap() <= -1e15);
    }

    #[test]
    fn the_error_counts_rows_and_names_the_first() {
        let big = 123_456_789_012_345i128 * 1_000_000 + 1;
        let c = Int128Chunked::from_slice("amount".into(), &[1, big, 2, big])
            .into_decimal(38, 6)
            .unwrap()
            .into_series()
            .into_column();
        let e = exact_money(&c, None, 101).unwrap_err();
        assert!(
            e.starts_with("2 rows hold an amount") && e.contains("row 102, 123456789012345.000001"),
            "{e}"
        );
        let cents = Column::new("a".into(), [Some(1999i64), None, Some(-5)]);
        let got = exact_money(&cents, Some(2), 1).unwrap();
        let v: Vec<Option<f64>> = got.f64().unwrap().iter().collect();
        assert_eq!(v, [Some(19.99), None, Some(-0.05)]);
    }
}
