//! The engine's string value, [`Str`].
//!
//! Owns how a string is held inside a [`Value`](super::Value): up to 23
//! bytes in place, longer ones shared behind a reference count, in 24
//! bytes whose last byte says which. That byte takes 25 of its 256
//! values, so the enclosing value keeps its own tag in the rest and stays
//! 24 bytes. A string built by a per-event function (`concat`, a number's
//! text) is written straight into the place it is returned in.
//!
//! It must not know about SQL: types, nulls and casts are the schema's and
//! the expressions'. It holds no text that is not UTF-8.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::Arc;

/// How many bytes a string holds in place.
const CAP: usize = 23;

/// The last byte of a [`Str`]: an inline length (0 to 23), or [`Tag::Shared`].
/// Being an enum, the byte values it never takes (25 to 255) are free for
/// an enclosing enum's discriminant.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
#[allow(dead_code)] // the lengths are made by a cast of the number, never by name
enum Tag {
    L0 = 0,
    L1,
    L2,
    L3,
    L4,
    L5,
    L6,
    L7,
    L8,
    L9,
    L10,
    L11,
    L12,
    L13,
    L14,
    L15,
    L16,
    L17,
    L18,
    L19,
    L20,
    L21,
    L22,
    L23,
    Shared,
}

impl Tag {
    /// The tag of an inline string of `len` bytes.
    ///
    /// # Safety
    ///
    /// `len` must be at most 23.
    #[inline(always)]
    unsafe fn inline(len: usize) -> Tag {
        debug_assert!(len <= CAP);
        // SAFETY: `Tag` is `repr(u8)` with the values 0 to 23 in order, and
        // the caller promised `len <= 23`.
        unsafe { std::mem::transmute::<u8, Tag>(len as u8) }
    }
}

/// A shared string's data: the `Arc<str>`'s text and its length.
#[derive(Clone, Copy)]
#[repr(C)]
struct Shared {
    ptr: NonNull<u8>,
    len: usize,
}

/// The first 16 bytes: text, or a shared string's pointer and length.
#[derive(Clone, Copy)]
#[repr(C)]
union Head {
    bytes: [u8; 16],
    shared: Shared,
}

/// A string value: up to 23 bytes held in place, longer ones shared
/// (reference-counted), so cloning one never allocates and a short one
/// touches no shared count. Dereferences to `str`; hashes, compares and
/// serializes as one.
#[repr(C)]
pub struct Str {
    /// Inline: bytes 0 to 15 of the text. Shared: [`Shared`].
    head: Head,
    /// Inline: bytes 16 to 22 of the text. Shared: zeros.
    tail: [u8; 7],
    tag: Tag,
}

// SAFETY: a `Str` is either plain bytes or one count of an `Arc<str>`,
// whose text is never written through it; `Arc<str>` is `Send` and `Sync`.
unsafe impl Send for Str {}
// SAFETY: as for `Send`: shared access only reads the text.
unsafe impl Sync for Str {}

impl Str {
    /// How many bytes a string holds without a shared allocation.
    pub const INLINE_CAP: usize = CAP;

    /// The empty string.
    pub const EMPTY: Str = Str {
        head: Head { bytes: [0; 16] },
        tail: [0; 7],
        tag: Tag::L0,
    };

    /// `text` as a string value: in place when it fits, else copied once
    /// into a shared allocation.
    #[inline]
    pub fn new(text: impl AsRef<str>) -> Str {
        let text = text.as_ref();
        if text.len() <= CAP {
            let mut buf = [0u8; CAP];
            buf[..text.len()].copy_from_slice(text.as_bytes());
            // SAFETY: `buf[..len]` is `text`, UTF-8, and `len <= 23`.
            unsafe { Str::inline(buf, text.len()) }
        } else {
            Str::shared(Arc::from(text))
        }
    }

    /// The first `len` bytes of `buf` as a string held in place.
    ///
    /// # Safety
    ///
    /// `len` must be at most [`Str::INLINE_CAP`] and `buf[..len]` UTF-8.
    #[inline(always)]
    pub unsafe fn inline(buf: [u8; CAP], len: usize) -> Str {
        let mut head = [0u8; 16];
        let mut tail = [0u8; 7];
        head.copy_from_slice(&buf[..16]);
        tail.copy_from_slice(&buf[16..]);
        Str {
            head: Head { bytes: head },
            tail,
            // SAFETY: the caller promised `len <= 23`.
            tag: unsafe { Tag::inline(len) },
        }
    }

    /// `text` shared: this string holds the `Arc`'s count, whatever its
    /// length.
    pub fn shared(text: Arc<str>) -> Str {
        let len = text.len();
        let raw = Arc::into_raw(text) as *const u8 as *mut u8;
        Str {
            head: Head {
                shared: Shared {
                    // SAFETY: `Arc::into_raw` never gives a null pointer.
                    ptr: unsafe { NonNull::new_unchecked(raw) },
                    len,
                },
            },
            tail: [0; 7],
            tag: Tag::Shared,
        }
    }

    /// The string that `value` displays as: written in place when it fits,
    /// else through a growing buffer.
    pub fn from_display(value: &dyn fmt::Display) -> Str {
        struct Writer {
            buf: [u8; CAP],
            len: usize,
            spill: Option<String>,
        }
        impl fmt::Write for Writer {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                if let Some(spill) = &mut self.spill {
                    spill.push_str(s);
                } else if self.len + s.len() <= CAP {
                    self.buf[self.len..self.len + s.len()].copy_from_slice(s.as_bytes());
                    self.len += s.len();
                } else {
                    let mut spill = String::with_capacity(self.len + s.len());
                    // The bytes so far are whole `str`s: UTF-8.
                    spill.push_str(std::str::from_utf8(&self.buf[..self.len]).unwrap_or(""));
                    spill.push_str(s);
                    self.spill = Some(spill);
                }
                Ok(())
            }
        }
        let mut w = Writer {
            buf: [0; CAP],
            len: 0,
            spill: None,
        };
        // A `Display` that fails leaves what it wrote so far, as `to_string`
        // would have panicked on; no type of this engine fails.
        let _ = fmt::write(&mut w, format_args!("{value}"));
        match w.spill {
            Some(s) => Str::from(s),
            // SAFETY: `buf[..len]` is whole `str`s one after another (UTF-8),
            // and `len <= 23`, checked before each write.
            None => unsafe { Str::inline(w.buf, w.len) },
        }
    }

    /// Whether the text is in a shared allocation (not held in place).
    #[inline(always)]
    pub fn is_heap_allocated(&self) -> bool {
        self.tag == Tag::Shared
    }

    /// A string held in place as its value's 24 bytes, the text first,
    /// and the text's length; `None` for a shared one. What lies past the
    /// text is unspecified (but initialized): a reader that copies all 24
    /// bytes and keeps the first `len` needs no branch on the length.
    #[inline(always)]
    pub fn in_place(&self) -> Option<(&[u8; 24], usize)> {
        if self.tag == Tag::Shared {
            return None;
        }
        // SAFETY: `Str` is `repr(C)` and 24 bytes with no padding (16 +
        // 7 + 1), and a string held in place has every byte initialized:
        // `head` as bytes, `tail` and `tag`, all written by `Str::inline`
        // or `EMPTY`. The borrow is `self`'s.
        let bytes = unsafe { &*(self as *const Str).cast::<[u8; 24]>() };
        Some((bytes, self.tag as usize))
    }

    /// The shared `Arc<str>`'s pointer, for its count.
    ///
    /// # Safety
    ///
    /// The string must be shared ([`Str::is_heap_allocated`]).
    #[inline(always)]
    unsafe fn arc_ptr(&self) -> *const str {
        // SAFETY: the caller promised the tag is `Shared`, under which `head`
        // always holds `shared`, written by `Str::shared`.
        let s = unsafe { self.head.shared };
        std::ptr::slice_from_raw_parts(s.ptr.as_ptr() as *const u8, s.len) as *const str
    }

    /// The text.
    #[inline(always)]
    pub fn as_str(&self) -> &str {
        let bytes = if self.tag == Tag::Shared {
            // SAFETY: a shared tag means `head.shared` is the text of an
            // `Arc<str>` this string holds a count of: alive while `self` is.
            unsafe {
                let s = self.head.shared;
                std::slice::from_raw_parts(s.ptr.as_ptr() as *const u8, s.len)
            }
        } else {
            // SAFETY: inline, the text is the struct's first `tag` bytes
            // (at most 23: `head` then `tail`, contiguous under `repr(C)`),
            // all written when the string was made.
            unsafe {
                std::slice::from_raw_parts((self as *const Str).cast::<u8>(), self.tag as usize)
            }
        };
        // SAFETY: every constructor takes UTF-8 only.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }
}

impl Clone for Str {
    #[inline(always)]
    fn clone(&self) -> Str {
        if self.tag == Tag::Shared {
            // SAFETY: `self` holds a count of this `Arc`, so it is alive; the
            // count added here is the copy's.
            unsafe { Arc::increment_strong_count(self.arc_ptr()) }
        }
        // SAFETY: the copy is plain bytes (inline) or owns the count just
        // added (shared); nothing else in a `Str` is owned.
        unsafe { std::ptr::read(self) }
    }
}

impl Drop for Str {
    #[inline(always)]
    fn drop(&mut self) {
        if self.tag == Tag::Shared {
            // SAFETY: `self` holds one count of this `Arc`, given up here,
            // once: the string is not used again.
            unsafe { Arc::decrement_strong_count(self.arc_ptr()) }
        }
    }
}

impl Default for Str {
    fn default() -> Str {
        Str::EMPTY
    }
}

impl Deref for Str {
    type Target = str;

    #[inline(always)]
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Str {
    #[inline(always)]
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Str {
    #[inline(always)]
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Str {
    #[inline]
    fn eq(&self, other: &Str) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Str {}

impl PartialEq<str> for Str {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Str {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialOrd for Str {
    fn partial_cmp(&self, other: &Str) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Str {
    #[inline]
    fn cmp(&self, other: &Str) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for Str {
    /// As the `str`'s hash, so that a `Str` key is found by a `&str`.
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl fmt::Display for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl fmt::Debug for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl From<&str> for Str {
    #[inline]
    fn from(s: &str) -> Str {
        Str::new(s)
    }
}

impl From<&String> for Str {
    fn from(s: &String) -> Str {
        Str::new(s)
    }
}

impl From<String> for Str {
    /// A long string's bytes are copied once, into the shared allocation.
    fn from(s: String) -> Str {
        if s.len() <= CAP {
            Str::new(&s)
        } else {
            Str::shared(Arc::from(s))
        }
    }
}

impl From<Box<str>> for Str {
    fn from(s: Box<str>) -> Str {
        if s.len() <= CAP {
            Str::new(&*s)
        } else {
            Str::shared(Arc::from(s))
        }
    }
}

impl From<Arc<str>> for Str {
    fn from(s: Arc<str>) -> Str {
        Str::shared(s)
    }
}

impl From<Str> for String {
    fn from(s: Str) -> String {
        s.as_str().to_owned()
    }
}

impl FromIterator<char> for Str {
    fn from_iter<I: IntoIterator<Item = char>>(iter: I) -> Str {
        Str::from(iter.into_iter().collect::<String>())
    }
}

impl serde::Serialize for Str {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Str {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Str, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = Str;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Str, E> {
                Ok(Str::new(v))
            }

            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Str, E> {
                Ok(Str::from(v))
            }

            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Str, E> {
                std::str::from_utf8(v)
                    .map(Str::new)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Bytes(v), &self))
            }
        }
        d.deserialize_str(Visit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_length_round_trips_in_place_or_shared() {
        let text = "abcdefghijklmnopqrstuvwxyzé0123456789".repeat(3);
        for len in 0..text.len() {
            if !text.is_char_boundary(len) {
                continue;
            }
            let t = &text[..len];
            let s = Str::new(t);
            assert_eq!(s.as_str(), t);
            assert_eq!(s.is_heap_allocated(), len > Str::INLINE_CAP, "{len}");
            let c = s.clone();
            drop(s);
            assert_eq!(&*c, t);
            assert_eq!(Str::from(t.to_owned()), c);
        }
    }

    #[test]
    fn a_shared_string_counts_its_clones_and_frees_with_the_last() {
        let arc: Arc<str> = Arc::from("a string longer than twenty-three bytes");
        let s = Str::from(arc.clone());
        assert_eq!(Arc::strong_count(&arc), 2);
        let copies: Vec<Str> = (0..5).map(|_| s.clone()).collect();
        assert_eq!(Arc::strong_count(&arc), 7);
        drop(copies);
        drop(s);
        assert_eq!(Arc::strong_count(&arc), 1);
    }

    #[test]
    fn hashes_compares_and_serializes_as_its_text() {
        use std::collections::HashSet;
        let set: HashSet<Str> = ["b", "a", "a much longer key than fits in place"]
            .into_iter()
            .map(Str::from)
            .collect();
        assert!(set.contains("a"));
        assert!(set.contains("a much longer key than fits in place"));
        assert!(Str::new("a") < Str::new("b"));
        assert!(Str::new("ab") > Str::new("a"));
        let json = serde_json::to_string(&Str::new("x\"y")).unwrap();
        assert_eq!(json, r#""x\"y""#);
        assert_eq!(serde_json::from_str::<Str>(&json).unwrap(), "x\"y");
        assert_eq!(Str::from_display(&-12.5f64), "-12.5");
        let long = Str::from_display(&format_args!("{}", "z".repeat(40)));
        assert_eq!(long.len(), 40);
        assert!(long.is_heap_allocated());
    }

    #[test]
    fn a_value_holding_it_stays_24_bytes() {
        assert_eq!(std::mem::size_of::<Str>(), 24);
        assert_eq!(std::mem::size_of::<Option<Str>>(), 24);
    }
}
