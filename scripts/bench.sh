#!/usr/bin/env bash
# The benchmark command: installs what is missing, configures and builds Release in build/
# (scripts/setup.sh), runs every benchmark (ctest label `bench`) with 5 repetitions and
# prints their medians, each next to the baseline measured in the same run.
#
#   scripts/bench.sh                 run the binaries; JSON results in build/bench/<name>.json,
#                                    console output in build/bench/<name>.txt
#   scripts/bench.sh --ctest         run them through `ctest -L bench -V` instead
#   scripts/bench.sh ARGS...         extra Google Benchmark flags for the binaries, e.g.
#                                    --benchmark_filter=e2e/grpc --benchmark_min_time=2
#
# Figures move with machine load: run on an otherwise idle machine (the load is printed).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/setup.sh"
cd "$build_dir"

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs);" \
  "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

if [ "${1:-}" = "--ctest" ]; then
  shift
  exec ctest -L bench -V --output-on-failure "$@"
fi

benches=(ingest_decode_bench ingest_receiver_bench sli_engine_bench latency_sketch_bench storage_bench
  detection_bench)
out="$build_dir/bench"
mkdir -p "$out"
status=0
for name in "${benches[@]}"; do
  echo "== $name"
  "$build_dir/bin/$name" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
    --benchmark_out="$out/$name.json" --benchmark_out_format=json "$@" \
    | tee "$out/$name.txt" || status=1
done

echo
echo "== medians (spans per second of CPU time; process CPU for */process_time) =="
for name in "${benches[@]}"; do
  [ -f "$out/$name.json" ] || continue
  jq -r '.benchmarks[] | select(.aggregate_name == "median")
         | [.run_name, (.items_per_second | floor), ((1e9 / .items_per_second) * 10 | round / 10)]
         | @tsv' "$out/$name.json" \
    | sort | awk -F'\t' '{ printf "%-66s %12d spans/s %9.1f ns/span\n", $1, $2, $3 }'
done
echo
echo "== ratios against the baselines of the same run =="
for name in "${benches[@]}"; do
  [ -f "$out/$name.txt" ] && sed -n '/^== summary/,$p' "$out/$name.txt" | tail -n +2
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg); JSON: $out/*.json"
exit "$status"
