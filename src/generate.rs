//! The `generate` command: a deterministic, realistic synthetic data set of all five inputs.
//!
//! The model, per customer (one seeded ChaCha stream, customers in order, so the output does
//! not depend on batch size):
//! - Sign-ups over `days` days ending 2026-06-30, growing over time (70 % of customers follow a
//!   linearly rising density, 30 % are uniform). Region and plan as segments.
//! - Support tickets as a Poisson process over the customer's life on four channels with
//!   log-normal first-response and resolution times per channel, abandonment (chat/phone
//!   mostly), multi-contact tickets, reopens and escalations. A ticket is a *bad experience*
//!   when it was abandoned, reopened, needed more than one contact or waited past the
//!   channel's service target.
//! - Purchases follow the BG/NBD story (Fader, Hardie & Lee 2005): after a first purchase near
//!   sign-up, purchases arrive at a customer-specific Gamma-distributed rate, and after each
//!   purchase the customer drops out with a Beta-distributed probability, raised by bad
//!   support experiences and lowered by a latent customer affinity that also lifts survey
//!   scores, so cohorts decay and bad support shows up as churn. Order values are
//!   Gamma around a customer-specific mean (Gamma-Gamma); about 4 % of orders are refunded
//!   later (negative amounts).
//! - Surveys: CSAT and CES after some resolved tickets, NPS 30 days after sign-up and every
//!   ~6 months; scores drop with bad experiences.
//! - Product events that thin out exponentially after sign-up and stop after drop-out.
//! - A little dirt on purpose (about 0.1 % duplicate order rows, 0.2 % out-of-scale survey
//!   scores) so `rejected_rows` has something to show, well under the default 1 % threshold.
//!
//! `intensity` (default 1) scales activity for benchmarks: ticket and purchase rates times
//! `intensity`, drop-out per purchase divided by it, product events times its square root.
//!
//! Memory is bounded: customers are generated and written in batches of `BATCH` customers.

use std::fs::{self, File};
use std::path::PathBuf;

use chrono::NaiveDate;
use polars::prelude::*;
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Beta, Distribution, Exp, Gamma, LogNormal, Poisson};

use crate::error::{CxError, Result};
use crate::time::DAY_US;

pub struct GenerateOptions {
    pub out: PathBuf,
    pub customers: u64,
    pub days: u32,
    pub seed: u64,
    /// Activity multiplier (1 = the sample data's rates): ticket and purchase rates scale by
    /// it, the per-purchase drop-out probability divides by it and the product-event mean
    /// scales by its square root, so a benchmark can reach about ten orders per customer
    /// without changing the default bytes.
    pub intensity: f64,
}

const BATCH: u64 = 20_000;
const SEC_US: i64 = 1_000_000;

/// The generator's fixed last day (so a seed always gives the same bytes).
pub fn end_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 6, 30).expect("valid")
}

fn end_us() -> i64 {
    (end_date() + chrono::Duration::days(1))
        .and_hms_opt(0, 0, 0)
        .expect("valid")
        .and_utc()
        .timestamp_micros()
}

#[derive(Default)]
struct Orders {
    id: Vec<String>,
    customer: Vec<String>,
    at: Vec<i64>,
    amount: Vec<f64>,
}

#[derive(Default)]
struct Tickets {
    id: Vec<String>,
    customer: Vec<String>,
    channel: Vec<&'static str>,
    created: Vec<i64>,
    first_response: Vec<Option<i64>>,
    resolved: Vec<Option<i64>>,
    agent: Vec<Option<String>>,
    category: Vec<&'static str>,
    contacts: Vec<Option<i64>>,
    handle: Vec<Option<f64>>,
    reopened: Vec<bool>,
    abandoned: Vec<bool>,
    escalated: Vec<bool>,
}

#[derive(Default)]
struct Surveys {
    id: Vec<String>,
    customer: Vec<String>,
    survey: Vec<&'static str>,
    score: Vec<i64>,
    at: Vec<i64>,
    ticket: Vec<Option<String>>,
    channel: Vec<Option<&'static str>>,
    agent: Vec<Option<String>>,
}

#[derive(Default)]
struct Customers {
    id: Vec<String>,
    signup: Vec<i64>,
    churned: Vec<Option<i64>>,
    region: Vec<&'static str>,
    plan: Vec<&'static str>,
}

#[derive(Default)]
struct Events {
    customer: Vec<String>,
    at: Vec<i64>,
    kind: Vec<&'static str>,
}

#[derive(Default)]
struct Batch {
    orders: Orders,
    tickets: Tickets,
    surveys: Surveys,
    customers: Customers,
    events: Events,
}

/// Running id counters across batches.
#[derive(Default)]
struct Ids {
    order: u64,
    ticket: u64,
    response: u64,
}

struct Channel {
    name: &'static str,
    weight: f64,
    abandon: f64,
    response_median_s: f64,
    response_sigma: f64,
    resolve_median_s: f64,
    handle_median_s: f64,
    target_s: f64,
}

const CHANNELS: [Channel; 4] = [
    Channel {
        name: "email",
        weight: 0.45,
        abandon: 0.02,
        response_median_s: 4.0 * 3600.0,
        response_sigma: 1.0,
        resolve_median_s: 20.0 * 3600.0,
        handle_median_s: 420.0,
        target_s: 24.0 * 3600.0,
    },
    Channel {
        name: "chat",
        weight: 0.30,
        abandon: 0.08,
        response_median_s: 45.0,
        response_sigma: 0.8,
        resolve_median_s: 600.0,
        handle_median_s: 900.0,
        target_s: 120.0,
    },
    Channel {
        name: "phone",
        weight: 0.15,
        abandon: 0.08,
        response_median_s: 25.0,
        response_sigma: 0.7,
        resolve_median_s: 480.0,
        handle_median_s: 480.0,
        target_s: 60.0,
    },
    Channel {
        name: "social",
        weight: 0.10,
        abandon: 0.03,
        response_median_s: 2.0 * 3600.0,
        response_sigma: 1.0,
        resolve_median_s: 10.0 * 3600.0,
        handle_median_s: 300.0,
        target_s: 8.0 * 3600.0,
    },
];

fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [(T, f64)]) -> &'a T {
    let mut u: f64 = rng.gen();
    for (item, w) in items {
        if u < *w {
            return item;
        }
        u -= w;
    }
    &items[items.len() - 1].0
}

fn lognormal(rng: &mut ChaCha8Rng, median: f64, sigma: f64) -> f64 {
    LogNormal::new(median.ln(), sigma)
        .expect("valid")
        .sample(rng)
}

fn gamma(rng: &mut ChaCha8Rng, shape: f64, scale: f64) -> f64 {
    Gamma::new(shape, scale).expect("valid").sample(rng)
}

fn poisson(rng: &mut ChaCha8Rng, mean: f64) -> u64 {
    if mean <= 0.0 {
        return 0;
    }
    Poisson::new(mean).expect("valid").sample(rng) as u64
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    // Box-Muller: stable across rand_distr versions.
    let u1: f64 = rng.gen::<f64>().max(1e-300);
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn clamp_round(x: f64, lo: i64, hi: i64) -> i64 {
    (x.round() as i64).clamp(lo, hi)
}

/// Generates one customer's rows into `b`.
fn customer(
    rng: &mut ChaCha8Rng,
    idx: u64,
    start_us: i64,
    days: u32,
    intensity: f64,
    ids: &mut Ids,
    b: &mut Batch,
) {
    let end = end_us();
    let cid = format!("C{:07}", idx + 1);
    let u: f64 = rng.gen();
    let t = if rng.gen::<f64>() < 0.3 { u } else { u.sqrt() };
    let signup = start_us + (t * days as f64 * DAY_US as f64) as i64;
    let signup = signup.min(end - SEC_US);
    let region = *pick(
        rng,
        &[("NA", 0.4), ("EU", 0.3), ("APAC", 0.2), ("LATAM", 0.1)],
    );
    let plan = *pick(rng, &[("free", 0.5), ("pro", 0.35), ("business", 0.15)]);
    // Latent affinity: happier customers stay longer and answer surveys more kindly.
    let affinity: f64 = normal(rng);

    // Support tickets over the whole window; those after drop-out are removed below.
    let life_days = (end - signup) as f64 / DAY_US as f64;
    let ticket_rate = match plan {
        "free" => 0.004,
        "pro" => 0.007,
        _ => 0.010,
    } * intensity;
    let n_tickets = poisson(rng, life_days * ticket_rate);
    struct T {
        created: i64,
        ch: usize,
        first_response: Option<i64>,
        resolved: Option<i64>,
        contacts: Option<i64>,
        handle: Option<f64>,
        reopened: bool,
        abandoned: bool,
        escalated: bool,
        agent: Option<String>,
        category: &'static str,
        bad: bool,
    }
    let mut tickets: Vec<T> = (0..n_tickets)
        .map(|_| {
            let created = signup + (rng.gen::<f64>() * (end - signup) as f64) as i64;
            let ch = *pick(
                rng,
                &[
                    (0usize, CHANNELS[0].weight),
                    (1, CHANNELS[1].weight),
                    (2, CHANNELS[2].weight),
                    (3, CHANNELS[3].weight),
                ],
            );
            let c = &CHANNELS[ch];
            let abandoned = rng.gen::<f64>() < c.abandon;
            let category = *pick(
                rng,
                &[
                    ("billing", 0.3),
                    ("shipping", 0.25),
                    ("product", 0.3),
                    ("account", 0.15),
                ],
            );
            if abandoned {
                return T {
                    created,
                    ch,
                    first_response: None,
                    resolved: None,
                    contacts: None,
                    handle: None,
                    reopened: false,
                    abandoned,
                    escalated: false,
                    agent: None,
                    category,
                    bad: true,
                };
            }
            let resp_s = lognormal(rng, c.response_median_s, c.response_sigma);
            let first_response = created + (resp_s * SEC_US as f64) as i64;
            let resolved = if rng.gen::<f64>() < 0.92 {
                Some(
                    first_response
                        + (lognormal(rng, c.resolve_median_s, 1.0) * SEC_US as f64) as i64,
                )
            } else {
                None
            };
            let contacts = if rng.gen::<f64>() < 0.05 {
                None
            } else {
                let mut k = 1;
                while rng.gen::<f64>() < 0.35 && k < 8 {
                    k += 1;
                }
                Some(k)
            };
            let handle = if rng.gen::<f64>() < 0.03 {
                None
            } else {
                Some((lognormal(rng, c.handle_median_s, 0.6) * 10.0).round() / 10.0)
            };
            let reopened = resolved.is_some() && rng.gen::<f64>() < 0.07;
            let escalated = rng.gen::<f64>() < 0.05;
            let agent = Some(format!("A{:03}", rng.gen_range(1..=40)));
            let bad = reopened || contacts.unwrap_or(1) > 1 || resp_s > c.target_s;
            T {
                created,
                ch,
                first_response: Some(first_response),
                resolved,
                contacts,
                handle,
                reopened,
                abandoned,
                escalated,
                agent,
                category,
                bad,
            }
        })
        .collect();
    tickets.sort_by_key(|t| t.created);
    let early: Vec<&T> = tickets.iter().take(3).collect();
    let bad_share = if early.is_empty() {
        0.0
    } else {
        early.iter().filter(|t| t.bad).count() as f64 / early.len() as f64
    };

    // Purchases: BG/NBD with drop-out raised by bad support.
    let rate_per_day = gamma(rng, 0.9, 1.0 / 30.0) * intensity;
    let p_drop = Beta::new(1.2, 5.0).expect("valid").sample(rng) / intensity;
    let p_drop = (p_drop * (1.0 + 3.0 * bad_share) * (-0.6 * affinity).exp()).min(0.95);
    let spend_mean = gamma(rng, 3.0, 20.0);
    let mut purchases: Vec<i64> = Vec::new();
    let mut dropped_at: Option<i64> = None;
    if rng.gen::<f64>() < 0.75 {
        let mut at = signup + (Exp::new(0.5).expect("valid").sample(rng) * DAY_US as f64) as i64;
        while at < end {
            purchases.push(at);
            if rng.gen::<f64>() < p_drop {
                dropped_at = Some(at);
                break;
            }
            let gap_days = Exp::new(rate_per_day.max(1e-4)).expect("valid").sample(rng);
            at += (gap_days * DAY_US as f64) as i64;
        }
    } else {
        // Never buys: gone within a couple of months.
        dropped_at = Some(signup + (rng.gen::<f64>() * 60.0 * DAY_US as f64) as i64);
    }
    let alive_until = dropped_at.map(|d| d + 30 * DAY_US).unwrap_or(end);
    tickets.retain(|t| t.created < alive_until);

    for at in &purchases {
        ids.order += 1;
        let amount = (gamma(rng, 4.0, spend_mean / 4.0) * 100.0).round() / 100.0 + 1.0;
        let oid = format!("O{:09}", ids.order);
        let copies = if rng.gen::<f64>() < 0.001 { 2 } else { 1 };
        for _ in 0..copies {
            b.orders.id.push(oid.clone());
            b.orders.customer.push(cid.clone());
            b.orders.at.push(*at);
            b.orders.amount.push(amount);
        }
        if rng.gen::<f64>() < 0.04 {
            let refund_at = at + rng.gen_range(1..=20) * DAY_US + rng.gen_range(0..86_400) * SEC_US;
            if refund_at < end {
                ids.order += 1;
                let share = if rng.gen::<f64>() < 0.7 { 1.0 } else { 0.5 };
                b.orders.id.push(format!("O{:09}", ids.order));
                b.orders.customer.push(cid.clone());
                b.orders.at.push(refund_at);
                b.orders
                    .amount
                    .push(-((amount * share * 100.0).round() / 100.0));
            }
        }
    }

    let push_survey = |rng: &mut ChaCha8Rng,
                       b: &mut Batch,
                       ids: &mut Ids,
                       survey: &'static str,
                       score: i64,
                       at: i64,
                       ticket: Option<String>,
                       channel: Option<&'static str>,
                       agent: Option<String>| {
        if at >= end {
            return;
        }
        ids.response += 1;
        let dirty = rng.gen::<f64>() < 0.002;
        let score = if dirty {
            match survey {
                "nps" => 11,
                "csat" => 6,
                _ => 0,
            }
        } else {
            score
        };
        b.surveys.id.push(format!("R{:09}", ids.response));
        b.surveys.customer.push(cid.clone());
        b.surveys.survey.push(survey);
        b.surveys.score.push(score);
        b.surveys.at.push(at);
        b.surveys.ticket.push(ticket);
        b.surveys.channel.push(channel);
        b.surveys.agent.push(agent);
    };

    let mut bad_so_far = 0usize;
    let mut seen = 0usize;
    let mut ticket_bad_at: Vec<(i64, bool)> = Vec::new();
    for t in &tickets {
        ids.ticket += 1;
        let tid = format!("T{:09}", ids.ticket);
        let ch = CHANNELS[t.ch].name;
        b.tickets.id.push(tid.clone());
        b.tickets.customer.push(cid.clone());
        b.tickets.channel.push(ch);
        b.tickets.created.push(t.created);
        // Anything after the end of the window has not happened yet.
        b.tickets
            .first_response
            .push(t.first_response.filter(|x| *x < end));
        b.tickets.resolved.push(t.resolved.filter(|x| *x < end));
        b.tickets.agent.push(t.agent.clone());
        b.tickets.category.push(t.category);
        b.tickets.contacts.push(t.contacts);
        b.tickets.handle.push(t.handle);
        b.tickets.reopened.push(t.reopened);
        b.tickets.abandoned.push(t.abandoned);
        b.tickets.escalated.push(t.escalated);
        seen += 1;
        bad_so_far += t.bad as usize;
        ticket_bad_at.push((t.created, t.bad));
        if let Some(res) = t.resolved {
            let after = res + (rng.gen::<f64>() * 2.0 * DAY_US as f64) as i64;
            let badf = if t.bad { 1.0 } else { 0.0 };
            if rng.gen::<f64>() < 0.3 {
                let s = clamp_round(4.3 - 1.8 * badf + 0.4 * affinity + 0.7 * normal(rng), 1, 5);
                push_survey(
                    rng,
                    b,
                    ids,
                    "csat",
                    s,
                    after,
                    Some(tid.clone()),
                    Some(ch),
                    t.agent.clone(),
                );
            }
            if rng.gen::<f64>() < 0.15 {
                let s = clamp_round(5.7 - 2.2 * badf + 1.0 * normal(rng), 1, 7);
                push_survey(
                    rng,
                    b,
                    ids,
                    "ces",
                    s,
                    after + 60 * SEC_US,
                    Some(tid.clone()),
                    Some(ch),
                    t.agent.clone(),
                );
            }
        }
    }
    let _ = (bad_so_far, seen);

    // NPS at day 30 and then about every six months while the customer is around.
    let mut at = signup + 30 * DAY_US + rng.gen_range(0..86_400) * SEC_US;
    let mut first = true;
    while at < alive_until.min(end) {
        if rng.gen::<f64>() < if first { 0.35 } else { 0.3 } {
            let past: Vec<bool> = ticket_bad_at
                .iter()
                .filter(|(c, _)| *c < at)
                .map(|x| x.1)
                .collect();
            let bad = if past.is_empty() {
                0.0
            } else {
                past.iter().filter(|x| **x).count() as f64 / past.len() as f64
            };
            let s = clamp_round(8.0 - 4.0 * bad + 1.5 * affinity + 1.0 * normal(rng), 0, 10);
            let channel = if rng.gen::<f64>() < 0.6 {
                "email"
            } else {
                "in_app"
            };
            push_survey(rng, b, ids, "nps", s, at, None, Some(channel), None);
        }
        first = false;
        at += (150 + rng.gen_range(0..60)) * DAY_US + rng.gen_range(0..86_400) * SEC_US;
    }

    // Product events: an early burst that decays, thinning out, none after drop-out.
    let mean_events = (12.0 + 25.0 * rng.gen::<f64>()) * intensity.sqrt();
    let n_events = poisson(rng, mean_events);
    let decay = Exp::new(1.0 / 40.0).expect("valid");
    for _ in 0..n_events {
        let offset_days = if rng.gen::<f64>() < 0.75 {
            decay.sample(rng)
        } else {
            rng.gen::<f64>() * life_days
        };
        let at = signup + (offset_days * DAY_US as f64) as i64;
        if at >= alive_until.min(end) {
            continue;
        }
        b.events.customer.push(cid.clone());
        b.events.at.push(at);
        b.events.kind.push(*pick(
            rng,
            &[
                ("login", 0.5),
                ("view", 0.3),
                ("search", 0.15),
                ("checkout", 0.05),
            ],
        ));
    }

    let churned = match (plan, dropped_at) {
        ("free", _) | (_, None) => None,
        (_, Some(d)) => Some(d + rng.gen_range(0..60) * DAY_US).filter(|x| *x < end),
    };
    b.customers.id.push(cid);
    b.customers.signup.push(signup);
    b.customers.churned.push(churned);
    b.customers.region.push(region);
    b.customers.plan.push(plan);
}

fn ts(name: &str, v: Vec<i64>) -> PolarsResult<Column> {
    Column::new(name.into(), v).cast(&DataType::Datetime(
        TimeUnit::Microseconds,
        Some(TimeZone::UTC),
    ))
}

fn ts_opt(name: &str, v: Vec<Option<i64>>) -> PolarsResult<Column> {
    Column::new(name.into(), v).cast(&DataType::Datetime(
        TimeUnit::Microseconds,
        Some(TimeZone::UTC),
    ))
}

impl Batch {
    fn frames(self) -> PolarsResult<[(&'static str, DataFrame); 5]> {
        let Batch {
            orders: o,
            tickets: t,
            surveys: s,
            customers: c,
            events: e,
        } = self;
        Ok([
            (
                "orders",
                DataFrame::new_infer_height(vec![
                    Column::new("order_id".into(), o.id),
                    Column::new("customer_id".into(), o.customer),
                    ts("ordered_at", o.at)?,
                    Column::new("amount".into(), o.amount),
                ])?,
            ),
            (
                "tickets",
                DataFrame::new_infer_height(vec![
                    Column::new("ticket_id".into(), t.id),
                    Column::new("customer_id".into(), t.customer),
                    Column::new("channel".into(), t.channel),
                    ts("created_at", t.created)?,
                    ts_opt("first_response_at", t.first_response)?,
                    ts_opt("resolved_at", t.resolved)?,
                    Column::new("agent_id".into(), t.agent),
                    Column::new("category".into(), t.category),
                    Column::new("contacts".into(), t.contacts),
                    Column::new("handle_time_s".into(), t.handle),
                    Column::new("reopened".into(), t.reopened),
                    Column::new("abandoned".into(), t.abandoned),
                    Column::new("escalated".into(), t.escalated),
                ])?,
            ),
            (
                "surveys",
                DataFrame::new_infer_height(vec![
                    Column::new("response_id".into(), s.id),
                    Column::new("customer_id".into(), s.customer),
                    Column::new("survey".into(), s.survey),
                    Column::new("score".into(), s.score),
                    ts("submitted_at", s.at)?,
                    Column::new("ticket_id".into(), s.ticket),
                    Column::new("channel".into(), s.channel),
                    Column::new("agent_id".into(), s.agent),
                ])?,
            ),
            (
                "customers",
                DataFrame::new_infer_height(vec![
                    Column::new("customer_id".into(), c.id),
                    ts("signup_at", c.signup)?,
                    ts_opt("churned_at", c.churned)?,
                    Column::new("region".into(), c.region),
                    Column::new("plan".into(), c.plan),
                ])?,
            ),
            (
                "events",
                DataFrame::new_infer_height(vec![
                    Column::new("customer_id".into(), e.customer),
                    ts("event_at", e.at)?,
                    Column::new("event_type".into(), e.kind),
                ])?,
            ),
        ])
    }
}

/// Writes the data set; returns rows written per input.
pub fn generate(opts: &GenerateOptions) -> Result<Vec<(&'static str, u64)>> {
    if opts.days == 0 {
        return Err(CxError::Usage("--days must be at least 1".into()));
    }
    if !(opts.intensity.is_finite() && opts.intensity > 0.0) {
        return Err(CxError::Usage(
            "--intensity must be a positive number".into(),
        ));
    }
    fs::create_dir_all(&opts.out)
        .map_err(|e| CxError::internal(format!("creating {}", opts.out.display()), e))?;
    let gen_err = |e: PolarsError| CxError::internal("generating data", e);
    let start_us = end_us() - opts.days as i64 * DAY_US;
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut ids = Ids::default();
    let mut writers: Vec<(
        &'static str,
        PathBuf,
        polars::io::parquet::write::BatchedWriter<File>,
    )> = Vec::new();
    let mut counts: Vec<(&'static str, u64)> = Vec::new();
    let mut idx = 0;
    loop {
        let n = BATCH.min(opts.customers - idx);
        let mut batch = Batch::default();
        for i in idx..idx + n {
            customer(
                &mut rng,
                i,
                start_us,
                opts.days,
                opts.intensity,
                &mut ids,
                &mut batch,
            );
        }
        idx += n;
        let frames = batch.frames().map_err(gen_err)?;
        if writers.is_empty() {
            for (name, df) in &frames {
                // Written under a temporary name and renamed at the end: no half-written inputs.
                let path = opts.out.join(format!(".{name}.parquet.tmp"));
                let file = File::create(&path)
                    .map_err(|e| CxError::internal(format!("creating {}", path.display()), e))?;
                let w = ParquetWriter::new(file)
                    .with_compression(ParquetCompression::Zstd(None))
                    .batched(df.schema())
                    .map_err(gen_err)?;
                writers.push((name, path, w));
                counts.push((name, 0));
            }
        }
        for (i, (_, df)) in frames.iter().enumerate() {
            if df.height() > 0 {
                writers[i].2.write_batch(df).map_err(gen_err)?;
            }
            counts[i].1 += df.height() as u64;
        }
        if idx >= opts.customers {
            break;
        }
    }
    for (name, tmp, w) in writers {
        w.finish().map_err(gen_err)?;
        let path = opts.out.join(format!("{name}.parquet"));
        fs::rename(&tmp, &path)
            .map_err(|e| CxError::internal(format!("renaming to {}", path.display()), e))?;
    }
    Ok(counts)
}
