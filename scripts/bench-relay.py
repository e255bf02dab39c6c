#!/usr/bin/env python3
"""Prints what a TURN relay costs a Squawk client (docs/benchmarks.md, "TURN
relay"): coturn on loopback beside a squawk-server, and squawk-bot clients
with and without --ice-relay-only, in the same run.

- set-up: from starting a listener bot to its media being up (its `ice`
  line: WebSocket, welcome, TURN allocation when relayed, ICE, DTLS), and to
  `ready` (its channel joined too); N connects per mode.
- speech: a talker (F1) heard by a direct listener, talker and listener
  each direct or relay-only; STOI of the recording (tests/audio_check.py).

Usage: scripts/bench-relay.py [--bin-dir DIR] [--connects N]
(DIR holds squawk-server and squawk-bot; default target/release.)
Needs coturn (scripts/setup.sh --tests) and the audio-check virtualenv.
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET = "bench-relay"


def free_port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_coturn(tmp):
    port = free_port(socket.SOCK_DGRAM)
    lo = 40000 + (port % 100) * 200
    p = subprocess.Popen(
        ["turnserver", "-n", "--no-cli", "--allow-loopback-peers", "--use-auth-secret",
         f"--static-auth-secret={SECRET}", "--realm=squawk.test", "--listening-ip=127.0.0.1",
         "--relay-ip=127.0.0.1", f"--listening-port={port}", f"--min-port={lo}",
         f"--max-port={lo + 199}", "--no-tls", "--no-dtls", "--log-file=stdout", "--simple-log",
         f"--pidfile={tmp}/turnserver.pid", f"--db={tmp}/turndb"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in p.stdout:
        if "Total General servers" in line:
            break
    return p, port


def start_server(bin_dir, tmp, turn_port):
    p = subprocess.Popen(
        [f"{bin_dir}/squawk-server", "--http", "127.0.0.1:0", "--media", "127.0.0.1:0",
         "--workers", "2", "--data-dir", f"{tmp}/data",
         "--turn-url", f"turn:127.0.0.1:{turn_port}?transport=udp", "--turn-secret", SECRET],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env=dict(os.environ, RUST_LOG="warn"))
    for line in p.stdout:
        if line.startswith("squawk-server ready"):
            http = next(w[5:] for w in line.split() if w.startswith("http="))
            return p, f"ws://{http}/ws"
    sys.exit("squawk-server did not start")


def bot(bin_dir, url, name, relay, args):
    cmd = [f"{bin_dir}/squawk-bot", "--server", url, "--name", name]
    if relay:
        cmd.append("--ice-relay-only")
    return subprocess.Popen(cmd + args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, env=dict(os.environ, RUST_LOG="error"))


def events(p):
    for line in p.stdout:
        try:
            yield json.loads(line)
        except ValueError:
            continue


def set_up(bin_dir, url, relay, i):
    start = time.monotonic()
    p = bot(bin_dir, url, f"S{i}", relay, ["listen", "--channel", f"setup{i}", "--record",
                                           "/dev/null", "--seconds", "0.5"])
    media = ready = None
    kind = None
    for ev in events(p):
        if ev.get("event") == "ice":
            media = (time.monotonic() - start) * 1000
            kind = ev["local_candidate_type"]
        if ev.get("event") == "ready":
            ready = (time.monotonic() - start) * 1000
            break
    p.wait()
    return media, ready, kind


def speech(bin_dir, url, talker_relay, listener_relay, tmp, n):
    rec = f"{tmp}/rec{n}.wav"
    wav = os.path.join(ROOT, "..", "shared", "audio", "F1_harvard_phrases.wav")
    ear = bot(bin_dir, url, "Ear", listener_relay,
              ["listen", "--channel", f"speech{n}", "--record", rec, "--seconds", "16"])
    for ev in events(ear):
        if ev.get("event") == "ready":
            break
    talk = bot(bin_dir, url, "Mouth", talker_relay,
               ["talk", "--channel", f"speech{n}", "--wav", wav, "--delay-ms", "500"])
    talk.wait()
    ear.wait()
    py = os.environ.get("SQUAWK_PYTHON", os.path.expanduser("~/.cache/squawk-venv/bin/python"))
    out = subprocess.run([py, os.path.join(ROOT, "tests", "audio_check.py"), wav, rec],
                         capture_output=True, text=True)
    return json.loads(out.stdout)


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release"))
    ap.add_argument("--connects", type=int, default=10)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        coturn, turn_port = start_coturn(tmp)
        server, url = start_server(a.bin_dir, tmp, turn_port)
        try:
            print("| client | candidate | start → media up p50 / p95 | start → ready p50 / p95 | n |")
            print("|---|---|---|---|---|")
            for relay in (False, True):
                runs = [set_up(a.bin_dir, url, relay, i + (100 if relay else 0))
                        for i in range(a.connects)]
                media = [m for m, _, _ in runs if m is not None]
                ready = [r for _, r, _ in runs if r is not None]
                kinds = sorted({k for _, _, k in runs if k})
                print(f"| {'relay-only' if relay else 'direct'} | {', '.join(kinds)} | "
                      f"{statistics.median(media):.0f} / {pct(media, 0.95):.0f} ms | "
                      f"{statistics.median(ready):.0f} / {pct(ready, 0.95):.0f} ms | {len(runs)} |")
            print()
            print("| talker | listener | STOI | speech found after | lag changes (ms) |")
            print("|---|---|---|---|---|")
            for n, (tr, lr) in enumerate([(False, False), (True, False), (False, True), (True, True)]):
                r = speech(a.bin_dir, url, tr, lr, tmp, n)
                name = lambda relay: "relay-only" if relay else "direct"
                print(f"| {name(tr)} | {name(lr)} | {r.get('stoi', 0):.3f} | "
                      f"{r.get('delay_ms', 0):.0f} ms | {r.get('lag_changes_ms')} |")
        finally:
            server.terminate()
            coturn.terminate()
            server.wait()
            coturn.wait()


if __name__ == "__main__":
    main()
