#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# shellcheck disable=SC2119 # find_bindir and stop_server take optional arguments
#
# A replicated throwaway PostgreSQL 15 for fwire's multi-host routing tests (issue 14): one
# primary (node 0) and two hot standbys (nodes 1 and 2) made with pg_basebackup -R, streaming
# from it. Every node listens on loopback only, on its own port, with its own private unix
# socket dir and its own TLS server certificate signed by one test CA; users, passwords and
# pg_hba.conf are those of test/pgcluster.sh (the standbys replay them), plus the replication
# user fw_repl. Only test/fixtures.sql is loaded (not bench/setup.sql), so a start takes
# seconds; docs/testing.md has the times.
#
#   test/pgrepl.sh start DIR                  create and start the three nodes, wait until
#                                             both standbys stream and have replayed the
#                                             fixtures, print the env (also in DIR/env)
#   test/pgrepl.sh stop DIR                   stop every node (immediate) and delete DIR
#   test/pgrepl.sh env DIR                    print DIR/env (shell-sourceable KEY='VALUE')
#   test/pgrepl.sh status DIR [N]             one line per node; exit 0 if every node (or
#                                             node N) is running
#   test/pgrepl.sh stop-node DIR N [fast|immediate]
#   test/pgrepl.sh start-node DIR N [-c NAME=VALUE ...]
#                                             (re)start node N on its port, with these
#                                             server settings for this run only (e.g.
#                                             -c hot_standby=off: connections get 57P03)
#   test/pgrepl.sh promote DIR N              promote standby N, wait until it is out of
#                                             recovery, point the other standbys at it
#   test/pgrepl.sh wait-streaming DIR         wait until every running standby streams from
#                                             the current primary and has replayed its WAL
#   test/pgrepl.sh rejoin DIR N               make node N (say an old primary) a fresh
#                                             standby of the current primary (pg_basebackup)
#
# Every command is synchronous: it returns when what it says is done, or fails (exit 1)
# with the reason on stderr. Run one command at a time per DIR. Ports never change after
# start, so the env stays right through restarts, promotions and rejoins.
#
# Layout: DIR/certs (the CA, node0..2.crt/.key, the client certificate), DIR/nN/{data,sock,
# postgres.log,port}, DIR/primary (the number of the current primary), DIR/bindir, DIR/env.
#
# Environment: FW_PG_BINDIR, FW_PG_USER (as in test/pgcluster.sh), FW_PG_CACHE_DIR (if set,
# the loaded primary is snapshotted there as repl15-KEY, next to pgcluster.sh's pg15-KEY; the
# standbys are always made fresh with pg_basebackup), FW_REPL_WAIT (seconds any wait may
# take, default 60).
#
# As in pgcluster.sh, when run as root every server-side command (initdb, pg_ctl,
# pg_basebackup, postgres) runs as FW_PG_USER (default nobody); psql stays root.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
repo_root=$(dirname "$script_dir")
fixtures_sql=$repo_root/test/fixtures.sql
self=$script_dir/pgrepl.sh

fw_prog=pgrepl.sh
# shellcheck source=test/pglib.sh
. "$script_dir/pglib.sh"

readonly NODES=3
readonly U_REPL=fw_repl P_REPL=fw-repl-pass
wait_seconds=${FW_REPL_WAIT:-60}
[[ $wait_seconds =~ ^[1-9][0-9]*$ ]] || die "FW_REPL_WAIT must be a positive number of seconds"

usage() {
    cat >&2 <<EOF
usage: ${0##*/} start DIR | stop DIR | env DIR | status DIR [N] | wait-streaming DIR
       ${0##*/} stop-node DIR N [fast|immediate] | start-node DIR N [-c NAME=VALUE ...]
       ${0##*/} promote DIR N | rejoin DIR N
EOF
    exit 2
}

# --- layout ------------------------------------------------------------------------
set_dir() {
    dir=$1
    certdir=$dir/certs
    envfile=$dir/env
    marker=$dir/.fwire-pgrepl
    primary_file=$dir/primary
}

# set_node N: point the pglib globals at node N.
set_node() {
    node=$1
    ndir=$dir/n$1
    datadir=$ndir/data
    sockdir=$ndir/sock
    logfile=$ndir/postgres.log
    runtime_conf=$datadir/fwire_runtime.conf
    server_crt=$certdir/node$1.crt
    server_key=$certdir/node$1.key
    pgport=
    if [[ -f $ndir/port ]]; then pgport=$(<"$ndir/port"); fi
}

# An existing cluster DIR: resolve it, check it is ours, find the tools.
open_dir() {
    [[ -d $1 ]] || die "$1 is not a directory (is a cluster started there?)"
    set_dir "$(cd "$1" && pwd -P)"
    [[ -e $marker ]] || die "$dir was not created by pgrepl.sh (no $marker)"
    [[ -f $primary_file ]] || die "$dir holds no started cluster (no $primary_file)"
    # The bin dir found at start (finding it again runs pg_config, a Perl script).
    if [[ -s $dir/bindir ]]; then bindir=$(<"$dir/bindir"); else bindir=$(find_bindir pg_basebackup); fi
    host6=
    if have_ipv6_loopback; then host6=::1; fi
}

check_node_arg() {
    if [[ ! ${1:-} =~ ^[0-9]+$ ]] || (($1 >= NODES)); then
        die "node must be 0..$((NODES - 1)), got '${1:-}'"
    fi
}

current_primary() { printf '%s' "$(<"$primary_file")"; }

# --- configuration ------------------------------------------------------------------
# Replication settings, appended to the primary's postgresql.conf once; pg_basebackup
# copies them to the standbys, so a promoted standby is as good a primary as node 0.
write_repl_conf() {
    cat >>"$datadir/postgresql.conf" <<'EOF'

# ---- replication (test/pgrepl.sh) ----
wal_level = replica
max_wal_senders = 10
hot_standby = on
recovery_target_timeline = 'latest'
# A standby that was stopped for a while catches up by streaming from what the primary
# kept. No replication slots: a slot does not survive a promotion.
wal_keep_size = 128MB
# Replay progress reported every second (not 10 s) and a lost primary retried every
# second (not 5 s): the waits of wait-streaming and promote end soon after the fact.
wal_receiver_status_interval = 1s
wal_retrieve_retry_interval = 1s
EOF
}

# The node's name in `ps` and, through primary_conninfo, in pg_stat_replication; a standby
# follows the current primary over that node's private unix socket (same server account).
runtime_conf_extra() {
    printf 'cluster_name = %s\n' "$(confq "n$node")"
    [[ -f $datadir/standby.signal ]] || return 0
    local p pport
    p=$(current_primary)
    pport=$(<"$dir/n$p/port")
    printf 'primary_conninfo = %s\n' "$(confq "host=$(dsnq "$dir/n$p/sock") port=$pport user=$U_REPL password=$P_REPL application_name=n$node")"
}

hba_extra="# replication: the standbys log in as $U_REPL over the primary's private socket
local     replication $U_REPL                  scram-sha-256
hostssl   replication $U_REPL      127.0.0.1/32   scram-sha-256
hostssl   replication $U_REPL      ::1/128        scram-sha-256"

# --- nodes ---------------------------------------------------------------------------
# Fresh socket dir and log for the node set by set_node.
prepare_node_dirs() {
    mkdir -p "$ndir"
    chmod 0755 "$ndir"
    [[ -d $sockdir ]] || mkdir -m 0700 "$sockdir"
    give_to_server "$sockdir"
    touch "$logfile"
    give_to_server "$logfile"
}

# basebackup_node N: replace node N's data with a fresh pg_basebackup -R of the current
# primary (standby.signal; primary_conninfo comes from fwire_runtime.conf instead of
# postgresql.auto.conf, so promote can repoint a standby by rewriting that one file).
basebackup_node() {
    local p pport
    p=$(current_primary)
    pport=$(<"$dir/n$p/port")
    set_node "$1"
    prepare_node_dirs
    rm -rf "$datadir"
    install -d -m 0700 "$datadir"
    give_to_server "$datadir"
    # The password is in the connection string: pg_basebackup reads no PG* variable here.
    if ! as_server "$bindir/pg_basebackup" -D "$datadir" -R -X stream -c fast --no-sync -w \
        -d "host=$(dsnq "$dir/n$p/sock") port=$pport user=$U_REPL password=$P_REPL" \
        >"$ndir/basebackup.log" 2>&1; then
        die "pg_basebackup of node $1 from node $p failed: $(tail -n 5 "$ndir/basebackup.log")"
    fi
    [[ -f $datadir/standby.signal ]] || die "pg_basebackup -R left no standby.signal in $datadir"
    as_server sed -i '/^primary_conninfo[[:space:]]*=/d' "$datadir/postgresql.auto.conf"
    rm -f "$runtime_conf"
}

# start_node_on_port [POSTGRES-OPTIONS]: (re)start the node set by set_node on its port.
start_node_on_port() {
    local opts=${1:-}
    [[ -n $pgport ]] || die "node $node has no port recorded in $ndir/port"
    # Keep earlier runs' logs: start_server_on truncates the log for its bind check.
    if [[ -s $logfile ]]; then cat "$logfile" >>"$ndir/postgres.old.log"; fi
    start_server_on "$pgport" "$opts" ||
        die "node $node cannot listen on its port $pgport (another process took it)"
}

# SQL as the superuser on the node set by set_node; prints the result unaligned.
node_sql() {
    admin_psql postgres -At -c "$1"
}

# wait_for COMMAND...: run COMMAND every 0.1 s until it succeeds (0) or FW_REPL_WAIT
# seconds have passed (1).
wait_for() {
    local deadline=$((SECONDS + wait_seconds))
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}

node_out_of_recovery() { [[ $(node_sql 'SELECT pg_is_in_recovery()' 2>/dev/null) == f ]]; }

# The standbys that should stream: running nodes with standby.signal, other than the
# primary. Prints their application names (nN), comma-separated, in order.
expected_standbys() {
    local p=$1 n list=()
    for ((n = 0; n < NODES; n++)); do
        ((n != p)) || continue
        set_node "$n"
        if [[ -f $datadir/standby.signal ]] && server_running; then list+=("n$n"); fi
    done
    join_comma "${list[@]}"
}

# Standbys (nN, comma-separated, in order) that stream from the node set by set_node and
# have replayed up to LSN $1 by the primary's count (replay_lsn, reported every second).
caught_up_names() {
    node_sql "SELECT coalesce(string_agg(application_name, ',' ORDER BY application_name), '')
              FROM pg_stat_replication
              WHERE state = 'streaming' AND replay_lsn >= '$1'" 2>/dev/null
}

# Is standby $1 streaming from the node set by set_node?
is_streaming() {
    [[ $(node_sql "SELECT count(*) FROM pg_stat_replication
                   WHERE state = 'streaming' AND application_name = 'n$1'" 2>/dev/null) == 1 ]]
}

# Has standby $1 replayed up to LSN $2, by its own count? (Sooner than the primary learns
# it; fails for a standby that takes no connections, which then waits for the primary's.)
replayed_here() {
    local saved=$node
    set_node "$1"
    local r
    r=$(node_sql "SELECT pg_last_wal_replay_lsn() >= '$2'" 2>/dev/null) || r=
    set_node "$saved"
    [[ $r == t ]]
}

# Wait until every running standby streams from the current primary and has replayed all
# the WAL the primary had written when the wait began (the check of PostgreSQL's own
# wait_for_catchup), judged by pg_stat_replication on the primary or by the standby itself.
wait_streaming() {
    local p want target
    p=$(current_primary)
    want=$(expected_standbys "$p")
    set_node "$p"
    server_running || die "the primary, node $p, is not running"
    target=$(node_sql 'SELECT pg_current_wal_lsn()') || die "cannot query the primary, node $p"
    local -a pending=()
    IFS=, read -r -a pending <<<"$want"
    local deadline=$((SECONDS + wait_seconds)) got s left
    while :; do
        got=$(caught_up_names "$target") || got=
        left=()
        for s in "${pending[@]}"; do
            if [[ ,$got, == *",$s,"* ]]; then continue; fi
            if is_streaming "${s#n}" && replayed_here "${s#n}" "$target"; then continue; fi
            left+=("$s")
        done
        ((${#left[@]} > 0)) || return 0
        if ((SECONDS >= deadline)); then
            die "after ${wait_seconds}s, standbys not streaming from node $p or not caught up to $target: $(join_comma "${left[@]}") (of $want); pg_stat_replication: $(node_sql "SELECT coalesce(string_agg(format('%s %s replay %s', application_name, state, replay_lsn), '; '), 'no rows') FROM pg_stat_replication" 2>&1 || true)"
        fi
        sleep 0.1
    done
}

# --- env -----------------------------------------------------------------------------
join_comma() {
    local IFS=,
    printf '%s' "$*"
}

write_env() {
    local ver tmp ports=() n
    set_node "$(current_primary)"
    ver=$(node_sql 'SHOW server_version_num')
    for ((n = 0; n < NODES; n++)); do ports+=("$(<"$dir/n$n/port")"); done
    tmp=$envfile.tmp
    {
        local -a kv=(
            FW_REPL_DIR="$dir"
            FW_REPL_CTL="$self"
            FW_REPL_BINDIR="$bindir"
            FW_REPL_SERVER_VERSION="$ver"
            FW_REPL_NODES="$NODES"
            FW_REPL_HOST4=127.0.0.1
            FW_REPL_HOST6="$host6"
            FW_REPL_PORTS="$(join_comma "${ports[@]}")"
            FW_REPL_DBNAME="$DBNAME"
            FW_REPL_ADMIN="$ADMIN"
            FW_REPL_USER_TRUST="$U_TRUST"
            FW_REPL_USER_PASSWORD="$U_PASSWORD"
            FW_REPL_USER_MD5="$U_MD5"
            FW_REPL_USER_SCRAM="$U_SCRAM"
            FW_REPL_USER_CERT="$U_CERT"
            FW_REPL_USER_SSLONLY="$U_SSLONLY"
            FW_REPL_USER_REPLICATION="$U_REPL"
            FW_REPL_PASS_PASSWORD="$P_PASSWORD"
            FW_REPL_PASS_MD5="$P_MD5"
            FW_REPL_PASS_SCRAM="$P_SCRAM"
            FW_REPL_PASS_SSLONLY="$P_SSLONLY"
            FW_REPL_PASS_REPLICATION="$P_REPL"
            FW_REPL_CA="$certdir/ca.crt"
            FW_REPL_OTHER_CA="$certdir/other-ca.crt"
            FW_REPL_CLIENT_CERT="$certdir/client.crt"
            FW_REPL_CLIENT_KEY="$certdir/client.key"
            FW_REPL_CLIENT_KEY_BADPERM="$certdir/client-badperm.key"
        )
        for ((n = 0; n < NODES; n++)); do
            set_node "$n"
            kv+=(
                "FW_REPL_N${n}_PORT=$pgport"
                "FW_REPL_N${n}_SOCKDIR=$sockdir"
                "FW_REPL_N${n}_DATA=$datadir"
                "FW_REPL_N${n}_LOG=$logfile"
                "FW_REPL_N${n}_SERVER_CERT=$server_crt"
                "FW_REPL_N${n}_DSN_TRUST=host=$(dsnq "$sockdir") port=$pgport dbname=$DBNAME user=$U_TRUST"
            )
        done
        local hosts
        hosts=$(printf ',127.0.0.1%.0s' "${ports[@]}")
        kv+=("FW_REPL_DSN_MULTI=host=${hosts#,} port=$(join_comma "${ports[@]}") dbname=$DBNAME")
        local e
        for e in "${kv[@]}"; do
            printf '%s=%s\n' "${e%%=*}" "$(shq "${e#*=}")"
        done
    } >"$tmp"
    chmod 0644 "$tmp"
    mv -f "$tmp" "$envfile"
}

# --- cache ---------------------------------------------------------------------------
# The primary's snapshot depends on this script, the library, the fixtures, the server
# version and the account; the standbys are never cached (pg_basebackup each time).
cache_key() {
    {
        cat "$self" "$script_dir/pglib.sh" "$fixtures_sql"
        "$bindir/postgres" --version
        printf 'uid=%s server=%s\n' "$(id -u)" "$srv_user"
    } | sha256sum | cut -c1-32
}

# --- start ---------------------------------------------------------------------------
start_ok=0
stop_all_nodes() {
    local n mode=${1:-fast}
    for ((n = 0; n < NODES; n++)); do
        set_node "$n"
        if [[ -f $datadir/postmaster.pid ]]; then stop_server "$mode"; fi
    done
}

on_start_exit() {
    local rc=$?
    if [[ $start_ok -eq 1 ]]; then return 0; fi
    [[ $rc -ne 0 ]] || rc=1
    # Kill the background pg_basebackup jobs, if any, before stopping the nodes.
    local j
    for j in $(jobs -p); do kill "$j" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ -n ${dir:-} ]]; then
        stop_all_nodes immediate
        local f
        for f in "$dir"/n*/postgres.log "$dir"/n*/basebackup.log "$dir/initdb.log"; do
            [[ -s $f ]] || continue
            printf 'pgrepl.sh: start failed; last lines of %s:\n' "$f" >&2
            tail -n 20 "$f" >&2 || true
        done
    fi
    exit "$rc"
}

make_primary() {
    set_node 0
    prepare_node_dirs
    local cache_entry='' key=''
    if [[ -n ${FW_PG_CACHE_DIR:-} ]]; then
        key=$(cache_key)
        cache_entry=$FW_PG_CACHE_DIR/repl15-$key
    fi

    if [[ -n $cache_entry && -f $cache_entry/complete ]]; then
        restore_and_start "$cache_entry" primary
        printf '%s\n' "$pgport" >"$ndir/port"
        return 0
    fi

    phase_begin certs
    local -a subjects=() n
    for ((n = 0; n < NODES; n++)); do subjects+=("node$n:/O=fwire test node $n/CN=localhost"); done
    make_certs "$certdir" "${subjects[@]}"
    phase_end

    phase_begin initdb
    init_datadir
    write_static_conf
    write_repl_conf
    write_hba
    phase_end

    phase_begin start
    start_server
    printf '%s\n' "$pgport" >"$ndir/port"
    phase_end

    phase_begin roles
    create_roles
    admin_psql postgres -c "CREATE ROLE $U_REPL LOGIN REPLICATION PASSWORD '$P_REPL'"
    phase_end

    load_data "$fixtures_sql"

    if [[ -n $cache_entry ]]; then save_and_restart repl15 "$key" start_node_on_port; fi
}

cmd_start() {
    trap on_start_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    local t_all=${EPOCHREALTIME/,/.}
    bindir=$(find_bindir pg_basebackup)

    mkdir -p "$1"
    set_dir "$(cd "$1" && pwd -P)"
    claim_dir "$dir/n0/sock"
    printf '0\n' >"$primary_file"
    printf '%s\n' "$bindir" >"$dir/bindir"

    make_primary

    # Both standbys at once: each is a pg_basebackup (a fast checkpoint on the primary,
    # then a copy of a few tens of MB) and a start on a port of its own.
    phase_begin standbys
    local n pids=()
    for ((n = 1; n < NODES; n++)); do
        (
            basebackup_node "$n"
            start_server
            printf '%s\n' "$pgport" >"$ndir/port"
        ) &
        pids+=($!)
    done
    local pid failed=0
    for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
    ((failed == 0)) || die "a standby could not be made"
    phase_end

    phase_begin streaming
    wait_streaming
    # The standbys answer queries and hold the fixtures.
    local rows
    for ((n = 1; n < NODES; n++)); do
        set_node "$n"
        [[ $(node_sql 'SELECT pg_is_in_recovery()') == t ]] || die "node $n is not in recovery"
        rows=$(admin_psql "$DBNAME" -At -c 'SELECT count(*) FROM v_fixture') ||
            die "node $n cannot read the fixtures"
        [[ $rows == 5 ]] || die "node $n sees $rows rows in v_fixture, expected 5"
    done
    phase_end

    finish_start "$t_all"
}

# --- other commands --------------------------------------------------------------------
cmd_stop() {
    dir_to_stop "$1" set_dir || return 0
    if [[ -s $dir/bindir ]]; then bindir=$(<"$dir/bindir"); else bindir=$(find_bindir); fi
    # All nodes at once, immediate: the data is deleted next, so a shutdown checkpoint
    # would be wasted work (a test's teardown should be quick).
    local n pids=()
    for ((n = 0; n < NODES; n++)); do
        set_node "$n"
        if [[ -f $datadir/postmaster.pid ]]; then
            stop_server immediate &
            pids+=($!)
        fi
    done
    local pid
    for pid in "${pids[@]}"; do wait "$pid" || true; done
    rm -rf "$dir"
}

cmd_status() {
    [[ -d $1 ]] || return 1
    open_dir "$1"
    local only=${2:-} n p rc=0 state role extra
    [[ -z $only ]] || check_node_arg "$only"
    p=$(current_primary)
    for ((n = 0; n < NODES; n++)); do
        [[ -z $only || $only == "$n" ]] || continue
        set_node "$n"
        if server_running; then state=running; else state=stopped; rc=1; fi
        if [[ -f $datadir/standby.signal ]]; then
            role=standby
        elif ((n == p)); then
            role=primary
        else
            role="primary, detached (node $p is the current one; rejoin makes it a standby)"
        fi
        extra=
        if [[ $state == running && -s $ndir/settings ]]; then
            extra=" [$(paste -sd' ' "$ndir/settings")]"
        fi
        printf 'node %d: port %s, %s, %s%s\n' "$n" "${pgport:-?}" "$state" "$role" "$extra"
    done
    return "$rc"
}

cmd_stop_node() {
    open_dir "$1"
    check_node_arg "${2:-}"
    local mode=${3:-fast}
    [[ $mode == fast || $mode == immediate ]] || die "stop mode must be fast or immediate, got '$mode'"
    set_node "$2"
    if server_running; then stop_server "$mode"; fi
    ! server_running || die "node $2 is still running"
    rm -f "$ndir/settings"
}

cmd_start_node() {
    open_dir "$1"
    check_node_arg "${2:-}"
    local n=$2
    shift 2
    local -a settings=()
    local opts=''
    while (($# > 0)); do
        case $1 in
        -c)
            (($# >= 2)) || die "-c needs NAME=VALUE"
            settings+=("$2")
            shift 2
            ;;
        -c*)
            settings+=("${1#-c}")
            shift
            ;;
        *) die "start-node takes only -c NAME=VALUE options, got '$1'" ;;
        esac
    done
    local s
    for s in "${settings[@]}"; do
        [[ $s =~ ^[A-Za-z_][A-Za-z0-9_.]*= ]] || die "-c wants NAME=VALUE, got '$s'"
        # pg_ctl hands the options to /bin/sh: quote each for the shell.
        opts+=" -c $(shq "$s")"
    done
    set_node "$n"
    local p
    p=$(current_primary)
    if [[ ! -f $datadir/standby.signal ]] && ((n != p)); then
        warn "node $n is an old primary: it starts as a second primary beside node $p ('rejoin' makes it a standby)"
    fi
    if server_running; then stop_server fast; fi
    rm -f "$ndir/settings"
    start_node_on_port "${opts# }"
    if ((${#settings[@]} > 0)); then printf '%s\n' "${settings[@]}" >"$ndir/settings"; fi
}

cmd_promote() {
    open_dir "$1"
    check_node_arg "${2:-}"
    local n=$2 m
    set_node "$n"
    server_running || die "node $n is not running"
    [[ -f $datadir/standby.signal ]] || die "node $n is not a standby"
    as_server "$bindir/pg_ctl" promote -D "$datadir" -w -t "$wait_seconds" -s ||
        die "pg_ctl promote of node $n failed"
    wait_for node_out_of_recovery ||
        die "node $n is still in recovery ${wait_seconds}s after pg_ctl promote"
    printf '%s\n' "$n" >"$primary_file.tmp"
    mv -f "$primary_file.tmp" "$primary_file"
    # The other standbys follow the new primary: primary_conninfo is reloadable (PG13+);
    # recovery_target_timeline 'latest' makes them switch to its new timeline.
    for ((m = 0; m < NODES; m++)); do
        ((m != n)) || continue
        set_node "$m"
        [[ -f $datadir/standby.signal && -n $pgport ]] || continue
        write_runtime_conf "$pgport"
        if server_running; then
            as_server "$bindir/pg_ctl" reload -D "$datadir" -s >/dev/null ||
                die "could not reload node $m"
        fi
    done
}

cmd_wait_streaming() {
    open_dir "$1"
    wait_streaming
}

cmd_rejoin() {
    open_dir "$1"
    check_node_arg "${2:-}"
    local n=$2 p
    p=$(current_primary)
    ((n != p)) || die "node $n is the current primary"
    set_node "$n"
    local port=$pgport
    if server_running; then stop_server fast; fi
    rm -f "$ndir/settings"
    phase_begin basebackup
    basebackup_node "$n"
    phase_end
    pgport=$port
    phase_begin start
    start_node_on_port
    phase_end
    phase_begin streaming
    wait_streaming
    phase_end
}

if (($# < 2)) || [[ -z $2 ]]; then usage; fi
cmd=$1
shift
case $cmd in
start) (($# == 1)) || usage; cmd_start "$1" ;;
stop) (($# == 1)) || usage; cmd_stop "$1" ;;
env) (($# == 1)) || usage; cmd_env "$1" ;;
status) (($# <= 2)) || usage; cmd_status "$@" ;;
wait-streaming) (($# == 1)) || usage; cmd_wait_streaming "$1" ;;
stop-node) (($# == 2 || $# == 3)) || usage; cmd_stop_node "$@" ;;
start-node) (($# >= 2)) || usage; cmd_start_node "$@" ;;
promote) (($# == 2)) || usage; cmd_promote "$@" ;;
rejoin) (($# == 2)) || usage; cmd_rejoin "$@" ;;
*) usage ;;
esac
