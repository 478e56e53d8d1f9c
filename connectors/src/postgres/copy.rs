//! PostgreSQL's binary `COPY` format and the SQL names of runnel's types.

use runnel::schema::{type_name, DataType, TimeUnit, Value};

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 UTC).
const PG_EPOCH_US: i64 = 946_684_800_000_000;
/// Days from the Unix epoch to PostgreSQL's.
const PG_EPOCH_DAYS: i32 = 10_957;

/// The column type the sink creates for a runnel type, and the types an
/// existing column may have to take its binary encoding; `None` for a type
/// the sink cannot write.
pub(super) fn sql_type(dt: &DataType) -> Option<(&'static str, &'static [&'static str])> {
    Some(match dt {
        DataType::Int64 => ("bigint", &["bigint"]),
        DataType::Float64 => ("double precision", &["double precision"]),
        DataType::Utf8 => ("text", &["text", "character varying"]),
        DataType::Boolean => ("boolean", &["boolean"]),
        DataType::Timestamp(TimeUnit::Microsecond, _) => (
            "timestamp with time zone",
            &["timestamp with time zone", "timestamp without time zone"],
        ),
        DataType::Date32 => ("date", &["date"]),
        _ => return None,
    })
}

/// Why a column of type `dt` cannot be written.
pub(super) fn unsupported(column: &str, dt: &DataType) -> String {
    format!(
        "column {column} is {}, which the postgres sink does not write \
         (bigint, double, string, boolean, timestamp and date are written)",
        type_name(dt)
    )
}

/// `name` as a quoted SQL identifier; `schema.table` keeps its dot.
pub(super) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `text` as an SQL string literal. A text holding a backslash is written
/// as an escape string (`E'…'`), which reads the same whatever the
/// server's `standard_conforming_strings`.
pub(super) fn literal(text: &str) -> String {
    let quoted = text.replace('\'', "''");
    if text.contains('\\') {
        format!("E'{}'", quoted.replace('\\', "\\\\"))
    } else {
        format!("'{quoted}'")
    }
}

/// A table name, `schema.table` or `table`, quoted part by part.
pub(super) fn table_ident(name: &str) -> String {
    match name.split_once('.') {
        Some((schema, table)) => format!("{}.{}", ident(schema), ident(table)),
        None => ident(name),
    }
}

/// The binary `COPY` header's length: signature, flags, extension length.
const HEADER: usize = 11 + 4 + 4;
/// The binary `COPY` trailer: a tuple of -1 fields.
pub(super) const TRAILER: [u8; 2] = (-1i16).to_be_bytes();

/// Rows encoded for `COPY … FROM STDIN (FORMAT binary)`: the header is
/// written on the first row, the trailer by [`CopyBuffer::finish`].
#[derive(Default)]
pub(super) struct CopyBuffer {
    bytes: Vec<u8>,
    /// Where each tuple starts in `bytes` (kept only when rows must be
    /// retried one by one: see [`CopyBuffer::keep_row_starts`]).
    starts: Option<Vec<usize>>,
    rows: u64,
    /// The trailer is written.
    finished: bool,
}

impl CopyBuffer {
    /// Number of rows encoded.
    pub(super) fn rows(&self) -> u64 {
        self.rows
    }

    /// Remembers where each row starts, so that [`CopyBuffer::single`] can
    /// hand one row over on its own.
    pub(super) fn keep_row_starts(&mut self) {
        self.starts = Some(Vec::new());
    }

    /// A complete `COPY` stream of row `i` alone.
    pub(super) fn single(&self, i: usize) -> Vec<u8> {
        let starts = self.starts.as_ref().expect("row starts are kept");
        let end = starts.get(i + 1).copied().unwrap_or(if self.finished {
            self.bytes.len() - 2
        } else {
            self.bytes.len()
        });
        let mut out = Vec::with_capacity(HEADER + end - starts[i] + 2);
        out.extend_from_slice(&self.bytes[..HEADER]);
        out.extend_from_slice(&self.bytes[starts[i]..end]);
        out.extend_from_slice(&(-1i16).to_be_bytes());
        out
    }

    /// The stream's header and its tuples after the first `skip` bytes of
    /// them (no trailer): with [`TRAILER`], a stream of the rows pushed
    /// since then. Empty when there is no row.
    pub(super) fn tuples_after(&self, skip: usize) -> (&[u8], &[u8]) {
        if self.rows == 0 {
            return (&[], &[]);
        }
        let end = self.bytes.len() - if self.finished { TRAILER.len() } else { 0 };
        (
            &self.bytes[..HEADER],
            &self.bytes[(HEADER + skip).min(end)..end],
        )
    }

    /// Forgets the rows (the allocation is kept for the next epoch).
    pub(super) fn clear(&mut self) {
        if let Some(s) = self.starts.as_mut() {
            s.clear();
        }
        self.bytes.clear();
        self.rows = 0;
        self.finished = false;
    }

    /// Appends one tuple of `fields` (plus `seq` as a last bigint when
    /// given). Values must have been checked against the column types.
    pub(super) fn push(&mut self, fields: &[Value], seq: Option<i64>) {
        if self.finished {
            // Rows after a finish: take the trailer back off.
            self.bytes.truncate(self.bytes.len() - TRAILER.len());
            self.finished = false;
        }
        if self.rows == 0 {
            self.bytes.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
            self.bytes.extend_from_slice(&0i32.to_be_bytes()); // flags
            self.bytes.extend_from_slice(&0i32.to_be_bytes()); // extension
        }
        if let Some(s) = self.starts.as_mut() {
            s.push(self.bytes.len());
        }
        let n = fields.len() + usize::from(seq.is_some());
        self.bytes.extend_from_slice(&(n as i16).to_be_bytes());
        for v in fields {
            self.value(v);
        }
        if let Some(s) = seq {
            self.value(&Value::Int64(s));
        }
        self.rows += 1;
    }

    fn field(&mut self, data: &[u8]) {
        self.bytes
            .extend_from_slice(&(data.len() as i32).to_be_bytes());
        self.bytes.extend_from_slice(data);
    }

    fn value(&mut self, v: &Value) {
        match v {
            Value::Null => self.bytes.extend_from_slice(&(-1i32).to_be_bytes()),
            Value::Int64(i) => self.field(&i.to_be_bytes()),
            Value::Float64(f) => self.field(&f.to_bits().to_be_bytes()),
            Value::Utf8(s) => self.field(s.as_bytes()),
            Value::Boolean(b) => self.field(&[u8::from(*b)]),
            Value::Timestamp(us) => self.field(&us.wrapping_sub(PG_EPOCH_US).to_be_bytes()),
            Value::Date(d) => self.field(&d.wrapping_sub(PG_EPOCH_DAYS).to_be_bytes()),
            // Refused when the sink opens (no array column is accepted).
            Value::List(_) => self.bytes.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }

    /// The encoded stream, trailer included (empty when there is no row).
    pub(super) fn finish(&mut self) -> &[u8] {
        if self.rows > 0 && !self.finished {
            self.bytes.extend_from_slice(&TRAILER);
            self.finished = true;
        }
        &self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_is_encoded_as_postgres_reads_it() {
        let mut b = CopyBuffer::default();
        b.push(
            &[
                Value::Int64(1),
                Value::Null,
                Value::str("é"),
                Value::Timestamp(PG_EPOCH_US + 5),
                Value::Date(PG_EPOCH_DAYS - 1),
            ],
            Some(7),
        );
        let bytes = b.finish().to_vec();
        let mut want = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0".to_vec();
        want.extend_from_slice(&6i16.to_be_bytes());
        want.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1]);
        want.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        want.extend_from_slice(&[0, 0, 0, 2, 0xc3, 0xa9]);
        want.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 5]);
        want.extend_from_slice(&[0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff]);
        want.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 7]);
        want.extend_from_slice(&[0xff, 0xff]);
        assert_eq!(bytes, want);
        assert_eq!(b.rows(), 1);
        // finish is idempotent; clear forgets.
        assert_eq!(b.finish().len(), want.len());
        b.clear();
        assert!(b.finish().is_empty());
    }

    #[test]
    fn one_row_can_be_handed_over_alone() {
        let mut all = CopyBuffer::default();
        all.keep_row_starts();
        let mut each = Vec::new();
        for i in 0..3 {
            let row = [Value::Int64(i), Value::str(&"x".repeat(i as usize))];
            all.push(&row, None);
            let mut alone = CopyBuffer::default();
            alone.push(&row, None);
            each.push(alone.finish().to_vec());
        }
        for (i, want) in each.iter().enumerate() {
            assert_eq!(&all.single(i), want);
        }
        // The same after the trailer is written.
        all.finish();
        assert_eq!(&all.single(2), &each[2]);
    }

    #[test]
    fn the_rows_after_some_make_a_stream_of_their_own() {
        let mut all = CopyBuffer::default();
        assert_eq!(all.tuples_after(0), (&[][..], &[][..]));
        all.push(&[Value::Int64(1)], None);
        let (_, first) = all.tuples_after(0);
        let sent = first.len();
        all.push(&[Value::Int64(2)], None);
        let mut second = CopyBuffer::default();
        second.push(&[Value::Int64(2)], None);
        let (head, rest) = all.tuples_after(sent);
        let stream = [head, rest, &TRAILER[..]].concat();
        assert_eq!(stream, second.finish());
        // The same once the whole stream is finished.
        all.finish();
        let (head, rest) = all.tuples_after(sent);
        assert_eq!([head, rest, &TRAILER[..]].concat(), second.finish());
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(ident("sum(x)"), "\"sum(x)\"");
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(table_ident("public.daily"), "\"public\".\"daily\"");
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(literal("a\\b'"), "E'a\\\\b'''");
    }
}
