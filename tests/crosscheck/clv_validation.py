"""Independent implementation of `clv_validation` (docs/metrics/ltv_segments.md) in DuckDB and
plain Python, compared with what cxmetrics wrote. The predictions are evaluated with this file's
own formulas at the calibration fit cxmetrics reports in `clv_model` (`bgnbd_calibration`,
`gamma_gamma_calibration`); the fit itself is checked against lifetimes in tests/cli.rs. Usage:

    python3 tests/crosscheck/clv_validation.py DATA_DIR OUT_DIR AS_OF TIMEZONE UNIT HOLDOUT_DAYS
"""
import datetime
import math
import sys

from common import clean_orders, compare, connect, local_date
from ltv import bgnbd_curve, exact_sum, pareto_curve


def main():
    data, out, as_of, tz, unit, holdout = sys.argv[1:]
    unit_days = {"day": 1.0, "week": 7.0}[unit]
    holdout = int(holdout)
    end = datetime.date.fromisoformat(as_of) - datetime.timedelta(days=holdout)
    con = connect(tz)
    clean_orders(con, f"{data}/orders.parquet", as_of, tz)
    rows = con.execute(f"""
        WITH o AS (SELECT *, {local_date('ordered_at', tz)} AS day FROM orders WHERE amount >= 0),
        cal AS (SELECT customer_id, day, list(amount) AS amts FROM o WHERE day <= DATE '{end}' GROUP BY ALL),
        hold AS (SELECT customer_id, count(DISTINCT day) AS days, list(amount) AS amts
                 FROM o WHERE day > DATE '{end}' GROUP BY ALL)
        SELECT c.customer_id, list(c.amts ORDER BY c.day), min(c.day), max(c.day),
               any_value(h.days), any_value(h.amts)
        FROM cal c LEFT JOIN hold h USING (customer_id) GROUP BY c.customer_id
    """).fetchall()
    model = {(m, p): v for m, p, v in con.execute(
        f"SELECT model, parameter, value FROM read_parquet('{out}/clv_model.parquet')").fetchall()}
    if ("bgnbd_calibration", "r") in model:
        counting = [model[("bgnbd_calibration", k)] for k in ("r", "alpha", "a", "b")]
        curve_of = bgnbd_curve
    else:
        counting = [model[("pareto_nbd_calibration", k)] for k in ("r", "alpha", "s", "beta")]
        curve_of = pareto_curve
    p, q, v = (model[("gamma_gamma_calibration", k)] for k in ("p", "q", "v"))
    tau = holdout / unit_days
    groups = {}
    for _, amounts, first, last, days, hold_amounts in rows:
        x = len(amounts) - 1
        tx, big_t = (last - first).days / unit_days, (end - first).days / unit_days
        m = exact_sum([a_ for day in amounts[1:] for a_ in day]) / x if x > 0 else 0.0
        predicted = curve_of(counting, x, tx, big_t, [tau])[1][0]
        actual = days or 0
        spend = None
        if x > 0 and actual > 0:
            spend = (p * (v + x * m) / (p * x + q - 1), exact_sum(hold_amounts) / len(hold_amounts))
        for key in (str(x) if x < 7 else "7+", "all"):
            groups.setdefault(key, []).append((predicted, actual, spend))
    expected = {}
    for key, g in groups.items():
        n = len(g)
        s = [e[2] for e in g if e[2] is not None]
        predicted_total = math.fsum(e[0] for e in g)
        actual_total = sum(e[1] for e in g)
        expected[(key,)] = (
            n, predicted_total / n, actual_total / n, predicted_total, actual_total,
            math.fsum(abs(e[0] - e[1]) for e in g) / n, len(s),
            math.fsum(e[0] for e in s) / len(s) if s else None,
            math.fsum(e[1] for e in s) / len(s) if s else None)
    cols = ["customers", "predicted_purchases_mean", "actual_purchases_mean", "predicted_purchases_total",
            "actual_purchases_total", "purchases_mae", "spend_customers", "predicted_spend_mean", "actual_spend_mean"]
    got = con.execute(f"SELECT frequency_bucket, {', '.join(cols)} FROM read_parquet('{out}/clv_validation.parquet')").fetchall()
    order = [row[0] for row in got]
    want_order = sorted(expected, key=lambda k: (k[0] == "all", k[0] == "7+", k[0]))
    if order != [k[0] for k in want_order]:
        print(f"clv_validation rows in order {order}, want {[k[0] for k in want_order]}")
        sys.exit(1)
    compare("clv_validation", got, expected, cols, 1)


if __name__ == "__main__":
    main()
