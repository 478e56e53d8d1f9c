//! Continuous mode survives SIGKILL: real child processes are killed at
//! random moments and restarted on the same checkpoint.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Child;

use runnel_tests::{durable_rate_offset, Rng};

fn spawn(
    ckpt: &Path,
    out: &Path,
    rows: u64,
    rate: u64,
    query: &str,
    sink: &str,
    parallelism: u32,
) -> Child {
    runnel_tests::crash_child()
        .args(["--checkpoint", ckpt.to_str().unwrap()])
        .args(["--out", out.to_str().unwrap()])
        .args(["--rows", &rows.to_string(), "--rate", &rate.to_string()])
        .args(["--query", query, "--sink", sink])
        .args(["--parallelism", &parallelism.to_string()])
        .spawn()
        .expect("start the child query")
}

fn kill_and_restart(
    rng: &mut Rng,
    kills: usize,
    start: impl FnMut() -> Child,
    after_kill: impl FnMut(),
) {
    let done = runnel_tests::kill_and_restart(rng, kills, (60, 350), start, after_kill);
    assert!(done >= 1, "at least one kill landed");
}

#[test]
fn every_event_survives_kills_and_duplicates_come_only_from_uncommitted_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let (ckpt, out) = (dir.path().join("ckpt"), dir.path().join("values.txt"));
    let (rows, rate) = (40_000u64, 25_000u64);
    let mut rng = Rng::from_env();
    // After each kill, the rows already in the file at or beyond the durable
    // offset belong to epochs that never became durable: the restart replays
    // them. Those, and only those, may appear twice.
    let mut uncommitted: BTreeSet<u64> = BTreeSet::new();
    let mut uncommitted_total = 0usize;
    kill_and_restart(
        &mut rng,
        6,
        || spawn(&ckpt, &out, rows, rate, "stateless", "lines", 1),
        || {
            let resume = durable_rate_offset(&ckpt).unwrap_or(0);
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            for v in text.lines().filter_map(|l| l.parse::<u64>().ok()) {
                if v >= resume {
                    uncommitted.insert(v);
                    uncommitted_total += 1;
                }
            }
        },
    );
    let text = std::fs::read_to_string(&out).unwrap();
    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    for line in text.lines() {
        *seen
            .entry(line.parse().expect("a whole number per line"))
            .or_default() += 1;
    }
    let missing: Vec<u64> = (0..rows)
        .filter(|v| !seen.contains_key(v))
        .take(10)
        .collect();
    assert!(missing.is_empty(), "lost events, first: {missing:?}");
    assert_eq!(seen.len() as u64, rows, "only the generated values appear");
    let duplicated: Vec<u64> = seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(v, _)| *v)
        .collect();
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    eprintln!(
        "{duplicates} duplicates after kills; {uncommitted_total} rows were in uncommitted epochs"
    );
    let stray: Vec<&u64> = duplicated
        .iter()
        .filter(|v| !uncommitted.contains(v))
        .take(10)
        .collect();
    assert!(
        stray.is_empty(),
        "values duplicated although their epoch was durable: {stray:?}"
    );
    assert!(duplicates <= uncommitted_total);
}

#[test]
fn the_csv_sink_holds_each_event_once_across_kills() {
    let dir = tempfile::tempdir().unwrap();
    let (ckpt, out) = (dir.path().join("ckpt"), dir.path().join("out.csv"));
    let (rows, rate) = (30_000u64, 25_000u64);
    let mut rng = Rng::from_env();
    kill_and_restart(
        &mut rng,
        5,
        || spawn(&ckpt, &out, rows, rate, "stateless", "csv", 1),
        || {},
    );
    let text = std::fs::read_to_string(&out).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("value,doubled"));
    let values: Vec<u64> = lines
        .map(|l| {
            let (v, d) = l.split_once(',').expect("two fields");
            let v: u64 = v.parse().unwrap();
            assert_eq!(d.parse::<u64>().unwrap(), 2 * v);
            v
        })
        .collect();
    assert_eq!(
        values,
        (0..rows).collect::<Vec<_>>(),
        "the file is cut back to the durable epoch on restart"
    );
}

fn check_windows(text: &str, rows: u64, rate: u64) {
    // Rows of `window_start,window_end,n,total`; windows hold consecutive
    // values, `rate` of them per full second.
    let mut windows: Vec<(String, u64, u64)> = text
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[0].to_string(),
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
            )
        })
        .collect();
    windows.sort();
    let mut first_value = 0u64;
    for (i, (start, n, total)) in windows.iter().enumerate() {
        let (n, total) = (*n, *total);
        if i > 0 && i + 1 < windows.len() {
            assert_eq!(n, rate, "window {start} is a full second");
        }
        let expected_total = n * first_value + n * (n - 1) / 2;
        assert_eq!(total, expected_total, "sum(value) of window {start}");
        first_value += n;
    }
    assert_eq!(first_value, rows, "every row is counted exactly once");
}

#[test]
fn window_aggregates_are_right_after_kills() {
    let dir = tempfile::tempdir().unwrap();
    let (ckpt, out) = (dir.path().join("ckpt"), dir.path().join("windows.csv"));
    let (rows, rate) = (45_000u64, 15_000u64);
    let mut rng = Rng::from_env();
    kill_and_restart(
        &mut rng,
        6,
        || spawn(&ckpt, &out, rows, rate, "windowed", "csv", 1),
        || {},
    );
    check_windows(&std::fs::read_to_string(&out).unwrap(), rows, rate);
}

#[test]
fn window_aggregates_are_right_after_kills_with_a_keyed_exchange() {
    let dir = tempfile::tempdir().unwrap();
    let (ckpt, out) = (dir.path().join("ckpt"), dir.path().join("windows.csv"));
    let (rows, rate) = (45_000u64, 15_000u64);
    let mut rng = Rng::from_env();
    kill_and_restart(
        &mut rng,
        5,
        || spawn(&ckpt, &out, rows, rate, "windowed", "csv", 2),
        || {},
    );
    check_windows(&std::fs::read_to_string(&out).unwrap(), rows, rate);
}
