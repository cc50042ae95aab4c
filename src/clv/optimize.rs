//! Maximum-likelihood fitting with argmin's Nelder-Mead on log-parameters (so every parameter
//! stays positive), restarted from the best point until the likelihood stops improving.

use argmin::core::{CostFunction, Error, Executor, State, TerminationReason, TerminationStatus};
use argmin::solver::neldermead::NelderMead;

struct Negated<'a> {
    log_likelihood: &'a dyn Fn(&[f64]) -> f64,
}

impl CostFunction for Negated<'_> {
    type Param = Vec<f64>;
    type Output = f64;

    fn cost(&self, log_params: &Self::Param) -> Result<f64, Error> {
        let params: Vec<f64> = log_params.iter().map(|x| x.exp()).collect();
        let ll = (self.log_likelihood)(&params);
        // Outside the region where the likelihood is finite, push the simplex back.
        Ok(if ll.is_finite() { -ll } else { f64::MAX })
    }
}

/// Maximises `log_likelihood` over positive parameters from `start`. Returns the parameters,
/// the maximum, and whether the last restart converged.
pub fn maximize(
    log_likelihood: &dyn Fn(&[f64]) -> f64,
    start: &[f64],
) -> Result<(Vec<f64>, f64, bool), String> {
    let mut best: Vec<f64> = start.iter().map(|x| x.ln()).collect();
    let mut best_ll = f64::NEG_INFINITY;
    let mut converged = false;
    // Stop when the simplex's costs agree to ~1e-11 of the likelihood's size: an absolute
    // tolerance below the float resolution of a large sum would never be met.
    let scale = (log_likelihood(start)).abs().max(1.0);
    let tolerance = if scale.is_finite() {
        1e-11 * scale
    } else {
        1e-9
    };
    for _restart in 0..6 {
        let n = best.len();
        let mut simplex = vec![best.clone()];
        for i in 0..n {
            let mut p = best.clone();
            p[i] += 0.5;
            simplex.push(p);
        }
        let solver = NelderMead::new(simplex)
            .with_sd_tolerance(tolerance)
            .map_err(|e| e.to_string())?;
        let problem = Negated { log_likelihood };
        let result = Executor::new(problem, solver)
            .configure(|s| s.max_iters(5_000))
            .run()
            .map_err(|e| e.to_string())?;
        let state = result.state();
        let ll = -state.get_best_cost();
        let param = state
            .get_best_param()
            .cloned()
            .ok_or_else(|| "the optimiser returned no parameters".to_string())?;
        converged = matches!(
            state.get_termination_status(),
            TerminationStatus::Terminated(TerminationReason::SolverConverged)
        );
        let improved = ll > best_ll + 1e-9;
        if ll > best_ll {
            best = param;
            best_ll = ll;
        }
        if !improved && converged {
            break;
        }
    }
    if !best_ll.is_finite() {
        return Err("the likelihood is not finite anywhere the optimiser looked".into());
    }
    Ok((best.iter().map(|x| x.exp()).collect(), best_ll, converged))
}
