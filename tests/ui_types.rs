//! The UI's JavaScript against the Rust types it receives: the generated
//! declarations (`ui/types/events.d.ts`, from `squawk_app::events`) must
//! be current, and `tsc --checkJs` must find no error in `ui/` with them.
//! A renamed field or message in Rust fails here until the file is
//! regenerated (`SQUAWK_BLESS=1 cargo test --test ui_types`) and the UI
//! follows.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::{path::Path, process::Command};

#[test]
fn the_generated_ui_types_are_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = root.join("ui/types/events.d.ts");
    let generated = squawk_app::events::typescript();
    if std::env::var_os("SQUAWK_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} differs from the Rust types: regenerate it with \
         `SQUAWK_BLESS=1 cargo test --test ui_types` and fix the UI where tsc says",
        path.display()
    );
}

#[test]
fn the_ui_type_checks_against_the_generated_types() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tsc = root.join("tests/browser/node_modules/.bin/tsc");
    assert!(
        tsc.exists(),
        "{} missing: run scripts/setup.sh (npm ci in tests/browser)",
        tsc.display()
    );
    let out = Command::new(&tsc)
        .arg("-p")
        .arg(root.join("ui"))
        .arg("--pretty")
        .arg("false")
        .output()
        .expect("run tsc");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "tsc found errors in ui/:\n{report}");
}
