//! `runnel log produce | consume | inspect`: the on-disk log from a shell.
//!
//! Owns the command-line face of the log connector's storage layer; the
//! format itself belongs to `runnel_connectors::log`.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use clap::{Args, Subcommand};
use runnel::{EngineError, Result};
use runnel_connectors::log::{inspect, LogError, LogTopic};

/// `runnel log` subcommands.
#[derive(Subcommand, Debug)]
pub enum LogCommand {
    /// Append one record per line of standard input.
    Produce(ProduceArgs),
    /// Print every record's value, one per line, all partitions, then exit.
    Consume(ConsumeArgs),
    /// Show partitions, segments, offsets and sizes.
    Inspect {
        /// The topic folder, DIR/TOPIC.
        topic: PathBuf,
    },
}

/// `runnel log produce` flags.
#[derive(Args, Debug)]
pub struct ProduceArgs {
    /// The topic folder, DIR/TOPIC (created when missing).
    pub topic: PathBuf,
    /// Partitions of a new topic.
    #[arg(long, default_value_t = 1)]
    pub partitions: u32,
    /// Lines are JSON objects; this field's value is the record key (and picks the partition).
    #[arg(long = "key-field")]
    pub key_field: Option<String>,
}

/// `runnel log consume` flags.
#[derive(Args, Debug)]
pub struct ConsumeArgs {
    /// The topic folder, DIR/TOPIC.
    pub topic: PathBuf,
    /// Start at this offset in every partition (default: the beginning).
    #[arg(long)]
    pub from: Option<u64>,
}

fn log_err(e: LogError) -> EngineError {
    EngineError::Source(e.to_string())
}

/// Runs a `runnel log` subcommand.
pub fn run(cmd: LogCommand) -> Result<()> {
    match cmd {
        LogCommand::Produce(a) => produce(a),
        LogCommand::Consume(a) => consume(a),
        LogCommand::Inspect { topic } => {
            println!("{}", inspect(&topic).map_err(log_err)?);
            Ok(())
        }
    }
}

fn produce(args: ProduceArgs) -> Result<()> {
    let topic = LogTopic::open_or_create(&args.topic, args.partitions).map_err(log_err)?;
    let mut producer = topic.producer().map_err(log_err)?;
    let stdin = std::io::stdin().lock();
    let mut n = 0u64;
    for (i, line) in stdin.lines().enumerate() {
        let line = line.map_err(|e| EngineError::Source(format!("stdin: {e}")))?;
        let key = match &args.key_field {
            None => None,
            Some(field) => {
                let obj: serde_json::Value = serde_json::from_str(&line).map_err(|e| {
                    EngineError::Source(format!("stdin line {}: not a JSON object ({e})", i + 1))
                })?;
                match obj.get(field) {
                    Some(serde_json::Value::String(s)) => Some(s.clone()),
                    Some(serde_json::Value::Null) | None => None,
                    Some(other) => Some(other.to_string()),
                }
            }
        };
        producer
            .send(
                None,
                key.as_deref().map(str::as_bytes),
                Some(line.as_bytes()),
                runnel::clock::wall_now_ms(),
            )
            .map_err(log_err)?;
        n += 1;
    }
    producer.sync().map_err(log_err)?;
    eprintln!("runnel: appended {n} records to {}", args.topic.display());
    Ok(())
}

fn consume(args: ConsumeArgs) -> Result<()> {
    let topic = LogTopic::open(&args.topic).map_err(log_err)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for p in 0..topic.partitions() {
        let mut reader = match args.from {
            Some(offset) => topic.reader_at(p, offset).map_err(log_err)?,
            None => topic.reader(p).map_err(log_err)?,
        };
        let mut failed = None;
        loop {
            let n = reader
                .read_batch(4096, |r| {
                    let value = r.value.unwrap_or_default();
                    if failed.is_none() {
                        if let Err(e) = out.write_all(value).and_then(|_| out.write_all(b"\n")) {
                            failed = Some(e);
                        }
                    }
                })
                .map_err(log_err)?;
            if let Some(e) = failed.take() {
                // A closed pipe (`| head`) ends the command quietly.
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    return Ok(());
                }
                return Err(EngineError::Sink(format!("stdout: {e}")));
            }
            if n == 0 {
                break;
            }
        }
    }
    let _ = out.flush();
    Ok(())
}
