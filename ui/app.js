// Squawk UI. Talks to its engine only through `squawk` below: commands
// (connect, press, release) and events (JSON objects tagged by `type`).
"use strict";

const tauri = window.__TAURI__;
const squawk = {
  connect: (server, name, channels) => tauri.core.invoke("engine_connect", { server, name, channels }),
  press: (channel) => tauri.core.invoke("engine_press", { channel }),
  release: () => tauri.core.invoke("engine_release"),
  onEvent: (f) => tauri.event.listen("engine-event", (e) => f(e.payload)),
  cli: () => tauri.core.invoke("app_cli"),
};

const $ = (id) => document.getElementById(id);
let channel = null;
let state = "idle";
let talkStart = 0;
let timer = null;
let maxTalkMs = 60000;

function setPtt(s, label, sub = "") {
  state = s;
  $("ptt").className = "ptt " + s;
  $("ptt-label").textContent = label;
  $("ptt-sub").textContent = sub;
}

function idle() { clearInterval(timer); setPtt("idle", "Hold to talk"); }

function onEvent(ev) {
  switch (ev.type) {
    case "welcome": maxTalkMs = ev.max_talk_ms; break;
    case "media": $("conn").textContent = ev.connected ? "connected" : "reconnecting";
      $("conn").className = "pill " + (ev.connected ? "on" : "off"); break;
    case "joined": case "presence":
      if (ev.channel === channel) $("members").textContent = ev.members.map((m) => m.name).join(", "); break;
    case "floor_granted":
      talkStart = Date.now();
      setPtt("talking", "Talking");
      timer = setInterval(() => {
        const s = Math.floor((Date.now() - talkStart) / 1000);
        $("ptt-sub").textContent = `${s} s / ${Math.round(maxTalkMs / 1000)} s`;
      }, 250);
      break;
    case "floor_deny": setPtt("busy", "Busy", ev.reason.replace("_", " ")); setTimeout(() => state === "busy" && idle(), 1200); break;
    case "floor_revoke": clearInterval(timer); setPtt("busy", "Revoked", ev.reason.replaceAll("_", " ")); setTimeout(idle, 1500); break;
    case "talk_ended": if (state === "talking") idle(); break;
    case "floor_taken": if (state === "idle") setPtt("receiving", ev.talker_name, `on ${ev.channel}`); break;
    case "floor_idle": if (state === "receiving") idle(); break;
    case "error": $("error").textContent = `${ev.code}: ${ev.message}`; break;
    case "warning": $("error").textContent = ev.message; break;
    case "closed": $("conn").textContent = "offline"; $("conn").className = "pill off"; break;
  }
}

async function connect(server, name, ch) {
  $("error").textContent = "";
  try {
    channel = ch;
    await squawk.connect(server, name, [ch]);
    $("connect").hidden = true;
    $("talk").hidden = false;
    $("where").textContent = `${name} on #${ch}`;
  } catch (e) {
    $("error").textContent = String(e);
  }
}

function down(e) {
  e.preventDefault();
  if (state !== "idle" && state !== "receiving") return;
  setPtt("requesting", "Requesting…");
  squawk.press(channel).catch((err) => { $("error").textContent = String(err); idle(); });
}
function up(e) {
  e.preventDefault();
  if (state === "requesting") idle();
  squawk.release();
}

$("ptt").addEventListener("pointerdown", down);
$("ptt").addEventListener("pointerup", up);
$("ptt").addEventListener("pointercancel", up);
$("connect").addEventListener("submit", (e) => {
  e.preventDefault();
  connect($("server").value, $("name").value, $("channel").value);
});

squawk.onEvent(onEvent);
squawk.cli().then((cli) => {
  if (cli.name) $("name").value = cli.name;
  if (cli.channels && cli.channels.length) $("channel").value = cli.channels[0];
  if (cli.server) { $("server").value = cli.server; connect(cli.server, $("name").value || "desktop", $("channel").value); }
});
