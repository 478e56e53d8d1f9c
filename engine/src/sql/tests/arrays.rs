//! Arrays and generators through SQL, in both modes: `split`, `size`,
//! `array_contains`, `element_at`, `array`, `explode` / `posexplode` in the
//! select list and in `LATERAL VIEW`, and the word count.

use super::*;
use crate::schema::column::write_value_json;

fn lines_schema() -> SchemaRef {
    schema(&[("id", DataType::Int64), ("value", DataType::Utf8)])
}

fn lines() -> Vec<Row> {
    vec![
        row![1i64, "the cat sat"],
        row![2i64, "the dog"],
        row![3i64, ""],
        row![4i64, Value::Null],
    ]
}

fn words(list: &[&str]) -> Value {
    Value::list(list.iter().map(|w| Value::str(w)))
}

/// Runs an aggregating `sql` in update mode in both modes and returns the
/// final row of each group, sorted.
fn run_both_updates(sql: &str, input: SchemaRef, rows: Vec<Row>) -> Vec<Row> {
    let (results, _) = run_each_mode(sql, input, rows, OutputMode::Update);
    let last: Vec<Vec<Row>> = results
        .iter()
        .map(|table| {
            let mut last: Vec<Row> = last_by_key(table, &[0]).into_values().collect();
            last.sort_by(|a, b| a[0].sql_cmp(&b[0]).unwrap_or(std::cmp::Ordering::Equal));
            last
        })
        .collect();
    assert_eq!(last[0], last[1], "{sql}: the two modes differ");
    last[0].clone()
}

#[test]
fn the_word_count_counts_words_in_both_modes() {
    // Spark's first streaming example, in both of its SQL forms.
    let expected = vec![
        row!["", 1i64],
        row!["cat", 1i64],
        row!["dog", 1i64],
        row!["sat", 1i64],
        row!["the", 2i64],
    ];
    for sql in [
        "SELECT word, count(*) AS count FROM lines \
         LATERAL VIEW explode(split(value, ' ')) t AS word GROUP BY word",
        "SELECT t.word, count(*) AS count FROM lines \
         LATERAL VIEW explode(split(value, ' ')) t AS word GROUP BY t.word",
    ] {
        assert_eq!(
            run_both_updates(sql, lines_schema(), lines()),
            expected,
            "{sql}"
        );
    }
}

#[test]
fn explode_in_the_select_list_gives_a_row_per_element() {
    let (out, s) = run_both(
        "SELECT id, explode(split(value, ' ')) AS word FROM lines",
        lines_schema(),
        lines(),
    );
    assert_eq!(names(&s), ["id", "word"]);
    assert_eq!(
        out,
        vec![
            row![1i64, "the"],
            row![1i64, "cat"],
            row![1i64, "sat"],
            row![2i64, "the"],
            row![2i64, "dog"],
            row![3i64, ""],
        ]
    );
    // Unaliased, the column is `col`; posexplode adds `pos` first.
    let (out, s) = run_both(
        "SELECT explode(split(value, ' ')) FROM lines WHERE id = 2",
        lines_schema(),
        lines(),
    );
    assert_eq!(names(&s), ["col"]);
    assert_eq!(out, vec![row!["the"], row!["dog"]]);
    let (out, s) = run_both(
        "SELECT posexplode(split(value, ' ')), id FROM lines WHERE id <= 2",
        lines_schema(),
        lines(),
    );
    assert_eq!(names(&s), ["pos", "col", "id"]);
    assert_eq!(
        out,
        vec![
            row![0i64, "the", 1i64],
            row![1i64, "cat", 1i64],
            row![2i64, "sat", 1i64],
            row![0i64, "the", 2i64],
            row![1i64, "dog", 2i64],
        ]
    );
}

#[test]
fn lateral_views_name_their_columns_and_outer_keeps_empty_rows() {
    let (out, s) = run_both(
        "SELECT id, p, w FROM lines \
         LATERAL VIEW posexplode(split(value, ' ')) t AS p, w WHERE p > 0",
        lines_schema(),
        lines(),
    );
    assert_eq!(names(&s), ["id", "p", "w"]);
    assert_eq!(
        out,
        vec![
            row![1i64, 1i64, "cat"],
            row![1i64, 2i64, "sat"],
            row![2i64, 1i64, "dog"]
        ]
    );
    // OUTER: a null array keeps its row, with a null element.
    let (out, _) = run_both(
        "SELECT id, w FROM lines LATERAL VIEW OUTER explode(split(value, ' ')) v AS w \
         WHERE id >= 3",
        lines_schema(),
        lines(),
    );
    assert_eq!(out, vec![row![3i64, ""], row![4i64, Value::Null]]);
    // Two views: the second explodes what the first produced.
    let (out, _) = run_both(
        "SELECT id, w, c FROM lines \
         LATERAL VIEW explode(split(value, ' ')) a AS w \
         LATERAL VIEW explode(split(w, '')) b AS c WHERE id = 2 AND w = 'dog'",
        lines_schema(),
        lines(),
    );
    assert_eq!(
        out,
        vec![
            row![2i64, "dog", "d"],
            row![2i64, "dog", "o"],
            row![2i64, "dog", "g"]
        ]
    );
}

#[test]
fn array_functions_follow_spark_with_nulls_in_both_modes() {
    let (out, s) = run_both(
        "SELECT split(value, ' ') AS words, size(split(value, ' ')) AS n, \
                array_contains(split(value, ' '), 'cat') AS has_cat, \
                element_at(split(value, ' '), -1) AS last, \
                element_at(split(value, ' '), 5) AS fifth, \
                array(id, id * 2, NULL) AS nums, \
                CAST(split(value, ' ') AS string) AS text, \
                concat_ws('+', split(value, ' ')) AS joined, \
                split(value, ' ', 2) AS two \
         FROM lines",
        lines_schema(),
        lines(),
    );
    assert_eq!(
        names(&s),
        ["words", "n", "has_cat", "last", "fifth", "nums", "text", "joined", "two"]
    );
    let nums = |id: i64| Value::list([Value::Int64(id), Value::Int64(id * 2), Value::Null]);
    assert_eq!(
        out,
        vec![
            row![
                words(&["the", "cat", "sat"]),
                3i64,
                true,
                "sat",
                Value::Null,
                nums(1),
                "[the, cat, sat]",
                "the+cat+sat",
                words(&["the", "cat sat"])
            ],
            row![
                words(&["the", "dog"]),
                2i64,
                false,
                "dog",
                Value::Null,
                nums(2),
                "[the, dog]",
                "the+dog",
                words(&["the", "dog"])
            ],
            row![
                words(&[""]),
                1i64,
                false,
                "",
                Value::Null,
                nums(3),
                "[]",
                "",
                words(&[""])
            ],
            // split(null) is null; Spark's size(null) is -1.
            row![
                Value::Null,
                -1i64,
                Value::Null,
                Value::Null,
                Value::Null,
                nums(4),
                Value::Null,
                "",
                Value::Null
            ],
        ]
    );
    assert_eq!(names(&s).len(), s.fields().len());
    assert_eq!(
        crate::schema::type_name(s.field(0).data_type()),
        "array<string>"
    );
    assert_eq!(
        crate::schema::type_name(s.field(5).data_type()),
        "array<bigint>"
    );
}

#[test]
fn array_contains_is_null_when_absent_and_a_null_element_is_present() {
    let input = schema(&[("a", DataType::Int64)]);
    let (out, _) = run_both(
        "SELECT array_contains(array(1, NULL), a) AS c, array_contains(array(1, 2), a) AS d \
         FROM t",
        input,
        vec![row![1i64], row![3i64], row![Value::Null]],
    );
    assert_eq!(
        out,
        vec![
            row![true, true],
            row![Value::Null, false],
            row![Value::Null, Value::Null]
        ]
    );
}

#[test]
fn arrays_are_written_as_json_arrays() {
    let mut out = Vec::new();
    write_value_json(
        &Value::list([Value::str("a\"b"), Value::Null, Value::Int64(3)]),
        &mut out,
    );
    assert_eq!(String::from_utf8(out).unwrap(), r#"["a\"b",null,3]"#);
}

/// The error of `sql` against the lines stream, from parse or apply.
fn assert_lines_error(sql: &str, msg: &str) {
    let (source, _producer) = MemorySource::new(lines_schema());
    let err = match StreamingSql::parse(sql) {
        Err(e) => e.to_string(),
        Ok(q) => match q.apply(DataFrame::from_source(q.table(), source)) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("`{sql}` planned without an error"),
        },
    };
    assert!(err.contains(msg), "expected `{msg}` in:\n{err}");
}

#[test]
fn generators_out_of_place_are_refused_with_spark_reasons() {
    assert_lines_error(
        "SELECT explode(split(value, ' ')), explode(split(value, ',')) FROM lines",
        "only one generator is allowed in a select list, but found 2",
    );
    assert_lines_error(
        "SELECT id FROM lines WHERE size(split(value, ' ')) > 1 AND explode(split(value, ' ')) = 'a'",
        "the generator explode is allowed only as a whole item of the select list",
    );
    assert_lines_error(
        "SELECT explode(value) FROM lines",
        "the argument of explode must be an array, but value is string",
    );
    assert_lines_error(
        "SELECT w FROM lines LATERAL VIEW upper(value) t AS w",
        "LATERAL VIEW needs a generator",
    );
    assert_lines_error(
        "SELECT p FROM lines LATERAL VIEW posexplode(split(value, ' ')) t AS p",
        "posexplode gives 2 columns, but 1 name was given: p",
    );
    assert_lines_error(
        "SELECT upper(split(value, ' ')) FROM lines",
        "the first argument of upper must be a string, got array<string>",
    );
    assert_lines_error(
        "SELECT element_at(split(value, ' '), 0) FROM lines",
        "array indices start at 1",
    );
}

#[test]
fn collect_list_keeps_non_null_values_in_arrival_order_in_both_modes() {
    let input = schema(&[("k", DataType::Utf8), ("x", DataType::Int64)]);
    let rows = vec![
        row!["a", 3i64],
        row!["b", None::<i64>],
        row!["a", None::<i64>],
        row!["a", 1i64],
        row!["a", 3i64],
    ];
    let out = run_both_updates(
        "SELECT k, collect_list(x) AS xs, size(collect_list(x)) AS n FROM t GROUP BY k",
        input,
        rows,
    );
    let ints = |xs: &[i64]| Value::list(xs.iter().map(|&x| Value::Int64(x)));
    assert_eq!(
        out,
        vec![
            row!["a", ints(&[3, 1, 3]), 3i64],
            // Spark gives an empty array, not null, for a group of nulls.
            row!["b", ints(&[]), 0i64],
        ]
    );
    // Over the words of the lines: an array of strings.
    let out = run_both_updates(
        "SELECT id % 2 AS odd, collect_list(word) AS ws \
         FROM lines LATERAL VIEW explode(split(value, ' ')) t AS word GROUP BY id % 2",
        lines_schema(),
        lines(),
    );
    assert_eq!(
        out,
        vec![
            row![0i64, words(&["the", "dog"])],
            row![1i64, words(&["the", "cat", "sat", ""])],
        ]
    );
}
