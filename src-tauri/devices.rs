//! Audio device choice: the lists the Audio panel offers, the user's
//! choice (saved in the settings, or `--input-device` / `--output-device`
//! for one run), applied to the running engine at once.

use serde::Serialize;
use squawk_engine::{
    DeviceEnd,
    audio::{pulse, select::DeviceInfo},
};
use tauri::State;

use crate::{
    AppState,
    events::{UiError, UiErrorCode},
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
