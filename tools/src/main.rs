//! `runnel`: run streaming queries, inspect logs, benchmark.
//!
//! `runnel run` runs one query (continuous or micro-batch); see `--help`.
//!
//! Cargo features (all on by default): `kafka` (`kafka:` sources and sinks,
//! `runnel bench --source kafka:...`), `sql` (`runnel sql`, DataFusion) and
//! `ui` (`runnel run --ui`, the live view).
//! A binary built without one names the feature when asked for what it gates.
#![deny(missing_docs)]

mod bench_cmd;
mod bench_crash;
mod bench_feed;
mod bench_plot;
mod log_cmd;
#[cfg(feature = "sql")]
mod pg_table;
mod progress;
mod run;
#[cfg(feature = "sql")]
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
    /// Query result tables (CSV/JSON files, log topics, PostgreSQL tables) with batch SQL.
    #[cfg(feature = "sql")]
    Sql(sql_cmd::SqlArgs),
    /// Query result tables with batch SQL: not in this build (cargo feature `sql`).
    #[cfg(not(feature = "sql"))]
    Sql(SqlNotBuilt),
    /// Measure open-loop latency of a query over the rate source, both modes side by side.
    Bench(bench_cmd::BenchArgs),
    /// Produce to, consume from, or inspect an on-disk log topic.
    #[command(subcommand)]
    Log(log_cmd::LogCommand),
}

/// `runnel sql` in a build without the `sql` feature: takes any arguments
/// (and `--help`) and fails, naming the feature.
#[cfg(not(feature = "sql"))]
#[derive(clap::Args, Debug)]
#[command(disable_help_flag = true)]
struct SqlNotBuilt {
    #[arg(num_args = 0.., trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    _args: Vec<String>,
}

/// The error for a part of runnel left out of this build: `what` needs the
/// cargo feature `feature`.
#[cfg(any(not(feature = "kafka"), not(feature = "sql"), not(feature = "ui")))]
pub(crate) fn not_built(what: &str, feature: &str) -> String {
    format!(
        "{what} is not in this runnel binary: it was built without the `{feature}` feature; \
         rebuild with `cargo build --release -p runnel-tools --features {feature}`"
    )
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
        #[cfg(feature = "sql")]
        Command::Sql(args) => sql_cmd::run(args),
        #[cfg(not(feature = "sql"))]
        Command::Sql(_) => {
            eprintln!(
                "runnel: {}",
                not_built("`runnel sql` (batch SQL, by DataFusion)", "sql")
            );
            std::process::exit(1);
        }
        Command::Log(cmd) => log_cmd::run(cmd),
        Command::Bench(args) => bench_cmd::run(args),
    };
    if let Err(e) = result {
        eprintln!("runnel: {e}");
        std::process::exit(1);
    }
}
