//! The state of one aggregation partition: windows in time order.

use std::collections::BTreeMap;
use std::hash::BuildHasher;

use hashbrown::hash_table::Entry;
use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use super::Accumulator;
use crate::schema::Value;

/// Below this many bytes a reservation is left to fault in page by page.
const PREFAULT_MIN_BYTES: usize = 4 << 20;

/// Has the kernel back a large fresh reservation with memory in one call
/// (Linux's `MADV_POPULATE_WRITE`), rather than one page fault per 4 KiB
/// page as the groups are written: a restore of a million groups writes
/// some 200 MB, and on a virtual machine each fault costs a trip through
/// the guest kernel. The contents are not touched. Elsewhere, or on a
/// kernel without it, nothing happens.
fn prefault<T>(spare: &mut [std::mem::MaybeUninit<T>]) {
    let bytes = std::mem::size_of_val(spare);
    if bytes < PREFAULT_MIN_BYTES {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let start = spare.as_mut_ptr() as usize;
        let first = start.next_multiple_of(PAGE);
        let end = (start + bytes) & !(PAGE - 1);
        if end > first {
            // SAFETY: [first, end) lies inside `spare`, memory this thread
            // holds exclusively (a Vec's unused capacity); populating it
            // maps pages without changing what any byte holds, and a
            // failure (an older kernel) changes nothing.
            unsafe {
                libc::madvise(
                    first as *mut libc::c_void,
                    end - first,
                    libc::MADV_POPULATE_WRITE,
                );
            }
        }
    }
}

/// Window `start` of `windows`, opened in the spare storage (or new
/// storage) when it is not there.
fn window_at<'a>(
    windows: &'a mut BTreeMap<i64, Groups>,
    spare: &mut Option<Groups>,
    start: i64,
) -> &'a mut Groups {
    windows
        .entry(start)
        .or_insert_with(|| spare.take().unwrap_or_default())
}

/// The storage for a new window of about `want` groups: the spare one if
/// it has the room, else a new one of that size.
fn reuse_or_new(spare: &mut Option<Groups>, want: usize) -> Groups {
    match spare.take() {
        Some(groups) if groups.list.capacity() >= want => groups,
        _ => Groups::with_capacity(want),
    }
}

/// Keeps a closed window's storage, emptied, as the spare (the larger of
/// the two, when there is one already).
fn keep_for_reuse(spare: &mut Option<Groups>, mut groups: Groups) {
    if spare
        .as_ref()
        .is_none_or(|s| s.list.capacity() < groups.list.capacity())
    {
        groups.clear();
        *spare = Some(groups);
    }
}

/// The window start used for aggregations without a time window.
pub const GLOBAL_WINDOW: i64 = i64::MIN;

/// The values of the grouping keys of one group (inline up to two keys).
pub type GroupKey = SmallVec<[Value; 2]>;

/// The accumulators of one group (inline up to four aggregates).
pub type Accumulators = SmallVec<[Accumulator; 4]>;

/// The accumulators of one group in one window.
#[derive(Clone, Debug)]
pub struct GroupState {
    /// One accumulator per aggregate, in the query's order.
    pub accs: Accumulators,
    /// The change period in which the group last changed (0: none tracked).
    changed_in: u32,
    /// The change period whose snapshot already holds this group's value.
    saved_for: u32,
}

impl GroupState {
    fn new(accs: Accumulators) -> GroupState {
        GroupState {
            accs,
            changed_in: 0,
            saved_for: 0,
        }
    }
}

/// A snapshot taken at a marker but copied out lazily (copy-on-write): the
/// groups changed in period `period`, their values as of the marker.
#[derive(Debug, Default)]
struct PendingSnapshot {
    period: u32,
    keys: Vec<(i64, GroupKey)>,
    /// How many of `keys` the drain has looked at.
    next: usize,
    groups: SnapshotGroups,
    evicted: Vec<i64>,
}

/// A serialisable picture of (part of) a [`WindowedState`].
///
/// `full` snapshots hold every group; deltas hold the groups changed since the
/// previous snapshot and the windows evicted since then.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct StateSnapshot {
    /// Whether this replaces all state (rather than updating it).
    pub full: bool,
    /// `(window start, group key, accumulators)` per changed group. The
    /// accumulators are kept inline (as in the state), so copying a changed
    /// group allocates nothing; they serialise as a plain list.
    pub groups: SnapshotGroups,
    /// Window starts whose state was dropped.
    pub evicted: Vec<i64>,
}

/// The groups of one window: the groups themselves in a dense list, in the
/// order they were created, and a hash table of their positions in it.
///
/// A group is 200 bytes (a key of up to two inline values, 56 bytes; up
/// to four inline accumulators of 32 bytes; its change periods) and a table leaves an eighth or more of its buckets
/// empty, up to half after growing; kept in the list, groups take no more
/// room than they fill, and growing the table moves 4-byte positions, not
/// groups. Groups leave a window only with the whole window, so positions
/// never change.
#[derive(Default)]
struct Groups {
    index: HashTable<u32>,
    list: Vec<(GroupKey, GroupState)>,
}

impl Groups {
    fn with_capacity(n: usize) -> Groups {
        Groups {
            index: HashTable::with_capacity(n),
            list: Vec::with_capacity(n),
        }
    }

    fn len(&self) -> usize {
        self.list.len()
    }

    /// Drops every group and keeps the room they took.
    fn clear(&mut self) {
        self.list.clear();
        self.index.clear();
    }

    /// Room for `additional` more groups.
    fn reserve(&mut self, additional: usize, hasher: FxBuildHasher) {
        let list = &self.list;
        self.index
            .reserve(additional, |&i| hasher.hash_one(&list[i as usize].0));
        let before = self.list.capacity();
        self.list.reserve(additional);
        if self.list.capacity() != before {
            // Fresh memory (a new allocation): back it now, in one call.
            prefault(self.list.spare_capacity_mut());
        }
    }

    /// The position of group `key` (hashing to `hash`), added with `init`
    /// when new (then `true`).
    #[inline]
    fn position(
        &mut self,
        hash: u64,
        key: &GroupKey,
        hasher: FxBuildHasher,
        init: impl FnOnce() -> GroupState,
        new_key: impl FnOnce() -> GroupKey,
    ) -> (usize, bool) {
        let list = &mut self.list;
        match self.index.entry(
            hash,
            |&i| list[i as usize].0 == *key,
            |&i| hasher.hash_one(&list[i as usize].0),
        ) {
            Entry::Occupied(o) => (*o.get() as usize, false),
            Entry::Vacant(v) => {
                let at = list.len();
                // A window of 2^32 groups would take some 800 GB.
                v.insert(u32::try_from(at).expect("fewer than 2^32 groups in a window"));
                list.push((new_key(), init()));
                (at, true)
            }
        }
    }

    /// Indexes the list, whose table is empty and has room for it all;
    /// `hashes[i]` is the hash of group `i`'s key. The groups go in
    /// ordered by the part of the table their hash points into (a counting
    /// sort on the top bits of the bucket), so the table is filled in one
    /// sweep. `false`, with the table partly built, if a key is there
    /// twice.
    fn index_in_bucket_order(&mut self, hashes: &[u64], hasher: FxBuildHasher) -> bool {
        debug_assert!(self.index.is_empty() && self.index.capacity() >= hashes.len());
        // The table's buckets: a power of two of which 7/8 is its capacity.
        let bucket_bits = (self.index.capacity() / 7 * 8)
            .next_power_of_two()
            .trailing_zeros();
        let part_bits = bucket_bits.min(12);
        let shift = bucket_bits - part_bits;
        let mask = (1u64 << bucket_bits) - 1;
        let part = |h: u64| ((h & mask) >> shift) as usize;
        let mut starts = vec![0u32; (1 << part_bits) + 1];
        for &h in hashes {
            starts[part(h) + 1] += 1;
        }
        for p in 1..starts.len() {
            starts[p] += starts[p - 1];
        }
        let mut order = vec![0u32; hashes.len()];
        for (i, &h) in hashes.iter().enumerate() {
            let at = &mut starts[part(h)];
            order[*at as usize] = u32::try_from(i).expect("fewer than 2^32 groups in a window");
            *at += 1;
        }
        let list = &self.list;
        for i in order {
            match self.index.entry(
                hashes[i as usize],
                |&j| list[j as usize].0 == list[i as usize].0,
                |&j| hasher.hash_one(&list[j as usize].0),
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
    fn find_mut(&mut self, hash: u64, key: &GroupKey) -> Option<&mut (GroupKey, GroupState)> {
        let list = &self.list;
        let at = *self.index.find(hash, |&i| list[i as usize].0 == *key)? as usize;
        self.list.get_mut(at)
    }

    fn iter(&self) -> std::slice::Iter<'_, (GroupKey, GroupState)> {
        self.list.iter()
    }
}

/// The changed groups a snapshot carries: `(window start, key, accumulators)`.
pub type SnapshotGroups = Vec<(i64, GroupKey, Accumulators)>;

/// Aggregation state: a map from window start to the groups of that window.
///
/// Windows are kept in start order, so closing every window that ends at or
/// before a watermark is a walk from the front. Changed groups are remembered
/// so that a checkpoint copies only what changed since the last one; state
/// that is never checkpointed turns that off
/// ([`WindowedState::set_change_tracking`]). A snapshot can also be taken
/// copy-on-write ([`WindowedState::begin_snapshot`]): the marker costs
/// nothing, a group changed before its value was copied out is copied just
/// before the change, and the rest is copied in slices
/// ([`WindowedState::drain_snapshot`]) between events. A new window's table is sized
/// for as many groups as the newest window holds, so it does not grow
/// through a series of rehashes.
#[derive(Default)]
pub struct WindowedState {
    windows: BTreeMap<i64, Groups>,
    /// Groups changed in the current period (since the last snapshot).
    dirty: Vec<(i64, GroupKey)>,
    /// The current change period: 1 + snapshots begun so far.
    period: u32,
    /// A snapshot begun but not yet copied out entirely.
    pending: Option<PendingSnapshot>,
    /// Emptied buffers kept for the next snapshot, so that a snapshot
    /// allocates no fresh memory once the state has reached its size (a
    /// fresh multi-megabyte buffer every epoch stalls the task for
    /// milliseconds on a VM whose host backs freed pages lazily).
    spare_keys: Vec<(i64, GroupKey)>,
    spare_groups: SnapshotGroups,
    evicted: Vec<i64>,
    groups: usize,
    hasher: FxBuildHasher,
    /// Changes are not tracked (no checkpoint needs deltas).
    untracked: bool,
    /// The newest window start that got a new group, and its group count
    /// then: the size a new window's table starts with.
    newest: (i64, usize),
    /// The emptied storage of the last window to close, for the next one
    /// to open: in a steady stream windows open as fast as they close, and
    /// a new window then allocates nothing (a fresh multi-megabyte list
    /// is memory the kernel must back page by page, on the task's thread).
    spare_window: Option<Groups>,
}

impl std::fmt::Debug for WindowedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowedState")
            .field("windows", &self.windows.len())
            .field("groups", &self.groups)
            .finish()
    }
}

impl WindowedState {
    /// Empty state.
    pub fn new() -> WindowedState {
        WindowedState::default()
    }

    /// Whether changes are remembered for [`WindowedState::take_delta`] (the
    /// default). Without tracking, updating a group records nothing and
    /// deltas are empty: for state that is never checkpointed.
    pub fn set_change_tracking(&mut self, on: bool) {
        self.untracked = !on;
        if !on {
            self.dirty = Vec::new();
            self.evicted = Vec::new();
            self.pending = None;
            self.period += 1; // no group counts as changed in the new period
        }
    }

    /// Number of groups held, across windows.
    pub fn num_groups(&self) -> usize {
        self.groups
    }

    /// The group `key` of window `start`, created with `init` when new, and
    /// marked as changed. Returns the stored key and the group's state.
    #[inline]
    pub fn group_mut(
        &mut self,
        start: i64,
        key: &GroupKey,
        init: impl FnOnce() -> Accumulators,
    ) -> (&GroupKey, &mut GroupState) {
        let hasher = self.hasher;
        let hash = hasher.hash_one(key);
        let newest_len = self.newest.1;
        let spare = &mut self.spare_window;
        let window = self
            .windows
            .entry(start)
            // Sized for as many groups as the newest window holds (usually
            // its predecessor): no rehashes while it fills up.
            .or_insert_with(|| reuse_or_new(spare, newest_len));
        let (at, created) = window.position(
            hash,
            key,
            hasher,
            || GroupState::new(init()),
            || key.clone(),
        );
        if created {
            self.groups += 1;
            if start >= self.newest.0 || self.newest.1 == 0 {
                self.newest = (start, at + 1);
            }
        }
        let slot = &mut window.list[at];
        if self.untracked {
            return (&slot.0, &mut slot.1);
        }
        let period = self.period.max(1);
        if let Some(p) = &mut self.pending {
            // Copy-on-write: the pending snapshot needs the value from before
            // this change.
            if slot.1.changed_in == p.period && slot.1.saved_for != p.period {
                slot.1.saved_for = p.period;
                p.groups.push((start, slot.0.clone(), slot.1.accs.clone()));
            }
        }
        if slot.1.changed_in != period {
            slot.1.changed_in = period;
            self.dirty.push((start, slot.0.clone()));
        }
        (&slot.0, &mut slot.1)
    }

    /// Starts a snapshot of what changed since the previous one, as of now,
    /// without copying anything yet (see [`WindowedState::drain_snapshot`]).
    /// A snapshot still pending is finished first and returned.
    pub fn begin_snapshot(&mut self) -> Option<StateSnapshot> {
        let previous = self.pending.is_some().then(|| self.finish_snapshot());
        let period = self.period.max(1);
        let mut groups = std::mem::take(&mut self.spare_groups);
        groups.clear();
        groups.reserve(self.dirty.len());
        let spare_keys = std::mem::take(&mut self.spare_keys);
        self.pending = Some(PendingSnapshot {
            period,
            groups,
            keys: std::mem::replace(&mut self.dirty, spare_keys),
            next: 0,
            evicted: std::mem::take(&mut self.evicted),
        });
        self.period = period + 1;
        previous
    }

    /// Whether a snapshot has been begun and not finished.
    #[inline]
    pub fn snapshot_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Changed groups the pending snapshot has still to look at.
    pub fn snapshot_remaining(&self) -> usize {
        self.pending.as_ref().map_or(0, |p| p.keys.len() - p.next)
    }

    /// Copies up to `budget` more groups into the pending snapshot; `true`
    /// once it has them all (or none is pending).
    pub fn drain_snapshot(&mut self, budget: usize) -> bool {
        let Some(p) = &mut self.pending else {
            return true;
        };
        let hasher = self.hasher;
        let end = p.keys.len().min(p.next.saturating_add(budget));
        for (start, key) in &p.keys[p.next..end] {
            let found = self
                .windows
                .get_mut(start)
                .and_then(|w| w.find_mut(hasher.hash_one(key), key));
            if let Some((_, g)) = found {
                if g.saved_for != p.period {
                    g.saved_for = p.period;
                    p.groups.push((*start, key.clone(), g.accs.clone()));
                }
            }
        }
        p.next = end;
        p.next == p.keys.len()
    }

    /// Copies what is left and returns the pending snapshot (an empty delta
    /// when none is pending).
    pub fn finish_snapshot(&mut self) -> StateSnapshot {
        self.drain_snapshot(usize::MAX);
        let mut p = self.pending.take().unwrap_or_default();
        if self.spare_keys.capacity() == 0 {
            p.keys.clear();
            self.spare_keys = p.keys;
        }
        StateSnapshot {
            full: false,
            groups: p.groups,
            evicted: p.evicted,
        }
    }

    /// The first (earliest) window start held.
    pub fn first_window(&self) -> Option<i64> {
        self.windows.keys().next().copied()
    }

    /// Removes every window whose end (`start + size_us`) is at or before
    /// `watermark`, calling `emit` for each of its groups first.
    pub fn evict_closed(
        &mut self,
        watermark: i64,
        size_us: i64,
        mut emit: impl FnMut(i64, &GroupKey, &GroupState),
    ) {
        while let Some((&start, _)) = self.windows.first_key_value() {
            if start == GLOBAL_WINDOW || start.saturating_add(size_us) > watermark {
                break;
            }
            // The pending snapshot needs the values of the groups about to
            // go (after the first window, nothing is left to copy).
            self.drain_snapshot(usize::MAX);
            let groups = self.windows.remove(&start).unwrap_or_default();
            for (k, g) in groups.iter() {
                emit(start, k, g);
            }
            self.groups -= groups.len();
            keep_for_reuse(&mut self.spare_window, groups);
            if !self.untracked {
                self.evicted.push(start);
            }
        }
    }

    /// The windows in time order, each with its groups in the order they
    /// were created (what a full state file holds, read in place).
    pub fn windows(
        &self,
    ) -> impl ExactSizeIterator<Item = (i64, &[(GroupKey, GroupState)])> + Clone {
        self.windows.iter().map(|(s, g)| (*s, g.list.as_slice()))
    }

    /// Every group as `(window start, key, state)`, windows in time order
    /// and each window's groups in the order they were created.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &GroupKey, &GroupState)> {
        self.windows
            .iter()
            .flat_map(|(s, groups)| groups.iter().map(move |(k, g)| (*s, k, g)))
    }

    /// What changed since the previous snapshot: changed groups and
    /// evicted windows, copied now. Costs time in proportion to the changes,
    /// not the state. Empty when changes are not tracked. A snapshot still
    /// pending is finished first and merged in.
    pub fn take_delta(&mut self) -> StateSnapshot {
        match self.begin_snapshot() {
            None => self.finish_snapshot(),
            Some(mut earlier) => {
                let later = self.finish_snapshot();
                // `apply` removes evicted windows before it writes groups:
                // drop the earlier groups of windows evicted later.
                earlier
                    .groups
                    .retain(|(start, _, _)| !later.evicted.contains(start));
                earlier.groups.extend(later.groups);
                earlier.evicted.extend(later.evicted);
                earlier
            }
        }
    }

    /// Every group, printed and sorted: two states compare equal in tests
    /// whatever their table order.
    #[cfg(test)]
    pub(crate) fn sorted_groups(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .snapshot()
            .groups
            .iter()
            .map(|g| format!("{g:?}"))
            .collect();
        v.sort();
        v
    }

    /// A copy of the groups, as [`WindowedState::apply`] of a full
    /// [`WindowedState::snapshot`] would give (nothing counts as changed),
    /// but made window by window: each window's list is copied in order
    /// and its table, which holds positions in that list, is copied as it
    /// is rather than built again.
    pub fn copy(&self) -> WindowedState {
        let mut copy = WindowedState::new();
        for (&start, groups) in &self.windows {
            let mut list = Vec::with_capacity(groups.list.len());
            prefault(list.spare_capacity_mut());
            list.extend(
                groups
                    .list
                    .iter()
                    .map(|(key, g)| (key.clone(), GroupState::new(g.accs.clone()))),
            );
            copy.windows.insert(
                start,
                Groups {
                    index: groups.index.clone(),
                    list,
                },
            );
        }
        copy.groups = self.groups;
        copy.newest = self.newest;
        copy
    }

    /// A full snapshot of the state.
    pub fn snapshot(&self) -> StateSnapshot {
        StateSnapshot {
            full: true,
            groups: self
                .iter()
                .map(|(s, k, g)| (s, k.clone(), g.accs.clone()))
                .collect(),
            evicted: Vec::new(),
        }
    }

    /// Gives back an emptied group buffer of a snapshot (see
    /// [`WindowedState::apply_returning_buffer`]) for the next snapshot.
    pub fn recycle(&mut self, mut groups: SnapshotGroups) {
        if groups.capacity() > self.spare_groups.capacity() {
            groups.clear();
            self.spare_groups = groups;
        }
    }

    /// [`WindowedState::apply`], returning the snapshot's emptied group
    /// buffer for reuse.
    pub fn apply_returning_buffer(&mut self, mut snap: StateSnapshot) -> SnapshotGroups {
        let mut groups = std::mem::take(&mut snap.groups);
        self.apply_groups(snap.full, &snap.evicted, &mut groups);
        groups
    }

    /// Applies a snapshot: a full one replaces the state, a delta updates it.
    /// Nothing applied is marked as changed.
    pub fn apply(&mut self, mut snap: StateSnapshot) {
        self.apply_groups(snap.full, &snap.evicted, &mut snap.groups);
    }

    fn apply_groups(&mut self, full: bool, evicted: &[i64], groups: &mut SnapshotGroups) {
        self.restore_begin(full, evicted);
        // Each run of groups of one window goes in at once: into an empty
        // window that is one sweep over its table (`restore_window`).
        let runs: Vec<(i64, usize)> = groups
            .chunk_by(|a, b| a.0 == b.0)
            .map(|run| (run[0].0, run.len()))
            .collect();
        let mut drain = groups.drain(..);
        for (start, n) in runs {
            let taken = self.restore_window(start, n, || {
                drain.next().map(|(_, key, accs)| (key, accs)).ok_or(start)
            });
            debug_assert!(taken.is_ok(), "a run is as long as it was counted");
        }
        self.restore_end();
    }

    /// Begins applying a snapshot piece by piece (as a state file is
    /// decoded): a `full` one drops the state first, `evicted` windows go.
    /// Follow with [`WindowedState::restore_window`] for each window's
    /// groups (or [`WindowedState::restore_group`] for one) and
    /// [`WindowedState::restore_end`].
    pub fn restore_begin(&mut self, full: bool, evicted: &[i64]) {
        if full {
            self.windows.clear();
            self.groups = 0;
        }
        for start in evicted {
            if let Some(w) = self.windows.remove(start) {
                self.groups -= w.len();
                keep_for_reuse(&mut self.spare_window, w);
            }
        }
    }

    /// Puts one group of a snapshot being applied into window `start`,
    /// replacing the group's value if it is there.
    pub fn restore_group(&mut self, start: i64, key: GroupKey, accs: Accumulators) {
        let hasher = self.hasher;
        let window = window_at(&mut self.windows, &mut self.spare_window, start);
        let hash = hasher.hash_one(&key);
        let Groups { index, list } = window;
        match index.entry(
            hash,
            |&i| list[i as usize].0 == key,
            |&i| hasher.hash_one(&list[i as usize].0),
        ) {
            Entry::Occupied(o) => list[*o.get() as usize].1 = GroupState::new(accs),
            Entry::Vacant(v) => {
                v.insert(u32::try_from(list.len()).expect("fewer than 2^32 groups in a window"));
                list.push((key, GroupState::new(accs)));
                self.groups += 1;
            }
        }
    }

    /// Fills window `start` with the `n` groups `next` yields in turn, as
    /// [`WindowedState::restore_group`] for each would, but faster when the
    /// window is empty (a full state file): the groups are written to the
    /// window's list in order, and the table of their positions is built
    /// afterwards in the order of the buckets they land in, so a million
    /// groups make one pass over the table instead of two cache misses
    /// each. On an error from `next` the groups read so far are in the
    /// window and the error is returned.
    pub fn restore_window<E>(
        &mut self,
        start: i64,
        n: usize,
        mut next: impl FnMut() -> Result<(GroupKey, Accumulators), E>,
    ) -> Result<(), E> {
        if self.windows.get(&start).is_some_and(|w| w.len() > 0) {
            // Groups may be replaced: one at a time.
            for _ in 0..n {
                let (key, accs) = next()?;
                self.restore_group(start, key, accs);
            }
            return Ok(());
        }
        let hasher = self.hasher;
        let window = window_at(&mut self.windows, &mut self.spare_window, start);
        window.reserve(n, hasher);
        let mut hashes = Vec::with_capacity(n);
        let mut result = Ok(());
        for _ in 0..n {
            match next() {
                Ok((key, accs)) => {
                    hashes.push(hasher.hash_one(&key));
                    window.list.push((key, GroupState::new(accs)));
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if window.index_in_bucket_order(&hashes, hasher) {
            self.groups += window.len();
        } else {
            // A key twice (a full file never holds one): the later value
            // wins, as group by group.
            let room = window.list.capacity();
            let list = std::mem::replace(&mut window.list, Vec::with_capacity(room));
            window.index.clear();
            for (key, group) in list {
                self.restore_group(start, key, group.accs);
            }
        }
        result
    }

    /// Ends applying a snapshot: nothing applied counts as changed.
    pub fn restore_end(&mut self) {
        self.dirty.clear();
        self.evicted.clear();
        self.pending = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::DataType;
    use crate::state::AggFunc;
    use smallvec::smallvec;

    fn count_init() -> SmallVec<[Accumulator; 4]> {
        smallvec![AggFunc::CountStar.new_accumulator(&DataType::Int64)]
    }

    fn bump(state: &mut WindowedState, start: i64, key: &str) {
        let key: GroupKey = smallvec![Value::str(key)];
        state.group_mut(start, &key, count_init).1.accs[0].update(&Value::Boolean(true));
    }

    #[test]
    fn deltas_replayed_on_a_shadow_equal_the_state() {
        let mut live = WindowedState::new();
        let mut shadow = WindowedState::new();
        bump(&mut live, 0, "a");
        bump(&mut live, 0, "b");
        bump(&mut live, 10, "a");
        shadow.apply(live.take_delta());
        bump(&mut live, 10, "a");
        bump(&mut live, 20, "c");
        live.evict_closed(10, 10, |_, _, _| {});
        let delta = live.take_delta();
        assert_eq!(delta.evicted, vec![0]);
        assert_eq!(delta.groups.len(), 2, "only the changed groups travel");
        shadow.apply(delta);
        assert_eq!(shadow.snapshot(), live.snapshot());
        assert_eq!(shadow.num_groups(), 2);
    }

    #[test]
    fn untracked_state_records_no_changes() {
        let mut s = WindowedState::new();
        bump(&mut s, 0, "a");
        s.set_change_tracking(false);
        bump(&mut s, 0, "a");
        bump(&mut s, 10, "b");
        s.evict_closed(10, 10, |_, _, _| {});
        let delta = s.take_delta();
        assert!(delta.groups.is_empty() && delta.evicted.is_empty());
        assert_eq!(s.num_groups(), 1);
        // The windows still fill and evict as before.
        assert_eq!(s.first_window(), Some(10));
    }

    #[test]
    fn eviction_emits_closed_windows_in_order() {
        let mut s = WindowedState::new();
        for start in [30, 10, 20] {
            bump(&mut s, start, "k");
        }
        let mut emitted = Vec::new();
        s.evict_closed(35, 10, |start, _, _| emitted.push(start));
        assert_eq!(emitted, vec![10, 20]);
        assert_eq!(s.first_window(), Some(30));
    }

    #[test]
    fn a_window_opened_in_a_closed_one_s_storage_starts_empty() {
        let mut s = WindowedState::new();
        let mut shadow = WindowedState::new();
        for k in ["a", "b", "c"] {
            bump(&mut s, 0, k);
        }
        bump(&mut s, 0, "a");
        shadow.apply(s.take_delta());
        s.evict_closed(10, 10, |_, _, _| {});
        assert!(
            s.spare_window.is_some(),
            "the closed window's storage is kept"
        );
        bump(&mut s, 10, "b");
        assert!(s.spare_window.is_none(), "and taken by the next one");
        assert_eq!(s.num_groups(), 1);
        let groups: Vec<_> = s
            .iter()
            .map(|(w, k, g)| (w, k.clone(), g.accs[0].result()))
            .collect();
        assert_eq!(
            groups,
            vec![(10, smallvec![Value::str("b")], Value::Int64(1))]
        );
        // The shadow closes the window through the delta and reuses it too.
        shadow.apply(s.take_delta());
        assert_eq!(canon(&shadow.snapshot()), canon(&s.snapshot()));
        assert!(shadow.spare_window.is_none());
    }

    #[test]
    fn a_pending_snapshot_keeps_the_values_of_its_marker() {
        let mut live = WindowedState::new();
        let mut shadow = WindowedState::new();
        bump(&mut live, 0, "a");
        bump(&mut live, 0, "b");
        let at_marker = live.snapshot();
        live.begin_snapshot();
        // Changed before the drain reached it: copied just before the change.
        bump(&mut live, 0, "a");
        bump(&mut live, 0, "c");
        assert!(live.drain_snapshot(1) || live.snapshot_remaining() == 1);
        shadow.apply(live.finish_snapshot());
        assert_eq!(canon(&shadow.snapshot()), canon(&at_marker));
        // The next snapshot carries what changed after the marker.
        shadow.apply(live.take_delta());
        assert_eq!(canon(&shadow.snapshot()), canon(&live.snapshot()));
    }

    /// A snapshot's groups in a fixed order (tables iterate in any order).
    fn canon(s: &StateSnapshot) -> Vec<String> {
        let mut v: Vec<String> = s.groups.iter().map(|g| format!("{g:?}")).collect();
        v.sort();
        v
    }

    fn counted(key: i64, n: i64) -> (GroupKey, Accumulators) {
        (
            smallvec![Value::Int64(key)],
            smallvec![Accumulator::Count(n)],
        )
    }

    /// The count of group `key` in window `start`, found through the table
    /// as an event would find it (and marking it changed).
    fn count_of(state: &mut WindowedState, start: i64, key: i64) -> Option<i64> {
        let before = state.num_groups();
        let key: GroupKey = smallvec![Value::Int64(key)];
        let found = match state.group_mut(start, &key, count_init).1.accs[0] {
            Accumulator::Count(n) => n,
            ref other => panic!("not a count: {other:?}"),
        };
        (state.num_groups() == before).then_some(found)
    }

    /// Restores `(key, count)` groups into window 0 at once.
    fn restore_all(s: &mut WindowedState, groups: &[(i64, i64)]) {
        let mut it = groups.iter().map(|&(k, n)| counted(k, n));
        s.restore_window(0, groups.len(), || Ok::<_, ()>(it.next().unwrap()))
            .unwrap();
    }

    /// Window 0 holds exactly these `(key, count)` groups.
    fn assert_counts(s: &mut WindowedState, want: &[(i64, i64)]) {
        assert_eq!(s.num_groups(), want.len());
        for &(k, n) in want {
            assert_eq!(count_of(s, 0, k), Some(n), "group {k}");
        }
    }

    #[test]
    fn a_window_restored_at_once_is_found_as_one_restored_group_by_group() {
        // Enough groups for a table of many parts, keys spread and negative.
        let n = 50_000i64;
        let key = |i: i64| (i * 7_919) % 1_000_003 - 500_000;
        let mut bulk = WindowedState::new();
        let mut i = 0;
        bulk.restore_window(10, n as usize, || {
            i += 1;
            Ok::<_, ()>(counted(key(i), i))
        })
        .unwrap();
        let mut single = WindowedState::new();
        for i in 1..=n {
            let (k, a) = counted(key(i), i);
            single.restore_group(10, k, a);
        }
        assert_eq!(bulk.num_groups(), n as usize);
        assert_eq!(bulk.snapshot(), single.snapshot());
        for i in (1..=n).step_by(97) {
            assert_eq!(count_of(&mut bulk, 10, key(i)), Some(i), "group {i}");
        }
        assert_eq!(count_of(&mut bulk, 10, 999_999_999), None);
        assert_eq!(count_of(&mut bulk, 20, key(1)), None, "another window");
    }

    #[test]
    fn a_key_twice_in_a_window_restored_at_once_keeps_its_later_value() {
        let mut s = WindowedState::new();
        restore_all(&mut s, &[(1, 10), (2, 20), (1, 11), (3, 30)]);
        assert_counts(&mut s, &[(1, 11), (2, 20), (3, 30)]);
    }

    #[test]
    fn a_window_restored_onto_groups_replaces_and_adds() {
        let mut s = WindowedState::new();
        s.restore_group(0, counted(1, 1).0, counted(1, 1).1);
        s.restore_group(0, counted(2, 2).0, counted(2, 2).1);
        restore_all(&mut s, &[(2, 20), (3, 30)]);
        assert_counts(&mut s, &[(1, 1), (2, 20), (3, 30)]);
    }

    #[test]
    fn a_window_restore_that_fails_keeps_what_it_read_and_says_why() {
        let mut s = WindowedState::new();
        let mut i = 0;
        let got = s.restore_window(0, 10, || {
            i += 1;
            if i == 4 {
                Err("damaged")
            } else {
                Ok(counted(i, i))
            }
        });
        assert_eq!(got, Err("damaged"));
        assert_eq!(s.num_groups(), 3);
        assert_eq!(count_of(&mut s, 0, 3), Some(3));
    }

    #[test]
    fn a_copy_holds_the_groups_finds_them_and_changes_apart() {
        let mut s = WindowedState::new();
        for i in 0..1_000 {
            let (k, a) = counted(i, i);
            s.restore_group(i % 3, k, a);
        }
        bump(&mut s, 7, "x");
        let mut copy = s.copy();
        assert_eq!(copy.num_groups(), s.num_groups());
        assert_eq!(copy.snapshot(), s.snapshot());
        assert!(
            copy.take_delta().groups.is_empty(),
            "nothing counts as changed"
        );
        for i in (0..1_000).step_by(37) {
            assert_eq!(count_of(&mut copy, i % 3, i), Some(i), "group {i}");
        }
        copy.restore_group(1, counted(1, 99).0, counted(1, 99).1);
        assert_eq!(count_of(&mut copy, 1, 1), Some(99));
        assert_eq!(count_of(&mut s, 1, 1), Some(1), "the original is apart");
    }

    proptest::proptest! {
        /// Whatever interleaving of updates, markers, partial drains and
        /// evictions: every snapshot, applied in order to a shadow, gives
        /// the state as it was at that snapshot's marker.
        #[test]
        fn copy_on_write_snapshots_equal_the_state_at_their_marker(
            ops in proptest::collection::vec((0u8..8, 0i64..4, 0u8..6), 1..300)
        ) {
            let mut live = WindowedState::new();
            let mut shadow = WindowedState::new();
            let mut expected: Option<StateSnapshot> = None;
            let mut watermark = 0i64;
            for (op, window, key) in ops {
                match op {
                    // Markers: the previous snapshot, if any, is finished.
                    0 => {
                        if let Some(done) = live.begin_snapshot() {
                            shadow.apply(done);
                            proptest::prop_assert_eq!(canon(&shadow.snapshot()), canon(&expected.take().unwrap()));
                        }
                        expected = Some(live.snapshot());
                    }
                    1 => {
                        if live.drain_snapshot(key as usize) && live.snapshot_pending() {
                            shadow.apply(live.finish_snapshot());
                            proptest::prop_assert_eq!(canon(&shadow.snapshot()), canon(&expected.take().unwrap()));
                        }
                    }
                    2 => {
                        watermark += 10;
                        live.evict_closed(watermark, 10, |_, _, _| {});
                    }
                    _ => bump(&mut live, watermark + window * 10, &format!("k{key}")),
                }
            }
            if live.snapshot_pending() {
                shadow.apply(live.finish_snapshot());
                proptest::prop_assert_eq!(canon(&shadow.snapshot()), canon(&expected.take().unwrap()));
            }
            shadow.apply(live.take_delta());
            proptest::prop_assert_eq!(canon(&shadow.snapshot()), canon(&live.snapshot()));
        }
    }
}

#[cfg(test)]
mod layout_tests {
    use super::*;

    /// Every group of every window is this big, so a restore of a million
    /// groups writes this many megabytes of fresh memory: a change that
    /// grows it should be a decision, not an accident.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_group_and_its_accumulators_stay_this_small() {
        assert_eq!(std::mem::size_of::<Accumulator>(), 32);
        assert_eq!(std::mem::size_of::<(GroupKey, GroupState)>(), 200);
    }
}
