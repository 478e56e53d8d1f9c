//! `runnel bench --crash-every SECS`: the guarantee comparison.
//!
//! Per mode: a feeder thread appends numbered records to a log topic at the
//! requested rate for the requested duration, while `runnel run` reads it as
//! a child process that is SIGKILLed and restarted every SECS; once the
//! feeder is done, a last restart drains the topic (`--until-idle`) and
//! exits. Then it counts what reached the output topic: records lost,
//! records duplicated, and how long each restart took to commit its first
//! epoch or batch (recovery time).

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use runnel::{EngineError, Result};
use runnel_connectors::log::LogTopic;
use serde::Serialize;

fn err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Plan(e.to_string())
}

#[derive(Serialize)]
struct CrashRun {
    mode: &'static str,
    records: u64,
    kills: usize,
    lost: u64,
    duplicated: u64,
    recovery_ms_p50: f64,
    recovery_ms_max: f64,
}

fn newest_commit(ckpt: &Path) -> Option<u64> {
    let dir = runnel::checkpoint::CheckpointDir::open_existing(ckpt).ok()??;
    dir.epochs().ok()?.last().copied()
}

/// Starts `runnel run` over the mode's input topic; `drain`: end once the
/// input is read to its end (the feeder is done).
fn spawn(dir: &Path, mode: &str, drain: bool) -> Result<Child> {
    let exe = std::env::current_exe().map_err(err)?;
    let mut cmd = Command::new(exe);
    cmd.args(["run", "--mode", mode, "--sql", "SELECT value FROM events"])
        .args([
            "--source",
            &format!(
                "events=log:{}?starting_offsets=earliest",
                dir.join(format!("in-{mode}")).display()
            ),
        ])
        .args([
            "--sink",
            &format!("log:{}", dir.join(format!("out-{mode}")).display()),
        ])
        .args([
            "--checkpoint",
            &dir.join(format!("ckpt-{mode}")).to_string_lossy(),
        ])
        .args(["--progress", "none", "--epoch-ms", "100"])
        .stderr(Stdio::null());
    if drain {
        cmd.arg("--until-idle");
    }
    cmd.spawn().map_err(err)
}

/// Appends `records` numbered records (`0`, `1`, …) to the mode's input
/// topic at `rate` per second, flushing every millisecond, on a thread.
fn spawn_feeder(
    dir: &Path,
    mode: &str,
    records: u64,
    rate: u64,
) -> Result<std::thread::JoinHandle<Result<()>>> {
    let topic = LogTopic::create(dir, &format!("in-{mode}"), 2).map_err(err)?;
    let mut producer = topic.producer().map_err(err)?;
    Ok(std::thread::spawn(move || {
        let start = Instant::now();
        let mut next = 0u64;
        while next < records {
            let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64 + 1).min(records);
            for v in next..due {
                let text = v.to_string();
                producer
                    .send(
                        None,
                        None,
                        Some(text.as_bytes()),
                        runnel::clock::wall_now_ms(),
                    )
                    .map_err(err)?;
            }
            next = next.max(due);
            producer.flush().map_err(err)?;
            std::thread::sleep(Duration::from_millis(1));
        }
        producer.sync().map_err(err)
    }))
}

fn one_mode(
    dir: &Path,
    mode: &'static str,
    records: u64,
    rate: u64,
    every: Duration,
) -> Result<CrashRun> {
    let ckpt = dir.join(format!("ckpt-{mode}"));
    let feeder = spawn_feeder(dir, mode, records, rate)?;
    let mut child = spawn(dir, mode, false)?;
    let mut kills = 0;
    let mut recoveries: Vec<f64> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let started = Instant::now();
        // Recovery time: from the restart to its first durable epoch or
        // batch. Once the feeder is done and everything is read, a restarted
        // micro-batch run has nothing to commit: after `every` without a
        // commit it is not waited for (and not counted as a recovery).
        if kills > 0 {
            let before = newest_commit(&ckpt);
            let mut committed = false;
            while child.try_wait().map_err(err)?.is_none() {
                if newest_commit(&ckpt) != before {
                    committed = true;
                    break;
                }
                if feeder.is_finished() && started.elapsed() > every {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            if committed {
                recoveries.push(started.elapsed().as_secs_f64() * 1000.0);
            }
        }
        while started.elapsed() < every && child.try_wait().map_err(err)?.is_none() {
            std::thread::sleep(Duration::from_millis(2));
        }
        if let Some(status) = child.try_wait().map_err(err)? {
            if !status.success() {
                return Err(err(format!("{mode}: the query failed ({status})")));
            }
            break;
        }
        child.kill().map_err(err)?; // SIGKILL
        child.wait().map_err(err)?;
        kills += 1;
        if Instant::now() > deadline {
            return Err(err(format!("{mode}: did not finish within 10 minutes")));
        }
        let drain = feeder.is_finished();
        child = spawn(dir, mode, drain)?;
    }
    feeder
        .join()
        .map_err(|_| err("the input feeder panicked"))??;
    let out = LogTopic::open(dir.join(format!("out-{mode}"))).map_err(err)?;
    let mut seen: HashMap<u64, u64> = HashMap::new();
    for p in 0..out.partitions() {
        let mut reader = out.reader(p).map_err(err)?;
        while reader
            .read_batch(8192, |r| {
                if let Some(v) = r
                    .value
                    .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
                {
                    *seen.entry(v).or_default() += 1;
                }
            })
            .map_err(err)?
            > 0
        {}
    }
    let total: u64 = seen.values().sum();
    recoveries.sort_by(f64::total_cmp);
    Ok(CrashRun {
        mode,
        records,
        kills,
        lost: records - (0..records).filter(|v| seen.contains_key(v)).count() as u64,
        duplicated: total - seen.len() as u64,
        recovery_ms_p50: recoveries.get(recoveries.len() / 2).copied().unwrap_or(0.0),
        recovery_ms_max: recoveries.last().copied().unwrap_or(0.0),
    })
}

/// Runs the comparison in each of `modes`, `duration` seconds of records
/// fed at `rate` a second, and prints it; returns the runs as JSON (for
/// `--json`).
pub fn run(modes: &[&'static str], rate: u64, duration: f64, every_s: f64) -> Result<String> {
    let dir = std::env::temp_dir().join(format!("runnel-crash-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(err)?;
    let records = (rate as f64 * duration) as u64;
    let mut runs = Vec::new();
    for &mode in modes {
        eprintln!(
            "runnel bench: {mode}, {records} records fed at {rate} /s, SIGKILL every {every_s} s"
        );
        runs.push(one_mode(
            &dir,
            mode,
            records,
            rate,
            Duration::from_secs_f64(every_s),
        )?);
    }
    println!(
        "{:<12} {:>10} {:>6} {:>8} {:>11} {:>16} {:>16}",
        "mode", "records", "kills", "lost", "duplicated", "recovery p50 ms", "recovery max ms"
    );
    for r in &runs {
        println!(
            "{:<12} {:>10} {:>6} {:>8} {:>11} {:>16.1} {:>16.1}",
            r.mode, r.records, r.kills, r.lost, r.duplicated, r.recovery_ms_p50, r.recovery_ms_max
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    serde_json::to_string_pretty(&serde_json::json!({ "crash_runs": runs })).map_err(err)
}
