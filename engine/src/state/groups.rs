//! One window's groups, in columns.
//!
//! Owns how the groups of one window are laid out: every group's key values
//! in one list, its accumulators in another, its change periods in a third,
//! all of one [`Shape`], and a hash table of their positions; finding,
//! adding, replacing and bulk-filling groups; copying a window. It must not
//! know about windows in time, watermarks or snapshots (that is
//! [`WindowedState`](super::WindowedState)'s).

use std::hash::BuildHasher;

use hashbrown::hash_table::Entry;
use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;
use smallvec::SmallVec;

use super::backing::{self, prefault, Fresh};
use super::Accumulator;
use crate::schema::Value;

/// The values of the grouping keys of one group (inline up to two keys).
pub type GroupKey = SmallVec<[Value; 2]>;

/// The accumulators of one group (inline up to four aggregates).
pub type Accumulators = SmallVec<[Accumulator; 4]>;

/// How many key values and accumulators each group of a window has. One
/// aggregation gives every group the same shape; a state file whose
/// groups differ is not the state of one aggregation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shape {
    /// Values in a group's key.
    pub keys: usize,
    /// Accumulators of a group.
    pub accs: usize,
}

/// A group offered to a window whose groups have another shape: the state
/// being restored is not one aggregation's (a damaged or foreign file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShapeMismatch {
    /// The window's start.
    pub start: i64,
    /// The shape of the window's groups.
    pub window: Shape,
    /// The shape of the group offered.
    pub group: Shape,
}

impl std::fmt::Display for ShapeMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "window {} holds groups of {} key values and {} aggregates, not {} and {}",
            self.start, self.window.keys, self.window.accs, self.group.keys, self.group.accs
        )
    }
}

impl std::error::Error for ShapeMismatch {}

impl From<ShapeMismatch> for String {
    fn from(e: ShapeMismatch) -> String {
        e.to_string()
    }
}

/// The change periods of one group.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Periods {
    /// The change period in which the group last changed (0: none tracked).
    pub(super) changed_in: u32,
    /// The change period whose snapshot already holds this group's value.
    pub(super) saved_for: u32,
}

/// Group `i`'s part of a list of `width` items per group.
#[inline]
pub(super) fn part<T>(items: &[T], width: usize, i: usize) -> &[T] {
    &items[i * width..(i + 1) * width]
}

/// The groups of one window, in columns: every group's key values in one
/// list, its accumulators in another and its change periods in a third,
/// each in the order the groups were created, and a hash table of their
/// positions.
///
/// A group of one key and two aggregates takes 96 bytes (24 per value, 32
/// per accumulator, 8 for its periods) and no more: no inline room for the
/// keys and aggregates it does not have, no empty buckets (the table holds
/// 4-byte positions). A restore of a million such groups writes 96 MB of
/// fresh memory, not 200. Growing the table moves positions, not groups.
/// Groups leave a window only with the whole window, so positions never
/// change.
#[derive(Default)]
pub(super) struct Groups {
    pub(super) index: HashTable<u32>,
    pub(super) keys: Vec<Value>,
    pub(super) accs: Vec<Accumulator>,
    pub(super) periods: Vec<Periods>,
    /// The shape of every group: set by the first.
    pub(super) shape: Shape,
    /// In a copy fed by another state's deltas (a checkpoint's shadow):
    /// for a group at position `p` of that state's window, the position it
    /// was put at here (`u32::MAX`: none yet). A hint only, always checked
    /// against the key: a stale or foreign position costs the lookup by
    /// key, never a wrong group.
    pub(super) twin: Vec<u32>,
}

impl Groups {
    /// A copy of the groups, none of them marked as changed; the table is
    /// copied as it is, not built again. The columns are written while a
    /// helper thread backs them with memory.
    pub(super) fn copy(&self) -> Groups {
        let mut keys = Vec::with_capacity(self.keys.len());
        let mut accs = Vec::with_capacity(self.accs.len());
        let mut periods = Vec::with_capacity(self.periods.len());
        let fresh = [
            Fresh::of(keys.spare_capacity_mut()),
            Fresh::of(accs.spare_capacity_mut()),
            Fresh::of(periods.spare_capacity_mut()),
        ];
        backing::populate_while(&fresh, || {
            keys.extend_from_slice(&self.keys);
            accs.extend_from_slice(&self.accs);
            periods.resize(self.periods.len(), Periods::default());
        });
        Groups {
            index: self.index.clone(),
            keys,
            accs,
            periods,
            shape: self.shape,
            twin: Vec::new(),
        }
    }
}

/// Reserves room for `additional` more items in `v`, backing fresh memory
/// at once.
fn reserve_backed<T>(v: &mut Vec<T>, additional: usize) {
    let before = v.capacity();
    v.reserve(additional);
    if v.capacity() != before {
        prefault(v.spare_capacity_mut());
    }
}

impl Groups {
    pub(super) fn with_capacity(n: usize, shape: Shape) -> Groups {
        let mut groups = Groups {
            index: HashTable::with_capacity(n),
            shape,
            ..Groups::default()
        };
        groups.reserve_lists(n);
        groups
    }

    pub(super) fn len(&self) -> usize {
        self.periods.len()
    }

    fn key(&self, i: usize) -> &[Value] {
        part(&self.keys, self.shape.keys, i)
    }

    fn accs(&self, i: usize) -> &[Accumulator] {
        part(&self.accs, self.shape.accs, i)
    }

    /// Drops every group and keeps the room they took.
    pub(super) fn clear(&mut self) {
        self.keys.clear();
        self.accs.clear();
        self.periods.clear();
        self.index.clear();
        self.twin.clear();
    }

    /// Room in the lists for `additional` more groups of this shape.
    fn reserve_lists(&mut self, additional: usize) {
        reserve_backed(&mut self.keys, additional * self.shape.keys);
        reserve_backed(&mut self.accs, additional * self.shape.accs);
        reserve_backed(&mut self.periods, additional);
    }

    /// Checks a group of `group`'s shape may join; an empty window takes
    /// the shape of its first group.
    pub(super) fn admit(&mut self, start: i64, group: Shape) -> Result<(), ShapeMismatch> {
        if self.len() == 0 {
            self.shape = group;
            return Ok(());
        }
        if self.shape == group {
            Ok(())
        } else {
            Err(ShapeMismatch {
                start,
                window: self.shape,
                group,
            })
        }
    }

    /// Appends a group without indexing it; its position.
    fn push(&mut self, key: &[Value], accs: impl IntoIterator<Item = Accumulator>) -> usize {
        let at = self.len();
        self.keys.extend_from_slice(key);
        self.accs.extend(accs);
        self.periods.push(Periods::default());
        debug_assert_eq!(self.accs.len(), self.periods.len() * self.shape.accs);
        at
    }

    /// The position of group `key` (hashing to `hash`), added with `init`
    /// when new (then `true`).
    ///
    /// # Panics
    /// If the new group's shape is not the window's: one aggregation
    /// builds every key and accumulator list the same way.
    #[inline]
    pub(super) fn position(
        &mut self,
        start: i64,
        hash: u64,
        key: &[Value],
        hasher: FxBuildHasher,
        init: impl FnOnce() -> Accumulators,
    ) -> (usize, bool) {
        if let Some(at) = self.find(hash, key) {
            return (at, false);
        }
        let accs = init();
        let shape = Shape {
            keys: key.len(),
            accs: accs.len(),
        };
        if let Err(e) = self.admit(start, shape) {
            panic!("an aggregation's groups all have one shape: {e}");
        }
        (self.insert_new(hash, key, accs, hasher), true)
    }

    /// Appends a group of the window's shape that is not there and indexes
    /// it; its position.
    fn insert_new(
        &mut self,
        hash: u64,
        key: &[Value],
        accs: impl IntoIterator<Item = Accumulator>,
        hasher: FxBuildHasher,
    ) -> usize {
        let at = self.push(key, accs);
        // A window of 2^32 groups would take some 100 GB.
        let pos = u32::try_from(at).expect("fewer than 2^32 groups in a window");
        let Groups {
            index, keys, shape, ..
        } = self;
        let width = shape.keys;
        index.insert_unique(hash, pos, |&i| {
            hasher.hash_one(part(keys, width, i as usize))
        });
        at
    }

    /// Puts one group into the window, replacing the group's value if it
    /// is there; `true` if it is new.
    pub(super) fn put(
        &mut self,
        start: i64,
        key: &[Value],
        accs: Accumulators,
        hasher: FxBuildHasher,
    ) -> Result<bool, ShapeMismatch> {
        self.put_at(start, key, accs, hasher).map(|(_, new)| new)
    }

    /// [`Groups::put`], also returning the group's position.
    fn put_at(
        &mut self,
        start: i64,
        key: &[Value],
        accs: Accumulators,
        hasher: FxBuildHasher,
    ) -> Result<(usize, bool), ShapeMismatch> {
        self.admit(
            start,
            Shape {
                keys: key.len(),
                accs: accs.len(),
            },
        )?;
        let hash = hasher.hash_one(key);
        if let Some(at) = self.find(hash, key) {
            self.replace(at, accs);
            return Ok((at, false));
        }
        Ok((self.insert_new(hash, key, accs, hasher), true))
    }

    /// Replaces group `at`'s accumulators (as many as the shape has) and
    /// forgets its change periods.
    fn replace(&mut self, at: usize, accs: Accumulators) {
        let aw = self.shape.accs;
        for (slot, acc) in self.accs[at * aw..(at + 1) * aw].iter_mut().zip(accs) {
            *slot = acc;
        }
        self.periods[at] = Periods::default();
    }

    /// [`Groups::put`] of a group a twin state's delta carries from
    /// position `from` of its window: found where the twin's group at
    /// `from` was put before when that group has this key (no hashing),
    /// else by its key; either way remembered for the next delta.
    pub(super) fn put_from_twin(
        &mut self,
        start: i64,
        from: u32,
        key: &[Value],
        accs: Accumulators,
        hasher: FxBuildHasher,
    ) -> Result<bool, ShapeMismatch> {
        let from = from as usize;
        if let Some(&at) = self.twin.get(from) {
            let at = at as usize;
            if at < self.len() && accs.len() == self.shape.accs && self.key(at) == key {
                self.replace(at, accs);
                return Ok(false);
            }
        }
        let (at, new) = self.put_at(start, key, accs, hasher)?;
        self.remember_twin(from, at);
        Ok(new)
    }

    /// Notes that the twin's group at position `from` is this window's
    /// group `at`. A position far beyond the window's size is not a
    /// twin's (the two windows hold the same groups): not kept, so a
    /// foreign delta cannot make the list grow without bound.
    fn remember_twin(&mut self, from: usize, at: usize) {
        if from > self.len().saturating_mul(2).saturating_add(1024) {
            return;
        }
        if self.twin.len() <= from {
            self.twin.resize(from + 1, u32::MAX);
        }
        // Positions fit a u32 (`insert_new`).
        self.twin[from] = at as u32;
    }

    /// Notes, after the window was filled from empty with a twin's groups
    /// in the order given, that the twin's group at `from[i]` is group `i`.
    pub(super) fn remember_twins(&mut self, from: &[u32]) {
        for (at, &f) in from.iter().enumerate() {
            self.remember_twin(f as usize, at);
        }
    }

    /// Indexes the list, whose table is empty and has room for it all;
    /// `hashes[i]` is the hash of group `i`'s key. The groups go in
    /// ordered by the part of the table their hash points into (a counting
    /// sort on the top bits of the bucket), so the table is filled in one
    /// sweep. `false`, with the table partly built, if a key is there
    /// twice.
    pub(super) fn index_in_bucket_order(&mut self, hashes: &[u64], hasher: FxBuildHasher) -> bool {
        debug_assert!(self.index.is_empty() && self.index.capacity() >= hashes.len());
        // The table's buckets: a power of two of which 7/8 is its capacity.
        let bucket_bits = (self.index.capacity() / 7 * 8)
            .next_power_of_two()
            .trailing_zeros();
        let part_bits = bucket_bits.min(12);
        let shift = bucket_bits - part_bits;
        let mask = (1u64 << bucket_bits) - 1;
        let table_part = |h: u64| ((h & mask) >> shift) as usize;
        let mut starts = vec![0u32; (1 << part_bits) + 1];
        for &h in hashes {
            starts[table_part(h) + 1] += 1;
        }
        for p in 1..starts.len() {
            starts[p] += starts[p - 1];
        }
        let mut order = vec![0u32; hashes.len()];
        for (i, &h) in hashes.iter().enumerate() {
            let at = &mut starts[table_part(h)];
            order[*at as usize] = u32::try_from(i).expect("fewer than 2^32 groups in a window");
            *at += 1;
        }
        let Groups {
            index, keys, shape, ..
        } = self;
        let width = shape.keys;
        for i in order {
            let key = part(keys, width, i as usize);
            match index.entry(
                hashes[i as usize],
                |&j| part(keys, width, j as usize) == key,
                |&j| hasher.hash_one(part(keys, width, j as usize)),
            ) {
                Entry::Occupied(_) => return false,
                Entry::Vacant(v) => {
                    v.insert(i);
                }
            }
        }
        true
    }

    #[inline]
    pub(super) fn find(&self, hash: u64, key: &[Value]) -> Option<usize> {
        let width = self.shape.keys;
        let keys = &self.keys;
        self.index
            .find(hash, |&i| part(keys, width, i as usize) == key)
            .map(|&i| i as usize)
    }

    /// Every group as its key and accumulators, in creation order.
    pub(super) fn iter(&self) -> impl ExactSizeIterator<Item = (&[Value], &[Accumulator])> + Clone {
        (0..self.len()).map(move |i| (self.key(i), self.accs(i)))
    }
}

/// The groups of one window as a restore or an encoder reads them: each
/// group's key and accumulators, in the order the groups were created.
#[derive(Clone, Copy)]
pub struct WindowGroups<'a>(pub(super) &'a Groups);

impl<'a> WindowGroups<'a> {
    /// Number of groups.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the window holds no group.
    pub fn is_empty(&self) -> bool {
        self.0.len() == 0
    }

    /// Every group as its key and accumulators.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&'a [Value], &'a [Accumulator])> + Clone {
        self.0.iter()
    }
}

impl Groups {
    /// Empties the window and fills it with `n` groups from `next` (as
    /// [`Groups::fill`]): the first gives the shape of them all, and so
    /// the room they take, reserved at once (the table's too) and backed
    /// with memory by a helper thread while the rest are written. Returns
    /// their keys' hashes and how the fill ended.
    pub(super) fn fill_empty<E: From<ShapeMismatch>>(
        &mut self,
        next: &mut impl FnMut(&mut Vec<Value>, &mut Vec<Accumulator>) -> Result<(), E>,
        start: i64,
        n: usize,
        hasher: FxBuildHasher,
    ) -> (Vec<u64>, Result<(), E>) {
        self.clear();
        // The table is empty: nothing to hash.
        self.index.reserve(n, |_| 0);
        let mut hashes = Vec::new();
        let mut result = self.fill(next, &mut hashes, start, n.min(1), hasher);
        if result.is_ok() && n > 1 {
            let shape = self.shape;
            self.keys.reserve((n - 1) * shape.keys);
            self.accs.reserve((n - 1) * shape.accs);
            self.periods.reserve(n - 1);
            hashes.reserve(n - 1);
            let fresh = [
                Fresh::of(self.keys.spare_capacity_mut()),
                Fresh::of(self.accs.spare_capacity_mut()),
                Fresh::of(self.periods.spare_capacity_mut()),
                Fresh::of(hashes.spare_capacity_mut()),
            ];
            result = backing::populate_while(&fresh, || {
                self.fill(next, &mut hashes, start, n - 1, hasher)
            });
        }
        (hashes, result)
    }

    /// Appends `count` groups from `next` to the columns, unindexed, with
    /// their keys' hashes to `hashes`; the first group of an empty window
    /// sets its shape. Stops at an error from `next` or a group of another
    /// shape, leaving the groups before it.
    #[inline]
    fn fill<E: From<ShapeMismatch>>(
        &mut self,
        next: &mut impl FnMut(&mut Vec<Value>, &mut Vec<Accumulator>) -> Result<(), E>,
        hashes: &mut Vec<u64>,
        start: i64,
        count: usize,
        hasher: FxBuildHasher,
    ) -> Result<(), E> {
        for _ in 0..count {
            let (keys_before, accs_before) = (self.keys.len(), self.accs.len());
            let read = next(&mut self.keys, &mut self.accs);
            let shape = Shape {
                keys: self.keys.len() - keys_before,
                accs: self.accs.len() - accs_before,
            };
            let admitted = read.and_then(|()| self.admit(start, shape).map_err(E::from));
            if let Err(e) = admitted {
                self.keys.truncate(keys_before);
                self.accs.truncate(accs_before);
                return Err(e);
            }
            self.periods.push(Periods::default());
            hashes.push(hasher.hash_one(&self.keys[keys_before..]));
        }
        Ok(())
    }
}
