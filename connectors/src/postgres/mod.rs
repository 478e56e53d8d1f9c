//! The PostgreSQL sink: query results into a table, a transaction per epoch
//! or batch.
//!
//! * URI: `postgres://USER@HOST:PORT/DB?table=T[&key=c1,c2][&create=true]
//!   [&delivery=exactly_once|at_least_once][&query_id=ID]`. The password
//!   comes from `PGPASSWORD`, never from the URI, so no printed form of the
//!   sink carries it.
//! * Output modes: append copies the rows in with binary `COPY`; update
//!   copies them into a session-local staging table and upserts them on the
//!   key columns (`INSERT … ON CONFLICT (keys) DO UPDATE`, the last change
//!   of a key in the epoch winning); complete deletes the table's rows and
//!   copies the new result in, in the same transaction, so a reader sees
//!   the old table or the new one, never a mix.
//! * Exactly-once: the transaction that writes an epoch's rows also sets
//!   `runnel_progress(query_id, part, last_id)` to the epoch, and an epoch
//!   whose id the table already holds is skipped. That is exact when a
//!   replayed epoch holds the rows it held the first time: micro-batch
//!   mode. Continuous epochs are cut by time, so there the sink refuses to
//!   start unless `delivery=at_least_once` says duplicates are acceptable.
//! * Faults: a connection lost while an epoch commits is reopened with
//!   backoff (up to about 30 s) and the epoch's transaction is run again
//!   (its rows stay buffered until it commits; the progress row makes the
//!   retry skip an epoch whose commit did reach the server). The server
//!   down at start, a table whose columns do not match the query's, and a
//!   row the server rejects are errors naming the table, column or
//!   server message.
//!
//! This module owns the wire encoding (binary `COPY`), the SQL it sends and
//! the progress table. It must not buffer more than one epoch's rows, and
//! must not report an epoch committed before the server has committed it.

mod copy;
mod options;
mod sink;

pub use options::{Delivery, PostgresSinkOptions};
pub use sink::{table_columns, PostgresSink};
