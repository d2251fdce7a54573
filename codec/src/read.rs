//! Low-level MessagePack reading over a byte slice: markers, scalars, dynamic
//! [`Value`]s and skipping.
//!
//! Every length a header announces is checked against the bytes that are really
//! there before anything is allocated; containers preallocate at most
//! [`PREALLOC_LIMIT`] slots (and never more than the remaining bytes could fill),
//! and nest at most [`MAX_DEPTH`] levels. Skipping is iterative and allocates
//! nothing, so an unknown key costs no memory however its value is shaped.

use rmp::Marker;

use crate::{CodecError, Value, MAX_DEPTH};

/// Malformed MessagePack: the subset of [`CodecError`] the reader itself finds.
/// Kept small (24 bytes against 72) because every read returns it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ReadError {
    Truncated { offset: usize, needed: usize },
    Reserved { offset: usize },
    Utf8 { offset: usize },
    TooDeep,
}

impl From<ReadError> for CodecError {
    #[cold]
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Truncated { offset, needed } => Self::Truncated { offset, needed },
            ReadError::Reserved { offset } => Self::ReservedMarker { offset },
            ReadError::Utf8 { offset } => Self::InvalidUtf8 { offset },
            ReadError::TooDeep => Self::TooDeep { limit: MAX_DEPTH },
        }
    }
}

/// Most slots a container preallocates on the strength of its header alone.
/// Honest larger containers just grow as their elements arrive.
const PREALLOC_LIMIT: usize = 1024;

/// The kind of item a marker starts, as named in error messages.
pub(crate) fn kind(marker: Marker) -> &'static str {
    match marker {
        Marker::Null => "nil",
        Marker::True | Marker::False => "bool",
        Marker::FixPos(_)
        | Marker::FixNeg(_)
        | Marker::U8
        | Marker::U16
        | Marker::U32
        | Marker::U64
        | Marker::I8
        | Marker::I16
        | Marker::I32
        | Marker::I64 => "int",
        Marker::F32 | Marker::F64 => "float",
        Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32 => "str",
        Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => "bin",
        Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => "array",
        Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => "map",
        Marker::FixExt1
        | Marker::FixExt2
        | Marker::FixExt4
        | Marker::FixExt8
        | Marker::FixExt16
        | Marker::Ext8
        | Marker::Ext16
        | Marker::Ext32 => "ext",
        Marker::Reserved => "reserved marker 0xc1",
    }
}

/// An integer as read from the wire, before it is narrowed for its use.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Int {
    /// Non-negative.
    Pos(u64),
    /// Negative.
    Neg(i64),
}

impl From<Int> for rmpv::Integer {
    fn from(i: Int) -> Self {
        match i {
            Int::Pos(n) => n.into(),
            Int::Neg(n) => n.into(),
        }
    }
}

/// A cursor over one whole payload.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Start reading at the first byte of `buf`.
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Current offset.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Move to an offset seen earlier with [`Reader::pos`].
    pub(crate) fn seek(&mut self, pos: usize) {
        self.pos = pos.min(self.buf.len());
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Take the next `n` bytes.
    #[inline]
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], ReadError> {
        let rest = &self.buf[self.pos..];
        if n > rest.len() {
            return Err(ReadError::Truncated {
                offset: self.pos,
                needed: n - rest.len(),
            });
        }
        self.pos += n;
        Ok(&rest[..n])
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], ReadError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    #[inline]
    fn u8(&mut self) -> Result<u8, ReadError> {
        Ok(self.array::<1>()?[0])
    }

    #[inline]
    fn u16(&mut self) -> Result<u16, ReadError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    #[inline]
    fn u32(&mut self) -> Result<u32, ReadError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    #[inline]
    fn u64(&mut self) -> Result<u64, ReadError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// Read the next marker; returns it with its offset.
    #[inline]
    pub(crate) fn marker(&mut self) -> Result<(Marker, usize), ReadError> {
        let offset = self.pos;
        let marker = Marker::from_u8(self.u8()?);
        if marker == Marker::Reserved {
            return Err(ReadError::Reserved { offset });
        }
        Ok((marker, offset))
    }

    /// The integer after an int marker, or `None` if the marker is not an int.
    #[inline]
    pub(crate) fn int(&mut self, marker: Marker) -> Result<Option<Int>, ReadError> {
        let signed = |n: i64| {
            if n < 0 {
                Int::Neg(n)
            } else {
                Int::Pos(n as u64)
            }
        };
        Ok(Some(match marker {
            Marker::FixPos(n) => Int::Pos(n.into()),
            Marker::FixNeg(n) => Int::Neg(n.into()),
            Marker::U8 => Int::Pos(self.u8()?.into()),
            Marker::U16 => Int::Pos(self.u16()?.into()),
            Marker::U32 => Int::Pos(self.u32()?.into()),
            Marker::U64 => Int::Pos(self.u64()?),
            Marker::I8 => signed((self.u8()? as i8).into()),
            Marker::I16 => signed((self.u16()? as i16).into()),
            Marker::I32 => signed((self.u32()? as i32).into()),
            Marker::I64 => signed(self.u64()? as i64),
            _ => return Ok(None),
        }))
    }

    /// The length a str, bin, array, map or ext marker announces, reading its length
    /// field if it has one: bytes for str and bin, elements for an array, entries for a
    /// map, data bytes for ext (its type byte not counted). 0 for any other marker;
    /// callers pass only these five families. Always inlined, so that the family test
    /// of each caller folds the match away.
    #[inline(always)]
    fn len_of(&mut self, marker: Marker) -> Result<usize, ReadError> {
        Ok(match marker {
            Marker::FixStr(n) | Marker::FixArray(n) | Marker::FixMap(n) => n.into(),
            Marker::FixExt1 => 1,
            Marker::FixExt2 => 2,
            Marker::FixExt4 => 4,
            Marker::FixExt8 => 8,
            Marker::FixExt16 => 16,
            Marker::Str8 | Marker::Bin8 | Marker::Ext8 => self.u8()?.into(),
            Marker::Str16 | Marker::Bin16 | Marker::Array16 | Marker::Map16 | Marker::Ext16 => {
                self.u16()?.into()
            }
            Marker::Str32 | Marker::Bin32 | Marker::Array32 | Marker::Map32 | Marker::Ext32 => {
                self.u32()? as usize
            }
            _ => 0,
        })
    }

    /// The length after a str marker, or `None` if the marker is not a str.
    #[inline]
    pub(crate) fn str_len(&mut self, marker: Marker) -> Result<Option<usize>, ReadError> {
        let is_str = matches!(
            marker,
            Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32
        );
        is_str.then(|| self.len_of(marker)).transpose()
    }

    /// The string after a str marker whose length was read with [`Reader::str_len`].
    #[inline]
    pub(crate) fn str_body(&mut self, len: usize) -> Result<&'a str, ReadError> {
        let offset = self.pos;
        std::str::from_utf8(self.take(len)?).map_err(|_| ReadError::Utf8 { offset })
    }

    /// The element count after an array marker, or `None`.
    #[inline]
    pub(crate) fn array_len(&mut self, marker: Marker) -> Result<Option<usize>, ReadError> {
        let is_array = matches!(
            marker,
            Marker::FixArray(_) | Marker::Array16 | Marker::Array32
        );
        is_array.then(|| self.len_of(marker)).transpose()
    }

    /// The entry count after a map marker, or `None`.
    #[inline]
    pub(crate) fn map_len(&mut self, marker: Marker) -> Result<Option<usize>, ReadError> {
        let is_map = matches!(marker, Marker::FixMap(_) | Marker::Map16 | Marker::Map32);
        is_map.then(|| self.len_of(marker)).transpose()
    }

    /// How many slots to preallocate for `announced` items of at least
    /// `min_item_bytes` bytes each.
    #[inline]
    pub(crate) fn capacity_for(&self, announced: usize, min_item_bytes: usize) -> usize {
        announced
            .min(self.remaining() / min_item_bytes)
            .min(PREALLOC_LIMIT)
    }

    /// Read one whole value. `depth` counts the containers already open around it
    /// within the current field.
    pub(crate) fn value(&mut self, depth: usize) -> Result<Value, ReadError> {
        let (marker, _) = self.marker()?;
        self.value_after(marker, depth)
    }

    /// Read the rest of a value whose marker was already read.
    pub(crate) fn value_after(&mut self, marker: Marker, depth: usize) -> Result<Value, ReadError> {
        Ok(match marker {
            Marker::Null => Value::Nil,
            Marker::True => Value::Boolean(true),
            Marker::False => Value::Boolean(false),
            Marker::FixPos(n) => Value::from(n),
            Marker::F32 => Value::F32(f32::from_bits(self.u32()?)),
            Marker::F64 => Value::F64(f64::from_bits(self.u64()?)),
            Marker::FixNeg(_)
            | Marker::U8
            | Marker::U16
            | Marker::U32
            | Marker::U64
            | Marker::I8
            | Marker::I16
            | Marker::I32
            | Marker::I64 => match self.int(marker)? {
                Some(i) => Value::Integer(i.into()),
                None => Value::Nil,
            },
            Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32 => {
                let len = self.len_of(marker)?;
                Value::String(self.str_body(len)?.into())
            }
            Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => {
                let len = self.len_of(marker)?;
                Value::Binary(self.take(len)?.to_vec())
            }
            Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => {
                let len = self.len_of(marker)?;
                if depth >= MAX_DEPTH {
                    return Err(ReadError::TooDeep);
                }
                let mut items = Vec::with_capacity(self.capacity_for(len, 1));
                for _ in 0..len {
                    items.push(self.value(depth + 1)?);
                }
                Value::Array(items)
            }
            Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => {
                let len = self.len_of(marker)?;
                if depth >= MAX_DEPTH {
                    return Err(ReadError::TooDeep);
                }
                let mut entries = Vec::with_capacity(self.capacity_for(len, 2));
                for _ in 0..len {
                    let key = self.value(depth + 1)?;
                    let value = self.value(depth + 1)?;
                    entries.push((key, value));
                }
                Value::Map(entries)
            }
            Marker::Reserved => {
                return Err(ReadError::Reserved {
                    offset: self.pos.saturating_sub(1),
                })
            }
            _ => {
                let len = self.len_of(marker)?;
                let tag = self.u8()? as i8;
                Value::Ext(tag, self.take(len)?.to_vec())
            }
        })
    }

    /// Skip one whole value without building it. Iterative: no recursion, no
    /// allocation, no depth limit needed.
    pub(crate) fn skip_value(&mut self) -> Result<(), ReadError> {
        let mut pending: u64 = 1;
        while pending > 0 {
            pending -= 1;
            let (marker, _) = self.marker()?;
            let body = match marker {
                Marker::Null
                | Marker::True
                | Marker::False
                | Marker::FixPos(_)
                | Marker::FixNeg(_) => 0,
                Marker::U8 | Marker::I8 => 1,
                Marker::U16 | Marker::I16 => 2,
                Marker::U32 | Marker::I32 | Marker::F32 => 4,
                Marker::U64 | Marker::I64 | Marker::F64 => 8,
                Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => {
                    let n = self.len_of(marker)?;
                    pending = pending.saturating_add(n as u64);
                    0
                }
                Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => {
                    let n = self.len_of(marker)?;
                    pending = pending.saturating_add(2 * n as u64);
                    0
                }
                // Str and bin: the data.
                Marker::FixStr(_)
                | Marker::Str8
                | Marker::Str16
                | Marker::Str32
                | Marker::Bin8
                | Marker::Bin16
                | Marker::Bin32 => self.len_of(marker)?,
                // Ext: the type byte, then the data.
                _ => self.len_of(marker)?.saturating_add(1),
            };
            self.take(body)?;
        }
        Ok(())
    }
}
