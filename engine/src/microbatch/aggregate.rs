//! Vectorised keyed, windowed aggregation into the shared state store.
//!
//! Two phases per batch: rows are grouped inside the batch by hashing the key
//! columns natively (no per-row values or allocation) and folded into partial
//! accumulators; then each group touched by the batch is merged once into the
//! [`WindowedState`] that continuous mode uses too.

use std::hash::{Hash, Hasher};

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Float64Array, Int64Array, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{Date32Type, Float64Type, Int64Type, TimestampMicrosecondType};
use hashbrown::HashTable;
use rustc_hash::FxHasher;
use smallvec::SmallVec;

use super::exec::Flight;
use crate::error::{EngineError, Result};
use crate::io::OutputMode;
use crate::ops::BoundAggregate;
use crate::schema::builder::BatchBuilder;
use crate::schema::{DataType, Value, NO_TIME};
use crate::state::{Accumulator, AggFunc, GroupKey, WindowedState, GLOBAL_WINDOW};
use crate::window::WindowShape;

/// A column seen through its concrete type.
enum Col<'a> {
    I64(&'a Int64Array),
    F64(&'a Float64Array),
    Str(&'a StringArray),
    Bool(&'a BooleanArray),
    Ts(&'a TimestampMicrosecondArray),
    Date(&'a Date32Array),
    Null,
}

impl<'a> Col<'a> {
    /// The column typed by its data type; an error for a type the engine
    /// does not have.
    fn of(a: &'a ArrayRef) -> Result<Col<'a>> {
        let typed = match a.data_type() {
            DataType::Int64 => a.as_primitive_opt::<Int64Type>().map(Col::I64),
            DataType::Float64 => a.as_primitive_opt::<Float64Type>().map(Col::F64),
            DataType::Utf8 => a.as_string_opt::<i32>().map(Col::Str),
            DataType::Boolean => a.as_boolean_opt().map(Col::Bool),
            DataType::Timestamp(..) => a
                .as_primitive_opt::<TimestampMicrosecondType>()
                .map(Col::Ts),
            DataType::Date32 => a.as_primitive_opt::<Date32Type>().map(Col::Date),
            DataType::Null => Some(Col::Null),
            _ => None,
        };
        typed.ok_or_else(|| {
            EngineError::Eval(format!(
                "cannot aggregate over a column of type {}",
                a.data_type()
            ))
        })
    }

    #[inline]
    fn is_null(&self, i: usize) -> bool {
        match self {
            Col::I64(a) => a.is_null(i),
            Col::F64(a) => a.is_null(i),
            Col::Str(a) => a.is_null(i),
            Col::Bool(a) => a.is_null(i),
            Col::Ts(a) => a.is_null(i),
            Col::Date(a) => a.is_null(i),
            Col::Null => true,
        }
    }

    /// The value at `i`.
    #[inline]
    fn value(&self, i: usize) -> Value {
        if self.is_null(i) {
            return Value::Null;
        }
        match self {
            Col::I64(a) => Value::Int64(a.value(i)),
            Col::F64(a) => Value::Float64(a.value(i)),
            Col::Str(a) => Value::str(a.value(i)),
            Col::Bool(a) => Value::Boolean(a.value(i)),
            Col::Ts(a) => Value::Timestamp(a.value(i)),
            Col::Date(a) => Value::Date(a.value(i)),
            Col::Null => Value::Null,
        }
    }

    #[inline]
    fn hash_at(&self, i: usize, h: &mut FxHasher) {
        if self.is_null(i) {
            h.write_u8(0);
            return;
        }
        match self {
            Col::I64(a) => h.write_i64(a.value(i)),
            Col::F64(a) => {
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
            Col::Str(a) => a.value(i).hash(h),
            Col::Bool(a) => h.write_u8(1 + a.value(i) as u8),
            Col::Ts(a) => h.write_i64(a.value(i)),
            Col::Date(a) => h.write_i32(a.value(i)),
            Col::Null => {}
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
            Col::I64(a) => a.value(i) == a.value(j),
            Col::Str(a) => a.value(i) == a.value(j),
            Col::Bool(a) => a.value(i) == a.value(j),
            Col::Ts(a) => a.value(i) == a.value(j),
            Col::Date(a) => a.value(i) == a.value(j),
            // Grouping equality of doubles is the engine value's (NaN equals
            // NaN, -0.0 equals 0.0), as the hash above assumes.
            Col::F64(_) => self.value(i) == self.value(j),
            Col::Null => true,
        }
    }

    /// Folds the first `n` values, in order, into `acc`.
    fn fold_all(&self, acc: &mut Accumulator, n: usize) {
        let no_nulls = !matches!(self, Col::Null) && self.null_count() == 0;
        match (acc, self) {
            (Accumulator::Count(c), _) => *c += (n - self.null_count().min(n)) as i64,
            (Accumulator::SumFloat(s), Col::F64(a)) if no_nulls && n > 0 => {
                let mut t = s.unwrap_or(0.0);
                for v in &a.values()[..n] {
                    t += v;
                }
                *s = Some(t);
            }
            (Accumulator::SumInt(s), Col::I64(a)) if no_nulls && n > 0 => {
                let mut t = s.unwrap_or(0);
                for v in &a.values()[..n] {
                    t = t.wrapping_add(*v);
                }
                *s = Some(t);
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
            Col::I64(a) => a.null_count(),
            Col::F64(a) => a.null_count(),
            Col::Str(a) => a.null_count(),
            Col::Bool(a) => a.null_count(),
            Col::Ts(a) => a.null_count(),
            Col::Date(a) => a.null_count(),
            Col::Null => usize::MAX,
        }
    }

    /// Folds the value at `i` into `acc`.
    #[inline]
    fn update(&self, acc: &mut Accumulator, i: usize) {
        if self.is_null(i) {
            return;
        }
        match (acc, self) {
            (Accumulator::Count(n), _) => *n += 1,
            (Accumulator::SumInt(s), Col::I64(a)) => {
                *s = Some(s.unwrap_or(0).wrapping_add(a.value(i)))
            }
            (Accumulator::SumFloat(s), Col::F64(a)) => *s = Some(s.unwrap_or(0.0) + a.value(i)),
            (Accumulator::SumFloat(s), Col::I64(a)) => {
                *s = Some(s.unwrap_or(0.0) + a.value(i) as f64)
            }
            (Accumulator::Avg { sum, count }, Col::I64(a)) => {
                *sum += a.value(i) as f64;
                *count += 1;
            }
            (Accumulator::Avg { sum, count }, Col::F64(a)) => {
                *sum += a.value(i);
                *count += 1;
            }
            (acc, col) => acc.update(&col.value(i)),
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
        let keys = key_arrays.iter().map(Col::of).collect::<Result<Vec<_>>>()?;
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
            .map(|a| a.as_ref().map(Col::of).transpose())
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
        keys: &[Col<'_>],
        args: &[Option<Col<'_>>],
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
    fn merge_slots(&mut self, slots: Vec<Slot>, keys: &[Col<'_>], out: &mut BatchBuilder) {
        let emit_updates = self.spec.mode == OutputMode::Update;
        for slot in slots {
            let key: GroupKey = keys.iter().map(|k| k.value(slot.row)).collect();
            let (stored, group) = self
                .state
                .group_mut(slot.start, &key, || self.spec.new_accumulators());
            for (acc, partial) in group.accs.iter_mut().zip(&slot.accs) {
                acc.merge(partial);
            }
            self.rows_updated += 1;
            if emit_updates {
                self.spec
                    .fill_output_row(out, slot.start, stored, &group.accs);
            }
        }
        if self.spec.mode == OutputMode::Complete {
            for (start, k, g) in self.state.iter() {
                self.spec.fill_output_row(out, start, k, &g.accs);
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
            .evict_closed(wm, spec.window_size(), |start, key, group| {
                if emit {
                    spec.fill_output_row(out, start, key, &group.accs);
                }
            });
    }
}
