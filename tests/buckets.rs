//! Customer buckets: every table is the same bytes whatever the number of buckets, a run killed
//! in any phase leaves the previous result and its work directory is cleared by the next run,
//! and a work directory that runs out of space is an error naming it.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::*;
use polars::prelude::*;

/// A job with every pipeline on the inputs in `data` (orders as a folder of files).
fn job(dir: &Path, data: &Path, tz: &str, as_of: &str, extra: &str) -> PathBuf {
    let text = format!(
        "name: buckets\nas_of: {as_of}\ntimezone: {tz}\ninputs:\n\
         \x20 orders: {{ path: {d}/orders }}\n\
         \x20 tickets: {{ path: {d}/tickets.parquet }}\n\
         \x20 surveys: {{ path: {d}/surveys.parquet }}\n\
         \x20 customers: {{ path: {d}/customers.parquet }}\n\
         \x20 events: {{ path: {d}/events.parquet }}\n\
         pipelines:\n\
         \x20 survey_scores: {{ period: week, by: [channel, agent_id] }}\n\
         \x20 support_kpis: {{ period: month, by: [channel, category], sla_first_response: {{ chat: 60s, email: 4h }} }}\n\
         \x20 cohort_retention: {{ period: month, by: [region] }}\n\
         \x20 churn: {{ period: month, by: [plan] }}\n\
         \x20 activation: {{ by: [plan] }}\n\
         \x20 ltv_segments: {{ by: [region, plan], holdout_days: 90 }}\n\
         \x20 cx_impact: {{ by: [plan], customer_table: true }}\n\
         quality: {{ max_rejected_fraction: 0.2 }}\n\
         output:\n  dir: out\n  report: true\n{extra}",
        d = data.display()
    );
    job_file(dir, &text)
}

/// Generated inputs in `dir`, with the orders as a folder of two files: the generated one and
/// one that repeats some of its order ids under other customers, amounts and times (a repeat
/// is a duplicate however its customer differs; the first valid occurrence in file order wins).
fn data(dir: &Path, customers: u32, seed: u64) -> PathBuf {
    let d = dir.join("data");
    generate(&d, customers, 548, seed);
    fs::create_dir_all(d.join("orders")).unwrap();
    fs::rename(d.join("orders.parquet"), d.join("orders/a.parquet")).unwrap();
    let orders = read(&d.join("orders/a.parquet"));
    let n = orders.height();
    let picks: Vec<u32> = (0..n as u32).step_by(37).collect();
    let mut repeats = orders
        .take(&IdxCa::from_vec("i".into(), picks.clone()))
        .unwrap();
    // Another customer (the row 11 further on, wrapping), another amount.
    let other: Vec<u32> = picks.iter().map(|i| (i + 11) % n as u32).collect();
    let ids = orders
        .column("customer_id")
        .unwrap()
        .take(&IdxCa::from_vec("i".into(), other))
        .unwrap();
    repeats.replace("customer_id", ids).unwrap();
    let amount = repeats
        .column("amount")
        .unwrap()
        .cast(&DataType::Float64)
        .unwrap()
        * 3.0;
    repeats
        .replace("amount", amount.with_name("amount".into()))
        .unwrap();
    write(&d.join("orders/b.parquet"), &mut repeats);
    d
}

/// The tables and the report of a result.
fn tables_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = tables(&snapshot(dir));
    out.extend(
        snapshot(dir)
            .into_iter()
            .filter(|(n, _)| n.ends_with("report.html")),
    );
    out
}

#[test]
fn every_table_is_the_same_bytes_for_any_number_of_buckets() {
    let tmp = tempfile::tempdir().unwrap();
    let generated = data(tmp.path(), 700, 13);
    let sample = tmp.path().join("sample");
    fs::create_dir_all(sample.join("orders")).unwrap();
    for f in ["tickets", "surveys", "customers", "events"] {
        fs::copy(
            root().join(format!("sample-data/{f}.parquet")),
            sample.join(format!("{f}.parquet")),
        )
        .unwrap();
    }
    fs::copy(
        root().join("sample-data/orders.parquet"),
        sample.join("orders/a.parquet"),
    )
    .unwrap();
    let cases = [
        (&generated, "America/New_York", "2026-06-30"),
        (&generated, "Asia/Kolkata", "2026-03-17"),
        (&sample, "Pacific/Auckland", "2026-06-30"),
    ];
    for (k, (d, tz, as_of)) in cases.iter().enumerate() {
        let work = tmp.path().join(format!("case{k}"));
        fs::create_dir_all(&work).unwrap();
        let j = job(&work, d, tz, as_of, "");
        let out = |b: u32| work.join(format!("out-{b}"));
        let mut first: Option<Vec<(String, Vec<u8>)>> = None;
        for b in [1u32, 2, 7, 64] {
            let o = run(&[
                "run",
                j.to_str().unwrap(),
                "--buckets",
                &b.to_string(),
                "--output-dir",
                out(b).to_str().unwrap(),
            ]);
            assert_eq!(o.status.code(), Some(0), "{tz} B={b}: {}", stderr(&o));
            assert!(
                stderr(&o).contains(&format!("buckets={b} ")),
                "{}",
                stderr(&o)
            );
            let t = tables_of(&out(b));
            assert_eq!(
                t.len(),
                14,
                "{:?}",
                t.iter().map(|x| &x.0).collect::<Vec<_>>()
            );
            match &first {
                None => first = Some(t),
                Some(one) => {
                    for ((name, bytes), (_, want)) in t.iter().zip(one) {
                        assert!(bytes == want, "{tz}: {name} differs between B=1 and B={b}");
                    }
                }
            }
        }
        // The repeated order ids are rejected as duplicates, across the two files.
        let rejected = read(&out(1).join("rejected_rows.parquet"));
        let reasons: Vec<String> = rejected
            .column("reason")
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .flatten()
            .map(String::from)
            .collect();
        assert!(
            reasons.contains(&"duplicate order_id".to_string()),
            "{reasons:?}"
        );
    }
}

/// Starts a run that stops at `point` (see `faults::PAUSE_AT_ENV`), waits until it is there,
/// and kills it with SIGKILL.
fn kill_at(job: &Path, as_of: &str, point: &str) {
    let mut child = bin()
        .args([
            "run",
            job.to_str().unwrap(),
            "--as-of",
            as_of,
            "--buckets",
            "3",
        ])
        .env("CXMETRICS_TEST_PAUSE_AT", point)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        let at = line.contains(&format!("paused at {point}"));
        seen.push(line);
        if at {
            break;
        }
    }
    assert!(
        seen.last().is_some_and(|l| l.contains("paused at")),
        "{point}: {seen:#?}"
    );
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), None, "killed by a signal");
}

fn work_dirs(dir: &Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| n.starts_with(".cxmetrics-work-"))
        .collect()
}

#[test]
fn a_run_killed_in_any_phase_leaves_the_previous_result_and_the_next_run_clears_its_work() {
    let tmp = tempfile::tempdir().unwrap();
    let d = data(tmp.path(), 120, 5);
    let j = job(tmp.path(), &d, "UTC", "2026-06-30", "");
    let out = tmp.path().join("out");
    let o = run(&["run", j.to_str().unwrap(), "--as-of", "2026-05-31"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let before = snapshot(&out);
    for point in ["partition", "map"] {
        kill_at(&j, "2026-06-30", point);
        assert_eq!(
            snapshot(&out),
            before,
            "{point}: the published files changed"
        );
        assert_eq!(
            work_dirs(&out).len(),
            1,
            "{point}: the killed run's work directory"
        );
    }
    // Killed midway through the renames: the next run finishes that publish first.
    kill_at(&j, "2026-06-30", "publish");
    let o = run(&["run", j.to_str().unwrap(), "--as-of", "2026-06-30"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("removed the work directory of a killed run"),
        "{e}"
    );
    assert!(e.contains("rolled forward interrupted publish"), "{e}");
    assert!(work_dirs(&out).is_empty(), "{:?}", names(&out));
    let m: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["as_of"], "2026-06-30");
    assert!(out.join("_SUCCESS").is_file());
}

/// Mounts a tmpfs of `size` at `at` (this test runs as root, as CI does); unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(at).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mounting a tmpfs (needs root)");
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_work_directory_without_room_is_an_error_naming_it_and_the_outputs_stay() {
    let tmp = tempfile::tempdir().unwrap();
    let d = data(tmp.path(), 400, 8);
    let small = Tmpfs::mount(&tmp.path().join("small"), "64k");
    let extra = format!("execution:\n  work_dir: {}\n", small.0.display());
    let j = job(tmp.path(), &d, "UTC", "2026-06-30", &extra);
    let out = tmp.path().join("out");
    let o = run(&[
        "run",
        j.to_str().unwrap(),
        "--as-of",
        "2026-05-31",
        "--output-dir",
        out.to_str().unwrap(),
    ]);
    // Too small from the start: refused before the partition pass.
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains(&format!("work directory {}", small.0.display())),
        "{e}"
    );
    assert!(
        e.contains("not enough space") && e.contains("MiB free"),
        "{e}"
    );
    // Room enough by the estimate (scaled down), too small in fact: runs out midway.
    let out2 = tmp.path().join("out2");
    fs::create_dir_all(&out2).unwrap();
    let big = Tmpfs::mount(&tmp.path().join("big"), "32m");
    let extra = format!("execution:\n  work_dir: {}\n", big.0.display());
    let j2 = job(tmp.path(), &d, "UTC", "2026-06-30", &extra);
    let ok = run(&[
        "run",
        j2.to_str().unwrap(),
        "--output-dir",
        out2.to_str().unwrap(),
    ]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    let before = snapshot(&out2);
    drop(big);
    let tight = Tmpfs::mount(&tmp.path().join("tight"), "32k");
    let extra = format!("execution:\n  work_dir: {}\n", tight.0.display());
    let j3 = job(tmp.path(), &d, "UTC", "2026-06-30", &extra);
    let o = bin()
        .args([
            "run",
            j3.to_str().unwrap(),
            "--output-dir",
            out2.to_str().unwrap(),
        ])
        .env("CXMETRICS_TEST_WORK_SPACE", "0.001")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains(&format!("work directory {}", tight.0.display())),
        "{e}"
    );
    assert!(e.contains("ran out of space"), "{e}");
    assert_eq!(snapshot(&out2), before, "the previous result is untouched");
}
