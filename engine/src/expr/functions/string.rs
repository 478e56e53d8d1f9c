//! Strings: `lower`, `upper`, `concat`, `concat_ws`, `substring`, `length`,
//! `trim`, `ltrim`, `rtrim`, `lpad`, `rpad`, `replace`, `regexp_replace`,
//! `regexp_extract`, `instr`, `initcap`, `reverse`, and the pattern
//! matches behind `LIKE`, `ILIKE` and `RLIKE`.
//!
//! Owns these functions' type rules (any argument is cast to text where
//! text is wanted, as in Spark), kernels, and the compilation of LIKE
//! patterns and regular expressions, which happens once when a call is
//! bound, never per row. Positions and lengths count characters, 1-based,
//! as in Spark. It must not evaluate expressions.

use std::sync::Arc;

use smallvec::SmallVec;

use arrow::array::{ArrayRef, AsArray, StringArray};
use arrow::compute::kernels::concat_elements::concat_elements_utf8;
use regex::Regex;

use super::kernel::{arrow_err, str_to_bool, str_to_i64, str_to_str, Arg, Direct, Kernel};
use super::types::{coerce, Want};
use super::{def, ArgInfo, Category, FunctionDef, Resolved};
use crate::schema::{DataType, Str, Value};

pub(super) const DEFS: &[FunctionDef] = &[
    def(
        "lower",
        Category::String,
        "lower(str)",
        "`str` in lower case.",
        (1, Some(1)),
        one_string,
    ),
    def(
        "upper",
        Category::String,
        "upper(str)",
        "`str` in upper case.",
        (1, Some(1)),
        one_string,
    ),
    def(
        "concat",
        Category::String,
        "concat(s1, s2, ...)",
        "the arguments joined (also `s1 || s2`); null when any is null.",
        (0, None),
        concat,
    ),
    def(
        "concat_ws",
        Category::String,
        "concat_ws(sep, s1, s2, ...)",
        "the non-null arguments (and non-null elements of `array<string>` arguments) joined with `sep`; null when `sep` is.",
        (1, None),
        concat_ws,
    ),
    FunctionDef {
        aliases: &["substr"],
        ..def(
            "substring",
            Category::String,
            "substring(str, pos[, len])",
            "`len` characters of `str` from position `pos` (1-based; negative counts from the end).",
            (2, Some(3)),
            substring,
        )
    },
    FunctionDef {
        aliases: &["char_length", "character_length"],
        ..def(
            "length",
            Category::String,
            "length(str)",
            "the number of characters.",
            (1, Some(1)),
            length,
        )
    },
    def(
        "trim",
        Category::String,
        "trim(str)",
        "`str` without leading and trailing spaces.",
        (1, Some(1)),
        one_string,
    ),
    def(
        "ltrim",
        Category::String,
        "ltrim(str)",
        "`str` without leading spaces.",
        (1, Some(1)),
        one_string,
    ),
    def(
        "rtrim",
        Category::String,
        "rtrim(str)",
        "`str` without trailing spaces.",
        (1, Some(1)),
        one_string,
    ),
    def(
        "lpad",
        Category::String,
        "lpad(str, len[, pad])",
        "`str` left-padded with `pad` (default a space) to `len` characters, or cut to `len`.",
        (2, Some(3)),
        pad,
    ),
    def(
        "rpad",
        Category::String,
        "rpad(str, len[, pad])",
        "`str` right-padded with `pad` (default a space) to `len` characters, or cut to `len`.",
        (2, Some(3)),
        pad,
    ),
    def(
        "replace",
        Category::String,
        "replace(str, search[, replace])",
        "`str` with every `search` replaced by `replace` (default empty).",
        (2, Some(3)),
        replace,
    ),
    FunctionDef {
        literal_args: &[1],
        literal_what: "a string literal (a regular expression)",
        check_literal: regex_literal,
        ..def(
            "regexp_replace",
            Category::String,
            "regexp_replace(str, regex, rep)",
            "`str` with every match of `regex` replaced by `rep` (`$1` for a group).",
            (3, Some(3)),
            regexp_replace,
        )
    },
    FunctionDef {
        literal_args: &[1],
        literal_what: "a string literal (a regular expression)",
        check_literal: regex_literal,
        ..def(
            "regexp_extract",
            Category::String,
            "regexp_extract(str, regex[, idx])",
            "group `idx` (default 1; 0 is the whole match) of the first match of `regex`, or '' when none.",
            (2, Some(3)),
            regexp_extract,
        )
    },
    def(
        "instr",
        Category::String,
        "instr(str, substr)",
        "the 1-based position of the first `substr` in `str`, 0 when absent.",
        (2, Some(2)),
        instr,
    ),
    def(
        "initcap",
        Category::String,
        "initcap(str)",
        "`str` in lower case with the first letter of each space-separated word in upper case.",
        (1, Some(1)),
        one_string,
    ),
    def(
        "reverse",
        Category::String,
        "reverse(str)",
        "the characters of `str` in reverse order.",
        (1, Some(1)),
        one_string,
    ),
    FunctionDef {
        literal_args: &[1, 2],
        literal_what: "a string literal",
        check_literal: like_literal,
        ..def(
            "like",
            Category::String,
            "like(str, pattern[, escape])",
            "`str LIKE pattern`: `_` is any character, `%` any sequence, `\\` escapes.",
            (2, Some(3)),
            like,
        )
    },
    FunctionDef {
        literal_args: &[1],
        literal_what: "a string literal",
        check_literal: like_literal,
        ..def(
            "ilike",
            Category::String,
            "ilike(str, pattern)",
            "`str ILIKE pattern`: LIKE ignoring case.",
            (2, Some(2)),
            like,
        )
    },
    FunctionDef {
        aliases: &["regexp_like", "regexp"],
        literal_args: &[1],
        literal_what: "a string literal (a regular expression)",
        check_literal: regex_literal,
        ..def(
            "rlike",
            Category::String,
            "rlike(str, regex)",
            "`str RLIKE regex`: whether `regex` matches somewhere in `str`.",
            (2, Some(2)),
            rlike,
        )
    },
];

fn string_args(name: &str, args: &[ArgInfo]) -> Result<Vec<DataType>, String> {
    args.iter()
        .enumerate()
        .map(|(i, a)| coerce(name, i, &a.dt, Want::Str))
        .collect()
}

fn one_string(name: &str, args: &[ArgInfo]) -> Result<Resolved, String> {
    let kernel = match name.to_ascii_lowercase().as_str() {
        "lower" => str_to_str(|s, out| {
            out.push_str(&s.to_lowercase());
            true
        }),
        "upper" => str_to_str(|s, out| {
            out.push_str(&s.to_uppercase());
            true
        }),
        // Spark trims the space character only.
        "trim" => str_to_str(|s, out| {
            out.push_str(s.trim_matches(' '));
            true
        }),
        "ltrim" => str_to_str(|s, out| {
            out.push_str(s.trim_start_matches(' '));
            true
        }),
        "rtrim" => str_to_str(|s, out| {
            out.push_str(s.trim_end_matches(' '));
            true
        }),
        "reverse" => str_to_str(|s, out| {
            out.extend(s.chars().rev());
            true
        }),
        _ => str_to_str(|s, out| {
            initcap(s, out);
            true
        }),
    };
    Ok(Resolved {
        arg_types: string_args(name, args)?,
        ret: DataType::Utf8,
        kernel,
    })
}

/// Lower case, then the first character of the string and every character
/// after a space in upper case (Spark's `initcap`).
fn initcap(s: &str, out: &mut String) {
    let mut after_space = true;
    for c in s.chars() {
        if after_space {
            out.extend(c.to_uppercase());
        } else {
            out.extend(c.to_lowercase());
        }
        after_space = c == ' ';
    }
}

fn concat(name: &str, args: &[ArgInfo]) -> Result<Resolved, String> {
    Ok(Resolved {
        arg_types: string_args(name, args)?,
        ret: DataType::Utf8,
        kernel: Kernel::new(
            |a: &[&Value]| concat_strs(a.iter().map(|v| v.as_str())),
            |a: &[ArrayRef], len| {
                let Some(first) = a.first() else {
                    return Ok(Arc::new(StringArray::from(vec![""; len])) as ArrayRef);
                };
                let mut acc: StringArray = first.as_string::<i32>().clone();
                for next in &a[1..] {
                    acc = concat_elements_utf8(&acc, next.as_string::<i32>()).map_err(arrow_err)?;
                }
                Ok(Arc::new(acc) as ArrayRef)
            },
        )
        .with_direct(|from: &[Arg]| {
            // Columns, text and computed pieces (text read once, here).
            let pieces: Option<Box<[Piece]>> = from
                .iter()
                .map(|a| match a {
                    Arg::Column(i) => Some(Piece::Column(*i)),
                    Arg::Literal(Value::Utf8(s)) => Some(Piece::Text(s.as_str().into())),
                    Arg::Computed(f) => Some(Piece::Computed(f.clone())),
                    _ => None,
                })
                .collect();
            let Some(pieces) = pieces else {
                // A null literal piece (every argument was cast to text
                // when the call was bound: text or null): null whatever
                // the row.
                return Some(Direct::new(|_: &[Value]| Value::Null));
            };
            // Two to four pieces, the common counts: a loop of a known
            // length, unrolled.
            let pieces = match Box::<[Piece; 2]>::try_from(pieces) {
                Ok(p) => return Some(fixed_pieces(*p)),
                Err(p) => p,
            };
            let pieces = match Box::<[Piece; 3]>::try_from(pieces) {
                Ok(p) => return Some(fixed_pieces(*p)),
                Err(p) => p,
            };
            let pieces = match Box::<[Piece; 4]>::try_from(pieces) {
                Ok(p) => return Some(fixed_pieces(*p)),
                Err(p) => p,
            };
            Some(Direct::new(move |row: &[Value]| {
                let held: SmallVec<[Value; 4]> = pieces.iter().map(|p| p.hold(row)).collect();
                concat_strs(pieces.iter().zip(&held).map(|(p, h)| p.get(row, h)))
            }))
        }),
    })
}

/// The direct form of a `concat` of `N` pieces. Computed pieces are
/// evaluated first, onto the stack, when there are any.
fn fixed_pieces<const N: usize>(pieces: [Piece; N]) -> Direct {
    if pieces.iter().any(|p| matches!(p, Piece::Computed(_))) {
        return Direct::new(move |row: &[Value]| {
            let held: [Value; N] = std::array::from_fn(|k| pieces[k].hold(row));
            concat_strs(pieces.iter().zip(&held).map(|(p, h)| p.get(row, h)))
        });
    }
    let pieces = pieces.map(|p| match p {
        Piece::Column(i) => Plain::Column(i),
        Piece::Text(t) => Plain::Text(Str::new(&*t)),
        Piece::Computed(_) => unreachable!("checked above: no computed piece"),
    });
    Direct::new(move |row: &[Value]| {
        // The short path: every piece held in place and the whole within
        // a value's inline capacity. Each piece is copied as the 24 bytes
        // of its value, whatever its length (three moves, no branch on the
        // length), and the next piece is written over what lies past it.
        let mut buf = [0u8; Str::INLINE_CAP + 24];
        let mut at = 0;
        for p in &pieces {
            let (bytes, len) = match p.held_in_place(row) {
                Ok(Some(b)) => b,
                Ok(None) => return Value::Null,
                Err(()) => return concat_strs(pieces.iter().map(|p| p.get(row))),
            };
            buf[at..at + 24].copy_from_slice(bytes);
            at += len;
            if at > Str::INLINE_CAP {
                return concat_long(pieces.iter().map(|p| p.get(row)));
            }
        }
        let mut text = [0u8; Str::INLINE_CAP];
        text.copy_from_slice(&buf[..Str::INLINE_CAP]);
        // SAFETY: `text[..at]` is whole `str`s one after the other (each
        // piece's first `len` bytes, the rest written over), and UTF-8
        // strings joined are UTF-8; `at <= INLINE_CAP`, checked above.
        Value::Utf8(unsafe { Str::inline(text, at) })
    })
}

/// A piece of a `concat` call that is not computed.
enum Plain {
    Column(usize),
    Text(Str),
}

impl Plain {
    /// The piece's text in `row`; `None` for null.
    #[inline(always)]
    fn get<'a>(&'a self, row: &'a [Value]) -> Option<&'a str> {
        match self {
            Plain::Column(i) => match &row[*i] {
                Value::Utf8(s) => Some(s.as_str()),
                _ => None,
            },
            Plain::Text(t) => Some(t),
        }
    }

    /// The piece in `row` as the bytes of a string held in place and its
    /// length ([`Str::in_place`]); `Ok(None)` for null, `Err` for a string
    /// that is not held in place.
    #[inline(always)]
    fn held_in_place<'a>(
        &'a self,
        row: &'a [Value],
    ) -> std::result::Result<Option<(&'a [u8; 24], usize)>, ()> {
        let s = match self {
            Plain::Column(i) => match &row[*i] {
                Value::Utf8(s) => s,
                _ => return Ok(None),
            },
            Plain::Text(t) => t,
        };
        s.in_place().map(Some).ok_or(())
    }
}

/// A piece of a `concat` call.
enum Piece {
    /// A column of the row.
    Column(usize),
    /// Text known when the call is bound.
    Text(Box<str>),
    /// An expression evaluated on the row (a cast, another call).
    Computed(Direct),
}

impl Piece {
    /// The value this piece holds for `row` while the result is built: a
    /// computed piece's value, null for the others.
    #[inline(always)]
    fn hold(&self, row: &[Value]) -> Value {
        match self {
            Piece::Computed(f) => f.call(row),
            _ => Value::Null,
        }
    }

    /// The piece's text in `row` (`held`: what [`Piece::hold`] gave);
    /// `None` for null.
    #[inline(always)]
    fn get<'a>(&'a self, row: &'a [Value], held: &'a Value) -> Option<&'a str> {
        let v = match self {
            Piece::Column(i) => &row[*i],
            Piece::Text(t) => return Some(t),
            Piece::Computed(_) => held,
        };
        match v {
            Value::Utf8(s) => Some(s.as_str()),
            _ => None,
        }
    }
}

/// `concat` of `pieces` (`None`: a null piece, which makes the result
/// null), built in a value's inline buffer while it fits (up to 23 bytes),
/// else in a scratch buffer and allocated once.
#[inline]
fn concat_strs<'a>(pieces: impl Iterator<Item = Option<&'a str>> + Clone) -> Value {
    let mut buf = [0u8; Str::INLINE_CAP];
    let mut at = 0;
    for p in pieces.clone() {
        let Some(s) = p else {
            return Value::Null;
        };
        let end = at + s.len();
        if end > Str::INLINE_CAP {
            return concat_long(pieces);
        }
        put_short(&mut buf[at..end], s.as_bytes());
        at = end;
    }
    // SAFETY: `buf[..at]` is whole `str`s one after the other, and UTF-8
    // strings joined are UTF-8; `at` is at most `INLINE_CAP`, checked above.
    Value::Utf8(unsafe { Str::inline(buf, at) })
}

/// Copies `src` into `dst` (the same length, at most a value's inline
/// capacity) with at most two loads and two stores of a fixed width,
/// overlapping in the middle: for the few bytes of a short piece this is
/// a handful of instructions, where a general copy is a call.
#[inline(always)]
fn put_short(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    debug_assert_eq!(dst.len(), n);
    if n >= 8 {
        if n > 16 {
            dst.copy_from_slice(src);
            return;
        }
        let (a, b) = (load::<8>(src, 0), load::<8>(src, n - 8));
        dst[..8].copy_from_slice(&a);
        dst[n - 8..].copy_from_slice(&b);
    } else if n >= 4 {
        let (a, b) = (load::<4>(src, 0), load::<4>(src, n - 4));
        dst[..4].copy_from_slice(&a);
        dst[n - 4..].copy_from_slice(&b);
    } else if n > 0 {
        // 1 to 3 bytes: the first, the middle and the last (some the same).
        dst[0] = src[0];
        dst[n / 2] = src[n / 2];
        dst[n - 1] = src[n - 1];
    }
}

/// `W` bytes of `src` from `at`, as a fixed-size array (one load).
#[inline(always)]
fn load<const W: usize>(src: &[u8], at: usize) -> [u8; W] {
    let mut out = [0u8; W];
    out.copy_from_slice(&src[at..at + W]);
    out
}

/// [`concat_strs`] of pieces longer together than a value holds.
#[inline(never)]
fn concat_long<'a>(pieces: impl Iterator<Item = Option<&'a str>> + Clone) -> Value {
    if pieces.clone().any(|p| p.is_none()) {
        return Value::Null;
    }
    built_str(|out| pieces.flatten().for_each(|s| out.push_str(s)))
}

fn concat_ws(name: &str, args: &[ArgInfo]) -> Result<Resolved, String> {
    // An array of strings contributes its non-null elements (Spark's rule).
    let mut arg_types = Vec::with_capacity(args.len());
    for (i, a) in args.iter().enumerate() {
        arg_types.push(match &a.dt {
            DataType::List(f) if i > 0 && *f.data_type() == DataType::Utf8 => a.dt.clone(),
            dt => coerce(name, i, dt, Want::Str)?,
        });
    }
    Ok(Resolved {
        arg_types,
        ret: DataType::Utf8,
        kernel: Kernel::rowwise(DataType::Utf8, |a: &[&Value]| {
            let Value::Utf8(sep) = &a[0] else {
                return Value::Null;
            };
            let mut out = String::new();
            let mut first = true;
            let pieces = a[1..].iter().flat_map(|v| match v {
                Value::List(items) => items.iter().filter_map(Value::as_str).collect(),
                other => other.as_str().into_iter().collect::<Vec<_>>(),
            });
            for s in pieces {
                if !first {
                    out.push_str(sep);
                }
                out.push_str(s);
                first = false;
            }
            Value::from(out)
        }),
    })
}

/// A bigint argument as Spark's int (clamped to its range).
fn int_arg(v: &Value) -> Option<i64> {
    v.as_i64()
        .map(|v| v.clamp(i32::MIN as i64, i32::MAX as i64))
}

/// Spark's `substring(str, pos, len)` on characters.
fn substring_chars(s: &str, pos: i64, len: i64) -> &str {
    let n = s.chars().count() as i64;
    let start = if pos > 0 {
        pos - 1
    } else if pos < 0 {
        n + pos
    } else {
        0
    };
    let end = start.saturating_add(len).min(n);
    let start = start.max(0);
    if start >= end {
        return "";
    }
    let byte = |c: i64| s.char_indices().nth(c as usize).map_or(s.len(), |(b, _)| b);
    &s[byte(start)..byte(end)]
}

fn substring(name: &str, args: &[ArgInfo]) -> Result<Resolved, String> {
    let mut types = vec![coerce(name, 0, &args[0].dt, Want::Str)?];
    for (i, a) in args.iter().enumerate().skip(1) {
        types.push(coerce(name, i, &a.dt, Want::Long)?);
    }
    Ok(Resolved {
        arg_types: types,
        ret: DataType::Utf8,
        kernel: Kernel::rowwise(DataType::Utf8, |a: &[&Value]| {
            let (Value::Utf8(s), Some(pos)) = (&a[0], int_arg(a[1])) else {
                return Value::Null;
            };
            let len = match a.get(2) {
                None => i32::MAX as i64,
                Some(v) => match int_arg(v) {
                    Some(l) => l,
                    None => return Value::Null,
                },
            };
            Value::str(substring_chars(s, pos, len))
        }),
    })
}

fn length(name: &str, args: &[ArgInfo]) -> Result<Resolved, String> {
    Ok(Resolved {
        arg_types: string_args(name, args)?,
        ret: DataType::Int64,
        kernel: str_to_i64(|s| Some(s.chars().count() as i64)),
    })
}

/// Spark's `lpad`/`rpad` on characters.
fn pad_chars(s: &str, len: i64, pad: &str, left: bool) -> String {
    let n = s.chars().count() as i64;
    if len <= 0 {
        return String::new();
    }
    if len <= n || pad.is_empty() {
        return s.chars().take(len as usize).collect();
    }
    let fill: String = pad.chars().cycle().take((len - n) as usize).collect();
    if left {
        fill + s
    } else {
        s.to_string() + &fill
    }
}

fn pad(name: &str, args: &[ArgInfo]) -> Result<Resolved, String> {
    let left = name.eq_ignore_ascii_case("lpad");
    let mut types = vec![
        coerce(name, 0, &args[0].dt, Want::Str)?,
        coerce(name, 1, &args[1].dt, Want::Long)?,
    ];
    if let Some(p) = args.get(2) {
        types.push(coerce(name, 2, &p.dt, Want::Str)?);
    }
    Ok(Resolved {
        arg_types: types,
        ret: DataType::Utf8,
        kernel: Kernel::rowwise(DataType::Utf8, move |a: &[&Value]| {
            let pad = match a.get(2) {
                None => " ",
                Some(Value::Utf8(p)) => p,
                Some(_) => return Value::Null,
            };
            match (&a[0], int_arg(a[1])) {
                (Value::Utf8(s), Some(len)) => Value::from(pad_chars(s, len, pad, left)),
                _ => Value::Null,
            }
        }),
    })
}

fn replace(name: &str, args: &[ArgInfo]) -> Result<Resolved, String> {
    Ok(Resolved {
        arg_types: string_args(name, args)?,
        ret: DataType::Utf8,
        kernel: Kernel::rowwise(DataType::Utf8, |a: &[&Value]| {
            let with = match a.get(2) {
                None => "",
                Some(Value::Utf8(w)) => w,
                Some(_) => return Value::Null,
            };
            match (&a[0], &a[1]) {
                (Value::Utf8(s), Value::Utf8(search)) if search.is_empty() => {
                    Value::Utf8(s.clone())
                }
                (Value::Utf8(s), Value::Utf8(search)) => Value::from(s.replace(&**search, with)),
                _ => Value::Null,
            }
        }),
    })
}

fn instr(name: &str, args: &[ArgInfo]) -> Result<Resolved, String> {
    Ok(Resolved {
        arg_types: string_args(name, args)?,
        ret: DataType::Int64,
        kernel: Kernel::rowwise(DataType::Int64, |a: &[&Value]| match (&a[0], &a[1]) {
            (Value::Utf8(s), Value::Utf8(sub)) => Value::Int64(
                s.find(&**sub)
                    .map_or(0, |b| s[..b].chars().count() as i64 + 1),
            ),
            _ => Value::Null,
        }),
    })
}

/// The compiled regex of a literal argument (a null literal: `None`).
fn literal_regex(name: &str, arg: &ArgInfo) -> Result<Option<Regex>, String> {
    match &arg.literal {
        Some(Value::Utf8(p)) => Regex::new(p)
            .map(Some)
            .map_err(|e| format!("invalid regular expression in {name}: {e}")),
        Some(Value::Null) => Ok(None),
        _ => Err(format!(
            "the second argument of {name} must be a string literal (a regular expression)"
        )),
    }
}

/// Checks a literal regular expression argument when the query is planned.
pub(super) fn regex_literal(_: usize, v: &Value) -> Result<(), String> {
    match v {
        Value::Utf8(p) => Regex::new(p)
            .map(|_| ())
            .map_err(|e| format!("invalid regular expression: {e}")),
        Value::Null => Ok(()),
        _ => Err("a regular expression must be a string literal".into()),
    }
}

/// A kernel that is always null (a null pattern).
fn null_kernel(ret: DataType) -> Kernel {
    Kernel::rowwise(ret, |_| Value::Null)
}

/// Java's replacement syntax (`$1`, `${name}`, `\$`) in the regex crate's
/// (`${1}`, `${name}`, `$$`).
fn java_replacement(rep: &str, groups: usize) -> String {
    let mut out = String::with_capacity(rep.len() + 4);
    let chars: Vec<char> = rep.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' if i + 1 < chars.len() => {
                if chars[i + 1] == '$' {
                    out.push_str("$$");
                } else {
                    out.push(chars[i + 1]);
                }
                i += 2;
            }
            '$' if i + 1 < chars.len() && chars[i + 1].is_ascii_digit() => {
                // The first digit always counts; later ones while the
                // group number stays valid.
                let mut n = chars[i + 1].to_digit(10).unwrap_or(0) as usize;
                let mut j = i + 2;
                while j < chars.len() && chars[j].is_ascii_digit() {
                    let m = n * 10 + chars[j].to_digit(10).unwrap_or(0) as usize;
                    if m > groups {
                        break;
                    }
                    n = m;
                    j += 1;
                }
                out.push_str(&format!("${{{n}}}"));
                i = j;
            }
            '$' if i + 1 < chars.len() && chars[i + 1] == '{' => {
                out.push('$');
                i += 1;
            }
            '$' => {
                out.push_str("$$");
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

fn regexp_replace(name: &str, args: &[ArgInfo]) -> Result<Resolved, String> {
    let types = string_args(name, args)?;
    let Some(re) = literal_regex(name, &args[1])? else {
        return Ok(Resolved {
            arg_types: types,
            ret: DataType::Utf8,
            kernel: null_kernel(DataType::Utf8),
        });
    };
    let groups = re.captures_len() - 1;
    Ok(Resolved {
        arg_types: types,
        ret: DataType::Utf8,
        kernel: Kernel::rowwise(DataType::Utf8, move |a: &[&Value]| match (&a[0], &a[2]) {
            (Value::Utf8(s), Value::Utf8(rep)) => {
                let rep = java_replacement(rep, groups);
                Value::from(re.replace_all(s, rep.as_str()).into_owned())
            }
            _ => Value::Null,
        }),
    })
}

fn regexp_extract(name: &str, args: &[ArgInfo]) -> Result<Resolved, String> {
    let mut types = vec![
        coerce(name, 0, &args[0].dt, Want::Str)?,
        coerce(name, 1, &args[1].dt, Want::Str)?,
    ];
    if let Some(idx) = args.get(2) {
        types.push(coerce(name, 2, &idx.dt, Want::Long)?);
    }
    let Some(re) = literal_regex(name, &args[1])? else {
        return Ok(Resolved {
            arg_types: types,
            ret: DataType::Utf8,
            kernel: null_kernel(DataType::Utf8),
        });
    };
    if let Some(Some(Value::Int64(i))) = args.get(2).map(|a| &a.literal) {
        if *i < 0 || *i as usize >= re.captures_len() {
            return Err(format!(
                "{name}: the regular expression has {} group(s), but group {i} was asked for",
                re.captures_len() - 1
            ));
        }
    }
    Ok(Resolved {
        arg_types: types,
        ret: DataType::Utf8,
        kernel: Kernel::rowwise(DataType::Utf8, move |a: &[&Value]| {
            let idx = match a.get(2) {
                None => 1,
                Some(Value::Int64(i)) if *i >= 0 && (*i as usize) < re.captures_len() => {
                    *i as usize
                }
                Some(_) => return Value::Null,
            };
            let Value::Utf8(s) = &a[0] else {
                return Value::Null;
            };
            match re.captures(s) {
                Some(c) => Value::str(c.get(idx).map_or("", |m| m.as_str())),
                None => Value::str(""),
            }
        }),
    })
}

/// A compiled LIKE pattern: the common shapes without a regex.
#[derive(Debug)]
pub(crate) enum LikeMatcher {
    /// No wildcard: equality.
    Exact(String),
    /// `abc%`.
    Prefix(String),
    /// `%abc`.
    Suffix(String),
    /// `%abc%`.
    Contains(String),
    /// Anything else, anchored.
    Regex(Regex),
}

impl LikeMatcher {
    /// Compiles a LIKE pattern with escape character `escape`;
    /// `ignore_case` for ILIKE.
    pub(crate) fn new(
        pattern: &str,
        escape: char,
        ignore_case: bool,
    ) -> Result<LikeMatcher, String> {
        // Literal runs and wildcards.
        enum Tok {
            Lit(char),
            One,
            Any,
        }
        let mut toks = Vec::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            if c == escape {
                match chars.next() {
                    Some(n) => toks.push(Tok::Lit(n)),
                    None => {
                        return Err(format!(
                            "the LIKE pattern '{pattern}' ends with the escape character"
                        ))
                    }
                }
            } else if c == '%' {
                toks.push(Tok::Any);
            } else if c == '_' {
                toks.push(Tok::One);
            } else {
                toks.push(Tok::Lit(c));
            }
        }
        let inner = |t: &[Tok]| -> Option<String> {
            t.iter()
                .map(|t| match t {
                    Tok::Lit(c) => Some(*c),
                    _ => None,
                })
                .collect()
        };
        if !ignore_case {
            let n = toks.len();
            let starts_any = matches!(toks.first(), Some(Tok::Any));
            let ends_any = n > 1 && matches!(toks.last(), Some(Tok::Any));
            let from = usize::from(starts_any);
            let to = n - usize::from(ends_any);
            if from <= to {
                if let Some(lit) = inner(&toks[from..to]) {
                    return Ok(match (starts_any, ends_any) {
                        (false, false) => LikeMatcher::Exact(lit),
                        (false, true) => LikeMatcher::Prefix(lit),
                        (true, false) => LikeMatcher::Suffix(lit),
                        (true, true) => LikeMatcher::Contains(lit),
                    });
                }
            }
        }
        let mut re = String::from(if ignore_case { "(?is)^" } else { "(?s)^" });
        for t in &toks {
            match t {
                Tok::Lit(c) => re.push_str(&regex::escape(&c.to_string())),
                Tok::One => re.push('.'),
                Tok::Any => re.push_str(".*"),
            }
        }
        re.push('$');
        Regex::new(&re)
            .map(LikeMatcher::Regex)
            .map_err(|e| e.to_string())
    }

    /// The `str -> bool` kernel testing a string against this pattern:
    /// one kernel per shape, so that the test is inlined into it.
    fn into_kernel(self) -> Kernel {
        match self {
            LikeMatcher::Exact(p) => matcher_kernel(move |s| s == p),
            // One character (`'a%'`): one byte compared, no call.
            LikeMatcher::Prefix(p) if p.len() == 1 => {
                let b = p.as_bytes()[0];
                matcher_kernel(move |s| s.as_bytes().first() == Some(&b))
            }
            LikeMatcher::Prefix(p) => matcher_kernel(move |s| s.starts_with(p.as_str())),
            LikeMatcher::Suffix(p) => matcher_kernel(move |s| s.ends_with(p.as_str())),
            LikeMatcher::Contains(p) => matcher_kernel(move |s| s.contains(p.as_str())),
            LikeMatcher::Regex(r) => matcher_kernel(move |s| r.is_match(s)),
        }
    }
}

fn like_literal(i: usize, v: &Value) -> Result<(), String> {
    match (i, v) {
        (_, Value::Null) => Ok(()),
        (1, Value::Utf8(p)) => LikeMatcher::new(p, '\\', false).map(|_| ()),
        (2, Value::Utf8(e)) if e.chars().count() == 1 => Ok(()),
        (2, _) => Err("the escape of LIKE must be one character".into()),
        _ => Err("a LIKE pattern must be a string literal".into()),
    }
}

fn like(name: &str, args: &[ArgInfo]) -> Result<Resolved, String> {
    let types = string_args(name, args)?;
    let ignore_case = name.eq_ignore_ascii_case("ilike");
    let escape = match args.get(2).map(|a| &a.literal) {
        None => '\\',
        Some(Some(Value::Utf8(e))) if e.chars().count() == 1 => e.chars().next().unwrap_or('\\'),
        Some(Some(Value::Null)) => {
            return Ok(Resolved {
                arg_types: types,
                ret: DataType::Boolean,
                kernel: null_kernel(DataType::Boolean),
            })
        }
        Some(_) => return Err(format!("the escape of {name} must be one character")),
    };
    let pattern = match &args[1].literal {
        Some(Value::Utf8(p)) => p.clone(),
        Some(Value::Null) => {
            return Ok(Resolved {
                arg_types: types,
                ret: DataType::Boolean,
                kernel: null_kernel(DataType::Boolean),
            })
        }
        _ => return Err(format!("the pattern of {name} must be a string literal")),
    };
    let kernel = LikeMatcher::new(&pattern, escape, ignore_case)?.into_kernel();
    Ok(Resolved {
        arg_types: types,
        ret: DataType::Boolean,
        kernel,
    })
}

/// A `str -> bool` kernel called with its literal pattern arguments too:
/// both of `str_to_bool`'s forms read the first argument only, so the
/// others (read at bind time) are simply not looked at.
fn matcher_kernel(f: impl Fn(&str) -> bool + Send + Sync + 'static) -> Kernel {
    str_to_bool(f)
}

fn rlike(name: &str, args: &[ArgInfo]) -> Result<Resolved, String> {
    let types = string_args(name, args)?;
    let Some(re) = literal_regex(name, &args[1])? else {
        return Ok(Resolved {
            arg_types: types,
            ret: DataType::Boolean,
            kernel: null_kernel(DataType::Boolean),
        });
    };
    Ok(Resolved {
        arg_types: types,
        ret: DataType::Boolean,
        kernel: matcher_kernel(move |s| re.is_match(s)),
    })
}

/// A string value built through a per-thread scratch buffer: the value's
/// own allocation is the only one (no growth of a fresh `String`, no copy
/// out of it into a second allocation).
pub(crate) fn built_str(build: impl FnOnce(&mut String)) -> Value {
    thread_local! {
        static SCRATCH: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    }
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut out) => {
            out.clear();
            build(&mut out);
            Value::Utf8(crate::schema::Str::new(out.as_str()))
        }
        // Re-entered (a kernel building a string inside another's build):
        // a buffer of its own.
        Err(_) => {
            let mut out = String::new();
            build(&mut out);
            Value::from(out)
        }
    })
}
