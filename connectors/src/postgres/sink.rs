//! [`PostgresSink`]: the connection, the session's setup and one
//! transaction per epoch.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use postgres::{Client, NoTls, SimpleQueryMessage, Statement};
use runnel::checkpoint::{ensure_dir, AppendFile, LocalStorage, OpenMode, Storage};
use runnel::schema::column::write_value_json;
use runnel::schema::type_name;
use runnel::{EngineError, OutputMode, Result, Row, Sink, SinkContext};
use rustc_hash::{FxHashSet, FxHasher};

use super::copy::{ident, literal, sql_type, table_ident, unsupported, CopyBuffer, TRAILER};
use super::options::{Delivery, PostgresSinkOptions};
use super::two_phase::{self, Finisher};

/// How long a lost connection is retried before the query fails.
const RECONNECT_FOR: Duration = Duration::from_secs(30);
/// The staging table of update and complete mode (session-local).
const STAGE: &str = "runnel_stage";
/// The staging table's column that orders a key's changes in an epoch.
const SEQ: &str = "__runnel_seq";
/// At-least-once group commits: the longest a row waits for its group's
/// commit while rows keep coming.
const GROUP_WITHIN: Duration = Duration::from_millis(1);
/// Rows between two looks at the clock while a group fills.
const GROUP_CHECK: u64 = 32;
/// Continuous exactly-once: how long rows wait before they are copied into
/// the epoch's open transaction (so that little is left to copy when the
/// epoch ends).
const STREAM_WITHIN: Duration = Duration::from_millis(5);

/// Writes a query's results into a PostgreSQL table, one transaction per
/// epoch or batch (see the module docs for the guarantees).
pub struct PostgresSink {
    opts: PostgresSinkOptions,
    password: Option<String>,
    client: Option<Session>,
    plan: Option<Plan>,
    rows: CopyBuffer,
    seq: i64,
    /// Update and complete mode: hashes of the keys written in the open
    /// transaction, to tell whether a key came twice.
    keys_seen: FxHashSet<u64>,
    /// A key came twice in the open transaction (or two keys' hashes met):
    /// the upsert must keep each key's last row.
    key_repeated: bool,
    /// Continuous exactly-once: commits prepared epochs once durable.
    finisher: Option<Finisher>,
    /// Continuous at-least-once (append and update mode): rows are
    /// committed in groups as they arrive; when the current group's first
    /// row came.
    group: Option<Option<Instant>>,
    /// `bad_records=dead-letter:PATH`: the file, and the rows of the open
    /// transaction (to name a rejected one).
    dead_letter: Option<DeadLetter>,
    /// The transaction being run again a row at a time.
    one_by_one: bool,
    /// Continuous exactly-once (without a dead-letter file): the epoch's
    /// rows are copied into its transaction as they come.
    stream: bool,
    /// The epoch's transaction, begun and holding the rows copied so far.
    streamed: Option<Streamed>,
    /// When the oldest row not yet copied came.
    unsent_since: Option<Instant>,
}

/// An epoch's transaction, open while its rows come (continuous
/// exactly-once). Its rows stay in the buffer until it commits: a lost
/// connection runs the transaction again, whole.
struct Streamed {
    /// The progress row's epoch, read (and locked) when it began.
    last: Option<i64>,
    /// Bytes of the buffer's tuples copied in so far.
    sent: usize,
}

/// Rows the server rejected, one JSON line each, made durable before the
/// transaction that left them out commits.
struct DeadLetter {
    file: Box<dyn AppendFile>,
    rows: Vec<Row>,
    /// `"name":` of each column, JSON-escaped.
    names: Vec<String>,
    line: Vec<u8>,
}

/// A connection and what is prepared on it.
struct Session {
    client: Client,
    /// The `COPY` of the plan, prepared on first use.
    copy: Option<Statement>,
}

/// The statements that upsert the staged rows into the table on its keys.
struct Upsert {
    /// For any stage: each key's last staged row (`DISTINCT ON`).
    any: String,
    /// For a stage whose keys all differ.
    distinct: String,
}

/// What `open` worked out: the statements of every epoch.
struct Plan {
    /// Update and complete mode: stage, then upsert on the keys.
    upsert: Option<Upsert>,
    /// The key columns (update and complete mode).
    keys: Vec<usize>,
    /// Begins an epoch's transaction and reads its progress row, locked.
    begin: String,
    /// The progress row's upsert, up to the epoch id.
    progress: String,
    /// `COPY … FROM STDIN (FORMAT binary)` into the table or the stage.
    copy: String,
    /// The stage's `CREATE TABLE`, if any.
    stage_ddl: Option<String>,
    /// Empties the stage inside the transaction (a prepared transaction
    /// cannot use a session-local table, so its stage is a table of its
    /// own, emptied before the epoch ends).
    stage_clear: Option<String>,
    /// `DELETE FROM` the stage, for rows upserted one at a time.
    stage_delete: Option<String>,
    /// Delete the table's rows in the next commit (complete mode, first
    /// epoch of a query that starts without a checkpoint).
    replace_first: bool,
    width: usize,
    query_id: String,
    exactly_once: bool,
    /// Each epoch is prepared, and committed once the checkpoint holds it
    /// (continuous mode, exactly-once, with a checkpoint).
    two_phase: bool,
}

/// What failed under the sink: the server or the connection's stream.
#[derive(Debug)]
enum Cause {
    Pg(postgres::Error),
    Io(std::io::Error),
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Pg(e) => write!(f, "{e}"),
            Cause::Io(e) => write!(f, "{e}"),
        }
    }
}

impl From<postgres::Error> for Cause {
    fn from(e: postgres::Error) -> Cause {
        Cause::Pg(e)
    }
}

/// A server or connection error with what the sink was doing.
#[derive(Debug)]
pub struct PostgresError {
    doing: String,
    source: Cause,
}

impl fmt::Display for PostgresError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.doing)?;
        let pg = match &self.source {
            Cause::Io(e) => return write!(f, "{e}"),
            Cause::Pg(e) => e,
        };
        match pg.as_db_error() {
            Some(db) => {
                write!(f, "{}", db.message())?;
                if let Some(d) = db.detail() {
                    write!(f, " ({d})")?;
                }
                if let Some(w) = db.where_() {
                    write!(f, " [{w}]")?;
                }
                Ok(())
            }
            None => write!(f, "{pg}"),
        }
    }
}

impl std::error::Error for PostgresError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.source {
            Cause::Pg(e) => Some(e),
            Cause::Io(e) => Some(e),
        }
    }
}

impl PostgresSink {
    /// A sink writing to the server and table of `opts`; nothing connects
    /// before [`Sink::open`]. The password is `PGPASSWORD`'s, if set, else
    /// the password file's (`PGPASSFILE` or `~/.pgpass`), read at open.
    pub fn new(opts: PostgresSinkOptions) -> PostgresSink {
        PostgresSink {
            opts,
            password: None,
            client: None,
            plan: None,
            rows: CopyBuffer::default(),
            seq: 0,
            keys_seen: FxHashSet::default(),
            key_repeated: false,
            finisher: None,
            group: None,
            dead_letter: None,
            one_by_one: false,
            stream: false,
            streamed: None,
            unsent_since: None,
        }
    }

    fn fail(&self, doing: impl Into<String>, source: impl Into<Cause>) -> EngineError {
        EngineError::sink_failed(
            self.opts.describe(),
            PostgresError {
                doing: doing.into(),
                source: source.into(),
            },
        )
    }

    fn refuse(&self, why: impl fmt::Display) -> EngineError {
        EngineError::Sink(format!("{}: {why}", self.opts.describe()))
    }

    fn connect(&self) -> std::result::Result<Client, postgres::Error> {
        connect(&self.opts, self.password.as_deref())
    }

    /// Connects and prepares the session (progress table, staging table).
    fn session(&self, plan: &Plan) -> std::result::Result<Session, postgres::Error> {
        let mut client = self.connect()?;
        ddl(
            &mut client,
            "CREATE TABLE IF NOT EXISTS runnel_progress (
                 query_id text NOT NULL,
                 part integer NOT NULL,
                 last_id bigint NOT NULL,
                 PRIMARY KEY (query_id, part))",
        )?;
        if let Some(stage) = &plan.stage_ddl {
            ddl(&mut client, stage)?;
        }
        Ok(Session { client, copy: None })
    }

    /// Checks the existing table's columns against the query's (or creates
    /// the table first with `create=true`).
    fn check_table(&self, client: &mut Client, ctx: &SinkContext, keys: &[usize]) -> Result<()> {
        let table = table_ident(&self.opts.table);
        if self.opts.create {
            let mut cols: Vec<String> = Vec::new();
            for f in ctx.schema.fields() {
                let (ty, _) = sql_type(f.data_type())
                    .ok_or_else(|| self.refuse(unsupported(f.name(), f.data_type())))?;
                cols.push(format!("{} {ty}", ident(f.name())));
            }
            if !keys.is_empty() {
                let k: Vec<String> = keys
                    .iter()
                    .map(|&i| ident(ctx.schema.field(i).name()))
                    .collect();
                // A null key is a group of its own, as in the query: from
                // PostgreSQL 15 a unique constraint can say so; before, a
                // primary key (and the server refuses null keys).
                let version: i32 = client
                    .query_one("SELECT current_setting('server_version_num')::int", &[])
                    .map_err(|e| self.fail("reading the server's version", e))?
                    .get(0);
                cols.push(if version >= 150_000 {
                    format!("UNIQUE NULLS NOT DISTINCT ({})", k.join(", "))
                } else {
                    format!("PRIMARY KEY ({})", k.join(", "))
                });
            }
            // A keyed table is upserted: room on its pages lets a row's new
            // version go beside the old one.
            let with = if keys.is_empty() {
                String::new()
            } else {
                format!(" WITH (fillfactor = {})", self.opts.fillfactor)
            };
            ddl(
                client,
                &format!(
                    "CREATE TABLE IF NOT EXISTS {table} ({}){with}",
                    cols.join(", ")
                ),
            )
            .map_err(|e| self.fail(format!("creating table {}", self.opts.table), e))?;
        }
        let found = table_columns(client, &self.opts.table)
            .map_err(|e| self.fail(format!("reading the columns of {}", self.opts.table), e))?;
        if found.is_empty() {
            return Err(self.refuse(format!(
                "table {} does not exist (create it, or add create=true to the URI)",
                self.opts.table
            )));
        }
        let columns = found;
        for f in ctx.schema.fields() {
            let (_, accepted) = sql_type(f.data_type())
                .ok_or_else(|| self.refuse(unsupported(f.name(), f.data_type())))?;
            match columns.iter().find(|(c, _)| c == f.name()) {
                None => {
                    let names: Vec<&str> = columns.iter().map(|(c, _)| c.as_str()).collect();
                    return Err(self.refuse(format!(
                        "table {} has no column {} (its columns: {})",
                        self.opts.table,
                        f.name(),
                        names.join(", ")
                    )));
                }
                Some((c, ty)) if !accepted.contains(&ty.as_str()) => {
                    return Err(self.refuse(format!(
                        "column {c} of table {} is {ty}, but the query writes {} ({} expected)",
                        self.opts.table,
                        type_name(f.data_type()),
                        accepted.join(" or ")
                    )));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Runs one transaction: epoch `epoch`'s (`Some`), or a group of the
    /// current epoch's rows (`None`, at-least-once group commits, which
    /// record no progress). `Ok(true)` when written, `Ok(false)` when the
    /// table already held the epoch. `rerun`: an earlier run of it lost its
    /// connection. On the way: one round trip to begin (and read the
    /// progress row), the `COPY`, one round trip for everything else.
    fn try_commit(
        &mut self,
        epoch: Option<i64>,
        rerun: bool,
    ) -> std::result::Result<bool, (String, Cause)> {
        let plan = self.plan.as_ref().expect("opened");
        let session = self.client.as_mut().expect("connected");
        fn step(what: &'static str) -> impl Fn(postgres::Error) -> (String, Cause) {
            move |e| (what.to_string(), Cause::Pg(e))
        }
        // A rerun after a lost answer to PREPARE: the epoch is prepared.
        if let Some(epoch) = epoch.filter(|_| plan.two_phase && rerun) {
            if two_phase::is_prepared(&mut session.client, &plan.query_id, epoch)
                .map_err(step("looking for the epoch's prepared transaction"))?
            {
                return Ok(true);
            }
        }
        // Continuous exactly-once: the transaction may be open already.
        let streamed = self.streamed.take();
        let last = match (&streamed, epoch) {
            (Some(st), _) => st.last,
            (None, Some(_)) => begin_epoch(&mut session.client, plan)
                .map_err(step("beginning a transaction and reading runnel_progress"))?,
            (None, None) => {
                session
                    .client
                    .batch_execute("BEGIN")
                    .map_err(step("beginning a transaction"))?;
                None
            }
        };
        if let Some(epoch) = epoch {
            if plan.exactly_once && last.is_some_and(|l| l >= epoch) {
                session
                    .client
                    .batch_execute("ROLLBACK")
                    .map_err(step("rolling back"))?;
                return Ok(false);
            }
        }
        if plan.replace_first {
            session
                .client
                .batch_execute(&format!("DELETE FROM {}", table_ident(&self.opts.table)))
                .map_err(step("replacing the table's rows"))?;
        }
        let mut staged = false;
        if self.rows.rows() > 0 && self.one_by_one {
            let dl = self
                .dead_letter
                .as_mut()
                .expect("only with a dead-letter file");
            let mut left_out = 0usize;
            for i in 0..dl.rows.len() {
                session
                    .client
                    .batch_execute("SAVEPOINT runnel_row")
                    .map_err(step("setting a savepoint"))?;
                let one = self.rows.single(i);
                match copy_rows(session, plan, &[&one], "copying a row", true) {
                    Ok(()) => session
                        .client
                        .batch_execute("RELEASE SAVEPOINT runnel_row")
                        .map_err(step("releasing a savepoint"))?,
                    Err((_, e)) if rejected_data(&e) => {
                        session
                            .client
                            .batch_execute("ROLLBACK TO SAVEPOINT runnel_row")
                            .map_err(step("rolling back a rejected row"))?;
                        dl.push(&self.opts.describe(), epoch, i, &e).map_err(|e| {
                            ("writing the dead-letter file".to_string(), Cause::Io(e))
                        })?;
                        left_out += 1;
                    }
                    Err(other) => return Err(other),
                }
            }
            if left_out > 0 {
                // Durable before the transaction that leaves them out.
                dl.file
                    .sync()
                    .map_err(|e| ("syncing the dead-letter file".to_string(), Cause::Io(e)))?;
                tracing::warn!(
                    sink = %self.opts.describe(),
                    rows = left_out,
                    "rows the server rejected went to the dead-letter file"
                );
            }
        } else if self.rows.rows() > 0 {
            match streamed {
                None => copy_rows(session, plan, &[self.rows.finish()], "copying rows", false)?,
                Some(st) => {
                    copy_unsent(session, plan, &self.rows, st.sent)?;
                }
            }
            staged = plan.upsert.is_some();
        }
        let upsert = plan.upsert.as_ref().filter(|_| staged).map(|u| {
            if self.key_repeated {
                &u.any
            } else {
                &u.distinct
            }
        });
        let (sql, what) = finish_sql(plan, epoch, upsert.map(String::as_str));
        session
            .client
            .batch_execute(&sql)
            .map_err(|e| (what, Cause::Pg(e)))?;
        Ok(true)
    }
}

impl Sink for PostgresSink {
    fn describe(&self) -> String {
        self.opts.describe()
    }

    fn open(&mut self, ctx: &SinkContext, recovered: Option<&serde_json::Value>) -> Result<()> {
        let exactly_once = self.opts.delivery == Delivery::ExactlyOnce;
        // Continuous epochs are cut by time: a replayed epoch can hold other
        // rows, so the table must never get ahead of the checkpoint.
        let two_phase = exactly_once && !ctx.replays_same_rows && ctx.checkpointed;
        for f in ctx.schema.fields() {
            if sql_type(f.data_type()).is_none() {
                return Err(self.refuse(unsupported(f.name(), f.data_type())));
            }
        }
        let keyed = ctx.output_mode != OutputMode::Append;
        let keys: Vec<usize> = match (&self.opts.key, &ctx.key_columns) {
            _ if !keyed => Vec::new(),
            (Some(names), _) => names
                .iter()
                .map(|n| {
                    ctx.schema.index_of(n).map_err(|_| {
                        self.refuse(format!(
                            "key column {n} is not a column of the query's output"
                        ))
                    })
                })
                .collect::<Result<_>>()?,
            (None, Some(k)) => k.clone(),
            (None, None) => {
                return Err(self.refuse(format!(
                    "{} mode upserts rows by key, and the query has no grouping keys; \
                     name them with key=c1,c2",
                    ctx.output_mode
                )))
            }
        };
        let query_id = self
            .opts
            .query_id
            .clone()
            .unwrap_or_else(|| ctx.query_id.clone());
        let table = table_ident(&self.opts.table);
        let cols: Vec<String> = ctx
            .schema
            .fields()
            .iter()
            .map(|f| ident(f.name()))
            .collect();
        let col_list = cols.join(", ");
        // A prepared transaction cannot touch a session-local table.
        let stage = if two_phase {
            stage_table(&query_id)
        } else {
            STAGE.to_string()
        };
        let (copy, upsert, stage_ddl) = if keyed {
            let mut defs: Vec<String> = ctx
                .schema
                .fields()
                .iter()
                .map(|f| format!("{} {}", ident(f.name()), sql_type(f.data_type()).unwrap().0))
                .collect();
            defs.push(format!("{} bigint", ident(SEQ)));
            (
                format!(
                    "COPY {stage} ({col_list}, {}) FROM STDIN (FORMAT binary)",
                    ident(SEQ)
                ),
                Some(upsert_sql(&table, &stage, &cols, &keys)),
                Some(if two_phase {
                    format!(
                        "CREATE UNLOGGED TABLE IF NOT EXISTS {stage} ({})",
                        defs.join(", ")
                    )
                } else {
                    format!(
                        "CREATE TEMP TABLE IF NOT EXISTS {stage} ({}) ON COMMIT DELETE ROWS",
                        defs.join(", ")
                    )
                }),
            )
        } else {
            (
                format!("COPY {table} ({col_list}) FROM STDIN (FORMAT binary)"),
                None,
                None,
            )
        };
        let stage_delete = keyed.then(|| format!("DELETE FROM {stage}"));
        let stage_clear = stage_delete.clone().filter(|_| two_phase);
        let plan = Plan {
            upsert,
            begin: format!(
                "BEGIN; SELECT last_id FROM runnel_progress WHERE query_id = {} AND part = 0 \
                 FOR UPDATE",
                literal(&query_id)
            ),
            progress: format!(
                "INSERT INTO runnel_progress (query_id, part, last_id) VALUES ({}, 0, ",
                literal(&query_id)
            ),
            keys: keys.clone(),
            copy,
            stage_ddl,
            stage_clear,
            stage_delete,
            replace_first: ctx.output_mode == OutputMode::Complete && recovered.is_none(),
            width: cols.len(),
            query_id,
            exactly_once,
            two_phase,
        };
        if let Some(path) = &self.opts.dead_letter {
            let mut dl = DeadLetter::open(path, &ctx.schema)
                .map_err(|e| self.refuse(format!("dead-letter file {}: {e}", path.display())))?;
            self.rows.keep_row_starts();
            dl.rows.reserve(1024);
            self.dead_letter = Some(dl);
        }
        self.password = self.opts.password().map_err(|why| self.refuse(why))?;
        let mut session = self
            .session(&plan)
            .map_err(|e| self.fail("connecting", e))?;
        self.check_table(&mut session.client, ctx, &keys)?;
        if two_phase {
            self.start_two_phase(&mut session.client, ctx, &plan.query_id, recovered)?;
        }
        self.client = Some(session);
        self.plan = Some(plan);
        // Continuous at-least-once: rows are committed as they arrive, in
        // groups, rather than at the end of their epoch. Not in complete
        // mode, whose epoch replaces the table in one transaction.
        self.group =
            (!exactly_once && !ctx.replays_same_rows && ctx.output_mode != OutputMode::Complete)
                .then_some(None);
        // Continuous exactly-once: rows go into the epoch's transaction as
        // they come (not with a dead-letter file, whose rows are retried
        // one by one from the buffer).
        self.stream = two_phase && self.dead_letter.is_none();
        Ok(())
    }

    fn write(&mut self, row: &Row) -> Result<()> {
        let plan = self.plan.as_ref().expect("opened");
        if row.len() != plan.width {
            return Err(self.refuse(format!(
                "a row of {} values for {} columns",
                row.len(),
                plan.width
            )));
        }
        let seq = plan.upsert.is_some().then_some(self.seq);
        if seq.is_some() && !self.key_repeated {
            let mut h = FxHasher::default();
            for &i in &plan.keys {
                row[i].hash(&mut h);
            }
            self.key_repeated = !self.keys_seen.insert(h.finish());
        }
        self.seq += 1;
        self.rows.push(row, seq);
        if let Some(dl) = self.dead_letter.as_mut() {
            dl.rows.push(row.clone());
        }
        if let Some(group) = self.group.as_mut() {
            // At-least-once group commits: a group is committed within a
            // millisecond of its first row (the clock is read every
            // GROUP_CHECK rows; the task's idle spells commit the rest).
            let first = *group.get_or_insert_with(Instant::now);
            if self.rows.rows().is_multiple_of(GROUP_CHECK) && first.elapsed() >= GROUP_WITHIN {
                self.run(None)?;
            }
        } else if self.stream {
            let first = *self.unsent_since.get_or_insert_with(Instant::now);
            if self.rows.rows().is_multiple_of(GROUP_CHECK) && first.elapsed() >= STREAM_WITHIN {
                self.stream_rows();
            }
        }
        Ok(())
    }

    fn commit(&mut self, epoch: u64) -> Result<serde_json::Value> {
        let epoch = i64::try_from(epoch).map_err(|_| self.refuse("epoch id out of range"))?;
        // The previous epoch's prepared transaction holds row locks this
        // epoch may need: it must be committed first.
        self.wait_finisher()?;
        let written = self.run(Some(epoch))?;
        if let Some(p) = self.plan.as_mut() {
            p.replace_first = false;
        }
        let prepared = written && self.finisher.is_some();
        if prepared {
            let handed = self.finisher.as_mut().expect("two-phase").hand_over(epoch);
            handed.map_err(|why| self.refuse(why))?;
        }
        Ok(serde_json::json!({
            "epoch": epoch,
            "written": written,
            "prepared": prepared,
        }))
    }

    fn idle(&mut self) -> Result<()> {
        // At-least-once group commits: nothing more to wait for.
        if self.group.is_some() && self.rows.rows() > 0 {
            self.run(None)?;
        }
        if self
            .unsent_since
            .is_some_and(|t| t.elapsed() >= STREAM_WITHIN)
        {
            self.stream_rows();
        }
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        // The last epoch becomes visible once the checkpoint holds it.
        self.wait_finisher()
    }
}

impl PostgresSink {
    /// Continuous exactly-once: checks that the server can prepare
    /// transactions, settles the epochs a previous run prepared (committing
    /// those the checkpoint holds, rolling back the rest, which the engine
    /// replays), and starts the finisher.
    fn start_two_phase(
        &mut self,
        client: &mut Client,
        ctx: &SinkContext,
        query_id: &str,
        recovered: Option<&serde_json::Value>,
    ) -> Result<()> {
        let max: String = client
            .query_one("SHOW max_prepared_transactions", &[])
            .map_err(|e| self.fail("reading max_prepared_transactions", e))?
            .get(0);
        if max.trim() == "0" {
            return Err(self.refuse(
                "delivery=exactly_once in continuous mode commits each epoch in two phases, \
                 and this server has max_prepared_transactions = 0; set it to at least 1 \
                 (postgresql.conf, then restart the server), run with --mode microbatch, or \
                 add delivery=at_least_once to accept duplicates of appended rows after a crash",
            ));
        }
        let durable_epoch = recovered
            .and_then(|v| v.get("epoch"))
            .and_then(|e| e.as_i64())
            .unwrap_or(0);
        let prepared = two_phase::prepared_epochs(client, query_id)
            .map_err(|e| self.fail("listing prepared transactions", e))?;
        for epoch in prepared {
            let commit = epoch <= durable_epoch;
            tracing::info!(
                sink = %self.opts.describe(),
                epoch,
                "{} an epoch prepared before the restart",
                if commit { "committing" } else { "rolling back" }
            );
            two_phase::finish(client, query_id, epoch, commit).map_err(|e| {
                self.fail(format!("settling epoch {epoch}'s prepared transaction"), e)
            })?;
        }
        let (opts, password) = (self.opts.clone(), self.password.clone());
        self.finisher = Some(Finisher::start(
            query_id.to_string(),
            ctx.durable.clone(),
            RECONNECT_FOR,
            move || connect(&opts, password.as_deref()),
        ));
        Ok(())
    }

    /// Runs a transaction (see [`PostgresSink::try_commit`]), reconnecting
    /// with backoff and running it again while the connection is lost, then
    /// forgets the rows it wrote.
    fn run(&mut self, epoch: Option<i64>) -> Result<bool> {
        self.one_by_one = false;
        let started = Instant::now();
        let mut backoff = Duration::from_millis(50);
        let mut rerun = false;
        loop {
            let outcome = match self.client {
                Some(_) => self.try_commit(epoch, rerun),
                None => match self.session(self.plan.as_ref().expect("opened")) {
                    Ok(c) => {
                        self.client = Some(c);
                        continue;
                    }
                    Err(e) => Err(("reconnecting".to_string(), Cause::Pg(e))),
                },
            };
            match outcome {
                Ok(written) => {
                    self.rows.clear();
                    if let Some(dl) = self.dead_letter.as_mut() {
                        dl.rows.clear();
                    }
                    self.seq = 0;
                    self.keys_seen.clear();
                    self.key_repeated = false;
                    self.unsent_since = None;
                    if let Some(g) = self.group.as_mut() {
                        *g = None;
                    }
                    return Ok(written);
                }
                Err((what, e)) if lost_connection(&e) && started.elapsed() < RECONNECT_FOR => {
                    tracing::warn!(
                        sink = %self.opts.describe(),
                        "connection lost while {what}; reconnecting in {backoff:?}: {e}"
                    );
                    self.client = None;
                    rerun = true;
                    thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                Err((what, e)) => {
                    if let Some(c) = self.client.as_mut() {
                        // The transaction is dead either way; the server
                        // rolls it back when told or when the session ends.
                        let _ = c.client.batch_execute("ROLLBACK");
                    }
                    if self.dead_letter.is_some() && rejected_data(&e) && !self.one_by_one {
                        // Run it again a row at a time, leaving out (into the
                        // dead-letter file) the rows the server rejects.
                        self.one_by_one = true;
                        continue;
                    }
                    let doing = match epoch {
                        Some(epoch) => format!("epoch {epoch}: {what}"),
                        None => format!("a group commit: {what}"),
                    };
                    return Err(self.fail(doing, e));
                }
            }
        }
    }

    fn wait_finisher(&mut self) -> Result<()> {
        match self.finisher.as_mut().map(Finisher::wait) {
            Some(Err(why)) => Err(self.refuse(why)),
            _ => Ok(()),
        }
    }

    /// Continuous exactly-once: copies the rows not yet copied into the
    /// epoch's transaction (beginning it first), once the previous epoch's
    /// prepared transaction is committed (it holds the progress row). A
    /// failure drops the transaction: the epoch's commit runs it again,
    /// whole, and reports what fails then.
    fn stream_rows(&mut self) {
        self.unsent_since = None;
        if !self.finisher.as_mut().is_some_and(Finisher::is_idle) {
            return;
        }
        if let Err((what, e)) = self.try_stream() {
            tracing::debug!(sink = %self.opts.describe(), "{what}: {e}; the epoch's commit runs its transaction again");
            self.streamed = None;
            match self.client.as_mut() {
                Some(_) if lost_connection(&e) => self.client = None,
                Some(c) => {
                    let _ = c.client.batch_execute("ROLLBACK");
                }
                None => {}
            }
        }
    }

    fn try_stream(&mut self) -> std::result::Result<(), (String, Cause)> {
        let plan = self.plan.as_ref().expect("opened");
        let Some(session) = self.client.as_mut() else {
            // Reconnected by the epoch's commit.
            return Ok(());
        };
        let streamed = match self.streamed.as_mut() {
            Some(st) => st,
            None => {
                let last = begin_epoch(&mut session.client, plan).map_err(|e| {
                    (
                        "beginning a transaction and reading runnel_progress".to_string(),
                        Cause::Pg(e),
                    )
                })?;
                self.streamed.insert(Streamed { last, sent: 0 })
            }
        };
        streamed.sent += copy_unsent(session, plan, &self.rows, streamed.sent)?;
        Ok(())
    }
}

/// Copies a `COPY` stream, in parts, in (into the table or the stage); `alone`: a
/// single row, retried on its own, upserted from the stage at once (which
/// it leaves empty for the next one).
/// Copies the rows of `rows` past the first `sent` bytes of its tuples
/// (those an open transaction already holds), if any; how many bytes that
/// was.
fn copy_unsent(
    session: &mut Session,
    plan: &Plan,
    rows: &CopyBuffer,
    sent: usize,
) -> std::result::Result<usize, (String, Cause)> {
    let (head, rest) = rows.tuples_after(sent);
    if !rest.is_empty() {
        copy_rows(
            session,
            plan,
            &[head, rest, &TRAILER],
            "copying rows",
            false,
        )?;
    }
    Ok(rest.len())
}

fn copy_rows(
    session: &mut Session,
    plan: &Plan,
    stream: &[&[u8]],
    what: &'static str,
    alone: bool,
) -> std::result::Result<(), (String, Cause)> {
    let step = |what: &'static str| move |e: postgres::Error| (what.to_string(), Cause::Pg(e));
    let copy = match &session.copy {
        Some(copy) => copy.clone(),
        None => {
            let copy = session
                .client
                .prepare(&plan.copy)
                .map_err(step("preparing COPY"))?;
            session.copy.insert(copy).clone()
        }
    };
    let mut w = session
        .client
        .copy_in(&copy)
        .map_err(step("starting COPY"))?;
    let wrote = stream.iter().try_for_each(|part| w.write_all(part));
    // The server's verdict on the rows (a rejected value, a constraint)
    // comes with the end of the stream.
    w.finish().map_err(step(what))?;
    wrote.map_err(|e| (what.to_string(), Cause::Io(e)))?;
    if let (true, Some(upsert), Some(delete)) = (alone, &plan.upsert, &plan.stage_delete) {
        session
            .client
            .batch_execute(&format!("{};\n{delete}", upsert.distinct))
            .map_err(step("upserting a row"))?;
    }
    Ok(())
}

/// Begins an epoch's transaction and reads (and locks) its progress row,
/// in one round trip: the last epoch the table holds, if any.
fn begin_epoch(
    client: &mut Client,
    plan: &Plan,
) -> std::result::Result<Option<i64>, postgres::Error> {
    let mut last = None;
    for m in client.simple_query(&plan.begin)? {
        if let SimpleQueryMessage::Row(r) = m {
            last = r.get(0).and_then(|v| v.parse().ok());
        }
    }
    Ok(last)
}

/// The rest of a transaction, sent as one: the upsert from the stage (if
/// `upsert`) and the stage emptied, the epoch's progress row, and `COMMIT`
/// or (two-phase) `PREPARE TRANSACTION`. With what it does, for errors.
fn finish_sql(plan: &Plan, epoch: Option<i64>, upsert: Option<&str>) -> (String, String) {
    let mut sql = String::new();
    let mut what = Vec::new();
    if let Some(upsert) = upsert {
        sql.push_str(upsert);
        sql.push_str(";\n");
        if let Some(clear) = &plan.stage_clear {
            sql.push_str(clear);
            sql.push_str(";\n");
        }
        what.push("upserting the rows");
    }
    if let Some(epoch) = epoch {
        sql.push_str(&plan.progress);
        sql.push_str(&format!(
            "{epoch}) ON CONFLICT (query_id, part) DO UPDATE SET last_id = EXCLUDED.last_id;\n"
        ));
        what.push("recording the epoch in runnel_progress");
    }
    match epoch.filter(|_| plan.two_phase) {
        Some(epoch) => {
            sql.push_str("PREPARE TRANSACTION ");
            sql.push_str(&literal(&two_phase::gid(&plan.query_id, epoch)));
            what.push("preparing the epoch's transaction");
        }
        None => {
            sql.push_str("COMMIT");
            what.push("committing");
        }
    }
    (sql, what.join(", "))
}

/// The statements that upsert the stage's rows into `table` on the `keys`
/// columns: rows whose key the table holds are updated in one join (a
/// table with room on its pages updates them in place), the others are
/// inserted. `ON CONFLICT` stays on the insert, so that a key another
/// writer inserts meanwhile is updated rather than refused, and a key that
/// does not compare equal to itself (null, in a `NULLS NOT DISTINCT` key)
/// goes that way too.
fn upsert_sql(table: &str, stage: &str, cols: &[String], keys: &[usize]) -> Upsert {
    let col_list = cols.join(", ");
    let key_list: Vec<&str> = keys.iter().map(|&i| cols[i].as_str()).collect();
    let key_list = key_list.join(", ");
    let values: Vec<&String> = (0..cols.len())
        .filter(|i| !keys.contains(i))
        .map(|i| &cols[i])
        .collect();
    let last = format!(
        "SELECT DISTINCT ON ({key_list}) {col_list} FROM {stage} ORDER BY {key_list}, {} DESC",
        ident(SEQ)
    );
    if values.is_empty() {
        // Nothing to update: the new keys are inserted.
        let insert = |from: &str| {
            format!(
                "INSERT INTO {table} ({col_list}) SELECT {col_list} FROM {from} \
                 ON CONFLICT ({key_list}) DO NOTHING"
            )
        };
        return Upsert {
            any: insert(&format!("({last}) s")),
            distinct: insert(stage),
        };
    }
    let set = |to: &str| -> String {
        let pairs: Vec<String> = values.iter().map(|c| format!("{c} = {to}.{c}")).collect();
        pairs.join(", ")
    };
    let same = |a: &str, b: &str| -> String {
        let eq: Vec<String> = keys
            .iter()
            .map(|&i| format!("{a}.{c} = {b}.{c}", c = cols[i]))
            .collect();
        eq.join(" AND ")
    };
    let returning: Vec<String> = keys.iter().map(|&i| format!("t.{}", cols[i])).collect();
    let s_cols: Vec<String> = cols.iter().map(|c| format!("s.{c}")).collect();
    // `with`: the CTEs before `u`; `from`: what `s` is.
    let statement = |with: &str, from: &str| {
        format!(
            "WITH {with}u AS (UPDATE {table} t SET {} FROM {from} s WHERE {} RETURNING {})
             INSERT INTO {table} ({col_list}) SELECT {} FROM {from} s
             WHERE NOT EXISTS (SELECT 1 FROM u WHERE {})
             ON CONFLICT ({key_list}) DO UPDATE SET {}",
            set("s"),
            same("t", "s"),
            returning.join(", "),
            s_cols.join(", "),
            same("u", "s"),
            set("EXCLUDED"),
        )
    };
    Upsert {
        any: statement(&format!("runnel_last AS ({last}), "), "runnel_last"),
        distinct: statement("", stage),
    }
}

/// Whether the server refused the rows themselves (a value it cannot take,
/// a constraint they break): SQLSTATE classes 22 and 23. Those rows can go
/// to a dead-letter file; any other error fails the query.
fn rejected_data(e: &Cause) -> bool {
    match e {
        Cause::Pg(e) => e
            .code()
            .is_some_and(|c| c.code().starts_with("22") || c.code().starts_with("23")),
        Cause::Io(_) => false,
    }
}

impl DeadLetter {
    /// Opens (creating it and its folders, durably) the file at `path`.
    fn open(path: &Path, schema: &runnel::Schema) -> std::io::Result<DeadLetter> {
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        ensure_dir(&LocalStorage, parent)?;
        let file = LocalStorage.open_append(path, OpenMode::Create)?;
        LocalStorage.sync_dir(parent)?;
        Ok(DeadLetter {
            file,
            rows: Vec::new(),
            names: schema
                .fields()
                .iter()
                .map(|f| serde_json::to_string(f.name()).expect("a string serializes"))
                .collect(),
            line: Vec::new(),
        })
    }

    /// Writes row `i` of the transaction with the server's reason.
    fn push(&mut self, sink: &str, epoch: Option<i64>, i: usize, e: &Cause) -> std::io::Result<()> {
        let reason = match e {
            Cause::Pg(pg) => match pg.as_db_error() {
                Some(db) => match db.detail() {
                    Some(d) => format!("{} ({d})", db.message()),
                    None => db.message().to_string(),
                },
                None => pg.to_string(),
            },
            Cause::Io(io) => io.to_string(),
        };
        let head = serde_json::json!({ "sink": sink, "epoch": epoch, "reason": reason });
        self.line.clear();
        let head = head.to_string();
        // `{"sink":…,"reason":…` then `,"row":{…}}`.
        self.line
            .extend_from_slice(&head.as_bytes()[..head.len() - 1]);
        self.line.extend_from_slice(b",\"row\":{");
        for (c, (name, v)) in self.names.iter().zip(self.rows[i].iter()).enumerate() {
            if c > 0 {
                self.line.push(b',');
            }
            self.line.extend_from_slice(name.as_bytes());
            self.line.push(b':');
            write_value_json(v, &mut self.line);
        }
        self.line.extend_from_slice(b"}}\n");
        self.file.append(&self.line)
    }
}

/// The advisory lock every sink's `CREATE … IF NOT EXISTS` takes: two
/// sinks starting at once on a database without the table would otherwise
/// both try to create it, and one fails (`IF NOT EXISTS` does not guard
/// against a concurrent create).
const DDL_LOCK: i64 = 0x7275_6e6e_656c;

/// Runs `statement` (a `CREATE … IF NOT EXISTS`) in a transaction of its
/// own under [`DDL_LOCK`].
fn ddl(client: &mut Client, statement: &str) -> std::result::Result<(), postgres::Error> {
    client.batch_execute(&format!(
        "BEGIN; SELECT pg_advisory_xact_lock({DDL_LOCK}); {statement}; COMMIT"
    ))
}

/// Opens a connection to the sink's server.
fn connect(
    opts: &PostgresSinkOptions,
    password: Option<&str>,
) -> std::result::Result<Client, postgres::Error> {
    opts.client_config("runnel", password).connect(NoTls)
}

/// The staging table of a query whose epochs are prepared: a table of its
/// own (unlogged: it is empty whenever no epoch is in flight).
fn stage_table(query_id: &str) -> String {
    let mut name = String::from("runnel_stage_");
    name.extend(
        query_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(63 - name.len()),
    );
    name
}

/// The columns of `table` (`schema.table` or a table of the current
/// schema) and their types as `information_schema` names them, in order;
/// none when the table does not exist.
pub fn table_columns(
    client: &mut impl postgres::GenericClient,
    table: &str,
) -> std::result::Result<Vec<(String, String)>, postgres::Error> {
    let (schema, name) = match table.split_once('.') {
        Some((s, t)) => (Some(s), t),
        None => (None, table),
    };
    Ok(client
        .query(
            "SELECT column_name, data_type FROM information_schema.columns
             WHERE table_schema = coalesce($1, current_schema()) AND table_name = $2
             ORDER BY ordinal_position",
            &[&schema, &name],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// Whether `e` means the session is gone (server restart, network), so a
/// new connection and a rerun of the epoch can succeed.
fn lost_connection(e: &Cause) -> bool {
    let e = match e {
        Cause::Io(_) => return true,
        Cause::Pg(e) => e,
    };
    if e.is_closed() {
        return true;
    }
    match e.code() {
        Some(code) => {
            let c = code.code();
            // Class 08 (connection exception), 57P01-57P03 (admin shutdown,
            // crash shutdown, cannot connect now).
            c.starts_with("08") || matches!(c, "57P01" | "57P02" | "57P03")
        }
        // No SQLSTATE: an I/O error of the connection itself.
        None => e.as_db_error().is_none(),
    }
}
