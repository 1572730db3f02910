#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench/run.sh: every fwire benchmark, one command, one results folder (docs/benchmarks.md).
#
#   bench/run.sh [--quick | --full] [--dsn CONNINFO] [--out DIR] [--build DIR] [--runs N]
#                [--only SECTION[,SECTION...]]
#
#   --quick   (default) small views, 5 counted runs: about 2 minutes; CI runs it as a smoke check
#   --full    every view, v_bench_10m for stability, bigger callgrind runs: about 13 minutes
#   --dsn     a running server with bench/setup.sql loaded, as a trust user (keyword=value, unix
#             socket or IPv4: the null client speaks nothing else). Default: the throwaway test
#             cluster of test/with-pg.sh, started for the run and stopped after it. The connect
#             benchmark and the replay recording need that cluster (FW_TEST_* variables): with
#             --dsn alone they are skipped, and so is the routing benchmark (it starts a cluster
#             of its own, test/with-repl.sh, and --dsn means: start no server).
#   --out     results folder (default bench/results/YYYYMMDD-HHMMSS, git-ignored): results.json,
#             results.md, *.svg and *.png plots, raw/ (every program's own JSON and output)
#   --build   a configured meson build dir to (re)build and use (default build/bench,
#             configured here with the project's default buildtype, debugoptimized)
#   --runs    counted runs per case (default 5, at least 5 for results meant to be quoted); the
#             pool's rounds and callgrind's rounds are 3, or --runs when that is fewer (CI's
#             smoke check runs --quick --runs 1: every section and client once, nothing quoted)
#   --only    run some sections: micro, decode, stream, firstrow, chunking, rss, predicate,
#             metrics, allocs, parallel, stability, replay, connect, routing, pool, pool1k,
#             callgrind, perfstat, syscalls
#
# The routing section (connect time through a three-host list whose first two hosts are
# standbys, target_session_attrs=read-write) starts a replicated cluster of its own through
# test/with-repl.sh for that section only and removes it afterwards; it is in both modes,
# with 20 / 200 connects per case and client (about 30 s / 100 s on an idle machine).
#
# Every section interleaves its variants (A B C A B C ...) after one warm-up round and reports
# median, min and max; ratios are only quoted between variants of one section of one run.
# Exit status: 0 when every section ran and every client got the server's answer, else 1.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
mode=quick
dsn=
out=
build=$root/build/bench
runs=5
only=
args=("$@")
while [ $# -gt 0 ]; do
    case $1 in
    --quick) mode=quick ;;
    --full) mode=full ;;
    --dsn) dsn=$2; shift ;;
    --out) out=$2; shift ;;
    --build) build=$2; shift ;;
    --runs) runs=$2; shift ;;
    --only) only=,$2,; shift ;;
    -h | --help) sed -n '3,32p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[ "$runs" -ge 1 ] 2>/dev/null || { echo "bench/run.sh: --runs N, N >= 1" >&2; exit 2; }

# ---- build (once, before the cluster starts) -------------------------------------------------
if [ -z "${FW_BENCH_BUILT:-}" ]; then
    if [ ! -f "$build/build.ninja" ]; then
        meson setup "$build" "$root" -Dbench=true >"$root/build-bench-setup.log" 2>&1 || {
            cat "$root/build-bench-setup.log"; rm -f "$root/build-bench-setup.log"
            echo "bench/run.sh: meson setup $build failed" >&2; exit 1; }
        rm -f "$root/build-bench-setup.log"
    elif ! meson introspect --buildoptions "$build" | grep -q '"name": "bench", "value": true'; then
        # the benchmarks are off by default (-Dbench=false): turn them on in the given build
        meson configure "$build" -Dbench=true >/dev/null || exit 1
    fi
    meson compile -C "$build" >/dev/null || { meson compile -C "$build"; exit 1; }
    for exe in bench_stream bench_micro bench_pq_decode replay; do
        [ -x "$build/bench/$exe" ] || {
            echo "bench/run.sh: $build/bench/$exe was not built (libpq-dev missing?)" >&2; exit 1; }
    done
    export FW_BENCH_BUILT=1
fi
build=$(cd "$build" && pwd -P)

# ---- the server: re-run inside test/with-pg.sh unless a DSN or a cluster is given -------------
if [ -z "$dsn" ] && [ -z "${FW_TEST_SOCKDIR:-}" ]; then
    export FW_PG_STATE=${FW_PG_STATE:-$build/bench/pgstate}
    export FW_PG_OWNER_PID=$$ # the cluster lives as long as this script
    exec bash "$root/test/with-pg.sh" bash "$0" "${args[@]}" --build "$build"
fi
if [ -z "$dsn" ]; then
    dsn="host=$FW_TEST_SOCKDIR port=$FW_TEST_PORT dbname=$FW_TEST_DBNAME user=$FW_TEST_USER_TRUST"
fi

[ -n "$out" ] || out=$root/bench/results/$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$out/raw"
out=$(cd "$out" && pwd -P)
raw=$out/raw
B=$build/bench
FWIRE=$build/tools/fwire
t_start=$(date +%s)
failed=()
ran=()
declare -A section_seconds

want() { [ -z "$only" ] || [[ $only == *",$1,"* ]]; }

# section NAME command...: runs one section, its output to raw/NAME.txt, and says how it went.
section() {
    local name=$1
    shift
    want "$name" || return 0
    printf '[%s] %-10s ' "$(date -u +%H:%M:%S)" "$name"
    local t0=$SECONDS
    if "$@" >"$raw/$name.txt" 2>&1; then
        printf 'ok (%d s)\n' $((SECONDS - t0))
        ran+=("$name")
    else
        printf 'FAILED (%d s): see %s\n' $((SECONDS - t0)) "$raw/$name.txt"
        tail -n 20 "$raw/$name.txt" | sed 's/^/    /'
        failed+=("$name")
    fi
    section_seconds[$name]=$((SECONDS - t0))
}

stream() { # NAME [bench_stream args...]: one bench_stream run into raw/NAME.json
    local name=$1
    shift
    "$B/bench_stream" --dsn "$dsn" --runs "$runs" --json "$raw/$name.json" "$@"
}

if [ "$mode" = quick ]; then
    views_main=v_bench_1k,v_bench_100k
    v_big=v_bench_100k           # chunking, metrics, predicate, replay
    v_stab=v_bench_1m            # stability: RSS over a long stream
    slow=2000                    # ns per row of the slow consumer
    micro_args=(--quick)
    decode_rows=100000
    connect_count=20
    pool_args=(--runs $((runs < 3 ? runs : 3)) --requests 1000) # about 1 minute on an idle machine
    pool1k_runs=0                                                # the 1,000-stream run: --full only
    fr_runs=$((runs * 10 > 1000 ? 1000 : runs * 10)) # the firstrow section's (each ends at its first row)
    stab_clients=fwire-embedded/rss=20,fwire-threaded/rss=20
    v_cg=v_bench_100k            # callgrind: per-row instructions between v_bench_1k and this
    v_sc=v_bench_100k            # syscalls: system calls per MB
else
    views_main=v_bench_1k,v_bench_100k,v_bench_1m,v_bench_large,v_bench_complex
    v_big=v_bench_1m
    v_stab=v_bench_10m
    slow=2000
    micro_args=()
    decode_rows=1000000
    connect_count=200
    pool_args=(--runs "$runs" --requests 4000)
    pool1k_runs=3 # about 20 s each
    # First rows move by +-10 % between medians of 5 on these VMs (a fresh backend's first
    # query, thread and vCPU wake-ups, ~1-2 ms scheduler delays in some runs of every client,
    # v_bench_large's two bands): the bar (within 10 % of libpq) needs hundreds of runs, which
    # --first-row makes cheap (each run ends at its first row).
    fr_runs=$((runs * 40 > 1000 ? 1000 : runs * 40))
    stab_clients=null,fwire-embedded/rss=100,fwire-threaded/rss=100
    v_cg=v_bench_1m
    v_sc=v_bench_1m
fi

echo "bench/run.sh --$mode: results in $out"
echo "server: $dsn"

# ---- micro --------------------------------------------------------------------------------------
section micro "$B/bench_micro" --runs "$runs" "${micro_args[@]}" --json "$raw/micro.json"
section decode "$B/bench_pq_decode" --rows "$decode_rows" --runs "$runs" --json "$raw/decode.json"

# ---- integration, real server -------------------------------------------------------------------
clients_all=null,libpq-single,libpq-exec,fwire-threaded,fwire-embedded,fwire-cli
# throughput, CPU per row, first row, peak RSS: every client, every view
section stream stream stream --views "$views_main" --clients "$clients_all" --fwire "$FWIRE"
# time to first row on a fresh connection: every run ends at its first row (--first-row), 10 ms
# after the last (--gap: the last run's backend has exited, the machine is quiet, as a service's
# between requests); libpq with the extended protocol too, to tell the protocol's cost on the
# server from the client's (fwire sends the plain query as a simple Query, anything more on the
# extended protocol)
firstrow_section() {
    stream firstrow --views "$views_main" --runs "$fr_runs" --first-row --gap 10 \
        --clients null,libpq-single,libpq-single/ext,fwire-embedded,fwire-threaded || return 1
    # a slow producer (test/fixtures.sql: 40 rows of 12 KiB, 25 ms apart): reading in bulk
    # (coalesced reads) must not delay its rows
    [ -n "${FW_TEST_SOCKDIR:-}" ] || { echo "drip skipped: v_fixture_drip is in the test cluster"; return 0; }
    stream firstrow-drip --views v_fixture_drip --clients null,libpq-single,fwire-embedded,fwire-threaded
}
section firstrow firstrow_section
# fixed against adaptive chunks, fast and slow consumer (threaded mode: the hand-off is where
# chunks matter; the slow consumer spins $slow ns on every row)
chunk_clients=null
for c in chunk=64 chunk=256 chunk=1024 adaptive; do chunk_clients+=,fwire-threaded/$c; done
for c in chunk=64 chunk=256 chunk=1024 adaptive; do chunk_clients+=,fwire-threaded/$c/slow=$slow; done
section chunking stream chunking --views "$v_big" --clients "$chunk_clients"
# peak RSS against the byte budget and the chunk size, with a slow consumer (the queue fills)
rss_clients=null
for m in 64K 256K 1M 4M 16M; do rss_clients+=,fwire-threaded/budget=$m/slow=$slow; done
for c in 64 1024; do rss_clients+=,fwire-threaded/chunk=$c/slow=$slow; done
section rss stream rss --views v_bench_100k --clients "$rss_clients"
# SQL where against the client-side predicate at 10/50/90 %
pred_clients=null,fwire-embedded
for k in 1 5 9; do pred_clients+=,fwire-embedded/where=$k,fwire-embedded/pred=$k; done
section predicate stream predicate --views v_bench_100k --clients "$pred_clients"
# metrics on against off
section metrics stream metrics --views "$v_big" \
    --clients null,fwire-embedded,fwire-embedded/metrics=0,fwire-threaded,fwire-threaded/metrics=0
# fwire's allocations in the query window, by result size (0 per row: flat)
section allocs stream allocs --views "${views_main%%,v_bench_large*}" \
    --clients fwire-embedded/allocs,fwire-threaded/allocs
# parallel streams (issue 16): one connection against N = 2 and 4 parts, each on fresh
# connections and from a pool whose backends have read before (/pool: one untimed run first);
# a table, so ctid ranges. bench/parallel.sh has the CLI's figures and the memory check.
par_clients=fwire-threaded,fwire-threaded/par=2,fwire-threaded/par=4
par_clients+=,fwire-threaded/pool,fwire-threaded/pool/par=2,fwire-threaded/pool/par=4
section parallel stream parallel --views "=${v_big#v_}" --clients "$par_clients"
# stability: RSS sampled over a long stream
section stability stream stability --views "$v_stab" --clients "$stab_clients" --timeout 1800

# ---- replay server: client-only costs -----------------------------------------------------------
replay_section() {
    [ -n "${FW_TEST_SOCKDIR:-}" ] || { echo "skipped: the replay records from the test cluster"; return 0; }
    local sock rp rc=0 views=$v_big
    [ "$mode" = full ] && views=$v_big,v_bench_large
    sock=$(mktemp -d /tmp/fwreplay.XXXXXX)
    local port=5999
    local v
    for v in ${views//,/ }; do
        port=$((port + 1))
        "$B/replay" --sql "SELECT data FROM $v" --listen "$sock" --port $port >"$raw/replay-$v.log" 2>&1 &
        rp=$!
        local i
        for i in $(seq 1 600); do
            grep -q '^replay: ready' "$raw/replay-$v.log" && break
            kill -0 $rp 2>/dev/null || break
            sleep 0.1
        done
        if ! grep -q '^replay: ready' "$raw/replay-$v.log"; then
            cat "$raw/replay-$v.log"; kill $rp 2>/dev/null; rc=1; continue
        fi
        "$B/bench_stream" --dsn "host=$sock port=$port dbname=replay user=replay" --count-dsn "$dsn" \
            --runs "$runs" --views "$v" --json "$raw/replay-$v.json" --fwire "$FWIRE" \
            --clients null,libpq-single,libpq-exec,fwire-threaded,fwire-embedded,fwire-cli || rc=1
        kill $rp 2>/dev/null
        wait $rp 2>/dev/null
    done
    rm -rf "$sock"
    return $rc
}
section replay replay_section

# ---- connect time -------------------------------------------------------------------------------
connect_section() {
    [ -n "${FW_TEST_SOCKDIR:-}" ] || { echo "skipped: needs the test cluster's users"; return 0; }
    [ -x "$B/bench_connect" ] || { echo "skipped: bench_connect not built"; return 0; }
    "$B/bench_connect" --count "$connect_count" --json "$raw/connect.json"
}
section connect connect_section

# ---- the connection pool under contention (issue 15) ---------------------------------------------
# 1-row streams through pools of 8 and 16 with 8-256 requesters, and connect-per-request.
pool_section() {
    [ -n "${FW_TEST_SOCKDIR:-}" ] || { echo "skipped: needs the test cluster's users"; return 0; }
    "$B/bench_pool" "${pool_args[@]}" --json "$raw/pool.json"
}
section pool pool_section

# ---- 1,000 streams over a pool of 100 on one loop (issue 15) -------------------------------------
# The integration test's program (test/test_lib_pool_1k_live.c: embedded loop, then one
# runtime thread; it asserts counts, checksums and bounds), run pool1k_runs times: each run's
# printed figures (wall, the loop's stall p99 and max, RSS growth) into raw/pool1k.json.
pool1k_section() {
    [ -n "${FW_TEST_SOCKDIR:-}" ] || { echo "skipped: needs the test cluster's users"; return 0; }
    [ "$pool1k_runs" -gt 0 ] || { echo "skipped: --full only"; return 0; }
    local t=$build/test/test_lib_pool_1k_live rc=0 i
    [ -x "$t" ] || { echo "skipped: $t not built"; return 0; }
    for i in $(seq 1 "$pool1k_runs"); do
        "$t" >"$raw/pool1k-$i.log" 2>&1 || { tail -n 20 "$raw/pool1k-$i.log"; rc=1; }
        grep -E '^(embedded|threaded): ' "$raw/pool1k-$i.log"
    done
    python3 - "$raw" "$pool1k_runs" <<'PY' || rc=1
import json, re, sys
raw, n = sys.argv[1], int(sys.argv[2])
pat = re.compile(r"^(embedded|threaded): (\d+) streams over (\d+) connections in ([\d.]+) s: "
                 r"(\d+) complete.*?loop stall p99 ([\d.]+) ms, max ([\d.]+) ms.*?; (\d+) ticks over.*?"
                 r"\(\+([\d.]+) MiB, bound ([\d.]+) MiB")
runs = []
for i in range(1, n + 1):
    for line in open(f"{raw}/pool1k-{i}.log"):
        m = pat.match(line)
        if m:
            runs.append({"run": i, "mode": m[1], "streams": int(m[2]), "connections": int(m[3]),
                         "wall_s": float(m[4]), "complete": int(m[5]), "stall_p99_ms": float(m[6]),
                         "stall_max_ms": float(m[7]), "ticks_over_20ms": int(m[8]),
                         "rss_growth_mib": float(m[9]), "rss_bound_mib": float(m[10])})
json.dump({"runs": runs}, open(f"{raw}/pool1k.json", "w"), indent=1)
sys.exit(0 if len(runs) == 2 * n else 1)
PY
    return $rc
}
section pool1k pool1k_section

# ---- connect time with routing (issue 14) -------------------------------------------------------
# A replicated cluster (a primary, node 0, and two streaming standbys) for this section only:
# test/with-repl.sh starts it around bench_connect --routing and removes it however that ends.
routing_section() {
    [ -n "${FW_TEST_SOCKDIR:-}" ] || { echo "skipped: --dsn given, no throwaway cluster is started"; return 0; }
    [ -x "$B/bench_connect" ] || { echo "skipped: bench_connect not built"; return 0; }
    local rc=0
    FW_REPL_STATE=${FW_REPL_STATE:-$build/bench/replstate} bash "$root/test/with-repl.sh" \
        "$B/bench_connect" --routing --count "$connect_count" --json "$raw/routing.json" || rc=$?
    [ $rc -ne 77 ] || { echo "skipped: no replicated cluster (FW_TEST_NO_PG=1)"; return 0; }
    return $rc
}
section routing routing_section

# ---- callgrind instruction counts ---------------------------------------------------------------
# Instructions of the whole client process (callgrind), on a small and a big view: the slope
# (big - small) / (rows big - rows small) is the per-row cost without process start, library
# loading and connecting. Interleaved, 3 rounds (fewer with --runs below 3); the report takes
# medians.
callgrind_section() {
    command -v valgrind >/dev/null || { echo "skipped: no valgrind"; return 0; }
    local spec f n rc=0 round v
    : >"$raw/callgrind.tsv"
    for round in $(seq 1 $((runs < 3 ? runs : 3))); do
        for v in v_bench_1k $v_cg; do
            for spec in null libpq-single fwire-embedded fwire-embedded/metrics=0 fwire-threaded \
                fwire-threaded/metrics=0; do
                f=$raw/callgrind.${spec//\//_}.$v.$round.out
                valgrind --tool=callgrind --callgrind-out-file="$f" \
                    "$B/bench_stream" --client "$spec" --view "$v" --dsn "$dsn" >"$f.log" 2>&1 || rc=1
                n=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$f.log" | head -n 1)
                printf '%s\t%s\t%s\n' "$spec" "$v" "${n:-0}" | tee -a "$raw/callgrind.tsv"
                [ "$round" = 1 ] || rm -f "$f" # keep one profile of each for callgrind_annotate
            done
        done
    done
    return $rc
}
section callgrind callgrind_section

# ---- hardware counters (perf stat): user and kernel instructions, context switches, CPU -------
# The same clients, small and big view, interleaved, --runs rounds; per-row figures are slopes.
# Skipped where perf cannot count (containers, perf_event_paranoid): a smoke must not fail there.
perfstat_section() {
    command -v perf >/dev/null && perf stat -e instructions:u true >/dev/null 2>&1 ||
        { echo "skipped: perf stat cannot count instructions here"; return 0; }
    local spec f round v rc=0
    : >"$raw/perfstat.tsv"
    for round in $(seq 1 "$runs"); do
        for v in v_bench_1k $v_cg; do
            for spec in null libpq-single fwire-embedded fwire-embedded/metrics=0 fwire-threaded \
                fwire-threaded/metrics=0; do
                f=$raw/perfstat.tmp
                perf stat -x, -o "$f" -e instructions:u,instructions:k,context-switches,task-clock \
                    "$B/bench_stream" --client "$spec" --view "$v" --dsn "$dsn" >/dev/null 2>&1 || rc=1
                printf '%s\t%s\t%s\t%s\n' "$spec" "$v" "$round" \
                    "$(awk -F, '$3 ~ /instructions:u|instructions:k|context-switches|task-clock/ {printf "%s=%s ", $3, $1}' "$f")" \
                    >>"$raw/perfstat.tsv"
            done
        done
    done
    rm -f "$raw/perfstat.tmp"
    cat "$raw/perfstat.tsv"
    return $rc
}
section perfstat perfstat_section

# ---- system calls per MB (perf stat on the raw_syscalls tracepoint, else strace -c -f) ----------
# What an event loop pays that a blocking reader does not (issue 18): every client, whole process,
# interleaved, --runs rounds (at most 3: the counts barely move). One line per run in
# raw/syscalls.tsv: client, view, round, bytes of JSON, then name=count of the calls that matter.
syscalls_section() {
    local how=
    if command -v perf >/dev/null && perf stat -e raw_syscalls:sys_enter true >/dev/null 2>&1; then
        how=perf
    elif command -v strace >/dev/null; then
        how=strace
    else
        echo "skipped: neither perf (raw_syscalls) nor strace can count system calls here"; return 0
    fi
    local ev=raw_syscalls:sys_enter sc
    for sc in recvfrom read epoll_wait epoll_pwait epoll_ctl futex write sendto; do
        ev+=,syscalls:sys_enter_$sc
    done
    local spec round v=$v_sc rc=0 f=$raw/syscalls.tmp o=$raw/syscalls.out bytes counts
    local -a cmd
    : >"$raw/syscalls.tsv"
    for round in $(seq 1 $((runs < 3 ? runs : 3))); do
        for spec in null libpq-single fwire-embedded fwire-threaded fwire-cli; do
            if [ "$spec" = fwire-cli ]; then
                cmd=("$FWIRE" stream --count "$v" "$dsn")
            else
                cmd=("$B/bench_stream" --client "$spec" --view "$v" --dsn "$dsn")
            fi
            if [ "$how" = perf ]; then
                perf stat -x, -o "$f" -e "$ev" "${cmd[@]}" >"$o" 2>&1 || rc=1
                counts=$(awk -F, '$3 ~ /sys_enter/ {n=$3; sub(/.*sys_enter_?/, "", n); if (n == "") n = "total";
                                  printf "%s=%s ", n, $1}' "$f")
            else
                strace -f -c -o "$f" "${cmd[@]}" >"$o" 2>&1 || rc=1
                # strace -c: "% time  seconds  usecs/call  calls  [errors]  syscall"
                counts=$(awk '$NF ~ /^[a-z_0-9]+$/ && $(NF-1) ~ /^[0-9]+$/ {
                                  printf "%s=%s ", $NF, NF == 6 ? $(NF-2) : $(NF-1)}' "$f")
            fi
            if [ "$spec" = fwire-cli ]; then
                bytes=$(awk 'NR == 1 {print $2}' "$o")
            else
                bytes=$(sed -n 's/.* bytes=\([0-9]*\).*/\1/p' "$o")
            fi
            printf '%s\t%s\t%s\t%s\t%s%s\n' "$spec" "$v" "$round" "${bytes:-0}" "$counts" "how=$how" \
                | tee -a "$raw/syscalls.tsv"
        done
    done
    rm -f "$f" "$o"
    return $rc
}
section syscalls syscalls_section

# ---- report -------------------------------------------------------------------------------------
t_end=$(date +%s)
{
    echo "{\"mode\": \"$mode\", \"runs\": $runs, \"started\": $t_start, \"ended\": $t_end,"
    echo " \"command\": \"bench/run.sh --$mode\", \"dsn\": \"$dsn\","
    echo " \"machine\": {\"cpu\": \"$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)\","
    echo "  \"cores\": $(nproc), \"mem_gib\": $(awk '/MemTotal/ {printf "%.1f", $2/1048576}' /proc/meminfo),"
    echo "  \"kernel\": \"$(uname -r)\", \"os\": \"$(. /etc/os-release 2>/dev/null; echo "${PRETTY_NAME:-?}")\","
    echo "  \"cc\": \"$(sed -n "s/^C compiler for the host machine: \(.*\)/\1/p" "$build/meson-logs/meson-log.txt" | head -n 1 | tr -d '"')\","
    echo "  \"buildtype\": \"$(meson introspect --buildoptions "$build" 2>/dev/null | python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"]=="buildtype"))' 2>/dev/null)\","
    echo "  \"commit\": \"$(git -C "$root" rev-parse --short HEAD 2>/dev/null)$(git -C "$root" diff --quiet HEAD -- lib proto stream metrics auth 2>/dev/null || echo '+dirty')\"},"
    echo " \"sections_ok\": [$(for s in "${ran[@]}"; do printf '"%s",' "$s"; done | sed 's/,$//')],"
    echo " \"sections_failed\": [$(for s in "${failed[@]}"; do printf '"%s",' "$s"; done | sed 's/,$//')]}"
} >"$raw/meta.json"
if python3 "$root/bench/report.py" "$out"; then
    echo "report: $out/results.md, $out/results.json, plots: $(cd "$out" && ls ./*.svg 2>/dev/null | tr '\n' ' ')"
else
    failed+=(report)
fi
echo "bench/run.sh --$mode: $((t_end - t_start)) s; ${#ran[@]} sections ok, ${#failed[@]} failed${failed[*]:+: ${failed[*]}}"
[ ${#failed[@]} -eq 0 ]
