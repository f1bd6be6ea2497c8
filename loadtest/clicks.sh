#!/usr/bin/env bash
# What counting clicks costs, in one run: the click pipeline's table of
# docs/performance.md. Distributed mode (one PostgreSQL shard, Redis as L2 and, in the
# redis rows, as the click stream), 100,000 seeded links, L1 warm.
#
# For each click mode (off, memory, redis):
#   closed     cached redirects, closed loop, CONNS connections    → req/s, share of "off"
#   mixed      constant RATE/s for MIXED s: 95% redirects over HOT codes, 5% shortens,
#              two oha processes with --latency-correction        → p99 of each, errors
#   then waits until the worker has counted every click and reports, for the mixed run:
#   redirects answered, clicks counted, click-table row writes per 1,000 clicks
#   (pg_stat_user_tables), and the CPU seconds PostgreSQL (postmaster and children,
#   from /proc) and Redis (INFO cpu) used from the start of the mixed run until every
#   click was counted (compare with the "off" row: the shortens' share).
# Then the worker alone: DRAIN clicks put on the stream with no worker running, then
# counted by `shortener worker` into PostgreSQL and into SQLite → clicks/s, PostgreSQL
# CPU seconds per million clicks, and Redis CPU seconds per million clicks for the
# stream alone (appending and delivering them).
#
#   loadtest/clicks.sh                        # the release build of this checkout
#   EMBEDDED=1 loadtest/clicks.sh             # the embedded mode (SQLite; off and memory)
#   SERVICE_BIN=/path/to/other loadtest/clicks.sh   # another build (before/after)
#   MODES="memory" MIXED=30 loadtest/clicks.sh
#   SKEW=zipf MODES="off memory" loadtest/clicks.sh   # code k of HOT picked ∝ 1/k, as k6's lib.js
#   WORKER_ALONE=0 loadtest/clicks.sh         # without the worker-alone runs
#   GEO_DB=countries.mmdb loadtest/clicks.sh  # every process places clicks with [geo] database
#   GEO_DB=npm loadtest/clicks.sh             # … with ip-location-db's country file (CC0/CC BY,
#                                             # `npm pack`ed into the work directory)
#   SPREAD=1 MODES= loadtest/clicks.sh        # the worker alone, its stream filled by wrk
#                                             # (loadtest/wrk/spread.lua) from random client
#                                             # networks through a trusted proxy, as browsers:
#                                             # a new network and a new visitor almost every click
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-20}
MIXED=${MIXED:-60}
CONNS=${CONNS:-64}
RATE=${RATE:-10000}
SEED=${SEED:-100000}
HOT=${HOT:-20000}
DRAIN=${DRAIN:-300000}
if [ -n "${EMBEDDED:-}" ]; then MODES=${MODES-off memory}; else MODES=${MODES-off memory redis}; fi
PORT=${PORT:-18080}
REDIS_PORT=${REDIS_PORT:-16379}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
DB=shortener_bench_clicks

. loadtest/lib.sh
prepare
setup_work
[ "${SPREAD:-0}" = 1 ] && { command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null; }
if [ "${GEO_DB:-}" = npm ]; then
    (cd "$work" && npm pack --silent @ip-location-db/geo-whois-asn-country-mmdb >/dev/null &&
        tar xzf ip-location-db-geo-whois-asn-country-mmdb-*.tgz)
    GEO_DB=$work/package/geo-whois-asn-country.mmdb
fi

start_redis "$REDIS_PORT"

drop_database "$DB"
EMBEDDED=${EMBEDDED:-}
geo_toml() { # the [geo] section when GEO_DB names a database
    [ -n "${GEO_DB:-}" ] && printf '[geo]\ndatabase = "%s"\n' "$(realpath "$GEO_DB")"
    true
}
config() { # queue-kind file
    if [ -n "$EMBEDDED" ]; then
        printf 'public_url = "%s"\ndata_dir = "%s/edata"\n%s\n' "$base" "$work" "$(geo_toml)" >"$2"
        return
    fi
    cat >"$2" <<TOML
public_url = "$base"
$(geo_toml)
[redis]
url = "redis://127.0.0.1:$REDIS_PORT"
key_prefix = "bench:"
[queue]
kind = "$1"
[[shards]]
name = "s0"
url = "$PG/$DB"
from = "2024-01-01T00:00:00Z"
$(codes_toml)
TOML
}
config memory "$work/memory.toml"
config redis "$work/redis.toml"
cp "$work/memory.toml" "$work/off.toml"
"$BIN" migrate --config "$work/memory.toml" >/dev/null
"$BIN" seed --config "$work/memory.toml" --count "$SEED" --codes "$work/codes.txt" >&2
key=$("$BIN" keys create --config "$work/memory.toml" --tenant bench 2>/dev/null | grep '^shk_')
shuf -n "$HOT" "$work/codes.txt" | sed "s|^|$base/|" >"$work/urls.txt"
if [ "${SKEW:-uniform}" = zipf ]; then
    # oha picks lines uniformly: repeating the k-th URL ∝ 1/k times makes the picks Zipf-like.
    python3 - "$work/urls.txt" <<'PY'
import sys
urls = open(sys.argv[1]).read().split()
with open(sys.argv[1], "w") as out:
    for k, url in enumerate(urls, 1):
        out.write((url + "\n") * max(1, round(20000 / k)))
PY
fi

counted() {
    if [ -n "$EMBEDDED" ]; then
        # clicks.db, or shortener.db for builds from before clicks had a file of their own
        python3 - "$work/edata" <<'PY'
import os, sqlite3, sys
f = os.path.join(sys.argv[1], "clicks.db")
f = f if os.path.exists(f) else os.path.join(sys.argv[1], "shortener.db")
try:
    print(sqlite3.connect(f).execute("SELECT coalesce(sum(total), 0) FROM click_daily").fetchone()[0])
except sqlite3.Error:
    print(0)
PY
    else
        psql "$PG/$DB" -Atqc "SELECT COALESCE(sum(total), 0) FROM click_daily"
    fi
}
row_writes() {
    [ -n "$EMBEDDED" ] && { echo 0; return; }
    psql "$PG/$DB" -Atqc "SELECT COALESCE(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)
        FROM pg_stat_user_tables WHERE relname LIKE 'click%'"
}
pg_cpu() { # seconds of CPU: the postmaster, its reaped children, and its live children
    local main ticks
    main=$(head -1 "$(ls -d /var/run/postgresql/*.pid 2>/dev/null | head -1)" 2>/dev/null ||
        pgrep -o -x postgres)
    ticks=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$main/stat")
    for c in $(pgrep -P "$main"); do
        ticks=$((ticks + $(awk '{print $14 + $15}' "/proc/$c/stat" 2>/dev/null || echo 0)))
    done
    echo "scale=3; $ticks / $(getconf CLK_TCK)" | bc
}
proc_cpu() { # seconds of CPU of process $1 (all its threads)
    echo "scale=3; $(awk '{print $14 + $15}' "/proc/$1/stat") / $(getconf CLK_TCK)" | bc
}
idle_ticks() { awk '/^cpu / {print $5 + $6}' /proc/stat; }
redis_cpu() {
    redis-cli -p "$REDIS_PORT" info cpu | tr -d '\r' |
        awk -F: '/^used_cpu_(sys|user):/ {s += $2} END {printf "%.3f", s}'
}
# Waits until the click count stops moving for SETTLE_S seconds (longer than the
# worker's window, 5 s by default, during which the count does not move).
# It asks the server's own counter, not the database: a count over click_daily every
# half second would be PostgreSQL work of the measurement's own.
SETTLE_S=${SETTLE_S:-12}
settle() {
    local last=-1 now same=0
    while [ "$same" -lt $((SETTLE_S * 2)) ]; do
        now=$(curl -s "$base/metrics" | awk '/^shortener_clicks_counted_total/ {print $2}')
        if [ "$now" = "$last" ]; then same=$((same + 1)); else same=0; last=$now; fi
        sleep 0.5
    done
}
per() { # amount per-unit count → amount * unit / count
    awk -v a="$1" -v u="$2" -v n="$3" 'BEGIN { if (n > 0) printf "%.2f", a * u / n; else print "-" }'
}

rows=()
busy=()
off_rps=
for mode in $MODES; do
    echo "== clicks: $mode" >&2
    cfg=$work/$mode.toml
    [ "$mode" = off ] && set -- SHORTENER_ANALYTICS__ENABLED=false || set --
    serve_config "$cfg" "$@"
    oha -z 3s -c "$CONNS" --no-tui --output-format quiet --redirect 0 --urls-from-file "$work/urls.txt"
    oha -z "${DURATION}s" -c "$CONNS" --no-tui --output-format json --redirect 0 \
        --urls-from-file "$work/urls.txt" >"$work/closed-$mode.json"
    rps=$(oha_summary "$work/closed-$mode.json" | awk '{print $1}')
    [ "$mode" = off ] && off_rps=$rps
    settle
    c0=$(counted) w0=$(row_writes) p0=$(pg_cpu) r0=$(redis_cpu)
    s0=$(proc_cpu "$server_pid") i0=$(idle_ticks) t0=$(date +%s.%N)
    oha -z "${MIXED}s" -q $((RATE * 95 / 100)) --latency-correction -c "$CONNS" --no-tui \
        --output-format json --redirect 0 --urls-from-file "$work/urls.txt" >"$work/mr-$mode.json" &
    a=$!
    oha -z "${MIXED}s" -q $((RATE * 5 / 100)) --latency-correction -c 16 --no-tui \
        --output-format json -m POST -H "authorization: Bearer $key" \
        -H 'content-type: application/json' -d '{"url":"https://example.com/mixed"}' \
        "$base/api/v1/links" >"$work/ms-$mode.json" &
    b=$!
    wait "$a" "$b"
    s1=$(proc_cpu "$server_pid") i1=$(idle_ticks) t1=$(date +%s.%N)
    settle
    c1=$(counted) p1=$(pg_cpu) r1=$(redis_cpu)
    sleep 11 # PostgreSQL publishes an idle backend's table counters within 10 s
    w1=$(row_writes)
    stop_serving
    read -r _ _ r99 rerr served _ <<<"$(oha_summary "$work/mr-$mode.json")"
    read -r _ _ s99 serr _ <<<"$(oha_summary "$work/ms-$mode.json")"
    clicks=$((c1 - c0))
    pg_s=$(echo "$p1 - $p0" | bc)
    # During the mixed run itself: the server's share of a core, the machine's idle share.
    secs=$(echo "$t1 - $t0" | bc)
    busy+=("$mode: server $(awk -v a="$s0" -v b="$s1" -v t="$secs" 'BEGIN {printf "%.0f%%", (b - a) / t * 100}') of a core, machine idle $(awk -v a="$i0" -v b="$i1" -v t="$secs" -v hz="$(getconf CLK_TCK)" -v n="$(nproc)" 'BEGIN {printf "%.0f%%", (b - a) / hz / t / n * 100}')")
    redis_s=$(echo "$r1 - $r0" | bc)
    if [ "$mode" = off ]; then
        rows+=("$mode|$rps|1.00|$r99|$s99|$((rerr + serr))|$served|-|-|$pg_s|$redis_s")
    else
        rows+=("$mode|$rps|$(awk -v a="$rps" -v b="${off_rps:-0}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')|$r99|$s99|$((rerr + serr))|$served|$clicks|$(per $((w1 - w0)) 1000 "$clicks")|$pg_s|$redis_s")
    fi
done

# -- the worker alone ------------------------------------------------------------------
# Fills the stream with DRAIN clicks (serve without a worker), then starts `shortener
# worker` alone; prints "start-time pg-cpu-at-start". Redis's CPU from before the fill
# to the end of the drain is in $work/redis0.
worker_rate() { # config
    local cfg=$1 t0 p0
    redis-cli -p "$REDIS_PORT" del bench:clicks >/dev/null
    serve_config "$cfg" SHORTENER_ANALYTICS__WORKER_IN_SERVE=false
    # Warm L1 first, so that Redis's CPU below is the stream's alone.
    oha -n 40000 -c "$CONNS" --no-tui --output-format quiet --redirect 0 --urls-from-file "$work/urls.txt"
    sleep 1
    redis-cli -p "$REDIS_PORT" del bench:clicks >/dev/null
    redis_cpu >"$work/redis0"
    if [ "${SPREAD:-0}" = 1 ]; then
        stop_serving
        serve_config "$cfg" SHORTENER_ANALYTICS__WORKER_IN_SERVE=false \
            'SHORTENER_LIMITS__TRUSTED_PROXIES=["127.0.0.1"]'
        sed "s|^$base||" "$work/urls.txt" >"$work/paths.txt"
        wrk -t2 -c"$CONNS" -d"${FILL_S:-20}s" -s loadtest/wrk/spread.lua "$base" -- "$work/paths.txt" \
            >"$work/wrk.txt"
        awk '/requests in/ {print $1}' "$work/wrk.txt" >"$work/filled"
    else
        oha -n "$DRAIN" -c "$CONNS" --no-tui --output-format quiet --redirect 0 --urls-from-file "$work/urls.txt"
        echo "$DRAIN" >"$work/filled"
    fi
    stop_serving
    t0=$(date +%s.%N)
    p0=$(pg_cpu)
    "$BIN" worker --config "$cfg" >"$work/worker.log" 2>&1 &
    local wpid=$!
    echo "$wpid" >"$work/worker.pid"
    echo "$t0 $p0"
}
# Waits until the worker has counted `target` clicks (or the count stops moving for 3 s);
# prints "clicks/s pg-cpu-s-per-M counted".
drain_worker() { # counter-command target t0 p0
    local count=$1 target=$2 t0=$3 p0=$4 n last_change now
    last_change=$(date +%s.%N)
    local last=-1 same=0
    while [ "$same" -lt $((SETTLE_S * 2)) ]; do
        n=$($count)
        if [ "$n" = "$last" ]; then same=$((same + 1)); else same=0; last=$n; last_change=$(date +%s.%N); fi
        [ "$n" -ge "$target" ] && break
        sleep 0.5
    done
    now=$(date +%s.%N)
    local p1
    p1=$(pg_cpu)
    echo "$(redis_cpu) - $(cat "$work/redis0")" | bc >"$work/redis-s"
    # The worker's own CPU (its lookups, classification, sums): what it would take
    # with the database on a core of its own.
    per "$(proc_cpu "$(cat "$work/worker.pid")")" 1000000 "$n" >"$work/worker-s"
    kill "$(cat "$work/worker.pid")" 2>/dev/null || true
    wait "$(cat "$work/worker.pid")" 2>/dev/null || true
    echo "$(awk -v n="$n" -v t="$(echo "$last_change - $t0" | bc)" 'BEGIN { printf "%.0f", n / t }') $(per "$(echo "$p1 - $p0" | bc)" 1000000 "$n") $n"
}

WORKER_ALONE=${WORKER_ALONE:-1}
[ -n "$EMBEDDED" ] && WORKER_ALONE=0
if [ "$WORKER_ALONE" = 1 ]; then # (not indented: it holds here-documents)
echo "== worker alone: PostgreSQL" >&2
psql "$PG/$DB" -qc "TRUNCATE click_daily" >/dev/null
psql "$PG/$DB" -qc "TRUNCATE click_units" >/dev/null 2>&1 || psql "$PG/$DB" -qc "TRUNCATE click_events, click_dims" >/dev/null 2>&1 || true
psql "$PG/$DB" -qc "TRUNCATE click_visitors" >/dev/null 2>&1 || true
config redis "$work/w.toml"
printf '[analytics]\nflush_interval_ms = 1000\n' >>"$work/w.toml"
sed -i 's/^\[queue\]/[queue]\nclaim_idle_ms = 30000/' "$work/w.toml"
read -r t0 p0 <<<"$(worker_rate "$work/w.toml")"
read -r pg_rate pg_cpu_m pg_n <<<"$(drain_worker counted "$(cat "$work/filled")" "$t0" "$p0")"
pg_worker_m=$(cat "$work/worker-s")
stream_redis_m=$(per "$(cat "$work/redis-s")" 1000000 "$pg_n")

echo "== worker alone: SQLite" >&2
cat >"$work/e.toml" <<TOML
public_url = "$base"
data_dir = "$work/data"
[redis]
url = "redis://127.0.0.1:$REDIS_PORT"
key_prefix = "bench:"
[queue]
kind = "redis"
$(geo_toml)
TOML
"$BIN" seed --config "$work/e.toml" --count 20000 --codes "$work/ecodes.txt" >&2
sed "s|^|$base/|" "$work/ecodes.txt" >"$work/urls.txt"
sqlite_counted() {
    python3 - "$work/data" <<'PY'
import os, sqlite3, sys
d = sys.argv[1]
f = os.path.join(d, "clicks.db")
f = f if os.path.exists(f) else os.path.join(d, "shortener.db")
try:
    print(sqlite3.connect(f).execute("SELECT coalesce(sum(total), 0) FROM click_daily").fetchone()[0])
except sqlite3.Error:
    print(0)
PY
}
read -r t0 p0 <<<"$(worker_rate "$work/e.toml")"
read -r sq_rate _ sq_n <<<"$(drain_worker sqlite_counted "$(cat "$work/filled")" "$t0" "$p0")"
sq_worker_m=$(cat "$work/worker-s")
fi

echo
echo "clicks: $("$BIN" --version 2>/dev/null) · $([ -n "$EMBEDDED" ] && echo embedded || echo distributed) · $(nproc) cores · $SEED links, $HOT hot codes (${SKEW:-uniform}) · closed loop ${DURATION}s x $CONNS · mixed ${MIXED}s at $RATE/s (95/5)"
printf '| %-7s | %9s | %7s | %9s | %9s | %6s | %9s | %9s | %10s | %11s | %11s |\n' clicks 'closed/s' 'of off' 'redir p99' 'short p99' errors redirects counted 'rows/1k' 'PG CPU s' 'Redis CPU s'
printf '|%s|\n' '---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:'
for r in "${rows[@]}"; do
    IFS='|' read -r m rps share r99 s99 err served clicks wpk pgm rdm <<<"$r"
    printf '| %-7s | %9s | %7s | %9s | %9s | %6s | %9s | %9s | %10s | %11s | %11s |\n' "$m" "$rps" "$share" "$r99" "$s99" "$err" "$served" "$clicks" "$wpk" "$pgm" "$rdm"
done
echo "CPU during the mixed runs: ${busy[*]}"
[ "$WORKER_ALONE" = 1 ] || exit 0
echo
echo "worker alone (shortener worker draining the stream$([ "${SPREAD:-0}" = 1 ] && echo ", filled from random networks")$([ -n "${GEO_DB:-}" ] && echo ", geo database $GEO_DB")):"
echo "  PostgreSQL: $pg_rate clicks/s, $pg_cpu_m PostgreSQL CPU s and $pg_worker_m worker CPU s per million clicks ($pg_n counted)"
echo "  Redis CPU for the stream (fill and drain): $stream_redis_m s per million clicks"
echo "  SQLite:     $sq_rate clicks/s, $sq_worker_m worker CPU s per million clicks (SQLite works in the worker) ($sq_n counted)"
