#!/usr/bin/env bash
# Prints the desktop app's memory and CPU figures (docs/benchmarks.md):
# the whole process tree (squawk + WebKit), idle and while receiving.
# PROFILE=release measures a release build (default: debug).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
PROFILE="${PROFILE:-debug}"
flag=""; [ "$PROFILE" = release ] && flag="--release"
cargo build $flag --workspace --bins --locked
cargo test $flag --locked --test app_bench -- --ignored --nocapture 2>&1 | grep -v '^\['
