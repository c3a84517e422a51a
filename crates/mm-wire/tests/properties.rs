//! Property tests: arbitrary Messages round-trip through the frame codec split at arbitrary
//! points, and thousands of randomly corrupted valid frames never make a decoder panic.

use bytes::Bytes;
use mm_wire::subject::{matches, validate_pattern, validate_subject};
use mm_wire::{
    DEFAULT_MAX_FRAME, Field, FieldValue, Frame, FrameDecoder, Header, Message, Text, encode_frame,
};
use proptest::prelude::*;
use rand::{Rng, SeedableRng, rngs::StdRng};

fn arb_leaf() -> impl Strategy<Value = FieldValue> {
    prop_oneof![
        ".{0,12}".prop_map(|s: String| FieldValue::String(Text::from(s))),
        proptest::collection::vec(any::<u8>(), 0..12)
            .prop_map(|bytes| FieldValue::String(Text::from_bytes(Bytes::from(bytes)))),
        any::<i32>().prop_map(FieldValue::I32),
        any::<u32>().prop_map(FieldValue::U32),
        any::<i64>().prop_map(FieldValue::I64),
        any::<u64>().prop_map(FieldValue::U64),
        any::<u64>().prop_map(|bits| FieldValue::F64(f64::from_bits(bits))),
        any::<bool>().prop_map(FieldValue::Bool),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(|b| FieldValue::Blob(b.into())),
    ]
}

fn arb_message() -> impl Strategy<Value = Message> {
    let field = |value: BoxedStrategy<FieldValue>| {
        ("[a-z#_]{0,6}", value).prop_map(|(name, value)| Field::new(name, value))
    };
    let leaf_message =
        proptest::collection::vec(field(arb_leaf().boxed()), 0..6).prop_map(Message::from_iter);
    leaf_message.prop_recursive(4, 64, 6, move |inner| {
        let value = prop_oneof![
            3 => arb_leaf(),
            1 => inner.prop_map(FieldValue::Message),
        ]
        .boxed();
        proptest::collection::vec(field(value), 0..6).prop_map(Message::from_iter)
    })
}

proptest! {
    #[test]
    fn messages_round_trip_through_split_streams(
        messages in proptest::collection::vec(arb_message(), 1..4),
        split_seed in any::<u64>(),
        subject in "[A-Z]{1,5}(\\.[A-Z]{1,5}){0,3}",
    ) {
        let mut stream = Vec::new();
        for (id, message) in messages.iter().enumerate() {
            let header = Header::send_message(&subject)
                .with_reply_subject("_INBOX.x.1")
                .with_subscription_id(id as u32);
            encode_frame(&mut stream, &header, message).unwrap();
        }
        let mut rng = StdRng::seed_from_u64(split_seed);
        let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME);
        let mut decoded = Vec::new();
        let mut rest = stream.as_slice();
        while !rest.is_empty() {
            let take = rng.gen_range(1..=rest.len().min(64));
            decoder.feed(&rest[..take]);
            rest = &rest[take..];
            while let Some(frame) = decoder.next_frame().unwrap() {
                decoded.push(frame);
            }
        }
        prop_assert_eq!(decoded.len(), messages.len());
        for (id, (frame, message)) in decoded.iter().zip(&messages).enumerate() {
            prop_assert_eq!(frame.subscription_id(), id as u32);
            prop_assert_eq!(frame.subject(), subject.as_bytes());
            prop_assert_eq!(&frame.message().unwrap(), message);
            prop_assert_eq!(message.encoded_len().unwrap() + frame.header().body_offset, frame.len());
        }
    }

    #[test]
    fn body_round_trip(message in arb_message()) {
        let bytes = message.to_bytes().unwrap();
        prop_assert_eq!(Message::validate(&bytes), Ok(()));
        prop_assert_eq!(bytes.len(), message.encoded_len().unwrap());
        prop_assert_eq!(Message::decode(&bytes).unwrap(), message);
    }

    #[test]
    fn valid_literal_subjects_match_themselves(subject in "[a-zA-Z0-9_-]{1,4}(\\.[a-zA-Z0-9_-]{1,4}){0,5}") {
        prop_assert!(validate_subject(&subject).is_ok());
        prop_assert!(matches(&subject, &subject));
        let wildcard_last = match subject.rsplit_once('.') {
            Some((head, _)) => format!("{head}.*"),
            None => "*".to_owned(),
        };
        prop_assert!(validate_pattern(&wildcard_last).is_ok());
        prop_assert!(matches(&wildcard_last, &subject));
        prop_assert!(matches(">", &subject));
    }

    #[test]
    fn validation_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = mm_wire::subject::validate_pattern_bytes(&bytes);
        let _ = mm_wire::subject::validate_subject_bytes(&bytes);
        let _ = mm_wire::subject::validate_service_name_bytes(&bytes);
    }
}

fn vectors() -> Vec<Vec<u8>> {
    let directory = format!("{}/../../testdata/vectors", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| !path.ends_with("reference-message.bin"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| std::fs::read(path).unwrap())
        .collect()
}

/// Decodes everything it can out of `bytes`; must never panic.
fn decode_everything(bytes: &[u8], max_frame: u32) -> usize {
    let mut decoder = FrameDecoder::new(max_frame);
    decoder.feed(bytes);
    let mut frames = 0;
    while let Ok(Some(frame)) = decoder.next_frame() {
        frames += 1;
        let header = frame.header();
        let _ = mm_wire::subject::validate_pattern_bytes(header.subject);
        // Validation and decoding agree, error for error.
        assert_eq!(
            frame.validate_message(),
            frame.message().map(|_| ()),
            "validate and decode disagree on {frame:?}"
        );
        if let Ok(message) = frame.message() {
            // Decoded messages must re-encode and render.
            let _ = message.to_bytes().unwrap();
            let _ = message.to_string();
        }
    }
    let _ = Frame::parse(Bytes::copy_from_slice(bytes)).map(|frame| frame.message());
    let _ = Message::decode_from_slice(bytes);
    frames
}

#[test]
fn corrupted_frames_never_panic() {
    let vectors = vectors();
    let mut rng = StdRng::seed_from_u64(0x5eed_f00d);
    let mut decoded_frames = 0;
    for round in 0..20_000 {
        let mut bytes = vectors[round % vectors.len()].clone();
        match rng.gen_range(0..5) {
            0 => {
                // Flip a few random bytes.
                for _ in 0..rng.gen_range(1..4) {
                    let index = rng.gen_range(0..bytes.len());
                    bytes[index] = rng.r#gen();
                }
            }
            1 => {
                // Truncate, keeping the declared length (a lying prefix).
                let keep = rng.gen_range(0..bytes.len());
                bytes.truncate(keep);
            }
            2 => {
                // Truncate and fix the length prefix, so the frame is "complete" but short inside.
                let keep = rng.gen_range(21..=bytes.len());
                bytes.truncate(keep);
                bytes[..4].copy_from_slice(&(keep as i32).to_le_bytes());
            }
            3 => {
                // Overwrite a 4-byte window with an extreme length or count.
                let index = rng.gen_range(0..bytes.len().saturating_sub(4).max(1));
                let value: i32 = [i32::MIN, -1, 0, 1, 255, i32::MAX][rng.gen_range(0..6)];
                let end = (index + 4).min(bytes.len());
                bytes[index..end].copy_from_slice(&value.to_le_bytes()[..end - index]);
            }
            _ => {
                // Insert random bytes in the middle and fix the prefix.
                let index = rng.gen_range(4..bytes.len());
                let extra: Vec<u8> = (0..rng.gen_range(1..16)).map(|_| rng.r#gen()).collect();
                bytes.splice(index..index, extra);
                let length = bytes.len() as i32;
                bytes[..4].copy_from_slice(&length.to_le_bytes());
            }
        }
        decoded_frames += decode_everything(&bytes, 4096);
    }
    // The corruption is mild enough that many frames still split cleanly: the test exercises
    // the body decoder, not only length rejection.
    assert!(
        decoded_frames > 5_000,
        "only {decoded_frames} frames decoded"
    );
}
