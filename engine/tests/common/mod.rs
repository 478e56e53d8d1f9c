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

/// The epoch or batch numbers of a checkpoint's manifests, ascending.
pub fn commit_numbers(ckpt: &std::path::Path) -> Vec<u64> {
    let (dir, _) = runnel::checkpoint::CheckpointDir::open(ckpt).unwrap();
    dir.epochs().unwrap()
}

/// The manifest of epoch or batch `n` of a checkpoint, as JSON.
pub fn manifest(ckpt: &std::path::Path, n: u64) -> serde_json::Value {
    let (dir, _) = runnel::checkpoint::CheckpointDir::open(ckpt).unwrap();
    serde_json::to_value(dir.read_manifest(n).unwrap()).unwrap()
}

/// The bytes of the manifest record of epoch or batch `n` as stored, and
/// where they are (the file and their offset in it).
pub fn manifest_record(ckpt: &std::path::Path, n: u64) -> (std::path::PathBuf, u64, Vec<u8>) {
    let (dir, _) = runnel::checkpoint::CheckpointDir::open(ckpt).unwrap();
    let (path, at) = dir
        .manifest_location(n)
        .unwrap()
        .expect("the manifest exists");
    let bytes = std::fs::read(&path).unwrap();
    let record = bytes[at.start as usize..at.end as usize].to_vec();
    (path, at.start, record)
}

/// Flips bit `mask` of the byte at `fraction` of the manifest record of
/// `n`, where it is stored.
pub fn damage_manifest(ckpt: &std::path::Path, n: u64, fraction: f64, mask: u8) {
    let (path, start, record) = manifest_record(ckpt, n);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = start as usize + ((record.len() as f64 * fraction) as usize).min(record.len() - 1);
    bytes[at] ^= mask;
    std::fs::write(&path, bytes).unwrap();
}

/// Rewinds a stopped query's checkpoint to epoch or batch `n`, as if the
/// process had died just after it became durable.
pub fn discard_after(ckpt: &std::path::Path, n: u64) {
    let (dir, _) = runnel::checkpoint::CheckpointDir::open(ckpt).unwrap();
    dir.discard_after(n).unwrap();
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
