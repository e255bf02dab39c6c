//! `squawk-bot bench-processing`: the desktop capture's noise suppression
//! and gain control, timed per 20 ms frame on real speech (no server, no
//! device): the cost a talking desktop app pays, and its share of a core.

use std::{path::PathBuf, time::Instant};

use anyhow::Context;
use clap::Args as ClapArgs;
use serde_json::json;
use squawk_engine::audio::{FRAME_MS, FRAME_SAMPLES, process::CaptureProcessor, wav};

/// Arguments of `bench-processing`.
#[derive(Debug, ClapArgs)]
pub struct ProcessingArgs {
    /// Speech to process (any WAV; converted to 48 kHz mono), e.g.
    /// ../shared/audio/M1_harvard_phrases.wav.
    #[arg(long)]
    pub wav: PathBuf,
    /// Passes over the file per setting.
    #[arg(long, default_value_t = 20)]
    pub passes: usize,
}

/// Processes the file `passes` times with each setting (noise suppression
/// and gain control, each alone, both) and prints one JSON line per
/// setting: µs per 20 ms frame (p50, p95, max) and the share of one core
/// while talking (mean ÷ 20 ms).
pub fn run(args: &ProcessingArgs) -> anyhow::Result<()> {
    let pcm = wav::read_mono_48k(&args.wav).with_context(|| args.wav.display().to_string())?;
    let frames: Vec<&[f32]> = pcm.chunks_exact(FRAME_SAMPLES).collect();
    anyhow::ensure!(
        !frames.is_empty(),
        "{} is shorter than a frame",
        args.wav.display()
    );
    for (name, ns, agc) in [
        ("noise_suppression", true, false),
        ("auto_gain", false, true),
        ("both", true, true),
    ] {
        let mut p = CaptureProcessor::new();
        let mut frame = vec![0.0f32; FRAME_SAMPLES];
        let mut us = Vec::with_capacity(frames.len() * args.passes);
        for _ in 0..args.passes {
            for f in &frames {
                frame.copy_from_slice(f);
                let t = Instant::now();
                p.process(&mut frame, ns, agc);
                us.push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
        let mean = us.iter().sum::<f64>() / us.len() as f64;
        us.sort_by(f64::total_cmp);
        let at = |q: f64| us[((us.len() - 1) as f64 * q).round() as usize];
        println!(
            "{}",
            json!({
                "setting": name,
                "frames": us.len(),
                "us_per_frame_p50": (at(0.5) * 10.0).round() / 10.0,
                "us_per_frame_p95": (at(0.95) * 10.0).round() / 10.0,
                "us_per_frame_max": (at(1.0) * 10.0).round() / 10.0,
                "core_share_pct": (mean / f64::from(FRAME_MS * 1000) * 1000.0).round() / 10.0,
            })
        );
    }
    Ok(())
}
