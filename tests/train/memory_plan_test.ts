/**
 * The memory plan against real allocations: the bench's measured bytes by role (the same step the
 * bench times) and a frozen model's, on the CPU backend (exact sizes) and on WebGPU (aligned
 * blocks, kernel scratch), so the formula cannot drift from the code that allocates.
 */

import assert from "node:assert/strict";
import { CpuBackend } from "../../src/cpu/backend.ts";
import {
  benchModelConfig,
  benchStep,
  STEP_BENCH_CONFIGS,
  type StepBenchConfig,
} from "../../src/train/bench.ts";
import { LlamaModel } from "../../src/model/llama.ts";
import { EXACT_GRANULARITY, type PlanInput, planMemory } from "../../src/train/memory_plan.ts";
import { fitSuggestions, parseBytes, planFits } from "../../src/train/memory_fit.ts";
import { granularityOf } from "../../src/pipeline/memory.ts";
import { moduleShape } from "../../src/model/lora.ts";
import { halfLayouts } from "../../src/model/params.ts";
import { shapeConfig } from "../../src/train/model_shapes.ts";
import { gpuMissing, needsTest } from "../helpers.ts";
import { GpuBackend } from "../../src/gpu/backend.ts";
import type { Backend } from "../../src/backend/mod.ts";

/** Small enough for the CPU, with N > 64 rows so the GPU's rmsnorm backward needs its scratch. */
const SMALL: StepBenchConfig = {
  name: "tiny",
  hidden: 64,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  ffn: 96,
  vocab: 128,
  pairs: 2,
  seqLen: 48,
};

const benchInput = (c: StepBenchConfig, liveReference: boolean): PlanInput => ({
  config: benchModelConfig(c),
  rows: 2 * c.pairs,
  seqLen: c.seqLen,
  train: true,
  liveReference,
  gradientCheckpointing: c.gradientCheckpointing,
});

async function assertBenchMatches(backend: () => Promise<Backend>, c: StepBenchConfig) {
  for (const liveReference of [false, true]) {
    const b = await backend();
    const measured = await benchStep(b, c, { steps: 1, liveReference });
    const plan = planMemory(benchInput(c, liveReference), granularityOf(b));
    b.destroy();
    assert.deepEqual(plan.bytes, measured.bytes, `${c.name}, live reference ${liveReference}`);
  }
}

Deno.test("the plan equals the bench's measured bytes by role on the CPU backend", async () => {
  await assertBenchMatches(() => Promise.resolve(new CpuBackend("f32")), SMALL);
  await assertBenchMatches(
    () => Promise.resolve(new CpuBackend("f32")),
    { ...SMALL, gradientCheckpointing: true },
  );
});

Deno.test("the plan of a frozen forward-only model equals its allocation", () => {
  const backend = new CpuBackend("f32");
  const config = benchModelConfig(SMALL);
  new LlamaModel(backend, config, { maxBatch: 6, maxSeqLen: 40, trainable: false });
  const plan = planMemory({ config, rows: 6, seqLen: 40, train: false });
  assert.deepEqual(plan.bytes, backend.bytesByRole());
  assert.equal(plan.weights.trainable, 0);
  assert.equal(plan.bytes.gradients + plan.bytes.optimizer, 0);
});

needsTest(gpuMissing, {
  name: "the plan equals the bench's measured bytes by role on WebGPU, for the bench's configs",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    // The bench's first config (its second takes minutes on llvmpipe and allocates alike).
    for (const c of [SMALL, { ...SMALL, gradientCheckpointing: true }, STEP_BENCH_CONFIGS[0]]) {
      await assertBenchMatches(() => GpuBackend.create(), c);
    }
  },
});

Deno.test("LoRA trains r*(in+out) per target module; the frozen base is 2 bytes in bf16", () => {
  const config = shapeConfig("Qwen2.5-1.5B");
  const targets = ["q_proj", "k_proj", "v_proj", "o_proj"] as const;
  const base: PlanInput = { config, rows: 4, seqLen: 1024, train: true, frozenDtype: "bf16" };
  const lora = planMemory({ ...base, lora: { r: 16, targetModules: targets, dropout: 0 } });
  // Hand count: q (1536->1536), k, v (1536->256), o (1536->1536), 28 layers, r = 16.
  const adapters = 28 * 16 * ((1536 + 1536) + 2 * (1536 + 256) + (1536 + 1536));
  assert.equal(lora.weights.trainable, 4 * adapters);
  assert.equal(lora.bytes.gradients, 4 * adapters);
  // Qwen2.5-1.5B's matrices at 2 bytes, its norms and biases widened to f32 (src/model/params.ts).
  const { matrices, vectors } = halfLayouts(config);
  // Norms 28 * 2 * 1536 + 1536 and q, k, v biases 28 * (1536 + 2 * 256); no padding at this shape.
  assert.equal(vectors.total, 28 * (2 * 1536 + 1536 + 2 * 256) + 1536);
  assert.equal(matrices.total + vectors.total, 1543714304);
  assert.equal(lora.weights.frozen, 2 * matrices.total + 4 * vectors.total);
  assert.equal(
    targets.reduce((n, m) => n + 16 * (moduleShape(config, m).in + moduleShape(config, m).out), 0),
    adapters / 28,
  );
  // Full fine-tuning holds no frozen weights and 16 bytes per parameter before activations (and
  // the optimizer's 16 hyper-parameters, its norm, 1024 norm partials and 512 carried sums).
  const full = planMemory(base);
  assert.equal(full.weights.frozen, 0);
  assert.equal(full.totalWithoutActivations - full.bytes.inputs, 16 * 1543714304 + 4 * 1553);
  // The one-buffer limit holds single tensors: arenas span buffers, the 151936 x 1536 embedding
  // does not (0.93 GB at f32); the bf16 base's largest tensor is the same at 2 bytes.
  assert.deepEqual(full.largest, {
    role: "parameters",
    name: "policy parameters: model.embed_tokens.weight",
    bytes: 151936 * 1536 * 4,
  });
  assert.equal(full.buffers.find((b) => b.name === "policy parameters")!.bytes, 4 * 1543714304);
  assert.deepEqual(lora.largest.name, "policy parameters (frozen): model.embed_tokens.weight");
  assert.equal(lora.largest.bytes, 151936 * 1536 * 2);
});

Deno.test("gradient checkpointing keeps every layer's input and one layer's other tensors", () => {
  const config = benchModelConfig(SMALL);
  const input: PlanInput = { config, rows: 4, seqLen: 48, train: true };
  const full = planMemory(input, EXACT_GRANULARITY);
  const ckpt = planMemory({ ...input, gradientCheckpointing: true }, EXACT_GRANULARITY);
  const { hiddenSize: C, intermediateSize: F, numHeads: H, numKvHeads: Hkv, headDim: D } = config;
  const N = 4 * 48;
  const perLayer = 4 * (3 * N * C + 2 * N + N * H * D * 2 + 2 * N * Hkv * D + 4 * H * 48 * 2 +
    3 * N * F);
  assert.equal(full.bytes.activations - ckpt.bytes.activations, (config.numLayers - 1) * perLayer);
});

Deno.test("fitSuggestions names flags each of which makes the plan fit", () => {
  const config = shapeConfig("SmolLM2-135M");
  const input: PlanInput = { config, rows: 16, seqLen: 1024, train: true };
  const total = planMemory(input).total;
  const limits = { maxMemory: Math.floor(total * 0.6) };
  assert.equal(planFits(planMemory(input), limits), false);
  const s = fitSuggestions(input, EXACT_GRANULARITY, limits, {
    rowsPerExample: 2,
    usePeft: true,
    gradientCheckpointing: true,
  });
  const flags = s.map((x) => x.flags.split(" ")[0]);
  assert.ok(flags.includes("--per-device-train-batch-size"), flags.join());
  assert.ok(flags.includes("--max-length"), flags.join());
  for (const x of s) assert.ok(x.total <= limits.maxMemory, x.flags);
});

Deno.test("parseBytes reads units and refuses what is not a byte count", () => {
  assert.equal(parseBytes("8GiB"), 8 * 2 ** 30);
  assert.equal(parseBytes("512 MiB"), 512 * 2 ** 20);
  assert.equal(parseBytes("16GB"), 16e9);
  assert.equal(parseBytes("1000"), 1000);
  assert.throws(() => parseBytes("lots"), /not a byte count/);
  assert.throws(() => parseBytes("-1GiB"), /not a byte count/);
});

Deno.test("activations grow with T, not T^2: no attention buffer is (B, H, T, T)", () => {
  const config = shapeConfig("SmolLM2-135M");
  for (const gradientCheckpointing of [false, true]) {
    const at = (seqLen: number) =>
      planMemory({ config, rows: 8, seqLen, train: true, gradientCheckpointing }).bytes
        .activations;
    // Doubling T at most doubles the activations (the logits chunk and rope tables grow less).
    assert.ok(at(1024) <= 2 * at(512), `${at(1024)} > 2 * ${at(512)}`);
  }
});
