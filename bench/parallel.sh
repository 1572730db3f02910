#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench/parallel.sh: one connection against `fwire stream --parallel N` (issue 16).
#
#   bench/parallel.sh --dsn CONNINFO [--build DIR] [--relation REL] [--key COL] [--rounds R]
#                     [--parallel "2 4"] [--pgdata DIR] [--out FILE.json]
#
#   --dsn       a server with bench/setup.sql loaded (e.g. test/pgcluster.sh start DIR)
#   --build     a built meson dir (default build/bench) holding tools/fwire
#   --relation  what to read (default bench_1m: a table, split by ctid ranges)
#   --key       split by this integer key instead (--partition-key; the relation must show it)
#   --rounds    counted rounds (default 5), after one warm-up round
#   --parallel  the part counts to compare with one connection (default "2 4")
#   --pgdata    the server's data directory (on this machine): adds the server's CPU per row,
#               the CPU time of the backends the run used (the postmaster's reaped children:
#               cutime + cstime of /proc/<postmaster>/stat, read once they have exited)
#   --memory    instead of the speed table: peak RSS against the byte budget (N x --max-memory,
#               4 MiB per part by default), bench_1m and bench_10m, N = 1, 2 and 4 (or --parallel's
#               counts with 1), each with a fast consumer (--count) and a stalled one (the output
#               into a pipe whose reader sleeps --stall seconds first, so every part's queue
#               fills to its budget); --rounds runs each (median). bench_10m (10,000,000 rows,
#               ids 1..10^7, ~3.7 GB, an index on id) is made from bench_1m when missing, with
#               --setup-dsn (a role that may create tables; default --dsn): about 2-4 minutes.
#               Not in bench/run.sh or CI.
#   --stall     seconds the stalled consumer's reader waits (default 3)
#   --setup-dsn CONNINFO for making bench_10m (psql)
#
# Every round runs every variant once, in the same order (A B C A B C ...), so a change of
# load on the machine hits every variant alike; the table gives the median, min and max of
# rows/s and the median peak RSS (/usr/bin/time %M, the whole client process) per variant,
# and the speed-up of each median over one connection's, and the median of the per-round
# speed-ups (each against the same round's one connection: the figure least moved by the load
# of other jobs), and the client's CPU per row (user + sys of the whole process). Each run's
# row count is checked against the first one's. Output: the table on stdout, the same as JSON in --out.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
dsn= build=$root/build/bench relation=bench_1m key= rounds=5 pars="2 4" out= pgdata=
memory=0 stall=3 setup_dsn= rounds_given=0
while [[ $# -gt 0 ]]; do
    case $1 in
    --dsn) dsn=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --relation) relation=$2; shift 2 ;;
    --key) key=$2; shift 2 ;;
    --rounds) rounds=$2; rounds_given=1; shift 2 ;;
    --memory) memory=1; shift ;;
    --stall) stall=$2; shift 2 ;;
    --setup-dsn) setup_dsn=$2; shift 2 ;;
    --parallel) pars=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --pgdata) pgdata=$2; shift 2 ;;
    -h | --help) sed -n '3,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) printf 'bench/parallel.sh: unknown option %s\n' "$1" >&2; exit 2 ;;
    esac
done
[[ -n $dsn ]] || { printf 'bench/parallel.sh: --dsn is required\n' >&2; exit 2; }
fwire=$build/tools/fwire
[[ -x $fwire ]] || { printf 'bench/parallel.sh: %s not built\n' "$fwire" >&2; exit 2; }
[[ $rounds -ge 1 ]] || { printf 'bench/parallel.sh: --rounds wants 1 or more\n' >&2; exit 2; }

# ---- --memory: peak RSS against the budget, 1M and 10M rows --------------------------------
if [[ $memory -eq 1 ]]; then
    [[ $rounds_given -eq 1 ]] || rounds=1
    psql_bin=$(command -v psql || true)
    [[ -n $psql_bin ]] || psql_bin=${FW_TEST_PGBINDIR:-/usr/lib/postgresql/15/bin}/psql
    have=$("$psql_bin" -X -At -d "$dsn" -c "SELECT to_regclass('bench_10m') IS NOT NULL")
    if [[ $have != t ]]; then
        printf 'making bench_10m from bench_1m (10,000,000 rows, ~3.7 GB) ...\n' >&2
        "$psql_bin" -X -q -v ON_ERROR_STOP=1 -d "${setup_dsn:-$dsn}" <<'SQL'
SET max_parallel_workers_per_gather = 0;
CREATE UNLOGGED TABLE bench_10m AS
SELECT k * 1000000 + b.id AS id, b.data FROM generate_series(0, 9) AS k, bench_1m AS b
ORDER BY k, b.id;
CREATE INDEX bench_10m_id ON bench_10m (id);
VACUUM ANALYZE bench_10m;
GRANT SELECT ON bench_10m TO PUBLIC;
SQL
    fi
    budget=$((4 * 1024 * 1024))
    mtmp=$(mktemp -d)
    trap 'rm -rf "$mtmp"' EXIT
    ns="1"
    for n in ${pars/#1 /}; do [[ $n == 1 ]] || ns+=" $n"; done
    load_start=$(cut -d' ' -f1-3 /proc/loadavg)
    for round in $(seq "$rounds"); do
        for rel in bench_1m bench_10m; do
            for consumer in fast stalled; do
                for n in $ns; do
                    args=()
                    [[ $n -eq 1 ]] || args=(--parallel "$n")
                    if [[ $consumer == fast ]]; then
                        /usr/bin/time -f '%M %e' -o "$mtmp/time" "$fwire" stream "${args[@]}" \
                            --count "$rel" "$dsn" >"$mtmp/out"
                        rows=$(cut -d' ' -f1 <"$mtmp/out")
                    else
                        /usr/bin/time -f '%M %e' -o "$mtmp/time" "$fwire" stream "${args[@]}" \
                            "$rel" "$dsn" | { sleep "$stall"; wc -l >"$mtmp/out"; }
                        rows=$(tr -d ' ' <"$mtmp/out")
                    fi
                    printf '%s %s\n' "$rows" "$(cat "$mtmp/time")" >>"$mtmp/$rel.$consumer.$n"
                done
            done
        done
    done
    printf 'peak RSS (/usr/bin/time %%M, the whole fwire process) against the byte budget (%d MiB per part), %d round(s), stalled reader %ss\n' \
        $((budget / 1048576)) "$rounds" "$stall"
    printf '| relation | rows | consumer | parts N | budget N x 4 MiB | peak RSS MiB (median) | RSS - budget MiB |\n'
    printf '|---|---:|---|---:|---:|---:|---:|\n'
    json="{\"memory\": true, \"budget_per_part_bytes\": $budget, \"rounds\": $rounds, \"stall_s\": $stall, \"runs\": ["
    sep=
    for rel in bench_1m bench_10m; do
        for consumer in fast stalled; do
            for n in $ns; do
                f=$mtmp/$rel.$consumer.$n
                rows=$(cut -d' ' -f1 "$f" | sort -u)
                [[ $(wc -l <<<"$rows") -eq 1 ]] || { printf 'bench/parallel.sh: row counts differ: %s\n' "$rows" >&2; exit 1; }
                rss=$(cut -d' ' -f2 "$f" | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}')
                read -r mib over <<<"$(awk -v k="$rss" -v n="$n" -v b="$budget" 'BEGIN {
                    printf "%.1f %.1f", k / 1024, k / 1024 - n * b / 1048576 }')"
                printf '| %s | %s | %s | %s | %s MiB | %s | %s |\n' "$rel" "$rows" "$consumer" "$n" \
                    $((n * budget / 1048576)) "$mib" "$over"
                json+="$sep{\"relation\": \"$rel\", \"rows\": $rows, \"consumer\": \"$consumer\", \"parts\": $n, \"budget_bytes\": $((n * budget)), \"peak_rss_kib_median\": $rss}"
                sep=", "
            done
        done
    done
    json+="], \"load_start\": \"$load_start\", \"load_end\": \"$(cut -d' ' -f1-3 /proc/loadavg)\", \"cpus\": $(nproc)}"
    printf '%s\n' "$json" >"${out:-/dev/null}"
    printf 'load average at the start: %s, at the end: %s; CPUs: %s\n' "$load_start" \
        "$(cut -d' ' -f1-3 /proc/loadavg)" "$(nproc)"
    exit 0
fi

variants=(1)
for n in $pars; do variants+=("$n"); done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
expect=

pm=
if [[ -n $pgdata ]]; then
    pm=$(head -1 "$pgdata/postmaster.pid")
    [[ -r /proc/$pm/stat ]] || { printf 'bench/parallel.sh: no postmaster %s\n' "$pm" >&2; exit 2; }
fi
# CPU seconds of the postmaster's children that have exited (cutime + cstime), once the run's
# backends are gone: the children left are its own background processes (fewer than 10).
server_cpu() {
    [[ -n $pm ]] || { printf '0\n'; return; }
    local i
    for i in $(seq 100); do
        [[ $(pgrep -c -P "$pm") -gt $base_children ]] || break
        sleep 0.05
    done
    awk -v hz="$(getconf CLK_TCK)" '{sub(/^.*\) /, ""); printf "%.3f\n", ($14 + $15) / hz}' \
        "/proc/$pm/stat"
}
base_children=$([[ -n $pm ]] && pgrep -c -P "$pm" || printf '0')

# One run: "<rows> <seconds> <max RSS KiB> <client CPU s> <server CPU s>".
one() {
    local n=$1 args=()
    if [[ $n -gt 1 ]]; then
        args=(--parallel "$n")
        [[ -z $key ]] || args+=(--partition-key "$key")
    fi
    local s0 s1
    s0=$(server_cpu)
    /usr/bin/time -f '%e %M %U %S' -o "$tmp/time" "$fwire" stream "${args[@]}" --count \
        "$relation" "$dsn" >"$tmp/count"
    s1=$(server_cpu)
    printf '%s %s %s\n' "$(cut -d' ' -f1 <"$tmp/count")" \
        "$(awk '{printf "%s %s %.2f", $1, $2, $3 + $4}' "$tmp/time")" \
        "$(awk -v a="$s0" -v b="$s1" 'BEGIN {printf "%.2f", b - a}')"
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
for round in $(seq 0 "$rounds"); do
    for n in "${variants[@]}"; do
        r=$(one "$n")
        rows=${r%% *}
        [[ -n $expect ]] || expect=$rows
        if [[ $rows != "$expect" ]]; then
            printf 'bench/parallel.sh: %s connections read %s rows, the first run %s\n' "$n" \
                "$rows" "$expect" >&2
            exit 1
        fi
        # round 0 is the warm-up: the server's cache and the client's pages
        [[ $round -eq 0 ]] || printf '%s\n' "$r" >>"$tmp/v$n"
    done
done

stat() { # median min max of column $2 of file $1 (numbers)
    sort -g -k"$2","$2" "$1" | awk -v c="$2" '{v[NR]=$c} END {
        m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2
        printf "%s %s %s", m, v[1], v[NR] }'
}

base=
split=ctid
[[ -z $key ]] || split="key $key"
printf '%s, %s rows, %d rounds interleaved after a warm-up, split by %s\n' "$relation" "$expect" \
    "$rounds" "$split"
printf '| connections | rows/s median | min | max | speed-up (medians) | speed-up (per round, median) | client CPU ns/row | server CPU ns/row | peak RSS KiB |\n'
printf '|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n'
json="{\"relation\": \"$relation\", \"rows\": $expect, \"rounds\": $rounds, \"split\": \"${key:-ctid}\", \"variants\": ["
sep=
for n in "${variants[@]}"; do
    # rows/s, RSS, client and server CPU ns/row, and the speed-up against the same round's
    # one connection
    paste "$tmp/v$n" "$tmp/v1" | awk -v rows="$expect" '{printf "%.0f %s %.0f %.0f %.4f\n",
        $1 / $2, $3, $4 * 1e9 / rows, $5 * 1e9 / rows, ($1 / $2) / ($6 / $7)}' >"$tmp/r$n"
    read -r med lo hi <<<"$(stat "$tmp/r$n" 1)"
    read -r rss _ _ <<<"$(stat "$tmp/r$n" 2)"
    read -r ccpu _ _ <<<"$(stat "$tmp/r$n" 3)"
    read -r scpu _ _ <<<"$(stat "$tmp/r$n" 4)"
    read -r rup _ _ <<<"$(stat "$tmp/r$n" 5)"
    [[ -n $base ]] || base=$med
    up=$(awk -v a="$med" -v b="$base" 'BEGIN {printf "%.2f", a / b}')
    [[ -n $pm ]] || scpu=-
    printf '| %s | %.0f | %.0f | %.0f | %sx | %.2fx | %.0f | %s | %.0f |\n' "$n" "$med" "$lo" "$hi" \
        "$up" "$rup" "$ccpu" "$scpu" "$rss"
    json+="$sep{\"connections\": $n, \"rows_per_s_median\": $med, \"rows_per_s_min\": $lo, \"rows_per_s_max\": $hi, \"speedup\": $up, \"speedup_per_round\": $rup, \"client_cpu_ns_per_row\": $ccpu, \"server_cpu_ns_per_row\": \"$scpu\", \"rss_kib_median\": $rss}"
    sep=", "
done
json+="], \"load_start\": \"$load_start\", \"load_end\": \"$(cut -d' ' -f1-3 /proc/loadavg)\", \"cpus\": $(nproc)}"
printf '%s\n' "$json" >"${out:-/dev/null}"
printf 'load average at the start: %s, at the end: %s; CPUs: %s\n' "$load_start" \
    "$(cut -d' ' -f1-3 /proc/loadavg)" "$(nproc)"
