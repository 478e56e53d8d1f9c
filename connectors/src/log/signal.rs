//! In-process append notifications: a reader of a topic learns that a
//! producer in the same process made new records visible, without looking
//! at the files.
//!
//! Owns [`AppendSignal`] (one per topic directory in this process, found
//! through a registry keyed by the topic's canonical path): a counter the
//! producer bumps after every flush that wrote records, and listeners it
//! calls then (a reader's wake-up). A reader notes the counter before it
//! looks at its partitions; if the counter moved since, there may be new
//! records. Producers in other processes are not seen here (readers keep
//! looking at the files for those). Flushing costs one atomic increment,
//! plus one listener call per registered reader; it must not do I/O.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// Called after a producer in this process made new records visible.
pub trait AppendListener: Send + Sync {
    /// New records may be readable now. Must be quick and must not block.
    fn appended(&self);
}

/// The append counter and listeners of one topic (see the module docs).
#[derive(Default)]
pub struct AppendSignal {
    seq: AtomicU64,
    has_listeners: AtomicBool,
    listeners: Mutex<Vec<Weak<dyn AppendListener>>>,
}

impl std::fmt::Debug for AppendSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppendSignal")
            .field("seq", &self.seq.load(Ordering::Relaxed))
            .finish()
    }
}

type Registry = Mutex<HashMap<PathBuf, Weak<AppendSignal>>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

impl AppendSignal {
    /// The signal of the topic at `dir` (shared by every producer and
    /// reader of that topic in this process).
    pub fn for_topic(dir: &Path) -> Arc<AppendSignal> {
        let key = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        let mut map = registry().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = map.get(&key).and_then(Weak::upgrade) {
            return s;
        }
        map.retain(|_, w| w.strong_count() > 0);
        let s = Arc::new(AppendSignal::default());
        map.insert(key, Arc::downgrade(&s));
        s
    }

    /// The number of flushes so far: a reader compares it with the value it
    /// noted before its last look at the files.
    #[inline]
    pub fn seq(&self) -> u64 {
        self.seq.load(Ordering::SeqCst)
    }

    /// Registers `listener` until it is dropped.
    pub fn listen(&self, listener: &Arc<dyn AppendListener>) {
        let mut l = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        l.retain(|w| w.strong_count() > 0);
        l.push(Arc::downgrade(listener));
        self.has_listeners.store(true, Ordering::SeqCst);
    }

    /// Called by a producer after it made records visible (after the write).
    pub fn notify(&self) {
        // SeqCst: ordered before the listener's check of the reader's
        // "sleeping" flag (the reader sets that flag, then reads `seq`).
        self.seq.fetch_add(1, Ordering::SeqCst);
        if self.has_listeners.load(Ordering::SeqCst) {
            let l = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
            for w in l.iter() {
                if let Some(listener) = w.upgrade() {
                    listener.appended();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct Count(AtomicUsize);
    impl AppendListener for Count {
        fn appended(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn one_signal_per_topic_and_listeners_are_called() {
        let dir = tempfile::tempdir().unwrap();
        let a = AppendSignal::for_topic(dir.path());
        let b = AppendSignal::for_topic(&dir.path().join("."));
        assert!(Arc::ptr_eq(&a, &b));
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let listener: Arc<dyn AppendListener> = count.clone();
        a.listen(&listener);
        let before = a.seq();
        b.notify();
        assert_eq!(a.seq(), before + 1);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        drop(listener);
        drop(count);
        a.notify();
    }
}
