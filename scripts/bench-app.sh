#!/usr/bin/env bash
# Prints the desktop app's memory and CPU figures (docs/benchmarks.md):
# the whole process tree (squawk + WebKit), idle and while receiving, and
# the console monitoring 8 and 24 channels with 4 talkers.
# Measures release binaries; PROFILE=debug measures the debug ones.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
PROFILE="${PROFILE:-release}"
TARGET="${CARGO_TARGET_DIR:-target}"
if [ "$PROFILE" = release ]; then
  cargo build --release --workspace --bins --locked
  export SQUAWK_BIN_DIR="$(realpath "$TARGET")/release"
else
  cargo build --workspace --bins --locked
fi
# The harness itself is a debug test build; SQUAWK_BIN_DIR picks the binaries.
cargo test --locked --test app_bench -- --ignored --nocapture 2>&1 | grep -v '^\['
