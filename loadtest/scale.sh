#!/usr/bin/env bash
# How the redirect cost grows with the data: the redirect scenario on uniformly random
# codes over SMALL (100,000) and then LARGE (10,000,000) seeded links, distributed mode,
# cache off (every redirect reads PostgreSQL: the cache would hide exactly what this
# measures), server restarted before each run (its own caches cold). The large set is
# measured as it is after seeding, and once more after dropping the OS page cache (root
# only). Two loads each: a constant RATE/s
# with --latency-correction (the p99 the targets compare) and a closed loop (throughput).
#
#   loadtest/scale.sh                     # 100k vs 10M, 20 s each
#   LARGE=1000000 DURATION=10 loadtest/scale.sh
#
# The 10M seed takes about half a minute (COPY) and ~1.1 GB in PostgreSQL; the
# database is dropped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

SMALL=${SMALL:-100000}
LARGE=${LARGE:-10000000}
DURATION=${DURATION:-20}
RATE=${RATE:-2500}
CONNS=${CONNS:-64}
SAMPLE=${SAMPLE:-200000}
PORT=${PORT:-18080}
PG=${PG:-postgres://postgres@127.0.0.1:5432}

. loadtest/lib.sh
prepare
setup_work
db=shortener_bench_scale
DROP_ON_EXIT=$db
pg_config "$db" $'[cache]\nl1 = false'

rows=()
measure() { # label
    # Uniform over every code seeded so far (with replacement).
    shuf -r -n "$SAMPLE" "$work/all.txt" | sed "s|^|$base/|" >"$work/urls.txt"
    psql "$PG/$db" -qc "VACUUM ANALYZE links" >/dev/null
    serve_config "$work/pg.toml"
    oha -z "${DURATION}s" -q "$RATE" --latency-correction -c "$CONNS" --no-tui --output-format json \
        --redirect 0 --urls-from-file "$work/urls.txt" >"$work/rate.json"
    oha -z "${DURATION}s" -c "$CONNS" --no-tui --output-format json \
        --redirect 0 --urls-from-file "$work/urls.txt" >"$work/closed.json"
    stop_serving
    local size
    size=$(psql "$PG/$db" -Atc "SELECT pg_size_pretty(pg_total_relation_size('links'))")
    rows+=("$1|$size|$(oha_summary "$work/rate.json" | awk '{print $1"|"$2"|"$3"|"$4}')|$(oha_summary "$work/closed.json" | awk '{print $1"|"$3"|"$4}')")
}

echo "== seeding $SMALL" >&2
"$BIN" seed --config "$work/pg.toml" --count "$SMALL" --codes "$work/all.txt" >&2
measure "$SMALL links"
echo "== seeding up to $LARGE" >&2
"$BIN" seed --config "$work/pg.toml" --count $((LARGE - SMALL)) --codes "$work/more.txt" >&2
cat "$work/more.txt" >>"$work/all.txt"
rm "$work/more.txt"
sync
measure "$LARGE links"
# Colder still: drop the OS page cache too when allowed (root), so the first reads of
# the 1 GB table and index come from the disk.
if [ -w /proc/sys/vm/drop_caches ]; then
    echo 3 >/proc/sys/vm/drop_caches
    measure "$LARGE, page cache dropped"
fi

echo
echo "redirects on uniformly random codes, cache off, PostgreSQL; $(nproc) cores; ${DURATION}s per load"
printf '| %-16s | %10s | %12s | %9s | %9s | %6s | %12s | %10s | %6s |\n' data 'links table' "@$RATE/s req/s" 'p50 ms' 'p99 ms' errors 'closed req/s' 'p99 ms' errors
echo '|---|---:|---:|---:|---:|---:|---:|---:|---:|'
for r in "${rows[@]}"; do
    IFS='|' read -r label size rrps rp50 rp99 rerr crps cp99 cerr <<<"$r"
    printf '| %-16s | %10s | %12s | %9s | %9s | %6s | %12s | %10s | %6s |\n' "$label" "$size" "$rrps" "$rp50" "$rp99" "$rerr" "$crps" "$cp99" "$cerr"
done
IFS='|' read -r _ _ _ _ small_p99 _ <<<"${rows[0]}"
IFS='|' read -r _ _ _ _ large_p99 _ <<<"${rows[1]}"
awk -v a="$large_p99" -v b="$small_p99" 'BEGIN {printf "p99 at the constant rate, large / small: %.2f (target: at most 1.5)\n", a / b}'
if [ "${#rows[@]}" -gt 2 ]; then
    IFS='|' read -r _ _ _ _ cold_p99 _ <<<"${rows[2]}"
    awk -v a="$cold_p99" -v b="$small_p99" 'BEGIN {printf "p99 with the OS page cache dropped, large / small: %.2f\n", a / b}'
fi
