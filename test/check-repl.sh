#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The replicated test cluster itself (test/pgrepl.sh, run through test/with-repl.sh), checked
# with psql, openssl and bash's /dev/tcp: roles and streaming at start, in_hot_standby on every
# node, SCRAM, TLS (verify-full, each node its own certificate from the one CA) and the cert
# user on every node, a write reaching both standbys, a standby restarted with
# hot_standby=off answering 57P03, a primary restarted read-only, failover (stop node 0,
# promote node 1, node 2 follows it) and the old primary rejoining as a standby. Each check
# prints its failure and the script exits 1 if any failed.
set -uo pipefail

: "${FW_REPL_DIR:?run me through test/with-repl.sh}"
pass=0
fail=0
db=$FW_REPL_DBNAME

ok() { pass=$((pass + 1)); }
bad() {
    fail=$((fail + 1))
    printf 'FAIL: %s\n' "$*"
}
# A step the rest depends on: stop here, with the counts so far.
fatal() {
    bad "$@"
    printf 'stopping: the remaining checks need this step\n'
    bash "$FW_REPL_CTL" status "$FW_REPL_DIR"
    echo "repl cluster: $pass passed, $fail failed"
    exit 1
}
# expect_eq WHAT WANT GOT
expect_eq() {
    if [[ $3 == "$2" ]]; then ok; else bad "$1: got '$3', want '$2'"; fi
}
# expect_match WHAT ERE TEXT
expect_match() {
    if [[ $3 =~ $2 ]]; then ok; else bad "$1: /$2/ not found in: $3"; fi
}

ctl() {
    local out
    out=$(bash "$FW_REPL_CTL" "$1" "$FW_REPL_DIR" "${@:2}" 2>&1)
    local rc=$?
    [[ -z $out ]] || printf '%s\n' "$out" | sed 's/^/  /'
    return "$rc"
}
ctl_or_die() { ctl "$@" || fatal "pgrepl.sh $* failed"; }

var() { local v=$1; printf '%s' "${!v}"; }
port() { var "FW_REPL_N$1_PORT"; }

# SQL as the superuser over node N's private socket; stdout the rows, stderr kept.
admin() {
    local n=$1
    shift
    psql -X -At -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -h "$(var "FW_REPL_N${n}_SOCKDIR")" \
        -p "$(port "$n")" -U "$FW_REPL_ADMIN" -d "$db" -c "$1" 2>&1
}
# tcp N 'CONNINFO' SQL: psql over TCP to node N; prints rows or the error.
tcp() {
    psql -X -At -v ON_ERROR_STOP=1 -v VERBOSITY=verbose \
        "port=$(port "$1") dbname=$db connect_timeout=10 $2" -c "$3" 2>&1
}
trust() { tcp "$1" "host=127.0.0.1 user=$FW_REPL_USER_TRUST sslmode=disable" "$2"; }

# poll SECONDS WANT COMMAND...: until COMMAND prints WANT; prints the last output.
poll() {
    local secs=$1 want=$2 out
    shift 2
    local deadline=$((SECONDS + secs))
    while :; do
        out=$("$@")
        if [[ $out == "$want" ]] || ((SECONDS >= deadline)); then break; fi
        sleep 0.1
    done
    printf '%s' "$out"
}

# The server's plaintext answer to a bare protocol-3.0 StartupMessage, written with bash's
# /dev/tcp: "E SQLSTATE" for an ErrorResponse, else the first message type (R: auth).
# With a 4th argument, a Terminate follows the StartupMessage, for a server that lets us in.
startup_answer() {
    local p=$1 user=$2 dbn=$3 term=${4:-} out len
    len=$((8 + 5 + ${#user} + 1 + 9 + ${#dbn} + 1 + 1))
    out=$(mktemp)
    if ! exec 3<>"/dev/tcp/127.0.0.1/$p"; then
        rm -f "$out"
        printf 'connect failed'
        return
    fi
    # shellcheck disable=SC2059 # the format is built here, with \x escapes on purpose
    printf "\\x00\\x00\\x$(printf %02x $((len >> 8)))\\x$(printf %02x $((len & 255)))\\x00\\x03\\x00\\x00user\\x00%s\\x00database\\x00%s\\x00\\x00" \
        "$user" "$dbn" >&3
    [[ -z $term ]] || printf 'X\x00\x00\x00\x04' >&3
    timeout 10 cat <&3 >"$out"
    exec 3<&-
    local first
    first=$(head -c 1 "$out")
    if [[ $first == E ]]; then
        printf 'E %s' "$(tail -c +6 "$out" | tr '\0' '\n' | sed -n 's/^C//p' | head -n 1)"
    else
        printf '%s' "${first:-nothing}"
    fi
    rm -f "$out"
}

# The SHA-256 fingerprint of the certificate node N presents (STARTTLS the PostgreSQL way),
# verified against the test CA.
served_cert() {
    openssl s_client -starttls postgres -connect "127.0.0.1:$(port "$1")" -servername localhost \
        -CAfile "$FW_REPL_CA" -verify_return_error </dev/null 2>/dev/null |
        openssl x509 -noout -fingerprint -sha256 2>/dev/null
}

echo "# topology at start: node 0 primary, nodes 1 and 2 streaming hot standbys"
expect_eq "node 0 pg_is_in_recovery" f "$(admin 0 'SELECT pg_is_in_recovery()')"
for n in 1 2; do
    expect_eq "node $n pg_is_in_recovery" t "$(admin "$n" 'SELECT pg_is_in_recovery()')"
done
expect_eq "pg_stat_replication on node 0 (streaming)" "n1,n2" \
    "$(admin 0 "SELECT string_agg(application_name, ',' ORDER BY application_name) FROM pg_stat_replication WHERE state = 'streaming'")"
expect_eq "node 0 SHOW in_hot_standby" off "$(trust 0 'SHOW in_hot_standby')"
for n in 1 2; do
    expect_eq "node $n SHOW in_hot_standby" on "$(trust "$n" 'SHOW in_hot_standby')"
done
for n in 0 1 2; do
    expect_eq "node $n fixtures (v_fixture rows as $FW_REPL_USER_TRUST)" 5 \
        "$(trust "$n" 'SELECT count(*) FROM v_fixture')"
done
if ctl status >/dev/null; then ok; else bad "pgrepl.sh status: not every node running"; fi
expect_match "status" 'node 0: port [0-9]+, running, primary.*node 1: port [0-9]+, running, standby.*node 2: port [0-9]+, running, standby' "$(bash "$FW_REPL_CTL" status "$FW_REPL_DIR" 2>&1 | tr '\n' ' ')"
ports=$(printf '%s\n' "$(port 0)" "$(port 1)" "$(port 2)" | sort -u | wc -l)
expect_eq "three distinct ports" 3 "$ports"
socks=$(printf '%s\n' "$FW_REPL_N0_SOCKDIR" "$FW_REPL_N1_SOCKDIR" "$FW_REPL_N2_SOCKDIR" | sort -u | wc -l)
expect_eq "three distinct socket dirs" 3 "$socks"

echo "# SCRAM, TLS verify-full and the certificate user on every node"
scram="user=$FW_REPL_USER_SCRAM password=$FW_REPL_PASS_SCRAM"
tls="sslmode=verify-full sslrootcert=$FW_REPL_CA"
fps=()
for n in 0 1 2; do
    expect_eq "node $n SCRAM over TCP" "$FW_REPL_USER_SCRAM" \
        "$(tcp "$n" "host=127.0.0.1 $scram sslmode=disable" 'SELECT current_user')"
    expect_match "node $n SCRAM, wrong password" 'password authentication failed for user "fw_scram"' \
        "$(tcp "$n" "host=127.0.0.1 user=$FW_REPL_USER_SCRAM password=wrong sslmode=disable" 'SELECT 1')"
    expect_eq "node $n SCRAM over unix socket" "$FW_REPL_USER_SCRAM" \
        "$(tcp "$n" "host=$(var "FW_REPL_N${n}_SOCKDIR") $scram" 'SELECT current_user')"
    for h in localhost 127.0.0.1 ${FW_REPL_HOST6:+"$FW_REPL_HOST6"}; do
        expect_eq "node $n TLS verify-full host=$h, SCRAM with channel binding" "true $FW_REPL_USER_SCRAM" \
            "$(tcp "$n" "host=$h $scram $tls channel_binding=require" \
                "SELECT ssl || ' ' || current_user FROM pg_stat_ssl WHERE pid = pg_backend_pid()")"
    done
    expect_match "node $n TLS against the other CA fails" 'certificate verify failed' \
        "$(tcp "$n" "host=localhost $scram sslmode=verify-full sslrootcert=$FW_REPL_OTHER_CA" 'SELECT 1')"
    expect_eq "node $n certificate user" "$FW_REPL_USER_CERT" \
        "$(tcp "$n" "host=localhost user=$FW_REPL_USER_CERT $tls sslcert=$FW_REPL_CLIENT_CERT sslkey=$FW_REPL_CLIENT_KEY" 'SELECT current_user')"
    fp=$(served_cert "$n")
    want=$(openssl x509 -in "$(var "FW_REPL_N${n}_SERVER_CERT")" -noout -fingerprint -sha256)
    if [[ -n $fp && $fp == "$want" ]]; then ok; else bad "node $n serves '$fp', want its own certificate '$want'"; fi
    fps+=("$fp")
done
expect_eq "three different server certificates" 3 "$(printf '%s\n' "${fps[@]}" | sort -u | wc -l)"

echo "# a write on the primary reaches both standbys"
out=$(admin 0 'CREATE TABLE fw_repl_check (id int PRIMARY KEY, written_on int); INSERT INTO fw_repl_check VALUES (1, 0)')
[[ $out == "INSERT 0 1" || $out == *"INSERT 0 1" ]] || fatal "write on node 0: $out"
for n in 1 2; do
    expect_eq "row 1 on node $n" 0 "$(poll 30 0 admin "$n" 'SELECT written_on FROM fw_repl_check WHERE id = 1')"
done

echo "# a standby restarted with hot_standby=off refuses connections with 57P03"
ctl_or_die start-node 2 -c hot_standby=off
expect_match "node 2 with hot_standby=off, psql" 'the database system is not accepting connections.*Hot standby mode is disabled' \
    "$(trust 2 'SELECT 1' | tr '\n' ' ')"
expect_eq "node 2 with hot_standby=off, SQLSTATE of the startup answer" "E 57P03" \
    "$(startup_answer "$(port 2)" "$FW_REPL_USER_TRUST" "$db")"
expect_eq "node 1 (hot standby) lets the same StartupMessage in" R \
    "$(startup_answer "$(port 1)" "$FW_REPL_USER_TRUST" "$db" terminate)"
expect_match "status shows the setting" 'node 2: port [0-9]+, running, standby \[hot_standby=off\]' \
    "$(bash "$FW_REPL_CTL" status "$FW_REPL_DIR" 2 2>&1)"
if ctl wait-streaming; then ok; else bad "wait-streaming with node 2 not in hot standby"; fi
expect_match "node 2 still streams" 'n2' \
    "$(admin 0 "SELECT string_agg(application_name, ',') FROM pg_stat_replication WHERE state = 'streaming'")"
ctl_or_die start-node 2
expect_eq "node 2 back in hot standby" on "$(trust 2 'SHOW in_hot_standby')"

echo "# the primary restarted with default_transaction_read_only=on"
ctl_or_die start-node 0 -c default_transaction_read_only=on
expect_eq "node 0 SHOW default_transaction_read_only" on "$(trust 0 'SHOW default_transaction_read_only')"
expect_eq "node 0 still not in recovery" f "$(trust 0 'SELECT pg_is_in_recovery()')"
expect_match "node 0 refuses a write (25006)" '25006: cannot execute INSERT in a read-only transaction' \
    "$(admin 0 'INSERT INTO fw_repl_check VALUES (2, 0)')"
ctl_or_die start-node 0
expect_eq "node 0 read-write again" off "$(trust 0 'SHOW default_transaction_read_only')"
if ctl wait-streaming; then ok; else bad "wait-streaming after the primary's restart"; fi
expect_eq "pg_stat_replication on node 0 after its restart" "n1,n2" \
    "$(admin 0 "SELECT string_agg(application_name, ',' ORDER BY application_name) FROM pg_stat_replication WHERE state = 'streaming'")"

echo "# failover: stop node 0, promote node 1, node 2 follows it"
ctl_or_die stop-node 0 fast
if bash "$FW_REPL_CTL" status "$FW_REPL_DIR" 0 >/dev/null 2>&1; then bad "status 0 says running after stop-node"; else ok; fi
expect_match "node 0 stopped: connection refused" 'Connection refused' "$(trust 0 'SELECT 1')"
ctl_or_die promote 1
expect_eq "node 1 pg_is_in_recovery after promote" f "$(admin 1 'SELECT pg_is_in_recovery()')"
expect_eq "node 1 SHOW in_hot_standby after promote" off "$(trust 1 'SHOW in_hot_standby')"
expect_eq "write on node 1" "INSERT 0 1" "$(admin 1 'INSERT INTO fw_repl_check VALUES (3, 1)')"
if ctl wait-streaming; then ok; else bad "wait-streaming after the promotion"; fi
expect_eq "pg_stat_replication on node 1" n2 \
    "$(admin 1 "SELECT string_agg(application_name, ',') FROM pg_stat_replication WHERE state = 'streaming'")"
expect_eq "node 2 receives timeline 2" 2 "$(admin 2 'SELECT received_tli FROM pg_stat_wal_receiver')"
expect_eq "row 3 on node 2" 1 "$(poll 30 1 admin 2 'SELECT written_on FROM fw_repl_check WHERE id = 3')"
expect_match "status after failover" 'node 0: port [0-9]+, stopped, primary, detached.*node 1: port [0-9]+, running, primary.*node 2: port [0-9]+, running, standby' \
    "$(bash "$FW_REPL_CTL" status "$FW_REPL_DIR" 2>&1 | tr '\n' ' ')"
if ctl promote 1; then bad "promote of the primary succeeded"; else ok; fi
if ctl start-node 3; then bad "start-node of node 3 succeeded"; else ok; fi

echo "# the old primary rejoins as a standby of node 1"
ctl_or_die rejoin 0
expect_eq "node 0 pg_is_in_recovery after rejoin" t "$(admin 0 'SELECT pg_is_in_recovery()')"
expect_eq "node 0 SHOW in_hot_standby after rejoin" on "$(trust 0 'SHOW in_hot_standby')"
expect_eq "row 3 on node 0" 1 "$(poll 30 1 admin 0 'SELECT written_on FROM fw_repl_check WHERE id = 3')"
expect_eq "pg_stat_replication on node 1 after rejoin" "n0,n2" \
    "$(admin 1 "SELECT string_agg(application_name, ',' ORDER BY application_name) FROM pg_stat_replication WHERE state = 'streaming'")"
expect_eq "node 0 keeps its port" "$FW_REPL_N0_PORT" "$(admin 0 'SHOW port')"

echo "# a standby stopped immediately comes back and catches up"
ctl_or_die stop-node 2 immediate
expect_eq "write on node 1 while node 2 is down" "INSERT 0 1" "$(admin 1 'INSERT INTO fw_repl_check VALUES (4, 1)')"
ctl_or_die start-node 2
if ctl wait-streaming; then ok; else bad "wait-streaming after node 2's immediate stop"; fi
expect_eq "row 4 on node 2" 1 "$(poll 30 1 admin 2 'SELECT written_on FROM fw_repl_check WHERE id = 4')"

echo "repl cluster: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
