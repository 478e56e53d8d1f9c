//! Dates and timestamps: `year`, `month`, `dayofmonth`, `dayofweek`,
//! `hour`, `minute`, `second`, `to_date`, `to_timestamp`, `date_trunc`,
//! `date_add`, `date_sub`, `datediff`, `unix_timestamp`, `from_unixtime`,
//! `date_format`, `current_timestamp`.
//!
//! Owns these functions' type rules (a string or timestamp is cast to a
//! date where a date is wanted, a string or date to a timestamp where a
//! timestamp is wanted) and kernels. Fields are computed with integer
//! arithmetic on microseconds and days, valid over the whole range of
//! either; Spark datetime patterns are translated once when a call is
//! bound. Functions whose answer depends on the session time zone have
//! zoned type rules: their kernels read local fields of the instant (its
//! microseconds plus the zone's offset then) and build instants of local
//! times with Spark's gap and overlap rules; a kernel bound in UTC skips the
//! zone entirely. It must not evaluate expressions.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Date32Array, Int64Array, TimestampMicrosecondArray};
use arrow::datatypes::{Date32Type, Int64Type, TimestampMicrosecondType};

use super::kernel::{arrow_err, date_to_i64, ts_to_i64, ts_to_str, ts_to_ts, Kernel};
use super::types::{coerce, Want};
use super::{def, zoned_def, ArgInfo, Category, FunctionDef, Resolved};
use crate::schema::{timestamp_type, DataType, Value};
use crate::time::{
    format_timestamp_with_in, parse_timestamp_with_in, spark_pattern_to_chrono, Zone,
};

const US_PER_SEC: i64 = 1_000_000;
const US_PER_DAY: i64 = 86_400 * US_PER_SEC;

/// Spark's default pattern of `unix_timestamp` and `from_unixtime`.
const DEFAULT_PATTERN: &str = "yyyy-MM-dd HH:mm:ss";

pub(super) const DEFS: &[FunctionDef] = &[
    def(
        "year",
        Category::Time,
        "year(date)",
        "the year.",
        (1, Some(1)),
        date_field,
    ),
    def(
        "month",
        Category::Time,
        "month(date)",
        "the month, 1 to 12.",
        (1, Some(1)),
        date_field,
    ),
    FunctionDef {
        aliases: &["day"],
        ..def(
            "dayofmonth",
            Category::Time,
            "dayofmonth(date)",
            "the day of the month, 1 to 31.",
            (1, Some(1)),
            date_field,
        )
    },
    def(
        "dayofweek",
        Category::Time,
        "dayofweek(date)",
        "the day of the week, 1 (Sunday) to 7 (Saturday).",
        (1, Some(1)),
        date_field,
    ),
    def(
        "dayofyear",
        Category::Time,
        "dayofyear(date)",
        "the day of the year, 1 to 366.",
        (1, Some(1)),
        date_field,
    ),
    def(
        "quarter",
        Category::Time,
        "quarter(date)",
        "the quarter of the year, 1 to 4.",
        (1, Some(1)),
        date_field,
    ),
    zoned_def(
        "hour",
        Category::Time,
        "hour(ts)",
        "the local hour, 0 to 23.",
        (1, Some(1)),
        time_field,
    ),
    zoned_def(
        "minute",
        Category::Time,
        "minute(ts)",
        "the local minute, 0 to 59.",
        (1, Some(1)),
        time_field,
    ),
    zoned_def(
        "second",
        Category::Time,
        "second(ts)",
        "the local second, 0 to 59.",
        (1, Some(1)),
        time_field,
    ),
    FunctionDef {
        literal_args: &[1],
        literal_what: "a string literal (a datetime pattern)",
        check_literal: pattern_literal,
        ..zoned_def(
            "to_date",
            Category::Time,
            "to_date(str[, pattern])",
            "the local date of a timestamp, or `str` as a date, read with the Spark datetime `pattern` when given; null when it does not parse.",
            (1, Some(2)),
            to_date_ts,
        )
    },
    FunctionDef {
        literal_args: &[1],
        literal_what: "a string literal (a datetime pattern)",
        check_literal: pattern_literal,
        ..zoned_def(
            "to_timestamp",
            Category::Time,
            "to_timestamp(str[, pattern])",
            "`str` as a timestamp, read with the Spark datetime `pattern` when given (local time unless it has an offset); null when it does not parse.",
            (1, Some(2)),
            to_date_ts,
        )
    },
    FunctionDef {
        literal_args: &[0],
        literal_what: "a string literal (a unit such as 'HOUR')",
        check_literal: unit_literal,
        ..zoned_def(
            "date_trunc",
            Category::Time,
            "date_trunc(unit, ts)",
            "`ts` truncated to the `unit` in local time: YEAR, QUARTER, MONTH, WEEK (to Monday), DAY, HOUR, MINUTE, SECOND, MILLISECOND, MICROSECOND.",
            (2, Some(2)),
            date_trunc,
        )
    },
    def(
        "date_add",
        Category::Time,
        "date_add(date, days)",
        "the date `days` days after `date`.",
        (2, Some(2)),
        date_add,
    ),
    def(
        "date_sub",
        Category::Time,
        "date_sub(date, days)",
        "the date `days` days before `date`.",
        (2, Some(2)),
        date_add,
    ),
    def(
        "datediff",
        Category::Time,
        "datediff(end, start)",
        "the number of days from `start` to `end`.",
        (2, Some(2)),
        datediff,
    ),
    FunctionDef {
        literal_args: &[1],
        literal_what: "a string literal (a datetime pattern)",
        check_literal: pattern_literal,
        ..zoned_def(
            "unix_timestamp",
            Category::Time,
            "unix_timestamp([ts[, pattern]])",
            "seconds since the epoch of a timestamp, a date (its local midnight), or a string read with `pattern` (default `yyyy-MM-dd HH:mm:ss`, local time unless it has an offset); with no argument, of the processing time.",
            (0, Some(2)),
            unix_timestamp,
        )
    },
    FunctionDef {
        literal_args: &[1],
        literal_what: "a string literal (a datetime pattern)",
        check_literal: pattern_literal,
        ..zoned_def(
            "from_unixtime",
            Category::Time,
            "from_unixtime(secs[, pattern])",
            "seconds since the epoch as local time in `pattern` (default `yyyy-MM-dd HH:mm:ss`).",
            (1, Some(2)),
            from_unixtime,
        )
    },
    FunctionDef {
        literal_args: &[1],
        literal_what: "a string literal (a datetime pattern)",
        check_literal: pattern_literal,
        ..zoned_def(
            "date_format",
            Category::Time,
            "date_format(ts, pattern)",
            "`ts` as local time in the Spark datetime `pattern` (`yyyy-MM-dd HH:mm`).",
            (2, Some(2)),
            date_format,
        )
    },
    FunctionDef {
        aliases: &["dateadd"],
        literal_args: &[0],
        literal_what: "a string literal (a unit such as 'HOUR')",
        check_literal: add_unit_literal,
        ..zoned_def(
            "timestampadd",
            Category::Time,
            "timestampadd(unit, n, ts)",
            "`ts` plus `n` units: MICROSECOND, MILLISECOND, SECOND, MINUTE, HOUR, DAY, WEEK, MONTH, QUARTER, YEAR (months keep the day, or the month's last day; days, weeks and months move the local date and keep the local time of day, so a day may be 23 or 25 hours); `ts + INTERVAL '…'` is this, with months, then microseconds.",
            (3, Some(3)),
            timestampadd,
        )
    },
    FunctionDef {
        aliases: &["now"],
        deterministic: false,
        ..def(
            "current_timestamp",
            Category::Time,
            "current_timestamp()",
            "the processing time: per event in continuous mode, once per batch in micro-batch mode.",
            (0, Some(0)),
            current_timestamp,
        )
    },
];

/// `(year, month, day)` of days since 1970-01-01 (proleptic Gregorian).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Days since 1970-01-01 of `(year, month, day)`.
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn date_field(name: &str, args: &[ArgInfo]) -> Result<Resolved, String> {
    let t = coerce(name, 0, &args[0].dt, Want::Date)?;
    let kernel = match name.to_ascii_lowercase().as_str() {
        "year" => date_to_i64(|d| Some(civil_from_days(d.into()).0)),
        "month" => date_to_i64(|d| Some(civil_from_days(d.into()).1.into())),
        "quarter" => date_to_i64(|d| Some(((civil_from_days(d.into()).1 - 1) / 3 + 1).into())),
        "dayofweek" => date_to_i64(|d| Some((i64::from(d) + 4).rem_euclid(7) + 1)),
        "dayofyear" => date_to_i64(|d| {
            let y = civil_from_days(d.into()).0;
            Some(i64::from(d) - days_from_civil(y, 1, 1) + 1)
        }),
        _ => date_to_i64(|d| Some(civil_from_days(d.into()).2.into())),
    };
    Ok(Resolved {
        arg_types: vec![t],
        ret: DataType::Int64,
        kernel,
    })
}

const HOUR: i64 = 3_600 * US_PER_SEC;
const MINUTE: i64 = 60 * US_PER_SEC;

fn time_field(name: &str, args: &[ArgInfo], zone: Zone) -> Result<Resolved, String> {
    let t = coerce(name, 0, &args[0].dt, Want::Timestamp)?;
    let field = name.to_ascii_lowercase();
    let kernel = match (zone.is_utc(), field.as_str()) {
        // UTC: constant divisors, a multiplication each rather than a division.
        (true, "hour") => utc_field::<HOUR, 24>(),
        (true, "minute") => utc_field::<MINUTE, 60>(),
        (true, _) => utc_field::<US_PER_SEC, 60>(),
        (false, f) => {
            let (unit, modulus) = match f {
                "hour" => (HOUR, 24),
                "minute" => (MINUTE, 60),
                _ => (US_PER_SEC, 60),
            };
            ts_to_i64(move |us| Some(zone.to_local(us)?.div_euclid(unit).rem_euclid(modulus)))
        }
    };
    Ok(Resolved {
        arg_types: vec![t],
        ret: DataType::Int64,
        kernel,
    })
}

/// `(us / UNIT) mod MODULUS`, rounding down: `hour`, `minute` or `second`
/// of a UTC timestamp. Computed as `(us mod (UNIT * MODULUS)) / UNIT`,
/// the same for every `us` (both round down), with one signed remainder
/// and one unsigned quotient instead of two signed steps.
fn utc_field<const UNIT: i64, const MODULUS: i64>() -> Kernel {
    ts_to_i64(|us| Some(utc_field_of::<UNIT, MODULUS>(us)))
}

#[inline(always)]
fn utc_field_of<const UNIT: i64, const MODULUS: i64>(us: i64) -> i64 {
    // `rem_euclid` is in `0..UNIT * MODULUS`: non-negative, so the
    // unsigned division is the same as the signed one, and cheaper.
    (us.rem_euclid(UNIT * MODULUS) as u64 / UNIT as u64) as i64
}

fn pattern_literal(_: usize, v: &Value) -> Result<(), String> {
    match v {
        Value::Utf8(p) => spark_pattern_to_chrono(p).map(|_| ()),
        Value::Null => Ok(()),
        _ => Err("a datetime pattern must be a string literal".into()),
    }
}

/// The chrono form of a literal pattern argument; `Ok(None)`: a null
/// pattern.
fn literal_pattern(name: &str, arg: Option<&ArgInfo>) -> Result<Option<Arc<str>>, String> {
    let text = match arg.map(|a| &a.literal) {
        None => DEFAULT_PATTERN.to_string(),
        Some(Some(Value::Utf8(p))) => p.to_string(),
        Some(Some(Value::Null)) => return Ok(None),
        Some(_) => return Err(format!("the pattern of {name} must be a string literal")),
    };
    spark_pattern_to_chrono(&text)
        .map(|p| Some(Arc::from(p)))
        .map_err(|e| format!("{e} in {name}"))
}

/// A kernel that passes its first argument through (the cast to the
/// wanted type did the work).
fn identity() -> Kernel {
    Kernel::new(
        |a: &[&Value]| a[0].clone(),
        |a: &[ArrayRef], _| Ok(a[0].clone()),
    )
}

fn to_date_ts(name: &str, args: &[ArgInfo], zone: Zone) -> Result<Resolved, String> {
    let date = name.eq_ignore_ascii_case("to_date");
    let (want, ret) = if date {
        (Want::Date, DataType::Date32)
    } else {
        (Want::Timestamp, timestamp_type())
    };
    if args.len() == 1 {
        let t = coerce(name, 0, &args[0].dt, want)?;
        return Ok(Resolved {
            arg_types: vec![t],
            ret,
            kernel: identity(),
        });
    }
    let types = vec![coerce(name, 0, &args[0].dt, Want::Str)?, DataType::Utf8];
    let Some(pattern) = literal_pattern(name, args.get(1))? else {
        return Ok(Resolved {
            arg_types: types,
            ret: ret.clone(),
            kernel: Kernel::rowwise(ret, |_| Value::Null),
        });
    };
    Ok(Resolved {
        arg_types: types,
        ret: ret.clone(),
        kernel: Kernel::rowwise(ret, move |a: &[&Value]| {
            let Value::Utf8(s) = &a[0] else {
                return Value::Null;
            };
            match parse_timestamp_with_in(s, &pattern, zone) {
                Some(us) if date => zone.to_local(us).map_or(Value::Null, |l| {
                    Value::Date(l.div_euclid(US_PER_DAY) as i32)
                }),
                Some(us) => Value::Timestamp(us),
                None => Value::Null,
            }
        }),
    })
}

/// A `date_trunc` unit.
#[derive(Clone, Copy, Debug)]
enum Unit {
    Year,
    Quarter,
    Month,
    Week,
    Fixed(i64),
}

fn parse_unit(text: &str) -> Option<Unit> {
    Some(match text.trim().to_ascii_uppercase().as_str() {
        "YEAR" | "YYYY" | "YY" => Unit::Year,
        "QUARTER" => Unit::Quarter,
        "MONTH" | "MM" | "MON" => Unit::Month,
        "WEEK" => Unit::Week,
        "DAY" | "DD" => Unit::Fixed(US_PER_DAY),
        "HOUR" => Unit::Fixed(3_600 * US_PER_SEC),
        "MINUTE" => Unit::Fixed(60 * US_PER_SEC),
        "SECOND" => Unit::Fixed(US_PER_SEC),
        "MILLISECOND" => Unit::Fixed(1_000),
        "MICROSECOND" => Unit::Fixed(1),
        _ => return None,
    })
}

fn unit_literal(_: usize, v: &Value) -> Result<(), String> {
    match v {
        Value::Utf8(u) if parse_unit(u).is_some() => Ok(()),
        Value::Null => Ok(()),
        _ => Err(format!(
            "`{v}` is not a unit of date_trunc; use YEAR, QUARTER, MONTH, WEEK, DAY, HOUR, \
             MINUTE, SECOND, MILLISECOND or MICROSECOND"
        )),
    }
}

fn truncate(us: i64, unit: Unit) -> Option<i64> {
    let days = us.div_euclid(US_PER_DAY);
    let start_days = match unit {
        Unit::Fixed(n) => return us.checked_sub(us.rem_euclid(n)),
        Unit::Week => days - (days + 3).rem_euclid(7),
        Unit::Year | Unit::Quarter | Unit::Month => {
            let (y, m, _) = civil_from_days(days);
            let m = match unit {
                Unit::Year => 1,
                Unit::Quarter => (m - 1) / 3 * 3 + 1,
                _ => m,
            };
            days_from_civil(y, m, 1)
        }
    };
    start_days.checked_mul(US_PER_DAY)
}

/// `us` truncated to `unit` on the local time line of `zone`: a local
/// minute, hour or day keeps its offset in an overlap (Spark truncates the
/// zoned date-time), a month, quarter, week or year starts at the first
/// local midnight; units of a second or less need no zone (offsets are whole
/// seconds).
fn truncate_in(us: i64, unit: Unit, zone: Zone) -> Option<i64> {
    match unit {
        Unit::Fixed(n) if n <= US_PER_SEC => truncate(us, unit),
        _ if zone.is_utc() => truncate(us, unit),
        Unit::Fixed(_) => in_local(us, zone, |l| truncate(l, unit)),
        _ => zone.from_local(truncate(zone.to_local(us)?, unit)?),
    }
}

/// `f` applied to the local time of `us` in `zone`, back to an instant
/// keeping the offset of `us` in an overlap (Spark's rule for a zoned
/// date-time moved or truncated on the local time line).
fn in_local(us: i64, zone: Zone, f: impl Fn(i64) -> Option<i64>) -> Option<i64> {
    if zone.is_utc() {
        return f(us);
    }
    let offset = zone.offset_secs(us);
    let local = f(us.checked_add(i64::from(offset) * US_PER_SEC)?)?;
    zone.from_local_keeping(local, Some(offset))
}

fn date_trunc(name: &str, args: &[ArgInfo], zone: Zone) -> Result<Resolved, String> {
    let t = coerce(name, 1, &args[1].dt, Want::Timestamp)?;
    let types = vec![DataType::Utf8, t];
    let unit = match &args[0].literal {
        Some(Value::Utf8(u)) => {
            parse_unit(u).ok_or_else(|| format!("`{u}` is not a unit of {name}"))?
        }
        Some(Value::Null) => {
            return Ok(Resolved {
                arg_types: types,
                ret: timestamp_type(),
                kernel: Kernel::rowwise(timestamp_type(), |_| Value::Null),
            })
        }
        _ => return Err(format!("the unit of {name} must be a string literal")),
    };
    let k = ts_to_ts(move |us| truncate_in(us, unit, zone));
    let r = k.clone();
    Ok(Resolved {
        arg_types: types,
        ret: timestamp_type(),
        kernel: Kernel::new(
            move |a: &[&Value]| r.row(&a[1..]),
            move |a: &[ArrayRef], len| k.column(&a[1..], len),
        ),
    })
}

fn date_add(name: &str, args: &[ArgInfo]) -> Result<Resolved, String> {
    let sign: i64 = if name.eq_ignore_ascii_case("date_sub") {
        -1
    } else {
        1
    };
    let types = vec![
        coerce(name, 0, &args[0].dt, Want::Date)?,
        coerce(name, 1, &args[1].dt, Want::Long)?,
    ];
    // Spark adds int days to an int date, wrapping.
    let add = move |d: i32, n: i64| (i64::from(d).wrapping_add(sign.wrapping_mul(n))) as i32;
    Ok(Resolved {
        arg_types: types,
        ret: DataType::Date32,
        kernel: Kernel::new(
            move |a: &[&Value]| match (&a[0], &a[1]) {
                (Value::Date(d), Value::Int64(n)) => Value::Date(add(*d, *n)),
                _ => Value::Null,
            },
            move |a: &[ArrayRef], _| {
                let out: Date32Array = arrow::compute::binary(
                    a[0].as_primitive::<Date32Type>(),
                    a[1].as_primitive::<Int64Type>(),
                    add,
                )
                .map_err(arrow_err)?;
                Ok(Arc::new(out) as ArrayRef)
            },
        ),
    })
}

fn datediff(name: &str, args: &[ArgInfo]) -> Result<Resolved, String> {
    let types = vec![
        coerce(name, 0, &args[0].dt, Want::Date)?,
        coerce(name, 1, &args[1].dt, Want::Date)?,
    ];
    let diff = |e: i32, s: i32| i64::from(e) - i64::from(s);
    Ok(Resolved {
        arg_types: types,
        ret: DataType::Int64,
        kernel: Kernel::new(
            move |a: &[&Value]| match (&a[0], &a[1]) {
                (Value::Date(e), Value::Date(s)) => Value::Int64(diff(*e, *s)),
                _ => Value::Null,
            },
            move |a: &[ArrayRef], _| {
                let out: Int64Array = arrow::compute::binary(
                    a[0].as_primitive::<Date32Type>(),
                    a[1].as_primitive::<Date32Type>(),
                    diff,
                )
                .map_err(arrow_err)?;
                Ok(Arc::new(out) as ArrayRef)
            },
        ),
    })
}

fn unix_timestamp(name: &str, args: &[ArgInfo], zone: Zone) -> Result<Resolved, String> {
    let secs = |us: i64| Some(us.div_euclid(US_PER_SEC));
    let Some(first) = args.first() else {
        return current(DataType::Int64, |us| {
            Value::Int64(us.div_euclid(US_PER_SEC))
        });
    };
    match (&first.dt, args.len()) {
        (DataType::Timestamp(..), 1) => Ok(Resolved {
            arg_types: vec![timestamp_type()],
            ret: DataType::Int64,
            kernel: ts_to_i64(secs),
        }),
        (DataType::Date32, 1) => Ok(Resolved {
            arg_types: vec![DataType::Date32],
            ret: DataType::Int64,
            kernel: date_to_i64(move |d| {
                let midnight = zone.from_local(i64::from(d).checked_mul(US_PER_DAY)?)?;
                Some(midnight.div_euclid(US_PER_SEC))
            }),
        }),
        (DataType::Utf8 | DataType::Null, _) => {
            let mut types = vec![DataType::Utf8];
            if args.len() > 1 {
                types.push(DataType::Utf8);
            }
            let Some(pattern) = literal_pattern(name, args.get(1))? else {
                return Ok(Resolved {
                    arg_types: types,
                    ret: DataType::Int64,
                    kernel: Kernel::rowwise(DataType::Int64, |_| Value::Null),
                });
            };
            Ok(Resolved {
                arg_types: types,
                ret: DataType::Int64,
                kernel: Kernel::rowwise(DataType::Int64, move |a: &[&Value]| match &a[0] {
                    Value::Utf8(s) => parse_timestamp_with_in(s, &pattern, zone)
                        .map_or(Value::Null, |us| Value::Int64(us.div_euclid(US_PER_SEC))),
                    _ => Value::Null,
                }),
            })
        }
        (other, _) => Err(format!(
            "{name} takes a string, a date or a timestamp (with a pattern only for a string), got {}",
            crate::schema::type_name(other)
        )),
    }
}

fn from_unixtime(name: &str, args: &[ArgInfo], zone: Zone) -> Result<Resolved, String> {
    let mut types = vec![coerce(name, 0, &args[0].dt, Want::Long)?];
    if args.len() > 1 {
        types.push(DataType::Utf8);
    }
    let Some(pattern) = literal_pattern(name, args.get(1))? else {
        return Ok(Resolved {
            arg_types: types,
            ret: DataType::Utf8,
            kernel: Kernel::rowwise(DataType::Utf8, |_| Value::Null),
        });
    };
    Ok(Resolved {
        arg_types: types,
        ret: DataType::Utf8,
        kernel: Kernel::rowwise(DataType::Utf8, move |a: &[&Value]| match &a[0] {
            Value::Int64(s) => s
                .checked_mul(US_PER_SEC)
                .and_then(|us| format_timestamp_with_in(us, &pattern, zone))
                .map_or(Value::Null, Value::from),
            _ => Value::Null,
        }),
    })
}

fn date_format(name: &str, args: &[ArgInfo], zone: Zone) -> Result<Resolved, String> {
    let t = coerce(name, 0, &args[0].dt, Want::Timestamp)?;
    let types = vec![t, DataType::Utf8];
    let Some(pattern) = literal_pattern(name, args.get(1))? else {
        return Ok(Resolved {
            arg_types: types,
            ret: DataType::Utf8,
            kernel: Kernel::rowwise(DataType::Utf8, |_| Value::Null),
        });
    };
    let k = ts_to_str(
        move |us, out| match format_timestamp_with_in(us, &pattern, zone) {
            Some(s) => {
                out.push_str(&s);
                true
            }
            None => false,
        },
    );
    let r = k.clone();
    Ok(Resolved {
        arg_types: types,
        ret: DataType::Utf8,
        kernel: Kernel::new(
            move |a: &[&Value]| r.row(&a[..1]),
            move |a: &[ArrayRef], len| k.column(&a[..1], len),
        ),
    })
}

/// A `timestampadd` unit: months, or a fixed number of microseconds.
fn parse_add_unit(text: &str) -> Option<Result<i64, i64>> {
    Some(match text.trim().to_ascii_uppercase().as_str() {
        "YEAR" => Ok(12),
        "QUARTER" => Ok(3),
        "MONTH" => Ok(1),
        "WEEK" => Err(7 * US_PER_DAY),
        "DAY" | "DAYOFYEAR" => Err(US_PER_DAY),
        "HOUR" => Err(3_600 * US_PER_SEC),
        "MINUTE" => Err(60 * US_PER_SEC),
        "SECOND" => Err(US_PER_SEC),
        "MILLISECOND" => Err(1_000),
        "MICROSECOND" => Err(1),
        _ => return None,
    })
}

fn add_unit_literal(_: usize, v: &Value) -> Result<(), String> {
    match v {
        Value::Utf8(u) if parse_add_unit(u).is_some() => Ok(()),
        Value::Null => Ok(()),
        _ => Err(format!(
            "`{v}` is not a unit of timestampadd; use MICROSECOND, MILLISECOND, SECOND, \
             MINUTE, HOUR, DAY, WEEK, MONTH, QUARTER or YEAR"
        )),
    }
}

/// `us` plus `months` months: the same day and time of day, or the last day
/// of a shorter month (Spark's `add_months`); `None` out of range.
pub(crate) fn add_months(us: i64, months: i64) -> Option<i64> {
    let days = us.div_euclid(US_PER_DAY);
    let time = us.rem_euclid(US_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let total = (y.checked_mul(12)? + i64::from(m) - 1).checked_add(months)?;
    let (ny, nm) = (total.div_euclid(12), (total.rem_euclid(12) + 1) as u32);
    // Far beyond any timestamp (about 292,000 years either way).
    if ny.unsigned_abs() > 1_000_000 {
        return None;
    }
    let last = (days_from_civil(
        if nm == 12 { ny + 1 } else { ny },
        if nm == 12 { 1 } else { nm + 1 },
        1,
    ) - days_from_civil(ny, nm, 1)) as u32;
    days_from_civil(ny, nm, d.min(last))
        .checked_mul(US_PER_DAY)?
        .checked_add(time)
}

fn timestampadd(name: &str, args: &[ArgInfo], zone: Zone) -> Result<Resolved, String> {
    let types = vec![
        DataType::Utf8,
        coerce(name, 1, &args[1].dt, Want::Long)?,
        coerce(name, 2, &args[2].dt, Want::Timestamp)?,
    ];
    let unit = match &args[0].literal {
        Some(Value::Utf8(u)) => {
            parse_add_unit(u).ok_or_else(|| format!("`{u}` is not a unit of {name}"))?
        }
        Some(Value::Null) => {
            return Ok(Resolved {
                arg_types: types,
                ret: timestamp_type(),
                kernel: Kernel::rowwise(timestamp_type(), |_| Value::Null),
            })
        }
        _ => return Err(format!("the unit of {name} must be a string literal")),
    };
    // Spark: months and days move the local date-time, smaller units the
    // instant.
    let add = move |n: i64, us: i64| match unit {
        Ok(months) => {
            let months = n.checked_mul(months)?;
            in_local(us, zone, |l| add_months(l, months))
        }
        Err(step) if step % US_PER_DAY == 0 => {
            let by = n.checked_mul(step)?;
            in_local(us, zone, |l| l.checked_add(by))
        }
        Err(step) => us.checked_add(n.checked_mul(step)?),
    };
    Ok(Resolved {
        arg_types: types,
        ret: timestamp_type(),
        kernel: Kernel::new(
            move |a: &[&Value]| match (&a[1], &a[2]) {
                (Value::Int64(n), Value::Timestamp(us)) => {
                    add(*n, *us).map_or(Value::Null, Value::Timestamp)
                }
                _ => Value::Null,
            },
            move |a: &[ArrayRef], _| {
                let n = a[1].as_primitive::<Int64Type>();
                let t = a[2].as_primitive::<TimestampMicrosecondType>();
                let out: TimestampMicrosecondArray =
                    n.iter().zip(t.iter()).map(|(n, us)| add(n?, us?)).collect();
                Ok(Arc::new(out.with_timezone("UTC")) as ArrayRef)
            },
        ),
    })
}

/// A function of the processing time: read per row in the row form, once
/// per batch in the column form.
fn current(ret: DataType, f: fn(i64) -> Value) -> Result<Resolved, String> {
    let dt = ret.clone();
    Ok(Resolved {
        arg_types: vec![],
        ret,
        kernel: Kernel::new(
            move |_: &[&Value]| f(crate::clock::wall_now_us()),
            move |_: &[ArrayRef], len| {
                let v = f(crate::clock::wall_now_us());
                crate::schema::arrow::build_array(&dt, len, |_| v.clone())
            },
        ),
    })
}

fn current_timestamp(_: &str, _: &[ArgInfo]) -> Result<Resolved, String> {
    current(timestamp_type(), Value::Timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_utc_field_in_one_remainder_is_the_field_in_two_steps() {
        let edges = [
            i64::MIN,
            i64::MIN + 1,
            -86_400_000_001,
            -3_600_000_001,
            -3_600_000_000,
            -1,
            0,
            1,
            3_599_999_999,
            3_600_000_000,
            86_399_999_999,
            86_400_000_000,
            i64::MAX - 1,
            i64::MAX,
        ];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let random = (0..10_000).map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as i64
        });
        for us in edges.into_iter().chain(random) {
            assert_eq!(
                utc_field_of::<HOUR, 24>(us),
                us.div_euclid(HOUR).rem_euclid(24),
                "hour of {us}"
            );
            assert_eq!(
                utc_field_of::<MINUTE, 60>(us),
                us.div_euclid(MINUTE).rem_euclid(60),
                "minute of {us}"
            );
            assert_eq!(
                utc_field_of::<US_PER_SEC, 60>(us),
                us.div_euclid(US_PER_SEC).rem_euclid(60),
                "second of {us}"
            );
        }
    }
}
