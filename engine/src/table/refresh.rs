//! Static tables that reload when their data changes (`refresh=INTERVAL`).
//!
//! Owns [`TableReloader`] (how a connector looks at a table's data and
//! reads it again: the I/O is the connector's), [`TableRefresh`] (a table's
//! reloader and interval), and the live index a refreshing join probes
//! (`LiveIndex`): the current index behind a version number, swapped whole
//! by a thread of its own when the data's fingerprint changes. A join
//! reads the version once per event (one atomic load of a line that
//! changes only on a swap) and takes the new index only when it moved, so
//! rows already joined are never revisited and a row is joined with one
//! version of the table, never half of two. A failed reload (a file half
//! written, a table over its bounds, a changed schema) keeps the current
//! version, is logged with its reason, counted, and tried again at the
//! next look. It must not read files or sockets itself, nor block a task.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::MutexGuard;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::index::JoinIndex;
use super::StaticTable;
use crate::error::Result;
use crate::expr::BoundExpr;

/// Reads a static table's data again, for `refresh=`: implemented by the
/// connector the table came from.
pub trait TableReloader: Send + Sync + 'static {
    /// Where the data is, for messages (a path, a topic).
    fn describe(&self) -> String;

    /// A number that changes when the data changes (the files' names,
    /// sizes and modification times; a topic's end offsets). Cheap: it is
    /// asked at every interval.
    fn fingerprint(&self) -> Result<u64>;

    /// Reads the table again, whole.
    fn load(&self) -> Result<StaticTable>;
}

/// A table's reloader and how often it looks at the data.
#[derive(Clone)]
pub struct TableRefresh {
    pub(crate) interval: Duration,
    pub(crate) reloader: Arc<dyn TableReloader>,
    /// The fingerprint of the data the table was loaded from.
    pub(crate) fingerprint: u64,
}

impl TableRefresh {
    /// Looks at the data every `interval` through `reloader`; `fingerprint`
    /// is the fingerprint of the data the table holds now.
    pub fn new(
        interval: Duration,
        reloader: Arc<dyn TableReloader>,
        fingerprint: u64,
    ) -> TableRefresh {
        TableRefresh {
            interval,
            reloader,
            fingerprint,
        }
    }

    /// How often the data is looked at.
    pub fn interval(&self) -> Duration {
        self.interval
    }
}

impl std::fmt::Debug for TableRefresh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableRefresh")
            .field("interval", &self.interval)
            .field("data", &self.reloader.describe())
            .finish()
    }
}

/// Takes the lock even if a thread panicked holding it (the value is an
/// `Arc` swapped whole: never half written).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The index of a refreshing table: the current version, swapped whole.
pub(crate) struct LiveIndex {
    version: AtomicU64,
    current: Mutex<Arc<JoinIndex>>,
    /// Reloads that replaced the table.
    reloads: AtomicU64,
    /// Reloads that failed (the table was kept).
    failures: AtomicU64,
}

impl LiveIndex {
    /// The version number (0 for the table the query started with).
    #[inline]
    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// The current index.
    pub(crate) fn current(&self) -> Arc<JoinIndex> {
        lock(&self.current).clone()
    }

    /// Reloads that replaced the table, and reloads that failed.
    #[cfg(test)]
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.reloads.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
        )
    }

    fn swap(&self, index: JoinIndex) {
        *lock(&self.current) = Arc::new(index);
        self.version.fetch_add(1, Ordering::AcqRel);
        self.reloads.fetch_add(1, Ordering::Relaxed);
    }
}

/// A join's view of a refreshing index: the version it holds and the index.
pub(crate) struct IndexView {
    pub(crate) index: Arc<JoinIndex>,
    seen: u64,
}

impl IndexView {
    /// Starts with `index`.
    pub(crate) fn new(index: Arc<JoinIndex>, live: Option<&LiveIndex>) -> IndexView {
        IndexView {
            seen: live.map_or(0, LiveIndex::version),
            index,
        }
    }

    /// Takes the newest index when `live` moved on (one atomic load when it
    /// did not).
    #[inline]
    pub(crate) fn follow(&mut self, live: Option<&LiveIndex>) {
        if let Some(live) = live {
            let v = live.version();
            if v != self.seen {
                self.index = live.current();
                self.seen = v;
            }
        }
    }
}

/// Starts the thread that keeps `initial`'s index current: it looks at the
/// data every interval, and on a change reloads the table, indexes it on
/// `table_keys` and swaps it in. The thread ends at the first look after
/// the last holder of the returned index drops it.
pub(crate) fn start(
    table_name: &str,
    refresh: &TableRefresh,
    initial: Arc<JoinIndex>,
    table_keys: Vec<BoundExpr>,
) -> Result<Arc<LiveIndex>> {
    let live = Arc::new(LiveIndex {
        version: AtomicU64::new(0),
        current: Mutex::new(initial.clone()),
        reloads: AtomicU64::new(0),
        failures: AtomicU64::new(0),
    });
    let weak = Arc::downgrade(&live);
    let refresh = refresh.clone();
    let name = table_name.to_string();
    let schema = initial.table().schema();
    std::thread::Builder::new()
        .name(format!("runnel-refresh-{name}"))
        .spawn(move || {
            let mut fingerprint = refresh.fingerprint;
            loop {
                std::thread::sleep(refresh.interval);
                let Some(live) = Weak::upgrade(&weak) else {
                    return;
                };
                match look(&refresh, fingerprint, &schema, &table_keys) {
                    Ok(None) => {}
                    Ok(Some((index, fp))) => {
                        fingerprint = fp;
                        live.swap(index);
                        tracing::info!(
                            "static table `{name}` reloaded from {} ({} rows)",
                            refresh.reloader.describe(),
                            live.current().table().num_rows()
                        );
                    }
                    Err(e) => {
                        live.failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            "static table `{name}`: cannot reload it from {}, the current one is \
                             kept: {e}",
                            refresh.reloader.describe()
                        );
                    }
                }
            }
        })
        .map_err(|e| {
            crate::error::EngineError::Plan(format!(
                "static table `{table_name}`: cannot start its refresh thread: {e}"
            ))
        })?;
    Ok(live)
}

/// One look at the data: a new index and its fingerprint when the data
/// changed.
fn look(
    refresh: &TableRefresh,
    fingerprint: u64,
    schema: &crate::schema::SchemaRef,
    table_keys: &[BoundExpr],
) -> Result<Option<(JoinIndex, u64)>> {
    let fp = refresh.reloader.fingerprint()?;
    if fp == fingerprint {
        return Ok(None);
    }
    let table = refresh.reloader.load()?;
    if table.schema().fields() != schema.fields() {
        return crate::error::plan_err(format!(
            "its columns changed (now: {}); a refresh keeps the columns the query started with",
            table
                .schema()
                .fields()
                .iter()
                .map(|f| format!("{} {}", f.name(), crate::schema::type_name(f.data_type())))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(Some((JoinIndex::build(&table, table_keys)?, fp)))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;
    use std::time::Instant;

    use super::*;
    use crate::expr::{bind_expr, col};
    use crate::schema::{schema, DataType, Row, Value};

    /// Data whose fingerprint is a counter; loads fail while `broken`.
    struct Versions {
        fingerprint: AtomicU64,
        broken: std::sync::atomic::AtomicBool,
        wide: std::sync::atomic::AtomicBool,
    }

    fn table(region: &str, wide: bool) -> StaticTable {
        let mut cols = vec![("k", DataType::Int64), ("region", DataType::Utf8)];
        let mut row = vec![Value::Int64(1), Value::str(region)];
        if wide {
            cols.push(("extra", DataType::Int64));
            row.push(Value::Int64(0));
        }
        StaticTable::from_rows("t", schema(&cols), vec![Row::from(row)]).unwrap()
    }

    impl TableReloader for Versions {
        fn describe(&self) -> String {
            "versions".into()
        }
        fn fingerprint(&self) -> Result<u64> {
            Ok(self.fingerprint.load(Ordering::SeqCst))
        }
        fn load(&self) -> Result<StaticTable> {
            if self.broken.load(Ordering::SeqCst) {
                return crate::error::plan_err("half written");
            }
            let v = self.fingerprint.load(Ordering::SeqCst);
            Ok(table(&format!("v{v}"), self.wide.load(Ordering::SeqCst)))
        }
    }

    fn wait(what: &str, cond: impl Fn() -> bool) {
        let started = Instant::now();
        while !cond() {
            assert!(started.elapsed() < Duration::from_secs(30), "{what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn a_change_swaps_the_index_and_a_failed_reload_keeps_the_current_one() {
        let data = Arc::new(Versions {
            fingerprint: AtomicU64::new(0),
            broken: false.into(),
            wide: false.into(),
        });
        let t = table("v0", false);
        let key = bind_expr(&col("k"), &t.schema()).unwrap().0;
        let index = Arc::new(JoinIndex::build(&t, std::slice::from_ref(&key)).unwrap());
        let refresh = TableRefresh::new(Duration::from_millis(5), data.clone(), 0);
        let live = start("t", &refresh, index.clone(), vec![key]).unwrap();
        let mut view = IndexView::new(index, Some(&live));
        let region = |view: &IndexView| {
            view.index
                .probe_rows(&[Value::Int64(1)])
                .next()
                .expect("a row")[1]
                .clone()
        };

        // Unchanged data: nothing is reloaded.
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(live.counts(), (0, 0));
        // A change: a new version, taken by the view at its next event.
        data.fingerprint.store(1, Ordering::SeqCst);
        wait("a reload", || live.version() == 1);
        assert_eq!(
            region(&view),
            Value::str("v0"),
            "not before the view follows"
        );
        view.follow(Some(&live));
        assert_eq!(region(&view), Value::str("v1"));
        // A load that fails, then one with other columns: both kept out.
        data.broken.store(true, Ordering::SeqCst);
        data.fingerprint.store(2, Ordering::SeqCst);
        wait("a failed reload", || live.counts().1 >= 1);
        data.broken.store(false, Ordering::SeqCst);
        data.wide.store(true, Ordering::SeqCst);
        wait("a refused schema", || live.counts().1 >= 2);
        assert_eq!(live.version(), 1);
        view.follow(Some(&live));
        assert_eq!(region(&view), Value::str("v1"));
        // The data repaired: the next look takes it.
        data.wide.store(false, Ordering::SeqCst);
        wait("the repaired reload", || live.version() == 2);
        view.follow(Some(&live));
        assert_eq!(region(&view), Value::str("v2"));
        assert_eq!(live.counts().0, 2);
    }
}
