//! [`Text`]: a STRING value or field name — bytes that are meant to be UTF-8 (SPEC §4).

use std::borrow::Cow;
use std::fmt;
use std::hash::{Hash, Hasher};

use bytes::Bytes;

/// A string as it travels: bytes that are meant to be UTF-8 but are not guaranteed to be.
///
/// A STRING whose bytes are not valid UTF-8 must not make a Message undecodable (SPEC §4), so
/// decoded strings keep their raw bytes and remember whether those bytes are UTF-8 (checked once,
/// when the value is created). [`Text::as_str`] is `None` for invalid ones, [`Text::as_bytes`]
/// always works. Decoded values share the received frame's buffer: no copy.
///
/// Equality, ordering and hashing are byte-wise.
#[derive(Clone)]
pub struct Text {
    /// The raw bytes.
    bytes: Bytes,
    /// Whether `bytes` is valid UTF-8. Invariant: `utf8 == std::str::from_utf8(&bytes).is_ok()`.
    utf8: bool,
}

impl Text {
    /// An empty text.
    pub const fn new() -> Text {
        Text {
            bytes: Bytes::new(),
            utf8: true,
        }
    }

    /// A text pointing at a static string: no allocation.
    pub const fn from_static(text: &'static str) -> Text {
        Text {
            bytes: Bytes::from_static(text.as_bytes()),
            utf8: true,
        }
    }

    /// A text over raw bytes, which may or may not be UTF-8.
    pub fn from_bytes(bytes: Bytes) -> Text {
        let utf8 = std::str::from_utf8(&bytes).is_ok();
        Text { bytes, utf8 }
    }

    /// The text as `&str`, or `None` if its bytes are not valid UTF-8.
    #[inline]
    pub fn as_str(&self) -> Option<&str> {
        if self.utf8 {
            // SAFETY: `utf8` is true only when `bytes` was checked to be valid UTF-8 at
            // construction, and `bytes` is never mutated afterwards (Bytes is immutable).
            Some(unsafe { std::str::from_utf8_unchecked(&self.bytes) })
        } else {
            None
        }
    }

    /// The raw bytes, valid UTF-8 or not.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The shared buffer behind the text (a cheap clone of it).
    #[inline]
    pub fn to_bytes(&self) -> Bytes {
        self.bytes.clone()
    }

    /// Whether the bytes are valid UTF-8.
    #[inline]
    pub fn is_utf8(&self) -> bool {
        self.utf8
    }

    /// The text with invalid UTF-8 sequences replaced by U+FFFD.
    pub fn to_string_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.bytes)
    }

    /// Length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the text is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

impl Default for Text {
    fn default() -> Self {
        Text::new()
    }
}

impl From<&str> for Text {
    fn from(text: &str) -> Self {
        Text {
            bytes: Bytes::copy_from_slice(text.as_bytes()),
            utf8: true,
        }
    }
}

impl From<&String> for Text {
    fn from(text: &String) -> Self {
        Text::from(text.as_str())
    }
}

impl From<String> for Text {
    fn from(text: String) -> Self {
        Text {
            bytes: Bytes::from(text),
            utf8: true,
        }
    }
}

impl From<Cow<'_, str>> for Text {
    fn from(text: Cow<'_, str>) -> Self {
        match text {
            Cow::Borrowed(text) => Text::from(text),
            Cow::Owned(text) => Text::from(text),
        }
    }
}

impl From<Bytes> for Text {
    fn from(bytes: Bytes) -> Self {
        Text::from_bytes(bytes)
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for Text {}

impl PartialOrd for Text {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Text {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.bytes.cmp(&other.bytes)
    }
}

impl Hash for Text {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.bytes.hash(state);
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.bytes == other.as_bytes()
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.bytes == other.as_bytes()
    }
}

impl PartialEq<Text> for str {
    fn eq(&self, other: &Text) -> bool {
        other == self
    }
}

impl PartialEq<Text> for &str {
    fn eq(&self, other: &Text) -> bool {
        other == *self
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_str() {
            Some(text) => fmt::Debug::fmt(text, f),
            None => write!(f, "{:?} (not UTF-8)", self.bytes),
        }
    }
}

/// Shows the text, with U+FFFD for bytes that are not UTF-8.
impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_str() {
            Some(text) => f.write_str(text),
            None => f.write_str(&self.to_string_lossy()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_keeps_bytes() {
        let text = Text::from_bytes(Bytes::from_static(b"ok\xff"));
        assert!(!text.is_utf8());
        assert_eq!(text.as_str(), None);
        assert_eq!(text.as_bytes(), b"ok\xff");
        assert_eq!(text.to_string_lossy(), "ok\u{fffd}");
        assert_eq!(text.to_string(), "ok\u{fffd}");
    }

    #[test]
    fn compares_with_str() {
        let text = Text::from("abc");
        assert_eq!(text, "abc");
        assert_eq!("abc", text);
        assert_eq!(text, Text::from_static("abc"));
        assert_ne!(text, Text::from("abd"));
    }
}
