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
    dirty: bool,
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
    pub groups: Vec<(i64, GroupKey, Accumulators)>,
    /// Window starts whose state was dropped.
    pub evicted: Vec<i64>,
}

type Groups = HashTable<(GroupKey, GroupState)>;

/// Aggregation state: a map from window start to the groups of that window.
///
/// Windows are kept in start order, so closing every window that ends at or
/// before a watermark is a walk from the front. Changed groups are remembered
/// so that a checkpoint copies only what changed since the last one; state
/// that is never checkpointed turns that off
/// ([`WindowedState::set_change_tracking`]). A new window's table is sized
/// for as many groups as the newest window holds, so it does not grow
/// through a series of rehashes.
#[derive(Default)]
pub struct WindowedState {
    windows: BTreeMap<i64, Groups>,
    dirty: Vec<(i64, GroupKey)>,
    evicted: Vec<i64>,
    groups: usize,
    hasher: FxBuildHasher,
    /// Changes are not tracked (no checkpoint needs deltas).
    untracked: bool,
    /// The newest window start that got a new group, and its group count
    /// then: the size a new window's table starts with.
    newest: (i64, usize),
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
            for groups in self.windows.values_mut() {
                for (_, g) in groups.iter_mut() {
                    g.dirty = false;
                }
            }
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
        let window = self
            .windows
            .entry(start)
            // Sized for as many groups as the newest window holds (usually
            // its predecessor): no rehashes while it fills up.
            .or_insert_with(|| Groups::with_capacity(newest_len));
        let held = window.len();
        let slot = match window.entry(hash, |(k, _)| k == key, |(k, _)| hasher.hash_one(k)) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(v) => {
                self.groups += 1;
                let state = GroupState {
                    accs: init(),
                    dirty: false,
                };
                if start >= self.newest.0 || self.newest.1 == 0 {
                    self.newest = (start, held + 1);
                }
                v.insert((key.clone(), state)).into_mut()
            }
        };
        if self.untracked {
            return (&slot.0, &mut slot.1);
        }
        if !slot.1.dirty {
            slot.1.dirty = true;
            self.dirty.push((start, slot.0.clone()));
        }
        (&slot.0, &mut slot.1)
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
            let groups = self.windows.remove(&start).unwrap_or_default();
            for (k, g) in &groups {
                emit(start, k, g);
            }
            self.groups -= groups.len();
            if !self.untracked {
                self.evicted.push(start);
            }
        }
    }

    /// Every group, in window order.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &GroupKey, &GroupState)> {
        self.windows
            .iter()
            .flat_map(|(s, groups)| groups.iter().map(move |(k, g)| (*s, k, g)))
    }

    /// What changed since the previous call: changed groups and evicted
    /// windows. Costs time in proportion to the changes, not the state, and
    /// one allocation (the list of groups). Empty when changes are not
    /// tracked.
    pub fn take_delta(&mut self) -> StateSnapshot {
        let mut groups = Vec::with_capacity(self.dirty.len());
        let hasher = self.hasher;
        for (start, key) in self.dirty.drain(..) {
            let found = self
                .windows
                .get_mut(&start)
                .and_then(|w| w.find_mut(hasher.hash_one(&key), |(k, _)| *k == key));
            if let Some((_, g)) = found {
                g.dirty = false;
                groups.push((start, key, g.accs.clone()));
            }
        }
        StateSnapshot {
            full: false,
            groups,
            evicted: std::mem::take(&mut self.evicted),
        }
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

    /// Applies a snapshot: a full one replaces the state, a delta updates it.
    /// Nothing applied is marked as changed.
    pub fn apply(&mut self, snap: StateSnapshot) {
        if snap.full {
            self.windows.clear();
            self.groups = 0;
        }
        for start in &snap.evicted {
            if let Some(w) = self.windows.remove(start) {
                self.groups -= w.len();
            }
        }
        let hasher = self.hasher;
        for (start, key, accs) in snap.groups {
            let window = self.windows.entry(start).or_default();
            let state = GroupState { accs, dirty: false };
            let hash = hasher.hash_one(&key);
            match window.entry(hash, |(k, _)| *k == key, |(k, _)| hasher.hash_one(k)) {
                Entry::Occupied(mut o) => o.get_mut().1 = state,
                Entry::Vacant(v) => {
                    v.insert((key, state));
                    self.groups += 1;
                }
            }
        }
        self.dirty.clear();
        self.evicted.clear();
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
}
