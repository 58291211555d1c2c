// WGSL RMSNorm against the CPU f32 reference. The GPU sums in f32 (in order, or by a tree in the
// "group" layout), the CPU in float64, so results agree to atol 1e-5, rtol 1e-4 (sums of up to
// 576 terms, values ~1).
import * as ref from "../../src/cpu/rmsnorm.ts";
import { assertClose, gpuTest, randomArray, upload } from "../helpers.ts";
import type { GpuBackend } from "../../src/gpu/backend.ts";
import type { RmsnormBackwardArgs, RmsnormForwardArgs } from "../../src/backend/mod.ts";
import {
  rmsnormBackward,
  rmsnormForward,
  type RmsnormLayout,
} from "../../src/gpu/kernels/rmsnorm.ts";

const EPS = 1e-5;
const tol = { atol: 1e-5, rtol: 1e-4 };

/**
 * Checks forward and backward against the CPU; `layout` forces one kernel layout (by default the
 * backend's ops pick the adapter's).
 */
async function checkShape(
  gpu: GpuBackend,
  N: number,
  C: number,
  seed: number,
  layout?: RmsnormLayout,
  xScale = 2,
) {
  const forward = layout
    ? (a: RmsnormForwardArgs) =>
      rmsnormForward(gpu.ctx, a.out, a.rstd, a.x, a.w, a.N, a.C, a.eps, layout)
    : gpu.ops.rmsnormForward;
  const backward = layout
    ? (a: RmsnormBackwardArgs) =>
      rmsnormBackward(
        gpu.ctx,
        a.dx,
        a.dw,
        a.dOut,
        a.x,
        a.w,
        a.rstd,
        a.N,
        a.C,
        a.accumulateDx,
        layout,
      )
    : gpu.ops.rmsnormBackward;
  const x = randomArray(N * C, seed, xScale), w = randomArray(C, seed + 1);
  const dOut = randomArray(N * C, seed + 2);
  const priorDx = randomArray(N * C, seed + 3), priorDw = randomArray(C, seed + 4);

  const out = new Float32Array(N * C), rstd = new Float32Array(N);
  ref.rmsnormForward(out, rstd, x, w, N, C, EPS);
  const dx = Float32Array.from(priorDx), dw = Float32Array.from(priorDw);
  ref.rmsnormBackward(dx, dw, dOut, x, w, rstd, N, C, true);

  const tx = upload(gpu, x), tw = upload(gpu, w), tOut = gpu.alloc("activations", N * C);
  const tRstd = gpu.alloc("activations", N);
  forward({ out: tOut, rstd: tRstd, x: tx, w: tw, N, C, eps: EPS });
  const label = `N=${N} C=${C} |x| < ${xScale}${layout ? ` ${layout}` : ""}`;
  assertClose(await gpu.read(tRstd), rstd, { ...tol, label: `${label} rstd` });
  assertClose(await gpu.read(tOut), out, { ...tol, label: `${label} out` });

  const tdx = upload(gpu, priorDx), tdw = upload(gpu, priorDw), tdOut = upload(gpu, dOut);
  backward({ dx: tdx, dw: tdw, dOut: tdOut, x: tx, w: tw, rstd: tRstd, N, C, accumulateDx: true });
  assertClose(await gpu.read(tdx), dx, { ...tol, label: `${label} dx accumulated` });
  const dwFirst = await gpu.read(tdw);
  assertClose(dwFirst, dw, { ...tol, label: `${label} dw` });

  // dx overwritten; dw reproduced bit for bit from the same start.
  const dxSet = new Float32Array(N * C), scratchDw = new Float32Array(C);
  ref.rmsnormBackward(dxSet, scratchDw, dOut, x, w, rstd, N, C, false);
  gpu.write(tdw, priorDw);
  backward({ dx: tdx, dw: tdw, dOut: tdOut, x: tx, w: tw, rstd: tRstd, N, C, accumulateDx: false });
  assertClose(await gpu.read(tdx), dxSet, { ...tol, label: `${label} dx` });
  assertClose(await gpu.read(tdw), dwFirst, { atol: 0, rtol: 0, label: `${label} dw rerun` });
}

gpuTest(
  "rmsnorm forward and backward match the CPU reference (N=26, C=100 and 160)",
  async (gpu) => {
    await checkShape(gpu, 26, 100, 10);
    await checkShape(gpu, 26, 160, 20);
  },
);

gpuTest(
  "rmsnorm matches the CPU reference past one workgroup and one dw chunk (C=576)",
  async (gpu) => {
    // N=150 rows: three dw chunks of 64 (the two-stage path); C=576 > 256 invocations per row.
    await checkShape(gpu, 150, 576, 30);
    await checkShape(gpu, 1, 7, 40);
  },
);

// Rows of |x| < 4e-3 have mean(x^2) ~ 5e-6, below eps = 1e-5: rstd is ~260 with eps and ~450
// without, so a kernel that dropped or mis-scaled eps fails here.
gpuTest(
  "rmsnorm of small rows, where eps dominates the mean square, matches the CPU",
  async (gpu) => {
    await checkShape(gpu, 26, 100, 80, undefined, 4e-3);
    for (const layout of ["row", "group"] as const) {
      await checkShape(gpu, 26, 100, 90, layout, 4e-3);
      await checkShape(gpu, 3, 576, 100, layout, 4e-3);
    }
  },
);

gpuTest(
  "rmsnorm matches the CPU reference in both layouts (one invocation and one workgroup per row)",
  async (gpu) => {
    for (const layout of ["row", "group"] as const) {
      await checkShape(gpu, 26, 100, 50, layout);
      await checkShape(gpu, 150, 576, 60, layout);
      await checkShape(gpu, 1, 7, 70, layout);
    }
  },
);
