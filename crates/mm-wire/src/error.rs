//! Errors of the wire codec.
//!
//! [`DecodeError`] is what bad input produces. It is small, `Copy` and carries only
//! `&'static str` context, so rejecting input never allocates (a hostile peer cannot make the
//! gateway spend memory on describing its garbage). Every variant says what was wrong and the
//! byte offset, counted from the first byte of the frame (or of the buffer handed to the decoder),
//! where it was found.

/// A frame or Message that cannot be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame length prefix is below the 21-byte minimum (negative values included).
    #[error("frame length {length} is below the minimum of 21 bytes")]
    FrameTooShort {
        /// The length read from the prefix.
        length: i32,
    },
    /// The frame length prefix is above the receiver's configured maximum.
    #[error("frame length {length} exceeds the maximum of {max} bytes")]
    FrameTooLarge {
        /// The length read from the prefix.
        length: u32,
        /// The receiver's `max_frame`.
        max: u32,
    },
    /// A length or count prefix is negative.
    #[error("negative {what} ({value}) at byte {offset}")]
    Negative {
        /// What the prefix counts, e.g. "field count" or "string length".
        what: &'static str,
        /// The value read.
        value: i32,
        /// Offset of the prefix.
        offset: usize,
    },
    /// A value runs past the end of the frame.
    #[error("{what} at byte {offset} runs past the end of the frame")]
    Truncated {
        /// What was being read, e.g. "subject" or "int64 value".
        what: &'static str,
        /// Offset where the value starts.
        offset: usize,
    },
    /// A field type byte is 0 (NOT_SET) or unknown (10 or more).
    #[error("invalid field type {type_byte} at byte {offset}")]
    InvalidFieldType {
        /// The type byte read.
        type_byte: u8,
        /// Offset of the type byte.
        offset: usize,
    },
    /// Messages are nested deeper than [`MAX_DEPTH`](crate::MAX_DEPTH).
    #[error("message nested deeper than {max} levels at byte {offset}")]
    TooDeep {
        /// The maximum depth (64).
        max: usize,
        /// Offset of the Message that would be one level too deep.
        offset: usize,
    },
}

/// A Message or frame that cannot be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The frame would be larger than the protocol's `i32` length prefix (or the given maximum)
    /// allows.
    #[error("frame of {length} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge {
        /// The size the frame would have.
        length: u64,
        /// The limit it exceeds.
        max: u64,
    },
    /// A string, blob or field name is longer than an `i32` length prefix can describe.
    #[error("{what} of {length} bytes is too long for the wire")]
    TooLong {
        /// What was too long.
        what: &'static str,
        /// Its length.
        length: usize,
    },
    /// Messages are nested deeper than [`MAX_DEPTH`](crate::MAX_DEPTH): no receiver could decode
    /// the result.
    #[error("message nested deeper than {max} levels")]
    TooDeep {
        /// The maximum depth (64).
        max: usize,
    },
}
