//! Static tables from Parquet files: a file, or a directory of them read in
//! name order, read whole once for a stream-static join
//! (`--table NAME=parquet:PATH`).
//!
//! Owns [`read_parquet_table`]: reading through the Arrow project's Parquet
//! reader, and widening each column to the types the engine holds (integers
//! to `bigint`, floats and decimals to `double`, strings of every width to
//! `string`, timestamps of every unit to microseconds in UTC, dates to
//! `date`); a column of any other type is refused with its name and type,
//! as are files whose columns differ from the first file's. It stops with
//! an error as soon as the rows or their bytes exceed the table's bounds.
//! It must not stream, or keep files open.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use runnel::table::{StaticTable, TableLimits};
use runnel::{EngineError, Result};

use super::list_dir;

/// The type a Parquet column is held as, or `None` when it cannot be.
fn held_type(dt: &DataType) -> Option<DataType> {
    Some(match dt {
        DataType::Boolean => DataType::Boolean,
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => DataType::Int64,
        DataType::Float16
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => DataType::Float64,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
        DataType::Date32 | DataType::Date64 => DataType::Date32,
        DataType::Timestamp(..) => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        DataType::Null => DataType::Null,
        _ => return None,
    })
}

/// The batch with every column widened to its held type.
fn widen(batch: &RecordBatch, schema: &SchemaRef) -> std::result::Result<RecordBatch, String> {
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                return Ok(c.clone());
            }
            cast(c.as_ref(), f.data_type()).map_err(|e| {
                format!(
                    "column `{}` ({}) does not convert to {}: {e}",
                    f.name(),
                    c.data_type(),
                    f.data_type()
                )
            })
        })
        .collect::<std::result::Result<Vec<ArrayRef>, String>>()?;
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())
}

/// The held schema of a file's schema, or the first column that cannot be held.
fn held_schema(file_schema: &Schema) -> std::result::Result<SchemaRef, String> {
    let fields = file_schema
        .fields()
        .iter()
        .map(|f| match held_type(f.data_type()) {
            Some(t) => Ok(Field::new(f.name(), t, true)),
            None => Err(format!(
                "column `{}` has type {}, which a static table does not hold",
                f.name(),
                f.data_type()
            )),
        })
        .collect::<std::result::Result<Vec<_>, String>>()?;
    Ok(Arc::new(Schema::new(fields)))
}

/// Reads the table `name` from the Parquet file or directory `path`,
/// refusing more rows or bytes than `limits` allow.
pub fn read_parquet_table(name: &str, path: &Path, limits: &TableLimits) -> Result<StaticTable> {
    let fail = |at: &Path, msg: String| {
        EngineError::Source(format!("static table `{name}` ({}): {msg}", at.display()))
    };
    let meta = std::fs::metadata(path).map_err(|e| fail(path, format!("cannot read it: {e}")))?;
    let files: Vec<std::path::PathBuf> = if meta.is_dir() {
        let mut entries = list_dir(path, false).map_err(|e| fail(path, e))?;
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        entries.into_iter().map(|e| path.join(e.name)).collect()
    } else {
        vec![path.to_path_buf()]
    };
    let mut schema: Option<SchemaRef> = None;
    let mut batches = Vec::new();
    let (mut rows, mut bytes) = (0usize, 0usize);
    for file in &files {
        let opened = File::open(file).map_err(|e| fail(file, format!("cannot open it: {e}")))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(opened)
            .map_err(|e| fail(file, format!("not a readable Parquet file: {e}")))?;
        let held = held_schema(builder.schema()).map_err(|e| fail(file, e))?;
        match &schema {
            None => schema = Some(held.clone()),
            Some(first) if first.fields() != held.fields() => {
                return Err(fail(
                    file,
                    format!(
                        "its columns ({}) differ from the first file's ({})",
                        describe(&held),
                        describe(first)
                    ),
                ))
            }
            Some(_) => {}
        }
        let reader = builder
            .build()
            .map_err(|e| fail(file, format!("cannot read it: {e}")))?;
        for batch in reader {
            let batch = batch.map_err(|e| fail(file, format!("cannot read it: {e}")))?;
            let batch = widen(&batch, &held).map_err(|e| fail(file, e))?;
            rows += batch.num_rows();
            bytes += batch.get_array_memory_size();
            StaticTable::check_rows(name, rows, limits.max_rows)?;
            StaticTable::check_bytes(name, bytes, limits.max_bytes)?;
            batches.push(batch);
        }
    }
    let Some(schema) = schema else {
        return Err(fail(path, "no Parquet file in it".into()));
    };
    let batch = concat_batches(&schema, &batches)
        .map_err(|e| fail(path, format!("cannot join the files' rows: {e}")))?;
    StaticTable::from_batch_within(name, batch, limits)
}

/// `name type, ...` of a schema.
fn describe(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("{} {}", f.name(), runnel::schema::type_name(f.data_type())))
        .collect::<Vec<_>>()
        .join(", ")
}
