#!/usr/bin/env bash
# Sharded precompute on this machine as the Indexed Job runs it: for N in 1 2 4, N concurrent
# `deno task precompute --shard auto` processes with JOB_COMPLETION_INDEX=i and SHARD_COUNT=N over
# the embedded default, then the merge; prints one JSON line per N with the wall time and whether
# the merged cache equals the single-process one byte for byte.
#   bash deploy/kubernetes/shard_timing.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-$(mktemp -d)}"
deno="${DENO:-npx -y deno@2.9.6}"
args=(--model data/base --data data/preferences.jsonl --eval-data data/preferences_eval.jsonl
  --max-length 64 --max-prompt-length 32 --device cpu)
for n in 1 2 4; do
  dir="$out/n$n"
  mkdir -p "$dir"
  start=$(date +%s.%N)
  pids=()
  for ((i = 0; i < n; i++)); do
    JOB_COMPLETION_INDEX=$i SHARD_COUNT=$n $deno task precompute "${args[@]}" --shard auto \
      --output "$dir/ref.shard-$i.bin" >"$dir/log-$i.txt" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  $deno task precompute --merge --output "$dir/ref.bin" "$dir"/ref.shard-*.bin >/dev/null 2>&1
  end=$(date +%s.%N)
  same=true
  [ "$n" = 1 ] || cmp -s "$dir/ref.bin" "$out/n1/ref.bin" || same=false
  printf '{"processes":%d,"wall_s":%.1f,"merged_equals_single":%s,"bytes":%d}\n' \
    "$n" "$(awk "BEGIN{print $end - $start}")" "$same" "$(stat -c %s "$dir/ref.bin")"
done
