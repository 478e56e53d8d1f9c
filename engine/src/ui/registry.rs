//! The process-wide list of served queries: every query given to
//! `serve_ui`, running or ended, kept until the process exits; and each
//! one's history of progress reports, longer than the query's own recent
//! ones so that a page opened late still shows the last minutes, and of
//! its latency second by second (the difference between two readings of
//! the query's merged histogram, a second apart: nothing is recorded per
//! event for it).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::clock::wall_now_us;
use crate::metrics::{LatencySummary, StreamingQueryProgress};
use crate::query::{lock, QueryShared, RECENT_PROGRESS};
use crate::time::{format_iso_ms, parse_timestamp_us};

/// How much history is kept per query: 15 minutes of reports ...
const HISTORY_US: i64 = 15 * 60 * 1_000_000;
/// ... and at most this many (15 minutes of 100 ms epochs is 9,000).
const HISTORY_MAX: usize = 10_000;

/// Seconds of latency kept per query (15 minutes).
const SECONDS_MAX: usize = 15 * 60;

/// The latency of the rows reported in one second.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SecondLatency {
    /// The end of the second (ISO 8601, UTC).
    pub(super) timestamp: String,
    /// The same, ms since the Unix epoch.
    pub(super) time_ms: i64,
    /// Percentiles (µs) of the rows whose epoch or batch was reported in
    /// that second.
    pub(super) latency_micros: LatencySummary,
}

/// The per-second latency series and the reading it started from.
struct Seconds {
    last: Histogram<u64>,
    kept: VecDeque<SecondLatency>,
}

/// A served query and the reports kept for it.
pub(super) struct Served {
    /// The query's shared state.
    pub(super) shared: Arc<QueryShared>,
    history: Mutex<VecDeque<StreamingQueryProgress>>,
    seconds: Mutex<Seconds>,
}

impl Served {
    /// Copies the query's reports newer than the history's newest (the
    /// query keeps its last [`RECENT_PROGRESS`]; the server samples every
    /// second, before that many epochs pass unless they are under 10 ms).
    pub(super) fn sample(&self) {
        let mut history = lock(&self.history);
        let newest = history.back().map(|p| p.batch_id);
        {
            let recent = lock(&self.shared.progress);
            let fresh = recent
                .iter()
                .rev()
                .take_while(|p| newest.is_none_or(|n| p.batch_id > n))
                .count();
            history.extend(recent.iter().skip(recent.len() - fresh).cloned());
        }
        let newest_us = history
            .back()
            .and_then(|p| parse_timestamp_us(&p.timestamp));
        while history.len() > HISTORY_MAX
            || history.front().is_some_and(|p| {
                newest_us
                    .zip(parse_timestamp_us(&p.timestamp))
                    .is_some_and(|(n, t)| n - t > HISTORY_US)
            })
        {
            history.pop_front();
        }
    }

    /// Closes one second of latency: what the merged histogram gained
    /// since the last call (rows reported meanwhile), kept when not empty.
    fn close_second(&self) {
        let now = lock(&self.shared.latency).clone();
        let mut seconds = lock(&self.seconds);
        let mut gained = now.clone();
        if gained.subtract(&seconds.last).is_err() {
            // Only a new run resets the merged histogram; start over.
            gained = now.clone();
        }
        seconds.last = now;
        if gained.is_empty() {
            return;
        }
        let time_ms = wall_now_us() / 1000;
        seconds.kept.push_back(SecondLatency {
            timestamp: format_iso_ms(time_ms * 1000),
            time_ms,
            latency_micros: LatencySummary::of(&gained),
        });
        while seconds.kept.len() > SECONDS_MAX {
            seconds.kept.pop_front();
        }
    }

    /// The kept seconds of latency ending after `after_ms` (all with
    /// `None`), oldest first.
    pub(super) fn seconds(&self, after_ms: Option<i64>) -> Vec<SecondLatency> {
        lock(&self.seconds)
            .kept
            .iter()
            .filter(|s| after_ms.is_none_or(|a| s.time_ms > a))
            .cloned()
            .collect()
    }

    /// The kept reports after batch `after` (all with `None`), oldest first.
    pub(super) fn history(&self, after: Option<u64>) -> Vec<StreamingQueryProgress> {
        self.sample();
        lock(&self.history)
            .iter()
            .filter(|p| after.is_none_or(|a| p.batch_id > a))
            .cloned()
            .collect()
    }
}

fn queries() -> &'static Mutex<Vec<Arc<Served>>> {
    static QUERIES: OnceLock<Mutex<Vec<Arc<Served>>>> = OnceLock::new();
    QUERIES.get_or_init(|| Mutex::new(Vec::new()))
}

/// Lists a query (once: a second registration of the same run is ignored).
pub(super) fn register(shared: &Arc<QueryShared>) {
    let mut all = lock(queries());
    if !all.iter().any(|q| Arc::ptr_eq(&q.shared, shared)) {
        let served = Served {
            shared: shared.clone(),
            history: Mutex::new(VecDeque::with_capacity(RECENT_PROGRESS)),
            seconds: Mutex::new(Seconds {
                last: lock(&shared.latency).clone(),
                kept: VecDeque::new(),
            }),
        };
        served.sample();
        all.push(Arc::new(served));
    }
}

/// Every listed query, in the order they were served.
pub(super) fn all() -> Vec<Arc<Served>> {
    lock(queries()).clone()
}

/// Samples every listed query's new reports into its history and closes
/// a second of its latency (called once a second).
pub(super) fn sample_all() {
    for q in all() {
        q.sample();
        q.close_second();
    }
}

/// The query a URL names: by run id, else the newest run with that query
/// id, else the newest with that name.
pub(super) fn find(key: &str) -> Option<Arc<Served>> {
    let all = lock(queries());
    all.iter()
        .find(|q| q.shared.run_id == key)
        .or_else(|| all.iter().rev().find(|q| q.shared.id == key))
        .or_else(|| {
            all.iter()
                .rev()
                .find(|q| q.shared.name.as_deref() == Some(key))
        })
        .cloned()
}
