#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs every test fwire has, the way CI does. Stages (each in its own build dir):
#   gcc, clang  built as Debian builds a package (--buildtype=plain, CFLAGS from dpkg-buildflags
#               plus -D_FORTIFY_SOURCE=2) with -Dwerror=true (warnings fail CI, never a user's
#               build), the benchmarks and every test compiled; gcc's unit and build suites
#               run (clang's tests run in the asan stage, built by the same clang). One build per
#               compiler serves both the developer's check and the packager's: the same sources,
#               compiler and -O2 -g, so two builds would only compile twice.
#   release     gcc --buildtype=release (-O3, which alone makes gcc's -Wformat-truncation see
#               some buffers) with the project's default -Dwerror=false, failed on any warning in
#               its log; clang's warnings come from its front end, the same at every -O, so a
#               clang twin added compile time, not coverage
#   asan        the whole suite (unit + integration against a throwaway PostgreSQL 15 and a
#               replicated cluster + build checks) once, under ASan+UBSan, LeakSanitizer included
#   tsan        the unit and threads suites under TSan
#   valgrind    the unit suite under memcheck, on the gcc build
#   fuzz        each fuzz target for FW_FUZZ_SECONDS (default 10)
#   bench       `bench/run.sh --quick --runs FW_BENCH_RUNS` (default 1) on the gcc build as a smoke
#               check that the benchmark suite runs (one test: passed when every section ran and
#               every client got the server's answer; timings are not judged, so one counted run
#               after the warm-up checks as much as five)
# Ends with each stage's wall time (and the load average at its start and end) and one line
# "N passed, N failed" counted from meson's test logs and the smoke. Exit status 0 only if nothing
# failed.
#
#   test/run-all.sh            (after tools/install-deps.sh)
#
# Build dirs go under $FW_BUILD_ROOT (default build/). Set FW_SKIP="tsan valgrind" to skip stages,
# or FW_STAGES="gcc valgrind" to run only those (stage names: gcc clang release asan tsan valgrind
# fuzz bench). Stage times also go to $FW_BUILD_ROOT/stage-times.tsv.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=${FW_BUILD_ROOT:-$root/build}
fuzz_seconds=${FW_FUZZ_SECONDS:-10}
skip=" ${FW_SKIP:-} "
bench_runs=${FW_BENCH_RUNS:-1}
all_stages="gcc clang release asan tsan valgrind fuzz bench"
stages=${FW_STAGES:-$all_stages}
mkdir -p "$out"
# One loaded cluster snapshot serves every build's integration tests (pgcluster.sh keys it by a
# hash of the scripts and SQL): the data load runs once, not once per build.
export FW_PG_CACHE_DIR=${FW_PG_CACHE_DIR:-$out/pgcache}
logs=()
failed_stages=()
build_failed=() # a build that fails counts as one failed test: nothing of it could run

stage() { printf '\n==== %s ====\n' "$*"; }

# setup NAME CC [meson options...]: configures (or reconfigures) $out/NAME and builds it.
setup() {
  local name=$1 cc=$2
  shift 2
  local dir="$out/$name"
  if [ -f "$dir/build.ninja" ]; then
    meson configure "$dir" "$@" >/dev/null || { build_failed+=("$name"); return 1; }
  else
    CC=$cc meson setup "$dir" "$@" >"$out/$name.setup.log" 2>&1 ||
      { cat "$out/$name.setup.log"; build_failed+=("$name"); return 1; }
  fi
  meson compile -C "$dir" || { build_failed+=("$name"); return 1; }
}

# run NAME [meson test options...]: runs tests and remembers the log for the summary.
run() {
  local name=$1
  shift
  local dir="$out/$name"
  rm -f "$dir/meson-logs/testlog"*.json
  meson test -C "$dir" --print-errorlogs "$@"
  local rc=$?
  for f in "$dir"/meson-logs/testlog*.json; do
    [ -f "$f" ] && cp "$f" "$out/$name.$(basename "$f")" && logs+=("$out/$name.$(basename "$f")")
  done
  return $rc
}

times=() # "stage<TAB>seconds<TAB>result<TAB>load at start<TAB>load at end", for the summary
load1() { cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo '?'; }
attempt() { # NAME command...: runs a stage, records its failure without stopping the others
  local name=$1 t0=$SECONDS l0 result=ok
  shift
  l0=$(load1)
  stage "$name"
  if ! "$@"; then
    failed_stages+=("$name")
    result=FAILED
  fi
  times+=("$name"$'\t'"$((SECONDS - t0))"$'\t'"$result"$'\t'"$l0"$'\t'"$(load1)")
  printf '==== %s: %s in %d s (load average %s -> %s)\n' "$name" "$result" $((SECONDS - t0)) \
    "$l0" "$(load1)"
}

# Debian's default build flags (dpkg-buildflags), which a packaged build adds to -O2.
debian_cflags() {
  dpkg-buildflags --get CFLAGS 2>/dev/null ||
    echo '-g -O2 -fstack-protector-strong -Wformat -Werror=format-security'
}
# gcc and clang: a packager's build (--buildtype=plain, Debian's CFLAGS, _FORTIFY_SOURCE), with
# -Werror so that any warning fails it, and with the benchmarks and every test built.
# (-Dc_args, not CFLAGS: `meson configure` applies it to a build dir made before.)
compiler_build() { # NAME CC
  setup "$1" "$2" --buildtype=plain -Dc_args="$(debian_cflags) -D_FORTIFY_SOURCE=2" \
    -Dwerror=true -Dbench=true
}
gcc_stage() { compiler_build gcc gcc && run gcc --suite unit --suite build; }
# clang: compiled only; the asan stage runs every test clang builds (with -Werror too)
clang_stage() { compiler_build clang clang; }

# packager NAME CC BUILDTYPE TESTS [CFLAGS]: a build as a distribution makes it, with the
# defaults (-Dwerror=false), benchmarks and tools on, the tests as TESTS says (enabled: built and
# the unit suite run; disabled: the library, the command, the examples and the benchmarks only).
# It must build and warn about nothing: a warning is reported here, where CI sees it, not in a
# user's build.
packager() {
  local name=$1 cc=$2 buildtype=$3 tests=$4 cflags=${5:-} dir="$out/$1" log="$out/$1.compile.log"
  local result=OK t0=$SECONDS
  if [ ! -f "$dir/build.ninja" ]; then
    CC=$cc CFLAGS=$cflags meson setup "$dir" --buildtype="$buildtype" -Dbench=true \
      -Dtests="$tests" -Dintegration=false >"$out/$name.setup.log" 2>&1 ||
      { cat "$out/$name.setup.log"; result=FAIL; }
  fi
  if [ $result = OK ]; then
    meson compile -C "$dir" 2>&1 | tee "$log"
    [ "${PIPESTATUS[0]}" -eq 0 ] || result=FAIL
  fi
  if [ $result = OK ] && grep -q 'warning:' "$log"; then
    echo "$name: the compiler warned:"
    grep -A3 'warning:' "$log" | head -40
    result=FAIL
  fi
  # counted as one test in the summary: built, and without a warning
  printf '{"name": "%s: builds without warnings", "result": "%s", "duration": %d}\n' \
    "$name" "$result" $((SECONDS - t0)) >"$out/$name.build.testlog.json"
  logs+=("$out/$name.build.testlog.json")
  [ $result = OK ] || return 1
  [ "$tests" = disabled ] || run "$name" --suite unit
}
release_stage() { packager release-gcc gcc release disabled; }
asan_stage() {
  setup asan clang -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false &&
    wait_pg_warm &&
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1 \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 run asan
}
tsan_stage() {
  setup tsan clang -Dwerror=true -Db_sanitize=thread -Db_lundef=false &&
    TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 run tsan --suite unit --suite threads
}
valgrind_stage() { run gcc --setup valgrind --suite unit; }
fuzz_stage() {
  setup fuzz clang -Dwerror=true -Dfuzz=true -Dtests=disabled -Db_lundef=false \
    -Dfuzz_seconds="$fuzz_seconds" && run fuzz --suite fuzz
}

# The benchmark suite's quick mode (about a minute on 2 cores), on the gcc build; its results go
# to $out/bench-smoke. Recorded as one test in a meson-style log so the summary counts it.
bench_stage() {
    local log="$out/bench-smoke.testlog.json" rc=0 t0=$SECONDS
    wait_pg_warm
    [ -f "$out/gcc/build.ninja" ] || compiler_build gcc gcc || rc=1
    if [ $rc -eq 0 ]; then
        rm -rf "$out/bench-smoke"
        bash "$root/bench/run.sh" --quick --runs "$bench_runs" --build "$out/gcc" \
            --out "$out/bench-smoke" || rc=1
    fi
    printf '{"name": "bench/run.sh --quick (smoke)", "result": "%s", "duration": %d}\n' \
        "$([ $rc -eq 0 ] && echo OK || echo FAIL)" $((SECONDS - t0)) >"$log"
    logs+=("$log")
    return $rc
}

# A fresh machine has no cluster snapshot: the first integration test of the asan stage would
# wait (with the other test slot waiting on the same lock) for initdb and the data load on one
# core. Make both snapshots (test/pgcluster.sh's, test/pgrepl.sh's primary) in the background
# while the compiler stages build instead, where that core is the only cost. The cache writes
# an entry under a temporary name and renames it whole, so a test that starts before this
# ends loads its own cluster as before; nothing depends on this succeeding (its log is
# $out/pgcache-warm.log).
warm_pid=
warm_pg_cache() {
  local d
  d=$(mktemp -d "${TMPDIR:-/tmp}/fwwarm.XXXXXX") || return 1
  chmod 0755 "$d" # the server runs as another account when we are root
  bash test/pgcluster.sh start "$d/pg" </dev/null && bash test/pgcluster.sh stop "$d/pg"
  bash test/pgrepl.sh start "$d/repl" </dev/null && bash test/pgrepl.sh stop "$d/repl"
  rm -rf "$d"
}
wait_pg_warm() { [ -z "$warm_pid" ] || wait "$warm_pid" || true; warm_pid=; }
will_run() { # STAGE: selected by FW_STAGES and not skipped by FW_SKIP
  case " $stages " in *" $1 "*) ;; *) return 1 ;; esac
  case "$skip" in *" $1 "*) return 1 ;; esac
}
# (Not when the tests are told to skip the server or to use one of their own.)
if { will_run asan || will_run bench; } && [ "${FW_TEST_NO_PG:-0}" != 1 ] &&
  [ -z "${FW_TEST_SOCKDIR:-}" ]; then
  warm_pg_cache >"$out/pgcache-warm.log" 2>&1 &
  warm_pid=$!
fi

t_all=$SECONDS
for s in $all_stages; do
  case " $stages " in *" $s "*) ;; *) continue ;; esac
  will_run "$s" || { stage "$s (skipped by FW_SKIP)"; continue; }
  attempt "$s" "${s}_stage"
done

wait_pg_warm
stage summary
{
  printf 'stage\tseconds\tresult\tload1 start\tload1 end\n'
  printf '%s\n' "${times[@]}"
  printf 'all\t%d\t\t\t\n' $((SECONDS - t_all))
} >"$out/stage-times.tsv"
column -t -s $'\t' "$out/stage-times.tsv" 2>/dev/null || cat "$out/stage-times.tsv"
[ ${#failed_stages[@]} -eq 0 ] || echo "failed stages: ${failed_stages[*]}"
[ ${#build_failed[@]} -eq 0 ] || echo "builds that failed: ${build_failed[*]}"
BUILD_FAILED=${#build_failed[@]} python3 - "${logs[@]}" <<'PY'
import json, os, sys
counts = {}
for path in sys.argv[1:]:
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                r = json.loads(line)["result"]
                counts[r] = counts.get(r, 0) + 1
passed = counts.get("OK", 0) + counts.get("EXPECTEDFAIL", 0)
skipped = counts.get("SKIP", 0)
failed = sum(v for k, v in counts.items() if k not in ("OK", "EXPECTEDFAIL", "SKIP"))
failed += int(os.environ.get("BUILD_FAILED", "0"))
print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
PY
[ ${#failed_stages[@]} -eq 0 ]
