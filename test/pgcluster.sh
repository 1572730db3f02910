#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# shellcheck disable=SC2119 # find_bindir and stop_server take optional arguments
#
# Throwaway PostgreSQL 15 cluster for fwire's integration tests and benchmarks.
#
#   test/pgcluster.sh start DIR    create + start a fresh cluster under DIR, print its env
#   test/pgcluster.sh stop DIR     stop it (fast, then immediate) and delete DIR
#   test/pgcluster.sh env DIR      print DIR/env (shell-sourceable KEY='VALUE' lines)
#   test/pgcluster.sh status DIR   exit 0 if the cluster under DIR is running
#
# Everything lives under DIR: data/ (PGDATA), sock/ (private unix socket dir), certs/ (a
# test CA, server and client certificates), postgres.log and env. Nothing listens beyond
# loopback, and pg_hba.conf rejects everything that is not one of the test users.
#
# Environment:
#   FW_PG_BINDIR     directory holding initdb/pg_ctl/postgres (default: found, see below)
#   FW_PG_CACHE_DIR  if set, a freshly loaded cluster (data + certs) is snapshotted
#                    there; a later start with the same pgcluster.sh, test/fixtures.sql,
#                    bench/setup.sql and server version copies the snapshot instead of
#                    running initdb and the data load (docs/testing.md has the times)
#   FW_PG_USER       server account when run as root (default: nobody)
#
# PostgreSQL refuses to run as root, so when we are root every server-side command
# (initdb, pg_ctl, postgres) runs as FW_PG_USER; the client side (psql, the tests) stays
# root, which can reach the server's 0700 socket dir because root bypasses permissions.
set -euo pipefail

# The repo root is the parent of test/, wherever the checkout lives.
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
repo_root=$(dirname "$script_dir")
fixtures_sql=$repo_root/test/fixtures.sql
bench_sql=$repo_root/bench/setup.sql

# Shared with test/pgrepl.sh: the users and passwords, certificates, configuration, hba,
# server start/stop, roles, data load and the snapshot cache.
fw_prog=pgcluster.sh
# shellcheck source=test/pglib.sh
. "$script_dir/pglib.sh"

usage() {
    printf 'usage: %s {start|stop|env|status} DIR\n' "${0##*/}" >&2
    exit 2
}

# --- layout ------------------------------------------------------------------------
set_paths() {
    dir=$1
    datadir=$dir/data
    sockdir=$dir/sock
    certdir=$dir/certs
    logfile=$dir/postgres.log
    envfile=$dir/env
    marker=$dir/.fwire-pgcluster
    runtime_conf=$datadir/fwire_runtime.conf
    server_crt=$certdir/server.crt
    server_key=$certdir/server.key
}

# --- cache ---------------------------------------------------------------------------
# The key covers everything that shapes the snapshot: this script and the library it
# sources, the SQL, the server version and the account that owns the files.
cache_key() {
    {
        cat "${BASH_SOURCE[0]}" "$script_dir/pglib.sh" "$fixtures_sql" "$bench_sql"
        "$bindir/postgres" --version
        printf 'uid=%s server=%s\n' "$(id -u)" "$srv_user"
    } | sha256sum | cut -c1-32
}

# --- env -----------------------------------------------------------------------------
write_env() {
    local ver dsn tmp
    ver=$(admin_psql "$DBNAME" -At -c 'SHOW server_version_num')
    dsn="host=$(dsnq "$sockdir") port=$pgport dbname=$DBNAME user=$U_TRUST"
    tmp=$envfile.tmp
    {
        local kv
        for kv in \
            FW_TEST_SOCKDIR="$sockdir" \
            FW_TEST_PORT="$pgport" \
            FW_TEST_HOST4=127.0.0.1 \
            FW_TEST_HOST6="$host6" \
            FW_TEST_DBNAME="$DBNAME" \
            FW_TEST_ADMIN="$ADMIN" \
            FW_TEST_USER_TRUST="$U_TRUST" \
            FW_TEST_USER_PASSWORD="$U_PASSWORD" \
            FW_TEST_USER_MD5="$U_MD5" \
            FW_TEST_USER_SCRAM="$U_SCRAM" \
            FW_TEST_USER_CERT="$U_CERT" \
            FW_TEST_USER_SSLONLY="$U_SSLONLY" \
            FW_TEST_PASS_PASSWORD="$P_PASSWORD" \
            FW_TEST_PASS_MD5="$P_MD5" \
            FW_TEST_PASS_SCRAM="$P_SCRAM" \
            FW_TEST_PASS_SSLONLY="$P_SSLONLY" \
            FW_TEST_CA="$certdir/ca.crt" \
            FW_TEST_OTHER_CA="$certdir/other-ca.crt" \
            FW_TEST_CLIENT_CERT="$certdir/client.crt" \
            FW_TEST_CLIENT_KEY="$certdir/client.key" \
            FW_TEST_CLIENT_KEY_BADPERM="$certdir/client-badperm.key" \
            FW_TEST_SERVER_CERT="$certdir/server.crt" \
            FW_TEST_PGDATA="$datadir" \
            FW_TEST_PGBINDIR="$bindir" \
            FW_TEST_SERVER_VERSION="$ver" \
            FW_TEST_SERVER_LOG="$logfile" \
            FW_TEST_CLUSTER_DIR="$dir" \
            FW_TEST_DSN_TRUST="$dsn"; do
            printf '%s=%s\n' "${kv%%=*}" "$(shq "${kv#*=}")"
        done
    } >"$tmp"
    chmod 0644 "$tmp"
    mv -f "$tmp" "$envfile"
}

# --- commands --------------------------------------------------------------------------
start_ok=0
server_started=0
on_start_exit() {
    local rc=$?
    if [[ $start_ok -eq 1 ]]; then return 0; fi
    [[ $rc -ne 0 ]] || rc=1
    if [[ $server_started -eq 1 ]]; then stop_server; fi
    if [[ -s ${logfile:-} ]]; then
        printf 'pgcluster.sh: start failed; last lines of %s:\n' "$logfile" >&2
        tail -n 30 "$logfile" >&2 || true
    fi
    if [[ -s ${dir:-}/initdb.log ]] && ! grep -q '^Success' "$dir/initdb.log"; then
        tail -n 20 "$dir/initdb.log" >&2 || true
    fi
    exit "$rc"
}

cmd_start() {
    trap on_start_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    local t_all=${EPOCHREALTIME/,/.}
    bindir=$(find_bindir)

    mkdir -p "$1"
    set_paths "$(cd "$1" && pwd -P)"
    claim_dir "$sockdir"

    mkdir -m 0700 "$sockdir"
    give_to_server "$sockdir"
    : >"$logfile"
    give_to_server "$logfile"

    local cache_entry='' key=''
    if [[ -n ${FW_PG_CACHE_DIR:-} ]]; then
        key=$(cache_key)
        cache_entry=$FW_PG_CACHE_DIR/pg15-$key
    fi

    if [[ -n $cache_entry && -f $cache_entry/complete ]]; then
        restore_and_start "$cache_entry" cluster
    else
        phase_begin certs
        make_certs "$certdir"
        phase_end

        phase_begin initdb
        init_datadir
        write_static_conf
        write_hba
        phase_end

        phase_begin start
        start_server
        phase_end

        phase_begin roles
        create_roles
        phase_end

        load_data "$fixtures_sql" "$bench_sql"

        if [[ -n $cache_entry ]]; then save_and_restart pg15 "$key" start_server; fi
    fi

    check_bench_data
    finish_start "$t_all"
}

# check_bench_data: the bench tables are UNLOGGED, and any crash recovery (a backend killed,
# an immediate stop, a crash image in the cache) empties them while every view still answers,
# with 0 rows. Find that here, say so with the server log's recovery lines, and load the bench
# data again rather than hand the tests a cluster that reads as empty.
check_bench_data() {
    local ok
    ok=$(admin_psql "$DBNAME" -At -c "SELECT (SELECT count(*) FROM bench_1k) = 1000
        AND EXISTS (SELECT 1 FROM bench_1m) AND EXISTS (SELECT 1 FROM bench_large)
        AND EXISTS (SELECT 1 FROM bench_complex) AND EXISTS (SELECT 1 FROM bench_100k)" 2>&1) ||
        die "could not check the bench data: $ok"
    [[ $ok == f ]] || return 0
    warn "the UNLOGGED bench tables are empty after the start (crash recovery reset them); loading them again"
    grep -E 'not properly shut down|crash recovery|redo|terminated by signal' "$logfile" >&2 || true
    load_data "$bench_sql"
}

cmd_stop() {
    dir_to_stop "$1" set_paths || return 0
    bindir=$(find_bindir)
    if [[ -f $datadir/postmaster.pid ]]; then stop_server; fi
    rm -rf "$dir"
}

cmd_status() {
    [[ -d $1 ]] || return 1
    set_paths "$(cd "$1" && pwd -P)"
    bindir=$(find_bindir)
    server_running
}

[[ $# -eq 2 && -n $2 ]] || usage
case $1 in
start) cmd_start "$2" ;;
stop) cmd_stop "$2" ;;
env) cmd_env "$2" ;;
status) cmd_status "$2" ;;
*) usage ;;
esac
