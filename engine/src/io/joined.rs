//! Two streaming sources read as one: the input of a stream-stream join.
//!
//! Owns [`JoinedSources`], which polls a left and a right source in the same
//! task and tags each row with the side it came from, and its offset: the
//! offset of each source by its name ([`SourceOffset::Sources`]), so that a
//! manifest or an offset-log entry records every source's own position and
//! recovery resumes each from it. Because one task reads both sources, an
//! epoch marker placed between two polls is aligned on both inputs by
//! construction: the offsets it records and the join state snapshotted at it
//! cover exactly the same rows of each side, with no buffering. It must not
//! know what the join does with the rows.
//!
//! A joined row is `[left columns…, right columns…, side]`: the other
//! side's columns are null and `side` is `false` for a left row, `true` for
//! a right one. That is the schema, and what micro-batch mode reads
//! ([`Replayable::read_range`], [`Replayable::read_batch`]). Continuous
//! mode's rows ([`Source::poll`]) are compact: the side's own columns, then
//! `side` (the row a source emitted, with the tag pushed on: no copy, and no
//! allocation while a side has fewer than 8 columns). Only the join reads
//! them, and it is always the first operator.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{new_null_array, ArrayRef, BooleanArray};
use arrow::compute::concat_batches;
use arrow::record_batch::RecordBatch;

use super::source::{PollStatus, Replayable, Source, SourceBatch, SourceContext, SourceOutput};
use super::SourceOffset;
use crate::error::{EngineError, Result};
use crate::schema::{DataType, Field, Row, Schema, SchemaRef, Value};

/// The name of the tag column of a joined row.
pub const SIDE_COLUMN: &str = "__side";

/// A left and a right source read by one task (see the module docs).
pub struct JoinedSources {
    names: [String; 2],
    sources: [Box<dyn Source>; 2],
    widths: [usize; 2],
    schema: SchemaRef,
    /// Whether each side said it was exhausted at its last latest offset.
    exhausted: [bool; 2],
}

/// Tags and widens the rows one side emits.
struct Tagging<'a> {
    out: &'a mut dyn SourceOutput,
    /// Nulls before the side's values (the left side's width for a right row).
    before: usize,
    /// Nulls after them.
    after: usize,
    right: bool,
}

/// Tags the rows one side emits, in continuous mode's compact form.
struct CompactTagging<'a> {
    out: &'a mut dyn SourceOutput,
    right: bool,
}

impl SourceOutput for CompactTagging<'_> {
    #[inline]
    fn emit(&mut self, mut row: Row, ingest_ns: u64) -> Result<()> {
        row.push(Value::Boolean(self.right));
        self.out.emit(row, ingest_ns)
    }
}

impl SourceOutput for Tagging<'_> {
    fn emit(&mut self, row: Row, ingest_ns: u64) -> Result<()> {
        let mut joined = Row::new();
        for _ in 0..self.before {
            joined.push(Value::Null);
        }
        for v in row.iter() {
            joined.push(v.clone());
        }
        for _ in 0..self.after {
            joined.push(Value::Null);
        }
        joined.push(Value::Boolean(self.right));
        self.out.emit(joined, ingest_ns)
    }
}

impl JoinedSources {
    /// Reads `left` (named `left_name` in the query) and `right` together.
    pub fn new(
        left_name: &str,
        left: Box<dyn Source>,
        right_name: &str,
        right: Box<dyn Source>,
    ) -> JoinedSources {
        let (ls, rs) = (left.schema(), right.schema());
        let mut fields: Vec<Field> = ls
            .fields()
            .iter()
            .chain(rs.fields().iter())
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        fields.push(Field::new(SIDE_COLUMN, DataType::Boolean, false));
        JoinedSources {
            names: [left_name.to_string(), right_name.to_string()],
            widths: [ls.fields().len(), rs.fields().len()],
            sources: [left, right],
            schema: Arc::new(Schema::new(fields)),
            exhausted: [false; 2],
        }
    }

    /// The offset of each side in `offset` (`None`: from the beginning).
    fn split(&self, offset: Option<&SourceOffset>) -> Result<[Option<SourceOffset>; 2]> {
        match offset {
            None | Some(SourceOffset::Start) => Ok([None, None]),
            Some(SourceOffset::Sources(map)) => Ok([
                map.get(&self.names[0]).cloned(),
                map.get(&self.names[1]).cloned(),
            ]),
            Some(other) => Err(EngineError::Source(format!(
                "offset {other} is not the offsets of sources {} and {} (was the checkpoint \
                 written by a query reading one source?)",
                self.names[0], self.names[1]
            ))),
        }
    }

    fn join_offsets(&self, offsets: [SourceOffset; 2]) -> SourceOffset {
        let [l, r] = offsets;
        SourceOffset::Sources(BTreeMap::from([
            (self.names[0].clone(), l),
            (self.names[1].clone(), r),
        ]))
    }

    fn replayable(&mut self, side: usize) -> Result<&mut dyn Replayable> {
        let describe = self.sources[side].describe();
        self.sources[side].as_replayable().ok_or_else(|| {
            EngineError::Source(format!("{describe} cannot run in micro-batch mode"))
        })
    }

    /// One side's batch widened to the joined schema.
    fn widen(&self, side: usize, part: SourceBatch) -> Result<RecordBatch> {
        let n = part.batch.num_rows();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        let fields = self.schema.fields();
        let (nulls_before, nulls_after) = if side == 0 {
            (0..0, self.widths[0]..self.widths[0] + self.widths[1])
        } else {
            (0..self.widths[0], 0..0)
        };
        for i in nulls_before {
            columns.push(new_null_array(fields[i].data_type(), n));
        }
        columns.extend(part.batch.columns().iter().cloned());
        for i in nulls_after {
            columns.push(new_null_array(fields[i].data_type(), n));
        }
        columns.push(Arc::new(BooleanArray::from(vec![side == 1; n])));
        RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(|e| EngineError::Source(format!("joining the sources' batches: {e}")))
    }
}

impl Source for JoinedSources {
    fn describe(&self) -> String {
        format!(
            "JoinedSources[{}: {}, {}: {}]",
            self.names[0],
            self.sources[0].describe(),
            self.names[1],
            self.sources[1].describe()
        )
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn open(&mut self, ctx: &SourceContext, start: Option<&SourceOffset>) -> Result<()> {
        let starts = self.split(start)?;
        for (side, start) in starts.iter().enumerate() {
            let ctx = SourceContext {
                name: self.names[side].clone(),
                waker: ctx.waker.clone(),
            };
            self.sources[side].open(&ctx, start.as_ref())?;
        }
        Ok(())
    }

    fn poll(&mut self, out: &mut dyn SourceOutput) -> Result<PollStatus> {
        let mut emitted = 0;
        let mut exhausted = 0;
        let mut wake_at: Option<u64> = None;
        let mut idle_until = 0;
        for side in 0..2 {
            let mut tagged = CompactTagging {
                out,
                right: side == 1,
            };
            match self.sources[side].poll(&mut tagged)? {
                PollStatus::Emitted(n) => emitted += n,
                PollStatus::Idle => {}
                PollStatus::IdleUntil(t) => {
                    idle_until += 1;
                    wake_at = Some(wake_at.map_or(t, |w| w.min(t)));
                }
                PollStatus::Exhausted => exhausted += 1,
            }
        }
        Ok(if emitted > 0 {
            PollStatus::Emitted(emitted)
        } else if exhausted == 2 {
            PollStatus::Exhausted
        } else if idle_until + exhausted == 2 {
            // Every side still running is a generator waiting for its time.
            wake_at.map_or(PollStatus::Idle, PollStatus::IdleUntil)
        } else {
            PollStatus::Idle
        })
    }

    fn offset(&self) -> SourceOffset {
        self.join_offsets([self.sources[0].offset(), self.sources[1].offset()])
    }

    fn commit(&mut self, offset: &SourceOffset) -> Result<()> {
        let parts = self.split(Some(offset))?;
        for (side, part) in parts.iter().enumerate() {
            if let Some(o) = part {
                self.sources[side].commit(o)?;
            }
        }
        Ok(())
    }

    fn ready_hint(&self) -> bool {
        self.sources.iter().any(|s| s.ready_hint())
    }

    fn is_blocking(&self) -> bool {
        self.sources.iter().any(|s| s.is_blocking())
    }

    fn is_replayable(&self) -> bool {
        self.sources.iter().all(|s| s.is_replayable())
    }

    fn as_replayable(&mut self) -> Option<&mut dyn Replayable> {
        let both =
            self.sources[0].as_replayable().is_some() && self.sources[1].as_replayable().is_some();
        if both {
            Some(self)
        } else {
            None
        }
    }

    fn metrics(&self) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        for side in 0..2 {
            for (k, v) in self.sources[side].metrics() {
                out.push((format!("{}.{k}", self.names[side]), v));
            }
        }
        out
    }
}

impl Replayable for JoinedSources {
    /// Both sides were exhausted when last asked for their latest offset
    /// (which the driver always asks first).
    fn is_exhausted(&self) -> bool {
        self.exhausted.iter().all(|e| *e)
    }

    fn latest_offset(&mut self) -> Result<SourceOffset> {
        let mut latest = [SourceOffset::Start, SourceOffset::Start];
        for (side, slot) in latest.iter_mut().enumerate() {
            let r = self.replayable(side)?;
            *slot = r.latest_offset()?;
            let done = r.is_exhausted();
            self.exhausted[side] = done;
        }
        Ok(self.join_offsets(latest))
    }

    fn read_range(
        &mut self,
        start: Option<&SourceOffset>,
        end: &SourceOffset,
        out: &mut dyn SourceOutput,
    ) -> Result<()> {
        let starts = self.split(start)?;
        let ends = self.split(Some(end))?;
        for side in 0..2 {
            let Some(end) = &ends[side] else { continue };
            let (before, after) = if side == 0 {
                (0, self.widths[1])
            } else {
                (self.widths[0], 0)
            };
            let mut tagged = Tagging {
                out,
                before,
                after,
                right: side == 1,
            };
            self.replayable(side)?
                .read_range(starts[side].as_ref(), end, &mut tagged)?;
        }
        Ok(())
    }

    fn read_batch(
        &mut self,
        start: Option<&SourceOffset>,
        end: &SourceOffset,
    ) -> Result<SourceBatch> {
        let starts = self.split(start)?;
        let ends = self.split(Some(end))?;
        let mut batches = Vec::with_capacity(2);
        let mut ingest_ns = Vec::new();
        for side in 0..2 {
            let Some(end) = &ends[side] else { continue };
            let part = self
                .replayable(side)?
                .read_batch(starts[side].as_ref(), end)?;
            ingest_ns.extend_from_slice(&part.ingest_ns);
            batches.push(self.widen(side, part)?);
        }
        let batch = concat_batches(&self.schema, &batches)
            .map_err(|e| EngineError::Source(format!("joining the sources' batches: {e}")))?;
        Ok(SourceBatch { batch, ingest_ns })
    }
}
