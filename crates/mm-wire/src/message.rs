//! [`Message`]: an ordered list of named, typed fields (SPEC §4), and the typed errors of reading
//! one ([`FieldError`]).

use bytes::{BufMut, Bytes};

use crate::body;
use crate::{DecodeError, EncodeError, Field, FieldType, FieldValue, Text};

/// An ordered list of named, typed fields.
///
/// * Fields keep insertion order, on the wire and after decoding. Names may be empty and may
///   repeat; lookup by name returns the **first** field with that name, and iteration reaches every
///   field.
/// * Typed getters never convert: reading an int32 as an int64 is a [`FieldError::WrongType`]
///   naming the field and both types. The `try_*` forms return `None` instead.
/// * Decoded strings and blobs are slices of the received frame: no copies.
///
/// Build one with the chainable `add_*` methods, which take and return the message by value:
///
/// ```
/// use mm_wire::Message;
/// let order = Message::new()
///     .add_string("sym", "IBM")
///     .add_f64("px", 123.4)
///     .add_message("meta", Message::new().add_u32("seq", 7));
/// assert_eq!(order.get_f64("px").unwrap(), 123.4);
/// assert!(order.get_i64("px").is_err()); // no conversion
/// assert_eq!(order.to_string(), r#"{sym="IBM" px=123.4 meta={seq=7}}"#);
/// ```
///
/// To add fields to a message you hold by `&mut`, use [`Message::push`].
///
/// An empty message does not allocate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// Fields in wire order.
    fields: Vec<Field>,
}

/// Reading a field by name failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FieldError {
    /// No field has that name.
    #[error("no field named `{name}`")]
    Missing {
        /// The name asked for.
        name: String,
    },
    /// The first field with that name has another type.
    #[error("field `{name}` is {actual}, not {expected}")]
    WrongType {
        /// The field's name.
        name: String,
        /// The type asked for.
        expected: FieldType,
        /// The field's type.
        actual: FieldType,
    },
    /// The field is a STRING whose bytes are not valid UTF-8; read it with
    /// [`Message::get_text`] to get the raw bytes.
    #[error("field `{name}` is a string that is not valid UTF-8")]
    NotUtf8 {
        /// The field's name.
        name: String,
    },
}

macro_rules! copy_getters {
    ($($add:ident, $get:ident, $try_get:ident, $variant:ident, $ty:ty, $type_name:literal;)*) => {
        $(
            #[doc = concat!("Appends a field holding ", $type_name, " and returns the message.")]
            #[must_use]
            pub fn $add(mut self, name: impl Into<Text>, value: $ty) -> Self {
                self.fields.push(Field::new(name, FieldValue::$variant(value)));
                self
            }

            #[doc = concat!("The value of the first field named `name`, which must be ", $type_name, ".")]
            pub fn $get(&self, name: &str) -> Result<$ty, FieldError> {
                match self.typed(name, FieldType::$variant)? {
                    FieldValue::$variant(value) => Ok(*value),
                    other => Err(wrong_type(name, FieldType::$variant, other.field_type())),
                }
            }

            #[doc = concat!("The value of the first field named `name` if it is ", $type_name, "; `None` if it is absent or of another type.")]
            pub fn $try_get(&self, name: &str) -> Option<$ty> {
                match self.field(name).map(Field::value) {
                    Some(FieldValue::$variant(value)) => Some(*value),
                    _ => None,
                }
            }
        )*
    };
}

impl Message {
    /// An empty message. Does not allocate.
    pub const fn new() -> Message {
        Message { fields: Vec::new() }
    }

    /// An empty message with room for `capacity` fields.
    pub fn with_capacity(capacity: usize) -> Message {
        Message {
            fields: Vec::with_capacity(capacity),
        }
    }

    /// Number of fields, duplicates included.
    #[inline]
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether the message has no fields.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Removes every field, keeping the allocation.
    pub fn clear(&mut self) {
        self.fields.clear();
    }

    /// Appends a field and returns `&mut self`, for building in place.
    pub fn push(&mut self, name: impl Into<Text>, value: impl Into<FieldValue>) -> &mut Self {
        self.fields.push(Field::new(name, value));
        self
    }

    /// Appends a field.
    pub fn push_field(&mut self, field: Field) -> &mut Self {
        self.fields.push(field);
        self
    }

    /// Appends a STRING field and returns the message.
    #[must_use]
    pub fn add_string(mut self, name: impl Into<Text>, value: impl Into<Text>) -> Self {
        self.fields
            .push(Field::new(name, FieldValue::String(value.into())));
        self
    }

    /// Appends a BLOB field and returns the message. `Bytes` values are stored without a copy.
    #[must_use]
    pub fn add_blob(mut self, name: impl Into<Text>, value: impl Into<Bytes>) -> Self {
        self.fields
            .push(Field::new(name, FieldValue::Blob(value.into())));
        self
    }

    /// Appends a nested MESSAGE field and returns the message.
    #[must_use]
    pub fn add_message(mut self, name: impl Into<Text>, value: Message) -> Self {
        self.fields
            .push(Field::new(name, FieldValue::Message(value)));
        self
    }

    copy_getters! {
        add_i32, get_i32, try_i32, I32, i32, "an int32";
        add_u32, get_u32, try_u32, U32, u32, "a uint32";
        add_i64, get_i64, try_i64, I64, i64, "an int64";
        add_u64, get_u64, try_u64, U64, u64, "a uint64";
        add_f64, get_f64, try_f64, F64, f64, "a double";
        add_bool, get_bool, try_bool, Bool, bool, "a bool";
    }

    /// The first field named `name` (exact, byte-for-byte, case-sensitive).
    #[inline]
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|field| field.name() == name)
    }

    /// The first field named `name`, mutably.
    pub fn field_mut(&mut self, name: &str) -> Option<&mut Field> {
        self.fields.iter_mut().find(|field| field.name() == name)
    }

    /// The field at `index` in wire order.
    pub fn field_at(&self, index: usize) -> Option<&Field> {
        self.fields.get(index)
    }

    /// Whether a field named `name` exists.
    pub fn contains(&self, name: &str) -> bool {
        self.field(name).is_some()
    }

    /// The type of the first field named `name`.
    pub fn field_type(&self, name: &str) -> Option<FieldType> {
        self.field(name).map(Field::field_type)
    }

    /// Every field in wire order, duplicates included.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// Iterates over every field in wire order, duplicates included.
    pub fn iter(&self) -> std::slice::Iter<'_, Field> {
        self.fields.iter()
    }

    /// Replaces the value of the first field named `name` (the type may change) and returns the
    /// old value.
    pub fn replace(
        &mut self,
        name: &str,
        value: impl Into<FieldValue>,
    ) -> Result<FieldValue, FieldError> {
        match self.field_mut(name) {
            Some(field) => Ok(field.set_value(value)),
            None => Err(missing(name)),
        }
    }

    /// Removes the first field named `name` and returns it.
    pub fn remove(&mut self, name: &str) -> Option<Field> {
        let index = self.fields.iter().position(|field| field.name() == name)?;
        Some(self.fields.remove(index))
    }

    /// The first field named `name` if it has type `expected`.
    fn typed(&self, name: &str, expected: FieldType) -> Result<&FieldValue, FieldError> {
        let field = self.field(name).ok_or_else(|| missing(name))?;
        if field.field_type() == expected {
            Ok(field.value())
        } else {
            Err(wrong_type(name, expected, field.field_type()))
        }
    }

    /// The first field named `name`, which must be a STRING of valid UTF-8.
    pub fn get_string(&self, name: &str) -> Result<&str, FieldError> {
        self.get_text(name)?
            .as_str()
            .ok_or_else(|| FieldError::NotUtf8 {
                name: name.to_owned(),
            })
    }

    /// The first field named `name` if it is a STRING of valid UTF-8; `None` otherwise.
    pub fn try_string(&self, name: &str) -> Option<&str> {
        self.field(name).and_then(Field::as_str)
    }

    /// The first field named `name`, which must be a STRING; valid UTF-8 or not.
    pub fn get_text(&self, name: &str) -> Result<&Text, FieldError> {
        match self.typed(name, FieldType::String)? {
            FieldValue::String(text) => Ok(text),
            other => Err(wrong_type(name, FieldType::String, other.field_type())),
        }
    }

    /// The first field named `name` if it is a STRING (valid UTF-8 or not); `None` otherwise.
    pub fn try_text(&self, name: &str) -> Option<&Text> {
        self.field(name).and_then(Field::as_text)
    }

    /// The first field named `name`, which must be a BLOB.
    pub fn get_blob(&self, name: &str) -> Result<&Bytes, FieldError> {
        match self.typed(name, FieldType::Blob)? {
            FieldValue::Blob(blob) => Ok(blob),
            other => Err(wrong_type(name, FieldType::Blob, other.field_type())),
        }
    }

    /// The first field named `name` if it is a BLOB; `None` otherwise.
    pub fn try_blob(&self, name: &str) -> Option<&Bytes> {
        self.field(name).and_then(Field::as_blob)
    }

    /// The first field named `name`, which must be a nested MESSAGE.
    pub fn get_message(&self, name: &str) -> Result<&Message, FieldError> {
        match self.typed(name, FieldType::Message)? {
            FieldValue::Message(message) => Ok(message),
            other => Err(wrong_type(name, FieldType::Message, other.field_type())),
        }
    }

    /// The first field named `name` if it is a nested MESSAGE; `None` otherwise.
    pub fn try_message(&self, name: &str) -> Option<&Message> {
        self.field(name).and_then(Field::as_message)
    }

    /// Decodes a Message from `body`, which starts with the field count. Strings and blobs in the
    /// result share `body`'s buffer. Bytes after the Message are ignored (SPEC §1).
    ///
    /// Nesting deeper than [`MAX_DEPTH`](crate::MAX_DEPTH) is an error; nothing is allocated in
    /// proportion to a count or length read from the input beyond what the input itself holds.
    pub fn decode(body: &Bytes) -> Result<Message, DecodeError> {
        body::decode(body, 0)
    }

    /// Checks that `body` decodes — every rule of [`Message::decode`] — without building the
    /// Message or allocating. A body that validates always decodes.
    pub fn validate(body: &[u8]) -> Result<(), DecodeError> {
        body::validate(body, 0)
    }

    /// Decodes a Message from a borrowed slice (copies it once; prefer [`Message::decode`]).
    pub fn decode_from_slice(body: &[u8]) -> Result<Message, DecodeError> {
        body::decode(&Bytes::copy_from_slice(body), 0)
    }

    /// The number of bytes [`Message::encode`] writes. Fails if the message cannot be encoded
    /// (too deep, or a value too long for an `i32` prefix).
    pub fn encoded_len(&self) -> Result<usize, EncodeError> {
        body::measure(self)
    }

    /// Appends the encoded Message (field count and fields) to `out`.
    pub fn encode<B: BufMut>(&self, out: &mut B) -> Result<(), EncodeError> {
        body::measure(self)?;
        body::write(self, out);
        Ok(())
    }

    /// The encoded Message as a new buffer.
    pub fn to_bytes(&self) -> Result<Bytes, EncodeError> {
        let mut out = Vec::with_capacity(body::measure(self)?);
        body::write(self, &mut out);
        Ok(Bytes::from(out))
    }
}

fn missing(name: &str) -> FieldError {
    FieldError::Missing {
        name: name.to_owned(),
    }
}

fn wrong_type(name: &str, expected: FieldType, actual: FieldType) -> FieldError {
    FieldError::WrongType {
        name: name.to_owned(),
        expected,
        actual,
    }
}

impl<'a> IntoIterator for &'a Message {
    type Item = &'a Field;
    type IntoIter = std::slice::Iter<'a, Field>;

    fn into_iter(self) -> Self::IntoIter {
        self.fields.iter()
    }
}

impl IntoIterator for Message {
    type Item = Field;
    type IntoIter = std::vec::IntoIter<Field>;

    fn into_iter(self) -> Self::IntoIter {
        self.fields.into_iter()
    }
}

impl FromIterator<Field> for Message {
    fn from_iter<I: IntoIterator<Item = Field>>(iter: I) -> Self {
        Message {
            fields: iter.into_iter().collect(),
        }
    }
}

impl Extend<Field> for Message {
    fn extend<I: IntoIterator<Item = Field>>(&mut self, iter: I) {
        self.fields.extend(iter);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Message {
        Message::new()
            .add_i32("n", 1)
            .add_string("s", "first")
            .add_i32("n", 2)
            .add_f64("d", 1.5)
            .add_blob("b", Bytes::from_static(b"\x00\x01"))
            .add_message("m", Message::new().add_bool("t", true))
    }

    #[test]
    fn lookup_returns_first_and_iteration_sees_all() {
        let message = sample();
        assert_eq!(message.get_i32("n"), Ok(1));
        let all: Vec<i32> = message.iter().filter_map(Field::as_i32).collect();
        assert_eq!(all, vec![1, 2]);
        assert_eq!(message.len(), 6);
    }

    #[test]
    fn wrong_type_names_field_and_both_types() {
        let message = sample();
        let error = message.get_i64("n").unwrap_err();
        assert_eq!(error.to_string(), "field `n` is int32, not int64");
        assert_eq!(
            message.get_f64("missing").unwrap_err().to_string(),
            "no field named `missing`"
        );
        assert_eq!(message.try_i64("n"), None);
        assert_eq!(message.try_i32("n"), Some(1));
        assert_eq!(message.try_i32("missing"), None);
    }

    #[test]
    fn lookup_is_case_sensitive() {
        let message = Message::new().add_i32("Name", 1);
        assert!(message.field("name").is_none());
        assert!(message.field("Name").is_some());
    }

    #[test]
    fn replace_changes_first_only_and_may_change_type() {
        let mut message = sample();
        assert_eq!(message.replace("n", "now text"), Ok(FieldValue::I32(1)));
        assert_eq!(message.get_string("n"), Ok("now text"));
        assert_eq!(message.fields()[2].as_i32(), Some(2));
        assert!(matches!(
            message.replace("zz", 1),
            Err(FieldError::Missing { .. })
        ));
    }

    #[test]
    fn nested_and_field_types() {
        let message = sample();
        assert_eq!(message.field_type("m"), Some(FieldType::Message));
        assert_eq!(message.get_message("m").unwrap().get_bool("t"), Ok(true));
        assert_eq!(message.get_blob("b").unwrap().as_ref(), b"\x00\x01");
    }

    #[test]
    fn invalid_utf8_string_is_typed_error_with_raw_bytes() {
        let mut message = Message::new();
        message.push("s", Text::from_bytes(Bytes::from_static(b"\xc3\x28")));
        assert_eq!(
            message.get_string("s"),
            Err(FieldError::NotUtf8 { name: "s".into() })
        );
        assert_eq!(message.get_text("s").unwrap().as_bytes(), b"\xc3\x28");
        assert_eq!(message.try_string("s"), None);
    }

    #[test]
    fn equality_and_clone() {
        let message = sample();
        let copy = message.clone();
        assert_eq!(message, copy);
        assert_ne!(message, copy.clone().add_i32("x", 0));
        let nan = Message::new().add_f64("x", f64::NAN);
        assert_eq!(nan, nan.clone());
    }

    #[test]
    fn empty_message_does_not_allocate() {
        assert_eq!(Message::new().fields.capacity(), 0);
        assert_eq!(Message::default().fields.capacity(), 0);
    }
}
