//! `execution`: how a run is split into customer buckets, how much memory and how many threads
//! it may use, and where its bucket files go. Parsed once into fully derived values; the
//! command line (`--buckets`, `--memory-limit`, `--threads`) overrides the job file.

use std::path::PathBuf;

use crate::config::ExecutionConfig;
use crate::problems::Problems;

/// The number of customer buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buckets {
    /// Chosen from the inputs' sizes and the memory limit (`plan::choose_buckets`).
    Auto,
    Fixed(u32),
}

/// Where the buckets are mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum EngineKind {
    /// In this process (and its children).
    #[default]
    Local,
    /// In the Python workers of a Spark cluster, driven by `python -m cxmetrics run`.
    Spark,
}

impl EngineKind {
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Local => "local",
            EngineKind::Spark => "spark",
        }
    }
}

/// The range of `connect_timeout`, in seconds.
pub const CONNECT_TIMEOUT_RANGE: (u64, u64) = (1, 3600);
/// `connect_timeout` when the job does not set it, in seconds.
pub const DEFAULT_CONNECT_TIMEOUT: u64 = 30;

/// The most buckets a run may have.
pub const MAX_BUCKETS: u32 = 4096;
/// The range of `memory_limit`: 256 MiB to 16 TiB.
pub const MEMORY_LIMIT_RANGE: (u64, u64) = (256 << 20, 16 << 40);
/// The most threads.
pub const MAX_THREADS: u32 = 1024;

/// The checked `execution` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    pub buckets: Buckets,
    /// Bytes; None: three quarters of the machine's memory.
    pub memory_limit: Option<u64>,
    /// None: every core.
    pub threads: Option<u32>,
    /// As written in the job file (relative to the job file's folder); None: a folder inside
    /// the output directory.
    pub work_dir: Option<String>,
    pub engine: EngineKind,
    /// The Spark Connect server, `sc://host:port` (`engine: spark`).
    pub remote: Option<String>,
    /// Seconds to wait for the Spark Connect server.
    pub connect_timeout: u64,
}

impl Default for Execution {
    fn default() -> Self {
        Execution {
            buckets: Buckets::Auto,
            memory_limit: None,
            threads: None,
            work_dir: None,
            engine: EngineKind::Local,
            remote: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

impl Execution {
    /// Checks the job file's section, reporting every problem. None when any was found.
    pub fn check(cfg: &ExecutionConfig, problems: &mut Problems) -> Option<Execution> {
        let before = problems.len();
        let buckets = match &cfg.buckets {
            None => Buckets::Auto,
            Some(v) => match parse_buckets(v) {
                Ok(b) => b,
                Err(e) => {
                    problems.push("execution.buckets", e);
                    Buckets::Auto
                }
            },
        };
        let memory_limit = cfg
            .memory_limit
            .as_deref()
            .and_then(|t| match parse_memory(t) {
                Ok(b) => Some(b),
                Err(e) => {
                    problems.push("execution.memory_limit", e);
                    None
                }
            });
        let threads = cfg.threads.and_then(|t| match check_threads(t) {
            Ok(t) => Some(t),
            Err(e) => {
                problems.push("execution.threads", e);
                None
            }
        });
        if cfg.work_dir.as_deref().is_some_and(|d| d.trim().is_empty()) {
            problems.push("execution.work_dir", "must not be empty");
        }
        let engine = match cfg.engine.as_deref() {
            None | Some("local") => EngineKind::Local,
            Some("spark") => EngineKind::Spark,
            Some(other) => {
                problems.push(
                    "execution.engine",
                    format!("must be `local` or `spark`, got `{other}`"),
                );
                EngineKind::Local
            }
        };
        if let Some(remote) = &cfg.remote {
            if let Err(e) = check_remote(remote) {
                problems.push("execution.remote", e);
            }
        }
        let connect_timeout = match cfg.connect_timeout.as_deref() {
            None => DEFAULT_CONNECT_TIMEOUT,
            Some(t) => parse_connect_timeout(t).unwrap_or_else(|e| {
                problems.push("execution.connect_timeout", e);
                DEFAULT_CONNECT_TIMEOUT
            }),
        };
        (problems.len() == before).then(|| Execution {
            buckets,
            memory_limit,
            threads,
            work_dir: cfg.work_dir.clone(),
            engine,
            remote: cfg.remote.clone(),
            connect_timeout,
        })
    }

    /// The work directory as a path, relative ones against `base`.
    pub fn work_dir_in(&self, base: &std::path::Path) -> Option<PathBuf> {
        self.work_dir.as_ref().map(|d| base.join(d))
    }
}

/// A Spark Connect address: `sc://host[:port][/;param=value...]`.
pub fn check_remote(remote: &str) -> Result<String, String> {
    match remote.strip_prefix("sc://") {
        Some(rest) if !rest.is_empty() && !rest.starts_with([':', '/', ';']) => {
            Ok(remote.to_string())
        }
        _ => Err(format!(
            "`{remote}` is not a Spark Connect address like `sc://localhost:15002`"
        )),
    }
}

/// A connect timeout such as `30s` or `2m`, within `CONNECT_TIMEOUT_RANGE`; in seconds.
pub fn parse_connect_timeout(text: &str) -> Result<u64, String> {
    let us = crate::time::parse_duration_us(text)?;
    let (lo, hi) = CONNECT_TIMEOUT_RANGE;
    let s = us / 1_000_000;
    if us % 1_000_000 != 0 || s < lo as i64 || s > hi as i64 {
        return Err(format!(
            "`{text}` must be a whole number of seconds from {lo}s to {hi}s"
        ));
    }
    Ok(s as u64)
}

/// `auto` or a number of buckets from 1 to `MAX_BUCKETS`.
fn parse_buckets(v: &serde_yaml::Value) -> Result<Buckets, String> {
    match v {
        serde_yaml::Value::String(s) if s == "auto" => Ok(Buckets::Auto),
        serde_yaml::Value::String(s) => parse_buckets_text(s),
        serde_yaml::Value::Number(n) => match n.as_i64() {
            Some(b) => bucket_count(b),
            None => Err(format!("must be `auto` or a whole number, got {n}")),
        },
        other => Err(format!(
            "must be `auto` or a whole number, got {}",
            serde_yaml::to_string(other).unwrap_or_default().trim()
        )),
    }
}

/// `--buckets`: `auto` or a number.
pub fn parse_buckets_text(s: &str) -> Result<Buckets, String> {
    if s == "auto" {
        return Ok(Buckets::Auto);
    }
    match s.parse::<i64>() {
        Ok(b) => bucket_count(b),
        Err(_) => Err(format!("must be `auto` or a whole number, got `{s}`")),
    }
}

fn bucket_count(b: i64) -> Result<Buckets, String> {
    if (1..=MAX_BUCKETS as i64).contains(&b) {
        Ok(Buckets::Fixed(b as u32))
    } else {
        Err(format!("must be between 1 and {MAX_BUCKETS}, got {b}"))
    }
}

/// The thread count, from 1 to `MAX_THREADS`.
pub fn check_threads(t: i64) -> Result<u32, String> {
    if (1..=MAX_THREADS as i64).contains(&t) {
        Ok(t as u32)
    } else {
        Err(format!("must be between 1 and {MAX_THREADS}, got {t}"))
    }
}

/// A size such as `8GiB`, `512MiB`, `2GB` or `1073741824` (bytes), within
/// `MEMORY_LIMIT_RANGE`. KiB/MiB/GiB/TiB are powers of 1024, KB/MB/GB/TB of 1000.
pub fn parse_memory(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let bad = || format!("`{text}` is not a size like `8GiB`, `512MiB` or `2GB`");
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let unit_bytes: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "TiB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        _ => return Err(bad()),
    };
    let n: f64 = number.parse().map_err(|_| bad())?;
    let bytes = n * unit_bytes;
    let (lo, hi) = MEMORY_LIMIT_RANGE;
    if !bytes.is_finite() || bytes < lo as f64 || bytes > hi as f64 {
        return Err(format!("`{text}` is outside 256MiB to 16TiB"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_buckets_and_threads() {
        assert_eq!(parse_memory("8GiB"), Ok(8 << 30));
        assert_eq!(parse_memory("512MiB"), Ok(512 << 20));
        assert_eq!(parse_memory("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_memory("1.5GiB"), Ok(3 << 29));
        assert!(parse_memory("1MiB").unwrap_err().contains("outside"));
        assert!(parse_memory("8 gigs").is_err());
        assert_eq!(parse_buckets_text("auto"), Ok(Buckets::Auto));
        assert_eq!(parse_buckets_text("7"), Ok(Buckets::Fixed(7)));
        assert!(parse_buckets_text("0").is_err());
        assert!(parse_buckets_text("5000").is_err());
        assert!(check_threads(0).is_err());
        assert_eq!(check_threads(2), Ok(2));
        assert!(check_remote("sc://localhost:15002").is_ok());
        assert!(check_remote("sc://:15002").is_err());
        assert!(check_remote("http://localhost").is_err());
        assert_eq!(parse_connect_timeout("2m"), Ok(120));
        assert!(parse_connect_timeout("0s").is_err());
        assert!(parse_connect_timeout("2h").is_err());
    }
}
