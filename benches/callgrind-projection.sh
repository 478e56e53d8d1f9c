#!/usr/bin/env bash
# Instructions per event of continuous mode's projection: five scalar
# functions (CASE, LIKE, coalesce, hour, concat) against a plain projection
# of five columns, counted by callgrind at two event counts so that start-up
# cancels out. Deterministic: the machine's load does not change the count.
#
#   bash benches/callgrind-projection.sh [EVENTS] [text|query]      (default 200000)
#
# With `text`, the pair is the latency harness's last projection of
# `fused-text-plain` against `fused-text-functions` instead; with `query`,
# those two whole queries (source, filter, both projections, sink, the
# coordinator's epochs), per source event.
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-200000}
prefix=""
[ "${2:-}" = text ] && prefix="text-"
[ "${2:-}" = query ] && prefix="query-text-"
target=${CARGO_TARGET_DIR:-target}
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }
cargo build --release -q -p runnel-benches --bin projection-cost
bin="$target/release/projection-cost"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
count() { # projection events -> total instructions
  valgrind --tool=callgrind --callgrind-out-file="$out/cg.$1.$2" "$bin" "$1" "$2" \
    >/dev/null 2>"$out/log"
  grep -m1 '^summary:' "$out/cg.$1.$2" | awk '{print $2}'
}
declare -A per
for p in plain functions; do
  a=$(count "$prefix$p" "$events")
  b=$(count "$prefix$p" $((events * 2)))
  per[$p]=$(awk -v a="$a" -v b="$b" -v n="$events" 'BEGIN { printf "%.1f", (b - a) / n }')
  echo "$prefix$p: ${per[$p]} instructions per event ($a at $events events, $b at $((events * 2)))"
done
awk -v f="${per[functions]}" -v p="${per[plain]}" \
  'BEGIN { printf "functions / plain: %.2fx\n", f / p }'
