//! cxmetrics: turns exported customer data (orders, tickets, surveys, customers, product events)
//! into customer-experience and customer-value metrics, driven by a YAML job file.
//!
//! Data flow: `config` (YAML -> types) -> `validate` (semantic checks, each pipeline's `Spec`
//! -> `Job`) -> `partition` (every input read once, cleaned by `inputs`, into customer-bucket
//! files) -> `engine` (every bucket mapped by the `pipelines`, the partials merged, finalized)
//! -> `output` (atomic Parquet publish). `engine::run` is the `run` command.

pub mod app;
pub mod bucket;
pub mod business_hours;
pub mod cli;
pub mod clv;
pub mod config;
pub mod contracts;
pub mod engine;
pub mod error;
pub mod exact;
pub mod execution;
#[cfg(debug_assertions)]
pub mod faults;
pub mod generate;
pub mod inputs;
pub mod keys;
pub mod log;
pub mod lookml;
pub mod output;
pub mod parallel;
pub mod partition;
pub mod paths;
pub mod pipelines;
pub mod problems;
pub mod report;
pub mod spark;
pub mod storage;
#[cfg(test)]
pub mod testutil;
pub mod time;
pub mod validate;
