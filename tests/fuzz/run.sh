#!/usr/bin/env bash
# Runs one fuzz target of runnel, niced, on stable Rust with RUSTC_BOOTSTRAP.
#
#   bash tests/fuzz/run.sh TARGET [SECONDS] [more libFuzzer flags...]
#
# TARGET: csv_records, json_records, log_segments or sql_front_end.
# SECONDS: -max_total_time (default 600). New inputs go to a working corpus
# under tests/fuzz/target/corpus/TARGET (not committed); the committed seeds
# in tests/fuzz/corpus/TARGET are read, never written. Crashes land in
# tests/fuzz/artifacts/TARGET/. Needs cargo-fuzz:
#   cargo install cargo-fuzz --locked --root "$HOME/.cache/runnel/tools"
set -euo pipefail
cd "$(dirname "$0")/../.."
target=${1:?usage: run.sh TARGET [SECONDS] [libFuzzer flags]}
secs=${2:-600}
shift $(( $# >= 2 ? 2 : 1 ))
export PATH="$HOME/.cache/runnel/tools/bin:$PATH"
work=tests/fuzz/target/corpus/$target
mkdir -p "$work"
dict=()
case $target in
  csv_records) dict=(-dict=tests/fuzz/dict/csv.dict) ;;
  json_records) dict=(-dict=tests/fuzz/dict/json.dict) ;;
  sql_front_end) dict=(-dict=tests/fuzz/dict/sql.dict) ;;
esac
# Temp dirs of the targets on tmpfs when there is one: no disk I/O per run.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ]; then export TMPDIR=/dev/shm; fi
RUSTC_BOOTSTRAP=1 exec nice -n 19 cargo fuzz run -O -a -s none --fuzz-dir tests/fuzz \
  "$target" "$work" "tests/fuzz/corpus/$target" -- \
  -max_len=4096 -max_total_time="$secs" -timeout=10 -rss_limit_mb=1024 \
  -print_final_stats=1 "${dict[@]}" "$@"
