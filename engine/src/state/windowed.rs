//! The state of one aggregation partition: windows in time order.
//!
//! Owns the windows (opened, evicted, a closed one's storage kept for the
//! next), which groups changed since the last snapshot, copy-on-write
//! snapshots (deltas, and full ones when [`FullEvery`] says), and applying
//! or restoring them. How one window's
//! groups are laid out is [`super::groups`]'s; this module must not reach
//! into a window's columns beyond what restoring and change tracking need.

use std::collections::BTreeMap;
use std::hash::BuildHasher;

use rustc_hash::FxBuildHasher;
use serde::{Deserialize, Serialize};

use super::columns::SnapshotColumns;
use super::groups::{
    part, Accumulators, GroupKey, Groups, Periods, Shape, ShapeMismatch, WindowGroups,
};
use super::policy::FullEvery;
use super::Accumulator;
use crate::schema::Value;

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

/// The storage for a new window of about `want` groups of `shape`: the
/// spare one if it has the room, else a new one of that size.
fn reuse_or_new(spare: &mut Option<Groups>, want: usize, shape: Shape) -> Groups {
    match spare.take() {
        Some(mut groups)
            if groups.periods.capacity() >= want
                && groups.keys.capacity() >= want * shape.keys
                && groups.accs.capacity() >= want * shape.accs =>
        {
            groups.shape = shape;
            groups
        }
        _ => Groups::with_capacity(want, shape),
    }
}

/// Keeps a closed window's storage, emptied, as the spare (the larger of
/// the two, when there is one already).
fn keep_for_reuse(spare: &mut Option<Groups>, mut groups: Groups) {
    if spare
        .as_ref()
        .is_none_or(|s| s.periods.capacity() < groups.periods.capacity())
    {
        groups.clear();
        *spare = Some(groups);
    }
}

/// The window start used for aggregations without a time window.
pub const GLOBAL_WINDOW: i64 = i64::MIN;

/// A snapshot taken at a marker but copied out lazily (copy-on-write): the
/// groups changed in period `period` (a delta), or every group held at the
/// marker (a full snapshot), their values as of the marker.
#[derive(Debug, Default)]
struct PendingSnapshot {
    period: u32,
    /// A full snapshot: where its walk over the windows is.
    full: Option<Walk>,
    /// The changed groups: window start and position in the window (a
    /// delta's; empty for a full snapshot).
    keys: Vec<(i64, u32)>,
    /// How many of `keys` the drain has looked at.
    next: usize,
    groups: SnapshotGroups,
    /// Each of `groups`' position in its window, when they are kept (for a
    /// shadow fed by deltas: micro-batch mode's [`WindowedState::take_delta`]).
    positions: Vec<u32>,
    with_positions: bool,
    /// A full snapshot's groups.
    columns: SnapshotColumns,
    evicted: Vec<i64>,
}

impl PendingSnapshot {
    /// Copies a group (of window `start`, at position `at` of it) into the
    /// snapshot: a full one's into its columns (unless shaped unlike the
    /// groups there), a delta's into its list, with its position when they
    /// are kept.
    #[inline]
    fn save(&mut self, start: i64, key: &[Value], accs: &[Accumulator], at: usize) {
        if self.full.is_some() && self.columns.push(start, key, accs) {
            return;
        }
        self.groups
            .push((start, key.iter().cloned().collect(), copy_accs(accs)));
        if self.with_positions {
            // Positions fit a u32 (`Groups::insert_new`).
            self.positions.push(at as u32);
        }
    }
}

/// How far a full snapshot's copy has gone: every group of the windows
/// before `start`, and of window `start` those before position `at`, has
/// been looked at. A group created after the marker is marked as saved when
/// it is created, so the walk passes it over.
#[derive(Debug, Default, Clone, Copy)]
struct Walk {
    start: i64,
    at: usize,
    /// Groups held at the marker and not yet looked at (an estimate: the
    /// walk also counts groups created since).
    left: usize,
    done: bool,
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
    /// Where each of `groups` sits in its window of the state the delta was
    /// taken from, when known (as long as `groups`; otherwise unknown). A
    /// copy fed only by that state's deltas (a checkpoint's shadow) finds
    /// a group again by it without hashing its key; the key is still
    /// checked. Kept by [`WindowedState::take_delta`] only (the deltas a
    /// shadow is fed); not written to files.
    #[serde(skip)]
    pub positions: Vec<u32>,
    /// More groups, in columns: where a full snapshot taken by
    /// [`WindowedState::begin_snapshot`] puts every group (a third of the
    /// memory of `groups` per group). Not written as such: a state file
    /// holds the groups of both.
    #[serde(skip)]
    pub columns: SnapshotColumns,
}

impl StateSnapshot {
    /// Number of groups it carries (in `groups` and in `columns`).
    pub fn num_groups(&self) -> usize {
        self.groups.len() + self.columns.len()
    }

    /// Moves the groups held in columns into `groups`, before the groups
    /// there (as a state file holds them: a group in both is the later
    /// one's, `groups`').
    pub fn columns_into_groups(&mut self) {
        if self.columns.is_empty() {
            return;
        }
        self.positions = Vec::new();
        let mut all: SnapshotGroups = Vec::with_capacity(self.num_groups());
        all.extend(
            self.columns
                .iter()
                .map(|(s, k, a)| (s, k.iter().cloned().collect(), copy_accs(a))),
        );
        all.append(&mut self.groups);
        self.groups = all;
        self.columns.clear();
    }

    /// Empties it for reuse as [`StateSnapshot::clear`] does, with room for
    /// another snapshot as large and a quarter more, the room backed with
    /// memory now ([`SnapshotColumns::make_room`]): what the checkpoint
    /// hands back to the task, so that the task's next snapshot, copied on
    /// its hot path, neither grows a list nor faults a page in.
    pub fn make_room(&mut self) {
        let (listed, in_columns) = (self.groups.len(), self.columns.len());
        self.clear();
        self.columns.make_room(in_columns);
        let want = listed.saturating_add(listed / 4);
        if self.groups.capacity() < want {
            self.groups.reserve(want);
            super::backing::prefault_now(self.groups.spare_capacity_mut());
        }
    }

    /// Empties it for reuse, keeping its lists' room.
    pub fn clear(&mut self) {
        self.full = false;
        self.groups.clear();
        self.evicted.clear();
        self.positions.clear();
        self.columns.clear();
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
    /// Groups changed in the current period (since the last snapshot): the
    /// window start and the group's position in the window (groups leave a
    /// window only with the whole window).
    dirty: Vec<(i64, u32)>,
    /// The current change period: 1 + snapshots begun so far.
    period: u32,
    /// A snapshot begun but not yet copied out entirely.
    pending: Option<PendingSnapshot>,
    /// Emptied buffers kept for the next snapshot, so that a snapshot
    /// allocates no fresh memory once the state has reached its size (a
    /// fresh multi-megabyte buffer every epoch stalls the task for
    /// milliseconds on a VM whose host backs freed pages lazily).
    spare_keys: Vec<(i64, u32)>,
    spare_groups: SnapshotGroups,
    spare_columns: SnapshotColumns,
    evicted: Vec<i64>,
    groups: usize,
    hasher: FxBuildHasher,
    /// Changes are not tracked (no checkpoint needs deltas).
    untracked: bool,
    /// What the snapshots since the last full one carried: whether
    /// [`WindowedState::begin_snapshot`] takes the next one full.
    since_full: FullEvery,
    /// The newest window start that got a new group, and its group count
    /// then: the size a new window's table starts with.
    newest: (i64, usize),
    /// The shape of the last group created: a new window's lists are
    /// sized for it.
    shape: Shape,
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
            // No group counts as changed in the new period (a group's
            // default period is 0, and period 0 counts as 1).
            self.period = self.period.max(1) + 1;
        }
    }

    /// Number of groups held, across windows.
    pub fn num_groups(&self) -> usize {
        self.groups
    }

    /// The group `key` of window `start`, created with `init` when new, and
    /// marked as changed. Returns the stored key and the group's
    /// accumulators.
    ///
    /// # Panics
    /// If a new group's key or accumulator count differs from the other
    /// groups of its window: one aggregation builds them all alike.
    #[inline]
    pub fn group_mut(
        &mut self,
        start: i64,
        key: &[Value],
        init: impl FnOnce() -> Accumulators,
    ) -> (&[Value], &mut [Accumulator]) {
        let hasher = self.hasher;
        let hash = hasher.hash_one(key);
        let (newest_len, shape) = (self.newest.1, self.shape);
        let spare = &mut self.spare_window;
        let window = self
            .windows
            .entry(start)
            // Sized for as many groups as the newest window holds (usually
            // its predecessor): no rehashes while it fills up.
            .or_insert_with(|| reuse_or_new(spare, newest_len, shape));
        let (at, created) = window.position(start, hash, key, hasher, init);
        if created {
            self.groups += 1;
            self.shape = window.shape;
            if start >= self.newest.0 || self.newest.1 == 0 {
                self.newest = (start, at + 1);
            }
        }
        let Groups {
            keys,
            accs,
            periods,
            shape,
            ..
        } = window;
        let (kw, aw) = (shape.keys, shape.accs);
        let stored = &keys[at * kw..(at + 1) * kw];
        let accs = &mut accs[at * aw..(at + 1) * aw];
        if self.untracked {
            return (stored, accs);
        }
        let periods = &mut periods[at];
        let period = self.period.max(1);
        if let Some(p) = &mut self.pending {
            // Copy-on-write: the pending snapshot needs the value from before
            // this change. A full one holds every group but those created
            // since its marker; a delta, the groups changed before it.
            let in_snapshot = match p.full {
                Some(_) if created => {
                    periods.saved_for = p.period;
                    false
                }
                Some(_) => periods.saved_for != p.period,
                None => periods.changed_in == p.period && periods.saved_for != p.period,
            };
            if in_snapshot {
                periods.saved_for = p.period;
                p.save(start, stored, accs, at);
            }
        }
        if periods.changed_in != period {
            periods.changed_in = period;
            // Positions fit a u32 (`Groups::insert_new`).
            self.dirty.push((start, at as u32));
        }
        (stored, accs)
    }

    /// Starts a snapshot as of now, without copying anything yet (see
    /// [`WindowedState::drain_snapshot`]): of every group when the changes
    /// since the last full snapshot would add up to the state's size
    /// ([`FullEvery`]; the first snapshot, and the first after a restore, is
    /// full), else of what changed since the previous one. A snapshot still
    /// pending is finished first and returned.
    pub fn begin_snapshot(&mut self) -> Option<StateSnapshot> {
        let changes = self.dirty.len() + self.evicted.len();
        let full = self.since_full.wants_full(changes, self.groups);
        self.begin_snapshot_as(full)
    }

    /// [`WindowedState::begin_snapshot`], full or a delta as `full` says.
    pub fn begin_snapshot_as(&mut self, full: bool) -> Option<StateSnapshot> {
        self.begin(full, false)
    }

    /// Begins a snapshot; a delta's groups' positions are kept with them if
    /// `with_positions`.
    fn begin(&mut self, full: bool, with_positions: bool) -> Option<StateSnapshot> {
        let previous = self.pending.is_some().then(|| self.finish_snapshot());
        let period = self.period.max(1);
        let changes = self.dirty.len() + self.evicted.len();
        let (mut groups, mut columns) = (Vec::new(), SnapshotColumns::default());
        if full {
            columns = std::mem::take(&mut self.spare_columns);
            columns.clear();
            columns.reserve(self.groups, self.shape);
        } else {
            groups = std::mem::take(&mut self.spare_groups);
            groups.clear();
            groups.reserve(self.dirty.len());
        }
        let with_positions = with_positions && !full;
        let positions = if with_positions {
            Vec::with_capacity(self.dirty.len())
        } else {
            Vec::new()
        };
        let spare_keys = std::mem::take(&mut self.spare_keys);
        let mut keys = std::mem::replace(&mut self.dirty, spare_keys);
        let mut evicted = std::mem::take(&mut self.evicted);
        let walk = full.then(|| Walk {
            start: self.windows.keys().next().copied().unwrap_or(i64::MAX),
            at: 0,
            left: self.groups,
            done: self.windows.is_empty(),
        });
        if full {
            // Every group is in it: the changes and evictions before the
            // marker are in its groups, or gone with their windows.
            keys.clear();
            evicted.clear();
            self.since_full.record_full();
        } else {
            self.since_full.record_delta(changes);
        }
        self.pending = Some(PendingSnapshot {
            period,
            full: walk,
            groups,
            positions,
            with_positions,
            columns,
            keys,
            next: 0,
            evicted,
        });
        self.period = period + 1;
        previous
    }

    /// Whether a snapshot has been begun and not finished.
    #[inline]
    pub fn snapshot_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Groups the pending snapshot has still to look at.
    pub fn snapshot_remaining(&self) -> usize {
        self.pending.as_ref().map_or(0, |p| match &p.full {
            Some(walk) if walk.done => 0,
            Some(walk) => walk.left.max(1),
            None => p.keys.len() - p.next,
        })
    }

    /// Copies up to `budget` more groups into the pending snapshot; `true`
    /// once it has them all (or none is pending).
    pub fn drain_snapshot(&mut self, budget: usize) -> bool {
        let Some(p) = &mut self.pending else {
            return true;
        };
        if let Some(mut walk) = p.full {
            let done = walk_windows(&mut self.windows, &mut walk, p, budget);
            p.full = Some(walk);
            return done;
        }
        let end = p.keys.len().min(p.next.saturating_add(budget));
        for next in p.next..end {
            let (start, at) = p.keys[next];
            // A window evicted since is gone, and its groups with it.
            let Some(w) = self.windows.get_mut(&start) else {
                continue;
            };
            let Some(periods) = w.periods.get_mut(at as usize) else {
                continue;
            };
            // Changed in the snapshot's period and not copied out before a
            // later change: its value is still the marker's. (A group at
            // this position of a window opened again since the change is
            // another group, changed later or not at all: not this
            // snapshot's.)
            if periods.changed_in == p.period && periods.saved_for != p.period {
                periods.saved_for = p.period;
                let i = at as usize;
                p.save(
                    start,
                    part(&w.keys, w.shape.keys, i),
                    part(&w.accs, w.shape.accs, i),
                    i,
                );
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
            full: p.full.is_some(),
            groups: p.groups,
            evicted: p.evicted,
            positions: p.positions,
            columns: p.columns,
        }
    }

    /// The first (earliest) window start held.
    pub fn first_window(&self) -> Option<i64> {
        self.windows.keys().next().copied()
    }

    /// Removes every window whose end (`start + size_us`) is at or before
    /// `watermark`, calling `emit` with each of its groups' key and
    /// accumulators first.
    pub fn evict_closed(
        &mut self,
        watermark: i64,
        size_us: i64,
        mut emit: impl FnMut(i64, &[Value], &[Accumulator]),
    ) {
        while let Some((&start, _)) = self.windows.first_key_value() {
            if start == GLOBAL_WINDOW || start.saturating_add(size_us) > watermark {
                break;
            }
            // The pending snapshot needs the values of the groups about to
            // go: a delta's all at once (after the first window, nothing is
            // left to copy), a full one's of this window.
            match self.pending.as_mut() {
                Some(p @ PendingSnapshot { full: Some(_), .. }) => {
                    if let Some(w) = self.windows.get_mut(&start) {
                        save_groups(start, w, 0, usize::MAX, p);
                    }
                }
                _ => {
                    self.drain_snapshot(usize::MAX);
                }
            }
            let groups = self.windows.remove(&start).unwrap_or_default();
            for (k, accs) in groups.iter() {
                emit(start, k, accs);
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
    pub fn windows(&self) -> impl ExactSizeIterator<Item = (i64, WindowGroups<'_>)> + Clone {
        self.windows.iter().map(|(s, g)| (*s, WindowGroups(g)))
    }

    /// Every group as `(window start, key, accumulators)`, windows in time
    /// order and each window's groups in the order they were created.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &[Value], &[Accumulator])> {
        self.windows
            .iter()
            .flat_map(|(s, groups)| groups.iter().map(move |(k, a)| (*s, k, a)))
    }

    /// What changed since the previous snapshot: changed groups and
    /// evicted windows, copied now. Costs time in proportion to the changes,
    /// not the state. Empty when changes are not tracked. A snapshot still
    /// pending is finished first and merged in.
    pub fn take_delta(&mut self) -> StateSnapshot {
        match self.begin(false, true) {
            None => self.finish_snapshot(),
            Some(mut earlier) => {
                // A full snapshot's groups are merged as a delta's are.
                earlier.columns_into_groups();
                let later = self.finish_snapshot();
                // `apply` removes evicted windows before it writes groups:
                // drop the earlier groups of windows evicted later.
                let known = earlier.positions.len() == earlier.groups.len()
                    && later.positions.len() == later.groups.len();
                if known {
                    let mut kept = earlier
                        .groups
                        .iter()
                        .map(|(start, _, _)| !later.evicted.contains(start));
                    earlier.positions.retain(|_| kept.next().unwrap_or(false));
                    earlier.positions.extend(later.positions);
                } else {
                    earlier.positions = Vec::new();
                }
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
    /// but made window by window: each window's columns are copied in
    /// order and its table, which holds positions in them, is copied as it
    /// is rather than built again.
    pub fn copy(&self) -> WindowedState {
        let mut copy = WindowedState::new();
        for (&start, groups) in &self.windows {
            copy.windows.insert(start, groups.copy());
        }
        copy.groups = self.groups;
        copy.newest = self.newest;
        copy.shape = self.shape;
        copy
    }

    /// A full snapshot of the state.
    pub fn snapshot(&self) -> StateSnapshot {
        StateSnapshot {
            full: true,
            groups: self
                .iter()
                .map(|(s, k, a)| (s, k.iter().cloned().collect(), copy_accs(a)))
                .collect(),
            evicted: Vec::new(),
            positions: Vec::new(),
            columns: SnapshotColumns::default(),
        }
    }

    /// Gives back a snapshot that was written (its lists emptied or not)
    /// for the next snapshot to copy into without allocating: the larger
    /// of its group lists and the one kept are kept.
    pub fn recycle(&mut self, mut spare: StateSnapshot) {
        if spare.groups.capacity() > self.spare_groups.capacity() {
            spare.groups.clear();
            self.spare_groups = spare.groups;
        }
        if spare.columns.capacity_bytes() > self.spare_columns.capacity_bytes() {
            spare.columns.clear();
            self.spare_columns = spare.columns;
        }
    }

    /// [`WindowedState::apply`], returning the snapshot's emptied group
    /// buffer for reuse.
    pub fn apply_returning_buffer(
        &mut self,
        mut snap: StateSnapshot,
    ) -> Result<SnapshotGroups, ShapeMismatch> {
        snap.columns_into_groups();
        let mut groups = std::mem::take(&mut snap.groups);
        self.apply_groups(snap.full, &snap.evicted, &mut groups, &snap.positions)?;
        Ok(groups)
    }

    /// Applies a snapshot: a full one replaces the state, a delta updates it.
    /// Nothing applied is marked as changed. A group whose shape differs
    /// from its window's is refused (the groups before it are applied).
    pub fn apply(&mut self, mut snap: StateSnapshot) -> Result<(), ShapeMismatch> {
        snap.columns_into_groups();
        self.apply_groups(snap.full, &snap.evicted, &mut snap.groups, &snap.positions)
    }

    /// Applies `groups` (each at `positions[i]` of its window in the state
    /// they came from, when `positions` is as long).
    fn apply_groups(
        &mut self,
        full: bool,
        evicted: &[i64],
        groups: &mut SnapshotGroups,
        positions: &[u32],
    ) -> Result<(), ShapeMismatch> {
        self.restore_begin(full, evicted);
        let positions = (positions.len() == groups.len()).then_some(positions);
        // Each run of groups of one window goes in at once: into an empty
        // window that is one sweep over its table (`restore_window`).
        let runs: Vec<(i64, usize)> = groups
            .chunk_by(|a, b| a.0 == b.0)
            .map(|run| (run[0].0, run.len()))
            .collect();
        let mut drain = groups.drain(..);
        let mut result = Ok(());
        let mut first = 0;
        for (start, n) in runs {
            let from = positions.map(|p| &p[first..first + n]);
            first += n;
            let hasher = self.hasher;
            result = match self.windows.get_mut(&start) {
                Some(window) if window.len() > 0 => {
                    // A delta's groups of a window that has some: each put
                    // in place as it is, with no copy of its key or
                    // accumulators; found by its position in the state it
                    // came from when that is known.
                    let mut added = 0;
                    let put =
                        drain
                            .by_ref()
                            .take(n)
                            .enumerate()
                            .try_for_each(|(i, (_, key, a))| {
                                crate::pace::point();
                                let new = match from {
                                    Some(from) => {
                                        window.put_from_twin(start, from[i], &key, a, hasher)
                                    }
                                    None => window.put(start, &key, a, hasher),
                                }?;
                                added += usize::from(new);
                                Ok(())
                            });
                    self.groups += added;
                    if added > 0 {
                        self.shape = window.shape;
                    }
                    put
                }
                _ => {
                    let filled = self.restore_window(start, n, |keys, accs| {
                        let (_, key, a) = drain.next().expect("a run is as long as it was counted");
                        crate::pace::point();
                        keys.extend(key);
                        accs.extend(a);
                        Ok(())
                    });
                    if let (Ok(()), Some(from)) = (&filled, from) {
                        // Filled from empty in the delta's order, unless a
                        // key came twice.
                        if let Some(window) = self.windows.get_mut(&start) {
                            if window.len() == n {
                                window.remember_twins(from);
                            }
                        }
                    }
                    filled
                }
            };
            if result.is_err() {
                break;
            }
        }
        self.restore_end();
        result
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
    pub fn restore_group(
        &mut self,
        start: i64,
        key: &[Value],
        accs: Accumulators,
    ) -> Result<(), ShapeMismatch> {
        let hasher = self.hasher;
        let window = window_at(&mut self.windows, &mut self.spare_window, start);
        if window.put(start, key, accs, hasher)? {
            self.groups += 1;
            self.shape = window.shape;
        }
        Ok(())
    }

    /// Fills window `start` with `n` groups, as
    /// [`WindowedState::restore_group`] for each would, but faster when the
    /// window is empty (a full state file). `next` appends one group's key
    /// values and accumulators to the two lists it is given (and nothing
    /// on an error); the groups are written to the window's columns in
    /// order, and the table of their positions is built afterwards in the
    /// order of the buckets they land in, so a million groups make one pass
    /// over the table instead of two cache misses each. On an error from
    /// `next`, or a group shaped unlike the first, the groups read before
    /// it are in the window and the error is returned.
    pub fn restore_window<E: From<ShapeMismatch>>(
        &mut self,
        start: i64,
        n: usize,
        mut next: impl FnMut(&mut Vec<Value>, &mut Vec<Accumulator>) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.windows.get(&start).is_some_and(|w| w.len() > 0) {
            // Groups may be replaced: one at a time.
            let (mut keys, mut accs) = (Vec::new(), Vec::new());
            for _ in 0..n {
                keys.clear();
                accs.clear();
                next(&mut keys, &mut accs)?;
                self.restore_group(start, &keys, accs.drain(..).collect())?;
            }
            return Ok(());
        }
        let hasher = self.hasher;
        let window = window_at(&mut self.windows, &mut self.spare_window, start);
        let (hashes, result) = window.fill_empty(&mut next, start, n, hasher);
        if window.index_in_bucket_order(&hashes, hasher) {
            self.groups += window.len();
            if window.len() > 0 {
                self.shape = window.shape;
            }
        } else {
            // A key twice (a full file never holds one): the later value
            // wins, as group by group.
            let Groups {
                keys, accs, shape, ..
            } = std::mem::take(window);
            let mut accs = accs.into_iter();
            for i in 0..hashes.len() {
                let a: Accumulators = accs.by_ref().take(shape.accs).collect();
                self.restore_group(start, part(&keys, shape.keys, i), a)?;
            }
        }
        result
    }

    /// Replaces every group with `other`'s, as applying `other`'s full
    /// snapshot would (nothing counts as changed), but without copying a
    /// group: a recovered state handed to the aggregation that runs on.
    /// Whether changes are tracked stays this state's choice.
    pub fn replace_groups(&mut self, other: WindowedState) {
        self.windows = other.windows;
        for groups in self.windows.values_mut() {
            groups.periods.fill(Periods::default());
        }
        self.groups = other.groups;
        self.newest = other.newest;
        self.shape = other.shape;
        self.restore_end();
    }

    /// Ends applying a snapshot: nothing applied counts as changed, and the
    /// next snapshot is a full one (the files it came from are not this
    /// state's to extend).
    pub fn restore_end(&mut self) {
        self.dirty.clear();
        self.evicted.clear();
        self.pending = None;
        self.since_full = FullEvery::default();
    }
}

/// Copies into `p` (a full snapshot) the groups of `window` (starting at
/// `start`) from position `from` on, up to `budget` of them, that were held
/// at its marker and not saved yet; returns where it stopped.
fn save_groups(
    start: i64,
    window: &mut Groups,
    from: usize,
    budget: usize,
    p: &mut PendingSnapshot,
) -> usize {
    let end = window.len().min(from.saturating_add(budget));
    let (kw, aw) = (window.shape.keys, window.shape.accs);
    for i in from..end {
        let periods = &mut window.periods[i];
        if periods.saved_for != p.period {
            periods.saved_for = p.period;
            p.save(
                start,
                part(&window.keys, kw, i),
                part(&window.accs, aw, i),
                i,
            );
        }
    }
    end
}

/// Walks a full snapshot on over the windows from where it stopped, looking
/// at up to `budget` groups; `true` once it has looked at them all.
fn walk_windows(
    windows: &mut BTreeMap<i64, Groups>,
    walk: &mut Walk,
    p: &mut PendingSnapshot,
    mut budget: usize,
) -> bool {
    while !walk.done && budget > 0 {
        let Some((&start, window)) = windows.range_mut(walk.start..).next() else {
            walk.done = true;
            break;
        };
        if start != walk.start {
            // The window it was in closed: on to the next one.
            *walk = Walk {
                start,
                at: 0,
                ..*walk
            };
        }
        let end = save_groups(start, window, walk.at, budget, p);
        let looked = end - walk.at.min(end);
        budget -= looked;
        walk.left = walk.left.saturating_sub(looked);
        walk.at = end;
        if end >= window.len() {
            match start.checked_add(1) {
                Some(next) => {
                    *walk = Walk {
                        start: next,
                        at: 0,
                        ..*walk
                    }
                }
                None => walk.done = true,
            }
        }
    }
    walk.done
}

/// A group's accumulators copied into a snapshot's inline list.
#[inline]
fn copy_accs(accs: &[Accumulator]) -> Accumulators {
    accs.iter().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::DataType;
    use crate::state::AggFunc;
    use smallvec::smallvec;

    fn count_init() -> Accumulators {
        smallvec![AggFunc::CountStar.new_accumulator(&DataType::Int64)]
    }

    fn bump(state: &mut WindowedState, start: i64, key: &str) {
        let key: GroupKey = smallvec![Value::str(key)];
        state.group_mut(start, &key, count_init).1[0].update(&Value::Boolean(true));
    }

    #[test]
    fn deltas_replayed_on_a_shadow_equal_the_state() {
        let mut live = WindowedState::new();
        let mut shadow = WindowedState::new();
        bump(&mut live, 0, "a");
        bump(&mut live, 0, "b");
        bump(&mut live, 10, "a");
        shadow.apply(live.take_delta()).unwrap();
        bump(&mut live, 10, "a");
        bump(&mut live, 20, "c");
        live.evict_closed(10, 10, |_, _, _| {});
        let delta = live.take_delta();
        assert_eq!(delta.evicted, vec![0]);
        assert_eq!(delta.groups.len(), 2, "only the changed groups travel");
        shadow.apply(delta).unwrap();
        assert_eq!(shadow.snapshot(), live.snapshot());
        assert_eq!(shadow.num_groups(), 2);
    }

    #[test]
    fn a_delta_group_shaped_unlike_its_window_is_refused_after_the_ones_before_it() {
        let mut live = WindowedState::new();
        let mut shadow = WindowedState::new();
        bump(&mut live, 0, "a");
        shadow.apply(live.take_delta()).unwrap();
        // Window 0 has groups now: a delta's groups go in one at a time.
        let wide: GroupKey = smallvec![Value::str("x"), Value::str("y")];
        let delta = StateSnapshot {
            full: false,
            evicted: Vec::new(),
            positions: Vec::new(),
            groups: vec![
                (0, smallvec![Value::str("b")], count_init()),
                (0, wide, count_init()),
                (0, smallvec![Value::str("c")], count_init()),
            ],
            columns: SnapshotColumns::default(),
        };
        assert!(shadow.apply(delta).is_err());
        let keys: Vec<_> = shadow.iter().map(|(_, k, _)| k.to_vec()).collect();
        assert_eq!(keys, vec![vec![Value::str("a")], vec![Value::str("b")]]);
    }

    #[test]
    fn tracking_turned_off_and_on_again_records_the_next_change() {
        let mut s = WindowedState::new();
        bump(&mut s, 0, "a");
        s.set_change_tracking(false);
        s.set_change_tracking(true);
        bump(&mut s, 0, "a");
        assert_eq!(s.take_delta().groups.len(), 1);
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
        shadow.apply(s.take_delta()).unwrap();
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
            .map(|(w, k, a)| (w, k.to_vec(), a[0].result()))
            .collect();
        assert_eq!(groups, vec![(10, vec![Value::str("b")], Value::Int64(1))]);
        // The shadow closes the window through the delta and reuses it too.
        shadow.apply(s.take_delta()).unwrap();
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
        shadow.apply(live.finish_snapshot()).unwrap();
        assert_eq!(canon(&shadow.snapshot()), canon(&at_marker));
        // The next snapshot carries what changed after the marker.
        shadow.apply(live.take_delta()).unwrap();
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
        let found = match state.group_mut(start, &key, count_init).1[0] {
            Accumulator::Count(n) => n,
            ref other => panic!("not a count: {other:?}"),
        };
        (state.num_groups() == before).then_some(found)
    }

    /// Restores `(key, count)` groups into window 0 at once.
    fn restore_all(s: &mut WindowedState, groups: &[(i64, i64)]) {
        let mut it = groups.iter().map(|&(k, n)| counted(k, n));
        s.restore_window(0, groups.len(), |keys, accs| {
            let (k, a) = it.next().unwrap();
            keys.extend(k);
            accs.extend(a);
            Ok::<_, ShapeMismatch>(())
        })
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
        bulk.restore_window(10, n as usize, |keys, accs| {
            i += 1;
            let (k, a) = counted(key(i), i);
            keys.extend(k);
            accs.extend(a);
            Ok::<_, ShapeMismatch>(())
        })
        .unwrap();
        let mut single = WindowedState::new();
        for i in 1..=n {
            let (k, a) = counted(key(i), i);
            single.restore_group(10, &k, a).unwrap();
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
        s.restore_group(0, &counted(1, 1).0, counted(1, 1).1)
            .unwrap();
        s.restore_group(0, &counted(2, 2).0, counted(2, 2).1)
            .unwrap();
        restore_all(&mut s, &[(2, 20), (3, 30)]);
        assert_counts(&mut s, &[(1, 1), (2, 20), (3, 30)]);
    }

    #[test]
    fn a_window_restore_that_fails_keeps_what_it_read_and_says_why() {
        let mut s = WindowedState::new();
        let mut i = 0;
        let got = s.restore_window(0, 10, |keys, accs| {
            i += 1;
            if i == 4 {
                keys.push(Value::Int64(i));
                return Err("damaged".to_string());
            }
            let (k, a) = counted(i, i);
            keys.extend(k);
            accs.extend(a);
            Ok(())
        });
        assert_eq!(got, Err("damaged".to_string()));
        assert_eq!(s.num_groups(), 3);
        assert_eq!(count_of(&mut s, 0, 3), Some(3));
    }

    #[test]
    fn a_copy_holds_the_groups_finds_them_and_changes_apart() {
        let mut s = WindowedState::new();
        for i in 0..1_000 {
            let (k, a) = counted(i, i);
            s.restore_group(i % 3, &k, a).unwrap();
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
        copy.restore_group(1, &counted(1, 99).0, counted(1, 99).1)
            .unwrap();
        assert_eq!(count_of(&mut copy, 1, 1), Some(99));
        assert_eq!(count_of(&mut s, 1, 1), Some(1), "the original is apart");
    }

    #[test]
    fn replaced_groups_are_found_unchanged_and_tracking_stays_on() {
        let mut restored = WindowedState::new();
        for i in 0..100 {
            let (k, a) = counted(i, i);
            restored.restore_group(i % 2, &k, a).unwrap();
        }
        let want = restored.snapshot();
        let mut live = WindowedState::new();
        bump(&mut live, 5, "dropped");
        live.replace_groups(restored);
        assert_eq!(live.num_groups(), 100);
        assert_eq!(live.snapshot(), want);
        assert!(
            live.take_delta().groups.is_empty(),
            "nothing counts as changed"
        );
        assert_eq!(count_of(&mut live, 1, 7), Some(7));
        let delta = live.take_delta();
        assert_eq!(delta.groups.len(), 1, "a change after is tracked");
        assert_eq!(delta.groups[0].0, 1);
    }

    fn position_of(state: &WindowedState, start: i64, key: &str) -> usize {
        let key: GroupKey = smallvec![Value::str(key)];
        let w = &state.windows[&start];
        w.find(state.hasher.hash_one(key.as_slice()), &key).unwrap()
    }

    #[test]
    fn a_shadow_finds_a_delta_s_groups_by_their_positions_in_the_state() {
        let mut live = WindowedState::new();
        // Made in an order unlike the live state's, so the shadow's
        // positions differ from the live ones.
        for key in ["c", "b", "a"] {
            bump(&mut live, 0, key);
        }
        let mut shadow = WindowedState::new();
        let mut first = live.take_delta();
        assert_eq!(first.positions, vec![0, 1, 2]);
        first.groups.reverse();
        first.positions.reverse();
        shadow.apply(first).unwrap();
        bump(&mut live, 0, "a");
        bump(&mut live, 0, "d");
        bump(&mut live, 0, "c");
        shadow.apply(live.take_delta()).unwrap();
        assert_eq!(shadow.sorted_groups(), live.sorted_groups());
        let twin = &shadow.windows[&0].twin;
        for key in ["a", "b", "c", "d"] {
            assert_eq!(
                twin[position_of(&live, 0, key)] as usize,
                position_of(&shadow, 0, key),
                "the shadow remembers where the live group {key} went"
            );
        }
    }

    #[test]
    fn positions_that_are_wrong_or_missing_cost_a_lookup_never_a_wrong_group() {
        let mut live = WindowedState::new();
        let mut shadow = WindowedState::new();
        for key in ["a", "b", "c"] {
            bump(&mut live, 0, key);
        }
        shadow.apply(live.take_delta()).unwrap();
        for key in ["a", "b", "c", "d"] {
            bump(&mut live, 0, key);
        }
        let mut delta = live.take_delta();
        // Every position names another group, and one is far out of range.
        delta.positions.rotate_left(1);
        delta.positions[0] = u32::MAX - 1;
        shadow.apply(delta).unwrap();
        assert_eq!(shadow.sorted_groups(), live.sorted_groups());
        bump(&mut live, 0, "b");
        let mut delta = live.take_delta();
        delta.positions.push(0); // not one per group: not used
        shadow.apply(delta).unwrap();
        assert_eq!(shadow.sorted_groups(), live.sorted_groups());
        assert_eq!(shadow.num_groups(), 4);
    }

    fn add(state: &mut WindowedState, w: i64, k: i64, by: i64) {
        let key: GroupKey = smallvec![Value::Int64(k)];
        let (_, g) = state.group_mut(w, &key, || smallvec![Accumulator::Count(0)]);
        if let Accumulator::Count(n) = &mut g[0] {
            *n += by;
        }
    }

    #[test]
    fn a_delta_taken_over_a_pending_full_snapshot_leaves_out_windows_closed_since() {
        let mut live = WindowedState::new();
        for k in 0..600 {
            add(&mut live, 0, k, 1);
        }
        add(&mut live, 10, 0, 1);
        live.begin_snapshot_as(true);
        add(&mut live, 0, 1, 100);
        live.evict_closed(15, 10, |_, _, _| {});
        let merged = live.take_delta();
        let mut restored = WindowedState::new();
        restored.apply(merged).unwrap();
        assert_eq!(restored.sorted_groups(), live.sorted_groups());
    }

    #[test]
    fn a_delta_taken_over_a_pending_full_snapshot_keeps_the_later_values() {
        let mut live = WindowedState::new();
        for k in 0..600 {
            add(&mut live, 0, k, 1);
        }
        live.begin_snapshot_as(true);
        add(&mut live, 0, 1, 100);
        let merged = live.take_delta();
        let mut restored = WindowedState::new();
        restored.apply(merged).unwrap();
        assert_eq!(restored.sorted_groups(), live.sorted_groups());
    }

    proptest::proptest! {
        /// Whatever interleaving of updates, markers (of deltas and of full
        /// snapshots, chosen at random or by the state's own rule), partial
        /// drains and evictions: every snapshot, applied in order to a
        /// shadow, gives the state as it was at that snapshot's marker.
        #[test]
        fn copy_on_write_snapshots_equal_the_state_at_their_marker(
            ops in proptest::collection::vec((0u8..9, 0i64..4, 0u8..6), 1..300)
        ) {
            let mut live = WindowedState::new();
            let mut shadow = WindowedState::new();
            let mut expected: Option<StateSnapshot> = None;
            let mut watermark = 0i64;
            for (op, window, key) in ops {
                match op {
                    // Markers: the previous snapshot, if any, is finished.
                    0 => {
                        let begun = match key {
                            0 | 1 => live.begin_snapshot_as(true),
                            2 => live.begin_snapshot(),
                            _ => live.begin_snapshot_as(false),
                        };
                        if let Some(done) = begun {
                            shadow.apply(done).unwrap();
                            proptest::prop_assert_eq!(canon(&shadow.snapshot()), canon(&expected.take().unwrap()));
                        }
                        expected = Some(live.snapshot());
                    }
                    1 => {
                        if live.drain_snapshot(key as usize) && live.snapshot_pending() {
                            shadow.apply(live.finish_snapshot()).unwrap();
                            proptest::prop_assert_eq!(canon(&shadow.snapshot()), canon(&expected.take().unwrap()));
                        }
                    }
                    2 => {
                        watermark += 10;
                        live.evict_closed(watermark, 10, |_, _, _| {});
                    }
                    // A window closed before opens again (its groups start
                    // from the first position once more).
                    3 if watermark > 0 => {
                        bump(&mut live, watermark - 10, &format!("k{key}"));
                    }
                    _ => bump(&mut live, watermark + window * 10, &format!("k{key}")),
                }
            }
            if live.snapshot_pending() {
                shadow.apply(live.finish_snapshot()).unwrap();
                proptest::prop_assert_eq!(canon(&shadow.snapshot()), canon(&expected.take().unwrap()));
            }
            shadow.apply(live.take_delta()).unwrap();
            proptest::prop_assert_eq!(canon(&shadow.snapshot()), canon(&live.snapshot()));
        }
    }
}

#[cfg(test)]
mod layout_tests {
    use super::*;

    /// A group takes 24 bytes per key value, 32 per accumulator and 8 for
    /// its change periods, so a restore of a million groups of one key and
    /// two aggregates writes 96 MB of fresh memory: a change that grows
    /// any of them should be a decision, not an accident.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_group_and_its_accumulators_stay_this_small() {
        assert_eq!(std::mem::size_of::<Value>(), 24);
        assert_eq!(std::mem::size_of::<Accumulator>(), 32);
        assert_eq!(std::mem::size_of::<Periods>(), 8);
    }
}
