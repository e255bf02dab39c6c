//! Commands on the connected engine, each a thin call through the
//! connection actor (`connection.rs`): joining and leaving channels,
//! talking (one channel, or several at once with a floor priority and
//! queueing), emergencies, listening (mute, gain and pan), instant recall
//! and patches; and the channel or selection the talk key talks into.
//! Without an engine, each fails with `not_connected`.

use squawk_engine::{Engine, FloorOptions, audio::mixer::ChannelMix};
use squawk_protocol::{ChannelName, Priority};
use tauri::State;

use crate::{AppState, events::UiError, parse_channel};

#[tauri::command]
pub(crate) async fn engine_press(
    state: State<'_, AppState>,
    channel: String,
) -> Result<(), UiError> {
    let channel = parse_channel(&channel)?;
    state.connection.call(move |e| e.press(channel)).await
}

#[tauri::command]
pub(crate) async fn engine_join(
    state: State<'_, AppState>,
    channel: String,
) -> Result<(), UiError> {
    let channel = parse_channel(&channel)?;
    state.connection.call(move |e| e.join(channel)).await
}

#[tauri::command]
pub(crate) async fn engine_leave(
    state: State<'_, AppState>,
    channel: String,
) -> Result<(), UiError> {
    let channel = parse_channel(&channel)?;
    state.connection.call(move |e| e.leave(channel)).await
}

#[tauri::command]
pub(crate) async fn engine_list_channels(state: State<'_, AppState>) -> Result<(), UiError> {
    state.connection.call(Engine::list_channels).await
}

pub(crate) fn parse_channels(cs: &[String]) -> Result<Vec<ChannelName>, UiError> {
    cs.iter().map(|c| parse_channel(c)).collect()
}

/// Talk key down for several channels at once (all-call) with a floor
/// priority (0 normal, 128 high, 255 emergency) and, with `queue`, waiting
/// in the floor queue when a floor is taken.
#[tauri::command]
pub(crate) async fn engine_press_all(
    state: State<'_, AppState>,
    channels: Vec<String>,
    priority: u8,
    queue: bool,
) -> Result<(), UiError> {
    let channels = parse_channels(&channels)?;
    let options = FloorOptions {
        priority: Priority(priority),
        queue,
    };
    state
        .connection
        .call(move |e| e.press_all(channels, options))
        .await
}

/// The console's selection for the global talk key (see
/// [`AppState::selection`]); an empty list talks into the target.
#[tauri::command]
pub(crate) fn app_set_selection(
    state: State<'_, AppState>,
    channels: Vec<String>,
    priority: u8,
    queue: bool,
) -> Result<(), UiError> {
    let channels = parse_channels(&channels)?;
    let options = FloorOptions {
        priority: Priority(priority),
        queue,
    };
    if let Ok(mut s) = state.selection.lock() {
        *s = (channels, options);
    }
    Ok(())
}

/// Raises an emergency in `channel`.
#[tauri::command]
pub(crate) async fn engine_emergency(
    state: State<'_, AppState>,
    channel: String,
) -> Result<(), UiError> {
    let channel = parse_channel(&channel)?;
    state.connection.call(move |e| e.emergency(channel)).await
}

/// Acknowledges `originator`'s emergency in `channel`.
#[tauri::command]
pub(crate) async fn engine_ack_emergency(
    state: State<'_, AppState>,
    channel: String,
    originator: u64,
) -> Result<(), UiError> {
    let channel = parse_channel(&channel)?;
    state
        .connection
        .call(move |e| e.ack_emergency(channel, originator))
        .await
}

/// Cancels our emergency in `channel` (or `originator`'s, once it left).
#[tauri::command]
pub(crate) async fn engine_cancel_emergency(
    state: State<'_, AppState>,
    channel: String,
    originator: Option<u64>,
) -> Result<(), UiError> {
    let channel = parse_channel(&channel)?;
    state
        .connection
        .call(move |e| e.cancel_emergency(channel, originator))
        .await
}

/// Pauses or resumes our downlink of `channel` at the server.
#[tauri::command]
pub(crate) async fn engine_mute(
    state: State<'_, AppState>,
    channel: String,
    muted: bool,
) -> Result<(), UiError> {
    let channel = parse_channel(&channel)?;
    state.connection.call(move |e| e.mute(channel, muted)).await
}

/// A channel's gain (0 to 2) and pan (-1 left to 1 right) in our mix.
#[tauri::command]
pub(crate) async fn engine_set_channel_mix(
    state: State<'_, AppState>,
    channel: String,
    gain: f32,
    pan: f32,
) -> Result<(), UiError> {
    let channel = parse_channel(&channel)?;
    state
        .connection
        .call(move |e| e.set_channel_mix(channel, ChannelMix { gain, pan }))
        .await
}

/// Replays received transmission `id` (instant recall).
#[tauri::command]
pub(crate) async fn engine_replay(state: State<'_, AppState>, id: u64) -> Result<(), UiError> {
    state.connection.call(move |e| e.replay(id)).await
}

/// Stops the replay in progress.
#[tauri::command]
pub(crate) async fn engine_stop_replay(state: State<'_, AppState>) -> Result<(), UiError> {
    state.connection.call(Engine::stop_replay).await
}

/// Patches `channels` (two or more).
#[tauri::command]
pub(crate) async fn engine_patch(
    state: State<'_, AppState>,
    channels: Vec<String>,
) -> Result<(), UiError> {
    let channels = parse_channels(&channels)?;
    state.connection.call(move |e| e.patch(channels)).await
}

/// Splits the patch `channel` is in.
#[tauri::command]
pub(crate) async fn engine_unpatch(
    state: State<'_, AppState>,
    channel: String,
) -> Result<(), UiError> {
    let channel = parse_channel(&channel)?;
    state.connection.call(move |e| e.unpatch(channel)).await
}

/// The channel the talk key talks into (the UI's selected channel).
#[tauri::command]
pub(crate) fn app_set_target(state: State<'_, AppState>, channel: String) -> Result<(), UiError> {
    let channel = parse_channel(&channel)?;
    if let Ok(mut t) = state.target.lock() {
        *t = Some(channel);
    }
    Ok(())
}

#[tauri::command]
pub(crate) async fn engine_release(state: State<'_, AppState>) -> Result<(), UiError> {
    state.connection.apply(Engine::release).await;
    Ok(())
}
