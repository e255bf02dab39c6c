//! An empty Tauri 2 window: the baseline the desktop app's memory and CPU
//! are measured against (`tests/app_bench.rs`, `scripts/bench-app.sh`).
//! The same tauri build as the app (same version and features, the same
//! window size), a blank page, no plugins, no commands, no engine: what is
//! above this is the app's own.

fn main() {
    if let Err(e) = tauri::Builder::default().run(tauri::generate_context!(
        "examples/empty-window/tauri.conf.json"
    )) {
        eprintln!("empty window: {e}");
        std::process::exit(1);
    }
}
