//! Replays the fuzzers' committed inputs on stable Rust, in the normal test
//! suite: every file of `tests/fuzz/corpus/<target>/` (the small seed and
//! minimised corpora) and of `tests/fuzz/regressions/<target>/` (inputs
//! that once crashed, hung or over-allocated, kept after their fix) goes
//! through the very code the fuzz target runs (`tests/fuzz/src/lib.rs`,
//! included here), and none may panic.
//!
//! `RUNNEL_FUZZ_DEBUG=1 cargo test -p runnel-tests --test fuzz_regressions --
//! --nocapture --test-threads=1` shows what each input did.
//!
//! A crash input found by a campaign is committed to `regressions/` together
//! with its fix (`cargo fuzz run <target> <input>` in `tests/fuzz` replays it
//! alone while it is being fixed), so the suite never skips a known failure.

#[path = "fuzz/src/lib.rs"]
#[allow(dead_code)]
mod fuzz;

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// One allocation over 256 MiB aborts, as in the fuzz binaries.
#[global_allocator]
static ALLOC: fuzz::LimitedAlloc = fuzz::LimitedAlloc;

/// A fuzz target's body.
type Target = fn(&[u8]);

/// The files directly in `dir`, sorted (none if `dir` does not exist).
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.expect("list a corpus folder").path())
            .filter(|p| p.is_file())
            .filter(|p| {
                !p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.') || n.ends_with(".md"))
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

/// Runs `run` on every input of `folders` (under `tests/fuzz/`) for
/// `target`; returns how many inputs were replayed and the ones that
/// panicked.
fn replay(target: &str, folders: &[&str], run: Target) -> (usize, Vec<String>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut count = 0;
    let mut failed = Vec::new();
    for folder in folders {
        for path in files_in(&root.join(folder).join(target)) {
            let data = fs::read(&path).expect("read a fuzz input");
            if std::env::var_os("RUNNEL_FUZZ_DEBUG").is_some() {
                eprintln!("== {}", path.display());
            }
            count += 1;
            if panic::catch_unwind(AssertUnwindSafe(|| run(&data))).is_err() {
                failed.push(path.display().to_string());
            }
        }
    }
    (count, failed)
}

/// The corpus and the fixed regressions of `target`: at least one input,
/// and no panic.
fn check(target: &str, run: Target) {
    let (count, failed) = replay(target, &["corpus", "regressions"], run);
    assert!(
        count > 0,
        "no inputs found for {target} under tests/fuzz/corpus or tests/fuzz/regressions"
    );
    assert!(
        failed.is_empty(),
        "{} of {count} {target} inputs panicked (messages above): {failed:#?}",
        failed.len()
    );
    eprintln!("{target}: replayed {count} inputs");
}

#[test]
fn csv_records() {
    check("csv_records", fuzz::csv_records);
}

#[test]
fn json_records() {
    check("json_records", fuzz::json_records);
}

#[test]
fn log_segments() {
    check("log_segments", fuzz::log_segments);
}

#[test]
fn sql_front_end() {
    check("sql_front_end", fuzz::sql_front_end);
}
