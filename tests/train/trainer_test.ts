/**
 * Training end to end on the tiny config: a model memorises a short sequence, two identical
 * runs give bit-identical weights, and gradient accumulation of k micro-batches gives the update
 * of one batch k times as large (for the NLL and for a preference loss).
 */

import { assertClose, gpuTest } from "../helpers.ts";
import type { Backend } from "../../src/backend/mod.ts";
import { CpuBackend } from "../../src/cpu/backend.ts";
import { configFromHf } from "../../src/model/config.ts";
import { LlamaModel } from "../../src/model/llama.ts";
import type { TokenBatch } from "../../src/data/mod.ts";
import { initWeights } from "../../src/model/init.ts";
import { DeviceOptimizer } from "../../src/train/optimizer.ts";
import { type MicroBatch, Trainer } from "../../src/train/trainer.ts";
import { collatePreference } from "../../src/data/mod.ts";
import { pairs, preference, scores, setup as setupPairs } from "./tiny_pairs.ts";

const TINY = configFromHf({
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  vocab_size: 97,
  hidden_size: 32,
  intermediate_size: 40,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: true,
  hidden_act: "silu",
  max_position_embeddings: 64,
});

/** Rows of `ids`, every token after the first a completion token. */
function lmBatch(rows: number[][]): { batch: TokenBatch } {
  const B = rows.length;
  const T = Math.max(...rows.map((r) => r.length));
  const inputIds = new Int32Array(B * T);
  const targets = new Int32Array(B * T).fill(-1);
  const tokenCounts = new Int32Array(B);
  rows.forEach((r, b) => {
    r.forEach((id, t) => inputIds[b * T + t] = id);
    for (let t = 0; t + 1 < r.length; t++) targets[b * T + t] = r[t + 1];
    tokenCounts[b] = r.length - 1;
  });
  return { batch: { inputIds, targets, rows: B, T, tokenCounts } };
}

function setup(
  backend: Backend,
  maxBatch: number,
  maxSeqLen: number,
  { lr = 1e-2, kind = "adamw" as "adamw" | "sgd", maxGradNorm = 1 } = {},
) {
  const model = new LlamaModel(backend, TINY, { maxBatch, maxSeqLen });
  model.params.writeAll(initWeights(model.layout, { seed: 1 }));
  const optimizer = new DeviceOptimizer(backend, model.layout, {
    kind,
    lr,
    schedule: "constant",
    maxGradNorm,
  });
  return { model, trainer: new Trainer(model, optimizer, { kind: "nll" }) };
}

const SEQUENCE = [
  5,
  17,
  42,
  8,
  91,
  3,
  60,
  22,
  14,
  77,
  35,
  50,
  2,
  19,
  88,
  64,
  11,
  30,
  45,
  70,
  9,
  26,
  33,
  81,
  6,
  55,
];

async function memorises(backend: Backend): Promise<void> {
  const { trainer } = setup(backend, 1, SEQUENCE.length);
  const { batch } = lmBatch([SEQUENCE]);
  let first = NaN, loss = NaN;
  for (let step = 0; step < 60; step++) {
    trainer.step([{ batch }]);
    // Metrics average the steps since the last read: read the first and the last step alone.
    if (step === 0 || step >= 58) loss = (await trainer.readMetrics()).loss;
    if (step === 0) first = loss;
  }
  // ln(97) = 4.57 at initialisation; a memorised sequence has a per-token NLL near 0.
  if (!(first > 4 && loss < 0.1)) {
    throw new Error(`loss went from ${first} to ${loss}, expected < 0.1 after 60 steps`);
  }
}

gpuTest("a tiny model memorises a 26-token sequence on WebGPU (NLL < 0.1)", memorises);
Deno.test("a tiny model memorises a 26-token sequence on the CPU backend (NLL < 0.1)", () =>
  memorises(new CpuBackend("f32")));

gpuTest("two identical WebGPU runs give bit-identical weights", async (gpu) => {
  const rows = [SEQUENCE.slice(0, 20), SEQUENCE.slice(4, 26), SEQUENCE.slice(10, 19)];
  const runs: Uint32Array[] = [];
  for (let run = 0; run < 2; run++) {
    const { model, trainer } = setup(gpu, 3, 22);
    const { batch } = lmBatch(rows);
    for (let step = 0; step < 3; step++) trainer.step([{ batch }]);
    runs.push(new Uint32Array((await model.params.readArena() as Float32Array).buffer));
  }
  if (!runs[0].every((bits, i) => bits === runs[1][i])) {
    throw new Error("weights differ between two identical runs");
  }
});

async function accumulationMatches(backend: Backend, tolerance: number): Promise<void> {
  const rows = Array.from({ length: 8 }, (_, i) => SEQUENCE.slice(i, i + 10 + (i % 3)));
  // SGD without clipping: the update is proportional to the gradient, so any error shows.
  const sgd = { kind: "sgd" as const, lr: 0.5, maxGradNorm: 0 };
  const whole = setup(backend, 8, 12, sgd);
  const { batch } = lmBatch(rows);
  whole.trainer.step([{ batch }]);
  const parts = setup(backend, 2, 12, sgd);
  const micro: MicroBatch[] = [0, 2, 4, 6].map((i) => {
    return lmBatch(rows.slice(i, i + 2));
  });
  parts.trainer.step(micro);
  assertClose(await parts.model.params.readArena(), await whole.model.params.readArena(), {
    atol: tolerance,
    rtol: tolerance,
    label: "params after one step",
  });
}

Deno.test("gradient accumulation 4 x 2 gives the update of one batch of 8 (CPU float64)", () =>
  accumulationMatches(new CpuBackend("f64"), 1e-12));
gpuTest(
  "gradient accumulation 4 x 2 gives the update of one batch of 8 (WebGPU)",
  (gpu) => accumulationMatches(gpu, 1e-5),
);

/**
 * A preference step over 2 micro-batches of 3 pairs against one batch of the 6 (SGD, no clip):
 * the loss is the mean over all the step's pairs, so the updates agree. Reference log-probs are
 * the initial model's, offset per pair so that the margins differ.
 */
async function preferenceAccumulationMatches(backend: Backend, tolerance: number) {
  const examples = pairs(9);
  const objective = preference({ beta: 0.5 });
  const sgd = { kind: "sgd" as const, lr: 0.5 };
  const offsets = [0.3, -0.2, 0.5, -0.4, 0.1, 0.6];
  const micro = async (model: LlamaModel, from: number, to: number): Promise<MicroBatch> => {
    const part = examples.slice(from, to);
    const batch = collatePreference(part, { padTokenId: 0 });
    const logps = await scores(model, batch);
    const P = part.length;
    // Chosen rows first, then rejected: the offset raises the reference's margin of pair i.
    const referenceLogps = logps.map((x, r) => x + (r < P ? 1 : -1) * offsets[from + (r % P)]);
    return { batch, referenceLogps };
  };
  const whole = setupPairs(backend, 12, sgd);
  new Trainer(whole.model, whole.optimizer, objective).step([await micro(whole.model, 0, 6)]);
  const parts = setupPairs(backend, 6, sgd);
  const micros = [await micro(parts.model, 0, 3), await micro(parts.model, 3, 6)];
  new Trainer(parts.model, parts.optimizer, objective).step(micros);
  assertClose(await parts.model.params.readArena(), await whole.model.params.readArena(), {
    atol: tolerance,
    rtol: tolerance,
    label: "params after one preference step",
  });
}

Deno.test("preference gradient accumulation 2 x 3 pairs gives the update of 6 pairs (CPU float64)", () =>
  preferenceAccumulationMatches(new CpuBackend("f64"), 1e-12));
gpuTest(
  "preference gradient accumulation 2 x 3 pairs gives the update of 6 pairs (WebGPU)",
  (gpu) => preferenceAccumulationMatches(gpu, 1e-5),
);
