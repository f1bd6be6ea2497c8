#!/usr/bin/env bash
# What rate limiting costs the redirect path: L1-hit redirects with limits off, then on
# with quotas so large nothing is refused (the check itself is what is measured), one
# run, embedded mode.
#
#   loadtest/limits.sh            # 20 s per scenario, 64 connections
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-20}
CONNS=${CONNS:-64}
PORT=${PORT:-18080}
. loadtest/lib.sh
prepare
setup_work
start_server() {
    env "$@" "$BIN" serve --data-dir "$work/data" --listen "127.0.0.1:$PORT" >"$work/server.log" 2>&1 &
    server_pid=$!
    wait_ready "$base" "$work/server.log"
}
stop_server() { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=; }

start_server SHORTENER_ANALYTICS__ENABLED=false
oha -n 1000 -c 16 --no-tui --output-format quiet -m POST -H 'content-type: application/json' \
    -d '{"url":"https://example.com/"}' "$base/api/v1/links"
stop_server
python3 loadtest/codes.py sqlite "$work/data/shortener.db" "$base" 1000 "$work/urls.txt"

rows=()
for mode in off on; do
    start_server SHORTENER_ANALYTICS__ENABLED=false SHORTENER_LIMITS__ENABLED=$([ $mode = on ] && echo true || echo false) \
        SHORTENER_LIMITS__REDIRECT_PER_SECOND=100000000 SHORTENER_LIMITS__REDIRECT_BURST=100000000
    oha -z 3s -c "$CONNS" --no-tui --output-format quiet --redirect 0 --urls-from-file "$work/urls.txt"
    oha -z "${DURATION}s" -c "$CONNS" --no-tui --output-format json --redirect 0 \
        --urls-from-file "$work/urls.txt" >"$work/$mode.json"
    rows+=("$mode $(oha_summary "$work/$mode.json")")
    stop_server
done
printf '\nL1-hit redirects, embedded, analytics off, %ss, %s connections, %s cores\n' "$DURATION" "$CONNS" "$(nproc)"
printf '%-7s %9s %8s %8s %7s  %s\n' limits req/s p50_ms p99_ms errors statuses
for row in "${rows[@]}"; do
    # shellcheck disable=SC2086
    set -- $row
    printf '%-7s %9s %8s %8s %7s  %s\n' "$1" "$2" "$3" "$4" "$5" "$7"
done
off=$(echo "${rows[0]}" | awk '{print $2}'); on=$(echo "${rows[1]}" | awk '{print $2}')
printf 'limits on/off: %s\n' "$(echo "scale=3; $on / $off" | bc)"
