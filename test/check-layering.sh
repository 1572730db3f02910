#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The leaves (proto/ auth/ stream/ metrics/) are pure (docs/architecture.md "Layers"): no libuv,
# no socket headers, no OpenSSL SSL, and no leaf includes another leaf. Then lib/'s seams (below).
# Fails naming every offending line.
set -euo pipefail
src=${1:?usage: check-layering.sh SOURCE_ROOT}
cd "$src"
status=0
leaves=(proto auth stream metrics)
for leaf in "${leaves[@]}"; do
  [ -d "$leaf" ] || { echo "missing leaf folder $leaf/"; status=1; continue; }
  if grep -nE '#include *[<"](uv\.h|uv/|sys/socket\.h|netinet/|arpa/|netdb\.h|sys/un\.h|openssl/ssl\.h)' \
       "$leaf"/*.[ch]; then
    echo "LAYERING: $leaf/ includes I/O headers (only lib/ may)"; status=1
  fi
  # The shared vocabulary is common/fwire_base.h: a leaf that includes the public API (or any
  # lib/ header) points up into lib/.
  if grep -nE '#include *"(fwire\.h|\.\./lib/)' "$leaf"/*.[ch]; then
    echo "LAYERING: $leaf/ includes lib/ (use common/fwire_base.h)"; status=1
  fi
  for other in "${leaves[@]}"; do
    [ "$other" = "$leaf" ] && continue
    if grep -nE "#include *\"($other\.h|\.\./$other/)" "$leaf"/*.[ch]; then
      echo "LAYERING: $leaf/ includes $other/ (leaves never include each other)"; status=1
    fi
  done
done
# lib/ (issue 13): TLS records are moved in exactly one file; the connection never calls into the
# stream; ErrorResponse is decoded in one place; no file grows past ~700 lines.
if grep -nE 'fw__tls_(feed|feed_view|unlend|read|write|out|out_consumed|shutdown|has_buffered)\(' lib/*.c |
     grep -vE '^lib/(channel|tls)\.c:'; then
  echo "LAYERING: TLS records handled outside lib/channel.c"; status=1
fi
if grep -nE '#include *"stream_int\.h"|fw__stream_[a-z_]*\(' lib/conn.c lib/conn_attempt.c lib/conn_check.c \
     lib/channel.c lib/cancel.c lib/dialer.c; then
  echo "LAYERING: the connection calls into the stream (use conn->hooks)"; status=1
fi
if grep -nE 'fw__pq_error_fields\(|fw__pq_notice_next\(' lib/*.c | grep -vE '^lib/servermsg\.c:'; then
  echo "LAYERING: an ErrorResponse/NoticeResponse decoded outside lib/servermsg.c"; status=1
fi
for f in lib/*.c; do
  n=$(wc -l <"$f")
  if [ "$n" -gt 720 ]; then echo "LAYERING: $f has $n lines (split it; the bar is ~700)"; status=1; fi
done
[ $status -eq 0 ] && echo "layering: ${leaves[*]} are pure and independent; lib/ keeps its seams"
exit $status
