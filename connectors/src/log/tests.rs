//! End-to-end tests of the log module: producers, readers, recovery and
//! inspection against real files in temporary folders.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;

/// A key and a value as passed to `send`.
type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

fn config(segment_bytes: u64) -> ProducerConfig {
    ProducerConfig {
        segment_bytes,
        index_interval_bytes: 256,
        write_buffer_bytes: 1024,
    }
}

fn record(offset: u64, ts: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> Record {
    Record {
        offset,
        timestamp_ms: ts,
        key: key.map(<[u8]>::to_vec),
        value: value.map(<[u8]>::to_vec),
    }
}

fn read_all(topic: &LogTopic, partition: u32) -> Vec<Record> {
    let mut reader = topic.reader(partition).unwrap();
    let mut out = Vec::new();
    while let Some(r) = reader.next_record().unwrap() {
        out.push(r.to_record());
    }
    out
}

fn segment_files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
}

/// Value of the i-th test record: varying length and content.
fn value_of(i: u64) -> Vec<u8> {
    (0..(i * 37 % 180)).map(|j| (i + j) as u8).collect()
}

/// A tracing subscriber collecting formatted events, to check warnings.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<String>>>);

impl Capture {
    fn events(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Fields(String);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                let _ = write!(self.0, " {}={:?}", field.name(), value);
            }
        }
        let mut fields = Fields(event.metadata().level().to_string());
        event.record(&mut fields);
        self.0.lock().unwrap().push(fields.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn round_trip_across_partitions_and_segment_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let topic = LogTopic::create(dir.path(), "events", 3).unwrap();
    let mut producer = topic.producer_with_config(config(4096)).unwrap();
    let mut expected: Vec<Vec<Record>> = vec![Vec::new(); 3];
    let mut round_robin = Vec::new();
    for i in 0..3000u64 {
        let key = (i % 5 != 0).then(|| format!("key-{}", i % 97).into_bytes());
        let value = value_of(i);
        let explicit = (i % 7 == 0).then_some((i % 3) as u32);
        let (p, offset) = producer
            .send(explicit, key.as_deref(), Some(&value), i as i64 * 3)
            .unwrap();
        match (explicit, &key) {
            (Some(e), _) => assert_eq!(p, e),
            (None, Some(k)) => assert_eq!(p, partition_for_key(k, 3)),
            (None, None) => round_robin.push(p),
        }
        let list = &mut expected[p as usize];
        assert_eq!(offset, list.len() as u64);
        list.push(record(offset, i as i64 * 3, key.as_deref(), Some(&value)));
    }
    let counts: Vec<u64> = expected.iter().map(|l| l.len() as u64).collect();
    assert_eq!(producer.end_offsets(), counts);
    let rr: Vec<u32> = (0..round_robin.len() as u32).map(|i| i % 3).collect();
    assert_eq!(round_robin, rr);
    producer.flush().unwrap();

    assert_eq!(topic.end_offsets().unwrap(), counts);
    assert_eq!(topic.start_offsets().unwrap(), vec![0, 0, 0]);
    for p in 0..3 {
        let pdir = topic.path().join(p.to_string());
        assert!(
            segment_files(&pdir, "log").len() >= 5,
            "expected several segments"
        );
        for f in segment_files(&pdir, "log") {
            assert!(fs::metadata(&f).unwrap().len() <= 4096);
        }
        assert_eq!(read_all(&topic, p), expected[p as usize]);

        // The batch path sees the same records.
        let mut reader = topic.reader(p).unwrap();
        let mut batched = Vec::new();
        while reader
            .read_batch(100, |r| batched.push(r.to_record()))
            .unwrap()
            > 0
        {}
        assert_eq!(batched, expected[p as usize]);
        assert_eq!(reader.position(), counts[p as usize]);
    }

    // A reopened topic and producer continue where the log ends.
    drop(producer);
    let topic = LogTopic::open(topic.path()).unwrap();
    let mut producer = topic.producer_with_config(config(4096)).unwrap();
    assert_eq!(producer.end_offsets(), counts);
    assert_eq!(
        producer.send(Some(1), None, None, 0).unwrap(),
        (1, counts[1])
    );
}

#[test]
fn seek_to_arbitrary_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let topic = LogTopic::create(dir.path(), "t", 1).unwrap();
    let mut producer = topic.producer_with_config(config(2048)).unwrap();
    let n = 1000u64;
    let expected: Vec<Record> = (0..n)
        .map(|i| {
            let key = i.to_le_bytes();
            let value = value_of(i);
            producer
                .send(None, Some(&key), Some(&value), i as i64)
                .unwrap();
            record(i, i as i64, Some(&key), Some(&value))
        })
        .collect();
    producer.flush().unwrap();

    let pdir = topic.path().join("0");
    let bases: Vec<u64> = segment_files(&pdir, "log")
        .iter()
        .map(|p| p.file_stem().unwrap().to_str().unwrap().parse().unwrap())
        .collect();
    assert!(bases.len() > 10);
    let mut targets = vec![0, 1, n / 2, n - 1, n];
    for &b in &bases[1..] {
        targets.extend([b - 1, b, b + 1]);
    }
    let mut reader = topic.reader(0).unwrap();
    for &t in &targets {
        reader.seek(t).unwrap();
        assert_eq!(reader.position(), t);
        match reader.next_record().unwrap() {
            Some(r) => assert_eq!(r.to_record(), expected[t as usize], "seek {t}"),
            None => assert_eq!(t, n),
        }
        // Reading on from there works across segment boundaries.
        let mut next = t + 1;
        while next < n.min(t + 20) {
            let r = reader.next_record().unwrap().unwrap();
            assert_eq!(r.to_record(), expected[next as usize]);
            next += 1;
        }
    }
    let mut reader = topic.reader_at(0, 777).unwrap();
    assert_eq!(reader.next_record().unwrap().unwrap().offset, 777);

    // Out of range: beyond the end; the position does not change.
    reader.seek(10).unwrap();
    let err = reader.seek(n + 1).unwrap_err();
    assert!(
        matches!(err, LogError::OffsetOutOfRange { offset, start: 0, end, .. } if offset == n + 1 && end == n),
        "{err}"
    );
    assert_eq!(reader.position(), 10);
    assert!(topic.reader_at(0, n + 5).is_err());
    assert!(topic.reader_at(1, 0).is_err());

    // At the end, new records show up once flushed.
    reader.seek_to_end().unwrap();
    assert_eq!(reader.position(), n);
    assert!(reader.next_record().unwrap().is_none());
    producer.send(None, None, Some(b"late"), 5).unwrap();
    assert!(reader.next_record().unwrap().is_none(), "not flushed yet");
    producer.flush().unwrap();
    let r = reader.next_record().unwrap().unwrap();
    assert_eq!((r.offset, r.value), (n, Some(&b"late"[..])));
}

#[test]
fn seek_works_without_index_and_with_a_garbage_index() {
    let dir = tempfile::tempdir().unwrap();
    let topic = LogTopic::create(dir.path(), "t", 1).unwrap();
    let mut producer = topic.producer_with_config(config(8192)).unwrap();
    for i in 0..500u64 {
        producer.send(None, None, Some(&value_of(i)), 0).unwrap();
    }
    drop(producer);
    let pdir = topic.path().join("0");
    let indexes = segment_files(&pdir, "index");
    fs::remove_file(&indexes[0]).unwrap();
    fs::write(&indexes[1], [0xff; 40]).unwrap();
    fs::write(
        &indexes[2],
        index::encode_all(&[index::IndexEntry {
            rel_offset: 3,
            position: 17,
        }]),
    )
    .unwrap();
    let mut reader = topic.reader(0).unwrap();
    for t in [0, 13, 99, 250, 400, 499, 500] {
        reader.seek(t).unwrap();
        let got = reader.next_record().unwrap().map(|r| r.offset);
        assert_eq!(got, (t < 500).then_some(t));
    }
}

#[test]
fn null_and_empty_keys_and_values() {
    let dir = tempfile::tempdir().unwrap();
    let topic = LogTopic::create(dir.path(), "nulls", 2).unwrap();
    let mut producer = topic.producer().unwrap();
    let cases: [KeyValue<'_>; 6] = [
        (None, None),
        (Some(b""), None),
        (None, Some(b"")),
        (Some(b""), Some(b"")),
        (Some(b"k"), None),
        (None, Some(b"v")),
    ];
    for (i, (k, v)) in cases.iter().enumerate() {
        assert_eq!(
            producer.send(Some(1), *k, *v, -(i as i64)).unwrap(),
            (1, i as u64)
        );
    }
    producer.flush().unwrap();
    let got = read_all(&topic, 1);
    let want: Vec<Record> = cases
        .iter()
        .enumerate()
        .map(|(i, (k, v))| record(i as u64, -(i as i64), *k, *v))
        .collect();
    assert_eq!(got, want);
    assert!(read_all(&topic, 0).is_empty());
}

/// Writes `n` records to partition 0 of a fresh topic, returns the topic and
/// the path of its (single) segment.
fn topic_with_records(dir: &Path, n: u64) -> (LogTopic, PathBuf) {
    let topic = LogTopic::create(dir, "torn", 1).unwrap();
    let mut producer = topic.producer().unwrap();
    for i in 0..n {
        producer
            .send(None, Some(b"key"), Some(&value_of(i + 1)), i as i64)
            .unwrap();
    }
    drop(producer);
    let path = segment::log_path(&topic.path().join("0"), 0);
    (topic, path)
}

fn last_record_len(n: u64) -> u64 {
    (RECORD_OVERHEAD + 3 + value_of(n).len()) as u64
}

#[test]
fn torn_tail_is_truncated_on_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let n = 50;
    let (topic, seg) = topic_with_records(dir.path(), n);
    let full = fs::metadata(&seg).unwrap().len();
    let good = full - last_record_len(n);
    // Crash mid-write: the last record is cut short.
    fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(full - 5)
        .unwrap();

    // Before recovery, readers see the good records and stop at the tear.
    assert_eq!(read_all(&topic, 0).len() as u64, n - 1);
    assert_eq!(topic.end_offsets().unwrap(), vec![n - 1]);

    let capture = Capture::default();
    let mut producer =
        tracing::subscriber::with_default(capture.clone(), || topic.producer()).unwrap();
    let warnings: Vec<String> = capture
        .events()
        .into_iter()
        .filter(|e| e.starts_with("WARN"))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let w = &warnings[0];
    assert!(w.contains(&seg.display().to_string()), "{w}");
    assert!(w.contains(&format!("position={good}")), "{w}");
    assert!(
        w.contains(&format!("dropped_bytes={}", full - 5 - good)),
        "{w}"
    );
    assert_eq!(fs::metadata(&seg).unwrap().len(), good);

    assert_eq!(producer.end_offsets(), vec![n - 1]);
    assert_eq!(
        producer.send(None, None, Some(b"after"), 7).unwrap(),
        (0, n - 1)
    );
    producer.flush().unwrap();
    let all = read_all(&topic, 0);
    assert_eq!(all.len() as u64, n);
    assert!(all.iter().enumerate().all(|(i, r)| r.offset == i as u64));
    assert_eq!(all[n as usize - 1].value.as_deref(), Some(&b"after"[..]));
    assert_eq!(all[n as usize - 2].value, Some(value_of(n - 1)));
}

#[test]
fn corrupt_last_record_is_truncated_on_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let n = 50;
    let (topic, seg) = topic_with_records(dir.path(), n);
    let full = fs::metadata(&seg).unwrap().len();
    let good = full - last_record_len(n);
    let mut bytes = fs::read(&seg).unwrap();
    bytes[full as usize - 3] ^= 0x40;
    fs::write(&seg, &bytes).unwrap();

    // Unrecovered: a damaged last record is the end of the log, not an
    // error; inspect reports it as tail bytes.
    assert_eq!(read_all(&topic, 0).len() as u64, n - 1);
    let info = inspect(topic.path()).unwrap();
    assert_eq!(info.partitions[0].end_offset, n - 1);
    assert_eq!(info.partitions[0].segments[0].tail_bytes, full - good);

    let capture = Capture::default();
    let mut producer =
        tracing::subscriber::with_default(capture.clone(), || topic.producer()).unwrap();
    let events = capture.events();
    assert!(
        events.iter().any(|e| e.starts_with("WARN")
            && e.contains("CRC mismatch")
            && e.contains(&format!("position={good}"))),
        "{events:?}"
    );
    assert_eq!(fs::metadata(&seg).unwrap().len(), good);
    assert_eq!(producer.send(None, None, None, 0).unwrap(), (0, n - 1));
    producer.flush().unwrap();
    assert_eq!(read_all(&topic, 0).len() as u64, n);
    assert_eq!(
        inspect(topic.path()).unwrap().partitions[0].segments[0].tail_bytes,
        0
    );
}

#[test]
fn reader_waiting_at_a_torn_tail_continues_after_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let n = 20;
    let (topic, seg) = topic_with_records(dir.path(), n);
    let full = fs::metadata(&seg).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(full - 1)
        .unwrap();
    let mut reader = topic.reader(0).unwrap();
    for i in 0..n - 1 {
        assert_eq!(reader.next_record().unwrap().unwrap().offset, i);
    }
    assert!(reader.next_record().unwrap().is_none());
    // The reader has buffered the partial record; recovery truncates it and
    // a different record takes its place.
    let mut producer = topic.producer().unwrap();
    producer.send(None, None, Some(b"replacement"), 1).unwrap();
    producer.send(None, None, Some(b"next"), 2).unwrap();
    producer.flush().unwrap();
    let r = reader.next_record().unwrap().unwrap();
    assert_eq!((r.offset, r.value), (n - 1, Some(&b"replacement"[..])));
    let r = reader.next_record().unwrap().unwrap();
    assert_eq!((r.offset, r.value), (n, Some(&b"next"[..])));
    assert!(reader.next_record().unwrap().is_none());
}

#[test]
fn corruption_inside_a_segment_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let topic = LogTopic::create(dir.path(), "bad", 1).unwrap();
    let mut producer = topic.producer_with_config(config(4096)).unwrap();
    for i in 0..300u64 {
        producer.send(None, None, Some(&value_of(i)), 0).unwrap();
    }
    drop(producer);
    let segs = segment_files(&topic.path().join("0"), "log");
    assert!(segs.len() > 3);

    // Corrupt the third record of the first (sealed) segment.
    let first = &segs[0];
    let mut bytes = fs::read(first).unwrap();
    let pos = (2 * RECORD_OVERHEAD + value_of(0).len() + value_of(1).len()) as u64;
    bytes[pos as usize + 20] ^= 1;
    fs::write(first, &bytes).unwrap();

    let mut reader = topic.reader(0).unwrap();
    assert_eq!(reader.next_record().unwrap().unwrap().offset, 0);
    assert_eq!(reader.next_record().unwrap().unwrap().offset, 1);
    let err = reader.next_record().unwrap_err();
    match &err {
        LogError::Corrupt {
            path,
            position,
            reason,
        } => {
            assert_eq!(path, first);
            assert_eq!(*position, pos);
            assert!(reason.contains("CRC"), "{reason}");
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(err.to_string().contains(&first.display().to_string()));
    assert!(err.to_string().contains(&format!("byte {pos}")));
    // Not skipped: retrying reports the same error.
    assert!(reader.next_record().unwrap_err().is_corrupt());
    assert_eq!(reader.position(), 2);
    assert!(inspect(topic.path()).unwrap_err().is_corrupt());

    // Corruption in the middle of the active segment (valid records after
    // it) is an error too, not a torn tail.
    let dir = tempfile::tempdir().unwrap();
    let (topic, active) = topic_with_records(dir.path(), 10);
    let mut bytes = fs::read(&active).unwrap();
    bytes[RECORD_OVERHEAD + 1] ^= 1;
    fs::write(&active, &bytes).unwrap();
    let mut reader = topic.reader(0).unwrap();
    let err = reader.next_record().unwrap_err();
    assert!(
        matches!(&err, LogError::Corrupt { path, position: 0, .. } if *path == active),
        "{err}"
    );
}

#[test]
fn reader_follows_a_concurrent_producer() {
    let dir = tempfile::tempdir().unwrap();
    let topic = LogTopic::create(dir.path(), "live", 2).unwrap();
    let total: u64 = 20_000;
    let readers: Vec<_> = (0..2u32)
        .map(|p| {
            let topic = topic.clone();
            std::thread::spawn(move || {
                let mut reader = topic.reader(p).unwrap();
                let mut next = 0u64;
                let deadline = Instant::now() + Duration::from_secs(60);
                let mut empty_polls = 0u64;
                while next < total / 2 {
                    assert!(Instant::now() < deadline, "reader {p} stuck at {next}");
                    match reader.next_record().unwrap() {
                        Some(r) => {
                            assert_eq!(r.offset, next);
                            let i = next * 2 + u64::from(p);
                            assert_eq!(r.value, Some(&value_of(i)[..]));
                            assert_eq!(r.timestamp_ms, i as i64);
                            next += 1;
                        }
                        None => {
                            empty_polls += 1;
                            std::thread::sleep(Duration::from_micros(50));
                        }
                    }
                }
                assert!(reader.next_record().unwrap().is_none());
                empty_polls
            })
        })
        .collect();
    let mut producer = topic.producer_with_config(config(16 * 1024)).unwrap();
    for i in 0..total {
        producer
            .send(Some((i % 2) as u32), None, Some(&value_of(i)), i as i64)
            .unwrap();
        if i % 64 == 0 {
            producer.flush().unwrap();
        }
    }
    producer.flush().unwrap();
    let polls: Vec<u64> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    // The readers really waited for the producer at the end of the log.
    assert!(polls.iter().all(|&empty| empty > 0), "{polls:?}");
    assert!(segment_files(&topic.path().join("0"), "log").len() > 10);
}

#[test]
fn index_is_rebuilt_when_missing_or_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let topic = LogTopic::create(dir.path(), "idx", 1).unwrap();
    let cfg = config(4096);
    let mut producer = topic.producer_with_config(cfg.clone()).unwrap();
    for i in 0..400u64 {
        producer.send(None, None, Some(&value_of(i)), 0).unwrap();
    }
    drop(producer);
    let pdir = topic.path().join("0");
    let indexes = segment_files(&pdir, "index");
    assert!(indexes.len() > 3);
    let originals: Vec<Vec<u8>> = indexes.iter().map(|p| fs::read(p).unwrap()).collect();
    assert!(originals.iter().filter(|b| !b.is_empty()).count() > 3);

    for p in &indexes {
        fs::remove_file(p).unwrap();
    }
    let capture = Capture::default();
    let producer = tracing::subscriber::with_default(capture.clone(), || {
        topic.producer_with_config(cfg.clone())
    })
    .unwrap();
    drop(producer);
    let rebuilt: Vec<Vec<u8>> = indexes.iter().map(|p| fs::read(p).unwrap()).collect();
    assert_eq!(rebuilt, originals);
    assert!(capture
        .events()
        .iter()
        .any(|e| e.contains("rebuilding index")));

    // Damaged: partial trailing entry, and a last entry pointing nowhere.
    let mut partial = originals[0].clone();
    partial.extend_from_slice(&[1, 2, 3]);
    fs::write(&indexes[0], partial).unwrap();
    let mut wrong = originals[1].clone();
    let len = wrong.len();
    wrong[len - 4..].copy_from_slice(&7u32.to_le_bytes());
    fs::write(&indexes[1], wrong).unwrap();
    let last = indexes.len() - 1;
    fs::write(&indexes[last], [0xff; 12]).unwrap();
    drop(topic.producer_with_config(cfg).unwrap());
    let rebuilt: Vec<Vec<u8>> = indexes.iter().map(|p| fs::read(p).unwrap()).collect();
    assert_eq!(rebuilt, originals);
}

#[test]
fn lock_prevents_a_second_producer() {
    let dir = tempfile::tempdir().unwrap();
    let topic = LogTopic::create(dir.path(), "locked", 2).unwrap();
    let first = topic.producer().unwrap();
    let again = LogTopic::open(topic.path()).unwrap();
    let err = again.producer().unwrap_err();
    match &err {
        LogError::Locked { path, holder } => {
            assert_eq!(path, &topic.path().join(".lock"));
            assert_eq!(
                holder.as_deref(),
                Some(&*format!("pid {}", std::process::id()))
            );
        }
        other => panic!("unexpected error {other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(".lock") && msg.contains("only one producer"),
        "{msg}"
    );
    // Reading is fine while a producer is live.
    assert_eq!(again.end_offsets().unwrap(), vec![0, 0]);
    drop(first);
    let mut second = again.producer().unwrap();
    second.send(None, None, Some(b"x"), 0).unwrap();
}

#[test]
fn inspect_reports_segments_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let topic = LogTopic::create(dir.path(), "inspected", 3).unwrap();
    let mut producer = topic.producer_with_config(config(2048)).unwrap();
    let per_partition = [0u64, 10, 500];
    for (p, &count) in per_partition.iter().enumerate() {
        for i in 0..count {
            producer
                .send(Some(p as u32), Some(b"k"), Some(&value_of(i)), 0)
                .unwrap();
        }
    }
    producer.flush().unwrap();
    let info = inspect(topic.path()).unwrap();
    assert_eq!(info.name, "inspected");
    assert_eq!(info.format_version, FORMAT_VERSION);
    assert_eq!(info.partitions.len(), 3);
    assert_eq!(info.total_records(), 510);
    for (p, &count) in per_partition.iter().enumerate() {
        let part = &info.partitions[p];
        let pdir = topic.path().join(p.to_string());
        let files = segment_files(&pdir, "log");
        assert_eq!(part.partition, p as u32);
        assert_eq!(part.record_count(), count);
        assert_eq!((part.start_offset, part.end_offset), (0, count));
        assert_eq!(part.segments.len(), files.len());
        let sizes: u64 = files.iter().map(|f| fs::metadata(f).unwrap().len()).sum();
        assert_eq!(part.total_bytes, sizes);
        let mut next = 0;
        for s in &part.segments {
            assert_eq!(s.base_offset, next);
            assert_eq!(s.tail_bytes, 0);
            assert!(s.size_bytes <= 2048);
            next += s.record_count;
        }
        assert_eq!(next, count);
    }
    assert!(info.partitions[2].segments.len() > 10);
    let text = info.to_string();
    assert!(text.contains("topic inspected"), "{text}");
    assert!(text.contains("510 records"), "{text}");
    assert!(text.contains("segment 00000000000000000000"), "{text}");
    assert_eq!(
        text.lines().count(),
        2 + 3
            + info
                .partitions
                .iter()
                .map(|p| p.segments.len())
                .sum::<usize>()
    );
}

#[test]
fn topic_create_open_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t");
    assert!(matches!(
        LogTopic::open(&path),
        Err(LogError::NotFound { .. })
    ));
    let created = LogTopic::create(dir.path(), "t", 4).unwrap();
    assert_eq!((created.name(), created.partitions()), ("t", 4));
    assert!(matches!(
        LogTopic::create(dir.path(), "t", 4),
        Err(LogError::AlreadyExists { .. })
    ));
    assert_eq!(LogTopic::open(&path).unwrap(), created);
    assert_eq!(LogTopic::open_or_create(&path, 4).unwrap(), created);
    assert!(LogTopic::open_or_create(&path, 2).is_err());
    let other = LogTopic::open_or_create(dir.path().join("u"), 2).unwrap();
    assert_eq!(other.partitions(), 2);
    for bad in ["", ".", "..", "a/b"] {
        assert!(
            matches!(
                LogTopic::create(dir.path(), bad, 1),
                Err(LogError::InvalidArgument { .. })
            ),
            "{bad:?}"
        );
    }
    assert!(LogTopic::create(dir.path(), "zero", 0).is_err());

    let meta = fs::read_to_string(path.join("topic.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&meta).unwrap();
    assert_eq!(json["format_version"], 1);
    assert_eq!(json["partitions"], 4);
    fs::write(
        path.join("topic.json"),
        r#"{"format_version": 99, "partitions": 4}"#,
    )
    .unwrap();
    let err = LogTopic::open(&path).unwrap_err();
    assert!(
        matches!(err, LogError::InvalidTopic { .. }) && err.to_string().contains("99"),
        "{err}"
    );

    // A fresh topic reads as empty and a reader at the end picks up data.
    let mut reader = other.reader(1).unwrap();
    assert!(reader.next_record().unwrap().is_none());
    let mut producer = other.producer().unwrap();
    producer.send(Some(1), None, Some(b"v"), 0).unwrap();
    producer.flush().unwrap();
    assert_eq!(reader.next_record().unwrap().unwrap().offset, 0);
}

#[test]
fn producer_rejects_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let topic = LogTopic::create(dir.path(), "t", 2).unwrap();
    let bad = ProducerConfig {
        segment_bytes: 0,
        ..ProducerConfig::default()
    };
    assert!(matches!(
        topic.producer_with_config(bad),
        Err(LogError::InvalidArgument { .. })
    ));
    let mut producer = topic.producer_with_config(config(1024)).unwrap();
    let big = vec![0u8; 1024];
    assert!(matches!(
        producer.send(None, None, Some(&big), 0),
        Err(LogError::InvalidArgument { .. })
    ));
    assert!(matches!(
        producer.send(Some(2), None, None, 0),
        Err(LogError::InvalidArgument { .. })
    ));
    // A record exactly filling a segment is fine, and the producer still works.
    let fits = vec![1u8; 1024 - RECORD_OVERHEAD];
    assert_eq!(
        producer.send(Some(0), None, Some(&fits), 0).unwrap(),
        (0, 0)
    );
    assert_eq!(
        producer.send(Some(0), None, Some(&fits), 0).unwrap(),
        (0, 1)
    );
    producer.sync().unwrap();
    assert_eq!(read_all(&topic, 0).len(), 2);
    assert_eq!(segment_files(&topic.path().join("0"), "log").len(), 2);
}

#[test]
fn key_partitioning_is_stable() {
    assert_eq!(partition_for_key(b"hello", 1000), 723);
    assert_eq!(partition_for_key(b"", 3), 1);
    assert_eq!(partition_for_key(b"user-42", 8), 3);
}

#[test]
fn a_tailing_reader_follows_rolls_at_its_own_pace_and_misses_nothing() {
    fn send_one(producer: &mut LogProducer, sent: &mut u64) {
        let value = value_of(*sent);
        producer.send(Some(0), None, Some(&value), 0).unwrap();
        producer.flush().unwrap();
        *sent += 1;
    }
    fn drain(reader: &mut PartitionReader) -> Vec<u64> {
        let mut got = Vec::new();
        while let Some(r) = reader.next_record().unwrap() {
            got.push(r.offset);
        }
        got
    }
    let dir = tempfile::tempdir().unwrap();
    let topic = LogTopic::create(dir.path(), "events", 1).unwrap();
    let mut producer = topic.producer_with_config(config(1024)).unwrap();
    let every = Duration::from_millis(300);
    let mut tail = topic.reader(0).unwrap();
    tail.look_for_rolls_every(every);
    let mut eager = topic.reader(0).unwrap();
    let mut sent = 0u64;
    // One record, read: both readers are at the end of the active segment,
    // and the tailing one has just looked for a next segment.
    send_one(&mut producer, &mut sent);
    assert_eq!(drain(&mut tail), vec![0]);
    let looked = Instant::now();
    assert_eq!(drain(&mut eager), vec![0]);
    // Enough records to roll the segment several times.
    while sent < 60 {
        send_one(&mut producer, &mut sent);
    }
    let pdir = topic.path().join("0");
    assert!(segment_files(&pdir, "log").len() >= 3, "expected rolls");
    // The default reader follows the rolls at once.
    assert_eq!(drain(&mut eager), (1..60).collect::<Vec<_>>());
    // The tailing one reads what grew its segment, then stops at that
    // segment's end until its next look for a roll is due ...
    let first = drain(&mut tail);
    if looked.elapsed() < every {
        assert!(first.len() < 59, "a roll was looked for too early");
    }
    assert!(first.iter().copied().eq(1..1 + first.len() as u64));
    // ... and then misses nothing, in order.
    let mut all = first;
    while all.len() < 59 {
        assert!(
            looked.elapsed() < Duration::from_secs(30),
            "stuck at {all:?}"
        );
        std::thread::sleep(every);
        all.extend(drain(&mut tail));
    }
    assert_eq!(all, (1..60).collect::<Vec<_>>());
}
