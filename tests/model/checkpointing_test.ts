/**
 * Gradient checkpointing (`gradientCheckpointing`): the backward recomputes each layer's
 * activations from its saved input, so training gives the bits of a run that kept them, on both
 * backends, while holding fewer activation bytes; with LoRA adapters too (their dropout masks are
 * drawn again in the recompute and must be the same masks).
 */

import { deepStrictEqual, ok } from "node:assert/strict";
import { gpuTest, randomArray } from "../helpers.ts";
import type { Backend } from "../../src/backend/mod.ts";
import { CpuBackend } from "../../src/cpu/backend.ts";
import { configFromHf } from "../../src/model/config.ts";
import { LlamaModel } from "../../src/model/llama.ts";
import { initWeights } from "../../src/model/init.ts";
import { DeviceOptimizer } from "../../src/train/optimizer.ts";
import { Trainer } from "../../src/train/trainer.ts";
import { resolveLossSpec } from "../../src/backend/losses.ts";
import { resolveTargetModules } from "../../src/model/lora.ts";

const CONFIG = configFromHf({
  architectures: ["Qwen2ForCausalLM"],
  model_type: "qwen2",
  vocab_size: 97,
  hidden_size: 32,
  intermediate_size: 40,
  num_hidden_layers: 3,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_theta: 10000,
  tie_word_embeddings: true,
  hidden_act: "silu",
  max_position_embeddings: 64,
});

/** LoRA on every linear layer, with dropout, as `--use-peft --lora-target-modules all-linear`. */
const LORA = { r: 4, alpha: 8, dropout: 0.1, targetModules: resolveTargetModules("all-linear") };

/**
 * Trained weights after two DPO steps (the adapters' under `lora`), and the activation bytes the
 * model allocated.
 */
async function train(backend: Backend, gradientCheckpointing: boolean, lora = false) {
  const B = 4, T = 13;
  const before = backend.bytesByRole().activations;
  const model = new LlamaModel(backend, CONFIG, {
    maxBatch: B,
    maxSeqLen: T,
    gradientCheckpointing,
    ...(lora ? { lora: LORA } : {}),
  });
  const activations = backend.bytesByRole().activations - before;
  model.params.writeAll(initWeights(model.layout, { seed: 7 }));
  if (lora) {
    // B nonzero, so the adapters shape the forward from the first step.
    const adapters = model.lora!.params;
    adapters.writeAll(
      new Map(
        adapters.layout.slots.map((e) => [e.name, {
          shape: e.shape,
          data: randomArray(e.size, e.offset + 3, 0.2),
        }]),
      ),
      { source: "test" },
    );
  }
  const { layout } = model.trainable;
  const optimizer = new DeviceOptimizer(backend, layout, { lr: 1e-2, schedule: "constant" });
  const objective = { kind: "preference", spec: resolveLossSpec({ lossType: "sigmoid" }) } as const;
  const trainer = new Trainer(model, optimizer, objective);
  const inputIds = Int32Array.from(randomArray(B * T, 9), (x) => Math.floor((x + 1) / 2 * 97));
  const targets = Int32Array.from({ length: B * T }, (_, i) => {
    const t = i % T;
    return t >= 4 && t + 1 < T ? inputIds[i + 1] : -1;
  });
  const micro = [{
    batch: { inputIds, targets, rows: B, T, tokenCounts: new Int32Array(B).fill(T - 5) },
    referenceLogps: Float32Array.from([-40, -41, -39, -42]),
  }];
  trainer.step(micro);
  trainer.step(micro);
  const weights = Array.from(await (lora ? model.lora!.params : model.params).readArena());
  return { weights, activations };
}

async function checkBackend(backend: Backend, lora = false): Promise<void> {
  const kept = await train(backend, false, lora);
  const recomputed = await train(backend, true, lora);
  deepStrictEqual(recomputed.weights, kept.weights);
  ok(
    recomputed.activations < kept.activations * 0.7,
    `checkpointing holds ${recomputed.activations} activation bytes, without ${kept.activations}`,
  );
}

Deno.test("gradient checkpointing trains bit-identically with fewer activations (CPU)", async () => {
  await checkBackend(new CpuBackend("f32"));
});

gpuTest(
  "gradient checkpointing trains bit-identically with fewer activations (WebGPU)",
  checkBackend,
);

Deno.test("gradient checkpointing with LoRA adapters trains bit-identically (CPU)", async () => {
  await checkBackend(new CpuBackend("f32"), true);
});

gpuTest(
  "gradient checkpointing with LoRA adapters trains bit-identically (WebGPU)",
  (gpu) => checkBackend(gpu, true),
);
