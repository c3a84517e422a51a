//! The Message codec (SPEC §4): `Message := field_count:i32 Field×count`,
//! `Field := name:str type:u8 value`.
//!
//! Decoding recurses once per nesting level and refuses to go past [`MAX_DEPTH`], so recursion is
//! bounded by a constant, not by the input. Encoding is two passes: [`measure`] checks depth and
//! lengths and computes the size, [`write`] appends the bytes and cannot fail — so a frame's
//! length prefix is known before its first byte is written and no placeholder is ever patched.

use bytes::{BufMut, Bytes};

use crate::reader::Reader;
use crate::{DecodeError, EncodeError, Field, FieldType, FieldValue, MAX_DEPTH, Message, Text};

/// The smallest encoded field: empty name (4), type (1), a bool value (1). Used to cap how much
/// is reserved for a field count read from the input.
const MIN_FIELD_SIZE: usize = 6;

/// Decodes the Message at the start of `body`; `base` is added to offsets in errors.
pub(crate) fn decode(body: &Bytes, base: usize) -> Result<Message, DecodeError> {
    let mut reader = Reader::new(body, base);
    decode_message(&mut reader, body, 1)
}

fn decode_message(
    reader: &mut Reader<'_>,
    body: &Bytes,
    depth: usize,
) -> Result<Message, DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError::TooDeep {
            max: MAX_DEPTH,
            offset: reader.offset(),
        });
    }
    let count = reader.count("field count")?;
    // Never reserve more than the remaining bytes could hold: a huge count in a small frame
    // must not turn into a huge allocation.
    let mut message = Message::with_capacity(count.min(reader.remaining() / MIN_FIELD_SIZE));
    for _ in 0..count {
        let name = reader.length_prefixed("field name")?;
        let name = Text::from_bytes(body.slice(name));
        let type_offset = reader.offset();
        let type_byte = reader.u8("field type")?;
        let field_type = FieldType::from_code(type_byte).ok_or(DecodeError::InvalidFieldType {
            type_byte,
            offset: type_offset,
        })?;
        let value = match field_type {
            FieldType::String => {
                let range = reader.length_prefixed("string value")?;
                FieldValue::String(Text::from_bytes(body.slice(range)))
            }
            FieldType::I32 => FieldValue::I32(reader.i32("int32 value")?),
            FieldType::U32 => FieldValue::U32(reader.u32("uint32 value")?),
            FieldType::I64 => FieldValue::I64(reader.i64("int64 value")?),
            FieldType::U64 => FieldValue::U64(reader.u64("uint64 value")?),
            FieldType::F64 => FieldValue::F64(f64::from_bits(reader.u64("double value")?)),
            FieldType::Bool => FieldValue::Bool(reader.u8("bool value")? == 1),
            FieldType::Blob => {
                let range = reader.length_prefixed("blob value")?;
                FieldValue::Blob(body.slice(range))
            }
            FieldType::Message => FieldValue::Message(decode_message(reader, body, depth + 1)?),
        };
        message.push_field(Field::new(name, value));
    }
    Ok(message)
}

/// Size of the encoded Message; checks that it can be encoded at all.
pub(crate) fn measure(message: &Message) -> Result<usize, EncodeError> {
    measure_at(message, 1)
}

fn measure_at(message: &Message, depth: usize) -> Result<usize, EncodeError> {
    if depth > MAX_DEPTH {
        return Err(EncodeError::TooDeep { max: MAX_DEPTH });
    }
    checked_len("field count", message.len())?;
    let mut size = 4usize;
    for field in message {
        size += 4 + checked_len("field name", field.name().len())? + 1;
        size += match field.value() {
            FieldValue::String(text) => 4 + checked_len("string value", text.len())?,
            FieldValue::Blob(blob) => 4 + checked_len("blob value", blob.len())?,
            FieldValue::I32(_) | FieldValue::U32(_) => 4,
            FieldValue::I64(_) | FieldValue::U64(_) | FieldValue::F64(_) => 8,
            FieldValue::Bool(_) => 1,
            FieldValue::Message(nested) => measure_at(nested, depth + 1)?,
        };
    }
    Ok(size)
}

fn checked_len(what: &'static str, length: usize) -> Result<usize, EncodeError> {
    if length > i32::MAX as usize {
        Err(EncodeError::TooLong { what, length })
    } else {
        Ok(length)
    }
}

/// Appends the encoded Message. Precondition: [`measure`] succeeded for `message` (so every
/// length fits in an `i32` and depth is bounded).
pub(crate) fn write<B: BufMut>(message: &Message, out: &mut B) {
    put_len(out, message.len());
    for field in message {
        put_bytes(out, field.name().as_bytes());
        out.put_u8(field.field_type().code());
        match field.value() {
            FieldValue::String(text) => put_bytes(out, text.as_bytes()),
            FieldValue::I32(value) => out.put_i32_le(*value),
            FieldValue::U32(value) => out.put_u32_le(*value),
            FieldValue::I64(value) => out.put_i64_le(*value),
            FieldValue::U64(value) => out.put_u64_le(*value),
            FieldValue::F64(value) => out.put_u64_le(value.to_bits()),
            FieldValue::Bool(value) => out.put_u8(u8::from(*value)),
            FieldValue::Blob(blob) => put_bytes(out, blob),
            FieldValue::Message(nested) => write(nested, out),
        }
    }
}

/// Writes an `i32` length or count. Precondition: `length <= i32::MAX` (checked by `measure`).
#[inline]
pub(crate) fn put_len<B: BufMut>(out: &mut B, length: usize) {
    out.put_i32_le(length as i32);
}

/// Writes a length-prefixed byte string. Same precondition as [`put_len`].
#[inline]
pub(crate) fn put_bytes<B: BufMut>(out: &mut B, bytes: &[u8]) {
    put_len(out, bytes.len());
    out.put_slice(bytes);
}
