"""`customer_cx` summed back into cx_impact's overall rows (docs/metrics/cx_impact.md): for every
driver and driver value, the customers, their exact revenue (amounts to the millionth, summed as
decimals), predicted CLV, churned share and outcome-window figures must give the overall rows of
`cx_impact` that cxmetrics wrote. Usage:

    python3 tests/crosscheck/customer_cx.py OUT_DIR
"""
import math
import sys
from decimal import Decimal

import duckdb

from common import compare

DRIVERS = ["nps_category", "csat", "ticket_volume", "first_contact_resolution", "first_response_sla"]


def main():
    out = sys.argv[1]
    con = duckdb.connect()
    columns = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{out}/customer_cx.parquet')").fetchall()]
    rows = con.execute(f"SELECT * FROM read_parquet('{out}/customer_cx.parquet') ORDER BY customer_id").fetchall()
    ids = [r[0] for r in rows]
    if ids != sorted(set(ids)):
        print("customer_cx: customer ids not unique and sorted")
        sys.exit(1)
    at = {c: i for i, c in enumerate(columns)}
    n_all = len(rows)
    money = lambda v: Decimal(repr(v)).quantize(Decimal("0.000001"))
    all_revenue = sum(money(r[at["revenue"]]) for r in rows)
    all_churned = sum(1 for r in rows if r[at["lifecycle_state"]] == "churned")
    expected = {}
    for d in DRIVERS:
        if d not in at:
            continue
        groups = {}
        for r in rows:
            groups.setdefault(r[at[d]], []).append(r)
        for value, g in groups.items():
            n = len(g)
            revenue = sum(money(r[at["revenue"]]) for r in g)
            clv = [r[at["predicted_clv"]] for r in g if r[at["predicted_clv"]] is not None]
            churned = sum(1 for r in g if r[at["lifecycle_state"]] == "churned")
            window = [r for r in g if r[at[f"{d}_outcome_window"]]]
            repurchased = sum(1 for r in window if r[at[f"{d}_repurchased"]])
            after = sum(money(r[at[f"{d}_revenue_after"]]) for r in window)
            avg_revenue = float(revenue) / n
            all_avg = float(all_revenue) / n_all
            churned_share = churned / n
            all_churned_share = all_churned / n_all
            expected[(d, value, "all", "all")] = (
                n, n / n_all, avg_revenue, math.fsum(clv) / len(clv) if clv else None, churned_share, len(window),
                repurchased / len(window) if window else None, float(after) / len(window) if window else None,
                None if all_avg == 0 else avg_revenue / all_avg - 1,
                None if all_churned_share == 0 else churned_share / all_churned_share - 1)
    cols = ["customers", "share_of_customers", "avg_revenue", "avg_predicted_clv", "churned_share",
            "outcome_customers", "repurchase_rate", "revenue_after_per_customer", "lift_vs_all", "churn_lift_vs_all"]
    got = con.execute(f"""SELECT driver, driver_value, dimension, dimension_value, {', '.join(cols)}
        FROM read_parquet('{out}/cx_impact.parquet') WHERE dimension = 'all'""").fetchall()
    compare("customer_cx (summed into cx_impact)", got, expected, cols, 4)


if __name__ == "__main__":
    main()
