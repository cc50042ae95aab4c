"""Checks what tests/report/open.mjs saw of a report: no console or page errors, no request
but the file itself, every expected section, and every value mark equal to its table's value
(read from the Parquet files with DuckDB, independently of cxmetrics).

    python3 verify.py RESULT.json OUTPUT_DIR SECTION [SECTION ...]
"""
import json
import sys

import duckdb


def main():
    result, out, *sections = sys.argv[1:]
    seen = json.load(open(result))
    problems = []
    problems += seen["errors"]
    problems += [f"request to {u}" for u in seen["requests"] if u != seen["url"]]
    problems += [f"section {s} missing" for s in sections if s not in seen["sections"]]
    if seen["pdf_bytes"] <= 0:
        problems.append("the page did not print")
    con = duckdb.connect()
    per_table = {}
    for m in seen["marks"]:
        table, column = m["table"], m["column"]
        pairs = [p.split("=", 1) for p in m["key"].split("|") if p]
        where = " AND ".join(f'CAST("{k}" AS VARCHAR) = ?' for k, _ in pairs) or "TRUE"
        what = "count(*)" if column == "*count" else f'"{column}"'
        rows = con.execute(
            f"SELECT {what} FROM read_parquet('{out}/{table}.parquet') WHERE {where}",
            [v for _, v in pairs]).fetchall()
        if len(rows) != 1:
            problems.append(f"{table}.{column} {m['key']}: {len(rows)} rows")
            continue
        want, got = rows[0][0], float(m["value"])
        if want is None or float(want) != got:
            problems.append(f"{table}.{column} {m['key']}: page shows {got!r}, table has {want!r}")
        per_table[table] = per_table.get(table, 0) + 1
    if len(seen["marks"]) < 100:
        problems.append(f"only {len(seen['marks'])} value marks")
    for p in problems[:40]:
        print(p)
    print(f"report: {len(seen['sections'])} sections, {len(seen['marks'])} marks checked against the tables "
          f"({', '.join(f'{t} {n}' for t, n in sorted(per_table.items()))}); {len(problems)} problems")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
