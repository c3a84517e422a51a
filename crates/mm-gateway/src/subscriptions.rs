//! [`Subscriptions`]: what one connection has subscribed to, as its peer names it.
//!
//! Clients and MM/2 peers name subscriptions by id (SPEC §6.2): a map by id, plus an ordered
//! index by pattern for the MM/1 rule "an UNSUBSCRIBE with an unknown id and a subject removes the
//! oldest subscription with that pattern" — O(log n), however many subscriptions the connection
//! holds (issue #12: it used to scan them all).
//!
//! A first-implementation (MM/1) gateway that dials us forwards its clients' SUBSCRIBEs with the
//! clients' own ids, so ids repeat and mean nothing there. On such a link the patterns are
//! counted instead ([`Subscriptions::add_reference`]): the first reference puts the pattern in
//! the subject index, the last one takes it out.

use std::collections::BTreeMap;
use std::hash::BuildHasher;

use foldhash::fast::RandomState;

use crate::segmented_table::SegmentedTable;

/// A live subscription of a connection.
#[derive(Debug)]
struct Entry {
    /// The pattern as received (validated).
    pattern: Box<[u8]>,
    /// Order of creation within the connection.
    sequence: u64,
}

/// One connection's subscriptions.
///
/// Invariants: every `(hash(pattern), sequence) -> id` in `by_pattern` has `by_id[id]` with that
/// pattern and sequence, and the other way round, so `by_pattern.len() == by_id.len()`.
#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    /// Subscriptions by the id the peer chose. The peer controls the keys: the hasher is seeded
    /// at random per connection. Segmented, so that growing to a million costs no insert more
    /// than a fraction of a millisecond.
    by_id: SegmentedTable<(u32, Entry)>,
    /// `(hash of the pattern, sequence) -> id`, ordered: the oldest subscription with a pattern is
    /// the first entry of its hash whose pattern matches. A hash rather than the pattern itself
    /// keeps the index small (24 bytes an entry); colliding patterns are told apart through
    /// `by_id`, and the seed is random, so a peer cannot make them collide on purpose.
    by_pattern: BTreeMap<(u64, u64), u32>,
    /// Hashes ids and patterns.
    hasher: RandomState,
    /// Creation counter for `Entry::sequence`.
    next_sequence: u64,
    /// Links from MM/1 gateways: references per pattern (ids not trusted).
    references: SegmentedTable<(Box<[u8]>, u32)>,
}

/// A subscription taken out of a closing connection, for the subject index and the mesh.
#[derive(Debug)]
pub(crate) struct Retired {
    /// Its id (0 for a counted pattern of an MM/1 link).
    pub(crate) id: u32,
    /// Its pattern.
    pub(crate) pattern: Box<[u8]>,
}

impl Subscriptions {
    /// Subscriptions held (by id, plus counted patterns).
    pub(crate) fn len(&self) -> usize {
        self.by_id.len() + self.references.len()
    }

    /// Whether `id` is live.
    pub(crate) fn contains(&self, id: u32) -> bool {
        self.entry(id).is_some()
    }

    fn entry(&self, id: u32) -> Option<&Entry> {
        self.by_id
            .find(self.hasher.hash_one(id), |(candidate, _)| *candidate == id)
            .map(|(_, entry)| entry)
    }

    fn pattern_hash(&self, pattern: &[u8]) -> u64 {
        self.hasher.hash_one(pattern)
    }

    /// Adds a subscription by id (the caller checked that `id` is new and the pattern valid).
    pub(crate) fn insert(&mut self, id: u32, pattern: &[u8]) {
        self.next_sequence += 1;
        let sequence = self.next_sequence;
        let hash = self.pattern_hash(pattern);
        self.by_pattern.insert((hash, sequence), id);
        let hasher = &self.hasher;
        self.by_id.insert_unique(
            hasher.hash_one(id),
            (
                id,
                Entry {
                    pattern: pattern.into(),
                    sequence,
                },
            ),
            |(id, _)| hasher.hash_one(*id),
        );
    }

    /// Removes the subscription `id`; returns its pattern.
    pub(crate) fn remove(&mut self, id: u32) -> Option<Box<[u8]>> {
        let hasher = &self.hasher;
        let (_, entry) = self.by_id.remove(
            hasher.hash_one(id),
            |(candidate, _)| *candidate == id,
            |(id, _)| hasher.hash_one(*id),
        )?;
        let hash = self.pattern_hash(&entry.pattern);
        self.by_pattern.remove(&(hash, entry.sequence));
        Some(entry.pattern)
    }

    /// The id of the oldest subscription whose pattern is `pattern`, byte for byte.
    pub(crate) fn oldest_with_pattern(&self, pattern: &[u8]) -> Option<u32> {
        let hash = self.pattern_hash(pattern);
        self.by_pattern
            .range((hash, 0)..=(hash, u64::MAX))
            .map(|(_, &id)| id)
            .find(|&id| {
                self.entry(id)
                    .is_some_and(|entry| &*entry.pattern == pattern)
            })
    }

    /// One more reference to `pattern` on an MM/1 link; true if it is the first.
    pub(crate) fn add_reference(&mut self, pattern: &[u8]) -> bool {
        let hasher = &self.hasher;
        let ((_, count), added) = self.references.find_or_insert_with(
            hasher.hash_one(pattern),
            |(candidate, _)| **candidate == *pattern,
            |(pattern, _)| hasher.hash_one(pattern),
            || (pattern.into(), 0),
        );
        *count += 1;
        added
    }

    /// One reference less to `pattern`; `Some(true)` if it was the last, `None` if there was
    /// none.
    pub(crate) fn remove_reference(&mut self, pattern: &[u8]) -> Option<bool> {
        let hasher = &self.hasher;
        let hash = hasher.hash_one(pattern);
        let (_, count) = self
            .references
            .find_mut(hash, |(candidate, _)| **candidate == *pattern)?;
        *count -= 1;
        if *count > 0 {
            return Some(false);
        }
        self.references.remove(
            hash,
            |(candidate, _)| **candidate == *pattern,
            |(pattern, _)| hasher.hash_one(pattern),
        );
        Some(true)
    }

    /// Every pattern held (counted patterns once), in no particular order.
    pub(crate) fn patterns(&self) -> impl Iterator<Item = &[u8]> {
        self.by_id
            .iter()
            .map(|(_, entry)| &*entry.pattern)
            .chain(self.references.iter().map(|(pattern, _)| &**pattern))
    }

    /// Empties the set: every subscription, to be taken out of the subject index (in slices, if
    /// there are many).
    pub(crate) fn retire(&mut self) -> impl Iterator<Item = Retired> + use<> {
        self.by_pattern = BTreeMap::new();
        let by_id = self.by_id.take_all().map(|(id, entry)| Retired {
            id,
            pattern: entry.pattern,
        });
        let references = self
            .references
            .take_all()
            .map(|(pattern, _)| Retired { id: 0, pattern });
        by_id.chain(references)
    }

    #[cfg(test)]
    fn check(&self) {
        assert_eq!(self.by_pattern.len(), self.by_id.len());
        for (&(hash, sequence), id) in &self.by_pattern {
            let Some(entry) = self.entry(*id) else {
                panic!("id {id} indexed by pattern but absent");
            };
            assert_eq!(entry.sequence, sequence);
            assert_eq!(self.pattern_hash(&entry.pattern), hash);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oldest_with_a_pattern_is_found_and_removed_in_order() {
        let mut subscriptions = Subscriptions::default();
        subscriptions.insert(5, b"A.B");
        subscriptions.insert(2, b"C");
        subscriptions.insert(9, b"A.B");
        subscriptions.insert(1, b"A.B");
        subscriptions.check();
        assert_eq!(subscriptions.oldest_with_pattern(b"A.B"), Some(5));
        assert_eq!(subscriptions.remove(5).as_deref(), Some(&b"A.B"[..]));
        assert_eq!(subscriptions.oldest_with_pattern(b"A.B"), Some(9));
        assert_eq!(subscriptions.remove(9).as_deref(), Some(&b"A.B"[..]));
        assert_eq!(subscriptions.oldest_with_pattern(b"A.B"), Some(1));
        assert_eq!(subscriptions.oldest_with_pattern(b"A"), None);
        assert_eq!(subscriptions.remove(9), None);
        subscriptions.check();
        assert_eq!(subscriptions.len(), 2);
    }

    #[test]
    fn an_index_of_a_million_answers_without_scanning() {
        let mut subscriptions = Subscriptions::default();
        for id in 1..=1_000_000u32 {
            subscriptions.insert(id, format!("S.{}", id % 1000).as_bytes());
        }
        // The oldest with pattern S.7 is id 7; after removing it, 1007.
        assert_eq!(subscriptions.oldest_with_pattern(b"S.7"), Some(7));
        subscriptions.remove(7);
        assert_eq!(subscriptions.oldest_with_pattern(b"S.7"), Some(1007));
        assert_eq!(subscriptions.oldest_with_pattern(b"T.7"), None);
        assert_eq!(subscriptions.retire().count(), 999_999);
        assert_eq!(subscriptions.len(), 0);
    }

    #[test]
    fn patterns_of_an_mm1_link_are_counted() {
        let mut subscriptions = Subscriptions::default();
        assert!(subscriptions.add_reference(b"A"));
        assert!(!subscriptions.add_reference(b"A"));
        assert!(subscriptions.add_reference(b"B"));
        assert_eq!(subscriptions.remove_reference(b"A"), Some(false));
        assert_eq!(subscriptions.remove_reference(b"A"), Some(true));
        assert_eq!(subscriptions.remove_reference(b"A"), None);
        let retired: Vec<Retired> = subscriptions.retire().collect();
        assert_eq!(retired.len(), 1);
        assert_eq!(&*retired[0].pattern, b"B");
    }
}
