//! Probabilistic customer-lifetime-value models ("buy till you die"), fitted by maximum
//! likelihood on grouped data:
//!
//! - `bgnbd`: the BG/NBD model of repeat purchasing (Fader, Hardie & Lee 2005): purchase
//!   counts are Poisson with a Gamma(r, alpha) distributed rate while a customer is alive; after
//!   each purchase a customer drops out with a Beta(a, b) distributed probability.
//! - `pareto_nbd`: the Pareto/NBD model (Schmittlein, Morrison & Colombo 1987): Poisson
//!   purchases with a Gamma(r, alpha) rate during an exponential lifetime whose rate is
//!   Gamma(s, beta) distributed.
//! - `gamma_gamma`: the Gamma-Gamma model of spend per transaction (Fader & Hardie 2013):
//!   parameters p, q, v.
//!
//! Plain Rust on slices (no polars): the `ltv_segments` pipeline collects the per-customer
//! summary, fits here and maps the results back.

pub mod bgnbd;
pub mod gamma_gamma;
mod optimize;
pub mod pareto_nbd;
pub mod special;

/// Outcome of a fit: parameters, total log-likelihood, whether the optimiser converged.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit<P> {
    pub params: P,
    pub log_likelihood: f64,
    pub converged: bool,
    /// Customers the model was fitted on.
    pub customers: u64,
}

impl<P> Fit<P> {
    pub fn map<Q>(self, f: impl FnOnce(P) -> Q) -> Fit<Q> {
        Fit {
            params: f(self.params),
            log_likelihood: self.log_likelihood,
            converged: self.converged,
            customers: self.customers,
        }
    }
}

/// Why a model could not be fitted (written to `clv_model` and the manifest).
pub type FitError = String;

/// Checks that grouped (x, t_x, T) data can identify a model of purchase counts (`model` names
/// it in the error); returns the number of customers.
pub(crate) fn check_counting_data(groups: &[bgnbd::Group], model: &str) -> Result<f64, FitError> {
    let customers: f64 = groups.iter().map(|g| g.weight).sum();
    let repeaters: f64 = groups.iter().filter(|g| g.x > 0.0).map(|g| g.weight).sum();
    if customers < 10.0 {
        return Err(format!("too few customers to fit {model} ({customers})"));
    }
    if repeaters == 0.0 {
        return Err(format!(
            "no customer has a repeat purchase: {model} is not identifiable"
        ));
    }
    if groups.iter().all(|g| g.t <= 0.0) {
        return Err("every customer's first purchase is on the as_of day".into());
    }
    Ok(customers)
}

/// A fitted model of purchase counts: what `ltv_segments` predicts with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Counting {
    BgNbd(bgnbd::BgNbd),
    ParetoNbd(pareto_nbd::ParetoNbd),
}

impl Counting {
    /// The model's name in `clv_model`.
    pub fn name(&self) -> &'static str {
        match self {
            Counting::BgNbd(_) => "bgnbd",
            Counting::ParetoNbd(_) => "pareto_nbd",
        }
    }

    /// The parameters, in `clv_model`'s order.
    pub fn parameters(&self) -> Vec<(&'static str, f64)> {
        match *self {
            Counting::BgNbd(m) => vec![("r", m.r), ("alpha", m.alpha), ("a", m.a), ("b", m.b)],
            Counting::ParetoNbd(m) => {
                vec![("r", m.r), ("alpha", m.alpha), ("s", m.s), ("beta", m.beta)]
            }
        }
    }

    /// P(alive at T), None where it cannot be computed.
    pub fn p_alive(&self, x: f64, t_x: f64, t: f64) -> Option<f64> {
        match self {
            Counting::BgNbd(m) => Some(m.p_alive(x, t_x, t)),
            Counting::ParetoNbd(m) => m.p_alive(x, t_x, t),
        }
    }

    /// Expected purchases in (T, T + tau], None where it cannot be computed.
    pub fn expected_purchases(&self, tau: f64, x: f64, t_x: f64, t: f64) -> Option<f64> {
        match self {
            Counting::BgNbd(m) => m.expected_purchases(tau, x, t_x, t),
            Counting::ParetoNbd(m) => m.expected_purchases(tau, x, t_x, t),
        }
    }
}

/// Distinct values of `values` (sorted) and, per value, its index among them.
pub(crate) fn distinct_index(values: &[f64]) -> (Vec<f64>, Vec<u32>) {
    let mut distinct = values.to_vec();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup();
    let index = values
        .iter()
        .map(|v| distinct.partition_point(|w| *w < *v) as u32)
        .collect();
    (distinct, index)
}
