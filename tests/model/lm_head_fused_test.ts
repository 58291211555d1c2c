/**
 * The whole model with the fused LM head (src/gpu/lm_head.ts), which the WebGPU backend runs on
 * hardware layouts: against the PyTorch fixtures (tied and untied heads, Qwen2's biases), its log-
 * probs and gradients equal across chunk sizes bit for bit, and the logits buffer gone: the
 * software layouts keep the unfused head (the default pipeline's bits).
 */

import assert from "node:assert/strict";
import { assertClose, gpuMissing, gpuTest, needsTest } from "../helpers.ts";
import { fixtureModel, FIXTURES, forwardBackward, readFixture } from "./fixture.ts";
import { GpuBackend } from "../../src/gpu/backend.ts";
import { configFromHf } from "../../src/model/config.ts";
import { LlamaModel } from "../../src/model/llama.ts";
import { planMemory } from "../../src/train/memory_plan.ts";
import { granularityOf } from "../../src/pipeline/memory.ts";

let hardware: Promise<GpuBackend> | undefined;
/** One backend with the hardware layouts forced (the fused head among them) for this file. */
const hardwareGpu = () => hardware ??= GpuBackend.create({ layouts: "hardware" });

function hardwareTest(name: string, fn: (gpu: GpuBackend) => Promise<void>): void {
  needsTest(gpuMissing, {
    name,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => await fn(await hardwareGpu()),
  });
}

for (const name of FIXTURES) {
  hardwareTest(
    `fused LM head: the model matches PyTorch log-probs and gradients (${name})`,
    async (gpu) => {
      const f = await readFixture(name);
      const { model } = fixtureModel(gpu, f);
      assert.ok(model.acts.vocabChunk > 0, "hardware layouts run the fused head");
      const { seqLogps, grads } = await forwardBackward(model, f.loss_weights);
      // The bounds of tests/model/llama_test.ts's WebGPU test: f32 with other summation orders.
      assertClose(seqLogps, f.expected.seq_logps_f32, { atol: 2e-5, rtol: 0, label: "logps" });
      for (const [param, expected] of Object.entries(f.expected.grads_f64)) {
        assertClose(grads.get(param)!.data, expected, { atol: 5e-5, rtol: 0, label: param });
      }
    },
  );
}

hardwareTest(
  "fused LM head: a model's log-probs and gradients are bit-identical across chunk sizes",
  async (gpu) => {
    // The tied fixture's vocabulary is below one group: widen it so that chunks differ, padding
    // the head with rows no target selects (they still enter every row's log-sum-exp).
    const f = await readFixture(FIXTURES[0]);
    const V = 600;
    const C = f.config.hidden_size as number;
    const embed = f.params["model.embed_tokens.weight"];
    const extra = Array.from({ length: (V - embed.shape[0]) * C }, (_, i) => Math.sin(i) * 0.05);
    f.params["model.embed_tokens.weight"] = { shape: [V, C], data: [...embed.data, ...extra] };
    f.config = { ...f.config, vocab_size: V };
    const runs = [];
    // 256 and 512 columns (3 and 2 chunks), then one chunk of 768 (the vocabulary rounded up to a
    // group), each from its own plan.
    for (const budget of [256, 512, 1024].map((c) => c * f.input_ids.flat().length)) {
      const { model } = fixtureModel(gpu, f, { logitsBudget: budget });
      runs.push({
        chunk: model.acts.vocabChunk,
        ...(await forwardBackward(model, f.loss_weights)),
      });
    }
    assert.deepEqual(runs.map((r) => r.chunk), [256, 512, 768]);
    for (const run of runs.slice(1)) {
      assert.deepEqual(
        Array.from(run.seqLogps),
        Array.from(runs[0].seqLogps),
        `logps ${run.chunk}`,
      );
      for (const [param, g] of runs[0].grads) {
        assert.deepEqual(run.grads.get(param)!.data, g.data, `${param} at chunk ${run.chunk}`);
      }
    }
  },
);

gpuTest("software layouts keep the unfused LM head (the default pipeline's bits)", async (gpu) => {
  if (gpu.ctx.layouts !== "software") {
    console.warn("the shared adapter runs hardware layouts: nothing to check here");
    return;
  }
  const f = await readFixture(FIXTURES[0]);
  const { model } = fixtureModel(gpu, f);
  assert.equal(model.acts.vocabChunk, 0);
  assert.equal(gpu.ops.lmHeadForward, undefined);
});

hardwareTest(
  "fused LM head: the memory plan equals the allocation, with no logits chunk",
  async () => {
    const f = await readFixture(FIXTURES[1]);
    const config = { ...configFromHf(f.config), vocabSize: 5000 };
    for (const trainable of [false, true]) {
      const gpu = await GpuBackend.create({ layouts: "hardware" });
      const rows = 4, seqLen = 40;
      const model = new LlamaModel(gpu, config, { maxBatch: rows, maxSeqLen: seqLen, trainable });
      const plan = planMemory({ config, rows, seqLen, train: false }, granularityOf(gpu));
      const names = plan.buffers.map((b) => b.name);
      assert.ok(names.some((n) => n.endsWith("lm head scratch")), names.join(", "));
      assert.ok(!names.some((n) => n.includes("logits chunk")), "no logits chunk planned");
      if (!trainable) assert.deepEqual(plan.bytes, gpu.bytesByRole());
      // (N, chunk) for a trainable head, (N, chunk / 256, 3) for a frozen one: never (N, V).
      const N = rows * seqLen, chunk = model.acts.vocabChunk;
      assert.equal(chunk, 5120, "one chunk: the vocabulary rounded up to a group");
      const want = trainable ? N * chunk : N * 3 * (chunk / 256);
      assert.equal(model.acts.logits.size, want);
      gpu.destroy();
    }
  },
);
