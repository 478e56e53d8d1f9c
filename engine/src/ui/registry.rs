//! The process-wide list of served queries: every query given to
//! `serve_ui`, running or ended, kept until the process exits.

use std::sync::{Arc, Mutex, OnceLock};

use crate::query::{lock, QueryShared};

fn queries() -> &'static Mutex<Vec<Arc<QueryShared>>> {
    static QUERIES: OnceLock<Mutex<Vec<Arc<QueryShared>>>> = OnceLock::new();
    QUERIES.get_or_init(|| Mutex::new(Vec::new()))
}

/// Lists a query (once: a second registration of the same run is ignored).
pub(super) fn register(shared: &Arc<QueryShared>) {
    let mut all = lock(queries());
    if !all.iter().any(|q| Arc::ptr_eq(q, shared)) {
        all.push(shared.clone());
    }
}

/// Every listed query, in the order they were served.
pub(super) fn all() -> Vec<Arc<QueryShared>> {
    lock(queries()).clone()
}

/// The query a URL names: by run id, else the newest run with that query
/// id, else the newest with that name.
pub(super) fn find(key: &str) -> Option<Arc<QueryShared>> {
    let all = lock(queries());
    all.iter()
        .find(|q| q.run_id == key)
        .or_else(|| all.iter().rev().find(|q| q.id == key))
        .or_else(|| all.iter().rev().find(|q| q.name.as_deref() == Some(key)))
        .cloned()
}
