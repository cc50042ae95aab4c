//! Proving that a file decodes before this process decodes it.
//!
//! A corrupt Parquet file can make the reader ask for an absurd allocation (a corrupted length
//! in the footer or a page header: 2 EiB was seen), and a failed allocation aborts the process;
//! no error handling can catch that. So before a run (or `validate`) reads an input, its files
//! are decoded once by a child process running this same program (`cxmetrics
//! __check-parquet`): the footer, then the same columns in the same batches of row groups as
//! the run will read. A file the child cannot read, or that kills the child, is an input error
//! (exit 3) naming the file, and the run never opens it itself. The cost is a second decode of
//! every input file.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use polars::prelude::*;

use super::read::{batches, guarded};
use super::schema::{read_schema, wanted_columns};
use super::InputSource;
use crate::contracts::InputKind;

/// How files are proven to decode.
#[derive(Debug, Clone)]
pub enum FileCheck {
    /// In a child process: `program` with `args`, then the files; the input's description as
    /// JSON on its standard input. The cxmetrics binary passes itself and `__check-parquet`.
    Subprocess { program: PathBuf, args: Vec<String> },
    /// In this process. Only where no cxmetrics program exists to run (unit tests of the
    /// library): an abort would end the calling process.
    InProcess,
}

/// Files per child process (the command line has a length limit).
const FILES_PER_CHILD: usize = 256;

/// What the child needs to know to read a file as the run will.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Request {
    kind: String,
    rename: BTreeMap<String, String>,
    extra: Vec<String>,
    /// The job's `storage_options`, for files in object storage.
    storage: crate::storage::StorageOptions,
}

/// Decodes every file of `source` with `check`; returns one problem per file that does not
/// decode (`<input> (<file>): <why>`).
pub fn check_files(source: &InputSource, extra: &[String], check: &FileCheck) -> Vec<String> {
    let name = |path: &Path, why: String| format!("{} ({}): {why}", source.kind, path.display());
    match check {
        FileCheck::InProcess => source
            .files
            .iter()
            .filter_map(|p| {
                check_file_in_this_process(source, p, extra)
                    .err()
                    .map(|e| name(p, e))
            })
            .collect(),
        FileCheck::Subprocess { program, args } => {
            let request = Request {
                kind: source.kind.name().to_string(),
                rename: source.rename.clone(),
                extra: extra.to_vec(),
                storage: crate::storage::configured(),
            };
            let mut problems = Vec::new();
            let mut rest: &[PathBuf] = &source.files;
            while !rest.is_empty() {
                let chunk = &rest[..rest.len().min(FILES_PER_CHILD)];
                match run_child(program, args, &request, chunk) {
                    Ok((done, found)) => {
                        problems.extend(found.into_iter().map(|(i, e)| name(&chunk[i], e)));
                        rest = &rest[done..];
                    }
                    Err(e) => {
                        problems.push(format!("{}: cannot check its files: {e}", source.kind));
                        break;
                    }
                }
            }
            problems
        }
    }
}

/// Runs one child over `files`. Returns how many files it got through (all, or up to and
/// including the one it died on) and the problems found, by index into `files`.
fn run_child(
    program: &Path,
    args: &[String],
    request: &Request,
    files: &[PathBuf],
) -> std::result::Result<(usize, Vec<(usize, String)>), String> {
    let mut child = Command::new(program)
        .args(args)
        .args(files)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
    let text = serde_json::to_string(request).expect("request serialises");
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| format!("cannot talk to the checking process: {e}"))?;
    }
    let stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    // Drain stderr on its own thread so that a chatty child cannot block on a full pipe.
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut started: Option<usize> = None;
    let mut finished = 0usize;
    let mut problems = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| format!("cannot read the checking process: {e}"))?;
        let mut parts = line.splitn(3, ' ');
        let (word, index) = (parts.next(), parts.next().and_then(|i| i.parse().ok()));
        match (word, index) {
            (Some("start"), Some(i)) => started = Some(i),
            (Some("ok"), Some(i)) => finished = i + 1,
            (Some("error"), Some(i)) => {
                let why = parts.next().unwrap_or("").to_string();
                problems.push((i, why));
                finished = i + 1;
            }
            _ => {}
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("cannot wait for the checking process: {e}"))?;
    let stderr = errors.join().unwrap_or_default();
    if status.success() && finished == files.len() {
        return Ok((files.len(), problems));
    }
    // The child died on the file it had started and not finished.
    match started.filter(|s| *s >= finished) {
        Some(culprit) => {
            let how = match status.code() {
                Some(code) => format!("exit code {code}"),
                None => {
                    use std::os::unix::process::ExitStatusExt;
                    format!("signal {}", status.signal().unwrap_or(0))
                }
            };
            problems.push((
                culprit,
                format!(
                    "corrupt Parquet: the reader failed hard on this file ({how}{})",
                    first_line(&stderr)
                ),
            ));
            Ok((culprit + 1, problems))
        }
        None => Err(format!(
            "the checking process ended without a result ({status}){}",
            first_line(&stderr)
        )),
    }
}

/// The child's first line of complaint (an allocation failure prints its size first, then a
/// backtrace), for the problem's text.
fn first_line(stderr: &str) -> String {
    match stderr.lines().find(|l| !l.trim().is_empty()) {
        Some(l) => format!(": {}", l.trim()),
        None => String::new(),
    }
}

/// Decodes the footer and the columns a run reads of one file, batch by batch, and drops them.
pub fn check_file_in_this_process(
    source: &InputSource,
    path: &Path,
    extra: &[String],
) -> std::result::Result<(), String> {
    let schema = read_schema(path).map_err(|e| {
        // read_schema names the file; the caller does too.
        e.split_once(": ").map(|(_, m)| m.to_string()).unwrap_or(e)
    })?;
    let readable: Vec<String> = wanted_columns(source, &schema, extra)
        .into_iter()
        .filter(|c| matches!(schema.column(c), Some(Ok(_))))
        .collect();
    for slice in batches(&schema.row_groups) {
        let file = super::files::open_file(path)?;
        guarded(|| {
            ParquetReader::new(file)
                .with_columns(Some(readable.clone()))
                .with_slice(Some(slice))
                .finish()
                .map(drop)
        })
        .map_err(|e| format!("corrupt Parquet: {e}"))?;
    }
    Ok(())
}

/// The child's side (`cxmetrics __check-parquet FILE...`, the input's description on standard
/// input): reports `start <i>`, then `ok <i>` or `error <i> <why>` for each file, in order.
/// Returns the exit code.
pub fn serve_check(files: &[PathBuf]) -> i32 {
    let mut text = String::new();
    if std::io::stdin().read_to_string(&mut text).is_err() {
        return 2;
    }
    let Ok(request) = serde_json::from_str::<Request>(&text) else {
        return 2;
    };
    crate::storage::configure(&request.storage);
    let Some(kind) = InputKind::ALL
        .into_iter()
        .find(|k| k.name() == request.kind)
    else {
        return 2;
    };
    let source = InputSource {
        kind,
        files: files.to_vec(),
        rename: request.rename,
        money_scales: BTreeMap::new(),
        freshness: None,
        table: None,
    };
    let mut out = std::io::stdout().lock();
    for (i, path) in files.iter().enumerate() {
        let _ = writeln!(out, "start {i}");
        let _ = out.flush();
        let line = match check_file_in_this_process(&source, path, &request.extra) {
            Ok(()) => format!("ok {i}"),
            Err(e) => format!("error {i} {}", e.replace('\n', " ")),
        };
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_that_dies_names_the_file_it_was_reading_and_the_rest_are_still_checked() {
        // A stand-in child: a shell script that reports the first file, starts the second and
        // kills itself the way an aborting reader would; the next child checks the third.
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("child.sh");
        std::fs::write(
            &script,
            "#!/bin/sh\ncat >/dev/null\ncase \"$1\" in\n  *a.parquet) echo 'start 0'; echo 'ok 0'; \
             echo 'start 1'; kill -ABRT $$ ;;\n  *c.parquet) echo 'start 0'; echo 'error 0 bad \
             footer' ;;\nesac\n",
        )
        .unwrap();
        let files: Vec<PathBuf> = ["a", "b", "c"]
            .iter()
            .map(|n| dir.path().join(format!("{n}.parquet")))
            .collect();
        let source = InputSource {
            kind: InputKind::Orders,
            files: files.clone(),
            rename: BTreeMap::new(),
            money_scales: BTreeMap::new(),
            freshness: None,
            table: None,
        };
        let check = FileCheck::Subprocess {
            program: PathBuf::from("/bin/sh"),
            args: vec![script.display().to_string()],
        };
        let problems = check_files(&source, &[], &check);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].contains("b.parquet") && problems[0].contains("signal 6"),
            "{problems:?}"
        );
        assert!(
            problems[1].contains("c.parquet") && problems[1].ends_with("bad footer"),
            "{problems:?}"
        );
    }
}
