/**
 * Tensors larger than the adapter's largest storage binding (src/gpu/split.ts): with the binding
 * limit lowered far below the model's tied embedding, its parameter arenas and its attention
 * scores, training steps and attention give the bits of the unsplit run, and the split paths
 * really ran (their pipelines were compiled).
 */

import { deepStrictEqual as assertEquals, strictEqual } from "node:assert/strict";
import { gpuMissing, needsTest, randomArray } from "../helpers.ts";
import { GpuBackend } from "../../src/gpu/backend.ts";
import type { Backend } from "../../src/backend/mod.ts";
import { configFromHf } from "../../src/model/config.ts";
import { LlamaModel } from "../../src/model/llama.ts";
import { initWeights } from "../../src/model/init.ts";
import { DeviceOptimizer } from "../../src/train/optimizer.ts";
import { Trainer } from "../../src/train/trainer.ts";
import { resolveLossSpec } from "../../src/backend/losses.ts";

// Embedding 250 x 128 = 32,000 elements: two pieces at a 16,384-element binding; the arenas
// (about 180k elements) eight; every activation fits.
const CONFIG = configFromHf({
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  vocab_size: 250,
  hidden_size: 128,
  intermediate_size: 160,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: true,
  hidden_act: "silu",
  max_position_embeddings: 64,
});
const LIMIT_BYTES = 16384 * 4;

/** Weights after two DPO steps of the tiny tied model on `backend`, and its log-probs. */
async function trainTwoSteps(
  backend: Backend,
): Promise<{ weights: Float32Array; logps: Float32Array }> {
  const B = 4, T = 19;
  // 64 rows of logits per chunk: rows 0..63 and 64..75, as the binding limit requires.
  const model = new LlamaModel(backend, CONFIG, {
    maxBatch: B,
    maxSeqLen: T,
    logitsBudget: 64 * CONFIG.vocabSize,
  });
  model.params.writeAll(initWeights(model.layout, { seed: 3 }));
  const optimizer = new DeviceOptimizer(backend, model.layout, { lr: 1e-2, schedule: "constant" });
  const objective = { kind: "preference", spec: resolveLossSpec({ lossType: "sigmoid" }) } as const;
  const trainer = new Trainer(model, optimizer, objective);
  const ids = randomArray(B * T, 5, 1);
  const inputIds = Int32Array.from(ids, (x) => Math.floor((x + 1) / 2 * CONFIG.vocabSize));
  const targets = Int32Array.from({ length: B * T }, (_, i) => {
    const t = i % T;
    return t >= 5 && t + 1 < T ? inputIds[i + 1] : -1;
  });
  const micro = [{
    batch: { inputIds, targets, rows: B, T, tokenCounts: new Int32Array(B).fill(T - 6) },
    referenceLogps: Float32Array.from([-30, -31, -29, -32]),
  }];
  trainer.step(micro);
  trainer.step(micro);
  const weights = new Float32Array(await model.params.readArena());
  const logps = new Float32Array(await backend.read(model.acts.seqLogps));
  return { weights, logps };
}

const bits = (x: Float32Array) => Array.from(new Uint32Array(x.buffer, x.byteOffset, x.length));

needsTest(gpuMissing, {
  name: "training with the binding limit below the embedding and the arenas is bit-identical",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const whole = await GpuBackend.create();
    const pieces = await GpuBackend.create({ maxBindingBytes: LIMIT_BYTES });
    try {
      const expected = await trainTwoSteps(whole);
      const actual = await trainTwoSteps(pieces);
      const compiled = pieces.ctx.compiledShaders();
      for (const name of ["copy_block", "matmul_continue_NN"]) {
        strictEqual(compiled.has(name), true, `${name} never ran: nothing was split`);
      }
      strictEqual(whole.ctx.compiledShaders().has("copy_block"), false);
      assertEquals(bits(actual.logps), bits(expected.logps));
      assertEquals(bits(actual.weights), bits(expected.weights));
    } finally {
      whole.destroy();
      pieces.destroy();
    }
  },
});

needsTest(gpuMissing, {
  name: "attention runs once per sequence when its scores exceed one binding, bit-identical",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const B = 3, T = 16, H = 4, Hkv = 2, D = 16;
    const run = async (backend: GpuBackend) => {
      const t = (n: number, seed: number) => {
        const x = backend.alloc("activations", n);
        backend.write(x, randomArray(n, seed));
        return x;
      };
      const q = t(B * T * H * D, 1), k = t(B * T * Hkv * D, 2), v = t(B * T * Hkv * D, 3);
      const dOut = t(B * T * H * D, 4);
      const out = t(B * T * H * D, 0), stats = t(B * H * T * 2, 0), rowDot = t(B * H * T, 0);
      const dq = t(B * T * H * D, 0), dk = t(B * T * Hkv * D, 0), dv = t(B * T * Hkv * D, 0);
      backend.ops.attentionForward({ out, stats, q, k, v, B, T, H, Hkv, D });
      const saved = { dOut, q, k, v, out, stats };
      backend.ops.attentionBackward({ dq, dk, dv, rowDot, ...saved, B, T, H, Hkv, D });
      const read = async (x: typeof q) => bits(new Float32Array(await backend.read(x)));
      return [await read(out), await read(dq), await read(dk), await read(dv)];
    };
    const whole = await GpuBackend.create();
    // 1,024 elements: one sequence's queries (T*H*D) fit, three do not.
    const pieces = await GpuBackend.create({ maxBindingBytes: 1024 * 4 });
    try {
      const before = pieces.counters().dispatches;
      const actual = await run(pieces);
      const expected = await run(whole);
      assertEquals(actual, expected);
      strictEqual(pieces.counters().dispatches - before > whole.counters().dispatches, true);
    } finally {
      whole.destroy();
      pieces.destroy();
    }
  },
});
