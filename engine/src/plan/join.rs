//! The builder's stream-static join: `DataFrame::join` and `DataFrame::alias`.
//!
//! Owns splitting a join condition into key equalities (a stream-side
//! expression `=` a table-side one) and the rest (checked on the joined
//! row), the key types (Spark's implicit casts), and the joined schema
//! (the stream's columns, then the table's, each qualified by its table or
//! alias so that `r.Country` and `s.Country` both resolve). It must not
//! build the index or run anything: the physical plan does that at start.

use super::builder::DataFrame;
use super::logical::{JoinSpec, JoinType, LogicalOp};
use crate::error::{plan_err, Result};
use crate::expr::{bind_expr, BinaryOp, Expr};
use crate::schema::{qualified, qualified_field, qualifier_of, Field, Schema, SchemaRef};
use crate::table::{key_type, StaticTable};

pub(super) fn conjuncts(e: &Expr, out: &mut Vec<Expr>) {
    match e {
        Expr::Binary {
            op: BinaryOp::And,
            left,
            right,
        } => {
            conjuncts(left, out);
            conjuncts(right, out);
        }
        other => out.push(other.clone()),
    }
}

/// The stream's schema with its unqualified columns qualified by `name`.
pub(super) fn stream_side(schema: &Schema, name: &str) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match qualifier_of(f) {
            Some(_) => f.as_ref().clone(),
            None => qualified_field(f, name),
        })
        .collect();
    std::sync::Arc::new(Schema::new(fields))
}

/// Checks and splits a join; returns the spec and the joined schema.
pub(crate) fn plan_join(
    input: &SchemaRef,
    stream_name: &str,
    table: &StaticTable,
    qualifier: &str,
    on: Expr,
    how: JoinType,
) -> Result<(JoinSpec, SchemaRef)> {
    let stream = stream_side(input, stream_name);
    let table_schema = qualified(&table.schema(), qualifier);
    let mut fields: Vec<Field> = stream.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.extend(table_schema.fields().iter().map(|f| {
        // The table's columns are null when a LEFT OUTER join finds no match.
        f.as_ref().clone().with_nullable(true)
    }));
    let joined = std::sync::Arc::new(Schema::new(fields));
    // Every name must resolve on the joined row (unknown and ambiguous
    // names fail here, naming both tables), and the whole is a boolean.
    let (_, field) = bind_expr(&on, &joined)?;
    if !matches!(
        field.data_type(),
        crate::schema::DataType::Boolean | crate::schema::DataType::Null
    ) {
        return plan_err(format!("join condition {on} is not a boolean"));
    }
    let mut parts = Vec::new();
    conjuncts(&on, &mut parts);
    let mut keys = Vec::new();
    let mut rest: Option<Expr> = None;
    for part in parts {
        key_or_rest(part, &stream, &table_schema, &mut keys, &mut rest)?;
    }
    if keys.is_empty() {
        return plan_err(format!(
            "a stream-static join needs at least one equality between a stream column and a \
             column of table `{}` in its condition, but {on} has none (a join on other \
             conditions alone would pair every row with every row: cross joins are not supported)",
            table.name()
        ));
    }
    Ok((
        JoinSpec {
            table: table.clone(),
            qualifier: qualifier.to_string(),
            how,
            on,
            keys,
            condition: rest,
            table_schema,
        },
        joined,
    ))
}

/// Sorts one conjunct of a join condition: an equality between an
/// expression of input `a` and one of input `b` (either way round) becomes
/// a key pair, `a`'s side first, once their types are checked to compare;
/// anything else is and-ed into the residual condition `rest`.
pub(super) fn key_or_rest(
    part: Expr,
    a: &SchemaRef,
    b: &SchemaRef,
    keys: &mut Vec<(Expr, Expr)>,
    rest: &mut Option<Expr>,
) -> Result<()> {
    let pair = match &part {
        Expr::Binary {
            op: BinaryOp::Eq,
            left,
            right,
        } if !is_constant(left) && !is_constant(right) => {
            let on = |e: &Expr, s: &SchemaRef| bind_expr(e, s).ok().map(|(_, f)| f);
            match (on(left, a), on(right, b), on(left, b), on(right, a)) {
                (Some(af), Some(bf), _, _) => Some(((**left).clone(), (**right).clone(), af, bf)),
                (_, _, Some(bf), Some(af)) => Some(((**right).clone(), (**left).clone(), af, bf)),
                _ => None,
            }
        }
        _ => None,
    };
    match pair {
        Some((ka, kb, af, bf)) => {
            key_type(af.data_type(), bf.data_type(), &part.to_string())?;
            keys.push((ka, kb));
        }
        None => {
            *rest = Some(match rest.take() {
                None => part,
                Some(r) => Expr::Binary {
                    op: BinaryOp::And,
                    left: Box::new(r),
                    right: Box::new(part),
                },
            })
        }
    }
    Ok(())
}

pub(super) fn is_constant(e: &Expr) -> bool {
    bind_expr(e, &Schema::empty()).is_ok()
}

impl DataFrame {
    /// Names this stream `name` for qualified columns (`r.Country`), as
    /// Spark's `df.alias("r")`. Without it, a join qualifies the stream's
    /// columns by the source's name.
    pub fn alias(mut self, name: &str) -> DataFrame {
        if self.error.is_none() {
            match self.plan.nodes.last_mut() {
                Some(node) => node.schema = qualified(&node.schema, name),
                None => self.plan.source_schema = qualified(&self.plan.source_schema, name),
            }
        }
        self
    }

    /// Joins each row of the stream with the rows of a static table for
    /// which `on` holds (Spark's stream-static join; the table is on the
    /// right). `on` must include at least one equality between a stream
    /// expression and a table expression (`col("r.Country").eq(col("s.Country"))`);
    /// its other conditions are checked on the joined row. Null keys never
    /// match; a key found on several table rows gives one row per match.
    /// The joined rows have the stream's columns, then the table's; the
    /// table's columns are qualified by its name (see
    /// [`DataFrame::join_as`] for an alias).
    pub fn join(self, table: &StaticTable, on: Expr, how: JoinType) -> DataFrame {
        let name = table.name().to_string();
        self.join_as(table, &name, on, how)
    }

    /// [`DataFrame::join`] with the table's columns qualified by `alias`
    /// (`JOIN regions s` in SQL).
    pub fn join_as(self, table: &StaticTable, alias: &str, on: Expr, how: JoinType) -> DataFrame {
        if matches!(how, JoinType::RightOuter | JoinType::FullOuter) {
            return self.fail(format!(
                "a {how} join with a static table is not supported: it would have to emit the \
                 table rows no stream row ever matches; use Inner or LeftOuter (the stream's rows \
                 are kept)"
            ));
        }
        let stream_name = self.plan.source_name.clone();
        self.push_op(|schema| {
            let (spec, joined) = plan_join(schema, &stream_name, table, alias, on, how)?;
            Ok((LogicalOp::Join(Box::new(spec)), joined))
        })
    }
}
