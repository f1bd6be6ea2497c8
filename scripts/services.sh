#!/usr/bin/env bash
# Makes sure the services the tests and the distributed mode need are answering:
# PostgreSQL on 127.0.0.1:5432 (user postgres, no password) and Redis on 127.0.0.1:6379.
# Starts them when they are installed but stopped, installs them (apt-get) when missing.
# Override the ports with PG_PORT / REDIS_PORT.
set -euo pipefail

PG_PORT=${PG_PORT:-5432}
REDIS_PORT=${REDIS_PORT:-6379}

log() { printf 'services: %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
    local port=$1 what=$2
    for _ in $(seq 1 60); do
        port_open "$port" && return 0
        sleep 0.5
    done
    log "$what did not come up on 127.0.0.1:$port"
    return 1
}

apt_updated=0
apt_install() {
    if [ "$apt_updated" = 0 ]; then
        as_root apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

ensure_postgres() {
    if port_open "$PG_PORT"; then
        return 0
    fi
    local fresh=0
    if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
        log "installing PostgreSQL"
        apt_install postgresql postgresql-client
        fresh=1
    fi
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    if [ "$fresh" = 1 ]; then
        # A fresh Debian cluster asks for passwords over TCP; this is a dev/test box,
        # so trust loopback connections as the tests expect.
        as_root sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' \
            "/etc/postgresql/$version/main/pg_hba.conf"
    fi
    log "starting PostgreSQL $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    wait_port "$PG_PORT" PostgreSQL
}

ensure_redis() {
    # The binary is needed even when a Redis already answers: the cache tests start
    # private redis-servers that they stop and restart.
    if ! command -v redis-server >/dev/null; then
        log "installing Redis"
        apt_install redis-server
    fi
    if port_open "$REDIS_PORT"; then
        return 0
    fi
    log "starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no >/dev/null
    wait_port "$REDIS_PORT" Redis
}

ensure_postgres
ensure_redis
