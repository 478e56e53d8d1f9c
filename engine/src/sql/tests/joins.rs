//! Stream-static joins through SQL and the builder, in both modes: hand-checked
//! INNER and LEFT OUTER joins (null keys never match, duplicate keys
//! multiply, unmatched rows get nulls, extra conditions on the joined row),
//! qualified and ambiguous names, key casts, joins feeding aggregations and
//! windows, the refused queries with their reasons and carets, and a
//! property test that both modes agree with a nested-loop join.

use proptest::prelude::*;

use super::*;
use crate::expr::col;
use crate::plan::JoinType;
use crate::table::StaticTable;

fn stream_schema() -> SchemaRef {
    schema(&[
        ("id", DataType::Int64),
        ("k", DataType::Int64),
        ("x", DataType::Utf8),
    ])
}

fn stream_rows() -> Vec<Row> {
    vec![
        row![1i64, 1i64, "a"],
        row![2i64, 2i64, "b"],
        row![3i64, Value::Null, "c"],
        row![4i64, 9i64, "d"],
        row![5i64, 1i64, "e"],
    ]
}

/// `t`: key 1 twice, key 2 once, and a row with a null key.
fn table_t() -> StaticTable {
    StaticTable::from_rows(
        "t",
        schema(&[
            ("k", DataType::Int64),
            ("name", DataType::Utf8),
            ("w", DataType::Int64),
        ]),
        vec![
            row![1i64, "one", 10i64],
            row![1i64, "uno", 20i64],
            row![2i64, "two", 30i64],
            row![Value::Null, "none", 40i64],
        ],
    )
    .unwrap()
}

/// Runs `sql` joining `tables` with `trigger`.
fn run_joined(
    sql: &str,
    input: &SchemaRef,
    rows: &[Row],
    tables: &[StaticTable],
    mode: OutputMode,
    trigger: Trigger,
) -> (Vec<Row>, SchemaRef) {
    let query = StreamingSql::parse(sql).unwrap_or_else(|e| panic!("{e}"));
    let source = FixedRows {
        schema: input.clone(),
        rows: rows.to_vec(),
        next: 0,
        planned: 0,
    };
    let df = query
        .apply_with_tables(DataFrame::from_source(query.table(), source), tables)
        .unwrap_or_else(|e| panic!("{e}"));
    collect(df, mode, trigger)
}

fn collect(df: DataFrame, mode: OutputMode, trigger: Trigger) -> (Vec<Row>, SchemaRef) {
    let (sink, table) = MemorySink::new("result");
    let running = df
        .write_stream(sink)
        .output_mode(mode)
        .trigger(trigger)
        .start()
        .unwrap_or_else(|e| panic!("{e}"));
    running.await_termination().expect("the query ends cleanly");
    (table.rows(), table.schema().expect("the schema"))
}

/// Runs `sql` in append mode in both modes, asserts they agree, returns the rows.
fn joined_both(sql: &str, input: SchemaRef, rows: Vec<Row>, tables: &[StaticTable]) -> Vec<Row> {
    joined_both_with_schema(sql, input, rows, tables).0
}

fn joined_both_with_schema(
    sql: &str,
    input: SchemaRef,
    rows: Vec<Row>,
    tables: &[StaticTable],
) -> (Vec<Row>, SchemaRef) {
    let (continuous, schema) = run_joined(
        sql,
        &input,
        &rows,
        tables,
        OutputMode::Append,
        Trigger::default(),
    );
    let (micro, micro_schema) = run_joined(
        sql,
        &input,
        &rows,
        tables,
        OutputMode::Append,
        Trigger::AvailableNow,
    );
    assert_eq!(names(&schema), names(&micro_schema), "{sql}");
    assert_eq!(
        continuous, micro,
        "{sql}: continuous and micro-batch differ"
    );
    (continuous, schema)
}

fn pairs(rows: &[Row]) -> Vec<(i64, Option<String>)> {
    rows.iter()
        .map(|r| {
            let Value::Int64(id) = r[0] else {
                panic!("an id in {r}")
            };
            let name = match &r[1] {
                Value::Null => None,
                v => Some(v.to_string()),
            };
            (id, name)
        })
        .collect()
}

fn p(id: i64, name: Option<&str>) -> (i64, Option<String>) {
    (id, name.map(str::to_string))
}

#[test]
fn inner_join_multiplies_duplicate_keys_and_never_matches_null_keys() {
    let rows = joined_both(
        "SELECT s.id, t.name FROM s JOIN t ON s.k = t.k",
        stream_schema(),
        stream_rows(),
        &[table_t()],
    );
    assert_eq!(
        pairs(&rows),
        [
            p(1, Some("one")),
            p(1, Some("uno")),
            p(2, Some("two")),
            p(5, Some("one")),
            p(5, Some("uno")),
        ]
    );
}

#[test]
fn left_outer_join_fills_nulls_for_rows_without_a_match() {
    let rows = joined_both(
        "SELECT id, name FROM s LEFT OUTER JOIN t ON s.k = t.k",
        stream_schema(),
        stream_rows(),
        &[table_t()],
    );
    assert_eq!(
        pairs(&rows),
        [
            p(1, Some("one")),
            p(1, Some("uno")),
            p(2, Some("two")),
            p(3, None),
            p(4, None),
            p(5, Some("one")),
            p(5, Some("uno")),
        ]
    );
}

#[test]
fn extra_conditions_apply_to_the_joined_row() {
    // LEFT OUTER: a row whose matches all fail the condition gets nulls.
    let rows = joined_both(
        "SELECT id, name FROM s LEFT JOIN t ON s.k = t.k AND t.w > 15",
        stream_schema(),
        stream_rows(),
        &[table_t()],
    );
    assert_eq!(
        pairs(&rows),
        [
            p(1, Some("uno")),
            p(2, Some("two")),
            p(3, None),
            p(4, None),
            p(5, Some("uno")),
        ]
    );
    // A condition over both sides, with the key equality written second.
    let rows = joined_both(
        "SELECT a.id, b.name FROM s AS a INNER JOIN t b ON b.w > a.id * 10 AND b.k = a.k",
        stream_schema(),
        stream_rows(),
        &[table_t()],
    );
    assert_eq!(pairs(&rows), [p(1, Some("uno")), p(2, Some("two"))]);
}

#[test]
fn select_star_keeps_both_key_columns_and_qualified_stars_pick_a_side() {
    let (rows, schema) = joined_both_with_schema(
        "SELECT * FROM s JOIN t ON s.k = t.k WHERE id = 2",
        stream_schema(),
        stream_rows(),
        &[table_t()],
    );
    assert_eq!(names(&schema), ["id", "k", "x", "k", "name", "w"]);
    assert_eq!(rows, [row![2i64, 2i64, "b", 2i64, "two", 30i64]]);
    let (rows, schema) = joined_both_with_schema(
        "SELECT t.*, s.k FROM s JOIN t ON s.k = t.k WHERE id = 2",
        stream_schema(),
        stream_rows(),
        &[table_t()],
    );
    assert_eq!(names(&schema), ["k", "name", "w", "k"]);
    assert_eq!(rows, [row![2i64, "two", 30i64, 2i64]]);
}

#[test]
fn key_types_are_cast_as_spark_compares_them() {
    // A string key against a bigint key, a double against a bigint.
    let input = schema(&[("id", DataType::Int64), ("code", DataType::Utf8)]);
    let rows = vec![row![1i64, "2"], row![2i64, "x"], row![3i64, "1"]];
    let out = joined_both(
        "SELECT id, name FROM s JOIN t ON s.code = t.k",
        input,
        rows,
        &[table_t()],
    );
    assert_eq!(
        pairs(&out),
        [p(1, Some("two")), p(3, Some("one")), p(3, Some("uno"))]
    );
    let input = schema(&[("id", DataType::Int64), ("f", DataType::Float64)]);
    let rows = vec![row![1i64, 2.0], row![2i64, 2.5], row![3i64, -0.0]];
    let out = joined_both(
        "SELECT id, name FROM s JOIN t ON s.f = t.k",
        input,
        rows,
        &[table_t()],
    );
    assert_eq!(pairs(&out), [p(1, Some("two"))]);
    let input = schema(&[("id", DataType::Int64), ("b", DataType::Boolean)]);
    let err = join_error("SELECT id FROM s JOIN t ON s.b = t.k", input);
    assert!(
        err.contains("cannot compare boolean with bigint"),
        "unexpected: {err}"
    );
}

#[test]
fn joins_feed_aggregations() {
    let mut results = Vec::new();
    for trigger in [Trigger::default(), Trigger::AvailableNow] {
        let (rows, schema) = run_joined(
            "SELECT t.name, count(*) AS n, sum(s.id) AS ids FROM s JOIN t ON s.k = t.k \
             GROUP BY t.name",
            &stream_schema(),
            &stream_rows(),
            &[table_t()],
            OutputMode::Update,
            trigger,
        );
        assert_eq!(names(&schema), ["name", "n", "ids"]);
        let mut last: Vec<Row> = last_by_key(&rows, &[0]).into_values().collect();
        last.sort_by_key(|r| r[0].to_string());
        results.push(last);
    }
    assert_eq!(results[0], results[1]);
    assert_eq!(
        results[0],
        [
            row!["one", 2i64, 6i64],
            row!["two", 1i64, 2i64],
            row!["uno", 2i64, 6i64]
        ]
    );
}

fn regions() -> StaticTable {
    StaticTable::from_rows(
        "regions",
        schema(&[("Country", DataType::Utf8), ("Region", DataType::Utf8)]),
        vec![
            row!["United Kingdom", "British Isles"],
            row!["EIRE", "British Isles"],
            row!["France", "Western Europe"],
        ],
    )
    .unwrap()
}

#[test]
fn a_join_feeds_a_windowed_aggregation_with_a_watermark() {
    let sql = "SELECT s.Region, window.start AS day, sum(r.Quantity) AS qty, count(*) AS lines \
               FROM retail r JOIN regions s ON r.Country = s.Country \
               GROUP BY s.Region, window(r.InvoiceDate, '1 day')";
    // Computed from RETAIL directly: region of each line, per day.
    let region = |country: &str| match country {
        "United Kingdom" | "EIRE" => "British Isles",
        "France" => "Western Europe",
        other => panic!("no region for {other}"),
    };
    let mut expected: HashMap<(String, String), (i64, i64)> = HashMap::new();
    for r in RETAIL {
        let e = expected
            .entry((region(r.7).to_string(), r.4[..10].to_string()))
            .or_default();
        e.0 += r.3;
        e.1 += 1;
    }
    let mut expected: Vec<Row> = expected
        .into_iter()
        .map(|((region, day), (qty, lines))| {
            row![region, ts(&format!("{day} 00:00:00")), qty, lines]
        })
        .collect();
    expected.sort_by_key(|r| (r[0].to_string(), r[1].to_string()));
    for trigger in [Trigger::default(), Trigger::AvailableNow] {
        let query = StreamingSql::parse(sql).unwrap();
        let source = FixedRows {
            schema: retail_schema(),
            rows: retail_rows(),
            next: 0,
            planned: 0,
        };
        let df = DataFrame::from_source("retail", source).with_watermark("InvoiceDate", "1 hour");
        let df = query.apply_with_tables(df, &[regions()]).unwrap();
        let (rows, schema) = collect(df, OutputMode::Append, trigger);
        assert_eq!(names(&schema), ["Region", "day", "qty", "lines"]);
        let mut rows = rows;
        rows.sort_by_key(|r| (r[0].to_string(), r[1].to_string()));
        // Append mode emits a window once the watermark passes its end: the
        // last day's windows stay open, as in Spark.
        let last_day = expected.iter().map(|r| r[1].to_string()).max().unwrap();
        let closed: Vec<Row> = expected
            .iter()
            .filter(|r| r[1].to_string() != last_day)
            .cloned()
            .collect();
        assert_eq!(rows, closed, "{trigger:?}");
    }
}

#[test]
fn the_builder_joins_a_table_made_from_a_record_batch() {
    let table = table_t();
    let batch = table.batch().clone();
    let table = StaticTable::from_batch("lookup", batch).unwrap();
    let mut results = Vec::new();
    for trigger in [Trigger::default(), Trigger::AvailableNow] {
        let source = FixedRows {
            schema: stream_schema(),
            rows: stream_rows(),
            next: 0,
            planned: 0,
        };
        let df = DataFrame::from_source("events", source)
            .alias("e")
            .join_as(
                &table,
                "l",
                col("e.k")
                    .eq(col("l.k"))
                    .and(col("w").lt(crate::lit(25i64))),
                JoinType::LeftOuter,
            )
            .select([col("id"), col("name")]);
        results.push(collect(df, OutputMode::Append, trigger).0);
    }
    assert_eq!(results[0], results[1]);
    assert_eq!(
        pairs(&results[0]),
        [
            p(1, Some("one")),
            p(1, Some("uno")),
            p(2, None),
            p(3, None),
            p(4, None),
            p(5, Some("one")),
            p(5, Some("uno")),
        ]
    );
    // An unqualified name both sides have is ambiguous, naming both.
    let source = FixedRows {
        schema: stream_schema(),
        rows: vec![],
        next: 0,
        planned: 0,
    };
    let df = DataFrame::from_source("events", source).join(
        &table,
        col("k").eq(col("lookup.k")),
        JoinType::Inner,
    );
    let err = df.error().expect("an error").to_string();
    assert!(
        err.contains("reference `k` is ambiguous, could be: events.k, lookup.k"),
        "{err}"
    );
}

#[test]
fn a_table_over_its_row_limit_is_refused_naming_it() {
    let rows: Vec<Row> = (0..11i64).map(|i| row![i, "x", i]).collect();
    let err = StaticTable::from_rows_limited("big", table_t().schema(), rows, 10)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("static table `big` has more than 10 rows (max_rows)"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// Refused queries: the reason, under a caret.

fn join_error(sql: &str, input: SchemaRef) -> String {
    let source = FixedRows {
        schema: input,
        rows: vec![],
        next: 0,
        planned: 0,
    };
    match StreamingSql::parse(sql) {
        Err(e) => e.to_string(),
        Ok(q) => {
            match q.apply_with_tables(DataFrame::from_source(q.table(), source), &[table_t()]) {
                Err(e) => e.to_string(),
                Ok(_) => panic!("`{sql}` planned without an error"),
            }
        }
    }
}

/// Asserts the error of `sql` (stream `s`, static table `t`) contains `msg`
/// and points at the first `target`.
fn assert_join_error(sql: &str, msg: &str, target: &str) {
    let err = join_error(sql, stream_schema());
    assert!(err.contains(msg), "expected `{msg}` in:\n{err}");
    let col = sql.find(target).expect("the target") + 1;
    let expected = format!(
        " at line 1, column {col}\n  {sql}\n  {}{}",
        " ".repeat(col - 1),
        "^".repeat(target.chars().count())
    );
    assert!(
        err.ends_with(&expected),
        "expected:\n{expected}\ngot:\n{err}"
    );
}

#[test]
fn unsupported_joins_are_refused_with_their_reason() {
    assert_join_error(
        "SELECT id FROM s RIGHT OUTER JOIN t ON s.k = t.k",
        "RIGHT OUTER JOIN with the static table on the right is not supported",
        "RIGHT",
    );
    assert_join_error(
        "SELECT id FROM s FULL OUTER JOIN t ON s.k = t.k",
        "FULL OUTER JOIN with a stream is not supported",
        "FULL",
    );
    assert_join_error(
        "SELECT id FROM s CROSS JOIN t",
        "CROSS JOIN is not supported on a streaming query",
        "CROSS",
    );
    assert_join_error(
        "SELECT id FROM s JOIN t USING (k)",
        "JOIN ... USING is not supported",
        "USING",
    );
    assert_join_error(
        "SELECT id FROM s, t",
        "FROM lists more than one table, which is a cross join",
        "t",
    );
    assert_join_error(
        "SELECT a.id FROM s a JOIN s b ON a.k = b.k",
        "a stream cannot be joined with itself (`s` is read once)",
        "s b",
    );
    assert_join_error(
        "SELECT id FROM s JOIN regions r ON s.x = r.Country",
        "table `regions` cannot be found: it is neither a stream the query reads nor a static \
         table (the static tables are: t)",
        "regions r",
    );
    assert_join_error(
        "SELECT id FROM t JOIN s ON s.k = t.k",
        "the static table `t` is on the left of the join, but a stream-static join keeps the \
         static table on the right: write FROM s INNER JOIN t",
        "s",
    );
}

#[test]
fn a_join_without_a_key_equality_is_refused_at_its_condition() {
    assert_join_error(
        "SELECT id FROM s JOIN t ON s.k < t.k",
        "needs at least one equality between a stream column and a column of table `t`",
        "s.k < t.k",
    );
    assert_join_error(
        "SELECT id FROM s JOIN t ON s.k = t.k OR t.w > 1",
        "needs at least one equality",
        "s.k = t.k OR t.w > 1",
    );
    assert_join_error(
        "SELECT id FROM s JOIN t ON k = t.k",
        "reference `k` is ambiguous, could be: s.k, t.k",
        "k",
    );
    assert_join_error(
        "SELECT k FROM s JOIN t ON s.k = t.k",
        "reference `k` is ambiguous, could be: s.k, t.k",
        "k",
    );
    assert_join_error(
        "SELECT id FROM s JOIN t ON s.k = u.k",
        "table or alias `u` cannot be resolved; the query reads `s` and `t`",
        "u",
    );
}

// ---------------------------------------------------------------------------
// Both modes agree with a nested-loop join over random data.

fn value(v: Option<i64>) -> Value {
    v.map_or(Value::Null, Value::Int64)
}

/// The expected rows: for each stream row in order, each table row in
/// order whose key equals (nulls never do) and whose `w` passes `min_w`;
/// LEFT OUTER keeps an unmatched row with nulls.
fn nested_loop(
    stream: &[(i64, Option<i64>)],
    table: &[(Option<i64>, i64)],
    outer: bool,
    min_w: i64,
) -> Vec<Row> {
    let mut out = Vec::new();
    for &(id, k) in stream {
        let mut matched = false;
        for &(tk, w) in table {
            if k.is_some() && k == tk && w > min_w {
                out.push(row![id, value(k), value(tk), w]);
                matched = true;
            }
        }
        if !matched && outer {
            out.push(row![id, value(k), Value::Null, Value::Null]);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn both_modes_agree_with_a_nested_loop_join(
        stream in prop::collection::vec(prop::option::weighted(0.8, 0i64..6), 0..40),
        table in prop::collection::vec((prop::option::weighted(0.8, 0i64..6), 0i64..10), 0..12),
        outer in any::<bool>(),
        min_w in -1i64..10,
    ) {
        let stream: Vec<(i64, Option<i64>)> =
            stream.into_iter().enumerate().map(|(i, k)| (i as i64, k)).collect();
        let static_table = StaticTable::from_rows(
            "t",
            schema(&[("k", DataType::Int64), ("w", DataType::Int64)]),
            table.iter().map(|&(k, w)| row![value(k), w]).collect(),
        )
        .unwrap();
        let how = if outer { "LEFT OUTER" } else { "INNER" };
        let sql = format!(
            "SELECT s.id, s.k, t.k AS tk, t.w FROM s {how} JOIN t ON s.k = t.k AND t.w > {min_w}"
        );
        let rows = joined_both(
            &sql,
            schema(&[("id", DataType::Int64), ("k", DataType::Int64)]),
            stream.iter().map(|&(id, k)| row![id, value(k)]).collect(),
            &[static_table],
        );
        prop_assert_eq!(rows, nested_loop(&stream, &table, outer, min_w));
    }
}

#[test]
fn an_empty_table_keeps_every_row_in_a_left_outer_join_and_none_in_an_inner_one() {
    let empty = StaticTable::from_rows("t", table_t().schema(), vec![]).unwrap();
    let rows = joined_both(
        "SELECT id, name FROM s LEFT JOIN t ON s.k = t.k",
        stream_schema(),
        stream_rows(),
        std::slice::from_ref(&empty),
    );
    assert_eq!(
        pairs(&rows),
        [p(1, None), p(2, None), p(3, None), p(4, None), p(5, None)]
    );
    let rows = joined_both(
        "SELECT id, name FROM s JOIN t ON s.k = t.k",
        stream_schema(),
        stream_rows(),
        &[empty],
    );
    assert!(rows.is_empty());
}

#[test]
fn several_keys_of_several_types_match_together() {
    // Country (string) and day (date) against a table keyed by both, the
    // stream's day given as a timestamp: compared as timestamps.
    let input = schema(&[
        ("id", DataType::Int64),
        ("country", DataType::Utf8),
        ("at", timestamp_type()),
    ]);
    let rows = vec![
        row![1i64, "FR", ts("2024-01-01 00:00:00")],
        row![2i64, "FR", ts("2024-01-01 10:00:00")],
        row![3i64, "DE", ts("2024-01-02 00:00:00")],
        row![4i64, "FR", ts("2024-01-02 00:00:00")],
        row![5i64, Value::Null, ts("2024-01-01 00:00:00")],
    ];
    let day = |d: &str| Value::Date(crate::time::parse_date(d).expect("a date"));
    let promos = StaticTable::from_rows(
        "promos",
        schema(&[
            ("country", DataType::Utf8),
            ("day", DataType::Date32),
            ("promo", DataType::Utf8),
        ]),
        vec![
            row!["FR", day("2024-01-01"), "new year"],
            row!["DE", day("2024-01-02"), "second"],
            row!["FR", day("2024-01-03"), "later"],
        ],
    )
    .unwrap();
    let out = joined_both(
        "SELECT s.id, p.promo FROM s LEFT JOIN promos p ON s.country = p.country AND s.at = p.day",
        input,
        rows,
        &[promos],
    );
    assert_eq!(
        pairs(&out),
        [
            p(1, Some("new year")),
            p(2, None),
            p(3, Some("second")),
            p(4, None),
            p(5, None),
        ]
    );
}
