//! [`SegmentedTable`]: a hash table that grows one small segment at a time.
//!
//! A `hashbrown` table doubles when it is full and moves every entry in that one insert: at a
//! million entries the insert takes 35–160 ms, and a client that subscribes to a million subjects
//! makes three such tables (the subject index's children of one node, its subscriptions by id,
//! the mesh's interest) cross the same size on the same SUBSCRIBE — 0.4 s in which the service
//! loop serves nobody else.
//!
//! Here entries live in segments of at most [`SEGMENT_MAX_LEN`]. A full segment splits in two
//! (extendible hashing, as in Go's maps since 1.24 and in many databases), so an insert moves at
//! most one segment's entries, whatever the table holds. A directory of `2^depth` slots, indexed
//! by bits of the hash, names the segment of each slot; a segment of local depth `d` owns every
//! slot that agrees with it on the low `d` bits. A removal shrinks its segment once that is a
//! quarter full, so memory comes back as a table empties, again one segment at a time.
//!
//! While the table is small it is one inline segment with no directory: a lookup then costs one
//! branch more than a plain `hashbrown` table.
//!
//! The table stores no hasher: callers pass each value's hash, and a function to recompute it
//! when an entry moves, as with [`hashbrown::HashTable`].

use hashbrown::HashTable;

/// Most entries a segment holds: exactly the capacity of a 4 096-bucket `hashbrown` table, so a
/// segment never grows past that, and a split moves about 1 800 entries (around 0.1 ms).
#[cfg(not(test))]
const SEGMENT_MAX_LEN: usize = 3584;
/// Small segments in tests, so that splits happen in every test that fills a table.
#[cfg(test)]
const SEGMENT_MAX_LEN: usize = 28;

/// The directory uses hash bits from here up: above the bucket index of a segment (at most 12
/// bits) and below the 7-bit tag `hashbrown` takes from the top, so entries of one segment still
/// spread over its buckets and tags.
const DIRECTORY_SHIFT: u32 = 20;

/// Deepest split: the directory's bits stay below `hashbrown`'s tag bits (57–63). Never reached
/// in practice (it would take 2^37 segments); a segment at this depth simply grows.
const MAX_DEPTH: u32 = 57 - DIRECTORY_SHIFT;

/// A segment with room for fewer entries than this is not worth shrinking.
const SHRINK_MIN_CAPACITY: usize = 8;

/// A hash table whose inserts and removals cost at most one small segment's worth of work.
///
/// Invariants: `len` is the sum of the segments' lengths; every entry sits in the segment its
/// hash's directory slot names; see [`Split`].
pub(crate) struct SegmentedTable<T> {
    /// Segment 0: the whole table until the first split.
    first: HashTable<T>,
    /// The directory and the other segments; `None` until the first split.
    split: Option<Box<Split<T>>>,
    /// Entries in all segments.
    len: usize,
}

/// The directory of a table that has split at least once.
///
/// Invariants: `directory.len() == 1 << depth`; `local_depths.len() == others.len() + 1`; a
/// segment `n` of local depth `d <= depth` is named by exactly the slots `i` with
/// `i % 2^d == p_n` for its own `p_n`.
struct Split<T> {
    /// Global depth: the directory has `2^depth` slots.
    depth: u32,
    /// Segment number of each slot (0 is `SegmentedTable::first`, `n` is `others[n - 1]`).
    directory: Vec<u32>,
    /// Local depth of each segment, by segment number.
    local_depths: Vec<u32>,
    /// Segments 1 and up.
    others: Vec<HashTable<T>>,
}

/// The directory slot of `hash` at `depth`.
#[inline]
fn slot(hash: u64, depth: u32) -> usize {
    // `depth <= MAX_DEPTH < 64`, and the directory has `2^depth` slots, so this fits in usize.
    ((hash >> DIRECTORY_SHIFT) & ((1u64 << depth) - 1)) as usize
}

/// The segment that holds `hash`, borrowed from the table's two fields so that `len` stays free.
#[inline]
fn segment_mut<'a, T>(
    first: &'a mut HashTable<T>,
    split: Option<&'a mut Split<T>>,
    hash: u64,
) -> &'a mut HashTable<T> {
    match split {
        None => first,
        Some(split) => match split.directory[slot(hash, split.depth)] as usize {
            0 => first,
            n => &mut split.others[n - 1],
        },
    }
}

impl<T> SegmentedTable<T> {
    /// An empty table; allocates nothing.
    pub(crate) const fn new() -> SegmentedTable<T> {
        SegmentedTable {
            first: HashTable::new(),
            split: None,
            len: 0,
        }
    }

    /// Entries held.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether the table holds nothing.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Entries the segments have room for without growing.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.first.capacity()
            + self.split.as_deref().map_or(0, |split| {
                split.others.iter().map(HashTable::capacity).sum::<usize>()
            })
    }

    /// The segment that holds `hash`.
    #[inline]
    fn segment(&self, hash: u64) -> &HashTable<T> {
        match self.split.as_deref() {
            None => &self.first,
            Some(split) => match split.directory[slot(hash, split.depth)] as usize {
                0 => &self.first,
                n => &split.others[n - 1],
            },
        }
    }

    /// The entry with `hash` for which `eq` holds.
    #[inline]
    pub(crate) fn find(&self, hash: u64, eq: impl FnMut(&T) -> bool) -> Option<&T> {
        self.segment(hash).find(hash, eq)
    }

    /// The entry with `hash` for which `eq` holds, to change in place (its hash must not change).
    #[inline]
    pub(crate) fn find_mut(&mut self, hash: u64, eq: impl FnMut(&T) -> bool) -> Option<&mut T> {
        segment_mut(&mut self.first, self.split.as_deref_mut(), hash).find_mut(hash, eq)
    }

    /// Adds `value`, whose hash is `hash`. Precondition: no equal entry is in the table.
    pub(crate) fn insert_unique(
        &mut self,
        hash: u64,
        value: T,
        hasher: impl Fn(&T) -> u64,
    ) -> &mut T {
        self.make_room(hash, &hasher);
        self.len += 1;
        segment_mut(&mut self.first, self.split.as_deref_mut(), hash)
            .insert_unique(hash, value, hasher)
            .into_mut()
    }

    /// The entry with `hash` for which `eq` holds, added from `make` if there is none; the flag
    /// says whether it was added.
    pub(crate) fn find_or_insert_with(
        &mut self,
        hash: u64,
        mut eq: impl FnMut(&T) -> bool,
        hasher: impl Fn(&T) -> u64,
        make: impl FnOnce() -> T,
    ) -> (&mut T, bool) {
        let segment = self.segment(hash);
        if segment.len() >= SEGMENT_MAX_LEN && segment.find(hash, &mut eq).is_none() {
            self.make_room(hash, &hasher);
        }
        let segment = segment_mut(&mut self.first, self.split.as_deref_mut(), hash);
        match segment.entry(hash, eq, hasher) {
            hashbrown::hash_table::Entry::Occupied(occupied) => (occupied.into_mut(), false),
            hashbrown::hash_table::Entry::Vacant(vacant) => {
                self.len += 1;
                (vacant.insert(make()).into_mut(), true)
            }
        }
    }

    /// Removes and returns the entry with `hash` for which `eq` holds. Shrinks its segment once
    /// that is less than a quarter full, and lets go of everything when the table empties.
    pub(crate) fn remove(
        &mut self,
        hash: u64,
        eq: impl FnMut(&T) -> bool,
        hasher: impl Fn(&T) -> u64,
    ) -> Option<T> {
        let segment = segment_mut(&mut self.first, self.split.as_deref_mut(), hash);
        let (value, _) = segment.find_entry(hash, eq).ok()?.remove();
        if segment.capacity() >= SHRINK_MIN_CAPACITY && segment.len() * 4 < segment.capacity() {
            segment.shrink_to(segment.len() * 2, hasher);
        }
        self.len -= 1;
        if self.len == 0 {
            *self = SegmentedTable::new();
        }
        Some(value)
    }

    /// Every entry, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.first.iter().chain(
            self.split
                .as_deref()
                .into_iter()
                .flat_map(|split| split.others.iter().flat_map(HashTable::iter)),
        )
    }

    /// Empties the table, handing over every entry in no particular order.
    pub(crate) fn take_all(&mut self) -> impl Iterator<Item = T> + use<T> {
        let table = std::mem::take(self);
        table.first.into_iter().chain(
            table
                .split
                .into_iter()
                .flat_map(|split| split.others.into_iter().flatten()),
        )
    }

    /// Splits the segment that `hash` falls in until it has room for one more entry.
    fn make_room(&mut self, hash: u64, hasher: &impl Fn(&T) -> u64) {
        loop {
            let number = match self.split.as_deref() {
                None => 0,
                Some(split) => split.directory[slot(hash, split.depth)] as usize,
            };
            let full = match number {
                0 => self.first.len() >= SEGMENT_MAX_LEN,
                n => self
                    .split
                    .as_deref()
                    .is_some_and(|split| split.others[n - 1].len() >= SEGMENT_MAX_LEN),
            };
            if !full || !self.split_segment(number, hash, hasher) {
                return;
            }
        }
    }

    /// Splits segment `number`, which holds `hash`, in two by the next hash bit; false if it is
    /// at [`MAX_DEPTH`].
    fn split_segment(&mut self, number: usize, hash: u64, hasher: &impl Fn(&T) -> u64) -> bool {
        let split = self.split.get_or_insert_with(|| {
            Box::new(Split {
                depth: 0,
                directory: vec![0],
                local_depths: vec![0],
                others: Vec::new(),
            })
        });
        let local = split.local_depths[number];
        if local >= MAX_DEPTH {
            return false;
        }
        if local == split.depth {
            // Double the directory: each new slot names what its twin names.
            split.directory.extend_from_within(..);
            split.depth += 1;
        }
        let bit = 1u64 << (DIRECTORY_SHIFT + local);
        let source = match number {
            0 => &mut self.first,
            n => &mut split.others[n - 1],
        };
        let mut moved = HashTable::with_capacity(source.len() / 2 + source.len() / 8);
        for value in source.extract_if(|value| hasher(value) & bit != 0) {
            moved.insert_unique(hasher(&value), value, hasher);
        }
        split.others.push(moved);
        let new_number = split.others.len();
        split.local_depths[number] = local + 1;
        split.local_depths.push(local + 1);
        let Ok(new_number) = u32::try_from(new_number) else {
            unreachable!("more than 2^32 segments");
        };
        // The segment's slots agree with `hash` on the low `local` bits; those with the next bit
        // set now name the new segment.
        let first_moved = slot(hash, local) | (1 << local);
        for index in (first_moved..split.directory.len()).step_by(1 << (local + 1)) {
            split.directory[index] = new_number;
        }
        true
    }
}

impl<T> Default for SegmentedTable<T> {
    fn default() -> Self {
        SegmentedTable::new()
    }
}

impl<T> std::fmt::Debug for SegmentedTable<T> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SegmentedTable")
            .field("len", &self.len)
            .field(
                "segments",
                &(1 + self.split.as_deref().map_or(0, |split| split.others.len())),
            )
            .finish()
    }
}

#[cfg(test)]
impl<T> SegmentedTable<T> {
    /// Panics unless the invariants hold.
    fn check(&self, hasher: impl Fn(&T) -> u64) {
        let Some(split) = self.split.as_deref() else {
            assert_eq!(self.len, self.first.len());
            return;
        };
        assert_eq!(split.directory.len(), 1 << split.depth);
        assert_eq!(split.local_depths.len(), split.others.len() + 1);
        let segments = std::iter::once(&self.first).chain(&split.others);
        let mut total = 0;
        for (number, segment) in segments.enumerate() {
            total += segment.len();
            let local = split.local_depths[number];
            assert!(local <= split.depth);
            for value in segment {
                let hash = hasher(value);
                assert_eq!(
                    split.directory[slot(hash, split.depth)] as usize,
                    number,
                    "entry in the wrong segment"
                );
            }
            let named: Vec<usize> = (0..split.directory.len())
                .filter(|&index| split.directory[index] as usize == number)
                .collect();
            assert_eq!(
                named.len(),
                1 << (split.depth - local),
                "slots of a segment"
            );
            let pattern = named[0] % (1 << local);
            assert!(named.iter().all(|index| index % (1 << local) == pattern));
        }
        assert_eq!(total, self.len);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::hash::BuildHasher;

    use foldhash::fast::RandomState;
    use proptest::prelude::*;

    use super::*;

    type Table = SegmentedTable<(u32, u64)>;

    fn hash_of(hasher: &RandomState, key: u32) -> u64 {
        hasher.hash_one(key)
    }

    #[test]
    fn grows_by_splitting_one_segment_at_a_time_and_empties_completely() {
        let hasher = RandomState::default();
        let rehash = |entry: &(u32, u64)| hash_of(&hasher, entry.0);
        let mut table = Table::new();
        for key in 0..10_000u32 {
            let hash = hash_of(&hasher, key);
            table.insert_unique(hash, (key, u64::from(key) * 3), rehash);
            // No segment ever holds more than its bound.
            assert!(table.segment(hash).len() <= SEGMENT_MAX_LEN);
        }
        table.check(rehash);
        assert_eq!(table.len(), 10_000);
        assert!(format!("{table:?}").contains("len: 10000"));
        for key in 0..10_000u32 {
            let found = table.find(hash_of(&hasher, key), |entry| entry.0 == key);
            assert_eq!(found, Some(&(key, u64::from(key) * 3)));
        }
        assert_eq!(table.iter().count(), 10_000);
        for key in (0..10_000u32).filter(|key| key % 10 != 0) {
            let removed = table.remove(hash_of(&hasher, key), |entry| entry.0 == key, rehash);
            assert_eq!(removed, Some((key, u64::from(key) * 3)));
        }
        table.check(rehash);
        // Segments shrank as they emptied: each has room for at most four times what it holds,
        // or is too small to shrink.
        assert_eq!(table.len(), 1_000);
        let segments = 1 + table.split.as_ref().map_or(0, |split| split.others.len());
        let bound = 4 * table.len() + SHRINK_MIN_CAPACITY * segments;
        assert!(table.capacity() <= bound, "{} > {bound}", table.capacity());
        for key in (0..10_000u32).step_by(10) {
            table.remove(hash_of(&hasher, key), |entry| entry.0 == key, rehash);
        }
        assert!(table.is_empty());
        assert_eq!(table.capacity(), 0);
        assert!(table.split.is_none());
    }

    #[test]
    fn find_or_insert_adds_once_and_take_all_hands_everything_over() {
        let hasher = RandomState::default();
        let rehash = |entry: &(u32, u64)| hash_of(&hasher, entry.0);
        let mut table = Table::new();
        for round in 0..2u64 {
            for key in 0..1_000u32 {
                let (entry, added) = table.find_or_insert_with(
                    hash_of(&hasher, key),
                    |entry| entry.0 == key,
                    rehash,
                    || (key, 0),
                );
                assert_eq!(added, round == 0);
                entry.1 += 1;
            }
        }
        table.check(rehash);
        let mut all: Vec<(u32, u64)> = table.take_all().collect();
        all.sort_unstable();
        assert_eq!(all, (0..1_000).map(|key| (key, 2)).collect::<Vec<_>>());
        assert!(table.is_empty());
        assert_eq!(table.iter().count(), 0);
    }

    #[derive(Debug, Clone)]
    enum Operation {
        Insert(u16),
        Remove(u16),
        Bump(u16),
    }

    fn operation() -> impl Strategy<Value = Operation> {
        prop_oneof![
            3 => any::<u16>().prop_map(|key| Operation::Insert(key % 4096)),
            2 => any::<u16>().prop_map(|key| Operation::Remove(key % 4096)),
            1 => any::<u16>().prop_map(|key| Operation::Bump(key % 4096)),
        ]
    }

    proptest! {
        /// Any sequence of inserts, removals and changes leaves the table equal to a `HashMap`
        /// given the same sequence, with its invariants intact.
        #[test]
        fn behaves_as_a_map(operations in proptest::collection::vec(operation(), 0..3_000)) {
            let hasher = RandomState::default();
            let rehash = |entry: &(u32, u64)| hash_of(&hasher, entry.0);
            let mut table = Table::new();
            let mut model: HashMap<u32, u64> = HashMap::new();
            for operation in operations {
                match operation {
                    Operation::Insert(key) => {
                        let key = u32::from(key);
                        let (_, added) = table.find_or_insert_with(
                            hash_of(&hasher, key), |entry| entry.0 == key, rehash, || (key, 0));
                        prop_assert_eq!(added, !model.contains_key(&key));
                        model.entry(key).or_insert(0);
                    }
                    Operation::Remove(key) => {
                        let key = u32::from(key);
                        let removed = table.remove(hash_of(&hasher, key), |entry| entry.0 == key, rehash);
                        prop_assert_eq!(removed.map(|entry| entry.1), model.remove(&key));
                    }
                    Operation::Bump(key) => {
                        let key = u32::from(key);
                        if let Some(entry) = table.find_mut(hash_of(&hasher, key), |entry| entry.0 == key) {
                            entry.1 += 1;
                        }
                        if let Some(value) = model.get_mut(&key) {
                            *value += 1;
                        }
                    }
                }
                prop_assert_eq!(table.len(), model.len());
            }
            table.check(rehash);
            let mut entries: Vec<(u32, u64)> = table.iter().copied().collect();
            entries.sort_unstable();
            let mut expected: Vec<(u32, u64)> = model.into_iter().collect();
            expected.sort_unstable();
            prop_assert_eq!(entries, expected);
        }
    }
}
