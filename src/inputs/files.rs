//! Where an input's files are: a file, a directory (its `*.parquet` files, not recursive, in
//! name order) or a glob (matches in name order), on the local file system or in object
//! storage (`s3://bucket/prefix/`, `gs://...`, `az://...`: a prefix is the folder of its
//! `*.parquet` objects). A file in object storage is named by its URI.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use polars::io::mmap::MmapBytesReader;

use crate::storage;

/// Opens one file of an input for the Parquet reader: a local file, or an object read whole.
pub fn open_file(path: &Path) -> std::result::Result<Box<dyn MmapBytesReader>, String> {
    match path.to_str().filter(|p| storage::is_remote(p)) {
        Some(uri) => Ok(Box::new(Cursor::new(storage::get(uri)?))),
        None => std::fs::File::open(path)
            .map(|f| Box::new(f) as Box<dyn MmapBytesReader>)
            .map_err(|e| format!("cannot open: {e}")),
    }
}

/// The size in bytes of one file of an input (local or in object storage).
pub fn file_size(path: &Path) -> std::result::Result<u64, String> {
    match path.to_str().filter(|p| storage::is_remote(p)) {
        Some(uri) => storage::size(uri),
        None => std::fs::metadata(path)
            .map(|m| m.len())
            .map_err(|e| format!("{}: cannot read: {e}", path.display())),
    }
}

/// `resolve_files` for a URI: an object, a prefix (its `*.parquet` objects) or a glob.
fn resolve_remote(spec: &str) -> std::result::Result<Location, String> {
    let uris = |v: Vec<String>| v.into_iter().map(PathBuf::from).collect::<Vec<_>>();
    if spec.contains(['*', '?', '[']) {
        let found = storage::glob(spec)?;
        if found.is_empty() {
            return Err(format!("{spec}: no files match"));
        }
        return Ok(Location::Glob(spec.to_string(), uris(found)));
    }
    if !spec.ends_with('/') && storage::exists(spec)? {
        return Ok(Location::Files(vec![PathBuf::from(spec)]));
    }
    let found = storage::list_folder(spec)?;
    if found.is_empty() {
        return Err(format!(
            "{spec}: not found (no such object, and no .parquet objects under it)"
        ));
    }
    Ok(Location::Dir(PathBuf::from(spec), uris(found)))
}

/// Where an input's files are, as the job file names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// One file.
    Files(Vec<PathBuf>),
    /// A directory and its `*.parquet` files.
    Dir(PathBuf, Vec<PathBuf>),
    /// A glob pattern (absolute) and its matches.
    Glob(String, Vec<PathBuf>),
}

impl Location {
    /// The input's files, in the order they are read.
    pub fn files(&self) -> &[PathBuf] {
        match self {
            Location::Files(f) | Location::Dir(_, f) | Location::Glob(_, f) => f,
        }
    }
}

/// What kind of file system entry `m` is, for "not a regular file" messages.
fn kind_of(m: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = m.file_type();
    if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// A matched path must be a regular file (symlinks followed); a FIFO or a device would block
/// or never end when read.
fn regular(path: PathBuf) -> std::result::Result<PathBuf, String> {
    match std::fs::metadata(&path) {
        Ok(m) if m.is_file() => path
            .canonicalize()
            .map_err(|e| format!("{}: cannot resolve: {e}", path.display())),
        Ok(m) => Err(format!(
            "{}: is {}, not a regular file",
            path.display(),
            kind_of(&m)
        )),
        Err(e) => Err(format!("{}: cannot read: {e}", path.display())),
    }
}

/// Turns a `path` from the job file (file, directory or glob) into its files, sorted by name.
/// `base` is the job file's real folder (symlinks resolved), so that `..` means what it means
/// to `cd` and `ls` from there. The files come back with their real paths.
pub fn resolve_files(base: &Path, spec: &str) -> std::result::Result<Location, String> {
    if storage::is_remote(spec) {
        return resolve_remote(spec);
    }
    let full = base.join(spec);
    let shown = full.display().to_string();
    if spec.contains(['*', '?', '[']) {
        let pattern = full.to_string_lossy().to_string();
        let mut files = Vec::new();
        for p in glob::glob(&pattern).map_err(|e| format!("{shown}: invalid glob: {e}"))? {
            let p = p.map_err(|e| format!("{shown}: {e}"))?;
            if !p.is_dir() {
                files.push(regular(p)?);
            }
        }
        files.sort();
        if files.is_empty() {
            return Err(format!("{shown}: no files match"));
        }
        return Ok(Location::Glob(pattern, files));
    }
    let meta = match std::fs::metadata(&full) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("{shown}: file not found"))
        }
        Err(e) => return Err(format!("{shown}: cannot read: {e}")),
    };
    if meta.is_dir() {
        let dir = full
            .canonicalize()
            .map_err(|e| format!("{shown}: cannot resolve: {e}"))?;
        let mut files = Vec::new();
        for entry in
            std::fs::read_dir(&full).map_err(|e| format!("{shown}: cannot list directory: {e}"))?
        {
            let p = entry
                .map_err(|e| format!("{shown}: cannot list directory: {e}"))?
                .path();
            if p.extension().is_some_and(|x| x == "parquet") && !p.is_dir() {
                files.push(regular(p)?);
            }
        }
        files.sort();
        if files.is_empty() {
            return Err(format!("{shown}: directory has no .parquet files"));
        }
        return Ok(Location::Dir(dir, files));
    }
    Ok(Location::Files(vec![regular(full)?]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_files_handles_file_directory_and_glob() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("parts")).unwrap();
        for f in ["parts/b.parquet", "parts/a.parquet", "parts/notes.txt"] {
            std::fs::write(d.join(f), b"x").unwrap();
        }
        let names = |v: Location| -> Vec<String> {
            v.files()
                .iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
                .collect()
        };
        assert_eq!(
            names(resolve_files(d, "parts").unwrap()),
            ["a.parquet", "b.parquet"]
        );
        assert_eq!(
            names(resolve_files(d, "parts/*.parquet").unwrap()),
            ["a.parquet", "b.parquet"]
        );
        assert_eq!(
            names(resolve_files(d, "parts/b.parquet").unwrap()),
            ["b.parquet"]
        );
        assert!(resolve_files(d, "nope.parquet")
            .unwrap_err()
            .ends_with("file not found"));
        assert!(resolve_files(d, "parts/*.csv")
            .unwrap_err()
            .ends_with("no files match"));
    }

    #[test]
    fn a_fifo_or_a_device_is_not_a_file_to_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("orders.parquet");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        for spec in ["orders.parquet", "*.parquet", "."] {
            let e = resolve_files(dir.path(), spec).unwrap_err();
            assert!(e.ends_with("is a FIFO, not a regular file"), "{spec}: {e}");
        }
        let e = resolve_files(Path::new("/"), "dev/zero").unwrap_err();
        assert!(
            e.ends_with("is a character device, not a regular file"),
            "{e}"
        );
    }

    #[test]
    fn dot_dot_is_resolved_by_the_file_system_from_the_real_folder() {
        // jobs -> real/jobs: from jobs/, `../data` is real/data, as `cd jobs; ls ../data` says.
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().canonicalize().unwrap();
        std::fs::create_dir_all(d.join("real/jobs")).unwrap();
        std::fs::create_dir_all(d.join("real/data")).unwrap();
        std::fs::create_dir_all(d.join("data")).unwrap();
        std::fs::write(d.join("real/data/o.parquet"), "x").unwrap();
        std::fs::write(d.join("data/o.parquet"), "y").unwrap();
        std::os::unix::fs::symlink(d.join("real/jobs"), d.join("jobs")).unwrap();
        let base = d.join("jobs").canonicalize().unwrap();
        let got = resolve_files(&base, "../data/o.parquet").unwrap();
        assert_eq!(got.files(), [d.join("real/data/o.parquet")]);
    }
}
