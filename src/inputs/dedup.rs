//! Duplicate row ids: the first valid occurrence in file order is kept.

use std::hash::BuildHasher;

use polars::prelude::*;

/// The valid rows whose key an earlier valid row already has, as a mask (`None` when there are
/// none). Sorting 64-bit hashes of the keys finds the few that may repeat, and only the rows
/// with those hashes are compared as strings, in file order: a set of every key string takes
/// several times longer, and ids rarely repeat.
pub(super) fn repeated_keys(
    keys: &StringChunked,
    valid: &BooleanChunked,
) -> PolarsResult<Option<BooleanChunked>> {
    let state = PlFixedStateQuality::default();
    let hashes: Vec<Option<u64>> = keys
        .iter()
        .zip(valid.iter())
        .map(|(k, ok)| match (k, ok) {
            (Some(k), Some(true)) => Some(state.hash_one(k)),
            _ => None,
        })
        .collect();
    let sorted = UInt64Chunked::from_vec("hash".into(), hashes.iter().flatten().copied().collect())
        .sort(false)
        .rechunk()
        .into_owned();
    let shared: PlHashSet<u64> = sorted
        .cont_slice()?
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    if shared.is_empty() {
        return Ok(None);
    }
    let mut seen: PlHashSet<&str> = PlHashSet::new();
    let mut repeated = vec![false; keys.len()];
    for ((row, key), hash) in keys.iter().enumerate().zip(&hashes) {
        if let (Some(key), Some(hash)) = (key, hash) {
            if shared.contains(hash) && !seen.insert(key) {
                repeated[row] = true;
            }
        }
    }
    Ok(repeated
        .contains(&true)
        .then(|| BooleanChunked::from_slice("__repeated".into(), &repeated)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_valid_rows_can_repeat_a_key() {
        let keys = StringChunked::new(
            "k".into(),
            [Some("a"), Some("b"), None, Some("a"), Some("a"), Some("b")],
        );
        let mask = |valid: &[Option<bool>]| {
            let valid = BooleanChunked::new("v".into(), valid);
            repeated_keys(&keys, &valid)
                .unwrap()
                .map(|m| m.iter().map(|b| b.unwrap()).collect::<Vec<_>>())
        };
        let t = Some(true);
        let f = Some(false);
        assert_eq!(
            mask(&[t, t, t, t, t, t]),
            Some(vec![false, false, false, true, true, true])
        );
        // An invalid first row does not count: the next "a" is the first valid one.
        assert_eq!(
            mask(&[f, t, t, t, t, None]),
            Some(vec![false, false, false, false, true, false])
        );
        assert_eq!(mask(&[f, t, t, t, f, f]), None);
        let empty = StringChunked::new("k".into(), Vec::<&str>::new());
        let no_rows = BooleanChunked::new("v".into(), Vec::<bool>::new());
        assert!(repeated_keys(&empty, &no_rows).unwrap().is_none());
    }
}
