// Drives real browsers for the browser-client tests, as a person would:
// open the link, hold the talk button with the mouse, read what the page
// shows. Commands arrive as JSON lines on stdin; each gets one JSON reply
// line on stdout ({"reply": id, "ok": true, "value": ...} or "error").
//
//   node drive.mjs chromium [--wav FILE.wav] [--insecure]
//                                               Debian chromium via playwright-core;
//                                               --insecure accepts self-signed certificates
//   node drive.mjs firefox  [--fake-mic]        firefox-esr via geckodriver (WebDriver)
//   node drive.mjs tauri --app BINARY [-- ARGS...]
//                                               the desktop app in its own window, via
//                                               tauri-driver and WebKitWebDriver (WebDriver);
//                                               the page id names its one window
//
// Commands: {"id", "cmd": "open", "page", "url"} | {"cmd": "press"|"release", "page"}
//   | {"cmd": "eval", "page", "js"} (an expression; promises are awaited)
//   | {"cmd": "wait", "page", "js", "timeout_ms"} (until the expression is truthy)
//   | {"cmd": "key", "page", "key": "Space", "down": bool} (Chromium) | {"cmd": "viewport", "page", "width", "height"} (Chromium)
//   | {"cmd": "screenshot", "page", "path"} | {"cmd": "close_page", "page"} | {"cmd": "quit"}
import readline from "node:readline";
import { spawn } from "node:child_process";
import { createRequire } from "node:module";

const [kind, ...rest] = process.argv.slice(2);
const opt = (name) => { const i = rest.indexOf(name); return i >= 0 ? rest[i + 1] : undefined; };
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

// ---------- Chromium (playwright-core, CDP) ----------

async function chromium() {
  const require = createRequire(import.meta.url);
  const { chromium } = require("playwright-core");
  const args = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
  ];
  if (opt("--wav")) args.push(`--use-file-for-fake-audio-capture=${opt("--wav")}`);
  const browser = await chromium.launch({ executablePath: process.env.SQUAWK_CHROMIUM || "/usr/bin/chromium", args });
  const pages = new Map();
  return {
    version: browser.version(),
    async open(id, url) {
      const context = await browser.newContext({ viewport: { width: 420, height: 760 }, ignoreHTTPSErrors: rest.includes("--insecure") });
      const page = await context.newPage();
      page.on("console", (m) => { if (m.type() === "error" || m.type() === "warning") out({ event: "console", page: id, level: m.type(), text: m.text() }); });
      page.on("pageerror", (e) => out({ event: "pageerror", page: id, text: String(e) }));
      const at = Date.now();
      await page.goto(url);
      pages.set(id, page);
      return { opened_at: at };
    },
    async press(id) {
      const page = pages.get(id);
      const box = await page.locator("#ptt").boundingBox();
      await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
      await page.mouse.down();
      return Date.now();
    },
    async release(id) { await pages.get(id).mouse.up(); return Date.now(); },
    async key(id, key, down) {
      const kb = pages.get(id).keyboard;
      await (down ? kb.down(key) : kb.up(key));
      return Date.now();
    },
    async viewport(id, width, height) { await pages.get(id).setViewportSize({ width, height }); return true; },
    eval: (id, js) => pages.get(id).evaluate(js),
    // Polled with evaluate (which awaits a promise) rather than
    // waitForFunction, which takes a pending promise for a truthy value.
    async wait(id, js, timeout) {
      const end = Date.now() + timeout;
      for (;;) {
        const v = await pages.get(id).evaluate(js);
        if (v) return v;
        if (Date.now() > end) throw new Error(`timeout ${timeout} ms waiting for ${js}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async screenshot(id, path) { await pages.get(id).screenshot({ path }); return path; },
    async closePage(id) { await pages.get(id).context().close(); pages.delete(id); },
    quit: () => browser.close(),
  };
}

// ---------- W3C WebDriver over HTTP (geckodriver, tauri-driver) ----------

/** Starts `driver` (given a free port) and a session with `capabilities`. */
async function webdriver(driver, driverArgs, capabilities, { single = false } = {}) {
  const port = 4444 + Math.floor(Math.random() * 1000);
  // The driver's (and, for tauri-driver, the app's) output goes to stderr:
  // stdout carries only our replies.
  const gd = spawn(driver, driverArgs(port), { stdio: ["ignore", process.stderr, "inherit"] });
  const base = `http://127.0.0.1:${port}`;
  const call = async (method, path, body) => {
    const r = await fetch(base + path, { method, headers: { "content-type": "application/json" }, body: body && JSON.stringify(body) });
    const j = await r.json();
    if (j.value && j.value.error) throw new Error(`${j.value.error}: ${j.value.message}`);
    return j.value;
  };
  for (let i = 0; ; i++) {
    try { await call("GET", "/status"); break; } catch (e) { if (i > 100) throw e; await new Promise((r) => setTimeout(r, 100)); }
  }
  const session = await call("POST", "/session", { capabilities: { alwaysMatch: capabilities } });
  return webdriverSession(call, session, gd, single);
}

async function firefox() {
  const prefs = {
    "media.navigator.permission.disabled": true,
    "media.autoplay.default": 0,
    "media.autoplay.block-webaudio": false,
    "permissions.default.microphone": 1,
    // The test server is on loopback, which Firefox leaves out of ICE by default.
    "media.peerconnection.ice.loopback": true,
  };
  // A fake microphone (a tone); without it Firefox captures the PulseAudio default source.
  if (rest.includes("--fake-mic")) prefs["media.navigator.streams.fake"] = true;
  return webdriver(process.env.SQUAWK_GECKODRIVER || "geckodriver", (port) => ["--port", String(port)],
    { browserName: "firefox",
      "moz:firefoxOptions": { binary: process.env.SQUAWK_FIREFOX || "/usr/bin/firefox-esr", args: ["-headless"], prefs } });
}

/** The desktop app: tauri-driver starts it through WebKitWebDriver, with our environment. */
async function tauri() {
  const app = opt("--app");
  const dash = rest.indexOf("--");
  const args = dash >= 0 ? rest.slice(dash + 1) : [];
  return webdriver(process.env.SQUAWK_TAURI_DRIVER || "tauri-driver",
    (port) => ["--port", String(port), "--native-port", String(port + 1000)],
    { "tauri:options": { application: app, args } }, { single: true });
}

/** WebDriver's code points for named keys (W3C WebDriver §17.4.2). */
const WEBDRIVER_KEYS = { Escape: "\uE00C", Space: "\uE00D", Control: "\uE009", Shift: "\uE008", Alt: "\uE00A",
  ...Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`F${i + 1}`, String.fromCharCode(0xE031 + i)])) };

/** Page commands on a WebDriver session (`single`: the app's one window, never opened or closed). */
async function webdriverSession(call, session, gd, single) {
  const sid = session.sessionId;
  const s = (p) => `/session/${sid}${p}`;
  const handles = new Map();
  const use = async (id) => call("POST", s("/window"), { handle: handles.get(id) });
  const exec = async (id, js) => {
    await use(id);
    return call("POST", s("/execute/async"), { script: `const done = arguments[0]; Promise.resolve().then(() => (${js})).then((v) => done({ ok: v }), (e) => done({ err: String(e) }));`, args: [] })
      .then((r) => { if (r && r.err) throw new Error(r.err); return r && r.ok; });
  };
  await call("POST", s("/timeouts"), { script: 60000 });
  return {
    version: session.capabilities.browserVersion,
    async open(id, url) {
      if (single) { handles.set(id, await call("GET", s("/window"))); return { opened_at: Date.now() }; }
      if (handles.size === 0) handles.set(id, await call("GET", s("/window")));
      else handles.set(id, (await call("POST", s("/window/new"), { type: "tab" })).handle);
      await use(id);
      const at = Date.now();
      await call("POST", s("/url"), { url });
      return { opened_at: at };
    },
    async press(id) {
      await use(id);
      const el = await call("POST", s("/element"), { using: "css selector", value: "#ptt" });
      const ref = Object.values(el)[0];
      await call("POST", s("/actions"), { actions: [{ type: "pointer", id: "mouse", parameters: { pointerType: "mouse" },
        actions: [{ type: "pointerMove", origin: { "element-6066-11e4-a52e-4f735466cecf": ref }, x: 0, y: 0 }, { type: "pointerDown", button: 0 }] }] });
      return Date.now();
    },
    async release(id) {
      await use(id);
      await call("POST", s("/actions"), { actions: [{ type: "pointer", id: "mouse", parameters: { pointerType: "mouse" }, actions: [{ type: "pointerUp", button: 0 }] }] });
      return Date.now();
    },
    async key(id, key, down) {
      await use(id);
      await call("POST", s("/actions"), { actions: [{ type: "key", id: "keyboard",
        actions: [{ type: down ? "keyDown" : "keyUp", value: WEBDRIVER_KEYS[key] || key }] }] });
      return Date.now();
    },
    eval: exec,
    async wait(id, js, timeout) {
      const end = Date.now() + timeout;
      for (;;) {
        const v = await exec(id, js);
        if (v) return v;
        if (Date.now() > end) throw new Error(`timeout ${timeout} ms waiting for ${js}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async screenshot(id, path) {
      await use(id);
      const png = await call("GET", s("/screenshot"));
      (await import("node:fs")).writeFileSync(path, Buffer.from(png, "base64"));
      return path;
    },
    async closePage(id) { await use(id); await call("DELETE", s("/window")); handles.delete(id); },
    async quit() { try { await call("DELETE", s("")); } finally { gd.kill(); } },
  };
}

// ---------- command loop ----------

const b = kind === "firefox" ? await firefox() : kind === "tauri" ? await tauri() : await chromium();
out({ event: "ready", browser: kind, version: b.version });
const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
  if (!line.trim()) continue;
  let c;
  try { c = JSON.parse(line); } catch (e) { out({ reply: null, error: `bad command: ${e}` }); continue; }
  try {
    let value;
    switch (c.cmd) {
      case "open": value = await b.open(c.page, c.url); break;
      case "press": value = await b.press(c.page); break;
      case "release": value = await b.release(c.page); break;
      case "key": value = await b.key(c.page, c.key, c.down); break;
      case "viewport": value = await b.viewport(c.page, c.width, c.height); break;
      case "eval": value = await b.eval(c.page, c.js); break;
      case "wait": value = await b.wait(c.page, c.js, c.timeout_ms || 20000); break;
      case "screenshot": value = await b.screenshot(c.page, c.path); break;
      case "close_page": value = await b.closePage(c.page); break;
      case "quit": await b.quit(); out({ reply: c.id, ok: true }); process.exit(0);
      default: throw new Error(`unknown command ${c.cmd}`);
    }
    out({ reply: c.id, ok: true, value: value === undefined ? null : value });
  } catch (e) {
    out({ reply: c.id, ok: false, error: String(e && e.message || e) });
  }
}
await b.quit();
