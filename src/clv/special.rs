//! Special functions the models need: log-gamma and the Gauss hypergeometric function.

/// ln Γ(x) for x > 0.
pub fn ln_gamma(x: f64) -> f64 {
    libm::lgamma(x)
}

/// Gauss hypergeometric function 2F1(a, b; c; z) for 0 <= z < 1 by its power series, summed
/// until the terms stop mattering (relative 1e-15) or 200,000 terms. Returns NaN if the series
/// has not converged.
pub fn hyp2f1(a: f64, b: f64, c: f64, z: f64) -> f64 {
    if z == 0.0 {
        return 1.0;
    }
    let mut term = 1.0;
    let mut sum = 1.0;
    for k in 0..200_000u32 {
        let k = k as f64;
        term *= (a + k) * (b + k) / ((c + k) * (k + 1.0)) * z;
        sum += term;
        if term.abs() <= 1e-15 * sum.abs() {
            return sum;
        }
    }
    f64::NAN
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
        let z: f64 = 0.7;
        assert!((hyp2f1(1.0, 1.0, 2.0, z) - (-(1.0 - z).ln() / z)).abs() < 1e-12);
        // 2F1(a, b; b; z) = (1 - z)^-a
        assert!((hyp2f1(2.5, 3.0, 3.0, 0.4) - 0.6f64.powf(-2.5)).abs() < 1e-12);
        // 2F1(1/2, 1/2; 3/2; z^2) = asin(z) / z
        let x: f64 = 0.9;
        assert!((hyp2f1(0.5, 0.5, 1.5, x * x) - x.asin() / x).abs() < 1e-12);
    }
}
