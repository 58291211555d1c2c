/**
 * The CPU optimizer against PyTorch (tests/fixtures/optimizer_torch.json, written by
 * tests/fixtures/make_optimizer_fixture.py): AdamW, RMSprop and SGD for five steps, with and
 * without clip_grad_norm_, plus the sum of squares and the clipping factor on their own.
 */

import assert from "node:assert/strict";
import fixture from "../fixtures/optimizer_torch.json" with { type: "json" };
import { chunkSize, type OptimizerHyper, partialSlots } from "../../src/backend/mod.ts";
import { clipCoefficient, optimizerStep, sumSquares } from "../../src/cpu/optimizer.ts";
import { assertClose, cpu, randomArray } from "../helpers.ts";

type Kind = "adamw" | "rmsprop" | "sgd";

/** Runs a fixture case through the CPU backend, as the trainer does; returns params per step. */
async function runCase(
  kind: Kind,
  hyper: Partial<OptimizerHyper>,
  precision: "f32" | "f64",
): Promise<ArrayLike<number>[]> {
  const backend = cpu(precision);
  const n = fixture.params0.length;
  const params = backend.alloc("parameters", n);
  const grads = backend.alloc("gradients", n);
  const state1 = backend.alloc("optimizer", n);
  const state2 = backend.alloc("optimizer", n);
  const normSq = backend.alloc("optimizer", 1);
  const partial = backend.alloc("optimizer", partialSlots(n));
  const hyperTensor = backend.alloc("optimizer", 16);
  backend.write(params, fixture.params0);
  const out = [];
  for (let step = 1; step <= fixture.grads.length; step++) {
    backend.write(grads, fixture.grads[step - 1]);
    backend.ops.sumSquares(normSq, partial, grads, n);
    backend.writeHyper(hyperTensor, {
      lr: 0,
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-8,
      weightDecay: 0,
      alpha: 0.99,
      momentum: 0,
      maxGradNorm: 0,
      ...hyper,
      step,
    });
    backend.ops.optimizerStep({
      kind,
      params,
      grads,
      state1,
      state2,
      gradNormSq: normSq,
      hyper: hyperTensor,
      n,
    });
    out.push(await backend.read(params));
  }
  return out;
}

for (const c of fixture.cases) {
  // Tolerance: 1e-6 relative plus 3e-7 absolute (parameters move ~1e-2 a step, some from 0).
  // The f32 hyper tensor holds beta2 as 0.999f, so 1 - beta2 is 0.99998713e-3 where PyTorch uses
  // 1e-3 (its Python float): v is 1.3e-5 relatively smaller, Adam's update ~6e-6 larger, about
  // 1.5e-7 after five steps at lr 1e-2. The float64 mode below has no such rounding.
  Deno.test(`optimizerStep ${c.name} matches torch.optim for five steps (f32)`, async () => {
    const steps = await runCase(c.optimizer as Kind, c.hyper, "f32");
    steps.forEach((p, k) =>
      assertClose(p, c.params[k], { rtol: 1e-6, atol: 3e-7, label: `${c.name} step ${k + 1}` })
    );
  });
  // The f64 mode differs from PyTorch's f32 arithmetic only by f32 rounding of the tensors.
  Deno.test(`optimizerStep ${c.name} matches torch.optim in float64 mode`, async () => {
    const steps = await runCase(c.optimizer as Kind, c.hyper, "f64");
    steps.forEach((p, k) =>
      assertClose(p, c.params[k], { rtol: 2e-6, atol: 2e-7, label: `${c.name} step ${k + 1}` })
    );
  });
}

Deno.test("clipCoefficient scales gradients as torch.nn.utils.clip_grad_norm_", () => {
  let clippedSteps = 0;
  for (const c of fixture.cases.filter((c) => c.clippedGrads)) {
    fixture.grads.forEach((g, k) => {
      const normSq = g.reduce((s, x) => s + Math.fround(x) ** 2, 0);
      const coef = clipCoefficient(normSq, c.hyper.maxGradNorm);
      if (coef < 1) clippedSteps++;
      const clipped = g.map((x) => Math.fround(Math.fround(x) * coef));
      assertClose(clipped, c.clippedGrads![k], { rtol: 1e-6, atol: 0, label: `${c.name} ${k}` });
    });
  }
  assert.ok(clippedSteps > 0, "the fixture clips some steps");
});

Deno.test("clipCoefficient is 1 when clipping is off or the norm is within bounds", () => {
  assert.equal(clipCoefficient(100, 0), 1);
  assert.equal(clipCoefficient(0.25, 1), 1);
  assert.equal(clipCoefficient(4, 1), 1 / (2 + 1e-6));
});

Deno.test("optimizerStep leaves the gradients unclipped and clips the state", () => {
  const n = 4;
  const grads = new Float32Array([3, 4, 0, 0]); // norm 5
  const params = new Float32Array(n);
  const state1 = new Float32Array(n);
  const hyper = new Float32Array(16);
  hyper[0] = 1; // lr
  hyper[8] = 0.9; // momentum
  hyper[9] = 1; // maxGradNorm
  hyper[10] = 1; // step
  optimizerStep(
    "sgd",
    params,
    grads,
    state1,
    new Float32Array(n),
    new Float32Array([25]),
    hyper,
    n,
  );
  assert.deepEqual([...grads], [3, 4, 0, 0]);
  const coef = 1 / (5 + 1e-6);
  assertClose(state1, [3 * coef, 4 * coef, 0, 0], { rtol: 1e-7, atol: 0, label: "momentum" });
  assertClose(params, [-3 * coef, -4 * coef, 0, 0], { rtol: 1e-7, atol: 0, label: "params" });
});

Deno.test("sumSquares sums chunk partials in order for f32 and f64 arrays", () => {
  for (const n of [1, 1000, 70001]) {
    const g = randomArray(n, n);
    let expected = 0;
    for (const x of g) expected += x * x;
    for (const Arr of [Float32Array, Float64Array]) {
      const total = new Arr(1);
      const partial = new Arr(partialSlots(n));
      sumSquares(total, partial, Arr.from(g), n);
      assertClose(total, [expected], { rtol: 1e-6, atol: 0, label: `n=${n}` });
      const partialTotal = Array.from(partial).reduce((s, x) => s + x, 0);
      assertClose([partialTotal], total, { rtol: 1e-7, atol: 0, label: `partials n=${n}` });
    }
  }
});

Deno.test("partialSlots covers n with 64-aligned chunks, at most 1024 partials", () => {
  for (const n of [1, 63, 2048, 2049, 70000, 1e6, 5e8]) {
    const slots = partialSlots(n);
    assert.ok(slots >= 1 && slots <= 1024);
    assert.equal(chunkSize(n) % 64, 0);
    assert.ok(slots * chunkSize(n) >= n, `n=${n}`);
  }
});
