#!/usr/bin/env bash
# Runs the cargo fuzz targets (fuzz/, libFuzzer on the nightly toolchain)
# and minimises what they find together with the committed corpus
# (fuzz/corpus/<target>, cargo fuzz cmin), which the crates' tests replay.
#
#   scripts/fuzz.sh [--runs N | --seconds S] [TARGET...]
#
# Default: every target for 60 s each. Prints one summary line per target
# (executions, seconds, corpus size). A crash stops the script with
# libFuzzer's report; its input is in fuzz/artifacts/<target>/: copy it to
# fuzz/regressions/<target>/ once fixed, so the tests keep replaying it.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
limit=(-max_total_time=60)
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) limit=(-runs="$2"); shift 2 ;;
    --seconds) limit=(-max_total_time="$2"); shift 2 ;;
    -h|--help) sed -n 2,12p "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(signaling session sdp rewrite jitter red)
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: needs the nightly toolchain (rustup toolchain install nightly)" >&2
  exit 1
fi
if ! command -v cargo-fuzz >/dev/null; then
  env -u CARGO_TARGET_DIR cargo install cargo-fuzz --locked --quiet
fi
export CARGO_TARGET_DIR="${SQUAWK_FUZZ_TARGET:-$HOME/.cache/squawk-fuzz-target}"
# The server's dependency tree only for its own targets.
features=(--no-default-features)
for t in "${targets[@]}"; do
  case "$t" in session|sdp) features=() ;; esac
done
mkdir -p logs
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "work/$t"
  # Without a sanitizer: the code under test forbids `unsafe`, and the
  # harnesses assert their invariants; debug assertions stay on.
  cargo +nightly fuzz run --sanitizer none "${features[@]}" "$t" "work/$t" "corpus/$t" -- \
    "${limit[@]}" -max_len=4096 -print_final_stats=1 >"logs/$t.log" 2>&1 || {
    tail -40 "logs/$t.log"
    echo "fuzz: $t failed; the input is in fuzz/artifacts/$t/" >&2
    exit 1
  }
  # The committed corpus: the smallest set of what was found and what was
  # there that covers as much (libFuzzer's merge, as cargo fuzz cmin).
  cp -n "work/$t"/* "corpus/$t"/ 2>/dev/null || true
  cargo +nightly fuzz cmin --sanitizer none "${features[@]}" "$t" "corpus/$t" \
    >"logs/$t.cmin.log" 2>&1
  runs=$(awk '/stat::number_of_executed_units/ { print $2 }' "logs/$t.log" | tail -1)
  secs=$(awk '/Done [0-9]+ runs in/ { print $(NF-1) }' "logs/$t.log" | tail -1)
  echo "fuzz: $t: ${runs:-?} executions in ${secs:-?} s, corpus $(ls "corpus/$t" | wc -l) inputs"
done
