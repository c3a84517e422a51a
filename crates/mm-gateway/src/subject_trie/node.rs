//! Trie nodes: the token a node is reached by, its children, and its value lists.

use std::hash::{BuildHasher, Hash};

use foldhash::fast::RandomState;

use crate::segmented_table::SegmentedTable;

/// The hasher of every table in one trie: its literal children, its value positions and its match
/// cache.
///
/// foldhash rather than SipHash (std's default) because tokens are short and hashed on every
/// publish; randomly seeded per trie rather than a fixed-key hash such as FxHash because tokens and
/// subscription keys come from clients, and a fixed key would let one client build collisions
/// that slow every lookup of its service.
pub(super) type TrieHasher = RandomState;

/// Longest token stored inside the node rather than on the heap.
///
/// 22 bytes fill the 24 bytes a boxed slice plus its tag take anyway, so inline storage costs
/// nothing extra; tokens such as exchange codes, symbols, desk names and inbox ids fit, which saves
/// one allocation and one pointer chase per node.
const INLINE_TOKEN_MAX_LEN: usize = 22;

/// A value list grows a position index once it holds more than this many values.
///
/// Below it, a linear scan of at most 32 small `Copy` values (a few cache lines) is as fast as
/// hashing, and costs no memory.
const POSITION_INDEX_BUILD_LEN: usize = 32;

/// A value list drops its position index once it holds fewer than this many values.
///
/// Half of [`POSITION_INDEX_BUILD_LEN`], so that a list hovering around the threshold does not
/// build and drop its index on every change: 16 <= build/drop hysteresis.
const POSITION_INDEX_DROP_LEN: usize = 16;

/// The literal token a node is reached by (empty for the root and for `*` children).
///
/// Invariant: `Inline { len, .. }` has `len <= INLINE_TOKEN_MAX_LEN`.
pub(super) enum Token {
    /// A short token, in place.
    Inline {
        /// How many bytes of `bytes` are the token.
        len: u8,
        /// The token, then zeros.
        bytes: [u8; INLINE_TOKEN_MAX_LEN],
    },
    /// A token longer than [`INLINE_TOKEN_MAX_LEN`].
    Heap(Box<[u8]>),
}

impl Token {
    /// The token of the root and of `*` children, which are reached by no literal.
    pub(super) const EMPTY: Token = Token::Inline {
        len: 0,
        bytes: [0; INLINE_TOKEN_MAX_LEN],
    };

    /// Copies `token`, inline when it is short enough.
    pub(super) fn new(token: &[u8]) -> Token {
        match u8::try_from(token.len()) {
            Ok(len) if token.len() <= INLINE_TOKEN_MAX_LEN => {
                let mut bytes = [0; INLINE_TOKEN_MAX_LEN];
                bytes[..token.len()].copy_from_slice(token);
                Token::Inline { len, bytes }
            }
            _ => Token::Heap(token.into()),
        }
    }

    /// The token's bytes.
    #[inline]
    pub(super) fn as_bytes(&self) -> &[u8] {
        match self {
            Token::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Token::Heap(bytes) => bytes,
        }
    }
}

/// Hash of a literal token, as the literal-children tables key it.
#[inline]
pub(super) fn token_hash(hasher: &TrieHasher, token: &[u8]) -> u64 {
    hasher.hash_one(token)
}

/// One trie node: the patterns that end here, and where longer patterns continue.
///
/// A pattern `t1.t2…tn` lives at the node reached from the root by following `t1` … `tn`, each
/// literal through [`Branches::literal_children`] and each `*` through
/// [`Branches::any_one_child`]. A pattern `t1…tk.>` lives in [`Branches::rest_values`] of the
/// node reached by `t1…tk`: `>` is always the last token, so its "child" would only ever hold
/// values, and keeping them in the parent saves a node (nats-server keeps a separate `fwc` node).
///
/// Everything but the token and the values is boxed in [`Branches`], which leaves have none of: a
/// leaf — most nodes, one per distinct literal subject subscribed to — is 48 bytes, and a match
/// that ends at it reads one cache line (its token, then its values). Inner nodes are few and hot,
/// so the extra pointer to their branches costs little.
///
/// Invariant: a node other than the root is not [`Node::is_empty`]; it is freed as soon as it
/// becomes empty. `branches` is `None` whenever [`Branches::is_empty`] would hold.
#[repr(C)] // `token` then `values` first: what a match that ends here reads.
pub(super) struct Node<T> {
    /// The literal token this node is reached by (empty for the root and `*` children). Lives here
    /// rather than as a map key so that the parent's table stores one pointer per child.
    pub(super) token: Token,
    /// Values of the patterns that end at this node.
    pub(super) values: ValueList<T>,
    /// Where longer patterns continue; `None` for leaves.
    pub(super) branches: Option<Box<Branches<T>>>,
}

/// The children of an inner node, and the values of its `>` patterns.
pub(super) struct Branches<T> {
    /// Children reached by a literal token, keyed by the hash of the child's `token`. Owned: a
    /// child is dropped when it is removed from this table. Segmented, so that a node with a
    /// million children (`U.1` … `U.1000000`) grows and shrinks with no long insert or removal.
    pub(super) literal_children: SegmentedTable<Box<Node<T>>>,
    /// The child reached by `*`, if any pattern continues with `*` here.
    pub(super) any_one_child: Option<Box<Node<T>>>,
    /// Values of the patterns that end with `>` right after this node.
    pub(super) rest_values: ValueList<T>,
}

impl<T: Copy + Eq + Hash> Node<T> {
    /// A node with no children and no values.
    pub(super) fn new(token: Token) -> Node<T> {
        Node {
            token,
            values: ValueList::Empty,
            branches: None,
        }
    }

    /// Whether nothing lives at or under this node (so it can be freed).
    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.values.is_empty() && self.branches.is_none()
    }

    /// The branches, created if absent.
    #[inline]
    pub(super) fn branches_mut(&mut self) -> &mut Branches<T> {
        self.branches.get_or_insert_with(|| {
            Box::new(Branches {
                literal_children: SegmentedTable::new(),
                any_one_child: None,
                rest_values: ValueList::Empty,
            })
        })
    }

    /// Drops the branches if nothing is left in them.
    #[inline]
    pub(super) fn drop_empty_branches(&mut self) {
        if self.branches.as_deref().is_some_and(Branches::is_empty) {
            self.branches = None;
        }
    }
}

impl<T: Copy + Eq + Hash> Branches<T> {
    /// Whether there is no child and no `>` value.
    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.rest_values.is_empty()
            && self.any_one_child.is_none()
            && self.literal_children.is_empty()
    }

    /// The child reached by the literal `token`.
    #[inline]
    pub(super) fn literal_child(&self, token: &[u8], hasher: &TrieHasher) -> Option<&Node<T>> {
        if self.literal_children.is_empty() {
            // Under most `*` children: skip hashing.
            return None;
        }
        self.literal_children
            .find(token_hash(hasher, token), |child| {
                child.token.as_bytes() == token
            })
            .map(|child| &**child)
    }

    /// The child reached by the literal `token`, created if absent; `created` is set when it was.
    pub(super) fn literal_child_or_insert(
        &mut self,
        token: &[u8],
        hasher: &TrieHasher,
        created: &mut bool,
    ) -> &mut Node<T> {
        let (child, added) = self.literal_children.find_or_insert_with(
            token_hash(hasher, token),
            |child| child.token.as_bytes() == token,
            |child| token_hash(hasher, child.token.as_bytes()),
            || Box::new(Node::new(Token::new(token))),
        );
        *created |= added;
        child
    }

    /// Removes the child reached by `token` (the table gives its memory back as it empties).
    pub(super) fn remove_literal_child(&mut self, token: &[u8], hasher: &TrieHasher) {
        self.literal_children.remove(
            token_hash(hasher, token),
            |child| child.token.as_bytes() == token,
            |child| token_hash(hasher, child.token.as_bytes()),
        );
    }
}

/// The values stored at one place in the trie, in the shape that makes the common sizes cheap.
///
/// Invariant: `Many` holds at least 2 values (fewer are `Empty` or `One`).
pub(super) enum ValueList<T> {
    /// No value.
    Empty,
    /// One value, in place: most patterns have a single subscriber, and this needs no allocation.
    One(T),
    /// Two or more values. Boxed so that the two lists in every node stay two words each.
    Many(Box<ManyValues<T>>),
}

/// Two or more values, in a vector (iterated on every match) with an optional position index
/// (for removal in O(1)).
///
/// A vector and not a set: a match copies or returns the whole list, and a contiguous slice is the
/// fastest thing to iterate; the index exists only so that removing one value of a long list (say
/// 100 000 subscribers of one subject, leaving one by one) is not a linear scan each time.
///
/// Invariants: `2 <= values.len()`; `positions` is either empty or holds exactly one entry per
/// value, `values[position]` keyed by its hash, and it is non-empty whenever
/// `values.len() > POSITION_INDEX_BUILD_LEN`.
pub(super) struct ManyValues<T> {
    /// The values, in no particular order.
    values: Vec<T>,
    /// Position of each value in `values`, keyed by the value's hash; empty while the list is
    /// short.
    positions: SegmentedTable<usize>,
}

impl<T: Copy + Eq + Hash> ValueList<T> {
    /// Whether the list holds no value.
    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        matches!(self, ValueList::Empty)
    }

    /// The values, in no particular order.
    #[inline]
    pub(super) fn as_slice(&self) -> &[T] {
        match self {
            ValueList::Empty => &[],
            ValueList::One(value) => std::slice::from_ref(value),
            ValueList::Many(many) => &many.values,
        }
    }

    /// Adds `value`. Precondition: it is not already in the list.
    pub(super) fn push(&mut self, value: T, hasher: &TrieHasher) {
        match self {
            ValueList::Empty => *self = ValueList::One(value),
            ValueList::One(first) => {
                let first = *first;
                *self = ValueList::Many(Box::new(ManyValues {
                    values: vec![first, value],
                    positions: SegmentedTable::new(),
                }));
            }
            ValueList::Many(many) => many.push(value, hasher),
        }
    }

    /// Removes `value`; false if it was not in the list.
    pub(super) fn remove(&mut self, value: T, hasher: &TrieHasher) -> bool {
        match self {
            ValueList::Empty => false,
            ValueList::One(only) => {
                if *only != value {
                    return false;
                }
                *self = ValueList::Empty;
                true
            }
            ValueList::Many(many) => {
                if !many.remove(value, hasher) {
                    return false;
                }
                if let [last] = many.values[..] {
                    *self = ValueList::One(last);
                }
                true
            }
        }
    }
}

impl<T: Copy + Eq + Hash> ManyValues<T> {
    fn push(&mut self, value: T, hasher: &TrieHasher) {
        let ManyValues { values, positions } = self;
        let position = values.len();
        values.push(value);
        if !positions.is_empty() {
            positions.insert_unique(hasher.hash_one(value), position, |&position| {
                hasher.hash_one(values[position])
            });
        } else if values.len() > POSITION_INDEX_BUILD_LEN {
            for (position, value) in values.iter().enumerate() {
                positions.insert_unique(hasher.hash_one(value), position, |&position| {
                    hasher.hash_one(values[position])
                });
            }
        }
    }

    fn remove(&mut self, value: T, hasher: &TrieHasher) -> bool {
        let ManyValues { values, positions } = self;
        let indexed = !positions.is_empty();
        let position = if indexed {
            match positions.remove(
                hasher.hash_one(value),
                |&position| values[position] == value,
                |&position| hasher.hash_one(values[position]),
            ) {
                Some(position) => position,
                None => return false,
            }
        } else {
            match values.iter().position(|candidate| *candidate == value) {
                Some(position) => position,
                None => return false,
            }
        };
        // `swap_remove` moves the last value into `position`: repoint its index entry.
        let last = values.len() - 1;
        if indexed && position != last {
            let moved = values[last];
            if let Some(moved_position) = positions.find_mut(hasher.hash_one(moved), |&p| p == last)
            {
                *moved_position = position;
            }
        }
        values.swap_remove(position);

        if indexed && values.len() < POSITION_INDEX_DROP_LEN {
            *positions = SegmentedTable::new();
        }
        if values.capacity() > POSITION_INDEX_DROP_LEN && values.len() * 4 < values.capacity() {
            values.shrink_to(values.len() * 2);
        }
        true
    }
}
