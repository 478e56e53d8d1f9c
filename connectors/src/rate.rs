//! The rate source: an open-loop generator of numbered rows.
//!
//! Emits `value` (bigint: 0, 1, 2, …) and `timestamp` at `rows_per_second`,
//! like Spark's rate source. Open loop: row *k* is *scheduled* at a fixed time
//! and that time is its ingest time, so an engine that falls behind shows it
//! as latency instead of slowing the generator. Replayable: the offset is the
//! next value, and the `timestamp` of a value never changes across restarts
//! (it is derived from the start time kept in the offset). This module owns
//! only generation; it never sleeps (the task's wait strategy does).

use std::sync::Arc;

use arrow::array::{Int64Array, TimestampMicrosecondArray};
use arrow::record_batch::RecordBatch;
use runnel::clock::{now_ns, wall_now_us};
use runnel::Replayable;
use runnel::{
    schema, timestamp_type, DataType, EngineError, PollStatus, Result, Row, SchemaRef, Source,
    SourceBatch, SourceContext, SourceOffset, SourceOutput, Value,
};

/// Rows emitted per poll at most, so markers and stop requests stay prompt.
const MAX_PER_POLL: u64 = 256;

/// Spark's rate source (see the module docs).
#[derive(Debug)]
pub struct RateSource {
    rows_per_second: u64,
    limit: Option<u64>,
    next: u64,
    start_wall_us: i64,
    resumed_at: u64,
    schedule_origin_ns: u64,
    fixed_start_us: Option<i64>,
}

impl RateSource {
    fn offset_of(&self, value: u64) -> SourceOffset {
        SourceOffset(serde_json::json!({ "value": value, "start_us": self.start_wall_us }))
    }

    /// A generator of `rows_per_second` rows, without end.
    pub fn new(rows_per_second: u64) -> RateSource {
        RateSource {
            rows_per_second: rows_per_second.max(1),
            limit: None,
            next: 0,
            start_wall_us: 0,
            resumed_at: 0,
            schedule_origin_ns: 0,
            fixed_start_us: None,
        }
    }

    /// Stops after `rows` rows in total (the source is then exhausted).
    pub fn with_limit(mut self, rows: u64) -> RateSource {
        self.limit = Some(rows);
        self
    }

    /// Fixes the event time of value 0 (µs since the epoch) instead of taking
    /// the wall clock at the first start: runs become reproducible.
    pub fn with_start_time(mut self, start_us: i64) -> RateSource {
        self.fixed_start_us = Some(start_us);
        self
    }

    /// The schema: `value bigint, timestamp timestamp`.
    pub fn output_schema() -> SchemaRef {
        schema(&[("value", DataType::Int64), ("timestamp", timestamp_type())])
    }

    /// The event time of `value`.
    pub fn timestamp_of(&self, value: u64) -> i64 {
        self.start_wall_us + (value as i128 * 1_000_000 / self.rows_per_second as i128) as i64
    }

    fn scheduled_ns(&self, value: u64) -> u64 {
        let k = (value - self.resumed_at) as u128;
        self.schedule_origin_ns + (k * 1_000_000_000 / self.rows_per_second as u128) as u64
    }
}

impl Source for RateSource {
    fn describe(&self) -> String {
        format!("RateSource[rowsPerSecond={}]", self.rows_per_second)
    }

    fn schema(&self) -> SchemaRef {
        Self::output_schema()
    }

    fn open(&mut self, _ctx: &SourceContext, start: Option<&SourceOffset>) -> Result<()> {
        self.start_wall_us = self.fixed_start_us.unwrap_or_else(wall_now_us);
        if let Some(offset) = start {
            self.next = offset.0["value"].as_u64().unwrap_or(0);
            if let Some(s) = offset.0["start_us"].as_i64() {
                self.start_wall_us = s;
            }
        }
        self.resumed_at = self.next;
        self.schedule_origin_ns = now_ns();
        Ok(())
    }

    #[inline]
    fn poll(&mut self, out: &mut dyn SourceOutput) -> Result<PollStatus> {
        if self.limit.is_some_and(|l| self.next >= l) {
            return Ok(PollStatus::Exhausted);
        }
        let now = now_ns();
        let mut emitted = 0;
        while emitted < MAX_PER_POLL && self.limit.is_none_or(|l| self.next < l) {
            let due = self.scheduled_ns(self.next);
            if due > now {
                if emitted == 0 {
                    return Ok(PollStatus::IdleUntil(due));
                }
                break;
            }
            let mut row = Row::new();
            row.push(Value::Int64(self.next as i64));
            row.push(Value::Timestamp(self.timestamp_of(self.next)));
            out.emit(row, due)?;
            self.next += 1;
            emitted += 1;
        }
        Ok(PollStatus::Emitted(emitted as usize))
    }

    fn offset(&self) -> SourceOffset {
        self.offset_of(self.next)
    }

    fn as_replayable(&mut self) -> Option<&mut dyn Replayable> {
        Some(self)
    }
}

impl Replayable for RateSource {
    fn is_exhausted(&self) -> bool {
        self.limit.is_some_and(|l| self.next >= l)
    }

    /// Micro-batch: every row scheduled up to now.
    fn latest_offset(&mut self) -> Result<SourceOffset> {
        let elapsed = now_ns().saturating_sub(self.schedule_origin_ns) as u128;
        let due =
            self.resumed_at + (elapsed * self.rows_per_second as u128 / 1_000_000_000) as u64 + 1;
        let due = self.limit.map_or(due, |l| due.min(l)).max(self.next);
        Ok(self.offset_of(due))
    }

    fn read_range(
        &mut self,
        start: Option<&SourceOffset>,
        end: &SourceOffset,
        out: &mut dyn SourceOutput,
    ) -> Result<()> {
        let from = start.and_then(|s| s.0["value"].as_u64()).unwrap_or(0);
        let to = end.0["value"].as_u64().unwrap_or(from);
        let now = now_ns();
        for value in from..to {
            let mut row = Row::new();
            row.push(Value::Int64(value as i64));
            row.push(Value::Timestamp(self.timestamp_of(value)));
            // Rows replayed from before this run started were due long ago.
            let due = if value >= self.resumed_at {
                self.scheduled_ns(value)
            } else {
                now
            };
            out.emit(row, due)?;
        }
        self.next = self.next.max(to);
        Ok(())
    }

    fn read_batch(
        &mut self,
        start: Option<&SourceOffset>,
        end: &SourceOffset,
    ) -> Result<SourceBatch> {
        let from = start.and_then(|s| s.0["value"].as_u64()).unwrap_or(0);
        let to = end.0["value"].as_u64().unwrap_or(from).max(from);
        let now = now_ns();
        let values = Int64Array::from_iter_values((from..to).map(|v| v as i64));
        let times =
            TimestampMicrosecondArray::from_iter_values((from..to).map(|v| self.timestamp_of(v)))
                .with_timezone_opt(match self.schema().field(1).data_type() {
                    DataType::Timestamp(_, tz) => tz.clone(),
                    _ => None,
                });
        // Rows replayed from before this run started were due long ago.
        let ingest_ns = (from..to)
            .map(|v| {
                if v >= self.resumed_at {
                    self.scheduled_ns(v)
                } else {
                    now
                }
            })
            .collect();
        let batch = RecordBatch::try_new(self.schema(), vec![Arc::new(values), Arc::new(times)])
            .map_err(|e| EngineError::source_failed("rate", e))?;
        self.next = self.next.max(to);
        Ok(SourceBatch { batch, ingest_ns })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel::{DataFrame, MemorySink};

    #[test]
    fn a_batch_holds_the_rows_of_the_range() {
        // One source read twice: a logged range is replayed exactly.
        let mut src = RateSource::new(1_000).with_start_time(1_700_000_000_000_000);
        let ctx = SourceContext {
            name: "rate".into(),
            waker: std::sync::Arc::new(runnel::wake::TaskWaker::new()),
        };
        src.open(&ctx, None).unwrap();
        let start = src.offset_of(10);
        let end = src.offset_of(75);
        struct Rows(Vec<Row>, Vec<u64>);
        impl SourceOutput for Rows {
            fn emit(&mut self, row: Row, ingest_ns: u64) -> Result<()> {
                self.0.push(row);
                self.1.push(ingest_ns);
                Ok(())
            }
        }
        let mut rows = Rows(Vec::new(), Vec::new());
        src.read_range(Some(&start), &end, &mut rows).unwrap();
        let batch = src.read_batch(Some(&start), &end).unwrap();
        assert_eq!(rows.0.len(), 65);
        assert_eq!(
            runnel::schema::arrow::batch_to_rows(&batch.batch).unwrap(),
            rows.0
        );
        assert_eq!(batch.batch.schema(), src.schema());
        assert_eq!(batch.ingest_ns, rows.1);
    }

    #[test]
    fn generates_numbered_rows_at_their_scheduled_times() {
        let (sink, table) = MemorySink::new("rate");
        let q = DataFrame::from_source("rate", RateSource::new(20_000).with_limit(2_000))
            .write_stream(sink)
            .start()
            .unwrap();
        q.await_termination().unwrap();
        let rows = table.rows();
        assert_eq!(rows.len(), 2_000);
        let t0 = rows[0][1].as_i64().unwrap();
        for (i, r) in rows.iter().enumerate() {
            assert_eq!(r[0], Value::Int64(i as i64));
            // 20,000 rows/s: 50 µs apart.
            assert_eq!(r[1].as_i64().unwrap() - t0, i as i64 * 50);
        }
    }

    #[test]
    fn resumes_from_its_offset_with_the_same_timestamps() {
        let mut first = RateSource::new(1_000);
        let ctx = SourceContext {
            name: "r".into(),
            waker: std::sync::Arc::new(runnel::continuous::TaskWaker::new()),
        };
        first.open(&ctx, None).unwrap();
        first.next = 500;
        let offset = first.offset();
        let mut second = RateSource::new(1_000);
        second.open(&ctx, Some(&offset)).unwrap();
        assert_eq!(second.next, 500);
        assert_eq!(second.timestamp_of(700), first.timestamp_of(700));
    }
}
