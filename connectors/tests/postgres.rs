//! The PostgreSQL sink against a real server (`tools/postgres-test-server.sh`
//! starts one and exports `RUNNEL_POSTGRES`; `tools/test.sh` does it): epochs
//! committed once and skipped on replay, upserts, complete mode's replace,
//! refused tables, rejected rows, the server down and restarted.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{RwLock, RwLockReadGuard};

use postgres::{Client, NoTls};
use runnel::{schema, timestamp_type, DataType, OutputMode, Row, Sink, SinkContext, Value};
use runnel_connectors::{PostgresSink, PostgresSinkOptions};

fn server() -> String {
    std::env::var("RUNNEL_POSTGRES").expect(
        "RUNNEL_POSTGRES is not set: run the tests through tools/test.sh, or export the \
         lines of `bash tools/postgres-test-server.sh start`",
    )
}

/// Held by every test; the restart test takes it alone (a restart ends the
/// other tests' sessions).
static SERVER: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    SERVER.read().unwrap_or_else(|e| e.into_inner())
}

fn client() -> Client {
    Client::connect(&server(), NoTls).expect("connect to the test server")
}

/// A table name no other test uses.
fn fresh_table(what: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{what}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn sink(table: &str, extra: &[(&str, &str)]) -> PostgresSink {
    let url = server();
    let location = url.strip_prefix("postgres:").unwrap();
    let mut options: BTreeMap<String, String> = BTreeMap::new();
    options.insert("table".into(), table.into());
    for (k, v) in extra {
        options.insert(k.to_string(), v.to_string());
    }
    PostgresSink::new(PostgresSinkOptions::parse(location, &options).unwrap())
}

fn ctx(mode: OutputMode, keys: Option<Vec<usize>>, query_id: &str) -> SinkContext {
    SinkContext {
        schema: schema(&[
            ("k", DataType::Utf8),
            ("n", DataType::Int64),
            ("at", timestamp_type()),
        ]),
        output_mode: mode,
        key_columns: keys,
        query_id: query_id.into(),
        replays_same_rows: true,
    }
}

fn row(k: &str, n: i64) -> Row {
    Row::from(vec![
        Value::str(k),
        Value::Int64(n),
        Value::Timestamp(1_700_000_000_000_000 + n),
    ])
}

fn table_rows(c: &mut Client, table: &str) -> Vec<(String, i64)> {
    c.query(
        &format!("SELECT k, n FROM \"{table}\" WHERE k IS NOT NULL ORDER BY k, n"),
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

fn pairs(v: &[(&str, i64)]) -> Vec<(String, i64)> {
    v.iter().map(|(k, n)| (k.to_string(), *n)).collect()
}

#[test]
fn an_epoch_is_committed_once_and_skipped_when_replayed() {
    let _server = shared();
    let table = fresh_table("append");
    let qid = table.clone();
    let mut s = sink(&table, &[("create", "true")]);
    s.open(&ctx(OutputMode::Append, None, &qid), None).unwrap();
    s.write(&row("a", 1)).unwrap();
    s.write(&row("b", 2)).unwrap();
    s.commit(0).unwrap();
    // A restart replays epoch 0 (the checkpoint had not recorded it) and
    // goes on with epoch 1.
    drop(s);
    let mut s = sink(&table, &[]);
    s.open(&ctx(OutputMode::Append, None, &qid), None).unwrap();
    s.write(&row("a", 1)).unwrap();
    s.write(&row("b", 2)).unwrap();
    let replay = s.commit(0).unwrap();
    assert_eq!(replay["written"], false, "{replay}");
    s.write(&row("c", 3)).unwrap();
    s.commit(1).unwrap();
    let mut c = client();
    assert_eq!(
        table_rows(&mut c, &table),
        pairs(&[("a", 1), ("b", 2), ("c", 3)])
    );
    // Timestamps arrive as instants.
    let at: std::time::SystemTime = c
        .query_one(&format!("SELECT at FROM \"{table}\" WHERE k = 'c'"), &[])
        .unwrap()
        .get(0);
    assert_eq!(
        at.duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros(),
        1_700_000_000_000_003
    );
    let last: i64 = c
        .query_one(
            "SELECT last_id FROM runnel_progress WHERE query_id = $1",
            &[&qid],
        )
        .unwrap()
        .get(0);
    assert_eq!(last, 1);
}

#[test]
fn update_mode_upserts_the_last_change_of_each_key() {
    let _server = shared();
    let table = fresh_table("upsert");
    let mut s = sink(&table, &[("create", "true")]);
    s.open(&ctx(OutputMode::Update, Some(vec![0]), &table), None)
        .unwrap();
    for (k, n) in [("a", 1), ("b", 1), ("a", 2), ("a", 3)] {
        s.write(&row(k, n)).unwrap();
    }
    s.commit(0).unwrap();
    s.write(&row("b", 5)).unwrap();
    // A null key is a group of its own, upserted like the others.
    let null_key = |n: i64| Row::from(vec![Value::Null, Value::Int64(n), Value::Null]);
    s.write(&null_key(7)).unwrap();
    s.commit(1).unwrap();
    s.write(&null_key(8)).unwrap();
    s.commit(2).unwrap();
    let mut c = client();
    assert_eq!(
        table_rows(&mut c, &table)[..2],
        pairs(&[("a", 3), ("b", 5)])
    );
    let nulls: Vec<i64> = c
        .query(&format!("SELECT n FROM \"{table}\" WHERE k IS NULL"), &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(nulls, [8]);
}

#[test]
fn complete_mode_starting_afresh_replaces_the_old_rows_in_one_transaction() {
    let _server = shared();
    let table = fresh_table("complete");
    let mut c = client();
    c.batch_execute(&format!(
        "CREATE TABLE \"{table}\" (k text PRIMARY KEY, n bigint, at timestamptz);
         INSERT INTO \"{table}\" VALUES ('old', 9, now())"
    ))
    .unwrap();
    let mut s = sink(&table, &[]);
    s.open(&ctx(OutputMode::Complete, Some(vec![0]), &table), None)
        .unwrap();
    s.write(&row("a", 1)).unwrap();
    s.commit(0).unwrap();
    assert_eq!(table_rows(&mut c, &table), pairs(&[("a", 1)]));
    // Later epochs upsert the changed groups; nothing is deleted again.
    s.write(&row("b", 2)).unwrap();
    s.commit(1).unwrap();
    assert_eq!(table_rows(&mut c, &table), pairs(&[("a", 1), ("b", 2)]));
}

#[test]
fn tables_that_do_not_fit_the_query_are_refused_with_the_column_named() {
    let _server = shared();
    let mut c = client();
    let missing = fresh_table("missing");
    let err = sink(&missing, &[])
        .open(&ctx(OutputMode::Append, None, "q"), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("table {missing} does not exist")),
        "{err}"
    );
    assert!(err.contains("create=true"), "{err}");

    let typed = fresh_table("typed");
    c.batch_execute(&format!(
        "CREATE TABLE \"{typed}\" (k text, n integer, at timestamptz)"
    ))
    .unwrap();
    let err = sink(&typed, &[])
        .open(&ctx(OutputMode::Append, None, "q"), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("column n of table")
            && err.contains("is integer, but the query writes bigint"),
        "{err}"
    );

    let short = fresh_table("short");
    c.batch_execute(&format!("CREATE TABLE \"{short}\" (k text, n bigint)"))
        .unwrap();
    let err = sink(&short, &[])
        .open(&ctx(OutputMode::Append, None, "q"), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!(
            "table {short} has no column at (its columns: k, n)"
        )),
        "{err}"
    );
}

#[test]
fn a_row_the_server_rejects_fails_the_epoch_with_its_message() {
    let _server = shared();
    let table = fresh_table("checked");
    let mut c = client();
    c.batch_execute(&format!(
        "CREATE TABLE \"{table}\" (k text, n bigint CHECK (n < 100), at timestamptz)"
    ))
    .unwrap();
    let mut s = sink(&table, &[]);
    s.open(&ctx(OutputMode::Append, None, &table), None)
        .unwrap();
    s.write(&row("fine", 1)).unwrap();
    s.write(&row("too big", 500)).unwrap();
    let err = s.commit(0).unwrap_err().to_string();
    assert!(err.contains("epoch 0: copying rows"), "{err}");
    assert!(err.contains("violates check constraint"), "{err}");
    // Nothing of the epoch is visible.
    assert!(table_rows(&mut c, &table).is_empty());
}

#[test]
fn continuous_mode_must_accept_duplicates_explicitly() {
    let _server = shared();
    let table = fresh_table("continuous");
    let mut context = ctx(OutputMode::Append, None, &table);
    context.replays_same_rows = false;
    let err = sink(&table, &[("create", "true")])
        .open(&context, None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("delivery=exactly_once needs micro-batch mode"),
        "{err}"
    );
    let mut s = sink(&table, &[("create", "true"), ("delivery", "at_least_once")]);
    s.open(&context, None).unwrap();
    s.write(&row("a", 1)).unwrap();
    s.commit(3).unwrap();
    // At least once: a replayed epoch is written again.
    s.write(&row("a", 1)).unwrap();
    s.commit(3).unwrap();
    assert_eq!(
        table_rows(&mut client(), &table),
        pairs(&[("a", 1), ("a", 1)])
    );
}

#[test]
fn the_server_down_at_start_is_an_error_naming_it() {
    let _server = shared();
    // A port nothing listens on: bind one, note it, let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let options: BTreeMap<String, String> = [("table".to_string(), "t".to_string())].into();
    let mut s = PostgresSink::new(
        PostgresSinkOptions::parse(&format!("//runnel@127.0.0.1:{port}/postgres"), &options)
            .unwrap(),
    );
    let err = s
        .open(&ctx(OutputMode::Append, None, "q"), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!(
            "postgres://runnel@127.0.0.1:{port}/postgres table t"
        )) && err.contains("connecting"),
        "{err}"
    );
}

/// Runs `pg_ctl` of the test server (as its owner when the tests run as
/// root: PostgreSQL refuses root).
fn pg_ctl(args: &[&str]) {
    let bin = std::env::var("RUNNEL_POSTGRES_BIN").expect("RUNNEL_POSTGRES_BIN");
    let dir = std::env::var("RUNNEL_POSTGRES_DIR").expect("RUNNEL_POSTGRES_DIR");
    let pg_ctl = format!("{bin}/pg_ctl");
    let data = format!("{dir}/data");
    let log = format!("{dir}/server.log");
    // The restarted server must not inherit a pipe of this process: its
    // output goes to the log file, and ours to nowhere.
    let mut all = vec!["-D", data.as_str(), "-l", log.as_str(), "-w"];
    all.extend_from_slice(args);
    let root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    let mut cmd = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", &pg_ctl]);
        c
    } else {
        Command::new(&pg_ctl)
    };
    let status = cmd
        .args(&all)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "pg_ctl {args:?}: {status}");
}

#[test]
fn a_server_restart_between_epochs_is_ridden_out() {
    let _alone = SERVER.write().unwrap_or_else(|e| e.into_inner());
    let table = fresh_table("restart");
    let mut s = sink(&table, &[("create", "true")]);
    s.open(&ctx(OutputMode::Append, None, &table), None)
        .unwrap();
    s.write(&row("before", 1)).unwrap();
    s.commit(0).unwrap();
    s.write(&row("after", 2)).unwrap();
    // The session the sink holds dies with the server.
    pg_ctl(&["-m", "fast", "restart"]);
    s.commit(1).unwrap();
    assert_eq!(
        table_rows(&mut client(), &table),
        pairs(&[("after", 2), ("before", 1)])
    );
}
