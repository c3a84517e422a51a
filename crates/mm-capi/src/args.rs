//! Reading arguments that C passes by pointer: strings as (pointer, length) pairs, and writing
//! results through out-parameters.

use std::ffi::{CStr, c_char};

use crate::status::{Failure, MmStatus};

/// A length meaning "the pointer is a NUL-terminated C string".
pub const MM_NUL_TERMINATED: usize = usize::MAX;

/// The bytes of a (pointer, length) argument. NULL with length 0 is the empty string.
///
/// # Safety
///
/// Unless NULL, `ptr` points to `len` readable bytes, or to a NUL-terminated string when `len`
/// is [`MM_NUL_TERMINATED`]; they stay unchanged while the result is used.
pub unsafe fn bytes<'a>(ptr: *const c_char, len: usize, what: &str) -> Result<&'a [u8], Failure> {
    if ptr.is_null() {
        return if len == 0 || len == MM_NUL_TERMINATED {
            Ok(&[])
        } else {
            Err(Failure::null(what))
        };
    }
    if len == MM_NUL_TERMINATED {
        // SAFETY: the caller passes a NUL-terminated string with this length marker.
        return Ok(unsafe { CStr::from_ptr(ptr) }.to_bytes());
    }
    if len > isize::MAX as usize {
        return Err(Failure::invalid(format!(
            "{what}: length {len} is too large"
        )));
    }
    // SAFETY: the caller guarantees `len` readable bytes at `ptr`.
    Ok(unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) })
}

/// A (pointer, length) argument that must be UTF-8.
///
/// # Safety
///
/// As for [`bytes`].
pub unsafe fn text<'a>(ptr: *const c_char, len: usize, what: &str) -> Result<&'a str, Failure> {
    // SAFETY: forwarded contract.
    let raw = unsafe { bytes(ptr, len, what)? };
    std::str::from_utf8(raw).map_err(|_| Failure::invalid(format!("{what} is not valid UTF-8")))
}

/// Raw bytes (a blob): NULL with length 0 is empty. No NUL-terminated form.
///
/// # Safety
///
/// Unless NULL, `ptr` points to `len` readable bytes.
pub unsafe fn data<'a>(ptr: *const u8, len: usize, what: &str) -> Result<&'a [u8], Failure> {
    if ptr.is_null() {
        return if len == 0 {
            Ok(&[])
        } else {
            Err(Failure::null(what))
        };
    }
    if len > isize::MAX as usize {
        return Err(Failure::invalid(format!(
            "{what}: length {len} is too large"
        )));
    }
    // SAFETY: the caller guarantees `len` readable bytes at `ptr`.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Writes `value` through the out-parameter `out`.
///
/// # Safety
///
/// Unless NULL, `out` is valid for a write of `T`.
pub unsafe fn write<T>(out: *mut T, value: T, what: &str) -> Result<(), Failure> {
    if out.is_null() {
        return Err(Failure::null(what));
    }
    // SAFETY: checked for NULL; the caller guarantees it is writable. `write` does not drop the
    // old (possibly uninitialised) contents.
    unsafe { out.write(value) };
    Ok(())
}

/// Writes a borrowed byte range through a (pointer, length) pair of out-parameters.
///
/// # Safety
///
/// Unless NULL, both are valid for writes.
pub unsafe fn write_slice(
    out_ptr: *mut *const c_char,
    out_len: *mut usize,
    value: &[u8],
) -> Result<(), Failure> {
    // SAFETY: forwarded contract.
    unsafe {
        write(
            out_ptr,
            value.as_ptr().cast::<c_char>(),
            "the pointer out-parameter",
        )?;
        write(out_len, value.len(), "the length out-parameter")
    }
}

/// Copies `value` into the caller's buffer `(buf, cap)` and writes its length to `len`. When the
/// buffer is too small nothing is copied, `*len` gets the size needed, and the status is
/// `MM_STATUS_BUFFER_TOO_SMALL`. A buffer that has room also gets a terminating NUL (not
/// counted in `*len`).
///
/// # Safety
///
/// Unless NULL, `buf` is writable for `cap` bytes and `len` for a `usize`.
pub unsafe fn copy_out(
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
    value: &[u8],
) -> Result<(), Failure> {
    // SAFETY: forwarded contract.
    unsafe { write(len, value.len(), "the length out-parameter")? };
    if cap < value.len() {
        return Err(Failure::new(
            MmStatus::BufferTooSmall,
            format!("the buffer holds {cap} bytes; {} are needed", value.len()),
        ));
    }
    if value.is_empty() && buf.is_null() {
        return Ok(());
    }
    if buf.is_null() {
        return Err(Failure::null("the buffer"));
    }
    // SAFETY: `buf` has room for `cap >= value.len()` bytes; the source is a separate Rust
    // allocation, so the ranges do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(value.as_ptr(), buf, value.len());
        if cap > value.len() {
            buf.add(value.len()).write(0);
        }
    }
    Ok(())
}
