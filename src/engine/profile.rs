//! `--profile`: the slowest query-plan nodes of every collect of the maps and finalizes, from
//! polars' profiler. Pipelines collect through `collect`, which profiles when it is on.

use std::sync::Mutex;

use polars::prelude::*;

/// How many plan nodes of each collect are kept, slowest first.
const NODES: usize = 12;

/// One profiled plan node: (what, own µs, start µs, node).
pub type Line = (String, u64, u64, String);

/// The profiled nodes so far, or None when profiling is off.
static LINES: Mutex<Option<Vec<Line>>> = Mutex::new(None);

pub fn enable(on: bool) {
    *LINES.lock().expect("profile lock") = on.then(Vec::new);
}

/// The profiled nodes so far (and clears them).
pub fn take() -> Vec<Line> {
    LINES
        .lock()
        .expect("profile lock")
        .as_mut()
        .map(std::mem::take)
        .unwrap_or_default()
}

/// `lf` collected with `engine`; with profiling on, by polars' profiler (in memory, the only
/// engine it profiles), its slowest nodes recorded under `what`.
pub fn collect(lf: LazyFrame, what: &str, engine: Engine) -> PolarsResult<DataFrame> {
    let on = LINES.lock().expect("profile lock").is_some();
    if !on {
        return Ok(lf.collect_with_engine(engine)?.unwrap_single());
    }
    let (df, nodes) = lf.profile()?;
    let node = nodes.column("node")?.str()?;
    let start = nodes.column("start")?.cast(&DataType::UInt64)?;
    let end = nodes.column("end")?.cast(&DataType::UInt64)?;
    let mut rows: Vec<(u64, u64, String)> = node
        .iter()
        .zip(start.u64()?.iter().zip(end.u64()?.iter()))
        .map(|(n, (s, e))| {
            let (s, e) = (s.unwrap_or(0), e.unwrap_or(0));
            (e.saturating_sub(s), s, n.unwrap_or("").to_string())
        })
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    rows.truncate(NODES);
    if let Some(lines) = LINES.lock().expect("profile lock").as_mut() {
        lines.extend(
            rows.into_iter()
                .map(|(us, s, n)| (what.to_string(), us, s, n)),
        );
    }
    Ok(df)
}
