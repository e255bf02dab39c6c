// Runs the PTT table (tests/ptt/cases.txt) against the browser engine's
// machine (ui/ptt.js), loaded as the page loads it: a plain script.
// Usage: node tests/ptt/run.js [cases.txt]. Prints each case that differs
// and exits 1 when one does; tests/ptt_table.rs runs it.
"use strict";
const fs = require("fs");
const path = require("path");
const vm = require("vm");

const root = path.join(__dirname, "..", "..");
vm.runInThisContext(fs.readFileSync(path.join(root, "ui", "ptt.js"), "utf8"), { filename: "ui/ptt.js" });
const createPtt = globalThis.createPtt;
const TAIL_MS = 250;

/** The cases: [{name, steps: [{line, at, input: string[], expected: string[]}]}]. */
function parse(text) {
  const cases = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith("#")) return;
    if (line.startsWith("case ")) { cases.push({ name: line.slice(5), steps: [] }); return; }
    const [lhs, rhs] = line.split("->");
    if (rhs === undefined || !cases.length) throw new Error(`line ${i + 1}: not a step: ${line}`);
    const [at, ...input] = lhs.trim().split(/\s+/);
    const expected = rhs.split(";").map((a) => a.trim().split(/\s+/).join(" ")).filter(Boolean);
    cases[cases.length - 1].steps.push({ line: i + 1, at: Number(at), input, expected });
  });
  return cases;
}

function input([kind, ...args]) {
  switch (kind) {
    case "press": return { type: "press", channels: args };
    case "release": return { type: "release" };
    case "granted": return { type: "granted", channel: args[0] };
    case "denied": return { type: "denied", channel: args[0], reason: args[1] };
    case "queued": return { type: "queued", channel: args[0], position: Number(args[1]) };
    case "revoked": return { type: "revoked", channel: args[0], reason: args[1] };
    case "floor_idle": return { type: "floor_idle", channel: args[0] };
    case "disconnected": return { type: "disconnected" };
    case "tick": return { type: "tick" };
    default: throw new Error(`unknown input ${kind}`);
  }
}

function words(a) {
  switch (a.type) {
    case "request_floor": return `request ${a.channel}`;
    case "release_floor": return `release ${a.channel}`;
    case "talk_started": return `started ${a.channel}`;
    case "talk_ended": return `ended ${a.channel}`;
    case "busy": return `busy ${a.channel} ${a.reason}`;
    case "queued": return `queued ${a.channel} ${a.position}`;
    case "revoked": return `revoked ${a.channel} ${a.reason}`;
    case "uplink": return `uplink ${a.on ? "on" : "off"}`;
    default: return JSON.stringify(a);
  }
}

const file = process.argv[2] || path.join(__dirname, "cases.txt");
const cases = parse(fs.readFileSync(file, "utf8"));
let failed = 0;
for (const c of cases) {
  const ptt = createPtt({ tailMs: TAIL_MS });
  for (const s of c.steps) {
    const got = ptt.handle(input(s.input), s.at).map(words);
    if (JSON.stringify(got) !== JSON.stringify(s.expected)) {
      failed += 1;
      console.log(`FAIL ${c.name}\n  line ${s.line}: ${s.at} ${s.input.join(" ")}\n  expected: ${s.expected.join("; ")}\n  got:      ${got.join("; ")}`);
      break;
    }
  }
}
console.log(`ptt table (browser, ui/ptt.js): ${cases.length - failed} of ${cases.length} cases pass`);
process.exit(failed ? 1 : 0);
