/**
 * The whole model against an independent PyTorch implementation of HF's Llama/Qwen2
 * (tests/fixtures/make_model_fixture.py): per-sequence completion log-probs and every parameter
 * gradient, on the CPU reference in float64 and float32 and on WebGPU.
 */

import { assertClose, cpu, gpuTest } from "../helpers.ts";
import { fixtureModel, FIXTURES, forwardBackward, readFixture } from "./fixture.ts";

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
    // f32 rounding through a few layers: about 1e-6 relative on sums of ~10 log-probs.
    assertClose(seqLogps, f.expected.seq_logps_f32, { atol: 2e-5, rtol: 2e-5, label: "logps" });
    for (const [param, expected] of Object.entries(f.expected.grads_f64)) {
      assertClose(grads.get(param)!.data, expected, { atol: 2e-4, rtol: 1e-3, label: param });
    }
  });

  gpuTest(`WebGPU model matches PyTorch log-probs and gradients (${name})`, async (gpu) => {
    const f = await readFixture(name);
    const { model } = fixtureModel(gpu, f);
    const { seqLogps, grads } = await forwardBackward(model, f.loss_weights);
    // The GPU computes in f32 with other summation orders: tolerances of f32 arithmetic.
    assertClose(seqLogps, f.expected.seq_logps_f32, { atol: 1e-4, rtol: 1e-4, label: "logps" });
    for (const [param, expected] of Object.entries(f.expected.grads_f64)) {
      assertClose(grads.get(param)!.data, expected, { atol: 5e-4, rtol: 2e-3, label: param });
    }
  });
}
