//! The PostgreSQL sink: query results into a table, a transaction per epoch
//! or batch.
//!
//! * URI: `postgres://USER@HOST:PORT/DB?table=T[&key=c1,c2][&create=true]
//!   [&fillfactor=N][&delivery=exactly_once|at_least_once][&query_id=ID]`.
//!   The password comes from `PGPASSWORD` or the password file
//!   (`PGPASSFILE`, else `~/.pgpass`, which must be private), never from
//!   the URI, so no printed form of the sink carries it.
//! * Output modes: append copies the rows in with binary `COPY`; update
//!   copies them into a session-local staging table and upserts them on the
//!   key columns, the last change of a key in the epoch winning (`DISTINCT
//!   ON`, left out when the sink saw no key twice): one statement updates
//!   the keys the table holds in a join with the stage (`UPDATE … FROM`)
//!   and inserts the others (`INSERT … ON CONFLICT (keys) DO UPDATE`, so a
//!   key another writer inserts meanwhile is updated, not refused);
//!   complete deletes the table's rows and copies the new result in, in the
//!   same transaction, so a reader sees the old table or the new one, never
//!   a mix. A keyed table the sink creates gets `fillfactor` 50 (half of
//!   each page free, `fillfactor=N` to change it), so that an epoch
//!   updating every row still updates in place (HOT, no new index entry);
//!   an existing table keeps its own layout.
//! * Round trips per epoch: one to begin and read the progress row, the
//!   `COPY`, one for the upsert, the progress row and `COMMIT` (or
//!   `PREPARE TRANSACTION`) together. Continuous exactly-once begins the
//!   epoch's transaction early and copies rows into it as they come (those
//!   5 ms old, once the previous epoch is committed), so that the epoch's
//!   end has little left to copy before `PREPARE`; the rows stay buffered
//!   until it commits, and a lost connection runs it again whole.
//! * Exactly-once: the transaction that writes an epoch's rows also sets
//!   `runnel_progress(query_id, part, last_id)` to the epoch, and an epoch
//!   whose id the table already holds is skipped. That is exact when a
//!   replayed epoch holds the rows it held the first time: micro-batch
//!   mode. Continuous epochs are cut by time, so there (with a checkpoint)
//!   each epoch's transaction is prepared when the epoch ends and committed
//!   once the engine's checkpoint holds the epoch; a restart commits the
//!   prepared epochs the checkpoint holds and rolls back the others, which
//!   the engine replays (`two_phase`). That needs a server with
//!   `max_prepared_transactions` ≥ 1: without it the sink refuses to start
//!   unless `delivery=at_least_once` says duplicates are acceptable.
//! * At-least-once in continuous mode: rows are committed in groups as
//!   they arrive (a group within a millisecond of its first row while rows
//!   keep coming, and whenever the task runs out of input), so results are
//!   visible before their epoch ends; complete mode keeps one transaction
//!   per epoch.
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
mod pgpass;
mod sink;
mod two_phase;

pub use options::{Delivery, PostgresSinkOptions};
pub use sink::{table_columns, PostgresSink};
