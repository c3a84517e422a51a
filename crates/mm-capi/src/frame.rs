//! Whole frames (SPEC §1–§3): a header plus a Message body, encoded to and decoded from bytes.
//! The connection does this by itself; these functions are for tools, tests and bridges that
//! handle raw frames (and prove byte-exactness against the protocol vectors).

use std::ffi::c_char;

use bytes::Bytes;
use messaging_mesh::mm_wire::{Action, Frame, Header, encode_frame};

use crate::args;
use crate::handle;
use crate::message::MmMessage;
use crate::status::{Failure, MmStatus, ffi};

/// The header of a frame. In a decoded header, `subject` and `reply_subject` point into the
/// bytes that were decoded (not NUL-terminated).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MmFrameHeader {
    /// The subscription id (0: none).
    pub subscription_id: u32,
    /// The subject (or service name for CONNECT).
    pub subject: *const c_char,
    /// Its length in bytes.
    pub subject_len: usize,
    /// The reply subject (or client name for CONNECT); empty for none.
    pub reply_subject: *const c_char,
    /// Its length in bytes.
    pub reply_subject_len: usize,
    /// The action byte (`MM_ACTION_*`).
    pub action: u8,
}

/// Action byte 1: CONNECT.
pub const MM_ACTION_CONNECT: u8 = 1;
/// Action byte 2: DISCONNECT.
pub const MM_ACTION_DISCONNECT: u8 = 2;
/// Action byte 3: ACK.
pub const MM_ACTION_ACK: u8 = 3;
/// Action byte 4: SUBSCRIBE.
pub const MM_ACTION_SUBSCRIBE: u8 = 4;
/// Action byte 5: UNSUBSCRIBE.
pub const MM_ACTION_UNSUBSCRIBE: u8 = 5;
/// Action byte 6: SEND_MESSAGE.
pub const MM_ACTION_SEND_MESSAGE: u8 = 6;
/// Action byte 7: CONNECT_MESH_PEER.
pub const MM_ACTION_CONNECT_MESH_PEER: u8 = 7;
/// Action byte 8: PING.
pub const MM_ACTION_PING: u8 = 8;
/// Action byte 9: PONG.
pub const MM_ACTION_PONG: u8 = 9;
/// Action byte 10: ERROR.
pub const MM_ACTION_ERROR: u8 = 10;
/// Action byte 11: NO_RESPONDERS.
pub const MM_ACTION_NO_RESPONDERS: u8 = 11;

/// Encodes a whole frame (length prefix, header, `body`) into `(buf, cap)`; `*len` gets its
/// size. `MM_STATUS_BUFFER_TOO_SMALL` (nothing written) when it does not fit. `body` NULL is
/// an empty message.
///
/// # Safety
///
/// `header` is readable and its strings as described in the header file; `body` is NULL or a
/// live message handle; `buf` is writable for `cap` bytes; `len` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_frame_encode(
    header: *const MmFrameHeader,
    body: *const MmMessage,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
) -> MmStatus {
    ffi(|| {
        if header.is_null() {
            return Err(Failure::null("header"));
        }
        // SAFETY: checked for NULL; the caller guarantees it is readable.
        let header = unsafe { *header };
        let action = Action::from_byte(header.action)
            .ok_or_else(|| Failure::invalid(format!("unknown action byte {}", header.action)))?;
        // SAFETY: forwarded contract.
        let (subject, reply_subject) = unsafe {
            (
                args::bytes(header.subject, header.subject_len, "the subject")?,
                args::bytes(
                    header.reply_subject,
                    header.reply_subject_len,
                    "the reply subject",
                )?,
            )
        };
        let empty = messaging_mesh::Message::new();
        let body = if body.is_null() {
            &empty
        } else {
            // SAFETY: forwarded contract.
            &unsafe { handle::borrow(body)? }.message
        };
        let wire_header = Header {
            subscription_id: header.subscription_id,
            subject,
            reply_subject,
            action,
        };
        let mut out = Vec::new();
        encode_frame(&mut out, &wire_header, body)
            .map_err(|error| Failure::new(MmStatus::Encode, error.to_string()))?;
        // SAFETY: forwarded contract.
        unsafe { args::copy_out(buf, cap, len, &out) }
    })
}

/// Decodes exactly one whole frame from `len` bytes: `*header` gets the header (its strings
/// point into `bytes`), and, unless `body` is NULL, `*body` a new message owned by the caller.
/// `MM_STATUS_DECODE` when the bytes are not one frame, or when the body does not decode (the
/// header is still written then, and `*body` is set to NULL).
///
/// # Safety
///
/// `bytes` is readable for `len` bytes and outlives the use of the header's strings; `header`
/// is writable; `body` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_frame_decode(
    bytes: *const u8,
    len: usize,
    header: *mut MmFrameHeader,
    body: *mut *mut MmMessage,
) -> MmStatus {
    ffi(|| {
        // SAFETY: forwarded contract.
        let input = unsafe { args::data(bytes, len, "the bytes")? };
        if !body.is_null() {
            // SAFETY: checked for NULL; the caller guarantees it is writable.
            unsafe { body.write(std::ptr::null_mut()) };
        }
        let frame = Frame::parse(Bytes::copy_from_slice(input))
            .map_err(|error| Failure::new(MmStatus::Decode, error.to_string()))?;
        let view = frame.header();
        // The header's strings must point into the caller's bytes, not into our copy.
        let offset = |part: &[u8]| part.as_ptr() as usize - frame.as_bytes().as_ptr() as usize;
        let decoded = MmFrameHeader {
            subscription_id: view.subscription_id,
            subject: input[offset(view.subject)..].as_ptr().cast::<c_char>(),
            subject_len: view.subject.len(),
            reply_subject: input[offset(view.reply_subject)..]
                .as_ptr()
                .cast::<c_char>(),
            reply_subject_len: view.reply_subject.len(),
            action: view.action_byte,
        };
        // SAFETY: forwarded contract.
        unsafe { args::write(header, decoded, "header")? };
        if body.is_null() {
            return frame
                .validate_message()
                .map_err(|error| Failure::new(MmStatus::Decode, error.to_string()));
        }
        let message = frame
            .message()
            .map_err(|error| Failure::new(MmStatus::Decode, error.to_string()))?;
        // SAFETY: checked for NULL above; the caller guarantees it is writable.
        unsafe { body.write(handle::into_raw(MmMessage::new(message))) };
        Ok(())
    })
}
