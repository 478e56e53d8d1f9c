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
//! module owns the file's layout (the bytes of one group are
//! [`group_codec`](super::group_codec)'s); it must not decide which files
//! to write.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::frame::{self, Opened};
use super::group_codec::{self, take_group, take_i64, take_len, Tags};
use crate::error::{EngineError, Result};
use crate::schema::Value;
use crate::state::{Accumulator, Accumulators, GroupKey, StateSnapshot, WindowedState};

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
        self.encode_into(Vec::new())
    }

    /// [`AggregateStateFile::encode`] into `out` (emptied first), so that a
    /// writer can keep one buffer across files.
    pub fn encode_into(&self, out: Vec<u8>) -> Result<Vec<u8>> {
        type Groups<'a> = Box<dyn Iterator<Item = (&'a [Value], &'a [Accumulator])> + 'a>;
        let groups = &self.state.groups;
        let columns = &self.state.columns;
        // Consecutive groups of one window are written as one window (a
        // window whose groups are not consecutive is written as several,
        // which read back the same). Groups in columns are written window
        // by window, each window once, before the others.
        let runs = || groups.chunk_by(|a, b| a.0 == b.0);
        let windows = columns.windows();
        let column_windows = windows.iter().map(|(start, ids)| {
            let groups: Groups<'_> = Box::new(ids.iter().map(|&i| {
                let (_, key, accs) = columns.get(i as usize);
                (key, accs)
            }));
            (start, ids.len(), groups)
        });
        let listed = runs().map(|run| {
            let groups: Groups<'_> =
                Box::new(run.iter().map(|(_, k, a)| (k.as_slice(), a.as_slice())));
            (run[0].0, run.len(), groups)
        });
        encode_windows(
            (self.watermark_us, self.state.full, &self.state.evicted),
            (windows.len() + runs().count(), self.state.num_groups()),
            column_windows.chain(listed),
            out,
        )
    }

    /// The payload of a full state file of all of `state`, encoded into
    /// `out` (emptied first): the same bytes as
    /// [`AggregateStateFile::encode`] of its snapshot, read from the state
    /// in place, so a full file costs no copy of every group.
    pub fn encode_full_into(
        watermark_us: i64,
        state: &WindowedState,
        out: Vec<u8>,
    ) -> Result<Vec<u8>> {
        let windows = state.windows().filter(|(_, groups)| !groups.is_empty());
        encode_windows(
            (watermark_us, true, &[]),
            (windows.clone().count(), state.num_groups()),
            windows.map(|(start, groups)| (start, groups.len(), groups.iter())),
            out,
        )
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
                                positions: Vec::new(),
                                columns: Default::default(),
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
            state
                .apply(file.state)
                .map(|()| file.watermark_us)
                .map_err(|e| damaged(e.to_string()))
        };
        match frame::open(path, bytes)? {
            Opened::Sealed(p) => {
                let body = p
                    .strip_prefix(MAGIC)
                    .ok_or_else(|| damaged("no state header".into()))?;
                match body.split_first() {
                    Some((&BINARY_V2, rest)) => {
                        let watermark = restore_v2(rest, state).map_err(damaged)?;
                        state.restore_end();
                        Ok(watermark)
                    }
                    Some((&BINARY_V1, rest)) => postcard::from_bytes(rest)
                        .map_err(|e| damaged(e.to_string()))
                        .and_then(|f| whole(f, state)),
                    Some((v, _)) => Err(EngineError::checkpoint(
                        path,
                        format!("state format {v} is newer than this release reads"),
                    )),
                    None => Err(damaged("empty".into())),
                }
            }
            Opened::Legacy(p) => serde_json::from_slice(p)
                .map_err(|e| damaged(e.to_string()))
                .and_then(|f| whole(f, state)),
        }
    }
}

/// The format's header, the watermark, `full` and the `evicted` windows,
/// then the `count` windows `windows` yields (each its start, its number
/// of groups and the groups) into `out` (emptied first, with room for
/// `groups` groups of about 16 bytes), every group in postcard's encoding
/// ([`group_codec::put_group`]).
fn encode_windows<'a, G>(
    (watermark_us, full, evicted): (i64, bool, &[i64]),
    (count, groups): (usize, usize),
    windows: impl Iterator<Item = (i64, usize, G)>,
    mut out: Vec<u8>,
) -> Result<Vec<u8>>
where
    G: Iterator<Item = (&'a [Value], &'a [Accumulator])>,
{
    let cannot =
        |e: postcard::Error| EngineError::checkpoint("state file", format!("cannot encode: {e}"));
    out.clear();
    out.reserve(64 + groups.saturating_mul(16));
    out.extend_from_slice(MAGIC);
    out.push(BINARY_V2);
    let mut out = postcard::to_extend(&(watermark_us, full, evicted), out).map_err(cannot)?;
    let tags = Tags::get();
    group_codec::put_varint(&mut out, count as u64);
    for (start, n, groups) in windows {
        group_codec::put_i64(&mut out, start);
        group_codec::put_varint(&mut out, n as u64);
        for (key, accs) in groups {
            crate::pace::point();
            group_codec::put_group(&mut out, key, accs, tags).map_err(cannot)?;
        }
    }
    Ok(out)
}

/// Decodes a format-2 body straight into a [`WindowedState`]; returns the
/// watermark.
///
/// The header goes through postcard; the groups are read by a decoder of
/// postcard's encoding for the common key and accumulator forms (numbers,
/// strings, nulls; counts, sums, averages, minima and maxima), written
/// straight into the state, with no serde visitor per value. A group it
/// does not recognise (a variant it does not know, a non-canonical or
/// damaged encoding) is decoded by postcard itself, which reads every
/// form and names what is wrong, so both read the same files the same way.
fn restore_v2(rest: &[u8], state: &mut WindowedState) -> std::result::Result<i64, String> {
    let ((watermark, full, evicted), mut at): ((i64, bool, Vec<i64>), &[u8]) =
        postcard::take_from_bytes(rest).map_err(|e| e.to_string())?;
    state.restore_begin(full, &evicted);
    let tags = Tags::get();
    let windows = take_len(&mut at).ok_or_else(|| missing_text("windows"))?;
    for _ in 0..windows {
        let start = take_i64(&mut at).ok_or_else(|| missing_text("window start"))?;
        let n = take_len(&mut at).ok_or_else(|| missing_text("window's groups"))?;
        // Every group takes at least a byte: a length larger than the rest
        // of the file is a damaged file, not a reason to reserve gigabytes.
        if n > at.len() {
            return Err(missing_text("window's groups"));
        }
        state.restore_window(start, n, |keys, accs| -> std::result::Result<(), String> {
            let mut fast = at;
            let (keys_before, accs_before) = (keys.len(), accs.len());
            if take_group(&mut fast, tags, keys, accs).is_some() {
                at = fast;
                return Ok(());
            }
            keys.truncate(keys_before);
            accs.truncate(accs_before);
            let ((key, a), left) = postcard::take_from_bytes::<(GroupKey, Accumulators)>(at)
                .map_err(|e| e.to_string())?;
            at = left;
            keys.extend(key);
            accs.extend(a);
            Ok(())
        })?;
    }
    if !at.is_empty() {
        return Err(format!("{} bytes after the state", at.len()));
    }
    Ok(watermark)
}

fn missing_text(what: &str) -> String {
    format!("the state ends before its {what}")
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
                positions: Vec::new(),
                columns: Default::default(),
            },
        }
    }

    #[test]
    fn a_full_file_encoded_in_place_is_the_snapshot_s_file() {
        let mut state = WindowedState::new();
        for w in [3_000_000i64, 1_000_000, 2_000_000] {
            for k in 0..50 {
                let key: GroupKey = smallvec::smallvec![Value::Int64(k), Value::str("x")];
                let (_, g) = state.group_mut(w, &key, || {
                    smallvec::smallvec![Accumulator::Count(0), Accumulator::SumInt(None)]
                });
                g[0] = Accumulator::Count(k + w);
                g[1] = Accumulator::SumInt(Some(-k));
            }
        }
        let copied = AggregateStateFile {
            watermark_us: 77,
            state: state.snapshot(),
        }
        .encode()
        .unwrap();
        assert_eq!(
            AggregateStateFile::encode_full_into(77, &state, Vec::new()).unwrap(),
            copied
        );
        let empty = AggregateStateFile {
            watermark_us: 1,
            state: WindowedState::new().snapshot(),
        };
        assert_eq!(
            AggregateStateFile::encode_full_into(1, &WindowedState::new(), Vec::new()).unwrap(),
            empty.encode().unwrap()
        );
    }

    #[test]
    fn a_full_snapshot_taken_copy_on_write_restores_the_state_at_its_marker() {
        let bump = |state: &mut WindowedState, w: i64, k: i64, by: i64| {
            let key: GroupKey = smallvec::smallvec![Value::Int64(k)];
            let (_, g) = state.group_mut(w, &key, || smallvec::smallvec![Accumulator::Count(0)]);
            if let Accumulator::Count(n) = &mut g[0] {
                *n += by;
            }
        };
        let mut state = WindowedState::new();
        for w in [0i64, 10, 20] {
            for k in 0..300 {
                bump(&mut state, w, k, k + w);
            }
        }
        let at_marker = state.snapshot();
        assert!(state.begin_snapshot_as(true).is_none());
        // Part of it copied by the walk; then groups of every window change
        // (copied before the change, out of the walk's order), new groups
        // and a new window come, and the first window closes.
        state.drain_snapshot(250);
        for k in (0..300).step_by(7) {
            bump(&mut state, 20, k, 1_000);
            bump(&mut state, 0, k, 1_000);
        }
        bump(&mut state, 10, 5_000, 1);
        bump(&mut state, 30, 1, 1);
        state.evict_closed(10, 10, |_, _, _| {});
        state.drain_snapshot(100);
        let snapshot = state.finish_snapshot();
        assert!(snapshot.full);
        assert_eq!(snapshot.num_groups(), 900);
        let payload = AggregateStateFile {
            watermark_us: 5,
            state: snapshot,
        }
        .encode()
        .unwrap();
        // Each window once, whatever order its groups were copied in.
        let mut restored = WindowedState::new();
        restored.apply(state_with_groups_of(3)).unwrap();
        let stored = frame::seal(&payload);
        let watermark =
            AggregateStateFile::restore_into(Path::new("s"), &stored, &mut restored).unwrap();
        assert_eq!(watermark, 5);
        let mut expected = WindowedState::new();
        expected.apply(at_marker).unwrap();
        assert_eq!(restored.sorted_groups(), expected.sorted_groups());
        let decoded = AggregateStateFile::decode(Path::new("s"), &stored).unwrap();
        let mut windows: Vec<i64> = decoded.state.groups.iter().map(|g| g.0).collect();
        windows.dedup();
        assert_eq!(windows.len(), 3, "one run per window: {windows:?}");
    }

    /// A state of `n` groups in a window of its own, for a full file to
    /// replace.
    fn state_with_groups_of(n: i64) -> StateSnapshot {
        StateSnapshot {
            full: true,
            groups: (0..n)
                .map(|k| {
                    (
                        99,
                        smallvec![Value::Int64(k)],
                        smallvec![Accumulator::Count(k)],
                    )
                })
                .collect(),
            ..StateSnapshot::default()
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
            AggFunc::CollectList,
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
                positions: Vec::new(),
                columns: Default::default(),
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
                Value::list([Value::Int64(3), Value::Int64(8)]),
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
                positions: Vec::new(),
                columns: Default::default(),
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
            applied.apply(file.state).unwrap();
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

    /// Every value and accumulator form, keys of one to three values, and
    /// groups the fast decoder leaves to postcard (a key of 200 values):
    /// restored in place, they equal the decoded file applied.
    #[test]
    fn every_value_and_accumulator_form_restores_as_decoded() {
        let (values, accs) = (
            group_codec::forms::values(),
            group_codec::forms::accumulators(),
        );
        let mut groups = Vec::new();
        for (i, v) in values.iter().enumerate() {
            let key: GroupKey = match i % 3 {
                0 => smallvec![v.clone()],
                1 => smallvec![v.clone(), Value::Int64(i as i64)],
                _ => smallvec![Value::Int64(i as i64), v.clone(), Value::str("third")],
            };
            let a: Accumulators = accs.iter().skip(i % 4).take(5).cloned().collect();
            // One aggregation's groups share a shape: a window per shape.
            groups.push((i as i64 % 3 * 1_000, key, a));
        }
        let long: GroupKey = (0..200).map(Value::Int64).collect();
        groups.push((7_000, long, accs.iter().cloned().collect()));
        let file = AggregateStateFile {
            watermark_us: -9,
            state: StateSnapshot {
                full: true,
                groups,
                evicted: vec![],
                positions: Vec::new(),
                columns: Default::default(),
            },
        };
        let stored = frame::seal(&file.encode().unwrap());
        let mut applied = WindowedState::new();
        applied
            .apply(
                AggregateStateFile::decode(Path::new("s"), &stored)
                    .unwrap()
                    .state,
            )
            .unwrap();
        let mut restored = WindowedState::new();
        let w = AggregateStateFile::restore_into(Path::new("s"), &stored, &mut restored);
        assert_eq!(w.unwrap(), -9);
        assert_eq!(restored.sorted_groups(), applied.sorted_groups());
        assert_eq!(restored.num_groups(), values.len() + 1);
    }

    /// Groups of two shapes in one window are not one aggregation's state:
    /// whichever way the file is read, it is refused with the file named
    /// and why, never restored.
    #[test]
    fn groups_of_two_shapes_in_a_window_are_refused() {
        let mut file = sample();
        file.state.groups[500].2.push(Accumulator::Count(1));
        let stored = frame::seal(&file.encode().unwrap());
        let err = AggregateStateFile::restore_into(
            Path::new("state/7-agg0.bin"),
            &stored,
            &mut WindowedState::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("state/7-agg0.bin"), "{err}");
        assert!(
            err.contains("1 key values and 2 aggregates, not 1 and 3"),
            "{err}"
        );
        let json = serde_json::to_vec(&file).unwrap();
        let err =
            AggregateStateFile::restore_into(Path::new("s.json"), &json, &mut WindowedState::new())
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("s.json") && err.contains("not 1 and 3"),
            "{err}"
        );
    }

    /// A file cut short, or with bytes after its state, is named, never
    /// restored (whichever decoder reads the cut).
    #[test]
    fn a_truncated_body_is_named() {
        let file = sample();
        let payload = file.encode().unwrap();
        for cut in [6, payload.len() / 2, payload.len() - 1] {
            let stored = frame::seal(&payload[..cut]);
            let mut state = WindowedState::new();
            let err =
                AggregateStateFile::restore_into(Path::new("state/a.bin"), &stored, &mut state)
                    .unwrap_err();
            assert!(err.to_string().contains("state/a.bin"), "{err}");
        }
        let mut longer = payload.clone();
        longer.push(0);
        let err = AggregateStateFile::restore_into(
            Path::new("s"),
            &frame::seal(&longer),
            &mut WindowedState::new(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("1 bytes after the state"), "{err}");
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
