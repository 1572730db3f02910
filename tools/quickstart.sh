#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The quick start in one command, on a fresh Debian 12 machine: installs the dependencies, builds
# fwire, starts a throwaway PostgreSQL 15 (test/pgcluster.sh, stopped again on exit) and streams
# a sample view from it.
#
#   tools/quickstart.sh [SQL]      default: SELECT data FROM v_fixture, then a count of v_bench_1m
#
# It first runs `fwire ping` (SCRAM over verified TLS). Until the streaming API lands (README
# "Status"), the rows are read by bench/pq_raw, which speaks the protocol through proto/ over a
# plain unix socket as the cluster's trust user; it takes no DSN. FW_SKIP_DEPS=1 skips apt-get.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
case "$#:${1:-}" in
  0:* | 1:*) ;;
  *) echo "usage: tools/quickstart.sh [SQL]" >&2; exit 2 ;;
esac
case "${1:-}" in
  postgres://* | postgresql://* | *host=* | *dbname=*)
    echo "quickstart: streaming from your own server arrives with the streaming API (README" >&2
    echo "quickstart: \"Status\"); try: build/quickstart/tools/fwire ping \"\$DSN\"" >&2
    exit 2 ;;
esac
[ "${FW_SKIP_DEPS:-0}" = 1 ] || tools/install-deps.sh
build="$root/build/quickstart"
[ -f "$build/build.ninja" ] || meson setup "$build" >/dev/null
ninja -C "$build" bench/pq_raw tools/fwire >/dev/null
export FW_PG_STATE="$build/pgstate"

if [ "$#" -eq 1 ]; then
  exec test/with-pg.sh "$build/bench/pq_raw" stream "$1"
fi
# One cluster for everything below: with-pg.sh keeps it while this script (its parent) lives.
# fwire ping: SCRAM over TLS with the certificate verified against the cluster's own CA.
test/with-pg.sh bash -c 'exec "$0" ping "host=localhost port=$FW_TEST_PORT dbname=$FW_TEST_DBNAME user=$FW_TEST_USER_SCRAM password=$FW_TEST_PASS_SCRAM sslmode=verify-full sslrootcert=$FW_TEST_CA"' "$build/tools/fwire"
test/with-pg.sh "$build/bench/pq_raw" stream 'SELECT data FROM v_fixture'
test/with-pg.sh "$build/bench/pq_raw" stream 'SELECT data FROM v_bench_1m' --count
