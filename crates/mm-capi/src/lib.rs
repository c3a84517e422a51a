//! The C ABI of the Messaging Mesh client: the Rust client library (`messaging-mesh`) behind
//! opaque handles, status codes and plain C callbacks, so that C, C++ and any other language
//! with a C FFI share one engine with the Rust library's semantics and speed.
//!
//! The header, `include/messaging_mesh.h`, is generated from this crate by cbindgen and
//! committed; `tests/header.rs` fails when it is out of date. docs/c-api.md is the guide.
//!
//! # Rules every function follows
//!
//! * It returns an [`MmStatus`] (0 = OK); a failure's text is kept per thread for
//!   `mm_last_error()`.
//! * No panic crosses the boundary: each body runs under `catch_unwind`
//!   ([`status::ffi`]) and a panic becomes `MM_STATUS_INTERNAL`.
//! * Handles are checked before use: NULL, a handle of another type and (usually) a freed one are
//!   errors, not crashes ([`handle`]).
//! * Ownership is stated on every function that returns an object, and each handle type has one
//!   `mm_*_free` function that accepts NULL.
//!
//! # Where to find things
//!
//! * [`message`] — `mm_message`: build, read, encode, decode.
//! * [`frame`] — whole frames to and from bytes.
//! * [`params`] — `mm_connection_params`, notifications, the logger.
//! * [`connection`] — `mm_connection`: publish, subscribe, request, flush, queue dispatch.
//! * [`subscription`] — `mm_subscription` and the callback bridge.
//! * [`received`] — `mm_received`: a delivered message.
//! * [`status`], [`handle`], [`args`], [`user_data`] — the plumbing the rules above rest on.

pub mod args;
pub mod connection;
pub mod frame;
pub mod handle;
pub mod message;
pub mod params;
pub mod received;
pub mod status;
pub mod subscription;
pub mod user_data;

pub use status::MmStatus;

use std::ffi::c_char;

/// The library's version, e.g. "0.1.0" (a static string).
#[unsafe(no_mangle)]
pub extern "C" fn mm_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0")
        .as_ptr()
        .cast::<c_char>()
}
