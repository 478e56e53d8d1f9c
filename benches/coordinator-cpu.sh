#!/usr/bin/env bash
# CPU time of a continuous query's coordinator thread (the checkpoint's
# work), in ms per second, and how many times a second it ran: read from
# the kernel's per-thread scheduler statistics while `runnel bench` runs
# the keyed tumbling count at 1M events/s from two pushing producers, or
# (second argument `log`) the default stateless query over `--source log`
# at 100k events/s. CPU time, unlike a p99, hardly depends on what else
# the machine runs.
#
#   bash benches/coordinator-cpu.sh [RUNS] [keyed|log]      (default 3 keyed)
#
# Needs a built release binary (`cargo build --release -p runnel-tools`);
# RUNNEL overrides its path.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
scenario=${2:-keyed}
bin=${RUNNEL:-${CARGO_TARGET_DIR:-target}/release/runnel}
[ -x "$bin" ] || { echo "no runnel binary at $bin: build it first" >&2; exit 1; }
sql="SELECT window(timestamp, '1 second') AS w, value % 10000 AS key, count(*) AS n FROM rate GROUP BY window(timestamp, '1 second'), value % 10000"
sample() { # pid tid -> "runtime_ns slices"
  awk '{print $1, $3}' "/proc/$1/task/$2/schedstat"
}
for run in $(seq "$runs"); do
  case "$scenario" in
    keyed) "$bin" bench --mode continuous --source push --producers 2 --rate 1000000 \
      --duration 10 --warmup 2 --no-floor --sql "$sql" >/dev/null 2>&1 & ;;
    log) "$bin" bench --mode continuous --source log --rate 100000 \
      --duration 10 --warmup 2 --no-floor >/dev/null 2>&1 & ;;
    *) echo "unknown scenario $scenario: keyed or log" >&2; exit 2 ;;
  esac
  pid=$!
  sleep 6
  tid=$(ps -L -o tid=,comm= -p "$pid" | awk '$2 ~ /-co$/ || $2 ~ /coord/ {print $1; exit}')
  [ -n "$tid" ] || { echo "no coordinator thread in $pid" >&2; kill "$pid"; exit 1; }
  read -r t0 n0 < <(sample "$pid" "$tid")
  sleep 4
  read -r t1 n1 < <(sample "$pid" "$tid")
  wait "$pid"
  awk -v r="$run" -v t="$((t1 - t0))" -v n="$((n1 - n0))" \
    'BEGIN { printf "run %d: coordinator %.1f ms of CPU per second, %.0f runs per second\n", r, t / 4e6, n / 4 }'
done
