//! The PostgreSQL sink under SIGKILL: `runnel run` over a log topic into a
//! real server (`RUNNEL_POSTGRES`, started by `tools/test.sh`), killed at
//! random moments and restarted on the same checkpoint, in both modes and
//! with both delivery settings. Exactly-once (micro-batch): every record in
//! the table once. At-least-once (keyed upserts, both modes): the table
//! ends equal to the crash-free counts. Continuous mode refuses
//! exactly-once unless told otherwise.

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

    fn spawn(&self, ckpt: &Path) -> Child {
        self.command(ckpt)
            .stderr(Stdio::null())
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
            let ckpt = dir.join(format!("{}-{}-ckpt-{round}", self.mode, self.output_mode));
            landed += kill_and_restart(rng, KILLS - landed, (10, 150), || self.spawn(&ckpt), || {});
            round += 1;
        }
        eprintln!(
            "{} {}: {landed} kills over {round} run(s)",
            self.mode, self.output_mode
        );
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
fn micro_batch_appends_land_exactly_once_through_kills() {
    let dir = tempfile::tempdir().unwrap();
    let topic = make_topic(dir.path());
    let mut rng = Rng::from_env();
    let (mut landed, mut round) = (0, 0);
    // A run that ends before its kills are used up is checked, and a new
    // query (new table, new checkpoint) takes the kills left.
    while landed < KILLS {
        let table = fresh_table("mb_append");
        let run = Run {
            mode: "microbatch",
            sql: STATELESS,
            output_mode: "append",
            sink: format!("{}?table={table}&create=true", server()),
            topic: &topic,
        };
        let ckpt = dir.path().join(format!("ckpt-{round}"));
        let kills = kill_and_restart(
            &mut rng,
            KILLS - landed,
            (10, 150),
            || run.spawn(&ckpt),
            || {},
        );
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
        assert_eq!(n, RECORDS, "no record written twice ({kills} kills)");
        landed += kills;
        round += 1;
    }
    eprintln!("micro-batch append: {landed} kills over {round} run(s)");
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

#[test]
fn continuous_mode_refuses_exactly_once_unless_told() {
    let dir = tempfile::tempdir().unwrap();
    let topic = make_topic(dir.path());
    let table = fresh_table("refused");
    let run = Run {
        mode: "continuous",
        sql: STATELESS,
        output_mode: "append",
        sink: format!("{}?table={table}&create=true", server()),
        topic: &topic,
    };
    let out = run.command(&dir.path().join("ckpt")).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("delivery=exactly_once needs micro-batch mode")
            && err.contains("delivery=at_least_once"),
        "{err}"
    );
}
