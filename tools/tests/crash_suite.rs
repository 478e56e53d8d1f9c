//! The crash suite: `runnel run` over a log topic as a real process,
//! SIGKILLed at random moments (52 kills per suite run across both modes,
//! stateless and windowed queries) and restarted on the same checkpoint.
//! Micro-batch output must equal the output of a run that never crashed;
//! continuous output must hold every input exactly as often as the durable
//! epochs allow (the CSV sink cuts back to the last durable epoch, so also
//! exactly once); windowed aggregates must be right after recovery.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use runnel_connectors::log::LogTopic;
use runnel_tests::{kill_and_restart, Rng};

const RECORDS: u64 = 60_000;
/// Event time of record i: 10 ms apart from a fixed origin.
const BASE_MS: i64 = 1_700_000_000_000;

fn make_topic(dir: &Path) -> std::path::PathBuf {
    let topic = LogTopic::create(dir, "events", 3).unwrap();
    let mut producer = topic.producer().unwrap();
    for i in 0..RECORDS {
        let value = i.to_string();
        producer
            .send(None, None, Some(value.as_bytes()), BASE_MS + i as i64 * 10)
            .unwrap();
    }
    producer.sync().unwrap();
    topic.path().to_path_buf()
}

const STATELESS: &str =
    "SELECT CAST(value AS bigint) AS v, CAST(value AS bigint) * 3 AS tripled FROM events";
const WINDOWED: &str =
    "SELECT window.start AS start, count(*) AS n, sum(CAST(value AS bigint)) AS total \
                        FROM events GROUP BY window(timestamp, '1 second')";

fn spawn(mode: &str, sql: &str, topic: &Path, out: &Path, ckpt: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args([
            "run",
            "--mode",
            mode,
            "--sql",
            sql,
            "--until-idle",
            "--progress",
            "none",
        ])
        .args([
            "--source",
            &format!(
                "events=log:{}?starting_offsets=earliest&max_records_per_trigger=4000",
                topic.display()
            ),
        ])
        .args(["--sink", &format!("csv:{}", out.display())])
        .args(["--checkpoint", ckpt.to_str().unwrap(), "--epoch-ms", "20"])
        .stderr(Stdio::null())
        .spawn()
        .expect("start runnel run")
}

/// Runs the query to the end through at least `kills` SIGKILLs. When a run
/// finishes before the kills are used up, its output is checked and a fresh
/// run (new output, new checkpoint) takes the remaining kills.
fn crashed_runs(
    mode: &str,
    sql: &str,
    topic: &Path,
    dir: &Path,
    kills: usize,
    rng: &mut Rng,
    mut check: impl FnMut(&str),
) {
    let mut landed = 0;
    let mut round = 0;
    while landed < kills {
        let out = dir.join(format!("{mode}-{round}.csv"));
        let ckpt = dir.join(format!("{mode}-{round}-ckpt"));
        landed += kill_and_restart(
            rng,
            kills - landed,
            (20, 160),
            || spawn(mode, sql, topic, &out, &ckpt),
            || {},
        );
        check(&std::fs::read_to_string(out).unwrap());
        round += 1;
    }
    eprintln!("{mode}: {landed} kills landed over {round} run(s) to completion");
}

fn clean_output(mode: &str, sql: &str, topic: &Path, dir: &Path) -> String {
    let (out, ckpt) = (
        dir.join(format!("{mode}-clean.csv")),
        dir.join(format!("{mode}-clean-ckpt")),
    );
    assert!(spawn(mode, sql, topic, &out, &ckpt)
        .wait()
        .unwrap()
        .success());
    std::fs::read_to_string(out).unwrap()
}

fn sorted_lines(text: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = text.lines().skip(1).collect();
    lines.sort();
    lines
}

#[test]
fn stateless_queries_survive_kills_in_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    let topic = make_topic(dir.path());
    let mut rng = Rng::from_env();
    // Micro-batch: exactly the no-crash output.
    let clean = clean_output("microbatch", STATELESS, &topic, dir.path());
    crashed_runs(
        "microbatch",
        STATELESS,
        &topic,
        dir.path(),
        13,
        &mut rng,
        |crashed| {
            assert!(
                crashed == clean,
                "micro-batch output differs from a run without crashes"
            );
        },
    );
    // Continuous: every input value, with its derived column, exactly once.
    crashed_runs(
        "continuous",
        STATELESS,
        &topic,
        dir.path(),
        13,
        &mut rng,
        |crashed| {
            let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
            for line in crashed.lines().skip(1) {
                let (v, t) = line.split_once(',').unwrap();
                let v: u64 = v.parse().unwrap();
                assert_eq!(t.parse::<u64>().unwrap(), 3 * v);
                *counts.entry(v).or_default() += 1;
            }
            assert_eq!(counts.len() as u64, RECORDS, "no event lost");
            assert!(
                counts.values().all(|n| *n == 1),
                "the CSV sink cuts replayed epochs back"
            );
        },
    );
}

#[test]
fn windowed_aggregates_survive_kills_in_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    let topic = make_topic(dir.path());
    let mut rng = Rng::from_env();
    let clean = clean_output("microbatch", WINDOWED, &topic, dir.path());
    crashed_runs(
        "microbatch",
        WINDOWED,
        &topic,
        dir.path(),
        13,
        &mut rng,
        |crashed| {
            assert_eq!(
                sorted_lines(crashed),
                sorted_lines(&clean),
                "micro-batch windows"
            );
        },
    );
    // 100 records per 1-second window; window k holds values 100k .. 100k+99.
    crashed_runs(
        "continuous",
        WINDOWED,
        &topic,
        dir.path(),
        13,
        &mut rng,
        |crashed| {
            let windows: Vec<(u64, u64)> = sorted_lines(crashed)
                .iter()
                .map(|l| {
                    let f: Vec<&str> = l.split(',').collect();
                    (f[1].parse().unwrap(), f[2].parse().unwrap())
                })
                .collect();
            assert_eq!(windows.len() as u64, RECORDS / 100);
            for (k, (n, total)) in windows.iter().enumerate() {
                let first = k as u64 * 100;
                assert_eq!(*n, 100, "window {k}");
                assert_eq!(*total, 100 * first + 4950, "window {k}");
            }
            assert_eq!(
                sorted_lines(crashed),
                sorted_lines(&clean),
                "both modes agree"
            );
        },
    );
}
