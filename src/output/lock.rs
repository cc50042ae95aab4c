//! One writer at a time per output directory.
//!
//! A run holds an exclusive OS lock (`flock`) on `<dir>/.cxmetrics.lock` from before it
//! recovers interrupted runs until after it has published, and writes who it is into the
//! file (run id, pid, host, start time). A second run fails at once with exit 1 naming the
//! holder, or waits up to `--wait-for-lock`. The lock is released by the OS when the process
//! ends, however it ends, so a killed run never leaves a stale lock behind. The file itself
//! stays: removing it would let two runs lock two different files of the same name.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{CxError, Result};

/// The lock file's name in the output directory.
pub const LOCK_FILE: &str = ".cxmetrics.lock";

/// How often a waiting run tries the lock again.
const RETRY: Duration = Duration::from_millis(100);

/// Who holds the lock, as written into the lock file.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Holder {
    pub run_id: String,
    pub pid: u32,
    pub host: String,
    pub started_at: String,
}

impl Holder {
    /// This process, running `run_id` since `started_at`.
    pub fn this_process(run_id: &str, started_at: &str) -> Self {
        Holder {
            run_id: run_id.to_string(),
            pid: std::process::id(),
            host: host_name(),
            started_at: started_at.to_string(),
        }
    }
}

/// The held lock; dropping it releases the lock.
#[derive(Debug)]
pub struct WriterLock {
    _file: File,
    pub path: PathBuf,
}

impl WriterLock {
    /// Takes the lock of `dir` (which must exist), waiting up to `wait` for another run to
    /// finish. Exit 1 naming the holder when it stays taken.
    pub fn acquire(dir: &Path, me: &Holder, wait: Duration) -> Result<WriterLock> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            // A symlink planted under the lock's name is not followed.
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| CxError::internal(format!("opening {}", path.display()), e))?;
        let started = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    if started.elapsed() >= wait {
                        return Err(busy(dir, &mut file, wait));
                    }
                    std::thread::sleep(RETRY.min(wait.saturating_sub(started.elapsed())));
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(CxError::internal(format!("locking {}", path.display()), e))
                }
            }
        }
        let text = serde_json::to_string(me).expect("holder serialises");
        file.set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(text.as_bytes()))
            .and_then(|_| file.flush())
            .map_err(|e| CxError::internal(format!("writing {}", path.display()), e))?;
        Ok(WriterLock { _file: file, path })
    }
}

/// The error of a lock that stayed taken, naming its holder as far as the file tells.
fn busy(dir: &Path, file: &mut File, waited: Duration) -> CxError {
    let mut text = String::new();
    let _ = file.seek(SeekFrom::Start(0));
    let _ = file.read_to_string(&mut text);
    let holder = match serde_json::from_str::<Holder>(&text) {
        Ok(h) => format!(
            "run {} (pid {} on host {}, started {})",
            h.run_id, h.pid, h.host, h.started_at
        ),
        Err(_) => "a run that has not written its name yet".to_string(),
    };
    let waited = if waited.is_zero() {
        "; pass --wait-for-lock DURATION to wait for it".to_string()
    } else {
        format!(" after waiting {}s", waited.as_secs_f64())
    };
    CxError::internal(
        format!("output directory {} is in use", dir.display()),
        format!("another cxmetrics run is writing it: {holder}{waited}"),
    )
}

/// This machine's name, for the lock's holder line.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_with_the_holder_named_until_the_first_is_done() {
        let dir = tempfile::tempdir().unwrap();
        let me = Holder::this_process("run-a", "2026-06-30T00:00:00Z");
        let first = WriterLock::acquire(dir.path(), &me, Duration::ZERO).unwrap();
        let other = Holder::this_process("run-b", "2026-06-30T00:00:01Z");
        // flock locks belong to the open file, so a second open in this process conflicts too.
        let e = WriterLock::acquire(dir.path(), &other, Duration::ZERO)
            .unwrap_err()
            .to_string();
        assert!(e.contains("run run-a (pid "), "{e}");
        assert!(e.contains("--wait-for-lock"), "{e}");
        let t = Instant::now();
        let e = WriterLock::acquire(dir.path(), &other, Duration::from_millis(300))
            .unwrap_err()
            .to_string();
        assert!(t.elapsed() >= Duration::from_millis(300), "{e}");
        assert!(e.contains("after waiting 0.3s"), "{e}");
        drop(first);
        let second = WriterLock::acquire(dir.path(), &other, Duration::ZERO).unwrap();
        let text = std::fs::read_to_string(&second.path).unwrap();
        assert!(text.contains("\"run_id\":\"run-b\""), "{text}");
    }

    #[test]
    fn a_symlink_in_place_of_the_lock_file_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::fs::write(&elsewhere, "keep me").unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.path().join(LOCK_FILE)).unwrap();
        let me = Holder::this_process("run-a", "t");
        assert!(WriterLock::acquire(dir.path(), &me, Duration::ZERO).is_err());
        assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "keep me");
    }
}
