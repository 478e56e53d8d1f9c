//! The Kafka source: a topic read as a stream, like Spark's Kafka source and
//! like the local [`crate::LogSource`].
//!
//! # Rows
//!
//! `key string, value string, topic string, partition bigint, offset bigint,
//! timestamp timestamp`, the [`crate::LogSource`] schema: key and value
//! decoded as UTF-8, lossily (invalid bytes become U+FFFD, counted in the
//! metric `lossyUtf8Records`); a null key or value is a null column;
//! `timestamp` is the record's timestamp (create or log-append time, as the
//! topic says), null if the record has none. A row's ingest time is the
//! moment the source took the record from the client.
//!
//! # Offsets belong to the engine
//!
//! The source assigns every partition of the topic explicitly, each at its
//! own offset (`assign`, never `subscribe`: there is no group rebalancing),
//! and keeps one reader state per partition: the next offset to emit, the
//! next offset expected from the client, the records fetched ahead and
//! whether the client reported the partition's end. Its offset is
//! `{"partitions": {"0": 42, "1": 17, ...}}`, for every partition the offset
//! of the next record to emit, and it is what goes into the epoch manifest
//! (continuous) or the offset log (micro-batch); a restart resumes from the
//! checkpoint, never from offsets stored in the broker. Offsets are
//! committed to the consumer group (`group=NAME`, default
//! `runnel-source-TOPIC`) only in [`Source::commit`], i.e. once they are
//! durable, and only so that lag monitoring works; a failed commit is
//! counted (`commitFailures`) and logged, never fatal.
//!
//! # Continuous mode
//!
//! [`Source::poll`] takes what librdkafka has fetched, without blocking
//! (at most `max_records_per_poll` records per call). librdkafka fetches in
//! its own threads; when its queue turns non-empty it wakes the source's
//! task ([`runnel::SourceContext::waker`]), so a parked task sees a new
//! record at once instead of at its next timer.
//!
//! # Micro-batch mode
//!
//! Kafka's ListOffsets can under-report a partition's end (the test broker
//! does, by thousands of records), so [`Replayable::latest_offset`] does not ask
//! it: it takes what the client has **fetched** so far into per-partition
//! buffers and ends the batch just after the last fetched record of each
//! partition (at most `max_records_per_trigger` records, shared out in
//! proportion to the backlogs, and at most 100,000 buffered). Every offset
//! it returns is thus backed by a record that was actually received; records
//! the client has not fetched yet fall into the next batch, so an
//! under-reporting broker can only delay records, never lose them. (While
//! the client has neither records nor the end of some partition yet, as
//! right after opening, `latest_offset` waits up to 500 ms for them, so an
//! available-now query does not stop before its first fetch came back.)
//! [`Replayable::read_range`] emits exactly the logged range: from the buffers
//! when the source is already there (the normal case), otherwise after
//! re-assigning the partitions at the range's start (a restart re-running a
//! logged batch), fetching until each partition reaches the range's end.
//! A logged range that can no longer be read within `timeout` (records
//! deleted by retention, topic recreated) is an error.
//!
//! # Ending (`until_idle`)
//!
//! With `until_idle`, the stream ends once (1) nothing new arrived for
//! `idle_timeout` (default 1 s) and (2) every partition is at its end: the
//! client reported the partition's end at the current position, or the
//! position is at or past ListOffsets' end. (2) alone is not enough against
//! a broker whose ListOffsets under-reports, hence (1).
//!
//! `starting_offsets=latest` (the default) starts at ListOffsets' end of
//! every partition when the query starts without a checkpoint (so against an
//! under-reporting broker it may start a little before the true end). In
//! micro-batch mode that position is logged as a first, empty batch, as the
//! log source does.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientContext;
use runnel::clock::now_ns;
use runnel::Replayable;
use runnel::{
    EngineError, PollStatus, Result, Row, SchemaRef, Source, SourceContext, SourceOffset,
    SourceOutput, Value,
};

use super::{
    base_config, classify, client_property, error_code, explain, log_line, opts, topic_partitions,
    ClientState, ErrorKind, KafkaAddress,
};
use crate::log::StartingOffsets;
use crate::partitions::share_out;

/// Most records held in the fetch-ahead buffers (micro-batch).
const MAX_BUFFERED: usize = 100_000;

/// Micro-batch: how long `latest_offset` waits for the first fetch of a
/// partition whose end the client has not reported yet.
const CATCH_UP_WAIT: Duration = Duration::from_millis(500);

/// How often a source that waits for something (an idle period, a broker)
/// looks again.
const RECHECK_NS: u64 = 10_000_000;

/// Settings of a [`KafkaSource`]. Build one with
/// [`KafkaSourceOptions::default`] and struct update syntax, or from string
/// pairs with [`KafkaSourceOptions::from_pairs`].
#[derive(Clone, Debug)]
pub struct KafkaSourceOptions {
    /// Consumer group that durable offsets are committed to, for lag
    /// monitoring only (default `runnel-source-TOPIC`).
    pub group: Option<String>,
    /// Where to start without a checkpoint (default
    /// [`StartingOffsets::Latest`]).
    pub starting_offsets: StartingOffsets,
    /// End the stream once every partition is read to its end and nothing
    /// new arrived for [`KafkaSourceOptions::idle_timeout`] (default `false`).
    pub until_idle: bool,
    /// With `until_idle`: how long nothing new must arrive (default 1 s).
    pub idle_timeout: Duration,
    /// Micro-batch: at most this many records per batch (default: what has
    /// been fetched, at most 100,000). Spark's `maxOffsetsPerTrigger`.
    pub max_records_per_trigger: Option<u64>,
    /// Continuous: at most this many records per poll (default 512).
    pub max_records_per_poll: usize,
    /// Whether reading from an offset that is no longer in a partition is
    /// an error (default `true`); if `false`, reading continues from the
    /// partition's earliest record, with a warning.
    pub fail_on_data_loss: bool,
    /// How long the broker may be unreachable, and a logged range may take
    /// to fetch, before the query fails (default 10 s).
    pub timeout: Duration,
    /// librdkafka properties (`kafka.PROPERTY=value` options).
    pub client: Vec<(String, String)>,
}

impl Default for KafkaSourceOptions {
    fn default() -> Self {
        KafkaSourceOptions {
            group: None,
            starting_offsets: StartingOffsets::Latest,
            until_idle: false,
            idle_timeout: Duration::from_secs(1),
            max_records_per_trigger: None,
            max_records_per_poll: 512,
            fail_on_data_loss: true,
            timeout: Duration::from_secs(10),
            client: Vec::new(),
        }
    }
}

/// The option keys [`KafkaSourceOptions::from_pairs`] accepts, with the form
/// of their values. Keys are matched ignoring case, `_`, `-` and `.`
/// (Spark's `startingOffsets`, `maxOffsetsPerTrigger`, `failOnDataLoss`
/// work too), except `kafka.PROPERTY`, which is passed to librdkafka.
pub const KAFKA_SOURCE_OPTION_KEYS: &[(&str, &str)] = &[
    ("group", "a consumer group name (alias: group_id)"),
    ("starting_offsets", "earliest|latest"),
    ("until_idle", "true|false"),
    ("idle_timeout", "a duration: 1s, 300ms"),
    (
        "max_records_per_trigger",
        "a count (alias: max_offsets_per_trigger)",
    ),
    ("max_records_per_poll", "a count"),
    ("fail_on_data_loss", "true|false"),
    ("timeout", "a duration: 10s"),
    ("kafka.PROPERTY", "any librdkafka consumer property"),
];

const WHAT: &str = "kafka source";

impl KafkaSourceOptions {
    /// Options from `(key, value)` pairs over the defaults; see
    /// [`KAFKA_SOURCE_OPTION_KEYS`]. An unknown key is an error that names it
    /// and lists the valid ones; a malformed value is an error naming key
    /// and value.
    pub fn from_pairs<I, K, V>(pairs: I) -> Result<KafkaSourceOptions>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut o = KafkaSourceOptions::default();
        for (key, value) in pairs {
            let (key, v) = (key.as_ref(), value.as_ref());
            if let Some(prop) = client_property(key, v)? {
                o.client.push(prop);
                continue;
            }
            match opts::normalise_key(key).as_str() {
                "group" | "groupid" => {
                    let g = v.trim();
                    if g.is_empty() {
                        return Err(opts::err(WHAT, key, v, "a group name"));
                    }
                    o.group = Some(g.to_string());
                }
                "startingoffsets" => {
                    o.starting_offsets = match v.trim().to_ascii_lowercase().as_str() {
                        "earliest" => StartingOffsets::Earliest,
                        "latest" => StartingOffsets::Latest,
                        _ => return Err(opts::err(WHAT, key, v, "earliest or latest")),
                    }
                }
                "untilidle" => o.until_idle = opts::boolean(WHAT, key, v)?,
                "idletimeout" => {
                    o.idle_timeout = Duration::from_micros(opts::duration_us(WHAT, key, v)?)
                }
                "maxrecordspertrigger" | "maxoffsetspertrigger" => {
                    o.max_records_per_trigger = Some(opts::count(WHAT, key, v)?)
                }
                "maxrecordsperpoll" => {
                    o.max_records_per_poll = usize::try_from(opts::count(WHAT, key, v)?)
                        .map_err(|_| opts::err(WHAT, key, v, "a smaller count"))?
                }
                "failondataloss" => o.fail_on_data_loss = opts::boolean(WHAT, key, v)?,
                "timeout" => {
                    let us = opts::duration_us(WHAT, key, v)?;
                    if us == 0 {
                        return Err(opts::err(WHAT, key, v, "a positive duration"));
                    }
                    o.timeout = Duration::from_micros(us)
                }
                _ => {
                    let valid: Vec<&str> =
                        KAFKA_SOURCE_OPTION_KEYS.iter().map(|(k, _)| *k).collect();
                    return Err(EngineError::Plan(format!(
                        "unknown kafka source option '{key}'; valid options: {}",
                        valid.join(", ")
                    )));
                }
            }
        }
        Ok(o)
    }
}

/// The client context: routes logs, records errors reported outside of
/// polls, counts failed offset commits.
struct SourceCtx {
    state: Arc<ClientState>,
    commit_failures: Arc<AtomicU64>,
}

impl ClientContext for SourceCtx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_line(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        match error_code(&error) {
            Some(code) => self.state.record(WHAT, code, reason),
            None => tracing::warn!("{WHAT}: {error}: {reason}"),
        }
    }
}

impl ConsumerContext for SourceCtx {
    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(e) = result {
            self.commit_failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("{WHAT}: committing offsets to the consumer group failed: {e}");
        }
    }
}

/// A record fetched ahead of the batch that will read it.
struct Buffered {
    offset: i64,
    row: Row,
    ingest_ns: u64,
}

struct Conn {
    consumer: BaseConsumer<SourceCtx>,
    /// Set by librdkafka when its queue turns non-empty.
    pending: Arc<AtomicBool>,
}

/// What one poll of the client gave.
// Not boxed: a row is moved straight on, boxing would allocate per record.
#[allow(clippy::large_enum_variant)]
enum Polled {
    /// A record of partition `.0` at offset `.1`.
    Record(usize, i64, Row),
    /// An event that was handled (end of partition, a transient error).
    Event,
    /// Nothing there.
    Empty,
}

/// A Kafka topic read as a stream (see the module docs).
pub struct KafkaSource {
    address: KafkaAddress,
    options: KafkaSourceOptions,
    topic_value: Value,
    conn: Option<Conn>,
    state: Arc<ClientState>,
    commit_failures: Arc<AtomicU64>,
    /// Next offset to emit, per partition.
    positions: Vec<i64>,
    /// Next offset expected from the client, per partition.
    fetched: Vec<i64>,
    /// Fetched but not emitted records, per partition: offsets in
    /// `[positions, fetched)`.
    buffers: Vec<VecDeque<Buffered>>,
    buffered: usize,
    /// The client reported the end of the partition at `fetched`.
    eof: Vec<bool>,
    /// Micro-batch with `latest` and no checkpoint: the starting position
    /// still has to be logged as an empty first batch.
    anchor_pending: bool,
    /// When the last record arrived (or the source opened).
    last_data_ns: u64,
    exhausted: bool,
    lossy_utf8: u64,
    stale_skipped: u64,
}

fn source_err(address: &KafkaAddress, e: impl std::fmt::Display) -> EngineError {
    EngineError::Source(format!("kafka {address}: {e}"))
}

/// Decodes key or value bytes (lossy UTF-8), noting a lossy decode.
#[inline]
fn text_value(bytes: Option<&[u8]>, lossy: &mut bool) -> Value {
    match bytes {
        None => Value::Null,
        Some(b) => match String::from_utf8_lossy(b) {
            Cow::Borrowed(s) => Value::str(s),
            Cow::Owned(s) => {
                *lossy = true;
                Value::str(&s)
            }
        },
    }
}

#[inline]
fn message_row(msg: &BorrowedMessage<'_>, topic: &Value, lossy: &mut u64) -> Row {
    let mut row = Row::new();
    let mut was_lossy = false;
    row.push(text_value(msg.key(), &mut was_lossy));
    row.push(text_value(msg.payload(), &mut was_lossy));
    *lossy += u64::from(was_lossy);
    row.push(topic.clone());
    row.push(Value::Int64(i64::from(msg.partition())));
    row.push(Value::Int64(msg.offset()));
    row.push(match msg.timestamp().to_millis() {
        Some(ms) => Value::Timestamp(ms.saturating_mul(1000)),
        None => Value::Null,
    });
    row
}

impl KafkaSource {
    /// A source reading `address` (`HOST:PORT/TOPIC`). Nothing is contacted
    /// before [`Source::open`].
    pub fn new(address: &str, options: KafkaSourceOptions) -> Result<KafkaSource> {
        let address = KafkaAddress::parse(address)?;
        Ok(KafkaSource {
            topic_value: Value::str(&address.topic),
            address,
            options,
            conn: None,
            state: Arc::new(ClientState::default()),
            commit_failures: Arc::new(AtomicU64::new(0)),
            positions: Vec::new(),
            fetched: Vec::new(),
            buffers: Vec::new(),
            buffered: 0,
            eof: Vec::new(),
            anchor_pending: false,
            last_data_ns: 0,
            exhausted: false,
            lossy_utf8: 0,
            stale_skipped: 0,
        })
    }

    /// The schema: `key string, value string, topic string, partition
    /// bigint, offset bigint, timestamp timestamp` (the log source's).
    pub fn output_schema() -> SchemaRef {
        crate::LogSource::output_schema()
    }

    /// Where the source reads.
    pub fn address(&self) -> &KafkaAddress {
        &self.address
    }

    /// The options.
    pub fn options(&self) -> &KafkaSourceOptions {
        &self.options
    }

    fn group(&self) -> String {
        self.options
            .group
            .clone()
            .unwrap_or_else(|| format!("runnel-source-{}", self.address.topic))
    }

    fn err(&self, e: impl std::fmt::Display) -> EngineError {
        source_err(&self.address, e)
    }

    fn conn(&self) -> Result<&Conn> {
        self.conn
            .as_ref()
            .ok_or_else(|| self.err("the source was used before open"))
    }

    fn offset_of(positions: &[i64]) -> SourceOffset {
        // Positions are next offsets to read, never negative.
        SourceOffset::from_positions(positions.iter().map(|&o| o.max(0) as u64))
    }

    /// The per-partition positions of an offset this source wrote; partitions
    /// it does not name take `default`.
    fn parse_offset(&self, offset: &SourceOffset, default: &[i64]) -> Result<Vec<i64>> {
        let default: Vec<u64> = default.iter().map(|&o| o.max(0) as u64).collect();
        let positions = offset
            .positions(&default)
            .map_err(|e| self.err(format!("cannot resume: {e}")))?;
        positions
            .into_iter()
            .map(|o| {
                i64::try_from(o)
                    .map_err(|_| self.err(format!("offset {offset}: {o} is out of range")))
            })
            .collect()
    }

    fn config(&self) -> ClientConfig {
        let mut c = base_config(&self.address, self.options.timeout);
        c.set("group.id", self.group())
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set(
                "auto.offset.reset",
                if self.options.fail_on_data_loss {
                    "error"
                } else {
                    "earliest"
                },
            )
            // Latency first: the broker answers a fetch as soon as one
            // byte is there, and an empty fetch is repeated after at most
            // 10 ms (brokers that do not wake parked fetches on new data
            // would otherwise add up to 500 ms).
            .set("fetch.wait.max.ms", "10")
            .set("fetch.min.bytes", "1")
            .set("fetch.error.backoff.ms", "50");
        for (k, v) in &self.options.client {
            c.set(k, v);
        }
        c
    }

    /// ListOffsets' (low, high) of every partition.
    fn watermarks(&self, conn: &Conn) -> Result<Vec<(i64, i64)>> {
        (0..self.positions.len())
            .map(|p| {
                conn.consumer
                    .fetch_watermarks(&self.address.topic, p as i32, self.options.timeout)
                    .map_err(|e| self.err(format!("cannot read the offsets of partition {p}: {e}")))
            })
            .collect()
    }

    /// Records behind the end of each partition, summed: the client's last
    /// known high watermarks (updated with every fetch, read without a
    /// request) minus the next offsets to emit; `None` until every
    /// partition's end is known.
    fn offsets_behind_latest(&self) -> Option<u64> {
        let conn = self.conn.as_ref()?;
        let topic = std::ffi::CString::new(self.address.topic.as_str()).ok()?;
        let client = conn.consumer.client().native_ptr();
        let mut behind = 0u64;
        for (p, pos) in self.positions.iter().enumerate() {
            let (mut low, mut high) = (-1i64, -1i64);
            // SAFETY: `client` is the live handle `conn.consumer` owns (it
            // outlives this call, which borrows `conn`); `topic` is a
            // NUL-terminated string alive for the call; `low` and `high`
            // are valid for writes. The call only reads the client's cache
            // under its own lock.
            let err = unsafe {
                rdkafka::bindings::rd_kafka_get_watermark_offsets(
                    client,
                    topic.as_ptr(),
                    p as i32,
                    &mut low,
                    &mut high,
                )
            };
            if err != rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || high < 0
            {
                return None;
            }
            behind += u64::try_from(high - pos).unwrap_or(0);
        }
        Some(behind)
    }

    /// (Re)assigns every partition: `at[p]` for the partitions in `moved`,
    /// the fetch position for the others (whose buffers stay valid).
    fn assign(&mut self, moved: &[usize], at: &[i64]) -> Result<()> {
        for &p in moved {
            self.buffered -= self.buffers[p].len();
            self.buffers[p].clear();
            self.positions[p] = at[p];
            self.fetched[p] = at[p];
            self.eof[p] = false;
        }
        let mut tpl = TopicPartitionList::with_capacity(self.fetched.len());
        for (p, &o) in self.fetched.iter().enumerate() {
            tpl.add_partition_offset(&self.address.topic, p as i32, Offset::Offset(o))
                .map_err(|e| self.err(format!("partition {p} at offset {o}: {e}")))?;
        }
        self.conn()?
            .consumer
            .assign(&tpl)
            .map_err(|e| self.err(format!("cannot assign the partitions: {e}")))
    }

    /// Handles a client error: fatal ones stop the query.
    fn on_error(&mut self, e: KafkaError) -> Result<()> {
        let code = match &e {
            KafkaError::MessageConsumptionFatal(code) => {
                return Err(self.err(format!(
                    "fatal client error: {}",
                    explain(*code, &self.address.topic)
                )))
            }
            other => error_code(other),
        };
        match code {
            Some(code) if classify(code) == ErrorKind::Fatal => {
                Err(self.err(explain(code, &self.address.topic)))
            }
            Some(code) => {
                self.state.record(WHAT, code, "");
                Ok(())
            }
            None => {
                self.state.transient.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("{WHAT} {}: {e}", self.address);
                Ok(())
            }
        }
    }

    /// Fails once every broker has been down for longer than the timeout
    /// (and a metadata request confirms it); also surfaces fatal errors
    /// reported through callbacks.
    fn check_health(&mut self) -> Result<()> {
        if let Some(f) = self.state.take_fatal() {
            return Err(self.err(f));
        }
        if let Some(down) = self.state.down_for() {
            if down >= self.options.timeout {
                let probe = Duration::from_secs(2).min(self.options.timeout);
                let conn = self.conn()?;
                match topic_partitions(conn.consumer.client(), &self.address, probe) {
                    Ok(_) => self.state.mark_up(),
                    Err(e) => {
                        return Err(self.err(format!(
                            "lost the Kafka broker(s) for more than {:?} (last error: {}); {e}",
                            self.options.timeout,
                            self.state.last_error()
                        )))
                    }
                }
            }
        }
        Ok(())
    }

    /// One look at the client's queue, waiting up to `timeout`.
    fn poll_one(&mut self, timeout: Duration) -> Result<Polled> {
        let n = self.positions.len();
        let Some(conn) = self.conn.as_ref() else {
            return Err(self.err("the source was used before open"));
        };
        let res = match conn.consumer.poll(timeout) {
            None => return Ok(Polled::Empty),
            Some(Ok(msg)) => {
                let p = msg.partition();
                let off = msg.offset();
                if p < 0 || p as usize >= n || off < self.fetched[p as usize] {
                    // A record from before a re-assignment.
                    self.stale_skipped += 1;
                    return Ok(Polled::Event);
                }
                let p = p as usize;
                let row = message_row(&msg, &self.topic_value, &mut self.lossy_utf8);
                self.fetched[p] = off + 1;
                self.eof[p] = false;
                Polled::Record(p, off, row)
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                if p >= 0 && (p as usize) < n {
                    self.eof[p as usize] = true;
                }
                return Ok(Polled::Event);
            }
            Some(Err(e)) => {
                self.on_error(e)?;
                return Ok(Polled::Event);
            }
        };
        self.state.mark_up();
        Ok(res)
    }

    /// Takes what the client has fetched into the buffers (no waiting).
    fn drain(&mut self) -> Result<()> {
        let now = now_ns();
        while self.buffered < MAX_BUFFERED {
            match self.poll_one(Duration::ZERO)? {
                Polled::Record(p, offset, row) => {
                    self.buffers[p].push_back(Buffered {
                        offset,
                        row,
                        ingest_ns: now,
                    });
                    self.buffered += 1;
                    self.last_data_ns = now;
                }
                Polled::Event => {}
                Polled::Empty => break,
            }
        }
        Ok(())
    }

    /// Whether every partition is at its end and nothing arrived for the
    /// idle timeout (see the module docs).
    fn idle_end_reached(&self) -> bool {
        if self.buffered > 0 || self.anchor_pending {
            return false;
        }
        let quiet = now_ns().saturating_sub(self.last_data_ns)
            >= self.options.idle_timeout.as_nanos() as u64;
        if !quiet {
            return false;
        }
        if self.eof.iter().all(|e| *e) {
            return true;
        }
        let Some(conn) = self.conn.as_ref() else {
            return false;
        };
        match self.watermarks(conn) {
            Ok(w) => w
                .iter()
                .zip(self.positions.iter().zip(&self.eof))
                .all(|((_, high), (pos, eof))| *eof || pos >= high),
            Err(e) => {
                tracing::debug!("{e}");
                false
            }
        }
    }

    /// Emits buffered records of partition `p` with offsets below `to`.
    fn emit_buffered(&mut self, p: usize, to: i64, out: &mut dyn SourceOutput) -> Result<()> {
        while let Some(front) = self.buffers[p].front() {
            if front.offset >= to {
                break;
            }
            let b = self.buffers[p].pop_front().expect("front exists");
            self.buffered -= 1;
            self.positions[p] = b.offset + 1;
            out.emit(b.row, b.ingest_ns)?;
        }
        Ok(())
    }
}

/// Closes a consumer on a thread of its own: librdkafka's consumer close
/// waits for the group coordinator, up to the session timeout (45 s) when
/// the broker is gone, and a query that failed because of that must not
/// wait for it.
fn close_in_background(conn: Option<Conn>) {
    if let Some(conn) = conn {
        let spawned = std::thread::Builder::new()
            .name("runnel-kafka-close".into())
            .spawn(move || drop(conn));
        if let Err(e) = spawned {
            tracing::warn!("{WHAT}: cannot start a thread to close the consumer: {e}");
        }
    }
}

impl Drop for KafkaSource {
    fn drop(&mut self) {
        close_in_background(self.conn.take());
    }
}

impl Source for KafkaSource {
    fn describe(&self) -> String {
        format!("KafkaSource[{}]", self.address)
    }

    fn schema(&self) -> SchemaRef {
        Self::output_schema()
    }

    fn open(&mut self, ctx: &SourceContext, start: Option<&SourceOffset>) -> Result<()> {
        close_in_background(self.conn.take());
        self.state = Arc::new(ClientState::default());
        let context = SourceCtx {
            state: self.state.clone(),
            commit_failures: self.commit_failures.clone(),
        };
        let mut consumer: BaseConsumer<SourceCtx> = self
            .config()
            .create_with_context(context)
            .map_err(|e| self.err(format!("cannot create the Kafka consumer: {e}")))?;
        let pending = Arc::new(AtomicBool::new(false));
        {
            let pending = pending.clone();
            let waker = ctx.waker.clone();
            consumer.set_nonempty_callback(move || {
                pending.store(true, Ordering::Release);
                waker.wake_if_sleeping();
            });
        }
        let n = topic_partitions(consumer.client(), &self.address, self.options.timeout)
            .map_err(|e| self.err(e))?;
        let conn = Conn { consumer, pending };
        self.positions = vec![0; n];
        let marks = self.watermarks(&conn)?;
        let initial: Vec<i64> = marks
            .iter()
            .map(|(low, high)| match self.options.starting_offsets {
                StartingOffsets::Earliest => *low,
                StartingOffsets::Latest => *high,
            })
            .collect();
        let positions = match start {
            Some(offset) => self.parse_offset(offset, &initial)?,
            None => initial,
        };
        self.conn = Some(conn);
        self.fetched = positions.clone();
        self.positions = positions;
        self.buffers = (0..n).map(|_| VecDeque::new()).collect();
        self.buffered = 0;
        self.eof = vec![false; n];
        self.anchor_pending =
            start.is_none() && self.options.starting_offsets == StartingOffsets::Latest;
        self.exhausted = false;
        self.assign(&[], &[])?;
        self.last_data_ns = now_ns();
        Ok(())
    }

    fn poll(&mut self, out: &mut dyn SourceOutput) -> Result<PollStatus> {
        if self.exhausted {
            return Ok(PollStatus::Exhausted);
        }
        self.conn()?.pending.store(false, Ordering::Release);
        let budget = self.options.max_records_per_poll.max(1);
        let mut emitted = 0;
        // Records fetched ahead (only if micro-batch calls came first).
        if self.buffered > 0 {
            for p in 0..self.buffers.len() {
                let before = self.buffered;
                self.emit_buffered(p, i64::MAX, out)?;
                emitted += before - self.buffered;
            }
        }
        let mut last_ns = 0;
        while emitted < budget {
            match self.poll_one(Duration::ZERO)? {
                Polled::Record(p, offset, row) => {
                    // Each record enters the engine when the client hands it
                    // over, not when this poll began: records later in a
                    // fetched batch must not be charged for the ones before.
                    last_ns = now_ns();
                    self.positions[p] = offset + 1;
                    emitted += 1;
                    out.emit(row, last_ns)?;
                }
                Polled::Event => {}
                Polled::Empty => break,
            }
        }
        if emitted > 0 {
            self.last_data_ns = last_ns;
            return Ok(PollStatus::Emitted(emitted));
        }
        self.check_health()?;
        if self.options.until_idle {
            if self.idle_end_reached() {
                self.exhausted = true;
                return Ok(PollStatus::Exhausted);
            }
            return Ok(PollStatus::IdleUntil(now_ns() + RECHECK_NS));
        }
        if self.state.down_for().is_some() {
            return Ok(PollStatus::IdleUntil(now_ns() + RECHECK_NS));
        }
        Ok(PollStatus::Idle)
    }

    fn offset(&self) -> SourceOffset {
        Self::offset_of(&self.positions)
    }

    fn commit(&mut self, offset: &SourceOffset) -> Result<()> {
        let Some(conn) = self.conn.as_ref() else {
            return Ok(());
        };
        let positions = self.parse_offset(offset, &self.positions)?;
        let mut tpl = TopicPartitionList::with_capacity(positions.len());
        for (p, &o) in positions.iter().enumerate() {
            if tpl
                .add_partition_offset(&self.address.topic, p as i32, Offset::Offset(o))
                .is_err()
            {
                return Ok(());
            }
        }
        if let Err(e) = conn.consumer.commit(&tpl, CommitMode::Async) {
            self.commit_failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                "{WHAT} {}: committing offsets to group '{}' failed: {e}",
                self.address,
                self.group()
            );
        }
        Ok(())
    }

    fn ready_hint(&self) -> bool {
        self.conn
            .as_ref()
            .is_some_and(|c| c.pending.load(Ordering::Acquire))
    }

    fn metrics(&self) -> Vec<(String, u64)> {
        let behind = self
            .offsets_behind_latest()
            .map(|b| ("offsetsBehindLatest".to_string(), b));
        behind
            .into_iter()
            .chain([
                ("lossyUtf8Records".to_string(), self.lossy_utf8),
                (
                    "transientErrors".to_string(),
                    self.state.transient.load(Ordering::Relaxed),
                ),
                (
                    "commitFailures".to_string(),
                    self.commit_failures.load(Ordering::Relaxed),
                ),
                ("staleRecordsSkipped".to_string(), self.stale_skipped),
            ])
            .collect()
    }

    fn as_replayable(&mut self) -> Option<&mut dyn Replayable> {
        Some(self)
    }
}

impl Replayable for KafkaSource {
    fn is_exhausted(&self) -> bool {
        self.exhausted || (self.options.until_idle && self.idle_end_reached())
    }

    fn latest_offset(&mut self) -> Result<SourceOffset> {
        if self.anchor_pending {
            // `latest` without a checkpoint: log the starting position first.
            return Ok(Self::offset_of(&self.positions));
        }
        self.drain()?;
        // Right after opening (or a re-assignment) the client may not have
        // answered its first fetch yet: wait a little for records or for
        // every partition's end, so that an available-now query does not
        // stop before it has seen what is there.
        if self.buffered == 0 && !self.eof.iter().all(|e| *e) {
            let until = Instant::now() + CATCH_UP_WAIT.min(self.options.timeout);
            while self.buffered == 0 && !self.eof.iter().all(|e| *e) && Instant::now() < until {
                let now = now_ns();
                if let Polled::Record(p, offset, row) = self.poll_one(Duration::from_millis(5))? {
                    self.buffers[p].push_back(Buffered {
                        offset,
                        row,
                        ingest_ns: now,
                    });
                    self.buffered += 1;
                    self.last_data_ns = now;
                    self.drain()?;
                }
            }
        }
        self.check_health()?;
        let lags: Vec<u64> = self.buffers.iter().map(|b| b.len() as u64).collect();
        let total: u64 = lags.iter().sum();
        let take = match self.options.max_records_per_trigger {
            Some(cap) if total > cap => share_out(&lags, cap),
            _ => lags,
        };
        let end: Vec<i64> = (0..self.buffers.len())
            .map(|p| match take[p] as usize {
                0 => self.positions[p],
                t => self.buffers[p][t - 1].offset + 1,
            })
            .collect();
        Ok(Self::offset_of(&end))
    }

    fn read_range(
        &mut self,
        start: Option<&SourceOffset>,
        end: &SourceOffset,
        out: &mut dyn SourceOutput,
    ) -> Result<()> {
        let to = self.parse_offset(end, &self.positions.clone())?;
        let from = match start {
            Some(s) => self.parse_offset(s, &to)?,
            // No earlier batch: `earliest` reads from the first records; with
            // `latest` the first batch is the empty anchor batch.
            None => match self.options.starting_offsets {
                StartingOffsets::Earliest => {
                    let conn = self.conn()?;
                    self.watermarks(conn)?.iter().map(|(low, _)| *low).collect()
                }
                StartingOffsets::Latest => to.clone(),
            },
        };
        let n = self.positions.len();
        let mut moved = Vec::new();
        for p in 0..n {
            if from[p] > to[p] {
                return Err(self.err(format!(
                    "partition {p}: batch range {} .. {} runs backwards",
                    from[p], to[p]
                )));
            }
            if from[p] == to[p] || self.positions[p] == from[p] {
                continue;
            }
            // Not where the range starts: skip ahead within what was
            // fetched if the range lies there, else re-read from the broker.
            let covered = from[p] > self.positions[p] && self.fetched[p] >= from[p];
            if covered {
                while self.buffers[p].front().is_some_and(|b| b.offset < from[p]) {
                    self.buffers[p].pop_front();
                    self.buffered -= 1;
                }
                self.positions[p] = from[p];
            } else {
                moved.push(p);
            }
        }
        if !moved.is_empty() {
            tracing::info!(
                "{WHAT} {}: re-reading partitions {moved:?} from the logged batch start",
                self.address
            );
            self.assign(&moved, &from)?;
        }
        let deadline = Instant::now() + self.options.timeout;
        for p in 0..n {
            if from[p] == to[p] {
                continue;
            }
            loop {
                self.emit_buffered(p, to[p], out)?;
                if self.positions[p] >= to[p]
                    || !self.buffers[p].is_empty()
                    || (self.eof[p] && self.fetched[p] >= to[p])
                {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(self.err(format!(
                        "partition {p}: the logged batch needs records up to offset {}, but \
                         reading stopped at {} after {:?} (records deleted by retention, or the \
                         topic was recreated; last client error: {})",
                        to[p] - 1,
                        self.positions[p],
                        self.options.timeout,
                        self.state.last_error()
                    )));
                }
                self.check_health()?;
                let now = now_ns();
                if let Polled::Record(q, offset, row) = self.poll_one(Duration::from_millis(100))? {
                    self.buffers[q].push_back(Buffered {
                        offset,
                        row,
                        ingest_ns: now,
                    });
                    self.buffered += 1;
                    self.last_data_ns = now;
                }
            }
            self.positions[p] = to[p];
        }
        // Partitions with an empty range may have been behind `to` (a
        // first batch after `latest`): move them there too.
        for p in 0..n {
            if self.positions[p] != to[p] {
                let covered = to[p] > self.positions[p] && self.fetched[p] >= to[p];
                if covered {
                    while self.buffers[p].front().is_some_and(|b| b.offset < to[p]) {
                        self.buffers[p].pop_front();
                        self.buffered -= 1;
                    }
                    self.positions[p] = to[p];
                } else {
                    self.assign(&[p], &to)?;
                }
            }
        }
        self.anchor_pending = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_spark_spellings_and_client_properties() {
        let o = KafkaSourceOptions::from_pairs([
            ("startingOffsets", "earliest"),
            ("maxOffsetsPerTrigger", "100"),
            ("until_idle", "true"),
            ("idle_timeout", "250ms"),
            ("group", "lag-watch"),
            ("failOnDataLoss", "false"),
            ("timeout", "3s"),
            ("kafka.fetch.wait.max.ms", "1"),
        ])
        .unwrap();
        assert_eq!(o.starting_offsets, StartingOffsets::Earliest);
        assert_eq!(o.max_records_per_trigger, Some(100));
        assert!(o.until_idle);
        assert_eq!(o.idle_timeout, Duration::from_millis(250));
        assert_eq!(o.group.as_deref(), Some("lag-watch"));
        assert!(!o.fail_on_data_loss);
        assert_eq!(o.timeout, Duration::from_secs(3));
        assert_eq!(
            o.client,
            vec![("fetch.wait.max.ms".to_string(), "1".to_string())]
        );
        let e = KafkaSourceOptions::from_pairs([("bogus", "1")]).unwrap_err();
        assert!(e.to_string().contains("starting_offsets"), "{e}");
        let e = KafkaSourceOptions::from_pairs([("starting_offsets", "middle")]).unwrap_err();
        assert!(e.to_string().contains("earliest or latest"), "{e}");
        assert!(KafkaSourceOptions::from_pairs([("kafka.enable.auto.commit", "true")]).is_err());
    }

    #[test]
    fn offsets_round_trip() {
        let s = KafkaSource::new("127.0.0.1:9/t", KafkaSourceOptions::default()).unwrap();
        let o = KafkaSource::offset_of(&[5, 0, 17]);
        assert_eq!(
            o.to_json(),
            serde_json::json!({"partitions": {"0": 5, "1": 0, "2": 17}})
        );
        assert_eq!(s.parse_offset(&o, &[0, 0, 0]).unwrap(), vec![5, 0, 17]);
        assert!(s.parse_offset(&o, &[0, 0]).is_err());
        let partial = SourceOffset::Partitions([(1, 3)].into());
        assert_eq!(s.parse_offset(&partial, &[9, 9]).unwrap(), vec![9, 3]);
    }
}
