//! `runnel run --ui`: the live view of a running query in a real browser
//! (headless Chromium from the Debian packages, installed by
//! `tools/chromium.sh`, which `tools/test.sh` runs), and the refusal of a
//! non-loopback address.
//!
//! The browser test opens the page of a running query, lets it poll, dumps
//! the DOM and takes a screenshot; every chart writes how many points it
//! drew into a `data-points` attribute, and the latency figures their
//! values into `data-value`, so the dumped DOM says what was drawn. With
//! `RUNNEL_UI_SCREENSHOT=PATH` the screenshot is also copied to PATH (how
//! the README's picture is made).
#![cfg(feature = "ui")]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn runnel() -> Command {
    Command::new(env!("CARGO_BIN_EXE_runnel"))
}

/// A guard against a hang, not a timing goal.
const PATIENCE: Duration = Duration::from_secs(120);

const SQL: &str = "SELECT window(timestamp, '1 second') AS w, value % 10 AS k, count(*) AS n \
                   FROM r GROUP BY window(timestamp, '1 second'), value % 10";
const SOURCE: &str = "r=rate:?rows_per_second=2000&watermark=timestamp:1 second";

fn chromium() -> PathBuf {
    let path = std::env::var_os("RUNNEL_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "headless Chromium not found at {}: run the tests through tools/test.sh, or run \
         `bash tools/chromium.sh` (as root it installs the Debian package)",
        path.display()
    );
    path
}

/// One HTTP/1.1 GET: status and body.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

fn get_json(addr: SocketAddr, path: &str) -> serde_json::Value {
    let (status, body) = get(addr, path);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// `runnel run --ui 127.0.0.1:0` in the background; kills it on drop.
struct Running {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(mode: &str, checkpoint: &Path) -> Running {
    let mut child = runnel()
        .args(["run", "--mode", mode, "--sql", SQL, "--source", SOURCE])
        // Two aggregation tasks in continuous mode: rings to show.
        .args(["--parallelism", "2"])
        .args([
            "--sink",
            "null",
            "--progress",
            "none",
            "--ui",
            "127.0.0.1:0",
        ])
        .arg("--checkpoint")
        .arg(checkpoint)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The address is on stderr; the rest of stderr is drained meanwhile.
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("runnel: live view at http://") {
                let _ = tx.send(rest.trim_end_matches('/').to_string());
            } else {
                eprintln!("runnel: {line}");
            }
        }
    });
    let addr = rx
        .recv_timeout(PATIENCE)
        .expect("runnel printed no live view address")
        .parse()
        .unwrap();
    Running { child, addr }
}

/// Waits until the query has reports with rows written, a latency and two
/// seconds of it.
fn wait_for_data(addr: SocketAddr) -> String {
    let started = Instant::now();
    loop {
        let list = get_json(addr, "/api/queries");
        if let Some(q) = list.as_array().unwrap().first() {
            let run_id = q["runId"].as_str().unwrap().to_string();
            let progress = get_json(addr, &format!("/api/queries/{run_id}/progress"));
            let latency = get_json(addr, &format!("/api/queries/{run_id}/latency"));
            let seconds = get_json(addr, &format!("/api/queries/{run_id}/latency/seconds"));
            let reports = progress.as_array().unwrap();
            let with_state = reports
                .iter()
                .filter(|p| !p["stateOperators"].as_array().unwrap().is_empty())
                .count();
            if reports.len() >= 10
                && with_state >= 10
                && latency["endToEnd"]["count"].as_u64().unwrap() > 0
                && seconds.as_array().unwrap().len() >= 2
            {
                return run_id;
            }
        }
        assert!(started.elapsed() < PATIENCE, "no data after {PATIENCE:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs headless Chromium on `url` with `args`; its stdout.
fn browse(profile: &Path, url: &str, args: &[&str]) -> String {
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--no-first-run",
            "--window-size=1280,1500",
            // Page time runs ahead while the page waits on nothing: several
            // polls of the API happen within this budget.
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > PATIENCE {
            let _ = child.kill();
            panic!("chromium did not finish in {PATIENCE:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "chromium failed: {status}");
    reader.join().unwrap()
}

/// The attributes of every `<tag ...>` in `html` whose attributes include
/// `key`.
fn elements_with(html: &str, tag: &str, key: &str) -> Vec<BTreeMap<String, String>> {
    let mut out = Vec::new();
    let open = format!("<{tag} ");
    let mut rest = html;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let end = after.find('>').unwrap();
        let mut attrs = BTreeMap::new();
        let mut text = &after[..end];
        while let Some((name, tail)) = text.split_once("=\"") {
            let (value, tail) = tail.split_once('"').unwrap();
            attrs.insert(name.trim().to_string(), value.to_string());
            text = tail;
        }
        if attrs.contains_key(key) {
            out.push(attrs);
        }
        rest = &after[end..];
    }
    out
}

fn browser_test(mode: &str) {
    let dir = tempfile::tempdir().unwrap();
    let runnel = start(mode, &dir.path().join("ckpt"));
    let run_id = wait_for_data(runnel.addr);
    let url = format!("http://{}/#{run_id}", runnel.addr);

    let dom = browse(&dir.path().join("profile"), &url, &["--dump-dom"]);
    let charts = elements_with(&dom, "figure", "data-chart");
    let by_name: BTreeMap<&str, &BTreeMap<String, String>> = charts
        .iter()
        .map(|a| (a["data-chart"].as_str(), a))
        .collect();
    let expected = [
        "rates",
        "latency",
        "duration",
        "watermark",
        "state",
        "late",
        "backlog",
        "ckpt-duration",
        "ckpt-size",
    ];
    assert_eq!(
        by_name.keys().copied().collect::<Vec<_>>().len(),
        expected.len(),
        "charts: {:?}",
        by_name.keys()
    );
    for name in expected {
        let chart = by_name
            .get(name)
            .unwrap_or_else(|| panic!("no chart {name}"));
        assert_eq!(chart["data-state"], "drawn", "{name}: {chart:?}");
        let points: u64 = chart["data-points"].parse().unwrap();
        assert!(points > 0, "chart {name} drew no point: {chart:?}");
    }
    let figures = elements_with(&dom, "span", "data-value");
    for id in ["lat-p50", "lat-p99", "lat-p999", "lat-max"] {
        let f = figures
            .iter()
            .find(|a| a.get("id").is_some_and(|i| i == id))
            .unwrap_or_else(|| panic!("no {id}"));
        let v: f64 = f["data-value"].parse().unwrap();
        assert!(v > 0.0, "{id} is {v}");
    }
    let expected_mode = if mode == "continuous" {
        "continuous"
    } else {
        "micro-batch"
    };
    assert!(dom.contains(&format!("id=\"q-mode\" class=\"badge\">{expected_mode}<")));
    // The rings between tasks, with their fill, or why there are none.
    let rings = elements_with(&dom, "tr", "data-fill");
    if mode == "continuous" {
        assert_eq!(rings.len(), 4, "{rings:?}");
        for r in &rings {
            let fill: f64 = r["data-fill"].parse().unwrap();
            assert!((0.0..=1.0).contains(&fill), "{r:?}");
        }
    } else {
        assert!(rings.is_empty());
        assert!(dom.contains("micro-batch has no rings"));
    }

    let shot = dir.path().join("live-view.png");
    browse(
        &dir.path().join("profile"),
        &url,
        &[&format!("--screenshot={}", shot.display())],
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000);
    if let Some(keep) = std::env::var_os("RUNNEL_UI_SCREENSHOT") {
        if mode == "continuous" {
            std::fs::copy(&shot, keep).unwrap();
        }
    }
}

#[test]
fn a_browser_draws_every_chart_of_a_continuous_query() {
    browser_test("continuous");
}

#[test]
fn a_browser_draws_every_chart_of_a_micro_batch_query() {
    browser_test("microbatch");
}

#[test]
fn a_non_loopback_address_is_refused_before_the_query_starts() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("ckpt");
    let out = runnel()
        .args([
            "run",
            "--mode",
            "continuous",
            "--sql",
            SQL,
            "--source",
            SOURCE,
        ])
        .args(["--sink", "null", "--progress", "none", "--ui", "0.0.0.0:0"])
        .arg("--checkpoint")
        .arg(&ckpt)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a loopback address"), "{err}");
    assert!(err.contains("--ui-allow-remote"), "{err}");
    assert!(!ckpt.exists(), "the query started");

    // --ui-allow-remote needs --ui.
    let out = runnel()
        .args([
            "run",
            "--mode",
            "continuous",
            "--sql",
            SQL,
            "--source",
            SOURCE,
        ])
        .args(["--sink", "null", "--ui-allow-remote"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}
