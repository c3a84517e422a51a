//! Handing freed memory back to the operating system after a burst.
//!
//! The 64 KiB output chunks of a backlog come from the heap, and glibc keeps freed pages, so an
//! idle gateway would go on showing a burst's peak resident size. [`MemoryReturn`] watches how
//! much output is queued and says when a large backlog has drained and stayed drained; then
//! [`release_free_memory`] asks the allocator to return its free pages.

/// A backlog this large, once drained, makes the service hand freed memory back to the system.
const RETURN_MEMORY_AFTER_BYTES: usize = 32 * 1024 * 1024;

/// "Drained": all connections together have less than this queued.
const RETURN_MEMORY_BELOW_BYTES: usize = 1024 * 1024;

/// Housekeeping rounds (250 ms each) a backlog must stay drained before memory is handed back.
const DRAINED_CHECKS_BEFORE_RETURN: u32 = 4;

/// Decides when to hand memory back. Fed once per housekeeping round.
#[derive(Debug, Default)]
pub(crate) struct MemoryReturn {
    /// The most output queued at once (all connections) since memory was last handed back.
    queued_high_water: usize,
    /// Consecutive rounds that found almost nothing queued.
    drained_checks: u32,
}

impl MemoryReturn {
    /// Records how much output is queued now; true when memory should be handed back.
    pub(crate) fn observe(&mut self, queued: usize) -> bool {
        self.queued_high_water = self.queued_high_water.max(queued);
        if queued >= RETURN_MEMORY_BELOW_BYTES {
            self.drained_checks = 0;
            return false;
        }
        // Drained, and it stays so: under sustained overload a backlog empties for an instant now
        // and then, and giving memory back each time would only make it fault back in.
        self.drained_checks += 1;
        if self.drained_checks >= DRAINED_CHECKS_BEFORE_RETURN
            && self.queued_high_water > RETURN_MEMORY_AFTER_BYTES
        {
            self.queued_high_water = 0;
            return true;
        }
        false
    }
}

/// Returns freed heap memory to the operating system (glibc only; elsewhere the allocator does
/// it on its own or not at all).
pub(crate) fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of the heap to the kernel; it does not touch
    // allocated memory and may be called at any time from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_only_after_a_large_backlog_stays_drained() {
        let mut memory = MemoryReturn::default();
        assert!(!memory.observe(64 << 20));
        for _ in 0..DRAINED_CHECKS_BEFORE_RETURN - 1 {
            assert!(!memory.observe(0));
        }
        assert!(memory.observe(0));
        // Once handed back, not again until another large backlog.
        for _ in 0..10 {
            assert!(!memory.observe(0));
        }
        // A brief empty moment under sustained load does not count.
        assert!(!memory.observe(64 << 20));
        assert!(!memory.observe(0));
        assert!(!memory.observe(8 << 20));
        for _ in 0..DRAINED_CHECKS_BEFORE_RETURN - 1 {
            assert!(!memory.observe(0));
        }
        assert!(memory.observe(0));
    }
}
