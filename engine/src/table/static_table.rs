//! A named table held in memory, read-only, for stream-static joins.

use std::fmt;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;

use super::refresh::TableRefresh;
use crate::error::{plan_err, EngineError, Result};
use crate::schema::arrow::{batch_to_rows, rows_to_batch};
use crate::schema::{is_supported_type, type_name, Row, SchemaRef};

/// The default bound on a static table's rows.
pub const DEFAULT_MAX_ROWS: usize = 10_000_000;

/// The default bound on a static table's data: 1 GiB of Arrow columns.
pub const DEFAULT_MAX_BYTES: usize = 1 << 30;

/// Bounds on a static table's size, checked while it loads (`max_rows`,
/// `max_bytes` in a `--table` URI).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableLimits {
    /// Rows at most.
    pub max_rows: usize,
    /// Bytes of the table's data (its Arrow columns) at most. The table
    /// in memory takes two to three times that: the columns for
    /// micro-batch mode, the rows for continuous mode, and the join's index
    /// (the values once more, in one flat list, and the keys) beside them.
    pub max_bytes: usize,
}

impl Default for TableLimits {
    fn default() -> Self {
        TableLimits {
            max_rows: DEFAULT_MAX_ROWS,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

struct Inner {
    name: String,
    schema: SchemaRef,
    rows: Vec<Row>,
    batch: RecordBatch,
}

/// A table loaded once and joined with a stream (`DataFrame::join`,
/// `JOIN name` in SQL). Cloning is cheap: clones share the rows.
///
/// ```
/// use runnel::table::StaticTable;
/// use runnel::{schema, DataType, Row, Value};
///
/// let regions = StaticTable::from_rows(
///     "regions",
///     schema(&[("Country", DataType::Utf8), ("Region", DataType::Utf8)]),
///     vec![Row::from(vec![Value::from("France"), Value::from("Europe")])],
/// )
/// .unwrap();
/// assert_eq!(regions.num_rows(), 1);
/// ```
#[derive(Clone)]
pub struct StaticTable {
    inner: Arc<Inner>,
    refresh: Option<TableRefresh>,
}

impl fmt::Debug for StaticTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticTable")
            .field("name", &self.inner.name)
            .field("rows", &self.inner.rows.len())
            .finish()
    }
}

impl StaticTable {
    /// A table from an Arrow batch, at most [`DEFAULT_MAX_ROWS`] rows.
    pub fn from_batch(name: &str, batch: RecordBatch) -> Result<StaticTable> {
        Self::from_batch_limited(name, batch, DEFAULT_MAX_ROWS)
    }

    /// A table from an Arrow batch of at most `max_rows` rows.
    pub fn from_batch_limited(
        name: &str,
        batch: RecordBatch,
        max_rows: usize,
    ) -> Result<StaticTable> {
        Self::check_rows(name, batch.num_rows(), max_rows)?;
        let schema = batch.schema();
        check_types(name, &schema)?;
        let rows = batch_to_rows(&batch)?;
        Ok(Self::new(name, schema, rows, batch))
    }

    /// A table from an Arrow batch within `limits`.
    pub fn from_batch_within(
        name: &str,
        batch: RecordBatch,
        limits: &TableLimits,
    ) -> Result<StaticTable> {
        Self::check_bytes(name, batch.get_array_memory_size(), limits.max_bytes)?;
        Self::from_batch_limited(name, batch, limits.max_rows)
    }

    /// A table from rows of `schema` within `limits`.
    pub fn from_rows_within(
        name: &str,
        schema: SchemaRef,
        rows: Vec<Row>,
        limits: &TableLimits,
    ) -> Result<StaticTable> {
        let table = Self::from_rows_limited(name, schema, rows, limits.max_rows)?;
        Self::check_bytes(
            name,
            table.inner.batch.get_array_memory_size(),
            limits.max_bytes,
        )?;
        Ok(table)
    }

    /// A table from rows of `schema`, at most [`DEFAULT_MAX_ROWS`] rows.
    pub fn from_rows(name: &str, schema: SchemaRef, rows: Vec<Row>) -> Result<StaticTable> {
        Self::from_rows_limited(name, schema, rows, DEFAULT_MAX_ROWS)
    }

    /// A table from rows of `schema`, at most `max_rows` rows.
    pub fn from_rows_limited(
        name: &str,
        schema: SchemaRef,
        rows: Vec<Row>,
        max_rows: usize,
    ) -> Result<StaticTable> {
        Self::check_rows(name, rows.len(), max_rows)?;
        check_types(name, &schema)?;
        if let Some((i, r)) = rows
            .iter()
            .enumerate()
            .find(|(_, r)| r.len() != schema.fields().len())
        {
            return plan_err(format!(
                "static table `{name}`: row {i} has {} values but the schema has {} columns",
                r.len(),
                schema.fields().len()
            ));
        }
        let batch = rows_to_batch(&schema, &rows)?;
        Ok(Self::new(name, schema, rows, batch))
    }

    /// The error for a table of `rows` rows over the bound `max_rows`, so a
    /// loader can stop as soon as it has read too many.
    pub fn check_rows(name: &str, rows: usize, max_rows: usize) -> Result<()> {
        if rows > max_rows {
            return Err(EngineError::Plan(format!(
                "static table `{name}` has more than {max_rows} rows (max_rows); \
                 raise the limit or filter the table"
            )));
        }
        Ok(())
    }

    /// The error for a table of `bytes` bytes of data over the bound
    /// `max_bytes`, so a loader can stop as soon as it has read too much.
    pub fn check_bytes(name: &str, bytes: usize, max_bytes: usize) -> Result<()> {
        if bytes > max_bytes {
            return Err(EngineError::Plan(format!(
                "static table `{name}` holds more than {max_bytes} bytes of data (max_bytes; \
                 {bytes} read so far); raise the limit or filter the table"
            )));
        }
        Ok(())
    }

    fn new(name: &str, schema: SchemaRef, rows: Vec<Row>, batch: RecordBatch) -> StaticTable {
        StaticTable {
            inner: Arc::new(Inner {
                name: name.to_string(),
                schema,
                rows,
                batch,
            }),
            refresh: None,
        }
    }

    /// The same table, reloaded while a query runs when its data changes
    /// (looked at every `refresh.interval()`): rows already joined are not
    /// revisited, and each row is joined with one version of the table.
    pub fn with_refresh(mut self, refresh: TableRefresh) -> StaticTable {
        self.refresh = Some(refresh);
        self
    }

    /// How the table reloads, if it does.
    pub fn refresh(&self) -> Option<&TableRefresh> {
        self.refresh.as_ref()
    }

    /// The table's name (its qualifier in a join: `regions.Region`).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The table's columns.
    pub fn schema(&self) -> SchemaRef {
        self.inner.schema.clone()
    }

    /// How many rows the table holds.
    pub fn num_rows(&self) -> usize {
        self.inner.rows.len()
    }

    /// The rows.
    pub fn rows(&self) -> &[Row] {
        &self.inner.rows
    }

    /// The rows as one Arrow batch.
    pub fn batch(&self) -> &RecordBatch {
        &self.inner.batch
    }
}

fn check_types(name: &str, schema: &SchemaRef) -> Result<()> {
    match schema
        .fields()
        .iter()
        .find(|f| !is_supported_type(f.data_type()))
    {
        Some(f) => plan_err(format!(
            "static table `{name}`: column `{}` has unsupported type {}",
            f.name(),
            type_name(f.data_type())
        )),
        None => Ok(()),
    }
}
