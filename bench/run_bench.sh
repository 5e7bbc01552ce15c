#!/usr/bin/env bash
# Runs the whole gn_bench suite (builds nothing) and regenerates bench/RESULTS.md and its
# chart, bench/RESULTS.png (with matplotlib: the .venv's Python when there is one).
# Usage, from anywhere: bench/run_bench.sh [path/to/gn_bench] [more gn_bench flags...]
# (default build/bench/gn_bench, relative to the repository root). About 40-45 minutes on 2 cores;
# run it on an otherwise idle machine: RESULTS.md records the load average at the start.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${1:-build/bench/gn_bench}"
shift $(($# > 0 ? 1 : 0))
case "$bin" in /*) ;; *) bin="$root/$bin" ;; esac
json="$(dirname "$bin")/gn_bench.json"

# 9 repetitions of >= 0.1 s each, randomly interleaved across the whole suite: this VM's
# DRAM bandwidth drifts by +-20% over seconds, and interleaving lets the kernel, its
# roofline and torch sample the same conditions. ~1200 benchmarks in ~40-45 minutes.
rev="$(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)"
flags=(--benchmark_repetitions=9 --benchmark_min_time=0.1
       --benchmark_enable_random_interleaving=true --benchmark_context=git="$rev"
       --benchmark_report_aggregates_only=true
       --benchmark_out="$json" --benchmark_out_format=json "$@")
"$bin" "${flags[@]}"
niceness="$(nice)"  # recorded: on a shared machine, `nice -n -20 bench/run_bench.sh` helps
[ "$niceness" = 0 ] && prefix="" || prefix="nice -n $niceness "
# OpenMP's wait policy changes how torch's threads and ours share the cores: recorded too.
[ -n "${OMP_WAIT_POLICY:-}" ] && prefix="OMP_WAIT_POLICY=$OMP_WAIT_POLICY $prefix"
python="$root/.venv/bin/python"
[ -x "$python" ] || python=python3
"$python" "$root/bench/report.py" "$json" --out "$root/bench/RESULTS.md" \
    --command "$prefix${bin#"$root"/} ${flags[*]//"$root"\//}"
echo "wrote $root/bench/RESULTS.md (raw: $json)"
