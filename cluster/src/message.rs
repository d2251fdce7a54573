//! The cluster's messages and their encoding: one MessagePack map per message, with
//! string keys, `v` (the format version), `k` (the kind) and `from` (the sending node)
//! first. Unknown keys are ignored and an unknown kind decodes as
//! [`ClusterMessage::Unknown`], so nodes one version apart interoperate (rolling
//! upgrade): a newer node adds keys or kinds, an older one skips them.

use redpepper_codec::{decode_value, encode_value, Kwargs, Value};

use crate::error::ClusterError;

/// The format version this build writes. Readers accept any version: fields they do not
/// know are skipped, fields they need and miss make the message undecodable.
pub const FORMAT_VERSION: u64 = 1;

/// Largest encoded cluster message, sent or received: a forwarded call carries at most
/// one protocol message (`max_message_size`, 1 MiB by default, at most 64 MiB) plus a
/// few names.
pub const MAX_MESSAGE_SIZE: usize = 65 * 1024 * 1024;

/// Directory entries per [`ClusterMessage::Directory`] message (about 150 KB).
pub const DIRECTORY_CHUNK: usize = 1000;

/// One message between nodes, with its sender.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// The sending node's name.
    pub from: String,
    /// The message.
    pub message: ClusterMessage,
}

/// What one node tells another (or all).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClusterMessage {
    /// "I am alive", to all, every `cluster.heartbeat`.
    Heartbeat(Heartbeat),
    /// "Send me your whole directory", to one node.
    DirectoryRequest,
    /// Part of a node's whole directory (its own agents), in answer to a request;
    /// `first` starts a new copy, `last` ends it. All parts carry the generation the
    /// copy was taken at.
    Directory {
        /// The sender's directory generation when the copy was taken.
        gen: u64,
        /// First part of this copy.
        first: bool,
        /// Last part of this copy.
        last: bool,
        /// The agents in this part.
        agents: Vec<AgentEntry>,
    },
    /// An agent's session came up on the sender, to all.
    AgentUp {
        /// The sender's directory generation after this change.
        gen: u64,
        /// The agent.
        agent: AgentEntry,
    },
    /// An agent's session on the sender ended, to all.
    AgentDown {
        /// The sender's directory generation after this change.
        gen: u64,
        /// Agent id.
        id: String,
        /// When the session that ended began (µs since the Unix epoch).
        since_us: u64,
        /// Why it ended.
        reason: String,
    },
    /// Call `method` on `agent`, a session of the receiver; answered with
    /// [`ClusterMessage::Reply`] with the same `corr`.
    Call {
        /// Correlation id, unique per sender.
        corr: u64,
        /// Agent id.
        agent: String,
        /// Method.
        method: String,
        /// Positional arguments.
        args: Vec<Value>,
        /// Keyword arguments.
        kwargs: Kwargs,
        /// How long the caller waits, in milliseconds (the receiver gives up then too).
        timeout_ms: u64,
    },
    /// Send a notification to `agent`, a session of the receiver; answered with
    /// [`ClusterMessage::Reply`] (`nil` on success).
    Notify {
        /// Correlation id, unique per sender.
        corr: u64,
        /// Agent id.
        agent: String,
        /// Notification type.
        kind: String,
        /// Notification data.
        data: Value,
    },
    /// The answer to a [`ClusterMessage::Call`] or [`ClusterMessage::Notify`].
    Reply {
        /// The request's correlation id.
        corr: u64,
        /// The answer.
        outcome: Result<Value, RemoteError>,
    },
    /// A `command_progress` / `command_result` notification from `agent` for a command
    /// the receiver started (its id carries the receiver's tag).
    CommandUpdate {
        /// The agent that sent it.
        agent: String,
        /// `command_progress` or `command_result`.
        kind: String,
        /// The notification's data, whole.
        data: Value,
    },
    /// A manager event on the sender, to nodes watching events.
    Event(RemoteEvent),
    /// The sender is shutting down: forget its agents now.
    Leaving,
    /// A kind this build does not know (a newer node's): ignored.
    Unknown(String),
}

/// A node's heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct Heartbeat {
    /// The sender's program version.
    pub version: String,
    /// When the sender started (µs since the Unix epoch): a new value is a new
    /// incarnation, whose directory starts afresh.
    pub started_us: u64,
    /// Its connected agents.
    pub agents: u64,
    /// Its directory generation: every event up to it was sent before this heartbeat.
    pub gen: u64,
    /// Its heartbeat interval in milliseconds.
    pub interval_ms: u64,
    /// Whether someone watches its event stream (others then send it their events).
    pub watching_events: bool,
}

/// What the cluster knows about one agent's session.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentEntry {
    /// Agent id.
    pub id: String,
    /// Transport name (`tls`, `websocket`, `amqp`).
    pub transport: String,
    /// Remote address, where the transport has one.
    pub remote_addr: Option<String>,
    /// The version the agent announced.
    pub version: String,
    /// When the session was established (µs since the Unix epoch).
    pub since_us: u64,
    /// Last ping round trip in microseconds.
    pub last_rtt_us: Option<u64>,
}

/// Why a forwarded request failed on the node holding the agent.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteError {
    /// What kind of failure.
    pub kind: RemoteErrorKind,
    /// The text to show.
    pub text: String,
}

/// The kinds of [`RemoteError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteErrorKind {
    /// The agent is not connected to that node (any more).
    NotConnected,
    /// The agent answered with an error.
    Remote,
    /// No answer in time.
    Timeout,
    /// The session failed (closed, message too large, ...).
    Failed,
}

impl RemoteErrorKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::NotConnected => "not_connected",
            Self::Remote => "remote",
            Self::Timeout => "timeout",
            Self::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "not_connected" => Self::NotConnected,
            "remote" => Self::Remote,
            "timeout" => Self::Timeout,
            _ => Self::Failed,
        }
    }
}

/// A manager event forwarded to watching nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteEvent {
    /// `accepted`, `auth_failed`, `notification` (others may come from newer nodes).
    pub kind: String,
    /// Agent id, where the event has one.
    pub agent: Option<String>,
    /// Transport and address, where the event has one.
    pub peer: Option<String>,
    /// Notification type (`notification` events).
    pub notification_type: Option<String>,
    /// Notification data (`notification` events; capped by the sender).
    pub data: Option<Value>,
}

impl ClusterMessage {
    /// The kind's name on the wire (`k`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Heartbeat(_) => "heartbeat",
            Self::DirectoryRequest => "directory_request",
            Self::Directory { .. } => "directory",
            Self::AgentUp { .. } => "agent_up",
            Self::AgentDown { .. } => "agent_down",
            Self::Call { .. } => "call",
            Self::Notify { .. } => "notify",
            Self::Reply { .. } => "reply",
            Self::CommandUpdate { .. } => "command_update",
            Self::Event(_) => "event",
            Self::Leaving => "leaving",
            Self::Unknown(_) => "unknown",
        }
    }

    /// The correlation id of a request (`call`, `notify`), for a link that must say which
    /// request could not be delivered.
    pub fn request_corr(&self) -> Option<u64> {
        match self {
            Self::Call { corr, .. } | Self::Notify { corr, .. } => Some(*corr),
            _ => None,
        }
    }

    /// Encode with sender `from`.
    pub fn encode(&self, from: &str) -> Result<Vec<u8>, ClusterError> {
        let kind = self.kind();
        let mut m = Map::new(kind, from);
        match self {
            Self::Heartbeat(h) => {
                m.str("version", &h.version);
                m.u64("started_us", h.started_us);
                m.u64("agents", h.agents);
                m.u64("gen", h.gen);
                m.u64("interval_ms", h.interval_ms);
                m.put("watching_events", Value::Boolean(h.watching_events));
            }
            Self::DirectoryRequest | Self::Leaving | Self::Unknown(_) => {}
            Self::Directory {
                gen,
                first,
                last,
                agents,
            } => {
                m.u64("gen", *gen);
                m.put("first", Value::Boolean(*first));
                m.put("last", Value::Boolean(*last));
                m.put(
                    "agents",
                    Value::Array(agents.iter().map(AgentEntry::to_value).collect()),
                );
            }
            Self::AgentUp { gen, agent } => {
                m.u64("gen", *gen);
                m.put("agent", agent.to_value());
            }
            Self::AgentDown {
                gen,
                id,
                since_us,
                reason,
            } => {
                m.u64("gen", *gen);
                m.str("id", id);
                m.u64("since_us", *since_us);
                m.str("reason", reason);
            }
            Self::Call {
                corr,
                agent,
                method,
                args,
                kwargs,
                timeout_ms,
            } => {
                m.u64("corr", *corr);
                m.str("agent", agent);
                m.str("method", method);
                m.put("args", Value::Array(args.clone()));
                m.put("kwargs", kwargs_value(kwargs));
                m.u64("timeout_ms", *timeout_ms);
            }
            Self::Notify {
                corr,
                agent,
                kind,
                data,
            } => {
                m.u64("corr", *corr);
                m.str("agent", agent);
                m.str("type", kind);
                m.put("data", data.clone());
            }
            Self::Reply { corr, outcome } => {
                m.u64("corr", *corr);
                match outcome {
                    Ok(v) => m.put("ok", v.clone()),
                    Err(e) => {
                        m.str("error_kind", e.kind.as_str());
                        m.str("error", &e.text);
                    }
                }
            }
            Self::CommandUpdate { agent, kind, data } => {
                m.str("agent", agent);
                m.str("type", kind);
                m.put("data", data.clone());
            }
            Self::Event(e) => {
                m.str("event", &e.kind);
                m.opt_str("agent", e.agent.as_deref());
                m.opt_str("peer", e.peer.as_deref());
                m.opt_str("type", e.notification_type.as_deref());
                if let Some(d) = &e.data {
                    m.put("data", d.clone());
                }
            }
        }
        let bytes = encode_value(&Value::Map(m.0))
            .map_err(|source| ClusterError::Encode { kind, source })?;
        if bytes.len() > MAX_MESSAGE_SIZE {
            return Err(ClusterError::TooLarge {
                kind,
                size: bytes.len(),
                limit: MAX_MESSAGE_SIZE,
            });
        }
        Ok(bytes)
    }
}

impl Envelope {
    /// Decode one message (any format version; unknown keys skipped).
    pub fn decode(bytes: &[u8]) -> Result<Envelope, ClusterError> {
        if bytes.len() > MAX_MESSAGE_SIZE {
            return Err(ClusterError::Decode(format!(
                "{} bytes, over the limit of {MAX_MESSAGE_SIZE}",
                bytes.len()
            )));
        }
        let value = decode_value(bytes).map_err(|e| ClusterError::Decode(e.to_string()))?;
        let envelope = Envelope::from_value(value)?;
        if let ClusterMessage::Unknown(kind) = &envelope.message {
            if kind == crate::batch::BATCH_KIND {
                return Err(ClusterError::Decode(
                    "a batch where one message was expected".to_owned(),
                ));
            }
        }
        Ok(envelope)
    }

    /// One decoded message map (taken apart without copying its values).
    pub(crate) fn from_value(value: Value) -> Result<Envelope, ClusterError> {
        let Value::Map(entries) = value else {
            return Err(ClusterError::Decode("expected a map".to_owned()));
        };
        let mut f = Fields(entries);
        let kind = f.string("k")?;
        let from = f.string("from")?;
        let message = match kind.as_str() {
            "heartbeat" => ClusterMessage::Heartbeat(Heartbeat {
                version: f.string("version")?,
                started_us: f.u64("started_us")?,
                agents: f.u64("agents")?,
                gen: f.u64("gen")?,
                interval_ms: f.u64("interval_ms")?,
                watching_events: f.bool("watching_events"),
            }),
            "directory_request" => ClusterMessage::DirectoryRequest,
            "leaving" => ClusterMessage::Leaving,
            "directory" => {
                let Some(Value::Array(items)) = f.get("agents") else {
                    return Err(missing("agents"));
                };
                ClusterMessage::Directory {
                    gen: f.u64("gen")?,
                    first: f.bool("first"),
                    last: f.bool("last"),
                    agents: items
                        .iter()
                        .map(AgentEntry::from_value)
                        .collect::<Result<_, _>>()?,
                }
            }
            "agent_up" => ClusterMessage::AgentUp {
                gen: f.u64("gen")?,
                agent: AgentEntry::from_value(f.get("agent").ok_or_else(|| missing("agent"))?)?,
            },
            "agent_down" => ClusterMessage::AgentDown {
                gen: f.u64("gen")?,
                id: f.string("id")?,
                since_us: f.u64("since_us")?,
                reason: f.opt_string("reason").unwrap_or_default(),
            },
            "call" => ClusterMessage::Call {
                corr: f.u64("corr")?,
                agent: f.string("agent")?,
                method: f.string("method")?,
                args: match f.take("args") {
                    Some(Value::Array(a)) => a,
                    _ => return Err(missing("args")),
                },
                kwargs: match f.take("kwargs") {
                    Some(Value::Map(m)) => m
                        .into_iter()
                        .map(|(k, v)| match k {
                            Value::String(k) if k.is_str() => {
                                Ok((k.into_str().unwrap_or_default(), v))
                            }
                            _ => Err(ClusterError::Decode(
                                "`kwargs` has a key that is not a string".to_owned(),
                            )),
                        })
                        .collect::<Result<_, _>>()?,
                    _ => return Err(missing("kwargs")),
                },
                timeout_ms: f.u64("timeout_ms")?,
            },
            "notify" => ClusterMessage::Notify {
                corr: f.u64("corr")?,
                agent: f.string("agent")?,
                kind: f.string("type")?,
                data: f.take("data").unwrap_or(Value::Nil),
            },
            "reply" => ClusterMessage::Reply {
                corr: f.u64("corr")?,
                outcome: match f.take("ok") {
                    Some(v) => Ok(v),
                    None => Err(RemoteError {
                        kind: RemoteErrorKind::parse(
                            &f.opt_string("error_kind").unwrap_or_default(),
                        ),
                        text: f.string("error")?,
                    }),
                },
            },
            "command_update" => ClusterMessage::CommandUpdate {
                agent: f.string("agent")?,
                kind: f.string("type")?,
                data: f.take("data").unwrap_or(Value::Nil),
            },
            "event" => ClusterMessage::Event(RemoteEvent {
                kind: f.string("event")?,
                agent: f.opt_string("agent"),
                peer: f.opt_string("peer"),
                notification_type: f.opt_string("type"),
                data: f.take("data"),
            }),
            _ => ClusterMessage::Unknown(kind),
        };
        Ok(Envelope { from, message })
    }
}

impl AgentEntry {
    fn to_value(&self) -> Value {
        let mut m = Vec::with_capacity(6);
        let mut put = |k: &str, v: Value| m.push((Value::from(k), v));
        put("id", Value::from(self.id.as_str()));
        put("transport", Value::from(self.transport.as_str()));
        if let Some(a) = &self.remote_addr {
            put("remote_addr", Value::from(a.as_str()));
        }
        put("version", Value::from(self.version.as_str()));
        put("since_us", Value::from(self.since_us));
        if let Some(r) = self.last_rtt_us {
            put("last_rtt_us", Value::from(r));
        }
        Value::Map(m)
    }

    fn from_value(v: &Value) -> Result<AgentEntry, ClusterError> {
        let Value::Map(entries) = v else {
            return Err(ClusterError::Decode(
                "an agent entry is not a map".to_owned(),
            ));
        };
        // Borrowed view: entries are small maps.
        let f = FieldsRef(entries);
        Ok(AgentEntry {
            id: f.string("id")?,
            transport: f.string("transport")?,
            remote_addr: f.opt_string("remote_addr"),
            version: f.opt_string("version").unwrap_or_default(),
            since_us: f.u64("since_us")?,
            last_rtt_us: f.get("last_rtt_us").and_then(Value::as_u64),
        })
    }
}

fn kwargs_value(kwargs: &Kwargs) -> Value {
    Value::Map(
        kwargs
            .iter()
            .map(|(k, v)| (Value::from(k.as_str()), v.clone()))
            .collect(),
    )
}

fn missing(key: &str) -> ClusterError {
    ClusterError::Decode(format!("`{key}` is missing or has the wrong type"))
}

/// A message map being built, `v`, `k` and `from` first.
struct Map(Vec<(Value, Value)>);

impl Map {
    fn new(kind: &str, from: &str) -> Map {
        let mut v = Vec::with_capacity(10);
        v.push((Value::from("v"), Value::from(FORMAT_VERSION)));
        v.push((Value::from("k"), Value::from(kind)));
        v.push((Value::from("from"), Value::from(from)));
        Map(v)
    }
    fn put(&mut self, k: &str, v: Value) {
        self.0.push((Value::from(k), v));
    }
    fn str(&mut self, k: &str, v: &str) {
        self.put(k, Value::from(v));
    }
    fn opt_str(&mut self, k: &str, v: Option<&str>) {
        if let Some(v) = v {
            self.str(k, v);
        }
    }
    fn u64(&mut self, k: &str, v: u64) {
        self.put(k, Value::from(v));
    }
}

/// Lookups in a decoded message map.
struct Fields(Vec<(Value, Value)>);

impl Fields {
    fn get(&self, key: &str) -> Option<&Value> {
        FieldsRef(&self.0).get(key)
    }
    fn string(&self, key: &str) -> Result<String, ClusterError> {
        FieldsRef(&self.0).string(key)
    }
    fn opt_string(&self, key: &str) -> Option<String> {
        FieldsRef(&self.0).opt_string(key)
    }
    fn u64(&self, key: &str) -> Result<u64, ClusterError> {
        FieldsRef(&self.0).u64(key)
    }
    fn bool(&self, key: &str) -> bool {
        self.get(key).and_then(Value::as_bool).unwrap_or(false)
    }
    /// The value of `key`, moved out (a `nil` stays behind).
    fn take(&mut self, key: &str) -> Option<Value> {
        self.0
            .iter_mut()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| std::mem::replace(v, Value::Nil))
    }
}

struct FieldsRef<'a>(&'a [(Value, Value)]);

impl<'a> FieldsRef<'a> {
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.0
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }
    fn string(&self, key: &str) -> Result<String, ClusterError> {
        self.opt_string(key).ok_or_else(|| missing(key))
    }
    fn opt_string(&self, key: &str) -> Option<String> {
        self.get(key).and_then(Value::as_str).map(str::to_owned)
    }
    fn u64(&self, key: &str) -> Result<u64, ClusterError> {
        self.get(key)
            .and_then(Value::as_u64)
            .ok_or_else(|| missing(key))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn round_trip(m: ClusterMessage) {
        let bytes = m.encode("mgr-a").unwrap();
        let e = Envelope::decode(&bytes).unwrap();
        assert_eq!(e.from, "mgr-a");
        assert_eq!(e.message, m);
    }

    #[test]
    fn every_kind_round_trips() {
        let agent = AgentEntry {
            id: "web-1".into(),
            transport: "tls".into(),
            remote_addr: Some("10.0.0.1:40000".into()),
            version: "0.4.0".into(),
            since_us: 1_700_000_000_000_000,
            last_rtt_us: Some(350),
        };
        round_trip(ClusterMessage::Heartbeat(Heartbeat {
            version: "0.4.0".into(),
            started_us: 1,
            agents: 2,
            gen: 3,
            interval_ms: 1000,
            watching_events: true,
        }));
        round_trip(ClusterMessage::DirectoryRequest);
        round_trip(ClusterMessage::Leaving);
        round_trip(ClusterMessage::Directory {
            gen: 9,
            first: true,
            last: false,
            agents: vec![agent.clone()],
        });
        round_trip(ClusterMessage::AgentUp { gen: 10, agent });
        round_trip(ClusterMessage::AgentDown {
            gen: 11,
            id: "web-1".into(),
            since_us: 5,
            reason: "connection closed".into(),
        });
        round_trip(ClusterMessage::Call {
            corr: 7,
            agent: "web-1".into(),
            method: "echo".into(),
            args: vec![Value::from("hi")],
            kwargs: vec![("k".into(), Value::from(1))],
            timeout_ms: 5000,
        });
        round_trip(ClusterMessage::Notify {
            corr: 8,
            agent: "web-1".into(),
            kind: "hello".into(),
            data: Value::Nil,
        });
        round_trip(ClusterMessage::Reply {
            corr: 7,
            outcome: Ok(Value::from("hi")),
        });
        round_trip(ClusterMessage::Reply {
            corr: 8,
            outcome: Err(RemoteError {
                kind: RemoteErrorKind::NotConnected,
                text: "agent web-1 is not connected".into(),
            }),
        });
        round_trip(ClusterMessage::CommandUpdate {
            agent: "web-1".into(),
            kind: "command_result".into(),
            data: Value::Map(vec![]),
        });
        round_trip(ClusterMessage::Event(RemoteEvent {
            kind: "notification".into(),
            agent: Some("web-1".into()),
            peer: None,
            notification_type: Some("x".into()),
            data: Some(Value::from(1)),
        }));
    }

    #[test]
    fn unknown_kinds_and_keys_from_a_newer_node_are_skipped() {
        let m = Value::Map(vec![
            (Value::from("v"), Value::from(2)),
            (Value::from("k"), Value::from("rebalance")),
            (Value::from("from"), Value::from("mgr-b")),
            (Value::from("extra"), Value::from(1)),
        ]);
        let e = Envelope::decode(&encode_value(&m).unwrap()).unwrap();
        assert_eq!(e.message, ClusterMessage::Unknown("rebalance".into()));
        let mut hb = ClusterMessage::Heartbeat(Heartbeat {
            version: "9".into(),
            started_us: 1,
            agents: 0,
            gen: 0,
            interval_ms: 1000,
            watching_events: false,
        })
        .encode("mgr-b")
        .unwrap();
        // Append a key: rewrite the map header (fixmap of 9 -> 10 entries).
        assert_eq!(hb[0], 0x89);
        hb[0] = 0x8a;
        hb.extend_from_slice(&encode_value(&Value::from("new_key")).unwrap());
        hb.extend_from_slice(&encode_value(&Value::from(true)).unwrap());
        assert!(matches!(
            Envelope::decode(&hb).unwrap().message,
            ClusterMessage::Heartbeat(_)
        ));
    }

    #[test]
    fn garbage_is_an_error_naming_what_is_wrong() {
        let err = Envelope::decode(b"\x81\xa1k\xa4call")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`from`"), "{err}");
        assert!(Envelope::decode(b"\xc1").is_err());
        assert!(Envelope::decode(&[]).is_err());
    }
}
