//! `runnel sql`: batch SQL over the result tables that queries wrote.
//!
//! Owns registering CSV/JSON files, log topics and PostgreSQL tables (read
//! by `pg_table`) as tables and printing a query's result as a table, CSV
//! or JSON lines. Batch SQL (ORDER BY, LIMIT, JOIN, ...) is DataFusion's;
//! this module must stay out of the streaming engine's way (it never runs
//! on a query's hot path).

use std::path::Path;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMillisecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::{col, CsvReadOptions, JsonReadOptions, SessionContext};
use runnel::{EngineError, Result};

use crate::uri::Uri;

/// Output format of `runnel sql`.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Format {
    /// An aligned table.
    Table,
    /// CSV with a header row.
    Csv,
    /// One JSON object per line.
    Json,
}

/// `runnel sql` flags.
#[derive(Args, Debug)]
pub struct SqlArgs {
    /// A table: NAME=csv:PATH, NAME=json:PATH (a file or a directory),
    /// NAME=log:DIR/TOPIC or NAME=postgres://USER@HOST:PORT/DB?table=T
    /// (password from PGPASSWORD).
    #[arg(long = "table", value_name = "NAME=URI", required = true)]
    pub tables: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// The query (full batch SQL: ORDER BY, LIMIT, JOIN, ...). Column names
    /// are case-insensitive, as in Spark.
    pub query: String,
}

fn df_err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Plan(e.to_string())
}

/// Runs the command.
pub fn run(args: SqlArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(df_err)?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: SqlArgs) -> Result<()> {
    let ctx = SessionContext::new();
    for spec in &args.tables {
        let (name, text) = spec
            .split_once('=')
            .ok_or_else(|| EngineError::Plan(format!("--table '{spec}' must be NAME=URI")))?;
        register(&ctx, name, text).await?;
    }
    let batches = ctx
        .sql(&args.query)
        .await
        .map_err(df_err)?
        .collect()
        .await
        .map_err(df_err)?;
    print(&batches, args.format)
}

async fn register(ctx: &SessionContext, name: &str, text: &str) -> Result<()> {
    let what = format!("--table {name}");
    let uri = Uri::parse(text, &what)?;
    let path = Path::new(&uri.location);
    let local = !matches!(uri.kind.as_str(), "log" | "postgres" | "postgresql");
    if local && !path.exists() {
        return Err(EngineError::Source(format!(
            "{what}: {} does not exist",
            path.display()
        )));
    }
    let extension = |default: &str| -> String {
        if path.is_file() {
            path.extension()
                .map(|e| format!(".{}", e.to_string_lossy()))
                .unwrap_or_default()
        } else {
            default.to_string()
        }
    };
    let df = match uri.kind.as_str() {
        "csv" => {
            let ext = extension(".csv");
            let header = uri.options.get("header").is_none_or(|h| h != "false");
            let options = CsvReadOptions::new()
                .has_header(header)
                .file_extension(&ext);
            ctx.read_csv(&uri.location, options).await.map_err(df_err)?
        }
        "json" => {
            let ext = extension(".json");
            let options = JsonReadOptions::default().file_extension(&ext);
            ctx.read_json(&uri.location, options)
                .await
                .map_err(df_err)?
        }
        "log" => {
            let table = log_table(path)?;
            ctx.read_table(Arc::new(table)).map_err(df_err)?
        }
        "postgres" | "postgresql" => {
            // The blocking client runs a runtime of its own, which cannot
            // start on this one's thread.
            let (flag, location, options) =
                (what.clone(), uri.location.clone(), uri.options.clone());
            let read =
                std::thread::spawn(move || crate::pg_table::read(&flag, &location, &options));
            let (schema, batch) = read.join().map_err(|_| {
                EngineError::Source(format!("{what}: reading the table panicked"))
            })??;
            let table = MemTable::try_new(schema, vec![vec![batch]]).map_err(df_err)?;
            ctx.read_table(Arc::new(table)).map_err(df_err)?
        }
        other => {
            return Err(EngineError::Plan(format!(
                "{what}: unknown table kind '{other}' (use csv:PATH, json:PATH, log:DIR/TOPIC \
                 or postgres://USER@HOST:PORT/DB?table=T)"
            )))
        }
    };
    // Lower-case the column names: DataFusion folds unquoted identifiers to
    // lower case, so this makes names case-insensitive, as in Spark.
    let columns: Vec<_> = df
        .schema()
        .fields()
        .iter()
        .map(|f| {
            col(format!("\"{}\"", f.name().replace('"', "\"\""))).alias(f.name().to_lowercase())
        })
        .collect();
    let df = df.select(columns).map_err(df_err)?;
    ctx.register_table(name, df.into_view()).map_err(df_err)?;
    Ok(())
}

/// A log topic as a table: key, value, topic, partition, offset, timestamp.
fn log_table(path: &Path) -> Result<MemTable> {
    use runnel_connectors::log::LogTopic;
    let io = |e: runnel_connectors::log::LogError| EngineError::Source(e.to_string());
    let topic = LogTopic::open(path).map_err(io)?;
    let (mut keys, mut values, mut parts, mut offsets, mut times) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for p in 0..topic.partitions() {
        let mut reader = topic.reader(p).map_err(io)?;
        loop {
            let n = reader
                .read_batch(4096, |r| {
                    keys.push(r.key.map(|k| String::from_utf8_lossy(k).into_owned()));
                    values.push(r.value.map(|v| String::from_utf8_lossy(v).into_owned()));
                    parts.push(p as i64);
                    offsets.push(r.offset as i64);
                    times.push(r.timestamp_ms);
                })
                .map_err(io)?;
            if n == 0 {
                break;
            }
        }
    }
    let n = keys.len();
    let schema = Arc::new(Schema::new(vec![
        Field::new("key", DataType::Utf8, true),
        Field::new("value", DataType::Utf8, true),
        Field::new("topic", DataType::Utf8, false),
        Field::new("partition", DataType::Int64, false),
        Field::new("offset", DataType::Int64, false),
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(keys)),
        Arc::new(StringArray::from(values)),
        Arc::new(StringArray::from(vec![topic.name().to_string(); n])),
        Arc::new(Int64Array::from(parts)),
        Arc::new(Int64Array::from(offsets)),
        Arc::new(TimestampMillisecondArray::from(times).with_timezone("UTC")),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns).map_err(df_err)?;
    MemTable::try_new(schema, vec![vec![batch]]).map_err(df_err)
}

fn print(batches: &[RecordBatch], format: Format) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match format {
        Format::Table => {
            let text =
                datafusion::arrow::util::pretty::pretty_format_batches(batches).map_err(df_err)?;
            writeln!(out, "{text}").map_err(df_err)?;
        }
        Format::Csv => {
            let mut w = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .with_timestamp_format("%Y-%m-%d %H:%M:%S".to_string())
                .with_timestamp_tz_format("%Y-%m-%d %H:%M:%S".to_string())
                .build(&mut out);
            for b in batches {
                w.write(b).map_err(df_err)?;
            }
        }
        Format::Json => {
            let mut w = datafusion::arrow::json::LineDelimitedWriter::new(&mut out);
            for b in batches {
                w.write(b).map_err(df_err)?;
            }
            w.finish().map_err(df_err)?;
        }
    }
    Ok(())
}
