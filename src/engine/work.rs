//! The run's work directory: the bucket files of the partition pass and the rows kept between
//! rounds. It is `<root>/.cxmetrics-work-<run id>` (root: the output directory, or
//! `execution.work_dir`), holds a `_RUN` file naming its run and a `.lock` file the run holds
//! locked, and is removed when the run ends. One left by a killed run (its lock free, its
//! `_RUN` matching its name) is removed by the next run that uses the same root; nothing else
//! there is touched.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::contracts::InputKind;
use crate::error::{CxError, Result};

const PREFIX: &str = ".cxmetrics-work-";
const RUN_FILE: &str = "_RUN";
const LOCK_FILE: &str = ".lock";

/// A live work directory; dropping it removes it.
pub struct WorkDir {
    path: PathBuf,
    _lock: File,
    removed: bool,
}

fn io_err(what: &str, path: &Path, e: impl std::fmt::Display) -> CxError {
    CxError::internal(format!("{what} {}", path.display()), e)
}

impl WorkDir {
    /// Creates the work directory of `run_id` under `root`.
    pub fn create(root: &Path, run_id: &str) -> Result<WorkDir> {
        fs::create_dir_all(root).map_err(|e| io_err("creating the work directory", root, e))?;
        let path = root.join(format!("{PREFIX}{run_id}"));
        fs::create_dir(&path).map_err(|e| io_err("creating the work directory", &path, e))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path.join(LOCK_FILE))
            .map_err(|e| io_err("creating", &path.join(LOCK_FILE), e))?;
        lock.try_lock()
            .map_err(|e| io_err("locking", &path.join(LOCK_FILE), e))?;
        let mut run = File::create(path.join(RUN_FILE))
            .map_err(|e| io_err("creating", &path.join(RUN_FILE), e))?;
        run.write_all(run_id.as_bytes())
            .map_err(|e| io_err("writing", &path.join(RUN_FILE), e))?;
        Ok(WorkDir {
            path,
            _lock: lock,
            removed: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The folder of one input's bucket files.
    pub fn input_dir(&self, kind: InputKind) -> PathBuf {
        self.path.join("inputs").join(kind.name())
    }

    /// The folder of the rows kept between rounds.
    pub fn kept_dir(&self) -> PathBuf {
        self.path.join("kept")
    }

    /// Where the partials that hold every value of a group are spilled.
    pub fn partials_dir(&self) -> PathBuf {
        self.path.join("partials")
    }

    /// Fails (exit 1) when the file system of the work directory has less free space than
    /// `needed`.
    pub fn check_space(&self, needed: u64) -> Result<()> {
        let free = free_bytes(&self.path).unwrap_or(u64::MAX);
        if free < needed {
            return Err(CxError::internal(
                format!("work directory {}", self.path.display()),
                format!(
                    "not enough space: {} MiB free, and this run needs about {} MiB (about {} times \
                     the input files); set execution.work_dir to a larger file system",
                    free >> 20,
                    needed.div_ceil(1 << 20),
                    super::plan::WORK_SPACE
                ),
            ));
        }
        Ok(())
    }

    /// `e` with the work directory named when it is a full disk.
    pub fn explain(&self, e: CxError) -> CxError {
        let text = e.to_string();
        if text.contains("No space left on device") || text.contains("os error 28") {
            CxError::internal(
                format!("work directory {}", self.path.display()),
                format!(
                    "ran out of space after writing {} MiB ({text}); free space there or set \
                     execution.work_dir to a larger file system",
                    self.bytes_used() >> 20
                ),
            )
        } else {
            e
        }
    }

    /// Bytes of the files in the work directory now.
    pub fn bytes_used(&self) -> u64 {
        fn walk(p: &Path) -> u64 {
            match fs::symlink_metadata(p) {
                Ok(m) if m.is_dir() => fs::read_dir(p)
                    .map(|d| d.filter_map(|e| e.ok()).map(|e| walk(&e.path())).sum())
                    .unwrap_or(0),
                Ok(m) => m.len(),
                Err(_) => 0,
            }
        }
        walk(&self.path)
    }

    /// Removes the directory (also done when it is dropped).
    pub fn remove(mut self) {
        self.removed = fs::remove_dir_all(&self.path).is_ok();
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if !self.removed {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Writes a work file (LZ4: fast to write and read back), creating its folder;
/// `row_group`: its row-group size (polars' default if None).
pub fn write_file(
    path: &Path,
    df: &mut polars::prelude::DataFrame,
    row_group: Option<usize>,
) -> polars::prelude::PolarsResult<()> {
    use polars::prelude::*;
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)
            .map_err(|e| polars_err!(ComputeError: "creating {}: {}", parent.display(), e))?;
    }
    let file = File::create(path)
        .map_err(|e| polars_err!(ComputeError: "creating {}: {}", path.display(), e))?;
    ParquetWriter::new(file)
        .with_compression(ParquetCompression::Lz4Raw)
        .with_row_group_size(row_group)
        .finish(df)?;
    Ok(())
}

/// Free bytes on the file system holding `path`.
fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `s` a valid statvfs to fill.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut s) };
    (rc == 0).then(|| s.f_bavail as u64 * s.f_frsize as u64)
}

/// Removes the work directories of killed runs under `root`: exact name, a real folder, its
/// `_RUN` naming the run, and its lock free.
pub fn remove_stale(root: &Path) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    let Ok(entries) = fs::read_dir(root) else {
        return Ok(notes);
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(run_id) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let path = entry.path();
        if !fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        let ours = fs::read_to_string(path.join(RUN_FILE)).is_ok_and(|t| t == run_id);
        if !ours {
            continue;
        }
        let free = OpenOptions::new()
            .write(true)
            .open(path.join(LOCK_FILE))
            .is_ok_and(|f| f.try_lock().is_ok());
        if free {
            fs::remove_dir_all(&path).map_err(|e| io_err("removing", &path, e))?;
            notes.push(format!(
                "removed the work directory of a killed run {}",
                path.display()
            ));
        }
    }
    Ok(notes)
}
