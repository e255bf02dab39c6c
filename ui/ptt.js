// Push-to-talk as a pure state machine for the browser engine: inputs in,
// actions out, time passed in (ms). The same behaviour as the desktop
// engine's machine (crates/engine/src/ptt.rs), checked against one table of
// cases with it (tests/ptt/cases.txt, tests/ptt_table.rs).
//
// Each channel of a press is a leg with its own Floor Request (3GPP TS
// 24.380): pending (no answer yet), queued, granted, or done. The first
// Floor Granted starts the transmission, later ones join it; releasing the
// key sends the release tail, then Floor Release for every leg in play.
//
// One difference from the desktop, by design: the desktop buffers what is
// captured before Floor Granted and sends it on the grant; the browser sends
// from the press and the SFU holds it until the grant (docs/protocol.md).
// So the browser's machine has an `uplink` action (send the microphone or
// not) where the desktop's has frames.
"use strict";

/**
 * @typedef {{type: "press", channels: string[]} | {type: "release"} |
 *   {type: "granted", channel: string} | {type: "denied", channel: string, reason: string} |
 *   {type: "queued", channel: string, position: number} | {type: "revoked", channel: string, reason: string} |
 *   {type: "floor_idle", channel: string} | {type: "disconnected"} | {type: "tick"}} PttInput
 * @typedef {{type: "request_floor", channel: string} | {type: "release_floor", channel: string} |
 *   {type: "talk_started", channel: string} | {type: "talk_ended", channel: string} |
 *   {type: "busy", channel: string, reason: string} | {type: "queued", channel: string, position: number} |
 *   {type: "revoked", channel: string, reason: string} | {type: "uplink", on: boolean}} PttAction
 * @typedef {"pending" | "queued" | "granted" | "done"} Leg
 */

/**
 * A PTT machine with a release tail of `tailMs` (ms).
 * @param {{tailMs: number}} config
 */
function createPtt({ tailMs }) {
  /** @type {"idle" | "requesting" | "queued" | "talking" | "tail"} */
  let state = "idle";
  /** @type {Map<string, Leg>} the press's channels, in press order */
  let legs = new Map();
  /** @type {number | null} when the key went up while requesting, ms */
  let releasedAt = null;
  /** @type {number | null} when the tail ends, ms */
  let until = null;
  let uplink = false;
  /** @type {PttAction[]} */
  let out = [];

  const any = (/** @type {Leg} */ leg) => [...legs.values()].includes(leg);
  const open = (/** @type {string} */ c) => legs.get(c) === "pending" || legs.get(c) === "queued";
  const setUplink = (/** @type {boolean} */ on) => {
    if (uplink !== on) { uplink = on; out.push({ type: "uplink", on }); }
  };
  const idle = () => {
    state = "idle"; legs = new Map(); releasedAt = null; until = null;
    setUplink(false);
  };
  // Ends the press: Floor Release for every leg in play, Talk Ended for
  // each granted one.
  const end = () => {
    for (const [c, leg] of legs) {
      if (leg === "granted") out.push({ type: "release_floor", channel: c }, { type: "talk_ended", channel: c });
      else if (leg === "pending" || leg === "queued") out.push({ type: "release_floor", channel: c });
    }
    idle();
  };
  // Where a press with nothing granted stands after a leg changed.
  const waiting = () => {
    if (any("pending")) state = "requesting";
    else if (any("queued")) { state = "queued"; releasedAt = null; setUplink(false); }
    else idle();
  };

  /** @param {PttInput} input @param {number} now */
  function step(input, now) {
    switch (input.type) {
      case "press": {
        const chans = [...new Set(input.channels)];
        if (state === "idle" && chans.length) {
          legs = new Map(chans.map((c) => [c, /** @type {Leg} */ ("pending")]));
          state = "requesting";
          releasedAt = null;
          // The microphone first, as the requests go: the SFU holds what
          // arrives from the requester until the grant.
          setUplink(true);
          for (const c of chans) out.push({ type: "request_floor", channel: c });
        } else if (state === "tail" && chans.length === legs.size && chans.every((c) => legs.has(c))) {
          // Pressed again during the tail: the same transmission goes on.
          state = "talking";
          until = null;
        }
        break;
      }
      case "release":
        if (state === "requesting" && releasedAt === null) releasedAt = now;
        else if (state === "queued") end(); // a queued member's Floor Release cancels its request
        else if (state === "talking") { state = "tail"; until = now + tailMs; }
        break;
      case "granted": {
        const c = input.channel;
        if (legs.get(c) === "granted") break; // a repeated grant
        if (!open(c)) { out.push({ type: "release_floor", channel: c }); break; } // not wanted (any more)
        out.push({ type: "talk_started", channel: c });
        legs.set(c, "granted");
        if (state === "requesting") {
          if (releasedAt === null) state = "talking";
          else if (now >= releasedAt + tailMs) end();
          else { state = "tail"; until = releasedAt + tailMs; }
        } else if (state === "queued") {
          state = "talking";
          setUplink(true);
        }
        break;
      }
      case "denied":
        if (!open(input.channel)) break;
        out.push({ type: "busy", channel: input.channel, reason: input.reason });
        legs.set(input.channel, "done");
        if (state === "requesting" || state === "queued") waiting();
        break;
      case "queued": {
        const c = input.channel;
        if (!open(c)) break;
        out.push({ type: "queued", channel: c, position: input.position });
        if (state === "requesting") {
          if (releasedAt !== null) {
            // Let go before the answer came: nobody wants the turn.
            out.push({ type: "release_floor", channel: c });
            legs.set(c, "done");
          } else legs.set(c, "queued");
          waiting();
        } else if (state === "tail") {
          // The key is up: nobody will wait for this turn.
          out.push({ type: "release_floor", channel: c });
          legs.set(c, "done");
        } else legs.set(c, "queued");
        break;
      }
      case "revoked":
      case "floor_idle": {
        const c = input.channel;
        if ((state !== "talking" && state !== "tail") || legs.get(c) !== "granted") break;
        if (input.type === "revoked") out.push({ type: "revoked", channel: c, reason: input.reason });
        out.push({ type: "talk_ended", channel: c });
        legs.set(c, "done");
        if (!any("granted")) end(); // nowhere left to talk: cancel the legs still waiting
        break;
      }
      case "disconnected":
        for (const [c, leg] of legs) if (leg === "granted") out.push({ type: "talk_ended", channel: c });
        idle();
        break;
      case "tick":
        if (state === "tail" && until !== null && now >= until) end();
        break;
      default:
        break;
    }
  }

  return {
    /**
     * Feeds one input at `now` (ms, any monotonic origin); returns the
     * actions to carry out, in order.
     * @param {PttInput} input @param {number} now
     * @returns {PttAction[]}
     */
    handle(input, now) {
      out = [];
      step(input, now);
      return out;
    },
    /** When to feed a `tick` (ms, same origin), or null. */
    timeout: () => (state === "tail" ? until : null),
    /** idle | requesting | queued | talking | tail */
    phase: () => state,
    /** The release tail for the next release, ms. */
    setTail(ms) { tailMs = ms; },
  };
}

