//! How a task waits when it has nothing to do, and how it is woken.
//!
//! Owns [`WaitStrategy`] (the per-query policy), [`TaskWaker`] (a task's
//! "sleeping" flag and thread handle) and the idle loop (`Idler`). The
//! wake-up protocol is the classic store-fence-load handshake: the sleeper
//! publishes `sleeping = true`, fences, re-checks its inputs and only then
//! parks; a producer publishes its data, fences, and unparks when it sees the
//! flag. Either the sleeper sees the data or the producer sees the flag, so no
//! wake-up is lost; `park` keeps an unpark token, so an unpark that lands
//! before the park is not lost either.

#[cfg(feature = "loom")]
use loom::sync::atomic::{fence, AtomicBool};
#[cfg(feature = "loom")]
use loom::thread::{self as waker_thread, Thread};
use std::sync::atomic::Ordering;
#[cfg(not(feature = "loom"))]
use std::sync::atomic::{fence, AtomicBool};
use std::sync::OnceLock;
use std::thread;
#[cfg(not(feature = "loom"))]
use std::thread::{self as waker_thread, Thread};
use std::time::Duration;

use crate::clock::now_ns;

/// What a task does when its inputs are empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WaitStrategy {
    /// Spin on the inputs forever: the lowest latency, a full core per task.
    BusySpin,
    /// Spin a while, then `yield_now` between checks: a core stays busy but
    /// other threads get it when they need it.
    SpinYield,
    /// Spin a while (about 50 µs), then park until a producer wakes the task:
    /// no CPU when idle, but every event after a pause pays a wake-up (tens
    /// of µs). For machines with fewer cores than busy tasks.
    Park,
    /// The default, latency first: spin about 50 µs after the last event,
    /// then yield the core between checks until [`ADAPTIVE_YIELD`] has passed
    /// without an event, then park like [`WaitStrategy::Park`]. Events that
    /// come at least every few milliseconds find the task awake; an idle task
    /// stops using CPU after [`ADAPTIVE_YIELD`].
    #[default]
    Adaptive,
}

/// How long an [`WaitStrategy::Adaptive`] task keeps yielding after its last
/// event before it parks.
pub const ADAPTIVE_YIELD: Duration = Duration::from_millis(5);

impl std::str::FromStr for WaitStrategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "spin" | "busy-spin" | "busyspin" => Ok(WaitStrategy::BusySpin),
            "yield" | "spin-yield" | "spinyield" => Ok(WaitStrategy::SpinYield),
            "park" => Ok(WaitStrategy::Park),
            "adaptive" => Ok(WaitStrategy::Adaptive),
            other => Err(format!(
                "unknown wait strategy '{other}': use adaptive, spin, yield or park"
            )),
        }
    }
}

impl std::fmt::Display for WaitStrategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WaitStrategy::BusySpin => "spin",
            WaitStrategy::SpinYield => "yield",
            WaitStrategy::Park => "park",
            WaitStrategy::Adaptive => "adaptive",
        })
    }
}

/// A task's wake-up handle, shared with everything that feeds the task.
#[derive(Debug, Default)]
pub struct TaskWaker {
    thread: OnceLock<Thread>,
    sleeping: AtomicBool,
    /// See [`TaskWaker::awake_for`].
    awake_for: Duration,
}

impl WaitStrategy {
    /// How long a task waiting this way keeps checking its inputs after its
    /// last work before it may sleep until woken.
    pub fn awake_for(self) -> Duration {
        match self {
            WaitStrategy::BusySpin | WaitStrategy::SpinYield => Duration::MAX,
            WaitStrategy::Park => Duration::from_nanos(SPIN_NS),
            WaitStrategy::Adaptive => ADAPTIVE_YIELD,
        }
    }
}

impl TaskWaker {
    /// A waker not yet bound to a thread, for a task that may sleep as soon
    /// as it finds nothing to do.
    pub fn new() -> TaskWaker {
        TaskWaker::default()
    }

    /// A waker for a task that waits with `strategy`.
    pub fn for_strategy(strategy: WaitStrategy) -> TaskWaker {
        TaskWaker {
            awake_for: strategy.awake_for(),
            ..TaskWaker::default()
        }
    }

    /// How long the task keeps polling after its last work before it may
    /// sleep until woken ([`Duration::ZERO`]: at once). A source whose data
    /// arrives with no wake-up (files appended by another process) can
    /// answer `PollStatus::Idle` within this time after its last
    /// row, to be polled again at once, and must announce a bounded sleep
    /// (`PollStatus::IdleUntil`) beyond it.
    pub fn awake_for(&self) -> Duration {
        self.awake_for
    }

    /// Binds the waker to the calling thread (the task's own thread).
    pub(crate) fn bind_current(&self) {
        let _ = self.thread.set(waker_thread::current());
    }

    /// Called by a producer after it published data: wakes the task if it is
    /// parked or about to park. Costs a fence and a load when the task is
    /// awake; no syscall.
    #[inline]
    pub fn wake_if_sleeping(&self) {
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::Relaxed) {
            self.wake();
        }
    }

    /// Wakes the task unconditionally (used for timers and stop requests).
    pub fn wake(&self) {
        self.sleeping.store(false, Ordering::Relaxed);
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }

    /// Parks the calling task unless `has_work` turns true after the
    /// "sleeping" flag is published; sleeps at most `max`.
    pub(crate) fn park_unless(&self, has_work: impl Fn() -> bool, max: Duration) {
        self.sleeping.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if !has_work() {
            // The model checker proves the handshake without the timeout:
            // a lost wake-up would leave the sleeper parked for good.
            #[cfg(feature = "loom")]
            let _ = max;
            #[cfg(feature = "loom")]
            waker_thread::park();
            #[cfg(not(feature = "loom"))]
            waker_thread::park_timeout(max);
        }
        self.sleeping.store(false, Ordering::Relaxed);
    }
}

/// Spin time before a `SpinYield`, `Park` or `Adaptive` task backs off.
const SPIN_NS: u64 = 50_000;

/// The longest a parked task sleeps before looking around again (stop flags,
/// epoch timers). Wake-ups normally come much sooner, from producers.
pub(crate) const MAX_PARK: Duration = Duration::from_millis(20);

/// The idle loop of one task: call [`Idler::idle`] each time a check of the
/// inputs found nothing, [`Idler::reset`] when it found work.
#[derive(Debug)]
pub(crate) struct Idler {
    strategy: WaitStrategy,
    idle_since: Option<u64>,
}

impl Idler {
    pub(crate) fn new(strategy: WaitStrategy) -> Idler {
        Idler {
            strategy,
            idle_since: None,
        }
    }

    #[inline]
    pub(crate) fn reset(&mut self) {
        self.idle_since = None;
    }

    /// One idle step. `wake_at` is a time (in [`now_ns`]) at which work is
    /// known to be due, such as a generator's next row.
    #[inline]
    pub(crate) fn idle(
        &mut self,
        waker: &TaskWaker,
        has_work: impl Fn() -> bool,
        wake_at: Option<u64>,
    ) {
        match self.strategy {
            WaitStrategy::BusySpin => std::hint::spin_loop(),
            strategy => {
                let now = now_ns();
                let since = *self.idle_since.get_or_insert(now);
                if now - since < SPIN_NS {
                    std::hint::spin_loop();
                    return;
                }
                // An adaptive task whose source said when the next row is
                // due sleeps until shortly before, like `Park`; otherwise it
                // yields for a while before parking.
                if strategy == WaitStrategy::SpinYield
                    || (strategy == WaitStrategy::Adaptive
                        && wake_at.is_none()
                        && now - since < ADAPTIVE_YIELD.as_nanos() as u64)
                {
                    thread::yield_now();
                    return;
                }
                let mut max = MAX_PARK;
                if let Some(at) = wake_at {
                    // Wake a little early and spin the rest, to be on time.
                    let until = at.saturating_sub(now).saturating_sub(SPIN_NS);
                    if until == 0 {
                        std::hint::spin_loop();
                        return;
                    }
                    max = max.min(Duration::from_nanos(until));
                }
                waker.park_unless(has_work, max);
            }
        }
    }
}

/// Backs off while an output ring is full (backpressure): spin briefly, then
/// yield, then sleep in short steps, whatever the strategy, so a blocked
/// producer never burns the core its consumer needs.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    step: u32,
}

impl Backoff {
    #[inline]
    pub(crate) fn snooze(&mut self) {
        self.step = self.step.saturating_add(1);
        if self.step < 64 {
            std::hint::spin_loop();
        } else if self.step < 128 {
            thread::yield_now();
        } else {
            thread::sleep(Duration::from_micros(50));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use std::sync::Arc;

    /// A producer much faster than a parking consumer: every item must be
    /// seen, and the consumer must never sleep through available work
    /// (each park is bounded by MAX_PARK, so a lost wake-up shows up as a
    /// run taking far longer than the parks allow).
    #[test]
    fn park_loses_no_wakeup() {
        const N: u64 = 200_000;
        let (mut tx, mut rx) = rtrb::RingBuffer::<u64>::new(64);
        let waker = Arc::new(TaskWaker::new());
        let consumer_waker = waker.clone();
        let seen = Arc::new(AtomicU64::new(0));
        let seen2 = seen.clone();
        let consumer = thread::spawn(move || {
            consumer_waker.bind_current();
            let mut idler = Idler::new(WaitStrategy::Park);
            let mut expected = 0;
            let mut long_parks = 0;
            while expected < N {
                match rx.pop() {
                    Ok(v) => {
                        assert_eq!(v, expected);
                        expected += 1;
                        idler.reset();
                    }
                    Err(_) => {
                        let before = std::time::Instant::now();
                        idler.idle(&consumer_waker, || !rx.is_empty(), None);
                        if before.elapsed() >= MAX_PARK {
                            long_parks += 1;
                        }
                    }
                }
            }
            seen2.store(expected, Ordering::SeqCst);
            long_parks
        });
        for i in 0..N {
            let mut v = i;
            loop {
                match tx.push(v) {
                    Ok(()) => break,
                    Err(rtrb::PushError::Full(back)) => {
                        v = back;
                        thread::yield_now();
                    }
                }
            }
            waker.wake_if_sleeping();
            if i % 10_000 == 0 {
                // Let the consumer fall asleep now and then.
                thread::sleep(Duration::from_micros(300));
            }
        }
        let long_parks = consumer.join().unwrap();
        assert_eq!(seen.load(Ordering::SeqCst), N);
        // A lost wake-up leaves the consumer asleep for the whole MAX_PARK
        // while data waits, and a broken handshake does so again and again;
        // one long park is tolerated for a preemption of the test thread.
        assert!(
            long_parks <= 1,
            "a parked consumer slept through pushed data {long_parks} times"
        );
    }
}

/// Model checks of the wake-up handshake: every interleaving of a producer
/// publishing data and waking the task, against the task checking for work
/// and parking, ends with the task seeing the data (a lost wake-up would
/// park it forever, which the checker reports as a deadlock).
///
/// `cargo test -p runnel-engine --features loom --lib loom`
#[cfg(all(test, feature = "loom"))]
mod loom_tests {
    use super::TaskWaker;
    use loom::sync::atomic::AtomicBool;
    use loom::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    /// A producer hands over one item; the task parks until it sees it.
    #[test]
    fn loom_no_lost_wake_up() {
        loom::model(|| {
            let waker = Arc::new(TaskWaker::new());
            let data = Arc::new(AtomicBool::new(false));
            waker.bind_current();
            let producer = {
                let (waker, data) = (waker.clone(), data.clone());
                loom::thread::spawn(move || {
                    data.store(true, Ordering::Release);
                    waker.wake_if_sleeping();
                })
            };
            while !data.load(Ordering::Acquire) {
                waker.park_unless(|| data.load(Ordering::Acquire), Duration::from_millis(1));
            }
            // Not joined: an unpark token left over from `wake` would trip
            // the checker's join (a limitation of its park model); every
            // spawned thread is run to its end by the model anyway.
            drop(producer);
        });
    }

    /// Two items, each followed by a wake-up: the second is not lost when
    /// the first wake-up found the task awake.
    #[test]
    fn loom_no_lost_wake_up_for_a_second_item() {
        loom::model(|| {
            let waker = Arc::new(TaskWaker::new());
            let items = Arc::new(loom::sync::atomic::AtomicUsize::new(0));
            waker.bind_current();
            let producer = {
                let (waker, items) = (waker.clone(), items.clone());
                loom::thread::spawn(move || {
                    for _ in 0..2 {
                        items.fetch_add(1, Ordering::Release);
                        waker.wake_if_sleeping();
                    }
                })
            };
            let mut seen = 0;
            while seen < 2 {
                let now = items.load(Ordering::Acquire);
                if now > seen {
                    seen = now;
                    continue;
                }
                waker.park_unless(
                    || items.load(Ordering::Acquire) > seen,
                    Duration::from_millis(1),
                );
            }
            // Not joined: an unpark token left over from `wake` would trip
            // the checker's join (a limitation of its park model); every
            // spawned thread is run to its end by the model anyway.
            drop(producer);
        });
    }
}
