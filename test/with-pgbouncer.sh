#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# test/with-pgbouncer.sh PROGRAM [ARGS...]
#
# Run inside test/with-pg.sh: starts PgBouncer (Debian 12's 1.18) in **transaction** pooling
# mode in front of the test server, on a free loopback port, runs PROGRAM with these variables
# set, and stops PgBouncer however PROGRAM ends:
#
#   FW_BOUNCER_PORT   the port PgBouncer listens on (127.0.0.1)
#   FW_BOUNCER_DSN    a connection string to the test database through PgBouncer as the SCRAM
#                     user (password included, sslmode=disable: loopback)
#   FW_BOUNCER_LOG    PgBouncer's log file
#
# Authentication: auth_type scram-sha-256 with an auth_file holding the SCRAM user's secret
# as the server stores it (pg_authid.rolpassword, read over the admin socket). PgBouncer checks
# the client's proof against that secret, and logs in to the server with the keys the client's
# proof revealed (SCRAM pass-through, PgBouncer 1.14+): no clear-text password in any file.
# The server side is plain TCP on loopback (the test cluster's pg_hba allows SCRAM there).
#
# PgBouncer refuses to run as root: as root, it runs as FW_PG_USER (default nobody), like the
# server (test/pgcluster.sh). Exit status: PROGRAM's; 77 (skipped) without pgbouncer.
set -uo pipefail

say() { printf 'with-pgbouncer.sh: %s\n' "$*" >&2; }
: "${FW_TEST_PORT:?run me through test/with-pg.sh}"
if [[ $# -lt 1 ]]; then
    printf 'usage: %s PROGRAM [ARGS...]\n' "${0##*/}" >&2
    exit 2
fi

bouncer=$(command -v pgbouncer 2>/dev/null || true)
[[ -n $bouncer ]] || [[ ! -x /usr/sbin/pgbouncer ]] || bouncer=/usr/sbin/pgbouncer
if [[ -z $bouncer ]]; then
    echo "pgbouncer is not installed (apt-get install pgbouncer, or tools/install-deps.sh): skipped"
    exit 77
fi

psql=${FW_TEST_PGBINDIR:+$FW_TEST_PGBINDIR/}psql
[[ -x $psql ]] || psql=psql

dir=$(mktemp -d "${TMPDIR:-/tmp}/fwire-bouncer.XXXXXX") || { say "mktemp failed"; exit 99; }
chmod 0755 "$dir"
pid=
cleanup() {
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        kill -INT "$pid" 2>/dev/null # SIGINT: PgBouncer's immediate shutdown
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
    fi
    [[ ${FW_BOUNCER_KEEP:-} == 1 ]] && { say "kept $dir"; return; }
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') ||
    { say "no free port"; exit 99; }
secret=$("$psql" -X -At -v ON_ERROR_STOP=1 -h "$FW_TEST_SOCKDIR" -p "$FW_TEST_PORT" \
    -U "$FW_TEST_ADMIN" -d "$FW_TEST_DBNAME" \
    -c "SELECT rolpassword FROM pg_authid WHERE rolname = '$FW_TEST_USER_SCRAM'") ||
    { say "could not read the SCRAM secret of $FW_TEST_USER_SCRAM"; exit 99; }
[[ $secret == SCRAM-SHA-256\$* ]] || { say "$FW_TEST_USER_SCRAM has no SCRAM secret: '$secret'"; exit 99; }
printf '"%s" "%s"\n' "$FW_TEST_USER_SCRAM" "$secret" >"$dir/userlist.txt"

cat >"$dir/pgbouncer.ini" <<EOF
; written by test/with-pgbouncer.sh (docs/connecting.md, "Through PgBouncer")
[databases]
$FW_TEST_DBNAME = host=127.0.0.1 port=$FW_TEST_PORT dbname=$FW_TEST_DBNAME

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $dir/userlist.txt
pool_mode = transaction
default_pool_size = 8
max_client_conn = 200
server_tls_sslmode = disable
; fwire sends user, database, client_encoding and application_name, all of which PgBouncer
; knows; \`options\` only when the connection string sets it, and then PgBouncer refuses it
; unless listed here (see docs/connecting.md)
ignore_startup_parameters =
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
log_connections = 1
log_disconnections = 1
EOF
chmod 0644 "$dir/pgbouncer.ini" "$dir/userlist.txt"

run_as=()
if [[ $(id -u) -eq 0 ]]; then
    u=${FW_PG_USER:-nobody}
    chown -R "$u" "$dir" 2>/dev/null
    run_as=(setpriv --reuid="$u" --regid="$(id -gn "$u" 2>/dev/null || echo "$u")" --clear-groups --)
fi
"${run_as[@]}" "$bouncer" -q "$dir/pgbouncer.ini" </dev/null >"$dir/stdout" 2>&1 &
pid=$!
for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
done
if ! kill -0 "$pid" 2>/dev/null; then
    say "pgbouncer did not start:"
    cat "$dir/stdout" "$dir/pgbouncer.log" 2>/dev/null | tail -20 >&2
    pid=
    exit 99
fi
say "$("$bouncer" --version | head -n 1), transaction mode, on 127.0.0.1:$port"

export FW_BOUNCER_PORT=$port
export FW_BOUNCER_DSN="host=127.0.0.1 port=$port dbname=$FW_TEST_DBNAME user=$FW_TEST_USER_SCRAM password=$FW_TEST_PASS_SCRAM sslmode=disable"
export FW_BOUNCER_LOG=$dir/pgbouncer.log
"$@" &
child=$!
wait "$child"
exit $?
