# cxmetrics: the two commands of the README are `make run` and `make test`.
CARGO ?= cargo
TARGET_DIR := $(if $(CARGO_TARGET_DIR),$(CARGO_TARGET_DIR),target)
RELEASE_BIN := $(TARGET_DIR)/release/cxmetrics
DEBUG_BIN := $(TARGET_DIR)/debug/cxmetrics
PYTHON ?= python3

.PHONY: run test fmt-check clippy unit crosscheck sample-data bench

## Build (release) and run the example job on the committed sample data.
run:
	$(CARGO) build --release --locked
	$(RELEASE_BIN) run jobs/example.yaml

## Everything CI runs: formatting, lints, unit + integration tests, DuckDB cross-checks.
test: fmt-check clippy unit crosscheck

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --locked --all-targets -- -D warnings

unit:
	$(CARGO) test --locked

## Independent DuckDB implementations of the output definitions, compared on sample data.
crosscheck:
	$(CARGO) build --locked
	CXMETRICS=$(DEBUG_BIN) PYTHON=$(PYTHON) bash tests/crosscheck/run.sh

## Regenerate the committed sample data (deterministic: same bytes every time).
sample-data:
	$(CARGO) build --release --locked
	$(RELEASE_BIN) generate --out sample-data --customers 5000 --days 548 --seed 42

## Benchmark (release): 100k and 1M customers; results in bench/results.md.
bench:
	$(CARGO) build --release --locked
	$(PYTHON) bench/run.py $(RELEASE_BIN) 100000 1000000
