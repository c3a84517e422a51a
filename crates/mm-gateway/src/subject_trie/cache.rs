//! The match cache: the results of recent matches, per literal subject.

use std::hash::BuildHasher;

use hashbrown::HashTable;

use super::node::{TrieHasher, token_hash};

/// Most subjects the cache remembers.
///
/// nats-server's sublist uses the same number. An entry is at most 255 bytes of subject plus
/// `CACHE_MAX_RESULT_LEN` values plus ~80 bytes of bookkeeping, so a full cache of the gateway's
/// 8-byte keys is bounded by ~2.4 MiB per service and, with typical results of a few values, is
/// ~150 KiB: it stays in the core's L2 cache, which is the point — a match cache that outgrows
/// the CPU caches is no faster than the trie it fronts. Subjects beyond the cap are served by the
/// trie at uncached speed, which is measured separately.
pub const CACHE_MAX_ENTRIES: usize = 1024;

/// Results longer than this many values are not cached.
///
/// Delivering one message to 256 subscriptions costs tens of microseconds (a frame each); the trie
/// walk and copy an uncached match adds is under one. Capping the length bounds the cache's memory
/// (`<= CACHE_MAX_ENTRIES * CACHE_MAX_RESULT_LEN` values) whatever the fan-out, where
/// nats-server's cache holds every result whole.
pub const CACHE_MAX_RESULT_LEN: usize = 256;

/// How many groups first tokens are hashed into, each with its own generation.
///
/// A wildcard pattern whose first token is literal can only change subjects with that first
/// token: bumping only its group's generation keeps the rest of the cache warm. This matters
/// because every MM/2 connection holds one `_INBOX.<random>.*` (SPEC §7.4): with a single
/// generation, each client arriving or leaving would empty the cache of every other subject.
/// 256 groups make an unrelated first token share a group with probability 1/256; the table is
/// 2 KiB and stays in L1.
const INVALIDATION_GROUPS: usize = 256;

/// Slots of the admission filter (see [`MatchCache::admit`]).
///
/// Large enough that a subject published twice within a few thousand misses is admitted, small
/// enough (16 KiB) to stay in L1/L2.
const ADMISSION_SLOTS: usize = 4096;

/// The generation of an entry that must be recomputed whatever the cache's generations are.
///
/// Generations start at 0 and grow by one per wildcard change: it would take more than 500 years
/// at a billion changes a second to reach this value.
const STALE: u64 = u64::MAX;

/// Counters of the match cache, for statistics and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Subjects currently cached: `entries <= CACHE_MAX_ENTRIES`.
    pub entries: usize,
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that walked the trie (subject absent or stale, result too long to cache, or not
    /// admitted yet).
    pub misses: u64,
}

/// Results of recent matches, keyed by literal subject: admission on the second miss, CLOCK
/// eviction, and lazy, generation-based invalidation.
///
/// Invariants: `entries.len() <= CACHE_MAX_ENTRIES`; `index` holds exactly one slot number per
/// entry, keyed by that entry's `hash`; `clock_hand < CACHE_MAX_ENTRIES`; an entry that is fresh
/// (see [`MatchCache::is_fresh`]) holds exactly the trie's current matches for its subject, and
/// every entry has `values.len() <= CACHE_MAX_RESULT_LEN`.
pub(super) struct MatchCache<T> {
    /// Slot numbers in `entries`, keyed by the subject's hash.
    index: HashTable<usize>,
    /// The cached subjects. Slots are reused on eviction, with their allocations.
    entries: Vec<CacheEntry<T>>,
    /// Next slot the CLOCK eviction looks at.
    clock_hand: usize,
    /// Bumped by every change of a pattern that starts with a wildcard (it may change any entry).
    any_first_token_generation: u64,
    /// Bumped by every change of a wildcard pattern whose first token is a literal in the group.
    group_generations: Box<[u64; INVALIDATION_GROUPS]>,
    /// Fingerprints of subjects that recently missed and were not admitted, by hash.
    recent_misses: Box<[u32; ADMISSION_SLOTS]>,
    /// See [`CacheStats::hits`].
    hits: u64,
    /// See [`CacheStats::misses`].
    misses: u64,
}

/// One cached subject.
struct CacheEntry<T> {
    /// The literal subject.
    subject: Vec<u8>,
    /// Hash of `subject`, kept so that eviction and index growth need not rehash it.
    hash: u64,
    /// The invalidation group of the subject's first token.
    group: usize,
    /// `any_first_token_generation` when this result was computed, or [`STALE`].
    any_first_token_generation: u64,
    /// `group_generations[group]` when this result was computed.
    group_generation: u64,
    /// Set on every hit, cleared by the CLOCK hand passing: an entry is evicted only if it was not
    /// used since the hand last passed it.
    referenced: bool,
    /// The matches.
    values: Vec<T>,
}

/// The invalidation group of a first token.
#[inline]
pub(super) fn group_of(hasher: &TrieHasher, first_token: &[u8]) -> usize {
    // The top bits: hashbrown uses the low ones for buckets and the top 7 as tags, and the group
    // need not be independent of either.
    (token_hash(hasher, first_token) >> 56) as usize % INVALIDATION_GROUPS
}

impl<T> MatchCache<T> {
    /// The counters.
    pub(super) fn stats(&self) -> CacheStats {
        CacheStats {
            entries: self.entries.len(),
            hits: self.hits,
            misses: self.misses,
        }
    }
}

#[cfg(test)]
impl<T: Copy> MatchCache<T> {
    /// Panics unless the struct's invariants hold.
    pub(super) fn check_invariants(&self) {
        assert!(self.entries.len() <= CACHE_MAX_ENTRIES);
        assert_eq!(
            self.index.len(),
            self.entries.len(),
            "one index entry per slot"
        );
        assert!(self.clock_hand < CACHE_MAX_ENTRIES);
        for (slot, entry) in self.entries.iter().enumerate() {
            assert_eq!(self.find(entry.hash, &entry.subject), Some(slot));
            assert!(entry.values.len() <= CACHE_MAX_RESULT_LEN);
            assert!(entry.group < INVALIDATION_GROUPS);
        }
    }
}

impl<T: Copy> MatchCache<T> {
    /// An empty cache.
    pub(super) fn new() -> MatchCache<T> {
        MatchCache {
            index: HashTable::new(),
            entries: Vec::new(),
            clock_hand: 0,
            any_first_token_generation: 0,
            group_generations: Box::new([0; INVALIDATION_GROUPS]),
            recent_misses: Box::new([0; ADMISSION_SLOTS]),
            hits: 0,
            misses: 0,
        }
    }

    /// The hash the cache keys `subject` by.
    #[inline]
    pub(super) fn hash(hasher: &TrieHasher, subject: &[u8]) -> u64 {
        hasher.hash_one(subject)
    }

    /// The slot of `subject`, fresh or stale.
    #[inline]
    pub(super) fn find(&self, hash: u64, subject: &[u8]) -> Option<usize> {
        let entries = &self.entries;
        self.index
            .find(hash, |&slot| {
                let entry = &entries[slot];
                entry.hash == hash && entry.subject == subject
            })
            .copied()
    }

    /// Whether the entry in `slot` holds the trie's current answer.
    #[inline]
    fn is_fresh(&self, slot: usize) -> bool {
        let entry = &self.entries[slot];
        entry.any_first_token_generation == self.any_first_token_generation
            && entry.group_generation == self.group_generations[entry.group]
    }

    /// `slot` if it holds a fresh result, counting a hit and marking it used; `None` (a miss) if
    /// the subject is absent or stale.
    #[inline]
    pub(super) fn fresh_slot(&mut self, slot: Option<usize>) -> Option<usize> {
        match slot {
            Some(slot) if self.is_fresh(slot) => {
                self.hits += 1;
                self.entries[slot].referenced = true;
                Some(slot)
            }
            _ => {
                self.misses += 1;
                None
            }
        }
    }

    /// The cached matches in `slot` (a slot [`MatchCache::fresh_slot`] returned).
    #[inline]
    pub(super) fn values(&self, slot: usize) -> &[T] {
        &self.entries[slot].values
    }

    /// Stores `result` as the new answer of the stale entry in `slot` and returns the stored copy.
    ///
    /// Precondition: `result.len() <= CACHE_MAX_RESULT_LEN`, and `result` is the trie's current
    /// answer for the entry's subject.
    pub(super) fn refresh(&mut self, slot: usize, result: &[T]) -> &[T] {
        let any_first_token_generation = self.any_first_token_generation;
        let entry = &mut self.entries[slot];
        entry.group_generation = self.group_generations[entry.group];
        entry.any_first_token_generation = any_first_token_generation;
        // Published again since it went stale: it is in use.
        entry.referenced = true;
        entry.values.clear();
        entry.values.extend_from_slice(result);
        &entry.values
    }

    /// Whether a subject that is not cached, and whose hash is `hash`, should be.
    ///
    /// While the cache has room, always. Once it is full, only on the second miss within a short
    /// window: the filter remembers a fingerprint of each refused subject in a small direct-mapped
    /// table, and admits the subject if its fingerprint is still there. Subjects published once —
    /// reply inboxes, sequence numbers in subjects, a uniformly spread feed — then never displace
    /// the entries that earn their place, and a miss costs no eviction (the admission half of
    /// TinyLFU's "doorkeeper", without the frequency sketch).
    pub(super) fn admit(&mut self, hash: u64) -> bool {
        if self.entries.len() < CACHE_MAX_ENTRIES {
            return true;
        }
        let slot = hash as usize % ADMISSION_SLOTS;
        let fingerprint = (hash >> 32) as u32;
        if self.recent_misses[slot] == fingerprint {
            self.recent_misses[slot] = !fingerprint;
            true
        } else {
            self.recent_misses[slot] = fingerprint;
            false
        }
    }

    /// Caches `result` as the matches of the new `subject` (in free space or an evicted slot) and
    /// returns the stored copy. `group` is [`group_of`] the subject's first token.
    ///
    /// Precondition: the subject is not cached, `result.len() <= CACHE_MAX_RESULT_LEN`, and
    /// `result` is the trie's current answer for `subject`.
    pub(super) fn insert(&mut self, hash: u64, subject: &[u8], group: usize, result: &[T]) -> &[T] {
        let slot = if self.entries.len() < CACHE_MAX_ENTRIES {
            self.entries.push(CacheEntry {
                subject: Vec::new(),
                hash,
                group,
                any_first_token_generation: STALE,
                group_generation: 0,
                referenced: false,
                values: Vec::new(),
            });
            self.entries.len() - 1
        } else {
            self.evict()
        };
        let any_first_token_generation = self.any_first_token_generation;
        let group_generation = self.group_generations[group];
        let entry = &mut self.entries[slot];
        entry.subject.clear();
        entry.subject.extend_from_slice(subject);
        entry.hash = hash;
        entry.group = group;
        entry.any_first_token_generation = any_first_token_generation;
        entry.group_generation = group_generation;
        // It earns its reference bit with its first hit.
        entry.referenced = false;
        entry.values.clear();
        entry.values.extend_from_slice(result);
        let entries = &self.entries;
        self.index
            .insert_unique(hash, slot, |&slot| entries[slot].hash);
        &self.entries[slot].values
    }

    /// CLOCK: advances the hand past referenced entries, clearing their bit, and frees the first
    /// unreferenced or stale one. Stops within `2 * CACHE_MAX_ENTRIES` steps (after one full turn
    /// every bit is clear) and takes about one step per admitted miss on average.
    ///
    /// Chosen over nats-server's sweep (once the cap is reached, drop entries at random down to a
    /// quarter, in the background) because the service loop is single-threaded: a sweep would run
    /// on it, in one burst, while CLOCK spreads the work over misses and keeps the hot entries.
    fn evict(&mut self) -> usize {
        loop {
            let slot = self.clock_hand;
            self.clock_hand = (slot + 1) % CACHE_MAX_ENTRIES;
            let fresh = self.is_fresh(slot);
            let entry = &mut self.entries[slot];
            if entry.referenced && fresh {
                entry.referenced = false;
                continue;
            }
            if let Ok(found) = self
                .index
                .find_entry(entry.hash, |&candidate| candidate == slot)
            {
                found.remove();
            }
            return slot;
        }
    }

    /// A literal pattern gained `value`. It matches exactly one subject, the pattern itself, so
    /// only that entry changes, in place: amortised O(1), whatever the cache size.
    pub(super) fn literal_inserted(&mut self, hash: u64, pattern: &[u8], value: T) {
        let Some(slot) = self.find(hash, pattern) else {
            return;
        };
        let fresh = self.is_fresh(slot);
        let entry = &mut self.entries[slot];
        if fresh && entry.values.len() < CACHE_MAX_RESULT_LEN {
            entry.values.push(value);
        } else {
            entry.any_first_token_generation = STALE;
        }
    }

    /// A literal pattern lost a value: its entry, if any, goes stale. O(1): finding the value in
    /// the entry would cost up to `CACHE_MAX_RESULT_LEN` comparisons, and the next match of the
    /// subject recomputes it in one trie walk.
    pub(super) fn literal_removed(&mut self, hash: u64, pattern: &[u8]) {
        if let Some(slot) = self.find(hash, pattern) {
            self.entries[slot].any_first_token_generation = STALE;
        }
    }

    /// A wildcard pattern gained or lost a value. It may change every entry in the group of its
    /// first token (`Some(group)`), or every entry at all when its first token is a wildcard
    /// (`None`): those entries go stale at once, in O(1), by a new generation.
    pub(super) fn wildcard_changed(&mut self, first_token_group: Option<usize>) {
        // Cannot reach STALE: see its doc.
        match first_token_group {
            Some(group) => self.group_generations[group % INVALIDATION_GROUPS] += 1,
            None => self.any_first_token_generation += 1,
        }
    }
}
