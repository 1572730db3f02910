#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# `fwire stream --metrics-out FILE` against the real cluster (run through test/with-pg.sh):
# promtool (Debian package prometheus) accepts the exposition of real runs, which carries
# non-zero samples of the backpressure signal fraiseql_channel_occupancy_rows, and whose
# counters agree with what the command itself printed. Skips (77) without promtool.
set -euo pipefail
fwire=${1:?usage: check-metrics-cli.sh FWIRE}
command -v promtool >/dev/null || { echo "promtool not installed: skipped"; exit 77; }
dsn="host=$FW_TEST_SOCKDIR port=$FW_TEST_PORT dbname=$FW_TEST_DBNAME user=$FW_TEST_USER_TRUST"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
check() { # DESCRIPTION CONDITION...
  local what=$1
  shift
  if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fails=$((fails + 1)); fi
}
# the value of one sample ("name{labels}" exactly), 0 when absent
sample() { awk -v s="$2" '$1 == s { v = $2 } END { print v + 0 }' "$1"; }

# 1. a fast consumer (--count), the default adaptive chunk size
"$fwire" stream --count --metrics-out "$tmp/fast.prom" v_bench_100k "$dsn" >"$tmp/fast.out"
read -r rows bytes <"$tmp/fast.out"
check "promtool accepts the exposition of a real run" promtool check metrics <"$tmp/fast.prom"
E='entity="v_bench_100k"'
occ=$(sample "$tmp/fast.prom" "fraiseql_channel_occupancy_rows_count{$E}")
check "occupancy histogram has samples ($occ)" test "${occ%.*}" -gt 0
nonzero=$(grep -c "^fraiseql_channel_occupancy_rows_bucket{$E,le=\"[^\"]*\"} [1-9]" "$tmp/fast.prom" || true)
check "occupancy buckets are non-zero ($nonzero)" test "$nonzero" -gt 0
check "rows delivered = rows printed ($rows)" \
  test "$(sample "$tmp/fast.prom" "fraiseql_rows_delivered_total{$E}")" = "$rows"
check "one query completed" test \
  "$(sample "$tmp/fast.prom" "fraiseql_query_completed_total{$E,status=\"success\"}")" = 1
check "no connection left active" test "$(sample "$tmp/fast.prom" fraiseql_connections_active)" = 0
check "no row left buffered" test "$(sample "$tmp/fast.prom" "fraiseql_rows_buffered{$E}")" = 0
families=$(grep -c '^# TYPE fraiseql_' "$tmp/fast.prom")
check "every family is exposed ($families)" test "$families" -ge 39

# 2. a slow consumer: a pipe nobody reads until the budget is full, then a slow reader
"$fwire" stream --max-memory 64K --metrics-out "$tmp/slow.prom" v_bench_100k "$dsn" |
  (sleep 1; cat >/dev/null)
check "promtool accepts the slow run too" promtool check metrics <"$tmp/slow.prom"
stops=$(sample "$tmp/slow.prom" "fraiseql_read_stops_total{$E}")
check "reads stopped for backpressure ($stops)" test "${stops%.*}" -gt 0
stalled=$(sample "$tmp/slow.prom" "fraiseql_read_stop_duration_seconds_sum{$E}")
check "stalled seconds recorded ($stalled)" awk -v v="$stalled" 'BEGIN { exit !(v > 0.5) }'

# 3. a failed connection is counted with its phase, and the file is still written
set +e
"$fwire" stream --count --metrics-out "$tmp/fail.prom" v_bench_1k \
  "host=$FW_TEST_SOCKDIR port=$FW_TEST_PORT dbname=$FW_TEST_DBNAME user=$FW_TEST_USER_SCRAM password=wrong" \
  >/dev/null 2>&1
rc=$?
set -e
check "a failed connection exits 2 ($rc)" test "$rc" = 2
check "it is counted as an auth failure" test "$(sample "$tmp/fail.prom" \
  'fraiseql_authentications_failed_total{mechanism="scram-sha-256",reason="invalid_password"}')" = 1
check "and a connection failed in the auth phase" test "$(sample "$tmp/fail.prom" \
  'fraiseql_connections_failed_total{transport="unix",phase="auth"}')" = 1

echo "$fails failed"
[ "$fails" -eq 0 ]
