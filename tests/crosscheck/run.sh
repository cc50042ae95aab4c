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
passed=0
failed=0
check() {
  if "$PY" "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
}

# name | timezone | as_of | survey period | support period
cases=(
  "ny-month|America/New_York|2026-06-30|month|week"
  "kolkata-week|Asia/Kolkata|2026-03-17|week|month"
  "utc-day|UTC|2025-11-02|day|day"
  "berlin-quarter|Europe/Berlin|2026-05-31|quarter|quarter"
  "auckland-year|Pacific/Auckland|2026-06-30|year|week"
)
data="$root/sample-data"
for c in "${cases[@]}"; do
  IFS='|' read -r name tz as_of period support_period <<<"$c"
  job="$work/$name.yaml"
  cat >"$job" <<YAML
name: $name
as_of: $as_of
timezone: $tz
inputs:
  surveys: { path: $data/surveys.parquet }
  tickets: { path: $data/tickets.parquet }
pipelines:
  survey_scores: { period: $period, by: [channel, agent_id] }
  support_kpis:
    period: $support_period
    by: [channel, agent_id, category]
    sla_first_response: { chat: 60s, phone: 30s, email: 4h, default: 24h }
output:
  dir: $work/out-$name
YAML
  "$BIN" run "$job" >/dev/null 2>"$work/$name.log"
  check tests/crosscheck/survey_scores.py "$data/surveys.parquet" \
    "$work/out-$name/survey_scores.parquet" "$as_of" "$tz" "$period" channel agent_id
  check tests/crosscheck/support_kpis.py "$data/tickets.parquet" "$data/surveys.parquet" \
    "$work/out-$name/support_kpis.parquet" "$as_of" "$tz" "$support_period" \
    chat=60,phone=30,email=14400,default=86400 channel agent_id category
done
echo "crosscheck: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
