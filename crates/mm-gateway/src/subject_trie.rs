//! The subject index of one service: which subscriptions match a published subject (SPEC §6).
//!
//! # Design
//!
//! A token trie in the manner of nats-server's sublist. A pattern is split on `.`; each node of
//! the trie stands for a prefix of patterns and holds
//!
//! * the values of patterns that **end** at the node,
//! * a hash table of children reached by a **literal** token,
//! * a dedicated child reached by **`*`**, and
//! * the values of patterns that end with **`>`** right after the node (`>` is only ever last, so
//!   its child would hold nothing but values: they are kept in the parent, which saves a node).
//!
//! The last three are boxed together, and leaves — most nodes: one per distinct literal subject
//! subscribed to — have none, so a leaf is 48 bytes (its token inline, up to 22 bytes, and its
//! values) and a match that ends there reads one cache line of it.
//!
//! Matching a literal subject walks the path of its tokens once, one table lookup per token, and
//! branches only into the `*` children it meets; at every node on the way the `>` values match
//! (they need at least one more token: the one being looked at). The cost is O(tokens × `*`
//! branches met), independent of how many subscriptions the service has. When exactly one value
//! list matches — the common case — the result is that list itself, not a copy.
//!
//! Values sit in `ValueList`s: none or one in place, more in a vector (iterated on every match)
//! with a position index once a list is long, so that each of 100 000 subscribers of one subject
//! leaving costs O(1), not O(n). A node left with no value and no child is freed at once, from the
//! leaf up, and tables shrink as they empty: `1 <= node_count() <= 1 + (tokens of all inserted
//! patterns)`, and `node_count() == 1` when the trie is empty.
//!
//! # Match cache
//!
//! [`SubjectTrie::new`] fronts the trie with a cache of results per literal subject, empty results
//! included: at most [`CACHE_MAX_ENTRIES`] subjects of at most [`CACHE_MAX_RESULT_LEN`] values
//! each. While it has room every miss is cached; once full, a subject is admitted on its second
//! miss within a short window (so subjects published once — reply inboxes, a uniformly spread
//! feed — never displace useful entries), and evicts by CLOCK (one bit per entry, amortised O(1)
//! per admission, keeps what is being hit).
//!
//! Invalidation is chosen so that no subscription change ever scans the cache:
//!
//! * a **literal** pattern matches one subject only, itself: inserting adds the value to that one
//!   entry in place, removing marks that one entry stale — one hash lookup, whatever the cache
//!   size;
//! * a **wildcard** pattern whose first token is literal (`_INBOX.x.*`, `PRICES.*.IBM`) can only
//!   change subjects with that first token: first tokens are hashed into 256 groups, each with a
//!   generation, and bumping the pattern's group makes all its entries stale at once, in O(1);
//! * a pattern starting with a wildcard (`*.x`, `>`) may change any entry: a cache-wide generation
//!   makes them all stale, in O(1).
//!
//! A stale entry is recomputed by one trie walk the next time its subject is published.
//!
//! nats-server instead scans every entry on a wildcard change to patch or drop those the pattern
//! matches: O(cache size), ~1024 subject comparisons, under its write lock. That keeps unrelated
//! entries warm, but makes a wildcard subscribe or unsubscribe cost ~1000 times a literal one. The
//! groups keep most unrelated entries warm for O(1) instead. They matter here because every MM/2
//! connection holds one `_INBOX.<random>.*` (SPEC §7.4): with one generation for everything, each
//! client arriving or leaving would invalidate the whole cache. The price is that a service with
//! constant churn of wildcards under one first token runs at uncached speed for that first token,
//! which the benchmarks measure and which meets the match goal on its own.
//!
//! Whether the cache pays is in `docs/benchmarks.md` (Subject index): it does when published subjects
//! repeat (matches 1.2 times faster with Zipf popularity, 2 to 4 times on a hot set), and is
//! neutral when they do not (a uniform spread over 100 000 subjects); subscription changes cost
//! 5–12 % more. [`SubjectTrie::without_cache`] turns it off (nats-server has the same switch,
//! nats-server issue #941, for workloads whose subjects never repeat).
//!
//! # Rejected alternatives
//!
//! * **One arena of nodes addressed by `u32`**: smaller ids, but the arena keeps its high-water
//!   mark after a mass unsubscribe (a slot cannot be given back without renumbering every id);
//!   boxed nodes return memory to the allocator the moment they are freed.
//! * **One global edge table keyed by (parent, token)**: one allocation instead of one per node,
//!   but growing it rehashes every edge of the service at once — a stall of tens of milliseconds
//!   at a million subscriptions on a single-threaded loop; per-node tables only grow as large as
//!   one node's fan-out.
//! * **Children and `>` values inline in every node**: one pointer less per inner node, but a
//!   leaf grows from 48 to 96 bytes; at 100 000 subscriptions and more the trie outgrows the CPU
//!   caches sooner, and uncached matching took ~40 % longer in the benchmark.
//! * **A `HashSet` of values per node**: O(1) removal too, but iterating a hash set on every
//!   publish is slower than a slice, and a match could not be returned as one `&[T]`.
//! * **A byte-wise radix tree**: `*` and `>` are defined on tokens; a token trie follows the
//!   grammar directly and shares prefixes just as well for dotted subjects.
//! * **Shared, reference-counted results** (nats-server returns shared result objects): the
//!   service loop owns the trie and consumes each result before the next change, so a borrowed
//!   slice is enough and costs nothing.
//!
//! # Preconditions not enforced by types
//!
//! Patterns are validated (`mm_wire::subject::validate_pattern_bytes`), subjects are validated
//! literal subjects, and a `(pattern, value)` pair is inserted at most once. Nothing checks them
//! on the hot path; breaking them gives unspecified results. Recursion (removal, matching under
//! `*`, dropping nodes) is as deep as a pattern has tokens: at most 128 for a valid one.

use std::fmt;
use std::hash::Hash;
use std::ops::ControlFlow;

use mm_wire::subject::{PatternToken, pattern_tokens};

mod cache;
mod node;
#[cfg(test)]
mod tests;

use cache::MatchCache;
pub use cache::{CACHE_MAX_ENTRIES, CACHE_MAX_RESULT_LEN, CacheStats};
use node::{Node, Token, TrieHasher, token_hash};

/// The subscription index of one service: patterns with the values (subscription keys) attached
/// to them, and the matches of a literal subject.
///
/// Owned by the service loop, which is single-threaded: no method takes a lock, and matching takes
/// `&mut self` because it fills the cache and a reused result buffer.
///
/// `T` is the subscription key, small and `Copy` (the gateway uses its connection slot and the
/// client's subscription id).
pub struct SubjectTrie<T> {
    /// The node of the empty prefix. Never freed.
    root: Node<T>,
    /// Hashes every table of this trie (see [`node::TrieHasher`] for the choice).
    hasher: TrieHasher,
    /// `(pattern, value)` entries: `len == Σ values over all nodes`.
    len: usize,
    /// Incremented by every insert and every successful remove: a match result obtained at one
    /// generation holds for as long as the generation is unchanged.
    generation: u64,
    /// Live nodes, the root included: `node_count >= 1`.
    node_count: usize,
    /// The match cache, if on.
    cache: Option<MatchCache<T>>,
    /// Where uncached results made of several value lists are assembled; reused so that a match
    /// allocates only when a result is longer than any before.
    scratch: Vec<T>,
}

impl<T: Copy + Eq + Hash> SubjectTrie<T> {
    /// An empty trie with its match cache on.
    pub fn new() -> SubjectTrie<T> {
        SubjectTrie {
            cache: Some(MatchCache::new()),
            ..SubjectTrie::without_cache()
        }
    }

    /// An empty trie without a match cache: every match walks the trie.
    pub fn without_cache() -> SubjectTrie<T> {
        SubjectTrie {
            root: Node::new(Token::EMPTY),
            hasher: TrieHasher::default(),
            len: 0,
            generation: 0,
            node_count: 1,
            cache: None,
            scratch: Vec::new(),
        }
    }

    /// Adds `value` under `pattern`.
    ///
    /// Preconditions: `pattern` is valid (`mm_wire::subject::validate_pattern_bytes`) and
    /// `(pattern, value)` is not already present (the gateway keys values by (connection,
    /// subscription id), which the connection's own table keeps unique).
    ///
    /// Cost: O(tokens) plus, with the cache on, one cache lookup for a literal pattern or O(1)
    /// invalidation for a wildcard one.
    pub fn insert(&mut self, pattern: &[u8], value: T) {
        let hasher = &self.hasher;
        let mut node = &mut self.root;
        let mut created_nodes = 0;
        let mut literal = true;
        let mut ends_with_rest = false;
        for token in pattern_tokens(pattern) {
            let mut created = false;
            node = match token {
                PatternToken::Literal(token) => {
                    node.branches_mut()
                        .literal_child_or_insert(token, hasher, &mut created)
                }
                PatternToken::AnyOne => {
                    literal = false;
                    node.branches_mut().any_one_child.get_or_insert_with(|| {
                        created = true;
                        Box::new(Node::new(Token::EMPTY))
                    })
                }
                PatternToken::AnyRest => {
                    // `>` is the last token of a valid pattern.
                    literal = false;
                    ends_with_rest = true;
                    break;
                }
            };
            created_nodes += usize::from(created);
        }
        if ends_with_rest {
            node.branches_mut().rest_values.push(value, hasher);
        } else {
            node.values.push(value, hasher);
        }
        self.len += 1;
        self.generation += 1;
        self.node_count += created_nodes;

        if let Some(cache) = &mut self.cache {
            if literal {
                let hash = MatchCache::<T>::hash(&self.hasher, pattern);
                cache.literal_inserted(hash, pattern, value);
            } else {
                cache.wildcard_changed(first_token_group(&self.hasher, pattern));
            }
        }
    }

    /// Removes `value` from `pattern`, and frees the nodes this leaves empty.
    ///
    /// Returns true if it was there, false (and changes nothing) if not.
    ///
    /// Cost: O(tokens), O(1) in the number of values on the pattern, plus the same cache work as
    /// [`SubjectTrie::insert`].
    pub fn remove(&mut self, pattern: &[u8], value: T) -> bool {
        let mut removal = Removal {
            freed_nodes: 0,
            literal: true,
        };
        let removed = remove_under(
            &mut self.root,
            &mut pattern_tokens(pattern),
            value,
            &self.hasher,
            &mut removal,
        );
        if !removed {
            return false;
        }
        self.len -= 1;
        self.generation += 1;
        self.node_count -= removal.freed_nodes;

        if let Some(cache) = &mut self.cache {
            if removal.literal {
                let hash = MatchCache::<T>::hash(&self.hasher, pattern);
                cache.literal_removed(hash, pattern);
            } else {
                cache.wildcard_changed(first_token_group(&self.hasher, pattern));
            }
        }
        true
    }

    /// The values of every pattern that matches the literal `subject`: one entry per matching
    /// `(pattern, value)`, in no particular order (a value inserted under two matching patterns
    /// appears twice).
    ///
    /// Precondition: `subject` is a valid literal subject
    /// (`mm_wire::subject::validate_subject_bytes`).
    ///
    /// The slice borrows the trie (its cache, a reused buffer, or — when one pattern matches —
    /// that pattern's own list): consume it before the next change. Allocates only to grow the
    /// reused buffers.
    pub fn matches(&mut self, subject: &[u8]) -> &[T] {
        let SubjectTrie {
            root,
            hasher,
            cache,
            scratch,
            ..
        } = self;
        let Some(cache) = cache else {
            return collect_matches(root, hasher, subject, scratch);
        };
        let hash = MatchCache::<T>::hash(hasher, subject);
        let slot = cache.find(hash, subject);
        if let Some(fresh) = cache.fresh_slot(slot) {
            return cache.values(fresh);
        }
        let result = collect_matches(root, hasher, subject, scratch);
        if result.len() > CACHE_MAX_RESULT_LEN {
            return result;
        }
        match slot {
            Some(stale) => cache.refresh(stale, result),
            None if cache.admit(hash) => {
                let group = cache::group_of(hasher, split_first_token(subject).0);
                cache.insert(hash, subject, group, result)
            }
            None => result,
        }
    }

    /// Whether any pattern matches the literal `subject` (for NO_RESPONDERS, SPEC §7.4).
    ///
    /// Answers from the cache when the subject is there; otherwise walks the trie only until the
    /// first match and does not fill the cache (a subject with a reply and no responder is
    /// usually not published again).
    pub fn has_match(&mut self, subject: &[u8]) -> bool {
        if let Some(cache) = &mut self.cache {
            let slot = cache.find(MatchCache::<T>::hash(&self.hasher, subject), subject);
            if let Some(fresh) = cache.fresh_slot(slot) {
                return !cache.values(fresh).is_empty();
            }
        }
        walk(&self.root, subject, &self.hasher, &mut |_| {
            ControlFlow::Break(())
        })
        .is_break()
    }

    /// Number of `(pattern, value)` entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Changes so far: a result of [`SubjectTrie::matches`] stays valid while this is unchanged
    /// (callers may keep one to skip repeated lookups of the same subject).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether the trie holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of live trie nodes, the root included (so at least 1; exactly 1 when empty). Lets
    /// tests prove that removal frees nodes.
    pub fn node_count(&self) -> usize {
        self.node_count
    }

    /// The cache's counters, or `None` when the cache is off.
    pub fn cache_stats(&self) -> Option<CacheStats> {
        self.cache.as_ref().map(MatchCache::stats)
    }
}

#[cfg(test)]
impl<T: Copy + Eq + Hash> SubjectTrie<T> {
    /// Panics unless the invariants hold: `len` and `node_count` agree with the nodes, no node but
    /// the root is empty, no node keeps empty branches, and the cache's own invariants.
    fn check_invariants(&self) {
        fn visit<T: Copy + Eq + Hash>(node: &Node<T>, is_root: bool, totals: &mut (usize, usize)) {
            assert!(is_root || !node.is_empty(), "an empty node was kept");
            totals.0 += 1;
            totals.1 += node.values.as_slice().len();
            if let Some(branches) = node.branches.as_deref() {
                assert!(!branches.is_empty(), "empty branches were kept");
                totals.1 += branches.rest_values.as_slice().len();
                if let Some(child) = branches.any_one_child.as_deref() {
                    assert!(child.token.as_bytes().is_empty());
                    visit(child, false, totals);
                }
                for child in branches.literal_children.iter() {
                    visit(child, false, totals);
                }
            }
        }
        let mut totals = (0, 0);
        visit(&self.root, true, &mut totals);
        assert_eq!(totals, (self.node_count, self.len), "(nodes, values)");
        if let Some(cache) = &self.cache {
            cache.check_invariants();
        }
    }
}

impl<T: Copy + Eq + Hash> Default for SubjectTrie<T> {
    /// Same as [`SubjectTrie::new`]: cache on.
    fn default() -> Self {
        SubjectTrie::new()
    }
}

impl<T> fmt::Debug for SubjectTrie<T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("SubjectTrie")
            .field("len", &self.len)
            .field("node_count", &self.node_count)
            .field("cache", &self.cache.as_ref().map(|cache| cache.stats()))
            .finish_non_exhaustive()
    }
}

/// What one removal did, gathered on the way back up.
struct Removal {
    /// Nodes freed because they became empty.
    freed_nodes: usize,
    /// Whether the pattern had no wildcard (decides the cache invalidation).
    literal: bool,
}

/// Removes `value` from the pattern whose remaining tokens are `tokens`, under `node`; frees the
/// children it leaves empty. Recursion depth is the pattern's token count (at most 128 for a
/// 255-byte pattern).
fn remove_under<'p, T: Copy + Eq + Hash>(
    node: &mut Node<T>,
    tokens: &mut impl Iterator<Item = PatternToken<'p>>,
    value: T,
    hasher: &TrieHasher,
    removal: &mut Removal,
) -> bool {
    let Some(token) = tokens.next() else {
        return node.values.remove(value, hasher);
    };
    let Some(branches) = node.branches.as_deref_mut() else {
        return false;
    };
    let removed = match token {
        PatternToken::AnyRest => {
            removal.literal = false;
            branches.rest_values.remove(value, hasher)
        }
        PatternToken::AnyOne => {
            removal.literal = false;
            let Some(child) = branches.any_one_child.as_deref_mut() else {
                return false;
            };
            let removed = remove_under(child, tokens, value, hasher, removal);
            if removed && child.is_empty() {
                branches.any_one_child = None;
                removal.freed_nodes += 1;
            }
            removed
        }
        PatternToken::Literal(token) => {
            let Some(child) = branches
                .literal_children
                .find_mut(token_hash(hasher, token), |child| {
                    child.token.as_bytes() == token
                })
            else {
                return false;
            };
            let removed = remove_under(child, tokens, value, hasher, removal);
            if removed && child.is_empty() {
                branches.remove_literal_child(token, hasher);
                removal.freed_nodes += 1;
            }
            removed
        }
    };
    if removed {
        node.drop_empty_branches();
    }
    removed
}

/// The cache invalidation group of a wildcard pattern: that of its first token if it is a literal,
/// `None` (every group) if it is a wildcard.
fn first_token_group(hasher: &TrieHasher, pattern: &[u8]) -> Option<usize> {
    match pattern_tokens(pattern).next() {
        Some(PatternToken::Literal(token)) => Some(cache::group_of(hasher, token)),
        _ => None,
    }
}

/// Splits off the first token of a subject: `(token, rest after the dot)`.
#[inline]
fn split_first_token(subject: &[u8]) -> (&[u8], Option<&[u8]>) {
    match subject.iter().position(|&byte| byte == b'.') {
        Some(dot) => (&subject[..dot], Some(&subject[dot + 1..])),
        None => (subject, None),
    }
}

/// Visits the non-empty value list of every pattern under `node` that matches `subject` (the
/// subject's tokens not yet consumed; non-empty), until `visit` breaks.
///
/// One pass down the literal path; a recursive call for each `*` child met, so the recursion depth
/// is at most the subject's token count.
fn walk<'a, T: Copy + Eq + Hash>(
    mut node: &'a Node<T>,
    mut subject: &[u8],
    hasher: &TrieHasher,
    visit: &mut impl FnMut(&'a [T]) -> ControlFlow<()>,
) -> ControlFlow<()> {
    loop {
        let Some(branches) = node.branches.as_deref() else {
            // A leaf: nothing longer than its own patterns.
            return ControlFlow::Continue(());
        };
        let (token, rest) = split_first_token(subject);
        // `>` after this node takes this token and every one after it.
        if !branches.rest_values.is_empty() {
            visit(branches.rest_values.as_slice())?;
        }
        if let Some(any_one) = branches.any_one_child.as_deref() {
            match rest {
                Some(rest) => walk(any_one, rest, hasher, visit)?,
                None if !any_one.values.is_empty() => visit(any_one.values.as_slice())?,
                None => {}
            }
        }
        let Some(child) = branches.literal_child(token, hasher) else {
            return ControlFlow::Continue(());
        };
        match rest {
            Some(rest) => {
                node = child;
                subject = rest;
            }
            None => {
                if !child.values.is_empty() {
                    visit(child.values.as_slice())?;
                }
                return ControlFlow::Continue(());
            }
        }
    }
}

/// Every match of `subject` as one slice: the matching pattern's own list when exactly one list
/// matches (no copy), otherwise the lists concatenated into `scratch`.
fn collect_matches<'a, T: Copy + Eq + Hash>(
    root: &'a Node<T>,
    hasher: &TrieHasher,
    subject: &[u8],
    scratch: &'a mut Vec<T>,
) -> &'a [T] {
    scratch.clear();
    // Invariant: `first` is non-empty only while `scratch` is empty.
    let mut first: &'a [T] = &[];
    let _ = walk(root, subject, hasher, &mut |list| {
        if scratch.is_empty() && first.is_empty() {
            first = list;
        } else {
            if !first.is_empty() {
                scratch.extend_from_slice(first);
                first = &[];
            }
            scratch.extend_from_slice(list);
        }
        ControlFlow::Continue(())
    });
    if scratch.is_empty() { first } else { scratch }
}
