//! Reading one file record by record, from any record boundary, with exact
//! positions (physical lines and bytes consumed) and bounded memory.
//!
//! CSV records are framed by `csv_core` (the engine of the `csv` crate), so a
//! quoted field may hold the delimiter, line breaks and doubled quotes; a
//! JSON-lines record is one physical line. Records longer than the limit are
//! read to their end but not kept (only their first bytes, for reporting).
//! This module owns framing only: it does not convert values or decide what
//! a bad record means.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::path::Path;

use crate::file_sink::FileFormat;

/// Bytes of a record's original text kept for reports and dead letters.
pub(crate) const RAW_KEEP: usize = 1024;

/// Read buffer per open file.
const READ_BUFFER: usize = 64 * 1024;

/// How a [`RecordReader`] frames records.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Framing {
    pub(crate) format: FileFormat,
    pub(crate) delimiter: u8,
    pub(crate) quote: u8,
    pub(crate) max_record_bytes: usize,
}

/// The contents of one record.
pub(crate) enum Body<'a> {
    /// Unescaped field bytes and the end of each field in them.
    Csv { data: &'a [u8], ends: &'a [usize] },
    /// The line, without its line break.
    Json(&'a [u8]),
}

impl Body<'_> {
    /// CSV field `i` of a record with `ends`.
    pub(crate) fn field<'b>(data: &'b [u8], ends: &[usize], i: usize) -> &'b [u8] {
        let start = if i == 0 { 0 } else { ends[i - 1] };
        &data[start..ends[i]]
    }
}

/// One record as read.
pub(crate) struct RawRecord<'a> {
    /// The 1-based physical line the record starts on.
    pub(crate) line: u64,
    /// Longer than the limit: `body` is empty and must not be used.
    pub(crate) too_long: bool,
    /// The start of the original text (at most [`RAW_KEEP`] bytes).
    pub(crate) raw: &'a [u8],
    /// The record's contents.
    pub(crate) body: Body<'a>,
}

/// Reads records of one file from a record boundary onwards.
pub(crate) struct RecordReader {
    src: BufReader<File>,
    framing: Framing,
    csv: Option<csv_core::Reader>,
    line: u64,
    byte: u64,
    limit: Option<u64>,
    buf: Vec<u8>,
    ends: Vec<usize>,
    raw: Vec<u8>,
    eof: bool,
}

fn count_newlines(b: &[u8]) -> u64 {
    b.iter().filter(|&&c| c == b'\n').count() as u64
}

fn trim_line_break(mut b: &[u8]) -> &[u8] {
    while let [rest @ .., b'\n' | b'\r'] = b {
        b = rest;
    }
    b
}

impl RecordReader {
    /// Opens `path` at byte `byte`, which is just after physical line `line`
    /// (both 0 at the start); reading stops at byte `limit` when given.
    pub(crate) fn open(
        path: &Path,
        framing: Framing,
        line: u64,
        byte: u64,
        limit: Option<u64>,
    ) -> io::Result<RecordReader> {
        let mut file = File::open(path)?;
        if byte > 0 {
            file.seek(SeekFrom::Start(byte))?;
        }
        let csv = match framing.format {
            FileFormat::Csv => Some(
                csv_core::ReaderBuilder::new()
                    .delimiter(framing.delimiter)
                    .quote(framing.quote)
                    .build(),
            ),
            FileFormat::Json => None,
        };
        Ok(RecordReader {
            src: BufReader::with_capacity(READ_BUFFER, file),
            framing,
            csv,
            line,
            byte,
            limit,
            buf: vec![0; 1024],
            ends: vec![0; 64],
            raw: Vec::new(),
            eof: false,
        })
    }

    /// Physical lines consumed so far (the next record starts after them).
    pub(crate) fn line(&self) -> u64 {
        self.line
    }

    /// Bytes consumed so far.
    pub(crate) fn byte(&self) -> u64 {
        self.byte
    }

    fn at_limit(&self) -> bool {
        self.limit.is_some_and(|l| self.byte >= l)
    }

    /// The next record, `None` at the end of the file (or of the limit).
    pub(crate) fn next_record(&mut self) -> io::Result<Option<RawRecord<'_>>> {
        if self.eof {
            return Ok(None);
        }
        if self.csv.is_some() {
            self.next_csv()
        } else {
            self.next_json()
        }
    }

    /// Consumes line breaks before a CSV record (blank lines, and the `\n`
    /// of a `\r\n` whose `\r` ended the last record).
    fn skip_line_breaks(&mut self) -> io::Result<()> {
        loop {
            let input = self.src.fill_buf()?;
            if input.is_empty() {
                return Ok(());
            }
            let n = input
                .iter()
                .take_while(|&&b| b == b'\n' || b == b'\r')
                .count();
            self.line += count_newlines(&input[..n]);
            self.byte += n as u64;
            let all = n == input.len();
            self.src.consume(n);
            if !all {
                return Ok(());
            }
        }
    }

    fn next_csv(&mut self) -> io::Result<Option<RawRecord<'_>>> {
        use csv_core::ReadRecordResult as R;
        self.skip_line_breaks()?;
        if self.at_limit() {
            self.eof = true;
            return Ok(None);
        }
        let start_line = self.line + 1;
        let max = self.framing.max_record_bytes;
        let cap = max.saturating_add(2);
        self.raw.clear();
        let (mut out_len, mut nends, mut rec_bytes) = (0usize, 0usize, 0usize);
        let mut too_long = false;
        let mut last = 0u8;
        let core = self.csv.as_mut().expect("a CSV reader");
        loop {
            let input = self.src.fill_buf()?;
            let at_eof = input.is_empty();
            let (res, nin, nout, nend) =
                core.read_record(input, &mut self.buf[out_len..], &mut self.ends[nends..]);
            let consumed = &input[..nin];
            self.line += count_newlines(consumed);
            self.byte += nin as u64;
            rec_bytes += nin;
            if self.raw.len() < RAW_KEEP {
                let room = RAW_KEEP - self.raw.len();
                self.raw.extend_from_slice(&consumed[..room.min(nin)]);
            }
            if let Some(&b) = consumed.last() {
                last = b;
            }
            self.src.consume(nin);
            out_len += nout;
            nends += nend;
            if rec_bytes > cap {
                too_long = true;
            }
            if too_long {
                // Keep framing the record to its end, but keep nothing of it.
                out_len = 0;
                nends = 0;
            }
            match res {
                R::InputEmpty if at_eof => {
                    self.eof = true;
                    return Ok(None);
                }
                R::InputEmpty => {}
                R::OutputFull => {
                    if self.buf.len() >= cap {
                        too_long = true;
                        out_len = 0;
                    } else {
                        let n = (self.buf.len() * 2).min(cap);
                        self.buf.resize(n, 0);
                    }
                }
                R::OutputEndsFull => {
                    if !too_long {
                        let n = self.ends.len() * 2;
                        self.ends.resize(n, 0);
                    }
                }
                R::Record => break,
                R::End => {
                    self.eof = true;
                    return Ok(None);
                }
            }
        }
        let content = rec_bytes - usize::from(last == b'\n' || last == b'\r');
        if last == b'\r' {
            // Take the `\n` of a `\r\n` with its record, so that the
            // position after a record is at the start of a line.
            if self.src.fill_buf()?.first() == Some(&b'\n') {
                self.src.consume(1);
                self.line += 1;
                self.byte += 1;
            }
        }
        let too_long = too_long || content > max;
        if self.at_limit() {
            self.eof = true;
        }
        let raw = trim_line_break(&self.raw);
        Ok(Some(RawRecord {
            line: start_line,
            too_long,
            raw,
            body: if too_long {
                Body::Csv {
                    data: &[],
                    ends: &[],
                }
            } else {
                Body::Csv {
                    data: &self.buf[..out_len],
                    ends: &self.ends[..nends],
                }
            },
        }))
    }

    /// Reads one physical line into `buf` (keeping at most the limit, or
    /// [`RAW_KEEP`] bytes of a longer line): its 1-based line number and its
    /// length without the line break; `None` at the end of the file.
    fn read_line(&mut self) -> io::Result<Option<(u64, usize)>> {
        self.buf.clear();
        let cap = self.framing.max_record_bytes.saturating_add(2);
        let line = self.line + 1;
        let mut total = 0usize;
        let (mut prev, mut last) = (0u8, 0u8);
        loop {
            let input = self.src.fill_buf()?;
            if input.is_empty() {
                break;
            }
            let (chunk, newline) = match input.iter().position(|&b| b == b'\n') {
                Some(i) => (&input[..=i], true),
                None => (input, false),
            };
            let keep = if self.buf.len() + chunk.len() <= cap {
                chunk.len()
            } else {
                RAW_KEEP.saturating_sub(self.buf.len()).min(chunk.len())
            };
            self.buf.extend_from_slice(&chunk[..keep]);
            let n = chunk.len();
            prev = if n >= 2 { chunk[n - 2] } else { last };
            last = chunk[n - 1];
            total += n;
            self.byte += n as u64;
            self.src.consume(n);
            if newline {
                self.line += 1;
                break;
            }
        }
        if total == 0 {
            return Ok(None);
        }
        let line_break = match (prev, last) {
            (b'\r', b'\n') => 2,
            (_, b'\n') | (_, b'\r') => 1,
            _ => 0,
        };
        Ok(Some((line, total - line_break)))
    }

    fn next_json(&mut self) -> io::Result<Option<RawRecord<'_>>> {
        let strip = |buf: &[u8], at_start: bool| -> (usize, usize) {
            let text = trim_line_break(buf);
            let bom = if at_start && text.starts_with(b"\xef\xbb\xbf") {
                3
            } else {
                0
            };
            (bom, text.len())
        };
        let (line, too_long, from, to) = loop {
            if self.at_limit() {
                self.eof = true;
                return Ok(None);
            }
            let at_start = self.byte == 0;
            let Some((line, content)) = self.read_line()? else {
                self.eof = true;
                return Ok(None);
            };
            let (from, to) = strip(&self.buf, at_start);
            let too_long = content > self.framing.max_record_bytes;
            if !too_long && self.buf[from..to].iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            break (line, too_long, from, to);
        };
        let text = &self.buf[from..to];
        Ok(Some(RawRecord {
            line,
            too_long,
            raw: &text[..text.len().min(RAW_KEEP)],
            body: Body::Json(if too_long { &[] } else { text }),
        }))
    }
}
