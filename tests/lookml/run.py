"""The Looker model from the CLI (docs/looker.md): `cxmetrics lookml` on a run of the sample
data, every file parsed with the `lkml` package, and every measure's SQL run in DuckDB:

- over each single row it gives the row's own column (the numerator and denominator wiring);
- over a month of daily `survey_scores` rows and a week of daily `support_kpis` rows it gives
  the monthly and weekly run's row (NPS, CSAT, CES, mean score, every support rate and mean);
- over daily activation cohorts it gives the monthly cohort run's rate;
- over the `by` segments of cohort_retention, churn and activation it gives the `all` row;
- over every RFM segment, every value of a cx_impact driver and every clv_validation bucket it
  gives the overall figures, recomputed from customer_ltv, customer_cx and the `all` bucket.

Usage: python3 tests/lookml/run.py CXMETRICS_BIN
"""
import math
import os
import re
import subprocess
import sys
import tempfile

import duckdb
import lkml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = sys.argv[1]
failures = []
checked = {"values": 0}


def check(ok, what):
    if not ok:
        print("FAIL " + what)
        failures.append(what)


def close(a, b):
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)


BUSINESS = """    business_hours:
      timezone: America/New_York
      schedule:
        mon: ["09:00-12:30", "13:30-18:00"]
        tue: ["09:00-18:00"]
        wed: ["09:00-18:00"]
        thu: ["09:00-18:00"]
        fri: ["09:00-17:00"]
      holidays: [2025-12-25, 2026-01-01]
"""


def job(d, name, survey_period, support_period, cohort_period):
    data = os.path.join(ROOT, "sample-data")
    text = f"""name: {name}
as_of: 2026-06-30
timezone: America/New_York
inputs:
  orders:    {{ path: {data}/orders.parquet }}
  tickets:   {{ path: {data}/tickets.parquet }}
  surveys:   {{ path: {data}/surveys.parquet }}
  customers: {{ path: {data}/customers.parquet }}
  events:    {{ path: {data}/events.parquet }}
pipelines:
  survey_scores: {{ period: {survey_period}, by: [channel] }}
  support_kpis:
    period: {support_period}
    by: [channel]
    sla_first_response: {{ chat: 60s, phone: 30s, email: 4h, default: 24h }}
{BUSINESS}  cohort_retention: {{ period: month, by: [region] }}
  churn: {{ period: month, inactive_after_days: 90, by: [plan] }}
  activation: {{ days: [1, 7, 30], by: [plan], cohort_period: {cohort_period} }}
  ltv_segments: {{ unit: week, horizon_months: 12, by: [region], holdout_days: 180 }}
  cx_impact: {{ window_days: 90, inactive_after_days: 90, by: [plan], customer_table: true }}
output:
  dir: {d}/out-{name}
"""
    path = os.path.join(d, name + ".yaml")
    open(path, "w").write(text)
    p = subprocess.run([BIN, "run", path], capture_output=True, text=True)
    check(p.returncode == 0, f"run {name}: {p.stderr[-500:]}")
    return os.path.join(d, "out-" + name)


def parse_views(folder):
    views, explores, datagroups = {}, {}, {}
    for f in sorted(os.listdir(folder)):
        parsed = lkml.load(open(os.path.join(folder, f)).read())
        for v in parsed.get("views", []):
            views[v["name"]] = v
        for e in parsed.get("explores", []):
            explores[e["name"]] = e
        for g in parsed.get("datagroups", []):
            datagroups[g["name"]] = g
    return views, explores, datagroups


def measure_sql(view, name, seen=()):
    """The SQL of measure `name` over the rows of a FROM clause (Looker's own expansion)."""
    m = next(x for x in view.get("measures", []) if x["name"] == name)
    assert name not in seen, f"cycle at {name}"

    def resolve(sql):
        sql = sql.replace("${TABLE}", "t")
        return re.sub(r"\$\{(\w+)\}", lambda g: measure_sql(view, g.group(1), seen + (name,)), sql)

    if m["type"] == "count":
        return "COUNT(*)"
    inner = resolve(m["sql"])
    return {"sum": f"SUM({inner})", "max": f"MAX({inner})", "number": f"({inner})"}[m["type"]]


def derived(view):
    return [m["name"] for m in view.get("measures", []) if m["type"] == "number"]


def compare_groups(con, what, sql_got, sql_want, keys):
    got = {tuple(r[:keys]): r[keys:] for r in con.sql(sql_got).fetchall()}
    want = {tuple(r[:keys]): r[keys:] for r in con.sql(sql_want).fetchall()}
    check(set(got) == set(want), f"{what}: groups differ ({len(got)} vs {len(want)}: "
          f"{sorted(set(got) ^ set(want))[:3]})")
    bad = [(k, g, w) for k in got.keys() & want.keys() for g, w in zip(got[k], want[k]) if not close(g, w)]
    check(not bad, f"{what}: {len(bad)} values differ, e.g. {bad[:3]}")
    checked["values"] += sum(len(v) for v in want.values())


with tempfile.TemporaryDirectory() as d:
    fine = job(d, "fine", "day", "day", "day")
    coarse = job(d, "coarse", "month", "week", "month")
    lk = os.path.join(d, "lookml")
    p = subprocess.run([BIN, "lookml", os.path.join(d, "fine.yaml"), "--out", lk, "--schema", "analytics"],
                       capture_output=True, text=True)
    check(p.returncode == 0, f"cxmetrics lookml: {p.stderr}")
    views, explores, datagroups = parse_views(lk)
    tables = sorted(f[:-8] for f in os.listdir(fine) if f.endswith(".parquet"))
    check(sorted(views) == tables, f"a view per table: {sorted(views)} vs {tables}")
    check(sorted(explores) == tables, "an explore per view")
    check("cxmetrics_runs" in datagroups and "max(finished_at)" in datagroups["cxmetrics_runs"]["sql_trigger"]
          and "analytics.cxmetrics_runs" in datagroups["cxmetrics_runs"]["sql_trigger"], "the run-log datagroup")
    for name, v in views.items():
        check(v["sql_table_name"].strip() == f"analytics.{name}", f"{name}: sql_table_name")
    check(explores["support_kpis"]["always_filter"]["filters__all"][0][0]["support_kpis.dimension"] == "all",
          "the breakdown filter defaults to all")
    for name in ("survey_scores", "support_kpis", "cohort_retention", "churn", "activation"):
        groups = {g["name"]: g for g in views[name].get("dimension_groups", [])}
        first = "cohort" if name in ("cohort_retention", "activation") else "period"
        check(groups.get(first, {}).get("type") == "time" and "month" in groups[first]["timeframes"],
              f"{name}.{first} is a time dimension group")
    row_level = {x["name"] for x in views["support_kpis"]["dimensions"]}
    check({"first_response_median_s", "resolution_p90_s"} <= row_level, "medians and p90 are row-level dimensions")
    check(not ({"fcr_rate", "tickets"} & row_level), "rates and counts are measures, not dimensions")

    con = duckdb.connect()
    # 1. Every derived measure over one row is the row's own column.
    for name in tables:
        v = views[name]
        path = os.path.join(fine, name + ".parquet")
        cols = [c for c, in con.sql(f"SELECT column_name FROM (DESCRIBE SELECT * FROM '{path}')").fetchall()]
        for m in derived(v):
            if m not in cols:
                continue
            sql = measure_sql(v, m)
            rows = con.sql(f"SELECT {sql} AS got, any_value(t.{m}) AS want FROM "
                           f"(SELECT *, row_number() OVER () AS __r FROM '{path}') t GROUP BY __r").fetchall()
            bad = [r for r in rows if not close(r[0], r[1])]
            check(not bad, f"{name}.{m} over one row: {len(bad)} of {len(rows)} differ, e.g. {bad[:2]}")
            checked["values"] += len(rows)

    def over(view, measures):
        return ", ".join(f"{measure_sql(views[view], m)} AS {m}" for m in measures)

    # 2. A month of daily survey rows, a week of daily ticket rows.
    ms = derived(views["survey_scores"])
    compare_groups(con, "survey_scores: month of days",
                   f"SELECT date_trunc('month', period)::DATE, survey, dimension, dimension_value, "
                   f"{over('survey_scores', ms)} FROM '{fine}/survey_scores.parquet' t GROUP BY ALL",
                   f"SELECT period, survey, dimension, dimension_value, {', '.join(ms)} "
                   f"FROM '{coarse}/survey_scores.parquet'", 4)
    ms = derived(views["support_kpis"])
    check(len(ms) == 12, f"12 support_kpis measures ({ms})")
    compare_groups(con, "support_kpis: week of days",
                   f"SELECT date_trunc('week', period)::DATE, dimension, dimension_value, "
                   f"{over('support_kpis', ms)} FROM '{fine}/support_kpis.parquet' t GROUP BY ALL",
                   f"SELECT period, dimension, dimension_value, {', '.join(ms)} "
                   f"FROM '{coarse}/support_kpis.parquet'", 3)
    # 3. Daily activation cohorts make the monthly cohort.
    compare_groups(con, "activation: month of daily cohorts",
                   f"SELECT date_trunc('month', cohort)::DATE, day, dimension, dimension_value, "
                   f"{over('activation', ['rate'])} FROM '{fine}/activation.parquet' t GROUP BY ALL",
                   f"SELECT cohort, day, dimension, dimension_value, rate FROM '{coarse}/activation.parquet'", 4)
    # 4. The `by` segments make the `all` row.
    for name, keys in (("cohort_retention", "cohort, period"), ("churn", "period"), ("activation", "cohort, day")):
        ms = derived(views[name])
        compare_groups(con, f"{name}: segments make all",
                       f"SELECT {keys}, {over(name, ms)} FROM '{fine}/{name}.parquet' t "
                       f"WHERE dimension <> 'all' GROUP BY ALL",
                       f"SELECT {keys}, {', '.join(ms)} FROM '{fine}/{name}.parquet' WHERE dimension = 'all'",
                       len(keys.split(", ")))
    # 5. Snapshot tables: all segments make the overall figures of the per-customer tables.
    compare_groups(con, "ltv_segments: every segment of each dimension value",
                   f"SELECT dimension, dimension_value, "
                   f"{over('ltv_segments', ['share_of_customers', 'share_of_revenue'])} "
                   f"FROM '{fine}/ltv_segments.parquet' t GROUP BY ALL",
                   f"SELECT DISTINCT dimension, dimension_value, 1.0, 1.0 FROM '{fine}/ltv_segments.parquet'", 2)
    compare_groups(con, "ltv_segments: all segments are customer_ltv's means",
                   f"SELECT {over('ltv_segments', ['avg_revenue', 'avg_orders', 'avg_recency_days', 'avg_predicted_clv', 'avg_p_alive'])} "
                   f"FROM '{fine}/ltv_segments.parquet' t WHERE dimension = 'all'",
                   f"SELECT avg(revenue), avg(orders), avg(recency_days), avg(predicted_clv), avg(p_alive) "
                   f"FROM '{fine}/customer_ltv.parquet'", 0)
    for driver in ("nps_category", "csat", "ticket_volume", "first_contact_resolution", "first_response_sla"):
        compare_groups(con, f"cx_impact: every value of {driver} is customer_cx",
                       f"SELECT {over('cx_impact', ['share_of_customers', 'avg_revenue', 'churned_share', 'repurchase_rate', 'revenue_after_per_customer'])} "
                       f"FROM '{fine}/cx_impact.parquet' t WHERE dimension = 'all' AND driver = '{driver}'",
                       f"SELECT 1.0, avg(revenue), avg((lifecycle_state = 'churned')::INT), "
                       f"avg({driver}_repurchased::INT) FILTER (WHERE {driver}_outcome_window), "
                       f"avg({driver}_revenue_after) FILTER (WHERE {driver}_outcome_window) "
                       f"FROM '{fine}/customer_cx.parquet'", 0)
    ms = derived(views["clv_validation"])
    compare_groups(con, "clv_validation: the buckets make `all`",
                   f"SELECT {over('clv_validation', ms)} FROM '{fine}/clv_validation.parquet' t "
                   f"WHERE frequency_bucket <> 'all'",
                   f"SELECT {', '.join(ms)} FROM '{fine}/clv_validation.parquet' WHERE frequency_bucket = 'all'", 0)
    # 6. Without a run there is no model to write.
    p = subprocess.run([BIN, "lookml", os.path.join(d, "fine.yaml"), "--out", lk, "--schema", "analytics",
                        "--output-dir", os.path.join(d, "never-run")], capture_output=True, text=True)
    check(p.returncode == 3 and "run the job first" in p.stderr, f"no run: exit 3 ({p.returncode}: {p.stderr})")
    p = subprocess.run([BIN, "lookml", os.path.join(d, "fine.yaml"), "--out", lk, "--schema", "x; DROP"],
                       capture_output=True, text=True)
    check(p.returncode == 2, f"a schema that is not a name: exit 2 ({p.returncode})")

print(f"lookml: {len(views)} views parsed, {checked['values']} measure values checked, "
      f"{len(failures)} problems")
sys.exit(1 if failures else 0)
