#!/usr/bin/env bash
# CI: runs the libFuzzer targets of build-asan/ (scripts/ci_sanitizers.sh asan builds
# them, ASan + UBSan) for a bounded time each, all at once, starting from the corpora in
# tests/fuzz/corpus/ (copied: new inputs stay in build-asan/fuzz_corpus/). Prints each
# target's execution count; a crash, leak or contract violation fails the job and leaves
# the input in build-asan/fuzz_artifacts/.
#   scripts/ci_fuzz.sh [seconds per target, default 90]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-90}
dir=build-asan
[[ -x $dir/tests/fuzz/gn_fuzz_forward ]] || scripts/ci_sanitizers.sh asan
mkdir -p "$dir/fuzz_artifacts"
pids=()
# The three targets at once (2 cores): each gets about two thirds of a core.
timed=(forward backward npy)
for target in "${timed[@]}"; do
  corpus=$dir/fuzz_corpus/$target
  mkdir -p "$corpus"
  cp -n tests/fuzz/corpus/$target/* "$corpus/" 2>/dev/null || true
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$dir/tests/fuzz/gn_fuzz_$target" -max_total_time="$seconds" -print_final_stats=1 \
    -max_len=4096 -timeout=20 -rss_limit_mb=4096 \
    -artifact_prefix="$dir/fuzz_artifacts/$target-" "$corpus" \
    >"$dir/fuzz_$target.log" 2>&1 &
  pids+=($!)
done
status=0
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || status=1
done
for target in "${timed[@]}"; do
  log=$dir/fuzz_$target.log
  runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  echo "fuzz $target: $runs executions in ${seconds} s ($(grep -c . "$dir/fuzz_corpus/$target"/* 2>/dev/null | wc -l) corpus inputs)"
done
if ((status)); then
  for target in "${timed[@]}"; do tail -n 30 "$dir/fuzz_$target.log"; done
  echo "fuzzing found a failure; inputs in $dir/fuzz_artifacts/" >&2
fi
exit "$status"
