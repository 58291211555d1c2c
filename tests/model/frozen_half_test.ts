/**
 * Frozen weights in their checkpoint's precision (issue 12 item 2): a bf16 or f16 checkpoint of
 * the LoRA fixtures' tiny models, held at 2 bytes per element and widened inside the kernels,
 * against the same checkpoint widened to f32 up front. The arithmetic is the same f32
 * multiply-adds in the same order, so log-probs, adapter gradients and a DPO step's weights are
 * bit-identical; f16 runs both widenings (shader-f16 and unpack2x16float); the CPU backend (which
 * widens up front) agrees within f32 tolerance; the plan equals the allocation.
 */

import assert from "node:assert/strict";
import { assertClose, cpu, gpuTest } from "../helpers.ts";
import { type ModelFixture, readFixture } from "./fixture.ts";
import { type Backend, resolveLossSpec } from "../../src/backend/mod.ts";
import { configFromHf } from "../../src/model/config.ts";
import { LlamaModel } from "../../src/model/llama.ts";
import { resolveTargetModules } from "../../src/model/lora.ts";
import { DeviceOptimizer } from "../../src/train/optimizer.ts";
import { Trainer } from "../../src/train/trainer.ts";
import { GpuBackend } from "../../src/gpu/backend.ts";
import { decode16, encode16 } from "../../src/io/half.ts";
import { planMemory } from "../../src/train/memory_plan.ts";
import { shapeConfig } from "../../src/train/model_shapes.ts";
import { granularityOf } from "../../src/pipeline/memory.ts";
import type { TokenBatch } from "../../src/data/mod.ts";

type Half = "bf16" | "f16";
type Weights = Map<string, { shape: number[]; data: Float32Array }>;

interface LoraFixture {
  base: string;
  lora: { r: number; lora_alpha: number; target_modules: string[] };
  lora_params: Record<string, { shape: number[]; data: number[] }>;
  expected: { dpo: { input_ids: number[][]; targets: number[][]; beta: number; lr: number } };
}

const FIXTURES = ["lora_llama_all_linear.json", "lora_qwen2_qv.json"];

async function load(name: string): Promise<{ f: LoraFixture; base: ModelFixture }> {
  const url = new URL(`../fixtures/${name}`, import.meta.url);
  const f: LoraFixture = JSON.parse(await Deno.readTextFile(url));
  return { f, base: await readFixture(f.base) };
}

/** The base's weights as a checkpoint of `dtype` would hold them (rounded, widened back). */
function rounded(base: ModelFixture, dtype: Half): Weights {
  const format = dtype === "bf16" ? "BF16" : "F16";
  const out: Weights = new Map();
  for (const [name, t] of Object.entries(base.params)) {
    // The fixture's small weights: the f16 checkpoint holds normal and subnormal values alike.
    const values = Float32Array.from(t.data);
    const bytes = new Uint8Array(values.length * 2);
    encode16(values, format, bytes, 0);
    out.set(name, { shape: t.shape, data: decode16(bytes, 0, values.length, format) });
  }
  return out;
}

function dpoBatch(f: LoraFixture): TokenBatch {
  const d = f.expected.dpo;
  return {
    inputIds: Int32Array.from(d.input_ids.flat()),
    targets: Int32Array.from(d.targets.flat()),
    rows: d.input_ids.length,
    T: d.input_ids[0].length,
    tokenCounts: Int32Array.from(d.targets, (row) => row.filter((t) => t >= 0).length),
  };
}

/** What a run computes: frozen log-probs, LoRA log-probs, adapter gradients, a DPO step. */
async function run(
  backend: Backend,
  name: string,
  weights: Weights,
  frozenDtype: Half | "f32",
): Promise<Record<string, Float32Array | Float64Array | Int32Array>> {
  const { f, base } = await load(name);
  const config = configFromHf(base.config);
  const batch = dpoBatch(f);
  const shape = { maxBatch: batch.rows, maxSeqLen: batch.T, frozenDtype };
  // A precompute's reference / an evaluator: forward only.
  const frozen = new LlamaModel(backend, config, { ...shape, trainable: false });
  frozen.params.writeAll(weights, { source: "half fixture" });
  frozen.setBatch(batch);
  frozen.forward();
  const frozenLogps = await backend.read(frozen.acts.seqLogps);
  // LoRA on the frozen base: forward, backward, then one DPO step against the base (adapters off).
  const lora = {
    r: f.lora.r,
    alpha: f.lora.lora_alpha,
    dropout: 0.1,
    targetModules: resolveTargetModules(f.lora.target_modules),
  };
  const model = new LlamaModel(backend, config, { ...shape, lora });
  model.params.writeAll(weights, { source: "half fixture" });
  model.lora!.params.writeAll(new Map(Object.entries(f.lora_params)), { source: "fixture" });
  model.setBatch(batch);
  const { grads, layout } = model.trainable;
  grads.fill(0);
  model.forward({ dropoutSeed: 7 });
  backend.write(model.acts.seqGrad, Array.from({ length: batch.rows }, (_, i) => 1 - i / 3));
  model.backward();
  backend.submit();
  const loraLogps = await backend.read(model.acts.seqLogps);
  const loraGrads = await grads.readArena();
  const optimizer = new DeviceOptimizer(backend, layout, { lr: f.expected.dpo.lr });
  const spec = resolveLossSpec({ lossType: "sigmoid", beta: f.expected.dpo.beta });
  const trainer = new Trainer(
    model,
    optimizer,
    { kind: "preference", spec },
    model.withAdapters("none"),
    3,
  );
  trainer.step([{ batch }]);
  const loss = Float64Array.of((await trainer.readMetrics()).loss);
  return { frozenLogps, loraLogps, loraGrads, after: await model.lora!.params.readArena(), loss };
}

function assertSame(
  got: Record<string, ArrayLike<number>>,
  want: Record<string, ArrayLike<number>>,
  label: string,
) {
  for (const key of Object.keys(want)) {
    assert.deepEqual(Array.from(got[key]), Array.from(want[key]), `${label}: ${key}`);
  }
}

for (const name of FIXTURES) {
  for (const dtype of ["bf16", "f16"] as const) {
    gpuTest(
      `WebGPU ${dtype} frozen weights equal the f32-widened model bit for bit (${name})`,
      async (gpu) => {
        const { base } = await load(name);
        const weights = rounded(base, dtype);
        const want = await run(gpu, name, weights, "f32");
        assertSame(await run(gpu, name, weights, dtype), want, `${dtype} ${gpu.ctx.f16Mode}`);
        // f16 widens through WGSL's f16 where the device has shader-f16 (llvmpipe does), and
        // with unpack2x16float on request or without the feature: both give the same bits.
        assert.equal(gpu.ctx.f16Mode, gpu.ctx.gpu.shaderF16 ? "native" : "unpack");
        if (dtype === "f16" && gpu.ctx.f16Mode === "native") {
          const unpacked = await GpuBackend.create({ f16Mode: "unpack", layouts: gpu.ctx.layouts });
          try {
            assert.equal(unpacked.ctx.f16Mode, "unpack");
            assertSame(await run(unpacked, name, weights, dtype), want, "f16 unpack");
          } finally {
            unpacked.destroy();
          }
        }
        // The CPU widens up front: the same numbers as its f32 model, and the GPU's within f32 noise.
        const host = await run(cpu("f32"), name, weights, dtype);
        assertSame(host, await run(cpu("f32"), name, weights, "f32"), "cpu");
        for (const key of ["frozenLogps", "loraLogps", "loss"]) {
          assertClose(host[key], want[key], { atol: 1e-5, rtol: 1e-5, label: `cpu vs gpu ${key}` });
        }
        assertClose(host.loraGrads, want.loraGrads, {
          atol: 5e-5,
          rtol: 2e-4,
          label: "cpu vs gpu grads",
        });
      },
    );
  }
}

gpuTest(
  "a half frozen weight holds 2 bytes per element and refuses a value it cannot hold",
  async (gpu) => {
    const { base } = await load(FIXTURES[1]);
    const config = configFromHf(base.config);
    for (const backend of [await GpuBackend.create(), cpu("f32")]) {
      const rows = 4, seqLen = 16;
      new LlamaModel(backend, config, {
        maxBatch: rows,
        maxSeqLen: seqLen,
        trainable: false,
        frozenDtype: "bf16",
      });
      const plan = planMemory(
        { config, rows, seqLen, train: false, frozenDtype: "bf16" },
        granularityOf(backend),
      );
      assert.deepEqual(plan.bytes, backend.bytesByRole(), backend.adapterName);
      backend.destroy();
    }
    const model = new LlamaModel(gpu, config, {
      maxBatch: 1,
      maxSeqLen: 4,
      trainable: false,
      frozenDtype: "bf16",
    });
    const exact = new Map(
      Object.entries(base.params).map((
        [k, t],
      ) => [k, { shape: t.shape, data: Float32Array.from(t.data) }]),
    );
    assert.throws(() => model.params.writeAll(exact), /is not exactly a bf16/);
  },
);

gpuTest(
  "a LoRA model on a real shape's bf16 base allocates what the plan says (SmolLM2-135M, 4 x 256)",
  async () => {
    const config = shapeConfig("SmolLM2-135M");
    const lora = {
      r: 16,
      alpha: 32,
      dropout: 0,
      targetModules: resolveTargetModules(["q_proj", "k_proj", "v_proj", "o_proj"]),
    };
    const rows = 4, seqLen = 256;
    const line: Record<string, unknown> = { shape: "SmolLM2-135M", rows, seqLen };
    for (const frozenDtype of ["bf16", "f32"] as const) {
      const gpu = await GpuBackend.create();
      new LlamaModel(gpu, config, { maxBatch: rows, maxSeqLen: seqLen, lora, frozenDtype });
      const got = gpu.bytesByRole();
      const plan = planMemory(
        { config, rows, seqLen, train: true, lora, frozenDtype },
        granularityOf(gpu),
      );
      assert.equal(got.parameters, plan.bytes.parameters, frozenDtype);
      assert.equal(got.gradients, plan.bytes.gradients, frozenDtype);
      line[frozenDtype] = {
        parameters: got.parameters,
        frozen: plan.weights.frozen,
        adapter: gpu.adapterName,
      };
      gpu.destroy();
    }
    console.log(JSON.stringify(line));
  },
);
