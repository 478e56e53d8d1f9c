//! The producer lock of a topic (`DIR/TOPIC/.lock`).
//!
//! Owns taking and releasing the exclusive OS lock that makes a producer the
//! topic's only writer. It must not touch log data. The lock is an advisory
//! `flock`-style lock on an open file ([`std::fs::File::try_lock`]), so it is
//! released automatically when the holder closes it or dies; the file itself
//! is never deleted (deleting a lock file races with other lockers).

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::error::{io_err, LogError, Result};

/// Name of the lock file inside the topic folder.
pub(crate) const LOCK_FILE: &str = ".lock";

/// A held topic lock; dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct TopicLock {
    _file: File,
}

impl TopicLock {
    /// Takes the lock of the topic at `topic_dir` without waiting.
    pub(crate) fn acquire(topic_dir: &Path) -> Result<TopicLock> {
        let path = topic_dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err("open", &path))?;
        match try_lock(&file) {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(locked(path)),
            Err(TryLockError::Error(e)) => return Err(io_err("lock", &path)(e)),
        }
        // Best effort: record who holds the lock, for error messages.
        let _ = file
            .set_len(0)
            .and_then(|()| write!(file, "pid {}", std::process::id()));
        Ok(TopicLock { _file: file })
    }
}

// `File::try_lock` is stable since Rust 1.89, newer than the workspace's
// declared `rust-version`; the toolchain used to build runnel has it.
#[allow(clippy::incompatible_msrv)]
fn try_lock(file: &File) -> Result<(), TryLockError> {
    file.try_lock()
}

fn locked(path: PathBuf) -> LogError {
    let holder = fs::read_to_string(&path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    LogError::Locked { path, holder }
}
