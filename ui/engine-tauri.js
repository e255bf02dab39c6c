// The desktop engine: the Rust engine behind Tauri commands and the
// "engine-event" stream (src-tauri/lib.rs). Implements the engine interface
// that app.js uses (see engine-browser.js for the full description).
"use strict";

function createTauriEngine(tauri) {
  const invoke = (cmd, args) => tauri.core.invoke(cmd, args);
  const listeners = [];
  const emit = (ev) => listeners.forEach((f) => f(ev));
  tauri.event.listen("engine-event", (e) => {
    const ev = e.payload;
    // Connection state in the interface's terms.
    if (ev.type === "welcome") emit({ type: "connection", state: "connected" });
    if (ev.type === "closed") emit({ type: "connection", state: "offline", reason: ev.reason });
    emit(ev);
  });
  return {
    kind: "tauri",
    /** Whether the engine takes the server URL from the user. */
    asksServer: true,
    /** Local audio controls (level, gain, volume, mic test) are not wired to the Rust engine yet. */
    audioControls: false,
    /** Start-up parameters from the command line. */
    async init() {
      const cli = await invoke("app_cli");
      return { server: cli.server, name: cli.name, channels: cli.channels || [], servers: cli.servers || [],
        autoConnect: !!cli.connect_at_start };
    },
    async connect({ server, name, channels }) {
      emit({ type: "connection", state: "connecting" });
      await invoke("engine_connect", { server, name, channels });
    },
    disconnect: () => invoke("engine_disconnect"),
    join: (channel) => invoke("engine_join", { channel }),
    leave: (channel) => invoke("engine_leave", { channel }),
    listChannels: () => invoke("engine_list_channels"),
    press: (channel) => invoke("engine_press", { channel }),
    /** The channel the global talk key talks into. */
    setTarget: (channel) => invoke("app_set_target", { channel }),
    /** The global talk key's status: {key, mode, available, reason?} (also sent as a `talk_key_status` event). */
    talkKeyStatus: () => invoke("app_talk_key_status"),
    release: () => invoke("engine_release"),
    onEvent: (f) => listeners.push(f),
  };
}
window.createTauriEngine = createTauriEngine;
