// Release builds on Windows have no console window.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

//! The Squawk desktop app. See `squawk --help`.

fn main() {
    squawk_app::run();
}
