"""Independent DuckDB implementation of the `survey_scores` definition (README), compared with
what cxmetrics wrote. Usage:

    python3 tests/crosscheck/survey_scores.py SURVEYS.parquet OUTPUT.parquet AS_OF TIMEZONE PERIOD [BY ...]

Written from the README's definitions, not from the Rust code: input cleaning (lower-cased
survey type, scales, null keys, first occurrence of a response_id, data after the end of as_of
in the time zone), period bucketing, counts, scores, intervals and `complete`.
Exits 1 with the differing rows if anything differs (counts exactly, floats to 1e-9 relative).
"""
import math
import sys

import duckdb

Z = 1.959963984540054


def main():
    surveys, output, as_of, tz, period, *by = sys.argv[1:]
    con = duckdb.connect()
    con.execute(f"SET TimeZone = '{tz}'")
    trunc = {"day": "day", "week": "week", "month": "month", "quarter": "quarter", "year": "year"}[period]
    step = {"day": "1 day", "week": "7 days", "month": "1 month", "quarter": "3 months", "year": "1 year"}[period]
    con.execute(f"""
        CREATE TABLE raw AS
        SELECT *, lower(survey) AS s, file_row_number AS rn
        FROM read_parquet('{surveys}', file_row_number = true)
    """)
    # End of as_of in the zone = local midnight of the next day.
    cutoff = f"(DATE '{as_of}' + INTERVAL 1 DAY)::TIMESTAMP AT TIME ZONE '{tz}'"
    con.execute(f"""
        CREATE TABLE clean AS
        WITH valid AS (
            SELECT * FROM raw
            WHERE response_id IS NOT NULL AND customer_id IS NOT NULL AND survey IS NOT NULL
              AND score IS NOT NULL AND submitted_at IS NOT NULL
              AND submitted_at::TIMESTAMPTZ < {cutoff}
              AND ((s = 'nps' AND score BETWEEN 0 AND 10) OR (s = 'csat' AND score BETWEEN 1 AND 5)
                   OR (s = 'ces' AND score BETWEEN 1 AND 7))
        )
        SELECT * FROM valid
        QUALIFY row_number() OVER (PARTITION BY response_id ORDER BY rn) = 1
    """)
    dims = [("'all'", "'all'")] + [(f"'{b}'", f"coalesce(CAST({b} AS VARCHAR), 'unknown')") for b in by]
    parts = []
    for name, value in dims:
        parts.append(f"""
            SELECT date_trunc('{trunc}', (submitted_at::TIMESTAMPTZ AT TIME ZONE '{tz}')::DATE)::DATE AS period,
                   s AS survey, {name} AS dimension, {value} AS dimension_value,
                   count(*) AS responses,
                   count(*) FILTER (WHERE (s = 'nps' AND score >= 9) OR (s = 'csat' AND score >= 4) OR (s = 'ces' AND score >= 5)) AS positive,
                   count(*) FILTER (WHERE (s = 'nps' AND score BETWEEN 7 AND 8) OR (s = 'ces' AND score = 4)) AS neutral,
                   count(*) FILTER (WHERE (s = 'nps' AND score <= 6) OR (s = 'csat' AND score <= 3) OR (s = 'ces' AND score <= 3)) AS negative,
                   avg(score) AS mean_score
            FROM clean GROUP BY ALL""")
    want = con.execute(" UNION ALL ".join(parts)).fetchall()
    got = con.execute(f"SELECT period, survey, dimension, dimension_value, responses, positive, neutral, negative, score, mean_score, ci_low, ci_high, complete FROM read_parquet('{output}')").fetchall()

    import datetime
    as_of_d = datetime.date.fromisoformat(as_of)
    expected = {}
    for period_d, s, dim, val, n, pos, neu, neg, mean in want:
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
        end = con.execute(f"SELECT (DATE '{period_d}' + INTERVAL {step})::DATE").fetchone()[0]
        complete = end <= as_of_d + datetime.timedelta(days=1)
        expected[(period_d, s, dim, val)] = (n, pos, neu, neg, score, mean, lo, hi, complete)

    problems = []
    seen = set()
    for row in got:
        key, vals = tuple(row[:4]), row[4:]
        seen.add(key)
        if key not in expected:
            problems.append(f"unexpected row {key}")
            continue
        e = expected[key]
        order = [e[0], e[1], e[2], e[3], e[4], e[5], e[6], e[7], e[8]]
        for name, g, w in zip(["responses", "positive", "neutral", "negative", "score", "mean_score", "ci_low", "ci_high", "complete"], vals, order):
            if isinstance(w, float):
                if not math.isclose(g, w, rel_tol=1e-9, abs_tol=1e-9):
                    problems.append(f"{key} {name}: got {g}, want {w}")
            elif g != w:
                problems.append(f"{key} {name}: got {g}, want {w}")
    for key in expected.keys() - seen:
        problems.append(f"missing row {key}")
    if problems:
        print("\n".join(problems[:50]))
        print(f"survey_scores crosscheck: {len(problems)} differences")
        sys.exit(1)
    print(f"survey_scores crosscheck: {len(got)} rows match DuckDB")


if __name__ == "__main__":
    main()
