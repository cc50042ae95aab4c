//! Input contracts: which columns each of the five inputs must (or may) have, their logical
//! types, which lossless coercions are accepted, which column identifies a row, and the value
//! rules a row must meet (each broken rule is a rejection reason).
//!
//! Shared by `validate` (schema checks only) and `inputs` (reading, coercion and cleaning).

use std::fmt;

use polars::prelude::DataType;

/// The five inputs a job can declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum InputKind {
    Orders,
    Tickets,
    Surveys,
    Customers,
    Events,
}

impl InputKind {
    pub const ALL: [InputKind; 5] = [
        InputKind::Orders,
        InputKind::Tickets,
        InputKind::Surveys,
        InputKind::Customers,
        InputKind::Events,
    ];

    pub fn name(self) -> &'static str {
        match self {
            InputKind::Orders => "orders",
            InputKind::Tickets => "tickets",
            InputKind::Surveys => "surveys",
            InputKind::Customers => "customers",
            InputKind::Events => "events",
        }
    }

    pub fn contract(self) -> &'static Contract {
        match self {
            InputKind::Orders => &ORDERS,
            InputKind::Tickets => &TICKETS,
            InputKind::Surveys => &SURVEYS,
            InputKind::Customers => &CUSTOMERS,
            InputKind::Events => &EVENTS,
        }
    }
}

impl fmt::Display for InputKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Logical column types of the contracts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColType {
    /// Identifier: strings or integers of any width, stored as String.
    Id,
    /// Free text / category: String or Categorical, stored as String.
    Text,
    /// Instant: Datetime of any unit, with or without zone (naive = UTC), or Date (= midnight
    /// UTC); stored as Datetime(us, "UTC").
    Timestamp,
    /// Any integer or float width, or a Decimal (to the nearest double), stored as Float64.
    Float,
    /// Money: a float, an integer (of minor units when the job declares a `scale`), or a
    /// Decimal of any precision up to 38, read exactly (`inputs::money`); stored as Float64.
    Money,
    /// Any integer width, stored as Int64.
    Int,
    /// Boolean only.
    Bool,
}

impl ColType {
    pub fn describe(self) -> &'static str {
        match self {
            ColType::Id => "an id (string or integer)",
            ColType::Text => "a string",
            ColType::Timestamp => "a timestamp (Datetime or Date)",
            ColType::Float => "a number (float, integer or Decimal)",
            ColType::Money => "money (float, integer or Decimal)",
            ColType::Int => "an integer",
            ColType::Bool => "a boolean",
        }
    }

    /// Whether a file column of `dtype` can be coerced to this type without loss.
    pub fn accepts(self, dtype: &DataType) -> bool {
        use DataType as D;
        if matches!(dtype, D::Null) {
            return true; // an all-null column; nullability is checked row by row
        }
        match self {
            ColType::Id => dtype.is_integer() || is_text(dtype),
            ColType::Text => is_text(dtype),
            ColType::Timestamp => matches!(dtype, D::Datetime(_, _) | D::Date),
            ColType::Float | ColType::Money => {
                dtype.is_integer() || dtype.is_float() || dtype.is_decimal()
            }
            ColType::Int => dtype.is_integer(),
            ColType::Bool => matches!(dtype, D::Boolean),
        }
    }
}

fn is_text(dtype: &DataType) -> bool {
    matches!(
        dtype,
        DataType::String | DataType::Categorical(_, _) | DataType::Enum(_, _)
    )
}

#[derive(Debug)]
pub struct ColSpec {
    pub name: &'static str,
    pub ty: ColType,
    /// Nullable columns may also be absent from the file (they are then all null).
    pub nullable: bool,
    /// Whether a metric definition reads it. Columns no metric reads are still type-checked
    /// against the file's schema, but loaded only when a pipeline's `by` names them: an unused
    /// text column of the largest input would otherwise cost seconds and gigabytes at scale.
    pub read: bool,
}

#[derive(Debug)]
pub struct Contract {
    pub columns: &'static [ColSpec],
    /// Row identifier: duplicates after the first occurrence are rejected.
    pub key: Option<&'static str>,
    /// Whether a metric reads the key after loading. When none does (orders), the reader
    /// drops it once the duplicate check and the rejection examples have used it: at 10M
    /// orders an id column is about 160 MB held for the whole run for nothing.
    pub key_read: bool,
    /// When the row came into existence; rows after the as-of cutoff are left out.
    pub time: &'static str,
    /// Value rules, in the order their reasons are given (the first broken one names a row's
    /// rejection). Every timestamp column also has the supported range (`time::MIN_TIMESTAMP_US`),
    /// checked before these.
    pub rules: &'static [Rule],
}

/// The largest money amount, in absolute value, that an order may have: 10^15 currency units.
/// Amounts are summed exactly as whole units and millionths (`pipelines::common`); the bound
/// keeps every amount's whole units far inside a 64-bit integer and every sum of them inside
/// the 128-bit sums, so no money total can overflow.
pub const MAX_ABS_AMOUNT: f64 = 1e15;

/// The longest handle time accepted, in seconds (about 31.7 years): a longer one is a unit or
/// export error, and would dominate every mean it enters.
pub const MAX_HANDLE_TIME_S: f64 = 1e9;

/// One value rule of a contract. The reason a row breaking it gets is given with each.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rule {
    /// `non-finite <column>`: NaN or an infinity.
    Finite(&'static str),
    /// `negative <column>`.
    NonNegative(&'static str),
    /// `<column> out of range`: |value| must be below the bound.
    AbsBelow(&'static str, f64),
    /// `<column> out of range`: the value must be at most the bound.
    AtMost(&'static str, f64),
    /// `<later> before <earlier>`: a nullable later timestamp may not precede the earlier one.
    NotBefore {
        later: &'static str,
        earlier: &'static str,
    },
    /// `unknown survey type` and `score out of scale`, with the job's survey scales.
    SurveyScale,
}

impl Rule {
    /// The rejection reason of a row that breaks the rule (`SurveyScale` has two).
    pub fn reason(self) -> String {
        match self {
            Rule::Finite(c) => format!("non-finite {c}"),
            Rule::NonNegative(c) => format!("negative {c}"),
            Rule::AbsBelow(c, _) | Rule::AtMost(c, _) => format!("{c} out of range"),
            Rule::NotBefore { later, earlier } => format!("{later} before {earlier}"),
            Rule::SurveyScale => "unknown survey type, score out of scale".into(),
        }
    }
}

impl Contract {
    pub fn column(&self, name: &str) -> Option<&ColSpec> {
        self.columns.iter().find(|c| c.name == name)
    }
}

const fn req(name: &'static str, ty: ColType) -> ColSpec {
    ColSpec {
        name,
        ty,
        nullable: false,
        read: true,
    }
}

const fn opt(name: &'static str, ty: ColType) -> ColSpec {
    ColSpec {
        name,
        ty,
        nullable: true,
        read: true,
    }
}

/// An optional column that no metric reads (see [`ColSpec::read`]).
const fn unread(name: &'static str, ty: ColType) -> ColSpec {
    ColSpec {
        name,
        ty,
        nullable: true,
        read: false,
    }
}

use ColType::*;

static ORDERS: Contract = Contract {
    columns: &[
        req("order_id", Id),
        req("customer_id", Id),
        req("ordered_at", Timestamp),
        req("amount", Money),
    ],
    key: Some("order_id"),
    key_read: false,
    time: "ordered_at",
    rules: &[
        Rule::Finite("amount"),
        Rule::AbsBelow("amount", MAX_ABS_AMOUNT),
    ],
};

static TICKETS: Contract = Contract {
    columns: &[
        req("ticket_id", Id),
        req("customer_id", Id),
        req("channel", Text),
        req("created_at", Timestamp),
        opt("first_response_at", Timestamp),
        opt("resolved_at", Timestamp),
        opt("agent_id", Id),
        opt("category", Text),
        opt("contacts", Int),
        opt("handle_time_s", Float),
        opt("reopened", Bool),
        opt("abandoned", Bool),
        opt("escalated", Bool),
    ],
    key: Some("ticket_id"),
    key_read: true,
    time: "created_at",
    rules: &[
        Rule::NotBefore {
            later: "first_response_at",
            earlier: "created_at",
        },
        Rule::NotBefore {
            later: "resolved_at",
            earlier: "created_at",
        },
        Rule::Finite("handle_time_s"),
        Rule::NonNegative("handle_time_s"),
        Rule::AtMost("handle_time_s", MAX_HANDLE_TIME_S),
        Rule::NonNegative("contacts"),
    ],
};

static SURVEYS: Contract = Contract {
    columns: &[
        req("response_id", Id),
        req("customer_id", Id),
        req("survey", Text),
        req("score", Int),
        req("submitted_at", Timestamp),
        opt("ticket_id", Id),
        opt("channel", Text),
        opt("agent_id", Id),
    ],
    key: Some("response_id"),
    key_read: true,
    time: "submitted_at",
    rules: &[Rule::SurveyScale],
};

static CUSTOMERS: Contract = Contract {
    columns: &[
        req("customer_id", Id),
        opt("signup_at", Timestamp),
        opt("churned_at", Timestamp),
    ],
    key: Some("customer_id"),
    key_read: true,
    time: "signup_at",
    rules: &[],
};

static EVENTS: Contract = Contract {
    columns: &[
        req("customer_id", Id),
        req("event_at", Timestamp),
        unread("event_type", Text),
    ],
    key: None,
    key_read: false,
    time: "event_at",
    rules: &[],
};
