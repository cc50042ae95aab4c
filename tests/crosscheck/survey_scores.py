"""Independent DuckDB implementation of the `survey_scores` definition (docs/metrics), compared with
what cxmetrics wrote. Usage:

    python3 tests/crosscheck/survey_scores.py SURVEYS.parquet OUTPUT.parquet AS_OF TIMEZONE PERIOD [BY ...]

Counts must match exactly, floats to 1e-9 relative.
"""
import math
import sys

from common import clean_surveys, compare, connect, local_date, period_end_complete

Z = 1.959963984540054


def main():
    surveys, output, as_of, tz, period, *by = sys.argv[1:]
    con = connect(tz)
    clean_surveys(con, surveys, as_of, tz)
    dims = [("'all'", "'all'")] + [(f"'{b}'", f"coalesce(CAST({b} AS VARCHAR), 'unknown')") for b in by]
    parts = [f"""
        SELECT date_trunc('{period}', {local_date('submitted_at', tz)})::DATE AS period,
               survey, {name} AS dimension, {value} AS dimension_value,
               count(*) AS responses,
               count(*) FILTER (WHERE (survey = 'nps' AND score >= 9) OR (survey = 'csat' AND score >= 4) OR (survey = 'ces' AND score >= 5)) AS positive,
               count(*) FILTER (WHERE (survey = 'nps' AND score BETWEEN 7 AND 8) OR (survey = 'ces' AND score = 4)) AS neutral,
               count(*) FILTER (WHERE (survey = 'nps' AND score <= 6) OR (survey = 'csat' AND score <= 3) OR (survey = 'ces' AND score <= 3)) AS negative,
               avg(score) AS mean_score, sum(score) AS score_sum
        FROM surveys GROUP BY ALL""" for name, value in dims]
    expected = {}
    for period_d, s, dim, val, n, pos, neu, neg, mean, score_sum in con.execute(" UNION ALL ".join(parts)).fetchall():
        pp, pn = pos / n, neg / n
        if s == "nps":
            score = 100 * (pp - pn)
            half = 100 * Z * math.sqrt((pp + pn - (pp - pn) ** 2) / n)
            lo, hi = max(-100.0, score - half), min(100.0, score + half)
        else:
            score = 100 * pp
            den = 1 + Z * Z / n
            center = (pp + Z * Z / (2 * n)) / den
            h = Z * math.sqrt(pp * (1 - pp) / n + Z * Z / (4 * n * n)) / den
            lo, hi = 100 * (center - h), 100 * (center + h)
        expected[(period_d, s, dim, val)] = (
            n, pos, neu, neg, score, mean, lo, hi, int(score_sum), period_end_complete(con, period_d, period, as_of))
    columns = ["responses", "positive", "neutral", "negative", "score", "mean_score", "ci_low", "ci_high",
               "score_sum", "complete"]
    got = con.execute(f"SELECT period, survey, dimension, dimension_value, {', '.join(columns)} FROM read_parquet('{output}')").fetchall()
    compare("survey_scores", got, expected, columns, 4)


if __name__ == "__main__":
    main()
