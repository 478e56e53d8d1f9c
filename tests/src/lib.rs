//! Helpers for runnel's cross-crate integration tests.
//!
//! The tests themselves live beside this crate's manifest
//! (`continuous_recovery.rs`, ...); the `runnel-crash-child` binary is the
//! query they start, kill with SIGKILL and restart.
#![deny(missing_docs)]

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A command that runs the crash tests' child query (`runnel-crash-child`),
/// built beside the test binaries.
pub fn crash_child() -> Command {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test> -> target/<profile>/runnel-crash-child
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory");
    Command::new(dir.join("runnel-crash-child"))
}

/// Starts the child with `start` and SIGKILLs it after a random pause in
/// `pause_ms`, `kills` times, restarting it each time; then lets a last run
/// finish and checks it exits 0. `after_kill` runs after each kill. Returns
/// how many kills landed (a run that finished before its kill ends the loop).
pub fn kill_and_restart(
    rng: &mut Rng,
    kills: usize,
    pause_ms: (u64, u64),
    mut start: impl FnMut() -> Child,
    mut after_kill: impl FnMut(),
) -> usize {
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut done = 0;
    while done < kills {
        let mut child = start();
        std::thread::sleep(Duration::from_millis(rng.range(pause_ms.0, pause_ms.1)));
        match child.try_wait().expect("poll the child") {
            Some(status) => {
                assert!(status.success(), "child failed: {status}");
                return done;
            }
            None => {
                child.kill().expect("SIGKILL the child");
                child.wait().expect("reap the child");
                done += 1;
                after_kill();
            }
        }
        assert!(Instant::now() < deadline, "crash loop took too long");
    }
    // The last run goes to its end; a run that never ends is a failure of
    // its own (a hang), not a reason for the suite to wait forever.
    let mut child = start();
    let hang = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll the child") {
            break status;
        }
        if Instant::now() > hang {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the final run did not end within 300 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "final run failed: {status}");
    done
}

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

/// The rows a rate source had generated at the newest durable epoch in a checkpoint
/// directory, read straight from its manifests.
pub fn durable_rate_offset(checkpoint: &Path) -> Option<u64> {
    let dir = runnel::checkpoint::CheckpointDir::open_existing(checkpoint).ok()??;
    let manifest = dir.latest_manifest().ok()?.0?;
    match manifest.sources.first()?.offset {
        runnel::SourceOffset::Generated { rows, .. } => Some(rows),
        _ => None,
    }
}
