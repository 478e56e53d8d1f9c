//! Short strings built in place: a string value made from a buffer of
//! bytes already written, with no copy of a length known only at run time.
//!
//! Owns the one constructor the per-event functions use to finish a
//! string they assembled (`concat`, a number's text). It must not decide
//! what the bytes are: its callers write them and promise they are UTF-8.

use super::Str;

/// The first `len` bytes of `buf` as a string held in the value.
///
/// Made by one of 24 functions, one per length, each copying a length
/// known when it is compiled (a few moves), where a copy of a length known
/// only at run time is a call.
///
/// # Safety
///
/// `len` must be at most [`Str::INLINE_CAP`] and `buf[..len]` UTF-8.
#[inline(always)]
pub(crate) unsafe fn inline_str(buf: &[u8; Str::INLINE_CAP], len: usize) -> Str {
    /// `buf[..N]` as a string; `buf[..N]` is UTF-8 (the caller's promise).
    fn of_len<const N: usize>(buf: &[u8; Str::INLINE_CAP]) -> Str {
        let mut exact = [0u8; N];
        exact.copy_from_slice(&buf[..N]);
        // SAFETY: `inline_str`'s caller promised `buf[..len]` is UTF-8, and
        // this function is only reached from the table with `N == len`.
        Str::new_inline(unsafe { std::str::from_utf8_unchecked(&exact) })
    }
    static OF_LEN: [fn(&[u8; Str::INLINE_CAP]) -> Str; Str::INLINE_CAP + 1] = [
        of_len::<0>,
        of_len::<1>,
        of_len::<2>,
        of_len::<3>,
        of_len::<4>,
        of_len::<5>,
        of_len::<6>,
        of_len::<7>,
        of_len::<8>,
        of_len::<9>,
        of_len::<10>,
        of_len::<11>,
        of_len::<12>,
        of_len::<13>,
        of_len::<14>,
        of_len::<15>,
        of_len::<16>,
        of_len::<17>,
        of_len::<18>,
        of_len::<19>,
        of_len::<20>,
        of_len::<21>,
        of_len::<22>,
        of_len::<23>,
    ];
    debug_assert!(len <= Str::INLINE_CAP);
    // SAFETY: `len <= INLINE_CAP`, the caller's promise, is in the table.
    unsafe { OF_LEN.get_unchecked(len)(buf) }
}
