#!/usr/bin/env bash
# Prints the browser client's latency figures (docs/benchmarks.md):
# link opened -> first audio heard, browser mouth-to-ear through the SFU, and
# the console monitoring 8 and 24 channels (CPU, memory).
# SQUAWK_BENCH_RUNS sets the number of runs (default 7; mouth-to-ear takes twice as many).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --tests
cargo build --release --workspace --bins --locked
cargo test --release --locked --test browser_bench -- --ignored --nocapture 2>&1 \
  | grep -v '^\['
