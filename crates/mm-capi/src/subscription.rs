//! `mm_subscription`, and the bridge from a subscription's Rust callback to the C callback.
//!
//! The bridge guarantees what C and C++ code needs to tear down safely: once
//! `mm_subscription_free` returns, the subscription's callback is not running and will not run
//! again (unless `mm_subscription_free` was called from inside that very callback, which then
//! finishes normally). `user_data` is released after the last call.

use std::ffi::{c_char, c_void};

use messaging_mesh::{Received, Subscription};

use crate::args;
use crate::handle::{self, Handle};
use crate::received::MmReceived;
use crate::status::{MmStatus, ffi, ffi_void};
use crate::user_data::UserData;

/// Called for every message delivered to a subscription. The callee owns `received` and frees
/// it with `mm_received_free` (it may keep it beyond the call, and pass it to another thread).
/// `delivery` describes it (valid for the duration of the call only).
pub type MmMessageCallback = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        received: *mut MmReceived,
        delivery: *const MmDelivery,
    ),
>;

/// What a subscription callback is told besides the message: subject and reply subject point
/// into `received` (not NUL-terminated; valid as long as it is), the reply subject is empty when
/// there is none.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MmDelivery {
    /// The subject the message was published to.
    pub subject: *const c_char,
    /// Its length in bytes.
    pub subject_len: usize,
    /// The reply subject (length 0: none).
    pub reply_subject: *const c_char,
    /// Its length in bytes.
    pub reply_subject_len: usize,
    /// The subscription's id.
    pub subscription_id: u32,
}

/// A live subscription (opaque; `mm_subscription` in C).
#[repr(C)]
pub struct MmSubscription {
    tag: u64,
    subscription: Option<Subscription>,
}

// SAFETY: `#[repr(C)]` with the u64 tag first.
unsafe impl Handle for MmSubscription {
    const TAG: u64 = 0x4d4d_5f53_5542_5343;
    const NAME: &'static str = "mm_subscription";
    fn tag_mut(&mut self) -> &mut u64 {
        &mut self.tag
    }
}

impl MmSubscription {
    /// Wraps a subscription whose callback was made by [`bridge`].
    pub fn new(subscription: Subscription) -> MmSubscription {
        MmSubscription {
            tag: Self::TAG,
            subscription: Some(subscription),
        }
    }

    fn subscription(&self) -> &Subscription {
        self.subscription
            .as_ref()
            .expect("a live handle holds its subscription")
    }
}

impl Drop for MmSubscription {
    fn drop(&mut self) {
        // Unsubscribes; waits for a callback running on another thread (the library's
        // guarantee, which gives this module's).
        self.subscription.take();
    }
}

/// The Rust callback that forwards each delivery to the C `callback`.
pub fn bridge(
    callback: unsafe extern "C" fn(*mut c_void, *mut MmReceived, *const MmDelivery),
    user: UserData,
) -> impl FnMut(Received) + Send + 'static {
    move |received: Received| {
        let handle = crate::received::into_raw(received);
        // SAFETY: `handle` was just made and is not yet shared.
        let owned = unsafe { &*handle };
        // The subjects were checked to be UTF-8 by the connection; the pointers are into the
        // frame `handle` owns (its bytes are shared, so they do not move).
        let (subject, reply_subject) = (owned.subject(), owned.reply_subject());
        let delivery = MmDelivery {
            subject: subject.as_ptr().cast::<c_char>(),
            subject_len: subject.len(),
            reply_subject: reply_subject.as_ptr().cast::<c_char>(),
            reply_subject_len: reply_subject.len(),
            subscription_id: owned.subscription_id(),
        };
        // SAFETY: the caller of `mm_connection_subscribe` provided a function that accepts this
        // user pointer on library threads; ownership of `handle` passes to it; `delivery` lives
        // until the call returns.
        unsafe { callback(user.ptr(), handle, &delivery) };
    }
}

/// Ends the subscription and frees the handle (NULL is ignored). When it returns, the callback
/// is not running on any other thread and will not be called again; called from inside the
/// subscription's own callback, that call finishes normally. The gateway is told.
///
/// # Safety
///
/// `subscription` is NULL or a live handle, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_subscription_free(subscription: *mut MmSubscription) {
    // SAFETY: forwarded contract.
    ffi_void(|| unsafe { handle::free(subscription) });
}

/// The subscription's id (as in `mm_received_subscription_id`).
///
/// # Safety
///
/// `subscription` is a live handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_subscription_id(
    subscription: *const MmSubscription,
    out: *mut u32,
) -> MmStatus {
    ffi(|| {
        // SAFETY: forwarded contract.
        let subscription = unsafe { handle::borrow(subscription)? };
        // SAFETY: forwarded contract.
        unsafe { args::write(out, subscription.subscription().id(), "out") }
    })
}

/// The pattern subscribed to: `*out`/`*out_len` point into the handle (valid until freed).
///
/// # Safety
///
/// `subscription` is a live handle; the out-parameters are writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_subscription_pattern(
    subscription: *const MmSubscription,
    out: *mut *const c_char,
    out_len: *mut usize,
) -> MmStatus {
    ffi(|| {
        // SAFETY: forwarded contract.
        let subscription = unsafe { handle::borrow(subscription)? };
        let pattern = subscription.subscription().pattern().as_bytes();
        // SAFETY: forwarded contract.
        unsafe { args::write_slice(out, out_len, pattern) }
    })
}

/// Counters of the subscription: messages handed to the callback, dropped at the pending limit,
/// and waiting now.
///
/// # Safety
///
/// `subscription` is a live handle; each out-parameter is NULL (not wanted) or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_subscription_counts(
    subscription: *const MmSubscription,
    delivered: *mut u64,
    dropped: *mut u64,
    pending: *mut usize,
) -> MmStatus {
    ffi(|| {
        // SAFETY: forwarded contract.
        let subscription = unsafe { handle::borrow(subscription)? }.subscription();
        // SAFETY: forwarded contract (each is NULL or writable).
        unsafe {
            if !delivered.is_null() {
                delivered.write(subscription.delivered());
            }
            if !dropped.is_null() {
                dropped.write(subscription.dropped());
            }
            if !pending.is_null() {
                pending.write(subscription.pending().0);
            }
        }
        Ok(())
    })
}
