# Sourced by scripts that need a throwaway embedded instance of the debug build with an
# API key (scripts/schemathesis.sh, loadtest/smoke.sh):
#
#   start_embedded TENANT [VAR=value …]
#
# builds the binary, creates a temporary data directory and a key for TENANT (which
# also creates and migrates the file), serves on a free loopback port with the given
# environment, waits until /readyz answers, and removes everything on exit. Sets `dir`,
# `base`, `key` and `server`; the server's log is "$dir/server.log".
start_embedded() {
    local tenant=$1
    shift
    cargo build -q --bin shortener
    local bin=$PWD/target/debug/shortener port
    dir=$(mktemp -d)
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    base="http://127.0.0.1:$port"
    key=$("$bin" --data-dir "$dir" keys create --tenant "$tenant" 2>/dev/null | grep '^shk_')
    env SHORTENER_LOG__REQUESTS=false "$@" \
        "$bin" --data-dir "$dir" --listen "127.0.0.1:$port" serve >"$dir/server.log" 2>&1 &
    server=$!
    trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$dir"' EXIT
    for _ in $(seq 300); do
        curl -fs "$base/readyz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "the embedded instance did not become ready" >&2
    cat "$dir/server.log" >&2
    exit 1
}
