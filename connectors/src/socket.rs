//! The socket source: lines of text read from a TCP connection, like
//! Spark's socket source (for tests and demos: `nc -lk 9999`).
//!
//! * Rows: `value string`, one per line (`\n` or `\r\n` ends a line; a last
//!   line without a line break is a line too), decoded as UTF-8 **lossily**
//!   (invalid bytes become U+FFFD). With
//!   [`SocketSource::with_include_timestamp`], also `timestamp timestamp`:
//!   the wall clock when the line was read (Spark's `includeTimestamp`).
//! * Ingest time: [`runnel::clock::now_ns`] when the bytes holding the line
//!   were read from the socket.
//! * Address: `host:port`, `:port` or `port` (host `127.0.0.1`), or
//!   `[v6addr]:port`. [`Source::open`] connects (within 10 s) and fails with
//!   an error naming the address when it cannot (connection refused, no
//!   such host).
//! * End: when the peer closes the connection the source is exhausted,
//!   once every line read before is emitted. A read error (connection
//!   reset) stops the query with an error naming the address.
//! * Bad records: a line longer than 1 MiB (without its line break) is
//!   skipped, with a warning for the first one, and counted in the metric
//!   `badRecords`; memory stays bounded by that limit.
//!
//! Not replayable, as in Spark: nothing is kept once read, so
//! [`Source::is_replayable`] is `false`; after a restart from a checkpoint
//! the source continues with whatever the peer sends next (lines sent before
//! the crash and not yet durable are lost). Micro-batch mode is not
//! supported (the trait's default `latest_offset` and `read_range` fail with
//! an error saying so): a range of lines cannot be logged and re-read.
//!
//! # Threads
//!
//! [`Source::open`] starts one background thread (`runnel-socket-ADDR`)
//! running a tokio current-thread runtime: it connects, reads, splits lines
//! and pushes finished rows into a bounded lock-free ring (`rtrb`, 16,384
//! rows), then wakes the engine task through
//! [`runnel::continuous::TaskWaker::wake_if_sleeping`]. [`Source::poll`]
//! only drains the ring, so the source is not blocking and needs no task of
//! its own. A full ring is backpressure: the reader waits (and TCP's window
//! then slows the peer). Dropping the source stops and joins the thread and
//! closes the connection.

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::Poll;
use std::thread::JoinHandle;
use std::time::Duration;

use runnel::clock::{now_ns, wall_now_us};

use crate::options::{normalise_key, OptionParser};

const OPTIONS: OptionParser = OptionParser::new("socket source");
use runnel::continuous::TaskWaker;
use runnel::{
    schema, timestamp_type, DataType, EngineError, PollStatus, Result, Row, SchemaRef, Source,
    SourceContext, SourceOffset, SourceOutput, Value,
};
use tokio::io::AsyncReadExt;
use tokio::sync::oneshot;

/// Longest line accepted, in bytes without the line break.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Rows in the ring between the reader thread and the engine task.
const RING_CAPACITY: usize = 1 << 14;

/// Rows moved from the ring per poll at most.
const MAX_PER_POLL: usize = 256;

/// How long `open` waits for the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// State shared by the reader thread and the source.
struct Shared {
    /// The reader has pushed its last row (the peer closed, or an error).
    closed: AtomicBool,
    bad_records: AtomicU64,
    /// A read error, reported once the ring is drained.
    error: Mutex<Option<String>>,
}

/// What `open` starts and `Drop` stops.
struct Running {
    rows: rtrb::Consumer<(Row, u64)>,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// Lines of text from a TCP connection (see the module docs).
pub struct SocketSource {
    host: String,
    port: u16,
    include_timestamp: bool,
    running: Option<Running>,
    consumed: u64,
}

fn parse_address(addr: &str) -> Result<(String, u16)> {
    let invalid = || {
        EngineError::Plan(format!(
            "socket address '{addr}': expected host:port, :port or port"
        ))
    };
    let text = addr.trim();
    let (host, port) = match text.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || (h.starts_with('[') && h.ends_with(']')) => (h, p),
        Some(_) => return Err(invalid()),
        None => ("", text),
    };
    let port: u16 = port.trim().parse().map_err(|_| invalid())?;
    let host = host.trim().trim_start_matches('[').trim_end_matches(']');
    let host = if host.is_empty() { "127.0.0.1" } else { host };
    Ok((host.to_string(), port))
}

impl SocketSource {
    /// A source that will connect to `addr`: `host:port`, `:port` or `port`
    /// (host `127.0.0.1`). Fails only on a malformed address; connecting
    /// happens in [`Source::open`].
    pub fn new(addr: &str) -> Result<SocketSource> {
        let (host, port) = parse_address(addr)?;
        Ok(SocketSource {
            host,
            port,
            include_timestamp: false,
            running: None,
            consumed: 0,
        })
    }

    /// Adds a `timestamp` column: the wall clock when the line was read.
    pub fn with_include_timestamp(mut self, include: bool) -> SocketSource {
        self.include_timestamp = include;
        self
    }

    /// Applies `(key, value)` options: `include_timestamp` (`true|false`,
    /// Spark's `includeTimestamp`).
    pub fn with_options<I, K, V>(mut self, pairs: I) -> Result<SocketSource>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        for (key, value) in pairs {
            let (key, v) = (key.as_ref(), value.as_ref());
            match normalise_key(key).as_str() {
                "includetimestamp" => self.include_timestamp = OPTIONS.bool(key, v)?,
                _ => return Err(OPTIONS.unknown(key, &["include_timestamp"])),
            }
        }
        Ok(self)
    }

    /// `host:port` (IPv6 hosts in brackets).
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    fn stop(&mut self) {
        if let Some(mut running) = self.running.take() {
            drop(running.stop.take());
            if let Some(t) = running.thread.take() {
                let _ = t.join();
            }
        }
    }
}

impl Drop for SocketSource {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Source for SocketSource {
    fn describe(&self) -> String {
        format!("SocketSource[{}]", self.address())
    }

    fn schema(&self) -> SchemaRef {
        if self.include_timestamp {
            schema(&[("value", DataType::Utf8), ("timestamp", timestamp_type())])
        } else {
            schema(&[("value", DataType::Utf8)])
        }
    }

    fn open(&mut self, ctx: &SourceContext, _start: Option<&SourceOffset>) -> Result<()> {
        self.stop();
        let address = self.address();
        let (tx, rx) = rtrb::RingBuffer::new(RING_CAPACITY);
        let shared = Arc::new(Shared {
            closed: AtomicBool::new(false),
            bad_records: AtomicU64::new(0),
            error: Mutex::new(None),
        });
        let (stop_tx, stop_rx) = oneshot::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let reader = Reader {
            address: address.clone(),
            ring: tx,
            shared: shared.clone(),
            waker: ctx.waker.clone(),
            include_timestamp: self.include_timestamp,
            line: Vec::new(),
            skipping: false,
            warned: false,
        };
        let (host, port) = (self.host.clone(), self.port);
        let thread = std::thread::Builder::new()
            .name(format!("runnel-socket-{address}"))
            .spawn(move || reader.run(host, port, ready_tx, stop_rx))
            .map_err(|e| {
                EngineError::Source(format!("socket {address}: cannot start a thread: {e}"))
            })?;
        let connected = ready_rx
            .recv_timeout(CONNECT_TIMEOUT + Duration::from_secs(5))
            .unwrap_or_else(|_| Err(format!("no connection within {CONNECT_TIMEOUT:?}")));
        if let Err(reason) = connected {
            drop(stop_tx);
            let _ = thread.join();
            return Err(EngineError::Source(format!(
                "socket source cannot connect to {address}: {reason}"
            )));
        }
        self.running = Some(Running {
            rows: rx,
            shared,
            stop: Some(stop_tx),
            thread: Some(thread),
        });
        Ok(())
    }

    #[inline]
    fn poll(&mut self, out: &mut dyn SourceOutput) -> Result<PollStatus> {
        let Some(running) = &mut self.running else {
            return Err(EngineError::Source(format!(
                "socket source {} polled before open",
                self.address()
            )));
        };
        // Read `closed` before looking at the ring: every row pushed before
        // it was set is then visible.
        let closed = running.shared.closed.load(Ordering::Acquire);
        let mut n = 0;
        while n < MAX_PER_POLL {
            match running.rows.pop() {
                Ok((row, ingest_ns)) => {
                    n += 1;
                    self.consumed += 1;
                    out.emit(row, ingest_ns)?;
                }
                Err(_) => break,
            }
        }
        if n > 0 {
            return Ok(PollStatus::Emitted(n));
        }
        if closed {
            let error = running
                .shared
                .error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            return match error {
                Some(e) => Err(EngineError::Source(format!(
                    "socket source {}: {e}",
                    self.address()
                ))),
                None => Ok(PollStatus::Exhausted),
            };
        }
        Ok(PollStatus::Idle)
    }

    fn offset(&self) -> SourceOffset {
        SourceOffset::Rows(self.consumed)
    }

    fn ready_hint(&self) -> bool {
        self.running
            .as_ref()
            .is_some_and(|r| !r.rows.is_empty() || r.shared.closed.load(Ordering::Acquire))
    }

    fn is_replayable(&self) -> bool {
        false
    }

    fn metrics(&self) -> Vec<(String, u64)> {
        let bad = self
            .running
            .as_ref()
            .map_or(0, |r| r.shared.bad_records.load(Ordering::Relaxed));
        vec![("badRecords".to_string(), bad)]
    }
}

/// The background reader: owns the connection and the ring's producer.
struct Reader {
    address: String,
    ring: rtrb::Producer<(Row, u64)>,
    shared: Arc<Shared>,
    waker: Arc<TaskWaker>,
    include_timestamp: bool,
    /// The line being assembled.
    line: Vec<u8>,
    /// Inside an over-long line: drop bytes until its line break.
    skipping: bool,
    warned: bool,
}

/// Why the reader stopped pushing.
enum Halt {
    /// The source was dropped.
    Stopped,
}

/// Polls `fut` unless `stop` fires first (`None`: stopped).
async fn or_stop<F: Future>(fut: F, stop: &mut oneshot::Receiver<()>) -> Option<F::Output> {
    let mut fut = pin!(fut);
    std::future::poll_fn(|cx| {
        if Pin::new(&mut *stop).poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        fut.as_mut().poll(cx).map(Some)
    })
    .await
}

impl Reader {
    fn run(
        mut self,
        host: String,
        port: u16,
        ready: mpsc::Sender<std::result::Result<(), String>>,
        mut stop: oneshot::Receiver<()>,
    ) {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                let _ = ready.send(Err(format!("cannot start the I/O runtime: {e}")));
                return;
            }
        };
        rt.block_on(async move {
            let connect = tokio::time::timeout(
                CONNECT_TIMEOUT,
                tokio::net::TcpStream::connect((host.as_str(), port)),
            );
            let stream = match or_stop(connect, &mut stop).await {
                None => return,
                Some(Err(_)) => {
                    let _ = ready.send(Err(format!("no connection within {CONNECT_TIMEOUT:?}")));
                    return;
                }
                Some(Ok(Err(e))) => {
                    let _ = ready.send(Err(e.to_string()));
                    return;
                }
                Some(Ok(Ok(s))) => s,
            };
            if ready.send(Ok(())).is_err() {
                return;
            }
            self.read_loop(stream, &mut stop).await;
        });
    }

    async fn read_loop(
        &mut self,
        mut stream: tokio::net::TcpStream,
        stop: &mut oneshot::Receiver<()>,
    ) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match or_stop(stream.read(&mut buf), stop).await {
                None => return,
                Some(Ok(n)) => n,
                Some(Err(e)) => {
                    *self.shared.error.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(format!("read failed: {e}"));
                    break;
                }
            };
            if n == 0 {
                // The peer closed: a last line without a line break counts.
                if !self.skipping && !self.line.is_empty() {
                    let ingest = now_ns();
                    if self.end_line(ingest, stop).await.is_err() {
                        return;
                    }
                }
                break;
            }
            let ingest = now_ns();
            if self.push_bytes(&buf[..n], ingest, stop).await.is_err() {
                return;
            }
            self.waker.wake_if_sleeping();
        }
        self.shared.closed.store(true, Ordering::Release);
        self.waker.wake();
    }

    async fn push_bytes(
        &mut self,
        mut bytes: &[u8],
        ingest: u64,
        stop: &mut oneshot::Receiver<()>,
    ) -> std::result::Result<(), Halt> {
        while !bytes.is_empty() {
            match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.append(&bytes[..i]);
                    if self.skipping {
                        self.skipping = false;
                    } else {
                        self.end_line(ingest, stop).await?;
                    }
                    bytes = &bytes[i + 1..];
                }
                None => {
                    self.append(bytes);
                    break;
                }
            }
        }
        Ok(())
    }

    fn append(&mut self, part: &[u8]) {
        if self.skipping {
            return;
        }
        if self.line.len() + part.len() > MAX_LINE_BYTES + 1 {
            // (+1: room for the `\r` of a `\r\n` line break.)
            self.skipping = true;
            self.bad_line();
            return;
        }
        self.line.extend_from_slice(part);
    }

    /// Drops the line being assembled as a bad record.
    fn bad_line(&mut self) {
        self.line = Vec::new();
        self.shared.bad_records.fetch_add(1, Ordering::Relaxed);
        if !self.warned {
            self.warned = true;
            tracing::warn!(
                "socket source {}: skipping a line longer than {MAX_LINE_BYTES} bytes \
                 (further ones are only counted in badRecords)",
                self.address
            );
        }
    }

    /// Pushes the assembled line as a row, waiting while the ring is full.
    async fn end_line(
        &mut self,
        ingest: u64,
        stop: &mut oneshot::Receiver<()>,
    ) -> std::result::Result<(), Halt> {
        if self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        if self.line.len() > MAX_LINE_BYTES {
            self.bad_line();
            return Ok(());
        }
        let text = String::from_utf8_lossy(&self.line);
        let mut row = Row::new();
        row.push(Value::str(&text));
        if self.include_timestamp {
            row.push(Value::Timestamp(wall_now_us()));
        }
        self.line.clear();
        let mut item = (row, ingest);
        loop {
            match self.ring.push(item) {
                Ok(()) => return Ok(()),
                Err(rtrb::PushError::Full(back)) => {
                    item = back;
                    if self.ring.is_abandoned() {
                        return Err(Halt::Stopped);
                    }
                    self.waker.wake_if_sleeping();
                    if or_stop(tokio::time::sleep(Duration::from_micros(200)), stop)
                        .await
                        .is_none()
                    {
                        return Err(Halt::Stopped);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_default_to_localhost() {
        assert_eq!(parse_address("9999").unwrap(), ("127.0.0.1".into(), 9999));
        assert_eq!(parse_address(":9999").unwrap(), ("127.0.0.1".into(), 9999));
        assert_eq!(
            parse_address("example.org:80").unwrap(),
            ("example.org".into(), 80)
        );
        assert_eq!(parse_address("[::1]:7").unwrap(), ("::1".into(), 7));
        assert!(parse_address("host:").is_err());
        assert!(parse_address("::1:7").is_err());
        assert!(parse_address("99999").is_err());
        assert_eq!(SocketSource::new("[::1]:7").unwrap().address(), "[::1]:7");
        let s = SocketSource::new("1")
            .unwrap()
            .with_options([("includeTimestamp", "true")])
            .unwrap();
        assert_eq!(s.schema().fields().len(), 2);
        assert!(SocketSource::new("1")
            .unwrap()
            .with_options([("bogus", "1")])
            .is_err());
    }
}
