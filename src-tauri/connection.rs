//! The connection domain of the shell: one actor task owns the engine and
//! the connection's life ([`crate::link::LinkMachine`]); the Tauri commands
//! are thin senders to it. Here too: signing in with an account, the server
//! password kept in the keyring, and the pinned certificates.
//!
//! The actor serves three inputs in one loop: the commands (connect,
//! disconnect, a call on the engine), the outcomes of the attempts it
//! started (each a task: sign-in, keyring and [`Engine::start`] take
//! seconds, and a disconnect must not wait for them), and the running
//! engine's events; a fourth, the reconnect timer, while one is set. It
//! feeds what happens to the machine and carries out the machine's
//! [`Action`]s; the machine decides, the actor does the I/O.

use std::{pin::Pin, sync::OnceLock};

use squawk_engine::{
    Engine, EngineConfig, EngineError, EngineEvent, LocalEvent,
    audio::{InputSpec, OutputSpec},
    tls::{TlsError, Trust},
};
use squawk_protocol::{ChannelName, ServerMessage};
use tauri::{Manager, State, async_runtime::JoinHandle};
use tokio::sync::{mpsc, oneshot};

use crate::{
    AppState, Cli, account, emit_ui,
    events::{AppEvent, UiError, UiErrorCode},
    link::{Action, Input, LinkMachine, Outcome, Session},
    parse_channel, reconnect, save_settings, with_keyring,
};

/// The way to the connection actor, kept in [`AppState`]. The actor starts
/// with the first connect; before it, there is no engine to call.
#[derive(Default)]
pub(crate) struct Connection {
    tx: OnceLock<mpsc::UnboundedSender<Cmd>>,
}

/// A call on the running engine.
type EngineCall = Box<dyn FnOnce(Option<&Engine>) + Send>;

/// Where the caller of a connect waits for its answer: the account's
/// display name when signed in.
type Answer = oneshot::Sender<Result<Option<String>, UiError>>;

/// What the commands ask of the actor.
enum Cmd {
    /// Connect (see [`engine_connect`]); answered with the account's
    /// display name when signed in.
    Connect {
        request: ConnectRequest,
        answer: Answer,
    },
    /// Disconnect; answered once the engine is closed.
    Disconnect { done: oneshot::Sender<()> },
    /// Run a call with the engine, `None` when there is none.
    Call(EngineCall),
}

impl Connection {
    /// Connects (a new session: any other connection or attempt ends).
    async fn connect<R: tauri::Runtime>(
        &self,
        app: &tauri::AppHandle<R>,
        request: ConnectRequest,
    ) -> Result<Option<String>, UiError> {
        let tx = self.tx.get_or_init(|| {
            let (tx, cmds) = mpsc::unbounded_channel();
            let (reports, reported) = mpsc::unbounded_channel();
            tauri::async_runtime::spawn(Actor::new(app.clone(), reports).run(cmds, reported));
            tx
        });
        let (answer, answered) = oneshot::channel();
        tx.send(Cmd::Connect { request, answer })
            .map_err(|_| ended())?;
        answered.await.unwrap_or_else(|_| Err(ended()))
    }

    /// Disconnects, and returns once the engine is closed.
    pub(crate) async fn disconnect(&self) {
        let Some(tx) = self.tx.get() else { return };
        let (done, closed) = oneshot::channel();
        if tx.send(Cmd::Disconnect { done }).is_ok() {
            let _ = closed.await;
        }
    }

    /// Runs `f` on the running engine.
    ///
    /// # Errors
    /// `not connected` when no engine runs (offline, connecting,
    /// reconnecting).
    pub(crate) async fn call(
        &self,
        f: impl FnOnce(&Engine) + Send + 'static,
    ) -> Result<(), UiError> {
        let Some(tx) = self.tx.get() else {
            return Err(UiError::not_connected());
        };
        let (reply, replied) = oneshot::channel();
        let call: EngineCall = Box::new(move |engine| {
            let _ = reply.send(match engine {
                Some(e) => {
                    f(e);
                    Ok(())
                }
                None => Err(UiError::not_connected()),
            });
        });
        tx.send(Cmd::Call(call))
            .map_err(|_| UiError::not_connected())?;
        replied
            .await
            .unwrap_or_else(|_| Err(UiError::not_connected()))
    }

    /// Runs `f` on the running engine, if one runs (a setting that the
    /// next connection takes from [`AppState`] anyway).
    pub(crate) async fn apply(&self, f: impl FnOnce(&Engine) + Send + 'static) {
        let _ = self.call(f).await;
    }
}

/// A connect as the user asked for it, checked.
struct ConnectRequest {
    /// The signaling URL.
    server: String,
    name: String,
    /// The channels, as typed (for the settings) and parsed.
    channel_names: Vec<String>,
    channels: Vec<ChannelName>,
    /// The password typed, if any.
    typed: Option<String>,
    /// The account to sign in as, if any.
    user: Option<String>,
}

/// An engine an attempt started.
struct Started {
    engine: Engine,
    events: mpsc::UnboundedReceiver<EngineEvent>,
    /// The configuration it runs with (a reconnect starts from it).
    config: EngineConfig,
    /// The account signed in with, if any (a reconnect signs in again).
    user: Option<String>,
    /// The account's display name, when signed in.
    shown_name: Option<String>,
}

/// Why an attempt failed. Refused credentials and a certificate that is
/// not trusted are for the user to fix; anything else may pass.
fn outcome(failure: &UiError) -> Outcome {
    match failure.code {
        UiErrorCode::Refused | UiErrorCode::Certificate => Outcome::Refused(failure.clone()),
        _ => Outcome::Failed(failure.clone()),
    }
}

/// The actor is gone (the app is exiting).
fn ended() -> UiError {
    UiError::new(UiErrorCode::Internal, "the connection task has ended")
}

/// The running engine and its session.
struct Running {
    session: Session,
    engine: Engine,
    events: mpsc::UnboundedReceiver<EngineEvent>,
}

/// What an attempt reports.
type Attempted = (Session, Result<Started, UiError>);

/// What woke the actor.
enum Wake {
    Cmd(Option<Cmd>),
    Attempted(Box<Attempted>),
    Event(Option<EngineEvent>),
    RetryDue,
}

/// The actor: the only owner of the engine and of the link.
struct Actor<R: tauri::Runtime> {
    app: tauri::AppHandle<R>,
    machine: LinkMachine,
    running: Option<Running>,
    /// The session's configuration and account, for its reconnects.
    session_config: Option<(EngineConfig, Option<String>)>,
    /// The connect just received, until the machine attempts it.
    request: Option<(ConnectRequest, Answer)>,
    /// The caller of the user's connect under way.
    answer: Option<(Session, Answer)>,
    /// The account's display name of the engine adopted last.
    shown_name: Option<String>,
    /// Engines being closed; the next attempt waits for them (the audio
    /// devices are free again then).
    closing: Option<JoinHandle<()>>,
    /// The reconnect timer, while one is set.
    retry: Option<(Session, Pin<Box<tokio::time::Sleep>>)>,
    /// Attempts report here.
    reports: mpsc::UnboundedSender<Attempted>,
    /// The engine an attempt just brought and its session, until the
    /// machine says what to do with it.
    arrived: Option<(Session, Started)>,
}

impl<R: tauri::Runtime> Actor<R> {
    fn new(app: tauri::AppHandle<R>, reports: mpsc::UnboundedSender<Attempted>) -> Self {
        Self {
            app,
            machine: LinkMachine::new(),
            running: None,
            session_config: None,
            request: None,
            answer: None,
            shown_name: None,
            closing: None,
            retry: None,
            reports,
            arrived: None,
        }
    }

    /// Serves until every sender of commands is gone (the app exits).
    async fn run(
        mut self,
        mut cmds: mpsc::UnboundedReceiver<Cmd>,
        mut reports: mpsc::UnboundedReceiver<Attempted>,
    ) {
        loop {
            let wake = {
                let events = async {
                    match &mut self.running {
                        Some(r) => r.events.recv().await,
                        None => std::future::pending().await,
                    }
                };
                let retry = async {
                    match &mut self.retry {
                        Some((_, sleep)) => sleep.as_mut().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    cmd = cmds.recv() => Wake::Cmd(cmd),
                    Some(report) = reports.recv() => Wake::Attempted(Box::new(report)),
                    ev = events => Wake::Event(ev),
                    () = retry => Wake::RetryDue,
                }
            };
            match wake {
                Wake::Cmd(None) => break,
                Wake::Cmd(Some(cmd)) => self.command(cmd),
                Wake::Attempted(report) => {
                    let (session, result) = *report;
                    let outcome = match &result {
                        Ok(_) => Outcome::Connected,
                        Err(f) => outcome(f),
                    };
                    self.arrived = result.ok().map(|s| (session, s));
                    self.step(Input::Attempted { session, outcome });
                    // Neither adopted nor discarded (the machine always
                    // says which): closed all the same.
                    if let Some((_, s)) = self.arrived.take() {
                        self.close(s.engine);
                    }
                }
                Wake::Event(Some(ev)) => self.engine_event(ev),
                Wake::Event(None) => {
                    if let Some(session) = self.running.as_ref().map(|r| r.session) {
                        self.step(Input::Lost { session });
                    }
                }
                Wake::RetryDue => {
                    if let Some((session, _)) = self.retry.take() {
                        self.step(Input::RetryDue { session });
                    }
                }
            }
        }
        if let Some(r) = self.running.take() {
            r.engine.close().await;
        }
    }

    fn command(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Connect { request, answer } => {
                let channels = request.channels.clone();
                self.request = Some((request, answer));
                self.step(Input::Connect { channels });
            }
            Cmd::Disconnect { done } => {
                self.step(Input::Disconnect);
                self.session_config = None;
                // Answered once the engines being closed are.
                let closing = self.closing.take();
                self.closing = Some(tauri::async_runtime::spawn(async move {
                    wait_for(closing).await;
                    let _ = done.send(());
                }));
            }
            Cmd::Call(call) => call(self.running.as_ref().map(|r| &r.engine)),
        }
    }

    /// Feeds `input` to the machine and carries out its actions.
    fn step(&mut self, input: Input) {
        for action in self.machine.handle(input, reconnect::clock_jitter()) {
            self.act(action);
        }
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::Close => {
                self.retry = None;
                if let Some(r) = self.running.take() {
                    self.close(r.engine);
                }
            }
            Action::Attempt {
                session,
                channels,
                first,
            } => {
                let closing = self.closing.take();
                let (app, reports) = (self.app.clone(), self.reports.clone());
                if first {
                    let Some((request, answer)) = self.request.take() else {
                        return;
                    };
                    self.answer = Some((session, answer));
                    tauri::async_runtime::spawn(async move {
                        wait_for(closing).await;
                        let attempt = async move { first_attempt(&app, request).await };
                        let _ = reports.send((session, guarded(attempt).await));
                    });
                } else if let Some((config, user)) = self.session_config.clone() {
                    tauri::async_runtime::spawn(async move {
                        wait_for(closing).await;
                        let attempt =
                            async move { reconnect_attempt(&app, config, user, channels).await };
                        let _ = reports.send((session, guarded(attempt).await));
                    });
                }
            }
            Action::Adopt => {
                if let Some((session, started)) = self.arrived.take() {
                    self.running = Some(Running {
                        session,
                        engine: started.engine,
                        events: started.events,
                    });
                    self.shown_name = started.shown_name;
                    self.session_config = Some((started.config, started.user));
                }
            }
            Action::Discard => {
                if let Some((_, s)) = self.arrived.take() {
                    self.close(s.engine);
                }
            }
            Action::Answer { session, result } => match self.answer.take() {
                Some((s, answer)) if s == session => {
                    let _ = answer.send(result.map(|()| self.shown_name.clone()));
                }
                other => self.answer = other,
            },
            Action::Wait { session, delay } => {
                self.retry = Some((session, Box::pin(tokio::time::sleep(delay))));
            }
            Action::Say { state, retry_in_ms } => emit_ui(
                &self.app,
                AppEvent::Connection {
                    state,
                    retry_in_ms,
                    reason: None,
                },
            ),
            Action::GiveUp(why) => {
                self.session_config = None;
                emit_ui(
                    &self.app,
                    EngineEvent::Server(ServerMessage::Error {
                        code: squawk_protocol::ErrorCode::Unauthorized,
                        message: why.message.clone(),
                    }),
                );
                emit_ui(
                    &self.app,
                    EngineEvent::Local(LocalEvent::Closed {
                        reason: why.message,
                    }),
                );
            }
        }
    }

    /// Closes `engine` after the engines already being closed.
    fn close(&mut self, engine: Engine) {
        let before = self.closing.take();
        self.closing = Some(tauri::async_runtime::spawn(async move {
            wait_for(before).await;
            engine.close().await;
        }));
    }

    /// One event of the running engine: the machine follows the channels
    /// joined, the talk key hears that talking ended, the window gets it.
    fn engine_event(&mut self, ev: EngineEvent) {
        let Some(session) = self.running.as_ref().map(|r| r.session) else {
            return;
        };
        match &ev {
            EngineEvent::Server(ServerMessage::Joined { channel, .. }) => {
                self.step(Input::Joined {
                    session,
                    channel: channel.clone(),
                })
            }
            EngineEvent::Server(ServerMessage::Left { channel }) => self.step(Input::Left {
                session,
                channel: channel.clone(),
            }),
            EngineEvent::Local(LocalEvent::TalkEnded { .. })
            | EngineEvent::Server(ServerMessage::FloorDeny { .. })
            | EngineEvent::Local(LocalEvent::Closed { .. }) => {
                if let Ok(mut k) = self.app.state::<AppState>().talk_key.lock() {
                    k.talk_ended();
                }
            }
            _ => {}
        }
        emit_ui(&self.app, ev);
    }
}

/// Runs an attempt as a task of its own, so that a panic in it is a
/// failed attempt (tried again), not a connect that never answers.
async fn guarded(
    attempt: impl Future<Output = Result<Started, UiError>> + Send + 'static,
) -> Result<Started, UiError> {
    tauri::async_runtime::spawn(attempt)
        .await
        .unwrap_or_else(|e| {
            Err(UiError::new(
                UiErrorCode::Internal,
                format!("the connect task failed: {e}"),
            ))
        })
}

/// Waits for `task`, if any, to end.
async fn wait_for(task: Option<JoinHandle<()>>) {
    if let Some(t) = task {
        let _ = t.await;
    }
}

/// A failed connect for the UI; a refused saved password says so.
fn refusal(e: &EngineError, from_keyring: bool) -> UiError {
    match e {
        EngineError::Refused {
            code: squawk_protocol::ErrorCode::Unauthorized,
            message,
        } if from_keyring => UiError::new(
            UiErrorCode::Refused,
            format!("the saved password was refused ({message}): type the password"),
        ),
        EngineError::Refused {
            code: squawk_protocol::ErrorCode::Unauthorized,
            message,
        } => UiError::new(UiErrorCode::Refused, format!("server password: {message}")),
        EngineError::Tls(TlsError::Untrusted { .. } | TlsError::PinMismatch { .. }) => {
            UiError::new(UiErrorCode::Certificate, e.to_string())
        }
        e => UiError::new(UiErrorCode::Unreachable, e.to_string()),
    }
}

/// Signs `user` in on `server` (`POST /api/v1/login` with `password` when
/// typed, else `refresh` with the refresh token kept in the keyring) and
/// keeps the new refresh token in the keyring, in place of the spent one.
/// A saved sign-in the server refuses is forgotten.
async fn sign_in<R: tauri::Runtime>(
    app: &tauri::AppHandle<R>,
    server: &str,
    user: &str,
    password: Option<String>,
) -> Result<account::Tokens, UiError> {
    let key = account::keyring_name(user);
    let result = match password {
        Some(p) => squawk_engine::account::login(server, &Trust::default(), user, &p)
            .await
            .map_err(|e| signed_out(&e, format!("sign-in as {user}: {e}"))),
        None => {
            let (s, k) = (server.to_string(), key.clone());
            let saved = with_keyring(app, move |kr| kr.get(&s, &k))
                .await
                .unwrap_or_else(|e| {
                    tracing::info!("no saved sign-in: {e}");
                    None
                });
            let Some(refresh) = saved else {
                return Err(UiError::new(
                    UiErrorCode::Refused,
                    format!("type the password of {user}"),
                ));
            };
            let refreshed =
                squawk_engine::account::refresh(server, &Trust::default(), &refresh).await;
            if let Err(e) = &refreshed
                && e.is_unauthorized()
            {
                let (s, k) = (server.to_string(), key.clone());
                let _ = with_keyring(app, move |kr| kr.forget(&s, &k)).await;
            }
            refreshed.map_err(|e| {
                let message = if e.is_unauthorized() {
                    format!(
                        "the saved sign-in of {user} is no longer valid ({e}): type the password"
                    )
                } else {
                    format!("sign-in as {user}: {e}")
                };
                signed_out(&e, message)
            })
        }
    };
    let tokens = result?;
    let (s, k, r) = (server.to_string(), key, tokens.refresh_token.clone());
    if let Err(e) = with_keyring(app, move |kr| kr.set(&s, &k, &r)).await {
        emit_ui(
            app,
            AppEvent::Warning {
                message: format!("sign-in not saved, the password will be asked again: {e}"),
            },
        );
    }
    Ok(tokens)
}

/// A failed sign-in: refused credentials, or a server that did not answer.
fn signed_out(e: &squawk_engine::account::AccountError, message: String) -> UiError {
    let code = if e.is_unauthorized() {
        UiErrorCode::Refused
    } else {
        UiErrorCode::Unreachable
    };
    UiError::new(code, message)
}

/// The keyring's failure.
fn keyring(e: String) -> UiError {
    UiError::new(UiErrorCode::Keyring, e)
}

/// Signs out of `user` on `server`: disconnects, revokes the refresh token
/// kept in the keyring at the server (`POST /api/v1/logout`) and forgets
/// it, so that the next start asks for the password.
///
/// # Errors
/// The keyring failed; a server that cannot be reached is not an error
/// (the token is forgotten here anyway, and expires within 30 days).
#[tauri::command]
pub(crate) async fn account_sign_out<R: tauri::Runtime>(
    app: tauri::AppHandle<R>,
    state: State<'_, AppState>,
    server: String,
    user: String,
) -> Result<(), UiError> {
    state.connection.disconnect().await;
    let key = account::keyring_name(&user);
    let (s, k) = (server.clone(), key.clone());
    let saved = with_keyring(&app, move |kr| kr.get(&s, &k))
        .await
        .map_err(keyring)?;
    if let Some(refresh) = saved
        && let Err(e) = squawk_engine::account::logout(&server, &Trust::default(), &refresh).await
    {
        tracing::info!("sign-out not confirmed by the server: {e}");
    }
    with_keyring(&app, move |kr| kr.forget(&server, &key))
        .await
        .map_err(keyring)?;
    save_settings(state.inner(), |s| s.user = None);
    Ok(())
}

/// Where a server's pinned certificate is kept: its `HOST:PORT`.
fn pin_key(server: &str) -> String {
    url_authority(server).unwrap_or_else(|| server.to_string())
}

fn url_authority(server: &str) -> Option<String> {
    let rest = server.split_once("://")?.1;
    Some(rest.split('/').next()?.to_string())
}

/// Trusts the certificate with SHA-256 `fingerprint` for `server` from now
/// on (the user checked it after a `certificate_prompt`); the next
/// [`engine_connect`] to it accepts exactly that certificate.
///
/// # Errors
/// A bad server address or fingerprint.
#[tauri::command]
pub(crate) fn trust_certificate(
    state: State<'_, AppState>,
    server: String,
    fingerprint: String,
) -> Result<(), UiError> {
    let server = squawk_engine::tls::server_address(&server)
        .map_err(UiError::invalid)?
        .signaling;
    let hash = squawk_engine::tls::parse_fingerprint(&fingerprint).map_err(UiError::invalid)?;
    let text = squawk_engine::tls::fingerprint_hex(&hash);
    tracing::info!(server, fingerprint = text, "certificate pinned");
    save_settings(state.inner(), |s| {
        s.pinned_certificates.insert(pin_key(&server), text);
    });
    Ok(())
}

/// Forgets the certificate pinned for `server` (after the user was told
/// it changed and checked the new one with the operator); the next connect
/// asks again. Returns whether one was pinned.
///
/// # Errors
/// A bad server address.
#[tauri::command]
pub(crate) fn forget_certificate(
    state: State<'_, AppState>,
    server: String,
) -> Result<bool, UiError> {
    let server = squawk_engine::tls::server_address(&server)
        .map_err(UiError::invalid)?
        .signaling;
    let key = pin_key(&server);
    let had = state
        .settings
        .lock()
        .is_ok_and(|s| s.pinned_certificates.contains_key(&key));
    if had {
        tracing::info!(server, "pinned certificate forgotten");
        save_settings(state.inner(), |s| {
            s.pinned_certificates.remove(&key);
        });
    }
    Ok(had)
}

/// Connects to `server` as `name` and joins `channels`.
///
/// With `user` (a server with accounts), signs in as that account first
/// ([`sign_in`]: `password` is the account's, or, when empty, the refresh
/// token kept in the keyring is used) and returns the account's display
/// name, which the server shows instead of `name`. Without, `password` is
/// the server password typed by the user: kept in the OS keyring once the
/// server accepted it; when empty, the keyring's password for this server
/// and name (if any) is sent.
///
/// # Errors
/// A bad channel name, an unreachable server, a refused sign-in, or the
/// server's refusal (e.g. `Unauthorized: wrong password`).
#[tauri::command]
pub(crate) async fn engine_connect<R: tauri::Runtime>(
    app: tauri::AppHandle<R>,
    state: State<'_, AppState>,
    server: String,
    name: String,
    channels: Vec<String>,
    password: Option<String>,
    user: Option<String>,
) -> Result<Option<String>, UiError> {
    let typed = password.filter(|p| !p.is_empty());
    let user = user.map(|u| u.trim().to_string()).filter(|u| !u.is_empty());
    // The browser link works too (`http://HOST:PORT/c/CHANNEL`): its
    // channel is joined when no other is given.
    let address = squawk_engine::tls::server_address(&server).map_err(UiError::invalid)?;
    let server = address.signaling;
    let mut channels = channels;
    if channels.is_empty()
        && let Some(c) = address.channel
    {
        channels.push(c.to_string());
    }
    let channel_names = channels.clone();
    let channels: Vec<ChannelName> = channels
        .iter()
        .map(|c| parse_channel(c))
        .collect::<Result<_, _>>()?;
    let request = ConnectRequest {
        server,
        name,
        channel_names,
        channels,
        typed,
        user,
    };
    state.connection.connect(&app, request).await
}

/// The user's connect: signs in or finds the saved password, starts the
/// engine (without audio when no device works), and once connected keeps
/// the typed password and remembers the server. A certificate the system
/// does not trust, or not the one pinned, is put to the window.
async fn first_attempt<R: tauri::Runtime>(
    app: &tauri::AppHandle<R>,
    request: ConnectRequest,
) -> Result<Started, UiError> {
    let ConnectRequest {
        server,
        name,
        channel_names,
        channels,
        typed,
        user,
    } = request;
    let state = app.state::<AppState>();
    let mut config = state.engine_config(&server, &name);
    config.trust.pin = state
        .settings
        .lock()
        .ok()
        .and_then(|s| s.pinned_certificates.get(&pin_key(&server)).cloned())
        .and_then(|f| squawk_engine::tls::parse_fingerprint(&f).ok());
    config.trust.ca_file = app.try_state::<Cli>().and_then(|c| c.ca.clone());
    let mut shown_name = None;
    if let Some(u) = &user {
        let tokens = sign_in(app, &server, u, typed.clone()).await?;
        config.token = Some(tokens.access_token);
        shown_name = Some(tokens.user.display_name);
    }
    let saved = if typed.is_some() || user.is_some() {
        None
    } else {
        let (s, n) = (server.clone(), name.clone());
        with_keyring(app, move |k| k.get(&s, &n))
            .await
            .unwrap_or_else(|e| {
                tracing::info!("no saved password: {e}");
                None
            })
    };
    if user.is_none() {
        config.password = typed.clone().or(saved.clone());
    }
    // Joined before the media offer: the server homes the media with them.
    config.channels = channels.clone();
    // No usable audio device: still connect (presence, who talks), and say
    // plainly that audio is off rather than refusing to connect.
    let mut audio_warning = None;
    let refused = |e: &EngineError| refusal(e, saved.is_some());
    let (engine, events) = match Engine::start(config.clone()).await {
        Ok(started) => started,
        Err(EngineError::Device(e)) => {
            audio_warning = Some(format!(
                "audio device unavailable ({e}): connected without sound"
            ));
            config.input = InputSpec::None;
            config.output = OutputSpec::None;
            Engine::start(config.clone())
                .await
                .map_err(|e| refused(&e))?
        }
        Err(EngineError::Tls(TlsError::Untrusted { fingerprint, .. })) => {
            // Trust on first use: the window shows the fingerprint and asks.
            emit_ui(
                app,
                AppEvent::CertificatePrompt {
                    server: server.clone(),
                    fingerprint: fingerprint.clone(),
                },
            );
            return Err(UiError::new(
                UiErrorCode::Certificate,
                "the server's certificate is not signed by an authority this system trusts",
            ));
        }
        Err(e @ EngineError::Tls(TlsError::PinMismatch { .. })) => {
            // Not offered for trust: the window says what changed and lets
            // the user forget the old certificate deliberately.
            if let EngineError::Tls(TlsError::PinMismatch { got, pinned }) = &e {
                emit_ui(
                    app,
                    AppEvent::CertificateChanged {
                        server: server.clone(),
                        fingerprint: got.clone(),
                        pinned: pinned.clone(),
                    },
                );
            }
            return Err(refused(&e));
        }
        Err(e) => return Err(refused(&e)),
    };
    if let Some(p) = typed.filter(|_| user.is_none()) {
        let (s, n) = (server.clone(), name.clone());
        if let Err(e) = with_keyring(app, move |k| k.set(&s, &n, &p)).await {
            emit_ui(
                app,
                AppEvent::Warning {
                    message: format!("password not saved: {e}"),
                },
            );
        }
    }
    if let Some(message) = audio_warning {
        emit_ui(app, AppEvent::Warning { message });
    }
    remember(&state, &server, &name, &channel_names, user.as_deref());
    if let Some(first) = channels.first()
        && let Ok(mut t) = state.target.lock()
        && t.is_none()
    {
        *t = Some(first.clone());
    }
    Ok(Started {
        engine,
        events,
        config,
        user,
        shown_name,
    })
}

/// A reconnect of a lost session: signs in again when signed in (a fresh
/// access token from the refresh token in the keyring: the last one may
/// have expired), brings the audio settings up to date and starts the
/// engine into `channels`.
async fn reconnect_attempt<R: tauri::Runtime>(
    app: &tauri::AppHandle<R>,
    mut config: EngineConfig,
    user: Option<String>,
    channels: Vec<ChannelName>,
) -> Result<Started, UiError> {
    if let Some(user) = &user {
        let tokens = sign_in(app, &config.server, user, None).await?;
        config.token = Some(tokens.access_token);
    }
    app.state::<AppState>().refresh(&mut config);
    config.channels = channels;
    match Engine::start(config.clone()).await {
        Ok((engine, events)) => Ok(Started {
            engine,
            events,
            config,
            user,
            shown_name: None,
        }),
        Err(e) => {
            tracing::info!("reconnect failed: {e}");
            Err(UiError::new(UiErrorCode::Unreachable, e.to_string()))
        }
    }
}

/// Disconnects (no reconnects follow), and returns once the engine is
/// closed. Harmless when not connected.
#[tauri::command]
pub(crate) async fn engine_disconnect(state: State<'_, AppState>) -> Result<(), UiError> {
    state.connection.disconnect().await;
    Ok(())
}

/// Remembers a successful connection in the settings file (the account's
/// username, not its secrets).
fn remember(state: &AppState, server: &str, name: &str, channels: &[String], user: Option<&str>) {
    save_settings(state, |s| {
        s.remember_server(server);
        if !name.is_empty() {
            s.name = Some(name.to_string());
        }
        s.channels = channels.to_vec();
        s.user = user.map(str::to_string);
    });
}
