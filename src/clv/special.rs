//! Special functions the models need: log-gamma and the Gauss hypergeometric function.

/// ln Γ(x) for x > 0.
pub fn ln_gamma(x: f64) -> f64 {
    libm::lgamma(x)
}

/// The most terms a hypergeometric series may take. Its terms shrink like z^k, so this
/// covers z up to about 1 - 2e-5 (about 36 / (1 - z) terms are needed); beyond it the value is
/// reported as not computable rather than returned inaccurate.
pub const MAX_SERIES_TERMS: u64 = 2_000_000;

/// Sums s_1 + s_2 + ... with s_1 = `first` and s_(k+1) = s_k · ρ(k), where
/// ρ(k) = (a+k)(b+k) z / ((c+k)(k+1)) as in the hypergeometric series (0 <= z < 1, c > 0).
///
/// ρ(k) = z · f(k), and f(k) − 1 = (αk + β) / ((k+c)(k+1)) with α = a+b−c−1, β = ab−c. Past
/// `past` (below), f no longer changes sign and moves monotonically towards 1, so every later
/// ratio is at most max(ρ(k), z), and the rest of the series is at most
/// |s_k| · max(ρ(k), z) / (1 − max(ρ(k), z)). The sum stops once that is below 1e-17 of the
/// sum (compensated, Neumaier). None when a term stops being finite or `MAX_SERIES_TERMS` is
/// reached.
fn sum_series(a: f64, b: f64, c: f64, z: f64, first: f64) -> Option<f64> {
    let alpha = a + b - c - 1.0;
    let beta = a * b - c;
    // Beyond the zeros of (a+k) and (b+k), and beyond the point where f's distance from 1
    // keeps one sign and shrinks.
    let mut past = a.abs().max(b.abs());
    if alpha < 0.0 {
        past = past.max(beta.max(0.0) / -alpha);
    } else if alpha > 0.0 {
        past = past.max(2.0 * beta.abs() / alpha + (c + beta.abs() * (c + 1.0) / alpha).sqrt());
    }
    let past = past.ceil() + 1.0;
    let ratio = |k: f64| (a + k) * (b + k) / ((c + k) * (k + 1.0)) * z;
    let (mut sum, mut carry) = (0.0f64, 0.0f64);
    let mut term = first;
    let mut k = 1u64;
    loop {
        let t = sum + term;
        carry += if sum.abs() >= term.abs() {
            (sum - t) + term
        } else {
            (term - t) + sum
        };
        sum = t;
        let rho = ratio(k as f64);
        let total = sum + carry;
        if !term.is_finite() || !rho.is_finite() || k > MAX_SERIES_TERMS {
            return None;
        }
        let bound = rho.abs().max(z);
        if (k as f64) > past && bound < 1.0 && term.abs() <= 1e-17 * (1.0 - bound) * total.abs() {
            return Some(total);
        }
        term *= rho;
        k += 1;
    }
}

/// Gauss hypergeometric function 2F1(a, b; c; z) for 0 <= z < 1 and c > 0, by its power
/// series (see `sum_series`); None where the series cannot be summed to full precision.
pub fn hyp2f1(a: f64, b: f64, c: f64, z: f64) -> Option<f64> {
    if z == 0.0 {
        return Some(1.0);
    }
    Some(1.0 + sum_series(a, b, c, z, a * b / c * z)?)
}

/// (2F1(a, b; c; z) − 1) / b, summed as its own series (Σ_{k>=1} (a)_k (b+1)_(k−1) z^k /
/// ((c)_k k!)), so that it stays exact as b goes to 0, where dividing by b would lose every
/// digit. For 0 <= z < 1 and c > 0; None where the series cannot be summed.
pub fn hyp2f1_excess_over_b(a: f64, b: f64, c: f64, z: f64) -> Option<f64> {
    if z == 0.0 {
        return Some(0.0);
    }
    sum_series(a, b, c, z, a / c * z)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_gamma_known_values() {
        assert!((ln_gamma(1.0)).abs() < 1e-15);
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-13);
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-14);
    }

    #[test]
    fn hyp2f1_closed_forms() {
        // 2F1(1, 1; 2; z) = -ln(1 - z) / z
        for z in [0.7, 0.999, 0.9999] {
            let want = -(1.0f64 - z).ln() / z;
            let got = hyp2f1(1.0, 1.0, 2.0, z).unwrap();
            assert!((got - want).abs() < 1e-13 * want, "{z}: {got} {want}");
        }
        // 2F1(a, b; b; z) = (1 - z)^-a
        let got = hyp2f1(2.5, 3.0, 3.0, 0.4).unwrap();
        assert!((got - 0.6f64.powf(-2.5)).abs() < 1e-12);
        // 2F1(1/2, 1/2; 3/2; z^2) = asin(z) / z
        let x: f64 = 0.9;
        assert!((hyp2f1(0.5, 0.5, 1.5, x * x).unwrap() - x.asin() / x).abs() < 1e-12);
        // A negative integer a ends the series: 2F1(-2, b; c; z) = 1 - 2bz/c + b(b+1)z²/(c(c+1)).
        let (b, c, z) = (1.5, 2.5, 0.3);
        let want = 1.0 - 2.0 * b * z / c + b * (b + 1.0) * z * z / (c * (c + 1.0));
        assert!((hyp2f1(-2.0, b, c, z).unwrap() - want).abs() < 1e-15);
    }

    #[test]
    fn the_excess_over_b_is_exact_near_b_zero_and_matches_the_direct_form() {
        // (2F1(1, b; 2; z) - 1) / b at b -> 0 is Σ (1)_k (1)_(k-1) z^k / ((2)_k k!) = Σ z^k / (k (k+1))
        // = 1 + (1 - z) ln(1 - z) / z.
        let z: f64 = 0.6;
        let want = 1.0 + (1.0 - z) * (1.0 - z).ln() / z;
        let got = hyp2f1_excess_over_b(1.0, 0.0, 2.0, z).unwrap();
        assert!((got - want).abs() < 1e-15, "{got} {want}");
        let (a, b, c) = (2.3, 0.7, 3.1);
        let direct = (hyp2f1(a, b, c, z).unwrap() - 1.0) / b;
        let got = hyp2f1_excess_over_b(a, b, c, z).unwrap();
        assert!(
            (got - direct).abs() < 1e-14 * direct.abs(),
            "{got} {direct}"
        );
    }

    #[test]
    fn a_series_too_close_to_one_is_not_computable() {
        assert_eq!(hyp2f1(1.0, 1.0, 2.0, 1.0 - 1e-9), None);
    }
}
