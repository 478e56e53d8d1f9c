//! Micro-batch mode is exactly-once: a query killed with SIGKILL at random
//! moments (at least 20 times) and restarted on its checkpoint leaves the
//! sink with exactly the output of a run that never crashed.

use std::path::Path;
use std::process::Child;

use runnel_tests::{crash_child, kill_and_restart, Rng};

/// A fixed event-time origin, so that every run computes the same windows.
const START_US: &str = "1700000000000000";

fn spawn(ckpt: &Path, out: &Path, query: &str, rows: u64, rate: u64) -> Child {
    crash_child()
        .args(["--mode", "microbatch", "--start-us", START_US])
        .args(["--checkpoint", ckpt.to_str().unwrap()])
        .args(["--out", out.to_str().unwrap()])
        .args(["--rows", &rows.to_string(), "--rate", &rate.to_string()])
        .args(["--query", query, "--sink", "csv"])
        .spawn()
        .expect("start the child query")
}

fn no_crash_output(dir: &Path, query: &str, rows: u64, rate: u64) -> String {
    let (ckpt, out) = (dir.join("clean-ckpt"), dir.join("clean.csv"));
    let status = spawn(&ckpt, &out, query, rows, rate).wait().unwrap();
    assert!(status.success());
    std::fs::read_to_string(out).unwrap()
}

fn crash_output(dir: &Path, query: &str, rows: u64, rate: u64, kills: usize) -> String {
    let (ckpt, out) = (dir.join("ckpt"), dir.join("out.csv"));
    let mut rng = Rng::from_env();
    let landed = kill_and_restart(
        &mut rng,
        kills,
        (15, 120),
        || spawn(&ckpt, &out, query, rows, rate),
        || {},
    );
    eprintln!("{landed} kills landed");
    assert!(
        landed >= 20,
        "only {landed} kills landed before the query finished"
    );
    std::fs::read_to_string(out).unwrap()
}

#[test]
fn stateless_output_equals_a_run_without_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let (rows, rate) = (60_000, 20_000);
    let clean = no_crash_output(dir.path(), "stateless", rows, rate);
    let crashed = crash_output(dir.path(), "stateless", rows, rate, 22);
    assert_eq!(clean.lines().count() as u64, rows + 1);
    assert!(
        crashed == clean,
        "the crashed run's output differs from the clean run's"
    );
}

#[test]
fn windowed_output_equals_a_run_without_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let (rows, rate) = (60_000, 20_000);
    let clean = no_crash_output(dir.path(), "windowed", rows, rate);
    let crashed = crash_output(dir.path(), "windowed", rows, rate, 22);
    assert!(clean.lines().count() >= 4, "{clean}");
    assert!(crashed == clean, "crashed:\n{crashed}\nclean:\n{clean}");
}
