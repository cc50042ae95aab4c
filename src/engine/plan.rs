//! How many customer buckets a run uses, and how much work-directory space it needs.
//!
//! `buckets: auto` picks the smallest B for which one bucket's share of the inputs fits the
//! memory limit with the room a bucket's pipelines need: B = ceil(inputs in memory ×
//! `WORKING_SET` / (memory_limit × `BUDGET_SHARE`)), and B = 1 when everything fits, which is the
//! fastest. The inputs' size in memory is estimated from their files' sizes on disk
//! (`EXPANSION`); the footers are not read here, because a corrupt one is only read by the
//! partition processes.

use std::collections::BTreeMap;

use crate::contracts::InputKind;
use crate::execution::{Buckets, Execution, MAX_BUCKETS};
use crate::inputs::InputSource;

/// Bytes in memory per byte of compressed Parquet, for the estimate.
pub const EXPANSION: f64 = 4.0;
/// A bucket's peak working set per byte of its inputs in memory.
pub const WORKING_SET: f64 = 4.0;
/// The share of the memory limit one bucket's working set may use (the rest: the process,
/// the merged partials, the allocator's slack).
pub const BUDGET_SHARE: f64 = 0.5;
/// Work-directory bytes per byte of input files: the bucket files (LZ4, so larger than
/// zstd-compressed inputs), the spilled value partials and the kept rows, with a margin over
/// what the benchmarks measure (docs/execution.md).
pub const WORK_SPACE: f64 = 3.0;

/// The settled plan of a run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub buckets: u32,
    /// Buckets mapped side by side: up to the threads, as many as the memory limit holds.
    pub parallel: u32,
    /// Why this number of buckets, for the log and the manifest.
    pub why: String,
    /// The inputs' estimated size in memory.
    pub loaded_bytes: u64,
    pub memory_limit: u64,
    /// The work-directory space the run needs, about.
    pub work_bytes: u64,
}

/// The memory this process may use: the machine's (/proc/meminfo), or less where a cgroup
/// (a container's memory limit, v2 `memory.max` or v1 `memory.limit_in_bytes`) says so. None
/// where neither can be read.
pub fn physical_memory() -> Option<u64> {
    let machine = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        });
    let cgroup = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .filter_map(|p| std::fs::read_to_string(p).ok())
    .filter_map(|t| cgroup_limit(&t))
    .min();
    match (machine, cgroup) {
        (Some(m), Some(c)) => Some(m.min(c)),
        (m, c) => m.or(c),
    }
}

/// A cgroup memory limit file's bytes; None for `max` (no limit) or text that is not a number.
fn cgroup_limit(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// The plan for `sources` under `execution`.
pub fn plan(
    execution: &Execution,
    sources: &BTreeMap<InputKind, InputSource>,
    _extra: &BTreeMap<InputKind, Vec<String>>,
) -> Result<Plan, String> {
    let mut file_bytes = 0u64;
    for source in sources.values() {
        for f in &source.files {
            file_bytes += crate::inputs::file_size(f)?;
        }
    }
    let loaded_bytes = (file_bytes as f64 * EXPANSION) as u64;
    let memory_limit = execution
        .memory_limit
        .unwrap_or_else(|| physical_memory().map_or(8 << 30, |m| m / 4 * 3));
    let (buckets, why) = match execution.buckets {
        Buckets::Fixed(b) => (b, "set".to_string()),
        Buckets::Auto => {
            let need = loaded_bytes as f64 * WORKING_SET;
            let budget = memory_limit as f64 * BUDGET_SHARE;
            let b = (need / budget).ceil().clamp(1.0, MAX_BUCKETS as f64) as u32;
            (b, "auto".to_string())
        }
    };
    let threads = execution
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32));
    let per_bucket = loaded_bytes as f64 * WORKING_SET / buckets as f64;
    let fits = (memory_limit as f64 * BUDGET_SHARE / per_bucket.max(1.0)).floor();
    let parallel = if buckets == 1 {
        1
    } else {
        (fits as u32).clamp(1, threads.min(buckets))
    };
    Ok(Plan {
        buckets,
        parallel,
        why,
        loaded_bytes,
        memory_limit,
        work_bytes: (file_bytes as f64 * WORK_SPACE) as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cgroup_limit_is_a_number_and_max_is_none() {
        assert_eq!(cgroup_limit("2147483648\n"), Some(2 << 30));
        assert_eq!(cgroup_limit("max\n"), None);
        assert_eq!(cgroup_limit(""), None);
    }
}
