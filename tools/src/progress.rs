//! Progress output of `runnel run`: a live line on stderr, one JSON object
//! per epoch or batch on stdout, or nothing.

use std::io::Write;
use std::time::Duration;

use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressStyle};
use runnel::{StreamingQuery, StreamingQueryProgress};

/// How progress is shown.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum ProgressKind {
    /// A live status line on stderr.
    Bar,
    /// One Spark-shaped progress object per epoch or batch, on stdout.
    Json,
    /// Nothing.
    None,
}

/// The progress display of one query.
pub struct Progress {
    kind: ProgressKind,
    bar: Option<ProgressBar>,
    last_batch: Option<u64>,
    rows: u64,
}

impl Progress {
    /// A display of `kind`.
    pub fn new(kind: ProgressKind) -> Progress {
        let bar = (kind == ProgressKind::Bar).then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress {
            kind,
            bar,
            last_batch: None,
            rows: 0,
        }
    }

    /// Shows what happened since the last call.
    pub fn update(&mut self, query: &StreamingQuery) {
        let new: Vec<StreamingQueryProgress> = query
            .recent_progress()
            .into_iter()
            .filter(|p| self.last_batch.is_none_or(|b| p.batch_id > b))
            .collect();
        for p in &new {
            self.rows += p.num_input_rows;
            if self.kind == ProgressKind::Json {
                if let Ok(line) = serde_json::to_string(p) {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{line}");
                    let _ = out.flush();
                }
            }
        }
        if let Some(p) = new.last() {
            self.last_batch = Some(p.batch_id);
            if let Some(bar) = &self.bar {
                let files = p
                    .sources
                    .first()
                    .and_then(|s| s.metrics.get("filesRead"))
                    .copied();
                let files = files.map_or(String::new(), |f| format!("{f} files, "));
                let latency = query.latency();
                bar.set_message(format!(
                    "{files}{} rows, {:.0} rows/s, batch/epoch {}, watermark {}, p99 {:.1} µs",
                    self.rows,
                    p.input_rows_per_second,
                    p.batch_id,
                    p.event_time.watermark.as_deref().unwrap_or("-"),
                    latency.p99
                ));
            }
        }
    }

    /// Ends the display.
    pub fn finish(&mut self, query: &StreamingQuery) {
        if let Some(bar) = self.bar.take() {
            let latency = query.latency();
            bar.finish_with_message(format!(
                "{} rows; latency p50 {:.1} µs, p99 {:.1} µs",
                self.rows, latency.p50, latency.p99
            ));
        }
    }
}
