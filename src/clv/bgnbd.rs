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

use std::collections::HashMap;

use super::optimize::maximize;
use super::special::{hyp2f1, ln_gamma};
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
    let customers: f64 = groups.iter().map(|g| g.weight).sum();
    let repeaters: f64 = groups.iter().filter(|g| g.x > 0.0).map(|g| g.weight).sum();
    if customers < 10.0 {
        return Err(format!("too few customers to fit BG/NBD ({customers})"));
    }
    if repeaters == 0.0 {
        return Err("no customer has a repeat purchase: BG/NBD is not identifiable".into());
    }
    if groups.iter().all(|g| g.t <= 0.0) {
        return Err("every customer's first purchase is on the as_of day".into());
    }
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
    fn dropout_odds(&self, x: f64, t_x: f64, t: f64) -> f64 {
        if x > 0.0 {
            self.a / (self.b + x - 1.0) * ((self.alpha + t) / (self.alpha + t_x)).powf(self.r + x)
        } else {
            0.0
        }
    }

    /// Probability the customer is still alive at T.
    pub fn p_alive(&self, x: f64, t_x: f64, t: f64) -> f64 {
        1.0 / (1.0 + self.dropout_odds(x, t_x, t))
    }

    /// Expected purchases in (T, T + tau].
    pub fn expected_purchases(&self, tau: f64, x: f64, t_x: f64, t: f64) -> f64 {
        if tau <= 0.0 {
            return 0.0;
        }
        let BgNbd { r, alpha, a, b } = *self;
        let z = tau / (alpha + t + tau);
        let head = (a + b + x - 1.0) / (a - 1.0);
        let tail = ((alpha + t) / (alpha + t + tau)).powf(r + x)
            * hyp2f1(r + x, b + x, a + b + x - 1.0, z);
        head * (1.0 - tail) / (1.0 + self.dropout_odds(x, t_x, t))
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
        let e = CDNOW.expected_purchases(39.0, 2.0, 30.43, 38.86);
        assert!((e - 1.226).abs() < 0.0005, "{e}");
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
