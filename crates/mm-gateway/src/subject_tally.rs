//! [`SubjectTally`]: messages and bytes per subject over one window, in bounded memory, for the
//! "top subjects" of a service.
//!
//! Counting never happens per message here. The router counts on each publisher's memo of its
//! last subject (two additions on the path it takes anyway) and folds the memo's counts into the
//! tally only when the memo's subject changes, when the memo is dropped, and when the window
//! closes. A publisher that repeats its subject — the common case — costs one hash lookup per
//! window, not per message.
//!
//! **Bounded.** At most [`TRACKED_SUBJECTS`] subjects are held. When a new subject arrives and the
//! table is full, the lighter half is dropped at once (those with at most the median message
//! count), so the cost of pruning is O(1) per inserted subject on average and heavy subjects
//! survive. Dropped counts stay in the window's totals, so the totals are exact and a pruned
//! subject is only undercounted. A stream of never-repeating subjects (inboxes) costs one insert
//! each, and a prune per [`TRACKED_SUBJECTS`] / 2 of them.

use foldhash::fast::RandomState;

/// Subjects tracked in one window.
pub(crate) const TRACKED_SUBJECTS: usize = 4096;

/// Messages and bytes of one subject.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SubjectCount {
    /// Messages published.
    pub(crate) messages: u64,
    /// Bytes published (whole frames).
    pub(crate) bytes: u64,
}

/// Counts per subject for one window. Owned by the router; only the service thread touches it.
#[derive(Debug)]
pub(crate) struct SubjectTally {
    /// Whether counts are kept (monitoring on); when off, [`SubjectTally::add`] does nothing.
    enabled: bool,
    /// Counts by subject.
    subjects: hashbrown::HashMap<Box<[u8]>, SubjectCount, RandomState>,
    /// Everything added in the window, pruned subjects included.
    total: SubjectCount,
    /// Subjects dropped from the table in this window to keep it bounded.
    pruned: u64,
}

/// One subject and its counts, as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RankedSubject {
    /// The subject (valid UTF-8: subjects are validated before they are routed).
    pub(crate) subject: String,
    /// Its counts.
    pub(crate) count: SubjectCount,
}

/// A closed window: totals and the heaviest subjects by messages and by bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TallyWindow {
    /// Everything published in the window.
    pub(crate) total: SubjectCount,
    /// Heaviest by messages, heaviest first.
    pub(crate) by_messages: Vec<RankedSubject>,
    /// Heaviest by bytes, heaviest first.
    pub(crate) by_bytes: Vec<RankedSubject>,
    /// Distinct subjects still in the table when the window closed.
    pub(crate) subjects: usize,
    /// Subjects pruned during the window.
    pub(crate) pruned: u64,
}

impl SubjectTally {
    /// An empty tally; `enabled` says whether it counts at all.
    pub(crate) fn new(enabled: bool) -> SubjectTally {
        SubjectTally {
            enabled,
            subjects: hashbrown::HashMap::with_hasher(RandomState::default()),
            total: SubjectCount::default(),
            pruned: 0,
        }
    }

    /// Whether counts are kept.
    #[inline]
    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// Adds `count` to `subject`.
    pub(crate) fn add(&mut self, subject: &[u8], count: SubjectCount) {
        if !self.enabled || count.messages == 0 {
            return;
        }
        self.total.messages += count.messages;
        self.total.bytes += count.bytes;
        if let Some(entry) = self.subjects.get_mut(subject) {
            entry.messages += count.messages;
            entry.bytes += count.bytes;
            return;
        }
        if self.subjects.len() >= TRACKED_SUBJECTS {
            self.prune();
        }
        self.subjects.insert(subject.into(), count);
    }

    /// Drops the lighter half of the table: every subject with at most the median message count.
    fn prune(&mut self) {
        let mut counts: Vec<u64> = self.subjects.values().map(|count| count.messages).collect();
        let middle = counts.len() / 2;
        let (_, median, _) = counts.select_nth_unstable(middle);
        let median = *median;
        let before = self.subjects.len();
        // At least half goes (the median itself and everything lighter), all of it when every
        // count is equal.
        self.subjects.retain(|_, count| count.messages > median);
        self.pruned += (before - self.subjects.len()) as u64;
    }

    /// Closes the window: the `top` heaviest subjects by messages and by bytes, and the totals.
    /// The tally starts again empty.
    pub(crate) fn close_window(&mut self, top: usize) -> TallyWindow {
        let window = TallyWindow {
            total: self.total,
            by_messages: self.heaviest(top, |count| (count.messages, count.bytes)),
            by_bytes: self.heaviest(top, |count| (count.bytes, count.messages)),
            subjects: self.subjects.len(),
            pruned: self.pruned,
        };
        self.subjects.clear();
        if self.subjects.capacity() > TRACKED_SUBJECTS * 2 {
            self.subjects.shrink_to(TRACKED_SUBJECTS);
        }
        self.total = SubjectCount::default();
        self.pruned = 0;
        window
    }

    /// The `top` heaviest subjects by `weight`, heaviest first (ties by subject, so the order is
    /// stable). O(n) selection, then a sort of `top` entries.
    fn heaviest(
        &self,
        top: usize,
        weight: impl Fn(&SubjectCount) -> (u64, u64),
    ) -> Vec<RankedSubject> {
        let mut entries: Vec<(&[u8], &SubjectCount)> = self
            .subjects
            .iter()
            .map(|(subject, count)| (&subject[..], count))
            .collect();
        let order = |a: &(&[u8], &SubjectCount), b: &(&[u8], &SubjectCount)| {
            weight(b.1).cmp(&weight(a.1)).then_with(|| a.0.cmp(b.0))
        };
        if entries.len() > top && top > 0 {
            entries.select_nth_unstable_by(top - 1, order);
        }
        entries.truncate(top);
        entries.sort_by(order);
        entries
            .into_iter()
            .map(|(subject, count)| RankedSubject {
                subject: String::from_utf8_lossy(subject).into_owned(),
                count: *count,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(messages: u64, bytes: u64) -> SubjectCount {
        SubjectCount { messages, bytes }
    }

    #[test]
    fn ranks_by_messages_and_by_bytes() {
        let mut tally = SubjectTally::new(true);
        tally.add(b"A", count(10, 100));
        tally.add(b"B", count(5, 5000));
        tally.add(b"A", count(10, 100));
        tally.add(b"C", count(1, 10));
        let window = tally.close_window(2);
        assert_eq!(window.total, count(26, 5210));
        let names = |list: &[RankedSubject]| -> Vec<String> {
            list.iter().map(|entry| entry.subject.clone()).collect()
        };
        assert_eq!(names(&window.by_messages), ["A", "B"]);
        assert_eq!(window.by_messages[0].count, count(20, 200));
        assert_eq!(names(&window.by_bytes), ["B", "A"]);
        assert_eq!(window.subjects, 3);
        // The next window starts empty.
        assert_eq!(tally.close_window(2), TallyWindow::default());
    }

    #[test]
    fn disabled_counts_nothing() {
        let mut tally = SubjectTally::new(false);
        tally.add(b"A", count(1, 1));
        assert_eq!(tally.close_window(5).total, count(0, 0));
    }

    #[test]
    fn stays_bounded_and_keeps_heavy_subjects_under_a_flood_of_new_ones() {
        let mut tally = SubjectTally::new(true);
        for round in 0..10u64 {
            tally.add(b"HEAVY", count(1000, 1000));
            for n in 0..TRACKED_SUBJECTS as u64 {
                let subject = format!("_INBOX.{round}.{n}");
                tally.add(subject.as_bytes(), count(1, 50));
                assert!(tally.subjects.len() <= TRACKED_SUBJECTS);
            }
        }
        let window = tally.close_window(3);
        assert_eq!(window.by_messages[0].subject, "HEAVY");
        assert_eq!(window.by_messages[0].count.messages, 10_000);
        // Totals are exact whatever was pruned.
        assert_eq!(window.total.messages, 10_000 + 10 * TRACKED_SUBJECTS as u64);
        assert!(window.pruned > 0);
    }

    #[test]
    fn equal_counts_still_prune() {
        let mut tally = SubjectTally::new(true);
        for n in 0..(3 * TRACKED_SUBJECTS) {
            tally.add(format!("S.{n}").as_bytes(), count(1, 1));
            assert!(tally.subjects.len() <= TRACKED_SUBJECTS);
        }
    }
}
