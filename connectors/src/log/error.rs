//! The error type of the log storage layer.
//!
//! Owns [`LogError`] and the helper that attaches a path to an
//! `std::io::Error`. Must not contain storage logic: every error names the
//! file or folder it is about, so callers never see a bare io error.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Result alias of the log module.
pub type Result<T, E = LogError> = std::result::Result<T, E>;

/// An error of the log storage layer. Every variant carries the path of the
/// file or folder concerned ([`LogError::path`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum LogError {
    /// An I/O operation failed.
    Io {
        /// File or folder the operation was about.
        path: PathBuf,
        /// What was being done, e.g. `"open"`, `"read"`, `"write"`.
        op: &'static str,
        /// The underlying error.
        source: io::Error,
    },
    /// Log data on disk is invalid: bad CRC, impossible lengths, offsets out
    /// of sequence, a truncated sealed segment, a missing segment.
    Corrupt {
        /// The segment file (or partition folder) holding the bad data.
        path: PathBuf,
        /// Byte position of the bad record in that file (0 for folders).
        position: u64,
        /// Human-readable description of what is wrong.
        reason: String,
    },
    /// The topic's layout or `topic.json` is invalid or of an unsupported
    /// format version.
    InvalidTopic {
        /// The topic folder or metadata file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// There is no topic at this path (no `topic.json`).
    NotFound {
        /// The topic folder that was expected.
        path: PathBuf,
    },
    /// A topic already exists at this path.
    AlreadyExists {
        /// The existing topic folder.
        path: PathBuf,
    },
    /// Another producer holds the topic's write lock.
    Locked {
        /// The lock file.
        path: PathBuf,
        /// What the lock file says about its holder (e.g. `"pid 1234"`),
        /// when readable.
        holder: Option<String>,
    },
    /// An argument was invalid: partition number, configuration value,
    /// topic name, a record larger than a segment.
    InvalidArgument {
        /// The topic or partition the call was about.
        path: PathBuf,
        /// What is wrong with the argument.
        reason: String,
    },
    /// A seek target outside the partition's current offsets.
    OffsetOutOfRange {
        /// The partition folder.
        path: PathBuf,
        /// The requested offset.
        offset: u64,
        /// First offset present in the partition.
        start: u64,
        /// Next offset to be written (seeking here is allowed).
        end: u64,
    },
    /// A write of this producer failed earlier, so the partition's files may
    /// end in a partial record. Drop the producer and open a new one: its
    /// recovery truncates the partial data.
    WriterFailed {
        /// The active segment file of the failed partition.
        path: PathBuf,
    },
}

impl LogError {
    /// The file or folder this error is about.
    pub fn path(&self) -> &Path {
        match self {
            LogError::Io { path, .. }
            | LogError::Corrupt { path, .. }
            | LogError::InvalidTopic { path, .. }
            | LogError::NotFound { path }
            | LogError::AlreadyExists { path }
            | LogError::Locked { path, .. }
            | LogError::InvalidArgument { path, .. }
            | LogError::OffsetOutOfRange { path, .. }
            | LogError::WriterFailed { path } => path,
        }
    }

    /// Whether this error reports invalid log data on disk.
    pub fn is_corrupt(&self) -> bool {
        matches!(self, LogError::Corrupt { .. })
    }
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogError::Io { path, op, source } => {
                write!(f, "cannot {op} {}: {source}", path.display())
            }
            LogError::Corrupt {
                path,
                position,
                reason,
            } => write!(
                f,
                "corrupt log data in {} at byte {position}: {reason}",
                path.display()
            ),
            LogError::InvalidTopic { path, reason } => {
                write!(f, "invalid log topic at {}: {reason}", path.display())
            }
            LogError::NotFound { path } => {
                write!(f, "no log topic at {} (no topic.json)", path.display())
            }
            LogError::AlreadyExists { path } => {
                write!(f, "a log topic already exists at {}", path.display())
            }
            LogError::Locked { path, holder } => {
                write!(
                    f,
                    "another producer is writing to this topic (lock {} is held",
                    path.display()
                )?;
                if let Some(holder) = holder {
                    write!(f, " by {holder}")?;
                }
                f.write_str("); only one producer per topic may write at a time")
            }
            LogError::InvalidArgument { path, reason } => {
                write!(f, "{}: {reason}", path.display())
            }
            LogError::OffsetOutOfRange {
                path,
                offset,
                start,
                end,
            } => write!(
                f,
                "{}: offset {offset} is outside the log (valid offsets are {start}..={end})",
                path.display()
            ),
            LogError::WriterFailed { path } => write!(
                f,
                "{}: an earlier write failed; drop this producer and open a new one to recover",
                path.display()
            ),
        }
    }
}

impl std::error::Error for LogError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LogError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Returns a closure turning an io error into [`LogError::Io`] for `path`,
/// for use with `map_err`.
pub(crate) fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> LogError + 'a {
    move |source| LogError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}
