//! Customer buckets: a customer's bucket is `xxh3_64(customer_id as UTF-8 bytes) mod B` (the
//! 64-bit XXH3 hash with seed 0, as in the `xxhash` reference implementation). Every row of a
//! customer, in every input, is in the same bucket, and the bucket of an id never depends on
//! anything but the id and B.

use polars::prelude::*;

/// The bucket of `id` among `buckets`.
pub fn bucket_of(id: &str, buckets: u64) -> u64 {
    xxhash_rust::xxh3::xxh3_64(id.as_bytes()) % buckets
}

/// The bucket of each `customer_id` of `df` (null ids in bucket 0), as UInt32.
pub fn buckets_of(ids: &StringChunked, buckets: u64) -> UInt32Chunked {
    ids.iter()
        .map(|id| Some(id.map_or(0, |id| bucket_of(id, buckets)) as u32))
        .collect()
}

/// The rows of `rows` (cleaned rows with `customer_id`) split by customer bucket:
/// (bucket, its rows in their order), for the buckets that have any.
pub fn split_by_bucket(mut rows: DataFrame, buckets: u32) -> PolarsResult<Vec<(u32, DataFrame)>> {
    let bucket = buckets_of(rows.column("customer_id")?.str()?, buckets as u64);
    rows.with_column(bucket.with_name("__bucket".into()).into_column())?;
    rows.partition_by(["__bucket"], true)?
        .into_iter()
        .map(|part| {
            let b = part.column("__bucket")?.u32()?.get(0).unwrap_or(0);
            Ok((b, part.drop("__bucket")?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_hash_is_the_reference_xxh3() {
        // XXH3_64bits of "", of "a" and of "C0001" mod 7, as the Python `xxhash` package (a
        // binding of the reference C implementation) computes them.
        assert_eq!(xxhash_rust::xxh3::xxh3_64(b""), 0x2d06800538d394c2);
        assert_eq!(xxhash_rust::xxh3::xxh3_64(b"a"), 0xe6c632b61e964e1f);
        assert_eq!(bucket_of("a", 1), 0);
        assert_eq!(bucket_of("C0001", 7), 4);
    }
}
