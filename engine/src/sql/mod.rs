//! Spark-flavoured streaming SQL, parsed into the builder's plan.
//!
//! Owns the SQL front end: [`StreamingSql::parse`] checks that a query is one
//! `SELECT` over one table and uses only what a streaming query supports;
//! [`StreamingSql::apply`] resolves it against a [`DataFrame`] reading that
//! table and makes the builder calls Spark's planner would make (`filter` for
//! WHERE, `group_by(..).agg(..)`, `filter` for HAVING, `select`). Every error
//! is an [`EngineError::Plan`] that names the offending part and shows it
//! under a caret line. This module must not evaluate anything or know about
//! operators, I/O or the runtime: the builder checks types and plans.
//!
//! Supported: expressions with aliases, `*` and `t.*`, `WHERE`, `GROUP BY`
//! (keys, ordinals, SELECT aliases, and one `window(ts, 'size'[, 'slide'[,
//! 'start']])`), `window.start` / `window.end` (the columns `window_start` and
//! `window_end`; selecting `window` gives both), `HAVING`, `count(*)`,
//! `count`, `sum`, `avg`, `min`, `max` (also inside expressions), `+ - * / %`,
//! `DIV`, `||`, unary minus, comparisons, `<=>`, `AND`/`OR`/`NOT`,
//! `IS [NOT] NULL`, `IS [NOT] DISTINCT FROM`, `BETWEEN`, `IN (...)`, `CASE`
//! (searched and simple), `[NOT] LIKE` / `ILIKE` / `RLIKE`, `ts ± INTERVAL n
//! UNIT`,
//! `CAST(x AS string|int|bigint|double|boolean|timestamp|date)` (Spark's
//! non-ANSI rules: a value that does not convert is null), every function of
//! the registry (`coalesce`, `substring`, `hour`, ...: the README lists them;
//! an unknown name gets the nearest one), literals (numbers, strings,
//! booleans, `NULL`, `TIMESTAMP '...'`, `DATE '...'`), quoted identifiers
//! (`` `x` `` or `"x"`), and columns qualified by the table or its alias.
//! Identifiers are case-insensitive. One `[INNER | LEFT [OUTER]] JOIN table
//! [alias] ON ...` joins the stream with a static table
//! ([`StreamingSql::apply_with_tables`]), or one `[INNER | LEFT [OUTER] |
//! RIGHT [OUTER]] JOIN stream [alias] ON ...` with another stream
//! ([`StreamingSql::apply_with_stream`]): the ON condition holds at least
//! one key equality, and may hold other conditions.
//!
//! ```no_run
//! use runnel::sql::StreamingSql;
//! use runnel::{schema, timestamp_type, DataFrame, DataType, MemorySink, MemorySource, OutputMode};
//!
//! let (source, _producer) = MemorySource::new(schema(&[
//!     ("Country", DataType::Utf8),
//!     ("Price", DataType::Float64),
//!     ("ts", timestamp_type()),
//! ]));
//! let query = StreamingSql::parse(
//!     "SELECT Country, window.start AS day, sum(Price) AS total \
//!      FROM sales GROUP BY Country, window(ts, '1 day')",
//! )
//! .unwrap();
//! let (sink, _table) = MemorySink::new("totals");
//! let running = query
//!     .apply(DataFrame::from_source(query.table(), source))
//!     .unwrap()
//!     .write_stream(sink)
//!     .output_mode(OutputMode::Update)
//!     .start()
//!     .unwrap();
//! # drop(running);
//! ```
//!
//! [`EngineError::Plan`]: crate::EngineError::Plan

mod error;
mod ir;
mod parse;
mod plan;
mod tokens;
mod translate;

#[cfg(test)]
mod tests;

use crate::error::Result;
use crate::plan::DataFrame;
use crate::table::StaticTable;

/// A parsed streaming SELECT, ready to be applied to the stream named in FROM.
#[derive(Clone, Debug)]
pub struct StreamingSql {
    parsed: parse::Parsed,
}

impl StreamingSql {
    /// Parses and checks the shape of the query (one SELECT over one table).
    ///
    /// Syntax errors, unsupported clauses (joins other than one INNER, LEFT
    /// OUTER, RIGHT OUTER or FULL OUTER JOIN ... ON, the last two refused by
    /// `apply` when they cannot run; UNION, WITH, DISTINCT,
    /// ORDER BY, LIMIT, subqueries, window functions, GROUPING SETS, ...) and
    /// unknown functions are reported here; unknown columns and type errors
    /// by [`StreamingSql::apply`], which knows the input schema.
    pub fn parse(sql: &str) -> Result<StreamingSql> {
        Ok(StreamingSql {
            parsed: parse::parse(sql)?,
        })
    }

    /// The table named in FROM (as written, without quotes; parts of a
    /// qualified name joined by `.`).
    pub fn table(&self) -> &str {
        &self.parsed.table
    }

    /// Whether the query aggregates (GROUP BY, HAVING or aggregate functions).
    pub fn is_aggregate(&self) -> bool {
        self.parsed.aggregate
    }

    /// The query text.
    pub fn sql(&self) -> &str {
        &self.parsed.sql
    }

    /// Builds the query on `input` (a DataFrame already reading that table,
    /// possibly with a watermark applied): filter / group_by+agg / having /
    /// select.
    pub fn apply(&self, input: DataFrame) -> Result<DataFrame> {
        plan::apply(&self.parsed, input, None, &[])
    }

    /// The table the query JOINs with, if any (as written).
    pub fn joined_table(&self) -> Option<&str> {
        self.parsed.join.as_ref().map(|j| j.table.as_str())
    }

    /// [`StreamingSql::apply`] for a query that may JOIN one of the static
    /// `tables` (matched by name, case-insensitively): the stream is on the
    /// left, the table on the right (`INNER` or `LEFT OUTER`).
    pub fn apply_with_tables(&self, input: DataFrame, tables: &[StaticTable]) -> Result<DataFrame> {
        plan::apply(&self.parsed, input, None, tables)
    }

    /// [`StreamingSql::apply`] for a query that joins two streams: `input`
    /// reads the table named in FROM (the left side), `joined` the one named
    /// in JOIN (the right side), each possibly with a watermark (Spark's
    /// stream-stream join: `INNER`, `LEFT OUTER` or `RIGHT OUTER`; the outer
    /// ones need a watermark on both streams and an event-time range in ON,
    /// such as `a.t BETWEEN b.t AND b.t + INTERVAL 1 HOUR`). Only append
    /// output mode runs such a query.
    pub fn apply_with_stream(&self, input: DataFrame, joined: DataFrame) -> Result<DataFrame> {
        plan::apply(&self.parsed, input, Some(joined), &[])
    }
}
