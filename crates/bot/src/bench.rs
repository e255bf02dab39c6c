//! `squawk-bot bench`: mouth-to-ear latency, PTT access time and SFU
//! forwarding cost, measured against a real `squawk-server` process on
//! loopback. Prints the figures and writes them as Markdown.
//!
//! Method (see docs/benchmarks.md):
//! - latency: talker A plays one continuous transmission (a -40 dBFS noise
//!   floor with a 20 ms 1 kHz burst every 400 ms) through its WAV microphone; listener B writes its speaker to a WAV in
//!   real time. Both run in this process, so one clock dates the burst
//!   leaving A's microphone and its onset in B's output.
//! - access: press → Floor Granted event at A; press → first frame played
//!   at B (B's jitter buffer included).
//! - forwarding: R channels × 15 members, one talker each sending
//!   continuously; listeners count packets without decoding. Server CPU
//!   time (from /proc) over the window / packets it forwarded.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

use crate::wait_for;
use clap::Args as ClapArgs;
use squawk_engine::{
    Engine, EngineConfig, EngineEvent, JitterConfig, LocalEvent,
    audio::{InputSpec, OutputSpec, SAMPLE_RATE},
};
use squawk_protocol::{ChannelName, ServerMessage};
use squawk_server::SfuStats;
use tokio::sync::mpsc::UnboundedReceiver;

/// Benchmark options.
#[derive(Debug, ClapArgs)]
pub struct BenchArgs {
    /// Write the report (Markdown) here, e.g. docs/benchmarks.md.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Channel counts for the forwarding benchmark (15 members each).
    #[arg(long, value_delimiter = ',', default_value = "1,4,8,12")]
    pub rooms: Vec<usize>,
    /// Measurement window per forwarding run, seconds.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Bursts in the latency measurement (spread over --latency-runs).
    #[arg(long, default_value_t = 60)]
    pub bursts: usize,
    /// Separate transmissions (fresh channels) the bursts are spread over.
    #[arg(long, default_value_t = 6)]
    pub latency_runs: usize,
    /// Presses in the access-time run.
    #[arg(long, default_value_t = 30)]
    pub presses: usize,
    /// The server binary [default: squawk-server next to this program].
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
}

/// CPU time (user + system) of process `pid` so far, seconds, from `/proc`.
pub(crate) fn cpu_seconds_of(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the ")" of the command name; utime and stime are 14 and 15 overall.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("stat format")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>()? + f[12].parse::<f64>()?;
    Ok(ticks / 100.0) // USER_HZ is 100 on Linux
}

/// A `squawk-server` child process on ephemeral loopback ports, killed on drop.
pub(crate) struct ServerProc {
    child: Child,
    http: String,
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProc {
    fn start(bin: &PathBuf) -> anyhow::Result<Self> {
        Self::start_with(bin, &[])
    }

    /// Starts `bin` with `extra` arguments; waits for its ready line.
    pub(crate) fn start_with(bin: &PathBuf, extra: &[&str]) -> anyhow::Result<Self> {
        Self::start_with_log(bin, extra, None)
    }

    /// As [`ServerProc::start_with`]; with `log`, the server logs there at
    /// its default level (info), as an operator runs it, instead of errors
    /// only to this program's stderr.
    fn start_with_log(
        bin: &PathBuf,
        extra: &[&str],
        log: Option<&std::path::Path>,
    ) -> anyhow::Result<Self> {
        let mut cmd = Command::new(bin);
        cmd.args(["--http", "127.0.0.1:0", "--media", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped());
        match log {
            Some(log) => {
                let file = std::fs::File::create(log)
                    .with_context(|| format!("create {}", log.display()))?;
                cmd.env_remove("RUST_LOG").stderr(file);
            }
            None => {
                cmd.env("RUST_LOG", "error").stderr(Stdio::inherit());
            }
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        let stdout = child.stdout.take().context("server stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let http = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("http="))
            .with_context(|| format!("no ready line from server: {line:?}"))?
            .to_string();
        Ok(Self { child, http })
    }

    pub(crate) fn url(&self) -> String {
        format!("ws://{}/ws", self.http)
    }

    /// Server CPU time (user + system), seconds.
    pub(crate) fn cpu_seconds(&self) -> anyhow::Result<f64> {
        cpu_seconds_of(self.child.id())
    }

    /// Resident set size now, MiB.
    pub(crate) fn rss_mib(&self) -> anyhow::Result<f64> {
        self.status_mib("VmRSS:")
    }

    /// Peak resident set size since start (`VmHWM`), MiB.
    pub(crate) fn peak_rss_mib(&self) -> anyhow::Result<f64> {
        self.status_mib("VmHWM:")
    }

    fn status_mib(&self, field: &str) -> anyhow::Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next())
            .with_context(|| field.to_string())?
            .parse()?;
        Ok(kb / 1024.0)
    }

    /// Starts `bin` with admission limits raised for `clients` connections
    /// from 127.0.0.1 (a load generator is one address) and `--workers`.
    pub(crate) fn start_for_clients(
        bin: &PathBuf,
        clients: usize,
        workers: Option<usize>,
    ) -> anyhow::Result<Self> {
        Self::start_for_clients_with(bin, clients, workers, &[])
    }

    /// As [`ServerProc::start_for_clients`] with the server's own number of
    /// workers, logging to `log` at its default level.
    pub(crate) fn start_logged(
        bin: &PathBuf,
        clients: usize,
        log: &std::path::Path,
    ) -> anyhow::Result<Self> {
        Self::start_for_clients_logged(bin, clients, None, &[], Some(log))
    }

    /// As [`ServerProc::start_for_clients`], with more arguments.
    pub(crate) fn start_for_clients_with(
        bin: &PathBuf,
        clients: usize,
        workers: Option<usize>,
        more: &[&str],
    ) -> anyhow::Result<Self> {
        Self::start_for_clients_logged(bin, clients, workers, more, None)
    }

    fn start_for_clients_logged(
        bin: &PathBuf,
        clients: usize,
        workers: Option<usize>,
        more: &[&str],
        log: Option<&std::path::Path>,
    ) -> anyhow::Result<Self> {
        let config = std::env::temp_dir().join(format!("squawk-load-{}.toml", std::process::id()));
        std::fs::write(
            &config,
            format!(
                "[limits]\nmax_connections = {n}\nmax_connections_per_ip = {n}\n\
                 new_connections_per_ip_per_sec = {n}\nnew_connections_per_ip_burst = {n}\n",
                n = clients + 16
            ),
        )?;
        let config_arg = config.to_string_lossy().into_owned();
        let workers = workers.map(|w| w.to_string());
        let mut extra = vec!["--config", config_arg.as_str()];
        if let Some(w) = &workers {
            extra.extend(["--workers", w.as_str()]);
        }
        extra.extend_from_slice(more);
        let server = Self::start_with_log(bin, &extra, log);
        let _ = std::fs::remove_file(&config);
        server
    }

    pub(crate) async fn stats(&self) -> anyhow::Result<SfuStats> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(&self.http).await?;
        s.write_all(
            format!(
                "GET /stats HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                self.http
            )
            .as_bytes(),
        )
        .await?;
        let mut body = String::new();
        s.read_to_string(&mut body).await?;
        let json = body.split("\r\n\r\n").nth(1).context("http body")?;
        Ok(serde_json::from_str(json)?)
    }
}

type Events = UnboundedReceiver<EngineEvent>;

async fn client(
    url: &str,
    name: &str,
    channel: &ChannelName,
    input: InputSpec,
    output: OutputSpec,
) -> anyhow::Result<(Engine, Events)> {
    client_with(url, name, channel, input, output, None).await
}

/// Like [`client`]; `jitter` overrides the engine's jitter-buffer settings.
async fn client_with(
    url: &str,
    name: &str,
    channel: &ChannelName,
    input: InputSpec,
    output: OutputSpec,
    jitter: Option<JitterConfig>,
) -> anyhow::Result<(Engine, Events)> {
    let mut config = EngineConfig::new(url, name);
    // The latency figures are of the media path; noise suppression would
    // add its fixed 10 ms (RNNoise's window), measured apart.
    config.audio.noise_suppression = false;
    config.audio.auto_gain = false;
    config.input = input;
    config.output = output;
    if let Some(j) = jitter {
        config.jitter = j;
    }
    let (engine, mut events) = Engine::start(config).await?;
    wait_for(&mut events, Duration::from_secs(20), |e| {
        matches!(e, EngineEvent::Local(LocalEvent::Media { connected: true })).then_some(())
    })
    .await?;
    engine.join(channel.clone());
    let want = channel.clone();
    wait_for(&mut events, Duration::from_secs(20), |e| {
        matches!(e, EngineEvent::Server(ServerMessage::Joined { channel, .. }) if *channel == want)
            .then_some(())
    })
    .await?;
    Ok((engine, events))
}

/// Waits for Floor Granted on the talker's events.
async fn granted(events: &mut Events) -> anyhow::Result<()> {
    wait_for(events, Duration::from_secs(10), |e| {
        matches!(e, EngineEvent::Server(ServerMessage::FloorGranted { .. })).then_some(())
    })
    .await
}

/// After a release: waits until the talker's transmission ended and the
/// listener reported the received one, so the next press starts afresh.
async fn ended(talker: &mut Events, listener: &mut Events) -> anyhow::Result<()> {
    wait_for(talker, Duration::from_secs(10), |e| {
        matches!(e, EngineEvent::Local(LocalEvent::TalkEnded { .. })).then_some(())
    })
    .await?;
    wait_for(listener, Duration::from_secs(10), |e| {
        matches!(e, EngineEvent::Local(LocalEvent::Received { .. })).then_some(())
    })
    .await
}

fn tone(ms: u64, amp: f32) -> Vec<f32> {
    let n = (ms * u64::from(SAMPLE_RATE) / 1000) as usize;
    (0..n)
        .map(|i| amp * (i as f32 * 1000.0 * std::f32::consts::TAU / SAMPLE_RATE as f32).sin())
        .collect()
}

/// Deterministic white noise of peak `amp` (no DTX: every frame is sent).
fn noise_at(secs: u64, amp: f32) -> Vec<f32> {
    let mut x: u32 = 0x1234_5678;
    (0..secs as usize * SAMPLE_RATE as usize)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((x >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0) * amp
        })
        .collect()
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

struct Latency {
    samples: Vec<f64>,
}

/// Runs [`latency_once`] `runs` times on fresh channels and pools the
/// samples: each run has its own phase between the talker's and the
/// listener's 20 ms frame clocks, as real devices do.
/// Mouth-to-ear over `runs` transmissions; `cushion_ms` replaces the
/// listener's jitter-buffer cushion (the engine's when `None`).
async fn latency(
    server: &ServerProc,
    bursts: usize,
    warm_up: bool,
    runs: usize,
    cushion_ms: Option<u32>,
) -> anyhow::Result<Latency> {
    let mut samples = Vec::new();
    for run in 0..runs {
        samples.extend(
            latency_once(server, bursts.div_ceil(runs), warm_up, run, cushion_ms)
                .await?
                .samples,
        );
    }
    Ok(Latency { samples })
}

async fn latency_once(
    server: &ServerProc,
    bursts: usize,
    warm_up: bool,
    run: usize,
    cushion_ms: Option<u32>,
) -> anyhow::Result<Latency> {
    let kind = if warm_up { "warm" } else { "cold" };
    let cushion = cushion_ms.map_or_else(|| "engine".to_owned(), |c| c.to_string());
    let ch: ChannelName = format!("bench-latency-{kind}-{run}-{cushion}").parse()?;
    let mut jitter = EngineConfig::new(server.url(), "B").jitter;
    if let Some(c) = cushion_ms {
        // One cushion, clean link or not; the floor equals it.
        jitter.cushion_ms = c;
        jitter.clean_cushion_ms = c;
        jitter.min_delay_ms = c;
    }
    let dir = std::env::temp_dir().join(format!("squawk-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let rec = dir.join("latency.wav");
    let (b, mut bev) = client_with(
        &server.url(),
        "B",
        &ch,
        InputSpec::None,
        OutputSpec::Wav {
            path: rec.clone(),
            seconds: None,
            stereo: false,
        },
        Some(jitter),
    )
    .await?;
    let (a, mut aev) = client(&server.url(), "A", &ch, InputSpec::Wav, OutputSpec::None).await?;
    const PERIOD_MS: u64 = 400;
    // One continuous transmission: a noise floor (-40 dBFS, so DTX never
    // pauses the stream and the jitter buffer adapts as during speech) with
    // a 20 ms 1 kHz burst at the start of every period.
    let period = (PERIOD_MS * u64::from(SAMPLE_RATE) / 1000) as usize;
    let mut train = noise_at(bursts as u64 * PERIOD_MS / 1000 + 1, 0.01);
    train.truncate(bursts * period);
    for k in 0..bursts {
        for (i, s) in tone(20, 0.5).into_iter().enumerate() {
            train[k * period + i] += s;
        }
    }
    let train_len = Duration::from_secs_f64(train.len() as f64 / f64::from(SAMPLE_RATE));
    // Warm-up: one 4 s transmission, so B's jitter buffer has learned the
    // path (its target delay carries over to the next transmission), as in
    // a channel in use. The measured transmission follows.
    if warm_up {
        a.press(ch.clone());
        granted(&mut aev).await?;
        let _ = a.play(noise_at(4, 0.05).into()).context("wav input")?.await;
        a.release();
        ended(&mut aev, &mut bev).await?;
    }
    a.press(ch.clone());
    granted(&mut aev).await?;
    let done = a.play(train.into()).context("wav input")?;
    let end = done.await?;
    let start_in = end - train_len;
    tokio::time::sleep(Duration::from_millis(600)).await;
    a.release();
    let rec_start = b.recording_started().context("recording start")?;
    a.close().await;
    b.close().await;
    let pcm = squawk_engine::audio::wav::read_mono_48k(&rec)?;
    let _ = std::fs::remove_dir_all(&dir);
    // Onsets: first 1 ms window above 0.05 rms after >= 200 ms of quiet.
    let win = SAMPLE_RATE as usize / 1000;
    let mut quiet = 1000usize;
    let mut samples = Vec::new();
    for (w, chunk) in pcm.chunks(win).enumerate() {
        let rms = (chunk.iter().map(|s| s * s).sum::<f32>() / chunk.len() as f32).sqrt();
        if rms > 0.05 {
            if quiet >= 200 {
                let t_out = rec_start + Duration::from_millis(w as u64);
                if t_out > start_in {
                    let since = t_out - start_in;
                    let k = since.as_millis() as u64 / PERIOD_MS;
                    let t_in = start_in + Duration::from_millis(k * PERIOD_MS);
                    samples.push((t_out - t_in).as_secs_f64() * 1000.0);
                }
            }
            quiet = 0;
        } else {
            quiet += 1;
        }
    }
    if samples.len() < bursts / 2 {
        bail!("latency: only {} of {bursts} bursts arrived", samples.len());
    }
    Ok(Latency { samples })
}

struct Access {
    granted: Vec<f64>,
    first_audio: Vec<f64>,
}

async fn access(server: &ServerProc, presses: usize) -> anyhow::Result<Access> {
    let ch: ChannelName = "bench-access".parse()?;
    let dir = std::env::temp_dir().join(format!("squawk-bench-a-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    // Short idle so back-to-back presses are separate streams; otherwise
    // the engine's own jitter-buffer settings.
    let short_idle = JitterConfig {
        idle_after_ms: 300,
        ..EngineConfig::new(server.url(), "B").jitter
    };
    let (b, mut bev) = client_with(
        &server.url(),
        "B",
        &ch,
        InputSpec::None,
        OutputSpec::Wav {
            path: dir.join("a.wav"),
            seconds: None,
            stereo: false,
        },
        Some(short_idle),
    )
    .await?;
    let (a, mut aev) = client(&server.url(), "A", &ch, InputSpec::Wav, OutputSpec::None).await?;
    let clip: Arc<[f32]> = tone(300, 0.3).into();
    let mut out = Access {
        granted: Vec::new(),
        first_audio: Vec::new(),
    };
    for _ in 0..presses {
        let t0 = Instant::now();
        a.press(ch.clone());
        let done = a.play(clip.clone()).context("wav input")?;
        granted(&mut aev).await?;
        out.granted.push(t0.elapsed().as_secs_f64() * 1000.0);
        let at = wait_for(&mut bev, Duration::from_secs(10), |e| match e {
            EngineEvent::Local(LocalEvent::ReceiveStarted { at, .. }) => Some(*at),
            _ => None,
        })
        .await?;
        out.first_audio
            .push(at.saturating_duration_since(t0).as_secs_f64() * 1000.0);
        let _ = done.await;
        a.release();
        ended(&mut aev, &mut bev).await?;
    }
    a.close().await;
    b.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(out)
}

struct Forwarding {
    rooms: usize,
    clients: usize,
    forwarded_pps: f64,
    us_per_packet: f64,
    pps_per_core: f64,
    server_cpu_pct: f64,
    rss_mib: f64,
    delivery: f64,
    delay_p50_us: Option<u64>,
    delay_p99_us: Option<u64>,
}

async fn forwarding(bin: &PathBuf, rooms: usize, secs: u64) -> anyhow::Result<Forwarding> {
    const MEMBERS: usize = 15;
    let server = ServerProc::start(bin)?;
    let url = server.url();
    let mut talkers = Vec::new();
    let mut listeners = Vec::new();
    for r in 0..rooms {
        let ch: ChannelName = format!("room{r}").parse()?;
        for m in 1..MEMBERS {
            listeners.push(
                client(
                    &url,
                    &format!("L{r}-{m}"),
                    &ch,
                    InputSpec::None,
                    OutputSpec::None,
                )
                .await?,
            );
        }
        talkers.push((
            ch.clone(),
            client(
                &url,
                &format!("T{r}"),
                &ch,
                InputSpec::Wav,
                OutputSpec::None,
            )
            .await?,
        ));
    }
    let clip: Arc<[f32]> = noise_at(secs + 4, 0.1).into();
    let mut dones = Vec::new();
    for (ch, (t, ev)) in &mut talkers {
        t.press(ch.clone());
        granted(ev).await?;
        dones.push(t.play(clip.clone()).context("wav input")?);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sum =
        |v: &Vec<(Engine, Events)>, f: fn(&Engine) -> u64| v.iter().map(|(e, _)| f(e)).sum::<u64>();
    let rx = |e: &Engine| e.counters().rtp_received.load(Ordering::Relaxed);
    let tx = |e: &Engine| e.counters().rtp_sent.load(Ordering::Relaxed);
    let talker_tx =
        |v: &Vec<(ChannelName, (Engine, Events))>| v.iter().map(|(_, (e, _))| tx(e)).sum::<u64>();
    let (cpu0, s0, rx0, tx0, t0) = (
        server.cpu_seconds()?,
        server.stats().await?,
        sum(&listeners, rx),
        talker_tx(&talkers),
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (cpu1, s1, rx1, tx1, wall) = (
        server.cpu_seconds()?,
        server.stats().await?,
        sum(&listeners, rx),
        talker_tx(&talkers),
        t0.elapsed().as_secs_f64(),
    );
    let rss = server.rss_mib()?;
    for (_, (t, _)) in &talkers {
        t.release();
    }
    let forwarded = s1.rtp_out.saturating_sub(s0.rtp_out) as f64;
    let cpu = cpu1 - cpu0;
    let expected = (tx1 - tx0) as f64 * (MEMBERS - 1) as f64;
    let result = Forwarding {
        rooms,
        clients: rooms * MEMBERS,
        forwarded_pps: forwarded / wall,
        us_per_packet: if forwarded > 0.0 {
            cpu * 1e6 / forwarded
        } else {
            f64::NAN
        },
        pps_per_core: if cpu > 0.0 { forwarded / cpu } else { f64::NAN },
        server_cpu_pct: cpu / wall * 100.0,
        rss_mib: rss,
        delivery: if expected > 0.0 {
            (rx1 - rx0) as f64 / expected
        } else {
            f64::NAN
        },
        delay_p50_us: s1.delay_quantile_us(&s0, 0.5),
        delay_p99_us: s1.delay_quantile_us(&s0, 0.99),
    };
    for (_, (t, _)) in talkers {
        t.close().await;
    }
    for (l, _) in listeners {
        l.close().await;
    }
    Ok(result)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or("?".into(), |kb| format!("{:.0} GiB", kb / 1024.0 / 1024.0));
    format!("{cores} cores ({cpu}), {mem} RAM, {}", std::env::consts::OS)
}

const LATENCY_NOTES: &str = "\
Where mouth-to-ear goes, with 20 ms frames: the microphone frame (20 ms: a frame is sent once its \
last sample is captured), Opus look-ahead (6.5 ms in VOIP mode), network and SFU (under 1 ms on \
loopback, see the forwarding delay below), the jitter buffer's target delay (the measured jitter \
plus a cushion: 5 ms on a clean link, one frame within 20 s of a loss or an underrun, so that FEC \
and RED find the next packet in time; 40 ms on a channel's first transmission), and the wait for \
the listener's next 5 ms playout block (0 to 5 ms: the mixer starts a transmission on a 5 ms \
grid and decides each frame when its block is heard).\n\n\
Press → Floor Granted is the signaling round trip through the hub (TCP_NODELAY on both ends). \
Press → first audio adds the first frame (20 ms) and the listener's jitter-buffer prebuffer.\n\n";

const FORWARDING_NOTES: &str = "\n\
Target: ≥ 150,000 forwarded packets per CPU-second per core. Server CPU is user + system time of the \
server process (from /proc) over the window, as a share of one core. Delivery is packets counted by \
the listeners over packets sent by the talkers × 14; counters are read a few ms apart, so it can \
read slightly above 1. The per-packet cost falls as load rises (fixed per-wake-up costs amortise); \
beyond R = 12 the load generator (15 × R webrtc-rs clients in one process) saturates this machine \
before the server does, so higher R needs a lighter, str0m-based load generator.\n";

/// Runs the benchmarks.
pub async fn run(_server: &str, args: &BenchArgs) -> anyhow::Result<()> {
    let bin = match &args.server_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?.with_file_name("squawk-server"),
    };
    let profile = if cfg!(debug_assertions) {
        "debug (not representative: use --release)"
    } else {
        "release"
    };
    let mut md = String::new();
    md.push_str("# Benchmarks\n\n");
    md.push_str(&format!("Machine: {}. Build: {profile}.\n\n", machine()));
    md.push_str("Command: `cargo build --release --workspace --bins && target/release/squawk-bot bench --out docs/benchmarks.md`\n\n");
    md.push_str("Server and clients share the machine (loopback); the clients are webrtc-rs engines in the bench process.\n\n");

    let server = ServerProc::start(&bin)?;
    eprintln!("latency: {} bursts…", args.bursts);
    let mut rows = Vec::new();
    for (warm_up, cushion, label, target) in [
        (
            false,
            None,
            "first transmission on a fresh channel (40 ms initial jitter-buffer delay)",
            "",
        ),
        (
            true,
            None,
            "channel in use (jitter buffer adapted)",
            "≤ 45 ms p95",
        ),
        (
            true,
            Some(20),
            "channel in use, one frame of jitter cushion even on a clean link (the engine before 2026-12-08)",
            "",
        ),
    ] {
        let mut lat = latency(&server, args.bursts, warm_up, args.latency_runs, cushion).await?;
        let (p50, p95) = (
            quantile(&mut lat.samples, 0.5),
            quantile(&mut lat.samples, 0.95),
        );
        let row = format!(
            "| mouth-to-ear, {label} | {p50:.1} ms | {p95:.1} ms | {} bursts | {target} |",
            lat.samples.len()
        );
        println!("{row}");
        rows.push(row);
    }
    eprintln!("access: {} presses…", args.presses);
    let mut acc = access(&server, args.presses).await?;
    drop(server);
    let (g50, g95) = (
        quantile(&mut acc.granted, 0.5),
        quantile(&mut acc.granted, 0.95),
    );
    let (f50, f95) = (
        quantile(&mut acc.first_audio, 0.5),
        quantile(&mut acc.first_audio, 0.95),
    );
    let g = format!(
        "| press → Floor Granted | {g50:.2} ms | {g95:.2} ms | {} presses | ≤ 5 ms p95 |",
        acc.granted.len()
    );
    let f = format!(
        "| press → first audio played at a listener | {f50:.1} ms | {f95:.1} ms | {} presses | |",
        acc.first_audio.len()
    );
    println!("{g}\n{f}");
    md.push_str("## Latency and access time\n\n| measure | p50 | p95 | n | target |\n|---|---|---|---|---|\n");
    md.push_str(&format!("{}\n{g}\n{f}\n\n", rows.join("\n")));
    md.push_str(LATENCY_NOTES);

    md.push_str("## Forwarding\n\nR channels × 15 members, one talker per channel sending Opus continuously (50 packets/s), \
        14 listeners each counting packets without decoding. Window: ");
    md.push_str(&format!("{} s.\n\n", args.seconds));
    md.push_str("| R | clients | forwarded pkt/s | server CPU | µs CPU / forwarded pkt | pkt per CPU-second | server RSS | delivery | added delay p50 / p99 |\n|---|---|---|---|---|---|---|---|---|\n");
    for &r in &args.rooms {
        eprintln!("forwarding: {r} rooms…");
        let f = forwarding(&bin, r, args.seconds).await?;
        let fmt_us = |v: Option<u64>| v.map_or("–".into(), |u| format!("< {u} µs"));
        let row = format!(
            "| {} | {} | {:.0} | {:.1} % | {:.1} | {:.0} | {:.1} MiB | {:.4} | {} / {} |",
            f.rooms,
            f.clients,
            f.forwarded_pps,
            f.server_cpu_pct,
            f.us_per_packet,
            f.pps_per_core,
            f.rss_mib,
            f.delivery,
            fmt_us(f.delay_p50_us),
            fmt_us(f.delay_p99_us)
        );
        println!("{row}");
        md.push_str(&row);
        md.push('\n');
    }
    md.push_str(FORWARDING_NOTES);
    if let Some(out) = &args.out {
        std::fs::write(out, &md).with_context(|| format!("write {}", out.display()))?;
        eprintln!("wrote {}", out.display());
    }
    Ok(())
}
