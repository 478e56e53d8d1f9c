//! runnel's joins held to Spark's answers: each query of
//! `tools/spark-answers.py` run by `runnel run` in both modes over the test
//! fixtures, its final result table compared with the rows Apache Spark
//! 3.5.3 gave for the same SQL (`tests/fixtures/spark-answers/NAME.csv`,
//! written by that script; Spark is not needed to run this test).
//!
//! Spark ran each query in batch over the whole input: the final answer of
//! the same query on a stream once every row has arrived. Rows are compared
//! as multisets of text cells; numbers that print differently (`6` and
//! `6.0`) compare as numbers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const RETAIL: &str = "InvoiceNo string, StockCode string, Description string, Quantity bigint, \
                      InvoiceDate timestamp, UnitPrice double, CustomerID double, Country string";

fn fixtures(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name)
}

/// The query's SQL as the script has it (the same text).
fn sql(name: &str) -> &'static str {
    match name {
        "static-inner" => {
            "SELECT r.InvoiceNo, r.StockCode, r.Quantity, s.Region \
             FROM retail r JOIN regions s ON r.Country = s.Country"
        }
        "static-left-condition" => {
            "SELECT r.InvoiceNo, r.StockCode, r.Quantity, s.Region \
             FROM retail r LEFT OUTER JOIN regions s \
             ON r.Country = s.Country AND r.Quantity >= 12"
        }
        "static-left-grouped" => {
            "SELECT s.Region, window.start AS day, sum(r.Quantity) AS qty, count(*) AS lines \
             FROM retail r LEFT OUTER JOIN regions s ON r.Country = s.Country \
             GROUP BY s.Region, window(r.InvoiceDate, '1 day')"
        }
        "stream-inner-range" => {
            "SELECT a.InvoiceNo, a.StockCode, b.InvoiceNo AS later_invoice \
             FROM retail a JOIN more b \
             ON a.CustomerID = b.CustomerID AND a.InvoiceNo < b.InvoiceNo \
             AND b.InvoiceDate BETWEEN a.InvoiceDate AND a.InvoiceDate + INTERVAL 1 HOUR"
        }
        "stream-left-range" => {
            "SELECT a.InvoiceNo, a.StockCode, b.InvoiceNo AS later_invoice \
             FROM retail a LEFT OUTER JOIN more b \
             ON a.CustomerID = b.CustomerID AND a.InvoiceNo < b.InvoiceNo \
             AND b.InvoiceDate BETWEEN a.InvoiceDate AND a.InvoiceDate + INTERVAL 1 HOUR"
        }
        other => panic!("no query {other}"),
    }
}

/// A CSV file's header and rows.
fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let header = r.headers().unwrap().iter().map(str::to_string).collect();
    let rows = r
        .records()
        .map(|rec| rec.unwrap().iter().map(str::to_string).collect())
        .collect();
    (header, rows)
}

/// A cell as compared: a number in one canonical form, else the text.
fn canonical(cell: &str) -> String {
    match cell.parse::<f64>() {
        Ok(x) if x.is_finite() => format!("{x}"),
        _ => cell.to_string(),
    }
}

/// Runs `name` in `mode` with `sources` (NAME=URI; with one, the regions
/// table too);
/// the result table: every row, or, with `keys`, the last row of each key.
fn runnel_answer(
    name: &str,
    mode: &str,
    sources: &[String],
    keys: Option<usize>,
) -> Vec<Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.csv");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_runnel"));
    cmd.args(["run", "--mode", mode, "--sql", sql(name)]);
    for s in sources {
        cmd.args(["--source", s]);
    }
    if sources.len() == 1 {
        cmd.args([
            "--table",
            &format!(
                "regions=csv:{}?header=true&schema=Country string, Region string",
                fixtures("country-regions.csv").display()
            ),
        ]);
    }
    cmd.args(["--sink", &format!("csv:{}", out.display())])
        .args(["--until-idle", "--progress", "none"]);
    if keys.is_some() {
        cmd.args(["--output-mode", "update"]);
    }
    let run = cmd.output().unwrap();
    assert!(
        run.status.success(),
        "{name} ({mode}): runnel failed:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let (_, rows) = read_csv(&out);
    match keys {
        None => rows,
        Some(k) => {
            let mut last: BTreeMap<Vec<String>, Vec<String>> = BTreeMap::new();
            for r in rows {
                last.insert(r[..k].to_vec(), r);
            }
            last.into_values().collect()
        }
    }
}

fn check(name: &str, sources: &[String], keys: Option<usize>) {
    let (header, spark) = read_csv(&fixtures(&format!("spark-answers/{name}.csv")));
    let mut want: Vec<Vec<String>> = spark
        .iter()
        .map(|r| r.iter().map(|c| canonical(c)).collect())
        .collect();
    want.sort();
    assert!(!want.is_empty(), "{name}: Spark's answer is empty");
    for mode in ["continuous", "microbatch"] {
        let mut got: Vec<Vec<String>> = runnel_answer(name, mode, sources, keys)
            .iter()
            .map(|r| r.iter().map(|c| canonical(c)).collect())
            .collect();
        got.sort();
        if got != want {
            let missing: Vec<_> = want.iter().filter(|r| !got.contains(r)).take(5).collect();
            let extra: Vec<_> = got.iter().filter(|r| !want.contains(r)).take(5).collect();
            panic!(
                "{name} ({mode}): {} rows, Spark {} ({header:?}); Spark's not in runnel's: \
                 {missing:?}; runnel's not in Spark's: {extra:?}",
                got.len(),
                want.len()
            );
        }
    }
}

fn retail(name: &str, watermark: bool) -> String {
    format!(
        "{name}=csv:{}?header=true&schema={RETAIL}{}",
        fixtures("retail-by-day").display(),
        if watermark {
            "&watermark=InvoiceDate:1 hour"
        } else {
            ""
        }
    )
}

#[test]
fn stream_static_joins_give_sparks_answers_in_both_modes() {
    let sources = [retail("retail", false)];
    check("static-inner", &sources, None);
    check("static-left-condition", &sources, None);
    check("static-left-grouped", &sources, Some(2));
}

#[test]
fn stream_stream_joins_give_sparks_answers_in_both_modes() {
    check(
        "stream-inner-range",
        &[retail("retail", false), retail("more", false)],
        None,
    );
    // An outer join needs watermarks on both streams; the fixtures' rows
    // come in time order, so none is late.
    check(
        "stream-left-range",
        &[retail("retail", true), retail("more", true)],
        None,
    );
}
