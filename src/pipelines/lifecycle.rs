//! Building blocks shared by the customer lifecycle pipelines (`cohort_retention`, `churn`,
//! `activation`): activity days, anchors and customer segments.
//!
//! - *Activity*: a customer is active on a local calendar day (job time zone) if they have a
//!   row in any of the pipeline's activity sources on that day: orders (`ordered_at`, purchases
//!   only: amount >= 0), tickets (`created_at`), surveys (`submitted_at`), events (`event_at`).
//! - *Anchor* (the customer's start): `first_activity` = first active day; `signup` = local date
//!   of `customers.signup_at` (customers with a null signup_at are left out); `first_order` =
//!   first purchase day (amount >= 0).

use polars::prelude::*;

use super::common::JoinOnCustomer;
use super::{InputUse, Inputs};
use crate::config::{ActivitySource, Anchor};
use crate::contracts::InputKind;
use crate::time::Calendar;

impl ActivitySource {
    pub fn input(self) -> InputKind {
        match self {
            ActivitySource::Orders => InputKind::Orders,
            ActivitySource::Tickets => InputKind::Tickets,
            ActivitySource::Surveys => InputKind::Surveys,
            ActivitySource::Events => InputKind::Events,
        }
    }

    fn time_column(self) -> &'static str {
        match self {
            ActivitySource::Orders => "ordered_at",
            ActivitySource::Tickets => "created_at",
            ActivitySource::Surveys => "submitted_at",
            ActivitySource::Events => "event_at",
        }
    }

    pub const ALL: [ActivitySource; 4] = [
        ActivitySource::Orders,
        ActivitySource::Tickets,
        ActivitySource::Surveys,
        ActivitySource::Events,
    ];
}

/// The inputs of a lifecycle pipeline: its activity sources, what its anchor reads, the
/// customers for `by`, and `optional` when the job declares them.
pub fn lifecycle_inputs(
    activity: &[ActivitySource],
    anchor: Option<Anchor>,
    by: &[String],
    optional: &[InputKind],
) -> InputUse {
    let mut required: Vec<InputKind> = activity.iter().map(|s| s.input()).collect();
    match anchor {
        Some(Anchor::Signup) => required.push(InputKind::Customers),
        Some(Anchor::FirstOrder) => required.push(InputKind::Orders),
        _ => {}
    }
    if !by.is_empty() {
        required.push(InputKind::Customers);
    }
    required.sort();
    required.dedup();
    InputUse {
        required,
        optional: optional.to_vec(),
        extra: vec![(InputKind::Customers, by.to_vec())],
    }
}

fn input(inputs: &Inputs, kind: InputKind) -> LazyFrame {
    inputs
        .get(&kind)
        .cloned()
        .expect("the runner loads every input a pipeline requires")
}

/// (customer_id, day) of every activity row, `day` a local Date, as one frame per source in
/// `sources` order. Not made distinct: the lifecycle pipelines read first and last active days,
/// and whether a customer was active in a period or on a day, none of which a repeated
/// (customer, day) changes, and making tens of millions of rows distinct is a sort or hash of
/// all of them. Kept apart per source so that a pipeline can reduce each source before
/// combining them (`activation`): the combined rows are the largest frame of a run.
pub fn activity_parts(
    inputs: &Inputs,
    sources: &[ActivitySource],
    cal: &Calendar,
) -> Vec<LazyFrame> {
    sources
        .iter()
        .map(|s| {
            let mut lf = input(inputs, s.input());
            if *s == ActivitySource::Orders {
                lf = lf.filter(col("amount").gt_eq(lit(0.0)));
            }
            lf.select([
                col("customer_id"),
                cal.local_date(col(s.time_column())).alias("day"),
            ])
        })
        .collect()
}

/// The activity parts (`activity_parts`) as one frame.
pub fn union(parts: Vec<LazyFrame>) -> LazyFrame {
    if parts.len() == 1 {
        return parts.into_iter().next().expect("one part");
    }
    if parts.is_empty() {
        DataFrame::empty_with_schema(&Schema::from_iter([
            Field::new("customer_id".into(), DataType::String),
            Field::new("day".into(), DataType::Date),
        ]))
        .lazy()
    } else {
        concat(parts, UnionArgs::default()).expect("same schema")
    }
}

/// (customer_id, day) of every activity row: `activity_parts` as one frame.
pub fn activity_rows(inputs: &Inputs, sources: &[ActivitySource], cal: &Calendar) -> LazyFrame {
    union(activity_parts(inputs, sources, cal))
}

/// (customer_id, `agg` of `day`) per customer over the activity `parts`, `agg` a min or max:
/// each part is reduced on its own before the parts are combined.
pub fn per_customer_day(parts: &[LazyFrame], agg: fn(Expr) -> Expr, name: &str) -> LazyFrame {
    let reduce = |lf: LazyFrame, column: &str| {
        lf.group_by([col("customer_id")])
            .agg([agg(col(column)).alias(name)])
    };
    match parts {
        [] => reduce(union(Vec::new()), "day"),
        [one] => reduce(one.clone(), "day"),
        _ => reduce(
            union(parts.iter().map(|p| reduce(p.clone(), "day")).collect()),
            name,
        ),
    }
}

/// (customer_id, anchor) with `anchor` a local Date; `activity` from `activity_parts` (or
/// those parts already combined).
pub fn anchor_days(
    anchor: Anchor,
    activity: &[LazyFrame],
    inputs: &Inputs,
    cal: &Calendar,
) -> LazyFrame {
    match anchor {
        Anchor::FirstActivity => per_customer_day(activity, |e| e.min(), "anchor"),
        Anchor::Signup => input(inputs, InputKind::Customers)
            .filter(col("signup_at").is_not_null())
            .select([
                col("customer_id"),
                cal.local_date(col("signup_at")).alias("anchor"),
            ]),
        // Local dates row-wise, then the minimum: inside the aggregation they would be
        // computed group by group.
        Anchor::FirstOrder => input(inputs, InputKind::Orders)
            .filter(col("amount").gt_eq(lit(0.0)))
            .select([
                col("customer_id"),
                cal.local_date(col("ordered_at")).alias("__day"),
            ])
            .group_by([col("customer_id")])
            .agg([col("__day").min().alias("anchor")]),
    }
}

/// Adds the `by` columns of `customers` to a frame keyed by customer_id (null where the
/// customer is not in `customers`; `by_dimensions` shows those as "unknown").
pub fn attach_segments(lf: LazyFrame, inputs: &Inputs, by: &[String]) -> LazyFrame {
    if by.is_empty() {
        return lf;
    }
    let mut cols = vec![col("customer_id")];
    cols.extend(by.iter().map(|b| col(b.as_str())));
    let segments = input(inputs, InputKind::Customers).select(cols);
    lf.join_on_customer(segments, JoinType::Left)
}

/// Hand-built inputs for the lifecycle pipelines' unit tests.
#[cfg(test)]
pub mod testing {
    use polars::prelude::*;

    use super::Inputs;
    use crate::contracts::InputKind;
    pub use crate::testutil::{bools, f64s, i32s, i64s, strs, us, utc};

    #[derive(Default)]
    pub struct Data {
        pub orders: Vec<(String, &'static str, f64)>,
        pub events: Vec<(String, &'static str)>,
        /// (customer_id, signup_at, churned_at, plan)
        pub customers: Vec<(
            String,
            Option<&'static str>,
            Option<&'static str>,
            &'static str,
        )>,
    }

    impl Data {
        pub fn order(&mut self, c: &str, at: &'static str, amount: f64) -> &mut Self {
            self.orders.push((c.to_string(), at, amount));
            self
        }

        pub fn event(&mut self, c: &str, at: &'static str) -> &mut Self {
            self.events.push((c.to_string(), at));
            self
        }

        pub fn customer(
            &mut self,
            c: &str,
            signup: Option<&'static str>,
            churned: Option<&'static str>,
            plan: &'static str,
        ) -> &mut Self {
            self.customers.push((c.to_string(), signup, churned, plan));
            self
        }

        pub fn inputs(&self) -> Inputs {
            let mut m = Inputs::new();
            let ids = |v: Vec<&String>| v.into_iter().cloned().collect::<Vec<String>>();
            m.insert(
                InputKind::Orders,
                DataFrame::new_infer_height(vec![
                    Column::new(
                        "order_id".into(),
                        (0..self.orders.len())
                            .map(|i| format!("O{i}"))
                            .collect::<Vec<_>>(),
                    ),
                    Column::new(
                        "customer_id".into(),
                        ids(self.orders.iter().map(|o| &o.0).collect()),
                    ),
                    utc(
                        "ordered_at",
                        self.orders.iter().map(|o| Some(us(o.1))).collect(),
                    ),
                    Column::new(
                        "amount".into(),
                        self.orders.iter().map(|o| o.2).collect::<Vec<_>>(),
                    ),
                ])
                .unwrap()
                .lazy(),
            );
            m.insert(
                InputKind::Events,
                DataFrame::new_infer_height(vec![
                    Column::new(
                        "customer_id".into(),
                        ids(self.events.iter().map(|o| &o.0).collect()),
                    ),
                    utc(
                        "event_at",
                        self.events.iter().map(|o| Some(us(o.1))).collect(),
                    ),
                ])
                .unwrap()
                .lazy(),
            );
            m.insert(
                InputKind::Customers,
                DataFrame::new_infer_height(vec![
                    Column::new(
                        "customer_id".into(),
                        ids(self.customers.iter().map(|o| &o.0).collect()),
                    ),
                    utc(
                        "signup_at",
                        self.customers.iter().map(|o| o.1.map(us)).collect(),
                    ),
                    utc(
                        "churned_at",
                        self.customers.iter().map(|o| o.2.map(us)).collect(),
                    ),
                    Column::new(
                        "plan".into(),
                        self.customers.iter().map(|o| o.3).collect::<Vec<_>>(),
                    ),
                ])
                .unwrap()
                .lazy(),
            );
            m
        }
    }

    pub fn dates(df: &DataFrame, name: &str) -> Vec<String> {
        df.column(name)
            .unwrap()
            .date()
            .unwrap()
            .as_date_iter()
            .map(|d| d.unwrap().to_string())
            .collect()
    }
}
