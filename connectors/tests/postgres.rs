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
        checkpointed: false,
        durable: runnel::DurableEpochs::default(),
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
fn an_upsert_batch_updates_known_keys_and_inserts_new_ones() {
    let _server = shared();
    let table = fresh_table("upsert_mixed");
    let mut s = sink(&table, &[("create", "true")]);
    s.open(&ctx(OutputMode::Update, Some(vec![0]), &table), None)
        .unwrap();
    for (k, n) in [("a", 1), ("b", 1), ("c", 1)] {
        s.write(&row(k, n)).unwrap();
    }
    s.commit(0).unwrap();
    // Keys all different: known ones updated, new ones inserted, together.
    for (k, n) in [("b", 2), ("d", 2), ("a", 2), ("e", 2)] {
        s.write(&row(k, n)).unwrap();
    }
    s.commit(1).unwrap();
    let mut c = client();
    assert_eq!(
        table_rows(&mut c, &table),
        pairs(&[("a", 2), ("b", 2), ("c", 1), ("d", 2), ("e", 2)])
    );
    // A key repeated, known and new ones: each key's last row wins.
    for (k, n) in [("c", 3), ("f", 3), ("c", 4), ("f", 4), ("c", 5), ("a", 3)] {
        s.write(&row(k, n)).unwrap();
    }
    s.commit(2).unwrap();
    assert_eq!(
        table_rows(&mut c, &table),
        pairs(&[("a", 3), ("b", 2), ("c", 5), ("d", 2), ("e", 2), ("f", 4)])
    );
}

#[test]
fn a_keyed_table_the_sink_creates_leaves_room_on_its_pages() {
    let _server = shared();
    let mut c = client();
    let fillfactor = |c: &mut Client, table: &str| -> Option<Vec<String>> {
        c.query_one(
            "SELECT reloptions FROM pg_class WHERE oid = $1::text::regclass",
            &[&format!("\"{table}\"")],
        )
        .unwrap()
        .get(0)
    };
    let keyed = fresh_table("fillfactor_keyed");
    let mut s = sink(&keyed, &[("create", "true")]);
    s.open(&ctx(OutputMode::Update, Some(vec![0]), &keyed), None)
        .unwrap();
    assert_eq!(
        fillfactor(&mut c, &keyed),
        Some(vec!["fillfactor=50".to_string()])
    );
    let packed = fresh_table("fillfactor_set");
    let mut s = sink(&packed, &[("create", "true"), ("fillfactor", "90")]);
    s.open(&ctx(OutputMode::Complete, Some(vec![0]), &packed), None)
        .unwrap();
    assert_eq!(
        fillfactor(&mut c, &packed),
        Some(vec!["fillfactor=90".to_string()])
    );
    // An append table is never updated: packed full.
    let append = fresh_table("fillfactor_append");
    let mut s = sink(&append, &[("create", "true")]);
    s.open(&ctx(OutputMode::Append, None, &append), None)
        .unwrap();
    assert_eq!(fillfactor(&mut c, &append), None);
}

#[test]
fn an_upsert_holds_against_a_concurrent_writer_of_the_same_keys() {
    let _server = shared();
    let table = fresh_table("upsert_concurrent");
    let mut s = sink(&table, &[("create", "true")]);
    s.open(&ctx(OutputMode::Update, Some(vec![0]), &table), None)
        .unwrap();
    for (k, n) in [("a", 1), ("b", 1)] {
        s.write(&row(k, n)).unwrap();
    }
    s.commit(0).unwrap();
    // Another writer, in a transaction still open while the batch runs,
    // inserts a key the batch brings and deletes one the batch updates.
    let mut other = client();
    let mut tx = other.transaction().unwrap();
    tx.batch_execute(&format!(
        "INSERT INTO \"{table}\" VALUES ('c', 100, now());
         DELETE FROM \"{table}\" WHERE k = 'b'"
    ))
    .unwrap();
    for (k, n) in [("a", 2), ("b", 2), ("c", 2)] {
        s.write(&row(k, n)).unwrap();
    }
    std::thread::scope(|scope| {
        let batch = scope.spawn(|| s.commit(1).map(|_| ()));
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(!batch.is_finished(), "the batch waits for the other writer");
        tx.commit().unwrap();
        batch.join().unwrap().unwrap();
    });
    // The batch came last: its rows stand, the deleted key back.
    assert_eq!(
        table_rows(&mut client(), &table),
        pairs(&[("a", 2), ("b", 2), ("c", 2)])
    );
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
fn sinks_starting_together_on_a_new_database_all_create_what_they_need() {
    let _s = shared();
    // A database without the progress table (or the result table), and
    // eight sinks opening on it at once: `CREATE … IF NOT EXISTS` alone
    // lets two creators collide.
    let db = fresh_table("fresh_db");
    client()
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .unwrap();
    let url = server();
    let (base, _) = url.rsplit_once('/').unwrap();
    let location = format!("{}/{db}", base.strip_prefix("postgres:").unwrap());
    let table = fresh_table("together");
    let start = std::sync::Barrier::new(8);
    std::thread::scope(|scope| {
        for i in 0..8 {
            let (location, table, start) = (&location, &table, &start);
            scope.spawn(move || {
                let mut options: BTreeMap<String, String> = BTreeMap::new();
                options.insert("table".into(), table.clone());
                options.insert("create".into(), "true".into());
                let mut s =
                    PostgresSink::new(PostgresSinkOptions::parse(location, &options).unwrap());
                start.wait();
                s.open(&ctx(OutputMode::Append, None, &format!("q{i}")), None)
                    .unwrap_or_else(|e| panic!("sink {i}: {e}"));
            });
        }
    });
    let mut c = Client::connect(&format!("{base}/{db}"), NoTls).unwrap();
    for t in ["runnel_progress", table.as_str()] {
        let n: i64 = c
            .query_one(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = $1",
                &[&t],
            )
            .unwrap()
            .get(0);
        assert_eq!(n, 1, "{t}");
    }
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
fn rejected_rows_go_to_the_dead_letter_file_and_the_rest_commit() {
    let _server = shared();
    let dir = tempfile::tempdir().unwrap();
    for (mode, keys) in [
        (OutputMode::Append, None),
        (OutputMode::Update, Some(vec![0])),
    ] {
        let table = fresh_table("dead_letter");
        let mut c = client();
        let unique = if keys.is_some() { "PRIMARY KEY" } else { "" };
        c.batch_execute(&format!(
            "CREATE TABLE \"{table}\" (k text {unique}, n bigint CHECK (n < 100), at timestamptz)"
        ))
        .unwrap();
        let path = dir.path().join(format!("bad/{table}.jsonl"));
        let dead_letter = format!("dead-letter:{}", path.display());
        let mut s = sink(&table, &[("bad_records", dead_letter.as_str())]);
        s.open(&ctx(mode, keys, &table), None).unwrap();
        s.write(&row("fine", 1)).unwrap();
        s.write(&row("too big", 500)).unwrap();
        s.write(&row("also fine", 2)).unwrap();
        s.write(&row("also too big", 101)).unwrap();
        s.commit(0).unwrap();
        assert_eq!(
            table_rows(&mut c, &table),
            pairs(&[("also fine", 2), ("fine", 1)]),
            "{mode:?}"
        );
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0]["row"]["k"], "too big");
        assert_eq!(lines[0]["row"]["n"], 500);
        assert_eq!(lines[1]["row"]["k"], "also too big");
        assert_eq!(lines[0]["epoch"], 0);
        assert!(
            lines[0]["reason"]
                .as_str()
                .unwrap()
                .contains("violates check constraint"),
            "{lines:?}"
        );
        // The next epoch goes in whole again.
        s.write(&row("later", 3)).unwrap();
        s.commit(1).unwrap();
        assert_eq!(table_rows(&mut c, &table).len(), 3);
    }
}

/// Waits (up to 10 s) until `table` holds `want`.
fn eventually(table: &str, want: &[(&str, i64)]) {
    let want = pairs(want);
    let mut c = client();
    for _ in 0..1000 {
        if table_rows(&mut c, table) == want {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(table_rows(&mut c, table), want);
}

fn prepared_for(query_id: &str) -> i64 {
    client()
        .query_one(
            "SELECT count(*) FROM pg_prepared_xacts WHERE starts_with(gid, $1)",
            &[&format!("runnel:{query_id}:")],
        )
        .unwrap()
        .get(0)
}

/// A continuous query's context with a checkpoint: epochs are cut by time
/// and made durable by the engine's checkpoint (`durable`).
fn continuous(mode: OutputMode, keys: Option<Vec<usize>>, query_id: &str) -> SinkContext {
    let mut context = ctx(mode, keys, query_id);
    context.replays_same_rows = false;
    context.checkpointed = true;
    context
}

#[test]
fn continuous_exactly_once_commits_an_epoch_only_once_the_checkpoint_holds_it() {
    let _server = shared();
    let table = fresh_table("two_phase");
    let context = continuous(OutputMode::Append, None, &table);
    let durable = context.durable.clone();
    let mut s = sink(&table, &[("create", "true")]);
    s.open(&context, None).unwrap();
    s.write(&row("a", 1)).unwrap();
    let state = s.commit(1).unwrap();
    assert_eq!(state["prepared"], true);
    // Prepared, not visible: the checkpoint does not hold epoch 1 yet.
    assert_eq!(prepared_for(&table), 1);
    assert!(table_rows(&mut client(), &table).is_empty());
    durable.advance(1);
    eventually(&table, &[("a", 1)]);
    s.write(&row("b", 2)).unwrap();
    s.commit(2).unwrap();
    durable.advance(2);
    eventually(&table, &[("a", 1), ("b", 2)]);
    // Epoch 3 is prepared, then the process dies before the checkpoint
    // holds it.
    s.write(&row("c", 3)).unwrap();
    s.commit(3).unwrap();
    drop(s);
    assert_eq!(prepared_for(&table), 1);

    // The restart resumes from epoch 2: epoch 3 is rolled back, and its
    // replay (cut at another time, so with other rows) is what lands.
    let context = continuous(OutputMode::Append, None, &table);
    let durable = context.durable.clone();
    durable.advance(2);
    let mut s = sink(&table, &[("create", "true")]);
    s.open(&context, Some(&serde_json::json!({"epoch": 2})))
        .unwrap();
    assert_eq!(prepared_for(&table), 0);
    assert_eq!(
        table_rows(&mut client(), &table),
        pairs(&[("a", 1), ("b", 2)])
    );
    s.write(&row("c", 3)).unwrap();
    s.write(&row("d", 4)).unwrap();
    s.commit(3).unwrap();
    drop(s);

    // Had the checkpoint held epoch 3 when the process died, the restart
    // commits the prepared epoch rather than lose it.
    let context = continuous(OutputMode::Append, None, &table);
    context.durable.advance(3);
    let mut s = sink(&table, &[("create", "true")]);
    s.open(&context, Some(&serde_json::json!({"epoch": 3})))
        .unwrap();
    assert_eq!(prepared_for(&table), 0);
    assert_eq!(
        table_rows(&mut client(), &table),
        pairs(&[("a", 1), ("b", 2), ("c", 3), ("d", 4)])
    );
    s.close().unwrap();
}

#[test]
fn continuous_exactly_once_upserts_the_same_keys_epoch_after_epoch() {
    let _server = shared();
    let table = fresh_table("two_phase_keyed");
    // The next epoch updates the keys whose row locks the previous epoch's
    // prepared transaction holds: it waits for that epoch to commit.
    let context = continuous(OutputMode::Update, Some(vec![0]), &table);
    let durable = context.durable.clone();
    let mut s = sink(&table, &[("create", "true")]);
    s.open(&context, None).unwrap();
    let ticker = {
        let durable = durable.clone();
        std::thread::spawn(move || {
            for e in 1..=20 {
                std::thread::sleep(std::time::Duration::from_millis(5));
                durable.advance(e);
            }
        })
    };
    for e in 1..=20u64 {
        s.write(&row("a", e as i64)).unwrap();
        s.write(&row("b", 100 + e as i64)).unwrap();
        s.commit(e).unwrap();
    }
    s.close().unwrap();
    ticker.join().unwrap();
    assert_eq!(
        table_rows(&mut client(), &table),
        pairs(&[("a", 20), ("b", 120)])
    );
    assert_eq!(prepared_for(&table), 0);
}

#[test]
fn continuous_exactly_once_copies_rows_as_they_come_and_reruns_the_epoch_whole_after_a_lost_connection(
) {
    let _server = shared();
    for (mode, keys) in [
        (OutputMode::Append, None),
        (OutputMode::Update, Some(vec![0])),
    ] {
        let table = fresh_table("two_phase_stream");
        let context = continuous(mode, keys, &table);
        let durable = context.durable.clone();
        let mut s = sink(&table, &[("create", "true")]);
        s.open(&context, None).unwrap();
        s.write(&row("a", 1)).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        s.idle().unwrap();
        // The row went into the epoch's transaction, open and unseen.
        let mut c = client();
        let open: Vec<i32> = c
            .query(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'runnel' \
                 AND state = 'idle in transaction' AND position($1 in query) > 0",
                &[&table],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(open.len(), 1, "{mode:?}: the epoch's transaction is open");
        assert!(table_rows(&mut c, &table).is_empty());
        // The connection dies mid-epoch: the epoch's commit runs the whole
        // transaction again on a new one, every row once.
        c.query("SELECT pg_terminate_backend($1)", &[&open[0]])
            .unwrap();
        s.write(&row("b", 2)).unwrap();
        s.write(&row("a", 5)).unwrap();
        s.commit(1).unwrap();
        durable.advance(1);
        let want: &[(&str, i64)] = if mode == OutputMode::Append {
            &[("a", 1), ("a", 5), ("b", 2)]
        } else {
            &[("a", 5), ("b", 2)]
        };
        eventually(&table, want);
        s.close().unwrap();
        assert_eq!(prepared_for(&table), 0);
    }
}

#[test]
fn continuous_at_least_once_writes_a_replayed_epoch_again() {
    let _server = shared();
    let table = fresh_table("continuous");
    let context = continuous(OutputMode::Append, None, &table);
    let mut s = sink(&table, &[("create", "true"), ("delivery", "at_least_once")]);
    s.open(&context, None).unwrap();
    s.write(&row("a", 1)).unwrap();
    // Rows are committed in groups as they arrive, not at the epoch's end:
    // the task running out of input commits what the sink holds.
    s.idle().unwrap();
    assert_eq!(table_rows(&mut client(), &table), pairs(&[("a", 1)]));
    s.commit(3).unwrap();
    // While rows keep coming, a group is committed within a millisecond.
    for n in 0..64 {
        s.write(&row("g", n)).unwrap();
        std::thread::sleep(std::time::Duration::from_micros(50));
    }
    let grouped = client()
        .query_one(
            &format!("SELECT count(*) FROM \"{table}\" WHERE k = 'g'"),
            &[],
        )
        .unwrap()
        .get::<_, i64>(0);
    assert!(
        grouped >= 32,
        "{grouped} of 64 rows committed before the epoch ended"
    );
    s.commit(4).unwrap();
    client()
        .batch_execute(&format!("DELETE FROM \"{table}\" WHERE k = 'g'"))
        .unwrap();
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
