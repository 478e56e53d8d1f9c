//! What a benchmark run measures and how.
//!
//! Owns [`Scenario`] (which pipeline or reference is measured), [`BenchConfig`]
//! (rate, durations, wait strategy, epoch interval, key count, ring size) and
//! [`Bounds`] (the limits behind `target_met`). Pure data with defaults and
//! parsing; it runs nothing.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use runnel::WaitStrategy;
use serde::{Deserialize, Serialize};

/// One thing measured in a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// (d) The generator's own schedule slip: it runs the schedule and hands
    /// each row to nothing. Latency is how late each row was "sent".
    Slip,
    /// (c) The floor: the generator pushes into a bare `rtrb` ring read by one
    /// spinning consumer thread that records now − scheduled time.
    Floor,
    /// (a) source → filter `value % 2 = 0` → project → null sink.
    Stateless,
    /// (b) source → key = `value % keys` → 1-second tumbling `count(*)` per
    /// key (update mode) → null sink.
    Keyed,
    /// (a) fed by the engine's rate source inside the query's task instead of
    /// a producer thread and a ring: the generator *is* the source, so one
    /// thread spins, not two (compare with `slip`, not `floor`).
    #[serde(rename = "fused-stateless")]
    FusedStateless,
    /// (b) fed by the engine's rate source inside the query's task.
    #[serde(rename = "fused-keyed")]
    FusedKeyed,
    /// (a) with five scalar functions in the projection (one `CASE`, one
    /// `LIKE`, one `coalesce`, one `hour`, one `concat`), fed by the
    /// engine's rate source inside the query's task: compare with
    /// `fused-stateless` in the same run.
    #[serde(rename = "fused-functions")]
    FusedFunctions,
    /// The projection comparison without anything else differing: `source
    /// → filter value % 2 = 0 → select(value, ts, CAST(value AS string) AS
    /// text) → select(value, ts, and five plain column references) → sink`,
    /// fed by the engine's rate source inside the query's task. The same
    /// pipeline as `fused-text-functions` up to its last projection.
    #[serde(rename = "fused-text-plain")]
    FusedTextPlain,
    /// `fused-text-plain` with the five scalar functions (one `CASE`, one
    /// `LIKE`, one `coalesce`, one `hour`, one `concat`) in place of the
    /// five plain references: compare with `fused-text-plain` in the same
    /// run.
    #[serde(rename = "fused-text-functions")]
    FusedTextFunctions,
    /// (a) with a stream-static inner join on a 100,000-row table (every
    /// event finds one row), fed by the engine's rate source inside the
    /// query's task: compare with `fused-stateless` in the same run.
    #[serde(rename = "fused-lookup")]
    FusedLookup,
    /// (a) fed through the embedding API (`PushSource`): the generator thread
    /// pushes, and the push runs the query's first task on that thread (no
    /// ring hop, no arrival hints: compare with `slip`).
    #[serde(rename = "push-stateless")]
    PushStateless,
    /// (b) fed through the embedding API (`PushSource`).
    #[serde(rename = "push-keyed")]
    PushKeyed,
    /// A stream-stream interval join of two streams, each generated at the
    /// run's rate by the engine's rate source inside the join's task (no
    /// thread of their own): `a.value = b.value` (every key distinct, so
    /// each left row meets one right row) and `a.timestamp` within 30 s of
    /// `b.timestamp` (a 1-minute range), both watermarks 10 s behind; inner
    /// join, append mode. One sample per joined row.
    #[serde(rename = "fused-join")]
    FusedJoin,
}

impl Scenario {
    /// Every scenario, in the order a run measures them (references first).
    pub const ALL: [Scenario; 13] = [
        Scenario::Slip,
        Scenario::Floor,
        Scenario::Stateless,
        Scenario::Keyed,
        Scenario::FusedStateless,
        Scenario::FusedKeyed,
        Scenario::FusedFunctions,
        Scenario::FusedTextPlain,
        Scenario::FusedTextFunctions,
        Scenario::FusedLookup,
        Scenario::PushStateless,
        Scenario::PushKeyed,
        Scenario::FusedJoin,
    ];

    /// Whether this scenario runs the engine (rather than being a reference).
    pub fn is_engine(self) -> bool {
        matches!(
            self,
            Scenario::Stateless
                | Scenario::Keyed
                | Scenario::FusedStateless
                | Scenario::FusedKeyed
                | Scenario::FusedFunctions
                | Scenario::FusedTextPlain
                | Scenario::FusedTextFunctions
                | Scenario::FusedLookup
                | Scenario::PushStateless
                | Scenario::PushKeyed
                | Scenario::FusedJoin
        )
    }

    /// Whether the generator pushes through the embedding API's
    /// `PushSource` (the push runs the chain on the generator's thread).
    pub fn is_push(self) -> bool {
        matches!(self, Scenario::PushStateless | Scenario::PushKeyed)
    }

    /// Whether the generator runs inside the query's task (the engine's rate
    /// source) rather than on a producer thread of its own.
    pub fn is_fused(self) -> bool {
        matches!(
            self,
            Scenario::FusedStateless
                | Scenario::FusedKeyed
                | Scenario::FusedFunctions
                | Scenario::FusedTextPlain
                | Scenario::FusedTextFunctions
                | Scenario::FusedLookup
                | Scenario::FusedJoin
        )
    }

    /// The scenario's name as written on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Slip => "slip",
            Scenario::Floor => "floor",
            Scenario::Stateless => "stateless",
            Scenario::Keyed => "keyed",
            Scenario::FusedStateless => "fused-stateless",
            Scenario::FusedKeyed => "fused-keyed",
            Scenario::FusedFunctions => "fused-functions",
            Scenario::FusedTextPlain => "fused-text-plain",
            Scenario::FusedTextFunctions => "fused-text-functions",
            Scenario::FusedLookup => "fused-lookup",
            Scenario::PushStateless => "push-stateless",
            Scenario::PushKeyed => "push-keyed",
            Scenario::FusedJoin => "fused-join",
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scenario {
    type Err = String;
    fn from_str(s: &str) -> Result<Scenario, String> {
        match s.to_ascii_lowercase().as_str() {
            "slip" => Ok(Scenario::Slip),
            "floor" => Ok(Scenario::Floor),
            "stateless" => Ok(Scenario::Stateless),
            "keyed" => Ok(Scenario::Keyed),
            "fused-stateless" => Ok(Scenario::FusedStateless),
            "fused-keyed" => Ok(Scenario::FusedKeyed),
            "fused-functions" => Ok(Scenario::FusedFunctions),
            "fused-text-plain" => Ok(Scenario::FusedTextPlain),
            "fused-text-functions" => Ok(Scenario::FusedTextFunctions),
            "fused-lookup" => Ok(Scenario::FusedLookup),
            "push-stateless" => Ok(Scenario::PushStateless),
            "push-keyed" => Ok(Scenario::PushKeyed),
            "fused-join" => Ok(Scenario::FusedJoin),
            other => Err(format!(
                "unknown scenario '{other}': use stateless, keyed, fused-stateless, \
                 fused-keyed, fused-functions, fused-text-plain, fused-text-functions, \
                 fused-lookup, push-stateless, push-keyed, fused-join, floor, \
                 slip or all"
            )),
        }
    }
}

/// Parses a scenario list: `all`, one name, or names separated by commas.
/// The references (slip and floor) are always measured too, first, so that
/// every figure stands next to the floor of the same run.
pub fn parse_scenarios(s: &str) -> Result<Vec<Scenario>, String> {
    let mut wanted = vec![Scenario::Slip, Scenario::Floor];
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if part.eq_ignore_ascii_case("all") {
            wanted.extend(Scenario::ALL);
        } else {
            wanted.push(part.parse()?);
        }
    }
    let mut out = Vec::new();
    for sc in Scenario::ALL {
        if wanted.contains(&sc) {
            out.push(sc);
        }
    }
    Ok(out)
}

/// The limits behind `target_met`: a scenario met its target rate when the
/// generator kept the schedule and the consumer kept up with it.
///
/// A run is `target_met` when, over the measured window,
/// 1. the generator's lag at its **last** event is at most `final_lag`
///    (a deficit that accumulates, because the generator or the engine is
///    too slow, shows up here; a transient stall that was caught up does not);
/// 2. its **largest** lag is at most `max_lag` (no stall long enough to call
///    the run broken, such as a full ring blocking the generator for long);
/// 3. the **backlog** left in the ring when the schedule ended would take at
///    most `final_lag` to generate at the target rate
///    (`backlog ≤ rate × final_lag`): the consumer was not behind at the end;
/// 4. the consumer did not go away before the schedule ended.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bounds {
    /// Largest lag of the last event, and the time-equivalent of the largest
    /// backlog at the end (default 10 ms).
    pub final_lag: Duration,
    /// Largest lag of any measured event (default 100 ms).
    pub max_lag: Duration,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            final_lag: Duration::from_millis(10),
            max_lag: Duration::from_millis(100),
        }
    }
}

/// The default wait strategy of the harness (measurements in BENCHMARKS.md).
/// The engine's own default (`Adaptive`): spin ~50 µs after the last event,
/// yield until 5 ms have passed, then park. At 100k events/s and more a task
/// is never idle long enough to back off; at low rates it keeps a woken-up
/// task from paying a wake-up per event, and an idle query stops using CPU
/// 5 ms after its last event.
pub const DEFAULT_WAIT: WaitStrategy = WaitStrategy::Adaptive;

/// One open-loop run's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchConfig {
    /// What to measure (slip and floor are always included by
    /// [`parse_scenarios`]; a hand-built list is taken as given).
    pub scenarios: Vec<Scenario>,
    /// Events per second the generator schedules.
    pub rate: u64,
    /// Measured time after the warm-up.
    pub duration: Duration,
    /// Time at the start whose events are excluded from every figure
    /// (default 2 s).
    pub warmup: Duration,
    /// How the engine's idle tasks wait.
    #[serde(with = "wait_serde")]
    pub wait: WaitStrategy,
    /// Time between epoch markers (default 100 ms, the engine's default).
    pub epoch_interval: Duration,
    /// Distinct keys of the keyed scenario (default 10,000).
    pub keys: u64,
    /// Slots of the source ring, and of the floor's ring (default 65,536,
    /// the in-memory source's default).
    pub ring_capacity: usize,
    /// The limits behind `target_met`.
    pub bounds: Bounds,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            scenarios: Scenario::ALL.to_vec(),
            rate: 100_000,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            wait: DEFAULT_WAIT,
            epoch_interval: Duration::from_millis(100),
            keys: 10_000,
            ring_capacity: 1 << 16,
            bounds: Bounds::default(),
        }
    }
}

impl BenchConfig {
    /// Checks the settings for values that cannot run.
    pub fn validate(&self) -> Result<(), String> {
        if self.rate == 0 {
            return Err("the rate must be at least 1 event/s".into());
        }
        if self.rate > 1_000_000_000 {
            return Err("the rate must be at most 10^9 events/s".into());
        }
        if self.duration.is_zero() {
            return Err("the measured duration must be positive".into());
        }
        if self.keys == 0 {
            return Err("the keyed scenario needs at least one key".into());
        }
        if self.ring_capacity < 2 {
            return Err("the ring needs at least 2 slots".into());
        }
        if self.epoch_interval.is_zero() {
            return Err("the epoch interval must be positive".into());
        }
        Ok(())
    }
}

/// Serialises a [`WaitStrategy`] as its command-line name.
pub(crate) mod wait_serde {
    use runnel::WaitStrategy;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(w: &WaitStrategy, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&w.to_string())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<WaitStrategy, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_lists_always_carry_the_references() {
        assert_eq!(
            parse_scenarios("stateless").unwrap(),
            vec![Scenario::Slip, Scenario::Floor, Scenario::Stateless]
        );
        assert_eq!(parse_scenarios("all").unwrap(), Scenario::ALL.to_vec());
        assert_eq!(
            parse_scenarios("keyed,floor").unwrap(),
            vec![Scenario::Slip, Scenario::Floor, Scenario::Keyed]
        );
        assert!(parse_scenarios("nope").is_err());
    }

    #[test]
    fn defaults_are_valid() {
        assert!(BenchConfig::default().validate().is_ok());
        let bad = BenchConfig {
            rate: 0,
            ..BenchConfig::default()
        };
        assert!(bad.validate().is_err());
    }
}
