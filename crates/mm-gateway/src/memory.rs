//! Handing freed memory back to the operating system after a burst (issue #12: "memory comes
//! back").
//!
//! The gateway uses the system allocator (glibc malloc), with one arena for the whole process
//! (`use_single_arena`, called by the binary). Freed memory stays in malloc's heap, and an idle
//! gateway would go on showing a burst's peak resident size:
//! the 64 KiB output chunks of a backlog, the index and maps of a million subscriptions, the
//! buffers of thousands of connections. [`MemoryReturn`] watches for that (a large backlog that
//! has drained, or a lot freed by closing connections) and says when to give memory back;
//! `release_free_memory` then asks malloc to return every free page (`malloc_trim`), on a
//! thread of its own so the service loop does not wait for it (it takes tens of milliseconds on a
//! heap of hundreds of megabytes).
//!
//! Rejected: mimalloc (measured: after a million subscriptions were removed it kept 415 MiB of
//! 463; its purging runs on allocation activity in the owning thread, which an idle service does
//! not have) and one glibc arena per thread (47 MiB kept, see `use_single_arena`).

use std::sync::atomic::{AtomicBool, Ordering};

/// A backlog this large, once drained, makes the service hand freed memory back to the system.
const RETURN_MEMORY_AFTER_BYTES: usize = 32 * 1024 * 1024;

/// "Drained": all connections together have less than this queued.
const RETURN_MEMORY_BELOW_BYTES: usize = 1024 * 1024;

/// Housekeeping rounds (250 ms each) a backlog must stay drained before memory is handed back.
const DRAINED_CHECKS_BEFORE_RETURN: u32 = 4;

/// Freed by closing connections (estimated) before memory is handed back.
const RETURN_MEMORY_AFTER_FREED_BYTES: usize = 16 * 1024 * 1024;

/// Decides when to hand memory back. Fed once per housekeeping round, and whenever something
/// large is freed.
#[derive(Debug, Default)]
pub(crate) struct MemoryReturn {
    /// The most output queued at once (all connections) since memory was last handed back.
    queued_high_water: usize,
    /// Consecutive rounds that found almost nothing queued.
    drained_checks: u32,
    /// Estimated bytes freed (closed connections, retired subscriptions) since memory was last
    /// handed back.
    freed: usize,
}

impl MemoryReturn {
    /// Records an estimate of memory just freed.
    pub(crate) fn freed(&mut self, bytes: usize) {
        self.freed = self.freed.saturating_add(bytes);
    }

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
        let backlog_drained = self.drained_checks >= DRAINED_CHECKS_BEFORE_RETURN
            && self.queued_high_water > RETURN_MEMORY_AFTER_BYTES;
        if backlog_drained || self.freed >= RETURN_MEMORY_AFTER_FREED_BYTES {
            self.queued_high_water = 0;
            self.freed = 0;
            return true;
        }
        false
    }
}

/// Returns freed heap memory to the operating system, on a short-lived thread of its own; at
/// most one such thread at a time in the process. (glibc only; elsewhere the allocator does it
/// on its own or not at all.)
pub(crate) fn release_free_memory() {
    static RUNNING: AtomicBool = AtomicBool::new(false);
    if RUNNING.swap(true, Ordering::AcqRel) {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("memory-return".into())
        .spawn(|| {
            trim();
            RUNNING.store(false, Ordering::Release);
        });
    if spawned.is_err() {
        RUNNING.store(false, Ordering::Release);
    }
}

fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of the heaps to the kernel; it does not touch
    // allocated memory and may be called at any time from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Makes the system allocator use a single arena for the whole process; call first thing in
/// `main`, before any thread starts. (glibc only; elsewhere it does nothing.)
///
/// glibc gives each thread that allocates concurrently an arena of its own — here, one per
/// service — and `malloc_trim` cannot return the free top of those arenas' heaps: after a
/// million subscriptions were removed, 47 MiB stayed resident with one arena per service, 1 MiB
/// with a single arena (docs/reliability.md). The price, a shared lock in `malloc`, is small
/// because the gateway does not allocate per message: output is copied into reused 64 KiB
/// chunks, reads go through a reused buffer.
pub fn use_single_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; M_ARENA_MAX takes effect for arenas
    // created later, and the caller calls this before starting threads.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
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

    #[test]
    fn returns_after_much_is_freed_once_nothing_is_queued() {
        let mut memory = MemoryReturn::default();
        memory.freed(RETURN_MEMORY_AFTER_FREED_BYTES / 2);
        assert!(!memory.observe(0));
        memory.freed(RETURN_MEMORY_AFTER_FREED_BYTES / 2);
        assert!(!memory.observe(2 << 20), "not while output is queued");
        assert!(memory.observe(0));
        assert!(!memory.observe(0));
    }
}
