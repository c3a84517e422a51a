//! Decodes arbitrary bytes as a Message body: validation must agree with decoding, and whatever
//! decodes must re-encode to a body that decodes to the same Message, and must render.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use mm_wire::Message;

fuzz_target!(|data: &[u8]| {
    let decoded = Message::decode(&Bytes::copy_from_slice(data));
    assert_eq!(
        Message::validate(data),
        decoded.as_ref().map(|_| ()).map_err(|error| *error),
        "validation and decoding disagree"
    );
    if let Ok(message) = decoded {
        let encoded = message.to_bytes().expect("a decoded message re-encodes");
        assert!(encoded.len() <= data.len(), "re-encoding is never longer than the input");
        assert_eq!(Message::decode(&encoded).as_ref(), Ok(&message));
        let _ = message.to_string();
    }
});
