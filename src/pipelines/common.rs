//! Helpers shared by pipelines: the `dimension` / `dimension_value` breakdown and small
//! numeric expressions.

use polars::prelude::*;

/// The value used for the overall row set in `dimension` and `dimension_value`.
pub const ALL: &str = "all";
/// `dimension_value` for a null segment value.
pub const UNKNOWN: &str = "unknown";

/// Aggregates `lf` by `keys` once overall (dimension = dimension_value = "all") and once per
/// `by` column (dimension = the column name, dimension_value = its value as a string, nulls as
/// "unknown"), and stacks the results. Output columns: keys..., dimension, dimension_value, aggs...
pub fn by_dimensions(lf: LazyFrame, keys: &[Expr], by: &[String], aggs: &[Expr]) -> LazyFrame {
    let mut dims: Vec<(String, Expr)> = vec![(ALL.to_string(), lit(ALL))];
    for b in by {
        dims.push((
            b.clone(),
            col(b.as_str())
                .cast(DataType::String)
                .fill_null(lit(UNKNOWN)),
        ));
    }
    let parts: Vec<LazyFrame> = dims
        .into_iter()
        .map(|(name, value)| {
            let mut group: Vec<Expr> = keys.to_vec();
            group.push(lit(name).alias("dimension"));
            group.push(value.alias("dimension_value"));
            lf.clone().group_by(group).agg(aggs)
        })
        .collect();
    concat(parts, UnionArgs::default()).expect("at least the overall row set")
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

/// Number of rows where the boolean `e` is true, as Int64.
pub fn count_true(e: Expr) -> Expr {
    e.cast(DataType::Int64).sum()
}
