//! The stream-stream join's two-sided state, shared by both runtimes.
//!
//! Owns [`BoundStreamJoin`] (the join bound: each side's key expressions,
//! event-time column and watermark delay, the condition on the joined row,
//! the event-time range the condition implies) and [`StreamJoinState`]:
//! every row of each side kept under its key, a row of one side probing the
//! other side's rows of the same key, the rows' watermarks and the eviction
//! they allow, and the unmatched rows an outer join emits with nulls when
//! they are evicted. Continuous mode calls it per event, micro-batch mode per
//! row of a batch, in each side's order; so lateness, matches and unmatched
//! rows are the same in both modes whatever the interleaving of the sides.
//! It must not know about tasks, rings, batches or files: a snapshot is a
//! plain value ([`JoinSnapshot`]) the checkpoint core writes.
//!
//! Semantics (Spark's): a row's key with a null never matches. With a range
//! `lo ≤ t_left − t_right ≤ hi` and a watermark on a side, that side's rows
//! older than its watermark (the largest event time seen on it before them,
//! less the delay) are late: dropped and counted. A left row can then be
//! evicted once `t_left − lo` is below the right watermark (no right row to
//! come can match it), a right row once `t_right + hi` is below the left
//! watermark; an evicted row of an outer join's preserved side that never
//! matched is emitted once, with nulls for the other side. Eviction walks
//! each side's rows in event-time order (a `BTreeMap` beside the rows by
//! key, `join_rows`), so it costs what it evicts, not the size of the state.
//! Inserting a row into the state allocates (its copy, its place in the
//! order, a key's place when the slab has none free); probing does not.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::index::hash_key;
use super::join_rows::{Key, SideRows, StoredRow};
use crate::error::Result;
use crate::expr::BoundExpr;
use crate::schema::{Row, Value, NO_TIME};

/// An operator of a side before the join, bound.
pub(crate) enum SideOp {
    /// Keeps the rows for which it is true.
    Filter(BoundExpr),
    /// Computes the side's new columns.
    Project(Vec<BoundExpr>),
}

/// A stream-stream join, bound: what both runtimes execute.
pub(crate) struct BoundStreamJoin {
    /// Columns of the left and the right sources' rows.
    pub(crate) input_widths: [usize; 2],
    /// Each side's filters and projections, run on its source's rows in order.
    pub(crate) side_ops: [Vec<SideOp>; 2],
    /// Columns of the left and the right rows at the join.
    pub(crate) widths: [usize; 2],
    /// Each side's key expressions over its own row, cast to the key types.
    pub(crate) keys: [Vec<BoundExpr>; 2],
    /// The rest of `ON`, over the joined row (left columns, then right).
    pub(crate) condition: Option<BoundExpr>,
    /// Each side's event-time column (in its row at the join) and watermark
    /// delay.
    pub(crate) watermark: [Option<(usize, i64)>; 2],
    /// `(lo, hi)`: the condition implies `lo ≤ t_left − t_right ≤ hi` (µs).
    pub(crate) range: Option<(i64, i64)>,
    /// Whether each side's unmatched rows are emitted with nulls (a left
    /// or right outer join's preserved side).
    pub(crate) preserve: [bool; 2],
}

impl BoundStreamJoin {
    fn preserves(&self, side: usize) -> bool {
        self.preserve[side]
    }
}

/// A join's whole state as a plain value: what a checkpoint holds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct JoinSnapshot {
    /// The rows of the left side, then of the right side.
    pub(crate) sides: [Vec<StoredRow>; 2],
    /// The largest event time seen on each side.
    pub(crate) max_time: [i64; 2],
    /// The next row's sequence number.
    pub(crate) next_seq: u64,
}

/// The rows of both sides of one join (see the module docs).
pub(crate) struct StreamJoinState {
    join: Arc<BoundStreamJoin>,
    /// Each side's rows by key.
    sides: [SideRows; 2],
    /// Each side's evictable rows by `(event time, arrival number)`, with
    /// their key's place in `sides`: eviction takes the oldest first.
    order: [BTreeMap<(i64, u64), u32>; 2],
    rows: [usize; 2],
    max_time: [i64; 2],
    next_seq: u64,
    /// The watermarks at the last eviction (nothing to do until one moves).
    evicted_at: [i64; 2],
    dropped_late: u64,
    key: Key,
    joined: Row,
}

/// Where joined rows go: the row and the ingest time it is latency-measured by.
pub(crate) type Emit<'a> = dyn FnMut(&Row, u64) -> Result<()> + 'a;

impl StreamJoinState {
    pub(crate) fn new(join: Arc<BoundStreamJoin>) -> StreamJoinState {
        StreamJoinState {
            join,
            sides: [SideRows::default(), SideRows::default()],
            order: [BTreeMap::new(), BTreeMap::new()],
            rows: [0, 0],
            max_time: [NO_TIME, NO_TIME],
            next_seq: 0,
            evicted_at: [NO_TIME, NO_TIME],
            dropped_late: 0,
            key: Key::new(),
            joined: Row::new(),
        }
    }

    /// The bound join.
    pub(crate) fn join(&self) -> &BoundStreamJoin {
        &self.join
    }

    /// Side `side`'s watermark (`NO_TIME` without one).
    pub(crate) fn side_watermark(&self, side: usize) -> i64 {
        match self.join.watermark[side] {
            Some((_, delay)) if self.max_time[side] != NO_TIME => {
                self.max_time[side].saturating_sub(delay)
            }
            _ => NO_TIME,
        }
    }

    /// The join's output watermark: the smaller of the sides' (Spark's
    /// default policy).
    pub(crate) fn watermark(&self) -> i64 {
        self.side_watermark(0).min(self.side_watermark(1))
    }

    /// Rows held on both sides.
    pub(crate) fn rows_total(&self) -> u64 {
        (self.rows[0] + self.rows[1]) as u64
    }

    /// Late rows dropped since the last call.
    pub(crate) fn take_dropped_late(&mut self) -> u64 {
        std::mem::take(&mut self.dropped_late)
    }

    /// One row of `side`'s source: runs the side's filters and projections,
    /// then joins what is left ([`StreamJoinState::join_row`]).
    pub(crate) fn push(
        &mut self,
        side: usize,
        input: &[Value],
        ingest_ns: u64,
        emit: &mut Emit<'_>,
    ) -> Result<()> {
        if self.join.side_ops[side].is_empty() {
            return self.join_row(side, input, ingest_ns, emit);
        }
        let mut projected: Option<Row> = None;
        for op in &self.join.side_ops[side] {
            let row = projected.as_deref().unwrap_or(input);
            match op {
                SideOp::Filter(p) => {
                    if !p.passes(row) {
                        return Ok(());
                    }
                }
                SideOp::Project(exprs) => {
                    let next: Row = exprs.iter().map(|e| e.eval(row)).collect();
                    projected = Some(next);
                }
            }
        }
        let row = projected.as_deref().unwrap_or(input);
        self.join_row(side, row, ingest_ns, emit)
    }

    /// One row of `side` at the join (its columns after its operators):
    /// emits its matches with the other side's rows, then keeps it.
    fn join_row(
        &mut self,
        side: usize,
        row: &[Value],
        ingest_ns: u64,
        emit: &mut Emit<'_>,
    ) -> Result<()> {
        let join = &*self.join;
        let time = match join.watermark[side] {
            Some((col, _)) => row[col].as_i64().unwrap_or(NO_TIME),
            None => NO_TIME,
        };
        if join.range.is_some() && join.watermark[side].is_some() {
            let wm = self.side_watermark(side);
            if time == NO_TIME || (wm != NO_TIME && time < wm) {
                self.dropped_late += 1;
                return Ok(());
            }
        }
        if time > self.max_time[side] {
            self.max_time[side] = time;
        }
        self.key.clear();
        for k in &join.keys[side] {
            self.key.push(k.eval(row));
        }
        let null_key = self.key.iter().any(Value::is_null);
        let other = 1 - side;
        let mut matched = false;
        if !null_key {
            let hash = hash_key(&self.key);
            if let Some(list) = self.sides[other].get_mut(hash, &self.key) {
                for stored in list.iter_mut() {
                    self.joined.clear();
                    let (l, r) = if side == 0 {
                        (row, &stored.row[..])
                    } else {
                        (&stored.row[..], row)
                    };
                    for v in l.iter().chain(r.iter()) {
                        self.joined.push(v.clone());
                    }
                    if join
                        .condition
                        .as_ref()
                        .is_none_or(|c| c.passes(&self.joined))
                    {
                        matched = true;
                        stored.matched = true;
                        emit(&self.joined, ingest_ns)?;
                    }
                }
            }
        }
        // A row that can never match is kept only to be emitted unmatched;
        // one whose range the other side's watermark has already passed is
        // not kept at all.
        if null_key && !join.preserves(side) {
            return Ok(());
        }
        if self.gone(side, time) {
            if join.preserves(side) && !matched {
                let widths = join.widths;
                Self::unmatched_row(&mut self.joined, widths, side, row);
                emit(&self.joined, ingest_ns)?;
            }
            return Ok(());
        }
        let stored = StoredRow {
            row: row.iter().cloned().collect(),
            time,
            ingest_ns,
            seq: self.next_seq,
            matched,
        };
        self.next_seq += 1;
        let key = std::mem::take(&mut self.key);
        self.keep(side, key, stored);
        Ok(())
    }

    /// Keeps a row of `side` under `key`, in event-time order too when it
    /// can be evicted.
    fn keep(&mut self, side: usize, key: Key, stored: StoredRow) {
        let evictable = self.join.range.is_some() && stored.time != NO_TIME;
        let order = (stored.time, stored.seq);
        self.rows[side] += 1;
        let at = self.sides[side].push(hash_key(&key), key, stored);
        if evictable {
            self.order[side].insert(order, at);
        }
    }

    /// Whether no row of the other side still to come can match a row of
    /// `side` with event time `time` (its range is behind the other
    /// side's watermark).
    fn gone(&self, side: usize, time: i64) -> bool {
        let Some((lo, hi)) = self.join.range else {
            return false;
        };
        let other_wm = self.side_watermark(1 - side);
        if other_wm == NO_TIME || time == NO_TIME {
            return false;
        }
        if side == 0 {
            time.saturating_sub(lo) < other_wm
        } else {
            time.saturating_add(hi) < other_wm
        }
    }

    /// `row` of `side` with nulls for the other side's columns.
    fn unmatched_row(out: &mut Row, widths: [usize; 2], side: usize, row: &[Value]) {
        out.clear();
        if side == 1 {
            for _ in 0..widths[0] {
                out.push(Value::Null);
            }
        }
        for v in row {
            out.push(v.clone());
        }
        if side == 0 {
            for _ in 0..widths[1] {
                out.push(Value::Null);
            }
        }
    }

    /// Evicts the rows no row to come can match, emitting the unmatched
    /// ones of an outer join's preserved side (in the order they came).
    pub(crate) fn evict(&mut self, emit: &mut Emit<'_>) -> Result<()> {
        if self.join.range.is_none() {
            return Ok(());
        }
        let wm = [self.side_watermark(0), self.side_watermark(1)];
        if wm == self.evicted_at {
            return Ok(());
        }
        self.evicted_at = wm;
        let mut unmatched: Vec<(u64, usize, StoredRow)> = Vec::new();
        for side in 0..2 {
            if wm[1 - side] == NO_TIME {
                continue;
            }
            let keep_unmatched = self.join.preserves(side);
            // Rows leave in event-time order: a row is gone exactly when its
            // time is below a bound, so the oldest go first and the walk
            // stops at the first row that stays.
            while let Some((&(time, seq), _)) = self.order[side].first_key_value() {
                if !self.gone(side, time) {
                    break;
                }
                let Some((_, at)) = self.order[side].pop_first() else {
                    break;
                };
                let Some(r) = self.sides[side].remove(at, seq) else {
                    continue;
                };
                self.rows[side] -= 1;
                if keep_unmatched && !r.matched {
                    unmatched.push((r.seq, side, r));
                }
            }
        }
        unmatched.sort_by_key(|(seq, _, _)| *seq);
        let widths = self.join.widths;
        for (_, side, r) in unmatched {
            Self::unmatched_row(&mut self.joined, widths, side, &r.row);
            emit(&self.joined, r.ingest_ns)?;
        }
        Ok(())
    }

    /// The whole state, rows in the order they came.
    pub(crate) fn snapshot(&self) -> JoinSnapshot {
        let side = |s: usize| {
            let mut rows: Vec<StoredRow> = self.sides[s].rows().cloned().collect();
            rows.sort_by_key(|r| r.seq);
            rows
        };
        JoinSnapshot {
            sides: [side(0), side(1)],
            max_time: self.max_time,
            next_seq: self.next_seq,
        }
    }

    /// Replaces the state by a snapshot's.
    pub(crate) fn restore(&mut self, snap: JoinSnapshot) {
        self.max_time = snap.max_time;
        self.next_seq = snap.next_seq;
        self.evicted_at = [NO_TIME, NO_TIME];
        for (side, rows) in snap.sides.into_iter().enumerate() {
            self.sides[side].clear();
            self.order[side].clear();
            self.rows[side] = 0;
            for r in rows {
                let key: Key = self.join.keys[side]
                    .iter()
                    .map(|k| k.eval(&r.row))
                    .collect();
                self.keep(side, key, r);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::{bind_expr, col};
    use crate::schema::{schema, timestamp_type, DataType};

    const HOUR: i64 = 3_600_000_000;

    #[test]
    fn a_kept_row_encodes_as_a_row_does() {
        // Join state files written when kept rows were `Row`s still read.
        let row = Row::from(vec![Value::Int64(1), Value::str("a"), Value::Null]);
        let kept: Box<[Value]> = row.iter().cloned().collect();
        let bytes = postcard::to_allocvec(&row).unwrap();
        assert_eq!(bytes, postcard::to_allocvec(&kept).unwrap());
        let back: Box<[Value]> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, kept);
    }

    fn bound(
        preserve: [bool; 2],
        range: Option<(i64, i64)>,
        watermark: bool,
    ) -> Arc<BoundStreamJoin> {
        let side = schema(&[("k", DataType::Int64), ("t", timestamp_type())]);
        let key = bind_expr(&col("k"), &side).unwrap().0;
        let wm = watermark.then_some((1, HOUR));
        Arc::new(BoundStreamJoin {
            input_widths: [2, 2],
            side_ops: [Vec::new(), Vec::new()],
            widths: [2, 2],
            keys: [vec![key.clone()], vec![key]],
            condition: None,
            watermark: [wm, wm],
            range,
            preserve,
        })
    }

    fn row(k: Option<i64>, t: i64) -> Row {
        let mut r = Row::new();
        r.push(k.map_or(Value::Null, Value::Int64));
        r.push(Value::Timestamp(t));
        r
    }

    fn run(state: &mut StreamJoinState, input: &[(usize, Option<i64>, i64)]) -> Vec<Row> {
        let mut out = Vec::new();
        for &(side, k, t) in input {
            let mut emit = |r: &Row, _| {
                out.push(r.clone());
                Ok(())
            };
            state.push(side, &row(k, t), 0, &mut emit).unwrap();
            state.evict(&mut emit).unwrap();
        }
        out
    }

    #[test]
    fn null_keys_never_match_and_duplicates_multiply() {
        let mut s = StreamJoinState::new(bound([false, false], None, false));
        let out = run(
            &mut s,
            &[
                (0, Some(1), 0),
                (0, Some(1), 1),
                (0, None, 2),
                (1, None, 3),
                (1, Some(1), 4),
                (1, Some(1), 5),
            ],
        );
        assert_eq!(out.len(), 4, "two left rows times two right rows");
        assert!(out.iter().all(|r| r[0] == Value::Int64(1)));
        assert_eq!(s.rows_total(), 4, "rows with a null key are not kept");
    }

    #[test]
    fn outer_rows_are_emitted_once_when_the_watermark_passes() {
        let mut s = StreamJoinState::new(bound([true, false], Some((0, HOUR)), true));
        let out = run(
            &mut s,
            &[
                (0, Some(1), 0),
                (0, Some(2), 0),
                (1, Some(1), 0),
                // Moves both watermarks past the first rows' range.
                (0, Some(9), 10 * HOUR),
                (1, Some(9), 10 * HOUR),
            ],
        );
        assert_eq!(out.len(), 3, "{out:?}");
        assert_eq!(out[0][2], Value::Int64(1));
        assert_eq!(out[1][2], Value::Int64(9));
        assert_eq!(out[2][0], Value::Int64(2));
        assert!(out[2][2].is_null() && out[2][3].is_null());
        assert_eq!(s.rows_total(), 2, "only the newest rows are kept");
        let snap = s.snapshot();
        let mut again = StreamJoinState::new(s.join.clone());
        again.restore(snap.clone());
        assert_eq!(again.snapshot(), snap);
        // A late row is dropped and counted.
        let late = run(&mut again, &[(0, Some(1), 0)]);
        assert!(late.is_empty());
        assert_eq!(again.take_dropped_late(), 1);
    }
}
