//! The manifests' and offset-log entries' journal: records appended to one
//! file and made durable with one data sync each.
//!
//! A journal is a directory (`commits/` or `offsets/`) of segments
//! `journal-<seq>`, each a run of sealed frames ([`super::frame`]) written
//! one after the other, every frame one record (a manifest, an offset-log
//! entry) whose number (epoch, batch) its payload says. Appending a record
//! is one `write` and one data sync of the open segment: no file is
//! created, renamed or removed per record, and no directory is synced. That
//! is a fifth of the system time of a file per record written atomically
//! (a temporary file, its fsync, a rename and the directory's fsync), and
//! on a machine whose cores all run latency-critical threads every
//! microsecond of it is taken from one of them.
//!
//! A process appends to a segment of its own: the first append after
//! opening creates the next `journal-<seq>` and syncs the directory once,
//! and a segment that holds [`ROLL_RECORDS`] records, or whose room is
//! used up, is followed by a new one. So a segment a crash tore is never
//! appended to again. A new segment is first filled with
//! [`SEGMENT_BYTES`] of zeros and synced, and records are written over
//! the zeros: the file's size does not change with a record, so its data
//! sync writes the record's blocks alone, not the file's inode too (one
//! device write instead of two; on a file system with a journal, no
//! journal commit). Zeros after the last frame are room, not damage, and
//! a frame cut short by a crash holds zeros where it was not written
//! (payloads are text and hold no zero byte: [`Journal::append`] refuses
//! one that does). Reading
//! takes every segment in order; after a frame that cannot be read
//! (damaged, or cut short by a crash) it goes on at the next frame header,
//! not by the frame's own length, which may be what is damaged. The newest
//! readable record of a number wins. Every unreadable frame is kept, with
//! its segment and byte offset and whether it is whole (all there but
//! failing its checksum: damaged after it was acknowledged) or cut short
//! (an append a crash interrupted), so that recovery can say what it
//! skipped and refuse what it must not skip.
//!
//! This module owns the journal's files and index; it must not know what a
//! record means beyond its number (the caller's `number` function reads it).

use std::collections::BTreeMap;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::frame::{self, Taken};
use super::storage::{AppendFile, OpenMode, Storage};

/// Records a segment holds before the next append starts a new one.
pub const ROLL_RECORDS: usize = 256;

/// The zeros a new segment is filled with, for records to be written over
/// (more if its first record is larger).
pub const SEGMENT_BYTES: u64 = 64 * 1024;

/// The unit a disk writes whole or not at all: a frame missing one of
/// these was an interrupted write.
const SECTOR: usize = 512;

const SEGMENT_PREFIX: &str = "journal-";

/// One readable record.
#[derive(Debug)]
struct Record {
    /// The segment's sequence number.
    seq: u64,
    /// Where the frame is in its segment.
    at: Range<u64>,
    payload: Vec<u8>,
}

/// A frame that could not be read.
#[derive(Debug, Clone)]
pub struct Damage {
    /// The segment holding it.
    pub path: PathBuf,
    seq: u64,
    /// Its byte offset in the segment.
    pub offset: u64,
    /// What is wrong with it.
    pub why: String,
    /// Whether the frame is whole (its header reads and its payload is all
    /// there) and fails its checksum: damaged after it was written, not an
    /// append a crash cut short.
    pub whole: bool,
}

#[derive(Debug)]
struct Active {
    seq: u64,
    file: Box<dyn AppendFile>,
    /// Where the next frame goes: the end of the frames written.
    len: u64,
    /// The segment's size as filled with zeros (0 if filling failed).
    room: u64,
    records: usize,
}

/// An open journal (see the module docs).
pub struct Journal {
    dir: PathBuf,
    number: fn(&[u8]) -> Option<u64>,
    /// Every segment's sequence number, ascending.
    segments: Vec<u64>,
    records: BTreeMap<u64, Record>,
    /// Every readable frame as `(seq, offset, number)`, winners or not.
    frames: Vec<(u64, u64, u64)>,
    damaged: Vec<Damage>,
    active: Option<Active>,
    /// The frame being appended (header and payload: one `write`).
    frame: Vec<u8>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.dir)
            .field("segments", &self.segments)
            .field("records", &self.records.len())
            .field("damaged", &self.damaged.len())
            .finish()
    }
}

fn segment_seq(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(SEGMENT_PREFIX)?;
    let seq: u64 = digits.parse().ok()?;
    // Only the name this module writes for that number.
    (format!("{seq:08}") == digits).then_some(seq)
}

impl Journal {
    /// Reads the journal in `dir` (which must exist); `number` reads a
    /// record's number from its payload (`None`: the record is damaged).
    pub fn open(
        storage: &dyn Storage,
        dir: &Path,
        number: fn(&[u8]) -> Option<u64>,
    ) -> io::Result<Journal> {
        let mut segments: Vec<u64> = storage
            .list(dir)?
            .iter()
            .filter_map(|n| segment_seq(n))
            .collect();
        segments.sort_unstable();
        let mut journal = Journal {
            dir: dir.to_path_buf(),
            number,
            segments: Vec::new(),
            records: BTreeMap::new(),
            frames: Vec::new(),
            damaged: Vec::new(),
            active: None,
            frame: Vec::new(),
        };
        for seq in segments {
            let path = journal.segment_path(seq);
            let bytes = match storage.read(&path) {
                Ok(bytes) => bytes,
                // Purged since the listing (a reader beside a running query).
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            journal.scan(seq, &bytes);
            journal.segments.push(seq);
        }
        Ok(journal)
    }

    fn segment_path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{SEGMENT_PREFIX}{seq:08}"))
    }

    /// Indexes the frames of segment `seq`.
    fn scan(&mut self, seq: u64, bytes: &[u8]) {
        let path = self.segment_path(seq);
        let mut at = 0usize;
        while at < bytes.len() {
            let rest = &bytes[at..];
            let damage = |why: String, whole: bool| Damage {
                path: path.clone(),
                seq,
                offset: at as u64,
                why,
                whole,
            };
            // Zeros to the end: the segment's unused room (and, after a
            // frame that is not whole, what a crash left of an append).
            let zeros_from = |from: usize| rest[from..].iter().all(|b| *b == 0);
            // A frame of `len` bytes failing its checksum that is an append
            // a crash cut short: nothing but room after it, and inside it
            // bytes never written, which a whole frame cannot hold (it holds
            // no zero byte): zeros from somewhere in it to its end (the
            // write's first part made it to the disk), or a whole sector of
            // zeros (a disk that kept a later part of the write and not an
            // earlier one). A zero byte alone, as a damaged byte may be, is
            // not enough.
            let cut_into_room = |len: usize| {
                let Some(frame) = rest.get(..len) else {
                    return false;
                };
                if !zeros_from(len) {
                    return false;
                }
                let zero = |b: &u8| *b == 0;
                let tail_unwritten = frame
                    .iter()
                    .position(zero)
                    .is_some_and(|z| frame[z..].iter().all(zero));
                // Sector boundaries are the segment file's.
                let first = (SECTOR - at % SECTOR) % SECTOR;
                let sector_unwritten = frame
                    .get(first..)
                    .is_some_and(|from| from.chunks_exact(SECTOR).any(|c| c.iter().all(zero)));
                tail_unwritten || sector_unwritten
            };
            let unreadable = match frame::take(rest) {
                Taken::Frame { payload, len } => match (self.number)(payload) {
                    Some(n) => {
                        self.frames.push((seq, at as u64, n));
                        self.records.insert(
                            n,
                            Record {
                                seq,
                                at: at as u64..(at + len) as u64,
                                payload: payload.to_vec(),
                            },
                        );
                        at += len;
                        continue;
                    }
                    None => damage("its record has no readable number".into(), true),
                },
                _ if zeros_from(0) => break,
                Taken::Damaged { len, .. } if cut_into_room(len) => {
                    self.damaged.push(damage(
                        "cut short: part of it was never written".into(),
                        false,
                    ));
                    break;
                }
                Taken::Damaged { why, .. } => damage(why, true),
                Taken::Unreadable(why) => damage(why, false),
            };
            self.damaged.push(unreadable);
            // Go on at the next frame header: not by the damaged frame's
            // length, which may be what is damaged.
            match frame::next_header(rest) {
                Some(next) => at += next,
                None => break,
            }
        }
    }

    /// The numbers of the readable records, ascending.
    pub fn numbers(&self) -> impl DoubleEndedIterator<Item = u64> + '_ {
        self.records.keys().copied()
    }

    /// The payload of record `n`.
    pub fn get(&self, n: u64) -> Option<&[u8]> {
        self.records.get(&n).map(|r| r.payload.as_slice())
    }

    /// The segment holding record `n` and the frame's byte range in it.
    pub fn location(&self, n: u64) -> Option<(PathBuf, Range<u64>)> {
        self.records
            .get(&n)
            .map(|r| (self.segment_path(r.seq), r.at.clone()))
    }

    /// The damaged frames written after the newest readable record numbered
    /// `n` or less (all of them for `None` or if there is none), in the
    /// order they were written.
    pub fn damaged_after(&self, n: Option<u64>) -> Vec<Damage> {
        let after = n
            .and_then(|n| self.records.range(..=n).next_back())
            .map(|(_, r)| (r.seq, r.at.start));
        self.damaged
            .iter()
            .filter(|d| after.is_none_or(|a| (d.seq, d.offset) > a))
            .cloned()
            .collect()
    }

    /// Appends record `n` (its `payload` is sealed here) and makes it
    /// durable. On an error what was written of the frame is cut off if the
    /// storage still allows it (a crash can still leave a torn frame, which
    /// readers pass over) and the next append starts a new segment.
    pub fn append(&mut self, storage: &dyn Storage, n: u64, payload: &[u8]) -> io::Result<()> {
        if payload.contains(&0) {
            // A zero byte would read as the segment's unwritten room.
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("record {n} holds a zero byte: a journal record is text"),
            ));
        }
        self.frame.clear();
        self.frame
            .extend_from_slice(frame::header(payload).as_bytes());
        self.frame.extend_from_slice(payload);
        let frame_len = self.frame.len() as u64;
        if self.active.as_ref().is_none_or(|a| {
            // A segment without room (filling it failed) takes records by
            // appending them, up to the record limit.
            a.records >= ROLL_RECORDS || (a.room > 0 && a.records > 0 && a.len + frame_len > a.room)
        }) {
            self.active = None;
            let seq = self.segments.last().map_or(1, |s| s + 1);
            let path = self.segment_path(seq);
            let mut file = storage.open_append(&path, OpenMode::CreateNew)?;
            // The segment is listed from now on, even if what follows fails.
            self.segments.push(seq);
            // Room for the records, written and synced now so that a
            // record's sync changes no metadata. Without it (a full disk)
            // records are appended, and the disk decides.
            let room = SEGMENT_BYTES.max(frame_len);
            let filled = file
                .append(&vec![0; room as usize])
                .and_then(|()| file.sync());
            let room = match filled {
                Ok(()) => room,
                Err(_) => {
                    file.truncate(0)?;
                    0
                }
            };
            storage.sync_dir(&self.dir)?;
            self.active = Some(Active {
                seq,
                file,
                len: 0,
                room,
                records: 0,
            });
        }
        let Some(active) = self.active.as_mut() else {
            return Err(io::Error::other("no segment open"));
        };
        let written = active
            .file
            .write_at(active.len, &self.frame)
            .and_then(|()| active.file.sync());
        if let Err(e) = written {
            // A failed write (a full disk) may have left part of the frame:
            // cut it off while the process can, so that no reader finds a
            // torn frame of an append that was never acknowledged. The next
            // append starts a new segment either way.
            let _ = active
                .file
                .truncate(active.len)
                .and_then(|()| active.file.sync());
            self.active = None;
            return Err(e);
        }
        let len = self.frame.len() as u64;
        self.frames.push((active.seq, active.len, n));
        self.records.insert(
            n,
            Record {
                seq: active.seq,
                at: active.len..active.len + len,
                payload: payload.to_vec(),
            },
        );
        active.len += len;
        active.records += 1;
        Ok(())
    }

    /// Removes the segments (other than the one being appended to) whose
    /// records all come before record `keep_from`, and the damaged frames in
    /// them; returns whether any was removed (the caller syncs the
    /// directory).
    pub fn remove_before(&mut self, storage: &dyn Storage, keep_from: u64) -> io::Result<bool> {
        // The oldest segment holding a record still kept; every segment
        // before it holds nothing kept.
        let first_kept = self
            .records
            .range(keep_from..)
            .map(|(_, r)| r.seq)
            .min()
            .unwrap_or(u64::MAX);
        let active = self.active.as_ref().map(|a| a.seq);
        let doomed: Vec<u64> = self
            .segments
            .iter()
            .copied()
            .filter(|s| *s < first_kept && Some(*s) != active)
            .collect();
        for seq in &doomed {
            storage.remove_file(&self.segment_path(*seq))?;
            self.segments.retain(|s| s != seq);
            self.records.retain(|_, r| r.seq != *seq);
            self.frames.retain(|f| f.0 != *seq);
            self.damaged.retain(|d| d.seq != *seq);
        }
        Ok(!doomed.is_empty())
    }

    /// Drops every record numbered above `n`, on disk too, as if nothing
    /// had been appended after record `n`: each segment is cut at its first
    /// frame numbered above `n` (any frame, not only the newest of its
    /// number), or removed if that is its first. Newer segments go first
    /// and the directory is synced before any older one is cut, so a crash
    /// in between leaves a journal that ends earlier, never one with a hole.
    /// For a journal nobody appends to (a stopped query's).
    pub fn discard_after(&mut self, storage: &dyn Storage, n: u64) -> io::Result<()> {
        if n == u64::MAX {
            return Ok(());
        }
        self.active = None;
        let mut cut: BTreeMap<u64, u64> = BTreeMap::new();
        for &(seq, at, number) in &self.frames {
            if number > n {
                let first = cut.entry(seq).or_insert(at);
                *first = (*first).min(at);
            }
        }
        // `(segment, where its first frame above n starts)`.
        type Cuts = Vec<(u64, u64)>;
        let (gone, shortened): (Cuts, Cuts) = cut.into_iter().partition(|(_, at)| *at == 0);
        for (seq, _) in gone.iter().rev() {
            storage.remove_file(&self.segment_path(*seq))?;
            self.segments.retain(|s| s != seq);
            self.frames.retain(|f| f.0 != *seq);
            self.damaged.retain(|d| d.seq != *seq);
        }
        if !gone.is_empty() {
            storage.sync_dir(&self.dir)?;
        }
        for (seq, at) in shortened.into_iter().rev() {
            let mut file = storage.open_append(&self.segment_path(seq), OpenMode::Existing)?;
            file.truncate(at)?;
            file.sync()?;
            self.frames.retain(|f| f.0 != seq || f.1 < at);
            self.damaged.retain(|d| d.seq != seq || d.offset < at);
        }
        let _ = self.records.split_off(&(n + 1));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{CrashFs, LocalStorage};

    fn number(payload: &[u8]) -> Option<u64> {
        std::str::from_utf8(payload)
            .ok()?
            .split(':')
            .next()?
            .parse()
            .ok()
    }

    fn record(n: u64) -> Vec<u8> {
        format!("{n}:record {n}").into_bytes()
    }

    fn open(dir: &Path) -> Journal {
        Journal::open(&LocalStorage, dir, number).unwrap()
    }

    /// A journal in a new directory holding records `1..=last`.
    fn filled(last: u64) -> (tempfile::TempDir, Journal) {
        let tmp = tempfile::tempdir().unwrap();
        let mut j = open(tmp.path());
        for n in 1..=last {
            j.append(&LocalStorage, n, &record(n)).unwrap();
        }
        (tmp, j)
    }

    #[test]
    fn appended_records_are_read_back_in_a_later_process() {
        let (tmp, j) = filled(600);
        // 600 records: three segments of at most ROLL_RECORDS.
        assert_eq!(j.segments, vec![1, 2, 3]);
        let again = open(tmp.path());
        assert_eq!(
            again.numbers().collect::<Vec<_>>(),
            (1..=600).collect::<Vec<_>>()
        );
        assert_eq!(again.get(417), Some(record(417).as_slice()));
        assert!(again.damaged_after(None).is_empty());
        // A later process appends to a segment of its own.
        let mut later = again;
        later.append(&LocalStorage, 601, &record(601)).unwrap();
        assert_eq!(later.segments, vec![1, 2, 3, 4]);
        let (path, range) = later.location(601).unwrap();
        assert!(path.ends_with("journal-00000004"), "{}", path.display());
        assert_eq!(range.start, 0);
    }

    #[test]
    fn a_damaged_frame_is_skipped_and_named_and_a_torn_tail_ends_the_segment() {
        let (tmp, j) = filled(5);
        let (path, r3) = j.location(3).unwrap();
        let (_, r5) = j.location(5).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        // A flipped payload byte in record 3, and record 5 cut short.
        bytes[r3.end as usize - 2] ^= 1;
        bytes.truncate(r5.end as usize - 3);
        std::fs::write(&path, &bytes).unwrap();
        let j = open(tmp.path());
        assert_eq!(j.numbers().collect::<Vec<_>>(), vec![1, 2, 4]);
        let after_4 = j.damaged_after(Some(4));
        assert_eq!(after_4.len(), 1);
        assert_eq!(after_4[0].offset, r5.start);
        assert!(after_4[0].why.contains("cut short"), "{}", after_4[0].why);
        let all = j.damaged_after(None);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].offset, r3.start);
        assert!(all[0].why.contains("checksum"), "{}", all[0].why);
    }

    #[test]
    fn records_are_written_into_the_segment_s_room_without_growing_it() {
        let (tmp, j) = filled(3);
        let (path, r3) = j.location(3).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), SEGMENT_BYTES);
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes[r3.end as usize..].iter().all(|b| *b == 0));
        let j = open(tmp.path());
        assert_eq!(j.numbers().collect::<Vec<_>>(), vec![1, 2, 3]);
        assert!(j.damaged_after(None).is_empty(), "the room is not damage");
    }

    #[test]
    fn a_segment_whose_room_is_used_up_is_followed_by_a_new_one() {
        let tmp = tempfile::tempdir().unwrap();
        let mut j = open(tmp.path());
        let big = |n: u64| format!("{n}:{}", "x".repeat(40_000)).into_bytes();
        for n in 1..=3 {
            j.append(&LocalStorage, n, &big(n)).unwrap();
        }
        // Two records do not fit in one segment's room: three segments,
        // none grown past its room.
        let segments = j.segments.clone();
        assert_eq!(segments.len(), 3);
        for seq in segments {
            let len = std::fs::metadata(j.segment_path(seq)).unwrap().len();
            assert_eq!(len, SEGMENT_BYTES);
        }
        let j = open(tmp.path());
        assert_eq!(j.numbers().collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(j.get(2), Some(big(2).as_slice()));
    }

    #[test]
    fn an_append_cut_short_in_the_room_is_cut_short_not_damaged() {
        let (tmp, j) = filled(3);
        let (path, r3) = j.location(3).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        // What a crash leaves of record 3's append: its first bytes, then
        // the zeros it was being written over.
        let keep = r3.start as usize + (r3.end - r3.start) as usize / 2;
        bytes[keep..r3.end as usize].fill(0);
        std::fs::write(&path, &bytes).unwrap();
        let j = open(tmp.path());
        assert_eq!(j.numbers().collect::<Vec<_>>(), vec![1, 2]);
        let damage = j.damaged_after(Some(2));
        assert_eq!(damage.len(), 1);
        assert_eq!(damage[0].offset, r3.start);
        assert!(!damage[0].whole, "an interrupted append: {}", damage[0].why);
        // Only the header written: the same.
        bytes[r3.start as usize + 5..r3.end as usize].fill(0);
        std::fs::write(&path, &bytes).unwrap();
        let j = open(tmp.path());
        assert_eq!(j.numbers().collect::<Vec<_>>(), vec![1, 2]);
        assert!(!j.damaged_after(Some(2))[0].whole);
    }

    #[test]
    fn an_append_missing_an_earlier_sector_is_cut_short_not_damaged() {
        let tmp = tempfile::tempdir().unwrap();
        let mut j = open(tmp.path());
        j.append(&LocalStorage, 1, &record(1)).unwrap();
        let long = format!("2:{}", "y".repeat(3000)).into_bytes();
        j.append(&LocalStorage, 2, &long).unwrap();
        let (path, r2) = j.location(2).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        // The disk kept the write's first and last sectors, not a middle one.
        let sector = (r2.start as usize / SECTOR + 2) * SECTOR;
        bytes[sector..sector + SECTOR].fill(0);
        std::fs::write(&path, &bytes).unwrap();
        let j = open(tmp.path());
        assert_eq!(j.numbers().collect::<Vec<_>>(), vec![1]);
        let damage = j.damaged_after(Some(1));
        assert_eq!(damage.len(), 1);
        assert!(!damage[0].whole, "an interrupted append: {}", damage[0].why);
    }

    #[test]
    fn a_last_frame_with_a_damaged_byte_is_whole_damage_even_if_the_byte_is_zero() {
        let (tmp, j) = filled(3);
        let (path, r3) = j.location(3).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[r3.end as usize - 4] = 0;
        std::fs::write(&path, &bytes).unwrap();
        let j = open(tmp.path());
        assert_eq!(j.numbers().collect::<Vec<_>>(), vec![1, 2]);
        let damage = j.damaged_after(Some(2));
        assert_eq!(damage.len(), 1);
        assert!(damage[0].whole, "{}", damage[0].why);
    }

    /// The local file system, on which no append of more than 1 KiB fits.
    #[derive(Debug)]
    struct NearlyFull;

    #[derive(Debug)]
    struct SmallAppends(Box<dyn AppendFile>);

    impl AppendFile for SmallAppends {
        fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
            if bytes.len() > 1024 {
                return Err(io::Error::other("no space left on device"));
            }
            self.0.append(bytes)
        }
        fn sync(&mut self) -> io::Result<()> {
            self.0.sync()
        }
        fn truncate(&mut self, len: u64) -> io::Result<()> {
            self.0.truncate(len)
        }
        fn size(&self) -> io::Result<u64> {
            self.0.size()
        }
        fn write_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
            self.0.write_at(offset, bytes)
        }
    }

    impl Storage for NearlyFull {
        fn write_file(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
            LocalStorage.write_file(path, bytes)
        }
        fn sync_file(&self, path: &Path) -> io::Result<()> {
            LocalStorage.sync_file(path)
        }
        fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
            LocalStorage.rename(from, to)
        }
        fn sync_dir(&self, dir: &Path) -> io::Result<()> {
            LocalStorage.sync_dir(dir)
        }
        fn create_dir(&self, dir: &Path) -> io::Result<()> {
            LocalStorage.create_dir(dir)
        }
        fn exists(&self, path: &Path) -> bool {
            LocalStorage.exists(path)
        }
        fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
            LocalStorage.list(dir)
        }
        fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
            LocalStorage.read(path)
        }
        fn remove_file(&self, path: &Path) -> io::Result<()> {
            LocalStorage.remove_file(path)
        }
        fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
            LocalStorage.remove_dir_all(dir)
        }
        fn open_append(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn AppendFile>> {
            Ok(Box::new(SmallAppends(
                LocalStorage.open_append(path, mode)?,
            )))
        }
    }

    #[test]
    fn a_segment_that_could_not_be_filled_takes_its_records_as_appends() {
        let tmp = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&NearlyFull, tmp.path(), number).unwrap();
        for n in 1..=5 {
            j.append(&NearlyFull, n, &record(n)).unwrap();
        }
        assert_eq!(j.segments, vec![1], "one segment, not one per record");
        let j = open(tmp.path());
        assert_eq!(j.numbers().collect::<Vec<_>>(), vec![1, 2, 3, 4, 5]);
        assert!(j.damaged_after(None).is_empty());
    }

    #[test]
    fn a_damaged_frame_before_others_is_whole_damage_even_with_room_after() {
        let (tmp, j) = filled(3);
        let (path, r2) = j.location(2).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[r2.end as usize - 2] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let j = open(tmp.path());
        assert_eq!(j.numbers().collect::<Vec<_>>(), vec![1, 3]);
        let damage = j.damaged_after(None);
        assert_eq!(damage.len(), 1);
        assert!(damage[0].whole, "{}", damage[0].why);
    }

    #[test]
    fn a_record_holding_a_zero_byte_is_refused() {
        let (tmp, mut j) = filled(1);
        let err = j.append(&LocalStorage, 2, b"2:a\0b").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("zero byte"), "{err}");
        j.append(&LocalStorage, 2, &record(2)).unwrap();
        let j = open(tmp.path());
        assert_eq!(j.numbers().collect::<Vec<_>>(), vec![1, 2]);
    }

    #[test]
    fn a_damaged_header_loses_only_its_own_frame() {
        let (tmp, j) = filled(4);
        let (path, r2) = j.location(2).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[r2.start as usize + 3] = b'X';
        std::fs::write(&path, &bytes).unwrap();
        let j = open(tmp.path());
        assert_eq!(j.numbers().collect::<Vec<_>>(), vec![1, 3, 4]);
        assert_eq!(j.damaged_after(None).len(), 1);
    }

    #[test]
    fn a_damaged_length_does_not_hide_the_records_after_it() {
        let (tmp, j) = filled(4);
        let (path, r2) = j.location(2).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let header_end = r2.start as usize
            + bytes[r2.start as usize..]
                .iter()
                .position(|b| *b == b'\n')
                .unwrap();
        // Record 2's payload is 10 bytes: `len=10` made 90, 00 and 20.
        for digit in [b'9', b'0', b'2'] {
            let mut damaged = bytes.clone();
            damaged[header_end - 2] = digit;
            std::fs::write(&path, &damaged).unwrap();
            let j = open(tmp.path());
            assert_eq!(
                j.numbers().collect::<Vec<_>>(),
                vec![1, 3, 4],
                "digit {digit}"
            );
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_reader() {
        // A length that overflows, and every cut of a real segment.
        let huge = format!("runnel-frame v1 crc32=00000000 len={}\n", u64::MAX);
        assert!(matches!(frame::take(huge.as_bytes()), Taken::Unreadable(_)));
        let (tmp, j) = filled(3);
        let (path, _) = j.location(3).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        for cut in 0..bytes.len() {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let j = open(tmp.path());
            assert!(j.numbers().count() <= 3);
            // Whatever is cut short at the end is a torn append, not damage
            // to a whole frame.
            assert!(j.damaged_after(None).iter().all(|d| !d.whole), "cut {cut}");
        }
    }

    #[test]
    fn discarding_reaches_older_frames_of_a_number_too() {
        let tmp = tempfile::tempdir().unwrap();
        let mut j = open(tmp.path());
        for n in 1..=5 {
            j.append(&LocalStorage, n, &record(n)).unwrap();
        }
        // A later process writes 4 and 5 again, in a segment of its own.
        let mut later = open(tmp.path());
        for n in 4..=6 {
            later.append(&LocalStorage, n, &record(n)).unwrap();
        }
        later.discard_after(&LocalStorage, 3).unwrap();
        let again = open(tmp.path());
        assert_eq!(again.numbers().collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(again.segments, vec![1]);
    }

    #[test]
    fn purging_removes_whole_segments_before_the_oldest_kept_record() {
        let (tmp, mut j) = filled(2 * ROLL_RECORDS as u64 + 10);
        // Keeping from the second segment's middle keeps it whole.
        let keep = ROLL_RECORDS as u64 + 5;
        assert!(j.remove_before(&LocalStorage, keep).unwrap());
        assert_eq!(j.segments, vec![2, 3]);
        assert_eq!(j.numbers().next(), Some(ROLL_RECORDS as u64 + 1));
        // The segment being written is never removed.
        assert!(j.remove_before(&LocalStorage, u64::MAX).unwrap());
        assert_eq!(j.segments, vec![3]);
        let again = open(tmp.path());
        assert_eq!(again.segments, vec![3]);
        assert_eq!(again.numbers().count(), 10);
    }

    #[test]
    fn discarding_cuts_the_journal_after_a_record() {
        let (tmp, mut j) = filled(ROLL_RECORDS as u64 + 20);
        j.discard_after(&LocalStorage, 100).unwrap();
        j.discard_after(&LocalStorage, u64::MAX).unwrap();
        let again = open(tmp.path());
        assert_eq!(
            again.numbers().collect::<Vec<_>>(),
            (1..=100).collect::<Vec<_>>()
        );
        assert_eq!(again.segments, vec![1]);
        assert!(again.damaged_after(None).is_empty());
    }

    #[test]
    fn a_power_loss_keeps_every_synced_record() {
        // Cut the power before each mutating operation of 40 appends in
        // turn: every append that returned is read back, in order, and
        // nothing read back was never appended.
        for k in 1..90 {
            let fs = CrashFs::new(k * 7919 + 1);
            let dir = Path::new("/ckpt/j");
            crate::checkpoint::ensure_dir(&fs, dir).unwrap();
            fs.crash_at(fs.ops() + k);
            let crash_at = k;
            let mut j = Journal::open(&fs, dir, number).unwrap();
            let mut acked = Vec::new();
            for n in 1..=40 {
                if j.append(&fs, n, &record(n)).is_err() {
                    break;
                }
                acked.push(n);
            }
            fs.power_loss();
            let j = Journal::open(&fs, dir, number).unwrap();
            let read: Vec<u64> = j.numbers().collect();
            assert!(
                read.starts_with(&acked) && read.len() <= acked.len() + 1,
                "crash at {crash_at}: acknowledged {acked:?}, read {read:?}"
            );
            for n in &read {
                assert_eq!(j.get(*n), Some(record(*n).as_slice()));
            }
        }
    }
}
