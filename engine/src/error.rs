//! The engine's error type.
//!
//! Owns [`EngineError`] and the [`Result`] alias. Every failure a user can see
//! (bad plan, source or sink error, checkpoint I/O, a panic in user code) ends
//! up here with enough context to act on: the file or the part of the query
//! it is about, and the error that caused it, kept whole as the
//! [`std::error::Error::source`] of this one (never flattened to text) so a
//! program can walk the chain or downcast it. The message of each variant
//! includes its cause's, so printing the top error alone says everything.
//! This module must not log or retry.

use std::path::PathBuf;
use std::sync::Arc;

/// Result alias used throughout the engine.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// An error kept as the cause of an [`EngineError`]; shared, so that the
/// error of a failed query can be handed to every caller that asks.
pub type SharedError = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong while building or running a query.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The query is not valid: unknown column, type mismatch, unsupported output mode.
    #[error("invalid query: {0}")]
    Plan(String),
    /// A SQL query is not valid at a known place of its text.
    #[error("invalid query: {message}")]
    Sql {
        /// What is wrong, with the query's line and a caret line under the place.
        message: String,
        /// 1-based line of the place in the query.
        line: u64,
        /// 1-based column (in characters) of the place in the query.
        column: u64,
    },
    /// An expression failed at run time in a way SQL null semantics cannot absorb.
    #[error("evaluation error: {0}")]
    Eval(String),
    /// A source failed (the message names the source and, where known, file and line).
    #[error("source error: {0}")]
    Source(String),
    /// A source failed with an error of its own, kept as this error's source.
    #[error("source {name} failed: {source}")]
    SourceFailed {
        /// The source (its description, e.g. the topic or directory).
        name: String,
        /// What went wrong.
        #[source]
        source: SharedError,
    },
    /// A sink failed.
    #[error("sink error: {0}")]
    Sink(String),
    /// A sink failed with an error of its own, kept as this error's source.
    #[error("sink {name} failed: {source}")]
    SinkFailed {
        /// The sink (its description, e.g. the file or topic).
        name: String,
        /// What went wrong.
        #[source]
        source: SharedError,
    },
    /// Reading or writing a file failed.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done: `"read"`, `"write"`, `"open"`, ...
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error (the chain's next link is this
        /// `Arc<std::io::Error>`).
        #[source]
        source: Arc<std::io::Error>,
    },
    /// Reading or writing the checkpoint directory failed.
    #[error("checkpoint error at {}: {reason}", path.display())]
    Checkpoint {
        /// The file or directory involved.
        path: PathBuf,
        /// What went wrong.
        reason: String,
        /// The error that caused it, when there was one.
        #[source]
        source: Option<SharedError>,
    },
    /// A user function or operator panicked; the payload message is kept.
    #[error("a task panicked: {0}")]
    Panic(String),
    /// The query was asked to stop before it finished what it was doing.
    #[error("the query was stopped")]
    Stopped,
}

impl EngineError {
    /// A checkpoint error for `path`, keeping `err` as its source.
    pub fn checkpoint(
        path: impl Into<PathBuf>,
        err: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        let err: Box<dyn std::error::Error + Send + Sync> = err.into();
        EngineError::Checkpoint {
            path: path.into(),
            reason: err.to_string(),
            source: Some(Arc::from(err)),
        }
    }

    /// An I/O error while doing `op` on `path`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, err: std::io::Error) -> Self {
        EngineError::Io {
            op,
            path: path.into(),
            source: Arc::new(err),
        }
    }

    /// A source named `name` failed with `err`.
    pub fn source_failed(
        name: impl Into<String>,
        err: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        EngineError::SourceFailed {
            name: name.into(),
            source: Arc::new(err),
        }
    }

    /// A sink named `name` failed with `err`.
    pub fn sink_failed(
        name: impl Into<String>,
        err: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        EngineError::SinkFailed {
            name: name.into(),
            source: Arc::new(err),
        }
    }
}

/// Shorthand for a planning error.
pub(crate) fn plan_err<T>(msg: impl Into<String>) -> Result<T> {
    Err(EngineError::Plan(msg.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn causes_are_kept_and_named_in_the_message() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        let e = EngineError::io("write", "/data/out.csv", io);
        assert_eq!(e.to_string(), "cannot write /data/out.csv: denied");
        let cause = e
            .source()
            .unwrap()
            .downcast_ref::<Arc<std::io::Error>>()
            .unwrap();
        assert_eq!(cause.kind(), std::io::ErrorKind::PermissionDenied);

        let e = EngineError::checkpoint("/ck/offsets/3", "bad checksum");
        assert_eq!(
            e.to_string(),
            "checkpoint error at /ck/offsets/3: bad checksum"
        );
        assert_eq!(e.source().unwrap().to_string(), "bad checksum");

        let inner = EngineError::io("read", "/t/00.log", std::io::Error::other("gone"));
        let e = EngineError::source_failed("log /t", inner.clone());
        assert_eq!(
            e.to_string(),
            "source log /t failed: cannot read /t/00.log: gone"
        );
        let mut chain = vec![e.to_string()];
        let mut next = e.source();
        while let Some(c) = next {
            chain.push(c.to_string());
            next = c.source();
        }
        assert_eq!(chain.len(), 3, "{chain:?}");
        assert_eq!(chain[2], "gone");
        // Clones share the cause.
        assert_eq!(e.clone().to_string(), e.to_string());
    }
}
