"""Independent implementation of `cx_impact` and `nps_migration` (docs/metrics definitions) in DuckDB
and plain Python, compared with what cxmetrics wrote. avg_predicted_clv is taken from the run's
own customer_ltv table (checked by ltv.py). Usage:

    python3 tests/crosscheck/cx_impact.py DATA_DIR OUT_DIR AS_OF TIMEZONE WINDOW INACTIVE SLA [BY ...]
"""
import datetime
import json
import sys
from collections import defaultdict

from business_hours import business, calendars
from common import clean_customers, clean_orders, clean_surveys, clean_tickets, compare, connect, local_date


def nps_cat(s):
    return "promoter" if s >= 9 else "passive" if s >= 7 else "detractor"


def main():
    data, out, as_of, tz, window, inactive, sla, *by = sys.argv[1:]
    w, n_inactive = int(window), int(inactive)
    hours = None
    if sla.endswith(".json"):
        # Targets in business hours (support_kpis.business_hours), as business_hours.py computes them.
        config = json.load(open(sla))
        hours = calendars(config["hours"])
        targets = dict(config["sla"])
    else:
        targets = dict(kv.split("=") for kv in sla.split(","))
    default = float(targets.pop("default", 86400))
    con = connect(tz)
    clean_orders(con, f"{data}/orders.parquet", as_of, tz)
    clean_tickets(con, f"{data}/tickets.parquet", as_of, tz)
    clean_surveys(con, f"{data}/surveys.parquet", as_of, tz)
    clean_customers(con, f"{data}/customers.parquet", as_of, tz)
    as_of_d = datetime.date.fromisoformat(as_of)
    orders = defaultdict(list)
    for cid, day, amount in con.execute(f"SELECT customer_id, {local_date('ordered_at', tz)}, amount FROM orders").fetchall():
        orders[cid].append((day, amount))
    universe = {c for c, os in orders.items() if any(a >= 0 for _, a in os)}
    clv = dict(con.execute(f"SELECT customer_id, predicted_clv FROM read_parquet('{out}/customer_ltv.parquet')").fetchall())
    segs = {}
    if by:
        for row in con.execute(f"SELECT customer_id, {', '.join(by)} FROM customers").fetchall():
            segs[row[0]] = row[1:]

    def latest(survey):
        res = {}
        for cid, score, day in con.execute(f"""SELECT customer_id, score, {local_date('submitted_at', tz)} FROM surveys
                WHERE survey = '{survey}' ORDER BY customer_id, submitted_at, response_id""").fetchall():
            res[cid] = (score, day)
        return res

    drivers = {}
    nps = latest("nps")
    drivers["nps_category"] = {c: (nps_cat(s), d) for c, (s, d) in nps.items()}
    csat = latest("csat")
    drivers["csat"] = {c: ("satisfied" if s >= 4 else "unsatisfied", d) for c, (s, d) in csat.items()}
    tickets = defaultdict(list)
    for row in con.execute(f"""SELECT customer_id, {local_date('created_at', tz)}, resolved_at IS NOT NULL, contacts, channel,
            (epoch_us(first_response_at) - epoch_us(created_at::TIMESTAMPTZ)) / 1e6,
            epoch_us(created_at::TIMESTAMPTZ), epoch_us(first_response_at) FROM tickets""").fetchall():
        if hours is not None and row[7] is not None:
            cal = hours[1].get(row[4], hours[0])
            row = row[:5] + (business(cal, row[6], row[7]) / 1e6,)
        tickets[row[0]].append(row[1:6])
    vol, fcr, slad = {}, {}, {}
    for cid, ts in tickets.items():
        last = max(t[0] for t in ts)
        recent = sum(1 for t in ts if (as_of_d - t[0]).days < 365)
        vol[cid] = ("0" if recent == 0 else "1" if recent == 1 else "2-3" if recent <= 3 else "4+", last)
        resolved = [t for t in ts if t[1]]
        fcr[cid] = ("no_resolved_tickets" if not resolved else "all_fcr" if all(t[2] == 1 for t in resolved) else "some_not_fcr", last)
        responded = [t for t in ts if t[4] is not None]
        met = [t for t in responded if t[4] <= float(targets.get(t[3], default))]
        slad[cid] = ("no_responded_tickets" if not responded else "all_met" if len(met) == len(responded) else "some_missed", last)
    drivers["ticket_volume"], drivers["first_contact_resolution"], drivers["first_response_sla"] = vol, fcr, slad
    defaults = {"nps_category": "none", "csat": "none", "ticket_volume": "0",
                "first_contact_resolution": "no_resolved_tickets", "first_response_sla": "no_responded_tickets"}

    groups = defaultdict(list)
    for cid in universe:
        os = orders[cid]
        revenue = sum(a for _, a in os)
        last_purchase = max(d for d, a in os if a >= 0)
        churned = (as_of_d - last_purchase).days >= n_inactive
        keys = [("all", "all")] + [(b, str(segs[cid][i]) if cid in segs and segs[cid][i] is not None else "unknown") for i, b in enumerate(by)]
        for driver, values in drivers.items():
            value, event = values.get(cid, (defaults[driver], None))
            # docs/metrics/cx_impact.md: a customer whose driver value means "no experience" (none, 0, no_...)
            # has no outcome window, whatever older tickets they have.
            if value == defaults[driver]:
                event = None
            outcome = event is not None and (as_of_d - event).days >= w
            after = [a for d, a in os if outcome and 0 < (d - event).days <= w]
            rep = outcome and any(a >= 0 for d, a in os if 0 < (d - event).days <= w)
            for dim, val in keys:
                groups[(driver, value, dim, val)].append((revenue, clv.get(cid), churned, outcome, sum(after), rep))
    totals = defaultdict(lambda: [0, 0.0, 0])
    for (driver, value, dim, val), rows in groups.items():
        t = totals[(driver, dim, val)]
        t[0] += len(rows)
        t[1] += sum(r[0] for r in rows)
        t[2] += sum(1 for r in rows if r[2])
    expected = {}
    for (driver, value, dim, val), rows in groups.items():
        k = len(rows)
        t = totals[(driver, dim, val)]
        avg_rev, churned_share = sum(r[0] for r in rows) / k, sum(1 for r in rows if r[2]) / k
        clvs = [r[1] for r in rows]
        oc = sum(1 for r in rows if r[3])
        all_rev, all_ch = t[1] / t[0], t[2] / t[0]
        expected[(driver, value, dim, val)] = (
            k, k / t[0], avg_rev, None if any(c is None for c in clvs) else sum(clvs) / k, churned_share, oc,
            None if oc == 0 else sum(1 for r in rows if r[3] and r[5]) / oc,
            None if oc == 0 else sum(r[4] for r in rows if r[3]) / oc,
            None if all_rev == 0 else avg_rev / all_rev - 1, None if all_ch == 0 else churned_share / all_ch - 1)
    cols = ["customers", "share_of_customers", "avg_revenue", "avg_predicted_clv", "churned_share", "outcome_customers",
            "repurchase_rate", "revenue_after_per_customer", "lift_vs_all", "churn_lift_vs_all"]
    got = con.execute(f"SELECT driver, driver_value, dimension, dimension_value, {', '.join(cols)} FROM read_parquet('{out}/cx_impact.parquet')").fetchall()
    compare("cx_impact", got, expected, cols, 4)

    journeys = defaultdict(list)
    for cid, score, day in con.execute(f"""SELECT customer_id, score, {local_date('submitted_at', tz)} FROM surveys
            WHERE survey = 'nps' ORDER BY customer_id, submitted_at, response_id""").fetchall():
        journeys[cid].append((score, day))
    mig = defaultdict(list)
    for cid, js in journeys.items():
        if len(js) < 2:
            continue
        (s0, d0), (s1, d1) = js[0], js[-1]
        before = sum(a for d, a in orders.get(cid, []) if -w <= (d - d0).days < 0)
        after = sum(a for d, a in orders.get(cid, []) if 0 < (d - d1).days <= w)
        mig[(nps_cat(s0), nps_cat(s1))].append((before, after))
    expected = {}
    for key, rows in mig.items():
        b = sum(r[0] for r in rows) / len(rows)
        a = sum(r[1] for r in rows) / len(rows)
        expected[key] = (len(rows), b, a, None if b == 0 else 100 * (a - b) / b)
    cols = ["customers", "avg_revenue_before", "avg_revenue_after", "revenue_change_pct"]
    got = con.execute(f"SELECT from_category, to_category, {', '.join(cols)} FROM read_parquet('{out}/nps_migration.parquet')").fetchall()
    compare("nps_migration", got, expected, cols, 2)


if __name__ == "__main__":
    main()
