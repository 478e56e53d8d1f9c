//! `runnel run`: one streaming query from the command line.
//!
//! Owns the contract scripts depend on: flags, exit status, stop on Ctrl-C /
//! SIGTERM (one last epoch or batch, then exit), progress output. It builds
//! the query from SQL and URIs and must not implement any query logic itself.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use runnel::sql::StreamingSql;
use runnel::{DataFrame, EngineError, OutputMode, Pacing, Result, StreamingQuery, Trigger, Zone};

use crate::progress::{Progress, ProgressKind};
use crate::uri::{self, SinkSpec};

/// Execution mode.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Mode {
    /// Every event processed as it arrives; epoch checkpoints; at-least-once.
    Continuous,
    /// Offset-logged Arrow batches; exactly-once.
    Microbatch,
}

/// `runnel run` flags.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// continuous or microbatch.
    #[arg(long, value_enum)]
    pub mode: Mode,
    /// The streaming query (Spark SQL flavour), reading the sources by name.
    #[arg(long)]
    pub sql: String,
    /// A named source: NAME=URI, e.g. retail=csv:data/retail?header=true&watermark=InvoiceDate:1 day.
    /// Give two to join two streams (the query names one in FROM, the other in JOIN).
    #[arg(long = "source", value_name = "NAME=URI", required = true)]
    pub sources: Vec<String>,
    /// A static table for stream-static joins, loaded once at start: NAME=URI,
    /// e.g. regions=csv:data/regions.csv?header=true (csv:PATH or json:PATH, a
    /// file or a directory, with the file source's options and max_rows=N,
    /// default 10000000).
    #[arg(long = "table", value_name = "NAME=URI")]
    pub tables: Vec<String>,
    /// Where results go: csv:PATH, json:PATH, console, memory:NAME, log:DIR/TOPIC, null.
    #[arg(long)]
    pub sink: String,
    /// append, update or complete (default: append, or update for aggregations).
    #[arg(long = "output-mode")]
    pub output_mode: Option<String>,
    /// Checkpoint directory: running again on it resumes where the last run stopped or crashed.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// With a checkpoint over a source that cannot replay (socket): accept
    /// that rows received after the last durable epoch are lost by a crash.
    /// Without it such a run is refused.
    #[arg(long = "allow-rows-lost-on-crash")]
    pub allow_rows_lost_on_crash: bool,
    /// Continuous mode with a checkpoint: how the checkpoint's work is
    /// spread out, SLICE_US:PAUSE_US (at most SLICE_US of work, then
    /// PAUSE_US asleep, so that it never holds a CPU a spinning task needs
    /// for longer), or off (in one go: epochs durable sooner).
    #[arg(long = "checkpoint-pacing", default_value_t = PacingArg::default(), value_parser = parse_pacing)]
    pub checkpoint_pacing: PacingArg,
    /// Stop once every source is exhausted (files read, log at its end), after flushing.
    #[arg(long = "until-idle")]
    pub until_idle: bool,
    /// bar (default on a terminal), json (one progress object per epoch or batch on stdout) or none.
    #[arg(long, value_enum)]
    pub progress: Option<ProgressKind>,
    /// Print the logical plan and the task graph, run nothing.
    #[arg(long)]
    pub explain: bool,
    /// The session time zone (Spark's spark.sql.session.timeZone): a region
    /// such as Europe/Paris, UTC or Z, or an offset such as +05:30.
    #[arg(long, value_name = "ZONE", default_value = "UTC", value_parser = parse_zone)]
    pub timezone: Zone,
    /// Serve the live view (web page, JSON API, Prometheus /metrics) on
    /// HOST:PORT, e.g. 127.0.0.1:4040 (port 0 picks a free one; the address
    /// is printed on stderr). A loopback address unless --ui-allow-remote.
    #[arg(long, value_name = "HOST:PORT")]
    pub ui: Option<String>,
    /// Let --ui listen on an address other than loopback (e.g. 0.0.0.0:4040):
    /// the view has no authentication.
    #[arg(long = "ui-allow-remote", requires = "ui")]
    pub ui_allow_remote: bool,
    /// Continuous mode: milliseconds between epochs.
    #[arg(long = "epoch-ms", default_value_t = 100)]
    pub epoch_ms: u64,
    /// Continuous mode: tasks a keyed aggregation is split over (rows go to
    /// them by a hash of the grouping keys, through rings). 1 runs the
    /// whole query in one task.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallelism: u16,
}

/// `--checkpoint-pacing`: how the checkpoint's work is spread out (`None`:
/// `off`, in one go).
#[derive(Clone, Copy, Debug)]
pub struct PacingArg(pub Option<Pacing>);

/// The engine's default, [`Pacing::DEFAULT`].
impl Default for PacingArg {
    fn default() -> Self {
        PacingArg(Some(Pacing::DEFAULT))
    }
}

/// As [`parse_pacing`] reads it: `SLICE_US:PAUSE_US` or `off`.
impl std::fmt::Display for PacingArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(p) => p.fmt(f),
            None => f.write_str("off"),
        }
    }
}

/// `--checkpoint-pacing`: SLICE_US:PAUSE_US or off, or the reason it is
/// neither.
pub(crate) fn parse_pacing(text: &str) -> std::result::Result<PacingArg, String> {
    if text == "off" {
        Ok(PacingArg(None))
    } else {
        text.parse().map(|p| PacingArg(Some(p)))
    }
}

/// `--timezone`: the zone, or the reason it is not one.
fn parse_zone(text: &str) -> std::result::Result<Zone, String> {
    Zone::parse(text)
}

/// Runs the command; returns the process exit status.
pub fn run(args: RunArgs) -> Result<()> {
    let sql = StreamingSql::parse(&args.sql)?;
    let table = sql.table().to_string();
    let joined = sql.joined_table().map(str::to_string);
    let mut chosen = None;
    let mut other = None;
    for spec in &args.sources {
        let (name, uri_text) = spec
            .split_once('=')
            .ok_or_else(|| EngineError::Plan(format!("--source '{spec}' must be NAME=URI")))?;
        let named = (name.to_string(), uri_text.to_string());
        if name.eq_ignore_ascii_case(&table) {
            chosen = Some(named);
        } else if joined
            .as_deref()
            .is_some_and(|j| j.eq_ignore_ascii_case(name))
        {
            // A stream-stream join: the JOIN names this stream.
            other = Some(named);
        } else {
            return Err(EngineError::Plan(format!(
                "--source {name} is not read by the query (it reads `{table}`{})",
                joined
                    .as_deref()
                    .map(|j| format!(" and joins `{j}`"))
                    .unwrap_or_default()
            )));
        }
    }
    let (name, uri_text) = chosen.ok_or_else(|| {
        EngineError::Plan(format!(
            "the query reads `{table}` but no --source {table}=URI was given"
        ))
    })?;
    let stream = |name: &str, uri_text: &str| -> Result<DataFrame> {
        let spec = uri::source(uri_text, name, args.until_idle)?;
        let mut df = DataFrame::from_boxed_source(name, spec.source);
        if let Some((column, delay)) = &spec.watermark {
            df = df.with_watermark(column, delay);
        }
        Ok(df)
    };
    let df = stream(&name, &uri_text)?;
    let mut tables = Vec::with_capacity(args.tables.len());
    for spec in &args.tables {
        let (name, uri_text) = spec
            .split_once('=')
            .ok_or_else(|| EngineError::Plan(format!("--table '{spec}' must be NAME=URI")))?;
        tables.push(uri::table(uri_text, name)?);
    }
    let df = match &other {
        Some((other_name, other_uri)) => {
            if let Some(t) = tables
                .iter()
                .find(|t| t.name().eq_ignore_ascii_case(other_name))
            {
                return Err(EngineError::Plan(format!(
                    "`{}` is given both as a --source (a stream) and as a --table; give it once",
                    t.name()
                )));
            }
            if let Some(t) = tables.first() {
                return Err(EngineError::Plan(format!(
                    "--table {} is not used by the query (it joins the stream `{other_name}`)",
                    t.name()
                )));
            }
            sql.apply_with_stream(df, stream(other_name, other_uri)?)?
        }
        None => sql.apply_with_tables(df, &tables)?,
    };
    if let Some(unused) = tables.iter().find(|t| {
        !sql.joined_table()
            .is_some_and(|j| j.eq_ignore_ascii_case(t.name()))
    }) {
        return Err(EngineError::Plan(match sql.joined_table() {
            Some(j) => format!(
                "--table {} is not used by the query (it joins `{j}`)",
                unused.name()
            ),
            None => format!(
                "--table {} is not used by the query (it has no JOIN)",
                unused.name()
            ),
        }));
    }
    let output_mode = match &args.output_mode {
        Some(m) => m.parse::<OutputMode>()?,
        None if sql.is_aggregate() => OutputMode::Update,
        None => OutputMode::Append,
    };
    let trigger = match args.mode {
        Mode::Continuous => Trigger::Continuous {
            epoch_interval: Duration::from_millis(args.epoch_ms.max(1)),
        },
        Mode::Microbatch => Trigger::ProcessingTime(Duration::ZERO),
    };
    let (sink, memory_table) = match uri::sink(&args.sink)? {
        SinkSpec::Sink(s) => (s, None),
        SinkSpec::Memory(s, t) => (Box::new(s) as Box<dyn runnel::Sink>, Some(t)),
    };
    let mut writer = df
        .write_stream_boxed(sink)
        .output_mode(output_mode)
        .trigger(trigger)
        .time_zone(args.timezone)
        .parallelism(usize::from(args.parallelism))
        .query_name(&name);
    if let Some(dir) = &args.checkpoint {
        writer = writer.checkpoint(dir);
    }
    if args.allow_rows_lost_on_crash {
        writer = writer.allow_rows_lost_on_crash();
    }
    writer = writer.checkpoint_pacing(args.checkpoint_pacing.0);
    if args.explain {
        println!("{}", writer.explain()?);
        return Ok(());
    }
    if let Some(addr) = &args.ui {
        check_ui(addr, args.ui_allow_remote)?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        // A second Ctrl-C while stopping exits at once.
        let _ = ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                eprintln!("runnel: interrupted again, exiting without the last epoch");
                std::process::exit(130);
            }
        });
    }
    let query = writer.start()?;
    if let Some(addr) = &args.ui {
        serve_ui(&query, addr, args.ui_allow_remote)?;
    }
    let kind = args.progress.unwrap_or(if std::io::stderr().is_terminal() {
        ProgressKind::Bar
    } else {
        ProgressKind::None
    });
    let result = supervise(&query, &stop, Progress::new(kind));
    if let Some(t) = memory_table {
        print_table(&t);
    }
    result
}

/// `--ui`: serves the live view and says where on stderr.
#[cfg(feature = "ui")]
pub(crate) fn serve_ui(query: &StreamingQuery, addr: &str, allow_remote: bool) -> Result<()> {
    let options = runnel::ui::UiOptions::new(addr).allow_remote(allow_remote);
    match query.serve_ui_with(&options) {
        Ok(bound) => {
            eprintln!("runnel: live view at http://{bound}/");
            Ok(())
        }
        Err(e) => {
            // The query started: stop it before reporting.
            let _ = query.stop();
            Err(EngineError::Plan(e.to_string()))
        }
    }
}

/// `--ui`: refuses a bad address before the query starts.
#[cfg(feature = "ui")]
fn check_ui(addr: &str, allow_remote: bool) -> Result<()> {
    runnel::ui::UiOptions::new(addr)
        .allow_remote(allow_remote)
        .resolve()
        .map(|_| ())
        .map_err(|e| EngineError::Plan(e.to_string()))
}

/// `--ui` in a build without the `ui` feature: refused before the start.
#[cfg(not(feature = "ui"))]
fn check_ui(_addr: &str, _allow_remote: bool) -> Result<()> {
    Err(EngineError::Plan(crate::not_built(
        "the live view (--ui)",
        "ui",
    )))
}

/// `--ui` in a build without the `ui` feature.
#[cfg(not(feature = "ui"))]
pub(crate) fn serve_ui(query: &StreamingQuery, _addr: &str, _allow_remote: bool) -> Result<()> {
    let _ = query.stop();
    Err(EngineError::Plan(crate::not_built(
        "the live view (--ui)",
        "ui",
    )))
}

fn supervise(query: &StreamingQuery, stop: &AtomicBool, mut progress: Progress) -> Result<()> {
    loop {
        match query.await_termination_timeout(Duration::from_millis(100)) {
            Ok(true) => {
                progress.update(query);
                progress.finish(query);
                return Ok(());
            }
            Ok(false) => {}
            Err(e) => {
                progress.finish(query);
                return Err(e);
            }
        }
        progress.update(query);
        if stop.load(Ordering::SeqCst) {
            eprintln!(
                "runnel: stopping after the current epoch or batch (Ctrl-C again to exit now)"
            );
            let result = query.stop();
            progress.update(query);
            progress.finish(query);
            return result;
        }
    }
}

fn print_table(table: &runnel::MemoryTable) {
    let mut out = std::io::stdout().lock();
    if let Some(schema) = table.schema() {
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let _ = writeln!(out, "{}", names.join("\t"));
    }
    for row in table.rows() {
        let cells: Vec<String> = row.iter().map(|v| v.to_string()).collect();
        let _ = writeln!(out, "{}", cells.join("\t"));
    }
}
