//! Vectorised keyed, windowed aggregation into the shared state store.
//!
//! Two phases per batch: rows are grouped inside the batch by hashing the key
//! columns natively (no per-row values or allocation) and folded into partial
//! accumulators; then each group touched by the batch is merged once into the
//! [`WindowedState`] that continuous mode uses too.

use std::hash::{Hash, Hasher};

use arrow::array::{Array, AsArray, TimestampMicrosecondArray};
use hashbrown::HashTable;
use rustc_hash::FxHasher;
use smallvec::SmallVec;

use super::exec::Flight;
use crate::error::Result;
use crate::io::OutputMode;
use crate::ops::BoundAggregate;
use crate::schema::builder::BatchBuilder;
use crate::schema::column::Column;
use crate::schema::NO_TIME;
use crate::state::{distinct, Accumulator, AggFunc, GroupKey, WindowedState, GLOBAL_WINDOW};
use crate::window::WindowShape;

/// What the aggregation needs of a typed column beyond reading it.
impl Column<'_> {
    #[inline]
    fn hash_at(&self, i: usize, h: &mut FxHasher) {
        if self.is_null(i) {
            h.write_u8(0);
            return;
        }
        match self {
            Column::Int64(a) => h.write_i64(a.value(i)),
            Column::Float64(a) => {
                let v = a.value(i);
                let v = if v.is_nan() {
                    f64::NAN
                } else if v == 0.0 {
                    0.0
                } else {
                    v
                };
                h.write_u64(v.to_bits())
            }
            Column::Utf8(a) => a.value(i).hash(h),
            Column::Boolean(a) => h.write_u8(1 + a.value(i) as u8),
            Column::Timestamp(a) => h.write_i64(a.value(i)),
            Column::Date(a) => h.write_i32(a.value(i)),
            Column::Null => {}
            // Arrays hash as the engine value does, so they group the same.
            _ => self.value(i).hash(h),
        }
    }

    #[inline]
    fn eq_at(&self, i: usize, j: usize) -> bool {
        match (self.is_null(i), self.is_null(j)) {
            (true, true) => return true,
            (true, false) | (false, true) => return false,
            _ => {}
        }
        match self {
            Column::Int64(a) => a.value(i) == a.value(j),
            Column::Utf8(a) => a.value(i) == a.value(j),
            Column::Boolean(a) => a.value(i) == a.value(j),
            Column::Timestamp(a) => a.value(i) == a.value(j),
            Column::Date(a) => a.value(i) == a.value(j),
            // Grouping equality of doubles is the engine value's (NaN equals
            // NaN, -0.0 equals 0.0), as the hash above assumes.
            Column::Float64(_) => self.value(i) == self.value(j),
            Column::Null => true,
            _ => self.value(i) == self.value(j),
        }
    }

    /// Folds the first `n` values, in order, into `acc`.
    fn fold_all(&self, acc: &mut Accumulator, n: usize) {
        let no_nulls = !matches!(self, Column::Null) && self.null_count() == 0;
        match (acc, self) {
            (Accumulator::Count(c), _) => *c += (n - self.null_count().min(n)) as i64,
            (Accumulator::SumFloat(s), Column::Float64(a)) if no_nulls && n > 0 => {
                let mut t = s.unwrap_or(0.0);
                for v in &a.values()[..n] {
                    t += v;
                }
                *s = Some(t);
            }
            (Accumulator::SumInt(s), Column::Int64(a)) if no_nulls && n > 0 => {
                let mut t = s.unwrap_or(0);
                for v in &a.values()[..n] {
                    t = t.wrapping_add(*v);
                }
                *s = Some(t);
            }
            // Only the row that decides: no value built for the others.
            (
                Accumulator::Last {
                    value,
                    ignore_nulls,
                },
                _,
            ) => {
                let skip = *ignore_nulls;
                if let Some(i) = (0..n).rev().find(|&i| !(skip && self.is_null(i))) {
                    *value = Some(self.value(i));
                }
            }
            (acc, _) => {
                for i in 0..n {
                    self.update(acc, i);
                }
            }
        }
    }

    fn null_count(&self) -> usize {
        match self {
            Column::Int64(a) => a.null_count(),
            Column::Float64(a) => a.null_count(),
            Column::Utf8(a) => a.null_count(),
            Column::Boolean(a) => a.null_count(),
            Column::Timestamp(a) => a.null_count(),
            Column::Date(a) => a.null_count(),
            Column::List(a) => a.null_count(),
            Column::Null => usize::MAX,
        }
    }

    /// Folds the value at `i` into `acc`.
    #[inline]
    fn update(&self, acc: &mut Accumulator, i: usize) {
        match acc {
            Accumulator::First {
                value,
                ignore_nulls,
            } => {
                if value.is_none() && !(*ignore_nulls && self.is_null(i)) {
                    *value = Some(self.value(i));
                }
                return;
            }
            Accumulator::Last {
                value,
                ignore_nulls,
            } => {
                if !(*ignore_nulls && self.is_null(i)) {
                    *value = Some(self.value(i));
                }
                return;
            }
            _ => {}
        }
        if self.is_null(i) {
            return;
        }
        match (acc, self) {
            (Accumulator::Count(n), _) => *n += 1,
            (Accumulator::SumInt(s), Column::Int64(a)) => {
                *s = Some(s.unwrap_or(0).wrapping_add(a.value(i)))
            }
            (Accumulator::SumFloat(s), Column::Float64(a)) => {
                *s = Some(s.unwrap_or(0.0) + a.value(i))
            }
            (Accumulator::SumFloat(s), Column::Int64(a)) => {
                *s = Some(s.unwrap_or(0.0) + a.value(i) as f64)
            }
            (Accumulator::Avg { sum, count }, Column::Int64(a)) => {
                *sum += a.value(i) as f64;
                *count += 1;
            }
            (Accumulator::Avg { sum, count }, Column::Float64(a)) => {
                *sum += a.value(i);
                *count += 1;
            }
            (Accumulator::Moments(m), Column::Int64(a)) => m.push(a.value(i) as f64),
            (Accumulator::Moments(m), Column::Float64(a)) => m.push(a.value(i)),
            (Accumulator::Distinct(s), col) => s.insert_hash(col.distinct_hash(i)),
            (acc, col) => acc.update(&col.value(i)),
        }
    }

    /// The distinct-count hash of the non-null value at `i`: the same as
    /// [`distinct::hash_value`] of that value, without building it.
    #[inline]
    fn distinct_hash(&self, i: usize) -> u64 {
        match self {
            Column::Int64(a) => distinct::hash_i64(a.value(i)),
            Column::Float64(a) => distinct::hash_f64(a.value(i)),
            Column::Utf8(a) => distinct::hash_str(a.value(i)),
            Column::Boolean(a) => distinct::hash_bool(a.value(i)),
            Column::Timestamp(a) => distinct::hash_i64(a.value(i)),
            Column::Date(a) => distinct::hash_i32(a.value(i)),
            Column::List(_) => distinct::hash_value(&self.value(i)).unwrap_or(0),
            Column::Null => 0,
        }
    }
}

struct Slot {
    start: i64,
    row: usize,
    accs: SmallVec<[Accumulator; 4]>,
}

/// One aggregation's state and counters in micro-batch mode.
pub(crate) struct VectorAggregate {
    pub(crate) spec: BoundAggregate,
    pub(crate) state: WindowedState,
    pub(crate) watermark_us: i64,
    pub(crate) rows_updated: u64,
    pub(crate) rows_dropped_late: u64,
}

impl VectorAggregate {
    pub(crate) fn new(spec: BoundAggregate) -> VectorAggregate {
        VectorAggregate {
            spec,
            state: WindowedState::new(),
            watermark_us: NO_TIME,
            rows_updated: 0,
            rows_dropped_late: 0,
        }
    }

    /// Folds a batch into the state; appends to `out` the output rows the
    /// batch produces in update and complete mode (the groups it changed,
    /// or the whole table).
    pub(crate) fn process(&mut self, flight: &Flight, out: &mut BatchBuilder) -> Result<()> {
        let batch = &flight.batch;
        let n = batch.num_rows();
        let key_arrays = self
            .spec
            .keys
            .iter()
            .map(|k| k.eval_array(batch))
            .collect::<Result<Vec<_>>>()?;
        let keys = key_arrays
            .iter()
            .map(|a| Column::new(a))
            .collect::<Result<Vec<_>>>()?;
        let arg_arrays = self
            .spec
            .aggs
            .iter()
            .map(|(f, arg, _)| match (f, arg) {
                (AggFunc::CountStar, _) | (_, None) => Ok(None),
                (_, Some(e)) => e.eval_array(batch).map(Some),
            })
            .collect::<Result<Vec<_>>>()?;
        let args = arg_arrays
            .iter()
            .map(|a| a.as_ref().map(|a| Column::new(a)).transpose())
            .collect::<Result<Vec<_>>>()?;
        let time_array = match &self.spec.window {
            Some((_, e, _)) => Some(e.eval_array(batch)?),
            None => None,
        };
        let times = time_array
            .as_ref()
            .map(|a| a.as_primitive::<arrow::datatypes::TimestampMicrosecondType>());
        let shape = self.spec.window.as_ref().map(|(_, _, s)| *s);

        let mut slots: Vec<Slot> = Vec::new();
        if keys.is_empty() && shape.is_none() {
            // One group for the whole batch: fold each column straight into
            // one slot, in row order (the same sums as the grouped path).
            if n > 0 {
                let mut accs = self.spec.new_accumulators();
                for (acc, arg) in accs.iter_mut().zip(&args) {
                    match arg {
                        None => {
                            if let Accumulator::Count(c) = acc {
                                *c += n as i64;
                            }
                        }
                        Some(col) => col.fold_all(acc, n),
                    }
                }
                slots.push(Slot {
                    start: GLOBAL_WINDOW,
                    row: 0,
                    accs,
                });
            }
        } else {
            self.fold_grouped(flight, &keys, &args, times, shape, &mut slots);
        }
        self.merge_slots(slots, &keys, out);
        Ok(())
    }

    /// Folds every row of the batch into per-group partial slots.
    fn fold_grouped(
        &mut self,
        flight: &Flight,
        keys: &[Column<'_>],
        args: &[Option<Column<'_>>],
        times: Option<&TimestampMicrosecondArray>,
        shape: Option<WindowShape>,
        slots: &mut Vec<Slot>,
    ) {
        let n = flight.batch.num_rows();
        let evicts = self.spec.evicts();
        let mut table: HashTable<usize> = HashTable::with_capacity(1024);
        let spec = &self.spec;
        let mut fold = |start: i64, i: usize, key_hash: u64, slots: &mut Vec<Slot>| {
            let h = key_hash ^ (start as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let eq = |&s: &usize| {
                slots[s].start == start && keys.iter().all(|k| k.eq_at(slots[s].row, i))
            };
            let slot = match table.find(h, eq) {
                Some(&s) => s,
                None => {
                    slots.push(Slot {
                        start,
                        row: i,
                        accs: spec.new_accumulators(),
                    });
                    let s = slots.len() - 1;
                    let rehash = |&t: &usize| -> u64 {
                        let mut kh = FxHasher::default();
                        for k in keys {
                            k.hash_at(slots[t].row, &mut kh);
                        }
                        kh.finish() ^ (slots[t].start as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    };
                    table.insert_unique(h, s, rehash);
                    s
                }
            };
            for (acc, arg) in slots[slot].accs.iter_mut().zip(args) {
                match arg {
                    None => {
                        if let Accumulator::Count(c) = acc {
                            *c += 1;
                        }
                    }
                    Some(col) => col.update(acc, i),
                }
            }
        };
        for i in 0..n {
            let mut kh = FxHasher::default();
            for k in keys {
                k.hash_at(i, &mut kh);
            }
            let key_hash = kh.finish();
            match (shape, times) {
                (None, _) => fold(GLOBAL_WINDOW, i, key_hash, slots),
                (Some(shape), Some(t)) => {
                    if t.is_null(i) {
                        continue;
                    }
                    let wm = flight.watermark_us.as_ref().map_or(NO_TIME, |w| w[i]);
                    for start in shape.assign(t.value(i)) {
                        if evicts && wm != NO_TIME && start.saturating_add(shape.size_us) <= wm {
                            self.rows_dropped_late += 1;
                            continue;
                        }
                        fold(start, i, key_hash, slots);
                    }
                }
                (Some(_), None) => {}
            }
        }
    }

    /// Merges a batch's partial groups into the state store; appends the
    /// output rows in update and complete mode to `out`.
    fn merge_slots(&mut self, slots: Vec<Slot>, keys: &[Column<'_>], out: &mut BatchBuilder) {
        let emit_updates = self.spec.mode == OutputMode::Update;
        for slot in slots {
            let key: GroupKey = keys.iter().map(|k| k.value(slot.row)).collect();
            let (stored, accs) = self
                .state
                .group_mut(slot.start, &key, || self.spec.new_accumulators());
            for (acc, partial) in accs.iter_mut().zip(&slot.accs) {
                acc.merge(partial);
            }
            self.rows_updated += 1;
            if emit_updates {
                self.spec.fill_output_row(out, slot.start, stored, accs);
            }
        }
        if self.spec.mode == OutputMode::Complete {
            for (start, k, accs) in self.state.iter() {
                self.spec.fill_output_row(out, start, k, accs);
            }
        }
    }

    /// Moves the watermark to `wm` at the end of a batch: closed windows are
    /// dropped, and in append mode appended to `out` as the batch's output.
    pub(crate) fn advance(&mut self, wm: i64, out: &mut BatchBuilder) {
        if wm <= self.watermark_us {
            return;
        }
        self.watermark_us = wm;
        if !self.spec.evicts() {
            return;
        }
        let emit = self.spec.mode == OutputMode::Append;
        let spec = &self.spec;
        self.state
            .evict_closed(wm, spec.window_size(), |start, key, accs| {
                if emit {
                    spec.fill_output_row(out, start, key, accs);
                }
            });
    }
}
