//! `approx_count_distinct`'s sketch: HyperLogLog registers over a fixed hash.
//!
//! A value is hashed with SipHash-1-3 under fixed keys, over a fixed byte
//! form of the value ([`hash_value`] and the typed `hash_*` functions, which
//! give the same hash for the same value), so that a sketch restored from a
//! checkpoint in another process, or by a later release, keeps counting the
//! same values into the same registers. The registers are stored as bytes;
//! everything else is derived from them when a sketch is read back.

use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

use hyperloglockless::HyperLogLog;
use rustc_hash::FxHasher;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use siphasher::sip::SipHasher13;

use crate::schema::Value;

/// Spark's default relative standard deviation of `approx_count_distinct`.
pub const DEFAULT_RSD: f64 = 0.05;
/// The fewest register-index bits (16 registers).
pub const MIN_PRECISION: u8 = 4;
/// The most register-index bits (262,144 registers).
pub const MAX_PRECISION: u8 = 18;

/// The hash keys. Changing them makes every checkpointed sketch count again
/// values it has already seen: never change them.
const KEY0: u64 = 0x7275_6e6e_656c_2d61;
const KEY1: u64 = 0x7070_726f_782d_6463;

/// The register-index bits for a relative standard deviation, as Spark
/// derives them (`ceil(2 * log2(1.106 / rsd))`); `None` when the result is
/// outside [`MIN_PRECISION`]`..=`[`MAX_PRECISION`] (an rsd above about 0.39
/// or below about 0.0022, zero, negative or not a number).
pub fn precision_for_rsd(rsd: f64) -> Option<u8> {
    if !(rsd.is_finite() && rsd > 0.0) {
        return None;
    }
    let p = (2.0 * (1.106 / rsd).log2()).ceil();
    (f64::from(MIN_PRECISION)..=f64::from(MAX_PRECISION))
        .contains(&p)
        .then_some(p as u8)
}

#[inline]
fn sip() -> SipHasher13 {
    SipHasher13::new_with_keys(KEY0, KEY1)
}

/// The hash of a `bigint` or `timestamp`.
#[inline]
pub fn hash_i64(v: i64) -> u64 {
    let mut h = sip();
    h.write(&v.to_le_bytes());
    h.finish()
}

/// The hash of a `date`.
#[inline]
pub fn hash_i32(v: i32) -> u64 {
    let mut h = sip();
    h.write(&v.to_le_bytes());
    h.finish()
}

/// The hash of a `double`: -0.0 counts as 0.0 and every NaN as one value.
#[inline]
pub fn hash_f64(v: f64) -> u64 {
    let v = if v.is_nan() {
        f64::NAN
    } else if v == 0.0 {
        0.0
    } else {
        v
    };
    hash_i64(v.to_bits() as i64)
}

/// The hash of a `string`.
#[inline]
pub fn hash_str(v: &str) -> u64 {
    let mut h = sip();
    h.write(v.as_bytes());
    h.finish()
}

/// The hash of a `boolean`.
#[inline]
pub fn hash_bool(v: bool) -> u64 {
    let mut h = sip();
    h.write(&[u8::from(v)]);
    h.finish()
}

/// The hash of a non-null value (`None` for null, which is not counted).
#[inline]
pub fn hash_value(v: &Value) -> Option<u64> {
    Some(match v {
        Value::Null => return None,
        Value::Boolean(b) => hash_bool(*b),
        Value::Int64(i) | Value::Timestamp(i) => hash_i64(*i),
        Value::Float64(f) => hash_f64(*f),
        Value::Utf8(s) => hash_str(s),
        Value::Date(d) => hash_i32(*d),
        Value::List(items) => {
            // The length, then each element's hash (0 for a null one).
            let mut h = sip();
            h.write_u64(items.len() as u64);
            for item in items.iter() {
                h.write_u64(hash_value(item).unwrap_or(0));
            }
            h.finish()
        }
    })
}

type Registers = HyperLogLog<BuildHasherDefault<FxHasher>>;

/// The distinct-count sketch of one group: `2^precision` registers.
#[derive(Clone, PartialEq)]
pub struct DistinctSketch(Registers);

impl DistinctSketch {
    /// An empty sketch with `2^precision` registers (`precision` is
    /// clamped to [`MIN_PRECISION`]`..=`[`MAX_PRECISION`]; plans check it).
    pub fn new(precision: u8) -> DistinctSketch {
        let p = precision.clamp(MIN_PRECISION, MAX_PRECISION);
        DistinctSketch(HyperLogLog::with_hasher(p, BuildHasherDefault::default()))
    }

    /// Counts a value by its hash ([`hash_value`]).
    #[inline]
    pub fn insert_hash(&mut self, hash: u64) {
        self.0.insert_hash(hash);
    }

    /// Folds in another sketch: afterwards this one has seen both's values.
    /// A sketch of another size (never the same aggregate's) is ignored.
    pub fn merge(&mut self, other: &DistinctSketch) {
        let _ = self.0.union(&other.0);
    }

    /// The estimated number of distinct values.
    #[inline]
    pub fn estimate(&self) -> i64 {
        self.0.raw_count().round() as i64
    }

    /// The number of registers.
    pub fn registers(&self) -> usize {
        self.0.len()
    }

    /// Rebuilds a sketch from its registers; `None` unless their number is
    /// a power of two between `2^MIN_PRECISION` and `2^MAX_PRECISION` and
    /// every register holds a possible value.
    fn from_registers(registers: Vec<u8>) -> Option<DistinctSketch> {
        let n = registers.len();
        let ok_len =
            n.is_power_of_two() && (1usize << MIN_PRECISION..=1usize << MAX_PRECISION).contains(&n);
        if !ok_len || registers.iter().any(|&r| r > 65) {
            return None;
        }
        let zeros = registers.iter().filter(|&&r| r == 0).count();
        let sum: f64 = registers.iter().map(|&r| (-f64::from(r)).exp2()).sum();
        Some(DistinctSketch(HyperLogLog::from_parts(
            registers.into_boxed_slice(),
            BuildHasherDefault::default(),
            zeros,
            sum,
        )))
    }
}

impl fmt::Debug for DistinctSketch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DistinctSketch({} registers, ~{})",
            self.registers(),
            self.estimate()
        )
    }
}

/// Stored as the registers' bytes.
impl Serialize for DistinctSketch {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (registers, _, _, _) = self.0.parts();
        s.serialize_bytes(registers)
    }
}

impl<'de> Deserialize<'de> for DistinctSketch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<DistinctSketch, D::Error> {
        struct Bytes;
        impl<'de> Visitor<'de> for Bytes {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a distinct-count sketch's registers")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 18));
                while let Some(b) = seq.next_element()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        let registers = d.deserialize_bytes(Bytes)?;
        let n = registers.len();
        DistinctSketch::from_registers(registers).ok_or_else(|| {
            de::Error::custom(format!(
                "a distinct-count sketch of {n} registers is not valid"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spark_precisions_for_relative_deviations() {
        assert_eq!(precision_for_rsd(DEFAULT_RSD), Some(9));
        assert_eq!(precision_for_rsd(0.01), Some(14));
        assert_eq!(precision_for_rsd(0.39), Some(4));
        assert_eq!(precision_for_rsd(0.4), None);
        assert_eq!(precision_for_rsd(0.002), None);
        assert_eq!(precision_for_rsd(0.0), None);
        assert_eq!(precision_for_rsd(-0.1), None);
        assert_eq!(precision_for_rsd(f64::NAN), None);
    }

    /// The hash is a fixed function of the value: these numbers must never
    /// change, or restored sketches would count seen values again.
    #[test]
    fn hashes_are_fixed_across_processes_and_releases() {
        assert_eq!(hash_value(&Value::Int64(1)), Some(hash_i64(1)));
        assert_eq!(hash_value(&Value::Timestamp(1)), Some(hash_i64(1)));
        assert_eq!(hash_f64(-0.0), hash_f64(0.0));
        assert_eq!(hash_f64(f64::NAN), hash_f64(-f64::NAN));
        assert_eq!(hash_value(&Value::Null), None);
        assert_eq!(hash_value(&Value::str("a")), Some(hash_str("a")));
        let fixed = [
            hash_i64(42),
            hash_str("runnel"),
            hash_bool(true),
            hash_i32(7),
        ];
        assert_eq!(fixed, FIXED, "{fixed:#x?}");
    }

    const FIXED: [u64; 4] = [
        3262391903493377957,
        9006639172289241290,
        18321704030958734694,
        3215892336781764087,
    ];

    #[test]
    fn registers_round_trip_and_bad_ones_are_refused() {
        let mut s = DistinctSketch::new(9);
        for i in 0..1000 {
            s.insert_hash(hash_i64(i));
        }
        let bytes = postcard::to_stdvec(&s).unwrap();
        assert!(bytes.len() <= 515, "{}", bytes.len());
        let back: DistinctSketch = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.estimate(), s.estimate());
        let json = serde_json::to_vec(&s).unwrap();
        let back: DistinctSketch = serde_json::from_slice(&json).unwrap();
        assert_eq!(back.estimate(), s.estimate());
        for bad in [vec![0u8; 15], vec![0u8; 100], vec![70u8; 16]] {
            let bytes = postcard::to_stdvec(&serde_bytes_of(&bad)).unwrap();
            let err = postcard::from_bytes::<DistinctSketch>(&bytes).unwrap_err();
            assert!(!err.to_string().is_empty());
        }
    }

    struct RawBytes<'a>(&'a [u8]);
    impl Serialize for RawBytes<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }
    fn serde_bytes_of(b: &[u8]) -> RawBytes<'_> {
        RawBytes(b)
    }
}
