//! The fill level of one ring between two tasks, as the live view shows it
//! (backpressure at a glance).
//!
//! Owns [`RingGauge`]: written by the ring's two ends off the per-event path
//! (the consumer samples how many messages wait behind each epoch marker it
//! takes; the producer counts the sends that found the ring full, which is
//! the path where it waits anyway), read by anyone at any time. It must not
//! be touched once per event.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use serde::Serialize;

/// One ring's fill, shared between its two ends and the readers.
#[derive(Debug)]
pub struct RingGauge {
    from: usize,
    to: usize,
    capacity: usize,
    /// Messages waiting when the consumer took the last marker.
    waiting: AtomicUsize,
    /// The most that waited at any marker of the run.
    peak: AtomicUsize,
    /// Markers taken (samples made).
    samples: AtomicU64,
    /// Sends that found the ring full and had to wait.
    full_waits: AtomicU64,
}

impl RingGauge {
    /// A gauge of the ring of `capacity` messages from task `from` to task
    /// `to`.
    pub fn new(from: usize, to: usize, capacity: usize) -> RingGauge {
        RingGauge {
            from,
            to,
            capacity,
            waiting: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            samples: AtomicU64::new(0),
            full_waits: AtomicU64::new(0),
        }
    }

    /// The consumer took a marker with `waiting` messages behind it.
    #[inline]
    pub fn sample(&self, waiting: usize) {
        self.waiting.store(waiting, Ordering::Relaxed);
        self.peak.fetch_max(waiting, Ordering::Relaxed);
        self.samples.fetch_add(1, Ordering::Relaxed);
    }

    /// The producer found the ring full (once per send that waited).
    #[inline]
    pub fn full(&self) {
        self.full_waits.fetch_add(1, Ordering::Relaxed);
    }

    /// What the gauge holds now.
    pub fn read(&self) -> RingFill {
        let waiting = self.waiting.load(Ordering::Relaxed);
        RingFill {
            from: self.from,
            to: self.to,
            capacity: self.capacity,
            waiting,
            fill_ratio: waiting as f64 / self.capacity.max(1) as f64,
            peak: self.peak.load(Ordering::Relaxed),
            samples: self.samples.load(Ordering::Relaxed),
            full_waits: self.full_waits.load(Ordering::Relaxed),
        }
    }
}

/// A reading of a [`RingGauge`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RingFill {
    /// The producing task.
    pub from: usize,
    /// The consuming task.
    pub to: usize,
    /// Messages the ring holds at most.
    pub capacity: usize,
    /// Messages waiting behind the last epoch marker the consumer took.
    pub waiting: usize,
    /// `waiting / capacity`.
    pub fill_ratio: f64,
    /// The most that waited behind any marker of the run.
    pub peak: usize,
    /// Markers sampled.
    pub samples: u64,
    /// Sends that found the ring full and waited (backpressure).
    pub full_waits: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gauge_keeps_the_last_sample_the_peak_and_the_full_waits() {
        let g = RingGauge::new(0, 1, 8);
        g.sample(6);
        g.sample(2);
        g.full();
        let r = g.read();
        assert_eq!((r.from, r.to, r.capacity), (0, 1, 8));
        assert_eq!((r.waiting, r.peak, r.samples, r.full_waits), (2, 6, 2, 1));
        assert!((r.fill_ratio - 0.25).abs() < 1e-9);
    }
}
