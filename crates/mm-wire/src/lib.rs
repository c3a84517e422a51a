//! The Messaging Mesh wire format, and nothing else: frames, the header, actions, the
//! Message/Field model and its codec, and the subject grammar. No I/O.
//!
//! Everything that speaks Messaging Mesh — the gateway, mesh links, the Rust client, the C ABI —
//! follows the bytes this crate reads and writes, so it is kept small, synchronous and strict.
//!
//! # Design
//!
//! Decoding is zero-copy and bounded. Received frames are [`bytes::Bytes`]; a decoded
//! [`Message`]'s strings and blobs are slices of the frame, not copies. Every length and count is
//! checked against the bytes that are actually there before it is used, so bad input produces a
//! small, `Copy` [`DecodeError`] — never a panic and never an allocation sized by the input.
//!
//! The gateway's hot path never decodes a body: [`HeaderView::parse`] reads the subscription id,
//! subjects and action in place, and [`patch_subscription_id`] stamps a delivered copy.
//!
//! Encoding measures a Message first and then writes it, so a frame's length is known before its
//! first byte is written; with a warm buffer, encoding does not allocate. (The alternative, a
//! placeholder length patched afterwards, needs a buffer that can be indexed; measuring lets us
//! write into any [`bytes::BufMut`].)
//!
//! # Where to find things
//!
//! * [`frame`] — finding frame boundaries ([`frame_length`], [`FrameDecoder`]), [`Frame`],
//!   [`encode_frame`].
//! * [`header`] — [`HeaderView`], [`Header`], [`patch_subscription_id`].
//! * [`Message`], [`Field`], [`FieldValue`], [`FieldType`], [`Text`] — the data model.
//! * [`subject`] — validation, tokens, the reference matcher.
//! * [`handshake`] — typed CONNECT options, ACK info, mesh peer identity, ERROR codes.
//! * `tokio_codec` (feature `tokio-codec`) — `FrameCodec` for `tokio_util::codec::Framed`.

/// This crate's README: its code blocks are compiled by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod action;
mod body;
mod error;
mod field;
pub mod frame;
pub mod handshake;
pub mod header;
mod message;
mod reader;
mod render;
pub mod subject;
mod text;
#[cfg(feature = "tokio-codec")]
pub mod tokio_codec;

pub use action::Action;
pub use error::{DecodeError, EncodeError};
pub use field::{Field, FieldType, FieldValue};
pub use frame::{
    DEFAULT_MAX_FRAME, Frame, FrameDecoder, encode_control_frame, encode_frame,
    encode_frame_with_body, frame_length,
};
pub use header::{Header, HeaderView, MIN_FRAME_SIZE, patch_subscription_id};
pub use message::{FieldError, Message};
pub use render::{BLOB_PREVIEW_BYTES, Render};
pub use subject::SubjectError;
pub use text::Text;

/// Re-exported so users need not depend on `bytes` themselves.
pub use bytes;

/// The deepest a Message may be nested: the top level is depth 1, depth 65 is a decode error
/// (SPEC §4).
pub const MAX_DEPTH: usize = 64;
