/**
 * A half-precision frozen LM head larger than one storage binding (src/gpu/split.ts with bf16
 * weights, two elements per u32 word): a LoRA model on a tied bf16 base, a frozen forward-only
 * model and the sampler, with the binding limit lowered below the head, give the bits of the
 * unsplit run. The hidden size (96: a bf16 row is 192 bytes) makes the pieces' offsets need the
 * half alignment (128 elements per 256-byte offset), not the f32 one.
 */

import { deepStrictEqual as assertEquals, strictEqual } from "node:assert/strict";
import { gpuMissing, needsTest, randomArray } from "../helpers.ts";
import { GpuBackend } from "../../src/gpu/backend.ts";
import { configFromHf } from "../../src/model/config.ts";
import { LlamaModel } from "../../src/model/llama.ts";
import { initWeights } from "../../src/model/init.ts";
import { paramLayout } from "../../src/model/params.ts";
import { resolveTargetModules } from "../../src/model/lora.ts";
import { generate } from "../../src/eval/sample.ts";
import { decode16, encode16 } from "../../src/io/half.ts";

// Tied embedding 1000 x 96 = 96,000 elements (192,000 bytes in bf16); the binding limit 16,384
// f32 elements (64 KiB), so the head binds in pieces in bf16 as in f32; every activation fits
// (the logits are 16 x 1000).
const CONFIG = configFromHf({
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  vocab_size: 1000,
  hidden_size: 96,
  intermediate_size: 96,
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
const B = 2, T = 8;

const bits = (x: ArrayLike<number>) =>
  Array.from(new Uint32Array(Float32Array.from(x).buffer)).map((b) => b.toString(16));

/** Seeded weights rounded to bf16, as a bf16 checkpoint holds them. */
function bf16Weights() {
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, t] of initWeights(paramLayout(CONFIG), { seed: 3 })) {
    const values = Float32Array.from(t.data);
    const bytes = new Uint8Array(values.length * 2);
    encode16(values, "BF16", bytes, 0);
    out.set(name, { shape: t.shape, data: decode16(bytes, 0, values.length, "BF16") });
  }
  return out;
}

/** What a run computes: LoRA log-probs and adapter gradients, frozen log-probs, samples. */
async function run(gpu: GpuBackend, weights: ReturnType<typeof bf16Weights>) {
  const lora = {
    r: 4,
    alpha: 8,
    dropout: 0,
    targetModules: resolveTargetModules(["q_proj", "v_proj", "down_proj"]),
  };
  const ids = randomArray(B * T, 5, 1);
  const inputIds = Int32Array.from(ids, (x) => Math.floor((x + 1) / 2 * CONFIG.vocabSize));
  const targets = Int32Array.from({ length: B * T }, (_, i) => {
    const t = i % T;
    return t >= 3 && t + 1 < T ? inputIds[i + 1] : -1;
  });
  const batch = { inputIds, targets, rows: B, T, tokenCounts: new Int32Array(B).fill(T - 4) };
  const model = new LlamaModel(gpu, CONFIG, {
    maxBatch: B,
    maxSeqLen: T,
    lora,
    frozenDtype: "bf16",
  });
  model.params.writeAll(weights);
  // Non-zero B as well as A, so every adapter's gradient flows through the LM head.
  const adapters = new Map(
    model.lora!.layout.slots.map((s, i) => [s.name, {
      shape: s.shape,
      data: randomArray(s.size, 100 + i, 0.05),
    }]),
  );
  model.lora!.params.writeAll(adapters);
  model.setBatch(batch);
  const { grads } = model.trainable;
  grads.fill(0);
  model.forward();
  gpu.write(model.acts.seqGrad, [1, -0.5]);
  model.backward();
  gpu.submit();
  const loraLogps = await gpu.read(model.acts.seqLogps);
  const loraGrads = await grads.readArena();
  const frozen = new LlamaModel(gpu, CONFIG, {
    maxBatch: B,
    maxSeqLen: T,
    trainable: false,
    frozenDtype: "bf16",
  });
  frozen.params.writeAll(weights);
  frozen.setBatch(batch);
  frozen.forward();
  const frozenLogps = await gpu.read(frozen.acts.seqLogps);
  const samples = await generate(frozen, [[1, 17, 42], [5, 9]], {
    maxNewTokens: 5,
    temperature: 1,
    seed: 11,
  });
  return {
    loraLogps: bits(loraLogps),
    loraGrads: bits(loraGrads),
    frozenLogps: bits(frozenLogps),
    samples: samples.map((s) => ({ tokens: s.tokens, logps: bits(s.logps) })),
  };
}

needsTest(gpuMissing, {
  name: "a bf16 LM head larger than one binding, split, gives the bits of the unsplit run",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const whole = await GpuBackend.create();
    const pieces = await GpuBackend.create({ maxBindingBytes: LIMIT_BYTES });
    try {
      const weights = bf16Weights();
      const expected = await run(whole, weights);
      const actual = await run(pieces, weights);
      const compiled = pieces.ctx.compiledShaders();
      for (const name of ["copy_block", "matmul_continue_NN"]) {
        strictEqual(compiled.has(name), true, `${name} never ran: nothing was split`);
      }
      strictEqual(whole.ctx.compiledShaders().has("copy_block"), false);
      assertEquals(actual, expected);
    } finally {
      whole.destroy();
      pieces.destroy();
    }
  },
});
