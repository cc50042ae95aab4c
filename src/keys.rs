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

/// The id dictionary of one run: row `k` holds the id whose key is `k`.
pub struct CustomerKeys {
    ids: DataFrame,
    /// Whether the dictionary is the customers' ids (else every input's).
    of_customers: bool,
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

/// Whether `df`'s ids are already keys.
fn is_encoded(df: &DataFrame) -> PolarsResult<bool> {
    Ok(df.column(KEY)?.dtype() == &DataType::UInt32)
}

/// Translates ids into the keys of a dictionary while an input is read (see `inputs::load`),
/// so that the ids of tens of millions of rows are never all held as strings at once.
pub struct KeyEncoder<'a>(KeyMap<'a>);

impl KeyEncoder<'_> {
    /// `table`'s `customer_id` column as keys, or None when some id is not in the dictionary.
    pub fn encode(&self, table: &DataFrame) -> PolarsResult<Option<Column>> {
        let keys = self.0.encode(table)?;
        Ok((keys.null_count() == table.column(KEY)?.null_count()).then_some(keys))
    }
}

impl CustomerKeys {
    /// The dictionary of the (non-null) ids in `ids`, the customers' `customer_id` column.
    pub fn of_customers(ids: &Column) -> PolarsResult<CustomerKeys> {
        let ids = DataFrame::new_infer_height(vec![ids.clone().with_name(KEY.into())])?
            .lazy()
            .drop_nulls(None);
        Ok(CustomerKeys {
            ids: sorted_unique_ids(vec![ids])?,
            of_customers: true,
        })
    }

    /// Where the ids come from, for the run log: "customers" or "all_inputs".
    pub fn source(&self) -> &'static str {
        if self.of_customers {
            "customers"
        } else {
            "all_inputs"
        }
    }

    /// An encoder into this dictionary's keys.
    pub fn encoder(&self) -> PolarsResult<KeyEncoder<'_>> {
        Ok(KeyEncoder(KeyMap::new(&self.ids)?))
    }

    /// Replaces `customer_id` in every frame by its key. `customers` is the dictionary of the
    /// customers' ids when the reader had it (`of_customers`); frames whose ids the reader
    /// already translated with it have UInt32 keys.
    pub fn encode(
        frames: &mut BTreeMap<InputKind, DataFrame>,
        customers: Option<CustomerKeys>,
    ) -> PolarsResult<CustomerKeys> {
        // Usually every id is a customer's: the customers' ids are then the whole dictionary,
        // and the unique ids of tens of millions of event rows need not be found first.
        let customers = match customers {
            Some(keys) => Some(keys),
            None => frames
                .get(&InputKind::Customers)
                .map(|c| CustomerKeys::of_customers(c.column(KEY)?))
                .transpose()?,
        };
        if let Some(keys) = customers {
            let mut translated = Vec::with_capacity(frames.len());
            let mut all_known = true;
            {
                let encoder = keys.encoder()?;
                for (kind, df) in frames.iter() {
                    if is_encoded(df)? {
                        continue;
                    }
                    match encoder.encode(df)? {
                        Some(k) => translated.push((*kind, k)),
                        None => {
                            all_known = false;
                            break;
                        }
                    }
                }
            }
            if all_known {
                for (kind, k) in translated {
                    if let Some(df) = frames.get_mut(&kind) {
                        df.replace(KEY, k)?;
                    }
                }
                return Ok(keys);
            }
            // Some id is not a customer's: every input's ids go into the dictionary, which
            // starts from strings.
            for df in frames.values_mut() {
                if is_encoded(df)? {
                    *df = keys.decode(std::mem::take(df))?;
                }
            }
        }
        let ids = sorted_unique_ids(
            frames
                .values()
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
            for df in frames.values_mut() {
                let keys = map.encode(df)?;
                df.replace(KEY, keys)?;
            }
        }
        Ok(CustomerKeys {
            ids,
            of_customers: false,
        })
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
        let keys = CustomerKeys::encode(&mut frames, None).unwrap();
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
    fn inputs_read_with_the_customers_keys_go_back_to_ids_when_another_has_other_ids() {
        let customers = df!("customer_id" => ["C2", "C1"]).unwrap();
        let dictionary = CustomerKeys::of_customers(customers.column(KEY).unwrap()).unwrap();
        let mut frames = BTreeMap::new();
        frames.insert(InputKind::Customers, customers);
        // Events were read with the customers' keys (C1 = 0, C2 = 1); orders have C0.
        let events = df!("customer_id" => ["C2", "C1"]).unwrap();
        let events_keyed = dictionary
            .encoder()
            .unwrap()
            .encode(&events)
            .unwrap()
            .unwrap();
        frames.insert(
            InputKind::Events,
            DataFrame::new_infer_height(vec![events_keyed]).unwrap(),
        );
        frames.insert(
            InputKind::Orders,
            df!("customer_id" => ["C0", "C2"]).unwrap(),
        );
        let keys = CustomerKeys::encode(&mut frames, Some(dictionary)).unwrap();
        let k = |kind: InputKind| u32s(&frames[&kind], KEY);
        // Every id is in the dictionary now: C0 = 0, C1 = 1, C2 = 2.
        assert_eq!(k(InputKind::Events), [Some(2), Some(1)]);
        assert_eq!(k(InputKind::Orders), [Some(0), Some(2)]);
        assert_eq!(k(InputKind::Customers), [Some(2), Some(1)]);
        let back = keys.decode(frames[&InputKind::Orders].clone()).unwrap();
        assert_eq!(strs(&back, KEY), ["C0", "C2"]);
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
        let keys = CustomerKeys::encode(&mut frames, None).unwrap();
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
