//! The set of keys each program knows, used to reject unknown keys, to warn about
//! RedPepper keys we accept but ignore, and to decide how a text value from the
//! environment or `-c` is typed.

use figment::value::{Dict, Value};
use figment::Figment;

use crate::error::ConfigError;
use crate::loader::{origin_of, IgnoredKey};

/// How a key's value is written.
#[derive(Debug)]
pub(crate) enum Kind {
    /// A string (or path): text from env / `-c` is kept verbatim.
    Str,
    /// One string or a list of strings (`manager_host`): text from env / `-c` is a
    /// list when it is a YAML flow sequence (`[a, b]`), else kept verbatim (so
    /// `[::1]:7051` stays one entry).
    StrOrList,
    /// Anything else (number, bool, list, duration): text is parsed as a YAML scalar.
    Other,
    /// A free-form map whose values are strings (`websocket.headers`).
    Map,
    /// A section with its own keys.
    Section(&'static [Spec]),
}

/// One known key.
#[derive(Debug)]
pub(crate) struct Spec {
    pub name: &'static str,
    pub kind: Kind,
}

const fn s(name: &'static str) -> Spec {
    Spec {
        name,
        kind: Kind::Str,
    }
}

const fn sl(name: &'static str) -> Spec {
    Spec {
        name,
        kind: Kind::StrOrList,
    }
}

const fn o(name: &'static str) -> Spec {
    Spec {
        name,
        kind: Kind::Other,
    }
}

/// The keys of one program (`pub` only for the sealed `FileKind`; not reachable
/// from outside the crate).
#[derive(Debug)]
pub struct Schema {
    /// Groups of known keys.
    pub(crate) groups: &'static [&'static [Spec]],
    /// RedPepper keys accepted with a warning and otherwise ignored.
    pub(crate) ignored: &'static [&'static str],
}

const CONNECTION: &[Spec] = &[
    o("ping_interval"),
    o("ping_timeout"),
    o("max_message_size"),
    o("hello_timeout"),
    o("include"),
];

const TLS: &[Spec] = &[
    s("tls_cert_file"),
    s("tls_key_file"),
    s("tls_key_password"),
    o("tls_key_file_allow_insecure"),
    s("tls_ca_file"),
    s("tls_ca_path"),
    s("tls_ca_data"),
    o("tls_check_hostname"),
    s("tls_verify_mode"),
];

const MANAGER: &[Spec] = &[
    s("bind_host"),
    o("bind_port"),
    s("data_base_dir"),
    o("transports"),
    Spec {
        name: "websocket",
        kind: Kind::Section(&[s("bind"), s("path"), o("tls"), o("trusted_proxies")]),
    },
    Spec {
        name: "amqp",
        kind: Kind::Section(&[sl("url"), s("queue"), s("queue_type")]),
    },
    Spec {
        name: "admission",
        kind: Kind::Section(&[
            o("handshake_timeout"),
            o("max_pending"),
            o("max_pending_per_address"),
            o("max_pending_per_network"),
            o("max_pending_amqp"),
            o("exempt"),
        ]),
    },
    Spec {
        name: "commands",
        kind: Kind::Section(&[o("grace")]),
    },
    Spec {
        name: "cluster",
        kind: Kind::Section(&[
            o("url"),
            s("name"),
            s("node"),
            o("heartbeat"),
            o("dead_after"),
            o("manager_users"),
        ]),
    },
    s("admin_bind"),
    s("admin_token_file"),
    s("admin_tls_cert_file"),
    s("admin_tls_key_file"),
    o("admin_tls_key_file_allow_insecure"),
    s("log_level"),
    s("command_log_file"),
    o("command_log_max_age"),
    o("command_log_purge_interval"),
    o("command_log_max_bytes"),
    o("command_log_max_files"),
    // The web console's logins (RedPepper's keys, same meaning).
    o("api_logins"),
    o("api_session_max_age"),
];

const AGENT: &[Spec] = &[
    s("agent_id"),
    s("agent_secret"),
    sl("manager_host"),
    o("manager_port"),
    s("operation_modules_cache_dir"),
    o("data_request_timeout"),
    sl("transport"),
    o("transport_probe_interval"),
    s("proxy"),
    Spec {
        name: "websocket",
        kind: Kind::Section(&[
            sl("url"),
            s("proxy"),
            Spec {
                name: "headers",
                kind: Kind::Map,
            },
        ]),
    },
    Spec {
        name: "amqp",
        kind: Kind::Section(&[sl("url"), s("queue"), s("manager_user")]),
    },
    Spec {
        name: "commands",
        kind: Kind::Section(&[o("outbox"), o("outbox_bytes"), o("output_limit")]),
    },
];

/// The manager's keys.
pub(crate) const MANAGER_SCHEMA: Schema = Schema {
    groups: &[CONNECTION, TLS, MANAGER],
    ignored: &[
        "api_bind_host",
        "api_bind_port",
        "api_tls_cert_file",
        "api_tls_key_file",
        "api_tls_key_file_allow_insecure",
        "api_tls_key_password",
        "api_session_secret_key",
        "api_static_dir",
        "api_totp_secret",
        "event_log_file",
        "event_log_max_age",
        "event_log_purge_interval",
    ],
};

/// The agent's keys.
pub(crate) const AGENT_SCHEMA: Schema = Schema {
    groups: &[CONNECTION, TLS, AGENT],
    ignored: &[],
};

impl Schema {
    /// The spec of a top-level key.
    pub(crate) fn find(&self, name: &str) -> Option<&'static Spec> {
        self.groups
            .iter()
            .flat_map(|g| g.iter())
            .find(|spec| spec.name == name)
    }

    /// Whether `name` is a known (used or ignored) top-level key.
    pub(crate) fn knows(&self, name: &str) -> bool {
        self.find(name).is_some() || self.ignored.contains(&name)
    }

    /// The kind of the value at a key path, if the schema says.
    fn kind_at(&self, path: &[String]) -> Option<&'static Kind> {
        let (first, rest) = path.split_first()?;
        let mut kind = &self.find(first)?.kind;
        for part in rest {
            kind = match kind {
                Kind::Section(specs) => &specs.iter().find(|spec| spec.name == part)?.kind,
                Kind::Map => &Kind::Str,
                Kind::Str | Kind::StrOrList | Kind::Other => return None,
            };
        }
        Some(kind)
    }

    /// Types a text value from the environment or `-c`: verbatim for string keys,
    /// otherwise parsed as a YAML scalar (so `7052`, `0.5`, `true`, `[tls, amqp]`
    /// work), falling back to the text.
    pub(crate) fn text_value(&self, path: &[String], raw: &str) -> Value {
        match self.kind_at(path) {
            Some(Kind::Str) => return Value::from(raw.to_owned()),
            Some(Kind::StrOrList) => {
                let t = raw.trim();
                let list = (t.starts_with('[') && t.ends_with(']'))
                    .then(|| serde_yaml::from_str::<serde_yaml::Value>(t).ok())
                    .flatten()
                    .filter(serde_yaml::Value::is_sequence)
                    .and_then(|v| Value::serialize(v).ok());
                return list.unwrap_or_else(|| Value::from(raw.to_owned()));
            }
            _ => {}
        }
        serde_yaml::from_str::<serde_yaml::Value>(raw)
            .ok()
            .and_then(|v| Value::serialize(v).ok())
            .unwrap_or_else(|| Value::from(raw.to_owned()))
    }

    /// Rejects unknown keys (naming the key and its origin) and returns the
    /// RedPepper keys that are accepted but ignored, warning once for each.
    pub(crate) fn check_keys(
        &self,
        figment: &Figment,
        merged: &Dict,
    ) -> Result<Vec<IgnoredKey>, ConfigError> {
        let mut ignored = Vec::new();
        for (key, value) in merged {
            match self.find(key) {
                Some(Spec {
                    kind: Kind::Section(specs),
                    ..
                }) => {
                    if let Value::Dict(_, inner) = value {
                        for sub in inner.keys() {
                            if !specs.iter().any(|spec| spec.name == sub) {
                                let dotted = format!("{key}.{sub}");
                                return Err(ConfigError::UnknownKey {
                                    origin: origin_of(figment.find_metadata(&dotted)),
                                    key: dotted,
                                });
                            }
                        }
                    }
                }
                Some(_) => {}
                None if self.ignored.contains(&key.as_str()) => {
                    let origin = origin_of(figment.find_metadata(key));
                    tracing::warn!(
                        "ignoring RedPepper key `{key}` in {origin}: not implemented by this program"
                    );
                    ignored.push(IgnoredKey {
                        key: key.clone(),
                        origin,
                    });
                }
                None => {
                    return Err(ConfigError::UnknownKey {
                        origin: origin_of(figment.find_metadata(key)),
                        key: key.clone(),
                    })
                }
            }
        }
        Ok(ignored)
    }
}
