//! Backing large fresh reservations with memory before they are written.
//!
//! Owns the one system call the state makes for memory
//! (`MADV_POPULATE_WRITE` on Linux): a restore or a copy of a million groups
//! writes some 100 MB of fresh memory, and on a virtual machine each 4 KiB
//! page faulted in by a write costs a trip through the guest kernel. Asking
//! for the whole range at once is cheaper, and asking from a second thread
//! while the first writes takes it off the restore's path altogether.
//!
//! It must not read or write what the memory holds: populating maps pages
//! and leaves every byte as it was, so a range handed here stays the
//! caller's to fill. Elsewhere than Linux, or on a kernel without the call,
//! nothing happens.

use std::mem::MaybeUninit;

/// Below this many bytes in all, a reservation is left to fault in page by
/// page (a thread or a call would cost more than it saves).
pub(super) const MIN_BYTES: usize = 4 << 20;

/// Steps a helper thread backs its ranges in: each step backs the next
/// part of every range, so the writer, filling all of them from the front
/// at once, finds its pages ready in each.
const STEPS: usize = 64;

/// A range of fresh memory to back: its address and length in bytes.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Fresh {
    addr: usize,
    bytes: usize,
}

impl Fresh {
    /// The range of `spare` (a vector's unused capacity).
    pub(super) fn of<T>(spare: &mut [MaybeUninit<T>]) -> Fresh {
        Fresh {
            addr: spare.as_mut_ptr() as usize,
            bytes: std::mem::size_of_val(spare),
        }
    }

    /// The `step`-th of `steps` equal parts of the range.
    fn part(self, step: usize, steps: usize) -> Fresh {
        let from = self.bytes * step / steps;
        let to = self.bytes * (step + 1) / steps;
        Fresh {
            addr: self.addr + from,
            bytes: to - from,
        }
    }
}

/// Backs the whole pages inside `range` with memory.
fn populate(range: Fresh) {
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let first = range.addr.next_multiple_of(PAGE);
        let end = (range.addr + range.bytes) & !(PAGE - 1);
        if end > first {
            // SAFETY: populating maps pages without changing what any byte
            // of them holds, so it cannot break what another thread (or
            // this one) reads or writes there. If the range is no longer
            // the caller's (a vector that grew and moved), the call fails
            // on what is unmapped and backs what is mapped, still without
            // changing a byte. A failure (an older kernel) changes nothing.
            unsafe {
                libc::madvise(
                    first as *mut libc::c_void,
                    end - first,
                    libc::MADV_POPULATE_WRITE,
                );
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = range;
}

/// Backs `spare` (a vector's unused capacity) with memory now, in one call,
/// when it is large enough to be worth it.
pub(super) fn prefault<T>(spare: &mut [MaybeUninit<T>]) {
    let range = Fresh::of(spare);
    if range.bytes >= MIN_BYTES {
        populate(range);
    }
}

/// Backs `spare` (a vector's unused capacity) with memory now, in one call,
/// whatever its size: for a buffer made ready on one thread for another to
/// fill, where every page the filler faults in is a stall of its own.
pub(super) fn prefault_now<T>(spare: &mut [MaybeUninit<T>]) {
    populate(Fresh::of(spare));
}

/// Runs `work` on this thread while a helper thread backs `ranges` with
/// memory, part by part from their fronts, as `work` fills them. Small
/// ranges, or no thread to be had, are backed here first.
pub(super) fn populate_while<R>(ranges: &[Fresh], work: impl FnOnce() -> R) -> R {
    let bytes: usize = ranges.iter().map(|r| r.bytes).sum();
    if bytes < MIN_BYTES {
        return work();
    }
    std::thread::scope(|scope| {
        let helper = std::thread::Builder::new()
            .name("runnel-backing".into())
            .spawn_scoped(scope, || {
                for step in 0..STEPS {
                    for r in ranges {
                        populate(r.part(step, STEPS));
                    }
                }
            });
        if helper.is_err() {
            ranges.iter().copied().for_each(populate);
        }
        work()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_the_range_without_overlap() {
        let r = Fresh {
            addr: 4096 * 3 + 17,
            bytes: 1_000_003,
        };
        let mut at = r.addr;
        for step in 0..STEPS {
            let p = r.part(step, STEPS);
            assert_eq!(p.addr, at);
            at += p.bytes;
        }
        assert_eq!(at, r.addr + r.bytes);
    }

    #[test]
    fn backed_memory_keeps_what_it_holds_and_takes_writes() {
        let n = (MIN_BYTES / 8) * 3;
        let mut v: Vec<u64> = Vec::with_capacity(n);
        v.extend(0..1000);
        let ranges = [Fresh::of(v.spare_capacity_mut())];
        let sum = populate_while(&ranges, || {
            v.extend(1000..n as u64);
            v.iter().sum::<u64>()
        });
        assert_eq!(sum, (n as u64 - 1) * n as u64 / 2);
        prefault(v.spare_capacity_mut());
        assert_eq!(v[999], 999);
    }
}
