//! `runnel`: run streaming queries, inspect logs, benchmark.
//!
//! `runnel run` runs one query (continuous or micro-batch); see `--help`.
#![deny(missing_docs)]

mod progress;
mod run;
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
    };
    if let Err(e) = result {
        eprintln!("runnel: {e}");
        std::process::exit(1);
    }
}
