#!/usr/bin/env bash
# Instructions the server process executes per cached redirect (L1 hit), and those of
# the redirect handler alone (inclusive), counted by
# valgrind's callgrind (this VM exposes no hardware counters to perf): the server runs
# under callgrind, warms up, its counters are zeroed, it serves REQUESTS redirects, the
# worker gets SETTLE_S to write what it holds (its work per click counts too: it runs in
# the same process), and the counters are dumped. With clicks off, and with clicks
# counted through the in-process queue, and through Redis Streams. Instruction counts are stable on this machine
# when times are not, so this is how a change to the redirect path is compared.
# Embedded mode; everything on 127.0.0.1.
#
#   loadtest/instructions.sh
#   SERVICE_BIN=/path/to/other/build loadtest/instructions.sh
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-20000}
# The worker flushes every BATCH clicks and never on a timer, so that the counted
# redirects are always written in the same number of flushes (REQUESTS / BATCH): with
# the 5 s window, how many flushes fell inside the counted run moved the per-redirect
# figure by up to 8% between two runs of one binary. The warm-up sends a multiple of
# BATCH clicks (2,000 plus SEED), so no partial batch is carried into the count.
BATCH=${BATCH:-1000}
export SHORTENER_ANALYTICS__BATCH_SIZE=$BATCH SHORTENER_ANALYTICS__FLUSH_INTERVAL_MS=3600000 \
    SHORTENER_QUEUE__CLAIM_IDLE_MS=7300000
# Links seeded; every one is requested once before counting, so that the counted
# redirects are all L1 hits (a random warm-up left most of them misses).
SEED=${SEED:-5000}
SETTLE_S=${SETTLE_S:-8}
CONNS=${CONNS:-64}
PORT=${PORT:-18080}

. loadtest/lib.sh
prepare
command -v valgrind >/dev/null || apt-get install -y -qq valgrind >/dev/null
setup_work
printf 'public_url = "%s"\ndata_dir = "%s/data"\n' "$base" "$work" >"$work/e.toml"
"$BIN" seed --config "$work/e.toml" --count "$SEED" --codes "$work/codes.txt" >&2
sed "s|^|$base/|" "$work/codes.txt" >"$work/urls.txt"

count() { # label [VAR=value …]
    local label=$1 pid n
    shift
    # Another server still on the port would answer the readiness check (and 404
    # every seeded code): refuse to count it.
    if curl -sf "$base/readyz" >/dev/null 2>&1; then
        echo "port $PORT is taken by another server" >&2
        exit 1
    fi
    env "$@" valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" \
        "$BIN" serve --config "$work/e.toml" --listen "127.0.0.1:$PORT" >"$work/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 600); do curl -sf "$base/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
    oha -n 2000 -c 8 --no-tui --output-format quiet --redirect 0 --urls-from-file "$work/urls.txt"
    # Every code once (curl reuses its connection across the URLs of one call).
    xargs -n 250 curl -s <"$work/urls.txt" >/dev/null
    sleep "$SETTLE_S"
    callgrind_control -z "$server_pid" >/dev/null
    oha -n "$REQUESTS" -c 8 --no-tui --output-format quiet --redirect 0 --urls-from-file "$work/urls.txt"
    sleep "$SETTLE_S"
    callgrind_control -d "$server_pid" >/dev/null
    stop_serving
    n=$(cat "$work"/cg.out.* 2>/dev/null | awk '/^(summary|totals):/ {print $2}' | sort -n | tail -1)
    # The handler alone (inclusive: resolving through the cache, offering the click,
    # building the answer), without the runtime's and the server's share, which moves
    # with scheduling from run to run.
    h=$(callgrind_annotate --inclusive=yes "$(ls -S "$work"/cg.out.* | head -1)" 2>/dev/null |
        awk '/src\/http\/redirect.rs:shortener::http::redirect::redirect::\{\{closure\}\} \[/ {gsub(",", "", $1); print $1; exit}' || true)
    rm -f "$work"/cg.out*
    printf '%-28s %14s instructions  %8.0f per redirect  %6.0f in the handler\n' "$label" "$n" \
        "$(echo "$n / $REQUESTS" | bc -l)" "$(echo "${h:-0} / $REQUESTS" | bc -l)"
}
echo "$BIN, $REQUESTS redirects, $CONNS connections"
count "clicks off" SHORTENER_ANALYTICS__ENABLED=false
count "clicks counted (memory)"
# Redis Streams, producer and worker both in the serve process; Redis on 127.0.0.1:6379.
count "clicks counted (redis)" SHORTENER_QUEUE__KIND=redis \
    SHORTENER_REDIS__URL=redis://127.0.0.1:6379 SHORTENER_REDIS__KEY_PREFIX="instr:$$:"
