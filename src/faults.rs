//! Fault injection for the integration tests: environment variables that make a debug build
//! abort at a chosen point, to prove that a run killed there leaves the outputs readable and
//! that the next run recovers. Compiled only into debug builds (`cargo test` builds the binary
//! in debug), so a release binary never reads them.

/// Abort right after this many tables were staged.
pub const ABORT_AFTER_TABLES_ENV: &str = "CXMETRICS_TEST_ABORT_AFTER_TABLES";
/// Abort right after `_COMMIT` is written, before the first rename.
pub const ABORT_AFTER_COMMIT_ENV: &str = "CXMETRICS_TEST_ABORT_AFTER_COMMIT";
/// Abort right after the first file of a publish was renamed into place.
pub const ABORT_DURING_PUBLISH_ENV: &str = "CXMETRICS_TEST_ABORT_DURING_PUBLISH";

/// Sleep this many milliseconds right after taking the output directory's lock, so that a
/// test can start a second run while the first holds it.
pub const PAUSE_AFTER_LOCK_ENV: &str = "CXMETRICS_TEST_PAUSE_AFTER_LOCK_MS";

/// Sleeps for the milliseconds `var` holds, if it is set.
pub fn pause_if(var: &str) {
    if let Some(ms) = std::env::var(var).ok().and_then(|v| v.parse().ok()) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// Aborts the process when `var` is set (to anything).
pub fn abort_if(var: &str) {
    if std::env::var_os(var).is_some() {
        std::process::abort();
    }
}

/// Aborts the process when `ABORT_AFTER_TABLES_ENV` equals `staged`.
pub fn abort_after_tables(staged: usize) {
    let wanted: Option<usize> = std::env::var(ABORT_AFTER_TABLES_ENV)
        .ok()
        .and_then(|v| v.parse().ok());
    if wanted == Some(staged) {
        std::process::abort();
    }
}
