//! Feeds arbitrary bytes, split at an input-chosen point, to the incremental frame decoder, and
//! every frame it yields to the header parser and the body decoder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mm_wire::{FrameDecoder, HeaderView, subject};

fuzz_target!(|data: &[u8]| {
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    let split = usize::from(split).min(data.len());
    let mut decoder = FrameDecoder::new(1 << 20);
    for part in [&data[..split], &data[split..]] {
        decoder.feed(part);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    let header = HeaderView::parse(frame.as_bytes()).expect("a decoded frame has a header");
                    assert_eq!(header, frame.header());
                    let _ = subject::validate_pattern_bytes(header.subject);
                    let _ = subject::validate_reply_subject_bytes(header.reply_subject);
                    if let Ok(message) = frame.message() {
                        let encoded = message.to_bytes().expect("a decoded message re-encodes");
                        assert_eq!(mm_wire::Message::decode(&encoded).as_ref(), Ok(&message));
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
