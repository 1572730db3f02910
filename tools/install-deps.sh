#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs everything fwire needs to build and test on Debian 12, from Debian's own packages.
# Root runs apt-get directly; anyone else goes through sudo.
set -euo pipefail

packages=(
  # build
  meson ninja-build pkg-config gcc clang libc6-dev binutils
  # the library's dependencies
  libuv1-dev libssl-dev
  # tests: cmocka, a real PostgreSQL 15 for the integration tests, openssl for its certificates,
  # clang's sanitizer and libFuzzer runtimes, valgrind for the leak check
  libcmocka-dev postgresql-15 postgresql-client-15 openssl libclang-rt-14-dev valgrind prometheus
  # libpq: the oracle of one conninfo test and the comparison benchmarks; never linked into fwire
  libpq-dev
  util-linux procps
  # test/check-install.sh builds the README's consumer with its Makefile; dpkg-dev gives the
  # packager build of test/run-all.sh Debian's CFLAGS (dpkg-buildflags)
  make dpkg-dev
  # fwire serve: WebSocket framing (wslay) and HTTP request parsing (http-parser), both kept
  # Debian libraries; its tests: Python websockets, and headless Chromium driven by
  # playwright-core (from the npm registry, installed by test/gateway/) for the web page
  libwslay-dev libhttp-parser-dev python3 python3-websockets chromium nodejs
  # the benchmark runner's plots
  gnuplot-nox
  # test-only: PgBouncer 1.18 in front of the test server (test/with-pgbouncer.sh) and HAProxy
  # in front of two gateways (test/check-haproxy.sh, docs/haproxy.md); never linked
  pgbouncer haproxy
)

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: run as root or install sudo" >&2; exit 1; }
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${packages[@]}"
# Debian's nodejs comes without npm; other builds of nodejs bundle it.
command -v npm >/dev/null || "${sudo[@]}" apt-get install -y -q --no-install-recommends npm
