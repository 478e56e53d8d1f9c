//! The machine's floor, measured with the same generator as the engine.
//!
//! Owns the two reference scenarios every engine figure is quoted next to:
//! - **slip** ([`run_slip`]): the generator runs its schedule and hands each
//!   row to nothing; its lag is the thread's own schedule slip (clock reads,
//!   preemption by the hypervisor or other threads);
//! - **floor** ([`run_floor`]): the generator pushes each row, with its
//!   scheduled time, into a bare `rtrb` ring of the same message type and
//!   size as the in-memory source's; one consumer thread spins on the ring and
//!   records now − scheduled time. That is the least any engine fed through
//!   a ring by another thread can do: one hop between two spinning threads.
//!
//! Neither touches the engine.

use std::hint::spin_loop;
use std::thread;
use std::time::Duration;

use runnel::clock::now_ns;
use runnel::Row;

use crate::config::{BenchConfig, Scenario};
use crate::generator::{spawn_generator, Offer, Schedule, Target};
use crate::report::ScenarioResult;
use crate::stats::{new_histogram, record};
use crate::BenchError;

/// Time between building a schedule and its first event, for the threads of
/// the run to start.
pub(crate) const LEAD: Duration = Duration::from_millis(20);

/// A target that takes every row and does nothing with it.
struct Discard;

impl Target for Discard {
    #[inline]
    fn offer(&mut self, row: Row, _scheduled_ns: u64) -> Offer {
        std::hint::black_box(row);
        Offer::Accepted
    }
}

/// (d) The generator's own schedule slip, with no consumer at all.
pub fn run_slip(config: &BenchConfig) -> Result<ScenarioResult, BenchError> {
    let schedule = Schedule::new(config.rate, config.warmup, config.duration, LEAD);
    let generator = spawn_generator(Discard, schedule).map_err(BenchError::thread)?;
    let (report, _) = generator
        .join()
        .map_err(|_| BenchError::Thread("the generator panicked".into()))?;
    Ok(ScenarioResult::new(
        Scenario::Slip,
        config,
        &report.lag,
        &report,
        report.events,
    ))
}

/// The producing end of the floor's bare ring.
struct BareRing {
    tx: rtrb::Producer<(Row, u64)>,
    capacity: usize,
}

impl Target for BareRing {
    #[inline]
    fn offer(&mut self, row: Row, scheduled_ns: u64) -> Offer {
        match self.tx.push((row, scheduled_ns)) {
            Ok(()) => Offer::Accepted,
            Err(rtrb::PushError::Full((row, _))) => {
                if self.tx.is_abandoned() {
                    Offer::Closed
                } else {
                    Offer::Full(row)
                }
            }
        }
    }

    fn backlog(&self) -> u64 {
        (self.capacity - self.tx.slots()) as u64
    }
}

/// (c) The floor: generator → bare `rtrb` ring → one spinning consumer that
/// records now − scheduled time for every row due after the warm-up.
pub fn run_floor(config: &BenchConfig) -> Result<ScenarioResult, BenchError> {
    let (tx, mut rx) = rtrb::RingBuffer::<(Row, u64)>::new(config.ring_capacity);
    let schedule = Schedule::new(config.rate, config.warmup, config.duration, LEAD);
    let measure_from = schedule.measure_start_ns();
    let consumer = thread::Builder::new()
        .name("runnel-bench-floor".into())
        .spawn(move || {
            let mut hist = new_histogram();
            let mut rows = 0u64;
            loop {
                match rx.pop() {
                    Ok((row, due)) => {
                        let now = now_ns();
                        if due >= measure_from {
                            record(&mut hist, now.saturating_sub(due));
                        }
                        std::hint::black_box(row);
                        rows += 1;
                    }
                    Err(_) => {
                        // Abandoned first, then empty: nothing more can come.
                        if rx.is_abandoned() && rx.is_empty() {
                            break;
                        }
                        spin_loop();
                    }
                }
            }
            (hist, rows)
        })
        .map_err(BenchError::thread)?;
    let target = BareRing {
        tx,
        capacity: config.ring_capacity,
    };
    let generator = spawn_generator(target, schedule).map_err(BenchError::thread)?;
    let (report, target) = generator
        .join()
        .map_err(|_| BenchError::Thread("the generator panicked".into()))?;
    drop(target);
    let (hist, rows) = consumer
        .join()
        .map_err(|_| BenchError::Thread("the floor's consumer panicked".into()))?;
    Ok(ScenarioResult::new(
        Scenario::Floor,
        config,
        &hist,
        &report,
        rows,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> BenchConfig {
        BenchConfig {
            rate: 50_000,
            warmup: Duration::from_millis(20),
            duration: Duration::from_millis(100),
            ..BenchConfig::default()
        }
    }

    #[test]
    fn floor_sees_every_row() {
        let r = run_floor(&tiny()).unwrap();
        assert_eq!(r.rows_out, 6_000);
        assert_eq!(r.events, 5_000);
        assert_eq!(r.latency.count, 5_000);
        assert!(r.latency.p50 > 0.0);
    }

    #[test]
    fn slip_measures_the_generator_alone() {
        let r = run_slip(&tiny()).unwrap();
        assert_eq!(r.events, 5_000);
        assert_eq!(r.latency, r.generator_lag);
        assert_eq!(r.backlog_at_end, 0);
    }
}
