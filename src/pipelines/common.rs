//! Helpers shared by pipelines: the `dimension` / `dimension_value` breakdown and small
//! numeric expressions.

use polars::chunked_array::ops::arity::binary_elementwise_values;
use polars::prelude::*;

/// The value used for the overall row set in `dimension` and `dimension_value`.
pub const ALL: &str = "all";
/// `dimension_value` for a null segment value.
pub const UNKNOWN: &str = "unknown";

/// Aggregates `lf` by `keys` once overall (dimension = dimension_value = "all") and once per
/// `by` column (dimension = the column name, dimension_value = its value as a string, nulls as
/// "unknown"), and stacks the results. Output columns: keys..., dimension, dimension_value, aggs...
pub fn by_dimensions(lf: LazyFrame, keys: &[Expr], by: &[String], aggs: &[Expr]) -> LazyFrame {
    let overall = lf.clone().group_by(keys).agg(aggs);
    // Output order: the keys, the two dimension columns, then the aggregates.
    let names: Vec<String> = overall
        .clone()
        .collect_schema()
        .map(|s| s.iter_names().map(|n| n.to_string()).collect())
        .unwrap_or_default();
    let (key_names, agg_names) = names.split_at(keys.len().min(names.len()));
    let order: Vec<Expr> = key_names
        .iter()
        .map(|k| col(k.as_str()))
        .chain([col("dimension"), col("dimension_value")])
        .chain(agg_names.iter().map(|a| col(a.as_str())))
        .collect();
    // The literal dimension is added after aggregating: a constant group key would make every
    // row of a large grid go through the slower multi-column hashing.
    let mut parts = vec![overall
        .with_columns([
            lit(ALL).alias("dimension"),
            lit(ALL).alias("dimension_value"),
        ])
        .select(order.clone())];
    for b in by {
        let mut group: Vec<Expr> = keys.to_vec();
        group.push(
            col(b.as_str())
                .cast(DataType::String)
                .fill_null(lit(UNKNOWN))
                .alias("dimension_value"),
        );
        parts.push(
            lf.clone()
                .group_by(group)
                .agg(aggs)
                .with_column(lit(b.clone()).alias("dimension"))
                .select(order.clone()),
        );
    }
    concat(parts, UnionArgs::default()).expect("at least the overall row set")
}

/// The rows of `lf` once overall (dimension = dimension_value = "all") and once per `by`
/// column, as `by_dimensions` groups them, without aggregating: keys..., dimension,
/// dimension_value, values... For partials whose values a definition needs one by one
/// (quantiles).
pub fn by_dimensions_rows(
    lf: LazyFrame,
    keys: &[Expr],
    by: &[String],
    values: &[Expr],
) -> LazyFrame {
    let mut parts = Vec::with_capacity(by.len() + 1);
    let select = |dimension: Expr, value: Expr| {
        let mut cols: Vec<Expr> = keys.to_vec();
        cols.push(dimension.alias("dimension"));
        cols.push(value.alias("dimension_value"));
        cols.extend(values.iter().cloned());
        cols
    };
    parts.push(lf.clone().select(select(lit(ALL), lit(ALL))));
    for b in by {
        parts.push(
            lf.clone().select(select(
                lit(b.clone()),
                col(b.as_str())
                    .cast(DataType::String)
                    .fill_null(lit(UNKNOWN)),
            )),
        );
    }
    concat(parts, UnionArgs::default()).expect("at least the overall rows")
}

/// The exact sum of the float `value` per group of `keys` and per dimension, as a partial:
/// keys..., `__e`, dimension, dimension_value, `__m` (Int128): the values' mantissas summed per
/// binary exponent (`crate::exact`). Merge it by summing `__m` over the other columns, and
/// read it with `exact_sums`.
pub fn exact_sum_partial(lf: LazyFrame, keys: &[Expr], by: &[String], value: Expr) -> LazyFrame {
    let parts = lf
        .with_columns([
            value
                .clone()
                .map(
                    |c: Column| float_part(&c, true),
                    |_, f: &Field| Ok(Field::new(f.name().clone(), DataType::Int32)),
                )
                .alias("__e"),
            value
                .map(
                    |c: Column| float_part(&c, false),
                    |_, f: &Field| Ok(Field::new(f.name().clone(), DataType::Int64)),
                )
                .alias("__m"),
        ])
        .filter(col("__e").is_not_null());
    let mut group = keys.to_vec();
    group.push(col("__e"));
    by_dimensions(
        parts,
        &group,
        by,
        &[col("__m").cast(DataType::Int128).sum().alias("__m")],
    )
}

/// The binary exponent (`exponent`) or the signed mantissa of each value of a Float64 column
/// (`crate::exact::float_parts`); null for nulls, zeros and non-finite values.
fn float_part(c: &Column, exponent: bool) -> PolarsResult<Column> {
    let v = c.cast(&DataType::Float64)?;
    let v = v.f64()?;
    let out: Column = if exponent {
        v.iter()
            .map(|x| x.and_then(crate::exact::float_parts).map(|(e, _)| e))
            .collect::<Int32Chunked>()
            .with_name(c.name().clone())
            .into_column()
    } else {
        v.iter()
            .map(|x| x.and_then(crate::exact::float_parts).map(|(_, m)| m))
            .collect::<Int64Chunked>()
            .with_name(c.name().clone())
            .into_column()
    };
    Ok(out)
}

/// From a merged `exact_sum_partial`: one row per group of `keys` with the exact sum of its
/// values, rounded once, as Float64 `name`.
pub fn exact_sums(parts: LazyFrame, keys: &[&str], name: &str) -> PolarsResult<DataFrame> {
    let key_cols: Vec<Expr> = keys.iter().map(|k| col(*k)).collect();
    let groups = parts
        .clone()
        .select(key_cols.clone())
        .unique(None, UniqueKeepStrategy::Any)
        .with_row_index("__g", None)
        .collect()?;
    let rows = parts
        .join(
            groups.clone().lazy(),
            key_cols.clone(),
            key_cols,
            JoinArgs::new(JoinType::Inner),
        )
        .select([col("__g"), col("__e"), col("__m")])
        .collect()?;
    let g = rows.column("__g")?.cast(&DataType::UInt64)?;
    let e = rows.column("__e")?.i32()?.clone();
    let m = rows.column("__m")?.cast(&DataType::Int128)?;
    let mut per_group: Vec<Vec<(i32, i128)>> = vec![Vec::new(); groups.height()];
    for ((g, e), m) in g.u64()?.iter().zip(e.iter()).zip(m.i128()?.iter()) {
        if let (Some(g), Some(e), Some(m)) = (g, e, m) {
            per_group[g as usize].push((e, m));
        }
    }
    let sums: Float64Chunked = per_group
        .into_iter()
        .map(|parts| Some(crate::exact::sum_of_parts(parts)))
        .collect();
    let mut out = groups.select(keys.iter().copied())?;
    out.with_column(sums.with_name(name.into()).into_column())?;
    Ok(out)
}

/// Joins on `customer_id`, the key of nearly every join in the pipelines.
pub trait JoinOnCustomer {
    fn join_on_customer(self, other: LazyFrame, how: JoinType) -> LazyFrame;
}

impl JoinOnCustomer for LazyFrame {
    fn join_on_customer(self, other: LazyFrame, how: JoinType) -> LazyFrame {
        self.join(
            other,
            [col("customer_id")],
            [col("customer_id")],
            JoinArgs::new(how),
        )
    }
}

const HALF: u64 = 1 << 32;

/// One UInt64 holding (customer key, a 32-bit integer such as a day number), for
/// single-column hashing where the pair is a key. Only for UInt32 customer keys.
fn customer_pair(other: Expr, other_type: &DataType) -> Expr {
    if other_type.to_physical() == DataType::Int32 {
        // One pass over both columns: as arithmetic expressions, each step (casts, multiply,
        // add) made a full-length column of its own, which made packing the slowest part of
        // `activation` over the events.
        return col("customer_id").map_many(pack_pairs, &[other], |_, fields: &[Field]| {
            Ok(Field::new(fields[0].name().clone(), DataType::UInt64))
        });
    }
    (col("customer_id").cast(DataType::UInt64) * lit(HALF))
        + (other.cast(DataType::Int64) + lit(1i64 << 31)).cast(DataType::UInt64)
}

/// `customer_pair` of UInt32 keys and 32-bit integers (a null in either gives a null).
fn pack_pairs(columns: &mut [Column]) -> PolarsResult<Column> {
    let keys = columns[0].u32()?;
    let other = columns[1].to_physical_repr();
    let packed: UInt64Chunked = binary_elementwise_values(keys, other.i32()?, |k: u32, o: i32| {
        (k as u64) * HALF + (o as i64 + (1i64 << 31)) as u64
    });
    Ok(packed.into_column())
}

/// A (customer_id, `other`) key for joins, uniques and group-bys. polars hashes a
/// multi-column key by row-encoding it to bytes, which is several times slower than hashing
/// one integer; with integer customer keys the pair is packed into one UInt64 `__pair`
/// column instead. Both forms give the same groups.
pub struct PairKey {
    other: String,
    /// With the runner's integer customer keys (see `crate::keys`), rather than the strings
    /// that unit tests use: the type of `other`, and the pair is packed.
    packed: Option<DataType>,
}

impl PairKey {
    /// The key for (customer_id, `other`) in frames shaped like `lf`.
    pub fn new(lf: &LazyFrame, other: &str) -> Self {
        let packed = match lf.clone().collect_schema() {
            Ok(s) if s.get("customer_id") == Some(&DataType::UInt32) => s.get(other).cloned(),
            _ => None,
        };
        PairKey {
            other: other.to_string(),
            packed,
        }
    }

    /// `lf` with the key column added (when packed).
    fn add(&self, lf: LazyFrame) -> LazyFrame {
        if let Some(other_type) = &self.packed {
            lf.with_column(customer_pair(col(self.other.as_str()), other_type).alias("__pair"))
        } else {
            lf
        }
    }

    /// The key columns.
    fn keys(&self) -> Vec<Expr> {
        if self.packed.is_some() {
            vec![col("__pair")]
        } else {
            vec![col("customer_id"), col(self.other.as_str())]
        }
    }

    /// Distinct (customer_id, other) rows of `lf`, which must have exactly those columns.
    pub fn unique(&self, lf: LazyFrame) -> LazyFrame {
        match &self.packed {
            // The distinct packed values, unpacked: no row gathering and no per-row mask,
            // which is what costs most on tens of millions of activity rows.
            Some(other_type) => self.add(lf).select([col("__pair").unique()]).select([
                (col("__pair") / lit(HALF))
                    .cast(DataType::UInt32)
                    .alias("customer_id"),
                ((col("__pair") % lit(HALF)).cast(DataType::Int64) - lit(1i64 << 31))
                    .cast(DataType::Int32)
                    .cast(other_type.clone())
                    .alias(self.other.as_str()),
            ]),
            None => lf.unique(None, UniqueKeepStrategy::Any),
        }
    }

    /// Left join of `right` (keyed by customer_id and `other`, plus `values`) onto `left`.
    pub fn left_join(&self, left: LazyFrame, right: LazyFrame, values: &[&str]) -> LazyFrame {
        self.join(left, right, values, JoinType::Left)
    }

    /// Inner join of `right` (keyed by customer_id and `other`, plus `values`) onto `left`.
    pub fn inner_join(&self, left: LazyFrame, right: LazyFrame, values: &[&str]) -> LazyFrame {
        self.join(left, right, values, JoinType::Inner)
    }

    fn join(&self, left: LazyFrame, right: LazyFrame, values: &[&str], how: JoinType) -> LazyFrame {
        let mut right_cols = self.keys();
        right_cols.extend(values.iter().map(|v| col(*v)));
        let keys = self.keys();
        let joined = self.add(left).join(
            self.add(right).select(right_cols),
            keys.clone(),
            keys,
            JoinArgs::new(how),
        );
        if self.packed.is_some() {
            joined.drop(cols(["__pair"]))
        } else {
            joined
        }
    }

    /// Group-by on the pair, keeping customer_id and `other` as columns. The groups come out
    /// sorted by (customer_id, other), and the rows of each group are aggregated in their order
    /// in `lf`.
    pub fn group_by(&self, lf: LazyFrame, aggs: Vec<Expr>) -> LazyFrame {
        if self.packed.is_some() {
            let mut all = vec![col("customer_id").first(), col(self.other.as_str()).first()];
            all.extend(aggs);
            // Pairs are nearly as many as rows (most customers order once a day): hashing them
            // builds a group per row, while sorting the one UInt64 column and grouping its
            // runs is several times faster (docs/performance.md).
            self.add(lf)
                .sort(
                    ["__pair"],
                    SortMultipleOptions::default().with_maintain_order(true),
                )
                .group_by_stable([col("__pair")])
                .agg(all)
                .drop(cols(["__pair"]))
        } else {
            lf.group_by(self.keys())
                .agg(aggs)
                .sort(["customer_id", self.other.as_str()], Default::default())
        }
    }
}

/// Sorts a table with `dimension` / `dimension_value` columns: by the `leading` columns, then
/// the overall ("all") rows before the segment rows, then dimension and value, then the
/// `trailing` columns.
pub trait SortOverallFirst {
    fn sort_overall_first(self, leading: &[&str], trailing: &[&str]) -> LazyFrame;
}

impl SortOverallFirst for LazyFrame {
    fn sort_overall_first(self, leading: &[&str], trailing: &[&str]) -> LazyFrame {
        sort_overall_first(self, leading, trailing)
    }
}

fn sort_overall_first(lf: LazyFrame, leading: &[&str], trailing: &[&str]) -> LazyFrame {
    let mut keys: Vec<Expr> = leading.iter().map(|c| col(*c)).collect();
    keys.push(col("__not_all"));
    keys.push(col("dimension"));
    keys.push(col("dimension_value"));
    keys.extend(trailing.iter().map(|c| col(*c)));
    lf.with_column(col("dimension").neq(lit(ALL)).alias("__not_all"))
        .sort_by_exprs(keys, Default::default())
        .drop(cols(["__not_all"]))
}

/// `x` clipped to `[lo, hi]`.
pub fn clip(x: Expr, lo: f64, hi: f64) -> Expr {
    when(x.clone().lt(lit(lo)))
        .then(lit(lo))
        .when(x.clone().gt(lit(hi)))
        .then(lit(hi))
        .otherwise(x)
}

/// `num / den` as Float64, null where `den` is 0 or null.
pub fn ratio(num: Expr, den: Expr) -> Expr {
    when(den.clone().eq(lit(0)))
        .then(lit(NULL).cast(DataType::Float64))
        .otherwise(num.cast(DataType::Float64) / den.cast(DataType::Float64))
}

/// `num / den` as Float64 for a constant `den`, divided value by value. polars divides a float
/// column by a scalar by multiplying with the scalar's reciprocal (polars-compute
/// `prim_true_div_scalar`), which is often one unit in the last place off the quotient
/// (`x * (1/7) != x / 7` for a third of small integers). A floor or a threshold applied to a
/// quotient that is exactly a whole number or a cut-off then lands on the wrong side: at n = 1470
/// customers, ranks 148 and 736 have share (rank - 1) / n exactly 0.1 and 0.5, and the product
/// put them in the tier above.
pub fn div_scalar(num: Expr, den: f64) -> Expr {
    num.cast(DataType::Float64).map(
        move |c: Column| {
            let out: Float64Chunked = c.f64()?.apply_values(|v| v / den);
            Ok(out.with_name(c.name().clone()).into_column())
        },
        |_, f: &Field| Ok(Field::new(f.name().clone(), DataType::Float64)),
    )
}

/// Aggregation: the mean of a group's non-null values of `e` (null when there are none), added
/// in ascending order with compensated (Neumaier) summation. A float sum depends on the order of
/// its terms, and parallel joins and group-bys hand rows over in no fixed order, so a plain
/// `mean()` changed in the last digit from run to run. polars drops a `sort` placed before `mean`
/// as having no effect on the result, so the sorting happens inside this function.
pub fn mean_in_value_order(e: Expr) -> Expr {
    e.cast(DataType::Float64).agg_with_fmt_str(
        |c: Column| {
            let mut v: Vec<f64> = c.f64()?.iter().flatten().collect();
            v.sort_unstable_by(f64::total_cmp);
            let mean = (!v.is_empty()).then(|| neumaier_sum(&v) / v.len() as f64);
            Ok(Column::new(c.name().clone(), [mean]))
        },
        |_, f: &Field| Ok(Field::new(f.name().clone(), DataType::Float64)),
        "mean_in_value_order",
    )
}

fn neumaier_sum(v: &[f64]) -> f64 {
    let (mut sum, mut carry) = (0.0f64, 0.0f64);
    for &x in v {
        let t = sum + x;
        carry += if sum.abs() >= x.abs() {
            (sum - t) + x
        } else {
            (x - t) + sum
        };
        sum = t;
    }
    sum + carry
}

/// Number of rows where the boolean `e` is true, as Int64.
pub fn count_true(e: Expr) -> Expr {
    e.cast(DataType::Int64).sum()
}

/// Exact sums of money amounts. A float sum depends on the order of its terms: 39.79 + 18.54 +
/// 22.19 + 4.68 is 85.19999999999999 in file order and 85.2 in others. Ranks that share places
/// between equal values (RFM scores, value tiers) would then split customers with the same total
/// differently from run to run or from any implementation that adds in another order. So each
/// amount is split into whole units (its floor) and millionths of a unit of the rest (rounded half
/// to even); both parts are summed as integers, and turned back into one float only at the end,
/// after carrying whole millions of millionths into the units: equal totals give equal floats.
///
/// `split_amount(e, "__x")` adds the parts `__x_w`, `__x_m`; sum them with `sum_amount_parts`
/// and recombine with `amount_from_parts`.
///
/// The whole units are a 128-bit integer, so that every sum of them is exact: an amount is below
/// 10^15 in absolute value (`contracts::MAX_ABS_AMOUNT`, checked when the input is read), and
/// 2^32 such amounts (more rows than polars indexes) sum to under 10^25, far inside 128 bits;
/// a 64-bit sum wrapped after about 9,200 amounts of 10^15 and gave a wrong total. The
/// millionths (each below 10^6) sum exactly in 64 bits.
pub fn split_amount(e: Expr, name: &str) -> [Expr; 2] {
    let whole = e.clone().floor();
    [
        whole
            .clone()
            .strict_cast(DataType::Int128)
            .alias(format!("{name}_w")),
        ((e - whole) * lit(MICROS_PER_UNIT as f64))
            .round(0, RoundMode::HalfToEven)
            .strict_cast(DataType::Int64)
            .alias(format!("{name}_m")),
    ]
}

/// Sums of the parts `{from}_w`, `{from}_m` as `{to}_w`, `{to}_m` (aggregations).
pub fn sum_amount_parts(from: &str, to: &str) -> [Expr; 2] {
    [
        col(format!("{from}_w")).sum().alias(format!("{to}_w")),
        col(format!("{from}_m")).sum().alias(format!("{to}_m")),
    ]
}

/// The amount with parts `whole` units and `micros` millionths, as Float64.
pub fn amount_from_parts(whole: Expr, micros: Expr) -> Expr {
    let carry = micros.clone().floor_div(lit(MICROS_PER_UNIT));
    let rest = micros - carry.clone() * lit(MICROS_PER_UNIT);
    (whole + carry).cast(DataType::Float64) + div_scalar(rest, MICROS_PER_UNIT as f64)
}

/// The amount with parts `{name}_w`, `{name}_m` divided by `den` (null where `den` is 0): an
/// average of exactly summed amounts.
pub fn amount_per(name: &str, den: Expr) -> Expr {
    ratio(
        amount_from_parts(col(format!("{name}_w")), col(format!("{name}_m"))),
        den,
    )
}

/// Millionths in a unit: the resolution money is summed in.
pub const MICROS_PER_UNIT: i64 = 1_000_000;

/// The count and exact sum of a model value over a group (the columns `n` and `total`) as the
/// output columns `customers` (Int64) and `total_name` (Float64, 0 without values): the
/// denominator and numerator of the group's mean.
pub fn model_value_sums(n: &str, total: &str, customers: &str, total_name: &str) -> [Expr; 2] {
    [
        col(n).cast(DataType::Int64).alias(customers),
        col(total)
            .fill_null(lit(0.0))
            .cast(DataType::Float64)
            .alias(total_name),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{f64s, u32s};

    /// Sums `amounts` group by group with the exact-sum helpers.
    fn exact_sums(groups: Vec<i32>, amounts: Vec<f64>) -> Vec<Option<f64>> {
        let df = df!("g" => groups, "amount" => amounts).unwrap();
        let out = df
            .lazy()
            .with_columns(split_amount(col("amount"), "__a"))
            .group_by_stable([col("g")])
            .agg(sum_amount_parts("__a", "__s"))
            .select([amount_from_parts(col("__s_w"), col("__s_m")).alias("sum")])
            .collect()
            .unwrap();
        f64s(&out, "sum")
    }

    #[test]
    fn means_in_value_order_do_not_depend_on_row_order() {
        // 0.1 + 0.2 + 0.3 is 0.6000000000000001 in this order and 0.6 as 0.3 + 0.2 + 0.1; the
        // compensated sum in ascending order gives 0.6 for every order of the rows.
        let mean = |g: Vec<i32>, v: Vec<Option<f64>>| -> Vec<Option<f64>> {
            let df = df!("g" => g, "v" => v).unwrap();
            let out = df
                .lazy()
                .group_by_stable([col("g")])
                .agg([mean_in_value_order(col("v")).alias("m")])
                .collect()
                .unwrap();
            f64s(&out, "m")
        };
        let (a, b, c) = (Some(0.1), Some(0.2), Some(0.3));
        for v in [vec![a, b, c], vec![c, b, a], vec![b, c, a]] {
            assert_eq!(mean(vec![1, 1, 1], v), [Some(0.6 / 3.0)]);
        }
        // Nulls are left out; a group of nulls has no mean.
        assert_eq!(
            mean(vec![1, 2, 1, 2], vec![Some(4.0), None, None, None]),
            [Some(4.0), None]
        );
    }

    #[test]
    fn division_by_a_constant_is_the_exact_quotient() {
        // 735 * (1 / 1470) is 0.49999999999999994; 735 / 1470 is 0.5.
        let df = df!("x" => [735.0, 147.0, 425.0, -7.0]).unwrap();
        let out = df
            .lazy()
            .select([
                div_scalar(col("x").slice(0, 2), 1470.0).alias("a"),
                div_scalar(col("x").slice(2, 2), 425.0).alias("b"),
            ])
            .collect()
            .unwrap();
        assert_eq!(f64s(&out, "a"), [Some(0.5), Some(0.1)]);
        assert_eq!(f64s(&out, "b"), [Some(1.0), Some(-7.0 / 425.0)]);
    }

    #[test]
    fn packed_pairs_hold_the_key_and_the_value_and_unpack_to_them() {
        let keys = [Some(3u32), Some(0), Some(u32::MAX), Some(3), None, Some(3)];
        let days = [
            Some(-5i32),
            Some(i32::MIN),
            Some(i32::MAX),
            Some(-5),
            Some(1),
            None,
        ];
        for day_type in [DataType::Int32, DataType::Date] {
            let df = DataFrame::new_infer_height(vec![
                Column::new("customer_id".into(), keys),
                Column::new("day".into(), days).cast(&day_type).unwrap(),
            ])
            .unwrap();
            let pair = PairKey::new(&df.clone().lazy(), "day");
            let packed = pair.add(df.clone().lazy()).collect().unwrap();
            let packed: Vec<Option<u64>> = packed
                .column("__pair")
                .unwrap()
                .u64()
                .unwrap()
                .iter()
                .collect();
            let half = 1u64 << 32;
            assert_eq!(
                packed,
                [
                    Some(3 * half + (1 << 31) - 5),
                    Some(0),
                    Some(u64::MAX),
                    Some(3 * half + (1 << 31) - 5),
                    None,
                    None
                ]
            );
            let unique = pair
                .unique(df.lazy().drop_nulls(None))
                .sort(["customer_id"], Default::default())
                .collect()
                .unwrap();
            assert_eq!(unique.column("day").unwrap().dtype(), &day_type);
            let day = unique.column("day").unwrap().to_physical_repr();
            let day: Vec<Option<i32>> = day.i32().unwrap().iter().collect();
            assert_eq!(
                u32s(&unique, "customer_id"),
                [Some(0), Some(3), Some(u32::MAX)]
            );
            assert_eq!(day, [Some(i32::MIN), Some(-5), Some(i32::MAX)]);
        }
    }

    #[test]
    fn equal_totals_are_equal_floats_in_any_order() {
        // In file order a float sum of the first four is 85.19999999999999.
        assert_eq!(39.79 + 18.54 + 22.19 + 4.68, 85.19999999999999);
        // Every order of the four (groups 0..24), and one order of 85.2 (group 24).
        let four = [39.79, 18.54, 22.19, 4.68];
        let (mut groups, mut amounts) = (vec![24], vec![85.2]);
        for g in 0..24 {
            let mut rest: Vec<f64> = four.to_vec();
            let mut k = g;
            for n in (1..=4).rev() {
                groups.push(g as i32);
                amounts.push(rest.remove(k % n));
                k /= n;
            }
        }
        let mut got = exact_sums(groups, amounts);
        got.dedup();
        assert_eq!(got, vec![Some(85.2)]);
    }

    #[test]
    fn sums_beyond_64_bits_are_exact() {
        // Twelve orders of 10^15 - 1 (the largest whole amount allowed) and 10,000 more: a
        // 64-bit sum of the whole units wraps after 9,223 of them; these sums do not.
        let big = 999_999_999_999_999.0;
        let n = 12_000;
        let got = exact_sums(vec![1; n], vec![big; n]);
        assert_eq!(got, vec![Some(big * n as f64)]);
        assert!(got[0].unwrap() > i64::MAX as f64);
        let got = exact_sums(vec![1, 1, 1], vec![big, -big, 0.25]);
        assert_eq!(got, vec![Some(0.25)]);
    }

    #[test]
    fn refunds_and_carries() {
        // -10.05 = -11 + 0.95; + 5.10: whole -6, millionths 1_050_000 -> -5 + 0.05 = -4.95.
        // 0.5 + 0.5 + 0.25: millionths carry into one whole unit.
        let got = exact_sums(
            vec![1, 1, 2, 2, 2, 3],
            vec![-10.05, 5.10, 0.5, 0.5, 0.25, -0.0],
        );
        assert_eq!(got, vec![Some(-4.95), Some(1.25), Some(0.0)]);
    }
}
