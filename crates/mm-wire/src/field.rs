//! [`Field`], [`FieldValue`] and [`FieldType`]: the named, typed values a Message holds (SPEC §4).

use std::fmt;

use bytes::Bytes;

use crate::{Message, Text};

/// The type of a field, with its wire code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FieldType {
    /// 1: UTF-8 text (raw bytes kept if invalid).
    String = 1,
    /// 2: signed 32-bit integer.
    I32 = 2,
    /// 3: unsigned 32-bit integer.
    U32 = 3,
    /// 4: signed 64-bit integer.
    I64 = 4,
    /// 5: unsigned 64-bit integer.
    U64 = 5,
    /// 6: IEEE-754 double.
    F64 = 6,
    /// 7: a nested Message.
    Message = 7,
    /// 8: boolean.
    Bool = 8,
    /// 9: opaque bytes.
    Blob = 9,
}

impl FieldType {
    /// The type for a wire code; `None` for 0 (NOT_SET) and for 10 and above.
    #[inline]
    pub fn from_code(code: u8) -> Option<FieldType> {
        Some(match code {
            1 => FieldType::String,
            2 => FieldType::I32,
            3 => FieldType::U32,
            4 => FieldType::I64,
            5 => FieldType::U64,
            6 => FieldType::F64,
            7 => FieldType::Message,
            8 => FieldType::Bool,
            9 => FieldType::Blob,
            _ => return None,
        })
    }

    /// The wire code.
    #[inline]
    pub fn code(self) -> u8 {
        self as u8
    }

    /// A short name for people: `string`, `int32`, `uint32`, `int64`, `uint64`, `double`,
    /// `message`, `bool`, `blob`.
    pub fn name(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::I32 => "int32",
            FieldType::U32 => "uint32",
            FieldType::I64 => "int64",
            FieldType::U64 => "uint64",
            FieldType::F64 => "double",
            FieldType::Message => "message",
            FieldType::Bool => "bool",
            FieldType::Blob => "blob",
        }
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The value of a field.
///
/// Equality compares doubles by bit pattern, so two values are equal exactly when they encode to
/// the same bytes (NaN equals the same NaN; `0.0` and `-0.0` differ).
#[derive(Debug, Clone)]
pub enum FieldValue {
    /// STRING.
    String(Text),
    /// SIGNED_INT32.
    I32(i32),
    /// UNSIGNED_INT32.
    U32(u32),
    /// SIGNED_INT64.
    I64(i64),
    /// UNSIGNED_INT64.
    U64(u64),
    /// DOUBLE.
    F64(f64),
    /// BOOL.
    Bool(bool),
    /// BLOB.
    Blob(Bytes),
    /// MESSAGE.
    Message(Message),
}

impl FieldValue {
    /// The value's type.
    pub fn field_type(&self) -> FieldType {
        match self {
            FieldValue::String(_) => FieldType::String,
            FieldValue::I32(_) => FieldType::I32,
            FieldValue::U32(_) => FieldType::U32,
            FieldValue::I64(_) => FieldType::I64,
            FieldValue::U64(_) => FieldType::U64,
            FieldValue::F64(_) => FieldType::F64,
            FieldValue::Bool(_) => FieldType::Bool,
            FieldValue::Blob(_) => FieldType::Blob,
            FieldValue::Message(_) => FieldType::Message,
        }
    }
}

impl PartialEq for FieldValue {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (FieldValue::String(a), FieldValue::String(b)) => a == b,
            (FieldValue::I32(a), FieldValue::I32(b)) => a == b,
            (FieldValue::U32(a), FieldValue::U32(b)) => a == b,
            (FieldValue::I64(a), FieldValue::I64(b)) => a == b,
            (FieldValue::U64(a), FieldValue::U64(b)) => a == b,
            (FieldValue::F64(a), FieldValue::F64(b)) => a.to_bits() == b.to_bits(),
            (FieldValue::Bool(a), FieldValue::Bool(b)) => a == b,
            (FieldValue::Blob(a), FieldValue::Blob(b)) => a == b,
            (FieldValue::Message(a), FieldValue::Message(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for FieldValue {}

macro_rules! field_value_from {
    ($($source:ty => $variant:ident),* $(,)?) => {
        $(impl From<$source> for FieldValue {
            fn from(value: $source) -> Self {
                FieldValue::$variant(value.into())
            }
        })*
    };
}

field_value_from! {
    i32 => I32,
    u32 => U32,
    i64 => I64,
    u64 => U64,
    f64 => F64,
    bool => Bool,
    Text => String,
    &str => String,
    String => String,
    Bytes => Blob,
    Vec<u8> => Blob,
    Message => Message,
}

impl From<&[u8]> for FieldValue {
    fn from(value: &[u8]) -> Self {
        FieldValue::Blob(Bytes::copy_from_slice(value))
    }
}

/// One named, typed value of a Message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The name; empty names and duplicates are allowed.
    name: Text,
    /// The value.
    value: FieldValue,
}

impl Field {
    /// A field with the given name and value.
    pub fn new(name: impl Into<Text>, value: impl Into<FieldValue>) -> Field {
        Field {
            name: name.into(),
            value: value.into(),
        }
    }

    /// The field's name (compare it with `==` against a `&str`).
    #[inline]
    pub fn name(&self) -> &Text {
        &self.name
    }

    /// The field's type.
    #[inline]
    pub fn field_type(&self) -> FieldType {
        self.value.field_type()
    }

    /// The field's value.
    #[inline]
    pub fn value(&self) -> &FieldValue {
        &self.value
    }

    /// Replaces the value (of any type) and returns the old one.
    pub fn set_value(&mut self, value: impl Into<FieldValue>) -> FieldValue {
        std::mem::replace(&mut self.value, value.into())
    }

    /// Splits the field into name and value.
    pub fn into_parts(self) -> (Text, FieldValue) {
        (self.name, self.value)
    }

    /// The value as text, if it is a STRING with valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            FieldValue::String(text) => text.as_str(),
            _ => None,
        }
    }

    /// The value as a STRING (valid UTF-8 or not).
    pub fn as_text(&self) -> Option<&Text> {
        match &self.value {
            FieldValue::String(text) => Some(text),
            _ => None,
        }
    }

    /// The value, if it is an int32.
    pub fn as_i32(&self) -> Option<i32> {
        match self.value {
            FieldValue::I32(value) => Some(value),
            _ => None,
        }
    }

    /// The value, if it is a uint32.
    pub fn as_u32(&self) -> Option<u32> {
        match self.value {
            FieldValue::U32(value) => Some(value),
            _ => None,
        }
    }

    /// The value, if it is an int64.
    pub fn as_i64(&self) -> Option<i64> {
        match self.value {
            FieldValue::I64(value) => Some(value),
            _ => None,
        }
    }

    /// The value, if it is a uint64.
    pub fn as_u64(&self) -> Option<u64> {
        match self.value {
            FieldValue::U64(value) => Some(value),
            _ => None,
        }
    }

    /// The value, if it is a double.
    pub fn as_f64(&self) -> Option<f64> {
        match self.value {
            FieldValue::F64(value) => Some(value),
            _ => None,
        }
    }

    /// The value, if it is a bool.
    pub fn as_bool(&self) -> Option<bool> {
        match self.value {
            FieldValue::Bool(value) => Some(value),
            _ => None,
        }
    }

    /// The value, if it is a blob.
    pub fn as_blob(&self) -> Option<&Bytes> {
        match &self.value {
            FieldValue::Blob(value) => Some(value),
            _ => None,
        }
    }

    /// The value, if it is a nested Message.
    pub fn as_message(&self) -> Option<&Message> {
        match &self.value {
            FieldValue::Message(value) => Some(value),
            _ => None,
        }
    }
}
