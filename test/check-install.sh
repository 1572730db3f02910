#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs a build into a scratch DESTDIR and checks what a packager would: only fwire.h as a
# header, libfwire.so.N with its SONAME, libfwire.a, fwire.pc and libfwire.pc, and a shared
# library that exports fw_* symbols only (everything else is hidden). Then builds the README's
# consumer (section "Install and link": app.c) with each of its recipes through
# `pkg-config fwire` against what was installed: the cc line, the Makefile, the meson.build and
# the static link line, and runs each result.
set -euo pipefail
build=${1:?usage: check-install.sh BUILD_DIR [CC] [SANITIZERS]}
consumer_cc=${2:-cc}
sanitize=${3:-none} # a sanitizer build's library needs the same runtime in its consumer
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
meson install -C "$build" --destdir "$dest" --no-rebuild --quiet >/dev/null
status=0
san=()
[ "$sanitize" = none ] || san=(-fsanitize="$sanitize")
fail() { echo "install: $*"; status=1; }

headers=$(find "$dest" -name '*.h' -printf '%f\n' | sort)
[ "$headers" = "fwire.h" ] || fail "headers installed: '$headers' (want only fwire.h)"
so=$(find "$dest" -name 'libfwire.so.*.*' | head -n1)
[ -n "$so" ] || fail "no libfwire.so.N.N.N"
[ -n "$(find "$dest" -name libfwire.a)" ] || fail "no libfwire.a"
pc=$(find "$dest" -name libfwire.pc | head -n1)
[ -n "$pc" ] || fail "no libfwire.pc"
fwpc=$(find "$dest" -name fwire.pc | head -n1)
[ -n "$fwpc" ] || fail "no fwire.pc (pkg-config fwire)"
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
if [ -n "$fwpc" ]; then
  grep -q '^Libs: .*-lfwire' "$fwpc" || fail "fwire.pc has no -lfwire"
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
  if "$consumer_cc" "${san[@]}" -std=c11 -Wall -Wextra -Wpedantic -Werror -I"$inc" "$dest/consumer.c" \
       -L"$(dirname "$so")" -lfwire -o "$dest/consumer" &&
     LD_LIBRARY_PATH="$(dirname "$so")" "$dest/consumer"; then
    :
  else
    fail "a consumer of the installed header and library does not build or run"
  fi
fi

# ---- the README's consumer, built as the README says, against the installed files ----
readme=$(cd "$(dirname "$0")/.." && pwd)/README.md
snippet() { # NAME: the fenced block after "<!-- install-snippet: NAME -->" in the README
  awk -v m="<!-- install-snippet: $1 -->" '
    $0 == m {found = 1; next}
    found == 1 && /^```/ {found = 2; next}
    found == 2 && /^```/ {exit}
    found == 2 {print}' "$readme"
}
if [ -n "$fwpc" ] && [ -n "$so" ]; then
  # pkg-config as on the target: the .pc file's paths are the prefix's, under the DESTDIR
  export PKG_CONFIG_PATH
  PKG_CONFIG_PATH=$(dirname "$fwpc")
  export PKG_CONFIG_SYSROOT_DIR=$dest
  libdir=$(dirname "$so")
  work=$dest/consumer-readme
  mkdir -p "$work"
  for f in app.c meson.build Makefile static; do
    snippet "$f" >"$work/$f"
    [ -s "$work/$f" ] || fail "README has no '$f' snippet under \"Install and link\""
  done
  pkg-config --exists fwire || fail "pkg-config fwire: $(pkg-config --print-errors fwire 2>&1)"
  case " $(pkg-config --libs libfwire) " in *" -lfwire "*) ;; *) fail "pkg-config libfwire: no -lfwire" ;; esac
  # runs APP: with no server there (a socket directory that does not exist) it must fail to
  # connect, exit 2 and say so: linked, loaded and working
  runs() {
    local out rc
    out=$(LD_LIBRARY_PATH=$libdir "$1" "host=/nonexistent dbname=x user=x" v_x 2>&1) && rc=0 ||
      rc=$?
    [ "$rc" -eq 2 ] && grep -q '^connect: ' <<<"$out" ||
      fail "$2: the consumer ran with exit $rc: $out"
  }
  cc_all=("$consumer_cc" "${san[@]}")
  # 1. the cc line
  if (cd "$work" && "${cc_all[@]}" -o app-cc app.c $(pkg-config --cflags --libs fwire)); then
    runs "$work/app-cc" "cc line"
  else
    fail "cc app.c \$(pkg-config --cflags --libs fwire) does not build"
  fi
  # 2. the Makefile (make's built-in rule for app from app.c)
  if command -v make >/dev/null; then
    if make -s -C "$work" -f Makefile CC="${cc_all[*]}" app >/dev/null; then
      runs "$work/app" "Makefile"
    else
      fail "the README's Makefile does not build app"
    fi
  else
    echo "install: make not installed, the Makefile recipe is not tried"
  fi
  # 3. the meson.build, a project of its own
  mkdir -p "$work/meson-src"
  cp "$work/app.c" "$work/meson.build" "$work/meson-src/"
  if CC="${cc_all[*]}" meson setup "$work/meson-build" "$work/meson-src" >"$work/meson.log" 2>&1 &&
     meson compile -C "$work/meson-build" >>"$work/meson.log" 2>&1; then
    runs "$work/meson-build/app" "meson.build"
  else
    fail "the README's meson.build does not build: $(tail -n 20 "$work/meson.log")"
  fi
  # 4. the static link line: no libfwire.so needed at run time
  static_cmd=$(grep -v '^#' "$work/static")
  if (cd "$work" && CC_LINE="${cc_all[*]}" bash -c "${static_cmd/#cc /\$CC_LINE }"); then
    needed=$(readelf -d "$work/app" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | tr '\n' ' ')
    case " $needed" in *" libfwire.so"*) fail "the static link line gave an app that needs libfwire.so ($needed)" ;; esac
    runs "$work/app" "static link line"
  else
    fail "the README's static link line does not build"
  fi
  [ $status -eq 0 ] && echo "install: the README's consumer builds and runs with the cc line, make, meson and the static link line"
fi
exit $status
