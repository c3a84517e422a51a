#![allow(missing_docs)] // criterion_group! generates undocumented items.
//! Codec benchmarks: frame encode and decode (the 34-byte `{#: int32}` frame, the all-types frame,
//! blobs of 32 B, 1 KiB and 8 KiB), the gateway's header parse + id patch, and subject validation.
//!
//! Run: `cargo bench -p mm-wire --bench codec`. Throughput is reported in frames (elements) per
//! second.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mm_wire::subject::{validate_pattern, validate_subject};
use mm_wire::{
    Frame, FrameDecoder, Header, HeaderView, Message, encode_frame, patch_subscription_id,
};

fn vector(name: &str) -> Bytes {
    let path = format!(
        "{}/../../testdata/vectors/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    Bytes::from(std::fs::read(path).expect("vector file"))
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(1));
    let mut buffer = Vec::with_capacity(16 * 1024);

    let small = Message::new().add_i32("#", 7);
    group.bench_function("small_34B", |b| {
        b.iter(|| {
            buffer.clear();
            encode_frame(&mut buffer, &Header::send_message("A.B"), black_box(&small))
        })
    });

    let all_types = Frame::parse(vector("all-types-frame.bin"))
        .and_then(|frame| frame.message())
        .expect("vector decodes");
    group.bench_function("all_types_243B", |b| {
        b.iter(|| {
            buffer.clear();
            encode_frame(
                &mut buffer,
                &Header::send_message("TEST.ALL"),
                black_box(&all_types),
            )
        })
    });

    for size in [32usize, 1024, 8192] {
        let message = Message::new().add_blob("p", vec![0xabu8; size]);
        group.bench_function(format!("blob_{size}B"), |b| {
            b.iter(|| {
                buffer.clear();
                encode_frame(
                    &mut buffer,
                    &Header::send_message("bench.x"),
                    black_box(&message),
                )
            })
        });
    }
    group.finish();
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(1));

    for (name, bytes) in [
        ("small_34B", vector("send-message.bin")),
        ("all_types_243B", vector("all-types-frame.bin")),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let frame = Frame::parse(black_box(bytes.clone())).expect("valid");
                frame.message().expect("valid")
            })
        });
    }

    for size in [32usize, 1024, 8192] {
        let mut encoded = Vec::new();
        encode_frame(
            &mut encoded,
            &Header::send_message("bench.x"),
            &Message::new().add_blob("p", vec![0xabu8; size]),
        )
        .expect("encodes");
        let bytes = Bytes::from(encoded);
        group.bench_function(format!("blob_{size}B"), |b| {
            b.iter(|| {
                let frame = Frame::parse(black_box(bytes.clone())).expect("valid");
                frame.message().expect("valid")
            })
        });
    }

    for (name, bytes) in [
        ("validate_small_34B", vector("send-message.bin")),
        ("validate_all_types_243B", vector("all-types-frame.bin")),
    ] {
        let frame = Frame::parse(bytes).expect("valid");
        group.bench_function(name, |b| b.iter(|| black_box(&frame).validate_message()));
    }

    // The incremental decoder cutting 1 000 small frames out of one buffer.
    let stream: Vec<u8> = vector("send-message.bin").repeat(1000);
    group.throughput(Throughput::Elements(1000));
    group.bench_function("stream_1000_small_frames", |b| {
        let mut decoder = FrameDecoder::new(mm_wire::DEFAULT_MAX_FRAME);
        b.iter(|| {
            decoder.feed(black_box(&stream));
            let mut count = 0;
            while let Ok(Some(frame)) = decoder.next_frame() {
                black_box(&frame);
                count += 1;
            }
            count
        })
    });
    group.finish();
}

fn header(c: &mut Criterion) {
    let mut group = c.benchmark_group("header");
    group.throughput(Throughput::Elements(1));
    let mut frame = vector("request-with-reply-subject.bin").to_vec();
    let mut id = 0u32;
    group.bench_function("parse_and_patch", |b| {
        b.iter(|| {
            let header = HeaderView::parse(black_box(&frame)).expect("valid");
            let length = header.subject.len() + header.reply_subject.len();
            id = id.wrapping_add(1);
            patch_subscription_id(black_box(&mut frame), id);
            length
        })
    });
    group.finish();
}

fn subjects(c: &mut Criterion) {
    let mut group = c.benchmark_group("subject");
    group.throughput(Throughput::Elements(1));
    group.bench_function("validate_subject_3_tokens", |b| {
        b.iter(|| validate_subject(black_box("PRICES.NYSE.IBM")))
    });
    group.bench_function("validate_inbox_subject", |b| {
        b.iter(|| validate_subject(black_box("_INBOX.k3Jx9aQ0pLm2Zr8sT4uVw6.12345")))
    });
    group.bench_function("validate_pattern_wildcards", |b| {
        b.iter(|| validate_pattern(black_box("PRICES.*.>")))
    });
    group.bench_function("validate_subject_non_ascii", |b| {
        b.iter(|| validate_subject(black_box("Straße.München.Zürich")))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = encode, decode, header, subjects
}
criterion_main!(benches);
