#!/usr/bin/env bash
# Redirect throughput by cache tier, measured in one run, distributed mode (PostgreSQL):
#   l1        L1 hits (L1 on, Redis on; warmed first)
#   redis     Redis hits (L1 off)
#   database  no cache at all (L1 off, no Redis)
#   redis-killed  L1 off, Redis on, and Redis killed a third of the way in and started
#             again at two thirds: errors must stay 0
#
#   loadtest/cache.sh                 # 30 s per scenario, 64 connections
#   DURATION=10 loadtest/cache.sh
#
# Uses a private redis-server on REDIS_PORT (default 16379) so it can kill it. Seeds
# links with a short shorten burst and redirects over 10,000 random codes of them.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-30}
CONNS=${CONNS:-64}
PORT=${PORT:-18080}
REDIS_PORT=${REDIS_PORT:-16379}
PG=${PG:-postgres://postgres@127.0.0.1:5432}

. loadtest/lib.sh
prepare
setup_work

start_server() { # env assignments for the server
    env "$@" "$BIN" serve --config "$work/pg.toml" --listen "127.0.0.1:$PORT" >"$work/server.log" 2>&1 &
    server_pid=$!
    wait_ready "$base" "$work/server.log"
}
stop_server() { stop_serving; }

summarise() { # req/s p50 p99 errors statuses
    oha_summary "$1" | awk '{print $1, $2, $3, $4, $6}'
}

redirect_load() { # seconds output.json
    oha -z "${1}s" -c "$CONNS" --no-tui --output-format json --redirect 0 \
        --urls-from-file "$work/urls.txt" >"$2"
}

pg_config shortener_bench_cache

# Seed: a few seconds of shortening, then 10,000 random codes.
start_server SHORTENER_CACHE__L1=false
oha -z 5s -c "$CONNS" --no-tui --output-format quiet -m POST -H 'content-type: application/json' \
    -d '{"url":"https://example.com/landing?utm_source=loadtest"}' "$base/api/v1/links"
stop_server
python3 loadtest/codes.py postgres "$PG/shortener_bench_cache" "$base" 10000 "$work/urls.txt"

rows=()
REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
PREFIX_ENV=SHORTENER_REDIS__KEY_PREFIX="bench:$$:"

echo "== l1" >&2
start_redis "$REDIS_PORT"
start_server SHORTENER_REDIS__URL="$REDIS_URL" "$PREFIX_ENV"
redirect_load 3 "$work/warm.json"
redirect_load "$DURATION" "$work/l1.json"
rows+=("l1 $(summarise "$work/l1.json")")
stop_server

echo "== redis" >&2
start_server SHORTENER_CACHE__L1=false SHORTENER_REDIS__URL="$REDIS_URL" "$PREFIX_ENV"
redirect_load 3 "$work/warm.json"
redirect_load "$DURATION" "$work/redis.json"
rows+=("redis $(summarise "$work/redis.json")")
stop_server

echo "== database" >&2
start_server SHORTENER_CACHE__L1=false
redirect_load "$DURATION" "$work/db.json"
rows+=("database $(summarise "$work/db.json")")
stop_server

echo "== redis-killed" >&2
start_server SHORTENER_CACHE__L1=false SHORTENER_REDIS__URL="$REDIS_URL" "$PREFIX_ENV"
redirect_load 3 "$work/warm.json"
third=$((DURATION / 3))
(sleep "$third"; kill "$redis_pid"; echo "redis killed at ${third}s" >&2) &
killer=$!
(sleep $((2 * third)); redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no >/dev/null & echo $! >"$work/redis2.pid"; echo "redis restarted at $((2 * third))s" >&2) &
restarter=$!
redirect_load "$DURATION" "$work/killed.json"
wait "$killer" "$restarter" 2>/dev/null || true
rows+=("redis-killed $(summarise "$work/killed.json")")
redis_pid=$(cat "$work/redis2.pid" 2>/dev/null || true)
grep -E "circuit (opened|closed)|replayed|subscription" "$work/server.log" | sed 's/\x1b\[[0-9;]*m//g' | cut -c1-160 >&2 || true
stop_server

printf '\nredirects, distributed mode, %ss per scenario, %s connections, oha closed loop, %s cores\n' "$DURATION" "$CONNS" "$(nproc)"
printf '%-13s %9s %9s %9s %7s  %s\n' tier req/s p50_ms p99_ms errors statuses
for row in "${rows[@]}"; do
    # shellcheck disable=SC2086
    printf '%-13s %9s %9s %9s %7s  %s\n' $row
done
