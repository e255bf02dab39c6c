// The page's globals that the browser does not declare: Tauri's injected
// API (desktop only), the cue player (cues.js) and Safari's prefixed
// AudioContext. Hand-written; the message types are generated
// (events.d.ts).
interface Window {
  __TAURI__?: any;
  SquawkCues: any;
  webkitAudioContext?: typeof AudioContext;
  /** The app's engine and state, for tests and the console. */
  squawkApp?: { engine: any; ui: any };
}
