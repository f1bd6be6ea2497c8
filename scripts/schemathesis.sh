#!/usr/bin/env bash
# Runs schemathesis (PyPI) against the OpenAPI document of a real instance: every
# operation gets up to ST_MAX_EXAMPLES generated requests (examples, coverage, fuzzing
# and stateful create → read → stats → delete chains), authenticated with a real key.
# Fails on any 5xx and on any response that does not match the document.
#
#   scripts/schemathesis.sh            # embedded mode, 50 examples per operation
#   ST_MAX_EXAMPLES=200 ST_SEED=7 scripts/schemathesis.sh
#
# positive_data_acceptance is left out on purpose: some rules cannot be said in a JSON
# schema (expires_at in the future, a stats range of at most 366 days, the blocklist,
# the service's own host, reserved aliases), so schema-valid data can rightly get 422.
set -euo pipefail
cd "$(dirname "$0")/.."

ST_VERSION=4.32.5
if ! command -v st >/dev/null || ! st --version 2>/dev/null | grep -q "$ST_VERSION"; then
    pip install -q "schemathesis==$ST_VERSION"
fi
cargo build -q --bin shortener
bin=target/debug/shortener

dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
# The key first: `keys create` also creates and migrates the file.
key=$("$bin" --data-dir "$dir" keys create --tenant schemathesis 2>/dev/null | grep '^shk_')
# Rate limits off: the run must reach the handlers, not the limiter.
SHORTENER_LIMITS__ENABLED=false SHORTENER_LOG__REQUESTS=false \
    "$bin" --data-dir "$dir" --listen "127.0.0.1:$port" serve >"$dir/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$dir"' EXIT
ready=
for _ in $(seq 300); do
    if curl -fs "$base/readyz" >/dev/null 2>&1; then ready=1; break; fi
    sleep 0.1
done
[ -n "$ready" ] || { echo "schemathesis: the server did not become ready" >&2; cat "$dir/server.log" >&2; exit 1; }

timeout 900 st run "$base/api/v1/openapi.json" \
    --header "Authorization: Bearer $key" \
    --checks all --exclude-checks positive_data_acceptance \
    --max-examples "${ST_MAX_EXAMPLES:-50}" \
    --seed "${ST_SEED:-20261122}" \
    --wait-for-schema 10 --no-color
if grep -E '"level":"ERROR"| ERROR ' "$dir/server.log"; then
    echo "schemathesis: the server logged errors (above)" >&2
    exit 1
fi
