"""Drives the cross-checks: writes a job per case, runs cxmetrics, compares each table with its
DuckDB implementation. Usage: python3 tests/crosscheck/run.py CXMETRICS_BIN DATA_DIR"""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def source_yaml(spec):
    """An activity source or anchor written `kind[:types[:min_count[:min_amount]]]` (types joined
    by '+'), as the job file writes it: `events:checkout+login:2` is
    `{ events: { event_type: [checkout, login], min_count: 2 } }`, `first_event:login` is
    `{ first_event: [login] }`."""
    kinds = ("orders:", "tickets:", "surveys:", "events:", "first_event:")
    if not isinstance(spec, str) or not spec.startswith(kinds):
        return str(spec)
    kind, *rest = spec.split(":")
    if kind == "first_event":
        return "{ first_event: [" + ", ".join(rest[0].split("+")) + "] }"
    types, count, amount = (rest + ["", "", ""])[:3]
    parts = []
    if types:
        parts.append("event_type: [" + ", ".join(types.split("+")) + "]")
    if count:
        parts.append(f"min_count: {count}")
    if amount:
        parts.append(f"min_amount: {amount}")
    return "{ " + kind + ": { " + ", ".join(parts) + " } }"


def yaml_value(v):
    return "[" + ", ".join(source_yaml(x) for x in v) + "]" if isinstance(v, list) else source_yaml(v)


def flow(params):
    return "{ " + ", ".join(f"{k}: {yaml_value(v)}" for k, v in params.items()) + " }"


def args(params):
    return [f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in params.items()]


# (name, timezone, as_of, survey period, support period)
SCORE_CASES = [
    ("ny-month", "America/New_York", "2026-06-30", "month", "week"),
    ("kolkata-week", "Asia/Kolkata", "2026-03-17", "week", "month"),
    ("utc-day", "UTC", "2025-11-02", "day", "day"),
    ("berlin-quarter", "Europe/Berlin", "2026-05-31", "quarter", "quarter"),
    ("auckland-year", "Pacific/Auckland", "2026-06-30", "year", "week"),
    ("la-day-dst", "America/Los_Angeles", "2026-03-08", "day", "day"),  # as_of on a DST change
    ("sydney-year", "Australia/Sydney", "2026-04-05", "year", "year"),
]
SLA = {"chat": "60s", "phone": "30s", "email": "4h", "default": "24h"}
SLA_ARG = "chat=60,phone=30,email=14400,default=86400"

# (name, timezone, as_of, cohort_retention, churn, activation): every parameter spelled out,
# since the checker has no defaults of its own.
LIFECYCLE_CASES = [
    # Key events: filtered activity (event types, a minimum count per day, a minimum order
    # amount) and an anchor on a first event.
    ("ny-key-events", "America/New_York", "2026-06-30",
     dict(period="month", anchor="first_event:login", activity=["events:checkout", "orders::1:50"], mode="on",
          max_periods=12, by=["region"]),
     dict(period="month", anchor="first_activity", activity=["events:login+search:2"], mode="inactivity",
          inactive_after_days=60, by=["plan"]),
     dict(anchor="first_event:view+checkout", activity=["events:checkout", "orders:::100"], mode="within",
          days=[1, 7, 30], cohort_period="week", by=["plan"])),
    ("ny", "America/New_York", "2026-06-30",
     dict(period="month", anchor="first_activity", activity=["orders"], mode="on", max_periods=12, by=["region"]),
     dict(period="month", anchor="first_activity", activity=["orders"], mode="inactivity", inactive_after_days=90, by=["plan"]),
     dict(anchor="signup", activity=["orders", "tickets", "surveys", "events"], mode="on_day", days=[1, 7, 30], cohort_period="week", by=["plan"])),
    ("berlin", "Europe/Berlin", "2026-03-17",
     dict(period="week", anchor="signup", activity=["events"], mode="on_or_after", max_periods=9, by=["plan"]),
     dict(period="quarter", anchor="signup", mode="subscription", inactive_after_days=90, by=["region"]),
     dict(anchor="first_activity", activity=["events", "tickets"], mode="within", days=[2, 14], cohort_period="month", by=["region"])),
    ("tokyo", "Asia/Tokyo", "2026-05-31",
     dict(period="quarter", anchor="first_order", activity=["orders", "tickets"], mode="on", max_periods=4, by=[]),
     dict(period="week", anchor="first_activity", activity=["orders", "events"], mode="inactivity", inactive_after_days=30, by=[]),
     dict(anchor="first_order", activity=["orders"], mode="on_or_after", days=[1, 30], cohort_period="day", by=[])),
    # Edge values: one period, day 0, one-day and one-year inactivity, as_of on a DST change.
    ("la-edges", "America/Los_Angeles", "2026-03-08",
     dict(period="week", anchor="first_order", activity=["orders", "events", "surveys"], mode="on_or_after", max_periods=1, by=["plan", "region"]),
     dict(period="month", anchor="signup", activity=["events"], mode="inactivity", inactive_after_days=1, by=["region"]),
     dict(anchor="signup", activity=["orders"], mode="on_day", days=[0, 1, 365], cohort_period="month", by=["region"])),
    ("sydney-edges", "Australia/Sydney", "2026-04-05",
     dict(period="quarter", anchor="signup", activity=["tickets"], mode="on", max_periods=30, by=[]),
     dict(period="week", anchor="first_order", mode="subscription", inactive_after_days=365, by=["plan"]),
     dict(anchor="first_activity", activity=["events", "orders"], mode="within", days=[0, 3, 90], cohort_period="week", by=["plan"])),
]

# (name, timezone, as_of, unit, horizon_months, monthly_discount_rate, model, by)
LTV_CASES = [
    ("ny", "America/New_York", "2026-06-30", "week", 12, 0.01, "bgnbd", ["region", "plan"]),
    ("utc-day", "UTC", "2026-02-28", "day", 6, 0.02, "bgnbd", []),
    ("none", "Asia/Tokyo", "2026-06-30", "week", 12, 0.01, "none", ["plan"]),
    ("la-one-month", "America/Los_Angeles", "2026-03-08", "day", 1, 0.0, "bgnbd", ["plan"]),
    ("pareto", "Europe/Berlin", "2026-05-31", "week", 12, 0.01, "pareto_nbd", ["plan"]),
    ("pareto-day", "UTC", "2026-06-30", "day", 3, 0.0, "pareto_nbd", []),
]

# (name, timezone, as_of, unit, holdout_days, model) of `clv_validation`
VALIDATION_CASES = [
    ("ny", "America/New_York", "2026-06-30", "week", 180, "bgnbd"),
    ("utc-day", "UTC", "2026-02-28", "day", 60, "bgnbd"),
    ("pareto", "Asia/Tokyo", "2026-06-30", "week", 120, "pareto_nbd"),
]

# Business hours for support_kpis: a lunch break, Saturday mornings, holidays, chat 24/7, and
# phone as an overnight shift in another zone (all across DST changes).
WEEKDAY = ["09:00-12:30", "13:30-18:00"]
BUSINESS_HOURS = {
    "timezone": "America/New_York",
    "schedule": {"mon": WEEKDAY, "tue": WEEKDAY, "wed": WEEKDAY, "thu": WEEKDAY, "fri": ["09:00-17:00"],
                 "sat": ["10:00-14:00"]},
    "holidays": ["2025-11-27", "2025-12-25", "2026-01-01", "2026-05-25"],
    "channels": {
        "chat": {"schedule": {d: ["00:00-24:00"] for d in ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}},
        "phone": {"timezone": "Europe/London", "schedule": {d: ["22:00-06:00"] for d in ["mon", "tue", "wed", "thu", "fri"]},
                  "holidays": []},
    },
}
BUSINESS_SLA = {"chat": 60, "phone": 30, "email": 14400, "default": 86400}
BUSINESS_CASES = [
    ("ny-month", "America/New_York", "2026-06-30", "month"),
    ("kolkata-week", "Asia/Kolkata", "2025-11-30", "week"),
]

# (name, timezone, as_of, window_days, inactive_after_days, with support_kpis SLA, ltv model, by)
CX_CASES = [
    ("ny", "America/New_York", "2026-06-30", 90, 90, True, "bgnbd", ["plan"]),
    ("berlin", "Europe/Berlin", "2026-03-31", 30, 60, False, "none", []),
    ("la-one-day", "America/Los_Angeles", "2026-03-08", 1, 1, True, "bgnbd", ["region"]),
    ("sydney-one-year", "Australia/Sydney", "2026-04-05", 365, 365, False, "bgnbd", ["plan", "region"]),
]


def main():
    binary, data = sys.argv[1], os.path.abspath(sys.argv[2])
    passed = failed = 0

    def check(script, *a):
        nonlocal passed, failed
        r = subprocess.run([sys.executable, os.path.join(HERE, script), *a])
        if r.returncode == 0:
            passed += 1
        else:
            failed += 1

    def run_job(work, name, tz, as_of, pipelines):
        job = os.path.join(work, f"{name}.yaml")
        out = os.path.join(work, f"out-{name}")
        with open(job, "w") as f:
            f.write(f"name: {name}\nas_of: {as_of}\ntimezone: {tz}\ninputs:\n")
            for i in ["orders", "tickets", "surveys", "customers", "events"]:
                f.write(f"  {i}: {{ path: {data}/{i}.parquet }}\n")
            f.write("pipelines:\n")
            for p, params in pipelines.items():
                f.write(f"  {p}: {flow(params)}\n")
            f.write(f"output:\n  dir: {out}\n")
        r = subprocess.run([binary, "run", job], capture_output=True, text=True)
        if r.returncode != 0:
            print(r.stderr)
            sys.exit(f"cxmetrics failed on {job}")
        return out

    with tempfile.TemporaryDirectory() as work:
        for name, tz, as_of, sp, kp in SCORE_CASES:
            out = run_job(work, name, tz, as_of, {
                "survey_scores": dict(period=sp, by=["channel", "agent_id"]),
                "support_kpis": {"period": kp, "by": ["channel", "agent_id", "category"],
                                 "sla_first_response": "{ " + ", ".join(f"{k}: {v}" for k, v in SLA.items()) + " }"},
            })
            check("survey_scores.py", f"{data}/surveys.parquet", f"{out}/survey_scores.parquet", as_of, tz, sp,
                  "channel", "agent_id")
            check("support_kpis.py", f"{data}/tickets.parquet", f"{data}/surveys.parquet",
                  f"{out}/support_kpis.parquet", as_of, tz, kp, SLA_ARG, "channel", "agent_id", "category")
        for name, tz, as_of, cr, ch, ac in LIFECYCLE_CASES:
            out = run_job(work, f"life-{name}", tz, as_of, {"cohort_retention": cr, "churn": ch, "activation": ac})
            for table, params in [("cohort_retention", cr), ("churn", ch), ("activation", ac)]:
                check("lifecycle.py", table, data, f"{out}/{table}.parquet", as_of, tz, *args(params))
        for name, tz, as_of, unit, horizon, rate, model, by in LTV_CASES:
            out = run_job(work, f"ltv-{name}", tz, as_of, {"ltv_segments": dict(
                unit=unit, horizon_months=horizon, monthly_discount_rate=rate, model=model, by=by)})
            check("ltv.py", data, out, as_of, tz, unit, str(horizon), str(rate), *by)
        for name, tz, as_of, unit, holdout, model in VALIDATION_CASES:
            out = run_job(work, f"validation-{name}", tz, as_of,
                          {"ltv_segments": dict(unit=unit, holdout_days=holdout, model=model)})
            check("clv_validation.py", data, out, as_of, tz, unit, str(holdout))
        for name, tz, as_of, period in BUSINESS_CASES:
            sla = "{ in: business_hours, chat: 60s, phone: 30s, email: 4h, default: 24h }"
            out = run_job(work, f"business-{name}", tz, as_of, {"support_kpis": {
                "period": period, "by": ["channel"], "sla_first_response": sla,
                "business_hours": json.dumps(BUSINESS_HOURS)}})
            config = os.path.join(work, f"business-{name}.json")
            with open(config, "w") as f:
                json.dump({"hours": BUSINESS_HOURS, "sla": BUSINESS_SLA}, f)
            check("business_hours.py", f"{data}/tickets.parquet", f"{out}/support_kpis.parquet", as_of, tz, period,
                  config)
            # cx_impact's first_response_sla judges first responses by the same business-time targets.
            out = run_job(work, f"business-cx-{name}", tz, as_of, {
                "support_kpis": {"sla_first_response": sla, "business_hours": json.dumps(BUSINESS_HOURS)},
                "ltv_segments": dict(unit="week"),
                "cx_impact": dict(window_days=90, inactive_after_days=90, by=["plan"])})
            check("cx_impact.py", data, out, as_of, tz, "90", "90", config, "plan")
        for name, tz, as_of, window, inactive, support, model, by in CX_CASES:
            pipes = {"ltv_segments": dict(unit="week", model=model),
                     "cx_impact": dict(window_days=window, inactive_after_days=inactive, by=by, customer_table="true")}
            sla_arg = "default=86400"
            if support:
                pipes["support_kpis"] = {"sla_first_response": "{ " + ", ".join(f"{k}: {v}" for k, v in SLA.items()) + " }"}
                sla_arg = SLA_ARG
            out = run_job(work, f"cx-{name}", tz, as_of, pipes)
            check("cx_impact.py", data, out, as_of, tz, str(window), str(inactive), sla_arg, *by)
            check("customer_cx.py", out)
    print(f"crosscheck: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
