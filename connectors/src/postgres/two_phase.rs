//! Exactly-once in continuous mode: each epoch's transaction is prepared
//! (`PREPARE TRANSACTION`) when the epoch ends, and committed (`COMMIT
//! PREPARED`) only once the engine's checkpoint holds the epoch.
//!
//! Continuous epochs are cut by time, so an epoch replayed after a crash can
//! hold other rows than the first run's: the table must never be ahead of
//! the checkpoint. A prepared transaction survives a crash of either side;
//! on restart the sink commits the prepared epochs the checkpoint holds and
//! rolls back the rest, which the engine then replays.
//!
//! The [`Finisher`] owns a second connection on a thread of its own: it
//! waits for each prepared epoch to become durable and commits it, so rows
//! become visible about one checkpoint write after their epoch ends, not
//! one epoch later. It must not commit an epoch the checkpoint does not
//! hold, and must not be handed a second epoch before the first is
//! finished (the sink waits for it: the next epoch's rows may update the
//! same keys, whose row locks the prepared transaction still holds).

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use postgres::Client;
use runnel::{DurableEpochs, DurableWait};

use super::copy::literal;

/// How often the finisher looks at the durable epoch while one is pending
/// (for the millisecond or two the checkpoint takes: a few dozen looks an
/// epoch).
const POLL: Duration = Duration::from_micros(50);
/// How long an epoch may wait for the checkpoint before the query fails.
pub(super) const DURABLE_WITHIN: Duration = Duration::from_secs(120);

/// The global id of epoch `epoch`'s prepared transaction.
pub(super) fn gid(query_id: &str, epoch: i64) -> String {
    format!("{}{epoch}", gid_prefix(query_id))
}

/// What every prepared transaction of a query starts with.
pub(super) fn gid_prefix(query_id: &str) -> String {
    format!("runnel:{query_id}:")
}

/// The epochs of the query's prepared transactions on the server.
pub(super) fn prepared_epochs(
    client: &mut Client,
    query_id: &str,
) -> Result<Vec<i64>, postgres::Error> {
    let prefix = gid_prefix(query_id);
    let rows = client.query(
        "SELECT gid FROM pg_prepared_xacts
         WHERE database = current_database() AND starts_with(gid, $1)",
        &[&prefix],
    )?;
    Ok(rows
        .iter()
        .filter_map(|r| r.get::<_, String>(0)[prefix.len()..].parse().ok())
        .collect())
}

/// Commits (`commit`) or rolls back a prepared transaction.
pub(super) fn finish(
    client: &mut Client,
    query_id: &str,
    epoch: i64,
    commit: bool,
) -> Result<(), postgres::Error> {
    let verb = if commit { "COMMIT" } else { "ROLLBACK" };
    // A global id is a string literal, not a parameter.
    let id = literal(&gid(query_id, epoch));
    client.batch_execute(&format!("{verb} PREPARED {id}"))
}

/// Whether a prepared transaction with this global id exists.
pub(super) fn is_prepared(
    client: &mut Client,
    query_id: &str,
    epoch: i64,
) -> Result<bool, postgres::Error> {
    Ok(client
        .query_opt(
            "SELECT 1 FROM pg_prepared_xacts WHERE gid = $1",
            &[&gid(query_id, epoch)],
        )?
        .is_some())
}

/// The thread that commits prepared epochs once they are durable.
pub(super) struct Finisher {
    to: Option<Sender<i64>>,
    done: Receiver<Result<i64, String>>,
    thread: Option<JoinHandle<()>>,
    /// The epoch handed over and not yet acknowledged.
    pending: Option<i64>,
    /// A failure [`Finisher::is_idle`] received, for [`Finisher::wait`].
    failed: Option<String>,
}

impl Finisher {
    /// Starts the thread. `connect` opens its connection (again after a
    /// lost one); `durable` says which epochs the checkpoint holds.
    /// A lost connection is retried for `reconnect_for`.
    pub(super) fn start(
        query_id: String,
        durable: DurableEpochs,
        reconnect_for: Duration,
        connect: impl Fn() -> Result<Client, postgres::Error> + Send + 'static,
    ) -> Finisher {
        let (to, from_sink) = mpsc::channel::<i64>();
        let (ack, done) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("runnel-pg-finisher".into())
            .spawn(move || {
                let mut client: Option<Client> = None;
                for epoch in from_sink {
                    let result = commit_when_durable(
                        &query_id,
                        epoch,
                        &durable,
                        reconnect_for,
                        &mut client,
                        &connect,
                    );
                    let failed = result.is_err();
                    if ack.send(result).is_err() || failed {
                        return;
                    }
                }
            })
            .expect("spawning a thread");
        Finisher {
            to: Some(to),
            done,
            thread: Some(thread),
            pending: None,
            failed: None,
        }
    }

    /// Hands prepared epoch `epoch` over. The previous one must be
    /// finished first ([`Finisher::wait`]).
    pub(super) fn hand_over(&mut self, epoch: i64) -> Result<(), String> {
        debug_assert!(self.pending.is_none());
        let to = self.to.as_ref().ok_or("the finisher has stopped")?;
        to.send(epoch)
            .map_err(|_| "the finisher has stopped".to_string())?;
        self.pending = Some(epoch);
        Ok(())
    }

    /// Whether no epoch is pending (the last one handed over is committed),
    /// without waiting. A failure is left for [`Finisher::wait`] to report.
    pub(super) fn is_idle(&mut self) -> bool {
        let Some(epoch) = self.pending else {
            return true;
        };
        match self.done.try_recv() {
            Ok(Ok(e)) if e >= epoch => {
                self.pending = None;
                true
            }
            Ok(Ok(_)) => false,
            Ok(Err(why)) => {
                self.failed = Some(why);
                false
            }
            Err(_) => false,
        }
    }

    /// Waits until the pending epoch, if any, is committed.
    pub(super) fn wait(&mut self) -> Result<(), String> {
        if let Some(why) = self.failed.take() {
            return Err(why);
        }
        let Some(epoch) = self.pending else {
            return Ok(());
        };
        let started = Instant::now();
        loop {
            // The finisher itself gives up after DURABLE_WITHIN; the margin
            // covers its commit and reconnects.
            let left = (DURABLE_WITHIN + Duration::from_secs(60)).saturating_sub(started.elapsed());
            match self.done.recv_timeout(left) {
                Ok(Ok(e)) if e >= epoch => {
                    self.pending = None;
                    return Ok(());
                }
                Ok(Ok(_)) => {}
                Ok(Err(why)) => return Err(why),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "epoch {epoch}'s prepared transaction was not committed within {:?}",
                        started.elapsed()
                    ))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err("the finisher has stopped".into())
                }
            }
        }
    }
}

impl Drop for Finisher {
    fn drop(&mut self) {
        // Closing the channel ends the thread once it is done with its
        // current epoch (a prepared epoch left behind is resolved when the
        // query restarts).
        self.to = None;
        if let Some(t) = self.thread.take() {
            if self.pending.is_none() {
                let _ = t.join();
            }
        }
    }
}

/// Waits for `epoch` to be durable, then commits its prepared transaction,
/// reconnecting with backoff after a lost connection.
fn commit_when_durable(
    query_id: &str,
    epoch: i64,
    durable: &DurableEpochs,
    reconnect_for: Duration,
    client: &mut Option<Client>,
    connect: &impl Fn() -> Result<Client, postgres::Error>,
) -> Result<i64, String> {
    let wanted = u64::try_from(epoch).unwrap_or(0);
    match durable.wait_for(wanted, POLL, DURABLE_WITHIN) {
        Ok(()) => {}
        Err(DurableWait::Aborted) => {
            return Err(format!(
                "the query failed before epoch {epoch} was durable; its prepared transaction \
                 is resolved when the query restarts"
            ))
        }
        Err(DurableWait::TimedOut) => {
            return Err(format!(
                "epoch {epoch} was not made durable within {DURABLE_WITHIN:?}"
            ))
        }
    }
    let started = Instant::now();
    let mut backoff = Duration::from_millis(50);
    loop {
        let attempt = (|| -> Result<(), postgres::Error> {
            if client.is_none() {
                *client = Some(connect()?);
            }
            let c = client.as_mut().expect("connected");
            match finish(c, query_id, epoch, true) {
                Ok(()) => Ok(()),
                // A retry after a commit whose answer was lost: the
                // transaction is gone because it committed.
                Err(e) if !is_prepared(c, query_id, epoch)? => {
                    tracing::debug!(epoch, "prepared transaction already finished: {e}");
                    Ok(())
                }
                Err(e) => Err(e),
            }
        })();
        match attempt {
            Ok(()) => return Ok(epoch),
            Err(e) if started.elapsed() < reconnect_for => {
                tracing::warn!(epoch, "committing the prepared epoch failed; retrying: {e}");
                *client = None;
                thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            Err(e) => {
                return Err(format!(
                    "committing epoch {epoch}'s prepared transaction: {e}"
                ))
            }
        }
    }
}
