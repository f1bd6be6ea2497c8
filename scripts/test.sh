#!/usr/bin/env bash
# The test command. Starts (or installs) PostgreSQL and Redis if needed, drops databases
# left by earlier test runs, makes sure a streaming replica of it runs (scripts/replica.sh),
# then runs every test. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh

if command -v psql >/dev/null; then
    psql "postgres://postgres@127.0.0.1:${PG_PORT:-5432}/postgres" -Atqc \
        "SELECT datname FROM pg_database WHERE datname LIKE 'shortener\_test\_%'" |
        while read -r db; do
            psql "postgres://postgres@127.0.0.1:${PG_PORT:-5432}/postgres" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null
        done
fi

# A streaming replica of that server (tests/replicas.rs reads from it).
scripts/replica.sh

cargo test --all-targets "$@"
