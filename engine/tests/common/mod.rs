//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use runnel::Replayable;
use runnel::{
    schema, timestamp_type, DataType, PollStatus, Row, SchemaRef, Source, SourceContext,
    SourceOffset, SourceOutput, Value,
};

/// A replayable source of `n` rows `(id, key, ts)`: id 0.., key = id % keys,
/// ts = base + id * step (µs), optionally with a per-row time override.
pub struct SequenceSource {
    pub n: u64,
    pub keys: u64,
    pub step_us: i64,
    pub times: Option<Vec<i64>>,
    pub next: u64,
    /// Micro-batch: rows per batch at most.
    pub per_trigger: u64,
    /// Continuous: a pause after each poll (64 rows), to pace the stream.
    pub poll_pause: std::time::Duration,
    planned: u64,
}

impl SequenceSource {
    pub fn new(n: u64, keys: u64, step_us: i64) -> Self {
        SequenceSource {
            n,
            keys,
            step_us,
            times: None,
            next: 0,
            per_trigger: u64::MAX,
            poll_pause: std::time::Duration::ZERO,
            planned: 0,
        }
    }

    pub fn with_times(times: Vec<i64>, keys: u64) -> Self {
        SequenceSource {
            n: times.len() as u64,
            keys,
            step_us: 0,
            times: Some(times),
            next: 0,
            per_trigger: u64::MAX,
            poll_pause: std::time::Duration::ZERO,
            planned: 0,
        }
    }

    pub fn per_trigger(mut self, rows: u64) -> Self {
        self.per_trigger = rows.max(1);
        self
    }

    /// Continuous: pauses `pause` after every poll of 64 rows, so that a
    /// test sees many epochs pass before the stream ends, however busy the
    /// machine.
    pub fn paced(mut self, pause: std::time::Duration) -> Self {
        self.poll_pause = pause;
        self
    }

    fn row(&self, id: u64) -> Row {
        let mut row = Row::new();
        row.push(id as i64);
        row.push(format!("k{}", id % self.keys.max(1)));
        row.push(Value::Timestamp(self.time_of(id)));
        row
    }

    pub fn time_of(&self, id: u64) -> i64 {
        match &self.times {
            Some(t) => t[id as usize],
            None => id as i64 * self.step_us,
        }
    }

    pub fn schema() -> SchemaRef {
        schema(&[
            ("id", DataType::Int64),
            ("key", DataType::Utf8),
            ("ts", timestamp_type()),
        ])
    }
}

impl Source for SequenceSource {
    fn describe(&self) -> String {
        format!("SequenceSource[{}]", self.n)
    }
    fn schema(&self) -> SchemaRef {
        Self::schema()
    }
    fn open(&mut self, _ctx: &SourceContext, start: Option<&SourceOffset>) -> runnel::Result<()> {
        if let Some(o) = start {
            self.next = o
                .rows()
                .map_err(|e| runnel::EngineError::source_failed("sequence", e))?;
        }
        self.planned = self.next;
        Ok(())
    }
    fn poll(&mut self, out: &mut dyn SourceOutput) -> runnel::Result<PollStatus> {
        if self.next >= self.n {
            return Ok(PollStatus::Exhausted);
        }
        let end = (self.next + 64).min(self.n);
        let count = (end - self.next) as usize;
        while self.next < end {
            out.emit(self.row(self.next), runnel::clock::now_ns())?;
            self.next += 1;
        }
        if !self.poll_pause.is_zero() {
            std::thread::sleep(self.poll_pause);
        }
        Ok(PollStatus::Emitted(count))
    }
    fn offset(&self) -> SourceOffset {
        SourceOffset::Rows(self.next)
    }

    fn as_replayable(&mut self) -> Option<&mut dyn Replayable> {
        Some(self)
    }
}

impl Replayable for SequenceSource {
    fn is_exhausted(&self) -> bool {
        self.planned >= self.n
    }

    fn latest_offset(&mut self) -> runnel::Result<SourceOffset> {
        self.planned = self.planned.saturating_add(self.per_trigger).min(self.n);
        Ok(SourceOffset::Rows(self.planned))
    }

    fn read_range(
        &mut self,
        start: Option<&SourceOffset>,
        end: &SourceOffset,
        out: &mut dyn SourceOutput,
    ) -> runnel::Result<()> {
        let rows = |o: &SourceOffset| {
            o.rows()
                .map_err(|e| runnel::EngineError::source_failed("sequence", e))
        };
        let from = start.map_or(Ok(0), rows)?;
        let to = rows(end)?;
        for id in from..to {
            out.emit(self.row(id), runnel::clock::now_ns())?;
        }
        self.planned = self.planned.max(to);
        Ok(())
    }
}

/// The epoch or batch numbers under a checkpoint's `commits/`, ascending.
pub fn commit_numbers(ckpt: &std::path::Path) -> Vec<u64> {
    let mut out: Vec<u64> = std::fs::read_dir(ckpt.join("commits"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    out.sort_unstable();
    out
}

/// The manifest `commits/<n>` of a checkpoint, as JSON.
pub fn manifest(ckpt: &std::path::Path, n: u64) -> serde_json::Value {
    let path = ckpt.join("commits").join(n.to_string());
    let bytes = std::fs::read(&path).unwrap();
    serde_json::from_slice(runnel::checkpoint::frame::payload(&path, &bytes).unwrap()).unwrap()
}

/// Whether a manifest names delta state files for some operator.
pub fn names_deltas(m: &serde_json::Value) -> bool {
    m["operators"].as_array().is_some_and(|ops| {
        ops.iter()
            .any(|o| o["deltas"].as_array().is_some_and(|d| !d.is_empty()))
    })
}

/// After a restart from a checkpoint, a `(key, count)` table must hold every
/// one of `keys` keys with the count `each`: a count short of it means the
/// state before the restart was not restored.
pub fn assert_every_key_counted(rows: &[Row], keys: u64, each: u64) {
    assert_eq!(
        rows.len() as u64,
        keys,
        "every key was updated after the restart"
    );
    for row in rows {
        assert_eq!(
            row[1].as_i64(),
            Some(each as i64),
            "key {:?}: the count before the restart came from the state files",
            row[0]
        );
    }
}
