//! The C ABI called the way C calls it: status codes, the last-error text, NULL and
//! wrong-handle checks, buffers that are too small, panics caught at the boundary, and a
//! subscription end to end against a real gateway (including the guarantee that freeing a
//! subscription waits for its running callback).

use std::ffi::{CStr, c_char, c_void};
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use messaging_mesh_c::MmStatus;
use messaging_mesh_c::args::MM_NUL_TERMINATED;
use messaging_mesh_c::connection::*;
use messaging_mesh_c::message::*;
use messaging_mesh_c::params::*;
use messaging_mesh_c::received::*;
use messaging_mesh_c::status::{Failure, ffi, mm_last_error, mm_status_name};
use messaging_mesh_c::subscription::*;
use mm_testkit::{GatewayProcess, wait_until};

fn last_error() -> String {
    // SAFETY: mm_last_error returns a valid NUL-terminated string.
    unsafe { CStr::from_ptr(mm_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn name(text: &str) -> (*const c_char, usize) {
    (text.as_ptr().cast(), text.len())
}

#[test]
fn message_fields_round_trip_and_errors_are_typed() {
    let message = mm_message_new();
    // SAFETY: every pointer below is a live handle or a valid buffer.
    unsafe {
        let (n, l) = name("qty");
        assert_eq!(mm_message_add_i32(message, n, l, -7), MmStatus::Ok);
        assert_eq!(
            mm_message_add_string(
                message,
                c"sym".as_ptr(),
                MM_NUL_TERMINATED,
                c"IBM".as_ptr(),
                3
            ),
            MmStatus::Ok
        );
        let mut value = 0i32;
        assert_eq!(mm_message_get_i32(message, n, l, &mut value), MmStatus::Ok);
        assert_eq!(value, -7);
        let mut wide = 0i64;
        assert_eq!(
            mm_message_get_i64(message, n, l, &mut wide),
            MmStatus::WrongType
        );
        assert_eq!(last_error(), "field `qty` is int32, not int64");
        let (missing, missing_len) = name("nope");
        assert_eq!(
            mm_message_get_i32(message, missing, missing_len, &mut value),
            MmStatus::FieldNotFound
        );
        assert_eq!(last_error(), "no field named `nope`");

        let mut view = std::mem::zeroed::<MmFieldView>();
        assert_eq!(mm_message_field_at(message, 1, &mut view), MmStatus::Ok);
        assert_eq!(view.field_type, MmFieldType::String);
        assert_eq!(std::slice::from_raw_parts(view.data, view.data_len), b"IBM");
        assert_eq!(
            mm_message_field_at(message, 2, &mut view),
            MmStatus::FieldNotFound
        );

        // Encode: too small a buffer reports the size needed and writes nothing.
        let mut needed = 0usize;
        let mut small = [0u8; 4];
        assert_eq!(
            mm_message_encode(message, small.as_mut_ptr(), small.len(), &mut needed),
            MmStatus::BufferTooSmall
        );
        let mut buffer = vec![0u8; needed];
        let mut written = 0usize;
        assert_eq!(
            mm_message_encode(message, buffer.as_mut_ptr(), buffer.len(), &mut written),
            MmStatus::Ok
        );
        assert_eq!(written, needed);
        let mut decoded = null_mut();
        assert_eq!(
            mm_message_decode(buffer.as_ptr(), written, &mut decoded),
            MmStatus::Ok
        );
        let mut equal = false;
        assert_eq!(mm_message_equal(message, decoded, &mut equal), MmStatus::Ok);
        assert!(equal);
        assert_eq!(
            mm_message_decode(buffer.as_ptr(), 3, &mut decoded),
            MmStatus::Decode
        );
        mm_message_free(decoded);
        mm_message_free(message);
    }
}

#[test]
fn null_and_wrong_handles_are_errors_not_crashes() {
    // SAFETY: the handles passed are NULL or live; the wrong-type handle is a live handle of
    // another type, which the tag check must reject before using it.
    unsafe {
        let mut count = 0usize;
        assert_eq!(mm_message_count(null(), &mut count), MmStatus::NullArgument);
        assert!(last_error().contains("mm_message is NULL") || last_error().contains("NULL"));
        let message = mm_message_new();
        assert_eq!(
            mm_message_count(message, null_mut()),
            MmStatus::NullArgument
        );
        let as_connection = message.cast::<MmConnection>();
        assert_eq!(
            mm_connection_wake_up(as_connection),
            MmStatus::InvalidHandle
        );
        assert!(
            last_error().contains("not a live mm_connection"),
            "{}",
            last_error()
        );
        // Bad UTF-8 where UTF-8 is required.
        let mut params = null_mut();
        assert_eq!(
            mm_connection_params_new(c"\xff".as_ptr(), 1, c"DEFAULT".as_ptr(), 7, &mut params),
            MmStatus::InvalidArgument
        );
        // Free functions accept NULL.
        mm_message_free(null_mut());
        mm_connection_free(null_mut());
        mm_subscription_free(null_mut());
        mm_received_free(null_mut());
        mm_message_free(message);
        assert_eq!(
            CStr::from_ptr(mm_status_name(MmStatus::NoResponders)).to_str(),
            Ok("MM_STATUS_NO_RESPONDERS")
        );
    }
}

#[test]
fn a_panic_becomes_an_internal_error() {
    let status = ffi(|| -> Result<(), Failure> { panic!("boom at the boundary") });
    assert_eq!(status, MmStatus::Internal);
    assert_eq!(last_error(), "internal error: boom at the boundary");
}

#[test]
fn connect_failure_is_reported() {
    let port = mm_testkit::free_port();
    let address = format!("127.0.0.1:{port}");
    // SAFETY: valid strings and out-parameters.
    unsafe {
        let mut params = null_mut();
        assert_eq!(
            mm_connection_params_new(
                address.as_ptr().cast(),
                address.len(),
                c"DEFAULT".as_ptr(),
                MM_NUL_TERMINATED,
                &mut params
            ),
            MmStatus::Ok
        );
        let mut connection = null_mut();
        assert_eq!(mm_connect(params, &mut connection), MmStatus::Connect);
        assert!(last_error().contains("cannot connect"), "{}", last_error());
        assert!(connection.is_null());
        mm_connection_params_free(params);
    }
}

/// What the test callback sees.
struct Inbox {
    received: mpsc::Sender<(String, i32)>,
    in_callback: AtomicBool,
    release: AtomicBool,
    calls: AtomicUsize,
}

unsafe extern "C" fn on_message(
    user_data: *mut c_void,
    received: *mut MmReceived,
    delivery: *const MmDelivery,
) {
    // SAFETY: user_data is the Arc<Inbox> leaked in the test; received is ours to free.
    unsafe {
        let inbox = &*(user_data as *const Inbox);
        inbox.calls.fetch_add(1, Ordering::SeqCst);
        inbox.in_callback.store(true, Ordering::SeqCst);
        while !inbox.release.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let (mut subject, mut subject_len) = (null(), 0usize);
        assert_eq!(
            mm_received_subject(received, &mut subject, &mut subject_len),
            MmStatus::Ok
        );
        let subject = String::from_utf8_lossy(std::slice::from_raw_parts(
            subject.cast::<u8>(),
            subject_len,
        ))
        .into_owned();
        let delivery = &*delivery;
        assert_eq!(
            std::slice::from_raw_parts(delivery.subject.cast::<u8>(), delivery.subject_len),
            subject.as_bytes()
        );
        assert_eq!(delivery.reply_subject_len, 0);
        let mut message = null();
        assert_eq!(mm_received_message(received, &mut message), MmStatus::Ok);
        let mut seq = 0i32;
        assert_eq!(
            mm_message_get_i32(message, c"seq".as_ptr(), MM_NUL_TERMINATED, &mut seq),
            MmStatus::Ok
        );
        let _ = inbox.received.send((subject, seq));
        mm_received_free(received);
        inbox.in_callback.store(false, Ordering::SeqCst);
    }
}

unsafe extern "C" fn release_inbox(user_data: *mut c_void) {
    // SAFETY: the pointer came from Arc::into_raw in the test.
    drop(unsafe { Arc::from_raw(user_data as *const Inbox) });
}

#[test]
fn subscription_end_to_end_and_free_waits_for_the_running_callback() {
    let gateway = GatewayProcess::start(&[]);
    let address = gateway.address_string();
    let (sender, receiver) = mpsc::channel();
    let inbox = Arc::new(Inbox {
        received: sender,
        in_callback: AtomicBool::new(false),
        release: AtomicBool::new(true),
        calls: AtomicUsize::new(0),
    });
    // SAFETY: live handles and valid buffers throughout.
    unsafe {
        let mut params = null_mut();
        assert_eq!(
            mm_connection_params_new(
                address.as_ptr().cast(),
                address.len(),
                c"CAPI".as_ptr(),
                MM_NUL_TERMINATED,
                &mut params
            ),
            MmStatus::Ok
        );
        let mut connection = null_mut();
        assert_eq!(
            mm_connect(params, &mut connection),
            MmStatus::Ok,
            "{}",
            last_error()
        );
        mm_connection_params_free(params);

        let mut subscription = null_mut();
        let user = Arc::into_raw(inbox.clone()) as *mut c_void;
        assert_eq!(
            mm_connection_subscribe(
                connection,
                c"CAPI.>".as_ptr(),
                MM_NUL_TERMINATED,
                Some(on_message),
                user,
                Some(release_inbox),
                &mut subscription
            ),
            MmStatus::Ok
        );
        assert_eq!(mm_connection_flush(connection, 10_000, false), MmStatus::Ok);
        let message = mm_message_new();
        mm_message_add_i32(message, c"seq".as_ptr(), MM_NUL_TERMINATED, 1);
        assert_eq!(
            mm_connection_send(
                connection,
                c"CAPI.one".as_ptr(),
                MM_NUL_TERMINATED,
                null(),
                0,
                message
            ),
            MmStatus::Ok
        );
        assert_eq!(
            receiver.recv_timeout(Duration::from_secs(10)),
            Ok(("CAPI.one".to_owned(), 1))
        );

        // Hold the next callback inside, then free the subscription from this thread: the free
        // must not return before the callback does.
        inbox.release.store(false, Ordering::SeqCst);
        mm_message_clear(message);
        mm_message_add_i32(message, c"seq".as_ptr(), MM_NUL_TERMINATED, 2);
        mm_connection_send(
            connection,
            c"CAPI.two".as_ptr(),
            MM_NUL_TERMINATED,
            null(),
            0,
            message,
        );
        assert!(wait_until(Duration::from_secs(10), || inbox
            .in_callback
            .load(Ordering::SeqCst)));
        let inbox_for_release = inbox.clone();
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            inbox_for_release.release.store(true, Ordering::SeqCst);
        });
        mm_subscription_free(subscription);
        assert!(
            !inbox.in_callback.load(Ordering::SeqCst),
            "free returned while the callback ran"
        );
        releaser.join().expect("releaser");
        let calls = inbox.calls.load(Ordering::SeqCst);
        mm_connection_send(
            connection,
            c"CAPI.three".as_ptr(),
            MM_NUL_TERMINATED,
            null(),
            0,
            message,
        );
        assert_eq!(mm_connection_flush(connection, 10_000, false), MmStatus::Ok);
        assert_eq!(
            inbox.calls.load(Ordering::SeqCst),
            calls,
            "a callback ran after free"
        );

        // Requests: nobody listens on MM/2 → no responders at once.
        let mut reply = null_mut();
        assert_eq!(
            mm_connection_request(
                connection,
                c"CAPI.nobody".as_ptr(),
                MM_NUL_TERMINATED,
                message,
                5000,
                &mut reply
            ),
            MmStatus::NoResponders
        );
        mm_message_free(message);
        mm_connection_free(connection);
    }
    // The subscription's user data was released exactly once.
    assert!(wait_until(Duration::from_secs(10), || Arc::strong_count(
        &inbox
    ) == 1));
}
