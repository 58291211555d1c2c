/**
 * Arenas larger than the largest buffer (src/model/params.ts): with the buffer limit lowered far
 * below the parameter, gradient and moment arenas of a tiny model, each spans several buffers; a
 * training step, the gradient norm, the optimizer state and the checkpoint reads and writes give
 * the bits of the one-buffer run. A single tensor larger than the limit is refused by name.
 */

import {
  deepStrictEqual as assertEquals,
  match,
  ok,
  strictEqual,
  throws,
} from "node:assert/strict";
import { gpuMissing, needsTest, randomArray } from "../helpers.ts";
import { GpuBackend } from "../../src/gpu/backend.ts";
import type { GpuContextOptions } from "../../src/gpu/context.ts";
import { sumSquares } from "../../src/gpu/kernels/optimizer.ts";
import { normScratchSlots, type Tensor } from "../../src/backend/mod.ts";
import { configFromHf } from "../../src/model/config.ts";
import { LlamaModel } from "../../src/model/llama.ts";
import { initWeights } from "../../src/model/init.ts";
import { ParamArena, paramLayout, segmentLayout } from "../../src/model/params.ts";
import { DeviceOptimizer } from "../../src/train/optimizer.ts";
import { Trainer } from "../../src/train/trainer.ts";
import { resolveLossSpec } from "../../src/backend/losses.ts";

// Arena about 254k elements (1 MB); the tied embedding 250 x 128 = 32,000 elements (128,000
// bytes) is the largest tensor, the logits chunk (16,000) the largest activation.
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
const BUFFER_BYTES = 160 * 1024; // 40,960 elements: the arenas take 7 buffers each

const bits = (x: ArrayLike<number>) => Array.from(new Uint32Array(Float32Array.from(x).buffer));

interface Trained {
  weights: number[];
  logps: number[];
  gradNormSq: number[];
  moments: number[][];
  tensors: Map<string, number[]>;
  segments: number;
}

/** Two AdamW DPO steps of the tiny tied model with gradient clipping on, and what they leave. */
async function trainTwoSteps(backend: GpuBackend): Promise<Trained> {
  const B = 4, T = 19;
  const model = new LlamaModel(backend, CONFIG, {
    maxBatch: B,
    maxSeqLen: T,
    logitsBudget: 64 * CONFIG.vocabSize,
  });
  model.params.writeAll(initWeights(model.layout, { seed: 3 }));
  const optimizer = new DeviceOptimizer(backend, model.layout, {
    lr: 1e-2,
    schedule: "constant",
    maxGradNorm: 0.5,
  });
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
  const tensors = new Map<string, number[]>();
  for (const [name, t] of await model.params.readAll()) tensors.set(name, bits(t.data));
  return {
    weights: bits(await model.params.readArena()),
    logps: bits(await backend.read(model.acts.seqLogps)),
    gradNormSq: bits(await backend.read(optimizer.gradNormSq)),
    moments: [
      bits(await optimizer.state1.readArena()),
      bits(await optimizer.state2.readArena()),
    ],
    tensors,
    segments: model.grads.segments.length,
  };
}

async function withBackends(
  options: GpuContextOptions,
  fn: (whole: GpuBackend, split: GpuBackend) => Promise<void>,
): Promise<void> {
  const whole = await GpuBackend.create();
  const split = await GpuBackend.create(options);
  try {
    await fn(whole, split);
  } finally {
    whole.destroy();
    split.destroy();
  }
}

for (
  const [label, options] of [
    ["arenas across buffers", { maxBufferBytes: BUFFER_BYTES }],
    // Binding limit below the buffer's: each piece is bound in parts as well.
    ["arenas across buffers and bindings", {
      maxBufferBytes: BUFFER_BYTES,
      maxBindingBytes: 65536,
    }],
  ] as const
) {
  needsTest(gpuMissing, {
    name: `a DPO step with ${label} is bit-identical to one buffer per arena`,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: () =>
      withBackends(options, async (whole, split) => {
        const expected = await trainTwoSteps(whole);
        const actual = await trainTwoSteps(split);
        strictEqual(expected.segments, 1);
        ok(actual.segments >= 7, `${actual.segments} segments: the arena was not split`);
        strictEqual(split.ctx.maxBufferBytes, BUFFER_BYTES);
        assertEquals(actual.gradNormSq, expected.gradNormSq);
        assertEquals(actual.logps, expected.logps);
        assertEquals(actual.weights, expected.weights);
        assertEquals(actual.moments, expected.moments);
        assertEquals(actual.tensors, expected.tensors);
      }),
  });
}

needsTest(gpuMissing, {
  name: "sumSquares over pieces, chunks cut by one or more boundaries, gives the one-tensor bits",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const gpu = await GpuBackend.create();
    try {
      // n = 300,000: 147 chunks of 2,048. Pieces of 64 and 1,280 elements fall inside one chunk,
      // so that chunk is cut by three boundaries; the others cut chunks mid-way.
      const n = 300_000;
      const data = randomArray(n, 11, 3);
      const cuts = [64, 1280, 64, 100_032, 7_040, 150_016];
      const sizes = [...cuts, n - cuts.reduce((a, b) => a + b, 0)];
      const pieces: Tensor[] = [];
      let at = 0;
      for (const size of sizes) {
        const piece = gpu.alloc("gradients", size);
        gpu.write(piece, data.subarray(at, at + size));
        pieces.push(piece);
        at += size;
      }
      const whole = gpu.alloc("gradients", n);
      gpu.write(whole, data);
      const run = async (g: Parameters<typeof sumSquares>[3], maxElements?: number) => {
        const total = gpu.alloc("optimizer", 1);
        const partial = gpu.alloc("optimizer", normScratchSlots(n));
        sumSquares(gpu.ctx, total, partial, g, n, maxElements);
        return bits(await gpu.read(total));
      };
      const expected = await run(whole);
      assertEquals(await run(pieces), expected);
      assertEquals(await run(pieces, 4096), expected);
      assertEquals(await run([whole]), expected);
      const small = gpu.alloc("optimizer", 512);
      throws(
        () => sumSquares(gpu.ctx, gpu.alloc("optimizer", 1), small, pieces, n),
        /needs normScratchSlots\(n\)/,
      );
    } finally {
      gpu.destroy();
    }
  },
});

needsTest(gpuMissing, {
  name: "a half-precision frozen arena across buffers reads back what was written",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withBackends({ maxBufferBytes: 64 * 1024 }, async (whole, split) => {
      const layout = paramLayout(CONFIG);
      // bf16-exact values: f32 draws with the low 16 bits cleared.
      const weights = initWeights(layout, { seed: 5 });
      for (const t of weights.values()) {
        const u = new Uint32Array(t.data.buffer);
        for (let i = 0; i < u.length; i++) u[i] &= 0xffff0000;
      }
      const read = async (backend: GpuBackend) => {
        const arena = new ParamArena(backend, layout, "parameters", {
          dtype: "bf16",
          config: CONFIG,
        });
        arena.writeAll(weights);
        const out = new Map<string, number[]>();
        for (const [name, t] of await arena.readAll()) out.set(name, bits(t.data));
        return { out, flat: bits(await arena.readArena()), segments: arena.segments.length };
      };
      const a = await read(whole);
      const b = await read(split);
      ok(b.segments > a.segments, `${b.segments} segments against ${a.segments}`);
      assertEquals(b.out, a.out);
      assertEquals(b.flat, a.flat);
      for (const [name, t] of weights) assertEquals(a.out.get(name), bits(t.data), name);
    }),
});

needsTest(gpuMissing, {
  name: "optimizer state written flat into a split arena reads back bit for bit",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withBackends({ maxBufferBytes: BUFFER_BYTES }, async (_whole, split) => {
      const layout = paramLayout(CONFIG);
      const arena = new ParamArena(split, layout, "optimizer");
      ok(arena.segments.length > 1);
      const flat = randomArray(layout.total, 9);
      arena.writeArena(flat);
      assertEquals(bits(await arena.readArena()), bits(flat));
      throws(() => arena.writeArena(flat.subarray(1)), /elements for an arena of/);
    }),
});

needsTest(gpuMissing, {
  name: "a tensor larger than one buffer is refused with its name and the limit",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const gpu = await GpuBackend.create({ maxBufferBytes: 100_000 });
    try {
      throws(
        () => new LlamaModel(gpu, CONFIG, { maxBatch: 1, maxSeqLen: 8 }),
        (e: Error) => {
          match(e.message, /tensor model\.embed_tokens\.weight \[250,128\] needs 128000 bytes/);
          match(e.message, /\(99840 bytes, the adapter's maxBufferSize\)/);
          return true;
        },
      );
      strictEqual(gpu.bytesByRole().parameters, 0, "nothing was allocated before the refusal");
    } finally {
      gpu.destroy();
    }
  },
});

Deno.test("segmentLayout cuts between whole tensors, the runs end to end are the layout", () => {
  const layout = paramLayout(CONFIG);
  for (const maxBytes of [128_000, BUFFER_BYTES, 512 * 1024, Infinity]) {
    const runs = segmentLayout(layout, 4, maxBytes);
    let at = 0;
    for (const run of runs) {
      strictEqual(run.offset, at);
      ok(run.size * 4 <= maxBytes, `run of ${run.size} elements over ${maxBytes} bytes`);
      ok(layout.slots.some((s) => s.offset === run.offset), "a run starts at a tensor");
      at += run.size;
    }
    strictEqual(at, layout.total);
    // Greedy: each run but the last could not take the next tensor.
    for (let i = 0; i + 1 < runs.length; i++) {
      const next = layout.slots.find((s) => s.offset === runs[i + 1].offset)!;
      const nextEnd = layout.slots.find((s) => s.offset > next.offset)?.offset ?? layout.total;
      ok((nextEnd - runs[i].offset) * 4 > maxBytes);
    }
    if (maxBytes === Infinity) strictEqual(runs.length, 1);
  }
  throws(() => segmentLayout(layout, 4, 127_999), /model\.embed_tokens\.weight/);
});
