#!/usr/bin/env bash
# Shorten and redirect throughput and latency with no cache, embedded (SQLite) and
# distributed (two PostgreSQL shards) measured in one run, load from oha on loopback.
#
#   loadtest/baseline.sh            # 30 s per scenario, 64 connections
#   DURATION=10 CONNS=32 loadtest/baseline.sh
#
# Each mode: start the release binary, shorten for DURATION (closed loop, CONNS
# connections: the rate it sustains), then redirect for DURATION over 10,000 random codes
# of the links just created. Prints one table. Everything binds 127.0.0.1 and stops by
# itself.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-30}
CONNS=${CONNS:-64}
PORT=${PORT:-18080}
PG=${PG:-postgres://postgres@127.0.0.1:5432}

. loadtest/lib.sh
prepare
setup_work

start_server() {
    # The cache is off: this measures the storage path itself.
    SHORTENER_CACHE__L1=false "$BIN" serve --listen "127.0.0.1:$PORT" "$@" >"$work/server.log" 2>&1 &
    server_pid=$!
    wait_ready "$base" "$work/server.log"
}

stop_server() { stop_serving; }

peak_rss_mb() {
    awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$server_pid/status"
}

summarise() { # req/s p50 p99 errors statuses
    oha_summary "$1" | awk '{print $1, $2, $3, $4, $6}'
}

rows=()
measure() { # mode
    local mode=$1
    oha -z "${DURATION}s" -c "$CONNS" --no-tui --output-format json -m POST \
        -H 'content-type: application/json' \
        -d '{"url":"https://example.com/landing?utm_source=loadtest"}' \
        "$base/api/v1/links" >"$work/shorten.json"
    rows+=("$mode shorten $(summarise "$work/shorten.json")")
    if [ "$mode" = embedded ]; then
        python3 loadtest/codes.py sqlite "$work/data/shortener.db" "$base" 10000 "$work/urls.txt"
    else
        python3 loadtest/codes.py postgres "$PG/shortener_bench_s0,$PG/shortener_bench_s1" "$base" 10000 "$work/urls.txt"
    fi
    oha -z "${DURATION}s" -c "$CONNS" --no-tui --output-format json --redirect 0 \
        --urls-from-file "$work/urls.txt" >"$work/redirect.json"
    rows+=("$mode redirect $(summarise "$work/redirect.json")")
    rows[-1]+=" rss=$(peak_rss_mb)MiB"
}

echo "== embedded (SQLite, synchronous=full)" >&2
start_server --data-dir "$work/data"
measure embedded
stop_server

echo "== distributed (2 PostgreSQL shards)" >&2
for db in shortener_bench_s0 shortener_bench_s1; do drop_database "$db"; done
cat >"$work/pg.toml" <<TOML
public_url = "$base"
[[shards]]
name = "s0"
url = "$PG/shortener_bench_s0"
from = "2024-01-01T00:00:00Z"
[[shards]]
name = "s1"
url = "$PG/shortener_bench_s1"
from = "2027-01-01T00:00:00Z"
$(codes_toml)
TOML
"$BIN" migrate --config "$work/pg.toml" >/dev/null
start_server --config "$work/pg.toml"
measure distributed
stop_server

printf '\nduration %ss per scenario, %s connections, oha closed loop, %s cores, no cache\n' "$DURATION" "$CONNS" "$(nproc)"
printf '%-12s %-9s %9s %9s %9s %7s  %s\n' mode scenario req/s p50_ms p99_ms errors statuses
for row in "${rows[@]}"; do
    # shellcheck disable=SC2086
    printf '%-12s %-9s %9s %9s %9s %7s  %s %s\n' $row
done
