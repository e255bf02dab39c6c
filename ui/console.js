// The dispatcher console: a grid of channel tiles (activity, last talker,
// volume, pan, mute, select for transmit, emergency and patch state) and the
// emergency banner. app.js owns the state (`ui`) and the engine; this file
// only renders it and turns clicks into engine calls.
"use strict";

/** Milliseconds as "12 s", "3 min", "2 h". */
function shortAgo(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  return `${Math.floor(s / 3600)} h`;
}

const PAN_SIDES = [["L", -1, "left"], ["C", 0, "centre"], ["R", 1, "right"]];
const MIX_KEY = "squawk.mix";

function createConsole({ ui, engine, $, setTarget, onSelection, replay }) {
  /** Saved per-channel volume and pan: {channel: {gain, pan}}. */
  let saved = {};
  try { saved = JSON.parse(localStorage.getItem(MIX_KEY) || "{}"); } catch (_) { saved = {}; }

  /** The tiles drawn now: channel -> {el, sig}. */
  let drawn = new Map();

  function mixOf(name) {
    return saved[name] || { gain: 1, pan: 0 };
  }

  function setMix(name, change) {
    const m = { ...mixOf(name), ...change };
    saved[name] = m;
    try { localStorage.setItem(MIX_KEY, JSON.stringify(saved)); } catch (_) { /* private mode */ }
    if (engine.setChannelMix) Promise.resolve(engine.setChannelMix(name, m.gain, m.pan)).catch(() => {});
  }

  /** Applies the saved mix and mute state after (re)joining a channel. */
  function restore(name) {
    const m = mixOf(name);
    if (engine.setChannelMix && (m.gain !== 1 || m.pan !== 0)) {
      Promise.resolve(engine.setChannelMix(name, m.gain, m.pan)).catch(() => {});
    }
    const c = ui.channels.get(name);
    if (c && c.muted && engine.mute) Promise.resolve(engine.mute(name, true)).catch(() => {});
  }

  function tileState(name, c) {
    const cls = ["tile"];
    if (ui.selected.has(name)) cls.push("selected");
    if (c.talker) cls.push("live");
    if (c.tx) cls.push(`tx-${c.tx}`);
    if (emergenciesIn(name).length) cls.push("emergency");
    if (c.muted) cls.push("muted");
    return cls.join(" ");
  }

  function emergenciesIn(name) {
    return [...ui.emergencies.values()].filter((e) => e.channel === name);
  }

  function patchOf(name) {
    return ui.patches.find((p) => p.includes(name)) || null;
  }

  function el(tag, props = {}, ...kids) {
    const e = document.createElement(tag);
    Object.assign(e, props);
    e.append(...kids);
    return e;
  }

  function tile(name, c) {
    const t = el("div", { className: tileState(name, c) });
    t.dataset.channel = name;
    const sel = el("input", { type: "checkbox", checked: ui.selected.has(name), title: "Select for transmit" });
    sel.setAttribute("aria-label", `Transmit into #${name}`);
    sel.onchange = () => {
      if (sel.checked) ui.selected.add(name); else ui.selected.delete(name);
      onSelection();
      render();
    };
    const nameBtn = el("button", { type: "button", className: "name", textContent: `#${name}`, title: "Talk into this channel only" });
    nameBtn.onclick = () => { ui.selected.clear(); ui.selected.add(name); setTarget(name); onSelection(); render(); };
    t.append(el("div", { className: "head" }, sel, nameBtn, el("span", { className: "count", textContent: `${c.members.length}` })));

    const act = el("div", { className: "act" }, el("span", { className: "light" }));
    if (c.talker) {
      const since = el("span", { className: "elapsed", textContent: shortAgo(Date.now() - c.talker.since) });
      since.dataset.since = c.talker.since;
      act.append(el("span", { className: "who", textContent: c.talker.name }), since);
    } else if (c.tx === "granted") {
      act.append(el("span", { className: "who", textContent: "You" }));
    } else if (c.tx === "busy" || c.tx === "queued") {
      act.append(el("span", { textContent: c.tx === "busy" ? "busy" : `queued ${c.queuePos || ""}` }));
    } else {
      act.append(el("span", { className: "elapsed", textContent: "idle" }));
    }
    t.append(act);
    const last = el("div", { className: "last", textContent: c.last ? `last: ${c.last.name}, ${shortAgo(Date.now() - c.last.at)} ago` : "last: —" });
    if (c.last) { last.dataset.lastAt = c.last.at; last.dataset.lastName = c.last.name; }
    t.append(last);

    const tags = el("div", { className: "tags" });
    const patch = patchOf(name);
    if (patch) {
      const b = el("button", { type: "button", className: "patch", title: "Unpatch",
        textContent: `⛓ ${patch.filter((p) => p !== name).map((p) => `#${p}`).join(" ")} ✕` });
      b.onclick = () => { if (engine.unpatch) Promise.resolve(engine.unpatch(name)).catch(() => {}); };
      tags.append(b);
    }
    for (const e of emergenciesIn(name)) {
      tags.append(el("span", { className: "emerg", textContent: `EMERGENCY ${e.originator.name}${e.acked_by ? " (ack)" : ""} ` }));
    }
    if (tags.childNodes.length) t.append(tags);

    const m = mixOf(name);
    const vol = el("input", { type: "range", min: 0, max: 2, step: 0.05, value: m.gain, title: "Volume" });
    vol.setAttribute("aria-label", `Volume of #${name}`);
    vol.oninput = () => setMix(name, { gain: parseFloat(vol.value) });
    const ctl = el("div", { className: "ctl" }, vol);
    for (const [label, pan, word] of PAN_SIDES) {
      const b = el("button", { type: "button", textContent: label, title: `Play #${name} ${word}`, className: m.pan === pan ? "on" : "" });
      b.onclick = () => { setMix(name, { pan }); render(); };
      ctl.append(b);
    }
    const mute = el("button", { type: "button", className: `mute${c.muted ? " on" : ""}`, textContent: c.muted ? "Muted" : "Mute",
      title: "Stop receiving this channel (the server stops sending it)" });
    mute.onclick = () => { if (engine.mute) Promise.resolve(engine.mute(name, !c.muted)).catch(() => {}); };
    ctl.append(mute);
    if (c.lastRecall != null && engine.replay) {
      const playing = ui.replaying === c.lastRecall;
      const r = el("button", { type: "button", className: "replay", textContent: playing ? "■" : "▶",
        title: playing ? "Stop the replay" : `Replay the last transmission on #${name}` });
      r.onclick = () => replay(c.lastRecall);
      ctl.append(r);
    }
    t.append(ctl);
    return t;
  }

  /** Redraws the tiles (console layout only) and the emergency banner. A
   * tile holding the focus (a volume slider being dragged) keeps its
   * elements and only takes its new state; it is redrawn when let go. */
  function render() {
    renderBanner();
    const grid = $("tiles");
    $("patch-btn").hidden = ui.selected.size < 2 || !engine.patch;
    if (grid.hidden) return;
    const a = document.activeElement;
    const busy = a instanceof HTMLInputElement && a.type === "range" && a.closest(".tile") ? a : null;
    const next = new Map();
    const els = [...ui.channels].map(([name, c]) => {
      // A tile is rebuilt only when what it shows changed: with many
      // channels and a few talkers, most tiles stay as they are.
      const sig = signature(name, c);
      const old = drawn.get(name);
      let e;
      if (busy && busy.dataset.channel === name) {
        busy.className = tileState(name, c);
        e = busy;
      } else if (old && old.sig === sig) {
        e = old.el;
      } else {
        e = tile(name, c);
      }
      next.set(name, { el: e, sig });
      return e;
    });
    drawn = next;
    const same = els.length === grid.children.length && els.every((e, i) => grid.children[i] === e);
    if (!same) grid.replaceChildren(...els);
  }

  /** Everything a tile shows, as one string. */
  function signature(name, c) {
    return JSON.stringify([
      ui.selected.has(name), c.members.length, c.talker && [c.talker.name, c.talker.since], c.tx, c.queuePos,
      c.last, c.muted, c.lastRecall, ui.replaying === c.lastRecall, mixOf(name), patchOf(name),
      emergenciesIn(name).map((e) => [e.originator.id, !!e.acked_by]),
    ]);
  }

  /** Updates the elapsed and "ago" times without redrawing; a text that
   * reads the same is not written again (each write costs WebKit a layout
   * and a paint, every 1.5 s, in an idle window). */
  function tick() {
    const now = Date.now();
    const show = (e, text) => { if (e.textContent !== text) e.textContent = text; };
    for (const e of document.querySelectorAll("#tiles [data-since]")) {
      if (!(e instanceof HTMLElement)) continue;
      show(e, shortAgo(now - Number(e.dataset.since)));
    }
    for (const e of document.querySelectorAll("#tiles [data-last-at]")) {
      if (!(e instanceof HTMLElement)) continue;
      show(e, `last: ${e.dataset.lastName}, ${shortAgo(now - Number(e.dataset.lastAt))} ago`);
    }
  }

  function renderBanner() {
    const b = $("banner");
    const rows = [];
    for (const e of ui.emergencies.values()) {
      const mine = e.originator.id === ui.clientId;
      const row = el("div", { className: `row${e.acked_by ? " acked" : ""}` });
      const who = mine ? "Your emergency" : `EMERGENCY: ${e.originator.name}`;
      const ack = e.acked_by ? ` — acknowledged by ${e.acked_by.name}` : "";
      row.append(el("span", { textContent: `${who} on #${e.channel} (${shortAgo(Date.now() - e.since)} ago)${ack}` }));
      if (mine) {
        const cancel = el("button", { type: "button", textContent: "Cancel emergency" });
        cancel.onclick = () => engine.cancelEmergency(e.channel);
        row.append(cancel);
      } else if (!e.acked_by) {
        const ack = el("button", { type: "button", className: "ack", textContent: "Acknowledge" });
        ack.onclick = () => engine.ackEmergency(e.channel, e.originator.id);
        row.append(ack);
      }
      rows.push(row);
    }
    b.replaceChildren(...rows);
    b.hidden = rows.length === 0;
  }

  /** Whether an emergency of someone else waits for an acknowledgement (the alarm sounds). */
  function alarming() {
    return [...ui.emergencies.values()].some((e) => !e.acked_by && e.originator.id !== ui.clientId);
  }

  return { render, restore, alarming, tick };
}
window.createConsole = createConsole;
