"""The Spark engine's driver: ``execution: {engine: spark, remote: "sc://host:15002"}``.

Spark reads the inputs, moves the customer buckets between its executors and retries failed
tasks; every number is computed by the package's Rust core (``_cxmetrics``), in Spark's Python
workers and here. The stages, and the wire format (``ROWS``, ``OUT``), are described in the
Rust module ``src/spark/mod.rs``; the operator's guide is ``docs/spark.md``.

Spark's own work is moving rows and exact integer aggregates over them: a window that keeps
the first valid row of each id, row counts, maxima and sums of 0/1 flags. It merges the
partials of every bucket: each ``By`` partial is one group, folded by the Rust merge in a worker
(integer sums, minima, maxima); ``Rows`` partials are a union. Nothing else is computed in Spark
SQL.
"""
import json
import socket
import sys
import threading
import time
import urllib.parse

# What a ROWS row is (`__what`), as in src/spark/mod.rs (`what`).
DATA, KEY, STATS, DROP, CSAT, KEPT = 0, 1, 2, 3, 4, 5
# What an OUT row is (`__what`), as in src/spark/mod.rs (`out`).
OUT_BY, OUT_KEPT, OUT_ROWS = 0, 1, 2

ROWS_DDL = (
    "__bucket int, __what int, __kind int, __row bigint, __key string, __ticket string, "
    "__n bigint, __m bigint, __data binary"
)
OUT_DDL = (
    "__bucket int, __what int, __pipeline string, __name string, __merge string, "
    "__part int, __parts int, __data binary"
)
# Rows per Arrow batch handed to a worker's clean: large enough that a batch's blobs per bucket
# are not tiny, small enough that a batch is a few tens of MB.
BATCH_ROWS = 200_000
# Rows per batch of a persisted frame (Spark's default is 10,000): a batch is built in one heap
# buffer, and rows of blobs are large.
CACHED_BATCH_ROWS = 1_000
# OUT rows handed to the driver's merge at a time.
OUT_CHUNK = 64
# Buckets whose Rows partials and kept frames the driver fetches in one Spark job: the results
# of a job's tasks together must stay under the server's `spark.driver.maxResultSize` (1 GiB by
# default), which a round's whole output passes at 10M customers (bench/results-spark.md).
BUCKETS_PER_FETCH = 4


def _arrow_schema(ddl):
    import pyarrow as pa

    types = {
        "int": pa.int32(),
        "bigint": pa.int64(),
        "string": pa.string(),
        "binary": pa.binary(),
    }
    fields = []
    for part in ddl.split(","):
        name, ty = part.split()
        fields.append(pa.field(name, types[ty]))
    return pa.schema(fields)


def _to_parquet(table):
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="none")
    return sink.getvalue().to_pybytes()


def _from_parquet(data, schema):
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pq.read_table(pa.BufferReader(data)).select(schema.names).cast(schema)


def _raise_worker_failure(text):
    """A worker's failure, found in Spark's error text, as this package's error."""
    from . import CxmetricsError

    for marker, code in (("CXMETRICS-INPUT[", 3), ("CXMETRICS-OTHER[", 1)):
        start = text.find(marker)
        if start >= 0:
            end = text.find("]CXMETRICS-END", start)
            message = text[start + len(marker) : end if end > 0 else None]
            raise CxmetricsError(code, f"error: {message}")
    return None


def _clean_fn(context, kind, path):
    rows = _arrow_schema(ROWS_DDL)

    def clean(batches):
        import pyarrow as pa

        from cxmetrics import _cxmetrics

        for batch in batches:
            data = _to_parquet(pa.Table.from_batches([batch]))
            out = _cxmetrics.spark_clean(context, kind, path, data)
            yield from _from_parquet(out, rows).to_batches()

    return clean


def _map_fn(context, round_):
    out_schema = _arrow_schema(OUT_DDL)

    def map_bucket(table):
        from cxmetrics import _cxmetrics

        out = _cxmetrics.spark_map(context, round_, _to_parquet(table))
        return _from_parquet(out, out_schema)

    return map_bucket


def _merge_fn():
    out_schema = _arrow_schema(OUT_DDL)

    def merge(table):
        from cxmetrics import _cxmetrics

        return _from_parquet(_cxmetrics.spark_merge(_to_parquet(table)), out_schema)

    return merge


def _address(remote):
    parsed = urllib.parse.urlparse(remote.split(";")[0])
    return parsed.hostname, parsed.port or 15002


def connect(remote, timeout):
    """A Spark Connect session, or CxmetricsError (exit 3) when the server does not answer
    within ``timeout`` seconds: first the TCP connection, then a first query."""
    from . import CxmetricsError

    host, port = _address(remote)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        raise CxmetricsError(
            3,
            f"error: cannot reach the Spark Connect server {remote} within {timeout}s: {e}",
        ) from None
    from pyspark.sql import SparkSession

    result = {}

    def probe():
        try:
            spark = SparkSession.builder.remote(remote).getOrCreate()
            result["session"] = spark
            spark.range(1).collect()
            result["spark"] = spark
        except Exception as e:  # reported below, with the address
            result["error"] = e

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout)
    if "spark" in result:
        return result["spark"]
    session = result.get("session")
    if session is not None:
        # The client says goodbye to the server at exit, retrying for minutes: not to a server
        # that did not answer.
        import atexit

        atexit.unregister(session.client._on_exit)
    why = result.get("error", f"no answer within {timeout}s")
    first = str(why).strip().splitlines()[0] if str(why).strip() else type(why).__name__
    raise CxmetricsError(
        3, f"error: the Spark Connect server {remote} did not answer a first query: {first}"
    )


def _rows(F, bucket, what, kind, row, key=None, n=None, m=None, data=None):
    """The columns of a ROWS row without a ticket."""
    def null(ty):
        return F.lit(None).cast(ty)

    return [
        bucket.cast("int").alias("__bucket"),
        F.lit(what).alias("__what"),
        kind.cast("int").alias("__kind"),
        row.cast("bigint").alias("__row"),
        (null("string") if key is None else key).alias("__key"),
        null("string").alias("__ticket"),
        (null("bigint") if n is None else n.cast("bigint")).alias("__n"),
        (null("bigint") if m is None else m.cast("bigint")).alias("__m"),
        (null("binary") if data is None else data).alias("__data"),
    ]


def _union(frames):
    out = frames[0]
    for f in frames[1:]:
        out = out.unionByName(f)
    return out


def _log(message):
    print(f"cxmetrics spark: {message}", file=sys.stderr, flush=True)


def run(argv, child, remote, timeout):
    """Runs the `run` command line ``argv`` on the Spark Connect server ``remote``. Returns the
    output directory; raises CxmetricsError with the command's exit code."""
    from pyspark.errors import PySparkException
    from pyspark.sql import functions as F

    from . import CxmetricsError
    from ._cxmetrics import RunFailed, SparkDriver

    spark = connect(remote, timeout)
    try:
        driver = SparkDriver(argv, child)
    except RunFailed as e:
        raise CxmetricsError(*e.args) from None
    try:
        return _run(spark, driver, F)
    except RunFailed as e:
        raise CxmetricsError(*e.args) from None
    except PySparkException as e:
        _raise_worker_failure(str(e))
        raise CxmetricsError(1, f"error: Spark failed: {str(e).strip().splitlines()[0]}") from None


def _run(spark, driver, F):
    from pyspark.sql import Window
    from pyspark.storagelevel import StorageLevel

    # Every persisted frame is kept on the executors' disks, not in their heaps: cached in the
    # heap, the cleaned rows' batches and then the ranked key rows left too little heap for
    # building a cached batch and for the window's sort at 10M customers, and the executors died
    # (bench/results-spark.md).
    ON_DISK = StorageLevel.DISK_ONLY

    t0 = time.time()
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(BATCH_ROWS))
    spark.conf.set("spark.sql.inMemoryColumnarStorage.batchSize", str(CACHED_BATCH_ROWS))
    context = driver.context()
    inputs = json.loads(driver.inputs())
    buckets = driver.buckets()
    rows_schema = _arrow_schema(ROWS_DDL)

    # 1. Clean: every file read by Spark, numbered, cleaned by the Rust core in the workers.
    parts = []
    for inp in inputs:
        for f in inp["files"]:
            df = spark.read.parquet(f["path"])
            cols = [F.col(f"`{c}`") for c in f["columns"]]
            row = (F.col("_metadata.row_index") + F.lit(f["offset"])).cast("bigint").alias("__row")
            df = df.select(*cols, row)
            parts.append(df.mapInArrow(_clean_fn(context, inp["index"], f["path"]), ROWS_DDL))
        if inp["table"] is not None:
            parts.append(_table_rows(spark, driver, context, inp, F))
    cleaned = _union(parts).persist(ON_DISK)
    import pyarrow.compute as pc

    stats = cleaned.filter(F.col("__what") == STATS).toArrow().cast(rows_schema)
    for inp in inputs:
        mine = stats.filter(pc.equal(stats["__kind"], inp["index"]))
        driver.add_stats(inp["index"], _to_parquet(mine))

    # 2. Settle: a repeated id's rows after the first valid one in input order are dropped (a
    # window over the key rows of the inputs with ids); the kept rows' count, latest time and
    # null times. (An input without ids keeps every valid row: its facts are the clean's.)
    keys = cleaned.filter(F.col("__what") == KEY)
    w = Window.partitionBy("__kind", "__key").orderBy("__row")
    ranked = keys.withColumn("__rank", F.row_number().over(w)).persist(ON_DISK)
    kept = ranked.filter(F.col("__rank") == 1).drop("__rank")
    dropped = ranked.filter(F.col("__rank") > 1).drop("__rank")
    facts = {
        r["__kind"]: r
        for r in kept.groupBy("__kind")
        .agg(
            F.count(F.lit(1)).alias("rows"),
            F.max("__n").alias("latest"),
            F.sum(F.when(F.col("__n").isNull(), 1).otherwise(0)).alias("nulls"),
        )
        .collect()
    }
    repeats = {
        r["__kind"]: r
        for r in dropped.groupBy("__kind")
        .agg(
            F.count(F.lit(1)).alias("n"),
            F.min("__row").alias("first_row"),
            F.min_by("__key", "__row").alias("first_key"),
        )
        .collect()
    }
    for inp in inputs:
        if not inp["keyed"]:
            continue
        f = facts.get(inp["index"])
        r = repeats.get(inp["index"])
        driver.set_facts(
            inp["index"],
            int(f["rows"]) if f else 0,
            None if f is None or f["latest"] is None else int(f["latest"]),
            int(f["nulls"] or 0) if f else 0,
            int(r["n"]) if r else 0,
            (int(r["first_row"]), r["first_key"]) if r else None,
        )
    drops = dropped.select(*_rows(F, F.col("__bucket"), DROP, F.col("__kind"), F.col("__row")))

    # The CSAT responses per ticket (integer sums), at the bucket of the ticket's kept row.
    csat = None
    index = {inp["kind"]: inp["index"] for inp in inputs}
    if json.loads(context).get("csat_positive_from") is not None and "tickets" in index:
        responses = (
            kept.filter((F.col("__kind") == index["surveys"]) & F.col("__ticket").isNotNull())
            .groupBy("__ticket")
            .agg(F.count(F.lit(1)).alias("__n"), F.sum("__m").alias("__m"))
        )
        tickets = kept.filter(F.col("__kind") == index["tickets"]).select(
            F.col("__key").alias("__tk"), F.col("__bucket").alias("__tb")
        )
        csat = responses.join(tickets, responses["__ticket"] == tickets["__tk"]).select(
            *_rows(F, F.col("__tb"), CSAT, F.lit(-1), F.lit(0), key=F.col("__ticket"),
                   n=F.col("__n"), m=F.col("__m"))
        )

    driver.gates()
    _log(f"inputs settled in {time.time() - t0:.1f}s ({buckets} buckets)")

    # 3. Rounds: the maps that read inputs in Spark, by bucket; the others here. The rows a
    # map keeps stay in Spark for the next rounds' maps (and go to the driver, which writes
    # them and may map them): the driver sends Spark only what its own maps kept.
    context = driver.context()
    data = cleaned.filter(F.col("__what") == DATA)
    kept, outs = [], []
    for round_ in range(driver.rounds()):
        driver.map_on_driver(round_)
        if driver.spark_round(round_):
            sent = _from_parquet(driver.kept_rows(), rows_schema)
            if sent.num_rows:
                kept.append(spark.createDataFrame(sent))
            parts = [data, drops] + ([csat] if csat is not None else []) + kept
            out = (
                _union(parts)
                .groupBy("__bucket")
                .applyInArrow(_map_fn(context, round_), OUT_DDL)
                .persist(ON_DISK)
            )
            outs.append(out)
            out.count()
            _log(f"round {round_} mapped at {time.time() - t0:.1f}s")
            # Spark merges the partials: a By partial's frames of every bucket folded into
            # one by the Rust merge in a worker (exact integer sums, minima and maxima); the
            # Rows partials are a union, and reach the driver as they are.
            merged = (
                out.filter(F.col("__what") == OUT_BY)
                .groupBy("__pipeline", "__name")
                .applyInArrow(_merge_fn(), OUT_DDL)
            )
            _merge(driver, merged)
            rest = out.filter(F.col("__what") != OUT_BY)
            for part in _bucket_ranges(F, buckets):
                _merge(driver, rest.filter(part))
            kept.append(
                out.filter(F.col("__what") == OUT_KEPT).select(
                    *_rows(F, F.col("__bucket"), KEPT, F.lit(-1), F.col("__part"),
                           key=F.col("__name"), data=F.col("__data"))
                )
            )
        driver.finalize(round_)
        _log(f"round {round_} done at {time.time() - t0:.1f}s")
    for out in outs:
        out.unpersist()
    ranked.unpersist()
    cleaned.unpersist()
    return driver.publish()


def _table_rows(spark, driver, context, inp, F):
    """The clean of a table input: its columns checked against the contract from its schema,
    its rows numbered in the order of its files' paths and their rows."""
    from . import CxmetricsError

    name = inp["table"]
    df = spark.table(name)
    columns = json.loads(driver.table_columns(inp["index"], _to_parquet(df.limit(0).toArrow())))
    try:
        located = df.select(
            *[F.col(f"`{c}`") for c in columns],
            F.col("_metadata.file_path").alias("__file"),
            F.col("_metadata.row_index").alias("__ri"),
        )
        counts = located.groupBy("__file").count().orderBy("__file").collect()
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CxmetricsError(
            3,
            f"error: {inp['kind']} (table {name}): cxmetrics numbers a table's rows by its "
            f"files (_metadata.file_path, _metadata.row_index), which this table does not "
            f"have: {first}",
        ) from None
    offsets, at = [], 0
    for r in counts:
        offsets.append((r["__file"], at))
        at += int(r["count"])
    if not offsets:
        offsets.append(("", 0))
    offs = spark.createDataFrame(offsets, "__file string, __offset bigint")
    numbered = located.join(F.broadcast(offs), "__file").select(
        *[F.col(f"`{c}`") for c in columns],
        (F.col("__offset") + F.col("__ri")).cast("bigint").alias("__row"),
    )
    return numbered.mapInArrow(_clean_fn(context, inp["index"], f"table {name}"), ROWS_DDL)


def _bucket_ranges(F, buckets):
    """Conditions on `__bucket` that split every integer into ranges of BUCKETS_PER_FETCH
    buckets (the first and last open-ended, so that no row is left out)."""
    bounds = list(range(BUCKETS_PER_FETCH, buckets, BUCKETS_PER_FETCH))
    if not bounds:
        return [F.lit(True)]
    b = F.col("__bucket")
    parts = [b < bounds[0]]
    parts += [(b >= lo) & (b < hi) for lo, hi in zip(bounds, bounds[1:])]
    parts.append(b >= bounds[-1])
    return parts


def _merge(driver, out):
    """Hands Spark's merged partials and kept rows to the driver a few rows at a time, in the
    order its tasks finish: the driver puts every partial in bucket order itself."""
    import pyarrow as pa

    schema = _arrow_schema(OUT_DDL)
    chunk = []

    def flush():
        if chunk:
            table = pa.Table.from_pylist(chunk, schema=schema)
            driver.add_output(_to_parquet(table))
            chunk.clear()

    for row in out.toLocalIterator():
        chunk.append(row.asDict())
        if len(chunk) >= OUT_CHUNK:
            flush()
    flush()
