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
use crate::parallel::split_rows;

const KEY: &str = "customer_id";

/// The id dictionary of one bucket: row `k` holds the id whose key is `k`.
pub struct CustomerKeys {
    ids: DataFrame,
}

/// The distinct ids in `frames`, sorted: row k holds the id whose key is k.
fn sorted_unique_ids(frames: Vec<LazyFrame>) -> PolarsResult<DataFrame> {
    let ids = if frames.is_empty() {
        DataFrame::empty_with_schema(&Schema::from_iter([Field::new(
            KEY.into(),
            DataType::String,
        )]))
    } else {
        concat(
            frames
                .into_iter()
                .map(|f| f.select([col(KEY)]))
                .collect::<Vec<_>>(),
            UnionArgs::default(),
        )?
        .unique(None, UniqueKeepStrategy::Any)
        .sort([KEY], Default::default())
        .collect()?
    };
    polars_ensure!(
        ids.height() < u32::MAX as usize,
        ComputeError: "more than 2^32 - 1 distinct customer ids"
    );
    Ok(ids)
}

/// The keys of the ids in `ids` (from `sorted_unique_ids`), hashed once for every frame they
/// translate. Tens of millions of rows are translated per run, so the map is probed on two
/// threads; a join would also hash the ids and then gather the keys in row order.
struct KeyMap<'a>(PlHashMap<&'a str, u32>);

impl<'a> KeyMap<'a> {
    fn new(ids: &'a DataFrame) -> PolarsResult<KeyMap<'a>> {
        let names = ids.column(KEY)?.str()?;
        let mut map = PlHashMap::with_capacity(names.len());
        for (key, id) in names.iter().enumerate() {
            if let Some(id) = id {
                map.insert(id, key as u32);
            }
        }
        Ok(KeyMap(map))
    }

    /// `table`'s `customer_id` column as keys (null where an id is not in the map).
    fn encode(&self, table: &DataFrame) -> PolarsResult<Column> {
        let values = table.column(KEY)?.str()?;
        let parts = split_rows(values.len(), |rows| {
            values
                .slice(rows.start as i64, rows.len())
                .iter()
                .map(|v| v.and_then(|v| self.0.get(v).copied()))
                .collect::<UInt32Chunked>()
        });
        let mut keys = UInt32Chunked::full_null(KEY.into(), 0);
        for part in parts {
            keys.append(&part)?;
        }
        Ok(keys.with_name(KEY.into()).into_column())
    }
}

impl CustomerKeys {
    /// The dictionary of the (non-null) ids in `ids`, the customers' `customer_id` column.
    fn of_customers(ids: &Column) -> PolarsResult<CustomerKeys> {
        let ids = DataFrame::new_infer_height(vec![ids.clone().with_name(KEY.into())])?
            .lazy()
            .drop_nulls(None);
        Ok(CustomerKeys {
            ids: sorted_unique_ids(vec![ids])?,
        })
    }

    /// `table` (string `customer_id`) with its ids as this dictionary's keys: for rows kept
    /// by an earlier map of the same bucket, whose customers are in the dictionary.
    pub fn encode_frame(&self, mut table: DataFrame) -> PolarsResult<DataFrame> {
        if table.column(KEY)?.dtype() == &DataType::UInt32 {
            return Ok(table);
        }
        let keys = KeyMap::new(&self.ids)?.encode(&table)?;
        table.replace(KEY, keys)?;
        Ok(table)
    }

    /// Replaces `customer_id` in every frame (that has one) by its key, with a dictionary of
    /// every id in the frames.
    pub fn encode(frames: &mut BTreeMap<InputKind, DataFrame>) -> PolarsResult<CustomerKeys> {
        let has_ids = |df: &DataFrame| df.column(KEY).is_ok();
        // Usually every id is a customer's: the customers' ids are then the whole dictionary,
        // and the unique ids of millions of event rows need not be found first.
        if let Some(c) = frames.get(&InputKind::Customers) {
            let keys = CustomerKeys::of_customers(c.column(KEY)?)?;
            let map = KeyMap::new(&keys.ids)?;
            let mut translated = Vec::with_capacity(frames.len());
            for (kind, df) in frames.iter().filter(|(_, df)| has_ids(df)) {
                let k = map.encode(df)?;
                if k.null_count() != df.column(KEY)?.null_count() {
                    break;
                }
                translated.push((*kind, k));
            }
            if translated.len() == frames.values().filter(|df| has_ids(df)).count() {
                drop(map);
                for (kind, k) in translated {
                    if let Some(df) = frames.get_mut(&kind) {
                        df.replace(KEY, k)?;
                    }
                }
                return Ok(keys);
            }
        }
        let ids = sorted_unique_ids(
            frames
                .values()
                .filter(|df| has_ids(df))
                .map(|df| {
                    df.clone()
                        .lazy()
                        .select([col(KEY)])
                        .unique(None, UniqueKeepStrategy::Any)
                })
                .collect(),
        )?;
        {
            let map = KeyMap::new(&ids)?;
            for df in frames.values_mut().filter(|df| has_ids(df)) {
                let keys = map.encode(df)?;
                df.replace(KEY, keys)?;
            }
        }
        Ok(CustomerKeys { ids })
    }

    /// Gives an output table its `customer_id` strings back (tables without keys pass through).
    /// Key k is row k of the dictionary, so this is a gather, not a join.
    pub fn decode(&self, mut table: DataFrame) -> PolarsResult<DataFrame> {
        let ids = match table.column(KEY) {
            Ok(c) if c.dtype() == &DataType::UInt32 => self.ids.column(KEY)?.take(c.u32()?)?,
            _ => return Ok(table),
        };
        table.replace(KEY, ids)?;
        Ok(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{strs, u32s};

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
        let k = u32s(orders, KEY);
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

    #[test]
    fn an_id_that_is_not_a_customers_puts_every_inputs_ids_in_the_dictionary() {
        let mut frames = BTreeMap::new();
        frames.insert(
            InputKind::Customers,
            df!("customer_id" => ["C2", "C1"]).unwrap(),
        );
        frames.insert(
            InputKind::Orders,
            df!("customer_id" => ["C0", "C2"]).unwrap(),
        );
        frames.insert(InputKind::Events, df!("x" => [1, 2]).unwrap());
        let keys = CustomerKeys::encode(&mut frames).unwrap();
        let k = |kind: InputKind| u32s(&frames[&kind], KEY);
        // Every id is in the dictionary: C0 = 0, C1 = 1, C2 = 2.
        assert_eq!(k(InputKind::Orders), [Some(0), Some(2)]);
        assert_eq!(k(InputKind::Customers), [Some(2), Some(1)]);
        let back = keys.decode(frames[&InputKind::Orders].clone()).unwrap();
        assert_eq!(strs(&back, KEY), ["C0", "C2"]);
        let again = keys
            .encode_frame(df!("customer_id" => ["C1", "C0"]).unwrap())
            .unwrap();
        assert_eq!(u32s(&again, KEY), [Some(1), Some(0)]);
    }

    #[test]
    fn customers_alone_make_the_dictionary_when_they_hold_every_id() {
        let mut frames = BTreeMap::new();
        frames.insert(
            InputKind::Events,
            df!("customer_id" => [Some("C3"), None, Some("C1")]).unwrap(),
        );
        frames.insert(
            InputKind::Customers,
            df!("customer_id" => ["C3", "C2", "C1"]).unwrap(),
        );
        let keys = CustomerKeys::encode(&mut frames).unwrap();
        let k = u32s(&frames[&InputKind::Events], KEY);
        assert_eq!(k, vec![Some(2), None, Some(0)]);
        // A null key (a null id) decodes to a null id.
        let events = keys.decode(frames[&InputKind::Events].clone()).unwrap();
        let ids: Vec<Option<&str>> = events.column(KEY).unwrap().str().unwrap().iter().collect();
        assert_eq!(ids, vec![Some("C3"), None, Some("C1")]);
        let back = keys.decode(frames[&InputKind::Customers].clone()).unwrap();
        assert_eq!(strs(&back, KEY), vec!["C3", "C2", "C1"]);
    }
}
