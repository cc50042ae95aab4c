"""Independent DuckDB implementation of the `support_kpis` definition (docs/metrics), compared with
what cxmetrics wrote. Usage:

    python3 tests/crosscheck/support_kpis.py TICKETS SURVEYS OUTPUT AS_OF TIMEZONE PERIOD SLA BY...

SLA is `channel=seconds,...,default=seconds`. Counts must match exactly, floats to 1e-9 relative.
"""
import sys

from common import clean_surveys, clean_tickets, compare, connect, local_date, period_end_complete


def main():
    tickets, surveys, output, as_of, tz, period, sla, *by = sys.argv[1:]
    con = connect(tz)
    clean_tickets(con, tickets, as_of, tz)
    clean_surveys(con, surveys, as_of, tz)
    targets = dict(kv.split("=") for kv in sla.split(","))
    default = float(targets.pop("default", 86400))
    target_sql = "CASE " + " ".join(f"WHEN channel = '{c}' THEN {float(s)}" for c, s in targets.items()) + f" ELSE {default} END"
    con.execute(f"""
        CREATE TABLE t AS
        SELECT t.*,
               date_trunc('{period}', {local_date('created_at', tz)})::DATE AS period,
               (epoch_us(first_response_at) - epoch_us(created_at::TIMESTAMPTZ)) / 1e6 AS frt_any,
               (epoch_us(resolved_at) - epoch_us(created_at::TIMESTAMPTZ)) / 1e6 AS res,
               {target_sql} AS target,
               (SELECT count(*) FROM surveys s WHERE s.survey = 'csat' AND s.ticket_id = t.ticket_id) AS csat_n,
               (SELECT count(*) FROM surveys s WHERE s.survey = 'csat' AND s.ticket_id = t.ticket_id AND s.score >= 4) AS csat_pos
        FROM tickets t
    """)
    dims = [("'all'", "'all'")] + [(f"'{b}'", f"coalesce(CAST({b} AS VARCHAR), 'unknown')") for b in by]
    parts = [f"""
        SELECT period, {name} AS dimension, {value} AS dimension_value,
            count(*) AS tickets,
            count(resolved_at) AS resolved,
            count(*) FILTER (WHERE abandoned) AS abandoned,
            avg(frt_any) FILTER (WHERE frt_any IS NOT NULL AND NOT coalesce(abandoned, false)) AS frt_mean,
            quantile_cont(frt_any, 0.5) FILTER (WHERE frt_any IS NOT NULL AND NOT coalesce(abandoned, false)) AS frt_median,
            quantile_cont(frt_any, 0.9) FILTER (WHERE frt_any IS NOT NULL AND NOT coalesce(abandoned, false)) AS frt_p90,
            avg(res) AS res_mean, quantile_cont(res, 0.5) AS res_median, quantile_cont(res, 0.9) AS res_p90,
            avg(handle_time_s) AS aht,
            count(*) FILTER (WHERE resolved_at IS NOT NULL AND contacts = 1) AS fcr_n,
            count(*) FILTER (WHERE resolved_at IS NOT NULL AND contacts IS NOT NULL) AS contacts_n,
            count(*) FILTER (WHERE reopened) AS reopened_n,
            count(*) FILTER (WHERE escalated) AS escalated_n,
            count(*) FILTER (WHERE frt_any IS NOT NULL AND frt_any <= target) AS sla_n,
            count(frt_any) AS responded_n,
            sum(csat_n) AS csat_n, sum(csat_pos) AS csat_pos,
            count(frt_any) FILTER (WHERE NOT coalesce(abandoned, false)) AS frt_n,
            coalesce(sum(frt_any) FILTER (WHERE NOT coalesce(abandoned, false)), 0) AS frt_sum,
            coalesce(sum(res), 0) AS res_sum,
            count(handle_time_s) AS aht_n, coalesce(sum(handle_time_s), 0) AS aht_sum
        FROM t GROUP BY ALL""" for name, value in dims]

    def rate(a, b):
        return None if b == 0 else a / b

    expected = {}
    for row in con.execute(" UNION ALL ".join(parts)).fetchall():
        (p, dim, val, n, resolved, abandoned, fm, fmed, f90, rm, rmed, r90, aht,
         fcr_n, contacts_n, reopened_n, esc_n, sla_n, responded_n, csat_n, csat_pos,
         frt_n, frt_sum, res_sum, aht_n, aht_sum) = row
        csat_score = None if csat_n == 0 else 100 * csat_pos / csat_n
        expected[(p, dim, val)] = (
            n, resolved, abandoned, fm, fmed, f90, rm, rmed, r90, aht,
            rate(fcr_n, contacts_n), rate(reopened_n, resolved), rate(abandoned, n), rate(esc_n, n),
            rate(sla_n, responded_n), csat_score, rate(csat_n, resolved), int(csat_n),
            # The re-aggregation columns: each rate's numerator and denominator, each mean's
            # sum and count.
            frt_n, float(frt_sum), float(res_sum), aht_n, float(aht_sum), fcr_n, contacts_n,
            reopened_n, esc_n, responded_n, sla_n, int(csat_pos),
            period_end_complete(con, p, period, as_of))
    columns = ["tickets", "resolved", "abandoned", "first_response_mean_s", "first_response_median_s",
               "first_response_p90_s", "resolution_mean_s", "resolution_median_s", "resolution_p90_s",
               "aht_mean_s", "fcr_rate", "reopen_rate", "abandonment_rate", "escalation_rate",
               "sla_first_response_rate", "csat_score", "csat_response_rate", "csat_responses",
               "first_responses", "first_response_total_s", "resolution_total_s", "handled",
               "handle_time_total_s", "fcr_resolved", "resolved_with_contacts", "reopened", "escalated",
               "responded", "sla_met", "csat_positive", "complete"]
    got = con.execute(f"SELECT period, dimension, dimension_value, {', '.join(columns)} FROM read_parquet('{output}')").fetchall()
    compare("support_kpis", got, expected, columns, 3)


if __name__ == "__main__":
    main()
