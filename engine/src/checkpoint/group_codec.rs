//! One group of a state file in postcard's encoding, written and read
//! directly for the common forms.
//!
//! Owns the bytes of a group (its key values, then its accumulators, each
//! list led by its length): numbers, strings, nulls, booleans, dates and
//! timestamps; counts, sums, averages, minima and maxima are written and
//! read here with no serde visitor per value, byte for byte as postcard
//! writes them (the variant numbers are found by asking postcard, so they
//! follow the enums' declarations). Any other form, or a group this reader
//! does not recognise, goes through postcard itself, which names what is
//! wrong. It must not know how groups are laid out in a file or a state.

use std::sync::OnceLock;

use serde::Serialize;

use crate::schema::{Str, Value};
use crate::state::Accumulator;

/// The variant numbers postcard writes for the values and accumulators the
/// fast decoder reads, found by encoding one of each (so that they follow
/// the enums' declarations). A number that does not fit one byte is never
/// matched: those groups go through postcard.
#[derive(Clone, Copy)]
pub(super) struct Tags {
    null: u8,
    boolean: u8,
    int64: u8,
    float64: u8,
    utf8: u8,
    timestamp: u8,
    date: u8,
    count: u8,
    sum_int: u8,
    sum_float: u8,
    avg: u8,
    min: u8,
    max: u8,
}

impl Tags {
    pub(super) fn get() -> &'static Tags {
        static TAGS: OnceLock<Tags> = OnceLock::new();
        TAGS.get_or_init(|| {
            fn tag<T: Serialize>(v: &T) -> u8 {
                let mut buf = [0u8; 32];
                match postcard::to_slice(v, &mut buf) {
                    Ok(b) if !b.is_empty() && b[0] < 0x80 => b[0],
                    _ => 0xFF,
                }
            }
            Tags {
                null: tag(&Value::Null),
                boolean: tag(&Value::Boolean(false)),
                int64: tag(&Value::Int64(0)),
                float64: tag(&Value::Float64(0.0)),
                utf8: tag(&Value::str("")),
                timestamp: tag(&Value::Timestamp(0)),
                date: tag(&Value::Date(0)),
                count: tag(&Accumulator::Count(0)),
                sum_int: tag(&Accumulator::SumInt(None)),
                sum_float: tag(&Accumulator::SumFloat(None)),
                avg: tag(&Accumulator::Avg { sum: 0.0, count: 0 }),
                min: tag(&Accumulator::Min(Value::Null)),
                max: tag(&Accumulator::Max(Value::Null)),
            }
        })
    }
}

/// Appends one group's key values to `key` and its accumulators to
/// `accs`, or returns `None` (with `at`, `key` and `accs` anywhere) when
/// this decoder does not read it.
#[inline]
pub(super) fn take_group(
    at: &mut &[u8],
    tags: &Tags,
    key: &mut Vec<Value>,
    accs: &mut Vec<Accumulator>,
) -> Option<()> {
    for _ in 0..take_small_len(at)? {
        // Integers pushed as read: no value built aside and copied.
        let t = take_byte(at)?;
        if t == tags.int64 {
            push_built(key, || Some(Value::Int64(take_i64(at)?)))?;
        } else {
            push_built(key, || take_tagged_value(t, at, tags))?;
        }
    }
    for _ in 0..take_small_len(at)? {
        let t = take_byte(at)?;
        if t == tags.count {
            push_built(accs, || Some(Accumulator::Count(take_i64(at)?)))?;
        } else if t == tags.sum_int {
            push_built(accs, || {
                Some(Accumulator::SumInt(take_option(at, take_i64)?))
            })?;
        } else if t == tags.sum_float {
            push_built(accs, || {
                Some(Accumulator::SumFloat(take_option(at, take_f64)?))
            })?;
        } else if t == tags.avg {
            push_built(accs, || {
                let sum = take_f64(at)?;
                Some(Accumulator::Avg {
                    sum,
                    count: take_i64(at)?,
                })
            })?;
        } else if t == tags.min {
            push_built(accs, || Some(Accumulator::Min(take_value(at, tags)?)))?;
        } else if t == tags.max {
            push_built(accs, || Some(Accumulator::Max(take_value(at, tags)?)))?;
        } else {
            return None;
        }
    }
    Some(())
}

/// Appends what `make` returns to `v`, built in its place: room is made
/// first, so no call stands between building the item and storing it. (A
/// value built aside, across `push`'s call to grow, is stored to the stack
/// field by field and then copied out whole, and the copy stalls on those
/// stores: most of a restore's decoding time.) `None` from `make` leaves
/// `v` as it was.
#[inline(always)]
fn push_built<T>(v: &mut Vec<T>, make: impl FnOnce() -> Option<T>) -> Option<()> {
    v.reserve(1);
    let item = make()?;
    let len = v.len();
    // SAFETY: `reserve(1)` made room for one element past `len` and
    // nothing has touched `v` since (`make` cannot reach it); the element
    // written is the one `set_len` then counts in.
    unsafe {
        v.as_mut_ptr().add(len).write(item);
        v.set_len(len + 1);
    }
    Some(())
}

/// An option: `0`, or `1` and what `read` reads.
#[inline]
fn take_option<T>(at: &mut &[u8], read: impl FnOnce(&mut &[u8]) -> Option<T>) -> Option<Option<T>> {
    match take_byte(at)? {
        0 => Some(None),
        1 => read(at).map(Some),
        _ => None,
    }
}

#[inline]
fn take_value(at: &mut &[u8], tags: &Tags) -> Option<Value> {
    let t = take_byte(at)?;
    take_tagged_value(t, at, tags)
}

/// The value of variant `t`, whose tag byte was read already.
#[inline]
fn take_tagged_value(t: u8, at: &mut &[u8], tags: &Tags) -> Option<Value> {
    Some(if t == tags.int64 {
        Value::Int64(take_i64(at)?)
    } else if t == tags.utf8 {
        let n = take_len(at)?;
        if n > at.len() {
            return None;
        }
        let (s, rest) = at.split_at(n);
        *at = rest;
        Value::Utf8(Str::new(std::str::from_utf8(s).ok()?))
    } else if t == tags.timestamp {
        Value::Timestamp(take_i64(at)?)
    } else if t == tags.null {
        Value::Null
    } else if t == tags.float64 {
        Value::Float64(take_f64(at)?)
    } else if t == tags.date {
        Value::Date(i32::try_from(take_i64(at)?).ok()?)
    } else if t == tags.boolean {
        Value::Boolean(match take_byte(at)? {
            0 => false,
            1 => true,
            _ => return None,
        })
    } else {
        return None;
    })
}

#[inline]
fn take_byte(at: &mut &[u8]) -> Option<u8> {
    let (&b, rest) = at.split_first()?;
    *at = rest;
    Some(b)
}

/// A length below 128 (one byte); longer lists go through postcard.
#[inline]
fn take_small_len(at: &mut &[u8]) -> Option<u8> {
    take_byte(at).filter(|b| *b < 0x80)
}

#[inline]
pub(super) fn take_len(at: &mut &[u8]) -> Option<usize> {
    usize::try_from(take_varint(at)?).ok()
}

/// A varint in its canonical (shortest) form, at most 64 bits.
#[inline]
fn take_varint(at: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..10 {
        let b = take_byte(at)?;
        if i == 9 && b > 1 {
            return None;
        }
        v |= u64::from(b & 0x7F) << (7 * i);
        if b < 0x80 {
            return (b != 0 || i == 0).then_some(v);
        }
    }
    None
}

/// A zigzag varint.
#[inline]
pub(super) fn take_i64(at: &mut &[u8]) -> Option<i64> {
    let v = take_varint(at)?;
    Some((v >> 1) as i64 ^ -((v & 1) as i64))
}

#[inline]
fn take_f64(at: &mut &[u8]) -> Option<f64> {
    let (b, rest) = at.split_first_chunk::<8>()?;
    *at = rest;
    Some(f64::from_le_bytes(*b))
}

/// Appends one group (`key`, then `accs`) to `out` in postcard's encoding:
/// directly for the forms [`take_group`] reads, through postcard for the
/// rest. The bytes are the same either way.
pub(super) fn put_group(
    out: &mut Vec<u8>,
    key: &[Value],
    accs: &[Accumulator],
    tags: &Tags,
) -> Result<(), postcard::Error> {
    let at = out.len();
    if put_group_directly(out, key, accs, tags).is_none() {
        out.truncate(at);
        let taken = std::mem::take(out);
        *out = postcard::to_extend(&(key, accs), taken)?;
    }
    Ok(())
}

/// [`put_group`] for the common forms; `None` (with `out` anywhere past
/// its length before) for another.
#[inline]
fn put_group_directly(
    out: &mut Vec<u8>,
    key: &[Value],
    accs: &[Accumulator],
    tags: &Tags,
) -> Option<()> {
    put_varint(out, key.len() as u64);
    for v in key {
        put_value(out, v, tags)?;
    }
    put_varint(out, accs.len() as u64);
    for a in accs {
        match a {
            Accumulator::Count(n) => {
                put_tag(out, tags.count)?;
                put_i64(out, *n);
            }
            Accumulator::SumInt(s) => {
                put_tag(out, tags.sum_int)?;
                put_option(out, *s, put_i64);
            }
            Accumulator::SumFloat(s) => {
                put_tag(out, tags.sum_float)?;
                put_option(out, *s, put_f64);
            }
            Accumulator::Avg { sum, count } => {
                put_tag(out, tags.avg)?;
                put_f64(out, *sum);
                put_i64(out, *count);
            }
            Accumulator::Min(v) => {
                put_tag(out, tags.min)?;
                put_value(out, v, tags)?;
            }
            Accumulator::Max(v) => {
                put_tag(out, tags.max)?;
                put_value(out, v, tags)?;
            }
            _ => return None,
        }
    }
    Some(())
}

#[inline]
fn put_value(out: &mut Vec<u8>, v: &Value, tags: &Tags) -> Option<()> {
    match v {
        Value::Int64(n) => {
            put_tag(out, tags.int64)?;
            put_i64(out, *n);
        }
        Value::Utf8(s) => {
            put_tag(out, tags.utf8)?;
            let s: &str = s;
            put_varint(out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        Value::Timestamp(t) => {
            put_tag(out, tags.timestamp)?;
            put_i64(out, *t);
        }
        Value::Null => put_tag(out, tags.null)?,
        Value::Float64(x) => {
            put_tag(out, tags.float64)?;
            put_f64(out, *x);
        }
        Value::Date(d) => {
            put_tag(out, tags.date)?;
            put_i64(out, i64::from(*d));
        }
        Value::Boolean(b) => {
            put_tag(out, tags.boolean)?;
            out.push(u8::from(*b));
        }
        Value::List(_) => return None,
    }
    Some(())
}

/// A variant number of one byte (`None` for one [`Tags`] could not find).
#[inline]
fn put_tag(out: &mut Vec<u8>, tag: u8) -> Option<()> {
    (tag < 0x80).then(|| out.push(tag))
}

/// An unsigned varint: seven bits a byte, low bits first.
#[inline]
pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// An option: `0`, or `1` and what `put` writes.
#[inline]
fn put_option<T>(out: &mut Vec<u8>, v: Option<T>, put: impl FnOnce(&mut Vec<u8>, T)) {
    match v {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            put(out, v);
        }
    }
}

/// A double as its 8 bytes, little-endian.
#[inline]
fn put_f64(out: &mut Vec<u8>, v: f64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// A zigzag varint.
#[inline]
pub(super) fn put_i64(out: &mut Vec<u8>, v: i64) {
    put_varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// One of every value and accumulator form a state file holds, for the
/// tests of both its readers.
#[cfg(test)]
pub(super) mod forms {
    use crate::schema::Value;
    use crate::state::Accumulator;

    /// Every value form, with the edges of each.
    pub(in crate::checkpoint) fn values() -> Vec<Value> {
        vec![
            Value::Null,
            Value::Boolean(true),
            Value::Boolean(false),
            Value::Int64(0),
            Value::Int64(-1),
            Value::Int64(63),
            Value::Int64(64),
            Value::Int64(i64::MAX),
            Value::Int64(i64::MIN),
            Value::Float64(-0.5),
            Value::Float64(f64::NAN),
            Value::str(""),
            Value::str("ünïcode key"),
            Value::str(&"x".repeat(300)),
            Value::Timestamp(1_700_000_000_123_456),
            Value::Timestamp(i64::MIN),
            Value::Date(-3),
            Value::Date(i32::MIN),
            Value::Date(i32::MAX),
            Value::list([Value::Int64(1), Value::Null]),
        ]
    }

    /// Every accumulator form the direct writer and reader know, and two
    /// they leave to postcard.
    pub(in crate::checkpoint) fn accumulators() -> Vec<Accumulator> {
        vec![
            Accumulator::Count(0),
            Accumulator::Count(-7),
            Accumulator::SumInt(None),
            Accumulator::SumInt(Some(i64::MIN)),
            Accumulator::SumFloat(None),
            Accumulator::SumFloat(Some(1e300)),
            Accumulator::Avg { sum: 2.5, count: 3 },
            Accumulator::Min(Value::Null),
            Accumulator::Min(Value::str("a")),
            Accumulator::Max(Value::Int64(9)),
            Accumulator::Max(Value::Date(1)),
            Accumulator::Max(Value::list([Value::Int64(2)])),
            Accumulator::CollectList(vec![Value::Int64(4)]),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value and accumulator form, written directly or through
    /// postcard, gives postcard's bytes and reads back as it was.
    #[test]
    fn groups_are_written_as_postcard_writes_them() {
        let (values, accs) = (forms::values(), forms::accumulators());
        let tags = Tags::get();
        let long_key: Vec<Value> = (0..200).map(Value::Int64).collect();
        let mut cases: Vec<(Vec<Value>, Vec<Accumulator>)> = Vec::new();
        for (i, v) in values.iter().enumerate() {
            cases.push((vec![v.clone()], vec![accs[i % accs.len()].clone()]));
            cases.push((vec![Value::Int64(i as i64), v.clone()], accs.to_vec()));
        }
        for a in &accs {
            cases.push((vec![], vec![a.clone()]));
        }
        cases.push((long_key, accs[..3].to_vec()));
        for (key, a) in cases {
            let mut out = vec![9u8];
            put_group(&mut out, &key, &a, tags).unwrap();
            let want = postcard::to_stdvec(&(&key, &a)).unwrap();
            assert_eq!(&out[1..], &want[..], "{key:?} {a:?}");
            let mut at = &out[1..];
            let (mut k2, mut a2) = (Vec::new(), Vec::new());
            if take_group(&mut at, tags, &mut k2, &mut a2).is_some() {
                assert!(at.is_empty());
                assert_eq!(format!("{k2:?}{a2:?}"), format!("{key:?}{a:?}"));
            }
        }
    }
}
