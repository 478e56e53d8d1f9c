//! `runnel sql --table NAME=postgres://USER@HOST:PORT/DB?table=T`: a
//! PostgreSQL table read back whole into one Arrow batch.
//!
//! Owns reading a table's columns (`information_schema.columns`) and rows
//! and mapping PostgreSQL's types to Arrow's: bigint, integer and smallint
//! to Int64; double precision, real and numeric to Float64 (numeric is cast
//! by the server, so digits beyond a double's are lost); text, varchar and
//! char to Utf8; boolean; timestamptz and timestamp to Timestamp(µs, UTC)
//! (a timestamp without time zone is read as UTC); date to Date32. Any
//! other type is refused, naming the column. The password comes from
//! `PGPASSWORD` as for the sink, so no message carries it.
//!
//! It must not write to the server (one read-only transaction), and must
//! not be called on a thread that runs an async runtime: the blocking
//! client starts its own.

use std::error::Error;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use postgres::types::{FromSql, Type};
use postgres::{Client, NoTls, Row};
use runnel::{EngineError, Result};
use runnel_connectors::postgres::table_columns;
use runnel_connectors::PostgresSinkOptions;

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 UTC).
const PG_EPOCH_US: i64 = 946_684_800_000_000;
/// Days from the Unix epoch to PostgreSQL's.
const PG_EPOCH_DAYS: i32 = 10_957;

/// How one column is read: the SQL that selects it and its Arrow type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Int64,
    Float64,
    Utf8,
    Boolean,
    Timestamp,
    Date,
}

impl Kind {
    /// The kind of an `information_schema.columns.data_type`, if readable.
    fn of(data_type: &str) -> Option<Kind> {
        Some(match data_type {
            "bigint" | "integer" | "smallint" => Kind::Int64,
            "double precision" | "real" | "numeric" => Kind::Float64,
            "text" | "character varying" | "character" => Kind::Utf8,
            "boolean" => Kind::Boolean,
            "timestamp with time zone" | "timestamp without time zone" => Kind::Timestamp,
            "date" => Kind::Date,
            _ => return None,
        })
    }

    /// The column as selected: cast to the one wire type read for the kind.
    fn select(self, quoted: &str) -> String {
        match self {
            Kind::Int64 => format!("{quoted}::bigint"),
            Kind::Float64 => format!("{quoted}::double precision"),
            Kind::Utf8 => format!("{quoted}::text"),
            Kind::Boolean | Kind::Timestamp | Kind::Date => quoted.to_string(),
        }
    }

    fn arrow(self) -> DataType {
        match self {
            Kind::Int64 => DataType::Int64,
            Kind::Float64 => DataType::Float64,
            Kind::Utf8 => DataType::Utf8,
            Kind::Boolean => DataType::Boolean,
            Kind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Kind::Date => DataType::Date32,
        }
    }
}

/// A timestamp (with or without time zone) as microseconds since the Unix
/// epoch, from the binary wire format (no date-time crate needed).
struct Micros(i64);

impl<'a> FromSql<'a> for Micros {
    fn from_sql(
        _: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn Error + Sync + Send>> {
        let pg = i64::from_be_bytes(raw.try_into()?);
        // ±infinity are i64::MAX / MIN: keep them at the ends of the range.
        Ok(Micros(match pg {
            i64::MAX | i64::MIN => pg,
            _ => pg + PG_EPOCH_US,
        }))
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::TIMESTAMP | Type::TIMESTAMPTZ)
    }
}

/// A date as days since the Unix epoch, from the binary wire format.
struct Days(i32);

impl<'a> FromSql<'a> for Days {
    fn from_sql(
        _: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn Error + Sync + Send>> {
        let pg = i32::from_be_bytes(raw.try_into()?);
        Ok(Days(match pg {
            i32::MAX | i32::MIN => pg,
            _ => pg + PG_EPOCH_DAYS,
        }))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::DATE
    }
}

/// `name` as a quoted SQL identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `location` with the password of `//USER:PASSWORD@HOST...` masked, when
/// it has one.
fn redacted(location: &str) -> Option<String> {
    let rest = location.strip_prefix("//")?;
    let (userinfo, host) = rest.split_once('@')?;
    let (user, _) = userinfo.split_once(':')?;
    Some(format!("//{user}:***@{host}"))
}

/// Reads the whole table that `location` (`//USER@HOST:PORT/DB`) and
/// `options` (`table=T`) name; `what` names the flag in errors
/// (`--table daily`). Column names are lower-cased.
pub fn read(
    what: &str,
    location: &str,
    options: &std::collections::BTreeMap<String, String>,
) -> Result<(Arc<Schema>, RecordBatch)> {
    let opts = PostgresSinkOptions::parse(location, options).map_err(|e| {
        let why = match e {
            EngineError::Plan(m) => m,
            other => other.to_string(),
        };
        let why = why.replace("postgres sink", "postgres table");
        // A URI refused for another reason may still hold a password.
        let why = match redacted(location) {
            Some(safe) => why.replace(location, &safe),
            None => why,
        };
        EngineError::Source(format!("{what}: {why}"))
    })?;
    // Never the password: the URI cannot hold one and PGPASSWORD is not shown.
    let uri = format!(
        "postgres://{}@{}:{}/{}?table={}",
        opts.user, opts.host, opts.port, opts.database, opts.table
    );
    let fail = |doing: &str, e: postgres::Error| {
        let why = match (e.as_db_error(), e.source()) {
            (Some(db), _) => db.message().to_string(),
            (None, Some(cause)) => format!("{e}: {cause}"),
            (None, None) => e.to_string(),
        };
        EngineError::Source(format!("{what}: {doing} {uri}: {why}"))
    };
    let password = opts
        .password()
        .map_err(|why| EngineError::Source(format!("{what}: {uri}: {why}")))?;
    let mut client: Client = opts
        .client_config("runnel sql", password.as_deref())
        .connect(NoTls)
        .map_err(|e| fail("cannot connect to", e))?;
    let mut tx = client
        .build_transaction()
        .read_only(true)
        .start()
        .map_err(|e| fail("cannot read from", e))?;
    let (schema_name, table) = match opts.table.split_once('.') {
        Some((s, t)) => (Some(s.to_string()), t.to_string()),
        None => (None, opts.table.clone()),
    };
    let found =
        table_columns(&mut tx, &opts.table).map_err(|e| fail("cannot read the columns of", e))?;
    if found.is_empty() {
        return Err(EngineError::Source(format!(
            "{what}: table {} does not exist in {uri}",
            opts.table
        )));
    }
    let mut columns: Vec<(String, Kind)> = Vec::with_capacity(found.len());
    for (name, ty) in found {
        let kind = Kind::of(&ty).ok_or_else(|| {
            EngineError::Source(format!(
                "{what}: column {name} of table {} is {ty}, which runnel sql does not read \
                 (bigint, integer, smallint, double precision, real, numeric, text, varchar, \
                 char, boolean, timestamp, timestamptz and date are read)",
                opts.table
            ))
        })?;
        columns.push((name, kind));
    }
    let select: Vec<String> = columns.iter().map(|(n, k)| k.select(&ident(n))).collect();
    let quoted_table = match &schema_name {
        Some(s) => format!("{}.{}", ident(s), ident(&table)),
        None => ident(&table),
    };
    let rows = tx
        .query(
            &format!("SELECT {} FROM {quoted_table}", select.join(", ")),
            &[],
        )
        .map_err(|e| fail("cannot read the rows of", e))?;
    tx.commit().map_err(|e| fail("cannot read from", e))?;
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(n, k)| Field::new(n.to_lowercase(), k.arrow(), true))
            .collect::<Vec<_>>(),
    ));
    let arrays: Vec<ArrayRef> = columns
        .iter()
        .enumerate()
        .map(|(i, (_, k))| array(&rows, i, *k))
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), arrays)
        .map_err(|e| EngineError::Source(format!("{what}: {e}")))?;
    Ok((schema, batch))
}

/// Column `i` of `rows` as an Arrow array of `kind` (types checked by the
/// casts in the SELECT, so `get` cannot fail on a type).
fn array(rows: &[Row], i: usize, kind: Kind) -> ArrayRef {
    match kind {
        Kind::Int64 => Arc::new(
            rows.iter()
                .map(|r| r.get::<_, Option<i64>>(i))
                .collect::<Int64Array>(),
        ),
        Kind::Float64 => Arc::new(
            rows.iter()
                .map(|r| r.get::<_, Option<f64>>(i))
                .collect::<Float64Array>(),
        ),
        Kind::Utf8 => Arc::new(
            rows.iter()
                .map(|r| r.get::<_, Option<&str>>(i))
                .collect::<StringArray>(),
        ),
        Kind::Boolean => Arc::new(
            rows.iter()
                .map(|r| r.get::<_, Option<bool>>(i))
                .collect::<BooleanArray>(),
        ),
        Kind::Timestamp => Arc::new(
            rows.iter()
                .map(|r| r.get::<_, Option<Micros>>(i).map(|m| m.0))
                .collect::<TimestampMicrosecondArray>()
                .with_timezone("UTC"),
        ),
        Kind::Date => Arc::new(
            rows.iter()
                .map(|r| r.get::<_, Option<Days>>(i).map(|d| d.0))
                .collect::<Date32Array>(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_map_to_arrow_and_others_are_refused() {
        assert_eq!(Kind::of("integer"), Some(Kind::Int64));
        assert_eq!(Kind::of("numeric"), Some(Kind::Float64));
        assert_eq!(Kind::of("character varying"), Some(Kind::Utf8));
        assert_eq!(
            Kind::of("timestamp without time zone"),
            Some(Kind::Timestamp)
        );
        assert_eq!(Kind::of("jsonb"), None);
        assert_eq!(Kind::Float64.select("\"n\""), "\"n\"::double precision");
        let raw = 5i64.to_be_bytes();
        assert_eq!(
            Micros::from_sql(&Type::TIMESTAMPTZ, &raw).unwrap().0,
            PG_EPOCH_US + 5
        );
        assert_eq!(redacted("//u:secret@h/db").unwrap(), "//u:***@h/db");
        assert_eq!(redacted("//u@h/db"), None);
        let raw = (-1i32).to_be_bytes();
        assert_eq!(
            Days::from_sql(&Type::DATE, &raw).unwrap().0,
            PG_EPOCH_DAYS - 1
        );
    }
}
