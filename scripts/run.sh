#!/usr/bin/env bash
# Sets up and runs Squawk: a local server with the embedded default config,
# and the desktop app connected to it in channel "general".
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --bins --workspace --locked
TARGET="${CARGO_TARGET_DIR:-target}/debug"
"$TARGET/squawk-server" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null' EXIT
# Wait until the server accepts connections (bounded: 10 s).
for _ in $(seq 100); do
  if (exec 3<>/dev/tcp/127.0.0.1/7300) 2>/dev/null; then break; fi
  kill -0 $SERVER 2>/dev/null || { echo "squawk-server failed to start" >&2; exit 1; }
  sleep 0.1
done
"$TARGET/squawk" --server ws://127.0.0.1:7300/ws --name "${SQUAWK_NAME:-$(whoami)}" --channel general "$@"
