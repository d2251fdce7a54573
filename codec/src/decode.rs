//! Decoding: one whole payload becomes a [`Message`].
//!
//! One pass over the map. Keys may come in any order; unknown keys are skipped
//! without building their values. Once `t` is known, the fields of that type are
//! decoded straight into their Rust types as they come (the usual case: every
//! RedPepper encoder writes `t` first). Fields met before `t` are only remembered
//! by offset and decoded once the type is known. A repeated field keeps its last
//! value, as a Python dict does; a repeated `t` must repeat the same code.
//!
//! Only `args`, `kwargs` values and `data` become [`Value`]s; the envelope never
//! does.

use rmp::Marker;

use crate::message::{AgentHello, ManagerHello, Notification, Request, Response};
use crate::read::{kind, Int, Reader};
use crate::{CodecError, Kwargs, Message, MessageType, Value};

/// The field names of all message types (`t` aside).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key {
    Id,
    Version,
    Credentials,
    Data,
    Reason,
    Method,
    Args,
    Kwargs,
    Success,
    Type,
    /// Request only, optional (our extension).
    Timeout,
}

/// Number of [`Key`] variants.
const KEYS: usize = 11;

impl Key {
    /// The key for a name, compared as raw bytes (every name is ASCII, so a match
    /// is valid UTF-8 without checking).
    #[inline]
    fn parse(name: &[u8]) -> Option<Self> {
        Some(match name {
            b"id" => Self::Id,
            b"version" => Self::Version,
            b"credentials" => Self::Credentials,
            b"data" => Self::Data,
            b"reason" => Self::Reason,
            b"method" => Self::Method,
            b"args" => Self::Args,
            b"kwargs" => Self::Kwargs,
            b"success" => Self::Success,
            b"type" => Self::Type,
            b"timeout" => Self::Timeout,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Version => "version",
            Self::Credentials => "credentials",
            Self::Data => "data",
            Self::Reason => "reason",
            Self::Method => "method",
            Self::Args => "args",
            Self::Kwargs => "kwargs",
            Self::Success => "success",
            Self::Type => "type",
            Self::Timeout => "timeout",
        }
    }
}

/// The fields of a message type, in protocol order, required ones first (see
/// [`required_fields`]).
pub(crate) fn fields_of(ty: MessageType) -> &'static [Key] {
    match ty {
        MessageType::AgentHello => &[Key::Id, Key::Version, Key::Credentials],
        MessageType::ManagerHello => &[Key::Version],
        MessageType::Ping | MessageType::Pong => &[Key::Data],
        MessageType::Bye => &[Key::Reason],
        MessageType::Request => &[Key::Id, Key::Method, Key::Args, Key::Kwargs, Key::Timeout],
        MessageType::Response => &[Key::Id, Key::Success, Key::Data],
        MessageType::Notification => &[Key::Type, Key::Data],
    }
}

/// How many of [`fields_of`] are always present (the Request's `timeout` is not).
#[inline]
pub(crate) fn required_fields(ty: MessageType) -> usize {
    match ty {
        MessageType::Request => 4,
        other => fields_of(other).len(),
    }
}

/// A Request `timeout` must be a number of seconds: not negative, not NaN (infinity
/// is allowed: no deadline that matters).
pub(crate) fn check_timeout(secs: f64) -> Result<(), CodecError> {
    if secs.is_nan() || secs < 0.0 {
        return Err(CodecError::BadValue {
            message: "Request",
            field: "timeout",
            reason: format!("{secs} is not a number of seconds >= 0"),
        });
    }
    Ok(())
}

/// Decode one whole payload.
pub fn decode(bytes: &[u8]) -> Result<Message, CodecError> {
    let mut r = Reader::new(bytes);
    let (marker, _) = r.marker()?;
    let Some(entries) = r.map_len(marker)? else {
        return Err(CodecError::NotAMap { got: kind(marker) });
    };

    let mut ty: Option<MessageType> = None;
    // Offsets of the values of fields seen before `t`.
    let mut deferred: [Option<usize>; KEYS] = [None; KEYS];
    let mut fields = Fields::default();

    for _ in 0..entries {
        let len = key_len(&mut r)?;
        let name = r.take(len)?;
        if name == b"t" {
            let code = read_type(&mut r)?;
            match ty {
                Some(first) if first != code => {
                    return Err(CodecError::ConflictingType {
                        first: first.code(),
                        second: u64::from(code.code()).into(),
                    })
                }
                _ => ty = Some(code),
            }
            continue;
        }
        let Some(key) = Key::parse(name) else {
            // Unknown key: its name must still be a valid str.
            if std::str::from_utf8(name).is_err() {
                return Err(CodecError::InvalidUtf8 {
                    offset: r.pos() - len,
                });
            }
            r.skip_value()?;
            continue;
        };
        match ty {
            Some(ty) if fields_of(ty).contains(&key) => {
                deferred[key as usize] = None;
                fields.read(&mut r, ty, key)?;
            }
            Some(_) => r.skip_value()?,
            None => {
                deferred[key as usize] = Some(r.pos());
                r.skip_value()?;
            }
        }
    }
    if r.remaining() > 0 {
        return Err(CodecError::TrailingBytes(r.remaining()));
    }

    let ty = ty.ok_or(CodecError::MissingType)?;
    for &key in fields_of(ty) {
        if let Some(offset) = deferred[key as usize] {
            r.seek(offset);
            fields.read(&mut r, ty, key)?;
        }
    }
    fields.finish(ty)
}

/// The byte length of the next map key, which must be a `str` (of the message map or
/// of `kwargs`). Always inlined: as a call it cost a Ping's decode 16 % more
/// instructions (cachegrind).
#[inline(always)]
pub(crate) fn key_len(r: &mut Reader<'_>) -> Result<usize, CodecError> {
    let (marker, offset) = r.marker()?;
    match r.str_len(marker)? {
        Some(len) => Ok(len),
        None => Err(CodecError::NonStringKey {
            offset,
            got: kind(marker),
        }),
    }
}

/// Read the value of `t`.
pub(crate) fn read_type(r: &mut Reader<'_>) -> Result<MessageType, CodecError> {
    let (marker, _) = r.marker()?;
    let Some(code) = r.int(marker)? else {
        return Err(CodecError::TypeNotInt { got: kind(marker) });
    };
    let known = match code {
        Int::Pos(n) => MessageType::from_code(n),
        Int::Neg(_) => None,
    };
    known.ok_or(CodecError::UnknownType { code: code.into() })
}

/// Field values decoded so far.
#[derive(Default)]
struct Fields {
    id: Option<String>,
    version: Option<String>,
    credentials: Option<String>,
    reason: Option<String>,
    method: Option<String>,
    r#type: Option<String>,
    success: Option<bool>,
    /// `data` of Ping and Pong.
    int_data: Option<i64>,
    /// `data` of Response and Notification.
    data: Option<Value>,
    args: Option<Vec<Value>>,
    kwargs: Option<Kwargs>,
    timeout: Option<f64>,
}

impl Fields {
    /// Decode the value of `key` (a field of `ty`) at the reader's position.
    fn read(&mut self, r: &mut Reader<'_>, ty: MessageType, key: Key) -> Result<(), CodecError> {
        let (message, field) = (ty.name(), key.name());
        let mismatch = |expected, marker| CodecError::FieldType {
            message,
            field,
            expected,
            got: kind(marker),
        };
        let result = (|| {
            let (marker, _) = r.marker()?;
            let string = |r: &mut Reader<'_>| match r.str_len(marker)? {
                Some(len) => Ok(r.str_body(len)?.to_owned()),
                None => Err(mismatch("str", marker)),
            };
            match key {
                Key::Id => self.id = Some(string(r)?),
                Key::Version => self.version = Some(string(r)?),
                Key::Credentials => self.credentials = Some(string(r)?),
                Key::Reason => self.reason = Some(string(r)?),
                Key::Method => self.method = Some(string(r)?),
                Key::Type => self.r#type = Some(string(r)?),
                Key::Success => {
                    self.success = Some(match marker {
                        Marker::True => true,
                        Marker::False => false,
                        _ => return Err(mismatch("bool", marker)),
                    })
                }
                Key::Data if matches!(ty, MessageType::Ping | MessageType::Pong) => {
                    self.int_data = Some(match r.int(marker)? {
                        Some(Int::Neg(n)) => n,
                        Some(Int::Pos(n)) => {
                            i64::try_from(n).map_err(|_| CodecError::IntOutOfRange {
                                message,
                                field,
                                value: n,
                            })?
                        }
                        None => return Err(mismatch("int", marker)),
                    })
                }
                Key::Data => self.data = Some(r.value_after(marker, 0)?),
                Key::Timeout => {
                    let secs = match r.int(marker)? {
                        Some(Int::Pos(n)) => n as f64,
                        Some(Int::Neg(n)) => n as f64,
                        None => match marker {
                            Marker::F32 | Marker::F64 => match r.value_after(marker, 0)? {
                                Value::F32(f) => f64::from(f),
                                Value::F64(f) => f,
                                _ => return Err(mismatch("float or int", marker)),
                            },
                            _ => return Err(mismatch("float or int", marker)),
                        },
                    };
                    check_timeout(secs)?;
                    self.timeout = Some(secs);
                }
                Key::Args => {
                    let Some(len) = r.array_len(marker)? else {
                        return Err(mismatch("array", marker));
                    };
                    let mut args = Vec::with_capacity(r.capacity_for(len, 1));
                    for _ in 0..len {
                        args.push(r.value(1)?);
                    }
                    self.args = Some(args);
                }
                Key::Kwargs => {
                    let Some(len) = r.map_len(marker)? else {
                        return Err(mismatch("map", marker));
                    };
                    let mut kwargs = Vec::with_capacity(r.capacity_for(len, 2));
                    for _ in 0..len {
                        let len = key_len(r)?;
                        let name = r.str_body(len)?.to_owned();
                        kwargs.push((name, r.value(1)?));
                    }
                    self.kwargs = Some(kwargs);
                }
            }
            Ok(())
        })();
        result.map_err(|e| e.in_field(message, field))
    }

    /// Build the message of type `ty`, or name the first missing field.
    fn finish(self, ty: MessageType) -> Result<Message, CodecError> {
        let message = ty.name();
        let missing = |field| CodecError::MissingField { message, field };
        Ok(match ty {
            MessageType::AgentHello => Message::AgentHello(AgentHello {
                id: self.id.ok_or_else(|| missing("id"))?,
                version: self.version.ok_or_else(|| missing("version"))?,
                credentials: self.credentials.ok_or_else(|| missing("credentials"))?,
            }),
            MessageType::ManagerHello => Message::ManagerHello(ManagerHello {
                version: self.version.ok_or_else(|| missing("version"))?,
            }),
            MessageType::Ping => Message::Ping {
                data: self.int_data.ok_or_else(|| missing("data"))?,
            },
            MessageType::Pong => Message::Pong {
                data: self.int_data.ok_or_else(|| missing("data"))?,
            },
            MessageType::Bye => Message::Bye {
                reason: self.reason.ok_or_else(|| missing("reason"))?,
            },
            MessageType::Request => Message::Request(Request {
                id: self.id.ok_or_else(|| missing("id"))?,
                method: self.method.ok_or_else(|| missing("method"))?,
                args: self.args.ok_or_else(|| missing("args"))?,
                kwargs: self.kwargs.ok_or_else(|| missing("kwargs"))?,
                timeout: self.timeout,
            }),
            MessageType::Response => Message::Response(Response {
                id: self.id.ok_or_else(|| missing("id"))?,
                success: self.success.ok_or_else(|| missing("success"))?,
                data: self.data.ok_or_else(|| missing("data"))?,
            }),
            MessageType::Notification => Message::Notification(Notification {
                r#type: self.r#type.ok_or_else(|| missing("type"))?,
                data: self.data.ok_or_else(|| missing("data"))?,
            }),
        })
    }
}
