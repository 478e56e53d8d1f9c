//! The Kafka sink: a query's result rows produced to a topic, like Spark's
//! Kafka sink and like the local [`crate::LogSink`].
//!
//! # Records
//!
//! One record per result row:
//!
//! * **value**: the `value` column as text if the schema has one (a string
//!   as is, other types in their text form, null as a null value); else the
//!   whole row as a JSON object (`{"col": value, ...}`, null columns
//!   omitted), as the log sink writes it.
//! * **key**: the `key` column as text if the schema has one (null: a null
//!   key), else a null key.
//! * **timestamp**: the `timestamp` column (milliseconds) if the schema has
//!   one of type timestamp and it is not null, else the time of the write.
//! * **partition**: chosen by librdkafka's `murmur2_random` partitioner (the
//!   Java client's: a keyed record goes by the murmur2 hash of its key,
//!   records without a key are spread).
//!
//! The topic must exist: [`Sink::open`] checks it with a metadata request
//! and fails with a clear message if it does not (or if no broker answers
//! within `timeout`).
//!
//! # Guarantees: at-least-once
//!
//! The producer is idempotent (`enable.idempotence=true`, `acks=all`), so
//! librdkafka's own retries never duplicate or reorder a record within a
//! partition. `commit(e)` waits until **every** record written so far has
//! its delivery report (acknowledged by all in-sync replicas) and returns
//! only then; the engine records epoch or batch `e` as durable after that.
//! A record whose delivery failed with a transient error is produced again,
//! at most `max_retries` times (counted: `deliveryRetries`); a record
//! rejected for good (too large, not authorized, unknown topic), a flush
//! that does not complete within `timeout`, or a fatal producer error fails
//! the commit, and so the query, with the cause.
//!
//! Records written after the last durable epoch or batch are not taken back
//! (Kafka cannot truncate), and a restart writes them again: **duplicates
//! are possible, loss is not**. (Exactly-once output would need Kafka
//! transactions; the test broker this was built against does not isolate
//! aborted records, so they are not used.)
//!
//! `commit` returns `{"epoch": e, "delivered": N, "end_offsets": {"0": o,
//! ...}}` (records acknowledged in this run, and per partition one past the
//! highest acknowledged offset); it is informational: [`Sink::open`] does
//! not need it back.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;
use runnel::schema::column::Column;
use runnel::{EngineError, Result, Row, Sink, SinkContext};

use crate::record::RecordLayout;

use super::{
    base_config, classify, client_property, error_code, explain, log_line, opts, topic_partitions,
    ClientState, ErrorKind, KafkaAddress,
};

/// Settings of a [`KafkaSink`].
#[derive(Clone, Debug)]
pub struct KafkaSinkOptions {
    /// How long a commit may wait for delivery reports, and the broker may
    /// be unreachable at open (default 30 s). Also librdkafka's
    /// `message.timeout.ms`.
    pub timeout: Duration,
    /// How often a record whose delivery failed with a transient error is
    /// produced again before the query fails (default 3).
    pub max_retries: u32,
    /// librdkafka properties (`kafka.PROPERTY=value` options), e.g.
    /// `linger.ms` (default here: 0, latency first).
    pub client: Vec<(String, String)>,
}

impl Default for KafkaSinkOptions {
    fn default() -> Self {
        KafkaSinkOptions {
            timeout: Duration::from_secs(30),
            max_retries: 3,
            client: Vec::new(),
        }
    }
}

/// The option keys [`KafkaSinkOptions::from_pairs`] accepts.
pub const KAFKA_SINK_OPTION_KEYS: &[(&str, &str)] = &[
    ("timeout", "a duration: 30s"),
    ("max_retries", "a count, or 0"),
    ("kafka.PROPERTY", "any librdkafka producer property"),
];

const WHAT: &str = "kafka sink";

impl KafkaSinkOptions {
    /// Options from `(key, value)` pairs over the defaults; see
    /// [`KAFKA_SINK_OPTION_KEYS`].
    pub fn from_pairs<I, K, V>(pairs: I) -> Result<KafkaSinkOptions>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut o = KafkaSinkOptions::default();
        for (key, value) in pairs {
            let (key, v) = (key.as_ref(), value.as_ref());
            if let Some(prop) = client_property(key, v)? {
                o.client.push(prop);
                continue;
            }
            match opts::normalise_key(key).as_str() {
                "timeout" => {
                    let us = opts::duration_us(WHAT, key, v)?;
                    if us < 1000 {
                        return Err(opts::err(WHAT, key, v, "at least 1ms"));
                    }
                    o.timeout = Duration::from_micros(us)
                }
                "maxretries" => {
                    o.max_retries = v
                        .trim()
                        .parse()
                        .map_err(|_| opts::err(WHAT, key, v, "a whole number"))?
                }
                _ => {
                    let valid: Vec<&str> = KAFKA_SINK_OPTION_KEYS.iter().map(|(k, _)| *k).collect();
                    return Err(EngineError::Plan(format!(
                        "unknown kafka sink option '{key}'; valid options: {}",
                        valid.join(", ")
                    )));
                }
            }
        }
        Ok(o)
    }
}

/// A record to produce again.
struct Failed {
    partition: i32,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    timestamp: Option<i64>,
    error: RDKafkaErrorCode,
}

/// State the delivery callbacks share with the sink.
#[derive(Default)]
struct Deliveries {
    delivered: AtomicU64,
    failed: Mutex<Vec<Failed>>,
    /// One past the highest acknowledged offset, per partition.
    end_offsets: Mutex<BTreeMap<i32, i64>>,
}

struct SinkCtx {
    topic: String,
    state: Arc<ClientState>,
    deliveries: Arc<Deliveries>,
}

impl ClientContext for SinkCtx {
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

impl ProducerContext for SinkCtx {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(msg) => {
                self.deliveries.delivered.fetch_add(1, Ordering::Relaxed);
                let mut ends = self
                    .deliveries
                    .end_offsets
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                let e = ends.entry(msg.partition()).or_insert(0);
                *e = (*e).max(msg.offset() + 1);
            }
            Err((e, msg)) => {
                let code = error_code(e).unwrap_or(RDKafkaErrorCode::Fail);
                if classify(code) == ErrorKind::Fatal {
                    let size = msg.payload().map_or(0, <[u8]>::len);
                    let mut f = self.state.fatal.lock().unwrap_or_else(|p| p.into_inner());
                    if f.is_none() {
                        *f = Some(format!(
                            "a record ({size} bytes of value) was rejected: {}",
                            explain(code, &self.topic)
                        ));
                    }
                    return;
                }
                self.state.transient.fetch_add(1, Ordering::Relaxed);
                self.deliveries
                    .failed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(Failed {
                        partition: msg.partition(),
                        key: msg.key().map(<[u8]>::to_vec),
                        value: msg.payload().map(<[u8]>::to_vec),
                        timestamp: msg.timestamp().to_millis(),
                        error: code,
                    });
            }
        }
    }
}

struct Open {
    producer: BaseProducer<SinkCtx>,
    layout: RecordLayout,
    key_buf: Vec<u8>,
    value_buf: Vec<u8>,
    /// Records sent since the last poll of delivery reports.
    unpolled: u32,
}

/// Produces result rows to a Kafka topic (see the module docs).
pub struct KafkaSink {
    address: KafkaAddress,
    options: KafkaSinkOptions,
    state: Arc<ClientState>,
    deliveries: Arc<Deliveries>,
    retries: u64,
    open: Option<Open>,
}

impl KafkaSink {
    /// A sink producing to `address` (`HOST:PORT/TOPIC`). Nothing is
    /// contacted before [`Sink::open`].
    pub fn new(address: &str, options: KafkaSinkOptions) -> Result<KafkaSink> {
        Ok(KafkaSink {
            address: KafkaAddress::parse(address)?,
            options,
            state: Arc::new(ClientState::default()),
            deliveries: Arc::new(Deliveries::default()),
            retries: 0,
            open: None,
        })
    }

    /// Where the sink writes.
    pub fn address(&self) -> &KafkaAddress {
        &self.address
    }

    /// Counters: `delivered` (records acknowledged), `deliveryRetries`
    /// (records produced again after a transient failure),
    /// `transientErrors` (client errors retried).
    pub fn metrics(&self) -> Vec<(String, u64)> {
        vec![
            (
                "delivered".to_string(),
                self.deliveries.delivered.load(Ordering::Relaxed),
            ),
            ("deliveryRetries".to_string(), self.retries),
            (
                "transientErrors".to_string(),
                self.state.transient.load(Ordering::Relaxed),
            ),
        ]
    }

    fn err(&self, e: impl std::fmt::Display) -> EngineError {
        EngineError::Sink(format!("kafka {}: {e}", self.address))
    }

    fn check_fatal(&self) -> Result<()> {
        match self.state.take_fatal() {
            Some(f) => Err(self.err(f)),
            None => Ok(()),
        }
    }

    /// Hands one record to the client, waiting while its queue is full
    /// (backpressure), at most `timeout`.
    fn send(
        &self,
        o: &Open,
        partition: Option<i32>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: Option<i64>,
    ) -> Result<()> {
        let mut record = BaseRecord::<[u8], [u8]>::to(&self.address.topic);
        record.partition = partition;
        record.key = key;
        record.payload = value;
        record.timestamp = timestamp;
        let mut since: Option<Instant> = None;
        loop {
            match o.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    let t = *since.get_or_insert_with(Instant::now);
                    if t.elapsed() >= self.options.timeout {
                        return Err(self.err(format!(
                            "the producer queue stayed full for {:?} (is the broker \
                             reachable? last error: {})",
                            self.options.timeout,
                            self.state.last_error()
                        )));
                    }
                    o.producer.poll(Duration::from_millis(1));
                    self.check_fatal()?;
                }
                Err((e, _)) => {
                    let size = value.map_or(0, <[u8]>::len);
                    return Err(match error_code(&e) {
                        Some(code) => self.err(format!(
                            "cannot produce a record ({size} bytes of value): {}",
                            explain(code, &self.address.topic)
                        )),
                        None => self.err(format!("cannot produce a record: {e}")),
                    });
                }
            }
        }
    }

    /// Waits until every record sent has its delivery report, produces
    /// transiently failed ones again (bounded), and fails on anything else.
    fn flush(&mut self) -> Result<()> {
        let mut attempt = 0;
        loop {
            {
                let o = self
                    .open
                    .as_ref()
                    .ok_or_else(|| self.err("the sink was used before open"))?;
                let started = Instant::now();
                // `Producer::flush` polls in 100 ms steps; poll in 1 ms steps
                // so that a commit returns as soon as the last report is in.
                o.producer.poll(Duration::ZERO);
                while o.producer.in_flight_count() > 0 {
                    if started.elapsed() >= self.options.timeout {
                        return Err(self.err(format!(
                            "{} records were not acknowledged within {:?} (last error: {})",
                            o.producer.in_flight_count(),
                            self.options.timeout,
                            self.state.last_error()
                        )));
                    }
                    o.producer.poll(Duration::from_millis(1));
                    self.check_fatal()?;
                }
                self.check_fatal()?;
            }
            let failed = std::mem::take(
                &mut *self
                    .deliveries
                    .failed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()),
            );
            if failed.is_empty() {
                self.state.mark_up();
                return Ok(());
            }
            if attempt >= self.options.max_retries {
                return Err(self.err(format!(
                    "{} records could not be delivered after {} retries: {}",
                    failed.len(),
                    self.options.max_retries,
                    failed[0].error
                )));
            }
            attempt += 1;
            tracing::warn!(
                "{WHAT} {}: producing {} records again after: {}",
                self.address,
                failed.len(),
                failed[0].error
            );
            self.retries += failed.len() as u64;
            let o = self.open.as_ref().expect("checked above");
            for f in &failed {
                self.send(
                    o,
                    Some(f.partition),
                    f.key.as_deref(),
                    f.value.as_deref(),
                    f.timestamp,
                )?;
            }
        }
    }
}

impl Sink for KafkaSink {
    fn describe(&self) -> String {
        format!("KafkaSink[{}]", self.address)
    }

    fn open(&mut self, ctx: &SinkContext, _recovered: Option<&serde_json::Value>) -> Result<()> {
        self.open = None;
        self.state = Arc::new(ClientState::default());
        self.deliveries = Arc::new(Deliveries::default());
        let mut config = base_config(&self.address, self.options.timeout);
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("partitioner", "murmur2_random")
            .set("linger.ms", "0")
            .set(
                "message.timeout.ms",
                self.options.timeout.as_millis().max(1).to_string(),
            );
        for (k, v) in &self.options.client {
            config.set(k, v);
        }
        let context = SinkCtx {
            topic: self.address.topic.clone(),
            state: self.state.clone(),
            deliveries: self.deliveries.clone(),
        };
        let producer: BaseProducer<SinkCtx> = config
            .create_with_context(context)
            .map_err(|e| self.err(format!("cannot create the Kafka producer: {e}")))?;
        topic_partitions(producer.client(), &self.address, self.options.timeout)
            .map_err(|e| self.err(e))?;
        self.open = Some(Open {
            producer,
            layout: RecordLayout::new(&ctx.schema),
            key_buf: Vec::with_capacity(64),
            value_buf: Vec::with_capacity(256),
            unpolled: 0,
        });
        Ok(())
    }

    #[inline]
    fn write(&mut self, row: &Row) -> Result<()> {
        let mut o = self
            .open
            .take()
            .ok_or_else(|| self.err("the sink was used before open"))?;
        let result = self.write_with(&mut o, row);
        self.open = Some(o);
        result
    }

    fn write_batch(&mut self, batch: &RecordBatch) -> Result<()> {
        let mut o = self
            .open
            .take()
            .ok_or_else(|| self.err("the sink was used before open"))?;
        let result = self.write_batch_with(&mut o, batch);
        self.open = Some(o);
        result
    }

    fn commit(&mut self, epoch: u64) -> Result<serde_json::Value> {
        self.flush()?;
        let ends: serde_json::Map<String, serde_json::Value> = self
            .deliveries
            .end_offsets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(p, o)| (p.to_string(), serde_json::Value::from(*o)))
            .collect();
        Ok(serde_json::json!({
            "epoch": epoch,
            "delivered": self.deliveries.delivered.load(Ordering::Relaxed),
            "end_offsets": ends,
        }))
    }

    fn close(&mut self) -> Result<()> {
        self.flush()
    }
}

impl KafkaSink {
    #[inline]
    fn write_with(&self, o: &mut Open, row: &Row) -> Result<()> {
        let present = o.layout.encode(row, &mut o.key_buf, &mut o.value_buf);
        let timestamp_ms = o.layout.timestamp_ms(row);
        self.send_encoded(o, present, timestamp_ms)
    }

    fn write_batch_with(&self, o: &mut Open, batch: &RecordBatch) -> Result<()> {
        let cols = Column::all(batch)?;
        for i in 0..batch.num_rows() {
            let present = o
                .layout
                .encode_at(&cols, i, &mut o.key_buf, &mut o.value_buf);
            let timestamp_ms = o.layout.timestamp_ms_at(&cols, i);
            self.send_encoded(o, present, timestamp_ms)?;
        }
        Ok(())
    }

    /// Sends the record encoded in `o`'s buffers.
    #[inline]
    fn send_encoded(
        &self,
        o: &mut Open,
        (has_key, has_value): (bool, bool),
        timestamp_ms: i64,
    ) -> Result<()> {
        self.send(
            o,
            None,
            has_key.then_some(&o.key_buf[..]),
            has_value.then_some(&o.value_buf[..]),
            Some(timestamp_ms),
        )?;
        o.unpolled += 1;
        if o.unpolled >= 1024 {
            o.unpolled = 0;
            o.producer.poll(Duration::ZERO);
            self.check_fatal()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse() {
        let o = KafkaSinkOptions::from_pairs([
            ("timeout", "5s"),
            ("max_retries", "0"),
            ("kafka.linger.ms", "2"),
        ])
        .unwrap();
        assert_eq!(o.timeout, Duration::from_secs(5));
        assert_eq!(o.max_retries, 0);
        assert_eq!(o.client, vec![("linger.ms".to_string(), "2".to_string())]);
        assert!(KafkaSinkOptions::from_pairs([("partitions", "3")]).is_err());
        assert!(KafkaSinkOptions::from_pairs([("kafka.enable.idempotence", "false")]).is_err());
    }
}
