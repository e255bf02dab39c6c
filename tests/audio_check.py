#!/usr/bin/env python3
"""Compare a recording with the speech that was sent.

Usage: audio_check.py SOURCE.wav RECORDING.wav   -> one JSON object on stdout
       audio_check.py --silence RECORDING.wav     -> {"rms_dbfs", "peak", "seconds"}
       audio_check.py --channel N SOURCE.wav RECORDING.wav
           as the first form, on channel N (0 = left, 1 = right) of a
           multichannel recording instead of the average of its channels
       audio_check.py --after-ms T SOURCE.wav RECORDING.wav
           as the first form, on the recording from T ms on
       audio_check.py --until-ms T SOURCE.wav RECORDING.wav
           as the first form, on the recording up to T ms (with --after-ms
           and --loop: one talker's segment of a recording, scored against
           the stretch of its own source that it matches)
       audio_check.py --pesq SOURCE.wav RECORDING.wav
           as the first form, adding "pesq_wb" (needs the `pesq` package)
       audio_check.py --loop SOURCE.wav RECORDING.wav
           as the first form, for a source that was played in a loop and
           captured from an unknown point (a browser's fake microphone): the
           reference is the stretch of the looped source that matches the
           recording's audible part.

Alignment: the delay is the lag of the cross-correlation peak (FFT, numpy).
A jitter buffer may legitimately drop or insert a 20 ms frame to follow
clock drift, which shifts everything after it; so the recording is then
re-aligned piecewise: each 500 ms window of the source takes its own lag,
searched within +-60 ms of the global one.
Intelligibility: STOI (Taal et al. 2011) from the maintained `pystoi`
package, on the re-aligned recording ("stoi"); and per 1.5 s window of the
source, each aligned on its own within +-250 ms of the global lag (a jitter
buffer that grows or shrinks shifts what follows), the median and the
lowest of the windows' STOI ("stoi_windows_median", "stoi_windows_min").
Quality (with --pesq): PESQ wideband, ITU-T P.862.2, MOS-LQO from 1.0 to
4.64, from the maintained `pesq` package (the ITU reference code), on the
re-aligned recording and the source both resampled to 16 kHz ("pesq_wb").
Onset: the first 50 ms after the source's speech onset (first 10 ms window
above -40 dBFS) must carry energy in the recording too (ratio in dB).
"""
import json
import sys

import numpy as np
from scipy.io import wavfile
from scipy.signal import fftconvolve
from pystoi import stoi


def load(path, channel=None):
    rate, data = wavfile.read(path)
    if data.dtype == np.int16:
        data = data.astype(np.float64) / 32768.0
    elif data.dtype == np.int32:
        data = data.astype(np.float64) / 2147483648.0
    else:
        data = data.astype(np.float64)
    if data.ndim > 1:
        data = data[:, channel] if channel is not None else data.mean(axis=1)
    return rate, data


def dbfs(x):
    return 20 * np.log10(np.sqrt(np.mean(x * x)) + 1e-12)


def onset(x, rate):
    win = rate // 100
    for i in range(0, len(x) - win, win):
        if dbfs(x[i:i + win]) > -40:
            return i
    return 0


def piecewise(src, rec, lag, rate):
    """The recording aligned window by window to the source."""
    win = rate // 2
    slack = rate * 60 // 1000
    out = np.zeros(len(src))
    lags = []
    for start in range(0, len(src), win):
        s = src[start:start + win]
        lo = max(0, lag + start - slack)
        hi = min(len(rec), lag + start + len(s) + slack)
        best = lag
        if dbfs(s) > -50 and hi - lo > len(s):
            c = fftconvolve(rec[lo:hi], s[::-1], mode="valid")
            best = lo + int(np.argmax(c)) - start
        lags.append(best)
        piece = rec[best + start:best + start + len(s)]
        out[start:start + len(piece)] = piece
    return out, lags


def windowed_stoi(src, rec, lag, rate):
    """STOI of each 1.5 s window of the source that carries speech, each
    aligned on its own; (median, min, count) or None without windows."""
    win = rate * 3 // 2
    slack = rate // 4
    scores = []
    for start in range(0, len(src) - win + 1, win):
        s = src[start:start + win]
        if dbfs(s) < -45:
            continue
        lo = max(0, lag + start - slack)
        hi = min(len(rec), lag + start + win + slack)
        if hi - lo < win:
            continue
        c = fftconvolve(rec[lo:hi], s[::-1], mode="valid")
        at = lo + int(np.argmax(c))
        scores.append(float(stoi(s, rec[at:at + win], rate, extended=False)))
    if not scores:
        return None
    return float(np.median(scores)), float(min(scores)), len(scores)


def pesq_wb(src, rec, rate):
    """PESQ wideband (ITU-T P.862.2) MOS-LQO of `rec` against `src`, both
    resampled from `rate` to 16 kHz."""
    from math import gcd

    from pesq import pesq
    from scipy.signal import resample_poly

    g = gcd(16000, rate)
    ref = resample_poly(src, 16000 // g, rate // g)
    deg = resample_poly(rec, 16000 // g, rate // g)
    return float(pesq(16000, ref, deg, "wb"))


def looped_reference(src, rec, rate):
    """The part of `src` (played in a loop) that the recording's audible
    stretch matches, or None if the recording is silent."""
    win = rate // 100
    loud = [i for i in range(0, len(rec) - win, win) if dbfs(rec[i:i + win]) > -45]
    if not loud:
        return None
    part = rec[loud[0]:loud[-1] + win]
    tiled = np.tile(src, 2 + len(part) // len(src))
    corr = fftconvolve(tiled, part[::-1], mode="valid")
    off = int(np.argmax(corr))
    return tiled[off:off + len(part)]


def main():
    if sys.argv[1] == "--silence":
        rate, rec = load(sys.argv[2])
        peak = float(np.max(np.abs(rec))) if len(rec) else 0.0
        print(json.dumps({"rms_dbfs": float(dbfs(rec)), "peak": peak, "seconds": len(rec) / rate}))
        return
    channel = None
    after_ms = 0.0
    until_ms = None
    argv = sys.argv[1:]
    with_pesq = False
    while argv[0] in ("--channel", "--after-ms", "--until-ms", "--pesq"):
        if argv[0] == "--pesq":
            with_pesq = True
            argv = argv[1:]
            continue
        if argv[0] == "--channel":
            channel = int(argv[1])
        elif argv[0] == "--after-ms":
            after_ms = float(argv[1])
        else:
            until_ms = float(argv[1])
        argv = argv[2:]
    looped = argv[0] == "--loop"
    args = argv[1:] if looped else argv
    rate, src = load(args[0])
    rrate, rec = load(args[1], channel)
    if until_ms is not None:
        rec = rec[:int(until_ms * rrate / 1000)]
    rec = rec[int(after_ms * rrate / 1000):]
    assert rate == rrate, f"rates differ: {rate} vs {rrate}"
    if looped:
        src = looped_reference(src, rec, rate)
        if src is None:
            print(json.dumps({"error": "no audible part in recording", "rec_dbfs": float(dbfs(rec))}))
            return
    corr = fftconvolve(rec, src[::-1], mode="full")
    lag = int(np.argmax(corr)) - (len(src) - 1)
    if lag < 0 or lag + len(src) > len(rec):
        print(json.dumps({"error": "speech not found in recording", "lag": lag,
                          "rec_seconds": len(rec) / rate, "rec_dbfs": float(dbfs(rec))}))
        return
    seg, lags = piecewise(src, rec, lag, rate)
    score = float(stoi(src, seg, rate, extended=False))
    windows = windowed_stoi(src, rec, lag, rate)
    on = onset(src, rate)
    n50 = rate // 20
    first_src = src[on:on + n50]
    first_rec = seg[on:on + n50]
    extra = {}
    if with_pesq:
        extra["pesq_wb"] = pesq_wb(src, seg, rate)
    print(json.dumps({
        **extra,
        "stoi": score,
        "stoi_windows_median": windows[0] if windows else None,
        "stoi_windows_min": windows[1] if windows else None,
        "stoi_windows": windows[2] if windows else 0,
        "delay_ms": lag * 1000.0 / rate,
        "onset_ms": on * 1000.0 / rate,
        "first50_src_dbfs": float(dbfs(first_src)),
        "first50_rec_dbfs": float(dbfs(first_rec)),
        "first50_ratio_db": float(dbfs(first_rec) - dbfs(first_src)),
        "rec_dbfs": float(dbfs(seg)),
        "lag_changes_ms": sorted({round((l - lag) * 1000.0 / rate, 1) for l in lags}),
    }))


if __name__ == "__main__":
    main()
