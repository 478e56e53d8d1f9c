//! Starting a query: the one place where a checked plan meets a runtime.
//!
//! Owns [`DataStreamWriter::start`], which hands the plan, source, sink and
//! options to continuous mode or to micro-batch mode by the trigger. It sits
//! above `plan` and both runtimes so that neither the plan nor a runtime
//! imports the other; it must not hold logic of its own beyond the choice.

use crate::error::Result;
use crate::plan::DataStreamWriter;
use crate::query::StreamingQuery;

impl DataStreamWriter {
    /// Starts the query and returns its handle.
    pub fn start(self) -> Result<StreamingQuery> {
        if let Some(e) = self.df.error {
            return Err(e);
        }
        if self.config.trigger.is_micro_batch() {
            crate::microbatch::start(self.df.source, self.df.plan, self.sink, self.config)
        } else {
            crate::continuous::start(self.df.source, self.df.plan, self.sink, self.config)
        }
    }
}
