//! The stream-stream join's state file.
//!
//! Owns the stored form of a join's state: `RNSJ`, a format byte, then the
//! whole state ([`JoinSnapshot`]: both sides' rows in arrival order, each
//! side's largest event time) in postcard's encoding, sealed by the
//! checkpoint's frame like every state file. A join writes its whole state
//! each epoch or batch (no deltas). It must not decide when it is written or
//! what a manifest names.

use std::path::Path;

use super::frame::{self, Opened};
use crate::error::{EngineError, Result};
use crate::table::JoinSnapshot;

const MAGIC: &[u8] = b"RNSJ";
const FORMAT: u8 = 1;

/// The payload of a join state file (before its frame).
pub(crate) fn encode(state: &JoinSnapshot) -> Result<Vec<u8>> {
    let mut out = MAGIC.to_vec();
    out.push(FORMAT);
    postcard::to_extend(state, out)
        .map_err(|e| EngineError::Eval(format!("encoding the join's state: {e}")))
}

/// Reads a join state file as stored (`bytes` read from `path`).
pub(crate) fn decode(path: &Path, bytes: &[u8]) -> Result<JoinSnapshot> {
    let damaged = |why: String| {
        EngineError::checkpoint(
            path,
            format!("the join state file is damaged ({why}); it is not used"),
        )
    };
    let Opened::Sealed(p) = frame::open(path, bytes)? else {
        return Err(damaged("no frame".into()));
    };
    let body = p
        .strip_prefix(MAGIC)
        .ok_or_else(|| damaged("no join state header".into()))?;
    match body.split_first() {
        Some((&FORMAT, rest)) => postcard::from_bytes(rest).map_err(|e| damaged(e.to_string())),
        Some((v, _)) => Err(EngineError::checkpoint(
            path,
            format!("join state format {v} is newer than this release reads"),
        )),
        None => Err(damaged("empty".into())),
    }
}
