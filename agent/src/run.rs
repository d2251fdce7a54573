//! The agent's life: dial, hello, serve, and reconnect with backoff after any loss.

use std::sync::Arc;
use std::time::Instant;

use redpepper_config::AgentConfig;
use redpepper_core::{Dialer, Handler, Session, SessionError};
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::commands::Commands;
use crate::error::AgentError;
use crate::operations;

/// A configured agent, ready to run.
pub struct Agent {
    config: AgentConfig,
    dialer: Box<dyn Dialer>,
    handler: Arc<dyn Handler>,
    /// Attached to every new session (results outlive reconnects); `None` with a
    /// handler of the caller's ([`Agent::with_dialer`]).
    commands: Option<Arc<Commands>>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("agent_id", &self.config.agent_id)
            .field("manager", &self.dialer.describe())
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// Build the agent's transport from its configuration. The handler serves RedPepper's
    /// `command`, `cancel` and `echo` requests; command results are kept until the
    /// manager has them (`commands.*` bounds), across reconnects.
    pub fn new(config: AgentConfig) -> Result<Self, AgentError> {
        let dialer = redpepper_transports::dialer(&config)?;
        let commands = Commands::new(&config.commands);
        Ok(Self::with_commands(config, dialer, commands))
    }

    /// An agent over a given dialer serving [`operations::router_with`] `commands`,
    /// attached to each new session (library use and tests).
    pub fn with_commands(
        config: AgentConfig,
        dialer: Box<dyn Dialer>,
        commands: Arc<Commands>,
    ) -> Self {
        let handler = Arc::new(operations::router_with(commands.clone()));
        Self {
            commands: Some(commands),
            ..Self::with_dialer(config, dialer, handler)
        }
    }

    /// An agent over a given dialer and handler (library use and tests). Results of a
    /// router's commands go out once, on the session their command came in on.
    pub fn with_dialer(
        config: AgentConfig,
        dialer: Box<dyn Dialer>,
        handler: Arc<dyn Handler>,
    ) -> Self {
        Self {
            config,
            dialer,
            handler,
            commands: None,
        }
    }

    /// The commands this agent keeps (cancel, outbox), unless it serves a handler of
    /// the caller's ([`Agent::with_dialer`]).
    pub fn commands(&self) -> Option<&Arc<Commands>> {
        self.commands.as_ref()
    }

    /// Connect once: dial, hello, and return the established session.
    pub async fn connect(&self) -> Result<Session, AgentError> {
        self.connect_described()
            .await
            .map(|(session, _)| session)
            .map_err(|(e, _)| e)
    }

    /// [`Agent::connect`], also naming the manager that answered (the entry of a
    /// `manager_host` / `websocket.url` list; the dialer's description otherwise),
    /// for the logs: on failure, the one that refused the hello, or the whole list
    /// when none could be reached.
    async fn connect_described(&self) -> Result<(Session, String), (AgentError, String)> {
        let (transport, manager) = self
            .dialer
            .dial_described()
            .await
            .map_err(|e| (e.into(), self.dialer.describe()))?;
        let session = Session::connect(
            transport,
            &self.config.agent_id,
            self.config.agent_secret.expose(),
            self.config.session.session_config(),
            self.handler.clone(),
        )
        .await
        .map_err(|e| (e.into(), manager.clone()))?;
        Ok((session, manager))
    }

    /// Stay connected until `shutdown` fires; then say Bye "shutting down".
    /// `on_session` is called with every newly established session.
    pub async fn run(
        &self,
        shutdown: CancellationToken,
        on_session: impl Fn(&Session),
    ) -> Result<(), AgentError> {
        let mut backoff = Backoff::new(
            std::time::Duration::from_secs(1),
            std::time::Duration::from_secs(64),
        );
        if self.config.transport == redpepper_config::TransportKind::Amqp {
            if let Some(host) = redpepper_config::plain_amqp_remote_host(&self.config.amqp.url) {
                tracing::warn!(key = "amqp.url", %host, "amqp.url is amqp:// (no TLS) to a broker on another host: the agent's broker password and every message cross the network in clear; use amqps://");
            }
        }
        loop {
            let attempt = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                r = self.connect_described() => r,
            };
            let delay = match attempt {
                Ok((session, manager)) => {
                    tracing::info!(manager = %manager, agent_id = %self.config.agent_id, version = %session.peer_version(), "connected to manager");
                    if let Some(commands) = &self.commands {
                        commands.attach(&session);
                    }
                    on_session(&session);
                    let started = Instant::now();
                    let reason = tokio::select! {
                        reason = session.closed() => reason,
                        () = shutdown.cancelled() => {
                            session.close("shutting down").await;
                            tracing::info!("said bye to the manager, exiting");
                            return Ok(());
                        }
                    };
                    backoff.session_ended(started.elapsed());
                    let delay = backoff.next_delay();
                    tracing::warn!(manager = %manager, %reason, retry_in = ?delay, "disconnected from manager");
                    delay
                }
                // A manager that is only busy (its accept backlog full) is retried with
                // the normal backoff; any other refusal waits for the cap.
                Err((AgentError::Session(SessionError::Refused(reason)), manager))
                    if reason.contains("busy") =>
                {
                    let delay = backoff.next_delay();
                    tracing::warn!(manager = %manager, %reason, retry_in = ?delay, "manager busy");
                    delay
                }
                Err((AgentError::Session(SessionError::Refused(reason)), manager)) => {
                    let delay = backoff.refused_delay();
                    tracing::error!(manager = %manager, %reason, retry_in = ?delay, "manager refused this agent");
                    delay
                }
                Err((e, manager)) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(manager = %manager, error = %e, retry_in = ?delay, "cannot connect to manager");
                    delay
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(delay) => {}
            }
        }
    }
}
