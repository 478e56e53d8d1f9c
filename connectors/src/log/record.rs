//! Record framing: encoding, validation (length and CRC) and zero-copy
//! parsing of single records.
//!
//! Owns the byte layout documented in the module root and nothing else: it
//! must not do I/O or know about files, segments or offsets sequencing.

use super::MAX_SEGMENT_BYTES;

/// Bytes a record takes on disk in addition to its key and value (length,
/// CRC, offset, timestamp and the two length prefixes).
pub const RECORD_OVERHEAD: usize = 32;

/// Size of the leading `length` field.
const LENGTH_FIELD: usize = 4;
/// Smallest valid value of the `length` field (no key, no value).
const MIN_LENGTH: usize = RECORD_OVERHEAD - LENGTH_FIELD;
/// Largest valid value of the `length` field: a record never exceeds a
/// segment.
const MAX_LENGTH: usize = MAX_SEGMENT_BYTES as usize - LENGTH_FIELD;
/// Where the CRC-protected part starts.
const CRC_START: usize = 8;

/// A record borrowed from a segment (or a reader's buffer): valid until the
/// reader is used again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Offset of the record in its partition.
    pub offset: u64,
    /// Producer-supplied timestamp, milliseconds.
    pub timestamp_ms: i64,
    /// The key, `None` for a null key (distinct from an empty key).
    pub key: Option<&'a [u8]>,
    /// The value, `None` for a null value (distinct from an empty value).
    pub value: Option<&'a [u8]>,
}

impl RecordRef<'_> {
    /// Copies the record into an owned [`Record`].
    pub fn to_record(&self) -> Record {
        Record {
            offset: self.offset,
            timestamp_ms: self.timestamp_ms,
            key: self.key.map(<[u8]>::to_vec),
            value: self.value.map(<[u8]>::to_vec),
        }
    }

    /// Bytes this record takes on disk.
    pub fn encoded_len(&self) -> usize {
        encoded_len(self.key, self.value)
    }

    /// Parses a record that [`check`] has validated. `bytes` must be exactly
    /// the record.
    pub(crate) fn parse_valid(bytes: &[u8]) -> RecordRef<'_> {
        let offset = u64_at(bytes, 8);
        let timestamp_ms = u64_at(bytes, 16) as i64;
        let key_len = i32_at(bytes, 24);
        let (key, value_at) = if key_len < 0 {
            (None, 28)
        } else {
            let end = 28 + key_len as usize;
            (Some(&bytes[28..end]), end)
        };
        let value_len = i32_at(bytes, value_at);
        let value = if value_len < 0 {
            None
        } else {
            Some(&bytes[value_at + 4..value_at + 4 + value_len as usize])
        };
        RecordRef {
            offset,
            timestamp_ms,
            key,
            value,
        }
    }
}

/// An owned record, see [`RecordRef`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// Offset of the record in its partition.
    pub offset: u64,
    /// Producer-supplied timestamp, milliseconds.
    pub timestamp_ms: i64,
    /// The key, `None` for a null key.
    pub key: Option<Vec<u8>>,
    /// The value, `None` for a null value.
    pub value: Option<Vec<u8>>,
}

impl Record {
    /// Borrows the record as a [`RecordRef`].
    pub fn as_record_ref(&self) -> RecordRef<'_> {
        RecordRef {
            offset: self.offset,
            timestamp_ms: self.timestamp_ms,
            key: self.key.as_deref(),
            value: self.value.as_deref(),
        }
    }
}

impl From<RecordRef<'_>> for Record {
    fn from(r: RecordRef<'_>) -> Self {
        r.to_record()
    }
}

/// Bytes a record with this key and value takes on disk.
pub(crate) fn encoded_len(key: Option<&[u8]>, value: Option<&[u8]>) -> usize {
    RECORD_OVERHEAD + key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len)
}

/// Appends the encoding of one record to `buf`. The caller has checked that
/// the record fits a segment (so every length fits its field).
pub(crate) fn encode_into(
    buf: &mut Vec<u8>,
    offset: u64,
    timestamp_ms: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) {
    let total = encoded_len(key, value);
    debug_assert!(total - LENGTH_FIELD <= MAX_LENGTH);
    let start = buf.len();
    buf.reserve(total);
    buf.extend_from_slice(&((total - LENGTH_FIELD) as u32).to_le_bytes());
    buf.extend_from_slice(&[0; 4]); // CRC, patched below
    buf.extend_from_slice(&offset.to_le_bytes());
    buf.extend_from_slice(&timestamp_ms.to_le_bytes());
    put_bytes(buf, key);
    put_bytes(buf, value);
    let crc = crc32fast::hash(&buf[start + CRC_START..]);
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn put_bytes(buf: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => buf.extend_from_slice(&(-1i32).to_le_bytes()),
        Some(b) => {
            buf.extend_from_slice(&(b.len() as i32).to_le_bytes());
            buf.extend_from_slice(b);
        }
    }
}

/// Outcome of validating the bytes at a record boundary.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Check {
    /// A valid record of this many bytes starts here.
    Valid(usize),
    /// The data ends before the record does; at least `needed` bytes (from
    /// the record start) are required to decide.
    Incomplete {
        /// Bytes needed from the start of the record.
        needed: usize,
    },
    /// The bytes are not a valid record.
    Corrupt {
        /// What is wrong.
        reason: String,
        /// The record's extent according to its length field, if that field
        /// is plausible (used to tell a torn tail from mid-file corruption).
        declared_len: Option<usize>,
    },
}

/// Validates the record starting at `bytes[0]`; `bytes` extends to the end of
/// the available data. Checks the length, the CRC and the inner lengths.
#[inline]
pub(crate) fn check(bytes: &[u8]) -> Check {
    if bytes.len() < LENGTH_FIELD {
        return Check::Incomplete {
            needed: RECORD_OVERHEAD,
        };
    }
    let length = u32_at(bytes, 0) as usize;
    if !(MIN_LENGTH..=MAX_LENGTH).contains(&length) {
        return Check::Corrupt {
            reason: format!(
                "record length field is {length}, valid lengths are {MIN_LENGTH}..={MAX_LENGTH}"
            ),
            declared_len: None,
        };
    }
    let total = LENGTH_FIELD + length;
    if bytes.len() < total {
        return Check::Incomplete { needed: total };
    }
    let record = &bytes[..total];
    let stored = u32_at(record, 4);
    let computed = crc32fast::hash(&record[CRC_START..]);
    if stored != computed {
        return Check::Corrupt {
            reason: format!("CRC mismatch (stored {stored:#010x}, computed {computed:#010x})"),
            declared_len: Some(total),
        };
    }
    // The CRC matched, so these only fail for data written by a broken
    // writer; still never trust them blindly.
    let key_len = i32_at(record, 24);
    let key = if key_len < 0 { 0 } else { key_len as usize };
    let value_at = 28 + key;
    let inner_ok = key_len >= -1 && value_at + 4 <= total && {
        let value_len = i32_at(record, value_at);
        let value = if value_len < 0 { 0 } else { value_len as usize };
        value_len >= -1 && value_at + 4 + value == total
    };
    if !inner_ok {
        return Check::Corrupt {
            reason: "key/value lengths do not match the record length".to_string(),
            declared_len: Some(total),
        };
    }
    Check::Valid(total)
}

/// The offset field of a record that [`check`] validated.
#[inline]
pub(crate) fn offset_of(record: &[u8]) -> u64 {
    u64_at(record, 8)
}

#[inline]
fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

#[inline]
fn i32_at(b: &[u8], at: usize) -> i32 {
    u32_at(b, at) as i32
}

#[inline]
fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

    fn encode(offset: u64, ts: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> Vec<u8> {
        let mut buf = Vec::new();
        encode_into(&mut buf, offset, ts, key, value);
        buf
    }

    #[test]
    fn layout_is_stable() {
        let buf = encode(7, -2, Some(b"k"), None);
        assert_eq!(buf.len(), RECORD_OVERHEAD + 1);
        assert_eq!(&buf[0..4], &29u32.to_le_bytes());
        assert_eq!(&buf[8..16], &7u64.to_le_bytes());
        assert_eq!(&buf[16..24], &(-2i64).to_le_bytes());
        assert_eq!(&buf[24..28], &1i32.to_le_bytes());
        assert_eq!(buf[28], b'k');
        assert_eq!(&buf[29..33], &(-1i32).to_le_bytes());
        assert_eq!(&buf[4..8], &crc32fast::hash(&buf[8..]).to_le_bytes());
    }

    #[test]
    fn round_trip_all_null_combinations() {
        let cases: [KeyValue<'_>; 5] = [
            (None, None),
            (Some(b""), None),
            (None, Some(b"")),
            (Some(b"key"), Some(b"value")),
            (None, Some(b"v")),
        ];
        for (i, (key, value)) in cases.into_iter().enumerate() {
            let buf = encode(i as u64, i as i64 * 10, key, value);
            assert_eq!(check(&buf), Check::Valid(buf.len()));
            let r = RecordRef::parse_valid(&buf);
            assert_eq!(r.offset, i as u64);
            assert_eq!(r.timestamp_ms, i as i64 * 10);
            assert_eq!(r.key, key);
            assert_eq!(r.value, value);
            assert_eq!(r.encoded_len(), buf.len());
        }
    }

    #[test]
    fn detects_incomplete_and_corrupt() {
        let buf = encode(1, 2, Some(b"abc"), Some(b"defgh"));
        for cut in 0..buf.len() {
            assert!(
                matches!(check(&buf[..cut]), Check::Incomplete { .. }),
                "cut at {cut}"
            );
        }
        for i in 4..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x10;
            assert!(
                matches!(check(&bad), Check::Corrupt { declared_len: Some(n), .. } if n == buf.len()),
                "flip at {i}"
            );
        }
        let mut bad = buf.clone();
        bad[0..4].copy_from_slice(&3u32.to_le_bytes());
        assert!(matches!(
            check(&bad),
            Check::Corrupt {
                declared_len: None,
                ..
            }
        ));
        let zeros = [0u8; 64];
        assert!(matches!(check(&zeros), Check::Corrupt { .. }));
    }
}
