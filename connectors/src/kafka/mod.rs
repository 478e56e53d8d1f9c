//! Kafka: a topic of a Kafka cluster (or of a Kafka-compatible broker) read
//! as a stream ([`KafkaSource`]) and written by a query ([`KafkaSink`]), with
//! the same row layout and options style as the local [`crate::log`]
//! connectors.
//!
//! The client is `rdkafka` over librdkafka, which is built from the source
//! bundled with the `rdkafka-sys` crate and linked statically (no system
//! librdkafka, no cmake: the plain `configure` + `make` build).
//!
//! # Addresses
//!
//! `HOST:PORT/TOPIC`, or `HOST:PORT,HOST:PORT/TOPIC` for several bootstrap
//! brokers ([`KafkaAddress::parse`]); `runnel run` takes them as
//! `kafka:HOST:PORT/TOPIC?option=value&...`.
//!
//! # Client settings
//!
//! Both connectors accept librdkafka properties as options prefixed with
//! `kafka.` (`kafka.fetch.wait.max.ms=5`, `kafka.linger.ms=0`,
//! `kafka.security.protocol=ssl`), passed to the client as they are, like
//! Spark's `kafka.` options. They are applied after the connector's own
//! settings, so they can override them; overriding the settings the
//! guarantees rest on (`enable.auto.commit`, `enable.idempotence`, `acks`)
//! is refused.
//!
//! # Errors
//!
//! Errors are sorted into three kinds ([`ErrorKind`]):
//!
//! * **fatal**: the query cannot make progress by waiting (unknown topic or
//!   partition, authorization or authentication failures, a record too large
//!   for the broker, an offset out of range, librdkafka's own fatal errors):
//!   the query stops at once with an error naming the broker, topic and
//!   cause;
//! * **unreachable**: a broker connection failed or every broker is down.
//!   Counted, and retried until the connector's `timeout` (default 10 s) has
//!   passed without a record arriving; then a metadata request decides: if
//!   the cluster answers, reading goes on, else the query fails;
//! * **transient**: anything else (a leader moved, a request timed out). librdkafka retries these itself; the
//!   connectors count them (metric `transientErrors`) and log them.
//!
//! An unreachable broker or an unknown topic is found when the connector
//! opens (a metadata request bounded by `timeout`), so a query pointed at
//! the wrong place fails within that time.
//!
//! # The test broker
//!
//! The tests run against tansu 0.6.0 (`tools/kafka-test-broker.sh`), which
//! differs from Kafka in two ways that matter here: ListOffsets (and the
//! high watermark in fetch responses) can lag behind the records that are
//! there, which is why the source never decides "caught up" from them
//! alone; and a fetch that starts in the middle of a record batch returns
//! nothing, so a consumer resuming at such an offset waits forever (the
//! tests produce one record per batch; real brokers return the batch and
//! the client skips the records before the offset).

mod sink;
mod source;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::client::{Client, ClientContext};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use runnel::{EngineError, Result};

pub use sink::{KafkaSink, KafkaSinkOptions, KAFKA_SINK_OPTION_KEYS};
pub use source::{KafkaSource, KafkaSourceOptions, KAFKA_SOURCE_OPTION_KEYS};

/// Where a topic lives: bootstrap brokers and topic name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaAddress {
    /// Comma-separated `HOST:PORT` list (librdkafka's `bootstrap.servers`).
    pub brokers: String,
    /// The topic.
    pub topic: String,
}

impl KafkaAddress {
    /// Parses `HOST:PORT/TOPIC` (several brokers separated by commas).
    pub fn parse(text: &str) -> Result<KafkaAddress> {
        let bad = |why: &str| {
            EngineError::Plan(format!(
                "kafka address '{text}': {why} (expected HOST:PORT/TOPIC, like \
                 127.0.0.1:9092/events)"
            ))
        };
        let (brokers, topic) = text.rsplit_once('/').ok_or_else(|| bad("no /TOPIC"))?;
        let brokers = brokers.trim().trim_start_matches("//");
        let topic = topic.trim();
        if topic.is_empty() {
            return Err(bad("the topic name is empty"));
        }
        if !topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(bad(
                "a topic name may only hold ASCII letters, digits, '.', '_' and '-'",
            ));
        }
        if brokers.is_empty() {
            return Err(bad("no broker"));
        }
        for b in brokers.split(',') {
            match b.trim().rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
                _ => return Err(bad(&format!("broker '{b}' is not HOST:PORT"))),
            }
        }
        Ok(KafkaAddress {
            brokers: brokers.to_string(),
            topic: topic.to_string(),
        })
    }
}

impl std::fmt::Display for KafkaAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.brokers, self.topic)
    }
}

/// How an error reported by the client is handled (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Stops the query.
    Fatal,
    /// A broker connection failed or every broker is down: retried until
    /// the connector's timeout, then checked with a metadata request.
    Unreachable,
    /// Retried by librdkafka; counted.
    Transient,
}

/// Sorts a client error code (see the module docs).
pub fn classify(code: RDKafkaErrorCode) -> ErrorKind {
    use RDKafkaErrorCode::*;
    match code {
        AllBrokersDown | BrokerTransportFailure | Resolve => ErrorKind::Unreachable,
        UnknownTopicOrPartition
        | UnknownTopic
        | UnknownPartition
        | InvalidTopic
        | TopicAuthorizationFailed
        | GroupAuthorizationFailed
        | ClusterAuthorizationFailed
        | TransactionalIdAuthorizationFailed
        | DelegationTokenAuthorizationFailed
        | SaslAuthenticationFailed
        | UnsupportedSASLMechanism
        | IllegalSASLState
        | Authentication
        | SSL
        | MessageSizeTooLarge
        | InvalidMessageSize
        | MessageBatchTooLarge
        | InvalidRecord
        | InvalidMessage
        | InvalidRequiredAcks
        | PolicyViolation
        | OffsetOutOfRange
        | AutoOffsetReset
        | UnsupportedForMessageFormat
        | UnsupportedCompressionType
        | InvalidArgument
        | InvalidConfig
        | Fatal
        | ProducerFenced
        | InvalidProducerEpoch
        | OutOfOrderSequenceNumber
        | UnknownProducerId
        | InvalidProducerIdMapping => ErrorKind::Fatal,
        _ => ErrorKind::Transient,
    }
}

/// A readable cause for a fatal error code, with what to do about it.
pub(crate) fn explain(code: RDKafkaErrorCode, topic: &str) -> String {
    use RDKafkaErrorCode::*;
    let hint = match code {
        UnknownTopicOrPartition | UnknownTopic | UnknownPartition => {
            format!("topic '{topic}' does not exist (or lacks the partition): create it first")
        }
        TopicAuthorizationFailed | GroupAuthorizationFailed | ClusterAuthorizationFailed => {
            "not authorized: check the ACLs of the client's principal".to_string()
        }
        SaslAuthenticationFailed | Authentication | SSL => {
            "authentication failed: check the kafka.security.* / kafka.sasl.* options".to_string()
        }
        MessageSizeTooLarge | InvalidMessageSize | MessageBatchTooLarge => {
            "a record is larger than the broker or client allows (message.max.bytes / \
             max.message.bytes)"
                .to_string()
        }
        OffsetOutOfRange | AutoOffsetReset => {
            "the offset to read from is no longer (or not yet) in the partition: records \
             were deleted by retention or the topic was recreated (delete the checkpoint, or \
             set fail_on_data_loss=false to continue from the earliest record)"
                .to_string()
        }
        _ => String::new(),
    };
    if hint.is_empty() {
        format!("{code}")
    } else {
        format!("{code}: {hint}")
    }
}

/// The error code inside a client error, if it has one.
pub(crate) fn error_code(e: &KafkaError) -> Option<RDKafkaErrorCode> {
    e.rdkafka_error_code()
}

/// Errors and counters shared between a client's callbacks and its owner.
#[derive(Default)]
pub(crate) struct ClientState {
    /// The first fatal error reported through a callback.
    pub(crate) fatal: Mutex<Option<String>>,
    /// Transient and unreachable errors seen.
    pub(crate) transient: AtomicU64,
    /// [`runnel::clock::now_ns`] of the first "all brokers down" not yet
    /// followed by a success (0: up).
    pub(crate) down_since_ns: AtomicU64,
    /// The most recent error text, for messages.
    pub(crate) last_error: Mutex<Option<String>>,
}

impl ClientState {
    /// Records an error from the client; `what` names the connector.
    pub(crate) fn record(&self, what: &str, code: RDKafkaErrorCode, reason: &str) {
        let text = if reason.is_empty() {
            format!("{code}")
        } else {
            format!("{code} ({reason})")
        };
        match classify(code) {
            ErrorKind::Fatal => {
                let mut f = self.fatal.lock().unwrap_or_else(|p| p.into_inner());
                if f.is_none() {
                    *f = Some(text.clone());
                }
            }
            ErrorKind::Unreachable => {
                self.transient.fetch_add(1, Ordering::Relaxed);
                let _ = self.down_since_ns.compare_exchange(
                    0,
                    runnel::clock::now_ns().max(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                tracing::warn!("{what}: {text}");
            }
            ErrorKind::Transient => {
                self.transient.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("{what}: {text}");
            }
        }
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(text);
    }

    pub(crate) fn take_fatal(&self) -> Option<String> {
        self.fatal.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    pub(crate) fn last_error(&self) -> String {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_else(|| "no error reported".into())
    }

    pub(crate) fn mark_up(&self) {
        self.down_since_ns.store(0, Ordering::Relaxed);
    }

    /// How long all brokers have been down, if they are.
    pub(crate) fn down_for(&self) -> Option<Duration> {
        match self.down_since_ns.load(Ordering::Relaxed) {
            0 => None,
            since => Some(Duration::from_nanos(
                runnel::clock::now_ns().saturating_sub(since),
            )),
        }
    }
}

/// Routes librdkafka's log lines to `tracing`.
pub(crate) fn log_line(level: RDKafkaLogLevel, fac: &str, msg: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", "{fac}: {msg}"),
        RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", "{fac}: {msg}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", "{fac}: {msg}")
        }
        RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", "{fac}: {msg}"),
    }
}

/// librdkafka properties that the connectors' guarantees rest on.
const PROTECTED: &[&str] = &[
    "enable.auto.commit",
    "enable.auto.offset.store",
    "enable.idempotence",
    "acks",
    "request.required.acks",
    "bootstrap.servers",
    "metadata.broker.list",
    "group.id",
];

/// Splits a `kafka.PROPERTY` option off; `Ok(None)` for other keys.
pub(crate) fn client_property(key: &str, value: &str) -> Result<Option<(String, String)>> {
    let k = key.trim();
    let Some(prop) = k
        .strip_prefix("kafka.")
        .or_else(|| k.strip_prefix("KAFKA."))
    else {
        return Ok(None);
    };
    let prop = prop.to_ascii_lowercase();
    if PROTECTED.contains(&prop.as_str()) {
        return Err(EngineError::Plan(format!(
            "kafka option {k}: {prop} is set by the connector (its delivery guarantee depends \
             on it) and cannot be overridden"
        )));
    }
    Ok(Some((prop, value.to_string())))
}

/// Shared option parsing helpers (keys match ignoring case, `_`, `-`, `.`).
pub(crate) mod opts {
    use runnel::{EngineError, Result};

    pub(crate) fn err(what: &str, key: &str, value: &str, expected: &str) -> EngineError {
        EngineError::Plan(format!(
            "{what} option {key} = '{value}': expected {expected}"
        ))
    }

    pub(crate) fn normalise_key(k: &str) -> String {
        k.trim()
            .chars()
            .filter(|c| !matches!(c, '_' | '-' | '.'))
            .flat_map(char::to_lowercase)
            .collect()
    }

    pub(crate) fn boolean(what: &str, key: &str, v: &str) -> Result<bool> {
        match v.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Ok(true),
            "false" | "no" | "off" | "0" => Ok(false),
            _ => Err(err(what, key, v, "true or false")),
        }
    }

    pub(crate) fn count(what: &str, key: &str, v: &str) -> Result<u64> {
        v.trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| err(what, key, v, "a positive whole number"))
    }

    /// A duration (`500ms`, `2s`, `1 minute`) in microseconds; `0` allowed.
    pub(crate) fn duration_us(what: &str, key: &str, v: &str) -> Result<u64> {
        let t = v.trim();
        if t == "0" {
            return Ok(0);
        }
        let us = runnel::time::parse_duration_us(t)
            .map_err(|e| err(what, key, v, &format!("a duration like 500ms or 2s ({e})")))?;
        u64::try_from(us).map_err(|_| err(what, key, v, "a non-negative duration"))
    }
}

/// Asks the cluster for the topic's partition count, bounded by `timeout`.
/// Fails with a clear message when no broker answers or the topic does not
/// exist.
pub(crate) fn topic_partitions<C: ClientContext>(
    client: &Client<C>,
    address: &KafkaAddress,
    timeout: Duration,
) -> std::result::Result<usize, String> {
    let md = client
        .fetch_metadata(Some(&address.topic), timeout)
        .map_err(|e| {
            format!(
                "cannot reach the Kafka broker(s) {} within {:?}: {e}",
                address.brokers, timeout
            )
        })?;
    let Some(t) = md.topics().iter().find(|t| t.name() == address.topic) else {
        return Err(format!(
            "topic '{}' does not exist on {}: create it first",
            address.topic, address.brokers
        ));
    };
    if let Some(e) = t.error() {
        let code = RDKafkaErrorCode::from(e);
        if matches!(
            code,
            RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic
        ) {
            return Err(format!(
                "topic '{}' does not exist on {}: create it first",
                address.topic, address.brokers
            ));
        }
        return Err(format!(
            "topic '{}' on {}: {}",
            address.topic,
            address.brokers,
            explain(code, &address.topic)
        ));
    }
    if t.partitions().is_empty() {
        return Err(format!(
            "topic '{}' does not exist on {} (no partitions): create it first",
            address.topic, address.brokers
        ));
    }
    Ok(t.partitions().len())
}

/// A client configuration with the settings every runnel client shares.
pub(crate) fn base_config(address: &KafkaAddress, timeout: Duration) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &address.brokers)
        .set("client.id", "runnel")
        // Bound how long a connection attempt may hang, so that an
        // unreachable broker is reported within the connector's timeout.
        .set(
            "socket.connection.setup.timeout.ms",
            timeout.as_millis().clamp(1000, 2_147_483_647).to_string(),
        )
        .set_log_level(RDKafkaLogLevel::Warning);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse() {
        let a = KafkaAddress::parse("127.0.0.1:9092/events").unwrap();
        assert_eq!(a.brokers, "127.0.0.1:9092");
        assert_eq!(a.topic, "events");
        let a = KafkaAddress::parse("a:1,b:2/t.x-y_z").unwrap();
        assert_eq!(a.brokers, "a:1,b:2");
        assert_eq!(a.topic, "t.x-y_z");
        for bad in [
            "events",
            "127.0.0.1:9092/",
            "/t",
            "host/t",
            "h:port/t",
            "h:1/a b",
        ] {
            assert!(KafkaAddress::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_are_sorted() {
        use RDKafkaErrorCode::*;
        assert_eq!(classify(UnknownTopicOrPartition), ErrorKind::Fatal);
        assert_eq!(classify(MessageSizeTooLarge), ErrorKind::Fatal);
        assert_eq!(classify(TopicAuthorizationFailed), ErrorKind::Fatal);
        assert_eq!(classify(AllBrokersDown), ErrorKind::Unreachable);
        assert_eq!(classify(BrokerTransportFailure), ErrorKind::Unreachable);
        assert_eq!(classify(NotLeaderForPartition), ErrorKind::Transient);
        assert_eq!(classify(RequestTimedOut), ErrorKind::Transient);
    }

    #[test]
    fn client_properties_pass_through_but_guarantees_stay() {
        assert_eq!(
            client_property("kafka.fetch.wait.max.ms", "5").unwrap(),
            Some(("fetch.wait.max.ms".into(), "5".into()))
        );
        assert_eq!(client_property("group", "g").unwrap(), None);
        assert!(client_property("kafka.enable.auto.commit", "true").is_err());
        assert!(client_property("kafka.acks", "1").is_err());
    }
}
