#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The leaves (proto/ auth/ stream/ metrics/) are pure (DESIGN.md "Layers"): no libuv, no socket
# headers, no OpenSSL SSL, and no leaf includes another leaf. Fails naming every offending line.
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
[ $status -eq 0 ] && echo "layering: ${leaves[*]} are pure and independent"
exit $status
