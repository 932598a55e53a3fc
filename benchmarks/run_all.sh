#!/usr/bin/env bash
# Run every plait benchmark once and leave JSON results in $OUT (default ./bench-results).
# Figures in BENCHMARKS.md come from this script; quote medians of several runs.
set -euo pipefail
OUT=${OUT:-bench-results}
mkdir -p "$OUT"
stamp=$(date +%Y%m%dT%H%M%S)
run() { local name=$1; shift; echo "== $name: plait $*" >&2; plait "$@" --json > "$OUT/$stamp-$name.json"; }
run inproc-throughput bench --events 2000000 --size 100 --partitions 1
run inproc-rate10k bench --events 50000 --size 100 --partitions 1 --rate 10000
for r in 1000 10000 100000; do
    run latency-inproc-$r bench latency --fastlane inproc --rate $r --events $((r * 3 < 300000 ? r * 3 : 300000))
    run latency-nats-$r bench latency --fastlane nats --peer --rate $r --events $((r * 3 < 300000 ? r * 3 : 300000))
    run latency-log-$r bench latency --path log --rate $r --events $((r * 3 < 300000 ? r * 3 : 300000))
done
run kafka bench kafka --messages 1000000
run meta bench meta
run process bench process --engine cpu --batch 1000 --batch 65536 --batch 1048576
for hb in 200 0; do
    echo "== idle-consumer-$hb: python benchmarks/idle_consumer_cost.py 5 $hb" >&2
    python3 "$(dirname "$0")/idle_consumer_cost.py" 5 "$hb" > "$OUT/$stamp-idle-consumer-$hb.txt"
done
for changes in 1 10000; do
    echo "== enrich-topic-$changes: python benchmarks/enrich_topic_cost.py 1000000 $changes 7" >&2
    python3 "$(dirname "$0")/enrich_topic_cost.py" 1000000 "$changes" 7 > "$OUT/$stamp-enrich-topic-$changes.txt"
done
echo "== windows: python benchmarks/window_cost.py 7" >&2
python3 "$(dirname "$0")/window_cost.py" 7 > "$OUT/$stamp-windows.txt"
echo "results in $OUT" >&2
