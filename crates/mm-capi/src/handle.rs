//! Opaque handles: heap objects whose first field is a type tag, so that a NULL, a handle of
//! another type or (often) a freed handle is reported as an error instead of being used.
//!
//! Every handle type is `#[repr(C)]` with a `u64` tag first; the tag is checked before the
//! object is touched and overwritten when the handle is freed. Detecting a freed handle is best
//! effort (the memory may have been reused); NULL and wrong-type handles are always caught.

use crate::status::{Failure, MmStatus};

/// The tag a freed handle carries until its memory is reused.
pub const FREED: u64 = 0xdead_dead_dead_dead;

/// A type handed to C as an opaque pointer.
///
/// # Safety
///
/// Implementors are `#[repr(C)]` and their first field is the `u64` returned by [`Handle::tag`].
pub unsafe trait Handle: Sized {
    /// The tag live handles of this type carry.
    const TAG: u64;
    /// The handle's name in error messages, e.g. `mm_message`.
    const NAME: &'static str;
    /// The tag field.
    fn tag_mut(&mut self) -> &mut u64;
}

/// Moves `value` to the heap and returns the pointer C will own.
pub fn into_raw<T: Handle>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Checks `ptr` (NULL, alignment, tag) and returns the object behind it.
///
/// # Safety
///
/// `ptr` is NULL or points to readable memory of at least 8 bytes that is either a live `T`
/// created by [`into_raw`] or some other handle of this crate. The reference must not outlive
/// the handle.
pub unsafe fn borrow<'a, T: Handle>(ptr: *const T) -> Result<&'a T, Failure> {
    if ptr.is_null() {
        return Err(Failure::null(T::NAME));
    }
    if !ptr.cast::<u64>().is_aligned() {
        return Err(invalid_handle::<T>());
    }
    // SAFETY: every handle of this crate starts with a u64 tag (the trait's contract) and the
    // caller guarantees `ptr` is one of them, so reading 8 bytes at its start is in bounds.
    let tag = unsafe { ptr.cast::<u64>().read() };
    if tag != T::TAG {
        return Err(invalid_handle::<T>());
    }
    // SAFETY: the tag says this is a live `T` made by `into_raw`.
    Ok(unsafe { &*ptr })
}

/// Like [`borrow`], mutably.
///
/// # Safety
///
/// As for [`borrow`], and no other reference to the object is in use.
pub unsafe fn borrow_mut<'a, T: Handle>(ptr: *mut T) -> Result<&'a mut T, Failure> {
    // SAFETY: forwarded contract.
    unsafe { borrow::<T>(ptr)? };
    // SAFETY: checked above; the caller guarantees exclusive access.
    Ok(unsafe { &mut *ptr })
}

/// Frees a handle made by [`into_raw`]: NULL is accepted and ignored; a pointer that is not a
/// live `T` is reported, not freed.
///
/// # Safety
///
/// As for [`borrow_mut`]; the handle is not used afterwards.
pub unsafe fn free<T: Handle>(ptr: *mut T) -> Result<(), Failure> {
    if ptr.is_null() {
        return Ok(());
    }
    // SAFETY: forwarded contract.
    let object = unsafe { borrow_mut::<T>(ptr)? };
    *object.tag_mut() = FREED;
    // SAFETY: `ptr` came from `Box::into_raw` in `into_raw` (its tag was live) and is not used
    // after this.
    drop(unsafe { Box::from_raw(ptr) });
    Ok(())
}

fn invalid_handle<T: Handle>() -> Failure {
    Failure::new(
        MmStatus::InvalidHandle,
        format!("not a live {} handle (freed, or of another type)", T::NAME),
    )
}
