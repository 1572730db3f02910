#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# test/check-haproxy.sh FWIRE_BINARY CONFIG: two `fwire serve` gateways behind HAProxy, run
# from CONFIG (docs/examples/haproxy.cfg, unchanged: its addresses come from the environment),
# all on loopback, against the test cluster (run through test/with-pg.sh):
#   - HAProxy accepts the file and marks both gateways up (its /readyz checks);
#   - streams through HAProxy: every row (count equal to psql's), spread over both gateways;
#   - one gateway gets SIGTERM (--drain-seconds 10) while a slow stream runs through it: the
#     stream completes with every row, requests made meanwhile are all served (the other gateway,
#     or a retry of the draining one's 503), the drained gateway exits 0;
#   - with one gateway gone, requests keep being served by the other; that one is then killed
#     (SIGKILL) and the first, restarted on its port, comes back into rotation and serves.
# Skips (77) without haproxy.
set -uo pipefail

fwire=$1
cfg=$2
: "${FW_TEST_DSN_TRUST:?run me through test/with-pg.sh}"
haproxy=$(command -v haproxy 2>/dev/null || true)
[[ -n $haproxy ]] || [[ ! -x /usr/sbin/haproxy ]] || haproxy=/usr/sbin/haproxy
if [[ -z $haproxy ]]; then
    echo "haproxy is not installed (apt-get install haproxy, or tools/install-deps.sh): skipped"
    exit 77
fi
psql=${FW_TEST_PGBINDIR:+$FW_TEST_PGBINDIR/}psql
[[ -x $psql ]] || psql=psql

pass=0
fail=0
ok() { pass=$((pass + 1)); printf 'ok   %s\n' "$1"; }
bad() { fail=$((fail + 1)); printf 'FAIL %s\n' "$1"; }
check() { if eval "$2"; then ok "$1"; else bad "$1 ($3)"; fi; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fwire-haproxy.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
    wait 2>/dev/null
    if ((fail > 0)); then
        for f in "$tmp"/*.log; do
            echo "---- $f"
            tail -n 30 "$f"
        done
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
front=$(free_port)
app="fwire_haproxy_$$"
allow=fixture,fixture_sleepy,bench_1k

# start_gw NAME: a gateway on a free port (printed on its first stderr line); sets gw_port/gw_pid
start_gw() {
    local name=$1 line
    # Behind a proxy every client comes from the proxy's address: the per-address limits would
    # be limits on all clients together (docs/haproxy.md). The proxy's Host names the front.
    "$fwire" serve --listen 127.0.0.1:0 --dsn "$FW_TEST_DSN_TRUST application_name=$app" \
        --allow "$allow" --allow-host "127.0.0.1:$front" --max-connections-per-address 64 \
        --max-handshakes-per-address 64 --drain-seconds 10 -v 2>"$tmp/$name.log" &
    gw_pid=$!
    pids+=("$gw_pid")
    for _ in $(seq 100); do
        line=$(head -n 1 "$tmp/$name.log" 2>/dev/null)
        [[ $line == *"listening on"* ]] && break
        sleep 0.05
    done
    gw_port=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\)/.*|\1|p' <<<"$line")
    [[ -n $gw_port ]] || { bad "$name did not start: $line"; exit 1; }
}
start_gw gw1
gw1_port=$gw_port gw1_pid=$gw_pid
start_gw gw2
gw2_port=$gw_port gw2_pid=$gw_pid

export FRONT_ADDR=127.0.0.1:$front GW1_ADDR=127.0.0.1:$gw1_port GW2_ADDR=127.0.0.1:$gw2_port
out=$("$haproxy" -c -f "$cfg" 2>&1)
rc=$?
check "haproxy -c accepts $cfg" '[[ $rc -eq 0 ]]' "$out"
"$haproxy" -db -f "$cfg" >"$tmp/haproxy.log" 2>&1 &
hpid=$!
pids+=("$hpid")

url=http://127.0.0.1:$front
# started: a gateway's fraiseql_gateway_streams_started_total
started() {
    curl -s "http://127.0.0.1:$1/metrics" | sed -n 's/^fraiseql_gateway_streams_started_total \([0-9]*\)$/\1/p'
}
# rows ENTITY: the number of NDJSON lines of a complete stream through HAProxy, or "http CODE"
rows() {
    local body code
    body=$(curl -s -N -w '\n%{http_code}' "$url/stream/$1") || { echo "curl failed"; return; }
    code=${body##*$'\n'}
    if [[ $code != 200 ]]; then echo "http $code"; return; fi
    printf '%s' "${body%$'\n'*}" | grep -c .
}

# both gateways up: HAProxy's checks pass every second, rise 2
up=0
for _ in $(seq 100); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "$url/readyz") == 200 ]] && up=1 && break
    sleep 0.1
done
check "HAProxy serves /readyz through the front" '[[ $up == 1 ]]' "never 200"
sleep 2.5 # both marked up (rise 2 at inter 1s)

want_1k=$("$psql" -X -At -d "$FW_TEST_DSN_TRUST" -c 'SELECT count(*) FROM v_bench_1k')
want_fix=$("$psql" -X -At -d "$FW_TEST_DSN_TRUST" -c 'SELECT count(*) FROM v_fixture')
want_sleepy=$("$psql" -X -At -d "$FW_TEST_DSN_TRUST" -c 'SELECT count(*) FROM v_fixture_sleepy')
s1=$(started "$gw1_port") s2=$(started "$gw2_port")
good=0
for _ in $(seq 10); do
    [[ $(rows bench_1k) == "$want_1k" ]] && good=$((good + 1))
done
d1=$(($(started "$gw1_port") - s1)) d2=$(($(started "$gw2_port") - s2))
check "10 streams of bench_1k through HAProxy, each with every row ($want_1k): $good/10" \
    '[[ $good == 10 ]]' "$good"
check "spread over both gateways (gw1 $d1, gw2 $d2)" '((d1 > 0 && d2 > 0 && d1 + d2 == 10))' "$d1 $d2"

# a WebSocket through HAProxy (the upgrade, then a tunnel): one stream_query to the end
wspy=
for py in /usr/bin/python3 python3; do
    if "$py" -c 'import websockets' 2>/dev/null; then wspy=$py; break; fi
done
if [[ -n $wspy ]]; then
    got=$("$wspy" - "ws://127.0.0.1:$front/ws" <<'PY' 2>&1
import asyncio, json, sys
import websockets
async def main():
    async with websockets.connect(sys.argv[1]) as ws:
        await ws.send(json.dumps({"type": "stream_query", "entity": "bench_1k", "batch_size": 100}))
        rows = 0
        while True:
            m = json.loads(await ws.recv())
            if m["type"] == "query_batch":
                rows += len(m["rows"])
            elif m["type"] in ("query_completed", "query_error", "query_cancelled"):
                print(m["type"], rows, m.get("total_rows"))
                return
asyncio.run(main())
PY
)
    check "a WebSocket stream through HAProxy completes with every row ($got)" \
        '[[ $got == "query_completed $want_1k $want_1k" ]]' "$got"
else
    echo "# no python3 websockets module: the WebSocket check is skipped"
fi

echo "# drain: SIGTERM to the gateway running a slow stream"
# a slow stream (10 rows, ~1 s) on each gateway (leastconn alternates), so one runs on gw1
curl -s -N "$url/stream/fixture_sleepy" >"$tmp/slow1.out" &
c1=$!
curl -s -N "$url/stream/fixture_sleepy" >"$tmp/slow2.out" &
c2=$!
sleep 0.3
t0=$(date +%s%3N)
kill -TERM "$gw1_pid"
served=0 codes=""
for _ in $(seq 20); do
    r=$(rows fixture)
    if [[ $r == "$want_fix" ]]; then served=$((served + 1)); else codes+=" $r"; fi
done
wait "$c1" "$c2"
s1=$(grep -c . "$tmp/slow1.out") s2=$(grep -c . "$tmp/slow2.out")
check "the slow streams running at the SIGTERM complete with every row ($s1, $s2 of $want_sleepy)" \
    '[[ $s1 == "$want_sleepy" && $s2 == "$want_sleepy" ]]' "$s1 $s2"
check "20 streams through HAProxy during the drain, all served: $served/20" '[[ $served == 20 ]]' \
    "$codes"
wait "$gw1_pid"
rc=$?
t1=$(date +%s%3N)
check "the drained gateway exits 0 (reaped $((t1 - t0)) ms after SIGTERM, after the 20 requests)" '[[ $rc == 0 ]]' "rc=$rc"
check "gw1's log shows the drain" 'grep -q "SIGTERM, draining" "$tmp/gw1.log"' "no drain line"

echo "# one gateway gone for good: the other serves everything"
served=0 codes=""
for _ in $(seq 20); do
    r=$(rows bench_1k)
    if [[ $r == "$want_1k" ]]; then served=$((served + 1)); else codes+=" $r"; fi
done
check "20 streams through HAProxy with gw1 gone, all served by gw2: $served/20" \
    '[[ $served == 20 ]]' "$codes"
sleep 2.5
check "HAProxy marked gw1 down" 'grep -q "gw1 is DOWN" "$tmp/haproxy.log"' "no DOWN line"

echo "# SIGKILL: gw2 killed, gw1 restarted on its port: served again"
kill -KILL "$gw2_pid"
"$fwire" serve --listen "127.0.0.1:$gw1_port" --dsn "$FW_TEST_DSN_TRUST application_name=$app" \
    --allow "$allow" --allow-host "127.0.0.1:$front" --max-connections-per-address 64 \
    --max-handshakes-per-address 64 --drain-seconds 10 2>"$tmp/gw1b.log" &
gw1_pid=$!
pids+=("$gw1_pid")
back=0
for _ in $(seq 100); do
    [[ $(rows fixture) == "$want_fix" ]] && { back=1; break; }
    sleep 0.1
done
check "gw1 restarted is back in rotation after gw2's SIGKILL" '[[ $back == 1 ]]' "never served"
served=0
for _ in $(seq 10); do
    [[ $(rows fixture) == "$want_fix" ]] && served=$((served + 1))
done
check "10 more streams, all served: $served/10" '[[ $served == 10 ]]' "$served"
kill -TERM "$gw1_pid"
wait "$gw1_pid"
rc=$?
check "gw1 (restarted) stops with 0" '[[ $rc == 0 ]]' "rc=$rc"
if grep -qE "AddressSanitizer|LeakSanitizer|runtime error:" "$tmp"/gw*.log; then
    bad "sanitizers said something"
else
    ok "sanitizers silent"
fi
kill -TERM "$hpid" 2>/dev/null

echo "haproxy: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
