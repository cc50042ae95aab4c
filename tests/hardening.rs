//! The promises an independent re-implementation and adversarial runs found broken, each run
//! end to end through the binary: wrong numbers (heavy buyers, money beyond 64 bits, wrapped
//! job-file integers, extreme timestamps), two writers, an output directory that is not ours,
//! recovery, corrupt and unsupported files, stale data, paths, and the smaller ones.
//! `CXMETRICS_TEST_BIN=<an older binary> cargo test --test hardening` shows them failing there.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use polars::prelude::*;

const DAY_US: i64 = 86_400_000_000;

fn day_us(d: &str) -> i64 {
    us(&format!("{d} 00:00:00"))
}

fn orders_job(dir: &Path, pipelines: &str, extra: &str) -> PathBuf {
    job_file(
        dir,
        &format!(
            "name: h\nas_of: 2026-06-30\ntimezone: UTC\ninputs:\n  orders: {{ path: data/orders.parquet }}\n\
             pipelines:\n{pipelines}output:\n  dir: out\n{extra}"
        ),
    )
}

fn f64_of(df: &DataFrame, column: &str, key: &str, value: &str) -> Option<f64> {
    let row = df
        .clone()
        .lazy()
        .filter(col(key).eq(lit(value)))
        .collect()
        .unwrap();
    row.column(column).unwrap().f64().unwrap().get(0)
}

// ---- Wrong numbers -------------------------------------------------------------------------

/// 300 ordinary customers and one who bought every day for 2,580 days (x = 2,579, t_x = 2,579,
/// T = 2,586 days at as_of).
fn heavy_buyer_orders() -> DataFrame {
    let as_of = day_us("2026-06-30");
    let mut rows = Vec::new();
    let first = as_of - 2586 * DAY_US;
    for d in 0..2580 {
        rows.push((
            format!("H{d}"),
            "HEAVY".to_string(),
            first + d * DAY_US + 12 * 3_600_000_000,
            25.0,
        ));
    }
    for i in 0..300i64 {
        let start = as_of - (100 + (i * 37) % 2000) * DAY_US;
        let n = 1 + (i * 7) % 6;
        for k in 0..n {
            let at = start + k * (3 + i % 20) * DAY_US + 3_600_000_000;
            if at < as_of {
                rows.push((
                    format!("O{i}-{k}"),
                    format!("C{i:03}"),
                    at,
                    10.0 + (i % 17) as f64 * 3.5,
                ));
            }
        }
    }
    orders(&rows)
}

#[test]
fn a_heavy_buyer_gets_finite_model_values_and_never_nan() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("data/orders.parquet"),
        &mut heavy_buyer_orders(),
    );
    let job = orders_job(
        dir.path(),
        "  ltv_segments: { unit: day, horizon_months: 36 }\n",
        "",
    );
    let o = run(&["run", job.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = dir.path().join("out");
    assert_eq!(non_finite(&out), Vec::<(String, String)>::new());
    let ltv = read(&out.join("customer_ltv.parquet"));
    for c in ["p_alive", "expected_purchases", "predicted_clv"] {
        let v = f64_of(&ltv, c, "customer_id", "HEAVY");
        assert!(v.is_some_and(f64::is_finite), "{c}: {v:?}");
    }
    // Every model value is there: the tiers rank by predicted_clv, and the heavy buyer is top.
    assert_eq!(ltv.column("predicted_clv").unwrap().null_count(), 0);
    let heavy = ltv
        .clone()
        .lazy()
        .filter(col("customer_id").eq(lit("HEAVY")))
        .collect()
        .unwrap();
    assert_eq!(str_at(&heavy, "value_tier", 0), "top_1pct");
    let model = read(&out.join("clv_model.parquet"));
    assert_eq!(model.column("note").unwrap().null_count(), model.height());
}

#[test]
fn money_sums_beyond_64_bits_are_exact_and_absurd_amounts_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let big = 999_999_999_999_999.0; // the largest whole amount below 10^15
    let n = 12_000;
    let june = day_us("2026-06-01");
    let mut rows: Vec<(String, String, i64, f64)> = (0..n)
        .map(|i| {
            (
                format!("O{i}"),
                "M".to_string(),
                june + i as i64 * 180_000_000,
                big,
            )
        })
        .collect();
    for (i, a) in [9.3e18, 1e300, f64::MAX, -1e15].into_iter().enumerate() {
        rows.push((format!("X{i}"), "Z".into(), june, a));
    }
    rows.push(("Y".into(), "Z".into(), june, 5.0));
    write(&dir.path().join("data/orders.parquet"), &mut orders(&rows));
    let job = orders_job(
        dir.path(),
        "  ltv_segments: { model: none }\n  churn: {}\n  cohort_retention: {}\n",
        "",
    );
    let o = run(&["run", job.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = dir.path().join("out");
    // 12,000 × (10^15 − 1) = 11,999,999,999,999,988,000: past i64::MAX, exact as integers.
    let want = (999_999_999_999_999i128 * n as i128) as f64;
    let ltv = read(&out.join("customer_ltv.parquet"));
    assert_eq!(f64_of(&ltv, "revenue", "customer_id", "M"), Some(want));
    assert_eq!(f64_of(&ltv, "revenue", "customer_id", "Z"), Some(5.0));
    let churn = read(&out.join("churn.parquet"));
    let june_rev = churn
        .lazy()
        .filter(
            col("period")
                .cast(DataType::String)
                .eq(lit("2026-06-01"))
                .and(col("dimension").eq(lit("all"))),
        )
        .collect()
        .unwrap();
    assert_eq!(
        june_rev.column("revenue").unwrap().f64().unwrap().get(0),
        Some(want + 5.0)
    );
    let rejected = read(&out.join("rejected_rows.parquet"));
    assert_eq!(str_at(&rejected, "reason", 0), "amount out of range");
    assert_eq!(i64_at(&rejected, "row_count", 0), 4);
    assert_eq!(str_at(&rejected, "example_id", 0), "X0");
}

#[test]
fn every_numeric_parameter_out_of_its_range_is_a_job_file_error_listed_together() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("data/orders.parquet"),
        &mut orders(&[("O1".into(), "C1".into(), day_us("2026-06-01"), 1.0)]),
    );
    let job = job_file(
        dir.path(),
        "name: h\nas_of: 2026-06-30\ninputs:\n  orders: { path: data/orders.parquet }\n  \
         tickets: { path: data/orders.parquet, freshness: { warn_after: 40000d } }\n\
         pipelines:\n\
         \x20 cohort_retention: { max_periods: 4294967295 }\n\
         \x20 churn: { inactive_after_days: 2147483647 }\n\
         \x20 activation: { days: [1, 4294967295, -1] }\n\
         \x20 ltv_segments: { horizon_months: 100000, monthly_discount_rate: -0.5 }\n\
         \x20 cx_impact: { window_days: 4294967295, inactive_after_days: 0 }\n\
         \x20 survey_scores: { scales: { csat: { min: -5000, max: 5, positive_from: 4 } } }\n\
         \x20 support_kpis: { sla_first_response: { chat: 40000d } }\n\
         output:\n  dir: out\n",
    );
    let t = Instant::now();
    for cmd in ["run", "validate"] {
        let o = run(&[cmd, job.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{cmd}: {}", stderr(&o));
        let e = stderr(&o);
        for part in [
            "pipelines.cohort_retention.max_periods: must be between 1 and 10000, got 4294967295",
            "pipelines.churn.inactive_after_days: must be between 1 and 36500, got 2147483647",
            "pipelines.activation.days: must be between 0 and 36500, got 4294967295",
            "pipelines.activation.days: must be between 0 and 36500, got -1",
            "pipelines.ltv_segments.horizon_months: must be between 1 and 120, got 100000",
            "pipelines.ltv_segments.monthly_discount_rate: must be between 0 and 1, got -0.5",
            "pipelines.cx_impact.window_days: must be between 1 and 36500, got 4294967295",
            "pipelines.cx_impact.inactive_after_days: must be between 1 and 36500, got 0",
            "pipelines.survey_scores.scales.csat: every value must be between -1000 and 1000",
            "pipelines.support_kpis.sla_first_response: chat: `40000d` is longer than",
            "inputs.tickets.freshness.warn_after: `40000d` is longer than",
        ] {
            assert!(e.contains(part), "{cmd}: missing {part:?} in\n{e}");
        }
    }
    assert!(!dir.path().join("out").exists());
    // Checked up front, not after minutes of work.
    assert!(t.elapsed() < Duration::from_secs(60));
}

#[test]
fn timestamps_outside_1900_to_2200_are_rejected_rows_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    // Daily from January 1 to June 29, 2026: all before as_of.
    let mut rows: Vec<(String, String, i64, f64)> = (0..180)
        .map(|i| {
            (
                format!("O{i}"),
                format!("C{}", i % 20),
                day_us("2026-01-01") + i * DAY_US,
                10.0,
            )
        })
        .collect();
    rows.push(("OLD".into(), "C1".into(), i64::MIN + 1, 10.0));
    rows.push(("PRE".into(), "C2".into(), us("1899-12-31 23:59:59"), 10.0));
    rows.push(("FUTURE".into(), "C3".into(), i64::MAX, 10.0));
    write(&dir.path().join("data/orders.parquet"), &mut orders(&rows));
    let job = orders_job(
        dir.path(),
        "  cohort_retention: {}\n  churn: {}\n  ltv_segments: { model: none }\n",
        "quality: { max_rejected_fraction: 0.05 }\n",
    );
    let o = run(&["run", job.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = dir.path().join("out");
    let rejected = read(&out.join("rejected_rows.parquet"));
    assert_eq!(str_at(&rejected, "reason", 0), "ordered_at out of range");
    assert_eq!(i64_at(&rejected, "row_count", 0), 2);
    assert_eq!(str_at(&rejected, "example_id", 0), "OLD");
    // The far-future row is after as_of: set aside, as every future row is.
    let manifest: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["inputs"]["orders"]["rows_after_as_of"], 1);
    // An as_of outside the range is a usage error.
    let o = run(&["run", job.to_str().unwrap(), "--as-of", "2250-01-01"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

// ---- Outputs -------------------------------------------------------------------------------

fn surveys_setup() -> (tempfile::TempDir, PathBuf) {
    setup(&basic_rows(), "")
}

#[test]
fn a_second_writer_fails_at_once_naming_the_holder_or_waits_for_the_lock() {
    let (dir, job) = surveys_setup();
    let j = job.to_str().unwrap();
    let out = dir.path().join("out");
    let mut first = bin()
        .args(["run", j, "--as-of", "2026-05-31"])
        .env("CXMETRICS_TEST_PAUSE_AFTER_LOCK_MS", "4000")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lock = out.join(".cxmetrics.lock");
    let t = Instant::now();
    while !fs::read_to_string(&lock).is_ok_and(|s| s.contains("20260531-")) {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "first run never locked"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = run(&["run", j, "--as-of", "2026-06-30"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("is in use"), "{e}");
    assert!(e.contains("run 20260531-"), "{e}");
    assert!(e.contains(&format!("pid {}", first.id())), "{e}");
    assert!(e.contains("on host") && e.contains("started 20"), "{e}");
    // A waiting run goes after the first, and what is published is its own whole result.
    let o = run(&["run", j, "--as-of", "2026-06-30", "--wait-for-lock", "60s"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(first.wait().unwrap().success());
    let manifest: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["as_of"], "2026-06-30");
    for (name, t) in manifest["outputs"].as_object().unwrap() {
        let rows = read(&out.join(format!("{name}.parquet"))).height();
        assert_eq!(t["rows"].as_u64(), Some(rows as u64), "{name}");
    }
    let clean = tempfile::tempdir().unwrap();
    let o = run(&[
        "run",
        j,
        "--as-of",
        "2026-06-30",
        "--output-dir",
        clean.path().join("o").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        tables(&snapshot(&out)),
        tables(&snapshot(&clean.path().join("o")))
    );
}

#[test]
fn a_run_touches_only_what_it_created() {
    let (dir, job) = surveys_setup();
    let j = job.to_str().unwrap();
    let out = dir.path().join("out");
    assert_eq!(run(&["run", j]).status.code(), Some(0));
    // Someone else's folder with our prefix, and a symlink named exactly like a staging
    // folder, pointing outside, with a _COMMIT listing a file there.
    fs::create_dir(out.join(".staging-notes")).unwrap();
    fs::write(out.join(".staging-notes/keep.txt"), "mine").unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    fs::write(elsewhere.path().join("secret.parquet"), "not yours").unwrap();
    fs::write(
        elsewhere.path().join("_RUN"),
        "20260630-20260701T000000.000000Z-1",
    )
    .unwrap();
    fs::write(
        elsewhere.path().join("_COMMIT"),
        "cxmetrics-commit 1 20260630-20260701T000000.000000Z-1\n9 0000000000000000 secret.parquet\nend 1\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(
        elsewhere.path(),
        out.join(".staging-20260630-20260701T000000.000000Z-1"),
    )
    .unwrap();
    let o = run(&["run", j]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        fs::read_to_string(out.join(".staging-notes/keep.txt")).unwrap(),
        "mine"
    );
    assert!(elsewhere.path().join("secret.parquet").is_file());
    assert!(!out.join("secret.parquet").exists());
    assert!(out
        .join(".staging-20260630-20260701T000000.000000Z-1")
        .is_symlink());
}

#[test]
fn directories_that_are_not_ours_to_write_are_refused_before_anything_is_created() {
    let (dir, job) = surveys_setup();
    let j = job.to_str().unwrap();
    let refuse = |args: &[&str], why: &str| {
        let mut all = vec!["run", j];
        all.extend_from_slice(args);
        let o = run(&all);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(why), "{args:?}: {}", stderr(&o));
    };
    refuse(&["--output-dir", "/"], "is the root directory");
    refuse(&["--output-dir", ""], "--output-dir");
    // The directory of an input, and a folder holding one.
    let data = dir.path().join("data");
    refuse(
        &["--output-dir", data.to_str().unwrap()],
        "contains the file",
    );
    refuse(
        &["--output-dir", dir.path().to_str().unwrap()],
        "contains the file",
    );
    // A non-empty directory with someone else's manifest.json.
    let foreign = dir.path().join("foreign");
    fs::create_dir(&foreign).unwrap();
    fs::write(foreign.join("manifest.json"), "{\"mine\": true}").unwrap();
    refuse(
        &["--output-dir", foreign.to_str().unwrap()],
        "was not written by cxmetrics",
    );
    assert_eq!(names(&foreign), ["manifest.json"]);
    assert_eq!(
        fs::read_to_string(foreign.join("manifest.json")).unwrap(),
        "{\"mine\": true}"
    );
    // `dir: ''` in the job file.
    let empty = job_file(
        &dir.path().join("data"),
        "name: t\ninputs:\n  surveys: { path: surveys.parquet }\npipelines:\n  survey_scores:\noutput:\n  dir: ''\n",
    );
    let o = run(&["run", empty.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("output.dir: must not be empty"));
    // validate says the same without creating anything.
    let o = run(&["validate", j]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("can be written"), "{}", stdout(&o));
    assert!(!dir.path().join("out").exists());
}

#[test]
fn a_symlinked_table_folder_in_hive_layout_is_not_written_through() {
    let (dir, job) = setup(&basic_rows(), "  layout: hive\n");
    let j = job.to_str().unwrap();
    let out = dir.path().join("out");
    assert_eq!(
        run(&["run", j, "--as-of", "2026-05-31"]).status.code(),
        Some(0)
    );
    let elsewhere = tempfile::tempdir().unwrap();
    fs::rename(out.join("survey_scores"), elsewhere.path().join("moved")).unwrap();
    std::os::unix::fs::symlink(elsewhere.path().join("moved"), out.join("survey_scores")).unwrap();
    let before = names(&elsewhere.path().join("moved"));
    let o = run(&["run", j, "--as-of", "2026-06-30"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("not a folder of this output directory"),
        "{}",
        stderr(&o)
    );
    assert_eq!(names(&elsewhere.path().join("moved")), before);
}

#[test]
fn an_interrupted_publish_is_rolled_forward_by_the_next_run_even_one_that_fails() {
    let (dir, job) = surveys_setup();
    let j = job.to_str().unwrap();
    let out = dir.path().join("out");
    assert_eq!(
        run(&["run", j, "--as-of", "2026-05-31"]).status.code(),
        Some(0)
    );
    let o = bin()
        .args(["run", j, "--as-of", "2026-06-30"])
        .env("CXMETRICS_TEST_ABORT_DURING_PUBLISH", "1")
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0));
    assert!(!out.join("_SUCCESS").exists(), "the publish was cut short");
    // The next run fails on its input (exit 3), but first finishes the interrupted publish.
    let data = dir.path().join("data/surveys.parquet");
    let saved = fs::read(&data).unwrap();
    fs::remove_file(&data).unwrap();
    let o = run(&["run", j, "--as-of", "2026-06-30"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(out.join("_SUCCESS").is_file());
    let manifest: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["as_of"], "2026-06-30");
    fs::write(&data, saved).unwrap();
    let clean = tempfile::tempdir().unwrap();
    let c = clean.path().join("o");
    let o = run(&[
        "run",
        j,
        "--as-of",
        "2026-06-30",
        "--output-dir",
        c.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(tables(&snapshot(&out)), tables(&snapshot(&c)));
}

#[test]
fn a_commit_list_cut_short_is_not_a_commit() {
    let (dir, job) = surveys_setup();
    let j = job.to_str().unwrap();
    let out = dir.path().join("out");
    assert_eq!(
        run(&["run", j, "--as-of", "2026-05-31"]).status.code(),
        Some(0)
    );
    let before = snapshot(&out);
    let o = bin()
        .args(["run", j, "--as-of", "2026-06-30"])
        .env("CXMETRICS_TEST_ABORT_AFTER_COMMIT", "1")
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0));
    let staging = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".staging-")
        })
        .expect("the staging folder of the killed run");
    let commit = staging.join("_COMMIT");
    let text = fs::read_to_string(&commit).unwrap();
    fs::write(&commit, &text[..text.len() / 2]).unwrap();
    // A run that only validates its inputs' problems still recovers: use one that fails.
    let data = dir.path().join("data/surveys.parquet");
    let saved = fs::read(&data).unwrap();
    fs::remove_file(&data).unwrap();
    let o = run(&["run", j, "--as-of", "2026-06-30"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    fs::write(&data, saved).unwrap();
    assert!(!staging.exists(), "the incomplete staging is removed");
    assert_eq!(snapshot(&out), before, "the previous result is untouched");
}

// ---- Inputs --------------------------------------------------------------------------------

/// 400 orders, one row group.
fn four_hundred_orders() -> DataFrame {
    let rows: Vec<(String, String, i64, f64)> = (0..400)
        .map(|i| {
            (
                format!("O{i:04}"),
                format!("C{:03}", i % 97),
                day_us("2026-01-01") + i as i64 * 3_600_000_000 * 7,
                (i % 50) as f64 + 0.25,
            )
        })
        .collect();
    orders(&rows)
}

#[test]
fn a_corrupt_file_that_makes_the_reader_abort_is_an_input_error_for_run_and_validate() {
    // tests/data/corrupt: a 440-row orders file with two bits changed, on which polars' reader
    // asks for about 2 EiB and aborts the process (see the README there).
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fs::create_dir_all(&data).unwrap();
    fs::copy(
        root().join("tests/data/corrupt/orders-abort.parquet"),
        data.join("orders.parquet"),
    )
    .unwrap();
    let job = orders_job(dir.path(), "  ltv_segments: { model: none }\n", "");
    for cmd in ["run", "validate"] {
        let o = run(&[cmd, job.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(3), "{cmd}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(e.contains("orders.parquet"), "{cmd}: {e}");
        assert!(
            e.contains("the reader failed hard on this file"),
            "{cmd}: {e}"
        );
        if cmd == "run" {
            // The row count, from the footer the child read before the rows.
            assert!(e.contains("440 rows"), "{e}");
        }
    }
}

#[test]
fn byte_flipped_files_give_exit_0_or_3_and_never_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data/orders.parquet");
    write(&path, &mut four_hundred_orders());
    let clean = fs::read(&path).unwrap();
    let job = orders_job(dir.path(), "  ltv_segments: { model: none }\n", "");
    let mut seed: u64 = 0x5eed;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    let mut corrupt = 0;
    for _ in 0..60 {
        let mut bytes = clean.clone();
        for _ in 0..2 {
            let at = next() % bytes.len();
            bytes[at] ^= 1 << (next() % 8);
        }
        fs::write(&path, &bytes).unwrap();
        let o = run(&["run", job.to_str().unwrap()]);
        let code = o.status.code();
        // A flip can also leave a readable file whose rows are all bad (exit 4).
        assert!(
            matches!(code, Some(0) | Some(3) | Some(4)),
            "exit {code:?}: {}",
            stderr(&o)
        );
        if code == Some(3) {
            corrupt += 1;
            assert!(stderr(&o).contains("orders.parquet"), "{}", stderr(&o));
        }
    }
    assert!(corrupt > 0);
}

#[test]
fn a_decimal_money_column_is_read_exactly() {
    // tests/data/decimal/orders.parquet: amount is Decimal(38,9) (written by DuckDB, see the
    // README there): i * 1.25 for order i = 0..9, customer C(i mod 5).
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fs::create_dir_all(&data).unwrap();
    fs::copy(
        root().join("tests/data/decimal/orders.parquet"),
        data.join("orders.parquet"),
    )
    .unwrap();
    let job = orders_job(dir.path(), "  ltv_segments: { model: none }\n", "");
    let o = run(&["validate", job.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "validate: {}", stderr(&o));
    let o = run(&["run", job.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "run: {}", stderr(&o));
    let ltv = read(&dir.path().join("out/customer_ltv.parquet"));
    // By hand: C0 0 + 6.25, C1 1.25 + 7.5, C2 2.5 + 8.75, C3 3.75 + 10, C4 5 + 11.25.
    for (customer, revenue) in [
        ("C0", 6.25),
        ("C1", 8.75),
        ("C2", 11.25),
        ("C3", 13.75),
        ("C4", 16.25),
    ] {
        assert_eq!(
            f64_of(&ltv, "revenue", "customer_id", customer),
            Some(revenue),
            "{customer}"
        );
    }
}

#[test]
fn stale_inputs_warn_or_fail_with_nothing_written() {
    let (dir, _) = surveys_setup();
    let job = job_file(
        dir.path(),
        "name: t\ntimezone: UTC\ninputs:\n  surveys: { path: data/surveys.parquet, freshness: { warn_after: 2d, error_after: 7d } }\n\
         pipelines:\n  survey_scores:\noutput:\n  dir: out\n",
    );
    let j = job.to_str().unwrap();
    // The latest response is 2026-06-02 10:00 UTC.
    let o = run(&["run", j, "--as-of", "2026-06-03", "--log-format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("\"level\":\"warn\""), "{}", stderr(&o));
    let m: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.path().join("out/manifest.json")).unwrap())
            .unwrap();
    let f = &m["inputs"]["surveys"]["freshness"];
    assert_eq!(f["status"], "ok");
    assert_eq!(f["latest_at"], "2026-06-02T10:00:00.000000Z");
    assert_eq!(f["age_s"], 38.0 * 3600.0);
    let o = run(&["run", j, "--as-of", "2026-06-05", "--log-format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let warn = stderr(&o)
        .lines()
        .find(|l| l.contains("\"level\":\"warn\""))
        .map(String::from)
        .unwrap_or_default();
    assert!(warn.contains("\"stage\":\"freshness\""), "{}", stderr(&o));
    assert!(warn.contains("3d 14h old"), "{warn}");
    let before = snapshot(&dir.path().join("out"));
    let o = run(&["run", j, "--as-of", "2027-12-31"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("surveys: latest row at 2026-06-02T10:00:00.000000Z is 577d 14h old")
            && stderr(&o).contains("error_after 7d"),
        "{}",
        stderr(&o)
    );
    assert_eq!(snapshot(&dir.path().join("out")), before);
}

#[test]
fn relative_paths_start_at_the_job_files_real_folder() {
    // real/jobs/job.yaml says `../data`; reached through `link -> real/jobs`, `..` is still
    // `real`, as `cd link; ls ..` shows, not the folder that holds `link`.
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().canonicalize().unwrap();
    write(
        &d.join("real/data/surveys.parquet"),
        &mut surveys(&basic_rows()),
    );
    let mut other = basic_rows();
    other.truncate(2);
    write(&d.join("data/surveys.parquet"), &mut surveys(&other));
    fs::create_dir_all(d.join("real/jobs")).unwrap();
    fs::write(
        d.join("real/jobs/job.yaml"),
        "name: t\nas_of: 2026-06-30\ninputs:\n  surveys: { path: ../data/surveys.parquet }\n\
         pipelines:\n  survey_scores:\noutput:\n  dir: ../out\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(d.join("real/jobs"), d.join("link")).unwrap();
    let o = run(&["run", d.join("link/job.yaml").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let m: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(d.join("real/out/manifest.json")).unwrap())
            .unwrap();
    assert_eq!(m["inputs"]["surveys"]["rows_read"], 6);
    assert!(!d.join("out").exists());
}

// ---- Smaller -------------------------------------------------------------------------------

#[test]
fn a_byte_order_mark_fifos_devices_control_characters_and_huge_by_lists() {
    let (dir, job) = surveys_setup();
    let text = fs::read_to_string(&job).unwrap();
    fs::write(&job, format!("\u{feff}{text}")).unwrap();
    let o = run(&["validate", job.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "BOM: {}", stderr(&o));

    let fifo = dir.path().join("data/fifo.parquet");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    for (path, what) in [
        (fifo.to_str().unwrap(), "is a FIFO"),
        ("/dev/zero", "is a character device"),
    ] {
        let j = job_file(
            dir.path(),
            &format!("name: t\ninputs:\n  surveys: {{ path: {path} }}\npipelines:\n  survey_scores:\noutput:\n  dir: out\n"),
        );
        let o = run(&["run", j.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(3), "{path}: {}", stderr(&o));
        assert!(stderr(&o).contains(what), "{path}: {}", stderr(&o));
    }

    let j = job_file(
        dir.path(),
        "name: \"bad\\e[2Jname\"\ninputs:\n  surveys: { path: data/surveys.parquet }\npipelines:\n  survey_scores:\n",
    );
    let o = run(&["validate", j.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!stderr(&o).contains('\u{1b}'), "{}", stderr(&o));
    assert!(stderr(&o).contains("control characters"), "{}", stderr(&o));

    let by: Vec<String> = (0..1_000_000).map(|i| format!("c{i}")).collect();
    let j = job_file(
        dir.path(),
        &format!(
            "name: t\ninputs:\n  surveys: {{ path: data/surveys.parquet }}\npipelines:\n  survey_scores: {{ by: [{}] }}\n",
            by.join(", ")
        ),
    );
    let o = run(&["validate", j.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("lists 1000000 columns; at most 64 are allowed"),
        "{}",
        &stderr(&o)[..stderr(&o).len().min(500)]
    );
}

#[test]
fn under_json_logs_every_line_and_the_fatal_error_are_json_with_a_level() {
    let (dir, job) = surveys_setup();
    let j = job.to_str().unwrap();
    let o = run(&["run", j, "--log-format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for line in stderr(&o).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["level"], "info", "{line}");
    }
    fs::remove_file(dir.path().join("data/surveys.parquet")).unwrap();
    let o = run(&["run", j, "--log-format", "json"]);
    assert_eq!(o.status.code(), Some(3));
    let lines: Vec<&str> = stderr_lines(&o);
    let last: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(last["level"], "error");
    assert_eq!(last["exit_code"], 3);
    assert!(last["message"]
        .as_str()
        .unwrap()
        .contains("surveys.parquet: file not found"));
}

fn stderr_lines(o: &std::process::Output) -> Vec<&str> {
    std::str::from_utf8(&o.stderr).unwrap().lines().collect()
}
