//! The console sink: each epoch's or batch's result printed as a table, the
//! way Spark's console sink prints it.
//!
//! ```text
//! -------------------------------------------
//! Batch: 3
//! -------------------------------------------
//! +-------------------+-----+
//! |       window_start|count|
//! +-------------------+-----+
//! |2011-01-01 00:00:00|   12|
//! +-------------------+-----+
//!
//! ```
//!
//! Rows are buffered in the sink and printed when their epoch or batch
//! commits (`Batch: N` is the epoch or batch id); an epoch without rows
//! prints nothing. What is printed follows the output mode:
//!
//! * append: the epoch's rows;
//! * update: the epoch's changed rows, one per key (the last change wins);
//! * complete: the whole result table, kept here by key (the query's key
//!   columns), whenever it changed.
//!
//! The table is Spark's `Dataset.show()` text: at most
//! [`ConsoleSink::with_num_rows`] rows (default 20, then `only showing top 20
//! rows`), values in their text form (`null`, timestamps
//! `yyyy-MM-dd HH:mm:ss`), line breaks and tabs in values escaped as `\n`,
//! `\t`, cells longer than 20 characters cut to 17 plus `...`, columns at
//! least 3 wide, East Asian wide characters counted twice. As in Spark,
//! every cell and header is **right-aligned** while cells are truncated (the
//! default), and left-aligned with [`ConsoleSink::with_truncate`]`(false)`;
//! Spark aligns by this flag, not by type. An empty line follows each
//! table.
//!
//! This module owns only the text form and the per-epoch buffering; it
//! must not decide epochs.

use std::collections::HashMap;
use std::io::Write;

use arrow::record_batch::RecordBatch;
use runnel::io::upsert_by_key;
use runnel::schema::column::Column;
use runnel::{EngineError, OutputMode, Result, Row, Sink, SinkContext, Value};

use crate::options::{normalise_key, OptionParser};

const OPTIONS: OptionParser = OptionParser::new("console sink");

/// The batch header's rule.
const RULE: &str = "-------------------------------------------";

/// Prints each epoch's or batch's rows as a table (see the module docs).
pub struct ConsoleSink {
    out: Box<dyn Write + Send>,
    num_rows: usize,
    truncate: bool,
    names: Vec<String>,
    mode: Mode,
    pending: Vec<Row>,
}

enum Mode {
    /// Print the epoch's rows as they came.
    Rows,
    /// Print the epoch's rows, one per key.
    Update(Vec<usize>),
    /// Keep the result table by key; print it whole.
    Complete {
        keys: Vec<usize>,
        rows: Vec<Row>,
        index: HashMap<Vec<Value>, usize>,
    },
}

/// The option keys [`ConsoleSink::with_options`] accepts (Spark's spellings
/// `numRows` work too).
pub const CONSOLE_OPTION_KEYS: &[(&str, &str)] =
    &[("num_rows", "a count"), ("truncate", "true|false")];

impl Default for ConsoleSink {
    fn default() -> Self {
        ConsoleSink::new()
    }
}

impl ConsoleSink {
    /// A sink printing to standard output.
    pub fn new() -> ConsoleSink {
        ConsoleSink::with_writer(Box::new(std::io::stdout()))
    }

    /// A sink printing to `out` (tests, logs).
    pub fn with_writer(out: Box<dyn Write + Send>) -> ConsoleSink {
        ConsoleSink {
            out,
            num_rows: 20,
            truncate: true,
            names: Vec::new(),
            mode: Mode::Rows,
            pending: Vec::new(),
        }
    }

    /// Prints at most `n` rows per table (default 20).
    pub fn with_num_rows(mut self, n: usize) -> ConsoleSink {
        self.num_rows = n;
        self
    }

    /// Whether cells longer than 20 characters are cut (default `true`).
    pub fn with_truncate(mut self, truncate: bool) -> ConsoleSink {
        self.truncate = truncate;
        self
    }

    /// Applies `(key, value)` options (see [`CONSOLE_OPTION_KEYS`]).
    pub fn with_options<I, K, V>(mut self, pairs: I) -> Result<ConsoleSink>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        for (key, value) in pairs {
            let (key, v) = (key.as_ref(), value.as_ref());
            match normalise_key(key).as_str() {
                "numrows" => self.num_rows = OPTIONS.count(key, v)?,
                "truncate" => self.truncate = OPTIONS.bool(key, v)?,
                _ => return Err(OPTIONS.unknown(key, &["num_rows", "truncate"])),
            }
        }
        Ok(self)
    }

    /// The rows to print for this commit, if any.
    /// Whether another written row is needed: in append mode only the
    /// rows shown and one more (which says there are more) are kept.
    #[inline]
    fn keeps_another(&self) -> bool {
        !matches!(self.mode, Mode::Rows) || self.pending.len() <= self.num_rows
    }

    fn rows_to_print(&mut self) -> Option<Vec<Row>> {
        if self.pending.is_empty() {
            return None;
        }
        let pending = std::mem::take(&mut self.pending);
        match &mut self.mode {
            Mode::Rows => Some(pending),
            Mode::Update(keys) => {
                let mut rows: Vec<Row> = Vec::with_capacity(pending.len());
                let mut index: HashMap<Vec<Value>, usize> = HashMap::new();
                for row in pending {
                    upsert_by_key(keys, &mut rows, &mut index, row);
                }
                Some(rows)
            }
            Mode::Complete { keys, rows, index } => {
                for row in pending {
                    upsert_by_key(keys, rows, index, row);
                }
                Some(rows.clone())
            }
        }
    }
}

/// Spark's escaping of meta characters in `show()`.
fn escape_meta(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{c}' => out.push_str("\\f"),
            '\u{8}' => out.push_str("\\b"),
            '\u{b}' => out.push_str("\\v"),
            '\u{7}' => out.push_str("\\a"),
            c => out.push(c),
        }
    }
    out
}

/// Whether Spark counts `c` as two columns wide.
fn is_full_width(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x115F
        | 0x2E80..=0xA4CF
        | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF
        | 0xFE10..=0xFE19
        | 0xFE30..=0xFE6F
        | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6)
}

/// Display width: characters, wide ones counted twice.
fn width(s: &str) -> usize {
    s.chars()
        .map(|c| if is_full_width(c) { 2 } else { 1 })
        .sum()
}

/// The text of one cell, as Spark's `show()` writes it.
fn cell_text(v: &Value, truncate: usize) -> String {
    let text = escape_meta(&v.to_string());
    let len = text.chars().count();
    if truncate > 0 && len > truncate {
        if truncate < 4 {
            text.chars().take(truncate).collect()
        } else {
            let mut t: String = text.chars().take(truncate - 3).collect();
            t.push_str("...");
            t
        }
    } else {
        text
    }
}

/// Spark's `Dataset.showString(num_rows, truncate)` (horizontal form).
pub fn show_string(names: &[String], rows: &[Row], num_rows: usize, truncate: bool) -> String {
    let cut = if truncate { 20 } else { 0 };
    let mut table: Vec<Vec<String>> = Vec::with_capacity(rows.len().min(num_rows) + 1);
    table.push(names.iter().map(|n| escape_meta(n)).collect());
    for row in rows.iter().take(num_rows) {
        table.push(row.iter().map(|v| cell_text(v, cut)).collect());
    }
    let mut widths = vec![3usize; names.len()];
    for line in &table {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(width(cell));
        }
    }
    let mut sep = String::from("+");
    for w in &widths {
        sep.push_str(&"-".repeat(*w));
        sep.push('+');
    }
    sep.push('\n');
    let mut out = String::new();
    out.push_str(&sep);
    for (i, line) in table.iter().enumerate() {
        out.push('|');
        for (cell, w) in line.iter().zip(&widths) {
            let pad = " ".repeat(w - width(cell));
            if truncate {
                out.push_str(&pad);
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.push_str(&pad);
            }
            out.push('|');
        }
        out.push('\n');
        if i == 0 {
            out.push_str(&sep);
        }
    }
    out.push_str(&sep);
    if rows.len() > num_rows {
        let word = if num_rows == 1 { "row" } else { "rows" };
        out.push_str(&format!("only showing top {num_rows} {word}\n"));
    }
    out
}

impl Sink for ConsoleSink {
    fn describe(&self) -> String {
        "ConsoleSink".to_string()
    }

    fn open(&mut self, ctx: &SinkContext, _recovered: Option<&serde_json::Value>) -> Result<()> {
        self.names = ctx
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        self.pending.clear();
        self.mode = match (ctx.output_mode, &ctx.key_columns) {
            (OutputMode::Append, _) | (_, None) => Mode::Rows,
            (OutputMode::Update, Some(keys)) => Mode::Update(keys.clone()),
            (OutputMode::Complete, Some(keys)) => Mode::Complete {
                keys: keys.clone(),
                rows: Vec::new(),
                index: HashMap::new(),
            },
        };
        Ok(())
    }

    #[inline]
    fn write(&mut self, row: &Row) -> Result<()> {
        if self.keeps_another() {
            self.pending.push(row.clone());
        }
        Ok(())
    }

    fn write_batch(&mut self, batch: &RecordBatch) -> Result<()> {
        let cols = Column::all(batch)?;
        for i in 0..batch.num_rows() {
            if !self.keeps_another() {
                break;
            }
            self.pending.push(cols.iter().map(|c| c.value(i)).collect());
        }
        Ok(())
    }

    fn commit(&mut self, epoch: u64) -> Result<serde_json::Value> {
        if let Some(rows) = self.rows_to_print() {
            let text = format!(
                "{RULE}\nBatch: {epoch}\n{RULE}\n{}\n",
                show_string(&self.names, &rows, self.num_rows, self.truncate)
            );
            self.out
                .write_all(text.as_bytes())
                .and_then(|()| self.out.flush())
                .map_err(|e| EngineError::Sink(format!("console sink: {e}")))?;
        }
        Ok(serde_json::Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel::row;

    #[test]
    fn shows_like_spark() {
        let names = vec!["age".to_string(), "name".to_string()];
        let rows = vec![
            row![Value::Null, "Michael"],
            row![30i64, "Andy"],
            row![19i64, "Justin"],
        ];
        assert_eq!(
            show_string(&names, &rows, 20, true),
            "+----+-------+\n\
             | age|   name|\n\
             +----+-------+\n\
             |null|Michael|\n\
             |  30|   Andy|\n\
             |  19| Justin|\n\
             +----+-------+\n"
        );
        assert_eq!(
            show_string(&names, &rows, 2, false),
            "+----+-------+\n\
             |age |name   |\n\
             +----+-------+\n\
             |null|Michael|\n\
             |30  |Andy   |\n\
             +----+-------+\n\
             only showing top 2 rows\n"
        );
    }

    #[test]
    fn cuts_escapes_and_counts_wide_characters() {
        assert_eq!(
            cell_text(&Value::str("abcdefghijklmnopqrstuvwxyz"), 20),
            "abcdefghijklmnopq..."
        );
        assert_eq!(cell_text(&Value::str("a\tb\nc"), 20), "a\\tb\\nc");
        assert_eq!(cell_text(&Value::str("abcdef"), 3), "abc");
        assert_eq!(width("日本"), 4);
        let t = show_string(&["x".into()], &[row!["日本"]], 20, true);
        assert_eq!(t, "+----+\n|   x|\n+----+\n|日本|\n+----+\n");
    }
}
