//! The checksum around every file recovery reads.
//!
//! A sealed file is one header line, `runnel-frame v1 crc32=XXXXXXXX
//! len=N`, then the N payload bytes (JSON or binary). A file whose header or
//! payload does not match is damaged and is never trusted. Files written
//! before checksums existed start straight with their JSON payload; they
//! are read as such ([`Opened::Legacy`]) and it is the caller's decision
//! whether that is acceptable. This module owns the framing only; it must
//! not know what the payload means.

use std::path::Path;

use crate::error::{EngineError, Result};

const PREFIX: &[u8] = b"runnel-frame v1 crc32=";

/// What [`open`] found.
#[derive(Debug, PartialEq)]
pub enum Opened<'a> {
    /// A sealed file whose checksum matches: its payload.
    Sealed(&'a [u8]),
    /// A file without a frame (written before checksums): all of it.
    Legacy(&'a [u8]),
}

/// The header line that seals `payload`: written in front of it, the two
/// make the sealed file ([`seal`] without copying the payload).
pub fn header(payload: &[u8]) -> String {
    let crc = crc32fast::hash(payload);
    format!(
        "{}{crc:08x} len={}\n",
        std::str::from_utf8(PREFIX).unwrap_or_default(),
        payload.len()
    )
}

/// `payload` with its header in front.
pub fn seal(payload: &[u8]) -> Vec<u8> {
    let header = header(payload);
    let mut out = Vec::with_capacity(header.len() + payload.len());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(payload);
    out
}

/// The checksum and payload length of a header line (`rest` starts after
/// [`PREFIX`]), and where its payload starts in `rest`.
fn parse_header(rest: &[u8]) -> std::result::Result<(u32, usize, usize), String> {
    let newline = rest
        .iter()
        .take(64)
        .position(|b| *b == b'\n')
        .ok_or_else(|| "its header is cut short".to_string())?;
    let header =
        std::str::from_utf8(&rest[..newline]).map_err(|_| "its header is not text".to_string())?;
    let (crc, len) = header
        .split_once(" len=")
        .filter(|(c, l)| {
            // Exactly as written: 8 lower-case hex digits, decimal length.
            c.len() == 8
                && c.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                && !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_digit())
        })
        .and_then(|(c, l)| Some((u32::from_str_radix(c, 16).ok()?, l.parse::<usize>().ok()?)))
        .ok_or_else(|| format!("unreadable header {header:?}"))?;
    Ok((crc, len, newline + 1))
}

/// Checks the frame of `bytes` (read from `path`, named in errors).
pub fn open<'a>(path: &Path, bytes: &'a [u8]) -> Result<Opened<'a>> {
    let Some(rest) = bytes.strip_prefix(PREFIX) else {
        return Ok(Opened::Legacy(bytes));
    };
    let damaged = |why: String| {
        EngineError::checkpoint(path, format!("the file is damaged ({why}); it is not used"))
    };
    let (crc, len, start) = parse_header(rest).map_err(damaged)?;
    let payload = &rest[start..];
    if payload.len() != len {
        return Err(damaged(format!(
            "{} payload bytes, the header says {len}",
            payload.len()
        )));
    }
    let actual = crc32fast::hash(payload);
    if actual != crc {
        return Err(damaged(format!(
            "checksum {actual:08x}, the header says {crc:08x}"
        )));
    }
    Ok(Opened::Sealed(payload))
}

/// What [`take`] found at the start of a run of frames written one after
/// the other (a journal's records).
#[derive(Debug, PartialEq)]
pub enum Taken<'a> {
    /// A frame whose checksum matches: its payload, and the frame's length
    /// (where the next one starts).
    Frame {
        /// The payload.
        payload: &'a [u8],
        /// Header and payload, in bytes.
        len: usize,
    },
    /// A frame whose header reads and whose payload is all there but does
    /// not match it; the frame's length as the header gives it (which may
    /// itself be what is damaged).
    Damaged {
        /// What does not match.
        why: String,
        /// Header and payload, in bytes, as the header says.
        len: usize,
    },
    /// No frame starts here (a damaged header), or it is cut short (a torn
    /// write): where the next frame starts is unknown.
    Unreadable(String),
}

/// The frame at the start of `bytes`, which may be followed by more.
pub fn take(bytes: &[u8]) -> Taken<'_> {
    let Some(rest) = bytes.strip_prefix(PREFIX) else {
        return Taken::Unreadable("no frame header".into());
    };
    let (crc, len, start) = match parse_header(rest) {
        Ok(h) => h,
        Err(why) => return Taken::Unreadable(why),
    };
    let (Some(end), Some(total)) = (
        start.checked_add(len),
        (PREFIX.len() + start).checked_add(len),
    ) else {
        return Taken::Unreadable(format!("unreadable header: a length of {len}"));
    };
    let Some(payload) = rest.get(start..end) else {
        return Taken::Unreadable(format!(
            "cut short: {} payload bytes, the header says {len}",
            rest.len() - start
        ));
    };
    let actual = crc32fast::hash(payload);
    if actual != crc {
        return Taken::Damaged {
            why: format!("checksum {actual:08x}, the header says {crc:08x}"),
            len: total,
        };
    }
    Taken::Frame {
        payload,
        len: total,
    }
}

/// Where the next frame header after the start of `bytes` begins, if any:
/// the place to go on reading after an unreadable frame.
pub fn next_header(bytes: &[u8]) -> Option<usize> {
    let from = 1.min(bytes.len());
    bytes[from..]
        .windows(PREFIX.len())
        .position(|w| w == PREFIX)
        .map(|i| i + from)
}

/// The payload of `bytes` (read from `path`): a sealed file's after its
/// checksum is checked, an unframed file's whole.
pub fn payload<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a [u8]> {
    Ok(match open(path, bytes)? {
        Opened::Sealed(p) | Opened::Legacy(p) => p,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flipped_bit_anywhere_is_detected() {
        let sealed = seal(b"{\"epoch\":7}");
        assert_eq!(
            open(Path::new("f"), &sealed).unwrap(),
            Opened::Sealed(b"{\"epoch\":7}")
        );
        for i in 0..sealed.len() {
            for bit in 0..8 {
                let mut bad = sealed.clone();
                bad[i] ^= 1 << bit;
                match open(Path::new("f"), &bad) {
                    Err(e) => assert!(e.to_string().contains("damaged"), "{e}"),
                    // A flip in the prefix makes it look unframed: the JSON
                    // reader then sees the header as garbage and fails.
                    Ok(Opened::Legacy(b)) => assert!(b.starts_with(b"r") || b[0] != b'{'),
                    Ok(Opened::Sealed(p)) => panic!("byte {i} bit {bit} passed: {p:?}"),
                }
            }
        }
        let cut = &sealed[..sealed.len() - 1];
        assert!(open(Path::new("f"), cut).is_err());
        assert_eq!(open(Path::new("f"), b"{}").unwrap(), Opened::Legacy(b"{}"));
    }
}
