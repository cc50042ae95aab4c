//! Probabilistic customer-lifetime-value models ("buy till you die"), fitted by maximum
//! likelihood on grouped data:
//!
//! - `bgnbd`: the BG/NBD model of repeat purchasing (Fader, Hardie & Lee 2005): purchase
//!   counts are Poisson with a Gamma(r, alpha) distributed rate while a customer is alive; after
//!   each purchase a customer drops out with a Beta(a, b) distributed probability.
//! - `gamma_gamma`: the Gamma-Gamma model of spend per transaction (Fader & Hardie 2013):
//!   parameters p, q, v.
//!
//! Plain Rust on slices (no polars): the `ltv_segments` pipeline collects the per-customer
//! summary, fits here and maps the results back.

pub mod bgnbd;
pub mod gamma_gamma;
mod optimize;
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

/// Why a model could not be fitted (written to `clv_model` and the manifest).
pub type FitError = String;

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
