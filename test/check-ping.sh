#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# `fwire ping` against the test cluster (run through test/with-pg.sh): every auth method over
# unix, TCP and TCP+TLS, the certificate user, the protocol version settings, and the failure
# exit codes and messages; psql's connection options (-h -p -U -d and the long forms) in libpq's
# order of precedence; help and every kind of bad option.
set -uo pipefail
fwire=${1:?usage: check-ping.sh FWIRE_BINARY}
pass=0
fail=0
base="port=$FW_TEST_PORT dbname=$FW_TEST_DBNAME"

expect() { # expected-exit, grep pattern on stdout+stderr, conninfo...
  local want=$1 pattern=$2
  shift 2
  local out rc
  out=$("$fwire" ping "$@" 2>&1)
  rc=$?
  if [ "$rc" -eq "$want" ] && grep -qE -- "$pattern" <<<"$out"; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    printf 'FAIL: fwire ping %s\n  exit %s (want %s), output: %s\n' "$*" "$rc" "$want" "$out"
  fi
}

sock=$FW_TEST_SOCKDIR
tls="sslmode=verify-full sslrootcert=$FW_TEST_CA"
expect 0 'auth trust,'            "host=$sock $base user=$FW_TEST_USER_TRUST"
expect 0 'auth password,'         "host=$sock $base user=$FW_TEST_USER_PASSWORD password=$FW_TEST_PASS_PASSWORD"
expect 0 'auth md5,'              "host=$sock $base user=$FW_TEST_USER_MD5 password=$FW_TEST_PASS_MD5"
expect 0 'auth SCRAM-SHA-256,'    "host=$sock $base user=$FW_TEST_USER_SCRAM password=$FW_TEST_PASS_SCRAM"
expect 0 'tcp .*tls none, auth trust' "host=127.0.0.1 $base user=$FW_TEST_USER_TRUST sslmode=disable"
expect 0 'tls none, auth md5'     "host=127.0.0.1 $base user=$FW_TEST_USER_MD5 password=$FW_TEST_PASS_MD5 sslmode=disable"
expect 0 'tls none, auth password' "host=127.0.0.1 $base user=$FW_TEST_USER_PASSWORD password=$FW_TEST_PASS_PASSWORD sslmode=disable"
expect 0 'tls TLSv1.3 .*auth SCRAM-SHA-256-PLUS, channel binding used' \
  "host=localhost $base user=$FW_TEST_USER_SCRAM password=$FW_TEST_PASS_SCRAM $tls"
expect 0 'tls TLSv1.3 .*auth md5' "host=localhost $base user=$FW_TEST_USER_MD5 password=$FW_TEST_PASS_MD5 $tls"
expect 0 'tls TLSv1.3 .*auth password' "host=127.0.0.1 $base user=$FW_TEST_USER_PASSWORD password=$FW_TEST_PASS_PASSWORD sslmode=require"
expect 0 'tls TLSv1.3 .*auth trust' "host=localhost $base user=$FW_TEST_USER_CERT $tls sslcert=$FW_TEST_CLIENT_CERT sslkey=$FW_TEST_CLIENT_KEY"
expect 0 'auth SCRAM-SHA-256-PLUS' "postgresql://$FW_TEST_USER_SCRAM:$FW_TEST_PASS_SCRAM@localhost:$FW_TEST_PORT/$FW_TEST_DBNAME?sslmode=verify-full&sslrootcert=$FW_TEST_CA"
# the environment, as psql reads it
PGHOST=$sock PGPORT=$FW_TEST_PORT PGDATABASE=$FW_TEST_DBNAME PGUSER=$FW_TEST_USER_TRUST \
  expect 0 'auth trust,'
# failures: exit 2 with phase, message and SQLSTATE; exit 1 for bad options
expect 2 'SQLSTATE 28P01'         "host=127.0.0.1 $base user=$FW_TEST_USER_SCRAM password=wrong sslmode=disable"
expect 2 '\(TLS handshake\).*does not match host name "db.invalid"' \
  "hostaddr=127.0.0.1 host=db.invalid $base user=$FW_TEST_USER_SCRAM password=x $tls"
expect 2 'channel binding required' "host=127.0.0.1 $base user=$FW_TEST_USER_SCRAM password=$FW_TEST_PASS_SCRAM sslmode=disable channel_binding=require"
expect 2 '\(connect\).*refused'   "host=127.0.0.1 port=1 dbname=x user=x sslmode=disable"
# protocol versions (PG18 keywords): PostgreSQL 15 negotiates a request for 3.2 down to 3.0;
# a minimum of 3.2, from the string or PGMINPROTOCOLVERSION, fails; a bad value is refused
expect 0 'binding not used, protocol 3.0, connected' "host=$sock $base user=$FW_TEST_USER_TRUST max_protocol_version=3.2"
expect 2 'min_protocol_version was set to 3.2' "host=$sock $base user=$FW_TEST_USER_TRUST min_protocol_version=3.2"
PGMINPROTOCOLVERSION=latest \
  expect 2 'server only supports protocol version 3.0' "host=$sock $base user=$FW_TEST_USER_TRUST"
expect 1 'accepted: 3.0, 3.2, latest' "host=$sock $base user=$FW_TEST_USER_TRUST max_protocol_version=3.1"
expect 2 'no such file'           "host=/nonexistent $base user=x"
expect 1 'invalid connection option "bogus"' "bogus=1"
# psql's connection options, alone and in long form
expect 0 'auth trust,'            -h "$sock" -p "$FW_TEST_PORT" -U "$FW_TEST_USER_TRUST" -d "$FW_TEST_DBNAME"
expect 0 'auth trust,'            --host="$sock" --port "$FW_TEST_PORT" --username="$FW_TEST_USER_TRUST" --dbname "$FW_TEST_DBNAME"
expect 0 "database $FW_TEST_DBNAME, tcp 127.0.0.1 port $FW_TEST_PORT" \
  -h127.0.0.1 -p"$FW_TEST_PORT" -U "$FW_TEST_USER_TRUST" -d "$FW_TEST_DBNAME" "sslmode=disable"
# precedence (libpq's, as psql uses it): CONNINFO's fields over the options over PG*
expect 0 "user $FW_TEST_USER_TRUST, .*auth trust," -U "$FW_TEST_USER_SCRAM" -p 1 \
  "host=$sock $base user=$FW_TEST_USER_TRUST"
PGHOST=/nonexistent PGPORT=1 PGUSER=nobody PGDATABASE=nowhere \
  expect 0 "user $FW_TEST_USER_TRUST, database $FW_TEST_DBNAME, unix" \
  -h "$sock" -p "$FW_TEST_PORT" -U "$FW_TEST_USER_TRUST" -d "$FW_TEST_DBNAME"
PGHOST=$sock PGPORT=$FW_TEST_PORT PGDATABASE=$FW_TEST_DBNAME PGUSER=$FW_TEST_USER_TRUST \
  expect 2 '\(connect\).*refused' -h 127.0.0.1 -p 1
# -d with a connection string is the connection string, as in psql
expect 0 'auth trust,'            -d "host=$sock $base user=$FW_TEST_USER_TRUST"
expect 1 'too many arguments'     -d "host=$sock $base" "user=x"
# a host that does not resolve fails (exit 2): `fwire ping -h db && echo up` means up
expect 2 'no-such-host\.invalid'  -h no-such-host.invalid -p "$FW_TEST_PORT"
# help, and each kind of bad option named as written (exit 1, before any connection)
expect 0 '^usage: fwire ping'     --help
expect 0 '^usage: fwire ping'     '-?'
expect 1 "unknown option '--bogus'" --bogus
expect 1 "unknown option '-x'"    -x
expect 1 "option '-p' needs a value" -p
expect 1 "option '--host' needs a value" --host
expect 1 "option '--verbose' takes no value" --verbose=yes
expect 1 "-p/--port wants a port number .* got 'abc'" -p abc
expect 1 "-p/--port wants a port number .* got '0'" --port=0
expect 1 "option '-h/--host' needs a non-empty value" -h ''
expect 1 'too many arguments'     "host=$sock" "user=x"
# the command itself: help is --help and -? (as in psql); -h is not help
top() { # expected-exit, pattern, args...
  local want=$1 pattern=$2 out rc
  shift 2
  out=$("$fwire" "$@" 2>&1)
  rc=$?
  if [ "$rc" -eq "$want" ] && grep -qE -- "$pattern" <<<"$out"; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    printf 'FAIL: fwire %s\n  exit %s (want %s), output: %s\n' "$*" "$rc" "$want" "$out"
  fi
}
top 0 '^usage: fwire ping' --help
top 0 '^usage: fwire ping' '-?'
top 1 "unknown option '-h'" -h
top 1 "unknown command 'pong'" pong
top 1 '^usage: fwire ping'
top 0 '^fwire [0-9]+\.[0-9]+\.[0-9]+$' --version
echo "fwire ping: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
