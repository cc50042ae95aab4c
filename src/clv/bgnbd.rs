//! BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way").
//!
//! Per customer, with x = frequency (repeat purchase days), t_x = recency and T = age, all in
//! the model's time unit, the log-likelihood is
//!
//! ```text
//! ln L = ln Γ(r+x) − ln Γ(r) + r ln α + ln Γ(a+b) + ln Γ(b+x) − ln Γ(b) − ln Γ(a+b+x)
//!        + ln( (α+T)^−(r+x) + [x>0] · a/(b+x−1) · (α+t_x)^−(r+x) )
//! ```
//!
//! P(alive) = 1 / (1 + [x>0] · a/(b+x−1) · ((α+T)/(α+t_x))^(r+x)), and the expected number of
//! purchases in the next τ units is
//!
//! ```text
//! E[Y(τ)] = (a+b+x−1)/(a−1) · [1 − ((α+T)/(α+T+τ))^(r+x) · 2F1(r+x, b+x; a+b+x−1; τ/(α+T+τ))]
//!           / (1 + [x>0] · a/(b+x−1) · ((α+T)/(α+t_x))^(r+x))
//! ```
//!
//! Both are evaluated in forms that stay finite for every customer (`BgNbd::p_alive`,
//! `BgNbd::expected_purchases`): the formulas as written overflow for heavy buyers.

use std::collections::HashMap;

use super::optimize::maximize;
use super::special::{hyp2f1_excess_over_b, ln_gamma};
use super::{distinct_index, Fit, FitError};
use crate::parallel::split_sum;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BgNbd {
    pub r: f64,
    pub alpha: f64,
    pub a: f64,
    pub b: f64,
}

/// Customers sharing one (frequency, recency, T), with their count as weight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Group {
    pub x: f64,
    pub t_x: f64,
    pub t: f64,
    pub weight: f64,
}

/// Groups identical (x, t_x, T) triples.
pub fn group(x: &[f64], t_x: &[f64], t: &[f64]) -> Vec<Group> {
    let mut index: HashMap<(u64, u64, u64), usize> = HashMap::new();
    let mut groups: Vec<Group> = Vec::new();
    for i in 0..x.len() {
        let key = (x[i].to_bits(), t_x[i].to_bits(), t[i].to_bits());
        match index.get(&key) {
            Some(&g) => groups[g].weight += 1.0,
            None => {
                index.insert(key, groups.len());
                groups.push(Group {
                    x: x[i],
                    t_x: t_x[i],
                    t: t[i],
                    weight: 1.0,
                });
            }
        }
    }
    groups
}

/// Total (weighted) log-likelihood.
pub fn log_likelihood(m: &BgNbd, groups: &[Group]) -> f64 {
    let BgNbd { r, alpha, a, b } = *m;
    // The Gamma terms depend on x alone; frequencies repeat a lot.
    let mut by_x: HashMap<u64, f64> = HashMap::new();
    let base = r * alpha.ln() + ln_gamma(a + b) - ln_gamma(b) - ln_gamma(r);
    let mut total = 0.0;
    for g in groups {
        let x = g.x;
        let gammas = *by_x
            .entry(x.to_bits())
            .or_insert_with(|| ln_gamma(r + x) + ln_gamma(b + x) - ln_gamma(a + b + x) + base);
        let a3 = -(r + x) * (alpha + g.t).ln();
        let ll = if x > 0.0 {
            let a4 = a.ln() - (b + x - 1.0).ln() - (r + x) * (alpha + g.t_x).ln();
            let hi = a3.max(a4);
            hi + ((a3 - hi).exp() + (a4 - hi).exp()).ln()
        } else {
            a3
        };
        total += g.weight * (gammas + ll);
    }
    total
}

/// The groups rearranged for the optimiser, which evaluates the likelihood thousands of
/// times: t_x and T take few distinct values (whole days in the model's unit) and x is a
/// small integer, so the logarithms that depend on them are computed once per distinct value
/// per evaluation instead of once per group, and the groups are summed on two threads in a
/// fixed split (so the sum, and the fit, are the same on every run).
struct Prepared {
    /// Distinct values of t_x and T together.
    values: Vec<f64>,
    /// Per group: x, its index into `values` for t_x and for T, and its weight.
    rows: Vec<(u32, u32, u32, f64)>,
    max_x: usize,
}

impl Prepared {
    fn new(groups: &[Group]) -> Option<Self> {
        let both: Vec<f64> = groups.iter().flat_map(|g| [g.t_x, g.t]).collect();
        let (values, index) = distinct_index(&both);
        let mut max_x = 0usize;
        let mut rows = Vec::with_capacity(groups.len());
        for (g, ix) in groups.iter().zip(index.chunks(2)) {
            // Frequencies are whole counts; anything else takes the general path.
            if g.x < 0.0 || g.x.fract() != 0.0 || g.x > 1e6 {
                return None;
            }
            max_x = max_x.max(g.x as usize);
            rows.push((g.x as u32, ix[0], ix[1], g.weight));
        }
        Some(Prepared {
            values,
            rows,
            max_x,
        })
    }

    fn log_likelihood(&self, m: &BgNbd) -> f64 {
        let BgNbd { r, alpha, a, b } = *m;
        let ln_alpha_plus: Vec<f64> = self.values.iter().map(|v| (alpha + v).ln()).collect();
        let base = r * alpha.ln() + ln_gamma(a + b) - ln_gamma(b) - ln_gamma(r);
        let ln_a = a.ln();
        // Per x: the Gamma terms, and ln a − ln(b+x−1) for x > 0.
        let per_x: Vec<(f64, f64)> = (0..=self.max_x)
            .map(|x| {
                let x = x as f64;
                let gammas = ln_gamma(r + x) + ln_gamma(b + x) - ln_gamma(a + b + x) + base;
                let odds = if x > 0.0 {
                    ln_a - (b + x - 1.0).ln()
                } else {
                    0.0
                };
                (gammas, odds)
            })
            .collect();
        let part = |rows: &[(u32, u32, u32, f64)]| {
            let mut total = 0.0;
            for &(x, itx, it, w) in rows {
                let (gammas, odds) = per_x[x as usize];
                let rx = r + x as f64;
                let a3 = -rx * ln_alpha_plus[it as usize];
                let ll = if x > 0 {
                    let a4 = odds - rx * ln_alpha_plus[itx as usize];
                    let (hi, lo) = if a3 > a4 { (a3, a4) } else { (a4, a3) };
                    hi + (lo - hi).exp().ln_1p()
                } else {
                    a3
                };
                total += w * (gammas + ll);
            }
            total
        };
        split_sum(&self.rows, part)
    }
}

/// Fits by maximum likelihood. Tiny or degenerate data is an error, not a panic.
pub fn fit(groups: &[Group]) -> Result<Fit<BgNbd>, FitError> {
    let customers = super::check_counting_data(groups, "BG/NBD")?;
    let prepared = Prepared::new(groups);
    let ll = |p: &[f64]| {
        let m = BgNbd {
            r: p[0],
            alpha: p[1],
            a: p[2],
            b: p[3],
        };
        match &prepared {
            Some(prep) => prep.log_likelihood(&m),
            None => log_likelihood(&m, groups),
        }
    };
    let (p, ll_max, converged) = maximize(&ll, &[1.0, 1.0, 1.0, 1.0])?;
    if p.iter().any(|v| !v.is_finite() || *v > 1e9 || *v < 1e-9) {
        return Err(format!(
            "BG/NBD did not converge to finite parameters (r={}, alpha={}, a={}, b={})",
            p[0], p[1], p[2], p[3]
        ));
    }
    Ok(Fit {
        params: BgNbd {
            r: p[0],
            alpha: p[1],
            a: p[2],
            b: p[3],
        },
        log_likelihood: ll_max,
        converged,
        customers: customers as u64,
    })
}

impl BgNbd {
    /// ln of the odds that the customer has dropped out, a/(b+x−1) · ((α+T)/(α+t_x))^(r+x)
    /// for x > 0 (None for x = 0: a customer without repeat purchases has not dropped out). In
    /// logarithms: for a heavy buyer whose last purchase is long past, the power overflows a
    /// float while its logarithm does not.
    fn ln_dropout_odds(&self, x: f64, t_x: f64, t: f64) -> Option<f64> {
        (x > 0.0).then(|| {
            self.a.ln() - (self.b + x - 1.0).ln()
                + (self.r + x) * ((self.alpha + t).ln() - (self.alpha + t_x).ln())
        })
    }

    /// Probability the customer is still alive at T: 1 / (1 + odds), from the log odds, so it
    /// is 0 (not NaN) when the odds overflow.
    pub fn p_alive(&self, x: f64, t_x: f64, t: f64) -> f64 {
        match self.ln_dropout_odds(x, t_x, t) {
            None => 1.0,
            Some(lo) if lo > 0.0 => {
                let e = (-lo).exp();
                e / (1.0 + e)
            }
            Some(lo) => 1.0 / (1.0 + lo.exp()),
        }
    }

    /// Expected purchases in (T, T + tau], or None when it cannot be computed to full precision
    /// (see below).
    ///
    /// With z = τ/(α+T+τ) the bracket of the formula is 1 − (1−z)^(r+x) · 2F1(r+x, b+x;
    /// a+b+x−1; z). For a heavy buyer (x in the thousands) the power underflows and the
    /// series' terms overflow: the product came out NaN. Two forms are used, each where its
    /// series stays bounded (by Gauss's theorem, a 2F1 whose c−a−b > 0 is at most its finite
    /// value at z = 1):
    ///
    /// - when a−1 > r+x, the formula as written (c−a−b = a−1−r−x > 0);
    /// - otherwise Euler's transformation 2F1(α, β; γ; z) = (1−z)^(γ−α−β) 2F1(γ−α, γ−β; γ; z),
    ///   which gives 1 − (1−z)^(a−1) · 2F1(a+b−1−r, a−1; a+b+x−1; z) (here c−a−b is
    ///   r+x+1−a, not negative, and a large x only speeds the series up). With B = a−1,
    ///   (1−z)^B = 1 + B·L and
    ///   the 2F1 = 1 + B·S (`hyp2f1_excess_over_b`), the bracket is −B(L + S·(1−z)^B), so the
    ///   factor (a+b+x−1)/(a−1) cancels B exactly and nothing is divided by a−1, which may be
    ///   near 0 in this form.
    ///
    /// The series are summed to full precision or not at all: a z so close to 1 that it needs
    /// more than `special::MAX_SERIES_TERMS` terms gives None.
    pub fn expected_purchases(&self, tau: f64, x: f64, t_x: f64, t: f64) -> Option<f64> {
        if tau <= 0.0 {
            return Some(0.0);
        }
        let BgNbd { r, alpha, a, b } = *self;
        let z = tau / (alpha + t + tau);
        // ln(1 − z) = −ln(1 + τ/(α+T)), exact for small τ.
        let l = -(tau / (alpha + t)).ln_1p();
        let n = r + x;
        let c = a + b + x - 1.0;
        let alive = if a - 1.0 > n {
            let excess = (b + x) * hyp2f1_excess_over_b(n, b + x, c, z)?;
            let bracket = -(n * l).exp_m1() - (n * l).exp() * excess;
            c / (a - 1.0) * bracket
        } else {
            let big_b = a - 1.0;
            let y = big_b * l;
            // L = ((1−z)^B − 1) / B = ln(1−z) · expm1(y)/y, exact at B = 0.
            let big_l = if y == 0.0 { l } else { l * (y.exp_m1() / y) };
            let s = hyp2f1_excess_over_b(a + b - 1.0 - r, big_b, c, z)?;
            -c * (big_l + s * y.exp())
        };
        let e = alive * self.p_alive(x, t_x, t);
        e.is_finite().then_some(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published CDNOW estimates (Fader, Hardie & Lee 2005).
    const CDNOW: BgNbd = BgNbd {
        r: 0.2426,
        alpha: 4.414,
        a: 0.7929,
        b: 2.426,
    };

    #[test]
    fn published_conditional_expectation() {
        // Frequency 2, recency 30.43 weeks, T 38.86 weeks: 1.226 purchases in the next 39 weeks.
        let e = CDNOW.expected_purchases(39.0, 2.0, 30.43, 38.86).unwrap();
        assert!((e - 1.226).abs() < 0.0005, "{e}");
    }

    /// Every point of `tests/data/bgnbd/grid.csv` (mpmath at 40 digits, from the textbook
    /// formulas; `make_grid.py` there): x up to 10,000, T up to 3,650 days, horizons up to 60
    /// months, six parameter sets including a heavy buyers' fit, a within 1e-9 of 1 and a tiny
    /// alpha. Before the stable forms, the heavy buyers gave NaN.
    #[test]
    fn matches_an_independent_high_precision_implementation_on_a_grid() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/bgnbd/grid.csv");
        let text = std::fs::read_to_string(path).unwrap();
        let mut checked = 0;
        let mut worst = 0.0f64;
        for line in text.lines().skip(1) {
            let v: Vec<f64> = line.split(',').map(|f| f.parse().unwrap()).collect();
            let m = BgNbd {
                r: v[1],
                alpha: v[2],
                a: v[3],
                b: v[4],
            };
            let (x, t_x, t, tau, want, want_alive) = (v[5], v[6], v[7], v[8], v[9], v[10]);
            let got = m
                .expected_purchases(tau, x, t_x, t)
                .unwrap_or_else(|| panic!("not computable: {line}"));
            let err = (got - want).abs() / want.abs().max(1e-300);
            worst = worst.max(err);
            assert!(err < 1e-10, "{line}: {got} (relative error {err:e})");
            let alive = m.p_alive(x, t_x, t);
            assert!(
                (alive - want_alive).abs() <= 1e-12 * want_alive.max(1e-300),
                "{line}: p_alive {alive}"
            );
            checked += 1;
        }
        assert!(checked > 1000, "{checked}");
        assert!(worst < 1e-10, "{worst:e}");
    }

    #[test]
    fn the_heavy_buyer_of_the_report_is_finite_and_matches_lifetimes() {
        // lifetimes 0.11.3 gives 225.48 purchases over 365.25 days for this customer.
        let m = BgNbd {
            r: 0.300356,
            alpha: 15.205823,
            a: 1.197986,
            b: 5.747159,
        };
        let e = m
            .expected_purchases(365.25, 2579.0, 2579.0, 2586.0)
            .unwrap();
        assert!((e - 225.48273755564442).abs() < 1e-8, "{e}");
    }

    #[test]
    fn p_alive_is_one_without_repeat_purchases_and_drops_with_silence() {
        assert_eq!(CDNOW.p_alive(0.0, 0.0, 30.0), 1.0);
        let recent = CDNOW.p_alive(3.0, 29.0, 30.0);
        let silent = CDNOW.p_alive(3.0, 5.0, 30.0);
        assert!(recent > silent && silent > 0.0 && recent < 1.0);
    }

    #[test]
    fn prepared_likelihood_equals_the_formula() {
        // Enough groups for the two-thread split; t values in weeks from whole days.
        let mut groups = Vec::new();
        for i in 0..30_000u32 {
            let x = (i % 13) as f64;
            let t = (100 + i % 600) as f64 / 7.0;
            let t_x = if x > 0.0 {
                t - (i % 97) as f64 / 7.0
            } else {
                0.0
            };
            groups.push(Group {
                x,
                t_x: t_x.max(0.0),
                t,
                weight: (1 + i % 3) as f64,
            });
        }
        let prep = Prepared::new(&groups).unwrap();
        for m in [
            CDNOW,
            BgNbd {
                r: 2.0,
                alpha: 0.3,
                a: 5.0,
                b: 0.7,
            },
        ] {
            let fast = prep.log_likelihood(&m);
            let slow = log_likelihood(&m, &groups);
            assert!(
                (fast - slow).abs() <= 1e-11 * slow.abs(),
                "{fast} vs {slow}"
            );
        }
    }

    #[test]
    fn single_customer_likelihood_by_hand() {
        // x = 0, T = 10 with r = alpha = a = b = 1:
        // ln Γ(1) - ln Γ(1) + 0 + ln Γ(2) + ln Γ(1) - ln Γ(1) - ln Γ(2) - 1 ln 11 = -ln 11.
        let m = BgNbd {
            r: 1.0,
            alpha: 1.0,
            a: 1.0,
            b: 1.0,
        };
        let g = [Group {
            x: 0.0,
            t_x: 0.0,
            t: 10.0,
            weight: 1.0,
        }];
        assert!((log_likelihood(&m, &g) + 11f64.ln()).abs() < 1e-12);
        // Weights multiply.
        let g2 = [Group {
            weight: 3.0,
            ..g[0]
        }];
        assert!((log_likelihood(&m, &g2) + 3.0 * 11f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn degenerate_data_is_an_error_not_a_panic() {
        let none = group(&[0.0; 20], &[0.0; 20], &[5.0; 20]);
        assert!(fit(&none)
            .unwrap_err()
            .contains("no customer has a repeat purchase"));
        let tiny = group(&[1.0, 0.0], &[1.0, 0.0], &[2.0, 2.0]);
        assert!(fit(&tiny).unwrap_err().contains("too few customers"));
    }
}
