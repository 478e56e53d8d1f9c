//! Helpers for runnel's cross-crate integration tests.
//!
//! The tests themselves live beside this crate's manifest
//! (`continuous_recovery.rs`, ...); the `runnel-crash-child` binary is the
//! query they start, kill with SIGKILL and restart.
#![deny(missing_docs)]

use std::path::Path;

/// A small, seedable pseudo-random generator (xorshift), so kill timings
/// vary from run to run but a failing seed can be replayed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (0 is replaced by a fixed constant).
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// A seed from the `RUNNEL_TEST_SEED` variable, or the clock.
    pub fn from_env() -> Rng {
        let seed = std::env::var("RUNNEL_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        eprintln!("RUNNEL_TEST_SEED={seed}");
        Rng::new(seed)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo).max(1)
    }
}

/// The source offset (`value`) of the newest durable epoch in a checkpoint
/// directory, read straight from its manifests.
pub fn durable_rate_offset(checkpoint: &Path) -> Option<u64> {
    let commits = checkpoint.join("commits");
    let newest = std::fs::read_dir(&commits)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .max()?;
    let text = std::fs::read_to_string(commits.join(newest.to_string())).ok()?;
    let manifest: serde_json::Value = serde_json::from_str(&text).ok()?;
    manifest["sources"][0]["offset"]["value"].as_u64()
}
