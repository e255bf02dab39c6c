// The browser engine: the page's own RTCPeerConnection and getUserMedia
// speaking Squawk's signaling protocol (docs/protocol.md) to the server that
// served the page. It implements the same interface as the desktop engine
// (engine-tauri.js), so app.js does not know which one it drives:
//
//   init() -> {server, name, channels, autoConnect}   start-up parameters
//   connect({server, name, channels, password?, user?}) -> display name when signed in
//   disconnect(), signOut(server, user)
//   join(channel), leave(channel), listChannels()
//   press(channel), release()                        the talk key
//   pressAll(channels, {priority, queue})            all-call, floor priority, queueing
//   emergency(channel), ackEmergency(channel, originator),
//   cancelEmergency(channel, originator?)            emergencies
//   mute(channel, muted)                             pause a downlink at the server
//   setChannelMix(channel, gain 0..2, pan -1..1)     per-channel volume and pan
//   patch(channels), unpatch(channel)                dispatcher patches
//   replay(id), stopReplay()                         instant recall of a `received` transmission
//   onEvent(f)                                       events tagged by `type`
//
// plus, when `audioControls` is true: inputLevel() -> 0..1, setGain(0..2),
// setVolume(0..1), micTest(bool).
//
// Events: connection {state: connecting|connected|reconnecting|offline,
// retry_in_ms?}, welcome, media {connected}, joined, left, member_joined, member_left,
// channels, floor_granted, floor_deny, floor_queued, floor_revoke, talk_ended,
// floor_taken, floor_idle, receive_started, emergency, emergency_ack,
// emergency_cancel, patched, unpatched, muted, received {report: {channel,
// talker, start_unix_ms, duration_ms, recall_id}}, replay_started, replay_ended,
// error, warning.
"use strict";

function createBrowserEngine() {
  const PROTOCOL_VERSION = 2;
  /** Audio sent after the talk key is released, ms (as the desktop engine). */
  const TAIL_MS = 250;
  /** Reconnect backoff: first delay and cap, ms; ±20 % jitter (as the
   * desktop, src-tauri/reconnect.rs: back within about 1.2 s of the server). */
  const BACKOFF_FIRST_MS = 500;
  const BACKOFF_MAX_MS = 1000;
  /** Receive level (RMS, full scale 1) above which a channel counts as audible. */
  const AUDIBLE_RMS = 0.003;

  const listeners = [];
  /**
   * Hands an event to the UI: the same shapes as the desktop engine's
   * (types/events.d.ts, generated from the Rust types).
   * @param {import("./types/events").UiEvent} ev
   */
  const emit = (ev) => { for (const f of listeners) { try { f(ev); } catch (e) { console.error(e); } } };

  let params = null;        // {server, name, password}
  // The signed-in account, in memory only (a reload asks for the password
  // again): {user, access, refresh}. Each refresh token is used once.
  let account = null;
  const wanted = new Set(); // channels to be in (rejoined after a reconnect)
  let ws = null;
  let pc = null;
  let sender = null;
  let clientId = null;
  let closedByUser = false;
  let attempt = 0;
  let retryTimer = null;
  let negotiation = Promise.resolve();
  const mids = new Map();   // downlink mid -> channel
  const talkers = new Map(); // channel -> {id, name, since}
  // STUN/TURN servers from the latest welcome (RTCIceServer shape, TURN
  // credentials short-lived), and "relay" when the page address says
  // ?ice=relay (TURN only: hides this host's addresses, tests the relay).
  let iceServers = [];
  const icePolicy = new URLSearchParams(location.search).get("ice") === "relay" ? "relay" : "all";

  // Audio graph: mic -> gain -> (analyser, destination -> uplink track).
  let ctx = null;
  let mic = null;
  let micSource = null;
  // The microphone and speaker chosen ({id, label}, kept in localStorage),
  // null for the browser's default; the ids are the browser's deviceIds.
  const chosen = { input: loadDevice("input"), output: loadDevice("output") };
  let gain = null;
  let analyser = null;
  let uplink = null;        // MediaStreamDestination whose track is sent
  let sendTrack = null;
  let monitorOn = false;
  let volume = 1;
  const rx = new Map();     // mid -> {el, analyser, gain, pan, audible, firstAudioAt}
  const mixes = new Map();  // channel -> {gain, pan}
  // Instant recall: each transmission heard is recorded (MediaRecorder on its
  // downlink, Opus in WebM) from Floor Taken to Floor Idle; the last
  // RECALL_KEEP per channel are kept. A replay plays through WebAudio,
  // centred, over the live audio.
  const RECALL_KEEP = 10;
  const RECALL_MAX_MS = 5 * 60 * 1000;
  const recording = new Map(); // channel -> {recorder, chunks, talker, start}
  const recall = new Map();    // channel -> [{id, blob, durationMs}]
  let nextRecall = 1;
  let replaying = null;        // {id, source, analyser}

  // The talk key: the pure PTT machine of ui/ptt.js, the desktop engine's
  // behaviour (one table of cases checks both). One press may name several
  // channels (all-call); the Floor Requests carry `floorOptions`.
  const ptt = createPtt({ tailMs: TAIL_MS });
  let pttTimer = null;
  let floorOptions = { priority: 0, queue: false };

  const now = () => performance.timeOrigin + performance.now();

  function audioContext() {
    if (!ctx) ctx = new (window.AudioContext || window.webkitAudioContext)({ latencyHint: "interactive" });
    if (ctx.state === "suspended") ctx.resume().catch(() => {});
    return ctx;
  }

  /** @param {"input" | "output"} end */
  function loadDevice(end) {
    try { return JSON.parse(localStorage.getItem(`squawk.device.${end}`) || "null"); } catch (_) { return null; }
  }

  /** Whether the open microphone is the chosen one (not a fallback). */
  let micIsChosen = false;

  /** The browser's microphone, the chosen one when it can be opened. */
  async function getMic() {
    const audio = { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 };
    const want = chosen.input;
    let stream;
    micIsChosen = false;
    if (!want) stream = await navigator.mediaDevices.getUserMedia({ audio });
    else {
      try {
        stream = await navigator.mediaDevices.getUserMedia({ audio: { ...audio, deviceId: { exact: want.id } } });
        micIsChosen = true;
      } catch (e) {
        // Unplugged, or refused: the default one, with a notice.
        stream = await navigator.mediaDevices.getUserMedia({ audio });
        emit({ type: "device", end: "input", change: "fell_back", wanted: want.label || want.id, reason: String(e.message || e.name || e) });
      }
    }
    // Unplugged while in use: the default one takes over.
    for (const t of stream.getAudioTracks()) {
      t.addEventListener("ended", () => { if (mic === stream) switchMic().catch(() => {}); });
    }
    return stream;
  }

  // A device came or went: a chosen microphone that is back is used again.
  if (navigator.mediaDevices && navigator.mediaDevices.addEventListener) {
    navigator.mediaDevices.addEventListener("devicechange", async () => {
      const want = chosen.input;
      if (!micSource || !want || micIsChosen) return;
      const listed = (await navigator.mediaDevices.enumerateDevices()).some((d) => d.deviceId === want.id);
      if (!listed) return;
      await switchMic();
      if (micIsChosen) emit({ type: "device", end: "input", change: "restored", device: want.label || want.id });
    });
  }

  async function openMic() {
    if (sendTrack) return;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new Error(window.isSecureContext ? "this browser has no getUserMedia"
        : "the microphone needs HTTPS (or localhost): ask the server operator for the https:// link");
    }
    mic = await getMic();
    const c = audioContext();
    gain = c.createGain();
    analyser = c.createAnalyser();
    analyser.fftSize = 1024;
    uplink = c.createMediaStreamDestination();
    micSource = c.createMediaStreamSource(mic);
    micSource.connect(gain);
    gain.connect(analyser);
    gain.connect(uplink);
    // The uplink track stays the same when the microphone changes: only
    // the source in front of the gain is replaced.
    sendTrack = uplink.stream.getAudioTracks()[0];
    if (chosen.output) applySpeaker();
  }

  /** Swaps the microphone in front of the gain for the one chosen now. */
  async function switchMic() {
    if (!micSource) return;
    const next = await getMic();
    const src = audioContext().createMediaStreamSource(next);
    src.connect(gain);
    micSource.disconnect();
    for (const t of mic.getTracks()) t.stop();
    mic = next;
    micSource = src;
  }

  /** Plays through the chosen speaker (AudioContext.setSinkId: Chromium 110 on). */
  async function applySpeaker() {
    const c = /** @type {any} */ (audioContext());
    if (typeof c.setSinkId !== "function") return;
    const want = chosen.output;
    try {
      await c.setSinkId(want ? want.id : "");
    } catch (e) {
      if (!want) return;
      await c.setSinkId("").catch(() => {});
      emit({ type: "device", end: "output", change: "fell_back", wanted: want.label || want.id, reason: String(e.message || e.name || e) });
    }
  }

  function send(msg) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
  }

  function scheduleReconnect(reason) {
    teardown();
    if (closedByUser) return;
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** attempt);
    const delay = Math.round(base * (0.8 + 0.4 * Math.random()));
    attempt += 1;
    emit({ type: "connection", state: "reconnecting", retry_in_ms: delay, reason });
    retryTimer = setTimeout(open, delay);
  }

  function teardown() {
    pttInput({ type: "disconnected" });
    for (const [ch] of talkers) emit({ type: "floor_idle", channel: ch });
    talkers.clear();
    for (const ch of [...recording.keys()]) stopRecording(ch);
    for (const r of rx.values()) r.el.remove();
    rx.clear();
    mids.clear();
    if (pc) { pc.close(); pc = null; sender = null; emit({ type: "media", connected: false }); }
    if (ws) { ws.onclose = null; ws.onmessage = null; ws.close(); ws = null; }
  }

  /** POST /api/v1/PATH with a JSON body (docs/api.md); resolves to the JSON answer, rejects with {code, message}. */
  async function api(path, body) {
    let r;
    try {
      r = await fetch(`/api/v1/${path}`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      });
    } catch (e) {
      throw Object.assign(new Error(`cannot reach the server: ${e.message || e}`), { code: "unreachable" });
    }
    if (r.status === 204) return null;
    const j = await r.json().catch(() => ({}));
    if (!r.ok) throw Object.assign(new Error(j.message || `HTTP ${r.status}`), { code: j.error || "http" });
    return j;
  }

  /** A fresh access token for the account, from its refresh token (the old one is spent). */
  async function refreshAccount() {
    const t = await api("refresh", { refresh_token: account.refresh });
    account.access = t.access_token;
    account.refresh = t.refresh_token;
  }

  async function open() {
    clearTimeout(retryTimer);
    teardown();
    emit({ type: "connection", state: "connecting" });
    if (account && attempt > 0) {
      // A reconnect: the access token may have expired (15 minutes).
      try {
        await refreshAccount();
      } catch (e) {
        if (e.code === "unauthorized") {
          closedByUser = true;
          account = null;
          emit({ type: "error", code: "unauthorized", message: `signed out: ${e.message}` });
          emit({ type: "connection", state: "offline" });
        } else {
          scheduleReconnect(e.message);
        }
        return;
      }
      if (closedByUser) return;
    }
    let sock;
    try {
      sock = new WebSocket(params.server);
    } catch (e) {
      // A local failure, not a protocol error code.
      emit({ type: "warning", message: `bad server URL: ${e.message || e}` });
      return;
    }
    ws = sock;
    sock.onopen = () => {
      const hello = { type: "hello", version: PROTOCOL_VERSION, name: params.name };
      if (account) hello.token = account.access;
      else if (params.password) hello.password = params.password;
      send(hello);
    };
    sock.onmessage = (m) => {
      let msg;
      try { msg = JSON.parse(m.data); } catch (_) { return; }
      onServer(msg);
    };
    sock.onclose = (e) => scheduleReconnect(e.reason || `connection closed (${e.code})`);
  }

  function negotiate(step) {
    negotiation = negotiation.then(step).catch((e) => {
      emit({ type: "warning", message: `WebRTC: ${e.message || e}` });
    });
  }

  async function startMedia() {
    pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", rtcpMuxPolicy: "require",
      iceServers, iceTransportPolicy: icePolicy });
    const tr = pc.addTransceiver("audio", { direction: "sendonly" });
    sender = tr.sender;
    pc.ontrack = (e) => addDownlink(e.transceiver.mid, e.track);
    pc.onconnectionstatechange = () => {
      const s = pc && pc.connectionState;
      if (s === "connected") emit({ type: "media", connected: true });
      if (s === "failed") scheduleReconnect("media path failed");
    };
    negotiate(async () => {
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc);
      send({ type: "offer", sdp: pc.localDescription.sdp });
    });
  }

  /** Resolves when ICE gathering completes (host candidates: milliseconds;
   * a TURN allocation: a round trip or two), or after 1 s (3 s with TURN). */
  function gathered(p) {
    if (p.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => { if (p.iceGatheringState === "complete") resolve(); };
      p.addEventListener("icegatheringstatechange", done);
      setTimeout(resolve, iceServers.length ? 3000 : 1000);
    });
  }

  // A downlink plays through WebAudio: source -> analyser, and source ->
  // gain (volume x the channel's gain) -> stereo panner -> speakers. The
  // muted <audio> element keeps the remote stream flowing (Chrome needs one).
  function addDownlink(mid, track) {
    const el = document.createElement("audio");
    el.autoplay = true;
    el.muted = true;
    el.srcObject = new MediaStream([track]);
    el.hidden = true;
    document.body.appendChild(el);
    el.play().catch(() => emit({ type: "warning", message: "click anywhere to enable sound (browser autoplay rule)" }));
    const c = audioContext();
    const a = c.createAnalyser();
    a.fftSize = 512;
    const src = c.createMediaStreamSource(el.srcObject);
    const g = c.createGain();
    const p = c.createStereoPanner();
    src.connect(a);
    src.connect(g);
    g.connect(p);
    p.connect(c.destination);
    const r = { el, analyser: a, gain: g, pan: p, audible: false, firstAudioAt: null, onsets: [] };
    rx.set(mid, r);
    applyMix(mid);
  }

  /** Sets a downlink's gain and pan from the master volume and its channel's mix. */
  function applyMix(mid) {
    const r = rx.get(mid);
    if (!r) return;
    const m = mixes.get(mids.get(mid)) || { gain: 1, pan: 0 };
    r.gain.gain.value = volume * m.gain;
    r.pan.pan.value = m.pan;
  }

  // Watches the downlinks: receive_started when a talker becomes audible, and
  // onset times (ms since the epoch) for measurements.
  const buf = new Float32Array(512);
  setInterval(() => {
    for (const [mid, r] of rx) {
      r.analyser.getFloatTimeDomainData(buf);
      let sum = 0;
      let first = -1;
      for (let i = 0; i < buf.length; i++) {
        sum += buf[i] * buf[i];
        if (first < 0 && Math.abs(buf[i]) > 0.02) first = i;
      }
      const rms = Math.sqrt(sum / buf.length);
      r.level = rms;
      const audible = rms > AUDIBLE_RMS;
      if (audible && !r.audible) {
        // The analyser's window ends about now: date the first loud sample.
        const at = first >= 0 ? now() - ((buf.length - first) / ctx.sampleRate) * 1000 : now();
        if (r.firstAudioAt === null) r.firstAudioAt = at;
        r.onsets.push(at);
        const channel = mids.get(mid);
        if (channel) emit({ type: "receive_started", channel });
      }
      r.audible = audible;
    }
  }, 10);

  function onServer(msg) {
    switch (msg.type) {
      case "welcome":
        attempt = 0;
        clientId = msg.client_id;
        iceServers = msg.ice_servers || [];
        emit({ type: "connection", state: "connected" });
        emit(msg);
        // Channels first, then the media offer: the server homes this
        // connection's media on the SFU worker that carries its channels.
        for (const ch of wanted) send({ type: "join", channel: ch });
        startMedia();
        break;
      case "answer":
        negotiate(async () => {
          await pc.setRemoteDescription({ type: "answer", sdp: msg.sdp });
        });
        break;
      case "offer":
        negotiate(async () => {
          await pc.setRemoteDescription({ type: "offer", sdp: msg.sdp });
          await pc.setLocalDescription(await pc.createAnswer());
          send({ type: "answer", sdp: pc.localDescription.sdp });
        });
        break;
      case "joined":
        mids.set(msg.mid, msg.channel);
        applyMix(msg.mid);
        emit(msg);
        break;
      case "left":
        for (const [mid, ch] of mids) if (ch === msg.channel) mids.delete(mid);
        talkers.delete(msg.channel);
        emit(msg);
        break;
      case "member_joined":
      case "member_left":
      case "channels":
      case "emergency":
      case "emergency_ack":
      case "emergency_cancel":
      case "patched":
      case "unpatched":
      case "muted":
        emit(msg);
        break;
      case "floor_queued": pttInput({ type: "queued", channel: msg.channel, position: msg.position }, msg); break;
      case "floor_taken":
        if (msg.talker === clientId) break;
        talkers.set(msg.channel, { id: msg.talker, name: msg.talker_name, since: now() });
        stopRecording(msg.channel);
        startRecording(msg.channel, msg.talker_name);
        emit(msg);
        break;
      case "floor_idle":
        pttInput({ type: "floor_idle", channel: msg.channel });
        talkers.delete(msg.channel);
        stopRecording(msg.channel);
        emit(msg);
        break;
      case "floor_granted": pttInput({ type: "granted", channel: msg.channel }, msg); break;
      case "floor_deny": pttInput({ type: "denied", channel: msg.channel, reason: msg.reason }, msg); break;
      case "floor_revoke": pttInput({ type: "revoked", channel: msg.channel, reason: msg.reason }, msg); break;
      case "error":
        emit(msg);
        // Retrying cannot help: stop, and let the user fix it.
        if (msg.code === "unsupported_version" || msg.code === "unauthorized") closedByUser = true;
        break;
      default:
        break;
    }
  }

  function downlinkOf(channel) {
    for (const [mid, ch] of mids) if (ch === channel && rx.has(mid)) return rx.get(mid);
    return null;
  }

  function startRecording(channel, talker) {
    const r = downlinkOf(channel);
    if (!r || !window.MediaRecorder) return;
    let recorder;
    try {
      recorder = new MediaRecorder(r.el.srcObject);
    } catch (_) {
      return;
    }
    const rec = { recorder, chunks: [], talker, start: now() };
    recorder.ondataavailable = (e) => { if (e.data.size) rec.chunks.push(e.data); };
    recorder.onstop = () => {
      const durationMs = Math.round(now() - rec.start);
      const blob = new Blob(rec.chunks, { type: recorder.mimeType });
      const id = nextRecall++;
      const kept = recall.get(channel) || [];
      kept.push({ id, blob, durationMs });
      let total = kept.reduce((t, k) => t + k.durationMs, 0);
      while (kept.length > RECALL_KEEP || (total > RECALL_MAX_MS && kept.length > 1)) total -= kept.shift().durationMs;
      recall.set(channel, kept);
      // The browser measures no per-transmission packet figures (the
      // report's packets, lost, concealed, jitter): only these.
      // @ts-expect-error TransmissionReport's packet statistics are missing
      emit({ type: "received", report: { channel, talker, start_unix_ms: Math.round(rec.start), duration_ms: durationMs, recall_id: id } });
    };
    recorder.start();
    recording.set(channel, rec);
  }

  function stopRecording(channel) {
    const rec = recording.get(channel);
    if (!rec) return;
    recording.delete(channel);
    if (rec.recorder.state !== "inactive") rec.recorder.stop();
  }

  function stopReplay() {
    if (!replaying) return;
    const { id, source } = replaying;
    replaying = null;
    source.onended = null;
    try { source.stop(); } catch (_) { /* not started */ }
    emit({ type: "replay_ended", id });
  }

  async function replay(id) {
    let found = null;
    for (const [channel, kept] of recall) {
      const k = kept.find((x) => x.id === id);
      if (k) found = { channel, ...k };
    }
    if (!found) return;
    const c = audioContext();
    const buffer = await c.decodeAudioData(await found.blob.arrayBuffer());
    stopReplay();
    const source = c.createBufferSource();
    source.buffer = buffer;
    const a = c.createAnalyser();
    a.fftSize = 512;
    source.connect(a);
    a.connect(c.destination);
    replaying = { id, source, analyser: a };
    source.onended = () => { if (replaying && replaying.id === id) { replaying = null; emit({ type: "replay_ended", id }); } };
    source.start();
    emit({ type: "replay_started", id, channel: found.channel });
  }

  function startSending() {
    if (sender && sendTrack) sender.replaceTrack(sendTrack).catch((e) => emit({ type: "warning", message: String(e) }));
  }
  function stopSending() {
    if (sender) sender.replaceTrack(null).catch(() => {});
  }

  /**
   * Feeds the PTT machine and carries out its actions: Floor Request and
   * Release to the server, the microphone on the uplink or not, and the
   * UI's events (`msg`, the server message behind the input, for a grant,
   * deny, queue position or revoke the machine reports).
   * @param {PttInput} input
   * @param {any} [msg]
   */
  function pttInput(input, msg) {
    for (const a of ptt.handle(input, now())) {
      switch (a.type) {
        case "request_floor":
          send(floorOptions.queue
            ? { type: "floor_request", channel: a.channel, priority: floorOptions.priority, queue: true }
            : { type: "floor_request", channel: a.channel, priority: floorOptions.priority });
          break;
        case "release_floor": send({ type: "floor_release", channel: a.channel }); break;
        case "uplink": if (a.on) startSending(); else stopSending(); break;
        case "talk_ended": emit({ type: "talk_ended", channel: a.channel }); break;
        // Reported as the server said it.
        case "talk_started": case "busy": case "queued": case "revoked": if (msg) emit(msg); break;
        default: break;
      }
    }
    clearTimeout(pttTimer);
    const at = ptt.timeout();
    if (at !== null) pttTimer = setTimeout(() => pttInput({ type: "tick" }), Math.max(0, at - now()));
  }

  return {
    kind: "browser",
    asksServer: false,
    audioControls: true,

    /** Parameters from the page address: /c/CHANNEL?name=NAME. */
    async init() {
      const m = location.pathname.match(/^\/c\/([^/]+)\/?$/);
      const q = new URLSearchParams(location.search);
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      const server = `${scheme}//${location.host}/ws`;
      const name = q.get("name") || localStorage.getItem("squawk.name") || "";
      const channels = m ? [decodeURIComponent(m[1])] : [];
      return { server, name, channels, autoConnect: !!q.get("name") && channels.length > 0 };
    },

    async connect({ server, name, channels, password, user }) {
      let shown = null;
      account = null;
      if (user) {
        // Sign in first: a refusal (wrong password, rate limit) is the connect's error.
        const t = await api("login", { username: user, password: password || "" });
        account = { user, access: t.access_token, refresh: t.refresh_token };
        shown = t.user.display_name;
        password = null;
      }
      params = { server, name: shown || name, password: password || null };
      closedByUser = false;
      attempt = 0;
      wanted.clear();
      channels.forEach((c) => wanted.add(c));
      if (!user) try { localStorage.setItem("squawk.name", name); } catch (_) { /* private mode */ }
      try {
        await openMic();
      } catch (e) {
        emit({ type: "warning", message: `microphone unavailable (${e.message || e}): listening only` });
      }
      open();
      return shown;
    },

    /** Disconnects and revokes the account's refresh token at the server. */
    async signOut() {
      const a = account;
      account = null;
      await this.disconnect();
      if (a) await api("logout", { refresh_token: a.refresh }).catch(() => {});
    },

    async disconnect() {
      closedByUser = true;
      clearTimeout(retryTimer);
      teardown();
      emit({ type: "connection", state: "offline" });
    },

    join(channel) { wanted.add(channel); send({ type: "join", channel }); },
    leave(channel) { wanted.delete(channel); send({ type: "leave", channel }); },
    listChannels() { send({ type: "list_channels" }); },

    press(channel) { this.pressAll([channel]); },

    pressAll(channels, { priority = 0, queue = false } = {}) {
      if (!sendTrack) throw new Error("no microphone: this page can only listen");
      if (!ws || ws.readyState !== WebSocket.OPEN) throw new Error("not connected");
      floorOptions = { priority, queue };
      // Sent from the press, with the Floor Request (the machine's uplink
      // action): the SFU holds the audio until the grant (then forwards it)
      // or drops it on a deny, so the first syllable is not lost in the
      // round trip (docs/protocol.md).
      pttInput({ type: "press", channels });
    },

    release() { pttInput({ type: "release" }); },

    emergency(channel) { send({ type: "emergency", channel }); },
    ackEmergency(channel, originator) { send({ type: "emergency_ack", channel, originator }); },
    cancelEmergency(channel, originator = null) {
      send(originator == null ? { type: "emergency_cancel", channel } : { type: "emergency_cancel", channel, originator });
    },
    mute(channel, muted) { send({ type: "mute", channel, muted }); },
    setChannelMix(channel, gain, pan) {
      mixes.set(channel, { gain: Math.min(2, Math.max(0, gain)), pan: Math.min(1, Math.max(-1, pan)) });
      for (const [mid, ch] of mids) if (ch === channel) applyMix(mid);
    },
    patch(channels) { send({ type: "patch", channels }); },
    unpatch(channel) { send({ type: "unpatch", channel }); },
    replay(id) { return replay(id); },
    stopReplay() { stopReplay(); },

    onEvent(f) { listeners.push(f); },

    inputLevel() {
      if (!analyser) return 0;
      const b = new Float32Array(analyser.fftSize);
      analyser.getFloatTimeDomainData(b);
      let peak = 0;
      for (const v of b) peak = Math.max(peak, Math.abs(v));
      return Math.min(1, peak);
    },
    setGain(g) { if (gain) gain.gain.value = g; },
    /**
     * Microphones and speakers to choose from, and the choice (the
     * desktop's AudioDevices shape: `name` is the browser's deviceId). The
     * names only show once the microphone was allowed; the speaker can be
     * chosen where AudioContext.setSinkId exists (Chromium).
     */
    async listDevices() {
      const none = { inputs: [], outputs: [], input: null, output: null, problem: null };
      if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) {
        return { ...none, problem: "this browser does not list its devices" };
      }
      const all = await navigator.mediaDevices.enumerateDevices();
      // "default" and "communications" are aliases of real devices; a
      // device listed twice (Firefox does, for sources alike) counts once.
      const seen = new Set();
      const real = (d) => d.deviceId && d.deviceId !== "default" && d.deviceId !== "communications"
        && !seen.has(d.kind + d.deviceId) && seen.add(d.kind + d.deviceId);
      const info = (d, i) => ({ name: d.deviceId, description: d.label || `${d.kind === "audioinput" ? "Microphone" : "Speaker"} ${i + 1}` });
      const sinks = typeof (/** @type {any} */ (audioContext())).setSinkId === "function";
      return {
        inputs: all.filter((d) => d.kind === "audioinput" && real(d)).map(info),
        outputs: sinks ? all.filter((d) => d.kind === "audiooutput" && real(d)).map(info) : [],
        // The label, which the panel matches to a listed device's description.
        input: chosen.input && (chosen.input.label || chosen.input.id),
        output: chosen.output && (chosen.output.label || chosen.output.id),
        problem: null,
      };
    },
    /** Chooses the microphone (`end` "input") or speaker ("output") by deviceId; null: the default. Saved. */
    async setDevice(end, id) {
      let label = "";
      if (id && navigator.mediaDevices && navigator.mediaDevices.enumerateDevices) {
        const d = (await navigator.mediaDevices.enumerateDevices()).find((x) => x.deviceId === id);
        label = d ? d.label : "";
      }
      chosen[end] = id ? { id, label } : null;
      try { localStorage.setItem(`squawk.device.${end}`, JSON.stringify(chosen[end])); } catch (_) { /* private mode */ }
      if (end === "input") await switchMic(); else await applySpeaker();
    },
    setVolume(v) { volume = v; for (const mid of rx.keys()) applyMix(mid); },
    micTest(on) {
      if (!gain || on === monitorOn) return;
      monitorOn = on;
      if (on) gain.connect(audioContext().destination); else gain.disconnect(audioContext().destination);
    },

    /** Measurements for tests and benchmarks (not part of the UI interface). */
    debug: {
      /** The deviceId of the microphone in use, or null. */
      micDevice() {
        const t = mic && mic.getAudioTracks()[0];
        return t ? t.getSettings().deviceId || null : null;
      },
      /** The replay's output level (RMS, full scale 1), 0 when none plays. */
      replayLevel() {
        if (!replaying) return 0;
        const b = new Float32Array(replaying.analyser.fftSize);
        replaying.analyser.getFloatTimeDomainData(b);
        return Math.sqrt(b.reduce((t, v) => t + v * v, 0) / b.length);
      },
      /** Per downlink: channel, receive level, onset times (ms since epoch). */
      downlinks: () => [...rx].map(([mid, r]) => ({ mid, channel: mids.get(mid) || null, level: r.level || 0,
        firstAudioAt: r.firstAudioAt, onsets: r.onsets.slice() })),
      /** RTCPeerConnection stats: inbound-rtp, outbound-rtp and media-source audio, and the transport's DTLS. */
      async rtpStats() {
        if (!pc) return { inbound: [], outbound: [], source: null, transport: null };
        const inbound = [];
        const outbound = [];
        let source = null;
        let transport = null;
        (await pc.getStats()).forEach((s) => {
          if (s.type === "transport") transport = { tlsVersion: s.tlsVersion, dtlsCipher: s.dtlsCipher, srtpCipher: s.srtpCipher, dtlsState: s.dtlsState };
          if (s.type === "media-source" && s.kind === "audio") source = { audioLevel: s.audioLevel, totalAudioEnergy: s.totalAudioEnergy };
          if (s.kind !== "audio") return;
          if (s.type === "inbound-rtp") inbound.push({ mid: s.mid, packetsReceived: s.packetsReceived, totalAudioEnergy: s.totalAudioEnergy, jitterBufferDelay: s.jitterBufferDelay, jitterBufferEmittedCount: s.jitterBufferEmittedCount });
          if (s.type === "outbound-rtp") outbound.push({ mid: s.mid, packetsSent: s.packetsSent });
        });
        return { inbound, outbound, source, transport };
      },
      /** The selected ICE candidate pair's types, {local, remote} ("host", "srflx", "prflx", "relay"), or null. */
      async icePath() {
        if (!pc) return null;
        const stats = new Map();
        (await pc.getStats()).forEach((s) => stats.set(s.id, s));
        const transport = [...stats.values()].find((s) => s.type === "transport");
        const pair = transport && stats.get(transport.selectedCandidatePairId);
        if (!pair) return null;
        const type = (id) => (stats.get(id) || {}).candidateType || "unknown";
        return { local: type(pair.localCandidateId), remote: type(pair.remoteCandidateId) };
      },
      /** Mixes a 1 kHz burst into the uplink after the gain stage; returns its start, ms since epoch. */
      injectBurst(ms = 200) {
        if (!uplink) throw new Error("no microphone");
        const c = audioContext();
        const o = c.createOscillator();
        const g = c.createGain();
        g.gain.value = 0.5;
        o.frequency.value = 1000;
        o.connect(g);
        g.connect(uplink);
        const start = c.currentTime + 0.05;
        o.start(start);
        o.stop(start + ms / 1000);
        return now() + (start - c.currentTime) * 1000;
      },
    },
  };
}
window.createBrowserEngine = createBrowserEngine;
