//! Low-level MessagePack writing into a `Vec<u8>`, choosing the same encodings as
//! msgpack-python's `packb`: the smallest int form (positive fixint, uint8..64,
//! negative fixint, int8..64), `str8` from 32 bytes, `bin` for bytes, float64 for
//! `F64` (and float32 for `F32`, which Python never sends), fixext where it fits.
//!
//! Each `put_*` has a `*_len` twin giving the exact number of bytes it writes, so
//! the encoder can size its buffer once.

use rmp::Marker;

use crate::{CodecError, Value, MAX_DEPTH};

/// Largest length MessagePack can announce.
const MAX_LEN: usize = u32::MAX as usize;

/// Write `marker` followed by its big-endian body of 2, 4 or 8 bytes (a 1-byte body is
/// cheaper written with the marker in one `extend_from_slice`).
#[inline(always)]
fn put_marked<const N: usize>(buf: &mut Vec<u8>, marker: Marker, body: [u8; N]) {
    buf.push(marker.to_u8());
    buf.extend_from_slice(&body);
}

/// Write an unsigned integer in its smallest form.
#[inline]
pub(crate) fn put_uint(buf: &mut Vec<u8>, v: u64) {
    if v < 0x80 {
        buf.push(v as u8);
    } else if v <= 0xff {
        buf.extend_from_slice(&[Marker::U8.to_u8(), v as u8]);
    } else if v <= 0xffff {
        put_marked(buf, Marker::U16, (v as u16).to_be_bytes());
    } else if v <= 0xffff_ffff {
        put_marked(buf, Marker::U32, (v as u32).to_be_bytes());
    } else {
        put_marked(buf, Marker::U64, v.to_be_bytes());
    }
}

/// Bytes [`put_uint`] writes.
#[inline]
pub(crate) fn uint_len(v: u64) -> usize {
    match v {
        0..=0x7f => 1,
        0x80..=0xff => 2,
        0x100..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

/// Write a signed integer in its smallest form (non-negative ones as unsigned).
#[inline]
pub(crate) fn put_sint(buf: &mut Vec<u8>, v: i64) {
    if v >= 0 {
        put_uint(buf, v as u64);
    } else if v >= -32 {
        buf.push(v as u8);
    } else if v >= i64::from(i8::MIN) {
        buf.extend_from_slice(&[Marker::I8.to_u8(), v as u8]);
    } else if v >= i64::from(i16::MIN) {
        put_marked(buf, Marker::I16, (v as i16).to_be_bytes());
    } else if v >= i64::from(i32::MIN) {
        put_marked(buf, Marker::I32, (v as i32).to_be_bytes());
    } else {
        put_marked(buf, Marker::I64, v.to_be_bytes());
    }
}

/// Bytes [`put_sint`] writes.
#[inline]
pub(crate) fn sint_len(v: i64) -> usize {
    match v {
        0.. => uint_len(v as u64),
        -32..=-1 => 1,
        -0x80..=-33 => 2,
        -0x8000..=-0x81 => 3,
        -0x8000_0000..=-0x8001 => 5,
        _ => 9,
    }
}

/// Write the length header of a str, bin, array, map or ext: the fix form
/// (`fix`: base marker and largest length it holds) when there is one and the
/// length fits, else the 8-bit form (`m8`, if the family has one), 16 or 32-bit.
/// Always inlined: the `Option`s are constants at every call site and fold away.
#[inline(always)]
fn put_header(
    buf: &mut Vec<u8>,
    len: usize,
    what: &'static str,
    fix: Option<(u8, usize)>,
    m8: Option<Marker>,
    m16: Marker,
    m32: Marker,
) -> Result<(), CodecError> {
    match (fix, m8) {
        (Some((base, max)), _) if len <= max => buf.push(base | len as u8),
        (_, Some(m8)) if len <= 0xff => buf.extend_from_slice(&[m8.to_u8(), len as u8]),
        _ if len <= 0xffff => put_marked(buf, m16, (len as u16).to_be_bytes()),
        _ if len <= MAX_LEN => put_marked(buf, m32, (len as u32).to_be_bytes()),
        _ => return Err(CodecError::TooLong { what, len }),
    }
    Ok(())
}

/// Bytes a str or bin header takes for `len` (`fix_max` 31 for str, none for bin).
#[inline]
fn header_len(len: usize, fix_max: Option<usize>, has8: bool) -> usize {
    match len {
        _ if fix_max.is_some_and(|max| len <= max) => 1,
        0..=0xff if has8 => 2,
        0..=0xffff => 3,
        _ => 5,
    }
}

/// Write a `str`.
#[inline]
pub(crate) fn put_str(buf: &mut Vec<u8>, s: &str) -> Result<(), CodecError> {
    put_str_bytes(buf, s.as_bytes())
}

fn put_str_bytes(buf: &mut Vec<u8>, s: &[u8]) -> Result<(), CodecError> {
    put_header(
        buf,
        s.len(),
        "str",
        Some((0xa0, 31)),
        Some(Marker::Str8),
        Marker::Str16,
        Marker::Str32,
    )?;
    buf.extend_from_slice(s);
    Ok(())
}

/// Bytes [`put_str`] writes for a string of `len` bytes.
#[inline]
pub(crate) fn str_len(len: usize) -> usize {
    header_len(len, Some(31), true) + len
}

/// Write an array header.
#[inline]
pub(crate) fn put_array_len(buf: &mut Vec<u8>, len: usize) -> Result<(), CodecError> {
    let (a16, a32) = (Marker::Array16, Marker::Array32);
    put_header(buf, len, "array", Some((0x90, 15)), None, a16, a32)
}

/// Write a map header.
#[inline]
pub(crate) fn put_map_len(buf: &mut Vec<u8>, len: usize) -> Result<(), CodecError> {
    let (m16, m32) = (Marker::Map16, Marker::Map32);
    put_header(buf, len, "map", Some((0x80, 15)), None, m16, m32)
}

/// Bytes an array or map header takes.
#[inline]
pub(crate) fn container_header_len(len: usize) -> usize {
    header_len(len, Some(15), false)
}

fn put_ext(buf: &mut Vec<u8>, tag: i8, data: &[u8]) -> Result<(), CodecError> {
    let fixed = match data.len() {
        1 => Some(Marker::FixExt1),
        2 => Some(Marker::FixExt2),
        4 => Some(Marker::FixExt4),
        8 => Some(Marker::FixExt8),
        16 => Some(Marker::FixExt16),
        _ => None,
    };
    match fixed {
        Some(m) => buf.push(m.to_u8()),
        None => {
            let (e8, e16, e32) = (Some(Marker::Ext8), Marker::Ext16, Marker::Ext32);
            put_header(buf, data.len(), "ext", None, e8, e16, e32)?;
        }
    }
    buf.push(tag as u8);
    buf.extend_from_slice(data);
    Ok(())
}

fn ext_len(len: usize) -> usize {
    let header = match len {
        1 | 2 | 4 | 8 | 16 => 1,
        _ => header_len(len, None, true),
    };
    header + 1 + len
}

/// Write a dynamic value. `depth` counts the containers already open around it
/// within the current field; the decoder refuses more than [`MAX_DEPTH`], so the
/// encoder does too.
pub(crate) fn put_value(buf: &mut Vec<u8>, v: &Value, depth: usize) -> Result<(), CodecError> {
    match v {
        Value::Nil => buf.push(Marker::Null.to_u8()),
        Value::Boolean(b) => buf.push(if *b { Marker::True } else { Marker::False }.to_u8()),
        Value::Integer(i) => match (i.as_u64(), i.as_i64()) {
            (Some(u), _) => put_uint(buf, u),
            // An rmpv Integer is always a u64 or a negative i64.
            (None, s) => put_sint(buf, s.unwrap_or(i64::MIN)),
        },
        Value::F32(f) => put_marked(buf, Marker::F32, f.to_bits().to_be_bytes()),
        Value::F64(f) => put_marked(buf, Marker::F64, f.to_bits().to_be_bytes()),
        Value::String(s) => match s.as_str() {
            Some(s) => put_str(buf, s)?,
            None => return Err(CodecError::InvalidUtf8InValue),
        },
        Value::Binary(b) => {
            let (b8, b16, b32) = (Some(Marker::Bin8), Marker::Bin16, Marker::Bin32);
            put_header(buf, b.len(), "bin", None, b8, b16, b32)?;
            buf.extend_from_slice(b);
        }
        Value::Array(items) => {
            check_depth(depth)?;
            put_array_len(buf, items.len())?;
            for item in items {
                put_value(buf, item, depth + 1)?;
            }
        }
        Value::Map(entries) => {
            check_depth(depth)?;
            put_map_len(buf, entries.len())?;
            for (key, value) in entries {
                put_value(buf, key, depth + 1)?;
                put_value(buf, value, depth + 1)?;
            }
        }
        Value::Ext(tag, data) => put_ext(buf, *tag, data)?,
    }
    Ok(())
}

#[inline]
fn check_depth(depth: usize) -> Result<(), CodecError> {
    if depth >= MAX_DEPTH {
        return Err(CodecError::TooDeep { limit: MAX_DEPTH });
    }
    Ok(())
}

/// Bytes [`put_value`] writes (a lower bound past [`MAX_DEPTH`], where writing fails
/// anyway; the walk stops there so a hostile value cannot exhaust the stack).
pub(crate) fn value_len(v: &Value, depth: usize) -> usize {
    match v {
        Value::Nil | Value::Boolean(_) => 1,
        Value::Integer(i) => match (i.as_u64(), i.as_i64()) {
            (Some(u), _) => uint_len(u),
            (None, s) => sint_len(s.unwrap_or(i64::MIN)),
        },
        Value::F32(_) => 5,
        Value::F64(_) => 9,
        Value::String(s) => str_len(s.as_bytes().len()),
        Value::Binary(b) => header_len(b.len(), None, true) + b.len(),
        Value::Array(_) | Value::Map(_) if depth >= MAX_DEPTH => 0,
        Value::Array(items) => items
            .iter()
            .fold(container_header_len(items.len()), |n, v| {
                n.saturating_add(value_len(v, depth + 1))
            }),
        Value::Map(entries) => {
            entries
                .iter()
                .fold(container_header_len(entries.len()), |n, (k, v)| {
                    n.saturating_add(value_len(k, depth + 1))
                        .saturating_add(value_len(v, depth + 1))
                })
        }
        Value::Ext(_, data) => ext_len(data.len()),
    }
}
