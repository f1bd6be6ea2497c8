#!/usr/bin/env bash
# The web console in a real browser (tests/browser/console.test.mjs): installs Debian's
# chromium and the committed playwright-core (npm ci) when missing, starts an embedded
# instance of the debug build that may point links at loopback (the test serves the
# targets), counts clicks within 200 ms and trusts 127.0.0.1 as a proxy (the test
# sends clicks "from" other addresses and countries), and runs the test. Screenshots go to
# target/console-screenshots; with UPDATE_DOCS=1 they also replace docs/img/'s.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if [ ! -d tests/browser/node_modules/playwright-core ]; then
    npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
fi

. scripts/embedded-instance.sh
start_embedded console \
    SHORTENER_LINKS__ALLOW_LOCAL_TARGETS=true \
    SHORTENER_ANALYTICS__FLUSH_INTERVAL_MS=200 \
    'SHORTENER_LIMITS__TRUSTED_PROXIES=["127.0.0.1"]'
shots=$PWD/target/console-screenshots
BASE_URL="$base" API_KEY="$key" SCREENSHOTS="$shots" node tests/browser/console.test.mjs || {
    echo "server log:" >&2
    tail -n 40 "$dir/server.log" >&2
    exit 1
}
if [ "${UPDATE_DOCS:-}" = 1 ]; then
    mkdir -p docs/img
    cp "$shots/console.png" "$shots/stats.png" "$shots/phone.png" docs/img/
fi
