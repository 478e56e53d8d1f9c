//! The stream-stream join of micro-batch mode.
//!
//! Owns running a batch of both sources' rows (`io::JoinedSources`: the
//! left side's rows, then the right side's, each tagged) through the join's
//! state (`table::StreamJoinState`, the same code continuous mode runs per
//! event), row by row in each side's order, then evicting what the batch's
//! watermarks allow; the joined rows and an outer join's unmatched rows
//! become the output batch. It must not keep state of its own: the runner
//! holds the join's state from batch to batch.

use super::flight::Flight;
use crate::error::Result;
use crate::schema::arrow::{batch_to_rows, rows_to_batch};
use crate::schema::{Row, SchemaRef, Value};
use crate::table::StreamJoinState;

/// Joins a batch's rows with the state and with each other.
pub(crate) fn join(
    flight: Flight,
    state: &mut StreamJoinState,
    schema: &SchemaRef,
) -> Result<Flight> {
    let rows = batch_to_rows(&flight.batch)?;
    let [lw, rw] = state.join().input_widths;
    let mut out: Vec<Row> = Vec::new();
    let mut ingest_ns: Vec<u64> = Vec::new();
    let mut emit = |row: &Row, ingest| {
        out.push(row.clone());
        ingest_ns.push(ingest);
        Ok(())
    };
    for (i, row) in rows.iter().enumerate() {
        let right = matches!(row.get(lw + rw), Some(Value::Boolean(true)));
        let (side, values) = if right {
            (1, &row[lw..lw + rw])
        } else {
            (0, &row[..lw])
        };
        state.push(side, values, flight.ingest_ns[i], &mut emit)?;
    }
    state.evict(&mut emit)?;
    Ok(Flight {
        batch: rows_to_batch(schema, &out)?,
        ingest_ns,
        watermark_us: None,
    })
}
