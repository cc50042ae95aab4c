//! Work split over two threads at a fixed point, so that results never depend on scheduling:
//! the CLV likelihoods and model columns, and the translation of customer ids to keys.

/// Sum of `part` over `rows`, split in two halves summed on two threads. The split is fixed,
/// so the total (and every fit built on it) is the same on every run. Small inputs stay on
/// one thread.
pub(crate) fn split_sum<T: Sync>(rows: &[T], part: impl Fn(&[T]) -> f64 + Sync) -> f64 {
    let (left, right) = rows.split_at(rows.len() / 2);
    if left.len() < 10_000 {
        return part(rows);
    }
    std::thread::scope(|s| {
        let h = s.spawn(|| part(right));
        let l = part(left);
        l + h.join().unwrap_or(f64::NAN)
    })
}

/// `part` over the rows `0..n`, in two halves on two threads (one thread for small `n`): the
/// results in row order.
pub fn split_rows<R: Send>(n: usize, part: impl Fn(std::ops::Range<usize>) -> R + Sync) -> Vec<R> {
    let mid = n / 2;
    if mid < 10_000 {
        return vec![part(0..n)];
    }
    std::thread::scope(|s| {
        let h = s.spawn(|| part(mid..n));
        let l = part(0..mid);
        vec![l, h.join().expect("a worker thread panicked")]
    })
}
