"""Independent implementation of `customer_ltv` and `ltv_segments` (docs/metrics definitions) in
DuckDB and plain Python, compared with what cxmetrics wrote. The model columns are recomputed
from the parameters in `clv_model` with this file's own formulas and hypergeometric series;
the fit itself is checked against the published CDNOW estimates in tests/cli.rs. Usage:

    python3 tests/crosscheck/ltv.py DATA_DIR OUT_DIR AS_OF TIMEZONE UNIT HORIZON RATE [BY ...]
"""
import bisect
import datetime
import math
import sys

import mpmath

from common import clean_customers, clean_orders, compare, connect, local_date


def hyp2f1(a, b, c, z):
    term, total, k = 1.0, 1.0, 0
    while True:
        term *= (a + k) * (b + k) / ((c + k) * (k + 1)) * z
        total += term
        k += 1
        if abs(term) <= 1e-15 * abs(total):
            return total


def bgnbd_curve(params, x, tx, T, taus):
    """BG/NBD P(alive) and E[Y(tau)] for each tau, as Fader, Hardie & Lee (2005) write them."""
    r, alpha, a, b = params
    odds = a / (b + x - 1) * ((alpha + T) / (alpha + tx)) ** (r + x) if x > 0 else 0.0

    def expected(tau):
        if tau == 0:
            return 0.0
        z = tau / (alpha + T + tau)
        tail = ((alpha + T) / (alpha + T + tau)) ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1, z)
        return (a + b + x - 1) / (a - 1) * (1 - tail) / (1 + odds)

    return 1 / (1 + odds), [expected(tau) for tau in taus]


def pareto_curve(params, x, tx, T, taus):
    """Pareto/NBD P(alive) and E[Y(tau)] for each tau, as Fader, Hardie & Lee's note (2005)
    writes them, at 40 digits with mpmath."""
    with mpmath.workdps(40):
        r, alpha, s, beta = (mpmath.mpf(v) for v in params)
        big, small, t_ = (alpha, beta, s + 1) if alpha >= beta else (beta, alpha, r + x)
        rsx = r + s + x
        f = lambda y: mpmath.hyp2f1(rsx, t_, rsx + 1, (big - small) / (big + y)) / (big + y) ** rsx
        a0 = f(mpmath.mpf(tx)) - f(mpmath.mpf(T))
        alive_term = 1 / ((alpha + T) ** (r + x) * (beta + T) ** s)
        p_alive = 1 / (1 + s / rsx * a0 / alive_term)
        expected = [p_alive * (r + x) * (beta + T) / ((alpha + T) * (s - 1)) * (1 - ((beta + T) / (beta + T + tau)) ** (s - 1))
                    for tau in taus]
        return float(p_alive), [float(e) for e in expected]


def exact_sum(amounts):
    """docs/outputs.md: amounts are summed exactly as whole units (floor) plus millionths of the rest
    (rounded half to even), carried, and turned into one float at the end."""
    whole = sum(math.floor(a) for a in amounts)
    micros = sum(round((a - math.floor(a)) * 1e6) for a in amounts)
    carry = micros // 1_000_000
    return float(whole + carry) + (micros - carry * 1_000_000) / 1e6


def main():
    data, out, as_of, tz, unit, horizon, rate, *by = sys.argv[1:]
    unit_days = {"day": 1.0, "week": 7.0}[unit]
    horizon, rate = int(horizon), float(rate)
    con = connect(tz)
    clean_orders(con, f"{data}/orders.parquet", as_of, tz)
    clean_customers(con, f"{data}/customers.parquet", as_of, tz)
    rows = con.execute(f"""
        WITH o AS (SELECT *, {local_date('ordered_at', tz)} AS day FROM orders),
        days AS (SELECT customer_id, day, list(amount) AS amts FROM o WHERE amount >= 0 GROUP BY ALL)
        SELECT customer_id,
               (SELECT count(*) FROM o o2 WHERE o2.customer_id = c.customer_id AND amount >= 0) AS n_orders,
               (SELECT list(amount) FROM o o2 WHERE o2.customer_id = c.customer_id) AS all_amounts,
               list(amts ORDER BY day) AS amounts, min(day) AS first_day, max(day) AS last_day
        FROM days c GROUP BY customer_id ORDER BY customer_id
    """).fetchall()
    as_of_d = datetime.date.fromisoformat(as_of)
    model = {(m, p): v for m, p, v in con.execute(f"SELECT model, parameter, value FROM read_parquet('{out}/clv_model.parquet')").fetchall()}
    bg = [model.get(("bgnbd", k)) for k in ("r", "alpha", "a", "b")]
    pareto = [model.get(("pareto_nbd", k)) for k in ("r", "alpha", "s", "beta")]
    gg = [model.get(("gamma_gamma", k)) for k in ("p", "q", "v")]
    n = len(rows)
    cust = []
    for cid, n_orders, all_amounts, amounts, first, last in rows:
        x = len(amounts) - 1
        revenue = exact_sum(all_amounts)
        cust.append(dict(
            customer_id=cid, orders=n_orders, purchase_days=len(amounts), revenue=revenue,
            avg_order_value=revenue / n_orders, recency_days=(as_of_d - last).days,
            tenure_days=(as_of_d - first).days, frequency=x,
            recency=(last - first).days / unit_days, t=(as_of_d - first).days / unit_days,
            monetary_value=(exact_sum([a for day in amounts[1:] for a in day]) / x) if x > 0 else 0.0))

    def scores(key, better_high):
        vals = sorted(c[key] if better_high else -c[key] for c in cust)
        for c in cust:
            v = c[key] if better_high else -c[key]
            lo = bisect.bisect_left(vals, v)  # 0-based first position of v
            hi = bisect.bisect_right(vals, v) - 1  # and its last
            rank = (lo + hi) / 2 + 1
            yield c, min(5, math.floor(5 * (rank - 0.5) / n) + 1)

    for c, s in scores("recency_days", False):
        c["r_score"] = s
    for c, s in scores("orders", True):
        c["f_score"] = s
    for c, s in scores("revenue", True):
        c["m_score"] = s
    grid = {1: "hibernating hibernating at_risk at_risk cant_lose_them", 2: "hibernating hibernating at_risk at_risk cant_lose_them",
            3: "about_to_sleep about_to_sleep need_attention loyal loyal", 4: "promising potential_loyalist potential_loyalist loyal loyal",
            5: "new_customer potential_loyalist potential_loyalist champions champions"}
    month = 365.25 / 12 / unit_days
    for c in cust:
        c["rfm_segment"] = grid[c["r_score"]].split()[c["f_score"] - 1]
        x, tx, T = c["frequency"], c["recency"], c["t"]
        c["p_alive"] = c["expected_purchases"] = c["expected_order_value"] = c["predicted_clv"] = None
        if gg[0] is not None:
            p, q, v = gg
            c["expected_order_value"] = p * (v + x * c["monetary_value"]) / (p * x + q - 1) if x > 0 else v * p / (q - 1)
        model = bg if bg[0] is not None else pareto if pareto[0] is not None else None
        if model is not None:
            curve_of = bgnbd_curve if model is bg else pareto_curve
            c["p_alive"], curve = curve_of(model, x, tx, T, [k * month for k in range(horizon + 1)])
            c["expected_purchases"] = curve[horizon]
            if c["expected_order_value"] is not None:
                c["predicted_clv"] = sum((curve[k] - curve[k - 1]) * c["expected_order_value"] / (1 + rate) ** k
                                         for k in range(1, horizon + 1))
    tier_key = "predicted_clv" if any(c["predicted_clv"] is not None for c in cust) else "revenue"
    tier_vals = sorted(c[tier_key] for c in cust)
    for c in cust:
        rank = 1 + n - bisect.bisect_right(tier_vals, c[tier_key])  # 1 + customers strictly above
        share = (rank - 1) / n
        c["value_tier"] = "top_1pct" if share < 0.01 else "top_10pct" if share < 0.10 else "top_50pct" if share < 0.5 else "bottom_50pct"

    cols = ["orders", "purchase_days", "revenue", "avg_order_value", "recency_days", "tenure_days", "r_score", "f_score",
            "m_score", "rfm_segment", "frequency", "recency", "t", "monetary_value", "p_alive", "expected_purchases",
            "expected_order_value", "predicted_clv", "value_tier"]
    expected = {(c["customer_id"],): tuple(c[k] for k in cols) for c in cust}
    got = con.execute(f"SELECT customer_id, {', '.join(cols)} FROM read_parquet('{out}/customer_ltv.parquet')").fetchall()
    compare("customer_ltv", got, expected, cols, 1)

    # Segments, from the per-customer values above.
    seg = {}
    dims = {c["customer_id"]: c for c in cust}
    segments = {r[0]: r[1:] for r in con.execute(f"SELECT customer_id, {', '.join(by) or '1'} FROM customers").fetchall()} if by else {}
    for c in cust:
        keys = [("all", "all")] + [(b, str(segments.get(c["customer_id"], [None] * len(by))[i]) if segments.get(c["customer_id"], [None] * len(by))[i] is not None else "unknown") for i, b in enumerate(by)]
        for dim, val in keys:
            seg.setdefault((dim, val, c["rfm_segment"]), []).append(c)
    totals = {}
    for (dim, val, _), cs in seg.items():
        t = totals.setdefault((dim, val), [0, 0.0])
        t[0] += len(cs)
        t[1] += sum(c["revenue"] for c in cs)
    expected = {}
    for (dim, val, s), cs in seg.items():
        k = len(cs)
        rev = sum(c["revenue"] for c in cs)
        mean = lambda key: (sum(c[key] for c in cs) / k) if all(c[key] is not None for c in cs) else None
        expected[(dim, val, s)] = (k, k / totals[(dim, val)][0], rev,
                                   rev / totals[(dim, val)][1] if totals[(dim, val)][1] != 0 else None,
                                   rev / k, mean("orders"), mean("recency_days"), mean("predicted_clv"), mean("p_alive"))
    cols = ["customers", "share_of_customers", "revenue", "share_of_revenue", "avg_revenue", "avg_orders",
            "avg_recency_days", "avg_predicted_clv", "avg_p_alive"]
    got = con.execute(f"SELECT dimension, dimension_value, rfm_segment, {', '.join(cols)} FROM read_parquet('{out}/ltv_segments.parquet')").fetchall()
    compare("ltv_segments", got, expected, cols, 3)


if __name__ == "__main__":
    main()
