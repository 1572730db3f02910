#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
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

# Fixed facts of the test cluster. The passwords are not secrets: the cluster only
# listens on loopback and lives for one test run; they are published in the env file.
readonly DBNAME=fwire_test
readonly ADMIN=fw_admin
readonly U_TRUST=fw_trust U_PASSWORD=fw_password U_MD5=fw_md5 U_SCRAM=fw_scram
readonly U_CERT=fw_cert U_SSLONLY=fw_sslonly
readonly P_PASSWORD=fw-cleartext-pass P_MD5=fw-md5-pass P_SCRAM=fw-scram-pass
readonly P_SSLONLY=fw-sslonly-pass
readonly CERT_DAYS=3650
readonly MAX_PORT_TRIES=20

# The postgres/psql invoked here must never pick up a developer's PG* settings
# (PGHOST, PGSSLMODE, PGSERVICE, PGOPTIONS, ...): every connection is spelled out.
while IFS= read -r _v; do unset "$_v"; done < <(compgen -e | grep '^PG' || true)
unset _v

die() { printf 'pgcluster.sh: error: %s\n' "$*" >&2; exit 1; }
warn() { printf 'pgcluster.sh: warning: %s\n' "$*" >&2; }
usage() {
    printf 'usage: %s {start|stop|env|status} DIR\n' "${0##*/}" >&2
    exit 2
}

# Phase timing on stderr, so stdout stays the env listing (callers may capture it).
phase_t0=
phase_name=
# EPOCHREALTIME uses the locale's decimal separator; normalise it to '.'.
phase_begin() { phase_name=$1; phase_t0=${EPOCHREALTIME/,/.}; }
phase_end() {
    local now=${EPOCHREALTIME/,/.}
    # EPOCHREALTIME is "sec.usec"; do the subtraction in integer microseconds.
    local us=$(( (${now%.*} - ${phase_t0%.*}) * 1000000 + (10#${now#*.} - 10#${phase_t0#*.}) ))
    printf 'pgcluster.sh: %-10s %d.%03ds\n' "$phase_name" $((us / 1000000)) $(((us / 1000) % 1000)) >&2
}

# Single-quote a value for a POSIX shell: 'it'\''s'.
shq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }
# Single-quote a value for postgresql.conf: 'it''s'.
confq() { printf "'%s'" "${1//\'/\'\'}"; }
# Quote a libpq connection-string value only when it needs it.
dsnq() {
    local v=$1
    if [[ -z $v || $v =~ [[:space:]\'\\] ]]; then
        v=${v//\\/\\\\}
        v=${v//\'/\\\'}
        printf "'%s'" "$v"
    else
        printf '%s' "$v"
    fi
}

# --- who runs the server ---------------------------------------------------------
if [[ $(id -u) -eq 0 ]]; then
    srv_user=${FW_PG_USER:-nobody}
    id "$srv_user" >/dev/null 2>&1 || die "server account '$srv_user' does not exist (set FW_PG_USER)"
    srv_group=$(id -gn "$srv_user")
else
    srv_user=$(id -un)
    srv_group=$(id -gn)
fi

# Run a command as the server account. cd / first: the server tools resolve their own
# path via getcwd() and would fail from a directory the account cannot read (/root).
as_server() {
    if [[ $(id -u) -eq 0 ]]; then
        (cd / && exec setpriv --reuid="$srv_user" --regid="$srv_group" --clear-groups -- "$@")
    else
        (cd / && exec "$@")
    fi
}
# Make a path we created belong to the server account (no-op when we are that account).
give_to_server() {
    if [[ $(id -u) -eq 0 ]]; then chown "$srv_user:$srv_group" "$@"; fi
}

# --- finding PostgreSQL 15 -----------------------------------------------------------
find_bindir() {
    local d
    if [[ -n ${FW_PG_BINDIR:-} ]]; then
        d=$FW_PG_BINDIR
    elif command -v pg_config >/dev/null 2>&1 &&
        [[ $(pg_config --version 2>/dev/null) == "PostgreSQL 15."* ]]; then
        d=$(pg_config --bindir)
    else
        d=/usr/lib/postgresql/15/bin
    fi
    local tool
    for tool in initdb pg_ctl postgres; do
        [[ -x $d/$tool ]] || die "no executable $d/$tool: install PostgreSQL 15 (Debian package postgresql-15) or set FW_PG_BINDIR"
    done
    local ver
    ver=$("$d/postgres" --version)
    [[ $ver == *" 15."* ]] || warn "expected PostgreSQL 15, found: $ver"
    printf '%s' "$d"
}

# IPv6 loopback is missing in some containers (disable_ipv6); then listen on v4 only.
have_ipv6_loopback() {
    [[ -r /proc/net/if_inet6 ]] && grep -q '^00000000000000000000000000000001 ' /proc/net/if_inet6
}

# Is something already accepting on this loopback port? (bash's /dev/tcp, no tools)
port_busy() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

random_port() {
    # 20000..60000 inclusive; RANDOM is 15 bits, so combine two draws.
    printf '%d' $((20000 + (RANDOM * 32768 + RANDOM) % 40001))
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
}

server_running() {
    [[ -f $datadir/PG_VERSION ]] || return 1
    as_server "$bindir/pg_ctl" status -D "$datadir" >/dev/null 2>&1
}

# --- TLS material -------------------------------------------------------------------
# EC P-256 keys and sha256 signatures: key generation takes milliseconds.
make_certs() {
    local c=$certdir
    mkdir -p "$c"
    chmod 0755 "$c"
    local ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)

    # One small config for every openssl call, so the system openssl.cnf (or an
    # OPENSSL_CONF from the environment) cannot add or change extensions.
    cat >"$c/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[v3_server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
authorityKeyIdentifier = keyid
[v3_client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
EOF
    local -x OPENSSL_CONF=$c/openssl.cnf

    # The test CA (signs the server and client certs) and an unrelated CA that signs
    # nothing: a client trusting only other-ca.crt must reject the server.
    local ca
    for ca in ca:"fwire test CA" other-ca:"fwire other test CA"; do
        openssl req -x509 "${ec[@]}" -sha256 -days "$CERT_DAYS" -config "$c/openssl.cnf" \
            -extensions v3_ca -subj "/CN=${ca#*:}" \
            -keyout "$c/${ca%%:*}.key" -out "$c/${ca%%:*}.crt" 2>/dev/null
    done

    local leaf serial=4096
    for leaf in server:localhost client:"$U_CERT"; do
        local name=${leaf%%:*}
        openssl req -new "${ec[@]}" -config "$c/openssl.cnf" -subj "/CN=${leaf#*:}" \
            -keyout "$c/$name.key" -out "$c/$name.csr" 2>/dev/null
        openssl x509 -req -in "$c/$name.csr" -CA "$c/ca.crt" -CAkey "$c/ca.key" \
            -set_serial "$serial" -sha256 -days "$CERT_DAYS" \
            -extfile "$c/openssl.cnf" -extensions "v3_$name" -out "$c/$name.crt" 2>/dev/null
        serial=$((serial + 1))
        rm -f "$c/$name.csr"
    done
    openssl verify -CAfile "$c/ca.crt" "$c/server.crt" "$c/client.crt" >/dev/null ||
        die "generated certificates do not verify against the test CA"

    # The server insists its key is 0600 and owned by the account it runs as.
    chmod 0600 "$c/server.key" "$c/client.key" "$c/ca.key" "$c/other-ca.key"
    give_to_server "$c/server.key"
    # A world-readable copy of the client key, for the key-permission check (libpq and
    # fwire refuse a key with group/other bits).
    cp "$c/client.key" "$c/client-badperm.key"
    chmod 0644 "$c/client-badperm.key"
    chmod 0644 "$c/ca.crt" "$c/other-ca.crt" "$c/server.crt" "$c/client.crt"
}

# --- configuration --------------------------------------------------------------------
# Settings that do not depend on DIR or the port go into postgresql.conf once (and so
# into a cache snapshot). DIR- and port-dependent ones go into fwire_runtime.conf, which
# is rewritten before every start: a snapshot restored into another DIR just works.
write_static_conf() {
    cat >>"$datadir/postgresql.conf" <<'EOF'

# ---- fwire test cluster (test/pgcluster.sh) ----
# Throwaway data: durability off for speed.
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 100
shared_buffers = 128MB
ssl = on
password_encryption = 'scram-sha-256'
# pg_ctl -l sends the server's stderr to DIR/postgres.log.
logging_collector = off
log_min_messages = warning
timezone = 'UTC'
# Port, listen addresses, socket dir and certificate paths: rewritten at every start.
include 'fwire_runtime.conf'
EOF
}

write_runtime_conf() {
    local port=$1 listen
    listen=127.0.0.1
    [[ -n $host6 ]] && listen="127.0.0.1,::1"
    {
        printf '# Written by test/pgcluster.sh at each start; do not edit.\n'
        printf 'port = %s\n' "$port"
        printf 'listen_addresses = %s\n' "$(confq "$listen")"
        printf 'unix_socket_directories = %s\n' "$(confq "$sockdir")"
        printf 'ssl_cert_file = %s\n' "$(confq "$certdir/server.crt")"
        printf 'ssl_key_file = %s\n' "$(confq "$certdir/server.key")"
        printf 'ssl_ca_file = %s\n' "$(confq "$certdir/ca.crt")"
    } >"$runtime_conf"
    give_to_server "$runtime_conf"
}

# pg_hba.conf from scratch. Written before the first start, so initdb's permissive
# default (trust for every local and loopback connection) is never live.
write_hba() {
    local hba=$datadir/pg_hba.conf
    {
        cat <<'EOF'
# fwire test cluster: written by test/pgcluster.sh; first match wins.
# TYPE    DATABASE USER         ADDRESS        METHOD
# The superuser only over the private unix socket (DIR/sock, mode 0700).
local     all      fw_admin                    trust
EOF
        printf 'local     all      %-12s                %s\n' \
            "$U_TRUST" trust "$U_PASSWORD" password "$U_MD5" md5 \
            "$U_SCRAM" scram-sha-256 "$U_SSLONLY" reject
        local addr
        for addr in 127.0.0.1/32 ::1/128; do
            printf '# loopback %s\n' "$addr"
            printf '%-9s all      %-12s %-14s %s\n' \
                hostssl "$U_TRUST" "$addr" trust \
                hostnossl "$U_TRUST" "$addr" trust \
                hostssl "$U_PASSWORD" "$addr" password \
                hostnossl "$U_PASSWORD" "$addr" password \
                hostssl "$U_MD5" "$addr" md5 \
                hostnossl "$U_MD5" "$addr" md5 \
                hostssl "$U_SCRAM" "$addr" scram-sha-256 \
                hostnossl "$U_SCRAM" "$addr" scram-sha-256 \
                hostssl "$U_CERT" "$addr" cert \
                hostnossl "$U_CERT" "$addr" reject \
                hostssl "$U_SSLONLY" "$addr" scram-sha-256 \
                hostnossl "$U_SSLONLY" "$addr" reject
        done
        cat <<'EOF'
# Everything else is refused explicitly.
local     all      all                         reject
host      all      all          0.0.0.0/0      reject
host      all      all          ::/0           reject
EOF
    } >"$hba"
    give_to_server "$hba"
}

# --- server start/stop ---------------------------------------------------------------
# Start on a random free loopback port; retry on a new port when the bind fails. A
# partial bind (say ::1 taken but 127.0.0.1 free) is also treated as a failure: a test
# connecting over IPv6 would otherwise reach somebody else's server.
start_server() {
    local try port ctl_err
    for ((try = 1; try <= MAX_PORT_TRIES; try++)); do
        port=$(random_port)
        if port_busy "$port"; then continue; fi
        write_runtime_conf "$port"
        : >"$logfile"
        server_started=1
        # pg_ctl's own complaints (e.g. a start timeout) are kept apart from the log.
        if ctl_err=$(as_server "$bindir/pg_ctl" start -D "$datadir" -l "$logfile" -w -t 60 -s 2>&1 >/dev/null); then
            if ! grep -q 'could not bind' "$logfile"; then
                pgport=$port
                return 0
            fi
            as_server "$bindir/pg_ctl" stop -D "$datadir" -m immediate -w -s >/dev/null 2>&1 || true
        fi
        if grep -qE 'could not bind|Address already in use|could not create any TCP/IP sockets|could not create lock file' "$logfile"; then
            warn "port $port unusable, retrying on another port"
            continue
        fi
        die "the server did not start: ${ctl_err:-see the log below}"
    done
    die "no usable port after $MAX_PORT_TRIES tries"
}

stop_server() {
    # Stop as the data dir's owner: the cluster may be from another FW_PG_USER.
    local owner
    owner=$(stat -c %U "$datadir" 2>/dev/null) || return 0
    local -a run=()
    if [[ $(id -u) -eq 0 && $owner != root ]]; then
        run=(setpriv --reuid="$owner" --regid="$(id -gn "$owner")" --clear-groups --)
    fi
    [[ -f $datadir/postmaster.pid ]] || return 0
    local pid
    pid=$(head -n1 "$datadir/postmaster.pid" 2>/dev/null || true)
    (cd / && "${run[@]}" "$bindir/pg_ctl" stop -D "$datadir" -m fast -w -t 10 -s) >/dev/null 2>&1 ||
        (cd / && "${run[@]}" "$bindir/pg_ctl" stop -D "$datadir" -m immediate -w -t 10 -s) >/dev/null 2>&1 ||
        true
    # Last resort: a postmaster that ignored both requests is killed outright
    # (its children exit when they notice the postmaster is gone).
    if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
        [[ $(cat "/proc/$pid/comm" 2>/dev/null) == postgres ]]; then
        kill -KILL "$pid" 2>/dev/null || true
        local i
        for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
}

# psql as the superuser over the private socket; -X: ignore any ~/.psqlrc.
admin_psql() {
    local db=$1
    shift
    psql -X -q -v ON_ERROR_STOP=1 -h "$sockdir" -p "$pgport" -U "$ADMIN" -d "$db" "$@"
}

create_roles() {
    # CREATE DATABASE cannot run inside the implicit transaction of a multi-statement
    # -c string, so feed a script (each statement is its own transaction).
    admin_psql postgres -f - <<EOF
CREATE ROLE fw_readers NOLOGIN;
CREATE ROLE $U_TRUST LOGIN IN ROLE fw_readers;
CREATE ROLE $U_PASSWORD LOGIN PASSWORD '$P_PASSWORD' IN ROLE fw_readers;
-- Store an MD5 verifier for fw_md5: with a SCRAM verifier the server would silently
-- upgrade the "md5" hba method to SCRAM and the md5 code path would go untested.
SET password_encryption = 'md5';
CREATE ROLE $U_MD5 LOGIN PASSWORD '$P_MD5' IN ROLE fw_readers;
RESET password_encryption;
CREATE ROLE $U_SCRAM LOGIN PASSWORD '$P_SCRAM' IN ROLE fw_readers;
CREATE ROLE $U_CERT LOGIN IN ROLE fw_readers;
CREATE ROLE $U_SSLONLY LOGIN PASSWORD '$P_SSLONLY' IN ROLE fw_readers;
CREATE DATABASE $DBNAME OWNER $ADMIN ENCODING 'UTF8' TEMPLATE template0;
REVOKE CONNECT ON DATABASE $DBNAME FROM PUBLIC;
GRANT CONNECT ON DATABASE $DBNAME TO fw_readers;
EOF
    # Tables, views and schemas fw_admin creates later (including when someone re-runs
    # fixtures.sql or bench/setup.sql, which drop and recreate everything) are readable
    # by the test users without another GRANT.
    admin_psql "$DBNAME" -f - <<'EOF'
ALTER DEFAULT PRIVILEGES FOR ROLE fw_admin GRANT SELECT ON TABLES TO fw_readers;
ALTER DEFAULT PRIVILEGES FOR ROLE fw_admin GRANT USAGE ON SCHEMAS TO fw_readers;
EOF
}

load_data() {
    local f
    for f in "$fixtures_sql" "$bench_sql"; do
        [[ -r $f ]] || die "missing $f"
        phase_begin "load ${f#"$repo_root"/}"
        admin_psql "$DBNAME" -f "$f" >/dev/null
        phase_end
    done
    # Explicit grants as well (the default privileges above already cover these).
    admin_psql "$DBNAME" -f - <<'EOF'
GRANT USAGE ON SCHEMA public TO fw_readers;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO fw_readers;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'fw_schema') THEN
        GRANT USAGE ON SCHEMA fw_schema TO fw_readers;
        GRANT SELECT ON ALL TABLES IN SCHEMA fw_schema TO fw_readers;
    END IF;
END
$$;
EOF
}

# --- cache ---------------------------------------------------------------------------
# The key covers everything that shapes the snapshot: this script, the SQL, the server
# version and the account that owns the files.
cache_key() {
    {
        cat "${BASH_SOURCE[0]}" "$fixtures_sql" "$bench_sql"
        "$bindir/postgres" --version
        printf 'uid=%s server=%s\n' "$(id -u)" "$srv_user"
    } | sha256sum | cut -c1-32
}

# Save the stopped cluster. Written under a temporary name and renamed at the very end,
# so a run that dies half-way leaves only a .tmp-* directory that is never read.
cache_save() {
    local cache=$1 key=$2 entry=$1/pg15-$2 tmp
    mkdir -p "$cache" || return 1
    tmp=$(mktemp -d "$cache/.tmp-$key.XXXXXX") || return 1
    if cp -a --reflink=auto "$datadir" "$tmp/data" &&
        cp -a "$certdir" "$tmp/certs" &&
        rm -f "$tmp/data/postmaster.pid" "$tmp/data/fwire_runtime.conf" &&
        date -u +%FT%TZ >"$tmp/complete" &&
        mv -T "$tmp" "$entry" 2>/dev/null; then
        # Older snapshots (other keys) are stale by construction: drop them, and the
        # leftovers of interrupted saves once they are clearly abandoned.
        local old
        for old in "$cache"/pg15-*; do
            [[ $old == "$entry" || ! -d $old ]] || rm -rf "$old"
        done
        find "$cache" -maxdepth 1 -name '.tmp-*' -mmin +60 -exec rm -rf {} + 2>/dev/null || true
        return 0
    fi
    rm -rf "$tmp"
    # Another run may have won the rename race; that entry is just as good.
    [[ -f $entry/complete ]]
}

cache_restore() {
    local entry=$1
    cp -a --reflink=auto "$entry/data" "$datadir" &&
        cp -a "$entry/certs" "$certdir"
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
    if [[ -n $(ls -A "$dir") ]]; then
        die "$dir is not empty; use a new directory, or 'pgcluster.sh stop $dir' first"
    fi
    : >"$marker"
    # The server account must reach DIR; a DIR under /root (0700) would not work.
    if ! as_server test -x "$dir"; then
        die "$dir is not reachable by the server account '$srv_user' (its parents need o+x); use a directory under /tmp"
    fi
    # Unix socket paths are limited to 107 bytes.
    local sockpath="$sockdir/.s.PGSQL.60000"
    ((${#sockpath} <= 107)) || die "socket path too long (${#sockpath} > 107 bytes): use a shorter DIR"

    host6=
    if have_ipv6_loopback; then host6=::1; fi

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
        phase_begin restore
        cache_restore "$cache_entry" || die "could not copy the cached cluster from $cache_entry"
        phase_end
        phase_begin start
        start_server
        phase_end
    else
        phase_begin certs
        make_certs
        phase_end

        phase_begin initdb
        install -d -m 0700 "$datadir"
        give_to_server "$datadir"
        touch "$dir/initdb.log"
        give_to_server "$dir/initdb.log"
        as_server "$bindir/initdb" -D "$datadir" -U "$ADMIN" --auth=trust --encoding=UTF8 \
            --locale=C --no-sync --no-instructions >"$dir/initdb.log" 2>&1 ||
            die "initdb failed"
        rm -f "$dir/initdb.log"
        write_static_conf
        write_hba
        phase_end

        phase_begin start
        start_server
        phase_end

        phase_begin roles
        create_roles
        phase_end

        load_data

        if [[ -n $cache_entry ]]; then
            phase_begin cache-save
            # Snapshot only a cleanly stopped cluster (a copy of a running one is a crash
            # image, and a crash empties the UNLOGGED bench tables).
            if as_server "$bindir/pg_ctl" stop -D "$datadir" -m fast -w -t 60 -s >/dev/null 2>&1; then
                server_started=0
                cache_save "$FW_PG_CACHE_DIR" "$key" || warn "could not write the cache in $FW_PG_CACHE_DIR"
                phase_end
                phase_begin restart
                start_server
            else
                warn "fast stop failed; not caching this cluster"
            fi
            phase_end
        fi
    fi

    write_env
    phase_name=total
    phase_t0=$t_all
    phase_end
    start_ok=1
    trap - EXIT INT TERM
    cat "$envfile"
}

cmd_stop() {
    local d=$1
    if [[ ! -e $d ]]; then return 0; fi
    [[ -d $d ]] || die "$d is not a directory"
    set_paths "$(cd "$d" && pwd -P)"
    # Only ever delete a directory this script created: guard against 'stop /'.
    if [[ ! -e $marker ]]; then
        if [[ -z $(ls -A "$dir") ]]; then rmdir "$dir"; return 0; fi
        die "$dir was not created by pgcluster.sh (no $marker); not touching it"
    fi
    bindir=$(find_bindir)
    if [[ -f $datadir/postmaster.pid ]]; then stop_server; fi
    rm -rf "$dir"
}

cmd_env() {
    [[ -f $1/env ]] || die "no env file in $1 (is a cluster started there?)"
    cat "$1/env"
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
