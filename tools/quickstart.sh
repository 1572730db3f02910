#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The quick start in one command, on a fresh Debian 12 machine: installs the dependencies, builds
# fwire, and streams a sample view with `fwire stream`.
#
#   tools/quickstart.sh                      throwaway PostgreSQL 15 (test/pgcluster.sh, stopped
#                                            again on exit): fwire ping over verified TLS, the rows
#                                            of v_fixture, then v_bench_1m (1M rows) with progress
#   tools/quickstart.sh RELATION             the same cluster, streaming RELATION as NDJSON
#   tools/quickstart.sh RELATION "DSN"       your own server (libpq connection string or URI)
#   tools/quickstart.sh serve [PORT]         the same throwaway cluster behind `fwire serve` on
#                                            127.0.0.1:PORT (default 8080): open the page in a
#                                            browser, or curl /stream/bench_1k; Ctrl-C stops both
#
# FW_SKIP_DEPS=1 skips apt-get.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
case "$#" in
  0 | 1 | 2) ;;
  *) echo "usage: tools/quickstart.sh [RELATION [DSN]] | serve [PORT]" >&2; exit 1 ;;
esac
[ "${FW_SKIP_DEPS:-0}" = 1 ] || tools/install-deps.sh
build="$root/build/quickstart"
[ -f "$build/build.ninja" ] || meson setup "$build" >/dev/null
ninja -C "$build" tools/fwire >/dev/null
fwire="$build/tools/fwire"
export FW_PG_STATE="$build/pgstate"

if [ "${1:-}" = serve ]; then
  port=${2:-8080}
  echo "== fwire serve on http://127.0.0.1:$port/  (entities: fixture, fixture_json, bench_1k,"
  echo "   bench_100k, bench_1m, bench_complex; try: curl -N 'http://127.0.0.1:$port/stream/bench_1k?limit=3')"
  test/with-pg.sh bash -c 'exec "$0" serve --listen "127.0.0.1:$1" --dsn "$FW_TEST_DSN_TRUST" --allow fixture,fixture_json,bench_1k,bench_100k,bench_1m,bench_complex' "$fwire" "$port"
  exit
fi
if [ "$#" -eq 2 ]; then
  exec "$fwire" stream "$1" "$2"
fi
# The throwaway cluster's trust user over its unix socket.
stream() { test/with-pg.sh bash -c 'exec "$0" stream "$@" "$FW_TEST_DSN_TRUST"' "$fwire" "$@"; }
if [ "$#" -eq 1 ]; then
  stream "$1"
  exit
fi
# One cluster for everything below: with-pg.sh keeps it while this script (its parent) lives.
# fwire ping: SCRAM over TLS with the certificate verified against the cluster's own CA.
test/with-pg.sh bash -c 'exec "$0" ping "host=localhost port=$FW_TEST_PORT dbname=$FW_TEST_DBNAME user=$FW_TEST_USER_SCRAM password=$FW_TEST_PASS_SCRAM sslmode=verify-full sslrootcert=$FW_TEST_CA"' "$fwire"
echo "== fwire stream v_fixture"
stream v_fixture
echo "== fwire stream --count --progress --stats v_bench_1m   (1,000,000 rows, 268 MB of JSON)"
stream --count --progress --stats v_bench_1m
