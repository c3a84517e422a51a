//! The Message codec (SPEC §4): `Message := field_count:i32 Field×count`,
//! `Field := name:str type:u8 value`.
//!
//! Decoding recurses once per nesting level and refuses to go past [`MAX_DEPTH`], so recursion is
//! bounded by a constant, not by the input. One walker serves both decoding and validation
//! (checking that a body decodes without building anything), so the two can never disagree. Encoding is two passes: [`measure`] checks depth and
//! lengths and computes the size, [`write`] appends the bytes and cannot fail — so a frame's
//! length prefix is known before its first byte is written and no placeholder is ever patched.

use std::ops::Range;

use bytes::{BufMut, Bytes};

use crate::reader::Reader;
use crate::{DecodeError, EncodeError, Field, FieldType, FieldValue, MAX_DEPTH, Message, Text};

/// The smallest encoded field: empty name (4), type (1), a bool value (1). Used to cap how much
/// is reserved for a field count read from the input.
const MIN_FIELD_SIZE: usize = 6;

/// Decodes the Message at the start of `body`; `base` is added to offsets in errors.
pub(crate) fn decode(body: &Bytes, base: usize) -> Result<Message, DecodeError> {
    let mut reader = Reader::new(body, base);
    walk(&mut reader, &mut Build { body }, 1)
}

/// Checks that the Message at the start of `body` decodes, without building it: no allocation.
/// Exactly the checks of [`decode`], so a body that validates always decodes.
pub(crate) fn validate(body: &[u8], base: usize) -> Result<(), DecodeError> {
    let mut reader = Reader::new(body, base);
    walk(&mut reader, &mut Check, 1)
}

/// A decoded value, with strings and blobs as ranges of the body and nested messages as whatever
/// the [`Visit`] builds.
enum Value<M> {
    String(Range<usize>),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
    Blob(Range<usize>),
    Message(M),
}

/// What [`walk`] builds from the fields it reads.
trait Visit {
    /// A (nested) message under construction.
    type Message;
    /// Starts a message of (at most) `capacity` fields.
    fn message(&mut self, capacity: usize) -> Self::Message;
    /// Adds a field.
    fn field(
        &mut self,
        message: &mut Self::Message,
        name: Range<usize>,
        value: Value<Self::Message>,
    );
}

/// Builds a [`Message`] whose strings and blobs share the body's buffer.
struct Build<'a> {
    body: &'a Bytes,
}

impl Visit for Build<'_> {
    type Message = Message;

    fn message(&mut self, capacity: usize) -> Message {
        Message::with_capacity(capacity)
    }

    fn field(&mut self, message: &mut Message, name: Range<usize>, value: Value<Message>) {
        let value = match value {
            Value::String(range) => FieldValue::String(Text::from_bytes(self.body.slice(range))),
            Value::I32(value) => FieldValue::I32(value),
            Value::U32(value) => FieldValue::U32(value),
            Value::I64(value) => FieldValue::I64(value),
            Value::U64(value) => FieldValue::U64(value),
            Value::F64(value) => FieldValue::F64(value),
            Value::Bool(value) => FieldValue::Bool(value),
            Value::Blob(range) => FieldValue::Blob(self.body.slice(range)),
            Value::Message(nested) => FieldValue::Message(nested),
        };
        message.push_field(Field::new(Text::from_bytes(self.body.slice(name)), value));
    }
}

/// Builds nothing: validation only.
struct Check;

impl Visit for Check {
    type Message = ();

    fn message(&mut self, _capacity: usize) {}

    fn field(&mut self, _message: &mut (), _name: Range<usize>, _value: Value<()>) {}
}

/// Reads one Message (field count and fields), nesting at most to [`MAX_DEPTH`].
fn walk<V: Visit>(
    reader: &mut Reader<'_>,
    visit: &mut V,
    depth: usize,
) -> Result<V::Message, DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError::TooDeep {
            max: MAX_DEPTH,
            offset: reader.offset(),
        });
    }
    let count = reader.count("field count")?;
    // Never reserve more than the remaining bytes could hold: a huge count in a small frame
    // must not turn into a huge allocation.
    let mut message = visit.message(count.min(reader.remaining() / MIN_FIELD_SIZE));
    for _ in 0..count {
        let name = reader.length_prefixed("field name")?;
        let type_offset = reader.offset();
        let type_byte = reader.u8("field type")?;
        let field_type = FieldType::from_code(type_byte).ok_or(DecodeError::InvalidFieldType {
            type_byte,
            offset: type_offset,
        })?;
        let value = match field_type {
            FieldType::String => Value::String(reader.length_prefixed("string value")?),
            FieldType::I32 => Value::I32(reader.i32("int32 value")?),
            FieldType::U32 => Value::U32(reader.u32("uint32 value")?),
            FieldType::I64 => Value::I64(reader.i64("int64 value")?),
            FieldType::U64 => Value::U64(reader.u64("uint64 value")?),
            FieldType::F64 => Value::F64(f64::from_bits(reader.u64("double value")?)),
            FieldType::Bool => Value::Bool(reader.u8("bool value")? == 1),
            FieldType::Blob => Value::Blob(reader.length_prefixed("blob value")?),
            FieldType::Message => Value::Message(walk(reader, visit, depth + 1)?),
        };
        visit.field(&mut message, name, value);
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
