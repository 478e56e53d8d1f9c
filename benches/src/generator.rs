//! The open-loop generator: events on a fixed schedule, whatever the consumer does.
//!
//! Owns [`Schedule`] (event *i* is due at `start + i / rate`; its row carries
//! `value = i` and `ts` = the scheduled wall-clock time), the [`Target`] a
//! generator pushes into (the engine's source, the floor's bare ring, or
//! nothing) and [`run_open_loop`], the loop itself.
//!
//! The loop never skips an event and never slows the schedule: it spins until
//! an event is due, pushes it with its **scheduled** time as ingest time, and
//! when it is late it pushes at once. When the target's ring is full it
//! retries (spin, then yield) and the ingest time stays the scheduled one, so
//! an engine that falls behind shows up as latency instead of hiding it
//! (no coordinated omission). For every measured event it records its lag:
//! how long after its scheduled time the push completed.

use std::hint::spin_loop;
use std::thread;
use std::time::Duration;

use hdrhistogram::Histogram;
use runnel::clock::{now_ns, wall_now_us};
use runnel::{Row, Value};

use crate::stats::{new_histogram, record};

/// When each event of a run is due, in [`runnel::clock::now_ns`] time.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    /// When event 0 is due.
    pub start_ns: u64,
    /// Events per second.
    pub rate: u64,
    /// Events in the whole run (warm-up included).
    pub total: u64,
    /// Events of the warm-up: events `0..warmup_events` are excluded from
    /// every figure.
    pub warmup_events: u64,
    period_ps: u64,
    wall: WallAnchor,
}

/// A pairing of the monotonic clock with the wall clock, taken once, so that
/// a [`now_ns`] time can be turned into a timestamp without a clock read.
#[derive(Clone, Copy, Debug)]
pub struct WallAnchor {
    mono_ns: u64,
    wall_us: i64,
}

impl WallAnchor {
    /// Reads both clocks now.
    pub fn now() -> WallAnchor {
        WallAnchor {
            wall_us: wall_now_us(),
            mono_ns: now_ns(),
        }
    }

    /// The wall-clock time (µs since the Unix epoch) of a [`now_ns`] time.
    #[inline]
    pub fn wall_us(&self, mono_ns: u64) -> i64 {
        self.wall_us + (mono_ns as i64 - self.mono_ns as i64) / 1000
    }
}

impl Schedule {
    /// A schedule of `rate` events per second for `warmup + duration`,
    /// starting `lead` from now (time for the consumer's threads to start).
    pub fn new(rate: u64, warmup: Duration, duration: Duration, lead: Duration) -> Schedule {
        let rate = rate.max(1);
        let events_in = |d: Duration| (d.as_secs_f64() * rate as f64).round() as u64;
        let warmup_events = events_in(warmup);
        let wall = WallAnchor::now();
        Schedule {
            start_ns: wall.mono_ns + lead.as_nanos() as u64,
            rate,
            total: warmup_events + events_in(duration).max(1),
            warmup_events,
            period_ps: 1_000_000_000_000 / rate,
            wall,
        }
    }

    /// When event `i` is due.
    #[inline]
    pub fn at(&self, i: u64) -> u64 {
        self.start_ns + i * self.period_ps / 1000
    }

    /// When the first measured event is due (the end of the warm-up).
    pub fn measure_start_ns(&self) -> u64 {
        self.at(self.warmup_events)
    }

    /// When the last event is due.
    pub fn last_ns(&self) -> u64 {
        self.at(self.total.saturating_sub(1))
    }

    /// The wall-clock time (µs since the Unix epoch) of a [`now_ns`] time.
    #[inline]
    pub fn wall_us(&self, mono_ns: u64) -> i64 {
        self.wall.wall_us(mono_ns)
    }
}

/// The row of event `seq`: `(value BIGINT = seq, ts TIMESTAMP = ts_us)`.
/// Two numbers, stored inline: building it never allocates.
#[inline]
pub fn event_row(seq: u64, ts_us: i64) -> Row {
    let mut row = Row::new();
    row.push(Value::Int64(seq as i64));
    row.push(Value::Timestamp(ts_us));
    row
}

/// The schema of [`event_row`].
pub fn event_schema() -> runnel::SchemaRef {
    runnel::schema(&[
        ("value", runnel::DataType::Int64),
        ("ts", runnel::timestamp_type()),
    ])
}

/// What a push into a [`Target`] did.
#[derive(Debug)]
pub enum Offer {
    /// The row was taken.
    Accepted,
    /// The ring is full: the row is handed back, to be offered again.
    Full(Row),
    /// The consumer is gone; the generator stops.
    Closed,
}

/// Where a generator pushes its rows.
pub trait Target {
    /// Offers one row due at `scheduled_ns` (which is also its ingest time).
    fn offer(&mut self, row: Row, scheduled_ns: u64) -> Offer;

    /// Rows pushed but not yet taken by the consumer.
    fn backlog(&self) -> u64 {
        0
    }
}

/// What a generator saw during one run.
#[derive(Clone, Debug)]
pub struct GeneratorReport {
    /// Events pushed (warm-up included).
    pub events: u64,
    /// Events pushed after the warm-up.
    pub measured_events: u64,
    /// Lag (ns) of every measured event: push completed − scheduled time.
    pub lag: Histogram<u64>,
    /// The largest lag of a measured event (ns).
    pub max_lag_ns: u64,
    /// The lag of the last event (ns).
    pub final_lag_ns: u64,
    /// When the first measured event was due.
    pub measure_start_ns: u64,
    /// When the last push completed.
    pub last_push_ns: u64,
    /// Events that found the ring full at least once (backpressure).
    pub full_events: u64,
    /// Rows still in the ring when the schedule ended.
    pub backlog_at_end: u64,
    /// The consumer went away before the schedule ended.
    pub closed_early: bool,
}

impl GeneratorReport {
    /// Measured events per second of wall time, from when the first measured
    /// event was due to when the last push completed.
    pub fn achieved_rate(&self) -> f64 {
        let secs = self.last_push_ns.saturating_sub(self.measure_start_ns) as f64 / 1e9;
        if secs <= 0.0 {
            0.0
        } else {
            self.measured_events.saturating_sub(1) as f64 / secs
        }
    }
}

/// Runs `schedule` into `target` on the calling thread (which spins for the
/// whole run) and reports what it saw.
pub fn run_open_loop<T: Target + ?Sized>(target: &mut T, schedule: &Schedule) -> GeneratorReport {
    let mut lag = new_histogram();
    let mut max_lag_ns = 0u64;
    let mut final_lag_ns = 0u64;
    let mut last_push_ns = 0u64;
    let mut full_events = 0u64;
    let mut events = 0u64;
    let mut closed_early = false;
    'events: for i in 0..schedule.total {
        let due = schedule.at(i);
        while now_ns() < due {
            spin_loop();
        }
        let mut row = event_row(i, schedule.wall_us(due));
        let mut tries = 0u32;
        loop {
            match target.offer(row, due) {
                Offer::Accepted => break,
                Offer::Full(back) => {
                    row = back;
                    if tries == 0 {
                        full_events += 1;
                    }
                    tries = tries.saturating_add(1);
                    if tries < 64 {
                        spin_loop();
                    } else {
                        thread::yield_now();
                    }
                }
                Offer::Closed => {
                    closed_early = true;
                    break 'events;
                }
            }
        }
        let done = now_ns();
        let l = done.saturating_sub(due);
        if i >= schedule.warmup_events {
            record(&mut lag, l);
            max_lag_ns = max_lag_ns.max(l);
        }
        final_lag_ns = l;
        last_push_ns = done;
        events += 1;
    }
    GeneratorReport {
        events,
        measured_events: events.saturating_sub(schedule.warmup_events),
        lag,
        max_lag_ns,
        final_lag_ns,
        measure_start_ns: schedule.measure_start_ns(),
        last_push_ns,
        full_events,
        backlog_at_end: target.backlog(),
        closed_early,
    }
}

/// Runs `schedule` into `target` on a new thread named
/// `runnel-bench-generator`; the thread hands the target back when done (a
/// producer handle that is dropped then ends the stream).
pub fn spawn_generator<T: Target + Send + 'static>(
    mut target: T,
    schedule: Schedule,
) -> std::io::Result<thread::JoinHandle<(GeneratorReport, T)>> {
    thread::Builder::new()
        .name("runnel-bench-generator".into())
        .spawn(move || {
            let report = run_open_loop(&mut target, &schedule);
            (report, target)
        })
}

/// Sleeps the calling thread until [`now_ns`] reaches `at_ns` (coarsely: for
/// harness bookkeeping, never on a measured path).
pub fn sleep_until(at_ns: u64) {
    let now = now_ns();
    if at_ns > now {
        thread::sleep(Duration::from_nanos(at_ns - now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Collect(Vec<(i64, u64)>);
    impl Target for Collect {
        fn offer(&mut self, row: Row, scheduled_ns: u64) -> Offer {
            self.0.push((row[0].as_i64().unwrap(), scheduled_ns));
            Offer::Accepted
        }
    }

    #[test]
    fn schedule_is_evenly_spaced_and_counts_warmup() {
        let s = Schedule::new(
            1_000_000,
            Duration::from_millis(2),
            Duration::from_millis(3),
            Duration::ZERO,
        );
        assert_eq!(s.warmup_events, 2_000);
        assert_eq!(s.total, 5_000);
        assert_eq!(s.at(1) - s.at(0), 1_000);
        assert_eq!(s.measure_start_ns(), s.start_ns + 2_000_000);
    }

    #[test]
    fn every_event_is_pushed_in_order_with_its_scheduled_time() {
        let s = Schedule::new(
            200_000,
            Duration::from_millis(1),
            Duration::from_millis(4),
            Duration::ZERO,
        );
        let mut t = Collect(Vec::new());
        let r = run_open_loop(&mut t, &s);
        assert_eq!(r.events, s.total);
        assert_eq!(r.measured_events, s.total - s.warmup_events);
        assert_eq!(r.lag.len(), r.measured_events);
        for (i, (seq, at)) in t.0.iter().enumerate() {
            assert_eq!(*seq, i as i64);
            assert_eq!(*at, s.at(i as u64));
        }
    }

    /// A full ring never drops or reschedules an event: the row is retried
    /// and keeps its scheduled time, and the wait shows up as lag.
    #[test]
    fn a_full_target_delays_but_never_skips() {
        struct Stubborn {
            refusals: u32,
            got: Vec<u64>,
        }
        impl Target for Stubborn {
            fn offer(&mut self, row: Row, scheduled_ns: u64) -> Offer {
                if self.refusals > 0 {
                    self.refusals -= 1;
                    return Offer::Full(row);
                }
                self.got.push(scheduled_ns);
                Offer::Accepted
            }
        }
        let s = Schedule::new(
            100_000,
            Duration::ZERO,
            Duration::from_millis(1),
            Duration::ZERO,
        );
        let mut t = Stubborn {
            refusals: 10_000,
            got: Vec::new(),
        };
        let r = run_open_loop(&mut t, &s);
        assert_eq!(t.got.len() as u64, s.total);
        assert_eq!(t.got[0], s.at(0));
        assert_eq!(r.full_events, 1);
        assert!(r.max_lag_ns > 0);
    }
}
