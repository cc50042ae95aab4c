#!/usr/bin/env bash
# Runs cxmetrics on the sample data with several calendars and compares every output table
# with an independent DuckDB implementation of its README definition.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="${CXMETRICS:?path to the cxmetrics binary}"
PY="${PYTHON:-python3}"
if ! "$PY" -c "import duckdb" 2>/dev/null; then
  "$PY" -m pip install --quiet --disable-pip-version-check duckdb
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
root="$(pwd)"

# name | timezone | as_of | period
cases=(
  "ny-month|America/New_York|2026-06-30|month"
  "kolkata-week|Asia/Kolkata|2026-03-17|week"
  "utc-day|UTC|2025-11-02|day"
  "berlin-quarter|Europe/Berlin|2026-05-31|quarter"
  "auckland-year|Pacific/Auckland|2026-06-30|year"
)
for c in "${cases[@]}"; do
  IFS='|' read -r name tz as_of period <<<"$c"
  job="$work/$name.yaml"
  cat >"$job" <<YAML
name: $name
as_of: $as_of
timezone: $tz
inputs:
  surveys: { path: $root/sample-data/surveys.parquet }
pipelines:
  survey_scores: { period: $period, by: [channel, agent_id] }
output:
  dir: $work/out-$name
YAML
  "$BIN" run "$job" >/dev/null 2>"$work/$name.log"
  "$PY" tests/crosscheck/survey_scores.py "$root/sample-data/surveys.parquet" \
    "$work/out-$name/survey_scores.parquet" "$as_of" "$tz" "$period" channel agent_id
done
echo "crosscheck: all tables match"
