//! An order-statistic set: a sorted set that also answers "how many elements
//! come before X" ([`OrderStatTree::rank`], [`OrderStatTree::partition_point`])
//! and "which element is the i-th" ([`OrderStatTree::get`]) in O(log n).
//!
//! It exists because `std::collections::BTreeSet` cannot count the elements
//! below a key without walking them (O(n)), while exact rank queries on a
//! sorted-set store (a member's position, "how many scores are above s", a
//! page of entries starting at position i) need that count on sets of
//! several million keys.
//!
//! # Design
//!
//! The tree is a treap: a binary search tree ordered by key that is at the
//! same time a max-heap on per-node random priorities. Random priorities make
//! the shape that of a random BST whatever order the keys arrive in, so the
//! expected depth is O(log n) even for sorted input. Every node stores the
//! size of its subtree, which is what makes rank and positional lookup
//! logarithmic.
//!
//! Nodes live in an arena (a `Vec`) and link to each other by `u32` index,
//! with a sentinel index for "no node" and a free list that reuses the slots
//! of removed nodes. This avoids `unsafe` and `Rc`/`RefCell`, keeps the
//! per-key overhead small (16 bytes of links, size and priority, plus an
//! enum tag when `K` has no spare niche), and caps a tree at `u32::MAX - 1`
//! elements.
//!
//! Priorities come from a SplitMix64 generator. Insert and remove recurse to
//! the depth of the tree, which is O(log n) as long as keys are not chosen
//! with knowledge of the seed: a client that knew it and controlled every
//! inserted key (member ids are client input) could force a deep tree, slow
//! operations and eventually a stack overflow. So [`OrderStatTree::new`]
//! seeds each tree from the process's random hasher keys;
//! [`OrderStatTree::with_seed`] gives reproducible trees for tests.
//!
//! # Why one file
//!
//! About 550 lines of implementation and 300 of tests: the treap's rotations,
//! size bookkeeping and arena only make sense together, and the tests (a
//! `BTreeSet` oracle and a depth check) exercise them as one unit.

use std::cmp::Ordering;
use std::fmt;

/// Index meaning "no node": an absent child, an empty tree, the end of the
/// free list.
const NIL: u32 = u32::MAX;

/// A per-tree random seed from std's `RandomState`, which the OS seeds.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// One element of the tree together with its links.
struct Node<K> {
    key: K,
    left: u32,
    right: u32,
    /// Number of nodes in the subtree rooted here, this node included.
    size: u32,
    /// Heap priority: never smaller than the children's.
    priority: u32,
}

/// One arena entry: a live node, or a free slot chained into the free list.
enum Slot<K> {
    Occupied(Node<K>),
    Vacant { next_free: u32 },
}

/// A sorted set of distinct keys with O(log n) rank and positional lookup.
///
/// See the [module documentation](self) for why it exists and how it works.
pub struct OrderStatTree<K: Ord> {
    slots: Vec<Slot<K>>,
    root: u32,
    /// First vacant slot, or [`NIL`] if every slot is occupied.
    free_head: u32,
    /// SplitMix64 state for node priorities.
    rng_state: u64,
}

impl<K: Ord> OrderStatTree<K> {
    /// Creates an empty set with a random priority seed. Allocates nothing
    /// until the first insert.
    pub fn new() -> Self {
        Self::with_seed(random_seed())
    }

    /// Creates an empty set whose shape depends only on `seed` and the
    /// operations applied: for reproducible tests.
    pub fn with_seed(seed: u64) -> Self {
        Self {
            slots: Vec::new(),
            root: NIL,
            free_head: NIL,
            rng_state: seed,
        }
    }

    /// Number of elements in the set.
    pub fn len(&self) -> usize {
        self.size(self.root) as usize
    }

    /// Whether the set has no elements.
    pub fn is_empty(&self) -> bool {
        self.root == NIL
    }

    /// Adds `key`. Returns `false`, leaving the set unchanged (and dropping
    /// `key`), if an equal key is already present.
    ///
    /// # Panics
    ///
    /// If the set already holds `u32::MAX - 1` elements.
    pub fn insert(&mut self, key: K) -> bool {
        if self.contains(&key) {
            return false;
        }
        let priority = self.next_priority();
        self.root = self.insert_at(self.root, key, priority);
        true
    }

    /// Removes the key equal to `key`. Returns `false` if there is none.
    pub fn remove(&mut self, key: &K) -> bool {
        let (root, removed) = self.remove_at(self.root, key);
        self.root = root;
        removed
    }

    /// Whether a key equal to `key` is present.
    pub fn contains(&self, key: &K) -> bool {
        let mut t = self.root;
        while t != NIL {
            let node = self.node(t);
            match key.cmp(&node.key) {
                Ordering::Less => t = node.left,
                Ordering::Greater => t = node.right,
                Ordering::Equal => return true,
            }
        }
        false
    }

    /// Number of elements strictly less than `key` (key need not be present).
    pub fn rank(&self, key: &K) -> usize {
        self.partition_point(|k| k < key)
    }

    /// Like `slice::partition_point`: `pred` is true for a (possibly empty)
    /// prefix of the ascending order and false after; returns the length of
    /// that prefix. Lets callers count with a bound they cannot build as a `K`
    /// (e.g. "all elements whose score is > s" without knowing a member name).
    ///
    /// If `pred` is not of that form the result is some index, unspecified.
    pub fn partition_point<F: FnMut(&K) -> bool>(&self, mut pred: F) -> usize {
        let mut count = 0;
        let mut t = self.root;
        while t != NIL {
            let node = self.node(t);
            if pred(&node.key) {
                count += self.size(node.left) as usize + 1;
                t = node.right;
            } else {
                t = node.left;
            }
        }
        count
    }

    /// The element at ascending index `i` (0-based), or `None` if
    /// `i >= len()`.
    pub fn get(&self, i: usize) -> Option<&K> {
        if i >= self.len() {
            return None;
        }
        let mut i = i;
        let mut t = self.root;
        loop {
            let node = self.node(t);
            let left = self.size(node.left) as usize;
            match i.cmp(&left) {
                Ordering::Less => t = node.left,
                Ordering::Equal => return Some(&node.key),
                Ordering::Greater => {
                    i -= left + 1;
                    t = node.right;
                }
            }
        }
    }

    /// Ascending iterator starting at index `i` (empty if `i >= len()`).
    /// O(log n) to start, amortised O(1) per step.
    pub fn iter_from(&self, i: usize) -> impl Iterator<Item = &K> + '_ {
        Walk::new(self, i, Direction::Ascending)
    }

    /// Descending iterator starting at index `i` and going to smaller indices
    /// (`i, i-1, ..., 0`); empty if `i >= len()`. O(log n) to start,
    /// amortised O(1) per step.
    pub fn iter_rev_from(&self, i: usize) -> impl Iterator<Item = &K> + '_ {
        Walk::new(self, i, Direction::Descending)
    }

    /// Ascending iterator over the whole set.
    pub fn iter(&self) -> impl Iterator<Item = &K> + '_ {
        self.iter_from(0)
    }

    // ---- arena helpers ----

    fn node(&self, t: u32) -> &Node<K> {
        match &self.slots[t as usize] {
            Slot::Occupied(node) => node,
            Slot::Vacant { .. } => unreachable!("link to free slot {t}"),
        }
    }

    fn node_mut(&mut self, t: u32) -> &mut Node<K> {
        match &mut self.slots[t as usize] {
            Slot::Occupied(node) => node,
            Slot::Vacant { .. } => unreachable!("link to free slot {t}"),
        }
    }

    /// Subtree size, 0 for [`NIL`].
    fn size(&self, t: u32) -> u32 {
        if t == NIL {
            0
        } else {
            self.node(t).size
        }
    }

    /// Recomputes `t`'s subtree size from its children's.
    fn update(&mut self, t: u32) {
        let node = self.node(t);
        let size = 1 + self.size(node.left) + self.size(node.right);
        self.node_mut(t).size = size;
    }

    /// Stores `node` in a vacant slot (or a new one) and returns its index.
    fn alloc(&mut self, node: Node<K>) -> u32 {
        if self.free_head == NIL {
            let t = u32::try_from(self.slots.len())
                .ok()
                .filter(|&t| t != NIL)
                .expect("OrderStatTree is full (u32::MAX - 1 elements)");
            self.slots.push(Slot::Occupied(node));
            return t;
        }
        let t = self.free_head;
        match std::mem::replace(&mut self.slots[t as usize], Slot::Occupied(node)) {
            Slot::Vacant { next_free } => self.free_head = next_free,
            Slot::Occupied(_) => unreachable!("free list points at live slot {t}"),
        }
        t
    }

    /// Drops the node at `t` (and its key) and puts the slot on the free list.
    fn release(&mut self, t: u32) {
        self.slots[t as usize] = Slot::Vacant {
            next_free: self.free_head,
        };
        self.free_head = t;
    }

    /// Next SplitMix64 output, truncated to 32 bits.
    fn next_priority(&mut self) -> u32 {
        self.rng_state = self.rng_state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng_state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 32) as u32
    }

    // ---- treap operations (recursion depth bounded by the tree depth) ----

    /// Inserts `key` (known to be absent) into subtree `t`; returns the new
    /// subtree root. The new node goes where its priority belongs on the
    /// search path, taking everything below that point as its children.
    fn insert_at(&mut self, t: u32, key: K, priority: u32) -> u32 {
        if t == NIL || priority > self.node(t).priority {
            let (left, right) = self.split(t, &key);
            let n = self.alloc(Node {
                key,
                left,
                right,
                size: 0,
                priority,
            });
            self.update(n);
            return n;
        }
        if key < self.node(t).key {
            let left = self.insert_at(self.node(t).left, key, priority);
            self.node_mut(t).left = left;
        } else {
            let right = self.insert_at(self.node(t).right, key, priority);
            self.node_mut(t).right = right;
        }
        self.update(t);
        t
    }

    /// Removes `key` from subtree `t`; returns the new subtree root and
    /// whether a node was removed.
    fn remove_at(&mut self, t: u32, key: &K) -> (u32, bool) {
        if t == NIL {
            return (NIL, false);
        }
        let (left, right) = (self.node(t).left, self.node(t).right);
        match key.cmp(&self.node(t).key) {
            Ordering::Less => {
                let (left, removed) = self.remove_at(left, key);
                self.node_mut(t).left = left;
                self.update(t);
                (t, removed)
            }
            Ordering::Greater => {
                let (right, removed) = self.remove_at(right, key);
                self.node_mut(t).right = right;
                self.update(t);
                (t, removed)
            }
            Ordering::Equal => {
                let merged = self.merge(left, right);
                self.release(t);
                (merged, true)
            }
        }
    }

    /// Splits subtree `t` into the roots of (keys < `key`, keys >= `key`).
    fn split(&mut self, t: u32, key: &K) -> (u32, u32) {
        if t == NIL {
            return (NIL, NIL);
        }
        if self.node(t).key < *key {
            let (less, rest) = self.split(self.node(t).right, key);
            self.node_mut(t).right = less;
            self.update(t);
            (t, rest)
        } else {
            let (less, rest) = self.split(self.node(t).left, key);
            self.node_mut(t).left = rest;
            self.update(t);
            (less, t)
        }
    }

    /// Joins subtrees `a` and `b`, where every key in `a` is less than every
    /// key in `b`; returns the root of the result.
    fn merge(&mut self, a: u32, b: u32) -> u32 {
        if a == NIL {
            return b;
        }
        if b == NIL {
            return a;
        }
        if self.node(a).priority > self.node(b).priority {
            let right = self.merge(self.node(a).right, b);
            self.node_mut(a).right = right;
            self.update(a);
            a
        } else {
            let left = self.merge(a, self.node(b).left);
            self.node_mut(b).left = left;
            self.update(b);
            b
        }
    }
}

impl<K: Ord> Default for OrderStatTree<K> {
    /// Same as [`OrderStatTree::new`].
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Ord + fmt::Debug> fmt::Debug for OrderStatTree<K> {
    /// Formats the elements in ascending order, like a `BTreeSet`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Ascending,
    Descending,
}

/// In-order walk from a starting index in either direction.
///
/// `stack` holds the nodes still to be yielded whose subtree on the far side
/// (right when ascending, left when descending) has not been entered yet; the
/// top is the next node to yield. Its height is at most the tree depth.
struct Walk<'a, K: Ord> {
    tree: &'a OrderStatTree<K>,
    stack: Vec<u32>,
    direction: Direction,
    remaining: usize,
}

impl<'a, K: Ord> Walk<'a, K> {
    /// Walk starting at index `i`; empty if `i >= tree.len()`.
    fn new(tree: &'a OrderStatTree<K>, i: usize, direction: Direction) -> Self {
        let mut walk = Walk {
            tree,
            stack: Vec::new(),
            direction,
            remaining: 0,
        };
        if i >= tree.len() {
            return walk;
        }
        walk.remaining = match direction {
            Direction::Ascending => tree.len() - i,
            Direction::Descending => i + 1,
        };
        // Descend to index `i`, stacking the ancestors that come after it in
        // walk order.
        let mut i = i;
        let mut t = tree.root;
        loop {
            let node = tree.node(t);
            let left = tree.size(node.left) as usize;
            match i.cmp(&left) {
                Ordering::Less => {
                    if direction == Direction::Ascending {
                        walk.stack.push(t);
                    }
                    t = node.left;
                }
                Ordering::Equal => {
                    walk.stack.push(t);
                    return walk;
                }
                Ordering::Greater => {
                    if direction == Direction::Descending {
                        walk.stack.push(t);
                    }
                    i -= left + 1;
                    t = node.right;
                }
            }
        }
    }

    /// Stacks `t` and its near-side spine (left when ascending, right when
    /// descending): the path to the first node of subtree `t` in walk order.
    fn push_spine(&mut self, mut t: u32) {
        while t != NIL {
            self.stack.push(t);
            let node = self.tree.node(t);
            t = match self.direction {
                Direction::Ascending => node.left,
                Direction::Descending => node.right,
            };
        }
    }
}

impl<'a, K: Ord> Iterator for Walk<'a, K> {
    type Item = &'a K;

    fn next(&mut self) -> Option<&'a K> {
        let t = self.stack.pop()?;
        self.remaining -= 1;
        let node = self.tree.node(t);
        let far = match self.direction {
            Direction::Ascending => node.right,
            Direction::Descending => node.left,
        };
        self.push_spine(far);
        Some(&node.key)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

#[cfg(test)]
impl<K: Ord> OrderStatTree<K> {
    /// Panics unless the tree is well formed: BST order, heap order on
    /// priorities, correct subtree sizes, and every slot either reachable
    /// from the root or on the free list (exactly once).
    fn check_invariants(&self) {
        let reachable = self.check_subtree(self.root, None, None);
        assert_eq!(reachable, self.len());
        let mut free = 0;
        let mut t = self.free_head;
        while t != NIL {
            match &self.slots[t as usize] {
                Slot::Vacant { next_free } => t = *next_free,
                Slot::Occupied(_) => panic!("free list points at live slot {t}"),
            }
            free += 1;
            assert!(free <= self.slots.len(), "free list has a cycle");
        }
        assert_eq!(reachable + free, self.slots.len(), "leaked slots");
    }

    /// Checks subtree `t`, whose keys must lie strictly between `lower` and
    /// `upper`; returns its actual size.
    fn check_subtree(&self, t: u32, lower: Option<&K>, upper: Option<&K>) -> usize {
        if t == NIL {
            return 0;
        }
        let node = self.node(t);
        if let Some(lo) = lower {
            assert!(*lo < node.key, "BST order");
        }
        if let Some(hi) = upper {
            assert!(node.key < *hi, "BST order");
        }
        for child in [node.left, node.right] {
            assert!(
                child == NIL || self.node(child).priority <= node.priority,
                "heap order"
            );
        }
        let size = 1
            + self.check_subtree(node.left, lower, Some(&node.key))
            + self.check_subtree(node.right, Some(&node.key), upper);
        assert_eq!(node.size as usize, size, "subtree size");
        size
    }

    /// Number of nodes on the longest root-to-leaf path.
    fn depth(&self) -> usize {
        self.depth_of(self.root)
    }

    fn depth_of(&self, t: u32) -> usize {
        if t == NIL {
            return 0;
        }
        let node = self.node(t);
        1 + self.depth_of(node.left).max(self.depth_of(node.right))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;
    use std::rc::Rc;

    fn tree_of(keys: &[i32]) -> OrderStatTree<i32> {
        let mut tree = OrderStatTree::with_seed(7);
        for &k in keys {
            tree.insert(k);
        }
        tree.check_invariants();
        tree
    }

    fn collect<'a>(it: impl Iterator<Item = &'a i32>) -> Vec<i32> {
        it.copied().collect()
    }

    #[test]
    fn empty_tree() {
        let tree = OrderStatTree::<i32>::new();
        tree.check_invariants();
        assert_eq!(tree.len(), 0);
        assert!(tree.is_empty());
        assert!(!tree.contains(&1));
        assert_eq!(tree.rank(&1), 0);
        assert_eq!(tree.partition_point(|_| true), 0);
        assert_eq!(tree.get(0), None);
        assert_eq!(tree.iter().count(), 0);
        assert_eq!(tree.iter_from(0).count(), 0);
        assert_eq!(tree.iter_rev_from(0).count(), 0);
        assert_eq!(format!("{tree:?}"), "{}");
    }

    #[test]
    fn default_is_empty() {
        let tree: OrderStatTree<String> = OrderStatTree::default();
        assert!(tree.is_empty());
    }

    #[test]
    fn insert_and_duplicates() {
        let mut tree = OrderStatTree::new();
        assert!(tree.insert(5));
        assert!(tree.insert(3));
        assert!(!tree.insert(5));
        assert!(!tree.insert(3));
        assert_eq!(tree.len(), 2);
        assert!(!tree.is_empty());
        assert_eq!(collect(tree.iter()), [3, 5]);
        tree.check_invariants();
    }

    #[test]
    fn remove_present_and_absent() {
        let mut tree = tree_of(&[1, 2, 3]);
        assert!(!tree.remove(&4));
        assert!(!tree.remove(&0));
        assert!(tree.remove(&2));
        assert!(!tree.remove(&2));
        assert_eq!(collect(tree.iter()), [1, 3]);
        tree.check_invariants();
        assert!(tree.remove(&1));
        assert!(tree.remove(&3));
        assert!(tree.is_empty());
        assert!(!tree.remove(&3));
        tree.check_invariants();
    }

    #[test]
    fn removed_slots_are_reused() {
        let mut tree = tree_of(&(0..10).collect::<Vec<_>>());
        for k in 0..10 {
            tree.remove(&k);
        }
        for k in 10..20 {
            tree.insert(k);
        }
        assert_eq!(tree.slots.len(), 10);
        tree.check_invariants();
    }

    #[test]
    fn remove_drops_the_key() {
        let key = Rc::new(7);
        let mut tree = OrderStatTree::new();
        tree.insert(Rc::clone(&key));
        assert!(!tree.insert(Rc::clone(&key)), "duplicate is rejected");
        assert_eq!(Rc::strong_count(&key), 2);
        tree.remove(&key);
        assert_eq!(Rc::strong_count(&key), 1);
    }

    #[test]
    fn contains_checks_membership() {
        let tree = tree_of(&[10, 20, 30]);
        assert!(tree.contains(&10));
        assert!(tree.contains(&30));
        assert!(!tree.contains(&15));
        assert!(!tree.contains(&40));
    }

    #[test]
    fn rank_counts_strictly_smaller() {
        let tree = tree_of(&[10, 20, 30]);
        assert_eq!(tree.rank(&5), 0);
        assert_eq!(tree.rank(&10), 0);
        assert_eq!(tree.rank(&11), 1);
        assert_eq!(tree.rank(&20), 1);
        assert_eq!(tree.rank(&30), 2);
        assert_eq!(tree.rank(&31), 3);
    }

    #[test]
    fn partition_point_counts_prefix() {
        let tree = tree_of(&[10, 20, 30]);
        assert_eq!(tree.partition_point(|_| false), 0);
        assert_eq!(tree.partition_point(|_| true), 3);
        assert_eq!(tree.partition_point(|&k| k <= 20), 2);
        assert_eq!(tree.partition_point(|&k| k < 20), 1);
    }

    #[test]
    fn partition_point_with_bound_not_a_key() {
        // (score, name) keys counted by score alone, as a ZSET store would.
        let mut tree = OrderStatTree::new();
        for (score, name) in [(1, "b"), (2, "a"), (2, "c"), (3, "a")] {
            tree.insert((score, name.to_string()));
        }
        assert_eq!(tree.partition_point(|(score, _)| *score < 2), 1);
        assert_eq!(tree.partition_point(|(score, _)| *score <= 2), 3);
    }

    #[test]
    fn get_by_index() {
        let tree = tree_of(&[30, 10, 20]);
        assert_eq!(tree.get(0), Some(&10));
        assert_eq!(tree.get(1), Some(&20));
        assert_eq!(tree.get(2), Some(&30));
        assert_eq!(tree.get(3), None);
        assert_eq!(tree.get(usize::MAX), None);
    }

    #[test]
    fn iter_from_bounds() {
        let tree = tree_of(&[1, 2, 3, 4]);
        assert_eq!(collect(tree.iter_from(0)), [1, 2, 3, 4]);
        assert_eq!(collect(tree.iter_from(2)), [3, 4]);
        assert_eq!(collect(tree.iter_from(3)), [4]);
        assert_eq!(collect(tree.iter_from(4)), Vec::<i32>::new());
        assert_eq!(collect(tree.iter_from(usize::MAX)), Vec::<i32>::new());
        assert_eq!(tree.iter_from(1).size_hint(), (3, Some(3)));
    }

    #[test]
    fn iter_rev_from_bounds() {
        let tree = tree_of(&[1, 2, 3, 4]);
        assert_eq!(collect(tree.iter_rev_from(0)), [1]);
        assert_eq!(collect(tree.iter_rev_from(2)), [3, 2, 1]);
        assert_eq!(collect(tree.iter_rev_from(3)), [4, 3, 2, 1]);
        assert_eq!(collect(tree.iter_rev_from(4)), Vec::<i32>::new());
        assert_eq!(collect(tree.iter_rev_from(usize::MAX)), Vec::<i32>::new());
        assert_eq!(tree.iter_rev_from(1).size_hint(), (2, Some(2)));
    }

    #[test]
    fn iter_is_ascending() {
        let tree = tree_of(&[5, 1, 4, 2, 3]);
        assert_eq!(collect(tree.iter()), [1, 2, 3, 4, 5]);
    }

    #[test]
    fn debug_lists_elements() {
        let tree = tree_of(&[2, 1]);
        assert_eq!(format!("{tree:?}"), "{1, 2}");
    }

    #[test]
    fn same_operations_build_same_tree() {
        let a = tree_of(&[4, 8, 1, 9, 3]);
        let b = tree_of(&[4, 8, 1, 9, 3]);
        assert_eq!(a.root, b.root);
        let priorities =
            |t: &OrderStatTree<i32>| -> Vec<u32> { (0..5).map(|i| t.node(i).priority).collect() };
        assert_eq!(priorities(&a), priorities(&b));
    }

    /// Sorted inserts are the worst case for an unbalanced BST; the treap must
    /// stay shallow. Runs on the default 2 MiB test-thread stack.
    fn sequential_inserts(n: u32) {
        let mut tree = OrderStatTree::new();
        for k in 0..n {
            assert!(tree.insert(k));
        }
        assert_eq!(tree.len(), n as usize);
        tree.check_invariants();
        let depth = tree.depth();
        assert!(depth < 100, "depth {depth} for {n} sorted inserts");
        for i in (0..n).step_by(997) {
            assert_eq!(tree.get(i as usize), Some(&i));
            assert_eq!(tree.rank(&i), i as usize);
        }
        assert!(tree.iter().copied().eq(0..n));
        for k in (0..n).rev() {
            assert!(tree.remove(&k));
        }
        assert!(tree.is_empty());
    }

    #[test]
    fn sequential_inserts_100k() {
        sequential_inserts(100_000);
    }

    #[test]
    fn sequential_inserts_1m() {
        sequential_inserts(1_000_000);
    }

    #[test]
    fn descending_inserts_100k() {
        let mut tree = OrderStatTree::new();
        for k in (0..100_000).rev() {
            tree.insert(k);
        }
        assert!(tree.depth() < 100);
        assert!(tree.iter().copied().eq(0..100_000));
        tree.check_invariants();
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u16),
        Remove(u16),
        Contains(u16),
        Rank(u16),
        Get(usize),
        PartitionPoint(u16),
        IterFrom(usize),
        IterRevFrom(usize),
    }

    /// Operations on keys in `0..max_key` and indices slightly past the
    /// largest possible length, so duplicates, misses and out-of-range
    /// indices all occur.
    fn op(max_key: u16) -> impl Strategy<Value = Op> {
        let key = 0..max_key;
        let index = 0..max_key as usize + 3;
        prop_oneof![
            4 => key.clone().prop_map(Op::Insert),
            3 => key.clone().prop_map(Op::Remove),
            1 => key.clone().prop_map(Op::Contains),
            1 => key.clone().prop_map(Op::Rank),
            1 => index.clone().prop_map(Op::Get),
            1 => key.prop_map(Op::PartitionPoint),
            1 => index.clone().prop_map(Op::IterFrom),
            1 => index.prop_map(Op::IterRevFrom),
        ]
    }

    fn apply(tree: &mut OrderStatTree<u16>, oracle: &mut BTreeSet<u16>, op: &Op) {
        match *op {
            Op::Insert(k) => assert_eq!(tree.insert(k), oracle.insert(k)),
            Op::Remove(k) => assert_eq!(tree.remove(&k), oracle.remove(&k)),
            Op::Contains(k) => assert_eq!(tree.contains(&k), oracle.contains(&k)),
            Op::Rank(k) => assert_eq!(tree.rank(&k), oracle.range(..k).count()),
            Op::Get(i) => assert_eq!(tree.get(i), oracle.iter().nth(i)),
            Op::PartitionPoint(k) => {
                assert_eq!(tree.partition_point(|&x| x < k), oracle.range(..k).count());
                assert_eq!(
                    tree.partition_point(|&x| x <= k),
                    oracle.range(..=k).count()
                );
            }
            Op::IterFrom(i) => {
                let expected: Vec<_> = oracle.iter().skip(i).collect();
                assert_eq!(tree.iter_from(i).collect::<Vec<_>>(), expected);
            }
            Op::IterRevFrom(i) => {
                let expected: Vec<_> = if i < oracle.len() {
                    oracle.iter().take(i + 1).rev().collect()
                } else {
                    Vec::new()
                };
                assert_eq!(tree.iter_rev_from(i).collect::<Vec<_>>(), expected);
            }
        }
    }

    fn run_against_oracle(ops: &[Op]) {
        let mut tree = OrderStatTree::new();
        let mut oracle = BTreeSet::new();
        for op in ops {
            apply(&mut tree, &mut oracle, op);
            tree.check_invariants();
            assert_eq!(tree.len(), oracle.len());
            assert_eq!(tree.is_empty(), oracle.is_empty());
            assert!(tree.iter().eq(oracle.iter()));
        }
    }

    proptest! {
        #[test]
        fn matches_btreeset_small_keys(ops in prop::collection::vec(op(16), 0..200)) {
            run_against_oracle(&ops);
        }

        #[test]
        fn matches_btreeset_wide_keys(ops in prop::collection::vec(op(500), 0..400)) {
            run_against_oracle(&ops);
        }
    }
}
