//! The PostgreSQL sink under SIGKILL: `runnel run` over a log topic into a
//! real server (`RUNNEL_POSTGRES`, started by `tools/test.sh`), killed at
//! random moments and restarted on the same checkpoint, in both modes and
//! with both delivery settings. Exactly-once (both modes; continuous mode
//! through prepared transactions): every record in the table once, and
//! keyed results equal to the crash-free counts. At-least-once (keyed
//! upserts, both modes): the table ends equal to the crash-free counts.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use postgres::{Client, NoTls};
use runnel_connectors::log::LogTopic;
use runnel_tests::{kill_and_restart, Rng};

const RECORDS: i64 = 40_000;
/// Event time of record i: 10 ms apart from a fixed origin.
const BASE_MS: i64 = 1_700_000_000_000;
/// Kills per configuration.
const KILLS: usize = 20;

fn server() -> String {
    std::env::var("RUNNEL_POSTGRES").expect(
        "RUNNEL_POSTGRES is not set: run the tests through tools/test.sh, or export the \
         lines of `bash tools/postgres-test-server.sh start`",
    )
}

fn client() -> Client {
    Client::connect(&server(), NoTls).expect("connect to the test server")
}

fn fresh_table(what: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{what}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn make_topic(dir: &Path) -> std::path::PathBuf {
    let topic = LogTopic::create(dir, "events", 3).unwrap();
    let mut producer = topic.producer().unwrap();
    for i in 0..RECORDS {
        let value = i.to_string();
        producer
            .send(None, None, Some(value.as_bytes()), BASE_MS + i * 10)
            .unwrap();
    }
    producer.sync().unwrap();
    topic.path().to_path_buf()
}

struct Run<'a> {
    mode: &'a str,
    sql: &'a str,
    output_mode: &'a str,
    sink: String,
    topic: &'a Path,
}

impl Run<'_> {
    fn command(&self, ckpt: &Path) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_runnel"));
        c.args(["run", "--mode", self.mode, "--sql", self.sql])
            .args(["--until-idle", "--progress", "none"])
            .args(["--output-mode", self.output_mode])
            .args([
                "--source",
                &format!(
                    "events=log:{}?starting_offsets=earliest&max_records_per_trigger=3000",
                    self.topic.display()
                ),
            ])
            .args(["--sink", &self.sink])
            .args(["--checkpoint", ckpt.to_str().unwrap(), "--epoch-ms", "20"]);
        c
    }

    /// Starts a run; its standard error is appended to `stderr.log` beside
    /// the checkpoint (shown by [`with_child_log`] when a run fails).
    fn spawn(&self, ckpt: &Path) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(child_log(ckpt))
            .expect("open the runs' log");
        self.command(ckpt)
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start runnel run")
    }

    /// Runs to the end through `KILLS` SIGKILLs (fresh checkpoints when a
    /// run ends before its kills are used up; the table is not reset, so
    /// a second round must not change what it holds).
    fn crashed(&self, dir: &Path, rng: &mut Rng) {
        let mut landed = 0;
        let mut round = 0;
        while landed < KILLS {
            // A checkpoint of its own: configurations share `dir`.
            static CKPT: AtomicUsize = AtomicUsize::new(0);
            let n = CKPT.fetch_add(1, Ordering::Relaxed);
            let ckpt = dir.join(format!("{}-{}-ckpt-{n}", self.mode, self.output_mode));
            landed += with_child_log(&ckpt, || {
                kill_and_restart(rng, KILLS - landed, (10, 150), || self.spawn(&ckpt), || {})
            });
            round += 1;
        }
        eprintln!(
            "{} {}: {landed} kills over {round} run(s)",
            self.mode, self.output_mode
        );
    }
}

/// Where the runs on checkpoint `ckpt` write their standard error.
fn child_log(ckpt: &Path) -> std::path::PathBuf {
    ckpt.with_extension("stderr.log")
}

/// Runs `f`; if it panics (a run failed), prints the end of the runs'
/// standard error first.
fn with_child_log<T>(ckpt: &Path, f: impl FnOnce() -> T) -> T {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(panic) => {
            let log = std::fs::read_to_string(child_log(ckpt)).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- the runs' standard error, last lines ---");
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
            std::panic::resume_unwind(panic)
        }
    }
}

const STATELESS: &str = "SELECT CAST(value AS bigint) AS v FROM events";
const WINDOWED: &str = "SELECT window.start AS start, count(*) AS n, \
                        sum(CAST(value AS bigint)) AS total \
                        FROM events GROUP BY window(timestamp, '1 second')";

/// The windowed counts of a crash-free computation: 100 records a second.
fn expected_windows() -> Vec<(i64, i64)> {
    let mut out: std::collections::BTreeMap<i64, (i64, i64)> = Default::default();
    for i in 0..RECORDS {
        let sec = (BASE_MS + i * 10).div_euclid(1000);
        let e = out.entry(sec).or_default();
        e.0 += 1;
        e.1 += i;
    }
    out.into_values().collect()
}

fn windows_in(table: &str) -> Vec<(i64, i64)> {
    client()
        .query(
            &format!("SELECT n, total FROM \"{table}\" ORDER BY start"),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[test]
fn appends_land_exactly_once_through_kills_in_both_modes() {
    for mode in ["microbatch", "continuous"] {
        appends_land_exactly_once_through_kills(mode);
    }
}

fn appends_land_exactly_once_through_kills(mode: &str) {
    let dir = tempfile::tempdir().unwrap();
    let topic = make_topic(dir.path());
    let mut rng = Rng::from_env();
    let (mut landed, mut round) = (0, 0);
    // A run that ends before its kills are used up is checked, and a new
    // query (new table, new checkpoint) takes the kills left.
    while landed < KILLS {
        let table = fresh_table(&format!("{mode}_append"));
        let run = Run {
            mode,
            sql: STATELESS,
            output_mode: "append",
            sink: format!("{}?table={table}&create=true", server()),
            topic: &topic,
        };
        let ckpt = dir.path().join(format!("ckpt-{round}"));
        let kills = with_child_log(&ckpt, || {
            kill_and_restart(
                &mut rng,
                KILLS - landed,
                (10, 150),
                || run.spawn(&ckpt),
                || {},
            )
        });
        let row = client()
            .query_one(
                &format!("SELECT count(*), count(DISTINCT v), min(v), max(v) FROM \"{table}\""),
                &[],
            )
            .unwrap();
        let (n, distinct, min, max): (i64, i64, i64, i64) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        assert_eq!(
            (distinct, min, max),
            (RECORDS, 0, RECORDS - 1),
            "no record lost"
        );
        assert_eq!(
            n, RECORDS,
            "{mode}: no record written twice ({kills} kills)"
        );
        landed += kills;
        round += 1;
    }
    eprintln!("{mode} append: {landed} kills over {round} run(s)");
}

#[test]
fn keyed_upserts_end_equal_through_kills_in_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    let topic = make_topic(dir.path());
    let want = expected_windows();
    let mut rng = Rng::from_env();
    for (mode, delivery) in [
        ("microbatch", "exactly_once"),
        ("microbatch", "at_least_once"),
        ("continuous", "exactly_once"),
        ("continuous", "at_least_once"),
    ] {
        let table = fresh_table(&format!("{mode}_windows"));
        let run = Run {
            mode,
            sql: WINDOWED,
            output_mode: "update",
            sink: format!("{}?table={table}&create=true&delivery={delivery}", server()),
            topic: &topic,
        };
        run.crashed(dir.path(), &mut rng);
        assert_eq!(windows_in(&table), want, "{mode} {delivery}");
    }
}
