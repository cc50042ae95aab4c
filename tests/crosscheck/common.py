"""Shared pieces of the DuckDB cross-checks: the input cleaning rules of docs/inputs.md, written
independently of the Rust code, and the row-by-row comparison."""
import datetime
import json
import math
import os
import sys
import tempfile

import duckdb


def connect(tz):
    con = duckdb.connect()
    con.execute(f"SET TimeZone = '{tz}'")
    return con


def cutoff(as_of, tz):
    """SQL for the first instant after the as_of day in tz."""
    return f"((DATE '{as_of}' + INTERVAL 1 DAY)::TIMESTAMP AT TIME ZONE '{tz}')"


def local_date(expr, tz):
    return f"(({expr})::TIMESTAMPTZ AT TIME ZONE '{tz}')::DATE"


# The supported range of instants: earlier timestamps are rejected rows (docs/inputs.md).
MIN_TS = "TIMESTAMPTZ '1900-01-01 00:00:00+00'"


def in_range(column):
    """SQL: a nullable timestamp that is null or not before 1900-01-01 UTC."""
    return f"({column} IS NULL OR {column}::TIMESTAMPTZ >= {MIN_TS})"


def not_yet_null(column, c):
    """SQL: the timestamp `column`, or NULL when it is at or after the cutoff `c` (it has not
    happened yet as of the run)."""
    return f"CASE WHEN {column}::TIMESTAMPTZ >= {c} THEN NULL ELSE {column}::TIMESTAMPTZ END AS {column}"


def clean_surveys(con, path, as_of, tz):
    """Creates table `surveys`: valid rows at or before as_of, first occurrence per id."""
    con.execute(f"""
        CREATE TABLE surveys AS
        WITH raw AS (SELECT *, lower(survey) AS s FROM read_parquet('{path}', file_row_number = true)),
        valid AS (
            SELECT * FROM raw
            WHERE response_id IS NOT NULL AND customer_id IS NOT NULL AND survey IS NOT NULL
              AND score IS NOT NULL AND submitted_at IS NOT NULL
              AND submitted_at::TIMESTAMPTZ < {cutoff(as_of, tz)} AND {in_range("submitted_at")}
              AND ((s = 'nps' AND score BETWEEN 0 AND 10) OR (s = 'csat' AND score BETWEEN 1 AND 5)
                   OR (s = 'ces' AND score BETWEEN 1 AND 7))
        )
        SELECT * REPLACE (s AS survey) FROM valid
        QUALIFY row_number() OVER (PARTITION BY response_id ORDER BY file_row_number) = 1
    """)


def clean_tickets(con, path, as_of, tz):
    """Creates table `tickets` with the rules of docs/inputs.md."""
    c = cutoff(as_of, tz)
    con.execute(f"""
        CREATE TABLE tickets AS
        WITH raw AS (
            SELECT * REPLACE (
                {not_yet_null("first_response_at", c)}, {not_yet_null("resolved_at", c)})
            FROM read_parquet('{path}', file_row_number = true)
            WHERE created_at::TIMESTAMPTZ < {c}
        ),
        valid AS (
            SELECT * FROM raw
            WHERE ticket_id IS NOT NULL AND customer_id IS NOT NULL AND channel IS NOT NULL
              AND created_at IS NOT NULL
              AND {in_range("created_at")} AND {in_range("first_response_at")} AND {in_range("resolved_at")}
              AND NOT coalesce(first_response_at < created_at::TIMESTAMPTZ, false)
              AND NOT coalesce(resolved_at < created_at::TIMESTAMPTZ, false)
              AND (handle_time_s IS NULL OR (isfinite(handle_time_s) AND handle_time_s BETWEEN 0 AND 1e9))
              AND NOT coalesce(contacts < 0, false)
        )
        SELECT * FROM valid
        QUALIFY row_number() OVER (PARTITION BY ticket_id ORDER BY file_row_number) = 1
    """)


def period_end_complete(con, period_start, period, as_of):
    step = {"day": "1 day", "week": "7 days", "month": "1 month", "quarter": "3 months", "year": "1 year"}[period]
    end = con.execute(f"SELECT (DATE '{period_start}' + INTERVAL {step})::DATE").fetchone()[0]
    return end <= datetime.date.fromisoformat(as_of) + datetime.timedelta(days=1)


def write_expected(table, expected, columns, key_len):
    """When CROSSCHECK_EXPECTED_DIR is set (by `make bench`), writes this implementation's own
    table there as Parquet, so the benchmark's DuckDB side produces files like cxmetrics."""
    out_dir = os.environ.get("CROSSCHECK_EXPECTED_DIR")
    if not out_dir:
        return
    os.makedirs(out_dir, exist_ok=True)
    names = [f"key{i}" for i in range(key_len)] + list(columns)
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for key, vals in expected.items():
            row = [v.isoformat() if isinstance(v, datetime.date) else v for v in (*key, *vals)]
            f.write(json.dumps(dict(zip(names, row))) + "\n")
    duckdb.execute(f"COPY (SELECT * FROM read_json_auto('{f.name}')) TO '{out_dir}/{table}.parquet' (FORMAT parquet)")
    os.unlink(f.name)


def compare(table, got_rows, expected, columns, key_len):
    """got_rows: tuples (key..., values...); expected: {key: tuple(values)} in `columns` order."""
    write_expected(table, expected, columns, key_len)
    problems = []
    seen = set()
    for row in got_rows:
        key, vals = tuple(row[:key_len]), row[key_len:]
        seen.add(key)
        if key not in expected:
            problems.append(f"unexpected row {key}")
            continue
        for name, g, w in zip(columns, vals, expected[key]):
            if isinstance(w, float) or isinstance(g, float):
                if g is None or w is None:
                    if g is not w and not (g is None and w is None):
                        problems.append(f"{key} {name}: got {g}, want {w}")
                elif not math.isclose(g, w, rel_tol=1e-9, abs_tol=1e-9):
                    problems.append(f"{key} {name}: got {g}, want {w}")
            elif g != w:
                problems.append(f"{key} {name}: got {g}, want {w}")
    for key in expected.keys() - seen:
        problems.append(f"missing row {key}")
    if problems:
        print("\n".join(problems[:50]))
        print(f"{table} crosscheck: {len(problems)} differences")
        sys.exit(1)
    print(f"{table} crosscheck: {len(got_rows)} rows match DuckDB")


def clean_orders(con, path, as_of, tz):
    """Creates table `orders` with the rules of docs/inputs.md."""
    con.execute(f"""
        CREATE TABLE orders AS
        WITH valid AS (
            SELECT * FROM read_parquet('{path}', file_row_number = true)
            WHERE order_id IS NOT NULL AND customer_id IS NOT NULL AND ordered_at IS NOT NULL
              AND amount IS NOT NULL AND isfinite(amount) AND abs(amount) < 1e15
              AND ordered_at::TIMESTAMPTZ < {cutoff(as_of, tz)} AND {in_range("ordered_at")}
        )
        SELECT * FROM valid
        QUALIFY row_number() OVER (PARTITION BY order_id ORDER BY file_row_number) = 1
    """)


def clean_events(con, path, as_of, tz):
    con.execute(f"""
        CREATE TABLE events AS
        SELECT * FROM read_parquet('{path}')
        WHERE customer_id IS NOT NULL AND event_at IS NOT NULL
          AND event_at::TIMESTAMPTZ < {cutoff(as_of, tz)} AND {in_range("event_at")}
    """)


def clean_customers(con, path, as_of, tz):
    c = cutoff(as_of, tz)
    con.execute(f"""
        CREATE TABLE customers AS
        WITH raw AS (
            SELECT * REPLACE (
                {not_yet_null("churned_at", c)})
            FROM read_parquet('{path}', file_row_number = true)
            WHERE customer_id IS NOT NULL AND (signup_at IS NULL OR signup_at::TIMESTAMPTZ < {c})
        )
        SELECT * FROM raw
        WHERE {in_range("signup_at")} AND {in_range("churned_at")}
        QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY file_row_number) = 1
    """)
