//! A stream-stream left outer join as a real `runnel run` process over two
//! log topics, SIGKILLed at random moments and restarted on the same
//! checkpoint: the output must equal a run that never crashed, and hold
//! every matched pair once and every unmatched row of the left stream
//! exactly once (with an empty right side), once the right stream's
//! watermark has passed its range, in both modes.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use runnel_connectors::log::LogTopic;
use runnel_tests::{kill_and_restart, Rng};

/// Records of the left topic; the right one has every even one.
const RECORDS: u64 = 20_000;
/// Event time of record i: 10 ms apart from a fixed origin.
const BASE_MS: i64 = 1_700_000_000_000;

const JOIN: &str = "SELECT CAST(a.value AS bigint) AS av, CAST(b.value AS bigint) AS bv \
     FROM a LEFT OUTER JOIN b ON a.key = b.key \
     AND a.timestamp BETWEEN b.timestamp AND b.timestamp + INTERVAL 1 SECOND";

fn make_topic(dir: &Path, name: &str, step: u64) -> std::path::PathBuf {
    let topic = LogTopic::create(dir, name, 1).unwrap();
    let mut producer = topic.producer().unwrap();
    for i in (0..RECORDS).step_by(step as usize) {
        let text = i.to_string();
        producer
            .send(
                None,
                Some(text.as_bytes()),
                Some(text.as_bytes()),
                BASE_MS + i as i64 * 10,
            )
            .unwrap();
    }
    producer.sync().unwrap();
    topic.path().to_path_buf()
}

fn spawn(mode: &str, topics: &[std::path::PathBuf; 2], out: &Path, ckpt: &Path) -> Child {
    let source = |name: &str, topic: &Path| {
        format!(
            "{name}=log:{}?starting_offsets=earliest&max_records_per_trigger=1500\
             &watermark=timestamp:2 seconds",
            topic.display()
        )
    };
    Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args([
            "run",
            "--mode",
            mode,
            "--sql",
            JOIN,
            "--until-idle",
            "--progress",
            "none",
        ])
        .args(["--source", &source("a", &topics[0])])
        .args(["--source", &source("b", &topics[1])])
        .args(["--sink", &format!("csv:{}", out.display())])
        .args(["--checkpoint", ckpt.to_str().unwrap(), "--epoch-ms", "20"])
        .stderr(Stdio::null())
        .spawn()
        .expect("start runnel run")
}

fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().skip(1).map(str::to_string).collect();
    lines.sort();
    lines
}

/// What the join gives: every even record with itself, and every odd record
/// whose range the right stream's final watermark (its last event time less
/// 2 s) has passed, with an empty right side.
fn check(text: &str) {
    let last_b = RECORDS - 2;
    let mut expected: Vec<String> = (0..RECORDS)
        .filter_map(|i| {
            if i % 2 == 0 {
                Some(format!("{i},{i}"))
            } else if (i as i64) * 10 < last_b as i64 * 10 - 2_000 {
                Some(format!("{i},"))
            } else {
                None
            }
        })
        .collect();
    expected.sort();
    let got = sorted_lines(text);
    assert_eq!(got.len(), expected.len(), "rows");
    assert!(
        got == expected,
        "the joined rows differ from the definition"
    );
}

#[test]
fn an_outer_stream_stream_join_emits_unmatched_rows_once_across_kills() {
    let dir = tempfile::tempdir().unwrap();
    let topics = [
        make_topic(dir.path(), "a", 1),
        make_topic(dir.path(), "b", 2),
    ];
    let mut rng = Rng::from_env();
    for (mode, kills) in [("microbatch", 8), ("continuous", 8)] {
        let (out, ckpt) = (
            dir.path().join(format!("{mode}-clean.csv")),
            dir.path().join(format!("{mode}-clean-ckpt")),
        );
        assert!(spawn(mode, &topics, &out, &ckpt).wait().unwrap().success());
        let clean = std::fs::read_to_string(&out).unwrap();
        check(&clean);
        let mut landed = 0;
        let mut round = 0;
        while landed < kills {
            let out = dir.path().join(format!("{mode}-{round}.csv"));
            let ckpt = dir.path().join(format!("{mode}-{round}-ckpt"));
            landed += kill_and_restart(
                &mut rng,
                kills - landed,
                (20, 200),
                || spawn(mode, &topics, &out, &ckpt),
                || {},
            );
            let text = std::fs::read_to_string(&out).unwrap();
            check(&text);
            if mode == "microbatch" {
                assert_eq!(
                    text, clean,
                    "micro-batch output equals the clean run's, byte for byte"
                );
            }
            round += 1;
        }
        eprintln!("{mode}: {landed} kills landed over {round} run(s)");
    }
}
