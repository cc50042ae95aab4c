//! The partials of a round, merged as the buckets arrive.
//!
//! - `Merge::By` partials are folded as they come (every `FOLD` buckets the frames so far are
//!   summed into one), so memory holds about one frame per distinct group, whatever B is. The
//!   sums are integers, so folding in any order gives the same result.
//! - `Merge::Rows` partials (every value of a group, for exact quantiles) are split by a hash of
//!   their group keys into `chunks` chunks, so that the finalize can read one chunk at a time:
//!   every row of a group is in one chunk. With a spill folder the chunks go to files there
//!   (`<spill>/<pipeline>/<name>/<chunk>/<bucket>.parquet`), else they stay in memory.
//!
//! The chunk a group lands in changes only which rows are read together, never a result.

use std::collections::BTreeMap;
use std::path::PathBuf;

use polars::prelude::*;

use crate::pipelines::{Merge, MergedPartial};

/// Frames of a `By` partial held before they are folded into one.
const FOLD: usize = 8;

enum Entry {
    By {
        merge: Merge,
        /// The column order of the partial (a fold keeps it).
        columns: Vec<PlSmallStr>,
        frames: Vec<DataFrame>,
    },
    Rows {
        /// The partial's schema, for a round in which no bucket had a row.
        empty: DataFrame,
        /// In memory: each chunk's frames.
        frames: Vec<Vec<DataFrame>>,
        /// Spilled: each chunk's files.
        files: Vec<Vec<PathBuf>>,
    },
}

/// Every partial of the running round, by pipeline and name (in the order first added).
pub struct Partials {
    chunks: u32,
    spill: Option<PathBuf>,
    entries: BTreeMap<&'static str, Vec<(&'static str, Entry)>>,
}

impl Partials {
    /// `chunks` (at least 1) chunks for `Rows` partials, spilled under `spill` if given.
    pub fn new(chunks: u32, spill: Option<PathBuf>) -> Self {
        Partials {
            chunks: chunks.max(1),
            spill,
            entries: BTreeMap::new(),
        }
    }

    /// Adds bucket `bucket`'s frame of a partial.
    pub fn add(
        &mut self,
        pipeline: &'static str,
        name: &'static str,
        merge: Merge,
        bucket: usize,
        frame: DataFrame,
    ) -> PolarsResult<()> {
        let chunks = self.chunks;
        let list = self.entries.entry(pipeline).or_default();
        let at = match list.iter().position(|(n, _)| *n == name) {
            Some(i) => i,
            None => {
                let entry = match merge {
                    Merge::By { .. } => Entry::By {
                        merge,
                        columns: frame.get_column_names_owned(),
                        frames: Vec::new(),
                    },
                    Merge::Rows { .. } => Entry::Rows {
                        empty: frame.clear(),
                        frames: vec![Vec::new(); chunks as usize],
                        files: vec![Vec::new(); chunks as usize],
                    },
                };
                list.push((name, entry));
                list.len() - 1
            }
        };
        match &mut list[at].1 {
            Entry::By {
                merge,
                columns,
                frames,
            } => {
                frames.push(frame);
                if frames.len() >= FOLD {
                    let all = std::mem::take(frames);
                    frames.push(fold(all, *merge, columns)?);
                }
            }
            Entry::Rows { frames, files, .. } => {
                let Merge::Rows { keys } = merge else {
                    unreachable!("a partial keeps its merge rule");
                };
                for (chunk, mut part) in split(&frame, keys, chunks)? {
                    match &self.spill {
                        Some(root) => {
                            let path = root
                                .join(pipeline)
                                .join(name)
                                .join(format!("{chunk:05}"))
                                .join(format!("{bucket:05}.parquet"));
                            super::work::write_file(&path, &mut part, None)?;
                            files[chunk as usize].push(path);
                        }
                        None => frames[chunk as usize].push(part),
                    }
                }
            }
        }
        Ok(())
    }

    /// Every partial of `pipeline`, merged (and forgotten here).
    pub fn take(
        &mut self,
        pipeline: &'static str,
    ) -> PolarsResult<BTreeMap<&'static str, MergedPartial>> {
        let mut out = BTreeMap::new();
        for (name, entry) in self.entries.remove(pipeline).unwrap_or_default() {
            let merged = match entry {
                Entry::By {
                    merge,
                    columns,
                    frames,
                } => MergedPartial::Frame(Box::new(fold(frames, merge, &columns)?.lazy())),
                Entry::Rows {
                    empty,
                    frames,
                    files,
                } => {
                    let mut chunks = Vec::new();
                    for (frames, mut files) in frames.into_iter().zip(files) {
                        let mut parts: Vec<LazyFrame> =
                            frames.into_iter().map(|df| df.lazy()).collect();
                        // In bucket order (the files are named by bucket), whatever order the
                        // buckets arrived in (the Spark engine's come as its tasks finish).
                        files.sort();
                        for f in files {
                            parts.push(LazyFrame::scan_parquet(
                                PlRefPath::try_from_path(&f)?,
                                Default::default(),
                            )?);
                        }
                        if !parts.is_empty() {
                            chunks.push(concat(parts, UnionArgs::default())?);
                        }
                    }
                    if chunks.is_empty() {
                        chunks.push(empty.lazy());
                    }
                    MergedPartial::Chunks(chunks)
                }
            };
            out.insert(name, merged);
        }
        Ok(out)
    }
}

/// The frames of a `By` partial merged into one, its columns in their original order (also
/// the Spark engine's merge, run in its workers: `crate::spark::worker::merge`).
pub fn fold(
    frames: Vec<DataFrame>,
    merge: Merge,
    columns: &[PlSmallStr],
) -> PolarsResult<DataFrame> {
    let Merge::By { keys, min, max } = merge else {
        unreachable!("only By partials fold");
    };
    let mut frames = frames.into_iter();
    let Some(mut all) = frames.next() else {
        return Err(polars_err!(ComputeError: "a partial without any bucket"));
    };
    for df in frames {
        all.vstack_mut_owned(df)?;
    }
    all.rechunk_mut_par();
    let aggs: Vec<Expr> = columns
        .iter()
        .filter(|n| !keys.contains(&n.as_str()))
        .map(|n| {
            let c = col(n.clone());
            if min.contains(&n.as_str()) {
                c.min()
            } else if max.contains(&n.as_str()) {
                c.max()
            } else {
                c.sum()
            }
        })
        .collect();
    let lf = all.lazy();
    let merged = if keys.is_empty() {
        lf.select(aggs)
    } else {
        lf.group_by(keys.iter().map(|k| col(*k)).collect::<Vec<_>>())
            .agg(aggs)
    };
    merged
        .select(columns.iter().map(|c| col(c.clone())).collect::<Vec<_>>())
        .collect()
}

/// The rows of `df` by chunk (`xxh3` of the group's key values, mod `chunks`), in row order
/// within each chunk; chunks without rows are left out.
fn split(df: &DataFrame, keys: &[&str], chunks: u32) -> PolarsResult<Vec<(u32, DataFrame)>> {
    if chunks == 1 || df.height() == 0 {
        return Ok(if df.height() == 0 {
            Vec::new()
        } else {
            vec![(0, df.clone())]
        });
    }
    let mut hashes = vec![0u64; df.height()];
    for key in keys {
        // Each key value as text: dates, numbers and strings alike, null as a marker byte.
        let text = df.column(key)?.cast(&DataType::String)?;
        for (h, v) in hashes.iter_mut().zip(text.str()?.iter()) {
            let bytes = v.map_or(&[0xff][..], str::as_bytes);
            *h = xxhash_rust::xxh3::xxh3_64_with_seed(bytes, *h);
        }
    }
    let chunk: Vec<u32> = hashes.iter().map(|h| (h % chunks as u64) as u32).collect();
    let mut counts = vec![0usize; chunks as usize];
    for &c in &chunk {
        counts[c as usize] += 1;
    }
    let mut starts = Vec::with_capacity(chunks as usize);
    let mut at = 0;
    for n in &counts {
        starts.push(at);
        at += n;
    }
    let mut order = vec![0 as IdxSize; df.height()];
    let mut next = starts.clone();
    for (row, &c) in chunk.iter().enumerate() {
        order[next[c as usize]] = row as IdxSize;
        next[c as usize] += 1;
    }
    let sorted = df.take(&IdxCa::from_vec("i".into(), order))?;
    Ok((0..chunks)
        .filter(|&c| counts[c as usize] > 0)
        .map(|c| {
            let i = c as usize;
            (c, sorted.slice(starts[i] as i64, counts[i]))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(keys: &[&str], values: &[i64]) -> DataFrame {
        df!("k" => keys, "v" => values).unwrap()
    }

    #[test]
    fn by_partials_fold_to_the_same_sums_in_any_grouping() {
        let merge = Merge::sum(&["k"]);
        let mut p = Partials::new(1, None);
        for b in 0..20 {
            p.add("x", "n", merge, b, frame(&["a", "b"], &[b as i64, 1]))
                .unwrap();
        }
        let MergedPartial::Frame(lf) = p.take("x").unwrap().remove("n").unwrap() else {
            panic!("a frame");
        };
        let df = lf.sort(["k"], Default::default()).collect().unwrap();
        // 0 + 1 + ... + 19 = 190; twenty ones.
        assert_eq!(df, frame(&["a", "b"], &[190, 20]));
    }

    #[test]
    fn every_row_of_a_group_is_in_one_chunk() {
        let merge = Merge::Rows { keys: &["k"] };
        let mut p = Partials::new(4, None);
        let keys: Vec<String> = (0..50).map(|i| format!("g{}", i % 10)).collect();
        let keys: Vec<&str> = keys.iter().map(|s| s.as_str()).collect();
        let values: Vec<i64> = (0..50).collect();
        p.add("x", "r", merge, 0, frame(&keys, &values)).unwrap();
        p.add("x", "r", merge, 1, frame(&keys, &values)).unwrap();
        let MergedPartial::Chunks(chunks) = p.take("x").unwrap().remove("r").unwrap() else {
            panic!("chunks");
        };
        assert!(chunks.len() > 1, "ten groups over four chunks");
        let mut seen = BTreeMap::new();
        let mut rows = 0;
        for (i, c) in chunks.into_iter().enumerate() {
            let df = c.collect().unwrap();
            rows += df.height();
            for k in df.column("k").unwrap().str().unwrap().iter().flatten() {
                assert_eq!(*seen.entry(k.to_string()).or_insert(i), i, "{k}");
            }
        }
        assert_eq!(rows, 100);
        assert_eq!(seen.len(), 10);
    }
}
