# SPDX-License-Identifier: MIT
# shellcheck shell=bash disable=SC2154,SC2034
# (SC2154/SC2034: the globals below are set and read by the sourcing script.)
#
# Shared pieces of test/pgcluster.sh (one throwaway PostgreSQL 15) and test/pgrepl.sh (a
# primary and two streaming standbys): sourced by both, never run on its own.
#
# Before sourcing, the caller sets fw_prog (its name, the prefix of every message). The
# functions work on globals the caller sets per server:
#   bindir        the PostgreSQL 15 bin directory (find_bindir)
#   datadir       PGDATA
#   sockdir       the server's private unix socket directory
#   logfile       the server log (pg_ctl -l)
#   runtime_conf  DATADIR/fwire_runtime.conf, rewritten before every start
#   certdir       the certificates (make_certs)
#   server_crt, server_key   this server's TLS certificate and key
#   host6         ::1 when the machine has IPv6 loopback, else empty
#   pgport        set by start_server / start_server_on; read by admin_psql
#   repo_root     the checkout (load_data names its files relative to it)
#   server_started  set to 1 by start_server_on (the caller's cleanup reads it)
#   dir, marker, envfile   a start's directory, its marker file, its env file (claim_dir,
#                 finish_start); start_ok, the caller's on_start_exit trap reads it
# and two optional hooks: hba_extra (more pg_hba.conf lines, placed before the final rejects)
# and runtime_conf_extra (a function whose output is appended to fwire_runtime.conf).

# Fixed facts of the test clusters. The passwords are not secrets: a cluster only listens
# on loopback and lives for one test run; they are published in the env file.
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

die() { printf '%s: error: %s\n' "$fw_prog" "$*" >&2; exit 1; }
warn() { printf '%s: warning: %s\n' "$fw_prog" "$*" >&2; }

# Phase timing on stderr, so stdout stays the env listing (callers may capture it).
phase_t0=
phase_name=
# EPOCHREALTIME uses the locale's decimal separator; normalise it to '.'.
phase_begin() { phase_name=$1; phase_t0=${EPOCHREALTIME/,/.}; }
phase_end() {
    local now=${EPOCHREALTIME/,/.}
    # EPOCHREALTIME is "sec.usec"; do the subtraction in integer microseconds.
    local us=$(( (${now%.*} - ${phase_t0%.*}) * 1000000 + (10#${now#*.} - 10#${phase_t0#*.}) ))
    printf '%s: %-10s %d.%03ds\n' "$fw_prog" "$phase_name" $((us / 1000000)) $(((us / 1000) % 1000)) >&2
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
# find_bindir [TOOL...]: initdb, pg_ctl, postgres and the named tools must be there.
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
    for tool in initdb pg_ctl postgres "$@"; do
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
    # Below the kernel's ephemeral range (32768..60999 by default): a port there may be the
    # source port of some client's loopback connection, which nothing listens on (port_busy
    # cannot see it) but which still fails the server's bind. 20000..LOW-1, or 20000..60000
    # when the ephemeral range starts too low to leave room. RANDOM is 15 bits: two draws.
    local lo=0 hi=60000 _
    read -r lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || lo=0
    if [[ $lo =~ ^[0-9]+$ ]] && ((lo > 21000)); then hi=$((lo - 1)); fi
    printf '%d' $((20000 + (RANDOM * 32768 + RANDOM) % (hi - 20000 + 1)))
}

server_running() {
    [[ -f $datadir/PG_VERSION ]] || return 1
    as_server "$bindir/pg_ctl" status -D "$datadir" >/dev/null 2>&1
}

# --- TLS material -------------------------------------------------------------------
# make_certs CERTDIR [NAME:SUBJECT ...]: the test CA, an unrelated CA, one server
# certificate CERTDIR/NAME.{crt,key} for each NAME:SUBJECT (default: server:/CN=localhost),
# valid for localhost, 127.0.0.1 and ::1, and the client certificate of fw_cert.
# EC P-256 keys and sha256 signatures: key generation takes milliseconds.
make_certs() {
    local c=$1
    shift
    local -a servers=("$@")
    ((${#servers[@]} > 0)) || servers=(server:/CN=localhost)
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

    # Leaves as KIND:NAME:SUBJECT; serials count up from 4096 in this order.
    local -a leaves=() names=()
    local s
    for s in "${servers[@]}"; do
        leaves+=("server:$s")
        names+=("${s%%:*}")
    done
    leaves+=("client:client:/CN=$U_CERT")
    names+=(client)
    local leaf serial=4096
    for leaf in "${leaves[@]}"; do
        local kind=${leaf%%:*} rest=${leaf#*:}
        local name=${rest%%:*}
        openssl req -new "${ec[@]}" -config "$c/openssl.cnf" -subj "${rest#*:}" \
            -keyout "$c/$name.key" -out "$c/$name.csr" 2>/dev/null
        openssl x509 -req -in "$c/$name.csr" -CA "$c/ca.crt" -CAkey "$c/ca.key" \
            -set_serial "$serial" -sha256 -days "$CERT_DAYS" \
            -extfile "$c/openssl.cnf" -extensions "v3_$kind" -out "$c/$name.crt" 2>/dev/null
        serial=$((serial + 1))
        rm -f "$c/$name.csr"
    done
    local -a crts=("${names[@]/#/$c/}")
    openssl verify -CAfile "$c/ca.crt" "${crts[@]/%/.crt}" >/dev/null ||
        die "generated certificates do not verify against the test CA"

    # A server insists its key is 0600 and owned by the account it runs as.
    local n
    for n in "${names[@]}"; do chmod 0600 "$c/$n.key"; done
    chmod 0600 "$c/ca.key" "$c/other-ca.key"
    for n in "${names[@]}"; do
        [[ $n == client ]] || give_to_server "$c/$n.key"
    done
    # A world-readable copy of the client key, for the key-permission check (libpq and
    # fwire refuse a key with group/other bits).
    cp "$c/client.key" "$c/client-badperm.key"
    chmod 0644 "$c/client-badperm.key"
    chmod 0644 "$c/ca.crt" "$c/other-ca.crt" "${crts[@]/%/.crt}"
}

# --- configuration --------------------------------------------------------------------
# Settings that do not depend on DIR or the port go into postgresql.conf once (and so
# into a cache snapshot). DIR- and port-dependent ones go into fwire_runtime.conf, which
# is rewritten before every start: a snapshot restored into another DIR just works.
write_static_conf() {
    cat >>"$datadir/postgresql.conf" <<EOF

# ---- fwire test cluster (test/$fw_prog) ----
EOF
    cat >>"$datadir/postgresql.conf" <<'EOF'
# Throwaway data: durability off for speed.
fsync = off
synchronous_commit = off
full_page_writes = off
# 1,000 streams over a pool of 100 (lib_pool_1k_live) while the other tests run: 250.
max_connections = 250
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
        printf '# Written by test/%s at each start; do not edit.\n' "$fw_prog"
        printf 'port = %s\n' "$port"
        printf 'listen_addresses = %s\n' "$(confq "$listen")"
        printf 'unix_socket_directories = %s\n' "$(confq "$sockdir")"
        printf 'ssl_cert_file = %s\n' "$(confq "$server_crt")"
        printf 'ssl_key_file = %s\n' "$(confq "$server_key")"
        printf 'ssl_ca_file = %s\n' "$(confq "$certdir/ca.crt")"
        if declare -F runtime_conf_extra >/dev/null; then runtime_conf_extra; fi
    } >"$runtime_conf"
    give_to_server "$runtime_conf"
}

# pg_hba.conf from scratch. Written before the first start, so initdb's permissive
# default (trust for every local and loopback connection) is never live.
write_hba() {
    local hba=$datadir/pg_hba.conf
    {
        printf '# fwire test cluster: written by test/%s; first match wins.\n' "$fw_prog"
        cat <<'EOF'
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
        if [[ -n ${hba_extra:-} ]]; then printf '%s\n' "$hba_extra"; fi
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
# start_server_on PORT [POSTGRES-OPTIONS]: start the server on PORT, waiting until it
# accepts connections (or, for a standby with hot_standby=off, until it runs). Returns 0
# when it is up, 1 when the port could not be bound (nothing is left running); dies on
# any other failure. POSTGRES-OPTIONS is one string that pg_ctl hands to a shell.
start_server_on() {
    local port=$1 opts=${2:-} ctl_err
    local -a o=()
    [[ -z $opts ]] || o=(-o "$opts")
    write_runtime_conf "$port"
    : >"$logfile"
    server_started=1
    # pg_ctl's own complaints (e.g. a start timeout) are kept apart from the log.
    if ctl_err=$(as_server "$bindir/pg_ctl" start -D "$datadir" -l "$logfile" "${o[@]}" -w -t 60 -s 2>&1 >/dev/null); then
        if ! grep -q 'could not bind' "$logfile"; then
            pgport=$port
            return 0
        fi
        # A partial bind: stop it cleanly. Never -m immediate here: the next start would run
        # crash recovery, which empties every UNLOGGED table (the bench tables) while the
        # cluster still looks healthy, and every test reading them would then see 0 rows.
        as_server "$bindir/pg_ctl" stop -D "$datadir" -m fast -w -t 60 -s >/dev/null 2>&1 ||
            as_server "$bindir/pg_ctl" stop -D "$datadir" -m immediate -w -s >/dev/null 2>&1 || true
    fi
    if grep -qE 'could not bind|Address already in use|could not create any TCP/IP sockets|could not create lock file' "$logfile"; then
        return 1
    fi
    die "the server did not start: ${ctl_err:-see the log below}"
}

# Start on a random free loopback port; retry on a new port when the bind fails. A
# partial bind (say ::1 taken but 127.0.0.1 free) is also treated as a failure: a test
# connecting over IPv6 would otherwise reach somebody else's server.
start_server() {
    local try port
    for ((try = 1; try <= MAX_PORT_TRIES; try++)); do
        port=$(random_port)
        if port_busy "$port"; then continue; fi
        if start_server_on "$port"; then return 0; fi
        warn "port $port unusable, retrying on another port"
    done
    die "no usable port after $MAX_PORT_TRIES tries"
}

# stop_server [fast|immediate]: fast falls back to immediate, and either to SIGKILL.
stop_server() {
    local mode=${1:-fast}
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
    { [[ $mode == fast ]] &&
        (cd / && "${run[@]}" "$bindir/pg_ctl" stop -D "$datadir" -m fast -w -t 10 -s) >/dev/null 2>&1; } ||
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

# load_data SQL-FILE...: run each file as fw_admin (one phase each), then the grants.
load_data() {
    local f
    for f in "$@"; do
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

# --- the steps of a start ----------------------------------------------------------------
# claim_dir SOCKDIR: the checks of a start in its new directory $dir (and $marker, both set by
# the caller) before anything but the marker is written there; sets host6. SOCKDIR is the
# (first) server's socket directory, whose socket path must fit.
claim_dir() {
    if [[ -n $(ls -A "$dir") ]]; then
        die "$dir is not empty; use a new directory, or '$fw_prog stop $dir' first"
    fi
    : >"$marker"
    # The server account must reach DIR; a DIR under /root (0700) would not work.
    if ! as_server test -x "$dir"; then
        die "$dir is not reachable by the server account '$srv_user' (its parents need o+x); use a directory under /tmp"
    fi
    # Unix socket paths are limited to 107 bytes.
    local sockpath="$1/.s.PGSQL.60000"
    ((${#sockpath} <= 107)) || die "socket path too long (${#sockpath} > 107 bytes): use a shorter DIR"
    host6=
    if have_ipv6_loopback; then host6=::1; fi
}

# init_datadir: initdb a new $datadir (superuser $ADMIN, trust, UTF8, locale C).
init_datadir() {
    install -d -m 0700 "$datadir"
    give_to_server "$datadir"
    touch "$dir/initdb.log"
    give_to_server "$dir/initdb.log"
    as_server "$bindir/initdb" -D "$datadir" -U "$ADMIN" --auth=trust --encoding=UTF8 \
        --locale=C --no-sync --no-instructions >"$dir/initdb.log" 2>&1 ||
        die "initdb failed"
    rm -f "$dir/initdb.log"
}

# restore_and_start ENTRY WHAT: the phases restore (the cached server ENTRY, WHAT in the error)
# and start.
restore_and_start() {
    phase_begin restore
    cache_restore "$1" || die "could not copy the cached $2 from $1"
    phase_end
    phase_begin start
    start_server
    phase_end
}

# save_and_restart PREFIX KEY COMMAND...: the phases cache-save (the server stopped, saved in
# $FW_PG_CACHE_DIR as PREFIX-KEY) and restart (COMMAND).
save_and_restart() {
    local prefix=$1 key=$2
    shift 2
    phase_begin cache-save
    # Snapshot only a cleanly stopped server (a copy of a running one is a crash image, and a
    # crash empties the UNLOGGED bench tables).
    if as_server "$bindir/pg_ctl" stop -D "$datadir" -m fast -w -t 60 -s >/dev/null 2>&1; then
        server_started=0
        cache_save "$FW_PG_CACHE_DIR" "$prefix" "$key" || warn "could not write the cache in $FW_PG_CACHE_DIR"
        phase_end
        phase_begin restart
        "$@"
    else
        warn "fast stop failed; not caching this cluster"
    fi
    phase_end
}

# finish_start T0: the end of a successful start begun at T0 (EPOCHREALTIME): writes the env
# file (the caller's write_env), times the whole, disarms the start's traps, prints the env.
finish_start() {
    write_env
    phase_name=total
    phase_t0=$1
    phase_end
    start_ok=1
    trap - EXIT INT TERM
    cat "$envfile"
}

# dir_to_stop D SETTER: the checks of a stop. Returns 1 (nothing to do) when D does not exist,
# or is an empty directory without the marker (it is removed); dies when D is not a directory,
# or holds files this script did not create; else runs SETTER (the caller's set_paths or
# set_dir) on D's real path and returns 0.
dir_to_stop() {
    local d=$1 setter=$2
    if [[ ! -e $d ]]; then return 1; fi
    [[ -d $d ]] || die "$d is not a directory"
    "$setter" "$(cd "$d" && pwd -P)"
    # Only ever delete a directory this script created: guard against 'stop /'.
    if [[ ! -e $marker ]]; then
        # (called as `dir_to_stop ... || return 0`, where set -e is off: a failed rmdir exits)
        if [[ -z $(ls -A "$dir") ]]; then rmdir "$dir" || exit; return 1; fi
        die "$dir was not created by $fw_prog (no $marker); not touching it"
    fi
}

# The env command of both scripts: DIR/env as the start wrote it.
cmd_env() {
    [[ -f $1/env ]] || die "no env file in $1 (is a cluster started there?)"
    cat "$1/env"
}

# --- cache ---------------------------------------------------------------------------
# cache_save CACHE PREFIX KEY: save the stopped server (datadir, certdir) as
# CACHE/PREFIX-KEY. Written under a temporary name and renamed at the very end, so a run
# that dies half-way leaves only a .tmp-* directory that is never read.
cache_save() {
    local cache=$1 prefix=$2 key=$3 entry=$1/$2-$3 tmp
    mkdir -p "$cache" || return 1
    tmp=$(mktemp -d "$cache/.tmp-$key.XXXXXX") || return 1
    if cp -a --reflink=auto "$datadir" "$tmp/data" &&
        cp -a "$certdir" "$tmp/certs" &&
        rm -f "$tmp/data/postmaster.pid" "$tmp/data/fwire_runtime.conf" &&
        date -u +%FT%TZ >"$tmp/complete" &&
        mv -T "$tmp" "$entry" 2>/dev/null; then
        # Older snapshots of this prefix (other keys) are stale by construction: drop
        # them, and the leftovers of interrupted saves once they are clearly abandoned.
        local old
        for old in "$cache/$prefix"-*; do
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
