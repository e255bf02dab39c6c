#!/usr/bin/env python3
"""Prints how speech survives impaired networks (docs/benchmarks.md, "Bad
networks"): a squawk-server whose media port is reached only through the
squawk-netsim relay, a talker and a listener bot, and each impairment profile
applied to every hop (talker -> server and server -> listener) once both are
connected. Real speech: the four Harvard-phrase recordings back to back
(about 21 s). Per profile and run: STOI of the whole recording and the
median and lowest STOI of its 1.5 s windows and PESQ wideband (ITU-T P.862.2,
tests/audio_check.py --pesq), what the
listener's jitter buffer saw (lost, recovered by FEC, concealed, its target
delay) and the mouth-to-ear delay (where the speech sits in the recording
after the listener's Floor Taken).

Usage: scripts/bench-network.py [--bin-dir DIR] [--runs N] [--expected-loss PCT] [--no-fec]
                                [--red N] [--jitter-cushion-ms MS] [PROFILE...]
(DIR holds squawk-server, squawk-bot and squawk-netsim; default
target/release. A PROFILE is squawk-netsim's text form, e.g. "loss=10%".
--red N: RED (RFC 2198) levels for both bots (squawk-bot --red) and the
server (--red-levels); 0 is plain Opus on both hops.
--no-fec: the talker sends no Opus in-band FEC, so a loss is only concealed
(plain PLC), for a side-by-side comparison; the relay's seeds are the same
for every setting, so each run sees the same losses.)
Needs the audio-check virtualenv (scripts/setup.sh --tests).
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import wave

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AUDIO = os.path.join(ROOT, "..", "shared", "audio")
PROFILES = [
    "clean",
    "loss=10%",
    "loss=20%",
    "burst=10%/3",
    "burst=20%/3",
    "delay=40ms,jitter=30ms,reorder",
    "delay=50ms,jitter=20ms,loss=10%",
]


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def long_speech(path):
    frames = b""
    for name in ("F1", "M1", "F2", "M2"):
        with wave.open(os.path.join(AUDIO, f"{name}_harvard_phrases.wav")) as w:
            frames += w.readframes(w.getnframes())
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(frames)


def lines(p):
    for line in p.stdout:
        try:
            yield json.loads(line)
        except ValueError:
            continue


def wait_event(p, name):
    for ev in lines(p):
        if ev.get("event") == name:
            return ev
    return None


def one_run(bin_dir, profile, speech, tmp, n, talker_extra=(), red=None, cushion_ms=None):
    port = free_udp_port()
    relay = subprocess.Popen(
        [f"{bin_dir}/squawk-netsim", "--listen", f"127.0.0.2:{port}",
         "--upstream", f"127.0.0.1:{port}", "--seed", str(n + 1)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    relay.stdout.readline()
    server = subprocess.Popen(
        [f"{bin_dir}/squawk-server", "--http", "127.0.0.1:0", "--media", f"127.0.0.1:{port}",
         "--workers", "1", "--advertise-ip", "127.0.0.2", "--data-dir", f"{tmp}/data{n}"]
        + (["--red-levels", str(red)] if red is not None else []),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env=dict(os.environ, RUST_LOG="warn"))
    url = None
    for line in server.stdout:
        if line.startswith("squawk-server ready"):
            url = "ws://" + next(w[5:] for w in line.split() if w.startswith("http=")) + "/ws"
            break
    if url is None:
        sys.exit("squawk-server did not start")
    rec = f"{tmp}/rec{n}.wav"
    env = dict(os.environ, RUST_LOG="error")
    bot = lambda name, args: subprocess.Popen(
        [f"{bin_dir}/squawk-bot", "--server", url, "--name", name]
        + (["--red", str(red)] if red is not None else [])
        + (["--jitter-cushion-ms", str(cushion_ms)] if cushion_ms is not None else []) + args,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        ear = bot("Ear", ["listen", "--channel", "N", "--record", rec, "--seconds", "32"])
        wait_event(ear, "ready")
        mouth = bot("Mouth", ["talk", "--channel", "N", "--wav", speech, "--delay-ms", "1000",
                              *talker_extra])
        wait_event(mouth, "ready")
        relay.stdin.write(f"profiles {profile} {profile}\n")
        relay.stdin.flush()
        relay.stdout.readline()
        mouth.wait()
        # Every transmission report (a long gap under loss splits a stream),
        # and where in the recording the talk began (Floor Taken).
        events = list(lines(ear))
        received = [ev["report"] for ev in events if ev.get("event") == "received"]
        taken = next((ev.get("ms_into_recording") for ev in events
                      if ev.get("event") == "floor_taken"), None)
        ear.wait()
    finally:
        server.terminate()
        server.wait()
        relay.stdin.close()
        relay.wait()
    py = os.environ.get("SQUAWK_PYTHON", os.path.expanduser("~/.cache/squawk-venv/bin/python"))
    out = subprocess.run([py, os.path.join(ROOT, "tests", "audio_check.py"), "--pesq", speech, rec],
                         capture_output=True, text=True)
    total = {k: sum(r.get(k, 0) for r in received)
             for k in ("packets", "lost", "recovered_fec", "concealed")}
    total["jitter_buffer_ms"] = max((r.get("jitter_buffer_ms", 0) for r in received), default=0)
    check = json.loads(out.stdout)
    # Mouth to ear: where the speech sits in the recording after where the
    # talk began (the talker sends from its press, a moment before Floor
    # Taken reaches the listener: a few ms on loopback).
    if "delay_ms" in check and taken is not None:
        check["mouth_to_ear_ms"] = check["delay_ms"] - taken
    return check, total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--expected-loss", type=int, metavar="PCT",
                    help="the talker's Opus expected packet loss, %% (default: the engine's)")
    ap.add_argument("--no-fec", action="store_true",
                    help="the talker sends no Opus in-band FEC (plain PLC)")
    ap.add_argument("--red", type=int, metavar="N",
                    help="RED levels for both bots and the server (0: no RED; default: theirs, 2)")
    ap.add_argument("--jitter-cushion-ms", type=int, metavar="MS",
                    help="both bots' jitter-buffer cushion over the measured jitter (default: the engine's, 20)")
    ap.add_argument("profiles", nargs="*", default=PROFILES)
    a = ap.parse_args()
    extra = ["--expected-loss", str(a.expected_loss)] if a.expected_loss is not None else []
    if a.no_fec:
        extra.append("--no-fec")
    print("| profile (each hop) | STOI | windows median (lowest) | PESQ-WB | lost / FEC / concealed "
          "| jitter buffer | mouth to ear | runs |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        speech = f"{tmp}/speech.wav"
        long_speech(speech)
        for profile in a.profiles:
            runs = [one_run(a.bin_dir, profile, speech, tmp, n, extra, a.red, a.jitter_cushion_ms) for n in range(a.runs)]
            ok = [(r, rep) for r, rep in runs if "stoi" in r]
            if not ok:
                print(f"| `{profile}` | speech not found | | | | | | {a.runs} |")
                continue
            fmt = lambda xs, d=3: (f"{min(xs):.{d}f}-{max(xs):.{d}f}" if len(xs) > 1
                                   else f"{xs[0]:.{d}f}")
            stoi = [r["stoi"] for r, _ in ok]
            med = [r["stoi_windows_median"] for r, _ in ok]
            low = min(r["stoi_windows_min"] for r, _ in ok)
            pesq = [r["pesq_wb"] for r, _ in ok]
            lost = statistics.mean(rep.get("lost", 0) for _, rep in ok)
            fec = statistics.mean(rep.get("recovered_fec", 0) for _, rep in ok)
            conc = statistics.mean(rep.get("concealed", 0) for _, rep in ok)
            jb = statistics.mean(rep.get("jitter_buffer_ms", 0) for _, rep in ok)
            m2e = [r["mouth_to_ear_ms"] for r, _ in ok if "mouth_to_ear_ms" in r]
            delay = statistics.mean(m2e) if m2e else float("nan")
            print(f"| `{profile}` | {fmt(stoi)} | {fmt(med)} ({low:.3f}) | {fmt(pesq, 2)} | "
                  f"{lost:.0f} / {fec:.0f} / {conc:.0f} | {jb:.0f} ms | {delay:.0f} ms | "
                  f"{len(ok)} of {a.runs} |")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
