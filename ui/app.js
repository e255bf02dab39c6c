// Squawk UI, shared by the desktop app (Tauri) and the browser client
// (served by squawk-server). It drives one engine through the interface
// described in engine-browser.js and renders what the engine reports.
"use strict";

const engine = window.__TAURI__ ? createTauriEngine(window.__TAURI__) : createBrowserEngine();
const cues = window.SquawkCues;
// The page's elements by id. Loosely typed on purpose: what is checked
// here is the engine's messages (types/events.d.ts); the elements, their
// ids and kinds are the page's, exercised by the WebDriver tests.
/** @type {(id: string) => any} */
const $ = (id) => document.getElementById(id);

const ui = {
  clientId: null,
  account: null,       // {server, user} when signed in to an account
  media: false,        // whether the media path (ICE + DTLS) is up
  maxTalkMs: 60000,
  channels: new Map(), // name -> {members: [{id, name}], talker: {id, name} | null}
  target: null,        // channel the talk button talks into
  ptt: "idle",         // idle | requesting | queued | talking | busy | receiving | revoked
  talkStart: 0,
  timer: null,
  flash: null,
  held: false,
  known: [],           // server channel list
  // Console (dispatcher) state.
  selected: new Set(), // channels selected for transmit (an all-call when several)
  priority: 0,         // floor priority of the next press: 0 normal, 128 high, 255 emergency
  queue: false,        // wait in the floor queue when busy
  press: null,         // the press in progress: {channels, granted: Set, denied: Set}
  emergencies: new Map(), // "channel/originator" -> {channel, originator: {id, name}, since, acked_by}
  patches: [],         // [[channel, ...], ...]
  consoleOn: false,
  history: [],         // transmissions heard, newest first: {channel, talker, start, durationMs, id}
  replaying: null,     // recall id playing now
};

/** The call history list, with a replay button per kept transmission. */
function renderHistory() {
  const list = $("history");
  list.replaceChildren(...ui.history.map((h) => {
    const li = document.createElement("li");
    if (h.id != null && h.id === ui.replaying) li.className = "playing";
    const text = document.createElement("span");
    const at = new Date(h.start).toLocaleTimeString();
    text.textContent = `#${h.channel} · ${h.talker || "?"} · ${at} · ${Math.max(1, Math.round(h.durationMs / 1000))} s`;
    li.append(text);
    if (h.id != null && engine.replay) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = h.id === ui.replaying ? "■" : "▶";
      b.title = h.id === ui.replaying ? "Stop the replay" : "Replay";
      b.onclick = () => replay(h.id);
      li.append(b);
    }
    return li;
  }));
}

/** Replays recall id `id`, or stops it when it is the one playing. */
function replay(id) {
  const stop = ui.replaying === id;
  Promise.resolve(stop ? engine.stopReplay() : engine.replay(id)).catch((e) => showError(String(e.message || e)));
}

/** What the talk button talks into: the console's selection, else the target. */
function selection() {
  if (ui.consoleOn && ui.selected.size) return [...ui.selected].filter((c) => ui.channels.has(c));
  return ui.target ? [ui.target] : [];
}

/** Tells the desktop backend what the global talk key talks into. */
function onSelection() {
  if (!engine.setSelection) return;
  const chans = ui.consoleOn && ui.selected.size ? [...ui.selected] : [];
  Promise.resolve(engine.setSelection(chans, { priority: ui.priority, queue: ui.queue })).catch(() => {});
}

const desk = createConsole({ ui, engine, $, setTarget: (ch) => setTarget(ch), onSelection, replay });

/** Console layout for wide windows (or when chosen), phone layout otherwise. */
function applyLayout() {
  const pref = localStorage.getItem("squawk.layout");
  const on = pref === "console" || (pref !== "phone" && window.innerWidth >= 1000);
  ui.consoleOn = on;
  document.body.classList.toggle("console", on);
  $("tiles").hidden = !on;
  $("layout").textContent = on ? "Phone layout" : "Console";
  desk.render();
  onSelection();
}

// ---------- rendering ----------

/** Selects the channel the talk button (and the global talk key) talks into. */
function setTarget(ch) {
  ui.target = ch;
  if (ch && engine.setTarget) Promise.resolve(engine.setTarget(ch)).catch(() => {});
}

function showTalkKey(st) {
  if (!st || !st.type) return;
  const hint = $("hint");
  // On Wayland the desktop binds the key (GlobalShortcuts portal) and may
  // give it another trigger than asked: show the one it reports.
  const label = st.trigger || st.key;
  const via = st.backend === "portal"
    ? `Bound by the desktop (GlobalShortcuts portal)${st.trigger ? ` as ${st.trigger}` : ""}; change it in the desktop's keyboard settings.`
    : st.backend === "x11" && st.available ? "X11 key grab: works while other windows have the focus." : "";
  $("key-status").textContent = st.available || st.pending ? via : (st.key ? `Not working: ${st.reason}.` : "");
  if (st.pending) {
    hint.className = "hint";
    hint.textContent = `Asking the desktop for ${st.key}… Meanwhile hold the button or the space bar`;
  } else if (st.available) {
    hint.className = "hint";
    hint.textContent = st.mode === "latch"
      ? `Press ${label} anywhere to talk, again to stop; or hold the button or the space bar`
      : `Hold ${label} anywhere, the button, or the space bar`;
  } else if (st.key) {
    hint.className = "hint warn";
    hint.textContent = `No global talk key: ${st.reason}. Use the button or the space bar.`;
  }
}

function setPtt(state, label, sub = "") {
  ui.ptt = state;
  const b = $("ptt");
  b.className = "ptt " + state;
  b.dataset.state = state;
  $("ptt-label").textContent = label;
  $("ptt-sub").textContent = sub;
}

function showIdle() {
  clearInterval(ui.timer);
  clearTimeout(ui.flash);
  const rx = currentTalker();
  if (rx) setPtt("receiving", rx.name, `on #${rx.channel}`);
  else setPtt("idle", "Hold to talk", ui.target ? `into #${ui.target}` : "");
}

/** The most recent talker in any joined channel, or null. */
function currentTalker() {
  let best = null;
  for (const [channel, c] of ui.channels) {
    if (c.talker && (!best || c.talker.since > best.since)) best = { channel, name: c.talker.name, since: c.talker.since };
  }
  return best;
}

function renderRx() {
  const t = currentTalker();
  $("rx").hidden = !t;
  if (t) {
    $("rx-name").textContent = t.name;
    $("rx-chan").textContent = `on #${t.channel}`;
  }
}

function renderChannels() {
  const list = $("channels");
  list.replaceChildren();
  for (const [name, c] of ui.channels) {
    const li = document.createElement("li");
    li.dataset.channel = name;
    li.className = (name === ui.target ? "target " : "") + (c.talker ? "busy" : "");
    const pick = document.createElement("button");
    pick.type = "button";
    pick.className = "pick";
    pick.title = "Talk into this channel";
    pick.textContent = `#${name}`;
    pick.onclick = () => { setTarget(name); renderChannels(); renderMembers(); if (ui.ptt === "idle") showIdle(); };
    const info = document.createElement("span");
    info.className = "info";
    info.textContent = c.talker ? `● ${c.talker.name} talking` : `${c.members.length} online`;
    const leave = document.createElement("button");
    leave.type = "button";
    leave.className = "leave";
    leave.title = `Leave #${name}`;
    leave.textContent = "×";
    leave.onclick = () => engine.leave(name);
    li.append(pick, info, leave);
    list.append(li);
  }
  desk.render();
  const dl = $("known");
  dl.replaceChildren();
  for (const k of ui.known) {
    if (ui.channels.has(k.name)) continue;
    const o = document.createElement("option");
    o.value = k.name;
    o.label = `${k.members} online`;
    dl.append(o);
  }
}

function renderMembers() {
  const c = ui.channels.get(ui.target);
  $("members-of").textContent = ui.target ? `#${ui.target}` : "";
  const list = $("members");
  list.replaceChildren();
  if (!c) return;
  for (const m of c.members) {
    const li = document.createElement("li");
    li.textContent = m.name + (m.id === ui.clientId ? " (you)" : "");
    if (c.talker && c.talker.id === m.id) li.className = "talking";
    list.append(li);
  }
}

function setConn(state, text) {
  $("conn").className = "pill " + (state === "connected" ? "on" : state === "offline" ? "off" : "wait");
  $("conn").dataset.state = state;
  $("conn").textContent = text || state;
}

function showError(text) { $("error").textContent = text; }

// ---------- engine events ----------

/** @typedef {import("./types/events").UiEvent} UiEvent */

/**
 * Renders one event from the engine (desktop or browser): the protocol's
 * messages, the engine's own and the shell's, tagged by `type`.
 * @param {UiEvent} ev
 */
function onEvent(ev) {
  switch (ev.type) {
    case "connection":
      if (ev.state === "reconnecting") {
        setConn("reconnecting", `reconnecting in ${Math.ceil(ev.retry_in_ms / 1000)} s`);
        for (const c of ui.channels.values()) { c.members = []; c.talker = null; c.tx = null; }
        // Emergencies and patches are server state: sent again after each `joined`.
        ui.emergencies.clear();
        ui.patches = [];
        renderChannels(); renderMembers(); renderRx();
      } else {
        setConn(ev.state, ev.state === "connecting" ? "connecting…" : ev.state);
      }
      if (ev.state === "connected") { showError(""); engine.listChannels(); }
      break;
    case "welcome": ui.clientId = ev.client_id; ui.maxTalkMs = ev.max_talk_ms; break;
    case "media":
      ui.media = ev.connected;
      if (!ev.connected && ui.ptt === "talking") showIdle();
      break;
    case "joined": {
      const c = ui.channels.get(ev.channel) || { members: [], talker: null, last: null, tx: null, muted: false };
      c.members = ev.members;
      ui.channels.set(ev.channel, c);
      desk.restore(ev.channel);
      if (!ui.target) setTarget(ev.channel);
      renderChannels(); renderMembers();
      if (ui.ptt === "idle") showIdle();
      break;
    }
    // Presence deltas (protocol 2): only for channels already joined.
    case "member_joined": case "member_left": {
      const c = ui.channels.get(ev.channel);
      if (!c) break;
      if (ev.type === "member_joined") {
        const known = new Set(c.members.map((m) => m.id));
        c.members = c.members.concat(ev.members.filter((m) => !known.has(m.id)));
      } else {
        const gone = new Set(ev.ids);
        c.members = c.members.filter((m) => !gone.has(m.id));
      }
      renderChannels(); renderMembers();
      break;
    }
    case "left":
      ui.channels.delete(ev.channel);
      ui.selected.delete(ev.channel);
      for (const [k, e] of ui.emergencies) if (e.channel === ev.channel) ui.emergencies.delete(k);
      if (ui.target === ev.channel) setTarget(ui.channels.keys().next().value || null);
      renderChannels(); renderMembers(); renderRx();
      if (ui.ptt === "idle" || ui.ptt === "receiving") showIdle();
      break;
    case "channels": ui.known = ev.channels; renderChannels(); break;
    case "floor_granted": {
      const c = ui.channels.get(ev.channel);
      if (c) c.tx = "granted";
      if (ui.press) ui.press.granted.add(ev.channel);
      txResult();
      desk.render();
      // An all-call: the first grant starts the talk, later ones join it.
      if (ui.ptt === "talking") break;
      cues.play("permit");
      ui.talkStart = Date.now();
      ui.maxTalkMs = ev.max_duration_ms || ui.maxTalkMs;
      setPtt("talking", "Talking", `0 s / ${Math.round(ui.maxTalkMs / 1000)} s`);
      clearInterval(ui.timer);
      ui.timer = setInterval(() => {
        const s = Math.floor((Date.now() - ui.talkStart) / 1000);
        $("ptt-sub").textContent = `${s} s / ${Math.round(ui.maxTalkMs / 1000)} s`;
      }, 250);
      break;
    }
    case "floor_deny": {
      const c = ui.channels.get(ev.channel);
      if (c) c.tx = "busy";
      if (ui.press) ui.press.denied.add(ev.channel);
      txResult();
      desk.render();
      // Part of an all-call still going (or granted elsewhere): not a busy press.
      if (ui.press && (ui.press.granted.size || ui.press.denied.size < ui.press.channels.length)) break;
      cues.play("busy");
      setPtt("busy", "Busy", ev.reason === "busy" ? "someone else is talking" : ev.reason.replaceAll("_", " "));
      ui.flash = setTimeout(() => ui.ptt === "busy" && showIdle(), 1500);
      break;
    }
    case "floor_queued": {
      const c = ui.channels.get(ev.channel);
      if (c) { c.tx = "queued"; c.queuePos = ev.position; }
      desk.render();
      if (ui.ptt === "requesting" || ui.ptt === "queued") setPtt("queued", "Queued", `#${ev.channel}: position ${ev.position}`);
      break;
    }
    case "floor_revoke": {
      const c = ui.channels.get(ev.channel);
      if (c) c.tx = null;
      desk.render();
      clearInterval(ui.timer);
      const why = ev.reason === "max_duration_exceeded" ? "max talk time reached"
        : ev.reason === "preempted" && ev.by ? `pre-empted by ${ev.by.name}` : ev.reason.replaceAll("_", " ");
      setPtt("revoked", "Revoked", why);
      ui.flash = setTimeout(() => ui.ptt === "revoked" && showIdle(), 2500);
      break;
    }
    case "talk_ended": {
      const c = ui.channels.get(ev.channel);
      if (c) c.tx = null;
      if (ui.press) ui.press.granted.delete(ev.channel);
      desk.render();
      if (ui.press && ui.press.granted.size) break;
      ui.press = null;
      cues.play("end");
      if (ui.ptt === "talking" || ui.ptt === "requesting" || ui.ptt === "queued") showIdle();
      break;
    }
    case "emergency":
      ui.emergencies.set(`${ev.channel}/${ev.originator.id}`, {
        channel: ev.channel, originator: ev.originator, since: Date.now() - (ev.age_ms || 0), acked_by: ev.acked_by || null,
      });
      if (ev.originator.id !== ui.clientId && !ev.acked_by) cues.play("emergency");
      desk.render();
      break;
    case "emergency_ack": {
      const e = ui.emergencies.get(`${ev.channel}/${ev.originator}`);
      if (e) e.acked_by = ev.by;
      desk.render();
      break;
    }
    case "emergency_cancel":
      ui.emergencies.delete(`${ev.channel}/${ev.originator}`);
      desk.render();
      break;
    case "patched":
      ui.patches = ui.patches.filter((p) => !p.some((c) => ev.channels.includes(c)));
      ui.patches.push(ev.channels);
      desk.render();
      break;
    case "unpatched":
      ui.patches = ui.patches.filter((p) => !p.some((c) => ev.channels.includes(c)));
      desk.render();
      break;
    case "received": {
      const r = ev.report;
      ui.history.unshift({ channel: r.channel, talker: r.talker, start: r.start_unix_ms, durationMs: r.duration_ms, id: r.recall_id });
      ui.history.length = Math.min(ui.history.length, 100);
      const c = ui.channels.get(r.channel);
      if (c && r.recall_id != null) c.lastRecall = r.recall_id;
      renderHistory();
      desk.render();
      break;
    }
    case "replay_started": ui.replaying = ev.id; renderHistory(); desk.render(); break;
    case "replay_ended": if (ui.replaying === ev.id) ui.replaying = null; renderHistory(); desk.render(); break;
    case "muted": {
      const c = ui.channels.get(ev.channel);
      if (c) c.muted = ev.muted;
      desk.render();
      break;
    }
    case "floor_taken": {
      if (ev.talker === ui.clientId) break;
      const c = ui.channels.get(ev.channel);
      if (!c) break;
      if (c.talker) c.last = { name: c.talker.name, at: Date.now() };
      c.talker = { id: ev.talker, name: ev.talker_name, since: Date.now() - (ev.held_ms || 0) };
      cues.play("incoming");
      renderChannels(); renderMembers(); renderRx();
      if (ui.ptt === "idle" || ui.ptt === "receiving") showIdle();
      break;
    }
    case "floor_idle": {
      const c = ui.channels.get(ev.channel);
      if (c && c.talker) {
        c.last = { name: c.talker.name, at: Date.now() };
        c.talker = null;
        cues.play("end");
      }
      renderChannels(); renderMembers(); renderRx();
      if (ui.ptt === "receiving") showIdle();
      break;
    }
    case "talk_key":
      // The global talk key went down while the window may be in the background.
      if (ev.down && (ui.ptt === "idle" || ui.ptt === "receiving")) {
        const chans = selection();
        ui.press = { channels: chans, granted: new Set(), denied: new Set() };
        setPtt("requesting", "Requesting…", chans.map((c) => `#${c}`).join(" "));
      }
      break;
    case "talk_key_status": showTalkKey(ev); break;
    case "error":
      showError(`${ev.code}: ${ev.message}`);
      if (ev.code === "unauthorized") { $("talk").hidden = true; $("connect").hidden = false; $("password").focus(); }
      break;
    case "warning": showError(ev.message); break;
    case "certificate_changed":
      ui.certificate = { server: ev.server, fingerprint: ev.fingerprint };
      $("cert-changed-server").textContent = ev.server;
      $("cert-changed-pinned").textContent = ev.pinned;
      $("cert-changed-fp").textContent = ev.fingerprint;
      $("cert-changed").hidden = false;
      $("cert-changed").scrollIntoView();
      break;
    case "certificate_prompt":
      ui.certificate = { server: ev.server, fingerprint: ev.fingerprint };
      $("cert-server").textContent = ev.server;
      $("cert-fp").textContent = ev.fingerprint;
      $("cert-prompt").hidden = false;
      $("cert-prompt").scrollIntoView();
      break;
    case "closed": setConn("offline", "offline"); break;
    default: break;
  }
}

// ---------- talk key ----------

function down(e) {
  if (e) e.preventDefault();
  if (ui.held) return;
  ui.held = true;
  cues.unlock();
  const chans = selection();
  if (!chans.length) { showError("join a channel first"); return; }
  if (ui.ptt !== "idle" && ui.ptt !== "receiving") return;
  ui.press = { channels: chans, granted: new Set(), denied: new Set() };
  for (const ch of chans) { const c = ui.channels.get(ch); if (c) c.tx = null; }
  $("tx-result").textContent = "";
  setPtt("requesting", "Requesting…", chans.map((c) => `#${c}`).join(" "));
  const plain = chans.length === 1 && !ui.priority && !ui.queue;
  Promise.resolve()
    .then(() => (plain || !engine.pressAll ? engine.press(chans[0]) : engine.pressAll(chans, { priority: ui.priority, queue: ui.queue })))
    .catch((err) => { showError(String(err.message || err)); showIdle(); });
}

function up(e) {
  if (e) e.preventDefault();
  if (!ui.held) return;
  ui.held = false;
  Promise.resolve().then(() => engine.release()).catch(() => {});
}

$("ptt").addEventListener("pointerdown", (e) => {
  // Keep receiving pointerup even if the finger slides off the button.
  try { $("ptt").setPointerCapture(e.pointerId); } catch (_) { /* synthetic pointer */ }
  down(e);
});
$("ptt").addEventListener("pointerup", up);
$("ptt").addEventListener("pointercancel", up);
$("ptt").addEventListener("contextmenu", (e) => e.preventDefault());
const typing = () => ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement && document.activeElement.tagName);
window.addEventListener("keydown", (e) => {
  if (e.code !== "Space" || e.repeat || typing() || $("talk").hidden) return;
  down(e);
});
window.addEventListener("keyup", (e) => { if (e.code === "Space" && ui.held) up(e); });
// Losing focus while holding must not leave the channel keyed up.
window.addEventListener("blur", () => { if (ui.held) up(); });

/** For an all-call: which channels were granted and which were busy. */
function txResult() {
  const p = ui.press;
  if (!p || p.channels.length < 2) { $("tx-result").textContent = ""; return; }
  const g = [...p.granted].map((c) => `#${c}`).join(" ");
  const d = [...p.denied].map((c) => `#${c}`).join(" ");
  $("tx-result").textContent = [g && `talking into ${g}`, d && `busy: ${d}`].filter(Boolean).join("; ");
}

// ---------- console toolbar ----------

$("priority").addEventListener("change", () => { ui.priority = Number($("priority").value); onSelection(); });
$("queue").addEventListener("change", () => { ui.queue = $("queue").checked; onSelection(); });
let emergencyArmed = null;
$("emergency-btn").addEventListener("click", () => {
  const ch = selection()[0];
  if (!ch) { showError("join a channel first"); return; }
  // Two presses within 3 s: a stray click does not raise an alarm.
  if (!emergencyArmed) {
    $("emergency-btn").textContent = `Press again: EMERGENCY on #${ch}`;
    emergencyArmed = setTimeout(() => { emergencyArmed = null; $("emergency-btn").textContent = "Emergency"; }, 3000);
    return;
  }
  clearTimeout(emergencyArmed);
  emergencyArmed = null;
  $("emergency-btn").textContent = "Emergency";
  Promise.resolve(engine.emergency(ch)).catch((e) => showError(String(e.message || e)));
});
$("patch-btn").addEventListener("click", () => {
  Promise.resolve(engine.patch([...ui.selected])).catch((e) => showError(String(e.message || e)));
});
$("layout").addEventListener("click", () => {
  localStorage.setItem("squawk.layout", ui.consoleOn ? "phone" : "console");
  applyLayout();
});
window.addEventListener("resize", () => { if (!localStorage.getItem("squawk.layout")) applyLayout(); });
// The alarm sounds until someone acknowledges; elapsed times move on.
setInterval(() => {
  if (desk.alarming()) cues.play("emergency");
  desk.tick();
}, 1500);

// ---------- connect and channels ----------

async function connect(server, name, channels, password, user) {
  showError("");
  ui.lastConnect = [server, name, channels, password, user];
  $("cert-prompt").hidden = true;
  $("cert-changed").hidden = true;
  if (!user && !name) { showError("type your name, or an account to sign in with"); $("name").focus(); return; }
  cues.unlock();
  try {
    // Signed in: the account's display name is shown, not the typed name.
    const shown = await engine.connect({ server, name: name || user, channels, password, user });
    ui.account = user ? { server, user } : null;
    $("password").value = "";
    $("connect").hidden = true;
    $("talk").hidden = false;
    $("layout").hidden = false;
    $("where").textContent = shown || name;
    $("account-row").hidden = !user;
    $("account-name").textContent = user ? `${shown || user} (${user})` : "";
    applyLayout();
    if (engine.kind === "browser" && channels.length === 1 && location.pathname !== `/c/${channels[0]}`) {
      history.replaceState(null, "", `/c/${encodeURIComponent(channels[0])}${location.search}`);
    }
  } catch (e) {
    // A newer connect (or a disconnect) ended this one: nothing to say.
    if (e.code === "cancelled") return;
    showError(String(e.message || e));
    // The desktop engine does not retry a first connect that failed.
    if (engine.kind !== "browser") setConn("offline", "offline");
  }
}

// Trust on first use of a server whose certificate no authority vouches
// for: the user compares the fingerprint with the one its operator gave.
$("cert-trust").addEventListener("click", async () => {
  const c = ui.certificate;
  if (!c) return;
  try {
    await engine.trustCertificate(c.server, c.fingerprint);
  } catch (e) { showError(String(e.message || e)); return; }
  $("cert-prompt").hidden = true;
  if (ui.lastConnect) connect(...ui.lastConnect);
});
$("cert-cancel").addEventListener("click", () => { $("cert-prompt").hidden = true; ui.certificate = null; });
// A changed certificate is never trusted from here: forgetting the old one
// makes the next connect ask about the new one, fingerprint shown.
$("cert-forget").addEventListener("click", async () => {
  const c = ui.certificate;
  if (!c) return;
  try {
    await engine.forgetCertificate(c.server);
  } catch (e) { showError(String(e.message || e)); return; }
  $("cert-changed").hidden = true;
  if (ui.lastConnect) connect(...ui.lastConnect);
});
$("cert-changed-cancel").addEventListener("click", () => { $("cert-changed").hidden = true; ui.certificate = null; });

$("connect").addEventListener("submit", (e) => {
  e.preventDefault();
  connect($("server").value, $("name").value.trim(), [$("channel").value], $("password").value, $("user").value.trim());
});

$("add").addEventListener("submit", (e) => {
  e.preventDefault();
  const ch = $("add-name").value.trim();
  if (!ch) return;
  if (!$("add-name").checkValidity()) { showError("channel names are 1 to 64 letters, digits, '.', '_' or '-'"); return; }
  engine.join(ch);
  setTarget(ch);
  $("add-name").value = "";
});
$("add-name").addEventListener("focus", () => engine.listChannels());

async function leaveAll() {
  ui.channels.clear();
  ui.selected.clear();
  ui.emergencies.clear();
  ui.patches = [];
  ui.target = null;
  renderChannels(); renderMembers(); renderRx();
  $("talk").hidden = true;
  $("layout").hidden = true;
  $("banner").hidden = true;
  $("connect").hidden = false;
}

$("disconnect").addEventListener("click", async () => {
  await engine.disconnect();
  leaveAll();
});

// Sign out: the saved sign-in is revoked at the server and forgotten.
$("signout").addEventListener("click", async () => {
  const a = ui.account;
  if (!a) return;
  try {
    await engine.signOut(a.server, a.user);
  } catch (e) {
    showError(String(e.message || e));
  }
  ui.account = null;
  $("account-row").hidden = true;
  $("user").value = "";
  leaveAll();
});

// ---------- audio panel ----------

function setupAudio() {
  $("audio-controls").hidden = !engine.audioControls;
  const boxes = /** @type {NodeListOf<HTMLInputElement>} */ (document.querySelectorAll("input[data-cue]"));
  for (const box of boxes) {
    box.checked = cues.isEnabled(box.dataset.cue);
    box.addEventListener("change", () => cues.set(box.dataset.cue, box.checked));
  }
  if (!engine.audioControls) return;
  const stored = (k, d) => { const v = parseFloat(localStorage.getItem(k)); return Number.isFinite(v) ? v : d; };
  if (!engine.savesAudio) {
    $("gain").value = stored("squawk.gain", 1);
    $("volume").value = stored("squawk.volume", 1);
  }
  const apply = () => {
    engine.setGain(parseFloat($("gain").value));
    engine.setVolume(parseFloat($("volume").value));
    if (!engine.savesAudio) {
      localStorage.setItem("squawk.gain", $("gain").value);
      localStorage.setItem("squawk.volume", $("volume").value);
    }
  };
  $("gain").addEventListener("input", () => engine.setGain(parseFloat($("gain").value)));
  $("volume").addEventListener("input", () => engine.setVolume(parseFloat($("volume").value)));
  $("gain").addEventListener("change", apply);
  $("volume").addEventListener("change", apply);
  $("mic-test").addEventListener("change", () => engine.micTest($("mic-test").checked));
  if (engine.setProcessing) {
    // Desktop: noise suppression and automatic gain on the capture (the
    // browser's getUserMedia has its own, always on).
    $("ns-row").hidden = $("agc-row").hidden = false;
    const processing = () => engine.setProcessing({
      noiseSuppression: $("noise-suppression").checked, autoGain: $("auto-gain").checked,
    });
    $("noise-suppression").addEventListener("change", processing);
    $("auto-gain").addEventListener("change", processing);
  }
  if (engine.listDevices) setupDevices();
  if (engine.meter) $("audio").addEventListener("toggle", () => engine.meter($("audio").open));
  engine.onEvent((ev) => { if (ev.type === "connection" && ev.state === "connected") apply(); });
  // The meter moves only while the panel is open: no timer runs otherwise.
  let levelTimer = null;
  $("audio").addEventListener("toggle", () => {
    clearInterval(levelTimer);
    levelTimer = $("audio").open ? setInterval(() => { $("level").value = engine.inputLevel(); }, 100) : null;
  });
}

// ---------- audio devices (desktop) ----------

const END_NAMES = { input: "Microphone", output: "Speaker" };

/** Fills the microphone and speaker lists from the backend. */
async function refreshDevices() {
  /** @type {import("./types/events").AudioDevices} */
  const d = await engine.listDevices();
  const fill = (/** @type {HTMLSelectElement} */ select, list, chosen) => {
    select.replaceChildren(new Option("System default", ""));
    // Devices that share a description (two of a kind) also show their name.
    const shared = (dev) => list.filter((o) => o.description === dev.description).length > 1;
    for (const dev of list) {
      const label = !dev.description ? dev.name : shared(dev) ? `${dev.description} (${dev.name})` : dev.description;
      select.append(new Option(label, dev.name));
    }
    // A chosen device that is not plugged in stays shown, marked so.
    if (chosen && !list.some((dev) => dev.name === chosen || dev.description === chosen)) {
      select.append(new Option(`${chosen} (not connected)`, chosen));
    }
    const match = list.find((dev) => dev.description === chosen);
    select.value = match ? match.name : chosen || "";
  };
  fill(/** @type {HTMLSelectElement} */ ($("input-device")), d.inputs, d.input);
  fill(/** @type {HTMLSelectElement} */ ($("output-device")), d.outputs, d.output);
  if (d.problem) $("device-status").textContent = `Default devices only: ${d.problem}`;
}

/** What a `device` event means, for people. */
function deviceNotice(/** @type {Extract<import("./types/events").UiEvent, { type: "device" }>} */ ev) {
  const what = END_NAMES[ev.end];
  switch (ev.change) {
    case "fell_back": return `${what} “${ev.wanted}” cannot be used (${ev.reason}): using the system default.`;
    case "restored": return `${what} “${ev.device}” is connected again and in use.`;
    case "unavailable": return `No ${what.toLowerCase()} can be opened: ${ev.reason}. Trying again.`;
  }
}

function setupDevices() {
  $("device-rows").hidden = false;
  for (const end of ["input", "output"]) {
    const select = /** @type {HTMLSelectElement} */ ($(`${end}-device`));
    select.addEventListener("change", () => {
      $("device-status").textContent = "";
      engine.setDevice(end, select.value || null).catch((e) => showError(String(e.message || e)));
    });
  }
  $("audio").addEventListener("toggle", () => { if ($("audio").open) refreshDevices(); });
  engine.onEvent((ev) => {
    if (ev.type !== "device") return;
    $("device-status").textContent = deviceNotice(ev);
    refreshDevices();
  });
}

// ---------- USB pedal (desktop) ----------

const hex4 = (n) => n.toString(16).padStart(4, "0");

function setupPedal(saved) {
  const sel = $("pedal-dev");
  const status = (t) => { $("pedal-status").textContent = t; };
  if (saved) status(`Pedal: ${saved.device.name} (${hex4(saved.device.vendor)}:${hex4(saved.device.product)})`);
  const refresh = async () => {
    const devices = await engine.listPedals().catch(() => []);
    const current = sel.value || (saved && saved.device.path) || "";
    sel.replaceChildren(new Option("none", ""), ...devices.map((d) =>
      new Option(`${d.name} (${hex4(d.vendor)}:${hex4(d.product)})`, d.path)));
    sel.value = devices.some((d) => d.path === current) ? current : "";
    if (!devices.length && !saved) status("No USB HID devices found. Pedals that type a key work as the talk key.");
  };
  $("keypanel").addEventListener("toggle", () => { if ($("keypanel").open) refresh(); });
  sel.addEventListener("change", () => {
    if (!sel.value) { engine.clearPedal(); saved = null; status("No pedal."); }
  });
  $("pedal-learn").addEventListener("click", async () => {
    if (!sel.value) { status("Pick the pedal's device first."); return; }
    status("Press the pedal, then release it…");
    try {
      saved = await engine.learnPedal(sel.value);
      status(`Pedal: ${saved.device.name} (${hex4(saved.device.vendor)}:${hex4(saved.device.product)}): talks like the talk key`);
    } catch (e) {
      status(String(e.message || e));
    }
  });
}

// ---------- talk key settings (desktop) ----------

const MODIFIER_CODES = /^(Control|Shift|Alt|Meta|OS)(Left|Right)?$/;

/** The global-hotkey name of a key event: "F9", "Control+Shift+KeyT"; null for a lone modifier. */
function hotkeyName(e) {
  if (MODIFIER_CODES.test(e.code) || !e.code) return null;
  const mods = [];
  if (e.ctrlKey) mods.push("Control");
  if (e.altKey) mods.push("Alt");
  if (e.shiftKey) mods.push("Shift");
  if (e.metaKey) mods.push("Super");
  return [...mods, e.code].join("+");
}

const talkKey = { key: null, latch: false, tailMs: 250, capturing: false };

function showKeySettings() {
  $("key-name").textContent = talkKey.key || "none";
  $("key-latch").checked = talkKey.latch;
  $("key-tail").value = talkKey.tailMs;
  $("key-set").textContent = talkKey.capturing ? "Press a key… (Esc cancels)" : "Set…";
  $("key-set").classList.toggle("capturing", talkKey.capturing);
}

async function saveTalkKey(change) {
  const next = { ...talkKey, ...change };
  try {
    const st = await engine.setTalkKey(next);
    Object.assign(talkKey, change);
    showTalkKey(st);
    if (!st.available && !st.pending && st.key) showError(`talk key ${st.key}: ${st.reason}`);
    else showError("");
  } catch (e) {
    showError(String(e.message || e));
  }
  showKeySettings();
}

function setupTalkKeySettings(initial) {
  if (!engine.talkKeySettings) return;
  Object.assign(talkKey, initial || {});
  $("keypanel").hidden = false;
  showKeySettings();
  $("key-set").addEventListener("click", () => { talkKey.capturing = true; showKeySettings(); });
  $("key-clear").addEventListener("click", () => saveTalkKey({ key: null }));
  $("key-latch").addEventListener("change", () => saveTalkKey({ latch: $("key-latch").checked }));
  $("key-tail").addEventListener("change", () => {
    const ms = Math.round(Number($("key-tail").value));
    if (!Number.isFinite(ms) || ms < 0 || ms > 2000) { showError("release tail: 0 to 2000 ms"); showKeySettings(); return; }
    saveTalkKey({ tailMs: ms });
  });
  setupPedal(initial && initial.pedal);
  // While capturing, the next key (with its modifiers) becomes the talk key;
  // it does not reach the space-bar talk handler.
  window.addEventListener("keydown", (e) => {
    if (!talkKey.capturing) return;
    e.preventDefault();
    e.stopImmediatePropagation();
    if (e.code === "Escape") { talkKey.capturing = false; showKeySettings(); return; }
    const name = hotkeyName(e);
    if (!name) return;
    talkKey.capturing = false;
    saveTalkKey({ key: name });
  }, true);
}

// ---------- start ----------

engine.onEvent(onEvent);
setupAudio();
if (!engine.asksServer) $("server-row").hidden = true;
window.squawkApp = { engine, ui };
if (engine.talkKeyStatus) Promise.resolve(engine.talkKeyStatus()).then(showTalkKey).catch(() => {});
engine.init().then((p) => {
  if (p.server) $("server").value = p.server;
  for (const url of p.servers || []) {
    const o = document.createElement("option");
    o.value = url;
    $("servers").append(o);
  }
  if (p.name) $("name").value = p.name;
  if (p.user) $("user").value = p.user;
  if (engine.savesAudio) {
    if (p.gain != null) $("gain").value = p.gain;
    if (p.volume != null) $("volume").value = p.volume;
    if (p.noiseSuppression != null) $("noise-suppression").checked = p.noiseSuppression;
    if (p.autoGain != null) $("auto-gain").checked = p.autoGain;
  }
  setupTalkKeySettings(p.talkKey);
  if (p.channels.length) $("channel").value = p.channels[0];
  if (p.autoConnect) connect(p.server, p.name || "desktop", p.channels.length ? p.channels : [$("channel").value], "", p.user || "");
  else $("name").focus();
}).catch((e) => showError(String(e.message || e)));
