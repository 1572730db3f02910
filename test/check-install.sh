#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs a build into a scratch DESTDIR and checks what a packager would: only fwire.h as a
# header, libfwire.so.N with its SONAME, libfwire.a, libfwire.pc, and a shared library that
# exports fw_* symbols only (everything else is hidden).
set -euo pipefail
build=${1:?usage: check-install.sh BUILD_DIR [CC] [SANITIZERS]}
consumer_cc=${2:-cc}
sanitize=${3:-none} # a sanitizer build's library needs the same runtime in its consumer
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
meson install -C "$build" --destdir "$dest" --no-rebuild --quiet >/dev/null
status=0
fail() { echo "install: $*"; status=1; }

headers=$(find "$dest" -name '*.h' -printf '%f\n' | sort)
[ "$headers" = "fwire.h" ] || fail "headers installed: '$headers' (want only fwire.h)"
so=$(find "$dest" -name 'libfwire.so.*.*' | head -n1)
[ -n "$so" ] || fail "no libfwire.so.N.N.N"
[ -n "$(find "$dest" -name libfwire.a)" ] || fail "no libfwire.a"
pc=$(find "$dest" -name libfwire.pc | head -n1)
[ -n "$pc" ] || fail "no libfwire.pc"
if [ -n "$so" ]; then
  soname=$(readelf -d "$so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
  [[ "$soname" =~ ^libfwire\.so\.[0-9]+$ ]] || fail "SONAME is '$soname'"
  [ -e "$(dirname "$so")/$soname" ] || fail "no $soname link next to $so"
  exported=$(nm -D --defined-only "$so" | awk '{print $3}' | sort)
  [ -n "$exported" ] || fail "exports nothing"
  bad=$(echo "$exported" | grep -v '^fw_' || true)
  [ -z "$bad" ] || fail "exports non-fw_ symbols: $(echo $bad)"
  internal=$(echo "$exported" | grep '^fw__' || true)
  [ -z "$internal" ] || fail "exports internal fw__ symbols: $(echo $internal)"
  echo "install: $(basename "$so") SONAME $soname exports: $(echo $exported)"
fi
if [ -n "$pc" ]; then
  grep -q '^Libs: .*-lfwire' "$pc" || fail "libfwire.pc has no -lfwire"
fi
# A consumer compiled only against what was installed, linked to the shared library and run.
inc=$(dirname "$(find "$dest" -name fwire.h | head -n1)")
if [ -n "$so" ] && [ -d "$inc" ]; then
  cat >"$dest/consumer.c" <<'C'
#include <fwire.h>
#include <stdio.h>
int main(void)
{
    printf("fwire %s: %s\n", fw_version_string(), fw_strerror(FW_EPROTO_SHORT));
    return fw_version() == FW_VERSION_HEX ? 0 : 1;
}
C
  san=()
  [ "$sanitize" = none ] || san=(-fsanitize="$sanitize")
  if "$consumer_cc" "${san[@]}" -std=c11 -Wall -Wextra -Wpedantic -Werror -I"$inc" "$dest/consumer.c" \
       -L"$(dirname "$so")" -lfwire -o "$dest/consumer" &&
     LD_LIBRARY_PATH="$(dirname "$so")" "$dest/consumer"; then
    :
  else
    fail "a consumer of the installed header and library does not build or run"
  fi
fi
exit $status
