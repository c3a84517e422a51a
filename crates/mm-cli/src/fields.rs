//! Fields given on the command line: `name=value` (type inferred) and `name:TYPE=value`.
//!
//! Inference: `true`/`false` is a bool; an integer is an i32 when it fits, else an i64, else a
//! u64; a decimal number (`1.5`, `2e3`) is an f64; anything else is a string. Explicit types:
//! `i32`, `u32`, `i64`, `u64`, `f64`, `bool`, `str`, and `blob` (hex, or `@FILE` for a file's
//! bytes). The types are spelled as `mm listen` prints them, so its output can be pasted back.

use anyhow::{Context, bail};
use messaging_mesh::{FieldValue, Message};

/// The explicit types, for error messages and help.
pub const TYPES: &str = "i32, u32, i64, u64, f64, bool, str, blob";

/// Builds a message from `FIELD` arguments, in order.
pub fn message_from_args(args: &[String]) -> anyhow::Result<Message> {
    let mut message = Message::with_capacity(args.len());
    for arg in args {
        let (name, value) = parse_field(arg)?;
        message.push(name, value);
    }
    Ok(message)
}

/// Builds the message to send from `FIELD` arguments or `--json` (not both).
pub fn message_from(fields: &[String], json: Option<&str>) -> anyhow::Result<Message> {
    if json.is_some() && !fields.is_empty() {
        bail!("give the message either as FIELD arguments or with --json, not both");
    }
    match json {
        Some(json) => crate::json::message_from_json(json),
        None => message_from_args(fields),
    }
}

/// One `name=value` or `name:TYPE=value` argument.
pub fn parse_field(arg: &str) -> anyhow::Result<(String, FieldValue)> {
    let Some((left, value)) = arg.split_once('=') else {
        bail!("field `{arg}` has no `=`: write name=value or name:TYPE=value");
    };
    let (name, explicit) = match left.rsplit_once(':') {
        Some((name, type_name)) => (name, Some(type_name)),
        None => (left, None),
    };
    let value = match explicit {
        None => infer(value).with_context(|| format!("field `{name}`"))?,
        Some(type_name) => typed(type_name, value).with_context(|| format!("field `{name}`"))?,
    };
    Ok((name.to_owned(), value))
}

/// The value of `name=value`, type inferred. A number too large for any type is an error, not
/// an infinity.
pub fn infer(value: &str) -> anyhow::Result<FieldValue> {
    match value {
        "true" => return Ok(FieldValue::Bool(true)),
        "false" => return Ok(FieldValue::Bool(false)),
        _ => {}
    }
    if let Ok(integer) = value.parse::<i64>() {
        return Ok(match i32::try_from(integer) {
            Ok(small) => FieldValue::I32(small),
            Err(_) => FieldValue::I64(integer),
        });
    }
    if let Ok(unsigned) = value.parse::<u64>() {
        return Ok(FieldValue::U64(unsigned));
    }
    let numeric = value.bytes().any(|byte| byte.is_ascii_digit())
        && value
            .bytes()
            .all(|byte| byte.is_ascii_digit() || matches!(byte, b'.' | b'e' | b'E' | b'+' | b'-'));
    if numeric && let Ok(float) = value.parse::<f64>() {
        return finite(float, value);
    }
    Ok(FieldValue::String(value.into()))
}

/// A parsed double, refused if a finite literal overflowed to infinity (`1e400`); `inf` and
/// `nan` spelled out are kept.
fn finite(float: f64, text: &str) -> anyhow::Result<FieldValue> {
    let spelled_out = text
        .trim_start_matches(['+', '-'])
        .chars()
        .all(|c| c.is_ascii_alphabetic());
    if float.is_finite() || spelled_out {
        Ok(FieldValue::F64(float))
    } else {
        bail!("`{text}` is out of range for f64")
    }
}

/// The value of `name:TYPE=value`.
fn typed(type_name: &str, value: &str) -> anyhow::Result<FieldValue> {
    let invalid = || format!("`{value}` is not a valid {type_name}");
    Ok(match type_name {
        "i32" => FieldValue::I32(value.parse().with_context(invalid)?),
        "u32" => FieldValue::U32(value.parse().with_context(invalid)?),
        "i64" => FieldValue::I64(value.parse().with_context(invalid)?),
        "u64" => FieldValue::U64(value.parse().with_context(invalid)?),
        "f64" => finite(value.parse().with_context(invalid)?, value)?,
        "bool" => match value {
            "true" => FieldValue::Bool(true),
            "false" => FieldValue::Bool(false),
            _ => bail!("`{value}` is not a bool (true or false)"),
        },
        "str" => FieldValue::String(value.into()),
        "blob" => FieldValue::Blob(blob(value)?.into()),
        other => bail!("unknown type `{other}` (known: {TYPES})"),
    })
}

/// A blob given as hex (`0102ff`, optionally `0x`-prefixed) or `@FILE`.
fn blob(value: &str) -> anyhow::Result<Vec<u8>> {
    if let Some(path) = value.strip_prefix('@') {
        return std::fs::read(path).with_context(|| format!("cannot read blob file {path}"));
    }
    let hex = value.strip_prefix("0x").unwrap_or(value);
    if !hex.len().is_multiple_of(2) {
        bail!("blob `{value}` has an odd number of hex digits (or use @FILE)");
    }
    (0..hex.len())
        .step_by(2)
        .map(|index| {
            hex.get(index..index + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .with_context(|| format!("blob `{value}` is not hex (or use @FILE)"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One line per case: argument, expected rendering with types.
    const CASES: &[(&str, &str)] = &[
        ("n=42", "{n:i32=42}"),
        ("n=-3000000000", "{n:i64=-3000000000}"),
        ("n=18446744073709551615", "{n:u64=18446744073709551615}"),
        ("px=123.4", "{px:f64=123.4}"),
        ("x=1e3", "{x:f64=1000.0}"),
        ("ok=true", "{ok:bool=true}"),
        ("s=hello world", r#"{s:str="hello world"}"#),
        ("s=", r#"{s:str=""}"#),
        ("v=1.2.3", r#"{v:str="1.2.3"}"#),
        ("nan=nan", r#"{nan:str="nan"}"#),
        ("s:str=42", r#"{s:str="42"}"#),
        ("n:u32=7", "{n:u32=7}"),
        ("n:i64=7", "{n:i64=7}"),
        ("n:u64=7", "{n:u64=7}"),
        ("d:f64=7", "{d:f64=7.0}"),
        ("b:bool=false", "{b:bool=false}"),
        ("b:blob=0102ff", "{b:blob=0x0102ff}"),
        ("b:blob=0xABCD", "{b:blob=0xabcd}"),
        ("eq=a=b", r#"{eq:str="a=b"}"#),
        ("=empty name", r#"{:str="empty name"}"#),
    ];

    #[test]
    fn field_arguments() {
        for (arg, expected) in CASES {
            let message = message_from_args(&[arg.to_string()]).unwrap();
            assert_eq!(
                message.render().with_types(true).to_string(),
                *expected,
                "{arg}"
            );
        }
    }

    #[test]
    fn bad_field_arguments_say_what_is_wrong() {
        let error = |arg: &str| format!("{:#}", parse_field(arg).unwrap_err());
        assert!(error("novalue").contains("has no `=`"));
        assert_eq!(
            error("n:i32=abc"),
            "field `n`: `abc` is not a valid i32: invalid digit found in string"
        );
        assert!(error("n:int=1").contains("unknown type `int` (known: i32"));
        assert_eq!(
            error("x=1e400"),
            "field `x`: `1e400` is out of range for f64"
        );
        assert_eq!(
            error("x:f64=-1e999"),
            "field `x`: `-1e999` is out of range for f64"
        );
        assert!(parse_field("x:f64=inf").is_ok() && parse_field("x:f64=-inf").is_ok());
        assert!(error("b:blob=abc").contains("odd number"));
        assert!(error("b:blob=zz").contains("not hex"));
        assert!(error("b:bool=yes").contains("not a bool"));
        assert!(error("b:blob=@/nonexistent/file").contains("cannot read blob file"));
    }
}
