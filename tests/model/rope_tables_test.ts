import assert from "node:assert/strict";
import { ropeTables } from "../../src/model/rope_tables.ts";
import { assertClose } from "../helpers.ts";

Deno.test("ropeTables has cos 1 and sin 0 at position 0", () => {
  const { cos, sin } = ropeTables(3, 8, 10000);
  assert.deepEqual(cos.length, 3 * 4);
  assert.deepEqual([...cos.subarray(0, 4)], [1, 1, 1, 1]);
  assert.deepEqual([...sin.subarray(0, 4)], [0, 0, 0, 0]);
});

Deno.test("ropeTables matches cos(t * theta^(-2i/D)) in float64 within 1e-6", () => {
  const T = 50, D = 8, theta = 10000;
  const { cos, sin } = ropeTables(T, D, theta);
  for (const t of [1, 7, 49]) {
    for (let i = 0; i < D / 2; i++) {
      const angle = t * Math.pow(theta, -2 * i / D);
      assertClose([cos[t * 4 + i], sin[t * 4 + i]], [Math.cos(angle), Math.sin(angle)], {
        atol: 1e-6,
        rtol: 0,
        label: `t=${t} i=${i}`,
      });
    }
  }
  // Position 1, i = 0: the angle is exactly 1 radian.
  assert.deepEqual(cos[4], Math.fround(0.5403023058681398));
  assert.deepEqual(sin[4], Math.fround(0.8414709848078965));
});

Deno.test("ropeTables rounds inv_freq and the angle to float32 as HF does", () => {
  // D = 8, i = 1: theta^(2/8) = 10, inv_freq = f32(0.1); angle at t = 7 is f32(7 * f32(0.1)).
  const { cos } = ropeTables(8, 8, 10000);
  const angle = Math.fround(7 * Math.fround(0.1));
  assert.deepEqual(cos[7 * 4 + 1], Math.fround(Math.cos(angle)));
});

Deno.test("ropeTables rejects an odd head dimension", () => {
  assert.throws(() => ropeTables(4, 7, 10000), { name: "RangeError", message: /even/ });
});
