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
/// `<point>` (`partition`, `map` or `publish`): at that point the run prints `paused at
/// <point>` on stderr and sleeps for a minute, for a test to kill it there.
pub const PAUSE_AT_ENV: &str = "CXMETRICS_TEST_PAUSE_AT";
/// A factor replacing `engine::plan::WORK_SPACE` in the space check, so that a test can let a
/// run start on a work directory too small for it and run out of space midway.
pub const WORK_SPACE_ENV: &str = "CXMETRICS_TEST_WORK_SPACE";

/// Stops at `point` when `PAUSE_AT_ENV` names it (see there).
pub fn pause_at(point: &str) {
    if std::env::var(PAUSE_AT_ENV).is_ok_and(|p| p == point) {
        eprintln!("paused at {point}");
        std::thread::sleep(std::time::Duration::from_secs(60));
    }
}

/// The work-space factor set by `WORK_SPACE_ENV`, if any.
pub fn work_space() -> Option<f64> {
    std::env::var(WORK_SPACE_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
}

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
    abort_at_count(ABORT_AFTER_TABLES_ENV, staged);
}

/// Abort right after this many objects of a result were uploaded to object storage.
pub const ABORT_AFTER_UPLOADS_ENV: &str = "CXMETRICS_TEST_ABORT_AFTER_UPLOADS";

/// Aborts the process when `ABORT_AFTER_UPLOADS_ENV` equals `uploaded`.
pub fn abort_after_uploads(uploaded: usize) {
    abort_at_count(ABORT_AFTER_UPLOADS_ENV, uploaded);
}

/// Aborts the process when `var` holds the number `count`.
fn abort_at_count(var: &str, count: usize) {
    let wanted: Option<usize> = std::env::var(var).ok().and_then(|v| v.parse().ok());
    if wanted == Some(count) {
        std::process::abort();
    }
}
