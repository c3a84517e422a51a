//! `mm_received`: a delivered message (or a request's reply) with its subject, reply subject
//! and subscription id. Its body is decoded on first access, on the thread that asks.

use std::cell::RefCell;
use std::ffi::c_char;
use std::mem::MaybeUninit;
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
    /// The message as delivered (the connection checked that its subjects are UTF-8 and its body
    /// decodes). Its frame's bytes are shared and never move, so pointers into them stay valid
    /// as long as the handle lives.
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

    /// The subject (UTF-8: checked by the connection before delivery).
    pub fn subject(&self) -> &[u8] {
        self.received.subject_bytes()
    }

    /// The reply subject (empty for none; UTF-8, checked by the connection).
    pub fn reply_subject(&self) -> &[u8] {
        self.received.reply_subject_bytes()
    }

    /// The id of the subscription it was delivered to.
    pub fn subscription_id(&self) -> u32 {
        self.received.subscription_id()
    }

    /// The body, decoded on first call (the `Received`'s own decoded slot is not used, so the
    /// message is decoded straight into the handle C borrows).
    fn message(&self) -> &MmMessage {
        self.message
            .get_or_init(|| MmMessage::new(self.received.clone().into_message()))
    }
}

/// How many freed handles a thread keeps for reuse: a subscriber's dispatch thread makes and
/// frees one per message, so reusing them saves an allocation and a free per message.
const POOL_SIZE: usize = 256;

/// The allocation of a freed handle, kept for reuse.
struct Slot(Box<MaybeUninit<MmReceived>>);

thread_local! {
    /// Freed handles of this thread, ready for reuse.
    static POOL: RefCell<Vec<Slot>> = const { RefCell::new(Vec::new()) };
}

/// Makes a handle for `received` on the heap (reusing a freed handle of this thread when there
/// is one) and returns the pointer C will own; freed with [`mm_received_free`].
pub fn into_raw(received: Received) -> *mut MmReceived {
    let reused = POOL.try_with(|pool| pool.borrow_mut().pop()).ok().flatten();
    match reused {
        Some(Slot(mut slot)) => {
            slot.write(MmReceived::new(received));
            Box::into_raw(slot).cast::<MmReceived>()
        }
        None => handle::into_raw(MmReceived::new(received)),
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
    ffi_void(|| {
        if received.is_null() {
            return Ok(());
        }
        // SAFETY: forwarded contract (the tag is checked).
        let object = unsafe { handle::borrow_mut(received)? };
        *object.tag_mut() = handle::FREED;
        // SAFETY: the handle was made by `into_raw` (a `Box<MmReceived>`, whose layout equals
        // `Box<MaybeUninit<MmReceived>>`) and is not used after this; its value is dropped here
        // exactly once, and the slot is either kept for reuse or deallocated.
        let mut slot = unsafe { Box::from_raw(received.cast::<MaybeUninit<MmReceived>>()) };
        // SAFETY: the slot holds a live value (its tag was live).
        unsafe { slot.assume_init_drop() };
        let _ = POOL.try_with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.len() < POOL_SIZE {
                pool.push(Slot(slot));
            }
        });
        Ok(())
    });
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
        unsafe { args::write_slice(out, out_len, received.subject()) }
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
        // SAFETY: forwarded contract.
        unsafe { args::write_slice(out, out_len, received.reply_subject()) }
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
        unsafe { args::write(out, received.subscription_id(), "out") }
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
