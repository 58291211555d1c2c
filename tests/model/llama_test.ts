/**
 * The whole model against an independent PyTorch implementation of HF's Llama/Qwen2
 * (tests/fixtures/make_model_fixture.py): per-sequence completion log-probs and every parameter
 * gradient, on the CPU reference in float64 and float32 and on WebGPU.
 */

import { assertClose, cpu, gpuTest } from "../helpers.ts";
import { fixtureBatch, fixtureModel, FIXTURES, forwardBackward, readFixture } from "./fixture.ts";
import { LlamaModel } from "../../src/model/llama.ts";
import { configFromHf } from "../../src/model/config.ts";

for (const name of FIXTURES) {
  Deno.test(`CPU float64 model matches PyTorch log-probs and gradients (${name})`, async () => {
    const f = await readFixture(name);
    // With PyTorch's own rotary tables, float64 agrees to rounding noise.
    const { model } = fixtureModel(cpu("f64"), f, { torchRope: true });
    const { seqLogps, grads } = await forwardBackward(model, f.loss_weights);
    assertClose(seqLogps, f.expected.seq_logps_f64, { atol: 1e-12, rtol: 1e-12, label: "logps" });
    for (const [param, expected] of Object.entries(f.expected.grads_f64)) {
      assertClose(grads.get(param)!.data, expected, { atol: 1e-12, rtol: 1e-10, label: param });
    }
  });

  Deno.test(`CPU float32 model matches PyTorch float32 log-probs (${name})`, async () => {
    const f = await readFixture(name);
    const { model } = fixtureModel(cpu("f32"), f);
    const { seqLogps, grads } = await forwardBackward(model, f.loss_weights);
    // f32 rounding through a few layers. Worst errors observed over the three fixtures: 9.5e-7
    // on log-probs (sums of ~10 log-probs near -10), 2.3e-6 on a gradient element; the bounds are
    // about 10x those (rms_norm_eps x 10 moves log-probs by 9e-5 and gradients by 1e-3).
    assertClose(seqLogps, f.expected.seq_logps_f32, { atol: 1e-5, rtol: 0, label: "logps" });
    for (const [param, expected] of Object.entries(f.expected.grads_f64)) {
      assertClose(grads.get(param)!.data, expected, { atol: 2.5e-5, rtol: 0, label: param });
    }
  });

  gpuTest(`WebGPU model matches PyTorch log-probs and gradients (${name})`, async (gpu) => {
    const f = await readFixture(name);
    const { model } = fixtureModel(gpu, f);
    const { seqLogps, grads } = await forwardBackward(model, f.loss_weights);
    // The GPU computes in f32 with other summation orders. Worst errors observed on llvmpipe
    // over the three fixtures: 1.9e-6 on log-probs, 5.1e-6 on a gradient element; the bounds are
    // about 10x those (rms_norm_eps x 10 moves log-probs by 9e-5 and gradients by 1e-3).
    assertClose(seqLogps, f.expected.seq_logps_f32, { atol: 2e-5, rtol: 0, label: "logps" });
    for (const [param, expected] of Object.entries(f.expected.grads_f64)) {
      assertClose(grads.get(param)!.data, expected, { atol: 5e-5, rtol: 0, label: param });
    }
  });
}

Deno.test("a frozen model (trainable: false) gives the same log-probs with shared buffers", async () => {
  const f = await readFixture(FIXTURES[0]);
  const backend = cpu("f64");
  const frozen = new LlamaModel(backend, configFromHf(f.config), {
    maxBatch: f.input_ids.length,
    maxSeqLen: f.input_ids[0].length,
    trainable: false,
  });
  frozen.params.writeAll(new Map(Object.entries(f.params)));
  frozen.setRopeTables(f.expected.rope_cos, f.expected.rope_sin);
  frozen.setBatch(fixtureBatch(f));
  frozen.forward();
  const logps = (await backend.read(frozen.acts.seqLogps)).slice(0, f.loss_weights.length);
  assertClose(logps, f.expected.seq_logps_f64, { atol: 1e-12, rtol: 1e-12, label: "logps" });
  if (frozen.layout.total * 8 >= backend.bytesByRole().activations) {
    throw new Error("a frozen model should hold far fewer activation bytes");
  }
});
