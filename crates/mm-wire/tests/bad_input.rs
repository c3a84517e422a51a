//! Bad input gives a typed error naming what was wrong and where — never a panic, never an
//! allocation sized by the input.

use bytes::{BufMut, Bytes};
use mm_wire::{DEFAULT_MAX_FRAME, DecodeError, Frame, FrameDecoder, Message, frame_length};

/// A SEND_MESSAGE frame to `A` with the given raw body.
fn frame_with_body(body: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    let length = 4 + 4 + 4 + 1 + 4 + 1 + body.len();
    frame.put_i32_le(length as i32);
    frame.put_u32_le(0);
    frame.put_i32_le(1);
    frame.put_u8(b'A');
    frame.put_i32_le(0);
    frame.put_u8(6);
    frame.put_slice(body);
    frame
}

fn decode_body(body: &[u8]) -> Result<Message, DecodeError> {
    let bytes = Bytes::from(frame_with_body(body));
    Frame::parse(bytes)?.message()
}

/// A body: count 1, one field named "f" of `type_byte`, then `value`.
fn one_field(type_byte: u8, value: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.put_i32_le(1);
    body.put_i32_le(1);
    body.put_u8(b'f');
    body.put_u8(type_byte);
    body.put_slice(value);
    body
}

const BODY_OFFSET: usize = 18;

#[test]
fn lengths_out_of_range() {
    for (length, expected) in [
        (-1, DecodeError::FrameTooShort { length: -1 }),
        (i32::MIN, DecodeError::FrameTooShort { length: i32::MIN }),
        (0, DecodeError::FrameTooShort { length: 0 }),
        (20, DecodeError::FrameTooShort { length: 20 }),
        (
            1001,
            DecodeError::FrameTooLarge {
                length: 1001,
                max: 1000,
            },
        ),
        (
            i32::MAX,
            DecodeError::FrameTooLarge {
                length: i32::MAX as u32,
                max: 1000,
            },
        ),
    ] {
        assert_eq!(
            frame_length(&length.to_le_bytes(), 1000),
            Err(expected),
            "{length}"
        );
        let mut decoder = FrameDecoder::new(1000);
        decoder.feed(&length.to_le_bytes());
        assert_eq!(decoder.next_frame(), Err(expected));
        // Nothing was reserved for the rejected length.
        assert!(decoder.buffer_mut().capacity() <= 64);
    }
    assert_eq!(frame_length(&21i32.to_le_bytes(), 1000), Ok(None));
    assert_eq!(frame_length(&1000i32.to_le_bytes(), 1000), Ok(None));
}

#[test]
fn error_messages_say_what_and_where() {
    assert_eq!(
        DecodeError::FrameTooLarge {
            length: 70_000_000,
            max: DEFAULT_MAX_FRAME
        }
        .to_string(),
        "frame length 70000000 exceeds the maximum of 67108864 bytes"
    );
    let error = decode_body(&one_field(9, &[5, 0, 0, 0, 1])).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "blob value at byte {} runs past the end of the frame",
            BODY_OFFSET + 10
        )
    );
}

#[test]
fn negative_field_count() {
    assert_eq!(
        decode_body(&(-1i32).to_le_bytes()),
        Err(DecodeError::Negative {
            what: "field count",
            value: -1,
            offset: BODY_OFFSET
        })
    );
}

#[test]
fn huge_field_count_is_truncation() {
    assert_eq!(
        decode_body(&i32::MAX.to_le_bytes()),
        Err(DecodeError::Truncated {
            what: "field name",
            offset: BODY_OFFSET + 4
        })
    );
}

#[test]
fn missing_body_is_truncation() {
    assert_eq!(
        decode_body(&[0, 0, 0]),
        Err(DecodeError::Truncated {
            what: "field count",
            offset: BODY_OFFSET
        })
    );
}

#[test]
fn negative_string_and_blob_lengths() {
    for (type_byte, what) in [(1, "string value"), (9, "blob value")] {
        assert_eq!(
            decode_body(&one_field(type_byte, &(-7i32).to_le_bytes())),
            Err(DecodeError::Negative {
                what,
                value: -7,
                offset: BODY_OFFSET + 10
            })
        );
    }
}

#[test]
fn truncated_values_of_every_type() {
    for (type_byte, what) in [
        (1, "string value"),
        (2, "int32 value"),
        (3, "uint32 value"),
        (4, "int64 value"),
        (5, "uint64 value"),
        (6, "double value"),
        (7, "field count"),
        (8, "bool value"),
        (9, "blob value"),
    ] {
        assert_eq!(
            decode_body(&one_field(type_byte, &[])),
            Err(DecodeError::Truncated {
                what,
                offset: BODY_OFFSET + 10
            }),
            "type {type_byte}"
        );
    }
}

#[test]
fn invalid_field_types() {
    for type_byte in [0u8, 10, 11, 200, 255] {
        assert_eq!(
            decode_body(&one_field(type_byte, &[0; 8])),
            Err(DecodeError::InvalidFieldType {
                type_byte,
                offset: BODY_OFFSET + 9
            })
        );
    }
}

#[test]
fn too_deep_nesting_of_any_depth_is_an_error_not_a_stack_overflow() {
    for levels in [65usize, 100, 10_000] {
        let mut body = Vec::new();
        for _ in 0..levels - 1 {
            body.extend_from_slice(&one_field(7, &[]));
        }
        body.put_i32_le(0);
        assert!(
            matches!(
                decode_body(&body),
                Err(DecodeError::TooDeep { max: 64, .. })
            ),
            "{levels}"
        );
    }
}

#[test]
fn header_that_does_not_fit_the_frame() {
    // Declared length 25, reply subject length 100.
    let mut frame = Vec::new();
    frame.put_i32_le(25);
    frame.put_u32_le(0);
    frame.put_i32_le(1);
    frame.put_u8(b'A');
    frame.put_i32_le(100);
    frame.resize(25, 0);
    let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME);
    decoder.feed(&frame);
    assert_eq!(
        decoder.next_frame(),
        Err(DecodeError::Truncated {
            what: "reply subject",
            offset: 13
        })
    );
}

#[test]
fn trailing_bytes_after_the_message_are_ignored() {
    let mut body = one_field(2, &7i32.to_le_bytes());
    body.extend_from_slice(b"trailing");
    assert_eq!(decode_body(&body), Ok(Message::new().add_i32("f", 7)));
}

#[test]
fn bool_reads_only_one_as_true() {
    assert_eq!(
        decode_body(&one_field(8, &[1])).unwrap().get_bool("f"),
        Ok(true)
    );
    assert_eq!(
        decode_body(&one_field(8, &[2])).unwrap().get_bool("f"),
        Ok(false)
    );
}

#[test]
fn invalid_utf8_string_still_decodes() {
    let mut value = Vec::new();
    value.put_i32_le(2);
    value.put_slice(b"\xff\xfe");
    let message = decode_body(&one_field(1, &value)).unwrap();
    assert!(message.get_string("f").is_err());
    assert_eq!(message.get_text("f").unwrap().as_bytes(), b"\xff\xfe");
}
