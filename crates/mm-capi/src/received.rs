//! `mm_received`: a delivered message (or a request's reply) with its subject, reply subject
//! and subscription id. Its body is decoded on first access, on the thread that asks.

use std::ffi::c_char;
use std::sync::OnceLock;

use messaging_mesh::Received;

use crate::args;
use crate::handle::{self, Handle};
use crate::message::MmMessage;
use crate::status::{MmStatus, ffi, ffi_void};

/// A delivered message (opaque; `mm_received` in C).
#[repr(C)]
pub struct MmReceived {
    tag: u64,
    received: Received,
    /// The body, decoded when first asked for.
    message: OnceLock<MmMessage>,
}

// SAFETY: `#[repr(C)]` with the u64 tag first.
unsafe impl Handle for MmReceived {
    const TAG: u64 = 0x4d4d_5f52_4543_5644;
    const NAME: &'static str = "mm_received";
    fn tag_mut(&mut self) -> &mut u64 {
        &mut self.tag
    }
}

impl MmReceived {
    /// Wraps a delivered message.
    pub fn new(received: Received) -> MmReceived {
        MmReceived {
            tag: Self::TAG,
            received,
            message: OnceLock::new(),
        }
    }

    /// The delivered message.
    pub fn received(&self) -> &Received {
        &self.received
    }

    /// The body, decoded on first call. Bodies are validated before delivery, so decoding does
    /// not fail; should it ever, the message reads as empty (as in the Rust library).
    fn message(&self) -> &MmMessage {
        self.message
            .get_or_init(|| MmMessage::new(self.received.frame().message().unwrap_or_default()))
    }
}

/// Frees a delivered message (NULL is ignored). Messages obtained from it with
/// `mm_received_message` become invalid.
///
/// # Safety
///
/// `received` is NULL or a live handle, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_received_free(received: *mut MmReceived) {
    // SAFETY: forwarded contract.
    ffi_void(|| unsafe { handle::free(received) });
}

/// The subject it was published to: `*out`/`*out_len` point into `received` (not
/// NUL-terminated; valid until it is freed).
///
/// # Safety
///
/// `received` is a live handle; the out-parameters are writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_received_subject(
    received: *const MmReceived,
    out: *mut *const c_char,
    out_len: *mut usize,
) -> MmStatus {
    ffi(|| {
        // SAFETY: forwarded contract.
        let received = unsafe { handle::borrow(received)? };
        // SAFETY: forwarded contract.
        unsafe { args::write_slice(out, out_len, received.received.subject().as_bytes()) }
    })
}

/// The reply subject the publisher gave (length 0 when there is none): pointers as for
/// `mm_received_subject`.
///
/// # Safety
///
/// `received` is a live handle; the out-parameters are writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_received_reply_subject(
    received: *const MmReceived,
    out: *mut *const c_char,
    out_len: *mut usize,
) -> MmStatus {
    ffi(|| {
        // SAFETY: forwarded contract.
        let received = unsafe { handle::borrow(received)? };
        let reply = received.received.reply_subject().unwrap_or_default();
        // SAFETY: forwarded contract.
        unsafe { args::write_slice(out, out_len, reply.as_bytes()) }
    })
}

/// The id of the subscription it was delivered to.
///
/// # Safety
///
/// `received` is a live handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_received_subscription_id(
    received: *const MmReceived,
    out: *mut u32,
) -> MmStatus {
    ffi(|| {
        // SAFETY: forwarded contract.
        let received = unsafe { handle::borrow(received)? };
        // SAFETY: forwarded contract.
        unsafe { args::write(out, received.received.subscription_id(), "out") }
    })
}

/// The message, decoded on first call (thread-safe): `*out` is borrowed from `received`, must
/// not be freed or modified, and is valid until `received` is freed. Copy it with
/// `mm_message_clone` to keep or change it.
///
/// # Safety
///
/// `received` is a live handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_received_message(
    received: *const MmReceived,
    out: *mut *const MmMessage,
) -> MmStatus {
    ffi(|| {
        // SAFETY: forwarded contract.
        let received = unsafe { handle::borrow(received)? };
        let message: *const MmMessage = received.message();
        // SAFETY: forwarded contract.
        unsafe { args::write(out, message, "out") }
    })
}

/// The size of the frame as received, header included.
///
/// # Safety
///
/// `received` is a live handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_received_size(
    received: *const MmReceived,
    out: *mut usize,
) -> MmStatus {
    ffi(|| {
        // SAFETY: forwarded contract.
        let received = unsafe { handle::borrow(received)? };
        // SAFETY: forwarded contract.
        unsafe { args::write(out, received.received.size(), "out") }
    })
}
