#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test/gateway/run-gateway-test.sh FWIRE_BINARY GROUP: runs one group of gateway_test.py with a
# python3 that has the websockets module (Debian's python3-websockets lives in /usr/bin/python3,
# which a pyenv or venv python3 earlier in PATH may hide). Without one: exit 77, "skipped".
set -u
here=$(cd "$(dirname "$0")" && pwd)
for py in /usr/bin/python3 python3; do
    if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import websockets' 2>/dev/null; then
        exec "$py" -u "$here/gateway_test.py" "$@"
    fi
done
echo "python3 with the websockets module not found (apt-get install python3-websockets): skipped"
exit 77
