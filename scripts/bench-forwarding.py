#!/usr/bin/env python3
"""Forwarding cost against murmur, same run (issue 10).

For each R: `squawk-bot load --rooms R --members 15 --json` (it starts its own
release server), then `../shared/peers/murmur-load.sh -R R -U 15` (Debian
`mumble-server` 1.3.4, UDP voice, Python bots), one after the other, and prints
one markdown table row per R with the ratio of server CPU per forwarded packet.

    scripts/bench-forwarding.py [--rooms 1,12,30,60] [--seconds 10] [--runs 1]

Needs a release build (`cargo build --release -p squawk-bot -p squawk-server`)
in $CARGO_TARGET_DIR or ./target. Run it on a quiet machine: nothing else
building.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT.parent / "shared" / "peers"


def release_bin(name: str) -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    path = target / "release" / name
    if not path.exists():
        sys.exit(f"{path} is missing: cargo build --release -p squawk-bot -p squawk-server")
    return path


def squawk(rooms: int, seconds: int) -> dict:
    out = subprocess.run(
        [str(release_bin("squawk-bot")), "load", "--rooms", str(rooms), "--members", "15",
         "--seconds", str(seconds), "--json"],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def murmur(rooms: int, seconds: int) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as f:
        subprocess.run(
            [str(PEERS / "murmur-load.sh"), "-R", str(rooms), "-U", "15", "-D", str(seconds),
             "-o", f.name],
            check=True, capture_output=True, text=True,
        )
        lines = [json.loads(l) for l in Path(f.name).read_text().splitlines() if l.strip()]
    return [l for l in lines if l.get("type") == "result"][-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rooms", default="1,12,30,60")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--runs", type=int, default=1, help="alternating runs of each server per R")
    args = ap.parse_args()
    print("| R | Squawk µs CPU / fwd pkt | murmur µs CPU / fwd pkt | ratio | Squawk RSS | murmur RSS "
          "| Squawk delivery | murmur delivery | Squawk added delay p99 | murmur latency p99 "
          "| load generator CPU (Squawk / murmur) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for rooms in [int(r) for r in args.rooms.split(",")]:
        for _ in range(args.runs):
            s = squawk(rooms, args.seconds)
            m = murmur(rooms, args.seconds)
            su, mu = s["server_cpu_us_per_forwarded_pkt"], m["server_cpu_us_per_forwarded_pkt"]
            print(f"| {rooms} | {su:.1f} ({s['server_cpu_pct_of_core']:.1f} %) "
                  f"| {mu:.1f} ({m['server_cpu_pct_of_core']:.1f} %) | **{su / mu:.2f}×** "
                  f"| {s['server_rss_mb']:.1f} MB | {m['server_rss_kb_peak_window'] / 1024:.1f} MB "
                  f"| {s['delivery']:.4f} | {m['delivery_ratio']:.4f} "
                  f"| {s['added_delay_p99_ms']:.1f} ms | {m['latency_ms_p99']:.1f} ms "
                  f"| {s['loadgen_cpu_pct']:.0f} % / {m['loadgen_cpu_pct_of_core']:.0f} % |",
                  flush=True)


if __name__ == "__main__":
    main()
