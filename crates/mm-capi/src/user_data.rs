//! The `void *user_data` that C passes with a callback, and the function that releases it.

use std::ffi::c_void;

/// Releases a `user_data` pointer once the library no longer uses it (may be NULL: nothing to
/// release). Called exactly once, on whichever library or application thread drops the last
/// reference; it must not call back into the library.
pub type MmFreeCallback = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

/// A user pointer that the library carries to callbacks on its own threads, released with its
/// free function when the last owner drops it.
pub struct UserData {
    ptr: *mut c_void,
    free: MmFreeCallback,
}

// SAFETY: the header documents that callbacks run on library threads, so whoever passes
// `user_data` with a callback promises that it (and its free function) may be used from any
// thread. The library only passes the pointer back; it never dereferences it.
unsafe impl Send for UserData {}
// SAFETY: as above; sharing only copies the pointer value.
unsafe impl Sync for UserData {}

impl UserData {
    /// Takes charge of `ptr`, to be released with `free`.
    pub fn new(ptr: *mut c_void, free: MmFreeCallback) -> UserData {
        UserData { ptr, free }
    }

    /// The pointer, for passing to the callback.
    pub fn ptr(&self) -> *mut c_void {
        self.ptr
    }
}

impl Drop for UserData {
    fn drop(&mut self) {
        if let Some(free) = self.free {
            // SAFETY: called once, with the pointer given together with this function.
            unsafe { free(self.ptr) };
        }
    }
}
