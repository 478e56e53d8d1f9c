//! Which state files a partition's checkpointed state is made of, and which
//! of them purging must keep. Owns the chain of files and the retention
//! floors (the full-or-delta rule itself is [`FullEvery`]'s); it must not
//! read or write state itself.

use super::CheckpointDir;
use crate::error::Result;
use crate::state::FullEvery;

/// Where one aggregation partition's checkpointed state is: the newest full
/// state file and the delta files written since, in order. Decides when the
/// next file should be a full one: once the deltas since the last full file
/// add up to the state's size (or the chain gets long), so that writing
/// costs time in proportion to the changes, amortised, and recovery reads
/// at most about twice the state.
#[derive(Debug, Default)]
pub struct StateChain {
    base: Option<String>,
    base_epoch: u64,
    deltas: Vec<String>,
    /// What was written since the base, for the full-or-delta rule.
    since_full: FullEvery,
}

impl StateChain {
    /// Whether the next file should hold the full state, given the number of
    /// changes the next delta would carry and the state's size
    /// ([`FullEvery`]).
    pub fn wants_full(&self, changes: usize, state_groups: usize) -> bool {
        self.base.is_none() || self.since_full.wants_full(changes, state_groups)
    }

    /// Whether the chain has a full file for deltas to follow.
    pub fn has_base(&self) -> bool {
        self.base.is_some()
    }

    /// A full state file `rel` was written in `epoch`: the chain restarts.
    pub fn record_full(&mut self, rel: String, epoch: u64) {
        let mut since_full = FullEvery::default();
        since_full.record_full();
        *self = StateChain {
            base: Some(rel),
            base_epoch: epoch,
            deltas: Vec::new(),
            since_full,
        };
    }

    /// A delta file `rel` with `changes` changes was written.
    pub fn record_delta(&mut self, rel: String, changes: usize) {
        self.deltas.push(rel);
        self.since_full.record_delta(changes);
    }

    /// The full file and the deltas after it, as a manifest names them.
    pub fn files(&self) -> (Option<String>, Vec<String>) {
        (self.base.clone(), self.deltas.clone())
    }

    /// The epoch whose state directory holds the full file.
    pub fn base_epoch(&self) -> u64 {
        self.base_epoch
    }
}

/// The oldest state directory each retained manifest still names, so that
/// purging keeps every file a retained manifest needs.
#[derive(Debug, Default)]
pub struct StateFloors {
    floors: std::collections::VecDeque<u64>,
}

impl StateFloors {
    /// The floors of the manifests already in `dir`, oldest first, so that a
    /// restarted query keeps the state files those manifests name (recovery
    /// falls back to an older manifest when the newest is unreadable).
    /// Unreadable manifests are left out.
    pub fn from_checkpoint(dir: &CheckpointDir) -> Result<StateFloors> {
        let mut floors = std::collections::VecDeque::new();
        for epoch in dir.numbered("commits")? {
            let Ok(m) = dir.read_manifest(epoch) else {
                continue;
            };
            let named = m
                .operators
                .iter()
                .flat_map(|o| o.file.iter().chain(&o.deltas))
                .filter_map(|rel| state_epoch(rel));
            floors.push_back(named.min().unwrap_or(epoch).min(epoch));
        }
        Ok(StateFloors { floors })
    }

    /// Records that `epoch` was committed naming state from `state_from`
    /// on (`None`: no state file); returns the oldest state epoch any of the
    /// newest `retain` manifests names (for
    /// [`CheckpointDir::purge_keeping_state`]).
    pub fn committed(&mut self, epoch: u64, state_from: Option<u64>, retain: usize) -> u64 {
        self.floors
            .push_back(state_from.unwrap_or(epoch).min(epoch));
        while self.floors.len() > retain.max(1) {
            self.floors.pop_front();
        }
        self.floors.iter().copied().min().unwrap_or(epoch)
    }
}

/// The epoch of a state file path as [`CheckpointDir::write_state`] names it
/// (`state/<epoch>-<name>`), or as releases before it did
/// (`state/<epoch>/<name>`).
pub(crate) fn state_epoch(rel: &str) -> Option<u64> {
    state_entry_epoch(rel.strip_prefix("state/")?)
}

/// The name a state file was written under (`<name>` of
/// `state/<epoch>-<name>`, or of an older release's `state/<epoch>/<name>`).
pub(crate) fn state_name(rel: &str) -> Option<&str> {
    split_state_entry(rel.strip_prefix("state/")?).map(|(_, name)| name)
}

/// The epoch of an entry of `state/`: a file `<epoch>-<name>`, its
/// temporary `.<epoch>-<name>.tmp`, or an older release's directory
/// `<epoch>` (or a path under it).
pub(crate) fn state_entry_epoch(entry: &str) -> Option<u64> {
    split_state_entry(entry).map(|(epoch, _)| epoch)
}

/// An entry of `state/` as its epoch and what follows the epoch's `-` or
/// `/` (empty for an older release's bare epoch directory).
fn split_state_entry(entry: &str) -> Option<(u64, &str)> {
    let entry = entry.strip_prefix('.').unwrap_or(entry);
    let end = entry
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(entry.len());
    let rest = match entry[end..].chars().next() {
        None => "",
        Some('-' | '/') => &entry[end + 1..],
        Some(_) => return None,
    };
    Some((entry[..end].parse().ok()?, rest))
}
