//! One JSON-lines record read key by key into its columns' cells.
//!
//! The record is walked once with serde's streaming interface: each key is
//! matched to a column (exactly, else ignoring ASCII case), its value is
//! kept as a [`Cell`] that borrows the record's text when it has no escapes,
//! and keys that are not columns are skipped without being built. Nothing
//! is allocated per record unless a string has escapes or a value is a
//! nested object or array. A key given twice keeps its last value; an exact
//! match wins over one that differs in case. This module only reads JSON:
//! converting a cell to its column's type is [`super::parse`]'s.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// The value a record gives one column.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) enum Cell<'a> {
    /// The record has no such key.
    #[default]
    Missing,
    /// `null`.
    Null,
    Bool(bool),
    Int(i64),
    /// An integer above `i64::MAX`.
    UInt(u64),
    Float(f64),
    Str(Cow<'a, str>),
    /// An object or array, as JSON text.
    Nested(String),
}

impl Cell<'_> {
    /// The value as JSON text, as a bad-value message shows it.
    pub(crate) fn shown(&self) -> String {
        match self {
            Cell::Missing | Cell::Null => "null".into(),
            Cell::Bool(b) => b.to_string(),
            Cell::Int(i) => i.to_string(),
            Cell::UInt(u) => u.to_string(),
            Cell::Float(f) => serde_json::Value::from(*f).to_string(),
            Cell::Str(s) => serde_json::Value::from(&**s).to_string(),
            Cell::Nested(text) => text.clone(),
        }
    }
}

/// Reads the JSON object `text` into `cells`, one per name of `names` (in
/// order), [`Cell::Missing`] for names the record lacks. `Err` says why the
/// record is not a JSON object.
pub(crate) fn read_record<'a>(
    names: &[String],
    text: &'a [u8],
    cells: &mut Vec<Cell<'a>>,
) -> Result<(), String> {
    cells.clear();
    cells.resize(names.len(), Cell::Missing);
    let first = text.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        // The same words for a scalar or array as for broken JSON.
        return match serde_json::from_slice::<IgnoredAny>(text) {
            Err(e) => Err(format!("invalid JSON: {e}")),
            Ok(_) => Err("not a JSON object".into()),
        };
    }
    let mut exact = ExactSet::default();
    let mut de = serde_json::Deserializer::from_slice(text);
    Record {
        names,
        cells,
        exact: &mut exact,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end())
    .map_err(|e| format!("invalid JSON: {e}"))
}

/// Which cells were set by an exact key match (columns past 128 are
/// treated as never exact: the last match wins for them).
#[derive(Default)]
struct ExactSet(u128);

impl ExactSet {
    fn get(&self, i: usize) -> bool {
        i < 128 && self.0 & (1 << i) != 0
    }
    fn set(&mut self, i: usize) {
        if i < 128 {
            self.0 |= 1 << i;
        }
    }
}

struct Record<'c, 'a> {
    names: &'c [String],
    cells: &'c mut Vec<Cell<'a>>,
    exact: &'c mut ExactSet,
}

impl<'de: 'a, 'a> DeserializeSeed<'de> for Record<'_, 'a> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for Record<'_, 'a> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<(), M::Error> {
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let slot = match self.names.iter().position(|n| *n == key) {
                Some(i) => {
                    self.exact.set(i);
                    Some(i)
                }
                None => self
                    .names
                    .iter()
                    .position(|n| n.eq_ignore_ascii_case(&key))
                    .filter(|&i| !self.exact.get(i)),
            };
            match slot {
                Some(i) => self.cells[i] = map.next_value::<Cell<'de>>()?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// An object key, borrowed from the text when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for Cell<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Cell<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<Cell<'de>, E> {
                Ok(Cell::Null)
            }
            fn visit_none<E>(self) -> Result<Cell<'de>, E> {
                Ok(Cell::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Cell<'de>, E> {
                Ok(Cell::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Cell<'de>, E> {
                Ok(Cell::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Cell<'de>, E> {
                Ok(i64::try_from(v).map_or(Cell::UInt(v), Cell::Int))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Cell<'de>, E> {
                Ok(Cell::Float(v))
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Cell<'de>, E> {
                Ok(Cell::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Cell<'de>, E> {
                Ok(Cell::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Cell<'de>, E> {
                Ok(Cell::Str(Cow::Owned(v)))
            }
            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<Cell<'de>, M::Error> {
                let v = serde_json::Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Cell::Nested(v.to_string()))
            }
            fn visit_seq<S: SeqAccess<'de>>(self, seq: S) -> Result<Cell<'de>, S::Error> {
                let v = serde_json::Value::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
                Ok(Cell::Nested(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(names: &[&str], text: &str) -> Result<Vec<Cell<'static>>, String> {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let text: &'static str = Box::leak(text.to_string().into_boxed_str());
        let mut cells = Vec::new();
        read_record(&names, text.as_bytes(), &mut cells).map(|()| cells)
    }

    #[test]
    fn keys_find_their_columns_and_strings_borrow_the_record() {
        let cells = read(
            &["a", "B", "c", "d"],
            r#"{"b": 1.5, "a": "x", "skip": {"deep": [1, 2]}, "c": "q\"", "a": "y"}"#,
        )
        .unwrap();
        assert_eq!(
            cells[0],
            Cell::Str(Cow::Borrowed("y")),
            "the last value wins"
        );
        assert!(matches!(&cells[0], Cell::Str(Cow::Borrowed(_))));
        assert_eq!(cells[1], Cell::Float(1.5), "case is ignored");
        assert_eq!(cells[2], Cell::Str(Cow::Owned("q\"".into())));
        assert_eq!(cells[3], Cell::Missing);
    }

    #[test]
    fn an_exact_key_wins_over_one_of_another_case() {
        let cells = read(&["id"], r#"{"id": 1, "ID": 2}"#).unwrap();
        assert_eq!(cells[0], Cell::Int(1));
        let cells = read(&["id"], r#"{"ID": 2, "id": 1}"#).unwrap();
        assert_eq!(cells[0], Cell::Int(1));
    }

    #[test]
    fn values_of_every_json_type() {
        let cells = read(
            &["n", "b", "u", "o", "s"],
            r#"{"n": null, "b": false, "u": 18446744073709551615, "o": [1, {"x": null}], "s": ""}"#,
        )
        .unwrap();
        assert_eq!(cells[0], Cell::Null);
        assert_eq!(cells[1], Cell::Bool(false));
        assert_eq!(cells[2], Cell::UInt(u64::MAX));
        assert_eq!(cells[3], Cell::Nested(r#"[1,{"x":null}]"#.into()));
        assert_eq!(cells[4].shown(), r#""""#);
    }

    #[test]
    fn a_record_that_is_not_an_object_says_so() {
        assert_eq!(read(&["a"], "[1]").unwrap_err(), "not a JSON object");
        assert_eq!(read(&["a"], " 7 ").unwrap_err(), "not a JSON object");
        assert!(read(&["a"], r#"{"a": 1"#)
            .unwrap_err()
            .starts_with("invalid JSON: "));
        assert!(read(&["a"], r#"{"a": 1} x"#)
            .unwrap_err()
            .starts_with("invalid JSON: "));
    }
}
