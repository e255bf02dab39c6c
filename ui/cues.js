// Audio cues, synthesised with WebAudio so that no sound files are needed and
// the desktop app and the browser client sound the same. Each cue can be
// switched off; the choice is kept in localStorage ("squawk.cues").
"use strict";

const SquawkCues = (() => {
  // name -> list of [frequency Hz (or [f1, f2] for a dual tone), start s, length s]
  const SHAPES = {
    // Talk-permit chirp on Floor Granted: two quick rising tones.
    permit: [[880, 0, 0.05], [1320, 0.06, 0.06]],
    // Busy tone on Floor Deny: 480 + 620 Hz, two bursts (North American busy).
    busy: [[[480, 620], 0, 0.18], [[480, 620], 0.3, 0.18]],
    // End-of-transmission ("roger") beep when a transmission ends.
    end: [[1000, 0, 0.09]],
    // Incoming-call chirp when someone starts talking: falling pair.
    incoming: [[1400, 0, 0.04], [1000, 0.05, 0.05]],
    // Emergency alarm, repeated until acknowledged: a two-tone warble.
    emergency: [[1200, 0, 0.15], [800, 0.15, 0.15], [1200, 0.3, 0.15], [800, 0.45, 0.15]],
  };
  const KEY = "squawk.cues";
  let enabled = { permit: true, busy: true, end: true, incoming: true, emergency: true };
  try { Object.assign(enabled, JSON.parse(localStorage.getItem(KEY) || "{}")); } catch (_) { /* defaults */ }
  let ctx = null;
  let played = [];
  let idle = null;
  /** A running AudioContext keeps an audio thread and an output stream busy
   * (about 3.5 % of a core in WebKitGTK): suspend it this long after the last cue. */
  const SUSPEND_AFTER_MS = 1500;

  function context() {
    if (!ctx) {
      const AC = window.AudioContext || window.webkitAudioContext;
      if (!AC) return null;
      ctx = new AC({ latencyHint: "interactive" });
    }
    if (ctx.state === "suspended") ctx.resume().catch(() => {});
    clearTimeout(idle);
    idle = setTimeout(() => { if (ctx && ctx.state === "running") ctx.suspend().catch(() => {}); }, SUSPEND_AFTER_MS);
    return ctx;
  }

  /** Plays cue `name` unless switched off. Returns whether it was played. */
  function play(name) {
    played.push(name);
    if (!enabled[name] || !SHAPES[name]) return false;
    const c = context();
    if (!c) return false;
    const t0 = c.currentTime + 0.01;
    const out = c.createGain();
    out.gain.value = 0.18;
    out.connect(c.destination);
    for (const [f, start, len] of SHAPES[name]) {
      for (const freq of Array.isArray(f) ? f : [f]) {
        const o = c.createOscillator();
        const env = c.createGain();
        o.frequency.value = freq;
        env.gain.setValueAtTime(0, t0 + start);
        env.gain.linearRampToValueAtTime(1, t0 + start + 0.005);
        env.gain.setValueAtTime(1, t0 + start + len - 0.01);
        env.gain.linearRampToValueAtTime(0, t0 + start + len);
        o.connect(env).connect(out);
        o.start(t0 + start);
        o.stop(t0 + start + len + 0.01);
      }
    }
    return true;
  }

  function set(name, on) {
    enabled[name] = !!on;
    try { localStorage.setItem(KEY, JSON.stringify(enabled)); } catch (_) { /* private mode */ }
  }

  return {
    play,
    set,
    isEnabled: (name) => !!enabled[name],
    /** Unlocks audio output; call from a user gesture (autoplay policy). */
    unlock: () => { context(); },
    /** Names of the cues requested so far, for tests. */
    history: () => played.slice(),
  };
})();
window.SquawkCues = SquawkCues;
