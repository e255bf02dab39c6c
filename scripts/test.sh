#!/usr/bin/env bash
# Sets up and runs the whole test suite (unit, end-to-end, real devices).
set -euo pipefail
cd "$(dirname "$0")/.."
# What the build needs first (compilers' libraries); then, beside the
# project's build, what only the tests need (browsers, PostgreSQL, coturn,
# the Debian tarball, the Python venv, npm packages), and geckodriver and
# tauri-driver (the cores idle in the build's serial stretches). Both are
# waited for before the tests run.
./scripts/setup.sh
./scripts/setup.sh --tests-no-tools &
test_deps=$!
./scripts/setup.sh --tools &
tools=$!
export SQUAWK_PYTHON="${SQUAWK_VENV:-$HOME/.cache/squawk-venv}/bin/python"
export SQUAWK_ROOTFS="${SQUAWK_ROOTFS:-$HOME/.cache/squawk-rootfs/bookworm.tar}"
export SQUAWK_GECKODRIVER="${SQUAWK_TOOLS:-$HOME/.cache/squawk-tools}/bin/geckodriver"
export SQUAWK_TAURI_DRIVER="${SQUAWK_TOOLS:-$HOME/.cache/squawk-tools}/bin/tauri-driver"
# The accounts tests run on SQLite and on a PostgreSQL cluster they start:
# fail rather than skip PostgreSQL when it is missing.
export SQUAWK_REQUIRE_POSTGRES=1
# The end-to-end tests run the server and bot binaries: build them first,
# with the tests in the same invocation so that the dependencies' features
# (tauri's "test") are resolved once and `cargo test` rebuilds nothing.
cargo build --workspace --bins --tests --locked
wait "$test_deps"
wait "$tools"
cargo test --workspace --locked -- --test-threads=1
