/**
 * The memory plan of LoRA runs against real allocations, role for role: a LoRA DPO step (with and
 * without dropout and gradient checkpointing, with an existing adapter's frozen reference copy)
 * and a forward-only model with a frozen adapter (precompute --adapter), on a bf16 or an f32 base,
 * on the CPU (exact sizes) and on WebGPU (aligned blocks, kernel scratch).
 */

import assert from "node:assert/strict";
import { gpuMissing, needsTest } from "../helpers.ts";
import type { Backend } from "../../src/backend/mod.ts";
import { resolveLossSpec } from "../../src/backend/losses.ts";
import { CpuBackend } from "../../src/cpu/backend.ts";
import { GpuBackend } from "../../src/gpu/backend.ts";
import { LlamaModel } from "../../src/model/llama.ts";
import { initLoraWeights, type LoraOptions, resolveTargetModules } from "../../src/model/lora.ts";
import { benchModelConfig } from "../../src/train/bench.ts";
import { type PlanInput, planMemory, type WeightDtype } from "../../src/train/memory_plan.ts";
import { DeviceOptimizer } from "../../src/train/optimizer.ts";
import { Trainer } from "../../src/train/trainer.ts";
import { granularityOf } from "../../src/pipeline/memory.ts";

// N = 4 x 40 = 160 rows (> 64, so the GPU's rmsnorm backward allocates its scratch).
const config = benchModelConfig({
  name: "tiny",
  hidden: 64,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  ffn: 96,
  vocab: 128,
  pairs: 2,
  seqLen: 40,
});
const rows = 4, seqLen = 40;

interface Case {
  train: boolean;
  dropout: number;
  gradientCheckpointing: boolean;
  referenceAdapter: boolean;
  frozenDtype: WeightDtype;
}

/** Allocates what the stage would for `c` (one DPO step when training); returns the bytes. */
function allocate(backend: Backend, c: Case): Record<string, number> {
  const lora: LoraOptions = {
    r: 4,
    alpha: 8,
    dropout: c.dropout,
    targetModules: resolveTargetModules(["q_proj", "v_proj", "down_proj"]),
  };
  const model = new LlamaModel(backend, config, {
    maxBatch: rows,
    maxSeqLen: seqLen,
    lora,
    trainable: c.train,
    gradientCheckpointing: c.gradientCheckpointing,
    frozenDtype: c.frozenDtype,
  });
  const adapter = initLoraWeights(model.lora!.layout, 1);
  if (c.referenceAdapter) model.lora!.setReference(adapter);
  if (!c.train) return backend.bytesByRole();
  const optimizer = new DeviceOptimizer(backend, model.trainable.layout, { lr: 1e-3 });
  const objective = { kind: "preference", spec: resolveLossSpec({ lossType: "sigmoid" }) } as const;
  const trainer = new Trainer(model, optimizer, objective, model.withAdapters("none"), 5);
  const inputIds = Int32Array.from({ length: rows * seqLen }, (_, i) => (i * 7) % 128);
  const targets = Int32Array.from(
    { length: rows * seqLen },
    (_, i) => i % seqLen >= 8 && i % seqLen + 1 < seqLen ? inputIds[i + 1] : -1,
  );
  const batch = { inputIds, targets, rows, T: seqLen, tokenCounts: new Int32Array(rows).fill(31) };
  trainer.step([{ batch }]);
  return backend.bytesByRole();
}

const CASES: Case[] = [];
for (const frozenDtype of ["bf16", "f32"] as const) {
  for (
    const [dropout, gradientCheckpointing, referenceAdapter] of [
      [0, false, false],
      [0.1, false, true],
      [0.1, true, false],
      [0, true, true],
    ] as const
  ) {
    CASES.push({ train: true, dropout, gradientCheckpointing, referenceAdapter, frozenDtype });
  }
  for (const dropout of [0, 0.1]) {
    const forward = { dropout, gradientCheckpointing: false, referenceAdapter: false };
    CASES.push({ train: false, ...forward, frozenDtype });
  }
}

async function assertPlansMatch(create: () => Promise<Backend>) {
  for (const c of CASES) {
    const backend = await create();
    try {
      const got = allocate(backend, c);
      const input: PlanInput = {
        config,
        rows,
        seqLen,
        train: c.train,
        gradientCheckpointing: c.gradientCheckpointing,
        frozenDtype: c.frozenDtype,
        lora: {
          r: 4,
          targetModules: ["q_proj", "v_proj", "down_proj"],
          dropout: c.dropout,
          referenceAdapter: c.referenceAdapter,
        },
      };
      const plan = planMemory(input, granularityOf(backend));
      assert.deepEqual(plan.bytes, got, `${backend.adapterName}: ${JSON.stringify(c)}`);
    } finally {
      backend.destroy();
    }
  }
}

Deno.test("the plan of LoRA runs equals their allocation on the CPU backend", async () => {
  await assertPlansMatch(() => Promise.resolve(new CpuBackend("f32")));
});

needsTest(gpuMissing, {
  name: "the plan of LoRA runs equals their allocation on WebGPU",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => await assertPlansMatch(() => GpuBackend.create()),
});
