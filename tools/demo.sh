#!/usr/bin/env bash
# runnel's main job: per-customer, per-day revenue over the retail sample
# (the tutorial's query), run in continuous and in micro-batch mode, with the
# two result tables compared.
#
#   bash tools/demo.sh                                  # bundled sample data
#   bash tools/demo.sh ../shared/data/retail-data/by-day   # the full data set
set -euo pipefail
cd "$(dirname "$0")/.."
data="${1:-tests/fixtures/retail-by-day}"
out=target/demo
runnel="${CARGO_TARGET_DIR:-target}/release/runnel"
# Only what the job needs: no Kafka (librdkafka from C source) and no
# `runnel sql` (DataFusion), the bulk of a cold build. The binary refuses
# kafka: URIs and `runnel sql` naming the feature; `cargo build --release -p
# runnel-tools` (default features) builds the full one at the same path.
cargo build --release --locked -q -p runnel-tools --no-default-features
rm -rf "$out"
mkdir -p "$out"
sql="SELECT CustomerID, window.start AS day, round(sum(UnitPrice * Quantity), 2) AS total
     FROM retail GROUP BY CustomerID, window(InvoiceDate, '1 day')"
for mode in continuous microbatch; do
    start=$(date +%s.%N)
    "$runnel" run --mode "$mode" --sql "$sql" \
        --source "retail=csv:$data?header=true" \
        --sink "csv:$out/$mode.csv" --checkpoint "$out/$mode-checkpoint" \
        --until-idle --progress none
    end=$(date +%s.%N)
    rows=$(($(wc -l < "$out/$mode.csv") - 1))
    printf '%-10s %6d result rows in %.2f s -> %s\n' "$mode" "$rows" "$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')" "$out/$mode.csv"
done
echo
echo "First rows (continuous):"
head -6 "$out/continuous.csv"
echo
if diff <(tail -n +2 "$out/continuous.csv" | sort) <(tail -n +2 "$out/microbatch.csv" | sort) > /dev/null; then
    echo "Both modes produced the same result table."
else
    echo "The two modes disagree:" >&2
    diff <(tail -n +2 "$out/continuous.csv" | sort) <(tail -n +2 "$out/microbatch.csv" | sort) | head >&2
    exit 1
fi
