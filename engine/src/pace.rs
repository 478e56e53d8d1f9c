//! Background work in short slices.
//!
//! On a machine with as many busy threads as CPUs (two vCPUs, two threads
//! spinning on events), a background thread that wakes up takes a CPU from
//! one of them for as long as it runs. A continuous query's checkpoint work
//! (applying a delta to the shadow state, encoding it) is a few milliseconds
//! an epoch for ten thousand changed groups; run in one go, every event of
//! the thread it displaced waits that long. A thread that turns pacing on
//! ([`Pacing::enable`]) and calls [`point`] inside its long loops runs at
//! most one slice before it sleeps for a pause, handing the CPU back: the
//! same work, spread out, so no event waits much more than a slice for it.
//! The pauses of one burst of work (from one [`begin`] to the next) add up
//! to at most a budget, so a large delta makes durability later by a bounded
//! amount and the thread never falls behind for good.
//!
//! Owns the per-thread slice, pause and budget and the sleep; it must not
//! decide what work is paced (the callers place their points) and must cost
//! no more than a thread-local countdown on a thread that has not enabled it
//! (every other thread, and every hot path): a point decrements a per-thread
//! number, and only every sixteenth one reads the pacing state.

use std::cell::Cell;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::clock::now_ns;

/// How a thread's background work is spread out: at most `slice` of work,
/// then a sleep of `pause`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pacing {
    /// The longest a paced thread runs before it sleeps.
    pub slice: Duration,
    /// How long it sleeps then.
    pub pause: Duration,
}

impl Pacing {
    /// 25 µs of work, then 100 µs asleep: the checkpoint thread takes at
    /// most a fifth of a CPU while it paces, and no event waits much more
    /// than 25 µs for it (measured in BENCHMARKS.md, "Checkpoint work in
    /// slices").
    pub const DEFAULT: Pacing = Pacing {
        slice: Duration::from_micros(25),
        pause: Duration::from_micros(100),
    };

    /// Turns pacing on for the calling thread; the pauses of one burst of
    /// work add up to at most `budget` (the rest of a larger burst runs in
    /// one go).
    pub fn enable(self, budget: Duration) {
        STATE.with(|s| {
            s.set(State {
                slice_ns: (self.slice.as_nanos() as u64).max(1),
                pause: self.pause,
                budget_ns: budget.as_nanos() as u64,
                since_ns: now_ns(),
                paused_ns: 0,
                pauses: s.get().pauses,
            })
        });
    }
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing::DEFAULT
    }
}

impl fmt::Display for Pacing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.slice.as_micros(), self.pause.as_micros())
    }
}

/// Parses `SLICE_US:PAUSE_US`, e.g. `25:100`.
impl FromStr for Pacing {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}` is not SLICE_US:PAUSE_US (e.g. 25:100) or off");
        let (slice, pause) = s.split_once(':').ok_or_else(bad)?;
        let micros = |t: &str| t.trim().parse::<u64>().map_err(|_| bad());
        let (slice, pause) = (micros(slice)?, micros(pause)?);
        if slice == 0 {
            return Err(format!("`{s}`: the slice must be at least 1 µs"));
        }
        Ok(Pacing {
            slice: Duration::from_micros(slice),
            pause: Duration::from_micros(pause),
        })
    }
}

#[derive(Clone, Copy)]
struct State {
    /// 0: pacing is off on this thread.
    slice_ns: u64,
    pause: Duration,
    budget_ns: u64,
    /// When the current slice began.
    since_ns: u64,
    /// Time slept in the current burst.
    paused_ns: u64,
    /// Pauses taken on this thread, ever.
    pauses: u64,
}

thread_local! {
    static STATE: Cell<State> = const {
        Cell::new(State {
            slice_ns: 0,
            pause: Duration::ZERO,
            budget_ns: 0,
            since_ns: 0,
            paused_ns: 0,
            pauses: 0,
        })
    };
    /// Points left before the next look at the clock: kept apart from
    /// [`STATE`] so that a point only decrements it.
    static COUNTDOWN: Cell<u32> = const { Cell::new(POINTS_PER_LOOK) };
}

/// Points between two looks at the clock: a point is a few instructions,
/// a look at the clock some twenty nanoseconds.
const POINTS_PER_LOOK: u32 = 16;

/// Marks a place where a paced thread may sleep: if its slice is used up
/// (and its burst's budget is not), it sleeps for the pause and starts a
/// new slice. Does nothing on a thread that has not enabled pacing.
#[inline]
pub fn point() {
    let look = COUNTDOWN.with(|c| match c.get() {
        0 | 1 => {
            c.set(POINTS_PER_LOOK);
            true
        }
        n => {
            c.set(n - 1);
            false
        }
    });
    if look {
        look_at_clock();
    }
}

/// The slow part of [`point`], once every [`POINTS_PER_LOOK`] points.
#[inline(never)]
fn look_at_clock() {
    STATE.with(|s| {
        let mut st = s.get();
        if st.slice_ns == 0 {
            return;
        }
        let now = now_ns();
        if now.saturating_sub(st.since_ns) >= st.slice_ns && st.paused_ns < st.budget_ns {
            std::thread::sleep(st.pause);
            st.since_ns = now_ns();
            st.paused_ns += st.since_ns - now;
            st.pauses += 1;
            s.set(st);
        }
    });
}

/// Starts a new burst of work on a paced thread (it was woken, after
/// waiting: that time is not its work), with a fresh slice and budget.
#[inline]
pub fn begin() {
    STATE.with(|s| {
        let mut st = s.get();
        if st.slice_ns != 0 {
            st.since_ns = now_ns();
            st.paused_ns = 0;
            s.set(st);
        }
    });
}

/// Pauses the calling thread has taken since it started.
pub fn pauses() -> u64 {
    STATE.with(|s| s.get().pauses)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// Runs `points` points, each after `work` of spinning, on a new thread
    /// paced by `pacing` (if any); returns the pauses it took.
    fn pauses_taken(pacing: Option<(Pacing, Duration)>, points: u32, work: Duration) -> u64 {
        std::thread::spawn(move || {
            if let Some((p, budget)) = pacing {
                p.enable(budget);
                begin();
            }
            for _ in 0..points {
                let until = Instant::now() + work;
                while Instant::now() < until {}
                point();
            }
            pauses()
        })
        .join()
        .unwrap()
    }

    #[test]
    fn an_unpaced_thread_never_pauses() {
        assert_eq!(pauses_taken(None, 2_000, Duration::from_micros(1)), 0);
    }

    #[test]
    fn a_paced_thread_pauses_after_each_slice() {
        let p = Pacing {
            slice: Duration::from_micros(100),
            pause: Duration::from_micros(100),
        };
        // 2 ms of work, a look at the clock every 16 µs: a pause at least
        // every 116 µs of work, so at least 2000 / 116 of them (being
        // descheduled only makes slices end sooner).
        let n = pauses_taken(
            Some((p, Duration::from_secs(10))),
            2_000,
            Duration::from_micros(1),
        );
        assert!(n >= 17, "{n} pauses");
    }

    #[test]
    fn the_pauses_of_a_burst_stay_within_its_budget() {
        let p = Pacing {
            slice: Duration::from_micros(1),
            pause: Duration::from_millis(10),
        };
        // Every look would pause (125 looks); a budget of 20 ms allows two
        // pauses of at least 10 ms each.
        let n = pauses_taken(
            Some((p, Duration::from_millis(20))),
            2_000,
            Duration::from_micros(1),
        );
        assert!((1..=2).contains(&n), "{n} pauses");
    }

    #[test]
    fn pacing_reads_and_prints_slice_and_pause() {
        let p: Pacing = "25:100".parse().unwrap();
        assert_eq!(p, Pacing::DEFAULT);
        assert_eq!(p.to_string(), "25:100");
        for bad in ["25", "a:b", "0:10", "25:"] {
            assert!(bad.parse::<Pacing>().is_err(), "{bad}");
        }
    }
}
