//! Exact sums of floats, so that a mean does not depend on the order of its terms, nor on how
//! the rows were split into customer buckets.
//!
//! A finite double is m · 2^e exactly, with m an integer below 2^53. Grouping a column's values
//! by e and summing their m as 128-bit integers is exact, and such partial sums merge exactly
//! by adding them again (bucket by bucket, in any order). The total Σ m_e · 2^e is then rounded
//! once to the nearest double (`sum_of_parts`, Shewchuk's algorithm as in Python's
//! `math.fsum`). Money is not summed this way: it has its own decimal parts
//! (`pipelines::common::split_amount`).

/// (e, m) with v = m · 2^e exactly, m a signed integer below 2^53 in magnitude; None for 0, NaN
/// and the infinities.
pub fn float_parts(v: f64) -> Option<(i32, i64)> {
    if v == 0.0 || !v.is_finite() {
        return None;
    }
    let bits = v.to_bits();
    let sign = if bits >> 63 == 1 { -1i64 } else { 1 };
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let frac = (bits & ((1u64 << 52) - 1)) as i64;
    let (m, e) = if exp == 0 {
        (frac, -1074)
    } else {
        (frac | (1i64 << 52), exp - 1075)
    };
    Some((e, sign * m))
}

/// Σ m · 2^e over `parts` (e, m), rounded once to the nearest double (ties to even).
pub fn sum_of_parts(parts: impl IntoIterator<Item = (i32, i128)>) -> f64 {
    let mut acc = FSum::default();
    for (e, m) in parts {
        // m has at most about 90 bits: add it as three exact doubles of 32 bits each.
        let neg = m < 0;
        let mut a = m.unsigned_abs();
        let mut shift = e;
        while a != 0 {
            let chunk = (a & 0xffff_ffff) as f64;
            let term = libm::ldexp(if neg { -chunk } else { chunk }, shift);
            acc.add(term);
            a >>= 32;
            shift += 32;
        }
    }
    acc.value()
}

/// Shewchuk's exact running sum of doubles (the non-overlapping partials of `math.fsum`).
#[derive(Debug, Default, Clone)]
pub struct FSum {
    partials: Vec<f64>,
}

impl FSum {
    pub fn add(&mut self, mut x: f64) {
        let mut i = 0;
        for j in 0..self.partials.len() {
            let mut y = self.partials[j];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            let lo = y - (hi - x);
            if lo != 0.0 {
                self.partials[i] = lo;
                i += 1;
            }
            x = hi;
        }
        self.partials.truncate(i);
        self.partials.push(x);
    }

    /// The sum, correctly rounded (as Python's `math.fsum`).
    pub fn value(&self) -> f64 {
        let p = &self.partials;
        let Some(mut n) = p.len().checked_sub(1) else {
            return 0.0;
        };
        let mut hi = p[n];
        let mut lo = 0.0;
        while n > 0 {
            let x = hi;
            n -= 1;
            let y = p[n];
            hi = x + y;
            let yr = hi - x;
            lo = y - yr;
            if lo != 0.0 {
                break;
            }
        }
        // Round half to even across the partials that were not added: make the rounding of
        // `hi` see the sign of what lies below.
        if n > 0 && ((lo < 0.0 && p[n - 1] < 0.0) || (lo > 0.0 && p[n - 1] > 0.0)) {
            let y = lo * 2.0;
            let x = hi + y;
            let yr = x - hi;
            if y == yr {
                hi = x;
            }
        }
        hi
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact_sum(values: &[f64]) -> f64 {
        let mut by_exp: std::collections::BTreeMap<i32, i128> = Default::default();
        for v in values {
            if let Some((e, m)) = float_parts(*v) {
                *by_exp.entry(e).or_default() += m as i128;
            }
        }
        sum_of_parts(by_exp)
    }

    #[test]
    fn parts_are_exact() {
        for v in [
            1.0,
            -0.1,
            3.5e-310,
            f64::MAX,
            -f64::MIN_POSITIVE,
            123456.789,
        ] {
            let (e, m) = float_parts(v).unwrap();
            assert_eq!(libm::ldexp(m as f64, e), v, "{v}");
        }
        assert_eq!(float_parts(0.0), None);
        assert_eq!(float_parts(f64::NAN), None);
    }

    #[test]
    fn sums_are_correctly_rounded_in_any_order() {
        // Known answers of Python's math.fsum (its own test cases).
        let cases: Vec<(Vec<f64>, f64)> = vec![
            (vec![0.1; 10], 1.0),
            (vec![1e100, 1.0, -1e100, 1e-100, 1e50, -1.0, -1e50], 1e-100),
            (
                vec![2.0f64.powi(53), -0.5, -2.0f64.powi(-54)],
                2.0f64.powi(53) - 1.0,
            ),
            (
                vec![2.0f64.powi(53), 1.0, 2.0f64.powi(-100)],
                2.0f64.powi(53) + 2.0,
            ),
            (
                vec![1.7976931348623157e308, -1.7976931348623157e308, 1.0],
                1.0,
            ),
            (vec![], 0.0),
        ];
        for (values, want) in cases {
            assert_eq!(FSum::default().value(), 0.0);
            let mut f = FSum::default();
            values.iter().for_each(|v| f.add(*v));
            assert_eq!(f.value(), want, "{values:?}");
            assert_eq!(exact_sum(&values), want, "{values:?}");
        }
        // 0.1 + 0.2 + 0.3 is 0.6000000000000001 in this order and 0.6 in others; exactly
        // summed it is 0.6 whatever the order.
        for order in [[0.1, 0.2, 0.3], [0.3, 0.2, 0.1], [0.2, 0.3, 0.1]] {
            assert_eq!(exact_sum(&order), 0.6);
        }
    }

    #[test]
    fn parts_merge_exactly_in_any_split() {
        // Partial sums per exponent from two halves, added, give the sum of the whole.
        let values: Vec<f64> = (0..2000)
            .map(|i| ((i * 7919) % 1000) as f64 / 7.0 * if i % 3 == 0 { -1.0 } else { 1e-3 })
            .collect();
        let whole = exact_sum(&values);
        let mut merged: std::collections::BTreeMap<i32, i128> = Default::default();
        for half in [&values[..777], &values[777..]] {
            for v in half {
                if let Some((e, m)) = float_parts(*v) {
                    *merged.entry(e).or_default() += m as i128;
                }
            }
        }
        assert_eq!(sum_of_parts(merged), whole);
        let mut f = FSum::default();
        values.iter().for_each(|v| f.add(*v));
        assert_eq!(f.value(), whole);
    }
}
