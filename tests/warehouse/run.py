"""Warehouse types, end to end from the CLI (docs/inputs.md, docs/outputs.md):

- the sample orders' amount as Decimal(38,9) and as Int64 cents with `scale: 2` give every
  table byte for byte as the Float64 run;
- `output.money: decimal` writes every money column as DECIMAL(38,6) (read by DuckDB), each
  value the float run's rounded to the millionth, so their sums are equal; every other column
  is the float run's;
- strings are plain UTF-8 (`string`), not `string_view`, for every table (pyarrow);
- amounts no double carries to the millionth, a scale on a float column and a scale on a
  column that is not money are refused with the documented exit codes and messages.

Usage: python3 tests/warehouse/run.py CXMETRICS_BIN
"""
import decimal
import glob
import os
import subprocess
import sys
import tempfile

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = sys.argv[1]
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def job(dirpath, name, orders, orders_columns="", money=""):
    """The example job (every pipeline) with the orders input replaced."""
    text = open(os.path.join(ROOT, "jobs", "example.yaml")).read()
    text = text.replace("../sample-data", os.path.join(ROOT, "sample-data"))
    cols = f", columns: {{ {orders_columns} }}" if orders_columns else ""
    text = text.replace(
        "orders:    { path: " + os.path.join(ROOT, "sample-data") + "/orders.parquet }",
        f"orders:    {{ path: {orders}{cols} }}",
    )
    text = text.replace("  report: true", "  report: false" + (f"\n  money: {money}" if money else ""))
    path = os.path.join(dirpath, name + ".yaml")
    open(path, "w").write(text)
    return path


def run(job_path, out):
    return subprocess.run([BIN, "run", job_path, "--output-dir", out], capture_output=True, text=True)


def tables(out):
    # The run log (a row per run, with its id and times) differs from run to run by nature.
    return {os.path.basename(p): open(p, "rb").read() for p in sorted(glob.glob(os.path.join(out, "*.parquet")))
            if not p.endswith("cxmetrics_runs.parquet")}


with tempfile.TemporaryDirectory() as d:
    orders = pq.read_table(os.path.join(ROOT, "sample-data", "orders.parquet"))
    amounts = orders.column("amount").to_pylist()
    cents = [round(a * 100) for a in amounts]
    # The sample amounts are whole cents to the millionth (some are a unit in the last place
    # off the double nearest the cents, as arithmetic leaves them): money is carried in
    # millionths, so the tables must not tell them apart.
    check(all(round(a * 1_000_000) == c * 10_000 for c, a in zip(cents, amounts)),
          "sample amounts are whole cents to the millionth")
    check(sum(c / 100 != a for c, a in zip(cents, amounts)) > 0,
          "some sample amounts are not the double nearest their cents")
    i = orders.schema.get_field_index("amount")
    dec = pa.array([decimal.Decimal(c).scaleb(-2) for c in cents], type=pa.decimal128(38, 9))
    pq.write_table(orders.set_column(i, "amount", dec), os.path.join(d, "orders_decimal.parquet"))
    pq.write_table(
        orders.remove_column(i).append_column("amount_cents", pa.array(cents, type=pa.int64())),
        os.path.join(d, "orders_cents.parquet"),
    )

    runs = {
        "float": job(d, "float", os.path.join(ROOT, "sample-data", "orders.parquet")),
        "decimal": job(d, "decimal", os.path.join(d, "orders_decimal.parquet")),
        "cents": job(d, "cents", os.path.join(d, "orders_cents.parquet"),
                     "amount: { name: amount_cents, scale: 2 }"),
        "money_decimal": job(d, "money_decimal", os.path.join(ROOT, "sample-data", "orders.parquet"),
                             money="decimal"),
    }
    outs = {}
    for name, path in runs.items():
        out = os.path.join(d, "out-" + name)
        p = run(path, out)
        check(p.returncode == 0, f"{name} run exits 0 ({p.stderr.strip()[-300:]})")
        outs[name] = out

    import json
    m = json.load(open(os.path.join(outs["cents"], "manifest.json")))
    check(m["inputs"]["orders"]["money_scales"] == {"amount": 2}
          and m["inputs"]["orders"]["column_mapping"] == {"amount": "amount_cents"},
          "the manifest records the mapping and the scale")
    base = tables(outs["float"])
    check(len(base) >= 12, f"the float run wrote every table ({len(base)})")
    for name in ("decimal", "cents"):
        got = tables(outs[name])
        same = [t for t in base if got.get(t) == base[t]]
        check(len(same) == len(base), f"{name} amounts: {len(same)} of {len(base)} tables byte-identical"
              + ("" if len(same) == len(base) else f" (differ: {sorted(set(base) - set(same))})"))

    # Strings are plain UTF-8 in every table.
    views = []
    for out in (outs["float"], outs["money_decimal"]):
        for p in glob.glob(os.path.join(out, "*.parquet")):  # the run log too
            for f in pq.read_schema(p):
                if pa.types.is_string_view(f.type) or pa.types.is_large_string(f.type):
                    views.append(f"{os.path.basename(p)}.{f.name}: {f.type}")
    check(not views, "every string column is plain `string`" + (f": {views}" if views else ""))

    # output.money: decimal.
    con = duckdb.connect()
    decimals = 0
    for t in sorted(base):
        fl = os.path.join(outs["float"], t)
        dc = os.path.join(outs["money_decimal"], t)
        ftypes = dict(con.sql(f"select column_name, column_type from (describe select * from '{fl}')").fetchall())
        dtypes = dict(con.sql(f"select column_name, column_type from (describe select * from '{dc}')").fetchall())
        check(list(ftypes) == list(dtypes), f"{t}: same columns under money: decimal")
        for c, ty in dtypes.items():
            if ty.startswith("DECIMAL"):
                decimals += 1
                check(ty == "DECIMAL(38,6)" and ftypes[c] == "DOUBLE", f"{t}.{c}: DECIMAL(38,6) for a DOUBLE")
                fv = [r[0] for r in con.sql(f'select "{c}" from \'{fl}\'').fetchall()]
                dv = [r[0] for r in con.sql(f'select "{c}" from \'{dc}\'').fetchall()]
                q = decimal.Decimal("0.000001")
                want = [None if v is None else decimal.Decimal(v).quantize(q, decimal.ROUND_HALF_EVEN) for v in fv]
                check(dv == want, f"{t}.{c}: every value is the float's, rounded to the millionth")
                dsum = con.sql(f'select sum("{c}") from \'{dc}\'').fetchall()[0][0]
                fsum = sum((w for w in want if w is not None), decimal.Decimal(0))
                check(dsum == fsum or (dsum is None and not any(w is not None for w in want)),
                      f"{t}.{c}: DuckDB's DECIMAL sum {dsum} equals the float run's rounded values' sum {fsum}")
                ffsum = con.sql(f'select sum("{c}") from \'{fl}\'').fetchall()[0][0]
                if ffsum is not None:
                    check(abs(float(dsum) - ffsum) <= 1e-6 * max(1.0, abs(ffsum)) + 1e-6 * len(fv),
                          f"{t}.{c}: and the float run's own sum {ffsum}")
            else:
                same = con.sql(f'select count(*) from (select "{c}" from \'{fl}\' except all select "{c}" from \'{dc}\')').fetchall()[0][0]
                check(same == 0, f"{t}.{c}: not money, unchanged")
    check(decimals >= 15, f"{decimals} money columns written as DECIMAL")

    # Refusals.
    big = decimal.Decimal("123456789012345.0000010")
    bad = orders.set_column(i, "amount", pa.array([big] + [decimal.Decimal(c).scaleb(-2) for c in cents[1:]],
                                                    type=pa.decimal128(38, 7)))
    pq.write_table(bad, os.path.join(d, "orders_bad.parquet"))
    p = run(job(d, "bad", os.path.join(d, "orders_bad.parquet")), os.path.join(d, "out-bad"))
    check(p.returncode == 3 and "column `amount`: 1 rows hold an amount that a double cannot carry" in p.stderr
          and "orders_bad.parquet" in p.stderr and "row 1, 123456789012345.0000010" in p.stderr,
          f"an amount no double carries: exit 3 naming file, column, rows ({p.returncode}: {p.stderr.strip()[-400:]})")
    check(not os.path.exists(os.path.join(d, "out-bad", "churn.parquet")), "... and nothing is published")
    p = run(job(d, "scaled_float", os.path.join(ROOT, "sample-data", "orders.parquet"),
                "amount: { name: amount, scale: 2 }"), os.path.join(d, "out-sf"))
    check(p.returncode == 3 and "has a scale of 2, which is for an integer column of minor units; found f64" in p.stderr,
          f"a scale on a float column: exit 3 ({p.returncode}: {p.stderr.strip()[-300:]})")
    text = open(runs["float"]).read().replace(
        "tickets:   { path: " + os.path.join(ROOT, "sample-data") + "/tickets.parquet }",
        "tickets:   { path: " + os.path.join(ROOT, "sample-data") + "/tickets.parquet, columns: { handle_time_s: { name: handle_time_s, scale: 2 } } }")
    text = text.replace("amount_cents, scale: 2", "amount_cents, scale: 19")
    open(os.path.join(d, "scaled_text.yaml"), "w").write(text)
    p = run(os.path.join(d, "scaled_text.yaml"), os.path.join(d, "out-st"))
    check(p.returncode == 2 and "inputs.tickets.columns.handle_time_s.scale" in p.stderr and "is not money" in p.stderr,
          f"a scale on a column that is not money: exit 2 ({p.returncode}: {p.stderr.strip()[-300:]})")
    p = run(job(d, "scale19", os.path.join(d, "orders_cents.parquet"), "amount: { name: amount_cents, scale: 19 }"),
            os.path.join(d, "out-19"))
    check(p.returncode == 2 and "19 is out of range: 0 to 18" in p.stderr,
          f"scale 19: exit 2 ({p.returncode}: {p.stderr.strip()[-300:]})")

print(f"{len(failures)} failed" if failures else "warehouse checks passed")
sys.exit(1 if failures else 0)
