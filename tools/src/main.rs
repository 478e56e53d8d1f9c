//! `runnel`: run streaming queries, inspect logs, benchmark.
//!
//! `runnel run` runs one query (continuous or micro-batch); see `--help`.
#![deny(missing_docs)]

mod bench_cmd;
mod bench_crash;
mod bench_feed;
mod bench_plot;
mod log_cmd;
mod progress;
mod run;
mod sql_cmd;
mod uri;

use clap::{Parser, Subcommand};

/// runnel: a stream processing engine built for latency.
#[derive(Parser, Debug)]
#[command(name = "runnel", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a streaming query over sources into a sink.
    Run(run::RunArgs),
    /// Query result tables (CSV/JSON files, log topics) with batch SQL.
    Sql(sql_cmd::SqlArgs),
    /// Measure open-loop latency of a query over the rate source, both modes side by side.
    Bench(bench_cmd::BenchArgs),
    /// Produce to, consume from, or inspect an on-disk log topic.
    #[command(subcommand)]
    Log(log_cmd::LogCommand),
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RUNNEL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Sql(args) => sql_cmd::run(args),
        Command::Log(cmd) => log_cmd::run(cmd),
        Command::Bench(args) => bench_cmd::run(args),
    };
    if let Err(e) = result {
        eprintln!("runnel: {e}");
        std::process::exit(1);
    }
}
