/**
 * The WGSL row-wise KL kernel against the CPU reference (src/cpu/kl.ts), on odd vocabularies
 * (below, at and above the 256-invocation workgroup), masked rows, and identical rows (KL
 * exactly 0).
 */

import assert from "node:assert/strict";
import { klRows } from "../../src/cpu/kl.ts";
import { SMALL_VOCAB } from "../../src/gpu/kernels/kl.ts";
import { assertClose, gpuTest, randomArray, upload } from "../helpers.ts";

/** Targets in [0, V) with every third row masked (-1), as prompt and padding rows are. */
function makeTargets(R: number, V: number): Int32Array {
  return Int32Array.from({ length: R }, (_, r) => r % 3 === 1 ? -1 : r % V);
}

// V = 5 is far below the workgroup, 97 is odd, 1000 strides several times per invocation (all
// with the 64-wide kernel); 8193 takes the 256-wide kernel of vocabularies above SMALL_VOCAB.
for (const [R, V] of [[26, 5], [26, 97], [26, 1000], [5, SMALL_VOCAB + 1]]) {
  gpuTest(`WGSL klRows matches the CPU reference (R=${R} V=${V})`, async (gpu) => {
    // Reference logits = policy logits + a perturbation of size 1, so KLs are O(0.1..1).
    const policy = randomArray(R * V, V, 4);
    const perturb = randomArray(R * V, V + 1, 1);
    const reference = policy.map((x, i) => x + perturb[i]);
    const targets = makeTargets(R, V);
    const out = upload(gpu, new Float32Array(R).fill(7.5));
    gpu.ops.klRows(
      out,
      upload(gpu, policy),
      upload(gpu, reference),
      upload(gpu, targets, "i32"),
      R,
      V,
    );
    const got = (await gpu.read(out)) as Float32Array;
    const expected = new Float64Array(R);
    klRows(expected, policy, reference, targets, R, V);
    // f32 sums of V terms of size <= 10 (logits in [-4, 4]): atol 2e-6 plus 1e-4 relative.
    assertClose(got, expected, { atol: 2e-6, rtol: 1e-4, label: `klRows V=${V}` });
    for (let r = 0; r < R; r++) {
      if (targets[r] < 0) assert.equal(got[r], 0, `masked row ${r} is 0`);
      else assert.ok(expected[r] > 1e-3, `row ${r} has a visible KL`);
    }
  });
}

for (const V of [97, SMALL_VOCAB + 1]) {
  gpuTest(`WGSL klRows is exactly 0 for identical rows (V=${V})`, async (gpu) => {
    const R = 9;
    const logits = randomArray(R * V, 11, 8);
    const targets = new Int32Array(R);
    const a = upload(gpu, logits), b = upload(gpu, logits);
    const out = upload(gpu, new Float32Array(R).fill(7.5));
    gpu.ops.klRows(out, a, b, upload(gpu, targets, "i32"), R, V);
    assert.deepEqual(Array.from(await gpu.read(out)), new Array(R).fill(0));
  });
}
