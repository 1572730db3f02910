#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs every test fwire has, the way CI does: builds with gcc and clang (-Dwerror=true: warnings
# fail CI, never a user's build) and runs the unit and build suites with both; the whole suite
# (unit + integration against a throwaway PostgreSQL 15 and a replicated cluster + build checks)
# runs once, in the ASan+UBSan build below (every integration test, every run mode: the same
# tests a plain build would run, with the sanitizers watching; the gcc build's integration run
# duplicated it test for test and cost 9 of CI's 28 minutes on two cores); builds as packagers build (--buildtype=release and
# --buildtype=plain with Debian's CFLAGS, gcc and clang, the default -Dwerror=false; the plain
# ones also build and run the unit tests) and fails them on any compiler warning; again under
# ASan+UBSan (LeakSanitizer included); the unit tests under TSan and under valgrind; and each
# fuzz target for FW_FUZZ_SECONDS (default 10); then `bench/run.sh --quick` on the gcc build as a
# smoke check that the benchmark suite runs (one test: passed when every section ran and every
# client got the server's answer; timings are not judged). Ends with one line "N passed,
# N failed" counted from meson's test logs and the smoke. Exit status 0 only if nothing failed.
#
#   test/run-all.sh            (after tools/install-deps.sh)
#
# Build dirs go under $FW_BUILD_ROOT (default build/). Set FW_SKIP="tsan valgrind" to skip stages
# (stage names: gcc clang release plain asan tsan valgrind fuzz bench).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=${FW_BUILD_ROOT:-$root/build}
fuzz_seconds=${FW_FUZZ_SECONDS:-10}
skip=" ${FW_SKIP:-} "
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

attempt() { # NAME command...: runs a stage, records its failure without stopping the others
  local name=$1
  shift
  stage "$name"
  if ! "$@"; then
    failed_stages+=("$name")
  fi
}

gcc_stage() { setup gcc gcc -Dwerror=true -Dbench=true && run gcc --suite unit --suite build; }
clang_stage() { setup clang clang -Dwerror=true && run clang --suite unit --suite build; }

# packager NAME CC BUILDTYPE TESTS [CFLAGS]: a build as a distribution makes it, with the
# defaults (-Dwerror=false), benchmarks and tools on, the tests as TESTS says (enabled: built and
# the unit suite run; disabled: the library, the command, the examples and the benchmarks only,
# which keeps the four builds within a few minutes). It must build and warn about nothing: a
# warning is reported here, where CI sees it, not in a user's build.
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
# Debian's default build flags (dpkg-buildflags), which a packaged build adds to -O2.
debian_cflags() {
  dpkg-buildflags --get CFLAGS 2>/dev/null ||
    echo '-g -O2 -fstack-protector-strong -Wformat -Werror=format-security'
}
release_stage() {
  local rc=0
  packager release-gcc gcc release disabled || rc=1
  packager release-clang clang release disabled || rc=1
  return $rc
}
plain_stage() {
  local rc=0 flags
  flags="$(debian_cflags) -D_FORTIFY_SOURCE=2"
  packager plain-gcc gcc plain enabled "$flags" || rc=1
  packager plain-clang clang plain enabled "$flags" || rc=1
  return $rc
}
asan_stage() {
  setup asan clang -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false &&
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
    [ -f "$out/gcc/build.ninja" ] || setup gcc gcc -Dwerror=true -Dbench=true || rc=1
    if [ $rc -eq 0 ]; then
        rm -rf "$out/bench-smoke"
        bash "$root/bench/run.sh" --quick --build "$out/gcc" --out "$out/bench-smoke" || rc=1
    fi
    printf '{"name": "bench/run.sh --quick (smoke)", "result": "%s", "duration": %d}\n' \
        "$([ $rc -eq 0 ] && echo OK || echo FAIL)" $((SECONDS - t0)) >"$log"
    logs+=("$log")
    return $rc
}

for s in gcc clang release plain asan tsan valgrind fuzz bench; do
  case "$skip" in *" $s "*) stage "$s (skipped by FW_SKIP)"; continue ;; esac
  attempt "$s" "${s}_stage"
done

stage summary
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
