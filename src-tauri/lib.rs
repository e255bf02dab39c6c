//! The Squawk desktop app (Tauri 2): a thin shell that drives
//! [`squawk_engine::Engine`] for the web UI in `ui/`.
//!
//! The UI talks to the backend through a few commands (`engine_connect`,
//! `engine_join`, `engine_leave`, `engine_list_channels`, `engine_press`,
//! `engine_release`, `engine_disconnect`, `app_cli`) and one event stream
//! (`engine-event`, JSON objects tagged by `type`). `ui/engine-tauri.js`
//! wraps them in the engine interface that `ui/engine-browser.js` also
//! implements, so the browser client runs the same UI.
//!
//! The shell is split by domain, each module with its own commands:
//! `connection` (an actor task that owns the engine and runs the
//! connection's state machine, `link`: connect, sign in, reconnect,
//! disconnect; the other commands only send to it), `channels` (the calls
//! on the connected engine: talking, channels, emergencies, mixing, recall,
//! patches), `devices` (microphone, speaker and the audio controls),
//! `hotkey` (binding the global talk key and acting on it; its decisions
//! are `talk_key`'s pure machines, its Wayland binding `portal`), `pedal`,
//! `tray` and `settings`. What is left here is the app's state, the event
//! path to the UI, the window and tray, and start-up.

pub mod account;
mod channels;
mod connection;
pub mod devices;
pub mod events;
mod hotkey;
pub mod link;
pub mod pedal;
#[cfg(target_os = "linux")]
pub mod portal;
pub mod reconnect;
pub mod secrets;
pub mod settings;
pub mod talk_key;
pub mod tray;

use std::{
    sync::{Mutex as SyncMutex, atomic::AtomicU32},
    time::Duration,
};

use clap::Parser;
use serde_json::json;
use squawk_engine::{
    EngineConfig, FloorOptions,
    audio::{InputSpec, OutputSpec, controls::AudioControls},
};
use squawk_protocol::ChannelName;
use tauri::{Emitter, Manager, State};

use crate::events::{AppEvent, TalkKeyStatus, UiError, UiEvent};

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
    /// Global talk key, as global-hotkey names it: a key such as `F9` or
    /// `F13`, or a combination such as `Control+Shift+KeyT`. Works while the
    /// window is in the background (X11).
    #[arg(long, value_name = "KEY")]
    pub talk_key: Option<String>,
    /// Latch (toggle) mode: one press talks, the next press releases.
    #[arg(long)]
    pub latch: bool,
    /// Release tail, ms: audio still sent after the talk key goes up,
    /// before Floor Release (0 to 2000; default 250, or the saved setting).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u32).range(0..=2000))]
    pub release_tail_ms: Option<u32>,
    /// Microphone for this run, by PulseAudio name or description (as the
    /// Audio panel lists them); the saved choice, or the system's default,
    /// otherwise.
    #[arg(long, value_name = "NAME")]
    pub input_device: Option<String>,
    /// Speaker for this run, likewise.
    #[arg(long, value_name = "NAME")]
    pub output_device: Option<String>,
    /// Trust the CA certificates in this PEM file for `wss://` servers,
    /// beside the system's (a private CA, or a self-signed server's
    /// certificate given by its operator).
    #[arg(long, value_name = "FILE.pem")]
    pub ca: Option<std::path::PathBuf>,
    /// Print every engine event as a JSON line on stdout, with `at_ms` (Unix
    /// time of the event, ms), for automation and tests.
    #[arg(long)]
    pub print_events: bool,
}

/// A GlobalShortcuts portal session (dropping it closes it).
#[cfg(target_os = "linux")]
type PortalSession = portal::PortalKey;
/// No portal off Linux.
#[cfg(not(target_os = "linux"))]
type PortalSession = ();

/// Longest release tail accepted, ms.
pub const MAX_RELEASE_TAIL_MS: u32 = 2000;

/// The app's state: the way to the connection actor (which alone holds the
/// engine), the channel the talk key talks into, the talk key's state
/// machines, and the settings.
#[derive(Default)]
struct AppState {
    /// The connection actor: it owns the engine.
    connection: connection::Connection,
    target: SyncMutex<Option<ChannelName>>,
    /// The console's selection: the channels the talk key talks into (an
    /// all-call when several) and the Floor Requests' options; `target`
    /// when empty.
    selection: SyncMutex<(Vec<ChannelName>, FloorOptions)>,
    talk_key: SyncMutex<talk_key::TalkKey>,
    talk_key_status: SyncMutex<Option<TalkKeyStatus>>,
    /// Loaded at start-up (`run`); saved after each successful connect.
    settings: SyncMutex<settings::Settings>,
    /// Where `settings` lives; `None` on the mock runtime (nothing saved).
    settings_dir: SyncMutex<Option<std::path::PathBuf>>,
    /// Gain, volume, mic test and meter, kept across reconnects.
    audio: SyncMutex<AudioControls>,
    /// The microphone and speaker chosen.
    devices: SyncMutex<devices::ChosenDevices>,
    /// Release tail, ms; `None` for the engine's default (250 ms).
    release_tail_ms: SyncMutex<Option<u32>>,
    /// The tray icon's model, fed by [`emit_ui`].
    tray: SyncMutex<tray::TrayModel>,
    /// The OS keyring, opened on first use (off the async threads).
    secrets: std::sync::OnceLock<secrets::Secrets>,
    /// Set to stop the running pedal reader (or learner).
    pedal_stop: SyncMutex<Option<std::sync::Arc<std::sync::atomic::AtomicBool>>>,
    /// The global talk key bound now: an X11 grab or a GlobalShortcuts
    /// portal session (Wayland), and its rebinding.
    binding: SyncMutex<talk_key::TalkKeyBinding<PortalSession>>,
    /// Bumped when the audio controls change; the settings are written
    /// once they have been still for a moment (sliders send many changes).
    audio_edits: AtomicU32,
}

impl AppState {
    /// The engine settings for `server` and `name`, with the audio devices,
    /// the user's audio controls and release tail.
    fn engine_config(&self, server: &str, name: &str) -> EngineConfig {
        let mut config = EngineConfig::new(server, name);
        let chosen = self.devices.lock().map(|d| d.clone()).unwrap_or_default();
        config.input = InputSpec::Device(chosen.input);
        config.output = OutputSpec::Device(chosen.output);
        self.refresh(&mut config);
        config
    }

    /// Brings `config`'s audio controls and release tail up to date (before
    /// a reconnect: the user may have changed them since).
    fn refresh(&self, config: &mut EngineConfig) {
        // The devices chosen since (a connection without sound stays so).
        if let Ok(chosen) = self.devices.lock() {
            if let InputSpec::Device(d) = &mut config.input {
                d.clone_from(&chosen.input);
            }
            if let OutputSpec::Device(d) = &mut config.output {
                d.clone_from(&chosen.output);
            }
        }
        if let Ok(a) = self.audio.lock() {
            config.audio = *a;
        }
        if let Ok(Some(ms)) = self.release_tail_ms.lock().map(|t| *t) {
            config.ptt.release_tail = Duration::from_millis(u64::from(ms));
        }
    }
}

/// Sends one event to the UI (and to stdout with `--print-events`).
pub(crate) fn emit_ui<R: tauri::Runtime>(app: &tauri::AppHandle<R>, ev: impl Into<UiEvent>) {
    let ev = ev.into();
    let json = serde_json::to_value(&ev).unwrap_or_default();
    if app.state::<Cli>().print_events {
        // With the time it happened, Unix ms (µs resolution), for measurements.
        let mut line = json.clone();
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
        line["at_ms"] = json!((at * 1000.0).round() / 1000.0);
        println!("{line}");
    }
    let changed = app
        .state::<AppState>()
        .tray
        .lock()
        .ok()
        .and_then(|mut t| t.on_event(&ev));
    if let Some(state) = changed {
        show_tray_state(app, &state);
    }
    let _ = app.emit("engine-event", json);
}

/// Id of the app's tray icon.
const TRAY_ID: &str = "main";

/// Redraws the tray icon and tooltip for `state` (no-op without a tray).
fn show_tray_state<R: tauri::Runtime>(app: &tauri::AppHandle<R>, state: &tray::TrayState) {
    let Some(icon) = app.tray_by_id(TRAY_ID) else {
        return;
    };
    if let Some(base) = app.default_window_icon() {
        let rgba = tray::badge(base.rgba(), base.width(), base.height(), state.color());
        let image = tauri::image::Image::new_owned(rgba, base.width(), base.height());
        if let Err(e) = icon.set_icon(Some(image)) {
            tracing::debug!("tray icon: {e}");
        }
    }
    let _ = icon.set_tooltip(Some(state.tooltip()));
}

/// Creates the tray icon: the talk state as a coloured dot, a menu to show
/// the window or quit, and a click that shows the window.
fn create_tray(app: &tauri::App) -> tauri::Result<()> {
    use tauri::{
        menu::{Menu, MenuItem},
        tray::{MouseButton, MouseButtonState, TrayIconBuilder, TrayIconEvent},
    };
    let show = MenuItem::with_id(app, "show", "Show Squawk", true, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit", true, None::<&str>)?;
    let menu = Menu::with_items(app, &[&show, &quit])?;
    let mut builder = TrayIconBuilder::with_id(TRAY_ID)
        .menu(&menu)
        .tooltip(tray::TrayState::Offline.tooltip())
        .on_menu_event(|app, event| match event.id().as_ref() {
            "show" => show_window(app),
            "quit" => app.exit(0),
            _ => {}
        })
        .on_tray_icon_event(|icon, event| {
            if let TrayIconEvent::Click {
                button: MouseButton::Left,
                button_state: MouseButtonState::Up,
                ..
            } = event
            {
                show_window(icon.app_handle());
            }
        });
    if let Some(base) = app.default_window_icon() {
        let rgba = tray::badge(
            base.rgba(),
            base.width(),
            base.height(),
            tray::TrayState::Offline.color(),
        );
        builder = builder.icon(tauri::image::Image::new_owned(
            rgba,
            base.width(),
            base.height(),
        ));
    }
    builder.build(app)?;
    Ok(())
}

/// Turns off WebKitGTK's accelerated compositing for the window: our page
/// has nothing to composite, and without a GPU the compositor renders
/// through llvmpipe. Measured (release, idle): the web process drops from
/// 258 MiB RSS / 186 MiB PSS to 183 / 112 MiB, and its idle CPU with it.
fn lighten_webview(window: &tauri::WebviewWindow) {
    #[cfg(target_os = "linux")]
    let _ = window.with_webview(|webview| {
        use webkit2gtk::{HardwareAccelerationPolicy, SettingsExt, WebViewExt};
        if let Some(settings) = webview.inner().settings() {
            settings.set_hardware_acceleration_policy(HardwareAccelerationPolicy::Never);
        }
    });
    #[cfg(not(target_os = "linux"))]
    let _ = window;
}

/// Shows, unminimises and focuses the main window (tray click, or a second
/// instance started by the user).
fn show_window<R: tauri::Runtime>(app: &tauri::AppHandle<R>) {
    if let Some(w) = app.get_webview_window("main") {
        let _ = w.show();
        let _ = w.unminimize();
        let _ = w.set_focus();
    }
}

pub(crate) fn parse_channel(c: &str) -> Result<ChannelName, UiError> {
    c.parse()
        .map_err(|e| UiError::invalid(format!("channel {c:?}: {e}")))
}

/// Runs `f` with the keyring on a blocking thread (the Secret Service
/// store does D-Bus calls and must not stall an async worker).
///
/// # Errors
/// `f`'s error, or the keyring task's failure (a panic in the store).
pub(crate) async fn with_keyring<R: tauri::Runtime, T: Send + 'static>(
    app: &tauri::AppHandle<R>,
    f: impl FnOnce(&secrets::Secrets) -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let app = app.clone();
    let run = move || {
        f(app
            .state::<AppState>()
            .secrets
            .get_or_init(secrets::Secrets::system))
    };
    tauri::async_runtime::spawn_blocking(run)
        .await
        .map_err(|e| format!("keyring task failed: {e}"))?
}

/// Start-up parameters for the UI: the command line, falling back to the
/// saved settings (last server, name and channels; remembered servers).
#[tauri::command]
fn app_cli(cli: State<'_, Cli>, state: State<'_, AppState>) -> serde_json::Value {
    let saved = state.settings.lock().map(|s| s.clone()).unwrap_or_default();
    let channels = if cli.channels.is_empty() {
        saved.channels.clone()
    } else {
        cli.channels.clone()
    };
    json!({
        "server": cli.server.clone().or_else(|| saved.servers.first().cloned()),
        "connect_at_start": cli.server.is_some(),
        "name": cli.name.clone().or(saved.name),
        "user": saved.user,
        "channels": channels,
        "servers": saved.servers,
        "talk_key": cli.talk_key.clone().or(saved.talk_key),
        "latch": cli.latch || saved.latch,
        "tail_ms": state.release_tail_ms.lock().ok().and_then(|t| *t).or(cli.release_tail_ms).unwrap_or(250),
        "audio": state.audio.lock().map(|a| *a).unwrap_or_default(),
        "pedal": saved.pedal,
    })
}

/// Changes the settings with `edit` and writes them (nothing is written on
/// the mock runtime, which has no settings directory).
pub(crate) fn save_settings(state: &AppState, edit: impl FnOnce(&mut settings::Settings)) {
    let Ok(mut s) = state.settings.lock() else {
        return;
    };
    edit(&mut s);
    let dir = state.settings_dir.lock().ok().and_then(|d| d.clone());
    if let Some(dir) = dir
        && let Err(e) = s.save(&dir)
    {
        tracing::warn!("cannot save settings in {}: {e}", dir.display());
    }
}

/// Builds the app with the given runtime (the real one, or the mock in tests).
pub fn builder<R: tauri::Runtime>(cli: Cli) -> tauri::Builder<R> {
    configure(tauri::Builder::<R>::new(), cli)
}

/// Adds the app's state and commands to `builder` (tests pass
/// `tauri::test::mock_builder()`, whose invoke key they know).
pub fn configure<R: tauri::Runtime>(builder: tauri::Builder<R>, cli: Cli) -> tauri::Builder<R> {
    builder
        .manage(AppState::default())
        .manage(cli)
        .invoke_handler(tauri::generate_handler![
            connection::engine_connect,
            channels::engine_join,
            channels::engine_leave,
            channels::engine_list_channels,
            channels::engine_press,
            channels::engine_press_all,
            channels::engine_emergency,
            channels::engine_ack_emergency,
            channels::engine_cancel_emergency,
            channels::engine_mute,
            channels::engine_set_channel_mix,
            channels::engine_patch,
            channels::engine_unpatch,
            channels::engine_replay,
            channels::engine_stop_replay,
            channels::engine_release,
            connection::engine_disconnect,
            connection::account_sign_out,
            connection::trust_certificate,
            connection::forget_certificate,
            app_cli,
            channels::app_set_target,
            channels::app_set_selection,
            hotkey::app_talk_key_status,
            hotkey::app_set_talk_key,
            devices::app_set_audio,
            devices::app_audio_devices,
            devices::app_set_audio_device,
            pedal::app_list_pedals,
            pedal::app_learn_pedal,
            pedal::app_clear_pedal
        ])
}

/// Runs the desktop app.
pub fn run() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // zbus warns of every portal request object it cannot
                // cache properties of, as ashpd creates them ahead of time.
                .unwrap_or_else(|_| "warn,squawk=info,zbus::proxy=error".into()),
        )
        .init();
    let cli = Cli::parse();
    // One async worker thread: the engine's WebRTC tasks, its socket and
    // the commands wake each other on one thread instead of handing work
    // across two (futex and epoll wake-ups between tauri's default two
    // workers were most of the engine's receive cost, docs/benchmarks.md).
    // Audio runs on its own threads; blocking work on the blocking pool.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("tokio-rt-worker")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("squawk: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    tauri::async_runtime::set(runtime.handle().clone());
    let (cli_key, cli_latch, cli_tail) = (cli.talk_key.clone(), cli.latch, cli.release_tail_ms);
    let cli_devices = devices::ChosenDevices {
        input: cli.input_device.clone(),
        output: cli.output_device.clone(),
    };
    let result = builder::<tauri::Wry>(cli)
        // First, so that a second start hands over before anything else runs:
        // it shows the running app's window and exits.
        .plugin(tauri_plugin_single_instance::init(|app, _argv, _cwd| {
            show_window(app);
        }))
        .plugin(
            tauri_plugin_window_state::Builder::default()
                .with_state_flags(
                    tauri_plugin_window_state::StateFlags::all()
                        - tauri_plugin_window_state::StateFlags::VISIBLE,
                )
                .build(),
        )
        .plugin(tauri_plugin_global_shortcut::Builder::new().build())
        .setup(move |app| {
            if let Some(w) = app.get_webview_window("main") {
                let _ = w.set_title("Squawk");
                lighten_webview(&w);
            }
            let state = app.state::<AppState>();
            let mut talk_key = cli_key.clone();
            let mut latch = cli_latch;
            if let Ok(dir) = app.path().app_config_dir() {
                let (saved, problem) = settings::Settings::load(&dir);
                if let Some(problem) = problem {
                    tracing::warn!("settings not used: {problem}");
                }
                talk_key = talk_key.or(saved.talk_key.clone());
                latch |= saved.latch;
                if let Ok(mut t) = state.release_tail_ms.lock() {
                    *t = cli_tail.or(saved.release_tail_ms);
                }
                if let Ok(mut a) = state.audio.lock() {
                    *a = AudioControls {
                        input_gain: saved.input_gain.unwrap_or(1.0),
                        output_volume: saved.output_volume.unwrap_or(1.0),
                        noise_suppression: saved.noise_suppression.unwrap_or(true),
                        auto_gain: saved.auto_gain.unwrap_or(true),
                        ..AudioControls::default()
                    }
                    .clamped();
                }
                if let Ok(mut d) = state.devices.lock() {
                    *d = devices::ChosenDevices {
                        input: cli_devices.input.clone().or(saved.input_device.clone()),
                        output: cli_devices.output.clone().or(saved.output_device.clone()),
                    };
                }
                if let Ok(mut s) = state.settings.lock() {
                    *s = saved;
                }
                if let Ok(mut d) = state.settings_dir.lock() {
                    *d = Some(dir);
                }
            }
            hotkey::setup_talk_key(app.handle(), talk_key.as_deref(), latch);
            let pedal = state.settings.lock().ok().and_then(|s| s.pedal.clone());
            if let Some(p) = pedal
                && let Err(e) = pedal::start_pedal(app.handle(), &p)
            {
                tracing::warn!("pedal not started: {e}");
                emit_ui(
                    app.handle(),
                    AppEvent::Warning {
                        message: format!("pedal {}: {e}", p.device.name),
                    },
                );
            }
            // A desktop without a tray still has the window: say so, go on.
            if let Err(e) = create_tray(app) {
                tracing::warn!("no tray icon: {e}");
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
    use squawk_engine::{EngineEvent, LocalEvent};
    use squawk_protocol::{Priority, ServerMessage};

    use super::*;

    /// An event as the window gets it (`emit_ui`).
    fn event_json(ev: EngineEvent) -> serde_json::Value {
        serde_json::to_value(UiEvent::from(ev)).unwrap()
    }

    #[test]
    fn events_have_the_ui_shape() {
        let ch: ChannelName = "ops".parse().unwrap();
        let v = event_json(EngineEvent::Server(ServerMessage::FloorTaken {
            channel: ch.clone(),
            talker: 3,
            talker_name: "Bo".into(),
            priority: Priority::NORMAL,
            held_ms: 0,
        }));
        assert_eq!(
            v,
            json!({"type": "floor_taken", "channel": "ops", "talker": 3, "talker_name": "Bo",
                "priority": 0, "held_ms": 0})
        );
        let v = event_json(EngineEvent::Server(ServerMessage::FloorDeny {
            channel: ch,
            reason: squawk_protocol::DenyReason::Busy,
        }));
        assert_eq!(v["reason"], "busy");
        // The engine's own events carry their tag too, and no `Instant`.
        let v = event_json(EngineEvent::Local(LocalEvent::ReceiveStarted {
            channel: "ops".parse().unwrap(),
            at: std::time::Instant::now(),
        }));
        assert_eq!(v, json!({"type": "receive_started", "channel": "ops"}));
        let v = event_json(EngineEvent::Local(LocalEvent::Media { connected: false }));
        assert_eq!(v, json!({"type": "media", "connected": false}));
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

/// The Tauri commands through the IPC layer, on tauri's mock runtime (no
/// display, no engine): argument validation and the not-connected paths.
#[cfg(test)]
mod command_tests {
    use serde_json::{Value, json};
    use tauri::test::{INVOKE_KEY, MockRuntime, get_ipc_response};

    use super::*;

    fn app(args: &[&str]) -> (tauri::App<MockRuntime>, tauri::WebviewWindow<MockRuntime>) {
        let mut argv = vec!["squawk"];
        argv.extend_from_slice(args);
        let app = configure(
            tauri::test::mock_builder(),
            Cli::try_parse_from(argv).unwrap(),
        )
        .build(tauri::test::mock_context(tauri::test::noop_assets()))
        .unwrap();
        let window = tauri::WebviewWindowBuilder::new(&app, "main", Default::default())
            .build()
            .unwrap();
        (app, window)
    }

    fn invoke(
        window: &tauri::WebviewWindow<MockRuntime>,
        cmd: &str,
        body: Value,
    ) -> Result<Value, Value> {
        get_ipc_response(
            window,
            tauri::webview::InvokeRequest {
                cmd: cmd.into(),
                callback: tauri::ipc::CallbackFn(0),
                error: tauri::ipc::CallbackFn(1),
                url: "tauri://localhost".parse().unwrap(),
                body: tauri::ipc::InvokeBody::Json(body),
                headers: Default::default(),
                invoke_key: INVOKE_KEY.to_string(),
            },
        )
        .map(|b| b.deserialize::<Value>().unwrap())
    }

    /// The error every command gives without an engine.
    fn not_connected() -> Value {
        json!({"code": "not_connected", "message": "not connected"})
    }

    /// A command error's message (`UiError`).
    fn message(e: &Value) -> &str {
        e["message"].as_str().unwrap_or_default()
    }

    #[test]
    fn talking_without_a_connection_is_a_clear_error() {
        let (_app, w) = app(&[]);
        assert_eq!(
            invoke(&w, "engine_press", json!({"channel": "ops"})),
            Err(not_connected())
        );
        assert_eq!(
            invoke(&w, "engine_join", json!({"channel": "ops"})),
            Err(not_connected())
        );
        assert_eq!(
            invoke(&w, "engine_list_channels", json!({})),
            Err(not_connected())
        );
        // Releasing or disconnecting when idle is harmless.
        assert_eq!(invoke(&w, "engine_release", json!({})), Ok(Value::Null));
        assert_eq!(invoke(&w, "engine_disconnect", json!({})), Ok(Value::Null));
    }

    #[test]
    fn the_console_commands_check_their_arguments_then_need_a_connection() {
        let (_app, w) = app(&[]);
        let calls = [
            (
                "engine_press_all",
                json!({"channels": ["a", "b"], "priority": 128, "queue": true}),
            ),
            ("engine_emergency", json!({"channel": "a"})),
            (
                "engine_ack_emergency",
                json!({"channel": "a", "originator": 4}),
            ),
            (
                "engine_cancel_emergency",
                json!({"channel": "a", "originator": null}),
            ),
            ("engine_mute", json!({"channel": "a", "muted": true})),
            (
                "engine_set_channel_mix",
                json!({"channel": "a", "gain": 1.5, "pan": -1.0}),
            ),
            ("engine_patch", json!({"channels": ["a", "b"]})),
            ("engine_unpatch", json!({"channel": "a"})),
            ("engine_replay", json!({"id": 3})),
            ("engine_stop_replay", json!({})),
        ];
        for (cmd, body) in calls {
            assert_eq!(invoke(&w, cmd, body), Err(not_connected()), "{cmd}");
        }
        let e = invoke(&w, "engine_patch", json!({"channels": ["a", "b c"]})).unwrap_err();
        assert!(message(&e).contains("b c"), "{e}");
        assert_eq!(
            invoke(
                &w,
                "app_set_selection",
                json!({"channels": ["a", "b"], "priority": 0, "queue": false})
            ),
            Ok(Value::Null)
        );
        assert!(
            invoke(
                &w,
                "app_set_selection",
                json!({"channels": ["?"], "priority": 0, "queue": false})
            )
            .is_err()
        );
    }

    #[test]
    fn bad_channel_names_are_refused_before_the_engine() {
        let (_app, w) = app(&[]);
        let e = invoke(&w, "engine_press", json!({"channel": "no spaces"})).unwrap_err();
        assert!(message(&e).contains("no spaces"), "{e}");
        assert_eq!(e["code"], "invalid");
        let e = invoke(&w, "app_set_target", json!({"channel": ""})).unwrap_err();
        assert!(message(&e).starts_with("channel"), "{e}");
        assert_eq!(
            invoke(&w, "app_set_target", json!({"channel": "ops"})),
            Ok(Value::Null)
        );
        // A missing argument is an IPC error, not a panic.
        assert!(invoke(&w, "engine_press", json!({})).is_err());
    }

    #[test]
    fn the_ui_reads_the_command_line() {
        let (_app, w) = app(&[
            "--server",
            "ws://h:7300/ws",
            "--name",
            "Desk",
            "--channel",
            "a",
            "--channel",
            "b",
            "--talk-key",
            "F9",
            "--latch",
        ]);
        let cli = invoke(&w, "app_cli", json!({})).unwrap();
        assert_eq!(cli["server"], "ws://h:7300/ws");
        assert_eq!(cli["channels"], json!(["a", "b"]));
        assert_eq!(cli["talk_key"], "F9");
        assert_eq!(cli["latch"], true);
        assert_eq!(cli["connect_at_start"], true);
        assert_eq!(
            cli["servers"],
            json!([]),
            "nothing saved on the mock runtime"
        );
        // No talk key was registered on the mock runtime: status unknown.
        assert_eq!(
            invoke(&w, "app_talk_key_status", json!({})),
            Ok(Value::Null)
        );
    }

    #[test]
    fn talk_key_settings_are_checked_before_anything_changes() {
        let (_app, w) = app(&[]);
        let e = invoke(
            &w,
            "app_set_talk_key",
            json!({"key": "Hyper+Banana", "latch": false, "tailMs": 250}),
        )
        .unwrap_err();
        assert!(message(&e).contains("Hyper+Banana"), "{e}");
        let e = invoke(
            &w,
            "app_set_talk_key",
            json!({"key": "F9", "latch": false, "tailMs": 5000}),
        )
        .unwrap_err();
        assert!(message(&e).contains("5000 ms"), "{e}");
        let cli = invoke(&w, "app_cli", json!({})).unwrap();
        assert_eq!(cli["tail_ms"], 250, "nothing changed");
        // A valid key is accepted; on the mock runtime (no plugin, no
        // display) its status says why it cannot work, rather than failing.
        let st = invoke(
            &w,
            "app_set_talk_key",
            json!({"key": "Control+Shift+KeyT", "latch": true, "tailMs": 400}),
        )
        .unwrap();
        assert_eq!(st["type"], "talk_key_status");
        assert_eq!(st["key"], "Control+Shift+KeyT");
        assert_eq!(st["mode"], "latch");
        assert_eq!(st["available"], false);
        assert!(st["reason"].as_str().is_some_and(|r| !r.is_empty()), "{st}");
        assert_eq!(invoke(&w, "app_talk_key_status", json!({})), Ok(st));
        assert_eq!(invoke(&w, "app_cli", json!({})).unwrap()["tail_ms"], 400);
        // No key at all.
        let st = invoke(
            &w,
            "app_set_talk_key",
            json!({"key": null, "latch": false, "tailMs": 0}),
        )
        .unwrap();
        assert_eq!(
            (st["key"].clone(), st["available"].clone()),
            (Value::Null, json!(false))
        );
    }

    #[test]
    fn audio_controls_are_clamped_and_kept_without_a_connection() {
        let (_app, w) = app(&[]);
        let ok = invoke(
            &w,
            "app_set_audio",
            json!({"inputGain": 9.5, "outputVolume": 0.25, "micTest": true, "meter": true}),
        );
        assert_eq!(ok, Ok(Value::Null));
        let audio = invoke(&w, "app_cli", json!({})).unwrap()["audio"].clone();
        assert_eq!(
            audio,
            json!({"input_gain": 4.0, "output_volume": 0.25, "mic_test": true, "meter": true,
                "noise_suppression": true, "auto_gain": true})
        );
        // The processing switches, when given, are kept too.
        let ok = invoke(
            &w,
            "app_set_audio",
            json!({"inputGain": 1, "outputVolume": 1, "micTest": false, "meter": false,
                "noiseSuppression": false, "autoGain": true}),
        );
        assert_eq!(ok, Ok(Value::Null));
        let audio = invoke(&w, "app_cli", json!({})).unwrap()["audio"].clone();
        assert_eq!(audio["noise_suppression"], json!(false));
        assert_eq!(audio["auto_gain"], json!(true));
        // A string where a number belongs is an IPC error, not a panic.
        assert!(
            invoke(
                &w,
                "app_set_audio",
                json!({"inputGain": "loud", "outputVolume": 1, "micTest": false, "meter": false})
            )
            .is_err()
        );
    }

    #[test]
    fn the_release_tail_comes_from_the_command_line() {
        let (_app, w) = app(&["--release-tail-ms", "600"]);
        assert_eq!(invoke(&w, "app_cli", json!({})).unwrap()["tail_ms"], 600);
        assert!(Cli::try_parse_from(["squawk", "--release-tail-ms", "9000"]).is_err());
    }

    #[test]
    fn the_server_password_is_kept_in_the_keyring_once_the_server_took_it() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let phc = squawk_server::access::hash_password("correct horse").unwrap();
        let server = rt
            .block_on(squawk_server::Server::start(squawk_server::ServerConfig {
                http: "127.0.0.1:0".parse().unwrap(),
                media: "127.0.0.1:0".parse().unwrap(),
                workers: 1,
                password_hash: Some(phc),
                ..Default::default()
            }))
            .unwrap();
        let url = format!("ws://{}/ws", server.http_addr());
        let (app, w) = app(&[]);
        let state = app.state::<AppState>();
        assert!(
            state
                .secrets
                .set(secrets::Secrets::with_store(
                    keyring_core::mock::Store::new().unwrap()
                ))
                .is_ok()
        );
        let kept = || state.secrets.get().unwrap().get(&url, "Ann").unwrap();
        let connect = |password: Value| {
            invoke(
                &w,
                "engine_connect",
                json!({"server": url, "name": "Ann", "channels": ["ops"], "password": password}),
            )
        };

        let e = connect(json!("nope")).unwrap_err();
        assert_eq!(
            e,
            json!({"code": "refused", "message": "server password: wrong password"})
        );
        assert_eq!(kept(), None, "a refused password is not kept");
        let e = connect(Value::Null).unwrap_err();
        assert_eq!(message(&e), "server password: this server needs a password");

        assert_eq!(connect(json!("correct horse")), Ok(Value::Null));
        assert_eq!(kept().as_deref(), Some("correct horse"));
        assert_eq!(invoke(&w, "engine_disconnect", json!({})), Ok(Value::Null));
        // Next time nothing is typed: the keyring's password is sent.
        assert_eq!(connect(Value::Null), Ok(Value::Null));
        assert_eq!(invoke(&w, "engine_disconnect", json!({})), Ok(Value::Null));
        // The server's password changed: the saved one is refused, plainly.
        state
            .secrets
            .get()
            .unwrap()
            .set(&url, "Ann", "old horse")
            .unwrap();
        let e = connect(Value::Null).unwrap_err();
        assert!(
            message(&e).starts_with("the saved password was refused"),
            "{e}"
        );
        assert_eq!(e["code"], "refused");
        rt.block_on(server.shutdown());
    }

    /// Starts a server without a password on `http` (port 0: any).
    fn server_on(rt: &tokio::runtime::Runtime, http: &str) -> squawk_server::Server {
        rt.block_on(squawk_server::Server::start(squawk_server::ServerConfig {
            http: http.parse().unwrap(),
            media: "127.0.0.1:0".parse().unwrap(),
            workers: 1,
            ..Default::default()
        }))
        .unwrap()
    }

    /// The window's events, as JSON, from the moment of the call.
    fn window_events(app: &tauri::App<MockRuntime>) -> std::sync::Arc<SyncMutex<Vec<Value>>> {
        use tauri::Listener;
        let seen = std::sync::Arc::new(SyncMutex::new(Vec::new()));
        let into = seen.clone();
        app.listen_any("engine-event", move |e| {
            if let Ok(v) = serde_json::from_str::<Value>(e.payload()) {
                into.lock().unwrap().push(v);
            }
        });
        seen
    }

    /// Waits (10 s at most) until `events` has `n` events matching `f`.
    fn until_seen(
        events: &SyncMutex<Vec<Value>>,
        n: usize,
        what: &str,
        f: impl Fn(&Value) -> bool,
    ) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let count = events.lock().unwrap().iter().filter(|v| f(v)).count();
            if count >= n {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{what}: {count} of {n} seen in {:?}",
                events.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn the_connection_actor_reconnects_a_lost_server_rejoins_and_a_disconnect_ends_it() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let first = server_on(&rt, "127.0.0.1:0");
        let http = first.http_addr();
        let url = format!("ws://{http}/ws");
        let (app, w) = app(&[]);
        let events = window_events(&app);
        assert_eq!(
            invoke(&w, "engine_connect", connect_to(&url)),
            Ok(Value::Null)
        );
        let joined_ops = |v: &Value| v["type"] == "joined" && v["channel"] == "ops";
        until_seen(&events, 1, "joined", joined_ops);
        // Joined one more channel, then the server goes away.
        assert_eq!(
            invoke(&w, "engine_join", json!({"channel": "fire"})),
            Ok(Value::Null)
        );
        until_seen(&events, 1, "joined fire", |v| {
            v["type"] == "joined" && v["channel"] == "fire"
        });
        rt.block_on(first.shutdown());
        until_seen(&events, 1, "reconnecting", |v| {
            v["type"] == "connection" && v["state"] == "reconnecting"
        });
        // Meanwhile there is no engine to talk with.
        assert_eq!(
            invoke(&w, "engine_press", json!({"channel": "ops"})),
            Err(not_connected())
        );
        // Back on the same address: the connection returns by itself, into
        // both channels.
        let second = server_on(&rt, &http.to_string());
        until_seen(&events, 2, "joined ops again", joined_ops);
        until_seen(&events, 2, "joined fire again", |v| {
            v["type"] == "joined" && v["channel"] == "fire"
        });
        assert_eq!(
            invoke(&w, "engine_release", json!({})),
            Ok(Value::Null),
            "an engine runs"
        );
        // The user disconnects: offline, no engine, and it stays so when
        // the server goes away (nothing is tried any more).
        assert_eq!(invoke(&w, "engine_disconnect", json!({})), Ok(Value::Null));
        until_seen(&events, 1, "offline", |v| {
            v["type"] == "connection" && v["state"] == "offline"
        });
        let reconnects = |events: &SyncMutex<Vec<Value>>| {
            events
                .lock()
                .unwrap()
                .iter()
                .filter(|v| v["type"] == "connection" && v["state"] == "reconnecting")
                .count()
        };
        let before = reconnects(&events);
        rt.block_on(second.shutdown());
        assert_eq!(
            invoke(&w, "engine_join", json!({"channel": "ops"})),
            Err(not_connected())
        );
        // A later connect works as the first did.
        let third = server_on(&rt, &http.to_string());
        assert_eq!(
            invoke(&w, "engine_connect", connect_to(&url)),
            Ok(Value::Null)
        );
        until_seen(&events, 3, "joined ops a third time", joined_ops);
        assert_eq!(
            reconnects(&events),
            before,
            "no reconnect after the disconnect"
        );
        assert_eq!(invoke(&w, "engine_disconnect", json!({})), Ok(Value::Null));
        rt.block_on(third.shutdown());
    }

    fn connect_to(url: &str) -> Value {
        json!({"server": url, "name": "Ann", "channels": ["ops"], "password": null, "user": null})
    }

    #[test]
    fn pedals_are_listed_and_an_unknown_device_is_refused() {
        let (_app, w) = app(&[]);
        assert!(invoke(&w, "app_list_pedals", json!({})).unwrap().is_array());
        let e = invoke(&w, "app_learn_pedal", json!({"path": "/dev/null"})).unwrap_err();
        assert!(message(&e).contains("not a HID device"), "{e}");
        assert_eq!(invoke(&w, "app_clear_pedal", json!({})), Ok(Value::Null));
        assert_eq!(
            invoke(&w, "app_cli", json!({})).unwrap()["pedal"],
            Value::Null
        );
    }
}
