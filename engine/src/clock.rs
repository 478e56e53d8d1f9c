//! The engine's clocks.
//!
//! Owns the monotonic nanosecond clock every ingest time and latency figure is
//! measured on, and the wall clock used for progress timestamps. Reading either
//! is a vDSO call, not a syscall, so it is fine on the hot path.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

fn anchor() -> Instant {
    static ANCHOR: OnceLock<Instant> = OnceLock::new();
    *ANCHOR.get_or_init(Instant::now)
}

/// Monotonic nanoseconds since an arbitrary, process-wide origin.
///
/// Ingest times (`Event::ingest_ns`) and a generator's scheduled
/// times must be taken on this clock so that sinks can subtract them.
#[inline]
pub fn now_ns() -> u64 {
    anchor().elapsed().as_nanos() as u64
}

/// Wall-clock microseconds since the Unix epoch.
pub fn wall_now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn wall_now_ms() -> i64 {
    wall_now_us() / 1000
}
