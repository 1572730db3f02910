#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# test/with-pg.sh PROGRAM [ARGS...]
#
# Runs one integration test with the FW_TEST_* variables of a throwaway PostgreSQL 15
# cluster in its environment (see test/pgcluster.sh for the list). meson runs every
# integration test through this wrapper, many at once:
#
#   - FW_TEST_SOCKDIR already set: the caller points the tests at a cluster of their
#     own; run PROGRAM unchanged.
#   - FW_TEST_NO_PG=1: exit 77, which meson reports as "skipped".
#   - otherwise all wrappers of one test run share one cluster, recorded in
#     $FW_PG_STATE/current. The first wrapper starts it (under a lock, so the others
#     wait and then reuse it) and leaves behind a detached watchdog that stops the
#     cluster once the test run is over.
#
# "The test run" is the owner process: this wrapper's parent ($PPID), i.e. the meson
# test runner, or FW_PG_OWNER_PID if set. When the owner exits, normally or through
# Ctrl-C, the watchdog stops the cluster and deletes its directory. A cluster left over
# from an earlier run whose owner is gone is stopped by the next wrapper.
#
# Environment: FW_PG_STATE (required; meson points it into the build dir),
# FW_PG_OWNER_PID, and everything test/pgcluster.sh reads (FW_PG_BINDIR,
# FW_PG_CACHE_DIR, FW_PG_USER). Exit status: PROGRAM's, 77 when skipped, 99 when no
# cluster could be started (meson shows that as an error rather than a test failure).
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
self=$script_dir/with-pg.sh
pgcluster=$script_dir/pgcluster.sh
readonly LOCK_WAIT_SECONDS=900

# "pid starttime" of a live process, or nothing. The start time (field 22 of
# /proc/PID/stat, in clock ticks since boot) tells a recycled pid from the original.
# A zombie counts as gone: it has exited, only its parent has not reaped it yet.
proc_identity() {
    local pid=$1 stat rest
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    # comm (field 2) may hold spaces and parentheses: cut after its last ')'.
    rest=${stat##*) }
    local -a f
    read -r -a f <<<"$rest"
    [[ ${f[0]} != Z && ${f[0]} != X ]] || return 1
    printf '%s %s' "$pid" "${f[19]}"
}

take_lock() {
    exec 9>"$state/lock"
    flock -w "$LOCK_WAIT_SECONDS" 9 || {
        printf 'with-pg.sh: timed out waiting for %s/lock\n' "$state" >&2
        exit 99
    }
}

# --- watchdog: with-pg.sh __watchdog__ STATE DIR PID STARTTIME ------------------------
# Runs detached (own session, no inherited stdio), polls until the owner is gone, then
# stops the cluster. The lock keeps it from racing a wrapper that is looking at
# `current` at the same moment.
if [[ ${1:-} == __watchdog__ ]]; then
    state=$2 dir=$3 owner="$4 $5"
    while [[ $(proc_identity "$4" || true) == "$owner" ]]; do
        sleep 0.2
    done
    take_lock
    if [[ -f $state/current ]]; then
        read -r cur_dir _ <"$state/current" || true
        if [[ ${cur_dir:-} == "$dir" ]]; then rm -f "$state/current"; fi
    fi
    printf '%s: owner %s gone, stopping %s\n' "$(date -u +%FT%TZ)" "$4" "$dir"
    bash "$pgcluster" stop "$dir" 9>&-
    exit 0
fi

if [[ $# -lt 1 ]]; then
    printf 'usage: %s PROGRAM [ARGS...]\n' "${0##*/}" >&2
    exit 2
fi

# A cluster chosen by the caller wins over everything else.
if [[ -n ${FW_TEST_SOCKDIR:-} ]]; then
    exec "$@"
fi
if [[ ${FW_TEST_NO_PG:-} == 1 ]]; then
    printf 'with-pg.sh: FW_TEST_NO_PG=1, skipping %s\n' "$1" >&2
    exit 77
fi

state=${FW_PG_STATE:?with-pg.sh: set FW_PG_STATE to a directory for the shared cluster state}
mkdir -p "$state"
state=$(cd "$state" && pwd -P)

owner_pid=${FW_PG_OWNER_PID:-$PPID}
owner_id=$(proc_identity "$owner_pid") || {
    printf 'with-pg.sh: owner process %s is not running\n' "$owner_pid" >&2
    exit 99
}

take_lock

# Every child started below gets 9>&- : a process that inherits the lock fd (the
# postmaster, the watchdog) would hold the lock for as long as it lives.
cluster=
if [[ -f $state/current ]]; then
    cur_dir='' cur_pid='' cur_start=''
    read -r cur_dir cur_pid cur_start <"$state/current" || true
    if [[ "$cur_pid $cur_start" == "$owner_id" && -n $cur_dir && -f $cur_dir/env ]] &&
        bash "$pgcluster" status "$cur_dir" 9>&- </dev/null >/dev/null 2>&1; then
        cluster=$cur_dir
    elif [[ -n $cur_dir && $(proc_identity "$cur_pid" || true) == "$cur_pid $cur_start" &&
        "$cur_pid $cur_start" != "$owner_id" ]]; then
        # Another test run that is still going (say a second `meson test` on the same
        # build dir): leave its cluster alone, its own watchdog will stop it.
        :
    elif [[ -n $cur_dir ]]; then
        # Stale: the owner is gone (its watchdog may have died too), or the server of
        # our own run crashed. Clean it up before starting a fresh one.
        bash "$pgcluster" stop "$cur_dir" 9>&- </dev/null >>"$state/watchdog.log" 2>&1 || true
    fi
fi

if [[ -z $cluster ]]; then
    cluster=$(mktemp -d "${TMPDIR:-/tmp}/fwire-pg.XXXXXX")
    # mktemp makes it 0700; the server runs as another account when we are root.
    chmod 0755 "$cluster"
    # Record the cluster and start its watchdog *before* the (slow) start: if this
    # wrapper is killed half-way, the watchdog or the next wrapper still cleans up.
    # A half-built cluster is never reused: reuse needs DIR/env, written last.
    printf '%s %s\n' "$cluster" "$owner_id" >"$state/current.tmp"
    mv -f "$state/current.tmp" "$state/current"
    # Detached watchdog: its own session (Ctrl-C in the terminal does not reach it),
    # stdin from /dev/null and output to a log, so meson, which waits for the test's
    # stdout/stderr to close, does not wait for it. It needs the lock we hold, so it
    # cannot act before the start below has finished or failed.
    read -r _ owner_start <<<"$owner_id"
    setsid nohup bash "$self" __watchdog__ "$state" "$cluster" "$owner_pid" "$owner_start" \
        </dev/null >>"$state/watchdog.log" 2>&1 9>&- &
    # Interrupted while starting: pgcluster.sh stops its server itself; drop the dir.
    trap 'bash "$pgcluster" stop "$cluster" 9>&- </dev/null >/dev/null 2>&1; rm -f "$state/current"; exit 130' INT
    trap 'bash "$pgcluster" stop "$cluster" 9>&- </dev/null >/dev/null 2>&1; rm -f "$state/current"; exit 143' TERM
    # pgcluster.sh's output goes to a log, never to our stdout: a TAP test's stdout
    # is parsed by meson.
    if ! bash "$pgcluster" start "$cluster" 9>&- </dev/null >"$state/start.log" 2>&1; then
        printf 'with-pg.sh: could not start a PostgreSQL test cluster:\n' >&2
        cat "$state/start.log" >&2
        bash "$pgcluster" stop "$cluster" 9>&- </dev/null >/dev/null 2>&1 || rm -rf "$cluster"
        rm -f "$state/current"
        exit 99
    fi
    trap - INT TERM
    # A start that had to work around something says so in the first test's log.
    grep -F ': warning: ' "$state/start.log" >&2 || true
fi

set -a
# shellcheck source=/dev/null
. "$cluster/env"
set +a

exec 9>&-
exec "$@"
