#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# `fwire stream` against the test cluster (run through test/with-pg.sh): its output compared
# with psql's for the same query, byte for byte, for the fixture and bench views; --count, the
# options that shape the query, SQL NULL rows, schema and mid-stream errors, `| head -1`,
# --stats, --progress (the planner's estimate, the summary line), flushing on a slow producer,
# psql's connection options, stopping (the reader going away, SIGINT, SIGTERM, --idle-timeout), and
# the exit codes of bad options and failed connections.
#
# psql prints each value with `-At -0`: every record ends with a NUL byte, so values that hold
# newlines (v_fixture_json) stay whole, and SQL NULL is an empty record (JSON text never is).
# The expected fwire line is that value with raw LF and CR bytes turned into spaces.
set -uo pipefail
fwire=${1:?usage: check-stream.sh FWIRE_BINARY}
pass=0
fail=0
dsn=$FW_TEST_DSN_TRUST
psql=${FW_TEST_PGBINDIR:-/usr/lib/postgresql/15/bin}/psql
[ -x "$psql" ] || psql=psql
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# cmp.py FLAGS GOT WANT: FLAGS is a comma list of "sorted" (compare as multisets: the bench
# views are sequential scans, and a synchronized scan may start mid-table) and "nulls=MODE"
# (what fwire prints for SQL NULL; default skip).
cat >"$tmp/cmp.py" <<'EOF'
import hashlib, json, sys

flags = [f for f in sys.argv[1].split(",") if f]
nulls = "skip"
for f in flags:
    if f.startswith("nulls="):
        nulls = f[len("nulls="):]
raw = open(sys.argv[3], "rb").read()
recs = raw.split(b"\0")
if recs[-1] != b"":
    sys.exit("psql output does not end with a NUL")
recs.pop()
want, orig = [], []
for r in recs:
    if r == b"":  # SQL NULL
        if nulls == "skip":
            continue
        want.append(b"" if nulls == "empty" else b"null")
        orig.append(None)
    else:
        want.append(r.replace(b"\n", b" ").replace(b"\r", b" "))
        orig.append(r)
got_raw = open(sys.argv[2], "rb").read()
if got_raw and not got_raw.endswith(b"\n"):
    sys.exit("fwire output does not end with a newline")
got = got_raw.split(b"\n")[:-1] if got_raw else []
for i, line in enumerate(got):
    if line == b"" and nulls == "empty":
        continue
    try:
        json.loads(line)  # one JSON value per line: fails on invalid text or a second value
    except ValueError as e:
        sys.exit("line %d is not one JSON value (%s): %r" % (i + 1, e, line[:200]))
md5 = lambda rows: hashlib.md5(b"\n".join(rows)).hexdigest()
if "sorted" in flags:
    got.sort()
    want.sort()
elif len(got) == len(want):
    for line, o in zip(got, orig):  # the flattened text is the same JSON value as psql's
        if o is not None and json.loads(line) != json.loads(o):
            sys.exit("value changed by flattening: %r" % line[:200])
print("fwire %d lines md5 %s, psql %d rows md5 %s" % (len(got), md5(got), len(want), md5(want)))
if got != want:
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            sys.exit("first difference at line %d:\n  fwire %r\n  psql  %r" % (i + 1, g[:200], w[:200]))
    sys.exit("line counts differ")
EOF

ok() { pass=$((pass + 1)); }
no() { # what, why
  fail=$((fail + 1))
  printf 'FAIL: %s\n  %s\n' "$1" "$2"
}

# fw ARGS...: runs fwire stream; stdout in $tmp/out, stderr in $tmp/err, exit status in $rc
fw() {
  "$fwire" stream "$@" >"$tmp/out" 2>"$tmp/err"
  rc=$?
}

# same WHAT SQL FLAGS FWIRE_ARGS...: fwire's output for FWIRE_ARGS (the DSN is appended)
# equals psql's for SQL, and fwire exits 0 with nothing on stderr.
same() {
  local what=$1 sql=$2 flags=$3
  shift 3
  fw "$@" "$dsn"
  if ! "$psql" -X -At -0 -v ON_ERROR_STOP=1 "$dsn" -c "$sql" >"$tmp/want" 2>"$tmp/pqerr"; then
    no "$what" "psql failed: $(cat "$tmp/pqerr")"
  elif [ "$rc" -ne 0 ] || [ -s "$tmp/err" ]; then
    no "$what" "exit $rc, stderr: $(head -c 600 "$tmp/err")"
  elif python3 "$tmp/cmp.py" "$flags" "$tmp/out" "$tmp/want" >"$tmp/cmp" 2>&1; then
    ok
  else
    no "$what" "$(cat "$tmp/cmp")"
  fi
}

# expect WHAT EXIT PATTERN FWIRE_ARGS...: exit status and an extended regex on stderr
expect() {
  local what=$1 want=$2 pattern=$3
  shift 3
  fw "$@"
  if [ "$rc" -eq "$want" ] && grep -qE -- "$pattern" "$tmp/err"; then
    ok
  else
    no "$what" "exit $rc (want $want), stderr: $(head -c 600 "$tmp/err")"
  fi
}

stderr_has() { # WHAT PATTERN: the last fwire run's stderr matches PATTERN
  if grep -qE -- "$2" "$tmp/err"; then ok; else no "$1" "stderr: $(head -c 600 "$tmp/err")"; fi
}

sql_count() { # psql's "ROWS BYTES" for a view
  "$psql" -X -At -F ' ' "$dsn" \
    -c "SELECT count(*), coalesce(sum(octet_length(data::text)), 0) FROM $1"
}

# ---- whole views, byte for byte ----
same 'v_fixture' 'SELECT data::text FROM v_fixture' '' v_fixture
same 'v_fixture_json (newlines, tabs, non-ASCII)' 'SELECT data::text FROM v_fixture_json' '' \
  v_fixture_json
same 'v_fixture_empty' 'SELECT data::text FROM v_fixture_empty' '' v_fixture_empty
same 'v_fixture_big_row (2 MiB row, larger than the output buffer)' \
  'SELECT data::text FROM v_fixture_big_row' '' v_fixture_big_row
same 'v_bench_1k' 'SELECT data::text FROM v_bench_1k' sorted v_bench_1k
same 'v_bench_100k' 'SELECT data::text FROM v_bench_100k' sorted v_bench_100k
same 'v_bench_100k, chunk 1, 64K budget' 'SELECT data::text FROM v_bench_100k' sorted \
  --chunk-size 1 --max-memory 64K v_bench_100k
same 'v_bench_100k, chunk 65536, 1G budget' 'SELECT data::text FROM v_bench_100k' sorted \
  --chunk-size=65536 --max-memory=1G v_bench_100k
same 'entity' 'SELECT data::text FROM v_fixture' '' -e fixture
same 'entity, long form' 'SELECT data::text FROM v_fixture' '' --entity=fixture
same 'schema.relation' 'SELECT data::text FROM fw_schema."v_Mixed Case"' '' \
  'fw_schema.v_Mixed Case'
same 'unqualified relation with a space' 'SELECT data::text FROM public."v_Mixed Case"' '' \
  'v_Mixed Case'
same 'table with a space and capitals' 'SELECT data::text FROM fw_schema."Weird Name"' sorted \
  'fw_schema.Weird Name'

# ---- SQL NULL rows: skipped and counted by default, or an empty line, or null ----
same 'v_fixture_nulls --nulls=skip' 'SELECT data::text FROM v_fixture_nulls' nulls=skip \
  --nulls=skip v_fixture_nulls
same 'v_fixture_nulls --nulls=empty' 'SELECT data::text FROM v_fixture_nulls' nulls=empty \
  --nulls=empty v_fixture_nulls
same 'v_fixture_nulls --nulls json-null' 'SELECT data::text FROM v_fixture_nulls' \
  nulls=json-null --nulls json-null v_fixture_nulls
fw v_fixture_nulls "$dsn"
if [ "$rc" -eq 0 ] && [ "$(wc -l <"$tmp/out")" -eq 4 ] &&
  grep -q '^fwire: 2 row(s) with SQL NULL data skipped' "$tmp/err"; then ok; else
  no 'v_fixture_nulls default: 4 lines and a note' "exit $rc, stderr: $(cat "$tmp/err")"
fi

# ---- --count: count(*) and the byte sum of data::text ----
for v in v_fixture v_fixture_json v_fixture_nulls v_fixture_empty v_bench_1k v_bench_100k; do
  fw --count "$v" "$dsn"
  want=$(sql_count "$v")
  if [ "$rc" -eq 0 ] && [ "$(cat "$tmp/out")" = "$want" ] && [ ! -s "$tmp/err" ]; then ok; else
    no "--count $v" "exit $rc, got '$(cat "$tmp/out")', psql '$want', stderr: $(cat "$tmp/err")"
  fi
done

# ---- the query: limit, offset, typed predicates, raw SQL, order ----
q='SELECT data::text FROM v_fixture'
same '--limit' "$q LIMIT 2" '' --limit 2 v_fixture
same '--limit 0' "$q LIMIT 0" '' --limit 0 v_fixture
same '--offset' "$q OFFSET 3" '' --offset 3 v_fixture
same '--limit --offset' "$q LIMIT 2 OFFSET 1" '' --limit=2 --offset=1 v_fixture
same 'where num gt' "$q WHERE (data->>'id')::int > 2" '' --where 'id gt num:2' v_fixture
same 'where num le, ne' "$q WHERE (data->>'id')::int <= 4 AND (data->>'id')::int <> 2" '' \
  -w 'id le num:4' -w 'id ne num:2' v_fixture
same 'where text eq' "$q WHERE data->>'name' = 'gamma'" '' --where 'name eq text:gamma' v_fixture
same 'where bool eq' "$q WHERE data#>'{nested,ok}' = 'true'" '' \
  --where 'nested.ok eq bool:true' v_fixture
same 'where num eq on a decimal' "$q WHERE data#>'{nested,f}' = '1.5'" '' \
  --where 'nested.f eq num:1.50' v_fixture
same 'where array element' "$q WHERE data#>>'{tags,0}' = 'a'" '' --where 'tags.0 eq text:a' \
  v_fixture
same 'where like' "$q WHERE data->>'name' LIKE '%a'" '' --where 'name like text:%a' v_fixture
same 'where ilike' "$q WHERE data->>'name' ILIKE 'B%'" '' --where 'name ilike text:B%' v_fixture
same 'where contains' "$q WHERE data->'tags' @> '[\"d\"]'" '' \
  --where 'tags contains json:["d"]' v_fixture
same 'where whole document contains' "$q WHERE data @> '{\"name\": \"beta\"}'" '' \
  --where '. contains json:{"name": "beta"}' v_fixture
same 'where has_key' "$q WHERE data->'nested' ? 'ok'" '' --where 'nested has_key text:ok' \
  v_fixture
same 'where text with spaces' "$q WHERE data->>'name' = 'no such name'" '' \
  --where 'name eq text:no such name' v_fixture
same 'where-null' "$q WHERE data#>>'{nested,v}' IS NULL" '' --where-null nested.v v_fixture
same 'where-not-null' "$q WHERE data#>>'{nested,f}' IS NOT NULL" '' --where-not-null nested.f \
  v_fixture
same 'in num' "$q WHERE (data->>'id')::int IN (1, 3, 5)" '' --in 'id num:1,3,5' v_fixture
same 'in text' "$q WHERE data->>'name' IN ('alpha', 'delta')" '' --in 'name text:alpha,delta' \
  v_fixture
same 'in with an escaped comma' "$q WHERE data->>'name' IN ('alpha', 'x,y')" '' \
  --in 'name text:alpha,x\,y' v_fixture
same 'in, empty list' "$q WHERE false" '' --in 'id num:' v_fixture
same 'where-sql and where' "$q WHERE (data->>'id')::int % 2 = 1 AND (data->>'id')::int < 5" '' \
  --where-sql "(data->>'id')::int % 2 = 1" --where 'id lt num:5' v_fixture
same 'where-sql ending in a comment' "$q WHERE (data->>'id')::int = 2" '' \
  --where-sql "(data->>'id')::int = 2 -- a comment" v_fixture
same 'order-by desc' "$q ORDER BY data->>'name' DESC" '' --order-by "data->>'name'" --desc \
  v_fixture
same 'order-by collate' "$q ORDER BY data->>'name' COLLATE \"C\"" '' \
  --order-by "data->>'name'" --collate C v_fixture
same 'two order keys' \
  "$q ORDER BY jsonb_array_length(data->'tags') DESC, data->>'name'" '' \
  --order-by "jsonb_array_length(data->'tags')" --desc --order-by "data->>'name'" v_fixture
same 'bench: where, order, limit, offset' \
  "SELECT data::text FROM v_bench_100k WHERE (data->>'bucket')::int = 3 AND data->>'status' <> 'done' ORDER BY (data->>'id')::int DESC LIMIT 50 OFFSET 10" \
  '' --where 'bucket eq num:3' --where 'status ne text:done' \
  --order-by "(data->>'id')::int" --desc --limit 50 --offset 10 v_bench_100k
same 'bench: in over many values' \
  "SELECT data::text FROM v_bench_1k WHERE (data->>'id')::int IN ($(seq -s, 1 7 700))" sorted \
  --in "id num:$(seq -s, 1 7 700)" v_bench_1k
# the PG* environment instead of a CONNINFO argument
PGHOST=$FW_TEST_SOCKDIR PGPORT=$FW_TEST_PORT PGDATABASE=$FW_TEST_DBNAME \
  PGUSER=$FW_TEST_USER_TRUST "$fwire" stream --count v_fixture >"$tmp/out" 2>"$tmp/err"
rc=$?
if [ "$rc" -eq 0 ] && [ "$(cat "$tmp/out")" = "$(sql_count v_fixture)" ]; then ok; else
  no 'PG* environment' "exit $rc, out $(cat "$tmp/out"), stderr: $(cat "$tmp/err")"
fi

# ---- failures of the query: exit 3, the error on stderr ----
# fwire selects "data" by name (SELECT "data" FROM ...), so an extra column is never read and a
# missing "data" is the server's error; only a data column of another type is FW_ESCHEMA.
same 'v_fixture_two_cols: the data column' 'SELECT data::text FROM v_fixture_two_cols' '' \
  v_fixture_two_cols
expect 'v_fixture_wrong_name' 3 'query failed \(FW_ESERVER\): column "data" does not exist' \
  v_fixture_wrong_name "$dsn"
stderr_has 'wrong_name: SQLSTATE 42703' 'SQLSTATE 42703'
expect 'v_fixture_wrong_type' 3 \
  'query failed \(FW_ESCHEMA\): .*json or jsonb.*returned 1 column: "data" \(text\)' \
  v_fixture_wrong_type "$dsn"
expect 'missing view' 3 'FW_ESERVER.*v_no_such_view' v_no_such_view "$dsn"
stderr_has 'missing view: SQLSTATE 42P01' 'SQLSTATE 42P01'
expect 'bad json value (server-side)' 3 'SQLSTATE 22P02' --where 'nested eq json:{bad' v_fixture \
  "$dsn"
# A row over the budget is delivered, alone (issue 17); only --max-row-size refuses one.
same 'a 2 MiB row over --max-memory 1M is delivered' 'SELECT data::text FROM v_fixture_big_row' '' \
  --max-memory 1M v_fixture_big_row
expect 'a row over --max-row-size' 3 'query failed \(FW_ETOOBIG\).*max_message' \
  --max-row-size 1M v_fixture_big_row "$dsn"
expect 'max row size too large' 1 'max-row-size' --max-row-size 2G v_fixture "$dsn"
expect 'max row size bad' 1 'max-row-size' --max-row-size 0 v_fixture "$dsn"
expect '--timeout' 3 'SQLSTATE 57014' --timeout 100 --where-sql 'pg_sleep(0.3) IS NOT NULL' \
  v_fixture "$dsn"
fw v_fixture_error_mid "$dsn"
if [ "$rc" -eq 3 ] && [ "$(cat "$tmp/out")" = $'{"x": 0, "id": 0}\n{"x": 0, "id": 1}\n{"x": 1, "id": 2}' ] &&
  grep -q 'query failed (FW_ESERVER): division by zero' "$tmp/err" &&
  grep -q 'SQLSTATE 22012' "$tmp/err"; then ok; else
  no 'v_fixture_error_mid' "exit $rc, stdout: $(cat "$tmp/out"), stderr: $(cat "$tmp/err")"
fi

# ---- stopping: a reader that goes away, SIGINT, SIGTERM, --idle-timeout ----
# Each run names itself with application_name, so pg_stat_activity shows whether its backend
# is still running the query afterwards; with -v fwire logs its backend's pid, and the server
# log then shows that the query was cancelled (57014), not merely abandoned.
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }
app_active() { # APPNAME: backends of that application_name still running a query
  "$psql" -X -At "$dsn" -c "SELECT count(*) FROM pg_stat_activity
    WHERE application_name = '$1' AND state = 'active'"
}
cancelled_in_log() { # STDERR_FILE: the backend fwire -v named logged a 57014 cancel
  local pid
  pid=$(sed -n 's/.*(backend \([0-9]*\)[,)].*/\1/p' "$1" | head -1)
  [ -n "$pid" ] && [ -n "${FW_TEST_SERVER_LOG:-}" ] &&
    grep -q "\[$pid\] ERROR:  canceling statement due to user request" "$FW_TEST_SERVER_LOG"
}
n=0
for v in v_bench_100k v_bench_1m v_bench_1m; do
  n=$((n + 1))
  app=fwire_check_head$n
  extra=()
  [ "$n" -eq 3 ] && extra=(--cancel-timeout 2000)
  start=$(date +%s%N)
  timeout 10 "$fwire" stream "${extra[@]}" "$v" "$dsn application_name=$app" 2>"$tmp/err" |
    head -1 >"$tmp/out"
  st=("${PIPESTATUS[@]}")
  ms=$(ms_since "$start")
  if [ "${st[0]}" -eq 0 ] && [ "$ms" -lt 1000 ] && [ ! -s "$tmp/err" ] &&
    [ "$(wc -l <"$tmp/out")" -eq 1 ] &&
    python3 -c 'import json,sys; json.loads(sys.stdin.read())' <"$tmp/out"; then ok; else
    no "$v ${extra[*]} | head -1" "exit ${st[0]} after $ms ms (want 0 within 1000), stderr: $(cat "$tmp/err")"
  fi
  sleep 1
  active=$(app_active "$app")
  if [ "$active" = 0 ]; then ok; else
    no "$v | head -1: backend idle 1 s later" "$active backend(s) of $app still active"
  fi
done
# the same with -v: the reader's departure cancelled the query on the server
timeout 10 "$fwire" stream -v v_bench_1m "$dsn" 2>"$tmp/err" | head -1 >/dev/null
if cancelled_in_log "$tmp/err"; then ok; else
  no 'v_bench_1m | head -1: the server log shows the cancel' "stderr: $(cat "$tmp/err")"
fi

# SIGINT and SIGTERM ~0.3 s into a --count of v_bench_1m (about 1 s): the query is cancelled
# (its backend logs 57014 and is no longer active), nothing is printed on stdout, and fwire
# exits 128 + the signal's number.
for sig in INT TERM; do
  want=$([ "$sig" = INT ] && echo 130 || echo 143)
  app=fwire_check_sig$sig
  start=$(date +%s%N)
  "$fwire" stream -v --count v_bench_1m "$dsn application_name=$app" >"$tmp/out" \
    2>"$tmp/err" &
  pid=$!
  sleep 0.3
  kill -"$sig" "$pid"
  wait "$pid"
  rc=$?
  ms=$(ms_since "$start")
  if [ "$rc" -eq "$want" ] && [ ! -s "$tmp/out" ] && [ "$ms" -lt 900 ]; then ok; else
    no "SIG$sig mid-stream" "exit $rc (want $want) after $ms ms, stdout: $(cat "$tmp/out"), stderr: $(cat "$tmp/err")"
  fi
  if cancelled_in_log "$tmp/err"; then ok; else
    no "SIG$sig mid-stream: the server log shows the cancel" "stderr: $(cat "$tmp/err")"
  fi
  sleep 1
  active=$(app_active "$app")
  if [ "$active" = 0 ]; then ok; else
    no "SIG$sig mid-stream: backend idle" "$active backend(s) of $app still active"
  fi
done
# SIGINT while the reader of stdout has stalled: the blocked write is interrupted too
rm -f "$tmp/rc"
start=$(date +%s%N)
{ "$fwire" stream v_bench_1m "$dsn" 2>"$tmp/err" & echo $! >"$tmp/pid"; wait $!; echo $? >"$tmp/rc"; } | sleep 3 &
reader=$!
sleep 0.5
kill -INT "$(cat "$tmp/pid")"
for _ in $(seq 50); do [ -s "$tmp/rc" ] && break; sleep 0.05; done
ms=$(ms_since "$start")
if [ "$(cat "$tmp/rc" 2>/dev/null)" = 130 ] && [ "$ms" -lt 1500 ]; then ok; else
  no 'SIGINT with a stalled reader' "exit $(cat "$tmp/rc" 2>/dev/null) after $ms ms, stderr: $(cat "$tmp/err")"
fi
wait "$reader"
# a second SIGINT exits at once, also while the query is still being cancelled
"$fwire" stream --where-sql 'pg_sleep(1) IS NOT NULL' v_fixture "$dsn" >"$tmp/out" 2>"$tmp/err" &
pid=$!
sleep 0.3
kill -INT "$pid"
kill -INT "$pid"
wait "$pid"
rc=$?
if [ "$rc" -eq 130 ] && [ ! -s "$tmp/out" ]; then ok; else
  no 'two SIGINTs' "exit $rc, stderr: $(cat "$tmp/err")"
fi

# --idle-timeout: no row for 2 s; after 300 ms the query is cancelled and the stream fails
start=$(date +%s%N)
fw --idle-timeout 300 --where-sql 'pg_sleep(2) IS NOT NULL' --limit 1 v_fixture \
  "$dsn application_name=fwire_check_idle"
ms=$(ms_since "$start")
if [ "$rc" -eq 3 ] && grep -q 'query failed (FW_ETIMEDOUT): no data from the server for 300 ms' \
  "$tmp/err" && [ ! -s "$tmp/out" ] && [ "$ms" -lt 1500 ]; then ok; else
  no '--idle-timeout' "exit $rc (want 3) after $ms ms, stderr: $(cat "$tmp/err")"
fi
# rows that keep coming never trip it
same '--idle-timeout, rows flowing' 'SELECT data::text FROM v_bench_100k' sorted \
  --idle-timeout 300 v_bench_100k

# ---- --stats, --progress ----
"$fwire" stream --stats v_fixture_nulls "$dsn" >/dev/null 2>"$tmp/err"
rc=$?
grep -v '^fwire: ' "$tmp/err" >"$tmp/stats"
if [ "$rc" -eq 0 ] && python3 -m json.tool "$tmp/stats" >/dev/null &&
  python3 - "$tmp/stats" <<'EOF'; then ok; else no '--stats' "exit $rc, stderr: $(cat "$tmp/err")"; fi
import json, sys
s = json.load(open(sys.argv[1]))
want = {"state": "completed", "rows": 6, "sql_nulls": 2, "rows_filtered": 0}
for k in ["rows_buffered", "chunks_buffered", "bytes_buffered", "rows_yielded", "rows_filtered",
          "bytes_received", "chunks_delivered", "read_stops", "chunk_size", "chunk_grows",
          "chunk_shrinks", "pauses", "pause_timeouts", "state",
          "max_memory", "read_wakeups", "read_ticks", "rows", "sql_nulls", "json_bytes",
          "seconds"]:
    assert k in s, k
for k, v in want.items():
    assert s[k] == v, (k, s[k])
assert s["bytes_received"] > 0 and s["max_memory"] == 4 << 20
assert s["read_wakeups"] + s["read_ticks"] > 0  # the rows came from somewhere
EOF
# --progress: the line is redrawn in place (\r ... erase to the end), and the last thing on
# stderr is one summary line that stays: rows, MB, rows/s, seconds.
fw --progress --where-sql 'pg_sleep(0.2) IS NOT NULL' --limit 3 v_fixture "$dsn"
if [ "$rc" -eq 0 ] && grep -q 'rows/s' "$tmp/err" &&
  tail -n 1 "$tmp/err" | grep -qE $'(^|\033\\[K)fwire: 3 rows, [0-9.]+ MB, [0-9]+ rows/s, [0-9.]+ s$'; then
  ok
else
  no '--progress ends with a summary line' "exit $rc, stderr: $(od -c "$tmp/err" | tail -n 8)"
fi
# the planner's estimate, marked as one (~), with a percentage and an ETA while the rows stay
# under it (generate_series(1, 40): the planner knows it is 40 rows) ...
fw --progress --no-progress --progress v_fixture_drip "$dsn"
if [ "$rc" -eq 0 ] && grep -qE $'\rfwire: [0-9]+ rows of ~40 \(~[0-9]+%, ETA ~[0-9]+ s\)' "$tmp/err" &&
  tail -n 1 "$tmp/err" | grep -qE 'fwire: 40 rows, '; then
  ok
else
  no '--progress against the estimate' "exit $rc, stderr: $(tr '\r' '\n' <"$tmp/err" | head -n 8)"
fi
# ... and once the rows pass it, no percentage: only that the estimate was passed (the planner
# guesses a third of the rows for this condition)
fw --progress --where-sql "(data->>'i')::int > 0" v_fixture_drip "$dsn"
if [ "$rc" -eq 0 ] && grep -qE $'\rfwire: [0-9]+ rows \(past the estimate of ~[0-9]+\)' "$tmp/err" &&
  ! tr '\r' '\n' <"$tmp/err" | grep -E 'rows of ~' | awk '{print $2, $5}' | tr -d '~' |
    awk '$1 > $2 {bad = 1} END {exit !bad}'; then
  ok
else
  no '--progress past the estimate' "exit $rc, stderr: $(tr '\r' '\n' <"$tmp/err" | head -n 8)"
fi

# ---- a slow producer through a pipe: each row reaches the reader as soon as it arrives ----
# v_fixture_drip makes a row every 25 ms, stamped with the server's clock; the reader (through a
# pipe, where stdout would be block-buffered) notes when each line arrives. fwire flushes when no
# row is ready, so the first line must be there within 100 ms of being made, as every other.
# The reader starts fwire itself (its stdout a pipe), so that its own start-up time (python3
# can take a second on a loaded machine) is not counted.
python3 - "$fwire" "$dsn" 2>"$tmp/err" >"$tmp/lags" <<'EOF'
import json, subprocess, sys, time
p = subprocess.Popen([sys.argv[1], "stream", "v_fixture_drip", sys.argv[2]], stdout=subprocess.PIPE)
lags = []
for line in iter(p.stdout.readline, b""):  # readline returns each line as soon as it is whole
    lags.append(time.time() - json.loads(line)["at"])
rc = p.wait()
print(rc, len(lags), round(lags[0] * 1e3) if lags else -1, round(max(lags) * 1e3) if lags else -1)
EOF
st=($? 0)
read -r fwrc nlines first_ms max_ms <"$tmp/lags"
st[1]=${fwrc:-1}
if [ "${st[0]}" -eq 0 ] && [ "${st[1]}" -eq 0 ] && [ "$nlines" -eq 40 ] && [ "$first_ms" -lt 100 ]; then
  ok
  echo "drip: 40 lines, first ${first_ms} ms after it was made, worst ${max_ms} ms"
else
  no 'slow producer: first line within 100 ms' \
    "exit ${st[*]}, lines $nlines, first line ${first_ms} ms, worst ${max_ms} ms, stderr: $(cat "$tmp/err")"
fi

# ---- psql's connection options: -h -p -U -d, CONNINFO over them, them over PG* ----
fw -h "$FW_TEST_SOCKDIR" -p "$FW_TEST_PORT" -U "$FW_TEST_USER_TRUST" -d "$FW_TEST_DBNAME" --count v_fixture
if [ "$rc" -eq 0 ] && [ "$(cat "$tmp/out")" = "$(sql_count v_fixture)" ]; then ok; else
  no '-h -p -U -d' "exit $rc, out $(cat "$tmp/out"), stderr: $(cat "$tmp/err")"
fi
PGHOST=/nonexistent PGPORT=1 fw --host "$FW_TEST_SOCKDIR" --port="$FW_TEST_PORT" \
  --username "$FW_TEST_USER_TRUST" --dbname="$FW_TEST_DBNAME" --count v_fixture
if [ "$rc" -eq 0 ] && [ "$(cat "$tmp/out")" = "$(sql_count v_fixture)" ]; then ok; else
  no 'long options over PG*' "exit $rc, out $(cat "$tmp/out"), stderr: $(cat "$tmp/err")"
fi
fw -p 1 -h /nonexistent --count v_fixture "$dsn"
if [ "$rc" -eq 0 ] && [ "$(cat "$tmp/out")" = "$(sql_count v_fixture)" ]; then ok; else
  no 'CONNINFO over -h -p' "exit $rc, out $(cat "$tmp/out"), stderr: $(cat "$tmp/err")"
fi
fw -d "$dsn" --count v_fixture
if [ "$rc" -eq 0 ] && [ "$(cat "$tmp/out")" = "$(sql_count v_fixture)" ]; then ok; else
  no '-d CONNINFO' "exit $rc, out $(cat "$tmp/out"), stderr: $(cat "$tmp/err")"
fi
fw --help
if [ "$rc" -eq 0 ] && grep -q '^usage: fwire stream' "$tmp/out" && grep -q -- '-U, --username' "$tmp/out"; then
  ok; else no '--help' "exit $rc"; fi
fw '-?'
if [ "$rc" -eq 0 ] && grep -q '^usage: fwire stream' "$tmp/out"; then ok; else no '-?' "exit $rc"; fi
same '--no-progress' 'SELECT data::text FROM v_fixture' '' --no-progress v_fixture

# ---- --print-sql: no connection ----
fw --print-sql -e user --where 'age gt num:30' --limit 3
if [ "$rc" -eq 0 ] && grep -q 'FROM "v_user"' "$tmp/out" && grep -qF "\$1" "$tmp/out"; then ok; else
  no '--print-sql' "exit $rc, out: $(cat "$tmp/out"), stderr: $(cat "$tmp/err")"
fi

# ---- bad usage: exit 1 before connecting (the DSN points nowhere) ----
nowhere='host=/nonexistent dbname=x user=x'
expect 'no relation' 1 'which view\? give a RELATION' --limit 1
expect 'only a CONNINFO' 1 'looks like a connection string' "$nowhere"
expect 'only a URI' 1 'looks like a connection string' 'postgresql://x@nowhere/x'
expect 'too many arguments' 1 'too many arguments' v_fixture "$nowhere" extra
expect 'entity and relation' 1 'too many arguments' -e fixture v_fixture "$nowhere"
expect 'unknown option' 1 "unknown option '--bogus'" --bogus v_fixture "$nowhere"
expect 'missing value' 1 "'--limit' needs a value" v_fixture --limit
expect 'negative limit' 1 'limit' --limit -1 v_fixture "$nowhere"
expect 'limit not a number' 1 'limit' --limit 1x v_fixture "$nowhere"
expect 'where without type' 1 'type prefix' --where 'id gt 30' v_fixture "$nowhere"
expect 'where unknown op' 1 "unknown operator 'foo'" --where 'id foo num:1' v_fixture "$nowhere"
expect 'where too short' 1 'PATH OP TYPE:VALUE' --where 'id' v_fixture "$nowhere"
expect 'like with num' 1 'like takes a text' --where 'name like num:1' v_fixture "$nowhere"
expect 'bad number' 1 'not a value' --where 'id gt num:abc' v_fixture "$nowhere"
expect 'bad bool' 1 'not a value' --where 'ok eq bool:yes' v_fixture "$nowhere"
expect 'empty path element' 1 'invalid --where' --where 'a..b eq num:1' v_fixture "$nowhere"
expect 'bad in value' 1 'not a value' --in 'id num:1,x' v_fixture "$nowhere"
expect 'in without type' 1 '--in wants' --in 'id 1,2' v_fixture "$nowhere"
expect 'bad nulls' 1 'skip, empty or json-null' --nulls=bogus v_fixture "$nowhere"
expect 'chunk size 0' 1 'chunk-size' --chunk-size 0 v_fixture "$nowhere"
expect 'chunk size 65537' 1 'chunk-size' --chunk-size 65537 v_fixture "$nowhere"
expect 'max memory too small' 1 'max-memory' --max-memory 1K v_fixture "$nowhere"
expect 'max memory bad suffix' 1 'max-memory' --max-memory 4X v_fixture "$nowhere"
expect 'negative timeout' 1 'timeout' --timeout -5 v_fixture "$nowhere"
expect 'bad idle timeout' 1 "--idle-timeout wants milliseconds" --idle-timeout 1s v_fixture \
  "$nowhere"
expect 'bad cancel timeout' 1 "--cancel-timeout wants milliseconds" --cancel-timeout=-1 \
  v_fixture "$nowhere"
expect 'desc first' 1 'must follow an --order-by' --desc --order-by x v_fixture "$nowhere"
expect 'empty entity' 1 'invalid --entity' -e '' "$nowhere"
expect 'empty relation part' 1 'invalid relation' 'fw_schema.' "$nowhere"
expect 'bad conninfo' 1 'invalid connection option' v_fixture 'bogus=1'
expect 'unknown short option' 1 "unknown option '-x'" -x v_fixture "$nowhere"
expect 'flag with a value' 1 "option '--count' takes no value" --count=1 v_fixture "$nowhere"
expect 'bad port' 1 "-p/--port wants a port number" -p 99999 v_fixture
expect '-h needs a value' 1 "option '-h' needs a value" v_fixture -h
expect '-d and CONNINFO' 1 'too many arguments' -d "$nowhere" v_fixture "$nowhere"
# ---- the connection fails: exit 2 ----
expect 'connection refused' 2 '\(connect\).*refused' v_fixture \
  "host=127.0.0.1 port=1 dbname=x user=x sslmode=disable"
expect 'wrong password' 2 'SQLSTATE 28P01' v_fixture \
  "host=127.0.0.1 port=$FW_TEST_PORT dbname=$FW_TEST_DBNAME user=$FW_TEST_USER_SCRAM password=wrong sslmode=disable"

echo "fwire stream: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
