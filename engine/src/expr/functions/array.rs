//! Arrays: `split`, `array`, `size`, `array_contains`, `element_at`.
//!
//! Owns these functions' type rules (an `array<T>` is an Arrow `List` whose
//! elements are nullable) and kernels. `split` has a column kernel that
//! writes the words of a whole string column straight into one list column;
//! the others apply their row kernel slot by slot. The generators
//! (`explode`, `posexplode`) are not functions of one row to one value and
//! live with the plan, not here. It must not evaluate expressions:
//! arguments arrive evaluated.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, ListBuilder, StringBuilder};
use arrow_schema::Field;
use regex::Regex;

use super::kernel::Kernel;
use super::string::regex_literal;
use super::types::{coerce, common, Want};
use super::{def, ArgInfo, Category, FunctionDef, Resolved};
use crate::schema::{element_type, list_type, type_name, DataType, Value};

pub(super) const DEFS: &[FunctionDef] = &[
    FunctionDef {
        literal_args: &[1],
        literal_what: "a string literal (a regular expression)",
        check_literal: regex_literal,
        ..def(
            "split",
            Category::Array,
            "split(str, regex[, limit])",
            "the pieces of `str` around matches of `regex`, as `array<string>`; with `limit` > 0 at most `limit` pieces (the last holds the rest); an empty `regex` splits into characters.",
            (2, Some(3)),
            split,
        )
    },
    def(
        "array",
        Category::Array,
        "array(e1, e2, ...)",
        "an array of the arguments, in their common type (null arguments stay null elements).",
        (0, None),
        array,
    ),
    def(
        "size",
        Category::Array,
        "size(arr)",
        "the number of elements of `arr`; -1 when `arr` is null (Spark's default).",
        (1, Some(1)),
        size,
    ),
    def(
        "array_contains",
        Category::Array,
        "array_contains(arr, value)",
        "whether `arr` holds `value`; null when either is null, or when it is absent and `arr` holds a null.",
        (2, Some(2)),
        array_contains,
    ),
    def(
        "element_at",
        Category::Array,
        "element_at(arr, index)",
        "the element at the 1-based `index` (negative counts from the end); null when out of range or 0.",
        (2, Some(2)),
        element_at,
    ),
];

/// The names of the generators, which the plan handles (one input row
/// becomes several), for error messages and name suggestions.
pub(crate) const GENERATORS: &[&str] =
    &["explode", "explode_outer", "posexplode", "posexplode_outer"];

/// The element type of argument `i` of `name`, which must be an array.
fn array_arg<'a>(name: &str, i: usize, dt: &'a DataType) -> Result<&'a DataType, String> {
    match dt {
        DataType::Null => Ok(&DataType::Null),
        _ => element_type(dt).ok_or_else(|| {
            format!(
                "the {} argument of {name} must be an array, got {}",
                super::ordinal(i),
                type_name(dt)
            )
        }),
    }
}

/// How `split` cuts a string: Spark's rules (Java's `String.split` with a
/// negative limit keeps trailing empty pieces; a match of zero width at
/// the start adds no empty first piece).
#[derive(Debug)]
enum Splitter {
    /// An empty pattern: one piece per character.
    Chars,
    /// A pattern.
    Regex(Regex),
}

impl Splitter {
    /// Calls `piece` with each piece of `s`; `limit` > 0 caps the count.
    fn split<'s>(&self, s: &'s str, limit: i64, mut piece: impl FnMut(&'s str)) {
        let cap = if limit > 0 {
            limit as usize
        } else {
            usize::MAX
        };
        match self {
            Splitter::Chars => {
                if s.is_empty() {
                    piece(s);
                    return;
                }
                let mut n = 0;
                for (i, c) in s.char_indices() {
                    n += 1;
                    if n == cap {
                        piece(&s[i..]);
                        return;
                    }
                    piece(&s[i..i + c.len_utf8()]);
                }
            }
            Splitter::Regex(re) => {
                let mut start = 0;
                let mut n = 0;
                for m in re.find_iter(s) {
                    if n + 1 == cap {
                        break;
                    }
                    if m.end() == 0 {
                        // Zero width at the start: no empty first piece.
                        continue;
                    }
                    piece(&s[start..m.start()]);
                    n += 1;
                    start = m.end();
                }
                piece(&s[start..]);
            }
        }
    }
}

fn split(name: &str, args: &[ArgInfo]) -> Result<Resolved, String> {
    let mut arg_types = vec![
        coerce(name, 0, &args[0].dt, Want::Str)?,
        coerce(name, 1, &args[1].dt, Want::Str)?,
    ];
    if let Some(limit) = args.get(2) {
        arg_types.push(coerce(name, 2, &limit.dt, Want::Long)?);
    }
    let ret = list_type(DataType::Utf8);
    let splitter = match &args[1].literal {
        Some(Value::Utf8(p)) if p.is_empty() => Splitter::Chars,
        Some(Value::Utf8(p)) => {
            Splitter::Regex(Regex::new(p).map_err(|e| format!("invalid regular expression: {e}"))?)
        }
        Some(Value::Null) => {
            return Ok(Resolved {
                arg_types,
                ret: ret.clone(),
                kernel: Kernel::rowwise(ret, |_| Value::Null),
            })
        }
        _ => {
            return Err(format!(
                "the second argument of {name} must be a string literal (a regular expression)"
            ))
        }
    };
    let splitter = Arc::new(splitter);
    let column_splitter = splitter.clone();
    Ok(Resolved {
        arg_types,
        ret,
        kernel: Kernel::new(
            move |a: &[&Value]| {
                let (Value::Utf8(s), limit) = (&a[0], a.get(2)) else {
                    return Value::Null;
                };
                let limit = match limit {
                    None => -1,
                    Some(Value::Int64(l)) => *l,
                    Some(_) => return Value::Null,
                };
                let mut out = Vec::new();
                splitter.split(s, limit, |p| out.push(Value::str(p)));
                Value::List(out.into())
            },
            move |a: &[ArrayRef], len: usize| {
                let strings = a[0].as_string::<i32>();
                let limits = a
                    .get(2)
                    .map(|l| l.as_primitive::<arrow::datatypes::Int64Type>());
                let mut b = ListBuilder::new(StringBuilder::with_capacity(len, len * 16))
                    .with_field(Arc::new(Field::new("element", DataType::Utf8, true)));
                for i in 0..len {
                    let limit = match limits {
                        None => -1,
                        Some(l) if l.is_valid(i) => l.value(i),
                        Some(_) => {
                            b.append_null();
                            continue;
                        }
                    };
                    if strings.is_null(i) {
                        b.append_null();
                        continue;
                    }
                    let values = b.values();
                    column_splitter.split(strings.value(i), limit, |p| values.append_value(p));
                    b.append(true);
                }
                Ok(Arc::new(b.finish()) as ArrayRef)
            },
        ),
    })
}

fn array(name: &str, args: &[ArgInfo]) -> Result<Resolved, String> {
    let types: Vec<DataType> = args.iter().map(|a| a.dt.clone()).collect();
    let element = common(name, &types, true)?;
    let ret = list_type(element.clone());
    Ok(Resolved {
        arg_types: vec![element; args.len()],
        ret: ret.clone(),
        kernel: Kernel::rowwise(ret, |a: &[&Value]| {
            Value::List(a.iter().map(|v| (*v).clone()).collect())
        }),
    })
}

fn size(name: &str, args: &[ArgInfo]) -> Result<Resolved, String> {
    array_arg(name, 0, &args[0].dt)?;
    Ok(Resolved {
        arg_types: vec![args[0].dt.clone()],
        ret: DataType::Int64,
        kernel: Kernel::new(
            |a: &[&Value]| match &a[0] {
                Value::List(items) => Value::Int64(items.len() as i64),
                _ => Value::Int64(-1),
            },
            |a: &[ArrayRef], len: usize| {
                if a[0].data_type() == &DataType::Null {
                    return Ok(Arc::new(arrow::array::Int64Array::from_value(-1, len)) as ArrayRef);
                }
                let lists = a[0].as_list::<i32>();
                let offsets = lists.value_offsets();
                let sizes: arrow::array::Int64Array = (0..len)
                    .map(|i| {
                        Some(if lists.is_null(i) {
                            -1
                        } else {
                            i64::from(offsets[i + 1] - offsets[i])
                        })
                    })
                    .collect();
                Ok(Arc::new(sizes) as ArrayRef)
            },
        ),
    })
}

fn array_contains(name: &str, args: &[ArgInfo]) -> Result<Resolved, String> {
    let element = array_arg(name, 0, &args[0].dt)?;
    let wanted = common(name, &[element.clone(), args[1].dt.clone()], false).map_err(|_| {
        format!(
            "{name}: the value to find ({}) does not compare with the array's elements ({})",
            type_name(&args[1].dt),
            type_name(element)
        )
    })?;
    Ok(Resolved {
        arg_types: vec![list_type(wanted.clone()), wanted],
        ret: DataType::Boolean,
        kernel: Kernel::rowwise(DataType::Boolean, |a: &[&Value]| {
            let (Value::List(items), v) = (&a[0], &a[1]) else {
                return Value::Null;
            };
            if v.is_null() {
                return Value::Null;
            }
            let mut saw_null = false;
            for item in items.iter() {
                if item.is_null() {
                    saw_null = true;
                } else if item.sql_cmp(v) == Some(std::cmp::Ordering::Equal) {
                    return Value::Boolean(true);
                }
            }
            if saw_null {
                Value::Null
            } else {
                Value::Boolean(false)
            }
        }),
    })
}

fn element_at(name: &str, args: &[ArgInfo]) -> Result<Resolved, String> {
    let element = array_arg(name, 0, &args[0].dt)?.clone();
    let index = coerce(name, 1, &args[1].dt, Want::Long)?;
    if let Some(Value::Int64(0)) = args[1].literal {
        return Err(format!("{name}: array indices start at 1, not 0"));
    }
    Ok(Resolved {
        arg_types: vec![args[0].dt.clone(), index],
        ret: element.clone(),
        kernel: Kernel::rowwise(element, |a: &[&Value]| {
            let (Value::List(items), Value::Int64(i)) = (&a[0], &a[1]) else {
                return Value::Null;
            };
            let n = items.len() as i64;
            let at = match *i {
                i if i > 0 && i <= n => i - 1,
                i if i < 0 && i >= -n => n + i,
                _ => return Value::Null,
            };
            items[at as usize].clone()
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(pattern: &str, s: &str, limit: i64) -> Vec<String> {
        let sp = if pattern.is_empty() {
            Splitter::Chars
        } else {
            Splitter::Regex(Regex::new(pattern).unwrap())
        };
        let mut out = Vec::new();
        sp.split(s, limit, |p| out.push(p.to_string()));
        out
    }

    #[test]
    fn split_follows_spark() {
        // Hand-checked against Spark 3's split.
        assert_eq!(pieces(" ", "the cat sat", -1), ["the", "cat", "sat"]);
        assert_eq!(pieces(" ", "a b ", -1), ["a", "b", ""]);
        assert_eq!(pieces(" ", " a", -1), ["", "a"]);
        assert_eq!(pieces(" ", "", -1), [""]);
        assert_eq!(pieces("[, ]+", "a, b,c", -1), ["a", "b", "c"]);
        assert_eq!(pieces(" ", "a b c d", 2), ["a", "b c d"]);
        assert_eq!(pieces(" ", "a b c", 1), ["a b c"]);
        assert_eq!(pieces(" ", "a b c", 0), ["a", "b", "c"]);
        assert_eq!(pieces("", "abc", -1), ["a", "b", "c"]);
        assert_eq!(pieces("", "abc", 2), ["a", "bc"]);
        assert_eq!(pieces("", "", -1), [""]);
        assert_eq!(pieces("x*", "abc", -1), ["a", "b", "c", ""]);
        assert_eq!(
            pieces("[ABC]", "oneAtwoBthreeC", -1),
            ["one", "two", "three", ""]
        );
        assert_eq!(pieces("é", "aéb", -1), ["a", "b"]);
    }
}
