//! What the owner of a session plugs in: a [`Handler`] for incoming requests,
//! notifications and events, and (manager side) an [`Authenticator`].
//!
//! [`Router`] is a ready-made handler that dispatches requests by method name.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use redpepper_codec::{AgentHello, Kwargs, Notification, Request, Value};

use crate::error::SessionError;
use crate::session::Session;
use crate::transport::PeerInfo;

/// Why a request handler did not produce a value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum HandlerError {
    /// No such method: answered as RedPepper does, "Method NAME not found".
    #[error("Method {0} not found")]
    MethodNotFound(String),
    /// The method failed; the text is sent unless the session hides error details.
    #[error("{0}")]
    Failed(String),
    /// The method refused the request with this text, sent to the peer even when the
    /// session hides error details: RedPepper's `RPCError` (e.g. the `custom`
    /// requests' "Data not found: x").
    #[error("{0}")]
    Refused(String),
}

/// Something the owner may want to observe.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// The handshake finished.
    Established,
    /// A ping was answered after this round-trip time.
    PingRtt(Duration),
    /// The session ended.
    Closed(SessionError),
}

/// Handles what the peer sends. Methods are called from the session's reading task:
/// `notification` and `event` must not block (hand work to a channel or a task);
/// `request` returns a future that the session polls once on the reading task and,
/// if it is not ready then, runs on a task of its own: its first poll must not block
/// either (do blocking work in `spawn_blocking`).
pub trait Handler: Send + Sync + 'static {
    /// Run a request; the future's output becomes the Response.
    fn request(
        &self,
        session: &Session,
        request: Request,
    ) -> BoxFuture<'static, Result<Value, HandlerError>>;

    /// A notification arrived. Default: logged at debug level and dropped.
    fn notification(&self, session: &Session, notification: Notification) {
        tracing::debug!(peer = %session.peer(), kind = %notification.r#type, "notification ignored");
    }

    /// A session event. Default: nothing.
    fn event(&self, _session: &Session, _event: &Event) {}
}

/// Decides whether an agent may open a session (manager side).
pub trait Authenticator: Send + Sync + 'static {
    /// `Ok` to accept. `Err(reason)` refuses: the reason is logged by the caller and
    /// never sent to the agent, which is told only "authentication failed".
    fn authenticate<'a>(
        &'a self,
        hello: &'a AgentHello,
        peer: &'a PeerInfo,
    ) -> BoxFuture<'a, Result<(), String>>;
}

/// The arguments of one incoming call, as a [`Router`] method receives them.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// The session the request came in on.
    pub session: Session,
    /// Positional arguments.
    pub args: Vec<Value>,
    /// Keyword arguments.
    pub kwargs: Kwargs,
}

impl CallContext {
    /// A keyword argument by name.
    pub fn kwarg(&self, name: &str) -> Option<&Value> {
        self.kwargs.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }
}

type MethodFn =
    Arc<dyn Fn(CallContext) -> BoxFuture<'static, Result<Value, HandlerError>> + Send + Sync>;
type NotificationFn = Arc<dyn Fn(&Session, Notification) + Send + Sync>;
type EventFn = Arc<dyn Fn(&Session, &Event) + Send + Sync>;

/// A [`Handler`] that dispatches requests by method name.
///
/// ```
/// use redpepper_core::{Router, HandlerError, Value};
/// let router = Router::new()
///     .method("echo", |ctx| async move { Ok(Value::Array(ctx.args)) })
///     .method("fail", |_ctx| async move { Err(HandlerError::Failed("nope".into())) });
/// ```
#[derive(Clone, Default)]
pub struct Router {
    methods: HashMap<String, MethodFn>,
    notification: Option<NotificationFn>,
    event: Option<EventFn>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("methods", &self.methods.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Router {
    /// An empty router: every method is "not found", notifications are dropped.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serve `name` with an async function of the call's context.
    pub fn method<F, Fut>(mut self, name: &str, f: F) -> Self
    where
        F: Fn(CallContext) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Value, HandlerError>> + Send + 'static,
    {
        self.methods
            .insert(name.to_owned(), Arc::new(move |ctx| f(ctx).boxed()));
        self
    }

    /// Receive notifications (called on the session's reading task: do not block).
    pub fn on_notification<F>(mut self, f: F) -> Self
    where
        F: Fn(&Session, Notification) + Send + Sync + 'static,
    {
        self.notification = Some(Arc::new(f));
        self
    }

    /// Receive session events (called on the session's reading task: do not block).
    pub fn on_event<F>(mut self, f: F) -> Self
    where
        F: Fn(&Session, &Event) + Send + Sync + 'static,
    {
        self.event = Some(Arc::new(f));
        self
    }
}

impl Handler for Router {
    fn request(
        &self,
        session: &Session,
        request: Request,
    ) -> BoxFuture<'static, Result<Value, HandlerError>> {
        match self.methods.get(&request.method) {
            Some(f) => f(CallContext {
                session: session.clone(),
                args: request.args,
                kwargs: request.kwargs,
            }),
            None => {
                let method = request.method;
                async move { Err(HandlerError::MethodNotFound(method)) }.boxed()
            }
        }
    }

    fn notification(&self, session: &Session, notification: Notification) {
        match &self.notification {
            Some(f) => f(session, notification),
            None => {
                tracing::debug!(peer = %session.peer(), kind = %notification.r#type, "notification ignored")
            }
        }
    }

    fn event(&self, session: &Session, event: &Event) {
        if let Some(f) = &self.event {
            f(session, event)
        }
    }
}

/// `{args: [...], kwargs: {...}}`: the answer of the `echo` method both programs serve.
pub fn echo_reply(args: Vec<Value>, kwargs: Kwargs) -> Value {
    Value::Map(vec![
        (Value::from("args"), Value::Array(args)),
        (
            Value::from("kwargs"),
            Value::Map(
                kwargs
                    .into_iter()
                    .map(|(k, v)| (Value::from(k), v))
                    .collect(),
            ),
        ),
    ])
}
