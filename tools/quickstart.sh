#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The quick start in one command, on a fresh Debian 12 machine: installs the dependencies, builds
# fwire, starts a throwaway PostgreSQL 15 (test/pgcluster.sh, stopped again on exit) and streams
# a sample view from it.
#
#   tools/quickstart.sh [SQL]      default: SELECT data FROM v_fixture, then a count of v_bench_1m
#
# Until the connection API lands (see README "Status"), the rows are read by bench/pq_raw, which
# speaks the protocol through proto/ over a plain unix socket as the cluster's trust user; it
# takes no DSN. FW_SKIP_DEPS=1 skips the apt-get step.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
case "$#:${1:-}" in
  0:* | 1:*) ;;
  *) echo "usage: tools/quickstart.sh [SQL]" >&2; exit 2 ;;
esac
case "${1:-}" in
  postgres://* | postgresql://* | *host=* | *dbname=*)
    echo "quickstart: connecting to your own server with a DSN arrives with the connect issue" >&2
    echo "quickstart: (README \"Status\"); without one it starts a throwaway PostgreSQL." >&2
    exit 2 ;;
esac
[ "${FW_SKIP_DEPS:-0}" = 1 ] || tools/install-deps.sh
build="$root/build/quickstart"
[ -f "$build/build.ninja" ] || meson setup "$build" >/dev/null
meson compile -C "$build" bench/pq_raw >/dev/null
export FW_PG_STATE="$build/pgstate"

if [ "$#" -eq 1 ]; then
  exec test/with-pg.sh "$build/bench/pq_raw" stream "$1"
fi
# One cluster for both queries: with-pg.sh keeps it while this script (its parent) lives.
test/with-pg.sh "$build/bench/pq_raw" stream 'SELECT data FROM v_fixture'
test/with-pg.sh "$build/bench/pq_raw" stream 'SELECT data FROM v_bench_1m' --count
