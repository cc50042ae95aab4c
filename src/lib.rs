//! cxmetrics: turns exported customer data (orders, tickets, surveys, customers, product events)
//! into customer-experience and customer-value metrics, driven by a YAML job file.
//!
//! Data flow: `config` (YAML -> types) -> `validate` (semantic checks -> `Job`) -> `inputs`
//! (read, coerce, cut at as_of, reject bad rows) -> `pipelines` (pure LazyFrame functions) ->
//! `output` (atomic Parquet publish). `runner` wires these together for the `run` command.

pub mod app;
pub mod cli;
pub mod clv;
pub mod config;
pub mod contracts;
pub mod error;
#[cfg(debug_assertions)]
pub mod faults;
pub mod generate;
pub mod inputs;
pub mod keys;
pub mod log;
pub mod output;
pub mod parallel;
pub mod paths;
pub mod pipelines;
pub mod runner;
#[cfg(test)]
pub mod testutil;
pub mod time;
pub mod validate;
