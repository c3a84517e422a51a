//! Decodes arbitrary bytes as a Message body; whatever decodes must re-encode to a body that
//! decodes to the same Message, and must render.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use mm_wire::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = Message::decode(&Bytes::copy_from_slice(data)) {
        let encoded = message.to_bytes().expect("a decoded message re-encodes");
        assert!(encoded.len() <= data.len(), "re-encoding is never longer than the input");
        assert_eq!(Message::decode(&encoded).as_ref(), Ok(&message));
        let _ = message.to_string();
    }
});
