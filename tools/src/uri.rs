//! Source, table and sink URIs of `runnel run`: `csv:DIR?header=true&schema=...`,
//! `rate:?rows_per_second=N`, `console`, `csv:PATH`, ...
//!
//! Owns parsing a URI into a kind, a location and its options, and turning
//! them into connector objects. It must not start queries.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use runnel::table::{
    StaticTable, TableLimits, TableRefresh, TableReloader, DEFAULT_MAX_BYTES, DEFAULT_MAX_ROWS,
};
use runnel::time::parse_duration_us;
use runnel::{EngineError, Result, Sink, Source};
use runnel_connectors::{
    ConsoleSink, FileFormat, FileSink, FileSource, FileSourceOptions, FileTableReloader, LogSink,
    LogSource, LogSourceOptions, LogTableReloader, NullSink, PostgresSink, PostgresSinkOptions,
    RateSource, SocketSource,
};
#[cfg(feature = "kafka")]
use runnel_connectors::{KafkaSink, KafkaSinkOptions, KafkaSource, KafkaSourceOptions};

/// A parsed URI: `kind:location?key=value&key=value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Uri {
    /// Before the first `:` (`csv`, `rate`, ...).
    pub kind: String,
    /// Between `:` and `?`.
    pub location: String,
    /// The options, in order of appearance (later ones win).
    pub options: BTreeMap<String, String>,
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Uri {
    /// Parses `text`; `what` names the flag in errors (`--source retail`).
    pub fn parse(text: &str, what: &str) -> Result<Uri> {
        let (kind, rest) = match text.split_once(':') {
            Some((k, r)) => (k, r),
            None => (text, ""),
        };
        if kind.is_empty() {
            return Err(EngineError::Plan(format!(
                "{what}: '{text}' has no kind (like csv:DIR)"
            )));
        }
        let (location, query) = match rest.split_once('?') {
            Some((l, q)) => (l, q),
            None => (rest, ""),
        };
        let mut options = BTreeMap::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                EngineError::Plan(format!(
                    "{what}: option '{pair}' in '{text}' is not key=value"
                ))
            })?;
            options.insert(k.trim().to_ascii_lowercase(), percent_decode(v));
        }
        Ok(Uri {
            kind: kind.to_ascii_lowercase(),
            location: percent_decode(location),
            options,
        })
    }
}

/// An error's text without the "invalid query" prefix of a plan error (the
/// caller adds its own).
#[cfg(feature = "kafka")]
fn plan_text(e: EngineError) -> String {
    match e {
        EngineError::Plan(m) => m,
        other => other.to_string(),
    }
}

/// A `kafka:` URI given to a binary built without the `kafka` feature.
#[cfg(not(feature = "kafka"))]
fn kafka_not_built(what: &str) -> EngineError {
    EngineError::Plan(format!(
        "{what}: {}",
        crate::not_built("Kafka support (kafka:HOST:PORT/TOPIC)", "kafka")
    ))
}

/// A source built from a URI, with the options the CLI itself handles.
pub struct SourceSpec {
    /// The connector.
    pub source: Box<dyn Source>,
    /// `watermark=COL:DELAY`.
    pub watermark: Option<(String, String)>,
}

fn take_watermark(uri: &mut Uri, what: &str) -> Result<Option<(String, String)>> {
    match uri.options.remove("watermark") {
        None => Ok(None),
        Some(w) => match w.split_once(':') {
            Some((c, d)) if !c.trim().is_empty() && !d.trim().is_empty() => {
                Ok(Some((c.trim().to_string(), d.trim().to_string())))
            }
            _ => Err(EngineError::Plan(format!(
                "{what}: watermark '{w}' must be COLUMN:DELAY, like watermark=InvoiceDate:1 hour"
            ))),
        },
    }
}

fn reject_unknown(uri: &Uri, what: &str, known: &[&str]) -> Result<()> {
    if let Some(k) = uri.options.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(EngineError::Plan(format!(
            "{what}: unknown option '{k}' for a {} source (known: {})",
            uri.kind,
            known.join(", ")
        )));
    }
    Ok(())
}

/// Loads a static table (`--table NAME=URI`): `csv:PATH` or `json:PATH`, a
/// file or a directory, with the file source's options, `parquet:PATH` (a
/// file or a directory), or `log:DIR/TOPIC`
/// read to its end; each with `max_rows`, `max_bytes` and `refresh` (an
/// interval: the data is looked at that often and the table reloaded when
/// it changed).
pub fn table(text: &str, name: &str) -> Result<StaticTable> {
    let what = format!("--table {name}");
    let mut uri = Uri::parse(text, &what)?;
    let format = match uri.kind.as_str() {
        "csv" => Some(FileFormat::Csv),
        "json" => Some(FileFormat::Json),
        "log" | "parquet" => None,
        other => {
            return Err(EngineError::Plan(format!(
                "{what}: unknown table kind '{other}' (use csv:PATH, json:PATH, parquet:PATH or \
                 log:DIR/TOPIC)"
            )))
        }
    };
    if uri.location.is_empty() {
        return Err(EngineError::Plan(format!(
            "{what}: {} needs {}",
            uri.kind,
            if uri.kind == "log" {
                "a topic folder"
            } else {
                "a file or a directory"
            }
        )));
    }
    let mut limit = |key: &str, default: usize| match uri.options.remove(key) {
        None => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| EngineError::Plan(format!("{what}: {key}={v} is not a whole number"))),
    };
    let limits = TableLimits {
        max_rows: limit("max_rows", DEFAULT_MAX_ROWS)?,
        max_bytes: limit("max_bytes", DEFAULT_MAX_BYTES)?,
    };
    let refresh = match uri.options.remove("refresh") {
        None => None,
        Some(v) => match parse_duration_us(&v) {
            Ok(us) if us > 0 => Some(Duration::from_micros(us as u64)),
            Ok(_) => {
                return Err(EngineError::Plan(format!(
                    "{what}: refresh={v} must be longer than zero"
                )))
            }
            Err(e) => return Err(EngineError::Plan(format!("{what}: refresh={v}: {e}"))),
        },
    };
    let path = Path::new(&uri.location);
    let reloader: Arc<dyn TableReloader> = match format {
        None => {
            reject_unknown(&uri, &what, &["max_rows", "max_bytes", "refresh"])?;
            if uri.kind == "log" {
                Arc::new(LogTableReloader::new(name, path, &limits))
            } else {
                Arc::new(FileTableReloader::parquet(name, path, &limits))
            }
        }
        Some(format) => {
            let options = FileSourceOptions::from_pairs(uri.options.clone())
                .map_err(|e| EngineError::Plan(format!("{what}: {e}")))?;
            Arc::new(FileTableReloader::new(
                name, path, format, &options, &limits,
            ))
        }
    };
    // The data's fingerprint before it is read: a change while it is read
    // is seen at the first look.
    let fingerprint = match refresh {
        Some(_) => reloader.fingerprint()?,
        None => 0,
    };
    let table = reloader.load()?;
    Ok(match refresh {
        Some(interval) => table.with_refresh(TableRefresh::new(interval, reloader, fingerprint)),
        None => table,
    })
}

/// Builds a source. `until_idle` makes bounded sources end once read.
pub fn source(text: &str, name: &str, until_idle: bool) -> Result<SourceSpec> {
    let what = format!("--source {name}");
    let mut uri = Uri::parse(text, &what)?;
    let watermark = take_watermark(&mut uri, &what)?;
    let source: Box<dyn Source> = match uri.kind.as_str() {
        "csv" | "json" => {
            if uri.location.is_empty() {
                return Err(EngineError::Plan(format!(
                    "{what}: {} needs a directory",
                    uri.kind
                )));
            }
            let mut pairs: Vec<(String, String)> = uri.options.clone().into_iter().collect();
            if until_idle && !uri.options.contains_key("until_idle") {
                pairs.push(("until_idle".into(), "true".into()));
            }
            let options = FileSourceOptions::from_pairs(pairs)
                .map_err(|e| EngineError::Plan(format!("{what}: {e}")))?;
            let dir = PathBuf::from(&uri.location);
            let built = if uri.kind == "csv" {
                FileSource::csv(dir, options)
            } else {
                FileSource::json(dir, options)
            };
            Box::new(built.map_err(|e| EngineError::Source(format!("{what}: {e}")))?)
        }
        "rate" => {
            reject_unknown(
                &uri,
                &what,
                &["rows_per_second", "total_rows", "start_time_us"],
            )?;
            let num = |k: &str| -> Result<Option<u64>> {
                uri.options
                    .get(k)
                    .map(|v| {
                        v.parse::<u64>().map_err(|_| {
                            EngineError::Plan(format!("{what}: {k}={v} is not a whole number"))
                        })
                    })
                    .transpose()
            };
            let mut rate = RateSource::new(num("rows_per_second")?.unwrap_or(1));
            if let Some(n) = num("total_rows")? {
                rate = rate.with_limit(n);
            } else if until_idle {
                return Err(EngineError::Plan(format!(
                    "{what}: a rate source never ends; give it total_rows=N to use --until-idle"
                )));
            }
            if let Some(t) = num("start_time_us")? {
                rate = rate.with_start_time(t as i64);
            }
            Box::new(rate)
        }
        "socket" => {
            let socket = SocketSource::new(&uri.location)
                .and_then(|s| s.with_options(uri.options.clone()))
                .map_err(|e| EngineError::Source(format!("{what}: {e}")))?;
            Box::new(socket)
        }
        "log" => {
            if uri.location.is_empty() {
                return Err(EngineError::Plan(format!("{what}: log needs DIR/TOPIC")));
            }
            let mut pairs: Vec<(String, String)> = uri.options.clone().into_iter().collect();
            if until_idle && !uri.options.contains_key("until_idle") {
                pairs.push(("until_idle".into(), "true".into()));
            }
            let options = LogSourceOptions::from_pairs(pairs)
                .map_err(|e| EngineError::Plan(format!("{what}: {e}")))?;
            Box::new(
                LogSource::new(&uri.location, options)
                    .map_err(|e| EngineError::Source(format!("{what}: {e}")))?,
            )
        }
        #[cfg(not(feature = "kafka"))]
        "kafka" => return Err(kafka_not_built(&what)),
        #[cfg(feature = "kafka")]
        "kafka" => {
            let mut pairs: Vec<(String, String)> = uri.options.clone().into_iter().collect();
            if until_idle && !uri.options.contains_key("until_idle") {
                pairs.push(("until_idle".into(), "true".into()));
            }
            let options = KafkaSourceOptions::from_pairs(pairs)
                .map_err(|e| EngineError::Plan(format!("{what}: {}", plan_text(e))))?;
            Box::new(
                KafkaSource::new(&uri.location, options)
                    .map_err(|e| EngineError::Plan(format!("{what}: {}", plan_text(e))))?,
            )
        }
        other => {
            return Err(EngineError::Plan(format!(
                "{what}: unknown source kind '{other}' (use csv:, json:, rate:, socket:, log: or kafka:)"
            )))
        }
    };
    Ok(SourceSpec { source, watermark })
}

/// What `runnel run` does with a memory sink's table at the end.
pub enum SinkSpec {
    /// A connector.
    Sink(Box<dyn Sink>),
    /// An in-memory table printed when the query ends.
    Memory(runnel::MemorySink, runnel::MemoryTable),
}

/// Builds a sink.
pub fn sink(text: &str) -> Result<SinkSpec> {
    let uri = Uri::parse(text, "--sink")?;
    let needs_path = |kind: &str| -> Result<PathBuf> {
        if uri.location.is_empty() {
            Err(EngineError::Plan(format!(
                "--sink: {kind} needs a file path, like {kind}:out/result.{kind}"
            )))
        } else {
            Ok(PathBuf::from(&uri.location))
        }
    };
    Ok(match uri.kind.as_str() {
        "csv" => SinkSpec::Sink(Box::new(FileSink::csv(needs_path("csv")?))),
        "json" => SinkSpec::Sink(Box::new(FileSink::json(needs_path("json")?))),
        "console" => SinkSpec::Sink(Box::new(
            ConsoleSink::new()
                .with_options(uri.options.clone())
                .map_err(|e| EngineError::Plan(format!("--sink: {e}")))?,
        )),
        "null" => SinkSpec::Sink(Box::new(NullSink::new())),
        "log" => {
            if uri.location.is_empty() {
                return Err(EngineError::Plan("--sink: log needs DIR/TOPIC".into()));
            }
            let partitions = match uri.options.get("partitions") {
                None => 1,
                Some(p) => p.parse::<u32>().map_err(|_| {
                    EngineError::Plan(format!("--sink: partitions={p} is not a whole number"))
                })?,
            };
            let mut sink = LogSink::new(&uri.location, partitions);
            for (key, value) in &uri.options {
                match key.as_str() {
                    "partitions" => {}
                    "max_dedup_records" => {
                        sink = sink.max_dedup_records(value.parse::<u64>().map_err(|_| {
                            EngineError::Plan(format!(
                                "--sink: max_dedup_records={value} is not a whole number"
                            ))
                        })?)
                    }
                    "allow_duplicates_past_dedup_window" => match value.as_str() {
                        "true" => sink = sink.allow_duplicates_past_dedup_window(),
                        "false" => {}
                        _ => {
                            return Err(EngineError::Plan(format!(
                                "--sink: allow_duplicates_past_dedup_window={value}: use true or false"
                            )))
                        }
                    },
                    other => {
                        return Err(EngineError::Plan(format!(
                            "--sink: unknown option {other} for a log sink (partitions, max_dedup_records, allow_duplicates_past_dedup_window)"
                        )))
                    }
                }
            }
            SinkSpec::Sink(Box::new(sink))
        }
        #[cfg(not(feature = "kafka"))]
        "kafka" => return Err(kafka_not_built("--sink")),
        #[cfg(feature = "kafka")]
        "kafka" => {
            let options = KafkaSinkOptions::from_pairs(uri.options.clone())
                .map_err(|e| EngineError::Plan(format!("--sink: {}", plan_text(e))))?;
            SinkSpec::Sink(Box::new(
                KafkaSink::new(&uri.location, options)
                    .map_err(|e| EngineError::Plan(format!("--sink: {}", plan_text(e))))?,
            ))
        }
        "postgres" | "postgresql" => SinkSpec::Sink(Box::new(PostgresSink::new(
            PostgresSinkOptions::parse(&uri.location, &uri.options)
                .map_err(|e| EngineError::Plan(format!("--sink: {}", e.to_string().trim_start_matches("invalid query: "))))?,
        ))),
        "memory" => {
            let name = if uri.location.is_empty() { "result" } else { &uri.location };
            let (s, t) = runnel::MemorySink::new(name);
            SinkSpec::Memory(s, t)
        }
        other => {
            return Err(EngineError::Plan(format!(
                "--sink: unknown sink kind '{other}' (use csv:PATH, json:PATH, console, memory:NAME, log:DIR/TOPIC, kafka:HOST:PORT/TOPIC, postgres://USER@HOST:PORT/DB?table=T or null)"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_split_into_kind_location_and_options() {
        let u = Uri::parse(
            "csv:data/retail?header=true&schema=a double, b string&watermark=ts:1%20hour",
            "x",
        )
        .unwrap();
        assert_eq!(u.kind, "csv");
        assert_eq!(u.location, "data/retail");
        assert_eq!(u.options["schema"], "a double, b string");
        assert_eq!(u.options["watermark"], "ts:1 hour");
        let u = Uri::parse("rate:?rows_per_second=10", "x").unwrap();
        assert_eq!((u.kind.as_str(), u.location.as_str()), ("rate", ""));
        let u = Uri::parse("console", "x").unwrap();
        assert_eq!(u.kind, "console");
        let u = Uri::parse("kafka:127.0.0.1:9092/in?starting_offsets=earliest", "x").unwrap();
        assert_eq!(
            (u.kind.as_str(), u.location.as_str()),
            ("kafka", "127.0.0.1:9092/in")
        );
        assert!(Uri::parse("csv:d?header", "--source t")
            .unwrap_err()
            .to_string()
            .contains("not key=value"));
    }

    #[cfg(feature = "kafka")]
    #[test]
    fn kafka_uris_build_connectors() {
        assert!(source(
            "kafka:127.0.0.1:9092/in?group=g&kafka.fetch.wait.max.ms=1",
            "t",
            true
        )
        .is_ok());
        assert!(source("kafka:127.0.0.1:9092", "t", false).is_err());
        assert!(source("kafka:127.0.0.1:9092/in?bogus=1", "t", false).is_err());
        assert!(sink("kafka:127.0.0.1:9092/out?kafka.linger.ms=1").is_ok());
        assert!(sink("kafka:127.0.0.1:9092/out?partitions=2").is_err());
    }

    #[cfg(not(feature = "kafka"))]
    #[test]
    fn kafka_uris_name_the_missing_feature() {
        let Err(e) = source("kafka:127.0.0.1:9092/in", "t", false) else {
            panic!("a kafka source without the kafka feature")
        };
        let text = e.to_string();
        assert!(text.contains("--source t"), "{text}");
        assert!(text.contains("without the `kafka` feature"), "{text}");
        assert!(text.contains("--features kafka"), "{text}");
        let Err(e) = sink("kafka:127.0.0.1:9092/out") else {
            panic!("a kafka sink without the kafka feature")
        };
        assert!(e.to_string().contains("--features kafka"), "{e}");
    }
}
