//! A snapshot's groups in columns: what a full snapshot is copied into.
//!
//! Owns [`SnapshotColumns`]: every group's window start in one list, key
//! values in another and accumulators in a third, all groups of one shape,
//! as the state itself keeps them. A group costs its window start, values and
//! accumulators (64 bytes for one key and one aggregate) rather than a tuple
//! sized for the largest inline key and accumulator lists, and copying one
//! into it allocates nothing once the lists have their size, in whatever
//! order of windows the groups come. It must not decide what goes into a
//! snapshot (the state's snapshot does) or how it is stored (the checkpoint
//! does).

use super::groups::Shape;
use super::Accumulator;
use crate::schema::Value;

/// Groups of a snapshot in columns (see the module docs).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SnapshotColumns {
    /// The shape of every group (set by the first one).
    shape: Shape,
    starts: Vec<i64>,
    keys: Vec<Value>,
    accs: Vec<Accumulator>,
}

/// The groups of one window of a [`SnapshotColumns`], by their index.
#[derive(Debug)]
pub struct ColumnWindows {
    /// Each window's start and the end of its indices in `order`, in start
    /// order.
    windows: Vec<(i64, usize)>,
    /// Group indices, window by window.
    order: Vec<u32>,
}

impl SnapshotColumns {
    /// Adds a group of window `start`. Returns `false`, adding nothing,
    /// when its shape is not the other groups' (one aggregation builds
    /// every group alike; the caller keeps such a group elsewhere).
    #[inline]
    pub fn push(&mut self, start: i64, key: &[Value], accs: &[Accumulator]) -> bool {
        let shape = Shape {
            keys: key.len(),
            accs: accs.len(),
        };
        if self.starts.is_empty() {
            self.shape = shape;
        } else if shape != self.shape {
            return false;
        }
        self.starts.push(start);
        self.keys.extend_from_slice(key);
        self.accs.extend_from_slice(accs);
        true
    }

    /// Number of groups held.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Whether it holds no group.
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Empties it, keeping its lists' room.
    pub fn clear(&mut self) {
        self.starts.clear();
        self.keys.clear();
        self.accs.clear();
    }

    /// Room for `groups` more groups of `shape`.
    pub fn reserve(&mut self, groups: usize, shape: Shape) {
        self.starts.reserve(groups);
        self.keys.reserve(groups.saturating_mul(shape.keys));
        self.accs.reserve(groups.saturating_mul(shape.accs));
    }

    /// Empties it and makes room for `groups` groups of the shape it held,
    /// and a quarter more, backed with memory now (nothing if it has the
    /// room): so that the next snapshot copied into it, on a task's thread,
    /// neither grows a list nor faults a page in. For the thread that hands
    /// it back (the checkpoint's).
    pub fn make_room(&mut self, groups: usize) {
        self.clear();
        let want = groups.saturating_add(groups / 4);
        if self.starts.capacity() >= want {
            return;
        }
        self.reserve(want, self.shape);
        super::backing::prefault_now(self.starts.spare_capacity_mut());
        super::backing::prefault_now(self.keys.spare_capacity_mut());
        super::backing::prefault_now(self.accs.spare_capacity_mut());
    }

    /// Bytes its lists have room for (what keeping it for reuse keeps).
    pub fn capacity_bytes(&self) -> usize {
        self.starts.capacity() * std::mem::size_of::<i64>()
            + self.keys.capacity() * std::mem::size_of::<Value>()
            + self.accs.capacity() * std::mem::size_of::<Accumulator>()
    }

    /// Group `i`'s window start, key and accumulators.
    #[inline]
    pub fn get(&self, i: usize) -> (i64, &[Value], &[Accumulator]) {
        let (kw, aw) = (self.shape.keys, self.shape.accs);
        (
            self.starts[i],
            &self.keys[i * kw..(i + 1) * kw],
            &self.accs[i * aw..(i + 1) * aw],
        )
    }

    /// Every group as `(window start, key, accumulators)`, in the order
    /// added.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &[Value], &[Accumulator])> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// The groups sorted into their windows, in two passes over the starts
    /// (windows in start order; within a window, the order added).
    pub fn windows(&self) -> ColumnWindows {
        use std::collections::{BTreeMap, HashMap};
        // Consecutive groups mostly share a window: one lookup per run.
        let runs = || self.starts.chunk_by(|a, b| a == b);
        let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
        for run in runs() {
            *counts.entry(run[0]).or_default() += run.len();
        }
        let mut windows = Vec::with_capacity(counts.len());
        let mut next: HashMap<i64, usize> = HashMap::with_capacity(counts.len());
        let mut end = 0;
        for (start, n) in counts {
            next.insert(start, end);
            end += n;
            windows.push((start, end));
        }
        let mut order = vec![0u32; self.starts.len()];
        let mut first = 0;
        for run in runs() {
            let at = next.get_mut(&run[0]).expect("every start was counted");
            for (k, slot) in order[*at..*at + run.len()].iter_mut().enumerate() {
                *slot = u32::try_from(first + k)
                    .expect("a snapshot holds fewer than four billion groups");
            }
            *at += run.len();
            first += run.len();
        }
        ColumnWindows { windows, order }
    }
}

impl ColumnWindows {
    /// Number of windows.
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    /// Whether there is no window.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// Each window's start and its groups' indices (for
    /// [`SnapshotColumns::get`]), in start order.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &[u32])> + '_ {
        let mut from = 0;
        self.windows.iter().map(move |&(start, end)| {
            let ids = &self.order[from..end];
            from = end;
            (start, ids)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(n: i64) -> Accumulator {
        Accumulator::Count(n)
    }

    #[test]
    fn groups_come_back_by_window_in_the_order_added() {
        let mut c = SnapshotColumns::default();
        assert!(c.push(10, &[Value::Int64(1)], &[count(1)]));
        assert!(c.push(0, &[Value::Int64(2)], &[count(2)]));
        assert!(c.push(10, &[Value::Int64(3)], &[count(3)]));
        assert!(c.push(10, &[Value::Int64(4)], &[count(4)]));
        assert!(
            !c.push(10, &[Value::Int64(4), Value::Int64(5)], &[count(4)]),
            "another shape is not taken"
        );
        assert_eq!(c.len(), 4);
        let windows = c.windows();
        assert_eq!(windows.len(), 2);
        let by_window: Vec<(i64, Vec<Value>)> = windows
            .iter()
            .map(|(start, ids)| {
                let keys = ids
                    .iter()
                    .map(|&i| c.get(i as usize).1[0].clone())
                    .collect();
                (start, keys)
            })
            .collect();
        assert_eq!(
            by_window,
            vec![
                (0, vec![Value::Int64(2)]),
                (10, vec![Value::Int64(1), Value::Int64(3), Value::Int64(4)])
            ]
        );
        let all: Vec<i64> = c.iter().map(|(s, _, _)| s).collect();
        assert_eq!(all, vec![10, 0, 10, 10]);
        c.clear();
        assert!(c.is_empty());
        assert!(c.windows().is_empty());
    }

    #[test]
    fn interleaved_windows_are_sorted_in_one_pass_each() {
        let mut c = SnapshotColumns::default();
        for i in 0..10_000i64 {
            assert!(c.push(i % 7, &[Value::Int64(i)], &[count(i)]));
        }
        let windows = c.windows();
        assert_eq!(windows.len(), 7);
        let mut seen = 0;
        for (start, ids) in windows.iter() {
            let keys: Vec<i64> = ids
                .iter()
                .map(|&i| c.get(i as usize).1[0].as_i64().unwrap())
                .collect();
            assert!(keys.iter().all(|k| k % 7 == start));
            assert!(keys.windows(2).all(|w| w[0] < w[1]), "the order added");
            seen += keys.len();
        }
        assert_eq!(seen, 10_000);
    }
}
