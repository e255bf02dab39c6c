//! Tauri build script: reads tauri.conf.json and embeds the app context.
fn main() {
    tauri_build::build()
}
