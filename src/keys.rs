//! Customer keys: after the inputs are loaded, every `customer_id` string is replaced by a dense
//! `UInt32` key, and output tables get their strings back just before they are written.
//!
//! Why: every pipeline joins and groups on `customer_id`, tens of millions of rows at a time.
//! Hashing and comparing integers instead of strings makes those steps several times faster,
//! and doing it once here keeps the pipelines unaware of it (they only ever compare ids with
//! each other, so they work the same on either type; their unit tests use strings).
//!
//! The keys are the ranks of the ids in sorted order, so sorting by key is sorting by id and
//! output order does not change.

use std::collections::BTreeMap;

use polars::prelude::*;

use crate::contracts::InputKind;

const KEY: &str = "customer_id";

/// The id dictionary of one run: row `k` holds the id whose key is `k`.
pub struct CustomerKeys {
    ids: DataFrame,
}

/// Replaces `customer_id` in `table` by its translation in `dict`, whose column `from` holds
/// the current values and `to` their replacements. Only the id column goes through the join;
/// the other columns stay as they are instead of being copied into a new frame.
fn replace_ids(table: &mut DataFrame, dict: LazyFrame, from: &str, to: &str) -> PolarsResult<()> {
    let mut args = JoinArgs::new(JoinType::Left);
    args.maintain_order = MaintainOrderJoin::Left;
    let translated = table
        .select([KEY])?
        .lazy()
        .join(dict, [col(KEY)], [col(from)], args)
        .select([col(to).alias(KEY)])
        .collect()?;
    table.replace(KEY, translated.column(KEY)?.clone())?;
    Ok(())
}

impl CustomerKeys {
    /// Replaces `customer_id` in every frame by its key.
    pub fn encode(frames: &mut BTreeMap<InputKind, DataFrame>) -> PolarsResult<CustomerKeys> {
        let ids: Vec<LazyFrame> = frames
            .values()
            .map(|df| {
                df.clone()
                    .lazy()
                    .select([col(KEY)])
                    .unique(None, UniqueKeepStrategy::Any)
            })
            .collect();
        let ids = if ids.is_empty() {
            DataFrame::empty_with_schema(&Schema::from_iter([Field::new(
                KEY.into(),
                DataType::String,
            )]))
        } else {
            concat(ids, UnionArgs::default())?
                .unique(None, UniqueKeepStrategy::Any)
                .sort([KEY], Default::default())
                .collect()?
        };
        polars_ensure!(
            ids.height() < u32::MAX as usize,
            ComputeError: "more than 2^32 - 1 distinct customer ids"
        );
        let ids = ids.with_row_index("__key".into(), None)?;
        let dict = ids.clone().lazy();
        for df in frames.values_mut() {
            replace_ids(df, dict.clone(), KEY, "__key")?;
        }
        Ok(CustomerKeys { ids })
    }

    /// Gives an output table its `customer_id` strings back (tables without keys pass through).
    pub fn decode(&self, mut table: DataFrame) -> PolarsResult<DataFrame> {
        match table.column(KEY) {
            Ok(c) if c.dtype() == &DataType::UInt32 => {}
            _ => return Ok(table),
        }
        let dict = self
            .ids
            .clone()
            .lazy()
            .select([col("__key"), col(KEY).alias("__id")]);
        replace_ids(&mut table, dict, "__key", "__id")?;
        Ok(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::strs;

    #[test]
    fn keys_follow_sorted_ids_and_round_trip() {
        let mut frames = BTreeMap::new();
        frames.insert(
            InputKind::Orders,
            df!("customer_id" => ["C3", "C1", "C3"], "amount" => [1.0, 2.0, 3.0]).unwrap(),
        );
        frames.insert(
            InputKind::Customers,
            df!("customer_id" => ["C2", "C1"]).unwrap(),
        );
        let keys = CustomerKeys::encode(&mut frames).unwrap();
        let orders = &frames[&InputKind::Orders];
        let k: Vec<Option<u32>> = orders.column(KEY).unwrap().u32().unwrap().iter().collect();
        assert_eq!(k, vec![Some(2), Some(0), Some(2)]);
        let names: Vec<&str> = orders
            .get_column_names()
            .iter()
            .map(|n| n.as_str())
            .collect();
        assert_eq!(names, vec!["customer_id", "amount"], "column order is kept");
        let back = keys.decode(orders.clone()).unwrap();
        assert_eq!(strs(&back, KEY), vec!["C3", "C1", "C3"]);
        let customers = keys.decode(frames[&InputKind::Customers].clone()).unwrap();
        assert_eq!(strs(&customers, KEY), vec!["C2", "C1"]);
    }
}
