#!/usr/bin/env bash
# Fuzzes the parsers of untrusted text (target URL, alias, code, API key) with
# cargo-fuzz (libFuzzer) for a bounded time, FUZZ_SECONDS (default 60). Works on the
# stable toolchain: sanitizer instrumentation is off (`-s none`; the crate forbids
# unsafe code), coverage guidance is on. A crash leaves its input in
# fuzz/artifacts/parsers/ and fails the script.
#
#   scripts/fuzz.sh                  # 60 s
#   FUZZ_SECONDS=600 scripts/fuzz.sh
#
# Not part of .ci/run: the instrumented build of the whole crate takes about 7 minutes
# on 2 cores. The same properties run in every test run as proptest cases.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
mkdir -p fuzz/corpus/parsers
cargo fuzz run parsers -s none -- -max_total_time="${FUZZ_SECONDS:-60}" -max_len=4096
