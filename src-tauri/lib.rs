//! The Squawk desktop app (Tauri 2): a thin shell that drives
//! [`squawk_engine::Engine`] for the web UI in `ui/`.
//!
//! The UI talks to the backend through a few commands (`engine_connect`,
//! `engine_join`, `engine_leave`, `engine_list_channels`, `engine_press`,
//! `engine_release`, `engine_disconnect`, `app_cli`) and one event stream
//! (`engine-event`, JSON objects tagged by `type`). `ui/engine-tauri.js`
//! wraps them in the engine interface that `ui/engine-browser.js` also
//! implements, so the browser client runs the same UI.

use clap::Parser;
use serde_json::json;
use squawk_engine::{
    Engine, EngineConfig, EngineError, EngineEvent,
    audio::{InputSpec, OutputSpec},
};
use squawk_protocol::ChannelName;
use tauri::{Emitter, Manager, State};
use tokio::sync::Mutex;

/// Command-line options (for fixed consoles and automation).
#[derive(Debug, Clone, Parser, serde::Serialize)]
#[command(version, about = "Squawk push-to-talk desktop app")]
pub struct Cli {
    /// Server signaling URL; connect at start when given.
    #[arg(long)]
    pub server: Option<String>,
    /// Display name.
    #[arg(long)]
    pub name: Option<String>,
    /// Channels to join at start (repeatable).
    #[arg(long = "channel")]
    pub channels: Vec<String>,
}

/// The app's state: at most one engine.
#[derive(Default)]
struct AppState {
    engine: Mutex<Option<Engine>>,
}

/// Converts an engine event to the UI's JSON shape.
pub fn event_json(ev: &EngineEvent) -> serde_json::Value {
    match ev {
        EngineEvent::Welcome {
            client_id,
            max_talk_ms,
        } => {
            json!({"type": "welcome", "client_id": client_id, "max_talk_ms": max_talk_ms})
        }
        EngineEvent::MediaConnected => json!({"type": "media", "connected": true}),
        EngineEvent::MediaDisconnected => json!({"type": "media", "connected": false}),
        EngineEvent::Joined { channel, members } => {
            json!({"type": "joined", "channel": channel, "members": members})
        }
        EngineEvent::Left { channel } => json!({"type": "left", "channel": channel}),
        EngineEvent::Presence { channel, members } => {
            json!({"type": "presence", "channel": channel, "members": members})
        }
        EngineEvent::FloorGranted {
            channel,
            max_duration_ms,
        } => {
            json!({"type": "floor_granted", "channel": channel, "max_duration_ms": max_duration_ms})
        }
        EngineEvent::Busy { channel, reason } => {
            json!({"type": "floor_deny", "channel": channel, "reason": reason})
        }
        EngineEvent::Revoked { channel, reason } => {
            json!({"type": "floor_revoke", "channel": channel, "reason": reason})
        }
        EngineEvent::TalkEnded { channel } => json!({"type": "talk_ended", "channel": channel}),
        EngineEvent::FloorTaken {
            channel,
            talker,
            talker_name,
        } => {
            json!({"type": "floor_taken", "channel": channel, "talker": talker, "talker_name": talker_name})
        }
        EngineEvent::FloorIdle { channel } => json!({"type": "floor_idle", "channel": channel}),
        EngineEvent::ReceiveStarted { channel, .. } => {
            json!({"type": "receive_started", "channel": channel})
        }
        EngineEvent::Received(r) => json!({"type": "received", "report": r}),
        EngineEvent::Channels(channels) => json!({"type": "channels", "channels": channels}),
        EngineEvent::ServerError { code, message } => {
            json!({"type": "error", "code": code, "message": message})
        }
        EngineEvent::Closed { reason } => json!({"type": "closed", "reason": reason}),
    }
}

fn parse_channel(c: &str) -> Result<ChannelName, String> {
    c.parse().map_err(|e| format!("channel {c:?}: {e}"))
}

#[tauri::command]
async fn engine_connect<R: tauri::Runtime>(
    app: tauri::AppHandle<R>,
    state: State<'_, AppState>,
    server: String,
    name: String,
    channels: Vec<String>,
) -> Result<(), String> {
    let channels: Vec<ChannelName> = channels
        .iter()
        .map(|c| parse_channel(c))
        .collect::<Result<_, _>>()?;
    let mut guard = state.engine.lock().await;
    if let Some(old) = guard.take() {
        old.close().await;
    }
    let mut config = EngineConfig::new(server, name);
    config.input = InputSpec::Device(None);
    config.output = OutputSpec::Device(None);
    // No usable audio device: still connect (presence, who talks), and say
    // plainly that audio is off rather than refusing to connect.
    let mut audio_warning = None;
    let (engine, mut events) = match Engine::start(config.clone()).await {
        Ok(started) => started,
        Err(EngineError::Device(e)) => {
            audio_warning = Some(format!(
                "audio device unavailable ({e}): connected without sound"
            ));
            config.input = InputSpec::None;
            config.output = OutputSpec::None;
            Engine::start(config).await.map_err(|e| e.to_string())?
        }
        Err(e) => return Err(e.to_string()),
    };
    if let Some(message) = audio_warning {
        let _ = app.emit(
            "engine-event",
            json!({"type": "warning", "message": message}),
        );
    }
    for c in channels {
        engine.join(c);
    }
    *guard = Some(engine);
    tauri::async_runtime::spawn(async move {
        while let Some(ev) = events.recv().await {
            let _ = app.emit("engine-event", event_json(&ev));
        }
    });
    Ok(())
}

#[tauri::command]
async fn engine_press(state: State<'_, AppState>, channel: String) -> Result<(), String> {
    let channel = parse_channel(&channel)?;
    with_engine(&state, |e| e.press(channel)).await
}

#[tauri::command]
async fn engine_join(state: State<'_, AppState>, channel: String) -> Result<(), String> {
    let channel = parse_channel(&channel)?;
    with_engine(&state, |e| e.join(channel)).await
}

#[tauri::command]
async fn engine_leave(state: State<'_, AppState>, channel: String) -> Result<(), String> {
    let channel = parse_channel(&channel)?;
    with_engine(&state, |e| e.leave(channel)).await
}

#[tauri::command]
async fn engine_list_channels(state: State<'_, AppState>) -> Result<(), String> {
    with_engine(&state, Engine::list_channels).await
}

/// Runs `f` on the connected engine, or fails with "not connected".
async fn with_engine(state: &AppState, f: impl FnOnce(&Engine)) -> Result<(), String> {
    match state.engine.lock().await.as_ref() {
        Some(e) => {
            f(e);
            Ok(())
        }
        None => Err("not connected".into()),
    }
}

#[tauri::command]
async fn engine_release(state: State<'_, AppState>) -> Result<(), String> {
    if let Some(e) = state.engine.lock().await.as_ref() {
        e.release();
    }
    Ok(())
}

#[tauri::command]
async fn engine_disconnect(state: State<'_, AppState>) -> Result<(), String> {
    if let Some(e) = state.engine.lock().await.take() {
        e.close().await;
    }
    Ok(())
}

#[tauri::command]
fn app_cli(cli: State<'_, Cli>) -> Cli {
    cli.inner().clone()
}

/// Builds the app with the given runtime (the real one, or the mock in tests).
pub fn builder<R: tauri::Runtime>(cli: Cli) -> tauri::Builder<R> {
    tauri::Builder::<R>::new()
        .manage(AppState::default())
        .manage(cli)
        .invoke_handler(tauri::generate_handler![
            engine_connect,
            engine_join,
            engine_leave,
            engine_list_channels,
            engine_press,
            engine_release,
            engine_disconnect,
            app_cli
        ])
}

/// Runs the desktop app.
pub fn run() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,squawk=info".into()),
        )
        .init();
    let cli = Cli::parse();
    let result = builder::<tauri::Wry>(cli)
        .setup(|app| {
            if let Some(w) = app.get_webview_window("main") {
                let _ = w.set_title("Squawk");
            }
            Ok(())
        })
        .run(tauri::generate_context!());
    if let Err(e) = result {
        eprintln!("squawk: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_have_the_ui_shape() {
        let ch: ChannelName = "ops".parse().unwrap();
        let v = event_json(&EngineEvent::FloorTaken {
            channel: ch.clone(),
            talker: 3,
            talker_name: "Bo".into(),
        });
        assert_eq!(
            v,
            json!({"type": "floor_taken", "channel": "ops", "talker": 3, "talker_name": "Bo"})
        );
        let v = event_json(&EngineEvent::Busy {
            channel: ch,
            reason: squawk_protocol::DenyReason::Busy,
        });
        assert_eq!(v["reason"], "busy");
    }

    #[test]
    fn cli_parses_console_options() {
        let cli = Cli::try_parse_from([
            "squawk",
            "--server",
            "ws://h/ws",
            "--name",
            "D1",
            "--channel",
            "a",
            "--channel",
            "b",
        ])
        .unwrap();
        assert_eq!(cli.channels, vec!["a", "b"]);
        assert_eq!(cli.server.as_deref(), Some("ws://h/ws"));
    }
}
