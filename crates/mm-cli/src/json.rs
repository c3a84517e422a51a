//! Messages as JSON, both ways, keeping field order.
//!
//! Out (`mm listen --json`, `mm stats --json`): a message is an object with its fields in wire
//! order. A name that repeats becomes one array, at the place of its first field. Integers and
//! doubles are numbers (a non-finite double is the string `"NaN"`, `"inf"` or `"-inf"`), blobs
//! are lowercase hex strings, strings that are not UTF-8 are shown with U+FFFD.
//!
//! In (`mm send --json`): an object; values typed as on the command line (an integer is an i32
//! when it fits, else an i64, else a u64; a number with a fraction or exponent is an f64), nested
//! objects are nested messages, and an array gives one field per element under the same name.
//!
//! Written by hand rather than through `serde_json::Value`, whose maps are sorted by key unless a
//! crate-wide feature is switched on: field order is part of a message.

use std::fmt::{self, Write};

use anyhow::{Context, bail};
use messaging_mesh::{FieldValue, Message};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

/// Writes `message` as one JSON object.
pub fn write_message(out: &mut String, message: &Message) {
    out.push('{');
    let mut done: Vec<&[u8]> = Vec::new();
    let mut first = true;
    for field in message {
        let name = field.name().as_bytes();
        if done.contains(&name) {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        write_string(out, &field.name().to_string_lossy());
        out.push(':');
        let same: Vec<&FieldValue> = message
            .iter()
            .filter(|other| other.name().as_bytes() == name)
            .map(|other| other.value())
            .collect();
        if same.len() == 1 {
            write_value(out, field.value());
        } else {
            done.push(name);
            out.push('[');
            for (index, value) in same.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_value(out, value);
            }
            out.push(']');
        }
    }
    out.push('}');
}

fn write_value(out: &mut String, value: &FieldValue) {
    // Writing to a String cannot fail.
    let _ = match value {
        FieldValue::String(text) => {
            write_string(out, &text.to_string_lossy());
            Ok(())
        }
        FieldValue::I32(value) => write!(out, "{value}"),
        FieldValue::U32(value) => write!(out, "{value}"),
        FieldValue::I64(value) => write!(out, "{value}"),
        FieldValue::U64(value) => write!(out, "{value}"),
        FieldValue::F64(value) if value.is_nan() => write!(out, "\"NaN\""),
        FieldValue::F64(value) if value.is_infinite() => {
            write!(out, "\"{}inf\"", if *value < 0.0 { "-" } else { "" })
        }
        FieldValue::F64(value) => write!(out, "{value:?}"),
        FieldValue::Bool(value) => write!(out, "{value}"),
        FieldValue::Blob(blob) => {
            out.push('"');
            for byte in blob.iter() {
                let _ = write!(out, "{byte:02x}");
            }
            out.push('"');
            Ok(())
        }
        FieldValue::Message(nested) => {
            write_message(out, nested);
            Ok(())
        }
    };
}

/// Writes a JSON string literal.
pub fn write_string(out: &mut String, text: &str) {
    // serde_json escapes exactly as JSON requires; serialising a &str cannot fail.
    out.push_str(&serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned()));
}

/// Parses `--json` input into a message.
pub fn message_from_json(text: &str) -> anyhow::Result<Message> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = Json::deserialize(&mut deserializer).context("--json is not valid JSON")?;
    deserializer
        .end()
        .context("--json has text after the object")?;
    match value {
        Json::Object(fields) => to_message(fields),
        _ => bail!("--json must be a JSON object, like '{{\"sym\":\"IBM\",\"px\":123.4}}'"),
    }
}

fn to_message(fields: Vec<(String, Json)>) -> anyhow::Result<Message> {
    let mut message = Message::with_capacity(fields.len());
    for (name, value) in fields {
        match value {
            Json::Array(items) => {
                for item in items {
                    message.push(name.as_str(), to_value(&name, item)?);
                }
            }
            other => {
                message.push(name.as_str(), to_value(&name, other)?);
            }
        }
    }
    Ok(message)
}

fn to_value(name: &str, value: Json) -> anyhow::Result<FieldValue> {
    Ok(match value {
        Json::Null => bail!("field `{name}` is null: messages have no null"),
        Json::Bool(value) => FieldValue::Bool(value),
        Json::Signed(value) => match i32::try_from(value) {
            Ok(small) => FieldValue::I32(small),
            Err(_) => FieldValue::I64(value),
        },
        Json::Unsigned(value) => match (i32::try_from(value), i64::try_from(value)) {
            (Ok(small), _) => FieldValue::I32(small),
            (_, Ok(large)) => FieldValue::I64(large),
            _ => FieldValue::U64(value),
        },
        Json::Float(value) => FieldValue::F64(value),
        Json::String(value) => FieldValue::String(value.into()),
        Json::Object(fields) => FieldValue::Message(to_message(fields)?),
        Json::Array(_) => bail!("field `{name}` holds an array inside an array"),
    })
}

/// A JSON value with object fields kept in order.
enum Json {
    Null,
    Bool(bool),
    Signed(i64),
    Unsigned(u64),
    Float(f64),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl<'de> de::Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, value: bool) -> Result<Json, E> {
        Ok(Json::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Json, E> {
        Ok(Json::Signed(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Json, E> {
        Ok(Json::Unsigned(value))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Json, E> {
        Ok(Json::Float(value))
    }

    fn visit_str<E>(self, value: &str) -> Result<Json, E> {
        Ok(Json::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Json, E> {
        Ok(Json::String(value))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut fields = Vec::new();
        while let Some((name, value)) = map.next_entry::<String, Json>()? {
            fields.push((name, value));
        }
        Ok(Json::Object(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_keeps_order_types_and_nesting() {
        let message = message_from_json(
            r#"{"z":1,"a":"x","big":5000000000,"huge":18446744073709551615,"neg":-1,
                "px":1.5,"ok":true,"meta":{"v":2},"rep":[1,2]}"#,
        )
        .unwrap();
        assert_eq!(
            message.render().with_types(true).to_string(),
            r#"{z:i32=1 a:str="x" big:i64=5000000000 huge:u64=18446744073709551615 neg:i32=-1 px:f64=1.5 ok:bool=true meta:msg={v:i32=2} rep:i32=1 rep:i32=2}"#
        );
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        let error = |text: &str| format!("{:#}", message_from_json(text).unwrap_err());
        assert!(error("[1]").contains("must be a JSON object"));
        assert!(error("{").contains("not valid JSON"));
        assert!(error(r#"{"a":null}"#).contains("field `a` is null"));
        assert!(error(r#"{"a":[[1]]}"#).contains("array inside an array"));
    }

    #[test]
    fn output_keeps_order_and_groups_repeated_names() {
        let message = Message::new()
            .add_string("s", "a\"b")
            .add_i32("n", 1)
            .add_f64("d", 0.5)
            .add_i32("n", 2)
            .add_blob("b", vec![1u8, 255])
            .add_f64("nan", f64::NAN)
            .add_message("m", Message::new().add_bool("t", true));
        let mut out = String::new();
        write_message(&mut out, &message);
        assert_eq!(
            out,
            r#"{"s":"a\"b","n":[1,2],"d":0.5,"b":"01ff","nan":"NaN","m":{"t":true}}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed["n"][1], 2);
    }
}
