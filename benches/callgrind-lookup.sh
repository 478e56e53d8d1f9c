#!/usr/bin/env bash
# Instructions per event of continuous mode's stream-static inner join
# (a 100,000-row table, every event finds one row) against the same query
# without the join, counted by callgrind inside the loop that pushes the
# events (the query's chain runs on the pushing thread), at two event
# counts so that start-up cancels out. Deterministic: the machine's load
# does not change the count.
#
#   bash benches/callgrind-lookup.sh [EVENTS]      (default 200000)
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-200000}
target=${CARGO_TARGET_DIR:-target}
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }
cargo build --release -q -p runnel-benches --no-default-features --bin lookup-cost
bin="$target/release/lookup-cost"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
count() { # query events -> instructions inside push_all
  valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*push_all*' \
    --callgrind-out-file="$out/cg.$1.$2" "$bin" "$1" "$2" >/dev/null 2>"$out/log" \
    || { cat "$out/log" >&2; exit 1; }
  grep -m1 '^summary:' "$out/cg.$1.$2" | awk '{print $2}'
}
declare -A per
for q in plain join; do
  a=$(count "$q" "$events")
  b=$(count "$q" $((events * 2)))
  per[$q]=$(awk -v a="$a" -v b="$b" -v n="$events" 'BEGIN { printf "%.1f", (b - a) / n }')
  echo "$q: ${per[$q]} instructions per event ($a at $events events, $b at $((events * 2)))"
done
awk -v j="${per[join]}" -v p="${per[plain]}" \
  'BEGIN { printf "join / plain: %.2fx (target <= 1.5x)\n", j / p }'
