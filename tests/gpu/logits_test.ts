import assert from "node:assert/strict";
import {
  broadcastSequence,
  logitsBackward,
  logitsForward,
  sequenceSum,
} from "../../src/cpu/logits.ts";
import type { GpuBackend } from "../../src/gpu/backend.ts";
import { assertClose, gpuTest, randomArray, upload } from "../helpers.ts";

/** Targets in [0, V) with every third row masked (-1), as prompt and padding rows are. */
function makeTargets(R: number, V: number, seed: number): Int32Array {
  const u = randomArray(R, seed);
  return Int32Array.from(u, (x, r) => r % 3 === 1 ? -1 : Math.floor((x + 1) / 2 * V));
}

async function runGpu(
  gpu: GpuBackend,
  logits: Float32Array,
  targets: Int32Array,
  rowGrad: Float32Array,
  R: number,
  V: number,
) {
  const logitsT = upload(gpu, logits);
  const targetsT = upload(gpu, targets, "i32");
  const rowGradT = upload(gpu, rowGrad);
  const lse = upload(gpu, new Float32Array(R).fill(7.5));
  const tokenLogp = upload(gpu, new Float32Array(R).fill(7.5));
  gpu.ops.logitsForward(lse, tokenLogp, logitsT, targetsT, R, V);
  const forward = {
    lse: (await gpu.read(lse)) as Float32Array,
    tokenLogp: (await gpu.read(tokenLogp)) as Float32Array,
  };
  gpu.ops.logitsBackward(logitsT, lse, targetsT, rowGradT, R, V);
  return { ...forward, dLogits: (await gpu.read(logitsT)) as Float32Array };
}

function runCpu(
  logits: Float32Array,
  targets: Int32Array,
  rowGrad: Float32Array,
  R: number,
  V: number,
) {
  const lse = new Float32Array(R);
  const tokenLogp = new Float32Array(R);
  logitsForward(lse, tokenLogp, logits, targets, R, V);
  const dLogits = logits.slice();
  logitsBackward(dLogits, lse, targets, rowGrad, R, V);
  return { lse, tokenLogp, dLogits };
}

// V = 7 is below the 256-invocation workgroup; 97 and 1000 are odd, 1000 strides several times.
for (const V of [7, 97, 1000]) {
  const R = 26;
  gpuTest(`WGSL logits forward and backward match the CPU (R=${R} V=${V})`, async (gpu) => {
    const logits = randomArray(R * V, V, 6);
    const targets = makeTargets(R, V, V + 1);
    const rowGrad = randomArray(R, V + 2, 2);
    const g = await runGpu(gpu, logits, targets, rowGrad, R, V);
    const c = runCpu(logits, targets, rowGrad, R, V);
    // lse ~ log(V) + 6 < 14, where an f32 ulp is ~1e-6; exp and log add a few ulps.
    assertClose(g.lse, c.lse, { atol: 1e-5, rtol: 1e-6, label: "lse" });
    assertClose(g.tokenLogp, c.tokenLogp, { atol: 1e-5, rtol: 1e-6, label: "tokenLogp" });
    // Gradients are bounded by |rowGrad| <= 2; softmax terms carry a few f32 ulps.
    assertClose(g.dLogits, c.dLogits, { atol: 1e-6, rtol: 1e-5, label: "dLogits" });
    for (let r = 0; r < R; r++) {
      if (targets[r] >= 0) continue;
      assert.equal(g.tokenLogp[r], 0, `masked tokenLogp[${r}]`);
      assert.ok(
        g.dLogits.subarray(r * V, (r + 1) * V).every((x) => Object.is(x, 0)),
        `masked row ${r}`,
      );
    }
  });
}

gpuTest("WGSL logitsForward keeps huge logits finite (max subtracted)", async (gpu) => {
  const V = 300;
  const logits = randomArray(2 * V, 5, 1).map((x, i) => x + (i < V ? 1e4 : -1e4));
  const targets = Int32Array.from([3, 299]);
  const g = await runGpu(gpu, logits, targets, Float32Array.from([1, 1]), 2, V);
  const c = runCpu(logits, targets, Float32Array.from([1, 1]), 2, V);
  // Around 1e4 an f32 ulp is ~1e-3.
  assertClose(g.lse, c.lse, { atol: 0, rtol: 1e-6, label: "lse" });
  assertClose(g.tokenLogp, c.tokenLogp, { atol: 2e-3, rtol: 0, label: "tokenLogp" });
  assert.ok(g.dLogits.every(Number.isFinite));
});

gpuTest("WGSL logits kernels are bit-identical from run to run", async (gpu) => {
  const R = 26;
  const V = 1000;
  const logits = randomArray(R * V, 11, 6);
  const targets = makeTargets(R, V, 12);
  const rowGrad = randomArray(R, 13);
  const a = await runGpu(gpu, logits, targets, rowGrad, R, V);
  const b = await runGpu(gpu, logits, targets, rowGrad, R, V);
  for (const name of ["lse", "tokenLogp", "dLogits"] as const) {
    assert.deepEqual(new Uint32Array(a[name].buffer), new Uint32Array(b[name].buffer), name);
  }
});

gpuTest("WGSL sequenceSum and broadcastSequence match the CPU", async (gpu) => {
  const S = 5;
  const T = 26;
  const tokenLogp = randomArray(S * T, 20, 3).map((x, i) => i % 4 === 0 ? 0 : x);
  const seqGrad = randomArray(S, 21);
  const seqLogps = upload(gpu, new Float32Array(S).fill(7.5));
  const rowGrad = upload(gpu, new Float32Array(S * T).fill(7.5));
  gpu.ops.sequenceSum(seqLogps, upload(gpu, tokenLogp), S, T);
  gpu.ops.broadcastSequence(rowGrad, upload(gpu, seqGrad), S, T);
  const expectedSums = new Float32Array(S);
  sequenceSum(expectedSums, tokenLogp, S, T);
  const expectedRows = new Float32Array(S * T);
  broadcastSequence(expectedRows, seqGrad, S, T);
  // 26 f32 additions of values up to 3 in order: error below 26 ulps of ~40.
  assertClose(await gpu.read(seqLogps), expectedSums, { atol: 1e-4, rtol: 0, label: "seqLogps" });
  assert.deepEqual(await gpu.read(rowGrad), expectedRows);
});
