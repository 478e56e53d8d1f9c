//! Conversions between the engine's value types, with Spark's non-ANSI rules.
//!
//! Owns `CAST` on single values, for every pair of the engine's types:
//! text to numbers, booleans, timestamps and dates; numbers to and from
//! timestamps (in seconds, as Spark does); booleans to numbers and
//! timestamps; timestamps and dates to each other; anything to text. A date
//! does not convert to a number or a boolean, nor a number to a date (null,
//! as Spark's non-ANSI cast gives). A value that does not convert becomes null, never an error (Spark's
//! default, `spark.sql.ansi.enabled=false`). Text without a zone, dates and
//! the text of timestamps are local times in the session time zone. It must
//! not know about expressions or columns: the evaluators call it.

use super::{DataType, Str, Value};
use crate::time::{self, Zone};

const US_PER_DAY: i64 = 86_400_000_000;

/// Converts a value to `to` in UTC; a value that does not convert becomes
/// null.
pub(crate) fn cast_value(v: &Value, to: &DataType) -> Value {
    cast_value_in(v, to, Zone::UTC)
}

/// A bigint's decimal text, held in the value (at most 20 bytes), written
/// without the formatting machinery: casts of numbers to strings are
/// common in per-event projections.
fn int_text(i: i64) -> Str {
    /// `00` to `99`: two digits written per division.
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
        2021222324252627282930313233343536373839\
        4041424344454647484950515253545556575859\
        6061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899";
    let pair = |k: u64| -> [u8; 2] {
        let k = 2 * k as usize;
        [PAIRS[k], PAIRS[k + 1]]
    };
    let mut n = i.unsigned_abs();
    let digits = n.checked_ilog10().map_or(1, |d| d as usize + 1);
    let len = digits + usize::from(i < 0);
    let mut buf = [0u8; Str::INLINE_CAP];
    let mut at = len;
    while n >= 100 {
        at -= 2;
        buf[at..at + 2].copy_from_slice(&pair(n % 100));
        n /= 100;
    }
    if n >= 10 {
        at -= 2;
        buf[at..at + 2].copy_from_slice(&pair(n));
    } else {
        at -= 1;
        buf[at] = b'0' + n as u8;
    }
    if i < 0 {
        buf[0] = b'-';
    }
    // SAFETY: `buf[..len]` is ASCII digits after an optional sign, and
    // `len` is at most 20, within `INLINE_CAP`.
    unsafe { Str::inline(buf, len) }
}

/// Converts a value to `to` in the session time zone `zone`: a timestamp
/// is written, and text without an offset read, as local time; a
/// timestamp's date is its local date; a date is its local midnight.
pub(crate) fn cast_value_in(v: &Value, to: &DataType, zone: Zone) -> Value {
    use Value::*;
    match (v, to) {
        (Null, _) => Null,
        (Int64(_), DataType::Int64)
        | (Float64(_), DataType::Float64)
        | (Utf8(_), DataType::Utf8)
        | (Boolean(_), DataType::Boolean)
        | (Timestamp(_), DataType::Timestamp(..))
        | (Date(_), DataType::Date32) => v.clone(),
        (Int64(i), DataType::Float64) => Float64(*i as f64),
        // The JVM's double-to-long: truncation, saturating, NaN is 0.
        (Float64(f), DataType::Int64) => Int64(*f as i64),
        (Boolean(b), DataType::Int64) => Int64(*b as i64),
        (Boolean(b), DataType::Float64) => Float64(*b as i64 as f64),
        (Int64(i), DataType::Boolean) => Boolean(*i != 0),
        (Float64(f), DataType::Boolean) => Boolean(*f != 0.0),
        (Utf8(s), DataType::Int64) => {
            let t = s.trim();
            t.parse::<i64>()
                .ok()
                .or_else(|| {
                    t.parse::<f64>()
                        .ok()
                        .filter(|f| f.is_finite())
                        .map(|f| f.trunc() as i64)
                })
                .map_or(Null, Int64)
        }
        (Utf8(s), DataType::Float64) => s.trim().parse::<f64>().map_or(Null, Float64),
        (Utf8(s), DataType::Boolean) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "t" | "yes" | "y" | "1" => Boolean(true),
            "false" | "f" | "no" | "n" | "0" => Boolean(false),
            _ => Null,
        },
        (Utf8(s), DataType::Timestamp(..)) => {
            time::parse_timestamp_in(s, zone).map_or(Null, Timestamp)
        }
        // A date, or the date of a timestamp's text (`2024-01-02 10:00`).
        (Utf8(s), DataType::Date32) => time::parse_date(s)
            .or_else(|| time::parse_timestamp_us(s).map(|us| us.div_euclid(86_400_000_000) as i32))
            .map_or(Null, Date),
        (Timestamp(us), DataType::Utf8) if !zone.is_utc() => {
            Value::from(time::format_timestamp_in(*us, zone))
        }
        (Int64(i), DataType::Utf8) => Utf8(int_text(*i)),
        // Written straight into the value when it fits: no allocation.
        (_, DataType::Utf8) => Utf8(Str::from_display(v)),
        // Spark: timestamp <-> number is in seconds.
        (Timestamp(us), DataType::Int64) => Int64(us.div_euclid(1_000_000)),
        (Timestamp(us), DataType::Float64) => Float64(*us as f64 / 1e6),
        (Int64(s), DataType::Timestamp(..)) => Timestamp(s.saturating_mul(1_000_000)),
        (Float64(s), DataType::Timestamp(..)) => {
            if s.is_finite() {
                Timestamp((s * 1e6) as i64)
            } else {
                Null
            }
        }
        (Timestamp(us), DataType::Date32) => zone
            .to_local(*us)
            .map_or(Null, |l| Date(l.div_euclid(US_PER_DAY) as i32)),
        (Date(d), DataType::Timestamp(..)) => (*d as i64)
            .checked_mul(US_PER_DAY)
            .and_then(|l| zone.from_local(l))
            .map_or(Null, Timestamp),
        // Spark: a boolean is 0 or 1 microsecond, a timestamp is true when
        // it is not the epoch.
        (Boolean(b), DataType::Timestamp(..)) => Timestamp(i64::from(*b)),
        (Timestamp(us), DataType::Boolean) => Boolean(*us != 0),
        // Spark (non-ANSI): a date does not convert to a number or a boolean.
        _ => Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bigint_cast_to_text_reads_as_its_decimal_form() {
        for i in [
            0,
            7,
            -7,
            10,
            -10,
            1_234_567_890,
            i64::MAX,
            i64::MIN,
            i64::MIN + 1,
        ] {
            assert_eq!(
                cast_value(&Value::Int64(i), &DataType::Utf8),
                Value::str(&i.to_string()),
                "{i}"
            );
        }
        // Every number of digits, at its edges, both signs; and a spread.
        let mut p = 1i64;
        let mut values = vec![];
        for _ in 0..19 {
            values.extend([p - 1, p, p + 1]);
            values.extend([2, 9, 10].map(|k| p.saturating_mul(k)));
            p = p.saturating_mul(10);
        }
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push((x >> (x % 64)) as i64);
        }
        for i in values.into_iter().flat_map(|v| [v, v.wrapping_neg()]) {
            assert_eq!(
                cast_value(&Value::Int64(i), &DataType::Utf8),
                Value::str(&i.to_string()),
                "{i}"
            );
        }
    }
}
