//! Gamma-Gamma model of spend per transaction (Fader & Hardie 2013, "The Gamma-Gamma Model of
//! Monetary Value"), fitted on repeat buyers (x > 0) with a positive mean spend m:
//!
//! ```text
//! ln L = ln Γ(px+q) − ln Γ(px) − ln Γ(q) + q ln v + (px−1) ln m + px ln x − (px+q) ln(xm+v)
//! ```
//!
//! Conditional expected spend per transaction: p (v + x m) / (p x + q − 1); population mean
//! v p / (q − 1).

use super::optimize::maximize;
use super::special::ln_gamma;
use super::{distinct_index, Fit, FitError};
use crate::parallel::split_sum;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GammaGamma {
    pub p: f64,
    pub q: f64,
    pub v: f64,
}

/// Total log-likelihood over (x, m) pairs.
pub fn log_likelihood(m: &GammaGamma, x: &[f64], spend: &[f64]) -> f64 {
    let GammaGamma { p, q, v } = *m;
    let base = q * v.ln() - ln_gamma(q);
    x.iter()
        .zip(spend)
        .map(|(&x, &s)| {
            ln_gamma(p * x + q) - ln_gamma(p * x) + base + (p * x - 1.0) * s.ln() + p * x * x.ln()
                - (p * x + q) * (x * s + v).ln()
        })
        .sum()
}

/// The pairs rearranged for the optimiser: every term but the last depends on x alone, so it
/// is computed once per distinct x (with the weighted count and sum of ln m per x); only
/// (px+q) ln(xm+v) is evaluated per distinct pair, on two threads in a fixed split.
struct Prepared {
    /// Distinct x, with their count, the sum of ln m and x ln x.
    xs: Vec<(f64, f64, f64, f64)>,
    /// Per distinct pair: the index of its x, x m, and its weight (customers).
    rows: Vec<(u32, f64, f64)>,
}

impl Prepared {
    fn new(x: &[f64], spend: &[f64], weight: &[f64]) -> Self {
        let (distinct, index) = distinct_index(x);
        let mut xs: Vec<(f64, f64, f64, f64)> = distinct
            .iter()
            .map(|&x| (x, 0.0, 0.0, x * x.ln()))
            .collect();
        for ((&i, &s), &w) in index.iter().zip(spend).zip(weight) {
            xs[i as usize].1 += w;
            xs[i as usize].2 += w * s.ln();
        }
        let rows = index
            .iter()
            .zip(x.iter().zip(spend).zip(weight))
            .map(|(&i, ((&x, &s), &w))| (i, x * s, w))
            .collect();
        Prepared { xs, rows }
    }

    fn log_likelihood(&self, m: &GammaGamma) -> f64 {
        let GammaGamma { p, q, v } = *m;
        let base = q * v.ln() - ln_gamma(q);
        let per_x: f64 = self
            .xs
            .iter()
            .map(|&(x, n, sum_ln_m, x_ln_x)| {
                n * (ln_gamma(p * x + q) - ln_gamma(p * x) + base + p * x_ln_x)
                    + (p * x - 1.0) * sum_ln_m
            })
            .sum();
        let weights: Vec<f64> = self.xs.iter().map(|&(x, ..)| p * x + q).collect();
        let per_customer = split_sum(&self.rows, |rows| {
            rows.iter()
                .map(|&(i, xm, w)| w * weights[i as usize] * (xm + v).ln())
                .sum()
        });
        per_x - per_customer
    }
}

/// Fits on the customers with x > 0 and m > 0 (the caller filters), one row per customer.
pub fn fit(x: &[f64], spend: &[f64]) -> Result<Fit<GammaGamma>, FitError> {
    fit_weighted(x, spend, &vec![1.0; x.len()])
}

/// Fits on distinct (x, m) pairs, `weight` customers each. The likelihood adds the rows in the
/// order given: for the same fit whatever the origin of the rows, give them in a fixed order.
pub fn fit_weighted(x: &[f64], spend: &[f64], weight: &[f64]) -> Result<Fit<GammaGamma>, FitError> {
    let customers: f64 = weight.iter().sum();
    if customers < 10.0 {
        return Err(format!(
            "too few repeat buyers to fit Gamma-Gamma ({customers})"
        ));
    }
    let first = spend[0];
    if spend
        .iter()
        .all(|s| (*s - first).abs() <= 1e-12 * first.abs())
    {
        return Err(
            "every repeat buyer has the same mean spend: Gamma-Gamma is not identifiable".into(),
        );
    }
    let prepared = Prepared::new(x, spend, weight);
    let ll = |p: &[f64]| {
        prepared.log_likelihood(&GammaGamma {
            p: p[0],
            q: p[1],
            v: p[2],
        })
    };
    let (p, ll_max, converged) = maximize(&ll, &[1.0, 1.0, 1.0])?;
    if p.iter().any(|v| !v.is_finite() || *v > 1e9 || *v < 1e-9) || p[1] <= 1.0 {
        return Err(format!(
            "Gamma-Gamma gave unusable parameters (p={}, q={}, v={}; q must exceed 1)",
            p[0], p[1], p[2]
        ));
    }
    Ok(Fit {
        params: GammaGamma {
            p: p[0],
            q: p[1],
            v: p[2],
        },
        log_likelihood: ll_max,
        converged,
        customers: customers as u64,
    })
}

impl GammaGamma {
    pub fn population_mean(&self) -> f64 {
        self.v * self.p / (self.q - 1.0)
    }

    pub fn conditional_mean(&self, x: f64, spend: f64) -> f64 {
        self.p * (self.v + x * spend) / (self.p * x + self.q - 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditional_mean_shrinks_towards_the_population_mean() {
        // The published CDNOW estimates.
        let m = GammaGamma {
            p: 6.25,
            q: 3.74,
            v: 15.44,
        };
        let pop = m.population_mean();
        assert!((pop - 15.44 * 6.25 / 2.74).abs() < 1e-12);
        // One repeat purchase of 100 is pulled towards the mean; many are believed.
        let one = m.conditional_mean(1.0, 100.0);
        let many = m.conditional_mean(50.0, 100.0);
        assert!(pop < one && one < many && many < 100.0);
        // By hand: 6.25 * (15.44 + 100) / (6.25 + 2.74)
        assert!((one - 6.25 * 115.44 / 8.99).abs() < 1e-12);
    }

    #[test]
    fn prepared_likelihood_equals_the_formula() {
        // Enough customers for the two-thread split; repeating frequencies, varied spend.
        let x: Vec<f64> = (0..40_000).map(|i| (1 + i % 17) as f64).collect();
        let spend: Vec<f64> = (0..40_000).map(|i| 5.0 + (i % 997) as f64 * 0.37).collect();
        let prep = Prepared::new(&x, &spend, &vec![1.0; x.len()]);
        for m in [
            GammaGamma {
                p: 6.25,
                q: 3.74,
                v: 15.44,
            },
            GammaGamma {
                p: 0.8,
                q: 12.0,
                v: 3.0,
            },
        ] {
            let fast = prep.log_likelihood(&m);
            let slow = log_likelihood(&m, &x, &spend);
            assert!(
                (fast - slow).abs() <= 1e-11 * slow.abs(),
                "{fast} vs {slow}"
            );
        }
    }

    #[test]
    fn identical_spend_is_an_error() {
        let x = vec![1.0; 20];
        let s = vec![10.0; 20];
        assert!(fit(&x, &s).unwrap_err().contains("not identifiable"));
    }
}
