#!/usr/bin/env bash
# Click analytics: what it costs the redirect path, and how many clicks/s the worker
# counts, measured in one run. Distributed mode (PostgreSQL), L1 cache on.
#
#   off      redirects with analytics off                               → req/s
#   memory   redirects with the in-process queue and worker             → req/s; clicks
#            counted, and the worker's rate while it shares the machine with the load
#   mem@10k  the same at a constant 10,000 redirects/s (the design load): every click
#            should be counted
#   redis    redirects with Redis Streams and no worker in serve        → req/s; then
#            `shortener worker` alone drains the backlog                → worker clicks/s
#
#   loadtest/analytics.sh            # 20 s per scenario, 64 connections
#   DURATION=10 loadtest/analytics.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-20}
CONNS=${CONNS:-64}
PORT=${PORT:-18080}
REDIS_PORT=${REDIS_PORT:-16379}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
DB=shortener_bench_clicks

. loadtest/lib.sh
prepare
setup_work
pids=()
on_exit() { # run by lib.sh's exit trap: the servers and workers this script started
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}

start_redis "$REDIS_PORT"
pids+=("$redis_pid")

drop_database "$DB" 2>/dev/null
cat >"$work/pg.toml" <<TOML
public_url = "$base"
[redis]
url = "redis://127.0.0.1:$REDIS_PORT"
key_prefix = "bench:"
[[shards]]
name = "s0"
url = "$PG/$DB"
from = "2024-01-01T00:00:00Z"
$(codes_toml)
TOML
"$BIN" migrate --config "$work/pg.toml" >/dev/null 2>&1

server_pid=
start_server() {
    env "$@" "$BIN" serve --config "$work/pg.toml" --listen "127.0.0.1:$PORT" >"$work/server.log" 2>&1 &
    server_pid=$!
    wait_ready "$base" "$work/server.log"
}
stop_server() {
    kill "$server_pid"
    wait "$server_pid" 2>/dev/null || true
}
clicks() { psql "$PG/$DB" -Atqc "SELECT COALESCE(sum(total), 0) FROM click_daily"; }
summarise() { # req/s p99 errors count_302
    oha_summary "$1" | awk '{print $1, $3, $4, $5}'
}
load() { # output.json
    oha -z "${DURATION}s" -c "$CONNS" --no-tui --output-format json --redirect 0 \
        --urls-from-file "$work/urls.txt" >"$1"
}
# Waits until the click count stops growing for 2 s; prints "count seconds-since-$1".
settle() {
    local since=$1 last=-1 now stable=0 last_change
    last_change=$(date +%s.%N)
    while [ "$stable" -lt 10 ]; do
        now=$(clicks)
        if [ "$now" != "$last" ]; then last=$now; stable=0; last_change=$(date +%s.%N); else stable=$((stable + 1)); fi
        sleep 0.2
    done
    echo "$last $(echo "$last_change - $since" | bc)"
}

# Seed 10,000 links (analytics off, so nothing is counted yet).
start_server SHORTENER_ANALYTICS__ENABLED=false
oha -n 10000 -c 32 --no-tui --output-format quiet -m POST -H 'content-type: application/json' \
    -d '{"url":"https://example.com/landing"}' "$base/api/v1/links"
python3 loadtest/codes.py postgres "$PG/$DB" "$base" 10000 "$work/urls.txt"

echo "== off" >&2
oha -z 3s -c "$CONNS" --no-tui --output-format quiet --redirect 0 --urls-from-file "$work/urls.txt"
load "$work/off.json"
read -r off_rps off_p99 off_err _ <<<"$(summarise "$work/off.json")"
stop_server

echo "== memory" >&2
start_server
oha -z 3s -c "$CONNS" --no-tui --output-format quiet --redirect 0 --urls-from-file "$work/urls.txt"
psql "$PG/$DB" -qc "TRUNCATE click_events, click_daily, click_dims"
t0=$(date +%s.%N)
load "$work/memory.json"
read -r mem_rps mem_p99 mem_err mem_302 <<<"$(summarise "$work/memory.json")"
read -r mem_counted mem_secs <<<"$(settle "$t0")"

echo "== memory at 10,000/s" >&2
psql "$PG/$DB" -qc "TRUNCATE click_events, click_daily, click_dims"
oha -z "${DURATION}s" -c "$CONNS" -q 10000 --latency-correction --no-tui --output-format json \
    --redirect 0 --urls-from-file "$work/urls.txt" >"$work/rate.json"
read -r rate_rps rate_p99 rate_err rate_302 <<<"$(summarise "$work/rate.json")"
read -r rate_counted _ <<<"$(settle "$(date +%s.%N)")"
stop_server

echo "== redis" >&2
start_server SHORTENER_QUEUE__KIND=redis SHORTENER_ANALYTICS__WORKER_IN_SERVE=false
oha -z 3s -c "$CONNS" --no-tui --output-format quiet --redirect 0 --urls-from-file "$work/urls.txt"
sleep 1 # let the producer push the warm-up's clicks before they are cleared
redis-cli -p "$REDIS_PORT" del bench:clicks >/dev/null
psql "$PG/$DB" -qc "TRUNCATE click_events, click_daily, click_dims"
load "$work/redis.json"
read -r red_rps red_p99 red_err red_302 <<<"$(summarise "$work/redis.json")"
stop_server
produced=$(redis-cli -p "$REDIS_PORT" xlen bench:clicks)
t1=$(date +%s.%N)
SHORTENER_QUEUE__KIND=redis "$BIN" worker --config "$work/pg.toml" >"$work/worker.log" 2>&1 &
worker_pid=$!
pids+=("$worker_pid")
read -r red_counted red_secs <<<"$(settle "$t1")"
kill "$worker_pid"; wait "$worker_pid" 2>/dev/null || true

printf '\nclick analytics, distributed mode, L1 on, %ss of redirects per scenario, %s connections, %s cores\n' "$DURATION" "$CONNS" "$(nproc)"
printf '%-8s %9s %8s %7s %10s %10s %12s\n' queue req/s p99_ms errors redirects counted worker_c/s
printf '%-8s %9s %8s %7s %10s %10s %12s\n' off "$off_rps" "$off_p99" "$off_err" - - -
printf '%-8s %9s %8s %7s %10s %10s %12s\n' memory "$mem_rps" "$mem_p99" "$mem_err" "$mem_302" "$mem_counted" "$(echo "$mem_counted / $mem_secs" | bc)"
printf '%-8s %9s %8s %7s %10s %10s %12s\n' mem@10k "$rate_rps" "$rate_p99" "$rate_err" "$rate_302" "$rate_counted" -
printf '%-8s %9s %8s %7s %10s %10s %12s\n' redis "$red_rps" "$red_p99" "$red_err" "$red_302" "$red_counted" "$(echo "$red_counted / $red_secs" | bc)"
printf 'memory: worker rate while sharing the machine with the load (counted / time to the last count);\n'
printf 'redis: %s clicks in the stream drained by `shortener worker` alone, server stopped.\n' "$produced"
printf 'analytics on/off redirect throughput: memory %s, redis %s\n' \
    "$(echo "scale=2; $mem_rps / $off_rps" | bc)" "$(echo "scale=2; $red_rps / $off_rps" | bc)"
