//! Operator state as stored: the aggregation partition's state file (full or
//! delta) in a compact binary form, and the watermark's inline state.
//!
//! A state file's payload is `RNST`, a format byte, then in postcard's
//! encoding (varint integers, no field names): the watermark, whether the
//! file is full, the evicted windows, then the groups window by window
//! (`start`, then each group's key and accumulators), so that the window
//! start is not repeated per group: an integer-keyed group with a count and
//! a sum takes about 15 bytes. Restoring decodes straight into the
//! aggregation's tables ([`AggregateStateFile::restore_into`]), with no
//! intermediate list of groups. Files of format 1 (the groups as one list)
//! and from before the binary format (unframed JSON) are still read. This
//! module owns the encoding; it must not decide which files to write.

use std::fmt;
use std::path::Path;

use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

use super::frame::{self, Opened};
use crate::error::{EngineError, Result};
use crate::state::{Accumulators, GroupKey, StateSnapshot, WindowedState};

const MAGIC: &[u8] = b"RNST";
/// The groups as one list of `(window start, key, accumulators)`.
const BINARY_V1: u8 = 1;
/// The groups window by window (what is written).
const BINARY_V2: u8 = 2;

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
        let mut out = Vec::with_capacity(16 + self.state.groups.len() * 16);
        out.extend_from_slice(MAGIC);
        out.push(BINARY_V2);
        let body = (
            self.watermark_us,
            self.state.full,
            &self.state.evicted,
            ByWindow(&self.state.groups),
        );
        postcard::to_extend(&body, out)
            .map_err(|e| EngineError::checkpoint("state file", format!("cannot encode: {e}")))
    }

    /// Reads a stored state file (`bytes` as read from `path`): a sealed
    /// binary file, or an unframed JSON file of an older release. Restoring
    /// a query uses [`AggregateStateFile::restore_into`] instead, which
    /// builds no list of groups.
    pub fn decode(path: &Path, bytes: &[u8]) -> Result<AggregateStateFile> {
        type Body = (
            i64,
            bool,
            Vec<i64>,
            Vec<(i64, Vec<(GroupKey, Accumulators)>)>,
        );
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
                    Some((&BINARY_V2, rest)) => {
                        let (watermark_us, full, evicted, windows): Body =
                            postcard::from_bytes(rest).map_err(|e| damaged(e.to_string()))?;
                        let groups = windows
                            .into_iter()
                            .flat_map(|(start, groups)| {
                                groups.into_iter().map(move |(k, a)| (start, k, a))
                            })
                            .collect();
                        Ok(AggregateStateFile {
                            watermark_us,
                            state: StateSnapshot {
                                full,
                                groups,
                                evicted,
                            },
                        })
                    }
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

    /// Applies a stored state file (`bytes` as read from `path`) to
    /// `state`, as [`WindowedState::apply`] applies a snapshot: a full file
    /// replaces the state, a delta updates it. Returns the file's
    /// watermark. On an error `state` may hold part of the file and must
    /// not be used.
    pub fn restore_into(path: &Path, bytes: &[u8], state: &mut WindowedState) -> Result<i64> {
        let damaged = |why: String| {
            EngineError::checkpoint(
                path,
                format!("the state file is damaged ({why}); it is not used"),
            )
        };
        let whole = |file: AggregateStateFile, state: &mut WindowedState| {
            state.apply(file.state);
            file.watermark_us
        };
        match frame::open(path, bytes)? {
            Opened::Sealed(p) => {
                let body = p
                    .strip_prefix(MAGIC)
                    .ok_or_else(|| damaged("no state header".into()))?;
                match body.split_first() {
                    Some((&BINARY_V2, rest)) => {
                        let mut de = postcard::Deserializer::from_bytes(rest);
                        let watermark = Restore {
                            state: &mut *state,
                            max_groups: rest.len(),
                        }
                        .deserialize(&mut de)
                        .map_err(|e| damaged(e.to_string()))?;
                        let left = de.finalize().map_err(|e| damaged(e.to_string()))?;
                        if !left.is_empty() {
                            return Err(damaged(format!("{} bytes after the state", left.len())));
                        }
                        state.restore_end();
                        Ok(watermark)
                    }
                    Some((&BINARY_V1, rest)) => postcard::from_bytes(rest)
                        .map(|f| whole(f, state))
                        .map_err(|e| damaged(e.to_string())),
                    Some((v, _)) => Err(EngineError::checkpoint(
                        path,
                        format!("state format {v} is newer than this release reads"),
                    )),
                    None => Err(damaged("empty".into())),
                }
            }
            Opened::Legacy(p) => serde_json::from_slice(p)
                .map(|f| whole(f, state))
                .map_err(|e| damaged(e.to_string())),
        }
    }
}

type Group = (i64, GroupKey, Accumulators);

/// The groups of a snapshot as a list of windows, each a start and its
/// groups: consecutive groups of one window form one entry (a window whose
/// groups are not consecutive gets several entries, which read back the
/// same).
struct ByWindow<'a>(&'a [Group]);

/// Ranges of consecutive groups with the same window start.
fn runs(groups: &[Group]) -> impl Iterator<Item = &[Group]> {
    groups.chunk_by(|a, b| a.0 == b.0)
}

impl Serialize for ByWindow<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(runs(self.0).count()))?;
        for run in runs(self.0) {
            seq.serialize_element(&(run[0].0, WindowGroups(run)))?;
        }
        seq.end()
    }
}

struct WindowGroups<'a>(&'a [Group]);

impl Serialize for WindowGroups<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for (_, key, accs) in self.0 {
            seq.serialize_element(&(key, accs))?;
        }
        seq.end()
    }
}

/// Decodes a format-2 body straight into a [`WindowedState`]; yields the
/// watermark. `max_groups` bounds what a length prefix may reserve.
struct Restore<'s> {
    state: &'s mut WindowedState,
    max_groups: usize,
}

fn missing<E: de::Error>(what: &str) -> E {
    E::custom(format!("the state ends before its {what}"))
}

impl<'de> DeserializeSeed<'de> for Restore<'_> {
    type Value = i64;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<i64, D::Error> {
        d.deserialize_tuple(4, self)
    }
}

impl<'de> Visitor<'de> for Restore<'_> {
    type Value = i64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a state file body")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<i64, A::Error> {
        let watermark: i64 = seq.next_element()?.ok_or_else(|| missing("watermark"))?;
        let full: bool = seq.next_element()?.ok_or_else(|| missing("kind"))?;
        let evicted: Vec<i64> = seq
            .next_element()?
            .ok_or_else(|| missing("evicted windows"))?;
        self.state.restore_begin(full, &evicted);
        let windows = Windows {
            state: self.state,
            max_groups: self.max_groups,
        };
        seq.next_element_seed(windows)?
            .ok_or_else(|| missing("groups"))?;
        Ok(watermark)
    }
}

struct Windows<'s> {
    state: &'s mut WindowedState,
    max_groups: usize,
}

impl<'de> DeserializeSeed<'de> for Windows<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Windows<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of windows")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        while seq
            .next_element_seed(Window {
                state: &mut *self.state,
                max_groups: self.max_groups,
            })?
            .is_some()
        {}
        Ok(())
    }
}

struct Window<'s> {
    state: &'s mut WindowedState,
    max_groups: usize,
}

impl<'de> DeserializeSeed<'de> for Window<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_tuple(2, self)
    }
}

impl<'de> Visitor<'de> for Window<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a window's start and groups")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        let start: i64 = seq.next_element()?.ok_or_else(|| missing("window start"))?;
        let groups = Groups {
            state: self.state,
            start,
            max_groups: self.max_groups,
        };
        seq.next_element_seed(groups)?
            .ok_or_else(|| missing("window's groups"))
    }
}

struct Groups<'s> {
    state: &'s mut WindowedState,
    start: i64,
    max_groups: usize,
}

impl<'de> DeserializeSeed<'de> for Groups<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Groups<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a window's groups")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        if let Some(n) = seq.size_hint() {
            // Every group takes at least a byte: a length larger than the
            // file is a damaged file, not a reason to reserve gigabytes.
            self.state
                .restore_reserve(self.start, n.min(self.max_groups));
        }
        while let Some((key, accs)) = seq.next_element::<(GroupKey, Accumulators)>()? {
            self.state.restore_group(self.start, key, accs);
        }
        Ok(())
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
    fn the_newer_accumulators_round_trip_through_a_state_file() {
        use crate::schema::DataType;
        use crate::state::AggFunc;
        let mut accs: Accumulators = [
            AggFunc::First {
                ignore_nulls: false,
            },
            AggFunc::Last { ignore_nulls: true },
            AggFunc::StddevSamp,
            AggFunc::VarPop,
            AggFunc::ApproxCountDistinct { precision: 9 },
        ]
        .iter()
        .map(|f| f.new_accumulator(&DataType::Int64))
        .collect();
        for v in [Value::Null, Value::Int64(3), Value::Int64(8), Value::Null] {
            for a in &mut accs {
                a.update(&v);
            }
        }
        let mut empty = AggFunc::First { ignore_nulls: true }.new_accumulator(&DataType::Utf8);
        empty.update(&Value::Null);
        accs.push(empty);
        let file = AggregateStateFile {
            watermark_us: 9,
            state: StateSnapshot {
                full: true,
                groups: vec![(
                    crate::state::GLOBAL_WINDOW,
                    smallvec![Value::str("k")],
                    accs,
                )],
                evicted: vec![],
            },
        };
        let stored = frame::seal(&file.encode().unwrap());
        let back = AggregateStateFile::decode(Path::new("s"), &stored).unwrap();
        assert_eq!(back, file);
        let results: Vec<Value> = back.state.groups[0].2.iter().map(|a| a.result()).collect();
        assert_eq!(
            results,
            [
                Value::Null,
                Value::Int64(8),
                Value::Float64(12.5f64.sqrt()),
                Value::Float64(6.25),
                Value::Int64(2),
                Value::Null
            ]
        );
        let mut state = WindowedState::new();
        AggregateStateFile::restore_into(Path::new("s"), &stored, &mut state).unwrap();
        assert_eq!(state.snapshot().groups, file.state.groups);
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

    /// Groups of two windows, interleaved as a copy-on-write delta leaves
    /// them.
    fn interleaved(full: bool, evicted: Vec<i64>) -> AggregateStateFile {
        AggregateStateFile {
            watermark_us: 7,
            state: StateSnapshot {
                full,
                groups: (0..200)
                    .map(|k| {
                        (
                            if k % 3 == 0 { 1_000 } else { 2_000 },
                            smallvec![Value::str(&format!("k{k}"))],
                            smallvec![Accumulator::Count(k)],
                        )
                    })
                    .collect(),
                evicted,
            },
        }
    }

    #[test]
    fn restoring_in_place_equals_applying_the_decoded_snapshot() {
        let stored_full = frame::seal(&interleaved(true, vec![]).encode().unwrap());
        let mut delta = interleaved(false, vec![1_000]);
        delta.state.groups.truncate(20);
        for g in &mut delta.state.groups {
            g.2 = smallvec![Accumulator::Count(-1)];
        }
        let stored_delta = frame::seal(&delta.encode().unwrap());

        let mut applied = WindowedState::new();
        for stored in [&stored_full, &stored_delta] {
            let file = AggregateStateFile::decode(Path::new("s"), stored).unwrap();
            applied.apply(file.state);
        }
        let mut restored = WindowedState::new();
        for stored in [&stored_full, &stored_delta] {
            let w = AggregateStateFile::restore_into(Path::new("s"), stored, &mut restored);
            assert_eq!(w.unwrap(), 7);
        }
        assert_eq!(restored.sorted_groups(), applied.sorted_groups());
        assert_eq!(restored.num_groups(), applied.num_groups());
        // The delta evicted window 1000 and re-set 20 groups, 7 of them in
        // window 1000 (k % 3 == 0 for k < 20).
        assert_eq!(restored.num_groups(), 133 + 7);
    }

    #[test]
    fn format_1_files_still_read() {
        let file = sample();
        let mut payload = MAGIC.to_vec();
        payload.push(BINARY_V1);
        payload.extend(postcard::to_stdvec(&file).unwrap());
        let stored = frame::seal(&payload);
        assert_eq!(
            AggregateStateFile::decode(Path::new("s"), &stored).unwrap(),
            file
        );
        let mut state = WindowedState::new();
        AggregateStateFile::restore_into(Path::new("s"), &stored, &mut state).unwrap();
        assert_eq!(state.num_groups(), 1000);
    }
}
