/**
 * `deno task bench`: matmul GFLOP/s and DPO training-step throughput on the chosen device.
 * Human table on stderr; `--json` prints one JSON object on stdout.
 */

import { parseFlags, runMain, UsageError } from "./_cli.ts";
import { GpuBackend } from "../src/gpu/backend.ts";
import { CpuBackend } from "../src/cpu/backend.ts";
import { measureMatmul } from "../src/gpu/matmul_bench.ts";
import {
  benchStep,
  LARGE_BENCH_CONFIGS,
  mergePytorchStep,
  parsePytorchStep,
  pytorchMatches,
  type PytorchStep,
  STEP_BENCH_CONFIGS,
  type StepBenchConfig,
  type StepBenchResult,
} from "../src/train/bench.ts";
import type { Backend } from "../src/backend/mod.ts";
import { hasWebGpu } from "../src/gpu/device.ts";
import { chosenMatmulName } from "../src/gpu/matmul_policy.ts";
import { KERNEL_FLAGS, kernelOptions } from "./_kernels.ts";

/** Environment variable naming the PyTorch figure's JSON (as --pytorch-json). */
const PYTORCH_JSON_ENV = "DPO_BENCH_PYTORCH_JSON";

const flags = parseFlags("bench", "Measures matmul and training-step throughput.", {
  device: { type: "string", default: "webgpu", choices: ["webgpu", "cpu"], help: "backend" },
  steps: {
    type: "number",
    default: 2,
    help: "timed training steps per config (after 1 warm-up); 0 allocates only and reports bytes",
  },
  sizes: {
    type: "string",
    default: "",
    help: "square matmul sizes (default 1024; 1024,2048,4096 on hardware layouts)",
  },
  large: {
    type: "boolean",
    default: false,
    help: "also the SmolLM2-135M and Qwen2.5-0.5B shapes (slow on software adapters)",
  },
  "gradient-checkpointing": {
    type: "boolean",
    default: false,
    help:
      "recompute layer activations in the backward in the default rows (large rows set their own)",
  },
  "large-rows": {
    type: "string",
    default: "",
    help: "with --large, only these rows (0-based, comma-separated; default all: " +
      LARGE_BENCH_CONFIGS.map((c, i) =>
        `${i} ${c.name} ${c.pairs}x${c.seqLen}${c.gradientCheckpointing ? " ckpt" : ""}`
      ).join(", ") + ")",
  },
  warmup: {
    type: "number",
    default: 1,
    help: "untimed warm-up steps per config (the first tunes new shapes, a second runs them)",
  },
  "pytorch-json": {
    type: "string",
    default: "",
    help: `docs/bench/pytorch_dpo_step.py's output, recorded in its row as pytorch_tokens_per_s ` +
      `(env ${PYTORCH_JSON_ENV})`,
  },
  json: { type: "boolean", default: false, help: "print one JSON object on stdout" },
  ...KERNEL_FLAGS,
});

/** Reads and checks the PyTorch figure of --pytorch-json (or the environment), if any. */
async function readPytorch(): Promise<PytorchStep | undefined> {
  const path = String(flags.pytorchJson || Deno.env.get(PYTORCH_JSON_ENV) || "");
  if (!path) return undefined;
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    throw new UsageError(`--pytorch-json: cannot read ${path}: ${(error as Error).message}`);
  }
  try {
    return parsePytorchStep(JSON.parse(text));
  } catch (error) {
    throw new UsageError(`--pytorch-json: ${path}: ${(error as Error).message}`);
  }
}

const log = (s: string) => console.error(s);
const mib = (b: number) => (b / 2 ** 20).toFixed(2);

async function newBackend(): Promise<Backend> {
  if (flags.device === "cpu") return new CpuBackend("f32");
  if (!await hasWebGpu()) {
    throw new UsageError(
      "no WebGPU adapter: install mesa-vulkan-drivers (software) or a GPU driver, or pass --device cpu",
    );
  }
  return await GpuBackend.create(await kernelOptions(flags));
}

await runMain(async () => {
  const warmup = Number(flags.warmup);
  if (!(warmup >= 1) || !Number.isInteger(warmup)) {
    throw new UsageError(`--warmup: expected a whole number >= 1, got ${flags.warmup}`);
  }
  const largeRows = String(flags.largeRows || "")
    ? String(flags.largeRows).split(",").map((s) => {
      const i = Number(s);
      if (!Number.isInteger(i) || !LARGE_BENCH_CONFIGS[i] || s.trim() === "") {
        throw new UsageError(
          `--large-rows: "${s}" is not a row index 0..${LARGE_BENCH_CONFIGS.length - 1}`,
        );
      }
      return LARGE_BENCH_CONFIGS[i];
    })
    : LARGE_BENCH_CONFIGS;
  const pytorch = await readPytorch();
  const timedConfigs = [...STEP_BENCH_CONFIGS, ...(flags.large ? largeRows : [])];
  if (pytorch && !timedConfigs.some((c) => pytorchMatches(c, pytorch))) {
    throw new UsageError(
      `--pytorch-json: no bench row is "${pytorch.name}" at ${pytorch.pairs} pairs x ` +
        `${pytorch.seq_len} without checkpointing (large rows need --large)`,
    );
  }
  const probe = await newBackend();
  const hardware = probe instanceof GpuBackend && probe.ctx.layouts === "hardware";
  const sizes = String(flags.sizes || (hardware ? "1024,2048,4096" : "1024")).split(",").map(
    Number,
  );
  if (sizes.some((s) => !(s > 0))) throw new UsageError(`--sizes: bad list "${flags.sizes}"`);
  const adapter = probe.adapterName;
  log(`adapter: ${adapter}`);
  const matmul: Array<
    { m: number; n: number; k: number; variant: string; gflops: number; tiling: string }
  > = [];
  if (probe instanceof GpuBackend) {
    for (const s of sizes) {
      for (
        const [variant, transA, transB] of [["NT", false, true], ["NN", false, false], [
          "TN",
          true,
          false,
        ]] as const
      ) {
        const iterations = Math.max(2, Math.round(2e9 / (2 * s ** 3)));
        const gflops = await measureMatmul(probe.ctx, s, s, s, { transA, transB, iterations });
        const tiling = chosenMatmulName(probe.ctx, s, s, s, transA, transB);
        matmul.push({ m: s, n: s, k: s, variant, gflops, tiling });
        log(`matmul ${variant} ${s}³ (${tiling}): ${gflops.toFixed(2)} GFLOP/s`);
      }
    }
  }
  probe.destroy();
  const step = async (c: StepBenchConfig, liveReference = false) => {
    const backend = await newBackend();
    const steps = Number(flags.steps);
    if (!(steps >= 0) || !Number.isInteger(steps)) {
      throw new UsageError(`--steps: expected a whole number >= 0, got ${flags.steps}`);
    }
    const r = await benchStep(backend, c, { steps, liveReference, warmup });
    backend.destroy();
    const timing = r.seconds_per_step === null
      ? "allocated only (--steps 0)"
      : `${r.seconds_per_step.toFixed(2)} s/step, ${r.tokens_per_s!.toFixed(0)} tokens/s, ` +
        `${r.gflops!.toFixed(2)} effective GFLOP/s; ${r.dispatches_per_step} dispatches, ` +
        `${r.submits_per_step} submits, ${r.readbacks_per_step} readbacks per step`;
    log(
      `train ${r.name}${liveReference ? " (live reference)" : ""} ` +
        `(${(r.params / 1e6).toFixed(2)}M params, ${r.pairs} pairs x ${r.seq_len}, ` +
        `${r.tokens_per_step} tokens/step, gradient checkpointing ` +
        `${r.gradient_checkpointing ? "on" : "off"}): ${timing}; MiB ` +
        Object.entries(r.bytes).map(([k, v]) => `${k} ${mib(v)}`).join(", "),
    );
    return r;
  };
  const train: StepBenchResult[] = [];
  const checkpointing = Boolean(flags.gradientCheckpointing);
  for (const c of STEP_BENCH_CONFIGS) {
    train.push(await step({ ...c, gradientCheckpointing: checkpointing }));
  }
  // The point of the cache: no reference weights in memory and no reference forward per step.
  const live = await step(STEP_BENCH_CONFIGS[0], true);
  const cached = train[0];
  const dpoReference = {
    config: cached.name,
    cache: { seconds_per_step: cached.seconds_per_step, bytes: cached.bytes },
    live: { seconds_per_step: live.seconds_per_step, bytes: live.bytes },
  };
  const large: StepBenchResult[] = [];
  if (flags.large) { for (const c of largeRows) large.push(await step(c)); }
  if (pytorch && Number(flags.steps) > 0) {
    const row = mergePytorchStep([...train, ...large], pytorch);
    if (row) {
      log(
        `pytorch ${row.name} ${row.pairs} pairs x ${row.seq_len}: ` +
          `${pytorch.tokens_per_s.toFixed(0)} tokens/s; ours ${row.tokens_per_s!.toFixed(0)} ` +
          `(${(row.tokens_per_s! / pytorch.tokens_per_s).toFixed(3)}x)`,
      );
    }
  }
  if (flags.json) {
    // The `train` rows keep the schema; details go under `train_details`.
    console.log(JSON.stringify({
      adapter,
      device: flags.device,
      matmul: matmul.filter((m) => m.variant === "NT").map(({ m, n, k, gflops, tiling }) => ({
        m,
        n,
        k,
        gflops,
        tiling,
      })),
      matmul_variants: matmul,
      train: train.map(({ name, params, tokens_per_s, gflops }) => ({
        name,
        params,
        tokens_per_s,
        gflops,
      })),
      train_details: train,
      dpo_reference: dpoReference,
      ...(large.length ? { large } : {}),
    }));
  }
});
