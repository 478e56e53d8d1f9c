//! Options of the file source: the [`FileSourceOptions`] struct, its
//! defaults, and parsing from `key = value` string pairs (as a SQL `OPTIONS`
//! clause or a command line gives them).
//!
//! This module only turns text into settings and rejects what is malformed;
//! it must not touch the file system (the directory is checked by
//! [`super::FileSource::new`]).

use std::path::PathBuf;

use runnel::{EngineError, Result, SchemaRef};

use crate::options::{normalise_key, OptionParser};

const OPTIONS: OptionParser = OptionParser::new("file source");

/// What happens to a file once everything read from it is durable (its epoch
/// or batch is committed). A file that was not read to its end is never
/// touched.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CleanSource {
    /// Files are left where they are (the default).
    #[default]
    Off,
    /// Files are deleted.
    Delete,
    /// Files are moved into this directory (created when missing); a name
    /// already taken there gets a `.1`, `.2`, … suffix.
    Archive(PathBuf),
}

/// What happens to a record that cannot be read: a CSV record with the wrong
/// number of fields, a value that does not parse as its column's type, a
/// record longer than [`FileSourceOptions::max_record_bytes`], a line that is
/// not a JSON object. Good records around a bad one are never lost.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum BadRecordPolicy {
    /// Skip it, count it (metric `badRecords`) and log a warning once per
    /// file (the default).
    #[default]
    Skip,
    /// Skip and count it, and append it to this file as one JSON object per
    /// line: `{"source", "file", "line", "reason", "raw"}` (`raw` cut to
    /// 1024 bytes).
    DeadLetter(PathBuf),
    /// Stop the query with an error `FILE:LINE: reason`.
    Fail,
}

/// Settings of a [`super::FileSource`]. Build one with
/// [`FileSourceOptions::default`] and struct update syntax, or from string
/// pairs with [`FileSourceOptions::from_pairs`].
#[derive(Clone, Debug)]
pub struct FileSourceOptions {
    /// CSV: the first record of every file is a header (default `false`).
    /// Without a schema, the header names the columns; with one, it is
    /// skipped.
    pub header: bool,
    /// CSV: the field delimiter (default `,`).
    pub delimiter: u8,
    /// CSV: the quote character (default `"`); a quoted field may hold the
    /// delimiter, line breaks and doubled quotes.
    pub quote: u8,
    /// The schema. Required for JSON; for CSV it is inferred when absent.
    pub schema: Option<SchemaRef>,
    /// CSV without a schema: records of the first file used to infer the
    /// column types (default 1000).
    pub infer_rows: usize,
    /// Micro-batch: at most this many files per batch (at least one file is
    /// always taken).
    pub max_files_per_trigger: Option<usize>,
    /// Micro-batch: at most about this many bytes of files per batch (at
    /// least one file is always taken, whatever its size).
    pub max_bytes_per_trigger: Option<u64>,
    /// Read the newest files (by modification time) first instead of in
    /// name order (default `false`).
    pub latest_first: bool,
    /// What to do with files once they are read and durable.
    pub clean_source: CleanSource,
    /// CSV: a field with this text is null (an empty field always is).
    /// Default: empty (only empty fields are null).
    pub null_value: String,
    /// A Spark datetime pattern (`dd/MM/yyyy HH:mm`) for timestamp columns,
    /// tried before the default forms (`yyyy-MM-dd HH:mm:ss[.f]`, ISO 8601).
    pub timestamp_format: Option<String>,
    /// What happens to bad records.
    pub bad_records: BadRecordPolicy,
    /// Records longer than this (in bytes, without the line break) are bad
    /// records (default 1 MiB). Memory per record stays within this bound.
    pub max_record_bytes: usize,
    /// The stream ends once every file present has been read and a new
    /// look at the directory found nothing new (default `false`: wait for
    /// new files forever).
    pub until_idle: bool,
}

impl Default for FileSourceOptions {
    fn default() -> Self {
        FileSourceOptions {
            header: false,
            delimiter: b',',
            quote: b'"',
            schema: None,
            infer_rows: 1000,
            max_files_per_trigger: None,
            max_bytes_per_trigger: None,
            latest_first: false,
            clean_source: CleanSource::Off,
            null_value: String::new(),
            timestamp_format: None,
            bad_records: BadRecordPolicy::Skip,
            max_record_bytes: 1 << 20,
            until_idle: false,
        }
    }
}

/// The option keys [`FileSourceOptions::from_pairs`] accepts, with the form
/// of their values. Keys are matched ignoring case, `_` and `-`, so Spark's
/// spellings (`maxFilesPerTrigger`, `nullValue`) work too.
pub const OPTION_KEYS: &[(&str, &str)] = &[
    ("header", "true|false"),
    ("delimiter", "one character, or \\t (alias: sep)"),
    ("quote", "one character"),
    ("schema", "DDL, e.g. `id bigint, name string, ts timestamp`"),
    ("infer_rows", "a count"),
    ("max_files_per_trigger", "a count"),
    ("max_bytes_per_trigger", "a size: 1048576, 64k, 10m, 1g"),
    ("latest_first", "true|false"),
    ("clean_source", "off|delete|archive:DIR"),
    ("null_value", "text"),
    ("timestamp_format", "a Spark datetime pattern"),
    ("bad_records", "skip|fail|dead-letter:PATH"),
    ("max_record_bytes", "a size"),
    ("until_idle", "true|false"),
];

/// Parses a size: a byte count with an optional binary suffix
/// (`k`/`kb`/`kib`, `m`…, `g`…).
fn parse_size(key: &str, v: &str) -> Result<u64> {
    let t = v.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: u64 = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(OPTIONS.err(key, v, "a size such as 1048576, 64k, 10m or 1g")),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|n| *n > 0)
        .ok_or_else(|| OPTIONS.err(key, v, "a positive size such as 1048576, 64k, 10m or 1g"))
}

fn parse_char(key: &str, v: &str) -> Result<u8> {
    let b = match v {
        "\\t" | "tab" | "\t" => b'\t',
        _ if v.len() == 1 && v.is_ascii() => v.as_bytes()[0],
        _ => return Err(OPTIONS.err(key, v, "a single ASCII character (or \\t)")),
    };
    if b == b'\n' || b == b'\r' {
        return Err(OPTIONS.err(key, v, "a character other than a line break"));
    }
    Ok(b)
}

/// Splits `word:rest` (also `word=rest`), lower-casing the word.
fn split_tagged(v: &str) -> (String, Option<&str>) {
    match v.find([':', '=']) {
        Some(i) => (v[..i].trim().to_ascii_lowercase(), Some(v[i + 1..].trim())),
        None => (v.trim().to_ascii_lowercase(), None),
    }
}

impl FileSourceOptions {
    /// Options from `(key, value)` pairs over the defaults; see
    /// [`OPTION_KEYS`]. An unknown key is an error that names it and lists
    /// the valid ones; a malformed value is an error naming key and value.
    pub fn from_pairs<I, K, V>(pairs: I) -> Result<FileSourceOptions>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut o = FileSourceOptions::default();
        for (key, value) in pairs {
            let (key, v) = (key.as_ref(), value.as_ref());
            match normalise_key(key).as_str() {
                "header" => o.header = OPTIONS.bool(key, v)?,
                "delimiter" | "sep" | "separator" => o.delimiter = parse_char(key, v)?,
                "quote" => o.quote = parse_char(key, v)?,
                "schema" => {
                    o.schema =
                        Some(runnel::schema::parse_ddl(v).map_err(|e| {
                            EngineError::Plan(format!("file source option {key}: {e}"))
                        })?)
                }
                "inferrows" | "samplingrows" => o.infer_rows = OPTIONS.count(key, v)?,
                "maxfilespertrigger" => o.max_files_per_trigger = Some(OPTIONS.count(key, v)?),
                "maxbytespertrigger" => o.max_bytes_per_trigger = Some(parse_size(key, v)?),
                "latestfirst" => o.latest_first = OPTIONS.bool(key, v)?,
                "cleansource" => {
                    o.clean_source = match split_tagged(v) {
                        (w, None) if w == "off" || w == "none" => CleanSource::Off,
                        (w, None) if w == "delete" => CleanSource::Delete,
                        (w, Some(dir)) if w == "archive" && !dir.is_empty() => {
                            CleanSource::Archive(PathBuf::from(dir))
                        }
                        _ => return Err(OPTIONS.err(key, v, "off, delete or archive:DIR")),
                    }
                }
                "nullvalue" => o.null_value = v.to_string(),
                "timestampformat" => {
                    runnel::time::spark_pattern_to_chrono(v)
                        .map_err(|e| OPTIONS.err(key, v, &format!("a datetime pattern ({e})")))?;
                    o.timestamp_format = Some(v.to_string());
                }
                "badrecords" | "mode" => {
                    o.bad_records = match split_tagged(v) {
                        (w, None) if w == "skip" || w == "dropmalformed" => BadRecordPolicy::Skip,
                        (w, None) if w == "fail" || w == "failfast" => BadRecordPolicy::Fail,
                        (w, Some(path))
                            if matches!(
                                w.as_str(),
                                "dead-letter" | "deadletter" | "dead_letter"
                            ) && !path.is_empty() =>
                        {
                            BadRecordPolicy::DeadLetter(PathBuf::from(path))
                        }
                        _ => return Err(OPTIONS.err(key, v, "skip, fail or dead-letter:PATH")),
                    }
                }
                "maxrecordbytes" => {
                    o.max_record_bytes = usize::try_from(parse_size(key, v)?)
                        .map_err(|_| OPTIONS.err(key, v, "a smaller size"))?
                }
                "untilidle" => o.until_idle = OPTIONS.bool(key, v)?,
                _ => {
                    let valid: Vec<&str> = OPTION_KEYS.iter().map(|(k, _)| *k).collect();
                    return Err(EngineError::Plan(format!(
                        "unknown file source option '{key}'; valid options: {}",
                        valid.join(", ")
                    )));
                }
            }
        }
        if o.delimiter == o.quote {
            return Err(EngineError::Plan(format!(
                "file source options: delimiter and quote are both '{}'",
                o.delimiter as char
            )));
        }
        Ok(o)
    }
}
