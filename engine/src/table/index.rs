//! The join's hash index on a static table's key values, and the bound join.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use hashbrown::{HashSet, HashTable};
use rustc_hash::{FxBuildHasher, FxHasher};
use smallvec::SmallVec;

use super::StaticTable;
use crate::error::{plan_err, Result};
use crate::expr::BoundExpr;
use crate::schema::{timestamp_type, type_name, DataType, Value};

/// The key values of one row.
type Key = SmallVec<[Value; 2]>;

/// One distinct key of the table: its values and where its rows are listed.
struct Group {
    key: Key,
    start: u32,
    len: u32,
}

/// A static table indexed on its join keys: each distinct non-null key
/// leads to the table's rows with that key, in table order. Rows with a
/// null in any key are left out (a null key never matches).
///
/// A probe is a few memory reads into structures as large as the table,
/// and on a big table each one can miss the caches: for the common case of
/// one integer-like key (`bigint`, `timestamp`, `date`) the key and where
/// its rows are listed sit in the hash table's bucket itself (`ints`), and
/// the rows' values are copied into one flat list (`values`, 24 bytes a
/// value rather than a row's room for eight) in key order, so that a
/// key's rows follow each other there as in the list of row numbers: a
/// probe for the values reads a bucket and the rows, with no row number
/// in between. When those integer keys fill most of their range (ids
/// `0..n`), there is no bucket either: the groups go in key order and a
/// key's place is computed from it ([`Dense`]), so a probe reads the rows
/// and nothing else (and keys that come in order read the rows in order).
/// A string of up to 23 bytes is held in the value itself, so copying it
/// into a joined row touches nothing else; equal longer strings of the
/// table share one allocation in that list, so copying one touches a
/// reference count that the other rows with the same string keep warm.
pub(crate) struct JoinIndex {
    table: StaticTable,
    groups: Vec<Group>,
    /// Row numbers, grouped by key.
    rows: Vec<u32>,
    lookup: HashTable<u32>,
    /// One integer-like key: `(key, start, len)` of each group, by key.
    ints: Option<HashTable<(i64, u32, u32)>>,
    /// One integer-like key whose distinct values fill most of their range
    /// (ids `0..n`, say): the groups are laid out in key order and a key's
    /// place is its distance from the smallest, with no hashing and no
    /// bucket to read.
    dense: Option<Dense>,
    /// The values of the rows listed in `rows`, in that order (`width`
    /// each): a key's rows are `values[start * width..(start + len) * width]`.
    values: Vec<Value>,
    width: usize,
}

/// Where the groups of a [`JoinIndex`] with dense integer keys are: key
/// `min + i` has the rows `starts[i]..starts[i + 1]` (none when the two are
/// equal), or, when every key of the range has exactly one row (`starts`
/// is `None`), the row `i`.
struct Dense {
    min: i64,
    /// Keys in the range: `max - min + 1`.
    span: u64,
    starts: Option<Vec<u32>>,
}

impl Dense {
    /// At most this many keys' room per distinct key: above it the range
    /// has more holes than keys, and the hash table is the smaller.
    const MAX_SPREAD: u64 = 2;

    /// The layout for these distinct keys, if they are dense enough:
    /// `keys` sorted and distinct, `lens[g]` the rows of `keys[g]`.
    fn of(keys: &[i64], lens: &[u32]) -> Option<Dense> {
        let (&min, &max) = (keys.first()?, keys.last()?);
        let span = (max as i128 - min as i128 + 1) as u128;
        if span > (keys.len() as u128) * Self::MAX_SPREAD as u128 || span >= u32::MAX as u128 {
            return None;
        }
        let span = span as u64;
        if span == keys.len() as u64 && lens.iter().all(|&l| l == 1) {
            return Some(Dense {
                min,
                span,
                starts: None,
            });
        }
        let mut starts = Vec::with_capacity(span as usize + 1);
        let mut at = 0u32;
        let mut next = keys.iter().zip(lens).peekable();
        for i in 0..span {
            starts.push(at);
            if let Some((_, &len)) = next.next_if(|(&k, _)| (k - min) as u64 == i) {
                at += len;
            }
        }
        starts.push(at);
        Some(Dense {
            min,
            span,
            starts: Some(starts),
        })
    }

    /// Where the rows of key `x` are listed (`start`, `len`).
    #[inline]
    fn group(&self, x: i64) -> (usize, usize) {
        let i = x.wrapping_sub(self.min) as u64;
        if i >= self.span {
            return (0, 0);
        }
        match &self.starts {
            None => (i as usize, 1),
            Some(starts) => {
                let i = i as usize;
                let (a, b) = (starts[i] as usize, starts[i + 1] as usize);
                (a, b - a)
            }
        }
    }
}

/// The integer of an integer-like key value (the index's keys all have
/// the join's one key type, so the variant never mixes).
#[inline]
fn int_of(v: &Value) -> Option<i64> {
    match v {
        Value::Int64(x) | Value::Timestamp(x) => Some(*x),
        Value::Date(d) => Some(i64::from(*d)),
        _ => None,
    }
}

/// The hash of an integer key in `ints`.
#[inline]
fn hash_int(x: i64) -> u64 {
    let mut h = FxHasher::default();
    h.write_i64(x);
    h.finish()
}

/// The hash of a key, as the index computes it: each value's `Hash` in
/// order. A probe that hashes another way must give the same number.
pub(crate) fn hash_key<'v>(values: impl IntoIterator<Item = &'v Value>) -> u64 {
    let mut h = FxHasher::default();
    for v in values {
        v.hash(&mut h);
    }
    h.finish()
}

impl JoinIndex {
    /// Indexes `table` on `keys` (bound to the table's schema, already cast
    /// to the join's key types).
    pub(crate) fn build(table: &StaticTable, keys: &[BoundExpr]) -> Result<JoinIndex> {
        let mut groups: Vec<Group> = Vec::new();
        let mut members: Vec<Vec<u32>> = Vec::new();
        let mut finding: HashTable<u32> = HashTable::new();
        for (r, row) in table.rows().iter().enumerate() {
            let key: Key = keys.iter().map(|k| k.eval(row)).collect();
            if key.iter().any(Value::is_null) {
                continue;
            }
            let hash = hash_key(&key);
            let at = match finding.find(hash, |&g| groups[g as usize].key == key) {
                Some(&g) => g as usize,
                None => {
                    let g = groups.len();
                    finding.insert_unique(hash, g as u32, |&g| hash_key(&groups[g as usize].key));
                    groups.push(Group {
                        key,
                        start: 0,
                        len: 0,
                    });
                    members.push(Vec::new());
                    g
                }
            };
            members[at].push(r as u32);
        }
        let one_int = keys.len() == 1 && groups.iter().all(|g| int_of(&g.key[0]).is_some());
        // With one integer-like key the groups go in key order, so that a
        // dense range of keys can find its rows by position.
        let mut listed: Vec<(Group, Vec<u32>)> = groups.into_iter().zip(members).collect();
        if one_int {
            listed.sort_unstable_by_key(|(g, _)| int_of(&g.key[0]));
        }
        let (mut groups, members): (Vec<Group>, Vec<Vec<u32>>) = listed.into_iter().unzip();
        // The table that found the groups names them by their old places:
        // rebuilt only if they moved.
        let lookup = if one_int {
            let mut lookup: HashTable<u32> = HashTable::with_capacity(groups.len());
            for (g, group) in groups.iter().enumerate() {
                lookup.insert_unique(hash_key(&group.key), g as u32, |&g| {
                    hash_key(&groups[g as usize].key)
                });
            }
            lookup
        } else {
            finding
        };
        let mut rows = Vec::with_capacity(table.num_rows());
        for (g, list) in groups.iter_mut().zip(&members) {
            g.start = rows.len() as u32;
            g.len = list.len() as u32;
            rows.extend_from_slice(list);
        }
        let dense = if one_int {
            let ints: Vec<i64> = groups
                .iter()
                .map(|g| int_of(&g.key[0]).expect("checked above"))
                .collect();
            let lens: Vec<u32> = groups.iter().map(|g| g.len).collect();
            Dense::of(&ints, &lens)
        } else {
            None
        };
        let ints = if one_int && dense.is_none() {
            let mut ints: HashTable<(i64, u32, u32)> = HashTable::with_capacity(groups.len());
            for g in &groups {
                let x = int_of(&g.key[0]).expect("checked above");
                ints.insert_unique(hash_int(x), (x, g.start, g.len), |e| hash_int(e.0));
            }
            Some(ints)
        } else {
            None
        };
        let width = table.schema().fields().len();
        let mut strings: HashSet<crate::schema::Str, FxBuildHasher> = HashSet::default();
        let mut values = Vec::with_capacity(rows.len() * width);
        for &r in &rows {
            for v in table.rows()[r as usize].iter() {
                values.push(match v {
                    Value::Utf8(s) => {
                        Value::Utf8(strings.get_or_insert_with(&**s, |_| s.clone()).clone())
                    }
                    other => other.clone(),
                });
            }
        }
        Ok(JoinIndex {
            table: table.clone(),
            groups,
            rows,
            lookup,
            ints,
            dense,
            values,
            width,
        })
    }

    /// Where the rows of the integer-like key `x` are listed (`start`,
    /// `len`), when the index has one such key (`None` otherwise: probe
    /// with the values).
    #[inline]
    fn group_of_int(&self, x: i64) -> Option<(usize, usize)> {
        if let Some(dense) = &self.dense {
            return Some(dense.group(x));
        }
        let ints = self.ints.as_ref()?;
        Some(match ints.find(hash_int(x), |e| e.0 == x) {
            Some(&(_, start, len)) => (start as usize, len as usize),
            None => (0, 0),
        })
    }

    /// Where the rows of the key with hash `hash` for which `eq` holds are
    /// listed.
    #[inline]
    fn group_hashed(&self, hash: u64, mut eq: impl FnMut(&[Value]) -> bool) -> (usize, usize) {
        match self
            .lookup
            .find(hash, |&g| eq(&self.groups[g as usize].key))
        {
            Some(&g) => {
                let g = &self.groups[g as usize];
                (g.start as usize, g.len as usize)
            }
            None => (0, 0),
        }
    }

    /// Where the rows of `key` are listed (none if `key` holds a null).
    #[inline]
    fn group(&self, key: &[Value]) -> (usize, usize) {
        if let [one] = key {
            if let Some(found) = int_of(one).and_then(|x| self.group_of_int(x)) {
                return found;
            }
        }
        if key.iter().any(Value::is_null) {
            return (0, 0);
        }
        self.group_hashed(hash_key(key), |k| k == key)
    }

    /// The rows of the integer-like key `x`, when the index has one such
    /// key (`None` otherwise: probe with the values).
    #[inline]
    pub(crate) fn probe_int(&self, x: i64) -> Option<&[u32]> {
        let (start, len) = self.group_of_int(x)?;
        Some(&self.rows[start..start + len])
    }

    /// The rows of the key with hash `hash` for which `eq` holds: for a
    /// caller that hashes its key values in place ([`hash_key`]'s way).
    #[inline]
    pub(crate) fn probe_hashed(&self, hash: u64, eq: impl FnMut(&[Value]) -> bool) -> &[u32] {
        let (start, len) = self.group_hashed(hash, eq);
        &self.rows[start..start + len]
    }

    /// The values of the table's rows whose key equals `key`, in table
    /// order, one slice a row: what a continuous join copies into its
    /// output, found without going through the row numbers.
    #[inline]
    pub(crate) fn probe_rows(&self, key: &[Value]) -> std::slice::ChunksExact<'_, Value> {
        let (start, len) = self.group(key);
        self.values[start * self.width..(start + len) * self.width].chunks_exact(self.width.max(1))
    }

    /// The indexed table.
    pub(crate) fn table(&self) -> &StaticTable {
        &self.table
    }
}

impl BoundJoin {
    /// The index to probe now: the current one of a refreshing table.
    pub(crate) fn index_now(&self) -> Arc<JoinIndex> {
        match &self.live {
            Some(live) => live.current(),
            None => self.index.clone(),
        }
    }

    /// A view of the index that follows the refreshes.
    pub(crate) fn view(&self) -> super::IndexView {
        super::IndexView::new(self.index_now(), self.live.as_deref())
    }
}

/// A stream-static join, bound: what both runtimes execute.
pub(crate) struct BoundJoin {
    /// The index the query started with.
    pub(crate) index: Arc<JoinIndex>,
    /// A refreshing table's current index (its thread swaps new ones in).
    pub(crate) live: Option<Arc<super::LiveIndex>>,
    /// The stream's key expressions, cast to the key types.
    pub(crate) stream_keys: Vec<BoundExpr>,
    /// Conditions of `ON` beyond the key equalities, over the joined row
    /// (the stream's columns, then the table's).
    pub(crate) condition: Option<BoundExpr>,
    /// LEFT OUTER: a stream row without a match passing the condition is
    /// kept once, with nulls for the table's columns.
    pub(crate) outer: bool,
}

fn is_numeric(t: &DataType) -> bool {
    matches!(t, DataType::Int64 | DataType::Float64)
}

fn is_temporal(t: &DataType) -> bool {
    matches!(t, DataType::Timestamp(..) | DataType::Date32)
}

/// The type two join keys are compared in, by Spark's implicit casts for
/// `=`: numbers in the wider type, a string as the number, date or timestamp
/// it is compared with, a date with a timestamp as timestamps. Any other
/// pair does not compare: the error names both types.
pub(crate) fn key_type(stream: &DataType, table: &DataType, pair: &str) -> Result<DataType> {
    let t = match (stream, table) {
        (a, b) if a == b => a.clone(),
        (DataType::Null, b) => b.clone(),
        (a, DataType::Null) => a.clone(),
        (a, b) if is_numeric(a) && is_numeric(b) => DataType::Float64,
        (DataType::Utf8, b) if is_numeric(b) || is_temporal(b) => b.clone(),
        (a, DataType::Utf8) if is_numeric(a) || is_temporal(a) => a.clone(),
        (a, b) if is_temporal(a) && is_temporal(b) => timestamp_type(),
        (DataType::Timestamp(..), DataType::Timestamp(..)) => timestamp_type(),
        (a, b) => {
            return plan_err(format!(
                "join keys of different types cannot be compared in {pair}: the stream's is {} \
                 and the table's is {}; cast one side (CAST(... AS {}))",
                type_name(a),
                type_name(b),
                type_name(b)
            ))
        }
    };
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{schema, Row};

    /// A table `(k bigint, v string)` of these keys (a `None` is a null
    /// key), its index on `k`, and each row's `v` (its row number).
    fn indexed(keys: &[Option<i64>]) -> JoinIndex {
        let rows = keys
            .iter()
            .enumerate()
            .map(|(r, k)| {
                Row::from(vec![
                    k.map_or(Value::Null, Value::Int64),
                    Value::str(&r.to_string()),
                ])
            })
            .collect();
        let table = StaticTable::from_rows(
            "t",
            schema(&[("k", DataType::Int64), ("v", DataType::Utf8)]),
            rows,
        )
        .unwrap();
        JoinIndex::build(&table, &[BoundExpr::Column(0)]).unwrap()
    }

    /// What a scan of the table finds for `x`: the row numbers, in order.
    fn scan(keys: &[Option<i64>], x: i64) -> Vec<u32> {
        (0..keys.len() as u32)
            .filter(|&r| keys[r as usize] == Some(x))
            .collect()
    }

    /// Every way of probing agrees with the scan, for every key of the
    /// table and the keys around and between them.
    fn check(keys: &[Option<i64>], dense: bool) {
        let index = indexed(keys);
        assert_eq!(index.dense.is_some(), dense, "dense layout for {keys:?}");
        let present: Vec<i64> = keys.iter().flatten().copied().collect();
        let mut probes: Vec<i64> = present
            .iter()
            .flat_map(|&k| [k.saturating_sub(1), k, k.saturating_add(1)])
            .collect();
        probes.extend([i64::MIN, i64::MAX, 0, -1]);
        for x in probes {
            let want = scan(keys, x);
            assert_eq!(
                index.probe_int(x).unwrap(),
                want.as_slice(),
                "probe_int({x})"
            );
            let hashed =
                index.probe_hashed(hash_key(&[Value::Int64(x)]), |k| k == [Value::Int64(x)]);
            assert_eq!(hashed, want.as_slice(), "probe_hashed({x})");
            let names: Vec<String> = index
                .probe_rows(&[Value::Int64(x)])
                .map(|row| {
                    assert_eq!(row[0].as_i64(), Some(x));
                    match &row[1] {
                        Value::Utf8(s) => s.to_string(),
                        other => panic!("{other:?}"),
                    }
                })
                .collect();
            let want: Vec<String> = want.iter().map(u32::to_string).collect();
            assert_eq!(names, want, "probe_rows({x})");
        }
        assert_eq!(index.probe_rows(&[Value::Null]).count(), 0);
    }

    #[test]
    fn ids_that_fill_their_range_are_found_by_position() {
        // Unique and complete, in any order: no list of starts at all.
        let keys: Vec<Option<i64>> = [3, 0, 4, 1, 2].into_iter().map(Some).collect();
        check(&keys, true);
        assert!(indexed(&keys).dense.as_ref().unwrap().starts.is_none());
        // Negative keys, holes, repeated keys and a null key.
        let keys = [
            Some(-5),
            Some(-3),
            Some(-5),
            None,
            Some(-1),
            Some(0),
            Some(-3),
        ];
        check(&keys, true);
        assert!(indexed(&keys).dense.as_ref().unwrap().starts.is_some());
    }

    #[test]
    fn sparse_or_extreme_keys_keep_the_hash_table() {
        check(&[Some(0), Some(1_000), Some(7)], false);
        // A span wider than an i64 must not overflow.
        check(&[Some(i64::MIN), Some(i64::MAX), Some(0)], false);
        check(&[Some(i64::MAX - 1), Some(i64::MAX)], true);
        check(&[Some(i64::MIN), Some(i64::MIN + 1)], true);
        check(&[None, None], false);
    }
}
