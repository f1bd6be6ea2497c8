#!/usr/bin/env bash
# Profiles the server under load with perf (sampling, call graphs from DWARF line
# tables of the release build): the redirect path (L1 hits) and the shorten path, in
# the distributed mode, SECONDS (15) each. Prints the top functions by self time and
# leaves perf.data files in PROFILE_DIR (default target/profile) for `perf report`.
#
#   loadtest/profile.sh
#   SECONDS_EACH=30 loadtest/profile.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH=${SECONDS_EACH:-15}
CONNS=${CONNS:-64}
PORT=${PORT:-18080}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
OUT=${PROFILE_DIR:-target/profile}

. loadtest/lib.sh
prepare
command -v perf >/dev/null || apt-get install -y -qq linux-perf >/dev/null
mkdir -p "$OUT"
setup_work
pg_config shortener_bench_profile
"$BIN" seed --config "$work/pg.toml" --count 100000 --codes "$work/codes.txt" >&2
key=$("$BIN" keys create --config "$work/pg.toml" --tenant profile 2>/dev/null | grep '^shk_')
shuf -n 20000 "$work/codes.txt" | sed "s|^|$base/|" >"$work/urls.txt"
serve_config "$work/pg.toml"

profile() { # name, then the oha arguments
    local name=$1
    shift
    oha -z "$((SECONDS_EACH + 2))s" -c "$CONNS" --no-tui --output-format quiet "$@" &
    local load=$!
    sleep 1
    perf record -q -F 499 -g -p "$server_pid" -o "$OUT/$name.data" -- sleep "$SECONDS_EACH" 2>/dev/null
    wait "$load" || true
    echo "== $name: top functions by self time"
    perf report -i "$OUT/$name.data" --no-children --stdio --percent-limit 1.5 \
        --sort symbol -g none 2>/dev/null | grep -E '^ +[0-9]' | head -25
}
oha -z 3s -c "$CONNS" --no-tui --output-format quiet --redirect 0 --urls-from-file "$work/urls.txt"
profile redirect --redirect 0 --urls-from-file "$work/urls.txt"
profile shorten -m POST -H "authorization: Bearer $key" -H 'content-type: application/json' \
    -d '{"url":"https://example.com/landing?utm_source=profile"}' "$base/api/v1/links"
