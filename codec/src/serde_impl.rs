//! serde support: [`Serialize`] and [`Deserialize`] for [`Message`] and the
//! per-type structs ([`AgentHello`], [`ManagerHello`], [`Request`], [`Response`],
//! [`Notification`]).
//!
//! These impls exist for code that embeds RedPepper messages in serde-based data
//! (a message inside a larger serde structure, a queue payload, a test fixture).
//! The transports do not use them: [`encode()`](crate::encode()) and
//! [`decode()`](crate::decode()) are the hand-written fast path (constant key
//! bytes, no dynamic value for the envelope, one allocation sized up front) and
//! are faster: on the `command` Request of `benches/codec.rs`, about 2x to encode
//! (`Request/encode` against `serde_encode/Request`, which also grows its `Vec`
//! as it goes) and 10-20% to decode, where allocating the strings and values
//! dominates both (`Request/decode` against `serde_decode/Request`).
//!
//! # Serializing
//!
//! A message serializes as a **map** (always, whatever the serializer's struct
//! setting) with string keys: `t` first (the integer type code), then the fields
//! in `PROTOCOL.md` order. Through `rmp_serde` (`to_vec`, `to_vec_named`, or a
//! `Serializer` with or without struct-map) the bytes are exactly the bytes of
//! [`encode()`](crate::encode()): rmp-serde picks the same smallest int, str, bin,
//! array, map and ext forms as msgpack-python, `Ping.data` goes out as the
//! smallest int, [`Value::Binary`] as `bin`, [`Kwargs`] as a map with string keys
//! in their order. `tests/serde.rs` proves it on every golden vector and on
//! thousands of generated messages. The per-type structs serialize exactly as
//! their [`Message`] (with `t`).
//!
//! What the fast path refuses to encode is refused here too, with the same
//! error text: a [`Value::String`] holding invalid UTF-8, values nested deeper
//! than [`MAX_DEPTH`], lengths over MessagePack's 2^32 - 1.
//!
//! # Deserializing
//!
//! Same rules as [`decode()`](crate::decode()): a map with string keys in any
//! order, `t` anywhere (fields met before it are buffered, then checked once the
//! type is known), unknown keys skipped (`IgnoredAny`), a repeated field keeps its
//! last value, a repeated `t` must repeat the same code. Errors carry the same
//! text as [`CodecError`] (``Request: missing field `method` ``,
//! ``Request: field `method`: expected str, got int``, `unknown message type t=99`,
//! ...), except that serde knows no byte offsets: where `decode()` gives one
//! (malformed MessagePack, non-str keys), the text is rmp-serde's or says the same
//! without it, still prefixed with the message type and field when inside one.
//! Deserializing a per-type struct reads a whole message and requires it to be of
//! that type.
//!
//! Differences from `decode()` that come from serde or rmp-serde, not from these
//! impls:
//!
//! - `rmp_serde::from_slice` does not check for bytes after the message map
//!   (`decode()` refuses them with [`CodecError::TrailingBytes`]).
//! - rmp-serde hands a `str` holding invalid UTF-8 to visitors as bytes, so
//!   inside a dynamic value it becomes a [`Value::Binary`] (`decode()` refuses it);
//!   where a str is required it is refused either way.
//! - rmp-serde limits any nesting to 1024 levels, also inside skipped unknown
//!   keys (`decode()` skips those without a limit).

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::ser::{self, SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::decode::{fields_of, Fields, Key, KEYS};
use crate::message::{AgentHello, ManagerHello, Notification, Request, Response};
use crate::{CodecError, Kwargs, Message, MessageType, Value, MAX_DEPTH};

// ---------------------------------------------------------------------------
// Serialize
// ---------------------------------------------------------------------------

/// Largest length MessagePack can announce.
const MAX_LEN: usize = u32::MAX as usize;

/// Refuse a length MessagePack cannot carry (rmp-serde would truncate it).
fn check_len<E: ser::Error>(what: &'static str, len: usize) -> Result<(), E> {
    if len > MAX_LEN {
        return Err(E::custom(CodecError::TooLong { what, len }));
    }
    Ok(())
}

/// A string field.
struct Str<'a>(&'a str);

impl Serialize for Str<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        check_len("str", self.0.len())?;
        s.serialize_str(self.0)
    }
}

/// A dynamic value `depth` containers deep within its field (the same count, and
/// the same limit, as the fast path's value writer).
struct ValueRef<'a> {
    value: &'a Value,
    depth: usize,
}

impl Serialize for ValueRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let depth = self.depth;
        let too_deep =
            || <S::Error as ser::Error>::custom(CodecError::TooDeep { limit: MAX_DEPTH });
        match self.value {
            Value::String(v) => match v.as_str() {
                Some(v) => Str(v).serialize(s),
                None => Err(<S::Error as ser::Error>::custom(
                    CodecError::InvalidUtf8InValue,
                )),
            },
            Value::Binary(v) => {
                check_len("bin", v.len())?;
                s.serialize_bytes(v)
            }
            Value::Array(items) => {
                if depth >= MAX_DEPTH {
                    return Err(too_deep());
                }
                check_len("array", items.len())?;
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for value in items {
                    seq.serialize_element(&ValueRef {
                        value,
                        depth: depth + 1,
                    })?;
                }
                seq.end()
            }
            Value::Map(entries) => {
                if depth >= MAX_DEPTH {
                    return Err(too_deep());
                }
                check_len("map", entries.len())?;
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    map.serialize_entry(
                        &ValueRef {
                            value: key,
                            depth: depth + 1,
                        },
                        &ValueRef {
                            value,
                            depth: depth + 1,
                        },
                    )?;
                }
                map.end()
            }
            Value::Ext(_, data) => {
                check_len("ext", data.len())?;
                // rmpv's impl: the `_ExtStruct` newtype rmp-serde writes as ext.
                self.value.serialize(s)
            }
            // Nil, Boolean, Integer (u64 or negative i64), F32, F64: rmpv's impl
            // maps each to the serde primitive of the same name.
            other => other.serialize(s),
        }
    }
}

/// `Request.args`: an array of values one level down.
struct Args<'a>(&'a [Value]);

impl Serialize for Args<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        check_len("array", self.0.len())?;
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for value in self.0 {
            seq.serialize_element(&ValueRef { value, depth: 1 })?;
        }
        seq.end()
    }
}

/// `Request.kwargs`: a map with string keys, in order.
struct KwargsRef<'a>(&'a Kwargs);

impl Serialize for KwargsRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        check_len("map", self.0.len())?;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (key, value) in self.0 {
            map.serialize_entry(&Str(key), &ValueRef { value, depth: 1 })?;
        }
        map.end()
    }
}

/// Open the message map (`fields` plus `t`) and write `t`.
fn begin<S: Serializer>(s: S, ty: MessageType, fields: usize) -> Result<S::SerializeMap, S::Error> {
    let mut map = s.serialize_map(Some(fields + 1))?;
    map.serialize_entry("t", &ty.code())?;
    Ok(map)
}

impl Serialize for AgentHello {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = begin(s, MessageType::AgentHello, 3)?;
        map.serialize_entry("id", &Str(&self.id))?;
        map.serialize_entry("version", &Str(&self.version))?;
        map.serialize_entry("credentials", &Str(&self.credentials))?;
        map.end()
    }
}

impl Serialize for ManagerHello {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = begin(s, MessageType::ManagerHello, 1)?;
        map.serialize_entry("version", &Str(&self.version))?;
        map.end()
    }
}

impl Serialize for Request {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = begin(s, MessageType::Request, 4)?;
        map.serialize_entry("id", &Str(&self.id))?;
        map.serialize_entry("method", &Str(&self.method))?;
        map.serialize_entry("args", &Args(&self.args))?;
        map.serialize_entry("kwargs", &KwargsRef(&self.kwargs))?;
        map.end()
    }
}

impl Serialize for Response {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = begin(s, MessageType::Response, 3)?;
        map.serialize_entry("id", &Str(&self.id))?;
        map.serialize_entry("success", &self.success)?;
        map.serialize_entry(
            "data",
            &ValueRef {
                value: &self.data,
                depth: 0,
            },
        )?;
        map.end()
    }
}

impl Serialize for Notification {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = begin(s, MessageType::Notification, 2)?;
        map.serialize_entry("type", &Str(&self.r#type))?;
        map.serialize_entry(
            "data",
            &ValueRef {
                value: &self.data,
                depth: 0,
            },
        )?;
        map.end()
    }
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::AgentHello(m) => m.serialize(s),
            Self::ManagerHello(m) => m.serialize(s),
            Self::Ping { data } | Self::Pong { data } => {
                let mut map = begin(s, self.message_type(), 1)?;
                // serialize_i64: the smallest int form, non-negative ones unsigned.
                map.serialize_entry("data", data)?;
                map.end()
            }
            Self::Bye { reason } => {
                let mut map = begin(s, MessageType::Bye, 1)?;
                map.serialize_entry("reason", &Str(reason))?;
                map.end()
            }
            Self::Request(m) => m.serialize(s),
            Self::Response(m) => m.serialize(s),
            Self::Notification(m) => m.serialize(s),
        }
    }
}

// ---------------------------------------------------------------------------
// Deserialize
// ---------------------------------------------------------------------------

/// Most slots a container preallocates on the strength of the length its header
/// announces (serde does not tell how many bytes are left to back it up).
const PREALLOC_LIMIT: usize = 64;

/// What one item must be. Every kind of item has a method; the defaults refuse
/// it with [`Expect::mismatch`], so each expectation overrides only what it
/// accepts. [`Seed`] turns an expectation into a serde seed and visitor.
trait Expect<'de>: Sized {
    /// What accepting produces.
    type Out;
    /// What is expected, for `expected ..., got ...` errors.
    const WHAT: &'static str;

    /// The error for an item of kind `got` (`nil`, `int`, `str`, ...).
    fn mismatch<E: de::Error>(self, got: &'static str) -> E {
        E::custom(format_args!("expected {}, got {got}", Self::WHAT))
    }

    fn nil<E: de::Error>(self) -> Result<Self::Out, E> {
        Err(self.mismatch("nil"))
    }
    fn bool<E: de::Error>(self, _: bool) -> Result<Self::Out, E> {
        Err(self.mismatch("bool"))
    }
    fn uint<E: de::Error>(self, _: u64) -> Result<Self::Out, E> {
        Err(self.mismatch("int"))
    }
    fn sint<E: de::Error>(self, _: i64) -> Result<Self::Out, E> {
        Err(self.mismatch("int"))
    }
    fn f32<E: de::Error>(self, _: f32) -> Result<Self::Out, E> {
        Err(self.mismatch("float"))
    }
    fn f64<E: de::Error>(self, _: f64) -> Result<Self::Out, E> {
        Err(self.mismatch("float"))
    }
    fn str<E: de::Error>(self, _: &str) -> Result<Self::Out, E> {
        Err(self.mismatch("str"))
    }
    fn string<E: de::Error>(self, v: String) -> Result<Self::Out, E> {
        self.str(&v)
    }
    fn bin<E: de::Error>(self, _: &[u8]) -> Result<Self::Out, E> {
        Err(self.mismatch("bin"))
    }
    fn byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Self::Out, E> {
        self.bin(&v)
    }
    fn seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Out, A::Error> {
        Err(self.mismatch("array"))
    }
    fn map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Out, A::Error> {
        Err(self.mismatch("map"))
    }
    /// A MessagePack ext, which rmp-serde (and rmpv) present as a newtype struct
    /// holding `(tag, bytes)`.
    fn ext<D: Deserializer<'de>>(self, _: D) -> Result<Self::Out, D::Error> {
        Err(self.mismatch("ext"))
    }
}

/// An [`Expect`] as a [`DeserializeSeed`] (always `deserialize_any`: the item's
/// own kind decides, so a `bin` is never read as an array of ints) and as the
/// matching [`Visitor`].
struct Seed<T>(T);

impl<'de, T: Expect<'de>> DeserializeSeed<'de> for Seed<T> {
    type Value = T::Out;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T::Out, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T: Expect<'de>> Visitor<'de> for Seed<T> {
    type Value = T::Out;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::WHAT)
    }

    fn visit_unit<E: de::Error>(self) -> Result<T::Out, E> {
        self.0.nil()
    }
    fn visit_none<E: de::Error>(self) -> Result<T::Out, E> {
        self.0.nil()
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<T::Out, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<T::Out, E> {
        self.0.bool(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T::Out, E> {
        self.0.uint(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T::Out, E> {
        self.0.sint(v)
    }
    fn visit_f32<E: de::Error>(self, v: f32) -> Result<T::Out, E> {
        self.0.f32(v)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T::Out, E> {
        self.0.f64(v)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T::Out, E> {
        self.0.str(v)
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<T::Out, E> {
        self.0.string(v)
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<T::Out, E> {
        self.0.bin(v)
    }
    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<T::Out, E> {
        self.0.byte_buf(v)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<T::Out, A::Error> {
        self.0.seq(seq)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T::Out, A::Error> {
        self.0.map(map)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<T::Out, D::Error> {
        self.0.ext(d)
    }
}

/// A key of the message map.
enum Name {
    /// `t`.
    Type,
    /// A field of some message type.
    Field(Key),
    /// Anything else: skipped.
    Unknown,
}

/// A key of the message map: a str (compared without allocating).
struct MessageKey;

impl<'de> Expect<'de> for MessageKey {
    type Out = Name;
    const WHAT: &'static str = "a str key";

    fn mismatch<E: de::Error>(self, got: &'static str) -> E {
        E::custom(format_args!("map key is not a str: got {got}"))
    }
    fn str<E: de::Error>(self, v: &str) -> Result<Name, E> {
        Ok(match v {
            "t" => Name::Type,
            _ => Key::parse(v.as_bytes()).map_or(Name::Unknown, Name::Field),
        })
    }
}

/// The value of `t`.
struct TypeCode;

impl<'de> Expect<'de> for TypeCode {
    type Out = MessageType;
    const WHAT: &'static str = "an int message type";

    fn mismatch<E: de::Error>(self, got: &'static str) -> E {
        E::custom(CodecError::TypeNotInt { got })
    }
    fn uint<E: de::Error>(self, v: u64) -> Result<MessageType, E> {
        MessageType::from_code(v)
            .ok_or_else(|| E::custom(CodecError::UnknownType { code: v.into() }))
    }
    fn sint<E: de::Error>(self, v: i64) -> Result<MessageType, E> {
        match u64::try_from(v) {
            Ok(v) => self.uint(v),
            Err(_) => Err(E::custom(CodecError::UnknownType { code: v.into() })),
        }
    }
}

/// A `str` field.
struct StrField;

impl<'de> Expect<'de> for StrField {
    type Out = String;
    const WHAT: &'static str = "str";

    fn str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
    fn string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
}

/// A `bool` field.
struct BoolField;

impl<'de> Expect<'de> for BoolField {
    type Out = bool;
    const WHAT: &'static str = "bool";

    fn bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        Ok(v)
    }
}

/// An `int` field (`Ping.data`, `Pong.data`).
struct IntField;

impl<'de> Expect<'de> for IntField {
    type Out = i64;
    const WHAT: &'static str = "int";

    fn uint<E: de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::custom(format_args!("{v} is out of range for i64")))
    }
    fn sint<E: de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }
}

/// `Request.args`: an array of any values.
struct ArgsField;

impl<'de> Expect<'de> for ArgsField {
    type Out = Vec<Value>;
    const WHAT: &'static str = "array";

    fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Value>, A::Error> {
        let mut args = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(PREALLOC_LIMIT));
        while let Some(value) = seq.next_element_seed(Seed(AnyValue::strict(1)))? {
            args.push(strict(value)?);
        }
        Ok(args)
    }
}

/// `Request.kwargs`: a map with str keys.
struct KwargsField;

impl<'de> Expect<'de> for KwargsField {
    type Out = Kwargs;
    const WHAT: &'static str = "map";

    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<Kwargs, A::Error> {
        let mut kwargs = Vec::with_capacity(map.size_hint().unwrap_or(0).min(PREALLOC_LIMIT));
        while let Some(key) = map.next_key_seed(Seed(KwargsKey))? {
            let value = strict(map.next_value_seed(Seed(AnyValue::strict(1)))?)?;
            kwargs.push((key, value));
        }
        Ok(kwargs)
    }
}

/// A key of `kwargs`.
struct KwargsKey;

impl<'de> Expect<'de> for KwargsKey {
    type Out = String;
    const WHAT: &'static str = "a str key";

    fn mismatch<E: de::Error>(self, got: &'static str) -> E {
        MessageKey.mismatch(got)
    }
    fn str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
    fn string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
}

/// Any value, `depth` containers deep within its field. Produces `None` only in
/// buffering mode, for a value nested deeper than [`MAX_DEPTH`] (whose rest is
/// then skipped): whether that is an error depends on the message type, which a
/// field met before `t` does not know yet. Otherwise too deep is an error at once.
#[derive(Clone, Copy)]
struct AnyValue {
    depth: usize,
    buffering: bool,
}

impl AnyValue {
    fn strict(depth: usize) -> Self {
        Self {
            depth,
            buffering: false,
        }
    }

    fn nested(self) -> Self {
        Self {
            depth: self.depth + 1,
            ..self
        }
    }

    /// A container at [`MAX_DEPTH`]: an error, or (buffering) skip its items.
    fn too_deep<E: de::Error>(
        self,
        mut skip: impl FnMut() -> Result<bool, E>,
    ) -> Result<Option<Value>, E> {
        if !self.buffering {
            return Err(E::custom(CodecError::TooDeep { limit: MAX_DEPTH }));
        }
        while skip()? {}
        Ok(None)
    }
}

/// The value a strict [`AnyValue`] produced.
fn strict<E: de::Error>(value: Option<Value>) -> Result<Value, E> {
    value.ok_or_else(|| E::custom(CodecError::TooDeep { limit: MAX_DEPTH }))
}

impl<'de> Expect<'de> for AnyValue {
    type Out = Option<Value>;
    const WHAT: &'static str = "any MessagePack value";

    fn nil<E: de::Error>(self) -> Result<Self::Out, E> {
        Ok(Some(Value::Nil))
    }
    fn bool<E: de::Error>(self, v: bool) -> Result<Self::Out, E> {
        Ok(Some(Value::Boolean(v)))
    }
    fn uint<E: de::Error>(self, v: u64) -> Result<Self::Out, E> {
        Ok(Some(Value::from(v)))
    }
    fn sint<E: de::Error>(self, v: i64) -> Result<Self::Out, E> {
        Ok(Some(Value::from(v)))
    }
    fn f32<E: de::Error>(self, v: f32) -> Result<Self::Out, E> {
        Ok(Some(Value::F32(v)))
    }
    fn f64<E: de::Error>(self, v: f64) -> Result<Self::Out, E> {
        Ok(Some(Value::F64(v)))
    }
    fn str<E: de::Error>(self, v: &str) -> Result<Self::Out, E> {
        Ok(Some(Value::from(v)))
    }
    fn string<E: de::Error>(self, v: String) -> Result<Self::Out, E> {
        Ok(Some(Value::from(v)))
    }
    fn bin<E: de::Error>(self, v: &[u8]) -> Result<Self::Out, E> {
        Ok(Some(Value::Binary(v.to_vec())))
    }
    fn byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Self::Out, E> {
        Ok(Some(Value::Binary(v)))
    }
    fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Out, A::Error> {
        if self.depth >= MAX_DEPTH {
            return self.too_deep(|| Ok(seq.next_element::<IgnoredAny>()?.is_some()));
        }
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(PREALLOC_LIMIT));
        while let Some(item) = seq.next_element_seed(Seed(self.nested()))? {
            match item {
                Some(item) => items.push(item),
                None => return self.too_deep(|| Ok(seq.next_element::<IgnoredAny>()?.is_some())),
            }
        }
        Ok(Some(Value::Array(items)))
    }
    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Out, A::Error> {
        let skip = |map: &mut A| -> Result<bool, A::Error> {
            Ok(map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some())
        };
        if self.depth >= MAX_DEPTH {
            return self.too_deep(|| skip(&mut map));
        }
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(PREALLOC_LIMIT));
        while let Some(key) = map.next_key_seed(Seed(self.nested()))? {
            let value = map.next_value_seed(Seed(self.nested()))?;
            match (key, value) {
                (Some(key), Some(value)) => entries.push((key, value)),
                _ => return self.too_deep(|| skip(&mut map)),
            }
        }
        Ok(Some(Value::Map(entries)))
    }
    fn ext<D: Deserializer<'de>>(self, d: D) -> Result<Self::Out, D::Error> {
        let (tag, data) = d.deserialize_tuple(2, Seed(ExtBody))?;
        Ok(Some(Value::Ext(tag, data)))
    }
}

/// The `(tag, bytes)` inside an ext.
struct ExtBody;

impl<'de> Expect<'de> for ExtBody {
    type Out = (i8, Vec<u8>);
    const WHAT: &'static str = "an ext (tag, bytes)";

    fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Out, A::Error> {
        let tag = seq
            .next_element::<i8>()?
            .ok_or_else(|| de::Error::invalid_length(0, &Seed(ExtBody)))?;
        let data = seq
            .next_element_seed(Seed(Bin))?
            .ok_or_else(|| de::Error::invalid_length(1, &Seed(ExtBody)))?;
        Ok((tag, data))
    }
}

/// Raw bytes.
struct Bin;

impl<'de> Expect<'de> for Bin {
    type Out = Vec<u8>;
    const WHAT: &'static str = "bin";

    fn bin<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }
    fn byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }
}

/// Where a field's value comes from: the map being read, or a value buffered
/// because the field came before `t`.
trait Source<'de> {
    type Error: fmt::Display;

    fn read<T: Expect<'de>>(self, expect: T) -> Result<T::Out, Self::Error>;
}

impl<'de, A: MapAccess<'de>> Source<'de> for &mut A {
    type Error = A::Error;

    fn read<T: Expect<'de>>(self, expect: T) -> Result<T::Out, A::Error> {
        self.next_value_seed(Seed(expect))
    }
}

/// A buffered field value, read again through rmpv's `Deserializer for Value`.
struct Buffered(Value);

impl<'de> Source<'de> for Buffered {
    type Error = String;

    fn read<T: Expect<'de>>(self, expect: T) -> Result<T::Out, String> {
        // Our own error text, without rmpv's "error while decoding value: ".
        Seed(expect).deserialize(self.0).map_err(|e| match e {
            rmpv::ext::Error::Syntax(msg) => msg,
        })
    }
}

/// Read the value of `key`, a field of `ty`, into `fields`. Errors name the
/// message type and field, as [`CodecError::FieldType`] and
/// [`CodecError::InField`] do.
fn read_field<'de, E: de::Error>(
    fields: &mut Fields,
    ty: MessageType,
    key: Key,
    src: impl Source<'de>,
) -> Result<(), E> {
    fn wrap<E: de::Error>(ty: MessageType, key: Key) -> impl FnOnce(&dyn fmt::Display) -> E {
        move |e| E::custom(format_args!("{}: field `{}`: {e}", ty.name(), key.name()))
    }
    macro_rules! read {
        ($expect:expr) => {
            src.read($expect).map_err(|e| wrap(ty, key)(&e))?
        };
    }
    match key {
        Key::Id => fields.id = Some(read!(StrField)),
        Key::Version => fields.version = Some(read!(StrField)),
        Key::Credentials => fields.credentials = Some(read!(StrField)),
        Key::Reason => fields.reason = Some(read!(StrField)),
        Key::Method => fields.method = Some(read!(StrField)),
        Key::Type => fields.r#type = Some(read!(StrField)),
        Key::Success => fields.success = Some(read!(BoolField)),
        Key::Data if matches!(ty, MessageType::Ping | MessageType::Pong) => {
            fields.int_data = Some(read!(IntField))
        }
        Key::Data => {
            // A strict AnyValue refuses too deep values itself; `None` cannot come.
            let value = read!(AnyValue::strict(0));
            let too_deep = CodecError::TooDeep { limit: MAX_DEPTH };
            let too_deep = || E::custom(too_deep.in_field(ty.name(), key.name()));
            fields.data = Some(value.ok_or_else(too_deep)?);
        }
        Key::Args => fields.args = Some(read!(ArgsField)),
        Key::Kwargs => fields.kwargs = Some(read!(KwargsField)),
    }
    Ok(())
}

/// A field met before `t`.
enum Deferred {
    Value(Value),
    /// Nested deeper than [`MAX_DEPTH`]: an error if the field belongs to the type.
    TooDeep,
}

/// The whole message map.
struct MessageMap;

impl<'de> Expect<'de> for MessageMap {
    type Out = Message;
    const WHAT: &'static str = "a RedPepper message (a map with str keys)";

    fn mismatch<E: de::Error>(self, got: &'static str) -> E {
        E::custom(CodecError::NotAMap { got })
    }

    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<Message, A::Error> {
        let mut ty: Option<MessageType> = None;
        let mut deferred: [Option<Deferred>; KEYS] = Default::default();
        let mut fields = Fields::default();

        while let Some(name) = map.next_key_seed(Seed(MessageKey))? {
            match name {
                Name::Type => {
                    let code = map.next_value_seed(Seed(TypeCode))?;
                    match ty {
                        Some(first) if first != code => {
                            return Err(de::Error::custom(CodecError::ConflictingType {
                                first: first.code(),
                                second: u64::from(code.code()).into(),
                            }))
                        }
                        _ => ty = Some(code),
                    }
                }
                Name::Unknown => {
                    map.next_value::<IgnoredAny>()?;
                }
                Name::Field(key) => match ty {
                    Some(ty) if fields_of(ty).contains(&key) => {
                        deferred[key as usize] = None;
                        read_field(&mut fields, ty, key, &mut map)?;
                    }
                    Some(_) => {
                        map.next_value::<IgnoredAny>()?;
                    }
                    None => {
                        let buffering = AnyValue {
                            depth: 0,
                            buffering: true,
                        };
                        let value = map.next_value_seed(Seed(buffering))?;
                        deferred[key as usize] =
                            Some(value.map_or(Deferred::TooDeep, Deferred::Value));
                    }
                },
            }
        }

        let ty = ty.ok_or_else(|| de::Error::custom(CodecError::MissingType))?;
        for &key in fields_of(ty) {
            match deferred[key as usize].take() {
                Some(Deferred::Value(value)) => read_field(&mut fields, ty, key, Buffered(value))?,
                Some(Deferred::TooDeep) => {
                    let e = CodecError::TooDeep { limit: MAX_DEPTH };
                    return Err(de::Error::custom(e.in_field(ty.name(), key.name())));
                }
                None => {}
            }
        }
        fields.finish(ty).map_err(de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(Seed(MessageMap))
    }
}

/// `Deserialize` for a per-type struct: a whole message, which must be of that type.
macro_rules! deserialize_variant {
    ($($ty:ident),*) => {$(
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                match Message::deserialize(d)? {
                    Message::$ty(m) => Ok(m),
                    other => Err(de::Error::custom(format_args!(
                        "expected a {} message, got {}",
                        MessageType::$ty.name(),
                        other.message_type().name(),
                    ))),
                }
            }
        }
    )*};
}

deserialize_variant!(AgentHello, ManagerHello, Request, Response, Notification);
