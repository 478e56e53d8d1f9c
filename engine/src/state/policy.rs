//! When a checkpointed state's next file should hold all of it.
//!
//! Owns the rule that bounds a chain of delta files: once the changes
//! written as deltas since the last full file add up to the state's size
//! (or the chain gets long), the next file is a full one. So writing costs
//! time in proportion to the changes, amortised, and recovery reads at most
//! about twice the state. Both the state that takes its own full snapshots
//! (continuous mode's aggregation task) and the checkpoint's chain of files
//! ask it; it must not know about files or tasks.

/// The full-or-delta rule's count of what was written since the last full
/// file (see the module docs). A new one wants a full file first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FullEvery {
    /// A full file has been written since this count began.
    had_full: bool,
    /// Delta files since the last full one.
    deltas: usize,
    /// Groups changed or windows evicted over those deltas.
    changes: usize,
}

impl FullEvery {
    /// Delta files after which the next one is a full one.
    pub const MAX_DELTAS: usize = 50;
    /// A state smaller than this many groups is written in full every time
    /// (cheap, and recovery reads one file).
    pub const MIN_FULL_GROUPS: usize = 1024;

    /// Whether the next file should hold the whole state, given the number
    /// of changes the next delta would carry and the state's size in groups.
    pub fn wants_full(&self, changes: usize, groups: usize) -> bool {
        !self.had_full
            || self.deltas >= Self::MAX_DELTAS
            || self.changes.saturating_add(changes) > groups.max(Self::MIN_FULL_GROUPS)
    }

    /// A full file was written: the count starts again.
    pub fn record_full(&mut self) {
        *self = FullEvery {
            had_full: true,
            deltas: 0,
            changes: 0,
        };
    }

    /// A delta of `changes` changes was written.
    pub fn record_delta(&mut self, changes: usize) {
        self.deltas += 1;
        self.changes = self.changes.saturating_add(changes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_first_then_deltas_until_they_add_up_to_the_state() {
        let mut p = FullEvery::default();
        assert!(p.wants_full(0, 10_000));
        p.record_full();
        assert!(!p.wants_full(6_000, 10_000));
        p.record_delta(6_000);
        assert!(!p.wants_full(4_000, 10_000));
        assert!(p.wants_full(4_001, 10_000));
        p.record_full();
        // A small state is written whole only once its deltas pass the floor.
        assert!(!p.wants_full(1, 10));
        for _ in 0..FullEvery::MAX_DELTAS {
            p.record_delta(0);
        }
        assert!(p.wants_full(0, 10_000), "a long chain ends");
    }
}
