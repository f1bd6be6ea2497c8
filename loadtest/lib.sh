# Shared by the loadtest/*.sh scripts: source it after `cd` to the repository root.
# Everything binds 127.0.0.1 and is stopped by the scripts' EXIT traps.

# The access log (one line per request) is off under load: at tens of thousands of
# requests per second it measures the log, not the service.
export SHORTENER_LOG__REQUESTS=false
# The load comes from one address; rate limits would measure themselves.
export SHORTENER_LIMITS__ENABLED=false
# Shortening without a key in both modes, unless a script passes one.
export SHORTENER_AUTH__ALLOW_ANONYMOUS=true

# Makes sure the services, oha and the release binary are there; sets BIN (to
# SERVICE_BIN when given: another build to compare, which is then not rebuilt).
prepare() {
    scripts/services.sh
    command -v oha >/dev/null || cargo install oha --locked
    if [ -n "${SERVICE_BIN:-}" ]; then
        BIN=$SERVICE_BIN
    else
        cargo build --release --quiet
        BIN=$PWD/target/release/shortener
    fi
}

# Waits (at most 10 s) until $1/readyz answers; prints the log in $2 and fails if not.
wait_ready() {
    for _ in $(seq 1 100); do
        curl -sf "$1/readyz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    cat "$2" >&2
    echo "server at $1 did not become ready" >&2
    exit 1
}

# oha's JSON → "req/s p50_ms p99_ms errors count_302 statuses". Errors are transport
# errors and answers of 400 and above; "aborted due to deadline" (the requests in flight
# when -z runs out, one per connection) are not the server's and are left out.
oha_summary() {
    python3 - "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
s, p = r["summary"], r["latencyPercentiles"]
codes = r.get("statusCodeDistribution", {})
errors = sum(v for k, v in r.get("errorDistribution", {}).items() if k != "aborted due to deadline")
errors += sum(v for k, v in codes.items() if int(k) >= 400)
statuses = "/".join(f"{k}:{v}" for k, v in sorted(codes.items()))
print(f'{s["requestsPerSec"]:.0f} {p["p50"]*1e3:.2f} {p["p99"]*1e3:.2f} {errors} {codes.get("302", 0)} {statuses}')
PY
}

# The release server on 127.0.0.1:$PORT with CONFIG and the given environment
# assignments; logs to $work/server.log, sets server_pid, returns once it is ready.
# Needs BIN (from prepare), PORT, base and work.
serve_config() { # config [VAR=value …]
    local config=$1
    shift
    env "$@" "$BIN" serve --config "$config" --listen "127.0.0.1:$PORT" >"$work/server.log" 2>&1 &
    server_pid=$!
    wait_ready "$base" "$work/server.log"
}

# Stops the server serve_config started, and waits for it to exit.
stop_serving() {
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
}

# Drops database $1 on $PG if it exists (migrate creates it again).
drop_database() {
    psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $1 WITH (FORCE)" >/dev/null
}

# Starts a private redis-server on 127.0.0.1:$1 (no persistence) and waits (at most
# 5 s) until it answers; sets redis_pid (the EXIT trap of setup_work stops it).
start_redis() { # port
    redis-server --port "$1" --bind 127.0.0.1 --save "" --appendonly no >/dev/null &
    redis_pid=$!
    for _ in $(seq 1 50); do
        redis-cli -p "$1" ping >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "redis-server did not start on port $1" >&2
    exit 1
}

# Stops the redis-server start_redis started.
stop_redis() {
    [ -n "${redis_pid:-}" ] || return 0
    kill "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
    redis_pid=
}

# The setup every script shares: a work directory ($work), the base URL ($base, from
# PORT), and an EXIT trap that stops the server and any private Redis, drops the
# databases named in DROP_ON_EXIT, runs the script's own on_exit when it defines one,
# and removes $work. Call after prepare.
setup_work() {
    work=$(mktemp -d)
    server_pid=
    redis_pid=
    base="http://127.0.0.1:$PORT"
    trap cleanup_work EXIT
}

cleanup_work() {
    if declare -F on_exit >/dev/null; then on_exit || true; fi
    stop_serving
    stop_redis
    for db in ${DROP_ON_EXIT:-}; do drop_database "$db" 2>/dev/null || true; done
    rm -rf "$work"
}

# The [codes] section of this run's distributed configurations: one key per run, so
# that every configuration on the same database reads the same codes.
codes_toml() {
    [ -s "$work/code.key" ] || "$BIN" code-key >"$work/code.key"
    printf '[codes]\nkey = "%s"\n' "$(cat "$work/code.key")"
}

# Writes $work/pg.toml for the distributed mode: public_url $base, the TOML given as
# $2 (sections such as [redis] or [cache]), and one shard s0 on database $1 at $PG,
# dropped first so each run starts empty, and a fresh code key; then migrates it.
pg_config() { # database [extra TOML]
    drop_database "$1"
    {
        printf 'public_url = "%s"\n' "$base"
        [ -n "${2:-}" ] && printf '%s\n' "$2"
        printf '[[shards]]\nname = "s0"\nurl = "%s/%s"\nfrom = "2024-01-01T00:00:00Z"\n' "$PG" "$1"
        codes_toml
    } >"$work/pg.toml"
    "$BIN" migrate --config "$work/pg.toml" >/dev/null
}
