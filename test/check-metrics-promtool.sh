#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# promtool (Debian package prometheus) lints the registry's rendered exposition: the format
# checks of the real consumer, not only our own golden text. Skips (77) when promtool is absent.
set -euo pipefail
exe=${1:?usage: check-metrics-promtool.sh TEST_METRICS_REGISTRY}
command -v promtool >/dev/null || { echo "promtool not installed: skipped"; exit 77; }
text=$("$exe" --print-exposition)
[ -n "$text" ] || { echo "empty exposition"; exit 1; }
printf '%s\n' "$text" | promtool check metrics
