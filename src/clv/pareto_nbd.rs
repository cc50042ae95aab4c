//! Pareto/NBD (Schmittlein, Morrison & Colombo 1987), with the likelihood as in Fader, Hardie
//! & Lee, "A Note on Deriving the Pareto/NBD Model and Related Expressions" (2005).
//!
//! While alive a customer buys as a Poisson process with a Gamma(r, α) distributed rate; the
//! lifetime is exponential with a Gamma(s, β) distributed dropout rate. Per customer, with
//! x = frequency, t_x = recency and T = age in the model's time unit:
//!
//! ```text
//! L = Γ(r+x) α^r β^s / Γ(r) · [ 1 / ((α+T)^(r+x) (β+T)^s) + s/(r+s+x) · A0 ]
//! A0 = F(t_x) − F(T),  F(y) = 2F1(r+s+x, t; r+s+x+1; (M−m)/(M+y)) / (M+y)^(r+s+x)
//! ```
//!
//! with M = max(α, β), m = min(α, β), and t = s+1 when α ≥ β, t = r+x when α < β.
//! P(alive) = 1 / (1 + s/(r+s+x) · (α+T)^(r+x) (β+T)^s · A0), and the expected purchases in
//! the next τ units are
//!
//! ```text
//! E[Y(τ)] = P(alive) · (r+x)(β+T) / ((α+T)(s−1)) · [1 − ((β+T)/(β+T+τ))^(s−1)]
//! ```
//!
//! Everything is evaluated in logarithms, and the hypergeometric function through Euler's
//! transformation 2F1(a, b; a+1; z) = (1−z)^(1−b) 2F1(1, a+1−b; a+1; z), whose series has
//! terms below z^k whatever x is (as written, 2F1(r+s+x, r+x; ...) has terms that grow like
//! k^(r+x) and overflow for heavy buyers). A customer with 5,000 purchases is finite.

use super::bgnbd::Group;
use super::optimize::maximize;
use super::special::{hyp2f1, ln_gamma};
use super::{Fit, FitError};
use crate::parallel::split_sum;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParetoNbd {
    pub r: f64,
    pub alpha: f64,
    pub s: f64,
    pub beta: f64,
}

/// ln(a − b) from ln a and ln b, a ≥ b (−∞ when equal).
fn ln_diff(ln_a: f64, ln_b: f64) -> f64 {
    if ln_b >= ln_a {
        return f64::NEG_INFINITY;
    }
    ln_a + (-(ln_b - ln_a).exp_m1()).ln()
}

/// ln(e^a + e^b).
fn ln_add(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a >= b { (a, b) } else { (b, a) };
    if lo == f64::NEG_INFINITY {
        return hi;
    }
    hi + (lo - hi).exp().ln_1p()
}

impl ParetoNbd {
    /// ln F(y) of the module doc, or None when its series cannot be summed to full precision.
    fn ln_f(&self, x: f64, y: f64) -> Option<f64> {
        let ParetoNbd { r, alpha, s, beta } = *self;
        let (big, small, t) = if alpha >= beta {
            (alpha, beta, s + 1.0)
        } else {
            (beta, alpha, r + x)
        };
        let a = r + s + x;
        let z = (big - small) / (big + y);
        // ln(1 − z) = ln(m + y) − ln(M + y).
        let ln_one_minus_z = (small + y).ln() - (big + y).ln();
        let series = hyp2f1(1.0, a + 1.0 - t, a + 1.0, z)?;
        Some((1.0 - t) * ln_one_minus_z + series.ln() - a * (big + y).ln())
    }

    /// ln of the two terms of the bracket: the customer still alive at T (`alive`), and having
    /// dropped out between t_x and T (`gone`, −∞ when t_x = T).
    fn ln_terms(&self, x: f64, t_x: f64, t: f64) -> Option<(f64, f64)> {
        let ParetoNbd { r, alpha, s, beta } = *self;
        let alive = -(r + x) * (alpha + t).ln() - s * (beta + t).ln();
        let ln_a0 = ln_diff(self.ln_f(x, t_x)?, self.ln_f(x, t)?);
        let gone = s.ln() - (r + s + x).ln() + ln_a0;
        Some((alive, gone))
    }

    /// One customer's log-likelihood (None where it cannot be computed).
    pub fn ln_likelihood(&self, x: f64, t_x: f64, t: f64) -> Option<f64> {
        let ParetoNbd { r, alpha, s, beta } = *self;
        let (alive, gone) = self.ln_terms(x, t_x, t)?;
        let head = ln_gamma(r + x) - ln_gamma(r) + r * alpha.ln() + s * beta.ln();
        Some(head + ln_add(alive, gone))
    }

    /// Probability the customer is still alive at T.
    pub fn p_alive(&self, x: f64, t_x: f64, t: f64) -> Option<f64> {
        let (alive, gone) = self.ln_terms(x, t_x, t)?;
        let d = gone - alive;
        // 1 / (1 + e^d), without overflow for a large d.
        Some(if d > 0.0 {
            let e = (-d).exp();
            e / (1.0 + e)
        } else {
            1.0 / (1.0 + d.exp())
        })
    }

    /// Expected purchases in (T, T + τ], or None when it cannot be computed.
    pub fn expected_purchases(&self, tau: f64, x: f64, t_x: f64, t: f64) -> Option<f64> {
        if tau <= 0.0 {
            return Some(0.0);
        }
        let ParetoNbd { r, alpha, s, beta } = *self;
        // [1 − q^(s−1)] / (s−1) with q = (β+T)/(β+T+τ): −ln q · expm1(y)/y, y = (s−1) ln q,
        // exact as s goes to 1.
        let ln_q = -(tau / (beta + t)).ln_1p();
        let y = (s - 1.0) * ln_q;
        let bracket = if y == 0.0 {
            -ln_q
        } else {
            -ln_q * (y.exp_m1() / y)
        };
        let e = self.p_alive(x, t_x, t)? * (r + x) * (beta + t) / (alpha + t) * bracket;
        e.is_finite().then_some(e)
    }
}

/// Total (weighted) log-likelihood; −∞ where some customer's cannot be computed.
pub fn log_likelihood(m: &ParetoNbd, groups: &[Group]) -> f64 {
    let part = |gs: &[Group]| {
        let mut total = 0.0;
        for g in gs {
            match m.ln_likelihood(g.x, g.t_x, g.t) {
                Some(ll) => total += g.weight * ll,
                None => return f64::NEG_INFINITY,
            }
        }
        total
    };
    split_sum(groups, part)
}

/// Fits by maximum likelihood. Tiny or degenerate data is an error, not a panic.
pub fn fit(groups: &[Group]) -> Result<Fit<ParetoNbd>, FitError> {
    let customers = super::check_counting_data(groups, "Pareto/NBD")?;
    let ll = |p: &[f64]| {
        let m = ParetoNbd {
            r: p[0],
            alpha: p[1],
            s: p[2],
            beta: p[3],
        };
        log_likelihood(&m, groups)
    };
    let (p, ll_max, converged) = maximize(&ll, &[1.0, 1.0, 1.0, 1.0])?;
    if p.iter().any(|v| !v.is_finite() || *v > 1e9 || *v < 1e-9) {
        return Err(format!(
            "Pareto/NBD did not converge to finite parameters (r={}, alpha={}, s={}, beta={})",
            p[0], p[1], p[2], p[3]
        ));
    }
    Ok(Fit {
        params: ParetoNbd {
            r: p[0],
            alpha: p[1],
            s: p[2],
            beta: p[3],
        },
        log_likelihood: ll_max,
        converged,
        customers: customers as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published CDNOW estimates (Fader, Hardie & Lee 2005, the Pareto/NBD note).
    const CDNOW: ParetoNbd = ParetoNbd {
        r: 0.5534,
        alpha: 10.5802,
        s: 0.6061,
        beta: 11.6562,
    };

    /// The textbook formulas, summed term by term without any transformation (fine for small
    /// x), against the stable forms.
    #[test]
    fn the_stable_forms_equal_the_formulas_as_written() {
        fn naive_2f1(a: f64, b: f64, c: f64, z: f64) -> f64 {
            let (mut term, mut sum) = (1.0, 1.0);
            for k in 0..100_000 {
                let k = k as f64;
                term *= (a + k) * (b + k) / ((c + k) * (k + 1.0)) * z;
                sum += term;
                if term.abs() < 1e-18 * sum {
                    break;
                }
            }
            sum
        }
        for m in [
            CDNOW,
            ParetoNbd {
                r: 2.0,
                alpha: 3.0,
                s: 1.5,
                beta: 9.0,
            },
        ] {
            let ParetoNbd { r, alpha, s, beta } = m;
            for (x, t_x, t) in [(0.0, 0.0, 20.0), (2.0, 30.43, 38.86), (7.0, 10.0, 50.0)] {
                let (big, small, tt) = if alpha >= beta {
                    (alpha, beta, s + 1.0)
                } else {
                    (beta, alpha, r + x)
                };
                let rsx = r + s + x;
                let f = |y: f64| {
                    naive_2f1(rsx, tt, rsx + 1.0, (big - small) / (big + y)) / (big + y).powf(rsx)
                };
                let a0 = f(t_x) - f(t);
                let alive = 1.0 / ((alpha + t).powf(r + x) * (beta + t).powf(s));
                let lik = (ln_gamma(r + x) - ln_gamma(r)).exp()
                    * alpha.powf(r)
                    * beta.powf(s)
                    * (alive + s / rsx * a0);
                let got = m.ln_likelihood(x, t_x, t).unwrap();
                assert!(
                    (got - lik.ln()).abs() < 1e-11,
                    "{m:?} {x}: {got} vs {}",
                    lik.ln()
                );
                let p = 1.0 / (1.0 + s / rsx * a0 / alive);
                assert!((m.p_alive(x, t_x, t).unwrap() - p).abs() < 1e-12);
            }
        }
    }

    /// lifetimes 0.11.3's ParetoNBDFitter with the published parameters set (params_ =
    /// r 0.5534, alpha 10.5802, s 0.6061, beta 11.6562): conditional_probability_alive(2,
    /// 30.43, 38.86) and conditional_expected_number_of_purchases_up_to_time(39, 2, 30.43,
    /// 38.86), and the same for (0, 0, 38.86) and (20, 38, 39).
    #[test]
    fn matches_lifetimes_at_the_published_fit() {
        let cases = [
            ((2.0, 30.43, 38.86), 0.8691106439681371, 1.455092843844252),
            ((0.0, 0.0, 38.86), 0.2949614864370421, 0.10702894636167574),
            ((20.0, 38.0, 39.0), 0.9851189764260979, 13.244042864501118),
        ];
        for ((x, t_x, t), alive, expected) in cases {
            let a = CDNOW.p_alive(x, t_x, t).unwrap();
            let e = CDNOW.expected_purchases(39.0, x, t_x, t).unwrap();
            assert!((a - alive).abs() < 1e-9, "{x}: p_alive {a} vs {alive}");
            assert!((e - expected).abs() < 1e-8, "{x}: {e} vs {expected}");
        }
    }

    #[test]
    fn a_customer_with_five_thousand_purchases_is_finite() {
        for (x, t_x, t) in [(5000.0, 3649.0, 3650.0), (5000.0, 1000.0, 3650.0)] {
            for m in [
                CDNOW,
                ParetoNbd {
                    r: 0.3,
                    alpha: 15.0,
                    s: 0.6,
                    beta: 2.0,
                },
            ] {
                let ll = m.ln_likelihood(x, t_x, t).unwrap();
                let a = m.p_alive(x, t_x, t).unwrap();
                let e = m.expected_purchases(365.0, x, t_x, t).unwrap();
                assert!(
                    ll.is_finite() && a.is_finite() && e.is_finite(),
                    "{ll} {a} {e}"
                );
                assert!((0.0..=1.0).contains(&a));
            }
        }
        // Silent for 2,650 days after 5,000 purchases in 1,000: surely gone.
        assert!(CDNOW.p_alive(5000.0, 1000.0, 3650.0).unwrap() < 1e-12);
    }

    #[test]
    fn degenerate_data_is_an_error_not_a_panic() {
        let none = super::super::bgnbd::group(&[0.0; 20], &[0.0; 20], &[5.0; 20]);
        assert!(fit(&none)
            .unwrap_err()
            .contains("no customer has a repeat purchase"));
    }
}
