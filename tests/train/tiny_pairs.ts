/**
 * A small fixed preference problem for training tests: a 1-layer model of 41 tokens, 6 pairs of
 * random tokens (prompts of 2-4, completions of 1-5 tokens), and helpers that score a batch and
 * train a few steps of a preference or KTO objective on either backend.
 */

import {
  type Backend,
  type KtoLossSpec,
  type PreferenceLossOptions,
  resolveLossSpec,
} from "../../src/backend/mod.ts";
import { configFromHf } from "../../src/model/config.ts";
import { LlamaModel } from "../../src/model/llama.ts";
import { initWeights } from "../../src/model/init.ts";
import { seededRandom } from "../../src/data/sampler.ts";
import { collatePreference, collateSequences, type TokenBatch } from "../../src/data/mod.ts";
import { DeviceOptimizer, type OptimizerOptions } from "../../src/train/optimizer.ts";
import { type MicroBatch, type Objective, Trainer } from "../../src/train/trainer.ts";

export const TINY = configFromHf({
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  vocab_size: 41,
  hidden_size: 16,
  intermediate_size: 24,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: true,
  hidden_act: "silu",
  max_position_embeddings: 32,
});

/** 6 pairs of random tokens: prompts of 2-4, completions of 1-5 tokens. */
export function pairs(seed: number) {
  const rand = seededRandom(seed);
  const ids = (n: number) => Array.from({ length: n }, () => 4 + Math.floor(rand() * 37));
  const len = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
  return Array.from({ length: 6 }, () => ({
    promptIds: ids(len(2, 4)),
    chosenIds: ids(len(1, 5)),
    rejectedIds: ids(len(1, 5)),
    file: "",
    line: 0,
  }));
}

/** A preference objective, its loss resolved as a run resolves it. */
export const preference = (options: PreferenceLossOptions): Objective => ({
  kind: "preference",
  spec: resolveLossSpec(options),
});

/** The tiny model (seeded weights) and an optimizer: AdamW at lr 1e-2 unless `optimizer` says. */
export function setup(backend: Backend, maxBatch: number, optimizer: OptimizerOptions = {}) {
  const model = new LlamaModel(backend, TINY, { maxBatch, maxSeqLen: 9 });
  model.params.writeAll(initWeights(model.layout, { seed: 5, std: 0.3 }));
  return {
    model,
    optimizer: new DeviceOptimizer(backend, model.layout, {
      lr: 1e-2,
      schedule: "constant",
      maxGradNorm: 0,
      ...optimizer,
    }),
  };
}

/** Per-sequence completion log-probs of the model on a batch. */
export async function scores(model: LlamaModel, batch: TokenBatch): Promise<Float64Array> {
  model.setBatch(batch);
  model.forward();
  model.backend.submit();
  return Float64Array.from(await model.backend.read(model.acts.seqLogps));
}

/** What {@link trainPairs} returns: metrics per step, weights and log-probs before and after. */
export interface PairRun {
  rows: Record<string, number>[];
  before: Float64Array;
  after: Float64Array;
  batch: TokenBatch;
  /** Log-probs of the initial model (the reference): P chosen then P rejected. */
  referenceLogps: Float64Array;
  /** Log-probs of the trained model on the same batch. */
  finalLogps: Float64Array;
}

/** Trains `steps` preference steps on the 6 pairs of seed 9. */
export async function trainPairs(
  backend: Backend,
  objective: Objective,
  steps = 3,
  optimizer: OptimizerOptions = {},
): Promise<PairRun> {
  const batch = collatePreference(pairs(9), { padTokenId: 0 });
  const { model, optimizer: opt } = setup(backend, 12, optimizer);
  const referenceLogps = await scores(model, batch);
  // SPPO's win-rates (read by loss sppo only): every chosen 0.8, every rejected 0.3.
  const P = batch.rows / 2;
  const winRates = Float64Array.from({ length: 2 * P }, (_, r) => (r < P ? 0.8 : 0.3));
  const micro: MicroBatch = { batch, referenceLogps, winRates };
  const before = Float64Array.from(await model.params.readArena());
  const trainer = new Trainer(model, opt, objective);
  const rows = [];
  for (let s = 0; s < steps; s++) {
    trainer.step([micro]);
    rows.push(await trainer.readMetrics());
  }
  const after = Float64Array.from(await model.params.readArena());
  return { rows, before, after, batch, referenceLogps, finalLogps: await scores(model, batch) };
}

/** What {@link trainKto} returns: the weights, and log-probs of the examples before and after. */
export interface KtoRun {
  after: Float64Array;
  labels: number[];
  initialLogps: Float64Array;
  finalLogps: Float64Array;
}

/**
 * KTO steps on the chosen completions of the 6 pairs of seed 4 (labels 1,0,1,1,0,1); the
 * reference log-probs are the initial model's, shifted (+0.1 on the examples, -0.3 on the
 * mismatched pairs, so that z0 > 0) unless `referenceShift` says otherwise.
 */
export async function trainKto(
  backend: Backend,
  spec: KtoLossSpec,
  steps = 2,
  referenceShift = [0.1, -0.3],
  optimizerOptions: OptimizerOptions = {},
): Promise<KtoRun> {
  const examples = pairs(4);
  const rows = (mismatched: boolean) =>
    collateSequences(
      examples.map((e, i) => ({
        promptIds: e.promptIds,
        completionIds: mismatched ? examples[(i + 1) % 6].chosenIds : e.chosenIds,
      })),
      { padTokenId: 0 },
    );
  const batch = rows(false), klBatch = rows(true);
  const { model, optimizer } = setup(backend, 6, optimizerOptions);
  const initialLogps = await scores(model, batch);
  const referenceLogps = Float64Array.from([
    ...initialLogps.map((x) => x + referenceShift[0]),
    ...(await scores(model, klBatch)).map((x) => x + referenceShift[1]),
  ]);
  const trainer = new Trainer(model, optimizer, { kind: "kto", spec });
  const labels = [1, 0, 1, 1, 0, 1];
  const micro = { batch, klBatch, referenceLogps, labels };
  for (let s = 0; s < steps; s++) trainer.step([micro]);
  return {
    after: Float64Array.from(await model.params.readArena()),
    labels,
    initialLogps,
    finalLogps: await scores(model, batch),
  };
}
