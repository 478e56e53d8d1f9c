//! Errors of the SQL front end, pointing into the query text.
//!
//! Owns [`Span`] (a 1-based line/column range of the query, end exclusive,
//! as sqlparser counts them), the rendering of a message followed by the
//! offending SQL line and a caret line under the span, and the conversion of
//! sqlparser's syntax errors into that same form. It must not decide what is
//! an error: callers say what is wrong and where.

use std::fmt;

use sqlparser::parser::ParserError;

use crate::error::EngineError;

/// A position in the query text: 1-based line and column (in characters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pos {
    pub(crate) line: u64,
    pub(crate) col: u64,
}

/// A range of the query text, `end` exclusive. Line 0 means "unknown".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: Pos,
    pub(crate) end: Pos,
}

impl Span {
    /// The unknown span.
    pub(crate) const NONE: Span = Span {
        start: Pos { line: 0, col: 0 },
        end: Pos { line: 0, col: 0 },
    };

    /// Whether the span is unknown.
    pub(crate) fn is_none(&self) -> bool {
        self.start.line == 0
    }

    /// The smallest span covering both (an unknown side is ignored).
    pub(crate) fn union(self, other: Span) -> Span {
        if self.is_none() {
            return other;
        }
        if other.is_none() {
            return self;
        }
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

impl From<sqlparser::tokenizer::Span> for Span {
    fn from(s: sqlparser::tokenizer::Span) -> Span {
        Span {
            start: Pos {
                line: s.start.line,
                col: s.start.column,
            },
            end: Pos {
                line: s.end.line,
                col: s.end.column,
            },
        }
    }
}

/// A planning error for `msg` at `span` of `sql`:
///
/// ```text
/// <msg> at line 1, column 12
///   SELECT sum(Quantty) FROM retail
///              ^^^^^^^
/// ```
pub(crate) fn error_at(sql: &str, span: Span, msg: impl fmt::Display) -> EngineError {
    if span.is_none() {
        return EngineError::Plan(msg.to_string());
    }
    let (line, carets) = caret_lines(sql, span);
    EngineError::Sql {
        message: format!(
            "{msg} at line {}, column {}\n  {line}\n  {carets}",
            span.start.line, span.start.col
        ),
        line: span.start.line,
        column: span.start.col,
    }
}

/// The SQL line of `span` and the caret line under it.
fn caret_lines(sql: &str, span: Span) -> (String, String) {
    let line = sql
        .split('\n')
        .nth(span.start.line as usize - 1)
        .unwrap_or("")
        .trim_end_matches('\r');
    let chars: Vec<char> = line.chars().collect();
    let start = (span.start.col.max(1) as usize - 1).min(chars.len());
    // Keep tabs so the carets line up under tab-indented text.
    let pad: String = chars[..start]
        .iter()
        .map(|&c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let width = if span.end.line == span.start.line && span.end.col > span.start.col {
        (span.end.col - span.start.col) as usize
    } else {
        chars.len().saturating_sub(start)
    };
    (
        line.to_string(),
        format!("{pad}{}", "^".repeat(width.max(1))),
    )
}

/// Turns a sqlparser error into a planning error at its position.
/// `token_at(pos, found)` gives the span of the token the parser complained
/// about (`found` is the text after "found: "), when the query tokenizes.
pub(crate) fn syntax_error(
    sql: &str,
    err: &ParserError,
    token_at: impl Fn(Pos, Option<&str>) -> Option<Span>,
) -> EngineError {
    let text = match err {
        ParserError::TokenizerError(s) | ParserError::ParserError(s) => s.clone(),
        ParserError::RecursionLimitExceeded => {
            return EngineError::Plan("syntax error: the query is nested too deeply".into())
        }
    };
    let (message, pos) = match split_location(&text) {
        Some((m, pos)) => (m.to_string(), pos),
        // sqlparser gives no location for errors at the end of the input.
        None => (text.clone(), end_of_text(sql)),
    };
    let found = message.rsplit_once("found: ").map(|(_, f)| f.trim());
    let span = token_at(pos, found).unwrap_or(Span {
        start: pos,
        end: Pos {
            line: pos.line,
            col: pos.col + 1,
        },
    });
    error_at(sql, span, format!("syntax error: {message}"))
}

/// Splits `"<message> at Line: L, Column: C"` into the message and position.
fn split_location(text: &str) -> Option<(&str, Pos)> {
    let at = text.rfind(" at Line: ")?;
    let rest = &text[at + " at Line: ".len()..];
    let (line, col) = rest.split_once(", Column: ")?;
    let line: u64 = line.trim().parse().ok()?;
    let col: u64 = col.trim().parse().ok()?;
    (line > 0).then_some((&text[..at], Pos { line, col }))
}

/// The position just after the last non-blank character of `sql`.
fn end_of_text(sql: &str) -> Pos {
    let mut pos = Pos { line: 1, col: 1 };
    let mut after_last = pos;
    for c in sql.chars() {
        if c == '\n' {
            pos = Pos {
                line: pos.line + 1,
                col: 1,
            };
        } else {
            pos.col += 1;
            if !c.is_whitespace() {
                after_last = pos;
            }
        }
    }
    after_last
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(l: u64, c: u64, l2: u64, c2: u64) -> Span {
        Span {
            start: Pos { line: l, col: c },
            end: Pos { line: l2, col: c2 },
        }
    }

    #[test]
    fn carets_sit_under_the_span() {
        let sql = "SELECT a\nFROM\tt WHERE x";
        let e = error_at(sql, span(2, 14, 2, 15), "bad").to_string();
        assert_eq!(
            e,
            "invalid query: bad at line 2, column 14\n  FROM\tt WHERE x\n      \t        ^"
        );
    }

    #[test]
    fn multi_line_spans_underline_to_the_end_of_the_first_line() {
        let e = error_at("SELECT (a +\n b)", span(1, 8, 2, 3), "m").to_string();
        assert!(e.ends_with("SELECT (a +\n         ^^^^"), "{e}");
    }

    #[test]
    fn parser_locations_are_split_off() {
        assert_eq!(
            split_location("Expected: x, found: y at Line: 3, Column: 7"),
            Some(("Expected: x, found: y", Pos { line: 3, col: 7 }))
        );
        assert_eq!(split_location("Expected: x, found: EOF"), None);
        assert_eq!(end_of_text("SELECT a\n  FROM  \n"), Pos { line: 2, col: 7 });
    }
}
