//! Building blocks shared by the customer lifecycle pipelines (`cohort_retention`, `churn`,
//! `activation`): activity days, anchors and customer segments.
//!
//! - *Activity*: a customer is active on a local calendar day (job time zone) if, in any of
//!   the pipeline's activity sources, their counted rows of that day are at least the source's
//!   `min_count` (default 1). The rows of a source: orders (`ordered_at`, purchases only:
//!   amount >= 0, and at least `min_amount` when given), tickets (`created_at`), surveys
//!   (`submitted_at`), events (`event_at`; only the listed `event_type`s when given).
//! - *Anchor* (the customer's start): `first_activity` = first active day; `signup` = local date
//!   of `customers.signup_at` (customers with a null signup_at are left out); `first_order` =
//!   first purchase day (amount >= 0); `{ first_event: [types] }` = first local day with an
//!   event of one of the types.

use polars::prelude::*;

use super::common::JoinOnCustomer;
use super::{InputUse, Inputs};
use crate::config::{ActivitySource, Anchor, SourceKind};
use crate::contracts::InputKind;
use crate::time::Calendar;

impl ActivitySource {
    pub fn input(&self) -> InputKind {
        match self.kind {
            SourceKind::Orders => InputKind::Orders,
            SourceKind::Tickets => InputKind::Tickets,
            SourceKind::Surveys => InputKind::Surveys,
            SourceKind::Events => InputKind::Events,
        }
    }

    fn time_column(&self) -> &'static str {
        match self.kind {
            SourceKind::Orders => "ordered_at",
            SourceKind::Tickets => "created_at",
            SourceKind::Surveys => "submitted_at",
            SourceKind::Events => "event_at",
        }
    }

    pub const ALL: [ActivitySource; 4] = [
        ActivitySource::ORDERS,
        ActivitySource::TICKETS,
        ActivitySource::SURVEYS,
        ActivitySource::EVENTS,
    ];

    /// The rows that count (before `min_count`).
    fn rows(&self, lf: LazyFrame) -> LazyFrame {
        let mut lf = lf;
        if self.kind == SourceKind::Orders {
            lf = lf.filter(col("amount").gt_eq(lit(0.0)));
            if let Some(m) = self.min_amount_micros {
                lf = lf.filter(col("amount").gt_eq(lit(m as f64 / 1e6)));
            }
        }
        if !self.event_types.is_empty() {
            lf = lf.filter(event_type_in(&self.event_types));
        }
        lf
    }
}

/// `event_type` is one of `types`.
fn event_type_in(types: &[String]) -> Expr {
    col("event_type").cast(DataType::String).is_in(
        lit(Series::new("types".into(), types.to_vec())).implode(true),
        false,
    )
}

/// The inputs of a lifecycle pipeline: its activity sources, what its anchor reads, the
/// customers for `by`, and `optional` when the job declares them.
pub fn lifecycle_inputs(
    activity: &[ActivitySource],
    anchor: Option<&Anchor>,
    by: &[String],
    optional: &[InputKind],
) -> InputUse {
    let mut required: Vec<InputKind> = activity.iter().map(|s| s.input()).collect();
    let mut event_type = activity.iter().any(|s| !s.event_types.is_empty());
    match anchor {
        Some(Anchor::Signup) => required.push(InputKind::Customers),
        Some(Anchor::FirstOrder) => required.push(InputKind::Orders),
        Some(Anchor::FirstEvent(_)) => {
            required.push(InputKind::Events);
            event_type = true;
        }
        _ => {}
    }
    if !by.is_empty() {
        required.push(InputKind::Customers);
    }
    required.sort();
    required.dedup();
    let mut extra = vec![(InputKind::Customers, by.to_vec())];
    // event_type is read only when a filter or the anchor needs it.
    if event_type {
        extra.push((InputKind::Events, vec!["event_type".to_string()]));
    }
    InputUse {
        required,
        optional: optional.to_vec(),
        extra,
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
            let days = s.rows(input(inputs, s.input())).select([
                col("customer_id"),
                cal.local_date(col(s.time_column())).alias("day"),
            ]);
            if s.min_count <= 1 {
                return days;
            }
            days.group_by([col("customer_id"), col("day")])
                .agg([len().alias("__rows")])
                .filter(col("__rows").gt_eq(lit(s.min_count)))
                .select([col("customer_id"), col("day")])
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
    anchor: &Anchor,
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
        Anchor::FirstEvent(types) => input(inputs, InputKind::Events)
            .filter(event_type_in(types))
            .select([
                col("customer_id"),
                cal.local_date(col("event_at")).alias("__day"),
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
        /// (customer_id, event_at, event_type)
        pub events: Vec<(String, &'static str, &'static str)>,
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
            self.typed_event(c, at, "view")
        }

        pub fn typed_event(&mut self, c: &str, at: &'static str, kind: &'static str) -> &mut Self {
            self.events.push((c.to_string(), at, kind));
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
                    Column::new(
                        "event_type".into(),
                        self.events.iter().map(|o| o.2).collect::<Vec<_>>(),
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

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::testing::*;
    use super::*;

    fn days(lf: LazyFrame) -> Vec<(String, String)> {
        let df = lf
            .unique(None, UniqueKeepStrategy::Any)
            .sort(["customer_id", "day"], Default::default())
            .with_column(col("day").cast(DataType::String))
            .collect()
            .unwrap();
        strs(&df, "customer_id")
            .into_iter()
            .zip(strs(&df, "day"))
            .collect()
    }

    /// Key events by hand: A has two checkouts on June 2 and one on June 3, B one checkout and
    /// a login on June 2; orders of 40 and 60.
    #[test]
    fn filtered_activity_and_a_first_event_anchor() {
        let mut d = Data::default();
        d.typed_event("A", "2026-06-02 10:00:00", "checkout")
            .typed_event("A", "2026-06-02 11:00:00", "checkout")
            .typed_event("A", "2026-06-03 11:00:00", "checkout")
            .typed_event("A", "2026-06-01 09:00:00", "login")
            .typed_event("B", "2026-06-02 12:00:00", "checkout")
            .typed_event("B", "2026-06-02 13:00:00", "login")
            .order("A", "2026-06-04 10:00:00", 40.0)
            .order("B", "2026-06-05 10:00:00", 60.0);
        let inputs = d.inputs();
        let cal = Calendar::new(NaiveDate::from_ymd_opt(2026, 6, 30).unwrap(), "UTC").unwrap();
        let source = |kind, types: &[&str], min_count, min_amount: Option<i64>| ActivitySource {
            kind,
            event_types: types.iter().map(|t| t.to_string()).collect(),
            min_amount_micros: min_amount,
            min_count,
        };
        let pair = |c: &str, day: &str| (c.to_string(), day.to_string());
        // Two checkouts a day: only A on June 2.
        let twice = [source(SourceKind::Events, &["checkout"], 2, None)];
        assert_eq!(
            days(activity_rows(&inputs, &twice, &cal)),
            [pair("A", "2026-06-02")]
        );
        // One checkout or login: A on 1, 2, 3; B on 2 (its two rows count once).
        let any = [source(SourceKind::Events, &["checkout", "login"], 1, None)];
        assert_eq!(
            days(activity_rows(&inputs, &any, &cal)),
            [
                pair("A", "2026-06-01"),
                pair("A", "2026-06-02"),
                pair("A", "2026-06-03"),
                pair("B", "2026-06-02")
            ]
        );
        // Two checkouts or logins a day: A on June 2, B on June 2 (one of each).
        let two = [source(SourceKind::Events, &["checkout", "login"], 2, None)];
        assert_eq!(
            days(activity_rows(&inputs, &two, &cal)),
            [pair("A", "2026-06-02"), pair("B", "2026-06-02")]
        );
        // Orders of at least 50: B alone.
        let big = [source(SourceKind::Orders, &[], 1, Some(50_000_000))];
        assert_eq!(
            days(activity_rows(&inputs, &big, &cal)),
            [pair("B", "2026-06-05")]
        );
        // The first login: A on June 1, B on June 2.
        let anchors = anchor_days(
            &Anchor::FirstEvent(vec!["login".into()]),
            &[],
            &inputs,
            &cal,
        )
        .rename(["anchor"], ["day"], true);
        assert_eq!(
            days(anchors),
            [pair("A", "2026-06-01"), pair("B", "2026-06-02")]
        );
        // event_type is read only when needed.
        let plain = lifecycle_inputs(&[ActivitySource::EVENTS], None, &[], &[]);
        assert!(!plain.extra.iter().any(|(k, _)| *k == InputKind::Events));
        let keyed = lifecycle_inputs(&twice, None, &[], &[]);
        assert!(keyed
            .extra
            .contains(&(InputKind::Events, vec!["event_type".to_string()])));
    }

    #[test]
    fn activity_sources_and_anchors_from_the_job_file() {
        let parse = |y: &str| serde_yaml::from_str::<Vec<ActivitySource>>(y);
        let s = parse("[orders, { events: { event_type: [b, a, a], min_count: 2 } }, { orders: { min_amount: 9.99 } }]").unwrap();
        assert_eq!(s[0], ActivitySource::ORDERS);
        assert_eq!(s[1].event_types, ["a", "b"]);
        assert_eq!(s[1].min_count, 2);
        assert_eq!(s[2].min_amount_micros, Some(9_990_000));
        for bad in [
            "[{ events: { min_count: 0 } }]",
            "[{ tickets: { event_type: [x] } }]",
            "[{ events: { min_amount: 5 } }]",
            "[{ orders: { min_amount: -1 } }]",
            "[{ events: { event_typ: [x] } }]",
            "[{ events: {}, orders: {} }]",
            "[{ events: { event_type: [] } }]",
            "[calls]",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let a: Anchor = serde_yaml::from_str("{ first_event: [project_created] }").unwrap();
        assert_eq!(a, Anchor::FirstEvent(vec!["project_created".into()]));
        assert_eq!(
            serde_yaml::from_str::<Anchor>("signup").unwrap(),
            Anchor::Signup
        );
        assert!(serde_yaml::from_str::<Anchor>("{ first_event: [] }").is_err());
        assert!(serde_yaml::from_str::<Anchor>("first_login").is_err());
    }
}
