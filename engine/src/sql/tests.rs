//! Tests of the SQL front end: queries run end to end through the in-memory
//! source and sink, and every error path with its message and caret.

use std::collections::HashMap;

use super::StreamingSql;
use crate::schema::SchemaRef;
use crate::{
    row, schema, timestamp_type, DataFrame, DataType, MemorySink, MemorySource, OutputMode, Row,
    Trigger, Value,
};

mod arrays;
mod joins;

fn ts(text: &str) -> Value {
    Value::Timestamp(crate::time::parse_timestamp_us(text).expect("a timestamp"))
}

fn retail_schema() -> SchemaRef {
    schema(&[
        ("InvoiceNo", DataType::Utf8),
        ("StockCode", DataType::Utf8),
        ("Description", DataType::Utf8),
        ("Quantity", DataType::Int64),
        ("InvoiceDate", timestamp_type()),
        ("UnitPrice", DataType::Float64),
        ("CustomerID", DataType::Int64),
        ("Country", DataType::Utf8),
    ])
}

type RetailRow<'a> = (
    &'a str,
    &'a str,
    &'a str,
    i64,
    &'a str,
    Option<f64>,
    Option<i64>,
    &'a str,
);

/// A few lines shaped like the Online Retail data set.
const RETAIL: [RetailRow<'static>; 11] = [
    (
        "536365",
        "85123A",
        "WHITE HANGING HEART",
        6,
        "2010-12-01 08:26:00",
        Some(2.55),
        Some(17850),
        "United Kingdom",
    ),
    (
        "536365",
        "71053",
        "WHITE METAL LANTERN",
        6,
        "2010-12-01 08:26:00",
        Some(3.39),
        Some(17850),
        "United Kingdom",
    ),
    (
        "536366",
        "22633",
        "HAND WARMER",
        6,
        "2010-12-01 08:28:00",
        Some(1.85),
        Some(17850),
        "United Kingdom",
    ),
    (
        "536367",
        "84879",
        "BIRD ORNAMENT",
        32,
        "2010-12-01 08:34:00",
        Some(1.69),
        Some(13047),
        "United Kingdom",
    ),
    (
        "536370",
        "22728",
        "ALARM CLOCK PINK",
        24,
        "2010-12-01 08:45:00",
        Some(3.75),
        Some(12583),
        "France",
    ),
    (
        "536370",
        "22727",
        "ALARM CLOCK RED",
        24,
        "2010-12-01 08:45:00",
        Some(3.75),
        Some(12583),
        "France",
    ),
    (
        "C536379",
        "D",
        "Discount",
        -1,
        "2010-12-01 09:41:00",
        Some(27.50),
        Some(14527),
        "United Kingdom",
    ),
    (
        "536520",
        "21123",
        "SET 10 LIGHTS",
        1,
        "2010-12-02 12:43:00",
        Some(1.25),
        Some(14729),
        "United Kingdom",
    ),
    (
        "536521",
        "22114",
        "HOT WATER BOTTLE",
        2,
        "2010-12-02 23:59:59",
        Some(4.25),
        None,
        "United Kingdom",
    ),
    (
        "536522",
        "22720",
        "SET OF 3 CAKE TINS",
        3,
        "2010-12-02 10:00:00",
        Some(4.95),
        Some(12583),
        "France",
    ),
    (
        "536523",
        "POST",
        "POSTAGE",
        5,
        "2010-12-02 11:00:00",
        None,
        Some(12583),
        "United Kingdom",
    ),
];

fn retail_rows() -> Vec<Row> {
    RETAIL
        .iter()
        .map(|&(inv, code, desc, qty, date, price, customer, country)| {
            row![inv, code, desc, qty, ts(date), price, customer, country]
        })
        .collect()
}

/// Runs `sql` over `rows` to the end of the stream; the result table's
/// rows and schema.
fn run(sql: &str, input: SchemaRef, rows: Vec<Row>, mode: OutputMode) -> (Vec<Row>, SchemaRef) {
    let query = StreamingSql::parse(sql).unwrap_or_else(|e| panic!("{e}"));
    let (source, mut producer) = MemorySource::new(input);
    let (sink, table) = MemorySink::new("result");
    let running = query
        .apply(DataFrame::from_source(query.table(), source))
        .unwrap_or_else(|e| panic!("{e}"))
        .write_stream(sink)
        .output_mode(mode)
        .start()
        .unwrap_or_else(|e| panic!("{e}"));
    for r in rows {
        producer.push(r).expect("room in the ring");
    }
    drop(producer);
    running.await_termination().expect("the query ends cleanly");
    (table.rows(), table.schema().expect("the schema"))
}

fn names(schema: &SchemaRef) -> Vec<String> {
    schema.fields().iter().map(|f| f.name().clone()).collect()
}

/// In update mode without upserts: the last row written for each key.
fn last_by_key(rows: &[Row], key: &[usize]) -> HashMap<Vec<Value>, Row> {
    let mut out = HashMap::new();
    for r in rows {
        out.insert(key.iter().map(|&i| r[i].clone()).collect(), r.clone());
    }
    out
}

fn float(v: &Value) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("{v:?} is not a number"))
}

fn assert_close(actual: &Value, expected: f64) {
    let a = float(actual);
    assert!((a - expected).abs() < 1e-9, "{a} != {expected}");
}

// ---------------------------------------------------------------------------
// Queries that run.

#[test]
fn projection_and_where_keep_only_rows_where_the_condition_is_true() {
    let input = schema(&[
        ("name", DataType::Utf8),
        ("qty", DataType::Int64),
        ("price", DataType::Float64),
    ]);
    let rows = || {
        vec![
            row!["a", 1i64, 1.0],
            row!["b", 2i64, Value::Null],
            row!["c", Value::Null, 3.0],
            row!["d", 5i64, 2.5],
        ]
    };
    let (out, s) = run(
        "SELECT name, qty * 2 AS double_qty, price FROM t WHERE qty > 1 AND price IS NOT NULL",
        input.clone(),
        rows(),
        OutputMode::Append,
    );
    assert_eq!(names(&s), ["name", "double_qty", "price"]);
    assert_eq!(out, vec![row!["d", 10i64, 2.5]]);

    // NOT of an unknown comparison is unknown: the row with a null qty is
    // dropped by both the condition and its negation.
    let (out, _) = run(
        "SELECT name FROM t WHERE NOT (qty > 1)",
        input.clone(),
        rows(),
        OutputMode::Append,
    );
    assert_eq!(out, vec![row!["a"]]);

    // OR is true when one side is, even if the other is unknown.
    let (out, _) = run(
        "SELECT name FROM t WHERE qty >= 5 OR price > 2.0",
        input.clone(),
        rows(),
        OutputMode::Append,
    );
    assert_eq!(out, vec![row!["c"], row!["d"]]);

    // IS NULL, IN and BETWEEN; a null never matches IN or NOT IN.
    let (out, _) = run(
        "SELECT name FROM t WHERE price IS NULL OR qty IN (1, 7)",
        input.clone(),
        rows(),
        OutputMode::Append,
    );
    assert_eq!(out, vec![row!["a"], row!["b"]]);
    let (out, _) = run(
        "SELECT name FROM t WHERE qty NOT IN (1, 2)",
        input.clone(),
        rows(),
        OutputMode::Append,
    );
    assert_eq!(out, vec![row!["d"]]);
    let (out, _) = run(
        "SELECT * FROM t WHERE qty BETWEEN 2 AND 5",
        input,
        rows(),
        OutputMode::Append,
    );
    assert_eq!(
        out,
        vec![row!["b", 2i64, Value::Null], row!["d", 5i64, 2.5]]
    );
}

#[test]
fn unaliased_expressions_are_named_as_spark_names_them() {
    let input = schema(&[
        ("name", DataType::Utf8),
        ("qty", DataType::Int64),
        ("price", DataType::Float64),
        ("ts", timestamp_type()),
    ]);
    let (out, s) = run(
        "SELECT qty + 1, CAST(qty AS string), upper(name), price IS NULL, qty != 1, -qty, \
         'x', round(price, 1), round(price), date_format(ts, 'yyyy-MM-dd'), qty / 4, qty % 4, \
         CAST('7' AS int), ts > TIMESTAMP '2011-01-01 00:00:00', t.name \
         FROM t",
        input,
        vec![row!["ab", 5i64, 2.46, ts("2011-03-04 05:06:07")]],
        OutputMode::Append,
    );
    assert_eq!(
        names(&s),
        [
            "(qty + 1)",
            "CAST(qty AS STRING)",
            "upper(name)",
            "(price IS NULL)",
            "(NOT (qty = 1))",
            "(- qty)",
            "x",
            "round(price, 1)",
            "round(price, 0)",
            "date_format(ts, yyyy-MM-dd)",
            "(qty / 4)",
            "(qty % 4)",
            "CAST(7 AS INT)",
            "(ts > TIMESTAMP '2011-01-01 00:00:00')",
            "name",
        ]
    );
    // 5 / 4 = 1.25 (division is a double), 5 % 4 = 1, round(2.46, 1) = 2.5.
    assert_eq!(
        out,
        vec![row![
            6i64,
            "5",
            "AB",
            false,
            true,
            -5i64,
            "x",
            2.5,
            2.0,
            "2011-03-04",
            1.25,
            1i64,
            7i64,
            true,
            "ab"
        ]]
    );
}

#[test]
fn revenue_per_country_per_day_matches_a_hand_computation() {
    let (out, s) = run(
        "SELECT Country, window.start AS day, round(sum(UnitPrice * Quantity), 2) AS total, \
                count(*) AS lines, max(Quantity) \
         FROM retail \
         WHERE Quantity > 0 \
         GROUP BY Country, window(InvoiceDate, '1 day')",
        retail_schema(),
        retail_rows(),
        OutputMode::Update,
    );
    assert_eq!(
        names(&s),
        ["Country", "day", "total", "lines", "max(Quantity)"]
    );
    let last = last_by_key(&out, &[0, 1]);
    // By hand (the discount line has Quantity -1 and is filtered out; the
    // postage line has no price, so its product is null and sum skips it,
    // while count(*) still counts it):
    //   UK 12-01:     6*2.55 + 6*3.39 + 6*1.85 + 32*1.69
    //               = 15.30 + 20.34 + 11.10 + 54.08 = 100.82, 4 lines, max 32
    //   France 12-01: 24*3.75 + 24*3.75 = 180.00, 2 lines, max 24
    //   UK 12-02:     1*1.25 + 2*4.25 = 9.75, 3 lines, max 5
    //   France 12-02: 3*4.95 = 14.85, 1 line, max 3
    let expected = [
        ("United Kingdom", "2010-12-01", 100.82, 4i64, 32i64),
        ("France", "2010-12-01", 180.00, 2, 24),
        ("United Kingdom", "2010-12-02", 9.75, 3, 5),
        ("France", "2010-12-02", 14.85, 1, 3),
    ];
    assert_eq!(last.len(), expected.len(), "{out:?}");
    for (country, day, total, lines, max_qty) in expected {
        let key = vec![Value::str(country), ts(&format!("{day} 00:00:00"))];
        let row = last
            .get(&key)
            .unwrap_or_else(|| panic!("no row for {key:?}"));
        assert_close(&row[2], total);
        assert_eq!(row[3], Value::Int64(lines), "{row:?}");
        assert_eq!(row[4], Value::Int64(max_qty), "{row:?}");
    }
}

#[test]
fn sliding_windows_count_each_event_in_every_window_that_holds_it() {
    let input = schema(&[("user", DataType::Utf8), ("ts", timestamp_type())]);
    let rows = ["00:10", "00:40", "01:05", "01:50"]
        .iter()
        .map(|t| row!["ada", ts(&format!("2024-01-01 {t}:00"))])
        .collect::<Vec<_>>();
    let (out, s) = run(
        "SELECT window.start, window.end, count(*) AS n FROM clicks \
         GROUP BY window(ts, '1 hour', '30 minutes')",
        input.clone(),
        rows.clone(),
        OutputMode::Update,
    );
    assert_eq!(names(&s), ["window_start", "window_end", "n"]);
    // One-hour windows every 30 minutes; each event is in two of them:
    //   00:10 -> [23:30, 00:30) [00:00, 01:00)
    //   00:40 -> [00:00, 01:00) [00:30, 01:30)
    //   01:05 -> [00:30, 01:30) [01:00, 02:00)
    //   01:50 -> [01:00, 02:00) [01:30, 02:30)
    let expected = [
        ("2023-12-31 23:30:00", "2024-01-01 00:30:00", 1i64),
        ("2024-01-01 00:00:00", "2024-01-01 01:00:00", 2),
        ("2024-01-01 00:30:00", "2024-01-01 01:30:00", 2),
        ("2024-01-01 01:00:00", "2024-01-01 02:00:00", 2),
        ("2024-01-01 01:30:00", "2024-01-01 02:30:00", 1),
    ];
    let last = last_by_key(&out, &[0, 1]);
    assert_eq!(last.len(), expected.len(), "{out:?}");
    for (start, end, n) in expected {
        let key = vec![ts(start), ts(end)];
        assert_eq!(last[&key][2], Value::Int64(n), "{key:?}");
    }

    // Selecting `window` gives both columns; count(*) is named count(1).
    let (out, s) = run(
        "SELECT user, window, count(*) FROM clicks GROUP BY user, window(ts, '1 hour', '30 minutes')",
        input,
        rows,
        OutputMode::Update,
    );
    assert_eq!(
        names(&s),
        ["user", "window_start", "window_end", "count(1)"]
    );
    let last = last_by_key(&out, &[0, 1, 2]);
    assert_eq!(last.len(), 5);
    let key = vec![
        Value::str("ada"),
        ts("2024-01-01 00:30:00"),
        ts("2024-01-01 01:30:00"),
    ];
    assert_eq!(last[&key][3], Value::Int64(2));
}

#[test]
fn having_filters_groups_on_aggregates_and_aliases() {
    // Per country: UK quantities 6, 6, 6, 32, -1, 1, 2, 5 = 57 over 8 lines;
    // France 24, 24, 3 = 51 over 3 lines. Add Germany: 45 in 1 line.
    let mut rows = retail_rows();
    rows.push(row![
        "536999",
        "22222",
        "CAKE STAND",
        45i64,
        ts("2010-12-03 09:00:00"),
        9.95,
        12662i64,
        "Germany"
    ]);
    let (out, s) = run(
        "SELECT Country, sum(Quantity) AS qty FROM retail \
         GROUP BY Country HAVING qty > 40 AND count(*) >= 3",
        retail_schema(),
        rows.clone(),
        OutputMode::Update,
    );
    assert_eq!(names(&s), ["Country", "qty"]);
    let last = last_by_key(&out, &[0]);
    assert_eq!(last.len(), 2, "{out:?}");
    assert_eq!(
        last[&vec![Value::str("United Kingdom")]][1],
        Value::Int64(57)
    );
    assert_eq!(last[&vec![Value::str("France")]][1], Value::Int64(51));

    // HAVING on an aggregate that SELECT does not show. (Update mode never
    // retracts a row, so the condition is one that stays true once met.)
    let (out, s) = run(
        "SELECT Country FROM retail GROUP BY Country HAVING sum(Quantity) > 50",
        retail_schema(),
        rows,
        OutputMode::Update,
    );
    assert_eq!(names(&s), ["Country"]);
    let mut countries: Vec<String> = last_by_key(&out, &[0])
        .keys()
        .map(|k| k[0].to_string())
        .collect();
    countries.sort();
    assert_eq!(countries, ["France", "United Kingdom"]);
}

#[test]
fn identifiers_are_case_insensitive_and_may_be_quoted_or_qualified() {
    let (out, s) = run(
        "select COUNTRY, SUM(r.quantity) as Q, Count(*) from RETAIL r \
         where R.QUANTITY > 0 and `unitprice` IS NOT NULL and \"Country\" = 'France' \
         group by country",
        retail_schema(),
        retail_rows(),
        OutputMode::Update,
    );
    // The schema's spelling names a selected column; Spark's function names
    // are lower case.
    assert_eq!(names(&s), ["Country", "Q", "count(1)"]);
    let last = last_by_key(&out, &[0]);
    assert_eq!(
        last[&vec![Value::str("France")]],
        row!["France", 51i64, 3i64]
    );
}

#[test]
fn group_by_expressions_ordinals_and_aliases_match_select_items() {
    let expected = |out: &[Row]| {
        // lower(Country): "united kingdom" has 8 lines, "france" 3.
        let last = last_by_key(out, &[0]);
        assert_eq!(
            last[&vec![Value::str("united kingdom")]][1],
            Value::Int64(8)
        );
        assert_eq!(last[&vec![Value::str("france")]][1], Value::Int64(3));
    };
    for sql in [
        "SELECT lower(Country), count(1) FROM retail GROUP BY lower(country)",
        "SELECT lower(Country) AS c, count(*) FROM retail GROUP BY 1",
        "SELECT lower(Country) AS c, count(*) AS n FROM retail GROUP BY c",
    ] {
        let (out, s) = run(sql, retail_schema(), retail_rows(), OutputMode::Update);
        expected(&out);
        let first = names(&s)[0].clone();
        assert!(first == "lower(Country)" || first == "c", "{sql}: {first}");
    }
}

#[test]
fn an_aggregate_without_group_by_covers_the_whole_stream() {
    let q = StreamingSql::parse("SELECT count(*) AS n, sum(Quantity) FROM retail").unwrap();
    assert!(q.is_aggregate());
    assert_eq!(q.table(), "retail");
    let (out, s) = run(q.sql(), retail_schema(), retail_rows(), OutputMode::Update);
    assert_eq!(names(&s), ["n", "sum(Quantity)"]);
    // 11 lines; quantities 6+6+6+32+24+24-1+1+2+3+5 = 108.
    assert_eq!(out.last(), Some(&row![11i64, 108i64]));
}

#[test]
fn a_watermarked_input_runs_in_append_mode() {
    let query = StreamingSql::parse(
        "SELECT window.start, window.end, Country, count(*) AS n FROM retail \
         GROUP BY window(invoicedate, '1 day'), Country",
    )
    .unwrap();
    let (source, mut producer) = MemorySource::new(retail_schema());
    let (sink, table) = MemorySink::new("daily");
    let df = DataFrame::from_source(query.table(), source).with_watermark("InvoiceDate", "1 hour");
    let running = query
        .apply(df)
        .unwrap()
        .write_stream(sink)
        .output_mode(OutputMode::Append)
        .start()
        .unwrap();
    for r in retail_rows() {
        producer.push(r).unwrap();
    }
    // A late-arriving day moves the watermark past the end of 12-02.
    producer
        .push(row![
            "536999",
            "22222",
            "CAKE STAND",
            1i64,
            ts("2010-12-04 00:00:00"),
            9.95,
            12662i64,
            "Germany"
        ])
        .unwrap();
    drop(producer);
    running.await_termination().unwrap();
    // Append mode emits each window once, when the watermark (latest event
    // time minus 1 hour) passes its end; the 12-04 window stays open.
    let mut rows: Vec<(String, String, i64)> = table
        .rows()
        .iter()
        .map(|r| (r[0].to_string(), r[2].to_string(), r[3].as_i64().unwrap()))
        .collect();
    rows.sort();
    // 12-01: UK 5 lines (with the discount), France 2. 12-02: UK 3, France 1.
    let expected: Vec<(String, String, i64)> = [
        ("2010-12-01 00:00:00", "France", 2),
        ("2010-12-01 00:00:00", "United Kingdom", 5),
        ("2010-12-02 00:00:00", "France", 1),
        ("2010-12-02 00:00:00", "United Kingdom", 3),
    ]
    .iter()
    .map(|&(d, c, n)| (d.to_string(), c.to_string(), n))
    .collect();
    assert_eq!(rows, expected);
}

// ---------------------------------------------------------------------------
// Errors: message and caret.

/// The error of `sql` against the retail stream, from parse or apply.
fn error_of(sql: &str) -> String {
    let (source, _producer) = MemorySource::new(retail_schema());
    match StreamingSql::parse(sql) {
        Err(e) => e.to_string(),
        Ok(q) => match q.apply(DataFrame::from_source(q.table(), source)) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("`{sql}` planned without an error"),
        },
    }
}

/// Asserts that `sql` fails with a message containing `msg` and a caret
/// line under the `nth` (0-based) occurrence of `target`.
fn assert_error(sql: &str, msg: &str, target: &str, nth: usize) {
    let err = error_of(sql);
    assert!(err.contains(msg), "expected `{msg}` in:\n{err}");
    let at = sql
        .match_indices(target)
        .nth(nth)
        .unwrap_or_else(|| panic!("`{target}` #{nth} not in the query"))
        .0;
    let line_no = sql[..at].matches('\n').count() + 1;
    let line_start = sql[..at].rfind('\n').map_or(0, |i| i + 1);
    let col = sql[line_start..at].chars().count() + 1;
    let line = sql.lines().nth(line_no - 1).unwrap();
    let expected = format!(
        " at line {line_no}, column {col}\n  {line}\n  {}{}",
        " ".repeat(col - 1),
        "^".repeat(target.chars().count())
    );
    assert!(
        err.ends_with(&expected),
        "expected the error to end with:\n{expected}\ngot:\n{err}"
    );
}

#[test]
fn an_unknown_column_is_named_with_the_input_columns_and_underlined() {
    assert_eq!(
        error_of("SELECT sum(Quantty) FROM retail GROUP BY Country"),
        "invalid query: column `Quantty` cannot be resolved; input columns: [InvoiceNo, \
         StockCode, Description, Quantity, InvoiceDate, UnitPrice, CustomerID, Country] \
         at line 1, column 12\n  SELECT sum(Quantty) FROM retail GROUP BY Country\n             ^^^^^^^"
    );
    // On a later line, in WHERE.
    assert_error(
        "SELECT Country\nFROM retail\nWHERE Quantity > 0 AND Prize > 1",
        "column `Prize` cannot be resolved",
        "Prize",
        0,
    );
    assert_error(
        "SELECT x.Quantity FROM retail r",
        "table or alias `x` cannot be resolved; the query reads `retail` AS `r`",
        "x",
        0,
    );
    assert_error(
        "SELECT Country FROM retail WHERE Country = \"France\"",
        "column `France` cannot be resolved; input columns: [InvoiceNo, StockCode, \
         Description, Quantity, InvoiceDate, UnitPrice, CustomerID, Country] (double quotes \
         delimit names; write a string as 'text')",
        "\"France\"",
        0,
    );
    // With an alias, the table's own name no longer qualifies (as in Spark).
    assert_error(
        "SELECT retail.Quantity FROM retail r",
        "table or alias `retail` cannot be resolved",
        "retail",
        0,
    );
}

#[test]
fn a_column_outside_group_by_and_aggregates_is_rejected_like_spark() {
    assert_error(
        "SELECT Country, Description, count(*) FROM retail GROUP BY Country",
        "expression `Description` is neither present in the group by, nor is it an aggregate function",
        "Description",
        0,
    );
    assert_error(
        "SELECT Country, sum(Quantity) / Quantity FROM retail GROUP BY Country",
        "expression `Quantity` is neither present in the group by",
        "Quantity",
        1,
    );
    assert_error(
        "SELECT * FROM retail GROUP BY Country",
        "expression `InvoiceNo` is neither present in the group by",
        "*",
        0,
    );
    assert_error(
        "SELECT Country FROM retail GROUP BY Country HAVING UnitPrice > 1",
        "expression `UnitPrice` is neither present in the group by",
        "UnitPrice",
        0,
    );
    assert_error(
        "SELECT window.start, count(*) FROM retail GROUP BY window(InvoiceDate, '2 days') \
         HAVING window(InvoiceDate, '1 day') IS NULL",
        "window() can only be a GROUP BY key or a SELECT item on its own",
        "window(InvoiceDate, '1 day')",
        0,
    );
}

#[test]
fn syntax_errors_point_where_the_parser_stopped() {
    // At the end of the input the caret sits just after the last token.
    let sql = "SELECT Country FROM retail WHERE Quantity >";
    let err = error_of(sql);
    assert_eq!(
        err,
        format!(
            "invalid query: syntax error: Expected: an expression, found: EOF at line 1, \
             column 44\n  {sql}\n  {}^",
            " ".repeat(43)
        )
    );
    assert_error(
        "SELECT Country,\n  FROM retail",
        "syntax error: Expected an expression, found: FROM",
        "FROM",
        0,
    );
    assert_error(
        "SELECT Country FROM retail WHERE Quantity > > 1",
        "syntax error: Expected: an expression, found: >",
        ">",
        1,
    );
    assert_error(
        "SELECT 'abc FROM retail",
        "syntax error: Unterminated string literal",
        "'",
        0,
    );
}

#[test]
fn unsupported_clauses_are_named_and_pointed_at() {
    let result_table =
        "not supported on a streaming query; query the result table afterwards with `runnel sql`";
    assert_error(
        "SELECT Country FROM retail ORDER BY Country",
        &format!("ORDER BY is {result_table}"),
        "ORDER",
        0,
    );
    assert_error(
        "SELECT Country FROM retail LIMIT 10",
        &format!("LIMIT is {result_table}"),
        "LIMIT",
        0,
    );
    assert_error(
        "SELECT r.Country FROM retail r JOIN customers c ON r.CustomerID = c.id",
        "table `customers` cannot be found: it is neither a stream the query reads nor a static \
         table (no static tables were given)",
        "customers c",
        0,
    );
    assert_error(
        "SELECT Country FROM retail, customers",
        "FROM lists more than one table, which is a cross join",
        "customers",
        0,
    );
    assert_error(
        "SELECT Country FROM retail UNION SELECT Country FROM returns",
        "UNION is not supported on a streaming query",
        "UNION",
        0,
    );
    assert_error(
        "SELECT DISTINCT Country FROM retail",
        "SELECT DISTINCT is not supported on a streaming query",
        "DISTINCT",
        0,
    );
    assert_error(
        "SELECT count(DISTINCT CustomerID) FROM retail",
        "Distinct aggregations are not supported on streaming DataFrames/Datasets.",
        "DISTINCT",
        0,
    );
    assert_error(
        "SELECT Country, sum(Quantity) OVER (PARTITION BY Country) FROM retail",
        "window functions (`sum(...) OVER ...`) are not supported",
        "OVER",
        0,
    );
    assert_error(
        "WITH big AS (SELECT * FROM retail WHERE Quantity > 10) SELECT * FROM big",
        "WITH (common table expressions) is not supported",
        "WITH",
        0,
    );
    assert_error(
        "SELECT Country FROM retail; SELECT Quantity FROM retail",
        "only one statement is supported, but the query has 2",
        "SELECT",
        1,
    );
    assert_error(
        "SELECT Country, count(*) FROM retail GROUP BY ROLLUP (Country)",
        "GROUPING SETS, ROLLUP and CUBE are not supported",
        "ROLLUP",
        0,
    );
    assert_error(
        "SELECT Country, count(*) FROM retail GROUP BY CUBE (Country)",
        "GROUPING SETS, ROLLUP and CUBE are not supported",
        "CUBE",
        0,
    );
    assert_error(
        "SELECT Country, count(*) FROM retail GROUP BY GROUPING SETS ((Country), ())",
        "GROUPING SETS, ROLLUP and CUBE are not supported",
        "GROUPING",
        0,
    );
    assert_error(
        "INSERT INTO out SELECT * FROM retail",
        "only a SELECT query is supported",
        "INSERT",
        0,
    );
}

#[test]
fn subqueries_are_rejected_wherever_they_appear() {
    let msg = "subqueries are not supported on a streaming query";
    assert_error(
        "SELECT * FROM (SELECT Country FROM retail)",
        msg,
        "SELECT",
        1,
    );
    assert_error(
        "SELECT Country FROM retail WHERE CustomerID IN (SELECT id FROM vip)",
        msg,
        "SELECT",
        1,
    );
    assert_error(
        "SELECT Country, (SELECT max(id) FROM vip) FROM retail",
        msg,
        "SELECT",
        1,
    );
}

#[test]
fn unknown_functions_and_bad_arguments_are_reported() {
    assert_error(
        "SELECT Country, coalese(CustomerID, 0) FROM retail",
        "function `coalese` is not supported; did you mean `coalesce`? Supported: coalesce, nvl, \
         ifnull,",
        "coalese",
        0,
    );
    assert_error(
        "SELECT explode(Country) FROM retail",
        "the argument of explode must be an array, but Country is string",
        "explode(Country)",
        0,
    );
    assert_error(
        "SELECT explodes(Country) FROM retail",
        "function `explodes` is not supported; did you mean `explode`?",
        "explodes",
        0,
    );
    assert_error(
        "SELECT sum(*) FROM retail",
        "`*` is only allowed in count(*), not in sum",
        "*",
        0,
    );
    assert_error(
        "SELECT round(UnitPrice, Quantity) FROM retail",
        "the second argument of round must be an integer literal",
        "Quantity",
        0,
    );
    assert_error(
        "SELECT lower(Country, 1) FROM retail",
        "function `lower` takes 1 argument, but 2 were given",
        "lower(Country, 1)",
        0,
    );
    assert_error(
        "SELECT date_format(InvoiceDate, 'yyyy-QQ') FROM retail",
        "unsupported letter 'Q'",
        "'yyyy-QQ'",
        0,
    );
    assert_error(
        "SELECT Country SIMILAR TO 'U%' FROM retail",
        "`SIMILAR TO` is not supported",
        "Country SIMILAR TO 'U%'",
        0,
    );
    assert_error(
        "SELECT Country LIKE Description FROM retail",
        "the second argument of like must be a string literal",
        "Description",
        0,
    );
    assert_error(
        "SELECT Country RLIKE '(' FROM retail",
        "invalid regular expression",
        "'('",
        0,
    );
    assert_error(
        "SELECT date_trunc('fortnight', InvoiceDate) FROM retail",
        "`fortnight` is not a unit of date_trunc",
        "'fortnight'",
        0,
    );
    assert_error(
        "SELECT trim(BOTH 'x' FROM Country) FROM retail",
        "TRIM with characters to remove is not supported",
        "trim(BOTH 'x' FROM Country)",
        0,
    );
    assert_error(
        "SELECT substring(Country) FROM retail",
        "function `substring` takes 2 or 3 arguments, but 1 were given",
        "substring(Country)",
        0,
    );
    assert_error(
        "SELECT abs(Country > 'A') FROM retail",
        "the first argument of abs must be a number, got boolean",
        "abs(Country > 'A')",
        0,
    );
    assert_error(
        "SELECT CAST(UnitPrice AS DECIMAL(10, 2)) FROM retail",
        "cannot cast to `DECIMAL(10,2)`",
        "CAST(UnitPrice AS DECIMAL(10, 2))",
        0,
    );
}

#[test]
fn type_errors_point_at_the_expression_that_has_them() {
    assert_error(
        "SELECT Country, sum(Description) FROM retail GROUP BY Country",
        "function sum needs a number, but `Description` is string",
        "sum(Description)",
        0,
    );
    assert_error(
        "SELECT Country FROM retail WHERE Quantity + 1",
        "the WHERE condition must be a boolean, but `(Quantity + 1)` is bigint",
        "Quantity + 1",
        0,
    );
    assert_error(
        "SELECT Country, NOT (Quantity * 2) FROM retail",
        "is bigint but a boolean is required here",
        "NOT (Quantity * 2)",
        0,
    );
    assert_error(
        "SELECT Country FROM retail GROUP BY Country HAVING sum(Quantity)",
        "the HAVING condition must be a boolean",
        "sum(Quantity)",
        0,
    );
    assert_error(
        "SELECT count(*) FROM retail GROUP BY window(Country, '1 day')",
        "window() needs a timestamp, but `Country` is string",
        "Country",
        0,
    );
}

#[test]
fn aggregates_and_windows_out_of_place_are_rejected() {
    assert_error(
        "SELECT Country FROM retail WHERE sum(Quantity) > 10",
        "aggregate functions are not allowed in WHERE; filter on aggregates with HAVING",
        "sum(Quantity)",
        0,
    );
    assert_error(
        "SELECT max(sum(Quantity)) FROM retail GROUP BY Country",
        "aggregate functions cannot be nested",
        "sum(Quantity)",
        0,
    );
    assert_error(
        "SELECT count(*) FROM retail GROUP BY sum(Quantity)",
        "aggregate functions are not allowed in GROUP BY",
        "sum(Quantity)",
        0,
    );
    assert_error(
        "SELECT Country, window.start FROM retail GROUP BY Country",
        "window.start needs GROUP BY window(...)",
        "window.start",
        0,
    );
    assert_error(
        "SELECT count(*) FROM retail WHERE window.end > TIMESTAMP '2011-01-01 00:00:00' \
         GROUP BY window(InvoiceDate, '1 day')",
        "window.end is not available in WHERE",
        "window.end",
        0,
    );
    assert_error(
        "SELECT count(*) FROM retail GROUP BY window(InvoiceDate, '1 day'), window(InvoiceDate, '1 hour')",
        "only one window() may appear among the GROUP BY keys",
        "window(InvoiceDate, '1 hour')",
        0,
    );
    assert_error(
        "SELECT count(*) FROM retail GROUP BY window(InvoiceDate, '10 parsecs')",
        "the window duration: unknown unit 'parsecs'",
        "'10 parsecs'",
        0,
    );
    assert_error(
        "SELECT count(*) FROM retail GROUP BY window(InvoiceDate, '1 hour', '2 hours')",
        "must be less than or equal to the window duration",
        "window(InvoiceDate, '1 hour', '2 hours')",
        0,
    );
    assert_error(
        "SELECT Country, count(*) FROM retail GROUP BY 3",
        "GROUP BY position 3 is not in the select list (valid range is [1, 2])",
        "3",
        0,
    );
    assert_error(
        "SELECT Country, count(*) AS lines FROM retail GROUP BY lines",
        "GROUP BY refers to `count(1)`, an aggregate function",
        "lines",
        1,
    );
}

// ---------------------------------------------------------------------------
// Expressions and functions, in both modes.

/// A bounded, replayable source of fixed rows (micro-batch mode needs one):
/// offsets are row positions, and each batch takes at most two rows, so a
/// query runs over several batches.
struct FixedRows {
    schema: SchemaRef,
    rows: Vec<Row>,
    next: usize,
    planned: usize,
}

impl FixedRows {
    fn at(o: Option<&crate::SourceOffset>) -> usize {
        o.map_or(0, |o| o.rows().expect("a row offset") as usize)
    }
}

impl crate::Source for FixedRows {
    fn describe(&self) -> String {
        format!("FixedRows[{}]", self.rows.len())
    }
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn open(
        &mut self,
        _: &crate::SourceContext,
        start: Option<&crate::SourceOffset>,
    ) -> crate::Result<()> {
        self.next = Self::at(start);
        self.planned = self.next;
        Ok(())
    }
    fn poll(&mut self, out: &mut dyn crate::SourceOutput) -> crate::Result<crate::PollStatus> {
        if self.next >= self.rows.len() {
            return Ok(crate::PollStatus::Exhausted);
        }
        out.emit(self.rows[self.next].clone(), crate::clock::now_ns())?;
        self.next += 1;
        Ok(crate::PollStatus::Emitted(1))
    }
    fn offset(&self) -> crate::SourceOffset {
        crate::SourceOffset::Rows(self.next as u64)
    }
    fn as_replayable(&mut self) -> Option<&mut dyn crate::Replayable> {
        Some(self)
    }
}

impl crate::Replayable for FixedRows {
    fn is_exhausted(&self) -> bool {
        self.planned >= self.rows.len()
    }
    fn latest_offset(&mut self) -> crate::Result<crate::SourceOffset> {
        self.planned = (self.planned + 2).min(self.rows.len());
        Ok(crate::SourceOffset::Rows(self.planned as u64))
    }
    fn read_range(
        &mut self,
        start: Option<&crate::SourceOffset>,
        end: &crate::SourceOffset,
        out: &mut dyn crate::SourceOutput,
    ) -> crate::Result<()> {
        for r in &self.rows[Self::at(start)..Self::at(Some(end))] {
            out.emit(r.clone(), crate::clock::now_ns())?;
        }
        Ok(())
    }
}

/// Runs `sql` over `rows` in continuous mode and in micro-batch mode
/// (`AvailableNow`, several batches), asserts both give the same rows, and
/// returns them.
fn run_both(sql: &str, input: SchemaRef, rows: Vec<Row>) -> (Vec<Row>, SchemaRef) {
    run_both_in(sql, input, rows, "UTC")
}

/// Runs `sql` over `rows` with `trigger` in the session time zone `zone`.
fn run_with(
    sql: &str,
    input: &SchemaRef,
    rows: &[Row],
    mode: OutputMode,
    trigger: Trigger,
    zone: &str,
) -> (Vec<Row>, SchemaRef) {
    let query = StreamingSql::parse(sql).unwrap_or_else(|e| panic!("{e}"));
    let source = FixedRows {
        schema: input.clone(),
        rows: rows.to_vec(),
        next: 0,
        planned: 0,
    };
    let (sink, table) = MemorySink::new("result");
    let running = query
        .apply(DataFrame::from_source(query.table(), source))
        .unwrap_or_else(|e| panic!("{e}"))
        .write_stream(sink)
        .output_mode(mode)
        .trigger(trigger)
        .time_zone(crate::Zone::parse(zone).unwrap())
        .start()
        .unwrap_or_else(|e| panic!("{e}"));
    running.await_termination().expect("the query ends cleanly");
    (table.rows(), table.schema().expect("the schema"))
}

/// [`run_both`] in the session time zone `zone`.
fn run_both_in(sql: &str, input: SchemaRef, rows: Vec<Row>, zone: &str) -> (Vec<Row>, SchemaRef) {
    let (mut results, schema) = run_each_mode_in(sql, input, rows, OutputMode::Append, zone);
    let micro = results.pop().unwrap();
    let continuous = results.pop().unwrap();
    assert_eq!(
        continuous, micro,
        "{sql}: continuous and micro-batch differ"
    );
    (continuous, schema)
}

/// Runs `sql` in `mode` in continuous mode and in micro-batch mode (several
/// batches); the two result tables, in that order, and the schema.
fn run_each_mode(
    sql: &str,
    input: SchemaRef,
    rows: Vec<Row>,
    mode: OutputMode,
) -> (Vec<Vec<Row>>, SchemaRef) {
    run_each_mode_in(sql, input, rows, mode, "UTC")
}

/// [`run_each_mode`] in the session time zone `zone`.
fn run_each_mode_in(
    sql: &str,
    input: SchemaRef,
    rows: Vec<Row>,
    mode: OutputMode,
    zone: &str,
) -> (Vec<Vec<Row>>, SchemaRef) {
    let mut results = Vec::new();
    for trigger in [Trigger::default(), Trigger::AvailableNow] {
        results.push(run_with(sql, &input, &rows, mode, trigger, zone));
    }
    let (micro, micro_schema) = results.pop().unwrap();
    let (continuous, schema) = results.pop().unwrap();
    assert_eq!(names(&schema), names(&micro_schema), "{sql}");
    (vec![continuous, micro], schema)
}

#[test]
fn case_like_coalesce_hour_and_concat_run_in_both_modes() {
    let (out, s) = run_both(
        "SELECT InvoiceNo, \
                CASE WHEN Quantity >= 24 THEN 'bulk' WHEN Quantity > 0 THEN 'retail' \
                     ELSE 'return' END AS kind, \
                Description LIKE '%CLOCK%' AS clock, \
                coalesce(CustomerID, -1) AS customer, \
                hour(InvoiceDate) AS h, \
                concat(Country, '/', StockCode) AS place, \
                InvoiceNo NOT LIKE 'C%' AS sale \
         FROM retail WHERE Country ILIKE 'united%' OR Quantity DIV 10 = 2",
        retail_schema(),
        retail_rows(),
    );
    assert_eq!(
        names(&s),
        [
            "InvoiceNo",
            "kind",
            "clock",
            "customer",
            "h",
            "place",
            "sale"
        ]
    );
    // Hand-computed from RETAIL: the British lines and the two French
    // lines of 24 (24 DIV 10 = 2).
    let expected: Vec<Row> = RETAIL
        .iter()
        .filter(|r| r.7 == "United Kingdom" || r.3 / 10 == 2)
        .map(|&(inv, code, desc, qty, date, _, customer, country)| {
            let kind = if qty >= 24 {
                "bulk"
            } else if qty > 0 {
                "retail"
            } else {
                "return"
            };
            let hour: i64 = date[11..13].parse().unwrap();
            row![
                inv,
                kind,
                desc.contains("CLOCK"),
                customer.unwrap_or(-1),
                hour,
                format!("{country}/{code}"),
                !inv.starts_with('C')
            ]
        })
        .collect();
    assert!(expected.len() >= 6);
    assert_eq!(out, expected);
}

#[test]
fn spark_expressions_with_nulls_run_in_both_modes() {
    let input = schema(&[
        ("name", DataType::Utf8),
        ("qty", DataType::Int64),
        ("price", DataType::Float64),
        ("ts", timestamp_type()),
    ]);
    let rows = vec![
        row!["Ada Lovelace", 7i64, 2.5, ts("2024-02-29 13:45:30")],
        row![Value::Null, Value::Null, Value::Null, Value::Null],
        row!["", 0i64, f64::NAN, ts("1969-12-31 23:00:00")],
    ];
    let (out, s) = run_both(
        "SELECT CASE qty WHEN 7 THEN 'seven' WHEN 0 THEN 'zero' END, \
                IF(qty > 1, qty DIV 2, -1) AS half, \
                name || '!' AS shout, \
                qty IS DISTINCT FROM 7 AS not7, \
                upper(substring(name, 1, 3)) AS abbr, \
                nvl(round(price * 2, 1), 0.0) AS p2, \
                date_trunc('HOUR', ts) AS hr, \
                CAST(ts AS date) AS day, \
                regexp_extract(name, '([A-Z])[a-z]+ ([A-Z])', 2) AS initial \
         FROM t",
        input,
        rows,
    );
    assert_eq!(
        names(&s),
        [
            "CASE WHEN (qty = 7) THEN seven WHEN (qty = 0) THEN zero END",
            "half",
            "shout",
            "not7",
            "abbr",
            "p2",
            "hr",
            "day",
            "initial"
        ]
    );
    let date = |t: &str| Value::Date(crate::time::parse_date(t).unwrap());
    assert_eq!(
        out,
        vec![
            row![
                "seven",
                3i64,
                "Ada Lovelace!",
                false,
                "ADA",
                5.0,
                ts("2024-02-29 13:00:00"),
                date("2024-02-29"),
                "L"
            ],
            row![
                Value::Null,
                -1i64,
                Value::Null,
                true,
                Value::Null,
                0.0,
                Value::Null,
                Value::Null,
                Value::Null
            ],
            row![
                "zero",
                -1i64,
                "!",
                true,
                "",
                f64::NAN,
                ts("1969-12-31 23:00:00"),
                date("1969-12-31"),
                ""
            ],
        ]
    );
}

#[test]
fn timestamps_plus_intervals_run_in_both_modes() {
    let input = schema(&[("ts", timestamp_type())]);
    let (out, _) = run_both(
        "SELECT ts + INTERVAL 1 HOUR AS a, ts - INTERVAL 1 DAY AS b, \
                INTERVAL 1 MONTH + ts + INTERVAL '30' MINUTES AS c, ts - INTERVAL '1' YEAR AS d \
         FROM t WHERE ts + INTERVAL 2 DAYS > TIMESTAMP '2024-03-01 00:00:00'",
        input,
        vec![
            row![ts("2024-01-31 23:45:00")],
            row![ts("2024-02-29 12:00:00")],
            row![Value::Null],
        ],
    );
    assert_eq!(
        out,
        vec![row![
            ts("2024-02-29 13:00:00"),
            ts("2024-02-28 12:00:00"),
            ts("2024-03-29 12:30:00"),
            ts("2023-02-28 12:00:00")
        ]]
    );
    assert_error(
        "SELECT InvoiceDate + INTERVAL 'x' HOUR FROM retail",
        "INTERVAL 'x HOUR'",
        "'x'",
        0,
    );
}

// ---------------------------------------------------------------------------
// first/last, standard deviations and variances, approx_count_distinct.

fn stats_schema() -> SchemaRef {
    schema(&[
        ("k", DataType::Utf8),
        ("x", DataType::Int64),
        ("s", DataType::Utf8),
    ])
}

/// Groups `a` (nine rows: nulls first and last, x = 2 4 4 4 5 5 7 9),
/// `b` (one row) and `c` (only nulls), interleaved.
fn stats_rows() -> Vec<Row> {
    let a: [(Option<i64>, Option<&str>); 9] = [
        (None, None),
        (Some(2), Some("p")),
        (Some(4), Some("q")),
        (Some(4), None),
        (Some(4), Some("r")),
        (Some(5), Some("p")),
        (Some(5), Some("q")),
        (Some(7), Some("p")),
        (Some(9), None),
    ];
    let mut rows: Vec<Row> = a.iter().map(|&(x, s)| row!["a", x, s]).collect();
    rows.insert(2, row!["b", 3i64, "z"]);
    rows.insert(5, row!["c", None::<i64>, None::<&str>]);
    rows
}

/// The table of each mode, by key; floats of the two modes agree to
/// rounding (partial moments merge in another order), everything else
/// exactly.
fn stats_in_both_modes(sql: &str) -> (HashMap<String, Row>, SchemaRef) {
    let (results, schema) = run_each_mode(sql, stats_schema(), stats_rows(), OutputMode::Complete);
    let by_key = |rows: &[Row]| -> HashMap<String, Row> {
        rows.iter()
            .map(|r| (r[0].as_str().expect("a key").to_string(), r.clone()))
            .collect()
    };
    let (continuous, micro) = (by_key(&results[0]), by_key(&results[1]));
    assert_eq!(continuous.len(), 3, "{continuous:?}");
    for (k, c) in &continuous {
        let m = &micro[k];
        for i in 0..c.len() {
            match (&c[i], &m[i]) {
                (Value::Float64(a), Value::Float64(b)) => {
                    assert!(
                        (a - b).abs() <= 1e-12 * a.abs().max(1.0),
                        "{k}.{i}: {a} {b}"
                    )
                }
                (a, b) => assert_eq!(a, b, "{sql}: column {i} of {k}"),
            }
        }
    }
    (continuous, schema)
}

#[test]
fn first_and_last_follow_arrival_order_with_and_without_nulls_in_both_modes() {
    let (t, s) = stats_in_both_modes(
        "SELECT k, first(x), first(x, true) AS fx, last(x) AS lx, last(s) AS ls, \
                last_value(s, true) AS lsv, first_value(s, TRUE) AS fsv, first(s) AS fs \
         FROM t GROUP BY k",
    );
    assert_eq!(
        names(&s),
        ["k", "first(x)", "fx", "lx", "ls", "lsv", "fsv", "fs"]
    );
    assert_eq!(s.fields()[1].data_type(), &DataType::Int64);
    let n = Value::Null;
    let (p, x) = (Value::str("p"), |i: i64| Value::Int64(i));
    assert_eq!(
        t["a"].to_vec()[1..],
        [n.clone(), x(2), x(9), n.clone(), p.clone(), p, n.clone()]
    );
    let z = Value::str("z");
    assert_eq!(
        t["b"].to_vec()[1..],
        [x(3), x(3), x(3), z.clone(), z.clone(), z.clone(), z]
    );
    assert_eq!(t["c"].to_vec()[1..], vec![n; 7]);
}

#[test]
fn standard_deviations_and_variances_match_spark_in_both_modes() {
    let (t, s) = stats_in_both_modes(
        "SELECT k, stddev(x), std(x) AS sd, stddev_samp(x) AS ss, stddev_pop(x), \
                variance(x), var_samp(x) AS vs, var_pop(x), count(x) \
         FROM t GROUP BY k",
    );
    assert_eq!(
        names(&s),
        [
            "k",
            "stddev(x)",
            "sd",
            "ss",
            "stddev_pop(x)",
            "variance(x)",
            "vs",
            "var_pop(x)",
            "count(x)"
        ]
    );
    assert_eq!(s.fields()[1].data_type(), &DataType::Float64);
    // a: mean 5, squared deviations 32 over 8 values.
    let a = &t["a"];
    let samp = 32.0f64 / 7.0;
    for (i, want) in [samp.sqrt(), samp.sqrt(), samp.sqrt(), 2.0, samp, samp, 4.0]
        .into_iter()
        .enumerate()
    {
        assert_close(&a[i + 1], want);
    }
    assert_eq!(a[8], Value::Int64(8));
    // b: one value: sample statistics null (Spark 3, non-legacy), population 0.
    let n = Value::Null;
    let zero = Value::Float64(0.0);
    assert_eq!(
        t["b"].to_vec()[1..],
        [
            n.clone(),
            n.clone(),
            n.clone(),
            zero.clone(),
            n.clone(),
            n.clone(),
            zero,
            Value::Int64(1)
        ]
    );
    // c: no non-null value: all null.
    assert_eq!(t["c"].to_vec()[1..8], vec![n; 7]);
}

#[test]
fn approx_count_distinct_counts_non_null_values_in_both_modes() {
    let (t, s) = stats_in_both_modes(
        "SELECT k, approx_count_distinct(x), approx_count_distinct(s, 0.01) AS ds \
         FROM t GROUP BY k",
    );
    assert_eq!(names(&s), ["k", "approx_count_distinct(x)", "ds"]);
    assert_eq!(s.fields()[1].data_type(), &DataType::Int64);
    // a: x in {2, 4, 5, 7, 9}, s in {p, q, r}.
    assert_eq!(t["a"].to_vec()[1..], [Value::Int64(5), Value::Int64(3)]);
    assert_eq!(t["b"].to_vec()[1..], [Value::Int64(1), Value::Int64(1)]);
    assert_eq!(t["c"].to_vec()[1..], [Value::Int64(0), Value::Int64(0)]);
}

#[test]
fn the_sql_default_rsd_is_sparks() {
    assert_eq!(
        crate::state::distinct::precision_for_rsd(crate::state::distinct::DEFAULT_RSD),
        Some(9)
    );
    let q = StreamingSql::parse("SELECT approx_count_distinct(Country) FROM retail").unwrap();
    let (source, _p) = MemorySource::new(retail_schema());
    let df = q.apply(DataFrame::from_source(q.table(), source)).unwrap();
    let builder = DataFrame::from_source("retail", MemorySource::new(retail_schema()).0)
        .group_by(Vec::new())
        .agg(vec![crate::approx_count_distinct(crate::col("Country"))]);
    assert_eq!(names(&df.schema()), ["approx_count_distinct(Country)"]);
    assert!(df.error().is_none());
    assert!(builder.error().is_none());
    assert_eq!(names(&builder.schema()), ["approx_count_distinct(Country)"]);
    let bad = DataFrame::from_source("retail", MemorySource::new(retail_schema()).0)
        .group_by(Vec::new())
        .agg(vec![crate::approx_count_distinct_rsd(
            crate::col("Country"),
            0.5,
        )]);
    let err = bad.error().expect("an error").to_string();
    assert!(err.contains("approx_count_distinct(Country): the relative standard deviation must be between 0.00216 and 0.39"), "{err}");
    let bad = DataFrame::from_source("retail", MemorySource::new(retail_schema()).0)
        .group_by(Vec::new())
        .agg(vec![crate::stddev_pop(crate::col("Country"))]);
    let err = bad.error().expect("an error").to_string();
    assert!(err.contains("stddev_pop(Country) needs a number"), "{err}");
}

#[test]
fn distinct_aggregates_are_refused_with_sparks_reason() {
    let spark = "Distinct aggregations are not supported on streaming DataFrames/Datasets. \
                 Consider using approx_count_distinct() instead.";
    assert_error(
        "SELECT count(DISTINCT CustomerID) FROM retail",
        spark,
        "DISTINCT",
        0,
    );
    assert_error(
        "SELECT Country,\n  sum(distinct Quantity) FROM retail GROUP BY Country",
        spark,
        "distinct",
        0,
    );
    assert_error(
        "SELECT stddev(DISTINCT Quantity) FROM retail",
        spark,
        "DISTINCT",
        0,
    );
    assert_error(
        "SELECT upper(DISTINCT Country) FROM retail",
        "DISTINCT specified, but `upper` is not an aggregate function",
        "DISTINCT",
        0,
    );
}

#[test]
fn bad_arguments_of_the_new_aggregates_are_pointed_at() {
    assert_error(
        "SELECT first(Country, 1) FROM retail",
        "the second argument of first (ignoreNulls) must be a boolean literal",
        "1",
        0,
    );
    assert_error(
        "SELECT approx_count_distinct(Country, 0.5) FROM retail",
        "the relative standard deviation of approx_count_distinct must be between 0.00216 and 0.39, but it is 0.5",
        "0.5",
        0,
    );
    assert_error(
        "SELECT approx_count_distinct(Country, 'x') FROM retail",
        "must be a number literal",
        "'x'",
        0,
    );
    assert_error(
        "SELECT stddev(Quantity, 2) FROM retail",
        "function `stddev` takes 1 argument, but 2 were given",
        "stddev(Quantity, 2)",
        0,
    );
    assert_error(
        "SELECT var_pop(Country) FROM retail",
        "function var_pop needs a number, but `Country` is string",
        "var_pop(Country)",
        0,
    );
    assert_error(
        "SELECT last(*) FROM retail",
        "`*` is only allowed in count(*), not in last",
        "*",
        0,
    );
    assert_error(
        "SELECT stdev(Quantity) FROM retail",
        "function `stdev` is not supported; did you mean `stddev`?",
        "stdev",
        0,
    );
}

#[test]
fn time_functions_and_casts_follow_the_session_zone_in_both_modes() {
    let input = schema(&[
        ("id", DataType::Int64),
        ("t", timestamp_type()),
        ("s", DataType::Utf8),
    ]);
    let rows = vec![
        // 2023-12-31 21:30 in Los Angeles, 2024-01-01 11:00 in Kolkata.
        row![1i64, ts("2024-01-01 05:30:00"), "2024-03-10 02:30:00"],
        // The day Los Angeles springs forward: 05:00 PDT, 17:30 in Kolkata.
        row![2i64, ts("2024-03-10 12:00:00"), "2024-11-03 01:30:00"],
        row![3i64, Value::Null, Value::Null],
    ];
    let sql = "SELECT id, hour(t) AS h, to_date(t) AS d, CAST(t AS string) AS text, \
                      date_format(t, 'HH:mm') AS hm, date_trunc('DAY', t) AS midnight, \
                      CAST(s AS timestamp) AS parsed, unix_timestamp(s) AS secs \
               FROM events";
    let date = |t: &str| Value::Date(crate::time::parse_date(t).unwrap());
    let null = Value::Null;
    let (la, _) = run_both_in(sql, input.clone(), rows.clone(), "America/Los_Angeles");
    assert_eq!(
        la,
        vec![
            row![
                1i64,
                21i64,
                date("2023-12-31"),
                "2023-12-31 21:30:00",
                "21:30",
                ts("2023-12-31 08:00:00"),
                ts("2024-03-10 10:30:00"),
                1_710_066_600i64
            ],
            row![
                2i64,
                5i64,
                date("2024-03-10"),
                "2024-03-10 05:00:00",
                "05:00",
                ts("2024-03-10 08:00:00"),
                ts("2024-11-03 08:30:00"),
                1_730_622_600i64
            ],
            row![
                3i64,
                null.clone(),
                null.clone(),
                null.clone(),
                null.clone(),
                null.clone(),
                null.clone(),
                null.clone()
            ],
        ]
    );
    let (kolkata, _) = run_both_in(sql, input.clone(), rows.clone(), "Asia/Kolkata");
    assert_eq!(kolkata[0][1], Value::Int64(11));
    assert_eq!(kolkata[0][3], Value::str("2024-01-01 11:00:00"));
    assert_eq!(kolkata[0][5], ts("2023-12-31 18:30:00"));
    assert_eq!(kolkata[0][6], ts("2024-03-09 21:00:00"));
    assert_eq!(kolkata[1][1], Value::Int64(17));
    assert_eq!(kolkata[1][4], Value::str("17:30"));
    let (utc, _) = run_both_in(sql, input, rows, "UTC");
    assert_eq!(utc[0][1], Value::Int64(5));
    assert_eq!(utc[0][2], date("2024-01-01"));
    assert_eq!(utc[0][6], ts("2024-03-10 02:30:00"));
    assert_eq!(utc[2][1], Value::Null);
}

#[test]
fn windows_are_aligned_to_the_epoch_in_every_session_zone() {
    // As Spark: window starts are computed on the instant (µs since the
    // epoch), so a '1 day' window is a UTC day whatever the session zone;
    // local days need the start time (8 hours for Los Angeles in winter).
    let input = schema(&[("id", DataType::Int64), ("t", timestamp_type())]);
    let rows = vec![
        row![1i64, ts("2024-01-01 05:30:00")], // 2023-12-31 21:30 local
        row![2i64, ts("2024-01-01 09:00:00")], // 2024-01-01 01:00 local
    ];
    for trigger in [Trigger::default(), Trigger::AvailableNow] {
        for (sql, expected) in [
            (
                "SELECT window.start AS s, count(*) AS n FROM events GROUP BY window(t, '1 day')",
                vec![(ts("2024-01-01 00:00:00"), 2i64)],
            ),
            (
                "SELECT window.start AS s, count(*) AS n FROM events \
                 GROUP BY window(t, '1 day', '1 day', '8 hours')",
                vec![
                    (ts("2023-12-31 08:00:00"), 1),
                    (ts("2024-01-01 08:00:00"), 1),
                ],
            ),
        ] {
            let (out, _) = run_with(
                sql,
                &input,
                &rows,
                OutputMode::Update,
                trigger,
                "America/Los_Angeles",
            );
            let last = last_by_key(&out, &[0]);
            assert_eq!(last.len(), expected.len(), "{sql}: {out:?}");
            for (start, n) in expected {
                assert_eq!(
                    last[&vec![start.clone()]][1],
                    Value::Int64(n),
                    "{sql}: {out:?}"
                );
            }
        }
    }
}
