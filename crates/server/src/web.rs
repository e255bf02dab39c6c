//! The browser client: the desktop app's UI (`ui/` at the workspace root),
//! compiled into the server so that one binary serves everything.
//!
//! | Path | Response |
//! |---|---|
//! | `/` | the UI: asks for a name, lists channels |
//! | `/c/{channel}` | the UI, joining `channel` (`?name=NAME` skips the name question) |
//! | `/ui/{file}` | the UI's assets |
//!
//! The same `index.html` runs in the Tauri window, where its assets sit next
//! to it; here the server adds `<base href="/ui/">` so that relative asset
//! paths resolve from `/c/{channel}` too. The UI picks its engine at run
//! time: Tauri's when `window.__TAURI__` exists, the browser's otherwise.

use axum::{
    Router,
    extract::Path,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use squawk_protocol::ChannelName;

/// One embedded file: name under `/ui/`, MIME type, contents.
struct Asset {
    name: &'static str,
    mime: &'static str,
    body: &'static [u8],
}

macro_rules! ui_asset {
    ($name:literal, $mime:literal) => {
        Asset {
            name: $name,
            mime: $mime,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../ui/", $name)),
        }
    };
}

const ASSETS: &[Asset] = &[
    ui_asset!("style.css", "text/css; charset=utf-8"),
    ui_asset!("app.js", "text/javascript; charset=utf-8"),
    ui_asset!("cues.js", "text/javascript; charset=utf-8"),
    ui_asset!("engine-tauri.js", "text/javascript; charset=utf-8"),
    ui_asset!("ptt.js", "text/javascript; charset=utf-8"),
    ui_asset!("engine-browser.js", "text/javascript; charset=utf-8"),
    ui_asset!("console.js", "text/javascript; charset=utf-8"),
    // The app icon (from `icons/`, not `ui/`) as the page's favicon.
    Asset {
        name: "icon.png",
        mime: "image/png",
        body: include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../icons/128x128.png"
        )),
    },
];

const INDEX: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../ui/index.html"));

/// Routes of the browser client, to merge into the server's router.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/c/{channel}", get(channel_page))
        .route("/ui/{file}", get(asset))
}

/// `index.html` with the `<base>` that makes its relative asset paths work
/// under any route.
/// `index.html` as served: with `<base href="/ui/">` first in `<head>`.
fn index_html() -> String {
    INDEX.replacen("<head>", "<head>\n<base href=\"/ui/\">", 1)
}

fn page() -> Response {
    let html = index_html();
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        html,
    )
        .into_response()
}

async fn index() -> Response {
    page()
}

async fn channel_page(Path(channel): Path<String>) -> Response {
    match ChannelName::new(&channel) {
        Ok(_) => page(),
        Err(e) => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("no such channel {channel:?}: {e}\n"),
        )
            .into_response(),
    }
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == file) {
        Some(a) => (
            [
                (header::CONTENT_TYPE, a.mime),
                (header::CACHE_CONTROL, "no-cache"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            a.body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_the_page_names_is_served() {
        // index.html must only reference embedded assets, or the browser
        // client breaks while the desktop app (which serves ui/ as files)
        // still works.
        for part in INDEX.split(['"', '\'']) {
            let is_ref = part.ends_with(".js") || part.ends_with(".css") || part.ends_with(".png");
            if is_ref && !part.contains('/') {
                assert!(
                    ASSETS.iter().any(|a| a.name == part),
                    "index.html references {part}, which web.rs does not embed"
                );
            }
        }
        let html = page();
        assert_eq!(html.status(), StatusCode::OK);
    }

    #[test]
    fn the_base_is_inserted_once() {
        let html = index_html();
        assert_eq!(html.matches("<base href=\"/ui/\">").count(), 1);
    }
}
