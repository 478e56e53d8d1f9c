//! The engine's error type.
//!
//! Owns [`EngineError`] and the [`Result`] alias. Every failure a user can see
//! (bad plan, source or sink error, checkpoint I/O, a panic in user code) ends
//! up here with enough context to act on; this module must not log or retry.

use std::fmt;
use std::path::PathBuf;

/// Result alias used throughout the engine.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Everything that can go wrong while building or running a query.
#[derive(Debug, Clone)]
pub enum EngineError {
    /// The query is not valid: unknown column, type mismatch, unsupported output mode.
    Plan(String),
    /// An expression failed at run time in a way SQL null semantics cannot absorb.
    Eval(String),
    /// A source failed (the message names the source and, where known, file and line).
    Source(String),
    /// A sink failed.
    Sink(String),
    /// Reading or writing the checkpoint directory failed.
    Checkpoint {
        /// The file or directory involved.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A user function or operator panicked; the payload message is kept.
    Panic(String),
    /// The query was asked to stop before it finished what it was doing.
    Stopped,
}

impl EngineError {
    /// A checkpoint error for `path` built from an I/O error.
    pub fn checkpoint(path: impl Into<PathBuf>, err: impl fmt::Display) -> Self {
        EngineError::Checkpoint {
            path: path.into(),
            reason: err.to_string(),
        }
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::Plan(m) => write!(f, "invalid query: {m}"),
            EngineError::Eval(m) => write!(f, "evaluation error: {m}"),
            EngineError::Source(m) => write!(f, "source error: {m}"),
            EngineError::Sink(m) => write!(f, "sink error: {m}"),
            EngineError::Checkpoint { path, reason } => {
                write!(f, "checkpoint error at {}: {reason}", path.display())
            }
            EngineError::Panic(m) => write!(f, "a task panicked: {m}"),
            EngineError::Stopped => write!(f, "the query was stopped"),
        }
    }
}

impl std::error::Error for EngineError {}

/// Shorthand for a planning error.
pub(crate) fn plan_err<T>(msg: impl Into<String>) -> Result<T> {
    Err(EngineError::Plan(msg.into()))
}
