#!/usr/bin/env bash
# Makes sure a streaming replica of the local PostgreSQL (127.0.0.1:$PG_PORT) answers on
# 127.0.0.1:$REPLICA_PORT: PostgreSQL's own physical replication, a second cluster made
# with `pg_basebackup -R` (so it holds every database of the primary, and follows it).
# The tests read replicas from it, and scripts/native-cluster.sh lists it as a replica.
#
# When the replica answers and streams, nothing is done. Otherwise it is rebuilt: the
# primary is allowed replication connections from loopback (pg_hba.conf), the old copy
# is stopped and removed, a fresh base backup taken and started. Run as root or as the
# postgres user. Safe to run again and again.
#
#   scripts/replica.sh            # ensure it
#   scripts/replica.sh stop       # stop it (the data stays until the next ensure)
set -euo pipefail

PG_PORT=${PG_PORT:-5432}
REPLICA_PORT=${REPLICA_PORT:-5434}
REPLICA_DIR=${REPLICA_DIR:-/var/tmp/shortener-replica-$REPLICA_PORT}

log() { printf 'replica: %s\n' "$*" >&2; }

as_postgres() {
    if [ "$(id -un)" = postgres ]; then
        "$@"
    elif [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        sudo -n -u postgres "$@"
    fi
}

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi
}

primary() { psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -Atqc "$1"; }
replica() { psql -h 127.0.0.1 -p "$REPLICA_PORT" -U postgres -d postgres -Atqc "$1" 2>/dev/null; }

version=$(primary "SHOW server_version_num")
version=$((version / 10000))
bin=/usr/lib/postgresql/$version/bin
[ -x "$bin/pg_ctl" ] || bin=$(dirname "$(command -v pg_ctl || echo /usr/bin/pg_ctl)")

stop() {
    if [ -f "$REPLICA_DIR/postmaster.pid" ]; then
        as_postgres "$bin/pg_ctl" -D "$REPLICA_DIR" -m fast -w stop >/dev/null 2>&1 ||
            as_postgres "$bin/pg_ctl" -D "$REPLICA_DIR" -m immediate -w stop >/dev/null 2>&1 || true
    fi
}

if [ "${1:-}" = stop ]; then
    stop
    exit 0
fi

healthy() {
    [ "$(replica "SELECT pg_is_in_recovery()")" = t ] &&
        [ "$(replica "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'")" = 1 ]
}

if healthy; then
    # A test that paused replay and died leaves it paused: resume it.
    if [ "$(replica "SELECT pg_is_wal_replay_paused()")" = t ]; then
        replica "SELECT pg_wal_replay_resume()" >/dev/null
        log "replay was paused; resumed"
    fi
    exit 0
fi

# The primary must take replication connections from loopback.
hba=$(primary "SHOW hba_file")
if ! as_root grep -qE '^host[[:space:]]+replication[[:space:]]+all[[:space:]]+127\.0\.0\.1/32' "$hba"; then
    log "allowing replication connections from 127.0.0.1 in $hba"
    echo 'host replication all 127.0.0.1/32 trust' | as_root tee -a "$hba" >/dev/null
    primary "SELECT pg_reload_conf()" >/dev/null
fi

log "building a replica of 127.0.0.1:$PG_PORT in $REPLICA_DIR"
stop
as_root rm -rf "$REPLICA_DIR"
as_root install -d -o postgres -g postgres -m 0700 "$REPLICA_DIR"
as_postgres "$bin/pg_basebackup" -h 127.0.0.1 -p "$PG_PORT" -U postgres -D "$REPLICA_DIR" \
    -R -X stream -c fast

# Debian keeps the configuration outside the data directory: the copy gets its own. A
# hot standby needs at least the primary's connection and worker limits.
max_conn=$(primary "SHOW max_connections")
[ "$max_conn" -ge 200 ] || max_conn=200
as_postgres tee "$REPLICA_DIR/postgresql.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
port = $REPLICA_PORT
unix_socket_directories = '$REPLICA_DIR'
max_connections = $max_conn
max_worker_processes = $(primary "SHOW max_worker_processes")
max_prepared_transactions = $(primary "SHOW max_prepared_transactions")
max_locks_per_transaction = $(primary "SHOW max_locks_per_transaction")
max_wal_senders = $(primary "SHOW max_wal_senders")
hot_standby = on
hot_standby_feedback = on
wal_receiver_status_interval = 1s
shared_buffers = 128MB
EOF
as_postgres tee "$REPLICA_DIR/pg_hba.conf" >/dev/null <<'EOF'
local all all trust
host all all 127.0.0.1/32 trust
EOF
as_postgres "$bin/pg_ctl" -D "$REPLICA_DIR" -l "$REPLICA_DIR/server.log" -w -t 60 start >/dev/null

for _ in $(seq 1 60); do
    if healthy; then
        log "streaming from 127.0.0.1:$PG_PORT on 127.0.0.1:$REPLICA_PORT"
        exit 0
    fi
    sleep 0.5
done
log "the replica did not start streaming; see $REPLICA_DIR/server.log"
exit 1
