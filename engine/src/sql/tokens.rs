//! The query's tokens with their positions, for precise error carets.
//!
//! sqlparser's own spans leave out closing parentheses and leading keywords
//! (`CAST(`, `NOT`, `IS NULL`), so this module re-tokenizes the query and
//! widens an expression's span over the tokens that belong to it; it also
//! finds clause keywords (`ORDER`, `JOIN`, ...) to point at. It must not
//! interpret the query: it only answers "where is this?".

use sqlparser::ast::{self, CastKind, Spanned};
use sqlparser::dialect::Dialect;
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, Tokenizer};

use super::error::{Pos, Span};

struct Tok {
    token: Token,
    span: Span,
    /// Parenthesis depth around the token (for `(` and `)`: outside them).
    depth: u32,
}

/// The non-blank tokens of a query, in order.
pub(crate) struct Tokens {
    toks: Vec<Tok>,
}

impl Tokens {
    /// Tokenizes `sql`; an empty list when it does not tokenize (the parser
    /// reports that error itself).
    pub(crate) fn new(dialect: &dyn Dialect, sql: &str) -> Tokens {
        let raw = Tokenizer::new(dialect, sql)
            .tokenize_with_location()
            .unwrap_or_default();
        let mut depth = 0u32;
        let mut toks = Vec::with_capacity(raw.len());
        for t in raw {
            let d = match t.token {
                Token::Whitespace(_) | Token::EOF => continue,
                Token::LParen => {
                    depth += 1;
                    depth - 1
                }
                Token::RParen => {
                    depth = depth.saturating_sub(1);
                    depth
                }
                _ => depth,
            };
            toks.push(Tok {
                token: t.token,
                span: t.span.into(),
                depth: d,
            });
        }
        Tokens { toks }
    }

    /// The span of the first token.
    pub(crate) fn first(&self) -> Span {
        self.toks.first().map_or(Span::NONE, |t| t.span)
    }

    /// The token a parser error at `pos` is about. sqlparser sometimes
    /// reports the position of the token after the one it found, so when
    /// the token at `pos` is not `found` but the one before it is, that one
    /// is meant.
    pub(crate) fn parser_error_token(&self, pos: Pos, found: Option<&str>) -> Option<Span> {
        let i = self.toks.iter().position(|t| t.span.start == pos);
        let text = |i: usize| self.toks[i].token.to_string();
        if let (Some(found), Some(i)) = (found, i) {
            if text(i) != found && i > 0 && text(i - 1) == found {
                return Some(self.toks[i - 1].span);
            }
        }
        if let (Some(found), None) = (found, i) {
            // Past the last token: the last one, if it is what was found.
            let last = self.toks.iter().rposition(|t| t.span.end <= pos)?;
            return (text(last) == found).then(|| self.toks[last].span);
        }
        let t = &self.toks[i?];
        (t.span.end.line == pos.line).then_some(t.span)
    }

    /// The span of the token after the first top-level `;` (the start of a
    /// second statement).
    pub(crate) fn after_first_semicolon(&self) -> Span {
        let semi = self
            .toks
            .iter()
            .position(|t| t.token == Token::SemiColon && t.depth == 0);
        semi.and_then(|i| self.toks.get(i + 1))
            .map_or(Span::NONE, |t| t.span)
    }

    /// The first unquoted keyword `kw` at or after `from` (and at parenthesis
    /// depth 0 when `top_level`).
    pub(crate) fn keyword(&self, kw: Keyword, from: Pos, top_level: bool) -> Option<Span> {
        self.toks
            .iter()
            .find(|t| t.span.start >= from && (!top_level || t.depth == 0) && is_keyword(t, kw))
            .map(|t| t.span)
    }

    /// The last unquoted top-level keyword `kw`.
    pub(crate) fn last_keyword(&self, kw: Keyword) -> Option<Span> {
        self.toks
            .iter()
            .rev()
            .find(|t| t.depth == 0 && is_keyword(t, kw))
            .map(|t| t.span)
    }

    /// The span of the first token starting at or after `pos`.
    pub(crate) fn next_token(&self, pos: Pos) -> Option<Span> {
        self.at_or_after(pos).map(|i| self.toks[i].span)
    }

    /// The first `*` inside `within`.
    pub(crate) fn star_in(&self, within: Span) -> Option<Span> {
        self.toks
            .iter()
            .find(|t| {
                t.token == Token::Mul && t.span.start >= within.start && t.span.end <= within.end
            })
            .map(|t| t.span)
    }

    /// Index of the first token starting at or after `pos`.
    fn at_or_after(&self, pos: Pos) -> Option<usize> {
        self.toks.iter().position(|t| t.span.start >= pos)
    }

    /// Index of the last token ending at or before `pos`.
    fn before(&self, pos: Pos) -> Option<usize> {
        self.toks.iter().rposition(|t| t.span.end <= pos)
    }

    /// Index of the `)` closing the `(` at `open`.
    fn matching_close(&self, open: usize) -> Option<usize> {
        let depth = self.toks.get(open)?.depth;
        self.toks[open + 1..]
            .iter()
            .position(|t| t.token == Token::RParen && t.depth == depth)
            .map(|i| open + 1 + i)
    }

    /// `inner` widened by the token just before it.
    fn with_previous(&self, inner: Span) -> Span {
        match self.before(inner.start) {
            Some(i) => self.toks[i].span.union(inner),
            None => inner,
        }
    }

    /// `inner` widened to the parentheses right around it, if there are any.
    fn in_parens(&self, inner: Span) -> Span {
        let Some(open) = self.before(inner.start) else {
            return inner;
        };
        if self.toks[open].token != Token::LParen {
            return inner;
        }
        match self.matching_close(open) {
            Some(close) => self.toks[open].span.union(self.toks[close].span),
            None => inner,
        }
    }

    /// From `start` to the `)` closing the first `(` at or after `after`.
    fn through_call_parens(&self, start: Span, after: Pos) -> Span {
        let open = self
            .at_or_after(after)
            .filter(|&i| self.toks[i].token == Token::LParen);
        match open.and_then(|o| self.matching_close(o)) {
            Some(close) => start.union(self.toks[close].span),
            None => start,
        }
    }

    /// The span of an expression, from its first to its last token.
    pub(crate) fn expr_span(&self, e: &ast::Expr) -> Span {
        use ast::Expr as E;
        match e {
            E::Identifier(i) => i.span.into(),
            E::CompoundIdentifier(parts) => match (parts.first(), parts.last()) {
                (Some(a), Some(b)) => Span::from(a.span).union(b.span.into()),
                _ => e.span().into(),
            },
            E::Value(v) => v.span.into(),
            E::TypedString(t) => self.with_previous(t.value.span.into()),
            E::BinaryOp { left, right, .. } => self.expr_span(left).union(self.expr_span(right)),
            E::UnaryOp { expr, .. } => self.with_previous(self.expr_span(expr)),
            E::Nested(inner) => self.in_parens(self.expr_span(inner)),
            E::Cast { kind, expr, .. } => {
                let inner = self.expr_span(expr);
                if *kind == CastKind::DoubleColon {
                    // `x::type`: the `::` and the type name after it.
                    let after = self.at_or_after(inner.end).map(|i| i + 1);
                    return match after.and_then(|i| self.toks.get(i)) {
                        Some(t) => inner.union(t.span),
                        None => inner,
                    };
                }
                let paren = self.in_parens(inner);
                if paren == inner {
                    return inner;
                }
                self.with_previous(paren)
            }
            E::IsNull(x) | E::IsNotNull(x) => {
                let inner = self.expr_span(x);
                let null = self.at_or_after(inner.end).and_then(|i| {
                    self.toks[i..]
                        .iter()
                        .take(3)
                        .find(|t| is_keyword(t, Keyword::NULL))
                });
                match null {
                    Some(t) => inner.union(t.span),
                    None => inner,
                }
            }
            E::Between { expr, high, .. } => self.expr_span(expr).union(self.expr_span(high)),
            E::InList { expr, list, .. } => {
                let start = self.expr_span(expr);
                match list.first() {
                    Some(first) => {
                        let paren = self.in_parens(self.expr_span(first));
                        start.union(paren)
                    }
                    None => start,
                }
            }
            E::Function(f) => self.function_span(f),
            // `SUBSTRING(x ...)`, `TRIM(x)`, `CEIL(x)`: the keyword through
            // its closing parenthesis.
            E::Substring { expr, .. }
            | E::Trim { expr, .. }
            | E::Ceil { expr, .. }
            | E::Floor { expr, .. } => {
                let inner = self.expr_span(expr);
                let Some(open) = self.before(inner.start) else {
                    return inner;
                };
                // TRIM(LEADING x): step back over the keywords to the `(`.
                let open = self.toks[..=open]
                    .iter()
                    .rposition(|t| t.token == Token::LParen)
                    .unwrap_or(open);
                match (open.checked_sub(1), self.matching_close(open)) {
                    (Some(kw), Some(close)) => self.toks[kw].span.union(self.toks[close].span),
                    _ => inner,
                }
            }
            E::Case {
                case_token,
                end_token,
                ..
            } => Span::from(case_token.0.span).union(end_token.0.span.into()),
            E::Like { expr, pattern, .. }
            | E::ILike { expr, pattern, .. }
            | E::RLike { expr, pattern, .. } => self.expr_span(expr).union(self.expr_span(pattern)),
            E::IsDistinctFrom(a, b) | E::IsNotDistinctFrom(a, b) => {
                self.expr_span(a).union(self.expr_span(b))
            }
            other => other.span().into(),
        }
    }

    /// A function call from its name to its closing parenthesis.
    pub(crate) fn function_span(&self, f: &ast::Function) -> Span {
        let name: Span = f.name.span().into();
        self.through_call_parens(name, name.end)
    }
}

fn is_keyword(t: &Tok, kw: Keyword) -> bool {
    matches!(&t.token, Token::Word(w) if w.keyword == kw && w.quote_style.is_none())
}
