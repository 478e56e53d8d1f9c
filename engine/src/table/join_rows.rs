//! One side's kept rows of a stream-stream join, by key.
//!
//! Owns [`SideRows`] and the kept row ([`StoredRow`]): the keys and their rows in a slab (a list of entries
//! whose freed places are reused), found through [`SHARDS`] hash tables of
//! 4-byte slab positions. A join's state churns: every epoch evicts about as
//! many keys as it adds. Hash maps holding the entries themselves leave a
//! tombstone per removed key and, at the steady size, double their bucket
//! arrays once the tombstones run out, so the process keeps growing long
//! after the state stopped; here a table bucket is four bytes (a doubling
//! costs little and happens once), and an entry's place is reused by the
//! next new key, so memory stays flat while the state does. Sharding keeps
//! each table small, so growing one moves only its own positions. It must
//! not decide which rows match or when they leave (the join does).

use hashbrown::HashTable;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::schema::Value;
#[cfg(doc)]
use crate::schema::{Row, NO_TIME};

/// One row kept in a side's state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct StoredRow {
    /// The side's values, exactly as many as it has (a [`Row`] keeps room
    /// for eight inline: a kept row is stored at its own size). Encoded as
    /// a row is.
    pub(crate) row: Box<[Value]>,
    /// Its event time (µs), or [`NO_TIME`].
    pub(crate) time: i64,
    /// When it entered the engine ([`crate::clock::now_ns`] time).
    pub(crate) ingest_ns: u64,
    /// Its place in the order rows entered the state (unmatched rows are
    /// emitted in this order).
    pub(crate) seq: u64,
    /// Whether it has matched a row of the other side.
    pub(crate) matched: bool,
}

/// A join key's values.
pub(crate) type Key = SmallVec<[Value; 2]>;

/// How many hash tables index a side's keys.
pub(crate) const SHARDS: usize = 64;

/// A key and its rows (most keys hold one, kept inline).
struct Entry {
    hash: u64,
    key: Key,
    rows: SmallVec<[StoredRow; 1]>,
}

/// The shard of a hash: middle bits (a table takes its slots from the low
/// bits and its tags from the top seven).
#[inline]
fn shard_of(hash: u64) -> usize {
    (hash >> 32) as usize % SHARDS
}

/// One side's rows by key (see the module docs).
pub(crate) struct SideRows {
    shards: Vec<HashTable<u32>>,
    slab: Vec<Entry>,
    /// Places of `slab` whose key left, reused first.
    free: Vec<u32>,
}

impl Default for SideRows {
    fn default() -> Self {
        SideRows {
            shards: (0..SHARDS).map(|_| HashTable::new()).collect(),
            slab: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl SideRows {
    /// The rows of `key` (hash `hash`, [`super::index::hash_key`]'s), if any.
    #[inline]
    pub(crate) fn get_mut(
        &mut self,
        hash: u64,
        key: &[Value],
    ) -> Option<&mut SmallVec<[StoredRow; 1]>> {
        let slab = &self.slab;
        let at = *self.shards[shard_of(hash)].find(hash, |&i| {
            let e = &slab[i as usize];
            e.hash == hash && e.key[..] == *key
        })?;
        Some(&mut self.slab[at as usize].rows)
    }

    /// Adds a row under `key`; returns the key's place (stable while the key
    /// holds rows).
    pub(crate) fn push(&mut self, hash: u64, key: Key, row: StoredRow) -> u32 {
        let Self { shards, slab, free } = self;
        let shard = &mut shards[shard_of(hash)];
        if let Some(&at) = shard.find(hash, |&i| {
            let e = &slab[i as usize];
            e.hash == hash && e.key == key
        }) {
            slab[at as usize].rows.push(row);
            return at;
        }
        let mut rows = SmallVec::new();
        rows.push(row);
        let entry = Entry { hash, key, rows };
        let at = match free.pop() {
            Some(at) => {
                slab[at as usize] = entry;
                at
            }
            None => {
                slab.push(entry);
                u32::try_from(slab.len() - 1).expect("fewer than 2^32 join keys")
            }
        };
        shard.insert_unique(hash, at, |&i| slab[i as usize].hash);
        at
    }

    /// Removes the row numbered `seq` of the key at `at`; frees the key's
    /// place when it was its last row.
    pub(crate) fn remove(&mut self, at: u32, seq: u64) -> Option<StoredRow> {
        let entry = self.slab.get_mut(at as usize)?;
        let i = entry.rows.iter().position(|r| r.seq == seq)?;
        let row = entry.rows.swap_remove(i);
        if entry.rows.is_empty() {
            let hash = entry.hash;
            entry.key = Key::new();
            entry.rows = SmallVec::new();
            if let Ok(found) = self.shards[shard_of(hash)].find_entry(hash, |&i| i == at) {
                found.remove();
            }
            self.free.push(at);
        }
        Some(row)
    }

    /// Every row held, in no particular order.
    pub(crate) fn rows(&self) -> impl Iterator<Item = &StoredRow> {
        self.slab.iter().flat_map(|e| e.rows.iter())
    }

    /// Drops every row.
    pub(crate) fn clear(&mut self) {
        for shard in &mut self.shards {
            shard.clear();
        }
        self.slab.clear();
        self.free.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::NO_TIME;
    use crate::table::index::hash_key;

    fn row(seq: u64) -> StoredRow {
        StoredRow {
            row: vec![Value::Int64(seq as i64)].into_boxed_slice(),
            time: NO_TIME,
            ingest_ns: 0,
            seq,
            matched: false,
        }
    }

    fn key(k: i64) -> (u64, Key) {
        let key: Key = [Value::Int64(k)].into_iter().collect();
        (hash_key(&key), key)
    }

    #[test]
    fn rows_are_found_by_key_and_a_freed_place_is_reused() {
        let mut side = SideRows::default();
        let (h1, k1) = key(1);
        let (h2, k2) = key(2);
        let a = side.push(h1, k1.clone(), row(0));
        assert_eq!(side.push(h1, k1.clone(), row(1)), a, "same key, same place");
        let b = side.push(h2, k2.clone(), row(2));
        assert_ne!(a, b);
        assert_eq!(side.get_mut(h1, &k1).unwrap().len(), 2);
        assert_eq!(side.remove(a, 0).unwrap().seq, 0);
        assert_eq!(side.remove(a, 1).unwrap().seq, 1);
        assert!(
            side.get_mut(h1, &k1).is_none(),
            "the key left with its last row"
        );
        assert!(side.remove(a, 1).is_none());
        let (h3, k3) = key(3);
        assert_eq!(
            side.push(h3, k3.clone(), row(3)),
            a,
            "the freed place is reused"
        );
        assert_eq!(side.get_mut(h3, &k3).unwrap()[0].seq, 3);
        assert_eq!(side.get_mut(h2, &k2).unwrap()[0].seq, 2);
        let mut seqs: Vec<u64> = side.rows().map(|r| r.seq).collect();
        seqs.sort();
        assert_eq!(seqs, vec![2, 3]);
        side.clear();
        assert_eq!(side.rows().count(), 0);
        assert!(side.get_mut(h2, &k2).is_none());
    }

    #[test]
    fn churn_at_a_steady_size_keeps_the_slab_at_that_size() {
        let mut side = SideRows::default();
        let mut places = std::collections::VecDeque::new();
        for k in 0..200_000i64 {
            let (h, key) = key(k);
            places.push_back((side.push(h, key, row(k as u64)), k as u64));
            if places.len() > 10_000 {
                let (at, seq) = places.pop_front().unwrap();
                side.remove(at, seq).unwrap();
            }
        }
        assert_eq!(side.rows().count(), 10_000);
        assert!(
            side.slab.len() <= 10_001,
            "slab grew to {}",
            side.slab.len()
        );
    }
}
