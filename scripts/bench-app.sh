#!/usr/bin/env bash
# Prints the desktop app's memory and CPU figures (docs/benchmarks.md):
# the whole process tree (squawk + WebKit), idle and while receiving,
# the console monitoring 8 and 24 channels with 4 talkers, and the app
# beside an empty Tauri 2 window (examples/empty_window.rs) and the Mumble
# client in one session. Measures release binaries; PROFILE=debug measures
# the debug ones.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# The Mumble client, measured beside the app (not needed by the tests).
command -v mumble >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q mumble
PROFILE="${PROFILE:-release}"
TARGET="${CARGO_TARGET_DIR:-target}"
if [ "$PROFILE" = release ]; then
  cargo build --release --workspace --bins --examples --locked
  export SQUAWK_BIN_DIR="$(realpath "$TARGET")/release"
else
  cargo build --workspace --bins --examples --locked
fi
# The harness itself is a debug test build; SQUAWK_BIN_DIR picks the binaries.
cargo test --locked --test app_bench -- --ignored --nocapture 2>&1 | grep -v '^\['
