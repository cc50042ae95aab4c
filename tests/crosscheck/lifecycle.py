"""Independent DuckDB implementations of `cohort_retention`, `churn` and `activation` (docs/metrics
definitions, evaluated customer by customer and day by day rather than the way the Rust code
does it), compared with what cxmetrics wrote. Usage:

    python3 tests/crosscheck/lifecycle.py TABLE DATA_DIR OUTPUT.parquet AS_OF TIMEZONE key=value...

Keys: period, anchor, activity (comma list), mode, max_periods, inactive_after_days, days
(comma list), cohort_period, by (comma list).
"""
import sys

from common import (clean_customers, clean_events, clean_orders, clean_surveys, clean_tickets,
                    compare, connect, local_date)

STEP = {"day": "1 DAY", "week": "7 DAY", "month": "1 MONTH", "quarter": "3 MONTH"}


def setup(con, data, as_of, tz):
    clean_orders(con, f"{data}/orders.parquet", as_of, tz)
    clean_tickets(con, f"{data}/tickets.parquet", as_of, tz)
    clean_surveys(con, f"{data}/surveys.parquet", as_of, tz)
    clean_events(con, f"{data}/events.parquet", as_of, tz)
    clean_customers(con, f"{data}/customers.parquet", as_of, tz)


def activity_sql(sources, tz):
    """Each source is `kind[:types[:min_count[:min_amount]]]` (types joined by '+'): a customer is
    active on a day with at least min_count counted rows of a source."""
    cols = {"orders": ("orders", "ordered_at", "amount >= 0"), "tickets": ("tickets", "created_at", "true"),
            "surveys": ("surveys", "submitted_at", "true"), "events": ("events", "event_at", "true")}
    parts = []
    for spec in sources:
        kind, *rest = spec.split(":")
        types, count, amount = (rest + ["", "", ""])[:3]
        table, column, cond = cols[kind]
        if types:
            cond += " AND event_type IN (" + ", ".join(f"'{t}'" for t in types.split("+")) + ")"
        if amount:
            cond += f" AND amount >= {float(amount)}"
        parts.append(f"""SELECT customer_id, day FROM (
            SELECT customer_id, {local_date(column, tz)} AS day FROM {table} WHERE {cond})
            GROUP BY ALL HAVING count(*) >= {int(count or 1)}""")
    return "SELECT DISTINCT * FROM (" + " UNION ALL ".join(parts) + ")"


def anchor_sql(anchor, tz):
    if anchor.startswith("first_event:"):
        types = ", ".join(f"'{t}'" for t in anchor.split(":")[1].split("+"))
        return f"SELECT customer_id, min({local_date('event_at', tz)}) AS anchor FROM events WHERE event_type IN ({types}) GROUP BY 1"
    if anchor == "first_activity":
        return "SELECT customer_id, min(day) AS anchor FROM activity GROUP BY 1"
    if anchor == "signup":
        return f"SELECT customer_id, {local_date('signup_at', tz)} AS anchor FROM customers WHERE signup_at IS NOT NULL"
    return f"SELECT customer_id, min({local_date('ordered_at', tz)}) AS anchor FROM orders WHERE amount >= 0 GROUP BY 1"


def dims_sql(by):
    out = [("'all'", "'all'")]
    out += [(f"'{b}'", f"coalesce(CAST(c.{b} AS VARCHAR), 'unknown')") for b in by]
    return out


def main():
    table, data, output, as_of, tz, *kv = sys.argv[1:]
    p = dict(x.split("=", 1) for x in kv)
    by = [b for b in p.get("by", "").split(",") if b]
    con = connect(tz)
    setup(con, data, as_of, tz)
    sources = p["activity"].split(",") if p.get("activity") else []
    if sources:
        con.execute("CREATE TABLE activity AS " + activity_sql(sources, tz))
    else:
        con.execute("CREATE TABLE activity (customer_id VARCHAR, day DATE)")
    con.execute(f"CREATE TABLE anchors AS SELECT * FROM ({anchor_sql(p['anchor'], tz)}) WHERE anchor <= DATE '{as_of}'")
    {"cohort_retention": cohort_retention, "churn": churn, "activation": activation}[table](con, p, by, output, as_of)


def cohort_retention(con, p, by, output, as_of):
    period, step = p["period"], STEP[p["period"]]
    con.execute(f"""
        CREATE TABLE cells AS
        WITH cust AS (SELECT customer_id, date_trunc('{period}', anchor)::DATE AS cohort FROM anchors),
        grid AS (
            SELECT cust.*, k::INT AS period,
                   (cohort + k * INTERVAL {step})::DATE AS w_start,
                   (cohort + (k + 1) * INTERVAL {step} - INTERVAL 1 DAY)::DATE AS w_end
            FROM cust, range(0, {p['max_periods']}) t(k)
            WHERE (cohort + k * INTERVAL {step})::DATE <= DATE '{as_of}'
        )
        SELECT g.*,
            {"EXISTS (SELECT 1 FROM activity a WHERE a.customer_id = g.customer_id AND a.day BETWEEN g.w_start AND g.w_end)"
             if p['mode'] == 'on' else
             "EXISTS (SELECT 1 FROM activity a WHERE a.customer_id = g.customer_id AND a.day >= g.w_start)"} AS active,
            coalesce((SELECT sum(amount) FROM orders o WHERE o.customer_id = g.customer_id
                      AND {local_date('o.ordered_at', con.execute("SELECT current_setting('TimeZone')").fetchone()[0])} BETWEEN g.w_start AND g.w_end), 0) AS revenue
        FROM grid g
    """)
    parts = [f"""SELECT cohort, period, {n} AS dimension, {v} AS dimension_value, count(*) AS size,
                        count(*) FILTER (WHERE active) AS active, sum(revenue) AS revenue, max(w_end) AS w_end
                 FROM cells LEFT JOIN customers c USING (customer_id) GROUP BY ALL""" for n, v in dims_sql(by)]
    rows = con.execute(" UNION ALL ".join(parts) + " ORDER BY 1, 3, 4, 2").fetchall()
    expected, cum, first = {}, {}, {}
    import datetime
    as_of_d = datetime.date.fromisoformat(as_of)
    for cohort, k, dim, val, size, active, revenue, w_end in rows:
        key = (cohort, dim, val)
        cum[key] = cum.get(key, 0.0) + revenue
        if k == 0:
            first[key] = float(revenue)
        base = first[key]
        # revenue_retention: revenue in period k over the cohort's period-0 revenue (rounded to
        # the millionth the amounts are summed in, so that a float sum of zero is zero).
        retention = None if round(base, 6) == 0 else float(revenue) / base
        expected[(cohort, k, dim, val)] = (size, active, active / size, float(revenue), cum[key] / size, retention,
                                           cum[key], base, w_end <= as_of_d)
    cols = ["cohort_size", "active_customers", "retention_rate", "revenue", "cumulative_revenue_per_customer",
            "revenue_retention", "cumulative_revenue", "period_0_revenue", "complete"]
    got = con.execute(f"SELECT cohort, period, dimension, dimension_value, {', '.join(cols)} FROM read_parquet('{output}')").fetchall()
    compare("cohort_retention", got, expected, cols, 4)


def churn(con, p, by, output, as_of):
    period, step = p["period"], STEP[p["period"]]
    tz = con.execute("SELECT current_setting('TimeZone')").fetchone()[0]
    if p["mode"] == "inactivity":
        n = int(p["inactive_after_days"])
        active = lambda d: f"EXISTS (SELECT 1 FROM activity a WHERE a.customer_id = cu.customer_id AND a.day > {d} - {n} AND a.day <= {d})"
    else:
        active = lambda d: (f"EXISTS (SELECT 1 FROM customers s WHERE s.customer_id = cu.customer_id AND s.signup_at IS NOT NULL "
                            f"AND {local_date('s.signup_at', tz)} <= {d} AND (s.churned_at IS NULL OR {local_date('s.churned_at', tz)} > {d}))")
    con.execute(f"""
        CREATE TABLE periods AS
        SELECT p::DATE AS start, least((p + INTERVAL {step} - INTERVAL 1 DAY)::DATE, DATE '{as_of}') AS fin,
               (p + INTERVAL {step} - INTERVAL 1 DAY)::DATE <= DATE '{as_of}' AS complete
        FROM range((SELECT date_trunc('{period}', min(anchor)) FROM anchors)::TIMESTAMP,
                   (DATE '{as_of}' + INTERVAL 1 DAY)::TIMESTAMP, INTERVAL {step}) t(p)
    """)
    con.execute(f"""
        CREATE TABLE flags AS
        WITH everyone AS (SELECT customer_id FROM activity UNION SELECT customer_id FROM customers UNION SELECT customer_id FROM anchors)
        SELECT pe.start, pe.fin, cu.customer_id,
               {active('(pe.start - 1)')} AS s, {active('pe.fin')} AS e,
               (SELECT anchor FROM anchors an WHERE an.customer_id = cu.customer_id) AS anchor
        FROM periods pe, everyone cu
    """)
    parts = [f"""SELECT start, {n} AS dimension, {v} AS dimension_value,
            count(*) FILTER (WHERE s) AS cs,
            count(*) FILTER (WHERE e AND NOT s AND anchor BETWEEN start AND fin) AS new,
            count(*) FILTER (WHERE e AND NOT s AND NOT coalesce(anchor BETWEEN start AND fin, false)) AS react,
            count(*) FILTER (WHERE s AND NOT e) AS churned,
            count(*) FILTER (WHERE e) AS ce
        FROM flags LEFT JOIN customers c USING (customer_id)
        WHERE customer_id IN (SELECT customer_id FROM anchors) OR s OR e
        GROUP BY ALL""" for n, v in dims_sql(by)]
    counts = {(r[0], r[1], r[2]): r[3:] for r in con.execute(" UNION ALL ".join(parts)).fetchall()}
    rev_parts = [f"""SELECT pe.start, {n}, {v}, sum(amount) FROM orders o JOIN periods pe
            ON {local_date('o.ordered_at', tz)} BETWEEN pe.start AND pe.fin
            LEFT JOIN customers c ON c.customer_id = o.customer_id GROUP BY ALL""" for n, v in dims_sql(by)]
    revenue = {(r[0], r[1], r[2]): r[3] for r in con.execute(" UNION ALL ".join(rev_parts)).fetchall()}
    # Net revenue retention, customer by customer: the base of P is the customers whose revenue
    # in the period before P (a row of the table or not) is above zero (to the millionth).
    con.execute(f"""
        CREATE TABLE period_revenue AS
        SELECT o.customer_id, date_trunc('{period}', {local_date('o.ordered_at', tz)})::DATE AS start,
               sum(amount) AS rev
        FROM orders o GROUP BY ALL
    """)
    nrr_parts = [f"""SELECT pe.start, {n}, {v}, sum(coalesce(cur.rev, 0)), sum(b.rev)
            FROM period_revenue b JOIN periods pe ON pe.start = (b.start + INTERVAL {step})::DATE
            LEFT JOIN period_revenue cur ON cur.customer_id = b.customer_id AND cur.start = pe.start
            LEFT JOIN customers c ON c.customer_id = b.customer_id
            WHERE round(b.rev, 6) > 0 GROUP BY ALL""" for n, v in dims_sql(by)]
    nrr = {(r[0], r[1], r[2]): (float(r[3]), float(r[4])) for r in con.execute(" UNION ALL ".join(nrr_parts)).fetchall()}
    seg_parts = [f"SELECT DISTINCT {n}, {v} FROM anchors LEFT JOIN customers c USING (customer_id)" for n, v in dims_sql(by)]
    segments = con.execute(" UNION ALL ".join(seg_parts)).fetchall()
    expected = {}
    for start, fin, complete in con.execute("SELECT * FROM periods").fetchall():
        for dim, val in segments:
            cs, new, react, churned, ce = counts.get((start, dim, val), (0, 0, 0, 0, 0))
            assert ce == cs - churned + new + react
            nrr_revenue, nrr_base = nrr.get((start, dim, val), (0.0, 0.0))
            expected[(start, dim, val)] = (
                cs, new, react, churned, ce,
                None if cs == 0 else churned / cs, None if cs == 0 else (ce - new - react) / cs,
                float(revenue.get((start, dim, val), 0.0)), nrr_revenue, nrr_base,
                None if round(nrr_base, 6) == 0 else nrr_revenue / nrr_base, ce - new - react, complete)
    cols = ["customers_start", "new_customers", "reactivated", "churned", "customers_end", "churn_rate",
            "retention_rate", "revenue", "nrr_revenue", "nrr_base_revenue", "net_revenue_retention", "retained",
            "complete"]
    got = con.execute(f"SELECT period, dimension, dimension_value, {', '.join(cols)} FROM read_parquet('{output}')").fetchall()
    compare("churn", got, expected, cols, 3)


def activation(con, p, by, output, as_of):
    days = [int(d) for d in p["days"].split(",")]
    cond = {
        "on_day": "a.day = g.anchor + g.n",
        "within": "a.day BETWEEN g.anchor + 1 AND g.anchor + g.n",
        "on_or_after": "a.day >= g.anchor + g.n",
    }[p["mode"]]
    con.execute(f"""
        CREATE TABLE cells AS
        WITH grid AS (SELECT an.*, n::INT AS n FROM anchors an, unnest({days}) t(n))
        SELECT g.customer_id, date_trunc('{p['cohort_period']}', g.anchor)::DATE AS cohort, g.n,
               g.anchor + g.n <= DATE '{as_of}' AS eligible,
               EXISTS (SELECT 1 FROM activity a WHERE a.customer_id = g.customer_id AND {cond}) AS hit
        FROM grid g
    """)
    parts = [f"""SELECT cohort, n, {nm} AS dimension, {v} AS dimension_value, count(*),
                        count(*) FILTER (WHERE eligible), count(*) FILTER (WHERE eligible AND hit)
                 FROM cells LEFT JOIN customers c USING (customer_id) GROUP BY ALL""" for nm, v in dims_sql(by)]
    expected = {}
    for cohort, n, dim, val, signups, eligible, active in con.execute(" UNION ALL ".join(parts)).fetchall():
        expected[(cohort, n, dim, val)] = (signups, eligible, active, None if eligible == 0 else active / eligible)
    cols = ["signups", "eligible", "active", "rate"]
    got = con.execute(f"SELECT cohort, day, dimension, dimension_value, {', '.join(cols)} FROM read_parquet('{output}')").fetchall()
    compare("activation", got, expected, cols, 4)


if __name__ == "__main__":
    main()
