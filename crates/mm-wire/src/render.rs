//! Human rendering of Messages, in the style of RV's listen output.
//!
//! * `{}` — one line: `{sym="IBM" px=123.4 meta={seq=7}}`.
//! * `{:#}` — one field per line, nested messages indented by four spaces.
//! * [`Message::render`] with [`Render::with_types`] adds each field's type, spelled as the
//!   `mm send` command spells types (`px:f64=123.4`).
//!
//! Strings are quoted; `"`, `\` and control characters are escaped (`\n`, `\t`, `\u{7f}`), every
//! other character is shown as itself. Strings that are not UTF-8 show their bytes escaped
//! (`"ab\xff"`); blobs show up to [`BLOB_PREVIEW_BYTES`] bytes in hex and their length.

use std::fmt::{self, Write};

use crate::{Field, FieldType, FieldValue, Message};

/// How many bytes of a blob are shown.
pub const BLOB_PREVIEW_BYTES: usize = 32;

impl FieldType {
    /// The short type name used by `mm send` and typed rendering: `str`, `i32`, `u32`, `i64`,
    /// `u64`, `f64`, `msg`, `bool`, `blob`.
    pub fn short_name(self) -> &'static str {
        match self {
            FieldType::String => "str",
            FieldType::I32 => "i32",
            FieldType::U32 => "u32",
            FieldType::I64 => "i64",
            FieldType::U64 => "u64",
            FieldType::F64 => "f64",
            FieldType::Message => "msg",
            FieldType::Bool => "bool",
            FieldType::Blob => "blob",
        }
    }
}

/// A Message formatter with options; see the module doc.
#[derive(Debug, Clone, Copy)]
pub struct Render<'a> {
    message: &'a Message,
    with_types: bool,
}

impl Message {
    /// A formatter for this message; `{}` on it is the same as on the message.
    pub fn render(&self) -> Render<'_> {
        Render {
            message: self,
            with_types: false,
        }
    }
}

impl Render<'_> {
    /// Shows each field's type (`name:type=value`).
    #[must_use]
    pub fn with_types(mut self, with_types: bool) -> Self {
        self.with_types = with_types;
        self
    }

    fn write(&self, out: &mut fmt::Formatter<'_>, message: &Message, depth: usize) -> fmt::Result {
        let indented = out.alternate();
        if message.is_empty() {
            return out.write_str("{}");
        }
        out.write_char('{')?;
        for (index, field) in message.iter().enumerate() {
            if indented {
                out.write_char('\n')?;
                indent(out, depth + 1)?;
            } else if index > 0 {
                out.write_char(' ')?;
            }
            self.write_field(out, field, depth)?;
        }
        if indented {
            out.write_char('\n')?;
            indent(out, depth)?;
        }
        out.write_char('}')
    }

    fn write_field(
        &self,
        out: &mut fmt::Formatter<'_>,
        field: &Field,
        depth: usize,
    ) -> fmt::Result {
        write!(out, "{}", field.name())?;
        if self.with_types {
            write!(out, ":{}", field.field_type().short_name())?;
        }
        out.write_char('=')?;
        match field.value() {
            FieldValue::String(text) => match text.as_str() {
                Some(text) => write_quoted(out, text),
                None => write!(out, "\"{}\"", text.as_bytes().escape_ascii()),
            },
            FieldValue::I32(value) => write!(out, "{value}"),
            FieldValue::U32(value) => write!(out, "{value}"),
            FieldValue::I64(value) => write!(out, "{value}"),
            FieldValue::U64(value) => write!(out, "{value}"),
            FieldValue::F64(value) => write!(out, "{value:?}"),
            FieldValue::Bool(value) => write!(out, "{value}"),
            FieldValue::Blob(blob) => {
                out.write_str("0x")?;
                for byte in blob.iter().take(BLOB_PREVIEW_BYTES) {
                    write!(out, "{byte:02x}")?;
                }
                if blob.len() > BLOB_PREVIEW_BYTES {
                    write!(out, "…({} bytes)", blob.len())?;
                }
                Ok(())
            }
            FieldValue::Message(nested) => self.write(out, nested, depth + 1),
        }
    }
}

/// Writes `text` in double quotes, escaping only what would be ambiguous or invisible.
fn write_quoted(out: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    out.write_char('"')?;
    for character in text.chars() {
        match character {
            '"' => out.write_str("\\\"")?,
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            control if control.is_control() => write!(out, "\\u{{{:x}}}", control as u32)?,
            other => out.write_char(other)?,
        }
    }
    out.write_char('"')
}

fn indent(out: &mut fmt::Formatter<'_>, depth: usize) -> fmt::Result {
    for _ in 0..depth {
        out.write_str("    ")?;
    }
    Ok(())
}

impl fmt::Display for Render<'_> {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(out, self.message, 0)
    }
}

impl fmt::Display for Message {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.render().write(out, self, 0)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use crate::Text;

    use super::*;

    fn sample() -> Message {
        Message::new()
            .add_string("s", "a\"b")
            .add_i32("n", -1)
            .add_f64("d", 1.0)
            .add_bool("t", true)
            .add_blob("b", Bytes::from_static(&[1, 2, 0xff]))
            .add_message("m", Message::new().add_u64("u", 7))
    }

    #[test]
    fn one_line() {
        assert_eq!(
            sample().to_string(),
            r#"{s="a\"b" n=-1 d=1.0 t=true b=0x0102ff m={u=7}}"#
        );
        assert_eq!(Message::new().to_string(), "{}");
    }

    #[test]
    fn indented() {
        assert_eq!(
            format!("{:#}", sample()),
            "{\n    s=\"a\\\"b\"\n    n=-1\n    d=1.0\n    t=true\n    b=0x0102ff\n    m={\n        u=7\n    }\n}"
        );
    }

    #[test]
    fn typed() {
        assert_eq!(
            sample().render().with_types(true).to_string(),
            r#"{s:str="a\"b" n:i32=-1 d:f64=1.0 t:bool=true b:blob=0x0102ff m:msg={u:u64=7}}"#
        );
    }

    #[test]
    fn strings_escape_only_what_is_needed() {
        let message = Message::new().add_string("s", "e\u{301} \"q\" \\ \n\t\u{7f} 漢字 🎉");
        assert_eq!(
            message.to_string(),
            "{s=\"e\u{301} \\\"q\\\" \\\\ \\n\\t\\u{7f} 漢字 🎉\"}"
        );
    }

    #[test]
    fn long_blob_and_invalid_string() {
        let mut message = Message::new().add_blob("b", vec![0u8; 40]);
        message.push("s", Text::from_bytes(Bytes::from_static(b"x\xff")));
        let text = message.to_string();
        assert!(text.contains("…(40 bytes)"), "{text}");
        assert!(text.ends_with(r#"s="x\xff"}"#), "{text}");
    }
}
