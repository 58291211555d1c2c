/** Loads the PyTorch reference dumps of tests/fixtures/model_*.json into a model. */

import type { Backend } from "../../src/backend/mod.ts";
import { configFromHf, type ModelConfig } from "../../src/model/config.ts";
import { LlamaModel } from "../../src/model/llama.ts";
import type { TokenBatch } from "../../src/data/mod.ts";

/** The layout written by tests/fixtures/make_model_fixture.py. */
export interface ModelFixture {
  config: Record<string, unknown>;
  input_ids: number[][];
  targets: number[][];
  loss_weights: number[];
  params: Record<string, { shape: number[]; data: number[] }>;
  expected: {
    seq_logps_f64: number[];
    seq_logps_f32: number[];
    token_logps_f64: number[][];
    loss_f64: number;
    grads_f64: Record<string, number[]>;
    rope_cos: number[];
    rope_sin: number[];
  };
}

export const FIXTURES = [
  "model_llama_gqa_tied.json",
  "model_qwen2_bias_untied.json",
  "model_llama_mha_untied.json",
];

export async function readFixture(name: string): Promise<ModelFixture> {
  return JSON.parse(await Deno.readTextFile(new URL(`../fixtures/${name}`, import.meta.url)));
}

export function fixtureBatch(f: ModelFixture): TokenBatch {
  const B = f.input_ids.length;
  const T = f.input_ids[0].length;
  return {
    inputIds: Int32Array.from(f.input_ids.flat()),
    targets: Int32Array.from(f.targets.flat()),
    rows: B,
    T,
    tokenCounts: Int32Array.from(f.targets, (row) => row.filter((t) => t >= 0).length),
  };
}

/** A model on `backend` holding the fixture's weights and batch. */
export function fixtureModel(
  backend: Backend,
  f: ModelFixture,
  options: { logitsBudget?: number; torchRope?: boolean } = {},
): { model: LlamaModel; config: ModelConfig; batch: TokenBatch } {
  const config = configFromHf(f.config);
  const batch = fixtureBatch(f);
  const model = new LlamaModel(backend, config, {
    maxBatch: batch.rows,
    maxSeqLen: batch.T,
    logitsBudget: options.logitsBudget,
  });
  if (options.torchRope) model.setRopeTables(f.expected.rope_cos, f.expected.rope_sin);
  model.params.writeAll(
    new Map(Object.entries(f.params).map(([name, t]) => [name, t])),
    { source: "fixture" },
  );
  model.setBatch(batch);
  return { model, config, batch };
}

/** Runs forward and backward with d(loss)/d(seqLogps) = loss_weights; returns logps and grads. */
export async function forwardBackward(
  model: LlamaModel,
  weights: number[],
): Promise<{ seqLogps: ArrayLike<number>; grads: Map<string, { data: ArrayLike<number> }> }> {
  const backend = model.backend;
  model.grads.fill(0);
  model.forward();
  backend.write(model.acts.seqGrad, weights);
  model.backward();
  backend.submit();
  const seqLogps = (await backend.read(model.acts.seqLogps)).slice(0, weights.length);
  return { seqLogps, grads: await model.grads.readAll() };
}
