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
. scripts/embedded-instance.sh
# Rate limits off: the run must reach the handlers, not the limiter.
start_embedded schemathesis SHORTENER_LIMITS__ENABLED=false

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
