#!/usr/bin/env bash
# Runs the distributed mode on this machine: makes sure PostgreSQL and Redis answer,
# migrates the shards named in the config (creating their databases), then serves.
# Usage: scripts/run-distributed.sh [config.toml]   (default: config/example.toml)
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-config/example.toml}
scripts/services.sh
cargo build --release --quiet
target/release/shortener migrate --config "$config"
exec target/release/shortener serve --config "$config"
