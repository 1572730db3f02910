#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# test/with-repl.sh PROGRAM [ARGS...]
#
# Runs one test with a replicated PostgreSQL 15 of its own (test/pgrepl.sh: a primary and
# two streaming standbys) and the FW_REPL_* variables of that cluster in its environment.
# Unlike test/with-pg.sh, clusters are never shared: a test that stops nodes or promotes a
# standby changes the topology for good, so every wrapper starts a fresh cluster (a few
# seconds) and removes it when PROGRAM ends, however it ends:
#
#   - a trap stops the cluster and deletes its directory on exit, Ctrl-C and SIGTERM;
#   - a detached watchdog does the same if this wrapper dies without running its trap
#     (SIGKILL, say from meson after a timeout).
#
# The cluster goes under FW_REPL_STATE (meson points it into the build dir), or TMPDIR, or
# /tmp; a directory that the server account cannot reach, or whose socket paths would be
# too long, falls back to TMPDIR or /tmp.
#
# Environment: FW_TEST_NO_PG=1 skips (exit 77); FW_REPL_KEEP=1 leaves the cluster running
# for a look afterwards (its directory is printed; `test/pgrepl.sh stop DIR` removes it);
# and everything test/pgrepl.sh reads (FW_PG_BINDIR, FW_PG_CACHE_DIR, FW_PG_USER,
# FW_REPL_WAIT). Exit status: PROGRAM's, 77 when skipped, 99 when the cluster could not be
# started (meson shows that as an error rather than a test failure).
set -uo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
self=$script_dir/with-repl.sh
pgrepl=$script_dir/pgrepl.sh

say() { printf 'with-repl.sh: %s\n' "$*" >&2; }

# "pid starttime" of a live process, or nothing (the start time tells a recycled pid from
# the original; a zombie counts as gone). As in test/with-pg.sh.
proc_identity() {
    local pid=$1 stat rest
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    rest=${stat##*) }
    local -a f
    read -r -a f <<<"$rest"
    [[ ${f[0]} != Z && ${f[0]} != X ]] || return 1
    printf '%s %s' "$pid" "${f[19]}"
}

# --- watchdog: with-repl.sh __watchdog__ DIR PID STARTTIME ------------------------------
if [[ ${1:-} == __watchdog__ ]]; then
    dir=$2 owner="$3 $4"
    while [[ -d $dir && $(proc_identity "$3" || true) == "$owner" ]]; do
        sleep 0.5
    done
    if [[ -d $dir ]]; then
        printf '%s: owner %s gone, stopping %s\n' "$(date -u +%FT%TZ)" "$3" "$dir"
        bash "$pgrepl" stop "$dir"
    fi
    rm -f "$dir.log"
    exit 0
fi

if [[ $# -lt 1 ]]; then
    printf 'usage: %s PROGRAM [ARGS...]\n' "${0##*/}" >&2
    exit 2
fi
if [[ ${FW_TEST_NO_PG:-} == 1 ]]; then
    say "FW_TEST_NO_PG=1, skipping $1"
    exit 77
fi

# Can the server account reach a cluster in $1, and do its socket paths fit in 107 bytes?
# (The directory name mktemp makes below is 16 bytes; pgrepl.sh adds n0/sock/.s.PGSQL.N.)
usable_base() {
    local base=$1
    mkdir -p "$base" 2>/dev/null || return 1
    base=$(cd "$base" && pwd -P) || return 1
    local sock="$base/fwire-repl.XXXXXX/n0/sock/.s.PGSQL.60000"
    ((${#sock} <= 107)) || return 1
    if [[ $(id -u) -eq 0 ]]; then
        local u=${FW_PG_USER:-nobody}
        setpriv --reuid="$u" --regid="$(id -gn "$u" 2>/dev/null || echo "$u")" --clear-groups -- \
            test -x "$base" 2>/dev/null || return 1
    fi
    printf '%s' "$base"
}

base=
for candidate in ${FW_REPL_STATE:+"$FW_REPL_STATE"} "${TMPDIR:-/tmp}" /tmp; do
    if base=$(usable_base "$candidate"); then break; fi
    base=
done
[[ -n $base ]] || { say "no directory for the cluster (tried FW_REPL_STATE, TMPDIR, /tmp)"; exit 99; }

dir=$(mktemp -d "$base/fwire-repl.XXXXXX") || { say "mktemp in $base failed"; exit 99; }
# mktemp makes it 0700; the server runs as another account when we are root.
chmod 0755 "$dir"
log=$dir.log

# shellcheck disable=SC2317 # called from the traps below
cleanup() {
    if [[ ${FW_REPL_KEEP:-} == 1 ]]; then
        say "FW_REPL_KEEP=1: cluster left running in $dir (stop: bash $pgrepl stop $dir)"
        return
    fi
    bash "$pgrepl" stop "$dir" </dev/null >>"$log" 2>&1 || say "could not stop the cluster in $dir (see $log)"
    [[ -d $dir ]] || rm -f "$log"
}
child=
# On a signal, pass it on to PROGRAM (if running), then exit: the EXIT trap cleans up.
# shellcheck disable=SC2317
on_signal() {
    if [[ -n $child ]]; then
        kill "-$1" "$child" 2>/dev/null
        wait "$child" 2>/dev/null
    fi
    exit "$2"
}
trap cleanup EXIT
trap 'on_signal INT 130' INT
trap 'on_signal TERM 143' TERM

# Detached (own session, no inherited stdio, so meson does not wait for it to close them).
if [[ ${FW_REPL_KEEP:-} != 1 ]]; then
    read -r _ my_start <<<"$(proc_identity $$)"
    setsid nohup bash "$self" __watchdog__ "$dir" $$ "$my_start" </dev/null >>"$base/watchdog.log" 2>&1 &
fi

# pgrepl.sh's env listing goes to the log, not to our stdout (a TAP test's stdout is
# parsed by meson); its phase timings are copied to stderr.
if ! bash "$pgrepl" start "$dir" </dev/null >"$log" 2>&1; then
    say "could not start a replicated PostgreSQL test cluster:"
    cat "$log" >&2
    exit 99
fi
grep '^pgrepl.sh: ' "$log" >&2

set -a
# shellcheck source=/dev/null
. "$dir/env"
set +a

# In the background, so that a signal to this wrapper is handled at once (bash runs traps
# only between commands, and `wait` is one). Background jobs read /dev/null, not stdin.
"$@" &
child=$!
wait "$child"
rc=$?
child=
exit "$rc"
