// The desktop engine: the Rust engine behind Tauri commands and the
// "engine-event" stream (src-tauri/lib.rs). Implements the engine interface
// that app.js uses (see engine-browser.js for the full description).
"use strict";

function createTauriEngine(tauri) {
  // A command's failure is a UiError ({code, message}, src-tauri/events.rs):
  // rejected as an Error with its `code`, as the browser engine rejects.
  const invoke = (cmd, args) => tauri.core.invoke(cmd, args).catch((/** @type {any} */ e) => {
    /** @type {import("./types/events").UiError | string} */
    const failure = e;
    const err = /** @type {Error & {code?: string}} */ (new Error(typeof failure === "string" ? failure : failure.message));
    if (typeof failure !== "string") err.code = failure.code;
    throw err;
  });
  const listeners = [];
  /** @param {import("./types/events").UiEvent} ev */
  const emit = (ev) => listeners.forEach((f) => f(ev));
  // Audio controls as the backend has them (app_set_audio takes them all).
  const audio = { input_gain: 1, output_volume: 1, mic_test: false, meter: false, noise_suppression: true, auto_gain: true };
  let level = 0;
  const sendAudio = () => invoke("app_set_audio", {
    inputGain: audio.input_gain, outputVolume: audio.output_volume, micTest: audio.mic_test, meter: audio.meter,
    noiseSuppression: audio.noise_suppression, autoGain: audio.auto_gain,
  });
  tauri.event.listen("engine-event", (e) => {
    const ev = e.payload;
    if (ev.type === "level") { level = ev.peak; return; }
    // Connection state in the interface's terms.
    if (ev.type === "welcome") emit({ type: "connection", state: "connected" });
    if (ev.type === "closed") emit({ type: "connection", state: "offline", reason: ev.reason });
    emit(ev);
  });
  return {
    kind: "tauri",
    /** Whether the engine takes the server URL from the user. */
    asksServer: true,
    /** Local audio controls: level meter, input gain, output volume, mic test. */
    audioControls: true,
    /** Input gain and output volume are saved by the app, not in localStorage. */
    savesAudio: true,
    /** The global talk key can be set from the UI. */
    talkKeySettings: true,
    /** Start-up parameters from the command line and saved settings. */
    async init() {
      const cli = await invoke("app_cli");
      Object.assign(audio, cli.audio || {});
      return { server: cli.server, name: cli.name, user: cli.user || null, channels: cli.channels || [], servers: cli.servers || [],
        autoConnect: !!cli.connect_at_start, gain: audio.input_gain, volume: audio.output_volume,
        noiseSuppression: audio.noise_suppression, autoGain: audio.auto_gain,
        talkKey: { key: cli.talk_key || null, latch: !!cli.latch, tailMs: cli.tail_ms, pedal: cli.pedal || null } };
    },
    /** Peak input level after gain, 0..1, as of the last `level` event (needs meter(true)). */
    inputLevel: () => level,
    setGain(g) { audio.input_gain = g; return sendAudio(); },
    setVolume(v) { audio.output_volume = v; return sendAudio(); },
    micTest(on) { audio.mic_test = !!on; return sendAudio(); },
    /** Noise suppression and automatic gain on the capture (both on by default; saved by the app). */
    setProcessing({ noiseSuppression, autoGain }) {
      audio.noise_suppression = !!noiseSuppression;
      audio.auto_gain = !!autoGain;
      return sendAudio();
    },
    /** Level events on or off (only while the audio panel is open: they cost CPU). */
    meter(on) { audio.meter = !!on; if (!on) level = 0; return sendAudio(); },
    /**
     * Sets the global talk key: key as global-hotkey names it ("F9",
     * "Control+Shift+KeyT") or null, latch mode, release tail in ms.
     * Resolves to the key's status; rejects with the reason for a bad key.
     */
    setTalkKey: ({ key, latch, tailMs }) => invoke("app_set_talk_key", { key, latch, tailMs }),
    /** Microphones and speakers to choose from, and the choice (AudioDevices). */
    listDevices: () => invoke("app_audio_devices"),
    /** Chooses the microphone (`end` "input") or speaker ("output") by name; null: the default. Saved. */
    setDevice: (end, name) => invoke("app_set_audio_device", { end, name }),
    /** HID devices for a pedal: [{path, name, vendor, product}]. */
    listPedals: () => invoke("app_list_pedals"),
    /** Learns the pedal at `path` (press and release it within 20 s); resolves to {device, map}. */
    learnPedal: (path) => invoke("app_learn_pedal", { path }),
    clearPedal: () => invoke("app_clear_pedal"),
    /**
     * The server password, when typed, is kept in the OS keyring by the backend once accepted.
     * With `user`, signs in to that account first (`password` is the account's; empty: the
     * sign-in kept in the keyring) and resolves to the account's display name.
     */
    async connect({ server, name, channels, password, user }) {
      emit({ type: "connection", state: "connecting" });
      return invoke("engine_connect", { server, name, channels, password: password || null, user: user || null });
    },
    /** Disconnects, revokes the kept sign-in of `user` at the server and forgets it. */
    signOut: (server, user) => invoke("account_sign_out", { server, user }),
    /** Trusts the certificate with this SHA-256 fingerprint for `server` from now on. */
    trustCertificate: (server, fingerprint) => invoke("trust_certificate", { server, fingerprint }),
    forgetCertificate: (server) => invoke("forget_certificate", { server }),
    disconnect: () => invoke("engine_disconnect"),
    join: (channel) => invoke("engine_join", { channel }),
    leave: (channel) => invoke("engine_leave", { channel }),
    listChannels: () => invoke("engine_list_channels"),
    press: (channel) => invoke("engine_press", { channel }),
    /** Talk key down for several channels (all-call), with {priority: 0|128|255, queue}. */
    pressAll: (channels, { priority = 0, queue = false } = {}) => invoke("engine_press_all", { channels, priority, queue }),
    /** What the global talk key talks into: the console's selected channels and options ([] = the target). */
    setSelection: (channels, { priority = 0, queue = false } = {}) => invoke("app_set_selection", { channels, priority, queue }),
    emergency: (channel) => invoke("engine_emergency", { channel }),
    ackEmergency: (channel, originator) => invoke("engine_ack_emergency", { channel, originator }),
    cancelEmergency: (channel, originator = null) => invoke("engine_cancel_emergency", { channel, originator }),
    /** Pauses (true) or resumes the channel's downlink at the server. */
    mute: (channel, muted) => invoke("engine_mute", { channel, muted }),
    /** The channel's gain (0..2) and pan (-1 left .. 1 right) in the local mix. */
    setChannelMix: (channel, gain, pan) => invoke("engine_set_channel_mix", { channel, gain, pan }),
    patch: (channels) => invoke("engine_patch", { channels }),
    unpatch: (channel) => invoke("engine_unpatch", { channel }),
    /** Instant recall: replays the `received` transmission with this `recall_id`. */
    replay: (id) => invoke("engine_replay", { id }),
    stopReplay: () => invoke("engine_stop_replay"),
    /** The channel the global talk key talks into. */
    setTarget: (channel) => invoke("app_set_target", { channel }),
    /** The global talk key's status: {key, mode, backend ("x11" | "portal"), available, pending?, trigger? (the desktop's name for a portal key), reason?} (also sent as a `talk_key_status` event). */
    talkKeyStatus: () => invoke("app_talk_key_status"),
    release: () => invoke("engine_release"),
    onEvent: (f) => listeners.push(f),
  };
}
window.createTauriEngine = createTauriEngine;
