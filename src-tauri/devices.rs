//! The Audio panel's commands: device choice (the lists it offers, the
//! user's choice, saved in the settings or given by `--input-device` /
//! `--output-device` for one run) and the audio controls (gain, volume,
//! mic test, meter, noise suppression, automatic gain), applied to the
//! running engine at once.

use serde::Serialize;
use squawk_engine::{
    DeviceEnd,
    audio::{pulse, select::DeviceInfo},
};
use tauri::State;

use std::{sync::atomic::Ordering, time::Duration};

use squawk_engine::audio::controls::AudioControls;
use tauri::Manager;

use crate::{
    AppState,
    events::{UiError, UiErrorCode},
    save_settings,
};

/// The devices chosen, by PulseAudio name or description; `None`: the
/// system's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChosenDevices {
    /// The microphone.
    pub input: Option<String>,
    /// The speaker.
    pub output: Option<String>,
}

impl ChosenDevices {
    /// The choice for `end`.
    pub fn get_mut(&mut self, end: DeviceEnd) -> &mut Option<String> {
        match end {
            DeviceEnd::Input => &mut self.input,
            DeviceEnd::Output => &mut self.output,
        }
    }
}

/// What the Audio panel shows: the devices to choose from and the choice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct AudioDevices {
    /// Microphones (PulseAudio sources, the monitors of outputs among
    /// them).
    pub inputs: Vec<DeviceInfo>,
    /// Speakers (PulseAudio sinks).
    pub outputs: Vec<DeviceInfo>,
    /// The microphone chosen; `None`: the system's default.
    pub input: Option<String>,
    /// The speaker chosen; `None`: the system's default.
    pub output: Option<String>,
    /// Why there is nothing to choose from (no PulseAudio server: the
    /// default devices are used), for people.
    pub problem: Option<String>,
}

/// The devices to choose from, and the choice.
#[tauri::command]
pub(crate) async fn app_audio_devices(state: State<'_, AppState>) -> Result<AudioDevices, UiError> {
    let chosen = state.devices.lock().map(|d| d.clone()).unwrap_or_default();
    // A few ms of IPC to the sound server: off the async threads.
    let listed = tauri::async_runtime::spawn_blocking(pulse::list)
        .await
        .map_err(|e| UiError::new(UiErrorCode::Internal, e.to_string()))?;
    let (devices, problem) = match listed {
        Ok(d) => (d, None),
        Err(e) => (pulse::Devices::default(), Some(e)),
    };
    Ok(AudioDevices {
        inputs: devices.inputs,
        outputs: devices.outputs,
        input: chosen.input,
        output: chosen.output,
        problem,
    })
}

/// Chooses the microphone (`end` input) or speaker (output): `name` as
/// listed, or `None` for the system's default. Saved, and applied to the
/// running engine within a stream read or write; `device` events follow
/// if it cannot be used.
#[tauri::command]
pub(crate) async fn app_set_audio_device(
    state: State<'_, AppState>,
    end: DeviceEnd,
    name: Option<String>,
) -> Result<(), UiError> {
    let name = name.filter(|n| !n.is_empty());
    if let Ok(mut d) = state.devices.lock() {
        *d.get_mut(end) = name.clone();
    }
    crate::save_settings(state.inner(), |s| match end {
        DeviceEnd::Input => s.input_device = name.clone(),
        DeviceEnd::Output => s.output_device = name.clone(),
    });
    state
        .connection
        .apply(move |e| {
            e.set_device(end, name);
        })
        .await;
    Ok(())
}

/// Sets input gain (linear, 0 to 4), output volume (linear, 0 to 1), the
/// mic test, the level meter (`level` events every 100 ms), and noise
/// suppression and automatic gain (absent: unchanged). Values are clamped;
/// gain, volume and the processing switches are saved, and apply to later
/// connections too.
#[allow(clippy::too_many_arguments)] // one IPC argument per control
#[tauri::command]
pub(crate) async fn app_set_audio<R: tauri::Runtime>(
    app: tauri::AppHandle<R>,
    state: State<'_, AppState>,
    input_gain: f32,
    output_volume: f32,
    mic_test: bool,
    meter: bool,
    noise_suppression: Option<bool>,
    auto_gain: Option<bool>,
) -> Result<(), UiError> {
    let current = state.audio.lock().map(|a| *a).unwrap_or_default();
    let controls = AudioControls {
        input_gain,
        output_volume,
        mic_test,
        meter,
        noise_suppression: noise_suppression.unwrap_or(current.noise_suppression),
        auto_gain: auto_gain.unwrap_or(current.auto_gain),
    }
    .clamped();
    let before = state
        .audio
        .lock()
        .map(|mut a| std::mem::replace(&mut *a, controls))
        .unwrap_or_default();
    state.connection.apply(move |e| e.set_audio(controls)).await;
    if (before.noise_suppression, before.auto_gain)
        != (controls.noise_suppression, controls.auto_gain)
    {
        save_settings(state.inner(), |s| {
            s.noise_suppression = Some(controls.noise_suppression);
            s.auto_gain = Some(controls.auto_gain);
        });
    }
    if (before.input_gain, before.output_volume) != (controls.input_gain, controls.output_volume) {
        // Write once the slider has been still for 500 ms.
        let edit = state.audio_edits.fetch_add(1, Ordering::SeqCst) + 1;
        tauri::async_runtime::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let state = app.state::<AppState>();
            if state.audio_edits.load(Ordering::SeqCst) == edit {
                save_settings(state.inner(), |s| {
                    s.input_gain = Some(controls.input_gain);
                    s.output_volume = Some(controls.output_volume);
                });
            }
        });
    }
    Ok(())
}
