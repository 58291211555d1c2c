#!/usr/bin/env bash
# The one-shot GPU session of issue 11: on a GPU machine with no network, in under 8 minutes,
#   1. unpack Deno, its module cache and the Vulkan loader (docs/bench/gpu_prepare.sh made them);
#   2. check that Deno's WebGPU sees the NVIDIA adapter (abort with a clear message if not);
#   3. PyTorch eager fp32 on the bench's 135M-shape DPO step (docs/bench/pytorch_dpo_step.py);
#   4. `deno task tune` on the bench's shapes (matmul 1024^3..4096^3, the 135M step's
#      projections, attention and LM head);
#   5. `deno task bench --json --large` (the 135M row at 4 pairs x 256 without checkpointing),
#      with PyTorch's figure merged into that row as pytorch_tokens_per_s;
#   6. the GPU tests (tests/gpu/, tests/model/) with DPO_KERNEL_LAYOUTS=auto and =hardware;
#   7. if time is left, the other large rows (checkpointing, 4 x 1024, Qwen2.5-0.5B).
# Each step runs under `timeout`, capped by what is left of GPU_SESSION_BUDGET (default 450 s).
# Results go to $OUT, flat, at most 8 files: session.log pytorch.json tune.json tuning.json
# bench.json tests-auto.log tests-hardware.log bench-extra.json.
#
#   GPU machine:  bash docs/bench/gpu_session.sh               (device run, carry .gl and .gpu)
#   dry run here: GPU_SESSION_DRY=1 bash docs/bench/gpu_session.sh   (llvmpipe, tiny shapes)
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
DRY="${GPU_SESSION_DRY:-0}"
BUDGET="${GPU_SESSION_BUDGET:-450}"
OUT="${OUT:-${GPU_SESSION_OUT:-$(mktemp -d /tmp/gpu-session-out.XXXXXX)}}"
mkdir -p "$OUT"
W="$(mktemp -d /tmp/gpu-session.XXXXXX)"
T0=$(date +%s)
exec > >(tee -a "$OUT/session.log") 2>&1
TEE=$!
# The log's last lines are written before the command returns; the work folder goes.
trap 'exec 1>&- 2>&-; wait "$TEE" 2>/dev/null; rm -rf "$W"' EXIT
# Progress goes to stderr, so that a step's stdout (its JSON) stays clean.
say() { printf '[%4ds] %s\n' $(($(date +%s) - T0)) "$*" >&2; }
FAILED=0
die() {
  say "ABORT: $*"
  exit 3
}
SUMMARY=()
# step NAME CAP_SECONDS COMMAND...: runs under timeout min(CAP, what is left of the budget).
step() {
  local name=$1 cap=$2 left
  shift 2
  left=$((BUDGET - ($(date +%s) - T0)))
  [ "$cap" -lt "$left" ] || cap=$left
  if [ "$cap" -lt 10 ]; then
    say "skip $name: budget spent"
    SUMMARY+=("$name skipped")
    return 99
  fi
  say "start $name (timeout ${cap}s)"
  local s=$(date +%s) rc
  timeout -k 5 "$cap" "$@"
  rc=$?
  say "end $name: rc $rc, $(($(date +%s) - s)) s"
  SUMMARY+=("$name rc=$rc $(($(date +%s) - s))s")
  [ "$rc" = 0 ] || FAILED=1
  return $rc
}
say "gpu_session: dry=$DRY budget=${BUDGET}s out=$OUT work=$W repo=$(pwd) $(git rev-parse --short HEAD 2>/dev/null)"

# 1. Unpack.
[ -s .gpu/deno.xz ] && [ -s .gpu/deno_dir.tar.xz ] ||
  die ".gpu/deno.xz or .gpu/deno_dir.tar.xz missing: run docs/bench/gpu_prepare.sh here and carry .gpu"
if [ "$DRY" != 1 ] && ! ldconfig -p | grep -q 'libvulkan\.so\.1'; then
  ls .gl/*.deb >/dev/null 2>&1 || die "no libvulkan.so.1 and no .gl/*.deb: carry .gl (gpu_prepare.sh)"
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
xz -dc .gpu/deno.xz >"$W/deno" && chmod +x "$W/deno" || die "cannot unpack .gpu/deno.xz"
[ ! -s .gpu/deno.sha256 ] || [ "$(sha256sum "$W/deno" | cut -d' ' -f1)" = "$(cat .gpu/deno.sha256)" ] ||
  die "the unpacked deno does not match .gpu/deno.sha256"
mkdir -p "$W/deno_dir" "$W/xdg"
xz -dc .gpu/deno_dir.tar.xz | tar -C "$W/deno_dir" -xf - || die "cannot unpack .gpu/deno_dir.tar.xz"
mkdir -m 700 "$W/run"
export DENO_DIR="$W/deno_dir" XDG_CACHE_HOME="$W/xdg" XDG_RUNTIME_DIR="$W/run" NO_COLOR=1 \
  DENO_NO_UPDATE_CHECK=1
DENO="$W/deno"
RUN=("$DENO" run --cached-only --unstable-webgpu -A)
if [ "$DRY" != 1 ]; then
  for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json \
    /etc/vulkan/icd.d/nvidia_icd.json; do
    if [ -f "$icd" ]; then
      export VK_DRIVER_FILES="$icd"
      break
    fi
  done
  egl=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  [ ! -f "$egl" ] || export __EGL_VENDOR_LIBRARY_FILENAMES="$egl"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv ||
    true
fi
say "deno $("$DENO" --version | head -1 | cut -d' ' -f2); VK_DRIVER_FILES=${VK_DRIVER_FILES:-unset}"

# 2. The adapter, as the tasks see it.
cat >"$W/probe.ts" <<'EOF'
const adapter = await navigator.gpu?.requestAdapter({ powerPreference: "high-performance" });
if (!adapter) {
  console.log("none");
  Deno.exit(1);
}
const i = adapter.info;
console.log([i.vendor, i.architecture, i.device, i.description].join(" | "));
EOF
adapter="$(timeout 60 "${RUN[@]}" "$W/probe.ts" 2>&1)" ||
  die "Deno's WebGPU found no adapter ($adapter). Check: ldconfig -p | grep vulkan; ls /usr/local/nvidia/share/vulkan/icd.d; VK_DRIVER_FILES=${VK_DRIVER_FILES:-unset}"
say "adapter: $adapter"
if [ "$DRY" != 1 ] && ! grep -qi nvidia <<<"$adapter"; then
  die "the adapter is not NVIDIA's (a software fallback?): $adapter; VK_DRIVER_FILES=${VK_DRIVER_FILES:-unset}"
fi

# Shapes. The 135M step at 4 pairs x 256 has 2048 token rows; its projections (q/o 576x576,
# k/v 192x576, gate/up 1536x576, down 576x1536) run forward (NT) and in both backward products.
if [ "$DRY" = 1 ]; then
  SIZES=64
  ROW_FLAGS=()
  PY=(/usr/bin/python3 docs/bench/pytorch_dpo_step.py --device cpu --name "0.8M d128 L4" --hidden 128
    --layers 4 --heads 4 --kv-heads 2 --ffn 344 --vocab 256 --pairs 16 --seq-len 64 --steps 1 --warmup 1)
  STEPS=1
  TESTS=(tests/gpu/rope_test.ts tests/model/config_test.ts)
else
  SIZES=1024,2048,4096
  ROW_FLAGS=(--large --large-rows 0)
  PY=(python3 docs/bench/pytorch_dpo_step.py --steps 10 --warmup 3)
  STEPS=10
  TESTS=(tests/gpu/ tests/model/)
fi
KEYS=()
for s in ${SIZES//,/ }; do KEYS+=("NT ${s}x${s}x${s}" "NN ${s}x${s}x${s}" "TN ${s}x${s}x${s}"); done
if [ "$DRY" != 1 ]; then
  for nk in 576x576 192x576 1536x576 576x1536; do
    n=${nk%x*} k=${nk#*x}
    KEYS+=("NT 2048x${n}x${k}" "NN 2048x${k}x${n}" "TN ${n}x${k}x2048")
  done
  KEYS+=("attention 8x256x9x3x64" "lm_head 2048x49152x576 chunk<=2048")
fi
SHAPES="$(IFS=,; echo "${KEYS[*]}")"
export DPO_TUNING_CACHE="$OUT/tuning.json"

# 3. PyTorch first: its JSON is merged into the bench row.
step pytorch 75 env PYTHONUNBUFFERED=1 "${PY[@]}" >"$OUT/pytorch.json"
[ -s "$OUT/pytorch.json" ] && cat "$OUT/pytorch.json" || rm -f "$OUT/pytorch.json"

# 4. Tuning on the bench's shapes, so the bench times tuned kernels.
step tune 90 "${RUN[@]}" tasks/tune.ts --shapes "$SHAPES" --json >"$OUT/tune.json"

# 5. The bench. A second warm-up step runs the kernels the first may have tuned.
PYJ=()
[ ! -s "$OUT/pytorch.json" ] || PYJ=(--pytorch-json "$OUT/pytorch.json")
step bench 180 "${RUN[@]}" tasks/bench.ts --json --sizes "$SIZES" --steps "$STEPS" --warmup 2 \
  "${ROW_FLAGS[@]}" "${PYJ[@]}" >"$OUT/bench.json"

# 6. The GPU tests, both layout settings at once (CI=true: a missing adapter fails, never skips;
# the hardware run covers every tiled candidate).
left=$((BUDGET - ($(date +%s) - T0)))
cap=$((left < 120 ? left : 120))
if [ "$cap" -ge 10 ]; then
  say "start tests auto and hardware, in parallel (timeout ${cap}s)"
  t=$(date +%s)
  CI=true DENO_JOBS=4 DPO_KERNEL_LAYOUTS=auto timeout -k 5 "$cap" "$DENO" test --cached-only \
    --no-check --unstable-webgpu -A --parallel "${TESTS[@]}" >"$OUT/tests-auto.log" 2>&1 &
  a=$!
  CI=true DENO_JOBS=4 DPO_KERNEL_LAYOUTS=hardware DPO_TEST_ALL_TILINGS=1 timeout -k 5 "$cap" \
    "$DENO" test --cached-only --no-check --unstable-webgpu -A --parallel "${TESTS[@]}" \
    >"$OUT/tests-hardware.log" 2>&1 &
  h=$!
  wait $a
  ra=$?
  wait $h
  rh=$?
  say "end tests: auto rc $ra, hardware rc $rh, $(($(date +%s) - t)) s"
  SUMMARY+=("tests-auto rc=$ra" "tests-hardware rc=$rh $(($(date +%s) - t))s")
  [ "$ra$rh" = 00 ] || FAILED=1
else
  SUMMARY+=("tests skipped")
fi
for m in auto hardware; do
  [ -f "$OUT/tests-$m.log" ] || continue
  say "tests-$m: $(grep -E '^(ok|FAILED) \|' "$OUT/tests-$m.log" | tail -1)"
  grep -E '=> |^error' "$OUT/tests-$m.log" | head -20
done

# 7. The other large rows, in what time is left.
if [ "$DRY" != 1 ]; then
  step bench-extra 150 "${RUN[@]}" tasks/bench.ts --json --sizes 1024 --steps 3 --large \
    --large-rows 1,2,3 >"$OUT/bench-extra.json"
fi

# Summary: the figures the issue asks for.
say "steps: $(IFS=';'; echo "${SUMMARY[*]}")"
for f in "$OUT/bench.json" "$OUT/bench-extra.json"; do
  [ -s "$f" ] || continue
  python3 - "$f" <<'EOF' || true
import json, sys
b = json.load(open(sys.argv[1]))
print(f"{sys.argv[1]}: adapter {b['adapter']}")
for m in b.get("matmul_variants", []):
    print(f"  matmul {m['variant']} {m['m']}^3 {m['tiling']}: {m['gflops']:.0f} GFLOP/s")
for r in b.get("train_details", []) + b.get("large", []):
    t = r.get("tokens_per_s")
    py = r.get("pytorch_tokens_per_s")
    ratio = f", pytorch {py:.0f} tokens/s, ours/pytorch {t / py:.3f}" if py and t else ""
    ck = " ckpt" if r["gradient_checkpointing"] else ""
    print(f"  {r['name']} {r['pairs']}x{r['seq_len']}{ck}: "
          f"{'-' if t is None else f'{t:.0f}'} tokens/s{ratio}; activations "
          f"{r['bytes'].get('activations', 0) / 1e9:.2f} GB")
EOF
done
ls -la "$OUT"
say "gpu_session: done in $(($(date +%s) - T0)) s; $([ $FAILED = 0 ] && echo "every step passed" ||
  echo "a step FAILED (see above)")"
exit $FAILED
