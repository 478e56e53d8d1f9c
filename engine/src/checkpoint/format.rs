//! What the checkpoint's files hold: the query's metadata, epoch manifests
//! and offset-log entries. Owns the types and their versions; it must not
//! read or write files.

use serde::{Deserialize, Serialize};

use crate::io::SourceOffset;

/// The format version written into manifests and offset-log entries.
///
/// 1: JSON files without a checksum and JSON state files (still read);
/// 2: every file sealed with a checksum ([`super::frame`]), binary state;
/// 3: typed source offsets ([`SourceOffset`]; the untyped ones of 1 and 2
/// are still read).
pub const FORMAT_VERSION: u32 = 3;

/// What `metadata` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryMetadata {
    /// The query's id, stable across restarts.
    pub id: String,
}

/// A source's position at the end of an epoch.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SourceCommit {
    /// The source's name.
    pub name: String,
    /// Its offset (older checkpoints' untyped offsets are read too).
    #[serde(deserialize_with = "crate::io::deserialize_stored_offset")]
    pub offset: SourceOffset,
}

/// An operator partition's state at the end of an epoch.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct OperatorCommit {
    /// The operator's id in the plan.
    pub operator: usize,
    /// The partition.
    pub partition: usize,
    /// A state file under `state/`, relative to the checkpoint root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Delta files (changes only) to apply, in order, on top of `file`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deltas: Vec<String>,
    /// Small state kept inline.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub inline: serde_json::Value,
}

/// The manifest of one durable epoch (continuous) or batch (micro-batch).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EpochManifest {
    /// Format version.
    pub version: u32,
    /// The epoch.
    pub epoch: u64,
    /// When it was written (ms since the Unix epoch).
    pub committed_at_ms: i64,
    /// Source offsets.
    pub sources: Vec<SourceCommit>,
    /// Operator state.
    pub operators: Vec<OperatorCommit>,
    /// What the sink returned from its commit.
    pub sink: serde_json::Value,
}

/// A micro-batch's entry in the offset log: the exact ranges it reads.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct OffsetLogEntry {
    /// Format version.
    pub version: u32,
    /// The batch id.
    pub batch_id: u64,
    /// Where each source's range starts (exclusive; `null` offset: the beginning).
    pub start: Vec<SourceCommit>,
    /// Where it ends (inclusive).
    pub end: Vec<SourceCommit>,
    /// When the entry was written (ms since the Unix epoch).
    pub written_at_ms: i64,
}

/// Files that carry a format version, so that a file of this release
/// without its checksum is recognised as damaged rather than old.
pub(crate) trait Versioned {
    fn version(&self) -> u32;
}

impl Versioned for EpochManifest {
    fn version(&self) -> u32 {
        self.version
    }
}

impl Versioned for OffsetLogEntry {
    fn version(&self) -> u32 {
        self.version
    }
}

impl Versioned for QueryMetadata {
    fn version(&self) -> u32 {
        1
    }
}
