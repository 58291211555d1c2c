/**
 * LoRA against an independent PyTorch implementation (tests/fixtures/make_lora_fixture.py):
 * log-probs of base + adapters with the seeded dropout on, off, and with the adapters switched
 * off; every adapter gradient; one DPO step with LoRA (live reference = the same weights with the
 * adapters off) to the adapter weights after AdamW — on the CPU in float64 and float32 and on
 * WebGPU.
 */

import { assertClose, cpu, gpuTest } from "../helpers.ts";
import { fixtureBatch, type ModelFixture, readFixture } from "./fixture.ts";
import type { Backend } from "../../src/backend/mod.ts";
import { resolveLossSpec } from "../../src/backend/mod.ts";
import { configFromHf } from "../../src/model/config.ts";
import { LlamaModel } from "../../src/model/llama.ts";
import { initLoraWeights, loraLayout, resolveTargetModules } from "../../src/model/lora.ts";
import { DeviceOptimizer } from "../../src/train/optimizer.ts";
import { Trainer } from "../../src/train/trainer.ts";
import type { TokenBatch } from "../../src/data/mod.ts";

interface LoraFixture {
  base: string;
  lora: { r: number; lora_alpha: number; lora_dropout: number; target_modules: string[] };
  lora_params: Record<string, { shape: number[]; data: number[] }>;
  expected: {
    dropout_seed: number;
    seq_logps_f64: number[];
    seq_logps_eval_f64: number[];
    seq_logps_base_f64: number[];
    grads_f64: Record<string, number[]>;
    dpo: {
      input_ids: number[][];
      targets: number[][];
      beta: number;
      lr: number;
      loss: number;
      grad_norm: number;
      after: Record<string, number[]>;
    };
  };
}

const FIXTURES = ["lora_llama_all_linear.json", "lora_qwen2_qv.json"];

async function load(name: string): Promise<{ f: LoraFixture; base: ModelFixture }> {
  const f: LoraFixture = JSON.parse(
    await Deno.readTextFile(new URL(`../fixtures/${name}`, import.meta.url)),
  );
  return { f, base: await readFixture(f.base) };
}

function loraModel(backend: Backend, f: LoraFixture, base: ModelFixture, batch: TokenBatch) {
  const model = new LlamaModel(backend, configFromHf(base.config), {
    maxBatch: batch.rows,
    maxSeqLen: batch.T,
    lora: {
      r: f.lora.r,
      alpha: f.lora.lora_alpha,
      dropout: f.lora.lora_dropout,
      targetModules: resolveTargetModules(f.lora.target_modules),
    },
  });
  if (backend.kind === "cpu" && (backend as { precision?: string }).precision === "f64") {
    // PyTorch's own rotary tables (positions 0..T-1 of the base fixture's).
    const half = configFromHf(base.config).headDim / 2;
    const rows = (t: number[]) => t.slice(0, batch.T * half);
    model.setRopeTables(rows(base.expected.rope_cos), rows(base.expected.rope_sin));
  }
  model.params.writeAll(new Map(Object.entries(base.params)), { source: "fixture" });
  model.lora!.params.writeAll(new Map(Object.entries(f.lora_params)), { source: "fixture" });
  model.setBatch(batch);
  return model;
}

/** Tolerances: f64 to rounding noise; f32 / WebGPU as the base model's tests (10x observed). */
const TOL = {
  f64: { logps: 1e-11, grads: 1e-10 },
  f32: { logps: 2e-5, grads: 5e-5 },
};

async function checkForwardBackward(backend: Backend, name: string, tol: typeof TOL.f64) {
  const { f, base } = await load(name);
  const batch = fixtureBatch(base);
  const model = loraModel(backend, f, base, batch);
  const { grads } = model.trainable;
  grads.fill(0);
  model.forward({ dropoutSeed: f.expected.dropout_seed });
  backend.write(model.acts.seqGrad, base.loss_weights);
  model.backward();
  backend.submit();
  const n = base.loss_weights.length;
  const logps = (await backend.read(model.acts.seqLogps)).slice(0, n);
  assertClose(logps, f.expected.seq_logps_f64, { atol: tol.logps, rtol: 0, label: "logps" });
  const got = await grads.readAll();
  for (const [param, expected] of Object.entries(f.expected.grads_f64)) {
    assertClose(got.get(param)!.data, expected, { atol: tol.grads, rtol: 0, label: param });
  }
  for (
    const [adapters, expected] of [
      ["policy", f.expected.seq_logps_eval_f64],
      ["none", f.expected.seq_logps_base_f64],
    ] as const
  ) {
    const view = model.withAdapters(adapters);
    view.forward();
    const eval_ = (await backend.read(view.acts.seqLogps)).slice(0, n);
    assertClose(eval_, expected, { atol: tol.logps, rtol: 0, label: `adapters ${adapters}` });
  }
}

async function checkDpoStep(backend: Backend, name: string, tol: typeof TOL.f64) {
  const { f, base } = await load(name);
  const d = f.expected.dpo;
  const B = d.input_ids.length, T = d.input_ids[0].length;
  const batch: TokenBatch = {
    inputIds: Int32Array.from(d.input_ids.flat()),
    targets: Int32Array.from(d.targets.flat()),
    rows: B,
    T,
    tokenCounts: Int32Array.from(d.targets, (row) => row.filter((t) => t >= 0).length),
  };
  const model = loraModel(backend, f, base, batch);
  const optimizer = new DeviceOptimizer(backend, model.trainable.layout, {
    lr: d.lr,
    schedule: "constant",
    maxGradNorm: 1,
  });
  const spec = resolveLossSpec({ lossType: "sigmoid", beta: d.beta });
  const trainer = new Trainer(
    model,
    optimizer,
    { kind: "preference", spec },
    model.withAdapters("none"),
    42,
  );
  trainer.step([{ batch }]);
  const metrics = await trainer.readMetrics();
  assertClose([metrics.loss], [d.loss], { atol: tol.logps, rtol: 0, label: "dpo loss" });
  assertClose([metrics.grad_norm], [d.grad_norm], { atol: tol.grads, rtol: 0, label: "norm" });
  const after = await model.lora!.params.readAll();
  for (const [param, expected] of Object.entries(d.after)) {
    // AdamW's first step moves each weight by about lr: f32 noise in the moments stays small.
    assertClose(after.get(param)!.data, expected, { atol: tol.grads, rtol: 0, label: param });
  }
  // The base is frozen: it holds no gradient arena and its weights are unchanged.
  const weights = await model.params.readAll();
  const written = await loraModel(backend, f, base, batch).params.readAll();
  for (const [param, t] of written) {
    assertClose(weights.get(param)!.data, t.data, { atol: 0, rtol: 0, label: param });
  }
}

for (const name of FIXTURES) {
  Deno.test(`CPU float64 LoRA matches PyTorch log-probs and adapter gradients (${name})`, () =>
    checkForwardBackward(cpu("f64"), name, TOL.f64));
  Deno.test(`CPU float32 LoRA matches PyTorch log-probs and adapter gradients (${name})`, () =>
    checkForwardBackward(cpu("f32"), name, TOL.f32));
  gpuTest(
    `WebGPU LoRA matches PyTorch log-probs and adapter gradients (${name})`,
    (gpu) => checkForwardBackward(gpu, name, TOL.f32),
  );
  Deno.test(`CPU float64 DPO step with LoRA matches PyTorch's AdamW step (${name})`, () =>
    checkDpoStep(cpu("f64"), name, TOL.f64));
  gpuTest(
    `WebGPU DPO step with LoRA matches PyTorch's AdamW step (${name})`,
    (gpu) => checkDpoStep(gpu, name, TOL.f32),
  );
}

Deno.test("LoRA init is PEFT's: A ~ U(-1/sqrt(in), 1/sqrt(in)), B = 0, seeded", async () => {
  const { base } = await load(FIXTURES[0]);
  const config = configFromHf(base.config);
  const layout = loraLayout(config, {
    r: 4,
    alpha: 8,
    dropout: 0,
    targetModules: resolveTargetModules("all-linear"),
  });
  const a = initLoraWeights(layout, 7), b = initLoraWeights(layout, 7);
  for (const [name, t] of a) {
    if (name.endsWith("lora_B.weight")) {
      if (t.data.some((x) => x !== 0)) throw new Error(`${name} is not zero`);
      continue;
    }
    const bound = 1 / Math.sqrt(t.shape[1]);
    const max = Math.max(...t.data.map(Math.abs));
    if (!(max <= bound && max > 0.8 * bound)) throw new Error(`${name}: max |A| ${max}, ${bound}`);
    assertClose(t.data, b.get(name)!.data, { atol: 0, rtol: 0, label: "same seed" });
  }
});
