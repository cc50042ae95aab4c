//! The driver's side of a Spark run: the same start (job, output directory locked and
//! recovered, inputs found), plan, gates, merge, finalize and publish as a local run; what it
//! learns from Spark arrives as the bytes of `ROWS` and `OUT` frames.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;

use polars::prelude::*;
use serde::Serialize;

use super::worker::{self, BatchStats};
use super::{
    from_parquet, intern, join_parts, kind_at, kind_index, merge_from, out, to_parquet, typed,
    what, ContextSpec,
};
use crate::contracts::InputKind;
use crate::engine::disk::DiskStore;
use crate::engine::partials::Partials;
use crate::engine::plan::Plan;
use crate::engine::remote::Upload;
use crate::engine::rounds::{self, Buckets, Finished, States, Store};
use crate::engine::start::{self, Run};
use crate::engine::work::WorkDir;
use crate::engine::{self, Partitioned, RunOptions, RunSummary};
use crate::error::{CxError, Result};
use crate::inputs::{contract_problems, read_schema, wanted_columns, Rejected};
use crate::log::Field;
use crate::partition::Report;
use crate::pipelines::{Facts, Pipeline};

/// One file of an input, as the Python side reads it with Spark.
#[derive(Debug, Serialize)]
pub struct FilePlan {
    pub path: String,
    /// The row number in the input of its first row (its rows are numbered from here).
    pub offset: u64,
    pub rows: u64,
    /// The file's columns the run reads.
    pub columns: Vec<String>,
}

/// One input, as the Python side reads it.
#[derive(Debug, Serialize)]
pub struct InputPlan {
    pub kind: String,
    pub index: i32,
    pub files: Vec<FilePlan>,
    /// A table name Spark reads instead of files (its columns come from `table_columns`).
    pub table: Option<String>,
    /// Whether its rows have an id whose repeats are dropped.
    pub keyed: bool,
}

/// An input's rows: how many, the latest own time (microseconds), how many without one. The
/// clean stage's valid rows of an input without ids; Spark's kept rows of an input with them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowFacts {
    pub rows: u64,
    pub latest_us: Option<i64>,
    pub null_times: u64,
}

/// What Spark settled about an input with ids: its kept rows' facts, and the rows dropped as
/// repeats of an earlier row's id (how many, the first one's row number and id).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettledFacts {
    pub kept: RowFacts,
    pub repeats: u64,
    pub first_repeat: Option<(i64, String)>,
}

/// A Spark run, from its start to its publish.
pub struct Driver {
    run: Option<Run>,
    /// Where an object-storage result is published first and how it is committed.
    upload: Option<Upload>,
    plan: Plan,
    work: Option<WorkDir>,
    store: DiskStore,
    partials: Partials,
    states: States,
    tables: Finished,
    /// Each input's report, filled in from the clean stage and the settled facts.
    reports: BTreeMap<InputKind, Report>,
    rejected: BTreeMap<InputKind, BTreeMap<String, Rejected>>,
    /// The inputs whose facts Spark settled over their kept rows (`set_facts`); the others
    /// (inputs without ids) keep every valid row, and their facts are the clean stage's.
    settled: BTreeSet<InputKind>,
    /// The clean stage's facts over the valid rows, by input.
    valid: BTreeMap<InputKind, RowFacts>,
    /// Kept frames whose parts are still arriving, by bucket and name.
    pending: BTreeMap<(usize, &'static str), Vec<(i32, DataFrame)>>,
    /// The frames the driver's own maps kept that Spark has not been sent (Spark keeps the
    /// frames its maps made itself).
    unsent: Vec<(usize, &'static str)>,
    /// The round running (`map_on_driver` starts it).
    round: usize,
    freshness: Option<BTreeMap<InputKind, crate::engine::gates::FreshnessFinding>>,
    /// The inputs to read, as planned when the run opened.
    inputs: Vec<InputPlan>,
    pub spec: ContextSpec,
    t: Instant,
}

impl Driver {
    /// Opens the run: the job, the output directory checked, locked and recovered, the inputs
    /// found and their footers checked against their contracts (every problem together).
    pub fn open(job_path: &Path, opts: &RunOptions) -> Result<Driver> {
        let job = crate::validate::load_job(job_path)?;
        // Object-storage output: published into a local folder, then committed, as locally.
        let upload = match engine::remote_output(&job, opts) {
            Some(uri) => Some(Upload::prepare(&job, &uri)?),
            None => None,
        };
        let local_opts = upload.as_ref().map(|u| u.local_options(opts));
        let run = start::open(job_path, local_opts.as_ref().unwrap_or(opts))?;
        let (plan, work) = engine::plan_work(&run)?;
        let inputs = input_plans(&run)?;
        let job_text = std::fs::read_to_string(job_path)
            .map_err(|e| CxError::internal(format!("reading {}", job_path.display()), e))?;
        let support_reads_surveys = run
            .selection
            .computed
            .iter()
            .any(|p| p.name() == "support_kpis")
            && run.sources.contains_key(&InputKind::Surveys);
        let spec = ContextSpec {
            job_text,
            job_path: job_path.to_path_buf(),
            as_of: run.as_of,
            only: run.opts.only.clone(),
            buckets: plan.buckets,
            csat_positive_from: support_reads_surveys.then_some(run.job.scales.csat.positive_from),
            customers_have_signup: false,
        };
        let store = DiskStore::new(work.kept_dir(), plan.buckets);
        let partials = Partials::new(
            plan.buckets,
            (plan.buckets > 1).then(|| work.partials_dir()),
        );
        Ok(Driver {
            run: Some(run),
            upload,
            plan,
            work: Some(work),
            store,
            partials,
            states: States::new(),
            tables: Finished::new(),
            reports: BTreeMap::new(),
            rejected: BTreeMap::new(),
            settled: BTreeSet::new(),
            valid: BTreeMap::new(),
            pending: BTreeMap::new(),
            unsent: Vec::new(),
            round: 0,
            freshness: None,
            inputs,
            spec,
            t: Instant::now(),
        })
    }

    fn run(&self) -> &Run {
        self.run
            .as_ref()
            .expect("the run is open until it is published")
    }

    /// The customer buckets.
    pub fn buckets(&self) -> u32 {
        self.plan.buckets
    }

    /// The inputs to read, with their files in order and each file's first row number.
    pub fn inputs(&self) -> &[InputPlan] {
        &self.inputs
    }

    /// The columns to read of the table of input `kind`, given its schema (a frame without
    /// rows, as Parquet bytes); its contract problems (exit 3) otherwise.
    pub fn table_columns(&self, kind: i32, schema: &[u8]) -> Result<Vec<String>> {
        let kind = kind_at(kind).map_err(|e| CxError::internal("a table input", e))?;
        let run = self.run();
        let source = &run.sources[&kind];
        let name = source.table.clone().unwrap_or_default();
        let df = from_parquet(schema)
            .map_err(|e| CxError::internal(format!("the schema of table {name}"), e))?;
        let schema = worker::file_schema(&df);
        let extra = run.extra.get(&kind).cloned().unwrap_or_default();
        let shown = Path::new(&name);
        let problems = contract_problems(source, shown, &schema, &extra);
        if !problems.is_empty() {
            return Err(CxError::Input { problems });
        }
        Ok(wanted_columns(source, &schema, &extra))
    }

    /// The context the workers build the run from (JSON).
    pub fn context(&self) -> String {
        serde_json::to_string(&self.spec).expect("the context serialises")
    }

    /// How many rounds the pipelines take.
    pub fn rounds(&self) -> usize {
        rounds::round_count(&self.pipelines())
    }

    fn pipelines(&self) -> Vec<&dyn Pipeline> {
        self.run()
            .selection
            .computed
            .iter()
            .map(|p| p.as_ref())
            .collect()
    }

    /// Whether Spark maps the buckets in `round` (some pipeline's map reads the inputs).
    pub fn spark_round(&self, round: usize) -> bool {
        !worker::spark_pipelines(&self.pipelines(), round).is_empty()
    }

    /// Adds the clean stage's tallies of input `kind` (`ROWS` frames with the `STATS` rows).
    pub fn add_stats(&mut self, kind: i32, rows: &[u8]) -> Result<()> {
        let kind = kind_at(kind).map_err(|e| CxError::internal("the clean stage", e))?;
        let internal = |e: String| CxError::internal("the clean stage's tallies", e);
        let df = from_parquet(rows).map_err(|e| internal(e.to_string()))?;
        let data = typed::<BinaryType>(&df, "__data").map_err(|e| internal(e.to_string()))?;
        let report = self.reports.entry(kind).or_default();
        let rejected = self.rejected.entry(kind).or_default();
        let valid = self.valid.entry(kind).or_default();
        for blob in data.iter().flatten() {
            let stats: BatchStats =
                serde_json::from_slice(blob).map_err(|e| internal(e.to_string()))?;
            report.rows_read += stats.rows_read;
            report.rows_after_as_of += stats.rows_after_as_of;
            valid.rows += stats.valid_rows;
            valid.latest_us = valid.latest_us.max(stats.latest_us);
            valid.null_times += stats.null_times;
            for (reason, n, first, example) in stats.rejected {
                Rejected::add(rejected, reason, n, first, example);
            }
        }
        Ok(())
    }

    /// What Spark settled about input `kind` over its kept rows.
    pub fn set_facts(&mut self, kind: i32, facts: SettledFacts) -> Result<()> {
        let kind = kind_at(kind).map_err(|e| CxError::internal("the input facts", e))?;
        self.settled.insert(kind);
        self.set_kept(kind, facts.kept);
        let SettledFacts {
            repeats,
            first_repeat,
            ..
        } = facts;
        if let (Some(key), Some((row, id))) = (kind.contract().key, first_repeat) {
            if repeats > 0 {
                Rejected::add(
                    self.rejected.entry(kind).or_default(),
                    format!("duplicate {key}"),
                    repeats,
                    row,
                    id,
                );
            }
        }
        Ok(())
    }

    fn set_kept(&mut self, kind: InputKind, kept: RowFacts) {
        let report = self.reports.entry(kind).or_default();
        report.rows_kept = kept.rows;
        report.latest_us = kept.latest_us;
        if kind == InputKind::Customers {
            report.null_signup_at = Some(kept.null_times);
            report.has_signup = kept.rows > kept.null_times;
            self.spec.customers_have_signup = report.has_signup;
        }
    }

    /// The quality and freshness gates over every input's report (exit 4, nothing written),
    /// after logging each input as a local run does.
    pub fn gates(&mut self) -> Result<()> {
        let unsettled: Vec<(InputKind, RowFacts)> = self
            .valid
            .iter()
            .filter(|(k, _)| !self.settled.contains(k))
            .map(|(k, v)| (*k, *v))
            .collect();
        for (kind, kept) in unsettled {
            self.set_kept(kind, kept);
        }
        let run = self.run.as_ref().expect("open");
        for (kind, report) in self.reports.iter_mut() {
            report.rejected = self
                .rejected
                .get(kind)
                .map(|r| {
                    r.iter()
                        .map(|(reason, r)| (reason.clone(), r.row_count, r.example_id.clone()))
                        .collect()
                })
                .unwrap_or_default();
            let r = report.input_report(&run.sources[kind]);
            let mut fields = vec![
                ("files", Field::Int(run.sources[kind].files.len() as u64)),
                ("rows_read", Field::Int(r.rows_read)),
                ("rows_after_as_of", Field::Int(r.rows_after_as_of)),
                ("rows_rejected", Field::Int(r.rows_rejected())),
                ("rows_used", Field::Int(report.rows_kept)),
                ("engine", Field::Text("spark".into())),
            ];
            if let Some(latest) = r.latest_us {
                fields.push(("latest_at", Field::Text(engine::rfc3339_us(latest))));
            }
            run.log
                .stage("input", kind.name(), self.t.elapsed(), &fields);
        }
        let reports = self.input_reports();
        self.freshness = Some(crate::engine::gates::check(run, &reports)?);
        Ok(())
    }

    fn input_reports(&self) -> BTreeMap<InputKind, crate::inputs::InputReport> {
        self.input_reports_of(self.run())
    }

    /// The maps of `round` that read no input (they read kept rows and their state), over
    /// every bucket here, in bucket order. Runs before Spark's maps of the round: a later
    /// pipeline may read what these keep.
    pub fn map_on_driver(&mut self, round: usize) -> Result<()> {
        self.round = round;
        let run = self.run.take().expect("open");
        let result = self.map_here(&run, round);
        self.run = Some(run);
        result
    }

    fn map_here(&mut self, run: &Run, round: usize) -> Result<()> {
        let pipelines: Vec<&dyn Pipeline> =
            run.selection.computed.iter().map(|p| p.as_ref()).collect();
        let active: Vec<&dyn Pipeline> = rounds::active_in(&pipelines, round)
            .into_iter()
            .filter(|p| !p.reads_inputs(round - p.first_round()))
            .collect();
        if active.is_empty() {
            return Ok(());
        }
        let spark = worker::spark_pipelines(&pipelines, round);
        // A driver map must not need what a Spark map of the same round keeps.
        if let (Some(first_spark), Some(last_here)) = (
            pipelines
                .iter()
                .position(|p| spark.iter().any(|s| s.name() == p.name())),
            pipelines
                .iter()
                .rposition(|p| active.iter().any(|a| a.name() == p.name())),
        ) {
            if last_here > first_spark {
                return Err(CxError::internal(
                    "planning a Spark round",
                    "a pipeline that reads only kept rows runs after one that reads inputs",
                ));
            }
        }
        let facts = Facts {
            customers_have_signup: self.spec.customers_have_signup,
            csat_by_ticket: None,
        };
        let none = NoInputs(self.plan.buckets as usize);
        for b in 0..self.plan.buckets as usize {
            let kept = self
                .store
                .kept(b)
                .map_err(|e| internal_compute(e.to_string()))?;
            let out = engine::guarded_compute(|| {
                rounds::map_bucket(
                    b,
                    &active,
                    &[],
                    &none,
                    &run.cal,
                    &facts,
                    &self.states,
                    kept,
                    round,
                )
            })
            .map_err(internal_compute)?;
            for (pipeline, part) in out.partials {
                self.partials
                    .add(pipeline, part.name, part.merge, b, part.frame)
                    .map_err(|e| internal_compute(e.to_string()))?;
            }
            for (name, df) in out.keep {
                self.store
                    .keep(b, name, df)
                    .map_err(|e| internal_compute(e.to_string()))?;
                self.unsent.push((b, name));
            }
        }
        Ok(())
    }

    /// The rows the driver's maps kept that Spark's maps of the running round read
    /// (`Pipeline::reads_kept`: those frames, those columns), as `KEPT` rows of `ROWS`
    /// (Parquet bytes). Spark keeps what its own maps kept.
    pub fn kept_rows(&mut self) -> Result<Vec<u8>> {
        let mut reads: BTreeMap<&'static str, BTreeSet<&'static str>> = BTreeMap::new();
        for p in worker::spark_pipelines(&self.pipelines(), self.round) {
            for (name, columns) in p.reads_kept(self.round - p.first_round()) {
                reads
                    .entry(*name)
                    .or_default()
                    .extend(columns.iter().copied());
            }
        }
        let mut rows = worker::RowsOut::new();
        let (send, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.unsent)
            .into_iter()
            .partition(|(_, n)| reads.contains_key(n));
        self.unsent = keep;
        for (b, n) in send {
            let mut kept = self
                .store
                .kept(b)
                .map_err(|e| internal_compute(e.to_string()))?;
            if let Some(df) = kept.remove(n) {
                // In the frame's own column order.
                let columns: Vec<PlSmallStr> = df
                    .get_column_names_owned()
                    .into_iter()
                    .filter(|c| reads[n].contains(c.as_str()))
                    .collect();
                let df = df
                    .select(columns)
                    .map_err(|e| internal_compute(e.to_string()))?;
                for (i, _, mut p) in worker::parts_of(&df) {
                    let blob =
                        to_parquet(&mut p, true).map_err(|e| internal_compute(e.to_string()))?;
                    rows.push(
                        b as i32,
                        what::KEPT,
                        -1,
                        i as i64,
                        Some(n.to_string()),
                        None,
                        None,
                        None,
                        Some(blob),
                    );
                }
            }
        }
        rows.finish().map_err(|e| internal_compute(e.to_string()))
    }

    /// Adds `OUT` rows of Spark's maps (Parquet bytes), which arrive in bucket order: partials
    /// to the round's merge, kept frames (once all their parts are here) to the store.
    pub fn add_output(&mut self, out: &[u8]) -> Result<()> {
        let bad = |e: String| internal_compute(format!("a map's output: {e}"));
        let df = from_parquet(out).map_err(|e| bad(e.to_string()))?;
        fn get<T: PolarsPhysicalType>(df: &DataFrame, name: &str) -> Result<ChunkedArray<T>> {
            typed::<T>(df, name).map_err(|e| internal_compute(format!("a map's output: {e}")))
        }
        let buckets = get::<Int32Type>(&df, "__bucket")?;
        let whats = get::<Int32Type>(&df, "__what")?;
        let pipelines = get::<StringType>(&df, "__pipeline")?;
        let names = get::<StringType>(&df, "__name")?;
        let merges = get::<StringType>(&df, "__merge")?;
        let parts = get::<Int32Type>(&df, "__part")?;
        let counts = get::<Int32Type>(&df, "__parts")?;
        let data = get::<BinaryType>(&df, "__data")?;
        for i in 0..df.height() {
            let b = buckets.get(i).unwrap_or(0) as usize;
            let name = intern(names.get(i).unwrap_or_default());
            let frame =
                from_parquet(data.get(i).unwrap_or_default()).map_err(|e| bad(e.to_string()))?;
            match whats.get(i) {
                Some(out::BY | out::ROWS) => {
                    let merge = merge_from(merges.get(i).unwrap_or_default()).map_err(bad)?;
                    let pipeline = intern(pipelines.get(i).unwrap_or_default());
                    self.partials
                        .add(pipeline, name, merge, b, frame)
                        .map_err(|e| bad(e.to_string()))?;
                }
                Some(out::KEPT) => {
                    let list = self.pending.entry((b, name)).or_default();
                    list.push((parts.get(i).unwrap_or(0), frame));
                    if list.len() as i32 == counts.get(i).unwrap_or(1) {
                        let list = self.pending.remove(&(b, name)).expect("there");
                        let all = join_parts(list)
                            .map_err(|e| bad(e.to_string()))?
                            .expect("at least the part just added");
                        self.store
                            .keep(b, name, all)
                            .map_err(|e| bad(e.to_string()))?;
                    }
                }
                other => return Err(bad(format!("unknown row kind {other:?}"))),
            }
        }
        Ok(())
    }

    /// Every active pipeline's finalize of `round`.
    pub fn finalize(&mut self, round: usize) -> Result<()> {
        if !self.pending.is_empty() {
            return Err(internal_compute(
                "some kept rows arrived without all their parts".into(),
            ));
        }
        let run = self.run.take().expect("open");
        let pipelines: Vec<&dyn Pipeline> =
            run.selection.computed.iter().map(|p| p.as_ref()).collect();
        let active = rounds::active_in(&pipelines, round);
        let result = engine::guarded_compute(|| {
            rounds::finalize_round(
                &active,
                round,
                &run.cal,
                &mut self.partials,
                &mut self.states,
                &mut self.tables,
            )
        })
        .map_err(internal_compute);
        run.log.stage(
            "round",
            &round.to_string(),
            self.t.elapsed(),
            &[("engine", Field::Text("spark".into()))],
        );
        self.run = Some(run);
        result
    }

    /// Publishes the tables with the local engine's writer, manifest and `_SUCCESS`.
    pub fn publish(mut self) -> Result<RunSummary> {
        let run = self.run.take().expect("open");
        let work = self.work.take().expect("open");
        let pipelines: Vec<&dyn Pipeline> =
            run.selection.computed.iter().map(|p| p.as_ref()).collect();
        let computed = rounds::in_order(&pipelines, std::mem::take(&mut self.tables));
        drop(pipelines);
        let tables = engine::written_tables(&run, computed, &self.store, self.t)?;
        let reports = self.input_reports_of(&run);
        let freshness = self.freshness.take().ok_or_else(|| {
            CxError::internal("publishing a Spark run", "the gates were not checked")
        })?;
        let inputs = Partitioned {
            reports,
            dirs: BTreeMap::new(),
        };
        let summary = crate::engine::publish::publish(
            run,
            &self.plan,
            work,
            &inputs,
            &freshness,
            tables,
            &self.store,
        )?;
        match self.upload.take() {
            Some(upload) => upload.commit(summary),
            None => Ok(summary),
        }
    }

    fn input_reports_of(&self, run: &Run) -> BTreeMap<InputKind, crate::inputs::InputReport> {
        self.reports
            .iter()
            .map(|(k, r)| (*k, r.input_report(&run.sources[k])))
            .collect()
    }
}

fn internal_compute(e: String) -> CxError {
    CxError::internal("computing the pipelines", e)
}

/// Every input's plan: its files in order, each with its first row number and the columns the
/// run reads, from the footers, each read once here; every file's contract problems together
/// (exit 3), before Spark starts.
fn input_plans(run: &Run) -> Result<Vec<InputPlan>> {
    let mut problems = Vec::new();
    let mut out = Vec::new();
    for (kind, source) in &run.sources {
        let extra = run.extra.get(kind).cloned().unwrap_or_default();
        let mut offset = 0u64;
        let mut files = Vec::new();
        // A table's files are Spark's to list (`Driver::table_columns`).
        for path in &source.files {
            match read_schema(path) {
                Ok(schema) => {
                    problems.extend(contract_problems(source, path, &schema, &extra));
                    files.push(FilePlan {
                        path: path.display().to_string(),
                        offset,
                        rows: schema.rows as u64,
                        columns: wanted_columns(source, &schema, &extra),
                    });
                    offset += schema.rows as u64;
                }
                Err(e) => problems.push(format!("{kind}: {e}")),
            }
        }
        out.push(InputPlan {
            kind: kind.name().to_string(),
            index: kind_index(*kind),
            files,
            table: source.table.clone(),
            keyed: kind.contract().key.is_some(),
        });
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(CxError::Input { problems })
    }
}

/// Buckets without inputs: the driver's maps read only kept rows.
struct NoInputs(usize);

impl Buckets for NoInputs {
    fn count(&self) -> usize {
        self.0
    }

    fn load(
        &self,
        _bucket: usize,
        _kinds: &[InputKind],
    ) -> PolarsResult<BTreeMap<InputKind, DataFrame>> {
        Ok(BTreeMap::new())
    }
}
