# cxmetrics: the two commands of the README are `make run` and `make test`.
CARGO ?= cargo
TARGET_DIR := $(if $(CARGO_TARGET_DIR),$(CARGO_TARGET_DIR),target)
RELEASE_BIN := $(TARGET_DIR)/release/cxmetrics
DEBUG_BIN := $(TARGET_DIR)/debug/cxmetrics
PYTHON ?= python3

.PHONY: run test fmt-check clippy unit crosscheck warehouse-test lookml-test storage-test python-test spark-test report-test report-screenshots wheel sample-data bench bench-large bench-spark

## Build (release) and run the example job on the committed sample data.
run:
	$(CARGO) build --release --locked
	$(RELEASE_BIN) run jobs/example.yaml

## Everything CI runs: formatting, lints, unit + integration tests, DuckDB cross-checks, the
## report in a headless browser.
test: fmt-check clippy unit crosscheck warehouse-test lookml-test storage-test python-test spark-test report-test

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings

unit:
	$(CARGO) test --locked

## Independent DuckDB implementations of the output definitions, compared on sample data.
crosscheck:
	$(CARGO) build --locked
	CXMETRICS=$(DEBUG_BIN) PYTHON=$(PYTHON) bash tests/crosscheck/run.sh

## Warehouse types from the CLI: Decimal and integer-cents money give the Float64 run's tables
## byte for byte; `output.money: decimal` is read by DuckDB as DECIMAL; strings are plain UTF-8.
warehouse-test:
	$(CARGO) build --locked
	CXMETRICS=$(DEBUG_BIN) PYTHON=$(PYTHON) bash tests/warehouse/run.sh

## The Looker model: `cxmetrics lookml` parsed with lkml, every measure run in DuckDB over daily
## rows against the weekly/monthly run, over segments against the `all` rows, over single rows.
lookml-test:
	$(CARGO) build --locked
	CXMETRICS=$(DEBUG_BIN) PYTHON=$(PYTHON) bash tests/lookml/run.sh

## Object storage: the example job from s3:// to s3:// against moto_server (started on 127.0.0.1
## and stopped by the test), byte for byte as the local run; a run killed mid-upload; bad
## credentials, missing buckets and an unreachable endpoint.
storage-test:
	$(CARGO) build --locked
	CXMETRICS=$(DEBUG_BIN) PYTHON=$(PYTHON) bash tests/storage/run.sh

## The Python package: a wheel built with maturin, installed into a fresh venv; cxmetrics.run,
## cxmetrics.compute and `python -m cxmetrics` checked against the binary.
python-test:
	$(CARGO) build --locked
	CXMETRICS=$(DEBUG_BIN) PYTHON=$(PYTHON) bash tests/python/run.sh

## The Spark engine for real: the release wheel (make wheel) and pyspark 4.3.0 from PyPI in a
## fresh venv, a Spark Connect server on 127.0.0.1 in local-cluster[2,1,1024] mode (started and
## stopped by the test), 200k customers through Spark with 1 and 7 buckets, a table input and an
## executor killed during the map phase, each byte for byte against the local run; the failures.
spark-test: wheel
	PYTHON=$(PYTHON) bash tests/spark/run.sh

## The release wheel of the Python package into dist/ (installs maturin from PyPI if missing).
wheel:
	$(PYTHON) -m maturin --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet "maturin==1.16.0"
	$(PYTHON) -m maturin build --release --locked -m python/Cargo.toml --out dist

## The example job's report opened in headless Chromium (installed from Debian when missing)
## with the network blocked: no console errors, no requests, every section, and every value
## on the page equal to its table's.
report-test:
	$(CARGO) build --locked
	CXMETRICS=$(DEBUG_BIN) PYTHON=$(PYTHON) bash tests/report/run.sh

## The same, keeping a screenshot of the whole report and of each section under out/report-screenshots.
report-screenshots:
	$(CARGO) build --locked
	CXMETRICS=$(DEBUG_BIN) PYTHON=$(PYTHON) SHOTS=$(CURDIR)/out/report-screenshots bash tests/report/run.sh

## Regenerate the committed sample data (deterministic: same bytes every time).
sample-data:
	$(CARGO) build --release --locked
	$(RELEASE_BIN) generate --out sample-data --customers 5000 --days 548 --seed 42

## Benchmark (release): cxmetrics vs DuckDB vs the read floor at 100k and 1M customers;
## results in bench/results.md. Installs the duckdb Python package with pip if missing.
bench:
	$(CARGO) build --release --locked --bin cxmetrics --examples
	$(PYTHON) -c "import duckdb" 2>/dev/null || $(PYTHON) -m pip install --quiet duckdb
	BENCH_MEMORY_LIMIT=2GiB $(PYTHON) bench/run.py $(RELEASE_BIN) 100000 1000000

## Time and memory at 3M and 10M customers, without the table checks (only when asked: about
## 110M orders and 420M events on disk at 10M); results in bench/results-large.md.
bench-large:
	$(CARGO) build --release --locked --bin cxmetrics --examples
	$(PYTHON) -c "import duckdb" 2>/dev/null || $(PYTHON) -m pip install --quiet duckdb
	BENCH_CHECKS=0 BENCH_COMPARE_B1=0 BENCH_MEMORY_LIMIT=8GiB BENCH_RUNS=3 BENCH_RESULTS=bench/results-large.md \
		$(PYTHON) bench/run.py $(RELEASE_BIN) 1000000 3000000 10000000

## The Spark engine against the local bucketed run at 1M and 10M customers, side by side, on
## the local Spark cluster (memory limited to stay under 20 GiB); results in bench/results-spark.md.
bench-spark: wheel
	PYTHON=$(PYTHON) bash bench/spark.sh $(or $(SIZES),1000000 10000000)
