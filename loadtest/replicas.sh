#!/usr/bin/env bash
# Redirect-miss throughput with and without a read replica, in one run: every redirect
# reads storage (no L1, no Redis), over SEED seeded links of one shard.
#
#   loadtest/replicas.sh                 # 20 s per case, 64 connections, 100,000 links
#   DURATION=10 CONNS=32 loadtest/replicas.sh
#
# Cases: the primary alone (no `replicas`); the primary with its streaming replica
# (scripts/replica.sh, 127.0.0.1:5434); the same with the primary cut off after
# startup (the instance reaches it through a relay that is then killed): the replica
# alone. For each: req/s, p50, p99, errors,
# and how many index scans of `links` each server ran (pg_stat_user_tables, read
# after the case), so where the reads went is the servers' own word. On one machine the
# primary and the replica share its cores: this shows the routing and its cost, not the
# capacity a replica on its own box adds (docs/performance.md says how to read it).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-20}
CONNS=${CONNS:-64}
SEED=${SEED:-100000}
PORT=${PORT:-18080}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
REPLICA=${REPLICA:-postgres://postgres@127.0.0.1:5434}
DB=shortener_bench_replica
DROP_ON_EXIT=$DB

. loadtest/lib.sh
prepare
scripts/replica.sh
setup_work
pg_config "$DB"
"$BIN" seed --config "$work/pg.toml" --count "$SEED" --codes "$work/codes.txt" >&2
shuf -n 20000 "$work/codes.txt" | sed "s|^|$base/|" >"$work/urls.txt"
for _ in $(seq 1 200); do
    n=$(psql "$REPLICA/$DB" -Atqc "SELECT count(*) FROM links" 2>/dev/null || echo 0)
    [ "$n" -ge "$SEED" ] && break
    sleep 0.1
done
# The replica must hold what the primary holds before it is measured.
[ "$n" -ge "$SEED" ] || { echo "the replica did not catch up ($n of $SEED)" >&2; exit 1; }

scans() { # server URL → index scans of links so far (stats flush when idle: wait)
    psql "$1/$DB" -Atqc "SELECT COALESCE(idx_scan, 0) FROM pg_stat_user_tables WHERE relname = 'links'"
}

write_config() { # file shard-url replicas-toml
    sed -e "s|^url = .*|url = \"$2\"|" "$work/pg.toml" >"$1"
    if [ -n "$3" ]; then
        sed -i "/^from = /a $3" "$1"
    fi
}

write_config "$work/primary.toml" "$PG/$DB" ""
write_config "$work/replica.toml" "$PG/$DB" "replicas = [\"$REPLICA/$DB\"]"
RELAY_PORT=$((PORT + 50))
write_config "$work/replica-only.toml" "postgres://postgres@127.0.0.1:$RELAY_PORT/$DB" "replicas = [\"$REPLICA/$DB\"]"

# A TCP relay to the primary, killed to cut the primary off from the instance.
relay_pid=
start_relay() {
    python3 - "$RELAY_PORT" "${PG#postgres://postgres@}" <<'PY' &
import asyncio, sys
port, (host, target_port) = int(sys.argv[1]), sys.argv[2].split(":")
async def pipe(r, w):
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    except OSError:
        pass
    finally:
        w.close()
async def handle(r, w):
    ur, uw = await asyncio.open_connection(host, int(target_port))
    await asyncio.gather(pipe(r, uw), pipe(ur, w))
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    await server.serve_forever()
asyncio.run(main())
PY
    relay_pid=$!
    sleep 0.5
}
on_exit() { [ -z "$relay_pid" ] || kill "$relay_pid" 2>/dev/null || true; }

rows=()
measure() { # case config [cut]
    local name=$1 config=$2
    serve_config "$config" SHORTENER_CACHE__L1=false
    if [ "${3:-}" = cut ]; then
        kill "$relay_pid"
        wait "$relay_pid" 2>/dev/null || true
        relay_pid=
    fi
    sleep 1 # the replica's first probe, and the primary's loss noticed
    local p0 r0
    p0=$(scans "$PG")
    r0=$(scans "$REPLICA")
    oha -z 3s -c "$CONNS" --no-tui --output-format quiet --redirect 0 --urls-from-file "$work/urls.txt"
    # The replica's lag and state as the instance sees them, twice a second.
    (while :; do
        curl -s "$base/metrics" | grep -E '^shortener_replica_(lag_seconds|up)\{' >>"$work/$name.probe" || true
        sleep 0.5
    done) &
    local sampler=$!
    oha -z "${DURATION}s" -c "$CONNS" --no-tui --output-format json --redirect 0 \
        --urls-from-file "$work/urls.txt" >"$work/$name.json"
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    if [ -s "$work/$name.probe" ]; then
        awk -v n="$name" '/lag_seconds/ { if ($2 > max) max = $2; lag++ }
            /_up\{/ { up++; if ($2 == 0) down++ }
            END { printf "%s: replica lag max %.3f s over %d samples; down in %d of %d\n", n, max, lag, down, up }' \
            "$work/$name.probe" >>"$work/reads.txt"
    fi
    curl -s "$base/metrics" | grep -E '^shortener_redirect_reads_total.* [1-9]' |
        sed "s/^/$name: /" >>"$work/reads.txt" || true
    stop_serving
    sleep 11 # backends report their table scans within ten seconds of going idle
    local summary
    summary=$(oha_summary "$work/$name.json" | awk '{print $1, $2, $3, $4}')
    rows+=("$name $summary $(($(scans "$PG") - p0)) $(($(scans "$REPLICA") - r0))")
}

measure primary-only "$work/primary.toml"
measure with-replica "$work/replica.toml"
start_relay
measure primary-down "$work/replica-only.toml" cut

printf '\n%s links, every redirect a storage read (no L1, no Redis), %ss per case after 3 s of warm-up, %s connections, oha closed loop, %s cores\n' \
    "$SEED" "$DURATION" "$CONNS" "$(nproc)"
printf '%-13s %9s %8s %8s %7s %14s %14s\n' case req/s p50_ms p99_ms errors primary_scans replica_scans
for row in "${rows[@]}"; do
    # shellcheck disable=SC2086
    printf '%-13s %9s %8s %8s %7s %14s %14s\n' $row
done
echo "the service's count of where its redirect misses went (warm-up included):"
cat "$work/reads.txt"
