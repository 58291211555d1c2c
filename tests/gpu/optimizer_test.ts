/**
 * The WGSL optimizer kernels against the CPU reference (src/cpu/optimizer.ts, itself checked
 * against PyTorch): sum of squares, AdamW / RMSprop / SGD with and without clipping, odd sizes
 * that span several workgroups, determinism, and the split into several dispatches used for
 * arenas larger than one storage binding.
 */

import assert from "node:assert/strict";
import type { Backend, OptimizerHyper, Tensor } from "../../src/backend/mod.ts";
import type { GpuContext } from "../../src/gpu/context.ts";
import { chunkSize, normScratchSlots, partialSlots } from "../../src/backend/mod.ts";
import {
  optimizerStep as gpuOptimizerStep,
  sumSquares as gpuSumSquares,
} from "../../src/gpu/kernels/optimizer.ts";
import { assertClose, cpu, gpuTest, randomArray } from "../helpers.ts";

type Kind = "adamw" | "rmsprop" | "sgd";

// RMSprop runs without weight decay here: where g + wd*p cancels to ~1e-7, g / (sqrt(v) + eps)
// is ill-conditioned and any two f32 evaluation orders (FMA or not) differ by ~1e-3 there. Its L2
// term is the same WGSL expression as SGD's (tested here) and is checked against PyTorch on the CPU.
const CASES: { kind: Kind; hyper: Partial<OptimizerHyper> }[] = [
  { kind: "adamw", hyper: { lr: 1e-2, weightDecay: 0.01 } },
  { kind: "rmsprop", hyper: { lr: 1e-2, alpha: 0.99, momentum: 0.9 } },
  { kind: "rmsprop", hyper: { lr: 1e-2, alpha: 0.99 } },
  { kind: "sgd", hyper: { lr: 0.1, weightDecay: 0.01, momentum: 0.9 } },
];

function hyperAt(
  step: number,
  hyper: Partial<OptimizerHyper>,
  maxGradNorm: number,
): OptimizerHyper {
  return {
    lr: 1e-3,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    weightDecay: 0,
    alpha: 0.99,
    momentum: 0,
    ...hyper,
    maxGradNorm,
    step,
  };
}

/** Arenas of one optimizer run, filled with the same seeded data on any backend. */
function arenas(backend: Backend, n: number) {
  const t = {
    params: backend.alloc("parameters", n),
    grads: backend.alloc("gradients", n),
    state1: backend.alloc("optimizer", n),
    state2: backend.alloc("optimizer", n),
    normSq: backend.alloc("optimizer", 1),
    partial: backend.alloc("optimizer", normScratchSlots(n)),
    hyper: backend.alloc("optimizer", 16),
  };
  backend.write(t.params, randomArray(n, 1));
  return t;
}

/** Three steps (fresh gradients each) of `kind`; returns params, state1, state2 and the grads. */
async function run(
  backend: Backend,
  kind: Kind,
  hyper: Partial<OptimizerHyper>,
  maxGradNorm: number,
  n: number,
  step = (t: ReturnType<typeof arenas>) =>
    backend.ops.optimizerStep({
      kind,
      params: t.params,
      grads: t.grads,
      state1: t.state1,
      state2: t.state2,
      gradNormSq: t.normSq,
      hyper: t.hyper,
      n,
    }),
) {
  const t = arenas(backend, n);
  for (let k = 1; k <= 3; k++) {
    backend.write(t.grads, randomArray(n, 100 + k, 0.05));
    backend.ops.sumSquares(t.normSq, t.partial, t.grads, n);
    backend.writeHyper(t.hyper, hyperAt(k, hyper, maxGradNorm));
    step(t);
    backend.submit();
  }
  const read = (x: Tensor) => backend.read(x);
  return {
    params: await read(t.params),
    state1: await read(t.state1),
    state2: await read(t.state2),
    grads: await read(t.grads),
    normSq: (await read(t.normSq))[0],
  };
}

for (const n of [1000, 70000]) {
  for (const { kind, hyper } of CASES) {
    for (const maxGradNorm of [0, 0.5]) {
      const what = `${kind}${hyper.momentum ? " with momentum" : ""}` +
        `${maxGradNorm ? " clipped" : ""}, n=${n}`;
      // Tolerance: rtol 1e-5 plus atol 2e-6 × the largest |value| of the array — WGSL division and
      // sqrt may differ from the host's by a few ulp, the clip factor uses the GPU's tree-ordered
      // norm, and sums like RMSprop's momentum (terms near ±10) cancel to small values.
      gpuTest(`optimizerStep ${what} matches the CPU reference`, async (gpu) => {
        const got = await run(gpu, kind, hyper, maxGradNorm, n);
        const want = await run(cpu(), kind, hyper, maxGradNorm, n);
        if (maxGradNorm) assert.ok(Math.sqrt(want.normSq) > maxGradNorm, "the test clips");
        for (const key of ["params", "state1", "state2"] as const) {
          const scale = Array.from(want[key]).reduce((s, x) => Math.max(s, Math.abs(x)), 0);
          assertClose(got[key], want[key], {
            rtol: 1e-5,
            atol: 2e-6 * scale,
            label: `${what} ${key}`,
          });
        }
        assert.deepEqual(got.grads, want.grads, "the gradients are not modified");
      });
    }
  }
}

/**
 * The GPU's sum of squares, emulated on the host in f32 in its documented fixed order: chunks of
 * chunkSize(n), thread t of a chunk adding elements t, t+256, ..., then a halving tree over the
 * 256 threads; the partials summed the same way by one workgroup.
 */
function emulatedSumSquares(g: Float32Array, n: number): number {
  const f = Math.fround;
  const tree = (sums: number[]) => {
    for (let stride = 128; stride > 0; stride >>= 1) {
      for (let t = 0; t < stride; t++) sums[t] = f(sums[t] + sums[t + stride]);
    }
    return sums[0];
  };
  const slots = partialSlots(n), chunk = chunkSize(n);
  const partials = Array.from({ length: slots }, (_, w) => {
    const end = Math.min(n, (w + 1) * chunk);
    return tree(Array.from({ length: 256 }, (_, t) => {
      let s = 0;
      for (let i = w * chunk + t; i < end; i += 256) s = f(s + f(g[i] * g[i]));
      return s;
    }));
  });
  return tree(Array.from({ length: 256 }, (_, t) => {
    let s = 0;
    for (let i = t; i < slots; i += 256) s = f(s + partials[i]);
    return s;
  }));
}

gpuTest("sumSquares matches the CPU reference and sums in its fixed order", async (gpu) => {
  for (const n of [1, 1000, 70001]) {
    const g = randomArray(n, n);
    const sumOn = async (backend: Backend) => {
      const total = backend.alloc("optimizer", 1);
      const partial = backend.alloc("optimizer", normScratchSlots(n));
      const x = backend.alloc("gradients", n);
      backend.write(x, g);
      backend.ops.sumSquares(total, partial, x, n);
      return (await backend.read(total))[0];
    };
    const want = await sumOn(cpu());
    const got = await sumOn(gpu);
    // Tolerance: rtol 1e-5 (f32 tree sums against a float64 sum).
    assertClose([got], [want], { rtol: 1e-5, atol: 0, label: `n=${n}` });
    // The order is fixed (no atomics, no order chosen at run time): on a software adapter, which
    // does not fuse multiply-adds, the result is the host emulation's bit for bit; a hardware
    // driver may fuse x * x into the sum, a rounding of at most a few ulp per term.
    const emulated = emulatedSumSquares(g, n);
    const ctx = gpu.ctx as GpuContext;
    if (ctx.isSoftware) assert.equal(got, emulated, `n=${n}: the fixed order, emulated`);
    else assertClose([got], [emulated], { rtol: 1e-6, atol: 0, label: `n=${n} emulated` });
  }
});

// maxElements = 4096 forces the path that large arenas take: several dispatches on views.
gpuTest("sumSquares split over bindings gives the same bits as one dispatch", async (gpu) => {
  const n = 70000;
  const ctx = gpu.ctx as GpuContext;
  const x = gpu.alloc("gradients", n);
  gpu.write(x, randomArray(n, 7));
  const totals = [];
  for (const maxElements of [ctx.maxBindingElements, 4096]) {
    const total = gpu.alloc("optimizer", 1);
    const partial = gpu.alloc("optimizer", normScratchSlots(n));
    gpuSumSquares(ctx, total, partial, x, n, maxElements);
    totals.push((await gpu.read(total))[0]);
  }
  assert.equal(totals[1], totals[0]);
});

gpuTest("optimizerStep split over bindings gives the same bits as one dispatch", async (gpu) => {
  const n = 70000;
  const ctx = gpu.ctx as GpuContext;
  for (const { kind, hyper } of [CASES[0], CASES[3]]) {
    const results = [];
    for (const maxElements of [ctx.maxBindingElements, 4096]) {
      results.push(
        await run(gpu, kind, hyper, 1, n, (t) =>
          gpuOptimizerStep(
            ctx,
            kind,
            t.params,
            t.grads,
            t.state1,
            t.state2,
            t.normSq,
            t.hyper,
            n,
            maxElements,
          )),
      );
    }
    assert.deepEqual(results[1].params, results[0].params, `${kind} params`);
    assert.deepEqual(results[1].state1, results[0].state1, `${kind} state1`);
  }
});
