//! Tests of the function library: hand-checked values per function (each
//! through both evaluators), and a property test holding the row and column
//! kernels of every function to the same answers over random inputs with
//! nulls, NaN, signed zeros, empty strings and extreme timestamps and dates.

use std::collections::BTreeMap;

use super::*;
use crate::expr::{bind_expr, bind_expr_in, call, case_when, col, lit, Expr};
use crate::schema::arrow::{rows_to_batch, value_at};
use crate::schema::{list_type, schema, timestamp_type, Row, SchemaRef, Value};
use crate::time::{parse_date, parse_timestamp_us, Zone};

fn test_schema() -> SchemaRef {
    schema(&[
        ("i", DataType::Int64),
        ("j", DataType::Int64),
        ("f", DataType::Float64),
        ("s", DataType::Utf8),
        ("p", DataType::Utf8),
        ("t", timestamp_type()),
        ("d", DataType::Date32),
        ("b", DataType::Boolean),
        ("a", list_type(DataType::Utf8)),
    ])
}

/// Evaluates `e` over `rows` with both evaluators, asserts they agree and
/// that the column has the bound type; the row evaluator's values.
fn both(e: &Expr, rows: &[Row]) -> Result<Vec<Value>, String> {
    both_in(e, rows, Zone::UTC)
}

/// [`both`] in the session time zone `zone`.
fn both_in(e: &Expr, rows: &[Row], zone: Zone) -> Result<Vec<Value>, String> {
    let s = test_schema();
    let (bound, field) = bind_expr_in(e, &s, zone).map_err(|e| e.to_string())?;
    let batch = rows_to_batch(&s, rows).unwrap();
    let array = bound
        .eval_array(&batch)
        .unwrap_or_else(|err| panic!("{e}: the Arrow evaluator failed: {err}"));
    assert_eq!(array.len(), rows.len(), "{e}");
    if array.data_type() != &DataType::Null {
        assert_eq!(array.data_type(), field.data_type(), "{e}: column type");
    }
    let mut out = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let by_row = bound.eval(row);
        let by_kernel = bound.eval_without_direct(row);
        assert!(
            by_row == by_kernel,
            "{e} on {row}: direct form {by_row:?}, row kernel {by_kernel:?}"
        );
        let by_column = value_at(array.as_ref(), i).unwrap();
        assert!(
            by_row == by_column,
            "{e} on {row}: row evaluator {by_row:?}, Arrow evaluator {by_column:?}"
        );
        out.push(by_row);
    }
    Ok(out)
}

fn null_row() -> Row {
    Row::from(vec![Value::Null; 9])
}

/// The value of a constant expression, by both evaluators.
fn v(e: Expr) -> Value {
    both(&e, &[null_row()])
        .unwrap_or_else(|err| panic!("{err}"))
        .remove(0)
}

fn f(name: &str, args: Vec<Expr>) -> Value {
    v(call(name, args))
}

fn null() -> Expr {
    lit(Value::Null)
}

fn ts(text: &str) -> Value {
    Value::Timestamp(parse_timestamp_us(text).unwrap())
}

fn date(text: &str) -> Value {
    Value::Date(parse_date(text).unwrap())
}

fn s(text: &str) -> Value {
    Value::str(text)
}

#[test]
fn null_functions() {
    assert_eq!(
        f("coalesce", vec![null(), lit(2i64), lit(3i64)]),
        Value::Int64(2)
    );
    assert_eq!(f("coalesce", vec![null(), null()]), Value::Null);
    assert_eq!(
        f("coalesce", vec![lit(1i64), lit(2.5)]),
        Value::Float64(1.0)
    );
    assert_eq!(f("coalesce", vec![null(), lit("a")]), s("a"));
    assert_eq!(f("coalesce", vec![null(), lit(7i64), lit("a")]), s("7"));
    assert_eq!(f("nvl", vec![null(), lit(5i64)]), Value::Int64(5));
    assert_eq!(f("ifnull", vec![lit("x"), lit("y")]), s("x"));
    assert_eq!(
        f("nvl2", vec![null(), lit(1i64), lit(2i64)]),
        Value::Int64(2)
    );
    assert_eq!(
        f("nvl2", vec![lit(0i64), lit(1i64), lit(2i64)]),
        Value::Int64(1)
    );
    assert_eq!(f("nullif", vec![lit(1i64), lit(1i64)]), Value::Null);
    assert_eq!(f("nullif", vec![lit(1i64), lit(2i64)]), Value::Int64(1));
    assert_eq!(f("nullif", vec![null(), lit(1i64)]), Value::Null);
    assert_eq!(f("nullif", vec![lit(2i64), lit(2.0)]), Value::Null);
    assert_eq!(f("nullif", vec![lit(f64::NAN), lit(f64::NAN)]), Value::Null);
    assert_eq!(f("isnull", vec![null()]), Value::Boolean(true));
    assert_eq!(f("isnull", vec![lit(0i64)]), Value::Boolean(false));
    assert_eq!(f("isnotnull", vec![lit(1i64)]), Value::Boolean(true));
    assert_eq!(
        f("if", vec![lit(true), lit(1i64), lit(2i64)]),
        Value::Int64(1)
    );
    assert_eq!(f("if", vec![null(), lit(1i64), lit(2i64)]), Value::Int64(2));
    assert_eq!(f("if", vec![lit(false), lit("a"), lit(1i64)]), s("1"));
    assert!(
        both(&call("coalesce", [lit(true), lit(1i64)]), &[null_row()])
            .unwrap_err()
            .contains("need a common type, got boolean, bigint")
    );
}

#[test]
fn math_functions() {
    assert_eq!(f("abs", vec![lit(-3i64)]), Value::Int64(3));
    assert_eq!(f("abs", vec![lit(-2.5)]), Value::Float64(2.5));
    assert_eq!(f("abs", vec![lit(i64::MIN)]), Value::Int64(i64::MIN));
    assert_eq!(f("abs", vec![lit("-4")]), Value::Float64(4.0));
    assert_eq!(f("abs", vec![null()]), Value::Null);
    assert_eq!(f("ceil", vec![lit(1.2)]), Value::Int64(2));
    assert_eq!(f("ceil", vec![lit(-1.2)]), Value::Int64(-1));
    assert_eq!(f("floor", vec![lit(-1.2)]), Value::Int64(-2));
    assert_eq!(f("ceil", vec![lit(5i64)]), Value::Int64(5));
    assert_eq!(f("floor", vec![lit(f64::NAN)]), Value::Int64(0));
    assert_eq!(f("round", vec![lit(2.5)]), Value::Float64(3.0));
    assert_eq!(f("round", vec![lit(-2.5)]), Value::Float64(-3.0));
    assert_eq!(
        f("round", vec![lit(2.675), lit(2i64)]),
        Value::Float64(2.68)
    );
    assert_eq!(
        f("round", vec![lit(1250i64), lit(-2i64)]),
        Value::Int64(1300)
    );
    assert_eq!(
        f("round", vec![lit(-1250i64), lit(-2i64)]),
        Value::Int64(-1300)
    );
    assert_eq!(f("round", vec![lit(7i64), lit(2i64)]), Value::Int64(7));
    assert_eq!(f("bround", vec![lit(2.5)]), Value::Float64(2.0));
    assert_eq!(f("bround", vec![lit(3.5)]), Value::Float64(4.0));
    assert_eq!(f("bround", vec![lit(-2.5)]), Value::Float64(-2.0));
    assert_eq!(f("bround", vec![lit(0.5)]), Value::Float64(0.0));
    assert_eq!(
        f("bround", vec![lit(2.665), lit(2i64)]),
        Value::Float64(2.66)
    );
    assert_eq!(
        f("bround", vec![lit(2.675), lit(2i64)]),
        Value::Float64(2.68)
    );
    assert_eq!(
        f("bround", vec![lit(1250i64), lit(-2i64)]),
        Value::Int64(1200)
    );
    assert_eq!(
        f("bround", vec![lit(1350i64), lit(-2i64)]),
        Value::Int64(1400)
    );
    assert_eq!(f("sqrt", vec![lit(4i64)]), Value::Float64(2.0));
    assert!(matches!(f("sqrt", vec![lit(-1i64)]), Value::Float64(x) if x.is_nan()));
    assert_eq!(
        f("pow", vec![lit(2i64), lit(10i64)]),
        Value::Float64(1024.0)
    );
    assert_eq!(f("power", vec![lit(2i64), lit(-1i64)]), Value::Float64(0.5));
    assert!(matches!(f("pow", vec![lit(1.0), lit(f64::NAN)]), Value::Float64(x) if x.is_nan()));
    assert_eq!(f("exp", vec![lit(0i64)]), Value::Float64(1.0));
    assert_eq!(f("ln", vec![lit(1i64)]), Value::Float64(0.0));
    assert_eq!(f("ln", vec![lit(0i64)]), Value::Null);
    assert_eq!(f("log10", vec![lit(1000i64)]), Value::Float64(3.0));
    assert_eq!(f("log10", vec![lit(-1i64)]), Value::Null);
    assert_eq!(
        f("greatest", vec![lit(1i64), lit(3i64), lit(2i64)]),
        Value::Int64(3)
    );
    assert_eq!(
        f("greatest", vec![lit(1i64), null(), lit(2.5)]),
        Value::Float64(2.5)
    );
    assert_eq!(f("greatest", vec![null(), null()]), Value::Null);
    assert_eq!(
        f("least", vec![lit(3i64), lit(1i64), null()]),
        Value::Int64(1)
    );
    assert!(
        matches!(f("greatest", vec![lit(1.0), lit(f64::NAN)]), Value::Float64(x) if x.is_nan())
    );
    assert_eq!(f("least", vec![lit("b"), lit("a")]), s("a"));
    assert_eq!(f("sign", vec![lit(-3i64)]), Value::Float64(-1.0));
    assert_eq!(f("signum", vec![lit(0i64)]), Value::Float64(0.0));
    assert_eq!(f("sign", vec![lit(2.5)]), Value::Float64(1.0));
    assert!(both(&call("greatest", [lit(1i64), lit("a")]), &[null_row()]).is_err());
}

#[test]
fn string_functions() {
    assert_eq!(f("lower", vec![lit("AbC")]), s("abc"));
    assert_eq!(f("upper", vec![lit("AbC")]), s("ABC"));
    assert_eq!(f("upper", vec![lit(1.5)]), s("1.5"));
    assert_eq!(f("concat", vec![lit("a"), lit(1i64), null()]), Value::Null);
    assert_eq!(
        f("concat", vec![lit("a"), lit(1i64), lit(true)]),
        s("a1true")
    );
    assert_eq!(f("concat", vec![]), s(""));
    assert_eq!(
        f("concat_ws", vec![lit("-"), lit("a"), null(), lit("b")]),
        s("a-b")
    );
    assert_eq!(f("concat_ws", vec![null(), lit("a")]), Value::Null);
    assert_eq!(f("concat_ws", vec![lit(",")]), s(""));
    assert_eq!(
        f("substring", vec![lit("Spark SQL"), lit(5i64)]),
        s("k SQL")
    );
    assert_eq!(f("substring", vec![lit("Spark SQL"), lit(-3i64)]), s("SQL"));
    assert_eq!(
        f("substr", vec![lit("Spark SQL"), lit(5i64), lit(1i64)]),
        s("k")
    );
    assert_eq!(f("substr", vec![lit("abc"), lit(0i64), lit(2i64)]), s("ab"));
    assert_eq!(f("substr", vec![lit("abc"), lit(-5i64), lit(3i64)]), s("a"));
    assert_eq!(f("substr", vec![lit("abc"), lit(2i64), lit(-1i64)]), s(""));
    assert_eq!(
        f("substring", vec![lit("héllo"), lit(2i64), lit(2i64)]),
        s("él")
    );
    assert_eq!(f("substring", vec![lit("abc"), null()]), Value::Null);
    assert_eq!(f("length", vec![lit("héllo")]), Value::Int64(5));
    assert_eq!(f("length", vec![lit("")]), Value::Int64(0));
    assert_eq!(f("length", vec![null()]), Value::Null);
    assert_eq!(f("trim", vec![lit("  a b  ")]), s("a b"));
    assert_eq!(f("ltrim", vec![lit("  a ")]), s("a "));
    assert_eq!(f("rtrim", vec![lit(" a  ")]), s(" a"));
    assert_eq!(f("trim", vec![lit("\ta")]), s("\ta"));
    assert_eq!(f("lpad", vec![lit("hi"), lit(5i64), lit("??")]), s("???hi"));
    assert_eq!(f("lpad", vec![lit("hi"), lit(1i64), lit("??")]), s("h"));
    assert_eq!(f("rpad", vec![lit("hi"), lit(5i64), lit("ab")]), s("hiaba"));
    assert_eq!(f("lpad", vec![lit("hi"), lit(5i64)]), s("   hi"));
    assert_eq!(f("lpad", vec![lit("hi"), lit(5i64), lit("")]), s("hi"));
    assert_eq!(f("rpad", vec![lit("hi"), lit(-1i64), lit("x")]), s(""));
    assert_eq!(
        f("replace", vec![lit("ABCabc"), lit("abc"), lit("DEF")]),
        s("ABCDEF")
    );
    assert_eq!(f("replace", vec![lit("aaa"), lit("a")]), s(""));
    assert_eq!(f("replace", vec![lit("abc"), lit(""), lit("x")]), s("abc"));
    assert_eq!(
        f(
            "regexp_replace",
            vec![lit("100-200"), lit("(\\d+)"), lit("num")]
        ),
        s("num-num")
    );
    assert_eq!(
        f(
            "regexp_replace",
            vec![lit("a-b"), lit("(\\w)-(\\w)"), lit("$2-$1")]
        ),
        s("b-a")
    );
    assert_eq!(
        f("regexp_replace", vec![lit("a"), lit("(a)"), lit("$1b\\$")]),
        s("ab$")
    );
    let re = || lit("(\\d+)-(\\d+)");
    assert_eq!(
        f("regexp_extract", vec![lit("100-200"), re(), lit(1i64)]),
        s("100")
    );
    assert_eq!(
        f("regexp_extract", vec![lit("100-200"), re(), lit(2i64)]),
        s("200")
    );
    assert_eq!(
        f("regexp_extract", vec![lit("100-200"), re(), lit(0i64)]),
        s("100-200")
    );
    assert_eq!(f("regexp_extract", vec![lit("x"), re()]), s(""));
    assert!(both(
        &call("regexp_extract", [lit("x"), re(), lit(3i64)]),
        &[null_row()]
    )
    .is_err());
    assert_eq!(
        f("instr", vec![lit("SparkSQL"), lit("SQL")]),
        Value::Int64(6)
    );
    assert_eq!(f("instr", vec![lit("abc"), lit("z")]), Value::Int64(0));
    assert_eq!(f("instr", vec![lit("héllo"), lit("l")]), Value::Int64(3));
    assert_eq!(f("initcap", vec![lit("sPark sql")]), s("Spark Sql"));
    assert_eq!(
        f("initcap", vec![lit("hello-world  foo")]),
        s("Hello-world  Foo")
    );
    assert_eq!(f("reverse", vec![lit("Spark")]), s("krapS"));
    assert_eq!(
        f("like", vec![lit("Spark"), lit("S%")]),
        Value::Boolean(true)
    );
    assert_eq!(
        f("like", vec![lit("Spark"), lit("_park")]),
        Value::Boolean(true)
    );
    assert_eq!(
        f("like", vec![lit("Spark"), lit("s%")]),
        Value::Boolean(false)
    );
    assert_eq!(
        f("like", vec![lit("Spark"), lit("%ar%")]),
        Value::Boolean(true)
    );
    assert_eq!(
        f("like", vec![lit("Spark"), lit("%rk")]),
        Value::Boolean(true)
    );
    assert_eq!(
        f("like", vec![lit("a%b"), lit("a\\%b")]),
        Value::Boolean(true)
    );
    assert_eq!(
        f("like", vec![lit("axb"), lit("a\\%b")]),
        Value::Boolean(false)
    );
    assert_eq!(
        f("like", vec![lit("a.c"), lit("a.c")]),
        Value::Boolean(true)
    );
    assert_eq!(
        f("like", vec![lit("abc"), lit("a.c")]),
        Value::Boolean(false)
    );
    assert_eq!(
        f("like", vec![lit("a\nb"), lit("a%b")]),
        Value::Boolean(true)
    );
    assert_eq!(
        f("like", vec![lit("a_b"), lit("a/_b"), lit("/")]),
        Value::Boolean(true)
    );
    assert_eq!(
        f("like", vec![lit("axb"), lit("a/_b"), lit("/")]),
        Value::Boolean(false)
    );
    assert_eq!(f("like", vec![null(), lit("a")]), Value::Null);
    assert_eq!(f("like", vec![lit("a"), null()]), Value::Null);
    assert_eq!(
        f("ilike", vec![lit("Spark"), lit("s%K")]),
        Value::Boolean(true)
    );
    assert_eq!(
        f("rlike", vec![lit("Spark"), lit("ar")]),
        Value::Boolean(true)
    );
    assert_eq!(
        f("rlike", vec![lit("Spark"), lit("^ar")]),
        Value::Boolean(false)
    );
    assert!(both(&call("like", [lit("a"), col("s")]), &[null_row()])
        .unwrap_err()
        .contains("the second argument of like must be a string literal"));
}

#[test]
fn time_functions() {
    let d = || lit(date("2024-02-29"));
    assert_eq!(f("year", vec![d()]), Value::Int64(2024));
    assert_eq!(f("month", vec![d()]), Value::Int64(2));
    assert_eq!(f("dayofmonth", vec![d()]), Value::Int64(29));
    assert_eq!(f("day", vec![d()]), Value::Int64(29));
    assert_eq!(f("dayofweek", vec![d()]), Value::Int64(5));
    assert_eq!(
        f("dayofweek", vec![lit(date("2024-03-03"))]),
        Value::Int64(1)
    );
    assert_eq!(f("dayofyear", vec![d()]), Value::Int64(60));
    assert_eq!(f("quarter", vec![d()]), Value::Int64(1));
    assert_eq!(
        f("year", vec![lit("2024-02-29 10:00:00")]),
        Value::Int64(2024)
    );
    assert_eq!(f("year", vec![lit(date("0001-01-01"))]), Value::Int64(1));
    assert_eq!(
        f("month", vec![lit(ts("1969-12-31 23:59:59"))]),
        Value::Int64(12)
    );
    let t = || lit(ts("2024-01-01 13:45:30.5"));
    assert_eq!(f("hour", vec![t()]), Value::Int64(13));
    assert_eq!(f("minute", vec![t()]), Value::Int64(45));
    assert_eq!(f("second", vec![t()]), Value::Int64(30));
    assert_eq!(
        f("hour", vec![lit(ts("1969-12-31 23:00:00"))]),
        Value::Int64(23)
    );
    assert_eq!(f("hour", vec![lit("2024-01-01 07:00:00")]), Value::Int64(7));
    assert_eq!(f("hour", vec![lit(date("2024-01-01"))]), Value::Int64(0));
    assert_eq!(f("hour", vec![null()]), Value::Null);
    assert_eq!(f("to_date", vec![lit("2024-03-01")]), date("2024-03-01"));
    assert_eq!(
        f("to_date", vec![lit("01/03/2024"), lit("dd/MM/yyyy")]),
        date("2024-03-01")
    );
    assert_eq!(f("to_date", vec![lit("garbage")]), Value::Null);
    assert_eq!(
        f("to_date", vec![lit(ts("2024-03-01 23:59:59"))]),
        date("2024-03-01")
    );
    assert_eq!(
        f("to_timestamp", vec![lit("2024-03-01 10:11:12")]),
        ts("2024-03-01 10:11:12")
    );
    assert_eq!(
        f(
            "to_timestamp",
            vec![lit("2024/03/01 10"), lit("yyyy/MM/dd HH")]
        ),
        ts("2024-03-01 10:00:00")
    );
    let x = || lit(ts("2024-02-29 13:45:30.123456"));
    let trunc = |unit: &str| f("date_trunc", vec![lit(unit), x()]);
    assert_eq!(trunc("YEAR"), ts("2024-01-01 00:00:00"));
    assert_eq!(trunc("quarter"), ts("2024-01-01 00:00:00"));
    assert_eq!(trunc("MONTH"), ts("2024-02-01 00:00:00"));
    assert_eq!(trunc("WEEK"), ts("2024-02-26 00:00:00"));
    assert_eq!(trunc("DAY"), ts("2024-02-29 00:00:00"));
    assert_eq!(trunc("HOUR"), ts("2024-02-29 13:00:00"));
    assert_eq!(trunc("MINUTE"), ts("2024-02-29 13:45:00"));
    assert_eq!(trunc("SECOND"), ts("2024-02-29 13:45:30"));
    assert_eq!(trunc("MILLISECOND"), ts("2024-02-29 13:45:30.123"));
    assert_eq!(
        f(
            "date_trunc",
            vec![lit("HOUR"), lit(ts("1969-12-31 23:30:00"))]
        ),
        ts("1969-12-31 23:00:00")
    );
    assert_eq!(
        f("date_add", vec![lit(date("2024-02-28")), lit(1i64)]),
        date("2024-02-29")
    );
    assert_eq!(
        f("date_sub", vec![lit(date("2024-03-01")), lit(1i64)]),
        date("2024-02-29")
    );
    assert_eq!(
        f("date_add", vec![lit("2024-12-31"), lit(1i64)]),
        date("2025-01-01")
    );
    assert_eq!(
        f(
            "datediff",
            vec![lit(date("2024-03-01")), lit(date("2024-02-01"))]
        ),
        Value::Int64(29)
    );
    assert_eq!(
        f(
            "datediff",
            vec![lit("2024-02-01"), lit(ts("2024-03-01 10:00:00"))]
        ),
        Value::Int64(-29)
    );
    assert_eq!(
        f("unix_timestamp", vec![lit(ts("1970-01-02 00:00:00"))]),
        Value::Int64(86_400)
    );
    assert_eq!(
        f("unix_timestamp", vec![lit("1970-01-01 00:01:00")]),
        Value::Int64(60)
    );
    assert_eq!(
        f("unix_timestamp", vec![lit("1970/01/01"), lit("yyyy/MM/dd")]),
        Value::Int64(0)
    );
    assert_eq!(f("unix_timestamp", vec![lit("nope")]), Value::Null);
    assert_eq!(
        f("from_unixtime", vec![lit(0i64)]),
        s("1970-01-01 00:00:00")
    );
    assert_eq!(
        f("from_unixtime", vec![lit(86_400i64), lit("yyyy-MM-dd")]),
        s("1970-01-02")
    );
    assert_eq!(
        f("date_format", vec![x(), lit("yyyy-MM-dd HH:mm")]),
        s("2024-02-29 13:45")
    );
    let add = |unit: &str, n: i64, t: &str| f("timestampadd", vec![lit(unit), lit(n), lit(ts(t))]);
    assert_eq!(
        add("MONTH", 1, "2024-01-31 10:00:00"),
        ts("2024-02-29 10:00:00")
    );
    assert_eq!(
        add("YEAR", 1, "2024-02-29 00:00:00"),
        ts("2025-02-28 00:00:00")
    );
    assert_eq!(
        add("quarter", -1, "2024-05-31 00:00:00"),
        ts("2024-02-29 00:00:00")
    );
    assert_eq!(
        add("HOUR", -2, "2024-01-01 01:00:00"),
        ts("2023-12-31 23:00:00")
    );
    assert_eq!(
        add("WEEK", 1, "2024-02-26 00:00:00"),
        ts("2024-03-04 00:00:00")
    );
    assert_eq!(
        f(
            "timestampadd",
            vec![lit("DAY"), lit(i64::MAX), lit(ts("2024-01-01 00:00:00"))]
        ),
        Value::Null
    );
    assert_eq!(
        f(
            "timestampadd",
            vec![
                lit("YEAR"),
                lit(i64::MAX / 12),
                lit(ts("2024-01-01 00:00:00"))
            ]
        ),
        Value::Null
    );
    // The processing time: the evaluators read the clock each, so compare
    // each with the clock only.
    let now = crate::clock::wall_now_us();
    let row_only = |e: Expr| {
        let (b, _) = bind_expr(&e, &test_schema()).unwrap();
        let batch = rows_to_batch(&test_schema(), &[null_row()]).unwrap();
        let column = value_at(b.eval_array(&batch).unwrap().as_ref(), 0).unwrap();
        (b.eval(&null_row()), column)
    };
    for v in <[Value; 2]>::from(row_only(call("current_timestamp", []))) {
        match v {
            Value::Timestamp(us) => assert!((us - now).abs() < 60_000_000),
            other => panic!("{other:?}"),
        }
    }
    match row_only(call("unix_timestamp", [])).0 {
        Value::Int64(secs) => assert!((secs - now / 1_000_000).abs() < 60),
        other => panic!("{other:?}"),
    }
}

#[test]
fn expressions_case_distinct_div_and_casts() {
    let c = |x: i64| {
        case_when(
            [
                (lit(x).gt(lit(10i64)), lit("big")),
                (lit(x).gt(lit(0i64)), lit(1i64)),
            ],
            None,
        )
    };
    assert_eq!(v(c(20)), s("big"));
    assert_eq!(v(c(5)), s("1"));
    assert_eq!(v(c(-5)), Value::Null);
    assert_eq!(
        v(case_when(
            [(null().cast(DataType::Boolean), lit(1i64))],
            Some(lit(2.5))
        )),
        Value::Float64(2.5)
    );
    assert_eq!(v(null().is_not_distinct_from(null())), Value::Boolean(true));
    assert_eq!(
        v(lit(1i64).is_not_distinct_from(null())),
        Value::Boolean(false)
    );
    assert_eq!(v(lit(1i64).is_distinct_from(null())), Value::Boolean(true));
    assert_eq!(
        v(lit(1i64).is_distinct_from(lit(1.0))),
        Value::Boolean(false)
    );
    assert_eq!(v(lit(7i64).int_div(lit(2i64))), Value::Int64(3));
    assert_eq!(v(lit(-7i64).int_div(lit(2i64))), Value::Int64(-3));
    assert_eq!(v(lit(7.9).int_div(lit(2i64))), Value::Int64(3));
    assert_eq!(v(lit(7i64).int_div(lit(0i64))), Value::Null);
    assert_eq!(v(lit(i64::MIN).int_div(lit(-1i64))), Value::Int64(i64::MIN));
    // Casts between every pair, Spark's non-ANSI rules.
    let cast = |x: Value, to: DataType| v(lit(x).cast(to));
    assert_eq!(
        cast(Value::Float64(f64::NAN), DataType::Int64),
        Value::Int64(0)
    );
    assert_eq!(
        cast(Value::Float64(1e30), DataType::Int64),
        Value::Int64(i64::MAX)
    );
    assert_eq!(
        cast(Value::Boolean(true), timestamp_type()),
        Value::Timestamp(1)
    );
    assert_eq!(
        cast(Value::Timestamp(0), DataType::Boolean),
        Value::Boolean(false)
    );
    assert_eq!(cast(date("2024-01-02"), DataType::Int64), Value::Null);
    assert_eq!(cast(Value::Int64(1), DataType::Date32), Value::Null);
    assert_eq!(
        cast(s("2024-01-02 10:00:00"), DataType::Date32),
        date("2024-01-02")
    );
    assert_eq!(cast(Value::Date(i32::MIN), timestamp_type()), Value::Null);
    assert_eq!(cast(date("2024-01-02"), DataType::Utf8), s("2024-01-02"));
    assert_eq!(cast(Value::Boolean(true), DataType::Utf8), s("true"));
    assert_eq!(cast(s("yes"), DataType::Boolean), Value::Boolean(true));
    assert_eq!(
        cast(Value::Timestamp(1_500_000), DataType::Float64),
        Value::Float64(1.5)
    );
}

#[test]
fn unknown_names_get_the_nearest_one() {
    assert_eq!(nearest("coalese", &[]), Some("coalesce"));
    assert_eq!(nearest("SUBSTRNG", &[]), Some("substring"));
    assert_eq!(nearest("cout", &["count"]), Some("count"));
    assert_eq!(edit_distance("kitten", "sitting"), 3);
    let err = both(&call("dayofmonht", [col("d")]), &[]).unwrap_err();
    assert!(err.contains("did you mean `dayofmonth`?"), "{err}");
    assert!(lookup("SUBSTR").is_some_and(|d| d.name == "substring"));
}

#[test]
fn every_name_is_unique_and_documented() {
    let mut seen = BTreeMap::new();
    for d in all() {
        for n in std::iter::once(d.name).chain(d.aliases.iter().copied()) {
            assert_eq!(n, n.to_ascii_lowercase());
            assert!(seen.insert(n, d.name).is_none(), "{n} twice");
        }
        assert!(d.signature.starts_with(d.name), "{}", d.name);
        assert!(!d.doc.is_empty());
        assert!(d.max_args.is_none_or(|m| m >= d.min_args));
    }
}

// ---------------------------------------------------------------------------
// The two evaluators agree on every function.

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<T: Clone>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())].clone()
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

const INTS: [i64; 11] = [
    0,
    1,
    2,
    3,
    -1,
    -7,
    86_400,
    1_000_000_007,
    i64::MIN,
    i64::MAX,
    -40,
];
const FLOATS: [f64; 11] = [
    0.5,
    -0.0,
    0.0,
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    2.675,
    -1.5,
    1e20,
    1e-7,
    3.0,
];
const STRINGS: [&str; 14] = [
    "",
    " a b ",
    "Spark SQL",
    "héllo wörld",
    "100-200",
    "2024-02-29",
    "2024-02-29 10:11:12",
    "a%b",
    "  ",
    "x_y",
    "42",
    "-3.5",
    "true",
    "01/03/2024",
];
const TIMESTAMPS: [i64; 9] = [
    0,
    -1,
    i64::MIN,
    i64::MAX,
    i64::MIN + 1,
    1_709_201_472_123_456,
    -86_400_000_001,
    253_402_300_799_999_999,
    -62_135_596_800_000_000,
];
const DATES: [i32; 7] = [0, -1, i32::MIN, i32::MAX, 19_782, -719_162, 2_932_896];

fn random_value(rng: &mut Rng, col: usize) -> Value {
    if rng.chance(15) {
        return Value::Null;
    }
    match col {
        0 | 1 => Value::Int64(rng.pick(&INTS)),
        2 => Value::Float64(rng.pick(&FLOATS)),
        3 | 4 => Value::str(rng.pick(&STRINGS)),
        5 => Value::Timestamp(rng.pick(&TIMESTAMPS)),
        6 => Value::Date(rng.pick(&DATES)),
        7 => Value::Boolean(rng.chance(50)),
        // Arrays of up to four strings, empty arrays and null elements.
        _ => Value::list((0..rng.below(5)).map(|_| {
            if rng.chance(15) {
                Value::Null
            } else {
                Value::str(rng.pick(&STRINGS))
            }
        })),
    }
}

fn random_rows(rng: &mut Rng) -> Vec<Row> {
    let n = 1 + rng.below(24);
    (0..n)
        .map(|_| (0..9).map(|c| random_value(rng, c)).collect())
        .collect()
}

const COLUMNS: [&str; 9] = ["i", "j", "f", "s", "p", "t", "d", "b", "a"];

/// Literals a call may get: numbers, patterns, units, NULL.
fn random_literal(rng: &mut Rng) -> Expr {
    let strings = [
        "yyyy-MM-dd",
        "dd/MM/yyyy",
        "HH:mm",
        "HOUR",
        "week",
        "MONTH",
        "%a%",
        "a_",
        "S%",
        "(\\d+)",
        "([a-z]+) ([a-z]+)",
        "$1",
        "-",
        "",
        "é",
        "/",
    ];
    match rng.below(6) {
        0 => lit(Value::Null),
        1 => lit(rng.pick(&INTS)),
        2 => lit(rng.pick(&FLOATS)),
        3 => lit(rng.pick(&[0i64, 1, 2, -2, 5])),
        _ => lit(rng.pick(&strings)),
    }
}

fn random_arg(rng: &mut Rng, must_be_literal: bool) -> Expr {
    if must_be_literal || rng.chance(25) {
        random_literal(rng)
    } else {
        col(rng.pick(&COLUMNS))
    }
}

#[test]
fn row_and_column_kernels_agree_on_every_function() {
    kernels_agree_in(Zone::UTC, 0x5eed_1234_abcd_0001);
}

#[test]
fn row_and_column_kernels_agree_on_every_function_in_other_zones() {
    for (zone, seed) in [
        ("America/Los_Angeles", 0x5eed_1234_abcd_0002),
        ("Asia/Kolkata", 0x5eed_1234_abcd_0003),
        ("-03:30", 0x5eed_1234_abcd_0004),
    ] {
        kernels_agree_in(Zone::parse(zone).unwrap(), seed);
    }
}

fn kernels_agree_in(zone: Zone, seed: u64) {
    let mut rng = Rng(seed);
    let mut bound: BTreeMap<&str, usize> = BTreeMap::new();
    for _round in 0..60 {
        let rows = random_rows(&mut rng);
        for d in all().filter(|d| d.deterministic) {
            for _ in 0..8 {
                let max = d.max_args.unwrap_or(d.min_args + 3).min(d.min_args + 3);
                let n = d.min_args + rng.below(max - d.min_args + 1);
                if d.name == "unix_timestamp" && n == 0 {
                    continue;
                }
                let mut args: Vec<Expr> = (0..n)
                    .map(|i| random_arg(&mut rng, d.literal_args.contains(&i)))
                    .collect();
                if matches!(d.name, "lpad" | "rpad") {
                    // A padded length of a billion is a gigabyte per row.
                    args[1] = lit(rng.pick(&[-1i64, 0, 1, 3, 8]));
                }
                let name = if d.aliases.is_empty() || rng.chance(50) {
                    d.name
                } else {
                    rng.pick(d.aliases)
                };
                if both_in(&call(name, args), &rows, zone).is_ok() {
                    *bound.entry(d.name).or_default() += 1;
                }
            }
        }
        // Expressions around the functions: CASE, <=>, DIV, casts.
        for _ in 0..20 {
            let (a, b) = (random_arg(&mut rng, false), random_arg(&mut rng, false));
            let cond = col("b").or(col(rng.pick(&COLUMNS)).is_null());
            let exprs = [
                case_when([(cond, a.clone())], Some(b.clone())),
                case_when([(col("i").gt(lit(0i64)), a.clone())], None),
                a.clone().is_not_distinct_from(b.clone()),
                a.clone().is_distinct_from(b.clone()),
                a.clone().int_div(b.clone()),
                a.clone().cast(rng.pick(&[
                    DataType::Int64,
                    DataType::Float64,
                    DataType::Utf8,
                    DataType::Boolean,
                    DataType::Date32,
                    timestamp_type(),
                ])),
            ];
            for e in &exprs {
                let _ = both_in(e, &rows, zone);
            }
        }
    }
    let missing: Vec<&str> = all()
        .filter(|d| d.deterministic && !bound.contains_key(d.name))
        .map(|d| d.name)
        .collect();
    assert!(missing.is_empty(), "never bound: {missing:?}");
}

#[test]
fn the_readme_lists_the_registry() {
    let readme = include_str!("../../../../README.md");
    let begin = "<!-- functions:begin -->\n";
    let end = "<!-- functions:end -->";
    let start = readme
        .find(begin)
        .expect("the README has <!-- functions:begin -->")
        + begin.len();
    let stop = readme
        .find(end)
        .expect("the README has <!-- functions:end -->");
    let expected = markdown();
    if readme[start..stop] != expected {
        if std::env::var_os("RUNNEL_UPDATE_README").is_some() {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
            let text = format!("{}{expected}{}", &readme[..start], &readme[stop..]);
            std::fs::write(path, text).unwrap();
            return;
        }
        panic!(
            "the README's function list differs from the registry; regenerate it with \
             `RUNNEL_UPDATE_README=1 cargo test -p runnel-engine --lib the_readme_lists_the_registry`"
        );
    }
}

/// The value of `name(args)` in the session time zone `zone`, by both
/// evaluators.
fn fz(zone: &str, name: &str, args: Vec<Expr>) -> Value {
    let zone = Zone::parse(zone).unwrap();
    both_in(&call(name, args), &[null_row()], zone)
        .unwrap_or_else(|err| panic!("{err}"))
        .remove(0)
}

/// A cast in the session time zone `zone`, by both evaluators.
fn cast_in(zone: &str, e: Expr, to: DataType) -> Value {
    let zone = Zone::parse(zone).unwrap();
    both_in(&e.cast(to), &[null_row()], zone)
        .unwrap_or_else(|err| panic!("{err}"))
        .remove(0)
}

#[test]
fn time_functions_read_and_build_local_times_in_the_session_zone() {
    const LA: &str = "America/Los_Angeles";
    const IN: &str = "Asia/Kolkata";
    let t = |text: &str| lit(ts(text));
    // 2024-01-01 05:30 UTC is 2023-12-31 21:30 in Los Angeles (-08:00).
    let new_year = || t("2024-01-01 05:30:00");
    assert_eq!(fz(LA, "hour", vec![new_year()]), Value::Int64(21));
    assert_eq!(fz("UTC", "hour", vec![new_year()]), Value::Int64(5));
    assert_eq!(fz(LA, "minute", vec![new_year()]), Value::Int64(30));
    assert_eq!(fz(LA, "year", vec![new_year()]), Value::Int64(2023));
    assert_eq!(fz(LA, "dayofmonth", vec![new_year()]), Value::Int64(31));
    assert_eq!(fz(LA, "dayofweek", vec![new_year()]), Value::Int64(1));
    assert_eq!(fz(LA, "to_date", vec![new_year()]), date("2023-12-31"));
    assert_eq!(fz("UTC", "to_date", vec![new_year()]), date("2024-01-01"));
    assert_eq!(
        fz(
            LA,
            "date_format",
            vec![new_year(), lit("yyyy-MM-dd HH:mm Z")]
        ),
        s("2023-12-31 21:30 -0800")
    );
    assert_eq!(
        cast_in(LA, new_year(), DataType::Utf8),
        s("2023-12-31 21:30:00")
    );
    assert_eq!(
        cast_in(LA, new_year(), DataType::Date32),
        date("2023-12-31")
    );
    assert_eq!(fz(LA, "hour", vec![null()]), Value::Null);
    assert_eq!(fz(LA, "to_date", vec![null()]), Value::Null);
    // Text without an offset is local time; with one, it keeps it.
    assert_eq!(
        fz(LA, "to_timestamp", vec![lit("2024-07-01 12:00:00")]),
        ts("2024-07-01 19:00:00")
    );
    assert_eq!(
        fz(LA, "to_timestamp", vec![lit("2024-07-01T12:00:00Z")]),
        ts("2024-07-01 12:00:00")
    );
    assert_eq!(
        cast_in(LA, lit("2024-07-01 12:00:00+02:00"), timestamp_type()),
        ts("2024-07-01 10:00:00")
    );
    // The spring-forward gap: 02:30 on 2024-03-10 is 03:30 PDT.
    assert_eq!(
        fz(LA, "to_timestamp", vec![lit("2024-03-10 02:30:00")]),
        ts("2024-03-10 10:30:00")
    );
    assert_eq!(
        fz(
            LA,
            "to_timestamp",
            vec![lit("2024-03-10 02:30"), lit("yyyy-MM-dd HH:mm")]
        ),
        ts("2024-03-10 10:30:00")
    );
    assert_eq!(
        fz(LA, "hour", vec![lit("2024-03-10 02:30:00")]),
        Value::Int64(3)
    );
    // The fall-back overlap: 01:30 on 2024-11-03 is the first one (PDT).
    assert_eq!(
        fz(LA, "to_timestamp", vec![lit("2024-11-03 01:30:00")]),
        ts("2024-11-03 08:30:00")
    );
    // A date is its local midnight.
    assert_eq!(
        cast_in(LA, lit(date("2024-03-10")), timestamp_type()),
        ts("2024-03-10 08:00:00")
    );
    assert_eq!(
        fz(LA, "unix_timestamp", vec![lit(date("2024-01-01"))]),
        Value::Int64(1_704_096_000)
    );
    assert_eq!(
        fz(LA, "unix_timestamp", vec![lit("2024-01-01 00:00:00")]),
        Value::Int64(1_704_096_000)
    );
    assert_eq!(
        fz("UTC", "unix_timestamp", vec![lit("2024-01-01 00:00:00")]),
        Value::Int64(1_704_067_200)
    );
    assert_eq!(
        fz(LA, "from_unixtime", vec![lit(0i64)]),
        s("1969-12-31 16:00:00")
    );
    // date_trunc on the local time line; on the transition day the local
    // midnight is still PST.
    assert_eq!(
        fz(LA, "date_trunc", vec![lit("DAY"), t("2024-03-10 12:00:00")]),
        ts("2024-03-10 08:00:00")
    );
    assert_eq!(
        fz(
            LA,
            "date_trunc",
            vec![lit("MONTH"), t("2024-03-01 05:00:00")]
        ),
        ts("2024-02-01 08:00:00")
    );
    // In the overlap, a truncated hour keeps its offset.
    assert_eq!(
        fz(
            LA,
            "date_trunc",
            vec![lit("HOUR"), t("2024-11-03 09:30:00")]
        ),
        ts("2024-11-03 09:00:00")
    );
    assert_eq!(
        fz(
            LA,
            "date_trunc",
            vec![lit("HOUR"), t("2024-11-03 08:30:00")]
        ),
        ts("2024-11-03 08:00:00")
    );
    // A local day across spring-forward is 23 hours; 24 hours is not a day.
    assert_eq!(
        fz(
            LA,
            "timestampadd",
            vec![lit("DAY"), lit(1i64), t("2024-03-09 20:00:00")]
        ),
        ts("2024-03-10 19:00:00")
    );
    assert_eq!(
        fz(
            LA,
            "timestampadd",
            vec![lit("HOUR"), lit(24i64), t("2024-03-09 20:00:00")]
        ),
        ts("2024-03-10 20:00:00")
    );

    // Kolkata, +05:30 all year: 2024-01-01 20:00 UTC is 2024-01-02 01:30.
    let evening = || t("2024-01-01 20:00:00");
    assert_eq!(fz(IN, "hour", vec![evening()]), Value::Int64(1));
    assert_eq!(fz(IN, "minute", vec![evening()]), Value::Int64(30));
    assert_eq!(fz(IN, "dayofmonth", vec![evening()]), Value::Int64(2));
    assert_eq!(fz(IN, "to_date", vec![evening()]), date("2024-01-02"));
    assert_eq!(
        fz(
            IN,
            "date_format",
            vec![evening(), lit("yyyy-MM-dd HH:mm Z")]
        ),
        s("2024-01-02 01:30 +0530")
    );
    assert_eq!(
        cast_in(IN, evening(), DataType::Utf8),
        s("2024-01-02 01:30:00")
    );
    assert_eq!(
        fz(IN, "to_timestamp", vec![lit("2024-01-02 01:30:00")]),
        ts("2024-01-01 20:00:00")
    );
    assert_eq!(
        fz(IN, "from_unixtime", vec![lit(0i64)]),
        s("1970-01-01 05:30:00")
    );
    assert_eq!(
        fz(IN, "date_trunc", vec![lit("HOUR"), evening()]),
        ts("2024-01-01 19:30:00")
    );
    assert_eq!(
        fz(IN, "unix_timestamp", vec![lit(date("1970-01-01"))]),
        Value::Int64(-19_800)
    );
    // The same as a fixed offset.
    assert_eq!(fz("+05:30", "hour", vec![evening()]), Value::Int64(1));
    assert_eq!(
        fz("+05:30", "date_format", vec![evening(), lit("HH:mm")]),
        s("01:30")
    );
}

/// A row of the test schema with `i`, `s` and `p` set, the rest null.
fn isp(i: Value, s: Value, p: Value) -> Row {
    let mut r = null_row();
    r[0] = i;
    r[3] = s;
    r[4] = p;
    r
}

#[test]
fn direct_forms_give_what_the_row_kernels_give() {
    let rows = vec![
        isp(Value::Int64(11), s("ada"), s("-")),
        isp(Value::Int64(10), s("alan"), Value::Null),
        isp(Value::Null, Value::Null, s("x")),
        // 11 + 1 + 11 = 23 bytes: the most a value holds in place.
        isp(Value::Int64(-3), s("abcdefghijk"), s("é_")),
        // 12 + 12 bytes: longer than that.
        isp(Value::Int64(3), s("abcdefghijkl"), s("ab%cdéfghij")),
        isp(Value::Int64(0), s(""), s("")),
        // Exactly 23 bytes, held in place.
        isp(Value::Int64(1), s("abcdefghijk"), s("-")),
        // A short string kept in a shared allocation (not in place).
        isp(
            Value::Int64(2),
            Value::Utf8(crate::schema::Str::from(std::sync::Arc::<str>::from("ab"))),
            s("+"),
        ),
    ];
    let concat = |args: Vec<Expr>| call("concat", args);
    let found = both(&concat(vec![col("s"), col("p"), col("s")]), &rows).unwrap();
    assert_eq!(found[0], s("ada-ada"));
    assert_eq!(found[1], Value::Null);
    assert_eq!(found[2], Value::Null);
    assert_eq!(found[3], s("abcdefghijké_abcdefghijk"));
    assert_eq!(found[4], s("abcdefghijklab%cdéfghijabcdefghijkl"));
    assert_eq!(found[5], s(""));
    assert_eq!(found[6], s("abcdefghijk-abcdefghijk"));
    assert_eq!(found[7], s("ab+ab"));
    let found = both(&concat(vec![lit("<"), col("s"), lit(">")]), &rows).unwrap();
    assert_eq!(found[0], s("<ada>"));
    assert_eq!(found[2], Value::Null);
    assert_eq!(found[4], s("<abcdefghijkl>"));
    // A literal that is not text is cast to text when the call is bound.
    let found = both(&concat(vec![col("s"), lit(1i64)]), &rows).unwrap();
    assert_eq!(found[0], s("ada1"));
    // A literal longer than a value holds in place.
    let long = "a literal of more than twenty-three bytes";
    let found = both(&concat(vec![col("s"), lit(long)]), &rows).unwrap();
    assert_eq!(found[0], s(&format!("ada{long}")));
    assert_eq!(found[2], Value::Null);
    // A null piece makes every row null.
    let found = both(&concat(vec![col("s"), null()]), &rows).unwrap();
    assert!(found.iter().all(Value::is_null), "{found:?}");

    for pattern in ["a%", "%a", "%d%", "ada", "a_a", "a%a", "%", ""] {
        let like = col("s").like(pattern);
        let found = both(&like, &rows).unwrap();
        assert_eq!(found[2], Value::Null, "{pattern}");
    }
    let found = both(&col("s").like("a%"), &rows).unwrap();
    assert_eq!(&found[..2], &[Value::Boolean(true), Value::Boolean(true)]);

    let found = both(&call("coalesce", vec![col("p"), col("s"), lit("z")]), &rows).unwrap();
    assert_eq!(&found[..3], &[s("-"), s("alan"), s("x")]);
    let found = both(&call("coalesce", vec![col("i"), lit(0i64)]), &rows).unwrap();
    assert_eq!(found[2], Value::Int64(0));

    let size = case_when(
        [
            (col("i").gt(lit(10i64)), lit("big")),
            (col("i").gt(lit(0.5)), col("s")),
        ],
        Some(col("p")),
    );
    let found = both(&size, &rows).unwrap();
    assert_eq!(found[0], s("big"));
    assert_eq!(found[1], s("alan"));
    // A null `i` compares to nothing: the ELSE.
    assert_eq!(found[2], s("x"));
    assert_eq!(found[3], s("é_"));
    let found = both(
        &case_when([(col("i").eq(lit(10i64)), lit(1i64))], None),
        &rows,
    )
    .unwrap();
    assert_eq!(&found[..3], &[Value::Null, Value::Int64(1), Value::Null]);
    // A literal result kept on the heap is cloned, one held in the value
    // copied: both come out whole, row after row.
    let long = "a result longer than a value holds in place";
    let found = both(
        &case_when([(col("i").gt(lit(10i64)), lit(long))], Some(lit("short"))),
        &rows,
    )
    .unwrap();
    assert_eq!(&found[..3], &[s(long), s("short"), s("short")]);

    // Arguments evaluated on the row (a cast, arithmetic, another call).
    let text = || col("i").cast(DataType::Utf8);
    let found = both(&concat(vec![col("s"), text(), lit("!")]), &rows).unwrap();
    assert_eq!(&found[..3], &[s("ada11!"), s("alan10!"), Value::Null]);
    assert_eq!(found[4], s("abcdefghijkl3!"));
    let found = both(&concat(vec![text(), text(), text(), text(), text()]), &rows).unwrap();
    assert_eq!(found[1], s("1010101010"));
    let upper = call("upper", vec![concat(vec![col("s"), text()])]);
    let found = both(&upper, &rows).unwrap();
    assert_eq!(&found[..3], &[s("ADA11"), s("ALAN10"), Value::Null]);
    let found = both(&text().like("1%"), &rows).unwrap();
    assert_eq!(
        &found[..3],
        &[Value::Boolean(true), Value::Boolean(true), Value::Null]
    );
    let plus_one = call("coalesce", vec![col("i") + lit(1i64), lit(0i64)]);
    let found = both(&plus_one, &rows).unwrap();
    assert_eq!(
        &found[..3],
        &[Value::Int64(12), Value::Int64(11), Value::Int64(0)]
    );
}

#[test]
fn case_comparisons_of_a_bigint_with_a_literal_agree_at_the_edges() {
    // The direct form tests `i op k` as a range of bigints; the row and
    // column evaluators compare. Every operator, at the ends of the range,
    // against nulls, and a double column compared with a bigint literal.
    let edge = [
        i64::MIN,
        i64::MIN + 1,
        -1,
        0,
        1,
        9,
        10,
        11,
        i64::MAX - 1,
        i64::MAX,
    ];
    let mut rows: Vec<Row> = edge
        .iter()
        .map(|&i| {
            let mut r = null_row();
            r[0] = Value::Int64(i);
            r[2] = Value::Float64(i as f64 + 0.5);
            r
        })
        .collect();
    rows.push(null_row());
    for k in [i64::MIN, -1, 10, i64::MAX] {
        type Op = fn(Expr, Expr) -> Expr;
        let ops: [(&str, Op); 6] = [
            ("=", Expr::eq),
            ("<>", Expr::not_eq),
            ("<", Expr::lt),
            ("<=", Expr::lt_eq),
            (">", Expr::gt),
            (">=", Expr::gt_eq),
        ];
        for (name, op) in ops {
            for column in ["i", "f"] {
                let e = case_when([(op(col(column), lit(k)), lit("yes"))], Some(lit("no")));
                let found = both(&e, &rows).unwrap_or_else(|err| panic!("{err}"));
                for (row, got) in rows.iter().zip(&found) {
                    let want = match &row[if column == "i" { 0 } else { 2 }] {
                        Value::Int64(x) => Some((*x).cmp(&k)),
                        Value::Float64(x) => x.partial_cmp(&(k as f64)),
                        _ => None,
                    }
                    .map(|o| match name {
                        "=" => o.is_eq(),
                        "<>" => o.is_ne(),
                        "<" => o.is_lt(),
                        "<=" => o.is_le(),
                        ">" => o.is_gt(),
                        _ => o.is_ge(),
                    });
                    let want = if want == Some(true) { "yes" } else { "no" };
                    assert_eq!(*got, s(want), "{column} {name} {k} on {row}");
                }
            }
        }
    }
}

#[test]
fn case_comparisons_of_bigint_arithmetic_with_a_literal_agree_at_the_edges() {
    // The direct form does `i arith k` in place and tests the result as a
    // range; the row walk and the column evaluator compute and compare.
    // Every arithmetic operator and comparison, divisors of zero and -1
    // (a modulo or quotient by zero is null), wrapping at the ends of the
    // range, nulls, and a double column (not the bigint shape).
    let edge = [i64::MIN, i64::MIN + 1, -7, -1, 0, 1, 3, 6, 7, i64::MAX];
    let mut rows: Vec<Row> = edge
        .iter()
        .map(|&i| {
            let mut r = null_row();
            r[0] = Value::Int64(i);
            r[2] = Value::Float64(i as f64);
            r
        })
        .collect();
    rows.push(null_row());
    let (arith, compare) = (crate::expr::test_ops::ARITH, crate::expr::test_ops::COMPARE);
    for a in arith {
        for k in [0i64, -1, 3, i64::MAX] {
            for c in compare {
                for n in [0i64, 1, -1, i64::MIN] {
                    for column in ["i", "f"] {
                        let cond = c(a(col(column), lit(k)), lit(n));
                        let e = case_when([(cond, lit("yes"))], Some(lit("no")));
                        both(&e, &rows).unwrap_or_else(|err| panic!("{e}: {err}"));
                    }
                }
            }
        }
    }
    // By hand: `i % 3 = 0`.
    let e = case_when(
        [((col("i") % lit(3i64)).eq(lit(0i64)), lit("fizz"))],
        Some(lit("other")),
    );
    let found = both(&e, &rows).unwrap();
    let want = [
        "other", "other", "other", "other", "fizz", "other", "fizz", "fizz", "other", "other",
    ];
    for (got, want) in found.iter().zip(want) {
        assert_eq!(*got, s(want));
    }
    assert_eq!(found[10], s("other"), "null % 3 = 0 is null: the ELSE");
}

#[test]
fn a_one_character_prefix_pattern_matches_by_its_first_byte() {
    let rows: Vec<Row> = ["a", "ab", "ba", "", "é", "A"]
        .iter()
        .map(|t| isp(Value::Null, s(t), Value::Null))
        .chain([null_row()])
        .collect();
    let found = both(&col("s").like("a%"), &rows).unwrap();
    let t = Value::Boolean(true);
    let f = Value::Boolean(false);
    assert_eq!(
        found,
        vec![
            t.clone(),
            t,
            f.clone(),
            f.clone(),
            f.clone(),
            f,
            Value::Null
        ]
    );
    // A multi-byte first character is not a one-byte prefix.
    let found = both(&col("s").like("é%"), &rows).unwrap();
    assert_eq!(found[4], Value::Boolean(true));
    assert_eq!(found[0], Value::Boolean(false));
}
