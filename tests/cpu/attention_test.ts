import assert from "node:assert/strict";
import { attentionBackward, attentionForward } from "../../src/cpu/attention.ts";
import { assertClose, randomArray } from "../helpers.ts";

interface Shape {
  B: number;
  T: number;
  H: number;
  Hkv: number;
  D: number;
}

const f64 = (n: number, seed: number, scale = 1) => Float64Array.from(randomArray(n, seed, scale));

/** Runs the forward in float64 and returns out and the row stats. */
function forward(q: Float64Array, k: Float64Array, v: Float64Array, { B, T, H, Hkv, D }: Shape) {
  const out = new Float64Array(B * T * H * D);
  const stats = new Float64Array(B * H * T * 2);
  attentionForward(out, stats, q, k, v, B, T, H, Hkv, D);
  return { out, stats };
}

/** Runs the backward in float64 for upstream gradient dOut. */
function backward(
  dOut: Float64Array,
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
  shape: Shape,
) {
  const { B, T, H, Hkv, D } = shape;
  const { stats } = forward(q, k, v, shape);
  const dq = new Float64Array(q.length).fill(NaN); // overwritten, never accumulated
  const dk = new Float64Array(k.length).fill(NaN);
  const dv = new Float64Array(v.length).fill(NaN);
  const rowDot = new Float64Array(B * H * T).fill(NaN);
  attentionBackward(dq, dk, dv, rowDot, dOut, q, k, v, stats, B, T, H, Hkv, D);
  return { dq, dk, dv, rowDot };
}

/** Central differences of loss = sum(out * dOut) with respect to every element of x. */
function numericGradient(
  x: Float64Array,
  loss: () => number,
  eps = 1e-5,
): Float64Array {
  const grad = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const saved = x[i];
    x[i] = saved + eps;
    const plus = loss();
    x[i] = saved - eps;
    const minus = loss();
    x[i] = saved;
    grad[i] = (plus - minus) / (2 * eps);
  }
  return grad;
}

for (
  const shape of [
    { B: 2, T: 3, H: 4, Hkv: 2, D: 4 },
    { B: 2, T: 5, H: 4, Hkv: 2, D: 4 },
    { B: 1, T: 4, H: 4, Hkv: 1, D: 4 },
    { B: 1, T: 4, H: 2, Hkv: 2, D: 3 },
  ]
) {
  const { B, T, H, Hkv, D } = shape;
  Deno.test(`attentionBackward matches finite differences (B=${B} T=${T} H=${H} Hkv=${Hkv} D=${D})`, () => {
    const q = f64(B * T * H * D, 1, 1.5);
    const k = f64(B * T * Hkv * D, 2, 1.5);
    const v = f64(B * T * Hkv * D, 3);
    const dOut = f64(B * T * H * D, 4);
    const loss = () => {
      const { out } = forward(q, k, v, shape);
      let sum = 0;
      for (let i = 0; i < out.length; i++) sum += out[i] * dOut[i];
      return sum;
    };
    const { dq, dk, dv } = backward(dOut, q, k, v, shape);
    // float64 central differences with eps 1e-5: truncation error ~1e-10, rounding ~1e-11.
    const tol = { atol: 1e-8, rtol: 1e-6 };
    assertClose(dq, numericGradient(q, loss), { ...tol, label: "dq" });
    assertClose(dk, numericGradient(k, loss), { ...tol, label: "dk" });
    assertClose(dv, numericGradient(v, loss), { ...tol, label: "dv" });
  });
}

Deno.test("attentionForward saves each row's score max and exp-sum over s <= t only", () => {
  const shape = { B: 2, T: 5, H: 4, Hkv: 2, D: 4 };
  const { B, T, H, Hkv, D } = shape;
  const q = f64(B * T * H * D, 5, 3);
  const k = f64(B * T * Hkv * D, 6, 3);
  const v = f64(B * T * Hkv * D, 7);
  const out = new Float32Array(B * T * H * D);
  const stats = new Float32Array(B * H * T * 2).fill(NaN);
  const [q32, k32, v32] = [q, k, v].map((x) => Float32Array.from(x));
  attentionForward(out, stats, q32, k32, v32, B, T, H, Hkv, D);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / (H / Hkv));
      for (let t = 0; t < T; t++) {
        const scores = [];
        for (let s = 0; s <= t; s++) {
          let dot = 0;
          for (let d = 0; d < D; d++) {
            dot += q32[((b * T + t) * H + h) * D + d] * k32[((b * T + s) * Hkv + kvh) * D + d];
          }
          scores.push(dot / Math.sqrt(D));
        }
        const row = ((b * H + h) * T + t) * 2;
        const max = Math.max(...scores);
        const sum = scores.reduce((acc, x) => acc + Math.exp(x - max), 0);
        assert.equal(stats[row], Math.fround(max), `max of row ${row / 2}`);
        assert.ok(Math.abs(stats[row + 1] - sum) < 1e-6 * sum, `sum of row ${row / 2}`);
      }
    }
  }
  // The first query position attends only to itself: its output is its own value row.
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / (H / Hkv));
      for (let d = 0; d < D; d++) {
        assert.equal(out[(b * T * H + h) * D + d], Math.fround(v[(b * T * Hkv + kvh) * D + d]));
      }
    }
  }
});

/** HF's repeat_kv: (B,T,Hkv,D) -> (B,T,H,D), kv head j serving query heads j*group .. j*group+group-1. */
function repeatKv(x: Float64Array, { B, T, H, Hkv, D }: Shape): Float64Array {
  const group = H / Hkv;
  const out = new Float64Array(B * T * H * D);
  for (let bt = 0; bt < B * T; bt++) {
    for (let h = 0; h < H; h++) {
      for (let d = 0; d < D; d++) {
        out[(bt * H + h) * D + d] = x[(bt * Hkv + Math.floor(h / group)) * D + d];
      }
    }
  }
  return out;
}

Deno.test("grouped-query attention equals multi-head attention on repeated kv heads", () => {
  const gqa = { B: 2, T: 4, H: 6, Hkv: 2, D: 4 };
  const mha = { ...gqa, Hkv: gqa.H };
  const { B, T, H, Hkv, D } = gqa;
  const q = f64(B * T * H * D, 8);
  const k = f64(B * T * Hkv * D, 9);
  const v = f64(B * T * Hkv * D, 10);
  const dOut = f64(B * T * H * D, 11);
  const a = forward(q, k, v, gqa);
  const b = forward(q, repeatKv(k, gqa), repeatKv(v, gqa), mha);
  assertClose(a.out, b.out, { atol: 1e-14, rtol: 0, label: "out" });
  assertClose(a.stats, b.stats, { atol: 1e-14, rtol: 0, label: "stats" });
  // The gradient of a shared kv head is the sum of the gradients of its repeated copies.
  const ga = backward(dOut, q, k, v, gqa);
  const gb = backward(dOut, q, repeatKv(k, gqa), repeatKv(v, gqa), mha);
  assertClose(ga.dq, gb.dq, { atol: 1e-14, rtol: 0, label: "dq" });
  const group = H / Hkv;
  const summed = (g: Float64Array) => {
    const out = new Float64Array(B * T * Hkv * D);
    for (let bt = 0; bt < B * T; bt++) {
      for (let h = 0; h < H; h++) {
        for (let d = 0; d < D; d++) {
          out[(bt * Hkv + Math.floor(h / group)) * D + d] += g[(bt * H + h) * D + d];
        }
      }
    }
    return out;
  };
  assertClose(ga.dk, summed(gb.dk), { atol: 1e-14, rtol: 1e-12, label: "dk" });
  assertClose(ga.dv, summed(gb.dv), { atol: 1e-14, rtol: 1e-12, label: "dv" });
});

Deno.test("right padding does not change the outputs or gradients of earlier tokens", () => {
  const shape = { B: 1, T: 5, H: 4, Hkv: 2, D: 4 };
  const { B, T, H, Hkv, D } = shape;
  const real = 3; // positions 3 and 4 are padding
  const q = f64(B * T * H * D, 12);
  const k = f64(B * T * Hkv * D, 13);
  const v = f64(B * T * Hkv * D, 14);
  const dOut = f64(B * T * H * D, 15);
  dOut.fill(0, real * H * D); // the loss never reads padded positions
  const base = forward(q, k, v, shape);
  const baseGrad = backward(dOut, q, k, v, shape);
  // Overwrite the pad positions' q, k, v with other values.
  q.set(f64((T - real) * H * D, 16, 5), real * H * D);
  k.set(f64((T - real) * Hkv * D, 17, 5), real * Hkv * D);
  v.set(f64((T - real) * Hkv * D, 18, 5), real * Hkv * D);
  const padded = forward(q, k, v, shape);
  const paddedGrad = backward(dOut, q, k, v, shape);
  assert.deepEqual(padded.out.subarray(0, real * H * D), base.out.subarray(0, real * H * D));
  const realKv = real * Hkv * D;
  assert.deepEqual(paddedGrad.dq.subarray(0, real * H * D), baseGrad.dq.subarray(0, real * H * D));
  assert.deepEqual(paddedGrad.dk.subarray(0, realKv), baseGrad.dk.subarray(0, realKv));
  assert.deepEqual(paddedGrad.dv.subarray(0, realKv), baseGrad.dv.subarray(0, realKv));
});

Deno.test("attention rejects query heads that do not split into kv-head groups", () => {
  const a = new Float64Array(64);
  assert.throws(() => attentionForward(a, a, a, a, a, 1, 2, 3, 2, 4), /do not split/);
});
