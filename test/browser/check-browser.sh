#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# test/browser/check-browser.sh FWIRE PAGE_TEST CACHE_DIR LOG_DIR
#
# The page of `fwire serve` (tools/web/) in headless Chromium, against the throwaway cluster
# (run through test/with-pg.sh, which sets FW_TEST_*): starts the real `fwire serve` with a
# token on a loopback port, asks psql for the row counts the page must show, then runs
# PAGE_TEST (page.test.mjs) with node and playwright-core. The screenshot is LOG_DIR/
# browser-page.png (meson-logs/ of the build dir); the server's log is LOG_DIR/
# browser-page-serve.log.
#
# playwright-core comes from npm, installed on first use into CACHE_DIR (under the build dir,
# never the source tree; no lock file is written). Exit 77 (skipped) when node or Chromium is
# missing, or playwright-core is neither cached nor installable (no npm, no network).
#
# Environment: FW_CHROMIUM (default /usr/bin/chromium), FW_BROWSER_KEEP=1 keeps the temp dir.
set -uo pipefail

fwire=${1:?usage: check-browser.sh FWIRE PAGE_TEST CACHE_DIR LOG_DIR}
page_test=${2:?usage: check-browser.sh FWIRE PAGE_TEST CACHE_DIR LOG_DIR}
cache=${3:?usage: check-browser.sh FWIRE PAGE_TEST CACHE_DIR LOG_DIR}
logdir=${4:?usage: check-browser.sh FWIRE PAGE_TEST CACHE_DIR LOG_DIR}
# A fifth argument `wss`: the gateway serves TLS of its own (a throwaway CA and certificate made
# here with openssl), the page is loaded over https:// and streams over wss://. Its screenshot and
# log are browser-page-wss.png and browser-page-wss-serve.log.
tls=${5:-}
tag=browser-page${tls:+-$tls}
chromium=${FW_CHROMIUM:-/usr/bin/chromium}
readonly ALLOW=fixture,fixture_error_mid,bench_100k,bench_1m
readonly MAX_PORT_TRIES=20

skip() { printf 'SKIP: %s\n' "$*"; exit 77; }
die() { printf 'FAIL: %s\n' "$*"; exit 1; }

# ---- what the test needs on the machine ----
command -v node >/dev/null 2>&1 || skip "node is not installed (Debian package nodejs)"
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
[ "$node_major" -ge 18 ] 2>/dev/null || skip "node $(node --version 2>/dev/null) is older than 18"
[ -x "$chromium" ] ||
  skip "no Chromium at $chromium (Debian package chromium; FW_CHROMIUM overrides)"

pw=$cache/node_modules/playwright-core
if [ ! -f "$pw/package.json" ]; then
  command -v npm >/dev/null 2>&1 ||
    skip "playwright-core is not cached in $cache and npm is not installed"
  mkdir -p "$cache" || die "cannot create $cache"
  printf 'installing playwright-core into %s\n' "$cache"
  # One installer at a time per cache (two build dirs never share one, but be safe).
  if ! (
    flock -w 600 9 || exit 1
    [ -f "$pw/package.json" ] && exit 0
    exec timeout 600 npm install --prefix "$cache" --no-save --no-package-lock --no-audit \
      --no-fund --loglevel=error --fetch-retries=2 --fetch-retry-mintimeout=2000 \
      --fetch-retry-maxtimeout=10000 playwright-core@1
  ) 9>"$cache/.lock" >"$cache/npm.log" 2>&1; then
    grep -v '^npm error  *at ' "$cache/npm.log" | head -12 | sed 's/^/  npm: /'
    rm -rf "$cache/node_modules"
    skip "npm could not install playwright-core (offline?)"
  fi
  [ -f "$pw/package.json" ] || skip "npm ran but $pw is missing"
fi
printf 'playwright-core %s, %s, node %s\n' \
  "$(node -p "require('$pw/package.json').version")" \
  "$("$chromium" --version 2>/dev/null | head -1)" "$(node --version)"

# ---- the oracle: psql ----
dsn=${FW_TEST_DSN_TRUST:?FW_TEST_DSN_TRUST is not set: run through test/with-pg.sh}
psql=${FW_TEST_PGBINDIR:-/usr/lib/postgresql/15/bin}/psql
[ -x "$psql" ] || psql=psql
tmp=$(mktemp -d)
srv=
cleanup() {
  if [ -n "$srv" ] && kill -0 "$srv" 2>/dev/null; then
    kill -TERM "$srv" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$srv" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$srv" 2>/dev/null
    wait "$srv" 2>/dev/null
  fi
  [ -f "$tmp/serve.log" ] && cp "$tmp/serve.log" "$logdir/$tag-serve.log" 2>/dev/null
  if [ "${FW_BROWSER_KEEP:-}" = 1 ]; then printf 'kept %s\n' "$tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
mkdir -p "$logdir" || die "cannot create $logdir"

q() { "$psql" -X -At -v ON_ERROR_STOP=1 "$dsn" -c "$1"; }
n_fixture=$(q 'SELECT count(*) FROM v_fixture') || die "psql failed"
n_100k=$(q 'SELECT count(*) FROM v_bench_100k') || die "psql failed"
n_1m=$(q 'SELECT count(*) FROM v_bench_1m') || die "psql failed"
q 'SELECT data FROM v_fixture' >"$tmp/fixture.txt" || die "psql failed"
# What the page's "Filter and order" fields ask for in page.test.mjs: where id < 100, order by
# id descending, limit 30.
q "SELECT data FROM v_bench_100k WHERE (data->>'id')::numeric < 100
   ORDER BY data->'id' DESC LIMIT 30" >"$tmp/filtered.txt" || die "psql failed"
printf 'psql: v_fixture %s rows, v_bench_100k %s, v_bench_1m %s\n' "$n_fixture" "$n_100k" "$n_1m"

# ---- the server ----
tls_args=()
scheme=http
if [ "$tls" = wss ]; then
  command -v openssl >/dev/null 2>&1 || die "openssl not found (needed for the wss run)"
  printf '%s\n' '[req]' 'distinguished_name = dn' '[dn]' '[v3_server]' \
    'basicConstraints = CA:false' 'extendedKeyUsage = serverAuth' \
    'subjectAltName = DNS:localhost, IP:127.0.0.1' >"$tmp/openssl.cnf"
  OPENSSL_CONF=$tmp/openssl.cnf openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
    -nodes -days 2 -subj /CN=localhost -extensions v3_server -keyout "$tmp/server.key" \
    -out "$tmp/server.crt" 2>/dev/null || die "openssl could not make a certificate"
  tls_args=(--tls-cert "$tmp/server.crt" --tls-key "$tmp/server.key")
  scheme=https
fi
"$fwire" serve --help >"$tmp/help.txt" 2>&1 ||
  { sed 's/^/  /' "$tmp/help.txt"; die "\`fwire serve --help\` failed: no serve command?"; }

token=$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port=
for _ in $(seq "$MAX_PORT_TRIES"); do
  p=$((20000 + (RANDOM * 32768 + RANDOM) % 40001))
  port_busy "$p" && continue
  "$fwire" serve --listen "127.0.0.1:$p" --dsn "$dsn" --allow "$ALLOW" --token "$token" \
    --progress-ms 100 "${tls_args[@]}" </dev/null >"$tmp/serve.log" 2>&1 &
  srv=$!
  up=0
  for _ in $(seq 100); do
    if ! kill -0 "$srv" 2>/dev/null; then break; fi
    if port_busy "$p"; then up=1; break; fi
    sleep 0.1
  done
  # Still alive a moment later: the listener is ours, not a process that took the port first.
  sleep 0.2
  if [ "$up" = 1 ] && kill -0 "$srv" 2>/dev/null; then port=$p; break; fi
  wait "$srv" 2>/dev/null
  st=$?
  srv=
  # Lost a race for the port: try another; anything else is the server's failure.
  grep -qi 'in use' "$tmp/serve.log" && continue
  sed 's/^/  serve: /' "$tmp/serve.log"
  die "fwire serve did not start listening on 127.0.0.1:$p (exit $st)"
done
[ -n "$port" ] || die "no free port for fwire serve after $MAX_PORT_TRIES tries"
printf 'fwire serve pid %s on 127.0.0.1:%s\n' "$srv" "$port"

# ---- the page ----
FW_BROWSER_BASE="$scheme://127.0.0.1:$port" \
FW_BROWSER_TOKEN="$token" \
FW_BROWSER_PW="$pw" \
FW_CHROMIUM="$chromium" \
FW_BROWSER_SHOT="$logdir/$tag.png" \
FW_BROWSER_FIXTURE_ROWS="$tmp/fixture.txt" \
FW_BROWSER_FILTERED_ROWS="$tmp/filtered.txt" \
FW_BROWSER_N_FIXTURE="$n_fixture" \
FW_BROWSER_N_100K="$n_100k" \
FW_BROWSER_N_1M="$n_1m" \
FW_BROWSER_ALLOW="$ALLOW" \
  node "$page_test"
rc=$?

# The server outlived everything the page did to it, and stops cleanly on SIGTERM (under the
# sanitizers that includes no leak reports).
if ! kill -0 "$srv" 2>/dev/null; then
  wait "$srv" 2>/dev/null
  printf 'FAIL: fwire serve exited during the test (status %s)\n' "$?"
  rc=1
else
  kill -TERM "$srv"
  for _ in $(seq 100); do kill -0 "$srv" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$srv" 2>/dev/null; then
    printf 'FAIL: fwire serve still running 10 s after SIGTERM\n'
    rc=1
  else
    wait "$srv"
    st=$?
    if [ "$st" != 0 ]; then
      printf 'FAIL: fwire serve exited with status %s on SIGTERM\n' "$st"
      rc=1
    else
      printf 'fwire serve stopped on SIGTERM with status 0\n'
    fi
  fi
fi
kill -0 "$srv" 2>/dev/null || srv=
if [ "$rc" != 0 ]; then
  printf 'last lines of the server log (%s):\n' "$logdir/$tag-serve.log"
  tail -30 "$tmp/serve.log" | sed 's/^/  serve: /'
fi
exit "$rc"
