#!/usr/bin/env python3
"""Connection set-up on a lossy link (issue 15): N connects per loss level.

In a network namespace of its own (root; nftables drops 1 UDP datagram in k
as it arrives at a socket, so each hop, bot -> server and server -> bot,
loses its share), a server runs and a talker talks continuously into
channel N. For each loss level, one listener after another connects
(WebSocket, join, offer/answer, ICE, DTLS) and is stopped once it hears the
talker. Per level it prints the connects that succeeded, the time from the
listener's start to `ready` (media up and joined) and to its first audio
(`receive_started`), p50 / p95 / max, and how many needed a second
connection attempt (the bot's `connect_retry` line).

    scripts/bench-connect.py [--connects 50] [--loss 0,10,20] [--debug]
"""

import argparse
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEECH = ROOT.parent / "shared" / "audio" / "F1_harvard_phrases.wav"


def binary(name: str, profile: str) -> str:
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    path = target / profile / name
    if not path.exists():
        sys.exit(f"{path} is missing: cargo build {'--release ' if profile == 'release' else ''}"
                 "-p squawk-bot -p squawk-server")
    return str(path)


class Proc:
    """A child whose stdout lines are read on a thread, with arrival times."""

    def __init__(self, args: list[str]):
        self.start = time.monotonic()
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue = queue.Queue()
        self.stderr: list[str] = []
        self.all: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            self.all.append(line.rstrip("\n"))
            self.lines.put((time.monotonic(), line.rstrip("\n")))
        self.lines.put((time.monotonic(), None))

    def _read_err(self):
        for line in self.p.stderr:
            self.stderr.append(line.rstrip("\n"))

    def wait_for(self, pred, timeout: float):
        """The first line `pred` accepts, with its time; None at EOF or timeout."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None
            try:
                at, line = self.lines.get(timeout=left)
            except queue.Empty:
                return None
            if line is None:
                return None
            if pred(line):
                return at, line

    def stop(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()


def event(name):
    def pred(line: str) -> bool:
        try:
            return json.loads(line).get("event") == name
        except ValueError:
            return False
    return pred


def sh(*args: str, stdin: str | None = None):
    subprocess.run(args, check=True, input=stdin, text=True)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--connects", type=int, default=50)
    ap.add_argument("--loss", default="0,10,20", help="percent per hop, each a divisor of 100")
    ap.add_argument("--debug", action="store_true", help="debug build instead of release")
    ap.add_argument("--timeout", type=float, default=30.0, help="s a listener may take to hear audio")
    args = ap.parse_args()
    profile = "debug" if args.debug else "release"
    server_bin, bot_bin = binary("squawk-server", profile), binary("squawk-bot", profile)
    ns = f"squawk-connect-{os.getpid()}"
    sh("ip", "netns", "add", ns)
    inns = ["ip", "netns", "exec", ns]
    procs: list[Proc] = []
    try:
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh(*inns, "nft", "-f", "-", stdin="add table inet bench\n"
           "add chain inet bench input { type filter hook input priority 0; }\n")
        server = Proc(inns + [server_bin, "--http", "127.0.0.1:0", "--media", "127.0.0.1:0"])
        procs.append(server)
        ready = server.wait_for(lambda l: l.startswith("squawk-server ready"), 20)
        if not ready:
            sys.exit("server did not start: " + "\n".join(server.stderr[-20:]))
        http = next(w[5:] for w in ready[1].split() if w.startswith("http="))
        bot = inns + [bot_bin, "--server", f"ws://{http}/ws"]
        talker = Proc(bot + ["--name", "T", "talk", "--channel", "N", "--wav", str(SPEECH),
                             "--repeat", "100000", "--gap-ms", "0"])
        procs.append(talker)
        if not talker.wait_for(event("floor_granted"), 20):
            sys.exit("talker did not get the floor: " + "\n".join(talker.stderr[-20:]))
        print("| loss per hop | connects | succeeded | start → ready p50 / p95 / max | "
              "start → first audio p50 / p95 / max | connects retried |")
        print("|---|---|---|---|---|---|")
        for loss in [int(x) for x in args.loss.split(",")]:
            sh(*inns, "nft", "flush", "chain", "inet", "bench", "input")
            if loss:
                sh(*inns, "nft", "add", "rule", "inet", "bench", "input", "meta", "l4proto", "udp",
                   "numgen", "random", "mod", str(100 // loss), "0", "counter", "drop")
            to_ready, to_audio, retried, failures = [], [], 0, []
            for i in range(args.connects):
                lis = Proc(bot + ["--name", f"L{i}", "listen", "--channel", "N", "--record",
                                  "/dev/null", "--seconds", str(int(args.timeout) + 5)])
                got_ready = lis.wait_for(event("ready"), args.timeout)
                got_audio = got_ready and lis.wait_for(event("receive_started"),
                                                       args.timeout - (got_ready[0] - lis.start))
                lis.stop()
                if any(event("connect_retry")(l) for l in lis.all):
                    retried += 1
                if got_ready and got_audio:
                    to_ready.append(got_ready[0] - lis.start)
                    to_audio.append(got_audio[0] - lis.start)
                else:
                    failures.append((i, "no ready" if not got_ready else "no audio",
                                     lis.stderr[-3:]))
            fmt = (lambda xs: " / ".join(f"{pct(xs, p):.2f}" for p in (50, 95, 100)) + " s"
                   if xs else "-")
            print(f"| {loss} % | {args.connects} | {len(to_ready)} | {fmt(to_ready)} | "
                  f"{fmt(to_audio)} | {retried} |", flush=True)
            for f in failures:
                print(f"  failed: connect {f[0]}: {f[1]}: {f[2]}", file=sys.stderr)
    finally:
        for p in procs:
            p.stop()
        subprocess.run(["ip", "netns", "delete", ns])


if __name__ == "__main__":
    main()
