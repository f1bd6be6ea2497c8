#!/usr/bin/env bash
# The docker-compose topology, natively on loopback: two PostgreSQL clusters (5432 and
# a second one on 5433) holding one range shard each, a streaming replica of the first
# (scripts/replica.sh, on 5434) that s0's redirect misses read, Redis, two `serve` instances
# (each leasing its worker ID from the directory) behind HAProxy, a separate `worker`, and Prometheus scraping
# them every second.
#
#   scripts/native-cluster.sh start [DIR]   # DIR holds configs, logs and pids (default /tmp/shortener-native)
#   scripts/native-cluster.sh stop  [DIR]
#
# Ports: HAProxy 18080, instances 18081/18082, worker metrics 18090, Prometheus 19090.
# BIN picks the binary (default: build and use target/debug/shortener).
set -euo pipefail
cd "$(dirname "$0")/.."
cmd=${1:?start or stop}
DIR=${2:-/tmp/shortener-native}
PG2_PORT=${PG2_PORT:-5433}

stop() {
    if [ -f "$DIR/pids" ]; then
        while read -r pid; do kill "$pid" 2>/dev/null || true; done <"$DIR/pids"
        sleep 1
        while read -r pid; do kill -9 "$pid" 2>/dev/null || true; done <"$DIR/pids"
        rm -f "$DIR/pids"
    fi
}

if [ "$cmd" = stop ]; then
    stop
    exit 0
fi

need() { # command package
    command -v "$1" >/dev/null && return 0
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null 2>&1 ||
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; }
}

scripts/services.sh
REPLICA_PORT=${REPLICA_PORT:-5434} scripts/replica.sh
need prometheus prometheus
need haproxy haproxy
if [ -z "${BIN:-}" ]; then
    cargo build --quiet
    BIN=$PWD/target/debug/shortener
fi
stop
mkdir -p "$DIR"
: >"$DIR/pids"

# The second PostgreSQL cluster.
version=$(ls /etc/postgresql | sort -V | tail -n 1)
if [ ! -d "/etc/postgresql/$version/shard1" ]; then
    pg_createcluster "$version" shard1 -p "$PG2_PORT" -- --auth=trust >/dev/null
fi
pg_ctlcluster --skip-systemctl-redirect "$version" shard1 start 2>/dev/null || true
for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$PG2_PORT") 2>/dev/null && break; sleep 0.2; done

# The cluster's code key, kept with its data so that a restart reads its codes.
[ -s "$DIR/code.key" ] || "$BIN" code-key >"$DIR/code.key"
CODE_KEY=$(cat "$DIR/code.key")
cat >"$DIR/native.toml" <<TOML
public_url = "http://127.0.0.1:18080"
directory = "s0"
worker_metrics_listen = "127.0.0.1:18090"
[log]
requests = false
[limits]
enabled = false   # all traffic comes from 127.0.0.1 through HAProxy
[auth]
allow_anonymous = true   # check and benchmark traffic shortens without a key
[redis]
url = "redis://127.0.0.1:6379"
key_prefix = "native:"
[queue]
kind = "redis"
[analytics]
worker_in_serve = false
flush_interval_ms = 100
[[shards]]
name = "s0"
url = "postgres://postgres@127.0.0.1:5432/shortener_native_s0"
from = "2024-01-01T00:00:00Z"
replicas = ["postgres://postgres@127.0.0.1:${REPLICA_PORT:-5434}/shortener_native_s0"]
[[shards]]
name = "s1"
url = "postgres://postgres@127.0.0.1:$PG2_PORT/shortener_native_s1"
from = "2027-01-01T00:00:00Z"
[codes]
key = "$CODE_KEY"   # one key for every instance of the cluster
TOML
"$BIN" migrate --config "$DIR/native.toml" >"$DIR/migrate.log" 2>&1 || { cat "$DIR/migrate.log" >&2; exit 1; }

for i in 1 2; do
    "$BIN" serve --config "$DIR/native.toml" --listen "127.0.0.1:1808$i" \
        >"$DIR/serve-$i.log" 2>&1 &
    echo $! >>"$DIR/pids"
done
"$BIN" worker --config "$DIR/native.toml" >"$DIR/worker.log" 2>&1 &
echo $! >>"$DIR/pids"

cat >"$DIR/haproxy.cfg" <<CFG
global
    maxconn 4000
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
frontend http
    bind 127.0.0.1:18080
    default_backend shortener
backend shortener
    balance roundrobin
    option httpchk GET /readyz
    server shortener-1 127.0.0.1:18081 check inter 1s
    server shortener-2 127.0.0.1:18082 check inter 1s
CFG
haproxy -f "$DIR/haproxy.cfg" >"$DIR/haproxy.log" 2>&1 &
echo $! >>"$DIR/pids"

cp prometheus/alerts.yml "$DIR/alerts.yml"
cat >"$DIR/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [alerts.yml]
scrape_configs:
  - job_name: shortener
    static_configs:
      - targets: ["127.0.0.1:18081", "127.0.0.1:18082"]
  - job_name: shortener-worker
    static_configs:
      - targets: ["127.0.0.1:18090"]
YML
rm -rf "$DIR/prom-data"
prometheus --config.file="$DIR/prometheus.yml" --storage.tsdb.path="$DIR/prom-data" \
    --web.listen-address=127.0.0.1:19090 >"$DIR/prometheus.log" 2>&1 &
echo $! >>"$DIR/pids"

for url in http://127.0.0.1:18081/readyz http://127.0.0.1:18082/readyz http://127.0.0.1:18090/metrics \
           http://127.0.0.1:18080/readyz http://127.0.0.1:19090/-/ready; do
    ok=0
    for _ in $(seq 1 100); do curl -sf "$url" >/dev/null 2>&1 && { ok=1; break; }; sleep 0.2; done
    [ "$ok" = 1 ] || { echo "native-cluster: $url did not come up (logs in $DIR)" >&2; exit 1; }
done
echo "native cluster up: http://127.0.0.1:18080 (HAProxy), Prometheus http://127.0.0.1:19090; logs in $DIR"
