#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Regenerates the committed seed corpus of fuzz_pq_decoder: real server replies recorded from the
# test cluster, plus the hostile shapes of RELIABILITY.md written byte by byte. Each seed starts
# with the target's two control bytes (limits/startup flags, chunking seed).
#
#   FW_PG_STATE=/tmp/fwstate test/with-pg.sh test/fuzz/make-seeds.sh BUILD_DIR
set -euo pipefail
build=${1:?usage: make-seeds.sh BUILD_DIR (with bench/pq_raw built)}
here=$(cd "$(dirname "$0")" && pwd)
out="$here/corpus/pq_decoder"
mkdir -p "$out"
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT

seed() { # name, control bytes (printf escapes), file with the stream
  { printf '%b' "$2"; cat "$3"; } >"$out/$1"
}
capture() { # name, sql
  "$build/bench/pq_raw" capture "$2" "$tmp"
  seed "$1" '\x00\x07' "$tmp"
  seed "$1-startup-small-limits" '\x07\x2a' "$tmp"
}
capture real-startup ''
capture real-fixture 'SELECT data FROM v_fixture'
capture real-nulls 'SELECT data FROM v_fixture_nulls'
capture real-json 'SELECT data FROM v_fixture_json'
capture real-error 'SELECT data FROM v_does_not_exist'
capture real-error-mid 'SELECT data FROM v_fixture_error_mid'
capture real-complex 'SELECT data FROM v_bench_complex LIMIT 3'
capture real-multi 'SELECT 1 AS a, NULL::text AS b, $$x$$ AS c; SELECT data FROM v_fixture_empty'
capture real-notice "DO \$\$BEGIN RAISE NOTICE 'n'; END\$\$"

hostile() { # name, bytes
  printf '%b' "\\x00\\x01$2" >"$out/$1"
}
hostile short-length      'Z\x00\x00\x00\x03'
hostile huge-length       'D\x7f\xff\xff\xff\x00\x01'
hostile neg-length        'D\xff\xff\xff\xff'
hostile datarow-minus-2   'D\x00\x00\x00\x0a\x00\x01\xff\xff\xff\xfe'
hostile datarow-int-min   'D\x00\x00\x00\x0a\x00\x01\x80\x00\x00\x00'
hostile datarow-too-long  'D\x00\x00\x00\x0b\x00\x01\x00\x00\x00\x64x'
hostile datarow-count-0   'D\x00\x00\x00\x0b\x00\x00\x00\x00\x00\x01x'
hostile datarow-count-2   'D\x00\x00\x00\x0b\x00\x02\x00\x00\x00\x01x'
hostile datarow-count-max 'D\x00\x00\x00\x0b\xff\xff\x00\x00\x00\x01x'
hostile notify-len-5      'A\x00\x00\x00\x050'
hostile complete-len-4    'C\x00\x00\x00\x04'
hostile auth-odd          'R\x00\x00\x00\x09\x00\x00\x00\x00\x01'
hostile sasl-no-end       'R\x00\x00\x00\x0d\x00\x00\x00\x0aSCRAM'
hostile error-no-end      'E\x00\x00\x00\x0aMoops\x00'
hostile negotiate-count   'v\x00\x00\x00\x0e\x00\x00\x00\x00\x7f\xff\xff\xffx\x00'
# protocol 3.2: NegotiateProtocolVersion as PostgreSQL 15 sends it, with an option, with a
# negative version; BackendKeyData with a 32-byte key (PostgreSQL 18), 256, 257, 0 and 3 bytes
hostile negotiate-3-0     'v\x00\x00\x00\x0c\x00\x03\x00\x00\x00\x00\x00\x00'
hostile negotiate-option  'v\x00\x00\x00\x13\x00\x03\x00\x00\x00\x00\x00\x01_pq_.x\x00'
hostile negotiate-neg     'v\x00\x00\x00\x0c\xff\xff\xff\xfe\x00\x00\x00\x00'
hostile key-32            "K\x00\x00\x00\x28\x00\x00\x00\x07$(printf 'k%.0s' $(seq 32))"
hostile key-256           "K\x00\x00\x01\x08\x00\x00\x00\x07$(printf 'k%.0s' $(seq 256))"
hostile key-257           "K\x00\x00\x01\x09\x00\x00\x00\x07$(printf 'k%.0s' $(seq 257))"
hostile key-0             'K\x00\x00\x00\x08\x00\x00\x00\x07'
hostile key-3             'K\x00\x00\x00\x0b\x00\x00\x00\x07abc'
hostile rowdesc-count     'T\x00\x00\x00\x06\x00\x05'
hostile unknown-type      'Q\x00\x00\x00\x04'
hostile copy-out          'H\x00\x00\x00\x07\x00\x00\x00'
echo "seeds in $out: $(ls "$out" | wc -l)"
