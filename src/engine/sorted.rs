//! Tables of one row per customer, kept bucket by bucket and put together in customer_id
//! order.

use polars::prelude::*;

/// The runs (each a bucket's rows) as one frame sorted by `customer_id`. Every customer is in
/// exactly one run, so the order does not depend on how customers were split into buckets.
pub fn concat_sorted(runs: Vec<DataFrame>) -> PolarsResult<DataFrame> {
    let mut runs = runs.into_iter();
    let Some(mut all) = runs.next() else {
        return Err(polars_err!(ComputeError: "no bucket kept any rows"));
    };
    for df in runs {
        all.vstack_mut_owned(df)?;
    }
    let mut sorted = all
        .lazy()
        .sort(
            ["customer_id"],
            SortMultipleOptions::default().with_maintain_order(true),
        )
        .collect()?;
    sorted.rechunk_mut_par();
    Ok(sorted)
}

/// Rows read from a run file at a time (and the row-group size the runs are written with, so
/// that a read decodes one row group).
pub fn run_read_rows(buckets: u32) -> usize {
    ((1usize << 22) / buckets.max(1) as usize).clamp(4096, 65536)
}

/// Rows per batch of the merged output (and so per row group of the table written from it);
/// fixed, so that the table's bytes do not depend on the number of buckets.
pub const MERGED_BATCH_ROWS: usize = 262_144;

/// The rows of the run files, from their footers.
pub fn rows_of(files: &[std::path::PathBuf]) -> PolarsResult<u64> {
    let mut rows = 0;
    for f in files {
        rows += ParquetReader::new(open(f)?).num_rows()? as u64;
    }
    Ok(rows)
}

/// One run file, read `rows` at a time.
struct Run {
    path: std::path::PathBuf,
    total: usize,
    /// Rows read from the file so far.
    read: usize,
    buf: DataFrame,
    ids: StringChunked,
    /// The next row of `buf` to merge, and the first not yet taken into the batch.
    pos: usize,
    taken: usize,
}

impl Run {
    fn open(path: std::path::PathBuf) -> PolarsResult<Run> {
        let total = ParquetReader::new(open(&path)?).num_rows()?;
        let mut run = Run {
            path,
            total,
            read: 0,
            buf: DataFrame::empty(),
            ids: StringChunked::default(),
            pos: 0,
            taken: 0,
        };
        run.refill(1)?;
        Ok(run)
    }

    /// Replaces the buffer with the file's next `rows` rows (none at the end).
    fn refill(&mut self, rows: usize) -> PolarsResult<()> {
        let n = rows.min(self.total - self.read);
        self.buf = ParquetReader::new(open(&self.path)?)
            .with_slice(Some((self.read, n)))
            .finish()?;
        self.buf.rechunk_mut();
        self.ids = self.buf.column("customer_id")?.str()?.clone();
        self.read += self.buf.height();
        self.pos = 0;
        self.taken = 0;
        Ok(())
    }

    fn head(&self) -> Option<&str> {
        (self.pos < self.buf.height()).then(|| self.ids.get(self.pos).unwrap_or(""))
    }
}

fn open(path: &std::path::Path) -> PolarsResult<std::fs::File> {
    std::fs::File::open(path)
        .map_err(|e| polars_err!(ComputeError: "opening {}: {}", path.display(), e))
}

/// The rows of the run files (each sorted by `customer_id`, every customer in one run) in
/// `customer_id` order, in batches of a fixed number of rows: a k-way merge that holds one buffer of
/// `read_rows` rows per run and one output batch, whatever the number of customers.
pub struct MergedRuns {
    runs: Vec<Run>,
    heap: std::collections::BinaryHeap<std::cmp::Reverse<(String, usize)>>,
    read_rows: usize,
    batch_rows: usize,
    /// The schema of the rows, for a table without any.
    empty: DataFrame,
    started: bool,
}

impl MergedRuns {
    /// Merges `files`, reading `read_rows` rows of a run at a time, in batches of `batch_rows`.
    pub fn new(
        files: Vec<std::path::PathBuf>,
        read_rows: usize,
        batch_rows: usize,
    ) -> PolarsResult<MergedRuns> {
        let mut runs = Vec::with_capacity(files.len());
        let mut empty = None;
        for f in files {
            let mut run = Run::open(f)?;
            if empty.is_none() {
                empty = Some(run.buf.clear());
            }
            if run.buf.height() > 0 {
                // The first buffer was one row, to learn the schema cheaply.
                run.read = 0;
                run.refill(read_rows)?;
            }
            runs.push(run);
        }
        let Some(empty) = empty else {
            return Err(polars_err!(ComputeError: "no bucket kept any rows"));
        };
        let heap = runs
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.head().map(|id| std::cmp::Reverse((id.to_string(), i))))
            .collect();
        Ok(MergedRuns {
            runs,
            heap,
            read_rows,
            batch_rows,
            empty,
            started: false,
        })
    }

    fn next_batch(&mut self) -> PolarsResult<Option<DataFrame>> {
        if self.heap.is_empty() {
            // A table without rows is still one (empty) batch with its schema.
            let first = !self.started;
            self.started = true;
            return Ok(first.then(|| self.empty.clone()));
        }
        self.started = true;
        let n = self.runs.len();
        let mut parts: Vec<Vec<DataFrame>> = vec![Vec::new(); n];
        let mut source: Vec<u32> = Vec::with_capacity(self.batch_rows);
        while source.len() < self.batch_rows {
            let Some(std::cmp::Reverse((_, r))) = self.heap.pop() else {
                break;
            };
            source.push(r as u32);
            let run = &mut self.runs[r];
            run.pos += 1;
            if run.pos == run.buf.height() {
                parts[r].push(run.buf.slice(run.taken as i64, run.pos - run.taken));
                run.refill(self.read_rows)?;
            }
            if let Some(id) = run.head() {
                self.heap.push(std::cmp::Reverse((id.to_string(), r)));
            }
        }
        // Each run's rows of this batch, stacked run after run, then put in merge order.
        let mut offsets = vec![0 as IdxSize; n];
        let mut stacked: Option<DataFrame> = None;
        let mut height = 0 as IdxSize;
        for (r, run) in self.runs.iter_mut().enumerate() {
            if run.pos > run.taken {
                parts[r].push(run.buf.slice(run.taken as i64, run.pos - run.taken));
                run.taken = run.pos;
            }
            offsets[r] = height;
            for part in parts[r].drain(..) {
                height += part.height() as IdxSize;
                match &mut stacked {
                    None => stacked = Some(part),
                    Some(all) => {
                        all.vstack_mut_owned(part)?;
                    }
                }
            }
        }
        let order: Vec<IdxSize> = source
            .iter()
            .map(|&r| {
                let i = offsets[r as usize];
                offsets[r as usize] += 1;
                i
            })
            .collect();
        let mut batch = stacked
            .expect("rows in a batch")
            .take(&IdxCa::from_vec("i".into(), order))?;
        batch.rechunk_mut();
        Ok(Some(batch))
    }
}

impl Iterator for MergedRuns {
    type Item = PolarsResult<DataFrame>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_batch().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{i64s, strs};

    #[test]
    fn merged_runs_are_the_sorted_rows_in_fixed_batches() {
        let dir = tempfile::tempdir().unwrap();
        // 700 customers over three runs of unequal size, each sorted by customer_id.
        let mut files = Vec::new();
        let mut all = Vec::new();
        for run in 0..3u32 {
            let ids: Vec<String> = (0..700u32)
                .filter(|i| i % 7 % 3 == run)
                .map(|i| format!("C{i:05}"))
                .collect();
            let v: Vec<i64> = (0..ids.len() as i64).collect();
            all.extend(ids.iter().cloned().zip(v.iter().copied()));
            let mut df = df!("customer_id" => &ids, "v" => &v).unwrap();
            let path = dir.path().join(format!("{run}.parquet"));
            ParquetWriter::new(std::fs::File::create(&path).unwrap())
                .with_row_group_size(Some(16))
                .finish(&mut df)
                .unwrap();
            files.push(path);
        }
        all.sort();
        let batches: Vec<DataFrame> = MergedRuns::new(files, 16, 100)
            .unwrap()
            .collect::<PolarsResult<_>>()
            .unwrap();
        let heights: Vec<usize> = batches.iter().map(|b| b.height()).collect();
        assert_eq!(heights, [100; 7]);
        let mut batches = batches.into_iter();
        let mut got = batches.next().unwrap();
        for b in batches {
            got.vstack_mut_owned(b).unwrap();
        }
        let want: Vec<String> = all.iter().map(|(i, _)| i.clone()).collect();
        assert_eq!(strs(&got, "customer_id"), want);
        assert_eq!(
            i64s(&got, "v"),
            all.iter().map(|(_, v)| *v).collect::<Vec<_>>()
        );
    }
}
