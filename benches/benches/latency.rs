//! The open-loop latency harness as a bench binary (`harness = false`).
//!
//! ```text
//! cargo bench -p runnel-benches --bench latency -- --rate 100000 --duration 10
//! cargo bench -p runnel-benches --bench latency -- --max-throughput --runs 3
//! ```
//!
//! See `runnel_benches::cli::USAGE` (or `--help`) for every option.

use std::process::ExitCode;

use runnel_benches::cli::{run_cli, BenchArgs, USAGE};

fn main() -> ExitCode {
    let args = match BenchArgs::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(msg) if msg == USAGE => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match run_cli(&args, &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
