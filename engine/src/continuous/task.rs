//! The two task loops: a source task (polls a source, places epoch markers)
//! and a ring task (drains one or more input rings, merging markers and
//! watermarks). Each runs on its own thread until the stream ends or the
//! query aborts.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::ring::{Message, RingReceiver};
use crate::checkpoint::EpochReporter;
use crate::error::{EngineError, Result};
use crate::io::{PollStatus, Source, SourceOffset, SourceOutput};
use crate::ops::Next;
use crate::query::Control;
use crate::schema::{Event, Row, NO_TIME};
use crate::wake::{Idler, TaskWaker};

/// Messages drained from one input before looking at the next.
const INPUT_BATCH: usize = 256;

/// Feeds a source's rows into the chain and counts them.
struct ChainInput<'a> {
    chain: &'a mut Next,
    rows: u64,
}

impl SourceOutput for ChainInput<'_> {
    #[inline]
    fn emit(&mut self, row: Row, ingest_ns: u64) -> Result<()> {
        self.rows += 1;
        self.chain.on_event(&mut Event::new(row, ingest_ns))
    }
}

/// A task that polls a source.
pub(crate) struct SourceTask {
    pub(crate) source: Box<dyn Source>,
    pub(crate) chain: Next,
    pub(crate) control: Arc<Control>,
    pub(crate) reporter: EpochReporter,
    pub(crate) waker: Arc<TaskWaker>,
    pub(crate) idler: Idler,
    pub(crate) next_epoch: u64,
    pub(crate) uncommitted: VecDeque<(u64, SourceOffset)>,
    pub(crate) rows_in_epoch: u64,
}

impl SourceTask {
    pub(crate) fn run(mut self) -> Result<()> {
        let mut idle = false;
        loop {
            if self.control.aborted() {
                return Err(EngineError::Stopped);
            }
            let requested = self.control.requested_epoch.load(Ordering::Acquire);
            while self.next_epoch <= requested {
                self.mark(false)?;
            }
            self.pass_commits()?;
            if self.control.stop.load(Ordering::Acquire) {
                return self.finish();
            }
            let mut input = ChainInput {
                chain: &mut self.chain,
                rows: 0,
            };
            let status = self.source.poll(&mut input)?;
            self.rows_in_epoch += input.rows;
            match status {
                PollStatus::Emitted(_) => {
                    idle = false;
                    self.idler.reset();
                }
                PollStatus::Idle | PollStatus::IdleUntil(_) => {
                    if !idle {
                        // Publish watermarks once per idle spell.
                        self.chain.on_tick()?;
                        idle = true;
                    }
                    let wake_at = match status {
                        PollStatus::IdleUntil(t) => Some(t),
                        _ => None,
                    };
                    let control = &self.control;
                    let next_epoch = self.next_epoch;
                    let source = &self.source;
                    self.idler.idle(
                        &self.waker,
                        || {
                            source.ready_hint()
                                || control.requested_epoch.load(Ordering::Acquire) >= next_epoch
                                || control.stop.load(Ordering::Acquire)
                                || control.aborted()
                        },
                        wake_at,
                    );
                }
                PollStatus::Exhausted => return self.finish(),
            }
        }
    }

    /// Ends the stream: one last epoch, then the end marker; then waits for
    /// that epoch to become durable and tells the source, so that work owed
    /// on commit (cleaning up input files, acknowledging offsets) happens
    /// before the query ends.
    fn finish(&mut self) -> Result<()> {
        let last = self.next_epoch;
        self.mark(true)?;
        self.chain.on_end()?;
        while self.control.committed_epoch.load(Ordering::Acquire) < last {
            if self.control.aborted() {
                return Err(EngineError::Stopped);
            }
            let control = &self.control;
            self.waker.park_unless(
                || control.committed_epoch.load(Ordering::Acquire) >= last || control.aborted(),
                crate::wake::MAX_PARK,
            );
        }
        self.pass_commits()
    }

    fn mark(&mut self, is_final: bool) -> Result<()> {
        let epoch = self.next_epoch;
        self.next_epoch += 1;
        let offset = self.source.offset();
        self.reporter.source_marked(
            epoch,
            offset.clone(),
            std::mem::take(&mut self.rows_in_epoch),
            is_final,
            self.source.metrics(),
        );
        self.uncommitted.push_back((epoch, offset));
        self.chain.on_marker(epoch)
    }

    /// Tells the source which offsets are durable.
    fn pass_commits(&mut self) -> Result<()> {
        let committed = self.control.committed_epoch.load(Ordering::Acquire);
        let mut newest = None;
        while let Some((e, _)) = self.uncommitted.front() {
            if *e > committed {
                break;
            }
            newest = self.uncommitted.pop_front();
        }
        if let Some((_, offset)) = newest {
            self.source.commit(&offset)?;
        }
        Ok(())
    }
}

struct Input {
    ring: RingReceiver,
    ended: bool,
    marker: u64,
    watermark: i64,
}

/// A task fed by rings: one (after a blocking source, or a partition of an
/// exchange) or several (a fan-in).
pub(crate) struct RingTask {
    inputs: Vec<Input>,
    chain: Next,
    control: Arc<Control>,
    waker: Arc<TaskWaker>,
    idler: Idler,
    forwarded_marker: u64,
    forwarded_watermark: i64,
}

impl RingTask {
    pub(crate) fn new(
        rings: Vec<RingReceiver>,
        chain: Next,
        control: Arc<Control>,
        waker: Arc<TaskWaker>,
        idler: Idler,
        start_epoch: u64,
    ) -> RingTask {
        RingTask {
            inputs: rings
                .into_iter()
                .map(|ring| Input {
                    ring,
                    ended: false,
                    marker: start_epoch - 1,
                    watermark: NO_TIME,
                })
                .collect(),
            chain,
            control,
            waker,
            idler,
            forwarded_marker: start_epoch - 1,
            forwarded_watermark: NO_TIME,
        }
    }

    pub(crate) fn run(mut self) -> Result<()> {
        let mut idle = false;
        loop {
            if self.control.aborted() {
                return Err(EngineError::Stopped);
            }
            let mut progressed = false;
            for i in 0..self.inputs.len() {
                if self.inputs[i].ended {
                    continue;
                }
                for _ in 0..INPUT_BATCH {
                    let Some(msg) = self.inputs[i].ring.try_recv() else {
                        break;
                    };
                    progressed = true;
                    if self.handle(i, msg)? {
                        return Ok(());
                    }
                }
            }
            if progressed {
                idle = false;
                self.idler.reset();
            } else {
                if !idle {
                    self.chain.on_tick()?;
                    idle = true;
                }
                let inputs = &self.inputs;
                let control = &self.control;
                self.idler.idle(
                    &self.waker,
                    || control.aborted() || inputs.iter().any(|i| !i.ended && i.ring.has_data()),
                    None,
                );
            }
        }
    }

    /// Handles one message; `true` when every input has ended.
    #[inline]
    fn handle(&mut self, i: usize, msg: Message) -> Result<bool> {
        match msg {
            Message::Data(mut ev) => self.chain.on_event(&mut ev)?,
            Message::Watermark(wm) => {
                self.inputs[i].watermark = wm;
                self.forward_watermark()?;
            }
            Message::Marker(epoch) => {
                // No alignment (at-least-once): inputs that already passed
                // the marker keep flowing; it is forwarded once all have it.
                self.inputs[i].ring.sample_fill();
                self.inputs[i].marker = epoch;
                self.forward_markers()?;
            }
            Message::End => {
                self.inputs[i].ended = true;
                if self.inputs.iter().all(|i| i.ended) {
                    self.chain.on_end()?;
                    return Ok(true);
                }
                self.forward_markers()?;
                self.forward_watermark()?;
            }
        }
        Ok(false)
    }

    fn forward_markers(&mut self) -> Result<()> {
        let lowest = self
            .inputs
            .iter()
            .filter(|i| !i.ended)
            .map(|i| i.marker)
            .min()
            .unwrap_or(self.forwarded_marker);
        while self.forwarded_marker < lowest {
            self.forwarded_marker += 1;
            self.chain.on_marker(self.forwarded_marker)?;
        }
        Ok(())
    }

    fn forward_watermark(&mut self) -> Result<()> {
        let lowest = self
            .inputs
            .iter()
            .filter(|i| !i.ended)
            .map(|i| i.watermark)
            .min()
            .unwrap_or(NO_TIME);
        if lowest > self.forwarded_watermark {
            self.forwarded_watermark = lowest;
            self.chain.on_watermark(lowest)?;
        }
        Ok(())
    }
}

/// The message of a caught panic's payload.
pub(crate) fn panic_message(payload: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a task panicked".to_string()
    }
}
