//! Exclusive use of a task's chain by whichever thread gets there first.
//!
//! Owns [`Handoff`], one atomic word that says who may run a push source's
//! operator chain right now: a producer thread pushing an event (the usual
//! case: the event runs through the chain on the producer's own thread, no
//! hop), or the source's background task (markers while producers are idle,
//! the end of the stream). It never blocks: a thread that finds the chain in
//! use leaves its event in its own ring and a note (`PENDING`) for the holder,
//! who services the rings and the note before it lets go. Every change of the
//! word is a read-modify-write, so they are totally ordered: the holder's
//! failed release reads the note written after the ring push, which makes
//! the pushed event visible to it (no event is stranded in a ring while the
//! chain is free). It must not know what the chain or the rings hold.

#[cfg(feature = "loom")]
use loom::sync::atomic::AtomicU32;
#[cfg(not(feature = "loom"))]
use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering;

/// Someone runs the chain.
const LOCKED: u32 = 1;
/// Work was left for the holder: a ring to drain, an epoch to mark, a stop.
const PENDING: u32 = 2;
/// The chain is finished or failed: nobody runs it again.
const ENDED: u32 = 4;

/// What an attempt to take the chain found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Take {
    /// The caller holds the chain and must release it.
    Taken,
    /// Another thread holds it (and, after [`Handoff::take_or_notify`], will
    /// service what the caller left).
    Busy,
    /// The chain will never run again.
    Ended,
}

impl Take {
    /// The outcome of setting `LOCKED` on a word that was `prev`.
    #[inline]
    fn from_prev(prev: u32) -> Take {
        if prev & ENDED != 0 {
            Take::Ended
        } else if prev & LOCKED != 0 {
            Take::Busy
        } else {
            Take::Taken
        }
    }
}

/// What an attempt to let go of the chain found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Give {
    /// The chain is free.
    Released,
    /// A note was left while the caller held the chain: the caller still
    /// holds it, must service the rings and control flags, and try again.
    Notified,
    /// The chain ended while held; it stays held for good.
    Ended,
}

/// The ownership word of one chain (see the module docs).
#[derive(Debug)]
pub(crate) struct Handoff {
    state: AtomicU32,
}

impl Handoff {
    /// A handoff whose chain is held by its creator (it is not built yet).
    pub(crate) fn new_taken() -> Handoff {
        Handoff {
            state: AtomicU32::new(LOCKED),
        }
    }

    /// Takes the chain if nobody holds it. Leaves no note.
    #[inline]
    pub(crate) fn try_take(&self) -> Take {
        Take::from_prev(self.state.fetch_or(LOCKED, Ordering::Acquire))
    }

    /// Takes the chain, or, when another thread holds it, leaves a note that
    /// makes the holder service the rings and control flags before it lets
    /// go. Called after handing work over through a ring (whose writes this
    /// publishes to the holder) or to ask for a marker or a stop.
    pub(crate) fn take_or_notify(&self) -> Take {
        Take::from_prev(self.state.fetch_or(LOCKED | PENDING, Ordering::AcqRel))
    }

    /// Leaves a note without taking the chain: the next thread to take it
    /// (or the current holder, on release) services the rings and control
    /// flags. Used by the background task so that an active producer does
    /// the work between its own events, instead of the task holding the
    /// chain (and being preempted while holding it) under the producer's
    /// feet.
    pub(crate) fn note(&self) {
        self.state.fetch_or(PENDING, Ordering::AcqRel);
    }

    /// Whether a note is waiting for a holder.
    pub(crate) fn has_note(&self) -> bool {
        self.state.load(Ordering::Acquire) & PENDING != 0
    }

    /// Lets go of the chain, unless a note arrived meanwhile (see [`Give`]).
    #[inline]
    pub(crate) fn release(&self) -> Give {
        match self
            .state
            .compare_exchange(LOCKED, 0, Ordering::Release, Ordering::Acquire)
        {
            Ok(_) => Give::Released,
            Err(cur) if cur & ENDED != 0 => Give::Ended,
            Err(_) => {
                // Clear the note before servicing: a note left after this
                // point makes the next release fail again.
                self.state.fetch_and(!PENDING, Ordering::AcqRel);
                Give::Notified
            }
        }
    }

    /// Ends the chain for good (finished or failed). Whoever holds it keeps
    /// it; every later take answers [`Take::Ended`].
    pub(crate) fn end(&self) {
        self.state.fetch_or(ENDED | LOCKED, Ordering::AcqRel);
    }

    /// Whether the chain has ended.
    pub(crate) fn is_ended(&self) -> bool {
        self.state.load(Ordering::Acquire) & ENDED != 0
    }
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;

    #[test]
    fn take_release_and_notes() {
        let h = Handoff::new_taken();
        assert_eq!(h.try_take(), Take::Busy);
        assert_eq!(h.release(), Give::Released);
        assert_eq!(h.try_take(), Take::Taken);
        // A note left while held makes the release fail once.
        assert_eq!(h.take_or_notify(), Take::Busy);
        assert_eq!(h.release(), Give::Notified);
        assert_eq!(h.release(), Give::Released);
        assert_eq!(h.take_or_notify(), Take::Taken);
        assert_eq!(h.release(), Give::Notified);
        assert_eq!(h.release(), Give::Released);
        // A note left on a free chain is serviced by the next holder.
        h.note();
        assert!(h.has_note());
        assert_eq!(h.try_take(), Take::Taken);
        assert_eq!(h.release(), Give::Notified);
        assert!(!h.has_note());
        assert_eq!(h.release(), Give::Released);
        assert_eq!(h.take_or_notify(), Take::Taken);
        h.end();
        assert_eq!(h.release(), Give::Ended);
        assert_eq!(h.try_take(), Take::Ended);
        assert!(h.is_ended());
    }
}

/// Model checks: two producers hand items over while each may be holding
/// the chain; after both are done, no item is left unserviced (a lost note
/// would strand an item in its producer's ring).
///
/// `cargo test -p runnel-engine --features loom --lib loom`
#[cfg(all(test, feature = "loom"))]
mod loom_tests {
    use super::{Give, Handoff, Take};
    use loom::sync::atomic::AtomicUsize;
    use loom::sync::Arc;
    use std::sync::atomic::Ordering;

    struct World {
        handoff: Handoff,
        /// Items each producer put in its ring.
        pushed: [AtomicUsize; 2],
        /// Items of each producer the chain has taken (written by holders only).
        taken: [AtomicUsize; 2],
    }

    impl World {
        /// What a holder does on a note: drain every ring.
        fn service(&self) {
            for i in 0..2 {
                let n = self.pushed[i].load(Ordering::Acquire);
                self.taken[i].store(n, Ordering::Relaxed);
            }
        }

        fn release(&self) {
            loop {
                match self.handoff.release() {
                    Give::Released | Give::Ended => return,
                    Give::Notified => self.service(),
                }
            }
        }

        /// One push by producer `i`: inline when the chain is free and its
        /// ring is empty, else through the ring plus a note.
        fn push(&self, i: usize) {
            let own_ring_empty =
                self.taken[i].load(Ordering::Relaxed) == self.pushed[i].load(Ordering::Relaxed);
            if own_ring_empty && self.handoff.try_take() == Take::Taken {
                // Inline: the event is processed here (not counted in a ring).
                self.release();
                return;
            }
            self.pushed[i].fetch_add(1, Ordering::Release);
            if self.handoff.take_or_notify() == Take::Taken {
                self.service();
                self.release();
            }
        }
    }

    #[test]
    fn loom_no_item_stranded() {
        // Bounded preemptions keep the exploration to seconds; every
        // interleaving with up to three forced switches is checked.
        let mut model = loom::model::Builder::new();
        model.preemption_bound = Some(3);
        model.check(|| {
            let world = Arc::new(World {
                handoff: Handoff::new_taken(),
                pushed: [AtomicUsize::new(0), AtomicUsize::new(0)],
                taken: [AtomicUsize::new(0), AtomicUsize::new(0)],
            });
            // The creator lets go (the chain is built).
            world.release();
            let threads: Vec<_> = (0..2)
                .map(|i| {
                    let w = world.clone();
                    loom::thread::spawn(move || {
                        w.push(i);
                        w.push(i);
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            for i in 0..2 {
                assert_eq!(
                    world.taken[i].load(Ordering::Relaxed),
                    world.pushed[i].load(Ordering::Relaxed),
                    "an item of producer {i} was left in its ring"
                );
            }
        });
    }
}
