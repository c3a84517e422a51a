//! [`FlushSet`]: the connections that have output queued since they were last written.
//!
//! Deliveries mark connections; after a batch, the service loop takes them out one at a time and
//! writes each once. Taking out one at a time is the point: writing a connection can close it,
//! and closing can queue more output for others (an UNSUBSCRIBE to a peer when a client's last
//! interest goes, a mesh-flush answer when a link drops). Those connections are marked while the
//! drain runs and the same drain writes them. (The set this replaced was taken whole, walked, and
//! written back afterwards, so anything marked during the walk was lost: issue #11.)

use std::collections::VecDeque;

use slotmap::SecondaryMap;

use crate::connection::ConnectionKey;

/// Connections to write after the current batch.
///
/// Invariant: a key is in `queue` exactly when it is in `queued`, and at most once; so
/// `queue.len() == queued.len()`. Checked in debug builds.
#[derive(Debug, Default)]
pub(crate) struct FlushSet {
    /// Marked connections, oldest first.
    queue: VecDeque<ConnectionKey>,
    /// The same keys, for an O(1) "already marked?".
    queued: SecondaryMap<ConnectionKey, ()>,
}

impl FlushSet {
    /// Marks `key` for writing (once, however often it is marked before it is taken).
    #[inline]
    pub(crate) fn insert(&mut self, key: ConnectionKey) {
        // `insert` answers `Some` for a key already marked (the common case: one lookup), and
        // `None` for a new one — or for a stale key, which it does not store.
        if self.queued.insert(key, ()).is_none() && self.queued.contains_key(key) {
            self.queue.push_back(key);
        }
        self.debug_check();
    }

    /// Takes the oldest marked connection, if any. A drain is `while let Some(key) = pop()`: it
    /// ends only when nothing is marked, including what was marked while it ran.
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<ConnectionKey> {
        let key = self.queue.pop_front()?;
        self.queued.remove(key);
        self.debug_check();
        Some(key)
    }

    /// Whether nothing is marked.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// How many connections are marked.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether `key` is marked.
    #[cfg(test)]
    pub(crate) fn contains(&self, key: ConnectionKey) -> bool {
        self.queued.contains_key(key)
    }

    #[inline]
    fn debug_check(&self) {
        debug_assert_eq!(
            self.queue.len(),
            self.queued.len(),
            "flush set: queue and index disagree"
        );
    }
}

#[cfg(test)]
mod tests {
    use slotmap::SlotMap;

    use super::*;

    fn keys(count: usize) -> Vec<ConnectionKey> {
        let mut map = SlotMap::<ConnectionKey, ()>::with_key();
        (0..count).map(|_| map.insert(())).collect()
    }

    #[test]
    fn marks_once_and_drains_in_order() {
        let keys = keys(3);
        let mut set = FlushSet::default();
        set.insert(keys[1]);
        set.insert(keys[0]);
        set.insert(keys[1]);
        assert_eq!(set.len(), 2);
        assert_eq!(set.pop(), Some(keys[1]));
        assert_eq!(set.pop(), Some(keys[0]));
        assert_eq!(set.pop(), None);
        assert!(set.is_empty());
    }

    /// Issue #11: what is marked while a drain runs is drained by the same drain — including a
    /// connection that was already taken earlier in it.
    #[test]
    fn marks_made_during_a_drain_are_not_lost() {
        let keys = keys(3);
        let mut set = FlushSet::default();
        set.insert(keys[0]);
        set.insert(keys[1]);
        let mut written = Vec::new();
        while let Some(key) = set.pop() {
            written.push(key);
            if written.len() == 1 {
                // Writing the first closes it, which queues output for a third connection and
                // for one still marked.
                set.insert(keys[2]);
                set.insert(keys[1]);
            }
            if written.len() == 3 {
                // Writing the third queues output for the first again.
                set.insert(keys[0]);
            }
        }
        assert_eq!(written, vec![keys[0], keys[1], keys[2], keys[0]]);
        assert!(set.is_empty());
        assert!(!set.contains(keys[0]));
    }
}
