import assert from "node:assert/strict";
import { sigmoid, swigluBackward, swigluForward } from "../../src/cpu/swiglu.ts";
import { assertClose, randomArray } from "../helpers.ts";

Deno.test("swigluForward is silu(gate) * up", () => {
  const out = new Float64Array(3);
  swigluForward(out, Float64Array.of(0, 1, -2), Float64Array.of(5, 2, 3), 3);
  const silu = (g: number) => g / (1 + Math.exp(-g));
  assertClose(out, [0, silu(1) * 2, silu(-2) * 3], { atol: 1e-15, rtol: 1e-14, label: "out" });
});

Deno.test("sigmoid stays finite for large |g|", () => {
  assert.deepEqual(sigmoid(1000), 1);
  assert.deepEqual(sigmoid(-1000), 0);
  const out = new Float32Array(2), dGate = new Float32Array(2), dUp = new Float32Array(2);
  const gate = Float32Array.of(-1e4, 1e4), up = Float32Array.of(2, 3);
  swigluForward(out, gate, up, 2);
  swigluBackward(dGate, dUp, Float32Array.of(1, 1), gate, up, 2);
  assertClose(out, [0, 3e4], { atol: 0, rtol: 0, label: "out" });
  assertClose([...dGate, ...dUp], [0, 3, 0, 1e4], { atol: 0, rtol: 0, label: "gradients" });
});

Deno.test("swigluBackward matches finite differences", () => {
  const n = 7;
  const gate = Float64Array.from(randomArray(n, 31, 4));
  const up = Float64Array.from(randomArray(n, 32, 2));
  const probe = Float64Array.from(randomArray(n, 33)); // loss = sum(out * probe)
  const loss = () => {
    const out = new Float64Array(n);
    swigluForward(out, gate, up, n);
    return out.reduce((s, o, i) => s + o * probe[i], 0);
  };
  const numeric = (p: Float64Array) =>
    p.map((_, i) => {
      const h = 1e-6, saved = p[i];
      p[i] = saved + h;
      const plus = loss();
      p[i] = saved - h;
      const minus = loss();
      p[i] = saved;
      return (plus - minus) / (2 * h);
    });
  const dGate = new Float64Array(n), dUp = new Float64Array(n);
  swigluBackward(dGate, dUp, probe, gate, up, n);
  assertClose(dGate, numeric(gate), { atol: 1e-8, rtol: 1e-6, label: "dGate" });
  assertClose(dUp, numeric(up), { atol: 1e-8, rtol: 1e-6, label: "dUp" });
});
