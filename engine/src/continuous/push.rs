//! The push source: events pushed by the application's own threads run
//! through the query's first task **on the pushing thread**.
//!
//! Owns [`PushSource`] and its producer handles ([`Pusher`]), and the
//! source's background task. A push takes the chain through a [`Handoff`]
//! (one uncontended atomic read-modify-write to take it and one to let go),
//! runs the event through the fused operators of the first task (filter,
//! project, watermark, aggregation when the query has one partition, the
//! sink, or the ring or keyed exchange to the next task) and returns. No
//! thread hop, no wake-up, no copy into a ring: one thread does the work,
//! where a ring-fed source needs two spinning threads for the same latency.
//!
//! When the chain is busy (another producer holds it, or the background task
//! is placing a marker), the event goes into the producer's own ring and the
//! holder drains it before letting go, so each producer's events keep their
//! order and none waits for a lock. The background task parks; it wakes for
//! epoch requests, a stop, and the end of the stream, and leaves a note that
//! the next producer to push services between two of its own events (so the
//! task never holds the chain under an active producer's feet, where its
//! preemption would stall every push). Only when no producer has taken the
//! note up within [`TAKE_OVER`] (they are idle) does the task take the chain
//! and do the work itself.
//!
//! Not replayable: the engine cannot re-read what an application pushed.
//! Instead each producer's position (rows of that producer the query has
//! taken) is written into every epoch's offsets, and [`Pusher::durable_position`]
//! tells the application how many of its rows are covered by the last
//! durable epoch (after a restart, the recovered one), so it can replay the
//! rest itself. It must not evaluate anything itself (the chain does) nor
//! block a producer on a lock.

// `PushError::Full` hands the row back by value: boxing it would allocate on
// exactly the path (a full ring) where the caller is already behind.
#![allow(clippy::result_large_err)]

use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

use super::handoff::{Give, Handoff, Take};
use crate::checkpoint::EpochReporter;
use crate::clock::now_ns;
use crate::error::{EngineError, Result};
use crate::io::{PollStatus, PushError, Source, SourceContext, SourceOffset, SourceOutput};
use crate::ops::Next;
use crate::query::Control;
use crate::schema::{Event, Row, SchemaRef};
use crate::wake::{Backoff, TaskWaker, MAX_PARK};

/// How long a note (an epoch to mark, a stop, the end of the stream) may
/// wait for a pushing producer to take it up before the background task
/// takes the chain itself. Producers that push more often than this place
/// the markers between their own events (so the task never holds the chain
/// under a busy producer's feet); at lower rates the task does it while the
/// producers are idle, so a producer's event rarely pays for a marker.
const TAKE_OVER: Duration = Duration::from_micros(50);

/// Default ring size of each producer (events waiting while the chain is
/// busy).
const DEFAULT_CAPACITY: usize = 4096;

/// One producer's bookkeeping, shared with whoever holds the chain.
#[derive(Debug)]
struct Slot {
    /// Rows of this producer the chain has taken (written by holders only).
    taken: AtomicU64,
    /// Rows of this producer covered by the newest durable epoch.
    durable: AtomicU64,
}

/// A producer's ring as its consumer (the chain's holder) sees it.
struct Lane {
    slot: Arc<Slot>,
    ring: rtrb::Consumer<(Row, u64)>,
    /// The producer handle is gone (nothing more will arrive on this ring).
    closed: Arc<AtomicBool>,
}

/// The chain and what goes with it; touched only by the handoff's holder.
struct Inline {
    chain: Next,
    reporter: EpochReporter,
    control: Arc<Control>,
    next_epoch: u64,
    rows_in_epoch: u64,
    lanes: Vec<Lane>,
}

struct Shared {
    handoff: CachePadded<Handoff>,
    /// The chain, built when the query starts; guarded by `handoff`.
    inline: UnsafeCell<Option<Inline>>,
    /// Rings of producers created since the holder last looked.
    new_lanes: Mutex<Vec<Lane>>,
    new_lane_count: AtomicUsize,
    /// Every producer's slot, in creation order (for offsets and positions).
    slots: Mutex<Vec<Arc<Slot>>>,
    /// Producer handles alive.
    live: AtomicUsize,
    capacity: usize,
    waker: OnceLock<Arc<TaskWaker>>,
    /// Why the chain failed on a producer's thread.
    failure: Mutex<Option<EngineError>>,
    /// The final epoch once the stream has ended (0: not yet).
    final_epoch: AtomicU64,
    /// Positions recovered from the checkpoint, per producer.
    recovered: Mutex<Vec<u64>>,
    /// Offsets of marked epochs not yet durable: (epoch, positions).
    uncommitted: Mutex<VecDeque<(u64, Vec<u64>)>>,
}

// SAFETY: `inline` is only touched by the thread that holds `handoff`
// (taking it is an Acquire read-modify-write, letting go a Release one), so
// accesses to it never overlap and each holder sees its predecessor's
// writes. Everything else in `Shared` is atomic or behind a mutex; the
// chain and the rings it holds are `Send`.
unsafe impl Sync for Shared {}
// SAFETY: see above; every field is `Send` (the chain is `Send`).
unsafe impl Send for Shared {}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// The chain's state. Only while holding the handoff.
    ///
    /// # Safety
    /// The caller holds `self.handoff` (see the `Sync` impl).
    #[allow(clippy::mut_from_ref)]
    unsafe fn inline(&self) -> Option<&mut Inline> {
        // SAFETY: the caller holds the handoff, so no other reference exists.
        unsafe { (*self.inline.get()).as_mut() }
    }

    fn wake_task(&self) {
        if let Some(w) = self.waker.get() {
            w.wake();
        }
    }

    fn fail(&self, e: EngineError) {
        if !matches!(e, EngineError::Stopped) {
            let mut f = lock(&self.failure);
            if f.is_none() {
                *f = Some(e);
            }
        }
        self.handoff.end();
        self.wake_task();
    }

    /// Lets go of the chain, servicing every note left meanwhile.
    /// `by_task`: the background task holds it (it also publishes watermarks).
    fn release(&self, by_task: bool) {
        loop {
            match self.handoff.release() {
                Give::Released | Give::Ended => return,
                Give::Notified => {
                    if let Err(e) = self.service(by_task) {
                        self.fail(e);
                        return;
                    }
                }
            }
        }
    }

    /// With the chain held: drains every producer's ring, places requested
    /// markers, and ends the stream on a stop or when every producer is gone.
    fn service(&self, by_task: bool) -> Result<()> {
        // SAFETY: called only by the holder (from `release` or after a take).
        let Some(inl) = (unsafe { self.inline() }) else {
            return Ok(());
        };
        if self.final_epoch.load(Ordering::Acquire) > 0 {
            return Ok(());
        }
        if inl.control.aborted() {
            self.handoff.end();
            return Err(EngineError::Stopped);
        }
        if self.new_lane_count.load(Ordering::Acquire) > 0 {
            let mut fresh = lock(&self.new_lanes);
            self.new_lane_count.store(0, Ordering::Release);
            inl.lanes.append(&mut fresh);
        }
        let mut all_closed_and_empty = true;
        for lane in &mut inl.lanes {
            // Only what is there now: a producer that keeps pushing must not
            // keep the holder here for good.
            let n = lane.ring.slots();
            for _ in 0..n {
                let Ok((row, ingest_ns)) = lane.ring.pop() else {
                    break;
                };
                let taken = lane.slot.taken.load(Ordering::Relaxed);
                lane.slot.taken.store(taken + 1, Ordering::Relaxed);
                inl.rows_in_epoch += 1;
                inl.chain.on_event(&mut Event::new(row, ingest_ns))?;
            }
            if !lane.closed.load(Ordering::Acquire) || !lane.ring.is_empty() {
                all_closed_and_empty = false;
            }
        }
        let requested = inl.control.requested_epoch.load(Ordering::Acquire);
        while inl.next_epoch <= requested {
            self.mark(inl, false)?;
        }
        if by_task {
            inl.chain.on_tick()?;
        }
        let producers_gone = self.live.load(Ordering::Acquire) == 0 && all_closed_and_empty && {
            // A producer created meanwhile has a lane not yet picked up.
            self.new_lane_count.load(Ordering::Acquire) == 0
        };
        if inl.control.stop.load(Ordering::Acquire) || producers_gone {
            let last = inl.next_epoch;
            self.mark(inl, true)?;
            inl.chain.on_end()?;
            // Drop the chain now (a subscription's channel closes with it):
            // producers still holding handles must not keep the sink alive.
            inl.chain = Box::new(Finished);
            self.final_epoch.store(last, Ordering::Release);
            self.handoff.end();
            self.wake_task();
        }
        Ok(())
    }

    fn mark(&self, inl: &mut Inline, is_final: bool) -> Result<()> {
        let epoch = inl.next_epoch;
        inl.next_epoch += 1;
        let positions: Vec<u64> = lock(&self.slots)
            .iter()
            .map(|s| s.taken.load(Ordering::Relaxed))
            .collect();
        inl.reporter.source_marked(
            epoch,
            SourceOffset::Producers(positions.clone()),
            std::mem::take(&mut inl.rows_in_epoch),
            is_final,
            Vec::new(),
        );
        lock(&self.uncommitted).push_back((epoch, positions));
        inl.chain.on_marker(epoch)
    }

    /// Publishes the positions of every durable epoch to the producers.
    fn pass_commits(&self, committed: u64) {
        let mut newest = None;
        {
            let mut q = lock(&self.uncommitted);
            while q.front().is_some_and(|(e, _)| *e <= committed) {
                newest = q.pop_front();
            }
        }
        if let Some((_, positions)) = newest {
            let slots = lock(&self.slots);
            for (slot, p) in slots.iter().zip(positions) {
                slot.durable.store(p, Ordering::Release);
            }
        }
    }
}

/// What replaces the chain once the stream has ended (never called).
struct Finished;

impl crate::ops::Operator for Finished {
    fn on_event(&mut self, _ev: &mut Event) -> Result<()> {
        Err(EngineError::Stopped)
    }
    fn on_watermark(&mut self, _wm: i64) -> Result<()> {
        Ok(())
    }
    fn on_marker(&mut self, _epoch: u64) -> Result<()> {
        Ok(())
    }
    fn on_tick(&mut self) -> Result<()> {
        Ok(())
    }
    fn on_end(&mut self) -> Result<()> {
        Ok(())
    }
}

/// A source fed by the application's threads through [`Pusher`] handles;
/// each push runs the query's first task on the pushing thread (see the
/// module docs). Continuous mode only.
pub struct PushSource {
    schema: SchemaRef,
    shared: Arc<Shared>,
}

/// A producer handle of a [`PushSource`]. Cloning it makes another producer
/// (with its own ring and position) that may be moved to another thread;
/// dropping every handle ends the stream.
pub struct Pusher {
    shared: Arc<Shared>,
    slot: Arc<Slot>,
    ring: rtrb::Producer<(Row, u64)>,
    closed: Arc<AtomicBool>,
    index: usize,
}

impl PushSource {
    /// A source with `schema` and one producer handle.
    pub fn new(schema: SchemaRef) -> (PushSource, Pusher) {
        Self::with_capacity(schema, DEFAULT_CAPACITY)
    }

    /// A source whose producers each buffer up to `capacity` events while
    /// the chain is busy (before the query starts, or while another thread
    /// runs it).
    pub fn with_capacity(schema: SchemaRef, capacity: usize) -> (PushSource, Pusher) {
        let shared = Arc::new(Shared {
            handoff: CachePadded::new(Handoff::new_taken()),
            inline: UnsafeCell::new(None),
            new_lanes: Mutex::new(Vec::new()),
            new_lane_count: AtomicUsize::new(0),
            slots: Mutex::new(Vec::new()),
            live: AtomicUsize::new(0),
            capacity: capacity.max(1),
            waker: OnceLock::new(),
            failure: Mutex::new(None),
            final_epoch: AtomicU64::new(0),
            recovered: Mutex::new(Vec::new()),
            uncommitted: Mutex::new(VecDeque::new()),
        });
        let pusher = Pusher::register(&shared);
        (PushSource { schema, shared }, pusher)
    }
}

impl Pusher {
    fn register(shared: &Arc<Shared>) -> Pusher {
        let (tx, rx) = rtrb::RingBuffer::new(shared.capacity);
        let closed = Arc::new(AtomicBool::new(false));
        let (slot, index) = {
            let mut slots = lock(&shared.slots);
            let index = slots.len();
            let start = lock(&shared.recovered).get(index).copied().unwrap_or(0);
            let slot = Arc::new(Slot {
                taken: AtomicU64::new(start),
                durable: AtomicU64::new(start),
            });
            slots.push(slot.clone());
            (slot, index)
        };
        shared.live.fetch_add(1, Ordering::AcqRel);
        lock(&shared.new_lanes).push(Lane {
            slot: slot.clone(),
            ring: rx,
            closed: closed.clone(),
        });
        shared.new_lane_count.fetch_add(1, Ordering::Release);
        Pusher {
            shared: shared.clone(),
            slot,
            ring: tx,
            closed,
            index,
        }
    }

    /// Pushes a row that enters the engine now, waiting (spin, then yield,
    /// then short sleeps) while this producer's ring is full.
    #[inline]
    pub fn push(&mut self, row: Row) -> Result<(), PushError> {
        self.push_at(row, now_ns())
    }

    /// Like [`Pusher::push`] with an explicit ingest time
    /// ([`crate::clock::now_ns`] time): an open-loop generator passes the
    /// row's scheduled time, so that a stalled engine shows up as latency.
    #[inline]
    pub fn push_at(&mut self, row: Row, ingest_ns: u64) -> Result<(), PushError> {
        let mut row = row;
        let mut backoff = Backoff::default();
        loop {
            match self.try_push_at(row, ingest_ns) {
                Err(PushError::Full(back)) => {
                    row = back;
                    backoff.snooze();
                }
                other => return other,
            }
        }
    }

    /// Pushes a row, spinning (never sleeping) while this producer's ring is
    /// full: for callers that own a core.
    pub fn push_spin(&mut self, row: Row) -> Result<(), PushError> {
        let mut row = row;
        let ingest_ns = now_ns();
        loop {
            match self.try_push_at(row, ingest_ns) {
                Err(PushError::Full(back)) => {
                    row = back;
                    std::hint::spin_loop();
                }
                other => return other,
            }
        }
    }

    /// Pushes a row that enters the engine now, or hands it back at once
    /// (`PushError::Full`) when it cannot be taken without waiting.
    #[inline]
    pub fn try_push(&mut self, row: Row) -> Result<(), PushError> {
        self.try_push_at(row, now_ns())
    }

    /// [`Pusher::try_push`] with an explicit ingest time.
    #[inline]
    pub fn try_push_at(&mut self, row: Row, ingest_ns: u64) -> Result<(), PushError> {
        let shared = &*self.shared;
        // Earlier rows of this producer still wait in its ring: this one
        // queues behind them (per-producer order).
        if self.ring.slots() == shared.capacity {
            match shared.handoff.try_take() {
                Take::Taken => return self.run_inline(row, ingest_ns),
                Take::Ended => return Err(PushError::Closed),
                Take::Busy => {}
            }
        }
        self.push_ring(row, ingest_ns)
    }

    /// With the chain held: runs the row through it, then lets go.
    #[inline]
    fn run_inline(&mut self, row: Row, ingest_ns: u64) -> Result<(), PushError> {
        let shared = &*self.shared;
        // SAFETY: the handoff was just taken by this thread.
        let Some(inl) = (unsafe { shared.inline() }) else {
            // Taken but no chain: only possible after the query ended and
            // dropped it; treat as closed.
            shared.handoff.end();
            return Err(PushError::Closed);
        };
        let taken = self.slot.taken.load(Ordering::Relaxed);
        self.slot.taken.store(taken + 1, Ordering::Relaxed);
        inl.rows_in_epoch += 1;
        // Built here, so the unwind guard's closure borrows it rather than
        // carrying the row (one copy of it fewer).
        let mut ev = Event::new(row, ingest_ns);
        let outcome = catch_unwind(AssertUnwindSafe(|| inl.chain.on_event(&mut ev)));
        match outcome {
            Ok(Ok(())) => {
                shared.release(false);
                Ok(())
            }
            Ok(Err(e)) => {
                shared.fail(e);
                Err(PushError::Closed)
            }
            Err(payload) => {
                shared.fail(EngineError::Panic(super::task::panic_message(&payload)));
                Err(PushError::Closed)
            }
        }
    }

    /// The chain is busy: queue the row in this producer's ring and leave a
    /// note for the holder (or take the chain if it was let go meanwhile).
    fn push_ring(&mut self, row: Row, ingest_ns: u64) -> Result<(), PushError> {
        let shared = &*self.shared;
        if shared.handoff.is_ended() {
            return Err(PushError::Closed);
        }
        let pushed = self.ring.push((row, ingest_ns));
        // Even when full: the holder must know the ring needs draining.
        self.notify();
        pushed.map_err(|rtrb::PushError::Full((row, _))| PushError::Full(row))
    }

    /// Takes the chain and services it, or leaves a note for its holder.
    fn notify(&self) {
        let shared = &*self.shared;
        if shared.handoff.take_or_notify() == Take::Taken {
            match shared.service(false) {
                Ok(()) => shared.release(false),
                Err(e) => shared.fail(e),
            }
        }
    }

    /// Rows of this producer the query has taken so far (since its first
    /// run, including rows recovered from a checkpoint).
    pub fn position(&self) -> u64 {
        self.slot.taken.load(Ordering::Relaxed)
    }

    /// Rows of this producer covered by the newest durable epoch: after a
    /// crash and restart, rows from this position on are not in the
    /// checkpoint, and the application replays them if it must not lose
    /// them (the engine cannot re-read what it was pushed).
    pub fn durable_position(&self) -> u64 {
        self.slot.durable.load(Ordering::Acquire)
    }

    /// This producer's number: producers are numbered in creation order, and
    /// positions are recovered by number.
    pub fn index(&self) -> usize {
        self.index
    }
}

impl Clone for Pusher {
    /// Another producer of the same source, with its own ring and position.
    fn clone(&self) -> Pusher {
        Pusher::register(&self.shared)
    }
}

impl Drop for Pusher {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Release);
        self.shared.live.fetch_sub(1, Ordering::AcqRel);
        // The holder (or the task) notices the end of the stream.
        self.notify();
        self.shared.wake_task();
    }
}

impl Source for PushSource {
    fn describe(&self) -> String {
        "PushSource".to_string()
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn open(&mut self, ctx: &SourceContext, start: Option<&SourceOffset>) -> Result<()> {
        let _ = self.shared.waker.set(ctx.waker.clone());
        let positions = match start {
            None | Some(SourceOffset::Start) => None,
            Some(SourceOffset::Producers(p)) => Some(p.clone()),
            Some(other) => {
                return Err(EngineError::Plan(format!(
                    "a push source cannot resume from offset {other}: it is not a producer offset \
                     (was the checkpoint written by another source?)"
                )))
            }
        };
        if let Some(positions) = positions {
            let slots = lock(&self.shared.slots);
            for (slot, &p) in slots.iter().zip(&positions) {
                // Rows pushed before the start are counted on top.
                slot.taken.fetch_add(p, Ordering::Relaxed);
                slot.durable.store(p, Ordering::Release);
            }
            *lock(&self.shared.recovered) = positions;
        }
        Ok(())
    }

    fn poll(&mut self, _out: &mut dyn SourceOutput) -> Result<PollStatus> {
        // Never polled: the runtime starts a push task for this source.
        Err(EngineError::Plan(
            "a push source runs its chain on the pushing threads; it cannot be polled".into(),
        ))
    }

    fn offset(&self) -> SourceOffset {
        let positions: Vec<u64> = lock(&self.shared.slots)
            .iter()
            .map(|s| s.taken.load(Ordering::Relaxed))
            .collect();
        SourceOffset::Producers(positions)
    }

    fn is_replayable(&self) -> bool {
        false
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

/// Lets the producers of a started query in.
pub(crate) struct PushGate {
    shared: Arc<Shared>,
}

impl PushGate {
    /// The chain is built and every task runs: drains what producers pushed
    /// before the start (on the calling thread), then lets go of the chain.
    pub(crate) fn open(self) {
        let shared = &*self.shared;
        if let Err(e) = shared.service(false) {
            shared.fail(e);
        }
        shared.release(false);
    }
}

/// The background task of a push source: hands the chain to the producers,
/// then places markers while they are idle and ends the stream.
pub(crate) struct PushTask {
    shared: Arc<Shared>,
    waker: Arc<TaskWaker>,
    control: Arc<Control>,
}

impl PushTask {
    /// Installs `chain` into `source` (which must be a [`PushSource`]).
    pub(crate) fn new(
        source: &dyn Source,
        chain: Next,
        reporter: EpochReporter,
        control: Arc<Control>,
        waker: Arc<TaskWaker>,
        start_epoch: u64,
    ) -> Option<PushTask> {
        let push = source.as_any()?.downcast_ref::<PushSource>()?;
        let shared = push.shared.clone();
        // SAFETY: the handoff is created taken and not let go until the
        // chain is installed (here), so this thread is its only holder.
        unsafe {
            *shared.inline.get() = Some(Inline {
                chain,
                reporter,
                control: control.clone(),
                next_epoch: start_epoch,
                rows_in_epoch: 0,
                lanes: Vec::new(),
            });
        }
        Some(PushTask {
            shared,
            waker,
            control,
        })
    }

    /// Whether `source` is a push source.
    pub(crate) fn is_push(source: &dyn Source) -> bool {
        source
            .as_any()
            .is_some_and(|a| a.downcast_ref::<PushSource>().is_some())
    }

    /// What lets the producers in once every task of the query runs.
    pub(crate) fn gate(&self) -> PushGate {
        PushGate {
            shared: self.shared.clone(),
        }
    }

    pub(crate) fn run(self) -> Result<()> {
        let shared = &*self.shared;
        // The newest epoch request this task has passed on, and when its
        // note was left.
        let mut marked = self.control.requested_epoch.load(Ordering::Acquire);
        let mut noted_at: Option<Instant> = None;
        loop {
            if let Some(e) = lock(&shared.failure).take() {
                return Err(e);
            }
            if self.control.aborted() {
                shared.handoff.end();
                return Err(EngineError::Stopped);
            }
            shared.pass_commits(self.control.committed_epoch.load(Ordering::Acquire));
            let last = shared.final_epoch.load(Ordering::Acquire);
            if last > 0 {
                return self.wait_durable(last);
            }
            if shared.handoff.is_ended() {
                // Ended by the final marker (looked at again above) or by a
                // failure (its error, if it has one).
                if shared.final_epoch.load(Ordering::Acquire) == 0 {
                    return Err(lock(&shared.failure).take().unwrap_or(EngineError::Stopped));
                }
                continue;
            }
            // First a note: a producer that is pushing services it between
            // two of its own events. Only if nobody has taken it up after a
            // while (the producers are idle) does this task take the chain.
            let control = &self.control;
            if shared.handoff.has_note() && noted_at.is_some_and(|t| t.elapsed() >= TAKE_OVER) {
                match shared.handoff.take_or_notify() {
                    Take::Taken => {
                        if let Err(e) = shared.service(true) {
                            shared.fail(e);
                        }
                        shared.release(true);
                        noted_at = None;
                    }
                    Take::Busy => {
                        // The holder services the note when it lets go.
                        // Sleep meanwhile rather than spin: a holder that is
                        // off its CPU needs one, and this thread would take it.
                        self.waker.park_unless(
                            || !shared.handoff.has_note() || control.aborted(),
                            TAKE_OVER,
                        );
                    }
                    Take::Ended => {}
                }
                continue;
            }
            if !shared.handoff.has_note() {
                noted_at = None;
            }
            let wanted = control.requested_epoch.load(Ordering::Acquire) > marked
                || control.stop.load(Ordering::Acquire)
                || shared.live.load(Ordering::Acquire) == 0;
            if wanted && noted_at.is_none() {
                marked = control.requested_epoch.load(Ordering::Acquire);
                shared.handoff.note();
                noted_at = Some(Instant::now());
            }
            let timeout = match noted_at {
                Some(t) => TAKE_OVER
                    .saturating_sub(t.elapsed())
                    .max(Duration::from_micros(10)),
                None => MAX_PARK,
            };
            let seen = marked;
            let waiting = noted_at.is_some();
            self.waker.park_unless(
                || {
                    (!waiting
                        && (control.requested_epoch.load(Ordering::Acquire) > seen
                            || control.stop.load(Ordering::Acquire)
                            || shared.live.load(Ordering::Acquire) == 0))
                        || control.aborted()
                        || shared.handoff.is_ended()
                },
                timeout,
            );
        }
    }

    /// The stream has ended with epoch `last`: waits until it is durable and
    /// publishes the final positions.
    fn wait_durable(&self, last: u64) -> Result<()> {
        let control = &self.control;
        while control.committed_epoch.load(Ordering::Acquire) < last {
            if control.aborted() {
                return Err(EngineError::Stopped);
            }
            self.waker.park_unless(
                || control.committed_epoch.load(Ordering::Acquire) >= last || control.aborted(),
                MAX_PARK,
            );
        }
        self.shared
            .pass_commits(control.committed_epoch.load(Ordering::Acquire));
        Ok(())
    }
}
