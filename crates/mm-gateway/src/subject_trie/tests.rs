//! Tests of the subject trie. Every case runs with the cache on and off, through [`each_mode`].

use std::collections::BTreeSet;

use mm_wire::subject::{matches_bytes, validate_pattern, validate_subject};
use proptest::prelude::*;

use super::node::{Node, ValueList};
use super::*;

/// Runs `check` with the cache on, then off: it gets the mode's name (for failure messages) and
/// the constructor of an empty trie in that mode.
fn each_mode(check: impl Fn(&'static str, fn() -> SubjectTrie<u32>)) {
    check("cache on", SubjectTrie::new);
    check("cache off", SubjectTrie::without_cache);
}

/// The matches of `subject`, sorted (the trie returns them in no particular order).
fn sorted_matches(trie: &mut SubjectTrie<u32>, subject: &str) -> Vec<u32> {
    let mut values = trie.matches(subject.as_bytes()).to_vec();
    values.sort_unstable();
    values
}

/// Asserts the matches of `subject`, twice in a row (the second one comes from the cache when it
/// is on), and that `has_match` agrees.
#[track_caller]
fn assert_matches(mode: &str, trie: &mut SubjectTrie<u32>, subject: &str, expected: &[u32]) {
    for attempt in ["first", "second"] {
        assert_eq!(
            sorted_matches(trie, subject),
            expected,
            "{mode}, {attempt} match of {subject:?}"
        );
    }
    assert_eq!(
        trie.has_match(subject.as_bytes()),
        !expected.is_empty(),
        "{mode}, has_match({subject:?})"
    );
}

/// One line per case: (pattern, subject, whether the pattern matches the subject).
const MATCH_TABLE: &[(&str, &str, bool)] = &[
    ("A", "A", true),
    ("A", "B", false),
    ("A", "A.B", false),
    ("A.B", "A", false),
    ("A.B", "A.B", true),
    ("A.B", "A.C", false),
    ("A.B", "a.b", false),
    ("A.B", "A.B.C", false),
    ("A.B.C", "A.B", false),
    ("A.B.C", "A.B.C", true),
    ("*", "A", true),
    ("*", "A.B", false),
    ("A.*", "A.B", true),
    ("A.*", "A", false),
    ("A.*", "A.B.C", false),
    ("A.*", "B.B", false),
    ("*.B", "A.B", true),
    ("*.B", "A.C", false),
    ("*.*", "A.B", true),
    ("*.*", "A", false),
    ("*.*", "A.B.C", false),
    ("A.*.C", "A.B.C", true),
    ("A.*.C", "A.B.D", false),
    ("A.*.C", "A.C", false),
    ("*.*.*.*.*", "A.B.C.D.E", true),
    ("*.*.*.*.*", "A.B.C.D", false),
    (">", "A", true),
    (">", "A.B.C", true),
    (">", "_INBOX.x.1", true),
    ("A.>", "A", false),
    ("A.>", "A.B", true),
    ("A.>", "A.B.C", true),
    ("A.>", "B.A", false),
    ("A.B.>", "A.B", false),
    ("A.B.>", "A.B.C.D.E", true),
    ("*.>", "A", false),
    ("*.>", "A.B", true),
    ("A.*.>", "A.B", false),
    ("A.*.>", "A.B.C", true),
    ("A.*.>", "A.B.C.D", true),
    ("PRICES.*.>", "PRICES.NYSE.IBM", true),
    ("PRICES.NYSE.*", "PRICES.NYSE.IBM", true),
    ("PRICES.NYSE.*", "PRICES.LSE.IBM", false),
    ("RUN.>", "RUN.SWIM.BIKE", true),
    ("RUN.>", "RUN", false),
    ("foo.bar", "foo.bar.baz", false),
    ("foo.bar.baz", "foo.bar", false),
    ("ü.x", "ü.x", true),
    ("ü.*", "ü.ÿ", true),
    // Long tokens are stored out of line: same answers.
    (
        "a-token-longer-than-twenty-two-bytes.B",
        "a-token-longer-than-twenty-two-bytes.B",
        true,
    ),
    (
        "a-token-longer-than-twenty-two-bytes.B",
        "a-token-longer-than-twenty-two-bytes-.B",
        false,
    ),
    (
        "a-token-longer-than-twenty-two-bytes.*",
        "a-token-longer-than-twenty-two-bytes.C",
        true,
    ),
    ("_INBOX.abc.*", "_INBOX.abc.1", true),
];

#[test]
fn match_table_one_pattern_at_a_time() {
    each_mode(|mode, new_trie| {
        for &(pattern, subject, expected) in MATCH_TABLE {
            assert!(validate_pattern(pattern).is_ok(), "{pattern}");
            assert_eq!(validate_subject(subject), Ok(()), "{subject}");
            assert_eq!(
                matches_bytes(pattern.as_bytes(), subject.as_bytes()),
                expected,
                "the table disagrees with the reference matcher: {pattern:?} {subject:?}"
            );
            let mut trie = new_trie();
            // Prime the cache with the empty answer first: the insert must update it.
            assert_matches(mode, &mut trie, subject, &[]);
            trie.insert(pattern.as_bytes(), 7);
            let expected_values: &[u32] = if expected { &[7] } else { &[] };
            assert_matches(
                &format!("{mode}, pattern {pattern:?}"),
                &mut trie,
                subject,
                expected_values,
            );
            assert!(
                trie.remove(pattern.as_bytes(), 7),
                "{mode}: remove {pattern:?}"
            );
            assert_matches(mode, &mut trie, subject, &[]);
            assert_eq!(trie.node_count(), 1, "{mode}: nodes left by {pattern:?}");
        }
    });
}

#[test]
fn match_table_all_patterns_at_once() {
    each_mode(|mode, new_trie| {
        let mut trie = new_trie();
        let patterns: BTreeSet<&str> = MATCH_TABLE.iter().map(|case| case.0).collect();
        let patterns: Vec<&str> = patterns.into_iter().collect();
        for (value, pattern) in (0u32..).zip(&patterns) {
            trie.insert(pattern.as_bytes(), value);
        }
        for &(_, subject, _) in MATCH_TABLE {
            let expected: Vec<u32> = (0u32..)
                .zip(&patterns)
                .filter(|(_, pattern)| matches_bytes(pattern.as_bytes(), subject.as_bytes()))
                .map(|(value, _)| value)
                .collect();
            assert_matches(mode, &mut trie, subject, &expected);
        }
    });
}

#[test]
fn inserts_and_removes_update_earlier_matches() {
    each_mode(|mode, new_trie| {
        let mut trie = new_trie();
        assert_matches(mode, &mut trie, "A.B", &[]);
        trie.insert(b"A.B", 1);
        assert_matches(mode, &mut trie, "A.B", &[1]);
        trie.insert(b"A.B", 2);
        assert_matches(mode, &mut trie, "A.B", &[1, 2]);
        trie.insert(b"A.*", 3);
        assert_matches(mode, &mut trie, "A.B", &[1, 2, 3]);
        assert_matches(mode, &mut trie, "A.C", &[3]);
        trie.insert(b">", 4);
        assert_matches(mode, &mut trie, "A.B", &[1, 2, 3, 4]);
        assert_matches(mode, &mut trie, "Z", &[4]);
        assert!(trie.remove(b"A.*", 3));
        assert_matches(mode, &mut trie, "A.B", &[1, 2, 4]);
        assert_matches(mode, &mut trie, "A.C", &[4]);
        assert!(trie.remove(b"A.B", 1));
        assert_matches(mode, &mut trie, "A.B", &[2, 4]);
        assert!(trie.remove(b">", 4));
        assert_matches(mode, &mut trie, "A.B", &[2]);
        assert_matches(mode, &mut trie, "Z", &[]);
        assert!(trie.remove(b"A.B", 2));
        assert_matches(mode, &mut trie, "A.B", &[]);
        assert!(trie.is_empty());
        assert_eq!(trie.node_count(), 1, "{mode}");
    });
}

#[test]
fn a_value_under_two_matching_patterns_is_reported_twice() {
    each_mode(|mode, new_trie| {
        let mut trie = new_trie();
        trie.insert(b"A.B", 9);
        trie.insert(b"A.*", 9);
        trie.insert(b"A.>", 9);
        assert_matches(mode, &mut trie, "A.B", &[9, 9, 9]);
        assert_eq!(trie.len(), 3, "{mode}");
    });
}

#[test]
fn removing_what_is_absent_changes_nothing() {
    each_mode(|mode, new_trie| {
        let mut trie = new_trie();
        trie.insert(b"A.B.C", 1);
        trie.insert(b"A.*.C", 2);
        trie.insert(b"A.>", 3);
        let nodes = trie.node_count();
        for (pattern, value) in [
            ("A.B.C", 2),   // wrong value
            ("A.B", 1),     // a prefix: its node exists, holds nothing
            ("A", 3),       // the node under which `>` lives
            ("A.B.C.D", 1), // longer than any pattern
            ("X.Y", 1),     // unknown first token
            ("A.*", 2),     // `*` node exists, holds nothing
            ("A.*.D", 2),   // under `*`, unknown literal
            ("*.B.C", 1),   // no `*` child at the root
            ("A.B.>", 3),   // `>` one level too deep
            (">", 3),       // `>` at the root holds nothing
        ] {
            assert!(
                !trie.remove(pattern.as_bytes(), value),
                "{mode}: {pattern:?} {value}"
            );
            assert_eq!(trie.len(), 3, "{mode}");
            assert_eq!(trie.node_count(), nodes, "{mode}");
        }
        assert_matches(mode, &mut trie, "A.B.C", &[1, 2, 3]);
        assert!(trie.remove(b"A.B.C", 1));
        assert!(!trie.remove(b"A.B.C", 1), "{mode}: second removal");
    });
}

#[test]
fn nodes_are_counted_and_freed() {
    each_mode(|mode, new_trie| {
        let mut trie = new_trie();
        assert_eq!(trie.node_count(), 1, "{mode}: the root");
        trie.insert(b"A.B.C", 1);
        assert_eq!(trie.node_count(), 4, "{mode}: root, A, B, C");
        trie.insert(b"A.*.C", 2);
        assert_eq!(trie.node_count(), 6, "{mode}: + *, C");
        trie.insert(b"A.>", 3);
        trie.insert(b">", 4);
        assert_eq!(
            trie.node_count(),
            6,
            "{mode}: `>` values live in their parent"
        );
        trie.insert(b"A.B", 5);
        assert_eq!(trie.node_count(), 6, "{mode}: A.B's node exists");

        assert!(trie.remove(b"A.B.C", 1));
        assert_eq!(trie.node_count(), 5, "{mode}: C freed, B kept for A.B");
        assert!(trie.remove(b"A.B", 5));
        assert_eq!(trie.node_count(), 4, "{mode}: B freed");
        assert!(trie.remove(b"A.*.C", 2));
        assert_eq!(
            trie.node_count(),
            2,
            "{mode}: * and C freed, A kept for A.>"
        );
        assert!(trie.remove(b"A.>", 3));
        assert_eq!(trie.node_count(), 1, "{mode}: A freed");
        assert!(trie.remove(b">", 4));
        assert_eq!(trie.node_count(), 1, "{mode}");
        assert!(trie.is_empty());
        assert_matches(mode, &mut trie, "A.B.C", &[]);
    });
}

#[test]
fn everything_removed_leaves_only_the_root() {
    each_mode(|mode, new_trie| {
        let mut trie = new_trie();
        let mut entries = Vec::new();
        for exchange in [
            "NYSE",
            "LSE",
            "a-very-long-exchange-name-stored-out-of-line",
        ] {
            for symbol in 0..200 {
                entries.push((format!("PRICES.{exchange}.S{symbol}"), symbol));
            }
            entries.push((format!("PRICES.{exchange}.>"), 5000));
        }
        for symbol in 0..200 {
            entries.push((format!("PRICES.*.S{symbol}"), 1000 + symbol));
        }
        entries.push(("PRICES.>".to_string(), 6000));
        entries.push((">".to_string(), 7000));
        for (pattern, value) in &entries {
            trie.insert(pattern.as_bytes(), *value);
        }
        assert_eq!(trie.len(), entries.len(), "{mode}");
        assert_eq!(
            trie.matches(b"PRICES.NYSE.S7").len(),
            5,
            "{mode}: literal, star, NYSE.>, PRICES.>, >"
        );
        // Remove in a different order from the inserts.
        entries.reverse();
        let third = entries.len() / 3;
        entries.rotate_left(third);
        for (pattern, value) in &entries {
            assert!(trie.remove(pattern.as_bytes(), *value), "{mode}: {pattern}");
        }
        trie.check_invariants();
        assert!(trie.is_empty(), "{mode}");
        assert_eq!(trie.node_count(), 1, "{mode}");
        assert_matches(mode, &mut trie, "PRICES.NYSE.S7", &[]);
    });
}

#[test]
fn many_values_on_one_pattern_are_removed_in_any_order() {
    each_mode(|mode, new_trie| {
        let mut trie = new_trie();
        const VALUES: u32 = 5000;
        for value in 0..VALUES {
            trie.insert(b"HOT.subject", value);
        }
        trie.insert(b"HOT.*", VALUES);
        assert_eq!(trie.matches(b"HOT.subject").len(), 5001, "{mode}");
        // A fixed permutation (multiplication by a unit modulo a prime above VALUES).
        const PRIME: u32 = 5003;
        let order: Vec<u32> = (1..PRIME)
            .map(|index| index * 2311 % PRIME)
            .filter(|value| *value < VALUES)
            .collect();
        assert_eq!(order.len(), VALUES as usize - 1);
        let mut left: BTreeSet<u32> = (0..VALUES).collect();
        for (step, value) in order.iter().enumerate() {
            assert!(trie.remove(b"HOT.subject", *value), "{mode}: {value}");
            left.remove(value);
            if step % 499 == 0 || left.len() < 40 {
                trie.check_invariants();
                let mut expected: Vec<u32> = left.iter().copied().collect();
                expected.push(VALUES);
                assert_matches(mode, &mut trie, "HOT.subject", &expected);
            }
        }
        assert!(trie.remove(b"HOT.subject", 0));
        assert!(trie.remove(b"HOT.*", VALUES));
        assert_eq!(trie.node_count(), 1, "{mode}");
    });
}

#[test]
fn cache_stays_within_its_cap() {
    let mut trie = SubjectTrie::new();
    trie.insert(b"S.*", 1);
    for round in 0..3 {
        for index in 0..CACHE_MAX_ENTRIES * 2 {
            let subject = format!("S.{index}");
            assert_eq!(trie.matches(subject.as_bytes()), &[1], "round {round}");
        }
    }
    let stats = trie.cache_stats().unwrap_or_default();
    assert_eq!(stats.entries, CACHE_MAX_ENTRIES);
    assert_eq!(
        stats.hits + stats.misses,
        3 * 2 * CACHE_MAX_ENTRIES as u64,
        "every lookup is counted"
    );
}

#[test]
fn cache_hits_hot_subjects() {
    let mut trie = SubjectTrie::new();
    trie.insert(b"S.*", 1);
    trie.insert(b"S.hot", 2);
    for index in 0..CACHE_MAX_ENTRIES * 4 {
        assert_eq!(sorted_matches(&mut trie, "S.hot"), [1, 2]);
        let cold = format!("S.cold{index}");
        assert_eq!(trie.matches(cold.as_bytes()), &[1]);
    }
    // CLOCK keeps the subject used on every round.
    let before = trie.cache_stats().unwrap_or_default();
    trie.matches(b"S.hot");
    let after = trie.cache_stats().unwrap_or_default();
    assert_eq!(after.hits, before.hits + 1);
}

#[test]
fn results_longer_than_the_cap_are_right_and_not_cached() {
    let long = CACHE_MAX_RESULT_LEN as u32 + 10;
    let mut trie = SubjectTrie::new();
    for value in 0..long {
        trie.insert(b"FAN.OUT", value);
    }
    trie.insert(b"FAN.*", long);
    for _ in 0..3 {
        assert_eq!(trie.matches(b"FAN.OUT").len(), long as usize + 1);
    }
    assert_eq!(trie.cache_stats().unwrap_or_default().hits, 0);
    // A cached result that grows past the cap by literal inserts goes stale, then uncached.
    trie.insert(b"GROW", 0);
    assert_eq!(trie.matches(b"GROW"), &[0]);
    for value in 1..=long {
        trie.insert(b"GROW", value);
    }
    assert_eq!(trie.matches(b"GROW").len(), long as usize + 1);
}

/// More subjects than the cache holds, some hot and most not, under a stream of literal and
/// wildcard changes (with literal and wildcard first tokens): admission, eviction and every kind
/// of invalidation, checked against the reference matcher on every match.
#[test]
fn cache_under_pressure_agrees_with_the_reference_matcher() {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    let mut rng = StdRng::seed_from_u64(3);
    let subject = |rng: &mut StdRng| -> String {
        if rng.gen_bool(0.7) {
            format!("P.{}.{}", rng.gen_range(0..10), rng.gen_range(0..20))
        } else {
            format!("P.{}.{}", rng.gen_range(0..40), rng.gen_range(0..80))
        }
    };
    let pattern = |rng: &mut StdRng| -> String {
        let (i, j) = (rng.gen_range(0..40), rng.gen_range(0..80));
        match rng.gen_range(0..8) {
            0..=2 => format!("P.{i}.{j}"),
            3 => format!("P.{i}.*"),
            4 => format!("P.*.{j}"),
            5 => "P.>".to_string(),
            6 => format!("*.{i}.{j}"),
            _ => ">".to_string(),
        }
    };
    let mut trie = SubjectTrie::new();
    let mut model: Vec<(String, u32)> = Vec::new();
    for step in 0..40_000u32 {
        if rng.gen_bool(0.9) {
            let subject = subject(&mut rng);
            let mut expected: Vec<u32> = model
                .iter()
                .filter(|entry| matches_bytes(entry.0.as_bytes(), subject.as_bytes()))
                .map(|entry| entry.1)
                .collect();
            expected.sort_unstable();
            assert_eq!(
                sorted_matches(&mut trie, &subject),
                expected,
                "step {step}: {subject}"
            );
        } else if model.len() > 60 || (!model.is_empty() && rng.gen_bool(0.5)) {
            let (pattern, value) = model.swap_remove(rng.gen_range(0..model.len()));
            assert!(
                trie.remove(pattern.as_bytes(), value),
                "step {step}: {pattern}"
            );
        } else {
            let pattern = pattern(&mut rng);
            trie.insert(pattern.as_bytes(), step);
            model.push((pattern, step));
        }
    }
    trie.check_invariants();
    let stats = trie.cache_stats().unwrap_or_default();
    assert_eq!(stats.entries, CACHE_MAX_ENTRIES);
    assert!(stats.hits > 1000, "{stats:?}");
}

#[test]
fn has_match_without_matches_first() {
    each_mode(|mode, new_trie| {
        let mut trie = new_trie();
        trie.insert(b"REQ.*.x", 1);
        assert!(trie.has_match(b"REQ.a.x"), "{mode}");
        assert!(!trie.has_match(b"REQ.a.y"), "{mode}");
        assert!(!trie.has_match(b"REQ.a"), "{mode}");
        assert!(!trie.has_match(b"REQ.a.x.z"), "{mode}");
    });
}

#[test]
fn debug_summarises() {
    let mut trie = SubjectTrie::new();
    trie.insert(b"A.B", 1u32);
    let text = format!("{trie:?}");
    assert!(
        text.starts_with("SubjectTrie { len: 1, node_count: 3"),
        "{text}"
    );
}

/// Memory per subscription depends on these; a change that grows them should be deliberate.
#[test]
fn nodes_and_value_lists_stay_small() {
    type Key = (u32, u32);
    assert!(size_of::<ValueList<Key>>() <= 16);
    assert!(size_of::<Node<Key>>() <= 48, "{}", size_of::<Node<Key>>());
}

/// One step of a random sequence.
#[derive(Debug, Clone)]
enum Operation {
    /// Insert (pattern, value) unless it is present (the trie's precondition).
    Insert(String, u32),
    /// Remove a present entry (chosen by index) or, when `None`, the given pair, present or not.
    Remove(Option<prop::sample::Index>, String, u32),
    /// Match a subject and compare with the reference matcher.
    Match(String),
}

/// Tokens of random subjects: few, so that random patterns match often.
const ALPHABET: &[&str] = &["a", "b", "c"];

fn subject_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(ALPHABET), 1..=4).prop_map(|tokens| tokens.join("."))
}

fn pattern_strategy() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        3 => prop::sample::select(ALPHABET).prop_map(str::to_string),
        1 => Just("*".to_string()),
    ];
    (
        prop::collection::vec(token, 1..=4),
        prop::bool::weighted(0.25),
    )
        .prop_map(|(mut tokens, ends_with_rest)| {
            if ends_with_rest && let Some(last) = tokens.last_mut() {
                *last = ">".to_string();
            }
            tokens.join(".")
        })
}

fn operation_strategy() -> impl Strategy<Value = Operation> {
    prop_oneof![
        4 => (pattern_strategy(), 0..4u32).prop_map(|(pattern, value)| Operation::Insert(pattern, value)),
        2 => (any::<prop::sample::Index>(), pattern_strategy(), 0..4u32)
            .prop_map(|(index, pattern, value)| Operation::Remove(Some(index), pattern, value)),
        1 => (pattern_strategy(), 0..4u32)
            .prop_map(|(pattern, value)| Operation::Remove(None, pattern, value)),
        4 => subject_strategy().prop_map(Operation::Match),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The trie, cached and uncached, against `matches_bytes` over every model entry, through
    /// interleaved inserts, removes and matches; then everything removed frees every node.
    #[test]
    fn agrees_with_the_reference_matcher(
        operations in prop::collection::vec(operation_strategy(), 1..120)
    ) {
        let mut cached = SubjectTrie::new();
        let mut uncached = SubjectTrie::without_cache();
        let mut model: Vec<(String, u32)> = Vec::new();
        for operation in operations {
            match operation {
                Operation::Insert(pattern, value) => {
                    prop_assert!(validate_pattern(&pattern).is_ok(), "{}", pattern);
                    if !model.iter().any(|entry| entry.0 == pattern && entry.1 == value) {
                        cached.insert(pattern.as_bytes(), value);
                        uncached.insert(pattern.as_bytes(), value);
                        model.push((pattern, value));
                    }
                }
                Operation::Remove(index, pattern, value) => {
                    let (pattern, value) = match index {
                        Some(index) if !model.is_empty() => model[index.index(model.len())].clone(),
                        _ => (pattern, value),
                    };
                    let position =
                        model.iter().position(|entry| entry.0 == pattern && entry.1 == value);
                    if let Some(position) = position {
                        model.swap_remove(position);
                    }
                    prop_assert_eq!(cached.remove(pattern.as_bytes(), value), position.is_some());
                    prop_assert_eq!(uncached.remove(pattern.as_bytes(), value), position.is_some());
                }
                Operation::Match(subject) => {
                    let mut expected: Vec<u32> = model
                        .iter()
                        .filter(|entry| matches_bytes(entry.0.as_bytes(), subject.as_bytes()))
                        .map(|entry| entry.1)
                        .collect();
                    expected.sort_unstable();
                    prop_assert_eq!(&sorted_matches(&mut cached, &subject), &expected, "cached {}", subject);
                    prop_assert_eq!(&sorted_matches(&mut uncached, &subject), &expected, "uncached {}", subject);
                    prop_assert_eq!(cached.has_match(subject.as_bytes()), !expected.is_empty());
                    prop_assert_eq!(uncached.has_match(subject.as_bytes()), !expected.is_empty());
                }
            }
            prop_assert_eq!(cached.len(), model.len());
            prop_assert_eq!(uncached.len(), model.len());
            cached.check_invariants();
            uncached.check_invariants();
        }
        for (pattern, value) in model.drain(..) {
            prop_assert!(cached.remove(pattern.as_bytes(), value));
            prop_assert!(uncached.remove(pattern.as_bytes(), value));
        }
        prop_assert_eq!(cached.node_count(), 1);
        prop_assert_eq!(uncached.node_count(), 1);
        prop_assert!(cached.is_empty() && uncached.is_empty());
    }

    /// Long value lists (which grow and drop a position index) under removal in random order.
    #[test]
    fn long_value_lists_survive_random_removal(
        order in (1..300u32).prop_flat_map(|count| Just((0..count).collect::<Vec<_>>()).prop_shuffle()),
        remove_count in 0..300usize,
    ) {
        let mut trie = SubjectTrie::without_cache();
        for value in 0..order.len() as u32 {
            trie.insert(b"L.x", value);
        }
        let remove_count = remove_count.min(order.len());
        for value in &order[..remove_count] {
            prop_assert!(trie.remove(b"L.x", *value));
            prop_assert!(!trie.remove(b"L.x", *value));
        }
        let mut expected = order[remove_count..].to_vec();
        expected.sort_unstable();
        prop_assert_eq!(sorted_matches(&mut trie, "L.x"), expected);
        // Grow again past the index threshold after shrinking.
        for value in &order[..remove_count] {
            trie.insert(b"L.x", *value);
        }
        prop_assert_eq!(trie.matches(b"L.x").len(), order.len());
        for value in &order {
            prop_assert!(trie.remove(b"L.x", *value));
        }
        prop_assert_eq!(trie.node_count(), 1);
    }
}
