//! Operator state as stored: the aggregation partition's state file (full or
//! delta) in a compact binary form, and the watermark's inline state.
//!
//! A state file's payload is `RNST`, a format byte, then the
//! [`AggregateStateFile`] in postcard's encoding (varint integers, no
//! field names): an integer-keyed group with a count and a sum takes about
//! 25 bytes. Files from before the binary format (unframed JSON) are still
//! read. This module owns the encoding; it must not decide which files to
//! write.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::frame::{self, Opened};
use crate::error::{EngineError, Result};
use crate::state::StateSnapshot;

const MAGIC: &[u8] = b"RNST";
const BINARY_V1: u8 = 1;

/// One aggregation partition's state file: the groups (all of them, or the
/// changes since the previous file) and the partition's watermark.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct AggregateStateFile {
    /// The partition's watermark when the file was written.
    pub watermark_us: i64,
    /// The groups.
    pub state: StateSnapshot,
}

/// The watermark operator's state, kept inline in the manifest.
#[derive(Debug, Serialize, Deserialize)]
pub struct WatermarkState {
    /// The largest event time seen.
    pub max_event_time_us: i64,
}

impl AggregateStateFile {
    /// The payload to store (sealed by the directory).
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(16 + self.state.groups.len() * 24);
        out.extend_from_slice(MAGIC);
        out.push(BINARY_V1);
        postcard::to_io(self, &mut out)
            .map_err(|e| EngineError::checkpoint("state file", format!("cannot encode: {e}")))?;
        Ok(out)
    }

    /// Reads a stored state file (`bytes` as read from `path`): a sealed
    /// binary file, or an unframed JSON file of an older release.
    pub fn decode(path: &Path, bytes: &[u8]) -> Result<AggregateStateFile> {
        let damaged = |why: String| {
            EngineError::checkpoint(
                path,
                format!("the state file is damaged ({why}); it is not used"),
            )
        };
        match frame::open(path, bytes)? {
            Opened::Sealed(p) => {
                let body = p
                    .strip_prefix(MAGIC)
                    .ok_or_else(|| damaged("no state header".into()))?;
                match body.split_first() {
                    Some((&BINARY_V1, rest)) => {
                        postcard::from_bytes(rest).map_err(|e| damaged(e.to_string()))
                    }
                    Some((v, _)) => Err(EngineError::checkpoint(
                        path,
                        format!("state format {v} is newer than this release reads"),
                    )),
                    None => Err(damaged("empty".into())),
                }
            }
            Opened::Legacy(p) => serde_json::from_slice(p).map_err(|e| damaged(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Value;
    use crate::state::Accumulator;
    use smallvec::smallvec;

    fn sample() -> AggregateStateFile {
        AggregateStateFile {
            watermark_us: 1_700_000_000_000_000,
            state: StateSnapshot {
                full: true,
                groups: (0..1000)
                    .map(|k| {
                        (
                            crate::state::GLOBAL_WINDOW,
                            smallvec![Value::Int64(k)],
                            smallvec![
                                Accumulator::Count(k * 3),
                                Accumulator::SumInt(Some(k * 100))
                            ],
                        )
                    })
                    .collect(),
                evicted: vec![5],
            },
        }
    }

    #[test]
    fn binary_round_trip_is_compact() {
        let file = sample();
        let payload = file.encode().unwrap();
        let stored = frame::seal(&payload);
        let back = AggregateStateFile::decode(Path::new("s"), &stored).unwrap();
        assert_eq!(back, file);
        let per_group = payload.len() / 1000;
        assert!(per_group <= 40, "{per_group} bytes per group");
    }

    #[test]
    fn a_json_state_file_of_the_previous_release_still_reads() {
        let file = sample();
        let json = serde_json::to_vec(&file).unwrap();
        let back = AggregateStateFile::decode(Path::new("s"), &json).unwrap();
        assert_eq!(back, file);
    }

    #[test]
    fn a_flipped_bit_is_never_restored() {
        let stored = frame::seal(&sample().encode().unwrap());
        for i in (0..stored.len()).step_by(7) {
            let mut bad = stored.clone();
            bad[i] ^= 0x10;
            let err = AggregateStateFile::decode(Path::new("state/3/a.bin"), &bad).unwrap_err();
            assert!(err.to_string().contains("state/3/a.bin"), "{err}");
        }
    }
}
