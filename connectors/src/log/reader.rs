//! Reading one partition from any offset, tailing it as it grows.
//!
//! Owns the read path: finding the segment of an offset, index lookup plus a
//! short scan, walking records across segment boundaries, and noticing
//! appends and new segments. It must never write to the log and must only
//! memory-map sealed segments (see the SAFETY comment in `open_segment`).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use runnel::clock::now_ns;

use super::error::{io_err, LogError, Result};
use super::index::{self, IndexEntry};
use super::partition;
use super::record::{self, Check, RecordRef, RECORD_OVERHEAD};
use super::segment::{self, ChunkReader};
use super::topic::LogTopic;

/// Reads the records of one partition in offset order, from any offset.
///
/// Sealed segments are memory-mapped and records are handed out as slices
/// of the map (no copy, no allocation, no syscall per record, CRC checked).
/// The active segment is read with large positioned reads into a reusable
/// buffer. At the end of the log, [`next_record`](Self::next_record) returns
/// `None`; a later call reads past the end it knew (one `pread`, which also
/// brings in the records appended since: a tailing reader spends one system
/// call on a record; and one `stat` for the next segment when the file has
/// not grown, which a tailing reader can make rarer,
/// [`look_for_rolls_every`](Self::look_for_rolls_every)) and returns records
/// appended in the meantime by a producer in this or another process,
/// following segment rolls.
///
/// Errors ([`LogError::Corrupt`] for invalid data) leave the position
/// unchanged, so a retry reports the same error.
#[derive(Debug)]
pub struct PartitionReader {
    partition: u32,
    cursor: Cursor,
}

impl LogTopic {
    /// A reader of `partition` positioned at its first offset.
    pub fn reader(&self, partition: u32) -> Result<PartitionReader> {
        let start = partition::start_offset(&self.checked_partition_dir(partition)?)?;
        PartitionReader::open(self, partition, start)
    }

    /// A reader of `partition` positioned at `offset`.
    pub fn reader_at(&self, partition: u32, offset: u64) -> Result<PartitionReader> {
        PartitionReader::open(self, partition, offset)
    }
}

impl PartitionReader {
    /// Opens a reader of `partition` of `topic`, positioned at `offset`
    /// (which must be within the partition's current offsets, see
    /// [`seek`](Self::seek)).
    pub fn open(topic: &LogTopic, partition: u32, offset: u64) -> Result<PartitionReader> {
        let dir = topic.checked_partition_dir(partition)?;
        let mut reader = PartitionReader {
            partition,
            cursor: Cursor::new(dir, 0),
        };
        reader.seek(offset)?;
        Ok(reader)
    }

    /// At the end of the active segment, looks for the next segment (one
    /// `stat`) at most once per `every` when the segment has not grown,
    /// instead of at every look. A tailing reader that looks for appends
    /// often (every few µs) saves a system call per look, and notices a
    /// segment roll up to `every` late. A reader that must see everything
    /// written before it looked (reading up to a known offset, or until the
    /// log is idle) keeps the default, [`Duration::ZERO`](std::time::Duration::ZERO).
    pub fn look_for_rolls_every(&mut self, every: std::time::Duration) {
        self.cursor.roll_look_ns = u64::try_from(every.as_nanos()).unwrap_or(u64::MAX);
    }

    /// The partition read.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// Offset of the next record to be returned.
    pub fn position(&self) -> u64 {
        self.cursor.next_offset
    }

    /// Positions the reader so that the next record returned has offset
    /// `offset`: a lookup in the segment's sparse index, then a scan of at
    /// most about one index interval. `offset` may be anything from the
    /// partition's first offset to its current end (seeking to the end
    /// waits for new records); other offsets fail with
    /// [`LogError::OffsetOutOfRange`] and leave the position unchanged.
    pub fn seek(&mut self, offset: u64) -> Result<()> {
        let dir = self.cursor.dir.clone();
        let out_of_range = |dir: &Path| -> LogError {
            let start = partition::start_offset(dir).unwrap_or(0);
            let end = partition::end_offset(dir).unwrap_or(0);
            LogError::OffsetOutOfRange {
                path: dir.to_path_buf(),
                offset,
                start,
                end,
            }
        };
        let segments = segment::list_segments(&dir)?;
        let n = segments.partition_point(|&base| base <= offset);
        if n == 0 {
            if segments.is_empty() && offset == 0 {
                let roll_look_ns = self.cursor.roll_look_ns;
                self.cursor = Cursor::new(dir, 0);
                self.cursor.roll_look_ns = roll_look_ns;
                return Ok(());
            }
            return Err(out_of_range(&dir));
        }
        let base = segments[n - 1];
        let Some(mut seg) = open_segment(&dir, base)? else {
            return Err(out_of_range(&dir));
        };
        let entries = index::read_raw(&segment::index_path(&dir, base))?
            .map(|raw| index::parse(&raw))
            .unwrap_or_default();
        let mut start = IndexEntry::START;
        if let Some(e) = index::lookup(&entries, offset - base) {
            // A stale or damaged index is not an error: fall back to a scan.
            if seg.probe(u64::from(e.position))? == Some(base + u64::from(e.rel_offset)) {
                start = e;
            }
        }
        seg.pos = u64::from(start.position);
        let mut cursor = Cursor::new(dir, base + u64::from(start.rel_offset));
        cursor.roll_look_ns = self.cursor.roll_look_ns;
        cursor.seg = Some(seg);
        while cursor.next_offset < offset {
            if cursor.advance()?.is_none() {
                return Err(out_of_range(&cursor.dir));
            }
        }
        self.cursor = cursor;
        Ok(())
    }

    /// Positions the reader at the current end of the partition, to read
    /// only records appended from now on.
    pub fn seek_to_end(&mut self) -> Result<()> {
        let end = partition::end_offset(&self.cursor.dir)?;
        self.seek(end)
    }

    /// The next record, or `None` at the current end of the log. The record
    /// borrows from the reader (the segment's map or the read buffer).
    #[inline]
    pub fn next_record(&mut self) -> Result<Option<RecordRef<'_>>> {
        self.cursor.begin_call();
        Ok(match self.cursor.advance()? {
            Some(span) => Some(self.cursor.record_at(span)),
            None => None,
        })
    }

    /// Passes up to `max` records to `f`, stopping early at the current end
    /// of the log; returns how many were passed. On error, the records
    /// already passed stay consumed ([`position`](Self::position) tells
    /// where the reader is).
    pub fn read_batch<F>(&mut self, max: usize, mut f: F) -> Result<usize>
    where
        F: FnMut(RecordRef<'_>),
    {
        self.cursor.begin_call();
        let mut n = 0;
        while n < max {
            let Some(span) = self.cursor.advance()? else {
                break;
            };
            f(self.cursor.record_at(span));
            n += 1;
        }
        Ok(n)
    }
}

/// Where a record lies in the current segment's bytes.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    len: usize,
}

/// Position of a reader: next offset and the open segment containing it.
#[derive(Debug)]
struct Cursor {
    dir: PathBuf,
    next_offset: u64,
    seg: Option<Segment>,
    /// The previous segment was sealed and ended just before
    /// `next_offset`, so a segment must start there.
    expect_segment: bool,
    /// Look for the next segment at most this often (ns; 0: at every look)
    /// while the active one has not grown.
    roll_look_ns: u64,
    /// When it was last looked for ([`now_ns`] time).
    roll_looked_ns: u64,
}

impl Cursor {
    fn new(dir: PathBuf, next_offset: u64) -> Cursor {
        Cursor {
            dir,
            next_offset,
            seg: None,
            expect_segment: false,
            roll_look_ns: 0,
            roll_looked_ns: 0,
        }
    }

    /// Starts a call of the reader's API: the end of the active segment
    /// found by an earlier call is looked past again (within one call, an
    /// end once found stands: a record appended since is the next call's).
    fn begin_call(&mut self) {
        if let Some(Segment {
            data: Data::Active(chunks),
            ..
        }) = &mut self.seg
        {
            chunks.forget_end();
        }
    }

    /// Moves past the next valid record and returns where it lies, or
    /// `None` at the current end of the log.
    #[inline]
    fn advance(&mut self) -> Result<Option<Span>> {
        loop {
            let seg = match &mut self.seg {
                Some(seg) => seg,
                None => match open_segment(&self.dir, self.next_offset)? {
                    Some(seg) => {
                        self.expect_segment = false;
                        self.seg.insert(seg)
                    }
                    None if self.expect_segment => {
                        return Err(LogError::Corrupt {
                            path: self.dir.clone(),
                            position: 0,
                            reason: format!(
                                "a sealed segment ends before offset {0} but no segment starts at {0}",
                                self.next_offset
                            ),
                        });
                    }
                    None => return Ok(None),
                },
            };
            let rolls = RollLook {
                every_ns: self.roll_look_ns,
                last_ns: &mut self.roll_looked_ns,
            };
            match seg.step(&self.dir, &mut self.next_offset, rolls)? {
                Step::Record(span) => return Ok(Some(span)),
                Step::End => return Ok(None),
                Step::SegmentDone => {
                    self.seg = None;
                    self.expect_segment = true;
                }
            }
        }
    }

    /// The record of a span just returned by [`advance`](Self::advance).
    #[inline]
    fn record_at(&self, span: Span) -> RecordRef<'_> {
        let bytes = match &self.seg {
            Some(seg) => seg.bytes(),
            None => &[],
        };
        RecordRef::parse_valid(&bytes[span.start..span.start + span.len])
    }
}

/// Outcome of one step in a segment.
enum Step {
    Record(Span),
    /// End of the log for now.
    End,
    /// The segment is sealed and fully read.
    SegmentDone,
}

/// An open segment.
#[derive(Debug)]
struct Segment {
    path: PathBuf,
    /// Base offset (first record's offset).
    base: u64,
    /// Position of the next record in the file.
    pos: u64,
    data: Data,
}

#[derive(Debug)]
enum Data {
    /// A sealed segment, mapped whole.
    Sealed(Mmap),
    /// The active segment (it may still grow, or be truncated by recovery),
    /// read through a buffer.
    Active(ChunkReader),
}

/// What [`Segment::step`] learns when the active segment has no complete
/// record at the current position.
enum EndState {
    /// The file changed length: look again.
    Changed,
    /// A later segment exists, so this file is final.
    Sealed,
    /// Nothing new yet.
    Open,
}

impl Segment {
    fn bytes(&self) -> &[u8] {
        match &self.data {
            Data::Sealed(map) => map,
            Data::Active(chunks) => chunks.buffer().0,
        }
    }

    fn corrupt(&self, position: u64, reason: String) -> LogError {
        LogError::Corrupt {
            path: self.path.clone(),
            position,
            reason,
        }
    }

    /// Offset of the valid record at `pos`, if there is one.
    fn probe(&mut self, pos: u64) -> Result<Option<u64>> {
        match &mut self.data {
            Data::Sealed(map) => {
                let bytes = map.get(pos as usize..).unwrap_or_default();
                Ok(match record::check(bytes) {
                    Check::Valid(n) => Some(record::offset_of(&bytes[..n])),
                    _ => None,
                })
            }
            Data::Active(chunks) => chunks.probe(pos),
        }
    }

    #[inline]
    fn step(&mut self, dir: &Path, next_offset: &mut u64, mut rolls: RollLook<'_>) -> Result<Step> {
        let pos = self.pos;
        match &mut self.data {
            Data::Sealed(map) => {
                let start = pos as usize;
                if start >= map.len() {
                    if *next_offset == self.base {
                        // The next segment would be this one again.
                        return Err(
                            self.corrupt(pos, "sealed segment holds no records".to_string())
                        );
                    }
                    return Ok(Step::SegmentDone);
                }
                match record::check(&map[start..]) {
                    Check::Valid(len) => {
                        let found = record::offset_of(&map[start..start + len]);
                        if found != *next_offset {
                            return Err(self.corrupt(pos, offset_reason(found, *next_offset)));
                        }
                        self.pos += len as u64;
                        *next_offset += 1;
                        Ok(Step::Record(Span { start, len }))
                    }
                    Check::Incomplete { .. } => {
                        Err(self.corrupt(pos, "sealed segment ends inside a record".to_string()))
                    }
                    Check::Corrupt { reason, .. } => Err(self.corrupt(pos, reason)),
                }
            }
            Data::Active(chunks) => {
                let mut want = RECORD_OVERHEAD;
                let mut reread = false;
                loop {
                    let len = chunks.len();
                    let bytes = chunks.bytes_at(pos, want)?;
                    let empty = bytes.is_empty();
                    let check = if empty {
                        None
                    } else {
                        Some(record::check(bytes))
                    };
                    let problem = match check {
                        Some(Check::Valid(n)) => {
                            let found = record::offset_of(&bytes[..n]);
                            if found != *next_offset {
                                return Err(self.corrupt(pos, offset_reason(found, *next_offset)));
                            }
                            let start = (pos - chunks.buffer().1) as usize;
                            self.pos += n as u64;
                            *next_offset += 1;
                            return Ok(Step::Record(Span { start, len: n }));
                        }
                        Some(Check::Incomplete { needed }) if pos + needed as u64 <= len => {
                            want = needed;
                            continue;
                        }
                        Some(Check::Incomplete { .. }) => {
                            "sealed segment ends inside a record".to_string()
                        }
                        Some(Check::Corrupt {
                            reason,
                            declared_len,
                        }) => {
                            // A bad last record is a torn tail (the end of
                            // the log until a producer recovers it); bad data
                            // with more data after it is corruption.
                            if !matches!(declared_len, Some(n) if pos + n as u64 == len) {
                                return Err(self.corrupt(pos, reason));
                            }
                            reason
                        }
                        None => String::new(),
                    };
                    match at_end(chunks, pos, dir, self.base, *next_offset, &mut rolls)? {
                        EndState::Changed => want = RECORD_OVERHEAD,
                        // The buffer was dropped: look at fresh bytes once
                        // (recovery may have rewritten them in place).
                        EndState::Open if !reread && !empty => {
                            reread = true;
                            want = RECORD_OVERHEAD;
                        }
                        EndState::Open => return Ok(Step::End),
                        EndState::Sealed if empty => return Ok(Step::SegmentDone),
                        EndState::Sealed => return Err(self.corrupt(pos, problem)),
                    }
                }
            }
        }
    }
}

fn offset_reason(found: u64, expected: u64) -> String {
    format!("record has offset {found}, expected {expected}")
}

/// How often a cursor looks for the next segment
/// ([`PartitionReader::look_for_rolls_every`]).
struct RollLook<'a> {
    every_ns: u64,
    last_ns: &'a mut u64,
}

/// Called when the active segment has no complete valid record at `pos`,
/// the current position. A grown file is found by reading past the known
/// end (one `pread`, whose bytes are then buffered: the case of a reader
/// woken by an append, which so spends one system call on the record).
/// Otherwise the next segment is looked for, and if it exists the length is
/// read once more, because a producer finishes writing a segment before it
/// creates the next one: only a length read after the next segment was seen
/// is final.
fn at_end(
    chunks: &mut ChunkReader,
    pos: u64,
    dir: &Path,
    base: u64,
    next_offset: u64,
    rolls: &mut RollLook<'_>,
) -> Result<EndState> {
    let old = chunks.len();
    // A look in this call that found the end stands until the next call:
    // one read per appended record, not a second one that finds nothing.
    if !chunks.end_is_exact() && chunks.look_past(pos)? != old {
        return Ok(EndState::Changed);
    }
    if rolls.every_ns > 0 {
        let now = now_ns();
        if now.saturating_sub(*rolls.last_ns) < rolls.every_ns {
            return Ok(EndState::Open);
        }
        *rolls.last_ns = now;
    }
    // A segment without records is never sealed (and the segment starting
    // at `next_offset` would be itself).
    if !(next_offset > base && segment::segment_exists(dir, next_offset)) {
        return Ok(EndState::Open);
    }
    Ok(if chunks.refresh()? != old {
        EndState::Changed
    } else {
        EndState::Sealed
    })
}

/// Opens segment `base` of the partition in `dir`, or `None` if it does not
/// exist. A segment with a later segment after it is sealed and gets mapped.
fn open_segment(dir: &Path, base: u64) -> Result<Option<Segment>> {
    let path = segment::log_path(dir, base);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("open", &path)(e)),
    };
    let sealed = segment::list_segments(dir)?
        .last()
        .is_some_and(|&last| last > base);
    let data = if sealed {
        // SAFETY: mapping a file is unsafe because the program has undefined
        // behavior (or gets SIGBUS) if the file is modified or truncated
        // while mapped. This segment is sealed: a later segment exists, and
        // the only writer of a topic (the producer holding its lock) appends
        // to and, during recovery, truncates only the *last* segment; sealed
        // segments are complete and fsynced before their successor is
        // created and are never written, truncated or deleted afterwards.
        // The map is read-only and owned by this reader. Changing a topic's
        // files by other means while it is read is outside this module's
        // contract (see the module documentation).
        let map = unsafe { Mmap::map(&file) }.map_err(io_err("map", &path))?;
        #[cfg(unix)]
        {
            // Only a hint for read-ahead; failure is harmless.
            let _ = map.advise(memmap2::Advice::Sequential);
        }
        Data::Sealed(map)
    } else {
        Data::Active(ChunkReader::new(file, &path)?)
    };
    Ok(Some(Segment {
        path,
        base,
        pos: 0,
        data,
    }))
}
