//! A snapshot's groups in columns: what a full snapshot is copied into.
//!
//! Owns [`SnapshotColumns`]: runs of groups of one window and one shape, their
//! key values in one list and their accumulators in another, as the state
//! itself keeps them. A group costs its values and accumulators (56 bytes for
//! one key and one aggregate) rather than a tuple sized for the largest inline
//! key and accumulator lists, and copying one into it allocates nothing once
//! the lists have their size. It must not decide what goes into a snapshot
//! (the state's snapshot does) or how it is stored (the checkpoint does).

use super::groups::Shape;
use super::Accumulator;
use crate::schema::Value;

/// A run of consecutive groups of one window, all of one shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    start: i64,
    groups: u32,
    shape: Shape,
}

/// Groups of a snapshot in columns (see the module docs).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SnapshotColumns {
    runs: Vec<Run>,
    keys: Vec<Value>,
    accs: Vec<Accumulator>,
}

impl SnapshotColumns {
    /// Adds a group of window `start`.
    #[inline]
    pub fn push(&mut self, start: i64, key: &[Value], accs: &[Accumulator]) {
        let shape = Shape {
            keys: key.len(),
            accs: accs.len(),
        };
        match self.runs.last_mut() {
            Some(run) if run.start == start && run.shape == shape && run.groups < u32::MAX => {
                run.groups += 1;
            }
            _ => self.runs.push(Run {
                start,
                groups: 1,
                shape,
            }),
        }
        self.keys.extend_from_slice(key);
        self.accs.extend_from_slice(accs);
    }

    /// Number of groups held.
    pub fn len(&self) -> usize {
        self.runs.iter().map(|r| r.groups as usize).sum()
    }

    /// Whether it holds no group.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Empties it, keeping its lists' room.
    pub fn clear(&mut self) {
        self.runs.clear();
        self.keys.clear();
        self.accs.clear();
    }

    /// Room for `groups` more groups of `shape`.
    pub fn reserve(&mut self, groups: usize, shape: Shape) {
        self.keys.reserve(groups.saturating_mul(shape.keys));
        self.accs.reserve(groups.saturating_mul(shape.accs));
    }

    /// Bytes its lists have room for (what keeping it for reuse keeps).
    pub fn capacity_bytes(&self) -> usize {
        self.keys.capacity() * std::mem::size_of::<Value>()
            + self.accs.capacity() * std::mem::size_of::<Accumulator>()
    }

    /// The windows it holds groups of, each once, in the order first seen.
    pub fn window_starts(&self) -> Vec<i64> {
        let mut starts: Vec<i64> = Vec::new();
        for run in &self.runs {
            if starts.last() != Some(&run.start) && !starts.contains(&run.start) {
                starts.push(run.start);
            }
        }
        starts
    }

    /// Every group as `(window start, key, accumulators)`, in the order
    /// added.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &[Value], &[Accumulator])> + '_ {
        let (mut k, mut a) = (0, 0);
        self.runs.iter().flat_map(move |run| {
            let (kw, aw) = (run.shape.keys, run.shape.accs);
            let n = run.groups as usize;
            let keys = &self.keys[k..k + n * kw];
            let accs = &self.accs[a..a + n * aw];
            k += n * kw;
            a += n * aw;
            (0..n).map(move |i| {
                (
                    run.start,
                    &keys[i * kw..(i + 1) * kw],
                    &accs[i * aw..(i + 1) * aw],
                )
            })
        })
    }

    /// The groups of window `start`, in the order added.
    pub fn window(&self, start: i64) -> impl Iterator<Item = (&[Value], &[Accumulator])> + '_ {
        let (mut k, mut a) = (0, 0);
        self.runs
            .iter()
            .filter_map(move |run| {
                let n = run.groups as usize;
                let (kw, aw) = (run.shape.keys, run.shape.accs);
                let keys = &self.keys[k..k + n * kw];
                let accs = &self.accs[a..a + n * aw];
                k += n * kw;
                a += n * aw;
                (run.start == start).then_some((n, kw, aw, keys, accs))
            })
            .flat_map(|(n, kw, aw, keys, accs)| {
                (0..n).map(move |i| (&keys[i * kw..(i + 1) * kw], &accs[i * aw..(i + 1) * aw]))
            })
    }

    /// How many groups of window `start` it holds.
    pub fn window_len(&self, start: i64) -> usize {
        self.runs
            .iter()
            .filter(|r| r.start == start)
            .map(|r| r.groups as usize)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::DataType;
    use crate::state::AggFunc;

    fn count(n: i64) -> Accumulator {
        let mut a = AggFunc::CountStar.new_accumulator(&DataType::Int64);
        for i in 0..n {
            a.update(&Value::Int64(i));
        }
        a
    }

    #[test]
    fn groups_come_back_by_window_in_the_order_added() {
        let mut c = SnapshotColumns::default();
        c.push(10, &[Value::Int64(1)], &[count(1)]);
        c.push(0, &[Value::Int64(2)], &[count(2)]);
        c.push(10, &[Value::Int64(3)], &[count(3)]);
        c.push(10, &[Value::Int64(4), Value::Int64(5)], &[count(4)]);
        assert_eq!(c.len(), 4);
        assert_eq!(c.window_starts(), vec![10, 0]);
        assert_eq!(c.window_len(10), 3);
        let keys: Vec<Vec<Value>> = c.window(10).map(|(k, _)| k.to_vec()).collect();
        assert_eq!(
            keys,
            vec![
                vec![Value::Int64(1)],
                vec![Value::Int64(3)],
                vec![Value::Int64(4), Value::Int64(5)]
            ]
        );
        let all: Vec<i64> = c.iter().map(|(s, _, _)| s).collect();
        assert_eq!(all, vec![10, 0, 10, 10]);
        c.clear();
        assert!(c.is_empty());
        assert_eq!(c.iter().count(), 0);
    }
}
