//! [`PostgresSink`]: the connection, the session's setup and one
//! transaction per epoch.

use std::fmt;
use std::io::Write;
use std::thread;
use std::time::{Duration, Instant};

use postgres::{Client, NoTls};
use runnel::schema::type_name;
use runnel::{EngineError, OutputMode, Result, Row, Sink, SinkContext};

use super::copy::{ident, sql_type, table_ident, unsupported, CopyBuffer};
use super::options::{Delivery, PostgresSinkOptions};

/// How long a lost connection is retried before the query fails.
const RECONNECT_FOR: Duration = Duration::from_secs(30);
/// The staging table of update and complete mode (session-local).
const STAGE: &str = "runnel_stage";
/// The staging table's column that orders a key's changes in an epoch.
const SEQ: &str = "__runnel_seq";

/// Writes a query's results into a PostgreSQL table, one transaction per
/// epoch or batch (see the module docs for the guarantees).
pub struct PostgresSink {
    opts: PostgresSinkOptions,
    password: Option<String>,
    client: Option<Client>,
    plan: Option<Plan>,
    rows: CopyBuffer,
    seq: i64,
}

/// What `open` worked out: the statements of every epoch.
struct Plan {
    /// Update and complete mode: stage, then upsert on the keys.
    upsert: Option<String>,
    /// `COPY … FROM STDIN (FORMAT binary)` into the table or the stage.
    copy: String,
    /// The columns' `CREATE TEMP TABLE` of the stage, if any.
    stage_ddl: Option<String>,
    /// Delete the table's rows in the next commit (complete mode, first
    /// epoch of a query that starts without a checkpoint).
    replace_first: bool,
    width: usize,
    query_id: String,
    exactly_once: bool,
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
    /// before [`Sink::open`]. The password is `PGPASSWORD`'s, if set.
    pub fn new(opts: PostgresSinkOptions) -> PostgresSink {
        PostgresSink {
            opts,
            password: std::env::var("PGPASSWORD").ok(),
            client: None,
            plan: None,
            rows: CopyBuffer::default(),
            seq: 0,
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
        let mut config = postgres::Config::new();
        config
            .host(&self.opts.host)
            .port(self.opts.port)
            .user(&self.opts.user)
            .dbname(&self.opts.database)
            .application_name("runnel")
            .connect_timeout(Duration::from_secs(10));
        if let Some(p) = &self.password {
            config.password(p);
        }
        config.connect(NoTls)
    }

    /// Connects and prepares the session (progress table, staging table).
    fn session(&self, plan: &Plan) -> std::result::Result<Client, postgres::Error> {
        let mut client = self.connect()?;
        client.batch_execute(
            "CREATE TABLE IF NOT EXISTS runnel_progress (
                 query_id text NOT NULL,
                 part integer NOT NULL,
                 last_id bigint NOT NULL,
                 PRIMARY KEY (query_id, part))",
        )?;
        if let Some(ddl) = &plan.stage_ddl {
            client.batch_execute(ddl)?;
        }
        Ok(client)
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
            client
                .batch_execute(&format!(
                    "CREATE TABLE IF NOT EXISTS {table} ({})",
                    cols.join(", ")
                ))
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

    /// Runs epoch `epoch`'s transaction once: `Ok(true)` when written,
    /// `Ok(false)` when the table already held the epoch.
    fn try_commit(&mut self, epoch: i64) -> std::result::Result<bool, (String, Cause)> {
        let plan = self.plan.as_ref().expect("opened");
        let client = self.client.as_mut().expect("connected");
        fn step(what: &'static str) -> impl Fn(postgres::Error) -> (String, Cause) {
            move |e| (what.to_string(), Cause::Pg(e))
        }
        client
            .batch_execute("BEGIN")
            .map_err(step("beginning a transaction"))?;
        let last: Option<i64> = client
            .query_opt(
                "SELECT last_id FROM runnel_progress WHERE query_id = $1 AND part = 0 FOR UPDATE",
                &[&plan.query_id],
            )
            .map_err(step("reading runnel_progress"))?
            .map(|r| r.get(0));
        if plan.exactly_once && last.is_some_and(|l| l >= epoch) {
            client
                .batch_execute("ROLLBACK")
                .map_err(step("rolling back"))?;
            return Ok(false);
        }
        if plan.replace_first {
            client
                .batch_execute(&format!("DELETE FROM {}", table_ident(&self.opts.table)))
                .map_err(step("replacing the table's rows"))?;
        }
        if self.rows.rows() > 0 {
            let mut w = client
                .copy_in(plan.copy.as_str())
                .map_err(step("starting COPY"))?;
            let wrote = w.write_all(self.rows.finish());
            // The server's verdict on the rows (a rejected value, a
            // constraint) comes with the end of the stream.
            w.finish().map_err(step("copying rows"))?;
            wrote.map_err(|e| ("copying rows".to_string(), Cause::Io(e)))?;
            if let Some(upsert) = &plan.upsert {
                client
                    .batch_execute(upsert)
                    .map_err(step("upserting the epoch's rows"))?;
            }
        }
        client
            .execute(
                "INSERT INTO runnel_progress (query_id, part, last_id) VALUES ($1, 0, $2)
                 ON CONFLICT (query_id, part) DO UPDATE SET last_id = EXCLUDED.last_id",
                &[&plan.query_id, &epoch],
            )
            .map_err(step("recording the epoch in runnel_progress"))?;
        client.batch_execute("COMMIT").map_err(step("committing"))?;
        Ok(true)
    }
}

impl Sink for PostgresSink {
    fn describe(&self) -> String {
        self.opts.describe()
    }

    fn open(&mut self, ctx: &SinkContext, recovered: Option<&serde_json::Value>) -> Result<()> {
        let exactly_once = self.opts.delivery == Delivery::ExactlyOnce;
        if exactly_once && !ctx.replays_same_rows {
            return Err(self.refuse(
                "delivery=exactly_once needs micro-batch mode: continuous epochs are cut by \
                 time, so an epoch replayed after a crash can hold other rows than the one the \
                 table committed; run with --mode microbatch, or add delivery=at_least_once to \
                 accept duplicates of appended rows after a crash",
            ));
        }
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
        let table = table_ident(&self.opts.table);
        let cols: Vec<String> = ctx
            .schema
            .fields()
            .iter()
            .map(|f| ident(f.name()))
            .collect();
        let col_list = cols.join(", ");
        let (copy, upsert, stage_ddl) = if keyed {
            let key_list: Vec<String> = keys.iter().map(|&i| cols[i].clone()).collect();
            let key_list = key_list.join(", ");
            let set: Vec<String> = (0..cols.len())
                .filter(|i| !keys.contains(i))
                .map(|i| format!("{c} = EXCLUDED.{c}", c = cols[i]))
                .collect();
            let action = if set.is_empty() {
                "NOTHING".to_string()
            } else {
                format!("UPDATE SET {}", set.join(", "))
            };
            let mut defs: Vec<String> = ctx
                .schema
                .fields()
                .iter()
                .map(|f| format!("{} {}", ident(f.name()), sql_type(f.data_type()).unwrap().0))
                .collect();
            defs.push(format!("{} bigint", ident(SEQ)));
            (
                format!(
                    "COPY {STAGE} ({col_list}, {}) FROM STDIN (FORMAT binary)",
                    ident(SEQ)
                ),
                Some(format!(
                    "INSERT INTO {table} ({col_list})
                     SELECT DISTINCT ON ({key_list}) {col_list} FROM {STAGE}
                     ORDER BY {key_list}, {} DESC
                     ON CONFLICT ({key_list}) DO {action}",
                    ident(SEQ)
                )),
                Some(format!(
                    "CREATE TEMP TABLE IF NOT EXISTS {STAGE} ({}) ON COMMIT DELETE ROWS",
                    defs.join(", ")
                )),
            )
        } else {
            (
                format!("COPY {table} ({col_list}) FROM STDIN (FORMAT binary)"),
                None,
                None,
            )
        };
        let plan = Plan {
            upsert,
            copy,
            stage_ddl,
            replace_first: ctx.output_mode == OutputMode::Complete && recovered.is_none(),
            width: cols.len(),
            query_id: self
                .opts
                .query_id
                .clone()
                .unwrap_or_else(|| ctx.query_id.clone()),
            exactly_once,
        };
        let mut client = self
            .session(&plan)
            .map_err(|e| self.fail("connecting", e))?;
        self.check_table(&mut client, ctx, &keys)?;
        self.client = Some(client);
        self.plan = Some(plan);
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
        self.seq += 1;
        self.rows.push(row, seq);
        Ok(())
    }

    fn commit(&mut self, epoch: u64) -> Result<serde_json::Value> {
        let epoch = i64::try_from(epoch).map_err(|_| self.refuse("epoch id out of range"))?;
        let started = Instant::now();
        let mut backoff = Duration::from_millis(50);
        loop {
            let outcome = match self.client {
                Some(_) => self.try_commit(epoch),
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
                    self.seq = 0;
                    if let Some(p) = self.plan.as_mut() {
                        p.replace_first = false;
                    }
                    return Ok(serde_json::json!({ "epoch": epoch, "written": written }));
                }
                Err((what, e)) if lost_connection(&e) && started.elapsed() < RECONNECT_FOR => {
                    tracing::warn!(
                        sink = %self.opts.describe(),
                        "connection lost while {what}; reconnecting in {backoff:?}: {e}"
                    );
                    self.client = None;
                    thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                Err((what, e)) => {
                    if let Some(c) = self.client.as_mut() {
                        // The transaction is dead either way; the server
                        // rolls it back when told or when the session ends.
                        let _ = c.batch_execute("ROLLBACK");
                    }
                    return Err(self.fail(format!("epoch {epoch}: {what}"), e));
                }
            }
        }
    }
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
