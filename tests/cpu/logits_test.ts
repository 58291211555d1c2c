import assert from "node:assert/strict";
import {
  broadcastSequence,
  logitsBackward,
  logitsForward,
  sequenceSum,
} from "../../src/cpu/logits.ts";
import { assertClose, randomArray } from "../helpers.ts";

const f64 = (n: number, seed: number, scale = 1) => Float64Array.from(randomArray(n, seed, scale));

Deno.test("logitsForward gives logsumexp and the target's log-softmax, 0 on masked rows", () => {
  const R = 5;
  const V = 7;
  const logits = f64(R * V, 1, 4);
  const targets = Int32Array.from([3, -1, 0, 6, -100]);
  const lse = new Float64Array(R);
  const tokenLogp = new Float64Array(R).fill(NaN);
  logitsForward(lse, tokenLogp, logits, targets, R, V);
  for (let r = 0; r < R; r++) {
    let sum = 0;
    for (let c = 0; c < V; c++) sum += Math.exp(logits[r * V + c]);
    assert.ok(Math.abs(lse[r] - Math.log(sum)) < 1e-13, `lse[${r}]`);
    const expected = targets[r] >= 0 ? logits[r * V + targets[r]] - Math.log(sum) : 0;
    assert.ok(Math.abs(tokenLogp[r] - expected) < 1e-13, `tokenLogp[${r}]`);
  }
  assert.equal(tokenLogp[1], 0);
  assert.equal(tokenLogp[4], 0);
});

Deno.test("logitsForward subtracts the row max, so huge logits do not overflow", () => {
  const logits = Float32Array.from([1000, 1000, 990, -1e30]);
  const lse = new Float32Array(1);
  const tokenLogp = new Float32Array(1);
  logitsForward(lse, tokenLogp, logits, Int32Array.from([2]), 1, 4);
  const expected = 1000 + Math.log(2 + Math.exp(-10));
  assert.ok(Math.abs(lse[0] - expected) < 1e-3, `lse ${lse[0]}`);
  assert.ok(Math.abs(tokenLogp[0] - (990 - expected)) < 1e-3, `tokenLogp ${tokenLogp[0]}`);
});

Deno.test("logitsForward rejects a target outside the vocabulary", () => {
  const a = new Float64Array(4);
  assert.throws(() => logitsForward(a, a, a, Int32Array.from([4]), 1, 4), /not below V/);
});

Deno.test("logitsBackward matches finite differences of sum(rowGrad * tokenLogp)", () => {
  const R = 6;
  const V = 9;
  const logits = f64(R * V, 2, 3);
  const targets = Int32Array.from([0, 8, -1, 4, 4, -1]);
  const rowGrad = f64(R, 3, 2);
  const lse = new Float64Array(R);
  const tokenLogp = new Float64Array(R);
  const loss = () => {
    logitsForward(lse, tokenLogp, logits, targets, R, V);
    let sum = 0;
    for (let r = 0; r < R; r++) sum += rowGrad[r] * tokenLogp[r];
    return sum;
  };
  const eps = 1e-5;
  const numeric = new Float64Array(R * V);
  for (let i = 0; i < R * V; i++) {
    const saved = logits[i];
    logits[i] = saved + eps;
    const plus = loss();
    logits[i] = saved - eps;
    const minus = loss();
    logits[i] = saved;
    numeric[i] = (plus - minus) / (2 * eps);
  }
  loss(); // lse of the unperturbed logits
  const grad = logits.slice();
  logitsBackward(grad, lse, targets, rowGrad, R, V);
  // float64 central differences with eps 1e-5: error ~1e-10.
  assertClose(grad, numeric, { atol: 1e-8, rtol: 1e-6, label: "dLogits" });
  // Masked rows are exact zeros, and every counted row's gradient sums to 0 (softmax invariance).
  for (let r = 0; r < R; r++) {
    const row = grad.subarray(r * V, (r + 1) * V);
    if (targets[r] < 0) assert.ok(row.every((x) => Object.is(x, 0)), `row ${r} not zero`);
    else assert.ok(Math.abs(row.reduce((a, b) => a + b, 0)) < 1e-12, `row ${r} sum`);
  }
});

Deno.test("logitsBackward works in place in float32", () => {
  const R = 3;
  const V = 5;
  const logits = randomArray(R * V, 4, 2);
  const targets = Int32Array.from([1, -1, 4]);
  const rowGrad = Float32Array.from([-1, 7, 0.5]);
  const lse = new Float32Array(R);
  const tokenLogp = new Float32Array(R);
  logitsForward(lse, tokenLogp, logits, targets, R, V);
  const expected = new Float64Array(R * V);
  for (let r = 0; r < R; r++) {
    if (targets[r] < 0) continue;
    for (let c = 0; c < V; c++) {
      const p = Math.exp(logits[r * V + c] - lse[r]);
      expected[r * V + c] = rowGrad[r] * ((c === targets[r] ? 1 : 0) - p);
    }
  }
  logitsBackward(logits, lse, targets, rowGrad, R, V);
  assertClose(logits, expected, { atol: 1e-6, rtol: 1e-5, label: "dLogits f32" });
});

Deno.test("sequenceSum sums each sequence's token log-probs; broadcastSequence is its backward", () => {
  const S = 3;
  const T = 4;
  const tokenLogp = Float64Array.from([0, -1, -2, 0, 0, 0, -0.5, -0.25, -3, 0, 0, 0]);
  const seqLogps = new Float64Array(S);
  sequenceSum(seqLogps, tokenLogp, S, T);
  assert.deepEqual(Array.from(seqLogps), [-3, -0.75, -3]);
  const rowGrad = new Float64Array(S * T).fill(NaN);
  broadcastSequence(rowGrad, Float64Array.from([1, -2, 0.5]), S, T);
  assert.deepEqual(Array.from(rowGrad), [1, 1, 1, 1, -2, -2, -2, -2, 0.5, 0.5, 0.5, 0.5]);
});
